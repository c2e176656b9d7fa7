//! The services a proxy knows and their endpoints, read from ServiceEntry and
//! WorkloadEntry objects (how Istio meshes VMs, and how the local mesh describes itself).

use std::collections::{BTreeMap, HashMap};

use weft_api::Spec;
use weft_api::analyze::fqdn;
use weft_api::networking::{ServiceEntry, WorkloadEntry};
use weft_api::object::Object;

/// The protocol of a service port, from its declared protocol (or its name's prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
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
            .or_else(|| from(name.split('-').next().unwrap_or("")))
            .unwrap_or(Protocol::Tcp)
    }

    pub fn is_http(self) -> bool {
        matches!(self, Protocol::Http | Protocol::Http2 | Protocol::Grpc)
    }
}

/// One port of a service.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ServicePort {
    pub number: u16,
    pub name: String,
    pub protocol: Protocol,
    /// The port endpoints listen on when they do not say otherwise.
    pub target_port: Option<u16>,
}

/// One instance of a service: an address, its ports by service-port name, its labels.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Endpoint {
    pub address: String,
    pub ports: BTreeMap<String, u16>,
    pub labels: BTreeMap<String, String>,
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

/// A service known by its fully-qualified host.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Service {
    pub host: String,
    pub namespace: String,
    pub ports: Vec<ServicePort>,
    pub endpoints: Vec<Endpoint>,
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
    pub services: BTreeMap<String, Service>,
}

impl Registry {
    pub fn build(objects: &[Object]) -> Registry {
        let mut workload_entries: HashMap<&str, Vec<&WorkloadEntry>> = HashMap::new();
        for o in objects {
            if let Spec::WorkloadEntry(we) = &o.spec {
                workload_entries.entry(o.namespace()).or_default().push(we);
            }
        }
        let mut registry = Registry::default();
        for o in objects {
            if let Spec::ServiceEntry(se) = &o.spec {
                let selected = workload_entries
                    .get(o.namespace())
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                registry.add_service_entry(o.namespace(), se, selected);
            }
        }
        registry
    }

    fn add_service_entry(
        &mut self,
        namespace: &str,
        se: &ServiceEntry,
        workload_entries: &[&WorkloadEntry],
    ) {
        let ports: Vec<ServicePort> = se
            .ports
            .iter()
            .filter_map(|p| {
                Some(ServicePort {
                    number: u16::try_from(p.number).ok()?,
                    name: p.name.clone(),
                    protocol: Protocol::of(&p.protocol, &p.name),
                    target_port: p.target_port.and_then(|t| u16::try_from(t).ok()),
                })
            })
            .collect();
        let mut endpoints: Vec<Endpoint> = se.endpoints.iter().filter_map(endpoint).collect();
        if let Some(selector) = se.workload_selector.as_ref() {
            let selects = |we: &&&WorkloadEntry| {
                selector
                    .labels
                    .iter()
                    .all(|(k, v)| we.labels.get(k) == Some(v))
            };
            endpoints.extend(
                workload_entries
                    .iter()
                    .filter(selects)
                    .filter_map(|we| endpoint(we)),
            );
        }
        for host in &se.hosts {
            let host = fqdn(host, "");
            let service = Service {
                host: host.clone(),
                namespace: namespace.to_string(),
                ports: ports.clone(),
                endpoints: endpoints.clone(),
            };
            self.services.insert(host, service);
        }
    }

    /// The service a config host names from `namespace` (`reviews` ->
    /// `reviews.<namespace>.svc.cluster.local`), if there is one.
    pub fn lookup(&self, host: &str, namespace: &str) -> Option<&Service> {
        self.services
            .get(&fqdn(host, namespace))
            .or_else(|| self.services.get(&host.to_ascii_lowercase()))
    }
}

fn endpoint(we: &WorkloadEntry) -> Option<Endpoint> {
    let ports = we
        .ports
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), u16::try_from(*v).ok()?)))
        .collect();
    Some(Endpoint {
        address: we.address.clone()?,
        ports,
        labels: we.labels.clone(),
    })
}
