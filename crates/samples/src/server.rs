//! The HTTP server every sample app runs on: accept on 0.0.0.0:PORT, serve HTTP/1.1 and h2c
//! with hyper, hand each fully read request to the app, write one access-log line per
//! request, stop on shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Response, StatusCode, Uri, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

use crate::Error;

/// The body of every response: the samples answer small documents, built whole.
pub(crate) type Body = Full<Bytes>;

/// Request bodies beyond this are refused with 413 (the samples never need big uploads).
const MAX_BODY: usize = 1 << 20;

/// A request as an app sees it: head, whole body, and who sent it.
pub(crate) struct Request {
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub peer: SocketAddr,
}

impl Request {
    pub fn path(&self) -> &str {
        self.uri.path()
    }

    /// A request header as text (`None` when absent or not visible ASCII).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Binds 0.0.0.0:`port` and serves `handler` until `shutdown` completes. Connections still
/// open then are dropped with the runtime: a sample exits promptly, as a pod's app does.
pub(crate) async fn serve<H, F>(
    port: u16,
    handler: H,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error>
where
    H: Fn(Request) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Listen { addr, source })?;
    let bound = listener.local_addr().unwrap_or(addr);
    log_line(format_args!("listening on http://{bound}"));
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                // Out of descriptors and the like: wait a little instead of spinning.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let handler = handler.clone();
                async move { Ok::<_, Infallible>(answer(req, peer, handler).await) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Reads the body, runs the app, logs the exchange.
async fn answer<H, F>(req: hyper::Request<Incoming>, peer: SocketAddr, handler: H) -> Response<Body>
where
    H: Fn(Request) -> F,
    F: Future<Output = Response<Body>>,
{
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            let resp = text(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n");
            access_log(
                &parts.method,
                &parts.uri,
                parts.version,
                &parts.headers,
                peer,
                &resp,
            );
            return resp;
        }
    };
    let request = Request {
        method: parts.method,
        uri: parts.uri,
        version: parts.version,
        headers: parts.headers,
        body,
        peer,
    };
    let (method, uri, version, headers) = (
        request.method.clone(),
        request.uri.clone(),
        request.version,
        request.headers.clone(),
    );
    let resp = handler(request).await;
    access_log(&method, &uri, version, &headers, peer, &resp);
    resp
}

/// One line in the Apache combined format gunicorn and most sample servers print, e.g.
/// `127.0.0.1 - - [21/Nov/2026:15:23:01 +0000] "GET /headers HTTP/1.1" 200 303 "-" "curl/8.5.0"`.
fn access_log(
    method: &Method,
    uri: &Uri,
    version: Version,
    headers: &HeaderMap,
    peer: SocketAddr,
    resp: &Response<Body>,
) {
    use hyper::body::Body as _;
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    let size = resp.body().size_hint().exact().unwrap_or(0);
    let quoted = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .replace('"', "\\\"")
    };
    log_line(format_args!(
        "{} - - [{}] \"{method} {target} {version:?}\" {} {size} \"{}\" \"{}\"",
        peer.ip(),
        crate::clock::now().common_log(),
        resp.status().as_u16(),
        quoted(header::REFERER),
        quoted(header::USER_AGENT),
    ));
}

/// Writes one line to stdout, ignoring a closed stdout (a sample never dies of its log).
pub(crate) fn log_line(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(args);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

/// A response with `body` and content type `content_type`.
pub(crate) fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// A plain-text response.
pub(crate) fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    respond(status, "text/plain; charset=utf-8", body)
}

/// An HTML response.
pub(crate) fn html(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    respond(status, "text/html; charset=utf-8", body)
}

/// A JSON response with the value written compactly, as node's and Java's servers do.
pub(crate) fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    respond(status, "application/json", value.to_string())
}

/// The 404 every app answers for paths it does not serve.
pub(crate) fn not_found() -> Response<Body> {
    html(
        StatusCode::NOT_FOUND,
        "<!doctype html>\n<title>404 Not Found</title>\n<h1>Not Found</h1>\n\
         <p>The requested URL was not found on the server.</p>\n",
    )
}

/// The 405 for a known path asked with a method it does not take.
pub(crate) fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut resp = html(
        StatusCode::METHOD_NOT_ALLOWED,
        "<!doctype html>\n<title>405 Method Not Allowed</title>\n<h1>Method Not Allowed</h1>\n\
         <p>The method is not allowed for the requested URL.</p>\n",
    );
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    resp
}

/// Decodes `application/x-www-form-urlencoded` text (a query string or a form body) into
/// its pairs, in order.
pub(crate) fn form_pairs(text: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let spaced = s.replace('+', " ");
        percent_encoding::percent_decode_str(&spaced)
            .decode_utf8_lossy()
            .into_owned()
    };
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(pair), String::new()),
        })
        .collect()
}

/// Escapes text for HTML element content and attribute values.
pub(crate) fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_pairs_decode_plus_and_percent() {
        let pairs = form_pairs("username=jason&passwd=a+b%21&flag");
        assert_eq!(
            pairs,
            vec![
                ("username".into(), "jason".into()),
                ("passwd".into(), "a b!".into()),
                ("flag".into(), String::new()),
            ]
        );
    }

    #[test]
    fn escape_html_escapes_markup() {
        assert_eq!(
            escape_html("<b a=\"1\">&'"),
            "&lt;b a=&quot;1&quot;&gt;&amp;&#39;"
        );
    }
}
