//! `weft proxy`: runs the data plane in the foreground until Ctrl-C, SIGTERM or the admin
//! API's `/quitquitquit`.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use weft_proxy::{ProxyIdentity, ProxyOptions};

#[derive(Args)]
pub struct ProxyArgs {
    /// What the proxy is. Only `gateway` is served so far; sidecars come with traffic capture.
    #[arg(long, value_enum, default_value = "gateway")]
    mode: Mode,
    /// A directory of Istio YAML to serve (Gateway, VirtualService, DestinationRule,
    /// ServiceEntry, WorkloadEntry); changes are picked up while running.
    #[arg(long, env = "WEFT_CONFIG_DIR")]
    config_dir: PathBuf,
    /// The namespace of the proxy's workload.
    #[arg(long, default_value = "istio-system")]
    namespace: String,
    /// The proxy's labels, which Gateway selectors match (`istio=ingressgateway`).
    #[arg(long, value_delimiter = ',', default_value = "istio=ingressgateway")]
    labels: Vec<String>,
    /// The address gateway ports are opened on.
    #[arg(long, default_value = "127.0.0.1")]
    listen_address: IpAddr,
    /// The admin API's address.
    #[arg(long, default_value = "127.0.0.1:15000")]
    admin: SocketAddr,
    /// Log level (error, warn, info, debug, trace) or a tracing filter.
    #[arg(long, env = "WEFT_LOG", default_value = "info")]
    log: String,
}

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    Gateway,
}

pub fn run(args: ProxyArgs) -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&args.log))
        .with_writer(std::io::stderr)
        .init();
    let Mode::Gateway = args.mode;
    let mut labels = BTreeMap::new();
    for pair in args.labels.iter().filter(|l| !l.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .with_context(|| format!("label {pair:?} must be written key=value"))?;
        labels.insert(k.to_string(), v.to_string());
    }
    anyhow::ensure!(
        args.config_dir.is_dir(),
        "config directory {} does not exist",
        args.config_dir.display()
    );
    let opts = ProxyOptions {
        config_dir: args.config_dir,
        identity: ProxyIdentity {
            namespace: args.namespace,
            labels,
        },
        listen_address: args.listen_address,
        admin: args.admin,
        poll: Duration::from_millis(500),
    };
    tracing::info!(?opts, "starting proxy");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime
        .block_on(weft_proxy::run(opts, shutdown_signal()))
        .context("running the proxy")?;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = ctrl_c.await;
}
