//! A backend whose every answer the test decides: the n-th request it receives can get a
//! status, a delayed echo, or a reset connection; it records what it received and counts
//! the connections it accepted (HTTP/1.1 and h2c).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::pin::Pin;
use std::task::{Context, Poll};

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Frame;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// What the backend does with one request.
#[derive(Debug, Clone, Copy)]
pub enum Act {
    /// Echo, as [`super::Backend`] does (status 200).
    Echo,
    /// Answer with this status (and the echo as body).
    Status(u16),
    /// Echo after this long.
    Delay(Duration),
    /// Close the connection without answering.
    Reset,
    /// Answer 200 with the first piece of a body, then send nothing more for 30 s.
    Stall,
}

type Script = dyn Fn(usize) -> Act + Send + Sync;

/// A request as the backend received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub host: String,
    pub attempt: Option<String>,
    pub headers: Value,
    pub body: String,
}

pub struct Scripted {
    pub port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    accepted: Arc<AtomicUsize>,
    _runtime: tokio::runtime::Runtime,
}

impl Scripted {
    /// Starts a backend named `name` acting on its n-th request (from 0) as `script` says.
    pub fn start(name: &str, script: impl Fn(usize) -> Act + Send + Sync + 'static) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime for the backend");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind the backend");
        let port = listener.local_addr().expect("backend address").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(AtomicUsize::new(0));
        let script: Arc<Script> = Arc::new(script);
        let server = Server {
            name: Arc::from(name),
            script,
            seen: seen.clone(),
            accepted: accepted.clone(),
        };
        runtime.spawn(accept(listener, server));
        Scripted {
            port,
            seen,
            accepted,
            _runtime: runtime,
        }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Every request received so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("seen list").clone()
    }

    pub fn count(&self) -> usize {
        self.seen.lock().expect("seen list").len()
    }
}

/// What every connection of one backend shares.
#[derive(Clone)]
struct Server {
    name: Arc<str>,
    script: Arc<Script>,
    seen: Arc<Mutex<Vec<Seen>>>,
    accepted: Arc<AtomicUsize>,
}

/// Serves HTTP/1.1 and HTTP/2 with prior knowledge (h2c) alike.
async fn accept(listener: tokio::net::TcpListener, server: Server) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        server.accepted.fetch_add(1, Ordering::SeqCst);
        let server = server.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let server = server.clone();
                async move { answer(req, &server.name, &*server.script, &server.seen).await }
            });
            let builder =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The backend's answer; an `Err` makes hyper drop the connection unanswered.
async fn answer(
    req: Request<Incoming>,
    name: &str,
    script: &Script,
    seen: &Mutex<Vec<Seen>>,
) -> Result<Response<BoxBody<Bytes, std::io::Error>>, std::io::Error> {
    let header = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let mut headers = serde_json::Map::new();
    for (k, v) in req.headers() {
        headers.insert(
            k.to_string(),
            Value::String(String::from_utf8_lossy(v.as_bytes()).into()),
        );
    }
    let host = header("host").unwrap_or_default();
    let attempt = header("x-envoy-attempt-count");
    let path = req.uri().path().to_string();
    let body = req
        .into_body()
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    let body = String::from_utf8_lossy(&body).into_owned();
    let n = {
        let mut seen = seen
            .lock()
            .map_err(|_| std::io::Error::other("seen list poisoned"))?;
        seen.push(Seen {
            host: host.clone(),
            attempt: attempt.clone(),
            headers: Value::Object(headers),
            body: body.clone(),
        });
        seen.len() - 1
    };
    let act = script(n);
    let echo = json!({"backend": name, "n": n, "path": path, "host": host, "attempt": attempt, "body": body});
    let status = match act {
        Act::Reset => return Err(std::io::Error::other("scripted reset")),
        Act::Stall => {
            let stalling = Stalling {
                first: Some(Bytes::from_static(b"the first piece\n")),
                stall: Box::pin(tokio::time::sleep(Duration::from_secs(30))),
            };
            return Ok(Response::new(stalling.boxed()));
        }
        Act::Delay(d) => {
            tokio::time::sleep(d).await;
            200
        }
        Act::Echo => 200,
        Act::Status(s) => s,
    };
    let body = Full::new(Bytes::from(format!("{echo}\n"))).map_err(|never| match never {});
    let mut resp = Response::new(body.boxed());
    *resp.status_mut() = hyper::StatusCode::from_u16(status).map_err(std::io::Error::other)?;
    let name = hyper::header::HeaderValue::try_from(name).map_err(std::io::Error::other)?;
    resp.headers_mut().insert("x-backend", name);
    Ok(resp)
}

/// A body that sends one piece, then nothing until its stall is over.
struct Stalling {
    first: Option<Bytes>,
    stall: Pin<Box<tokio::time::Sleep>>,
}

impl hyper::body::Body for Stalling {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        self.stall.as_mut().poll(cx).map(|()| None)
    }
}
