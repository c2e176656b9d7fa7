//! HTTP/1.1 upgrades through the proxy. Istio enables WebSocket on every HTTP route: the
//! `Upgrade: websocket` request goes upstream over HTTP/1.1 with its upgrade headers, and
//! when the upstream answers `101 Switching Protocols` the two connections are joined and
//! bytes copied both ways until either side closes. Other upgrade tokens are refused with
//! 403, as Envoy refuses upgrades it has no config for (`h2c` is the exception: Envoy drops
//! it and serves the request as plain HTTP/1.1).

use http::HeaderMap;
use http::header::{self, HeaderValue};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

/// What a request's `Upgrade` asks for.
pub enum Upgrade {
    /// No upgrade (or `h2c`, which is dropped).
    None,
    WebSocket(HeaderValue),
    /// An upgrade the proxy does not carry.
    Refused(String),
}

/// Reads the request's upgrade: an `Upgrade` header named by `Connection: upgrade`.
pub fn requested(headers: &HeaderMap) -> Upgrade {
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    let Some(value) = headers.get(header::UPGRADE).filter(|_| connection_upgrade) else {
        return Upgrade::None;
    };
    let token = String::from_utf8_lossy(value.as_bytes()).to_ascii_lowercase();
    match token.trim() {
        "websocket" => Upgrade::WebSocket(value.clone()),
        "h2c" => Upgrade::None,
        other => Upgrade::Refused(other.to_string()),
    }
}

/// Puts the upgrade headers back on the upstream request (they are hop-by-hop, so the
/// header cleanup removed them).
pub fn restore(headers: &mut HeaderMap, upgrade: HeaderValue) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, upgrade);
}

/// Joins the downstream and upstream connections once both have switched protocols.
pub fn tunnel(downstream: OnUpgrade, upstream: OnUpgrade) {
    tokio::spawn(async move {
        let (down, up) = match tokio::try_join!(downstream, upstream) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(error = %e, "upgrade did not complete");
                return;
            }
        };
        let (mut down, mut up) = (TokioIo::new(down), TokioIo::new(up));
        match tokio::io::copy_bidirectional(&mut down, &mut up).await {
            Ok((sent, received)) => tracing::debug!(sent, received, "upgraded connection closed"),
            Err(e) => tracing::debug!(error = %e, "upgraded connection ended with an error"),
        }
    });
}
