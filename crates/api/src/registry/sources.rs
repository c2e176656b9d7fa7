//! Where services and their endpoints come from. A `Source` adds service definitions and
//! workload instances; the registry then joins them: a service's selector (a
//! ServiceEntry's `workloadSelector`, a Kubernetes Service's `selector`) picks the
//! instances of its namespace whose labels it matches, whatever source they came from.

use std::collections::BTreeMap;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service as KubeService};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::{Deserialize, Serialize};

use super::{Endpoint, Origin, Protocol, Service, ServicePort};
use crate::analyze::fqdn;
use crate::kind::Spec;
use crate::networking::service_entry::Resolution;
use crate::networking::{ServiceEntry, WorkloadEntry, WorkloadGroup};
use crate::object::Object;

/// The annotation that scopes a Kubernetes Service's visibility, like `exportTo`.
const EXPORT_TO_ANNOTATION: &str = "networking.istio.io/exportTo";

/// A source of services and workload instances. Kubernetes' API server plugs in here
/// later, next to the config objects and the self-registered workloads.
pub trait Source {
    fn collect(&self, into: &mut Sources);
}

/// What the sources have said so far.
#[derive(Debug, Default)]
pub struct Sources {
    services: Vec<ServiceDef>,
    instances: Vec<Instance>,
    /// WorkloadGroup templates by (namespace, name).
    groups: BTreeMap<(String, String), Instance>,
    /// Kubernetes Endpoints objects by (namespace, name), for Services with no selector.
    endpoints: BTreeMap<(String, String), Vec<Endpoint>>,
}

/// A service as a source defines it, before endpoints are joined in.
#[derive(Debug)]
struct ServiceDef {
    service: Service,
    /// Labels an instance of the same namespace must carry to be an endpoint.
    selector: Option<BTreeMap<String, String>>,
    /// Service port name to the named port (`targetPort: http-web`) endpoints listen on.
    named_targets: BTreeMap<String, String>,
    wants_vip: bool,
    created: Option<i128>,
    /// Lower wins when two sources define the same host: a Kubernetes Service is the
    /// authority for its `*.svc.cluster.local` name.
    precedence: u8,
}

/// A running workload that services may select: a Pod, a WorkloadEntry, a
/// self-registered workload.
#[derive(Debug, Clone, Default)]
struct Instance {
    namespace: String,
    labels: BTreeMap<String, String>,
    address: String,
    /// Named ports (a WorkloadEntry's `ports`, a container's named ports).
    ports: BTreeMap<String, u16>,
    service_account: Option<String>,
    /// The WorkloadGroup it registered through, whose template fills in what it left out.
    group: Option<String>,
}

/// A service built, with what the address allocator needs to know.
#[derive(Debug)]
pub(crate) struct Draft {
    pub service: Service,
    pub wants_vip: bool,
    pub created: Option<i128>,
}

impl Sources {
    /// Joins endpoints to services; one service per host (see `ServiceDef::precedence`,
    /// then the oldest, then by namespace).
    pub(crate) fn into_services(mut self) -> Vec<Draft> {
        let groups = std::mem::take(&mut self.groups);
        for i in &mut self.instances {
            if let Some(template) = i
                .group
                .as_ref()
                .and_then(|g| groups.get(&(i.namespace.clone(), g.clone())))
            {
                apply_template(i, template);
            }
        }
        self.services.sort_by(|a, b| {
            (
                a.precedence,
                a.created,
                &a.service.namespace,
                &a.service.origin.name,
            )
                .cmp(&(
                    b.precedence,
                    b.created,
                    &b.service.namespace,
                    &b.service.origin.name,
                ))
        });
        let mut seen = std::collections::BTreeSet::new();
        let mut out = Vec::new();
        for mut def in std::mem::take(&mut self.services) {
            if !seen.insert(def.service.host.clone()) {
                continue;
            }
            self.join_endpoints(&mut def);
            out.push(Draft {
                service: def.service,
                wants_vip: def.wants_vip,
                created: def.created,
            });
        }
        out
    }

    fn join_endpoints(&self, def: &mut ServiceDef) {
        let ns = def.service.namespace.clone();
        match &def.selector {
            None if def.precedence == 0 => {
                let key = (ns, def.service.origin.name.clone());
                let explicit = self.endpoints.get(&key).cloned().unwrap_or_default();
                def.service.endpoints.extend(explicit);
            }
            None => {}
            Some(selector) => {
                let selected = self.instances.iter().filter(|i| {
                    i.namespace == ns && selector.iter().all(|(k, v)| i.labels.get(k) == Some(v))
                });
                let endpoints: Vec<Endpoint> = selected
                    .map(|i| instance_endpoint(i, &def.service.ports, &def.named_targets))
                    .collect();
                def.service.endpoints.extend(endpoints);
            }
        }
    }
}

fn apply_template(instance: &mut Instance, template: &Instance) {
    for (k, v) in &template.labels {
        instance
            .labels
            .entry(k.clone())
            .or_insert_with(|| v.clone());
    }
    for (k, v) in &template.ports {
        instance.ports.entry(k.clone()).or_insert(*v);
    }
    if instance.service_account.is_none() {
        instance.service_account = template.service_account.clone();
    }
}

/// An instance as an endpoint of a service with `ports`: each service port is served on
/// the instance's port of the same name, else on its named target port.
fn instance_endpoint(
    i: &Instance,
    ports: &[ServicePort],
    named_targets: &BTreeMap<String, String>,
) -> Endpoint {
    let mut by_service_port = BTreeMap::new();
    for p in ports {
        let own = i.ports.get(&p.name).copied();
        let target = named_targets
            .get(&p.name)
            .and_then(|t| i.ports.get(t))
            .copied();
        if let Some(port) = own.or(target) {
            by_service_port.insert(p.name.clone(), port);
        }
    }
    Endpoint {
        address: i.address.clone(),
        ports: by_service_port,
        labels: i.labels.clone(),
        service_account: i.service_account.clone(),
    }
}

/// The config objects as a source: ServiceEntry, WorkloadEntry, WorkloadGroup, and the
/// Kubernetes Service, Endpoints and Pod objects users hand the local mesh.
pub struct ConfigObjects<'a>(pub &'a [Object]);

impl Source for ConfigObjects<'_> {
    fn collect(&self, into: &mut Sources) {
        for o in self.0 {
            let ns = o.namespace().to_string();
            match &o.spec {
                Spec::ServiceEntry(se) => service_entry(o, se, into),
                Spec::WorkloadEntry(we) => {
                    if let Some(i) = entry_instance(&ns, we) {
                        into.instances.push(i);
                    }
                }
                Spec::WorkloadGroup(wg) => {
                    into.groups
                        .insert((ns, o.name().to_string()), group_template(wg));
                }
                Spec::Service(svc) => kube_service(o, svc, into),
                Spec::Endpoints(ep) => {
                    into.endpoints
                        .insert((ns, o.name().to_string()), kube_endpoints(ep));
                }
                Spec::Pod(pod) => {
                    if let Some(i) = pod_instance(&ns, pod) {
                        into.instances.push(i);
                    }
                }
                _ => {}
            }
        }
    }
}

fn created(o: &Object) -> Option<i128> {
    o.metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.as_nanosecond())
}

fn service_entry(o: &Object, se: &ServiceEntry, into: &mut Sources) {
    let ns = o.namespace();
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
    let endpoints: Vec<Endpoint> = se
        .endpoints
        .iter()
        .filter_map(|we| entry_instance(ns, we))
        .map(|i| Endpoint {
            address: i.address,
            ports: i.ports,
            labels: i.labels,
            service_account: i.service_account,
        })
        .collect();
    let addresses: Vec<IpNet> = se.addresses.iter().filter_map(|a| parse_net(a)).collect();
    // Istio gives no VIP to a NONE-resolution entry: its traffic is recognised by the
    // address the application dialled, which must stay the original.
    let allocatable = addresses.is_empty() && se.resolution.unwrap_or_default() != Resolution::None;
    for host in &se.hosts {
        let host = fqdn(host, "");
        into.services.push(ServiceDef {
            wants_vip: allocatable && !host.contains('*'),
            service: Service {
                host,
                namespace: ns.to_string(),
                ports: ports.clone(),
                endpoints: endpoints.clone(),
                addresses: addresses.clone(),
                export_to: se.export_to.clone(),
                origin: Origin {
                    kind: "ServiceEntry",
                    name: o.name().to_string(),
                },
            },
            selector: se.workload_selector.as_ref().map(|s| s.labels.clone()),
            named_targets: BTreeMap::new(),
            created: created(o),
            precedence: 1,
        });
    }
}

fn parse_net(a: &str) -> Option<IpNet> {
    a.parse::<IpNet>()
        .ok()
        .or_else(|| a.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}

fn entry_instance(namespace: &str, we: &WorkloadEntry) -> Option<Instance> {
    Some(Instance {
        namespace: namespace.to_string(),
        labels: we.labels.clone(),
        address: we.address.clone()?,
        ports: u16_ports(&we.ports),
        service_account: we.service_account.clone(),
        group: None,
    })
}

fn u16_ports(ports: &BTreeMap<String, u32>) -> BTreeMap<String, u16> {
    ports
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), u16::try_from(*v).ok()?)))
        .collect()
}

/// What a WorkloadGroup gives each workload that registers through it: Istio creates
/// the WorkloadEntry from the template and the group's metadata labels.
fn group_template(wg: &WorkloadGroup) -> Instance {
    let template = wg.template.clone().unwrap_or_default();
    let mut labels = template.labels.clone();
    if let Some(m) = &wg.metadata {
        labels.extend(m.labels.clone());
    }
    Instance {
        labels,
        ports: u16_ports(&template.ports),
        service_account: template.service_account,
        ..Instance::default()
    }
}

fn kube_service(o: &Object, svc: &KubeService, into: &mut Sources) {
    let Some(spec) = &svc.spec else { return };
    let ns = o.namespace();
    let mut ports = Vec::new();
    let mut named_targets = BTreeMap::new();
    for p in spec.ports.iter().flatten() {
        // Istio carries TCP only; UDP and SCTP ports are left out.
        if p.protocol.as_deref().is_some_and(|p| p != "TCP") {
            continue;
        }
        let Ok(number) = u16::try_from(p.port) else {
            continue;
        };
        let name = p.name.clone().unwrap_or_default();
        let declared = Protocol::declared("", p.app_protocol.as_deref().unwrap_or(""), &name);
        let target_port = match &p.target_port {
            Some(IntOrString::Int(n)) => u16::try_from(*n).ok(),
            Some(IntOrString::String(target)) => {
                named_targets.insert(name.clone(), target.clone());
                None
            }
            None => None,
        };
        ports.push(ServicePort {
            number,
            name,
            protocol: declared.unwrap_or(Protocol::Tcp),
            detect: declared.is_none(),
            target_port,
        });
    }
    let headless = spec.cluster_ip.as_deref() == Some("None");
    let mut declared: Vec<&String> = spec.cluster_ips.iter().flatten().collect();
    if declared.is_empty() {
        declared.extend(spec.cluster_ip.iter());
    }
    let addresses: Vec<IpNet> = declared.iter().filter_map(|a| parse_net(a)).collect();
    let export_to = o
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(EXPORT_TO_ANNOTATION))
        .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
        .unwrap_or_default();
    let selector = spec.selector.clone().filter(|s| !s.is_empty());
    into.services.push(ServiceDef {
        wants_vip: addresses.is_empty() && !headless,
        service: Service {
            host: fqdn(o.name(), ns),
            namespace: ns.to_string(),
            ports,
            endpoints: Vec::new(),
            addresses,
            export_to,
            origin: Origin {
                kind: "Service",
                name: o.name().to_string(),
            },
        },
        selector,
        named_targets,
        created: created(o),
        precedence: 0,
    });
}

fn kube_endpoints(ep: &Endpoints) -> Vec<Endpoint> {
    let mut out = Vec::new();
    for subset in ep.subsets.iter().flatten() {
        let ports: BTreeMap<String, u16> = subset
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                Some((
                    p.name.clone().unwrap_or_default(),
                    u16::try_from(p.port).ok()?,
                ))
            })
            .collect();
        for a in subset.addresses.iter().flatten() {
            out.push(Endpoint {
                address: a.ip.clone(),
                ports: ports.clone(),
                labels: BTreeMap::new(),
                service_account: None,
            });
        }
    }
    out
}

fn pod_instance(namespace: &str, pod: &Pod) -> Option<Instance> {
    let status = pod.status.as_ref()?;
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return None;
    }
    let address = status.pod_ip.clone().filter(|ip| !ip.is_empty())?;
    let spec = pod.spec.as_ref();
    let ports = spec
        .into_iter()
        .flat_map(|s| s.containers.iter())
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| Some((p.name.clone()?, u16::try_from(p.container_port).ok()?)))
        .collect();
    Some(Instance {
        namespace: namespace.to_string(),
        labels: pod.metadata.labels.clone().unwrap_or_default(),
        address,
        ports,
        service_account: spec.and_then(|s| s.service_account_name.clone()),
        group: None,
    })
}

/// A workload that registered itself with the control plane when it started (the
/// one-host runtime's `weft run`, a VM's proxy) and is removed when it stops.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Workload {
    pub name: String,
    pub namespace: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub service_account: String,
    /// The IP address it is reached at.
    pub address: String,
    /// The ports it listens on, by name (`http: 9080`), which services' port names and
    /// named target ports refer to.
    #[serde(default)]
    pub ports: BTreeMap<String, u16>,
    /// A WorkloadGroup of its namespace whose template gives it labels, ports and a
    /// service account (Istio's auto-registration of VMs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// The self-registered workloads, by namespace and name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Workloads {
    by_name: BTreeMap<(String, String), Workload>,
}

impl Workloads {
    /// Adds or replaces a workload; says whether anything changed.
    pub fn register(&mut self, w: Workload) -> bool {
        let key = (w.namespace.clone(), w.name.clone());
        self.by_name.insert(key, w.clone()).as_ref() != Some(&w)
    }

    /// Removes a workload, returning it if it was registered.
    pub fn deregister(&mut self, namespace: &str, name: &str) -> Option<Workload> {
        self.by_name
            .remove(&(namespace.to_string(), name.to_string()))
    }

    pub fn get(&self, namespace: &str, name: &str) -> Option<&Workload> {
        self.by_name.get(&(namespace.to_string(), name.to_string()))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Workload> {
        self.by_name.values()
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

impl Source for Workloads {
    fn collect(&self, into: &mut Sources) {
        for w in self.by_name.values() {
            into.instances.push(Instance {
                namespace: w.namespace.clone(),
                labels: w.labels.clone(),
                address: w.address.clone(),
                ports: w.ports.clone(),
                service_account: Some(w.service_account.clone()).filter(|s| !s.is_empty()),
                group: w.group.clone(),
            });
        }
    }
}
