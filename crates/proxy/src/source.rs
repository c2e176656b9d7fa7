//! Where a proxy's config comes from, behind one interface: a directory of YAML today
//! (how Istio meshes VMs, and how tests drive the proxy), the control plane's push stream
//! next.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use weft_api::object::Object;
use weft_api::{LoadOptions, Severity};

/// A stream of config versions.
pub trait ConfigSource: Send {
    /// The next version of the whole config: at once the first time, then when it changes.
    /// `None` when the source has ended (the proxy keeps serving its last good config).
    fn next(&mut self) -> impl Future<Output = Option<Vec<Object>>> + Send;
}

/// A directory of YAML (Gateway, VirtualService, DestinationRule, ServiceEntry,
/// WorkloadEntry, Sidecar), re-read when a file in it changes. Objects that do not
/// validate are logged and left out; the rest is served.
pub struct DirectorySource {
    dir: PathBuf,
    poll: Duration,
    seen: Option<Stamp>,
}

impl DirectorySource {
    pub fn new(dir: PathBuf, poll: Duration) -> Self {
        Self {
            dir,
            poll,
            seen: None,
        }
    }
}

impl ConfigSource for DirectorySource {
    async fn next(&mut self) -> Option<Vec<Object>> {
        loop {
            let now = fingerprint(&self.dir);
            if self.seen.as_ref() != Some(&now) {
                self.seen = Some(now);
                return Some(load(&self.dir));
            }
            tokio::time::sleep(self.poll).await;
        }
    }
}

fn load(dir: &std::path::Path) -> Vec<Object> {
    let loaded = weft_api::load_paths(&[dir], &LoadOptions::default());
    for report in loaded
        .reports
        .iter()
        .filter(|r| r.severity() == Severity::Error)
    {
        tracing::warn!(%report, "config refused");
    }
    loaded.objects
}

/// File names, modification times and sizes.
type Stamp = BTreeMap<PathBuf, (SystemTime, u64)>;

/// File names, modification times and sizes: a change in any means a reload.
fn fingerprint(dir: &std::path::Path) -> Stamp {
    let mut out = Stamp::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            match entry.metadata() {
                Ok(m) if m.is_dir() => dirs.push(path),
                Ok(m) => {
                    out.insert(
                        path,
                        (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()),
                    );
                }
                Err(_) => {}
            }
        }
    }
    out
}
