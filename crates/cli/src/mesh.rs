//! `weft up`, `weft down` and `weft run`: the one-host mesh (crates/mesh) from the
//! command line. `weft exec`, `weft ps` and `weft logs` are in `mesh/inspect.rs`.

mod inspect;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use weft_mesh::process::User;
use weft_mesh::up::{DEFAULT_SUBNET, UpOptions};
use weft_mesh::{Mesh, PortSpec, StateDir, WorkloadSpec, preflight};

pub use inspect::{ExecArgs, LogsArgs, PsArgs, exec, logs, ps};

/// The state directory of the mesh's commands.
#[derive(Args)]
pub struct StateArg {
    /// The mesh's state directory: the control plane's files and `mesh/` (the workload
    /// records and logs) [default: $WEFT_STATE_DIR, else $XDG_STATE_HOME/weft, else
    /// ~/.local/state/weft].
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

impl StateArg {
    pub(crate) fn dir(&self) -> anyhow::Result<PathBuf> {
        crate::control_plane::state_dir(self.state_dir.as_deref())
    }
}

#[derive(Args)]
pub struct UpArgs {
    /// Start a demo: bookinfo, httpbin, helloworld, tcp-echo, customers or hello-world (repeat the
    /// flag for several); `sleep` comes with every demo.
    #[arg(long = "demo", value_name = "NAME")]
    demos: Vec<String>,
    /// The private range the mesh's workloads get addresses from (the bridge takes the
    /// first one). Nothing in it is routed off this machine.
    #[arg(long, default_value = DEFAULT_SUBNET, value_parser = parse_subnet)]
    subnet: weft_mesh::Ipv4Net,
    /// The control plane's API address (`weft apply`, `weft get`, ... talk to it).
    #[arg(long, default_value = "127.0.0.1:15014")]
    api_listen: SocketAddrV4,
    /// What sidecars do with traffic for destinations outside the registry (Istio's mesh
    /// config `outboundTrafficPolicy.mode`): ALLOW_ANY passes it through, REGISTRY_ONLY
    /// refuses it (502) until a ServiceEntry declares the destination.
    #[arg(long, value_enum, default_value = "ALLOW_ANY", ignore_case = true)]
    outbound_policy: OutboundPolicy,
    #[command(flatten)]
    state: StateArg,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum OutboundPolicy {
    #[value(name = "ALLOW_ANY")]
    AllowAny,
    #[value(name = "REGISTRY_ONLY")]
    RegistryOnly,
}

impl OutboundPolicy {
    fn as_str(self) -> &'static str {
        match self {
            OutboundPolicy::AllowAny => "ALLOW_ANY",
            OutboundPolicy::RegistryOnly => "REGISTRY_ONLY",
        }
    }
}

fn parse_subnet(text: &str) -> Result<weft_mesh::Ipv4Net, String> {
    let net: weft_mesh::Ipv4Net = text
        .parse()
        .map_err(|_| format!("{text:?} is not a subnet like {DEFAULT_SUBNET}"))?;
    if !net.network().is_private() {
        return Err(format!(
            "{text} is not a private range (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16)"
        ));
    }
    if !(8..=28).contains(&net.prefix_len()) {
        return Err(format!("{text}: the prefix length must be from /8 to /28"));
    }
    Ok(net.trunc())
}

#[derive(Args)]
pub struct DownArgs {
    #[command(flatten)]
    state: StateArg,
}

#[derive(Args)]
pub struct RunArgs {
    /// The workload's name (like a Deployment's).
    #[arg(long)]
    name: String,
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// Labels, `key=value,...` (`app` defaults to the name).
    #[arg(long, value_delimiter = ',')]
    labels: Vec<String>,
    #[arg(long, default_value = "default")]
    service_account: String,
    /// A port the program serves: `PORT[:TARGET][/PROTOCOL]` (the Service's port, the
    /// program's if different, and http, http2, grpc, https, tls or tcp). Repeatable.
    #[arg(long = "port", value_name = "PORT")]
    ports: Vec<String>,
    /// The Kubernetes Service the ports are declared in [default: the app label].
    #[arg(long)]
    service: Option<String>,
    /// Run outside the mesh: no sidecar, no capture (Istio's "legacy" workloads).
    #[arg(long)]
    no_sidecar: bool,
    #[command(flatten)]
    state: StateArg,
    /// The program and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) async fn interrupted() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// How to call `weft` in the lines printed to try: with `sudo` when run through it,
/// with the state directory when it is not the default.
fn command_name(dir: &Path) -> String {
    let sudo = if std::env::var_os("SUDO_USER").is_some() {
        "sudo "
    } else {
        ""
    };
    let default = weft_control_plane::state::default_dir();
    if default.as_deref() == Some(dir) {
        format!("{sudo}weft")
    } else {
        format!("{sudo}WEFT_STATE_DIR={} weft", dir.display())
    }
}

pub fn up(args: UpArgs) -> anyhow::Result<ExitCode> {
    let dir = args.state.dir()?;
    let weft = std::env::current_exe().context("cannot find the weft binary's path")?;
    let opts = UpOptions {
        command_name: command_name(&dir),
        state_dir: dir,
        subnet: args.subnet,
        demos: args.demos,
        weft,
        api: args.api_listen,
        // Gateway ports below 1024 at 8000+P (80 -> 8080), so no other root service's port
        // is in the way and the mapping is the same everywhere.
        low_port_offset: Some(8000),
        outbound_policy: args.outbound_policy.as_str().to_string(),
    };
    runtime()?.block_on(weft_mesh::up::up(opts, interrupted(), &say))?;
    Ok(ExitCode::SUCCESS)
}

pub fn down(args: &DownArgs) -> anyhow::Result<ExitCode> {
    preflight::check("down")?;
    let state = StateDir::new(&args.state.dir()?);
    let removed = runtime()?.block_on(weft_mesh::down::down(&state))?;
    if removed.is_empty() {
        say(&format!(
            "No mesh to remove for {}.",
            state.root().display()
        ));
        return Ok(ExitCode::SUCCESS);
    }
    if removed.stopped_up {
        say("Stopped `weft up` (it tore its mesh down).");
    }
    if !removed.workloads.is_empty() || removed.namespaces > 0 || removed.links > 0 {
        say(&format!(
            "Removed what was left: {} workloads ({}), {} namespaces, {} interfaces.",
            removed.workloads.len(),
            removed.workloads.join(", "),
            removed.namespaces,
            removed.links
        ));
    }
    Ok(ExitCode::SUCCESS)
}

fn run_spec(args: &RunArgs) -> anyhow::Result<WorkloadSpec> {
    let mut labels = BTreeMap::new();
    for pair in args.labels.iter().filter(|l| !l.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .with_context(|| format!("label {pair:?} must be written key=value"))?;
        labels.insert(k.to_string(), v.to_string());
    }
    let ports = args
        .ports
        .iter()
        .map(|p| PortSpec::parse(p))
        .collect::<Result<Vec<_>, _>>()?;
    let service = args.service.clone().unwrap_or_else(|| {
        labels
            .get("app")
            .cloned()
            .unwrap_or_else(|| args.name.clone())
    });
    Ok(WorkloadSpec {
        name: args.name.clone(),
        namespace: args.namespace.clone(),
        labels,
        service_account: args.service_account.clone(),
        service: (!ports.is_empty()).then_some(service),
        ports,
        sidecar: !args.no_sidecar,
        command: args.command.clone(),
        env: Vec::new(),
        user: User::invoking(),
        interactive: true,
    })
}

pub fn run(args: &RunArgs) -> anyhow::Result<ExitCode> {
    preflight::check("run")?;
    let spec = run_spec(args)?;
    let mesh = Mesh::attach(&args.state.dir()?)?;
    runtime()?.block_on(async {
        let mut running = weft_mesh::workload::start(&mesh, &spec).await?;
        let r = &running.record;
        eprintln!(
            "weft: {}/{} runs at {} ({}); Ctrl-C stops it",
            r.namespace,
            r.name,
            r.ip.map(|ip| ip.to_string()).unwrap_or_default(),
            if r.sidecar {
                "sidecar ready"
            } else {
                "no sidecar"
            }
        );
        let status = tokio::select! {
            s = running.wait() => s,
            () = interrupted() => {
                running.stop_app(Duration::from_secs(10)).await;
                running.wait().await
            }
        };
        running.stop_app(Duration::from_secs(1)).await;
        running.finish().await;
        Ok(exit_code(status))
    })
}

/// The program's exit code, or 128 + the signal that ended it (as a shell reports it).
fn exit_code(status: Option<std::process::ExitStatus>) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    let code = match status {
        Some(s) => s
            .code()
            .or_else(|| s.signal().map(|sig| 128 + sig))
            .unwrap_or(1),
        None => 1,
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
