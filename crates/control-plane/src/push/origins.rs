//! Which services each of the registry's source objects feeds, so that their status can
//! count the proxies that have their effect: those objects reach proxies only inside
//! services. A ServiceEntry or a Kubernetes Service feeds the services it defines (not a
//! host another source won), an Endpoints object its selector-less Service's, a
//! WorkloadEntry or Pod the services it is an endpoint of, a WorkloadGroup those of the
//! workloads registered through it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use weft_api::registry::{Registry, Workloads};
use weft_api::{Kind, Object, Spec};

use crate::scope::{Index, ObjectKey};

/// The hosts each registry-source object of `index` feeds (objects that feed none are
/// left out).
pub(crate) fn feeds(
    index: &Index,
    registry: &Registry,
    workloads: &Workloads,
) -> HashMap<ObjectKey, Vec<String>> {
    let lookup = Lookup::new(index, registry, workloads);
    let mut out = HashMap::new();
    for o in SOURCE_KINDS.iter().flat_map(|k| index.of(*k)) {
        let hosts: BTreeSet<&str> = lookup.hosts_fed_by(o).into_iter().collect();
        if !hosts.is_empty() {
            out.insert(
                ObjectKey::of(o),
                hosts.into_iter().map(str::to_string).collect(),
            );
        }
    }
    out
}

/// The registry's services by the object that defined them and by endpoint address.
struct Lookup<'a> {
    index: &'a Index,
    workloads: &'a Workloads,
    /// (origin kind, namespace, origin name) -> hosts.
    defined: HashMap<(&'a str, &'a str, &'a str), Vec<&'a str>>,
    /// (namespace, endpoint address) -> hosts, with the endpoint's labels.
    serving: HashMap<(&'a str, &'a str), Vec<(&'a str, &'a Labels)>>,
}

impl<'a> Lookup<'a> {
    fn new(index: &'a Index, registry: &'a Registry, workloads: &'a Workloads) -> Lookup<'a> {
        let mut lookup = Lookup {
            index,
            workloads,
            defined: HashMap::new(),
            serving: HashMap::new(),
        };
        for s in registry.services.values() {
            let origin = (s.origin.kind, s.namespace.as_str(), s.origin.name.as_str());
            lookup.defined.entry(origin).or_default().push(&s.host);
            for e in &s.endpoints {
                lookup
                    .serving
                    .entry((s.namespace.as_str(), e.address.as_str()))
                    .or_default()
                    .push((&s.host, &e.labels));
            }
        }
        lookup
    }

    fn hosts_fed_by(&self, o: &Object) -> Vec<&'a str> {
        let (ns, name) = (o.namespace(), o.name());
        match &o.spec {
            Spec::ServiceEntry(_) => self.defined_by("ServiceEntry", o),
            Spec::Service(_) => self.defined_by("Service", o),
            Spec::Endpoints(_) if !service_selects(self.index, o) => self.defined_by("Service", o),
            Spec::WorkloadEntry(we) => we
                .address
                .as_deref()
                .map(|a| self.serving_at(ns, a, Some(&we.labels)))
                .unwrap_or_default(),
            Spec::Pod(pod) => {
                let ip = pod.status.as_ref().and_then(|s| s.pod_ip.as_deref());
                let labels = pod.metadata.labels.clone().unwrap_or_default();
                ip.map(|ip| self.serving_at(ns, ip, Some(&labels)))
                    .unwrap_or_default()
            }
            Spec::WorkloadGroup(_) => self
                .workloads
                .iter()
                .filter(|w| w.namespace == ns && w.group.as_deref() == Some(name))
                .flat_map(|w| self.serving_at(ns, &w.address, None))
                .collect(),
            _ => Vec::new(),
        }
    }

    fn defined_by(&self, kind: &str, o: &Object) -> Vec<&'a str> {
        self.defined
            .get(&(kind, o.namespace(), o.name()))
            .cloned()
            .unwrap_or_default()
    }

    /// The services with an endpoint at `address` (with these labels, if given).
    fn serving_at(&self, ns: &str, address: &str, labels: Option<&Labels>) -> Vec<&'a str> {
        self.serving
            .get(&(ns, address))
            .into_iter()
            .flatten()
            .filter(|(_, l)| labels.is_none_or(|labels| *l == labels))
            .map(|(h, _)| *h)
            .collect()
    }
}

type Labels = BTreeMap<String, String>;

/// The kinds the registry reads: their objects reach proxies only as services.
pub(crate) const SOURCE_KINDS: [Kind; 6] = [
    Kind::ServiceEntry,
    Kind::WorkloadEntry,
    Kind::WorkloadGroup,
    Kind::Service,
    Kind::Endpoints,
    Kind::Pod,
];

/// Whether the Service an Endpoints object is named after has a selector: the registry
/// then takes its endpoints from the pods, not from the Endpoints object.
fn service_selects(index: &Index, endpoints: &Object) -> bool {
    let key = ObjectKey::new(Kind::Service, endpoints.namespace(), endpoints.name());
    index.get(&key).is_some_and(|o| match &o.spec {
        Spec::Service(svc) => svc
            .spec
            .as_ref()
            .and_then(|s| s.selector.as_ref())
            .is_some_and(|s| !s.is_empty()),
        _ => false,
    })
}

#[cfg(test)]
mod tests;
