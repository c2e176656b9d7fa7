//! The admin server (127.0.0.1:15000 by default, like Envoy's): the compiled tables as
//! JSON, the clusters and listeners, counters, the log level, liveness, and a way to stop
//! the proxy; and the readiness server (0.0.0.0:15021 by default, like Istio's
//! `/healthz/ready`).

use std::convert::Infallible;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Instant;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::http::{Body, Shared};
use crate::run::LogControl;
use crate::tables::Tables;

/// How far a proxy has come since it started: the admin API and readiness answer from
/// the start, before any config (a proxy whose control plane is down still says why it
/// is not ready).
#[derive(Debug, Default)]
pub struct Startup(AtomicU8);

/// The stages of [`Startup`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// No config has arrived yet (Envoy's PRE_INITIALIZING).
    NoConfig,
    /// The first config is being applied: listeners opening (Envoy's INITIALIZING).
    Starting,
    /// Serving (Envoy's LIVE).
    Live,
}

impl Startup {
    pub fn set(&self, stage: Stage) {
        let n = match stage {
            Stage::NoConfig => 0,
            Stage::Starting => 1,
            Stage::Live => 2,
        };
        self.0.store(n, Ordering::Release);
    }

    pub fn stage(&self) -> Stage {
        match self.0.load(Ordering::Acquire) {
            0 => Stage::NoConfig,
            1 => Stage::Starting,
            _ => Stage::Live,
        }
    }
}

/// What the admin API acts on besides the shared state.
pub struct Admin {
    /// Signalled by `/quitquitquit`.
    pub stop: watch::Sender<bool>,
    /// Changes the log level (`/logging?level=`), when the process gave a way to.
    pub logging: Option<LogControl>,
    /// Where start-up is, for `/ready`.
    pub startup: Arc<Startup>,
}

/// Serves the admin API until the task is aborted.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, admin: Admin) {
    let admin = Arc::new(admin);
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        // A client of this network namespace: loopback, or one of its own addresses (a
        // sidecar's admin API listens on the pod's address, where its neighbours on the
        // bridge reach it too).
        let local =
            peer.ip().is_loopback() || stream.local_addr().is_ok_and(|a| a.ip() == peer.ip());
        let (shared, admin) = (shared.clone(), admin.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let resp = answer(&req, &shared, &admin, local);
                async move { Ok::<_, Infallible>(resp) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Serves `/healthz/ready` until the task is aborted: 200 once the first config is
/// applied and the listeners are up, 503 before (saying which step it waits for) and
/// while draining.
pub async fn serve_readiness(listener: TcpListener, shared: Arc<Shared>, ready: Arc<Startup>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (shared, ready) = (shared.clone(), ready.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let resp = readiness(&req, &shared, &ready);
                async move { Ok::<_, Infallible>(resp) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn readiness(req: &Request<Incoming>, shared: &Shared, ready: &Startup) -> Response<Body> {
    if req.uri().path() != "/healthz/ready" {
        return text(StatusCode::NOT_FOUND, "try /healthz/ready\n".into());
    }
    if shared.drain.is_draining() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "draining\n".into());
    }
    match ready.stage() {
        Stage::Live => text(StatusCode::OK, String::new()),
        Stage::NoConfig => text(StatusCode::SERVICE_UNAVAILABLE, "no config yet\n".into()),
        Stage::Starting => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: listeners starting\n".into(),
        ),
    }
}

/// `/logging?level=debug`: the level (or tracing filter) to log at from now on.
fn set_log_level(req: &Request<Incoming>, logging: Option<&LogControl>) -> Response<Body> {
    let Some(logging) = logging else {
        return text(
            StatusCode::NOT_IMPLEMENTED,
            "this process cannot change its log level\n".into(),
        );
    };
    let level = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("level="));
    let Some(level) = level.filter(|l| !l.is_empty()) else {
        return text(
            StatusCode::BAD_REQUEST,
            "usage: POST /logging?level=debug\n".into(),
        );
    };
    match logging.set(level) {
        Ok(()) => {
            tracing::info!(level, "log level changed");
            text(StatusCode::OK, format!("log level: {level}\n"))
        }
        Err(e) => text(
            StatusCode::BAD_REQUEST,
            format!("invalid level {level:?}: {e}\n"),
        ),
    }
}

/// Answers an admin request; `local` says whether the client is in the proxy's own
/// network namespace: only such a client may change anything (the POST paths), others
/// may read.
fn answer(req: &Request<Incoming>, shared: &Shared, admin: &Admin, local: bool) -> Response<Body> {
    if req.method() == Method::POST && !local {
        return text(
            StatusCode::FORBIDDEN,
            "the admin API takes POST requests only from the proxy's own network namespace \
             (loopback or its own addresses); from elsewhere it is read-only\n"
                .into(),
        );
    }
    let tables = shared.tables.load();
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/ready") => server_state(shared, &admin.startup),
        (&Method::GET, "/stats") => {
            text(StatusCode::OK, shared.stats.render(|c| tables.clusters.get(c).map(|c| c.limits)))
        }
        (&Method::POST, "/logging") => set_log_level(req, admin.logging.as_ref()),
        (&Method::GET, "/config_dump") => match serde_json::to_string_pretty(&**tables) {
            Ok(json) => text(StatusCode::OK, json),
            Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode the tables: {e}\n")),
        },
        (&Method::GET, "/clusters") => text(StatusCode::OK, clusters(&tables, shared)),
        (&Method::GET, "/listeners") => {
            let out: String = tables.listeners.keys().map(|p| format!("0.0.0.0_{p}::0.0.0.0:{p}\n")).collect();
            text(StatusCode::OK, out)
        }
        (&Method::POST, "/quitquitquit") => {
            let _ = admin.stop.send(true);
            text(StatusCode::OK, "OK\n".into())
        }
        _ => text(StatusCode::NOT_FOUND, "unknown admin path: try /config_dump, /clusters, /listeners, /ready, /stats, POST /logging?level=, POST /quitquitquit\n".into()),
    }
}

/// `/ready`: Envoy's server states: PRE_INITIALIZING before any config, INITIALIZING
/// while the first one is applied, LIVE (200), DRAINING once shutdown began.
fn server_state(shared: &Shared, startup: &Startup) -> Response<Body> {
    let state = match startup.stage() {
        _ if shared.drain.is_draining() => "DRAINING",
        Stage::NoConfig => "PRE_INITIALIZING",
        Stage::Starting => "INITIALIZING",
        Stage::Live => return text(StatusCode::OK, "LIVE\n".into()),
    };
    text(StatusCode::SERVICE_UNAVAILABLE, format!("{state}\n"))
}

/// `/clusters`: each endpoint's health flags as Envoy prints them, `healthy` or
/// `/failed_outlier_check` for one outlier detection has ejected.
fn clusters(tables: &Tables, shared: &Shared) -> String {
    let now = Instant::now();
    let mut out = String::new();
    for c in tables.clusters.values() {
        // Only a cluster with outlier detection can have an ejected endpoint.
        let health = c.outlier.is_some().then(|| shared.stats.cluster(&c.name));
        for e in &c.endpoints {
            let ejected = health
                .as_ref()
                .is_some_and(|s| s.health.is_ejected(&e.address, now));
            let flags = if ejected {
                "/failed_outlier_check"
            } else {
                "healthy"
            };
            let _ = writeln!(out, "{}::{}::health_flags::{flags}", c.name, e.address);
        }
    }
    out
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    let mut resp = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed(),
    );
    *resp.status_mut() = status;
    resp
}
