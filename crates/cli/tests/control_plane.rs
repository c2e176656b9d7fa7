//! The real `weft control-plane` driven by the real `weft apply`, `weft get` and `weft
//! delete` (and curl for the raw API and metrics): kubectl's output, validation at the
//! edge, the token, hand edits, restarts and shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed set-up step should stop the test

#[allow(dead_code)] // this file uses only part of the shared support
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;
use support::control_plane::{ControlPlane, weft_at};
use support::{DEADLINE, curl, eventually, free_port};

/// A state directory removed when dropped.
struct StateDir(PathBuf);

impl StateDir {
    fn new(name: &str) -> StateDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("weft-cp-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        StateDir(dir)
    }

    /// A path beside the state (not in it), removed with it.
    fn beside(&self, name: &str) -> PathBuf {
        self.0.with_file_name(format!(
            "{}-{name}",
            self.0.file_name().unwrap().to_string_lossy()
        ))
    }

    /// A file beside the state, for inputs to `weft apply`.
    fn input(&self, name: &str, text: &str) -> PathBuf {
        let path = self.beside(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        let prefix = format!("{}-", self.0.file_name().unwrap().to_string_lossy());
        for entry in std::fs::read_dir(self.0.parent().unwrap())
            .into_iter()
            .flatten()
            .flatten()
        {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// A `weft control-plane` with its state in `state` (polling its config directory every
/// 100 ms, for the hand-edit test), its log beside the state.
fn start(state: &StateDir) -> ControlPlane {
    ControlPlane::launch(
        state.0.clone(),
        state.beside("control-plane.log"),
        format!("127.0.0.1:{}", free_port()),
        "127.0.0.1:0".into(),
        &["--watch-interval", "100ms"],
    )
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a zero exit and returns standard output.
fn ok(o: Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/bookinfo")
}

const VS: &str = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: reviews\nspec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews, subset: v1}\n";

#[test]
fn bookinfo_applies_and_reads_back_like_kubectl() {
    let state = StateDir::new("bookinfo");
    let cp = start(&state);
    let dir = examples();
    let out = ok(cp.weft(&["apply", "-f", dir.to_str().unwrap()], ""));
    assert!(
        out.contains("virtualservice.networking.istio.io/bookinfo created\n"),
        "{out}"
    );
    assert!(
        out.contains("gateway.networking.istio.io/bookinfo-gateway created\n"),
        "{out}"
    );
    assert!(
        out.contains("destinationrule.networking.istio.io/reviews created\n"),
        "{out}"
    );
    assert!(out.contains("service/productpage created\n"), "{out}");
    for line in out.lines() {
        let (_, outcome) = line.rsplit_once(' ').unwrap();
        assert!(["created", "configured"].contains(&outcome), "{line}");
    }
    let again = ok(cp.weft(
        &[
            "apply",
            "-f",
            dir.join("destination-rule-all.yaml").to_str().unwrap(),
        ],
        "",
    ));
    assert_eq!(
        again.lines().filter(|l| l.ends_with(" unchanged")).count(),
        4,
        "{again}"
    );

    let table = ok(cp.weft(&["get", "vs"], ""));
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "GATEWAYS", "HOSTS", "AGE"], "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("bookinfo ") && l.contains("[\"bookinfo-gateway\"]")),
        "{table}"
    );
    let drs = ok(cp.weft(&["get", "destinationrules", "-A"], ""));
    assert!(drs.starts_with("NAMESPACE   NAME"), "{drs}");
    assert_eq!(drs.lines().count(), 5, "{drs}");

    // get -o yaml gives the object with its metadata and status; applied back, unchanged.
    let yaml = ok(cp.weft(&["get", "virtualservice", "reviews", "-o", "yaml"], ""));
    for field in [
        "uid: ",
        "resourceVersion: ",
        "generation: ",
        "creationTimestamp: ",
        "status:",
        "type: Accepted",
    ] {
        assert!(yaml.contains(field), "no {field:?} in:\n{yaml}");
    }
    let back = ok(cp.weft(&["apply", "-f", "-"], &yaml));
    assert_eq!(
        back,
        "virtualservice.networking.istio.io/reviews unchanged\n"
    );
    let json: Value =
        serde_json::from_str(&ok(cp.weft(&["get", "vs", "reviews", "-o", "json"], ""))).unwrap();
    assert_eq!(json["metadata"]["name"], "reviews");

    let missing = cp.weft(&["get", "vs", "nope"], "");
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(
        stderr(&missing),
        "Error from server (NotFound): virtualservices.networking.istio.io \"nope\" not found\n"
    );

    let metrics = curl(&[&cp.url("/metrics")]);
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .body
            .contains("weft_config_objects{kind=\"VirtualService\"} 5"),
        "{}",
        metrics.body
    );
    assert!(
        metrics
            .body
            .contains("weft_config_objects{kind=\"DestinationRule\"} 4"),
        "{}",
        metrics.body
    );

    let deleted = ok(cp.weft(&["delete", "vs", "reviews"], ""));
    assert_eq!(
        deleted,
        "virtualservice.networking.istio.io \"reviews\" deleted\n"
    );
    assert_eq!(
        cp.weft(&["get", "vs", "reviews"], "").status.code(),
        Some(1)
    );
    let by_file = ok(cp.weft(
        &[
            "delete",
            "-f",
            dir.join("destination-rule-all.yaml").to_str().unwrap(),
        ],
        "",
    ));
    assert_eq!(by_file.lines().count(), 4, "{by_file}");
    let gone = cp.weft(&["delete", "dr", "reviews"], "");
    assert_eq!(gone.status.code(), Some(1));
    assert!(stderr(&gone).starts_with(
        "Error from server (NotFound): destinationrules.networking.istio.io \"reviews\" not found"
    ));
    let metrics = curl(&[&cp.url("/metrics")]);
    assert!(
        metrics
            .body
            .contains("weft_config_objects{kind=\"VirtualService\"} 4"),
        "{}",
        metrics.body
    );
    assert!(
        metrics
            .body
            .contains("weft_config_objects{kind=\"DestinationRule\"} 0"),
        "{}",
        metrics.body
    );
}

#[test]
fn an_invalid_apply_is_refused_with_validates_message_and_changes_nothing() {
    let state = StateDir::new("invalid");
    let cp = start(&state);
    ok(cp.weft(&["apply", "-f", "-"], VS));
    let before = ok(cp.weft(&["get", "vs", "reviews", "-o", "json"], ""));

    let bad = format!(
        "{}---\n{}",
        VS.replace("subset: v1", "subset: v2"),
        VS.replace("name: reviews", "name: ratings")
            .replace("subset: v1}", "subset: v1, port: {number: 0}}")
    );
    let file = state.input("bad.yaml", &bad);
    let file = file.to_str().unwrap();
    let out = cp.weft(&["apply", "-f", file], "");
    assert_eq!(out.status.code(), Some(1));
    let validate = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["validate", file])
        .output()
        .unwrap();
    let lines: Vec<String> = stdout(&validate).lines().map(str::to_string).collect();
    let (summary, problems) = lines.split_last().unwrap();
    assert!(summary.starts_with("1 error"), "{summary}");
    for line in problems {
        assert!(
            stderr(&out).contains(line.as_str()),
            "{line:?} not in:\n{}",
            stderr(&out)
        );
    }
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    assert_eq!(
        ok(cp.weft(&["get", "vs", "reviews", "-o", "json"], "")),
        before,
        "nothing changed"
    );
    assert_eq!(
        cp.weft(&["get", "vs", "ratings"], "").status.code(),
        Some(1)
    );
}

#[test]
fn the_api_needs_the_token_but_metrics_do_not() {
    let state = StateDir::new("token");
    let cp = start(&state);
    let list = cp.url("/apis/networking.istio.io/v1/namespaces/default/virtualservices");
    let none = curl(&[&list]);
    assert_eq!(none.status, 401, "{none:?}");
    let wrong = curl(&["-H", "Authorization: Bearer nope", &list]);
    assert_eq!(wrong.status, 401);
    let bearer = format!("Authorization: Bearer {}", cp.token());
    let right = curl(&["-H", &bearer, &list]);
    assert_eq!(right.status, 200, "{right:?}");
    let body: Value = serde_json::from_str(&right.body).unwrap();
    assert_eq!(body["kind"], "VirtualServiceList");
    assert_eq!(curl(&[&cp.url("/metrics")]).status, 200);

    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(state.0.join("api-token"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    // The CLI with another state directory's token is refused, and says why.
    let other = StateDir::new("token-other");
    std::fs::write(other.0.join("api-token"), "not-the-token\n").unwrap();
    let out = weft_at(&cp.api, &other.0, &["get", "vs"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("401"), "{}", stderr(&out));
}

#[test]
fn a_control_plane_that_is_not_running_is_named() {
    let state = StateDir::new("absent");
    let addr = format!("127.0.0.1:{}", free_port());
    let out = weft_at(&addr, &state.0, &["get", "vs"], "");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&addr) && err.contains("weft control-plane"),
        "{err}"
    );
}

#[test]
fn hand_edits_restarts_and_sigterm() {
    let state = StateDir::new("hand");
    let mut cp = start(&state);
    // A file written by hand into the store's directory is an apply.
    let file = state.0.join("config/mine.yaml");
    std::fs::write(&file, VS).unwrap();
    let json = eventually("the hand-written object to be served", DEADLINE, || {
        let out = cp.weft(&["get", "vs", "reviews", "-o", "json"], "");
        (out.status.code() == Some(0))
            .then(|| serde_json::from_str::<Value>(&stdout(&out)).unwrap())
    });
    assert_eq!(json["metadata"]["generation"], 1);
    std::fs::write(&file, VS.replace("subset: v1", "subset: v2")).unwrap();
    eventually("the edit to be picked up", DEADLINE, || {
        let out = cp.weft(&["get", "vs", "reviews", "-o", "json"], "");
        let v: Value = serde_json::from_str(&stdout(&out)).ok()?;
        (v["metadata"]["generation"] == 2).then_some(())
    });
    let uid = json["metadata"]["uid"].clone();

    assert_eq!(cp.terminate(), Some(0), "{}", cp.log_text());
    drop(cp);
    let cp = start(&state);
    let out = ok(cp.weft(&["get", "vs", "reviews", "-o", "json"], ""));
    let after: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(after["metadata"]["uid"], uid, "the uid survives a restart");
    assert_eq!(after["metadata"]["generation"], 2);
    let next = ok(cp.weft(
        &["apply", "-f", "-"],
        &VS.replace("name: reviews", "name: other"),
    ));
    assert_eq!(next, "virtualservice.networking.istio.io/other created\n");
    let other: Value =
        serde_json::from_str(&ok(cp.weft(&["get", "vs", "other", "-o", "json"], ""))).unwrap();
    let rv = |v: &Value| {
        v["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert!(
        rv(&other) > rv(&after),
        "the counter carries on across restarts"
    );
}

const RATINGS: &str = r#"{"name": "ratings-1", "namespace": "default", "labels": {"app": "ratings"},
  "serviceAccount": "ratings", "address": "10.0.0.7", "ports": {"http": 9080}}"#;

#[test]
fn registered_workloads_survive_a_restart() {
    let state = StateDir::new("workloads");
    let mut cp = start(&state);
    let auth = format!("Authorization: Bearer {}", cp.token());
    let call = |cp: &ControlPlane, method: &str, path: &str, body: Option<&str>| {
        let url = cp.url(path);
        let mut args = vec!["-H", &auth, "-X", method, &url];
        if let Some(body) = body {
            args.extend(["--data", body]);
        }
        curl(&args)
    };
    let list = |cp: &ControlPlane| -> Value {
        serde_json::from_str(&call(cp, "GET", "/v1/workloads", None).body).unwrap()
    };
    assert_eq!(
        call(&cp, "POST", "/v1/workloads", Some(RATINGS)).status,
        201
    );
    let reviews = RATINGS
        .replace("ratings", "reviews")
        .replace("10.0.0.7", "10.0.0.8");
    assert_eq!(
        call(&cp, "POST", "/v1/workloads", Some(&reviews)).status,
        201
    );
    // A deregistration is kept as well.
    assert_eq!(
        call(&cp, "DELETE", "/v1/workloads/default/reviews-1", None).status,
        200
    );
    let before = list(&cp);
    assert_eq!(cp.terminate(), Some(0), "{}", cp.log_text());
    drop(cp);
    let saved = state.0.join("workloads.json");
    assert!(
        saved.exists(),
        "the registrations are in the state directory"
    );
    assert!(!saved.with_extension("json.tmp").exists());

    let cp = start(&state);
    let after = list(&cp);
    assert_eq!(after, before, "the registrations survive the restart");
    let names: Vec<&str> = after["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ratings-1"]);
    assert_eq!(after["items"][0]["address"], "10.0.0.7");
    // The workload registering again when it restarts too changes nothing.
    let again = call(&cp, "POST", "/v1/workloads", Some(RATINGS));
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(list(&cp), before);
}
