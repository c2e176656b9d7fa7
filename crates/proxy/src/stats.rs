//! Envoy-style counters, owned by the proxy (no global registry) and read by the admin
//! API's `/stats`. They are bumped at fixed points of a request: when it starts, when its
//! upstream cluster is chosen, and when its response goes out. Later telemetry features
//! hook in at the same points.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use http::StatusCode;

use crate::cluster::breaker::Limits;

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
    /// Requests that had to wait for a connection.
    pub upstream_rq_pending_total: AtomicU64,
    /// Waiting requests failed because the connection made for them failed.
    pub upstream_rq_pending_failure_eject: AtomicU64,
    /// Connections not made because `maxConnections` were open.
    pub upstream_cx_overflow: AtomicU64,
    /// Connections made (attempts included).
    pub upstream_cx_total: AtomicU64,
    /// Connections closed because they carried `maxRequestsPerConnection` requests.
    pub upstream_cx_max_requests: AtomicU64,
    pub breaker: crate::cluster::breaker::Gauges,
    pub health: crate::cluster::outlier::Health,
}

impl ClusterStats {
    /// The counters, by Envoy's name.
    fn counters(&self) -> [(&'static str, &AtomicU64); 14] {
        [
            ("upstream_cx_connect_fail", &self.upstream_cx_connect_fail),
            ("upstream_cx_max_requests", &self.upstream_cx_max_requests),
            ("upstream_cx_overflow", &self.upstream_cx_overflow),
            ("upstream_cx_total", &self.upstream_cx_total),
            (
                "upstream_rq_pending_failure_eject",
                &self.upstream_rq_pending_failure_eject,
            ),
            ("upstream_rq_pending_total", &self.upstream_rq_pending_total),
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

    /// The circuit breakers' live gauges and whether each breaker is open under `limits`
    /// (Envoy's `circuit_breakers.{default,high}.*`; Istio only uses the default
    /// priority, so the high ones stay 0).
    fn breaker_lines(&self, limits: &Limits) -> Vec<(String, u64)> {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let b = &self.breaker;
        let mut lines = vec![
            ("upstream_cx_active".to_string(), load(&b.connections)),
            ("upstream_rq_active".to_string(), load(&b.requests)),
            ("upstream_rq_pending_active".to_string(), load(&b.pending)),
        ];
        for (name, open) in b.open(limits) {
            lines.push((format!("circuit_breakers.default.{name}"), u64::from(open)));
            lines.push((format!("circuit_breakers.high.{name}"), 0));
        }
        lines
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

    /// `name: value` lines sorted by name, as Envoy's `/stats` prints them. `limits`
    /// gives a cluster's circuit-breaker thresholds (`None`: not in the current tables).
    pub fn render(&self, limits: impl Fn(&str) -> Option<Limits>) -> String {
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
            let limits = limits(name).unwrap_or_default();
            for (gauge, value) in c.breaker_lines(&limits) {
                lines.insert(format!("cluster.{name}.{gauge}"), value);
            }
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
        let text = stats.render(|_| None);
        assert!(text.contains("downstream_rq_total: 1\n"), "{text}");
        assert!(text.contains("downstream_rq_2xx: 1\n"), "{text}");
        assert!(text.contains("downstream_rq_4xx: 1\n"), "{text}");
        assert!(text.contains("downstream_rq_5xx: 0\n"), "{text}");
        assert!(
            text.contains("cluster.outbound|80||a.upstream_rq_total: 1\n"),
            "{text}"
        );
    }

    #[test]
    fn circuit_breaker_gauges_render_with_envoys_names() {
        let stats = Stats::default();
        let c = stats.cluster("outbound|80||a");
        let limits = Limits {
            max_connections: 1,
            ..Limits::default()
        };
        let slot = crate::cluster::breaker::acquire(&c.breaker.connections, 1);
        ClusterStats::bump(&c.upstream_cx_overflow);
        let text = stats.render(|name| (name == "outbound|80||a").then_some(limits));
        for line in [
            "cluster.outbound|80||a.upstream_cx_active: 1\n",
            "cluster.outbound|80||a.upstream_cx_overflow: 1\n",
            "cluster.outbound|80||a.upstream_rq_pending_active: 0\n",
            "cluster.outbound|80||a.upstream_rq_pending_overflow: 0\n",
            "cluster.outbound|80||a.circuit_breakers.default.cx_open: 1\n",
            "cluster.outbound|80||a.circuit_breakers.default.rq_pending_open: 0\n",
            "cluster.outbound|80||a.circuit_breakers.high.cx_open: 0\n",
        ] {
            assert!(text.contains(line), "{line}in\n{text}");
        }
        drop(slot);
        let text = stats.render(|_| Some(limits));
        assert!(
            text.contains("cluster.outbound|80||a.circuit_breakers.default.cx_open: 0\n"),
            "{text}"
        );
    }
}
