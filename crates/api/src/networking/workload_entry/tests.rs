//! Tests of the WorkloadEntry and WorkloadGroup models and Istio's rules, through the
//! real loader.

use crate::Spec;
use crate::testing::{assert_error, assert_valid, assert_warning};

fn we(spec: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata:\n  name: vm1\n  namespace: default\nspec:\n{spec}"
    )
}

fn wg(spec: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1alpha3\nkind: WorkloadGroup\nmetadata:\n  name: ratings\n  namespace: default\nspec:\n{spec}"
    )
}

#[test]
fn workload_entry_decodes() {
    let loaded = assert_valid(&we(
        "  address: 10.0.0.5\n  ports: {http: 9080}\n  labels: {app: ratings, version: v1}\n  network: vm-net\n  locality: us-west/zone1\n  weight: 3\n  serviceAccount: bookinfo-ratings\n",
    ));
    let Spec::WorkloadEntry(w) = &loaded.objects[0].spec else {
        panic!("not a WorkloadEntry")
    };
    assert_eq!(w.address.as_deref(), Some("10.0.0.5"));
    assert_eq!(w.weight, Some(3));
    assert_valid(&we("  address: vm1.example.com\n"));
}

#[test]
fn workload_entry_address() {
    assert_error(
        &we("  labels: {app: x}\n"),
        &["spec.address", "address is required", "test.yaml:6"],
    );
    assert_error(
        &we("  address: \"unix:///dir/\"\n"),
        &["spec.address", "absolute path"],
    );
    assert_error(
        &we("  address: unix://relative\n"),
        &["spec.address", "absolute path"],
    );
    assert_error(
        &we("  address: \"unix://@foo\"\n  ports: {http: 80}\n"),
        &["spec.address", "cannot have ports"],
    );
    assert_error(
        &we("  address: \"not an address\"\n"),
        &["spec.address", "not a valid DNS name or IP address"],
    );
    assert_warning(
        &we("  network: remote\n"),
        &["spec.address", "address is unset", "\"remote\""],
    );
}

#[test]
fn workload_entry_ports_and_labels() {
    assert_error(
        &we("  address: 1.1.1.1\n  ports: {http: 99999}\n"),
        &["spec.ports.http", "1-65535"],
    );
    assert_error(
        &we("  address: 1.1.1.1\n  ports: {\"@\": 80}\n"),
        &["spec.ports.@", "invalid port name \"@\""],
    );
    assert_error(
        &we("  address: 1.1.1.1\n  labels: {\"-app\": x}\n"),
        &["spec.labels.-app", "invalid label key"],
    );
}

/// The WorkloadGroup of seed 004b's VM lab: a template with only a service account.
#[test]
fn seed_workload_group_loads() {
    let loaded = assert_valid(&wg(
        "  metadata:\n    labels:\n      app: ratings\n  template:\n    serviceAccount: bookinfo-ratings\n",
    ));
    let Spec::WorkloadGroup(g) = &loaded.objects[0].spec else {
        panic!("not a WorkloadGroup")
    };
    let template = g.template.as_ref().expect("template");
    assert_eq!(
        template.service_account.as_deref(),
        Some("bookinfo-ratings")
    );
}

#[test]
fn workload_group_rules() {
    assert_error(
        &wg("  metadata: {labels: {app: ratings}}\n"),
        &["spec.template", "template is required"],
    );
    assert_error(
        &wg("  metadata: {labels: {\"a b\": x}}\n  template: {}\n"),
        &["spec.metadata.labels", "invalid label key"],
    );
    assert_error(
        &wg("  template: {ports: {http: 0}}\n"),
        &["spec.template.ports.http", "1-65535"],
    );
    assert_valid(&wg(
        "  metadata: {labels: {foo: bar}, annotations: {foo: bar}}\n  probe:\n    failureThreshold: 2\n    initialDelaySeconds: 1\n    periodSeconds: 1\n    successThreshold: 1\n    timeoutSeconds: 1\n    httpGet: {port: 8080, host: bar, scheme: HTTPS, path: /bar, httpHeaders: [{name: foo, value: bar}]}\n  template: {serviceAccount: sa, network: net, labels: {app: app}, ports: {http: 1}, weight: 2, locality: foo/bar/baz}\n",
    ));
}

#[test]
fn probe_rules() {
    let probe = |p: &str| {
        wg(&format!(
            "  template: {{serviceAccount: sa}}\n  probe:\n{p}"
        ))
    };
    assert_valid(&probe("    tcpSocket: {port: 8080}\n"));
    assert_valid(&probe("    exec: {command: [/bin/true]}\n"));
    assert_error(
        &probe("    tcpSocket: {port: 65536}\n"),
        &["spec.probe.tcpSocket.port", "1-65535"],
    );
    assert_error(
        &probe("    periodSeconds: 5\n"),
        &["spec.probe", "needs one of httpGet, tcpSocket or exec"],
    );
    assert_error(
        &probe("    tcpSocket: {port: 80}\n    exec: {command: [x]}\n"),
        &["spec.probe", "only one of httpGet, tcpSocket and exec"],
    );
    assert_error(
        &probe("    exec: {}\n"),
        &["spec.probe.exec.command", "required"],
    );
    assert_error(
        &probe("    tcpSocket: {port: 80}\n    timeoutSeconds: -1\n"),
        &["spec.probe.timeoutSeconds", "must not be negative"],
    );
    assert_error(
        &probe("    httpGet: {port: 80, scheme: FTP}\n"),
        &["spec.probe.httpGet.scheme", "HTTP or HTTPS"],
    );
    assert_error(
        &probe("    httpGet:\n      port: 80\n      httpHeaders: [{name: \"**\"}]\n"),
        &[
            "spec.probe.httpGet.httpHeaders[0].name",
            "invalid header name",
        ],
    );
}
