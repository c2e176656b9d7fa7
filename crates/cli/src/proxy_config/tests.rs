//! The tables' shapes, from a dump shaped like a real sidecar's.
#![allow(clippy::unwrap_used)]

use serde_json::json;

use super::*;

fn answer() -> Value {
    json!({
        "proxy": "app",
        "config_dump": {
            "listeners": {"9080": {"protocol": "Http", "virtual_hosts": [
                {"name": "reviews.default.svc.cluster.local:9080",
                 "domains": ["reviews.default.svc.cluster.local:9080", "reviews", "reviews:9080"],
                 "routes": [{"name": "", "matches": [{"uri": {"Prefix": "/api"}}]},
                            {"name": "", "matches": []}]},
                {"name": "ratings.default.svc.cluster.local:9080",
                 "domains": ["ratings"],
                 "routes": [{"name": "default", "matches": []}]}
            ]}},
            "clusters": {
                "outbound|9080|v1|reviews.default.svc.cluster.local": {},
                "outbound|9080||ratings.default.svc.cluster.local": {}
            },
            "sidecar": {"outbound": {
                "240.240.0.1:9080": {"protocol": "Http", "cluster": "outbound|9080||reviews.default.svc.cluster.local"},
                "240.240.0.2:3306": {"protocol": "Tcp", "cluster": "outbound|3306||db.default.svc.cluster.local"}
            }}
        },
        "clusters": "outbound|9080|v1|reviews.default.svc.cluster.local::127.0.0.1:9080::health_flags::healthy\n\
                     outbound|9080|v1|reviews.default.svc.cluster.local::127.0.0.3:9080::health_flags::/failed_outlier_check\n",
        "objects": {
            "virtual_services": [{"name": "reviews", "namespace": "default", "hosts": ["reviews"]}],
            "destination_rules": [{"name": "reviews-dr", "namespace": "default", "hosts": ["reviews.default.svc.cluster.local"]}]
        }
    })
}

fn lines(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|l| {
            l.split("   ")
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())
                .collect()
        })
        .collect()
}

#[test]
fn clusters_in_istioctls_columns_with_their_destination_rule() {
    let out = table(&cluster_rows(&answer()));
    let rows = lines(&out);
    assert_eq!(
        rows[0],
        [
            "SERVICE FQDN",
            "PORT",
            "SUBSET",
            "DIRECTION",
            "TYPE",
            "DESTINATION RULE"
        ]
    );
    assert_eq!(
        rows[1],
        [
            "ratings.default.svc.cluster.local",
            "9080",
            "-",
            "outbound",
            "EDS"
        ]
    );
    assert_eq!(
        rows[2],
        [
            "reviews.default.svc.cluster.local",
            "9080",
            "v1",
            "outbound",
            "EDS",
            "reviews-dr.default"
        ]
    );
}

#[test]
fn endpoints_show_outlier_ejection() {
    let rows = lines(&table(&endpoint_rows(&answer())));
    assert_eq!(rows[0], ["ENDPOINT", "STATUS", "OUTLIER CHECK", "CLUSTER"]);
    assert_eq!(
        rows[1],
        [
            "127.0.0.1:9080",
            "HEALTHY",
            "OK",
            "outbound|9080|v1|reviews.default.svc.cluster.local"
        ]
    );
    assert_eq!(
        rows[2],
        [
            "127.0.0.3:9080",
            "UNHEALTHY",
            "FAILED",
            "outbound|9080|v1|reviews.default.svc.cluster.local"
        ]
    );
}

#[test]
fn routes_name_their_virtual_service() {
    let rows = lines(&table(&route_rows(&answer())));
    assert_eq!(
        rows[0],
        ["NAME", "VHOST NAME", "DOMAINS", "MATCH", "VIRTUAL SERVICE"]
    );
    assert_eq!(
        rows[1],
        [
            "9080",
            "reviews.default.svc.cluster.local:9080",
            "reviews + 2 more...",
            "/api*",
            "reviews.default"
        ]
    );
    assert_eq!(rows[2][3], "/*");
    // No VirtualService covers ratings: the proxy's default route.
    assert_eq!(
        rows[3],
        [
            "9080",
            "ratings.default.svc.cluster.local:9080",
            "ratings",
            "/*",
            "-"
        ]
    );
}

#[test]
fn sidecar_listeners_per_service_address() {
    let rows = lines(&table(&listener_rows(&answer())));
    assert_eq!(rows[0], ["ADDRESSES", "PORT", "MATCH", "DESTINATION"]);
    assert_eq!(rows[1], ["240.240.0.1", "9080", "ALL", "Route: 9080"]);
    assert_eq!(
        rows[2],
        [
            "240.240.0.2",
            "3306",
            "ALL",
            "Cluster: outbound|3306||db.default.svc.cluster.local"
        ]
    );
}

#[test]
fn secrets_are_an_empty_table_with_a_note() {
    let out = secrets();
    assert!(out.starts_with("RESOURCE NAME"));
    assert_eq!(out.lines().count(), 2);
    assert!(out.contains("no certificates yet"));
}
