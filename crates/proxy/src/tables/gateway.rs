//! Gateway mode: listeners for the servers of the Gateways that select this proxy, and
//! the routes of the VirtualServices bound to them. HTTPS servers that terminate TLS get
//! their certificates here (see `crate::tls`) and routes of their own; an HTTP server
//! with `httpsRedirect` answers every request with a 301 to HTTPS.

use std::collections::BTreeMap;
use std::sync::Arc;
use weft_api::Spec;

use weft_api::networking::gateway::{Server, ServerTlsMode, ServerTlsSettings};
use weft_api::networking::{Gateway, VirtualService};
use weft_api::object::Object;

use super::clusters::Clusters;
use super::http_routes::{RouteContext, compile_route};
use super::tcp::{L4Context, compile_tcp, compile_tls};
use super::{
    Action, DerivePort, HeaderOps, Listener, ProxyIdentity, Redirect, Route, Tables, VirtualHost,
};
use crate::registry::{Protocol, Registry};
use crate::tls::credentials::{self, Secrets};
use crate::tls::{TlsConfig, TlsServer};

/// Where a gateway opens a server port: as declared, or, with a low-port offset, a port
/// below 1024 moved up by it (80 -> 8080 with 8000), so an unprivileged gateway can
/// publish Istio's usual 80 and 443.
pub fn published_port(port: u16, low_port_offset: u16) -> u16 {
    if low_port_offset == 0 || port >= 1024 {
        return port;
    }
    port.checked_add(low_port_offset).unwrap_or(port)
}

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
        Tables::for_gateway_published(objects, registry, me, version, 0)
    }

    /// The same, with ports below 1024 published `low_port_offset` higher (0: as
    /// declared).
    pub fn for_gateway_published(
        objects: &[Object],
        registry: Registry,
        me: &ProxyIdentity,
        version: u64,
        low_port_offset: u16,
    ) -> Tables {
        let mut clusters = Clusters::new(objects, &registry);
        let mut build = Build {
            me,
            registry: &registry,
            clusters: &mut clusters,
            secrets: Secrets::new(objects, &me.namespace),
            low_port_offset,
            redirects: Vec::new(),
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
        add_https_redirects(
            std::mem::take(&mut build.redirects),
            &mut listeners,
            low_port_offset,
        );
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
    /// TLS terminated here (SIMPLE, MUTUAL, OPTIONAL_MUTUAL), then HTTP routes.
    TlsTerminate,
}

/// What a port carries; servers of one port must agree (TLS servers, terminated or
/// passed through, share a port by SNI).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortClass {
    Http,
    Tcp,
    Tls,
}

impl ServerKind {
    /// The kind of a server, or why it cannot be served.
    fn of(protocol: Protocol, tls: Option<&ServerTlsSettings>) -> Result<ServerKind, String> {
        let mode = tls.and_then(|t| t.mode).unwrap_or_default();
        let terminates = matches!(
            mode,
            ServerTlsMode::Simple | ServerTlsMode::Mutual | ServerTlsMode::OptionalMutual
        );
        match protocol {
            _ if protocol.is_http() => Ok(ServerKind::Http),
            Protocol::Tcp if tls.is_none() || mode == ServerTlsMode::Passthrough => {
                Ok(ServerKind::Tcp)
            }
            Protocol::Tls | Protocol::Https if mode == ServerTlsMode::Passthrough => {
                Ok(ServerKind::TlsPassthrough)
            }
            Protocol::Https if terminates => Ok(ServerKind::TlsTerminate),
            Protocol::Tls if terminates => Err(
                "terminating TLS for VirtualService tcp routes (protocol TLS with a \
                 terminating mode) is not served yet: use protocol HTTPS for HTTP routes, \
                 or mode PASSTHROUGH"
                    .into(),
            ),
            _ if mode == ServerTlsMode::AutoPassthrough => Err(
                "TLS mode AUTO_PASSTHROUGH (the destination named by the SNI, for east-west \
                 gateways) is not served yet"
                    .into(),
            ),
            _ if mode == ServerTlsMode::IstioMutual => Err(
                "TLS mode ISTIO_MUTUAL needs the mesh's own certificates, which come with \
                 mesh mutual TLS (not served yet)"
                    .into(),
            ),
            _ => Err(format!(
                "protocol {protocol:?} with TLS mode {mode:?} is not served"
            )),
        }
    }

    fn class(self) -> PortClass {
        match self {
            ServerKind::Http => PortClass::Http,
            ServerKind::Tcp => PortClass::Tcp,
            ServerKind::TlsPassthrough | ServerKind::TlsTerminate => PortClass::Tls,
        }
    }
}

fn class_of(listener: &Listener) -> PortClass {
    match listener.protocol {
        p if p.is_http() => PortClass::Http,
        Protocol::Https | Protocol::Tls => PortClass::Tls,
        _ => PortClass::Tcp,
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
    for server in &gw.servers {
        add_server(o, server, vses, listeners, build);
    }
}

/// Adds one server: its listener (shared with the port's other servers), then its
/// routes, or its `httpsRedirect`, or (terminating TLS) a TLS server with its own routes.
fn add_server(
    o: &Object,
    server: &Server,
    vses: &[(&Object, &VirtualService)],
    listeners: &mut BTreeMap<u16, Listener>,
    build: &mut Build<'_, '_>,
) {
    let gw_name = format!("{}/{}", o.namespace(), o.name());
    let Some(port) = &server.port else { return };
    let Ok(number) = u16::try_from(port.number) else {
        return;
    };
    let protocol = Protocol::of(&port.protocol, &port.name);
    let kind = match ServerKind::of(protocol, server.tls.as_ref()) {
        Ok(kind) => kind,
        Err(e) => {
            build.rejected.push(format!(
                "Gateway {gw_name}: port {number} ({}): {e}",
                port.protocol
            ));
            return;
        }
    };
    // A terminating server whose credentials are not there serves nothing yet.
    let mut tls_server = None;
    if kind == ServerKind::TlsTerminate {
        let Some(s) = tls_server_for(o, server, number, build) else {
            return;
        };
        tls_server = Some(s);
    }
    let published = published_port(number, build.low_port_offset);
    let listener = listeners.entry(number).or_insert_with(|| Listener {
        published_port: published,
        ..Listener::new(number, protocol)
    });
    if class_of(listener) != kind.class() {
        build.rejected.push(format!(
            "Gateway {gw_name}: port {number} ({}): the port already serves {:?}; \
             one port carries one protocol",
            port.protocol, listener.protocol
        ));
        return;
    }
    let redirect = kind == ServerKind::Http
        && server
            .tls
            .as_ref()
            .is_some_and(|t| t.https_redirect == Some(true));
    if redirect {
        // Envoy's `require_tls`: every request for the server's hosts is redirected,
        // whatever the VirtualServices say.
        build
            .redirects
            .push((number, server_domains(&server.hosts)));
        return;
    }
    if let Some(new) = &tls_server
        && let Some(taken) = listener.tls.iter().find(|s| s.sni_hosts == new.sni_hosts)
    {
        // Istio keeps the first of two servers for the same hosts on a port.
        tracing::warn!(
            gateway = %gw_name, port = number, hosts = ?new.sni_hosts, served_by = %taken.name,
            "a TLS server for these hosts is already on the port: this one is ignored"
        );
        return;
    }
    let at = (gw_name.as_str(), number);
    bind_virtual_services(at, server, kind, listener, tls_server.as_mut(), vses, build);
    listener.tls.extend(tls_server);
}

/// Adds the routes of the VirtualServices bound to the Gateway whose hosts `server`
/// admits: HTTP routes to the listener or to the terminating TLS server, L4 routes to
/// the listener. `at`: the gateway's `namespace/name` and the port.
fn bind_virtual_services(
    (gateway, port): (&str, u16),
    server: &Server,
    kind: ServerKind,
    listener: &mut Listener,
    mut tls_server: Option<&mut TlsServer>,
    vses: &[(&Object, &VirtualService)],
    build: &mut Build<'_, '_>,
) {
    for (vo, vs) in vses {
        if !vs
            .gateways
            .iter()
            .any(|g| qualify(g, vo.namespace()) == gateway)
        {
            continue;
        }
        let domains = gateway_domains(&vs.hosts, &server.hosts, vo.namespace());
        if domains.is_empty() {
            continue;
        }
        let bound = Bound {
            vo,
            vs,
            name: format!("{}/{}", vo.namespace(), vo.name()),
            gateway,
            port,
        };
        match (kind, tls_server.as_deref_mut()) {
            (ServerKind::TlsTerminate, Some(s)) => {
                add_http_routes(&mut s.virtual_hosts, &bound, domains, build)
            }
            (ServerKind::Http, _) => {
                add_http_routes(&mut listener.virtual_hosts, &bound, domains, build)
            }
            (ServerKind::Tcp | ServerKind::TlsPassthrough, _) => {
                add_l4_routes(listener, &bound, kind, build)
            }
            (ServerKind::TlsTerminate, None) => {}
        }
    }
}

/// The terminating server for `server`, with its certificates; `None` (the reason
/// recorded) when they cannot be had or the settings cannot be served.
fn tls_server_for(
    o: &Object,
    server: &Server,
    port: u16,
    build: &mut Build<'_, '_>,
) -> Option<TlsServer> {
    let gw_name = format!("{}/{}", o.namespace(), o.name());
    let tls = server.tls.as_ref()?;
    let mode = tls.mode.unwrap_or_default();
    if let Some(why) = unsupported_checks(tls) {
        build
            .rejected
            .push(format!("Gateway {gw_name}: port {port}: {why}"));
        return None;
    }
    let mutual = matches!(mode, ServerTlsMode::Mutual | ServerTlsMode::OptionalMutual);
    let credential = match credentials::load(tls, &build.secrets, mutual) {
        Ok(c) => c,
        Err(e) => {
            build.rejected.push(e.reason(&gw_name, port));
            return None;
        }
    };
    let (config, offered) = match crate::tls::config::server_config(tls, &credential) {
        Ok(built) => built,
        Err(e) => {
            let at_fault = if credential.source.starts_with("kubernetes://") {
                // A key that fits no certificate is the Secret's fault.
                let name = credential.source.split(',').next().unwrap_or_default();
                format!(
                    "Secret {}/{}: {e} (needed by the TLS server on port {port} of Gateway {gw_name})",
                    build.me.namespace,
                    name.trim_start_matches("kubernetes://")
                )
            } else {
                format!("Gateway {gw_name}: port {port}: {e}")
            };
            build.rejected.push(at_fault);
            return None;
        }
    };
    let port_name = server.port.as_ref().map_or("", |p| p.name.as_str());
    Some(TlsServer {
        name: Arc::from(format!(
            "https.{port}.{port_name}.{}.{}",
            o.name(),
            o.namespace()
        )),
        sni_hosts: server_domains(&server.hosts),
        mode: match mode {
            ServerTlsMode::Mutual => "MUTUAL",
            ServerTlsMode::OptionalMutual => "OPTIONAL_MUTUAL",
            _ => "SIMPLE",
        }
        .to_string(),
        credential: credential.source,
        offered,
        config: TlsConfig(config),
        virtual_hosts: Vec::new(),
    })
}

/// Client certificate checks beyond the CA, which are not served yet: serving without
/// a check the user asked for would let in clients it refuses, so the server stays down.
fn unsupported_checks(tls: &ServerTlsSettings) -> Option<String> {
    let unsupported = [
        ("subjectAltNames", !tls.subject_alt_names.is_empty()),
        (
            "verifyCertificateSpki",
            !tls.verify_certificate_spki.is_empty(),
        ),
        (
            "verifyCertificateHash",
            !tls.verify_certificate_hash.is_empty(),
        ),
    ];
    let (field, _) = unsupported.iter().find(|(_, set)| *set)?;
    Some(format!(
        "tls.{field} (client certificate checks beyond the CA) is not served yet: the \
         server stays down rather than skip the check"
    ))
}

/// A server's hosts as domains: lower-case, without their `namespace/` part.
fn server_domains(hosts: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for h in hosts {
        let host = h
            .split_once('/')
            .map_or(h.as_str(), |(_, h)| h)
            .to_ascii_lowercase();
        if !out.contains(&host) {
            out.push(host);
        }
    }
    out
}

/// Adds the `httpsRedirect` virtual hosts: a 301 to `https://` + the host + the path. The
/// port is the one this gateway publishes its HTTPS servers on (none when that is 443),
/// so the redirect lands on a server that answers it even behind a low-port offset.
fn add_https_redirects(
    redirects: Vec<(u16, Vec<String>)>,
    listeners: &mut BTreeMap<u16, Listener>,
    low_port_offset: u16,
) {
    let https = listeners
        .values()
        .filter(|l| !l.tls.is_empty())
        .map(|l| l.port)
        .min_by_key(|p| (*p != 443, *p))
        .map(|p| published_port(p, low_port_offset));
    for (port, domains) in redirects {
        let Some(listener) = listeners.get_mut(&port) else {
            continue;
        };
        listener.virtual_hosts.push(VirtualHost {
            name: format!("https-redirect:{port}"),
            domains,
            routes: vec![Route {
                name: "https-redirect".into(),
                matches: Vec::new(),
                action: Action::Redirect(Redirect {
                    status: 301,
                    scheme: Some("https".into()),
                    authority: None,
                    port: https.filter(|p| *p != 443),
                    derive_port: Some(DerivePort::ProtocolDefault),
                    path: None,
                }),
                request_headers: HeaderOps::default(),
                response_headers: HeaderOps::default(),
                rewrite: None,
                cors: None,
                policy: Default::default(),
            }],
        });
    }
}

/// What `for_gateway` is building, shared by every Gateway it adds.
struct Build<'o, 'c> {
    me: &'o ProxyIdentity,
    registry: &'o Registry,
    clusters: &'c mut Clusters<'o>,
    /// The Secrets of the gateway's namespace (`credentialName`).
    secrets: Secrets<'o>,
    low_port_offset: u16,
    /// HTTP servers with `httpsRedirect`: their port and domains.
    redirects: Vec<(u16, Vec<String>)>,
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
    virtual_hosts: &mut Vec<VirtualHost>,
    bound: &Bound<'_>,
    domains: Vec<String>,
    build: &mut Build<'_, '_>,
) {
    if virtual_hosts
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
    virtual_hosts.push(VirtualHost {
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
