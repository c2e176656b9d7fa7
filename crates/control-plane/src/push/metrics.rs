//! The push server's Prometheus metrics, under istiod's names (users' dashboards query
//! them): `pilot_xds_pushes{type}` and `pilot_total_xds_rejects{type}` (counters),
//! `pilot_xds_push_time{type}` (one response worked out and sent),
//! `pilot_proxy_convergence_time` (a change accepted by the store until every proxy it
//! affects has answered it), `pilot_xds{version}` (connected proxies). `type` is the
//! resource type's short name (`services`, `config`), as istiod's is `cds`, `eds`...

use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

/// istiod's buckets for `pilot_xds_push_time`, with finer ones below 10 ms, where a
/// push of this control plane lands.
const PUSH_TIME_BUCKETS: [f64; 11] = [
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.1, 1.0, 3.0, 5.0, 10.0, 20.0,
];

/// istiod's buckets for `pilot_proxy_convergence_time` (.1 .. 30 s), with finer ones
/// below 100 ms: a change here converges in tens of milliseconds.
pub(crate) const CONVERGENCE_BUCKETS: [f64; 13] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 3.0, 5.0, 10.0, 20.0, 30.0,
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabels {
    r#type: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: String,
}

/// A counter written under its name as is (`pilot_xds_pushes 3`), as istiod writes
/// its counters: the OpenMetrics encoding would add `_total` to a counter's name, and
/// dashboards query istiod's. Exposed with type `unknown`, which Prometheus reads
/// (and `rate()`s) like an untyped counter.
#[derive(Debug, Clone, Default)]
struct IstioCounter(Counter);

impl TypedMetric for IstioCounter {
    const TYPE: MetricType = MetricType::Unknown;
}

impl EncodeMetric for IstioCounter {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_gauge(&self.0.get())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Unknown
    }
}

pub struct PushMetrics {
    pushes: Family<TypeLabels, IstioCounter>,
    rejects: Family<TypeLabels, IstioCounter>,
    push_time: Family<TypeLabels, Histogram>,
    /// Each type's counter and histogram, looked up once: a push to thousands of
    /// streams records thousands of samples.
    per_type: Vec<(&'static str, IstioCounter, Histogram)>,
    convergence: Histogram,
    connected: Family<VersionLabels, Gauge>,
}

fn type_labels(type_url: &str) -> TypeLabels {
    TypeLabels {
        r#type: super::status::type_short_name(type_url).to_ascii_lowercase(),
    }
}

impl PushMetrics {
    pub fn register(registry: &mut Registry) -> PushMetrics {
        let mut m = PushMetrics {
            pushes: Family::default(),
            rejects: Family::default(),
            push_time: Family::new_with_constructor(|| {
                Histogram::new(PUSH_TIME_BUCKETS.iter().copied())
            }),
            per_type: Vec::new(),
            convergence: Histogram::new(CONVERGENCE_BUCKETS.iter().copied()),
            connected: Family::default(),
        };
        m.per_type = weft_xds::TYPES
            .iter()
            .map(|t| {
                let labels = type_labels(t);
                (
                    *t,
                    m.pushes.get_or_create(&labels).clone(),
                    m.push_time.get_or_create(&labels).clone(),
                )
            })
            .collect();
        registry.register(
            "pilot_xds_pushes",
            "Responses sent to proxies, by resource type",
            m.pushes.clone(),
        );
        registry.register(
            "pilot_total_xds_rejects",
            "Responses proxies refused (NACK), by resource type",
            m.rejects.clone(),
        );
        registry.register(
            "pilot_xds_push_time",
            "Time in seconds to work out and send one response to one proxy",
            m.push_time.clone(),
        );
        registry.register(
            "pilot_proxy_convergence_time",
            "Delay in seconds between a config change (one debounced batch) and every \
             proxy it affects answering it (ACK or NACK)",
            m.convergence.clone(),
        );
        registry.register(
            "pilot_xds",
            "Proxies connected to the push server, by proxy version",
            m.connected.clone(),
        );
        m
    }

    pub(super) fn pushed(&self, type_url: &str, took: Duration) {
        match self.per_type.iter().find(|(t, _, _)| *t == type_url) {
            Some((_, count, time)) => {
                count.0.inc();
                time.observe(took.as_secs_f64());
            }
            None => {
                let labels = type_labels(type_url);
                self.pushes.get_or_create(&labels).0.inc();
                self.push_time
                    .get_or_create(&labels)
                    .observe(took.as_secs_f64());
            }
        }
    }

    pub(super) fn nack(&self, type_url: &str) {
        self.rejects.get_or_create(&type_labels(type_url)).0.inc();
    }

    pub(super) fn converged(&self, took: Duration) {
        self.convergence.observe(took.as_secs_f64());
    }

    pub(super) fn connected(&self, version: &str, delta: i64) {
        self.connected
            .get_or_create(&VersionLabels {
                version: version.to_string(),
            })
            .inc_by(delta);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;

    fn text(registry: &Registry) -> String {
        let mut out = String::new();
        encode(&mut out, registry).unwrap();
        out
    }

    #[test]
    fn istiod_names_without_total_suffix() {
        let mut registry = Registry::default();
        let m = PushMetrics::register(&mut registry);
        m.pushed(weft_xds::CONFIG_TYPE, Duration::from_millis(2));
        m.pushed(weft_xds::CONFIG_TYPE, Duration::from_millis(2));
        m.nack(weft_xds::SERVICE_TYPE);
        m.connected("weft 0.1.0", 2);
        m.connected("weft 0.1.0", -1);
        m.converged(Duration::from_millis(30));
        let out = text(&registry);
        for line in [
            "pilot_xds_pushes{type=\"config\"} 2\n",
            "pilot_total_xds_rejects{type=\"services\"} 1\n",
            "pilot_xds{version=\"weft 0.1.0\"} 1\n",
            "pilot_xds_push_time_count{type=\"config\"} 2\n",
            "pilot_proxy_convergence_time_count 1\n",
            "pilot_proxy_convergence_time_bucket{le=\"0.05\"} 1\n",
            "pilot_proxy_convergence_time_bucket{le=\"0.025\"} 0\n",
        ] {
            assert!(out.contains(line), "{line:?} not in\n{out}");
        }
        assert!(!out.contains("_total{"), "{out}");
    }
}
