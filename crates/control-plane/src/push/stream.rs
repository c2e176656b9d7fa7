//! One proxy's `DeltaConfig` stream: the first request names the proxy; then the task
//! answers subscriptions, takes ACKs and NACKs, and, when the push server wakes it,
//! works out the proxy's view of the newest world and sends what changed.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{Notify, mpsc};
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};
use weft_xds::{DeltaConfigRequest, DeltaConfigResponse, Node, ProxyMode, TYPES};

use super::conn::{Answer, Connection};
use super::{PushServer, lock};
use crate::scope::{ProxyIdentity, ProxyKind};

/// The gRPC service: one task per stream.
pub(super) struct Service(pub Arc<PushServer>);

type Responses = Pin<Box<dyn Stream<Item = Result<DeltaConfigResponse, Status>> + Send>>;

#[tonic::async_trait]
impl weft_xds::ConfigDiscovery for Service {
    type DeltaConfigStream = Responses;

    async fn delta_config(
        &self,
        request: Request<Streaming<DeltaConfigRequest>>,
    ) -> Result<Response<Responses>, Status> {
        let mut inbound = request.into_inner();
        let first = inbound
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("the stream ended before its first request"))?;
        let node = first
            .node
            .clone()
            .ok_or_else(|| Status::invalid_argument("the first request must carry the node"))?;
        let conn = Connection::new(node.name.clone(), identity(&node), node.version.clone());
        // Two types, one response in flight each: a small buffer never blocks.
        let (tx, rx) = mpsc::channel(4);
        let server = Arc::clone(&self.0);
        tokio::spawn(async move {
            let wake = Arc::new(Notify::new());
            let conn = Arc::new(Mutex::new(conn));
            let id = server.add_peer(
                Arc::clone(&conn),
                Arc::clone(&wake),
                node.admin_address.clone(),
            );
            tracing::info!(proxy = %node.name, namespace = %node.namespace, "proxy connected");
            let stream = StreamTask {
                server: &server,
                conn: &conn,
                id,
                tx: &tx,
                world_seen: 0,
            };
            let end = stream.run(first, &mut inbound, &wake).await;
            server.remove_peer(id);
            tracing::info!(proxy = %node.name, reason = %end, "proxy disconnected");
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

/// Scoping's view of a node.
fn identity(node: &Node) -> ProxyIdentity {
    ProxyIdentity {
        kind: match ProxyMode::try_from(node.mode) {
            Ok(ProxyMode::Gateway) => ProxyKind::Gateway,
            _ => ProxyKind::Sidecar,
        },
        namespace: node.namespace.clone(),
        labels: node
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<BTreeMap<_, _>>(),
        service_account: node.service_account.clone(),
    }
}

/// The state one stream's task works with.
struct StreamTask<'a> {
    server: &'a Arc<PushServer>,
    conn: &'a Arc<Mutex<Connection>>,
    /// The server's id of this stream's peer.
    id: u64,
    tx: &'a mpsc::Sender<Result<DeltaConfigResponse, Status>>,
    /// The generation of the world the proxy's view was last worked out from.
    world_seen: u64,
}

impl StreamTask<'_> {
    /// Serves the stream until the proxy goes or breaks the protocol; says why it ended.
    async fn run(
        mut self,
        first: DeltaConfigRequest,
        inbound: &mut Streaming<DeltaConfigRequest>,
        wake: &Notify,
    ) -> String {
        let mut next = Some(first);
        loop {
            if let Some(req) = next.take() {
                if let Err(e) = self.take(&req) {
                    let _ = self
                        .tx
                        .send(Err(Status::invalid_argument(e.to_string())))
                        .await;
                    return e.to_string();
                }
            } else {
                self.refresh();
            }
            if !self.send_owed().await {
                return "the proxy stopped reading".into();
            }
            if lock(self.conn).settled() {
                self.server.settle(self.id, self.world_seen);
            }
            tokio::select! {
                msg = inbound.message() => match msg {
                    Ok(Some(req)) => next = Some(req),
                    Ok(None) => return "the proxy closed the stream".into(),
                    Err(status) => return status.message().to_string(),
                },
                () = wake.notified() => {}
            }
        }
    }

    /// Takes one request; a type's first works out the view first.
    fn take(&mut self, req: &DeltaConfigRequest) -> Result<(), super::conn::ProtocolError> {
        let received = lock(self.conn).on_request(req)?;
        if received.first {
            self.refresh();
        }
        match received.answer {
            Answer::Ack => self.server.status_dirty.notify_one(),
            Answer::Nack(reason) => {
                let name = lock(self.conn).name.clone();
                tracing::warn!(proxy = %name, type_url = %req.type_url, %reason, "config refused (NACK)");
                self.server.metrics.nack(&req.type_url);
                self.server.status_dirty.notify_one();
            }
            Answer::None | Answer::Stale => {}
        }
        Ok(())
    }

    /// Works out the proxy's view again if the world moved since.
    fn refresh(&mut self) {
        let world = self.server.world();
        if world.generation == self.world_seen {
            return;
        }
        self.world_seen = world.generation;
        let identity = lock(self.conn).identity.clone();
        let (view, worked_out) = world.view(&identity, &self.server.opts.scope);
        if worked_out {
            self.server
                .scopes
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        lock(self.conn).set_view(view);
    }

    /// Sends every response the proxy is owed; false when it is gone.
    async fn send_owed(&mut self) -> bool {
        let started = Instant::now();
        let responses = lock(self.conn).responses(self.world_seen);
        for resp in responses {
            let i = TYPES.iter().position(|t| *t == resp.type_url).unwrap_or(0);
            if self.tx.send(Ok(resp)).await.is_err() {
                return false;
            }
            self.server.metrics.pushed(TYPES[i], started.elapsed());
        }
        true
    }
}
