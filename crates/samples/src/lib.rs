//! Weft's demo workloads (`weft sample APP`): Istio's bookinfo, httpbin, helloworld, tcp-echo,
//! sleep and fortio, and the Istio course's web-frontend and customers, each answering the way
//! the original does so that the seeds' walkthroughs play out the same on a Weft mesh.
//!
//! Every server listens on 0.0.0.0, logs one line per request to stdout, names its instance
//! after `HOSTNAME` and returns once the `shutdown` future it is handed completes.

pub mod bookinfo;
mod client;
mod clock;
pub mod customers;
pub mod fortio;
mod headers;
pub mod helloworld;
pub mod httpbin;
mod server;
pub mod tcp_echo;

use std::future::Future;
use std::net::SocketAddr;

/// Why an app could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "cannot listen on {addr}: {source} (is another program using the port? pick one with --port)"
    )]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("bad upstream URL {url:?}: {reason} (expected http://HOST[:PORT])")]
    Url { url: String, reason: String },
    #[error("cannot wait for signals: {0}")]
    Signals(std::io::Error),
    /// A command line the app cannot run (fortio's Go-style flags are parsed here).
    #[error("{0}")]
    Usage(String),
}

/// The instance name an app reports (bookinfo's `podname`, helloworld's `instance`): the
/// `HOSTNAME` the runtime sets (e.g. `reviews-v2-5f8c9`), else the workload's own name.
pub fn instance_name(workload: &str) -> String {
    match std::env::var("HOSTNAME") {
        Ok(name) if !name.trim().is_empty() => name.trim().to_string(),
        _ => workload.to_string(),
    }
}

/// Completes on the first SIGTERM or SIGINT (Ctrl-C): the `shutdown` future a command hands
/// to an app. Fails only when the signal handlers cannot be installed.
pub fn termination() -> Result<impl Future<Output = ()>, Error> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(Error::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(Error::Signals)?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

/// `weft sample sleep`: does nothing until signalled, a client to `weft exec` into (Istio's
/// `sleep` sample runs `sleep infinity` for the same purpose).
pub async fn sleep(shutdown: impl Future<Output = ()>) {
    server::log_line(format_args!(
        "sleep: idle until SIGTERM or Ctrl-C; run clients in this workload with `weft exec`"
    ));
    shutdown.await;
}
