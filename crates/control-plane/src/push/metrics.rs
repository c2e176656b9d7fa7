//! The push server's Prometheus metrics: pushes and NACKs per resource type, the time a
//! push takes to work out and send, the connected proxies.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabels {
    type_url: String,
}

pub struct PushMetrics {
    pushes: Family<TypeLabels, Counter>,
    nacks: Family<TypeLabels, Counter>,
    push_time: Histogram,
    pub(super) connected: Gauge,
}

impl PushMetrics {
    pub fn register(registry: &mut Registry) -> PushMetrics {
        let m = PushMetrics {
            pushes: Family::default(),
            nacks: Family::default(),
            push_time: Histogram::new(exponential_buckets(0.0001, 4.0, 10)),
            connected: Gauge::default(),
        };
        registry.register(
            "weft_xds_pushes",
            "Responses sent to proxies, by resource type",
            m.pushes.clone(),
        );
        registry.register(
            "weft_xds_nacks",
            "Responses proxies refused (NACK), by resource type",
            m.nacks.clone(),
        );
        registry.register(
            "weft_xds_push_time_seconds",
            "Time to work out and send one push to one proxy",
            m.push_time.clone(),
        );
        registry.register(
            "weft_xds_connected_proxies",
            "Proxies connected to the push server",
            m.connected.clone(),
        );
        m
    }

    pub(super) fn pushed(&self, type_url: &str, took: Duration) {
        self.pushes
            .get_or_create(&TypeLabels {
                type_url: type_url.to_string(),
            })
            .inc();
        self.push_time.observe(took.as_secs_f64());
    }

    pub(super) fn nack(&self, type_url: &str) {
        self.nacks
            .get_or_create(&TypeLabels {
                type_url: type_url.to_string(),
            })
            .inc();
    }
}
