//! The traffic policy of a DestinationRule, of one of its subsets or of one port: load
//! balancing, connection-pool limits, outlier detection, client TLS, tunnelling and PROXY
//! protocol. The proxy reads these types as they are; the rules are in `traffic_rules`.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::common::PortSelector;
use crate::validate::Duration;

/// `trafficPolicy`: the policies applied to connections and requests to a destination.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrafficPolicy {
    pub load_balancer: Option<LoadBalancerSettings>,
    pub connection_pool: Option<ConnectionPoolSettings>,
    pub outlier_detection: Option<OutlierDetection>,
    pub tls: Option<ClientTlsSettings>,
    /// Overrides for single ports; a port's settings replace the top-level ones wholesale.
    #[serde(default)]
    pub port_level_settings: Vec<PortTrafficPolicy>,
    pub tunnel: Option<TunnelSettings>,
    pub proxy_protocol: Option<ProxyProtocol>,
    pub retry_budget: Option<RetryBudget>,
}

/// `portLevelSettings[]`: a traffic policy for one port of the destination.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortTrafficPolicy {
    pub port: Option<PortSelector>,
    pub load_balancer: Option<LoadBalancerSettings>,
    pub connection_pool: Option<ConnectionPoolSettings>,
    pub outlier_detection: Option<OutlierDetection>,
    pub tls: Option<ClientTlsSettings>,
}

/// `loadBalancer`: a simple algorithm or consistent hashing, plus locality and warm-up.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadBalancerSettings {
    pub simple: Option<SimpleLb>,
    pub consistent_hash: Option<ConsistentHashLb>,
    pub locality_lb_setting: Option<LocalityLbSetting>,
    /// Slow start: new endpoints get a growing share of traffic over this long.
    pub warmup_duration_secs: Option<Duration>,
    pub warmup: Option<WarmupConfiguration>,
}

/// `loadBalancer.simple`: the load-balancing algorithm.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum SimpleLb {
    /// Istio's default (LEAST_REQUEST today).
    #[default]
    #[serde(rename = "UNSPECIFIED")]
    Unspecified,
    /// Deprecated alias of LEAST_REQUEST.
    #[serde(rename = "LEAST_CONN")]
    LeastConn,
    #[serde(rename = "RANDOM")]
    Random,
    /// Forward to the address the caller asked for, without load balancing.
    #[serde(rename = "PASSTHROUGH")]
    Passthrough,
    #[serde(rename = "ROUND_ROBIN")]
    RoundRobin,
    #[serde(rename = "LEAST_REQUEST")]
    LeastRequest,
}

/// `consistentHash`: sticky sessions by a hash of the request or the caller.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConsistentHashLb {
    pub http_header_name: Option<String>,
    pub http_cookie: Option<HttpCookie>,
    pub use_source_ip: Option<bool>,
    pub http_query_parameter_name: Option<String>,
    pub ring_hash: Option<RingHash>,
    pub maglev: Option<Maglev>,
    /// Deprecated: use `ringHash.minimumRingSize`.
    pub minimum_ring_size: Option<u64>,
}

/// `consistentHash.httpCookie`: hash on a cookie, which the proxy sets when absent.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpCookie {
    #[serde(default)]
    pub name: String,
    pub path: Option<String>,
    /// Lifetime of the generated cookie; `0s` makes it a session cookie.
    pub ttl: Option<Duration>,
    #[serde(default)]
    pub attributes: Vec<CookieAttribute>,
}

/// `httpCookie.attributes[]`: an extra attribute of the generated cookie.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CookieAttribute {
    #[serde(default)]
    pub name: String,
    pub value: Option<String>,
}

/// `consistentHash.ringHash`: the ring-hash algorithm.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RingHash {
    pub minimum_ring_size: Option<u64>,
}

/// `consistentHash.maglev`: the Maglev algorithm.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Maglev {
    /// A prime below 5000011.
    pub table_size: Option<u64>,
}

/// `localityLbSetting`: prefer nearby endpoints, spread by weights or fail over by region.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalityLbSetting {
    #[serde(default)]
    pub distribute: Vec<LocalityDistribute>,
    #[serde(default)]
    pub failover: Vec<LocalityFailover>,
    /// Labels (e.g. `topology.istio.io/network`) ordering endpoints for failover.
    #[serde(default)]
    pub failover_priority: Vec<String>,
    pub enabled: Option<bool>,
}

/// `distribute[]`: from one locality, the share of traffic each locality receives.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalityDistribute {
    /// `region/zone/subzone`, with an optional trailing `*`.
    #[serde(default)]
    pub from: String,
    /// Locality to weight (percent); the weights add up to 100.
    #[serde(default)]
    pub to: BTreeMap<String, u32>,
}

/// `failover[]`: the region to use when a region's endpoints are unhealthy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalityFailover {
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
}

/// `warmup`: slow start for new endpoints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WarmupConfiguration {
    pub duration: Option<Duration>,
    /// The share of traffic (percent) a new endpoint starts with.
    pub minimum_percent: Option<f64>,
    /// How fast traffic ramps up (1 is linear).
    pub aggression: Option<f64>,
}

/// `connectionPool`: limits on connections and requests to each endpoint (circuit breaking).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectionPoolSettings {
    pub tcp: Option<TcpSettings>,
    pub http: Option<HttpSettings>,
}

/// `connectionPool.tcp`: settings common to TCP and HTTP connections.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpSettings {
    pub max_connections: Option<i32>,
    pub connect_timeout: Option<Duration>,
    pub tcp_keepalive: Option<TcpKeepalive>,
    pub max_connection_duration: Option<Duration>,
    pub idle_timeout: Option<Duration>,
}

/// `tcp.tcpKeepalive`: SO_KEEPALIVE probes on upstream sockets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpKeepalive {
    pub probes: Option<u32>,
    pub time: Option<Duration>,
    pub interval: Option<Duration>,
}

/// `connectionPool.http`: HTTP/1.1 and HTTP/2 request limits.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpSettings {
    /// Requests queued while waiting for a connection.
    #[serde(rename = "http1MaxPendingRequests")]
    pub http1_max_pending_requests: Option<i32>,
    /// Requests in flight to the destination.
    #[serde(rename = "http2MaxRequests")]
    pub http2_max_requests: Option<i32>,
    /// 1 disables keep-alive.
    pub max_requests_per_connection: Option<i32>,
    /// Retries outstanding to the whole cluster at once.
    pub max_retries: Option<i32>,
    pub idle_timeout: Option<Duration>,
    #[serde(rename = "h2UpgradePolicy")]
    pub h2_upgrade_policy: Option<H2UpgradePolicy>,
    pub use_client_protocol: Option<bool>,
    pub max_concurrent_streams: Option<i32>,
    #[serde(rename = "http2KeepAlive")]
    pub http2_keep_alive: Option<Http2KeepAlive>,
}

/// `http.h2UpgradePolicy`: whether HTTP/1.1 connections are upgraded to HTTP/2.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum H2UpgradePolicy {
    /// The mesh-wide default.
    #[default]
    #[serde(rename = "DEFAULT")]
    Default,
    #[serde(rename = "DO_NOT_UPGRADE")]
    DoNotUpgrade,
    #[serde(rename = "UPGRADE")]
    Upgrade,
}

/// `http.http2KeepAlive`: HTTP/2 PING keep-alives on upstream connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Http2KeepAlive {
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
}

/// `outlierDetection`: passive health checking that ejects failing endpoints.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutlierDetection {
    /// Whether local-origin failures (resets, timeouts) are counted apart from upstream errors.
    pub split_external_local_origin_errors: Option<bool>,
    pub consecutive_local_origin_failures: Option<u32>,
    /// 502, 503 and 504 responses (and connection failures) before ejection.
    pub consecutive_gateway_errors: Option<u32>,
    /// 5xx responses (and connection failures) before ejection.
    #[serde(rename = "consecutive5xxErrors")]
    pub consecutive_5xx_errors: Option<u32>,
    /// Deprecated: use `consecutive5xxErrors` or `consecutiveGatewayErrors`.
    pub consecutive_errors: Option<i32>,
    pub interval: Option<Duration>,
    pub base_ejection_time: Option<Duration>,
    pub max_ejection_percent: Option<i32>,
    pub min_health_percent: Option<i32>,
}

/// `tls`: how the proxy secures connections to the destination.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientTlsSettings {
    pub mode: Option<ClientTlsMode>,
    /// A file path; required for MUTUAL unless `credentialName` is set.
    pub client_certificate: Option<String>,
    pub private_key: Option<String>,
    pub ca_certificates: Option<String>,
    /// A Kubernetes secret holding the client key, certificate and CA (egress gateways).
    pub credential_name: Option<String>,
    #[serde(default)]
    pub subject_alt_names: Vec<String>,
    pub sni: Option<String>,
    pub insecure_skip_verify: Option<bool>,
    pub ca_crl: Option<String>,
}

/// `tls.mode` of a DestinationRule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum ClientTlsMode {
    /// Plain text.
    #[default]
    #[serde(rename = "DISABLE")]
    Disable,
    /// Originate TLS, verifying the server.
    #[serde(rename = "SIMPLE")]
    Simple,
    /// Originate mutual TLS with the given client certificate.
    #[serde(rename = "MUTUAL")]
    Mutual,
    /// Mutual TLS with the mesh's own certificates.
    #[serde(rename = "ISTIO_MUTUAL")]
    IstioMutual,
}

/// `tunnel`: carry TCP over an HTTP CONNECT or POST tunnel through a proxy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TunnelSettings {
    /// `CONNECT` (the default) or `POST`.
    pub protocol: Option<String>,
    #[serde(default)]
    pub target_host: String,
    #[serde(default)]
    pub target_port: u32,
}

/// `proxyProtocol`: send a PROXY protocol header upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyProtocol {
    pub version: Option<ProxyProtocolVersion>,
}

/// `proxyProtocol.version`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum ProxyProtocolVersion {
    #[default]
    V1,
    V2,
}

/// `retryBudget`: caps concurrent retries to a share of the active requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryBudget {
    /// Percent of active requests that may be retries (default 20).
    pub percent: Option<f64>,
    pub min_retry_concurrency: Option<u32>,
}
