//! Building clusters: a destination's service, port and subset become an Istio-named
//! cluster with its endpoints, load balancer and connection settings, from the
//! DestinationRule's traffic policy as Istio merges it.

use std::collections::BTreeMap;
use std::sync::Arc;

use weft_api::analyze::fqdn;
use weft_api::networking::destination_rule::{
    ConnectionPoolSettings, ConsistentHashLb, H2UpgradePolicy, LoadBalancerSettings,
    OutlierDetection, RetryBudget, SimpleLb, Subset, TrafficPolicy,
};
use weft_api::networking::virtual_service::Destination;
use weft_api::networking::{DestinationRule, VirtualService};
use weft_api::object::Object;

use crate::cluster::breaker;
use crate::cluster::outlier::{DEFAULT_MAX_EJECTION_TIME, OutlierConfig, Threshold};
use crate::cluster::{
    Cluster, ConnectionSettings, CookieSpec, DEFAULT_MAGLEV_TABLE_SIZE, DEFAULT_MIN_RING_SIZE,
    HashKey, HashTable, LbPolicy, Limits, TcpKeepalive, UpstreamEndpoint, UpstreamProtocol,
};
use crate::registry::{Registry, ServicePort};

/// The clusters routes send to, built on first use from the registry and the
/// DestinationRules; and the delegate VirtualServices (those without hosts) that routes
/// may hand requests to, since route compilation needs both.
pub(super) struct Clusters<'a> {
    registry: &'a Registry,
    rules: Vec<(&'a Object, &'a DestinationRule)>,
    delegates: BTreeMap<(&'a str, &'a str), (&'a Object, &'a VirtualService)>,
    pub built: BTreeMap<String, Arc<Cluster>>,
}

impl<'a> Clusters<'a> {
    pub fn new(objects: &'a [Object], registry: &'a Registry) -> Self {
        let mut rules = Vec::new();
        let mut delegates = BTreeMap::new();
        for o in objects {
            match &o.spec {
                weft_api::Spec::DestinationRule(dr) => rules.push((o, dr.as_ref())),
                weft_api::Spec::VirtualService(vs) if vs.hosts.is_empty() => {
                    delegates.insert((o.namespace(), o.name()), (o, vs.as_ref()));
                }
                _ => {}
            }
        }
        Self {
            registry,
            rules,
            delegates,
            built: BTreeMap::new(),
        }
    }

    /// The delegate VirtualService `namespace/name`, if there is one.
    pub fn delegate(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<(&'a Object, &'a VirtualService)> {
        self.delegates.get(&(namespace, name)).copied()
    }

    /// The cluster a destination names from `namespace`, built on first use; its name
    /// follows Istio's even when the service or subset is unknown (requests to it then fail
    /// with `NC`).
    pub fn cluster_for(&mut self, dest: &Destination, namespace: &str) -> String {
        let Some(service) = self.registry.lookup(&dest.host, namespace) else {
            let port = dest.port.map_or(0, |p| p.number);
            return Cluster::name_for(
                u16::try_from(port).unwrap_or(0),
                &dest.subset,
                &fqdn(&dest.host, namespace),
            );
        };
        let wanted = dest.port.and_then(|p| u16::try_from(p.number).ok());
        let Some(port) = service.port(wanted) else {
            return Cluster::name_for(wanted.unwrap_or(0), &dest.subset, &service.host);
        };
        let name = Cluster::name_for(port.number, &dest.subset, &service.host);
        if self.built.contains_key(&name) {
            return name;
        }
        let rule = self
            .rules
            .iter()
            .find(|(o, dr)| fqdn(&dr.host, o.namespace()) == service.host)
            .map(|(_, dr)| *dr);
        let subset = rule.and_then(|dr| dr.subsets.iter().find(|s| s.name == dest.subset));
        if !dest.subset.is_empty() && subset.is_none() {
            return name;
        }
        let labels = subset.map(|s| &s.labels);
        let endpoints: Vec<UpstreamEndpoint> = service
            .endpoints
            .iter()
            .filter(|e| labels.is_none_or(|l| l.iter().all(|(k, v)| e.labels.get(k) == Some(v))))
            .map(|e| UpstreamEndpoint::new(format!("{}:{}", e.address, e.port_for(port))))
            .collect();
        let policy = Policy::merged(rule, subset, port.number);
        let addresses: Vec<&str> = endpoints.iter().map(|e| e.address.as_str()).collect();
        let lb = load_balancer(policy.load_balancer, &addresses);
        let connection = connection_settings(policy.connection_pool, port);
        let mut cluster = Cluster::new(name.clone(), port.protocol, lb, connection, endpoints);
        cluster.outlier = policy.outlier_detection.map(outlier_config);
        cluster.limits = limits(policy.connection_pool);
        cluster.limits.retry_budget = policy.retry_budget.map(retry_budget);
        self.built.insert(name.clone(), Arc::new(cluster));
        name
    }
}

/// The parts of a traffic policy that apply to one cluster.
#[derive(Default, Clone, Copy)]
struct Policy<'p> {
    load_balancer: Option<&'p LoadBalancerSettings>,
    connection_pool: Option<&'p ConnectionPoolSettings>,
    outlier_detection: Option<&'p OutlierDetection>,
    /// Top level only (ports have none): the subset's, else the rule's.
    retry_budget: Option<&'p RetryBudget>,
}

impl<'p> Policy<'p> {
    /// Istio's `MergeTrafficPolicy`: the rule's policy for the port, then each part the
    /// subset's policy sets. At either level, settings for the port replace that level's
    /// top-level settings wholesale (a part they leave out falls back to the default, not
    /// to the top level), so the order is subset port-level > subset > rule port-level >
    /// rule.
    fn merged(rule: Option<&'p DestinationRule>, subset: Option<&'p Subset>, port: u16) -> Self {
        let base = rule
            .and_then(|r| r.traffic_policy.as_ref())
            .map(|tp| Policy::for_port(tp, port))
            .unwrap_or_default();
        let Some(tp) = subset.and_then(|s| s.traffic_policy.as_ref()) else {
            return base;
        };
        let retry_budget = tp.retry_budget.as_ref().or(base.retry_budget);
        if let Some(p) = port_level(tp, port) {
            return Policy {
                load_balancer: p.load_balancer.as_ref(),
                connection_pool: p.connection_pool.as_ref(),
                outlier_detection: p.outlier_detection.as_ref(),
                retry_budget,
            };
        }
        Policy {
            load_balancer: tp.load_balancer.as_ref().or(base.load_balancer),
            connection_pool: tp.connection_pool.as_ref().or(base.connection_pool),
            outlier_detection: tp.outlier_detection.as_ref().or(base.outlier_detection),
            retry_budget,
        }
    }

    fn for_port(tp: &'p TrafficPolicy, port: u16) -> Self {
        match port_level(tp, port) {
            Some(p) => Policy {
                load_balancer: p.load_balancer.as_ref(),
                connection_pool: p.connection_pool.as_ref(),
                outlier_detection: p.outlier_detection.as_ref(),
                retry_budget: tp.retry_budget.as_ref(),
            },
            None => Policy {
                load_balancer: tp.load_balancer.as_ref(),
                connection_pool: tp.connection_pool.as_ref(),
                outlier_detection: tp.outlier_detection.as_ref(),
                retry_budget: tp.retry_budget.as_ref(),
            },
        }
    }
}

fn port_level(
    tp: &TrafficPolicy,
    port: u16,
) -> Option<&weft_api::networking::destination_rule::PortTrafficPolicy> {
    tp.port_level_settings
        .iter()
        .find(|p| p.port.is_some_and(|sel| sel.number == u32::from(port)))
}

/// Istio's `applyOutlierDetection` and Envoy's defaults: `consecutive5xxErrors` and
/// `consecutiveGatewayErrors` are enforced when above 0 (0 turns them off); unset, 5xx
/// runs of 5 are enforced and gateway runs of 5 only counted. The deprecated
/// `consecutiveErrors` means gateway errors, enforced, with 5xx ejection off (the
/// mapping of the last Istio that read it); the newer fields override it. Local-origin
/// failures count apart only with `splitExternalLocalOriginErrors` (5 in a row unless
/// `consecutiveLocalOriginFailures` says otherwise). `maxEjectionPercent` 0 means Envoy's
/// 10%; `minHealthPercent` is the panic threshold, 0 (never panic) unless set.
fn outlier_config(od: &OutlierDetection) -> OutlierConfig {
    let mut out = OutlierConfig::default();
    let enforced = |n: u32| Threshold {
        consecutive: n,
        enforcing: n > 0,
    };
    let positive = |n: i32| u32::try_from(n).ok().filter(|n| *n > 0);
    if let Some(n) = od.consecutive_errors.and_then(positive) {
        out.consecutive_gateway = enforced(n);
        out.consecutive_5xx.enforcing = false;
    }
    if let Some(n) = od.consecutive_5xx_errors {
        out.consecutive_5xx = enforced(n);
    }
    if let Some(n) = od.consecutive_gateway_errors {
        out.consecutive_gateway = enforced(n);
    }
    if od.split_external_local_origin_errors == Some(true) {
        out.split_external_local_origin_errors = true;
        if let Some(n) = od.consecutive_local_origin_failures.filter(|n| *n > 0) {
            out.consecutive_local_origin = enforced(n);
        }
    }
    if let Some(d) = od.interval.map(|d| d.get()).filter(|d| !d.is_zero()) {
        out.interval = d;
    }
    if let Some(d) = od
        .base_ejection_time
        .map(|d| d.get())
        .filter(|d| !d.is_zero())
    {
        out.base_ejection_time = d;
    }
    out.max_ejection_time = DEFAULT_MAX_EJECTION_TIME.max(out.base_ejection_time);
    if let Some(p) = od.max_ejection_percent.and_then(positive) {
        out.max_ejection_percent = p.min(100);
    }
    out.min_health_percent = od
        .min_health_percent
        .and_then(|p| u32::try_from(p).ok())
        .map_or(0, |p| p.min(100));
    out
}

/// The load balancer `loadBalancer` asks for; LEAST_REQUEST when it says nothing.
fn load_balancer(lb: Option<&LoadBalancerSettings>, addresses: &[&str]) -> LbPolicy {
    if let Some(ch) = lb.and_then(|lb| lb.consistent_hash.as_ref())
        && let Some(key) = hash_key(ch)
    {
        return LbPolicy::ConsistentHash {
            key,
            table: hash_table(ch, addresses),
        };
    }
    match lb.and_then(|lb| lb.simple) {
        Some(SimpleLb::RoundRobin) => LbPolicy::RoundRobin,
        Some(SimpleLb::Random) => LbPolicy::Random,
        Some(SimpleLb::Passthrough) => LbPolicy::Passthrough,
        _ => LbPolicy::LeastRequest,
    }
}

fn hash_key(ch: &ConsistentHashLb) -> Option<HashKey> {
    if let Some(h) = ch.http_header_name.as_ref().filter(|h| !h.is_empty()) {
        return Some(HashKey::Header(h.to_ascii_lowercase()));
    }
    if let Some(c) = &ch.http_cookie {
        return Some(HashKey::Cookie(CookieSpec {
            name: c.name.clone(),
            path: c.path.clone().unwrap_or_default(),
            ttl: c.ttl.map(|d| d.get()),
            attributes: c
                .attributes
                .iter()
                .map(|a| (a.name.clone(), a.value.clone().unwrap_or_default()))
                .collect(),
        }));
    }
    if ch.use_source_ip == Some(true) {
        return Some(HashKey::SourceIp);
    }
    ch.http_query_parameter_name
        .as_ref()
        .filter(|q| !q.is_empty())
        .map(|q| HashKey::QueryParameter(q.clone()))
}

/// Istio: Maglev when `maglev` is set, else a ring (`ringHash.minimumRingSize`, else the
/// deprecated top-level `minimumRingSize`, else Envoy's 1024).
fn hash_table(ch: &ConsistentHashLb, addresses: &[&str]) -> HashTable {
    if let Some(m) = &ch.maglev {
        let size = m.table_size.filter(|s| *s != 0);
        return HashTable::maglev(addresses, size.unwrap_or(DEFAULT_MAGLEV_TABLE_SIZE));
    }
    let min = ch
        .ring_hash
        .and_then(|r| r.minimum_ring_size)
        .or(ch.minimum_ring_size)
        .filter(|s| *s != 0)
        .unwrap_or(DEFAULT_MIN_RING_SIZE);
    HashTable::ring(addresses, min)
}

/// Istio's connection settings: HTTP/2 for `http2`/`grpc` ports or `h2UpgradePolicy:
/// UPGRADE`, the client's own version with `useClientProtocol` (which wins); the connect
/// timeout, TCP keep-alive and idle timeout (`http.idleTimeout`, else `tcp.idleTimeout`).
fn connection_settings(
    pool: Option<&ConnectionPoolSettings>,
    port: &ServicePort,
) -> ConnectionSettings {
    let mut out = ConnectionSettings::default();
    let http = pool.and_then(|p| p.http.as_ref());
    let tcp = pool.and_then(|p| p.tcp.as_ref());
    let h2_port = matches!(
        port.protocol,
        crate::registry::Protocol::Http2 | crate::registry::Protocol::Grpc
    );
    let upgrade = http.and_then(|h| h.h2_upgrade_policy) == Some(H2UpgradePolicy::Upgrade);
    out.protocol = if http.and_then(|h| h.use_client_protocol) == Some(true) {
        UpstreamProtocol::UseClient
    } else if h2_port || upgrade {
        UpstreamProtocol::Http2
    } else {
        UpstreamProtocol::Http1
    };
    // Envoy needs a positive connect timeout; Istio refuses zero.
    if let Some(t) = tcp
        .and_then(|t| t.connect_timeout)
        .filter(|t| !t.get().is_zero())
    {
        out.connect_timeout = t.get();
    }
    if let Some(k) = tcp.and_then(|t| t.tcp_keepalive) {
        out.tcp_keepalive = Some(TcpKeepalive {
            time: k.time.map(|d| d.get()),
            interval: k.interval.map(|d| d.get()),
            probes: k.probes,
        });
    }
    let idle = http
        .and_then(|h| h.idle_timeout)
        .or(tcp.and_then(|t| t.idle_timeout));
    if let Some(idle) = idle {
        out.idle_timeout = Some(idle.get()).filter(|d| !d.is_zero());
    }
    if let Some(idle) = tcp.and_then(|t| t.idle_timeout) {
        out.tcp_idle_timeout = Some(idle.get()).filter(|d| !d.is_zero());
    }
    out
}

/// Istio's circuit-breaker thresholds (`applyConnectionPool`): each field the pool sets
/// to more than 0 replaces its default (Istio cannot tell 0 from unset, so 0 means the
/// default too).
fn limits(pool: Option<&ConnectionPoolSettings>) -> Limits {
    let mut out = Limits::default();
    let set = |v: Option<i32>| v.and_then(|v| u64::try_from(v).ok()).filter(|v| *v > 0);
    if let Some(tcp) = pool.and_then(|p| p.tcp.as_ref())
        && let Some(n) = set(tcp.max_connections)
    {
        out.max_connections = n;
    }
    let Some(http) = pool.and_then(|p| p.http.as_ref()) else {
        return out;
    };
    if let Some(n) = set(http.http1_max_pending_requests) {
        out.max_pending_requests = n;
    }
    if let Some(n) = set(http.http2_max_requests) {
        out.max_requests = n;
    }
    if let Some(n) = set(http.max_retries) {
        out.max_retries = n;
    }
    if let Some(n) = set(http.max_requests_per_connection) {
        out.max_requests_per_connection = Some(n);
    }
    if let Some(n) = set(http.max_concurrent_streams) {
        out.max_concurrent_streams = n;
    }
    out
}

/// Istio's `retryBudget`: `percent` (default 20) of the requests active and pending may be
/// retries, never fewer than `minRetryConcurrency` (default 3).
fn retry_budget(b: &RetryBudget) -> breaker::RetryBudget {
    let percent = b.percent.unwrap_or(20.0).clamp(0.0, 100.0);
    breaker::RetryBudget {
        per_million: (percent * 10_000.0).round() as u64,
        min_concurrency: u64::from(b.min_retry_concurrency.unwrap_or(3)),
    }
}

#[cfg(test)]
mod outlier_tests;
#[cfg(test)]
mod tests;
