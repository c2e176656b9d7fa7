//! `weft proxy` against hostile clients and through its life cycle, end to end: bad bytes
//! on raw TCP sockets (each answered or closed, the proxy serving on), graceful drain on
//! SIGTERM, the admin API's `/stats` and `/logging`, readiness on its own port.
#![allow(clippy::unwrap_used)] // a failed set-up step should stop the test

// Not every helper is used here.
#[allow(dead_code)]
mod support;

use std::convert::Infallible;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use support::{Backend, DEADLINE, Gateway, TempDir, closed_port, curl, eventually, free_port};

/// A Gateway on `port` for every host, routing `/broken` to a port that refuses
/// connections and everything else to `app` on `backend`.
fn config(dir: &TempDir, port: u16, backend: u16, refused: u16) {
    dir.write(
        "gateway.yaml",
        &support::config::http_gateway("gw", port, &["*"]),
    );
    for (name, p) in [("app", backend), ("broken", refused)] {
        dir.write(
            &format!("{name}.yaml"),
            &support::config::static_service(name, p),
        );
    }
    dir.write(
        "routes.yaml",
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: routes
spec:
  hosts:
  - \"*\"
  gateways:
  - gw
  http:
  - match:
    - uri:
        prefix: /broken
    route:
    - destination:
        host: broken.default.svc.cluster.local
  - route:
    - destination:
        host: app.default.svc.cluster.local
",
    );
}

/// A gateway in front of an echo backend, started with `extra` arguments.
struct Setup {
    gw: Gateway,
    _backend: Backend,
    _refused: socket2::Socket,
    _dir: TempDir,
}

fn setup(name: &str, extra: &[&str]) -> Setup {
    let dir = TempDir::new(name);
    let backend = Backend::start("app");
    let (refused, socket) = closed_port();
    let port = free_port();
    config(&dir, port, backend.port, refused);
    let gw = Gateway::start_with(&dir, port, extra);
    Setup {
        gw,
        _backend: backend,
        _refused: socket,
        _dir: dir,
    }
}

/// Sends `bytes` on a fresh connection and returns all the proxy answers until it closes
/// the connection (a reset after its answer counts as a close).
fn exchange(port: u16, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    // The proxy may answer and close before reading everything: a failed write is fine.
    let _ = stream.write_all(bytes);
    let mut out = Vec::new();
    read_to_end(&mut stream, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The proxy still routes a well-formed request to the backend.
fn still_serving(gw: &Gateway) {
    let reply = gw.get("/after", &[]);
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.echo().backend(), "app");
}

#[test]
fn oversize_request_headers_get_431_and_60k_still_pass() {
    let s = setup("oversize", &[]);
    let big = |kib: usize| {
        format!(
            "GET / HTTP/1.1\r\nHost: app\r\nConnection: close\r\nX-Big: {}\r\n\r\n",
            "a".repeat(kib * 1024)
        )
    };
    let answer = exchange(s.gw.port, big(61).as_bytes());
    assert!(
        answer.starts_with("HTTP/1.1 431"),
        "61 KiB of headers: {answer:.200}"
    );
    // Envoy's limit is 60 KiB for all headers: 58 KiB in one header is fine.
    let answer = exchange(s.gw.port, big(58).as_bytes());
    assert!(answer.starts_with("HTTP/1.1 200"), "58 KiB: {answer:.200}");
    still_serving(&s.gw);
}

#[test]
fn invalid_header_bytes_and_garbage_request_lines_get_400() {
    let s = setup("garbage", &[]);
    let cases: [&[u8]; 5] = [
        b"GET / HTTP/1.1\r\nHost: app\r\nBad\x01Name: v\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: app\r\nX-Nul: a\x00b\r\n\r\n",
        b"GET /\x01\x02 HTTP/1.1\r\nHost: app\r\n\r\n",
        b"G\x7fT / HTTP/1.1\r\nHost: app\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http at all\r\n\r\n",
    ];
    for bytes in cases {
        let answer = exchange(s.gw.port, bytes);
        assert!(
            answer.starts_with("HTTP/1.1 400"),
            "{bytes:?} got {answer:?}"
        );
    }
    still_serving(&s.gw);
}

/// The HTTP/2 frames in `bytes` as (type, payload), stopping at a partial frame.
fn frames(bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    frames_with_flags(bytes)
        .into_iter()
        .map(|(kind, _, payload)| (kind, payload))
        .collect()
}

/// The HTTP/2 frames in `bytes` as (type, flags, payload).
fn frames_with_flags(bytes: &[u8]) -> Vec<(u8, u8, Vec<u8>)> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 9 {
        let len = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
        if rest.len() < 9 + len {
            break;
        }
        out.push((rest[3], rest[4], rest[9..9 + len].to_vec()));
        rest = &rest[9 + len..];
    }
    out
}

#[test]
fn invalid_http2_frames_after_the_preface_get_goaway() {
    let s = setup("h2-garbage", &[]);
    let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    // A valid empty SETTINGS, then a PING on stream 1 (PING must be on stream 0) with
    // a bad length: a connection error.
    bytes.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    bytes.extend_from_slice(&[0, 0, 3, 6, 0, 0, 0, 0, 1, 1, 2, 3]);
    let mut stream = TcpStream::connect(("127.0.0.1", s.gw.port)).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream.write_all(&bytes).unwrap();
    let mut out = Vec::new();
    read_to_end(&mut stream, &mut out);
    let frames = frames(&out);
    // GOAWAY is type 7; its error code (after the last stream id) is PROTOCOL_ERROR (1)
    // or FRAME_SIZE_ERROR (6).
    let goaway = frames
        .iter()
        .find(|(t, _)| *t == 7)
        .unwrap_or_else(|| panic!("no GOAWAY in {frames:?}"));
    let code = goaway
        .1
        .get(4..8)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
    assert!(matches!(code, Some(1 | 6)), "GOAWAY {goaway:?}");
    still_serving(&s.gw);
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let s = setup("idle-keepalive", &["--request-headers-timeout", "1s"]);
    let mut stream = TcpStream::connect(("127.0.0.1", s.gw.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(8)))
        .unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: app\r\n\r\n")
        .unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let n = stream.read(&mut buf).unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    // Then nothing: the connection waits for the next request's headers, and gets closed.
    let started = Instant::now();
    let closed = loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break started.elapsed(),
            Ok(_) => {} // the rest of the first answer
        }
    };
    assert!(
        closed < Duration::from_secs(5),
        "idle for {closed:?} and still open"
    );
}

#[test]
fn headers_trickled_byte_by_byte_hit_the_header_timeout() {
    let s = setup("slowloris", &["--request-headers-timeout", "1s"]);
    let mut stream = TcpStream::connect(("127.0.0.1", s.gw.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let started = Instant::now();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: app\r\n")
        .unwrap();
    let mut buf = [0u8; 512];
    // One more header byte every 100 ms, never the blank line; the proxy must close.
    let closed_after = loop {
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "the proxy kept a connection trickling headers open for 8s"
        );
        if stream.write_all(b"x").is_err() {
            break started.elapsed();
        }
        match stream.read(&mut buf) {
            Ok(0) => break started.elapsed(),
            Ok(_) => {} // an answer (408) before the close is fine
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break started.elapsed(),
        }
    };
    assert!(
        closed_after >= Duration::from_millis(900),
        "closed after {closed_after:?}, before the 1s timeout"
    );
    still_serving(&s.gw);
}

#[test]
fn upstream_requests_carry_the_attempt_count() {
    let s = setup("attempt", &[]);
    let reply = s.gw.get("/", &[]);
    assert_eq!(reply.echo().header("x-envoy-attempt-count"), Some("1"));
}

/// The counter `name` in a `/stats` text.
fn stat(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": ")?.parse().ok())
}

#[test]
fn stats_count_requests_by_class_and_cluster() {
    let s = setup("stats", &[]);
    for _ in 0..3 {
        assert_eq!(s.gw.get("/", &[]).status, 200);
    }
    assert_eq!(s.gw.get("/broken", &[]).status, 503);
    // A 4xx the proxy makes itself: an upgrade it has no config for (403).
    let refused =
        s.gw.get("/", &["-H", "Connection: upgrade", "-H", "Upgrade: foo"]);
    assert_eq!(refused.status, 403, "{refused:?}");
    let text = curl(&[&s.gw.admin_url("/stats")]).body;
    let app = "cluster.outbound|9080||app.default.svc.cluster.local";
    let broken = "cluster.outbound|9080||broken.default.svc.cluster.local";
    assert_eq!(stat(&text, "downstream_rq_total"), Some(5), "{text}");
    assert_eq!(stat(&text, "downstream_rq_2xx"), Some(3), "{text}");
    assert_eq!(stat(&text, "downstream_rq_4xx"), Some(1), "{text}");
    assert_eq!(stat(&text, "downstream_rq_5xx"), Some(1), "{text}");
    assert_eq!(
        stat(&text, &format!("{app}.upstream_rq_total")),
        Some(3),
        "{text}"
    );
    assert_eq!(
        stat(&text, &format!("{app}.upstream_cx_connect_fail")),
        Some(0),
        "{text}"
    );
    // Istio's default retry policy tries a refused connection twice more.
    assert_eq!(
        stat(&text, &format!("{broken}.upstream_rq_total")),
        Some(3),
        "{text}"
    );
    assert_eq!(
        stat(&text, &format!("{broken}.upstream_cx_connect_fail")),
        Some(3),
        "{text}"
    );
}

#[test]
fn logging_level_changes_while_running() {
    let s = setup("logging", &[]);
    // The proxy's own answers are logged at debug level only.
    assert_eq!(s.gw.get("/broken", &[]).status, 503);
    assert!(
        !s.gw.log_text().contains("local reply"),
        "debug logged at info"
    );
    let bad = curl(&[
        "-g",
        "-X",
        "POST",
        &s.gw.admin_url("/logging?level=no[such"),
    ]);
    assert_eq!(bad.status, 400, "{bad:?}");
    let set = curl(&["-X", "POST", &s.gw.admin_url("/logging?level=debug")]);
    assert_eq!(set.status, 200, "{set:?}");
    assert_eq!(s.gw.get("/broken", &[]).status, 503);
    eventually("a debug line in the log", DEADLINE, || {
        s.gw.log_text().contains("local reply").then_some(())
    });
}

#[test]
fn readiness_answers_on_its_own_address() {
    let ready = free_port();
    let addr = format!("127.0.0.1:{ready}");
    let s = setup("readiness", &["--readiness", &addr]);
    let reply = curl(&[&format!("http://{addr}/healthz/ready")]);
    assert_eq!(reply.status, 200, "{reply:?}");
    let other = curl(&[&format!("http://{addr}/stats")]);
    assert_eq!(other.status, 404, "{other:?}");
    still_serving(&s.gw);
}

/// An HTTP/1.1 backend that answers `slow` after `delay`, counting requests as they
/// arrive.
struct SlowBackend {
    port: u16,
    arrived: Arc<AtomicUsize>,
    _runtime: tokio::runtime::Runtime,
}

fn slow_backend(delay: Duration) -> SlowBackend {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let arrived = Arc::new(AtomicUsize::new(0));
    let count = arrived.clone();
    runtime.spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let count = count.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_req: Request<_>| {
                    count.fetch_add(1, Ordering::SeqCst);
                    async move {
                        tokio::time::sleep(delay).await;
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("slow\n"))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    SlowBackend {
        port,
        arrived,
        _runtime: runtime,
    }
}

/// An HTTP/2 connection past its preface: the server's SETTINGS have arrived (kept in the
/// returned bytes).
fn h2c_connection(port: u16) -> (TcpStream, Vec<u8>) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .unwrap();
    let mut bytes = Vec::new();
    let mut buf = [0u8; 1024];
    while frames(&bytes).is_empty() {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "the proxy closed a fresh HTTP/2 connection");
        bytes.extend_from_slice(&buf[..n]);
    }
    (stream, bytes)
}

/// Reads an HTTP/2 connection until the proxy closes it, answering its PINGs as a real
/// client does (a graceful shutdown waits for the answer before the last GOAWAY).
fn h2_until_closed(stream: &mut TcpStream, out: &mut Vec<u8>) {
    let mut buf = [0u8; 4096];
    let mut answered = 0;
    loop {
        let pings: Vec<Vec<u8>> = frames_with_flags(out)
            .into_iter()
            .filter(|(kind, flags, _)| *kind == 6 && flags & 1 == 0)
            .map(|(_, _, payload)| payload)
            .collect();
        for payload in pings.iter().skip(answered) {
            let mut ack = vec![0, 0, 8, 6, 1, 0, 0, 0, 0];
            ack.extend_from_slice(payload);
            let _ = stream.write_all(&ack);
        }
        answered = pings.len();
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return,
            Err(e) => panic!("the connection was not closed: {e}"),
        }
    }
}

/// Appends what `stream` sends until it closes (a reset counts as a close).
fn read_to_end(stream: &mut TcpStream, out: &mut Vec<u8>) {
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return,
            Err(e) => panic!("the connection was not closed: {e}"),
        }
    }
}

#[test]
fn sigterm_drains_in_flight_requests_then_exits_zero() {
    let dir = TempDir::new("drain");
    let backend = slow_backend(Duration::from_secs(2));
    let (refused, _socket) = closed_port();
    let port = free_port();
    config(&dir, port, backend.port, refused);
    let ready = free_port();
    let ready_url = format!("http://127.0.0.1:{ready}/healthz/ready");
    let mut gw = Gateway::start_with(
        &dir,
        port,
        &[
            "--drain-timeout",
            "5s",
            "--readiness",
            &format!("127.0.0.1:{ready}"),
        ],
    );
    assert_eq!(curl(&[&ready_url]).status, 200);
    // An idle keep-alive connection, which the drain must close.
    let mut idle = TcpStream::connect(("127.0.0.1", port)).unwrap();
    idle.set_read_timeout(Some(DEADLINE)).unwrap();
    // And an idle h2c connection, which must get GOAWAY.
    let (mut h2, mut h2_bytes) = h2c_connection(port);
    let url = format!("http://127.0.0.1:{port}/slow");
    let in_flight = std::thread::spawn(move || curl(&[&url]));
    eventually("the slow request to reach the backend", DEADLINE, || {
        (backend.arrived.load(Ordering::SeqCst) == 1).then_some(())
    });
    let term = Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &gw.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success(), "kill -TERM failed");
    eventually("new connections to be refused", DEADLINE, || {
        TcpStream::connect(("127.0.0.1", port))
            .is_err()
            .then_some(())
    });
    let draining = curl(&[&ready_url]);
    assert_eq!(
        draining.status, 503,
        "readiness while draining: {draining:?}"
    );
    let admin = curl(&[&gw.admin_url("/ready")]);
    assert_eq!((admin.status, admin.body.as_str()), (503, "DRAINING\n"));
    let mut buf = [0u8; 64];
    assert!(
        matches!(idle.read(&mut buf), Ok(0) | Err(_)),
        "the idle connection was not closed"
    );
    h2_until_closed(&mut h2, &mut h2_bytes);
    let frames = frames(&h2_bytes);
    assert!(
        frames.iter().any(|(t, _)| *t == 7),
        "no GOAWAY on the idle HTTP/2 connection: {frames:?}"
    );
    let reply = in_flight.join().unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body, "slow\n");
    let code = gw.wait_exit(Duration::from_secs(5));
    assert_eq!(code, Some(0), "exit code");
    assert!(
        // Drained once the slow request was answered: well before the 5s timeout.
        term.elapsed() < Duration::from_secs(4),
        "exited {:?} after SIGTERM",
        term.elapsed()
    );
}

#[test]
fn drain_timeout_bounds_the_wait_for_slow_requests() {
    let dir = TempDir::new("drain-timeout");
    let backend = slow_backend(Duration::from_secs(30));
    let (refused, _socket) = closed_port();
    let port = free_port();
    config(&dir, port, backend.port, refused);
    let mut gw = Gateway::start_with(&dir, port, &["--drain-timeout", "1s"]);
    let url = format!("http://127.0.0.1:{port}/slow");
    let in_flight = std::thread::spawn(move || support::try_curl(&[&url]));
    eventually("the slow request to reach the backend", DEADLINE, || {
        (backend.arrived.load(Ordering::SeqCst) == 1).then_some(())
    });
    let term = Instant::now();
    Command::new("kill")
        .args(["-TERM", &gw.pid().to_string()])
        .status()
        .unwrap();
    assert_eq!(gw.wait_exit(Duration::from_secs(5)), Some(0));
    let took = term.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "exited {took:?} after SIGTERM with a 1s drain timeout"
    );
    assert!(
        in_flight.join().unwrap().is_none(),
        "the cut request succeeded"
    );
}

#[test]
fn oversize_request_headers_over_h2c_get_431() {
    let s = setup("oversize-h2", &[]);
    let big = |kib: usize| format!("X-Big: {}", "a".repeat(kib * 1024));
    let reply = s.gw.get("/", &["--http2-prior-knowledge", "-H", &big(61)]);
    assert_eq!(reply.status, 431, "{reply:?}");
    let reply = s.gw.get("/", &["--http2-prior-knowledge", "-H", &big(58)]);
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.version, "HTTP/2");
}
