//! The Gateway API's `HTTPRoute`: parent refs, hostnames, and rules of matches, filters and
//! weighted backends, with the rules of its `gateway.networking.k8s.io` CRD schema. The
//! filters live in the child module, which GRPCRoute shares.

pub mod filters;

use serde::Deserialize;

use self::filters::{
    CommonFilters, HeaderMatch, HttpCorsFilter, HttpExternalAuthFilter, HttpHeaderFilter,
    HttpRequestMirrorFilter, HttpRequestRedirectFilter, HttpUrlRewriteFilter, MatchOn,
    SessionPersistence,
};
use crate::gateway_api::gateway::checks::{self, GatewayDuration};
use crate::gateway_api::gateway::refs::{self, LocalObjectReference, ParentReference};
use crate::path::FieldPath;
use crate::validate::{Validate, Validator};

/// `HTTPRoute.spec`: how HTTP requests reaching its parents are matched and forwarded.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRoute {
    #[serde(default)]
    pub parent_refs: Vec<ParentReference>,
    #[serde(default)]
    pub hostnames: Vec<String>,
    /// Absent means one rule matching every request (`PathPrefix /`) with no backend.
    #[serde(default)]
    pub rules: Vec<HttpRouteRule>,
    /// Attach to the default Gateways of a scope (experimental).
    pub use_default_gateways: Option<String>,
}

/// `rules[]`: matches, filters and backends.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRouteRule {
    pub name: Option<String>,
    /// Absent means `[{path: {type: PathPrefix, value: /}}]`.
    #[serde(default)]
    pub matches: Vec<HttpRouteMatch>,
    #[serde(default)]
    pub filters: Vec<HttpRouteFilter>,
    #[serde(default)]
    pub backend_refs: Vec<HttpBackendRef>,
    pub timeouts: Option<HttpRouteTimeouts>,
    pub retry: Option<HttpRouteRetry>,
    pub session_persistence: Option<SessionPersistence>,
}

/// `matches[]`: conditions that must all hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRouteMatch {
    /// Absent means `{type: PathPrefix, value: /}`.
    pub path: Option<HttpPathMatch>,
    #[serde(default)]
    pub headers: Vec<HeaderMatch>,
    #[serde(default)]
    pub query_params: Vec<HeaderMatch>,
    pub method: Option<HttpMethod>,
}

/// How a request path is compared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum PathMatchType {
    Exact,
    /// Matches whole path segments: `/abc` matches `/abc/def` but not `/abcd`.
    #[default]
    PathPrefix,
    /// Implementation-specific; Istio hands it to Envoy as RE2.
    RegularExpression,
}

/// `path: {type, value}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpPathMatch {
    /// Defaults to PathPrefix.
    #[serde(rename = "type")]
    pub type_: Option<PathMatchType>,
    /// Defaults to `/`.
    pub value: Option<String>,
}

/// An HTTP method to match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Connect,
    Options,
    Trace,
    Patch,
}

/// The kind of an HTTPRoute filter, naming the field that configures it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum HttpRouteFilterType {
    RequestHeaderModifier,
    ResponseHeaderModifier,
    RequestMirror,
    RequestRedirect,
    #[serde(rename = "URLRewrite")]
    UrlRewrite,
    ExtensionRef,
    #[serde(rename = "CORS")]
    Cors,
    /// Experimental.
    ExternalAuth,
}

impl HttpRouteFilterType {
    /// The name as written in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RequestHeaderModifier => "RequestHeaderModifier",
            Self::ResponseHeaderModifier => "ResponseHeaderModifier",
            Self::RequestMirror => "RequestMirror",
            Self::RequestRedirect => "RequestRedirect",
            Self::UrlRewrite => "URLRewrite",
            Self::ExtensionRef => "ExtensionRef",
            Self::Cors => "CORS",
            Self::ExternalAuth => "ExternalAuth",
        }
    }
}

/// `filters[]`: a processing step; `type` says which one of the other fields configures it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRouteFilter {
    #[serde(rename = "type")]
    pub type_: Option<HttpRouteFilterType>,
    pub request_header_modifier: Option<HttpHeaderFilter>,
    pub response_header_modifier: Option<HttpHeaderFilter>,
    pub request_mirror: Option<HttpRequestMirrorFilter>,
    pub request_redirect: Option<HttpRequestRedirectFilter>,
    pub url_rewrite: Option<HttpUrlRewriteFilter>,
    pub cors: Option<HttpCorsFilter>,
    pub external_auth: Option<HttpExternalAuthFilter>,
    pub extension_ref: Option<LocalObjectReference>,
}

/// `backendRefs[]` of an HTTPRoute rule: a weighted backend, with its own filters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpBackendRef {
    /// Defaults to `""`, the core group.
    pub group: Option<String>,
    /// Defaults to `Service`.
    pub kind: Option<String>,
    #[serde(default)]
    pub name: String,
    pub namespace: Option<String>,
    pub port: Option<i32>,
    /// Defaults to 1.
    pub weight: Option<i32>,
    #[serde(default)]
    pub filters: Vec<HttpRouteFilter>,
}

/// `timeouts`: of the whole request, and of each try to a backend.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRouteTimeouts {
    pub request: Option<GatewayDuration>,
    pub backend_request: Option<GatewayDuration>,
}

/// `retry`: which responses to retry, how often, and how long to wait between tries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRouteRetry {
    #[serde(default)]
    pub codes: Vec<i32>,
    pub attempts: Option<i32>,
    pub backoff: Option<GatewayDuration>,
}

impl Validate for HttpRoute {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        refs::parent_refs(&at.key("parentRefs"), &self.parent_refs, v);
        route_hostnames(&at.key("hostnames"), &self.hostnames, v);
        let rules = at.key("rules");
        rule_list(&rules, self.rules.iter().map(|r| r.name.as_deref()), v);
        let total: usize = self.rules.iter().map(|r| r.matches.len().max(1)).sum();
        if total > 128 {
            v.error(
                rules.clone(),
                format!("the rules have {total} matches in all; at most 128 are allowed per route"),
            );
        }
        for (i, r) in self.rules.iter().enumerate() {
            rule(&rules.index(i), r, v);
        }
    }
}

/// `hostnames` of a route: at most 16 hostnames, each optionally wildcarded.
pub fn route_hostnames(at: &FieldPath, hosts: &[String], v: &mut Validator<'_>) {
    checks::max_items(at.clone(), hosts.len(), 16, v);
    for (i, h) in hosts.iter().enumerate() {
        v.check(at.index(i), checks::hostname(h, true));
        checks::warn_ip_hostname(at.index(i), h, v);
    }
}

/// The `rules` of any route kind, by their optional names: at most 16 rules, and each name
/// a section name, unique in the route.
pub fn rule_list<'a>(
    at: &FieldPath,
    names: impl Iterator<Item = Option<&'a str>>,
    v: &mut Validator<'_>,
) {
    let names: Vec<Option<&str>> = names.collect();
    checks::max_items(at.clone(), names.len(), 16, v);
    for (i, name) in names.iter().enumerate() {
        let Some(name) = name else { continue };
        v.check(at.index(i).key("name"), checks::section_name(name));
        if let Some(j) = names[..i].iter().position(|o| *o == Some(*name)) {
            v.error(
                at.index(i).key("name"),
                format!("rule name {name:?} is already used by rules[{j}]; names must be unique"),
            );
        }
    }
}

fn rule(at: &FieldPath, r: &HttpRouteRule, v: &mut Validator<'_>) {
    checks::max_items(at.key("matches"), r.matches.len(), 64, v);
    for (i, m) in r.matches.iter().enumerate() {
        route_match(&at.key("matches").index(i), m, v);
    }
    filter_list(&at.key("filters"), &r.filters, v);
    checks::max_items(at.key("backendRefs"), r.backend_refs.len(), 16, v);
    for (i, b) in r.backend_refs.iter().enumerate() {
        backend_ref(&at.key("backendRefs").index(i), b, v);
    }
    if !r.backend_refs.is_empty()
        && let Some(i) = r.filters.iter().position(|f| f.request_redirect.is_some())
    {
        v.error(
                at.key("filters").index(i),
                "a RequestRedirect filter answers the request itself: it cannot be combined with backendRefs",
            );
    }
    prefix_rewrites(at, r, v);
    if let Some(t) = &r.timeouts {
        timeouts(&at.key("timeouts"), t, v);
    }
    if let Some(retry) = &r.retry {
        retry_policy(&at.key("retry"), retry, v);
    }
    if let Some(sp) = &r.session_persistence {
        sp.validate(&at.key("sessionPersistence"), v);
    }
}

fn route_match(at: &FieldPath, m: &HttpRouteMatch, v: &mut Validator<'_>) {
    if let Some(p) = &m.path {
        path_match(&at.key("path"), p, v);
    }
    filters::header_matches(&at.key("headers"), &m.headers, MatchOn::Header, v);
    filters::header_matches(
        &at.key("queryParams"),
        &m.query_params,
        MatchOn::QueryParam,
        v,
    );
}

/// Sequences that would let a path match escape its prefix, refused in Exact and PathPrefix.
const BAD_SEQUENCES: [&str; 6] = ["//", "/./", "/../", "%2f", "%2F", "#"];

fn path_match(at: &FieldPath, p: &HttpPathMatch, v: &mut Validator<'_>) {
    let value = p.value.as_deref().unwrap_or("/");
    let at = at.key("value");
    checks::max_len(at.clone(), value, 1024, v);
    match p.type_.unwrap_or_default() {
        PathMatchType::RegularExpression => checks::regex(at, value, v),
        ty => {
            let ty = if ty == PathMatchType::Exact {
                "Exact"
            } else {
                "PathPrefix"
            };
            if !value.starts_with('/') {
                v.error(
                    at.clone(),
                    format!("{ty} path {value:?} must be absolute: start it with '/'"),
                );
            }
            for seq in BAD_SEQUENCES {
                if value.contains(seq) {
                    v.error(
                        at.clone(),
                        format!("{ty} path {value:?} must not contain {seq:?}"),
                    );
                }
            }
            for end in ["/..", "/."] {
                if value.ends_with(end) {
                    v.error(
                        at.clone(),
                        format!("{ty} path {value:?} must not end with {end:?}"),
                    );
                }
            }
            if !filters::PATH_CHARS.is_match(value) {
                v.error(
                    at,
                    format!("{ty} path {value:?} has characters a URL path cannot hold (escape them as %XX)"),
                );
            }
        }
    }
}

/// Filters of a rule or of one backend: at most 16, each valid, the non-repeatable ones once,
/// and never both a redirect and a rewrite.
fn filter_list(at: &FieldPath, list: &[HttpRouteFilter], v: &mut Validator<'_>) {
    let once = [
        "CORS",
        "RequestHeaderModifier",
        "ResponseHeaderModifier",
        "RequestRedirect",
        "URLRewrite",
    ];
    let types = filters::filter_list(
        at,
        list,
        |f| f.type_.map(HttpRouteFilterType::as_str),
        &once,
        v,
    );
    let redirect = types.contains(&Some("RequestRedirect"));
    if let Some(i) = types.iter().position(|t| *t == Some("URLRewrite"))
        && redirect
    {
        v.error(
                at.index(i).key("type"),
                "RequestRedirect and URLRewrite cannot be used together: a redirect does not forward the request",
            );
    }
}

impl Validate for HttpRouteFilter {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        let common = CommonFilters {
            request_header_modifier: self.request_header_modifier.as_ref(),
            response_header_modifier: self.response_header_modifier.as_ref(),
            request_mirror: self.request_mirror.as_ref(),
            extension_ref: self.extension_ref.as_ref(),
        };
        let own = [
            (
                "requestRedirect",
                "RequestRedirect",
                self.request_redirect.is_some(),
            ),
            ("urlRewrite", "URLRewrite", self.url_rewrite.is_some()),
            ("cors", "CORS", self.cors.is_some()),
            ("externalAuth", "ExternalAuth", self.external_auth.is_some()),
        ];
        common.validate(at, self.type_.map(HttpRouteFilterType::as_str), &own, v);
        if let Some(r) = &self.request_redirect {
            r.validate(&at.key("requestRedirect"), v);
        }
        if let Some(r) = &self.url_rewrite {
            r.validate(&at.key("urlRewrite"), v);
        }
        if let Some(c) = &self.cors {
            c.validate(&at.key("cors"), v);
        }
        if let Some(e) = &self.external_auth {
            e.validate(&at.key("externalAuth"), v);
        }
    }
}

fn backend_ref(at: &FieldPath, b: &HttpBackendRef, v: &mut Validator<'_>) {
    refs::weighted_backend(at, &b.ref_fields(), b.port, b.weight, v);
    filter_list(&at.key("filters"), &b.filters, v);
}

/// A `ReplacePrefixMatch` redirect or rewrite replaces what the rule's PathPrefix match
/// matched, so the rule must have exactly one match, of type PathPrefix.
fn prefix_rewrites(at: &FieldPath, r: &HttpRouteRule, v: &mut Validator<'_>) {
    let single_prefix = match r.matches.as_slice() {
        [] => true,
        [m] => m
            .path
            .as_ref()
            .is_none_or(|p| p.type_.unwrap_or_default() == PathMatchType::PathPrefix),
        _ => false,
    };
    if single_prefix {
        return;
    }
    let mut check = |at: FieldPath, list: &[HttpRouteFilter]| {
        for (i, f) in list.iter().enumerate() {
            let redirect = f.request_redirect.as_ref().and_then(|r| r.path.as_ref());
            let rewrite = f.url_rewrite.as_ref().and_then(|r| r.path.as_ref());
            let (field, path) = match (redirect, rewrite) {
                (Some(p), _) => ("requestRedirect", p),
                (None, Some(p)) => ("urlRewrite", p),
                (None, None) => continue,
            };
            if path.replaces_prefix() {
                v.error(
                    at.index(i).key(field).key("path"),
                    "ReplacePrefixMatch needs the rule to have exactly one match, of type PathPrefix (use ReplaceFullPath otherwise)",
                );
            }
        }
    };
    check(at.key("filters"), &r.filters);
    for (i, b) in r.backend_refs.iter().enumerate() {
        check(at.key("backendRefs").index(i).key("filters"), &b.filters);
    }
}

fn timeouts(at: &FieldPath, t: &HttpRouteTimeouts, v: &mut Validator<'_>) {
    let request = checks::duration(at.key("request"), t.request.as_ref(), v);
    let backend = checks::duration(at.key("backendRequest"), t.backend_request.as_ref(), v);
    if let (Some(request), Some(backend)) = (request, backend)
        && !request.is_zero()
        && backend > request
    {
        v.error(
                at.key("backendRequest"),
                format!(
                    "backendRequest timeout {backend:?} is longer than the request timeout {request:?}, which covers every try"
                ),
            );
    }
}

fn retry_policy(at: &FieldPath, r: &HttpRouteRetry, v: &mut Validator<'_>) {
    for (i, code) in r.codes.iter().enumerate() {
        if !(400..=599).contains(code) {
            v.error(
                at.key("codes").index(i),
                format!("status code {code} cannot be retried: use a code in 400-599 (e.g. 503)"),
            );
        }
        if r.codes[..i].contains(code) {
            v.error(
                at.key("codes").index(i),
                format!("status code {code} is listed twice"),
            );
        }
    }
    if let Some(n) = r.attempts
        && n < 0
    {
        v.warn(
            at.key("attempts"),
            format!("attempts {n} is negative; 0 disables retries"),
        );
    }
    checks::duration(at.key("backoff"), r.backoff.as_ref(), v);
}

#[cfg(test)]
mod tests;
