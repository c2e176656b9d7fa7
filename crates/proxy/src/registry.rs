//! The services a proxy knows and their endpoints, read from ServiceEntry and
//! WorkloadEntry objects (how Istio meshes VMs, and how the local mesh describes itself),
//! with the addresses (VIPs) sidecars recognise them by.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;

use weft_api::Spec;
use weft_api::analyze::fqdn;
use weft_api::networking::service_entry::Resolution;
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
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
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
    /// The addresses a sidecar recognises the service by when a connection's original
    /// destination is one of them: the ServiceEntry's `addresses` (single IPs or CIDR
    /// ranges), else one auto-allocated from 240.240.0.0/16 (see `allocate_vips`).
    pub addresses: Vec<IpNet>,
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
    /// Hosts waiting for an auto-allocated address while the registry is built.
    #[serde(skip)]
    wants_vip: Vec<String>,
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
        registry.allocate_vips();
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
                let declared = Protocol::declared(&p.protocol, "", &p.name);
                Some(ServicePort {
                    number: u16::try_from(p.number).ok()?,
                    name: p.name.clone(),
                    protocol: declared.unwrap_or(Protocol::Tcp),
                    detect: declared.is_none(),
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
        let addresses: Vec<IpNet> = se
            .addresses
            .iter()
            .filter_map(|a| {
                a.parse::<IpNet>()
                    .ok()
                    .or_else(|| a.parse::<IpAddr>().ok().map(IpNet::from))
            })
            .collect();
        // Istio cannot give a VIP to a NONE-resolution entry: its traffic is recognised
        // by the address the application dialled, which must stay the original.
        let allocatable =
            addresses.is_empty() && se.resolution.unwrap_or_default() != Resolution::None;
        for host in &se.hosts {
            let host = fqdn(host, "");
            if allocatable && !host.contains('*') {
                self.wants_vip.push(host.clone());
            }
            let service = Service {
                host: host.clone(),
                namespace: namespace.to_string(),
                ports: ports.clone(),
                endpoints: endpoints.clone(),
                addresses: addresses.clone(),
            };
            self.services.insert(host, service);
        }
    }

    /// Gives every service that asked for one an address from 240.240.0.0/16, the
    /// reserved class-E range Istio auto-allocates from (it is never routed off the
    /// host). Like Istio's allocator it is deterministic: the slot is the FNV-1a hash of
    /// `namespace/host`, collisions move on by double hashing, and hosts are placed in
    /// name order, so a host keeps its address whatever else is added unless it
    /// collides. The addresses themselves differ from istiod's; the control plane will
    /// hand out the addresses later, and this remains the fallback.
    fn allocate_vips(&mut self) {
        const SLOTS: u32 = 254 * 255; // 240.240.0.1 ..= 240.240.254.254
        const PRIME: u32 = 64_763; // the largest prime below SLOTS
        let mut wanting = std::mem::take(&mut self.wants_vip);
        wanting.sort();
        wanting.dedup();
        let mut taken: HashSet<u32> = HashSet::new();
        for host in wanting {
            let Some(service) = self.services.get_mut(&host) else {
                continue;
            };
            let key = fnv1a(format!("{}/{}", service.namespace, host).as_bytes());
            let step = PRIME - key % PRIME;
            let Some(slot) = (0..SLOTS)
                .map(|i| (key % SLOTS + i * step) % SLOTS)
                .find(|s| !taken.contains(s))
            else {
                continue;
            };
            taken.insert(slot);
            let (Ok(third), Ok(fourth)) = (u8::try_from(slot / 254), u8::try_from(slot % 254 + 1))
            else {
                continue;
            };
            let ip = Ipv4Addr::new(240, 240, third, fourth);
            service.addresses = vec![IpNet::from(IpAddr::V4(ip))];
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

/// 32-bit FNV-1a, the hash Istio's address allocator uses.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
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
