//! Tests of the ReferenceGrant rules.

use crate::Kind;
use crate::testing::{assert_error, assert_valid, assert_warning};

fn grant(spec: &str) -> String {
    let spec: String = spec.lines().map(|l| format!("  {l}\n")).collect();
    format!(
        "apiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata:\n  name: g\n  namespace: backends\nspec:\n{spec}"
    )
}

#[test]
fn a_grant_is_valid() {
    let loaded = assert_valid(&grant(
        "from:\n- {group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: frontend}\n- {group: gateway.networking.k8s.io, kind: Gateway, namespace: istio-ingress}\nto:\n- {group: \"\", kind: Service}\n- {group: \"\", kind: Secret, name: cert}\n",
    ));
    assert_eq!(loaded.objects[0].kind, Kind::ReferenceGrant);
    assert_eq!(loaded.objects[0].namespace(), "backends");
    assert_valid(
        &grant(
            "from: [{group: \"\", kind: Pod, namespace: a}]\nto: [{group: \"\", kind: Service}]\n",
        )
        .replace("v1beta1", "v1alpha2"),
    );
}

#[test]
fn grant_rules() {
    let cases = [
        (
            "from: []\nto: [{group: \"\", kind: Service}]",
            "spec.from",
            "at least one entry",
        ),
        (
            "from: [{group: \"\", kind: HTTPRoute, namespace: a}]",
            "spec.to",
            "at least one entry",
        ),
        (
            "from: [{kind: HTTPRoute, namespace: a}]\nto: [{group: \"\", kind: Service}]",
            "spec.from[0].group",
            "required",
        ),
        (
            "from: [{group: \"\", kind: HTTPRoute}]\nto: [{group: \"\", kind: Service}]",
            "spec.from[0].namespace",
            "invalid namespace",
        ),
        (
            "from: [{group: \"\", kind: HTTPRoute, namespace: Front}]\nto: [{group: \"\", kind: Service}]",
            "spec.from[0].namespace",
            "invalid namespace \"Front\"",
        ),
        (
            "from: [{group: \"\", kind: \"HTTP Route\", namespace: a}]\nto: [{group: \"\", kind: Service}]",
            "spec.from[0].kind",
            "invalid kind",
        ),
        (
            "from: [{group: \"\", kind: HTTPRoute, namespace: a}]\nto: [{kind: Service}]",
            "spec.to[0].group",
            "required",
        ),
        (
            "from: [{group: \"\", kind: HTTPRoute, namespace: a}]\nto: [{group: Core, kind: Service}]",
            "spec.to[0].group",
            "invalid group",
        ),
        (
            "from: [{group: \"\", kind: HTTPRoute, namespace: a}]\nto: [{group: \"\", kind: Service, name: \"\"}]",
            "spec.to[0].name",
            "must not be empty",
        ),
    ];
    for (spec, path, message) in cases {
        assert_error(&grant(spec), &[path, message, "test.yaml:"]);
    }
    let many: Vec<&str> = vec!["{group: \"\", kind: Service}"; 17];
    assert_error(
        &grant(&format!(
            "from: [{{group: \"\", kind: HTTPRoute, namespace: a}}]\nto: [{}]",
            many.join(", ")
        )),
        &["spec.to", "at most 16"],
    );
    assert_warning(
        &grant(
            "from: [{group: \"\", kind: HTTPRoute, namespace: a, name: r}]\nto: [{group: \"\", kind: Service}]\n",
        ),
        &["spec.from[0].name", "unknown field"],
    );
}
