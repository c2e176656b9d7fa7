//! Envoy-style counters, owned by the proxy (no global registry) and read by the admin
//! API's `/stats`. They are bumped at fixed points of a request: when it starts, when its
//! upstream cluster is chosen, and when its response goes out. Later telemetry features
//! hook in at the same points.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use http::StatusCode;

/// The proxy's counters.
#[derive(Debug, Default)]
pub struct Stats {
    downstream_rq_total: AtomicU64,
    /// Responses by class: 1xx .. 5xx.
    downstream_rq_class: [AtomicU64; 5],
    clusters: RwLock<BTreeMap<String, Arc<ClusterStats>>>,
}

/// One upstream cluster's counters (Envoy's names), and the cluster's live state that
/// must outlive a config reload: circuit-breaker gauges and outlier detection.
#[derive(Debug, Default)]
pub struct ClusterStats {
    pub upstream_rq_total: AtomicU64,
    pub upstream_cx_connect_fail: AtomicU64,
    /// Requests answered with a timeout (the route's, or the last try's).
    pub upstream_rq_timeout: AtomicU64,
    /// Tries that ran past their per-try timeout.
    pub upstream_rq_per_try_timeout: AtomicU64,
    /// Retries made.
    pub upstream_rq_retry: AtomicU64,
    /// Requests a retry ended with a non-retriable answer.
    pub upstream_rq_retry_success: AtomicU64,
    /// Retries not made because `maxRetries` were already in flight.
    pub upstream_rq_retry_overflow: AtomicU64,
    /// Requests whose retries ran out while the answer was still retriable.
    pub upstream_rq_retry_limit_exceeded: AtomicU64,
    /// Requests refused by the `http2MaxRequests` circuit breaker or the pending queue.
    pub upstream_rq_pending_overflow: AtomicU64,
    pub breaker: crate::cluster::breaker::Gauges,
    pub health: crate::cluster::outlier::Health,
}

impl ClusterStats {
    /// The counters, by Envoy's name.
    fn counters(&self) -> [(&'static str, &AtomicU64); 9] {
        [
            ("upstream_cx_connect_fail", &self.upstream_cx_connect_fail),
            (
                "upstream_rq_pending_overflow",
                &self.upstream_rq_pending_overflow,
            ),
            (
                "upstream_rq_per_try_timeout",
                &self.upstream_rq_per_try_timeout,
            ),
            ("upstream_rq_retry", &self.upstream_rq_retry),
            (
                "upstream_rq_retry_limit_exceeded",
                &self.upstream_rq_retry_limit_exceeded,
            ),
            (
                "upstream_rq_retry_overflow",
                &self.upstream_rq_retry_overflow,
            ),
            ("upstream_rq_retry_success", &self.upstream_rq_retry_success),
            ("upstream_rq_timeout", &self.upstream_rq_timeout),
            ("upstream_rq_total", &self.upstream_rq_total),
        ]
    }
}

impl Stats {
    /// A downstream request started.
    pub fn request_started(&self) {
        self.downstream_rq_total.fetch_add(1, Ordering::Relaxed);
    }

    /// A response (the upstream's or the proxy's own) went out with `status`.
    pub fn response_sent(&self, status: StatusCode) {
        let class = usize::from(status.as_u16() / 100);
        if let Some(c) = class
            .checked_sub(1)
            .and_then(|i| self.downstream_rq_class.get(i))
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counters of `cluster`, created on first use.
    pub fn cluster(&self, cluster: &str) -> Arc<ClusterStats> {
        if let Some(c) = self
            .clusters
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(cluster)
        {
            return c.clone();
        }
        self.clusters
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(cluster.to_string())
            .or_default()
            .clone()
    }

    /// `name: value` lines sorted by name, as Envoy's `/stats` prints them.
    pub fn render(&self) -> String {
        let mut lines = BTreeMap::new();
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        for (name, c) in self
            .clusters
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            for (counter, value) in c.counters() {
                lines.insert(format!("cluster.{name}.{counter}"), load(value));
            }
            c.health
                .render(std::time::Instant::now(), &mut |stat, value| {
                    lines.insert(format!("cluster.{name}.outlier_detection.{stat}"), value);
                });
        }
        lines.insert(
            "downstream_rq_total".to_string(),
            load(&self.downstream_rq_total),
        );
        for (i, c) in self.downstream_rq_class.iter().enumerate() {
            lines.insert(format!("downstream_rq_{}xx", i + 1), load(c));
        }
        let mut out = String::new();
        for (name, value) in lines {
            let _ = writeln!(out, "{name}: {value}");
        }
        out
    }
}

impl ClusterStats {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_class_and_cluster() {
        let stats = Stats::default();
        stats.request_started();
        stats.response_sent(StatusCode::OK);
        stats.response_sent(StatusCode::NOT_FOUND);
        ClusterStats::bump(&stats.cluster("outbound|80||a").upstream_rq_total);
        let text = stats.render();
        assert!(text.contains("downstream_rq_total: 1\n"), "{text}");
        assert!(text.contains("downstream_rq_2xx: 1\n"), "{text}");
        assert!(text.contains("downstream_rq_4xx: 1\n"), "{text}");
        assert!(text.contains("downstream_rq_5xx: 0\n"), "{text}");
        assert!(
            text.contains("cluster.outbound|80||a.upstream_rq_total: 1\n"),
            "{text}"
        );
    }
}
