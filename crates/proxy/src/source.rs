//! Where a proxy's config comes from, behind one interface: a directory of YAML (how
//! tests drive a lone proxy) or the control plane's push stream (`xds`).

pub mod xds;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use weft_api::object::Object;
use weft_api::{LoadOptions, Severity};

use crate::registry::Registry;

pub use xds::{XdsOptions, XdsSource};

/// One version of a proxy's whole config.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub objects: Vec<Object>,
    /// The services, when the source knows them (the control plane's registry, with its
    /// VIPs); `None`: the proxy builds them from the objects (`Registry::build`).
    pub services: Option<Registry>,
}

/// A stream of config versions.
pub trait ConfigSource: Send {
    /// The next version of the whole config: at once the first time, then when it changes.
    /// `None` when the source has ended (the proxy keeps serving its last good config).
    fn next(&mut self) -> impl Future<Output = Option<Snapshot>> + Send;

    /// What the proxy made of the snapshot `next` gave: the reasons its tables left
    /// config out for (`Tables::rejected`). Answers whether to serve the new tables; a
    /// source that can refuse a version (the control plane's, with a NACK) says no when a
    /// reason names what it just received, and the proxy keeps its previous tables.
    fn verdict(&mut self, rejected: &[String]) -> impl Future<Output = bool> + Send {
        let _ = rejected;
        std::future::ready(true)
    }
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
    async fn next(&mut self) -> Option<Snapshot> {
        loop {
            let now = fingerprint(&self.dir);
            if self.seen.as_ref() != Some(&now) {
                self.seen = Some(now);
                return Some(Snapshot {
                    objects: load(&self.dir),
                    services: None,
                });
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
