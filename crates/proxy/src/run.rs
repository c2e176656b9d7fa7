//! Running a proxy: compile each version of the config its source gives, keep one
//! listener task per port the tables name (gateway: HTTP or TCP/TLS) or the two capture
//! listeners (sidecar), serve the admin API and readiness, and on shutdown drain: stop
//! accepting, let connections finish up to the drain timeout, exit.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::http::{ServerLimits, Shared};
use crate::registry::{Protocol, Registry};
use crate::sidecar::{Direction, SidecarOptions, SidecarProxy};
use crate::source::{ConfigSource, Snapshot};
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
    pub identity: ProxyIdentity,
    /// The address gateway ports are opened on.
    pub listen_address: IpAddr,
    /// Gateway ports below 1024 are opened this much higher (80 -> 8080 with 8000), so an
    /// unprivileged gateway can serve Istio's usual ports; 0 opens them as declared.
    pub low_port_offset: u16,
    pub admin: SocketAddr,
    /// Where `/healthz/ready` is served (Istio's 15021).
    pub readiness: SocketAddr,
    /// How long connections may take to finish once the proxy drains (Istio's
    /// `terminationDrainDuration`, 5s by default).
    pub drain_timeout: Duration,
    pub limits: ServerLimits,
    /// Changes the log level at run time (the admin API's `/logging`).
    pub logging: Option<LogControl>,
}

/// Sets the process's log level or tracing filter; given by whoever set up logging, so
/// the proxy does not depend on the subscriber.
#[derive(Clone)]
pub struct LogControl(Arc<SetLevel>);

/// Sets a level or filter; the error says why it is not one.
type SetLevel = dyn Fn(&str) -> Result<(), String> + Send + Sync;

impl LogControl {
    pub fn new(set: impl Fn(&str) -> Result<(), String> + Send + Sync + 'static) -> Self {
        Self(Arc::new(set))
    }

    pub fn set(&self, level: &str) -> Result<(), String> {
        (self.0)(level)
    }
}

impl std::fmt::Debug for LogControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogControl")
    }
}

/// Runs until `shutdown` resolves or the admin API is asked to quit, then drains.
pub async fn run(
    opts: ProxyOptions,
    mut source: impl ConfigSource,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let first = source.next().await.unwrap_or_default();
    let mut tables = compile(&opts, &first, 1);
    if !source.verdict(&tables.rejected).await {
        // Refused, with nothing before it: serve nothing until the next version.
        tables = compile(&opts, &Snapshot::default(), 1);
    }
    let shared = Shared::with_limits(tables, opts.limits);
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let ready = Arc::new(AtomicBool::new(false));
    let readiness = TcpListener::bind(opts.readiness).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot serve readiness on {}: {e}", opts.readiness),
        )
    })?;
    tracing::info!(readiness = %readiness.local_addr()?, "readiness listening");
    let readiness_task = tokio::spawn(crate::admin::serve_readiness(
        readiness,
        shared.clone(),
        ready.clone(),
    ));
    // Capture listeners first: once the admin API answers, the sidecar is serving.
    let capture_tasks = match &opts.mode {
        ProxyMode::Gateway => Vec::new(),
        ProxyMode::Sidecar(sidecar) => start_sidecar(sidecar, &shared)?,
    };
    let admin = TcpListener::bind(opts.admin).await?;
    tracing::info!(admin = %admin.local_addr()?, "admin listening");
    let admin_task = tokio::spawn(crate::admin::serve(
        admin,
        shared.clone(),
        crate::admin::Admin {
            stop: stop_tx,
            logging: opts.logging.clone(),
        },
    ));
    let mut listeners = Listeners::new();
    if let ProxyMode::Gateway = opts.mode {
        reconcile(&opts, &shared, &mut listeners).await;
    }
    ready.store(true, Ordering::Release);
    let mut version = 1;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = stop_rx.changed() => break,
            next = source.next() => {
                // A source that has ended leaves the proxy serving its last good config.
                let Some(snapshot) = next else { continue };
                let tables = compile(&opts, &snapshot, version + 1);
                if !source.verdict(&tables.rejected).await {
                    tracing::warn!(version, "config refused: serving the previous version");
                    continue;
                }
                version += 1;
                shared.tables.store(Arc::new(tables));
                if let ProxyMode::Gateway = opts.mode {
                    reconcile(&opts, &shared, &mut listeners).await;
                }
            }
        }
    }
    drain(&opts, &shared, listeners, capture_tasks).await;
    admin_task.abort();
    readiness_task.abort();
    Ok(())
}

/// Stops accepting (every listener closes), asks every connection to finish, and waits
/// up to the drain timeout for them. Readiness answers 503 from the first step.
async fn drain(
    opts: &ProxyOptions,
    shared: &Shared,
    listeners: Listeners,
    capture_tasks: Vec<JoinHandle<()>>,
) {
    shared.drain.start();
    // HTTP listeners stop on the signal; TCP and capture listeners are stopped here.
    for task in listeners
        .into_values()
        .map(|(_, task)| task)
        .chain(capture_tasks)
    {
        task.abort();
    }
    tracing::info!(
        connections = shared.drain.active(),
        timeout = ?opts.drain_timeout,
        "draining"
    );
    if shared.drain.wait_idle(opts.drain_timeout).await {
        tracing::info!("drained");
    } else {
        tracing::warn!(
            connections = shared.drain.active(),
            "drain timeout passed: closing the connections left"
        );
    }
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
    /// TCP.
    L4,
    /// TLS, terminated or passed through by SNI.
    Tls,
}

/// The listener tasks, by port.
type Listeners = HashMap<u16, (Serving, JoinHandle<()>)>;

/// Opens listeners for ports the tables gained, closes those of ports they lost, and
/// reopens a port whose protocol changed between HTTP and TCP/TLS. Connections already
/// accepted live in their own tasks and are not disturbed.
async fn reconcile(opts: &ProxyOptions, shared: &Arc<Shared>, listeners: &mut Listeners) {
    let wanted: Vec<(u16, Serving, u16)> = shared
        .tables
        .load()
        .listeners
        .values()
        .map(|l| {
            let serving = if l.protocol.is_http() {
                Serving::Http
            } else if matches!(l.protocol, Protocol::Https | Protocol::Tls) {
                Serving::Tls
            } else {
                Serving::L4
            };
            (l.port, serving, l.published_port)
        })
        .collect();
    let stale: Vec<u16> = listeners
        .iter()
        .filter(|(port, (serving, _))| !wanted.iter().any(|w| (w.0, w.1) == (**port, *serving)))
        .map(|(port, _)| *port)
        .collect();
    for port in stale {
        if let Some((_, task)) = listeners.remove(&port) {
            task.abort();
            // The socket closes when the task is gone: wait, so the port can be reopened.
            let _ = task.await;
        }
    }
    for (port, serving, published) in wanted {
        if listeners.contains_key(&port) {
            continue;
        }
        match TcpListener::bind((opts.listen_address, published)).await {
            Ok(l) => {
                tracing::info!(address = %opts.listen_address, port, published, ?serving, "listening");
                let task = match serving {
                    Serving::Http => tokio::spawn(crate::http::serve(l, port, shared.clone())),
                    Serving::L4 => tokio::spawn(crate::tcp::serve(l, port, shared.clone())),
                    Serving::Tls => tokio::spawn(crate::tls::serve(l, port, shared.clone())),
                };
                listeners.insert(port, (serving, task));
            }
            Err(e) => {
                tracing::error!(port, published, error = %e, "cannot listen on the gateway port")
            }
        }
    }
}

/// Compiles one version of the config; what cannot be served is logged and left out,
/// the rest is served.
fn compile(opts: &ProxyOptions, snapshot: &Snapshot, version: u64) -> Tables {
    let objects = &snapshot.objects;
    let registry = match &snapshot.services {
        Some(given) => given.clone(),
        None => Registry::build(objects),
    };
    let tables = match &opts.mode {
        ProxyMode::Gateway => Tables::for_gateway_published(
            objects,
            registry,
            &opts.identity,
            version,
            opts.low_port_offset,
        ),
        ProxyMode::Sidecar(s) => Tables::for_sidecar_with(
            objects,
            registry,
            &opts.identity,
            s.outbound_policy,
            version,
        ),
    };
    for reason in &tables.rejected {
        tracing::warn!(%reason, "config not served");
    }
    tracing::info!(
        version,
        objects = objects.len(),
        listeners = tables.listeners.len(),
        clusters = tables.clusters.len(),
        "config loaded"
    );
    tables
}
