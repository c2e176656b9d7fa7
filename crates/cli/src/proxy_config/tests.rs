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
            }, "inbound_clusters": {
                "inbound|9080||": {"port": 9080, "protocol": "Http", "detect": false},
                "inbound|8080||": {"port": 8080, "protocol": "Tcp", "detect": true}
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
    let out = layout(&cluster_rows(&answer()));
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
    // The workload's own ports first (no service FQDN), as istioctl sorts them.
    assert_eq!(rows[1], ["8080", "-", "inbound", "ORIGINAL_DST"]);
    assert_eq!(rows[2], ["9080", "-", "inbound", "ORIGINAL_DST"]);
    assert!(out.lines().nth(1).unwrap().starts_with("   "), "{out}");
    assert_eq!(
        rows[3],
        [
            "ratings.default.svc.cluster.local",
            "9080",
            "-",
            "outbound",
            "EDS"
        ]
    );
    assert_eq!(
        rows[4],
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
    let rows = lines(&layout(&endpoint_rows(&answer())));
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
    let rows = lines(&layout(&route_rows(&answer())));
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
fn sidecar_listeners_per_service_address_then_the_capture_listeners() {
    let rows = lines(&layout(&listener_rows(&answer())));
    assert_eq!(rows[0], ["ADDRESSES", "PORT", "MATCH", "DESTINATION"]);
    assert_eq!(
        rows[1],
        [
            "240.240.0.2",
            "3306",
            "ALL",
            "Cluster: outbound|3306||db.default.svc.cluster.local"
        ]
    );
    assert_eq!(rows[2], ["240.240.0.1", "9080", "ALL", "Route: 9080"]);
    assert_eq!(rows[3], ["0.0.0.0", "15001", "ALL", "PassthroughCluster"]);
    let inbound: Vec<[&str; 2]> = rows
        .iter()
        .filter(|r| r[1] == "15006" && r[3].starts_with("Cluster: "))
        .map(|r| [r[2].as_str(), r[3].as_str()])
        .collect();
    assert_eq!(
        inbound,
        [
            // No protocol declared: HTTP is sniffed, the rest is TCP.
            [
                "Trans: raw_buffer; App: http/1.1,h2c; Addr: *:8080",
                "Cluster: inbound|8080||"
            ],
            ["Trans: raw_buffer; Addr: *:8080", "Cluster: inbound|8080||"],
            ["Trans: raw_buffer; Addr: *:9080", "Cluster: inbound|9080||"],
        ]
    );
    assert!(rows.iter().any(|r| r[1] == "15006"
        && r[2] == "Trans: raw_buffer; Addr: 0.0.0.0/0"
        && r[3] == "InboundPassthroughClusterIpv4"));
}

#[test]
fn secrets_are_an_empty_table_with_a_note() {
    let out = secrets();
    assert!(out.starts_with("RESOURCE NAME"));
    assert_eq!(out.lines().count(), 2);
    assert!(out.contains("no certificates yet"));
}
