//! The mesh's service registry, shared by the control plane and the proxy: every service
//! by its fully-qualified host, with its ports, its endpoints and the addresses (VIPs)
//! sidecars recognise it by. Services and endpoints come from sources behind one
//! interface (`Source`): ServiceEntry + WorkloadEntry, Kubernetes Service + Endpoints/Pods,
//! and workloads that register themselves (with or without a WorkloadGroup). Pure: no I/O.

mod resolve;
mod sources;
mod vip;

use std::collections::BTreeMap;
use std::sync::Arc;

use ipnet::IpNet;

use crate::object::Object;

pub use resolve::search_names;
pub use sources::{ConfigObjects, Source, Sources, Workload, Workloads};
pub use vip::{VIP_RANGE, VipAllocator};

/// The protocol of a service port, from its declared protocol (or its name's prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Protocol {
    Http,
    Http2,
    Grpc,
    Https,
    Tls,
    Tcp,
}

impl Protocol {
    /// Istio's protocol selection: the declared protocol, else the port name's prefix
    /// (`http-web`, `grpc`), else TCP.
    pub fn of(declared: &str, name: &str) -> Protocol {
        Protocol::declared(declared, "", name).unwrap_or(Protocol::Tcp)
    }

    /// The protocol a port declares: its `protocol`, else its `appProtocol`, else its
    /// name's prefix; `None` when it declares none, which makes sidecars sniff the first
    /// bytes of each connection (Istio's automatic protocol selection).
    pub fn declared(declared: &str, app_protocol: &str, name: &str) -> Option<Protocol> {
        let from = |p: &str| match p.to_ascii_lowercase().as_str() {
            "http" => Some(Protocol::Http),
            "http2" | "h2c" => Some(Protocol::Http2),
            "grpc" | "grpc-web" => Some(Protocol::Grpc),
            "https" => Some(Protocol::Https),
            "tls" => Some(Protocol::Tls),
            "tcp" | "mongo" | "mysql" | "redis" => Some(Protocol::Tcp),
            _ => None,
        };
        from(declared)
            .or_else(|| from(app_protocol))
            .or_else(|| from(name.split('-').next().unwrap_or("")))
    }

    pub fn is_http(self) -> bool {
        matches!(self, Protocol::Http | Protocol::Http2 | Protocol::Grpc)
    }
}

/// One port of a service.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ServicePort {
    pub number: u16,
    pub name: String,
    /// TCP when the port declares nothing (see `detect`).
    pub protocol: Protocol,
    /// No protocol declared: sidecars sniff the first bytes (HTTP or opaque TCP).
    pub detect: bool,
    /// The port endpoints listen on when they do not say otherwise.
    pub target_port: Option<u16>,
}

/// One instance of a service: an address, its ports by service-port name, its labels.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Endpoint {
    pub address: String,
    pub ports: BTreeMap<String, u16>,
    pub labels: BTreeMap<String, String>,
    /// The identity the workload runs as (`spiffe://cluster.local/ns/<ns>/sa/<sa>`), when
    /// its source says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
}

impl Endpoint {
    /// The port this endpoint serves `port` on: its own mapping by name, else the port's
    /// target port, else the service port itself (Istio's rule).
    pub fn port_for(&self, port: &ServicePort) -> u16 {
        self.ports
            .get(&port.name)
            .copied()
            .or(port.target_port)
            .unwrap_or(port.number)
    }
}

/// Which kind of object defined a service, and its name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Origin {
    /// `ServiceEntry` or `Service`.
    pub kind: &'static str,
    pub name: String,
}

/// An origin as the control plane sends it (the proxy decodes the services it is
/// pushed); a kind no source makes is refused.
impl<'de> serde::Deserialize<'de> for Origin {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Origin, D::Error> {
        #[derive(serde::Deserialize)]
        struct Wire {
            kind: String,
            name: String,
        }
        let wire = Wire::deserialize(d)?;
        let kind = ["ServiceEntry", "Service"]
            .into_iter()
            .find(|k| *k == wire.kind)
            .ok_or_else(|| {
                serde::de::Error::custom(format!("unknown service origin {:?}", wire.kind))
            })?;
        Ok(Origin {
            kind,
            name: wire.name,
        })
    }
}

/// A service known by its fully-qualified host.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Service {
    pub host: String,
    pub namespace: String,
    pub ports: Vec<ServicePort>,
    pub endpoints: Vec<Endpoint>,
    /// The addresses a sidecar recognises the service by when a connection's original
    /// destination is one of them: the declared ones (ServiceEntry `addresses`, a
    /// Service's `clusterIP`), else one auto-allocated from 240.240.0.0/16 (`VipAllocator`).
    pub addresses: Vec<IpNet>,
    /// The namespaces the service is visible from, as written (`exportTo` of a
    /// ServiceEntry, the `networking.istio.io/exportTo` annotation of a Service); empty
    /// means Istio's default, every namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub export_to: Vec<String>,
    pub origin: Origin,
}

impl Service {
    /// The port a destination names, or the service's only port when it names none.
    pub fn port(&self, number: Option<u16>) -> Option<&ServicePort> {
        match number {
            Some(n) => self.ports.iter().find(|p| p.number == n),
            None => self.ports.first(),
        }
    }
}

/// Every service, by host.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Registry {
    pub services: BTreeMap<String, Arc<Service>>,
}

impl Registry {
    /// The registry a set of config objects describes, with addresses allocated afresh
    /// (the proxy's fallback when no control plane hands them out).
    pub fn build(objects: &[Object]) -> Registry {
        Registry::from_sources(&[&ConfigObjects(objects)], &mut VipAllocator::default())
    }

    /// The registry of several sources; `vips` keeps the auto-allocated addresses stable
    /// from one build to the next (the control plane keeps one allocator for its life).
    pub fn from_sources(sources: &[&dyn Source], vips: &mut VipAllocator) -> Registry {
        let mut collected = Sources::default();
        for source in sources {
            source.collect(&mut collected);
        }
        let mut drafts = collected.into_services();
        vips.assign(&mut drafts);
        Registry {
            services: drafts
                .into_iter()
                .map(|d| (d.service.host.clone(), Arc::new(d.service)))
                .collect(),
        }
    }

    /// The service a config host names from `namespace` (`reviews` ->
    /// `reviews.<namespace>.svc.cluster.local`), if there is one. This is Istio's rule
    /// for hosts in config; see `resolve` for names as applications dial them.
    pub fn lookup(&self, host: &str, namespace: &str) -> Option<&Service> {
        self.services
            .get(&crate::analyze::fqdn(host, namespace))
            .or_else(|| self.services.get(&host.to_ascii_lowercase()))
            .map(Arc::as_ref)
    }

    /// The service a name resolves to for a workload in `namespace`, the way Kubernetes'
    /// DNS search path resolves it: `reviews`, `reviews.default`, `reviews.default.svc`
    /// and `reviews.default.svc.cluster.local` all name the same service.
    pub fn resolve(&self, name: &str, namespace: &str) -> Option<&Arc<Service>> {
        search_names(name, namespace)
            .iter()
            .find_map(|n| self.services.get(n))
    }
}

#[cfg(test)]
mod tests;
