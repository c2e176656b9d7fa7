//! The seeds' walkthroughs, played through the CLI on a real one-host mesh: `weft up
//! --demo ...` in a network namespace the test made, the configs of `examples/` applied with
//! `weft apply`, and the page or the answer checked with curl through the ingress gateway
//! (127.0.0.1:8080 inside that namespace) or from the `sleep` workload (`weft exec`). Each
//! step waits until the new config shows (a push takes a fraction of a second) instead of
//! sleeping. Needs root, iproute2, iptables, util-linux and curl.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed set-up step should stop the test

#[path = "support/mesh_host.rs"]
#[allow(dead_code)] // shared with the mesh tests
mod mesh_host;
#[allow(dead_code)] // shared with the other end-to-end tests
mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use mesh_host::{MeshHost, text};
use support::eventually;

/// How long a config change may take to show.
const SETTLE: Duration = Duration::from_secs(15);

fn example(path: &str) -> String {
    format!("{}/../../examples/{path}", env!("CARGO_MANIFEST_DIR"))
}

/// `weft apply -f` each example file; the command must succeed.
fn apply(host: &MeshHost, files: &[&str]) {
    let mut args = vec!["apply".to_string()];
    for f in files {
        args.push("-f".into());
        args.push(example(f));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = host.weft(&args);
    assert!(out.status.success(), "weft {args:?} failed: {}", text(&out));
}

/// What one load of the product page shows, and how long it took.
struct Page {
    status: String,
    html: String,
    took: Duration,
}

impl Page {
    /// `none`, `black` or `red`: the stars reviews v1, v2 or v3 render.
    fn stars(&self) -> &'static str {
        if self.html.contains("<font color=\"red\">") {
            "red"
        } else if self.html.contains("<font color=\"black\">") {
            "black"
        } else {
            "none"
        }
    }

    fn reviews_unavailable(&self) -> bool {
        self.html
            .contains("Sorry, product reviews are currently unavailable for this book.")
    }
}

/// GET /productpage through the ingress gateway, with a session's cookie jar.
fn page(host: &MeshHost, jar: Option<&PathBuf>) -> Page {
    let mut argv = vec![
        "curl".to_string(),
        "-sS".into(),
        "--max-time".into(),
        "30".into(),
        "-w".into(),
        "\n%{http_code}".into(),
    ];
    if let Some(jar) = jar {
        argv.extend(["-b".into(), jar.display().to_string()]);
    }
    argv.push("http://127.0.0.1:8080/productpage".into());
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let start = Instant::now();
    let out = host.in_host(&argv);
    let took = start.elapsed();
    let body = String::from_utf8_lossy(&out.stdout).to_string();
    let (html, status) = body.rsplit_once('\n').unwrap_or(("", ""));
    Page {
        status: status.to_string(),
        html: html.to_string(),
        took,
    }
}

/// Signs `user` in on the product page (its login form) and returns the cookie jar.
fn login(host: &MeshHost, user: &str) -> PathBuf {
    let jar = host.dir.join(format!("{user}.cookies"));
    let jar_arg = jar.display().to_string();
    let form = format!("username={user}");
    let out = host.in_host(&[
        "curl",
        "-sS",
        "--max-time",
        "10",
        "-c",
        &jar_arg,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-d",
        &form,
        "-d",
        "passwd=secret",
        "http://127.0.0.1:8080/login",
    ]);
    let code = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        code == "302" || code == "200",
        "login answered {code}: {}",
        text(&out)
    );
    jar
}

/// Waits until `n` page loads in a row (for the session `jar`) satisfy `ok`.
fn settle(
    host: &MeshHost,
    what: &str,
    jar: Option<&PathBuf>,
    n: usize,
    ok: impl Fn(&Page) -> bool,
) {
    eventually(what, SETTLE, || {
        (0..n).all(|_| ok(&page(host, jar))).then_some(())
    });
}

/// Bookinfo through the gateway at once; all-v1; reviews-test-v2 by user; 50/50 v1/v3;
/// the ratings delay and abort for jason; the 2 s delay behind a 0.5 s timeout.
#[test]
fn bookinfo_walkthroughs() {
    let host = MeshHost::start(&["--demo", "bookinfo"]);

    // Through the gateway at once; with no routes, reviews answers from all three versions.
    let first = page(&host, None);
    assert_eq!(first.status, "200", "{}", first.html);
    assert!(first.html.contains("<title>Simple Bookstore App</title>"));
    // productpage found details and reviews by name (the sidecar's DNS proxy).
    assert!(!first.html.contains("Sorry"), "{}", first.html);
    // And from inside the mesh, as the seeds' `kubectl exec ... curl productpage:9080`.
    let inside = exec(
        &host,
        "sleep",
        &[
            "curl",
            "-sS",
            "--max-time",
            "10",
            "http://productpage:9080/productpage",
        ],
    );
    assert!(
        inside.contains("<title>Simple Bookstore App</title>"),
        "{inside}"
    );
    let mut seen = std::collections::BTreeSet::new();
    eventually("reviews v1, v2 and v3 to all answer", SETTLE * 2, || {
        seen.insert(page(&host, None).stars());
        (seen.len() == 3).then_some(())
    });

    // virtual-service-all-v1: no stars, every time.
    apply(
        &host,
        &[
            "bookinfo/destination-rule-all.yaml",
            "bookinfo/virtual-service-all-v1.yaml",
        ],
    );
    settle(&host, "every page from reviews v1", None, 10, |p| {
        p.status == "200" && p.stars() == "none"
    });

    // reviews-test-v2: jason sees black stars, everyone else none.
    apply(&host, &["bookinfo/virtual-service-reviews-test-v2.yaml"]);
    let jason = login(&host, "jason");
    settle(&host, "jason to see black stars", Some(&jason), 5, |p| {
        p.stars() == "black"
    });
    for _ in 0..10 {
        assert_eq!(page(&host, None).stars(), "none");
    }

    // 50/50 between v1 and v3: of 100 loads, v3 (red) between 30 and 70.
    apply(&host, &["bookinfo/virtual-service-reviews-50-v3.yaml"]);
    settle(&host, "reviews v3 to answer", None, 1, |p| {
        p.stars() == "red"
    });
    let red = (0..100)
        .filter(|_| page(&host, None).stars() == "red")
        .count();
    assert!((30..=70).contains(&red), "{red} of 100 pages from v3");

    // ratings-test-delay: a 7 s delay for jason; productpage gives up after ~6 s
    // (3 s timeout, one retry) and says reviews are unavailable; others are unaffected.
    apply(
        &host,
        &[
            "bookinfo/virtual-service-reviews-test-v2.yaml",
            "bookinfo/virtual-service-ratings-test-delay.yaml",
        ],
    );
    settle(
        &host,
        "jason's page to wait for the delay",
        Some(&jason),
        1,
        |p| p.reviews_unavailable(),
    );
    let slow = page(&host, Some(&jason));
    assert!(slow.reviews_unavailable(), "{}", slow.html);
    assert!(
        slow.took >= Duration::from_millis(5500) && slow.took < Duration::from_secs(15),
        "jason's page took {:?}",
        slow.took
    );
    let other = page(&host, None);
    assert_eq!(other.stars(), "none");
    assert!(other.took < Duration::from_secs(3), "took {:?}", other.took);

    // ratings-test-abort: jason's reviews say ratings are unavailable; others unaffected.
    apply(&host, &["bookinfo/virtual-service-ratings-test-abort.yaml"]);
    settle(
        &host,
        "jason to see the ratings abort",
        Some(&jason),
        3,
        |p| p.html.contains("Ratings service is currently unavailable") && !p.reviews_unavailable(),
    );
    assert!(
        !page(&host, None)
            .html
            .contains("Ratings service is currently unavailable")
    );

    // The seeds' timeout case: ratings delayed 2 s, reviews -> v2: each page ~2 s with
    // black stars; then a 0.5 s reviews timeout: ~1 s (0.5 s, one retry), unavailable.
    apply(
        &host,
        &[
            "bookinfo/virtual-service-reviews-v2.yaml",
            "bookinfo/virtual-service-ratings-delay-2s.yaml",
        ],
    );
    settle(&host, "pages slowed by the 2 s delay", None, 2, |p| {
        p.stars() == "black" && p.took >= Duration::from_millis(1900)
    });
    apply(&host, &["bookinfo/virtual-service-reviews-timeout.yaml"]);
    settle(
        &host,
        "the reviews timeout to cut pages short",
        None,
        2,
        |p| p.reviews_unavailable() && p.took < Duration::from_millis(1900),
    );
    let cut = page(&host, None);
    assert!(
        cut.took >= Duration::from_millis(900) && cut.took < Duration::from_millis(1900),
        "a page behind the 0.5 s timeout took {:?}",
        cut.took
    );
}

/// The course's Sidecar walkthrough: before, productpage's sidecar has the endpoints of
/// every bookinfo service; with examples/bookinfo/sidecars.yaml only those of reviews and
/// details (and istio-system's), as `weft proxy-config endpoints deploy/productpage-v1.default`
/// shows; the page still works, stars included (reviews v2/v3 keep ratings); deleting the
/// Sidecars gives everything back.
#[test]
fn sidecar_resources_narrow_what_each_proxy_is_given() {
    let host = MeshHost::start(&["--demo", "bookinfo"]);
    // The services productpage's sidecar has endpoints for.
    let services = || -> std::collections::BTreeSet<String> {
        let out = host.weft(&["proxy-config", "endpoints", "deploy/productpage-v1.default"]);
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().last())
            .filter_map(|cluster| cluster.rsplit('|').next())
            .map(|host| host.split('.').take(2).collect::<Vec<_>>().join("."))
            .collect()
    };
    let all = services();
    for service in [
        "details.default",
        "reviews.default",
        "ratings.default",
        "productpage.default",
        "istio-egressgateway.istio-system",
    ] {
        assert!(all.contains(service), "{service} in {all:?}");
    }

    apply(&host, &["bookinfo/sidecars.yaml"]);
    let wanted: std::collections::BTreeSet<String> = [
        "details.default",
        "reviews.default",
        "istio-egressgateway.istio-system",
    ]
    .map(String::from)
    .into();
    eventually("productpage's view to narrow", SETTLE, || {
        (services() == wanted).then_some(())
    });
    // Still the whole page, with stars from v2 or v3 (which keep ratings).
    let mut stars = std::collections::BTreeSet::new();
    for _ in 0..15 {
        let p = page(&host, None);
        assert_eq!(p.status, "200");
        assert!(!p.html.contains("Sorry"), "{}", p.html);
        assert!(
            !p.html.contains("Ratings service is currently unavailable"),
            "reviews v2/v3 still reach ratings: {}",
            p.html
        );
        stars.insert(p.stars());
    }
    assert!(
        stars.contains("black") || stars.contains("red"),
        "{stars:?}"
    );

    let out = host.weft(&["delete", "-f", &example("bookinfo/sidecars.yaml")]);
    assert!(out.status.success(), "{}", text(&out));
    eventually("productpage's view to widen again", SETTLE, || {
        (services() == all).then_some(())
    });
}

/// The course's proxy-config walkthrough: with customers pinned to v1, web-frontend's
/// sidecar has route config `80` whose customers virtual host sends everything to
/// `outbound|80|v1|customers...` with 2 retries, the two customers clusters (`-` and `v1`,
/// both from the DestinationRule customers.default), and customers v1's endpoint on its
/// target port; istioctl's filters (`--name`, `--fqdn`, `--cluster`, `--port`) narrow them.
#[test]
fn proxy_config_shows_what_web_frontend_was_given() {
    let host = MeshHost::start(&["--demo", "customers"]);
    apply(
        &host,
        &["customers/customers-dr.yaml", "customers/customers-vs.yaml"],
    );
    let pc = |args: &[&str]| {
        let mut all = vec!["proxy-config"];
        all.extend_from_slice(args);
        let out = host.weft(&all);
        assert!(out.status.success(), "weft {all:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let fqdn = "customers.default.svc.cluster.local";
    let v1 = format!("outbound|80|v1|{fqdn}");
    let routes: serde_json::Value =
        eventually("web-frontend's route to customers v1", SETTLE, || {
            let json: serde_json::Value = serde_json::from_str(&pc(&[
                "routes",
                "web-frontend",
                "--name",
                "80",
                "-o",
                "json",
            ]))
            .unwrap();
            json.to_string().contains(&v1).then_some(json)
        });
    assert_eq!(
        routes.as_object().unwrap().len(),
        1,
        "only route config 80: {routes}"
    );
    let vhost = routes["80"]["virtual_hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == format!("{fqdn}:80"))
        .expect("customers' virtual host");
    let domains: Vec<&str> = vhost["domains"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d.as_str())
        .collect();
    for d in [fqdn, "customers", "customers.default", "customers:80"] {
        assert!(domains.contains(&d), "{d} in {domains:?}");
    }
    let vip = host.vip("default", "customers");
    assert!(
        domains.contains(&vip.as_str()),
        "the service address {vip} in {domains:?}"
    );
    let route = &vhost["routes"][0];
    assert_eq!(route["action"]["Forward"][0]["cluster"], v1.as_str());
    assert_eq!(
        route["policy"]["retry"]["retries"], 2,
        "Istio's default retries"
    );

    let clusters = pc(&["clusters", "web-frontend", "--fqdn", fqdn]);
    let rows: Vec<Vec<&str>> = clusters
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec![
                "SERVICE",
                "FQDN",
                "PORT",
                "SUBSET",
                "DIRECTION",
                "TYPE",
                "DESTINATION",
                "RULE"
            ],
            vec![fqdn, "80", "-", "outbound", "EDS", "customers.default"],
            vec![fqdn, "80", "v1", "outbound", "EDS", "customers.default"],
        ],
        "{clusters}"
    );
    let ip = host.record("default", "customers-v1").unwrap()["ip"]
        .as_str()
        .unwrap()
        .to_string();
    let endpoints = pc(&["endpoints", "web-frontend", "--cluster", &v1]);
    let rows: Vec<Vec<&str>> = endpoints
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [vec![
            format!("{ip}:3000").as_str(),
            "HEALTHY",
            "OK",
            v1.as_str()
        ]],
        "{endpoints}"
    );
    let listeners = pc(&[
        "listeners",
        "web-frontend",
        "--port",
        "80",
        "--address",
        &vip,
    ]);
    assert_eq!(
        listeners
            .lines()
            .nth(1)
            .map(|l| l.split_whitespace().collect::<Vec<_>>()),
        Some(vec![vip.as_str(), "80", "ALL", "Route:", "80"]),
        "{listeners}"
    );
    assert_eq!(listeners.lines().count(), 2, "{listeners}");
}

/// `curl [EXTRA...] URL` inside the mesh host namespace; returns curl's exit code and
/// what it printed, the status code on the last line.
fn curl(host: &MeshHost, extra: &[&str], url: &str) -> (Option<i32>, String) {
    let mut argv = vec!["curl", "-sS", "--max-time", "10", "-w", "\n%{http_code}"];
    argv.extend_from_slice(extra);
    argv.push(url);
    let out = host.in_host(&argv);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

/// `curl` inside the mesh host namespace; returns (status code, body).
fn get(host: &MeshHost, url: &str) -> (String, String) {
    let (_, body) = curl(host, &[], url);
    let (body, code) = body.rsplit_once('\n').unwrap_or(("", ""));
    (code.to_string(), body.to_string())
}

/// The course's Hello World through the ingress gateway: the Gateway alone answers 404;
/// with the VirtualService bound to it, `Hello World` from the hello-world workload, with
/// the proxy's `server: istio-envoy` and `x-envoy-upstream-service-time` headers, and
/// `weft get vs` shows the VirtualService's gateways and hosts.
#[test]
fn course_hello_world_through_the_gateway() {
    let host = MeshHost::start(&["--demo", "hello-world"]);
    apply(&host, &["hello-world/gateway.yaml"]);
    eventually("the Gateway alone to answer 404", SETTLE, || {
        (get(&host, "http://127.0.0.1:8080/").0 == "404").then_some(())
    });
    apply(&host, &["hello-world/vs-hello-world.yaml"]);
    let (_, answer) = eventually("Hello World through the gateway", SETTLE, || {
        let reply = curl(&host, &["-i"], "http://127.0.0.1:8080/");
        reply.1.ends_with("\n200").then_some(reply)
    });
    let lower = answer.to_ascii_lowercase();
    for header in [
        "http/1.1 200 ok",
        "content-length: 11",
        "content-type: text/plain; charset=utf-8",
        "server: istio-envoy",
        "x-envoy-upstream-service-time: ",
    ] {
        assert!(lower.contains(header), "{header} in {answer}");
    }
    assert!(answer.contains("\r\n\r\nHello World\n200"), "{answer}");
    let vs = text(&host.weft(&["get", "vs"]));
    let row: Vec<&str> = vs
        .lines()
        .find(|l| l.starts_with("hello-world"))
        .unwrap_or_else(|| panic!("hello-world in {vs}"))
        .split_whitespace()
        .collect();
    assert_eq!(
        &row[..3],
        ["hello-world", "[\"gateway\"]", "[\"*\"]"],
        "{vs}"
    );
}

/// helloworld: 404 at the gateway before its VirtualService exists, then both versions.
#[test]
fn helloworld_through_the_gateway() {
    let host = MeshHost::start(&["--demo", "helloworld"]);
    // Another demo's route would answer 200; with none, the gateway has no listener or
    // no route for the request: a 404 or a refused connection, never a hello.
    let before = get(&host, "http://127.0.0.1:8080/hello");
    assert_ne!(
        before.0, "200",
        "answered before the VirtualService: {}",
        before.1
    );
    apply(&host, &["helloworld/helloworld-gateway.yaml"]);
    let mut versions = std::collections::BTreeSet::new();
    eventually("both helloworld versions to answer", SETTLE, || {
        let (code, body) = get(&host, "http://127.0.0.1:8080/hello");
        if code == "200" {
            assert!(body.starts_with("Hello version: v"), "{body}");
            versions.insert(body[..17].to_string());
        }
        (versions.len() == 2).then_some(())
    });
    // A path no route claims: 404 from the gateway.
    assert_eq!(get(&host, "http://127.0.0.1:8080/nothing").0, "404");
}

/// One line through the TCP gateway port 31400; returns what came back.
fn echo_line(host: &MeshHost) -> String {
    let out = host.in_host(&[
        "bash",
        "-c",
        "exec 3<>/dev/tcp/127.0.0.1/31400 && echo hello >&3 && timeout 5 head -n 1 <&3",
    ]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// tcp-echo: all to v1 (`one hello`), then 80/20 per connection.
#[test]
fn tcp_echo_shifting() {
    let host = MeshHost::start(&["--demo", "tcp-echo"]);
    apply(&host, &["tcp-echo/tcp-echo-all-v1.yaml"]);
    eventually("the TCP gateway port to echo through v1", SETTLE, || {
        (echo_line(&host) == "one hello").then_some(())
    });
    for _ in 0..10 {
        assert_eq!(echo_line(&host), "one hello");
    }
    apply(&host, &["tcp-echo/tcp-echo-20-v2.yaml"]);
    eventually("v2 to answer a connection", SETTLE, || {
        (echo_line(&host) == "two hello").then_some(())
    });
    let two = (0..100).filter(|_| echo_line(&host) == "two hello").count();
    // 20 % of 100: a 99.9 % interval is about 8..34.
    assert!((7..=35).contains(&two), "{two} of 100 connections to v2");
}

/// `weft exec NAME -- ARGS` to its end; returns its stdout.
fn exec(host: &MeshHost, name: &str, args: &[&str]) -> String {
    let mut all = vec!["exec", name, "--"];
    all.extend_from_slice(args);
    let out = host.weft(&all);
    assert!(out.status.success(), "weft {all:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// httpbin: the fortio circuit breaker (503s beside 200s under concurrency), then
/// mirroring v1 -> v2 (v2 sees the request, the client gets v1's answer).
#[test]
fn httpbin_circuit_breaker_and_mirroring() {
    let host = MeshHost::start(&["--demo", "httpbin"]);
    apply(&host, &["httpbin/destination-rule-circuit-breaker.yaml"]);
    // As a user checks it: fortio's sidecar has the DestinationRule (istioctl's way of
    // naming a pod, without its namespace).
    eventually(
        "fortio's sidecar to apply the DestinationRule",
        SETTLE,
        || {
            let out = host.weft(&["proxy-config", "clusters", "fortio"]);
            let table = String::from_utf8_lossy(&out.stdout).to_string();
            table
                .lines()
                .any(|l| {
                    l.starts_with("httpbin.default.svc.cluster.local")
                        && l.ends_with("httpbin.default")
                })
                .then_some(())
        },
    );
    eventually("httpbin to answer from fortio", SETTLE, || {
        let out = exec(
            &host,
            "fortio",
            &["fortio", "curl", "http://httpbin:8000/get"],
        );
        out.contains("200 OK").then_some(())
    });
    let report = exec(
        &host,
        "fortio",
        &[
            "fortio",
            "load",
            "-c",
            "3",
            "-qps",
            "0",
            "-n",
            "30",
            "-loglevel",
            "Warning",
            "http://httpbin:8000/get",
        ],
    );
    let count = |code: &str| -> usize {
        report
            .lines()
            .find_map(|l| l.strip_prefix(&format!("Code {code} : ")))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    assert!(count("200") > 0 && count("503") > 0, "{report}");
    assert_eq!(count("200") + count("503"), 30, "{report}");

    apply(
        &host,
        &[
            "httpbin/destination-rule-httpbin-v1-v2.yaml",
            "httpbin/virtual-service-httpbin-mirror.yaml",
        ],
    );
    // Until the route applies, a request lands on v1 or v2 alone: wait for one request that
    // both logged (v1 answered it, v2 got the mirror), then check that it stays that way.
    let mut n = 0;
    let mut mirrored = |host: &MeshHost| {
        n += 1;
        let marker = format!("/headers?mirrored={n}");
        let url = format!("http://httpbin:8000{marker}");
        let out = exec(host, "sleep", &["curl", "-sS", "--max-time", "5", &url]);
        assert!(out.contains("\"headers\""), "{out}");
        let seen = |name: &str| text(&host.weft(&["logs", name])).contains(&format!("{marker} "));
        // The mirror is fire and forget: give v2 a moment to log it.
        let v2 = (0..20).any(|_| {
            seen("httpbin-v2") || {
                std::thread::sleep(Duration::from_millis(100));
                false
            }
        });
        (seen("httpbin-v1"), v2)
    };
    eventually("v1 to answer and v2 to see the mirror", SETTLE, || {
        (mirrored(&host) == (true, true)).then_some(())
    });
    for _ in 0..5 {
        assert_eq!(
            mirrored(&host),
            (true, true),
            "answered by v1, mirrored to v2"
        );
    }
}

/// Runs openssl in `dir`, as Istio's secure-ingress task does.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    support::require_root_and_tools("walkthrough", &[("openssl", "version", "openssl")]);
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", text(&out));
}

/// A self-signed CA, `DOMAIN.crt` and `DOMAIN.key` in `dir`, by the task's command.
fn openssl_ca(dir: &std::path::Path, domain: &str) -> PathBuf {
    let subject = format!("/O={domain} Inc./CN={domain}");
    let (crt, key) = (format!("{domain}.crt"), format!("{domain}.key"));
    openssl(
        dir,
        &[
            "req", "-x509", "-sha256", "-nodes", "-days", "365", "-newkey", "rsa:2048", "-subj",
            &subject, "-keyout", &key, "-out", &crt,
        ],
    );
    dir.join(crt)
}

/// `HOST.crt` and `HOST.key` in `dir`, signed by the CA `DOMAIN` with the task's commands:
/// an X.509 version 1 certificate, as `openssl x509 -req` makes it without extensions.
fn openssl_issue(dir: &std::path::Path, domain: &str, host: &str) -> (PathBuf, PathBuf) {
    let (crt, key, csr) = (
        format!("{host}.crt"),
        format!("{host}.key"),
        format!("{host}.csr"),
    );
    let subject = format!("/CN={host}/O={host} organization");
    let (ca_crt, ca_key) = (format!("{domain}.crt"), format!("{domain}.key"));
    openssl(
        dir,
        &[
            "req", "-out", &csr, "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-subj",
            &subject,
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-sha256",
            "-days",
            "365",
            "-CA",
            &ca_crt,
            "-CAkey",
            &ca_key,
            "-set_serial",
            "1",
            "-in",
            &csr,
            "-out",
            &crt,
        ],
    );
    (dir.join(crt), dir.join(key))
}

/// Istio's secure-ingress task through `weft up`, with the task's openssl certificates: a
/// Secret made with `weft create secret tls`, the task's Gateway (443 SIMPLE, published at
/// 127.0.0.1:8443) and VirtualService, then `curl --resolve ... --cacert` gets httpbin's
/// teapot; curl without the CA refuses the certificate, and a path the VirtualService does
/// not route is a 404. Then mutual TLS as the task does it: the Secret again with the CA
/// (`weft create secret generic --from-file`), the Gateway in MUTUAL mode; a client
/// without a certificate, or with one another CA signed, is refused; the task's client
/// certificate gets the teapot.
#[test]
fn httpbin_through_an_https_gateway() {
    let host = MeshHost::start(&["--demo", "httpbin"]);
    let dir = &host.dir;
    let ca = openssl_ca(dir, "example.com");
    let (cert, key) = openssl_issue(dir, "example.com", "httpbin.example.com");
    let path = |p: &PathBuf| p.display().to_string();
    let weft_ok = |args: &[&str]| {
        let out = host.weft(args);
        assert!(out.status.success(), "weft {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let created = weft_ok(&[
        "create",
        "secret",
        "tls",
        "httpbin-credential",
        "-n",
        "istio-system",
        "--cert",
        &path(&cert),
        "--key",
        &path(&key),
    ]);
    assert_eq!(created, "secret/httpbin-credential created\n");
    apply(&host, &["httpbin/httpbin-secure-gateway.yaml"]);
    let ca = path(&ca);
    let resolve = ["--resolve", "httpbin.example.com:8443:127.0.0.1"];
    let https = |path: &str, extra: &[&str]| {
        let url = format!("https://httpbin.example.com:8443{path}");
        curl(&host, &[&resolve[..], extra].concat(), &url)
    };
    let trusting = ["--cacert", ca.as_str()];
    let teapot = eventually("the HTTPS server to answer", SETTLE, || {
        let (_, body) = https("/status/418", &trusting);
        body.ends_with("\n418").then_some(body)
    });
    assert!(teapot.contains("-=[ teapot ]=-"), "{teapot}");
    assert!(https("/headers", &trusting).1.ends_with("\n404"));
    assert_eq!(https("/status/200", &[]).0, Some(60), "curl without the CA");

    // Mutual TLS.
    let client = openssl_issue(dir, "example.com", "client.example.com");
    openssl_ca(dir, "other.com");
    let stranger = openssl_issue(dir, "other.com", "stranger.other.com");
    weft_ok(&[
        "delete",
        "secret",
        "httpbin-credential",
        "-n",
        "istio-system",
    ]);
    let created = weft_ok(&[
        "create",
        "secret",
        "generic",
        "httpbin-credential",
        "-n",
        "istio-system",
        &format!("--from-file=tls.key={}", path(&key)),
        &format!("--from-file=tls.crt={}", path(&cert)),
        &format!("--from-file=ca.crt={ca}"),
    ]);
    assert_eq!(created, "secret/httpbin-credential created\n");
    apply(&host, &["httpbin/httpbin-mutual-gateway.yaml"]);
    // The teapot, asked for with a client certificate.
    let as_client = |(crt, key): &(PathBuf, PathBuf)| {
        let (crt, key) = (path(crt), path(key));
        https(
            "/status/418",
            &["--cacert", &ca, "--cert", &crt, "--key", &key],
        )
    };
    eventually("the gateway to ask for client certificates", SETTLE, || {
        (https("/status/418", &trusting).0 != Some(0)).then_some(())
    });
    let (code, body) = as_client(&client);
    assert_eq!(code, Some(0), "{body}");
    assert!(body.ends_with("\n418") && body.contains("teapot"), "{body}");
    let (code, body) = as_client(&stranger);
    assert_ne!(code, Some(0), "a client certificate of another CA: {body}");
    // A CA of the same name with another key: the signature does not verify.
    let impostor = dir.join("impostor");
    std::fs::create_dir_all(&impostor).unwrap();
    openssl_ca(&impostor, "example.com");
    let forged = openssl_issue(&impostor, "example.com", "client.example.com");
    let (code, body) = as_client(&forged);
    assert_ne!(
        code,
        Some(0),
        "a client certificate of an impostor CA: {body}"
    );
    // The task's client is still let in.
    assert_eq!(as_client(&client).0, Some(0));
}

/// Kills a process when dropped (a server the test runs outside the mesh).
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `REGISTRY_ONLY`: a server outside the mesh (on the host, at the bridge's address) is
/// refused until a ServiceEntry declares it; then it answers, by the entry's host name too.
#[test]
fn registry_only_blocks_until_a_service_entry_allows() {
    let host = MeshHost::start(&["--demo", "httpbin", "--outbound-policy", "REGISTRY_ONLY"]);
    let _external = external_httpbin(&host, 9999);
    let code = |url: &str| {
        exec(
            &host,
            "sleep",
            &[
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "5",
                url,
            ],
        )
    };
    assert_eq!(
        code("http://10.251.0.1:9999/get"),
        "502",
        "refused by REGISTRY_ONLY"
    );
    let entry = host.dir.join("external.yaml");
    std::fs::write(
        &entry,
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: external}\n\
         spec:\n  hosts: [external.example.com]\n  addresses: [10.251.0.1]\n\
         \x20 ports: [{number: 9999, name: http, protocol: HTTP}]\n  location: MESH_EXTERNAL\n\
         \x20 resolution: STATIC\n  endpoints: [{address: 10.251.0.1}]\n",
    )
    .unwrap();
    let out = host.weft(&["apply", "-f", &entry.display().to_string()]);
    assert!(out.status.success(), "{}", text(&out));
    eventually("the ServiceEntry to let the request out", SETTLE, || {
        (code("http://10.251.0.1:9999/get") == "200").then_some(())
    });
    assert_eq!(code("http://external.example.com:9999/get"), "200");
}

/// Runs `weft sample httpbin --port PORT` in the mesh host's namespace: a server outside
/// the mesh, at the bridge's address 10.251.0.1.
fn external_httpbin(host: &MeshHost, port: u16) -> Killed {
    let server = Killed(
        std::process::Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", host.ns))
            .args([env!("CARGO_BIN_EXE_weft"), "sample", "httpbin", "--port"])
            .arg(port.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start the external server"),
    );
    eventually("the external server to listen", SETTLE, || {
        (get(host, &format!("http://10.251.0.1:{port}/get")).0 == "200").then_some(())
    });
    server
}

/// Istio's egress-gateway task: edition.cnn.com (as in examples/egress, a server outside
/// the mesh on the host's bridge address stands in for it) is called directly by sleep's
/// sidecar; with the task's Gateway, DestinationRule and VirtualService
/// every request goes through the egress gateway (its counter for the external cluster
/// counts each one); deleting them goes back to the direct path.
#[test]
fn egress_gateway_routes_external_traffic() {
    let host = MeshHost::start(&["--demo", "helloworld"]);
    let _external = external_httpbin(&host, 8000);
    apply(&host, &["egress/service-entry-cnn.yaml"]);
    let egress = host
        .record("istio-system", "istio-egressgateway")
        .expect("the egress gateway's record");
    let egress_ip = egress["ip"]
        .as_str()
        .expect("the egress gateway's IP")
        .to_string();
    // The egress gateway's count of requests it sent to edition.cnn.com.
    let through_egress = || {
        counter(
            &host,
            &egress_ip,
            "outbound|80||edition.cnn.com.upstream_rq_total",
        )
    };
    let call = || {
        exec(
            &host,
            "sleep",
            &[
                "curl",
                "-sS",
                "--max-time",
                "5",
                "http://edition.cnn.com/headers",
            ],
        )
    };
    eventually("sleep to reach edition.cnn.com", SETTLE, || {
        call()
            .contains("\"Host\": \"edition.cnn.com\"")
            .then_some(())
    });
    assert_eq!(
        through_egress(),
        0,
        "without the egress config the sidecar goes direct"
    );

    apply(&host, &["egress/egress-gateway-cnn.yaml"]);
    eventually("requests to go through the egress gateway", SETTLE, || {
        (call().contains("edition.cnn.com") && through_egress() > 0).then_some(())
    });
    let before = through_egress();
    for _ in 0..5 {
        let answer = call();
        assert!(answer.contains("\"Host\": \"edition.cnn.com\""), "{answer}");
    }
    assert_eq!(
        through_egress(),
        before + 5,
        "each request went through the egress gateway"
    );

    let out = host.weft(&["delete", "-f", &example("egress/egress-gateway-cnn.yaml")]);
    assert!(out.status.success(), "{}", text(&out));
    eventually("the direct path to come back", SETTLE, || {
        let before = through_egress();
        (call().contains("edition.cnn.com") && through_egress() == before).then_some(())
    });

    // The task's HTTPS part: TLS by SNI through the egress gateway, passed through
    // undecrypted to a TLS server standing in for edition.cnn.com.
    let ca = openssl_ca(&host.dir, "example.com");
    let (crt, key) = openssl_issue(&host.dir, "example.com", "edition.cnn.com");
    let _tls_server = Killed(
        std::process::Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", host.ns))
            .args(["openssl", "s_server", "-accept", "9443", "-www", "-cert"])
            .arg(&crt)
            .arg("-key")
            .arg(&key)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start openssl s_server"),
    );
    let ca = ca.display().to_string();
    let https_call = || {
        let out = host.weft(&[
            "exec",
            "sleep",
            "--",
            "curl",
            "-sS",
            "--max-time",
            "5",
            "--cacert",
            &ca,
            "https://edition.cnn.com/",
        ]);
        String::from_utf8_lossy(&out.stdout)
            .contains("s_server")
            .then_some(())
    };
    // TLS connections the egress gateway made to edition.cnn.com.
    let tls_through_egress = || {
        counter(
            &host,
            &egress_ip,
            "outbound|443||edition.cnn.com.upstream_cx_total",
        )
    };
    eventually("sleep to reach the TLS server directly", SETTLE, https_call);
    assert_eq!(
        tls_through_egress(),
        0,
        "without the egress config the sidecar goes direct"
    );
    apply(&host, &["egress/egress-gateway-cnn-tls.yaml"]);
    eventually("TLS to go through the egress gateway", SETTLE, || {
        https_call().filter(|()| tls_through_egress() > 0)
    });
    let before = tls_through_egress();
    for _ in 0..3 {
        https_call().expect("an HTTPS answer through the egress gateway");
    }
    assert_eq!(
        tls_through_egress(),
        before + 3,
        "each connection went through the egress gateway"
    );
}

/// One of a proxy's `/stats` counters, read from its admin API at `ip`:15000 (0 when the
/// cluster has not been used yet).
fn counter(host: &MeshHost, ip: &str, name: &str) -> u64 {
    let (code, stats) = get(host, &format!("http://{ip}:15000/stats"));
    assert_eq!(code, "200", "{stats}");
    let prefix = format!("cluster.{name}: ");
    stats
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |n| n.trim().parse().unwrap())
}

/// The course's header routing: through the gateway, web-frontend shows customers v1 (no
/// CITY column); with `user: debug` (passed on by web-frontend) customers v2's cities.
#[test]
fn customers_header_routing() {
    let host = MeshHost::start(&["--demo", "customers"]);
    apply(
        &host,
        &[
            "customers/gateway.yaml",
            "customers/web-frontend-vs.yaml",
            "customers/customers-dr.yaml",
            "customers/customers-vs-headers.yaml",
        ],
    );
    let frontend = |user: Option<&str>| {
        let mut argv = vec!["curl", "-sS", "--max-time", "10"];
        let header = user.map(|u| format!("user: {u}"));
        if let Some(h) = &header {
            argv.extend(["-H", h.as_str()]);
        }
        argv.push("http://127.0.0.1:8080/");
        String::from_utf8_lossy(&host.in_host(&argv).stdout).to_string()
    };
    eventually("debug users to see customers v2", SETTLE, || {
        frontend(Some("debug")).contains(">CITY<").then_some(())
    });
    for _ in 0..5 {
        assert!(frontend(Some("debug")).contains(">CITY<"));
        let plain = frontend(None);
        assert!(
            plain.contains("<table") && !plain.contains(">CITY<"),
            "{plain}"
        );
    }
}
