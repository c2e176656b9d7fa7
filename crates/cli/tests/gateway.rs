//! `weft proxy` as an ingress gateway, end to end: the real binary, real HTTP backends and
//! curl as the client, all on 127.0.0.1, configured with Istio YAML in a directory.
#![allow(clippy::unwrap_used)] // a failed set-up step should stop the test

#[allow(dead_code)] // this file uses only part of the shared support
mod support;

use std::time::Duration;

use support::config::static_service;
use support::{
    Backend, DEADLINE, Gateway, TempDir, closed_port, curl, curl_raw, eventually, free_port,
};

/// The bookinfo sample's Gateway, on `port` and for `hosts`.
fn gateway(port: u16, hosts: &[&str]) -> String {
    support::config::http_gateway("bookinfo-gateway", port, hosts)
}

/// A VirtualService bound to the Gateway for every host, with `http` as its routes
/// (indented as items of `spec.http`).
fn virtual_service(http: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: routes
spec:
  hosts:
  - \"*\"
  gateways:
  - bookinfo-gateway
  http:
{http}"
    )
}

/// Writes the `reviews` service as a VM mesh describes it (a ServiceEntry selecting
/// WorkloadEntries, one per version, and a DestinationRule with a subset per version
/// plus `extra_subsets` that select nothing) and starts a backend `reviews-<version>`
/// for each version.
fn reviews(dir: &TempDir, versions: &[&str], extra_subsets: &[&str]) -> Vec<Backend> {
    dir.write(
        "reviews-service.yaml",
        "apiVersion: networking.istio.io/v1
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
",
    );
    let mut backends = Vec::new();
    let mut subsets = String::new();
    for version in versions {
        let backend = Backend::start(&format!("reviews-{version}"));
        dir.write(
            &format!("reviews-{version}.yaml"),
            &format!(
                "apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: reviews-{version}
spec:
  address: 127.0.0.1
  labels:
    app: reviews
    version: {version}
  ports:
    http: {}
",
                backend.port
            ),
        );
        backends.push(backend);
    }
    for version in versions.iter().chain(extra_subsets) {
        subsets.push_str(&format!(
            "  - name: {version}\n    labels:\n      version: {version}\n"
        ));
    }
    dir.write(
        "reviews-rule.yaml",
        &format!(
            "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
  subsets:
{subsets}"
        ),
    );
    backends
}

/// A route sending everything to one subset of reviews.
fn all_to(subset: &str) -> String {
    format!("  - route:\n    - destination:\n        host: reviews\n        subset: {subset}\n")
}

/// A fresh temp dir and the port its Gateway will open.
fn setup(name: &str) -> (TempDir, u16) {
    (TempDir::new(name), free_port())
}

#[test]
fn bookinfo_gateway_routes_to_productpage_and_answers_nr_for_the_rest() {
    let (dir, port) = setup("bookinfo");
    let productpage = Backend::start("productpage-v1");
    dir.write("gateway.yaml", &gateway(port, &["bookinfo.example.com"]));
    // The bookinfo sample's VirtualService, unchanged but for its name.
    dir.write(
        "bookinfo.yaml",
        &virtual_service(
            "  - match:
    - uri:
        exact: /productpage
    - uri:
        prefix: /static
    - uri:
        exact: /login
    - uri:
        exact: /logout
    - uri:
        prefix: /api/v1/products
    route:
    - destination:
        host: productpage
        port:
          number: 9080
",
        ),
    );
    dir.write(
        "productpage.yaml",
        &static_service("productpage", productpage.port),
    );
    let gw = Gateway::start(&dir, port);
    let host = ["-H", "Host: bookinfo.example.com"];

    let r = gw.get("/productpage", &host);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("server"), Some("istio-envoy"));
    let took = r.header("x-envoy-upstream-service-time").unwrap();
    assert!(took.parse::<u64>().is_ok(), "service time {took:?}");
    let seen = r.echo();
    assert_eq!(seen.backend(), "productpage-v1");
    assert_eq!(seen.path(), "/productpage");
    assert_eq!(seen.header("host"), Some("bookinfo.example.com"));
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    let id = seen.header("x-request-id").unwrap().to_string();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let again = gw.get("/productpage", &host).echo();
    assert_ne!(again.header("x-request-id"), Some(id.as_str()));
    // Hop-by-hop headers stay on their hop, but for `te: trailers` (gRPC needs it).
    let hop = [
        "-H",
        "Host: bookinfo.example.com",
        "-H",
        "te: trailers, deflate",
        "-H",
        "connection: x-hop",
        "-H",
        "x-hop: 1",
    ];
    let seen = gw.get("/productpage", &hop).echo();
    assert_eq!(seen.header("te"), Some("trailers"));
    assert_eq!(seen.header("x-hop"), None);

    let r = gw.get("/static/css/app.css?v=2", &host);
    assert_eq!(r.echo().path(), "/static/css/app.css?v=2");
    assert_eq!(gw.get("/api/v1/products/1", &host).status, 200);

    for path in ["/productpage/extra", "/", "/admin"] {
        let r = gw.get(path, &host);
        assert_eq!(r.status, 404, "{path}: {r:?}");
        let reason = r.header("x-weft-reason").unwrap();
        assert!(reason.starts_with("NR"), "{path}: {reason}");
    }
    let r = gw.get("/productpage", &["-H", "Host: other.example.com"]);
    assert_eq!(r.status, 404, "{r:?}");
    assert!(r.header("x-weft-reason").unwrap().starts_with("NR"));
}

#[test]
fn header_match_sends_jason_to_v2_and_everyone_else_to_v1() {
    let (dir, port) = setup("jason");
    let _backends = reviews(&dir, &["v1", "v2"], &[]);
    dir.write("gateway.yaml", &gateway(port, &["*"]));
    let jason = "  - match:
    - headers:
        end-user:
          exact: jason
    route:
    - destination:
        host: reviews
        subset: v2
";
    dir.write(
        "reviews-vs.yaml",
        &virtual_service(&format!("{jason}{}", all_to("v1"))),
    );
    let gw = Gateway::start(&dir, port);

    for _ in 0..5 {
        let r = gw.get("/reviews/0", &["-H", "end-user: jason"]);
        assert_eq!(r.echo().backend(), "reviews-v2");
        for other in [
            &["-H", "end-user: mary"][..],
            &["-H", "end-user: jason2"],
            &[],
        ] {
            assert_eq!(gw.get("/reviews/0", other).echo().backend(), "reviews-v1");
        }
    }
}

#[test]
fn weighted_route_splits_80_20() {
    let (dir, port) = setup("split");
    let _backends = reviews(&dir, &["v1", "v2"], &[]);
    dir.write("gateway.yaml", &gateway(port, &["*"]));
    dir.write(
        "reviews-vs.yaml",
        &virtual_service(
            "  - route:
    - destination:
        host: reviews
        subset: v1
      weight: 80
    - destination:
        host: reviews
        subset: v2
      weight: 20
",
        ),
    );
    let gw = Gateway::start(&dir, port);

    // One curl, 1,000 requests over one connection (curl's URL globbing); each answer
    // is one JSON line.
    const N: usize = 1000;
    let out = curl_raw(&[&format!("http://127.0.0.1:{}/reviews/[1-{N}]", gw.port)]);
    let backends: Vec<String> = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["backend"].to_string())
        .collect();
    assert_eq!(backends.len(), N);
    let v1 = backends.iter().filter(|b| *b == "\"reviews-v1\"").count();
    let v2 = backends.iter().filter(|b| *b == "\"reviews-v2\"").count();
    assert_eq!(v1 + v2, N);
    // v1's count is Binomial(1000, 0.8): mean 800, standard deviation
    // sqrt(1000 * 0.8 * 0.2) = 12.65. Five standard deviations (±63) make the bound
    // 737..=863; a correct proxy fails it about once in 1.7 million runs, while a 50/50 or
    // 100/0 split is far outside.
    assert!((737..=863).contains(&v1), "v1 got {v1} of {N}, v2 {v2}");
}

#[test]
fn rewrite_and_header_rules_edit_request_and_response() {
    let (dir, port) = setup("headers");
    let _backends = reviews(&dir, &["v1"], &[]);
    dir.write("gateway.yaml", &gateway(port, &["*"]));
    dir.write(
        "reviews-vs.yaml",
        &virtual_service(
            "  - match:
    - uri:
        prefix: /old-api/
    rewrite:
      uri: /api/
    headers:
      request:
        set:
          x-set: set-by-route
        add:
          x-add: added
        remove:
        - x-remove
      response:
        set:
          x-backend: renamed
        add:
          x-resp-add: added
        remove:
        - x-backend-secret
    route:
    - destination:
        host: reviews
        subset: v1
      headers:
        request:
          set:
            x-destination: reviews-v1
",
        ),
    );
    let gw = Gateway::start(&dir, port);

    let r = gw.get(
        "/old-api/items?id=7",
        &[
            "-H",
            "x-set: from-client",
            "-H",
            "x-add: original",
            "-H",
            "x-remove: secret",
        ],
    );
    assert_eq!(r.status, 200, "{r:?}");
    let seen = r.echo();
    assert_eq!(seen.path(), "/api/items?id=7");
    assert_eq!(seen.header("x-set"), Some("set-by-route"));
    assert_eq!(seen.headers("x-add"), ["original", "added"]);
    assert_eq!(seen.header("x-remove"), None);
    assert_eq!(seen.header("x-destination"), Some("reviews-v1"));
    assert_eq!(r.header("x-backend"), Some("renamed"));
    assert_eq!(r.header("x-resp-add"), Some("added"));
    assert_eq!(r.header("x-backend-secret"), None);
    // Other paths are not rewritten.
    assert_eq!(gw.get("/old-apix", &[]).status, 404);
}

#[test]
fn redirects_and_direct_responses_are_answered_by_the_gateway() {
    let (dir, port) = setup("redirect");
    dir.write("gateway.yaml", &gateway(port, &["*"]));
    dir.write(
        "vs.yaml",
        &virtual_service(
            "  - match:
    - uri:
        exact: /moved
    redirect:
      uri: /new-place
      authority: elsewhere.example.com
      redirectCode: 308
  - match:
    - uri:
        prefix: /keep-host
    redirect:
      uri: /landed
  - match:
    - uri:
        exact: /secure
    redirect:
      scheme: https
      port: 8443
  - match:
    - uri:
        exact: /default-port
    redirect:
      scheme: https
      derivePort: FROM_PROTOCOL_DEFAULT
  - match:
    - uri:
        exact: /request-port
    redirect:
      authority: other.example.com
      derivePort: FROM_REQUEST_PORT
  - match:
    - uri:
        exact: /teapot
    directResponse:
      status: 418
      body:
        string: short and stout
",
        ),
    );
    let gw = Gateway::start(&dir, port);

    let r = gw.get("/moved", &[]);
    assert_eq!(r.status, 308);
    assert_eq!(
        r.header("location"),
        Some("http://elsewhere.example.com/new-place")
    );
    // Envoy keeps the request's host and port, and its query when the new path has none.
    let r = gw.get("/keep-host?page=2", &[]);
    assert_eq!(r.status, 301);
    let expected = format!("http://127.0.0.1:{port}/landed?page=2");
    assert_eq!(r.header("location"), Some(expected.as_str()));
    // A new port replaces the request's.
    let r = gw.get("/secure", &["-H", "Host: shop.example.com:8080"]);
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location"),
        Some("https://shop.example.com:8443/secure")
    );

    // derivePort: the scheme's default port (none written), or the request's port.
    let r = gw.get("/default-port", &["-H", "Host: shop.example.com:8080"]);
    assert_eq!(
        r.header("location"),
        Some("https://shop.example.com/default-port")
    );
    let r = gw.get("/request-port", &["-H", "Host: shop.example.com:8080"]);
    assert_eq!(
        r.header("location"),
        Some("http://other.example.com:8080/request-port")
    );
    let r = gw.get("/request-port", &["-H", "Host: shop.example.com"]);
    let expected = format!("http://other.example.com:{port}/request-port");
    assert_eq!(r.header("location"), Some(expected.as_str()));

    let r = gw.get("/teapot", &[]);
    assert_eq!(r.status, 418);
    assert_eq!(r.body, "short and stout");
    assert_eq!(r.header("server"), Some("istio-envoy"));
}

#[test]
fn virtual_service_changes_apply_while_running() {
    let (dir, port) = setup("reload");
    let _backends = reviews(&dir, &["v1", "v2"], &[]);
    dir.write("gateway.yaml", &gateway(port, &["*"]));
    dir.write("reviews-vs.yaml", &virtual_service(&all_to("v1")));
    let gw = Gateway::start(&dir, port);
    assert_eq!(gw.get("/reviews/0", &[]).echo().backend(), "reviews-v1");

    dir.write("reviews-vs.yaml", &virtual_service(&all_to("v2")));
    eventually("requests to reach reviews-v2", DEADLINE, || {
        (gw.get("/reviews/0", &[]).echo().backend() == "reviews-v2").then_some(())
    });
    for _ in 0..10 {
        assert_eq!(gw.get("/reviews/0", &[]).echo().backend(), "reviews-v2");
    }

    // Removing the VirtualService removes its routes.
    std::fs::remove_file(dir.config_dir().join("reviews-vs.yaml")).unwrap();
    eventually("the route to disappear", DEADLINE, || {
        (gw.get("/reviews/0", &[]).status == 404).then_some(())
    });
}

#[test]
fn unreachable_destinations_answer_503_with_envoy_flags() {
    let (dir, port) = setup("errors");
    let _backends = reviews(&dir, &["v1"], &["v3"]);
    dir.write("gateway.yaml", &gateway(port, &["*"]));
    // ratings' only endpoint is a port nothing listens on.
    let (closed, _reserved) = closed_port();
    dir.write("ratings.yaml", &static_service("ratings", closed));
    dir.write(
        "vs.yaml",
        &virtual_service(
            "  - match:
    - uri:
        prefix: /no-endpoints
    route:
    - destination:
        host: reviews
        subset: v3
  - match:
    - uri:
        prefix: /refused
    route:
    - destination:
        host: ratings
  - match:
    - uri:
        prefix: /unknown-service
    route:
    - destination:
        host: details
",
        ),
    );
    let gw = Gateway::start(&dir, port);

    for (path, flag, names) in [
        (
            "/no-endpoints",
            "UH",
            "outbound|9080|v3|reviews.default.svc.cluster.local",
        ),
        (
            "/refused",
            // Istio's default retries (2, on connect failures) ran out too.
            "UF,URX",
            "outbound|9080||ratings.default.svc.cluster.local",
        ),
        (
            "/unknown-service",
            "NC",
            "details.default.svc.cluster.local",
        ),
    ] {
        let r = gw.get(path, &[]);
        assert_eq!(r.status, 503, "{path}: {r:?}");
        assert_eq!(r.header("server"), Some("istio-envoy"));
        let reason = r.header("x-weft-reason").unwrap();
        assert!(reason.starts_with(&format!("{flag}:")), "{path}: {reason}");
        assert!(reason.contains(names), "{path}: {reason}");
    }
}

#[test]
fn h2c_clients_reach_http1_backends() {
    let (dir, port) = setup("h2c");
    let productpage = Backend::start("productpage-v1");
    dir.write("gateway.yaml", &gateway(port, &["bookinfo.example.com"]));
    dir.write(
        "vs.yaml",
        &virtual_service(
            "  - route:\n    - destination:\n        host: productpage.default.svc.cluster.local\n",
        ),
    );
    dir.write(
        "productpage.yaml",
        &static_service("productpage", productpage.port),
    );
    let gw = Gateway::start(&dir, port);

    let r = gw.get(
        "/productpage",
        &[
            "--http2-prior-knowledge",
            "-H",
            "Host: bookinfo.example.com",
        ],
    );
    assert_eq!(r.version, "HTTP/2", "{r:?}");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("server"), Some("istio-envoy"));
    let seen = r.echo();
    assert_eq!(seen.backend(), "productpage-v1");
    assert_eq!(seen.version(), "HTTP/1.1");
    assert_eq!(seen.header("host"), Some("bookinfo.example.com"));
    // Over h2c too, a host the Gateway does not serve gets no route.
    let r = gw.get(
        "/productpage",
        &["--http2-prior-knowledge", "-H", "Host: other.example.com"],
    );
    assert_eq!((r.version.as_str(), r.status), ("HTTP/2", 404));
}

#[test]
fn admin_dumps_config_and_quits_on_request() {
    let (dir, port) = setup("admin");
    let _backends = reviews(&dir, &["v1"], &[]);
    dir.write("gateway.yaml", &gateway(port, &["*"]));
    dir.write("reviews-vs.yaml", &virtual_service(&all_to("v1")));
    let mut gw = Gateway::start(&dir, port);

    let r = curl(&[&gw.admin_url("/config_dump")]);
    assert_eq!(r.status, 200);
    let dump: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let cluster = &dump["clusters"]["outbound|9080|v1|reviews.default.svc.cluster.local"];
    assert!(cluster.is_object(), "no reviews v1 cluster in {dump:#}");
    assert!(dump["listeners"][port.to_string()].is_object(), "{dump:#}");

    let r = curl(&["-X", "POST", &gw.admin_url("/quitquitquit")]);
    assert_eq!(r.status, 200);
    assert_eq!(gw.wait_exit(Duration::from_secs(5)), Some(0));
}
