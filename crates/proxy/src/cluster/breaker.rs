//! Circuit breaking (DestinationRule `connectionPool`): the thresholds a cluster's traffic
//! may not cross, and the cluster's live counts checked against them. A request over a
//! threshold is refused at once (503 `UO`) instead of queueing behind a struggling
//! upstream, as Envoy's circuit breakers do.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// The thresholds; Istio leaves every one effectively unlimited unless the
/// DestinationRule sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Limits {
    /// `tcp.maxConnections`: open connections to all the cluster's endpoints.
    pub max_connections: u64,
    /// `http.http1MaxPendingRequests`: requests waiting for a connection.
    pub max_pending_requests: u64,
    /// `http.http2MaxRequests`: requests in flight to the cluster (any HTTP version).
    pub max_requests: u64,
    /// `http.maxRetries`: retries in flight to the cluster.
    pub max_retries: u64,
    /// `http.maxRequestsPerConnection`: requests one connection carries before it is
    /// closed; `None` is unlimited (1 turns keep-alive off).
    pub max_requests_per_connection: Option<u64>,
    /// `http.maxConcurrentStreams`: streams on one HTTP/2 connection before another is
    /// opened.
    pub max_concurrent_streams: u64,
}

/// Istio's "unlimited": `2^32 - 1`, what it writes into Envoy's thresholds.
pub const UNLIMITED: u64 = u32::MAX as u64;

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: UNLIMITED,
            max_pending_requests: UNLIMITED,
            max_requests: UNLIMITED,
            max_retries: UNLIMITED,
            max_requests_per_connection: None,
            max_concurrent_streams: u64::from(i32::MAX.unsigned_abs()),
        }
    }
}

/// A cluster's live counts; they outlive config reloads (they belong to the cluster's
/// name, like its stats), so requests in flight across a reload are still counted.
#[derive(Debug, Default)]
pub struct Gauges {
    /// Requests in flight (checked against `max_requests`).
    pub requests: AtomicU64,
    /// Requests waiting for a connection.
    pub pending: AtomicU64,
    /// Open upstream connections.
    pub connections: AtomicU64,
    /// Retries in flight.
    pub retries: AtomicU64,
}

/// One unit of a gauge, given back when dropped.
#[derive(Debug)]
pub struct Slot<'a>(&'a AtomicU64);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Takes one unit of `gauge` if it is below `max`.
pub fn acquire(gauge: &AtomicU64, max: u64) -> Option<Slot<'_>> {
    gauge
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .ok()
        .map(|_| Slot(gauge))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gauge_refuses_past_its_limit_and_frees_on_drop() {
        let gauge = AtomicU64::new(0);
        let a = acquire(&gauge, 2);
        let b = acquire(&gauge, 2);
        assert!(a.is_some() && b.is_some());
        assert!(acquire(&gauge, 2).is_none());
        drop(a);
        assert!(acquire(&gauge, 2).is_some());
        drop(b);
        assert_eq!(gauge.load(Ordering::Relaxed), 0);
    }
}
