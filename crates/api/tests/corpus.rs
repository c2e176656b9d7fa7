//! Istio's own sample configs and security-task YAML (in `shared/` beside the checkout)
//! must load exactly as Istio accepts them: no errors, and no field the models miss.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use weft_api::{LoadOptions, Loaded, Severity, load_str};

fn shared(dir: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared");
    let path = root.join(dir);
    assert!(
        path.is_dir(),
        "the test corpus is missing: looked for {} (the repository is expected to be checked out with shared/ beside it)",
        path.display()
    );
    path
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable corpus") {
        let path = entry.expect("readable corpus").path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml") {
            out.push(path);
        }
    }
}

/// What a corpus run saw.
struct Corpus {
    loaded: Loaded,
    documents: usize,
    fragments: usize,
}

/// Loads every file as `kubectl apply` would see it after the docs' shell steps: the
/// security tasks' `$CLIENT_IP` is the user's address, expanded by the shell. Files the
/// corpus marks as fragments of a larger object (`# kinds: none (fragment)`) are not
/// objects; the kinds' own unit tests wrap and check them.
fn load_corpus(dir: &str) -> Corpus {
    let mut files = Vec::new();
    yaml_files(&shared(dir), &mut files);
    files.sort();
    let mut corpus = Corpus {
        loaded: Loaded::default(),
        documents: 0,
        fragments: 0,
    };
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable corpus");
        if text.contains("# kinds: none (fragment)") {
            corpus.fragments += 1;
            continue;
        }
        let text = text.replace("$CLIENT_IP", "203.0.113.7");
        corpus.documents += text
            .lines()
            .filter(|l| l.starts_with("apiVersion:"))
            .count();
        load_str(
            &text,
            Arc::from(file.as_path()),
            &LoadOptions::default(),
            &mut corpus.loaded,
        );
    }
    corpus
}

fn assert_loads_cleanly(dir: &str, corpus: &Corpus) {
    let bad: Vec<String> = corpus
        .loaded
        .reports
        .iter()
        .filter(|r| {
            r.severity() == Severity::Error || r.diagnostic.message.starts_with("unknown field")
        })
        .map(ToString::to_string)
        .collect();
    assert!(
        bad.is_empty(),
        "{} problems in {dir}:\n{}",
        bad.len(),
        bad.join("\n")
    );
    assert_eq!(
        corpus.loaded.objects.len(),
        corpus.documents,
        "every document of {dir} must load"
    );
}

#[test]
fn istio_samples_load_without_errors() {
    let corpus = load_corpus("istio-samples/samples");
    assert_loads_cleanly("istio-samples", &corpus);
    assert!(
        corpus.documents >= 95,
        "only {} documents found",
        corpus.documents
    );
}

#[test]
fn istio_security_tasks_load_without_errors() {
    let corpus = load_corpus("istio-security/tasks");
    assert_loads_cleanly("istio-security", &corpus);
    assert!(
        corpus.documents >= 85,
        "only {} documents found",
        corpus.documents
    );
    assert_eq!(
        corpus.fragments, 11,
        "fragments are skipped here, and only those"
    );
}
