//! What the push server reports: `/debug/syncz` (every connected proxy with, per
//! resource type, the versions sent and ACKed, the nonces, the state and the last NACK's
//! reason: Istio's name and idea) and each object's distribution, written into the
//! store's status ("2/3 proxies up to date").

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use weft_xds::TYPES;

use super::{PushServer, lock};
use crate::scope::ProxyKind;
use crate::store::{Distribution, Key};

/// How long the status writer waits after a wake-up, so that a burst of ACKs makes one
/// pass over the proxies.
const STATUS_COALESCE: Duration = Duration::from_millis(100);

/// Istio's short names for the types, used as column names.
pub fn type_short_name(type_url: &str) -> &'static str {
    match type_url {
        weft_xds::SERVICE_TYPE => "SERVICES",
        _ => "CONFIG",
    }
}

pub(super) fn syncz(server: &PushServer) -> Value {
    let peers = lock(&server.peers);
    let mut out: Vec<Value> = peers
        .values()
        .map(|peer| {
            let c = lock(&peer.conn);
            let types: Vec<Value> = c
                .types
                .iter()
                .zip(TYPES)
                .map(|(t, url)| {
                    json!({
                        "type_url": url,
                        "name": type_short_name(url),
                        "state": t.state(),
                        "sent": t.sent_version.map(|v| v.to_string()),
                        "acked": t.acked_version.map(|v| v.to_string()),
                        "nonce_sent": t.nonce_sent,
                        "nonce_acked": t.nonce_acked,
                        "resources": t.desired().count(),
                        "last_nack": t.last_nack,
                    })
                })
                .collect();
            json!({
                "proxy": c.name,
                "namespace": c.identity.namespace,
                "mode": match c.identity.kind {
                    ProxyKind::Gateway => "gateway",
                    ProxyKind::Sidecar => "sidecar",
                },
                "version": c.version,
                "types": types,
            })
        })
        .collect();
    out.sort_by(|a, b| a["proxy"].as_str().cmp(&b["proxy"].as_str()));
    json!({ "proxies": out })
}

/// Keeps every object's distribution in the store up to date: woken on each ACK, NACK
/// and proxy connection, it counts, per object in some proxy's view, the proxies that
/// should have it and those that have its current version.
pub(super) async fn write_distribution(server: Arc<PushServer>) {
    let mut written: HashMap<Key, Distribution> = HashMap::new();
    loop {
        server.status_dirty.notified().await;
        tokio::time::sleep(STATUS_COALESCE).await;
        let counts = count(&server);
        let world = server.world();
        for entry in world.objects.values() {
            let (applied, rejected, total) = counts
                .get(&*entry.encoded.name)
                .copied()
                .unwrap_or_default();
            let d = Distribution {
                generation: entry.generation,
                applied,
                rejected,
                total,
            };
            // Objects no proxy ever had (registry sources, unused ones) get none.
            if total == 0 && !written.contains_key(&entry.key) {
                continue;
            }
            if written.get(&entry.key) != Some(&d) && server.store.set_distribution(&entry.key, d) {
                written.insert(entry.key.clone(), d);
            }
        }
        let live: HashSet<&Key> = world.objects.values().map(|e| &e.key).collect();
        written.retain(|k, _| live.contains(k));
    }
}

/// Per config resource name: (proxies with its current version, proxies that refused
/// it, proxies that should have it).
fn count(server: &PushServer) -> HashMap<String, (u32, u32, u32)> {
    let mut counts: HashMap<String, (u32, u32, u32)> = HashMap::new();
    let conns: Vec<_> = lock(&server.peers)
        .values()
        .map(|p| Arc::clone(&p.conn))
        .collect();
    let config = TYPES
        .iter()
        .position(|t| *t == weft_xds::CONFIG_TYPE)
        .unwrap_or(1);
    for conn in conns {
        let c = lock(&conn);
        let t = &c.types[config];
        for e in t.desired() {
            let slot = counts.entry(e.name.to_string()).or_default();
            slot.2 += 1;
            if t.acked.get(&e.name) == Some(&e.version) {
                slot.0 += 1;
            } else if t.rejected.get(&e.name) == Some(&e.version) {
                slot.1 += 1;
            }
        }
    }
    counts
}
