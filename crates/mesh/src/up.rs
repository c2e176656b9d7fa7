//! `weft up`: a complete mesh on this host, in the foreground. In order: checks (root,
//! tools, a leftover mesh, routes that overlap the subnet), the bridge, the control
//! plane (API on 127.0.0.1:15014, xDS on the bridge's address so namespaces reach it),
//! the ingress gateway in the host namespace (on 127.0.0.1), the egress gateway as a
//! workload of its own, then the demos. It then watches its children until Ctrl-C or
//! SIGTERM, and tears everything down with the same code `weft down` uses.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::Ipv4Net;
use tokio::process::Child;
use tokio::task::JoinSet;

use crate::demos::{self, Demo};
use crate::error::{MeshError, Result};
use crate::process::{self, Launch, Output, User};
use crate::state::{self, MeshInfo, Proc, StateDir, WorkloadRecord};
use crate::workload::{self, Running, WorkloadSpec};
use crate::{Mesh, PortSpec, api, net, preflight};

/// The control plane's name in `weft ps` (Istio's).
pub const CONTROL_PLANE: &str = "istiod";
pub const INGRESS: &str = "istio-ingressgateway";
pub const EGRESS: &str = "istio-egressgateway";
pub const SYSTEM_NAMESPACE: &str = "istio-system";
/// The default mesh subnet: private, and used by nothing else of Weft's.
pub const DEFAULT_SUBNET: &str = "10.251.0.0/16";
/// The xDS port on the bridge.
const XDS_PORT: u16 = 15010;
/// How often `weft up` looks at its children and refreshes legacy workloads' names.
const TICK: Duration = Duration::from_millis(500);

/// The bridge of the mesh with this tag (≤ 15 characters, as interface names must be).
pub fn bridge_name(tag: &str) -> String {
    format!("weft-{tag}")
}

/// What `weft up` was asked for.
#[derive(Debug, Clone)]
pub struct UpOptions {
    pub state_dir: PathBuf,
    pub subnet: Ipv4Net,
    pub demos: Vec<String>,
    /// The `weft` binary the mesh's processes run.
    pub weft: PathBuf,
    /// The control plane's local API.
    pub api: SocketAddrV4,
    /// Gateway ports below 1024 are opened at this offset (`--low-port-offset`).
    pub low_port_offset: Option<u16>,
    /// The mesh-wide `outboundTrafficPolicy.mode` every sidecar gets: `ALLOW_ANY` or
    /// `REGISTRY_ONLY`.
    pub outbound_policy: String,
    /// How users call `weft` in the lines printed to try (`weft`, or with
    /// `WEFT_STATE_DIR=...` in front).
    pub command_name: String,
}

/// Runs the mesh until `shutdown` resolves; `say` prints progress lines.
pub async fn up(
    opts: UpOptions,
    shutdown: impl Future<Output = ()>,
    say: &(dyn Fn(&str) + Sync),
) -> Result<()> {
    preflight::check("up")?;
    let demos = demos::select(&opts.demos)?;
    let state = StateDir::new(&opts.state_dir);
    state.create()?;
    prepare(&state, opts.subnet, say).await?;
    let info = mesh_info(&opts, &state)?;
    state.write_info(&info)?;
    let mut shutdown = std::pin::pin!(shutdown);
    let result = tokio::select! {
        r = async {
            let mut mesh = start(&opts, &state, &info, &demos, say).await?;
            watch(&mut mesh, say).await
        } => r,
        () = &mut shutdown => Ok(()),
    };
    say("Stopping the mesh: apps, sidecars, gateways, control plane, then the network ...");
    let removed = crate::down::sweep(&state).await;
    say(&format!(
        "Stopped: {} workloads, {} namespaces and {} interfaces removed.",
        removed.workloads.len(),
        removed.namespaces,
        removed.links
    ));
    result
}

/// Refuses a running mesh, removes a dead one's leftovers, refuses a subnet that
/// overlaps this host's routes.
async fn prepare(state: &StateDir, subnet: Ipv4Net, say: &(dyn Fn(&str) + Sync)) -> Result<()> {
    let _lock = state.lock()?;
    if let Some(info) = state.read_info() {
        if info.owner.alive() {
            return Err(MeshError::AlreadyRunning {
                state: state.root().to_path_buf(),
                pid: info.owner.pid,
            });
        }
        say("Cleaning up what an earlier `weft up` left behind (it did not stop cleanly) ...");
    }
    crate::down::sweep(state).await;
    let conflicts = net::conflicting_routes(subnet).await?;
    if !conflicts.is_empty() {
        return Err(MeshError::Preflight(format!(
            "the mesh subnet {subnet} overlaps this host's routes ({}): pick a free private range with --subnet (e.g. --subnet 10.252.0.0/16)",
            conflicts.join("; ")
        )));
    }
    Ok(())
}

fn mesh_info(opts: &UpOptions, state: &StateDir) -> Result<MeshInfo> {
    let tag = state.tag();
    let gateway = state::gateway_ip(opts.subnet);
    let (proxy_binary, _) = reachable_binary(&opts.weft, &tag)?;
    let runtime_dir = tools(&tag, &proxy_binary)?;
    Ok(MeshInfo {
        bridge: bridge_name(&tag),
        tag,
        subnet: opts.subnet,
        gateway,
        api: SocketAddr::V4(opts.api),
        xds: SocketAddr::new(gateway.into(), XDS_PORT),
        owner: Proc::me(),
        netns_id: net::netns_id(),
        proxy_binary,
        runtime_dir: Some(runtime_dir),
        low_port_offset: opts.low_port_offset,
        outbound_policy: opts.outbound_policy.clone(),
        started: state::now(),
    })
}

/// The `weft` binary, or a copy in $TMPDIR/weft-TAG when another user (the sidecar's UID
/// 1337, the invoking user) cannot reach it (a build under /root, say).
fn reachable_binary(weft: &Path, tag: &str) -> Result<(PathBuf, Option<PathBuf>)> {
    use std::os::unix::fs::PermissionsExt;
    let others_may =
        |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & 0o001 != 0);
    if weft
        .ancestors()
        .all(|p| p.as_os_str().is_empty() || others_may(p))
    {
        return Ok((weft.to_path_buf(), None));
    }
    // On disk rather than in /run (a tmpfs): a debug build is hundreds of megabytes.
    let dir = runtime_dir(tag);
    let copy = dir.join("weft");
    let fail = |what: &str| MeshError::io(format!("cannot {what} {}", copy.display()));
    std::fs::create_dir_all(&dir).map_err(fail("create the directory of"))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).map_err(fail("open"))?;
    std::fs::copy(weft, &copy).map_err(fail("copy the weft binary to"))?;
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755))
        .map_err(fail("make executable"))?;
    Ok((copy, Some(dir)))
}

/// Where `weft up` keeps a copy of the binary when it needs one, and the tools' directory.
pub fn runtime_dir(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("weft-{tag}"))
}

/// The directory `weft exec` puts first on the PATH: the demos' client tools by their own
/// names (`fortio`, which is `weft sample fortio`), as the seeds call them.
pub fn tools_dir(tag: &str) -> PathBuf {
    runtime_dir(tag).join("bin")
}

/// Makes the tools' directory, readable by every user (`weft exec` runs commands as the
/// invoking user); returns the runtime directory it is in.
fn tools(tag: &str, weft: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let dir = tools_dir(tag);
    let fail = |what: &str| MeshError::io(format!("cannot {what} {}", dir.display()));
    std::fs::create_dir_all(&dir).map_err(fail("create"))?;
    for d in [runtime_dir(tag), dir.clone()] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755))
            .map_err(fail("open"))?;
    }
    let link = dir.join("fortio");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(weft, &link).map_err(fail("link the fortio tool in"))?;
    Ok(runtime_dir(tag))
}

/// What `weft up` runs and watches.
struct Started {
    mesh: Mesh,
    control_plane: Child,
    ingress: Child,
    /// The egress gateway and the demos' workloads.
    workloads: Vec<Running>,
}

async fn start(
    opts: &UpOptions,
    state: &StateDir,
    info: &MeshInfo,
    demos: &[&Demo],
    say: &(dyn Fn(&str) + Sync),
) -> Result<Started> {
    say(&format!(
        "Starting a mesh on {} (bridge {}, state {}) ...",
        info.subnet,
        info.bridge,
        state.root().display()
    ));
    net::create_bridge(info).await?;
    net::allow_bridged(&info.bridge).await?;
    let control_plane = start_control_plane(state, info).await?;
    say(&format!(
        "  control plane     ready  API http://{}, xDS {}",
        info.api, info.xds
    ));
    let api = api::ApiClient::new(info.api, state.root())?;
    let mesh = Mesh {
        state: state.clone(),
        info: info.clone(),
        api,
    };
    let ingress = start_ingress(&mesh).await?;
    say("  ingress gateway   ready  on 127.0.0.1 (labels istio=ingressgateway)");
    let egress = start_egress(&mesh).await?;
    say(&format!(
        "  egress gateway    ready  {} (Service {EGRESS}.{SYSTEM_NAMESPACE})",
        ip_of(&egress.record)
    ));
    let mut started = Started {
        mesh,
        control_plane,
        ingress,
        workloads: vec![egress],
    };
    start_demos(&mut started, demos, say).await?;
    let proxies = 2 + started
        .workloads
        .iter()
        .filter(|w| w.record.sidecar)
        .count();
    wait_synced(&started.mesh, proxies).await?;
    say(&try_text(opts, info, demos));
    Ok(started)
}

fn ip_of(r: &WorkloadRecord) -> String {
    r.ip.map_or_else(|| "host".into(), |ip| ip.to_string())
}

/// Starts a process of the mesh in the host namespace, recorded as a workload of
/// istio-system (so `weft ps` and `weft logs` show it).
fn start_host_process(
    state: &StateDir,
    name: &str,
    labels: &[(&str, &str)],
    argv: Vec<String>,
) -> Result<(Child, WorkloadRecord)> {
    let log = state
        .logs_dir()
        .join(format!("{SYSTEM_NAMESPACE}.{name}.log"));
    std::fs::write(&log, b"").map_err(MeshError::io(format!("cannot create {}", log.display())))?;
    let (child, proc) = process::spawn(&Launch {
        netns: None,
        user: User::Root,
        argv: &argv,
        env: &[("NO_COLOR".into(), "1".into())],
        output: Output::Log(&log),
        stdin: false,
        own_group: true,
    })?;
    let record = WorkloadRecord {
        namespace: SYSTEM_NAMESPACE.into(),
        name: name.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        service_account: format!("{name}-service-account"),
        owner: Some(Proc::me()),
        app: Some(proc),
        app_log: log,
        hostname: name.into(),
        created: state::now(),
        ..WorkloadRecord::default()
    };
    state.write_record(&record)?;
    Ok((child, record))
}

async fn start_control_plane(state: &StateDir, info: &MeshInfo) -> Result<Child> {
    let argv = vec![
        info.proxy_binary.display().to_string(),
        "control-plane".into(),
        "--state-dir".into(),
        state.root().display().to_string(),
        "--listen".into(),
        info.api.to_string(),
        "--xds-listen".into(),
        info.xds.to_string(),
    ];
    let (child, record) = start_host_process(
        state,
        CONTROL_PLANE,
        &[("app", "istiod"), ("istio", "pilot")],
        argv,
    )?;
    let mut child = Some(child);
    workload::wait_ready(&mut child, info.api, "the control plane", &record.app_log).await?;
    child.ok_or_else(|| MeshError::Invalid("the control plane's process is gone".into()))
}

/// Flags that make a gateway open ports below 1024 at an offset.
fn offset_args(info: &MeshInfo) -> Vec<String> {
    info.low_port_offset
        .map(|o| vec!["--low-port-offset".to_string(), o.to_string()])
        .unwrap_or_default()
}

async fn start_ingress(mesh: &Mesh) -> Result<Child> {
    let info = &mesh.info;
    let mut argv: Vec<String> = [
        info.proxy_binary.display().to_string(),
        "proxy".into(),
        "--control-plane".into(),
        info.xds.to_string(),
        "--labels".into(),
        "istio=ingressgateway,app=istio-ingressgateway".into(),
        "--namespace".into(),
        SYSTEM_NAMESPACE.into(),
        "--name".into(),
        format!("{INGRESS}.{SYSTEM_NAMESPACE}"),
        "--service-account".into(),
        format!("{INGRESS}-service-account"),
        "--listen-address".into(),
        "127.0.0.1".into(),
        "--admin".into(),
        "127.0.0.1:15000".into(),
        "--readiness".into(),
        "127.0.0.1:15021".into(),
    ]
    .into();
    argv.extend(offset_args(info));
    let labels = [("app", INGRESS), ("istio", "ingressgateway")];
    let (child, record) = start_host_process(&mesh.state, INGRESS, &labels, argv)?;
    let mut child = Some(child);
    let ready = SocketAddr::from(([127, 0, 0, 1], 15021));
    workload::wait_ready(&mut child, ready, "the ingress gateway", &record.app_log).await?;
    child.ok_or_else(|| MeshError::Invalid("the ingress gateway's process is gone".into()))
}

/// The egress gateway: a workload without sidecar in istio-system, behind the Service
/// `istio-egressgateway` (80 and 443, as Istio's), so sidecars route to it as in Istio's
/// egress-gateway task.
async fn start_egress(mesh: &Mesh) -> Result<Running> {
    let info = &mesh.info;
    let offset = |p: u16| p + info.low_port_offset.unwrap_or(0);
    let mut command: Vec<String> = [
        info.proxy_binary.display().to_string(),
        "proxy".into(),
        "--control-plane".into(),
        info.xds.to_string(),
        "--labels".into(),
        "istio=egressgateway,app=istio-egressgateway".into(),
        "--namespace".into(),
        SYSTEM_NAMESPACE.into(),
        "--name".into(),
        format!("{EGRESS}.{SYSTEM_NAMESPACE}"),
        "--service-account".into(),
        format!("{EGRESS}-service-account"),
        "--listen-address".into(),
        "0.0.0.0".into(),
        "--admin".into(),
        "$(POD_IP):15000".into(),
    ]
    .into();
    command.extend(offset_args(info));
    let spec = WorkloadSpec {
        name: EGRESS.into(),
        namespace: SYSTEM_NAMESPACE.into(),
        labels: BTreeMap::from([
            ("app".to_string(), EGRESS.to_string()),
            ("istio".to_string(), "egressgateway".to_string()),
        ]),
        service_account: format!("{EGRESS}-service-account"),
        ports: vec![
            PortSpec {
                port: 80,
                target: offset(80),
                protocol: Some("http2".into()),
            },
            PortSpec {
                port: 443,
                target: offset(443),
                protocol: Some("https".into()),
            },
        ],
        service: Some(EGRESS.into()),
        sidecar: false,
        command,
        env: vec![("NO_COLOR".into(), "1".into())],
        user: User::Root,
        interactive: false,
    };
    let running = workload::start(mesh, &spec).await?;
    let ready = SocketAddr::new(
        running.record.ip.map_or([0, 0, 0, 0].into(), Into::into),
        15021,
    );
    let log = running.record.app_log.clone();
    if let Err(e) = workload::wait_ready(&mut None, ready, "the egress gateway", &log).await {
        running.stop(Duration::from_secs(2)).await;
        return Err(e);
    }
    Ok(running)
}

/// Applies each demo's config, then starts all their workloads at once.
async fn start_demos(
    started: &mut Started,
    demos: &[&Demo],
    say: &(dyn Fn(&str) + Sync),
) -> Result<()> {
    let mesh = &started.mesh;
    for demo in demos {
        for (source, yaml) in demo.config {
            mesh.api.apply("default", yaml, source).await?;
        }
    }
    let weft = mesh.info.proxy_binary.display().to_string();
    let user = User::invoking();
    let mut tasks = JoinSet::new();
    for w in demos::workloads(demos) {
        let spec = w.spec(&weft, user)?;
        let mesh = mesh.clone();
        tasks.spawn(async move { workload::start(&mesh, &spec).await });
    }
    while let Some(joined) = tasks.join_next().await {
        let running = joined
            .map_err(|e| MeshError::Invalid(format!("a workload's start-up task failed: {e}")))??;
        let r = &running.record;
        say(&format!(
            "  {:<17} ready  {:<12} {:<8} {} (sidecar {})",
            r.name,
            ip_of(r),
            r.namespace,
            r.labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
            if r.sidecar { "ready" } else { "none" }
        ));
        started.workloads.push(running);
    }
    Ok(())
}

/// Waits until `expected` proxies are connected and every one has ACKed all it should
/// have, and that has held for longer than the control plane batches changes (1 s), so
/// a push still being batched cannot hide behind it: then a request sent right away (the
/// printed `curl`) finds routes and endpoints everywhere.
async fn wait_synced(mesh: &Mesh, expected: usize) -> Result<()> {
    const QUIET: Duration = Duration::from_millis(1500);
    const LIMIT: Duration = Duration::from_secs(60);
    let start = tokio::time::Instant::now();
    let mut synced_since: Option<tokio::time::Instant> = None;
    loop {
        let now = tokio::time::Instant::now();
        let syncz = mesh.api.syncz().await?;
        let proxies = syncz["proxies"].as_array().cloned().unwrap_or_default();
        let all_synced = proxies.len() >= expected
            && proxies.iter().all(|p| {
                p["types"]
                    .as_array()
                    .is_some_and(|ts| ts.iter().all(|t| t["state"] == "SYNCED"))
            });
        match (all_synced, synced_since) {
            (false, _) => synced_since = None,
            (true, None) => synced_since = Some(now),
            (true, Some(since)) if now - since >= QUIET => return Ok(()),
            (true, Some(_)) => {}
        }
        if now - start >= LIMIT {
            return Err(MeshError::NotReady {
                what: format!("the config of the mesh's {expected} proxies"),
                secs: LIMIT.as_secs(),
                detail: format!(" (see `weft proxy-status`): {syncz}"),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The lines printed once the mesh is up.
fn try_text(opts: &UpOptions, info: &MeshInfo, demos: &[&Demo]) -> String {
    let weft = &opts.command_name;
    let port80 = 80 + info.low_port_offset.unwrap_or(0);
    let mut out = String::from("\nThe mesh is up.\n");
    out.push_str(&format!(
        "  Gateway servers listen on 127.0.0.1:PORT{}.\n",
        match info.low_port_offset {
            Some(o) => format!(
                " (ports below 1024 at {o}+PORT: 80 -> {port80}, 443 -> {})",
                443 + o
            ),
            None => String::new(),
        }
    ));
    out.push_str("Try:\n");
    for demo in demos {
        for line in demo.try_lines {
            out.push_str("  ");
            out.push_str(
                &line
                    .replace("{weft}", weft)
                    .replace("{port80}", &port80.to_string()),
            );
            out.push('\n');
        }
    }
    for line in [
        "{weft} ps",
        "{weft} proxy-status",
        "{weft} run --name hello --port 8080/http -- python3 -m http.server 8080",
        "{weft} logs istiod -n istio-system",
    ] {
        out.push_str("  ");
        out.push_str(&line.replace("{weft}", weft));
        out.push('\n');
    }
    out.push_str("Press Ctrl-C to stop the mesh (or run `weft down` from another terminal).");
    out
}

/// Watches the mesh until a core process dies (an error) or forever; workloads whose app
/// exits are removed.
async fn watch(started: &mut Started, say: &(dyn Fn(&str) + Sync)) -> Result<()> {
    let mut tick = tokio::time::interval(TICK);
    loop {
        tick.tick().await;
        for (child, what, name) in [
            (
                &mut started.control_plane,
                "the control plane",
                CONTROL_PLANE,
            ),
            (&mut started.ingress, "the ingress gateway", INGRESS),
        ] {
            if let Ok(Some(status)) = child.try_wait() {
                let log = started
                    .mesh
                    .state
                    .logs_dir()
                    .join(format!("{SYSTEM_NAMESPACE}.{name}.log"));
                return Err(MeshError::Exited {
                    what: format!("{what} ({status}); the mesh cannot go on"),
                    detail: process::log_tail(&log, 15),
                });
            }
        }
        let mut i = 0;
        while i < started.workloads.len() {
            if let Some(status) = started.workloads[i].try_wait() {
                let running = started.workloads.swap_remove(i);
                say(&format!(
                    "  {}/{} exited ({status}); removed it (see `weft logs` before the next `weft up`)",
                    running.record.namespace, running.record.name
                ));
                running.stop(Duration::from_secs(1)).await;
            } else {
                i += 1;
            }
        }
        remove_orphans(&started.mesh, say).await;
        crate::legacy::refresh_all(&started.mesh).await;
    }
}

/// Removes the workloads of `weft run`s that died without cleaning up (SIGKILL): their
/// sidecar, app and namespace would otherwise stay, registered, until `weft down`.
async fn remove_orphans(mesh: &Mesh, say: &(dyn Fn(&str) + Sync)) {
    for r in mesh.state.records() {
        if r.owner.is_some_and(|o| !o.alive()) {
            say(&format!(
                "  {}/{}: its `weft run` is gone; removing the workload",
                r.namespace, r.name
            ));
            crate::down::remove_workload(&mesh.state, &r, Some(&mesh.api)).await;
        }
    }
}
