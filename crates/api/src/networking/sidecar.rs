//! `Sidecar`: narrows what a workload's proxy listens on and which services it knows
//! (`egress.hosts` as `namespace/dnsName`), with its outbound traffic policy and inbound
//! connection limits, and Istio's rules for it.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::checks::{self, UNIX_PREFIX};
use super::destination_rule::ConnectionPoolSettings;
use super::gateway::{Port, ServerTlsMode, ServerTlsSettings, check_protocol};
use super::workload_entry::WorkloadSelector;
use crate::common::PortSelector;
use crate::path::FieldPath;
use crate::validate::{self, Validate, Validator};

/// `Sidecar.spec`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Sidecar {
    /// The workloads this Sidecar applies to; without it, every workload of the namespace.
    pub workload_selector: Option<WorkloadSelector>,
    #[serde(default)]
    pub ingress: Vec<IngressListener>,
    #[serde(default)]
    pub egress: Vec<EgressListener>,
    pub inbound_connection_pool: Option<ConnectionPoolSettings>,
    pub outbound_traffic_policy: Option<OutboundTrafficPolicy>,
}

/// `ingress[]`: a listener for traffic to the workload.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IngressListener {
    pub port: Option<Port>,
    pub bind: Option<String>,
    pub capture_mode: Option<CaptureMode>,
    /// Where the proxy forwards: `127.0.0.1:PORT`, `0.0.0.0:PORT`, `[::1]:PORT` or `unix://path`.
    pub default_endpoint: Option<String>,
    pub tls: Option<ServerTlsSettings>,
    pub connection_pool: Option<ConnectionPoolSettings>,
}

/// `egress[]`: a listener for traffic from the workload, and the services it may reach.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EgressListener {
    /// Absent for the catch-all listener, which must come last.
    pub port: Option<Port>,
    pub bind: Option<String>,
    pub capture_mode: Option<CaptureMode>,
    /// `namespace/dnsName`: `./reviews.default.svc.cluster.local`, `istio-system/*`, `*/*`.
    #[serde(default)]
    pub hosts: Vec<String>,
}

/// `captureMode`: how traffic reaches the listener.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum CaptureMode {
    /// As the environment decides (iptables redirection for sidecars).
    #[default]
    #[serde(rename = "DEFAULT")]
    Default,
    #[serde(rename = "IPTABLES")]
    Iptables,
    /// The application talks to the listener directly.
    #[serde(rename = "NONE")]
    None,
}

/// `outboundTrafficPolicy`: what happens to traffic for services outside the registry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutboundTrafficPolicy {
    pub mode: Option<OutboundMode>,
    /// Where ALLOW_ANY traffic is sent instead of its original destination.
    pub egress_proxy: Option<EgressProxy>,
}

/// `outboundTrafficPolicy.mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum OutboundMode {
    /// Only services in the registry are reachable.
    #[default]
    #[serde(rename = "REGISTRY_ONLY")]
    RegistryOnly,
    /// Unknown destinations are passed through.
    #[serde(rename = "ALLOW_ANY")]
    AllowAny,
}

/// `egressProxy`: a destination (host, subset, port) for unknown outbound traffic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EgressProxy {
    #[serde(default)]
    pub host: String,
    pub subset: Option<String>,
    pub port: Option<PortSelector>,
}

impl Validate for Sidecar {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        if let Some(sel) = &self.workload_selector {
            sel.check(&at.key("workloadSelector"), "Sidecar", v);
        }
        if self.egress.is_empty()
            && self.ingress.is_empty()
            && self.outbound_traffic_policy.is_none()
            && self.inbound_connection_pool.is_none()
        {
            v.error(
                at.clone(),
                "the Sidecar is empty: set egress, ingress, outboundTrafficPolicy or inboundConnectionPool",
            );
            return;
        }
        let mut ports = BTreeSet::new();
        for (i, l) in self.ingress.iter().enumerate() {
            let lat = at.key("ingress").index(i);
            l.validate(&lat, v);
            if let Some(p) = &l.port
                && !ports.insert(p.number)
            {
                v.error(
                    lat.key("port").key("number"),
                    format!("duplicate ingress port {}", p.number),
                );
            }
        }
        if let Some(pool) = &self.inbound_connection_pool {
            pool.validate(&at.key("inboundConnectionPool"), v);
        }
        self.validate_egress(at, v);
        if let Some(p) = &self.outbound_traffic_policy {
            p.validate(&at.key("outboundTrafficPolicy"), v);
        }
    }
}

impl Sidecar {
    fn validate_egress(&self, at: &FieldPath, v: &mut Validator<'_>) {
        let mut ports = BTreeSet::new();
        let mut sockets = BTreeSet::new();
        let mut catch_all = false;
        let last = self.egress.len().saturating_sub(1);
        for (i, l) in self.egress.iter().enumerate() {
            let lat = at.key("egress").index(i);
            match &l.port {
                None if catch_all => {
                    v.error(
                        lat.clone(),
                        "only one egress listener may omit the port (the catch-all)",
                    );
                    continue;
                }
                None if i == last => catch_all = true,
                None => v.error(
                    lat.clone(),
                    "the egress listener without a port (the catch-all) must be the last one",
                ),
                Some(p) => {
                    validate_egress_port(&lat, l, p, v);
                    let bind = l.bind.clone().unwrap_or_default();
                    let fresh = if p.number == 0 {
                        sockets.insert(bind)
                    } else {
                        ports.insert(p.number)
                    };
                    if !fresh {
                        v.error(
                            lat.key("port"),
                            "duplicate egress listener: ports (and unix sockets) must be unique",
                        );
                    }
                }
            }
            validate_egress_hosts(&lat.key("hosts"), &l.hosts, v);
        }
    }
}

fn validate_sidecar_port(at: &FieldPath, p: &Port, v: &mut Validator<'_>) {
    if p.target_port.is_some_and(|t| t > 0) {
        v.error(
            at.key("targetPort"),
            "targetPort has no effect on a Sidecar: remove it",
        );
    }
    if !p.name.is_empty() {
        v.check(at.key("name"), checks::port_name(&p.name));
    }
    v.check(at.key("protocol"), check_protocol(&p.protocol, true));
}

fn validate_egress_port(at: &FieldPath, l: &EgressListener, p: &Port, v: &mut Validator<'_>) {
    let pat = at.key("port");
    validate_sidecar_port(&pat, p, v);
    let bind = l.bind.as_deref().unwrap_or("");
    if p.number == 0 {
        match bind.strip_prefix(UNIX_PREFIX) {
            Some(path) => v.check(at.key("bind"), checks::unix_address(path)),
            None => v.error(
                pat.key("number"),
                "port 0 is only for unix domain socket listeners (bind: unix:///path)",
            ),
        }
        if !matches!(
            l.capture_mode.unwrap_or_default(),
            CaptureMode::Default | CaptureMode::None
        ) {
            v.error(
                at.key("captureMode"),
                "captureMode must be DEFAULT or NONE for a unix domain socket listener",
            );
        }
    } else {
        checks::port(pat.key("number"), p.number, v);
        if !bind.is_empty() {
            v.check(at.key("bind"), validate::ip_address(bind));
        }
    }
}

/// Each host is `namespace/dnsName`; repeats and hosts already covered by `ns/*` or `*/*`
/// are accepted by Istio with a warning.
fn validate_egress_hosts(at: &FieldPath, hosts: &[String], v: &mut Validator<'_>) {
    if hosts.is_empty() {
        v.error(
            at.clone(),
            "an egress listener needs at least one host (e.g. \"./*\", \"istio-system/*\")",
        );
        return;
    }
    let mut by_ns: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    for (i, h) in hosts.iter().enumerate() {
        if let Some((ns, name)) = h.split_once('/') {
            let ns = if ns == "." {
                v.namespace.to_string()
            } else {
                ns.to_string()
            };
            let names = by_ns.entry(ns).or_default();
            let covered = if name == "*" {
                !names.is_empty()
            } else {
                names.contains(name) || names.contains("*")
            };
            if covered {
                v.warn(
                    at.index(i),
                    format!("duplicate egress host {h:?}: an earlier entry already covers it"),
                );
            }
            names.insert(name);
        }
        for e in checks::namespace_slash_host(h, false) {
            v.error(at.index(i), e);
        }
    }
    if by_ns.get("*").is_some_and(|n| n.contains("*")) && by_ns.len() != 1 {
        v.warn(
            at.clone(),
            "\"*/*\" already selects every host: the other entries have no effect",
        );
    }
}

impl Validate for IngressListener {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        let Some(p) = &self.port else {
            v.error(at.key("port"), "port is required for an ingress listener");
            return;
        };
        validate_sidecar_port(&at.key("port"), p, v);
        checks::port(at.key("port").key("number"), p.number, v);
        if let Some(bind) = self.bind.as_deref().filter(|b| !b.is_empty()) {
            v.check(at.key("bind"), validate::ip_address(bind));
        }
        if let Some(e) = self.default_endpoint.as_deref().filter(|e| !e.is_empty()) {
            for err in default_endpoint(e) {
                v.error(at.key("defaultEndpoint"), err);
            }
        }
        if let Some(t) = &self.tls {
            validate_ingress_tls(&at.key("tls"), t, v);
        }
        if let Some(pool) = &self.connection_pool {
            pool.validate(&at.key("connectionPool"), v);
            if pool.http.is_some() && !p.protocol().is_http() {
                v.warn(
                    at.key("connectionPool").key("http"),
                    format!(
                        "HTTP connection pool settings on port {} ({:?}) whose protocol {:?} is not HTTP: only the tcp settings apply",
                        p.number, p.name, p.protocol
                    ),
                );
            }
        }
    }
}

fn validate_ingress_tls(at: &FieldPath, t: &ServerTlsSettings, v: &mut Validator<'_>) {
    if !t.subject_alt_names.is_empty() {
        v.error(
            at.key("subjectAltNames"),
            "subjectAltNames is not supported in Sidecar ingress tls",
        );
    }
    if t.https_redirect == Some(true) {
        v.error(
            at.key("httpsRedirect"),
            "httpsRedirect is not supported in a Sidecar",
        );
    }
    if checks::set(&t.credential_name) {
        v.error(at.key("credentialName"), "credentialName is not supported in a Sidecar: use serverCertificate and privateKey files");
    }
    if let Some(m @ (ServerTlsMode::IstioMutual | ServerTlsMode::AutoPassthrough)) = t.mode {
        let name = if m == ServerTlsMode::IstioMutual {
            "ISTIO_MUTUAL"
        } else {
            "AUTO_PASSTHROUGH"
        };
        v.error(
            at.key("mode"),
            format!("mode {name} cannot be used in Sidecar ingress tls"),
        );
    }
    t.validate(at, v);
}

/// `127.0.0.1:PORT`, `0.0.0.0:PORT`, `[::1]:PORT`, `[::]:PORT`, `:PORT` or `unix://path`.
fn default_endpoint(e: &str) -> Vec<String> {
    if let Some(path) = e.strip_prefix(UNIX_PREFIX) {
        return checks::unix_address(path).err().into_iter().collect();
    }
    let form = "defaultEndpoint must be 127.0.0.1:<port>, 0.0.0.0:<port>, [::1]:<port>, [::]:<port> or unix://<path>";
    let split = match e.strip_prefix('[') {
        Some(rest) => rest.split_once("]:"),
        None => e.rsplit_once(':').filter(|(h, _)| !h.contains(':')),
    };
    let Some((host, port)) = split else {
        return vec![format!("invalid defaultEndpoint {e:?}: {form}")];
    };
    let mut errs = Vec::new();
    if !matches!(host, "" | "127.0.0.1" | "0.0.0.0" | "::1" | "::") {
        errs.push(format!("invalid defaultEndpoint {e:?}: {form}"));
    }
    match port.parse::<u32>() {
        Ok(n) => errs.extend(crate::validate::port(n).err()),
        Err(_) => errs.push(format!("defaultEndpoint port {port:?} is not a number")),
    }
    errs
}

impl Validate for OutboundTrafficPolicy {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        let Some(proxy) = &self.egress_proxy else {
            return;
        };
        let at = at.key("egressProxy");
        if self.mode.unwrap_or_default() != OutboundMode::AllowAny {
            v.error(at, "egressProxy can only be set with mode ALLOW_ANY");
            return;
        }
        if proxy.host.is_empty() || proxy.host == "*" {
            v.error(
                at.key("host"),
                "egressProxy.host must name a service (e.g. egress.istio-system.svc.cluster.local)",
            );
        } else {
            v.check(at.key("host"), validate::fqdn_host(&proxy.host));
        }
        if let Some(s) = proxy.subset.as_deref().filter(|s| !s.is_empty())
            && !validate::is_dns_label(s)
        {
            v.error(at.key("subset"), format!("invalid subset name {s:?}"));
        }
        match &proxy.port {
            Some(p) => p.validate(&at.key("port"), v),
            None => v.error(
                at.key("port"),
                "egressProxy.port is required (e.g. port: {number: 3128})",
            ),
        }
    }
}

#[cfg(test)]
mod tests;
