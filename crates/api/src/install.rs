//! `install.istio.io` IstioOperator: the installation config `istioctl install -f` reads.
//! Weft reads its mesh-wide settings (`meshConfig`) and checks the rest for mistakes.

use serde::Deserialize;
use serde_json::Value;

use crate::path::FieldPath;
use crate::validate::{self, Duration, Validate, Validator};

/// `spec` of an IstioOperator.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IstioOperator {
    pub profile: Option<String>,
    pub hub: Option<String>,
    pub tag: Option<Value>,
    pub revision: Option<String>,
    pub namespace: Option<String>,
    pub install_package_path: Option<String>,
    pub mesh_config: Option<MeshConfig>,
    pub components: Option<Components>,
    /// Helm values: free-form, passed to the charts as they are.
    pub values: Option<Value>,
    pub unvalidated_values: Option<Value>,
}

/// The installation's components; each can be switched on or off and tuned for Kubernetes.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Components {
    pub base: Option<Component>,
    pub pilot: Option<Component>,
    pub cni: Option<Component>,
    pub ztunnel: Option<Component>,
    pub istiod_remote: Option<Component>,
    #[serde(default)]
    pub ingress_gateways: Vec<GatewayComponent>,
    #[serde(default)]
    pub egress_gateways: Vec<GatewayComponent>,
}

/// One of the control plane's components.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Component {
    pub enabled: Option<bool>,
    pub namespace: Option<String>,
    pub hub: Option<String>,
    pub tag: Option<Value>,
    /// Kubernetes resource settings (resources, replicas, annotations...): free-form.
    pub k8s: Option<Value>,
}

/// An ingress or egress gateway to install.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewayComponent {
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub enabled: Option<bool>,
    #[serde(default)]
    pub label: std::collections::BTreeMap<String, String>,
    pub hub: Option<String>,
    pub tag: Option<Value>,
    pub k8s: Option<Value>,
}

/// Mesh-wide settings (Istio's MeshConfig): the ones Weft acts on are typed; settings
/// that only tune Envoy's own configuration are accepted as they are.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeshConfig {
    pub outbound_traffic_policy: Option<OutboundTrafficPolicy>,
    pub access_log_file: Option<String>,
    pub access_log_format: Option<String>,
    pub access_log_encoding: Option<AccessLogEncoding>,
    pub enable_tracing: Option<bool>,
    pub enable_auto_mtls: Option<bool>,
    pub enable_prometheus_merge: Option<bool>,
    pub trust_domain: Option<String>,
    #[serde(default)]
    pub trust_domain_aliases: Vec<String>,
    pub root_namespace: Option<String>,
    pub connect_timeout: Option<Duration>,
    pub protocol_detection_timeout: Option<Duration>,
    pub h2_upgrade_policy: Option<String>,
    pub ingress_class: Option<String>,
    pub ingress_service: Option<String>,
    pub ingress_controller_mode: Option<String>,
    pub ingress_selector: Option<String>,
    #[serde(default)]
    pub default_service_export_to: Vec<String>,
    #[serde(default)]
    pub default_virtual_service_export_to: Vec<String>,
    #[serde(default)]
    pub default_destination_rule_export_to: Vec<String>,
    pub inbound_cluster_stat_name: Option<String>,
    pub outbound_cluster_stat_name: Option<String>,
    /// Per-proxy defaults (Istio's ProxyConfig in the mesh config).
    pub default_config: Option<Value>,
    pub default_providers: Option<Value>,
    pub extension_providers: Option<Value>,
    pub locality_lb_setting: Option<Value>,
    pub discovery_selectors: Option<Value>,
    pub service_settings: Option<Value>,
    pub tcp_keepalive: Option<Value>,
    pub ca_certificates: Option<Value>,
    #[serde(rename = "meshMTLS")]
    pub mesh_mtls: Option<Value>,
    pub tls_defaults: Option<Value>,
    pub dns_refresh_rate: Option<Duration>,
}

/// `meshConfig.outboundTrafficPolicy`: what a sidecar does with traffic to hosts outside
/// the service registry.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutboundTrafficPolicy {
    #[serde(default)]
    pub mode: OutboundMode,
}

/// `ALLOW_ANY` (Istio's default) passes unknown destinations through; `REGISTRY_ONLY` blocks them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OutboundMode {
    #[default]
    AllowAny,
    RegistryOnly,
}

/// `meshConfig.accessLogEncoding`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AccessLogEncoding {
    #[default]
    Text,
    Json,
}

/// The profiles `istioctl install` ships.
const PROFILES: &[&str] = &[
    "default",
    "demo",
    "minimal",
    "remote",
    "empty",
    "preview",
    "ambient",
    "openshift",
    "openshift-ambient",
    "stable",
];

impl Validate for IstioOperator {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        if let Some(profile) = self.profile.as_deref().filter(|p| !PROFILES.contains(p)) {
            v.error(
                at.key("profile"),
                format!(
                    "unknown profile {profile:?} (one of {})",
                    PROFILES.join(", ")
                ),
            );
        }
        if let Some(mesh) = &self.mesh_config {
            mesh.validate(&at.key("meshConfig"), v);
        }
        if let Some(components) = &self.components {
            for (field, gateways) in [
                ("ingressGateways", &components.ingress_gateways),
                ("egressGateways", &components.egress_gateways),
            ] {
                for (i, g) in gateways.iter().enumerate() {
                    let at = at.key("components").key(field).index(i);
                    v.required(
                        at.key("name"),
                        g.name.as_deref().is_some_and(|n| !n.is_empty()),
                    );
                    validate::labels(&at.key("label"), &g.label, v);
                }
            }
        }
    }
}

impl Validate for MeshConfig {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        for (field, d) in [
            ("connectTimeout", self.connect_timeout),
            ("protocolDetectionTimeout", self.protocol_detection_timeout),
        ] {
            if let Some(d) = d {
                v.check(at.key(field), validate::duration_ms(d));
            }
        }
        let domains = self
            .trust_domain
            .iter()
            .map(|d| ("trustDomain".to_string(), d));
        let aliases = self
            .trust_domain_aliases
            .iter()
            .enumerate()
            .map(|(i, d)| (format!("[{i}]"), d));
        for (field, domain) in domains.chain(aliases) {
            let path = if field.starts_with('[') {
                at.key("trustDomainAliases")
            } else {
                at.key(&field)
            };
            if domain.is_empty() || domain.contains('/') || domain.contains(char::is_whitespace) {
                v.error(
                    path,
                    format!(
                        "invalid trust domain {domain:?}: a DNS-like name without '/' or spaces"
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests;
