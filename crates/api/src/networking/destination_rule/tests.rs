//! Tests of the DestinationRule model and Istio's rules for it, through the real loader.

use crate::Spec;
use crate::networking::checks::corpus_problems;
use crate::testing::{assert_error, assert_valid, assert_warning, problems};

/// A DestinationRule named `reviews` in namespace `default` with the given spec lines
/// (indented by two spaces, as under `spec:`).
fn dr(spec: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: reviews\n  namespace: default\nspec:\n{spec}"
    )
}

#[test]
fn istio_samples_load_cleanly() {
    let (count, problems) = corpus_problems("DestinationRule");
    assert!(count >= 13, "only {count} DestinationRules loaded");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn full_model_decodes() {
    let loaded = assert_valid(&dr(r#"  host: "*.example.com"
  exportTo: ["."]
  trafficPolicy:
    loadBalancer:
      consistentHash:
        httpCookie: {name: user, path: /, ttl: 0s, attributes: [{name: SameSite, value: Strict}]}
        ringHash: {minimumRingSize: 1024}
      localityLbSetting:
        enabled: true
        failover: [{from: us-west, to: us-east}]
        failoverPriority: [topology.istio.io/network]
      warmupDurationSecs: 30s
    connectionPool:
      tcp:
        maxConnections: 100
        connectTimeout: 30ms
        tcpKeepalive: {probes: 3, time: 7200s, interval: 75s}
        maxConnectionDuration: 1h
        idleTimeout: 10m
      http:
        http1MaxPendingRequests: 10
        http2MaxRequests: 100
        maxRequestsPerConnection: 1
        maxRetries: 3
        idleTimeout: 1m
        h2UpgradePolicy: UPGRADE
        maxConcurrentStreams: 50
    outlierDetection:
      splitExternalLocalOriginErrors: true
      consecutiveLocalOriginFailures: 5
      consecutiveGatewayErrors: 3
      consecutive5xxErrors: 5
      interval: 10s
      baseEjectionTime: 30s
      maxEjectionPercent: 100
      minHealthPercent: 50
    tls:
      mode: MUTUAL
      clientCertificate: /etc/certs/cert.pem
      privateKey: /etc/certs/key.pem
      caCertificates: /etc/certs/ca.pem
      subjectAltNames: [reviews.example.com]
      sni: reviews.example.com
      caCrl: /etc/certs/crl.pem
    portLevelSettings:
    - port: {number: 9080}
      loadBalancer: {simple: LEAST_REQUEST}
    tunnel: {protocol: CONNECT, targetHost: 10.0.0.1, targetPort: 8080}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      loadBalancer: {simple: ROUND_ROBIN}
  workloadSelector:
    matchLabels: {app: productpage}
"#));
    let Spec::DestinationRule(d) = &loaded.objects[0].spec else {
        panic!("not a DestinationRule")
    };
    let tp = d.traffic_policy.as_ref().expect("trafficPolicy");
    let pool = tp.connection_pool.as_ref().and_then(|p| p.tcp.as_ref());
    assert_eq!(pool.and_then(|t| t.max_connections), Some(100));
    let od = tp.outlier_detection.as_ref().expect("outlierDetection");
    assert_eq!(od.consecutive_5xx_errors, Some(5));
    assert_eq!(
        tp.tls.as_ref().and_then(|t| t.mode),
        Some(super::ClientTlsMode::Mutual)
    );
    assert_eq!(
        d.subsets[0].labels.get("version").map(String::as_str),
        Some("v1")
    );
}

#[test]
fn host_is_required_and_checked() {
    assert_error(
        &dr("  subsets:\n  - name: v1\n"),
        &["spec.host", "host is required", "test.yaml:6"],
    );
    assert_error(
        &dr("  host: foo*.com\n"),
        &["spec.host", "\"foo*\"", "test.yaml:7"],
    );
    assert_error(&dr("  host: a..b\n"), &["spec.host", "not a DNS label"]);
    assert_valid(&dr("  host: reviews.default.svc.cluster.local\n"));
}

#[test]
fn subsets_need_unique_valid_names() {
    let dup = dr(
        "  host: reviews\n  subsets:\n  - name: v1\n    labels: {version: v1}\n  - name: v1\n    labels: {version: v2}\n",
    );
    assert_error(
        &dup,
        &[
            "spec.subsets[1].name",
            "duplicate subset name \"v1\"",
            "test.yaml:11",
        ],
    );
    assert_error(
        &dr("  host: reviews\n  subsets:\n  - labels: {version: v1}\n"),
        &["spec.subsets[0].name", "subset name is required"],
    );
    assert_error(
        &dr("  host: reviews\n  subsets:\n  - name: v1.0\n    labels: {version: v1}\n"),
        &["spec.subsets[0].name", "invalid subset name \"v1.0\""],
    );
    assert_error(
        &dr("  host: reviews\n  subsets:\n  - name: v1\n    labels: {version: \"v 1\"}\n"),
        &["spec.subsets[0].labels.version", "invalid label value"],
    );
}

/// Seed 002's subsets: the labels sit beside `labels:` instead of under it.
#[test]
fn mis_indented_subset_labels_are_refused() {
    let seed = "apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata:
  name: recommendation
  namespace: tutorial
spec:
  host: recommendation
  subsets:
  - labels:
    version: v1
    name: version-v1
  - labels:
    version: v2
    name: version-v2
";
    assert_error(
        seed,
        &[
            "test.yaml:9",
            "spec.subsets[0].labels",
            "\"labels:\" has no value",
            "unknown field(s) \"version\"",
            "not indented under \"labels:\"",
        ],
    );
    assert_error(seed, &["test.yaml:12", "spec.subsets[1].labels"]);
    let reports = problems(seed);
    assert!(
        reports
            .iter()
            .any(|r| r.contains("spec.subsets[0].version") && r.contains("unknown field")),
        "{reports:?}"
    );
    // A misspelt `labels` is named as such rather than taken for stray labels.
    assert_error(
        &dr("  host: reviews\n  subsets:\n  - name: v1\n    label: {version: v1}\n"),
        &[
            "spec.subsets[0].label",
            "did you mean \"labels\"",
            "test.yaml:10",
        ],
    );
    // Without the stray fields Istio accepts an empty `labels:`; Weft says what it means.
    assert_warning(
        &dr("  host: reviews\n  subsets:\n  - name: v1\n    labels:\n"),
        &["spec.subsets[0].labels", "selects every endpoint"],
    );
    // No `labels` at all names the whole host, as Istio's egress-gateway task writes it.
    assert_valid(&dr(
        "  host: istio-egressgateway.istio-system.svc.cluster.local\n  subsets:\n  - name: cnn\n",
    ));
}

#[test]
fn traffic_policy_must_not_be_empty() {
    assert_error(
        &dr("  host: reviews\n  trafficPolicy: {}\n"),
        &["spec.trafficPolicy", "traffic policy is empty"],
    );
    assert_error(
        &dr(
            "  host: reviews\n  trafficPolicy:\n    portLevelSettings:\n    - port: {number: 80}\n",
        ),
        &[
            "spec.trafficPolicy.portLevelSettings[0]",
            "port traffic policy is empty",
        ],
    );
    assert_error(
        &dr(
            "  host: reviews\n  trafficPolicy:\n    portLevelSettings:\n    - tls: {mode: SIMPLE}\n",
        ),
        &[
            "spec.trafficPolicy.portLevelSettings[0].port",
            "port is required",
        ],
    );
    assert_error(
        &dr(
            "  host: reviews\n  trafficPolicy:\n    tunnel: {targetHost: proxy.example.com, targetPort: 3128}\n    proxyProtocol: {version: V2}\n",
        ),
        &[
            "spec.trafficPolicy.proxyProtocol",
            "tunnel and proxyProtocol",
        ],
    );
}

#[test]
fn load_balancer_rules() {
    let lb = |body: &str| {
        dr(&format!(
            "  host: reviews\n  trafficPolicy:\n    loadBalancer:\n{body}"
        ))
    };
    assert_error(
        &lb("      simple: RANDOM\n      consistentHash: {useSourceIp: true}\n"),
        &[
            "spec.trafficPolicy.loadBalancer",
            "only one of simple and consistentHash",
        ],
    );
    assert_error(
        &lb("      consistentHash: {useSourceIp: true, httpHeaderName: x-user}\n"),
        &[
            "spec.trafficPolicy.loadBalancer.consistentHash",
            "only one hash key",
            "httpHeaderName, useSourceIp",
        ],
    );
    assert_warning(
        &lb("      consistentHash: {ringHash: {minimumRingSize: 64}}\n"),
        &["consistentHash", "no hash key"],
    );
    assert_error(
        &lb("      consistentHash:\n        httpCookie: {ttl: 10s}\n"),
        &["consistentHash.httpCookie.name", "required"],
    );
    assert_error(
        &lb(
            "      consistentHash: {useSourceIp: true, ringHash: {}, maglev: {tableSize: 65537}}\n",
        ),
        &["consistentHash", "only one of ringHash and maglev"],
    );
    assert_error(
        &lb("      consistentHash: {useSourceIp: true, maglev: {tableSize: 1000}}\n"),
        &["consistentHash.maglev.tableSize", "prime"],
    );
    assert_error(
        &lb("      consistentHash: {useSourceIp: true, maglev: {}}\n"),
        &["consistentHash.maglev.tableSize", "required"],
    );
    assert_valid(&lb(
        "      consistentHash: {useSourceIp: true, maglev: {tableSize: 65537}}\n",
    ));
}

#[test]
fn consistent_hash_algorithm_rules() {
    let lb = |body: &str| {
        dr(&format!(
            "  host: reviews\n  trafficPolicy:\n    loadBalancer:\n{body}"
        ))
    };
    assert_warning(
        &lb("      consistentHash: {useSourceIp: true, minimumRingSize: 1024}\n"),
        &["consistentHash.minimumRingSize", "deprecated"],
    );
    assert_error(
        &lb("      consistentHash: {useSourceIp: true, minimumRingSize: 1024, ringHash: {}}\n"),
        &[
            "consistentHash.minimumRingSize",
            "only one of minimumRingSize",
        ],
    );
    assert_error(
        &lb("      simple: FASTEST\n"),
        &["spec.trafficPolicy.loadBalancer.simple", "FASTEST"],
    );
    assert_error(
        &lb("      warmupDurationSecs: 0s\n"),
        &["warmupDurationSecs", "at least 1ms"],
    );
    assert_error(
        &lb("      warmup: {minimumPercent: 5}\n"),
        &["loadBalancer.warmup.duration", "required"],
    );
    assert_error(
        &lb("      warmup: {duration: 300s, minimumPercent: 150}\n"),
        &["warmup.minimumPercent", "between 0 and 100"],
    );
    assert_error(
        &lb("      warmup: {duration: 300s, aggression: 0.3}\n"),
        &["warmup.aggression", "at least 1"],
    );
    assert_valid(&lb(
        "      warmup: {duration: 300s, minimumPercent: 5, aggression: 5}\n",
    ));
}

#[test]
fn locality_rules() {
    let loc = |body: &str, outlier: bool| {
        let od = if outlier {
            "    outlierDetection: {consecutive5xxErrors: 1}\n"
        } else {
            ""
        };
        dr(&format!(
            "  host: reviews\n  trafficPolicy:\n{od}    loadBalancer:\n      localityLbSetting:\n{body}"
        ))
    };
    let distribute = "        distribute:\n        - from: us-west1/us-west1-a/*\n          to:\n            \"us-west1/us-west1-a/*\": 50\n            \"us-west1/us-west1-b/*\": 30\n            \"us-east1/us-east1-a/*\": 20\n";
    assert_valid(&loc(distribute, true));
    let bad_sum = distribute.replace(": 20", ": 10");
    assert_error(
        &loc(&bad_sum, true),
        &["localityLbSetting.distribute[0].to", "add up to 90"],
    );
    let zero = distribute.replace(": 20", ": 0").replace(": 30", ": 50");
    assert_error(&loc(&zero, true), &["must be in 1-100"]);
    let both = format!("{distribute}        failover: [{{from: us-west, to: us-east}}]\n");
    assert_error(
        &loc(&both, true),
        &["localityLbSetting", "only one of distribute and failover"],
    );
    let failover = "        failover: [{from: us-west, to: us-west}]\n";
    assert_error(&loc(failover, true), &["failover[0]", "must differ"]);
    assert_error(
        &loc("        failover: [{from: us-west/a, to: us-east}]\n", true),
        &["failover[0]", "regions only"],
    );
    assert_error(
        &loc("        failover: [{from: us-*, to: us-east}]\n", true),
        &["failover[0]", "wildcard"],
    );
    assert_warning(
        &loc("        failover: [{from: us-west, to: us-east}]\n", false),
        &["localityLbSetting", "needs outlierDetection"],
    );
    assert_error(
        &loc(
            "        failover: [{from: us-west, to: us-east}]\n        failoverPriority: [topology.kubernetes.io/zone]\n",
            true,
        ),
        &["failoverPriority[0]", "topology label"],
    );
    assert_error(
        &loc(
            "        distribute:\n        - from: \"us-*/a\"\n          to: {us-east: 100}\n",
            true,
        ),
        &["localityLbSetting.distribute", "wildcard"],
    );
}

#[test]
fn connection_pool_rules() {
    let pool = |body: &str| {
        dr(&format!(
            "  host: reviews\n  trafficPolicy:\n    connectionPool:\n{body}"
        ))
    };
    assert_error(
        &pool("      {}\n").replace("connectionPool:\n      {}", "connectionPool: {}"),
        &["connectionPool", "connection pool is empty"],
    );
    assert_error(
        &pool("      tcp: {maxConnections: -1}\n"),
        &[
            "connectionPool.tcp.maxConnections",
            "-1 must not be negative",
        ],
    );
    assert_error(
        &pool("      http: {maxRetries: -3}\n"),
        &["connectionPool.http.maxRetries", "must not be negative"],
    );
    assert_error(
        &pool("      tcp: {connectTimeout: 1500us}\n"),
        &["tcp.connectTimeout", "millisecond"],
    );
    assert_error(
        &pool("      tcp: {connectTimeout: 10x}\n"),
        &["tcp.connectTimeout", "unknown unit \"x\""],
    );
    assert_error(
        &pool("      tcp: {tcpKeepalive: {time: 0s}}\n"),
        &["tcpKeepalive.time", "at least 1ms"],
    );
    assert_error(
        &pool("      http: {h2UpgradePolicy: UPGRADE, useClientProtocol: true}\n"),
        &["http.useClientProtocol", "UPGRADE"],
    );
    assert_valid(&pool(
        "      http: {http2KeepAlive: {interval: 15s, timeout: 5s}}\n",
    ));
}

#[test]
fn outlier_detection_rules() {
    let od = |body: &str| {
        dr(&format!(
            "  host: reviews\n  trafficPolicy:\n    outlierDetection:\n{body}"
        ))
    };
    assert_error(
        &od("      maxEjectionPercent: 101\n"),
        &["outlierDetection.maxEjectionPercent", "between 0 and 100"],
    );
    assert_error(
        &od("      minHealthPercent: -1\n"),
        &["outlierDetection.minHealthPercent", "between 0 and 100"],
    );
    assert_error(
        &od("      interval: 0s\n"),
        &["outlierDetection.interval", "at least 1ms"],
    );
    assert_error(
        &od("      baseEjectionTime: 0.5ms\n"),
        &["outlierDetection.baseEjectionTime", "at least 1ms"],
    );
    assert_error(
        &od("      consecutiveLocalOriginFailures: 3\n"),
        &[
            "consecutiveLocalOriginFailures",
            "splitExternalLocalOriginErrors",
        ],
    );
    assert_warning(
        &od("      consecutiveErrors: 1\n"),
        &["outlierDetection.consecutiveErrors", "deprecated"],
    );
    // The seed 003 circuit breaker, with the deprecated field.
    assert_warning(
        &dr(
            "  host: httpbin\n  trafficPolicy:\n    connectionPool:\n      tcp: {maxConnections: 1}\n      http: {http1MaxPendingRequests: 1, maxRequestsPerConnection: 1}\n    outlierDetection:\n      consecutiveErrors: 1\n      interval: 1s\n      baseEjectionTime: 3m\n      maxEjectionPercent: 100\n",
        ),
        &["deprecated"],
    );
}

#[test]
fn client_tls_rules() {
    let tls = |body: &str| {
        dr(&format!(
            "  host: reviews\n  trafficPolicy:\n    tls:\n{body}"
        ))
    };
    assert_error(
        &tls("      mode: MUTUAL\n"),
        &[
            "tls.clientCertificate",
            "MUTUAL TLS needs clientCertificate",
        ],
    );
    assert_error(
        &tls("      mode: MUTUAL\n      clientCertificate: /c.pem\n"),
        &["tls.privateKey", "privateKey"],
    );
    assert_valid(&tls(
        "      mode: MUTUAL\n      credentialName: client-secret\n",
    ));
    assert_error(
        &tls("      mode: SIMPLE\n      credentialName: s\n      caCertificates: /ca.pem\n"),
        &["tls.credentialName", "remove clientCertificate"],
    );
    assert_error(
        &tls(
            "      mode: SIMPLE\n      insecureSkipVerify: true\n      subjectAltNames: [a.example.com]\n",
        ),
        &["tls.insecureSkipVerify", "nothing would be verified"],
    );
    assert_valid(&tls("      mode: SIMPLE\n      insecureSkipVerify: true\n"));
    assert_valid(&tls("      mode: ISTIO_MUTUAL\n"));
    assert_error(&tls("      mode: STRICT\n"), &["tls.mode", "STRICT"]);
}

#[test]
fn tunnel_and_retry_budget() {
    let tp = |body: &str| dr(&format!("  host: reviews\n  trafficPolicy:\n{body}"));
    assert_error(
        &tp("    tunnel: {protocol: GET, targetHost: proxy.example.com, targetPort: 3128}\n"),
        &["tunnel.protocol", "CONNECT"],
    );
    assert_error(
        &tp("    tunnel: {targetHost: \"bad host\", targetPort: 3128}\n"),
        &["tunnel.targetHost", "DNS name or an IP"],
    );
    assert_error(
        &tp("    tunnel: {targetHost: proxy.example.com}\n"),
        &["tunnel.targetPort", "1-65535"],
    );
    assert_error(
        &tp("    tunnel: {targetPort: 3128}\n"),
        &["tunnel.targetHost", "required"],
    );
    assert_error(
        &tp("    retryBudget: {percent: 120}\n"),
        &["retryBudget.percent", "between 0 and 100"],
    );
    assert_valid(&tp(
        "    retryBudget: {percent: 20, minRetryConcurrency: 3}\n",
    ));
}

#[test]
fn export_to_and_workload_selector() {
    assert_error(
        &dr("  host: reviews\n  exportTo: [\".\", default]\n"),
        &["spec.exportTo[1]", "duplicate exportTo entry"],
    );
    assert_error(
        &dr("  host: reviews\n  exportTo: [\"*\", other]\n"),
        &["spec.exportTo", "cannot be combined"],
    );
    assert_error(
        &dr("  host: reviews\n  exportTo: [\"~\"]\n"),
        &["spec.exportTo[0]", "only allowed on a ServiceEntry"],
    );
    assert_error(
        &dr("  host: reviews\n  exportTo: [Bad_NS]\n"),
        &["spec.exportTo[0]", "invalid exportTo entry"],
    );
    let sel = "  workloadSelector:\n    matchLabels: {app: productpage}\n";
    assert_error(
        &dr(&format!("  host: reviews\n  exportTo: [other]\n{sel}")),
        &["spec.exportTo", "only be exported to its own namespace"],
    );
    assert_valid(&dr(&format!("  host: reviews\n  exportTo: [\".\"]\n{sel}")));
    assert_warning(
        &dr("  host: reviews\n  workloadSelector: {}\n"),
        &["workloadSelector", "no labels"],
    );
    assert_error(
        &dr("  host: reviews\n  workloadSelector:\n    matchLabels: {app: \"*\"}\n"),
        &["spec.workloadSelector.matchLabels.app"],
    );
}

#[test]
fn unknown_fields_are_reported_with_a_hint() {
    let reports = problems(&dr(
        "  host: reviews\n  trafficPolicy:\n    loadBalancer:\n      simpel: RANDOM\n",
    ));
    assert!(
        reports.iter().any(
            |r| r.contains("unknown field \"simpel\"") && r.contains("did you mean \"simple\"")
        ),
        "{reports:?}"
    );
}
