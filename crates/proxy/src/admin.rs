//! The admin server (127.0.0.1:15000 by default, like Envoy's): the compiled tables as
//! JSON, the clusters and listeners, readiness, and a way to stop the proxy.

use std::convert::Infallible;
use std::fmt::Write;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::http::{Body, Shared};

/// Serves the admin API until the task is aborted. `stop` is signalled by `/quitquitquit`.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, stop: watch::Sender<bool>) {
    let stop = Arc::new(stop);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (shared, stop) = (shared.clone(), stop.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let resp = answer(&req, &shared, &stop);
                async move { Ok::<_, Infallible>(resp) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn answer(req: &Request<Incoming>, shared: &Shared, stop: &watch::Sender<bool>) -> Response<Body> {
    let tables = shared.tables.load();
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/ready") => text(StatusCode::OK, "LIVE\n".into()),
        (&Method::GET, "/config_dump") => match serde_json::to_string_pretty(&**tables) {
            Ok(json) => text(StatusCode::OK, json),
            Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode the tables: {e}\n")),
        },
        (&Method::GET, "/clusters") => {
            let mut out = String::new();
            for c in tables.clusters.values() {
                for e in &c.endpoints {
                    let _ = writeln!(out, "{}::{}::health_flags::healthy", c.name, e.address);
                }
            }
            text(StatusCode::OK, out)
        }
        (&Method::GET, "/listeners") => {
            let out: String = tables.listeners.keys().map(|p| format!("0.0.0.0_{p}::0.0.0.0:{p}\n")).collect();
            text(StatusCode::OK, out)
        }
        (&Method::POST, "/quitquitquit") => {
            let _ = stop.send(true);
            text(StatusCode::OK, "OK\n".into())
        }
        _ => text(StatusCode::NOT_FOUND, "unknown admin path: try /config_dump, /clusters, /listeners, /ready, POST /quitquitquit\n".into()),
    }
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
