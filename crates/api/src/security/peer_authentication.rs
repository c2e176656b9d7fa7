//! `PeerAuthentication` (security.istio.io v1 and v1beta1): which mutual TLS mode a
//! workload's inbound side accepts, for the whole workload and per port.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::common::{PolicyScope, WorkloadSelector};
use crate::path::FieldPath;
use crate::validate::{self, Validate, Validator};

/// The spec of a PeerAuthentication.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PeerAuthentication {
    /// Workloads the policy applies to; all of the namespace (or of the mesh, in the root
    /// namespace) when absent.
    pub selector: Option<WorkloadSelector>,
    /// The mode for every port of the selected workloads.
    pub mtls: Option<MutualTls>,
    /// Per-port overrides, keyed by the workload's (container) port. `None` when absent, so
    /// that an empty map can be told apart.
    pub port_level_mtls: Option<BTreeMap<u32, MutualTls>>,
}

/// `mtls: {mode: ...}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MutualTls {
    /// The mode (default: UNSET, inherit).
    #[serde(default)]
    pub mode: MtlsMode,
}

/// Istio's `PeerAuthentication.MutualTLS.Mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum MtlsMode {
    /// Inherit from the namespace or mesh policy; PERMISSIVE when there is none.
    #[default]
    #[serde(rename = "UNSET")]
    Unset,
    /// Plaintext only.
    #[serde(rename = "DISABLE")]
    Disable,
    /// mTLS or plaintext.
    #[serde(rename = "PERMISSIVE")]
    Permissive,
    /// mTLS only.
    #[serde(rename = "STRICT")]
    Strict,
}

impl Validate for PeerAuthentication {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        PolicyScope {
            selector: self.selector.as_ref(),
            target_ref: None,
            target_refs: &[],
        }
        .validate(at, v);
        let Some(ports) = &self.port_level_mtls else {
            return;
        };
        let at_ports = at.key("portLevelMtls");
        let has_labels = self
            .selector
            .as_ref()
            .is_some_and(|s| !s.match_labels.is_empty());
        if !has_labels {
            v.error(
                at_ports.clone(),
                "portLevelMtls requires a selector with matchLabels: port numbers only mean something for a known set of workloads (move the ports to a workload policy)",
            );
        }
        if ports.is_empty() {
            v.error(
                at_ports.clone(),
                "portLevelMtls, when given, needs at least one port (remove it or add a port)",
            );
        }
        for port in ports.keys() {
            v.check(at_ports.key(&port.to_string()), validate::port(*port));
        }
    }
}

#[cfg(test)]
mod tests;
