//! The API's proxy and workload paths: `/debug/config_dump?proxyID=NAME` (Istio's name),
//! which reads a connected proxy's admin API (`/config_dump` and `/clusters`) for
//! `weft proxy-config`, and `/v1/workloads`, where workloads register themselves when
//! they start and deregister when they stop (the one-host runtime's `weft run`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use weft_api::registry::Workload;

use super::{Query, json_response, method_not_allowed, no_such_path, read_body, status};
use crate::push::{ProxyLookupError, PushServer, Registered};

/// How long a proxy's admin API may take to answer.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest admin answer read (a big mesh's tables).
const MAX_ADMIN_BODY: usize = 64 << 20;

/// `/debug/syncz[?proxyID=NAME]`: every connected proxy's sync state, or one proxy's.
pub(super) fn syncz(push: &PushServer, query: &Query) -> Response<Full<Bytes>> {
    match push.syncz(query.get("proxyID").filter(|p| !p.is_empty())) {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(e) => lookup_failed(&e),
    }
}

/// A proxy lookup's failure as the API's answer.
fn lookup_failed(e: &ProxyLookupError) -> Response<Full<Bytes>> {
    match e {
        ProxyLookupError::NotConnected(_) => {
            status(StatusCode::NOT_FOUND, "NotFound", e.to_string())
        }
        ProxyLookupError::Ambiguous(..) => {
            status(StatusCode::BAD_REQUEST, "BadRequest", e.to_string())
        }
        ProxyLookupError::NoAdmin(_) => {
            status(StatusCode::BAD_GATEWAY, "BadGateway", e.to_string())
        }
    }
}

/// `/debug/config_dump?proxyID=NAME`: the proxy's tables (`config_dump`) and its
/// endpoints' health (`clusters`, Envoy's text), as one JSON document.
pub(super) async fn config_dump(push: &PushServer, query: &Query) -> Response<Full<Bytes>> {
    let Some(proxy) = query.get("proxyID").filter(|p| !p.is_empty()) else {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "usage: /debug/config_dump?proxyID=NAME".into(),
        );
    };
    let admin = match push.admin_address(proxy) {
        Ok(a) => a,
        Err(e) => return lookup_failed(&e),
    };
    let fetched = async {
        let dump = admin_get(&admin, "/config_dump").await?;
        let clusters = admin_get(&admin, "/clusters").await?;
        let dump: Value = serde_json::from_str(&dump)
            .map_err(|e| format!("its /config_dump is not JSON: {e}"))?;
        Ok::<_, String>(json!({
            "proxy": proxy,
            "config_dump": dump,
            "clusters": clusters,
            "objects": push.routing_objects(proxy),
        }))
    };
    match fetched.await {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(e) => status(
            StatusCode::BAD_GATEWAY,
            "BadGateway",
            format!("cannot read proxy {proxy:?}'s admin API at {admin}: {e}"),
        ),
    }
}

/// One GET on a proxy's admin API (plain HTTP/1.1 on loopback or the proxy's address).
async fn admin_get(admin: &str, path: &str) -> Result<String, String> {
    let call = async {
        let stream = TcpStream::connect(admin)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let req = Request::get(path)
            .header(http::header::HOST, admin)
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let code = resp.status();
        let body = http_body_util::Limited::new(resp.into_body(), MAX_ADMIN_BODY)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        let body = String::from_utf8_lossy(&body).into_owned();
        if code != StatusCode::OK {
            return Err(format!("{path} answered {code}: {}", body.trim()));
        }
        Ok(body)
    };
    tokio::time::timeout(ADMIN_TIMEOUT, call)
        .await
        .map_err(|_| format!("no answer within {ADMIN_TIMEOUT:?}"))?
}

/// `/v1/workloads` (GET lists, POST registers) and `/v1/workloads/{namespace}/{name}`
/// (DELETE deregisters, GET shows one).
pub(super) async fn workloads(
    push: &Arc<PushServer>,
    req: Request<Incoming>,
    path: &str,
) -> Response<Full<Bytes>> {
    let rest: Vec<&str> = path
        .trim_start_matches("/v1/workloads")
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    match (req.method().clone(), rest.as_slice()) {
        (Method::GET, []) => list(push),
        (Method::POST | Method::PUT, []) => match read_body(req).await {
            Ok(body) => register(push, &body),
            Err(resp) => resp,
        },
        (Method::GET, [namespace, name]) => {
            match push
                .workloads()
                .into_iter()
                .find(|w| w.namespace == *namespace && w.name == *name)
            {
                Some(w) => json_response(StatusCode::OK, &json!(w)),
                None => workload_not_found(namespace, name),
            }
        }
        (Method::DELETE, [namespace, name]) => match push.deregister_workload(namespace, name) {
            Some(w) => json_response(StatusCode::OK, &json!(w)),
            None => workload_not_found(namespace, name),
        },
        (_, [] | [_, _]) => method_not_allowed(),
        _ => no_such_path(),
    }
}

fn list(push: &PushServer) -> Response<Full<Bytes>> {
    json_response(
        StatusCode::OK,
        &json!({"kind": "WorkloadList", "items": push.workloads()}),
    )
}

fn register(push: &PushServer, body: &str) -> Response<Full<Bytes>> {
    let workload: Workload = match serde_json::from_str(body) {
        Ok(w) => w,
        Err(e) => {
            return status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!("not a workload: {e}"),
            );
        }
    };
    if let Some(problem) = check(&workload) {
        return status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", problem);
    }
    let code = match push.register_workload(workload.clone()) {
        Registered::Created => StatusCode::CREATED,
        Registered::Replaced | Registered::Unchanged => StatusCode::OK,
    };
    json_response(code, &json!(workload))
}

/// What makes a workload unusable: Kubernetes' naming rules for its name and namespace,
/// an address that is not an IP.
fn check(w: &Workload) -> Option<String> {
    let dns_label = |s: &str| {
        !s.is_empty()
            && s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-')
    };
    let subdomain = |s: &str| s.len() <= 253 && s.split('.').all(dns_label);
    if !subdomain(&w.name) {
        return Some(format!(
            "workload name {:?}: must be a lowercase RFC 1123 subdomain",
            w.name
        ));
    }
    if !dns_label(&w.namespace) {
        return Some(format!(
            "workload {}: namespace {:?} must be a lowercase RFC 1123 label",
            w.name, w.namespace
        ));
    }
    if w.address.parse::<std::net::IpAddr>().is_err() {
        return Some(format!(
            "workload {}/{}: address {:?} is not an IP address",
            w.namespace, w.name, w.address
        ));
    }
    None
}

fn workload_not_found(namespace: &str, name: &str) -> Response<Full<Bytes>> {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("workload {namespace}/{name} not found"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(name: &str, namespace: &str, address: &str) -> Workload {
        Workload {
            name: name.into(),
            namespace: namespace.into(),
            address: address.into(),
            ..Workload::default()
        }
    }

    #[test]
    fn workloads_need_kubernetes_names_and_an_ip() {
        assert_eq!(check(&workload("reviews-v1", "default", "10.0.0.1")), None);
        assert!(check(&workload("Reviews", "default", "10.0.0.1")).is_some());
        assert!(check(&workload("reviews", "a.b", "10.0.0.1")).is_some());
        assert!(check(&workload("reviews", "default", "reviews.local")).is_some());
    }
}
