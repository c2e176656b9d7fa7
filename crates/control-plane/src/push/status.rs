//! What the push server reports: `/debug/syncz` (every connected proxy with, per
//! resource type, the versions sent and ACKed, the nonces, the state and the last NACK's
//! reason: Istio's name and idea) and each object's distribution, written into the
//! store's status ("2/3 proxies up to date").

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;
use weft_xds::TYPES;

use super::world::World;
use super::{ProxyLookupError, PushServer, find_peer, lock, origins};
use crate::scope::{ObjectKey, ProxyKind};
use crate::store::{Distribution, Key};

/// How long the status writer waits after a wake-up, so that a burst of ACKs makes one
/// pass over the proxies.
const STATUS_COALESCE: Duration = Duration::from_millis(100);
/// The least time between two passes: istiod's `PILOT_STATUS_UPDATE_INTERVAL`.
const STATUS_INTERVAL: Duration = Duration::from_millis(500);

/// Istio's short names for the types, used as column names.
pub fn type_short_name(type_url: &str) -> &'static str {
    match type_url {
        weft_xds::SERVICE_TYPE => "SERVICES",
        _ => "CONFIG",
    }
}

pub(super) fn syncz(
    server: &PushServer,
    proxy_id: Option<&str>,
) -> Result<Value, ProxyLookupError> {
    let peers = lock(&server.peers);
    let only = proxy_id.map(|id| find_peer(&peers, id)).transpose()?;
    let mut out: Vec<Value> = peers
        .values()
        .filter(|peer| only.is_none_or(|one| std::ptr::eq(one, *peer)))
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
    Ok(json!({ "proxies": out }))
}

/// Keeps every object's distribution in the store up to date: woken by ACKs, NACKs
/// and proxies coming and going, it counts, per object that concerns some proxy, the
/// proxies it concerns and those that have its current generation: a config object's
/// own version, or for a registry source (ServiceEntry, WorkloadEntry, Service...) the
/// current versions of the services it feeds. A pass reads every connection, so passes
/// are at least `STATUS_INTERVAL` apart, however many ACKs a push to thousands of
/// proxies brings.
pub(super) async fn write_distribution(server: Arc<PushServer>) {
    let mut written: HashMap<Key, Distribution> = HashMap::new();
    let mut last: Option<Instant> = None;
    loop {
        server.status_dirty.notified().await;
        let coalesced = Instant::now() + STATUS_COALESCE;
        let at = last.map_or(coalesced, |l| coalesced.max(l + STATUS_INTERVAL));
        tokio::time::sleep_until(at).await;
        last = Some(Instant::now());
        let world = server.world();
        let tally = count(&server, &world);
        for (key, entry) in &world.objects {
            let c = if origins::SOURCE_KINDS.contains(&key.kind) {
                tally.sources.get(key)
            } else {
                tally.config.get(&*entry.encoded.name)
            };
            let c = c.copied().unwrap_or_default();
            let d = Distribution {
                generation: entry.generation,
                applied: c.applied,
                rejected: c.rejected,
                total: c.total,
            };
            // Objects that never concerned a proxy get none.
            if c.total == 0 && !written.contains_key(&entry.key) {
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

/// How many proxies have an object's current generation, refused it, it concerns.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    applied: u32,
    rejected: u32,
    total: u32,
}

/// A service's host and current version.
type HostVersion<'w> = (&'w str, Option<&'w str>);

/// The counts of one pass: config objects by resource name, registry sources by key.
struct Tally<'w> {
    config: HashMap<Arc<str>, Counts>,
    sources: HashMap<&'w ObjectKey, Counts>,
}

/// Counts every connection. A proxy is up to date with the world's current versions
/// only (its own view may still be from an older world).
fn count<'w>(server: &PushServer, world: &'w World) -> Tally<'w> {
    let current: HashMap<&str, &str> = world
        .objects
        .values()
        .map(|e| (&*e.encoded.name, &*e.encoded.version))
        .collect();
    let conns: Vec<_> = lock(&server.peers)
        .values()
        .map(|p| Arc::clone(&p.conn))
        .collect();
    let index = |url: &str| TYPES.iter().position(|t| *t == url).unwrap_or(0);
    let (services, config) = (index(weft_xds::SERVICE_TYPE), index(weft_xds::CONFIG_TYPE));
    // Each registry source's hosts with their services' current versions.
    let feeds: Vec<(&ObjectKey, Vec<HostVersion>)> = world
        .feeds()
        .iter()
        .map(|(key, hosts)| {
            let current = hosts
                .iter()
                .map(|h| (h.as_str(), world.services.get(h).map(|e| &*e.version)))
                .collect();
            (key, current)
        })
        .collect();
    let mut tally = Tally {
        config: HashMap::new(),
        sources: HashMap::new(),
    };
    for conn in conns {
        let c = lock(&conn);
        let t = &c.types[config];
        for e in t.desired() {
            let Some(version) = current.get(&*e.name) else {
                continue;
            };
            let slot = tally.config.entry(Arc::clone(&e.name)).or_default();
            slot.add(
                t.acked.get(&e.name).is_some_and(|v| **v == **version),
                t.rejected.get(&e.name).is_some_and(|v| **v == **version),
            );
        }
        let t = &c.types[services];
        for (key, hosts) in &feeds {
            let mut concerned = false;
            let (mut current, mut refused) = (true, false);
            for &(host, version) in hosts.iter().filter(|(h, _)| t.should_have(h)) {
                concerned = true;
                if t.acked.get(host).map(|v| &**v) != version {
                    current = false;
                    refused |= t.rejected.get(host).map(|v| &**v) == version;
                }
            }
            if concerned {
                tally.sources.entry(*key).or_default().add(current, refused);
            }
        }
    }
    tally
}

impl Counts {
    /// One more proxy concerned, up to date or having refused the current version.
    fn add(&mut self, current: bool, refused: bool) {
        self.total += 1;
        if current {
            self.applied += 1;
        } else if refused {
            self.rejected += 1;
        }
    }
}
