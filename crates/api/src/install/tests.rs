use crate::testing::{assert_error, assert_valid, assert_warning};

#[test]
fn operator_files_as_istioctl_reads_them() {
    // istioctl install takes an IstioOperator without a name.
    let loaded = assert_valid(
        "apiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\nspec:\n  profile: demo\n  meshConfig:\n    outboundTrafficPolicy:\n      mode: REGISTRY_ONLY\n    trustDomain: new-td\n    trustDomainAliases: [old-td]\n    accessLogFile: /dev/stdout\n",
    );
    let crate::Spec::IstioOperator(op) = &loaded.objects[0].spec else {
        panic!("an IstioOperator")
    };
    let mesh = op.mesh_config.as_ref().unwrap();
    assert_eq!(
        mesh.outbound_traffic_policy.as_ref().unwrap().mode,
        super::OutboundMode::RegistryOnly
    );
}

#[test]
fn operator_mistakes() {
    let base = "apiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\nmetadata: {name: x, namespace: istio-system}\nspec:\n";
    assert_error(
        &format!("{base}  profile: demoo\n"),
        &["spec.profile", "unknown profile \"demoo\""],
    );
    assert_error(
        &format!("{base}  meshConfig:\n    outboundTrafficPolicy: {{mode: REGISTRY}}\n"),
        &[
            "spec.meshConfig.outboundTrafficPolicy.mode",
            "unknown variant `REGISTRY`",
        ],
    );
    // The seed's `kabel:` for `label:`.
    assert_warning(
        &format!(
            "{base}  components:\n    ingressGateways:\n    - name: ilb-gateway\n      enabled: true\n      kabel:\n        istio: ilb-gateway\n"
        ),
        &[
            "spec.components.ingressGateways[0].kabel",
            "did you mean \"label\"?",
        ],
    );
    assert_error(
        &format!("{base}  components:\n    ingressGateways:\n    - enabled: true\n"),
        &["ingressGateways[0].name", "required"],
    );
}
