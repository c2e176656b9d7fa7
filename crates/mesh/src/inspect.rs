//! Reading a mesh for `weft ps`, `weft exec` and `weft logs`: the workload records, each
//! with the state of its sidecar.

use std::net::SocketAddr;

use crate::error::{MeshError, Result};
use crate::state::{StateDir, WorkloadRecord};

/// A sidecar's state, as `weft ps` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SidecarState {
    /// Its readiness endpoint answers 200.
    Ready,
    /// Running, not ready (starting, or draining).
    NotReady,
    Exited,
    /// The workload has none.
    None,
}

impl SidecarState {
    pub fn as_str(self) -> &'static str {
        match self {
            SidecarState::Ready => "ready",
            SidecarState::NotReady => "not-ready",
            SidecarState::Exited => "exited",
            SidecarState::None => "none",
        }
    }
}

/// Every workload of the mesh with its sidecar's state.
pub async fn list(state: &StateDir) -> Vec<(WorkloadRecord, SidecarState)> {
    let mut out = Vec::new();
    for r in state.records() {
        let s = sidecar_state(&r).await;
        out.push((r, s));
    }
    out
}

async fn sidecar_state(r: &WorkloadRecord) -> SidecarState {
    if !r.sidecar {
        return SidecarState::None;
    }
    match (r.proxy, r.ip) {
        (Some(p), Some(ip)) if p.alive() => {
            let ready = SocketAddr::new(ip.into(), 15021);
            if crate::api::get_status(ready, "/healthz/ready").await == Some(200) {
                SidecarState::Ready
            } else {
                SidecarState::NotReady
            }
        }
        (Some(_), _) => SidecarState::Exited,
        // Recorded before the sidecar started.
        (None, _) => SidecarState::NotReady,
    }
}

/// The workload `namespace/name`.
pub fn find(state: &StateDir, namespace: &str, name: &str) -> Result<WorkloadRecord> {
    state
        .record(namespace, name)
        .ok_or_else(|| MeshError::NoSuchWorkload {
            namespace: namespace.to_string(),
            name: name.to_string(),
        })
}
