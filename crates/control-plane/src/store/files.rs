//! The config store's first backend: a directory of YAML files (`<state>/config/`),
//! GitOps-friendly. `apply` writes each object as `<namespace>/<kind>-<name>.yaml`
//! (through a temporary name and a rename); a hand edit of any file there is picked up by
//! polling and applied like an `apply`; a file that stops validating keeps the objects it
//! had and its problems are reported.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tokio::sync::broadcast;
use weft_api::kind::{Kind, Scope};
use weft_api::{LoadOptions, Loaded};

use super::index::Index;
use super::yaml_out::to_yaml;
use super::{
    Applied, Batch, Change, ChangeType, ConfigStore, Distribution, Incoming, Key, Outcome, Status,
    StoreError, StoreFuture, StoredObject,
};

/// How many change events a slow watcher may fall behind before it must re-list.
const EVENT_BUFFER: usize = 4096;

/// A config store kept in a directory of YAML files.
#[derive(Clone)]
pub struct FileStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// `<state>/config`.
    dir: PathBuf,
    /// `<state>/config-index.json`.
    index_path: PathBuf,
    /// Held by a write (apply, delete, rescan) for its whole length, file I/O included;
    /// `state` is held only to read it or to commit, so readers (the push server's
    /// rebuild, the API's gets) never wait on the disk.
    writer: Mutex<()>,
    state: Mutex<State>,
    events: broadcast::Sender<Change>,
}

#[derive(Default)]
struct State {
    objects: BTreeMap<Key, Entry>,
    index: Index,
    /// Every config file seen, with what it held when it last validated.
    files: BTreeMap<PathBuf, FileState>,
    /// Why files (or objects in them) are not being served as written.
    problems: BTreeMap<PathBuf, Vec<String>>,
}

struct Entry {
    stored: Arc<StoredObject>,
    file: PathBuf,
}

#[derive(Default)]
struct FileState {
    stamp: Option<(SystemTime, u64)>,
    /// The objects of its last good version.
    keys: Vec<Key>,
}

impl FileStore {
    /// Opens (creating it if needed) the store under `state_dir`, and reads every file.
    pub fn open(state_dir: &Path) -> Result<FileStore, StoreError> {
        let dir = state_dir.join("config");
        std::fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
        let index_path = state_dir.join("config-index.json");
        let state = State {
            index: Index::load(&index_path),
            ..State::default()
        };
        let store = FileStore {
            inner: Arc::new(Inner {
                dir,
                index_path,
                writer: Mutex::new(()),
                state: Mutex::new(state),
                events: broadcast::channel(EVENT_BUFFER).0,
            }),
        };
        store.inner.rescan();
        let text = {
            let mut state = store.inner.lock();
            // Objects deleted while the store was down are forgotten.
            let State { objects, index, .. } = &mut *state;
            index.retain(|k| objects.contains_key(k));
            index.to_text()
        };
        store.inner.save_index(text);
        Ok(store)
    }

    /// The directory of YAML files.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Reads the files again now; changed files are applied.
    pub fn rescan(&self) {
        self.inner.rescan();
    }

    /// Polls the directory every `every` for hand edits, forever (spawn it; abort the
    /// task to stop).
    pub async fn watch_files(&self, every: Duration) {
        loop {
            tokio::time::sleep(every).await;
            let inner = self.inner.clone();
            let _ = tokio::task::spawn_blocking(move || inner.rescan()).await;
        }
    }

    /// Files that are not served as written, and why (`weft validate`'s lines).
    pub fn problems(&self) -> BTreeMap<PathBuf, Vec<String>> {
        self.inner.lock().problems.clone()
    }
}

impl ConfigStore for FileStore {
    fn list(&self, kind: Option<Kind>, namespace: Option<&str>) -> Vec<Arc<StoredObject>> {
        let state = self.inner.lock();
        state
            .objects
            .iter()
            .filter(|(k, _)| kind.is_none_or(|kind| k.kind == kind))
            .filter(|(k, _)| namespace.is_none_or(|ns| k.namespace == ns))
            .map(|(_, e)| e.stored.clone())
            .collect()
    }

    fn get(&self, key: &Key) -> Option<Arc<StoredObject>> {
        self.inner.lock().objects.get(key).map(|e| e.stored.clone())
    }

    fn apply(&self, batch: Batch) -> StoreFuture<'_, Result<Vec<Applied>, StoreError>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || inner.apply(batch))
                .await
                .map_err(|e| StoreError::Stopped(e.to_string()))?
        })
    }

    fn delete(&self, key: Key) -> StoreFuture<'_, Result<Option<Arc<StoredObject>>, StoreError>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || inner.delete(&key))
                .await
                .map_err(|e| StoreError::Stopped(e.to_string()))?
        })
    }

    fn watch(&self) -> (Vec<Arc<StoredObject>>, broadcast::Receiver<Change>) {
        let state = self.inner.lock();
        let rx = self.inner.events.subscribe();
        let all = state.objects.values().map(|e| e.stored.clone()).collect();
        (all, rx)
    }

    fn resource_version(&self) -> u64 {
        self.inner.lock().index.resource_version
    }

    fn set_distribution(&self, key: &Key, distribution: Distribution) -> bool {
        let mut state = self.inner.lock();
        let Some(entry) = state.objects.get_mut(key) else {
            return false;
        };
        let mut stored = (*entry.stored).clone();
        stored.status.distribution = Some(distribution);
        entry.stored = Arc::new(stored);
        true
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere cannot leave the state half-changed: every change is
        // computed first and committed in one step.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Held for a whole write; see `writer`.
    fn write_lock(&self) -> MutexGuard<'_, ()> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes the index's text (made under the state lock, written outside it).
    fn save_index(&self, text: std::io::Result<String>) {
        if let Err(e) = text.and_then(|t| super::index::write_text(&self.index_path, &t)) {
            tracing::error!(path = %self.index_path.display(), error = %e, "cannot save the store's index");
        }
    }

    fn publish(&self, changes: Vec<Change>) {
        for change in changes {
            // No receiver is not an error: nobody is watching yet.
            let _ = self.events.send(change);
        }
    }

    /// Applies a validated batch: every file is written (to temporary names) before any
    /// is renamed into place, and the state changes only once all are.
    fn apply(&self, batch: Batch) -> Result<Vec<Applied>, StoreError> {
        let _writing = self.write_lock();
        let state = self.lock();
        // The last of several objects with one key wins, as with kubectl.
        let mut last: BTreeMap<Key, usize> = BTreeMap::new();
        for (i, item) in batch.items.iter().enumerate() {
            last.insert(Key::of(&item.object), i);
        }
        let mut plan = FilePlan::default();
        let mut outcomes = Vec::with_capacity(batch.items.len());
        for (i, item) in batch.items.iter().enumerate() {
            let key = Key::of(&item.object);
            let current = state.objects.get(&key);
            let outcome = match current {
                None if outcomes.iter().any(|(k, _)| k == &key) => Outcome::Configured,
                None => Outcome::Created,
                Some(e) if e.stored.object.raw == item.object.raw => Outcome::Unchanged,
                Some(_) => Outcome::Configured,
            };
            outcomes.push((key.clone(), outcome));
            if last.get(&key) != Some(&i) || outcome == Outcome::Unchanged {
                continue;
            }
            let target = self.path_for(&key);
            plan.write(target.clone(), key.clone(), to_yaml(&item.object.raw));
            if let Some(e) = current
                && e.file != target
            {
                plan.remove_from(e.file.clone(), key.clone());
            }
        }
        drop(state);
        plan.execute(&self.dir)?;
        let stamps = plan.stamps();
        let mut state = self.lock();
        let mut changes = Vec::new();
        let mut results = Vec::with_capacity(outcomes.len());
        for (i, item) in batch.items.into_iter().enumerate() {
            let (key, outcome) = outcomes[i].clone();
            if last.get(&key) == Some(&i) && outcome != Outcome::Unchanged {
                let file = self.path_for(&key);
                upsert(&mut state, item, file, &mut changes);
            }
            if let Some(e) = state.objects.get(&key) {
                results.push(Applied {
                    key,
                    outcome,
                    object: e.stored.clone(),
                });
            }
        }
        after_write(&mut state, stamps);
        let index = state.index.to_text();
        drop(state);
        self.save_index(index);
        self.publish(changes);
        Ok(results)
    }

    fn delete(&self, key: &Key) -> Result<Option<Arc<StoredObject>>, StoreError> {
        let _writing = self.write_lock();
        let Some(file) = self.lock().objects.get(key).map(|e| e.file.clone()) else {
            return Ok(None);
        };
        let mut plan = FilePlan::default();
        plan.remove_from(file, key.clone());
        plan.execute(&self.dir)?;
        let stamps = plan.stamps();
        let mut state = self.lock();
        let mut changes = Vec::new();
        let removed = remove(&mut state, key, &mut changes);
        after_write(&mut state, stamps);
        let index = state.index.to_text();
        drop(state);
        self.save_index(index);
        self.publish(changes);
        Ok(removed)
    }

    /// `<dir>/<namespace>/<kind>-<name>.yaml` (no namespace directory for cluster-scoped
    /// kinds).
    fn path_for(&self, key: &Key) -> PathBuf {
        let file = format!("{}-{}.yaml", file_kind(key.kind), key.name);
        if key.namespace.is_empty() {
            self.dir.join(file)
        } else {
            self.dir.join(&key.namespace).join(file)
        }
    }

    /// Reads changed files and applies what changed: objects of a file that validates
    /// replace what it held; a file that does not keeps its objects and records why.
    /// The directory is walked and the files read without the state lock.
    fn rescan(&self) {
        let _writing = self.write_lock();
        let now = fingerprint(&self.dir);
        let to_read: Vec<PathBuf> = {
            let state = self.lock();
            now.iter()
                .filter(|(path, stamp)| {
                    state.files.get(*path).and_then(|f| f.stamp) != Some(**stamp)
                })
                .map(|(path, _)| path.clone())
                .collect()
        };
        let read: Vec<(PathBuf, FileRead)> = to_read
            .into_iter()
            .map(|path| {
                let loaded = read_file(&path);
                (path, loaded)
            })
            .collect();
        let mut state = self.lock();
        let mut changed = !read.is_empty();
        let mut fresh: BTreeMap<PathBuf, Vec<Incoming>> = BTreeMap::new();
        for (path, loaded) in read {
            let file = state.files.entry(path.clone()).or_default();
            file.stamp = now.get(&path).copied();
            match loaded {
                Ok(items) => {
                    state.problems.remove(&path);
                    fresh.insert(path, items);
                }
                Err(lines) => {
                    state.problems.insert(path, lines);
                }
            }
        }
        let gone: Vec<PathBuf> = state
            .files
            .keys()
            .filter(|p| !now.contains_key(*p))
            .cloned()
            .collect();
        for path in gone {
            changed = true;
            state.files.remove(&path);
            state.problems.remove(&path);
        }
        if !changed {
            return;
        }
        let changes = reconcile(&mut state, fresh);
        let index = (!changes.is_empty()).then(|| state.index.to_text());
        drop(state);
        if let Some(index) = index {
            self.save_index(index);
            tracing::info!(changes = changes.len(), "config files changed");
        }
        self.publish(changes);
    }
}

/// A config file's objects, or `weft validate`'s error lines for it.
type FileRead = Result<Vec<Incoming>, Vec<String>>;

/// Reads and validates one config file.
fn read_file(path: &Path) -> FileRead {
    let mut loaded = Loaded::default();
    weft_api::load::load_file(path, &LoadOptions::default(), &mut loaded);
    Batch::from_loaded(loaded)
        .map(|batch| batch.items)
        .map_err(|reports| {
            let lines: Vec<String> = reports
                .iter()
                .filter(|r| r.severity() == weft_api::Severity::Error)
                .map(ToString::to_string)
                .collect();
            for line in &lines {
                tracing::warn!(file = %path.display(), "config file refused, its objects are kept as they were: {line}");
            }
            lines
        })
}

/// Records the files a write left (with their stamps; `None`: removed), so that polling
/// does not read them back as edits.
fn after_write(state: &mut State, stamps: Vec<(PathBuf, Option<(SystemTime, u64)>)>) {
    for (path, stamp) in stamps {
        let keys: Vec<Key> = state
            .objects
            .iter()
            .filter(|(_, e)| e.file == path)
            .map(|(k, _)| k.clone())
            .collect();
        match stamp {
            Some(stamp) => {
                state.files.insert(
                    path.clone(),
                    FileState {
                        stamp: Some(stamp),
                        keys,
                    },
                );
            }
            None => {
                state.files.remove(&path);
            }
        }
        state.problems.remove(&path);
    }
}

/// Works out which file serves each key (the first in path order; a later duplicate is
/// reported and ignored), then applies the differences; returns the change events.
fn reconcile(state: &mut State, mut fresh: BTreeMap<PathBuf, Vec<Incoming>>) -> Vec<Change> {
    let mut desired: BTreeMap<Key, (Incoming, PathBuf)> = BTreeMap::new();
    let mut duplicates: Vec<(PathBuf, String)> = Vec::new();
    let paths: Vec<PathBuf> = state.files.keys().cloned().collect();
    for path in paths {
        let items = match fresh.remove(&path) {
            Some(items) => items,
            None => kept_items(state, &path),
        };
        let mut keys = Vec::new();
        for item in items {
            let key = Key::of(&item.object);
            if let Some((_, first)) = desired.get(&key) {
                duplicates.push((
                    path.clone(),
                    format!("{key} is also in {}; this one is ignored", first.display()),
                ));
                continue;
            }
            keys.push(key.clone());
            desired.insert(key, (item, path.clone()));
        }
        if let Some(file) = state.files.get_mut(&path) {
            file.keys = keys;
        }
    }
    for (path, line) in duplicates {
        tracing::warn!(file = %path.display(), "{line}");
        state.problems.entry(path).or_default().push(line);
    }
    let mut changes = Vec::new();
    let stale: Vec<Key> = state
        .objects
        .keys()
        .filter(|k| !desired.contains_key(*k))
        .cloned()
        .collect();
    for key in stale {
        remove(state, &key, &mut changes);
    }
    for (_, (item, path)) in desired {
        upsert(state, item, path, &mut changes);
    }
    changes
}

/// The objects a file held when it last validated.
fn kept_items(state: &State, path: &Path) -> Vec<Incoming> {
    let Some(file) = state.files.get(path) else {
        return Vec::new();
    };
    file.keys
        .iter()
        .filter_map(|k| state.objects.get(k))
        .filter(|e| e.file == path)
        .map(|e| Incoming {
            object: e.stored.object.clone(),
            warnings: e.stored.status.warnings.clone(),
        })
        .collect()
}

/// Stores one object (new or changed) and records the change event; unchanged objects
/// only follow their file.
fn upsert(state: &mut State, item: Incoming, file: PathBuf, changes: &mut Vec<Change>) {
    let key = Key::of(&item.object);
    let Some((meta, change)) = state.index.track(&key, &item.object.raw) else {
        if let Some(e) = state.objects.get_mut(&key) {
            e.file = file;
        } else if let Some(t) = state.index.get(&key) {
            // Known to the index from an earlier run, and unchanged since.
            let stored = Arc::new(StoredObject {
                object: item.object,
                meta: t.meta.clone(),
                status: Status {
                    warnings: item.warnings,
                    distribution: None,
                },
            });
            changes.push(Change {
                key: key.clone(),
                resource_version: stored.meta.resource_version,
                change: ChangeType::Added,
                object: stored.clone(),
            });
            state.objects.insert(key, Entry { stored, file });
        }
        return;
    };
    let stored = Arc::new(StoredObject {
        object: item.object,
        meta,
        status: Status {
            warnings: item.warnings,
            distribution: None,
        },
    });
    changes.push(Change {
        key: key.clone(),
        resource_version: stored.meta.resource_version,
        change,
        object: stored.clone(),
    });
    state.objects.insert(key, Entry { stored, file });
}

fn remove(state: &mut State, key: &Key, changes: &mut Vec<Change>) -> Option<Arc<StoredObject>> {
    let entry = state.objects.remove(key)?;
    let resource_version = state.index.forget(key);
    changes.push(Change {
        key: key.clone(),
        resource_version,
        change: ChangeType::Deleted,
        object: entry.stored.clone(),
    });
    Some(entry.stored)
}

/// The file name's kind: `virtualservice`; qualified by the group when two kinds share a
/// name (`gateway.gateway.networking.k8s.io` beside Istio's `gateway`).
fn file_kind(kind: Kind) -> String {
    let info = kind.info();
    let first = Kind::all().find(|k| k.info().name == info.name);
    if first == Some(kind) {
        info.singular()
    } else {
        format!("{}.{}", info.singular(), info.group)
    }
}

/// Writes planned for one apply or delete, per file: objects to take out and documents
/// to add. Other documents in a file are kept as written.
#[derive(Default)]
struct FilePlan {
    edits: BTreeMap<PathBuf, Edit>,
}

#[derive(Default)]
struct Edit {
    remove: BTreeSet<Key>,
    add: Vec<String>,
}

impl FilePlan {
    /// Puts `key`'s document, as `text`, in `path` (replacing any it had there).
    fn write(&mut self, path: PathBuf, key: Key, text: String) {
        let edit = self.edits.entry(path).or_default();
        edit.remove.insert(key);
        edit.add.push(text);
    }

    fn remove_from(&mut self, path: PathBuf, key: Key) {
        self.edits.entry(path).or_default().remove.insert(key);
    }

    /// The files the plan touched, each with its stamp now (`None`: removed).
    fn stamps(&self) -> Vec<(PathBuf, Option<(SystemTime, u64)>)> {
        self.edits.keys().map(|p| (p.clone(), stamp(p))).collect()
    }

    /// Works out every file's new text, writes them all to temporary names, then renames
    /// them into place and removes files left empty. Nothing is renamed unless every
    /// write succeeded.
    fn execute(&self, dir: &Path) -> Result<(), StoreError> {
        let mut texts: BTreeMap<&PathBuf, Option<String>> = BTreeMap::new();
        for (path, edit) in &self.edits {
            let base = match std::fs::read_to_string(path) {
                Ok(text) => without(&text, &edit.remove),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(StoreError::io(path, e)),
            };
            let docs: Vec<String> = base.into_iter().chain(edit.add.iter().cloned()).collect();
            texts.insert(path, (!docs.is_empty()).then(|| join_documents(&docs)));
        }
        let mut staged: Vec<(PathBuf, &PathBuf)> = Vec::new();
        let mut result = Ok(());
        for (path, text) in &texts {
            let Some(text) = text else { continue };
            let parent = path.parent().unwrap_or(dir);
            let tmp = temp_name(path);
            let written = std::fs::create_dir_all(parent)
                .map_err(|e| StoreError::io(parent, e))
                .and_then(|()| std::fs::write(&tmp, text).map_err(|e| StoreError::io(&tmp, e)));
            if let Err(e) = written {
                result = Err(e);
                break;
            }
            staged.push((tmp, path));
        }
        if let Err(e) = result {
            for (tmp, _) in &staged {
                let _ = std::fs::remove_file(tmp);
            }
            return Err(e);
        }
        for (tmp, path) in &staged {
            std::fs::rename(tmp, path).map_err(|e| StoreError::io(path, e))?;
        }
        for (path, text) in &texts {
            if text.is_none() {
                std::fs::remove_file(path).map_err(|e| StoreError::io(path, e))?;
            }
        }
        Ok(())
    }
}

/// Documents as one file: `---` between them.
fn join_documents(docs: &[String]) -> String {
    let mut out = String::new();
    for (i, doc) in docs.iter().enumerate() {
        if i > 0 && !doc.starts_with("---") {
            out.push_str("---\n");
        }
        out.push_str(doc);
        if !doc.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// `.<name>.weft-tmp` beside the file: hidden, and not a config file name, so polling
/// never reads it.
fn temp_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.weft-tmp"))
}

/// The file's text without the documents (or `List` items) of `keys`, other documents
/// kept as written; `None` when nothing is left.
fn without(text: &str, keys: &BTreeSet<Key>) -> Option<String> {
    let mut kept: Vec<String> = Vec::new();
    for doc in weft_api::yaml::split_documents(text) {
        let Ok((value, _)) = weft_api::yaml::parse_document(&doc) else {
            kept.push(doc.text.to_string());
            continue;
        };
        if let Some(Value::Array(items)) = value.get("items").filter(|_| is_list(&value)) {
            let left: Vec<Value> = items
                .iter()
                .filter(|item| key_of(item).is_none_or(|k| !keys.contains(&k)))
                .cloned()
                .collect();
            if left.len() == items.len() {
                kept.push(doc.text.to_string());
            } else if !left.is_empty() {
                let mut list = value.clone();
                list["items"] = Value::Array(left);
                kept.push(to_yaml(&list));
            }
        } else if key_of(&value).is_none_or(|k| !keys.contains(&k)) {
            kept.push(doc.text.to_string());
        }
    }
    (!kept.is_empty()).then(|| join_documents(&kept))
}

fn is_list(value: &Value) -> bool {
    value
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k.ends_with("List"))
}

/// The key a raw document would be stored under (namespace `default` when it names
/// none, as the loader does).
fn key_of(doc: &Value) -> Option<Key> {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    let kind = Kind::resolve(&text(doc.get("apiVersion"))?, &text(doc.get("kind"))?).ok()?;
    let meta = doc.get("metadata");
    let name = text(meta.and_then(|m| m.get("name")))?;
    let namespace = match kind.info().scope {
        Scope::Cluster => String::new(),
        Scope::Namespaced => text(meta.and_then(|m| m.get("namespace")))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".into()),
    };
    Some(Key {
        kind,
        namespace,
        name,
    })
}

/// Modification time and size of a file.
fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()))
}

/// Every config file under `dir` (`*.yaml`, `*.yml`, `*.json`, not hidden) with its
/// stamp: a change in either means the file is read again.
fn fingerprint(dir: &Path) -> BTreeMap<PathBuf, (SystemTime, u64)> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            match entry.metadata() {
                Ok(m) if m.is_dir() && !hidden => dirs.push(path),
                Ok(m) if m.is_file() && !hidden && is_config_file(&path) => {
                    out.insert(
                        path,
                        (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()),
                    );
                }
                _ => {}
            }
        }
    }
    out
}

fn is_config_file(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
}
