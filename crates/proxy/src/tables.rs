//! Compiles the config objects a proxy has into the immutable tables it serves requests
//! from: listeners, virtual hosts with their ordered routes, clusters. A new set of
//! tables replaces the old one in a single step; requests in flight keep theirs.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use weft_api::Spec;
use weft_api::analyze::fqdn;
use weft_api::networking::destination_rule::{SimpleLb, Subset};
use weft_api::networking::virtual_service::{
    Destination, HeaderOperations, Headers, HttpMatchRequest, HttpRoute,
};
use weft_api::networking::{DestinationRule, Gateway, VirtualService};
use weft_api::object::Object;

use crate::cluster::{Cluster, LbPolicy, UpstreamEndpoint};
use crate::registry::{Protocol, Registry};
use crate::route::{HeaderOps, RouteMatch, StrMatcher};

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
}

/// A port the proxy listens on and the virtual hosts it serves there.
#[derive(Debug, Serialize)]
pub struct Listener {
    pub port: u16,
    pub protocol: Protocol,
    pub virtual_hosts: Vec<VirtualHost>,
}

/// The routes of one VirtualService for the hosts it claims on a listener.
#[derive(Debug, Serialize)]
pub struct VirtualHost {
    /// `namespace/name` of the VirtualService.
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
    pub path: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Rewrite {
    pub uri: Option<String>,
    pub authority: Option<String>,
    #[serde(skip)]
    pub uri_regex: Option<(regex::Regex, String)>,
}

impl Tables {
    /// Builds the tables of a gateway proxy: listeners for the servers of the Gateways
    /// whose selector matches `me`, routes from the VirtualServices bound to them.
    pub fn for_gateway(objects: &[Object], me: &ProxyIdentity, version: u64) -> Tables {
        let mut t = Tables {
            version,
            registry: Registry::build(objects),
            ..Tables::default()
        };
        let vses: Vec<(&Object, &VirtualService)> = objects
            .iter()
            .filter_map(|o| match &o.spec {
                Spec::VirtualService(vs) => Some((o, vs.as_ref())),
                _ => None,
            })
            .collect();
        let rules: Vec<(&Object, &DestinationRule)> = objects
            .iter()
            .filter_map(|o| match &o.spec {
                Spec::DestinationRule(dr) => Some((o, dr.as_ref())),
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
            t.add_gateway(o, gw, &vses, &rules);
        }
        t
    }

    fn add_gateway(
        &mut self,
        o: &Object,
        gw: &Gateway,
        vses: &[(&Object, &VirtualService)],
        rules: &[(&Object, &DestinationRule)],
    ) {
        let gw_name = format!("{}/{}", o.namespace(), o.name());
        for server in &gw.servers {
            let Some(port) = &server.port else { continue };
            let Ok(number) = u16::try_from(port.number) else {
                continue;
            };
            let protocol = Protocol::of(&port.protocol, &port.name);
            if !protocol.is_http() {
                self.rejected.push(format!(
                    "Gateway {gw_name}: port {number} ({}): only HTTP servers are served so far",
                    port.protocol
                ));
                continue;
            }
            let listener = self.listeners.entry(number).or_insert_with(|| Listener {
                port: number,
                protocol,
                virtual_hosts: Vec::new(),
            });
            for (vo, vs) in vses {
                let binds = vs
                    .gateways
                    .iter()
                    .any(|g| qualify(g, vo.namespace()) == gw_name);
                if !binds {
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
                    match compile_route(http, &ctx, &self.registry, rules, &mut self.clusters) {
                        Ok(Some(route)) => routes.push(route),
                        Ok(None) => {}
                        Err(e) => self
                            .rejected
                            .push(format!("VirtualService {name}: spec.http[{i}]: {e}")),
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
}

/// `name` -> `namespace/name` for a gateway reference made from `namespace`.
fn qualify(gateway: &str, namespace: &str) -> String {
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

/// Where a route is being compiled for.
struct RouteContext<'a> {
    namespace: &'a str,
    gateway: Option<&'a str>,
    listener_port: u16,
}

/// Compiles one VirtualService HTTP route; `None` when none of its match blocks apply to
/// this proxy (they name other gateways or ports).
fn compile_route(
    http: &HttpRoute,
    ctx: &RouteContext<'_>,
    registry: &Registry,
    rules: &[(&Object, &DestinationRule)],
    clusters: &mut BTreeMap<String, Arc<Cluster>>,
) -> Result<Option<Route>, String> {
    let mut matches = Vec::new();
    for m in &http.matches {
        if let Some(compiled) = compile_match(m, ctx)? {
            matches.push(compiled);
        }
    }
    if !http.matches.is_empty() && matches.is_empty() {
        return Ok(None);
    }
    let action = if let Some(r) = &http.redirect {
        Action::Redirect(Redirect {
            status: u16::try_from(r.redirect_code)
                .ok()
                .filter(|c| *c != 0)
                .unwrap_or(301),
            scheme: non_empty(&r.scheme),
            authority: non_empty(&r.authority),
            port: r.port.and_then(|p| u16::try_from(p).ok()),
            path: non_empty(&r.uri),
        })
    } else if let Some(d) = &http.direct_response {
        let body = d
            .body
            .as_ref()
            .and_then(|b| b.string.clone())
            .unwrap_or_default();
        Action::Direct {
            status: u16::try_from(d.status).unwrap_or(500),
            body,
        }
    } else {
        let mut weighted = Vec::new();
        let single = http.route.len() == 1;
        for r in &http.route {
            let Some(dest) = &r.destination else { continue };
            let cluster = cluster_for(dest, ctx.namespace, registry, rules, clusters);
            let weight = if single && r.weight == 0 {
                100
            } else {
                u32::try_from(r.weight).unwrap_or(0)
            };
            let (request_headers, response_headers) = header_ops(r.headers.as_ref());
            weighted.push(WeightedCluster {
                cluster,
                weight,
                request_headers,
                response_headers,
            });
        }
        Action::Forward(weighted)
    };
    let (request_headers, response_headers) = header_ops(http.headers.as_ref());
    let rewrite = match &http.rewrite {
        Some(rw) => Some(Rewrite {
            uri: non_empty(&rw.uri),
            authority: non_empty(&rw.authority),
            uri_regex: match &rw.uri_regex_rewrite {
                Some(r) => Some((
                    regex::Regex::new(&r.regex).map_err(|e| e.to_string())?,
                    r.rewrite.clone(),
                )),
                None => None,
            },
        }),
        None => None,
    };
    Ok(Some(Route {
        name: http.name.clone(),
        matches,
        action,
        request_headers,
        response_headers,
        rewrite,
    }))
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// Compiles a match block, or `None` when it can never apply here (another gateway).
fn compile_match(
    m: &HttpMatchRequest,
    ctx: &RouteContext<'_>,
) -> Result<Option<RouteMatch>, String> {
    if !m.gateways.is_empty() {
        let here = ctx.gateway.unwrap_or("mesh");
        if !m
            .gateways
            .iter()
            .any(|g| g == "mesh" && ctx.gateway.is_none() || qualify(g, ctx.namespace) == here)
        {
            return Ok(None);
        }
    }
    if let Some(port) = m.port
        && u16::try_from(port).ok() != Some(ctx.listener_port)
    {
        return Ok(None);
    }
    let one = |s: &Option<weft_api::common::StringMatch>, fold: bool| {
        s.as_ref().map(|s| StrMatcher::compile(s, fold)).transpose()
    };
    let many = |map: &BTreeMap<String, weft_api::common::StringMatch>| -> Result<Vec<(String, StrMatcher)>, String> {
        map.iter().map(|(k, v)| Ok((k.to_ascii_lowercase(), StrMatcher::compile(v, false)?))).collect()
    };
    Ok(Some(RouteMatch {
        uri: one(&m.uri, m.ignore_uri_case)?,
        ignore_uri_case: m.ignore_uri_case,
        scheme: one(&m.scheme, false)?,
        method: one(&m.method, false)?,
        authority: one(&m.authority, false)?,
        headers: many(&m.headers)?,
        without_headers: many(&m.without_headers)?,
        query_params: many(&m.query_params)?,
        port: None,
    }))
}

fn header_ops(headers: Option<&Headers>) -> (HeaderOps, HeaderOps) {
    let conv = |ops: Option<&HeaderOperations>| match ops {
        Some(o) => HeaderOps {
            set: o.set.clone(),
            add: o.add.clone(),
            remove: o.remove.clone(),
        },
        None => HeaderOps::default(),
    };
    match headers {
        Some(h) => (conv(h.request.as_ref()), conv(h.response.as_ref())),
        None => (HeaderOps::default(), HeaderOps::default()),
    }
}

/// The cluster a destination names, built on first use; its name follows Istio's even
/// when the service or subset is unknown (requests to it then fail with `NC`).
fn cluster_for(
    dest: &Destination,
    namespace: &str,
    registry: &Registry,
    rules: &[(&Object, &DestinationRule)],
    clusters: &mut BTreeMap<String, Arc<Cluster>>,
) -> String {
    let Some(service) = registry.lookup(&dest.host, namespace) else {
        let port = dest.port.map_or(0, |p| p.number);
        return Cluster::name_for(
            u16::try_from(port).unwrap_or(0),
            &dest.subset,
            &fqdn(&dest.host, namespace),
        );
    };
    let wanted = dest.port.and_then(|p| u16::try_from(p.number).ok());
    let Some(port) = service.port(wanted) else {
        return Cluster::name_for(wanted.unwrap_or(0), &dest.subset, &service.host);
    };
    let name = Cluster::name_for(port.number, &dest.subset, &service.host);
    if clusters.contains_key(&name) {
        return name;
    }
    let rule = rules
        .iter()
        .find(|(o, dr)| fqdn(&dr.host, o.namespace()) == service.host);
    let subset = rule.and_then(|(_, dr)| dr.subsets.iter().find(|s| s.name == dest.subset));
    if !dest.subset.is_empty() && subset.is_none() {
        return name;
    }
    let labels = subset.map(|s| &s.labels);
    let endpoints = service
        .endpoints
        .iter()
        .filter(|e| labels.is_none_or(|l| l.iter().all(|(k, v)| e.labels.get(k) == Some(v))))
        .map(|e| UpstreamEndpoint::new(format!("{}:{}", e.address, e.port_for(port))))
        .collect();
    let lb = load_balancer(rule.map(|(_, dr)| *dr), subset, port.number);
    clusters.insert(
        name.clone(),
        Arc::new(Cluster::new(name.clone(), port.protocol, lb, endpoints)),
    );
    name
}

/// Istio's precedence: the subset's port-level policy, the subset's, the rule's
/// port-level policy, the rule's; LEAST_REQUEST when none says.
fn load_balancer(rule: Option<&DestinationRule>, subset: Option<&Subset>, port: u16) -> LbPolicy {
    let policies = [
        subset.and_then(|s| s.traffic_policy.as_ref()),
        rule.and_then(|r| r.traffic_policy.as_ref()),
    ];
    let simple = policies.into_iter().flatten().find_map(|tp| {
        let port_level = tp
            .port_level_settings
            .iter()
            .find(|p| p.port.is_some_and(|sel| sel.number == u32::from(port)));
        port_level
            .and_then(|p| p.load_balancer.as_ref())
            .or(tp.load_balancer.as_ref())
            .and_then(|lb| lb.simple)
    });
    match simple {
        Some(SimpleLb::RoundRobin) => LbPolicy::RoundRobin,
        Some(SimpleLb::Random) => LbPolicy::Random,
        _ => LbPolicy::LeastRequest,
    }
}
