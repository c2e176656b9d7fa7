//! The Gateway API's `TCPRoute` and `TLSRoute`: connections forwarded to weighted backends,
//! by listener (TCP) or by SNI hostname (TLS), with the rules of their CRD schemas.

use serde::Deserialize;

use crate::gateway_api::gateway::checks;
use crate::gateway_api::gateway::refs::{self, BackendRef, ParentReference};
use crate::gateway_api::http_route::{route_hostnames, rule_list};
use crate::path::FieldPath;
use crate::validate::{Validate, Validator};

/// `TCPRoute.spec` (v1alpha2): forward the connections of a listener to backends.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpRoute {
    #[serde(default)]
    pub parent_refs: Vec<ParentReference>,
    #[serde(default)]
    pub rules: Vec<StreamRouteRule>,
    /// Attach to the default Gateways of a scope (experimental).
    pub use_default_gateways: Option<String>,
}

/// `TLSRoute.spec` (v1alpha2, v1alpha3): forward TLS connections by SNI hostname.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsRoute {
    #[serde(default)]
    pub parent_refs: Vec<ParentReference>,
    /// SNI hostnames; required from v1alpha3 on.
    #[serde(default)]
    pub hostnames: Vec<String>,
    #[serde(default)]
    pub rules: Vec<StreamRouteRule>,
    /// Attach to the default Gateways of a scope (experimental).
    pub use_default_gateways: Option<String>,
}

/// `rules[]` of a TCPRoute or TLSRoute: an optional name and the backends.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StreamRouteRule {
    pub name: Option<String>,
    #[serde(default)]
    pub backend_refs: Vec<BackendRef>,
}

/// The rules both kinds share: 1–16 rules of 1–16 backends each.
fn rules(at: &FieldPath, rules: &[StreamRouteRule], v: &mut Validator<'_>) {
    if rules.is_empty() {
        v.error(at.clone(), "needs at least one rule with backendRefs");
    }
    rule_list(at, rules.iter().map(|r| r.name.as_deref()), v);
    for (i, r) in rules.iter().enumerate() {
        let at = at.index(i).key("backendRefs");
        if r.backend_refs.is_empty() {
            v.error(
                at.clone(),
                "needs at least one backend (e.g. [{name: my-service, port: 9000}])",
            );
        }
        checks::max_items(at.clone(), r.backend_refs.len(), 16, v);
        for (j, b) in r.backend_refs.iter().enumerate() {
            b.validate(&at.index(j), v);
        }
    }
}

impl Validate for TcpRoute {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        refs::parent_refs(&at.key("parentRefs"), &self.parent_refs, v);
        rules(&at.key("rules"), &self.rules, v);
    }
}

impl Validate for TlsRoute {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        refs::parent_refs(&at.key("parentRefs"), &self.parent_refs, v);
        if self.hostnames.is_empty() {
            // The loader does not tell the rules the apiVersion: v1alpha2 accepts a TLSRoute
            // without hostnames, v1alpha3 refuses it.
            v.warn(
                at.key("hostnames"),
                "no SNI hostnames: TLSRoute v1alpha3 requires at least one (v1alpha2 accepts none)",
            );
        }
        route_hostnames(&at.key("hostnames"), &self.hostnames, v);
        rules(&at.key("rules"), &self.rules, v);
    }
}

#[cfg(test)]
mod tests;
