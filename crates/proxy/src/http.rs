//! The HTTP path of one request: pick the virtual host and route from the current tables,
//! apply the route's action, pick an endpoint, forward, and stream the answer back.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::error::ProxyError;
use crate::registry::Protocol;
use crate::route::{RequestView, pick_virtual_host};
use crate::tables::{Action, Redirect, Route, Tables, WeightedCluster};

pub type Body = BoxBody<Bytes, hyper::Error>;

/// What every connection of a proxy shares.
pub struct Shared {
    pub tables: ArcSwap<Tables>,
    http1: Client<HttpConnector, Incoming>,
    http2: Client<HttpConnector, Incoming>,
}

impl Shared {
    pub fn new(tables: Tables) -> Arc<Self> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let http1 = Client::builder(TokioExecutor::new()).build(connector.clone());
        let http2 = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build(connector);
        Arc::new(Self {
            tables: ArcSwap::from_pointee(tables),
            http1,
            http2,
        })
    }
}

/// Accepts connections on one listener until the task is aborted.
pub async fn serve(listener: TcpListener, port: u16, shared: Arc<Shared>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(port, error = %e, "accept failed");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(req, peer, port, &shared).await) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(e) = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "downstream connection ended with an error");
            }
        });
    }
}

/// Serves one request: never fails; errors become the proxy's own responses.
pub async fn handle(
    req: Request<Incoming>,
    peer: SocketAddr,
    port: u16,
    shared: &Shared,
) -> Response<Body> {
    let tables = shared.tables.load_full();
    match route_and_forward(req, peer, port, &tables, shared).await {
        Ok(resp) => resp,
        Err(e) => {
            tracing::debug!(reason = %e, "local reply");
            local_reply(e.status(), e.body(), Some(&e))
        }
    }
}

async fn route_and_forward(
    req: Request<Incoming>,
    peer: SocketAddr,
    port: u16,
    tables: &Tables,
    shared: &Shared,
) -> Result<Response<Body>, ProxyError> {
    let authority = authority_of(&req).to_string();
    let listener = tables
        .listeners
        .get(&port)
        .ok_or_else(|| ProxyError::NoRoute(format!("no listener on port {port}")))?;
    let vh = pick_virtual_host(
        &listener.virtual_hosts,
        |v| v.domains.as_slice(),
        &authority,
    )
    .ok_or_else(|| ProxyError::NoRoute(format!("no virtual host for {authority:?}")))?;
    let (parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let view = RequestView {
        parts: &parts,
        path: &path,
        authority: &authority,
        scheme: "http",
        listener_port: port,
    };
    let (route, matched) = vh
        .routes
        .iter()
        .find_map(|r| {
            if r.matches.is_empty() {
                return Some((r, None));
            }
            r.matches
                .iter()
                .position(|m| m.matches(&view))
                .map(|i| (r, Some(i)))
        })
        .ok_or_else(|| {
            ProxyError::NoRoute(format!(
                "no route of {} matches {} {path}",
                vh.name, parts.method
            ))
        })?;
    match &route.action {
        Action::Direct { status, body } => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Ok(local_reply(status, body, None))
        }
        Action::Redirect(r) => Ok(redirect(r, &authority, &path)),
        Action::Forward(weighted) => {
            let target = pick_weighted(weighted).ok_or_else(|| {
                ProxyError::NoCluster(format!("route {:?} has no destination", route.name))
            })?;
            let req = Request::from_parts(parts, body);
            forward(
                req, peer, route, matched, target, &authority, &path, tables, shared,
            )
            .await
        }
    }
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

#[allow(clippy::too_many_arguments)]
async fn forward(
    req: Request<Incoming>,
    peer: SocketAddr,
    route: &Route,
    matched: Option<usize>,
    target: &WeightedCluster,
    authority: &str,
    path: &str,
    tables: &Tables,
    shared: &Shared,
) -> Result<Response<Body>, ProxyError> {
    let cluster = tables
        .clusters
        .get(&target.cluster)
        .ok_or_else(|| ProxyError::NoCluster(format!("cluster {} is not known", target.cluster)))?;
    let pick = cluster
        .pick()
        .ok_or_else(|| ProxyError::NoHealthyUpstream(format!("no endpoint in {}", cluster.name)))?;
    let (mut parts, body) = req.into_parts();
    let new_path = rewrite_path(route, matched, path);
    parts.uri =
        Uri::try_from(format!("http://{}{new_path}", pick.endpoint.address)).map_err(|e| {
            ProxyError::NoHealthyUpstream(format!(
                "bad endpoint address {}: {e}",
                pick.endpoint.address
            ))
        })?;
    let host = route
        .rewrite
        .as_ref()
        .and_then(|r| r.authority.clone())
        .unwrap_or_else(|| authority.to_string());
    prepare_request_headers(&mut parts.headers, &host, peer);
    route.request_headers.apply(&mut parts.headers);
    target.request_headers.apply(&mut parts.headers);
    let client = match cluster.protocol {
        Protocol::Http2 | Protocol::Grpc => {
            parts.version = http::Version::HTTP_2;
            &shared.http2
        }
        _ => {
            parts.version = http::Version::HTTP_11;
            &shared.http1
        }
    };
    let started = Instant::now();
    let result = client.request(Request::from_parts(parts, body)).await;
    drop(pick);
    let mut resp = result.map_err(|e| {
        if e.is_connect() {
            ProxyError::ConnectFailure(format!("{}: {e}", cluster.name))
        } else {
            ProxyError::UpstreamReset(format!("{}: {e}", cluster.name))
        }
    })?;
    let headers = resp.headers_mut();
    strip_hop_by_hop(headers);
    let elapsed = started.elapsed().as_millis().to_string();
    if let Ok(v) = HeaderValue::try_from(elapsed) {
        headers.insert("x-envoy-upstream-service-time", v);
    }
    headers.insert(header::SERVER, HeaderValue::from_static("istio-envoy"));
    route.response_headers.apply(headers);
    target.response_headers.apply(headers);
    Ok(resp.map(BodyExt::boxed))
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
    let mut b = [0u8; 16];
    b.iter_mut().for_each(|x| *x = fastrand::u8(..));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
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
fn redirect(r: &Redirect, authority: &str, path: &str) -> Response<Body> {
    let scheme = r.scheme.as_deref().unwrap_or("http");
    let host = match &r.authority {
        Some(a) => a.as_str(),
        None if r.port.is_some() || (scheme != "http" && authority.ends_with(":80")) => {
            crate::route::strip_port(authority)
        }
        None => authority,
    };
    let port = r.port.map(|p| format!(":{p}")).unwrap_or_default();
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
    resp
}
