//! Running a proxy: load config from a directory (re-read when it changes), keep one
//! listener task per port the tables name (gateway: HTTP or TCP/TLS) or the two capture
//! listeners (sidecar), serve the admin API, stop on request.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use weft_api::{LoadOptions, Severity};

use crate::http::Shared;
use crate::sidecar::{Direction, SidecarOptions, SidecarProxy};
use crate::tables::{ProxyIdentity, Tables};

/// What the proxy is.
#[derive(Debug, Clone)]
pub enum ProxyMode {
    /// Serves the Gateways whose selector matches its labels, on their ports.
    Gateway,
    /// Next to one workload: serves the traffic iptables redirects to 15001 and 15006.
    Sidecar(SidecarOptions),
}

/// How to run a proxy.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    pub mode: ProxyMode,
    /// A directory of YAML (Gateway, VirtualService, DestinationRule, ServiceEntry,
    /// WorkloadEntry) the proxy serves, re-read when a file changes.
    pub config_dir: PathBuf,
    pub identity: ProxyIdentity,
    /// The address gateway ports are opened on.
    pub listen_address: IpAddr,
    pub admin: SocketAddr,
    /// How often the directory is checked for changes.
    pub poll: Duration,
}

/// Runs until `shutdown` resolves or the admin API is asked to quit.
pub async fn run(
    opts: ProxyOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let (tables, mut stamp) = load(&opts, 1);
    let shared = Shared::new(tables);
    let (stop_tx, mut stop_rx) = watch::channel(false);
    // Capture listeners first: once the admin API answers, the sidecar is serving.
    let capture_tasks = match &opts.mode {
        ProxyMode::Gateway => Vec::new(),
        ProxyMode::Sidecar(sidecar) => start_sidecar(sidecar, &shared)?,
    };
    let admin = TcpListener::bind(opts.admin).await?;
    tracing::info!(admin = %admin.local_addr()?, "admin listening");
    let admin_task = tokio::spawn(crate::admin::serve(admin, shared.clone(), stop_tx));
    let mut listeners = Listeners::new();
    if let ProxyMode::Gateway = opts.mode {
        reconcile(&opts, &shared, &mut listeners).await;
    }
    let mut version = 1;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = stop_rx.changed() => break,
            _ = tokio::time::sleep(opts.poll) => {
                let now = fingerprint(&opts.config_dir);
                if now != stamp {
                    version += 1;
                    let (tables, new_stamp) = load(&opts, version);
                    stamp = new_stamp;
                    shared.tables.store(Arc::new(tables));
                    if let ProxyMode::Gateway = opts.mode {
                        reconcile(&opts, &shared, &mut listeners).await;
                    }
                }
            }
        }
    }
    for task in listeners
        .into_values()
        .map(|(_, task)| task)
        .chain(capture_tasks)
    {
        task.abort();
    }
    admin_task.abort();
    Ok(())
}

/// Binds the outbound and inbound capture listeners and starts serving them.
fn start_sidecar(
    opts: &SidecarOptions,
    shared: &Arc<Shared>,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    let sidecar = SidecarProxy::new(shared.clone(), opts);
    let mut tasks = Vec::new();
    for (addr, direction) in [
        (opts.outbound, Direction::Outbound),
        (opts.inbound, Direction::Inbound),
    ] {
        let listener = crate::capture::listen(addr).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot listen on {addr} ({direction:?} capture): {e}"),
            )
        })?;
        tracing::info!(%addr, ?direction, "capture listener");
        tasks.push(tokio::spawn(crate::sidecar::serve(
            listener,
            direction,
            sidecar.clone(),
        )));
    }
    Ok(tasks)
}

/// Which accept loop serves a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Serving {
    Http,
    /// TCP and TLS passthrough.
    L4,
}

/// The listener tasks, by port.
type Listeners = HashMap<u16, (Serving, JoinHandle<()>)>;

/// Opens listeners for ports the tables gained, closes those of ports they lost, and
/// reopens a port whose protocol changed between HTTP and TCP/TLS. Connections already
/// accepted live in their own tasks and are not disturbed.
async fn reconcile(opts: &ProxyOptions, shared: &Arc<Shared>, listeners: &mut Listeners) {
    let wanted: Vec<(u16, Serving)> = shared
        .tables
        .load()
        .listeners
        .values()
        .map(|l| {
            let serving = if l.protocol.is_http() {
                Serving::Http
            } else {
                Serving::L4
            };
            (l.port, serving)
        })
        .collect();
    let stale: Vec<u16> = listeners
        .iter()
        .filter(|(port, (serving, _))| !wanted.contains(&(**port, *serving)))
        .map(|(port, _)| *port)
        .collect();
    for port in stale {
        if let Some((_, task)) = listeners.remove(&port) {
            task.abort();
            // The socket closes when the task is gone: wait, so the port can be reopened.
            let _ = task.await;
        }
    }
    for (port, serving) in wanted {
        if listeners.contains_key(&port) {
            continue;
        }
        match TcpListener::bind((opts.listen_address, port)).await {
            Ok(l) => {
                tracing::info!(address = %opts.listen_address, port, ?serving, "listening");
                let task = match serving {
                    Serving::Http => tokio::spawn(crate::http::serve(l, port, shared.clone())),
                    Serving::L4 => tokio::spawn(crate::tcp::serve(l, port, shared.clone())),
                };
                listeners.insert(port, (serving, task));
            }
            Err(e) => tracing::error!(port, error = %e, "cannot listen on the gateway port"),
        }
    }
}

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

/// Loads and compiles the directory; refused objects are logged and left out, the rest
/// is served.
fn load(opts: &ProxyOptions, version: u64) -> (Tables, Stamp) {
    let stamp = fingerprint(&opts.config_dir);
    let loaded = weft_api::load_paths(&[&opts.config_dir], &LoadOptions::default());
    for report in loaded
        .reports
        .iter()
        .filter(|r| r.severity() == Severity::Error)
    {
        tracing::warn!(%report, "config refused");
    }
    let tables = match &opts.mode {
        ProxyMode::Gateway => Tables::for_gateway(&loaded.objects, &opts.identity, version),
        ProxyMode::Sidecar(s) => {
            Tables::for_sidecar(&loaded.objects, &opts.identity, s.outbound_policy, version)
        }
    };
    for reason in &tables.rejected {
        tracing::warn!(%reason, "config not served");
    }
    tracing::info!(
        version,
        objects = loaded.objects.len(),
        listeners = tables.listeners.len(),
        clusters = tables.clusters.len(),
        "config loaded"
    );
    (tables, stamp)
}
