//! Istio's own sample configs and security-task YAML (in `shared/` beside the checkout)
//! must load exactly as Istio accepts them: no errors, and no field the models miss.

use std::path::{Path, PathBuf};

use weft_api::{LoadOptions, Severity, load_paths};

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

/// How many documents the files under `dir` hold (top-level `apiVersion:` lines).
fn documents(dir: &Path) -> usize {
    let mut count = 0;
    for entry in std::fs::read_dir(dir).expect("readable corpus") {
        let path = entry.expect("readable corpus").path();
        if path.is_dir() {
            count += documents(&path);
        } else if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).expect("readable corpus");
            count += text
                .lines()
                .filter(|l| l.starts_with("apiVersion:"))
                .count();
        }
    }
    count
}

fn assert_corpus_loads(dir: &str, at_least: usize) {
    let root = shared(dir);
    let loaded = load_paths(&[&root], &LoadOptions::default());
    let bad: Vec<String> = loaded
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
        loaded.objects.len(),
        documents(&root),
        "every document of {dir} must load"
    );
    assert!(
        loaded.objects.len() >= at_least,
        "only {} objects loaded from {dir}, expected at least {at_least}",
        loaded.objects.len()
    );
}

#[test]
fn istio_samples_load_without_errors() {
    assert_corpus_loads("istio-samples/samples", 90);
}

#[test]
fn istio_security_tasks_load_without_errors() {
    assert_corpus_loads("istio-security/tasks", 60);
}
