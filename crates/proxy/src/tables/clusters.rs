//! Building clusters: a destination's service, port and subset become an Istio-named
//! cluster with its endpoints and load-balancing policy.

use std::collections::BTreeMap;
use std::sync::Arc;

use weft_api::analyze::fqdn;
use weft_api::networking::DestinationRule;
use weft_api::networking::destination_rule::{SimpleLb, Subset};
use weft_api::networking::virtual_service::Destination;
use weft_api::object::Object;

use crate::cluster::{Cluster, LbPolicy, UpstreamEndpoint};
use crate::registry::Registry;

/// The clusters routes send to, built on first use from the registry and the
/// DestinationRules.
pub(super) struct Clusters<'a> {
    registry: &'a Registry,
    rules: Vec<(&'a Object, &'a DestinationRule)>,
    pub built: BTreeMap<String, Arc<Cluster>>,
}

impl<'a> Clusters<'a> {
    pub fn new(objects: &'a [Object], registry: &'a Registry) -> Self {
        let rules = objects
            .iter()
            .filter_map(|o| match &o.spec {
                weft_api::Spec::DestinationRule(dr) => Some((o, dr.as_ref())),
                _ => None,
            })
            .collect();
        Self {
            registry,
            rules,
            built: BTreeMap::new(),
        }
    }

    /// The cluster a destination names from `namespace`, built on first use; its name
    /// follows Istio's even when the service or subset is unknown (requests to it then fail
    /// with `NC`).
    pub fn cluster_for(&mut self, dest: &Destination, namespace: &str) -> String {
        let Some(service) = self.registry.lookup(&dest.host, namespace) else {
            let port = dest.port.map_or(0, |p| p.number);
            return Cluster::name_for(
                u16::try_from(port).unwrap_or(0),
                &dest.subset,
                &fqdn(&dest.host, namespace),
            );
        };
        let wanted = dest.port.and_then(|p| u16::try_from(p.number).ok());
        let Some(port) = service.port(wanted) else {
            return Cluster::name_for(wanted.unwrap_or(0), &dest.subset, &service.host);
        };
        let name = Cluster::name_for(port.number, &dest.subset, &service.host);
        if self.built.contains_key(&name) {
            return name;
        }
        let rule = self
            .rules
            .iter()
            .find(|(o, dr)| fqdn(&dr.host, o.namespace()) == service.host);
        let subset = rule.and_then(|(_, dr)| dr.subsets.iter().find(|s| s.name == dest.subset));
        if !dest.subset.is_empty() && subset.is_none() {
            return name;
        }
        let labels = subset.map(|s| &s.labels);
        let endpoints = service
            .endpoints
            .iter()
            .filter(|e| labels.is_none_or(|l| l.iter().all(|(k, v)| e.labels.get(k) == Some(v))))
            .map(|e| UpstreamEndpoint::new(format!("{}:{}", e.address, e.port_for(port))))
            .collect();
        let lb = load_balancer(rule.map(|(_, dr)| *dr), subset, port.number);
        let cluster = Cluster::new(name.clone(), port.protocol, lb, endpoints);
        self.built.insert(name.clone(), Arc::new(cluster));
        name
    }
}

/// Istio's precedence: the subset's port-level policy, the subset's, the rule's
/// port-level policy, the rule's; LEAST_REQUEST when none says.
fn load_balancer(rule: Option<&DestinationRule>, subset: Option<&Subset>, port: u16) -> LbPolicy {
    let policies = [
        subset.and_then(|s| s.traffic_policy.as_ref()),
        rule.and_then(|r| r.traffic_policy.as_ref()),
    ];
    let simple = policies.into_iter().flatten().find_map(|tp| {
        let port_level = tp
            .port_level_settings
            .iter()
            .find(|p| p.port.is_some_and(|sel| sel.number == u32::from(port)));
        port_level
            .and_then(|p| p.load_balancer.as_ref())
            .or(tp.load_balancer.as_ref())
            .and_then(|lb| lb.simple)
    });
    match simple {
        Some(SimpleLb::RoundRobin) => LbPolicy::RoundRobin,
        Some(SimpleLb::Random) => LbPolicy::Random,
        _ => LbPolicy::LeastRequest,
    }
}
