//! Tests of the Sidecar model and Istio's rules for it, through the real loader.

use crate::Spec;
use crate::testing::{assert_error, assert_valid, assert_warning, load, problems};

fn sidecar(spec: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1beta1\nkind: Sidecar\nmetadata:\n  name: default\n  namespace: bookinfo\nspec:\n{spec}"
    )
}

/// Seed 004b's Sidecars (L6386-6471), with the one whose `metadata:  name:` sits on a
/// single line.
const SEED: &str = r#"apiVersion: networking.istio.io/v1beta1
kind: Sidecar
metadata:
  name: productpage-sidecar
  namespace: default
spec:
  workloadSelector:
    labels:
      app: productpage
  egress:
  - hosts:
    - "./reviews.default.svc.cluster.local"
    - "./details.default.svc.cluster.local"
    - "istio-system/*"
---
apiVersion: networking.istio.io/v1beta1
kind: Sidecar
metadata:  name: reviews-v1-sidecar
  namespace: default
spec:
  workloadSelector:
    labels:
      app: reviews
      version: v1
  egress:
  - hosts:
    - "istio-system/*"
---
apiVersion: networking.istio.io/v1beta1
kind: Sidecar
metadata:
  name: reviews-v2-sidecar
  namespace: default
spec:
  workloadSelector:
    labels:
      app: reviews
      version: v2
  egress:
  - hosts:
    - "./ratings.default.svc.cluster.local"
    - "istio-system/*"
"#;

#[test]
fn seed_sidecars() {
    let loaded = load(SEED);
    assert_eq!(loaded.objects.len(), 2, "the two well-formed Sidecars load");
    let Spec::Sidecar(s) = &loaded.objects[0].spec else {
        panic!("not a Sidecar")
    };
    assert_eq!(s.egress[0].hosts.len(), 3);
    let reports: Vec<String> = loaded.reports.iter().map(ToString::to_string).collect();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(
        reports[0].contains("test.yaml:18")
            && reports[0].contains("error")
            && reports[0].contains("invalid YAML"),
        "{reports:?}"
    );
}

#[test]
fn full_model_decodes() {
    let loaded = assert_valid(&sidecar(
        r#"  workloadSelector:
    labels: {app: ratings}
  ingress:
  - port: {number: 9080, protocol: HTTP, name: somename}
    defaultEndpoint: 127.0.0.1:8080
    captureMode: IPTABLES
    connectionPool:
      http: {http1MaxPendingRequests: 100}
  - port: {number: 9443, protocol: HTTPS, name: secure}
    defaultEndpoint: "[::1]:8443"
    tls: {mode: SIMPLE, serverCertificate: /etc/server.pem, privateKey: /etc/key.pem}
  egress:
  - port: {number: 3306, protocol: MYSQL, name: egressmysql}
    captureMode: NONE
    bind: 127.0.0.1
    hosts: ["*/mysql.foo.com"]
  - hosts: ["istio-system/*", "./*"]
  outboundTrafficPolicy:
    mode: ALLOW_ANY
    egressProxy: {host: egress.istio-system.svc.cluster.local, subset: v1, port: {number: 3128}}
  inboundConnectionPool:
    tcp: {maxConnections: 100}
"#,
    ));
    let Spec::Sidecar(s) = &loaded.objects[0].spec else {
        panic!("not a Sidecar")
    };
    assert_eq!(s.ingress.len(), 2);
    assert_eq!(s.egress[0].capture_mode, Some(super::CaptureMode::None));
    assert_eq!(
        s.outbound_traffic_policy.as_ref().and_then(|o| o.mode),
        Some(super::OutboundMode::AllowAny)
    );
}

#[test]
fn empty_sidecar_is_refused() {
    assert_error(
        &sidecar("  workloadSelector: {labels: {app: x}}\n"),
        &["spec", "the Sidecar is empty"],
    );
    assert_valid(&sidecar("  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n"));
    assert_warning(
        &sidecar("  workloadSelector: {}\n  egress: [{hosts: [\"./*\"]}]\n"),
        &["spec.workloadSelector.labels", "applies to every workload"],
    );
}

#[test]
fn egress_hosts_are_namespace_slash_dns_names() {
    let hosts = |h: &str| sidecar(&format!("  egress:\n  - hosts: [{h}]\n"));
    assert_valid(&hosts("\"*/*\""));
    assert_valid(&hosts("\"~/*\""));
    assert_error(
        &hosts("\"reviews.default.svc.cluster.local\""),
        &[
            "spec.egress[0].hosts[0]",
            "must be of the form namespace/dnsName",
        ],
    );
    assert_error(
        &hosts("\"./reviews\""),
        &["spec.egress[0].hosts[0]", "short host name \"reviews\""],
    );
    assert_error(
        &hosts("\"Bad_NS/*\""),
        &["spec.egress[0].hosts[0]", "invalid namespace \"Bad_NS\""],
    );
    assert_error(
        &hosts("\"ns/*x.example.com\""),
        &["spec.egress[0].hosts[0]", "partial wildcard"],
    );
    assert_error(
        &sidecar("  egress:\n  - port: {number: 80, protocol: HTTP, name: http}\n"),
        &["spec.egress[0].hosts", "at least one host"],
    );
    assert_warning(
        &hosts("\"ns/*\", \"ns/a.example.com\""),
        &["spec.egress[0].hosts[1]", "duplicate egress host"],
    );
    assert_warning(
        &hosts("\"./a.example.com\", \"bookinfo/a.example.com\""),
        &["spec.egress[0].hosts[1]", "already covers it"],
    );
    assert_warning(
        &hosts("\"*/*\", \"ns/a.example.com\""),
        &["spec.egress[0].hosts", "\"*/*\" already selects every host"],
    );
}

#[test]
fn catch_all_egress_comes_last() {
    let doc = sidecar(
        "  egress:\n  - hosts: [\"./*\"]\n  - port: {number: 80, protocol: HTTP, name: http}\n    hosts: [\"./*\"]\n",
    );
    assert_error(
        &doc,
        &["spec.egress[0]", "must be the last one", "test.yaml:8"],
    );
    let twice = sidecar(
        "  egress:\n  - port: {number: 80, protocol: HTTP, name: a}\n    hosts: [\"./*\"]\n  - port: {number: 80, protocol: HTTP, name: b}\n    hosts: [\"./*\"]\n",
    );
    assert_error(
        &twice,
        &["spec.egress[1].port", "duplicate egress listener"],
    );
}

#[test]
fn egress_ports_and_sockets() {
    let egress = |l: &str| {
        sidecar(&format!(
            "  egress:\n  - {}    hosts: [\"./*\"]\n",
            l.trim_start()
        ))
    };
    assert_error(
        &egress("port: {number: 80, protocol: SMTP, name: smtp}\n"),
        &["spec.egress[0].port.protocol", "unsupported protocol"],
    );
    assert_error(
        &egress("port: {number: 80, protocol: HTTP, name: Bad_Name}\n"),
        &["spec.egress[0].port.name", "invalid port name"],
    );
    assert_error(
        &egress("port: {number: 80, protocol: HTTP, targetPort: 8080}\n"),
        &["spec.egress[0].port.targetPort", "no effect on a Sidecar"],
    );
    assert_error(
        &egress("port: {number: 80, protocol: HTTP}\n    bind: not-an-ip\n"),
        &["spec.egress[0].bind", "not a valid IP"],
    );
    assert_valid(&egress(
        "port: {number: 0, protocol: HTTP, name: uds}\n    bind: unix:///var/run/egress.sock\n",
    ));
    assert_error(
        &egress("port: {number: 0, protocol: HTTP}\n"),
        &["spec.egress[0].port.number", "unix domain socket"],
    );
    assert_error(
        &egress(
            "port: {number: 0, protocol: HTTP}\n    bind: unix:///var/run/egress.sock\n    captureMode: IPTABLES\n",
        ),
        &["spec.egress[0].captureMode", "DEFAULT or NONE"],
    );
}

#[test]
fn ingress_listeners() {
    let ingress = |l: &str| sidecar(&format!("  ingress:\n  - {}", l.trim_start()));
    assert_error(
        &ingress("defaultEndpoint: 127.0.0.1:8080\n"),
        &["spec.ingress[0].port", "port is required"],
    );
    assert_error(
        &ingress("port: {number: 0, protocol: HTTP, name: http}\n"),
        &["spec.ingress[0].port.number", "1-65535"],
    );
    assert_valid(&ingress(
        "port: {number: 9080, protocol: HTTP, name: http}\n    defaultEndpoint: unix:///var/run/app.sock\n",
    ));
    assert_valid(&ingress(
        "port: {number: 9080, protocol: HTTP, name: http}\n    defaultEndpoint: :8080\n",
    ));
    assert_error(
        &ingress(
            "port: {number: 9080, protocol: HTTP, name: http}\n    defaultEndpoint: 10.0.0.1:8080\n",
        ),
        &[
            "spec.ingress[0].defaultEndpoint",
            "must be 127.0.0.1:<port>",
        ],
    );
    assert_error(
        &ingress(
            "port: {number: 9080, protocol: HTTP, name: http}\n    defaultEndpoint: 127.0.0.1:http\n",
        ),
        &["spec.ingress[0].defaultEndpoint", "not a number"],
    );
    assert_error(
        &ingress(
            "port: {number: 9080, protocol: HTTP, name: http}\n    defaultEndpoint: 127.0.0.1\n",
        ),
        &["spec.ingress[0].defaultEndpoint", "invalid defaultEndpoint"],
    );
    let twice = "  ingress:\n  - port: {number: 9080, protocol: HTTP, name: a}\n  - port: {number: 9080, protocol: HTTP, name: b}\n";
    assert_error(
        &sidecar(twice),
        &["spec.ingress[1].port.number", "duplicate ingress port 9080"],
    );
    assert_warning(
        &ingress(
            "port: {number: 3306, protocol: MYSQL, name: db}\n    connectionPool: {http: {maxRetries: 1}}\n",
        ),
        &[
            "spec.ingress[0].connectionPool.http",
            "only the tcp settings apply",
        ],
    );
    assert_error(
        &ingress("port: {number: 9080, protocol: HTTP, name: http}\n    connectionPool: {}\n"),
        &["spec.ingress[0].connectionPool", "connection pool is empty"],
    );
}

#[test]
fn ingress_tls() {
    let tls = |t: &str| {
        sidecar(&format!(
            "  ingress:\n  - port: {{number: 9443, protocol: HTTPS, name: https}}\n    tls: {t}\n"
        ))
    };
    assert_error(
        &tls("{mode: ISTIO_MUTUAL}"),
        &["spec.ingress[0].tls.mode", "ISTIO_MUTUAL cannot be used"],
    );
    assert_error(
        &tls("{mode: SIMPLE, credentialName: c}"),
        &[
            "spec.ingress[0].tls.credentialName",
            "not supported in a Sidecar",
        ],
    );
    assert_error(
        &tls("{httpsRedirect: true}"),
        &["spec.ingress[0].tls.httpsRedirect", "not supported"],
    );
    assert_error(
        &tls("{mode: SIMPLE, serverCertificate: /c, privateKey: /k, subjectAltNames: [a]}"),
        &["spec.ingress[0].tls.subjectAltNames", "not supported"],
    );
    assert_error(
        &tls("{mode: SIMPLE, serverCertificate: /c}"),
        &["spec.ingress[0].tls.privateKey", "SIMPLE TLS needs"],
    );
}

#[test]
fn outbound_traffic_policy() {
    let otp = |o: &str| sidecar(&format!("  outboundTrafficPolicy: {o}\n"));
    assert_error(
        &otp("{egressProxy: {host: egress.example.com, port: {number: 3128}}}"),
        &[
            "spec.outboundTrafficPolicy.egressProxy",
            "only be set with mode ALLOW_ANY",
        ],
    );
    assert_error(
        &otp("{mode: ALLOW_ANY, egressProxy: {host: egress.example.com}}"),
        &["egressProxy.port", "required"],
    );
    assert_error(
        &otp("{mode: ALLOW_ANY, egressProxy: {host: \"*\", port: {number: 3128}}}"),
        &["egressProxy.host", "must name a service"],
    );
    assert_error(
        &otp("{mode: ALLOW_ANY, egressProxy: {host: egress.example.com, port: {number: 0}}}"),
        &["egressProxy.port.number", "1-65535"],
    );
    assert_error(
        &otp("{mode: DENY_ALL}"),
        &["spec.outboundTrafficPolicy.mode", "DENY_ALL"],
    );
    let reports = problems(&otp("{mode: ALLOW_ANY}"));
    assert!(reports.is_empty(), "{reports:?}");
}
