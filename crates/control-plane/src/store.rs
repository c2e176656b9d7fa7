//! The config store: Istio (and Kubernetes) objects as users applied them, with the
//! metadata the store keeps for them (uid, resourceVersion, generation, creationTimestamp)
//! and their status, behind one interface. Every object is validated on the way in with
//! the same loader `weft validate` uses; a batch is applied whole or not at all. Readers
//! get `Arc` snapshots and a stream of change events. The first backend keeps a directory
//! of YAML files ([`FileStore`]); Kubernetes plugs in behind the same trait later.

mod files;
mod index;
pub mod yaml_out;

#[cfg(test)]
mod tests;

use std::fmt;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::{Map, Value, json};
use tokio::sync::broadcast;
use weft_api::kind::Kind;
use weft_api::{LoadOptions, Loaded, Object, Report, Severity};

pub use files::FileStore;

/// Which object: kind, namespace (empty for cluster-scoped kinds) and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

impl Key {
    pub fn of(object: &Object) -> Key {
        Key {
            kind: object.kind,
            namespace: object.namespace().to_string(),
            name: object.name().to_string(),
        }
    }

    /// kubectl's name for the kind: `virtualservice.networking.istio.io`, `service`.
    pub fn kind_ref(&self) -> String {
        kind_ref(self.kind)
    }

    /// The resource name the API's errors use: `virtualservices.networking.istio.io`.
    pub fn resource(&self) -> String {
        resource(self.kind)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// `virtualservice.networking.istio.io`, or `service` for Kubernetes' core group.
pub fn kind_ref(kind: Kind) -> String {
    let info = kind.info();
    if info.group.is_empty() {
        info.singular()
    } else {
        format!("{}.{}", info.singular(), info.group)
    }
}

/// `virtualservices.networking.istio.io`, or `services` for Kubernetes' core group.
pub fn resource(kind: Kind) -> String {
    let info = kind.info();
    if info.group.is_empty() {
        info.plural.to_string()
    } else {
        format!("{}.{}", info.plural, info.group)
    }
}

/// The metadata the store keeps for an object, as Kubernetes' API server does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// Stable for the object's life; a delete and a new create give a new one.
    pub uid: String,
    /// The store-wide counter's value at the object's last change.
    pub resource_version: u64,
    /// Bumped when the spec changes, not for metadata-only changes.
    pub generation: i64,
    /// RFC 3339, UTC, whole seconds.
    pub creation_timestamp: String,
}

/// What the store and the push server know of an object's fate.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Status {
    /// Validation warnings (`spec.foo: unknown field "foo"`); the object was accepted.
    pub warnings: Vec<String>,
    /// How far the object's generation has reached the proxies; set by the push server.
    pub distribution: Option<Distribution>,
}

/// "Applied by `applied` of `total` proxies at generation `generation`", and refused
/// (NACKed) by `rejected` of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Distribution {
    pub generation: i64,
    pub applied: u32,
    pub rejected: u32,
    pub total: u32,
}

/// One stored object: as applied (store-kept metadata and status stripped), with the
/// store's metadata and status beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredObject {
    pub object: Object,
    pub meta: Meta,
    pub status: Status,
}

impl StoredObject {
    pub fn key(&self) -> Key {
        Key::of(&self.object)
    }

    /// The object as the API returns it: the document as applied, with the store's
    /// metadata filled in and a `status`.
    pub fn to_json(&self) -> Value {
        let mut doc = self.object.raw.clone();
        let Value::Object(map) = &mut doc else {
            return doc;
        };
        let meta = map
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(meta) = meta {
            meta.insert("uid".into(), json!(self.meta.uid));
            meta.insert(
                "resourceVersion".into(),
                json!(self.meta.resource_version.to_string()),
            );
            meta.insert("generation".into(), json!(self.meta.generation));
            meta.insert(
                "creationTimestamp".into(),
                json!(self.meta.creation_timestamp),
            );
        }
        map.insert("status".into(), self.status_json());
        doc
    }

    /// Istio's status shape: conditions (`Accepted`, and `Reconciled` once the push
    /// server reports) and the generation they describe.
    fn status_json(&self) -> Value {
        let generation = self.meta.generation;
        let accepted_message = if self.status.warnings.is_empty() {
            "accepted".to_string()
        } else {
            format!(
                "accepted with warnings: {}",
                self.status.warnings.join("; ")
            )
        };
        let mut conditions = vec![json!({
            "type": "Accepted",
            "status": "True",
            "reason": "Accepted",
            "message": accepted_message,
            "observedGeneration": generation,
        })];
        if let Some(d) = self.status.distribution {
            let done = d.generation == generation && d.applied == d.total;
            let mut message = format!("{}/{} proxies up to date.", d.applied, d.total);
            if d.rejected > 0 {
                message.push_str(&format!(" {} rejected it (NACK).", d.rejected));
            }
            conditions.push(json!({
                "type": "Reconciled",
                "status": if done { "True" } else { "False" },
                "reason": if done {
                    "Reconciled"
                } else if d.rejected > 0 {
                    "Rejected"
                } else {
                    "InProgress"
                },
                "message": message,
                "observedGeneration": d.generation,
            }));
        }
        let mut status = json!({
            "conditions": conditions,
            "observedGeneration": generation,
        });
        if !self.status.warnings.is_empty()
            && let Value::Object(map) = &mut status
        {
            map.insert("warnings".into(), json!(self.status.warnings));
        }
        status
    }
}

/// What happened to an object in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeType {
    Added,
    Modified,
    Deleted,
}

/// One change event. `object` is the new state, or the last one for a delete.
#[derive(Debug, Clone)]
pub struct Change {
    pub key: Key,
    pub resource_version: u64,
    pub change: ChangeType,
    pub object: Arc<StoredObject>,
}

/// What an apply did to one object, in kubectl's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Configured,
    Unchanged,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Created => "created",
            Outcome::Configured => "configured",
            Outcome::Unchanged => "unchanged",
        })
    }
}

/// One object's result in an apply.
#[derive(Debug, Clone)]
pub struct Applied {
    pub key: Key,
    pub outcome: Outcome,
    pub object: Arc<StoredObject>,
}

/// Why the store refused a change.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Validation refused an object; the reports are `weft validate`'s lines.
    #[error("the config is invalid:\n{}", lines(.0))]
    Invalid(Vec<Report>),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the store's worker stopped: {0}")]
    Stopped(String),
}

fn lines(reports: &[Report]) -> String {
    reports
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl StoreError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// A boxed future, so that the store can be shared as `Arc<dyn ConfigStore>`.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The config store's interface. Reads are served from memory; writes validate, persist,
/// then publish change events. Status is not part of `resourceVersion`: the push server
/// writes it, and a change event for it would only make the push server push again.
pub trait ConfigStore: Send + Sync {
    /// Objects of `kind` (all kinds when `None`) in `namespace` (all when `None`), in key
    /// order.
    fn list(&self, kind: Option<Kind>, namespace: Option<&str>) -> Vec<Arc<StoredObject>>;

    fn get(&self, key: &Key) -> Option<Arc<StoredObject>>;

    /// Applies every object of the batch, or none (when one cannot be stored).
    fn apply(&self, batch: Batch) -> StoreFuture<'_, Result<Vec<Applied>, StoreError>>;

    /// Deletes one object; `None` when there was none.
    fn delete(&self, key: Key) -> StoreFuture<'_, Result<Option<Arc<StoredObject>>, StoreError>>;

    /// Every object and, from that same moment, every change. A receiver that lags
    /// (`RecvError::Lagged`) has missed events and should call `watch` again.
    fn watch(&self) -> (Vec<Arc<StoredObject>>, broadcast::Receiver<Change>);

    /// The store-wide counter (the newest `resourceVersion`).
    fn resource_version(&self) -> u64;

    /// Records how far an object has reached the proxies; false when there is no such
    /// object.
    fn set_distribution(&self, key: &Key, distribution: Distribution) -> bool;
}

/// Objects that passed validation, ready to be applied. Only [`Batch::parse`] and
/// [`Batch::from_loaded`] make one, so nothing unvalidated reaches a store.
#[derive(Debug, Default)]
pub struct Batch {
    pub(crate) items: Vec<Incoming>,
    /// What `weft validate` would print for it (warnings only, as it was accepted).
    report_lines: Vec<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Incoming {
    pub object: Object,
    pub warnings: Vec<String>,
}

impl Batch {
    /// Loads and validates YAML or JSON text (any number of documents, `kind: List`);
    /// `source` names it in messages as a file would be named. Refused whole when any
    /// object has an error: the `Err` holds every report, as `weft validate` prints them.
    pub fn parse(text: &str, source: &str, default_namespace: &str) -> Result<Batch, Vec<Report>> {
        let opts = LoadOptions {
            default_namespace: default_namespace.to_string(),
            strict: false,
        };
        let mut loaded = Loaded::default();
        weft_api::load_str(text, Arc::from(Path::new(source)), &opts, &mut loaded);
        Batch::from_loaded(loaded)
    }

    /// A batch from what the loader produced; refused when it found any error.
    pub fn from_loaded(loaded: Loaded) -> Result<Batch, Vec<Report>> {
        if loaded.has_errors() {
            return Err(loaded.reports);
        }
        let items = loaded
            .objects
            .into_iter()
            .map(|object| {
                let warnings = warnings_of(&object, &loaded.reports);
                Incoming {
                    object: strip_store_fields(object),
                    warnings,
                }
            })
            .collect();
        let report_lines = loaded.reports.iter().map(ToString::to_string).collect();
        Ok(Batch {
            items,
            report_lines,
        })
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The keys of the objects, in order.
    pub fn keys(&self) -> Vec<Key> {
        self.items.iter().map(|i| Key::of(&i.object)).collect()
    }

    /// The warnings `weft validate` prints for the batch, one line each.
    pub fn report_lines(&self) -> &[String] {
        &self.report_lines
    }

    pub fn objects(&self) -> impl Iterator<Item = &Object> {
        self.items.iter().map(|i| &i.object)
    }
}

/// The warnings the loader reported for one object, as `path: message`.
fn warnings_of(object: &Object, reports: &[Report]) -> Vec<String> {
    let me = object.object_ref();
    reports
        .iter()
        .filter(|r| r.severity() == Severity::Warning && r.object.as_ref() == Some(&me))
        .map(|r| {
            let d = &r.diagnostic;
            let mut text = if d.path.is_root() {
                d.message.clone()
            } else {
                format!("{}: {}", d.path, d.message)
            };
            if let Some(hint) = &d.hint {
                text.push_str(&format!(" (hint: {hint})"));
            }
            text
        })
        .collect()
}

/// Metadata fields the store owns: whatever a user sends for them is dropped (so that
/// `weft get -o yaml` output applies back unchanged).
const STORE_FIELDS: &[&str] = &[
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
];

fn strip_store_fields(mut object: Object) -> Object {
    if let Value::Object(map) = &mut object.raw {
        map.remove("status");
        if let Some(Value::Object(meta)) = map.get_mut("metadata") {
            for field in STORE_FIELDS {
                meta.remove(*field);
            }
        }
    }
    let m = &mut object.metadata;
    m.uid = None;
    m.resource_version = None;
    m.generation = None;
    m.creation_timestamp = None;
    m.managed_fields = None;
    m.self_link = None;
    object
}

/// The part of a document whose change bumps `generation`: all but apiVersion, kind,
/// metadata and status (the `spec` of Istio's kinds; `data` of a Secret, say).
pub(crate) fn spec_part(raw: &Value) -> Value {
    match raw {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| {
                    !matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status")
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A stable hash of a JSON value (maps are ordered, so the text is canonical).
pub(crate) fn hash(value: &Value) -> u64 {
    xxhash_rust::xxh64::xxh64(value.to_string().as_bytes(), 0)
}
