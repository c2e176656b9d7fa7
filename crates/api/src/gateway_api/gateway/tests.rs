//! Tests of the Gateway and GatewayClass rules, and of the Istio samples that use the
//! Gateway API.

use crate::Kind;
use crate::testing::{assert_error, assert_valid, assert_warning, problems};

/// A Gateway document with `spec` (indented by two spaces) starting on line 6.
fn gw(spec: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata:\n  name: gw\nspec:\n{}",
        indent(spec)
    )
}

fn class(spec: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata:\n  name: c\nspec:\n{}",
        indent(spec)
    )
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

const HTTP: &str =
    "gatewayClassName: istio\nlisteners:\n- name: http\n  port: 80\n  protocol: HTTP\n";

#[test]
fn a_plain_gateway_is_valid() {
    let loaded = assert_valid(&gw(HTTP));
    assert_eq!(loaded.objects[0].kind, Kind::KubeGateway);
    assert_eq!(loaded.objects[0].namespace(), "default");
}

#[test]
fn a_full_gateway_is_valid() {
    assert_valid(&gw(r#"gatewayClassName: istio
addresses:
- value: 10.0.0.1
- type: Hostname
  value: gw.example.com
infrastructure:
  labels: {team: a}
  annotations: {example.com/x: "y"}
  parametersRef: {group: "", kind: ConfigMap, name: gw-options}
listeners:
- name: https
  hostname: "*.example.com"
  port: 443
  protocol: HTTPS
  tls:
    mode: Terminate
    certificateRefs: [{name: cert}]
    options: {gateway.istio.io/tls-terminate-mode: MUTUAL}
  allowedRoutes:
    namespaces:
      from: Selector
      selector:
        matchLabels: {shared: "true"}
        matchExpressions: [{key: env, operator: In, values: [prod]}]
    kinds: [{kind: HTTPRoute}, {group: gateway.networking.k8s.io, kind: GRPCRoute}]
- name: tls
  port: 443
  protocol: TLS
  hostname: db.example.com
  tls: {mode: Passthrough}
- name: mesh
  port: 15008
  protocol: HBONE
"#));
}

#[test]
fn gateway_required_fields() {
    let text = "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata:\n  name: gw\nspec:\n  listeners: []\n";
    assert_error(text, &["spec.gatewayClassName", "required"]);
    assert_error(
        text,
        &["spec.listeners", "at least one listener", "test.yaml:6"],
    );
    let no_port = gw("gatewayClassName: istio\nlisteners:\n- name: a\n  protocol: HTTP\n");
    assert_error(&no_port, &["spec.listeners[0].port", "required"]);
    let no_proto = gw("gatewayClassName: istio\nlisteners:\n- name: a\n  port: 80\n");
    assert_error(&no_proto, &["spec.listeners[0].protocol", "required"]);
    let no_name = gw("gatewayClassName: istio\nlisteners:\n- port: 80\n  protocol: HTTP\n");
    assert_error(&no_name, &["spec.listeners[0].name", "required"]);
}

#[test]
fn listener_fields_are_checked() {
    let cases = [
        (
            "name: HTTP_1\n  port: 80\n  protocol: HTTP",
            "listeners[0].name",
            "invalid name \"HTTP_1\"",
        ),
        (
            "name: a\n  port: 0\n  protocol: HTTP",
            "listeners[0].port",
            "1-65535",
        ),
        (
            "name: a\n  port: 70000\n  protocol: HTTP",
            "listeners[0].port",
            "1-65535",
        ),
        (
            "name: a\n  port: 80\n  protocol: \"HT TP\"",
            "listeners[0].protocol",
            "invalid protocol",
        ),
        (
            "name: a\n  port: 80\n  protocol: HTTP\n  hostname: Foo.com",
            "listeners[0].hostname",
            "lower-case",
        ),
        (
            "name: a\n  port: 80\n  protocol: HTTP\n  hostname: \"*\"",
            "listeners[0].hostname",
            "invalid hostname \"*\"",
        ),
        (
            "name: a\n  port: 80\n  protocol: TCP\n  hostname: a.com",
            "listeners[0].hostname",
            "must not be set for protocol TCP",
        ),
    ];
    for (listener, path, message) in cases {
        let text = gw(&format!(
            "gatewayClassName: istio\nlisteners:\n- {listener}\n"
        ));
        assert_error(&text, &[path, message, "test.yaml:"]);
    }
    let custom = "name: a\n  port: 80\n  protocol: example.com/proto\n  hostname: a.example.com";
    assert_valid(&gw(&format!(
        "gatewayClassName: istio\nlisteners:\n- {custom}\n"
    )));
}

#[test]
fn listener_tls_rules() {
    let cases = [
        (
            "protocol: HTTPS",
            "listeners[0].tls",
            "protocol HTTPS needs tls",
        ),
        (
            "protocol: TLS",
            "listeners[0].tls",
            "protocol TLS needs tls",
        ),
        (
            "protocol: HTTP\n  tls: {mode: Passthrough}",
            "listeners[0].tls",
            "must not be set for protocol HTTP",
        ),
        (
            "protocol: tcp\n  tls: {mode: Passthrough}",
            "listeners[0].tls",
            "must not be set for protocol tcp",
        ),
        (
            "protocol: HTTPS\n  tls: {mode: Passthrough}",
            "listeners[0].tls.mode",
            "must be Terminate",
        ),
        (
            "protocol: HTTPS\n  tls: {}",
            "listeners[0].tls.certificateRefs",
            "needs a certificate",
        ),
        (
            "protocol: TLS\n  tls: {mode: Terminate}",
            "listeners[0].tls.certificateRefs",
            "needs a certificate",
        ),
        (
            "protocol: HTTPS\n  tls: {certificateRefs: [{name: \"\"}]}",
            "certificateRefs[0].name",
            "required",
        ),
        (
            "protocol: HTTPS\n  tls: {certificateRefs: [{name: c, namespace: Bad}]}",
            "certificateRefs[0].namespace",
            "invalid namespace",
        ),
        (
            "protocol: HTTPS\n  tls: {certificateRefs: [{name: c}], options: {\"bad key!\": x}}",
            "tls.options[bad key!]",
            "invalid key",
        ),
    ];
    for (rest, path, message) in cases {
        let text = gw(&format!(
            "gatewayClassName: istio\nlisteners:\n- name: a\n  port: 443\n  {rest}\n"
        ));
        assert_error(&text, &[path, message]);
    }
    let two_certs = gw(
        "gatewayClassName: istio\nlisteners:\n- name: a\n  port: 443\n  protocol: HTTPS\n  tls: {certificateRefs: [{name: a}, {name: b}]}\n",
    );
    assert_warning(
        &two_certs,
        &["certificateRefs", "exactly one certificateRef"],
    );
    let options_only = gw(
        "gatewayClassName: istio\nlisteners:\n- name: a\n  port: 443\n  protocol: HTTPS\n  tls: {options: {example.com/cert: x}}\n",
    );
    assert_valid(&options_only);
}

#[test]
fn frontend_validation_needs_ca_refs() {
    let spec = "gatewayClassName: istio\nlisteners:\n- name: a\n  port: 443\n  protocol: HTTPS\n  tls:\n    certificateRefs: [{name: c}]\n    frontendValidation:\n      caCertificateRefs: []\n";
    assert_error(
        &gw(spec),
        &["frontendValidation.caCertificateRefs", "at least one CA"],
    );
    let spec = spec.replace("[]", "[{kind: ConfigMap, name: ca}]");
    assert_error(&gw(&spec), &["caCertificateRefs[0].group", "required"]);
    let spec = spec.replace("{kind", "{group: \"\", kind");
    assert_valid(&gw(&spec));
}

#[test]
fn listeners_must_be_distinct() {
    let text = gw(
        "gatewayClassName: istio\nlisteners:\n- {name: a, port: 80, protocol: HTTP}\n- {name: a, port: 81, protocol: HTTP}\n",
    );
    assert_error(
        &text,
        &[
            "spec.listeners[1].name",
            "already used by listeners[0]",
            "test.yaml:9",
        ],
    );
    let text = gw(
        "gatewayClassName: istio\nlisteners:\n- {name: a, port: 80, protocol: HTTP}\n- {name: b, port: 80, protocol: HTTP}\n",
    );
    assert_error(
        &text,
        &["spec.listeners[1]", "same port, protocol and hostname"],
    );
    let text = gw(
        "gatewayClassName: istio\nlisteners:\n- {name: a, port: 80, protocol: HTTP}\n- {name: b, port: 80, protocol: HTTP, hostname: a.com}\n",
    );
    assert_valid(&text);
}

#[test]
fn at_most_64_listeners() {
    let mut spec = String::from("gatewayClassName: istio\nlisteners:\n");
    for i in 0..65 {
        spec.push_str(&format!(
            "- {{name: l{i}, port: {}, protocol: HTTP}}\n",
            1000 + i
        ));
    }
    assert_error(&gw(&spec), &["spec.listeners", "65 entries; at most 64"]);
}

#[test]
fn allowed_routes_rules() {
    let base = "gatewayClassName: istio\nlisteners:\n- name: a\n  port: 80\n  protocol: HTTP\n  allowedRoutes:\n";
    assert_error(
        &gw(&format!("{base}    namespaces: {{from: None}}\n")),
        &["allowedRoutes.namespaces.from", "None is not allowed"],
    );
    assert_error(
        &gw(&format!("{base}    namespaces: {{from: Elsewhere}}\n")),
        &["allowedRoutes.namespaces.from", "unknown variant"],
    );
    assert_warning(
        &gw(&format!("{base}    namespaces: {{from: Selector}}\n")),
        &["allowedRoutes.namespaces.selector", "matches no namespace"],
    );
    assert_error(
        &gw(&format!(
            "{base}    namespaces: {{from: Selector, selector: {{matchExpressions: [{{key: a, operator: In}}]}}}}\n"
        )),
        &["selector.matchExpressions[0].values", "at least one value"],
    );
    assert_error(
        &gw(&format!(
            "{base}    namespaces: {{from: Selector, selector: {{matchExpressions: [{{key: a, operator: Has}}]}}}}\n"
        )),
        &["matchExpressions[0].operator", "unknown operator \"Has\""],
    );
    assert_error(
        &gw(&format!("{base}    kinds: [{{kind: \"\"}}]\n")),
        &["kinds[0].kind", "must not be empty"],
    );
    assert_warning(
        &gw(&format!("{base}    kinds: [{{kind: UDPRoute}}]\n")),
        &["kinds[0].kind", "InvalidRouteKinds"],
    );
    assert_valid(&gw(&format!(
        "{base}    kinds: [{{group: example.com, kind: MyRoute}}]\n"
    )));
}

#[test]
fn addresses_rules() {
    let base =
        "gatewayClassName: istio\nlisteners:\n- {name: a, port: 80, protocol: HTTP}\naddresses:\n";
    assert_error(
        &gw(&format!("{base}- value: gw.example.com\n")),
        &["addresses[0].value", "not an IP address"],
    );
    assert_error(
        &gw(&format!("{base}- {{type: Hostname, value: GW}}\n")),
        &["addresses[0].value", "invalid hostname"],
    );
    assert_error(
        &gw(&format!("{base}- {{type: bogus, value: x}}\n")),
        &["addresses[0].type", "invalid address type"],
    );
    assert_error(
        &gw(&format!("{base}- value: 1.2.3.4\n- value: 1.2.3.4\n")),
        &["addresses[1].value", "listed twice"],
    );
    assert_valid(&gw(&format!(
        "{base}- {{type: example.com/pool, value: anything}}\n- type: IPAddress\n"
    )));
}

#[test]
fn infrastructure_rules() {
    let base = "gatewayClassName: istio\nlisteners:\n- {name: a, port: 80, protocol: HTTP}\ninfrastructure:\n";
    assert_error(
        &gw(&format!("{base}  labels: {{\"-bad\": x}}\n")),
        &["infrastructure.labels.-bad", "invalid label key"],
    );
    assert_error(
        &gw(&format!(
            "{base}  parametersRef: {{kind: ConfigMap, name: x}}\n"
        )),
        &["parametersRef.group", "required"],
    );
    let mut many = format!("{base}  labels:\n");
    for i in 0..9 {
        many.push_str(&format!("    l{i}: v\n"));
    }
    assert_error(&gw(&many), &["infrastructure.labels", "at most 8"]);
}

#[test]
fn gateway_tls_rules() {
    let base = "gatewayClassName: istio\nlisteners:\n- {name: a, port: 80, protocol: HTTP}\ntls:\n";
    assert_error(
        &gw(&format!("{base}  frontend: {{perPort: []}}\n")),
        &["tls.frontend.default", "required"],
    );
    let per_port = "  frontend:\n    default: {}\n    perPort:\n    - {port: 443, tls: {}}\n    - {port: 443, tls: {}}\n";
    assert_error(
        &gw(&format!("{base}{per_port}")),
        &["perPort[1].port", "must be unique"],
    );
    assert_error(
        &gw(&format!(
            "{base}  backend: {{clientCertificateRef: {{name: \"\"}}}}\n"
        )),
        &["tls.backend.clientCertificateRef.name", "required"],
    );
    assert_valid(&gw(&format!(
        "{base}  frontend:\n    default:\n      validation: {{caCertificateRefs: [{{group: \"\", kind: ConfigMap, name: ca}}], mode: AllowInsecureFallback}}\n"
    )));
}

#[test]
fn unknown_gateway_fields_are_reported() {
    let text = gw(&format!("{HTTP}  tsl: {{}}\n"));
    let out = problems(&text);
    assert!(
        out.iter().any(|p| p.contains("warning")
            && p.contains("unknown field \"tsl\"")
            && p.contains("tls")),
        "{out:?}"
    );
}

#[test]
fn gateway_class_rules() {
    let loaded = assert_valid(&class(
        "controllerName: istio.io/gateway-controller\ndescription: Istio\nparametersRef: {group: \"\", kind: ConfigMap, name: opts, namespace: istio-system}\n",
    ));
    assert_eq!(loaded.objects[0].kind, Kind::GatewayClass);
    assert_eq!(loaded.objects[0].namespace(), "");
    assert_error(
        &class("description: x\n"),
        &["spec.controllerName", "required"],
    );
    assert_error(
        &class("controllerName: istio.io\n"),
        &["spec.controllerName", "domain-prefixed path"],
    );
    let long = "x".repeat(65);
    assert_error(
        &class(&format!("controllerName: a.io/b\ndescription: {long}\n")),
        &["spec.description", "at most 64"],
    );
    assert_error(
        &class("controllerName: a.io/b\nparametersRef: {group: \"\", kind: \"1x\", name: o}\n"),
        &["parametersRef.kind", "invalid kind"],
    );
}
