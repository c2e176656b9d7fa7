//! The TCP path of one connection: pick a `tcp` route (or, for TLS, a `tls` route by the
//! ClientHello's SNI) from the tables it arrived with, pick a destination by weight once
//! for the whole connection, connect to an endpoint and copy bytes both ways until both
//! sides are done. Failures close the connection and are logged with Envoy's flag. The
//! cluster's `tcp.maxConnections` caps the connections open to it at once: past it a
//! connection is closed at once (`UO`), as Envoy's TCP proxy does.

pub mod hello;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};

use crate::cluster::Cluster;
use crate::cluster::breaker::{Gauge, Held, hold};
use crate::cluster::outlier::Outcome;
use crate::error::ProxyError;
use crate::http::Shared;
use crate::stats::{ClusterStats, Stats};
use crate::tables::{L4Destination, L4Route, L4Routes, Tables};
use hello::Hello;

/// How long a client has to send its ClientHello (Envoy's default listener filter
/// timeout); a connection that stays silent longer is routed as if it sent no SNI.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(15);

/// A downstream connection handed to the TCP proxy.
#[derive(Debug)]
pub struct Downstream {
    pub stream: TcpStream,
    /// The client's address (`sourceSubnet` matches it).
    pub peer: SocketAddr,
    /// Where the client meant to go (`destinationSubnets` match it): the listener's
    /// address on a gateway, the original destination of a captured connection.
    pub destination: SocketAddr,
    /// A captured connection's original destination (sidecars), where passthrough
    /// clusters (`resolution: NONE`, Envoy's ORIGINAL_DST) connect; `None` on gateways.
    pub original_dst: Option<SocketAddr>,
    /// Bytes already read from `stream` (by a protocol sniffer): they are routed on (a
    /// ClientHello's start) and sent upstream first.
    pub prefix: Vec<u8>,
}

/// Bytes carried, once a connection is over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// Client to upstream, the prefix included.
    pub sent: u64,
    /// Upstream to client.
    pub received: u64,
    /// Why the connection ended abruptly (a reset or an error on either side), if it did.
    pub error: Option<String>,
}

/// Accepts connections on a TCP or TLS listener until the task is aborted; each is
/// routed with the tables current when it was accepted.
pub async fn serve(listener: TcpListener, port: u16, shared: Arc<Shared>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(port, error = %e, "accept failed");
                // Out of file descriptors, say: give the process a moment to close some
                // rather than spin on the error.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let tables = shared.tables.load_full();
            let Some(listener) = tables.listeners.get(&port) else {
                return;
            };
            let destination = match stream.local_addr() {
                Ok(a) => a,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "connection gone before routing");
                    return;
                }
            };
            let down = Downstream {
                stream,
                peer,
                destination,
                original_dst: None,
                prefix: Vec::new(),
            };
            let _ = proxy(down, &listener.l4, &tables, &shared.stats).await;
        });
    }
}

/// Proxies one connection by `routes` (whose clusters are in `tables`; their counters in
/// `stats`) until both directions are closed or one fails. Never panics; errors close the connection, are
/// logged with their response flag, and are returned for the caller's telemetry; a
/// connection that ended abruptly after it was made is a `Transfer` with an `error`.
pub async fn proxy(
    mut down: Downstream,
    routes: &L4Routes,
    tables: &Tables,
    stats: &Stats,
) -> Result<Transfer, ProxyError> {
    let (peer, destination) = (down.peer, down.destination);
    let sni = if routes.tls.is_empty() {
        None
    } else {
        read_client_hello(&mut down).await
    };
    let route = match pick_route(routes, sni.as_deref(), &down) {
        Ok(route) => route,
        Err(e) => {
            tracing::info!(
                %peer, %destination, sni = sni.as_deref(), flag = e.flag(), reason = %e,
                "connection closed"
            );
            // Envoy resets a connection no filter chain matches.
            let _ = down.stream.set_zero_linger();
            return Err(e);
        }
    };
    let result = forward(down, route, tables, stats).await;
    match &result {
        Ok(t) => tracing::debug!(
            %peer, %destination, route = %route.name, sent = t.sent, received = t.received,
            error = t.error.as_deref(), "connection done"
        ),
        Err(e) => tracing::info!(
            %peer, %destination, route = %route.name, flag = e.flag(), reason = %e,
            "connection closed"
        ),
    }
    result
}

/// A TLS route by SNI first, else a TCP route (a sidecar port can have both).
fn pick_route<'r>(
    routes: &'r L4Routes,
    sni: Option<&str>,
    down: &Downstream,
) -> Result<&'r L4Route, ProxyError> {
    let (peer, dst) = (down.peer.ip(), down.destination.ip());
    let tls = if routes.tls.is_empty() {
        None
    } else {
        routes.pick_tls(sni, peer, dst)
    };
    tls.or_else(|| routes.pick_tcp(peer, dst)).ok_or_else(|| {
        let what = match sni {
            Some(sni) => format!("SNI {sni:?}"),
            None if routes.tls.is_empty() => "the connection".to_string(),
            None => "a connection without SNI".to_string(),
        };
        ProxyError::NoRoute(format!(
            "no route for {what} on {}",
            down.destination.port()
        ))
    })
}

/// Reads until the prefix holds a whole ClientHello (or shows there is none), and
/// returns its SNI. The bytes stay in the prefix, to be sent upstream.
pub(crate) async fn read_client_hello(down: &mut Downstream) -> Option<String> {
    let read = async {
        let mut chunk = [0u8; 4096];
        loop {
            match hello::parse(&down.prefix) {
                Hello::Complete(sni) => return sni,
                Hello::NotTls => return None,
                Hello::Incomplete if down.prefix.len() >= hello::MAX_HELLO + 1024 => return None,
                Hello::Incomplete => {}
            }
            match down.stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => down
                    .prefix
                    .extend_from_slice(chunk.get(..n).unwrap_or_default()),
            }
        }
    };
    tokio::time::timeout(HELLO_TIMEOUT, read)
        .await
        .unwrap_or(None)
}

/// Connects to an endpoint of the route's chosen cluster and copies bytes both ways.
async fn forward(
    mut down: Downstream,
    route: &L4Route,
    tables: &Tables,
    stats: &Stats,
) -> Result<Transfer, ProxyError> {
    let target = pick_weighted(&route.destinations)
        .ok_or_else(|| ProxyError::NoCluster(format!("route {} has no destination", route.name)))?;
    let cluster = tables
        .clusters
        .get(&target.cluster)
        .ok_or_else(|| ProxyError::NoCluster(format!("cluster {} is not known", target.cluster)))?;
    let _connection = connection_slot(cluster, &stats.cluster(&cluster.name))?;
    let pick = cluster
        .pick_connection(down.peer, down.destination, down.original_dst)
        .ok_or_else(|| ProxyError::NoHealthyUpstream(format!("no endpoint in {}", cluster.name)))?;
    let address = pick.address().into_owned();
    let address = address.as_str();
    let timeout = cluster.connection.connect_timeout;
    let failed = |why: String| {
        // A refused or silent endpoint counts toward its outlier detection, as Envoy's
        // TCP proxy reports connect failures.
        let health = &stats.cluster(&cluster.name).health;
        cluster.report(health, address, Outcome::ConnectFailed);
        ProxyError::ConnectFailure(format!("{} ({address}): {why}", cluster.name))
    };
    let mut up = match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
        Ok(Ok(up)) => up,
        Ok(Err(e)) => return Err(failed(e.to_string())),
        Err(_) => return Err(failed(format!("no answer within {timeout:?}"))),
    };
    let _ = up.set_nodelay(true);
    let _ = down.stream.set_nodelay(true);
    up.write_all(&down.prefix)
        .await
        .map_err(|e| ProxyError::UpstreamReset(format!("{}: {e}", cluster.name)))?;
    let mut transfer = Transfer {
        sent: down.prefix.len() as u64,
        received: 0,
        error: None,
    };
    let (mut down_read, mut down_write) = down.stream.split();
    let (mut up_read, mut up_write) = up.split();
    // Each direction ends on its own: EOF from one side shuts down the write half of the
    // other (half-close), and the connection lasts until both have; an error on either
    // side ends both, and dropping the sockets closes them.
    let activity = Activity::new();
    let both = async {
        tokio::try_join!(
            pipe(
                &mut down_read,
                &mut up_write,
                (&mut transfer.sent, &activity),
                "client",
                "upstream"
            ),
            pipe(
                &mut up_read,
                &mut down_write,
                (&mut transfer.received, &activity),
                "upstream",
                "client"
            ),
        )
    };
    let result = match cluster.connection.tcp_idle_timeout {
        None => both.await,
        Some(idle) => tokio::select! {
            done = both => done,
            idle = activity.idle_for(idle) => Err(idle),
        },
    };
    drop(pick);
    transfer.error = result.err();
    Ok(transfer)
}

/// The connection's slot in the cluster's `tcp.maxConnections`, held until it closes; past
/// the limit the connection is refused (`upstream_cx_overflow`, flag `UO`). Unlike an HTTP
/// pool, Envoy's TCP proxy makes no exception for an endpoint without connections: a
/// refused connection is closed, not queued.
pub fn connection_slot(cluster: &Cluster, stats: &Arc<ClusterStats>) -> Result<Held, ProxyError> {
    let max = cluster.limits.max_connections;
    let slot = hold(stats, Gauge::Connections, max).ok_or_else(|| {
        ClusterStats::bump(&stats.upstream_cx_overflow);
        ProxyError::Overflow(format!(
            "{}: {max} connections open (maxConnections)",
            cluster.name
        ))
    })?;
    ClusterStats::bump(&stats.upstream_cx_total);
    Ok(slot)
}

/// When bytes last moved either way on a proxied connection.
struct Activity {
    start: tokio::time::Instant,
    /// Milliseconds since `start`.
    last: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            start: tokio::time::Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::Relaxed);
    }

    /// Resolves once nothing has moved for `idle` (Envoy's TCP proxy `idle_timeout`).
    async fn idle_for(&self, idle: Duration) -> String {
        loop {
            let last = self.start + Duration::from_millis(self.last.load(Ordering::Relaxed));
            if last.elapsed() >= idle {
                return format!("idle for {idle:?}: closed");
            }
            tokio::time::sleep_until(last + idle).await;
        }
    }
}

/// Copies `from` to `to` until `from` ends, then shuts `to`'s write side down; counts
/// the bytes in `count` and marks `activity`. An error names the side it came from.
async fn pipe(
    from: &mut ReadHalf<'_>,
    to: &mut WriteHalf<'_>,
    (count, activity): (&mut u64, &Activity),
    from_name: &str,
    to_name: &str,
) -> Result<(), String> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = from
            .read(&mut buf)
            .await
            .map_err(|e| format!("reading from the {from_name}: {e}"))?;
        let Some(bytes) = buf.get(..n).filter(|b| !b.is_empty()) else {
            return to
                .shutdown()
                .await
                .map_err(|e| format!("closing the {to_name}'s side: {e}"));
        };
        activity.touch();
        to.write_all(bytes)
            .await
            .map_err(|e| format!("writing to the {to_name}: {e}"))?;
        *count += n as u64;
    }
}

/// Picks a destination in proportion to its weight (the first when all weigh nothing).
fn pick_weighted(destinations: &[L4Destination]) -> Option<&L4Destination> {
    let total: u64 = destinations.iter().map(|d| u64::from(d.weight)).sum();
    if total == 0 {
        return destinations.first();
    }
    let mut roll = fastrand::u64(..total);
    destinations.iter().find(|d| {
        let hit = roll < u64::from(d.weight);
        roll = roll.saturating_sub(u64::from(d.weight));
        hit
    })
}
