//! `weft`: the one binary of the Weft service mesh. Subcommands wire the crates together.

mod check;
mod control_plane;
mod create_secret;
mod kubectl;
mod mesh;
mod proxy;
mod proxy_config;
mod proxy_status;
mod sample;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Weft: a service mesh that speaks Istio's APIs.
#[derive(Parser)]
#[command(name = "weft", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate config files the way Istio would (like `istioctl validate`).
    Validate(check::ValidateArgs),
    /// Validate config and check objects against each other (like `istioctl analyze`).
    Analyze(check::AnalyzeArgs),
    /// Run a proxy (the data plane): a gateway, or a sidecar next to one workload.
    Proxy(Box<proxy::ProxyArgs>),
    /// Run the control plane: the config store and its local API, metrics on :15014.
    ControlPlane(control_plane::ControlPlaneArgs),
    /// Apply config to the control plane (like `kubectl apply -f`).
    Apply(kubectl::ApplyArgs),
    /// Create a Secret, e.g. a gateway's TLS certificate (like `kubectl create secret`).
    Create(create_secret::CreateArgs),
    /// Show config objects from the control plane (like `kubectl get`).
    Get(kubectl::GetArgs),
    /// Delete config objects from the control plane (like `kubectl delete`).
    Delete(kubectl::DeleteArgs),
    /// Show the proxies connected to the control plane and how far each is in sync
    /// (like `istioctl proxy-status`).
    ProxyStatus(proxy_status::ProxyStatusArgs),
    /// Show a proxy's listeners, routes, clusters, endpoints or secrets (like
    /// `istioctl proxy-config`).
    ProxyConfig(proxy_config::ProxyConfigArgs),
    /// Run a demo workload: bookinfo's productpage, details, reviews and ratings, httpbin,
    /// helloworld, tcp-echo, sleep, fortio, or the course's web-frontend and customers.
    Sample(sample::SampleArgs),
    /// Start a mesh on this host in the foreground: control plane, gateways, demos
    /// (needs root). Ctrl-C stops it and removes everything it made.
    Up(mesh::UpArgs),
    /// Stop the mesh `weft up` runs, or remove what a killed one left behind.
    Down(mesh::DownArgs),
    /// Run a program as a mesh workload: its own network namespace, a sidecar, a
    /// Service (like `kubectl run` with Istio's injection).
    Run(mesh::RunArgs),
    /// Run a command inside a workload's network namespace (like `kubectl exec`).
    Exec(mesh::ExecArgs),
    /// List the mesh's workloads (like `kubectl get pods`).
    Ps(mesh::PsArgs),
    /// Print a workload's output, or its sidecar's (like `kubectl logs`).
    Logs(mesh::LogsArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse_from(as_tool(std::env::args_os().collect()));
    let result = match cli.command {
        Command::Validate(args) => check::validate(&args),
        Command::Analyze(args) => check::analyze(&args),
        Command::Proxy(args) => proxy::run(*args),
        Command::ControlPlane(args) => control_plane::run(args),
        Command::Apply(args) => kubectl::apply(&args),
        Command::Create(args) => create_secret::run(&args),
        Command::Get(args) => kubectl::get(&args),
        Command::Delete(args) => kubectl::delete(&args),
        Command::ProxyStatus(args) => proxy_status::run(&args),
        Command::ProxyConfig(args) => proxy_config::run(&args),
        Command::Sample(args) => sample::run(args),
        Command::Up(args) => mesh::up(args),
        Command::Down(args) => mesh::down(&args),
        Command::Run(args) => mesh::run(&args),
        Command::Exec(args) => mesh::exec(&args),
        Command::Ps(args) => mesh::ps(&args),
        Command::Logs(args) => mesh::logs(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("weft: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Run under a demo tool's name (`weft up` links `fortio` to this binary on the PATH of
/// `weft exec`), the binary is that tool: `fortio load ...` is `weft sample fortio load ...`.
fn as_tool(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let name = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .map(|n| n.to_os_string());
    if name.as_deref() == Some("fortio".as_ref()) {
        args.splice(0..1, ["weft", "sample", "fortio"].map(Into::into));
    }
    args
}
