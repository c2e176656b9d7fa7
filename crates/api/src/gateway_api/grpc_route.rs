//! The Gateway API's `GRPCRoute`: gRPC requests matched by service, method and headers, with
//! the rules of its `gateway.networking.k8s.io` CRD schema.

use std::sync::LazyLock;

use regex::Regex;
use serde::Deserialize;

use crate::gateway_api::gateway::checks;
use crate::gateway_api::gateway::refs::{self, LocalObjectReference, ParentReference};
use crate::gateway_api::http_route::filters::{
    self, CommonFilters, HeaderMatch, HttpHeaderFilter, HttpRequestMirrorFilter, MatchOn,
    SessionPersistence,
};
use crate::gateway_api::http_route::{route_hostnames, rule_list};
use crate::path::FieldPath;
use crate::validate::{Validate, Validator};

/// `GRPCRoute.spec`: how gRPC calls reaching its parents are matched and forwarded.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcRoute {
    #[serde(default)]
    pub parent_refs: Vec<ParentReference>,
    #[serde(default)]
    pub hostnames: Vec<String>,
    #[serde(default)]
    pub rules: Vec<GrpcRouteRule>,
    /// Attach to the default Gateways of a scope (experimental).
    pub use_default_gateways: Option<String>,
}

/// `rules[]`: matches, filters and backends.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcRouteRule {
    pub name: Option<String>,
    /// Absent means every call.
    #[serde(default)]
    pub matches: Vec<GrpcRouteMatch>,
    #[serde(default)]
    pub filters: Vec<GrpcRouteFilter>,
    #[serde(default)]
    pub backend_refs: Vec<GrpcBackendRef>,
    pub session_persistence: Option<SessionPersistence>,
}

/// `matches[]`: a method and headers that must all match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcRouteMatch {
    pub method: Option<GrpcMethodMatch>,
    #[serde(default)]
    pub headers: Vec<HeaderMatch>,
}

/// How a gRPC service and method are compared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum GrpcMethodMatchType {
    #[default]
    Exact,
    /// Implementation-specific; Istio hands it to Envoy as RE2.
    RegularExpression,
}

/// `method: {type, service, method}`: at least one of service and method.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcMethodMatch {
    /// Defaults to Exact.
    #[serde(rename = "type")]
    pub type_: Option<GrpcMethodMatchType>,
    /// A fully-qualified service, e.g. `helloworld.Greeter`.
    pub service: Option<String>,
    pub method: Option<String>,
}

/// The kind of a GRPCRoute filter, naming the field that configures it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum GrpcRouteFilterType {
    RequestHeaderModifier,
    ResponseHeaderModifier,
    RequestMirror,
    ExtensionRef,
}

impl GrpcRouteFilterType {
    /// The name as written in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RequestHeaderModifier => "RequestHeaderModifier",
            Self::ResponseHeaderModifier => "ResponseHeaderModifier",
            Self::RequestMirror => "RequestMirror",
            Self::ExtensionRef => "ExtensionRef",
        }
    }
}

/// `filters[]`: a processing step; `type` says which other field configures it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcRouteFilter {
    #[serde(rename = "type")]
    pub type_: Option<GrpcRouteFilterType>,
    pub request_header_modifier: Option<HttpHeaderFilter>,
    pub response_header_modifier: Option<HttpHeaderFilter>,
    pub request_mirror: Option<HttpRequestMirrorFilter>,
    pub extension_ref: Option<LocalObjectReference>,
}

/// `backendRefs[]` of a GRPCRoute rule: a weighted backend, with its own filters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcBackendRef {
    pub group: Option<String>,
    pub kind: Option<String>,
    #[serde(default)]
    pub name: String,
    pub namespace: Option<String>,
    pub port: Option<i32>,
    pub weight: Option<i32>,
    #[serde(default)]
    pub filters: Vec<GrpcRouteFilter>,
}

static SERVICE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?i)\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$")
        .expect("built-in pattern compiles")
});
static METHOD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z_][A-Za-z_0-9]*$").expect("built-in pattern compiles"));

impl Validate for GrpcRoute {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        refs::parent_refs(&at.key("parentRefs"), &self.parent_refs, v);
        route_hostnames(&at.key("hostnames"), &self.hostnames, v);
        let rules = at.key("rules");
        rule_list(&rules, self.rules.iter().map(|r| r.name.as_deref()), v);
        for (i, r) in self.rules.iter().enumerate() {
            rule(&rules.index(i), r, v);
        }
    }
}

fn rule(at: &FieldPath, r: &GrpcRouteRule, v: &mut Validator<'_>) {
    checks::max_items(at.key("matches"), r.matches.len(), 8, v);
    for (i, m) in r.matches.iter().enumerate() {
        let at = at.key("matches").index(i);
        if let Some(method) = &m.method {
            method_match(&at.key("method"), method, v);
        }
        filters::header_matches(&at.key("headers"), &m.headers, MatchOn::Header, v);
    }
    filter_list(&at.key("filters"), &r.filters, v);
    checks::max_items(at.key("backendRefs"), r.backend_refs.len(), 16, v);
    for (i, b) in r.backend_refs.iter().enumerate() {
        let at = at.key("backendRefs").index(i);
        refs::weighted_backend(&at, &b.ref_fields(), b.port, b.weight, v);
        filter_list(&at.key("filters"), &b.filters, v);
    }
    if let Some(sp) = &r.session_persistence {
        sp.validate(&at.key("sessionPersistence"), v);
    }
}

fn method_match(at: &FieldPath, m: &GrpcMethodMatch, v: &mut Validator<'_>) {
    if m.service.is_none() && m.method.is_none() {
        v.error(
            at.clone(),
            "give service, method or both (e.g. service: helloworld.Greeter, method: SayHello)",
        );
    }
    let regex = m.type_.unwrap_or_default() == GrpcMethodMatchType::RegularExpression;
    if let Some(s) = &m.service {
        checks::max_len(at.key("service"), s, 1024, v);
        if regex {
            checks::regex(at.key("service"), s, v);
        } else if !SERVICE.is_match(s) {
            v.error(
                at.key("service"),
                format!("invalid service {s:?}: a dotted name of letters, digits and '_' such as helloworld.Greeter"),
            );
        }
    }
    if let Some(name) = &m.method {
        checks::max_len(at.key("method"), name, 1024, v);
        if regex {
            checks::regex(at.key("method"), name, v);
        } else if !METHOD.is_match(name) {
            v.error(
                at.key("method"),
                format!("invalid method {name:?}: letters, digits and '_' only, such as SayHello (no '/')"),
            );
        }
    }
}

fn filter_list(at: &FieldPath, list: &[GrpcRouteFilter], v: &mut Validator<'_>) {
    let once = ["RequestHeaderModifier", "ResponseHeaderModifier"];
    filters::filter_list(
        at,
        list,
        |f| f.type_.map(GrpcRouteFilterType::as_str),
        &once,
        v,
    );
}

impl Validate for GrpcRouteFilter {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        let common = CommonFilters {
            request_header_modifier: self.request_header_modifier.as_ref(),
            response_header_modifier: self.response_header_modifier.as_ref(),
            request_mirror: self.request_mirror.as_ref(),
            extension_ref: self.extension_ref.as_ref(),
        };
        common.validate(at, self.type_.map(GrpcRouteFilterType::as_str), &[], v);
    }
}

#[cfg(test)]
mod tests;
