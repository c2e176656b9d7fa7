//! `weft control-plane`: runs the config store and the HTTP server (metrics and the local
//! API behind `weft apply/get/delete`) in the foreground until SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tracing_subscriber::EnvFilter;
use weft_control_plane::api::Api;
use weft_control_plane::push::{PushOptions, PushServer, VIPS_FILE, WORKLOADS_FILE};
use weft_control_plane::state;
use weft_control_plane::store::{ConfigStore, FileStore};

#[derive(Args)]
pub struct ControlPlaneArgs {
    /// Where the control plane keeps its state: `config/` (the config store, YAML files
    /// you may also edit by hand), `api-token`, the services' VIPs and the registered
    /// workloads [default: $WEFT_STATE_DIR, else $XDG_STATE_HOME/weft, else
    /// ~/.local/state/weft].
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// The address of the HTTP server: `/metrics` and the local API.
    #[arg(long, default_value = "127.0.0.1:15014")]
    listen: SocketAddr,
    /// The address proxies connect to for their config (the `DeltaConfig` gRPC stream,
    /// Istio's 15010).
    #[arg(long, default_value = "127.0.0.1:15010")]
    xds_listen: SocketAddr,
    /// How often `config/` is checked for files edited by hand (`500ms`, `1s`).
    #[arg(long, default_value = "1s", value_parser = crate::proxy::parse_duration)]
    watch_interval: Duration,
    /// Changes are pushed in batches: a batch ends once no change came for this long
    /// (istiod's PILOT_DEBOUNCE_AFTER)...
    #[arg(long, env = "PILOT_DEBOUNCE_AFTER", default_value = "100ms", value_parser = crate::proxy::parse_duration)]
    debounce_after: Duration,
    /// ...or this long after its first change (istiod's PILOT_DEBOUNCE_MAX, 10s there).
    #[arg(long, env = "PILOT_DEBOUNCE_MAX", default_value = "1s", value_parser = crate::proxy::parse_duration)]
    debounce_max: Duration,
    /// Log level (error, warn, info, debug, trace) or a tracing filter.
    #[arg(long, env = "WEFT_LOG", default_value = "info")]
    log: String,
}

/// The state directory: the one given, else the default.
pub fn state_dir(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    match given {
        Some(dir) => Ok(dir.to_path_buf()),
        None => state::default_dir().context(
            "no state directory: pass --state-dir DIR or set WEFT_STATE_DIR (HOME is not set either)",
        ),
    }
}

pub fn run(args: ControlPlaneArgs) -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(&args.log))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let dir = state_dir(args.state_dir.as_deref())?;
    state::create_dir(&dir)
        .with_context(|| format!("cannot create the state directory {}", dir.display()))?;
    let token = state::ensure_token(&dir).with_context(|| {
        format!(
            "cannot make the API token {}",
            dir.join(state::TOKEN_FILE).display()
        )
    })?;
    let store = FileStore::open(&dir)
        .with_context(|| format!("cannot open the config store in {}", dir.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(args, dir, token, store))
}

async fn serve(
    args: ControlPlaneArgs,
    dir: PathBuf,
    token: String,
    store: FileStore,
) -> anyhow::Result<ExitCode> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (is another control plane running? pick another address with --listen)",
                args.listen
            )
        })?;
    tracing::info!(
        listen = %args.listen,
        state_dir = %dir.display(),
        config = %store.dir().display(),
        objects = store.list(None, None).len(),
        "control plane ready"
    );
    let watcher = {
        let store = store.clone();
        let every = args.watch_interval;
        tokio::spawn(async move { store.watch_files(every).await })
    };
    let xds = tokio::net::TcpListener::bind(args.xds_listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} for proxies (pick another address with --xds-listen)",
                args.xds_listen
            )
        })?;
    tracing::info!(xds_listen = %args.xds_listen, "serving proxies");
    let store: Arc<dyn ConfigStore> = Arc::new(store);
    let mut registry = prometheus_client::registry::Registry::default();
    let push = PushServer::new(
        Arc::clone(&store),
        PushOptions {
            debounce_quiet: args.debounce_after,
            debounce_max: args.debounce_max,
            vips_file: Some(dir.join(VIPS_FILE)),
            workloads_file: Some(dir.join(WORKLOADS_FILE)),
            ..PushOptions::default()
        },
        &mut registry,
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let pusher = tokio::spawn(Arc::clone(&push).run());
    let xds_server = {
        let push = Arc::clone(&push);
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let stopped = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            if let Err(e) = push.serve(xds, stopped).await {
                tracing::error!(error = %e, "the push server stopped");
            }
        })
    };
    let api = Arc::new(Api::new(store, token, registry).with_push(push));
    api.serve(listener, shutdown_signal()).await;
    stop_tx.send_replace(true);
    // Open streams end with the server; proxies reconnect to the next control plane.
    let _ = tokio::time::timeout(Duration::from_secs(2), xds_server).await;
    pusher.abort();
    watcher.abort();
    tracing::info!("control plane stopped");
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            // Without a SIGTERM handler, Ctrl-C still stops it.
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = term => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
    }
}
