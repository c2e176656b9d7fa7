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

/// One upstream cluster's counters.
#[derive(Debug, Default)]
pub struct ClusterStats {
    pub upstream_rq_total: AtomicU64,
    pub upstream_cx_connect_fail: AtomicU64,
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
            lines.insert(
                format!("cluster.{name}.upstream_cx_connect_fail"),
                load(&c.upstream_cx_connect_fail),
            );
            lines.insert(
                format!("cluster.{name}.upstream_rq_total"),
                load(&c.upstream_rq_total),
            );
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
