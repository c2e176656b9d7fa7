//! The pieces of HTTPRoute (and GRPCRoute) rules other than the rule itself: header and query
//! matches, the filters (header modifiers, mirror, redirect, rewrite, CORS, external auth) and
//! session persistence, with their schema rules.

use std::sync::LazyLock;

use regex::Regex;
use serde::Deserialize;

use crate::gateway_api::gateway::checks::{self, GatewayDuration};
use crate::gateway_api::gateway::refs::{BackendObjectReference, LocalObjectReference};
use crate::path::FieldPath;
use crate::validate::{Validate, Validator};

/// How a header, query parameter or gRPC header value is compared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum HeaderMatchType {
    #[default]
    Exact,
    /// Implementation-specific; Istio hands it to Envoy as RE2.
    RegularExpression,
}

/// `headers[]` / `queryParams[]` of a match: a name and a value to compare.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderMatch {
    /// Defaults to Exact.
    #[serde(rename = "type")]
    pub type_: Option<HeaderMatchType>,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub value: String,
}

/// What a list of [`HeaderMatch`]es matches on: names compare case-insensitively for headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOn {
    Header,
    QueryParam,
}

/// A list of header (or query parameter) matches: at most 16, valid names and values, each
/// name once.
pub fn header_matches(at: &FieldPath, list: &[HeaderMatch], on: MatchOn, v: &mut Validator<'_>) {
    checks::max_items(at.clone(), list.len(), 16, v);
    let max_value = if on == MatchOn::Header { 4096 } else { 1024 };
    for (i, m) in list.iter().enumerate() {
        let at = at.index(i);
        v.check(at.key("name"), checks::header_name(&m.name));
        if m.value.is_empty() {
            v.required(at.key("value"), false);
        }
        checks::max_len(at.key("value"), &m.value, max_value, v);
        if m.type_ == Some(HeaderMatchType::RegularExpression) && !m.value.is_empty() {
            checks::regex(at.key("value"), &m.value, v);
        }
        if let Some(j) = list[..i].iter().position(|o| o.name == m.name) {
            v.error(
                at.key("name"),
                format!(
                    "{:?} is already matched by entry [{j}]; each name may appear once",
                    m.name
                ),
            );
        } else if on == MatchOn::Header
            && let Some(j) = list[..i]
                .iter()
                .position(|o| o.name.eq_ignore_ascii_case(&m.name))
        {
            v.warn(
                    at.key("name"),
                    format!(
                        "header names are case-insensitive: {:?} repeats entry [{j}], and only the first is used",
                        m.name
                    ),
                );
        }
    }
}

/// The filters GRPCRoute shares with HTTPRoute, as one `filters[]` entry holds them.
pub struct CommonFilters<'a> {
    pub request_header_modifier: Option<&'a HttpHeaderFilter>,
    pub response_header_modifier: Option<&'a HttpHeaderFilter>,
    pub request_mirror: Option<&'a HttpRequestMirrorFilter>,
    pub extension_ref: Option<&'a LocalObjectReference>,
}

impl CommonFilters<'_> {
    /// Checks a `filters[]` entry whose `type` is `type_name`: each typed field is set exactly
    /// when the type names it (the common fields, and `own`: the route kind's other fields as
    /// (field name, the type that uses it, whether it is set)), and the common fields' rules.
    pub fn validate(
        &self,
        at: &FieldPath,
        type_name: Option<&str>,
        own: &[(&str, &str, bool)],
        v: &mut Validator<'_>,
    ) {
        let common = [
            (
                "requestHeaderModifier",
                "RequestHeaderModifier",
                self.request_header_modifier.is_some(),
            ),
            (
                "responseHeaderModifier",
                "ResponseHeaderModifier",
                self.response_header_modifier.is_some(),
            ),
            (
                "requestMirror",
                "RequestMirror",
                self.request_mirror.is_some(),
            ),
            ("extensionRef", "ExtensionRef", self.extension_ref.is_some()),
        ];
        filter_fields(at, type_name, &[&common[..], own].concat(), v);
        if let Some(h) = self.request_header_modifier {
            h.validate(&at.key("requestHeaderModifier"), v);
        }
        if let Some(h) = self.response_header_modifier {
            h.validate(&at.key("responseHeaderModifier"), v);
        }
        if let Some(m) = self.request_mirror {
            m.validate(&at.key("requestMirror"), v);
        }
        if let Some(e) = self.extension_ref {
            e.validate(&at.key("extensionRef"), v);
        }
    }
}

/// A route's filters (of a rule or of one backend): at most 16, each valid, and the types in
/// `once` at most once. Returns each filter's type, for the route kind's own list rules.
pub fn filter_list<F: Validate>(
    at: &FieldPath,
    list: &[F],
    type_of: impl Fn(&F) -> Option<&'static str>,
    once: &[&str],
    v: &mut Validator<'_>,
) -> Vec<Option<&'static str>> {
    checks::max_items(at.clone(), list.len(), 16, v);
    for (i, f) in list.iter().enumerate() {
        f.validate(&at.index(i), v);
    }
    let types: Vec<Option<&'static str>> = list.iter().map(type_of).collect();
    no_repeats(at, &types, once, v);
    types
}

/// Checks that each filter field is set exactly when `type` names it. `fields` lists each
/// typed field as (field name, the type that uses it, whether it is set).
fn filter_fields(
    at: &FieldPath,
    type_name: Option<&str>,
    fields: &[(&str, &str, bool)],
    v: &mut Validator<'_>,
) {
    let Some(ty) = type_name else {
        v.required(at.key("type"), false);
        return;
    };
    for &(field, owner, set) in fields {
        if set && ty != owner {
            v.error(
                at.key(field),
                format!(
                    "{field} must not be set on a filter of type {ty} (it belongs to type {owner})"
                ),
            );
        }
        if !set && ty == owner {
            v.error(
                at.key(field),
                format!("a filter of type {ty} needs {field}"),
            );
        }
    }
}

/// Reports filter types that appear more than once in one list, for the types that must not.
fn no_repeats(at: &FieldPath, types: &[Option<&str>], once: &[&str], v: &mut Validator<'_>) {
    for (i, t) in types.iter().enumerate() {
        let Some(t) = t else { continue };
        if once.contains(t)
            && let Some(j) = types[..i].iter().position(|o| *o == Some(*t))
        {
            v.error(
                at.index(i).key("type"),
                format!("filter {t} is already given by filters[{j}]; it cannot be repeated"),
            );
        }
    }
}

/// `requestHeaderModifier` / `responseHeaderModifier`: headers to set, add and remove.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpHeaderFilter {
    #[serde(default)]
    pub set: Vec<HttpHeader>,
    #[serde(default)]
    pub add: Vec<HttpHeader>,
    #[serde(default)]
    pub remove: Vec<String>,
}

/// `{name, value}` of a header modifier.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpHeader {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub value: String,
}

impl Validate for HttpHeaderFilter {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        let mut seen: Vec<(&str, String)> = Vec::new();
        for (list, headers) in [("set", &self.set), ("add", &self.add)] {
            checks::max_items(at.key(list), headers.len(), 16, v);
            for (i, h) in headers.iter().enumerate() {
                let at = at.key(list).index(i);
                v.check(at.key("name"), checks::header_name(&h.name));
                if h.value.is_empty() {
                    v.required(at.key("value"), false);
                }
                checks::max_len(at.key("value"), &h.value, 4096, v);
                one_action(&at.key("name"), list, &h.name, &mut seen, v);
            }
        }
        checks::max_items(at.key("remove"), self.remove.len(), 16, v);
        for (i, name) in self.remove.iter().enumerate() {
            let at = at.key("remove").index(i);
            v.check(at.clone(), checks::header_name(name));
            one_action(&at, "remove", name, &mut seen, v);
        }
    }
}

/// One header name may be set, added or removed, but only once per modifier: a repeat within
/// one list is refused (the list is keyed by name), across lists it is only warned about.
fn one_action<'a>(
    at: &FieldPath,
    list: &'a str,
    name: &str,
    seen: &mut Vec<(&'a str, String)>,
    v: &mut Validator<'_>,
) {
    let lower = name.to_ascii_lowercase();
    match seen.iter().find(|(_, n)| *n == lower) {
        Some((other, _)) if *other == list => v.error(
            at.clone(),
            format!("header {name:?} is listed twice in {list}; each header may appear once"),
        ),
        Some((other, _)) => v.warn(
            at.clone(),
            format!(
                "header {name:?} is also in {other}: only one action per header name is allowed"
            ),
        ),
        None => seen.push((list, lower)),
    }
}

/// `requestMirror`: a copy of each request (or of a fraction of them) goes to a backend.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRequestMirrorFilter {
    pub backend_ref: Option<BackendObjectReference>,
    pub percent: Option<i32>,
    pub fraction: Option<Fraction>,
}

/// `fraction: {numerator, denominator}` (denominator defaults to 100).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Fraction {
    pub numerator: Option<i32>,
    pub denominator: Option<i32>,
}

impl Validate for HttpRequestMirrorFilter {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        match &self.backend_ref {
            Some(b) => b.validate(&at.key("backendRef"), v),
            None => v.required(at.key("backendRef"), false),
        }
        if let Some(p) = self.percent
            && !(0..=100).contains(&p)
        {
            v.error(at.key("percent"), format!("percent {p} must be in 0-100"));
        }
        if let Some(f) = &self.fraction {
            if self.percent.is_some() {
                v.error(
                    at.key("fraction"),
                    "give either percent or fraction, not both",
                );
            }
            fraction(&at.key("fraction"), f, v);
        }
    }
}

fn fraction(at: &FieldPath, f: &Fraction, v: &mut Validator<'_>) {
    let denominator = f.denominator.unwrap_or(100);
    if denominator < 1 {
        v.error(
            at.key("denominator"),
            format!("denominator {denominator} must be at least 1"),
        );
    }
    match f.numerator {
        None => v.required(at.key("numerator"), false),
        Some(n) if n < 0 => v.error(
            at.key("numerator"),
            format!("numerator {n} must not be negative"),
        ),
        Some(n) if n > denominator => v.error(
            at.key("numerator"),
            format!("numerator {n} is larger than the denominator {denominator}"),
        ),
        Some(_) => {}
    }
}

/// The scheme of a redirect's `Location`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    Http,
    Https,
}

/// `requestRedirect`: answer with a redirect instead of forwarding.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRequestRedirectFilter {
    pub scheme: Option<Scheme>,
    pub hostname: Option<String>,
    pub path: Option<HttpPathModifier>,
    pub port: Option<i32>,
    /// 301, 302 (the default), 303, 307 or 308.
    pub status_code: Option<i32>,
}

impl Validate for HttpRequestRedirectFilter {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        if let Some(h) = &self.hostname {
            v.check(at.key("hostname"), checks::hostname(h, false));
        }
        if let Some(p) = &self.path {
            p.validate(&at.key("path"), v);
        }
        if let Some(p) = self.port {
            v.check(at.key("port"), checks::port(p));
        }
        if let Some(code) = self.status_code
            && ![301, 302, 303, 307, 308].contains(&code)
        {
            v.error(
                    at.key("statusCode"),
                    format!("status code {code} is not a redirect code the API allows (301, 302, 303, 307, 308)"),
                );
        }
    }
}

/// `urlRewrite`: rewrite the host and path before forwarding.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpUrlRewriteFilter {
    pub hostname: Option<String>,
    pub path: Option<HttpPathModifier>,
}

impl Validate for HttpUrlRewriteFilter {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        if let Some(h) = &self.hostname {
            v.check(at.key("hostname"), checks::hostname(h, false));
        }
        if let Some(p) = &self.path {
            p.validate(&at.key("path"), v);
        }
    }
}

/// How a redirect or rewrite changes the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum PathModifierType {
    ReplaceFullPath,
    /// Replaces the part matched by the rule's (single) PathPrefix match.
    ReplacePrefixMatch,
}

/// `path: {type, replaceFullPath | replacePrefixMatch}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpPathModifier {
    #[serde(rename = "type")]
    pub type_: Option<PathModifierType>,
    pub replace_full_path: Option<String>,
    pub replace_prefix_match: Option<String>,
}

impl HttpPathModifier {
    /// Whether this replaces the prefix matched by the rule, which needs a PathPrefix match.
    pub fn replaces_prefix(&self) -> bool {
        self.type_ == Some(PathModifierType::ReplacePrefixMatch)
            && self.replace_prefix_match.is_some()
    }
}

impl Validate for HttpPathModifier {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        let ty = match self.type_ {
            Some(PathModifierType::ReplaceFullPath) => "ReplaceFullPath",
            Some(PathModifierType::ReplacePrefixMatch) => "ReplacePrefixMatch",
            None => {
                v.required(at.key("type"), false);
                return;
            }
        };
        let fields = [
            (
                "replaceFullPath",
                "ReplaceFullPath",
                self.replace_full_path.is_some(),
            ),
            (
                "replacePrefixMatch",
                "ReplacePrefixMatch",
                self.replace_prefix_match.is_some(),
            ),
        ];
        for (field, owner, set) in fields {
            if set && ty != owner {
                v.error(
                    at.key(field),
                    format!("{field} needs type: {owner} (type is {ty})"),
                );
            }
            if !set && ty == owner {
                v.error(at.key(field), format!("type {ty} needs {field}"));
            }
        }
        for (field, value) in [
            ("replaceFullPath", &self.replace_full_path),
            ("replacePrefixMatch", &self.replace_prefix_match),
        ] {
            if let Some(value) = value {
                checks::max_len(at.key(field), value, 1024, v);
            }
        }
    }
}

/// `cors`: answer cross-origin requests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpCorsFilter {
    #[serde(default)]
    pub allow_origins: Vec<String>,
    pub allow_credentials: Option<bool>,
    #[serde(default)]
    pub allow_methods: Vec<String>,
    #[serde(default)]
    pub allow_headers: Vec<String>,
    #[serde(default)]
    pub expose_headers: Vec<String>,
    /// Seconds; defaults to 5.
    pub max_age: Option<i32>,
}

static ORIGIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(^\*$)|(^([a-zA-Z][a-zA-Z0-9+\-.]+):\/\/([^:/?#]+)(:([0-9]{1,5}))?$)")
        .expect("built-in pattern compiles")
});

const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "*",
];

impl Validate for HttpCorsFilter {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        let lists: [(&str, &Vec<String>, usize); 4] = [
            ("allowOrigins", &self.allow_origins, 64),
            ("allowMethods", &self.allow_methods, 9),
            ("allowHeaders", &self.allow_headers, 64),
            ("exposeHeaders", &self.expose_headers, 64),
        ];
        for (field, list, max) in lists {
            let at = at.key(field);
            checks::max_items(at.clone(), list.len(), max, v);
            if field != "exposeHeaders" && list.len() > 1 && list.iter().any(|x| x == "*") {
                v.error(
                    at.clone(),
                    "'*' allows everything and cannot be combined with other entries",
                );
            }
            for (i, item) in list.iter().enumerate() {
                if list[..i].contains(item) {
                    v.error(at.index(i), format!("{item:?} is listed twice"));
                }
                cors_item(&at.index(i), field, item, v);
            }
        }
        if let Some(age) = self.max_age
            && age < 1
        {
            v.error(
                at.key("maxAge"),
                format!("maxAge {age} must be at least 1 (seconds)"),
            );
        }
    }
}

fn cors_item(at: &FieldPath, field: &str, item: &str, v: &mut Validator<'_>) {
    match field {
        "allowOrigins" if item.len() > 253 || !ORIGIN.is_match(item) => v.error(
            at.clone(),
            format!("invalid origin {item:?}: write scheme://host[:port] (e.g. https://*.example.com) or '*'"),
        ),
        "allowMethods" if !METHODS.contains(&item) => v.error(
            at.clone(),
            format!("unknown method {item:?} (use one of {})", METHODS.join(", ")),
        ),
        "allowHeaders" | "exposeHeaders" => v.check(at.clone(), checks::header_name(item)),
        _ => {}
    }
}

/// The protocol of an external authorization service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ExternalAuthProtocol {
    #[serde(rename = "HTTP")]
    Http,
    #[serde(rename = "GRPC")]
    Grpc,
}

/// `externalAuth` (experimental): ask an authorization service before forwarding.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpExternalAuthFilter {
    pub protocol: Option<ExternalAuthProtocol>,
    pub backend_ref: Option<BackendObjectReference>,
    pub grpc: Option<GrpcAuthConfig>,
    pub http: Option<HttpAuthConfig>,
    pub forward_body: Option<ForwardBodyConfig>,
}

/// `grpc` settings of an external auth filter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcAuthConfig {
    #[serde(default)]
    pub allowed_headers: Vec<String>,
}

/// `http` settings of an external auth filter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpAuthConfig {
    pub path: Option<String>,
    #[serde(default)]
    pub allowed_headers: Vec<String>,
    #[serde(default)]
    pub allowed_response_headers: Vec<String>,
}

/// `forwardBody: {maxSize}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ForwardBodyConfig {
    pub max_size: Option<i32>,
}

impl Validate for HttpExternalAuthFilter {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        if let Some(p) = self.protocol {
            let (name, own, own_set, other, other_set) = match p {
                ExternalAuthProtocol::Http => (
                    "HTTP",
                    "http",
                    self.http.is_some(),
                    "grpc",
                    self.grpc.is_some(),
                ),
                ExternalAuthProtocol::Grpc => (
                    "GRPC",
                    "grpc",
                    self.grpc.is_some(),
                    "http",
                    self.http.is_some(),
                ),
            };
            if !own_set {
                v.error(
                    at.key(own),
                    format!("protocol {name} needs {own} settings (an empty {own}: {{}} will do)"),
                );
            }
            if other_set {
                v.error(
                    at.key(other),
                    format!("{other} settings do not apply to protocol {name}"),
                );
            }
        } else {
            v.required(at.key("protocol"), false);
        }
        match &self.backend_ref {
            Some(b) => b.validate(&at.key("backendRef"), v),
            None => v.required(at.key("backendRef"), false),
        }
        if let Some(path) = self.http.as_ref().and_then(|h| h.path.as_ref())
            && !path.is_empty()
            && !PATH_CHARS.is_match(path)
        {
            v.error(
                at.key("http").key("path"),
                format!("invalid path {path:?}: use URL path characters only"),
            );
        }
        if let Some(size) = self.forward_body.as_ref().and_then(|f| f.max_size)
            && size < 0
        {
            v.error(
                at.key("forwardBody").key("maxSize"),
                "maxSize must not be negative",
            );
        }
    }
}

/// The characters a URL path may contain (RFC 3986), as the schema checks path values.
pub static PATH_CHARS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$")
        .expect("built-in pattern compiles")
});

/// The kind of session persistence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SessionPersistenceType {
    Cookie,
    Header,
}

/// Whether a session cookie outlives the browser session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum CookieLifetimeType {
    Permanent,
    Session,
}

/// `sessionPersistence` of a rule (experimental): keep a client on one backend.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SessionPersistence {
    pub session_name: Option<String>,
    pub absolute_timeout: Option<GatewayDuration>,
    pub idle_timeout: Option<GatewayDuration>,
    #[serde(rename = "type")]
    pub type_: Option<SessionPersistenceType>,
    pub cookie_config: Option<CookieConfig>,
}

/// `cookieConfig: {lifetimeType}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CookieConfig {
    pub lifetime_type: Option<CookieLifetimeType>,
}

impl Validate for SessionPersistence {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        if let Some(name) = &self.session_name {
            checks::max_len(at.key("sessionName"), name, 128, v);
        }
        checks::duration(at.key("absoluteTimeout"), self.absolute_timeout.as_ref(), v);
        checks::duration(at.key("idleTimeout"), self.idle_timeout.as_ref(), v);
        let permanent = self.cookie_config.as_ref().and_then(|c| c.lifetime_type)
            == Some(CookieLifetimeType::Permanent);
        if permanent && self.absolute_timeout.is_none() {
            v.error(
                at.key("absoluteTimeout"),
                "a Permanent cookie needs absoluteTimeout (its lifetime, e.g. 24h)",
            );
        }
    }
}
