//! `VirtualService` (networking.istio.io v1alpha3, v1beta1 and v1 share it): how requests
//! for a set of hosts are matched and routed. This file is the typed model; Istio's
//! validation rules live in the `rules`, `http`, `l4`, `names` and `analysis` submodules.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::common::{Percent, PortSelector, StringMatch};
use crate::path::FieldPath;
use crate::validate::{Duration, Validate, Validator};

mod analysis;
mod http;
pub use http::GRPC_STATUSES;
mod l4;
mod names;
mod rules;

/// The spec of a `VirtualService`: the hosts it routes, where it applies, and its ordered
/// HTTP, TLS and TCP rules.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VirtualService {
    /// The hosts whose traffic these rules route; empty for a delegate VirtualService.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Gateways (`name`, `namespace/name`) and/or `mesh` (every sidecar) that apply the rules.
    #[serde(default)]
    pub gateways: Vec<String>,
    /// Ordered HTTP rules; the first that matches a request is used.
    #[serde(default)]
    pub http: Vec<HttpRoute>,
    /// Ordered rules for TLS traffic that is not terminated (routed by SNI).
    #[serde(default)]
    pub tls: Vec<TlsRoute>,
    /// Ordered rules for opaque TCP traffic.
    #[serde(default)]
    pub tcp: Vec<TcpRoute>,
    /// Namespaces that see this VirtualService (`.` its own, `*` all); all when empty.
    #[serde(default)]
    pub export_to: Vec<String>,
}

/// `Destination`: a service (and optionally a subset and port) that traffic is sent to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Destination {
    /// A service host from the registry (`reviews`, `reviews.prod.svc.cluster.local`).
    #[serde(default)]
    pub host: String,
    /// A subset declared by a DestinationRule of that host.
    #[serde(default)]
    pub subset: String,
    /// The service port; may be left out when the service has a single port.
    pub port: Option<PortSelector>,
}

/// `HTTPRoute`: match conditions and what to do with matching HTTP/1.1, HTTP/2 and gRPC
/// requests.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRoute {
    /// A name for debugging and access logs.
    #[serde(default)]
    pub name: String,
    /// Conditions, ORed; the fields of one condition are ANDed. None matches every request.
    #[serde(default, rename = "match")]
    pub matches: Vec<HttpMatchRequest>,
    /// Weighted destinations to forward to.
    #[serde(default)]
    pub route: Vec<HttpRouteDestination>,
    /// Answer with an HTTP redirect instead of forwarding.
    pub redirect: Option<HttpRedirect>,
    /// Answer with a fixed response instead of forwarding.
    pub direct_response: Option<HttpDirectResponse>,
    /// Hand the request to the routes of another (delegate) VirtualService.
    pub delegate: Option<Delegate>,
    /// URI and authority rewrites done before forwarding.
    pub rewrite: Option<HttpRewrite>,
    /// Timeout for the whole request, retries included; none when absent.
    pub timeout: Option<Duration>,
    /// Retry policy.
    pub retries: Option<HttpRetry>,
    /// Faults (delays, aborts) injected on the client side.
    pub fault: Option<HttpFaultInjection>,
    /// Mirror (shadow) the requests to this destination as well.
    pub mirror: Option<Destination>,
    /// Deprecated integer share of requests mirrored by `mirror`.
    #[serde(alias = "mirror_percent")]
    pub mirror_percent: Option<u32>,
    /// Share of requests mirrored by `mirror` (all when absent).
    pub mirror_percentage: Option<Percent>,
    /// Several mirror destinations, each with its own share.
    #[serde(default)]
    pub mirrors: Vec<HttpMirrorPolicy>,
    /// Cross-origin resource sharing policy.
    pub cors_policy: Option<CorsPolicy>,
    /// Header changes for every destination of the rule.
    pub headers: Option<Headers>,
}

/// `HTTPMatchRequest`: conditions on one request, all of which must hold.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpMatchRequest {
    /// A name, joined to the route's name in access logs.
    #[serde(default)]
    pub name: String,
    /// The URI path.
    pub uri: Option<StringMatch>,
    /// The URI scheme (`http`, `https`).
    pub scheme: Option<StringMatch>,
    /// The HTTP method.
    pub method: Option<StringMatch>,
    /// The authority (Host) header.
    pub authority: Option<StringMatch>,
    /// Request headers (lower-case names); an empty match requires only presence.
    /// `@request.auth.claims.<claim>` keys match JWT claims (gateways only).
    #[serde(default)]
    pub headers: BTreeMap<String, StringMatch>,
    /// Headers that must not match (or, with an empty match, must be absent).
    #[serde(default)]
    pub without_headers: BTreeMap<String, StringMatch>,
    /// Query parameters.
    #[serde(default)]
    pub query_params: BTreeMap<String, StringMatch>,
    /// The port the request was addressed to.
    pub port: Option<u32>,
    /// Labels of the calling workload.
    #[serde(default)]
    pub source_labels: BTreeMap<String, String>,
    /// Gateways this condition applies to (overrides the VirtualService's `gateways`).
    #[serde(default)]
    pub gateways: Vec<String>,
    /// Namespace of the calling workload.
    #[serde(default)]
    pub source_namespace: String,
    /// Match the URI case-insensitively.
    #[serde(default)]
    pub ignore_uri_case: bool,
    /// Prefix of the statistics generated for this match.
    #[serde(default)]
    pub stat_prefix: String,
}

/// `HTTPRouteDestination`: a destination with its weight and header changes.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRouteDestination {
    /// Where to send the request.
    pub destination: Option<Destination>,
    /// Relative share of the traffic (Istio does not require weights to sum to 100).
    #[serde(default)]
    pub weight: i32,
    /// Header changes for this destination only.
    pub headers: Option<Headers>,
}

/// `RouteDestination`: a destination of a TCP or TLS route, with its weight.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteDestination {
    /// Where to send the connection.
    pub destination: Option<Destination>,
    /// Relative share of the connections.
    #[serde(default)]
    pub weight: i32,
}

/// `Headers`: changes to request and response headers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Headers {
    /// Changes made before the request is forwarded.
    pub request: Option<HeaderOperations>,
    /// Changes made before the response is returned.
    pub response: Option<HeaderOperations>,
}

/// `Headers.HeaderOperations`: overwrite, append and remove headers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderOperations {
    /// Overwrite these headers.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Append these values (comma-separated lists).
    #[serde(default)]
    pub add: BTreeMap<String, String>,
    /// Remove these headers.
    #[serde(default)]
    pub remove: Vec<String>,
}

/// `Delegate`: the VirtualService whose HTTP routes a root route hands requests to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Delegate {
    /// Name of the delegate VirtualService.
    #[serde(default)]
    pub name: String,
    /// Its namespace; the root's own when empty.
    #[serde(default)]
    pub namespace: String,
}

/// `HTTPRedirect`: answer with a 3xx redirect.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRedirect {
    /// Replace the path of the URL.
    #[serde(default)]
    pub uri: String,
    /// Replace the authority (host[:port]) of the URL.
    #[serde(default)]
    pub authority: String,
    /// Replace the port of the URL.
    pub port: Option<u32>,
    /// Take the port from the protocol's default or from the request.
    pub derive_port: Option<RedirectPortSelection>,
    /// Replace the scheme (`http` or `https`).
    #[serde(default)]
    pub scheme: String,
    /// The status code (301 when unset).
    #[serde(default)]
    pub redirect_code: u32,
}

/// `HTTPRedirect.RedirectPortSelection`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum RedirectPortSelection {
    /// 80 for http, 443 for https.
    #[default]
    #[serde(rename = "FROM_PROTOCOL_DEFAULT")]
    FromProtocolDefault,
    /// The port the request came in on.
    #[serde(rename = "FROM_REQUEST_PORT")]
    FromRequestPort,
}

/// `HTTPDirectResponse`: answer with a fixed status and body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpDirectResponse {
    /// The HTTP status code.
    #[serde(default)]
    pub status: u32,
    /// The body, if any.
    pub body: Option<HttpBody>,
}

/// `HTTPBody`: a text or base64-encoded binary body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpBody {
    /// The body as text.
    pub string: Option<String>,
    /// The body as base64-encoded bytes.
    pub bytes: Option<String>,
}

/// `HTTPRewrite`: change the request before it is forwarded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRewrite {
    /// Replace the matched path or prefix.
    #[serde(default)]
    pub uri: String,
    /// Replace the authority (Host) header.
    #[serde(default)]
    pub authority: String,
    /// Rewrite the path with a regex.
    pub uri_regex_rewrite: Option<RegexRewrite>,
}

/// `RegexRewrite`: a regex over the path and its replacement (`\1` for groups).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegexRewrite {
    /// RE2 regex matched against the path.
    #[serde(rename = "match", default)]
    pub regex: String,
    /// The replacement.
    #[serde(default)]
    pub rewrite: String,
}

/// `HTTPRetry`: how failed requests are retried.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRetry {
    /// Number of retries; 0 turns retries off.
    #[serde(default)]
    pub attempts: i32,
    /// Timeout of each attempt.
    pub per_try_timeout: Option<Duration>,
    /// Comma-separated Envoy retry conditions and HTTP status codes.
    #[serde(default)]
    pub retry_on: String,
    /// Whether retries may go to other localities.
    pub retry_remote_localities: Option<bool>,
    /// Whether retries avoid hosts already tried (Istio's default: true).
    pub retry_ignore_previous_hosts: Option<bool>,
    /// Base interval between retries (Envoy's default: 25ms).
    pub backoff: Option<Duration>,
}

/// `HTTPFaultInjection`: faults injected into matching requests.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpFaultInjection {
    /// Delay requests before forwarding them.
    pub delay: Option<FaultDelay>,
    /// Answer requests with an error instead of forwarding them.
    pub abort: Option<FaultAbort>,
}

/// `HTTPFaultInjection.Delay`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultDelay {
    /// How long to delay.
    pub fixed_delay: Option<Duration>,
    /// Exponential delay (in the API, but refused by Istio as not supported).
    pub exponential_delay: Option<Duration>,
    /// Share of requests delayed; none when absent.
    pub percentage: Option<Percent>,
    /// Deprecated integer share of requests delayed.
    pub percent: Option<i32>,
}

/// `HTTPFaultInjection.Abort`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultAbort {
    /// HTTP status to answer with.
    pub http_status: Option<i32>,
    /// gRPC status name to answer with (`UNAVAILABLE`).
    pub grpc_status: Option<String>,
    /// HTTP/2 error (in the API, but refused by Istio as not supported).
    pub http2_error: Option<String>,
    /// Share of requests aborted; none when absent.
    pub percentage: Option<Percent>,
    /// Istio 1.0's integer share, since removed from the API; read as `percentage`.
    pub percent: Option<i32>,
}

/// `HTTPMirrorPolicy`: one mirror destination and its share of requests.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpMirrorPolicy {
    /// Where the copies go.
    pub destination: Option<Destination>,
    /// Share of requests mirrored (all when absent).
    pub percentage: Option<Percent>,
}

/// `CorsPolicy`: cross-origin resource sharing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CorsPolicy {
    /// Origins allowed to make requests.
    #[serde(default)]
    pub allow_origins: Vec<StringMatch>,
    /// Deprecated exact origins; replaced by `allowOrigins`.
    #[serde(default)]
    pub allow_origin: Vec<String>,
    /// Methods allowed (`Access-Control-Allow-Methods`).
    #[serde(default)]
    pub allow_methods: Vec<String>,
    /// Request headers allowed (`Access-Control-Allow-Headers`).
    #[serde(default)]
    pub allow_headers: Vec<String>,
    /// Response headers browsers may read (`Access-Control-Expose-Headers`).
    #[serde(default)]
    pub expose_headers: Vec<String>,
    /// How long preflight results may be cached.
    pub max_age: Option<Duration>,
    /// Whether credentials are allowed.
    pub allow_credentials: Option<bool>,
    /// What to do with preflight requests whose origin does not match.
    pub unmatched_preflights: Option<UnmatchedPreflights>,
}

/// `CorsPolicy.UnmatchedPreflights`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum UnmatchedPreflights {
    /// Istio's default (forward).
    #[default]
    #[serde(rename = "UNSPECIFIED")]
    Unspecified,
    /// Forward them to the upstream.
    #[serde(rename = "FORWARD")]
    Forward,
    /// Answer them without CORS headers.
    #[serde(rename = "IGNORE")]
    Ignore,
}

/// `TLSRoute`: routing of TLS connections that are not terminated, by SNI.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsRoute {
    /// Conditions, ORed; at least one is required.
    #[serde(default, rename = "match")]
    pub matches: Vec<TlsMatchAttributes>,
    /// Weighted destinations.
    #[serde(default)]
    pub route: Vec<RouteDestination>,
}

/// `TLSMatchAttributes`: conditions on a TLS connection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsMatchAttributes {
    /// SNI values to match; each must be covered by the VirtualService's hosts.
    #[serde(default)]
    pub sni_hosts: Vec<String>,
    /// Destination IPs or CIDR blocks.
    #[serde(default)]
    pub destination_subnets: Vec<String>,
    /// Destination port.
    pub port: Option<u32>,
    /// Labels of the calling workload.
    #[serde(default)]
    pub source_labels: BTreeMap<String, String>,
    /// Gateways this condition applies to.
    #[serde(default)]
    pub gateways: Vec<String>,
    /// Namespace of the calling workload.
    #[serde(default)]
    pub source_namespace: String,
}

/// `TCPRoute`: routing of opaque TCP connections.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpRoute {
    /// Conditions, ORed; none matches every connection.
    #[serde(default, rename = "match")]
    pub matches: Vec<L4MatchAttributes>,
    /// Weighted destinations.
    #[serde(default)]
    pub route: Vec<RouteDestination>,
}

/// `L4MatchAttributes`: conditions on a TCP connection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct L4MatchAttributes {
    /// Destination IPs or CIDR blocks.
    #[serde(default)]
    pub destination_subnets: Vec<String>,
    /// Destination port.
    pub port: Option<u32>,
    /// Labels of the calling workload.
    #[serde(default)]
    pub source_labels: BTreeMap<String, String>,
    /// Gateways this condition applies to.
    #[serde(default)]
    pub gateways: Vec<String>,
    /// Namespace of the calling workload.
    #[serde(default)]
    pub source_namespace: String,
    /// Source IP or CIDR block.
    #[serde(default)]
    pub source_subnet: String,
}

impl Validate for VirtualService {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        rules::virtual_service(self, at, v);
    }
}

impl Validate for Destination {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        rules::destination(self, at, v);
    }
}

#[cfg(test)]
mod tests;
