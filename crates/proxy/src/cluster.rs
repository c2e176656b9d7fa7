//! Upstream clusters: the endpoints one (service, port, subset) resolves to, the load
//! balancer that picks one of them for each request, and how connections to them are made.

pub mod breaker;
mod hash;
pub mod outlier;

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::HeaderMap;
use serde::Serialize;

use crate::registry::Protocol;

pub use breaker::Limits;
pub use hash::{CookieSpec, DEFAULT_MAGLEV_TABLE_SIZE, DEFAULT_MIN_RING_SIZE, HashKey, HashTable};

/// How a cluster spreads requests over its endpoints (DestinationRule `loadBalancer`).
#[derive(Debug, Serialize)]
pub enum LbPolicy {
    RoundRobin,
    /// Istio's default: the less busy of two endpoints picked at random.
    LeastRequest,
    Random,
    /// No balancing: the request goes where the caller sent it (the original destination
    /// of a captured connection). A gateway's connections have none, so, as Envoy's
    /// ORIGINAL_DST cluster, it finds no host (`UH`).
    Passthrough,
    /// Sticky by a hash of the request (header, cookie, source IP, query parameter), looked
    /// up in a ring-hash or Maglev table built with the cluster.
    ConsistentHash {
        key: HashKey,
        table: HashTable,
    },
}

/// Which HTTP version requests to the cluster's endpoints use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum UpstreamProtocol {
    Http1,
    /// HTTP/2 with prior knowledge (h2c): ports declared `http2`/`grpc`, or
    /// `h2UpgradePolicy: UPGRADE`.
    Http2,
    /// `useClientProtocol`: the downstream request's own version.
    UseClient,
}

/// TCP keep-alive probes on upstream sockets (`connectionPool.tcp.tcpKeepalive`); unset
/// fields keep the kernel's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct TcpKeepalive {
    pub time: Option<Duration>,
    pub interval: Option<Duration>,
    pub probes: Option<u32>,
}

/// How connections to the cluster's endpoints are made and kept (`connectionPool`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct ConnectionSettings {
    pub protocol: UpstreamProtocol,
    /// `tcp.connectTimeout`; Istio's mesh default is 10s.
    pub connect_timeout: Duration,
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// How long a pooled connection may sit unused before it is closed (`http.idleTimeout`,
    /// else `tcp.idleTimeout`); Envoy's default is one hour, and `0s` means never.
    pub idle_timeout: Option<Duration>,
    /// How long a proxied TCP connection may carry no byte either way before it is closed
    /// (`tcp.idleTimeout`, Envoy's TCP proxy default one hour; `0s` means never).
    pub tcp_idle_timeout: Option<Duration>,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        Self {
            protocol: UpstreamProtocol::Http1,
            connect_timeout: Duration::from_secs(10),
            tcp_keepalive: None,
            idle_timeout: Some(Duration::from_secs(3600)),
            tcp_idle_timeout: Some(Duration::from_secs(3600)),
        }
    }
}

/// One upstream instance and the requests it has in flight.
#[derive(Debug, Serialize)]
pub struct UpstreamEndpoint {
    /// `ip:port` (or `host:port` for DNS endpoints).
    pub address: String,
    #[serde(skip)]
    active: AtomicUsize,
}

impl UpstreamEndpoint {
    pub fn new(address: String) -> Self {
        Self {
            address,
            active: AtomicUsize::new(0),
        }
    }
}

/// A cluster named like Istio's: `outbound|9080|v1|reviews.default.svc.cluster.local`.
#[derive(Debug, Serialize)]
pub struct Cluster {
    pub name: String,
    pub protocol: Protocol,
    pub lb: LbPolicy,
    pub connection: ConnectionSettings,
    pub endpoints: Vec<UpstreamEndpoint>,
    /// Circuit-breaker thresholds (`connectionPool`).
    pub limits: Limits,
    /// `outlierDetection`; `None`: endpoints are never ejected.
    pub outlier: Option<outlier::OutlierConfig>,
    #[serde(skip)]
    next: AtomicUsize,
}

/// What the load balancer may look at in a request.
pub struct PickRequest<'r> {
    pub headers: &'r HeaderMap,
    /// Path and query.
    pub path: &'r str,
    /// The downstream peer.
    pub peer: SocketAddr,
    /// The downstream connection's local address (a generated cookie hashes both).
    pub local: SocketAddr,
    /// Where a captured connection was going; `None` at a gateway.
    pub original_dst: Option<SocketAddr>,
    /// The cluster's outlier state: ejected endpoints are not picked.
    pub health: Option<&'r outlier::Health>,
    /// Endpoints earlier attempts of this request went to: a retry avoids them when it can.
    pub avoid: &'r [String],
}

/// An endpoint chosen for one request; its in-flight count drops when this is dropped.
pub struct Pick<'a> {
    target: Target<'a>,
    /// A `Set-Cookie` value for the response: the hash cookie the proxy generated because
    /// the request had none (consistent hash on a cookie with a TTL).
    pub set_cookie: Option<String>,
}

enum Target<'a> {
    Endpoint(&'a UpstreamEndpoint),
    OriginalDst(SocketAddr),
}

impl Pick<'_> {
    /// The address to connect to.
    pub fn address(&self) -> Cow<'_, str> {
        match &self.target {
            Target::Endpoint(e) => Cow::Borrowed(&e.address),
            Target::OriginalDst(a) => Cow::Owned(a.to_string()),
        }
    }
}

impl Drop for Pick<'_> {
    fn drop(&mut self) {
        if let Target::Endpoint(e) = self.target {
            e.active.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Cluster {
    pub fn new(
        name: String,
        protocol: Protocol,
        lb: LbPolicy,
        connection: ConnectionSettings,
        endpoints: Vec<UpstreamEndpoint>,
    ) -> Self {
        Self {
            name,
            protocol,
            lb,
            connection,
            endpoints,
            limits: Limits::default(),
            outlier: None,
            next: AtomicUsize::new(fastrand::usize(..usize::MAX / 2)),
        }
    }

    /// Istio's cluster name.
    pub fn name_for(port: u16, subset: &str, host: &str) -> String {
        format!("outbound|{port}|{subset}|{host}")
    }

    /// Picks an endpoint for a TCP connection, which has no headers or path to hash: only
    /// `useSourceIp` hashing applies, as for Envoy's TCP proxy.
    pub fn pick_connection(
        &self,
        peer: SocketAddr,
        local: SocketAddr,
        original_dst: Option<SocketAddr>,
    ) -> Option<Pick<'_>> {
        let headers = HeaderMap::new();
        self.pick(&PickRequest {
            headers: &headers,
            path: "",
            peer,
            local,
            original_dst,
            health: None,
            avoid: &[],
        })
    }

    /// Records what an attempt to `address` came to, for outlier detection (nothing to
    /// do, and no lock taken, for a cluster without it).
    pub fn report(&self, health: &outlier::Health, address: &str, outcome: outlier::Outcome) {
        if let Some(config) = &self.outlier {
            health.report(config, &self.endpoints, address, outcome, Instant::now());
        }
    }

    /// Picks an endpoint for `req`, or `None` when there is none to pick (every endpoint
    /// ejected and no panic). A retry avoids endpoints earlier attempts used when the
    /// cluster has another.
    pub fn pick(&self, req: &PickRequest<'_>) -> Option<Pick<'_>> {
        if let LbPolicy::Passthrough = self.lb {
            return req.original_dst.map(|a| Pick {
                target: Target::OriginalDst(a),
                set_cookie: None,
            });
        }
        let excluded = self.avoiding(req, self.ejected(req));
        let mut set_cookie = None;
        let i = self.choose(req, &mut set_cookie, excluded.as_deref())?;
        let endpoint = self.endpoints.get(i)?;
        endpoint.active.fetch_add(1, Ordering::Relaxed);
        Some(Pick {
            target: Target::Endpoint(endpoint),
            set_cookie,
        })
    }

    /// `excluded` plus the endpoints a retry's earlier attempts used, as long as that
    /// leaves one to pick: Envoy's `previous_hosts` predicate re-picks up to five times to
    /// miss them, Weft leaves them out of the choice, so a retry certainly goes elsewhere
    /// when the cluster has somewhere else.
    fn avoiding(&self, req: &PickRequest<'_>, excluded: Option<Vec<bool>>) -> Option<Vec<bool>> {
        if req.avoid.is_empty() {
            return excluded;
        }
        let mask: Vec<bool> = self
            .endpoints
            .iter()
            .enumerate()
            .map(|(i, e)| {
                excluded.as_ref().is_some_and(|x| x.get(i) == Some(&true))
                    || req.avoid.contains(&e.address)
            })
            .collect();
        if mask.iter().all(|x| *x) {
            excluded
        } else {
            Some(mask)
        }
    }

    /// The endpoints outlier detection has ejected (`true` at their index), or `None`
    /// when the load balancer may use them all: no outlier detection, nothing ejected, or
    /// panic (too few healthy endpoints left, `minHealthPercent`).
    fn ejected(&self, req: &PickRequest<'_>) -> Option<Vec<bool>> {
        let (config, health) = (self.outlier.as_ref()?, req.health?);
        let ejected = health.ejected(&self.endpoints, Instant::now())?;
        let healthy = ejected.iter().filter(|e| !**e).count();
        (!config.panics(healthy, ejected.len())).then_some(ejected)
    }

    /// One load-balancing decision over the endpoints not `ejected`: the index of an
    /// endpoint. Each policy balances over the healthy endpoints alone, as Envoy's do
    /// over its healthy host set; consistent hashing walks on from the key's place to
    /// the next healthy entry.
    fn choose(
        &self,
        req: &PickRequest<'_>,
        set_cookie: &mut Option<String>,
        ejected: Option<&[bool]>,
    ) -> Option<usize> {
        let n = self.endpoints.len();
        let healthy = |i: usize| ejected.is_none_or(|e| e.get(i) == Some(&false));
        let live = ejected.map_or(n, |e| e.iter().filter(|x| !**x).count());
        // The index of the k-th healthy endpoint.
        let nth = |k: usize| match ejected {
            None => Some(k),
            Some(e) => e
                .iter()
                .enumerate()
                .filter(|(_, x)| !**x)
                .nth(k)
                .map(|(i, _)| i),
        };
        let i = match (&self.lb, live) {
            (_, 0) => return None,
            (LbPolicy::ConsistentHash { key, table }, _) => {
                let outcome = key.evaluate(req);
                *set_cookie = outcome.set_cookie;
                // Envoy: a request without the hash key goes to a random endpoint.
                let hash = outcome.hash.unwrap_or_else(|| fastrand::u64(..));
                match ejected {
                    None => table.lookup(hash)?,
                    Some(_) => table.lookup_where(hash, healthy)?,
                }
            }
            (_, 1) => nth(0)?,
            (LbPolicy::RoundRobin | LbPolicy::Passthrough, _) => {
                nth(self.next.fetch_add(1, Ordering::Relaxed) % live)?
            }
            (LbPolicy::Random, _) => nth(fastrand::usize(..live))?,
            (LbPolicy::LeastRequest, _) => {
                let a = fastrand::usize(..live);
                let b = (a + 1 + fastrand::usize(..live - 1)) % live;
                let (a, b) = (nth(a)?, nth(b)?);
                let load = |i: usize| self.endpoints[i].active.load(Ordering::Relaxed);
                if load(b) < load(a) { b } else { a }
            }
        };
        (i < n).then_some(i)
    }
}

#[cfg(test)]
mod tests;
