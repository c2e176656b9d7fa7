//! Upstream connections: made with the cluster's connect timeout and TCP keep-alive, kept
//! for reuse (HTTP/1.1 keep-alive: one request at a time per connection; HTTP/2: one
//! multiplexed connection per endpoint), and closed once idle for the cluster's idle
//! timeout. Connections are pooled per endpoint and per connection settings, so clusters
//! that share both share connections, and a config reload keeps them.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use super::Body;
use crate::cluster::ConnectionSettings;

/// How often idle connections are looked at; an idle connection lives at most this much
/// longer than its idle timeout.
const REAP_EVERY: Duration = Duration::from_millis(250);

/// Why a request could not be sent.
#[derive(Debug)]
pub enum SendError {
    /// No connection could be made (refused, unreachable, no address).
    Connect(String),
    /// The connect timeout passed first.
    ConnectTimeout(Duration),
    /// The connection failed after it was made.
    Request(hyper::Error),
    /// A circuit breaker refused the request (connections and pending queue full).
    #[expect(
        dead_code,
        reason = "the circuit breaker's pending queue is being written"
    )]
    Overflow(String),
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    address: String,
    http2: bool,
    settings: ConnectionSettings,
}

struct Idle {
    sender: http1::SendRequest<Body>,
    since: Instant,
}

struct Shared2 {
    sender: http2::SendRequest<Body>,
    activity: Arc<Activity>,
}

/// The streams open on an HTTP/2 connection and when the last one ended: it is idle when
/// none is open (Envoy's definition), for as long as the last ended.
struct Activity {
    open: AtomicUsize,
    last: Mutex<Instant>,
}

impl Activity {
    fn idle_for(&self) -> Option<Duration> {
        if self.open.load(Ordering::Acquire) > 0 {
            return None;
        }
        let last = *self.last.lock().unwrap_or_else(|p| p.into_inner());
        Some(last.elapsed())
    }
}

/// One open stream: counted from the request until its response body is done or dropped.
struct Stream(Arc<Activity>);

impl Stream {
    fn open(activity: &Arc<Activity>) -> Stream {
        activity.open.fetch_add(1, Ordering::AcqRel);
        Stream(activity.clone())
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        *self.0.last.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its stream counted while it is read.
struct Tracked {
    inner: Incoming,
    _stream: Stream,
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[derive(Default)]
struct Inner {
    http1: HashMap<Key, Vec<Idle>>,
    http2: HashMap<Key, Shared2>,
    reaper: bool,
}

/// The proxy's upstream connections (a handle: clones share them).
#[derive(Default, Clone)]
pub struct Pool {
    inner: Arc<Mutex<Inner>>,
}

impl Pool {
    /// Sends `req` to `address` over HTTP/2 (prior knowledge) or HTTP/1.1, on a pooled
    /// connection when one is free.
    pub async fn send(
        &self,
        address: &str,
        http2: bool,
        settings: &ConnectionSettings,
        req: Request<Body>,
    ) -> Result<Response<Body>, SendError> {
        let key = Key {
            address: address.to_string(),
            http2,
            settings: *settings,
        };
        if http2 {
            self.send_http2(key, req).await
        } else {
            let resp = self.send_http1(key, req).await?;
            Ok(resp.map(super::boxed))
        }
    }

    async fn send_http1(
        &self,
        key: Key,
        mut req: Request<Body>,
    ) -> Result<Response<Incoming>, SendError> {
        loop {
            let (mut sender, reused) = match self.checkout(&key) {
                Some(sender) => (sender, true),
                None => (connect_http1(&key).await?, false),
            };
            match sender.try_send_request(req).await {
                Ok(resp) => {
                    self.checkin_when_ready(key, sender);
                    return Ok(resp);
                }
                // A pooled connection the server had closed: the request was not sent,
                // so it goes again on a fresh connection.
                Err(mut e) if reused && e.message().is_some() => {
                    let Some(r) = e.take_message() else {
                        return Err(SendError::Request(e.into_error()));
                    };
                    req = r;
                }
                Err(e) => return Err(SendError::Request(e.into_error())),
            }
        }
    }

    async fn send_http2(&self, key: Key, req: Request<Body>) -> Result<Response<Body>, SendError> {
        let pooled = self.shared_http2(&key);
        let reused = pooled.is_some();
        let (mut sender, mut activity) = match pooled {
            Some(pooled) => pooled,
            None => self.connect_shared_http2(&key).await?,
        };
        if let Err(e) = sender.ready().await {
            if !reused {
                return Err(SendError::Request(e));
            }
            // The pooled connection went away since: one fresh try.
            self.lock().http2.remove(&key);
            (sender, activity) = self.connect_shared_http2(&key).await?;
            sender.ready().await.map_err(SendError::Request)?;
        }
        let stream = Stream::open(&activity);
        let resp = sender.send_request(req).await.map_err(SendError::Request)?;
        Ok(resp.map(|inner| {
            super::boxed(Tracked {
                inner,
                _stream: stream,
            })
        }))
    }

    /// The open HTTP/2 connection to `key`, if there is one.
    fn shared_http2(&self, key: &Key) -> Option<(http2::SendRequest<Body>, Arc<Activity>)> {
        let inner = self.lock();
        let s = inner.http2.get(key).filter(|s| !s.sender.is_closed())?;
        Some((s.sender.clone(), s.activity.clone()))
    }

    /// A new HTTP/2 connection to `key`, shared from now on (replacing any other).
    async fn connect_shared_http2(
        &self,
        key: &Key,
    ) -> Result<(http2::SendRequest<Body>, Arc<Activity>), SendError> {
        let sender = connect_http2(key).await?;
        let activity = Arc::new(Activity {
            open: AtomicUsize::new(0),
            last: Mutex::new(Instant::now()),
        });
        let mut inner = self.lock();
        let entry = Shared2 {
            sender: sender.clone(),
            activity: activity.clone(),
        };
        inner.http2.insert(key.clone(), entry);
        self.start_reaper(&mut inner);
        Ok((sender, activity))
    }

    /// A free pooled HTTP/1.1 connection to `key`, most recently used first.
    fn checkout(&self, key: &Key) -> Option<http1::SendRequest<Body>> {
        let mut inner = self.lock();
        let idle = inner.http1.get_mut(key)?;
        while let Some(conn) = idle.pop() {
            if conn.sender.is_ready() && !expired(conn.since, &key.settings) {
                return Some(conn.sender);
            }
        }
        None
    }

    /// Returns the connection to the pool once its response has been read to the end
    /// (HTTP/1.1 carries one exchange at a time). A connection that is closed or upgraded
    /// meanwhile is dropped.
    fn checkin_when_ready(&self, key: Key, mut sender: http1::SendRequest<Body>) {
        let pool = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            if sender.ready().await.is_err() {
                return;
            }
            let Some(inner) = pool.upgrade() else { return };
            let mut inner = lock(&inner);
            let idle = Idle {
                sender,
                since: Instant::now(),
            };
            inner.http1.entry(key).or_default().push(idle);
            start_reaper(&pool, &mut inner);
        });
    }

    fn start_reaper(&self, inner: &mut Inner) {
        start_reaper(&Arc::downgrade(&self.inner), inner);
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }
}

/// The pool's state; a panic elsewhere while it was held leaves plain data behind, so the
/// lock is taken over rather than propagated.
fn lock(inner: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    inner
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn expired(since: Instant, settings: &ConnectionSettings) -> bool {
    settings.idle_timeout.is_some_and(|t| since.elapsed() >= t)
}

/// One task per pool closes connections idle past their timeout (dropping the last
/// handle closes the connection); it ends with the pool.
fn start_reaper(pool: &Weak<Mutex<Inner>>, inner: &mut Inner) {
    if inner.reaper {
        return;
    }
    inner.reaper = true;
    let pool = pool.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(REAP_EVERY).await;
            let Some(inner) = pool.upgrade() else { return };
            let mut inner = lock(&inner);
            inner.http1.retain(|key, idle| {
                idle.retain(|c| !c.sender.is_closed() && !expired(c.since, &key.settings));
                !idle.is_empty()
            });
            inner.http2.retain(|key, s| {
                let idle = s.activity.idle_for();
                let expired = idle
                    .zip(key.settings.idle_timeout)
                    .is_some_and(|(i, t)| i >= t);
                !s.sender.is_closed() && !expired
            });
        }
    });
}

/// Opens a TCP connection with the cluster's connect timeout and keep-alive settings.
async fn connect(key: &Key) -> Result<TcpIo, SendError> {
    let timeout = key.settings.connect_timeout;
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(key.address.as_str())).await
    {
        Err(_) => return Err(SendError::ConnectTimeout(timeout)),
        Ok(Err(e)) => return Err(SendError::Connect(e.to_string())),
        Ok(Ok(stream)) => stream,
    };
    let _ = stream.set_nodelay(true);
    if let Some(k) = key.settings.tcp_keepalive {
        let mut ka = socket2::TcpKeepalive::new();
        if let Some(t) = k.time {
            ka = ka.with_time(t);
        }
        if let Some(i) = k.interval {
            ka = ka.with_interval(i);
        }
        if let Some(p) = k.probes {
            ka = ka.with_retries(p);
        }
        if let Err(e) = socket2::SockRef::from(&stream).set_tcp_keepalive(&ka) {
            tracing::debug!(address = %key.address, error = %e, "cannot set TCP keep-alive");
        }
    }
    Ok(TokioIo::new(stream))
}

type TcpIo = TokioIo<TcpStream>;

async fn connect_http1(key: &Key) -> Result<http1::SendRequest<Body>, SendError> {
    let io = connect(key).await?;
    let (sender, conn) = http1::handshake(io).await.map_err(SendError::Request)?;
    let address = key.address.clone();
    tokio::spawn(async move {
        // `with_upgrades`: a 101 hands the connection to a WebSocket tunnel.
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(%address, error = %e, "upstream HTTP/1.1 connection ended");
        }
    });
    Ok(sender)
}

async fn connect_http2(key: &Key) -> Result<http2::SendRequest<Body>, SendError> {
    let io = connect(key).await?;
    let (sender, conn) = http2::handshake(TokioExecutor::new(), io)
        .await
        .map_err(SendError::Request)?;
    let address = key.address.clone();
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(%address, error = %e, "upstream HTTP/2 connection ended");
        }
    });
    Ok(sender)
}
