//! What the runtime keeps in the state directory, beside the control plane's files:
//! `mesh/mesh.json` (the running `weft up`: its process, bridge, subnet, addresses),
//! `mesh/workloads/NS.NAME.json` (one record per workload: labels, IP, netns, veth,
//! processes, log paths), `mesh/logs/` and `mesh/lock`, which serialises address
//! allocation between `weft up` and concurrent `weft run`s. `weft ps`, `exec`, `logs` and
//! `down` read these files; `down` removes exactly what they name, also after a SIGKILL.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::error::{MeshError, Result};

/// The mesh's files in a state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    pub fn new(root: &Path) -> StateDir {
        // Absolute, so the instance tag does not depend on the working directory.
        let root = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
        StateDir { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn mesh_dir(&self) -> PathBuf {
        self.root.join("mesh")
    }

    pub fn logs_dir(&self) -> PathBuf {
        self.mesh_dir().join("logs")
    }

    fn workloads_dir(&self) -> PathBuf {
        self.mesh_dir().join("workloads")
    }

    fn info_path(&self) -> PathBuf {
        self.mesh_dir().join("mesh.json")
    }

    /// Six hex digits of a hash of the directory's path: every netns and interface name
    /// of this mesh starts with it, so two meshes (two tests) never collide.
    pub fn tag(&self) -> String {
        let hash = xxhash_rust::xxh64::xxh64(self.root.as_os_str().as_encoded_bytes(), 0);
        format!("{:06x}", hash & 0xff_ffff)
    }

    /// Creates `mesh/`, `mesh/workloads/` and `mesh/logs/` (the state directory itself
    /// with mode 0700, as the control plane makes it).
    pub fn create(&self) -> Result<()> {
        weft_control_plane::state::create_dir(&self.root).map_err(MeshError::io(format!(
            "cannot create {}",
            self.root.display()
        )))?;
        for dir in [self.workloads_dir(), self.logs_dir()] {
            std::fs::create_dir_all(&dir)
                .map_err(MeshError::io(format!("cannot create {}", dir.display())))?;
        }
        Ok(())
    }

    /// Holds the allocation lock until the returned file is dropped.
    pub fn lock(&self) -> Result<File> {
        let path = self.mesh_dir().join("lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(MeshError::io(format!("cannot open {}", path.display())))?;
        file.lock()
            .map_err(MeshError::io(format!("cannot lock {}", path.display())))?;
        Ok(file)
    }

    pub fn read_info(&self) -> Option<MeshInfo> {
        read_json(&self.info_path())
    }

    pub fn write_info(&self, info: &MeshInfo) -> Result<()> {
        write_json(&self.info_path(), info)
    }

    pub fn remove_info(&self) {
        let _ = std::fs::remove_file(self.info_path());
    }

    fn record_path(&self, namespace: &str, name: &str) -> PathBuf {
        self.workloads_dir()
            .join(format!("{namespace}.{name}.json"))
    }

    /// Every workload record, by namespace then name.
    pub fn records(&self) -> Vec<WorkloadRecord> {
        let mut out: Vec<WorkloadRecord> = std::fs::read_dir(self.workloads_dir())
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| read_json(&e.path()))
            .collect();
        out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        out
    }

    pub fn record(&self, namespace: &str, name: &str) -> Option<WorkloadRecord> {
        read_json(&self.record_path(namespace, name))
    }

    pub fn write_record(&self, record: &WorkloadRecord) -> Result<()> {
        write_json(&self.record_path(&record.namespace, &record.name), record)
    }

    pub fn remove_record(&self, namespace: &str, name: &str) {
        let _ = std::fs::remove_file(self.record_path(namespace, name));
    }

    /// Writes `record` with a free address of `subnet` (and the veth and netns names that
    /// go with it), under the lock. A live record of the same name is an error; a record
    /// whose owner died is returned in `Err(Stale)` for the caller to clean up first.
    pub fn reserve(
        &self,
        subnet: Ipv4Net,
        tag: &str,
        record: &mut WorkloadRecord,
    ) -> Result<(), Reserve> {
        let _lock = self.lock().map_err(Reserve::Failed)?;
        let records = self.records();
        if let Some(old) = records
            .iter()
            .find(|r| r.namespace == record.namespace && r.name == record.name)
        {
            if old.owner_alive() {
                return Err(Reserve::Failed(MeshError::Exists {
                    namespace: record.namespace.clone(),
                    name: record.name.clone(),
                }));
            }
            return Err(Reserve::Stale(Box::new(old.clone())));
        }
        let taken: Vec<Ipv4Addr> = records.iter().filter_map(|r| r.ip).collect();
        let ip = free_address(subnet, &taken)
            .ok_or_else(|| Reserve::Failed(MeshError::SubnetFull(subnet.to_string())))?;
        let index = u32::from(ip) - u32::from(subnet.network());
        record.ip = Some(ip);
        record.veth = Some(format!("w{tag}x{index:x}"));
        record.netns = Some(netns_name(tag, &record.namespace, &record.name));
        self.write_record(record).map_err(Reserve::Failed)
    }
}

/// Why [`StateDir::reserve`] gave no address.
#[derive(Debug)]
pub enum Reserve {
    Failed(MeshError),
    Stale(Box<WorkloadRecord>),
}

/// The network namespace of a workload: `weft-TAG-NS-NAME`.
pub fn netns_name(tag: &str, namespace: &str, name: &str) -> String {
    format!("weft-{tag}-{namespace}-{name}")
}

/// The lowest host address of `subnet` that is not the bridge's (`.1`), not taken, and
/// has no `.0` or `.255` last byte (which some stacks treat specially).
pub fn free_address(subnet: Ipv4Net, taken: &[Ipv4Addr]) -> Option<Ipv4Addr> {
    let gateway = gateway_ip(subnet);
    subnet
        .hosts()
        .filter(|ip| *ip != gateway)
        .filter(|ip| !matches!(ip.octets()[3], 0 | 255))
        .find(|ip| !taken.contains(ip))
}

/// The bridge's address: the subnet's first host.
pub fn gateway_ip(subnet: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(subnet.network()) + 1)
}

/// The running `weft up`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MeshInfo {
    pub tag: String,
    pub subnet: Ipv4Net,
    pub bridge: String,
    pub gateway: Ipv4Addr,
    /// The control plane's local API (in the host namespace).
    pub api: SocketAddr,
    /// Where proxies get their config (the bridge's address, so namespaces reach it).
    pub xds: SocketAddr,
    pub owner: Proc,
    /// The network namespace `weft up` runs in (`net:[INODE]`): `weft run` must run there.
    pub netns_id: String,
    /// The `weft` binary sidecars run (one UID 1337 can reach).
    pub proxy_binary: PathBuf,
    /// A directory `weft up` made for the copy of the binary, removed with the mesh.
    pub runtime_dir: Option<PathBuf>,
    /// Gateway ports below 1024 are published at this offset (80 -> 8080), when set.
    pub low_port_offset: Option<u16>,
    /// The mesh-wide outbound traffic policy sidecars enforce (`weft up --outbound-policy`).
    #[serde(default = "allow_any")]
    pub outbound_policy: String,
    pub started: u64,
}

fn allow_any() -> String {
    "ALLOW_ANY".to_string()
}

/// A process, named by its pid and start time so that a reused pid is never mistaken
/// for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proc {
    pub pid: u32,
    pub start: u64,
}

impl Proc {
    /// The process with this pid now, if it runs.
    pub fn of(pid: u32) -> Option<Proc> {
        let (start, state) = stat(pid)?;
        (state != 'Z').then_some(Proc { pid, start })
    }

    /// This process.
    pub fn me() -> Proc {
        Proc::of(std::process::id()).unwrap_or(Proc {
            pid: std::process::id(),
            start: 0,
        })
    }

    /// Still running (and not a zombie), and still the same process.
    pub fn alive(&self) -> bool {
        matches!(stat(self.pid), Some((start, state)) if start == self.start && state != 'Z')
    }
}

/// A process's start time (clock ticks after boot) and state letter, from
/// `/proc/PID/stat` (fields 22 and 3; the name in field 2 may hold spaces and parens).
fn stat(pid: u32) -> Option<(u64, char)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    Some((fields.get(19)?.parse().ok()?, state))
}

/// One workload: a pod in its own namespace, or a process of the mesh in the host
/// namespace (the control plane, the ingress gateway), which has no IP of its own.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WorkloadRecord {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub service_account: String,
    pub ip: Option<Ipv4Addr>,
    pub netns: Option<String>,
    /// The host side of the pod's veth pair (its other end is `eth0` in the netns).
    pub veth: Option<String>,
    pub ports: Vec<crate::PortSpec>,
    /// The Kubernetes Service this workload was declared into.
    pub service: Option<String>,
    pub sidecar: bool,
    /// The process that manages the workload (`weft up` or a `weft run`).
    pub owner: Option<Proc>,
    pub app: Option<Proc>,
    pub proxy: Option<Proc>,
    pub app_log: PathBuf,
    pub proxy_log: Option<PathBuf>,
    /// The instance name the app sees in `HOSTNAME` (`reviews-v2-x7k2p`).
    pub hostname: String,
    /// Seconds since the Unix epoch.
    pub created: u64,
}

impl WorkloadRecord {
    pub fn owner_alive(&self) -> bool {
        self.owner.is_some_and(|o| o.alive())
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Writes to a temporary name and renames, so a reader never sees half a file.
fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_vec_pretty(value).map_err(|e| MeshError::Io {
        what: format!("cannot encode {}", path.display()),
        source: std::io::Error::other(e),
    })?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, text).map_err(MeshError::io(format!("cannot write {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(MeshError::io(format!("cannot write {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_skip_the_bridge_taken_ones_and_dot_zero() {
        let subnet: Ipv4Net = "10.251.0.0/16".parse().unwrap_or_default();
        assert_eq!(gateway_ip(subnet), Ipv4Addr::new(10, 251, 0, 1));
        assert_eq!(
            free_address(subnet, &[]),
            Some(Ipv4Addr::new(10, 251, 0, 2))
        );
        let taken: Vec<Ipv4Addr> = (2..=254).map(|i| Ipv4Addr::new(10, 251, 0, i)).collect();
        assert_eq!(
            free_address(subnet, &taken),
            Some(Ipv4Addr::new(10, 251, 1, 1))
        );
        let tiny: Ipv4Net = "10.9.0.0/30".parse().unwrap_or_default();
        assert_eq!(free_address(tiny, &[Ipv4Addr::new(10, 9, 0, 2)]), None);
    }

    #[test]
    fn this_process_is_alive_and_a_reused_pid_is_not() {
        let me = Proc::me();
        assert!(me.alive());
        assert!(
            !Proc {
                start: me.start + 1,
                ..me
            }
            .alive()
        );
    }

    #[test]
    fn tags_are_six_hex_digits_per_directory() {
        let a = StateDir::new(Path::new("/tmp/a")).tag();
        let b = StateDir::new(Path::new("/tmp/b")).tag();
        assert_eq!(a.len(), 6);
        assert_ne!(a, b);
    }
}
