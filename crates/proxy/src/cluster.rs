//! Upstream clusters: the endpoints one (service, port, subset) resolves to, and the load
//! balancer that picks one of them for each request.

use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;

use crate::registry::Protocol;

/// How a cluster spreads requests over its endpoints (DestinationRule `loadBalancer.simple`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum LbPolicy {
    RoundRobin,
    /// Istio's default: the less busy of two endpoints picked at random.
    LeastRequest,
    Random,
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
    pub endpoints: Vec<UpstreamEndpoint>,
    #[serde(skip)]
    next: AtomicUsize,
}

/// An endpoint chosen for one request; its in-flight count drops when this is dropped.
pub struct Pick<'a> {
    pub endpoint: &'a UpstreamEndpoint,
}

impl Drop for Pick<'_> {
    fn drop(&mut self) {
        self.endpoint.active.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Cluster {
    pub fn new(
        name: String,
        protocol: Protocol,
        lb: LbPolicy,
        endpoints: Vec<UpstreamEndpoint>,
    ) -> Self {
        Self {
            name,
            protocol,
            lb,
            endpoints,
            next: AtomicUsize::new(fastrand::usize(..usize::MAX / 2)),
        }
    }

    /// Istio's cluster name.
    pub fn name_for(port: u16, subset: &str, host: &str) -> String {
        format!("outbound|{port}|{subset}|{host}")
    }

    /// Picks an endpoint, or `None` when the cluster has none.
    pub fn pick(&self) -> Option<Pick<'_>> {
        let n = self.endpoints.len();
        let i = match (n, self.lb) {
            (0, _) => return None,
            (1, _) => 0,
            (_, LbPolicy::RoundRobin) => self.next.fetch_add(1, Ordering::Relaxed) % n,
            (_, LbPolicy::Random) => fastrand::usize(..n),
            (_, LbPolicy::LeastRequest) => {
                let a = fastrand::usize(..n);
                let b = (a + 1 + fastrand::usize(..n - 1)) % n;
                let load = |i: usize| self.endpoints[i].active.load(Ordering::Relaxed);
                if load(b) < load(a) { b } else { a }
            }
        };
        let endpoint = &self.endpoints[i];
        endpoint.active.fetch_add(1, Ordering::Relaxed);
        Some(Pick { endpoint })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(lb: LbPolicy, n: usize) -> Cluster {
        let eps = (0..n)
            .map(|i| UpstreamEndpoint::new(format!("10.0.0.{i}:80")))
            .collect();
        Cluster::new("c".into(), Protocol::Http, lb, eps)
    }

    #[test]
    fn round_robin_visits_every_endpoint_in_turn() {
        let c = cluster(LbPolicy::RoundRobin, 3);
        let picks: Vec<String> = (0..6)
            .map(|_| c.pick().unwrap().endpoint.address.clone())
            .collect();
        assert_eq!(picks[..3], picks[3..]);
        let mut first: Vec<&String> = picks[..3].iter().collect();
        first.sort();
        first.dedup();
        assert_eq!(first.len(), 3);
    }

    #[test]
    fn least_request_avoids_the_busy_endpoint() {
        let c = cluster(LbPolicy::LeastRequest, 2);
        let busy = c.pick().unwrap();
        let busy_addr = busy.endpoint.address.clone();
        for _ in 0..50 {
            assert_ne!(c.pick().unwrap().endpoint.address, busy_addr);
        }
        drop(busy);
    }

    #[test]
    fn empty_clusters_pick_nothing() {
        assert!(cluster(LbPolicy::Random, 0).pick().is_none());
    }
}
