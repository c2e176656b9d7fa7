//! `EnvoyFilter`: patches to the Envoy configuration Istio generates. Weft parses it and
//! checks the structure Istio checks, but its proxy is not Envoy: every EnvoyFilter is
//! reported as having no effect, never silently ignored.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::workload_entry::WorkloadSelector;
use crate::common::PolicyTargetReference;
use crate::path::FieldPath;
use crate::validate::{self, Validate, Validator};

/// `EnvoyFilter.spec`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvoyFilter {
    pub workload_selector: Option<WorkloadSelector>,
    #[serde(default)]
    pub target_refs: Vec<PolicyTargetReference>,
    #[serde(default)]
    pub config_patches: Vec<ConfigPatch>,
    /// Order of application among EnvoyFilters of the same context.
    pub priority: Option<i32>,
}

/// `configPatches[]`: where to patch, what to match, and the patch.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigPatch {
    pub apply_to: Option<ApplyTo>,
    #[serde(rename = "match")]
    pub matches: Option<ObjectMatch>,
    pub patch: Option<Patch>,
}

/// `applyTo`: the kind of Envoy object patched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ApplyTo {
    #[default]
    Invalid,
    Listener,
    FilterChain,
    NetworkFilter,
    HttpFilter,
    RouteConfiguration,
    VirtualHost,
    HttpRoute,
    Cluster,
    ExtensionConfig,
    Bootstrap,
    ListenerFilter,
}

/// `match`: which generated objects the patch applies to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectMatch {
    pub context: Option<PatchContext>,
    pub proxy: Option<ProxyMatch>,
    pub listener: Option<ListenerMatch>,
    pub route_configuration: Option<RouteConfigurationMatch>,
    pub cluster: Option<ClusterMatch>,
    pub waypoint: Option<WaypointMatch>,
}

/// `match.context`: which proxies' configuration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PatchContext {
    #[default]
    Any,
    SidecarInbound,
    SidecarOutbound,
    Gateway,
    Waypoint,
}

/// `match.proxy`: proxies by version regex and node metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyMatch {
    pub proxy_version: Option<String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// `match.listener`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListenerMatch {
    pub port_number: Option<u32>,
    pub port_name: Option<String>,
    pub filter_chain: Option<FilterChainMatch>,
    pub listener_filter: Option<String>,
    pub name: Option<String>,
}

/// `listener.filterChain`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FilterChainMatch {
    pub name: Option<String>,
    pub sni: Option<String>,
    pub transport_protocol: Option<String>,
    pub application_protocols: Option<String>,
    pub filter: Option<FilterMatch>,
    pub destination_port: Option<u32>,
}

/// `filterChain.filter`: a network filter, and optionally an HTTP filter inside it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FilterMatch {
    pub name: Option<String>,
    pub sub_filter: Option<SubFilterMatch>,
}

/// `filter.subFilter`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubFilterMatch {
    pub name: Option<String>,
}

/// `match.routeConfiguration`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteConfigurationMatch {
    pub port_number: Option<u32>,
    pub port_name: Option<String>,
    pub gateway: Option<String>,
    pub vhost: Option<VirtualHostMatch>,
    pub name: Option<String>,
}

/// `routeConfiguration.vhost`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VirtualHostMatch {
    pub name: Option<String>,
    pub domain_name: Option<String>,
    pub route: Option<RouteMatch>,
}

/// `vhost.route`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteMatch {
    pub name: Option<String>,
    pub action: Option<RouteAction>,
}

/// `route.action`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RouteAction {
    #[default]
    Any,
    Route,
    Redirect,
    DirectResponse,
}

/// `match.cluster`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterMatch {
    pub port_number: Option<u32>,
    pub service: Option<String>,
    pub subset: Option<String>,
    pub name: Option<String>,
}

/// `match.waypoint` (context WAYPOINT).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WaypointMatch {
    pub filter: Option<FilterMatch>,
    pub route: Option<WaypointRouteMatch>,
    pub port_number: Option<u32>,
}

/// `waypoint.route`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WaypointRouteMatch {
    pub name: Option<String>,
}

/// `patch`: the operation and the Envoy configuration fragment (free-form).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Patch {
    pub operation: Option<Operation>,
    pub value: Option<Value>,
    pub filter_class: Option<FilterClass>,
}

/// `patch.operation`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Operation {
    #[default]
    Invalid,
    Merge,
    Add,
    Remove,
    InsertBefore,
    InsertAfter,
    InsertFirst,
    Replace,
    MergeAndReplaceList,
}

/// `patch.filterClass`: where an added HTTP filter goes relative to Istio's own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FilterClass {
    #[default]
    Unspecified,
    Authn,
    Authz,
    Stats,
}

const HCM: &str = "envoy.filters.network.http_connection_manager";

impl Validate for EnvoyFilter {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        v.warn(
            at.clone(),
            "EnvoyFilter is parsed but not supported: Weft's data plane is not Envoy, so this filter has no effect",
        );
        if let Some(sel) = &self.workload_selector {
            sel.check(&at.key("workloadSelector"), "EnvoyFilter", v);
            if !self.target_refs.is_empty() {
                v.warn(
                    at.key("targetRefs"),
                    "both workloadSelector and targetRefs are set: set only one",
                );
            }
        }
        for (i, r) in self.target_refs.iter().enumerate() {
            let rat = at.key("targetRefs").index(i);
            r.validate(&rat, v);
            let group = if r.group.is_empty() {
                "core"
            } else {
                r.group.as_str()
            };
            let ok = matches!(
                (group, r.kind.as_str()),
                ("core", "Service") | ("gateway.networking.k8s.io", "Gateway")
            );
            if !ok && !r.kind.is_empty() {
                v.error(
                    rat,
                    format!("targetRefs can name a Service or a gateway.networking.k8s.io Gateway, not {}/{}", r.group, r.kind),
                );
            }
        }
        for (i, p) in self.config_patches.iter().enumerate() {
            p.validate(&at.key("configPatches").index(i), v);
        }
    }
}

impl Validate for ConfigPatch {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        let apply_to = self.apply_to.unwrap_or_default();
        if apply_to == ApplyTo::Invalid {
            v.error(
                at.key("applyTo"),
                "applyTo is required (e.g. HTTP_FILTER, CLUSTER, LISTENER)",
            );
            return;
        }
        let Some(patch) = &self.patch else {
            v.error(at.key("patch"), "patch is required (operation and value)");
            return;
        };
        let op = patch.operation.unwrap_or_default();
        if op == Operation::Invalid {
            v.error(
                at.key("patch").key("operation"),
                "patch.operation is required (e.g. MERGE, ADD, INSERT_BEFORE, REMOVE)",
            );
            return;
        }
        match &patch.value {
            None if op != Operation::Remove => {
                v.error(
                    at.key("patch").key("value"),
                    "patch.value is required for every operation but REMOVE",
                );
                return;
            }
            Some(val) if !val.is_object() => {
                v.error(
                    at.key("patch").key("value"),
                    "patch.value must be an object (an Envoy configuration fragment)",
                );
            }
            _ => {}
        }
        if let Some(m) = &self.matches {
            validate_match(&at.key("match"), apply_to, m, v);
        }
    }
}

fn validate_match(at: &FieldPath, apply_to: ApplyTo, m: &ObjectMatch, v: &mut Validator<'_>) {
    if let Some(re) = m.proxy.as_ref().and_then(|p| p.proxy_version.as_deref())
        && !re.is_empty()
    {
        v.check(at.key("proxy").key("proxyVersion"), validate::regex(re));
    }
    let kinds = [
        m.listener.is_some(),
        m.route_configuration.is_some(),
        m.cluster.is_some(),
        m.waypoint.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() > 1 {
        v.error(
            at.clone(),
            "set only one of listener, routeConfiguration, cluster and waypoint",
        );
    }
    let waypoint_context = m.context == Some(PatchContext::Waypoint);
    if waypoint_context != m.waypoint.is_some() {
        v.error(at.clone(), "a waypoint match goes with context WAYPOINT, and context WAYPOINT needs a waypoint match");
    }
    if let Some(p) = m.waypoint.as_ref().and_then(|w| w.port_number) {
        v.check(at.key("waypoint").key("portNumber"), validate::port(p));
    }
    if !kinds.iter().any(|k| *k) || m.waypoint.is_some() {
        return;
    }
    let (wanted, present, class) = match apply_to {
        ApplyTo::Listener | ApplyTo::FilterChain | ApplyTo::NetworkFilter | ApplyTo::HttpFilter => {
            ("listener", m.listener.is_some(), "listener")
        }
        ApplyTo::RouteConfiguration | ApplyTo::VirtualHost | ApplyTo::HttpRoute => (
            "routeConfiguration",
            m.route_configuration.is_some(),
            "route",
        ),
        ApplyTo::Cluster => ("cluster", m.cluster.is_some(), "cluster"),
        _ => return,
    };
    if !present {
        v.error(
            at.clone(),
            format!("applyTo a {class} object needs a {wanted} match"),
        );
        return;
    }
    if let Some(f) = m
        .listener
        .as_ref()
        .and_then(|l| l.filter_chain.as_ref())
        .and_then(|c| c.filter.as_ref())
    {
        validate_filter_match(
            &at.key("listener").key("filterChain").key("filter"),
            apply_to,
            f,
            v,
        );
    }
}

fn validate_filter_match(
    at: &FieldPath,
    apply_to: ApplyTo,
    f: &FilterMatch,
    v: &mut Validator<'_>,
) {
    if matches!(apply_to, ApplyTo::Listener | ApplyTo::FilterChain) {
        v.warn(
            at.clone(),
            "a filter match has no effect with applyTo LISTENER or FILTER_CHAIN",
        );
    }
    let name = f.name.as_deref().unwrap_or("");
    if name.is_empty() {
        v.error(
            at.key("name"),
            "a filter match needs the filter name to match on",
        );
        return;
    }
    let Some(sub) = &f.sub_filter else { return };
    if apply_to != ApplyTo::HttpFilter {
        v.error(
            at.key("subFilter"),
            "a subFilter match can only be used with applyTo HTTP_FILTER",
        );
    } else if name != HCM && name != "envoy.http_connection_manager" {
        v.error(
            at.key("subFilter"),
            format!("a subFilter match needs the filter match to name {HCM}"),
        );
    } else if sub.name.as_deref().unwrap_or("").is_empty() {
        v.error(
            at.key("subFilter").key("name"),
            "a subFilter match needs the filter name to match on",
        );
    }
}

#[cfg(test)]
mod tests;
