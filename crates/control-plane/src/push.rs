//! The push server: serves the `DeltaConfig` stream (weft-xds) to the proxies on
//! 127.0.0.1:15010. It watches the config store and the self-registered workloads,
//! debounces their changes (100 ms of quiet, 1 s at most), builds the next world (every
//! resource encoded once per version), works out which proxies a change affects
//! (`scope::affected`) and wakes only their streams, which send each proxy what changed
//! since what it has. It records each proxy's ACKs and NACKs (`/debug/syncz`), each
//! object's distribution in the store ("2/3 proxies up to date") and how long a batch
//! takes to reach every proxy it affects (`pilot_proxy_convergence_time`).

mod conn;
mod metrics;
mod origins;
mod saved;
mod status;
mod stream;
mod world;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{Notify, broadcast};
use tokio::time::Instant;
use weft_api::registry::{VipAllocator, Workload, Workloads};

use crate::scope::{self, ObjectKey, Options, ProxyIdentity, Snapshot};
use crate::store::ConfigStore;

pub use conn::SyncState;
pub use metrics::PushMetrics;
pub use world::{Encoded, resource_name};

use conn::Connection;
use world::World;

/// The file in the state directory that keeps the services' virtual IPs across restarts.
pub const VIPS_FILE: &str = "vips.json";
/// The file in the state directory that keeps the self-registered workloads.
pub const WORKLOADS_FILE: &str = "workloads.json";

/// What a registration did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registered {
    Created,
    /// A workload of that namespace and name was registered with other details.
    Replaced,
    /// The same workload was registered already (after a restart of the control plane,
    /// say).
    Unchanged,
}

/// How the push server batches changes.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// A batch ends once no change came for this long...
    pub debounce_quiet: Duration,
    /// ...or this long after its first change, whichever comes first.
    pub debounce_max: Duration,
    pub scope: Options,
    /// Where the VIP allocator is kept (`STATE/vips.json`); `None` keeps it in memory.
    pub vips_file: Option<PathBuf>,
    /// Where the self-registered workloads are kept (`STATE/workloads.json`); `None`
    /// keeps them in memory.
    pub workloads_file: Option<PathBuf>,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            debounce_quiet: Duration::from_millis(100),
            debounce_max: Duration::from_secs(1),
            scope: Options::default(),
            vips_file: None,
            workloads_file: None,
        }
    }
}

/// A connected proxy as the server tracks it.
struct Peer {
    identity: ProxyIdentity,
    conn: Arc<Mutex<Connection>>,
    wake: Arc<Notify>,
    /// The proxy's admin API, as its node said (`/debug/config_dump` reads it).
    admin_address: String,
}

/// A pushed batch until every proxy it woke has answered what it was sent.
struct Converging {
    /// The world the batch made: a proxy whose view is from it or a later one, with
    /// nothing in flight, has converged.
    generation: u64,
    /// When the batch's first change reached the push server.
    started: Instant,
    waiting: HashSet<u64>,
}

/// Batches tracked at most: a proxy that never answers must not make the list grow.
const MAX_CONVERGING: usize = 64;

/// The push server. Cheap to share (`Arc`); `run` drives it, `serve` serves streams.
pub struct PushServer {
    store: Arc<dyn ConfigStore>,
    opts: PushOptions,
    world: Mutex<Arc<World>>,
    peers: Mutex<BTreeMap<u64, Peer>>,
    next_peer: AtomicU64,
    workloads: Mutex<Workloads>,
    /// Held across a registration and its save, so that saves land in order.
    saving: Mutex<()>,
    vips: Mutex<VipAllocator>,
    /// Wakes the batching loop for a change that is not a store event.
    kick: Notify,
    /// Wakes the status writer: an ACK, a NACK, a proxy came or went.
    status_dirty: Notify,
    /// How many resources were encoded so far (each once per version).
    encodes: AtomicU64,
    /// How many batches were pushed so far.
    batches: AtomicU64,
    /// How many proxy views were worked out (`scope()` calls; proxies with the same
    /// view key share one).
    scopes: AtomicU64,
    metrics: PushMetrics,
    converging: Mutex<Vec<Converging>>,
}

/// Locks a mutex; a poisoned one (a panic elsewhere) still holds consistent data here,
/// as every critical section only swaps or inserts whole values.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl PushServer {
    /// A push server over `store`; its first world is built at once. Registers its
    /// metrics in `registry`.
    pub fn new(
        store: Arc<dyn ConfigStore>,
        opts: PushOptions,
        registry: &mut prometheus_client::registry::Registry,
    ) -> Arc<PushServer> {
        let vips = opts
            .vips_file
            .as_deref()
            .map(saved::load_vips)
            .unwrap_or_default();
        let workloads = opts
            .workloads_file
            .as_deref()
            .map(saved::load_workloads)
            .unwrap_or_default();
        let server = Arc::new(PushServer {
            store,
            opts,
            world: Mutex::new(Arc::new(World::default())),
            peers: Mutex::new(BTreeMap::new()),
            next_peer: AtomicU64::new(1),
            workloads: Mutex::new(workloads),
            saving: Mutex::new(()),
            vips: Mutex::new(vips),
            kick: Notify::new(),
            status_dirty: Notify::new(),
            encodes: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            scopes: AtomicU64::new(0),
            metrics: PushMetrics::register(registry),
            converging: Mutex::new(Vec::new()),
        });
        server.rebuild();
        server
    }

    /// Serves the stream on `listener` until `shutdown` resolves.
    pub async fn serve(
        self: &Arc<Self>,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), tonic::transport::Error> {
        // Each response is one small write that must leave at once: without
        // TCP_NODELAY, Nagle's algorithm holds it while an earlier segment (a PING, a
        // WINDOW_UPDATE) waits for the proxy's delayed ACK, up to tens of milliseconds.
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(Duration::from_secs(10)))
            .add_service(weft_xds::ConfigDiscoveryServer::new(stream::Service(
                Arc::clone(self),
            )))
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
    }

    /// Watches the store and the workloads and pushes their changes, batched; writes
    /// the objects' distribution. Runs until the store goes away.
    pub async fn run(self: Arc<Self>) {
        let status = tokio::spawn(status::write_distribution(Arc::clone(&self)));
        let (_, mut events) = self.store.watch();
        // The world was built at `new`; changes since then arrive as events.
        loop {
            let Some((changed, started)) = self.next_batch(&mut events).await else {
                break;
            };
            self.push(changed, started);
        }
        status.abort();
    }

    /// Waits for a change, then for the batch to end: the objects the batch named
    /// (`None`: unknown, the event stream lagged) and when its first change came, or
    /// `None` once the store has gone.
    async fn next_batch(
        &self,
        events: &mut broadcast::Receiver<crate::store::Change>,
    ) -> Option<(Option<Vec<ObjectKey>>, Instant)> {
        let mut changed = Some(Vec::new());
        let mut note = |ev: Result<crate::store::Change, broadcast::error::RecvError>| match ev {
            Ok(c) => {
                if let Some(list) = changed.as_mut() {
                    list.push(ObjectKey::new(c.key.kind, &c.key.namespace, &c.key.name));
                }
                true
            }
            Err(broadcast::error::RecvError::Lagged(_)) => {
                changed = None;
                true
            }
            Err(broadcast::error::RecvError::Closed) => false,
        };
        tokio::select! {
            ev = events.recv() => if !note(ev) { return None },
            () = self.kick.notified() => {}
        }
        let started = Instant::now();
        let deadline = Instant::now() + self.opts.debounce_max;
        loop {
            let quiet = Instant::now() + self.opts.debounce_quiet;
            tokio::select! {
                ev = events.recv() => if !note(ev) { return None },
                () = self.kick.notified() => {}
                () = tokio::time::sleep_until(quiet.min(deadline)) => break,
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        Some((changed, started))
    }

    /// Builds the next world and wakes the streams of the proxies it affects (all of
    /// them when `changed` is `None`).
    fn push(&self, changed: Option<Vec<ObjectKey>>, started: Instant) {
        let before = self.world();
        let after = self.rebuild();
        let peers = lock(&self.peers);
        let targets: Vec<(&u64, &Peer)> = match changed {
            None => peers.iter().collect(),
            Some(keys) => {
                let all: Vec<(&u64, &Peer)> = peers.iter().collect();
                let identities: Vec<&ProxyIdentity> =
                    all.iter().map(|(_, p)| &p.identity).collect();
                let hit = scope::affected(
                    Snapshot {
                        index: &before.index,
                        registry: &before.registry,
                    },
                    Snapshot {
                        index: &after.index,
                        registry: &after.registry,
                    },
                    &keys,
                    &identities,
                    &self.opts.scope,
                );
                hit.into_iter()
                    .filter_map(|i| all.get(i).copied())
                    .collect()
            }
        };
        tracing::debug!(
            version = after.generation,
            proxies = targets.len(),
            "pushing a change"
        );
        if !targets.is_empty() {
            // Registered before the wake-ups: each woken stream passes its settle point
            // at least once after this.
            let mut converging = lock(&self.converging);
            if converging.len() >= MAX_CONVERGING {
                converging.remove(0);
            }
            converging.push(Converging {
                generation: after.generation,
                started,
                waiting: targets.iter().map(|(id, _)| **id).collect(),
            });
        }
        for (_, peer) in targets {
            peer.wake.notify_one();
        }
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.status_dirty.notify_one();
    }

    /// Builds the world from the store's current objects and the workloads, keeps it,
    /// and saves the VIPs when they moved.
    fn rebuild(&self) -> Arc<World> {
        let stored = self.store.list(None, None);
        let workloads = lock(&self.workloads).clone();
        let mut vips = lock(&self.vips);
        let before = vips.clone();
        let prev = self.world();
        let world = Arc::new(World::build(
            &prev,
            &stored,
            workloads,
            &mut vips,
            &self.encodes,
        ));
        if *vips != before
            && let Some(path) = &self.opts.vips_file
        {
            saved::save_vips(path, &vips);
        }
        *lock(&self.world) = Arc::clone(&world);
        world
    }

    fn world(&self) -> Arc<World> {
        Arc::clone(&lock(&self.world))
    }

    /// Adds or replaces a self-registered workload; the change is pushed like a config
    /// change, and kept in the state directory.
    pub fn register_workload(&self, workload: Workload) -> Registered {
        let _saving = lock(&self.saving);
        let (outcome, now) = {
            let mut workloads = lock(&self.workloads);
            let created = workloads.get(&workload.namespace, &workload.name).is_none();
            let outcome = match workloads.register(workload) {
                false => Registered::Unchanged,
                true if created => Registered::Created,
                true => Registered::Replaced,
            };
            (outcome, workloads.clone())
        };
        if outcome != Registered::Unchanged {
            self.workloads_changed(&now);
        }
        outcome
    }

    /// Removes a self-registered workload; returns it, if it was registered.
    pub fn deregister_workload(&self, namespace: &str, name: &str) -> Option<Workload> {
        let _saving = lock(&self.saving);
        let (removed, now) = {
            let mut workloads = lock(&self.workloads);
            (workloads.deregister(namespace, name), workloads.clone())
        };
        if removed.is_some() {
            self.workloads_changed(&now);
        }
        removed
    }

    /// Saves the workloads (outside their lock, which a rebuild takes: the file is
    /// synced to disk) and pushes the change.
    fn workloads_changed(&self, workloads: &Workloads) {
        if let Some(path) = &self.opts.workloads_file {
            saved::save_workloads(path, workloads);
        }
        self.kick.notify_one();
    }

    /// The self-registered workloads, by namespace and name.
    pub fn workloads(&self) -> Vec<Workload> {
        lock(&self.workloads).iter().cloned().collect()
    }

    /// How many resources have been encoded (each once per version, whatever the number
    /// of streams).
    pub fn encodes(&self) -> u64 {
        self.encodes.load(Ordering::Relaxed)
    }

    /// How many batches of changes have been pushed.
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    /// How many proxy views have been worked out: a change costs at most one per proxy
    /// it affects, one per view key.
    pub fn scopes(&self) -> u64 {
        self.scopes.load(Ordering::Relaxed)
    }

    /// `/debug/syncz`: every connected proxy with its state per resource type, or only
    /// the one `proxy_id` names (see [`find_peer`]).
    pub fn syncz(&self, proxy_id: Option<&str>) -> Result<Value, ProxyLookupError> {
        status::syncz(self, proxy_id)
    }

    /// The VirtualServices and DestinationRules in a connected proxy's view, as
    /// `{name, namespace, hosts}` (a DestinationRule's one `host` as a list of one):
    /// `weft proxy-config` names them next to the routes and clusters they made.
    pub fn routing_objects(&self, proxy_id: &str) -> Value {
        let peers = lock(&self.peers);
        let mut out = serde_json::Map::new();
        let Ok(peer) = find_peer(&peers, proxy_id) else {
            return Value::Object(out);
        };
        let conn = lock(&peer.conn);
        for (kind, field) in [
            ("VirtualService/", "virtual_services"),
            ("DestinationRule/", "destination_rules"),
        ] {
            let list: Vec<Value> = conn
                .types
                .iter()
                .flat_map(|t| t.desired())
                .filter(|e| e.name.starts_with(kind))
                .filter_map(|e| serde_json::from_slice::<Value>(&e.body).ok())
                .map(|o| {
                    let spec = &o["spec"];
                    let hosts = match &spec["host"] {
                        Value::String(h) => Value::from(vec![h.clone()]),
                        _ => spec["hosts"].clone(),
                    };
                    serde_json::json!({
                        "name": o["metadata"]["name"],
                        "namespace": o["metadata"]["namespace"],
                        "hosts": hosts,
                    })
                })
                .collect();
            out.insert(field.into(), Value::from(list));
        }
        Value::Object(out)
    }

    /// The admin address of the connected proxy `proxy_id` names (see [`find_peer`]).
    pub fn admin_address(&self, proxy_id: &str) -> Result<String, ProxyLookupError> {
        let peers = lock(&self.peers);
        let peer = find_peer(&peers, proxy_id)?;
        if peer.admin_address.is_empty() {
            return Err(ProxyLookupError::NoAdmin(proxy_id.to_string()));
        }
        Ok(peer.admin_address.clone())
    }

    fn add_peer(
        &self,
        conn: Arc<Mutex<Connection>>,
        wake: Arc<Notify>,
        admin_address: String,
    ) -> u64 {
        let id = self.next_peer.fetch_add(1, Ordering::Relaxed);
        let (identity, version) = {
            let c = lock(&conn);
            (c.identity.clone(), c.version.clone())
        };
        self.metrics.connected(&version, 1);
        lock(&self.peers).insert(
            id,
            Peer {
                identity,
                conn,
                wake,
                admin_address,
            },
        );
        self.status_dirty.notify_one();
        id
    }

    fn remove_peer(&self, id: u64) {
        let removed = lock(&self.peers).remove(&id);
        if let Some(peer) = removed {
            let version = lock(&peer.conn).version.clone();
            self.metrics.connected(&version, -1);
        }
        // A proxy that went away is no longer waited for.
        self.settle(id, u64::MAX);
        self.status_dirty.notify_one();
    }

    /// Proxy `id` has answered everything it was sent from worlds up to `world_seen`:
    /// the batches that waited only for it have converged.
    fn settle(&self, id: u64, world_seen: u64) {
        let mut converging = lock(&self.converging);
        converging.retain_mut(|b| {
            if b.generation <= world_seen {
                b.waiting.remove(&id);
            }
            if b.waiting.is_empty() {
                self.metrics.converged(b.started.elapsed());
                return false;
            }
            true
        });
    }
}

/// The connected proxy `proxy_id` names, as istioctl takes a pod: its name as
/// `/debug/syncz` lists it, or `name.namespace` (Istio's proxy ID), with or without a
/// `deploy/` or `pod/` prefix; a name without its namespace (`fortio` for the proxy
/// `fortio.default`) picks the one in `default`, else the only one of that name.
fn find_peer<'a>(
    peers: &'a BTreeMap<u64, Peer>,
    proxy_id: &str,
) -> Result<&'a Peer, ProxyLookupError> {
    let id = ["deploy/", "deployment/", "pod/", "pods/"]
        .iter()
        .find_map(|p| proxy_id.strip_prefix(p))
        .unwrap_or(proxy_id);
    let named = |peer: &Peer| {
        let name = lock(&peer.conn).name.clone();
        let ns = &peer.identity.namespace;
        let bare = name
            .strip_suffix(&format!(".{ns}"))
            .unwrap_or(&name)
            .to_string();
        (name, bare, ns.clone())
    };
    if let Some(peer) = peers.values().find(|p| {
        let (name, bare, ns) = named(p);
        name == id || format!("{bare}.{ns}") == id
    }) {
        return Ok(peer);
    }
    let same_name: Vec<(&Peer, String)> = peers
        .values()
        .filter_map(|p| {
            let (_, bare, ns) = named(p);
            (bare == id).then_some((p, ns))
        })
        .collect();
    match same_name.as_slice() {
        [] => Err(ProxyLookupError::NotConnected(proxy_id.to_string())),
        [(one, _)] => Ok(one),
        several => match several.iter().find(|(_, ns)| ns == "default") {
            Some((peer, _)) => Ok(peer),
            None => {
                let mut ids: Vec<String> =
                    several.iter().map(|(_, ns)| format!("{id}.{ns}")).collect();
                ids.sort();
                Err(ProxyLookupError::Ambiguous(
                    proxy_id.to_string(),
                    ids.join(", "),
                ))
            }
        },
    }
}

/// Why a proxy's admin API cannot be reached through the control plane.
#[derive(Debug, thiserror::Error)]
pub enum ProxyLookupError {
    #[error("no proxy named {0:?} is connected to the control plane")]
    NotConnected(String),
    #[error("{0:?} names a proxy in several namespaces: say which ({1})")]
    Ambiguous(String, String),
    #[error("proxy {0:?} did not give its admin address (an older proxy?)")]
    NoAdmin(String),
}
