use crate::testing::{assert_error, assert_valid};

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: reviews-v1
spec:
  selector:
    matchLabels: {app: reviews, version: v1}
  template:
    metadata:
      labels: {app: reviews, version: v1}
    spec:
      serviceAccountName: bookinfo-reviews
      containers:
      - name: reviews
        image: docker.io/istio/examples-bookinfo-reviews-v1:1.20.3
        ports:
        - containerPort: 9080
";

#[test]
fn deployments() {
    assert_valid(DEPLOYMENT);
    assert_error(
        &DEPLOYMENT.replace(
            "labels: {app: reviews, version: v1}",
            "labels: {app: reviews}",
        ),
        &[
            "spec.template.metadata.labels",
            "do not match spec.selector",
        ],
    );
    assert_error(
        &DEPLOYMENT.replace("containerPort: 9080", "containerPort: 0"),
        &[
            "test.yaml:17",
            "spec.template.spec.containers[0].ports[0].containerPort",
            "must be in 1-65535",
        ],
    );
    assert_error(
        &DEPLOYMENT.replace("- name: reviews", "- name: Reviews_1"),
        &["containers[0].name", "invalid container name"],
    );
}

#[test]
fn services() {
    let svc = "apiVersion: v1\nkind: Service\nmetadata: {name: reviews}\nspec:\n  ports:\n  - {port: 9080, name: http}\n  - {port: 9081, name: http}\n";
    assert_error(svc, &["spec.ports[1].name", "duplicate port name \"http\""]);
    let unnamed = "apiVersion: v1\nkind: Service\nmetadata: {name: reviews}\nspec:\n  ports:\n  - {port: 9080}\n  - {port: 9081, name: grpc}\n";
    assert_error(unnamed, &["spec.ports[0].name", "must be named"]);
    assert_error(
        &svc.replace("9081, name: http", "70000, name: grpc"),
        &["spec.ports[1].port", "1-65535"],
    );
    assert_error(
        &svc.replace(
            "name: http}\n  - {port: 9081, name: http}",
            "name: http, protocol: HTTP}",
        ),
        &["protocol", "TCP, UDP or SCTP"],
    );
    assert_error(
        "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {}\n",
        &["spec.ports", "at least one port"],
    );
    assert_valid("apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {clusterIP: None}\n");
}

#[test]
fn tls_secrets_need_a_certificate_and_a_key() {
    let secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: gw-cert}\ntype: kubernetes.io/tls\ndata:\n  tls.crt: AAAA\n";
    assert_error(secret, &["data[tls.key]", "needs tls.key"]);
    assert_valid(&format!("{secret}  tls.key: AAAA\n"));
}

#[test]
fn endpoint_slices() {
    let slice = "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: reviews-abc}\naddressType: IPv5\nendpoints:\n- addresses: [10.0.0.1]\n";
    assert_error(slice, &["addressType", "IPv4, IPv6 or FQDN"]);
    assert_valid(&slice.replace("IPv5", "IPv4"));
}
