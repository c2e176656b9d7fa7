//! Sending one request upstream under its route's policy: each attempt picks an endpoint
//! (a retry avoids the ones tried before), runs under the per-try timeout and what is left
//! of the route's timeout, and reports its outcome to outlier detection; failures the
//! retry policy names are retried after a jittered back-off while retries and the
//! cluster's retry budget last.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, Uri, Version};
use tokio::time::Instant;

use super::pool::SendError;
use super::replay::RequestBody;
use super::{Body, Shared};
use crate::cluster::breaker;
use crate::cluster::outlier::Outcome;
use crate::cluster::{Cluster, PickRequest};
use crate::error::ProxyError;
use crate::resilience::{Failure, RetryPolicy, RoutePolicy};
use crate::stats::ClusterStats;

/// Headers through which a mesh-internal caller steers timeouts and retries, as with
/// Envoy; they are consumed, never forwarded.
const STEERING: [&str; 7] = [
    "x-envoy-upstream-rq-timeout-ms",
    "x-envoy-upstream-rq-per-try-timeout-ms",
    "x-envoy-retry-on",
    "x-envoy-retry-grpc-on",
    "x-envoy-max-retries",
    "x-envoy-retriable-status-codes",
    "x-envoy-retriable-header-names",
];

/// The limits one request runs under.
pub(super) struct Budget<'p> {
    /// When the route's timeout runs out (none: never).
    pub deadline: Option<Instant>,
    pub per_try: Option<Duration>,
    /// The stream idle timeout: the longest wait for an answer with nothing happening.
    pub idle: Option<Duration>,
    pub retry: Cow<'p, RetryPolicy>,
    /// Response headers that make an answer retriable (`retriable-headers`).
    pub retriable_headers: Vec<String>,
}

impl<'p> Budget<'p> {
    /// The route's policy, adjusted by the caller's `x-envoy-*` headers when the caller is
    /// mesh-internal (Envoy ignores them from anyone else); the headers are removed.
    pub fn new(
        policy: &'p RoutePolicy,
        headers: &mut HeaderMap,
        peer: IpAddr,
        idle: Option<Duration>,
    ) -> Self {
        let mut budget = Budget {
            deadline: None,
            per_try: policy.retry.per_try_timeout,
            idle,
            retry: Cow::Borrowed(&policy.retry),
            retriable_headers: Vec::new(),
        };
        let mut timeout = policy.timeout;
        let steered = STEERING.iter().any(|h| headers.contains_key(*h));
        if steered && internal(peer) {
            let ms = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_millis)
            };
            if let Some(t) = ms("x-envoy-upstream-rq-timeout-ms") {
                // 0 turns the timeout off.
                timeout = Some(t).filter(|t| !t.is_zero());
            }
            // Envoy ignores a per-try timeout that is not shorter than the whole.
            if let Some(t) = ms("x-envoy-upstream-rq-per-try-timeout-ms")
                .filter(|t| !t.is_zero() && timeout.is_none_or(|all| *t < all))
            {
                budget.per_try = Some(t);
            }
            budget.retry.to_mut().steer(headers);
            budget.retriable_headers = headers
                .get("x-envoy-retriable-header-names")
                .and_then(|v| v.to_str().ok())
                .map(|v| {
                    v.split(',')
                        .map(|h| h.trim().to_ascii_lowercase())
                        .filter(|h| !h.is_empty())
                        .collect()
                })
                .unwrap_or_default();
        }
        if steered {
            for h in STEERING {
                headers.remove(h);
            }
        }
        budget.deadline = timeout.map(|t| Instant::now() + t);
        budget
    }

    /// No retries (upgrades, whose request cannot be replayed).
    pub fn without_retries(mut self) -> Self {
        self.retry.to_mut().retries = 0;
        self
    }

    fn timed_out(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

/// Envoy's internal addresses: loopback and private (RFC 1918, IPv6 unique-local).
fn internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private(),
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| v4.is_loopback() || v4.is_private())
                || (v6.segments()[0] & 0xfe00) == 0xfc00
        }
    }
}

/// The upstream request every attempt sends, prepared once.
pub(super) struct Template {
    pub method: Method,
    /// Path and query, rewritten.
    pub path: String,
    /// The Host (HTTP/2: `:authority`) to send.
    pub host: String,
    pub headers: HeaderMap,
    pub http2: bool,
    /// The downstream request's version (`useClientProtocol` mirrors follow it).
    pub version: Version,
}

impl Template {
    /// The request for attempt number `attempt`, sent to `address`.
    pub fn request(&self, attempt: u32, body: Body, address: &str) -> Request<Body> {
        self.build(&self.host, Some(attempt), body, address, self.http2)
    }

    /// A mirror's copy: `-shadow` appended to the host name (before any port), as Envoy
    /// marks shadowed requests.
    pub fn shadow(&self, body: Body, address: &str, http2: bool) -> Request<Body> {
        let bare = crate::route::strip_port(&self.host);
        let port = self.host.get(bare.len()..).unwrap_or_default();
        self.build(&format!("{bare}-shadow{port}"), None, body, address, http2)
    }

    fn build(
        &self,
        host: &str,
        attempt: Option<u32>,
        body: Body,
        address: &str,
        http2: bool,
    ) -> Request<Body> {
        let mut req = Request::new(body);
        *req.method_mut() = self.method.clone();
        let mut headers = self.headers.clone();
        if let Some(n) = attempt {
            headers.insert("x-envoy-attempt-count", HeaderValue::from(n));
        }
        if http2 {
            headers.remove(header::HOST);
            // HTTP/2 carries the host as `:authority`, as Envoy sends it.
            *req.uri_mut() = Uri::try_from(format!("http://{host}{}", self.path))
                .or_else(|_| Uri::try_from(format!("http://{address}{}", self.path)))
                .unwrap_or_default();
            *req.version_mut() = Version::HTTP_2;
        } else {
            if let Ok(v) = HeaderValue::try_from(host) {
                headers.insert(header::HOST, v);
            }
            *req.uri_mut() =
                Uri::try_from(self.path.as_str()).unwrap_or_else(|_| Uri::from_static("/"));
            *req.version_mut() = Version::HTTP_11;
        }
        *req.headers_mut() = headers;
        req
    }
}

/// What the load balancer may look at, besides the request's headers.
pub(super) struct Origin<'a> {
    pub path: &'a str,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub original_dst: Option<SocketAddr>,
}

/// The upstream's answer to the attempt that got one through.
pub(super) struct Answer {
    pub resp: Response<Body>,
    /// A hash cookie the load balancer generated, for the response.
    pub set_cookie: Option<String>,
}

/// How one attempt ended.
enum Tried {
    Answer(Answer, String),
    /// No answer; `failure` says whether the policy may retry it.
    Failed(Failure, ProxyError, String),
    /// Nothing to retry: no endpoint, a circuit breaker, the route's timeout.
    Final(ProxyError),
}

/// What every attempt of one request shares.
pub(super) struct Attempts<'a> {
    pub template: &'a Template,
    pub cluster: &'a Cluster,
    pub budget: &'a Budget<'a>,
    pub origin: &'a Origin<'a>,
    pub shared: &'a Shared,
}

impl Attempts<'_> {
    /// Sends the request, retrying as the budget allows.
    pub async fn run(&self, body: &mut RequestBody) -> Result<Answer, ProxyError> {
        let stats = self.shared.stats.cluster(&self.cluster.name);
        let retry = self.budget.retry.as_ref();
        let mut tried: Vec<String> = Vec::new();
        let mut attempt: u32 = 1;
        let mut _retry_slot = None;
        loop {
            let avoid = if retry.avoid_previous_hosts {
                tried.as_slice()
            } else {
                &[]
            };
            let outcome = self.try_once(body.next(), &stats, avoid, attempt).await;
            let retriable = match &outcome {
                Tried::Answer(a, _) => retry.retries_response(
                    a.resp.status().as_u16(),
                    a.resp.headers(),
                    &self.budget.retriable_headers,
                ),
                Tried::Failed(failure, _, _) => retry.retries_failure(*failure),
                Tried::Final(_) => false,
            };
            if !retriable || !body.replayable() {
                if attempt > 1 && !retriable && matches!(outcome, Tried::Answer(..)) {
                    ClusterStats::bump(&stats.upstream_rq_retry_success);
                }
                return settle(outcome, Ending::Done);
            }
            if attempt > retry.retries {
                if retry.retries > 0 {
                    ClusterStats::bump(&stats.upstream_rq_retry_limit_exceeded);
                }
                let ending = if retry.retries > 0 {
                    Ending::Exhausted
                } else {
                    Ending::Done
                };
                return settle(outcome, ending);
            }
            let max = self.cluster.limits.max_retries_now(&stats.breaker);
            let Some(slot) = breaker::acquire(&stats.breaker.retries, max) else {
                ClusterStats::bump(&stats.upstream_rq_retry_overflow);
                return settle(outcome, Ending::Overflow);
            };
            _retry_slot = Some(slot);
            if let Tried::Answer(_, address) | Tried::Failed(_, _, address) = outcome {
                tried.push(address);
            }
            let wake = Instant::now() + retry.backoff(attempt);
            let deadline = self.budget.deadline;
            tokio::time::sleep_until(deadline.map_or(wake, |d| d.min(wake))).await;
            if self.budget.timed_out() {
                ClusterStats::bump(&stats.upstream_rq_timeout);
                return Err(self.timeout_error(attempt));
            }
            attempt += 1;
            ClusterStats::bump(&stats.upstream_rq_retry);
        }
    }

    /// One attempt: an endpoint, the request, the answer or why there is none.
    async fn try_once(
        &self,
        body: Body,
        stats: &Arc<ClusterStats>,
        avoid: &[String],
        attempt: u32,
    ) -> Tried {
        let (cluster, origin) = (self.cluster, self.origin);
        let pick = cluster.pick(&PickRequest {
            headers: &self.template.headers,
            path: origin.path,
            peer: origin.peer,
            local: origin.local,
            original_dst: origin.original_dst,
            health: Some(&stats.health),
            avoid,
        });
        let Some(mut pick) = pick else {
            let why = format!("no healthy endpoint in {}", cluster.name);
            return Tried::Final(ProxyError::NoHealthyUpstream(why));
        };
        let address = pick.address().into_owned();
        let set_cookie = pick.set_cookie.take();
        ClusterStats::bump(&stats.upstream_rq_total);
        let req = self.template.request(attempt, body, &address);
        let now = Instant::now();
        let per_try = self.budget.per_try.map(|d| now + d);
        let idle = self.budget.idle.map(|d| now + d);
        let until = [self.budget.deadline, per_try, idle]
            .into_iter()
            .flatten()
            .min();
        let send = self.shared.pool.send(
            &address,
            self.template.http2,
            &cluster.connection,
            &cluster.limits,
            stats,
            req,
        );
        let sent = match until {
            None => send.await,
            Some(until) => match tokio::time::timeout_at(until, send).await {
                Ok(sent) => sent,
                Err(_) => return self.timed_out(stats, address, attempt, per_try),
            },
        };
        drop(pick);
        self.classify(sent, stats, address, set_cookie)
    }

    /// An attempt ran out of time: the route's (final), its own (retriable), or the
    /// stream's idle time (final).
    fn timed_out(
        &self,
        stats: &ClusterStats,
        address: String,
        attempt: u32,
        per_try: Option<Instant>,
    ) -> Tried {
        self.cluster
            .report(&stats.health, &address, Outcome::Timeout);
        if self.budget.timed_out() {
            ClusterStats::bump(&stats.upstream_rq_timeout);
            return Tried::Final(self.timeout_error(attempt));
        }
        if per_try.is_none_or(|t| Instant::now() < t) {
            return Tried::Final(ProxyError::StreamIdle(format!(
                "{}: {address} sent nothing for the stream idle timeout",
                self.cluster.name
            )));
        }
        ClusterStats::bump(&stats.upstream_rq_per_try_timeout);
        let e = ProxyError::Timeout(format!(
            "{}: {address} did not answer within the per-try timeout",
            self.cluster.name
        ));
        Tried::Failed(Failure::PerTryTimeout, e, address)
    }

    fn timeout_error(&self, attempts: u32) -> ProxyError {
        ProxyError::Timeout(format!(
            "{}: the route's timeout passed ({attempts} attempt{})",
            self.cluster.name,
            if attempts == 1 { "" } else { "s" }
        ))
    }

    /// Sorts what the pool returned into an answer, a retriable failure or a final one,
    /// and tells outlier detection.
    fn classify(
        &self,
        sent: Result<Response<Body>, SendError>,
        stats: &ClusterStats,
        address: String,
        set_cookie: Option<String>,
    ) -> Tried {
        let cluster = self.cluster;
        let e = match sent {
            Ok(resp) => {
                let status = Outcome::Status(resp.status().as_u16());
                cluster.report(&stats.health, &address, status);
                return Tried::Answer(Answer { resp, set_cookie }, address);
            }
            Err(e) => e,
        };
        let (outcome, failure) = match &e {
            SendError::Connect(_) | SendError::ConnectTimeout(_) => {
                ClusterStats::bump(&stats.upstream_cx_connect_fail);
                (Outcome::ConnectFailed, Failure::Connect)
            }
            SendError::Request(err) if refused_stream(err) => {
                (Outcome::Reset, Failure::RefusedStream)
            }
            SendError::Request(_) => (Outcome::Reset, Failure::Reset),
            // Refused before anything reached the endpoint: says nothing about its health.
            SendError::Overflow(_) => {
                return Tried::Final(super::send_error(e, &cluster.name, &address));
            }
        };
        cluster.report(&stats.health, &address, outcome);
        let e = super::send_error(e, &cluster.name, &address);
        Tried::Failed(failure, e, address)
    }
}

/// Why the attempts stopped.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The last outcome is not one to retry.
    Done,
    /// Retriable, but the retries ran out (`URX`).
    Exhausted,
    /// Retriable, but the cluster's retry budget had none left (`UO`).
    Overflow,
}

/// The request's result from its last attempt, a failure marked with why no retry
/// followed.
fn settle(outcome: Tried, ending: Ending) -> Result<Answer, ProxyError> {
    match (outcome, ending) {
        (Tried::Answer(answer, _), _) => Ok(answer),
        (Tried::Failed(_, e, _), Ending::Exhausted) => {
            Err(ProxyError::RetriesExhausted(Box::new(e)))
        }
        (Tried::Failed(_, e, _), Ending::Overflow) => Err(ProxyError::RetryOverflow(Box::new(e))),
        (Tried::Failed(_, e, _) | Tried::Final(e), _) => Err(e),
    }
}

/// Whether an HTTP/2 endpoint refused the stream (`REFUSED_STREAM`), which promises it
/// did nothing with the request.
fn refused_stream(e: &hyper::Error) -> bool {
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = source {
        let text = err.to_string().to_ascii_lowercase();
        if text.contains("refused stream") || text.contains("refused_stream") {
            return true;
        }
        source = err.source();
    }
    false
}
