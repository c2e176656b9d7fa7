//! Tests of the ProxyConfig model and Istio's rules for it, through the real loader.

use crate::Spec;
use crate::testing::{assert_error, assert_valid, assert_warning, problems};

fn pc(spec: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1beta1\nkind: ProxyConfig\nmetadata:\n  name: per-workload\n  namespace: default\nspec:\n{spec}"
    )
}

#[test]
fn full_model_decodes() {
    let loaded = assert_valid(&pc(
        "  selector:\n    matchLabels: {app: ratings}\n  concurrency: 0\n  environmentVariables: {ISTIO_META_DNS_CAPTURE: \"true\"}\n  image: {imageType: distroless}\n",
    ));
    let Spec::ProxyConfig(p) = &loaded.objects[0].spec else {
        panic!("not a ProxyConfig")
    };
    assert_eq!(p.concurrency, Some(0));
    assert_eq!(
        p.image.as_ref().and_then(|i| i.image_type.as_deref()),
        Some("distroless")
    );
}

#[test]
fn concurrency_is_not_negative() {
    assert_error(
        &pc("  concurrency: -1\n"),
        &["spec.concurrency", "-1 must not be negative", "test.yaml:7"],
    );
}

#[test]
fn selector_rules() {
    assert_error(
        &pc("  selector:\n    matchLabels: {\"\": bar}\n"),
        &["spec.selector.matchLabels"],
    );
    assert_warning(
        &pc("  selector: {}\n"),
        &["spec.selector.matchLabels", "applies to every workload"],
    );
}

#[test]
fn environment_values_are_bounded() {
    let long = "x".repeat(2049);
    assert_error(
        &pc(&format!("  environmentVariables: {{BIG: \"{long}\"}}\n")),
        &["spec.environmentVariables.BIG", "2048"],
    );
}

#[test]
fn served_only_as_v1beta1() {
    let doc = pc("  concurrency: 2\n").replace("v1beta1", "v1");
    let reports = problems(&doc);
    assert!(
        reports
            .iter()
            .any(|r| r.contains("not served") && r.contains("networking.istio.io/v1beta1")),
        "{reports:?}"
    );
}
