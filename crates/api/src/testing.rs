//! Helpers for the unit tests of the kinds: load YAML text as a file would be loaded and
//! look at what came back.

use std::path::Path;
use std::sync::Arc;

use crate::diag::Severity;
use crate::load::{LoadOptions, Loaded, load_str};

/// Loads `yaml` as the file `test.yaml`.
pub(crate) fn load(yaml: &str) -> Loaded {
    load_with(yaml, &LoadOptions::default())
}

pub(crate) fn load_with(yaml: &str, opts: &LoadOptions) -> Loaded {
    let mut out = Loaded::default();
    load_str(yaml, Arc::from(Path::new("test.yaml")), opts, &mut out);
    out
}

/// Every report, as `weft validate` prints it.
pub(crate) fn problems(yaml: &str) -> Vec<String> {
    load(yaml).reports.iter().map(ToString::to_string).collect()
}

/// Asserts the text loads with no error and no warning, and returns what loaded.
#[track_caller]
pub(crate) fn assert_valid(yaml: &str) -> Loaded {
    let loaded = load(yaml);
    let reports: Vec<String> = loaded.reports.iter().map(ToString::to_string).collect();
    assert!(
        reports.is_empty(),
        "expected no problems, got:\n{}\n--- in:\n{yaml}",
        reports.join("\n")
    );
    loaded
}

/// Asserts the text is refused, with an error whose printed line contains every one of
/// `needles` (a path, a phrase of the message, the file:line...).
#[track_caller]
pub(crate) fn assert_error(yaml: &str, needles: &[&str]) {
    let loaded = load(yaml);
    let errors: Vec<String> = loaded
        .reports
        .iter()
        .filter(|r| r.severity() == Severity::Error)
        .map(ToString::to_string)
        .collect();
    assert!(
        errors.iter().any(|e| needles.iter().all(|n| e.contains(n))),
        "expected an error containing {needles:?}, got:\n{}\n--- in:\n{yaml}",
        errors.join("\n")
    );
    assert!(
        loaded.objects.is_empty(),
        "an object with errors must be refused"
    );
}

/// Asserts the text loads, with a warning containing every one of `needles`.
#[track_caller]
pub(crate) fn assert_warning(yaml: &str, needles: &[&str]) {
    let loaded = load(yaml);
    let reports: Vec<String> = loaded.reports.iter().map(ToString::to_string).collect();
    assert!(
        !loaded.has_errors(),
        "expected only warnings, got:\n{}",
        reports.join("\n")
    );
    assert!(
        loaded
            .reports
            .iter()
            .any(|r| r.severity() == Severity::Warning
                && needles.iter().all(|n| r.to_string().contains(n))),
        "expected a warning containing {needles:?}, got:\n{}",
        reports.join("\n")
    );
}
