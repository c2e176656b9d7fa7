//! `WorkloadEntry` (a workload outside Kubernetes — a VM or bare-metal host — as a mesh
//! endpoint), `WorkloadGroup` (the template VMs register from, with a readiness probe) and
//! the networking kinds' `workloadSelector`, with Istio's rules for them.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::checks::{self, UNIX_PREFIX};
use crate::path::FieldPath;
use crate::validate::{self, Validate, Validator};

/// `workloadSelector: {labels: ...}` of ServiceEntry, Sidecar and EnvoyFilter (unlike
/// the security kinds' `selector: {matchLabels: ...}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadSelector {
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl WorkloadSelector {
    /// Istio's rules, with `what` naming the kind in the empty-selector warning.
    pub(crate) fn check(&self, at: &FieldPath, what: &str, v: &mut Validator<'_>) {
        checks::labels_selector(at, &self.labels, what, v);
    }
}

/// `WorkloadEntry.spec` (also a ServiceEntry endpoint and a WorkloadGroup template).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadEntry {
    /// An IP address, a DNS name (DNS-resolved ServiceEntries) or `unix://` socket.
    pub address: Option<String>,
    /// Service port name to the port the workload listens on.
    #[serde(default)]
    pub ports: BTreeMap<String, u32>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The L3 network the workload sits in, for multi-network meshes.
    pub network: Option<String>,
    /// `region/zone/subzone`.
    pub locality: Option<String>,
    /// Load-balancing weight relative to the other endpoints.
    pub weight: Option<u32>,
    pub service_account: Option<String>,
}

/// Where a workload entry is written, which decides what its address may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryUse {
    /// A WorkloadEntry object: IP, DNS name or socket.
    Object,
    /// A STATIC ServiceEntry endpoint: IP or socket.
    Static,
    /// A DNS or DNS_ROUND_ROBIN ServiceEntry endpoint: IP or DNS name.
    Dns,
    /// A WorkloadGroup template: the address is filled in when a VM registers.
    Template,
}

impl WorkloadEntry {
    /// The rules for an entry used as `usage`; `service_ports` are the port names of the
    /// enclosing ServiceEntry, when there is one.
    pub(crate) fn check(
        &self,
        at: &FieldPath,
        usage: EntryUse,
        service_ports: Option<&BTreeSet<&str>>,
        v: &mut Validator<'_>,
    ) {
        let unix = self.check_address(at, usage, v);
        for (name, port) in &self.ports {
            let p = at.key("ports").key(name);
            if service_ports.is_some_and(|s| !s.contains(name.as_str())) {
                v.error(
                    p.clone(),
                    format!("endpoint port {name:?} is not one of the ServiceEntry's port names"),
                );
            }
            v.check(p.clone(), checks::port_name(name));
            checks::port(p, *port, v);
        }
        validate::labels(&at.key("labels"), &self.labels, v);
        if unix && service_ports.is_some_and(|s| s.len() != 1) {
            v.error(
                at.key("address"),
                "a unix:// endpoint needs a ServiceEntry with exactly one port",
            );
        }
        if self.service_account.as_ref().is_some_and(|s| s.len() > 253) {
            v.error(
                at.key("serviceAccount"),
                "serviceAccount is longer than 253 characters",
            );
        }
    }

    /// Returns whether the address is a unix socket.
    fn check_address(&self, at: &FieldPath, usage: EntryUse, v: &mut Validator<'_>) -> bool {
        let addr = self.address.as_deref().unwrap_or("");
        let at = at.key("address");
        if addr.len() > 256 {
            v.error(at.clone(), "address is longer than 256 characters");
        }
        if addr.is_empty() {
            if usage == EntryUse::Template {
                return false;
            }
            match self.network.as_deref().filter(|n| !n.is_empty()) {
                None => v.error(
                    at,
                    "address is required (an IP address, a DNS name or a unix:// socket)",
                ),
                Some(n) => v.warn(
                    at,
                    format!("address is unset: the workload is reached through the gateway of network {n:?}"),
                ),
            }
            return false;
        }
        if let Some(path) = addr.strip_prefix(UNIX_PREFIX) {
            if usage == EntryUse::Dns {
                v.error(
                    at,
                    format!("endpoint address {addr:?} must be an IP address or a DNS name"),
                );
                return false;
            }
            v.check(at.clone(), checks::unix_address(path));
            if !self.ports.is_empty() {
                v.error(at, "a unix:// endpoint cannot have ports");
            }
            return true;
        }
        if validate::ip_address(addr).is_ok() {
            return false;
        }
        match usage {
            EntryUse::Static => v.error(
                at,
                format!("endpoint address {addr:?} is not a valid IP address (resolution STATIC needs IPs; use DNS for host names)"),
            ),
            _ => {
                if validate::fqdn_host(addr).is_err() {
                    v.error(
                        at,
                        format!("endpoint address {addr:?} is not a valid DNS name or IP address"),
                    );
                }
            }
        }
        false
    }
}

impl Validate for WorkloadEntry {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        self.check(at, EntryUse::Object, None, v);
    }
}

/// `WorkloadGroup.spec`: what the WorkloadEntries of auto-registering VMs look like.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadGroup {
    pub metadata: Option<WorkloadGroupMetadata>,
    pub template: Option<WorkloadEntry>,
    pub probe: Option<ReadinessProbe>,
}

/// `metadata`: labels and annotations given to every WorkloadEntry of the group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadGroupMetadata {
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// `probe`: how the VM's proxy checks that the workload is ready.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReadinessProbe {
    pub initial_delay_seconds: Option<i32>,
    pub timeout_seconds: Option<i32>,
    pub period_seconds: Option<i32>,
    pub success_threshold: Option<i32>,
    pub failure_threshold: Option<i32>,
    pub http_get: Option<HttpHealthCheck>,
    pub tcp_socket: Option<TcpHealthCheck>,
    pub exec: Option<ExecHealthCheck>,
}

/// `httpGet`: ready when a GET answers 2xx or 3xx.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpHealthCheck {
    pub path: Option<String>,
    #[serde(default)]
    pub port: u32,
    pub host: Option<String>,
    /// `HTTP` (the default) or `HTTPS`.
    pub scheme: Option<String>,
    #[serde(default)]
    pub http_headers: Vec<HealthCheckHeader>,
}

/// `httpHeaders[]`: a header sent with the probe.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheckHeader {
    #[serde(default)]
    pub name: String,
    pub value: Option<String>,
}

/// `tcpSocket`: ready when a connection opens.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpHealthCheck {
    pub host: Option<String>,
    #[serde(default)]
    pub port: u32,
}

/// `exec`: ready when the command exits 0.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecHealthCheck {
    #[serde(default)]
    pub command: Vec<String>,
}

impl Validate for WorkloadGroup {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        match &self.template {
            // The address and network are filled in when a VM registers, so they are not
            // required here (unlike in a WorkloadEntry).
            Some(t) => t.check(&at.key("template"), EntryUse::Template, None, v),
            None => v.error(
                at.key("template"),
                "template is required (at least the serviceAccount the VMs run as, e.g. template: {serviceAccount: my-sa})",
            ),
        }
        if let Some(m) = &self.metadata {
            validate::labels(&at.key("metadata").key("labels"), &m.labels, v);
        }
        if let Some(p) = &self.probe {
            p.validate(&at.key("probe"), v);
        }
    }
}

impl Validate for ReadinessProbe {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        for (field, value) in [
            ("initialDelaySeconds", self.initial_delay_seconds),
            ("timeoutSeconds", self.timeout_seconds),
            ("periodSeconds", self.period_seconds),
            ("successThreshold", self.success_threshold),
            ("failureThreshold", self.failure_threshold),
        ] {
            if let Some(n) = value.filter(|n| *n < 0) {
                v.error(at.key(field), format!("{field} {n} must not be negative"));
            }
        }
        let methods = [
            self.http_get.is_some(),
            self.tcp_socket.is_some(),
            self.exec.is_some(),
        ];
        match methods.iter().filter(|m| **m).count() {
            0 => v.error(
                at.clone(),
                "the probe needs one of httpGet, tcpSocket or exec",
            ),
            1 => {}
            _ => v.error(at.clone(), "set only one of httpGet, tcpSocket and exec"),
        }
        if let Some(h) = &self.http_get {
            validate_http_probe(&at.key("httpGet"), h, v);
        }
        if let Some(t) = &self.tcp_socket {
            checks::port(at.key("tcpSocket").key("port"), t.port, v);
        }
        if self.exec.as_ref().is_some_and(|e| e.command.is_empty()) {
            v.error(
                at.key("exec").key("command"),
                "exec.command is required (the command and its arguments)",
            );
        }
    }
}

fn validate_http_probe(at: &FieldPath, h: &HttpHealthCheck, v: &mut Validator<'_>) {
    checks::port(at.key("port"), h.port, v);
    if let Some(s) = h.scheme.as_deref()
        && !matches!(s, "" | "HTTP" | "HTTPS")
    {
        v.error(
            at.key("scheme"),
            format!("invalid scheme {s:?}: use HTTP or HTTPS"),
        );
    }
    for (i, hdr) in h.http_headers.iter().enumerate() {
        if !validate::is_header_name(&hdr.name) {
            v.error(
                at.key("httpHeaders").index(i).key("name"),
                format!(
                    "invalid header name {:?}: letters, digits, '-' and '_'",
                    hdr.name
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests;
