//! Istio's own sample configs and security-task YAML (in `shared/` beside the checkout)
//! must load exactly as Istio accepts them: no errors, and no field the models miss.

use std::path::PathBuf;

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

fn assert_corpus_loads(dir: &str, at_least: usize) {
    let loaded = load_paths(&[shared(dir)], &LoadOptions::default());
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
