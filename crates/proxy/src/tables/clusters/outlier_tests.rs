//! DestinationRule `outlierDetection` to the detector's configuration: Istio's mapping,
//! Envoy's defaults, the deprecated `consecutiveErrors`, and where the policy comes from
//! (top level, port, subset).

use std::time::Duration;

use super::*;

fn od(json: &str) -> OutlierConfig {
    let parsed: OutlierDetection = serde_json::from_str(json).unwrap();
    outlier_config(&parsed)
}

fn on(n: u32) -> Threshold {
    Threshold {
        consecutive: n,
        enforcing: true,
    }
}

fn off(n: u32) -> Threshold {
    Threshold {
        consecutive: n,
        enforcing: false,
    }
}

#[test]
fn an_empty_outlier_detection_gets_envoys_defaults() {
    let c = od("{}");
    assert_eq!(c.consecutive_5xx, on(5));
    // Envoy counts gateway errors by default but does not eject for them.
    assert_eq!(c.consecutive_gateway, off(5));
    assert!(!c.split_external_local_origin_errors);
    assert_eq!(c.interval, Duration::from_secs(10));
    assert_eq!(c.base_ejection_time, Duration::from_secs(30));
    assert_eq!(c.max_ejection_time, Duration::from_secs(300));
    assert_eq!(c.max_ejection_percent, 10);
    // Istio sets the panic threshold to 0 (never) rather than Envoy's 50.
    assert_eq!(c.min_health_percent, 0);
}

#[test]
fn every_field_maps_as_istio_writes_it() {
    let c = od(
        r#"{"consecutive5xxErrors": 3, "consecutiveGatewayErrors": 2,
        "splitExternalLocalOriginErrors": true, "consecutiveLocalOriginFailures": 4,
        "interval": "1s", "baseEjectionTime": "400s", "maxEjectionPercent": 100,
        "minHealthPercent": 50}"#,
    );
    assert_eq!(c.consecutive_5xx, on(3));
    assert_eq!(c.consecutive_gateway, on(2));
    assert!(c.split_external_local_origin_errors);
    assert_eq!(c.consecutive_local_origin, on(4));
    assert_eq!(c.interval, Duration::from_secs(1));
    assert_eq!(c.base_ejection_time, Duration::from_secs(400));
    // The cap is 300s or the base, whichever is longer.
    assert_eq!(c.max_ejection_time, Duration::from_secs(400));
    assert_eq!(c.max_ejection_percent, 100);
    assert_eq!(c.min_health_percent, 50);
}

#[test]
fn zero_turns_a_detector_off_and_zero_percent_means_envoys_default() {
    let c = od(
        r#"{"consecutive5xxErrors": 0, "consecutiveGatewayErrors": 0,
        "maxEjectionPercent": 0}"#,
    );
    assert_eq!(c.consecutive_5xx, off(0));
    assert_eq!(c.consecutive_gateway, off(0));
    // Istio only writes a positive maxEjectionPercent.
    assert_eq!(c.max_ejection_percent, 10);
}

#[test]
fn split_without_a_count_uses_envoys_five() {
    let c = od(r#"{"splitExternalLocalOriginErrors": true}"#);
    assert!(c.split_external_local_origin_errors);
    assert_eq!(c.consecutive_local_origin, on(5));
}

#[test]
fn the_deprecated_consecutive_errors_means_gateway_errors() {
    // The seed's circuit-breaker rule.
    let c = od(
        r#"{"consecutiveErrors": 1, "interval": "1s", "baseEjectionTime": "3m",
        "maxEjectionPercent": 100}"#,
    );
    assert_eq!(c.consecutive_gateway, on(1));
    assert_eq!(c.consecutive_5xx, off(5));
    assert_eq!(c.base_ejection_time, Duration::from_secs(180));
    assert_eq!(c.max_ejection_time, Duration::from_secs(300));
    // The newer fields win.
    let c = od(r#"{"consecutiveErrors": 1, "consecutive5xxErrors": 2,
        "consecutiveGatewayErrors": 7}"#);
    assert_eq!(c.consecutive_5xx, on(2));
    assert_eq!(c.consecutive_gateway, on(7));
}

/// The outlier configuration of the cluster for (port, subset) under `rule`.
fn outlier_of(rule: &str, port: u32, subset: &str) -> Option<OutlierConfig> {
    super::tests::cluster(&super::tests::load(rule), port, subset)
        .outlier
        .clone()
}

const RULE: &str = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
  namespace: default
spec:
  host: reviews
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 1}
    portLevelSettings:
    - port: {number: 9081}
      loadBalancer: {simple: RANDOM}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      outlierDetection: {consecutive5xxErrors: 2}
  - name: v2
    labels: {version: v2}
";

#[test]
fn the_policy_merges_like_the_other_parts() {
    let n = |c: Option<OutlierConfig>| c.map(|c| c.consecutive_5xx.consecutive);
    assert_eq!(n(outlier_of(RULE, 9080, "")), Some(1));
    // The subset's own policy wins; a subset without one inherits the top level.
    assert_eq!(n(outlier_of(RULE, 9080, "v1")), Some(2));
    assert_eq!(n(outlier_of(RULE, 9080, "v2")), Some(1));
    // Port-level settings replace the top level wholesale: none on 9081.
    assert_eq!(n(outlier_of(RULE, 9081, "")), None);
    assert_eq!(n(outlier_of(RULE, 9081, "v1")), Some(2));
}

#[test]
fn a_cluster_without_outlier_detection_has_none() {
    let rule = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
  namespace: default
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
";
    assert_eq!(outlier_of(rule, 9080, ""), None);
}
