//! Circuit breaking (DestinationRule `connectionPool`): the thresholds a cluster's traffic
//! may not cross, and the cluster's live counts checked against them. A request over a
//! threshold is refused at once (503 `UO`) instead of queueing behind a struggling
//! upstream, as Envoy's circuit breakers do.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::stats::ClusterStats;

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
    /// `retryBudget`: when set, retries in flight are capped by a share of the requests
    /// active and pending instead of by `max_retries` (as Envoy's retry budget overrides
    /// its retry circuit breaker).
    pub retry_budget: Option<RetryBudget>,
}

/// Retries allowed as a share of the cluster's active and pending requests, never fewer
/// than a floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct RetryBudget {
    /// The share, in millionths (Istio's `percent`, default 20%, is 200000).
    pub per_million: u64,
    /// `minRetryConcurrency` (default 3).
    pub min_concurrency: u64,
}

impl Limits {
    /// The retries that may be in flight now: the budget's share of the requests active
    /// and pending (at least its floor), else `max_retries`.
    pub fn max_retries_now(&self, gauges: &Gauges) -> u64 {
        let Some(budget) = self.retry_budget else {
            return self.max_retries;
        };
        let load = gauges.requests.load(Ordering::Relaxed) + gauges.pending.load(Ordering::Relaxed);
        (load.saturating_mul(budget.per_million) / 1_000_000).max(budget.min_concurrency)
    }
}

/// Istio's "unlimited": `2^32 - 1`, what it writes into Envoy's thresholds.
pub const UNLIMITED: u64 = u32::MAX as u64;

impl Default for Limits {
    /// Istio's defaults (`getDefaultCircuitBreakerThresholds`): every threshold `2^32-1`;
    /// no cap on requests per connection; Envoy's HTTP/2 default of `2^31-1` streams.
    fn default() -> Self {
        Self {
            max_connections: UNLIMITED,
            max_pending_requests: UNLIMITED,
            max_requests: UNLIMITED,
            max_retries: UNLIMITED,
            max_requests_per_connection: None,
            max_concurrent_streams: u64::from(i32::MAX.unsigned_abs()),
            retry_budget: None,
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

/// Which of a cluster's gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gauge {
    Requests,
    Pending,
    Connections,
    Retries,
}

impl Gauges {
    pub fn get(&self, gauge: Gauge) -> &AtomicU64 {
        match gauge {
            Gauge::Requests => &self.requests,
            Gauge::Pending => &self.pending,
            Gauge::Connections => &self.connections,
            Gauge::Retries => &self.retries,
        }
    }

    /// Envoy's `circuit_breakers.default.*` gauges: whether each breaker is open (its
    /// count at its threshold) under `limits`.
    pub fn open(&self, limits: &Limits) -> [(&'static str, bool); 4] {
        let at = |g: &AtomicU64, max: u64| g.load(Ordering::Relaxed) >= max;
        [
            ("cx_open", at(&self.connections, limits.max_connections)),
            ("rq_open", at(&self.requests, limits.max_requests)),
            (
                "rq_pending_open",
                at(&self.pending, limits.max_pending_requests),
            ),
            (
                "rq_retry_open",
                at(&self.retries, limits.max_retries_now(self)),
            ),
        ]
    }
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
    // Lazily: a `Slot` made for nothing would give back a unit never taken.
    take(gauge, max).then(|| Slot(gauge))
}

/// One unit of a cluster's gauge that may outlive the borrow it was taken under: a
/// connection's slot lives as long as the connection, a request's until its response body
/// ends. Given back when dropped.
#[derive(Debug)]
pub struct Held {
    stats: Arc<ClusterStats>,
    gauge: Gauge,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.stats
            .breaker
            .get(self.gauge)
            .fetch_sub(1, Ordering::AcqRel);
    }
}

/// Takes one unit of `stats`' `gauge` if it is below `max`.
pub fn hold(stats: &Arc<ClusterStats>, gauge: Gauge, max: u64) -> Option<Held> {
    take(stats.breaker.get(gauge), max).then(|| Held {
        stats: stats.clone(),
        gauge,
    })
}

/// Takes one unit of `stats`' `gauge` whatever its threshold: Envoy lets an endpoint's
/// pool that has no connection open one past `maxConnections`, so that requests queued
/// for that endpoint are never stranded.
pub fn hold_anyway(stats: &Arc<ClusterStats>, gauge: Gauge) -> Held {
    stats.breaker.get(gauge).fetch_add(1, Ordering::AcqRel);
    Held {
        stats: stats.clone(),
        gauge,
    }
}

fn take(gauge: &AtomicU64, max: u64) -> bool {
    gauge
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_budget_is_a_share_of_the_load_with_a_floor() {
        let gauges = Gauges::default();
        let limits = Limits {
            max_retries: 1,
            retry_budget: Some(RetryBudget {
                per_million: 200_000,
                min_concurrency: 3,
            }),
            ..Limits::default()
        };
        assert_eq!(
            limits.max_retries_now(&gauges),
            3,
            "the floor, not max_retries"
        );
        gauges.requests.store(40, Ordering::Relaxed);
        gauges.pending.store(10, Ordering::Relaxed);
        assert_eq!(limits.max_retries_now(&gauges), 10, "20% of 50");
        assert_eq!(Limits::default().max_retries_now(&gauges), UNLIMITED);
    }

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

    #[test]
    fn held_slots_outlive_the_borrow_and_count_against_the_same_gauge() {
        let stats = Arc::new(ClusterStats::default());
        let held = hold(&stats, Gauge::Connections, 1);
        assert!(held.is_some());
        assert!(hold(&stats, Gauge::Connections, 1).is_none());
        assert!(acquire(&stats.breaker.connections, 1).is_none());
        // Past the threshold on purpose (an endpoint without connections).
        let extra = hold_anyway(&stats, Gauge::Connections);
        assert_eq!(stats.breaker.connections.load(Ordering::Relaxed), 2);
        drop(held);
        assert!(
            hold(&stats, Gauge::Connections, 1).is_none(),
            "still 1 open"
        );
        drop(extra);
        assert!(hold(&stats, Gauge::Connections, 1).is_some());
        assert_eq!(stats.breaker.connections.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_breaker_is_open_while_its_gauge_is_at_its_threshold() {
        let stats = Arc::new(ClusterStats::default());
        let limits = Limits {
            max_pending_requests: 1,
            ..Limits::default()
        };
        let open = |name| {
            stats
                .breaker
                .open(&limits)
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, o)| *o)
        };
        assert_eq!(open("rq_pending_open"), Some(false));
        let slot = hold(&stats, Gauge::Pending, limits.max_pending_requests);
        assert_eq!(open("rq_pending_open"), Some(true));
        assert_eq!(open("cx_open"), Some(false));
        drop(slot);
        assert_eq!(open("rq_pending_open"), Some(false));
    }
}
