//! What the push server keeps in the state directory besides the config: the services'
//! VIPs (`vips.json`) and the self-registered workloads (`workloads.json`, the shape of
//! `GET /v1/workloads`), so that a restart gives the same addresses and still knows the
//! workloads that registered. Each file is written to a temporary name, synced and
//! renamed over the old one, so a crash leaves one or the other, never half of one.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};
use weft_api::registry::{VipAllocator, Workload, Workloads};

/// `workloads.json`: `{"kind": "WorkloadList", "items": [...]}`.
#[derive(Serialize, Deserialize)]
struct WorkloadList {
    kind: String,
    items: Vec<Workload>,
}

/// The VIPs kept at `path`; none when there is no file or it cannot be read (the
/// services then get addresses afresh, and a warning says why).
pub(super) fn load_vips(path: &Path) -> VipAllocator {
    load(path, "service VIPs").unwrap_or_default()
}

pub(super) fn save_vips(path: &Path, vips: &VipAllocator) {
    save(path, vips, "service VIPs");
}

/// The workloads registered before the last stop.
pub(super) fn load_workloads(path: &Path) -> Workloads {
    let mut workloads = Workloads::default();
    if let Some(list) = load::<WorkloadList>(path, "registered workloads") {
        for w in list.items {
            workloads.register(w);
        }
    }
    workloads
}

pub(super) fn save_workloads(path: &Path, workloads: &Workloads) {
    let list = WorkloadList {
        kind: "WorkloadList".into(),
        items: workloads.iter().cloned().collect(),
    };
    save(path, &list, "registered workloads");
}

fn load<T: for<'de> Deserialize<'de>>(path: &Path, what: &str) -> Option<T> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the {what}");
            return None;
        }
    };
    serde_json::from_slice(&bytes)
        .inspect_err(|e| {
            tracing::warn!(path = %path.display(), error = %e, "the {what} file is unreadable; starting without it");
        })
        .ok()
}

fn save<T: Serialize>(path: &Path, value: &T, what: &str) {
    let tmp = path.with_extension("json.tmp");
    let result = serde_json::to_vec_pretty(value)
        .map_err(std::io::Error::other)
        .and_then(|bytes| {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = result {
        tracing::warn!(path = %path.display(), error = %e, "cannot save the {what}");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn workloads_round_trip_and_a_bad_file_is_no_workloads() {
        let dir = std::env::temp_dir().join(format!("weft-saved-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("workloads.json");
        let mut w = Workloads::default();
        w.register(Workload {
            name: "ratings-1".into(),
            namespace: "default".into(),
            address: "10.0.0.7".into(),
            ..Workload::default()
        });
        save_workloads(&path, &w);
        assert_eq!(load_workloads(&path), w);
        assert!(!path.with_extension("json.tmp").exists());
        std::fs::write(&path, "{not json").unwrap();
        assert!(load_workloads(&path).is_empty());
        assert!(load_workloads(&dir.join("none.json")).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
