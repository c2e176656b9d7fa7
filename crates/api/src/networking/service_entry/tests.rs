//! Tests of the ServiceEntry model and Istio's rules for it, through the real loader.

use crate::Spec;
use crate::networking::checks::corpus_problems;
use crate::testing::{assert_error, assert_valid, assert_warning, problems};

/// A ServiceEntry named `ext` in namespace `default` with the given spec lines.
fn se(spec: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: ext\n  namespace: default\nspec:\n{spec}"
    )
}

const HTTPS: &str = "  ports:\n  - {number: 443, name: https, protocol: HTTPS}\n";

#[test]
fn istio_samples_load_cleanly() {
    let (count, problems) = corpus_problems("ServiceEntry");
    assert!(count >= 10, "only {count} ServiceEntries loaded");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn full_model_decodes() {
    let loaded = assert_valid(&se(r#"  hosts: [mymongodb.somedomain]
  addresses: [192.192.192.192/24]
  ports:
  - {number: 27018, name: mongodb, protocol: MONGO, targetPort: 27017}
  location: MESH_INTERNAL
  resolution: STATIC
  endpoints:
  - address: 2.2.2.2
    ports: {mongodb: 27017}
    labels: {app: mongo}
    network: net1
    locality: us-west/zone1
    weight: 2
    serviceAccount: mongo
  - address: 3.3.3.3
  exportTo: ["."]
  subjectAltNames: [spiffe://cluster.local/ns/default/sa/mongo]
"#));
    let Spec::ServiceEntry(s) = &loaded.objects[0].spec else {
        panic!("not a ServiceEntry")
    };
    assert_eq!(s.resolution, Some(super::Resolution::Static));
    assert_eq!(s.location, Some(super::Location::MeshInternal));
    assert_eq!(s.endpoints[0].ports.get("mongodb"), Some(&27017));
}

/// The examples of seeds 002 and 004b.
#[test]
fn seed_examples_load() {
    assert_valid(&se(
        "  hosts: [httpbin.org]\n  ports:\n  - name: http-80\n    number: 80\n    protocol: http\n",
    ));
    assert_valid(&se(
        "  hosts: [www.googleapis.com]\n  location: MESH_EXTERNAL\n  resolution: DNS\n  ports: [{number: 443, name: https, protocol: TLS}]\n",
    ));
    assert_valid(&se(
        "  hosts: [github.com]\n  ports: [{number: 443, name: https, protocol: HTTPS}]\n  resolution: DNS\n  location: MESH_EXTERNAL\n",
    ));
}

#[test]
fn hosts_are_required_and_checked() {
    assert_error(
        &se(HTTPS),
        &["spec.hosts", "at least one host", "test.yaml:6"],
    );
    assert_error(
        &se(&format!("  hosts: [\"*\"]\n{HTTPS}")),
        &["spec.hosts[0]", "host \"*\" is not allowed"],
    );
    assert_error(
        &se(&format!("  hosts: [\"a..b\"]\n{HTTPS}")),
        &["spec.hosts[0]", "not a DNS label"],
    );
    // Istio accepts a partial wildcard with a warning.
    assert_warning(
        &se(&format!("  hosts: [\"*x\"]\n{HTTPS}")),
        &["spec.hosts[0]", "partial wildcard"],
    );
}

#[test]
fn addresses_and_resolution() {
    assert_error(
        &se(&format!(
            "  hosts: [example.com]\n  addresses: [1.2.3.4/99]\n{HTTPS}"
        )),
        &["spec.addresses[0]", "not a valid CIDR block"],
    );
    assert_error(
        &se(&format!(
            "  hosts: [example.com]\n  addresses: [1.2.3.4/16]\n  resolution: DNS\n{HTTPS}"
        )),
        &[
            "spec.addresses[0]",
            "only allowed with resolution NONE or STATIC",
        ],
    );
    assert_valid(&se(&format!(
        "  hosts: [example.com]\n  addresses: [1.1.1.1/32]\n{HTTPS}"
    )));
    assert_error(
        &se(&format!(
            "  hosts: [example.com]\n  addresses: [not-an-ip]\n{HTTPS}"
        )),
        &["spec.addresses[0]", "not an IP address or CIDR block"],
    );
}

#[test]
fn ports_are_unique_and_valid() {
    let ports = |p: &str| se(&format!("  hosts: [example.com]\n  ports:\n{p}"));
    assert_error(
        &ports(
            "  - {number: 1, name: a, protocol: HTTP}\n  - {number: 12, name: a, protocol: HTTP}\n",
        ),
        &["spec.ports[1].name", "duplicate port name \"a\""],
    );
    assert_error(
        &ports(
            "  - {number: 1, name: a, protocol: HTTP}\n  - {number: 1, name: b, protocol: HTTP}\n",
        ),
        &["spec.ports[1].number", "duplicate port number 1"],
    );
    assert_error(
        &ports("  - {number: 99999, name: a, protocol: HTTP}\n"),
        &["spec.ports[0].number", "1-65535"],
    );
    assert_error(
        &ports("  - {number: 80, name: a, protocol: HTTP, targetPort: 99999}\n"),
        &["spec.ports[0].targetPort", "1-65535"],
    );
    assert_error(
        &ports("  - {number: 80, name: Bad_Name, protocol: HTTP}\n"),
        &["spec.ports[0].name", "invalid port name"],
    );
    assert_error(
        &ports("  - {number: 80, protocol: HTTP}\n"),
        &["spec.ports[0].name", "port name is required"],
    );
    assert_error(
        &ports("  - {number: 80, name: a, protocol: SMTP}\n"),
        &["spec.ports[0].protocol", "unsupported protocol \"SMTP\""],
    );
    assert_warning(
        &ports("  - {number: 80, name: a, protocol: HTTP, targetPort: 8080}\n"),
        &["spec.ports[0].targetPort", "no effect with resolution NONE"],
    );
    assert_warning(
        &ports("  - {number: 5432, name: tcp, protocol: TCP}\n"),
        &["spec.ports[0].protocol", "no addresses"],
    );
}

#[test]
fn endpoints_follow_resolution() {
    assert_error(
        &se(&format!(
            "  hosts: [example.com]\n  resolution: NONE\n  endpoints: [{{address: 1.2.3.4}}]\n{HTTPS}"
        )),
        &["spec.endpoints", "resolution NONE takes no endpoints"],
    );
    assert_error(
        &se(&format!(
            "  hosts: [example.com]\n  resolution: STATIC\n  endpoints: [{{address: sub.example.com}}]\n{HTTPS}"
        )),
        &["spec.endpoints[0].address", "not a valid IP address"],
    );
    assert_valid(&se(&format!(
        "  hosts: [example.com]\n  resolution: DNS\n  endpoints: [{{address: sub.example.com}}]\n{HTTPS}"
    )));
    assert_error(
        &se(&format!(
            "  hosts: [example.com]\n  resolution: DNS_ROUND_ROBIN\n  endpoints: [{{address: a.example.com}}, {{address: b.example.com}}]\n{HTTPS}"
        )),
        &["spec.endpoints", "at most one endpoint"],
    );
    assert_error(
        &se(&format!(
            "  hosts: [\"*.example.com\"]\n  resolution: DNS\n{HTTPS}"
        )),
        &["spec.hosts[0]", "hosts must be DNS names without wildcards"],
    );
    assert_error(
        &se(&format!(
            "  hosts: [example.com]\n  resolution: STATIC\n  endpoints: [{{address: 1.2.3.4, ports: {{http: 8080}}}}]\n{HTTPS}"
        )),
        &[
            "spec.endpoints[0].ports.http",
            "not one of the ServiceEntry's port names",
        ],
    );
    assert_warning(
        &se(&format!(
            "  hosts: [example.com]\n  resolution: STATIC\n{HTTPS}"
        )),
        &["spec.resolution", "no endpoints"],
    );
    assert_error(
        &se(&format!(
            "  hosts: [example.com]\n  resolution: STATIC\n  endpoints: [{{network: n1, labels: {{app: x}}}}, {{}}]\n{HTTPS}"
        )),
        &["spec.endpoints[1].address", "address is required"],
    );
}

#[test]
fn unix_endpoints() {
    let one = "  ports: [{number: 80, name: http, protocol: HTTP}]\n";
    assert_valid(&se(&format!(
        "  hosts: [uds.local]\n  resolution: STATIC\n  endpoints: [{{address: \"unix:///var/run/app.sock\"}}]\n{one}"
    )));
    assert_error(
        &se(&format!(
            "  hosts: [uds.local]\n  resolution: STATIC\n  endpoints: [{{address: \"unix:///dir/\"}}]\n{one}"
        )),
        &["spec.endpoints[0].address", "absolute path to a file"],
    );
    assert_error(
        &se(
            "  hosts: [uds.local]\n  resolution: STATIC\n  endpoints: [{address: \"unix://@abs\"}]\n  ports: [{number: 80, name: a, protocol: HTTP}, {number: 81, name: b, protocol: HTTP}]\n",
        ),
        &["spec.endpoints[0].address", "exactly one port"],
    );
}

#[test]
fn selector_rules() {
    assert_error(
        &se(&format!(
            "  hosts: [example.com]\n  resolution: STATIC\n  workloadSelector: {{labels: {{app: x}}}}\n  endpoints: [{{address: 1.2.3.4}}]\n{HTTPS}"
        )),
        &[
            "spec.workloadSelector",
            "only one of workloadSelector and endpoints",
        ],
    );
    assert_error(
        &se(&format!(
            "  hosts: [example.com]\n  resolution: STATIC\n  workloadSelector: {{labels: {{val: \"*\"}}}}\n{HTTPS}"
        )),
        &[
            "spec.workloadSelector.labels.val",
            "wildcards are not supported",
        ],
    );
    assert_warning(
        &se(&format!(
            "  hosts: [example.com]\n  resolution: STATIC\n  workloadSelector: {{}}\n{HTTPS}"
        )),
        &["spec.workloadSelector.labels", "applies to every workload"],
    );
    assert_warning(
        &se(&format!(
            "  hosts: [example.com]\n  resolution: DNS\n  workloadSelector: {{labels: {{app: x}}}}\n{HTTPS}"
        )),
        &["spec.workloadSelector", "no effect with resolution DNS"],
    );
}

#[test]
fn several_hosts_need_http_or_tls() {
    assert_error(
        &se(
            "  hosts: [a.example.com, b.example.com]\n  resolution: DNS\n  ports: [{number: 5432, name: pg, protocol: TCP}]\n",
        ),
        &[
            "spec.ports[0].protocol",
            "plain TCP cannot tell the hosts apart",
        ],
    );
    assert_valid(&se(
        "  hosts: [a.example.com, b.example.com]\n  resolution: DNS\n  ports: [{number: 443, name: tls, protocol: TLS}]\n",
    ));
}

#[test]
fn export_to_allows_no_one() {
    assert_valid(&se(&format!(
        "  hosts: [example.com]\n  exportTo: [\"~\"]\n{HTTPS}"
    )));
    assert_error(
        &se(&format!(
            "  hosts: [example.com]\n  exportTo: [\"~\", \".\"]\n{HTTPS}"
        )),
        &["spec.exportTo", "\"~\" (no namespace) cannot be combined"],
    );
    assert_valid(&se(&format!(
        "  hosts: [example.com]\n  exportTo: [foo, \".\"]\n{HTTPS}"
    )));
}

#[test]
fn enums_are_checked_when_decoding() {
    let reports = problems(&se(&format!(
        "  hosts: [example.com]\n  resolution: DYNAMIC\n{HTTPS}"
    )));
    assert!(
        reports
            .iter()
            .any(|r| r.contains("spec.resolution") && r.contains("DYNAMIC") && r.contains("error")),
        "{reports:?}"
    );
}
