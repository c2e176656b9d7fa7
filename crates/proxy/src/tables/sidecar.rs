//! Sidecar mode: what the outbound (15001) and inbound (15006) capture listeners look up.
//! Outbound, a connection's original destination names a service by its address and port;
//! HTTP is then routed by Host through a route table per port, as Istio's `0.0.0.0_PORT`
//! listeners do, with the VirtualServices bound to the mesh; opaque TCP by the `tcp` or
//! `tls` routes of that service port's VirtualService. Inbound, the destination
//! port's declared protocol decides whether requests are parsed.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use ipnet::IpNet;
use serde::Serialize;
use weft_api::Spec;
use weft_api::analyze::{fqdn, host_matches};
use weft_api::common::PortSelector;
use weft_api::networking::sidecar::OutboundMode;
use weft_api::networking::virtual_service::Destination;
use weft_api::networking::{Sidecar, VirtualService};
use weft_api::object::Object;

use super::clusters::Clusters;
use super::http_routes::{RouteContext, compile_route};
use super::tcp::{L4Context, compile_tcp, compile_tls};
use super::{Action, Listener, ProxyIdentity, Route, Tables, VirtualHost, WeightedCluster};
use super::{L4Destination, L4Route, L4Routes};
use crate::registry::{Protocol, Registry, Service, ServicePort};

/// Istio's root namespace: a Sidecar there without a selector is the mesh-wide default.
const ROOT_NAMESPACE: &str = "istio-system";

/// What happens to outbound traffic for destinations outside the registry
/// (`outboundTrafficPolicy.mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub enum OutboundPolicy {
    /// Pass it through to the address the application dialled (Istio's default).
    #[default]
    AllowAny,
    /// Refuse it: 502 with flag `NR` for HTTP, a closed connection for TCP.
    RegistryOnly,
}

impl From<OutboundMode> for OutboundPolicy {
    fn from(mode: OutboundMode) -> Self {
        match mode {
            OutboundMode::AllowAny => OutboundPolicy::AllowAny,
            OutboundMode::RegistryOnly => OutboundPolicy::RegistryOnly,
        }
    }
}

/// The service port an outbound connection's original destination names.
#[derive(Debug, Clone, Serialize)]
pub struct OutboundTarget {
    pub service: String,
    pub port: u16,
    pub protocol: Protocol,
    /// No protocol declared: sniff the first bytes.
    pub detect: bool,
    /// The service's default cluster (`outbound|PORT||HOST`), where opaque TCP goes.
    pub cluster: String,
}

/// A ServiceEntry address range (`addresses: [10.1.0.0/16]`) and what it names.
#[derive(Debug, Clone, Serialize)]
pub struct OutboundRange {
    pub range: IpNet,
    pub target: OutboundTarget,
}

/// How a workload's port speaks, as the services selecting it declare.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct InboundPort {
    pub protocol: Protocol,
    pub detect: bool,
}

/// The sidecar-only part of the tables.
#[derive(Debug, Default, Serialize)]
pub struct SidecarTables {
    pub outbound_policy: OutboundPolicy,
    /// `--outbound-policy` or the Sidecar resource the policy came from.
    pub policy_source: String,
    /// Service address and port -> the service port there.
    pub outbound: BTreeMap<SocketAddr, OutboundTarget>,
    /// Address ranges, checked (longest first) when no single address matches.
    pub outbound_ranges: Vec<OutboundRange>,
    /// `host:port` of a service port -> the VirtualService `tcp` and `tls` routes for its
    /// opaque TCP (declared, or sniffed as not HTTP). Absent: the default cluster.
    pub l4: BTreeMap<String, L4Routes>,
    /// Endpoint address and port -> its declared protocol. The proxy does not need to
    /// know which endpoint is its own: only its own addresses are redirected to it.
    pub inbound: BTreeMap<SocketAddr, InboundPort>,
}

impl SidecarTables {
    /// The service an outbound connection to `dst` is for, if any.
    pub fn outbound_target(&self, dst: SocketAddr) -> Option<&OutboundTarget> {
        self.outbound.get(&dst).or_else(|| {
            self.outbound_ranges
                .iter()
                .find(|r| r.target.port == dst.port() && r.range.contains(&dst.ip()))
                .map(|r| &r.target)
        })
    }

    /// The `tcp`/`tls` routes of a service port, when a VirtualService has some for it.
    pub fn l4_routes(&self, target: &OutboundTarget) -> Option<&L4Routes> {
        self.l4.get(&format!("{}:{}", target.service, target.port))
    }

    /// The declared protocol of the workload port an inbound connection is for.
    pub fn inbound_port(&self, dst: SocketAddr) -> Option<InboundPort> {
        self.inbound.get(&dst).copied()
    }
}

impl Tables {
    /// Builds the tables of a sidecar proxy for workload `me`: a route table per HTTP
    /// service port (virtual hosts for every service on it, with the mesh's
    /// VirtualServices), the services' addresses, the inbound ports, and the outbound
    /// policy (`mesh_policy` unless a Sidecar resource that applies to `me` sets one).
    pub fn for_sidecar(
        objects: &[Object],
        me: &ProxyIdentity,
        mesh_policy: OutboundPolicy,
        version: u64,
    ) -> Tables {
        Tables::for_sidecar_with(objects, Registry::build(objects), me, mesh_policy, version)
    }

    /// The same, with the services given (the control plane's registry).
    pub fn for_sidecar_with(
        objects: &[Object],
        registry: Registry,
        me: &ProxyIdentity,
        mesh_policy: OutboundPolicy,
        version: u64,
    ) -> Tables {
        let mut clusters = Clusters::new(objects, &registry);
        let mut rejected = Vec::new();
        let mut listeners = BTreeMap::new();
        let mut sidecar = SidecarTables::default();
        let vses = mesh_virtual_services(objects);
        for service in registry.services.values() {
            for port in &service.ports {
                let cluster = default_cluster(&mut clusters, service, port);
                add_outbound(&mut sidecar, service, port, &cluster);
                add_inbound(&mut sidecar, service, port);
                if port.detect || !port.protocol.is_http() {
                    let scope = L4Scope::new(port, me, &registry, &cluster);
                    if let Some(vs) = virtual_service_for(&vses, &service.host)
                        && let Some(l4) = mesh_l4_routes(vs, &scope, &mut clusters, &mut rejected)
                    {
                        let key = format!("{}:{}", service.host, port.number);
                        sidecar.l4.insert(key, l4);
                    }
                }
                if !(port.detect || port.protocol.is_http()) {
                    continue;
                }
                let mut routes = match virtual_service_for(&vses, &service.host) {
                    Some(vs) => mesh_routes(vs, port.number, me, &mut clusters, &mut rejected),
                    None => Vec::new(),
                };
                if routes.is_empty() {
                    routes.push(default_route(cluster));
                }
                let listener = listeners
                    .entry(port.number)
                    .or_insert_with(|| Listener::new(port.number, Protocol::Http));
                listener.virtual_hosts.push(VirtualHost {
                    name: format!("{}:{}", service.host, port.number),
                    domains: outbound_domains(service, port.number, &me.namespace),
                    routes,
                });
            }
        }
        sidecar
            .outbound_ranges
            .sort_by_key(|r| std::cmp::Reverse(r.range.prefix_len()));
        (sidecar.outbound_policy, sidecar.policy_source) =
            outbound_policy(objects, me, mesh_policy);
        let clusters = std::mem::take(&mut clusters.built);
        Tables {
            version,
            listeners,
            clusters,
            registry,
            rejected,
            sidecar: Some(sidecar),
        }
    }
}

/// The VirtualServices sidecars apply: those bound to no gateway or to `mesh`.
fn mesh_virtual_services(objects: &[Object]) -> Vec<(&Object, &VirtualService)> {
    objects
        .iter()
        .filter_map(|o| match &o.spec {
            Spec::VirtualService(vs)
                if vs.gateways.is_empty() || vs.gateways.iter().any(|g| g == "mesh") =>
            {
                Some((o, vs.as_ref()))
            }
            _ => None,
        })
        .collect()
}

/// The VirtualService for a service host: the first naming it exactly, else the first
/// whose wildcard covers it (Istio prefers the exact host).
fn virtual_service_for<'a>(
    vses: &[(&'a Object, &'a VirtualService)],
    host: &str,
) -> Option<(&'a Object, &'a VirtualService)> {
    let names = |(o, vs): &&(&Object, &VirtualService), exact: bool| {
        vs.hosts.iter().any(|h| {
            let h = fqdn(h, o.namespace());
            if exact {
                h == host
            } else {
                h.starts_with('*') && host_matches(&h, host)
            }
        })
    };
    vses.iter()
        .find(|v| names(v, true))
        .or_else(|| vses.iter().find(|v| names(v, false)))
        .copied()
}

/// A VirtualService's HTTP routes as they apply on service port `port`; routes whose
/// match blocks all name another port (or a gateway) are left out.
fn mesh_routes(
    (o, vs): (&Object, &VirtualService),
    port: u16,
    me: &ProxyIdentity,
    clusters: &mut Clusters<'_>,
    rejected: &mut Vec<String>,
) -> Vec<Route> {
    let ctx = RouteContext {
        namespace: o.namespace(),
        gateway: None,
        listener_port: port,
        me,
    };
    let mut routes = Vec::new();
    for (i, http) in vs.http.iter().enumerate() {
        match compile_route(http, &ctx, clusters) {
            Ok(Some(route)) => routes.push(route),
            Ok(None) => {}
            Err(e) => {
                let reason = format!(
                    "VirtualService {}/{}: spec.http[{i}]: {e}",
                    o.namespace(),
                    o.name()
                );
                if !rejected.contains(&reason) {
                    rejected.push(reason);
                }
            }
        }
    }
    routes
}

/// The service port whose `tcp` and `tls` routes are being compiled.
struct L4Scope<'a> {
    port: u16,
    /// A declared TLS or HTTPS port: `tls` routes apply there, `tcp` routes elsewhere.
    tls: bool,
    me: &'a ProxyIdentity,
    registry: &'a Registry,
    /// Where connections no route matches go: Istio ends a sidecar's TCP routes with the
    /// service's own cluster.
    default_cluster: &'a str,
}

impl<'a> L4Scope<'a> {
    fn new(
        port: &ServicePort,
        me: &'a ProxyIdentity,
        registry: &'a Registry,
        default_cluster: &'a str,
    ) -> Self {
        L4Scope {
            port: port.number,
            tls: !port.detect && matches!(port.protocol, Protocol::Tls | Protocol::Https),
            me,
            registry,
            default_cluster,
        }
    }
}

/// A VirtualService's `tcp` or `tls` routes as they apply to a service port, Istio's
/// way: `tls` routes on TLS and HTTPS ports (an SNI none matches is refused), `tcp`
/// routes on the others, ending in the service's default cluster unless one of them
/// already catches everything. `None` when none apply (the default cluster then).
fn mesh_l4_routes(
    (o, vs): (&Object, &VirtualService),
    scope: &L4Scope<'_>,
    clusters: &mut Clusters<'_>,
    rejected: &mut Vec<String>,
) -> Option<L4Routes> {
    let vs_name = format!("{}/{}", o.namespace(), o.name());
    let ctx = L4Context {
        namespace: o.namespace(),
        vs_name: &vs_name,
        vs_hosts: &vs.hosts,
        gateway: None,
        port: scope.port,
        me: scope.me,
        registry: scope.registry,
    };
    let mut errors = Vec::new();
    let mut routes = L4Routes::default();
    if scope.tls {
        routes.tls = compile_tls(&vs.tls, &ctx, clusters, &mut errors);
    } else {
        routes.tcp = compile_tcp(&vs.tcp, &ctx, clusters, &mut errors);
    }
    for e in errors {
        if !rejected.contains(&e) {
            rejected.push(e);
        }
    }
    if routes.tcp.is_empty() && routes.tls.is_empty() {
        return None;
    }
    let catch_all = |r: &L4Route| {
        r.matches.is_empty()
            || r.matches
                .iter()
                .any(|m| m.destination_subnets.is_empty() && m.source_subnet.is_none())
    };
    if !scope.tls && !routes.tcp.iter().any(catch_all) {
        routes.tcp.push(L4Route {
            name: "default".into(),
            matches: Vec::new(),
            destinations: vec![L4Destination {
                cluster: scope.default_cluster.to_string(),
                weight: 100,
            }],
        });
    }
    Some(routes)
}

/// The route of a service nobody wrote a VirtualService for: all its endpoints.
fn default_route(cluster: String) -> Route {
    Route {
        name: "default".into(),
        matches: Vec::new(),
        action: Action::Forward(vec![WeightedCluster {
            cluster,
            weight: 100,
            request_headers: Default::default(),
            response_headers: Default::default(),
        }]),
        request_headers: Default::default(),
        response_headers: Default::default(),
        rewrite: None,
        cors: None,
        policy: Default::default(),
    }
}

/// Builds `outbound|PORT||HOST` and returns its name.
fn default_cluster(clusters: &mut Clusters<'_>, service: &Service, port: &ServicePort) -> String {
    let dest = Destination {
        host: service.host.clone(),
        subset: String::new(),
        port: Some(PortSelector {
            number: u32::from(port.number),
        }),
    };
    clusters.cluster_for(&dest, &service.namespace)
}

fn add_outbound(sidecar: &mut SidecarTables, service: &Service, port: &ServicePort, cluster: &str) {
    let target = OutboundTarget {
        service: service.host.clone(),
        port: port.number,
        protocol: port.protocol,
        detect: port.detect,
        cluster: cluster.to_string(),
    };
    for net in &service.addresses {
        if net.prefix_len() == net.max_prefix_len() {
            sidecar
                .outbound
                .entry(SocketAddr::new(net.addr(), port.number))
                .or_insert_with(|| target.clone());
        } else {
            sidecar.outbound_ranges.push(OutboundRange {
                range: net.trunc(),
                target: target.clone(),
            });
        }
    }
}

/// Records how each endpoint serves `port`; a declared protocol wins over none when two
/// services share an endpoint port.
fn add_inbound(sidecar: &mut SidecarTables, service: &Service, port: &ServicePort) {
    let declared = InboundPort {
        protocol: port.protocol,
        detect: port.detect,
    };
    for e in &service.endpoints {
        let Ok(ip) = e.address.parse() else { continue };
        let at = SocketAddr::new(ip, e.port_for(port));
        match sidecar.inbound.get(&at) {
            Some(known) if !known.detect => {}
            _ => {
                sidecar.inbound.insert(at, declared);
            }
        }
    }
}

/// Istio's outbound domains for a service port: the host; for Kubernetes-style hosts
/// (`name.ns.svc.cluster.local`) also `name.ns` and `name.ns.svc`, and the bare `name`
/// from the same namespace only (elsewhere it names another service); the service's
/// addresses; each with and without `:port`.
pub(super) fn outbound_domains(service: &Service, port: u16, my_namespace: &str) -> Vec<String> {
    let mut names = vec![service.host.clone()];
    if let Some(rest) = service.host.strip_suffix(".svc.cluster.local")
        && let Some((name, ns)) = rest.split_once('.')
    {
        if ns == my_namespace {
            names.push(name.to_string());
        }
        names.push(rest.to_string());
        names.push(format!("{rest}.svc"));
    }
    names.extend(
        service
            .addresses
            .iter()
            .filter(|a| a.prefix_len() == a.max_prefix_len())
            .map(|a| a.addr().to_string()),
    );
    names
        .into_iter()
        .flat_map(|n| [format!("{n}:{port}"), n])
        .collect()
}

/// The outbound policy for `me` and where it came from. Istio's Sidecar precedence: one
/// in the workload's namespace whose selector matches it, else one there without a
/// selector, else one in the root namespace without a selector; a Sidecar that sets
/// `outboundTrafficPolicy` overrides the mesh's (an empty policy means REGISTRY_ONLY,
/// the API's default mode).
fn outbound_policy(
    objects: &[Object],
    me: &ProxyIdentity,
    mesh: OutboundPolicy,
) -> (OutboundPolicy, String) {
    let sidecars: Vec<(&Object, &Sidecar)> = objects
        .iter()
        .filter_map(|o| match &o.spec {
            Spec::Sidecar(s) => Some((o, s.as_ref())),
            _ => None,
        })
        .collect();
    let selects = |s: &Sidecar| {
        s.workload_selector.as_ref().is_some_and(|sel| {
            !sel.labels.is_empty() && sel.labels.iter().all(|(k, v)| me.labels.get(k) == Some(v))
        })
    };
    let applies = sidecars
        .iter()
        .find(|(o, s)| o.namespace() == me.namespace && selects(s))
        .or_else(|| {
            sidecars
                .iter()
                .find(|(o, s)| o.namespace() == me.namespace && s.workload_selector.is_none())
        })
        .or_else(|| {
            sidecars
                .iter()
                .find(|(o, s)| o.namespace() == ROOT_NAMESPACE && s.workload_selector.is_none())
        });
    match applies {
        Some((o, s)) => match &s.outbound_traffic_policy {
            Some(p) => (
                p.mode.unwrap_or_default().into(),
                format!("Sidecar {}/{}", o.namespace(), o.name()),
            ),
            None => (mesh, "mesh".into()),
        },
        None => (mesh, "mesh".into()),
    }
}

#[cfg(test)]
mod tests;
