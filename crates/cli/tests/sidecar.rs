//! `weft proxy --mode sidecar` end to end, as Istio runs it: workloads in their own
//! network namespaces with Istio's iptables capture rules, the sidecar as UID 1337 beside
//! each, real apps and curl. Needs root, iproute2 and iptables (it fails, naming the
//! package, when one is missing).
#![allow(clippy::unwrap_used)] // a failed set-up step should stop the test

#[path = "support/netns.rs"]
#[allow(dead_code)] // shared by the capture test files; not every helper is used in each
mod netns;
#[allow(dead_code)] // shared with the gateway tests; not every helper is used here
mod support;

use netns::{App, Lab, Pod, greet, ip, ok, vip_of};
use support::{DEADLINE, eventually};

/// The test binary doubles as the apps and the sidecar launcher that the lab runs inside
/// namespaces; run normally, this returns at once.
#[test]
#[ignore = "not a test: the helper processes the capture tests start inside namespaces"]
fn netns_helper() {
    netns::helper_main();
}

/// `reviews` as Istio's bookinfo has it, meshed the VM way: a ServiceEntry without
/// addresses (so the sidecar auto-allocates its VIP), a WorkloadEntry per version, a
/// subset per version, and a VirtualService sending `end-user: jason` to v2, the rest
/// to v1.
const REVIEWS: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: reviews
spec:
  hosts:
  - reviews.default.svc.cluster.local
  location: MESH_INTERNAL
  ports:
  - number: 9080
    name: http
    protocol: HTTP
  resolution: STATIC
  workloadSelector:
    labels:
      app: reviews
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: reviews-v1
spec:
  address: 10.250.0.11
  labels:
    app: reviews
    version: v1
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: reviews-v2
spec:
  address: 10.250.0.12
  labels:
    app: reviews
    version: v2
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
  subsets:
  - name: v1
    labels:
      version: v1
  - name: v2
    labels:
      version: v2
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - match:
    - headers:
        end-user:
          exact: jason
    route:
    - destination:
        host: reviews
        subset: v2
  - route:
    - destination:
        host: reviews
        subset: v1
";

/// A client pod and the two reviews pods, each with capture and a sidecar; the
/// client's /etc/hosts names reviews by the VIP its sidecar allocated.
fn bookinfo() -> (Lab, Pod, Pod) {
    let mut lab = Lab::new();
    lab.write_config("reviews.yaml", REVIEWS);
    let client = lab.pod("sleep", 10);
    let v1 = lab.pod("reviews-v1", 11);
    let v2 = lab.pod("reviews-v2", 12);
    lab.app(&v1, App::Echo, "reviews-v1", &[9080]);
    lab.app(&v2, App::Echo, "reviews-v2", &[9080]);
    for (pod, labels) in [
        (&client, "app=sleep"),
        (&v1, "app=reviews,version=v1"),
        (&v2, "app=reviews,version=v2"),
    ] {
        lab.capture(pod);
        lab.sidecar(pod, &["--labels", labels]);
    }
    let vip = vip_of(&lab, &client, "reviews.default.svc.cluster.local");
    assert!(
        vip.starts_with("240.240."),
        "auto-allocated VIPs come from 240.240.0.0/16, got {vip}"
    );
    lab.hosts(
        &client,
        &[
            ("reviews", vip.clone()),
            ("reviews.default", vip.clone()),
            ("reviews.default.svc.cluster.local", vip),
        ],
    );
    (lab, client, v2)
}

#[test]
fn captured_request_is_routed_by_virtual_service_and_delivered_inbound() {
    let (lab, client, _) = bookinfo();

    let jason = ok(lab.curl(&client, &["-H", "end-user: jason", "http://reviews:9080/"]));
    let echo = jason.echo();
    assert_eq!(
        echo.backend(),
        "reviews-v2",
        "the header match routes to subset v2"
    );
    assert_eq!(
        echo.0["local"], "127.0.0.1:9080",
        "reviews-v2's own sidecar captured the request inbound and delivered it on 127.0.0.1"
    );
    assert_eq!(echo.header("host"), Some("reviews:9080"));
    assert!(echo.header("x-request-id").is_some(), "{:?}", echo.0);
    assert!(
        jason.header("x-envoy-upstream-service-time").is_some(),
        "the client's sidecar routed it: {jason:?}"
    );

    let anyone = ok(lab.curl(&client, &["http://reviews:9080/"]));
    assert_eq!(
        anyone.echo().backend(),
        "reviews-v1",
        "everyone else gets v1"
    );

    // Istio's outbound domains: the FQDN (with or without the port) names it too.
    for url in [
        "http://reviews.default.svc.cluster.local:9080/",
        "http://reviews.default:9080/",
    ] {
        let reply = ok(lab.curl(&client, &["-H", "end-user: jason", url]));
        assert_eq!(reply.echo().backend(), "reviews-v2", "{url}");
    }
}

/// The seeds' fault walkthrough through sidecars: the caller's sidecar aborts jason's
/// requests (its outbound route carries the fault), everyone else reaches v1.
#[test]
fn a_fault_for_jason_is_injected_by_the_callers_sidecar_only_for_jason() {
    let (lab, client, _) = bookinfo();
    let v2_route = "    route:\n    - destination:\n        host: reviews\n        subset: v2\n";
    let fault = "    fault:\n      abort:\n        httpStatus: 500\n        percentage:\n          value: 100\n";
    let faulty = REVIEWS.replace(v2_route, &format!("{fault}{v2_route}"));
    assert_ne!(faulty, REVIEWS);
    lab.write_config("reviews.yaml", &faulty);
    let jason = eventually("jason's requests to be aborted", DEADLINE, || {
        lab.curl(&client, &["-H", "end-user: jason", "http://reviews:9080/"])
            .ok()
            .filter(|r| r.status == 500)
    });
    assert_eq!(jason.body, "fault filter abort");
    let reason = jason.header("x-weft-reason").unwrap_or_default();
    assert!(reason.starts_with("FI: "), "{reason}");
    let other = ok(lab.curl(&client, &["http://reviews:9080/"]));
    assert_eq!(other.status, 200);
    assert_eq!(other.echo().backend(), "reviews-v1");
}

#[test]
fn the_proxys_own_connections_are_not_captured_again() {
    let (lab, client, v2) = bookinfo();
    let redirected = "-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001";
    let inbound = "-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006";
    let exempt = "-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN";
    let before = (
        lab.nat_count(&client, redirected),
        lab.nat_count(&client, exempt),
        lab.nat_count(&v2, inbound),
        lab.nat_count(&v2, exempt),
    );

    ok(lab.curl(&client, &["-H", "end-user: jason", "http://reviews:9080/"]));

    assert_eq!(
        lab.nat_count(&client, redirected) - before.0,
        1,
        "only curl's connection is redirected to 15001; the sidecar's own one to reviews-v2 is not (no loop)"
    );
    assert!(
        lab.nat_count(&client, exempt) > before.1,
        "the sidecar's upstream connection left as UID 1337"
    );
    assert_eq!(
        lab.nat_count(&v2, inbound) - before.2,
        1,
        "one inbound capture"
    );
    assert!(
        lab.nat_count(&v2, exempt) > before.3,
        "the server sidecar's connection to the app is exempt"
    );
}

/// A pod outside the mesh, no sidecar: an HTTP echo on 8080 (a port no service of the
/// mesh uses) and on 9080 (reviews' port, which has an HTTP route table), a greeter on
/// 2525.
fn external(lab: &mut Lab) -> Pod {
    let pod = lab.pod("external", 20);
    lab.app(&pod, App::Echo, "external", &[8080, 9080]);
    lab.app(&pod, App::Greeter, "external", &[2525]);
    pod
}

const SIDECAR_POLICY: &str = "apiVersion: networking.istio.io/v1
kind: Sidecar
metadata:
  name: default
spec:
  outboundTrafficPolicy:
    mode: MODE
";

#[test]
fn registry_only_refuses_destinations_outside_the_registry() {
    let mut lab = Lab::new();
    lab.write_config("reviews.yaml", REVIEWS);
    let outside = external(&mut lab);
    let client = lab.pod("sleep", 10);
    lab.capture(&client);
    lab.sidecar(
        &client,
        &[
            "--labels",
            "app=sleep",
            "--outbound-policy",
            "REGISTRY_ONLY",
        ],
    );
    let url = format!("http://{}:8080/", outside.ip);

    for url in [url.clone(), format!("http://{}:9080/", outside.ip)] {
        let refused = lab.curl(&client, &[&url]).unwrap();
        assert_eq!(refused.status, 502, "{url}: {refused:?}");
        let reason = refused.header("x-weft-reason").unwrap_or("");
        assert!(reason.starts_with("NR"), "{url}: {refused:?}");
    }
    let (code, out) = greet(&lab, &client, &outside.ip.to_string(), 2525);
    assert_eq!(
        (code, out.as_str()),
        (1, ""),
        "opaque TCP outside the registry is closed, not passed through"
    );

    // A Sidecar resource in the workload's namespace overrides the mesh's policy.
    lab.write_config("sidecar.yaml", &SIDECAR_POLICY.replace("MODE", "ALLOW_ANY"));
    let passed = eventually("the Sidecar's ALLOW_ANY to apply", DEADLINE, || {
        lab.curl(&client, &[&url]).ok().filter(|r| r.status == 200)
    });
    assert_eq!(passed.echo().backend(), "external");
}

#[test]
fn allow_any_passes_unknown_destinations_through() {
    let mut lab = Lab::new();
    lab.write_config("reviews.yaml", REVIEWS);
    let outside = external(&mut lab);
    let client = lab.pod("sleep", 10);
    lab.capture(&client);
    lab.sidecar(&client, &["--labels", "app=sleep"]);
    let redirected = "-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001";
    let before = lab.nat_count(&client, redirected);
    let url = format!("http://{}:8080/", outside.ip);

    let reply = ok(lab.curl(&client, &[&url]));
    assert_eq!(reply.echo().backend(), "external");
    assert_eq!(
        reply.echo().0["peer"]
            .as_str()
            .map(|p| p.starts_with(&ip(10).to_string())),
        Some(true)
    );
    assert_eq!(
        reply.echo().header("x-request-id"),
        None,
        "no route table on 8080: the bytes pass through untouched, as Istio's PassthroughCluster"
    );
    // On a port with a route table the request is parsed; an unknown Host passes through
    // to the original destination as HTTP.
    let parsed = ok(lab.curl(&client, &[&format!("http://{}:9080/", outside.ip)]));
    assert_eq!(parsed.echo().backend(), "external");
    assert!(parsed.echo().header("x-request-id").is_some(), "{parsed:?}");
    let (code, out) = greet(&lab, &client, &outside.ip.to_string(), 2525);
    assert_eq!(
        (code, out.as_str()),
        (0, "HELLO external 2525\nECHO ping\n")
    );
    assert_eq!(
        lab.nat_count(&client, redirected) - before,
        3,
        "every connection went through the sidecar"
    );

    // A Sidecar selecting this workload can narrow the policy to REGISTRY_ONLY.
    let selected = SIDECAR_POLICY.replace("MODE", "REGISTRY_ONLY").replace(
        "spec:\n",
        "spec:\n  workloadSelector:\n    labels:\n      app: sleep\n",
    );
    lab.write_config("sidecar.yaml", &selected);
    eventually("the Sidecar's REGISTRY_ONLY to apply", DEADLINE, || {
        lab.curl(&client, &[&url]).ok().filter(|r| r.status == 502)
    });
}

#[test]
fn server_first_protocol_through_capture_is_not_stalled() {
    let mut lab = Lab::new();
    // No protocol and a name that says none: both sidecars sniff, and must give up
    // waiting for the client's first bytes, since the server speaks first.
    lab.write_config(
        "mysql.yaml",
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: mysql
spec:
  hosts:
  - mysql.default.svc.cluster.local
  location: MESH_INTERNAL
  ports:
  - number: 3306
    name: db
  resolution: STATIC
  workloadSelector:
    labels:
      app: mysql
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: mysql
spec:
  address: 10.250.0.13
  labels:
    app: mysql
",
    );
    let client = lab.pod("sleep", 10);
    let server = lab.pod("mysql", 13);
    lab.app(&server, App::Greeter, "mysql", &[3306]);
    for (pod, labels) in [(&client, "app=sleep"), (&server, "app=mysql")] {
        lab.capture(pod);
        lab.sidecar(pod, &["--labels", labels]);
    }
    let vip = vip_of(&lab, &client, "mysql.default.svc.cluster.local");
    lab.hosts(&client, &[("mysql", vip)]);

    let (code, out) = greet(&lab, &client, "mysql", 3306);
    assert_eq!((code, out.as_str()), (0, "HELLO mysql 3306\nECHO ping\n"));
}

#[test]
fn the_app_sees_the_port_the_client_dialled() {
    let mut lab = Lab::new();
    // Explicit `addresses` (no auto-allocation); port 80 is served by the app's 9080;
    // port 9092 declares no protocol, so both sidecars sniff it (and find HTTP).
    lab.write_config(
        "details.yaml",
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: details
spec:
  hosts:
  - details.default.svc.cluster.local
  addresses:
  - 10.250.1.80
  location: MESH_INTERNAL
  ports:
  - number: 80
    name: http
    protocol: HTTP
    targetPort: 9080
  - number: 9091
    name: http-admin
  - number: 9092
    name: web
  resolution: STATIC
  endpoints:
  - address: 10.250.0.14
",
    );
    let client = lab.pod("sleep", 10);
    let server = lab.pod("details", 14);
    lab.app(&server, App::Echo, "details", &[9080, 9091, 9092]);
    for (pod, labels) in [(&client, "app=sleep"), (&server, "app=details")] {
        lab.capture(pod);
        lab.sidecar(pod, &["--labels", labels]);
    }
    lab.hosts(&client, &[("details", "10.250.1.80".into())]);

    for (url, local) in [
        ("http://details/", "127.0.0.1:9080"),
        ("http://details:9091/", "127.0.0.1:9091"),
        ("http://details:9092/", "127.0.0.1:9092"),
    ] {
        let reply = ok(lab.curl(&client, &[url]));
        assert_eq!(reply.echo().0["local"], local, "{url}: {reply:?}");
        assert!(
            reply.header("x-envoy-upstream-service-time").is_some(),
            "{url} was routed as HTTP, not relayed as bytes: {reply:?}"
        );
    }
}
