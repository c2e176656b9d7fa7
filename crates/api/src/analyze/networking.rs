//! The analyzers for traffic-management objects: VirtualService references and host
//! conflicts, DestinationRule hosts, Gateway and Sidecar conflicts, service ports.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;

use super::codes::*;
use super::{Findings, Index, fqdn, host_matches};
use crate::diag::Severity;
use crate::gateway_api::HttpRoute;
use crate::kind::Spec;
use crate::networking::virtual_service::Destination;
use crate::networking::{DestinationRule, ServiceEntry, VirtualService};
use crate::object::Object;
use crate::path::FieldPath;

/// Gateways, hosts and subsets a VirtualService refers to must exist.
pub(super) fn virtual_service(
    o: &Object,
    vs: &VirtualService,
    index: &Index<'_>,
    out: &mut Findings,
) {
    let spec = FieldPath::of("spec");
    for (i, gw) in vs.gateways.iter().enumerate() {
        gateway_ref(o, vs, spec.key("gateways").index(i), gw, index, out);
    }
    let gateway_bound = !vs.gateways.is_empty() && vs.gateways.iter().all(|g| g != "mesh");
    let mut destinations: Vec<(FieldPath, &Destination)> = Vec::new();
    for (i, http) in vs.http.iter().enumerate() {
        let at = spec.key("http").index(i);
        for (j, m) in http.matches.iter().enumerate() {
            for (k, gw) in m.gateways.iter().enumerate() {
                gateway_ref(
                    o,
                    vs,
                    at.key("match").index(j).key("gateways").index(k),
                    gw,
                    index,
                    out,
                );
            }
        }
        for (j, r) in http.route.iter().enumerate() {
            destinations.extend(
                r.destination
                    .as_ref()
                    .map(|d| (at.key("route").index(j).key("destination"), d)),
            );
        }
        destinations.extend(http.mirror.as_ref().map(|d| (at.key("mirror"), d)));
        for (j, m) in http.mirrors.iter().enumerate() {
            destinations.extend(
                m.destination
                    .as_ref()
                    .map(|d| (at.key("mirrors").index(j).key("destination"), d)),
            );
        }
    }
    for (i, tcp) in vs.tcp.iter().enumerate() {
        for (j, r) in tcp.route.iter().enumerate() {
            let at = spec
                .key("tcp")
                .index(i)
                .key("route")
                .index(j)
                .key("destination");
            destinations.extend(r.destination.as_ref().map(|d| (at, d)));
        }
    }
    for (i, tls) in vs.tls.iter().enumerate() {
        for (j, r) in tls.route.iter().enumerate() {
            let at = spec
                .key("tls")
                .index(i)
                .key("route")
                .index(j)
                .key("destination");
            destinations.extend(r.destination.as_ref().map(|d| (at, d)));
        }
    }
    for (at, dest) in destinations {
        destination(o, at, dest, gateway_bound, index, out);
    }
}

/// A gateway named by a VirtualService must exist, and serve the VirtualService's hosts.
fn gateway_ref(
    o: &Object,
    vs: &VirtualService,
    at: FieldPath,
    name: &str,
    index: &Index<'_>,
    out: &mut Findings,
) {
    if name == "mesh" {
        return;
    }
    let full = if name.contains('/') {
        name.to_string()
    } else {
        format!("{}/{name}", o.namespace())
    };
    let Some(gateway) = index.gateway(&full) else {
        let message = format!("Referenced gateway not found: {name:?}");
        let hint = "define the Gateway, or fix the name (`name` for this namespace, `namespace/name` for another)";
        out.add_with_hint(
            o,
            at,
            Severity::Error,
            REFERENCED_RESOURCE_NOT_FOUND,
            message,
            hint,
        );
        return;
    };
    let gw_ns = full.split('/').next().unwrap_or("");
    let served = |host: &str| {
        gateway.servers.iter().flat_map(|s| &s.hosts).any(|h| {
            let (ns, h) = h.split_once('/').unwrap_or(("*", h));
            let ns_ok = ns == "*" || ns == o.namespace() || (ns == "." && gw_ns == o.namespace());
            ns_ok && (host_matches(h, host) || host_matches(host, h))
        })
    };
    let missing: Vec<&str> = vs
        .hosts
        .iter()
        .map(String::as_str)
        .filter(|h| !served(h))
        .collect();
    if !missing.is_empty() {
        let message = format!(
            "one or more host {missing:?} defined in VirtualService {} not found in Gateway {full}",
            o.object_ref()
                .to_string()
                .trim_start_matches("VirtualService ")
        );
        let hint =
            "add the host to one of the Gateway's servers, or remove it from the VirtualService";
        out.add_with_hint(
            o,
            at,
            Severity::Warning,
            VIRTUAL_SERVICE_HOST_NOT_FOUND_IN_GATEWAY,
            message,
            hint,
        );
    }
}

/// A route destination must name a known host, and a subset its DestinationRule defines.
fn destination(
    o: &Object,
    at: FieldPath,
    d: &Destination,
    gateway_bound: bool,
    index: &Index<'_>,
    out: &mut Findings,
) {
    let host = fqdn(&d.host, o.namespace());
    if !index.has_host(&host) {
        let message = format!("Referenced host not found: {:?}", d.host);
        let hint = match index.suggest(&host) {
            Some(known) => {
                format!("did you mean {known:?}? (a name with a dot is taken as fully qualified)")
            }
            None => "define a Service or a ServiceEntry for this host".to_string(),
        };
        out.add_with_hint(
            o,
            at.key("host"),
            Severity::Error,
            REFERENCED_RESOURCE_NOT_FOUND,
            message,
            hint,
        );
        return;
    }
    if !d.subset.is_empty() && !index.has_subset(&host, &d.subset) {
        let message = format!(
            "Referenced host+subset in destinationrule not found: \"{}+{}\"",
            d.host, d.subset
        );
        let hint = format!(
            "define subset {:?} in a DestinationRule for host {:?}",
            d.subset, d.host
        );
        out.add_with_hint(
            o,
            at.key("subset"),
            Severity::Error,
            REFERENCED_RESOURCE_NOT_FOUND,
            message,
            hint,
        );
    }
    let ports = index.service(&host).map(|s| s.ports.len()).unwrap_or(0);
    if gateway_bound && d.port.is_none() && ports > 1 {
        let message = "This VirtualService routes to a service with more than one port exposed, but does not specify which to use.".to_string();
        let hint = "set destination.port.number";
        out.add_with_hint(
            o,
            at,
            Severity::Error,
            VIRTUAL_SERVICE_DESTINATION_PORT_SELECTOR_REQUIRED,
            message,
            hint,
        );
    }
}

/// A DestinationRule only applies to a host that some Service or ServiceEntry defines.
pub(super) fn destination_rule(
    o: &Object,
    dr: &DestinationRule,
    index: &Index<'_>,
    out: &mut Findings,
) {
    let host = fqdn(&dr.host, o.namespace());
    let known = if host.starts_with('*') {
        index.covers_any(&host)
    } else {
        index.has_host(&host)
    };
    if !known {
        let message = format!("Referenced host not found: {:?}", dr.host);
        let hint =
            "a DestinationRule has no effect until a Service or ServiceEntry defines its host";
        out.add_with_hint(
            o,
            FieldPath::of("spec").key("host"),
            Severity::Warning,
            REFERENCED_RESOURCE_NOT_FOUND,
            message,
            hint,
        );
    }
}

/// A ServiceEntry for TCP (or unknown) ports needs addresses: without them the sidecar
/// cannot tell its traffic from any other on the same port.
pub(super) fn service_entry(o: &Object, se: &ServiceEntry, out: &mut Findings) {
    if !se.addresses.is_empty() {
        return;
    }
    for (i, port) in se.ports.iter().enumerate() {
        if port.protocol.is_empty() || port.protocol.eq_ignore_ascii_case("TCP") {
            let at = FieldPath::of("spec").key("ports").index(i).key("protocol");
            let message = "ServiceEntry addresses are required for this protocol.".to_string();
            let hint = "add spec.addresses, or use an application protocol (HTTP, TLS...) the proxy can route by host";
            out.add_with_hint(
                o,
                at,
                Severity::Warning,
                SERVICE_ENTRY_ADDRESSES_REQUIRED,
                message,
                hint,
            );
        }
    }
}

/// The protocols a port name may start with (`http`, `http-web`, `grpc-api`...).
const PORT_PROTOCOLS: &[&str] = &[
    "http", "http2", "https", "grpc", "grpc-web", "tcp", "tls", "mongo", "mysql", "redis", "udp",
    "h2c",
];

/// Service ports are named `<protocol>[-<suffix>]` (or set appProtocol) so the mesh knows
/// their protocol without sniffing.
pub(super) fn service_ports(o: &Object, svc: &Service, out: &mut Findings) {
    for (i, p) in svc
        .spec
        .iter()
        .flat_map(|s| s.ports.iter().flatten())
        .enumerate()
    {
        if p.app_protocol.is_some() {
            continue;
        }
        let name = p.name.as_deref().unwrap_or("");
        let lower = name.to_ascii_lowercase();
        let named = PORT_PROTOCOLS
            .iter()
            .any(|proto| lower == *proto || lower.starts_with(&format!("{proto}-")));
        if !named {
            let message = format!(
                "Port name {name:?} (port: {}) doesn't follow the naming convention of Istio port.",
                p.port
            );
            let hint = "name it <protocol>[-<suffix>] (http, grpc, tcp...) or set appProtocol";
            let at = FieldPath::of("spec").key("ports").index(i).key("name");
            out.add_with_hint(
                o,
                at,
                Severity::Info,
                PORT_NAME_IS_NOT_UNDER_NAMING_CONVENTION,
                message,
                hint,
            );
        }
    }
}

/// Gateway API routes must attach to Gateways and send to Services that exist.
pub(super) fn http_route(o: &Object, route: &HttpRoute, index: &Index<'_>, out: &mut Findings) {
    let spec = FieldPath::of("spec");
    for (i, parent) in route.parent_refs.iter().enumerate() {
        if parent.kind.as_deref().is_some_and(|k| k != "Gateway") {
            continue;
        }
        let ns = parent.namespace.as_deref().unwrap_or(o.namespace());
        if !index.has_kube_gateway(&format!("{ns}/{}", parent.name)) {
            let message = format!("Referenced gateway not found: \"{ns}/{}\"", parent.name);
            out.add(
                o,
                spec.key("parentRefs").index(i),
                Severity::Error,
                REFERENCED_RESOURCE_NOT_FOUND,
                message,
            );
        }
    }
    for (i, rule) in route.rules.iter().enumerate() {
        for (j, backend) in rule.backend_refs.iter().enumerate() {
            if backend.kind.as_deref().is_some_and(|k| k != "Service") {
                continue;
            }
            let ns = backend.namespace.as_deref().unwrap_or(o.namespace());
            if !index.has_host(&fqdn(&backend.name, ns)) {
                let message = format!("Referenced service not found: \"{ns}/{}\"", backend.name);
                let at = spec.key("rules").index(i).key("backendRefs").index(j);
                out.add(
                    o,
                    at,
                    Severity::Error,
                    REFERENCED_RESOURCE_NOT_FOUND,
                    message,
                );
            }
        }
    }
}

/// Two VirtualServices for the mesh (sidecars) must not claim the same host: which one
/// wins is undefined.
pub(super) fn mesh_host_conflicts(objects: &[Object], out: &mut Findings) {
    let mut by_host: BTreeMap<String, Vec<(&Object, usize)>> = BTreeMap::new();
    for o in objects {
        let Spec::VirtualService(vs) = &o.spec else {
            continue;
        };
        if !(vs.gateways.is_empty() || vs.gateways.iter().any(|g| g == "mesh")) {
            continue;
        }
        for (i, host) in vs.hosts.iter().enumerate() {
            let owners = by_host.entry(fqdn(host, o.namespace())).or_default();
            if !owners
                .iter()
                .any(|(other, _)| other.object_ref() == o.object_ref())
            {
                owners.push((o, i));
            }
        }
    }
    for (host, owners) in by_host.iter().filter(|(_, owners)| owners.len() > 1) {
        let names: Vec<String> = owners
            .iter()
            .map(|(o, _)| format!("{}/{}", o.namespace(), o.name()))
            .collect();
        for (o, i) in owners {
            let message = format!(
                "The VirtualServices {} associated with mesh gateway define the same host {host:?} which can lead to undefined behavior.",
                names.join(",")
            );
            let hint =
                "merge the VirtualServices into one, or limit their visibility with exportTo";
            let at = FieldPath::of("spec").key("hosts").index(*i);
            out.add_with_hint(
                o,
                at,
                Severity::Error,
                CONFLICTING_MESH_GATEWAY_VIRTUAL_SERVICE_HOSTS,
                message,
                hint,
            );
        }
    }
}

/// Two Gateways selecting the same workloads must not both serve one host on one port.
pub(super) fn gateway_conflicts(objects: &[Object], out: &mut Findings) {
    let gateways: Vec<(&Object, &crate::networking::Gateway)> = objects
        .iter()
        .filter_map(|o| match &o.spec {
            Spec::Gateway(gw) => Some((o, gw.as_ref())),
            _ => None,
        })
        .collect();
    for (n, (a, ga)) in gateways.iter().enumerate() {
        for (b, gb) in &gateways[..n] {
            if ga.selector != gb.selector || a.object_ref() == b.object_ref() {
                continue;
            }
            for (i, sa) in ga.servers.iter().enumerate() {
                let Some(pa) = &sa.port else { continue };
                for sb in &gb.servers {
                    let same_port = sb.port.as_ref().is_some_and(|pb| pb.number == pa.number);
                    let overlap = sa
                        .hosts
                        .iter()
                        .find(|ha| sb.hosts.iter().any(|hb| hosts_overlap(ha, hb)));
                    if let (true, Some(host)) = (same_port, overlap) {
                        let message = format!(
                            "Conflict with gateways {}/{} (workload selector {:?}, port {}, hosts {host:?}).",
                            b.namespace(),
                            b.name(),
                            ga.selector,
                            pa.number
                        );
                        let at = FieldPath::of("spec").key("servers").index(i);
                        out.add(a, at, Severity::Error, CONFLICTING_GATEWAYS, message);
                    }
                }
            }
        }
    }
}

fn hosts_overlap(a: &str, b: &str) -> bool {
    let strip = |h: &str| h.split_once('/').map_or(h, |(_, h)| h).to_string();
    let (a, b) = (strip(a), strip(b));
    host_matches(&a, &b) || host_matches(&b, &a)
}

/// A Sidecar's namespace and its workload selector's labels (`None`: the whole namespace).
type SidecarScope<'a> = (&'a str, Option<&'a BTreeMap<String, String>>);

/// At most one Sidecar per namespace without a workload selector, and no two Sidecars
/// selecting the same workloads.
pub(super) fn sidecar_selectors(objects: &[Object], out: &mut Findings) {
    let mut by_selector: BTreeMap<SidecarScope<'_>, Vec<&Object>> = BTreeMap::new();
    for o in objects {
        let Spec::Sidecar(sidecar) = &o.spec else {
            continue;
        };
        let selector = sidecar
            .workload_selector
            .as_ref()
            .map(|s| &s.labels)
            .filter(|l| !l.is_empty());
        by_selector
            .entry((o.namespace(), selector))
            .or_default()
            .push(o);
    }
    for ((ns, selector), sidecars) in by_selector.iter().filter(|(_, s)| s.len() > 1) {
        let names: Vec<&str> = sidecars.iter().map(|o| o.name()).collect();
        for o in sidecars {
            let (code, message) = match selector {
                None => (
                    MULTIPLE_SIDECARS_WITHOUT_WORKLOAD_SELECTORS,
                    format!(
                        "The Sidecars {names:?} in namespace {ns:?} have no workload selector; at most one may"
                    ),
                ),
                Some(_) => (
                    CONFLICTING_SIDECAR_WORKLOAD_SELECTORS,
                    format!("The Sidecars {names:?} in namespace {ns:?} select the same workloads"),
                ),
            };
            out.add(o, FieldPath::of("spec"), Severity::Error, code, message);
        }
    }
}
