//! Gateway mode: listeners for the servers of the Gateways that select this proxy, and
//! the routes of the VirtualServices bound to them.

use std::collections::BTreeMap;
use weft_api::Spec;

use weft_api::networking::{Gateway, VirtualService};
use weft_api::object::Object;

use super::clusters::Clusters;
use super::http_routes::{RouteContext, compile_route};
use super::{Listener, ProxyIdentity, Tables, VirtualHost};
use crate::registry::{Protocol, Registry};

impl Tables {
    /// Builds the tables of a gateway proxy: listeners for the servers of the Gateways
    /// whose selector matches `me`, routes from the VirtualServices bound to them.
    pub fn for_gateway(objects: &[Object], me: &ProxyIdentity, version: u64) -> Tables {
        let registry = Registry::build(objects);
        let mut clusters = Clusters::new(objects, &registry);
        let mut listeners = BTreeMap::new();
        let mut rejected = Vec::new();
        let vses: Vec<(&Object, &VirtualService)> = objects
            .iter()
            .filter_map(|o| match &o.spec {
                Spec::VirtualService(vs) => Some((o, vs.as_ref())),
                _ => None,
            })
            .collect();
        for o in objects {
            let Spec::Gateway(gw) = &o.spec else { continue };
            if gw.selector.is_empty()
                || !gw.selector.iter().all(|(k, v)| me.labels.get(k) == Some(v))
            {
                continue;
            }
            add_gateway(o, gw, &vses, &mut clusters, &mut listeners, &mut rejected);
        }
        let clusters = std::mem::take(&mut clusters.built);
        Tables {
            version,
            listeners,
            clusters,
            registry,
            rejected,
            sidecar: None,
        }
    }
}

/// Adds the listeners and virtual hosts of one Gateway's servers.
fn add_gateway(
    o: &Object,
    gw: &Gateway,
    vses: &[(&Object, &VirtualService)],
    clusters: &mut Clusters<'_>,
    listeners: &mut BTreeMap<u16, Listener>,
    rejected: &mut Vec<String>,
) {
    let gw_name = format!("{}/{}", o.namespace(), o.name());
    for server in &gw.servers {
        let Some(port) = &server.port else { continue };
        let Ok(number) = u16::try_from(port.number) else {
            continue;
        };
        let protocol = Protocol::of(&port.protocol, &port.name);
        if !protocol.is_http() {
            rejected.push(format!(
                "Gateway {gw_name}: port {number} ({}): only HTTP servers are served so far",
                port.protocol
            ));
            continue;
        }
        let listener = listeners.entry(number).or_insert_with(|| Listener {
            port: number,
            protocol,
            virtual_hosts: Vec::new(),
        });
        for (vo, vs) in vses {
            if !vs
                .gateways
                .iter()
                .any(|g| qualify(g, vo.namespace()) == gw_name)
            {
                continue;
            }
            let domains = gateway_domains(&vs.hosts, &server.hosts, vo.namespace());
            let name = format!("{}/{}", vo.namespace(), vo.name());
            if domains.is_empty()
                || listener
                    .virtual_hosts
                    .iter()
                    .any(|v| v.name == name && v.domains == domains)
            {
                continue;
            }
            let ctx = RouteContext {
                namespace: vo.namespace(),
                gateway: Some(&gw_name),
                listener_port: number,
            };
            let mut routes = Vec::new();
            for (i, http) in vs.http.iter().enumerate() {
                match compile_route(http, &ctx, clusters) {
                    Ok(Some(route)) => routes.push(route),
                    Ok(None) => {}
                    Err(e) => rejected.push(format!("VirtualService {name}: spec.http[{i}]: {e}")),
                }
            }
            listener.virtual_hosts.push(VirtualHost {
                name,
                domains,
                routes,
            });
        }
    }
}

/// `name` -> `namespace/name` for a gateway reference made from `namespace`.
pub(super) fn qualify(gateway: &str, namespace: &str) -> String {
    if gateway.contains('/') {
        gateway.to_string()
    } else {
        format!("{namespace}/{gateway}")
    }
}

/// The domains a VirtualService serves on a gateway server: each of its hosts the
/// server's hosts admit (the narrower of the two when one is a wildcard of the other).
fn gateway_domains(
    vs_hosts: &[String],
    server_hosts: &[String],
    vs_namespace: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    for server_host in server_hosts {
        let (ns, host) = server_host.split_once('/').unwrap_or(("*", server_host));
        if !(ns == "*" || ns == vs_namespace || ns == ".") {
            continue;
        }
        for vs_host in vs_hosts {
            let (a, b) = (vs_host.to_ascii_lowercase(), host.to_ascii_lowercase());
            let domain = if weft_api::analyze::host_matches(&b, &a) {
                Some(a)
            } else if weft_api::analyze::host_matches(&a, &b) {
                Some(b)
            } else {
                None
            };
            if let Some(d) = domain.filter(|d| !out.contains(d)) {
                out.push(d);
            }
        }
    }
    out
}
