//! Every config object, by kind and by key, in the order Istio breaks ties in: oldest
//! first, then by namespace and name; and which proxies share a view.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use weft_api::{Kind, Object};

use super::{ProxyIdentity, ProxyKind, rules};

/// Names one object: its kind, namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(kind: Kind, namespace: &str, name: &str) -> ObjectKey {
        ObjectKey {
            kind,
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }

    pub fn of(o: &Object) -> ObjectKey {
        ObjectKey::new(o.kind, o.namespace(), o.name())
    }
}

/// The objects scoping reads.
#[derive(Debug, Clone, Default)]
pub struct Index {
    by_key: BTreeMap<ObjectKey, Arc<Object>>,
    by_kind: BTreeMap<Kind, Vec<Arc<Object>>>,
    /// The label keys scoping may read from a proxy with these objects.
    selector_keys: BTreeSet<String>,
}

/// What a proxy's view depends on, with one index and registry: its kind, its
/// namespace, and those of its labels some selector reads. Proxies with the same key
/// get the same view, so it is worked out once for them (the many replicas of a
/// workload, the sidecars of a namespace without workload selectors).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ViewKey {
    pub kind: ProxyKind,
    pub namespace: String,
    pub labels: Vec<(String, String)>,
}

/// The kinds that apply to the workloads they select: a proxy gets those that select it.
pub(crate) const POLICY_KINDS: [Kind; 7] = [
    Kind::PeerAuthentication,
    Kind::RequestAuthentication,
    Kind::AuthorizationPolicy,
    Kind::Telemetry,
    Kind::WasmPlugin,
    Kind::EnvoyFilter,
    Kind::ProxyConfig,
];

impl Index {
    pub fn new(objects: impl IntoIterator<Item = Arc<Object>>) -> Index {
        let mut index = Index::default();
        for o in objects {
            index.by_key.insert(ObjectKey::of(&o), o);
        }
        for o in index.by_key.values() {
            index.by_kind.entry(o.kind).or_default().push(Arc::clone(o));
            index
                .selector_keys
                .extend(rules::selector_keys(o).into_iter().cloned());
        }
        index
            .selector_keys
            .extend(rules::GATEWAY_LABELS.iter().map(ToString::to_string));
        for list in index.by_kind.values_mut() {
            list.sort_by(|a, b| {
                let created = |o: &Object| {
                    o.metadata
                        .creation_timestamp
                        .as_ref()
                        .map(|t| t.0.as_nanosecond())
                };
                (created(a), a.namespace(), a.name()).cmp(&(created(b), b.namespace(), b.name()))
            });
        }
        index
    }

    /// The key under which `proxy`'s view may be shared with other proxies'.
    pub fn view_key(&self, proxy: &ProxyIdentity) -> ViewKey {
        ViewKey {
            kind: proxy.kind,
            namespace: proxy.namespace.clone(),
            labels: proxy
                .labels
                .iter()
                .filter(|(k, _)| self.selector_keys.contains(*k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    pub fn get(&self, key: &ObjectKey) -> Option<&Arc<Object>> {
        self.by_key.get(key)
    }

    /// The objects of one kind, oldest first.
    pub fn of(&self, kind: Kind) -> &[Arc<Object>] {
        self.by_kind
            .get(&kind)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// The objects of the kinds that select workloads (`POLICY_KINDS`).
    pub(crate) fn policies(&self) -> impl Iterator<Item = &Arc<Object>> {
        POLICY_KINDS.iter().flat_map(|k| self.of(*k))
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}
