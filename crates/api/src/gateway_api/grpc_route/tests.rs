//! Tests of the GRPCRoute rules.

use crate::Kind;
use crate::testing::{assert_error, assert_valid, assert_warning};

/// A GRPCRoute whose one rule is `rule` (the rule's fields); the rule starts on line 8.
fn rule(rule: &str) -> String {
    let body: String = rule
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                format!("  - {l}\n")
            } else {
                format!("    {l}\n")
            }
        })
        .collect();
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata:\n  name: g\nspec:\n  parentRefs: [{{name: gw}}]\n  rules:\n{body}"
    )
}

#[test]
fn a_grpc_route_is_valid() {
    let loaded = assert_valid(&rule(
        r#"matches:
- method: {service: helloworld.Greeter, method: SayHello}
  headers: [{name: x-version, value: v2}]
- method: {type: RegularExpression, service: "helloworld\\..*"}
- method: {method: SayHello}
filters:
- type: RequestHeaderModifier
  requestHeaderModifier: {add: [{name: x-a, value: b}]}
- type: RequestMirror
  requestMirror: {backendRef: {name: shadow, port: 50051}, percent: 5}
backendRefs:
- name: greeter
  port: 50051
  weight: 3
  filters: [{type: ResponseHeaderModifier, responseHeaderModifier: {remove: [x-b]}}]"#,
    ));
    assert_eq!(loaded.objects[0].kind, Kind::GrpcRoute);
}

#[test]
fn method_match_rules() {
    let cases = [
        (
            "method: {type: Exact}",
            "matches[0].method",
            "give service, method or both",
        ),
        (
            "method: {}",
            "matches[0].method",
            "give service, method or both",
        ),
        (
            "method: {service: hello/Greeter}",
            "method.service",
            "invalid service",
        ),
        (
            "method: {service: helloworld.Greeter, method: Say.Hello}",
            "method.method",
            "invalid method",
        ),
        ("method: {method: \"/SayHello\"}", "method.method", "no '/'"),
        (
            "method: {type: RegularExpression, method: \"(\"}",
            "method.method",
            "invalid regex",
        ),
        (
            "method: {type: Prefix, method: a}",
            "method.type",
            "unknown variant `Prefix`",
        ),
        (
            "headers: [{name: \"a:b\", value: x}]",
            "headers[0].name",
            "invalid header name",
        ),
        (
            "headers: [{name: a, value: x}, {name: a, value: y}]",
            "headers[1].name",
            "already matched",
        ),
    ];
    for (m, path, message) in cases {
        assert_error(
            &rule(&format!("matches: [{{{m}}}]")),
            &[path, message, "test.yaml:8"],
        );
    }
    let nine: Vec<&str> = vec!["{method: {method: M}}"; 9];
    assert_error(
        &rule(&format!("matches: [{}]", nine.join(", "))),
        &["rules[0].matches", "at most 8"],
    );
}

#[test]
fn grpc_filter_rules() {
    let cases = [
        (
            "[{type: RequestHeaderModifier}]",
            "filters[0].requestHeaderModifier",
            "needs requestHeaderModifier",
        ),
        (
            "[{type: RequestMirror, extensionRef: {kind: K, name: n}}]",
            "filters[0].extensionRef",
            "must not be set",
        ),
        (
            "[{type: URLRewrite}]",
            "filters[0].type",
            "unknown variant `URLRewrite`",
        ),
        (
            "[{type: ResponseHeaderModifier, responseHeaderModifier: {}}, {type: ResponseHeaderModifier, responseHeaderModifier: {}}]",
            "filters[1].type",
            "cannot be repeated",
        ),
        (
            "[{type: RequestMirror, requestMirror: {backendRef: {name: m}}}]",
            "requestMirror.backendRef.port",
            "needs a port",
        ),
    ];
    for (f, path, message) in cases {
        assert_error(&rule(&format!("filters: {f}")), &[path, message]);
    }
}

#[test]
fn grpc_backends_parents_and_hostnames() {
    assert_error(
        &rule("backendRefs: [{name: greeter}]"),
        &["backendRefs[0].port", "needs a port"],
    );
    assert_error(
        &rule("backendRefs: [{name: g, port: 1, weight: 2000000}]"),
        &["backendRefs[0].weight", "0-1000000"],
    );
    let text = "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata:\n  name: g\nspec:\n  parentRefs: [{name: gw}, {name: gw}]\n  hostnames: [\"*.Example.com\"]\n";
    assert_error(text, &["spec.parentRefs[1]", "duplicate"]);
    assert_error(text, &["spec.hostnames[0]", "invalid hostname"]);
    let named = "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata:\n  name: g\nspec:\n  rules: [{name: a}, {name: a}]\n";
    assert_error(named, &["spec.rules[1].name", "already used"]);
    assert_warning(
        &rule("backendRef: []"),
        &["rules[0].backendRef", "unknown field"],
    );
}
