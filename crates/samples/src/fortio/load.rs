//! Fortio's load test: `-c` workers, each on its own HTTP/1.1 keep-alive connection
//! (reopened when the server closes it, as fortio's client does, which is what its
//! "Sockets used" line counts), pacing calls to share `-qps` between them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::flags::LoadOptions;
use super::stats::{Counter, Histogram};
use crate::Error;

/// The code fortio counts a call under when no HTTP status came back.
pub(crate) const NO_ANSWER: i32 = -1;

/// What to call: resolved once, like fortio.
#[derive(Clone)]
pub(crate) struct Target {
    pub uri: Uri,
    pub addr: SocketAddr,
    pub host_header: HeaderValue,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl Target {
    pub async fn new(options: &LoadOptions) -> Result<Target, Error> {
        let bad =
            |reason: String| Error::Usage(format!("fortio: bad URL {:?}: {reason}", options.url));
        let uri: Uri = options.url.parse().map_err(|e| bad(format!("{e}")))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => {
                return Err(bad(format!(
                    "{other}:// is not supported; the sidecar does TLS"
                )));
            }
            None => return Err(bad("no http:// scheme".into())),
        }
        let authority = uri
            .authority()
            .ok_or_else(|| bad("no host".into()))?
            .clone();
        let port = authority.port_u16().unwrap_or(80);
        let addr = tokio::net::lookup_host((authority.host(), port))
            .await
            .map_err(|e| bad(format!("cannot resolve {}: {e}", authority.host())))?
            .next()
            .ok_or_else(|| bad(format!("{} has no address", authority.host())))?;
        let mut host_header =
            HeaderValue::from_str(authority.as_str()).map_err(|e| bad(format!("{e}")))?;
        let mut headers = Vec::new();
        for (k, v) in &options.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| Error::Usage(format!("fortio: bad header name {k:?}: {e}")))?;
            let value = HeaderValue::from_str(v)
                .map_err(|e| Error::Usage(format!("fortio: bad header value {v:?}: {e}")))?;
            if name == hyper::header::HOST {
                host_header = value;
            } else {
                headers.push((name, value));
            }
        }
        Ok(Target {
            uri,
            addr,
            host_header,
            headers,
        })
    }

    fn request(&self) -> Result<Request<Empty<Bytes>>, hyper::http::Error> {
        let path = self.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut req = Request::get(path)
            .header(hyper::header::HOST, self.host_header.clone())
            .header(hyper::header::USER_AGENT, super::USER_AGENT)
            .body(Empty::new())?;
        for (name, value) in &self.headers {
            req.headers_mut().insert(name.clone(), value.clone());
        }
        Ok(req)
    }
}

/// One call's outcome.
pub(crate) struct Answer {
    pub code: i32,
    pub status_line: String,
    pub head: Vec<(String, String)>,
    pub body: Bytes,
    pub header_size: usize,
}

impl Answer {
    fn new(parts: &hyper::http::response::Parts, body: Bytes) -> Answer {
        let status_line = format!(
            "{:?} {} {}",
            parts.version,
            parts.status.as_u16(),
            parts.status.canonical_reason().unwrap_or("")
        );
        let head: Vec<(String, String)> = parts
            .headers
            .iter()
            .map(|(k, v)| {
                let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
                (k.as_str().to_string(), v)
            })
            .collect();
        // The size of the head as it came over the wire: status line, headers, blank line.
        let lines: usize = head.iter().map(|(k, v)| k.len() + v.len() + 4).sum();
        let header_size = status_line.len() + 2 + lines + 2;
        Answer {
            code: i32::from(parts.status.as_u16()),
            status_line,
            head,
            body,
            header_size,
        }
    }
}

/// One worker's connection, reopened when the server drops it.
struct Connection {
    sender: Option<SendRequest<Empty<Bytes>>>,
    sockets: u64,
}

impl Connection {
    async fn call(
        &mut self,
        target: &Target,
        timeout: Duration,
        keepalive: bool,
    ) -> Result<Answer, String> {
        let call = async {
            let sender = self.ready(target).await?;
            let req = target.request().map_err(|e| e.to_string())?;
            let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
            let (parts, body) = resp.into_parts();
            let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
            Ok::<_, String>((parts, body))
        };
        let outcome = tokio::time::timeout(timeout, call).await;
        let (parts, body) = match outcome {
            Ok(Ok(done)) => done,
            Ok(Err(e)) => {
                self.sender = None;
                return Err(e);
            }
            Err(_) => {
                self.sender = None;
                return Err(format!(
                    "no answer within {}",
                    super::flags::go_duration_text(timeout)
                ));
            }
        };
        let closing = parts
            .headers
            .get(hyper::header::CONNECTION)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        if closing || !keepalive {
            self.sender = None;
        }
        Ok(Answer::new(&parts, body))
    }

    /// The open connection, or a new one (counted) when there is none or it was closed.
    async fn ready(&mut self, target: &Target) -> Result<&mut SendRequest<Empty<Bytes>>, String> {
        if let Some(sender) = self.sender.as_mut()
            && sender.ready().await.is_err()
        {
            self.sender = None;
        }
        if self.sender.is_none() {
            let stream = TcpStream::connect(target.addr)
                .await
                .map_err(|e| format!("unable to connect to {}: {e}", target.addr))?;
            let _ = stream.set_nodelay(true);
            self.sockets += 1;
            let (sender, conn) = http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            self.sender = Some(sender);
        }
        self.sender
            .as_mut()
            .ok_or_else(|| "no connection".to_string())
    }
}

/// Makes one call on a fresh connection (`-curl` and `fortio curl`).
pub(crate) async fn once(target: &Target, timeout: Duration) -> Result<Answer, String> {
    let mut conn = Connection {
        sender: None,
        sockets: 0,
    };
    conn.call(target, timeout, false).await
}

/// Everything one worker saw.
#[derive(Default)]
pub(crate) struct Tally {
    pub durations: Histogram,
    pub codes: BTreeMap<i32, u64>,
    pub header_sizes: Counter,
    pub total_sizes: Counter,
    pub sockets: u64,
}

impl Tally {
    /// Counts one call's code and sizes (a call with no answer counts as code -1, size 0).
    fn count(&mut self, outcome: Result<Answer, String>, warn: bool) {
        match outcome {
            Ok(answer) => {
                if warn && answer.code != 200 {
                    let status: Vec<&str> = answer.status_line.split(' ').take(2).collect();
                    let message =
                        format!("Parsed non ok code {} ({})", answer.code, status.join(" "));
                    super::log('W', "http_client.go:679", &message);
                }
                *self.codes.entry(answer.code).or_default() += 1;
                self.header_sizes.record(answer.header_size as f64);
                let total = answer.header_size + answer.body.len();
                self.total_sizes.record(total as f64);
            }
            Err(e) => {
                if warn {
                    super::log('E', "http_client.go:1032", &e);
                }
                *self.codes.entry(NO_ANSWER).or_default() += 1;
                self.header_sizes.record(0.0);
                self.total_sizes.record(0.0);
            }
        }
    }

    pub fn merge(&mut self, other: &Tally) {
        self.durations.merge(&other.durations);
        for (code, n) in &other.codes {
            *self.codes.entry(*code).or_default() += n;
        }
        self.header_sizes.merge(&other.header_sizes);
        self.total_sizes.merge(&other.total_sizes);
        self.sockets += other.sockets;
    }
}

/// What a worker is to do.
pub(crate) struct Plan {
    /// Calls to make; `None` runs until `deadline` or the stop signal.
    pub calls: Option<u64>,
    pub deadline: Option<Instant>,
    /// Time between this worker's calls (`None`: back to back).
    pub interval: Option<Duration>,
    pub timeout: Duration,
    pub keepalive: bool,
    pub warn: bool,
}

/// Set once the run is interrupted; workers stop before their next call.
pub(crate) struct Stop {
    pub flag: AtomicBool,
    pub notify: Notify,
}

pub(crate) async fn worker(target: Arc<Target>, plan: Plan, stop: Arc<Stop>) -> Tally {
    let mut tally = Tally::default();
    let mut conn = Connection {
        sender: None,
        sockets: 0,
    };
    let start = Instant::now();
    let mut made = 0u64;
    loop {
        if plan.calls.is_some_and(|n| made >= n)
            || plan.deadline.is_some_and(|d| Instant::now() >= d)
            || stop.flag.load(Ordering::Relaxed)
        {
            break;
        }
        if let Some(interval) = plan.interval {
            let due = start + interval.mul_f64(made as f64);
            tokio::select! {
                _ = tokio::time::sleep_until(due.into()) => {}
                _ = stop.notify.notified() => break,
            }
            // The wait may have run past the end of a timed run.
            if plan.deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
        }
        let began = Instant::now();
        let outcome = tokio::select! {
            outcome = conn.call(&target, plan.timeout, plan.keepalive) => outcome,
            _ = stop.notify.notified() => break,
        };
        tally.durations.record(began.elapsed().as_secs_f64());
        made += 1;
        tally.count(outcome, plan.warn);
    }
    tally.sockets = conn.sockets;
    tally
}
