//! Per-proxy scoping: from every config object and the service registry to what one
//! proxy needs, with Istio's rules (`exportTo`, the Sidecar resource, the DestinationRule
//! lookup order, workload selectors, Gateway selectors), and which proxies a change
//! affects. Pure functions of their inputs; the push server calls them.

mod affected;
mod index;
mod rules;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use weft_api::analyze::fqdn;
use weft_api::registry::{Registry, Service};
use weft_api::{Kind, Object, Spec};

pub use affected::{Snapshot, affected};
pub use index::{Index, ObjectKey, ViewKey};

/// What a proxy is: a sidecar next to one workload, or a standalone gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProxyKind {
    Sidecar,
    Gateway,
}

/// Who a proxy is, as far as config selection goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProxyIdentity {
    pub kind: ProxyKind,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub service_account: String,
}

/// Mesh-wide settings scoping depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Where mesh-wide defaults live (Istio's `rootNamespace`, `istio-system`).
    pub root_namespace: String,
    /// Gateways select only Gateway objects of their own namespace (Istio's
    /// `PILOT_SCOPE_GATEWAY_TO_NAMESPACE`); off by default, as in Istio.
    pub scope_gateway_to_namespace: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            root_namespace: "istio-system".into(),
            scope_gateway_to_namespace: false,
        }
    }
}

/// What one proxy receives: the services it can reach and the config objects that
/// apply to it. The registry's own source objects (ServiceEntry, WorkloadEntry, Service,
/// Endpoints, Pod...) are not among the objects: their effect is in `services`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScopedView {
    pub services: BTreeMap<String, Arc<Service>>,
    pub objects: BTreeMap<ObjectKey, Arc<Object>>,
}

impl ScopedView {
    fn add(&mut self, o: &Arc<Object>) {
        self.objects.insert(ObjectKey::of(o), Arc::clone(o));
    }

    /// The objects of one kind in the view.
    pub fn of_kind(&self, kind: Kind) -> impl Iterator<Item = &Arc<Object>> {
        self.objects
            .iter()
            .filter(move |(k, _)| k.kind == kind)
            .map(|(_, o)| o)
    }
}

/// Works out what `proxy` needs from every object and service.
pub fn scope(
    index: &Index,
    registry: &Registry,
    proxy: &ProxyIdentity,
    opts: &Options,
) -> ScopedView {
    let mut view = ScopedView::default();
    match proxy.kind {
        ProxyKind::Sidecar => sidecar_outbound(index, registry, proxy, opts, &mut view),
        ProxyKind::Gateway => gateway_config(index, registry, proxy, opts, &mut view),
    }
    add_delegates(index, &mut view);
    let services: Vec<Arc<Service>> = view.services.values().cloned().collect();
    for service in &services {
        for dr in rules::destination_rules(index, proxy, service, opts) {
            view.add(dr);
        }
    }
    for o in index.policies() {
        if rules::policy_applies(o, proxy, opts) {
            view.add(o);
        }
    }
    view
}

/// A sidecar's outbound view: the Sidecar resource that applies to it, and the
/// VirtualServices and services visible from its namespace that the Sidecar's egress
/// hosts import (all of them without one), plus the services those VirtualServices
/// route to (Istio infers them so a VirtualService's destinations stay reachable).
fn sidecar_outbound(
    index: &Index,
    registry: &Registry,
    proxy: &ProxyIdentity,
    opts: &Options,
    view: &mut ScopedView,
) {
    let sidecar = rules::sidecar_for(index, proxy, opts);
    let egress = sidecar.map(|s| rules::Egress::of(s, &proxy.namespace));
    if let Some(s) = sidecar {
        view.add(s);
    }
    for vs in index.of(Kind::VirtualService) {
        if rules::mesh_virtual_service_visible(vs, &proxy.namespace)
            && egress
                .as_ref()
                .is_none_or(|e| e.imports_virtual_service(vs))
        {
            view.add(vs);
        }
    }
    for service in registry.services.values() {
        if rules::service_visible(service, &proxy.namespace)
            && egress
                .as_ref()
                .is_none_or(|e| e.imports(&service.namespace, &service.host))
        {
            view.services
                .insert(service.host.clone(), Arc::clone(service));
        }
    }
    if egress.is_some() {
        let inferred: BTreeSet<String> = view
            .of_kind(Kind::VirtualService)
            .flat_map(|vs| rules::destination_hosts(vs))
            .collect();
        for host in inferred {
            if let Some(service) = registry.services.get(&host)
                && rules::service_visible(service, &proxy.namespace)
            {
                view.services.insert(host, Arc::clone(service));
            }
        }
    }
}

/// A gateway's view: the Gateways whose selector matches its labels, the
/// VirtualServices bound to them, every service visible from its namespace, and the
/// TLS secrets its Gateways name (`credentialName`, read from the gateway's namespace).
fn gateway_config(
    index: &Index,
    registry: &Registry,
    proxy: &ProxyIdentity,
    opts: &Options,
    view: &mut ScopedView,
) {
    let mut names = BTreeSet::new();
    for gw in index.of(Kind::Gateway) {
        if rules::gateway_selects(gw, proxy, opts) {
            names.insert(format!("{}/{}", gw.namespace(), gw.name()));
            view.add(gw);
            for secret in rules::credential_names(gw) {
                if let Some(s) = index.get(&ObjectKey::new(Kind::Secret, &proxy.namespace, &secret))
                {
                    view.add(s);
                }
            }
        }
    }
    for vs in index.of(Kind::VirtualService) {
        if rules::bound_to_any(vs, &names, &proxy.namespace) {
            view.add(vs);
        }
    }
    for service in registry.services.values() {
        if rules::service_visible(service, &proxy.namespace) {
            view.services
                .insert(service.host.clone(), Arc::clone(service));
        }
    }
}

/// VirtualServices the view's VirtualServices delegate to (`http[].delegate`): the
/// proxy resolves them itself, so they travel with their parents.
fn add_delegates(index: &Index, view: &mut ScopedView) {
    let delegates: Vec<ObjectKey> = view
        .of_kind(Kind::VirtualService)
        .flat_map(|vs| rules::delegates(vs))
        .collect();
    for key in delegates {
        if let Some(d) = index.get(&key) {
            view.add(d);
        }
    }
}

/// The fully-qualified hosts a VirtualService's hosts name.
fn vs_hosts(vs: &Object) -> Vec<String> {
    match &vs.spec {
        Spec::VirtualService(spec) => spec.hosts.iter().map(|h| fqdn(h, vs.namespace())).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod property_tests;
