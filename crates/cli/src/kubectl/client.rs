//! The CLI's side of the control plane's local API: one HTTP/1.1 request per call, with the
//! state directory's bearer token, answers read as JSON.

use std::path::PathBuf;

use anyhow::{Context, anyhow};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use weft_control_plane::state;

/// Where the control plane is and how to prove who we are.
pub struct Client {
    addr: String,
    state_dir: PathBuf,
    runtime: tokio::runtime::Runtime,
}

impl Client {
    pub fn new(addr: String, state_dir: PathBuf) -> anyhow::Result<Client> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        Ok(Client {
            addr,
            state_dir,
            runtime,
        })
    }

    /// Sends one request; returns the status code and the JSON answer.
    pub fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> anyhow::Result<(u16, Value)> {
        self.runtime.block_on(self.send(method, path, body))
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> anyhow::Result<(u16, Value)> {
        let stream = tokio::net::TcpStream::connect(&self.addr)
            .await
            .map_err(|e| {
                anyhow!(
                    "cannot reach the control plane at {}: {e}. Is it running? Start it with \
                 `weft control-plane --state-dir DIR` (it listens on 127.0.0.1:15014; \
                 pass --control-plane ADDR if it listens elsewhere)",
                    self.addr
                )
            })?;
        let token = state::read_token(&self.state_dir).map_err(|e| {
            anyhow!(
                "cannot read the control plane's API token {}: {e}. Pass the --state-dir \
                 the control plane runs with (or set WEFT_STATE_DIR)",
                self.state_dir.join(state::TOKEN_FILE).display()
            )
        })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .with_context(|| format!("talking to the control plane at {}", self.addr))?;
        tokio::spawn(conn);
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.addr)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/yaml")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .context("building the request")?;
        let response = sender
            .send_request(request)
            .await
            .with_context(|| format!("talking to the control plane at {}", self.addr))?;
        let code = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect()
            .await
            .with_context(|| format!("reading the control plane's answer from {}", self.addr))?
            .to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).trim().to_string()));
        if code == 401 {
            return Err(anyhow!(
                "the control plane at {} refused the API token in {} (401 Unauthorized): \
                 is that the state directory it runs with?",
                self.addr,
                self.state_dir.join(state::TOKEN_FILE).display()
            ));
        }
        Ok((code, value))
    }
}

/// The message of a Kubernetes `Status` answer.
pub fn status_message(value: &Value) -> String {
    value
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| value.to_string())
}

/// `Error from server (NotFound): ...`, as kubectl prints a failed call.
pub fn server_error(value: &Value) -> String {
    let reason = value
        .get("reason")
        .and_then(Value::as_str)
        .unwrap_or("InternalError");
    format!("Error from server ({reason}): {}", status_message(value))
}
