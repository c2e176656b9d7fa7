//! The file-backed store: apply outcomes, metadata rules, all-or-nothing batches, restarts,
//! hand edits and broken files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::broadcast::error::TryRecvError;

use super::yaml_out::to_yaml;
use super::*;

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("weft-store-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn config(&self, file: &str) -> PathBuf {
        self.0.join("config").join(file)
    }

    /// Writes a file under config/ the way an editor that replaces files does.
    fn edit(&self, file: &str, text: &str) {
        let path = self.config(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn vs(name: &str, host: &str, extra_meta: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: {name}\n{extra_meta}spec:\n  hosts: [{host}]\n  http:\n  - route:\n    - destination: {{host: {host}}}\n"
    )
}

fn batch(text: &str) -> Batch {
    Batch::parse(text, "<test>", "default").expect("valid config")
}

fn key(name: &str) -> Key {
    Key {
        kind: Kind::VirtualService,
        namespace: "default".into(),
        name: name.into(),
    }
}

async fn apply(store: &FileStore, text: &str) -> Vec<(Outcome, Meta)> {
    store
        .apply(batch(text))
        .await
        .expect("applied")
        .into_iter()
        .map(|a| (a.outcome, a.object.meta.clone()))
        .collect()
}

#[tokio::test]
async fn created_configured_unchanged_and_the_metadata_rules() {
    let dir = TempDir::new("outcomes");
    let store = FileStore::open(&dir.0).unwrap();
    let (_, mut events) = store.watch();

    let first = apply(&store, &vs("reviews", "reviews", "")).await;
    let (outcome, meta) = &first[0];
    assert_eq!(*outcome, Outcome::Created);
    assert_eq!((meta.generation, meta.resource_version), (1, 1));
    assert_eq!(meta.uid.len(), 36, "{}", meta.uid);
    assert!(
        meta.creation_timestamp.ends_with('Z'),
        "{}",
        meta.creation_timestamp
    );
    let e = events.try_recv().unwrap();
    assert_eq!(
        (e.change, e.resource_version, e.key),
        (ChangeType::Added, 1, key("reviews"))
    );

    let again = apply(&store, &vs("reviews", "reviews", "")).await;
    assert_eq!(again[0].0, Outcome::Unchanged);
    assert_eq!(again[0].1, *meta, "an unchanged apply changes no metadata");
    assert!(matches!(events.try_recv(), Err(TryRecvError::Empty)));

    let spec_change = apply(
        &store,
        &vs("reviews", "reviews.default.svc.cluster.local", ""),
    )
    .await;
    assert_eq!(spec_change[0].0, Outcome::Configured);
    assert_eq!(
        (
            spec_change[0].1.generation,
            spec_change[0].1.resource_version
        ),
        (2, 2)
    );
    assert_eq!(spec_change[0].1.uid, meta.uid);
    assert_eq!(spec_change[0].1.creation_timestamp, meta.creation_timestamp);

    let labels = "  labels:\n    team: books\n";
    let meta_change = apply(
        &store,
        &vs("reviews", "reviews.default.svc.cluster.local", labels),
    )
    .await;
    assert_eq!(meta_change[0].0, Outcome::Configured);
    assert_eq!(
        (
            meta_change[0].1.generation,
            meta_change[0].1.resource_version
        ),
        (2, 3),
        "a metadata-only change bumps resourceVersion, not generation"
    );
    let e = events.try_recv().unwrap();
    assert_eq!((e.change, e.resource_version), (ChangeType::Modified, 2));
    assert_eq!(store.resource_version(), 3);
    assert!(dir.config("default/virtualservice-reviews.yaml").is_file());
}

#[tokio::test]
async fn an_invalid_object_refuses_the_whole_batch_with_validates_message() {
    let dir = TempDir::new("invalid");
    let store = FileStore::open(&dir.0).unwrap();
    apply(&store, &vs("reviews", "reviews", "")).await;
    let text = format!(
        "{}---\n{}",
        vs("reviews", "changed", ""),
        vs("ratings", "ratings", "").replace("host: ratings}", "host: ratings, port: {number: 0}}")
    );
    let reports = Batch::parse(&text, "bad.yaml", "default").unwrap_err();
    let line = reports
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    // The same line `weft validate bad.yaml` prints.
    let mut loaded = weft_api::Loaded::default();
    weft_api::load_str(
        &text,
        Arc::from(Path::new("bad.yaml")),
        &LoadOptions::default(),
        &mut loaded,
    );
    let validate: Vec<String> = loaded.reports.iter().map(ToString::to_string).collect();
    assert_eq!(line, validate.join("\n"));
    assert!(line.starts_with("bad.yaml:"), "{line}");
    assert_eq!(store.list(None, None).len(), 1);
    assert_eq!(store.get(&key("reviews")).unwrap().meta.resource_version, 1);
}

#[tokio::test]
async fn a_batch_that_cannot_be_written_changes_nothing() {
    let dir = TempDir::new("atomic");
    let store = FileStore::open(&dir.0).unwrap();
    // A file where the namespace's directory would go: that object cannot be written.
    dir.edit("blocked", "");
    let text = format!(
        "{}---\n{}",
        vs("reviews", "reviews", ""),
        vs("ratings", "ratings", "").replace(
            "  name: ratings\n",
            "  name: ratings\n  namespace: blocked\n"
        )
    );
    let (_, mut events) = store.watch();
    let err = store.apply(batch(&text)).await.unwrap_err();
    assert!(matches!(err, StoreError::Io { .. }), "{err}");
    assert!(store.list(None, None).is_empty());
    assert_eq!(store.resource_version(), 0);
    assert!(!dir.config("default/virtualservice-reviews.yaml").exists());
    assert!(matches!(events.try_recv(), Err(TryRecvError::Empty)));
    let leftovers: Vec<_> = std::fs::read_dir(dir.config("default"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[tokio::test]
async fn a_restart_keeps_uid_versions_and_timestamps() {
    let dir = TempDir::new("restart");
    let before = {
        let store = FileStore::open(&dir.0).unwrap();
        apply(&store, &vs("reviews", "reviews", "")).await;
        apply(&store, &vs("reviews", "changed", "")).await;
        store.get(&key("reviews")).unwrap().meta.clone()
    };
    let store = FileStore::open(&dir.0).unwrap();
    let after = store.get(&key("reviews")).unwrap();
    assert_eq!(after.meta, before);
    assert_eq!(store.resource_version(), 2);
    let next = apply(&store, &vs("ratings", "ratings", "")).await;
    assert_eq!(next[0].1.resource_version, 3, "the counter carries on");
    drop(store);

    // Edited while the control plane was down: a new version and generation, same uid.
    let file = dir.config("default/virtualservice-reviews.yaml");
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("changed", "edited");
    std::fs::write(&file, text).unwrap();
    let store = FileStore::open(&dir.0).unwrap();
    let edited = store.get(&key("reviews")).unwrap();
    assert_eq!(edited.meta.uid, before.uid);
    assert_eq!(
        (edited.meta.generation, edited.meta.resource_version),
        (3, 4)
    );
}

#[tokio::test]
async fn hand_edits_are_applies() {
    let dir = TempDir::new("hand");
    let store = FileStore::open(&dir.0).unwrap();
    let (_, mut events) = store.watch();
    dir.edit(
        "mine.yaml",
        &format!("{}---\n{}", vs("a", "a", ""), vs("b", "b", "")),
    );
    store.rescan();
    assert_eq!(
        store
            .list(Some(Kind::VirtualService), Some("default"))
            .len(),
        2
    );
    assert_eq!(events.try_recv().unwrap().change, ChangeType::Added);
    assert_eq!(events.try_recv().unwrap().change, ChangeType::Added);

    dir.edit("mine.yaml", &vs("a", "a2", ""));
    store.rescan();
    let mut seen: Vec<(ChangeType, String)> = Vec::new();
    while let Ok(e) = events.try_recv() {
        seen.push((e.change, e.key.name));
    }
    seen.sort_by_key(|(_, n)| n.clone());
    assert_eq!(
        seen,
        vec![
            (ChangeType::Modified, "a".into()),
            (ChangeType::Deleted, "b".into())
        ]
    );
    assert_eq!(store.get(&key("a")).unwrap().meta.generation, 2);

    std::fs::remove_file(dir.config("mine.yaml")).unwrap();
    store.rescan();
    assert!(store.list(None, None).is_empty());
}

#[tokio::test]
async fn a_broken_file_keeps_its_objects_and_says_why() {
    let dir = TempDir::new("broken");
    let store = FileStore::open(&dir.0).unwrap();
    dir.edit("mine.yaml", &vs("a", "a", ""));
    store.rescan();
    let before = store.get(&key("a")).unwrap();

    dir.edit(
        "mine.yaml",
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a\n",
    );
    store.rescan();
    assert_eq!(
        store.get(&key("a")).unwrap(),
        before,
        "the last good version stays"
    );
    let problems = store.problems();
    let why = problems
        .get(&dir.config("mine.yaml"))
        .expect("a problem for the file");
    assert!(why[0].contains("invalid YAML"), "{why:?}");

    // An invalid object (not just bad YAML) is refused the same way.
    dir.edit(
        "mine.yaml",
        &vs("a", "a", "").replace("host: a}", "host: a, port: {number: 0}}"),
    );
    store.rescan();
    assert_eq!(store.get(&key("a")).unwrap(), before);
    assert!(!store.problems().is_empty());

    dir.edit("mine.yaml", &vs("a", "fixed", ""));
    store.rescan();
    assert!(store.problems().is_empty());
    assert_eq!(store.get(&key("a")).unwrap().meta.generation, 2);
}

#[tokio::test]
async fn apply_and_delete_keep_other_documents_of_a_hand_written_file() {
    let dir = TempDir::new("shared-file");
    let store = FileStore::open(&dir.0).unwrap();
    let text = format!("# my routes\n{}---\n{}", vs("a", "a", ""), vs("b", "b", ""));
    dir.edit("routes.yaml", &text);
    store.rescan();

    apply(&store, &vs("a", "a2", "")).await;
    let left = std::fs::read_to_string(dir.config("routes.yaml")).unwrap();
    assert!(
        !left.contains("name: a\n") && left.contains("name: b\n"),
        "{left}"
    );
    assert!(dir.config("default/virtualservice-a.yaml").is_file());

    let gone = store.delete(key("b")).await.unwrap();
    assert_eq!(gone.unwrap().object.name(), "b");
    assert!(
        !dir.config("routes.yaml").exists(),
        "an emptied file is removed"
    );
    assert!(store.delete(key("b")).await.unwrap().is_none());
    store.rescan();
    let names: Vec<String> = store
        .list(None, None)
        .iter()
        .map(|o| o.object.name().to_string())
        .collect();
    assert_eq!(names, ["a"]);
}

#[tokio::test]
async fn the_stored_object_round_trips_through_yaml() {
    let dir = TempDir::new("round-trip");
    let store = FileStore::open(&dir.0).unwrap();
    apply(&store, &vs("reviews", "reviews", "")).await;
    store.set_distribution(
        &key("reviews"),
        Distribution {
            generation: 1,
            applied: 2,
            total: 3,
            ..Distribution::default()
        },
    );
    let stored = store.get(&key("reviews")).unwrap();
    let json = stored.to_json();
    assert_eq!(json["metadata"]["resourceVersion"], "1");
    assert_eq!(json["metadata"]["generation"], 1);
    assert_eq!(json["status"]["conditions"][0]["type"], "Accepted");
    assert_eq!(
        json["status"]["conditions"][1]["message"],
        "2/3 proxies up to date."
    );
    assert_eq!(store.resource_version(), 1, "status is not a change");

    let again = apply(&store, &to_yaml(&json)).await;
    assert_eq!(again[0].0, Outcome::Unchanged);
}

#[tokio::test]
async fn warnings_are_kept_in_the_status() {
    let dir = TempDir::new("warnings");
    let store = FileStore::open(&dir.0).unwrap();
    let text = vs("reviews", "reviews", "").replace("  hosts:", "  hostz: [x]\n  hosts:");
    apply(&store, &text).await;
    let stored = store.get(&key("reviews")).unwrap();
    assert_eq!(
        stored.status.warnings.len(),
        1,
        "{:?}",
        stored.status.warnings
    );
    assert!(
        stored.status.warnings[0].contains("hostz"),
        "{:?}",
        stored.status.warnings
    );
}
