//! End-to-end: the route-level resilience of VirtualService rules through a real `weft
//! proxy` gateway process and scripted backends (ones that reset, hang, fail the first N
//! requests): retries, per-try and route timeouts, fault injection, mirroring, and the
//! `x-envoy-*` headers a mesh-internal caller steers them with.

#[allow(dead_code)]
mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::config::{http_gateway, service, virtual_service};
use support::scripted::{Act, Scripted};
use support::{DEADLINE, Gateway, TempDir, closed_port, eventually, free_port};

/// A gateway on a free port routing every host by `http` (items of `spec.http`), with a
/// ServiceEntry `<name>.default.svc.cluster.local:9080` per `(name, backend ports)`.
fn mesh(test: &str, http: &str, services: &[(&str, &[u16])]) -> (TempDir, Gateway) {
    mesh_with(test, http, services, &[], &[])
}

/// [`mesh`] with more config files, `(file name, YAML)`, and `weft proxy` arguments.
fn mesh_with(
    test: &str,
    http: &str,
    services: &[(&str, &[u16])],
    files: &[(&str, &str)],
    args: &[&str],
) -> (TempDir, Gateway) {
    let dir = TempDir::new(test);
    for (file, text) in files {
        dir.write(file, text);
    }
    let port = free_port();
    dir.write("gateway.yaml", &http_gateway("public", port, &["*"]));
    dir.write("vs.yaml", &virtual_service("routes", "public", http));
    for (name, ports) in services {
        dir.write(&format!("{name}.yaml"), &service(name, "HTTP", ports));
    }
    let gw = Gateway::start_with(&dir, port, args);
    (dir, gw)
}

/// A rule sending `prefix` to `host`, with `extra` (indented four spaces) in the rule.
fn rule(prefix: &str, host: &str, extra: &str) -> String {
    format!(
        "  - match:
    - uri:
        prefix: {prefix}
    route:
    - destination:
        host: {host}
{extra}"
    )
}

/// One counter of the cluster `outbound|9080||<service>.default.svc.cluster.local`.
fn stat(gw: &Gateway, service: &str, counter: &str) -> u64 {
    let text = support::curl_raw(&["-s", &gw.admin_url("/stats")]);
    let name = format!("cluster.outbound|9080||{service}.default.svc.cluster.local.{counter}: ");
    text.lines()
        .find_map(|l| l.strip_prefix(&name))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /stats:\n{text}"))
}

fn timed(gw: &Gateway, path: &str, args: &[&str]) -> (support::Reply, Duration) {
    let start = Instant::now();
    let reply = gw.get(path, args);
    (reply, start.elapsed())
}

fn attempts(b: &Scripted) -> Vec<String> {
    b.seen()
        .iter()
        .map(|s| s.attempt.clone().unwrap_or_default())
        .collect()
}

#[test]
fn retries_recover_from_resets_and_tell_the_app_the_attempt() {
    let b = Scripted::start("b", |n| if n < 2 { Act::Reset } else { Act::Echo });
    let retries = "    retries:\n      attempts: 3\n      retryOn: reset\n";
    let (_dir, gw) = mesh("retry-reset", &rule("/", "b", retries), &[("b", &[b.port])]);
    let reply = gw.get("/", &[]);
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(attempts(&b), ["1", "2", "3"]);
    assert_eq!(stat(&gw, "b", "upstream_rq_retry"), 2);
    assert_eq!(stat(&gw, "b", "upstream_rq_retry_success"), 1);
}

#[test]
fn a_post_body_is_replayed_to_the_retry() {
    let b = Scripted::start("b", |n| if n == 0 { Act::Reset } else { Act::Echo });
    let retries = "    retries:\n      attempts: 1\n      retryOn: reset\n";
    let (_dir, gw) = mesh("retry-body", &rule("/", "b", retries), &[("b", &[b.port])]);
    let reply = gw.get("/upload", &["-d", "hello=world"]);
    assert_eq!(reply.status, 200, "{reply:?}");
    let bodies: Vec<String> = b.seen().into_iter().map(|s| s.body).collect();
    assert_eq!(bodies, ["hello=world", "hello=world"]);
}

#[test]
fn istio_default_policy_retries_503_twice_and_attempts_zero_turns_it_off() {
    let b = Scripted::start("b", |_| Act::Status(503));
    let off = "    retries:\n      attempts: 0\n";
    let http = rule("/off", "b", off) + &rule("/", "b", "");
    let (_dir, gw) = mesh("retry-default", &http, &[("b", &[b.port])]);
    let reply = gw.get("/", &[]);
    assert_eq!(reply.status, 503);
    assert_eq!(
        reply.header("x-backend"),
        Some("b"),
        "the upstream's own 503"
    );
    assert_eq!(attempts(&b), ["1", "2", "3"]);
    assert_eq!(stat(&gw, "b", "upstream_rq_retry_limit_exceeded"), 1);
    let reply = gw.get("/off", &[]);
    assert_eq!(reply.status, 503);
    assert_eq!(b.count(), 4, "attempts: 0 means one try");
}

#[test]
fn retries_go_to_another_endpoint_than_the_one_that_failed() {
    let bad = Scripted::start("bad", |_| Act::Status(503));
    let good = Scripted::start("good", |_| Act::Echo);
    // The default load balancer (least request, two random choices) with Istio's default
    // retry policy: were retries not steered away from the endpoint that failed, half
    // the retries would go back to it (and one request in eight get its 503).
    let (_dir, gw) = mesh(
        "retry-other-host",
        &rule("/", "pair", ""),
        &[("pair", &[bad.port, good.port])],
    );
    for _ in 0..20 {
        let reply = gw.get("/", &[]);
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.header("x-backend"), Some("good"));
    }
    let retried = bad.seen();
    assert!(!retried.is_empty(), "the failing endpoint was never picked");
    assert!(
        retried.iter().all(|s| s.attempt.as_deref() == Some("1")),
        "a retry went back to the endpoint that had failed: {retried:?}"
    );
}

#[test]
fn a_spent_retry_budget_stops_retries_and_says_uo() {
    let b = Scripted::start("b", |_| Act::Status(503));
    let (port, _closed) = closed_port();
    // No share of the load and no floor: not one retry may be in flight.
    let budget = |host: &str| {
        format!(
            "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: {host}
spec:
  host: {host}
  trafficPolicy:
    retryBudget:
      percent: 0
      minRetryConcurrency: 0
"
        )
    };
    let (b_rule, gone_rule) = (budget("b"), budget("gone"));
    let http = rule("/gone", "gone", "") + &rule("/", "b", "");
    let services: [(&str, &[u16]); 2] = [("b", &[b.port]), ("gone", &[port])];
    let files = [
        ("b-dr.yaml", b_rule.as_str()),
        ("gone-dr.yaml", gone_rule.as_str()),
    ];
    let (_dir, gw) = mesh_with("retry-budget", &http, &services, &files, &[]);
    let reply = gw.get("/", &[]);
    assert_eq!(reply.status, 503);
    assert_eq!(b.count(), 1, "the 503 would have been retried twice");
    assert_eq!(stat(&gw, "b", "upstream_rq_retry_overflow"), 1);
    let reply = gw.get("/gone", &[]);
    let reason = reply.header("x-weft-reason").unwrap_or_default();
    assert!(reason.starts_with("UF,UO: "), "{reason}");
}

#[test]
fn exhausted_retries_on_connect_failures_say_urx() {
    let (port, _closed) = closed_port();
    let (_dir, gw) = mesh("retry-urx", &rule("/", "gone", ""), &[("gone", &[port])]);
    let reply = gw.get("/", &[]);
    assert_eq!(reply.status, 503);
    let reason = reply.header("x-weft-reason").unwrap_or_default();
    assert!(reason.starts_with("UF,URX: "), "{reason}");
    assert_eq!(stat(&gw, "gone", "upstream_cx_connect_fail"), 3);
    assert_eq!(stat(&gw, "gone", "upstream_rq_retry"), 2);
}

#[test]
fn a_per_try_timeout_moves_the_request_to_another_endpoint() {
    let slow = Scripted::start("slow", |_| Act::Delay(Duration::from_secs(5)));
    let fast = Scripted::start("fast", |_| Act::Echo);
    let retries = "    retries:\n      attempts: 2\n      perTryTimeout: 200ms\n      retryOn: gateway-error\n";
    // Round robin, so that the slow endpoint is certainly picked first now and then.
    let round_robin = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: pair
spec:
  host: pair
  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBIN
";
    let (_dir, gw) = mesh_with(
        "per-try",
        &rule("/", "pair", retries),
        &[("pair", &[slow.port, fast.port])],
        &[("dr.yaml", round_robin)],
        &[],
    );
    for _ in 0..4 {
        let (reply, took) = timed(&gw, "/", &[]);
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.header("x-backend"), Some("fast"));
        assert!(took < Duration::from_secs(4), "{took:?}");
    }
    assert!(slow.count() >= 1, "the slow endpoint was never tried");
    assert_eq!(
        stat(&gw, "pair", "upstream_rq_per_try_timeout"),
        slow.count() as u64
    );
}

#[test]
fn a_route_timeout_answers_504_ut_when_it_runs_out() {
    let b = Scripted::start("b", |_| Act::Delay(Duration::from_secs(3)));
    let (_dir, gw) = mesh(
        "timeout",
        &rule("/", "b", "    timeout: 300ms\n"),
        &[("b", &[b.port])],
    );
    let (reply, took) = timed(&gw, "/", &[]);
    assert_eq!(reply.status, 504, "{reply:?}");
    assert_eq!(reply.body, "upstream request timeout");
    let reason = reply.header("x-weft-reason").unwrap_or_default();
    assert!(reason.starts_with("UT: "), "{reason}");
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(2500),
        "{took:?}"
    );
    assert_eq!(stat(&gw, "b", "upstream_rq_timeout"), 1);
}

/// The seeds' walkthrough, scaled down: a hop that delays (fault) behind a hop with a
/// shorter timeout gives 504 once the timeout has passed, not after the delay.
#[test]
fn a_delay_behind_a_shorter_timeout_gives_504_at_the_timeout() {
    let b = Scripted::start("ratings", |_| Act::Echo);
    let dir = TempDir::new("delay-timeout");
    let (front, inner) = (free_port(), free_port());
    let inner_gateway = http_gateway("inner", inner, &["*"]);
    dir.write("gateway.yaml", &http_gateway("public", front, &["*"]));
    dir.write(
        "inner-gateway.yaml",
        &inner_gateway.replace("name: http", "name: http-inner"),
    );
    let front_rules = rule("/", "inner-hop", "    timeout: 300ms\n");
    dir.write("vs.yaml", &virtual_service("front", "public", &front_rules));
    let delay = "    fault:\n      delay:\n        fixedDelay: 2s\n        percentage:\n          value: 100\n";
    dir.write(
        "inner-vs.yaml",
        &virtual_service("inner", "inner", &rule("/", "ratings", delay)),
    );
    dir.write("inner-hop.yaml", &service("inner-hop", "HTTP", &[inner]));
    dir.write("ratings.yaml", &service("ratings", "HTTP", &[b.port]));
    let gw = Gateway::start(&dir, front);
    let (reply, took) = timed(&gw, "/", &[]);
    assert_eq!(reply.status, 504, "{reply:?}");
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(1800),
        "cut at the timeout, not after the 2s delay: {took:?}"
    );
    // The inner hop alone: delayed, then answered.
    let start = Instant::now();
    let direct = support::curl(&[&format!("http://127.0.0.1:{inner}/")]);
    assert_eq!(direct.status, 200, "{direct:?}");
    assert!(start.elapsed() >= Duration::from_secs(2));
}

#[test]
fn an_abort_applies_only_to_the_requests_its_rule_matches() {
    let b = Scripted::start("ratings", |_| Act::Echo);
    // Seed 000's rule: jason gets a 500 (with Istio 1.0's `percent`), everyone else v1.
    let http = "  - match:
    - headers:
        end-user:
          exact: jason
    fault:
      abort:
        httpStatus: 500
        percent: 100
    route:
    - destination:
        host: ratings
  - route:
    - destination:
        host: ratings
";
    let (_dir, gw) = mesh("abort-jason", http, &[("ratings", &[b.port])]);
    let jason = gw.get("/ratings/0", &["-H", "end-user: jason"]);
    assert_eq!(jason.status, 500, "{jason:?}");
    assert_eq!(jason.body, "fault filter abort");
    let reason = jason.header("x-weft-reason").unwrap_or_default();
    assert!(reason.starts_with("FI: "), "{reason}");
    let other = gw.get("/ratings/0", &["-H", "end-user: alice"]);
    assert_eq!(other.status, 200);
    assert_eq!(
        b.count(),
        1,
        "the aborted request never reached the backend"
    );
}

#[test]
fn a_50_percent_abort_aborts_half_the_requests() {
    let b = Scripted::start("b", |_| Act::Echo);
    let abort = "    fault:\n      abort:\n        httpStatus: 503\n        percentage:\n          value: 50\n";
    let (_dir, gw) = mesh("abort-half", &rule("/", "b", abort), &[("b", &[b.port])]);
    let n = 400;
    let url = format!("http://127.0.0.1:{}/", gw.port);
    let out = Command::new("curl")
        .args(["-s", "-w", "%{http_code}\n"])
        .args((0..n).flat_map(|_| ["-o", "/dev/null", url.as_str()]))
        .output()
        .expect("run curl");
    let codes = String::from_utf8_lossy(&out.stdout).into_owned();
    let aborted = codes.lines().filter(|c| *c == "503").count();
    let passed = codes.lines().filter(|c| *c == "200").count();
    assert_eq!(aborted + passed, n, "{codes}");
    // Binomial(400, 0.5): sd 10; 5 sd either side fails once in ~1.7 million runs.
    assert!((150..=250).contains(&aborted), "{aborted} of {n} aborted");
    assert_eq!(b.count(), passed);
}

#[test]
fn a_grpc_abort_is_a_trailers_only_grpc_answer() {
    let b = Scripted::start("b", |_| Act::Echo);
    let abort = "    fault:\n      abort:\n        grpcStatus: UNAVAILABLE\n        percentage:\n          value: 100\n";
    let (_dir, gw) = mesh("abort-grpc", &rule("/", "b", abort), &[("b", &[b.port])]);
    let reply = gw.get("/pkg.Service/Method", &[]);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("grpc-status"), Some("14"));
    assert_eq!(reply.header("content-type"), Some("application/grpc"));
    assert_eq!(b.count(), 0);
}

#[test]
fn mirrors_get_a_shadow_copy_and_never_slow_or_fail_the_caller() {
    let primary = Scripted::start("v1", |_| Act::Echo);
    let mirror = Scripted::start("v2", |_| Act::Delay(Duration::from_secs(3)));
    let (gone, _closed) = closed_port();
    let mirrors = "    mirrors:
    - destination:
        host: v2
      percentage:
        value: 100
    - destination:
        host: gone
";
    let none = "    mirror:\n      host: v2\n    mirrorPercentage:\n      value: 0\n";
    let http = rule("/none", "v1", none) + &rule("/", "v1", mirrors);
    let services: [(&str, &[u16]); 3] = [
        ("v1", &[primary.port]),
        ("v2", &[mirror.port]),
        ("gone", &[gone]),
    ];
    let (_dir, gw) = mesh("mirror", &http, &services);
    for i in 0..5 {
        let (reply, took) = timed(&gw, &format!("/headers/{i}"), &["-H", "Host: httpbin:8000"]);
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.header("x-backend"), Some("v1"));
        assert!(
            took < Duration::from_secs(2),
            "the slow mirror held the caller: {took:?}"
        );
    }
    gw.get("/none", &["-H", "Host: httpbin:8000"]);
    eventually("the mirror to see every mirrored request", DEADLINE, || {
        (mirror.count() == 5).then_some(())
    });
    assert!(primary.seen().iter().all(|s| s.host == "httpbin:8000"));
    for seen in mirror.seen() {
        assert_eq!(seen.host, "httpbin-shadow:8000");
        assert_eq!(seen.attempt, None, "shadows are not attempts");
    }
    assert_eq!(primary.count(), 6);
}

#[test]
fn mesh_internal_callers_steer_timeouts_and_retries_with_envoy_headers() {
    let slow = Scripted::start("slow", |_| Act::Delay(Duration::from_secs(3)));
    let failing = Scripted::start("failing", |_| Act::Status(500));
    let http = rule("/slow", "slow", "") + &rule("/", "failing", "");
    let services: [(&str, &[u16]); 2] = [("slow", &[slow.port]), ("failing", &[failing.port])];
    let (_dir, gw) = mesh("steer", &http, &services);
    let (reply, took) = timed(&gw, "/slow", &["-H", "x-envoy-upstream-rq-timeout-ms: 200"]);
    assert_eq!(reply.status, 504, "{reply:?}");
    assert!(took < Duration::from_millis(2500), "{took:?}");
    let reply = gw.get(
        "/",
        &[
            "-H",
            "x-envoy-retry-on: 5xx",
            "-H",
            "x-envoy-max-retries: 3",
        ],
    );
    assert_eq!(reply.status, 500);
    assert_eq!(attempts(&failing), ["1", "2", "3", "4"]);
    for seen in failing.seen() {
        let forwarded = seen.headers.as_object().map(|h| {
            h.keys()
                .filter(|k| k.starts_with("x-envoy-") && *k != "x-envoy-attempt-count")
                .cloned()
                .collect::<Vec<_>>()
        });
        assert_eq!(forwarded, Some(vec![]), "steering headers are consumed");
    }
}

#[test]
fn a_stream_idle_for_too_long_is_given_up() {
    let slow = Scripted::start("slow", |_| Act::Delay(Duration::from_secs(3)));
    let stalling = Scripted::start("stalling", |_| Act::Stall);
    let http = rule("/stall", "stalling", "") + &rule("/", "slow", "");
    let services: [(&str, &[u16]); 2] = [("slow", &[slow.port]), ("stalling", &[stalling.port])];
    let args = ["--stream-idle-timeout", "300ms"];
    let (_dir, gw) = mesh_with("stream-idle", &http, &services, &[], &args);
    // No answer at all: 504 with Envoy's SI flag, and no retry (it is not a try's timeout).
    let (reply, took) = timed(&gw, "/", &[]);
    assert_eq!(reply.status, 504, "{reply:?}");
    assert_eq!(reply.body, "stream timeout");
    let reason = reply.header("x-weft-reason").unwrap_or_default();
    assert!(reason.starts_with("SI: "), "{reason}");
    assert!(took < Duration::from_millis(2500), "{took:?}");
    assert_eq!(slow.count(), 1);
    // An answer whose body stops coming: broken off, well before the backend's 30 s.
    let start = Instant::now();
    let url = format!("http://127.0.0.1:{}/stall", gw.port);
    let out = Command::new("curl")
        .args(["-s", "-S", &url])
        .output()
        .expect("run curl");
    assert!(
        !out.status.success(),
        "the stalled body looked complete: {out:?}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("the first piece"));
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}
