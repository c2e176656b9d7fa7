//! The names a sidecar's DNS proxy answers, built with its tables from the services it
//! knows, the way Istio's agent builds its lookup table from the control plane's name
//! table: a service's host; for a Kubernetes Service also `name.ns`, `name.ns.svc` and,
//! from its own namespace, the bare `name`; each of those with the pod's first search
//! domain (`<ns>.svc.cluster.local`) appended, as a CNAME to it, so the first query of a
//! resolver walking its search path is answered here. Nothing else is made up: a name
//! the search path expands to another namespace (`reviews.svc.cluster.local`) is not in
//! the table and goes upstream, as in Kubernetes.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use crate::registry::{Registry, Service};

/// Kubernetes' cluster domain, which Istio's alternative names are made under.
const SVC_DOMAIN: &str = "svc.cluster.local";

/// A name's addresses.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Addresses {
    pub v4: Vec<Ipv4Addr>,
    pub v6: Vec<Ipv6Addr>,
}

#[derive(Debug)]
enum Entry {
    Addresses(Arc<Addresses>),
    /// An alias of another name of the table.
    Cname(String),
}

/// What a name resolves to: its addresses and, for a search-path expansion, the name it
/// is an alias of (both lower-case, absolute: ending in `.`).
#[derive(Debug, PartialEq, Eq)]
pub struct Found {
    pub cname: Option<String>,
    pub addresses: Arc<Addresses>,
}

/// Lower-case absolute names (`reviews.default.svc.cluster.local.`, `*.example.com.`).
#[derive(Debug, Default)]
pub struct NameTable {
    names: HashMap<String, Entry>,
}

impl NameTable {
    /// The names of the services visible from `namespace` that have addresses: their
    /// single-address VIPs, or a headless Service's endpoints. A name two services would
    /// give is the first's: a host over another's alternative name, then by host order.
    pub fn build(registry: &Registry, namespace: &str) -> NameTable {
        let search = format!("{namespace}.{SVC_DOMAIN}.");
        let mut table = NameTable::default();
        let mut aliases: Vec<(String, Arc<Addresses>)> = Vec::new();
        for service in registry.services.values() {
            if !visible(service, namespace) {
                continue;
            }
            let Some(addresses) = addresses_of(service) else {
                continue;
            };
            let host = absolute(&service.host);
            for alt in alternative_names(service, namespace) {
                aliases.push((alt, addresses.clone()));
            }
            table.insert(host, Entry::Addresses(addresses));
        }
        for (alt, addresses) in aliases {
            table.insert(alt, Entry::Addresses(addresses));
        }
        // Search-path expansions: only of names the table has, and only with the first
        // search domain (Istio's choice: resolvers try it first).
        let expansions: Vec<(String, String)> = table
            .names
            .keys()
            .filter(|n| !n.starts_with("*."))
            .map(|n| (format!("{n}{search}"), n.clone()))
            .collect();
        for (expanded, name) in expansions {
            table.insert(expanded, Entry::Cname(name));
        }
        table
    }

    fn insert(&mut self, name: String, entry: Entry) {
        self.names.entry(name).or_insert(entry);
    }

    /// The addresses of `name` (lower-case, absolute): itself, its alias's, or those of
    /// the most specific wildcard host covering it (`*.example.com.`).
    pub fn lookup(&self, name: &str) -> Option<Found> {
        let entry = self.names.get(name).or_else(|| self.wildcard(name))?;
        match entry {
            Entry::Addresses(a) => Some(Found {
                cname: None,
                addresses: a.clone(),
            }),
            Entry::Cname(target) => match self.names.get(target) {
                Some(Entry::Addresses(a)) => Some(Found {
                    cname: Some(target.clone()),
                    addresses: a.clone(),
                }),
                _ => None,
            },
        }
    }

    fn wildcard(&self, name: &str) -> Option<&Entry> {
        let mut rest = name;
        while let Some((_, parent)) = rest.split_once('.') {
            if parent.is_empty() {
                return None;
            }
            if let Some(e) = self.names.get(&format!("*.{parent}")) {
                return Some(e);
            }
            rest = parent;
        }
        None
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// `exportTo` as Istio reads it: nothing or `*` is everywhere, `.` the service's own
/// namespace, `~` nowhere, else the namespaces named.
fn visible(service: &Service, namespace: &str) -> bool {
    service.export_to.is_empty()
        || service
            .export_to
            .iter()
            .any(|e| e == "*" || e == namespace || (e == "." && service.namespace == namespace))
}

/// A service's single addresses (not CIDR ranges); with none, a headless Service's
/// endpoint addresses, as Istio serves them; `None` when it has neither.
fn addresses_of(service: &Service) -> Option<Arc<Addresses>> {
    let mut out = Addresses::default();
    let mut add = |ip: IpAddr| match ip {
        IpAddr::V4(v4) if !out.v4.contains(&v4) => out.v4.push(v4),
        IpAddr::V6(v6) if !out.v6.contains(&v6) => out.v6.push(v6),
        _ => {}
    };
    for net in &service.addresses {
        if net.prefix_len() == net.max_prefix_len() {
            add(net.addr());
        }
    }
    if service.addresses.is_empty() && service.origin.kind == "Service" {
        for e in &service.endpoints {
            if let Ok(ip) = e.address.parse() {
                add(ip);
            }
        }
    }
    (!out.v4.is_empty() || !out.v6.is_empty()).then(|| Arc::new(out))
}

/// Istio's alternative names of a Kubernetes Service (not of a ServiceEntry, whose hosts
/// are answered as written): `name.ns.`, `name.ns.svc.`, and `name.` from its namespace.
fn alternative_names(service: &Service, namespace: &str) -> Vec<String> {
    if service.origin.kind != "Service" {
        return Vec::new();
    }
    let Some(short) = service
        .host
        .strip_suffix(SVC_DOMAIN)
        .and_then(|h| h.strip_suffix('.'))
    else {
        return Vec::new();
    };
    let Some((name, ns)) = short.split_once('.') else {
        return Vec::new();
    };
    let mut out = vec![format!("{name}.{ns}."), format!("{name}.{ns}.svc.")];
    if ns == namespace {
        out.push(format!("{name}."));
    }
    out
}

/// `host` lower-case and absolute (`reviews.default.svc.cluster.local.`).
fn absolute(host: &str) -> String {
    let mut out = host.to_ascii_lowercase();
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}
