//! `weft proxy` as a TCP and TLS gateway, end to end: the real binary, TCP backends that
//! behave like Istio's tcp-echo sample, real TLS servers (`openssl s_server`) and curl,
//! all on 127.0.0.0/8, configured with the YAML of Istio's TCP traffic-shifting and
//! TLS-passthrough tasks.
#![allow(clippy::unwrap_used)] // a failed set-up step should stop the test

#[allow(dead_code)] // the HTTP helpers are for the other test binaries
mod support;

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

use support::tcp::{LineClient, TcpEcho, TlsBackend};
use support::{DEADLINE, Gateway, TempDir, closed_port, eventually, free_port};

/// The tcp-echo task's Gateway: a TCP server on `port`.
fn tcp_gateway(port: u16) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: tcp-echo-gateway
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
"
    )
}

/// The tcp-echo service (port 9000) with one WorkloadEntry per backend (`v1`, `v2`, ...
/// labelled `version`) and a DestinationRule with a subset per version.
fn tcp_echo_service(dir: &TempDir, versions: &[(&str, u16)]) {
    tcp_echo_service_with(dir, versions, "");
}

/// [`tcp_echo_service`] whose DestinationRule has `traffic_policy` (lines indented two
/// spaces, starting with `trafficPolicy:`).
fn tcp_echo_service_with(dir: &TempDir, versions: &[(&str, u16)], traffic_policy: &str) {
    let mut text = String::from(
        "apiVersion: networking.istio.io/v1
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
  workloadSelector:
    labels:
      app: tcp-echo
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: tcp-echo-destination
spec:
  host: tcp-echo
",
    );
    text.push_str(traffic_policy);
    text.push_str("  subsets:\n");
    for (version, _) in versions {
        text.push_str(&format!(
            "  - name: {version}\n    labels:\n      version: {version}\n"
        ));
    }
    for (version, port) in versions {
        text.push_str(&format!(
            "---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: tcp-echo-{version}
spec:
  address: 127.0.0.1
  labels:
    app: tcp-echo
    version: {version}
  ports:
    tcp: {port}
"
        ));
    }
    dir.write("tcp-echo.yaml", &text);
}

/// The task's VirtualService with `tcp` as its routes (items of `spec.tcp`).
fn tcp_virtual_service(tcp: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: tcp-echo
spec:
  hosts:
  - \"*\"
  gateways:
  - tcp-echo-gateway
  tcp:
{tcp}"
    )
}

/// `tcp-echo.yaml`'s step 1: every connection on `port` to v1.
fn all_to(port: u16, subset: &str) -> String {
    tcp_virtual_service(&format!(
        "  - match:
    - port: {port}
    route:
    - destination:
        host: tcp-echo
        port:
          number: 9000
        subset: {subset}
"
    ))
}

/// A gateway in front of tcp-echo v1 (`one`) and v2 (`two`), routing with `vs`.
fn setup(name: &str, vs: impl FnOnce(u16) -> String) -> (TempDir, Gateway, [TcpEcho; 2]) {
    let dir = TempDir::new(name);
    let (one, two) = (TcpEcho::start("one"), TcpEcho::start("two"));
    let port = free_port();
    tcp_echo_service(&dir, &[("v1", one.port), ("v2", two.port)]);
    dir.write("gateway.yaml", &tcp_gateway(port));
    dir.write("vs.yaml", &vs(port));
    let gw = Gateway::start(&dir, port);
    (dir, gw, [one, two])
}

/// One connection through the gateway: the reply to `line`, `None` if it was closed.
fn ask(port: u16, line: &str) -> Option<String> {
    LineClient::connect(port)?.ask(line)
}

#[test]
fn tcp_echo_through_the_gateway_reaches_v1() {
    let (_dir, gw, _backends) = setup("tcp-v1", |port| all_to(port, "v1"));
    for i in 0..20 {
        assert_eq!(
            ask(gw.port, &format!("world {i}")).as_deref(),
            Some(&*format!("one world {i}"))
        );
    }
    // Several lines on one connection all reach the same backend.
    let mut client = LineClient::connect(gw.port).unwrap();
    assert_eq!(client.ask("a").as_deref(), Some("one a"));
    assert_eq!(client.ask("b").as_deref(), Some("one b"));
}

#[test]
fn tcp_traffic_shifts_80_20_per_connection() {
    let (_dir, gw, _backends) = setup("tcp-80-20", |port| {
        tcp_virtual_service(&format!(
            "  - match:
    - port: {port}
    route:
    - destination:
        host: tcp-echo
        port:
          number: 9000
        subset: v1
      weight: 80
    - destination:
        host: tcp-echo
        port:
          number: 9000
        subset: v2
      weight: 20
"
        ))
    });
    const N: u32 = 500;
    let mut ones = 0;
    for i in 0..N {
        let mut client = LineClient::connect(gw.port).unwrap();
        let first = client.ask("hello").unwrap();
        // The destination is chosen once per connection: a second line goes where the
        // first did.
        let second = client.ask("again").unwrap();
        let prefix = first.split(' ').next().unwrap().to_string();
        assert_eq!(
            second,
            format!("{prefix} again"),
            "connection {i} changed backend"
        );
        match prefix.as_str() {
            "one" => ones += 1,
            "two" => {}
            other => panic!("unexpected reply {other:?}"),
        }
    }
    // Binomial(500, 0.8): mean 400, sigma = sqrt(500 * 0.8 * 0.2) ~= 8.94; five sigma
    // is ~44.7, so [356, 444] fails a correct proxy about once in 1.7 million runs.
    assert!(
        (356..=444).contains(&ones),
        "{ones} of {N} connections reached v1; expected 400 +- 45 (5 sigma)"
    );
}

#[test]
fn server_first_protocols_get_their_greeting() {
    let dir = TempDir::new("tcp-greeting");
    let db = TcpEcho::greeting("one", "220 mysql-ish ready");
    let port = free_port();
    tcp_echo_service(&dir, &[("v1", db.port)]);
    dir.write("gateway.yaml", &tcp_gateway(port));
    dir.write("vs.yaml", &all_to(port, "v1"));
    let gw = Gateway::start(&dir, port);
    let mut client = LineClient::connect(gw.port).unwrap();
    // The client sends nothing: the greeting must still come through.
    assert_eq!(client.read_line().as_deref(), Some("220 mysql-ish ready"));
    assert_eq!(client.ask("QUIT").as_deref(), Some("one QUIT"));
}

#[test]
fn half_close_keeps_the_reply_direction_open() {
    let (_dir, gw, _backends) = setup("tcp-half-close", |port| all_to(port, "v1"));
    let mut client = LineClient::connect(gw.port).unwrap();
    client.send(b"hello\n").unwrap();
    client.shutdown_write().unwrap();
    // `one eof` is written only after the backend saw the client's FIN, and must then
    // still travel back to the client.
    assert_eq!(client.read_to_end().unwrap(), "one hello\none eof\n");
}

#[test]
fn l4_match_conditions_use_the_connection_addresses() {
    let (_dir, gw, _backends) = setup("tcp-match", |port| {
        let to = |subset: &str| {
            format!(
                "    route:\n    - destination:\n        host: tcp-echo\n        port:\n          number: 9000\n        subset: {subset}\n"
            )
        };
        tcp_virtual_service(&format!(
            "  - match:
    - destinationSubnets: [10.0.0.0/8]
{}  - match:
    - port: {other}
{}  - match:
    - sourceLabels:
        app: sleep
{}  - match:
    - sourceSubnet: 127.0.0.2/32
{}  - match:
    - port: {port}
      gateways: [tcp-echo-gateway]
      sourceLabels:
        istio: ingressgateway
      destinationSubnets: [127.0.0.1/32]
      sourceSubnet: 127.0.0.1
{}",
            to("v2"),
            to("v2"),
            to("v2"),
            to("v2"),
            to("v1"),
            other = port.wrapping_add(1),
        ))
    });
    assert_eq!(ask(gw.port, "x").as_deref(), Some("one x"));
    // The same gateway port, reached from another client address.
    let mut from_2 = LineClient::connect_from(Ipv4Addr::new(127, 0, 0, 2), gw.port).unwrap();
    assert_eq!(from_2.ask("y").as_deref(), Some("two y"));
    // From a third address no route matches: the connection is reset (so quickly, at
    // times, that the client's connect already reports it).
    let from_3 = LineClient::connect_from(Ipv4Addr::new(127, 0, 0, 3), gw.port);
    assert_eq!(from_3.and_then(|mut c| c.ask("z")), None);
    eventually("the proxy to log the NR flag", DEADLINE, || {
        gw.log_text().contains("flag=\"NR\"").then_some(())
    });
}

#[test]
fn connect_failures_close_the_connection_with_uf() {
    let dir = TempDir::new("tcp-uf");
    let (closed, _hold) = closed_port();
    let port = free_port();
    tcp_echo_service(&dir, &[("v1", closed)]);
    dir.write("gateway.yaml", &tcp_gateway(port));
    dir.write("vs.yaml", &all_to(port, "v1"));
    let gw = Gateway::start(&dir, port);
    assert_eq!(ask(gw.port, "anyone?"), None);
    eventually("the proxy to log the UF flag", DEADLINE, || {
        let log = gw.log_text();
        (log.contains("flag=\"UF\"") && log.contains("outbound|9000|v1|tcp-echo")).then_some(())
    });
}

/// A gateway in front of one endpoint on `backend`, whose DestinationRule has
/// `connectionPool.tcp` set to `tcp` (lines indented eight spaces).
fn setup_pool(name: &str, backend: u16, tcp: &str) -> (TempDir, Gateway) {
    let dir = TempDir::new(name);
    let port = free_port();
    let policy = format!("  trafficPolicy:\n    connectionPool:\n      tcp:\n{tcp}");
    tcp_echo_service_with(&dir, &[("v1", backend)], &policy);
    dir.write("gateway.yaml", &tcp_gateway(port));
    dir.write("vs.yaml", &all_to(port, "v1"));
    let gw = Gateway::start(&dir, port);
    (dir, gw)
}

#[test]
fn a_silent_connection_is_closed_after_the_tcp_idle_timeout() {
    let one = TcpEcho::start("one");
    let (_dir, gw) = setup_pool("tcp-idle", one.port, "        idleTimeout: 300ms\n");
    let mut client = LineClient::connect(gw.port).unwrap();
    assert_eq!(client.ask("hello").as_deref(), Some("one hello"));
    // Talking keeps it open past the timeout...
    for i in 0..4 {
        std::thread::sleep(Duration::from_millis(150));
        assert!(client.ask(&format!("still here {i}")).is_some());
    }
    // ...silence closes it, long before the client's own 10 s read timeout.
    let start = Instant::now();
    let rest = client.read_to_end().unwrap();
    assert_eq!(rest, "");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn the_destination_rules_connect_timeout_applies_to_tcp() {
    let hole = support::blackhole();
    let (_dir, gw) = setup_pool(
        "tcp-connect-timeout",
        hole.port,
        "        connectTimeout: 300ms\n",
    );
    let start = Instant::now();
    assert_eq!(ask(gw.port, "anyone?"), None);
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    eventually("the proxy to log the timed-out connect", DEADLINE, || {
        gw.log_text()
            .contains("no answer within 300ms")
            .then_some(())
    });
}

#[test]
fn config_changes_move_new_connections_and_leave_open_ones() {
    let (dir, gw, _backends) = setup("tcp-live", |port| all_to(port, "v1"));
    let mut old = LineClient::connect(gw.port).unwrap();
    assert_eq!(old.ask("before").as_deref(), Some("one before"));
    dir.write("vs.yaml", &all_to(gw.port, "v2"));
    eventually("new connections to reach v2", DEADLINE, || {
        (ask(gw.port, "new").as_deref() == Some("two new")).then_some(())
    });
    assert_eq!(ask(gw.port, "new again").as_deref(), Some("two new again"));
    // The connection made before the change stays where it was.
    assert_eq!(old.ask("after").as_deref(), Some("one after"));
}

/// The TLS-passthrough task's Gateway: a TLS server on `port` in PASSTHROUGH mode.
fn tls_gateway(port: u16) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: passthrough-gateway
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: {port}
      name: tls
      protocol: TLS
    tls:
      mode: PASSTHROUGH
    hosts:
    - \"*.example.com\"
"
    )
}

/// A service `name.default.svc.cluster.local:443` whose one endpoint serves on `port`.
fn tls_service(name: &str, port: u16) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: {name}
spec:
  hosts:
  - {name}.default.svc.cluster.local
  location: MESH_INTERNAL
  ports:
  - number: 443
    name: tls
    protocol: TLS
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports:
      tls: {port}
"
    )
}

/// Two real TLS servers behind a passthrough gateway: `a.example.com` (an exact SNI
/// host) to backend-a; every other `*.example.com` to backend-b. The wildcard route is
/// listed first: the exact one must still win, as with Envoy's filter chains.
fn tls_setup(name: &str) -> (TempDir, Gateway, TlsBackend, TlsBackend) {
    let dir = TempDir::new(name);
    let a = TlsBackend::start(&dir, "backend-a", "a.example.com");
    let b = TlsBackend::start(&dir, "backend-b", "b.example.com");
    let port = free_port();
    dir.write("gateway.yaml", &tls_gateway(port));
    dir.write("backend-a.yaml", &tls_service("backend-a", a.port));
    dir.write("backend-b.yaml", &tls_service("backend-b", b.port));
    dir.write(
        "vs.yaml",
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: sni
spec:
  hosts:
  - \"*.example.com\"
  gateways:
  - passthrough-gateway
  tls:
  - match:
    - port: 443
      sniHosts:
      - never.example.com
    route:
    - destination:
        host: backend-a
  - match:
    - sniHosts:
      - \"*.example.com\"
    route:
    - destination:
        host: backend-b
  - match:
    - sniHosts:
      - a.example.com
    route:
    - destination:
        host: backend-a
        port:
          number: 443
",
    );
    let gw = Gateway::start(&dir, port);
    (dir, gw, a, b)
}

/// curl to `https://host:port/who` through the gateway, trusting only `cert`; its
/// output, or its error when it fails.
fn curl_tls(host: &str, port: u16, cert: &std::path::Path) -> Result<String, String> {
    let out = Command::new("curl")
        .args(["-q", "-sS", "--noproxy", "*", "--max-time", "10"])
        .args(["--resolve", &format!("{host}:{port}:127.0.0.1")])
        .arg("--cacert")
        .arg(cert)
        .arg(format!("https://{host}:{port}/who"))
        .output()
        .map_err(|e| format!("cannot run curl: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn tls_passthrough_routes_by_sni_to_the_backends_own_tls() {
    let (_dir, gw, a, b) = tls_setup("tls-sni");
    // curl trusts only the backend's own self-signed certificate: the handshake can
    // only succeed if the proxy passed TLS through untouched to that backend.
    for _ in 0..3 {
        assert_eq!(
            curl_tls("a.example.com", gw.port, &a.cert()).unwrap(),
            "backend-a\n"
        );
        assert_eq!(
            curl_tls("b.example.com", gw.port, &b.cert()).unwrap(),
            "backend-b\n"
        );
    }
}

#[test]
fn unmatched_sni_and_plain_text_are_closed() {
    let (_dir, gw, a, b) = tls_setup("tls-nr");
    let err = curl_tls("c.other.org", gw.port, &a.cert()).unwrap_err();
    assert!(!err.is_empty());
    // Not TLS at all: no SNI, no route.
    assert_eq!(ask(gw.port, "GET / HTTP/1.0\r\n"), None);
    eventually("the proxy to log the refused SNI", DEADLINE, || {
        let log = gw.log_text();
        (log.contains("flag=\"NR\"") && log.contains("c.other.org")).then_some(())
    });
    // The listener keeps serving what does match.
    assert_eq!(
        curl_tls("b.example.com", gw.port, &b.cert()).unwrap(),
        "backend-b\n"
    );
}

#[test]
fn a_port_that_turns_from_http_to_tcp_is_reopened_for_tcp() {
    let dir = TempDir::new("tcp-reopen");
    let one = TcpEcho::start("one");
    let port = free_port();
    tcp_echo_service(&dir, &[("v1", one.port)]);
    dir.write("vs.yaml", &all_to(port, "v1"));
    dir.write(
        "gateway.yaml",
        &tcp_gateway(port).replace(
            "name: tcp\n      protocol: TCP",
            "name: http\n      protocol: HTTP",
        ),
    );
    let gw = Gateway::start(&dir, port);
    assert_ne!(
        ask(gw.port, "x").as_deref(),
        Some("one x"),
        "an HTTP port answers HTTP"
    );
    dir.write("gateway.yaml", &tcp_gateway(port));
    eventually("the port to carry TCP", DEADLINE, || {
        (ask(gw.port, "x").as_deref() == Some("one x")).then_some(())
    });
}
