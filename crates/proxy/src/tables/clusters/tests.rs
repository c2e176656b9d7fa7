//! Cluster building from DestinationRules: Istio's traffic-policy precedence, hash tables and
//! connection settings.

use std::path::Path;
use std::time::Duration;

use weft_api::networking::virtual_service::Destination;
use weft_api::{LoadOptions, Loaded};

use super::*;

const SERVICE: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: reviews
  namespace: default
spec:
  hosts:
  - reviews.default.svc.cluster.local
  location: MESH_INTERNAL
  ports:
  - number: 9080
    name: http
    protocol: HTTP
  - number: 9081
    name: http-alt
    protocol: HTTP
  - number: 9090
    name: grpc
    protocol: GRPC
  resolution: STATIC
  endpoints:
  - address: 10.0.0.1
    labels: {version: v1}
  - address: 10.0.0.2
    labels: {version: v2}
";

pub(super) fn load(rule: &str) -> Vec<Object> {
    let mut out = Loaded::default();
    let text = format!("{SERVICE}---\n{rule}");
    weft_api::load_str(
        &text,
        Arc::from(Path::new("test.yaml")),
        &LoadOptions::default(),
        &mut out,
    );
    let errors: Vec<String> = out.reports.iter().map(|r| r.to_string()).collect();
    assert!(
        out.reports
            .iter()
            .all(|r| r.severity() != weft_api::Severity::Error),
        "{errors:?}"
    );
    out.objects
}

/// Builds the cluster for (port, subset) and returns it.
pub(super) fn cluster(objects: &[Object], port: u32, subset: &str) -> Arc<Cluster> {
    let registry = Registry::build(objects);
    let mut clusters = Clusters::new(objects, &registry);
    let dest = Destination {
        host: "reviews".into(),
        subset: subset.into(),
        port: Some(weft_api::common::PortSelector { number: port }),
    };
    let name = clusters.cluster_for(&dest, "default");
    clusters
        .built
        .get(&name)
        .cloned()
        .unwrap_or_else(|| panic!("no cluster {name}"))
}

fn lb_name(c: &Cluster) -> &'static str {
    match &c.lb {
        LbPolicy::RoundRobin => "ROUND_ROBIN",
        LbPolicy::LeastRequest => "LEAST_REQUEST",
        LbPolicy::Random => "RANDOM",
        LbPolicy::Passthrough => "PASSTHROUGH",
        LbPolicy::ConsistentHash { table, .. } => match table {
            HashTable::Ring(_) => "RING_HASH",
            HashTable::Maglev(_) => "MAGLEV",
        },
    }
}

const PRECEDENCE: &str = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
  namespace: default
spec:
  host: reviews
  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBIN
    portLevelSettings:
    - port:
        number: 9080
      loadBalancer:
        simple: RANDOM
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      loadBalancer:
        consistentHash:
          httpHeaderName: X-User
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      portLevelSettings:
      - port:
          number: 9080
        connectionPool:
          tcp:
            connectTimeout: 1s
      - port:
          number: 9081
        loadBalancer:
          simple: PASSTHROUGH
";

#[test]
fn traffic_policy_precedence_is_istios() {
    let objects = load(PRECEDENCE);
    // The rule's port-level setting beats its top level.
    assert_eq!(lb_name(&cluster(&objects, 9080, "")), "RANDOM");
    assert_eq!(lb_name(&cluster(&objects, 9090, "")), "ROUND_ROBIN");
    // A subset's policy beats the rule's, even the rule's port-level one.
    let v1 = cluster(&objects, 9080, "v1");
    assert_eq!(lb_name(&v1), "RING_HASH");
    assert!(
        matches!(&v1.lb, LbPolicy::ConsistentHash { key: HashKey::Header(h), .. } if h == "x-user")
    );
    // Port-level settings replace the whole level: v2's 9080 settings name no load
    // balancer, so it is the default, not the subset's or the rule's.
    let v2 = cluster(&objects, 9080, "v2");
    assert_eq!(lb_name(&v2), "LEAST_REQUEST");
    assert_eq!(v2.connection.connect_timeout, Duration::from_secs(1));
    assert_eq!(lb_name(&cluster(&objects, 9081, "v2")), "PASSTHROUGH");
    // Where the subset says nothing for the port, the rule's settings for it apply.
    assert_eq!(lb_name(&cluster(&objects, 9090, "v2")), "ROUND_ROBIN");
}

fn rule(traffic_policy: &str) -> Vec<Object> {
    load(&format!(
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
  namespace: default
spec:
  host: reviews
  trafficPolicy:
{traffic_policy}"
    ))
}

#[test]
fn hash_tables_follow_istio_defaults() {
    let ring = |tp: &str| match &cluster(&rule(tp), 9080, "").lb {
        LbPolicy::ConsistentHash { table, .. } => {
            (lb_name(&cluster(&rule(tp), 9080, "")), table.len())
        }
        other => panic!("{other:?}"),
    };
    let tp = "    loadBalancer:\n      consistentHash:\n        useSourceIp: true\n";
    assert_eq!(ring(tp), ("RING_HASH", 1024));
    let tp = "    loadBalancer:\n      consistentHash:\n        httpQueryParameterName: id\n        ringHash:\n          minimumRingSize: 64\n";
    assert_eq!(ring(tp), ("RING_HASH", 64));
    let tp = "    loadBalancer:\n      consistentHash:\n        httpHeaderName: x\n        minimumRingSize: 32\n";
    assert_eq!(ring(tp), ("RING_HASH", 32));
    let tp = "    loadBalancer:\n      consistentHash:\n        httpHeaderName: x\n        maglev:\n          tableSize: 251\n";
    assert_eq!(ring(tp), ("MAGLEV", 251));
    let tp = "    loadBalancer:\n      consistentHash:\n        httpCookie:\n          name: session\n          path: /api\n          ttl: 30s\n";
    let c = cluster(&rule(tp), 9080, "");
    let LbPolicy::ConsistentHash {
        key: HashKey::Cookie(spec),
        ..
    } = &c.lb
    else {
        panic!("{:?}", c.lb)
    };
    assert_eq!(
        (spec.name.as_str(), spec.path.as_str(), spec.ttl),
        ("session", "/api", Some(Duration::from_secs(30)))
    );
}

#[test]
fn connection_settings_from_the_connection_pool() {
    let plain = cluster(&rule("    loadBalancer:\n      simple: RANDOM\n"), 9080, "");
    assert_eq!(plain.connection, ConnectionSettings::default());
    assert_eq!(plain.connection.protocol, UpstreamProtocol::Http1);
    // A gRPC port is HTTP/2.
    assert_eq!(
        cluster(&objects_without_rule(), 9090, "")
            .connection
            .protocol,
        UpstreamProtocol::Http2
    );
    let tp = "    connectionPool:
      tcp:
        connectTimeout: 250ms
        idleTimeout: 5s
        tcpKeepalive:
          time: 7s
          interval: 2s
          probes: 3
      http:
        h2UpgradePolicy: UPGRADE
";
    let c = cluster(&rule(tp), 9080, "");
    assert_eq!(c.connection.protocol, UpstreamProtocol::Http2);
    assert_eq!(c.connection.connect_timeout, Duration::from_millis(250));
    assert_eq!(c.connection.idle_timeout, Some(Duration::from_secs(5)));
    let ka = c.connection.tcp_keepalive.unwrap();
    assert_eq!(
        (ka.time, ka.interval, ka.probes),
        (
            Some(Duration::from_secs(7)),
            Some(Duration::from_secs(2)),
            Some(3)
        )
    );
    // useClientProtocol wins over an HTTP/2 port; http.idleTimeout over tcp's.
    let tp = "    connectionPool:
      tcp:
        idleTimeout: 5s
      http:
        useClientProtocol: true
        idleTimeout: 2s
";
    let c = cluster(&rule(tp), 9090, "");
    assert_eq!(c.connection.protocol, UpstreamProtocol::UseClient);
    assert_eq!(c.connection.idle_timeout, Some(Duration::from_secs(2)));
}

fn objects_without_rule() -> Vec<Object> {
    let mut out = Loaded::default();
    weft_api::load_str(
        SERVICE,
        Arc::from(Path::new("test.yaml")),
        &LoadOptions::default(),
        &mut out,
    );
    out.objects
}

const CIRCUIT_BREAKERS: &str = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
  namespace: default
spec:
  host: reviews
  trafficPolicy:
    connectionPool:
      tcp:
        maxConnections: 1
      http:
        http1MaxPendingRequests: 1
        maxRequestsPerConnection: 1
        http2MaxRequests: 0
    portLevelSettings:
    - port:
        number: 9081
      connectionPool:
        http:
          http2MaxRequests: 7
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      connectionPool:
        http:
          maxRetries: 2
          maxConcurrentStreams: 5
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      portLevelSettings:
      - port:
          number: 9080
        connectionPool:
          tcp:
            maxConnections: 3
";

#[test]
fn circuit_breaker_limits_follow_istios_merge() {
    let objects = load(CIRCUIT_BREAKERS);
    let unlimited = Limits::default();
    // No rule: Istio's defaults, every threshold 2^32-1.
    assert_eq!(cluster(&objects_without_rule(), 9080, "").limits, unlimited);
    assert_eq!(unlimited.max_connections, 4_294_967_295);
    assert_eq!(unlimited.max_concurrent_streams, 2_147_483_647);
    // The seed's walkthrough rule; 0 means "unset" (the default), as in Istio.
    let top = cluster(&objects, 9080, "").limits;
    assert_eq!(
        top,
        Limits {
            max_connections: 1,
            max_pending_requests: 1,
            max_requests_per_connection: Some(1),
            ..unlimited
        }
    );
    // The rule's port-level pool replaces its top-level one wholesale.
    let port = cluster(&objects, 9081, "").limits;
    assert_eq!(
        port,
        Limits {
            max_requests: 7,
            ..unlimited
        }
    );
    // A subset's pool replaces the rule's.
    let v1 = cluster(&objects, 9080, "v1").limits;
    assert_eq!(
        v1,
        Limits {
            max_retries: 2,
            max_concurrent_streams: 5,
            ..unlimited
        }
    );
    // A subset's port-level pool beats everything for its port; elsewhere the subset,
    // which sets no pool, falls back to the rule's.
    let v2 = cluster(&objects, 9080, "v2").limits;
    assert_eq!(
        v2,
        Limits {
            max_connections: 3,
            ..unlimited
        }
    );
    assert_eq!(cluster(&objects, 9081, "v2").limits, port);
}

#[test]
fn a_retry_budget_takes_istios_defaults_and_the_subsets_wins() {
    let objects = load(
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
  namespace: default
spec:
  host: reviews
  trafficPolicy:
    retryBudget: {}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      retryBudget:
        percent: 12.5
        minRetryConcurrency: 1
",
    );
    let budget = |c: Arc<Cluster>| {
        c.limits
            .retry_budget
            .map(|b| (b.per_million, b.min_concurrency))
    };
    assert_eq!(budget(cluster(&objects, 9080, "")), Some((200_000, 3)));
    assert_eq!(budget(cluster(&objects, 9080, "v1")), Some((125_000, 1)));
    assert_eq!(budget(cluster(&objects_without_rule(), 9080, "")), None);
}
