//! Compiling VirtualService HTTP routes: match blocks, actions, rewrites, header edits,
//! CORS, and delegation to the routes of another VirtualService.

mod delegate;

use std::collections::BTreeMap;

use weft_api::networking::virtual_service::{
    HeaderOperations, Headers, HttpMatchRequest, HttpRoute, RedirectPortSelection,
};

use super::ProxyIdentity;
use super::clusters::Clusters;
use super::{Action, DerivePort, Redirect, Rewrite, Route, WeightedCluster};
use crate::resilience::RoutePolicy;
use crate::route::{Cors, HeaderOps, RouteMatch, StrMatcher};

/// Where a route is being compiled for.
#[derive(Clone)]
pub(super) struct RouteContext<'a> {
    pub namespace: &'a str,
    /// `namespace/name` of the Gateway, `None` for sidecars (the `mesh` gateway).
    pub gateway: Option<&'a str>,
    pub listener_port: u16,
    /// The proxy itself: `sourceLabels` and `sourceNamespace` name the client workload,
    /// which for a proxy's outbound routes is its own.
    pub me: &'a ProxyIdentity,
}

/// Compiles one VirtualService HTTP route; `None` when none of its match blocks apply to
/// this proxy (they name other gateways or ports).
pub(super) fn compile_route(
    http: &HttpRoute,
    ctx: &RouteContext<'_>,
    clusters: &mut Clusters<'_>,
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
    if let Some(d) = &http.delegate {
        return delegate::compile(http, d, ctx, clusters);
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
            derive_port: r.derive_port.map(|d| match d {
                RedirectPortSelection::FromProtocolDefault => DerivePort::ProtocolDefault,
                RedirectPortSelection::FromRequestPort => DerivePort::RequestPort,
            }),
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
            let cluster = clusters.cluster_for(dest, ctx.namespace);
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
    let cors = http.cors_policy.as_ref().map(Cors::compile).transpose()?;
    let policy = RoutePolicy::compile(http, |d| clusters.cluster_for(d, ctx.namespace));
    Ok(Some(Route {
        name: http.name.clone(),
        matches,
        action,
        request_headers,
        response_headers,
        rewrite,
        cors,
        policy,
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
    if !applies_here(m, ctx) {
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

/// Whether a match block can apply to this proxy: the gateways, port, source labels and
/// source namespace it names (Istio decides these when it builds the proxy's config).
fn applies_here(m: &HttpMatchRequest, ctx: &RouteContext<'_>) -> bool {
    if !m.gateways.is_empty() {
        let here = ctx.gateway.unwrap_or("mesh");
        if !m.gateways.iter().any(|g| {
            g == "mesh" && ctx.gateway.is_none()
                || super::gateway::qualify(g, ctx.namespace) == here
        }) {
            return false;
        }
    }
    m.port
        .is_none_or(|port| u16::try_from(port).ok() == Some(ctx.listener_port))
        && m.source_labels
            .iter()
            .all(|(k, v)| ctx.me.labels.get(k) == Some(v))
        && (m.source_namespace.is_empty() || m.source_namespace == ctx.me.namespace)
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
