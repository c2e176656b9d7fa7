//! Retry policies as Istio writes them for Envoy: which failures are retried (`retryOn`,
//! Envoy's conditions and plain status codes), how many times, each try's timeout, and the
//! jittered exponential back-off between tries.

use std::time::Duration;

use http::HeaderMap;
use serde::Serialize;
use weft_api::networking::virtual_service::HttpRetry;

/// Envoy's retry conditions, as bits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RetryOn(u16);

impl RetryOn {
    pub const FIVE_XX: RetryOn = RetryOn(1);
    pub const GATEWAY_ERROR: RetryOn = RetryOn(1 << 1);
    pub const RESET: RetryOn = RetryOn(1 << 2);
    pub const CONNECT_FAILURE: RetryOn = RetryOn(1 << 3);
    pub const RETRIABLE_4XX: RetryOn = RetryOn(1 << 4);
    pub const REFUSED_STREAM: RetryOn = RetryOn(1 << 5);
    pub const RETRIABLE_STATUS_CODES: RetryOn = RetryOn(1 << 6);
    pub const RETRIABLE_HEADERS: RetryOn = RetryOn(1 << 7);
    pub const GRPC_CANCELLED: RetryOn = RetryOn(1 << 8);
    pub const GRPC_DEADLINE_EXCEEDED: RetryOn = RetryOn(1 << 9);
    pub const GRPC_INTERNAL: RetryOn = RetryOn(1 << 10);
    pub const GRPC_RESOURCE_EXHAUSTED: RetryOn = RetryOn(1 << 11);
    pub const GRPC_UNAVAILABLE: RetryOn = RetryOn(1 << 12);
    pub const RESET_BEFORE_REQUEST: RetryOn = RetryOn(1 << 13);

    /// Envoy's condition names (`x-envoy-retry-on` and `x-envoy-retry-grpc-on` use the
    /// same), with the gRPC status code each gRPC condition stands for.
    const NAMES: [(&'static str, RetryOn, Option<u8>); 14] = [
        ("5xx", RetryOn::FIVE_XX, None),
        ("gateway-error", RetryOn::GATEWAY_ERROR, None),
        ("reset", RetryOn::RESET, None),
        ("connect-failure", RetryOn::CONNECT_FAILURE, None),
        ("retriable-4xx", RetryOn::RETRIABLE_4XX, None),
        ("refused-stream", RetryOn::REFUSED_STREAM, None),
        (
            "retriable-status-codes",
            RetryOn::RETRIABLE_STATUS_CODES,
            None,
        ),
        ("retriable-headers", RetryOn::RETRIABLE_HEADERS, None),
        ("cancelled", RetryOn::GRPC_CANCELLED, Some(1)),
        (
            "deadline-exceeded",
            RetryOn::GRPC_DEADLINE_EXCEEDED,
            Some(4),
        ),
        ("internal", RetryOn::GRPC_INTERNAL, Some(13)),
        (
            "resource-exhausted",
            RetryOn::GRPC_RESOURCE_EXHAUSTED,
            Some(8),
        ),
        ("unavailable", RetryOn::GRPC_UNAVAILABLE, Some(14)),
        ("reset-before-request", RetryOn::RESET_BEFORE_REQUEST, None),
    ];

    pub fn contains(self, other: RetryOn) -> bool {
        self.0 & other.0 == other.0
    }

    fn any(self, other: RetryOn) -> bool {
        self.0 & other.0 != 0
    }

    fn with(self, other: RetryOn) -> RetryOn {
        RetryOn(self.0 | other.0)
    }

    fn named(name: &str) -> Option<RetryOn> {
        Self::NAMES
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, bit, _)| *bit)
    }
}

/// Istio's default `retryOn`, used when a route says nothing (and for a `retries` block
/// without `retryOn`).
const ISTIO_DEFAULT_RETRY_ON: &str =
    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes";

/// Envoy's default base back-off interval; the maximum is ten times the base.
const DEFAULT_BACKOFF: Duration = Duration::from_millis(25);

/// One route's retry policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetryPolicy {
    /// Retries after the first try (0: none).
    pub retries: u32,
    pub retry_on: RetryOn,
    /// Statuses `retriable-status-codes` retries.
    pub status_codes: Vec<u16>,
    /// Each try's own timeout.
    pub per_try_timeout: Option<Duration>,
    /// Whether a retry avoids endpoints earlier tries used (`retryIgnorePreviousHosts`).
    pub avoid_previous_hosts: bool,
    pub backoff: Duration,
}

impl RetryPolicy {
    /// Istio's policy for a route without `retries`: two retries on connection failures,
    /// refused streams, gRPC `unavailable`/`cancelled` and 503.
    pub fn istio_default() -> Self {
        let (retry_on, _) = parse_retry_on(ISTIO_DEFAULT_RETRY_ON);
        RetryPolicy {
            retries: 2,
            retry_on,
            status_codes: vec![503],
            per_try_timeout: None,
            avoid_previous_hosts: true,
            backoff: DEFAULT_BACKOFF,
        }
    }

    /// The policy for a route's `retries` (Istio's `ConvertPolicy`): `attempts: 0`
    /// turns retries off; status codes in `retryOn` become `retriable-status-codes`.
    pub fn compile(retries: Option<&HttpRetry>) -> Self {
        let mut policy = Self::istio_default();
        let Some(r) = retries else { return policy };
        policy.retries = u32::try_from(r.attempts).unwrap_or(0);
        if !r.retry_on.is_empty() {
            let (on, codes) = parse_retry_on(&r.retry_on);
            policy.retry_on = on;
            if !codes.is_empty() {
                policy.retry_on = policy.retry_on.with(RetryOn::RETRIABLE_STATUS_CODES);
                policy.status_codes = codes;
            }
        }
        policy.per_try_timeout = r.per_try_timeout.map(|d| d.get()).filter(|d| !d.is_zero());
        policy.avoid_previous_hosts = r.retry_ignore_previous_hosts != Some(false);
        if let Some(b) = r.backoff.map(|d| d.get()).filter(|d| !d.is_zero()) {
            policy.backoff = b;
        }
        policy
    }

    /// Applies a mesh-internal caller's `x-envoy-retry-on`, `x-envoy-retry-grpc-on`,
    /// `x-envoy-max-retries` and `x-envoy-retriable-status-codes`: their conditions add to
    /// the route's, their count replaces it.
    pub fn steer(&mut self, headers: &HeaderMap) {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        for name in ["x-envoy-retry-on", "x-envoy-retry-grpc-on"] {
            if let Some(v) = text(name) {
                let (on, codes) = parse_retry_on(v);
                self.retry_on = self.retry_on.with(on);
                self.status_codes.extend(codes);
            }
        }
        if let Some(codes) = text("x-envoy-retriable-status-codes") {
            self.status_codes.extend(
                codes
                    .split(',')
                    .filter_map(|c| c.trim().parse::<u16>().ok()),
            );
        }
        if let Some(n) = text("x-envoy-max-retries").and_then(|n| n.trim().parse().ok()) {
            self.retries = n;
        }
    }

    /// Whether an upstream answer with `status` and `headers` is retried. `retriable` names
    /// headers (from `x-envoy-retriable-header-names`) whose presence makes it so.
    pub fn retries_response(&self, status: u16, headers: &HeaderMap, retriable: &[String]) -> bool {
        let on = self.retry_on;
        let grpc = headers
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u8>().ok());
        (on.contains(RetryOn::FIVE_XX) && (500..600).contains(&status))
            || (on.contains(RetryOn::GATEWAY_ERROR) && matches!(status, 502..=504))
            || (on.contains(RetryOn::RETRIABLE_4XX) && status == 409)
            || (on.contains(RetryOn::RETRIABLE_STATUS_CODES) && self.status_codes.contains(&status))
            || (on.contains(RetryOn::RETRIABLE_HEADERS)
                && retriable.iter().any(|h| headers.contains_key(h.as_str())))
            || grpc.is_some_and(|code| {
                RetryOn::NAMES
                    .iter()
                    .any(|(_, bit, c)| *c == Some(code) && on.contains(*bit))
            })
    }

    /// Whether a failure without an answer is retried.
    pub fn retries_failure(&self, failure: Failure) -> bool {
        let on = self.retry_on;
        match failure {
            Failure::Connect => on.any(
                RetryOn::CONNECT_FAILURE
                    .with(RetryOn::FIVE_XX)
                    .with(RetryOn::GATEWAY_ERROR)
                    .with(RetryOn::RESET_BEFORE_REQUEST),
            ),
            Failure::Reset => on.any(RetryOn::RESET.with(RetryOn::FIVE_XX)),
            Failure::RefusedStream => on.any(
                RetryOn::REFUSED_STREAM
                    .with(RetryOn::FIVE_XX)
                    .with(RetryOn::RESET),
            ),
            // Envoy answers a try that timed out as a 504 and asks the policy about that.
            Failure::PerTryTimeout => {
                on.any(RetryOn::RESET) || self.retries_response(504, &HeaderMap::new(), &[])
            }
        }
    }

    /// How long to wait before retry number `n` (1 for the first): Envoy's fully jittered
    /// exponential back-off, a random time up to `base * (2^n - 1)`, capped at ten times
    /// the base.
    pub fn backoff(&self, n: u32) -> Duration {
        let base = self.backoff.as_millis().max(1);
        let ceiling = base.saturating_mul((1u128 << n.min(16)) - 1).min(base * 10);
        let ms = fastrand::u64(..=u64::try_from(ceiling).unwrap_or(u64::MAX));
        Duration::from_millis(ms)
    }
}

/// A try that ended without an answer from the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No connection could be made.
    Connect,
    /// The connection broke before the answer's headers.
    Reset,
    /// An HTTP/2 endpoint refused the stream (`REFUSED_STREAM`): safe to retry.
    RefusedStream,
    PerTryTimeout,
}

/// Splits a `retryOn` list into Envoy conditions and plain status codes; unknown words
/// are ignored, as Envoy ignores them.
fn parse_retry_on(list: &str) -> (RetryOn, Vec<u16>) {
    let mut on = RetryOn::default();
    let mut codes = Vec::new();
    for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        if let Ok(code) = word.parse::<u16>() {
            codes.push(code);
        } else if let Some(bit) = RetryOn::named(word) {
            on = on.with(bit);
        }
    }
    (on, codes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(retry_on: &str) -> RetryPolicy {
        RetryPolicy::compile(Some(&HttpRetry {
            attempts: 3,
            retry_on: retry_on.into(),
            ..HttpRetry::default()
        }))
    }

    fn grpc(code: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("grpc-status", code.parse().unwrap());
        h
    }

    #[test]
    fn istio_default_retries_connect_failures_and_503_twice() {
        let p = RetryPolicy::compile(None);
        assert_eq!(p.retries, 2);
        assert!(p.retries_failure(Failure::Connect));
        assert!(p.retries_failure(Failure::RefusedStream));
        assert!(!p.retries_failure(Failure::Reset));
        assert!(p.retries_response(503, &HeaderMap::new(), &[]));
        assert!(!p.retries_response(500, &HeaderMap::new(), &[]));
        assert!(!p.retries_response(502, &HeaderMap::new(), &[]));
        assert!(p.retries_response(200, &grpc("14"), &[]), "unavailable");
        assert!(p.retries_response(200, &grpc("1"), &[]), "cancelled");
        assert!(!p.retries_response(200, &grpc("13"), &[]), "internal");
        assert!(!p.retries_failure(Failure::PerTryTimeout));
    }

    #[test]
    fn zero_attempts_turn_retries_off_and_empty_retry_on_keeps_the_default() {
        let off = RetryPolicy::compile(Some(&HttpRetry::default()));
        assert_eq!(off.retries, 0);
        let p = policy("");
        assert_eq!(
            (p.retries, p.retry_on),
            (3, RetryPolicy::istio_default().retry_on)
        );
    }

    #[test]
    fn conditions_select_what_is_retried() {
        let gw = policy("gateway-error");
        assert!(gw.retries_response(502, &HeaderMap::new(), &[]));
        assert!(gw.retries_response(504, &HeaderMap::new(), &[]));
        assert!(!gw.retries_response(500, &HeaderMap::new(), &[]));
        assert!(gw.retries_failure(Failure::PerTryTimeout));
        assert!(!gw.retries_failure(Failure::Reset));
        let all = policy("5xx");
        assert!(all.retries_response(500, &HeaderMap::new(), &[]));
        assert!(all.retries_failure(Failure::Reset));
        assert!(all.retries_failure(Failure::Connect));
        assert!(policy("retriable-4xx").retries_response(409, &HeaderMap::new(), &[]));
        assert!(!policy("retriable-4xx").retries_response(404, &HeaderMap::new(), &[]));
        assert!(policy("reset").retries_failure(Failure::PerTryTimeout));
        assert!(!policy("connect-failure").retries_failure(Failure::Reset));
        let internal = policy("internal,resource-exhausted,deadline-exceeded");
        for code in ["13", "8", "4"] {
            assert!(internal.retries_response(200, &grpc(code), &[]), "{code}");
        }
        assert!(!internal.retries_response(200, &grpc("14"), &[]));
    }

    #[test]
    fn plain_status_codes_become_retriable_status_codes() {
        let p = policy("connect-failure,418, 429");
        assert!(p.retry_on.contains(RetryOn::RETRIABLE_STATUS_CODES));
        assert_eq!(p.status_codes, [418, 429]);
        assert!(p.retries_response(429, &HeaderMap::new(), &[]));
        assert!(!p.retries_response(503, &HeaderMap::new(), &[]));
        assert!(p.retries_failure(Failure::Connect));
    }

    #[test]
    fn retriable_headers_come_from_the_request() {
        let p = policy("retriable-headers");
        let mut h = HeaderMap::new();
        h.insert("x-upstream-busy", "1".parse().unwrap());
        assert!(p.retries_response(200, &h, &["x-upstream-busy".into()]));
        assert!(!p.retries_response(200, &h, &["x-other".into()]));
    }

    #[test]
    fn callers_steer_with_envoy_headers() {
        let mut p = RetryPolicy::compile(Some(&HttpRetry::default()));
        let mut h = HeaderMap::new();
        h.insert("x-envoy-retry-on", "5xx".parse().unwrap());
        h.insert("x-envoy-max-retries", "4".parse().unwrap());
        h.insert("x-envoy-retriable-status-codes", "418".parse().unwrap());
        p.steer(&h);
        assert_eq!(p.retries, 4);
        assert!(p.retries_response(500, &HeaderMap::new(), &[]));
        assert!(p.status_codes.contains(&418));
    }

    #[test]
    fn backoff_is_jittered_and_capped_at_ten_times_the_base() {
        let p = RetryPolicy::istio_default();
        for n in 1..20 {
            let b = p.backoff(n);
            assert!(b <= Duration::from_millis(250), "{n}: {b:?}");
        }
        assert!(p.backoff(1) <= Duration::from_millis(25));
        let spread: std::collections::HashSet<_> = (0..50).map(|_| p.backoff(3)).collect();
        assert!(spread.len() > 5, "jittered: {spread:?}");
    }
}
