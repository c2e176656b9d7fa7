//! Compiling VirtualService `tcp` and `tls` routes into the L4 route tables a TCP or TLS
//! listener serves from. Conditions known when the tables are built (port, gateway,
//! source labels and namespace) are decided here; the ones that depend on the connection
//! (its addresses, its SNI) are compiled into matchers and checked per connection.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;
use weft_api::networking::virtual_service::{
    Destination, L4MatchAttributes, RouteDestination, TcpRoute, TlsMatchAttributes, TlsRoute,
};

use super::ProxyIdentity;
use super::clusters::Clusters;
use crate::registry::Registry;

/// The TCP and TLS routes of one listener (or, in a sidecar, of one service port).
#[derive(Debug, Default, Serialize)]
pub struct L4Routes {
    /// Opaque TCP routes, tried in order; the first that matches wins.
    pub tcp: Vec<L4Route>,
    /// TLS routes; the most specific SNI match wins (Envoy's filter-chain rule), the first
    /// listed among equals.
    pub tls: Vec<L4Route>,
}

/// One compiled `tcp` or `tls` route.
#[derive(Debug, Serialize)]
pub struct L4Route {
    /// `namespace/name tcp[i]` or `... tls[i]`, for logs.
    pub name: String,
    /// Match blocks that can apply to this proxy, ORed. Empty: every connection.
    pub matches: Vec<L4Match>,
    pub destinations: Vec<L4Destination>,
}

/// The parts of one match block that depend on the connection.
#[derive(Debug, Default, Serialize)]
pub struct L4Match {
    /// Lower-case SNI hosts, possibly `*.suffix` or `*` (TLS routes only). Empty: any SNI
    /// or none.
    pub sni_hosts: Vec<String>,
    /// The connection's original destination must be in one of these. Empty: any.
    #[serde(serialize_with = "nets_text")]
    pub destination_subnets: Vec<IpNet>,
    /// The client's address must be in this.
    #[serde(serialize_with = "net_text")]
    pub source_subnet: Option<IpNet>,
}

/// A cluster a route sends connections to, with its share of them.
#[derive(Debug, Serialize)]
pub struct L4Destination {
    pub cluster: String,
    pub weight: u32,
}

fn nets_text<S: serde::Serializer>(nets: &[IpNet], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(nets.iter().map(ToString::to_string))
}

fn net_text<S: serde::Serializer>(net: &Option<IpNet>, s: S) -> Result<S::Ok, S::Error> {
    match net {
        Some(n) => s.serialize_str(&n.to_string()),
        None => s.serialize_none(),
    }
}

impl L4Routes {
    /// The first TCP route that admits a connection from `peer` to `destination`.
    pub fn pick_tcp(&self, peer: IpAddr, destination: IpAddr) -> Option<&L4Route> {
        self.tcp.iter().find(|r| {
            r.matches.is_empty()
                || r.matches
                    .iter()
                    .any(|m| m.admits_addresses(peer, destination))
        })
    }

    /// The TLS route for a ClientHello naming `sni` (`None`: no SNI, or not TLS): an exact
    /// SNI host beats the longest matching wildcard, which beats a catch-all, as Envoy
    /// picks among filter chains; the first listed wins among equals.
    pub fn pick_tls(
        &self,
        sni: Option<&str>,
        peer: IpAddr,
        destination: IpAddr,
    ) -> Option<&L4Route> {
        self.best_tls(sni, peer, destination)
            .map(|(_, route)| route)
    }

    /// `pick_tls`, with how specifically the route names the SNI (see `sni_score`).
    pub(crate) fn best_tls(
        &self,
        sni: Option<&str>,
        peer: IpAddr,
        destination: IpAddr,
    ) -> Option<(usize, &L4Route)> {
        let mut best: Option<(usize, &L4Route)> = None;
        for route in &self.tls {
            for m in route
                .matches
                .iter()
                .filter(|m| m.admits_addresses(peer, destination))
            {
                if let Some(score) = m.sni_score(sni)
                    && best.is_none_or(|(s, _)| score > s)
                {
                    best = Some((score, route));
                }
            }
        }
        best
    }
}

impl L4Match {
    fn admits_addresses(&self, peer: IpAddr, destination: IpAddr) -> bool {
        (self.destination_subnets.is_empty()
            || self
                .destination_subnets
                .iter()
                .any(|n| n.contains(&destination)))
            && self.source_subnet.is_none_or(|n| n.contains(&peer))
    }

    /// How specifically this match names `sni`; `None` when it does not.
    fn sni_score(&self, sni: Option<&str>) -> Option<usize> {
        if self.sni_hosts.is_empty() {
            return Some(1);
        }
        sni_score(&self.sni_hosts, sni)
    }
}

/// How specifically `hosts` (lower-case, `*.suffix` or `*`) name `sni`, as Envoy ranks
/// filter chains: an exact name beats the longest matching wildcard, which beats `*`;
/// `None` when none does (a client without SNI is matched by `*` alone).
pub(crate) fn sni_score(hosts: &[String], sni: Option<&str>) -> Option<usize> {
    hosts
        .iter()
        .filter_map(|host| match (host.strip_prefix('*'), sni) {
            (Some(""), _) => Some(1),
            (Some(suffix), Some(sni))
                if sni.len() > suffix.len()
                    && sni.is_char_boundary(sni.len() - suffix.len())
                    && sni[sni.len() - suffix.len()..].eq_ignore_ascii_case(suffix) =>
            {
                Some(2 + suffix.len())
            }
            (None, Some(sni)) if host.eq_ignore_ascii_case(sni) => Some(usize::MAX),
            _ => None,
        })
        .max()
}

/// Where L4 routes are being compiled for.
pub(super) struct L4Context<'a> {
    /// The VirtualService's namespace and `namespace/name`.
    pub namespace: &'a str,
    pub vs_name: &'a str,
    /// The VirtualService's hosts (a TLS match without `sniHosts` uses them).
    pub vs_hosts: &'a [String],
    /// `namespace/name` of the Gateway, `None` for sidecars (the `mesh` gateway).
    pub gateway: Option<&'a str>,
    /// The port connections arrive for: the gateway server's, or the service port.
    pub port: u16,
    /// The proxy itself: `sourceLabels` and `sourceNamespace` name the client workload,
    /// which is the proxy's.
    pub me: &'a ProxyIdentity,
    pub registry: &'a Registry,
}

impl L4Context<'_> {
    /// Whether the conditions known now allow a match block to apply here.
    fn admits(
        &self,
        port: Option<u32>,
        gateways: &[String],
        labels: &std::collections::BTreeMap<String, String>,
        namespace: &str,
    ) -> bool {
        let gateway_ok = gateways.is_empty()
            || gateways.iter().any(|g| match self.gateway {
                None => g == "mesh",
                Some(here) => super::gateway::qualify(g, self.namespace) == here,
            });
        gateway_ok
            && port.is_none_or(|p| p == u32::from(self.port))
            && labels.iter().all(|(k, v)| self.me.labels.get(k) == Some(v))
            && (namespace.is_empty() || namespace == self.me.namespace)
    }
}

/// Compiles a VirtualService's `tcp` routes; those whose match blocks cannot apply here
/// are left out. A route with a bad subnet is rejected alone, with the reason.
pub(super) fn compile_tcp(
    routes: &[TcpRoute],
    ctx: &L4Context<'_>,
    clusters: &mut Clusters<'_>,
    rejected: &mut Vec<String>,
) -> Vec<L4Route> {
    let mut out = Vec::new();
    for (i, route) in routes.iter().enumerate() {
        let name = format!("{} tcp[{i}]", ctx.vs_name);
        let compiled: Result<Vec<L4Match>, String> = route
            .matches
            .iter()
            .filter(|m| ctx.admits(m.port, &m.gateways, &m.source_labels, &m.source_namespace))
            .map(l4_match)
            .collect();
        match compiled {
            Ok(matches) if route.matches.is_empty() || !matches.is_empty() => {
                let destinations = destinations(&route.route, ctx, clusters);
                out.push(L4Route {
                    name,
                    matches,
                    destinations,
                });
            }
            Ok(_) => {}
            Err(e) => rejected.push(format!("VirtualService {name}: {e}")),
        }
    }
    out
}

/// Compiles a VirtualService's `tls` routes (each needs a match block that applies here).
pub(super) fn compile_tls(
    routes: &[TlsRoute],
    ctx: &L4Context<'_>,
    clusters: &mut Clusters<'_>,
    rejected: &mut Vec<String>,
) -> Vec<L4Route> {
    let mut out = Vec::new();
    for (i, route) in routes.iter().enumerate() {
        let name = format!("{} tls[{i}]", ctx.vs_name);
        let compiled: Result<Vec<L4Match>, String> = route
            .matches
            .iter()
            .filter(|m| ctx.admits(m.port, &m.gateways, &m.source_labels, &m.source_namespace))
            .map(|m| tls_match(m, ctx.vs_hosts))
            .collect();
        match compiled {
            Ok(matches) if !matches.is_empty() => {
                let destinations = destinations(&route.route, ctx, clusters);
                out.push(L4Route {
                    name,
                    matches,
                    destinations,
                });
            }
            Ok(_) => {}
            Err(e) => rejected.push(format!("VirtualService {name}: {e}")),
        }
    }
    out
}

fn l4_match(m: &L4MatchAttributes) -> Result<L4Match, String> {
    let source_subnet = if m.source_subnet.is_empty() {
        None
    } else {
        Some(subnet(&m.source_subnet)?)
    };
    Ok(L4Match {
        sni_hosts: Vec::new(),
        destination_subnets: subnets(&m.destination_subnets)?,
        source_subnet,
    })
}

/// A TLS match: its `sniHosts`, or the VirtualService's hosts when it names none (Istio's
/// sidecar default; validation requires them on gateways anyway).
fn tls_match(m: &TlsMatchAttributes, vs_hosts: &[String]) -> Result<L4Match, String> {
    let hosts = if m.sni_hosts.is_empty() {
        vs_hosts
    } else {
        &m.sni_hosts
    };
    Ok(L4Match {
        sni_hosts: hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
        destination_subnets: subnets(&m.destination_subnets)?,
        source_subnet: None,
    })
}

fn subnets(texts: &[String]) -> Result<Vec<IpNet>, String> {
    texts.iter().map(|t| subnet(t)).collect()
}

/// `10.0.0.0/8`, or a bare address meaning just that address.
fn subnet(text: &str) -> Result<IpNet, String> {
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{text:?} is neither an IP address nor a CIDR block"))
}

/// The route's clusters with their weights; a lone destination without a weight takes
/// every connection.
fn destinations(
    route: &[RouteDestination],
    ctx: &L4Context<'_>,
    clusters: &mut Clusters<'_>,
) -> Vec<L4Destination> {
    let single = route.len() == 1;
    route
        .iter()
        .filter_map(|r| {
            let dest = with_default_port(r.destination.as_ref()?, ctx);
            let weight = if single && r.weight == 0 {
                100
            } else {
                u32::try_from(r.weight).unwrap_or(0)
            };
            Some(L4Destination {
                cluster: clusters.cluster_for(&dest, ctx.namespace),
                weight,
            })
        })
        .collect()
}

/// Istio's rule for a destination without a port: the service's only port, else the
/// port the connection came in on.
fn with_default_port(dest: &Destination, ctx: &L4Context<'_>) -> Destination {
    let mut dest = dest.clone();
    if dest.port.is_none()
        && ctx
            .registry
            .lookup(&dest.host, ctx.namespace)
            .is_some_and(|s| s.ports.len() > 1)
    {
        dest.port = Some(weft_api::common::PortSelector {
            number: u32::from(ctx.port),
        });
    }
    dest
}

#[cfg(test)]
mod tests;
