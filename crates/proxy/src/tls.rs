//! TLS at the gateway: the servers that terminate TLS (SIMPLE, MUTUAL, OPTIONAL_MUTUAL)
//! and the accept loop of a TLS port. Each connection's ClientHello is read first (as
//! Envoy's TLS inspector does); its SNI picks the most specific server or PASSTHROUGH
//! route of the port; a terminating server completes the handshake with its own config
//! and serves HTTP/1.1 or HTTP/2 (by ALPN) from its own virtual hosts, a passthrough
//! route gets the untouched bytes.

mod client_auth;
pub mod config;
pub mod credentials;
mod der;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::http::Shared;
use crate::sniff::Prefixed;
use crate::tables::{Listener, VirtualHost, sni_score};

pub use config::Offered;

/// How long a client has for the whole handshake once its ClientHello is in.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A gateway server that terminates TLS.
#[derive(Debug, Serialize)]
pub struct TlsServer {
    /// Istio's name for the server's routes: `https.443.https.mygateway.istio-system`.
    pub name: Arc<str>,
    /// The SNI names it answers (its `hosts`, lower-case, without namespace): exact,
    /// `*.suffix`, or `*` for any SNI and none.
    pub sni_hosts: Vec<String>,
    /// `SIMPLE`, `MUTUAL` or `OPTIONAL_MUTUAL`.
    pub mode: String,
    /// Where the certificates came from: `kubernetes://name` or file paths.
    pub credential: String,
    pub offered: Offered,
    #[serde(skip)]
    pub config: TlsConfig,
    /// The routes requests take once decrypted (the VirtualServices bound to the Gateway
    /// whose hosts this server admits).
    pub virtual_hosts: Vec<VirtualHost>,
}

/// A server's rustls config; its Debug output never shows keys.
#[derive(Clone)]
pub struct TlsConfig(pub Arc<rustls::ServerConfig>);

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsConfig")
    }
}

/// What the SNI of a connection picked on a TLS port.
enum Picked<'l> {
    Terminate(&'l TlsServer),
    Passthrough,
}

/// The most specific terminating server or passthrough route for `sni`; a terminating
/// server wins a tie (its hosts are the Gateway's own).
fn pick<'l>(
    listener: &'l Listener,
    sni: Option<&str>,
    peer: SocketAddr,
    local: SocketAddr,
) -> Option<Picked<'l>> {
    let server = listener
        .tls
        .iter()
        .filter_map(|s| Some((sni_score(&s.sni_hosts, sni)?, s)))
        .fold(
            None,
            |best: Option<(usize, &TlsServer)>, (score, s)| match best {
                Some((b, _)) if b >= score => best,
                _ => Some((score, s)),
            },
        );
    let passthrough = listener.l4.best_tls(sni, peer.ip(), local.ip());
    match (server, passthrough) {
        (Some((s, _)), Some((p, _))) if p > s => Some(Picked::Passthrough),
        (Some((_, server)), _) => Some(Picked::Terminate(server)),
        (None, Some(_)) => Some(Picked::Passthrough),
        (None, None) => None,
    }
}

/// Accepts connections on a TLS port until the proxy drains or the task is aborted.
pub async fn serve(listener: TcpListener, port: u16, shared: Arc<Shared>) {
    let mut drain = shared.drain.watcher();
    loop {
        let accepted = tokio::select! {
            _ = drain.signaled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                tokio::spawn(connection(stream, peer, port, shared.clone()));
            }
            Err(e) => {
                tracing::warn!(port, error = %e, "accept failed");
                // Out of file descriptors, say: let some close rather than spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// One connection: read the ClientHello, pick by SNI, terminate or pass through.
async fn connection(stream: TcpStream, peer: SocketAddr, port: u16, shared: Arc<Shared>) {
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let mut down = crate::tcp::Downstream {
        stream,
        peer,
        destination: local,
        original_dst: None,
        prefix: Vec::new(),
    };
    let sni = crate::tcp::read_client_hello(&mut down).await;
    let tables = shared.tables.load_full();
    let Some(listener) = tables.listeners.get(&port) else {
        return;
    };
    match pick(listener, sni.as_deref(), peer, local) {
        Some(Picked::Terminate(server)) => {
            let (config, name) = (server.config.0.clone(), server.name.clone());
            drop(tables);
            terminate(down, config, name, port, shared).await;
        }
        Some(Picked::Passthrough) => {
            let _ = crate::tcp::proxy(down, &listener.l4, &tables, &shared.stats).await;
        }
        None => {
            // Envoy resets a connection no filter chain matches.
            tracing::info!(%peer, port, sni = sni.as_deref(), flag = "NR", "no TLS server or route for the SNI: connection closed");
            let _ = down.stream.set_zero_linger();
        }
    }
}

/// Completes the handshake with `config` and serves HTTP on the decrypted stream; each
/// request routes on the current tables, by the virtual hosts of the server `name`.
async fn terminate(
    down: crate::tcp::Downstream,
    config: Arc<rustls::ServerConfig>,
    name: Arc<str>,
    port: u16,
    shared: Arc<Shared>,
) {
    let (peer, local) = (down.peer, down.destination);
    let _ = down.stream.set_nodelay(true);
    let io = Prefixed::new(BytesMut::from(down.prefix.as_slice()), down.stream);
    let accepted =
        tokio::time::timeout(HANDSHAKE_TIMEOUT, TlsAcceptor::from(config).accept(io)).await;
    let stream = match accepted {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::debug!(%peer, port, server = %name, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, port, server = %name, "TLS handshake timed out");
            return;
        }
    };
    let downstream = crate::http::Downstream {
        peer,
        local,
        port,
        original_dst: None,
        tls_server: Some(name),
    };
    let served = shared.clone();
    crate::http::serve_downstream(stream, peer, &served, move |req| {
        let (shared, downstream) = (shared.clone(), downstream.clone());
        async move { crate::http::handle(req, &downstream, &shared).await }
    })
    .await;
}
