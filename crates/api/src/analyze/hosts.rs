//! What exists in a set of objects, as the analyzers look things up: services by host,
//! gateways by name, subsets by host.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::kind::Spec;
use crate::networking::Gateway;
use crate::object::Object;

/// The cluster's DNS suffix for Kubernetes services.
pub const CLUSTER_DOMAIN: &str = "svc.cluster.local";

/// A config host as Istio resolves it in `namespace`: a short name (no dot) is a service
/// of that namespace (`reviews` -> `reviews.default.svc.cluster.local`); anything with a
/// dot is taken as written.
pub fn fqdn(host: &str, namespace: &str) -> String {
    let host = host.to_ascii_lowercase();
    if host.contains('.') || host.contains('*') || namespace.is_empty() {
        host
    } else {
        format!("{host}.{namespace}.{CLUSTER_DOMAIN}")
    }
}

/// Whether `pattern` (`*`, `*.example.com` or a name) covers `host`.
pub fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix('*') {
        Some("") => true,
        Some(suffix) => host.ends_with(suffix) && host.len() > suffix.len(),
        None => pattern.eq_ignore_ascii_case(host),
    }
}

/// A service the objects define: a Kubernetes Service or a ServiceEntry host.
#[derive(Debug, Clone, Default)]
pub struct ServiceInfo {
    /// The service's port numbers.
    pub ports: BTreeSet<u32>,
}

/// Lookups over one set of objects.
#[derive(Debug, Default)]
pub struct Index<'a> {
    services: HashMap<String, ServiceInfo>,
    /// ServiceEntry hosts with a leading wildcard.
    wildcard_services: Vec<String>,
    /// Istio Gateways by `namespace/name`.
    gateways: BTreeMap<String, &'a Gateway>,
    /// Gateway API Gateways as `namespace/name`.
    kube_gateways: BTreeSet<String>,
    /// Subset names by the fully-qualified host of their DestinationRule.
    subsets: HashMap<String, BTreeSet<String>>,
}

impl<'a> Index<'a> {
    pub fn new(objects: &'a [Object]) -> Self {
        let mut index = Index::default();
        for o in objects {
            let ns = o.namespace();
            match &o.spec {
                Spec::Service(svc) => {
                    let ports = svc.spec.iter().flat_map(|s| s.ports.iter().flatten());
                    let ports = ports.filter_map(|p| u32::try_from(p.port).ok()).collect();
                    index
                        .services
                        .insert(fqdn(o.name(), ns), ServiceInfo { ports });
                }
                Spec::ServiceEntry(se) => {
                    for host in &se.hosts {
                        if host.starts_with('*') {
                            index.wildcard_services.push(host.to_ascii_lowercase());
                        } else {
                            let entry =
                                index.services.entry(host.to_ascii_lowercase()).or_default();
                            entry.ports.extend(se.ports.iter().map(|p| p.number));
                        }
                    }
                }
                Spec::Gateway(gw) => {
                    index.gateways.insert(format!("{ns}/{}", o.name()), gw);
                }
                Spec::KubeGateway(_) => {
                    index.kube_gateways.insert(format!("{ns}/{}", o.name()));
                }
                Spec::DestinationRule(dr) => {
                    let names = dr.subsets.iter().map(|s| s.name.clone());
                    index
                        .subsets
                        .entry(fqdn(&dr.host, ns))
                        .or_default()
                        .extend(names);
                }
                _ => {}
            }
        }
        index
    }

    /// The service a fully-qualified host names, if the objects define one.
    pub fn service(&self, host: &str) -> Option<&ServiceInfo> {
        self.services.get(host)
    }

    /// Whether a service or ServiceEntry (possibly a wildcard one) covers `host`.
    pub fn has_host(&self, host: &str) -> bool {
        self.services.contains_key(host)
            || self.wildcard_services.iter().any(|w| host_matches(w, host))
    }

    /// Whether some service's host is covered by the wildcard `pattern` (for a
    /// DestinationRule such as `*.example.com`).
    pub fn covers_any(&self, pattern: &str) -> bool {
        self.services.keys().any(|h| host_matches(pattern, h))
            || self.wildcard_services.iter().any(|w| w == pattern)
    }

    /// A known service whose fully-qualified name starts with `host` (`reviews.default`
    /// -> `reviews.default.svc.cluster.local`), to suggest when `host` is not found.
    pub fn suggest(&self, host: &str) -> Option<&str> {
        let prefix = format!("{host}.");
        self.services
            .keys()
            .find(|h| h.starts_with(&prefix))
            .map(String::as_str)
    }

    /// The Istio Gateway named `namespace/name`.
    pub fn gateway(&self, namespaced_name: &str) -> Option<&'a Gateway> {
        self.gateways.get(namespaced_name).copied()
    }

    pub fn has_kube_gateway(&self, namespaced_name: &str) -> bool {
        self.kube_gateways.contains(namespaced_name)
    }

    /// Whether a DestinationRule for `host` defines `subset`.
    pub fn has_subset(&self, host: &str, subset: &str) -> bool {
        self.subsets
            .iter()
            .any(|(h, names)| host_matches(h, host) && names.contains(subset))
    }
}
