//! Circuit breaking (DestinationRule `connectionPool`) end to end: the real `weft proxy`
//! gateway, a backend that takes a little time per request and counts the connections it
//! accepts, and a load client written here that works like fortio (`-c N`: N keep-alive
//! connections, each sending its requests one after another), as in Istio's
//! circuit-breaking task.
#![allow(clippy::unwrap_used)] // a failed set-up step should stop the test

#[allow(dead_code)] // not every helper is used here
mod support;

use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use support::config::{http_gateway, static_service};
use support::scripted::{Act, Scripted};
use support::tcp::{LineClient, TcpEcho};
use support::{DEADLINE, Gateway, TempDir, curl_raw, eventually, free_port};

/// A backend answering every request after `delay` (the seed's httpbin takes a moment:
/// concurrent requests really overlap), counting the connections it accepts.
fn slow_backend(delay: Duration) -> Scripted {
    Scripted::start("httpbin", move |_| Act::Delay(delay))
}

/// The `httpbin` service on `backend`, behind a gateway on a free port that routes every
/// request to it, with `rule` (a DestinationRule's YAML, or nothing) applied.
fn setup(name: &str, backend: &Scripted, rule: Option<&str>) -> (TempDir, Gateway) {
    setup_service(name, &static_service("httpbin", backend.port), rule)
}

/// [`setup`] with `service` (a ServiceEntry's YAML) as the `httpbin` service.
fn setup_service(name: &str, service: &str, rule: Option<&str>) -> (TempDir, Gateway) {
    let dir = TempDir::new(name);
    let port = free_port();
    dir.write("gateway.yaml", &http_gateway("gw", port, &["*"]));
    dir.write("service.yaml", service);
    dir.write(
        "vs.yaml",
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: httpbin
spec:
  hosts:
  - \"*\"
  gateways:
  - gw
  http:
  - route:
    - destination:
        host: httpbin.default.svc.cluster.local
        port:
          number: 9080
",
    );
    if let Some(rule) = rule {
        dir.write("rule.yaml", rule);
    }
    let gw = Gateway::start(&dir, port);
    (dir, gw)
}

/// A DestinationRule for `httpbin` with `pool` as its `trafficPolicy.connectionPool`
/// (indented as its fields).
fn rule(pool: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: httpbin
spec:
  host: httpbin.default.svc.cluster.local
  trafficPolicy:
    connectionPool:
{pool}"
    )
}

/// The Istio task's rule: one connection, one pending request, no keep-alive upstream.
const WALKTHROUGH: &str = "      tcp:
        maxConnections: 1
      http:
        http1MaxPendingRequests: 1
        maxRequestsPerConnection: 1
";

const CLUSTER: &str = "outbound|9080||httpbin.default.svc.cluster.local";

/// One answer the load client got.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    overloaded: Option<String>,
    reason: Option<String>,
}

/// Like `fortio load -c connections -n requests`: `connections` keep-alive connections
/// to the gateway, opened before any request is sent, each sending its share of
/// `requests` one after another. Every request must get an answer.
fn load(port: u16, connections: usize, requests: usize) -> Vec<Answer> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut senders = Vec::new();
        for _ in 0..connections {
            let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            tokio::spawn(conn);
            senders.push(sender);
        }
        let mut tasks = Vec::new();
        for (i, mut sender) in senders.into_iter().enumerate() {
            // fortio splits -n over the connections the same way.
            let share = requests / connections + usize::from(i < requests % connections);
            tasks.push(tokio::spawn(async move {
                let mut answers = Vec::new();
                for _ in 0..share {
                    answers.push(get(&mut sender, port).await);
                }
                answers
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(tokio::time::timeout(DEADLINE, t).await.unwrap().unwrap());
        }
        all
    })
}

async fn get(
    sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    port: u16,
) -> Answer {
    sender.ready().await.unwrap();
    let req = Request::get("/get")
        .header("host", format!("httpbin:{port}"))
        .body(Empty::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let answer = Answer {
        status: resp.status().as_u16(),
        overloaded: header("x-envoy-overloaded"),
        reason: header("x-weft-reason"),
    };
    resp.into_body().collect().await.unwrap();
    answer
}

/// The value of `/stats` line `cluster.<CLUSTER>.<stat>`.
fn stat(gw: &Gateway, stat: &str) -> u64 {
    let text = curl_raw(&[&gw.admin_url("/stats")]);
    let name = format!("cluster.{CLUSTER}.{stat}: ");
    text.lines()
        .find_map(|l| l.strip_prefix(&name))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /stats:\n{text}"))
}

/// Checks that every answer is a 200, or an overflow 503 marked as Envoy marks it, and
/// returns how many 503s there were.
fn count_overflows(answers: &[Answer]) -> usize {
    for a in answers {
        match a.status {
            200 => assert_eq!(a.overloaded, None, "{a:?}"),
            503 => {
                assert_eq!(a.overloaded.as_deref(), Some("true"), "{a:?}");
                assert!(
                    a.reason.as_deref().is_some_and(|r| r.starts_with("UO")),
                    "{a:?}"
                );
            }
            _ => panic!("neither 200 nor an overflow 503: {a:?}"),
        }
    }
    answers.iter().filter(|a| a.status == 503).count()
}

#[test]
fn the_fortio_walkthrough_trips_the_breaker() {
    let backend = slow_backend(Duration::from_millis(20));
    let (_dir, gw) = setup("fortio", &backend, Some(&rule(WALKTHROUGH)));
    // Tripping the circuit breaker: 2 connections, 20 requests, then 3 and 30.
    let two = load(gw.port, 2, 20);
    let three = load(gw.port, 3, 30);
    assert_eq!((two.len(), three.len()), (20, 30));
    let (two_503, three_503) = (count_overflows(&two), count_overflows(&three));
    eprintln!("-c 2: {two_503}/20 overflowed; -c 3: {three_503}/30 overflowed");
    let stats = curl_raw(&[&gw.admin_url("/stats")]);
    let pending: Vec<&str> = stats.lines().filter(|l| l.contains("pending")).collect();
    eprintln!("{}", pending.join("\n"));
    // With 3 connections, one request is in flight and one pending while the third
    // arrives: the mix the task shows.
    assert!(three_503 > 0 && three_503 < 30, "{three:?}");
    assert!(two_503 < 20, "{two:?}");
    // Every 503 was counted, as the task reads it from the proxy's stats.
    assert_eq!(
        stat(&gw, "upstream_rq_pending_overflow"),
        u64::try_from(two_503 + three_503).unwrap()
    );
    assert!(stat(&gw, "upstream_rq_pending_total") > 0);
    assert!(stat(&gw, "upstream_cx_overflow") > 0);
    // One request per upstream connection: every answered request closed its own.
    let ok = 50 - two_503 - three_503;
    assert_eq!(
        stat(&gw, "upstream_cx_max_requests"),
        u64::try_from(ok).unwrap()
    );
    eventually("the gauges to drop back", DEADLINE, || {
        let idle = stat(&gw, "upstream_cx_active") == 0
            && stat(&gw, "upstream_rq_active") == 0
            && stat(&gw, "upstream_rq_pending_active") == 0
            && stat(&gw, "circuit_breakers.default.cx_open") == 0;
        idle.then_some(())
    });
    assert_eq!(stat(&gw, "circuit_breakers.high.rq_pending_open"), 0);
}

#[test]
fn an_endpoint_without_connections_may_open_one_past_max_connections() {
    let (a, b) = (
        slow_backend(Duration::from_millis(300)),
        slow_backend(Duration::from_millis(300)),
    );
    let service = format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: httpbin
spec:
  hosts:
  - httpbin.default.svc.cluster.local
  location: MESH_INTERNAL
  ports:
  - number: 9080
    name: http
    protocol: HTTP
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports:
      http: {}
  - address: 127.0.0.1
    ports:
      http: {}
",
        a.port, b.port
    );
    // Round robin: two requests at once go to both endpoints.
    let pool =
        "      tcp:\n        maxConnections: 1\n    loadBalancer:\n      simple: ROUND_ROBIN\n";
    let (_dir, gw) = setup_service("per-endpoint", &service, Some(&rule(pool)));
    // The second endpoint's pool has no connection: as in Envoy, it opens one past the
    // cluster's limit rather than leave its request waiting for a connection that no
    // other endpoint's pool would ever give it.
    let answers = load(gw.port, 2, 2);
    assert!(answers.iter().all(|r| r.status == 200), "{answers:?}");
    assert_eq!((a.accepted(), b.accepted()), (1, 1));
    assert_eq!(stat(&gw, "upstream_cx_overflow"), 1);
    assert_eq!(stat(&gw, "upstream_rq_pending_overflow"), 0);
}

#[test]
fn http2_max_requests_caps_requests_in_flight() {
    let backend = slow_backend(Duration::from_millis(300));
    let pool = "      http:\n        http2MaxRequests: 1\n";
    let (_dir, gw) = setup("max-requests", &backend, Some(&rule(pool)));
    // Three requests at once, each on its own connection: one is in flight while the
    // others arrive.
    let answers = load(gw.port, 3, 3);
    let refused = count_overflows(&answers);
    assert!(refused > 0 && refused < 3, "{answers:?}");
    assert_eq!(
        stat(&gw, "upstream_rq_pending_overflow"),
        u64::try_from(refused).unwrap()
    );
    // No connection limit was set: no request waited for one past it.
    assert_eq!(stat(&gw, "upstream_cx_overflow"), 0);
}

#[test]
fn max_requests_per_connection_1_closes_every_upstream_connection() {
    let backend = slow_backend(Duration::ZERO);
    let pool = "      http:\n        maxRequestsPerConnection: 1\n";
    let (_dir, gw) = setup("no-keepalive", &backend, Some(&rule(pool)));
    let answers = load(gw.port, 1, 5);
    assert_eq!(count_overflows(&answers), 0);
    assert_eq!(backend.accepted(), 5, "one upstream connection per request");
    assert_eq!(stat(&gw, "upstream_cx_max_requests"), 5);
    eventually("the upstream connections to close", DEADLINE, || {
        (stat(&gw, "upstream_cx_active") == 0).then_some(())
    });

    // Without the setting, the same requests share one pooled connection.
    let other = slow_backend(Duration::ZERO);
    let (_dir, gw) = setup("keepalive", &other, None);
    assert_eq!(count_overflows(&load(gw.port, 1, 5)), 0);
    assert_eq!(other.accepted(), 1);
    assert_eq!(stat(&gw, "upstream_cx_active"), 1);
}

#[test]
fn max_concurrent_streams_opens_another_http2_connection() {
    let backend = slow_backend(Duration::from_millis(200));
    let pool = "      http:\n        h2UpgradePolicy: UPGRADE\n        maxConcurrentStreams: 1\n";
    let (_dir, gw) = setup("streams", &backend, Some(&rule(pool)));
    assert_eq!(count_overflows(&load(gw.port, 3, 3)), 0);
    assert_eq!(backend.accepted(), 3, "one stream per HTTP/2 connection");

    // Unlimited streams: requests after the first connection multiplex on it.
    let other = slow_backend(Duration::from_millis(200));
    let pool = "      http:\n        h2UpgradePolicy: UPGRADE\n";
    let (_dir, gw) = setup("one-h2", &other, Some(&rule(pool)));
    assert_eq!(count_overflows(&load(gw.port, 1, 1)), 0);
    assert_eq!(count_overflows(&load(gw.port, 3, 3)), 0);
    assert_eq!(other.accepted(), 1);
}

#[test]
fn without_a_destination_rule_nothing_is_refused() {
    let backend = slow_backend(Duration::from_millis(5));
    let (_dir, gw) = setup("unlimited", &backend, None);
    let answers = load(gw.port, 8, 80);
    assert!(answers.iter().all(|a| a.status == 200), "{answers:?}");
    for counter in [
        "upstream_rq_pending_overflow",
        "upstream_cx_overflow",
        "upstream_cx_max_requests",
        "circuit_breakers.default.cx_open",
        "circuit_breakers.default.rq_open",
        "circuit_breakers.default.rq_pending_open",
    ] {
        assert_eq!(stat(&gw, counter), 0, "{counter}");
    }
    assert!(stat(&gw, "upstream_cx_total") >= 1);
}

#[test]
fn tcp_max_connections_refuses_connections_past_the_limit() {
    let dir = TempDir::new("tcp-breaker");
    let echo = TcpEcho::start("one");
    let port = free_port();
    dir.write(
        "tcp.yaml",
        &format!(
            "apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: tcp-gw
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: {port}
      name: tcp
      protocol: TCP
    hosts:
    - \"*\"
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: tcp-echo
spec:
  hosts:
  - tcp-echo.default.svc.cluster.local
  location: MESH_INTERNAL
  ports:
  - number: 9000
    name: tcp
    protocol: TCP
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports:
      tcp: {}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: tcp-echo
spec:
  host: tcp-echo.default.svc.cluster.local
  trafficPolicy:
    connectionPool:
      tcp:
        maxConnections: 1
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: tcp-echo
spec:
  hosts:
  - \"*\"
  gateways:
  - tcp-gw
  tcp:
  - route:
    - destination:
        host: tcp-echo.default.svc.cluster.local
        port:
          number: 9000
",
            echo.port
        ),
    );
    let gw = Gateway::start(&dir, port);
    let try_stat = |s: &str| {
        let text = curl_raw(&[&gw.admin_url("/stats")]);
        let name = format!("cluster.outbound|9000||tcp-echo.default.svc.cluster.local.{s}: ");
        text.lines()
            .find_map(|l| l.strip_prefix(&name))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let tcp_stat = |s: &str| try_stat(s).unwrap_or_else(|| panic!("no {s} in /stats"));
    // `Gateway::start` made a connection to see the port open: wait until it is gone.
    eventually("the start-up probe's connection to close", DEADLINE, || {
        (try_stat("upstream_cx_active") == Some(0)).then_some(())
    });
    let mut first = LineClient::connect(port).unwrap();
    assert_eq!(first.ask("hello").as_deref(), Some("one hello"));
    // The one connection allowed is open: the next is closed without reaching the echo.
    let mut second = LineClient::connect(port).unwrap();
    assert_eq!(second.ask("hello"), None);
    assert_eq!(tcp_stat("upstream_cx_overflow"), 1);
    assert_eq!(tcp_stat("upstream_cx_active"), 1);
    assert_eq!(tcp_stat("circuit_breakers.default.cx_open"), 1);
    // The first still works, and once it is gone a new connection gets through.
    assert_eq!(first.ask("again").as_deref(), Some("one again"));
    drop(first);
    let reply = eventually("a connection to get through again", DEADLINE, || {
        LineClient::connect(port)?.ask("back")
    });
    assert_eq!(reply, "one back");
}
