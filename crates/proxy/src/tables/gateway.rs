//! Gateway mode: listeners for the servers of the Gateways that select this proxy, and
//! the routes of the VirtualServices bound to them.

use std::collections::BTreeMap;
use weft_api::Spec;

use weft_api::networking::gateway::{ServerTlsMode, ServerTlsSettings};
use weft_api::networking::{Gateway, VirtualService};
use weft_api::object::Object;

use super::clusters::Clusters;
use super::http_routes::{RouteContext, compile_route};
use super::tcp::{L4Context, L4Routes, compile_tcp, compile_tls};
use super::{Listener, ProxyIdentity, Tables, VirtualHost};
use crate::registry::{Protocol, Registry};

impl Tables {
    /// Builds the tables of a gateway proxy: listeners for the servers of the Gateways
    /// whose selector matches `me`, routes from the VirtualServices bound to them.
    pub fn for_gateway(objects: &[Object], me: &ProxyIdentity, version: u64) -> Tables {
        Tables::for_gateway_with(objects, Registry::build(objects), me, version)
    }

    /// The same, with the services given (the control plane's registry).
    pub fn for_gateway_with(
        objects: &[Object],
        registry: Registry,
        me: &ProxyIdentity,
        version: u64,
    ) -> Tables {
        let mut clusters = Clusters::new(objects, &registry);
        let mut build = Build {
            me,
            registry: &registry,
            clusters: &mut clusters,
            rejected: Vec::new(),
        };
        let mut listeners = BTreeMap::new();
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
            add_gateway(o, gw, &vses, &mut listeners, &mut build);
        }
        let rejected = build.rejected;
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

/// How a gateway server carries traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerKind {
    /// HTTP requests routed by VirtualService `http` routes.
    Http,
    /// Opaque TCP (TCP, MONGO, MYSQL, REDIS) routed by `tcp` routes.
    Tcp,
    /// TLS passed through untouched, routed by SNI with `tls` routes.
    TlsPassthrough,
}

impl ServerKind {
    /// The kind of a server, or why it cannot be served yet.
    fn of(protocol: Protocol, tls: Option<&ServerTlsSettings>) -> Result<ServerKind, String> {
        let mode = tls.and_then(|t| t.mode).unwrap_or_default();
        match protocol {
            _ if protocol.is_http() => Ok(ServerKind::Http),
            Protocol::Tcp if tls.is_none() || mode == ServerTlsMode::Passthrough => {
                Ok(ServerKind::Tcp)
            }
            Protocol::Tls | Protocol::Https if mode == ServerTlsMode::Passthrough => {
                Ok(ServerKind::TlsPassthrough)
            }
            _ if mode == ServerTlsMode::AutoPassthrough => Err(
                "TLS mode AUTO_PASSTHROUGH (the destination named by the SNI, for east-west \
                 gateways) is not served yet"
                    .into(),
            ),
            _ => Err(format!(
                "TLS mode {mode:?} needs TLS termination, which is not served yet \
                 (PASSTHROUGH is)"
            )),
        }
    }

    fn of_listener(listener: &Listener) -> ServerKind {
        match listener.protocol {
            p if p.is_http() => ServerKind::Http,
            Protocol::Tcp => ServerKind::Tcp,
            _ => ServerKind::TlsPassthrough,
        }
    }
}

/// Adds the listeners and routes of one Gateway's servers.
fn add_gateway(
    o: &Object,
    gw: &Gateway,
    vses: &[(&Object, &VirtualService)],
    listeners: &mut BTreeMap<u16, Listener>,
    build: &mut Build<'_, '_>,
) {
    let gw_name = format!("{}/{}", o.namespace(), o.name());
    for server in &gw.servers {
        let Some(port) = &server.port else { continue };
        let Ok(number) = u16::try_from(port.number) else {
            continue;
        };
        let protocol = Protocol::of(&port.protocol, &port.name);
        let kind = match ServerKind::of(protocol, server.tls.as_ref()) {
            Ok(kind) => kind,
            Err(e) => {
                build.rejected.push(format!(
                    "Gateway {gw_name}: port {number} ({}): {e}",
                    port.protocol
                ));
                continue;
            }
        };
        let listener = listeners.entry(number).or_insert_with(|| Listener {
            port: number,
            protocol,
            virtual_hosts: Vec::new(),
            l4: L4Routes::default(),
        });
        if ServerKind::of_listener(listener) != kind {
            build.rejected.push(format!(
                "Gateway {gw_name}: port {number} ({}): the port already serves {:?}; \
                 one port carries one protocol",
                port.protocol, listener.protocol
            ));
            continue;
        }
        for (vo, vs) in vses {
            if !vs
                .gateways
                .iter()
                .any(|g| qualify(g, vo.namespace()) == gw_name)
            {
                continue;
            }
            let domains = gateway_domains(&vs.hosts, &server.hosts, vo.namespace());
            if domains.is_empty() {
                continue;
            }
            let name = format!("{}/{}", vo.namespace(), vo.name());
            let bound = Bound {
                vo,
                vs,
                name,
                gateway: &gw_name,
                port: number,
            };
            match kind {
                ServerKind::Http => add_http_routes(listener, &bound, domains, build),
                ServerKind::Tcp | ServerKind::TlsPassthrough => {
                    add_l4_routes(listener, &bound, kind, build)
                }
            }
        }
    }
}

/// What `for_gateway` is building, shared by every Gateway it adds.
struct Build<'o, 'c> {
    me: &'o ProxyIdentity,
    registry: &'o Registry,
    clusters: &'c mut Clusters<'o>,
    rejected: Vec<String>,
}

/// A VirtualService bound to a gateway server.
struct Bound<'a> {
    vo: &'a Object,
    vs: &'a VirtualService,
    /// `namespace/name` of the VirtualService.
    name: String,
    gateway: &'a str,
    port: u16,
}

/// Adds a VirtualService's HTTP routes as a virtual host for `domains`.
fn add_http_routes(
    listener: &mut Listener,
    bound: &Bound<'_>,
    domains: Vec<String>,
    build: &mut Build<'_, '_>,
) {
    if listener
        .virtual_hosts
        .iter()
        .any(|v| v.name == bound.name && v.domains == domains)
    {
        return;
    }
    let ctx = RouteContext {
        namespace: bound.vo.namespace(),
        gateway: Some(bound.gateway),
        listener_port: bound.port,
        me: build.me,
    };
    let mut routes = Vec::new();
    for (i, http) in bound.vs.http.iter().enumerate() {
        match compile_route(http, &ctx, build.clusters) {
            Ok(Some(route)) => routes.push(route),
            Ok(None) => {}
            Err(e) => build.rejected.push(format!(
                "VirtualService {}: spec.http[{i}]: {e}",
                bound.name
            )),
        }
    }
    listener.virtual_hosts.push(VirtualHost {
        name: bound.name.clone(),
        domains,
        routes,
    });
}

/// Adds a VirtualService's `tcp` (TCP servers) or `tls` (TLS passthrough servers) routes
/// once per listener, after those of the VirtualServices before it.
fn add_l4_routes(
    listener: &mut Listener,
    bound: &Bound<'_>,
    kind: ServerKind,
    build: &mut Build<'_, '_>,
) {
    let prefix = format!("{} ", bound.name);
    let routes = match kind {
        ServerKind::TlsPassthrough => &listener.l4.tls,
        _ => &listener.l4.tcp,
    };
    if routes.iter().any(|r| r.name.starts_with(&prefix)) {
        return;
    }
    let ctx = L4Context {
        namespace: bound.vo.namespace(),
        vs_name: &bound.name,
        vs_hosts: &bound.vs.hosts,
        gateway: Some(bound.gateway),
        port: bound.port,
        me: build.me,
        registry: build.registry,
    };
    match kind {
        ServerKind::TlsPassthrough => {
            let compiled = compile_tls(&bound.vs.tls, &ctx, build.clusters, &mut build.rejected);
            listener.l4.tls.extend(compiled);
        }
        _ => {
            let compiled = compile_tcp(&bound.vs.tcp, &ctx, build.clusters, &mut build.rejected);
            listener.l4.tcp.extend(compiled);
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
