//! Sidecar mode's data path. Outbound (15001): the original destination names a service
//! by address and port; HTTP (declared, or sniffed) is routed by Host through that port's
//! route table, opaque TCP by the port's VirtualService `tcp`/`tls` routes (else to the
//! service's default cluster), and destinations outside the registry pass through
//! (ALLOW_ANY) or are refused (REGISTRY_ONLY). Inbound (15006):
//! the connection is delivered to the application on 127.0.0.1 at the port the client
//! dialled (Istio's `inbound|PORT||` cluster), request by request when the port is HTTP.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::net::{TcpListener, TcpStream};

use crate::capture;
use crate::error::ProxyError;
use crate::http::{Body, Shared, authority_of, local_reply, prepare_request_headers};
use crate::route::pick_virtual_host;
use crate::sniff::{Detected, Prefixed, sniff};
use crate::tables::{OutboundPolicy, OutboundTarget, Tables};

/// Istio's default `connectTimeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How a sidecar runs.
#[derive(Debug, Clone)]
pub struct SidecarOptions {
    /// The outbound capture listener (`0.0.0.0:15001`).
    pub outbound: SocketAddr,
    /// The inbound capture listener (`0.0.0.0:15006`).
    pub inbound: SocketAddr,
    /// The mesh's outbound traffic policy; a Sidecar resource may override it.
    pub outbound_policy: OutboundPolicy,
    /// How long to wait for a client's first bytes on ports that declare no protocol.
    pub protocol_detection_timeout: Duration,
}

impl Default for SidecarOptions {
    fn default() -> Self {
        Self {
            outbound: (Ipv4Addr::UNSPECIFIED, capture::OUTBOUND_PORT).into(),
            inbound: (Ipv4Addr::UNSPECIFIED, capture::INBOUND_PORT).into(),
            outbound_policy: OutboundPolicy::AllowAny,
            protocol_detection_timeout: Duration::from_millis(100),
        }
    }
}

/// What every captured connection shares: the tables, and HTTP clients for traffic that
/// does not go through a cluster (passthrough and delivery to the application).
pub struct SidecarProxy {
    shared: Arc<Shared>,
    detect_timeout: Duration,
    http1: Client<HttpConnector, Incoming>,
    http2: Client<HttpConnector, Incoming>,
}

impl SidecarProxy {
    pub fn new(shared: Arc<Shared>, opts: &SidecarOptions) -> Arc<Self> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let http1 = Client::builder(TokioExecutor::new()).build(connector.clone());
        let http2 = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build(connector);
        Arc::new(Self {
            shared,
            detect_timeout: opts.protocol_detection_timeout,
            http1,
            http2,
        })
    }
}

/// Which capture listener a connection came in on.
#[derive(Debug, Clone, Copy)]
pub enum Direction {
    Outbound,
    Inbound,
}

/// Accepts redirected connections until the task is aborted.
pub async fn serve(listener: TcpListener, direction: Direction, sidecar: Arc<SidecarProxy>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                // Out of file descriptors, say: back off instead of spinning.
                tracing::warn!(?direction, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let dst = match capture::original_dst(&stream) {
            Ok(Some(dst)) => dst,
            Ok(None) => {
                tracing::debug!(%peer, ?direction, "not redirected by iptables: closed");
                continue;
            }
            Err(e) => {
                tracing::debug!(%peer, ?direction, error = %e, "no original destination: closed");
                continue;
            }
        };
        let sidecar = sidecar.clone();
        tokio::spawn(async move {
            match direction {
                Direction::Outbound => outbound(stream, peer, dst, sidecar).await,
                Direction::Inbound => inbound(stream, peer, dst, sidecar).await,
            }
        });
    }
}

/// One outbound connection to `dst`.
async fn outbound(
    stream: TcpStream,
    peer: SocketAddr,
    dst: SocketAddr,
    sidecar: Arc<SidecarProxy>,
) {
    let tables = sidecar.shared.tables.load_full();
    let Some(side) = tables.sidecar.as_ref() else {
        return;
    };
    let target = side.outbound_target(dst).cloned();
    let policy = side.outbound_policy;
    // Istio's PassthroughCluster: with no HTTP route table on the port there is nothing
    // to look at, so the bytes go straight on, whatever they are.
    if target.is_none()
        && policy == OutboundPolicy::AllowAny
        && !tables.listeners.contains_key(&dst.port())
    {
        tracing::debug!(%peer, %dst, "outbound passthrough (not in the registry)");
        relay(unread(stream), dst, "PassthroughCluster").await;
        return;
    }
    let (detected, stream) = match &target {
        Some(t) if !t.detect && t.protocol.is_http() => (Detected::Http1, unread(stream)),
        Some(t) if !t.detect => (Detected::Tcp, unread(stream)),
        _ => match detect(stream, sidecar.detect_timeout).await {
            Some(found) => found,
            None => return,
        },
    };
    let service = target.as_ref().map(|t| t.service.as_str());
    tracing::debug!(%peer, %dst, service, ?detected, "outbound");
    if detected.is_http() {
        // Each request routes on the tables current when it arrives, not these.
        drop(tables);
        let sc = sidecar.clone();
        crate::http::serve_downstream(stream, peer, &sidecar.shared, move |req| {
            let sc = sc.clone();
            async move { outbound_request(req, peer, dst, &sc).await }
        })
        .await;
        return;
    }
    match &target {
        Some(t) => {
            if let Err(e) =
                tcp_to_service(stream, peer, dst, t, &tables, &sidecar.shared.stats).await
            {
                tracing::debug!(%peer, %dst, reason = %e, "outbound TCP refused");
            }
        }
        None if policy == OutboundPolicy::AllowAny => {
            relay(stream, dst, "PassthroughCluster").await
        }
        None => tracing::debug!(%peer, %dst, "NR: not in the registry (REGISTRY_ONLY): closed"),
    }
}

/// Opaque TCP to a known service: by the VirtualService `tcp` and `tls` routes of its
/// port when it has some (the TCP proxy reads the whole ClientHello for the SNI, beyond
/// the sniffed bytes), else to an endpoint of its default cluster; bytes copied both ways.
pub async fn tcp_to_service(
    down: Prefixed<TcpStream>,
    peer: SocketAddr,
    dst: SocketAddr,
    target: &OutboundTarget,
    tables: &Tables,
    stats: &crate::stats::Stats,
) -> Result<(), ProxyError> {
    if let Some(routes) = tables.sidecar.as_ref().and_then(|s| s.l4_routes(target)) {
        let (prefix, stream) = down.into_parts();
        let down = crate::tcp::Downstream {
            stream,
            peer,
            destination: dst,
            original_dst: Some(dst),
            prefix: prefix.to_vec(),
        };
        return crate::tcp::proxy(down, routes, tables, stats)
            .await
            .map(drop);
    }
    let cluster = tables
        .clusters
        .get(&target.cluster)
        .ok_or_else(|| ProxyError::NoCluster(format!("cluster {} is not known", target.cluster)))?;
    let _connection = crate::tcp::connection_slot(cluster, &stats.cluster(&cluster.name))?;
    let pick = cluster
        .pick_connection(peer, dst, Some(dst))
        .ok_or_else(|| ProxyError::NoHealthyUpstream(format!("no endpoint in {}", cluster.name)))?;
    let up = connect(&pick.address(), &cluster.name).await?;
    copy_both_ways(down, up, &cluster.name).await;
    drop(pick);
    Ok(())
}

/// Connects to `addr` (`ip:port`, or `host:port` for DNS endpoints) within Istio's
/// connect timeout.
async fn connect(addr: &str, cluster: &str) -> Result<TcpStream, ProxyError> {
    match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(up)) => {
            let _ = up.set_nodelay(true);
            Ok(up)
        }
        Ok(Err(e)) => Err(ProxyError::ConnectFailure(format!(
            "{cluster}: {addr}: {e}"
        ))),
        Err(_) => Err(ProxyError::ConnectFailure(format!(
            "{cluster}: {addr}: no answer within {CONNECT_TIMEOUT:?}"
        ))),
    }
}

/// Bytes to `dst` as they are: Istio's PassthroughCluster outbound, and delivery to the
/// application inbound.
async fn relay(down: Prefixed<TcpStream>, dst: SocketAddr, cluster: &str) {
    match connect(&dst.to_string(), cluster).await {
        Ok(up) => copy_both_ways(down, up, cluster).await,
        Err(e) => tracing::debug!(%dst, reason = %e, "TCP connection refused"),
    }
}

async fn copy_both_ways(mut down: Prefixed<TcpStream>, mut up: TcpStream, cluster: &str) {
    match tokio::io::copy_bidirectional(&mut down, &mut up).await {
        Ok((sent, received)) => tracing::debug!(cluster, sent, received, "TCP connection done"),
        Err(e) => tracing::debug!(cluster, error = %e, "TCP connection ended with an error"),
    }
}

fn unread(stream: TcpStream) -> Prefixed<TcpStream> {
    Prefixed::new(BytesMut::new(), stream)
}

/// Sniffs the connection's protocol; `None` when the client went away.
async fn detect(
    mut stream: TcpStream,
    timeout: Duration,
) -> Option<(Detected, Prefixed<TcpStream>)> {
    match sniff(&mut stream, timeout).await {
        Ok((found, seen)) => Some((found, Prefixed::new(seen, stream))),
        Err(e) => {
            tracing::debug!(error = %e, "connection failed during protocol detection");
            None
        }
    }
}

/// One outbound HTTP request: a host the port's route table knows is routed like any
/// other (VirtualService routes, clusters); any other host is passed through to the
/// original destination or refused, by the outbound policy.
async fn outbound_request(
    req: Request<Incoming>,
    peer: SocketAddr,
    dst: SocketAddr,
    sidecar: &SidecarProxy,
) -> Response<Body> {
    let tables = sidecar.shared.tables.load_full();
    let authority = authority_of(&req).to_string();
    let known = tables.listeners.get(&dst.port()).is_some_and(|l| {
        pick_virtual_host(&l.virtual_hosts, |v| v.domains.as_slice(), &authority).is_some()
    });
    if known {
        // A captured connection's local address is its original destination (Envoy
        // restores it), so the request's downstream is peer -> dst.
        let down = crate::http::Downstream {
            peer,
            local: dst,
            port: dst.port(),
            original_dst: Some(dst),
            tls_server: None,
        };
        return crate::http::handle(req, &down, &sidecar.shared).await;
    }
    let policy = tables
        .sidecar
        .as_ref()
        .map_or(OutboundPolicy::AllowAny, |s| s.outbound_policy);
    let result = match policy {
        OutboundPolicy::AllowAny => {
            forward_to(req, peer, dst, &authority, sidecar, "PassthroughCluster").await
        }
        OutboundPolicy::RegistryOnly => Err(ProxyError::NotInRegistry(format!(
            "{authority:?} (to {dst}) is not in the registry and the outbound traffic policy is REGISTRY_ONLY"
        ))),
    };
    result.unwrap_or_else(|e| {
        tracing::debug!(reason = %e, "local reply");
        local_reply(e.status(), e.body(), Some(&e))
    })
}

/// One inbound connection: to the application at `127.0.0.1:PORT` (the port the client
/// dialled), parsed as HTTP when the port is HTTP so that per-request policy (authz,
/// telemetry) has requests to act on.
async fn inbound(stream: TcpStream, peer: SocketAddr, dst: SocketAddr, sidecar: Arc<SidecarProxy>) {
    let declared = sidecar
        .shared
        .tables
        .load()
        .sidecar
        .as_ref()
        .and_then(|s| s.inbound_port(dst));
    let (detected, stream) = match declared {
        Some(p) if !p.detect && p.protocol.is_http() => (Detected::Http1, unread(stream)),
        Some(p) if !p.detect => (Detected::Tcp, unread(stream)),
        _ => match detect(stream, sidecar.detect_timeout).await {
            Some(found) => found,
            None => return,
        },
    };
    let app = match dst {
        SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::LOCALHOST, dst.port())),
        SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::LOCALHOST, dst.port())),
    };
    let cluster = format!("inbound|{}||", dst.port());
    tracing::debug!(%peer, %dst, ?detected, "inbound");
    if !detected.is_http() {
        relay(stream, app, &cluster).await;
        return;
    }
    let sc = sidecar.clone();
    crate::http::serve_downstream(stream, peer, &sidecar.shared, move |req| {
        let (sc, cluster) = (sc.clone(), cluster.clone());
        async move {
            let authority = authority_of(&req).to_string();
            forward_to(req, peer, app, &authority, &sc, &cluster)
                .await
                .unwrap_or_else(|e| local_reply(e.status(), e.body(), Some(&e)))
        }
    })
    .await;
}

/// Forwards a request to one address (no cluster, no load balancing), in the
/// downstream's HTTP version, and streams the answer back.
async fn forward_to(
    req: Request<Incoming>,
    peer: SocketAddr,
    to: SocketAddr,
    authority: &str,
    sidecar: &SidecarProxy,
    cluster: &str,
) -> Result<Response<Body>, ProxyError> {
    let (mut parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = Uri::try_from(format!("http://{to}{path}"))
        .map_err(|e| ProxyError::NoRoute(format!("cannot forward {path:?}: {e}")))?;
    prepare_request_headers(&mut parts.headers, authority, peer);
    let client = if parts.version == http::Version::HTTP_2 {
        &sidecar.http2
    } else {
        parts.version = http::Version::HTTP_11;
        &sidecar.http1
    };
    let mut resp = client
        .request(Request::from_parts(parts, body))
        .await
        .map_err(|e| {
            if e.is_connect() {
                ProxyError::ConnectFailure(format!("{cluster}: {to}: {e}"))
            } else {
                ProxyError::UpstreamReset(format!("{cluster}: {to}: {e}"))
            }
        })?;
    crate::http::strip_hop_by_hop(resp.headers_mut());
    Ok(resp.map(crate::http::boxed))
}
