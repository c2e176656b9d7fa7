//! The store's memory across restarts: for every object its uid, resourceVersion,
//! generation and creationTimestamp, with hashes of its spec and of the whole document, so
//! that a file edited while the control plane was down still gets a new resourceVersion
//! (and a new generation when its spec changed). Kept as a small JSON file beside
//! `config/`, written to a temporary name and renamed.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use weft_api::kind::Kind;

use super::{ChangeType, Key, Meta, hash, resource, spec_part};

/// What the store remembers of one object.
#[derive(Debug, Clone)]
pub(crate) struct Tracked {
    pub meta: Meta,
    spec_hash: u64,
    object_hash: u64,
}

/// Every object's metadata and the store-wide counter.
#[derive(Debug, Clone, Default)]
pub(crate) struct Index {
    pub resource_version: u64,
    entries: HashMap<Key, Tracked>,
}

impl Index {
    /// Reads the index; a missing file is an empty index. A corrupt one is reported and
    /// replaced: objects then get new uids, but the counter still never goes back
    /// (it restarts above the clock's seconds, which no earlier counter can have passed
    /// by much).
    pub fn load(path: &Path) -> Index {
        let text = match std::fs::File::open(path) {
            Ok(mut f) => {
                let mut text = String::new();
                match f.read_to_string(&mut text) {
                    Ok(_) => text,
                    Err(e) => return Index::corrupt(path, &e.to_string()),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Index::default(),
            Err(e) => return Index::corrupt(path, &e.to_string()),
        };
        match serde_json::from_str::<IndexFile>(&text) {
            Ok(file) => file.into_index(),
            Err(e) => Index::corrupt(path, &e.to_string()),
        }
    }

    fn corrupt(path: &Path, why: &str) -> Index {
        tracing::warn!(path = %path.display(), why, "the store's index is unreadable; objects get new uids");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Index {
            resource_version: now,
            entries: HashMap::new(),
        }
    }

    /// The index as its file holds it.
    pub fn to_text(&self) -> std::io::Result<String> {
        let mut objects: Vec<IndexEntry> = self
            .entries
            .iter()
            .map(|(key, t)| IndexEntry {
                kind: resource(key.kind),
                namespace: key.namespace.clone(),
                name: key.name.clone(),
                uid: t.meta.uid.clone(),
                resource_version: t.meta.resource_version,
                generation: t.meta.generation,
                creation_timestamp: t.meta.creation_timestamp.clone(),
                spec_hash: t.spec_hash,
                object_hash: t.object_hash,
            })
            .collect();
        objects.sort_by(|a, b| {
            (&a.kind, &a.namespace, &a.name).cmp(&(&b.kind, &b.namespace, &b.name))
        });
        let file = IndexFile {
            resource_version: self.resource_version,
            objects,
        };
        serde_json::to_string_pretty(&file).map_err(std::io::Error::other)
    }

    pub fn get(&self, key: &Key) -> Option<&Tracked> {
        self.entries.get(key)
    }

    /// Records the document now stored under `key`. `None` when it is the same as what
    /// was stored (nothing to do); else the new metadata and whether the object is new.
    pub fn track(&mut self, key: &Key, raw: &Value) -> Option<(Meta, ChangeType)> {
        let object_hash = hash(raw);
        let spec_hash = hash(&spec_part(raw));
        let previous = self.entries.get(key);
        if previous.is_some_and(|p| p.object_hash == object_hash) {
            return None;
        }
        self.resource_version += 1;
        let (meta, change) = match previous {
            Some(p) => (
                Meta {
                    resource_version: self.resource_version,
                    generation: p.meta.generation + i64::from(p.spec_hash != spec_hash),
                    ..p.meta.clone()
                },
                ChangeType::Modified,
            ),
            None => (
                Meta {
                    uid: super::super::random::uid(),
                    resource_version: self.resource_version,
                    generation: 1,
                    creation_timestamp: now_rfc3339(),
                },
                ChangeType::Added,
            ),
        };
        self.entries.insert(
            key.clone(),
            Tracked {
                meta: meta.clone(),
                spec_hash,
                object_hash,
            },
        );
        Some((meta, change))
    }

    /// Forgets a deleted object; returns the resourceVersion of the deletion.
    pub fn forget(&mut self, key: &Key) -> u64 {
        self.entries.remove(key);
        self.resource_version += 1;
        self.resource_version
    }

    /// Drops entries for objects no longer stored (deleted while the store was down).
    pub fn retain(&mut self, mut keep: impl FnMut(&Key) -> bool) {
        self.entries.retain(|k, _| keep(k));
    }
}

/// Writes an index's text to `path` (through a temporary file in the same directory).
pub(crate) fn write_text(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// Now, as Kubernetes writes creationTimestamp: RFC 3339, UTC, whole seconds.
pub(crate) fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let secs = i64::try_from(secs).unwrap_or(i64::MAX);
    k8s_openapi::jiff::Timestamp::from_second(secs)
        .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IndexFile {
    resource_version: u64,
    objects: Vec<IndexEntry>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IndexEntry {
    /// `virtualservices.networking.istio.io`.
    kind: String,
    namespace: String,
    name: String,
    uid: String,
    resource_version: u64,
    generation: i64,
    creation_timestamp: String,
    spec_hash: u64,
    object_hash: u64,
}

impl IndexFile {
    fn into_index(self) -> Index {
        let mut entries = HashMap::new();
        for e in self.objects {
            let Some(kind) = Kind::all().find(|k| resource(*k) == e.kind) else {
                continue;
            };
            let key = Key {
                kind,
                namespace: e.namespace,
                name: e.name,
            };
            let meta = Meta {
                uid: e.uid,
                resource_version: e.resource_version,
                generation: e.generation,
                creation_timestamp: e.creation_timestamp,
            };
            entries.insert(
                key,
                Tracked {
                    meta,
                    spec_hash: e.spec_hash,
                    object_hash: e.object_hash,
                },
            );
        }
        Index {
            resource_version: self.resource_version,
            entries,
        }
    }
}
