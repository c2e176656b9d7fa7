//! The `weft` binary as users run it: exit codes, output lines, files, directories, stdin.
#![allow(clippy::unwrap_used)] // a failed set-up step should stop the test

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: reviews\nspec:\n  ports:\n  - port: 9080\n    name: http\n";

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("weft-cli-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn write(&self, file: &str, text: &str) -> PathBuf {
        let path = self.0.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn weft(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("weft runs");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn valid_config_exits_zero() {
    let dir = TempDir::new("valid");
    dir.write("a/svc.yaml", SERVICE);
    dir.write(
        "b.json",
        r#"{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "foo"}}"#,
    );
    let out = weft(&["validate", "-f", path(&dir.0)], None);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(stdout(&out), "ok: 2 valid objects in 2 files\n");
}

#[test]
fn invalid_config_exits_one_with_a_line_per_problem() {
    let dir = TempDir::new("invalid");
    let bad = dir.write(
        "bad.yaml",
        &format!(
            "{}---\n{}",
            SERVICE.replace("9080", "0"),
            SERVICE.replace("name: http", "nam: http")
        ),
    );
    let out = weft(&["validate", path(&bad)], None);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    let file = path(&bad);
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(
        lines[0],
        format!(
            "{file}:7: error: Service default/reviews: spec.ports[0].port: port number 0 must be in 1-65535"
        )
    );
    assert!(
        lines[1].starts_with(&format!(
            "{file}:17: warning: Service default/reviews: spec.ports[0].nam: unknown field \"nam\""
        )),
        "{text}"
    );
    assert_eq!(lines[2], "1 error, 1 warning (1 valid object in 1 file)");
}

#[test]
fn strict_makes_unknown_fields_errors() {
    let out = weft(
        &["validate", "--strict", "-f", "-"],
        Some(&SERVICE.replace("name: http", "nam: http")),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).starts_with(
            "<stdin>:8: error: Service default/reviews: spec.ports[0].nam: unknown field"
        ),
        "{}",
        stdout(&out)
    );
}

#[test]
fn namespace_flag_sets_the_default_namespace() {
    let out = weft(&["validate", "-n", "Bad_NS", "-f", "-"], Some(SERVICE));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("Service Bad_NS/reviews: metadata.namespace: invalid namespace"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn missing_input_is_a_usage_error() {
    let out = weft(&["validate"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no input"));
    let out = weft(&["validate", "-f", "/nonexistent/x.yaml"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).starts_with("/nonexistent/x.yaml: error: cannot read"),
        "{}",
        stdout(&out)
    );
}
