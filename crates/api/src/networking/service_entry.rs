//! `ServiceEntry`: adds a service to the mesh's registry — an external API, a database
//! outside the cluster, VMs — with its hosts, ports and how its endpoints are found, and
//! Istio's rules for it.

use std::collections::BTreeSet;

use serde::Deserialize;

use super::checks::{self, Exporter};
use super::gateway::{Protocol, check_protocol};
use super::workload_entry::{EntryUse, WorkloadEntry, WorkloadSelector};
use crate::path::FieldPath;
use crate::validate::{self, Validate, Validator};

/// `ServiceEntry.spec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceEntry {
    /// The names the service is called by (HTTP Host / TLS SNI); wildcards allowed.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Virtual IPs or CIDR blocks matched for TCP traffic.
    #[serde(default)]
    pub addresses: Vec<String>,
    #[serde(default)]
    pub ports: Vec<ServicePort>,
    pub location: Option<Location>,
    pub resolution: Option<Resolution>,
    #[serde(default)]
    pub endpoints: Vec<WorkloadEntry>,
    /// Selects pods and WorkloadEntries as the endpoints (instead of `endpoints`).
    pub workload_selector: Option<WorkloadSelector>,
    #[serde(default)]
    pub export_to: Vec<String>,
    #[serde(default)]
    pub subject_alt_names: Vec<String>,
}

/// `ports[]` of a ServiceEntry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServicePort {
    #[serde(default)]
    pub number: u32,
    /// Empty for protocol sniffing.
    #[serde(default)]
    pub protocol: String,
    #[serde(default)]
    pub name: String,
    /// The port the endpoints listen on, when it differs from `number`.
    pub target_port: Option<u32>,
}

impl ServicePort {
    /// The port's protocol, parsed.
    pub fn protocol(&self) -> Protocol {
        Protocol::parse(&self.protocol)
    }
}

/// `location`: whether the service is part of the mesh (mTLS, sidecars) or outside it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum Location {
    #[default]
    #[serde(rename = "MESH_EXTERNAL")]
    MeshExternal,
    #[serde(rename = "MESH_INTERNAL")]
    MeshInternal,
}

/// `resolution`: how the endpoints' addresses are found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum Resolution {
    /// Forward to the address the caller connected to.
    #[default]
    #[serde(rename = "NONE")]
    None,
    /// The IP addresses in `endpoints` (or the selected workloads).
    #[serde(rename = "STATIC")]
    Static,
    /// Resolve the hosts (or the endpoints' names) by DNS, using every address returned.
    #[serde(rename = "DNS")]
    Dns,
    /// Resolve by DNS, using one address at a time.
    #[serde(rename = "DNS_ROUND_ROBIN")]
    DnsRoundRobin,
}

impl Validate for ServiceEntry {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        let resolution = self.resolution.unwrap_or_default();
        if let Some(sel) = &self.workload_selector {
            sel.check(&at.key("workloadSelector"), "ServiceEntry", v);
            if !self.endpoints.is_empty() {
                v.error(
                    at.key("workloadSelector"),
                    "set only one of workloadSelector and endpoints",
                );
            }
        }
        self.validate_hosts(at, v);
        self.validate_addresses(at, resolution, v);
        let names = self.validate_ports(at, resolution, v);
        match resolution {
            Resolution::None => self.validate_none(at, v),
            Resolution::Static => self.validate_static(at, &names, v),
            Resolution::Dns | Resolution::DnsRoundRobin => {
                self.validate_dns(at, resolution, &names, v)
            }
        }
        if resolution != Resolution::None
            && self.hosts.len() > 1
            && let Some(i) = self
                .ports
                .iter()
                .position(|p| !p.protocol().is_http() && !p.protocol().is_tls())
        {
            v.error(
                at.key("ports").index(i).key("protocol"),
                "several hosts with a port that is neither HTTP nor TLS: plain TCP cannot tell the hosts apart (use one host per ServiceEntry, or resolution NONE)",
            );
        }
        checks::export_to(
            &at.key("exportTo"),
            &self.export_to,
            Exporter::ServiceEntry,
            v,
        );
    }
}

impl ServiceEntry {
    fn validate_hosts(&self, at: &FieldPath, v: &mut Validator<'_>) {
        if self.hosts.is_empty() {
            v.error(
                at.key("hosts"),
                "a ServiceEntry needs at least one host (e.g. api.example.com)",
            );
        }
        for (i, h) in self.hosts.iter().enumerate() {
            let p = at.key("hosts").index(i);
            if h == "*" {
                v.error(
                    p,
                    "host \"*\" is not allowed in a ServiceEntry (it would capture every host)",
                );
                continue;
            }
            v.check(p.clone(), validate::wildcard_host(h));
            if let Err(e) = validate::partial_wildcard(h) {
                v.warn(p, e);
            }
        }
    }

    fn validate_addresses(&self, at: &FieldPath, resolution: Resolution, v: &mut Validator<'_>) {
        for (i, a) in self.addresses.iter().enumerate() {
            let p = at.key("addresses").index(i);
            v.check(p.clone(), validate::ip_or_cidr(a));
            if a.contains('/') && !matches!(resolution, Resolution::None | Resolution::Static) {
                v.error(
                    p,
                    format!("CIDR address {a:?} is only allowed with resolution NONE or STATIC"),
                );
            }
        }
    }

    /// Returns the port names, which endpoints refer to.
    fn validate_ports<'a>(
        &'a self,
        at: &FieldPath,
        resolution: Resolution,
        v: &mut Validator<'_>,
    ) -> BTreeSet<&'a str> {
        let mut names = BTreeSet::new();
        let mut numbers = BTreeSet::new();
        for (i, p) in self.ports.iter().enumerate() {
            let pat = at.key("ports").index(i);
            if !names.insert(p.name.as_str()) {
                v.error(pat.key("name"), format!("duplicate port name {:?}", p.name));
            }
            if !numbers.insert(p.number) {
                v.error(
                    pat.key("number"),
                    format!("duplicate port number {}", p.number),
                );
            }
            if let Some(t) = p.target_port.filter(|t| *t != 0) {
                checks::port(pat.key("targetPort"), t, v);
                if resolution == Resolution::None {
                    v.warn(
                        pat.key("targetPort"),
                        "targetPort has no effect with resolution NONE (traffic goes to the port the caller used)",
                    );
                }
            }
            if self.addresses.is_empty() && (p.protocol.is_empty() || p.protocol == "TCP") {
                v.warn(
                    pat.key("protocol"),
                    "a TCP (or unset) protocol port with no addresses: without a VIP the port can only be matched by number unless the proxy allocates addresses (ISTIO_META_DNS_AUTO_ALLOCATE)",
                );
            }
            v.check(pat.key("name"), checks::port_name(&p.name));
            v.check(pat.key("protocol"), check_protocol(&p.protocol, true));
            checks::port(pat.key("number"), p.number, v);
        }
        names
    }

    fn validate_none(&self, at: &FieldPath, v: &mut Validator<'_>) {
        if !self.endpoints.is_empty() {
            v.error(
                at.key("endpoints"),
                "resolution NONE takes no endpoints (traffic goes to the address the caller used); use STATIC or DNS",
            );
        }
        if self.workload_selector.is_some() {
            v.warn(
                at.key("workloadSelector"),
                "workloadSelector has no effect with resolution NONE",
            );
        }
    }

    fn validate_static(&self, at: &FieldPath, names: &BTreeSet<&str>, v: &mut Validator<'_>) {
        for (i, e) in self.endpoints.iter().enumerate() {
            e.check(
                &at.key("endpoints").index(i),
                EntryUse::Static,
                Some(names),
                v,
            );
        }
        if self.endpoints.is_empty() && self.workload_selector.is_none() {
            v.warn(
                at.key("resolution"),
                "resolution STATIC with neither endpoints nor a workloadSelector: the service has no endpoints",
            );
        }
    }

    fn validate_dns(
        &self,
        at: &FieldPath,
        resolution: Resolution,
        names: &BTreeSet<&str>,
        v: &mut Validator<'_>,
    ) {
        let mode = match resolution {
            Resolution::Dns => "DNS",
            _ => "DNS_ROUND_ROBIN",
        };
        if self.endpoints.is_empty() {
            for (i, h) in self.hosts.iter().enumerate() {
                if h != "*" && validate::fqdn_host(h).is_err() && validate::wildcard_host(h).is_ok()
                {
                    v.error(
                        at.key("hosts").index(i),
                        format!("host {h:?} cannot be resolved: with resolution {mode} and no endpoints, hosts must be DNS names without wildcards"),
                    );
                }
            }
        }
        if resolution == Resolution::DnsRoundRobin && self.endpoints.len() > 1 {
            v.error(
                at.key("endpoints"),
                "resolution DNS_ROUND_ROBIN takes at most one endpoint",
            );
        }
        for (i, e) in self.endpoints.iter().enumerate() {
            e.check(&at.key("endpoints").index(i), EntryUse::Dns, Some(names), v);
        }
        if self.workload_selector.is_some() {
            v.warn(
                at.key("workloadSelector"),
                format!("workloadSelector has no effect with resolution {mode}"),
            );
        }
        let tcp = self.ports.iter().any(|p| p.protocol().is_tcp());
        if !self.addresses.is_empty() && tcp && self.hosts.len() > 1 {
            v.warn(
                at.key("hosts"),
                "several hosts with addresses and a TCP port: TCP traffic to the addresses cannot be told apart by host",
            );
        }
    }
}

#[cfg(test)]
mod tests;
