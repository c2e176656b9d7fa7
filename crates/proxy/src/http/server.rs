//! The downstream side of HTTP: accepting connections, the limits hostile or broken
//! clients meet (header size and count, the header read timeout), and the graceful drain
//! every connection follows.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};

use super::{Body, Downstream, Shared, handle};

/// What a downstream connection may send, against hostile or broken clients.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// The request headers' total size (Envoy's `max_request_headers_kb`, default 60):
    /// larger HTTP/1.1 headers get 431.
    pub max_request_headers_kb: u32,
    /// The number of request headers (Envoy's `max_headers_count`, default 100).
    pub max_headers: usize,
    /// How long an HTTP/1.1 client may take to send a request's headers before the
    /// connection is closed (slowloris). Envoy's `request_headers_timeout` is off by
    /// default and leans on its 1h idle timeout; we close after 30s, hyper's default.
    pub request_headers_timeout: Duration,
    /// How long a request's stream may see no activity, waiting for the upstream's
    /// answer or for the next piece of its body (Envoy's `stream_idle_timeout`, 5 min by
    /// default): 504 `SI` before the answer's headers, a broken-off stream after.
    /// `None`: never.
    pub stream_idle_timeout: Option<Duration>,
}

impl ServerLimits {
    pub(crate) fn header_bytes(&self) -> u32 {
        self.max_request_headers_kb.saturating_mul(1024)
    }
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_request_headers_kb: 60,
            max_headers: 100,
            request_headers_timeout: Duration::from_secs(30),
            stream_idle_timeout: Some(Duration::from_secs(300)),
        }
    }
}

/// The downstream connection builder with `limits` applied to HTTP/1.1 and HTTP/2.
pub fn server_builder(
    limits: &ServerLimits,
) -> hyper_util::server::conn::auto::Builder<TokioExecutor> {
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let header_bytes = limits.header_bytes();
    // The exact limit is checked per request (see `handle`); hyper's read buffer only
    // bounds memory, with room for the request line and framing beyond the headers.
    let buffer = usize::try_from(header_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(8192);
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.request_headers_timeout)
        .max_buf_size(buffer)
        .max_headers(limits.max_headers);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(header_bytes);
    builder
}

/// Accepts connections on one listener until the proxy drains (the listener closes then)
/// or the task is aborted.
pub async fn serve(listener: TcpListener, port: u16, shared: Arc<Shared>) {
    let mut drain = shared.drain.watcher();
    loop {
        let accepted = tokio::select! {
            _ = drain.signaled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(port, error = %e, "accept failed");
                continue;
            }
        };
        let Ok(local) = stream.local_addr() else {
            continue;
        };
        let downstream = Downstream {
            peer,
            local,
            port,
            original_dst: None,
            tls_server: None,
        };
        tokio::spawn(serve_connection(stream, downstream, shared.clone()));
    }
}

/// Serves HTTP/1.1 (with upgrades) or HTTP/2 on one accepted connection.
pub async fn serve_connection(stream: TcpStream, downstream: Downstream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let served = shared.clone();
    let peer = downstream.peer;
    serve_downstream(stream, peer, &served, move |req| {
        let (shared, downstream) = (shared.clone(), downstream.clone());
        async move { handle(req, &downstream, &shared).await }
    })
    .await;
}

/// Serves HTTP/1.1 (with upgrades) or h2c on any downstream stream under the proxy's
/// limits, each request answered by `handle` (which never fails: errors are the proxy's
/// own responses). When the proxy drains, the connection finishes its requests and
/// closes: HTTP/1.1 once idle, HTTP/2 with GOAWAY.
pub async fn serve_downstream<I, F, Fut>(io: I, peer: SocketAddr, shared: &Shared, handle: F)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    // Held until the connection ends: the drain waits for every watcher to go.
    let mut drain = shared.drain.watcher();
    let builder = server_builder(&shared.limits);
    let service = hyper::service::service_fn(move |req| {
        let fut = handle(req);
        async move { Ok::<_, Infallible>(fut.await) }
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    let ended = tokio::select! {
        ended = conn.as_mut() => ended,
        _ = drain.signaled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = ended {
        tracing::debug!(%peer, error = %e, "downstream connection ended with an error");
    }
}

/// The request headers' size as Envoy counts it against `max_request_headers_kb`: every
/// name and value, the pseudo-headers (method, path, authority) included.
pub(super) fn header_bytes<B>(req: &Request<B>) -> usize {
    let pseudo = req.method().as_str().len()
        + req.uri().path_and_query().map_or(0, |p| p.as_str().len())
        + req.uri().authority().map_or(0, |a| a.as_str().len());
    req.headers()
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len())
        .sum::<usize>()
        + pseudo
}
