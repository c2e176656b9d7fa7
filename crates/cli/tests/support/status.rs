//! A backend that answers every request with the status it is set to and counts the
//! requests it gets, for tests that need an endpoint to fail and to see how much traffic
//! still reaches it.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};

use hyper::StatusCode;
use hyper_util::rt::TokioIo;

use super::{Backend, echo};

/// An echo backend whose answers carry a settable status, with a request count.
pub struct StatusBackend {
    pub port: u16,
    hits: Arc<AtomicUsize>,
    status: Arc<AtomicU16>,
    _backend: Backend,
}

impl StatusBackend {
    /// Starts `name` answering `status` (with [`echo`]'s body) until told otherwise.
    pub fn start(name: &str, status: u16) -> StatusBackend {
        let hits = Arc::new(AtomicUsize::new(0));
        let status = Arc::new(AtomicU16::new(status));
        let (h, s, n): (_, _, Arc<str>) = (hits.clone(), status.clone(), Arc::from(name));
        let backend = Backend::serve(move |listener| accept(listener, n, h, s));
        StatusBackend {
            port: backend.port,
            hits,
            status,
            _backend: backend,
        }
    }

    /// Requests received so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Answers `status` from now on.
    pub fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }
}

async fn accept(
    listener: tokio::net::TcpListener,
    name: Arc<str>,
    hits: Arc<AtomicUsize>,
    status: Arc<AtomicU16>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (name, hits, status) = (name.clone(), hits.clone(), status.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                hits.fetch_add(1, Ordering::SeqCst);
                let mut reply = echo(&name, &req);
                let code = StatusCode::from_u16(status.load(Ordering::SeqCst))
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                *reply.status_mut() = code;
                async move { Ok::<_, Infallible>(reply) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
