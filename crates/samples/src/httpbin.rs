//! httpbin, the HTTP request-and-response service Istio's tasks call: `/get`, `/headers`,
//! `/ip`, `/user-agent`, `/status/CODE`, `/delay/SECONDS`, `/anything`, `/post` and friends,
//! `/response-headers`, answered with httpbin's JSON shapes (keys sorted, two-space indent,
//! request headers in `Title-Case`, proxy headers such as `X-Request-Id` hidden unless the
//! query has `show_env`).

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Method, Response, StatusCode};
use serde_json::{Map, Value};

use crate::Error;
use crate::server::{self, Body, Request};

/// The longest `/delay` httpbin grants.
const MAX_DELAY: f64 = 10.0;

/// Headers a proxy in front adds; httpbin leaves them out of what it echoes.
const ENV_HEADERS: &[&str] = &[
    "x-varnish",
    "x-request-start",
    "x-heroku-queue-depth",
    "x-real-ip",
    "x-forwarded-proto",
    "x-forwarded-protocol",
    "x-forwarded-ssl",
    "x-heroku-queue-wait-time",
    "x-forwarded-for",
    "x-heroku-dynos-in-use",
    "x-forwarded-port",
    "x-request-id",
    "via",
    "total-route-time",
    "connect-time",
];

/// `weft sample httpbin`.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// The port to listen on (0.0.0.0).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
}

pub async fn run(options: Options, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    server::serve(
        options.port,
        |req| async move { handle(&req).await },
        shutdown,
    )
    .await
}

async fn handle(req: &Request) -> Response<Body> {
    let mut resp = route(req).await;
    // httpbin answers every origin, with credentials.
    let origin = req
        .headers
        .get(header::ORIGIN)
        .cloned()
        .unwrap_or(HeaderValue::from_static("*"));
    let h = resp.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    resp
}

async fn route(req: &Request) -> Response<Body> {
    let path = req.path();
    let method = &req.method;
    let get_like = method == Method::GET || method == Method::HEAD;
    match path {
        "/" if get_like => server::html(StatusCode::OK, INDEX),
        "/get" if get_like => dict(req, &["url", "args", "headers", "origin"]),
        "/headers" if get_like => dict(req, &["headers"]),
        "/ip" if get_like => dict(req, &["origin"]),
        "/user-agent" if get_like => {
            let ua = req.header("user-agent").unwrap_or("");
            pretty(StatusCode::OK, &object([("user-agent", Value::from(ua))]))
        }
        "/post" | "/put" | "/patch" | "/delete" => {
            if path[1..].eq_ignore_ascii_case(method.as_str()) {
                dict(
                    req,
                    &[
                        "url", "args", "form", "data", "origin", "headers", "files", "json",
                    ],
                )
            } else {
                server::method_not_allowed(match path {
                    "/post" => "POST",
                    "/put" => "PUT",
                    "/patch" => "PATCH",
                    _ => "DELETE",
                })
            }
        }
        "/response-headers" if get_like || method == Method::POST => response_headers(req),
        p if p == "/anything" || p.starts_with("/anything/") => dict(
            req,
            &[
                "url", "args", "headers", "origin", "method", "form", "data", "files", "json",
            ],
        ),
        p if p.starts_with("/status/") => status(&p["/status/".len()..]),
        p if p.starts_with("/delay/") => delay(req, &p["/delay/".len()..]).await,
        "/get" | "/headers" | "/ip" | "/user-agent" | "/" => {
            server::method_not_allowed("GET, HEAD, OPTIONS")
        }
        _ => server::not_found(),
    }
}

/// The request described by `keys`, httpbin's `get_dict`.
fn dict(req: &Request, keys: &[&str]) -> Response<Body> {
    let args = query_pairs(req);
    let content_type = req.header("content-type").unwrap_or("");
    let body = String::from_utf8_lossy(&req.body).into_owned();
    let mut out = BTreeMap::new();
    for key in keys {
        let value = match *key {
            "url" => Value::from(url(req)),
            "args" => semiflatten(&args),
            "form" if content_type.starts_with("application/x-www-form-urlencoded") => {
                semiflatten(&server::form_pairs(&body))
            }
            "form" | "files" => Value::Object(Map::new()),
            "data" => Value::from(body.clone()),
            "origin" => Value::from(origin(req)),
            "headers" => headers(req, args.iter().any(|(k, _)| k == "show_env")),
            "json" => serde_json::from_str(&body).unwrap_or(Value::Null),
            "method" => Value::from(req.method.as_str()),
            _ => Value::Null,
        };
        out.insert(key.to_string(), value);
    }
    pretty(StatusCode::OK, &Value::Object(out.into_iter().collect()))
}

fn query_pairs(req: &Request) -> Vec<(String, String)> {
    server::form_pairs(req.uri.query().unwrap_or(""))
}

/// Pairs as an object: one value as a string, several as a list.
fn semiflatten(pairs: &[(String, String)]) -> Value {
    let mut grouped: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (k, v) in pairs {
        grouped.entry(k).or_default().push(v);
    }
    let map = grouped.into_iter().map(|(k, vs)| {
        let value = match vs.as_slice() {
            [one] => Value::from(*one),
            many => Value::from(many.iter().map(|s| Value::from(*s)).collect::<Vec<_>>()),
        };
        (k.to_string(), value)
    });
    Value::Object(map.collect())
}

/// Request headers as httpbin shows them: `Title-Case` names, repeated values joined with
/// commas, proxy headers hidden unless `show_env`.
fn headers(req: &Request, show_env: bool) -> Value {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in &req.headers {
        if !show_env && ENV_HEADERS.contains(&name.as_str()) {
            continue;
        }
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        out.entry(title_case(name.as_str()))
            .and_modify(|v| {
                v.push(',');
                v.push_str(&value);
            })
            .or_insert(value);
    }
    // HTTP/2 carries the host as `:authority`, which httpbin (behind a WSGI server) sees as Host.
    if let Some(authority) = req.uri.authority() {
        out.entry("Host".to_string())
            .or_insert_with(|| authority.to_string());
    }
    Value::Object(out.into_iter().map(|(k, v)| (k, Value::from(v))).collect())
}

/// `x-b3-traceid` -> `X-B3-Traceid`, the way a WSGI server hands headers to httpbin.
fn title_case(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => {
                    first.to_ascii_uppercase().to_string() + &chars.as_str().to_ascii_lowercase()
                }
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// Who asked: the first hop of `X-Forwarded-For` when a proxy names one, else the peer.
fn origin(req: &Request) -> String {
    match req.header("x-forwarded-for") {
        Some(xff) => xff.to_string(),
        None => req.peer.ip().to_string(),
    }
}

/// The URL the client asked for, with the scheme a proxy in front reports.
fn url(req: &Request) -> String {
    let scheme = req
        .header("x-forwarded-proto")
        .or_else(|| req.header("x-forwarded-protocol"))
        .unwrap_or("http");
    let host = req
        .header("host")
        .map(str::to_string)
        .or_else(|| req.uri.authority().map(|a| a.to_string()))
        .unwrap_or_default();
    let target = req.uri.path_and_query().map_or("/", |p| p.as_str());
    format!("{scheme}://{host}{target}")
}

/// `/status/CODE`, or a random pick from `CODE,CODE` / `CODE:WEIGHT,CODE:WEIGHT`.
fn status(spec: &str) -> Response<Body> {
    let Some(code) = pick_status(spec) else {
        return server::text(StatusCode::BAD_REQUEST, "Invalid status code");
    };
    let mut resp = server::html(code, Bytes::new());
    let h = resp.headers_mut();
    match code.as_u16() {
        301 | 302 | 303 | 305 | 307 => {
            h.insert(header::LOCATION, HeaderValue::from_static("/redirect/1"));
        }
        401 => {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"Fake Realm\""),
            );
        }
        407 => {
            h.insert(
                header::PROXY_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"Fake Realm\""),
            );
        }
        418 => {
            *resp.body_mut() = Full::new(Bytes::from_static(b"\n    -=[ teapot ]=-\n"));
            resp.headers_mut().insert(
                HeaderName::from_static("x-more-info"),
                HeaderValue::from_static("http://tools.ietf.org/html/rfc2324"),
            );
        }
        _ => {}
    }
    resp
}

fn pick_status(spec: &str) -> Option<StatusCode> {
    let mut choices = Vec::new();
    for part in spec.split(',') {
        let (code, weight) = match part.split_once(':') {
            Some((code, weight)) => (code, weight.trim().parse::<f64>().ok()?),
            None => (part, 1.0),
        };
        let code = StatusCode::from_u16(code.trim().parse().ok()?).ok()?;
        if !(weight.is_finite() && weight >= 0.0) {
            return None;
        }
        choices.push((code, weight));
    }
    let total: f64 = choices.iter().map(|(_, w)| w).sum();
    let mut at = fastrand::f64() * total;
    for (code, weight) in &choices {
        if at < *weight {
            return Some(*code);
        }
        at -= weight;
    }
    choices.last().map(|(code, _)| *code)
}

/// `/delay/SECONDS`: waits (at most 10 s), then describes the request.
async fn delay(req: &Request, seconds: &str) -> Response<Body> {
    let Some(secs) = seconds
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
    else {
        return server::not_found();
    };
    tokio::time::sleep(Duration::from_secs_f64(secs.min(MAX_DELAY))).await;
    dict(
        req,
        &["url", "args", "form", "data", "origin", "headers", "files"],
    )
}

/// `/response-headers?K=V...`: answers with those headers set, and lists every header of
/// the answer (its own Content-Length included) in the body.
fn response_headers(req: &Request) -> Response<Body> {
    let pairs = query_pairs(req);
    let mut extra = Vec::new();
    for (k, v) in &pairs {
        match (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            (Ok(name), Ok(value)) => extra.push((name, value)),
            _ => return server::text(StatusCode::BAD_REQUEST, "Invalid header\n"),
        }
    }
    // The body names its own length: grow it until the length it names stops changing.
    let mut length = 0usize;
    loop {
        let mut listed: BTreeMap<String, Vec<String>> = BTreeMap::new();
        listed
            .entry("Content-Type".into())
            .or_default()
            .push("application/json".into());
        listed
            .entry("Content-Length".into())
            .or_default()
            .push(length.to_string());
        for (k, v) in &pairs {
            listed.entry(k.clone()).or_default().push(v.clone());
        }
        let body = Value::Object(
            listed
                .into_iter()
                .map(|(k, vs)| match vs.as_slice() {
                    [one] => (k, Value::from(one.as_str())),
                    _ => (k, Value::from(vs)),
                })
                .collect(),
        );
        let text = pretty_text(&body);
        if text.len() == length {
            let mut resp = server::respond(StatusCode::OK, "application/json", text);
            for (name, value) in extra {
                resp.headers_mut().append(name, value);
            }
            return resp;
        }
        length = text.len();
    }
}

fn object<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    Value::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

/// httpbin's JSON: indented by two spaces, ending in a newline.
fn pretty(status: StatusCode, value: &Value) -> Response<Body> {
    server::respond(status, "application/json", pretty_text(value))
}

fn pretty_text(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    text.push('\n');
    text
}

const INDEX: &str = "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n\
<title>httpbin(1): HTTP Request &amp; Response Service</title>\n</head>\n<body>\n\
<h1>httpbin(1): HTTP Request &amp; Response Service</h1>\n<h2>ENDPOINTS</h2>\n<ul>\n\
<li><code>/</code> This page.</li>\n\
<li><code>/ip</code> Returns the client's IP.</li>\n\
<li><code>/user-agent</code> Returns the user agent.</li>\n\
<li><code>/headers</code> Returns the request's headers.</li>\n\
<li><code>/get</code> Returns GET data.</li>\n\
<li><code>/post</code>, <code>/put</code>, <code>/patch</code>, <code>/delete</code> Return the request's data.</li>\n\
<li><code>/anything</code> Returns anything passed in the request.</li>\n\
<li><code>/status/:code</code> Returns the given HTTP status code (or a random one of <code>200,503</code> or <code>200:0.9,503:0.1</code>).</li>\n\
<li><code>/delay/:n</code> Delays the answer by n seconds (at most 10).</li>\n\
<li><code>/response-headers?key=val</code> Returns the given response headers.</li>\n\
</ul>\n</body>\n</html>\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_are_title_cased_like_wsgi() {
        assert_eq!(title_case("x-b3-traceid"), "X-B3-Traceid");
        assert_eq!(title_case("user-agent"), "User-Agent");
        assert_eq!(title_case("HOST"), "Host");
    }

    #[test]
    fn status_specs() {
        assert_eq!(pick_status("503"), Some(StatusCode::SERVICE_UNAVAILABLE));
        assert_eq!(pick_status("200:0,418:1"), Some(StatusCode::IM_A_TEAPOT));
        assert!(pick_status("abc").is_none());
        assert!(pick_status("99").is_none());
        let either = pick_status("200,503");
        assert!(either == Some(StatusCode::OK) || either == Some(StatusCode::SERVICE_UNAVAILABLE));
    }

    #[test]
    fn repeated_args_become_lists() {
        let pairs = server::form_pairs("a=1&b=2&a=3");
        assert_eq!(
            semiflatten(&pairs),
            serde_json::json!({"a": ["1", "3"], "b": "2"})
        );
    }
}
