//! The control plane's Prometheus metrics (`/metrics` on :15014). One registry, owned by
//! whoever starts the server; each part registers its own metrics in it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::store::ConfigStore;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

/// `weft_config_objects{kind="VirtualService"} 3`: the store's objects by kind, counted
/// when scraped.
pub struct ConfigMetrics {
    objects: Family<KindLabels, Gauge>,
    /// Kinds counted before: they go to 0 rather than vanish when their last object goes.
    seen: Mutex<BTreeSet<String>>,
}

impl ConfigMetrics {
    pub fn register(registry: &mut Registry) -> ConfigMetrics {
        let objects = Family::<KindLabels, Gauge>::default();
        registry.register(
            "weft_config_objects",
            "Config objects in the store, by kind",
            objects.clone(),
        );
        ConfigMetrics {
            objects,
            seen: Mutex::new(BTreeSet::new()),
        }
    }

    /// Sets the gauges from the store's current content.
    pub fn refresh(&self, store: &dyn ConfigStore) {
        // By the name users write in `kind:`: Istio's and the Gateway API's Gateway
        // count together.
        let mut counts: BTreeMap<String, i64> = BTreeMap::new();
        for o in store.list(None, None) {
            *counts.entry(o.object.kind.to_string()).or_default() += 1;
        }
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.extend(counts.keys().cloned());
        for kind in seen.iter() {
            let labels = KindLabels { kind: kind.clone() };
            self.objects
                .get_or_create(&labels)
                .set(counts.get(kind).copied().unwrap_or(0));
        }
    }
}
