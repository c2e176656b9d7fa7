//! Tests of the TCP and TLS route rules and of the warnings about rules and matches that
//! are never used.

use super::vs;
use crate::testing::{assert_error, assert_valid, assert_warning};

#[test]
fn tcp_routes() {
    // Seed 003 (11) and Istio's tcp-echo sample: an 80/20 split per connection.
    assert_valid(&vs(r#"
hosts: ["*"]
gateways: [tcp-echo-gateway]
tcp:
- match:
  - port: 31400
  route:
  - destination: {host: tcp-echo, port: {number: 9000}, subset: v1}
    weight: 80
  - destination: {host: tcp-echo, port: {number: 9000}, subset: v2}
    weight: 20
"#));
    assert_valid(&vs(r#"
hosts: [postgresql]
tcp:
- match:
  - destinationSubnets: [10.0.0.0/8, 192.168.1.1]
    sourceSubnet: 10.1.0.0/16
    sourceLabels: {app: web}
  route:
  - destination: {host: postgresql}
"#));
}

#[test]
fn tcp_route_errors() {
    assert_error(
        &vs("hosts: [db]\ntcp:\n- match: [{port: 5432}]\n"),
        &[
            "test.yaml:9",
            "spec.tcp[0].route",
            "needs route destinations",
        ],
    );
    assert_error(
        &vs(
            "hosts: [db]\ntcp:\n- match: [{destinationSubnets: [10.0.0.0/33]}]\n  route: [{destination: {host: db}}]\n",
        ),
        &[
            "spec.tcp[0].match[0].destinationSubnets[0]",
            "not a valid CIDR block",
        ],
    );
    assert_error(
        &vs(
            "hosts: [db]\ntcp:\n- match: [{port: 0, gateways: [a/b/c]}]\n  route: [{destination: {host: db}}]\n",
        ),
        &[
            "spec.tcp[0].match[0].gateways[0]",
            "invalid gateway name \"b/c\"",
        ],
    );
    assert_warning(
        &vs(
            "hosts: [db]\ntcp:\n- match: [{sourceSubnet: nonsense}]\n  route: [{destination: {host: db}}]\n",
        ),
        &["spec.tcp[0].match[0].sourceSubnet", "can never apply"],
    );
    assert_error(
        &vs("hosts: [db]\ntcp:\n- route:\n  - destination: {host: db}\n    weight: -5\n"),
        &["spec.tcp[0].route[0].weight", "must not be negative"],
    );
}

#[test]
fn tls_routes_match_on_sni_hosts_within_the_hosts() {
    assert_valid(&vs(r#"
hosts: ["*.bookinfo.com"]
gateways: [mygateway]
tls:
- match:
  - port: 443
    sniHosts: [login.bookinfo.com]
  route:
  - destination: {host: login.prod.svc.cluster.local}
- match:
  - port: 443
    sniHosts: [reviews.bookinfo.com]
  route:
  - destination: {host: reviews.prod.svc.cluster.local}
"#));
    assert_error(
        &vs("hosts: [a.com]\ntls:\n- route: [{destination: {host: a.com}}]\n"),
        &["spec.tls[0].match", "at least one match"],
    );
    assert_error(
        &vs(
            "hosts: [a.com]\ntls:\n- match: [{port: 443}]\n  route: [{destination: {host: a.com}}]\n",
        ),
        &["spec.tls[0].match[0].sniHosts", "at least one SNI host"],
    );
    assert_error(
        &vs(
            "hosts: [a.com]\ntls:\n- match: [{sniHosts: [b.com]}]\n  route: [{destination: {host: a.com}}]\n",
        ),
        &[
            "test.yaml:9",
            "spec.tls[0].match[0].sniHosts[0]",
            "\"b.com\" is not covered",
            "[a.com]",
        ],
    );
    assert_error(
        &vs("hosts: [a.com]\ntls:\n- match: [{sniHosts: [a.com]}]\n"),
        &["spec.tls[0].route", "needs route destinations"],
    );
    assert_warning(
        &vs(
            "hosts: [\"*\"]\ngateways: [gw]\ntls:\n- match: [{sniHosts: [10.0.0.1]}]\n  route: [{destination: {host: a.com}}]\n",
        ),
        &["sniHosts[0]", "IP address"],
    );
    assert_error(
        &vs(
            "hosts: [a.com]\ntls:\n- match: [{sniHosts: [a.com], destinationSubnets: [bad]}]\n  route: [{destination: {host: a.com}}]\n",
        ),
        &["destinationSubnets[0]", "not an IP address"],
    );
}

#[test]
fn istio_generated_sni_names_are_allowed_on_gateways() {
    assert_valid(&vs(r#"
hosts: [outbound_.80_._.e2e.foobar.mesh]
gateways: [eastwest]
tls:
- match:
  - sniHosts: [outbound_.80_._.e2e.foobar.mesh]
  route:
  - destination: {host: e2e.foobar.svc.cluster.local}
"#));
}

#[test]
fn a_rule_after_a_catch_all_is_never_used() {
    assert_warning(
        &vs(r#"
hosts: [reviews]
http:
- route:
  - destination: {host: reviews, subset: v1}
- match: [{headers: {end-user: {exact: jason}}}]
  route:
  - destination: {host: reviews, subset: v2}
"#),
        &[
            "test.yaml:11",
            "spec.http[1]",
            "rule #1 is never used",
            "rule #0 before it matches every request",
        ],
    );
    assert_warning(
        &vs(
            "hosts: [db]\ntcp:\n- route: [{destination: {host: db}}]\n- route: [{destination: {host: db2}}]\n",
        ),
        &["spec.tcp[1]", "rule #1 is never used", "no match either"],
    );
}

#[test]
fn repeated_matches_are_never_used() {
    assert_warning(
        &vs(r#"
hosts: [reviews]
http:
- name: first
  match: [{uri: {exact: /a}}]
  route: [{destination: {host: reviews}}]
- name: second
  match: [{uri: {exact: /a}, name: again}, {uri: {exact: /b}}]
  route: [{destination: {host: ratings}}]
"#),
        &[
            "spec.http[1].match[0]",
            "match \"again\" of rule \"second\" is never used",
            "rule \"first\"",
        ],
    );
    assert_warning(
        &vs(r#"
hosts: [reviews]
http:
- match: [{uri: {exact: /a}}]
  route: [{destination: {host: reviews}}]
- match: [{uri: {exact: /a}}]
  route: [{destination: {host: ratings}}]
"#),
        &["spec.http[1]", "all its matches appear in earlier rules"],
    );
    assert_warning(
        &vs(r#"
hosts: [a.com]
tls:
- match: [{sniHosts: [a.com]}]
  route: [{destination: {host: a.com}}]
- match: [{sniHosts: [a.com]}]
  route: [{destination: {host: b.com}}]
"#),
        &["spec.tls[1].match[0]", "never used"],
    );
}

#[test]
fn a_prefix_covered_by_an_earlier_prefix_is_never_used() {
    assert_warning(
        &vs(r#"
hosts: [reviews]
http:
- match: [{uri: {prefix: /api}}]
  route: [{destination: {host: reviews}}]
- match: [{uri: {prefix: /api/v1}}]
  route: [{destination: {host: ratings}}]
"#),
        &[
            "spec.http[1].match[0]",
            "(prefix \"/api/v1\") is never used",
            "(prefix \"/api\") comes first",
        ],
    );
    // A longer prefix first, then a shorter one, is the right order.
    assert_valid(&vs(r#"
hosts: [reviews]
http:
- match: [{uri: {prefix: /api/v1}}]
  route: [{destination: {host: ratings}}]
- match: [{uri: {prefix: /api}}]
  route: [{destination: {host: reviews}}]
"#));
    // Different headers: the earlier prefix does not take every request of the later one.
    assert_valid(&vs(r#"
hosts: [reviews]
http:
- match: [{uri: {prefix: /api}, headers: {x-a: {exact: "1"}}}]
  route: [{destination: {host: reviews}}]
- match: [{uri: {prefix: /api/v1}}]
  route: [{destination: {host: ratings}}]
"#));
}
