//! The Gateway API's `Gateway` (listeners, addresses, infrastructure) and `GatewayClass`, with
//! the rules of their `gateway.networking.k8s.io` CRD schemas. The child modules hold what
//! every Gateway API kind shares.

pub mod checks;
pub mod refs;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::LazyLock;

use regex::Regex;
use serde::Deserialize;

use self::checks::GATEWAY_GROUP;
use self::refs::{LabelSelector, ObjectReference, SecretObjectReference};
use crate::path::FieldPath;
use crate::validate::{Validate, Validator};

/// `Gateway.spec` (`gateway.networking.k8s.io`): a class of proxy, and the listeners it opens.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Gateway {
    #[serde(default)]
    pub gateway_class_name: String,
    #[serde(default)]
    pub listeners: Vec<Listener>,
    #[serde(default)]
    pub addresses: Vec<GatewaySpecAddress>,
    pub infrastructure: Option<GatewayInfrastructure>,
    /// Which ListenerSets may attach (experimental).
    pub allowed_listeners: Option<AllowedListeners>,
    /// Gateway-wide TLS: client certificate validation, the certificate to present to backends.
    pub tls: Option<GatewayTlsConfig>,
    /// The older (v1.2 experimental) place of the backend client certificate.
    #[serde(rename = "backendTLS")]
    pub backend_tls: Option<GatewayBackendTls>,
    /// Makes this a default Gateway for routes of a scope (experimental).
    pub default_scope: Option<String>,
}

/// `listeners[]`: a port, a protocol and optionally a hostname the Gateway accepts traffic on.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Listener {
    #[serde(default)]
    pub name: String,
    pub hostname: Option<String>,
    pub port: Option<i32>,
    /// HTTP, HTTPS, TLS, TCP, UDP, Istio's HBONE, or a domain-prefixed custom protocol.
    #[serde(default)]
    pub protocol: String,
    pub tls: Option<ListenerTlsConfig>,
    pub allowed_routes: Option<AllowedRoutes>,
}

/// How a listener handles TLS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum TlsMode {
    /// The Gateway terminates TLS with the referenced certificate.
    #[default]
    Terminate,
    /// The TLS stream is forwarded as is, routed by SNI.
    Passthrough,
}

/// `listeners[].tls`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListenerTlsConfig {
    /// Defaults to Terminate.
    pub mode: Option<TlsMode>,
    #[serde(default)]
    pub certificate_refs: Vec<SecretObjectReference>,
    /// Implementation options, e.g. Istio's `gateway.istio.io/tls-terminate-mode: MUTUAL`.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Client certificate validation (v1.1–v1.2 experimental; later moved to `spec.tls`).
    pub frontend_validation: Option<FrontendTlsValidation>,
}

/// Whether a client certificate is required.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum FrontendValidationMode {
    #[default]
    AllowValidOnly,
    AllowInsecureFallback,
}

/// Client certificate validation: the CA bundles to trust.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FrontendTlsValidation {
    #[serde(default)]
    pub ca_certificate_refs: Vec<ObjectReference>,
    pub mode: Option<FrontendValidationMode>,
}

/// `allowedRoutes`: the kinds of routes, and the namespaces they may come from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AllowedRoutes {
    pub namespaces: Option<RouteNamespaces>,
    #[serde(default)]
    pub kinds: Vec<RouteGroupKind>,
}

/// Where attached routes (or ListenerSets) may live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum FromNamespaces {
    All,
    Selector,
    /// The default for routes.
    #[default]
    Same,
    /// Only for `allowedListeners`: none at all.
    None,
}

/// `namespaces: {from, selector}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteNamespaces {
    pub from: Option<FromNamespaces>,
    pub selector: Option<LabelSelector>,
}

/// `kinds[]`: a route kind a listener accepts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteGroupKind {
    /// Defaults to `gateway.networking.k8s.io`.
    pub group: Option<String>,
    #[serde(default)]
    pub kind: String,
}

/// `addresses[]`: an address requested for the Gateway.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewaySpecAddress {
    /// IPAddress (the default), Hostname, or a domain-prefixed custom type.
    #[serde(rename = "type")]
    pub type_: Option<String>,
    pub value: Option<String>,
}

/// `infrastructure`: labels and annotations for what the Gateway's deployment creates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewayInfrastructure {
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub parameters_ref: Option<LocalParametersReference>,
}

/// `infrastructure.parametersRef`: a same-namespace object of implementation parameters
/// (for Istio, a ConfigMap).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalParametersReference {
    pub group: Option<String>,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
}

/// `allowedListeners`: which ListenerSets may add listeners to this Gateway.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AllowedListeners {
    pub namespaces: Option<RouteNamespaces>,
}

/// `spec.tls`: Gateway-wide TLS settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewayTlsConfig {
    pub backend: Option<GatewayBackendTls>,
    pub frontend: Option<FrontendTlsConfig>,
}

/// The client certificate the Gateway presents to backends.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewayBackendTls {
    pub client_certificate_ref: Option<SecretObjectReference>,
}

/// `tls.frontend`: client certificate validation, by default and per port.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FrontendTlsConfig {
    pub default: Option<TlsConfig>,
    #[serde(default)]
    pub per_port: Vec<TlsPortConfig>,
}

/// `{validation: ...}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsConfig {
    pub validation: Option<FrontendTlsValidation>,
}

/// `perPort[]`: the client validation of the HTTPS listeners of one port.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsPortConfig {
    pub port: Option<i32>,
    pub tls: Option<TlsConfig>,
}

/// `GatewayClass.spec` (cluster-scoped): the controller that runs Gateways of this class.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewayClass {
    /// `istio.io/gateway-controller` for Istio.
    #[serde(default)]
    pub controller_name: String,
    pub parameters_ref: Option<ParametersReference>,
    pub description: Option<String>,
}

/// `parametersRef` of a GatewayClass: an object of controller parameters, anywhere.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ParametersReference {
    pub group: Option<String>,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    pub namespace: Option<String>,
}

static PROTOCOL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$|[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/[A-Za-z0-9]+$")
        .expect("built-in pattern compiles")
});

/// Route kinds Istio can attach to a listener.
const ROUTE_KINDS: [&str; 4] = ["HTTPRoute", "GRPCRoute", "TCPRoute", "TLSRoute"];

impl Listener {
    fn protocol_is(&self, names: &[&str]) -> bool {
        names.iter().any(|n| self.protocol.eq_ignore_ascii_case(n))
    }
}

impl Validate for Gateway {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        v.required(
            at.key("gatewayClassName"),
            !self.gateway_class_name.is_empty(),
        );
        checks::max_len(at.key("gatewayClassName"), &self.gateway_class_name, 253, v);
        listeners(&at.key("listeners"), &self.listeners, v);
        addresses(&at.key("addresses"), &self.addresses, v);
        if let Some(infra) = &self.infrastructure {
            infrastructure(&at.key("infrastructure"), infra, v);
        }
        if let Some(al) = &self.allowed_listeners
            && let Some(ns) = &al.namespaces
        {
            namespaces(&at.key("allowedListeners").key("namespaces"), ns, true, v);
        }
        if let Some(tls) = &self.tls {
            gateway_tls(&at.key("tls"), tls, v);
        }
        if let Some(b) = self
            .backend_tls
            .as_ref()
            .and_then(|b| b.client_certificate_ref.as_ref())
        {
            b.validate(&at.key("backendTLS").key("clientCertificateRef"), v);
        }
    }
}

fn listeners(at: &FieldPath, list: &[Listener], v: &mut Validator<'_>) {
    if list.is_empty() {
        v.error(at.clone(), "a Gateway needs at least one listener");
    }
    checks::max_items(at.clone(), list.len(), 64, v);
    for (i, l) in list.iter().enumerate() {
        listener(&at.index(i), l, v);
        if let Some(j) = list[..i].iter().position(|o| o.name == l.name) {
            v.error(
                at.index(i).key("name"),
                format!(
                    "listener name {:?} is already used by listeners[{j}]; names must be unique",
                    l.name
                ),
            );
        }
        let same =
            |o: &Listener| o.port == l.port && o.protocol == l.protocol && o.hostname == l.hostname;
        if let Some(j) = list[..i].iter().position(same) {
            v.error(
                at.index(i),
                format!(
                    "listeners[{j}] has the same port, protocol and hostname; each listener needs a distinct combination"
                ),
            );
        }
    }
}

fn listener(at: &FieldPath, l: &Listener, v: &mut Validator<'_>) {
    v.required(at.key("name"), !l.name.is_empty());
    if !l.name.is_empty() {
        v.check(at.key("name"), checks::section_name(&l.name));
    }
    match l.port {
        Some(p) => v.check(at.key("port"), checks::port(p)),
        None => v.required(at.key("port"), false),
    }
    if l.protocol.is_empty() {
        v.required(at.key("protocol"), false);
    } else if l.protocol.len() > 255 || !PROTOCOL.is_match(&l.protocol) {
        v.error(
            at.key("protocol"),
            format!(
                "invalid protocol {:?}: use HTTP, HTTPS, TLS, TCP, UDP, HBONE or a domain-prefixed name such as example.com/proto",
                l.protocol
            ),
        );
    }
    if let Some(h) = &l.hostname {
        if l.protocol_is(&["TCP", "UDP"]) && !h.is_empty() {
            v.error(
                at.key("hostname"),
                format!("hostname must not be set for protocol {}: TCP and UDP cannot match on a hostname", l.protocol),
            );
        } else {
            v.check(at.key("hostname"), checks::hostname(h, true));
            checks::warn_ip_hostname(at.key("hostname"), h, v);
        }
    }
    listener_tls(at, l, v);
    if let Some(ar) = &l.allowed_routes {
        allowed_routes(&at.key("allowedRoutes"), ar, v);
    }
}

fn listener_tls(at: &FieldPath, l: &Listener, v: &mut Validator<'_>) {
    let Some(tls) = &l.tls else {
        if l.protocol_is(&["HTTPS", "TLS"]) {
            v.error(
                at.key("tls"),
                format!(
                    "protocol {} needs tls (e.g. tls: {{mode: Terminate, certificateRefs: [{{name: my-cert}}]}})",
                    l.protocol
                ),
            );
        }
        return;
    };
    let at = at.key("tls");
    if l.protocol_is(&["HTTP", "TCP", "UDP"]) {
        v.error(
            at.clone(),
            format!(
                "tls must not be set for protocol {} (use HTTPS or TLS for a TLS listener)",
                l.protocol
            ),
        );
    }
    let mode = tls.mode.unwrap_or_default();
    if mode == TlsMode::Passthrough && l.protocol_is(&["HTTPS"]) {
        v.error(
            at.key("mode"),
            "protocol HTTPS terminates TLS: mode must be Terminate (use protocol TLS for Passthrough)",
        );
    }
    if mode == TlsMode::Terminate {
        if tls.certificate_refs.is_empty() && tls.options.is_empty() {
            v.error(
                at.key("certificateRefs"),
                "mode Terminate needs a certificate: give certificateRefs (e.g. [{name: my-cert}])",
            );
        } else if tls.certificate_refs.len() > 1 {
            v.warn(
                at.key("certificateRefs"),
                "Istio terminates TLS with exactly one certificateRef; this listener will not be programmed",
            );
        }
    }
    checks::max_items(at.key("certificateRefs"), tls.certificate_refs.len(), 64, v);
    for (i, c) in tls.certificate_refs.iter().enumerate() {
        c.validate(&at.key("certificateRefs").index(i), v);
    }
    checks::annotation_map(&at.key("options"), &tls.options, 16, v);
    if let Some(fv) = &tls.frontend_validation {
        frontend_validation(&at.key("frontendValidation"), fv, v);
    }
}

fn frontend_validation(at: &FieldPath, fv: &FrontendTlsValidation, v: &mut Validator<'_>) {
    let refs = at.key("caCertificateRefs");
    if fv.ca_certificate_refs.is_empty() {
        v.error(
            refs.clone(),
            "needs at least one CA certificate reference (e.g. a ConfigMap with ca.crt)",
        );
    }
    checks::max_items(refs.clone(), fv.ca_certificate_refs.len(), 8, v);
    for (i, r) in fv.ca_certificate_refs.iter().enumerate() {
        r.validate(&refs.index(i), v);
    }
}

fn allowed_routes(at: &FieldPath, ar: &AllowedRoutes, v: &mut Validator<'_>) {
    if let Some(ns) = &ar.namespaces {
        namespaces(&at.key("namespaces"), ns, false, v);
    }
    checks::max_items(at.key("kinds"), ar.kinds.len(), 8, v);
    for (i, k) in ar.kinds.iter().enumerate() {
        let at = at.key("kinds").index(i);
        if let Some(g) = &k.group {
            v.check(at.key("group"), checks::group(g));
        }
        v.check(at.key("kind"), checks::kind(&k.kind));
        let group = k.group.as_deref().unwrap_or(GATEWAY_GROUP);
        if group == GATEWAY_GROUP && !k.kind.is_empty() && !ROUTE_KINDS.contains(&k.kind.as_str()) {
            v.warn(
                at.key("kind"),
                format!(
                    "Istio does not attach routes of kind {:?} (it supports {}); the listener will report InvalidRouteKinds",
                    k.kind,
                    ROUTE_KINDS.join(", ")
                ),
            );
        }
    }
}

fn namespaces(at: &FieldPath, ns: &RouteNamespaces, listener_sets: bool, v: &mut Validator<'_>) {
    let from = ns.from.unwrap_or(if listener_sets {
        FromNamespaces::None
    } else {
        FromNamespaces::Same
    });
    if from == FromNamespaces::None && !listener_sets {
        v.error(
            at.key("from"),
            "from: None is not allowed for routes (use All, Selector or Same)",
        );
    }
    if let Some(sel) = &ns.selector {
        sel.validate(&at.key("selector"), v);
    } else if from == FromNamespaces::Selector {
        v.warn(
            at.key("selector"),
            "from: Selector without a selector matches no namespace: nothing can attach",
        );
    }
}

fn addresses(at: &FieldPath, list: &[GatewaySpecAddress], v: &mut Validator<'_>) {
    checks::max_items(at.clone(), list.len(), 16, v);
    for (i, a) in list.iter().enumerate() {
        let at = at.index(i);
        let ty = a.type_.as_deref().unwrap_or("IPAddress");
        if !ADDRESS_TYPE.is_match(ty) || ty.len() > 253 {
            v.error(
                at.key("type"),
                format!("invalid address type {ty:?}: use IPAddress, Hostname or a domain-prefixed type such as example.com/my-type"),
            );
        }
        let Some(value) = &a.value else { continue };
        checks::max_len(at.key("value"), value, 253, v);
        match ty {
            "IPAddress" if value.parse::<IpAddr>().is_err() => v.error(
                at.key("value"),
                format!("{value:?} is not an IP address (type IPAddress); use type: Hostname for a DNS name"),
            ),
            "Hostname" => v.check(at.key("value"), checks::hostname(value, true)),
            _ => {}
        }
        let dup = list[..i].iter().any(|o| {
            o.value.as_ref() == Some(value) && o.type_.as_deref().unwrap_or("IPAddress") == ty
        });
        if dup && (ty == "IPAddress" || ty == "Hostname") {
            v.error(
                at.key("value"),
                format!("{ty} {value:?} is listed twice; addresses must be unique"),
            );
        }
    }
}

static ADDRESS_TYPE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^Hostname|IPAddress|NamedAddress|[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/[A-Za-z0-9\/\-._~%!$&'()*+,;=:]+$")
        .expect("built-in pattern compiles")
});

fn infrastructure(at: &FieldPath, infra: &GatewayInfrastructure, v: &mut Validator<'_>) {
    checks::label_map(&at.key("labels"), &infra.labels, 8, v);
    checks::annotation_map(&at.key("annotations"), &infra.annotations, 16, v);
    if let Some(p) = &infra.parameters_ref {
        let at = at.key("parametersRef");
        group_required(&at, p.group.as_deref(), v);
        v.check(at.key("kind"), checks::kind(&p.kind));
        v.check(at.key("name"), checks::object_name(&p.name));
    }
}

fn group_required(at: &FieldPath, group: Option<&str>, v: &mut Validator<'_>) {
    match group {
        Some(g) => v.check(at.key("group"), checks::group(g)),
        None => v.error(
            at.key("group"),
            "required field is missing (write group: \"\" for the core group, e.g. a ConfigMap)",
        ),
    }
}

fn gateway_tls(at: &FieldPath, tls: &GatewayTlsConfig, v: &mut Validator<'_>) {
    if let Some(c) = tls
        .backend
        .as_ref()
        .and_then(|b| b.client_certificate_ref.as_ref())
    {
        c.validate(&at.key("backend").key("clientCertificateRef"), v);
    }
    let Some(front) = &tls.frontend else { return };
    let at = at.key("frontend");
    match front.default.as_ref() {
        Some(d) => {
            if let Some(fv) = &d.validation {
                frontend_validation(&at.key("default").key("validation"), fv, v);
            }
        }
        None => v.required(at.key("default"), false),
    }
    checks::max_items(at.key("perPort"), front.per_port.len(), 64, v);
    for (i, pp) in front.per_port.iter().enumerate() {
        let at = at.key("perPort").index(i);
        match pp.port {
            Some(p) => v.check(at.key("port"), checks::port(p)),
            None => v.required(at.key("port"), false),
        }
        if pp.port.is_some() && front.per_port[..i].iter().any(|o| o.port == pp.port) {
            v.error(
                at.key("port"),
                "this port already has a TLS configuration; ports must be unique",
            );
        }
        match pp.tls.as_ref().and_then(|t| t.validation.as_ref()) {
            Some(fv) => frontend_validation(&at.key("tls").key("validation"), fv, v),
            None if pp.tls.is_none() => v.required(at.key("tls"), false),
            None => {}
        }
    }
}

impl Validate for GatewayClass {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        let name = &self.controller_name;
        if name.is_empty() {
            v.required(at.key("controllerName"), false);
        } else if !checks::domain_prefixed_path(name) {
            v.error(
                at.key("controllerName"),
                format!("invalid controllerName {name:?}: a domain-prefixed path such as istio.io/gateway-controller"),
            );
        }
        if let Some(d) = &self.description {
            checks::max_len(at.key("description"), d, 64, v);
        }
        if let Some(p) = &self.parameters_ref {
            let at = at.key("parametersRef");
            group_required(&at, p.group.as_deref(), v);
            v.check(at.key("kind"), checks::kind(&p.kind));
            v.check(at.key("name"), checks::object_name(&p.name));
            if let Some(ns) = &p.namespace {
                v.check(at.key("namespace"), checks::namespace(ns));
            }
        }
    }
}

#[cfg(test)]
mod tests;
