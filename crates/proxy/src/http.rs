//! The HTTP path of one request: pick the virtual host and route from the current tables,
//! apply the route's action (and CORS policy), pick an endpoint, forward on a pooled
//! upstream connection, and stream the answer back (WebSocket upgrades become a tunnel).

mod attempts;
mod mirror;
mod pool;
mod replay;
mod server;
mod upgrade;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;

use crate::cluster::{Cluster, UpstreamProtocol};
use crate::drain::Drain;
use crate::error::ProxyError;
use crate::resilience::AbortWith;
use crate::route::{CorsVerdict, RequestView, pick_virtual_host};
use crate::stats::Stats;
use crate::tables::{Action, DerivePort, Redirect, Route, Tables, WeightedCluster};
use attempts::{Answer, Attempts, Budget, Origin, Template};
use pool::{Pool, SendError};
use replay::RequestBody;
use server::header_bytes;
pub use server::{ServerLimits, serve, serve_connection, serve_downstream, server_builder};
use upgrade::Upgrade;

/// What a body stream can fail with: the peer's error, or the proxy cutting it off.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

pub type Body = BoxBody<Bytes, BodyError>;

/// Boxes any body whose errors can be boxed.
pub fn boxed<B>(body: B) -> Body
where
    B: hyper::body::Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BodyError>,
{
    body.map_err(Into::into).boxed()
}

/// What every connection of a proxy shares.
pub struct Shared {
    pub tables: ArcSwap<Tables>,
    pool: Pool,
    pub stats: Stats,
    pub drain: Drain,
    pub limits: ServerLimits,
}

impl Shared {
    pub fn new(tables: Tables) -> Arc<Self> {
        Self::with_limits(tables, ServerLimits::default())
    }

    pub fn with_limits(tables: Tables, limits: ServerLimits) -> Arc<Self> {
        Arc::new(Self {
            tables: ArcSwap::from_pointee(tables),
            pool: Pool::default(),
            stats: Stats::default(),
            drain: Drain::default(),
            limits,
        })
    }
}

/// The connection a request arrived on.
#[derive(Debug, Clone)]
pub struct Downstream {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// The listener port (routes match on it).
    pub port: u16,
    /// Where a captured connection was going (`SO_ORIGINAL_DST`); `None` at a gateway,
    /// whose clients connect to it directly. PASSTHROUGH load balancing sends there.
    pub original_dst: Option<SocketAddr>,
    /// The gateway server that terminated the connection's TLS (its name in the
    /// listener's `tls`): requests take its routes and count as `https`. `None`: plain.
    pub tls_server: Option<Arc<str>>,
}

/// Serves one request: never fails; errors become the proxy's own responses.
pub async fn handle(req: Request<Incoming>, down: &Downstream, shared: &Shared) -> Response<Body> {
    shared.stats.request_started();
    let too_large =
        usize::try_from(shared.limits.header_bytes()).is_ok_and(|limit| header_bytes(&req) > limit);
    let resp = if too_large {
        local_reply(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "", None)
    } else {
        route_and_forward_or_reply(req, down, shared).await
    };
    shared.stats.response_sent(resp.status());
    resp
}

async fn route_and_forward_or_reply(
    req: Request<Incoming>,
    down: &Downstream,
    shared: &Shared,
) -> Response<Body> {
    let tables = shared.tables.load_full();
    match route_and_forward(req, down, &tables, shared).await {
        Ok(resp) => resp,
        Err(e) => {
            tracing::debug!(reason = %e, "local reply");
            local_reply(e.status(), e.body(), Some(&e))
        }
    }
}

/// The route a request matched, and the request's authority and path.
struct Routed<'a> {
    route: &'a Route,
    /// The index of the match block that matched (`None`: the route matches everything).
    matched: Option<usize>,
    authority: &'a str,
    path: &'a str,
}

async fn route_and_forward(
    req: Request<Incoming>,
    down: &Downstream,
    tables: &Tables,
    shared: &Shared,
) -> Result<Response<Body>, ProxyError> {
    let authority = authority_of(&req).to_string();
    let listener = tables
        .listeners
        .get(&down.port)
        .ok_or_else(|| ProxyError::NoRoute(format!("no listener on port {}", down.port)))?;
    let (virtual_hosts, scheme) = match &down.tls_server {
        None => (&listener.virtual_hosts, "http"),
        Some(name) => {
            let server = listener
                .tls
                .iter()
                .find(|s| s.name == *name)
                .ok_or_else(|| {
                    ProxyError::NoRoute(format!("TLS server {name} is no longer configured"))
                })?;
            (&server.virtual_hosts, "https")
        }
    };
    let vh = pick_virtual_host(virtual_hosts, |v| v.domains.as_slice(), &authority)
        .ok_or_else(|| ProxyError::NoRoute(format!("no virtual host for {authority:?}")))?;
    let (mut parts, body) = req.into_parts();
    if scheme == "https" && !parts.headers.contains_key("x-forwarded-proto") {
        parts
            .headers
            .insert("x-forwarded-proto", HeaderValue::from_static("https"));
    }
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let view = RequestView {
        parts: &parts,
        path: &path,
        authority: &authority,
        scheme,
        listener_port: down.port,
    };
    let (route, matched) = find_route(&vh.routes, &view).ok_or_else(|| {
        ProxyError::NoRoute(format!(
            "no route of {} matches {} {path}",
            vh.name, parts.method
        ))
    })?;
    if let Some(fault) = &route.policy.fault {
        if let Some(delay) = fault.roll_delay() {
            tokio::time::sleep(delay).await;
        }
        if let Some(abort) = fault.roll_abort() {
            return Ok(fault_reply(abort));
        }
    }
    let weighted = match &route.action {
        Action::Direct { status, body } => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return Ok(local_reply(status, body, None));
        }
        Action::Redirect(r) => return Ok(redirect(r, &authority, &path, down.port)),
        Action::Forward(weighted) => weighted,
        Action::Delegate(_) => {
            return Err(ProxyError::NoRoute(format!(
                "route {:?} delegates to nothing",
                route.name
            )));
        }
    };
    let routed = Routed {
        route,
        matched,
        authority: &authority,
        path: &path,
    };
    let req = Request::from_parts(parts, body);
    forward_with_cors(req, down, &routed, weighted, tables, shared).await
}

/// Forwards to one of the weighted destinations, under the route's CORS policy: Envoy's
/// CORS filter runs for forwarding routes only, and may answer a preflight itself.
async fn forward_with_cors(
    req: Request<Incoming>,
    down: &Downstream,
    routed: &Routed<'_>,
    weighted: &[WeightedCluster],
    tables: &Tables,
    shared: &Shared,
) -> Result<Response<Body>, ProxyError> {
    let cors = routed
        .route
        .cors
        .as_ref()
        .map(|c| c.verdict(req.method(), req.headers()));
    if let Some(CorsVerdict::Preflight(headers)) = cors {
        let mut resp = local_reply(StatusCode::OK, "", None);
        resp.headers_mut().extend(headers);
        return Ok(resp);
    }
    let target = pick_weighted(weighted).ok_or_else(|| {
        ProxyError::NoCluster(format!("route {:?} has no destination", routed.route.name))
    })?;
    let mut resp = forward(req, down, routed, target, tables, shared).await?;
    if let Some(CorsVerdict::Allowed(headers)) = cors {
        resp.headers_mut().extend(headers);
    }
    Ok(resp)
}

/// The first route whose match accepts the request, and which of its match blocks did; a
/// delegating route's group of routes is searched in its place.
fn find_route<'r>(
    routes: &'r [Route],
    view: &RequestView<'_>,
) -> Option<(&'r Route, Option<usize>)> {
    routes.iter().find_map(|r| {
        if let Action::Delegate(children) = &r.action {
            return find_route(children, view);
        }
        if r.matches.is_empty() {
            return Some((r, None));
        }
        r.matches
            .iter()
            .position(|m| m.matches(view))
            .map(|i| (r, Some(i)))
    })
}

/// Picks a destination in proportion to its weight (the first when all weigh nothing).
fn pick_weighted(weighted: &[WeightedCluster]) -> Option<&WeightedCluster> {
    let total: u64 = weighted.iter().map(|w| u64::from(w.weight)).sum();
    if total == 0 {
        return weighted.first();
    }
    let mut roll = fastrand::u64(..total);
    weighted.iter().find(|w| {
        let hit = roll < u64::from(w.weight);
        roll = roll.saturating_sub(u64::from(w.weight));
        hit
    })
}

async fn forward(
    req: Request<Incoming>,
    down: &Downstream,
    routed: &Routed<'_>,
    target: &WeightedCluster,
    tables: &Tables,
    shared: &Shared,
) -> Result<Response<Body>, ProxyError> {
    let cluster = tables
        .clusters
        .get(&target.cluster)
        .ok_or_else(|| ProxyError::NoCluster(format!("cluster {} is not known", target.cluster)))?;
    let (mut parts, body) = req.into_parts();
    let downstream_version = parts.version;
    let websocket = match upgrade::requested(&parts.headers) {
        Upgrade::Refused(token) => return Ok(refuse_upgrade(&token)),
        Upgrade::WebSocket(value) => Some(value),
        Upgrade::None => None,
    };
    let policy = &routed.route.policy;
    let idle = shared.limits.stream_idle_timeout;
    let mut budget = Budget::new(policy, &mut parts.headers, down.peer.ip(), idle);
    // Upgrades need HTTP/1.1 end to end, and go once.
    let http2 = websocket.is_none() && upstream_http2(cluster, parts.version);
    let downstream_upgrade = websocket
        .is_some()
        .then(|| parts.extensions.remove::<OnUpgrade>())
        .flatten();
    if websocket.is_some() {
        budget = budget.without_retries();
    }
    let mirrors: Vec<_> = policy.mirrors.iter().filter(|m| m.roll()).collect();
    let keep = budget.retry.retries > 0 || !mirrors.is_empty();
    let mut body = RequestBody::read(body, keep)
        .await
        .map_err(|e| ProxyError::DownstreamReset(format!("reading the request body: {}", e.0)))?;
    let mut template = template(parts, routed, target, down.peer, http2);
    if let Some(value) = websocket {
        upgrade::restore(&mut template.headers, value);
    }
    let origin = Origin {
        path: routed.path,
        peer: down.peer,
        local: down.local,
        original_dst: down.original_dst,
    };
    for m in mirrors {
        match tables.clusters.get(&m.cluster) {
            Some(c) if body.replayable() => {
                let copy = body.next();
                mirror::spawn(shared, c.clone(), &template, copy, &origin, budget.deadline);
            }
            Some(_) => tracing::debug!(cluster = %m.cluster, "body too long to mirror"),
            None => tracing::debug!(cluster = %m.cluster, "mirror cluster is not known"),
        }
    }
    let started = Instant::now();
    let attempts = Attempts {
        template: &template,
        cluster,
        budget: &budget,
        origin: &origin,
        shared,
    };
    let Answer {
        mut resp,
        set_cookie,
    } = attempts.run(&mut body).await?;
    finish_response(
        &mut resp,
        routed.route,
        target,
        started,
        set_cookie,
        downstream_upgrade,
    );
    if (budget.deadline.is_some() || idle.is_some())
        && resp.status() != StatusCode::SWITCHING_PROTOCOLS
    {
        resp = resp.map(|b| replay::Watched::wrap(b, budget.deadline, idle));
    }
    // The client hears its own protocol whatever the upstream spoke (an HTTP/1.0
    // upstream's answer goes out as HTTP/1.1 to an HTTP/1.1 client), as with Envoy.
    *resp.version_mut() = downstream_version;
    Ok(resp)
}

/// The upstream's answer as the client gets it: a `101` to a WebSocket request becomes a
/// tunnel (keeping its upgrade headers), other answers lose their hop-by-hop headers; then
/// Envoy's headers, a generated hash cookie, and the route's response header edits.
fn finish_response(
    resp: &mut Response<Body>,
    route: &Route,
    target: &WeightedCluster,
    started: Instant,
    set_cookie: Option<String>,
    downstream_upgrade: Option<OnUpgrade>,
) {
    match downstream_upgrade {
        Some(down_upgrade) if resp.status() == StatusCode::SWITCHING_PROTOCOLS => {
            upgrade::tunnel(down_upgrade, hyper::upgrade::on(&mut *resp));
        }
        _ => strip_hop_by_hop(resp.headers_mut()),
    }
    let headers = resp.headers_mut();
    let elapsed = started.elapsed().as_millis().to_string();
    if let Ok(v) = HeaderValue::try_from(elapsed) {
        headers.insert("x-envoy-upstream-service-time", v);
    }
    headers.insert(header::SERVER, HeaderValue::from_static("istio-envoy"));
    if let Some(v) = set_cookie.and_then(|c| HeaderValue::try_from(c).ok()) {
        headers.append(header::SET_COOKIE, v);
    }
    route.response_headers.apply(headers);
    target.response_headers.apply(headers);
}

/// Whether requests to `cluster` go over HTTP/2: its port or DestinationRule says so, or
/// `useClientProtocol` and the client spoke HTTP/2.
fn upstream_http2(cluster: &Cluster, downstream: Version) -> bool {
    match cluster.connection.protocol {
        UpstreamProtocol::Http2 => true,
        UpstreamProtocol::Http1 => false,
        UpstreamProtocol::UseClient => downstream == Version::HTTP_2,
    }
}

/// Turns the downstream request into what every attempt sends: rewritten path, Host
/// (HTTP/2's `:authority`), Envoy's forwarding headers, the route's and destination's
/// header edits.
fn template(
    parts: http::request::Parts,
    routed: &Routed<'_>,
    target: &WeightedCluster,
    peer: SocketAddr,
    http2: bool,
) -> Template {
    let route = routed.route;
    let path = rewrite_path(route, routed.matched, routed.path);
    let host = route
        .rewrite
        .as_ref()
        .and_then(|r| r.authority.clone())
        .unwrap_or_else(|| routed.authority.to_string());
    let mut headers = parts.headers;
    prepare_request_headers(&mut headers, &host, peer);
    route.request_headers.apply(&mut headers);
    target.request_headers.apply(&mut headers);
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map_or(host, str::to_string);
    Template {
        method: parts.method,
        path,
        host,
        headers,
        http2,
        version: parts.version,
    }
}

fn send_error(e: SendError, cluster: &str, address: &str) -> ProxyError {
    match e {
        SendError::ConnectTimeout(t) => ProxyError::ConnectFailure(format!(
            "{cluster}: connection to {address} timed out after {}ms",
            t.as_millis()
        )),
        SendError::Connect(e) => ProxyError::ConnectFailure(format!("{cluster}: {address}: {e}")),
        SendError::Request(e) => ProxyError::UpstreamReset(format!("{cluster}: {address}: {e}")),
        SendError::Overflow(why) => ProxyError::Overflow(format!("{cluster}: {why}")),
    }
}

/// The answer an injected abort gets: its HTTP status, or a trailers-only gRPC answer
/// carrying its gRPC status; either says `FI` in `x-weft-reason`.
fn fault_reply(abort: AbortWith) -> Response<Body> {
    let status = match abort {
        AbortWith::Http(status) => status,
        AbortWith::Grpc(_) => 200,
    };
    let error = ProxyError::FaultAbort(status);
    let body = if let AbortWith::Grpc(_) = abort {
        ""
    } else {
        error.body()
    };
    let mut resp = local_reply(error.status(), body, Some(&error));
    if let AbortWith::Grpc(code) = abort {
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        headers.insert("grpc-status", HeaderValue::from(u16::from(code)));
        headers.insert(
            "grpc-message",
            HeaderValue::from_static("fault filter abort"),
        );
    }
    resp
}

/// Envoy answers upgrades it has no config for with 403.
fn refuse_upgrade(token: &str) -> Response<Body> {
    let mut resp = local_reply(StatusCode::FORBIDDEN, "", None);
    let reason = format!("upgrade {token:?} is not allowed: only websocket upgrades are proxied");
    if let Ok(v) = HeaderValue::try_from(reason) {
        resp.headers_mut().insert("x-weft-reason", v);
    }
    resp
}

/// The path after the route's rewrite: a prefix match's prefix is replaced, any other
/// match's whole path; a regex rewrite substitutes in the path.
fn rewrite_path(route: &Route, matched: Option<usize>, path: &str) -> String {
    let Some(rw) = &route.rewrite else {
        return path.to_string();
    };
    let (only, query) = path
        .split_once('?')
        .map_or((path, None), |(p, q)| (p, Some(q)));
    let mut new = only.to_string();
    if let Some((re, with)) = &rw.uri_regex {
        new = re.replace_all(only, with.as_str()).into_owned();
    } else if let Some(uri) = &rw.uri {
        let prefix = matched.and_then(|i| match route.matches[i].uri.as_ref() {
            Some(crate::route::StrMatcher::Prefix(p)) => Some(p.len()),
            _ => None,
        });
        new = match prefix {
            Some(n) if only.len() >= n => format!("{uri}{}", &only[n..]),
            _ => uri.clone(),
        };
    }
    match query {
        Some(q) => format!("{new}?{q}"),
        None => new,
    }
}

/// The headers every forwarded request gets (Envoy's): the authority as Host, a request
/// id, the client's address appended to `x-forwarded-for`, and no hop-by-hop headers.
pub(crate) fn prepare_request_headers(headers: &mut HeaderMap, host: &str, peer: SocketAddr) {
    // `te: trailers` is the one TE value that survives a hop: gRPC depends on it.
    let trailers = headers
        .get_all(header::TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("trailers"));
    strip_hop_by_hop(headers);
    if trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    if let Ok(v) = HeaderValue::try_from(host) {
        headers.insert(header::HOST, v);
    }
    if !headers.contains_key("x-request-id")
        && let Ok(v) = HeaderValue::try_from(request_id())
    {
        headers.insert("x-request-id", v);
    }
    let forwarded = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prev) => format!("{prev}, {}", peer.ip()),
        None => peer.ip().to_string(),
    };
    if let Ok(v) = HeaderValue::try_from(forwarded) {
        headers.insert("x-forwarded-for", v);
    }
    if !headers.contains_key("x-forwarded-proto") {
        headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    }
}

/// A random version-4 UUID, as Envoy generates for `x-request-id`.
fn request_id() -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut b = fastrand::u128(..).to_be_bytes();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut id = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            id.push('-');
        }
        id.push(char::from(HEX[usize::from(byte >> 4)]));
        id.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    id
}

const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
];

pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::try_from(n.trim()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// The request's authority: the URI's (HTTP/2), else the Host header (HTTP/1.1).
pub(crate) fn authority_of<B>(req: &Request<B>) -> &str {
    req.uri()
        .authority()
        .map(|a| a.as_str())
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
        })
        .unwrap_or("")
}

/// Envoy's redirect: the request's host keeps its port unless the redirect names a port
/// (or leaves plain HTTP's `:80` for another scheme); a new path without a query keeps
/// the request's query.
fn redirect(r: &Redirect, authority: &str, path: &str, listener_port: u16) -> Response<Body> {
    let scheme = r.scheme.as_deref().unwrap_or("http");
    let bare = crate::route::strip_port(authority);
    let request_port = authority
        .strip_prefix(bare)
        .and_then(|p| p.strip_prefix(':'))
        .and_then(|p| p.parse().ok());
    let host = r.authority.as_deref().unwrap_or(bare);
    // Envoy keeps the request's host:port unless the redirect sets a port, derives one,
    // or leaves plain http on :80.
    let port = match (r.port, r.derive_port) {
        (Some(p), _) => Some(p),
        (None, Some(DerivePort::ProtocolDefault)) => None,
        (None, Some(DerivePort::RequestPort)) => Some(request_port.unwrap_or(listener_port)),
        (None, None) if r.authority.is_some() => None,
        (None, None) => request_port.filter(|p| !(scheme != "http" && *p == 80)),
    };
    let port = port.map(|p| format!(":{p}")).unwrap_or_default();
    let path = match (&r.path, path.split_once('?')) {
        (Some(new), Some((_, query))) if !new.contains('?') => format!("{new}?{query}"),
        (Some(new), _) => new.clone(),
        (None, _) => path.to_string(),
    };
    let mut resp = local_reply(
        StatusCode::from_u16(r.status).unwrap_or(StatusCode::MOVED_PERMANENTLY),
        "",
        None,
    );
    if let Ok(v) = HeaderValue::try_from(format!("{scheme}://{host}{port}{path}")) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// A response the proxy makes itself; errors carry `x-weft-reason: FLAG: why`.
pub fn local_reply(status: StatusCode, body: &str, error: Option<&ProxyError>) -> Response<Body> {
    let mut resp = Response::new(
        Full::new(Bytes::from(body.to_string()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(header::SERVER, HeaderValue::from_static("istio-envoy"));
    if !body.is_empty() {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    }
    if let Some(v) = error.and_then(|e| HeaderValue::try_from(e.to_string()).ok()) {
        headers.insert("x-weft-reason", v);
    }
    if error.is_some_and(|e| e.flag() == "UO") {
        headers.insert("x-envoy-overloaded", HeaderValue::from_static("true"));
    }
    resp
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_ids_are_version_4_uuids() {
        let id = super::request_id();
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12],
            "{id}"
        );
        assert!(parts[2].starts_with('4'), "version 4: {id}");
        assert!(
            matches!(parts[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'),
            "RFC 4122 variant: {id}"
        );
        assert!(
            id.bytes()
                .all(|b| b == b'-' || b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_ne!(id, super::request_id());
    }
}
