//! Helpers for the unit tests of the kinds: load YAML text as a file would be loaded and
//! look at what came back.

use std::path::{Path, PathBuf};
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

/// A folder of the project's shared corpus (`shared/` beside the checkout). Panics, naming
/// the path it looked at, when the corpus is not there: a test that needs it must not pass
/// without it.
pub(crate) fn shared(rel: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared")
        .join(rel);
    assert!(
        path.exists(),
        "the shared test corpus is missing: looked for {} (check the repository out with shared/ beside it)",
        path.display()
    );
    path.to_string_lossy().into_owned()
}

/// Loading the shared Istio corpora in the kinds' tests.
pub(crate) mod corpus {
    use std::path::{Path, PathBuf};
    use std::sync::Arc;

    use crate::diag::Severity;
    use crate::load::{LoadOptions, Loaded, load_str};

    /// The security task configs copied from istio.io.
    pub(crate) fn security_tasks() -> String {
        super::shared("istio-security/tasks")
    }

    /// Istio's samples.
    pub(crate) fn samples() -> String {
        super::shared("istio-samples/samples")
    }

    fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let p = entry.path();
            if p.is_dir() {
                yaml_files(&p, out);
            } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                out.push(p);
            }
        }
    }

    /// Loads every YAML file under `dir` whose name passes `keep`, expanding the
    /// `$CLIENT_IP` shell variable the docs leave in their heredocs as the shell would.
    pub(crate) fn load_dir(dir: &str, keep: impl Fn(&Path) -> bool) -> Loaded {
        let mut files = Vec::new();
        yaml_files(Path::new(dir), &mut files);
        files.sort();
        assert!(!files.is_empty(), "no YAML files under {dir}");
        let mut out = Loaded::default();
        for file in files.iter().filter(|f| keep(f)) {
            let text = std::fs::read_to_string(file).expect("corpus file is readable");
            let text = text.replace("$CLIENT_IP", "203.0.113.7");
            load_str(
                &text,
                Arc::from(file.as_path()),
                &LoadOptions::default(),
                &mut out,
            );
        }
        out
    }

    /// How many objects of `kind` loaded, and the errors and unknown-field warnings that
    /// objects of that kind got.
    pub(crate) fn check(loaded: &Loaded, kind: &str) -> (usize, Vec<String>) {
        let count = loaded
            .objects
            .iter()
            .filter(|o| o.kind.to_string() == kind)
            .count();
        let bad = loaded
            .reports
            .iter()
            .filter(|r| r.object.as_ref().is_some_and(|o| o.kind == kind))
            .filter(|r| {
                r.severity() == Severity::Error || r.diagnostic.message.starts_with("unknown field")
            })
            .map(ToString::to_string)
            .collect();
        (count, bad)
    }
}
