//! Tests of the TCPRoute and TLSRoute rules.

use crate::Kind;
use crate::testing::{assert_error, assert_valid, assert_warning};

fn doc(kind: &str, version: &str, spec: &str) -> String {
    let spec: String = spec.lines().map(|l| format!("  {l}\n")).collect();
    format!(
        "apiVersion: gateway.networking.k8s.io/{version}\nkind: {kind}\nmetadata:\n  name: t\nspec:\n{spec}"
    )
}

#[test]
fn the_tcp_echo_route_is_valid() {
    let loaded = assert_valid(&doc(
        "TCPRoute",
        "v1alpha2",
        "parentRefs:\n- name: tcp-echo-gateway\n  sectionName: tcp-31400\nrules:\n- backendRefs:\n  - {name: tcp-echo-v1, port: 9000, weight: 80}\n  - {name: tcp-echo-v2, port: 9000, weight: 20}\n",
    ));
    assert_eq!(loaded.objects[0].kind, Kind::TcpRoute);
}

#[test]
fn tcp_route_rules() {
    assert_error(
        &doc("TCPRoute", "v1alpha2", "parentRefs: [{name: gw}]\n"),
        &["spec.rules", "at least one rule"],
    );
    assert_error(
        &doc("TCPRoute", "v1alpha2", "rules:\n- backendRefs: []\n"),
        &[
            "spec.rules[0].backendRefs",
            "at least one backend",
            "test.yaml:7",
        ],
    );
    assert_error(
        &doc(
            "TCPRoute",
            "v1alpha2",
            "rules:\n- backendRefs: [{name: echo}]\n",
        ),
        &["spec.rules[0].backendRefs[0].port", "needs a port"],
    );
    assert_error(
        &doc(
            "TCPRoute",
            "v1alpha2",
            "rules:\n- backendRefs: [{name: echo, port: 99999}]\n",
        ),
        &["backendRefs[0].port", "1-65535"],
    );
    assert_error(
        &doc(
            "TCPRoute",
            "v1alpha2",
            "rules:\n- {name: a, backendRefs: [{name: e, port: 1}]}\n- {name: a, backendRefs: [{name: e, port: 2}]}\n",
        ),
        &["spec.rules[1].name", "already used"],
    );
    let backends: Vec<String> = (0..17)
        .map(|i| format!("{{name: e{i}, port: 1}}"))
        .collect();
    assert_error(
        &doc(
            "TCPRoute",
            "v1alpha2",
            &format!("rules:\n- backendRefs: [{}]\n", backends.join(", ")),
        ),
        &["rules[0].backendRefs", "at most 16"],
    );
    assert_warning(
        &doc(
            "TCPRoute",
            "v1alpha2",
            "hostnames: [a.com]\nrules:\n- backendRefs: [{name: e, port: 1}]\n",
        ),
        &["spec.hostnames", "unknown field"],
    );
}

#[test]
fn tls_route_rules() {
    let ok = "parentRefs: [{name: gw, sectionName: tls}]\nhostnames: [\"*.example.com\"]\nrules:\n- backendRefs: [{name: db, port: 5432}]\n";
    for version in ["v1alpha2", "v1alpha3"] {
        let loaded = assert_valid(&doc("TLSRoute", version, ok));
        assert_eq!(loaded.objects[0].kind, Kind::TlsRoute);
    }
    assert_warning(
        &doc(
            "TLSRoute",
            "v1alpha2",
            "rules:\n- backendRefs: [{name: db, port: 5432}]\n",
        ),
        &["spec.hostnames", "v1alpha3 requires at least one"],
    );
    assert_error(
        &doc(
            "TLSRoute",
            "v1alpha3",
            &ok.replace("*.example.com", "DB.example.com"),
        ),
        &["spec.hostnames[0]", "invalid hostname"],
    );
    assert_error(
        &doc("TLSRoute", "v1alpha3", "hostnames: [a.com]\n"),
        &["spec.rules", "at least one rule"],
    );
}
