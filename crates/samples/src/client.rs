//! Calls from one sample to another (productpage to details and reviews, reviews to ratings,
//! web-frontend to customers): plain HTTP/1.1 GETs through a pooled hyper client, each
//! bounded by a timeout, as the originals' HTTP libraries do.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::header::HeaderMap;
use hyper::{Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::Error;

/// Upstream answers beyond this are treated as a failed call.
const MAX_REPLY: usize = 4 << 20;

/// Why a call produced no answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Transport(String),
}

/// One upstream service, named by a base URL such as `http://details:9080`.
#[derive(Clone)]
pub(crate) struct Upstream {
    base: String,
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl Upstream {
    /// Checks `url` (`http://HOST[:PORT][/PREFIX]`) now, so that a typo fails at start-up
    /// rather than on every request.
    pub fn new(url: &str) -> Result<Upstream, Error> {
        let bad = |reason: &str| Error::Url {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let uri: Uri = url.parse().map_err(|e| bad(&format!("{e}")))?;
        if uri.scheme_str() != Some("http") {
            return Err(bad("only http:// is supported (the sidecar does TLS)"));
        }
        if uri.authority().is_none() {
            return Err(bad("no host"));
        }
        if uri.query().is_some() {
            return Err(bad("a query string is not allowed"));
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Upstream {
            base: url.trim_end_matches('/').to_string(),
            client,
        })
    }

    /// GETs `path` (starting with `/`) with `headers`, giving up after `timeout`; returns
    /// the status and the whole body.
    pub async fn get(
        &self,
        path: &str,
        headers: &HeaderMap,
        timeout: Duration,
    ) -> Result<(StatusCode, Bytes), CallError> {
        let uri = format!("{}{path}", self.base);
        let mut req = Request::get(uri.as_str())
            .body(Empty::new())
            .map_err(|e| CallError::Transport(format!("cannot build a request for {uri}: {e}")))?;
        req.headers_mut().extend(headers.clone());
        let call = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| CallError::Transport(format!("{uri}: {}", chain(&e))))?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), MAX_REPLY)
                .collect()
                .await
                .map_err(|e| CallError::Transport(format!("{uri}: reading the answer: {e}")))?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(timeout, call)
            .await
            .map_err(|_| CallError::Timeout(timeout))?
    }
}

/// An error with its causes, `outer: inner: ...` (hyper's own text is often just "client error").
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_urls_are_checked_up_front() {
        assert!(Upstream::new("http://details:9080").is_ok());
        assert!(Upstream::new("http://127.0.0.1:1/prefix/").is_ok());
        assert!(Upstream::new("https://details:9080").is_err());
        assert!(Upstream::new("details:9080").is_err());
        assert!(Upstream::new("http://details:9080/?q=1").is_err());
    }
}
