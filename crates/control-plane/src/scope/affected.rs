//! Which proxies a change affects, so the push server sends it only to them. The answer
//! may include a proxy whose view turns out unchanged, never leave out one whose view
//! changed (the property tests check this on generated configs). Each rule looks at the
//! object as it was and as it is, so that what stops applying counts as much as what
//! starts to; services are compared in the registry before and after, so workload
//! registrations and endpoint changes need no object.

use std::borrow::Borrow;
use std::collections::{BTreeSet, HashMap};

use weft_api::registry::{Registry, Service};
use weft_api::{Kind, Object};

use super::index::{Index, ObjectKey, ViewKey};
use super::{Options, ProxyIdentity, ProxyKind, rules};

/// The config and the registry at one moment.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot<'a> {
    pub index: &'a Index,
    pub registry: &'a Registry,
}

/// The positions in `proxies` of those whose scoped view may differ between `before`
/// and `after`, when the objects named by `changed` changed (were added, modified or
/// removed) and the registry moved from `before.registry` to `after.registry`.
pub fn affected<P: Borrow<ProxyIdentity>>(
    before: Snapshot<'_>,
    after: Snapshot<'_>,
    changed: &[ObjectKey],
    proxies: &[P],
    opts: &Options,
) -> BTreeSet<usize> {
    let change = Change::new(before, after, changed);
    // Proxies with the same view keys in both indexes fare alike: the rules read no more
    // of a proxy than its keys hold.
    let mut memo: HashMap<(ViewKey, ViewKey), bool> = HashMap::new();
    let mut out = BTreeSet::new();
    for (i, proxy) in proxies.iter().map(Borrow::borrow).enumerate() {
        let key = (before.index.view_key(proxy), after.index.view_key(proxy));
        let hit = *memo
            .entry(key)
            .or_insert_with(|| change.affects(proxy, opts));
        if hit {
            out.insert(i);
        }
    }
    out
}

/// One change, with both versions of everything it touched.
struct Change<'a> {
    before: Snapshot<'a>,
    after: Snapshot<'a>,
    /// Each changed object as it was and as it is (one or both).
    objects: Vec<&'a Object>,
    /// Each changed service as it was and as it is.
    services: Vec<&'a Service>,
    /// VirtualServices (either version of the config) that route to a changed service:
    /// a Sidecar's egress hosts import the services they route to.
    routing: Vec<&'a Object>,
}

impl<'a> Change<'a> {
    fn new(before: Snapshot<'a>, after: Snapshot<'a>, changed: &[ObjectKey]) -> Change<'a> {
        let objects = changed
            .iter()
            .flat_map(|k| [before.index.get(k), after.index.get(k)])
            .flatten()
            .map(|o| o.as_ref())
            .collect();
        let hosts: BTreeSet<&String> = before
            .registry
            .services
            .keys()
            .chain(after.registry.services.keys())
            .collect();
        let mut services = Vec::new();
        let mut changed_hosts = BTreeSet::new();
        for host in hosts {
            let (b, a) = (
                before.registry.services.get(host),
                after.registry.services.get(host),
            );
            if b != a {
                services.extend(b.into_iter().chain(a).map(|s| s.as_ref()));
                changed_hosts.insert(host.clone());
            }
        }
        let routing = [before.index, after.index]
            .iter()
            .flat_map(|i| i.of(Kind::VirtualService))
            .filter(|vs| {
                rules::destination_hosts(vs)
                    .iter()
                    .any(|h| changed_hosts.contains(h))
            })
            .map(|vs| vs.as_ref())
            .collect();
        Change {
            before,
            after,
            objects,
            services,
            routing,
        }
    }

    fn indexes(&self) -> [&'a Index; 2] {
        [self.before.index, self.after.index]
    }

    fn affects(&self, proxy: &ProxyIdentity, opts: &Options) -> bool {
        self.objects
            .iter()
            .any(|o| self.object_affects(o, proxy, opts))
            || self
                .services
                .iter()
                .any(|s| self.service_affects(s, proxy, opts))
    }

    fn object_affects(&self, o: &Object, proxy: &ProxyIdentity, opts: &Options) -> bool {
        let ns = o.namespace();
        match o.kind {
            Kind::VirtualService => {
                self.virtual_service_affects(o, proxy, opts) || self.parent_affects(o, proxy, opts)
            }
            Kind::DestinationRule => destination_rule_may_apply(o, proxy),
            Kind::Sidecar => {
                proxy.kind == ProxyKind::Sidecar
                    && (ns == proxy.namespace || ns == opts.root_namespace)
            }
            Kind::Gateway => rules::gateway_selects(o, proxy, opts),
            // Only gateways read secrets, from their own namespace.
            Kind::Secret => proxy.kind == ProxyKind::Gateway && ns == proxy.namespace,
            _ => rules::policy_applies(o, proxy, opts),
        }
    }

    /// Whether a VirtualService is in the proxy's view before or after.
    fn virtual_service_affects(&self, vs: &Object, proxy: &ProxyIdentity, opts: &Options) -> bool {
        match proxy.kind {
            ProxyKind::Sidecar => {
                rules::mesh_virtual_service_visible(vs, &proxy.namespace)
                    && self.indexes().iter().any(|i| {
                        rules::sidecar_for(i, proxy, opts).is_none_or(|s| {
                            rules::Egress::of(s, &proxy.namespace).imports_virtual_service(vs)
                        })
                    })
            }
            ProxyKind::Gateway => self.indexes().iter().any(|i| {
                let names: BTreeSet<String> = i
                    .of(Kind::Gateway)
                    .iter()
                    .filter(|gw| rules::gateway_selects(gw, proxy, opts))
                    .map(|gw| format!("{}/{}", gw.namespace(), gw.name()))
                    .collect();
                rules::bound_to_any(vs, &names, &proxy.namespace)
            }),
        }
    }

    /// A delegate VirtualService travels with the VirtualServices that name it.
    fn parent_affects(&self, delegate: &Object, proxy: &ProxyIdentity, opts: &Options) -> bool {
        let key = ObjectKey::of(delegate);
        self.indexes()
            .iter()
            .flat_map(|i| i.of(Kind::VirtualService))
            .filter(|p| rules::delegates(p).contains(&key))
            .any(|p| self.virtual_service_affects(p, proxy, opts))
    }

    /// Whether a service is in the proxy's view: visible from its namespace and, for a
    /// sidecar with a Sidecar resource, imported by its egress hosts or routed to by a
    /// VirtualService in its view.
    fn service_affects(&self, s: &Service, proxy: &ProxyIdentity, opts: &Options) -> bool {
        if !rules::service_visible(s, &proxy.namespace) {
            return false;
        }
        if proxy.kind == ProxyKind::Gateway {
            return true;
        }
        let imported = self.indexes().iter().any(|i| {
            rules::sidecar_for(i, proxy, opts).is_none_or(|sc| {
                rules::Egress::of(sc, &proxy.namespace).imports(&s.namespace, &s.host)
            })
        });
        imported
            || self.routing.iter().any(|vs| {
                rules::destination_hosts(vs).contains(&s.host)
                    && self.virtual_service_affects(vs, proxy, opts)
            })
    }
}

/// Whether a DestinationRule can be in the proxy's view: it is visible from the proxy's
/// namespace, and its selector, if any, selects it.
fn destination_rule_may_apply(o: &Object, proxy: &ProxyIdentity) -> bool {
    let weft_api::Spec::DestinationRule(dr) = &o.spec else {
        return false;
    };
    let ns = o.namespace();
    let selected = dr
        .workload_selector
        .as_ref()
        .is_none_or(|s| ns == proxy.namespace && rules::selects(&s.match_labels, &proxy.labels));
    selected && rules::visible(&dr.export_to, ns, &proxy.namespace)
}
