use crate::kind::Spec;
use crate::telemetry::{IstioMetric, TagOperation, WorkloadMode};
use crate::testing::corpus;
use crate::testing::*;

fn telemetry(spec: &str) -> String {
    format!(
        "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata:\n  name: t\n  namespace: foo\nspec:\n{spec}"
    )
}

#[test]
fn every_section_decodes() {
    let loaded = assert_valid(&telemetry(
        "  selector:\n    matchLabels:\n      app: reviews\n  tracing:\n  - match:\n      mode: SERVER\n    providers:\n    - name: zipkin\n    randomSamplingPercentage: 12.5\n    disableSpanReporting: false\n    useRequestIdForTraceSampling: true\n    enableIstioTags: true\n    customTags:\n      cluster:\n        literal:\n          value: east\n      pod:\n        environment:\n          name: POD_NAME\n          defaultValue: unknown\n      user:\n        header:\n          name: x-user\n  metrics:\n  - providers:\n    - name: prometheus\n    reportingInterval: 15s\n    overrides:\n    - match:\n        metric: REQUEST_COUNT\n        mode: CLIENT\n      disabled: false\n      tagOverrides:\n        request_host:\n          value: request.host\n        request_protocol:\n          operation: REMOVE\n  accessLogging:\n  - match:\n      mode: CLIENT_AND_SERVER\n    providers:\n    - name: envoy\n    disabled: false\n    filter:\n      expression: response.code >= 400\n",
    ));
    let Spec::Telemetry(spec) = &loaded.objects[0].spec else {
        panic!("wrong kind");
    };
    let tracing = &spec.tracing[0];
    assert_eq!(tracing.random_sampling_percentage, Some(12.5));
    assert_eq!(tracing.custom_tags.len(), 3);
    let over = &spec.metrics[0].overrides[0];
    assert_eq!(
        over.match_.as_ref().and_then(|m| m.metric),
        Some(IstioMetric::RequestCount)
    );
    assert_eq!(
        over.match_.as_ref().and_then(|m| m.mode),
        Some(WorkloadMode::Client)
    );
    assert_eq!(
        over.tag_overrides
            .get("request_protocol")
            .map(|t| t.operation),
        Some(TagOperation::Remove)
    );
    assert_eq!(spec.access_logging[0].providers[0].name, "envoy");
}

#[test]
fn open_telemetry_samples_load_cleanly() {
    let loaded = corpus::load_dir(&format!("{}/open-telemetry", corpus::samples()), |p| {
        p.file_name().is_some_and(|n| n == "telemetry.yaml")
    });
    let (count, bad) = corpus::check(&loaded, "Telemetry");
    assert_eq!(count, 2);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    assert!(loaded.reports.is_empty(), "{:?}", loaded.reports);
}

#[test]
fn provider_names_are_required() {
    assert_error(
        &telemetry("  metrics:\n  - providers:\n    - name: \"\"\n"),
        &[
            "spec.metrics[0].providers[0].name",
            "required",
            "test.yaml:9",
        ],
    );
    assert_error(
        &telemetry("  accessLogging:\n  - providers:\n    - {}\n"),
        &["spec.accessLogging[0].providers[0].name"],
    );
    assert_error(
        &telemetry("  tracing:\n  - providers:\n    - name: \"\"\n"),
        &["spec.tracing[0].providers[0].name"],
    );
}

#[test]
fn sampling_is_a_percentage() {
    assert_error(
        &telemetry("  tracing:\n  - randomSamplingPercentage: 101\n"),
        &[
            "spec.tracing[0].randomSamplingPercentage",
            "between 0 and 100",
        ],
    );
    assert_error(
        &telemetry("  tracing:\n  - randomSamplingPercentage: -1\n"),
        &["randomSamplingPercentage"],
    );
    assert_valid(&telemetry("  tracing:\n  - randomSamplingPercentage: 0\n"));
    assert_valid(&telemetry(
        "  tracing:\n  - randomSamplingPercentage: 100.0\n",
    ));
}

#[test]
fn several_tracing_configurations_or_providers_warn() {
    assert_warning(
        &telemetry("  tracing:\n  - providers:\n    - name: a\n  - providers:\n    - name: b\n"),
        &[
            "spec.tracing[1]",
            "only the first tracing configuration is used",
        ],
    );
    assert_warning(
        &telemetry("  tracing:\n  - providers:\n    - name: a\n    - name: b\n"),
        &["spec.tracing[0].providers[1]", "only one tracing provider"],
    );
}

#[test]
fn custom_tags_set_one_non_empty_source() {
    let tag = |body: &str| telemetry(&format!("  tracing:\n  - customTags:\n      t:\n{body}"));
    assert_error(
        &tag("        literal:\n          value: \"\"\n"),
        &["spec.tracing[0].customTags.t.literal.value", "required"],
    );
    assert_error(
        &tag("        environment:\n          name: \"\"\n"),
        &["customTags.t.environment.name"],
    );
    assert_error(&tag("        header: {}\n"), &["customTags.t.header.name"]);
    assert_error(
        &tag("        literal:\n          value: x\n        header:\n          name: h\n"),
        &[
            "customTags.t.header",
            "set only one of literal, environment and header",
        ],
    );
    assert_warning(&tag("        {}\n"), &["customTags.t", "adds nothing"]);
}

#[test]
fn tag_overrides_follow_the_operation() {
    let over = |body: &str| {
        telemetry(&format!(
            "  metrics:\n  - overrides:\n    - tagOverrides:\n        foo:\n{body}"
        ))
    };
    assert_error(
        &over("          operation: UPSERT\n"),
        &[
            "tagOverrides.foo.value",
            "required when operation is UPSERT",
        ],
    );
    // UPSERT is the default operation.
    assert_error(
        &over("          {}\n"),
        &["tagOverrides.foo.value", "UPSERT"],
    );
    assert_error(
        &over("          operation: REMOVE\n          value: oops\n"),
        &[
            "tagOverrides.foo.value",
            "must not be set when operation is REMOVE",
        ],
    );
    assert_valid(&over("          operation: REMOVE\n"));
    assert_error(
        &over("          operation: DELETE\n"),
        &["operation", "unknown variant"],
    );
}

#[test]
fn metric_selectors_pick_one_metric() {
    let sel = |body: &str| {
        telemetry(&format!(
            "  metrics:\n  - overrides:\n    - disabled: true\n      match:\n{body}"
        ))
    };
    assert_error(
        &sel("        customMetric: \"\"\n"),
        &["match.customMetric", "must not be empty"],
    );
    assert_error(
        &sel("        metric: REQUEST_COUNT\n        customMetric: my_metric\n"),
        &["match.customMetric", "only one of metric and customMetric"],
    );
    assert_error(
        &sel("        metric: REQUESTS\n"),
        &["match.metric", "unknown variant"],
    );
    assert_valid(&sel(
        "        customMetric: my_metric\n        mode: SERVER\n",
    ));
}

#[test]
fn reporting_interval_is_at_least_a_millisecond() {
    assert_error(
        &telemetry("  metrics:\n  - reportingInterval: 10us\n"),
        &["spec.metrics[0].reportingInterval", "at least 1ms"],
    );
    assert_error(
        &telemetry("  metrics:\n  - reportingInterval: soon\n"),
        &["reportingInterval", "invalid duration"],
    );
    assert_valid(&telemetry("  metrics:\n  - reportingInterval: 1.5s\n"));
}

#[test]
fn access_log_filters_are_cel_expressions() {
    let filter = |expr: &str| {
        telemetry(&format!(
            "  accessLogging:\n  - filter:\n      expression: '{expr}'\n"
        ))
    };
    assert_valid(&filter(
        "response.code >= 400 || xds.cluster_name == \"inbound\"",
    ));
    assert_valid(&filter("request.headers[\"x-debug\"] == \"1\""));
    assert_error(
        &filter(""),
        &["spec.accessLogging[0].filter.expression", "empty"],
    );
    assert_error(
        &filter("(response.code >= 400"),
        &["filter.expression", "unclosed '('"],
    );
    assert_error(&filter("response.code >= 400)"), &["unbalanced ')'"]);
    assert_error(&filter("request.host == \"a"), &["unterminated string"]);
}

#[test]
fn mode_names_are_istios() {
    assert_error(
        &telemetry("  accessLogging:\n  - match:\n      mode: BOTH\n"),
        &[
            "spec.accessLogging[0].match.mode",
            "unknown variant `BOTH`",
            "CLIENT_AND_SERVER",
        ],
    );
}

#[test]
fn scope_rules_apply() {
    assert_error(
        &telemetry(
            "  selector:\n    matchLabels:\n      app: a\n  targetRefs:\n  - kind: Gateway\n    group: gateway.networking.k8s.io\n    name: gw\n",
        ),
        &[
            "spec.targetRefs",
            "only one of selector, targetRef and targetRefs",
        ],
    );
    assert_valid(&telemetry(
        "  targetRef:\n    kind: Gateway\n    group: gateway.networking.k8s.io\n    name: gw\n  accessLogging:\n  - providers:\n    - name: otel\n",
    ));
    assert_warning(
        &telemetry("  selector: {}\n"),
        &["spec.selector", "no matchLabels"],
    );
}

#[test]
fn v1alpha1_is_served_too() {
    let text = telemetry("  tracing:\n  - randomSamplingPercentage: 10\n")
        .replace("telemetry.istio.io/v1", "telemetry.istio.io/v1alpha1");
    assert_valid(&text);
}
