//! `weft proxy`: runs the data plane in the foreground until Ctrl-C, SIGTERM or the admin
//! API's `/quitquitquit`.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, reload};
use weft_proxy::{
    LogControl, OutboundPolicy, ProxyIdentity, ProxyMode, ProxyOptions, ServerLimits,
    SidecarOptions,
};

#[derive(Args)]
pub struct ProxyArgs {
    /// What the proxy is: a `gateway` serving the Gateways that select it, or a `sidecar`
    /// next to one workload, serving the traffic iptables redirects to ports 15001
    /// (outbound) and 15006 (inbound). Run a sidecar as UID 1337, the user Istio's
    /// capture rules exempt, or its own connections are captured again.
    #[arg(long, value_enum, default_value = "gateway")]
    mode: Mode,
    /// A directory of Istio YAML to serve (Gateway, VirtualService, DestinationRule,
    /// ServiceEntry, WorkloadEntry); changes are picked up while running.
    #[arg(
        long,
        env = "WEFT_CONFIG_DIR",
        required_unless_present = "control_plane",
        conflicts_with = "control_plane"
    )]
    config_dir: Option<PathBuf>,
    /// Take the config from the control plane's push stream at this address (its
    /// `--xds-listen`, e.g. 127.0.0.1:15010) instead of a directory. While it is away the
    /// proxy keeps serving the config it has, and reconnects.
    #[arg(long, value_name = "ADDR")]
    control_plane: Option<String>,
    /// The proxy's name as the control plane lists it (`weft proxy-status`)
    /// [default: <mode>-<pid>.<namespace>].
    #[arg(long)]
    name: Option<String>,
    /// The service account the workload runs as (its identity, for policies).
    #[arg(long, default_value = "default")]
    service_account: String,
    /// The namespace of the proxy's workload [default: istio-system for a gateway,
    /// default for a sidecar].
    #[arg(long)]
    namespace: Option<String>,
    /// The workload's labels, which Gateway and Sidecar selectors match [default for a
    /// gateway: istio=ingressgateway].
    #[arg(long, value_delimiter = ',')]
    labels: Option<Vec<String>>,
    /// Sidecar: what happens to traffic for destinations outside the registry (the
    /// mesh's `outboundTrafficPolicy.mode`; a Sidecar resource may override it).
    #[arg(long, value_enum, default_value = "ALLOW_ANY", ignore_case = true)]
    outbound_policy: Policy,
    /// Sidecar: how long to wait for a client's first bytes on ports that declare no
    /// protocol before treating the connection as opaque TCP (`100ms`, `1s`).
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    protocol_detection_timeout: Duration,
    /// The address gateway ports are opened on.
    #[arg(long, default_value = "127.0.0.1")]
    listen_address: IpAddr,
    /// Gateway: open server ports below 1024 this much higher, so no root is needed (with
    /// 8000, port 80 is served on 8080 and 443 on 8443); 0 opens them as declared. The
    /// mapping is logged and shown in the admin API's /config_dump (`published_port`).
    #[arg(long, default_value = "0", value_parser = clap::value_parser!(u16).range(0..=64512))]
    low_port_offset: u16,
    /// The admin API's address.
    #[arg(long, default_value = "127.0.0.1:15000")]
    admin: SocketAddr,
    /// Where readiness (`/healthz/ready`) is served: 200 once the config is loaded and
    /// the listeners are up, 503 while draining.
    #[arg(long, default_value = "0.0.0.0:15021")]
    readiness: SocketAddr,
    /// On SIGTERM, how long in-flight requests may take to finish before the proxy exits
    /// (Istio's terminationDrainDuration).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    drain_timeout: Duration,
    /// How long an HTTP/1.1 client may take to send a request's headers before its
    /// connection is closed.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    request_headers_timeout: Duration,
    /// How long a request's stream may see nothing happen (no answer yet, no next piece of
    /// the answer's body) before it is given up: 504 `SI` (Envoy's stream_idle_timeout).
    /// 0s turns it off.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    stream_idle_timeout: Duration,
    /// The largest request headers accepted, in KiB (Envoy's max_request_headers_kb):
    /// larger ones get 431.
    #[arg(long, default_value = "60", value_parser = clap::value_parser!(u32).range(1..=8192))]
    max_request_headers_kb: u32,
    /// Log level (error, warn, info, debug, trace) or a tracing filter; the admin API's
    /// `POST /logging?level=` changes it while running.
    #[arg(long, env = "WEFT_LOG", default_value = "info")]
    log: String,
}

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    Gateway,
    Sidecar,
}

#[derive(Clone, Copy, ValueEnum)]
enum Policy {
    #[value(name = "ALLOW_ANY")]
    AllowAny,
    #[value(name = "REGISTRY_ONLY")]
    RegistryOnly,
}

/// `250ms`, `2s`, `1m`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?} needs a unit: ms, s or m"))?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 100ms or 1s"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("{text:?}: the unit must be ms, s or m")),
    }
}

/// Logs to standard error through a filter that can be swapped while running; the
/// returned control swaps it.
fn init_logging(filter: &str) -> LogControl {
    let (filter, handle) = reload::Layer::new(EnvFilter::new(filter));
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .init();
    LogControl::new(move |level| {
        let filter = EnvFilter::try_new(level).map_err(|e| e.to_string())?;
        handle.reload(filter).map_err(|e| e.to_string())
    })
}

pub fn run(args: ProxyArgs) -> anyhow::Result<ExitCode> {
    let logging = init_logging(&args.log);
    let (mode, default_namespace, default_labels) = match args.mode {
        Mode::Gateway => (
            ProxyMode::Gateway,
            "istio-system",
            vec!["istio=ingressgateway".to_string()],
        ),
        Mode::Sidecar => (
            ProxyMode::Sidecar(SidecarOptions {
                outbound_policy: match args.outbound_policy {
                    Policy::AllowAny => OutboundPolicy::AllowAny,
                    Policy::RegistryOnly => OutboundPolicy::RegistryOnly,
                },
                protocol_detection_timeout: args.protocol_detection_timeout,
                ..SidecarOptions::default()
            }),
            "default",
            Vec::new(),
        ),
    };
    let mut labels = BTreeMap::new();
    for pair in args
        .labels
        .clone()
        .unwrap_or(default_labels)
        .iter()
        .filter(|l| !l.is_empty())
    {
        let (k, v) = pair
            .split_once('=')
            .with_context(|| format!("label {pair:?} must be written key=value"))?;
        labels.insert(k.to_string(), v.to_string());
    }
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| default_namespace.to_string());
    let source = source(&args, &namespace, &labels)?;
    let opts = ProxyOptions {
        mode,
        identity: ProxyIdentity { namespace, labels },
        listen_address: args.listen_address,
        low_port_offset: args.low_port_offset,
        admin: args.admin,
        readiness: args.readiness,
        drain_timeout: args.drain_timeout,
        limits: ServerLimits {
            max_request_headers_kb: args.max_request_headers_kb,
            request_headers_timeout: args.request_headers_timeout,
            stream_idle_timeout: Some(args.stream_idle_timeout).filter(|t| !t.is_zero()),
            ..ServerLimits::default()
        },
        logging: Some(logging),
    };
    tracing::info!(?opts, "starting proxy");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime
        .block_on(async {
            match source {
                Source::Directory(dir) => {
                    let source = weft_proxy::DirectorySource::new(dir, Duration::from_millis(500));
                    weft_proxy::run(opts, source, shutdown_signal()).await
                }
                // The stream's task needs the runtime: start it inside.
                Source::ControlPlane(xds) => {
                    let source = weft_proxy::XdsSource::start(*xds);
                    weft_proxy::run(opts, source, shutdown_signal()).await
                }
            }
        })
        .context("running the proxy")?;
    Ok(ExitCode::SUCCESS)
}

/// The admin address the control plane can reach: an unspecified bind address
/// (`0.0.0.0`) is reached on loopback.
fn admin_address(admin: SocketAddr) -> String {
    let mut addr = admin;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    addr.to_string()
}

/// Where the config comes from.
enum Source {
    Directory(PathBuf),
    ControlPlane(Box<weft_proxy::XdsOptions>),
}

fn source(
    args: &ProxyArgs,
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> anyhow::Result<Source> {
    if let Some(address) = &args.control_plane {
        let mode = match args.mode {
            Mode::Gateway => weft_xds::ProxyMode::Gateway,
            Mode::Sidecar => weft_xds::ProxyMode::Sidecar,
        };
        let name = args
            .name
            .clone()
            .unwrap_or_else(|| format!("{}-{}.{namespace}", mode.name(), std::process::id()));
        let node = weft_xds::Node {
            name,
            mode: mode as i32,
            namespace: namespace.to_string(),
            labels: labels.clone().into_iter().collect(),
            service_account: args.service_account.clone(),
            version: format!("weft {}", env!("CARGO_PKG_VERSION")),
            admin_address: admin_address(args.admin),
        };
        return Ok(Source::ControlPlane(Box::new(weft_proxy::XdsOptions::new(
            address.clone(),
            node,
        ))));
    }
    let dir = args
        .config_dir
        .clone()
        .context("pass --config-dir DIR or --control-plane ADDR")?;
    anyhow::ensure!(
        dir.is_dir(),
        "config directory {} does not exist",
        dir.display()
    );
    Ok(Source::Directory(dir))
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
