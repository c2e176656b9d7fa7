use super::*;
use crate::testing::load;

const SERVICES: &str = "apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  ports: [{name: http, port: 9080}]
---
apiVersion: v1
kind: Service
metadata: {name: httpbin}
spec:
  ports: [{name: http, port: 8000}, {name: grpc-api, port: 9000}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [\"*.example.com\"]
";

/// Loads `SERVICES` plus `extra` and returns the analyzer's findings, printed.
fn findings(extra: &str) -> Vec<String> {
    let loaded = load(&format!("{SERVICES}---\n{extra}"));
    let errors: Vec<String> = loaded.errors().map(ToString::to_string).collect();
    assert!(errors.is_empty(), "the fixture must validate: {errors:?}");
    analyze(&loaded.objects)
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[track_caller]
fn assert_finding(found: &[String], needles: &[&str]) {
    assert!(
        found.iter().any(|f| needles.iter().all(|n| f.contains(n))),
        "expected a finding with {needles:?}, got:\n{}",
        found.join("\n")
    );
}

fn vs(spec: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: vs}}\nspec:\n{spec}"
    )
}

#[test]
fn a_consistent_set_has_no_findings() {
    let found = findings(&vs(
        "  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews, subset: v1}\n",
    ));
    assert_eq!(found, Vec::<String>::new());
}

#[test]
fn missing_gateway_host_and_subset() {
    let found = findings(&vs(
        "  hosts: [a.example.com]\n  gateways: [gw-bogus, gw]\n  http:\n  - route:\n    - destination: {host: reviewz}\n      weight: 100\n    - destination: {host: reviews, subset: v4}\n      weight: 0\n",
    ));
    assert_finding(
        &found,
        &[
            "error [IST0101]",
            "spec.gateways[0]",
            "Referenced gateway not found: \"gw-bogus\"",
        ],
    );
    assert_finding(
        &found,
        &[
            "[IST0101]",
            "spec.http[0].route[0].destination.host",
            "Referenced host not found: \"reviewz\"",
        ],
    );
    assert_finding(
        &found,
        &["spec.http[0].route[1].destination.subset", "\"reviews+v4\""],
    );
    assert_eq!(found.len(), 3, "{found:#?}");
}

#[test]
fn dotted_short_names_are_not_expanded_and_get_a_hint() {
    let found = findings(&vs(
        "  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews.default}\n",
    ));
    assert_finding(
        &found,
        &[
            "Referenced host not found: \"reviews.default\"",
            "did you mean \"reviews.default.svc.cluster.local\"?",
        ],
    );
}

#[test]
fn host_not_served_by_the_gateway() {
    let found = findings(&vs(
        "  hosts: [shop.other.org]\n  gateways: [gw]\n  http:\n  - route:\n    - destination: {host: reviews}\n",
    ));
    assert_finding(
        &found,
        &[
            "warning [IST0132]",
            "spec.gateways[0]",
            "[\"shop.other.org\"]",
            "Gateway default/gw",
        ],
    );
}

#[test]
fn port_selector_required_on_gateway_routes_to_multi_port_services() {
    let found = findings(&vs(
        "  hosts: [a.example.com]\n  gateways: [gw]\n  http:\n  - route:\n    - destination: {host: httpbin}\n",
    ));
    assert_finding(
        &found,
        &["error [IST0112]", "spec.http[0].route[0].destination"],
    );
    let found = findings(&vs(
        "  hosts: [a.example.com]\n  gateways: [gw]\n  http:\n  - route:\n    - destination: {host: httpbin, port: {number: 8000}}\n",
    ));
    assert!(!found.iter().any(|f| f.contains("IST0112")), "{found:#?}");
}

#[test]
fn conflicting_mesh_virtual_services() {
    let second = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: other, namespace: team2}\nspec:\n  hosts: [reviews.default.svc.cluster.local]\n  http:\n  - route:\n    - destination: {host: reviews.default.svc.cluster.local}\n";
    let found = findings(&format!(
        "{}---\n{second}",
        vs("  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews}\n")
    ));
    let conflicts: Vec<&String> = found.iter().filter(|f| f.contains("IST0109")).collect();
    assert_eq!(conflicts.len(), 2, "{found:#?}");
    assert_finding(
        &found,
        &[
            "VirtualService default/vs",
            "default/vs,team2/other",
            "\"reviews.default.svc.cluster.local\"",
        ],
    );
}

#[test]
fn the_same_object_twice_is_a_warning_not_a_conflict() {
    let one = vs("  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews}\n");
    let found = findings(&format!("{one}---\n{one}"));
    assert_finding(
        &found,
        &["warning", "metadata.name", "defined again at test.yaml:"],
    );
    assert!(!found.iter().any(|f| f.contains("IST0109")), "{found:#?}");
}

#[test]
fn destination_rule_for_an_unknown_host() {
    let found = findings(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: x}\nspec:\n  host: ratings\n",
    );
    assert_finding(
        &found,
        &[
            "warning [IST0101]",
            "DestinationRule default/x: spec.host",
            "Referenced host not found: \"ratings\"",
        ],
    );
}

#[test]
fn service_entries_make_hosts_known_and_tcp_ones_need_addresses() {
    let se = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: ext}\nspec:\n  hosts: [\"*.wikipedia.org\", db.example.com]\n  ports: [{number: 5432, name: tcp, protocol: TCP}]\n  resolution: NONE\n";
    let route = vs(
        "  hosts: [db.example.com]\n  tcp:\n  - route:\n    - destination: {host: db.example.com}\n      weight: 50\n    - destination: {host: en.wikipedia.org}\n      weight: 50\n",
    );
    let found = findings(&format!("{se}---\n{route}"));
    assert!(
        !found.iter().any(|f| f.contains("Referenced host")),
        "{found:#?}"
    );
    assert_finding(&found, &["warning [IST0134]", "spec.ports[0].protocol"]);
}

#[test]
fn conflicting_gateways() {
    let gw = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw2}\nspec:\n  selector: {istio: ingressgateway}\n  servers:\n  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [shop.example.com]\n";
    let found = findings(gw);
    assert_finding(
        &found,
        &[
            "error [IST0145]",
            "Gateway default/gw2: spec.servers[0]",
            "Conflict with gateways default/gw",
        ],
    );
}

#[test]
fn port_naming_convention_is_an_info() {
    let svc = "apiVersion: v1\nkind: Service\nmetadata: {name: db}\nspec:\n  ports: [{name: database, port: 5432}, {name: pg, port: 5433, appProtocol: postgresql}]\n";
    let found = findings(svc);
    assert_finding(
        &found,
        &["info [IST0118]", "spec.ports[0].name", "\"database\""],
    );
    assert!(
        !found.iter().any(|f| f.contains("spec.ports[1]")),
        "{found:#?}"
    );
}

#[test]
fn gateway_api_routes_need_their_gateway_and_backends() {
    let route = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  parentRefs: [{name: missing-gw}]\n  rules:\n  - backendRefs: [{name: reviews, port: 9080}, {name: nope, port: 80}]\n";
    let found = findings(route);
    assert_finding(
        &found,
        &[
            "HTTPRoute default/r: spec.parentRefs[0]",
            "Referenced gateway not found: \"default/missing-gw\"",
        ],
    );
    assert_finding(
        &found,
        &[
            "spec.rules[0].backendRefs[1]",
            "Referenced service not found: \"default/nope\"",
        ],
    );
    assert!(
        !found.iter().any(|f| f.contains("backendRefs[0]")),
        "{found:#?}"
    );
}
