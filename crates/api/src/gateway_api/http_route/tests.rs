//! Tests of the HTTPRoute rules (and of the parent refs, backends and filters every route
//! kind shares).

use crate::Kind;
use crate::testing::{assert_error, assert_valid, assert_warning};

/// An HTTPRoute document with `spec` (indented by two spaces) starting on line 6.
fn route(spec: &str) -> String {
    let spec: String = spec.lines().map(|l| format!("  {l}\n")).collect();
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: r\nspec:\n{spec}"
    )
}

/// A route with one rule made of `rule` (the rule's fields, as YAML at the rule's indentation).
fn rule(rule: &str) -> String {
    let body: String = rule
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                format!("- {l}\n")
            } else {
                format!("  {l}\n")
            }
        })
        .collect();
    route(&format!("parentRefs: [{{name: gw}}]\nrules:\n{body}"))
}

#[test]
fn the_bookinfo_route_is_valid() {
    let loaded = assert_valid(&route(
        "parentRefs:\n- name: bookinfo-gateway\nrules:\n- matches:\n  - path: {type: Exact, value: /productpage}\n  - path: {type: PathPrefix, value: /static}\n  backendRefs:\n  - name: productpage\n    port: 9080\n",
    ));
    assert_eq!(loaded.objects[0].kind, Kind::HttpRoute);
}

#[test]
fn a_full_route_is_valid() {
    assert_valid(&route(
        r#"parentRefs:
- {group: "", kind: Service, name: reviews, port: 9080}
- {name: gw, namespace: istio-ingress, sectionName: https}
- {name: gw, namespace: istio-ingress, sectionName: http}
hostnames: ["*.example.com", reviews.example.com]
rules:
- name: canary
  matches:
  - path: {type: RegularExpression, value: "/api/v[0-9]+/.*"}
    headers:
    - {name: x-canary, value: "true"}
    - {type: RegularExpression, name: user-agent, value: ".*Chrome.*"}
    queryParams: [{name: debug, value: "1"}]
    method: GET
  - {}
  filters:
  - type: RequestHeaderModifier
    requestHeaderModifier:
      set: [{name: x-a, value: "1"}]
      add: [{name: x-b, value: "2"}]
      remove: [x-c]
  - type: RequestMirror
    requestMirror: {backendRef: {name: shadow, port: 80}, fraction: {numerator: 1, denominator: 10}}
  - type: CORS
    cors: {allowOrigins: ["https://*.example.com"], allowMethods: [GET, POST], allowHeaders: [x-a], maxAge: 60}
  - type: ExtensionRef
    extensionRef: {group: example.com, kind: Filter, name: f}
  backendRefs:
  - name: reviews-v1
    port: 9080
    weight: 90
  - {group: example.com, kind: Backend, name: external, weight: 10}
  timeouts: {request: 10s, backendRequest: 2s}
  retry: {codes: [502, 503], attempts: 3, backoff: 100ms}
  sessionPersistence: {sessionName: s, absoluteTimeout: 1h, type: Cookie, cookieConfig: {lifetimeType: Permanent}}
- matches: [{path: {type: PathPrefix, value: /old}}]
  filters:
  - type: URLRewrite
    urlRewrite: {hostname: new.example.com, path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}}
  backendRefs: [{name: svc, port: 80}]
- filters:
  - type: RequestRedirect
    requestRedirect: {scheme: https, port: 443, statusCode: 301, path: {type: ReplaceFullPath, replaceFullPath: /}}
"#,
    ));
}

#[test]
fn parent_refs_rules() {
    assert_error(
        &route("parentRefs: [{sectionName: http}]\n"),
        &["spec.parentRefs[0].name", "required", "test.yaml:6"],
    );
    assert_error(
        &route("parentRefs: [{name: gw, group: Bad/Group}]\n"),
        &["parentRefs[0].group", "invalid group"],
    );
    assert_error(
        &route("parentRefs: [{name: gw, port: 0}]\n"),
        &["parentRefs[0].port", "1-65535"],
    );
    assert_error(
        &route("parentRefs: [{name: gw, sectionName: Web_1}]\n"),
        &["parentRefs[0].sectionName", "invalid name"],
    );
    assert_error(
        &route("parentRefs:\n- name: gw\n- name: gw\n"),
        &[
            "spec.parentRefs[1]",
            "duplicate of parentRefs[0]",
            "test.yaml:8",
        ],
    );
    assert_error(
        &route("parentRefs:\n- {name: gw, sectionName: a}\n- {name: gw}\n"),
        &["parentRefs[1]", "must set the same fields"],
    );
    // The same name in another group or namespace is another parent.
    assert_valid(&route(
        "parentRefs:\n- {name: gw}\n- {name: gw, namespace: other}\n- {name: gw, group: \"\", kind: Service}\n",
    ));
    assert_valid(&route(
        "parentRefs:\n- {name: gw, port: 80}\n- {name: gw, port: 443}\n",
    ));
}

#[test]
fn hostnames_rules() {
    assert_error(
        &route("hostnames: [Example.com]\n"),
        &["spec.hostnames[0]", "invalid hostname \"Example.com\""],
    );
    assert_error(
        &route("hostnames: [\"foo.*.com\"]\n"),
        &["spec.hostnames[0]", "invalid hostname"],
    );
    assert_warning(
        &route("hostnames: [10.0.0.1]\n"),
        &["spec.hostnames[0]", "IP address"],
    );
    let many: Vec<String> = (0..17).map(|i| format!("h{i}.com")).collect();
    assert_error(
        &route(&format!("hostnames: [{}]\n", many.join(", "))),
        &["spec.hostnames", "at most 16"],
    );
}

#[test]
fn rule_counts_and_names() {
    let rules: String = (0..17)
        .map(|i| format!("- backendRefs: [{{name: s{i}, port: 80}}]\n"))
        .collect();
    assert_error(
        &route(&format!("rules:\n{rules}")),
        &["spec.rules", "at most 16"],
    );
    assert_error(
        &route("rules:\n- name: a\n- name: a\n"),
        &["spec.rules[1].name", "already used by rules[0]"],
    );
    assert_error(
        &route("rules:\n- name: A\n"),
        &["spec.rules[0].name", "invalid name"],
    );
    let matches: String = (0..60)
        .map(|i| format!("  - path: {{value: /p{i}}}\n"))
        .collect();
    let three = format!("rules:\n- matches:\n{matches}- matches:\n{matches}- matches:\n{matches}");
    assert_error(
        &route(&three),
        &["spec.rules", "180 matches", "at most 128"],
    );
    let too_many: String = (0..65)
        .map(|i| format!("  - path: {{value: /p{i}}}\n"))
        .collect();
    assert_error(
        &route(&format!("rules:\n- matches:\n{too_many}")),
        &["rules[0].matches", "at most 64"],
    );
}

#[test]
fn path_match_rules() {
    let cases = [
        ("{type: Exact, value: productpage}", "must be absolute"),
        ("{value: api}", "PathPrefix path \"api\" must be absolute"),
        (
            "{type: PathPrefix, value: /a//b}",
            "must not contain \"//\"",
        ),
        (
            "{type: PathPrefix, value: /a/../b}",
            "must not contain \"/../\"",
        ),
        ("{type: Exact, value: /a%2Fb}", "must not contain \"%2F\""),
        ("{type: Exact, value: /a#b}", "must not contain \"#\""),
        ("{type: Exact, value: /a/.}", "must not end with \"/.\""),
        (
            "{type: Exact, value: /a b}",
            "characters a URL path cannot hold",
        ),
        ("{type: RegularExpression, value: \"/a(\"}", "invalid regex"),
    ];
    for (path, message) in cases {
        let text = rule(&format!("matches: [{{path: {path}}}]"));
        assert_error(
            &text,
            &[
                "spec.rules[0].matches[0].path.value",
                message,
                "test.yaml:8",
            ],
        );
    }
    assert_error(
        &rule("matches: [{path: {type: Prefix, value: /}}]"),
        &["path.type", "unknown variant `Prefix`"],
    );
    assert_valid(&rule(
        "matches: [{path: {type: RegularExpression, value: \"/a.*\"}}, {path: {value: \"/a%20b\"}}]",
    ));
}

#[test]
fn header_and_query_matches() {
    let cases = [
        (
            "headers: [{name: \"x y\", value: a}]",
            "headers[0].name",
            "invalid header name",
        ),
        (
            "headers: [{name: \":path\", value: a}]",
            "headers[0].name",
            "invalid header name",
        ),
        ("headers: [{name: x}]", "headers[0].value", "required"),
        (
            "headers: [{name: x, value: a}, {name: x, value: b}]",
            "headers[1].name",
            "already matched by entry [0]",
        ),
        (
            "headers: [{type: RegularExpression, name: x, value: \"[\"}]",
            "headers[0].value",
            "invalid regex",
        ),
        (
            "queryParams: [{name: q, value: a}, {name: q, value: b}]",
            "queryParams[1].name",
            "already matched",
        ),
        (
            "method: FETCH",
            "matches[0].method",
            "unknown variant `FETCH`",
        ),
    ];
    for (m, path, message) in cases {
        assert_error(&rule(&format!("matches: [{{{m}}}]")), &[path, message]);
    }
    assert_warning(
        &rule("matches: [{headers: [{name: X-A, value: a}, {name: x-a, value: b}]}]"),
        &["headers[1].name", "case-insensitive"],
    );
    // Query parameter names are case-sensitive.
    assert_valid(&rule(
        "matches: [{queryParams: [{name: Q, value: a}, {name: q, value: b}]}]",
    ));
}

#[test]
fn filter_type_and_field_must_agree() {
    let cases = [
        (
            "{type: RequestHeaderModifier}",
            "filters[0].requestHeaderModifier",
            "needs requestHeaderModifier",
        ),
        (
            "{type: URLRewrite}",
            "filters[0].urlRewrite",
            "needs urlRewrite",
        ),
        ("{type: CORS}", "filters[0].cors", "needs cors"),
        (
            "{type: ExtensionRef}",
            "filters[0].extensionRef",
            "needs extensionRef",
        ),
        (
            "{type: RequestMirror, requestRedirect: {}}",
            "filters[0].requestRedirect",
            "must not be set on a filter of type RequestMirror",
        ),
        ("{requestRedirect: {}}", "filters[0].type", "required"),
        (
            "{type: Rewrite}",
            "filters[0].type",
            "unknown variant `Rewrite`",
        ),
    ];
    for (f, path, message) in cases {
        assert_error(&rule(&format!("filters: [{f}]")), &[path, message]);
    }
}

#[test]
fn filter_combinations() {
    let hm = "{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: a, value: b}]}}";
    assert_error(
        &rule(&format!("filters: [{hm}, {hm}]")),
        &["filters[1].type", "cannot be repeated"],
    );
    let mirror = "{type: RequestMirror, requestMirror: {backendRef: {name: m, port: 80}}}";
    assert_valid(&rule(&format!("filters: [{mirror}, {mirror}]")));
    let redirect = "{type: RequestRedirect, requestRedirect: {hostname: a.com}}";
    let rewrite = "{type: URLRewrite, urlRewrite: {hostname: b.com}}";
    assert_error(
        &rule(&format!("filters: [{redirect}, {rewrite}]")),
        &["filters[1].type", "cannot be used together"],
    );
    assert_error(
        &rule(&format!(
            "filters: [{redirect}]\nbackendRefs: [{{name: s, port: 80}}]"
        )),
        &["rules[0].filters[0]", "cannot be combined with backendRefs"],
    );
    assert_error(
        &rule(&format!(
            "backendRefs:\n- name: s\n  port: 80\n  filters: [{hm}, {hm}]"
        )),
        &["backendRefs[0].filters[1].type", "cannot be repeated"],
    );
}

#[test]
fn replace_prefix_match_needs_one_path_prefix_match() {
    let rewrite = "filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}}}]";
    assert_valid(&rule(rewrite));
    assert_valid(&rule(&format!(
        "matches: [{{path: {{value: /v1}}}}]\n{rewrite}"
    )));
    assert_error(
        &rule(&format!(
            "matches: [{{path: {{type: Exact, value: /v1}}}}]\n{rewrite}"
        )),
        &[
            "filters[0].urlRewrite.path",
            "exactly one match, of type PathPrefix",
        ],
    );
    assert_error(
        &rule(&format!(
            "matches: [{{path: {{value: /a}}}}, {{path: {{value: /b}}}}]\n{rewrite}"
        )),
        &["filters[0].urlRewrite.path", "exactly one match"],
    );
    let in_backend = "backendRefs:\n- name: s\n  port: 80\n  filters: [{type: RequestRedirect, requestRedirect: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /x}}}]";
    assert_error(
        &rule(&format!(
            "matches: [{{path: {{type: Exact, value: /v1}}}}]\n{in_backend}"
        )),
        &[
            "backendRefs[0].filters[0].requestRedirect.path",
            "exactly one match",
        ],
    );
}

#[test]
fn redirect_rewrite_and_path_modifier_fields() {
    let cases = [
        (
            "requestRedirect: {statusCode: 304}",
            "requestRedirect.statusCode",
            "301, 302, 303, 307, 308",
        ),
        (
            "requestRedirect: {scheme: ftp}",
            "requestRedirect.scheme",
            "unknown variant `ftp`",
        ),
        (
            "requestRedirect: {hostname: \"*.a.com\"}",
            "requestRedirect.hostname",
            "wildcard is not allowed",
        ),
        (
            "requestRedirect: {port: 0}",
            "requestRedirect.port",
            "1-65535",
        ),
        (
            "requestRedirect: {path: {replaceFullPath: /x}}",
            "requestRedirect.path.type",
            "required",
        ),
        (
            "requestRedirect: {path: {type: ReplaceFullPath}}",
            "path.replaceFullPath",
            "type ReplaceFullPath needs replaceFullPath",
        ),
        (
            "requestRedirect: {path: {type: ReplaceFullPath, replaceFullPath: /, replacePrefixMatch: /}}",
            "path.replacePrefixMatch",
            "needs type: ReplacePrefixMatch",
        ),
    ];
    for (f, path, message) in cases {
        assert_error(
            &rule(&format!("filters: [{{type: RequestRedirect, {f}}}]")),
            &[path, message],
        );
    }
    assert_error(
        &rule("filters: [{type: URLRewrite, urlRewrite: {hostname: New.com}}]"),
        &["urlRewrite.hostname", "invalid hostname"],
    );
}

#[test]
fn mirror_rules() {
    let cases = [
        ("{}", "requestMirror.backendRef", "required"),
        (
            "{backendRef: {name: m}}",
            "requestMirror.backendRef.port",
            "needs a port",
        ),
        (
            "{backendRef: {name: m, port: 80}, percent: 101}",
            "requestMirror.percent",
            "0-100",
        ),
        (
            "{backendRef: {name: m, port: 80}, percent: 10, fraction: {numerator: 1}}",
            "requestMirror.fraction",
            "not both",
        ),
        (
            "{backendRef: {name: m, port: 80}, fraction: {numerator: 200}}",
            "fraction.numerator",
            "larger than the denominator 100",
        ),
        (
            "{backendRef: {name: m, port: 80}, fraction: {numerator: 1, denominator: 0}}",
            "fraction.denominator",
            "at least 1",
        ),
        (
            "{backendRef: {name: m, port: 80}, fraction: {denominator: 10}}",
            "fraction.numerator",
            "required",
        ),
    ];
    for (m, path, message) in cases {
        assert_error(
            &rule(&format!(
                "filters: [{{type: RequestMirror, requestMirror: {m}}}]"
            )),
            &[path, message],
        );
    }
}

#[test]
fn header_modifier_rules() {
    let cases = [
        (
            "{set: [{name: \"a b\", value: x}]}",
            "set[0].name",
            "invalid header name",
        ),
        ("{add: [{name: a}]}", "add[0].value", "required"),
        (
            "{set: [{name: a, value: x}, {name: A, value: y}]}",
            "set[1].name",
            "listed twice in set",
        ),
        ("{remove: [a, a]}", "remove[1]", "listed twice in remove"),
    ];
    for (m, path, message) in cases {
        let text = rule(&format!(
            "filters: [{{type: ResponseHeaderModifier, responseHeaderModifier: {m}}}]"
        ));
        assert_error(&text, &[&format!("responseHeaderModifier.{path}"), message]);
    }
    assert_warning(
        &rule(
            "filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: a, value: x}], remove: [A]}}]",
        ),
        &["requestHeaderModifier.remove[0]", "also in set"],
    );
}

#[test]
fn cors_rules() {
    let cases = [
        (
            "{allowOrigins: [\"*\", \"https://a.com\"]}",
            "cors.allowOrigins",
            "cannot be combined",
        ),
        (
            "{allowOrigins: [\"a.com\"]}",
            "cors.allowOrigins[0]",
            "invalid origin",
        ),
        (
            "{allowMethods: [GET, GET]}",
            "cors.allowMethods[1]",
            "listed twice",
        ),
        (
            "{allowMethods: [get]}",
            "cors.allowMethods[0]",
            "unknown method",
        ),
        (
            "{allowHeaders: [\"x y\"]}",
            "cors.allowHeaders[0]",
            "invalid header name",
        ),
        ("{maxAge: 0}", "cors.maxAge", "at least 1"),
    ];
    for (c, path, message) in cases {
        assert_error(
            &rule(&format!("filters: [{{type: CORS, cors: {c}}}]")),
            &[path, message],
        );
    }
}

#[test]
fn external_auth_rules() {
    let ok = "filters: [{type: ExternalAuth, externalAuth: {protocol: GRPC, backendRef: {name: authz, port: 9000}, grpc: {}}}]";
    assert_valid(&rule(ok));
    assert_error(
        &rule(
            "filters: [{type: ExternalAuth, externalAuth: {protocol: HTTP, backendRef: {name: a, port: 80}, grpc: {}}}]",
        ),
        &["externalAuth.grpc", "do not apply to protocol HTTP"],
    );
    assert_error(
        &rule(
            "filters: [{type: ExternalAuth, externalAuth: {protocol: HTTP, backendRef: {name: a, port: 80}}}]",
        ),
        &["externalAuth.http", "needs http settings"],
    );
}

#[test]
fn backend_refs_rules() {
    assert_error(
        &rule("backendRefs: [{name: reviews}]"),
        &[
            "spec.rules[0].backendRefs[0].port",
            "needs a port",
            "test.yaml:8",
        ],
    );
    assert_error(
        &rule("backendRefs: [{group: \"\", kind: Service, name: r}]"),
        &["backendRefs[0].port", "needs a port"],
    );
    assert_error(
        &rule("backendRefs: [{name: r, port: 80, weight: 1000001}]"),
        &["backendRefs[0].weight", "0-1000000"],
    );
    assert_error(
        &rule("backendRefs: [{name: r, port: 80, weight: -1}]"),
        &["backendRefs[0].weight", "0-1000000"],
    );
    assert_error(
        &rule("backendRefs: [{port: 80}]"),
        &["backendRefs[0].name", "required"],
    );
    assert_error(
        &rule("backendRefs: [{name: r, port: 80, namespace: A}]"),
        &["backendRefs[0].namespace", "invalid namespace"],
    );
    assert_valid(&rule(
        "backendRefs: [{kind: ServiceImport, group: multicluster.x-k8s.io, name: r}]",
    ));
    assert_valid(&rule("backendRefs: [{name: r, port: 80, weight: 0}]"));
}

#[test]
fn timeouts_and_retries() {
    let cases = [
        (
            "timeouts: {request: 10}",
            "timeouts.request",
            "missing unit",
        ),
        (
            "timeouts: {request: 1.5s}",
            "timeouts.request",
            "invalid duration \"1.5s\"",
        ),
        (
            "timeouts: {request: 100us}",
            "timeouts.request",
            "not one of h, m, s, ms",
        ),
        (
            "timeouts: {request: 123456s}",
            "timeouts.request",
            "at most 5 digits",
        ),
        (
            "timeouts: {request: 1h1m1s1ms1h}",
            "timeouts.request",
            "at most 4",
        ),
        (
            "timeouts: {request: 1s, backendRequest: 2s}",
            "timeouts.backendRequest",
            "longer than the request timeout",
        ),
        ("retry: {codes: [200]}", "retry.codes[0]", "400-599"),
        (
            "retry: {codes: [503, 503]}",
            "retry.codes[1]",
            "listed twice",
        ),
        ("retry: {backoff: 1d}", "retry.backoff", "invalid duration"),
        (
            "sessionPersistence: {cookieConfig: {lifetimeType: Permanent}}",
            "sessionPersistence.absoluteTimeout",
            "Permanent cookie",
        ),
        (
            "sessionPersistence: {idleTimeout: soon}",
            "sessionPersistence.idleTimeout",
            "invalid duration",
        ),
    ];
    for (r, path, message) in cases {
        assert_error(&rule(r), &[path, message]);
    }
    assert_valid(&rule("timeouts: {request: 0s, backendRequest: 1h30m}"));
    assert_valid(&rule("timeouts: {request: 1m, backendRequest: 500ms}"));
    assert_warning(
        &rule("retry: {attempts: -1}"),
        &["retry.attempts", "negative"],
    );
}

#[test]
fn unknown_route_fields_are_reported() {
    assert_warning(
        &rule("backendRef: [{name: s, port: 80}]"),
        &["rules[0].backendRef", "unknown field", "backendRefs"],
    );
}
