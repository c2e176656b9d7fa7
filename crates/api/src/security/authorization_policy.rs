//! `AuthorizationPolicy` (security.istio.io v1 and v1beta1): which requests a workload
//! accepts, denies, audits or hands to an external authorizer. The rules Istio enforces on
//! it are in `authorization_policy/rules.rs`.

mod rules;

use serde::{Deserialize, Deserializer};

use crate::common::{PolicyScope, PolicyTargetReference, WorkloadSelector};
use crate::path::FieldPath;
use crate::validate::{Validate, Validator};

/// The spec of an AuthorizationPolicy. `spec: {}` is valid: an ALLOW policy with no rules
/// allows nothing.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorizationPolicy {
    /// Workloads the policy applies to.
    pub selector: Option<WorkloadSelector>,
    /// A Gateway, Service or ServiceEntry the policy attaches to instead of a selector.
    pub target_ref: Option<PolicyTargetReference>,
    /// Several of those.
    #[serde(default)]
    pub target_refs: Vec<PolicyTargetReference>,
    /// A request matches the policy when it matches any rule.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// What happens to matching requests (default: ALLOW).
    #[serde(default)]
    pub action: Action,
    /// The extension provider (from MeshConfig) that a CUSTOM policy calls.
    pub provider: Option<ExtensionProvider>,
}

/// What happens to a request that matches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum Action {
    /// Allow matching requests; once a workload has any ALLOW policy, others are denied.
    #[default]
    #[serde(rename = "ALLOW")]
    Allow,
    /// Deny matching requests; checked before ALLOW.
    #[serde(rename = "DENY")]
    Deny,
    /// Only marks the request for an audit-capable provider; does not allow or deny.
    #[serde(rename = "AUDIT")]
    Audit,
    /// Delegates the decision to `provider`.
    #[serde(rename = "CUSTOM")]
    Custom,
}

/// `provider: {name}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExtensionProvider {
    /// The provider's name in MeshConfig `extensionProviders`.
    #[serde(default)]
    pub name: String,
}

/// One rule: any `from`, any `to`, and all `when` must match. `from` and `to` stay `None`
/// when absent so that an empty list can be told apart (it matches anything).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    /// Sources, any of which must match; no `from` matches any source.
    pub from: Option<Vec<RuleFrom>>,
    /// Operations, any of which must match; no `to` matches any operation.
    pub to: Option<Vec<RuleTo>>,
    /// Conditions, all of which must match.
    #[serde(default)]
    pub when: Vec<Condition>,
}

/// `from: [{source: ...}]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleFrom {
    /// The source to match.
    pub source: Option<Source>,
}

/// Where a request comes from; the fields of one source must all match.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Source {
    /// Peer identities from mTLS, `<trust-domain>/ns/<namespace>/sa/<service-account>`.
    #[serde(default)]
    pub principals: Vec<String>,
    /// Peer identities that must not match.
    #[serde(default)]
    pub not_principals: Vec<String>,
    /// End-user identities from a JWT, `<iss>/<sub>`.
    #[serde(default)]
    pub request_principals: Vec<String>,
    /// End-user identities that must not match.
    #[serde(default)]
    pub not_request_principals: Vec<String>,
    /// Namespaces of the peer (needs mTLS).
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Peer namespaces that must not match.
    #[serde(default)]
    pub not_namespaces: Vec<String>,
    /// The peer's IP address (the connection's source).
    #[serde(default)]
    pub ip_blocks: Vec<String>,
    /// Peer IPs that must not match.
    #[serde(default)]
    pub not_ip_blocks: Vec<String>,
    /// The original client's IP (X-Forwarded-For or PROXY protocol).
    #[serde(default)]
    pub remote_ip_blocks: Vec<String>,
    /// Client IPs that must not match.
    #[serde(default)]
    pub not_remote_ip_blocks: Vec<String>,
    /// Peer service accounts, `<namespace>/<name>`.
    #[serde(default)]
    pub service_accounts: Vec<String>,
    /// Peer service accounts that must not match.
    #[serde(default)]
    pub not_service_accounts: Vec<String>,
}

/// `to: [{operation: ...}]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleTo {
    /// The operation to match.
    pub operation: Option<Operation>,
}

/// What a request does; the fields of one operation must all match.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Operation {
    /// Host header values (HTTP only).
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Hosts that must not match.
    #[serde(default)]
    pub not_hosts: Vec<String>,
    /// Destination ports, written as strings (`"8080"`).
    #[serde(default, deserialize_with = "quoted_strings")]
    pub ports: Vec<String>,
    /// Ports that must not match.
    #[serde(default, deserialize_with = "quoted_strings")]
    pub not_ports: Vec<String>,
    /// HTTP methods (HTTP only).
    #[serde(default)]
    pub methods: Vec<String>,
    /// Methods that must not match.
    #[serde(default)]
    pub not_methods: Vec<String>,
    /// Request paths (HTTP only).
    #[serde(default)]
    pub paths: Vec<String>,
    /// Paths that must not match.
    #[serde(default)]
    pub not_paths: Vec<String>,
}

/// `when: [{key, values, notValues}]`: a condition on an Istio attribute.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Condition {
    /// The attribute, e.g. `request.headers[User-Agent]` or `source.ip`.
    #[serde(default)]
    pub key: String,
    /// Values of which one must match.
    #[serde(default, deserialize_with = "quoted_strings")]
    pub values: Vec<String>,
    /// Values none of which may match.
    #[serde(default, deserialize_with = "quoted_strings")]
    pub not_values: Vec<String>,
}

/// A list of strings where users often write bare numbers (`ports: [8080]`): the schema
/// wants strings, so say how to write them.
fn quoted_strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let items = Option::<Vec<serde_json::Value>>::deserialize(d)?.unwrap_or_default();
    items
        .into_iter()
        .map(|item| match item {
            serde_json::Value::String(s) => Ok(s),
            serde_json::Value::Number(n) => Err(serde::de::Error::custom(format!(
                "{n} must be a string here: quote it (\"{n}\")"
            ))),
            other => Err(serde::de::Error::custom(format!(
                "expected a list of strings, found {other}"
            ))),
        })
        .collect()
}

impl Validate for AuthorizationPolicy {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        PolicyScope {
            selector: self.selector.as_ref(),
            target_ref: self.target_ref.as_ref(),
            target_refs: &self.target_refs,
        }
        .validate(at, v);
        rules::action_rules(self, at, v);
        for (i, rule) in self.rules.iter().enumerate() {
            rules::rule_rules(rule, self.action, &at.key("rules").index(i), v);
        }
    }
}

#[cfg(test)]
mod tests;
