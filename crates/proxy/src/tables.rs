//! Compiles the config objects a proxy has into the immutable tables it serves requests
//! from: listeners, virtual hosts with their ordered routes, clusters. A new set of
//! tables replaces the old one in a single step; requests in flight keep theirs.

mod clusters;
mod gateway;
mod http_routes;
mod sidecar;
mod tcp;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::cluster::Cluster;
use crate::registry::{Protocol, Registry};
use crate::route::{HeaderOps, RouteMatch};

pub use gateway::published_port;
pub use sidecar::{InboundPort, OutboundPolicy, OutboundTarget, SidecarTables};
pub(crate) use tcp::sni_score;
pub use tcp::{L4Destination, L4Match, L4Route, L4Routes};

/// What a proxy is: its mode, and the namespace and labels of its workload (gateways are
/// selected by these labels).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProxyIdentity {
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
}

/// Everything a proxy serves from, built from one version of its config.
#[derive(Debug, Default, Serialize)]
pub struct Tables {
    pub version: u64,
    pub listeners: BTreeMap<u16, Listener>,
    pub clusters: BTreeMap<String, Arc<Cluster>>,
    pub registry: Registry,
    /// Config the proxy could not turn into tables, with the reason: rejected alone,
    /// while everything else is served.
    pub rejected: Vec<String>,
    /// What a sidecar needs beyond the per-port HTTP route tables in `listeners`:
    /// service addresses, inbound ports, the outbound policy. `None` for gateways.
    pub sidecar: Option<SidecarTables>,
}

/// A port the proxy listens on and what it serves there: virtual hosts for HTTP, TCP and
/// TLS routes for the other protocols, and (gateways) the servers that terminate TLS.
#[derive(Debug, Serialize)]
pub struct Listener {
    /// The port as the config declares it (routes match on it).
    pub port: u16,
    /// Where a gateway opens it: `port`, or `port` + `--low-port-offset` for a port
    /// below 1024 (80 -> 8080).
    pub published_port: u16,
    pub protocol: Protocol,
    pub virtual_hosts: Vec<VirtualHost>,
    pub l4: L4Routes,
    /// Servers that terminate TLS, picked by SNI (a PASSTHROUGH route in `l4.tls` may
    /// share the port).
    pub tls: Vec<crate::tls::TlsServer>,
}

impl Listener {
    pub fn new(port: u16, protocol: Protocol) -> Listener {
        Listener {
            port,
            published_port: port,
            protocol,
            virtual_hosts: Vec::new(),
            l4: L4Routes::default(),
            tls: Vec::new(),
        }
    }
}

/// The routes of one VirtualService for the hosts it claims on a listener.
#[derive(Debug, Serialize)]
pub struct VirtualHost {
    /// `namespace/name` of the VirtualService (gateways); `host:port`, Istio's name, in
    /// a sidecar's per-port route tables.
    pub name: String,
    /// Lower-case domains, possibly `*` or `*.suffix`.
    pub domains: Vec<String>,
    pub routes: Vec<Route>,
}

/// One compiled HTTP route.
#[derive(Debug, Serialize)]
pub struct Route {
    pub name: String,
    /// Empty: matches every request.
    pub matches: Vec<RouteMatch>,
    pub action: Action,
    pub request_headers: HeaderOps,
    pub response_headers: HeaderOps,
    pub rewrite: Option<Rewrite>,
    pub cors: Option<crate::route::Cors>,
    /// Timeout, retries, faults, mirrors.
    pub policy: crate::resilience::RoutePolicy,
}

/// What a matched route does.
#[derive(Debug, Serialize)]
pub enum Action {
    /// Send to one of these clusters, chosen by weight.
    Forward(Vec<WeightedCluster>),
    Redirect(Redirect),
    Direct {
        status: u16,
        body: String,
    },
    /// A delegate VirtualService's routes, each with the parent's match merged in: the
    /// first that matches is used, else the routes after this one are tried.
    Delegate(Vec<Route>),
}

#[derive(Debug, Serialize)]
pub struct WeightedCluster {
    pub cluster: String,
    pub weight: u32,
    pub request_headers: HeaderOps,
    pub response_headers: HeaderOps,
}

#[derive(Debug, Serialize)]
pub struct Redirect {
    pub status: u16,
    pub scheme: Option<String>,
    pub authority: Option<String>,
    pub port: Option<u16>,
    /// `derivePort`: where the Location's port comes from when `port` is not set.
    pub derive_port: Option<DerivePort>,
    pub path: Option<String>,
}

/// `redirect.derivePort`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DerivePort {
    /// No port: the scheme's default (80 for http, 443 for https).
    ProtocolDefault,
    /// The port the request came in on.
    RequestPort,
}

#[derive(Debug, Serialize)]
pub struct Rewrite {
    pub uri: Option<String>,
    pub authority: Option<String>,
    #[serde(skip)]
    pub uri_regex: Option<(regex::Regex, String)>,
}
