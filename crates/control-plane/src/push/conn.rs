//! One proxy's stream as a state machine, with no I/O: what the proxy subscribed to
//! (everything that applies to it, `*`, and/or resources by name), what it has (its
//! ACKed versions per resource), what is in flight (one response per type, by nonce),
//! what it refused (NACKed versions, which are not sent again), and what it may have
//! (its scoped view). The stream task feeds it requests and views and sends the
//! responses it makes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use weft_xds::{DeltaConfigRequest, DeltaConfigResponse, Resource, TYPES};

use super::world::{Encoded, View};
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
    /// Subscribed to everything that applies to the proxy (`*`).
    wildcard: bool,
    /// Resources subscribed to by name.
    names: BTreeSet<Arc<str>>,
    /// What the proxy may have: its scoped view. It should have all of it with a
    /// wildcard subscription, else the part it named.
    pub view: Arc<BTreeMap<Arc<str>, Encoded>>,
    /// What the proxy has, by name: version.
    pub acked: HashMap<Arc<str>, Arc<str>>,
    /// Versions the proxy refused, by name.
    pub rejected: HashMap<Arc<str>, Arc<str>>,
    /// Names to answer in `removed_resources` though the proxy is not known to hold
    /// them: names it subscribed to that do not exist for it (Envoy's way of saying
    /// so), and a name it unsubscribed from while `*` may still cover it.
    tell_removed: BTreeSet<Arc<str>>,
    pending: Option<Pending>,
    /// Something the diff reads changed since it was last worked out (an ACK does not
    /// count: it only confirms the diff that was sent).
    dirty: bool,
    pub sent_version: Option<u64>,
    pub acked_version: Option<u64>,
    pub nonce_sent: String,
    pub nonce_acked: String,
    /// The reason of the last NACK, resource reasons included.
    pub last_nack: Option<String>,
}

impl TypeState {
    /// Whether the proxy subscribed to `name` (by name or by `*`).
    fn wants(&self, name: &str) -> bool {
        self.wildcard || self.names.contains(name)
    }

    /// Whether the proxy should have `name`: in its view and subscribed to.
    pub fn should_have(&self, name: &str) -> bool {
        self.wants(name) && self.view.contains_key(name)
    }

    /// What the proxy should have: the part of its view it subscribed to.
    pub fn desired(&self) -> impl Iterator<Item = &Encoded> {
        self.view.values().filter(|e| self.wants(&e.name))
    }

    pub fn state(&self) -> SyncState {
        if self.sent_version.is_none() {
            return SyncState::NotSent;
        }
        if self
            .desired()
            .any(|e| self.rejected.get(&e.name) == Some(&e.version))
        {
            return SyncState::Nacked;
        }
        let mut desired = 0;
        let mut behind = self.pending.is_some() || !self.tell_removed.is_empty();
        for e in self.desired() {
            desired += 1;
            behind |= self.acked.get(&e.name) != Some(&e.version);
        }
        if behind || self.acked.len() != desired {
            SyncState::Stale
        } else {
            SyncState::Synced
        }
    }

    /// The changes the proxy is owed: resources it lacks or has at another version
    /// (less those it refused at this version); names it has that it should not, or
    /// that it must be told do not exist.
    fn diff(&self) -> (Vec<Encoded>, Vec<Arc<str>>) {
        let upserts = self
            .desired()
            .filter(|e| self.acked.get(&e.name) != Some(&e.version))
            .filter(|e| self.rejected.get(&e.name) != Some(&e.version))
            .cloned()
            .collect();
        let mut removed: Vec<Arc<str>> = self
            .acked
            .keys()
            .filter(|n| !(self.wants(n) && self.view.contains_key(*n)))
            .chain(&self.tell_removed)
            .cloned()
            .collect();
        removed.sort();
        removed.dedup();
        (upserts, removed)
    }

    /// Applies a request's subscription changes, with Envoy's delta rules: `*`
    /// subscribes to everything that applies to the proxy; a first request that names
    /// nothing does too (the legacy form); a name subscribed again is sent again even
    /// if the proxy seems to hold it (it may have forgotten it); a name unsubscribed is
    /// dropped without a word, unless `*` may still cover it, when the proxy is told
    /// either way.
    fn change_subscription(&mut self, req: &DeltaConfigRequest, first: bool) {
        let (subscribe, unsubscribe) = (
            &req.resource_names_subscribe,
            &req.resource_names_unsubscribe,
        );
        self.dirty |= first || !subscribe.is_empty() || !unsubscribe.is_empty();
        if first && subscribe.is_empty() && unsubscribe.is_empty() {
            self.wildcard = true;
        }
        for name in subscribe {
            if name == "*" {
                self.wildcard = true;
                continue;
            }
            let name: Arc<str> = name.as_str().into();
            // On a first request the versions the proxy says it has stand.
            if !first {
                self.acked.remove(&name);
            }
            if !self.view.contains_key(&name) {
                self.tell_removed.insert(Arc::clone(&name));
            }
            self.names.insert(name);
        }
        for name in unsubscribe {
            if name == "*" {
                self.wildcard = false;
                // The proxy drops what it held through the wildcard alone.
                let names = &self.names;
                self.acked.retain(|n, _| names.contains(n));
                continue;
            }
            let Some(name) = self.names.take(name.as_str()) else {
                // A name it was not subscribed to: nothing to do.
                continue;
            };
            self.acked.remove(&name);
            self.tell_removed.remove(&name);
            if self.wildcard && !self.view.contains_key(&name) {
                self.tell_removed.insert(name);
            }
        }
    }

    /// Takes the ACK or NACK of the response in flight.
    fn answer(&mut self, req: &DeltaConfigRequest) -> Answer {
        let Some(pending) = self.pending.take_if(|p| p.nonce == req.response_nonce) else {
            return Answer::Stale;
        };
        let Some(error) = &req.error_detail else {
            for (name, version) in pending.upserts {
                self.acked.insert(name, version);
            }
            for name in &pending.removed {
                self.acked.remove(name);
                self.tell_removed.remove(name);
            }
            self.acked_version = Some(pending.version);
            self.nonce_acked = pending.nonce;
            return Answer::Ack;
        };
        let mut reason = error.message.clone();
        for e in &req.resource_errors {
            if let Some((name, version)) = pending.upserts.iter().find(|(n, _)| **n == *e.name) {
                self.rejected.insert(Arc::clone(name), Arc::clone(version));
            }
            reason.push_str(&format!("; {}: {}", e.name, e.reason));
        }
        self.last_nack = Some(reason.clone());
        self.dirty = true;
        Answer::Nack(reason)
    }

    fn set_view(&mut self, view: Arc<BTreeMap<Arc<str>, Encoded>>) {
        // A world that left this type's view as it was hands on the same map.
        if Arc::ptr_eq(&self.view, &view) {
            return;
        }
        self.dirty = true;
        self.view = view;
        let view = &*self.view;
        // A name that now exists is sent, not told removed.
        self.tell_removed.retain(|n| !view.contains_key(n));
    }
}

/// Why a request was refused; the stream ends with it.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ProtocolError {
    #[error("unknown resource type {0:?} (this control plane serves {TYPES:?})")]
    UnknownType(String),
}

/// What a request answered.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Answer {
    /// Nothing: a request that only (un)subscribes.
    None,
    Ack,
    Nack(String),
    /// A nonce that is not the response in flight (an old one): ignored, as Envoy's
    /// servers ignore it (its subscription changes still count).
    Stale,
}

/// What a request was.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Received {
    /// The first request of its type on the stream.
    pub first: bool,
    pub answer: Answer,
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

    /// Takes one request: a type's first (with the versions a resuming proxy has), an
    /// ACK or a NACK, and in any of them subscription changes.
    pub fn on_request(&mut self, req: &DeltaConfigRequest) -> Result<Received, ProtocolError> {
        let t = &mut self.types[type_index(&req.type_url)?];
        let first = !t.subscribed;
        let answer = if first {
            t.subscribed = true;
            t.owe_first = true;
            t.acked = req
                .initial_resource_versions
                .iter()
                .map(|(n, v)| (Arc::from(n.as_str()), Arc::from(v.as_str())))
                .collect();
            Answer::None
        } else if req.response_nonce.is_empty() {
            Answer::None
        } else {
            t.answer(req)
        };
        t.change_subscription(req, first);
        Ok(Received { first, answer })
    }

    /// Sets what the proxy may have, per type.
    pub fn set_view(&mut self, view: View) {
        for (t, v) in self.types.iter_mut().zip(view) {
            t.set_view(v);
        }
    }

    /// The next response for type `i`, when the proxy subscribed, nothing is in flight
    /// for that type, and it is owed something.
    pub fn next_response(&mut self, i: usize, system_version: u64) -> Option<DeltaConfigResponse> {
        let t = self.types.get_mut(i)?;
        if !t.subscribed || t.pending.is_some() || !(t.dirty || t.owe_first) {
            return None;
        }
        t.dirty = false;
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
