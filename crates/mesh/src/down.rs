//! Removing a mesh by what its state directory records, so that it works as well after a
//! SIGKILL of `weft up` as after Ctrl-C: processes in order (`weft run`s are asked to
//! clean up after themselves first; then apps, sidecars, gateways, the control plane),
//! then namespaces, veths, the bridge and /etc/netns entries, plus anything named with
//! the mesh's tag that a record missed (a crash between making a thing and recording it).

use std::time::Duration;

use crate::api::ApiClient;
use crate::error::{MeshError, Result};
use crate::state::{StateDir, WorkloadRecord};
use crate::{net, process};

/// How long a stopped app may take to exit before SIGKILL.
pub const APP_GRACE: Duration = Duration::from_secs(5);
/// How long a sidecar may drain.
const DRAIN_GRACE: Duration = Duration::from_secs(8);
/// How long `weft run`s get to clean up after themselves.
const RUN_GRACE: Duration = Duration::from_secs(20);
/// How long `weft up` gets to tear its mesh down when `weft down` asks it to.
const UP_GRACE: Duration = Duration::from_secs(60);

/// What `weft down` found and removed.
#[derive(Debug, Default)]
pub struct Removed {
    /// `weft up` was running and was asked to stop.
    pub stopped_up: bool,
    pub workloads: Vec<String>,
    pub namespaces: usize,
    pub links: usize,
}

impl Removed {
    pub fn is_empty(&self) -> bool {
        !self.stopped_up && self.workloads.is_empty() && self.namespaces == 0 && self.links == 0
    }
}

/// `weft down`: stops a running `weft up` (SIGTERM; it tears its mesh down), then
/// removes whatever is left.
pub async fn down(state: &StateDir) -> Result<Removed> {
    let mut removed = Removed::default();
    if let Some(info) = state.read_info() {
        let here = net::netns_id();
        if here != info.netns_id {
            return Err(MeshError::OtherNetns {
                state: state.root().to_path_buf(),
                mesh: info.netns_id,
                here,
            });
        }
        if info.owner.alive() {
            removed.stopped_up = true;
            process::stop_proc(info.owner, UP_GRACE).await;
        }
    }
    let swept = sweep(state).await;
    removed.workloads = swept.workloads;
    removed.namespaces = swept.namespaces;
    removed.links = swept.links;
    Ok(removed)
}

/// Removes everything the state directory records or its tag names. Safe to run
/// twice, and while parts are already gone.
pub async fn sweep(state: &StateDir) -> Removed {
    let info = state.read_info();
    let tag = info.as_ref().map_or_else(|| state.tag(), |i| i.tag.clone());
    let api = info
        .as_ref()
        .and_then(|i| ApiClient::new(i.api, state.root()).ok());
    let mut removed = Removed::default();
    let me = crate::state::Proc::me();
    // `weft run`s own their workloads: ask them to clean up (deregister, drain) first.
    let owners: Vec<_> = state
        .records()
        .iter()
        .filter_map(|r| r.owner)
        .filter(|o| *o != me && Some(*o) != info.as_ref().map(|i| i.owner))
        .collect();
    for owner in &owners {
        process::terminate(*owner);
    }
    for owner in owners {
        process::stop_proc(owner, RUN_GRACE).await;
    }
    let records = state.records();
    removed.workloads = records
        .iter()
        .map(|r| format!("{}/{}", r.namespace, r.name))
        .collect();
    let (pods, mut host): (Vec<WorkloadRecord>, Vec<WorkloadRecord>) =
        records.into_iter().partition(|r| r.netns.is_some());
    if let Some(api) = &api {
        for r in &pods {
            let _ = api.deregister(&r.namespace, &r.name).await;
        }
    }
    // Apps, then sidecars (they drain), then the gateways, then the control plane.
    let is_system = |r: &&WorkloadRecord| r.namespace == crate::up::SYSTEM_NAMESPACE;
    stop_all(
        pods.iter().filter(|r| !is_system(r)).filter_map(|r| r.app),
        APP_GRACE,
    )
    .await;
    stop_all(pods.iter().filter_map(|r| r.proxy), DRAIN_GRACE).await;
    stop_all(
        pods.iter().filter(is_system).filter_map(|r| r.app),
        APP_GRACE,
    )
    .await;
    // The control plane ("istiod") goes last, after the gateways.
    host.sort_by_key(|r| r.name == crate::up::CONTROL_PLANE);
    for r in &host {
        stop_all(r.app, APP_GRACE).await;
    }
    for r in pods.iter().chain(&host) {
        if let Some(netns) = &r.netns {
            net::delete_pod(netns, r.veth.as_deref()).await;
        }
        state.remove_record(&r.namespace, &r.name);
    }
    let (namespaces, links) = remove_tagged(&tag, info.as_ref().map(|i| i.bridge.as_str())).await;
    removed.namespaces = namespaces;
    removed.links = links;
    if let Some(dir) = info.as_ref().and_then(|i| i.runtime_dir.as_ref()) {
        let _ = std::fs::remove_dir_all(dir);
    }
    // Also when `weft up` died between copying the binary and recording it.
    let _ = std::fs::remove_dir_all(crate::up::runtime_dir(&tag));
    state.remove_info();
    removed
}

/// Stops processes concurrently: SIGTERM to all, then each gets `grace`.
async fn stop_all(procs: impl IntoIterator<Item = crate::state::Proc>, grace: Duration) {
    let procs: Vec<_> = procs.into_iter().filter(|p| p.alive()).collect();
    for p in &procs {
        process::terminate(*p);
    }
    let waits = procs.into_iter().map(|p| process::stop_proc(p, grace));
    for w in waits {
        w.await;
    }
}

/// Removes one workload by its record (one whose owner died).
pub async fn remove_workload(state: &StateDir, r: &WorkloadRecord, api: Option<&ApiClient>) {
    if let Some(api) = api {
        let _ = api.deregister(&r.namespace, &r.name).await;
    }
    if let Some(app) = r.app {
        process::stop_proc(app, APP_GRACE).await;
    }
    if let Some(proxy) = r.proxy {
        process::stop_proc(proxy, DRAIN_GRACE).await;
    }
    if let Some(netns) = &r.netns {
        net::delete_pod(netns, r.veth.as_deref()).await;
    }
    state.remove_record(&r.namespace, &r.name);
}

/// Namespaces (`weft-TAG-*`), veths (`wTAGx*`), the bridge and /etc/netns entries of
/// the tag that no record named; returns how many namespaces and links went.
async fn remove_tagged(tag: &str, bridge: Option<&str>) -> (usize, usize) {
    let prefix = format!("weft-{tag}-");
    let namespaces = net::netns_with_prefix(&prefix).await;
    for ns in &namespaces {
        net::delete_pod(ns, None).await;
    }
    if let Ok(entries) = std::fs::read_dir("/etc/netns") {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        let _ = std::fs::remove_dir("/etc/netns");
    }
    let mut links = net::links_with_prefix(&format!("w{tag}x")).await;
    let bridge = bridge.map_or_else(|| crate::up::bridge_name(tag), String::from);
    net::disallow_bridged(&bridge).await;
    if net::link_exists(&bridge).await {
        links.push(bridge);
    }
    for link in &links {
        net::delete_link(link).await;
    }
    (namespaces.len(), links.len())
}
