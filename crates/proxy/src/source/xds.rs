//! The control plane's push stream as a config source (`weft proxy --control-plane`):
//! a task keeps one `DeltaConfig` stream open (reconnecting with jittered back-off and
//! resuming with the versions the proxy has); each response is checked at the edge
//! (objects with weft-api's loader and validation, services decoded) and offered to the
//! proxy, which ACKs it when its tables take it and NACKs it, with a reason per
//! resource, when they do not. While the control plane is away the proxy keeps serving
//! what it has.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use weft_api::object::Object;
use weft_api::{LoadOptions, Loaded};
use weft_xds::{
    CONFIG_TYPE, ConfigDiscoveryClient, DeltaConfigRequest, DeltaConfigResponse, ErrorDetail, Node,
    ResourceError, SERVICE_TYPE, TYPES,
};

use super::{ConfigSource, Snapshot};
use crate::registry::{Registry, Service};

/// Where the control plane is and who this proxy is.
#[derive(Debug, Clone)]
pub struct XdsOptions {
    /// `127.0.0.1:15010` or `http://127.0.0.1:15010`.
    pub address: String,
    pub node: Node,
    /// The first wait before reconnecting; it doubles up to `max_backoff`.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
}

impl XdsOptions {
    pub fn new(address: String, node: Node) -> XdsOptions {
        XdsOptions {
            address,
            node,
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// A resource the proxy holds, at its version.
#[derive(Debug, Clone)]
enum Held {
    Object(Arc<Object>),
    Service(Arc<Service>),
}

/// What the proxy holds of one type, by name: version and value.
type HeldSet = BTreeMap<String, (String, Held)>;

/// A response being judged: the state it would make, and what it named.
struct Candidate {
    type_index: usize,
    state: HeldSet,
    nonce: String,
    names: BTreeSet<String>,
}

/// The versions the proxy holds per type, for resuming after a reconnect.
type Versions = Arc<Mutex<[BTreeMap<String, String>; 2]>>;

/// The control plane as a config source.
pub struct XdsSource {
    responses: mpsc::Receiver<DeltaConfigResponse>,
    replies: mpsc::UnboundedSender<DeltaConfigRequest>,
    held: [HeldSet; 2],
    versions: Versions,
    candidate: Option<Candidate>,
    /// Whether each type has had a first response: the first snapshot waits for all.
    received: [bool; 2],
    task: JoinHandle<()>,
}

impl Drop for XdsSource {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl XdsSource {
    /// Starts connecting at once (in the background).
    pub fn start(opts: XdsOptions) -> XdsSource {
        let (resp_tx, responses) = mpsc::channel(8);
        let (replies, reply_rx) = mpsc::unbounded_channel();
        let versions: Versions = Arc::default();
        let task = tokio::spawn(connect_loop(opts, Arc::clone(&versions), resp_tx, reply_rx));
        XdsSource {
            responses,
            replies,
            held: Default::default(),
            versions,
            candidate: None,
            received: [false; 2],
            task,
        }
    }

    /// The whole config with `candidate` in place of what is held of its type.
    fn snapshot(&self, candidate: &Candidate) -> Snapshot {
        let of = |i: usize| {
            let held = if i == candidate.type_index {
                &candidate.state
            } else {
                &self.held[i]
            };
            held.values().map(|(_, h)| h)
        };
        let objects = of(config_index())
            .filter_map(|h| match h {
                Held::Object(o) => Some((**o).clone()),
                Held::Service(_) => None,
            })
            .collect();
        let services = of(service_index())
            .filter_map(|h| match h {
                Held::Service(s) => Some((s.host.clone(), Arc::clone(s))),
                Held::Object(_) => None,
            })
            .collect();
        Snapshot {
            objects,
            services: Some(Registry { services }),
        }
    }

    /// Makes the candidate what the proxy holds, and ACKs it.
    fn commit(&mut self, c: Candidate) {
        let versions = c
            .state
            .iter()
            .map(|(n, (v, _))| (n.clone(), v.clone()))
            .collect();
        if let Ok(mut all) = self.versions.lock() {
            all[c.type_index] = versions;
        }
        self.held[c.type_index] = c.state;
        let _ = self.replies.send(DeltaConfigRequest {
            type_url: TYPES[c.type_index].to_string(),
            response_nonce: c.nonce,
            ..Default::default()
        });
    }

    fn nack(&self, type_index: usize, nonce: String, errors: Vec<ResourceError>) {
        let message = format!("{} resource(s) refused", errors.len());
        tracing::warn!(
            type_url = TYPES[type_index],
            errors = ?errors.iter().map(|e| format!("{}: {}", e.name, e.reason)).collect::<Vec<_>>(),
            "config refused (NACK)"
        );
        let _ = self.replies.send(DeltaConfigRequest {
            type_url: TYPES[type_index].to_string(),
            response_nonce: nonce,
            error_detail: Some(ErrorDetail {
                // google.rpc.Code INVALID_ARGUMENT, as Envoy's NACKs carry.
                code: 3,
                message,
            }),
            resource_errors: errors,
            ..Default::default()
        });
    }

    /// The state a response would make, or the resources it could not take.
    fn candidate(
        &self,
        resp: DeltaConfigResponse,
    ) -> Option<(usize, Result<Candidate, Vec<ResourceError>>)> {
        let type_index = TYPES.iter().position(|t| *t == resp.type_url)?;
        let mut state = self.held[type_index].clone();
        let mut errors = Vec::new();
        let mut names = BTreeSet::new();
        for r in resp.resources {
            let decoded = if TYPES[type_index] == SERVICE_TYPE {
                decode_service(&r.body).map(Held::Service)
            } else {
                decode_object(&r.name, &r.body).map(Held::Object)
            };
            match decoded {
                Ok(held) => {
                    names.insert(r.name.clone());
                    state.insert(r.name, (r.version, held));
                }
                Err(reason) => errors.push(ResourceError {
                    name: r.name,
                    reason,
                }),
            }
        }
        for name in resp.removed_resources {
            state.remove(&name);
        }
        let judged = if errors.is_empty() {
            Ok(Candidate {
                type_index,
                state,
                nonce: resp.nonce,
                names,
            })
        } else {
            Err(errors)
        };
        Some((type_index, judged))
    }
}

impl ConfigSource for XdsSource {
    async fn next(&mut self) -> Option<Snapshot> {
        loop {
            // The stream task runs for the source's life; should it stop, the proxy
            // keeps its config rather than spin.
            let Some(resp) = self.responses.recv().await else {
                return std::future::pending().await;
            };
            let nonce = resp.nonce.clone();
            let Some((type_index, judged)) = self.candidate(resp) else {
                continue;
            };
            match judged {
                Err(errors) => self.nack(type_index, nonce, errors),
                Ok(c) => {
                    self.received[type_index] = true;
                    if self.received.iter().all(|r| *r) {
                        let snapshot = self.snapshot(&c);
                        self.candidate = Some(c);
                        return Some(snapshot);
                    }
                    // Not every type has come yet: nothing to compile against.
                    self.commit(c);
                }
            }
        }
    }

    async fn verdict(&mut self, rejected: &[String]) -> bool {
        let Some(c) = self.candidate.take() else {
            return true;
        };
        let errors: Vec<ResourceError> = rejected
            .iter()
            .filter_map(|reason| {
                let name = resource_of_reason(reason)?;
                c.names.contains(&name).then(|| ResourceError {
                    name,
                    reason: reason.clone(),
                })
            })
            .collect();
        if errors.is_empty() {
            self.commit(c);
            true
        } else {
            self.nack(c.type_index, c.nonce, errors);
            false
        }
    }
}

fn config_index() -> usize {
    TYPES.iter().position(|t| *t == CONFIG_TYPE).unwrap_or(1)
}

fn service_index() -> usize {
    TYPES.iter().position(|t| *t == SERVICE_TYPE).unwrap_or(0)
}

/// A pushed object, loaded and validated as `weft validate` would: an error refuses it.
fn decode_object(name: &str, body: &[u8]) -> Result<Arc<Object>, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("not UTF-8: {e}"))?;
    let mut loaded = Loaded::default();
    let source: Arc<Path> = Arc::from(Path::new(&format!("xds:{name}")));
    weft_api::load_str(text, source, &LoadOptions::default(), &mut loaded);
    let errors: Vec<String> = loaded.errors().map(ToString::to_string).collect();
    if !errors.is_empty() {
        return Err(errors.join("; "));
    }
    match <[Object; 1]>::try_from(loaded.objects) {
        Ok([object]) => Ok(Arc::new(object)),
        Err(all) => Err(format!("expected one object, found {}", all.len())),
    }
}

fn decode_service(body: &[u8]) -> Result<Arc<Service>, String> {
    serde_json::from_slice::<Service>(body)
        .map(Arc::new)
        .map_err(|e| format!("not a service: {e}"))
}

/// The resource a reason of `Tables::rejected` names: `VirtualService default/reviews:
/// ...` names `VirtualService/default/reviews`.
fn resource_of_reason(reason: &str) -> Option<String> {
    let (head, _) = reason.split_once(": ")?;
    let (kind, name) = head.split_once(' ')?;
    let (namespace, name) = name.split_once('/')?;
    Some(format!("{kind}/{namespace}/{name}"))
}

/// Keeps a stream open for the source's life: connects, subscribes to every type
/// (resuming with the versions held), relays responses to the source and its ACKs and
/// NACKs back; on any failure waits a jittered, doubling back-off and starts again.
async fn connect_loop(
    opts: XdsOptions,
    versions: Versions,
    responses: mpsc::Sender<DeltaConfigResponse>,
    mut replies: mpsc::UnboundedReceiver<DeltaConfigRequest>,
) {
    let address = if opts.address.contains("://") {
        opts.address.clone()
    } else {
        format!("http://{}", opts.address)
    };
    let mut backoff = opts.min_backoff;
    loop {
        match stream_once(&address, &opts.node, &versions, &responses, &mut replies).await {
            Ok(Ended::SourceGone) => return,
            Ok(Ended::Synced(reason)) => {
                tracing::warn!(control_plane = %address, %reason, "config stream ended; reconnecting");
                backoff = opts.min_backoff;
            }
            Err(reason) => {
                tracing::warn!(control_plane = %address, %reason, retry_in = ?backoff, "cannot reach the control plane; serving the last config");
            }
        }
        // Full jitter over [backoff/2, backoff]: proxies that lost the same control plane
        // do not all come back at the same instant.
        let wait = backoff.mul_f64(0.5 + fastrand::f64() / 2.0);
        tokio::time::sleep(wait).await;
        backoff = (backoff * 2).min(opts.max_backoff);
    }
}

/// How a stream that was established ended.
enum Ended {
    /// It had delivered responses before it broke: reconnect soon.
    Synced(String),
    /// The source was dropped: stop.
    SourceGone,
}

/// One stream's life; `Err` when it could not be opened or broke before any response.
async fn stream_once(
    address: &str,
    node: &Node,
    versions: &Versions,
    responses: &mpsc::Sender<DeltaConfigResponse>,
    replies: &mut mpsc::UnboundedReceiver<DeltaConfigRequest>,
) -> Result<Ended, String> {
    let endpoint = tonic::transport::Endpoint::from_shared(address.to_string())
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(1))
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(5));
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| format!("{e}: {e:?}"))?;
    let mut client = ConfigDiscoveryClient::new(channel);
    let (out, out_rx) = mpsc::unbounded_channel();
    // Replies meant for a stream that has gone carry nonces the new one never sent.
    while replies.try_recv().is_ok() {}
    let held = versions.lock().map(|v| v.clone()).unwrap_or_default();
    for (i, type_url) in TYPES.iter().enumerate() {
        let _ = out.send(DeltaConfigRequest {
            node: (i == 0).then(|| node.clone()),
            type_url: type_url.to_string(),
            resource_names_subscribe: vec!["*".into()],
            initial_resource_versions: held[i].clone().into_iter().collect(),
            ..Default::default()
        });
    }
    let requests = tokio_stream::wrappers::UnboundedReceiverStream::new(out_rx);
    let mut inbound = client
        .delta_config(requests)
        .await
        .map_err(|s| s.message().to_string())?
        .into_inner();
    tracing::info!(control_plane = %address, "config stream open");
    let mut got_any = false;
    let broke = |got_any: bool, reason: String| {
        if got_any {
            Ok(Ended::Synced(reason))
        } else {
            Err(reason)
        }
    };
    loop {
        tokio::select! {
            msg = inbound.message() => match msg {
                Ok(Some(resp)) => {
                    got_any = true;
                    if responses.send(resp).await.is_err() {
                        return Ok(Ended::SourceGone);
                    }
                }
                Ok(None) => return broke(got_any, "the control plane closed the stream".into()),
                Err(status) => return broke(got_any, status.message().to_string()),
            },
            reply = replies.recv() => match reply {
                Some(req) => {
                    let _ = out.send(req);
                }
                None => return Ok(Ended::SourceGone),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_tables_reason_names_its_resource() {
        assert_eq!(
            resource_of_reason("Gateway default/gw: port 443 (HTTPS): TLS mode Simple ...")
                .as_deref(),
            Some("Gateway/default/gw")
        );
        assert_eq!(
            resource_of_reason("VirtualService a/b: spec.http[0]: bad").as_deref(),
            Some("VirtualService/a/b")
        );
        assert_eq!(resource_of_reason("no resource here"), None);
    }

    #[test]
    fn objects_are_validated_at_the_edge() {
        let good = br#"{"apiVersion":"networking.istio.io/v1","kind":"VirtualService","metadata":{"name":"r","namespace":"default"},"spec":{"hosts":["r"],"http":[{"route":[{"destination":{"host":"r"}}]}]}}"#;
        let o = decode_object("VirtualService/default/r", good).unwrap();
        assert_eq!(o.name(), "r");
        // weft-api refuses a route with no destination: the proxy NACKs it.
        let bad = br#"{"apiVersion":"networking.istio.io/v1","kind":"VirtualService","metadata":{"name":"r","namespace":"default"},"spec":{"hosts":["r"],"http":[{"route":[{}]}]}}"#;
        let reason = decode_object("VirtualService/default/r", bad).unwrap_err();
        assert!(reason.contains("xds:VirtualService/default/r"), "{reason}");
        assert!(decode_service(b"{}").is_err());
    }
}
