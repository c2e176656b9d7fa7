//! Istio's rules for TLS and TCP routes (`validateTLSRoute`, `validateTCPRoute`): matches
//! (SNI hosts, subnets, ports, sources) and weighted destinations.

use crate::path::FieldPath;
use crate::validate::{self, Validator};

use super::http::{l4_conditions, total_weight, weight};
use super::names;
use super::rules::{Context, destination};
use super::{L4MatchAttributes, RouteDestination, TcpRoute, TlsMatchAttributes, TlsRoute};

pub(super) fn tls_route(at: &FieldPath, r: &TlsRoute, ctx: &Context<'_>, v: &mut Validator<'_>) {
    if r.matches.is_empty() {
        v.error(
            at.key("match"),
            "a tls route needs at least one match, with the sniHosts it routes",
        );
    }
    for (j, m) in r.matches.iter().enumerate() {
        tls_match(&at.key("match").index(j), m, ctx, v);
    }
    if r.route.is_empty() {
        v.error(at.key("route"), "a tls route needs route destinations");
    }
    route_destinations(&at.key("route"), &r.route, v);
}

fn tls_match(at: &FieldPath, m: &TlsMatchAttributes, ctx: &Context<'_>, v: &mut Validator<'_>) {
    if m.sni_hosts.is_empty() {
        v.error(
            at.key("sniHosts"),
            "a tls match needs at least one SNI host",
        );
    }
    for (k, sni) in m.sni_hosts.iter().enumerate() {
        sni_host(&at.key("sniHosts").index(k), sni, ctx, v);
    }
    subnets(&at.key("destinationSubnets"), &m.destination_subnets, v);
    l4_conditions(at, m.port, &m.source_labels, &m.gateways, v);
    source_namespace(at, &m.source_namespace, v);
}

/// An SNI host must be a valid (wildcard) name covered by one of the VirtualService's hosts.
fn sni_host(at: &FieldPath, sni: &str, ctx: &Context<'_>, v: &mut Validator<'_>) {
    let vs = ctx.vs;
    // Istio tells gateways from sidecars here by the absence of `mesh` alone.
    let checked = if vs.gateways.iter().all(|g| g != "mesh") {
        validate::gateway_bound_host(true, sni)
    } else {
        validate::wildcard_host(sni)
    };
    if let Err(e) = checked {
        if names::is_ip(sni) {
            v.warn(
                at.clone(),
                format!("SNI host {sni:?} is an IP address: that goes against the SNI spec and most clients send no SNI for IPs"),
            );
        } else {
            v.error(at.clone(), format!("invalid SNI host: {e}"));
        }
        return;
    }
    if !vs.hosts.iter().any(|h| names::host_within(sni, h)) {
        v.error(
            at.clone(),
            format!(
                "SNI host {sni:?} is not covered by any host of the VirtualService ([{}])",
                vs.hosts.join(", ")
            ),
        );
    }
}

pub(super) fn tcp_route(at: &FieldPath, r: &TcpRoute, v: &mut Validator<'_>) {
    for (j, m) in r.matches.iter().enumerate() {
        tcp_match(&at.key("match").index(j), m, v);
    }
    if r.route.is_empty() {
        v.error(at.key("route"), "a tcp route needs route destinations");
    }
    route_destinations(&at.key("route"), &r.route, v);
}

fn tcp_match(at: &FieldPath, m: &L4MatchAttributes, v: &mut Validator<'_>) {
    subnets(&at.key("destinationSubnets"), &m.destination_subnets, v);
    l4_conditions(at, m.port, &m.source_labels, &m.gateways, v);
    source_namespace(at, &m.source_namespace, v);
    // Istio does not check sourceSubnet; a bad one can never match.
    if !m.source_subnet.is_empty()
        && let Err(e) = validate::ip_or_cidr(&m.source_subnet)
    {
        v.warn(
            at.key("sourceSubnet"),
            format!("{e}: this match can never apply"),
        );
    }
}

fn subnets(at: &FieldPath, subnets: &[String], v: &mut Validator<'_>) {
    for (k, subnet) in subnets.iter().enumerate() {
        v.check(at.index(k), validate::ip_or_cidr(subnet));
    }
}

/// Istio checks `sourceNamespace` only in HTTP matches; elsewhere a bad one just never
/// matches, so it is worth a warning.
fn source_namespace(at: &FieldPath, ns: &str, v: &mut Validator<'_>) {
    if !ns.is_empty() && !validate::is_dns_label(ns) {
        v.warn(
            at.key("sourceNamespace"),
            format!("{ns:?} is not a valid namespace name: this match can never apply"),
        );
    }
}

fn route_destinations(at: &FieldPath, route: &[RouteDestination], v: &mut Validator<'_>) {
    for (i, rd) in route.iter().enumerate() {
        let at = at.index(i);
        match &rd.destination {
            Some(d) => destination(d, &at.key("destination"), v),
            None => v.required(at.key("destination"), false),
        }
        v.check(at.key("weight"), weight(rd.weight));
    }
    total_weight(at, route.iter().map(|r| r.weight), v);
}
