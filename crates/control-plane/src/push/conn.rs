//! One proxy's stream as a state machine, with no I/O: what the proxy has (its ACKed
//! versions per resource), what is in flight (one response per type, by nonce), what
//! it refused (NACKed versions, which are not sent again), and what it should have
//! (its scoped view). The stream task feeds it requests and views and sends the
//! responses it makes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use weft_xds::{DeltaConfigRequest, DeltaConfigResponse, Resource, TYPES};

use super::world::Encoded;
use crate::scope::ProxyIdentity;

/// A proxy's per-type state, as `/debug/syncz` and `weft proxy-status` show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SyncState {
    /// Nothing sent yet.
    NotSent,
    /// A response is waiting for its ACK, or the view changed and is not sent yet.
    Stale,
    /// The proxy refused the current version of a resource it should have.
    Nacked,
    /// The proxy has ACKed everything it should have.
    Synced,
}

/// A response sent and not yet ACKed or NACKed.
#[derive(Debug, Clone)]
struct Pending {
    nonce: String,
    version: u64,
    upserts: Vec<(Arc<str>, Arc<str>)>,
    removed: Vec<Arc<str>>,
}

/// The stream's state for one resource type.
#[derive(Debug, Default)]
pub(crate) struct TypeState {
    subscribed: bool,
    /// The subscription's first response is sent even when empty: it tells the proxy
    /// it has everything there is.
    owe_first: bool,
    /// What the proxy has, by name: version.
    pub acked: HashMap<Arc<str>, Arc<str>>,
    /// Versions the proxy refused, by name.
    pub rejected: HashMap<Arc<str>, Arc<str>>,
    /// What the proxy should have.
    pub desired: BTreeMap<Arc<str>, Encoded>,
    pending: Option<Pending>,
    pub sent_version: Option<u64>,
    pub acked_version: Option<u64>,
    pub nonce_sent: String,
    pub nonce_acked: String,
    /// The reason of the last NACK, resource reasons included.
    pub last_nack: Option<String>,
}

impl TypeState {
    pub fn state(&self) -> SyncState {
        if self.sent_version.is_none() {
            return SyncState::NotSent;
        }
        let refused = self
            .desired
            .values()
            .any(|e| self.rejected.get(&e.name) == Some(&e.version));
        if refused {
            return SyncState::Nacked;
        }
        let behind = self.pending.is_some()
            || self.acked.len() != self.desired.len()
            || self
                .desired
                .values()
                .any(|e| self.acked.get(&e.name) != Some(&e.version));
        if behind {
            SyncState::Stale
        } else {
            SyncState::Synced
        }
    }

    /// The changes the proxy is owed: resources it lacks or has at another version
    /// (less those it refused at this version), names it has that it should not.
    fn diff(&self) -> (Vec<Encoded>, Vec<Arc<str>>) {
        let upserts = self
            .desired
            .values()
            .filter(|e| self.acked.get(&e.name) != Some(&e.version))
            .filter(|e| self.rejected.get(&e.name) != Some(&e.version))
            .cloned()
            .collect();
        let mut removed: Vec<Arc<str>> = self
            .acked
            .keys()
            .filter(|n| !self.desired.contains_key(*n))
            .cloned()
            .collect();
        removed.sort();
        (upserts, removed)
    }
}

/// Why a request was refused; the stream ends with it.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ProtocolError {
    #[error("unknown resource type {0:?} (this control plane serves {TYPES:?})")]
    UnknownType(String),
}

/// What a request was.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Received {
    Subscribed,
    Ack,
    Nack(String),
    /// A nonce that is not the response in flight (an old one): ignored, as Envoy's
    /// servers ignore it.
    Stale,
}

/// One connected proxy.
#[derive(Debug)]
pub(crate) struct Connection {
    pub name: String,
    pub identity: ProxyIdentity,
    pub version: String,
    pub types: [TypeState; 2],
    nonces: u64,
}

fn type_index(type_url: &str) -> Result<usize, ProtocolError> {
    TYPES
        .iter()
        .position(|t| *t == type_url)
        .ok_or_else(|| ProtocolError::UnknownType(type_url.to_string()))
}

impl Connection {
    pub fn new(name: String, identity: ProxyIdentity, version: String) -> Connection {
        Connection {
            name,
            identity,
            version,
            types: Default::default(),
            nonces: 0,
        }
    }

    /// Takes one request: a subscription (with the versions a resuming proxy has), an
    /// ACK, or a NACK.
    pub fn on_request(&mut self, req: &DeltaConfigRequest) -> Result<Received, ProtocolError> {
        let t = &mut self.types[type_index(&req.type_url)?];
        if req.response_nonce.is_empty() {
            t.subscribed = true;
            t.owe_first = true;
            t.acked = req
                .initial_resource_versions
                .iter()
                .map(|(n, v)| (Arc::from(n.as_str()), Arc::from(v.as_str())))
                .collect();
            return Ok(Received::Subscribed);
        }
        let Some(pending) = t.pending.take_if(|p| p.nonce == req.response_nonce) else {
            return Ok(Received::Stale);
        };
        let Some(error) = &req.error_detail else {
            for (name, version) in pending.upserts {
                t.acked.insert(name, version);
            }
            for name in &pending.removed {
                t.acked.remove(name);
            }
            t.acked_version = Some(pending.version);
            t.nonce_acked = pending.nonce;
            return Ok(Received::Ack);
        };
        let mut reason = error.message.clone();
        for e in &req.resource_errors {
            if let Some((name, version)) = pending.upserts.iter().find(|(n, _)| **n == *e.name) {
                t.rejected.insert(Arc::clone(name), Arc::clone(version));
            }
            reason.push_str(&format!("; {}: {}", e.name, e.reason));
        }
        t.last_nack = Some(reason.clone());
        Ok(Received::Nack(reason))
    }

    /// Sets what the proxy should have, per type.
    pub fn set_view(&mut self, view: [BTreeMap<Arc<str>, Encoded>; 2]) {
        for (t, desired) in self.types.iter_mut().zip(view) {
            t.desired = desired;
        }
    }

    /// The next response for type `i`, when the proxy subscribed, nothing is in flight
    /// for that type, and it is owed something.
    pub fn next_response(&mut self, i: usize, system_version: u64) -> Option<DeltaConfigResponse> {
        let t = self.types.get_mut(i)?;
        if !t.subscribed || t.pending.is_some() {
            return None;
        }
        let (upserts, removed) = t.diff();
        if upserts.is_empty() && removed.is_empty() && !t.owe_first {
            return None;
        }
        t.owe_first = false;
        self.nonces += 1;
        let nonce = self.nonces.to_string();
        t.pending = Some(Pending {
            nonce: nonce.clone(),
            version: system_version,
            upserts: upserts
                .iter()
                .map(|e| (Arc::clone(&e.name), Arc::clone(&e.version)))
                .collect(),
            removed: removed.clone(),
        });
        t.sent_version = Some(system_version);
        t.nonce_sent = nonce.clone();
        Some(DeltaConfigResponse {
            system_version_info: system_version.to_string(),
            type_url: TYPES[i].to_string(),
            resources: upserts
                .into_iter()
                .map(|e| Resource {
                    name: e.name.to_string(),
                    version: e.version.to_string(),
                    body: e.body,
                })
                .collect(),
            removed_resources: removed.iter().map(ToString::to_string).collect(),
            nonce,
        })
    }

    /// Nothing in flight: the proxy has answered every response it was sent.
    pub fn settled(&self) -> bool {
        self.types.iter().all(|t| t.pending.is_none())
    }

    /// Every response owed now, services first.
    pub fn responses(&mut self, system_version: u64) -> Vec<DeltaConfigResponse> {
        (0..TYPES.len())
            .filter_map(|i| self.next_response(i, system_version))
            .collect()
    }
}
