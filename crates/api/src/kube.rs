//! Rules for the Kubernetes objects users hand the local mesh or `kube-inject`: the parts
//! the API server would refuse and the mesh relies on (ports, selectors, TLS secrets).

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    Container, Endpoints, Namespace, Pod, PodSpec, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::path::FieldPath;
use crate::validate::{self, Validate, Validator};

impl Validate for Namespace {
    fn validate(&self, _at: &FieldPath, _v: &mut Validator<'_>) {
        // Names and labels are checked with every object's metadata; a Namespace has nothing more.
    }
}

impl Validate for ServiceAccount {
    fn validate(&self, _at: &FieldPath, _v: &mut Validator<'_>) {
        // Only metadata, checked with every object.
    }
}

impl Validate for Service {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        let spec = at.key("spec");
        let Some(s) = &self.spec else { return };
        let ports = s.ports.as_deref().unwrap_or_default();
        let external = s.type_.as_deref() == Some("ExternalName");
        if ports.is_empty() && !external && s.cluster_ip.as_deref() != Some("None") {
            v.error(spec.key("ports"), "a Service needs at least one port");
        }
        let mut names = HashSet::new();
        for (i, p) in ports.iter().enumerate() {
            let at = spec.key("ports").index(i);
            v.check(
                at.key("port"),
                validate::port(u32::try_from(p.port).unwrap_or(0)),
            );
            if let Some(target) = &p.target_port {
                check_target_port(&at.key("targetPort"), target, v);
            }
            if let Some(proto) = p
                .protocol
                .as_deref()
                .filter(|p| !matches!(*p, "TCP" | "UDP" | "SCTP"))
            {
                v.error(
                    at.key("protocol"),
                    format!("unsupported protocol {proto:?} (TCP, UDP or SCTP)"),
                );
            }
            match p.name.as_deref() {
                None | Some("") if ports.len() > 1 => v.error(
                    at.key("name"),
                    "every port must be named when a Service has more than one",
                ),
                Some(name) if !name.is_empty() && !names.insert(name) => {
                    v.error(at.key("name"), format!("duplicate port name {name:?}"))
                }
                _ => {}
            }
        }
        if let Some(selector) = &s.selector {
            validate::labels(&spec.key("selector"), selector, v);
        }
    }
}

fn check_target_port(at: &FieldPath, target: &IntOrString, v: &mut Validator<'_>) {
    match target {
        IntOrString::Int(n) => v.check(at.clone(), validate::port(u32::try_from(*n).unwrap_or(0))),
        IntOrString::String(name) => {
            if name.is_empty() || name.len() > 15 {
                v.error(
                    at.clone(),
                    format!("named target port {name:?} must have 1-15 characters"),
                );
            }
        }
    }
}

impl Validate for Endpoints {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        for (i, subset) in self.subsets.iter().flatten().enumerate() {
            let at = at.key("subsets").index(i);
            for (j, a) in subset.addresses.iter().flatten().enumerate() {
                v.check(
                    at.key("addresses").index(j).key("ip"),
                    validate::ip_or_cidr(&a.ip),
                );
            }
            for (j, p) in subset.ports.iter().flatten().enumerate() {
                v.check(
                    at.key("ports").index(j).key("port"),
                    validate::port(u32::try_from(p.port).unwrap_or(0)),
                );
            }
        }
    }
}

impl Validate for EndpointSlice {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        if !matches!(self.address_type.as_str(), "IPv4" | "IPv6" | "FQDN") {
            v.error(
                at.key("addressType"),
                format!(
                    "addressType {:?} must be IPv4, IPv6 or FQDN",
                    self.address_type
                ),
            );
        }
        for (i, e) in self.endpoints.iter().enumerate() {
            v.required(
                at.key("endpoints").index(i).key("addresses"),
                !e.addresses.is_empty(),
            );
        }
        for (i, p) in self.ports.iter().flatten().enumerate() {
            if let Some(port) = p.port {
                v.check(
                    at.key("ports").index(i).key("port"),
                    validate::port(u32::try_from(port).unwrap_or(0)),
                );
            }
        }
    }
}

impl Validate for Pod {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        match &self.spec {
            Some(spec) => validate_pod_spec(&at.key("spec"), spec, v),
            None => v.required(at.key("spec"), false),
        }
    }
}

impl Validate for Deployment {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        let spec_at = at.key("spec");
        let Some(spec) = &self.spec else {
            return v.required(spec_at, false);
        };
        let template_labels = spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        let selector = spec.selector.match_labels.clone().unwrap_or_default();
        if selector.is_empty()
            && spec
                .selector
                .match_expressions
                .as_ref()
                .is_none_or(Vec::is_empty)
        {
            v.error(spec_at.key("selector"), "a Deployment needs a selector");
        }
        if !selects(&selector, &template_labels) {
            v.error(
                spec_at.key("template").key("metadata").key("labels"),
                "the pod template's labels do not match spec.selector.matchLabels",
            );
        }
        match &spec.template.spec {
            Some(pod) => validate_pod_spec(&spec_at.key("template").key("spec"), pod, v),
            None => v.required(spec_at.key("template").key("spec"), false),
        }
    }
}

fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, val)| labels.get(k) == Some(val))
}

fn validate_pod_spec(at: &FieldPath, spec: &PodSpec, v: &mut Validator<'_>) {
    if spec.containers.is_empty() {
        v.error(at.key("containers"), "a pod needs at least one container");
    }
    let mut names = HashSet::new();
    for (i, c) in spec.containers.iter().enumerate() {
        validate_container(&at.key("containers").index(i), c, &mut names, v);
    }
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        validate_container(&at.key("initContainers").index(i), c, &mut names, v);
    }
}

fn validate_container<'c>(
    at: &FieldPath,
    c: &'c Container,
    names: &mut HashSet<&'c str>,
    v: &mut Validator<'_>,
) {
    if let Err(e) = validate::dns1123_label(&c.name) {
        v.error(at.key("name"), format!("invalid container name: {e}"));
    } else if !names.insert(&c.name) {
        v.error(
            at.key("name"),
            format!("duplicate container name {:?}", c.name),
        );
    }
    for (j, p) in c.ports.iter().flatten().enumerate() {
        let port = u32::try_from(p.container_port).unwrap_or(0);
        v.check(
            at.key("ports").index(j).key("containerPort"),
            validate::port(port),
        );
    }
}

/// A Secret's entries as the API server keeps them: `data`, with `stringData` written
/// over it (the API server merges the two on write; a file or the local store may not).
pub fn secret_data(secret: &Secret) -> BTreeMap<&str, &[u8]> {
    let mut out: BTreeMap<&str, &[u8]> = BTreeMap::new();
    for (k, v) in secret.data.iter().flatten() {
        out.insert(k.as_str(), v.0.as_slice());
    }
    for (k, v) in secret.string_data.iter().flatten() {
        out.insert(k.as_str(), v.as_bytes());
    }
    out
}

impl Validate for Secret {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        if self.type_.as_deref() != Some("kubernetes.io/tls") {
            return;
        }
        let has = |key: &str| {
            self.data.as_ref().is_some_and(|d| d.contains_key(key))
                || self
                    .string_data
                    .as_ref()
                    .is_some_and(|d| d.contains_key(key))
        };
        for key in ["tls.crt", "tls.key"] {
            if !has(key) {
                v.error(
                    at.key("data").key(key),
                    format!("a kubernetes.io/tls Secret needs {key}"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests;
