//! The runtime's side of the control plane's local API: registering and deregistering
//! workloads (`/v1/workloads`), applying objects (`/apply`), listing Services; plus a
//! plain GET for readiness paths (`/healthz/ready`) that need no token.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use weft_api::registry::Workload;

use crate::error::{MeshError, Result};

/// How long one call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The control plane's local API, with the state directory's token.
#[derive(Debug, Clone)]
pub struct ApiClient {
    addr: SocketAddr,
    token: String,
}

impl ApiClient {
    pub fn new(addr: SocketAddr, state_dir: &Path) -> Result<ApiClient> {
        let token =
            weft_control_plane::state::read_token(state_dir).map_err(|e| MeshError::Api {
                addr: addr.to_string(),
                message: format!("cannot read its API token in {}: {e}", state_dir.display()),
            })?;
        Ok(ApiClient { addr, token })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Registers (or updates) a workload.
    pub async fn register(&self, w: &Workload) -> Result<()> {
        let body = serde_json::to_string(w).map_err(|e| self.err(e.to_string()))?;
        let (code, answer) = self.call(Method::POST, "/v1/workloads", Some(body)).await?;
        self.expect(code, &answer, &[200, 201])
    }

    /// Deregisters a workload; one that is not registered is no error.
    pub async fn deregister(&self, namespace: &str, name: &str) -> Result<()> {
        let path = format!("/v1/workloads/{namespace}/{name}");
        let (code, answer) = self.call(Method::DELETE, &path, None).await?;
        self.expect(code, &answer, &[200, 404])
    }

    /// The registered workloads.
    pub async fn workloads(&self) -> Result<Vec<Workload>> {
        let (code, answer) = self.call(Method::GET, "/v1/workloads", None).await?;
        self.expect(code, &answer, &[200])?;
        serde_json::from_value(answer["items"].clone()).map_err(|e| self.err(e.to_string()))
    }

    /// Applies YAML or JSON (objects without a namespace go to `namespace`).
    pub async fn apply(&self, namespace: &str, text: &str, source: &str) -> Result<()> {
        let path = format!(
            "/apply?namespace={}&source={}",
            weft_control_plane::api::percent_encode(namespace),
            weft_control_plane::api::percent_encode(source)
        );
        let (code, answer) = self
            .call(Method::POST, &path, Some(text.to_string()))
            .await?;
        self.expect(code, &answer, &[200])
    }

    /// One Service, if it exists.
    pub async fn service(&self, namespace: &str, name: &str) -> Result<Option<Value>> {
        let path = format!("/api/v1/namespaces/{namespace}/services/{name}");
        let (code, answer) = self.call(Method::GET, &path, None).await?;
        match code {
            404 => Ok(None),
            _ => self.expect(code, &answer, &[200]).map(|()| Some(answer)),
        }
    }

    /// Every Service of every namespace.
    pub async fn services(&self) -> Result<Vec<Value>> {
        let (code, answer) = self.call(Method::GET, "/api/v1/services", None).await?;
        self.expect(code, &answer, &[200])?;
        Ok(answer["items"].as_array().cloned().unwrap_or_default())
    }

    /// Every connected proxy's sync state per resource type (`/debug/syncz`).
    pub async fn syncz(&self) -> Result<Value> {
        let (code, answer) = self.call(Method::GET, "/debug/syncz", None).await?;
        self.expect(code, &answer, &[200])?;
        Ok(answer)
    }

    fn expect(&self, code: u16, answer: &Value, ok: &[u16]) -> Result<()> {
        if ok.contains(&code) {
            return Ok(());
        }
        let message = answer
            .get("message")
            .and_then(Value::as_str)
            .map(String::from)
            .unwrap_or_else(|| answer.to_string());
        Err(self.err(format!("{code}: {message}")))
    }

    fn err(&self, message: String) -> MeshError {
        MeshError::Api {
            addr: self.addr.to_string(),
            message,
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<String>) -> Result<(u16, Value)> {
        let auth = format!("Bearer {}", self.token);
        let (code, bytes) = request(self.addr, method, path, Some(&auth), body)
            .await
            .map_err(|e| self.err(e))?;
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).trim().to_string()));
        Ok((code, value))
    }
}

/// The status code of a GET, or `None` when nothing answered within 2 s.
pub async fn get_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let call = request(addr, Method::GET, path, None, None);
    match tokio::time::timeout(Duration::from_secs(2), call).await {
        Ok(Ok((code, _))) => Some(code),
        _ => None,
    }
}

/// One HTTP/1.1 request on a fresh connection.
async fn request(
    addr: SocketAddr,
    method: Method,
    path: &str,
    auth: Option<&str>,
    body: Option<String>,
) -> Result<(u16, Bytes), String> {
    let call = async {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("cannot connect: {e}. Is `weft up` running?"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", addr.to_string())
            .header("content-type", "application/yaml");
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let code = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((code, bytes))
    };
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .map_err(|_| format!("no answer within {} s", CALL_TIMEOUT.as_secs()))?
}
