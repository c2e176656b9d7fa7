//! A sidecar fed by the control plane, end to end: `weft control-plane` in the lab's hub
//! namespace, two `reviews` pods that register themselves through the local API
//! (`POST /v1/workloads`), config applied with `weft apply`, and a client pod whose
//! sidecar (`--control-plane`, Istio's capture rules) routes by the VirtualService to the
//! registered workloads. Needs root, iproute2 and iptables (it fails, naming the package,
//! when one is missing).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed set-up step should stop the test

#[path = "support/netns.rs"]
#[allow(dead_code)] // shared by the capture test files; not every helper is used in each
mod netns;
#[allow(dead_code)] // shared with the gateway tests; not every helper is used here
mod support;

use netns::{App, Lab, Pod, ok, vip_of};
use support::{DEADLINE, eventually};

/// The test binary doubles as the apps the lab runs inside namespaces; run normally,
/// this returns at once.
#[test]
#[ignore = "not a test: the helper processes the capture tests start inside namespaces"]
fn netns_helper() {
    netns::helper_main();
}

/// The control plane's API and xDS ports on the hub (10.250.0.1).
const API: &str = "10.250.0.1:15014";
const XDS: &str = "10.250.0.1:15010";

/// `reviews` as a Kubernetes Service over the registered workloads, a subset per
/// version, and a VirtualService sending `end-user: jason` to v2, the rest to v1.
const REVIEWS: &str = "apiVersion: v1
kind: Service
metadata:
  name: reviews
spec:
  selector: {app: reviews}
  ports:
  - {name: http, port: 9080, targetPort: http}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - match:
    - headers:
        end-user: {exact: jason}
    route:
    - destination: {host: reviews, subset: v2}
  - route:
    - destination: {host: reviews, subset: v1}
";

/// The control plane in the hub, answering its readiness path.
fn control_plane(lab: &mut Lab) -> (Pod, String) {
    let hub = lab.hub();
    let state = lab.dir().join("cp-state").display().to_string();
    let weft = env!("CARGO_BIN_EXE_weft");
    let i = lab.spawn(
        &hub,
        "control plane",
        &[
            weft,
            "control-plane",
            "--listen",
            API,
            "--xds-listen",
            XDS,
            "--state-dir",
            &state,
        ],
    );
    eventually("the control plane to answer", DEADLINE, || {
        lab.assert_running(i);
        let reply = lab
            .curl(&hub, &[&format!("http://{API}/healthz/ready")])
            .ok()?;
        (reply.status == 200).then_some(())
    });
    (hub, state)
}

/// Registers the workload `reviews-VERSION` at `pod`'s address through the local API.
fn register(lab: &Lab, hub: &Pod, token: &str, pod: &Pod, version: &str) {
    let body = format!(
        r#"{{"name":"reviews-{version}","namespace":"default","labels":{{"app":"reviews","version":"{version}"}},"serviceAccount":"reviews","address":"{}","ports":{{"http":9080}}}}"#,
        pod.ip
    );
    let auth = format!("Authorization: Bearer {token}");
    let url = format!("http://{API}/v1/workloads");
    let reply = ok_status(lab.curl(
        hub,
        &["-X", "POST", "-H", &auth, "--data-binary", &body, &url],
    ));
    assert_eq!(reply.status, 201, "{reply:?}");
}

fn ok_status(reply: Result<support::Reply, String>) -> support::Reply {
    reply.unwrap_or_else(|e| panic!("curl failed: {e}"))
}

#[test]
fn sidecar_fed_by_the_control_plane_routes_to_self_registered_workloads() {
    let mut lab = Lab::new();
    let (hub, state) = control_plane(&mut lab);
    let token = std::fs::read_to_string(format!("{state}/api-token")).unwrap();
    let token = token.trim();

    let client = lab.pod("sleep", 10);
    let v1 = lab.pod("reviews-v1", 11);
    let v2 = lab.pod("reviews-v2", 12);
    lab.app(&v1, App::Echo, "reviews-v1", &[9080]);
    lab.app(&v2, App::Echo, "reviews-v2", &[9080]);
    register(&lab, &hub, token, &v1, "v1");
    register(&lab, &hub, token, &v2, "v2");

    let file = lab.dir().join("reviews.yaml");
    std::fs::write(&file, REVIEWS).unwrap();
    let weft = env!("CARGO_BIN_EXE_weft");
    let file = file.display().to_string();
    let out = lab.exec(
        &hub,
        &[
            weft,
            "apply",
            "-f",
            &file,
            "--control-plane",
            API,
            "--state-dir",
            &state,
        ],
    );
    assert!(
        out.status.success(),
        "weft apply: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    lab.capture(&client);
    lab.sidecar_from(
        &client,
        &["--control-plane", XDS],
        &[
            "--name",
            "sleep",
            "--namespace",
            "default",
            "--labels",
            "app=sleep",
        ],
    );
    // The sidecar has the service once its first push arrived.
    eventually("the sidecar to get reviews", DEADLINE, || {
        let dump = lab.admin_json(&client, "/config_dump");
        dump["registry"]["services"]["reviews.default.svc.cluster.local"]["endpoints"]
            .as_array()
            .filter(|e| e.len() == 2)
            .map(|_| ())
    });
    let vip = vip_of(&lab, &client, "reviews.default.svc.cluster.local");
    lab.hosts(&client, &[("reviews", vip)]);

    let jason = ok(lab.curl(&client, &["-H", "end-user: jason", "http://reviews:9080/"]));
    assert_eq!(
        jason.echo().backend(),
        "reviews-v2",
        "the header match routes to subset v2"
    );
    assert!(
        jason.header("x-envoy-upstream-service-time").is_some(),
        "the client's sidecar routed it: {jason:?}"
    );
    let anyone = ok(lab.curl(&client, &["http://reviews:9080/"]));
    assert_eq!(anyone.echo().backend(), "reviews-v1");

    // v1 deregisters: the rest of the traffic has no v1 endpoint left (503).
    let auth = format!("Authorization: Bearer {token}");
    let url = format!("http://{API}/v1/workloads/default/reviews-v1");
    let reply = ok_status(lab.curl(&hub, &["-X", "DELETE", "-H", &auth, &url]));
    assert_eq!(reply.status, 200, "{reply:?}");
    eventually("v1 to be gone from the sidecar", DEADLINE, || {
        let reply = lab.curl(&client, &["http://reviews:9080/"]).ok()?;
        (reply.status == 503).then_some(())
    });
}

#[test]
fn a_sidecar_started_while_the_control_plane_is_down_answers_at_once_and_gets_ready_with_its_config()
 {
    let mut lab = Lab::new();
    let client = lab.pod("sleep", 10);
    lab.capture(&client);
    // Nothing listens on the control plane's address yet.
    let i = lab.start_sidecar(
        &client,
        &["--control-plane", XDS],
        &["--name", "sleep", "--namespace", "default"],
    );
    eventually("the admin API to answer", DEADLINE, || {
        lab.assert_running(i);
        (lab.admin_status(&client, "/ready") == "503").then_some(())
    });
    let ready = lab.curl(&client, &["http://127.0.0.1:15021/healthz/ready"]);
    let ready = ok_status(ready);
    assert_eq!(ready.status, 503, "{ready:?}");
    assert!(ready.body.contains("no config yet"), "{ready:?}");
    let admin = ok_status(lab.curl(&client, &["http://127.0.0.1:15000/ready"]));
    assert!(admin.body.contains("PRE_INITIALIZING"), "{admin:?}");

    // The control plane comes up: the sidecar's next attempt gets its first config.
    control_plane(&mut lab);
    eventually("readiness to turn 200", DEADLINE, || {
        lab.assert_running(i);
        let reply = lab
            .curl(&client, &["http://127.0.0.1:15021/healthz/ready"])
            .ok()?;
        (reply.status == 200).then_some(())
    });
    assert_eq!(lab.admin_status(&client, "/ready"), "200");
}

#[test]
fn proxy_status_stops_quietly_when_its_reader_goes_away() {
    let mut lab = Lab::new();
    let (hub, state) = control_plane(&mut lab);
    let client = lab.pod("sleep", 10);
    lab.capture(&client);
    lab.sidecar_from(
        &client,
        &["--control-plane", XDS],
        &["--name", "sleep", "--namespace", "default"],
    );
    let weft = env!("CARGO_BIN_EXE_weft");
    let status = [
        weft,
        "proxy-status",
        "--control-plane",
        API,
        "--state-dir",
        &state,
    ];
    eventually("the sidecar to be listed", DEADLINE, || {
        let out = lab.exec(&hub, &status);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l.starts_with("sleep "))
            .then_some(())
    });
    // `weft proxy-status | head -1`, with the reader gone before the first line so that
    // every write fails with EPIPE, deterministically.
    for args in [&["proxy-status"][..], &["proxy-status", "-o", "json"][..]] {
        let mut child = std::process::Command::new("ip")
            .args(["netns", "exec", &hub.ns, weft])
            .args(args)
            .args(["--control-plane", API, "--state-dir", &state])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && !stderr.contains("panicked"),
            "weft {args:?} into a closed pipe: {} {stderr}",
            out.status
        );
    }
}
