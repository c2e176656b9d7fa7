//! `weft proxy` as a gateway, end to end, for the upstream side of HTTP: load balancing
//! (consistent hashing on headers, cookies, source IPs and query parameters, ring hash and
//! Maglev, round robin, passthrough), connection settings (HTTP/2 upstreams, connect
//! timeout, idle timeout, TCP keep-alive), gRPC trailers, WebSocket upgrades, CORS and
//! delegate VirtualServices. Real proxy process, real backends and clients, 127.0.0.1 only.
#![allow(clippy::unwrap_used)] // a failed set-up step should stop the test

// Each test file uses only part of the shared helpers.
#[allow(dead_code)]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::config::service;
use support::{
    Backend, DEADLINE, Gateway, TempDir, blackhole, curl, curl_raw, eventually, free_port,
};

#[path = "http_features/servers.rs"]
mod servers;

const GATEWAY_NAME: &str = "public";

/// A fresh temp dir with a Gateway for every host on a free port.
fn setup(name: &str) -> (TempDir, u16) {
    let dir = TempDir::new(name);
    let port = free_port();
    dir.write(
        "gateway.yaml",
        &support::config::http_gateway(GATEWAY_NAME, port, &["*"]),
    );
    (dir, port)
}

/// A VirtualService for every host on the gateway, with `http` as its routes.
fn virtual_service(name: &str, http: &str) -> String {
    support::config::virtual_service(name, GATEWAY_NAME, http)
}

/// A route to `host`, with `extra` lines (indented four spaces) in the route.
fn route_to(prefix: &str, host: &str, extra: &str) -> String {
    format!(
        "  - match:
    - uri:
        prefix: {prefix}
{extra}    route:
    - destination:
        host: {host}
"
    )
}

/// A DestinationRule for `host` with `policy` as its `trafficPolicy` (indented four).
fn destination_rule(host: &str, policy: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: {host}
spec:
  host: {host}
  trafficPolicy:
{policy}"
    )
}

/// Three echo backends `<name>-0..2`.
fn backends(name: &str) -> Vec<Backend> {
    (0..3)
        .map(|i| Backend::start(&format!("{name}-{i}")))
        .collect()
}

fn ports(backends: &[Backend]) -> Vec<u16> {
    backends.iter().map(|b| b.port).collect()
}

/// The backend names in curl output made of echo lines, in order.
fn answered_by(out: &str) -> Vec<String> {
    out.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            v["backend"].as_str().unwrap_or("").to_string()
        })
        .collect()
}

/// Sends `n` requests to `path` on one connection (curl's URL globbing, `path` ending in
/// a glob such as `/x/[1-5]`) and returns who answered them.
fn many(gw: &Gateway, path: &str, args: &[&str]) -> Vec<String> {
    let url = format!("http://127.0.0.1:{}{path}", gw.port);
    let mut all = args.to_vec();
    all.push(&url);
    answered_by(&curl_raw(&all))
}

/// Every answer came from the same backend: returns it.
fn one_backend(answers: &[String]) -> String {
    let first = answers.first().cloned().unwrap_or_default();
    assert!(
        answers.iter().all(|a| *a == first),
        "not sticky: {answers:?}"
    );
    first
}

#[test]
fn consistent_hash_on_a_header_with_ring_hash_and_maglev() {
    let (dir, port) = setup("hash-header");
    let b = backends("reviews");
    for (name, table) in [
        (
            "ring",
            "        ringHash:\n          minimumRingSize: 2048\n",
        ),
        ("maglev", "        maglev:\n          tableSize: 65537\n"),
    ] {
        dir.write(&format!("{name}.yaml"), &service(name, "HTTP", &ports(&b)));
        let policy = format!(
            "    loadBalancer:\n      consistentHash:\n        httpHeaderName: x-user\n{table}"
        );
        dir.write(&format!("{name}-dr.yaml"), &destination_rule(name, &policy));
    }
    let routes = format!(
        "{}{}",
        route_to("/ring", "ring", ""),
        route_to("/maglev", "maglev", "")
    );
    dir.write("vs.yaml", &virtual_service("routes", &routes));
    let gw = Gateway::start(&dir, port);

    for table in ["ring", "maglev"] {
        let mut chosen = BTreeMap::new();
        for user in 0..30 {
            let header = format!("x-user: user-{user}");
            let answers = many(&gw, &format!("/{table}/[1-5]"), &["-H", &header]);
            assert_eq!(answers.len(), 5);
            chosen.insert(user, one_backend(&answers));
        }
        // 30 users all hashing to one of 3 backends would happen once in 3^29 runs.
        let used: BTreeSet<&String> = chosen.values().collect();
        assert!(used.len() >= 2, "{table}: every user on {used:?}");
        // Stickiness holds across connections and over time.
        for (user, backend) in chosen.iter().take(5) {
            let r = gw.get(
                &format!("/{table}/again"),
                &["-H", &format!("x-user: user-{user}")],
            );
            assert_eq!(r.echo().backend(), backend);
        }
    }
}

#[test]
fn consistent_hash_on_a_query_parameter_and_on_the_source_ip() {
    let (dir, port) = setup("hash-query-ip");
    let b = backends("reviews");
    dir.write("query.yaml", &service("query", "HTTP", &ports(&b)));
    dir.write("ip.yaml", &service("ip", "HTTP", &ports(&b)));
    let by_query =
        "    loadBalancer:\n      consistentHash:\n        httpQueryParameterName: user\n";
    dir.write("query-dr.yaml", &destination_rule("query", by_query));
    let by_ip = "    loadBalancer:\n      consistentHash:\n        useSourceIp: true\n";
    dir.write("ip-dr.yaml", &destination_rule("ip", by_ip));
    let routes = format!(
        "{}{}",
        route_to("/query", "query", ""),
        route_to("/ip", "ip", "")
    );
    dir.write("vs.yaml", &virtual_service("routes", &routes));
    let gw = Gateway::start(&dir, port);

    let mut by_user = BTreeSet::new();
    for user in 0..30 {
        let answers = many(&gw, &format!("/query/[1-4]?user=u{user}&x=1"), &[]);
        by_user.insert(one_backend(&answers));
    }
    assert!(by_user.len() >= 2, "every user on {by_user:?}");

    // Every address of 127.0.0.0/8 is local: clients from 30 source IPs.
    let mut by_ip = BTreeSet::new();
    for last in 1..=30 {
        let source = format!("127.0.0.{last}");
        let answers = many(&gw, "/ip/[1-3]", &["--interface", &source]);
        let first = one_backend(&answers);
        // A new connection (new source port) from the same IP lands on the same backend.
        let again = many(&gw, "/ip/again", &["--interface", &source]);
        assert_eq!(again, std::slice::from_ref(&first), "{source}");
        by_ip.insert(first);
    }
    assert!(by_ip.len() >= 2, "every source IP on {by_ip:?}");
}

#[test]
fn cookie_hash_generates_the_cookie_then_honours_it() {
    let (dir, port) = setup("hash-cookie");
    let b = backends("reviews");
    dir.write("reviews.yaml", &service("reviews", "HTTP", &ports(&b)));
    let policy = "    loadBalancer:
      consistentHash:
        httpCookie:
          name: user-session
          path: /
          ttl: 3600s
";
    dir.write("dr.yaml", &destination_rule("reviews", policy));
    dir.write(
        "vs.yaml",
        &virtual_service("routes", &route_to("/", "reviews", "")),
    );
    let gw = Gateway::start(&dir, port);

    let mut first_backends = BTreeSet::new();
    for _ in 0..20 {
        // Each curl is a new connection, and Envoy's generated cookie hashes the
        // connection's addresses: a new cookie each time.
        let r = gw.get("/cart", &[]);
        assert_eq!(r.status, 200, "{r:?}");
        let set = r
            .header("set-cookie")
            .unwrap_or_else(|| panic!("no cookie: {r:?}"));
        let value = set
            .strip_prefix("user-session=\"")
            .and_then(|s| s.split_once('"'))
            .unwrap()
            .0
            .to_string();
        assert_eq!(
            set,
            format!("user-session=\"{value}\"; Max-Age=3600; Path=/; HttpOnly")
        );
        let backend = r.echo().backend().to_string();
        // With the cookie, the same backend answers, and no new cookie is set.
        for _ in 0..3 {
            let again = gw.get(
                "/cart",
                &["-H", &format!("Cookie: other=1; user-session={value}")],
            );
            assert_eq!(again.echo().backend(), backend);
            assert_eq!(again.header("set-cookie"), None);
        }
        first_backends.insert(backend);
    }
    assert!(
        first_backends.len() >= 2,
        "every cookie on {first_backends:?}"
    );
}

#[test]
fn round_robin_takes_turns_and_passthrough_has_no_destination_at_a_gateway() {
    let (dir, port) = setup("round-robin");
    let b = backends("reviews");
    dir.write("reviews.yaml", &service("reviews", "HTTP", &ports(&b)));
    dir.write("ratings.yaml", &service("ratings", "HTTP", &ports(&b)));
    dir.write(
        "reviews-dr.yaml",
        &destination_rule("reviews", "    loadBalancer:\n      simple: ROUND_ROBIN\n"),
    );
    dir.write(
        "ratings-dr.yaml",
        &destination_rule("ratings", "    loadBalancer:\n      simple: PASSTHROUGH\n"),
    );
    let routes = format!(
        "{}{}",
        route_to("/reviews", "reviews", ""),
        route_to("/ratings", "ratings", "")
    );
    dir.write("vs.yaml", &virtual_service("routes", &routes));
    let gw = Gateway::start(&dir, port);

    let answers = many(&gw, "/reviews/[1-300]", &[]);
    let mut counts = BTreeMap::new();
    for a in &answers {
        *counts.entry(a.as_str()).or_insert(0) += 1;
    }
    // Sequential requests take strict turns: exactly a third each.
    assert_eq!(
        counts.values().collect::<Vec<_>>(),
        [&100, &100, &100],
        "{counts:?}"
    );
    for w in answers.windows(3) {
        assert!(w[0] != w[1] && w[1] != w[2] && w[0] != w[2], "{w:?}");
    }

    // PASSTHROUGH sends to the connection's original destination; a gateway's clients
    // connect to it directly, so there is none: Envoy's ORIGINAL_DST cluster finds no
    // host, and the answer is 503 "no healthy upstream" with flag UH.
    let r = gw.get("/ratings", &[]);
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.body, "no healthy upstream");
    assert!(
        r.header("x-weft-reason").unwrap().starts_with("UH:"),
        "{r:?}"
    );
}

#[test]
fn http2_upstreams_by_port_protocol_upgrade_policy_and_client_protocol() {
    let (dir, port) = setup("h2-upstream");
    let backend = Backend::start_auto("any");
    let cases = [
        ("plain", "HTTP", None),
        ("grpc", "GRPC", None),
        ("h2port", "HTTP2", None),
        (
            "upgraded",
            "HTTP",
            Some("      http:\n        h2UpgradePolicy: UPGRADE\n"),
        ),
        (
            "client",
            "HTTP2",
            Some("      http:\n        useClientProtocol: true\n"),
        ),
    ];
    let mut routes = String::new();
    for (name, protocol, pool) in cases {
        dir.write(
            &format!("{name}.yaml"),
            &service(name, protocol, &[backend.port]),
        );
        if let Some(pool) = pool {
            let policy = format!("    connectionPool:\n{pool}");
            dir.write(&format!("{name}-dr.yaml"), &destination_rule(name, &policy));
        }
        routes.push_str(&route_to(&format!("/{name}"), name, ""));
    }
    dir.write("vs.yaml", &virtual_service("routes", &routes));
    let gw = Gateway::start(&dir, port);

    let host = ["-H", "Host: shop.example.com"];
    let h2c = ["--http2-prior-knowledge", "-H", "Host: shop.example.com"];
    for (path, client, version) in [
        ("/plain", &host[..], "HTTP/1.1"),
        ("/plain", &h2c[..], "HTTP/1.1"),
        ("/grpc", &host[..], "HTTP/2.0"),
        ("/h2port", &host[..], "HTTP/2.0"),
        ("/upgraded", &host[..], "HTTP/2.0"),
        ("/client", &host[..], "HTTP/1.1"),
        ("/client", &h2c[..], "HTTP/2.0"),
    ] {
        let r = gw.get(path, client);
        assert_eq!(r.status, 200, "{path}: {r:?}");
        let seen = r.echo();
        assert_eq!(seen.version(), version, "{path} from {client:?}");
        if version == "HTTP/2.0" {
            // The host travels as :authority, as Envoy sends it.
            assert_eq!(seen.0["authority"], "shop.example.com", "{path}");
        } else {
            assert_eq!(seen.header("host"), Some("shop.example.com"), "{path}");
        }
    }
}

#[test]
fn grpc_over_http2_carries_trailers_end_to_end() {
    let (dir, port) = setup("grpc");
    let backend = servers::grpc();
    dir.write("greeter.yaml", &service("greeter", "GRPC", &[backend.port]));
    dir.write(
        "vs.yaml",
        &virtual_service("routes", &route_to("/", "greeter", "")),
    );
    let gw = Gateway::start(&dir, port);

    let reply = servers::grpc_call(
        gw.port,
        "/helloworld.Greeter/SayHello",
        b"\0\0\0\0\x07weft-hi",
    );
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/grpc"));
    assert_eq!(reply.header("server"), Some("istio-envoy"));
    // The backend saw HTTP/2 and `te: trailers`, and echoed the message.
    assert_eq!(reply.header("x-seen-version"), Some("HTTP/2.0"));
    assert_eq!(reply.header("x-seen-te"), Some("trailers"));
    assert_eq!(reply.body, b"\0\0\0\0\x07weft-hi");
    // Status and message arrive as trailers.
    assert_eq!(reply.trailer("grpc-status"), Some("0"));
    assert_eq!(reply.trailer("grpc-message"), Some("ok"));

    // A trailers-only error answer (no body) gets through too.
    let reply = servers::grpc_call(gw.port, "/helloworld.Greeter/Fail", b"");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.trailer("grpc-status"), Some("14"));
}

#[test]
fn websocket_upgrade_is_tunnelled_through_the_gateway() {
    let (dir, port) = setup("websocket");
    let backend = servers::websocket_echo();
    dir.write("chat.yaml", &service("chat", "HTTP", &[backend.port]));
    dir.write(
        "vs.yaml",
        &virtual_service("routes", &route_to("/", "chat", "")),
    );
    let gw = Gateway::start(&dir, port);

    let mut ws = TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    ws.set_read_timeout(Some(DEADLINE)).unwrap();
    ws.write_all(
        b"GET /chat HTTP/1.1\r\nHost: chat.example.com\r\nConnection: Upgrade\r\n\
          Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .unwrap();
    let head = servers::read_head(&mut ws);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("upgrade: websocket"), "{head}");
    assert!(lower.contains("sec-websocket-accept: "), "{head}");
    // Frames go both ways, several times, on the upgraded connection.
    for text in ["hello", "through the gateway", "bye"] {
        ws.write_all(&servers::client_frame(text.as_bytes()))
            .unwrap();
        assert_eq!(servers::read_frame(&mut ws), text.as_bytes());
    }

    // Other upgrades are refused, as Envoy refuses upgrades it has no config for.
    let r = gw.get(
        "/chat",
        &["-H", "Connection: Upgrade", "-H", "Upgrade: foo"],
    );
    assert_eq!(r.status, 403, "{r:?}");
}

#[test]
fn cors_preflights_are_answered_and_actual_requests_get_the_headers() {
    let (dir, port) = setup("cors");
    let backend = Backend::start("web");
    dir.write("web.yaml", &service("web", "HTTP", &[backend.port]));
    let cors = |unmatched: &str| {
        format!(
            "    corsPolicy:
      allowOrigins:
      - exact: https://app.example.com
      - prefix: https://dev.
      allowMethods: [GET, POST]
      allowHeaders: [x-token, content-type]
      exposeHeaders: [x-backend]
      maxAge: 24h
      allowCredentials: true
{unmatched}"
        )
    };
    let routes = format!(
        "{}{}",
        route_to(
            "/strict",
            "web",
            &cors("      unmatchedPreflights: IGNORE\n")
        ),
        route_to("/", "web", &cors("")),
    );
    dir.write("vs.yaml", &virtual_service("routes", &routes));
    let gw = Gateway::start(&dir, port);
    let preflight = |path: &str, origin: &str| {
        gw.get(
            path,
            &[
                "-X",
                "OPTIONS",
                "-H",
                &format!("Origin: {origin}"),
                "-H",
                "Access-Control-Request-Method: POST",
                "-H",
                "Access-Control-Request-Headers: x-token",
            ],
        )
    };

    // An allowed origin's preflight is answered by the proxy itself.
    for origin in ["https://app.example.com", "https://dev.example.org"] {
        let r = preflight("/api", origin);
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.header("x-backend"), None, "the backend must not see it");
        assert_eq!(r.header("access-control-allow-origin"), Some(origin));
        assert_eq!(r.header("access-control-allow-methods"), Some("GET,POST"));
        assert_eq!(
            r.header("access-control-allow-headers"),
            Some("x-token,content-type")
        );
        assert_eq!(r.header("access-control-max-age"), Some("86400"));
        assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    }
    // The actual request goes to the backend and its answer gets the CORS headers.
    let r = gw.get("/api", &["-H", "Origin: https://app.example.com"]);
    assert_eq!(r.echo().backend(), "web");
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(r.header("access-control-expose-headers"), Some("x-backend"));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    // Another origin: no CORS headers; its preflight is forwarded (FORWARD, the default).
    let r = gw.get("/api", &["-H", "Origin: https://evil.example.com"]);
    assert_eq!(r.header("access-control-allow-origin"), None);
    let r = preflight("/api", "https://evil.example.com");
    assert_eq!(r.header("x-backend"), Some("web"), "forwarded: {r:?}");
    assert_eq!(r.header("access-control-allow-origin"), None);
    // With IGNORE the proxy answers it, without an allowed origin.
    let r = preflight("/strict", "https://evil.example.com");
    assert_eq!((r.status, r.header("x-backend")), (200, None), "{r:?}");
    assert_eq!(r.header("access-control-allow-origin"), None);
    // Without an Origin it is not CORS at all.
    assert_eq!(
        gw.get("/api", &[]).header("access-control-allow-origin"),
        None
    );
}

#[test]
fn delegate_virtual_service_serves_its_routes_under_the_parents_match() {
    let (dir, port) = setup("delegate");
    let v1 = Backend::start("reviews-v1");
    let v2 = Backend::start("reviews-v2");
    dir.write("v1.yaml", &service("reviews-v1", "HTTP", &[v1.port]));
    dir.write("v2.yaml", &service("reviews-v2", "HTTP", &[v2.port]));
    let root = "  - name: reviews
    match:
    - uri:
        prefix: /reviews
    headers:
      request:
        set:
          x-root: set-by-parent
    delegate:
      name: reviews-routes
  - match:
    - uri:
        prefix: /
    directResponse:
      status: 418
";
    dir.write("root.yaml", &virtual_service("root", root));
    // The delegate: no hosts, no gateways; its routes only serve through the root.
    dir.write(
        "delegate.yaml",
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews-routes
spec:
  http:
  - name: v2
    match:
    - uri:
        prefix: /reviews/v2
    route:
    - destination:
        host: reviews-v2
  - name: elsewhere
    match:
    - uri:
        prefix: /ratings
    route:
    - destination:
        host: reviews-v2
  - name: rest
    route:
    - destination:
        host: reviews-v1
",
    );
    let gw = Gateway::start(&dir, port);

    let r = gw.get("/reviews/v2/1", &[]);
    assert_eq!(r.echo().backend(), "reviews-v2");
    assert_eq!(r.echo().header("x-root"), Some("set-by-parent"));
    // The child route without a match takes the parent's.
    assert_eq!(gw.get("/reviews/1", &[]).echo().backend(), "reviews-v1");
    // A child route outside the parent's match is dropped; the request goes on to the
    // parent's next route.
    assert_eq!(gw.get("/ratings/1", &[]).status, 418);
    assert_eq!(gw.get("/other", &[]).status, 418);
    let dump = curl(&[&gw.admin_url("/config_dump")]);
    assert!(dump.body.contains("Delegate"), "{}", dump.body);
}

#[test]
fn connect_timeout_answers_503_uf_within_the_timeout() {
    let (dir, port) = setup("connect-timeout");
    let hole = blackhole();
    dir.write("slow.yaml", &service("slow", "HTTP", &[hole.port]));
    let policy = "    connectionPool:\n      tcp:\n        connectTimeout: 300ms\n";
    dir.write("dr.yaml", &destination_rule("slow", policy));
    dir.write(
        "vs.yaml",
        &virtual_service("routes", &route_to("/", "slow", "")),
    );
    let gw = Gateway::start(&dir, port);

    let started = Instant::now();
    let r = gw.get("/", &[]);
    let took = started.elapsed();
    assert_eq!(r.status, 503, "{r:?}");
    let reason = r.header("x-weft-reason").unwrap();
    // Istio's default retry policy tries twice more on connect failures, then gives up.
    assert!(
        reason.starts_with("UF,URX:") && reason.contains("timed out after 300ms"),
        "{reason}"
    );
    // Istio's default would be 10s a try; curl gives up after 10s.
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "took {took:?}"
    );
}

#[test]
fn pooled_connections_are_reused_and_closed_after_the_idle_timeout() {
    let (dir, port) = setup("idle-timeout");
    let h1 = servers::counting();
    let h2 = servers::counting();
    dir.write("web.yaml", &service("web", "HTTP", &[h1.port]));
    dir.write("api.yaml", &service("api", "HTTP2", &[h2.port]));
    let policy = "    connectionPool:\n      http:\n        idleTimeout: 1s\n";
    dir.write("web-dr.yaml", &destination_rule("web", policy));
    dir.write("api-dr.yaml", &destination_rule("api", policy));
    let routes = format!(
        "{}{}",
        route_to("/web", "web", ""),
        route_to("/api", "api", "")
    );
    dir.write("vs.yaml", &virtual_service("routes", &routes));
    let gw = Gateway::start(&dir, port);

    for (path, backend) in [("/web", &h1), ("/api", &h2)] {
        // Five requests from five client connections share one upstream connection
        // (HTTP/1.1 keep-alive, or one multiplexed HTTP/2 connection).
        for _ in 0..5 {
            assert_eq!(gw.get(path, &[]).status, 200);
        }
        assert_eq!(backend.accepted(), 1, "{path}: the connection is reused");
        eventually("the idle upstream connection to close", DEADLINE, || {
            (backend.closed() == 1).then_some(())
        });
        // The next request opens a new one.
        assert_eq!(gw.get(path, &[]).status, 200);
        assert_eq!(backend.accepted(), 2, "{path}");
    }
}

#[test]
fn tcp_keepalive_is_set_on_upstream_connections() {
    let (dir, port) = setup("keepalive");
    let with = Backend::start("with");
    let without = Backend::start("without");
    dir.write("with.yaml", &service("with", "HTTP", &[with.port]));
    dir.write("without.yaml", &service("without", "HTTP", &[without.port]));
    let policy = "    connectionPool:
      tcp:
        tcpKeepalive:
          time: 7s
          interval: 2s
          probes: 3
";
    dir.write("dr.yaml", &destination_rule("with", policy));
    let routes = format!(
        "{}{}",
        route_to("/on", "with", ""),
        route_to("/off", "without", "")
    );
    dir.write("vs.yaml", &virtual_service("routes", &routes));
    let gw = Gateway::start(&dir, port);
    assert_eq!(gw.get("/on", &[]).echo().backend(), "with");
    assert_eq!(gw.get("/off", &[]).echo().backend(), "without");

    // The proxy's idle pooled connection to the backend runs the kernel's keep-alive
    // timer, due within the 7s asked for; the other connection has no keep-alive.
    let timer = |backend_port: u16| {
        eventually("the pooled connection in /proc/net/tcp", DEADLINE, || {
            servers::client_socket_timer(backend_port)
        })
    };
    let (kind, due) = timer(with.port);
    assert_eq!(kind, 2, "keep-alive timer");
    assert!(
        due <= Duration::from_secs(7) && due > Duration::from_secs(4),
        "{due:?}"
    );
    let (kind, _) = timer(without.port);
    assert_eq!(kind, 0, "no timer without tcpKeepalive");
}
