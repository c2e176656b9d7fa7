//! Outlier detection end to end: a `weft proxy` gateway in front of two backends, one of
//! them failing; the DestinationRule's `outlierDetection` ejects it (it gets no traffic,
//! `/clusters` flags it, `/stats` counts it), brings it back after its ejection time,
//! answers 503 `UH` when every endpoint is out, and panics (uses them all) under
//! `minHealthPercent`.
#![allow(clippy::unwrap_used)] // a failed set-up step should stop the test

#[allow(dead_code)] // shared with the other test binaries; not every helper is used here
mod support;

use std::time::{Duration, Instant};

use support::scripted::{Act, Scripted};
use support::{DEADLINE, Gateway, TempDir, curl_raw, eventually, free_port};

const HOST: &str = "pool.default.svc.cluster.local";
const CLUSTER: &str = "outbound|9080||pool.default.svc.cluster.local";

/// Writes a gateway routing every request to the `pool` service, whose endpoints are
/// `backends`, balanced round robin (so they alternate) with `outlier` as the
/// DestinationRule's `outlierDetection` (indented six), and starts the proxy.
fn gateway(name: &str, backends: &[&Scripted], outlier: &str) -> (TempDir, Gateway) {
    let dir = TempDir::new(name);
    let port = free_port();
    dir.write(
        "gateway.yaml",
        &support::config::http_gateway("gw", port, &["*"]),
    );
    let endpoints: String = backends
        .iter()
        .map(|b| {
            format!(
                "  - address: 127.0.0.1\n    ports:\n      http: {}\n",
                b.port
            )
        })
        .collect();
    dir.write(
        "pool.yaml",
        &format!(
            "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: pool
spec:
  hosts:
  - {HOST}
  location: MESH_INTERNAL
  ports:
  - number: 9080
    name: http
    protocol: HTTP
  resolution: STATIC
  endpoints:
{endpoints}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: pool
spec:
  hosts:
  - \"*\"
  gateways:
  - gw
  http:
  - route:
    - destination:
        host: pool
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: pool
spec:
  host: pool
  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBIN
    outlierDetection:
{outlier}"
        ),
    );
    let gw = Gateway::start(&dir, port);
    (dir, gw)
}

/// The health flags `/clusters` shows for `backend`'s endpoint.
fn flags(gw: &Gateway, backend: &Scripted) -> String {
    let endpoint = format!("{CLUSTER}::127.0.0.1:{}::health_flags::", backend.port);
    let text = curl_raw(&[&gw.admin_url("/clusters")]);
    text.lines()
        .find_map(|l| l.strip_prefix(&endpoint))
        .unwrap_or_else(|| panic!("no line for {endpoint} in /clusters:\n{text}"))
        .to_string()
}

const EJECTED: &str = "/failed_outlier_check";

/// The cluster's `outlier_detection.<stat>` on `/stats`.
fn stat(gw: &Gateway, stat: &str) -> u64 {
    let name = format!("cluster.{CLUSTER}.outlier_detection.{stat}: ");
    let text = curl_raw(&[&gw.admin_url("/stats")]);
    text.lines()
        .find_map(|l| l.strip_prefix(&name))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /stats:\n{text}"))
}

/// Sends requests until every one of `backends` is ejected.
fn until_ejected(gw: &Gateway, backends: &[&Scripted]) {
    eventually("the failing endpoints to be ejected", DEADLINE, || {
        gw.get("/", &[]);
        backends
            .iter()
            .all(|b| flags(gw, b) == EJECTED)
            .then_some(())
    });
}

#[test]
fn a_failing_endpoint_is_ejected_then_returns_after_its_ejection_time() {
    const BASE: Duration = Duration::from_secs(2);
    let good = Scripted::start("good", |_| Act::Status(200));
    let bad = Scripted::start("bad", |_| Act::Status(500));
    let (_dir, gw) = gateway(
        "ejects",
        &[&good, &bad],
        "      consecutive5xxErrors: 3\n      interval: 1s\n      baseEjectionTime: 2s\n      maxEjectionPercent: 100\n",
    );
    assert_eq!(flags(&gw, &bad), "healthy");
    // Round robin alternates: the third 500 in a row ejects it.
    let ejected_by = eventually("the failing endpoint to be ejected", DEADLINE, || {
        let sent = Instant::now();
        gw.get("/", &[]);
        (flags(&gw, &bad) == EJECTED).then_some(sent)
    });
    assert_eq!(
        bad.count(),
        3,
        "ejected after exactly consecutive5xxErrors failures"
    );
    assert_eq!(flags(&gw, &good), "healthy");
    assert_eq!(stat(&gw, "ejections_active"), 1);
    assert_eq!(stat(&gw, "ejections_enforced_total"), 1);
    assert_eq!(stat(&gw, "ejections_enforced_consecutive_5xx"), 1);
    assert_eq!(stat(&gw, "ejections_detected_consecutive_5xx"), 1);
    assert_eq!(stat(&gw, "ejections_total"), 1);
    assert_eq!(stat(&gw, "ejections_overflow"), 0);
    // While it is out every request goes to the good endpoint. Requests stop well
    // before its ejection time could be up.
    let mut sent = 0;
    while ejected_by.elapsed() < BASE - Duration::from_millis(600) {
        let reply = gw.get("/", &[]);
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.echo().backend(), "good");
        sent += 1;
    }
    assert!(
        sent >= 5,
        "only {sent} requests in the ejection window: too slow a machine?"
    );
    assert_eq!(bad.count(), 3, "an ejected endpoint got traffic");
    // Its time up, it is back in the rotation.
    eventually("the endpoint to return to service", DEADLINE, || {
        (flags(&gw, &bad) == "healthy").then_some(())
    });
    assert!(ejected_by.elapsed() >= BASE - Duration::from_millis(100));
    assert_eq!(stat(&gw, "ejections_active"), 0);
    eventually("the endpoint to get traffic again", DEADLINE, || {
        gw.get("/", &[]);
        (bad.count() > 3).then_some(())
    });
}

#[test]
fn with_every_endpoint_ejected_requests_get_503_no_healthy_upstream() {
    let a = Scripted::start("a", |_| Act::Status(500));
    let b = Scripted::start("b", |_| Act::Status(500));
    let (_dir, gw) = gateway(
        "all-ejected",
        &[&a, &b],
        "      consecutive5xxErrors: 1\n      baseEjectionTime: 60s\n      maxEjectionPercent: 100\n",
    );
    until_ejected(&gw, &[&a, &b]);
    let before = (a.count(), b.count());
    assert_eq!(before, (1, 1));
    assert_eq!(stat(&gw, "ejections_active"), 2);
    for _ in 0..3 {
        let reply = gw.get("/", &[]);
        assert_eq!(reply.status, 503, "{reply:?}");
        assert_eq!(reply.body, "no healthy upstream");
        let reason = reply.header("x-weft-reason").unwrap_or("");
        assert!(reason.starts_with("UH"), "{reply:?}");
    }
    assert_eq!((a.count(), b.count()), before);
}

#[test]
fn below_min_health_percent_the_balancer_panics_and_uses_ejected_endpoints() {
    let a = Scripted::start("a", |_| Act::Status(500));
    let b = Scripted::start("b", |_| Act::Status(500));
    let (_dir, gw) = gateway(
        "panic",
        &[&a, &b],
        "      consecutive5xxErrors: 1\n      baseEjectionTime: 60s\n      maxEjectionPercent: 100\n      minHealthPercent: 50\n",
    );
    until_ejected(&gw, &[&a, &b]);
    let before = a.count() + b.count();
    // 0% healthy is below 50%: requests go to the ejected endpoints anyway.
    for _ in 0..4 {
        let reply = gw.get("/", &[]);
        assert_eq!(reply.status, 500, "{reply:?}");
    }
    assert_eq!(a.count() + b.count(), before + 4);
    assert!(
        a.count() > 1 && b.count() > 1,
        "round robin over both in panic"
    );
    assert_eq!(flags(&gw, &a), EJECTED);
}

#[test]
fn the_seeds_consecutive_errors_ejects_on_gateway_errors() {
    // The seed's circuit-breaker rule: the deprecated field counts 502/503/504.
    let good = Scripted::start("good", |_| Act::Status(200));
    let bad = Scripted::start("bad", |_| Act::Status(503));
    let (_dir, gw) = gateway(
        "consecutive-errors",
        &[&good, &bad],
        "      consecutiveErrors: 1\n      interval: 1s\n      baseEjectionTime: 3m\n      maxEjectionPercent: 100\n",
    );
    until_ejected(&gw, &[&bad]);
    assert_eq!(bad.count(), 1);
    assert_eq!(
        stat(&gw, "ejections_enforced_consecutive_gateway_failure"),
        1
    );
    assert_eq!(stat(&gw, "ejections_enforced_consecutive_5xx"), 0);
    for _ in 0..4 {
        let reply = gw.get("/", &[]);
        assert_eq!(reply.echo().backend(), "good");
    }
    assert_eq!(bad.count(), 1);
}
