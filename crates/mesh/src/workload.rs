//! One workload's life, shared by `weft run` and `weft up`'s demos: an address and a
//! network namespace, the sidecar (UID 1337) behind Istio's capture, the Service it
//! belongs to, its registration with the control plane, then the app, started only once
//! the sidecar is ready. Stopping reverses it: deregister, stop the app, drain the
//! sidecar, delete the namespace and the record.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::process::Child;

use crate::error::{MeshError, Result};
use crate::process::{self, Launch, Output, User};
use crate::state::{self, Proc, Reserve, WorkloadRecord};
use crate::{Mesh, PortSpec, net};

/// How long a sidecar may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a sidecar may drain after SIGTERM before it is killed (its own drain
/// timeout is 5 s).
const DRAIN_GRACE: Duration = Duration::from_secs(8);

/// What to run.
#[derive(Debug, Clone)]
pub struct WorkloadSpec {
    pub name: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub service_account: String,
    pub ports: Vec<PortSpec>,
    /// The Service to declare the workload's ports in (made, or extended with ports it
    /// lacks), selecting `app=<the app label>`; `None`: no Service is touched.
    pub service: Option<String>,
    pub sidecar: bool,
    pub command: Vec<String>,
    pub env: Vec<(String, String)>,
    pub user: User,
    /// `weft run` in a terminal: the app keeps standard input, and its output goes to
    /// the terminal as well as to its log.
    pub interactive: bool,
}

/// A started workload.
pub struct Running {
    mesh: Mesh,
    pub record: WorkloadRecord,
    app: Option<Child>,
    sidecar: Option<Child>,
    registered: bool,
}

/// Starts a workload; on failure, whatever was made is removed again.
pub async fn start(mesh: &Mesh, spec: &WorkloadSpec) -> Result<Running> {
    crate::check_name("namespace", &spec.namespace)?;
    crate::check_name("name", &spec.name)?;
    let mut record = new_record(mesh, spec);
    reserve(mesh, &mut record).await?;
    let mut running = Running {
        mesh: mesh.clone(),
        record,
        app: None,
        sidecar: None,
        registered: false,
    };
    match running.bring_up(spec).await {
        Ok(()) => Ok(running),
        Err(e) => {
            running.stop(Duration::from_secs(2)).await;
            Err(e)
        }
    }
}

fn new_record(mesh: &Mesh, spec: &WorkloadSpec) -> WorkloadRecord {
    let mut labels = spec.labels.clone();
    labels
        .entry("app".to_string())
        .or_insert_with(|| spec.name.clone());
    let logs = mesh.state.logs_dir();
    let base = format!("{}.{}", spec.namespace, spec.name);
    WorkloadRecord {
        namespace: spec.namespace.clone(),
        name: spec.name.clone(),
        labels,
        service_account: spec.service_account.clone(),
        ports: spec.ports.clone(),
        service: spec.service.clone(),
        sidecar: spec.sidecar,
        owner: Some(Proc::me()),
        app_log: logs.join(format!("{base}.log")),
        proxy_log: spec.sidecar.then(|| logs.join(format!("{base}.proxy.log"))),
        hostname: format!("{}-{}", spec.name, instance_suffix()),
        created: state::now(),
        ..WorkloadRecord::default()
    }
}

/// Takes an address; a record of the same name whose owner died is cleaned up first.
async fn reserve(mesh: &Mesh, record: &mut WorkloadRecord) -> Result<()> {
    for _ in 0..2 {
        match mesh.state.reserve(mesh.info.subnet, &mesh.info.tag, record) {
            Ok(()) => return Ok(()),
            Err(Reserve::Failed(e)) => return Err(e),
            Err(Reserve::Stale(old)) => {
                crate::down::remove_workload(&mesh.state, &old, Some(&mesh.api)).await
            }
        }
    }
    Err(MeshError::Exists {
        namespace: record.namespace.clone(),
        name: record.name.clone(),
    })
}

/// Five characters as Kubernetes names pods (`reviews-v2-x7k2p`).
fn instance_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char)
        .collect()
}

impl Running {
    pub fn mesh(&self) -> &Mesh {
        &self.mesh
    }

    async fn bring_up(&mut self, spec: &WorkloadSpec) -> Result<()> {
        for log in [Some(&self.record.app_log), self.record.proxy_log.as_ref()]
            .into_iter()
            .flatten()
        {
            std::fs::write(log, b"")
                .map_err(MeshError::io(format!("cannot create {}", log.display())))?;
        }
        net::create_pod(&self.mesh.info, &self.record).await?;
        if spec.sidecar {
            self.start_sidecar().await?;
        }
        let port_names = match &spec.service {
            Some(service) => ensure_service(&self.mesh, &self.record, service).await?,
            None => spec.ports.iter().map(|p| p.name(&spec.ports)).collect(),
        };
        self.register(&port_names).await?;
        if !self.record.sidecar {
            crate::legacy::refresh_one(&self.mesh, &self.record).await;
        }
        self.start_app(spec)?;
        Ok(())
    }

    fn ip(&self) -> String {
        self.record.ip.map(|ip| ip.to_string()).unwrap_or_default()
    }

    async fn start_sidecar(&mut self) -> Result<()> {
        let r = &self.record;
        let labels: Vec<String> = r.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let argv: Vec<String> = [
            self.mesh.info.proxy_binary.display().to_string(),
            "proxy".into(),
            "--mode".into(),
            "sidecar".into(),
            "--control-plane".into(),
            self.mesh.info.xds.to_string(),
            "--name".into(),
            format!("{}.{}", r.name, r.namespace),
            "--namespace".into(),
            r.namespace.clone(),
            "--labels".into(),
            labels.join(","),
            "--service-account".into(),
            r.service_account.clone(),
            // The control plane reads the admin API for `weft proxy-config`; inbound
            // capture leaves 15000 alone.
            "--admin".into(),
            format!("{}:15000", self.ip()),
            "--outbound-policy".into(),
            self.mesh.info.outbound_policy.clone(),
        ]
        .into();
        let log = r.proxy_log.clone().unwrap_or_default();
        let what = format!("the sidecar of {}/{}", r.namespace, r.name);
        let (child, proc) = process::spawn(&Launch {
            netns: self.record.netns.as_deref(),
            user: User::Proxy,
            argv: &argv,
            env: &[("NO_COLOR".into(), "1".into())],
            output: Output::Log(&log),
            stdin: false,
            own_group: true,
        })?;
        self.record.proxy = Some(proc);
        self.sidecar = Some(child);
        self.mesh.state.write_record(&self.record)?;
        let ready = SocketAddr::new(
            self.record.ip.map_or([0, 0, 0, 0].into(), Into::into),
            15021,
        );
        wait_ready(&mut self.sidecar, ready, &what, &log).await
    }

    async fn register(&mut self, port_names: &[String]) -> Result<()> {
        let r = &self.record;
        let ports = port_names
            .iter()
            .zip(&r.ports)
            .map(|(n, p)| (n.clone(), p.target))
            .collect();
        let workload = weft_api::registry::Workload {
            name: r.name.clone(),
            namespace: r.namespace.clone(),
            labels: r.labels.clone(),
            service_account: r.service_account.clone(),
            address: self.ip(),
            ports,
            group: None,
        };
        self.mesh.api.register(&workload).await?;
        self.registered = true;
        Ok(())
    }

    fn start_app(&mut self, spec: &WorkloadSpec) -> Result<()> {
        // What Kubernetes' downward API gives Istio's pods, also as `$(VAR)` in the
        // command, as a container's args may use it.
        let mut env = spec.env.clone();
        env.extend([
            ("HOSTNAME".to_string(), self.record.hostname.clone()),
            ("POD_NAME".to_string(), self.record.hostname.clone()),
            ("POD_NAMESPACE".to_string(), self.record.namespace.clone()),
            ("POD_IP".to_string(), self.ip()),
            (
                "SERVICE_ACCOUNT".to_string(),
                self.record.service_account.clone(),
            ),
        ]);
        let argv: Vec<String> = spec
            .command
            .iter()
            .map(|arg| {
                env.iter()
                    .fold(arg.clone(), |a, (k, v)| a.replace(&format!("$({k})"), v))
            })
            .collect();
        let log = self.record.app_log.clone();
        let (mut child, proc) = process::spawn(&Launch {
            netns: self.record.netns.as_deref(),
            user: spec.user,
            argv: &argv,
            env: &env,
            output: if spec.interactive {
                Output::Tee(&log)
            } else {
                Output::Log(&log)
            },
            stdin: spec.interactive,
            own_group: !spec.interactive,
        })?;
        process::tee_output(&mut child, &log);
        self.record.app = Some(proc);
        self.app = Some(child);
        self.mesh.state.write_record(&self.record)
    }

    /// Waits for the app to exit.
    pub async fn wait(&mut self) -> Option<std::process::ExitStatus> {
        match &mut self.app {
            Some(child) => child.wait().await.ok(),
            None => None,
        }
    }

    /// The app's exit status if it has exited.
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.app.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// The first half of stopping: no new traffic (deregistered), then the app gets
    /// SIGTERM and `grace` to exit.
    pub async fn stop_app(&mut self, grace: Duration) {
        if self.registered {
            let r = &self.record;
            let _ = self.mesh.api.deregister(&r.namespace, &r.name).await;
            self.registered = false;
        }
        if let (Some(child), Some(proc)) = (self.app.as_mut(), self.record.app) {
            process::stop_child(child, proc, grace).await;
        }
    }

    /// The second half: the sidecar drains, the namespace and the record go.
    pub async fn finish(mut self) {
        if let (Some(child), Some(proc)) = (self.sidecar.as_mut(), self.record.proxy) {
            process::stop_child(child, proc, DRAIN_GRACE).await;
        }
        if let Some(netns) = &self.record.netns {
            net::delete_pod(netns, self.record.veth.as_deref()).await;
        }
        self.mesh
            .state
            .remove_record(&self.record.namespace, &self.record.name);
    }

    pub async fn stop(mut self, grace: Duration) {
        self.stop_app(grace).await;
        self.finish().await;
    }
}

/// Polls `addr`'s `/healthz/ready` until it answers 200; fails early if the process
/// exits.
pub(crate) async fn wait_ready(
    child: &mut Option<Child>,
    addr: SocketAddr,
    what: &str,
    log: &std::path::Path,
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    loop {
        if let Some(c) = child.as_mut()
            && let Ok(Some(status)) = c.try_wait()
        {
            return Err(MeshError::Exited {
                what: format!("{what} ({status})"),
                detail: process::log_tail(log, 15),
            });
        }
        if crate::api::get_status(addr, "/healthz/ready").await == Some(200) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(MeshError::NotReady {
                what: what.to_string(),
                secs: READY_TIMEOUT.as_secs(),
                detail: process::log_tail(log, 15),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Makes the Service `name` (selector `app=<app label>`), or adds the ports it lacks to
/// the one that exists; returns the Service's name of each of the workload's ports.
async fn ensure_service(mesh: &Mesh, r: &WorkloadRecord, name: &str) -> Result<Vec<String>> {
    let existing = mesh.api.service(&r.namespace, name).await?;
    let mut ports: Vec<Value> = existing
        .as_ref()
        .and_then(|s| s["spec"]["ports"].as_array().cloned())
        .unwrap_or_default();
    let mut names = Vec::new();
    let mut changed = existing.is_none() && !r.ports.is_empty();
    for p in &r.ports {
        if let Some(have) = ports.iter().find(|v| v["port"] == p.port) {
            names.push(have["name"].as_str().unwrap_or_default().to_string());
            continue;
        }
        let mut port_name = p.name(&r.ports);
        if ports.iter().any(|v| v["name"] == port_name.as_str()) {
            port_name = format!("{}-{}", p.protocol.as_deref().unwrap_or("port"), p.port);
        }
        ports.push(
            json!({"name": port_name, "port": p.port, "targetPort": p.target, "protocol": "TCP"}),
        );
        names.push(port_name);
        changed = true;
    }
    if !changed {
        return Ok(names);
    }
    let app = r
        .labels
        .get("app")
        .cloned()
        .unwrap_or_else(|| r.name.clone());
    let selector = existing
        .as_ref()
        .map(|s| s["spec"]["selector"].clone())
        .filter(|s| s.is_object())
        .unwrap_or_else(|| json!({"app": app}));
    let service = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": r.namespace, "labels": {"app": app, "service": name}},
        "spec": {"selector": selector, "ports": ports},
    });
    let source = format!("weft run {}", r.name);
    mesh.api
        .apply(&r.namespace, &service.to_string(), &source)
        .await?;
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_names_look_like_kubernetes_pods() {
        let s = instance_suffix();
        assert_eq!(s.len(), 5);
        assert!(
            s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        );
    }
}
