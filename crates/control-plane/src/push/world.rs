//! The mesh at one moment, as the push server serves it: the config objects (indexed for
//! scoping), the service registry, and every resource encoded once for the wire. A new
//! world is built from the previous one, so an object or service whose version did not
//! change keeps its bytes: each resource is encoded once per version and the same
//! `Bytes` go to every stream.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::Value;
use weft_api::registry::{ConfigObjects, Registry, Service, VipAllocator, Workloads};
use weft_api::{Kind, Object};

use super::{lock, origins};
use crate::scope::{self, Index, ObjectKey, Options, ProxyIdentity, ViewKey};
use crate::store::{Key, StoredObject};

/// One resource at one version, ready for the wire. Cloning shares the name, the
/// version and the encoded body.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    pub name: Arc<str>,
    pub version: Arc<str>,
    pub body: Bytes,
}

/// What the push server knows of a stored object besides its encoding.
#[derive(Debug, Clone)]
pub(crate) struct ObjectEntry {
    pub encoded: Encoded,
    pub key: Key,
    pub generation: i64,
    /// The object as scoping and the registry read it (creationTimestamp filled in).
    pub object: Arc<Object>,
}

/// A resource name per kind: `VirtualService/default/reviews`; the Gateway API's
/// Gateway is told apart from Istio's by its group.
pub fn resource_name(kind: Kind, namespace: &str, name: &str) -> String {
    match kind {
        Kind::KubeGateway => format!("Gateway.gateway.networking.k8s.io/{namespace}/{name}"),
        _ => format!("{kind}/{namespace}/{name}"),
    }
}

/// What a proxy may have, per type (the order of `weft_xds::TYPES`: services, then
/// config objects), by resource name. Shared by the proxies with the same view key.
pub(crate) type View = [Arc<BTreeMap<Arc<str>, Encoded>>; 2];

/// The mesh at one moment.
#[derive(Debug, Default)]
pub(crate) struct World {
    /// Counts rebuilds: the `system_version_info` of the responses made from it.
    pub generation: u64,
    pub index: Index,
    pub registry: Registry,
    pub objects: HashMap<ObjectKey, ObjectEntry>,
    /// By host.
    pub services: HashMap<String, Encoded>,
    /// The views worked out from this world so far.
    views: Mutex<HashMap<ViewKey, View>>,
    /// The previous world's views: a type's view that came out the same is shared
    /// with it, so a stream sees at once that it has nothing new to send.
    previous: HashMap<ViewKey, View>,
    /// The self-registered workloads it was built with.
    workloads: Workloads,
    /// Which services each registry-source object feeds (`origins`), worked out when
    /// the status writer first asks.
    feeds: OnceLock<HashMap<ObjectKey, Vec<String>>>,
}

impl World {
    /// The world after `prev`, from the store's objects and the registered workloads.
    /// Only what changed version is encoded again; `encodes` counts the encodings.
    pub fn build(
        prev: &World,
        stored: &[Arc<StoredObject>],
        workloads: Workloads,
        vips: &mut VipAllocator,
        encodes: &AtomicU64,
    ) -> World {
        let mut objects = HashMap::with_capacity(stored.len());
        for s in stored {
            let key = ObjectKey::new(s.object.kind, s.object.namespace(), s.object.name());
            let version = s.meta.resource_version.to_string();
            let entry = match prev.objects.get(&key) {
                Some(e) if *e.encoded.version == *version => e.clone(),
                _ => {
                    encodes.fetch_add(1, Ordering::Relaxed);
                    object_entry(s, &key, version)
                }
            };
            objects.insert(key, entry);
        }
        let sources: Vec<Object> = objects
            .values()
            .filter(|e| origins::SOURCE_KINDS.contains(&e.object.kind))
            .map(|e| (*e.object).clone())
            .collect();
        let registry = Registry::from_sources(&[&ConfigObjects(&sources), &workloads], vips);
        let mut services = HashMap::with_capacity(registry.services.len());
        for (host, service) in &registry.services {
            let unchanged = prev
                .registry
                .services
                .get(host)
                .filter(|old| old == &service)
                .and_then(|_| prev.services.get(host));
            let encoded = match unchanged {
                Some(e) => e.clone(),
                None => {
                    encodes.fetch_add(1, Ordering::Relaxed);
                    encode_service(service)
                }
            };
            services.insert(host.clone(), encoded);
        }
        World {
            generation: prev.generation + 1,
            index: Index::new(objects.values().map(|e| Arc::clone(&e.object))),
            registry,
            objects,
            services,
            views: Mutex::default(),
            previous: lock(&prev.views).clone(),
            workloads,
            feeds: OnceLock::new(),
        }
    }

    /// The hosts of the services each registry-source object feeds.
    pub fn feeds(&self) -> &HashMap<ObjectKey, Vec<String>> {
        self.feeds
            .get_or_init(|| origins::feeds(&self.index, &self.registry, &self.workloads))
    }

    /// What one proxy may have, and whether it had to be worked out (no proxy with the
    /// same view key asked before).
    pub fn view(&self, proxy: &ProxyIdentity, opts: &Options) -> (View, bool) {
        let key = self.index.view_key(proxy);
        if let Some(view) = lock(&self.views).get(&key) {
            return (view.clone(), false);
        }
        // Worked out without the lock: streams of other keys go on meanwhile.
        let mut view = self.work_out_view(proxy, opts);
        if let Some(before) = self.previous.get(&key) {
            for (now, then) in view.iter_mut().zip(before) {
                if same_versions(now, then) {
                    *now = Arc::clone(then);
                }
            }
        }
        (lock(&self.views).entry(key).or_insert(view).clone(), true)
    }

    fn work_out_view(&self, proxy: &ProxyIdentity, opts: &Options) -> View {
        let scoped = scope::scope(&self.index, &self.registry, proxy, opts);
        let services = scoped
            .services
            .keys()
            .filter_map(|host| self.services.get(host))
            .map(|e| (Arc::clone(&e.name), e.clone()))
            .collect();
        let objects = scoped
            .objects
            .keys()
            .filter_map(|key| self.objects.get(key))
            .map(|e| (Arc::clone(&e.encoded.name), e.encoded.clone()))
            .collect();
        [Arc::new(services), Arc::new(objects)]
    }
}

/// Whether two views hold the same resources at the same versions.
fn same_versions(a: &BTreeMap<Arc<str>, Encoded>, b: &BTreeMap<Arc<str>, Encoded>) -> bool {
    a.len() == b.len()
        && a.values()
            .zip(b.values())
            .all(|(x, y)| x.name == y.name && x.version == y.version)
}

/// Encodes an object as the API returns it, less its status (which the push server
/// itself changes, and which is no part of the config).
fn object_entry(s: &StoredObject, key: &ObjectKey, version: String) -> ObjectEntry {
    let mut doc = s.to_json();
    if let Value::Object(map) = &mut doc {
        map.remove("status");
    }
    let body = serde_json::to_vec(&doc).unwrap_or_default();
    let mut object = s.object.clone();
    object.metadata.creation_timestamp =
        serde_json::from_value::<Time>(Value::String(s.meta.creation_timestamp.clone())).ok();
    ObjectEntry {
        encoded: Encoded {
            name: resource_name(key.kind, &key.namespace, &key.name).into(),
            version: version.into(),
            body: Bytes::from(body),
        },
        key: s.key(),
        generation: s.meta.generation,
        object: Arc::new(object),
    }
}

/// A service's JSON; its version is the hash of that JSON, so the same service gets
/// the same version across restarts (a resuming proxy is not sent it again).
fn encode_service(service: &Service) -> Encoded {
    let body = serde_json::to_vec(service).unwrap_or_default();
    let version = format!("{:016x}", xxhash_rust::xxh64::xxh64(&body, 0));
    Encoded {
        name: service.host.as_str().into(),
        version: version.into(),
        body: Bytes::from(body),
    }
}
