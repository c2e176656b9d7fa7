//! Upstream connections: made with the cluster's connect timeout and TCP keep-alive, kept
//! for reuse (HTTP/1.1 keep-alive: one request at a time per connection; HTTP/2: requests
//! multiplexed up to `maxConcurrentStreams` per connection), and closed once idle for the
//! cluster's idle timeout or once they carried `maxRequestsPerConnection` requests.
//!
//! Like Envoy, there is one pool per (cluster, endpoint, connection settings): a config
//! reload that keeps a cluster's name and settings keeps its connections. The cluster's
//! circuit breakers are enforced here, as Envoy's connection pools do: a request that finds
//! no free connection waits (it is *pending*) while a connection is made, or, past
//! `maxConnections`, until one frees up; past `http1MaxPendingRequests` waiting, or
//! `http2MaxRequests` in flight, it is refused at once with [`SendError::Overflow`].

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering, fence};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::Body;
use crate::cluster::ConnectionSettings;
use crate::cluster::breaker::{Gauge, Held, Limits, hold, hold_anyway};
use crate::stats::ClusterStats;

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
    /// A circuit breaker refused the request (connections and pending queue full, or
    /// too many requests in flight).
    Overflow(String),
}

/// The cluster a pool belongs to, by identity: its stats (gauges included) live as long
/// as the proxy under the cluster's name, so a reloaded cluster finds its pools again.
#[derive(Clone)]
struct ClusterRef(Arc<ClusterStats>);

impl PartialEq for ClusterRef {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for ClusterRef {}

impl Hash for ClusterRef {
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::ptr::hash(Arc::as_ptr(&self.0), state);
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    address: String,
    http2: bool,
    settings: ConnectionSettings,
    limits: Limits,
    cluster: ClusterRef,
}

impl Key {
    fn stats(&self) -> &Arc<ClusterStats> {
        &self.cluster.0
    }
}

/// A free HTTP/1.1 connection and the requests it has carried.
struct Idle {
    sender: http1::SendRequest<Body>,
    since: Instant,
    used: u64,
}

/// An HTTP/2 connection that still takes new streams.
struct Shared2 {
    sender: http2::SendRequest<Body>,
    activity: Arc<Activity>,
    used: u64,
}

/// What one pool's waiting requests wait on, shared with its connections and streams so
/// that each can say when it frees up without taking the pool's lock.
#[derive(Default)]
struct Waiters {
    /// Requests waiting for a connection of this pool.
    count: AtomicUsize,
    changed: Notify,
    /// This pool's connections, open or being opened.
    open: AtomicUsize,
}

impl Waiters {
    /// A connection or stream came free: waiting requests look again. Pairs with the
    /// fence in [`Waiting::new`]: either the waiter sees what was freed, or this sees the
    /// waiter.
    fn wake(&self) {
        fence(Ordering::SeqCst);
        if self.count.load(Ordering::Relaxed) > 0 {
            self.changed.notify_waiters();
        }
    }
}

/// A request counted among its pool's waiters for as long as this lives.
struct Waiting(Arc<Waiters>);

impl Waiting {
    fn new(waiters: Arc<Waiters>) -> Waiting {
        waiters.count.fetch_add(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        Waiting(waiters)
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One endpoint's connections for one cluster (Envoy's per-host connection pool).
#[derive(Default)]
struct Host {
    idle: Vec<Idle>,
    shared: Vec<Shared2>,
    waiters: Arc<Waiters>,
}

/// A connection's place in its cluster's `maxConnections` gauge and its pool's count,
/// given back when the connection ends (its task drops this).
struct Counted {
    slot: Option<Held>,
    waiters: Arc<Waiters>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        drop(self.slot.take());
        self.waiters.open.fetch_sub(1, Ordering::SeqCst);
        self.waiters.wake();
    }
}

/// The streams open on an HTTP/2 connection and when the last one ended: it is idle when
/// none is open (Envoy's definition), for as long as the last ended.
struct Activity {
    open: AtomicUsize,
    last: Mutex<Instant>,
    waiters: Arc<Waiters>,
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
        self.0.open.fetch_sub(1, Ordering::SeqCst);
        self.0.waiters.wake();
    }
}

/// A response body that keeps its request counted (`http2MaxRequests`, and its HTTP/2
/// stream) until it is read to the end or dropped.
struct Tracked {
    inner: Incoming,
    _request: Held,
    _stream: Option<Stream>,
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

/// What a look at a pool came to.
enum Step<T> {
    /// A connection (or stream) to send on.
    Ready(T),
    /// None is free, but a new connection may be made.
    Connect(Counted),
    /// None is free and no connection may be made: wait for one to free up.
    Wait(Arc<Waiters>),
}

/// A request's place among the cluster's pending requests, once it had to wait.
#[derive(Default)]
struct Pending {
    slot: Option<Held>,
    /// `upstream_cx_overflow` is counted once per request, not on every look.
    cx_overflow_counted: bool,
}

#[derive(Default)]
struct Inner {
    hosts: HashMap<Key, Host>,
    reaper: bool,
}

impl Inner {
    /// The pool of `key`, made on first use. (`None` cannot happen: it is there once
    /// inserted, and the lock is held.)
    fn host(&mut self, key: &Key) -> Option<&mut Host> {
        // Looked up first: the key (its address string) is cloned only for a new pool.
        if !self.hosts.contains_key(key) {
            self.hosts.insert(key.clone(), Host::default());
        }
        self.hosts.get_mut(key)
    }
}

/// The proxy's upstream connections (a handle: clones share them).
#[derive(Default, Clone)]
pub struct Pool {
    inner: Arc<Mutex<Inner>>,
}

impl Pool {
    /// Sends `req` to `address` over HTTP/2 (prior knowledge) or HTTP/1.1, on a pooled
    /// connection when one is free, within the cluster's circuit-breaker `limits` (its
    /// live counts are in `stats`).
    pub async fn send(
        &self,
        address: &str,
        http2: bool,
        settings: &ConnectionSettings,
        limits: &Limits,
        stats: &Arc<ClusterStats>,
        req: Request<Body>,
    ) -> Result<Response<Body>, SendError> {
        let key = Key {
            address: address.to_string(),
            http2,
            settings: *settings,
            limits: *limits,
            cluster: ClusterRef(stats.clone()),
        };
        if http2 {
            self.send_http2(&key, req).await
        } else {
            self.send_http1(&key, req).await
        }
    }

    async fn send_http1(
        &self,
        key: &Key,
        mut req: Request<Body>,
    ) -> Result<Response<Body>, SendError> {
        let mut request = None;
        loop {
            let (mut conn, reused) = self.http1_connection(key, &mut request).await?;
            conn.used += 1;
            let last = key.limits.max_requests_per_connection == Some(conn.used);
            if last {
                ClusterStats::bump(&key.stats().upstream_cx_max_requests);
            }
            match conn.sender.try_send_request(req).await {
                Ok(resp) => {
                    self.checkin_when_ready(key.clone(), conn, last);
                    let Some(request) = request else {
                        return Err(SendError::Overflow("no request slot".into()));
                    };
                    return Ok(resp.map(|inner| {
                        super::boxed(Tracked {
                            inner,
                            _request: request,
                            _stream: None,
                        })
                    }));
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

    /// A free HTTP/1.1 connection, or a new one, once the circuit breakers allow; and
    /// whether it was pooled. `request` holds the request's slot from then on.
    async fn http1_connection(
        &self,
        key: &Key,
        request: &mut Option<Held>,
    ) -> Result<(Idle, bool), SendError> {
        let (step, pending) = self
            .wait_for(|pending| self.look_http1(key, request, pending))
            .await?;
        let counted = match step {
            Step::Ready(conn) => return Ok((conn, true)),
            Step::Connect(counted) => counted,
            Step::Wait(_) => return Err(SendError::Overflow("no connection".into())),
        };
        let sender = self.connect_counted(key, counted, connect_http1).await?;
        drop(pending);
        let conn = Idle {
            sender,
            since: Instant::now(),
            used: 0,
        };
        if request.is_none() {
            match request_slot(key) {
                Ok(slot) => *request = Some(slot),
                Err(e) => {
                    self.checkin_when_ready(key.clone(), conn, false);
                    return Err(e);
                }
            }
        }
        Ok((conn, false))
    }

    /// Under the pool's lock: a free connection (most recently used first), else whether
    /// a new one may be made.
    fn look_http1(
        &self,
        key: &Key,
        request: &mut Option<Held>,
        pending: &mut Pending,
    ) -> Result<Step<Idle>, SendError> {
        let mut inner = self.lock();
        let host = inner.host(key).ok_or_else(lost)?;
        while let Some(conn) = host.idle.pop() {
            if conn.sender.is_ready() && !expired(conn.since, &key.settings) {
                if request.is_none() {
                    match request_slot(key) {
                        Ok(slot) => *request = Some(slot),
                        Err(e) => {
                            host.idle.push(conn);
                            return Err(e);
                        }
                    }
                }
                return Ok(Step::Ready(conn));
            }
        }
        new_connection(host, key, pending)
    }

    /// Runs `look` until it finds a connection or may make one, waiting in between for
    /// the pool's connections to change. The request is pending from the first look that
    /// found nothing, and stays so (the returned [`Pending`]) until it has a connection.
    async fn wait_for<T>(
        &self,
        mut look: impl FnMut(&mut Pending) -> Result<Step<T>, SendError>,
    ) -> Result<(Step<T>, Pending), SendError> {
        let mut pending = Pending::default();
        let waiters = match look(&mut pending)? {
            Step::Wait(waiters) => waiters,
            step => return Ok((step, pending)),
        };
        let _waiting = Waiting::new(waiters.clone());
        loop {
            let changed = waiters.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            match look(&mut pending)? {
                Step::Wait(_) => changed.await,
                step => return Ok((step, pending)),
            }
        }
    }

    /// Makes a connection counted by `counted`, which its task keeps until it closes. A
    /// request that waited for it fails with it (`upstream_rq_pending_failure_eject`).
    async fn connect_counted<S, F>(
        &self,
        key: &Key,
        counted: Counted,
        connect: impl FnOnce(Key, Counted) -> F,
    ) -> Result<S, SendError>
    where
        F: Future<Output = Result<S, SendError>>,
    {
        let result = connect(key.clone(), counted).await;
        if result.is_err() {
            ClusterStats::bump(&key.stats().upstream_rq_pending_failure_eject);
        }
        result
    }

    async fn send_http2(&self, key: &Key, req: Request<Body>) -> Result<Response<Body>, SendError> {
        let mut request = None;
        let (mut sender, mut stream, reused) = self.http2_stream(key, &mut request).await?;
        if let Err(e) = sender.ready().await {
            if !reused {
                return Err(SendError::Request(e));
            }
            // The pooled connection went away since: one more look (it is gone from the
            // pool now that it is closed).
            drop(stream);
            (sender, stream, _) = self.http2_stream(key, &mut request).await?;
            sender.ready().await.map_err(SendError::Request)?;
        }
        let Some(request) = request else {
            return Err(SendError::Overflow("no request slot".into()));
        };
        let resp = sender.send_request(req).await.map_err(SendError::Request)?;
        Ok(resp.map(|inner| {
            super::boxed(Tracked {
                inner,
                _request: request,
                _stream: Some(stream),
            })
        }))
    }

    /// A stream on an HTTP/2 connection with room for one, or on a new connection, once
    /// the circuit breakers allow; and whether the connection was pooled.
    async fn http2_stream(
        &self,
        key: &Key,
        request: &mut Option<Held>,
    ) -> Result<(http2::SendRequest<Body>, Stream, bool), SendError> {
        let (step, pending) = self
            .wait_for(|pending| self.look_http2(key, request, pending))
            .await?;
        let counted = match step {
            Step::Ready((sender, stream)) => return Ok((sender, stream, true)),
            Step::Connect(counted) => counted,
            Step::Wait(_) => return Err(SendError::Overflow("no connection".into())),
        };
        let waiters = counted.waiters.clone();
        let sender = self.connect_counted(key, counted, connect_http2).await?;
        drop(pending);
        let activity = Arc::new(Activity {
            open: AtomicUsize::new(0),
            last: Mutex::new(Instant::now()),
            waiters,
        });
        let mut shared = Shared2 {
            sender: sender.clone(),
            activity: activity.clone(),
            used: 0,
        };
        // The request's slot is taken now that it has a connection, as Envoy does when it
        // attaches a pending request; refused, it leaves the connection to the others.
        let slot = match request {
            Some(_) => Ok(None),
            None => request_slot(key).map(Some),
        };
        let stream = slot.is_ok().then(|| reserve_stream(&mut shared, key));
        let mut inner = self.lock();
        if let Some(host) = inner.host(key)
            && !stream.as_ref().is_some_and(|(_, last)| *last)
        {
            host.shared.push(shared);
        }
        self.start_reaper(&mut inner);
        drop(inner);
        // The new connection has room for the requests waiting on this pool.
        activity.waiters.wake();
        match (slot, stream) {
            (Ok(slot), Some((stream, _))) => {
                if slot.is_some() {
                    *request = slot;
                }
                Ok((sender, stream, false))
            }
            (Err(e), _) => Err(e),
            (Ok(_), None) => Err(lost()),
        }
    }

    /// Under the pool's lock: a stream on a connection with room for one, else whether a
    /// new connection may be made.
    fn look_http2(
        &self,
        key: &Key,
        request: &mut Option<Held>,
        pending: &mut Pending,
    ) -> Result<Step<(http2::SendRequest<Body>, Stream)>, SendError> {
        let mut inner = self.lock();
        let host = inner.host(key).ok_or_else(lost)?;
        host.shared.retain(|s| !s.sender.is_closed());
        let max_streams = usize::try_from(key.limits.max_concurrent_streams).unwrap_or(usize::MAX);
        let free = host
            .shared
            .iter()
            .position(|s| s.activity.open.load(Ordering::SeqCst) < max_streams);
        let Some(i) = free else {
            return new_connection(host, key, pending);
        };
        if request.is_none() {
            *request = Some(request_slot(key)?);
        }
        let shared = &mut host.shared[i];
        let sender = shared.sender.clone();
        let (stream, last) = reserve_stream(shared, key);
        if last {
            // Draining: it takes no new streams and closes once its last one ends.
            host.shared.swap_remove(i);
        }
        Ok(Step::Ready((sender, stream)))
    }

    /// Returns the connection to the pool once its response has been read to the end
    /// (HTTP/1.1 carries one exchange at a time), or closes it after its `last` request.
    /// A connection that is closed or upgraded meanwhile is dropped.
    fn checkin_when_ready(&self, key: Key, mut conn: Idle, last: bool) {
        let pool = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            if conn.sender.ready().await.is_err() || last {
                // Dropping the last handle closes the connection.
                return;
            }
            let Some(inner) = pool.upgrade() else { return };
            let mut inner = lock(&inner);
            conn.since = Instant::now();
            let host = inner.hosts.entry(key).or_default();
            host.idle.push(conn);
            host.waiters.wake();
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

/// The pool's own bookkeeping failed (it cannot: see [`Inner::host`]); the request fails
/// rather than the proxy panicking.
fn lost() -> SendError {
    SendError::Connect("the connection pool lost track of this endpoint".into())
}

/// The request's slot in `http2MaxRequests`, or the overflow that refuses it.
fn request_slot(key: &Key) -> Result<Held, SendError> {
    let max = key.limits.max_requests;
    hold(key.stats(), Gauge::Requests, max).ok_or_else(|| {
        ClusterStats::bump(&key.stats().upstream_rq_pending_overflow);
        SendError::Overflow(format!("{max} requests in flight (http2MaxRequests)"))
    })
}

/// A new stream on `shared`, and whether it is the connection's last
/// (`maxRequestsPerConnection`).
fn reserve_stream(shared: &mut Shared2, key: &Key) -> (Stream, bool) {
    shared.used += 1;
    let last = key.limits.max_requests_per_connection == Some(shared.used);
    if last {
        ClusterStats::bump(&key.stats().upstream_cx_max_requests);
    }
    (Stream::open(&shared.activity), last)
}

/// No connection of `host` is free: the request becomes pending (refused past
/// `http1MaxPendingRequests`), and may make a connection if `maxConnections` allows, or
/// if its pool has none at all (Envoy's exception, so pending requests are never
/// stranded), else waits.
fn new_connection<T>(
    host: &mut Host,
    key: &Key,
    pending: &mut Pending,
) -> Result<Step<T>, SendError> {
    let stats = key.stats();
    if pending.slot.is_none() {
        let max = key.limits.max_pending_requests;
        let Some(slot) = hold(stats, Gauge::Pending, max) else {
            ClusterStats::bump(&stats.upstream_rq_pending_overflow);
            return Err(SendError::Overflow(format!(
                "{max} requests already waiting for a connection (http1MaxPendingRequests)"
            )));
        };
        ClusterStats::bump(&stats.upstream_rq_pending_total);
        pending.slot = Some(slot);
    }
    let slot = hold(stats, Gauge::Connections, key.limits.max_connections).or_else(|| {
        if !pending.cx_overflow_counted {
            pending.cx_overflow_counted = true;
            ClusterStats::bump(&stats.upstream_cx_overflow);
        }
        (host.waiters.open.load(Ordering::SeqCst) == 0)
            .then(|| hold_anyway(stats, Gauge::Connections))
    });
    let Some(slot) = slot else {
        return Ok(Step::Wait(host.waiters.clone()));
    };
    host.waiters.open.fetch_add(1, Ordering::SeqCst);
    ClusterStats::bump(&stats.upstream_cx_total);
    Ok(Step::Connect(Counted {
        slot: Some(slot),
        waiters: host.waiters.clone(),
    }))
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
/// handle closes the connection), and forgets endpoints with nothing left; it ends with
/// the pool.
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
            inner.hosts.retain(|key, host| {
                host.idle
                    .retain(|c| !c.sender.is_closed() && !expired(c.since, &key.settings));
                host.shared.retain(|s| {
                    let idle = s.activity.idle_for();
                    let expired = idle
                        .zip(key.settings.idle_timeout)
                        .is_some_and(|(i, t)| i >= t);
                    !s.sender.is_closed() && !expired
                });
                let w = &host.waiters;
                !host.idle.is_empty()
                    || !host.shared.is_empty()
                    || w.open.load(Ordering::SeqCst) > 0
                    || w.count.load(Ordering::SeqCst) > 0
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

/// A new HTTP/1.1 connection; its task keeps `counted` until the connection ends.
async fn connect_http1(key: Key, counted: Counted) -> Result<http1::SendRequest<Body>, SendError> {
    let io = connect(&key).await?;
    let (sender, conn) = http1::handshake(io).await.map_err(SendError::Request)?;
    tokio::spawn(async move {
        // `with_upgrades`: a 101 hands the connection to a WebSocket tunnel.
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(address = %key.address, error = %e, "upstream HTTP/1.1 connection ended");
        }
        drop(counted);
    });
    Ok(sender)
}

/// A new HTTP/2 connection; its task keeps `counted` until the connection ends.
async fn connect_http2(key: Key, counted: Counted) -> Result<http2::SendRequest<Body>, SendError> {
    let io = connect(&key).await?;
    let (sender, conn) = http2::handshake(TokioExecutor::new(), io)
        .await
        .map_err(SendError::Request)?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(address = %key.address, error = %e, "upstream HTTP/2 connection ended");
        }
        drop(counted);
    });
    Ok(sender)
}
