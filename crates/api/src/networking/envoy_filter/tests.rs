//! Tests of the EnvoyFilter model and the structure Istio checks, through the real loader.

use crate::Spec;
use crate::networking::checks::corpus_problems;
use crate::testing::{assert_error, assert_warning, load, problems};

fn ef(spec: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata:\n  name: ef\n  namespace: istio-system\nspec:\n{spec}"
    )
}

const NOT_SUPPORTED: &str = "EnvoyFilter is parsed but not supported";

/// A config patch made of the given lines (indented as under `- `).
fn patch(lines: &str) -> String {
    ef(&format!("  configPatches:\n  - {}", lines.trim_start()))
}

#[test]
fn istio_samples_load_with_only_the_not_supported_warning() {
    let (count, problems) = corpus_problems("EnvoyFilter");
    assert!(count >= 3, "only {count} EnvoyFilters loaded");
    assert!(
        problems
            .iter()
            .all(|p| p.contains("warning") && p.contains(NOT_SUPPORTED)),
        "{}",
        problems.join("\n")
    );
    assert_eq!(problems.len(), count, "one warning per EnvoyFilter");
}

#[test]
fn every_envoy_filter_is_reported_as_having_no_effect() {
    let doc = ef("  workloadSelector:\n    labels: {app: productpage}\n  configPatches: []\n");
    assert_warning(
        &doc,
        &[
            "test.yaml:6",
            "EnvoyFilter istio-system/ef: spec:",
            NOT_SUPPORTED,
            "no effect",
        ],
    );
    assert_warning(&ef(""), &[NOT_SUPPORTED]);
}

#[test]
fn full_model_decodes() {
    let loaded = load(&ef(r#"  workloadSelector:
    labels: {istio: ingressgateway}
  priority: -1
  configPatches:
  - applyTo: HTTP_FILTER
    match:
      context: GATEWAY
      proxy: {proxyVersion: "^1\\.2.*", metadata: {FOO: bar}}
      listener:
        portNumber: 8080
        filterChain:
          sni: example.com
          filter:
            name: envoy.filters.network.http_connection_manager
            subFilter: {name: envoy.filters.http.router}
    patch:
      operation: INSERT_BEFORE
      filterClass: AUTHZ
      value:
        name: envoy.lua
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua}
  - applyTo: VIRTUAL_HOST
    match:
      routeConfiguration: {vhost: {name: "", route: {action: ANY}}}
    patch: {operation: MERGE, value: {rate_limits: []}}
  - applyTo: CLUSTER
    match:
      cluster: {service: ratelimit.default.svc.cluster.local, portNumber: 8081}
    patch: {operation: REMOVE}
"#));
    assert!(!loaded.has_errors(), "{:?}", loaded.reports);
    let Spec::EnvoyFilter(f) = &loaded.objects[0].spec else {
        panic!("not an EnvoyFilter")
    };
    assert_eq!(f.config_patches.len(), 3);
    assert_eq!(f.priority, Some(-1));
    let value = f.config_patches[0]
        .patch
        .as_ref()
        .and_then(|p| p.value.as_ref());
    assert_eq!(
        value.and_then(|v| v.get("name")).and_then(|n| n.as_str()),
        Some("envoy.lua")
    );
    assert_eq!(
        loaded.reports.len(),
        1,
        "only the not-supported warning: {:?}",
        loaded.reports
    );
}

#[test]
fn patches_need_apply_to_operation_and_value() {
    assert_error(
        &patch("patch: {operation: MERGE, value: {}}\n"),
        &["spec.configPatches[0].applyTo", "applyTo is required"],
    );
    assert_error(
        &patch("applyTo: CLUSTER\n"),
        &["spec.configPatches[0].patch", "patch is required"],
    );
    assert_error(
        &patch("applyTo: CLUSTER\n    patch: {value: {}}\n"),
        &["spec.configPatches[0].patch.operation", "required"],
    );
    assert_error(
        &patch("applyTo: CLUSTER\n    patch: {operation: ADD}\n"),
        &[
            "spec.configPatches[0].patch.value",
            "required for every operation but REMOVE",
        ],
    );
    assert_error(
        &patch("applyTo: CLUSTER\n    patch: {operation: ADD, value: [1]}\n"),
        &["patch.value", "must be an object"],
    );
    assert_error(
        &patch("applyTo: CLUSTERS\n    patch: {operation: ADD, value: {}}\n"),
        &["spec.configPatches[0].applyTo", "CLUSTERS"],
    );
}

#[test]
fn matches_line_up_with_apply_to() {
    let m = |apply: &str, matches: &str| {
        patch(&format!(
            "applyTo: {apply}\n    match: {matches}\n    patch: {{operation: MERGE, value: {{}}}}\n"
        ))
    };
    assert_error(
        &m("HTTP_FILTER", "{cluster: {service: a.b}}"),
        &["spec.configPatches[0].match", "needs a listener match"],
    );
    assert_error(
        &m("HTTP_ROUTE", "{listener: {portNumber: 80}}"),
        &[
            "spec.configPatches[0].match",
            "needs a routeConfiguration match",
        ],
    );
    assert_error(
        &m("CLUSTER", "{routeConfiguration: {name: x}}"),
        &["spec.configPatches[0].match", "needs a cluster match"],
    );
    assert_error(
        &m(
            "NETWORK_FILTER",
            "{listener: {filterChain: {filter: {subFilter: {name: a}}}}}",
        ),
        &["listener.filterChain.filter.name", "filter name"],
    );
    assert_error(
        &m(
            "NETWORK_FILTER",
            "{listener: {filterChain: {filter: {name: envoy.filters.network.http_connection_manager, subFilter: {name: a}}}}}",
        ),
        &["filter.subFilter", "only be used with applyTo HTTP_FILTER"],
    );
    assert_error(
        &m(
            "HTTP_FILTER",
            "{listener: {filterChain: {filter: {name: envoy.filters.network.tcp_proxy, subFilter: {name: a}}}}}",
        ),
        &["filter.subFilter", "http_connection_manager"],
    );
    assert_error(
        &m(
            "HTTP_FILTER",
            "{listener: {filterChain: {filter: {name: envoy.filters.network.http_connection_manager, subFilter: {}}}}}",
        ),
        &["filter.subFilter.name", "filter name"],
    );
}

#[test]
fn filter_matches() {
    let m = |apply: &str, matches: &str| {
        patch(&format!(
            "applyTo: {apply}\n    match: {matches}\n    patch: {{operation: MERGE, value: {{}}}}\n"
        ))
    };
    assert_warning(
        &m(
            "LISTENER",
            "{listener: {filterChain: {filter: {name: envoy.filters.network.tcp_proxy}}}}",
        ),
        &[
            "listener.filterChain.filter",
            "no effect with applyTo LISTENER",
        ],
    );
    assert_error(
        &m("CLUSTER", "{proxy: {proxyVersion: \"(\"}}"),
        &["match.proxy.proxyVersion", "invalid regex"],
    );
    assert_error(
        &m("CLUSTER", "{cluster: {name: a}, listener: {name: b}}"),
        &[
            "match",
            "only one of listener, routeConfiguration, cluster and waypoint",
        ],
    );
}

#[test]
fn waypoint_matches() {
    let m = |matches: &str| {
        patch(&format!(
            "applyTo: HTTP_FILTER\n    match: {matches}\n    patch: {{operation: REMOVE}}\n"
        ))
    };
    let reports = problems(&m(
        "{context: WAYPOINT, waypoint: {filter: {name: envoy.filters.network.http_connection_manager}}}",
    ));
    assert!(reports.iter().all(|r| r.contains("warning")), "{reports:?}");
    assert_error(
        &m("{context: SIDECAR_INBOUND, waypoint: {}}"),
        &["match", "waypoint match goes with context WAYPOINT"],
    );
    assert_error(
        &m("{context: WAYPOINT, listener: {portNumber: 80}}"),
        &["match", "context WAYPOINT needs a waypoint match"],
    );
    assert_error(
        &m("{context: WAYPOINT, waypoint: {portNumber: 65536}}"),
        &["match.waypoint.portNumber", "1-65535"],
    );
}

#[test]
fn selectors_and_target_refs() {
    assert_error(
        &ef("  workloadSelector: {labels: {app: \"*\"}}\n"),
        &["spec.workloadSelector.labels.app", "wildcards"],
    );
    assert_error(
        &ef("  targetRefs: [{kind: Deployment, name: x}]\n"),
        &[
            "spec.targetRefs[0]",
            "a Service or a gateway.networking.k8s.io Gateway",
        ],
    );
    let ok = problems(&ef(
        "  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}, {kind: Service, name: s}]\n",
    ));
    assert!(ok.iter().all(|r| r.contains("warning")), "{ok:?}");
    assert_warning(
        &ef("  workloadSelector: {labels: {app: x}}\n  targetRefs: [{kind: Service, name: s}]\n"),
        &["spec.targetRefs", "set only one"],
    );
}
