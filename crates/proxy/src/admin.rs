//! The admin server (127.0.0.1:15000 by default, like Envoy's): the compiled tables as
//! JSON, the clusters and listeners, counters, the log level, liveness, and a way to stop
//! the proxy; and the readiness server (0.0.0.0:15021 by default, like Istio's
//! `/healthz/ready`).

use std::convert::Infallible;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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

/// What the admin API acts on besides the shared state.
pub struct Admin {
    /// Signalled by `/quitquitquit`.
    pub stop: watch::Sender<bool>,
    /// Changes the log level (`/logging?level=`), when the process gave a way to.
    pub logging: Option<LogControl>,
}

/// Serves the admin API until the task is aborted.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, admin: Admin) {
    let admin = Arc::new(admin);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (shared, admin) = (shared.clone(), admin.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let resp = answer(&req, &shared, &admin);
                async move { Ok::<_, Infallible>(resp) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Serves `/healthz/ready` until the task is aborted: 200 once `ready` is set (config
/// loaded, listeners up), 503 before and while draining.
pub async fn serve_readiness(listener: TcpListener, shared: Arc<Shared>, ready: Arc<AtomicBool>) {
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

fn readiness(req: &Request<Incoming>, shared: &Shared, ready: &AtomicBool) -> Response<Body> {
    if req.uri().path() != "/healthz/ready" {
        return text(StatusCode::NOT_FOUND, "try /healthz/ready\n".into());
    }
    if shared.drain.is_draining() {
        text(StatusCode::SERVICE_UNAVAILABLE, "draining\n".into())
    } else if ready.load(Ordering::Acquire) {
        text(StatusCode::OK, String::new())
    } else {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: listeners starting\n".into(),
        )
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

fn answer(req: &Request<Incoming>, shared: &Shared, admin: &Admin) -> Response<Body> {
    let tables = shared.tables.load();
    match (req.method(), req.uri().path()) {
        // Envoy's server states: LIVE, or DRAINING (503) once shutdown began.
        (&Method::GET, "/ready") if shared.drain.is_draining() => {
            text(StatusCode::SERVICE_UNAVAILABLE, "DRAINING\n".into())
        }
        (&Method::GET, "/ready") => text(StatusCode::OK, "LIVE\n".into()),
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
