//! Errors the proxy answers itself, with the status code and Envoy response flag each
//! maps to, in one place (metrics and access logs will read the same flag).

use std::fmt;

/// Why the proxy answered a request itself rather than with the upstream's response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyError {
    /// No virtual host or route matched (`NR`).
    NoRoute(String),
    /// The route's cluster does not exist: unknown service, port or subset (`NC`).
    NoCluster(String),
    /// The cluster has no endpoint to send to (`UH`).
    NoHealthyUpstream(String),
    /// Connecting to the chosen endpoint failed (`UF`).
    ConnectFailure(String),
    /// The upstream connection failed after it was made (`UC`).
    UpstreamReset(String),
    /// A sidecar refused a destination outside the registry because the outbound
    /// traffic policy is REGISTRY_ONLY (502, `NR`, like Istio's `block_all` route).
    NotInRegistry(String),
    /// A circuit breaker refused the request (`UO`, with `x-envoy-overloaded: true`).
    Overflow(String),
    /// The route's timeout passed before the upstream answered (504, `UT`).
    Timeout(String),
    /// The route's fault injection aborted the request (`FI`) with this status.
    FaultAbort(u16),
    /// Every attempt failed and no retry is left (`URX` beside the last failure's flag).
    RetriesExhausted(Box<ProxyError>),
    /// A retry was due but the cluster's retry budget (`maxRetries`, `retryBudget`) had
    /// none left (`UO` beside the last failure's flag).
    RetryOverflow(Box<ProxyError>),
    /// The client's side broke while the proxy read its request (`DC`).
    DownstreamReset(String),
    /// Nothing moved on the request's stream for the stream idle timeout (504, `SI`).
    StreamIdle(String),
}

impl ProxyError {
    pub fn status(&self) -> http::StatusCode {
        match self {
            ProxyError::NoRoute(_) => http::StatusCode::NOT_FOUND,
            ProxyError::NotInRegistry(_) => http::StatusCode::BAD_GATEWAY,
            ProxyError::Timeout(_) | ProxyError::StreamIdle(_) => http::StatusCode::GATEWAY_TIMEOUT,
            ProxyError::FaultAbort(status) => {
                http::StatusCode::from_u16(*status).unwrap_or(http::StatusCode::BAD_REQUEST)
            }
            ProxyError::RetriesExhausted(last) | ProxyError::RetryOverflow(last) => last.status(),
            ProxyError::DownstreamReset(_) => http::StatusCode::BAD_REQUEST,
            _ => http::StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Envoy's response flag.
    pub fn flag(&self) -> &'static str {
        match self {
            ProxyError::NoRoute(_) | ProxyError::NotInRegistry(_) => "NR",
            ProxyError::NoCluster(_) => "NC",
            ProxyError::NoHealthyUpstream(_) => "UH",
            ProxyError::ConnectFailure(_) => "UF",
            ProxyError::UpstreamReset(_) => "UC",
            ProxyError::Overflow(_) => "UO",
            ProxyError::Timeout(_) => "UT",
            ProxyError::FaultAbort(_) => "FI",
            ProxyError::RetriesExhausted(last) | ProxyError::RetryOverflow(last) => last.flag(),
            ProxyError::DownstreamReset(_) => "DC",
            ProxyError::StreamIdle(_) => "SI",
        }
    }

    /// The body Envoy sends with this error (empty for `NR`, as Envoy's).
    pub fn body(&self) -> &'static str {
        match self {
            ProxyError::NoRoute(_)
            | ProxyError::NotInRegistry(_)
            | ProxyError::DownstreamReset(_) => "",
            ProxyError::NoCluster(_) | ProxyError::NoHealthyUpstream(_) => "no healthy upstream",
            ProxyError::ConnectFailure(_) | ProxyError::UpstreamReset(_) => {
                "upstream connect error or disconnect/reset before headers"
            }
            ProxyError::Overflow(_) => {
                "upstream connect error or disconnect/reset before headers. reset reason: overflow"
            }
            ProxyError::Timeout(_) => "upstream request timeout",
            ProxyError::StreamIdle(_) => "stream timeout",
            ProxyError::FaultAbort(_) => "fault filter abort",
            ProxyError::RetriesExhausted(last) | ProxyError::RetryOverflow(last) => last.body(),
        }
    }

    fn detail(&self) -> &str {
        match self {
            ProxyError::NoRoute(d)
            | ProxyError::NoCluster(d)
            | ProxyError::NoHealthyUpstream(d)
            | ProxyError::ConnectFailure(d)
            | ProxyError::UpstreamReset(d)
            | ProxyError::NotInRegistry(d)
            | ProxyError::Overflow(d)
            | ProxyError::Timeout(d)
            | ProxyError::DownstreamReset(d)
            | ProxyError::StreamIdle(d) => d,
            ProxyError::FaultAbort(_) => "injected by the route's fault policy",
            ProxyError::RetriesExhausted(last) | ProxyError::RetryOverflow(last) => last.detail(),
        }
    }
}

impl fmt::Display for ProxyError {
    /// `UH: no endpoint in outbound|9080|v1|reviews...`: what `x-weft-reason` carries.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let retries = match self {
            ProxyError::RetriesExhausted(_) => ",URX",
            ProxyError::RetryOverflow(_) => ",UO",
            _ => "",
        };
        write!(f, "{}{retries}: {}", self.flag(), self.detail())
    }
}
