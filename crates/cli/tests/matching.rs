//! Every HTTP match field of a VirtualService, end to end through `weft proxy` as a
//! gateway: each route answers with its own name (a direct response), a catch-all last
//! answers `fallback`, and each test sends requests that differ from a matching one only
//! in the field under test. A proxy that ignored the field would answer the route's name
//! where the test expects `fallback` (or another route's name).
#![allow(clippy::unwrap_used)] // a failed set-up step should stop the test

#[allow(dead_code)] // the echo helpers are for tests with backends
mod support;

use support::{DEADLINE, Gateway, TempDir, curl, eventually, free_port};

/// A Gateway object named `name`, selecting `selector`, with one HTTP server per port.
fn gateway(name: &str, selector: &str, ports: &[u16]) -> String {
    let servers: String = ports
        .iter()
        .map(|p| {
            format!(
                "  - port:\n      number: {p}\n      name: http-{p}\n      protocol: HTTP\n    \
                 hosts:\n    - \"*\"\n"
            )
        })
        .collect();
    format!(
        "apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: {name}
spec:
  selector:
    istio: {selector}
  servers:
{servers}"
    )
}

/// A route answering 200 with body `name` when one of `matches` (YAML items of
/// `match`, indented by four spaces) accepts the request.
fn route(name: &str, matches: &str) -> String {
    format!(
        "  - name: {name}
    match:
{matches}    directResponse:
      status: 200
      body:
        string: {name}
"
    )
}

/// The routes under test, in order, then the catch-all.
fn routes() -> String {
    let routes = [
        route("uri-exact", "    - uri:\n        exact: /exact\n"),
        route("uri-prefix", "    - uri:\n        prefix: /prefix/\n"),
        route("uri-regex", "    - uri:\n        regex: /re/[0-9]+\n"),
        route(
            "case-exact",
            "    - uri:\n        exact: /Case/Path\n      ignoreUriCase: true\n",
        ),
        route(
            "case-prefix",
            "    - uri:\n        prefix: /CasePrefix/\n      ignoreUriCase: true\n",
        ),
        // Envoy ignores case_sensitive for regex paths: this stays case-sensitive.
        route(
            "case-regex",
            "    - uri:\n        regex: /caseregex/[a-z]+\n      ignoreUriCase: true\n",
        ),
        route(
            "method",
            "    - uri:\n        exact: /method\n      method:\n        exact: POST\n",
        ),
        route(
            "authority-exact",
            "    - uri:\n        exact: /authority\n      authority:\n        exact: shop.example.com\n",
        ),
        route(
            "authority-regex",
            "    - uri:\n        exact: /authority\n      authority:\n        regex: \"[a-z]+\\\\.example\\\\.org\"\n",
        ),
        route(
            "scheme-https",
            "    - uri:\n        exact: /scheme\n      scheme:\n        exact: https\n",
        ),
        route(
            "scheme-http",
            "    - uri:\n        exact: /scheme\n      scheme:\n        exact: http\n",
        ),
        route(
            "header-exact",
            "    - uri:\n        exact: /h/exact\n      headers:\n        X-Mixed-Case:\n          exact: a\n",
        ),
        route(
            "header-prefix",
            "    - uri:\n        exact: /h/prefix\n      headers:\n        x-v:\n          prefix: ab\n",
        ),
        route(
            "header-regex",
            "    - uri:\n        exact: /h/regex\n      headers:\n        x-v:\n          regex: \"a+\"\n",
        ),
        route(
            "header-present",
            "    - uri:\n        exact: /h/present\n      headers:\n        x-v: {}\n",
        ),
        route(
            "without-exact",
            "    - uri:\n        exact: /without\n      withoutHeaders:\n        x-debug:\n          exact: \"1\"\n",
        ),
        route(
            "without-present",
            "    - uri:\n        exact: /without-any\n      withoutHeaders:\n        x-debug: {}\n",
        ),
        // Istio sets treat_missing_header_as_empty on inverted non-presence matches: a
        // missing header is the empty value, which `exact: ""` matches, so it excludes.
        route(
            "without-empty",
            "    - uri:\n        exact: /without-empty\n      withoutHeaders:\n        x-e:\n          exact: \"\"\n",
        ),
        route(
            "query-exact",
            "    - uri:\n        exact: /query\n      queryParams:\n        id:\n          exact: \"7\"\n",
        ),
        route(
            "query-regex",
            "    - uri:\n        exact: /query\n      queryParams:\n        n:\n          regex: \"[0-9]+\"\n",
        ),
        route(
            "query-prefix",
            "    - uri:\n        exact: /query\n      queryParams:\n        p:\n          prefix: ab\n",
        ),
        route(
            "and",
            "    - uri:\n        exact: /and\n      headers:\n        x-and:\n          exact: \"1\"\n",
        ),
        route(
            "or",
            "    - uri:\n        exact: /or\n    - headers:\n        x-or:\n          exact: \"1\"\n",
        ),
    ];
    format!(
        "{}  - name: fallback
    directResponse:
      status: 200
      body:
        string: fallback
",
        routes.concat()
    )
}

/// Routes whose match blocks are decided by which proxy serves them (its port, its
/// gateway, its labels and namespace); the proxy is a gateway labelled
/// `istio=ingressgateway` in `istio-system`, serving `ingress` on `port` and `second`.
fn scoped_routes(second: u16) -> String {
    [
        route(
            "port-second",
            &format!("    - uri:\n        exact: /port\n      port: {second}\n"),
        ),
        route(
            "gateway-other",
            "    - uri:\n        exact: /gw\n      gateways:\n      - other\n",
        ),
        route(
            "gateway-mesh",
            "    - uri:\n        exact: /gw\n      gateways:\n      - mesh\n",
        ),
        route(
            "gateway-mine",
            "    - uri:\n        exact: /gw\n      gateways:\n      - ingress\n",
        ),
        route(
            "labels-other",
            "    - uri:\n        exact: /labels\n      sourceLabels:\n        istio: other\n",
        ),
        route(
            "labels-mine",
            "    - uri:\n        exact: /labels\n      sourceLabels:\n        istio: ingressgateway\n",
        ),
        route(
            "ns-other",
            "    - uri:\n        exact: /ns\n      sourceNamespace: default\n",
        ),
        route(
            "ns-mine",
            "    - uri:\n        exact: /ns\n      sourceNamespace: istio-system\n",
        ),
    ]
    .concat()
}

/// A gateway proxy serving every route above on two ports.
struct Fixture {
    gw: Gateway,
    second: u16,
    _dir: TempDir,
}

fn start(name: &str) -> Fixture {
    let dir = TempDir::new(name);
    let (port, second) = (free_port(), free_port());
    dir.write(
        "ingress.yaml",
        &gateway("ingress", "ingressgateway", &[port, second]),
    );
    dir.write("other.yaml", &gateway("other", "other", &[free_port()]));
    dir.write(
        "routes.yaml",
        &format!(
            "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: routes
spec:
  hosts:
  - \"*\"
  gateways:
  - ingress
  - other
  http:
{}{}",
            scoped_routes(second),
            routes()
        ),
    );
    let gw = Gateway::start(&dir, port);
    eventually("the second port to answer", DEADLINE, || {
        std::net::TcpStream::connect(("127.0.0.1", second)).ok()
    });
    Fixture {
        gw,
        second,
        _dir: dir,
    }
}

impl Fixture {
    /// The name of the route that answered `path` on the first port, with curl `args`.
    fn hit(&self, path: &str, args: &[&str]) -> String {
        self.hit_on(self.gw.port, path, args)
    }

    fn hit_on(&self, port: u16, path: &str, args: &[&str]) -> String {
        let url = format!("http://127.0.0.1:{port}{path}");
        let mut all = args.to_vec();
        all.push(&url);
        let r = curl(&all);
        assert_eq!(r.status, 200, "{path} {args:?}: {r:?}");
        r.body.trim().to_string()
    }

    /// Asserts which route answers each `(path, curl args)`.
    fn expect(&self, cases: &[(&str, &[&str], &str)]) {
        for (path, args, want) in cases {
            assert_eq!(self.hit(path, args), *want, "{path} {args:?}");
        }
    }
}

#[test]
fn uri_exact_prefix_and_full_regex_and_ignore_uri_case() {
    let f = start("match-uri");
    f.expect(&[
        ("/exact", &[], "uri-exact"),
        ("/exact?q=1", &[], "uri-exact"),
        ("/exact/more", &[], "fallback"),
        ("/exac", &[], "fallback"),
        ("/EXACT", &[], "fallback"),
        ("/prefix/a/b", &[], "uri-prefix"),
        ("/prefix/", &[], "uri-prefix"),
        ("/prefix", &[], "fallback"),
        ("/re/123", &[], "uri-regex"),
        // Regexes match the whole path, as Envoy's safe_regex does.
        ("/re/123x", &[], "fallback"),
        ("/x/re/123", &[], "fallback"),
        ("/case/path", &[], "case-exact"),
        ("/CASE/PATH", &[], "case-exact"),
        ("/case/path/x", &[], "fallback"),
        ("/caseprefix/x", &[], "case-prefix"),
        ("/CASEPREFIX/x", &[], "case-prefix"),
        ("/caseregex/abc", &[], "case-regex"),
        ("/caseregex/ABC", &[], "fallback"),
    ]);
}

#[test]
fn method_authority_and_scheme() {
    let f = start("match-request");
    f.expect(&[
        ("/method", &["-X", "POST"], "method"),
        ("/method", &[], "fallback"),
        ("/method", &["-X", "PUT"], "fallback"),
        (
            "/authority",
            &["-H", "Host: shop.example.com"],
            "authority-exact",
        ),
        (
            "/authority",
            &["-H", "Host: shop.example.com.evil"],
            "fallback",
        ),
        (
            "/authority",
            &["-H", "Host: books.example.org"],
            "authority-regex",
        ),
        (
            "/authority",
            &["-H", "Host: books.example.org.x"],
            "fallback",
        ),
        ("/authority", &["-H", "Host: 9.example.org"], "fallback"),
        // Plain HTTP: the `https` route before it must not apply.
        ("/scheme", &[], "scheme-http"),
    ]);
}

#[test]
fn headers_exact_prefix_regex_presence_and_without_headers() {
    let f = start("match-headers");
    f.expect(&[
        // Header names match whatever their case (the route names `X-Mixed-Case`).
        ("/h/exact", &["-H", "x-mixed-case: a"], "header-exact"),
        ("/h/exact", &["-H", "X-MIXED-CASE: a"], "header-exact"),
        ("/h/exact", &["-H", "x-mixed-case: ab"], "fallback"),
        ("/h/exact", &["-H", "x-mixed-case: A"], "fallback"),
        ("/h/exact", &[], "fallback"),
        ("/h/prefix", &["-H", "x-v: abc"], "header-prefix"),
        ("/h/prefix", &["-H", "x-v: ba"], "fallback"),
        ("/h/regex", &["-H", "x-v: aaa"], "header-regex"),
        ("/h/regex", &["-H", "x-v: aab"], "fallback"),
        ("/h/regex", &["-H", "x-v: baa"], "fallback"),
        ("/h/present", &["-H", "x-v: anything"], "header-present"),
        // curl's `name;` sends the header with an empty value: present all the same.
        ("/h/present", &["-H", "x-v;"], "header-present"),
        ("/h/present", &[], "fallback"),
        ("/without", &[], "without-exact"),
        ("/without", &["-H", "x-debug: 2"], "without-exact"),
        ("/without", &["-H", "x-debug: 1"], "fallback"),
        ("/without-any", &[], "without-present"),
        ("/without-any", &["-H", "x-debug: 0"], "fallback"),
        ("/without-empty", &["-H", "x-e: v"], "without-empty"),
        ("/without-empty", &[], "fallback"),
    ]);
}

#[test]
fn query_params_exact_regex_and_prefix() {
    let f = start("match-query");
    f.expect(&[
        ("/query?id=7", &[], "query-exact"),
        ("/query?a=1&id=7&b=2", &[], "query-exact"),
        // Values are compared as sent, undecoded, as Envoy's route matching does.
        ("/query?id=%37", &[], "fallback"),
        ("/query?id=77", &[], "fallback"),
        ("/query?xid=7", &[], "fallback"),
        ("/query", &[], "fallback"),
        ("/query?n=123", &[], "query-regex"),
        ("/query?n=12a", &[], "fallback"),
        // Istio documents prefix as unsupported but translates it to Envoy's prefix
        // match all the same.
        ("/query?p=abc", &[], "query-prefix"),
        ("/query?p=bab", &[], "fallback"),
    ]);
}

#[test]
fn and_inside_a_match_block_or_across_blocks() {
    let f = start("match-and-or");
    f.expect(&[
        ("/and", &["-H", "x-and: 1"], "and"),
        ("/and", &[], "fallback"),
        ("/elsewhere", &["-H", "x-and: 1"], "fallback"),
        ("/or", &[], "or"),
        ("/elsewhere", &["-H", "x-or: 1"], "or"),
        ("/elsewhere", &["-H", "x-or: 2"], "fallback"),
    ]);
}

#[test]
fn port_gateways_source_labels_and_namespace_scope_match_blocks() {
    let f = start("match-scope");
    assert_eq!(f.hit("/port", &[]), "fallback");
    assert_eq!(f.hit_on(f.second, "/port", &[]), "port-second");
    f.expect(&[
        // Blocks naming another gateway, or `mesh`, do not apply on this one.
        ("/gw", &[], "gateway-mine"),
        // sourceLabels and sourceNamespace name the client workload: the gateway itself.
        ("/labels", &[], "labels-mine"),
        ("/ns", &[], "ns-mine"),
    ]);
}
