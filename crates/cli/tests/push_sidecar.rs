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

use netns::cp::{API, ControlPlane, XDS};
use netns::{App, Lab, Pod, ok, vip_of};
use support::{DEADLINE, eventually};

/// The test binary doubles as the apps the lab runs inside namespaces; run normally,
/// this returns at once.
#[test]
#[ignore = "not a test: the helper processes the capture tests start inside namespaces"]
fn netns_helper() {
    netns::helper_main();
}

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

/// Registers the workload `reviews-VERSION` at `pod`'s address.
fn register(lab: &Lab, cp: &ControlPlane, pod: &Pod, version: &str) {
    let labels = [("app", "reviews"), ("version", version)];
    cp.register(
        lab,
        pod,
        &format!("reviews-{version}"),
        &labels,
        &[("http", 9080)],
    );
}

/// `weft proxy-config ARGS` from the hub: its table.
fn proxy_config(lab: &Lab, cp: &ControlPlane, args: &[&str]) -> String {
    let out = cp.weft(lab, &[&["proxy-config"], args].concat());
    assert!(
        out.status.success(),
        "weft proxy-config {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ok_status(reply: Result<support::Reply, String>) -> support::Reply {
    reply.unwrap_or_else(|e| panic!("curl failed: {e}"))
}

#[test]
fn sidecar_fed_by_the_control_plane_routes_to_self_registered_workloads() {
    let mut lab = Lab::new();
    let cp = lab.control_plane();

    let client = lab.pod("sleep", 10);
    let v1 = lab.pod("reviews-v1", 11);
    let v2 = lab.pod("reviews-v2", 12);
    lab.app(&v1, App::Echo, "reviews-v1", &[9080]);
    lab.app(&v2, App::Echo, "reviews-v2", &[9080]);
    register(&lab, &cp, &v1, "v1");
    register(&lab, &cp, &v2, "v2");

    cp.apply(&lab, REVIEWS);

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
    let auth = format!("Authorization: Bearer {}", cp.token);
    let url = format!("http://{API}/v1/workloads/default/reviews-v1");
    let reply = ok_status(lab.curl(&cp.hub, &["-X", "DELETE", "-H", &auth, &url]));
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
    lab.control_plane();
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
    let cp = lab.control_plane();
    let client = lab.pod("sleep", 10);
    lab.capture(&client);
    lab.sidecar_from(
        &client,
        &["--control-plane", XDS],
        &["--name", "sleep", "--admin", "0.0.0.0:15000"],
    );
    let weft = env!("CARGO_BIN_EXE_weft");
    eventually("the sidecar to be listed", DEADLINE, || {
        let out = cp.weft(&lab, &["proxy-status"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l.starts_with("sleep "))
            .then_some(())
    });
    // `weft proxy-status | head -1`, with the reader gone before the first line so that
    // every write fails with EPIPE, deterministically.
    for args in [
        &["proxy-status"][..],
        &["proxy-status", "-o", "json"][..],
        &["proxy-config", "all", "sleep"][..],
    ] {
        let mut child = std::process::Command::new("ip")
            .args(["netns", "exec", &cp.hub.ns, weft])
            .args(args)
            .args(["--control-plane", API, "--state-dir", &cp.state])
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

#[test]
fn proxy_config_lists_the_workloads_own_ports_as_inbound_clusters_and_listeners() {
    let mut lab = Lab::new();
    let cp = lab.control_plane();
    let v1 = lab.pod("reviews-v1", 11);
    lab.app(&v1, App::Echo, "reviews-v1", &[9080]);
    register(&lab, &cp, &v1, "v1");
    cp.apply(&lab, REVIEWS);
    lab.capture(&v1);
    // No --instance-ip: the sidecar finds 10.250.0.11 on the pod's eth0. Its admin API
    // listens on every address, so that the control plane reaches it there.
    lab.sidecar_from(
        &v1,
        &["--control-plane", XDS],
        &[
            "--name",
            "reviews-v1",
            "--labels",
            "app=reviews,version=v1",
            "--admin",
            "0.0.0.0:15000",
        ],
    );
    let clusters = eventually("the inbound cluster to be listed", DEADLINE, || {
        let table = proxy_config(&lab, &cp, &["clusters", "reviews-v1"]);
        table.contains("inbound").then_some(table)
    });
    let inbound: Vec<Vec<&str>> = clusters
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|cells| cells.contains(&"inbound"))
        .collect();
    // istioctl's row: no service FQDN, the port, no subset, ORIGINAL_DST.
    assert_eq!(
        inbound,
        [["9080", "-", "inbound", "ORIGINAL_DST"]],
        "{clusters}"
    );
    assert!(
        clusters.contains("reviews.default.svc.cluster.local   9080"),
        "{clusters}"
    );
    let listeners = proxy_config(&lab, &cp, &["listeners", "reviews-v1"]);
    let chain = listeners
        .lines()
        .find(|l| l.contains("Addr: *:9080"))
        .unwrap_or_else(|| panic!("no inbound chain for 9080:\n{listeners}"));
    assert!(
        chain.starts_with("0.0.0.0")
            && chain.contains("15006")
            && chain.ends_with("Cluster: inbound|9080||"),
        "{chain}"
    );
    let dump = lab.admin_json(&v1, "/config_dump");
    assert_eq!(dump["sidecar"]["addresses"][0], "10.250.0.11", "{dump}");
}
