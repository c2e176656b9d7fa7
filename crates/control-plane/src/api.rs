//! The control plane's HTTP server on 127.0.0.1:15014: `/metrics` (Prometheus, no token)
//! and the local API behind `weft apply/get/delete`, under Kubernetes' paths
//! (`/apis/{group}/{version}/namespaces/{ns}/{plural}[/{name}]`, `/api/v1/...` for core
//! kinds) plus `POST /apply` for a whole file at once. Every API call needs
//! `Authorization: Bearer <token>`; errors are Kubernetes `Status` objects.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use weft_api::kind::{Kind, Scope};

mod proxies;

use crate::metrics::ConfigMetrics;
use crate::push::PushServer;
use crate::store::{Applied, Batch, ConfigStore, Key, StoreError, kind_ref, resource};

/// The largest request body accepted.
const MAX_BODY: usize = 16 << 20;
/// How long open connections may take to finish once shutdown starts.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What the server needs: the store, the token callers must present, the metrics.
pub struct Api {
    store: Arc<dyn ConfigStore>,
    token: String,
    registry: Registry,
    config_metrics: ConfigMetrics,
    /// Serves `/debug/syncz` when there is one.
    push: Option<Arc<PushServer>>,
}

impl Api {
    /// `registry` may already hold other parts' metrics; the store's are added to it.
    pub fn new(store: Arc<dyn ConfigStore>, token: String, mut registry: Registry) -> Api {
        let config_metrics = ConfigMetrics::register(&mut registry);
        Api {
            store,
            token,
            registry,
            config_metrics,
            push: None,
        }
    }

    /// Serves the push server's `/debug/syncz` too.
    pub fn with_push(mut self, push: Arc<PushServer>) -> Api {
        self.push = Some(push);
        self
    }

    /// Serves connections from `listener` until `shutdown` resolves, then lets open
    /// connections finish (up to a few seconds).
    pub async fn serve(self: Arc<Self>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let api = self.clone();
                    let mut stop = stop_rx.clone();
                    connections.spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            let api = api.clone();
                            async move { Ok::<_, Infallible>(api.handle(req).await) }
                        });
                        let conn = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service);
                        tokio::pin!(conn);
                        tokio::select! {
                            _ = conn.as_mut() => {}
                            () = async { drop(stop.wait_for(|s| *s).await) } => {
                                conn.as_mut().graceful_shutdown();
                                let _ = conn.await;
                            }
                        }
                    });
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        drop(listener);
        stop_tx.send_replace(true);
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            connections.abort_all();
        }
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = req.uri().path().to_string();
        match (req.method(), path.as_str()) {
            (&Method::GET, "/metrics") => return self.metrics(),
            (&Method::GET, "/healthz/ready") => return text(StatusCode::OK, "ok\n"),
            _ => {}
        }
        if !self.authorized(&req) {
            return status(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "Unauthorized: a valid bearer token is required (the state directory's api-token)"
                    .into(),
            );
        }
        let query = Query::parse(req.uri().query().unwrap_or(""));
        if path == "/debug/syncz" {
            return match (&self.push, req.method()) {
                (Some(push), &Method::GET) => proxies::syncz(push, &query),
                (None, _) => no_such_path(),
                _ => method_not_allowed(),
            };
        }
        if path == "/debug/config_dump"
            || path == "/v1/workloads"
            || path.starts_with("/v1/workloads/")
        {
            let Some(push) = &self.push else {
                return no_such_path();
            };
            if path == "/debug/config_dump" {
                if req.method() != Method::GET {
                    return method_not_allowed();
                }
                return proxies::config_dump(push, &query).await;
            }
            return proxies::workloads(push, req, &path).await;
        }
        let method = req.method().clone();
        if path == "/apply" {
            if method != Method::POST && method != Method::PUT {
                return method_not_allowed();
            }
            let namespace = query.get("namespace").unwrap_or("default").to_string();
            return match read_body(req).await {
                Ok(body) => self.apply(&body, &query, &namespace, None).await,
                Err(resp) => resp,
            };
        }
        let Some(target) = Target::parse(&path) else {
            return no_such_path();
        };
        match method {
            Method::GET => self.get(&target),
            Method::POST | Method::PUT => {
                let namespace = target.namespace.clone().unwrap_or_else(|| "default".into());
                match read_body(req).await {
                    Ok(body) => self.apply(&body, &query, &namespace, Some(&target)).await,
                    Err(resp) => resp,
                }
            }
            Method::DELETE => self.delete(&target).await,
            _ => method_not_allowed(),
        }
    }

    fn authorized(&self, req: &Request<Incoming>) -> bool {
        let Some(given) = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            return false;
        };
        constant_time_eq(given.trim().as_bytes(), self.token.as_bytes())
    }

    fn metrics(&self) -> Response<Full<Bytes>> {
        self.config_metrics.refresh(&*self.store);
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            return text(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n");
        }
        let mut resp = Response::new(Full::new(Bytes::from(out)));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static(
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            ),
        );
        resp
    }

    fn get(&self, target: &Target) -> Response<Full<Bytes>> {
        let Some(name) = &target.name else {
            let items: Vec<Value> = self
                .store
                .list(Some(target.kind), target.namespace.as_deref())
                .iter()
                .map(|o| o.to_json())
                .collect();
            let info = target.kind.info();
            return json_response(
                StatusCode::OK,
                &json!({
                    "apiVersion": info.api_version(info.versions[0]),
                    "kind": format!("{}List", info.name),
                    "metadata": {"resourceVersion": self.store.resource_version().to_string()},
                    "items": items,
                }),
            );
        };
        match self.store.get(&target.key(name)) {
            Some(o) => json_response(StatusCode::OK, &o.to_json()),
            None => not_found(target.kind, name),
        }
    }

    async fn delete(&self, target: &Target) -> Response<Full<Bytes>> {
        let Some(name) = &target.name else {
            return method_not_allowed();
        };
        match self.store.delete(target.key(name)).await {
            Ok(Some(o)) => json_response(StatusCode::OK, &o.to_json()),
            Ok(None) => not_found(target.kind, name),
            Err(e) => store_error(e),
        }
    }

    /// Validates and applies a body of one or more objects. With a `target` (a resource
    /// path), every object must be of that kind (and name, for an item path).
    async fn apply(
        &self,
        body: &str,
        query: &Query,
        namespace: &str,
        target: Option<&Target>,
    ) -> Response<Full<Bytes>> {
        let source = query.get("source").unwrap_or("<request>");
        let batch = match Batch::parse(body, source, namespace) {
            Ok(b) => b,
            Err(reports) => return invalid(&reports),
        };
        if batch.is_empty() {
            return status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "no objects passed to apply".into(),
            );
        }
        if let Some(target) = target
            && let Some(message) = mismatch(&batch, target)
        {
            return status(StatusCode::BAD_REQUEST, "BadRequest", message);
        }
        let warnings = batch.report_lines().to_vec();
        match self.store.apply(batch).await {
            Ok(applied) => {
                let results: Vec<Value> = applied.iter().map(result_json).collect();
                json_response(
                    StatusCode::OK,
                    &json!({"kind": "ApplyResult", "results": results, "warnings": warnings}),
                )
            }
            Err(e) => store_error(e),
        }
    }
}

fn mismatch(batch: &Batch, target: &Target) -> Option<String> {
    for o in batch.objects() {
        if o.kind != target.kind {
            return Some(format!(
                "the kind of the object ({}) does not match the path ({})",
                o.kind,
                resource(target.kind)
            ));
        }
        if let Some(ns) = &target.namespace
            && o.namespace() != ns
        {
            return Some("the namespace of the provided object does not match the namespace sent on the request".into());
        }
        if let Some(name) = &target.name
            && o.name() != name
        {
            return Some("the name of the object does not match the name on the URL".into());
        }
    }
    None
}

fn result_json(a: &Applied) -> Value {
    json!({
        "kind": a.key.kind.to_string(),
        "apiVersion": a.object.object.api_version,
        "resource": kind_ref(a.key.kind),
        "namespace": a.key.namespace,
        "name": a.key.name,
        "outcome": a.outcome.to_string(),
        "resourceVersion": a.object.meta.resource_version.to_string(),
        "generation": a.object.meta.generation,
    })
}

/// What a resource path names.
struct Target {
    kind: Kind,
    /// `None` on a path across all namespaces (and for cluster-scoped kinds).
    namespace: Option<String>,
    name: Option<String>,
}

impl Target {
    /// `None` when the path names no kind Weft serves.
    fn parse(path: &str) -> Option<Target> {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (group, version, rest) = match segments.as_slice() {
            ["api", version, rest @ ..] => ("", *version, rest),
            ["apis", group, version, rest @ ..] => (*group, *version, rest),
            _ => return None,
        };
        let (namespace, plural, name) = match rest {
            ["namespaces", ns, plural, tail @ ..] if tail.len() <= 1 => {
                (Some(*ns), *plural, tail.first())
            }
            [plural, tail @ ..] if tail.len() <= 1 => (None, *plural, tail.first()),
            _ => return None,
        };
        let kind = Kind::all().find(|k| {
            let i = k.info();
            i.group == group && i.plural == plural && i.versions.contains(&version)
        })?;
        let cluster = kind.info().scope == Scope::Cluster;
        if cluster && namespace.is_some() {
            return None;
        }
        Some(Target {
            kind,
            namespace: namespace.map(str::to_string),
            name: name.map(|n| n.to_string()),
        })
    }

    fn key(&self, name: &str) -> Key {
        Key {
            kind: self.kind,
            namespace: match self.kind.info().scope {
                Scope::Cluster => String::new(),
                Scope::Namespaced => self.namespace.clone().unwrap_or_else(|| "default".into()),
            },
            name: name.to_string(),
        }
    }
}

/// A decoded query string.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(query: &str) -> Query {
        Query(
            query
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (percent_decode(k), percent_decode(v))
                })
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Decodes `%XX` escapes and `+` (as a space).
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Encodes everything but unreserved characters as `%XX`.
pub fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn read_body(req: Request<Incoming>) -> Result<String, Response<Full<Bytes>>> {
    let body = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| {
            status(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                format!("cannot read the request body: {e}"),
            )
        })?
        .to_bytes();
    String::from_utf8(body.to_vec()).map_err(|_| {
        status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "the request body is not UTF-8 text".into(),
        )
    })
}

fn json_response(code: StatusCode, value: &Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(format!("{value}\n"))));
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

fn text(code: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = code;
    resp
}

/// A Kubernetes `Status` failure.
fn status(code: StatusCode, reason: &str, message: String) -> Response<Full<Bytes>> {
    json_response(
        code,
        &json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code.as_u16(),
        }),
    )
}

fn not_found(kind: Kind, name: &str) -> Response<Full<Bytes>> {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("{} \"{name}\" not found", resource(kind)),
    )
}

fn no_such_path() -> Response<Full<Bytes>> {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        "the server could not find the requested resource".into(),
    )
}

fn method_not_allowed() -> Response<Full<Bytes>> {
    status(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource".into(),
    )
}

/// 422 with every line `weft validate` prints for the body, one cause each.
fn invalid(reports: &[weft_api::Report]) -> Response<Full<Bytes>> {
    let lines: Vec<String> = reports.iter().map(ToString::to_string).collect();
    let causes: Vec<Value> = lines.iter().map(|l| json!({"message": l})).collect();
    json_response(
        StatusCode::UNPROCESSABLE_ENTITY,
        &json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": lines.join("\n"),
            "reason": "Invalid",
            "details": {"causes": causes},
            "code": 422,
        }),
    )
}

fn store_error(e: StoreError) -> Response<Full<Bytes>> {
    match e {
        StoreError::Invalid(reports) => invalid(&reports),
        other => status(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            other.to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_coding_round_trips() {
        let s = "examples/book info/a+b%.yaml";
        assert_eq!(percent_decode(&percent_encode(s)), s);
        assert_eq!(percent_decode("a%2"), "a%2");
    }
}
