//! References between Gateway API objects: a route's `parentRefs`, `backendRefs`, secret and
//! object references, and label selectors, with their schema rules. Shared by every kind of
//! the `gateway.networking.k8s.io` group.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::checks::{self, GATEWAY_GROUP};
use crate::path::FieldPath;
use crate::validate::{self, Validate, Validator};

/// `parentRefs[]`: the Gateway (or, for the mesh, the Service) a route attaches to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ParentReference {
    /// Defaults to `gateway.networking.k8s.io`; `""` is the core group (for a Service).
    pub group: Option<String>,
    /// Defaults to `Gateway`.
    pub kind: Option<String>,
    /// Defaults to the route's namespace.
    pub namespace: Option<String>,
    #[serde(default)]
    pub name: String,
    /// A listener name of a Gateway, a port name of a Service.
    pub section_name: Option<String>,
    pub port: Option<i32>,
}

impl ParentReference {
    /// The group with its default applied.
    pub fn group(&self) -> &str {
        self.group.as_deref().unwrap_or(GATEWAY_GROUP)
    }

    /// The kind with its default applied.
    pub fn kind(&self) -> &str {
        self.kind.as_deref().unwrap_or("Gateway")
    }

    /// The parent object this reference names, the way the schema compares references.
    fn target(&self) -> (&str, &str, &str, &str) {
        let ns = self.namespace.as_deref().unwrap_or("");
        (self.group(), self.kind(), ns, &self.name)
    }

    fn section(&self) -> Option<&str> {
        self.section_name.as_deref().filter(|s| !s.is_empty())
    }

    fn port_set(&self) -> Option<i32> {
        self.port.filter(|p| *p != 0)
    }
}

impl Validate for ParentReference {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        self.ref_fields().validate(at, v);
        if let Some(s) = &self.section_name {
            v.check(at.key("sectionName"), checks::section_name(s));
        }
        if let Some(p) = self.port {
            v.check(at.key("port"), checks::port(p));
        }
    }
}

/// The `parentRefs` list of any route: at most 32, each valid, and references to the same
/// parent told apart by `sectionName` or `port`.
pub fn parent_refs(at: &FieldPath, refs: &[ParentReference], v: &mut Validator<'_>) {
    checks::max_items(at.clone(), refs.len(), 32, v);
    for (i, r) in refs.iter().enumerate() {
        r.validate(&at.index(i), v);
    }
    for (i, r) in refs.iter().enumerate() {
        for (j, first) in refs[..i].iter().enumerate() {
            if first.target() != r.target() {
                continue;
            }
            let (group, kind, _, name) = r.target();
            if first.section().is_some() != r.section().is_some()
                || first.port_set().is_some() != r.port_set().is_some()
            {
                v.error(
                    at.index(i),
                    format!(
                        "parentRefs[{j}] and this entry both name {kind} {name:?} (group {group:?}): when a parent is referenced more than once, every reference must set the same fields among sectionName and port"
                    ),
                );
                break;
            }
            if first.section() == r.section() && first.port_set() == r.port_set() {
                v.error(
                    at.index(i),
                    format!(
                        "duplicate of parentRefs[{j}] ({kind} {name:?}): references to the same parent must differ in sectionName or port"
                    ),
                );
                break;
            }
        }
    }
}

/// A reference to a backend (`backendRef` of a mirror or external auth filter): by default a
/// core Service, which then needs a port.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendObjectReference {
    /// Defaults to `""`, the core group.
    pub group: Option<String>,
    /// Defaults to `Service`.
    pub kind: Option<String>,
    #[serde(default)]
    pub name: String,
    pub namespace: Option<String>,
    pub port: Option<i32>,
}

/// The fields of a reference by name (parent, backend and secret references): an optional
/// group and kind, a required name of at most 253 characters, an optional namespace.
pub struct RefFields<'a> {
    pub group: Option<&'a str>,
    pub kind: Option<&'a str>,
    pub name: &'a str,
    pub namespace: Option<&'a str>,
}

impl RefFields<'_> {
    /// Checks the fields of the reference at `at`.
    pub fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        if let Some(g) = self.group {
            v.check(at.key("group"), checks::group(g));
        }
        if let Some(k) = self.kind {
            v.check(at.key("kind"), checks::kind(k));
        }
        v.required(at.key("name"), !self.name.is_empty());
        checks::max_len(at.key("name"), self.name, 253, v);
        if let Some(ns) = self.namespace {
            v.check(at.key("namespace"), checks::namespace(ns));
        }
    }
}

/// Rules of any backend reference: valid names, and a port for a Service.
fn backend_fields(at: &FieldPath, r: &RefFields<'_>, port: Option<i32>, v: &mut Validator<'_>) {
    r.validate(at, v);
    match port {
        Some(p) => v.check(at.key("port"), checks::port(p)),
        None if r.group.unwrap_or("").is_empty() && r.kind.unwrap_or("Service") == "Service" => {
            v.error(
                at.key("port"),
                format!(
                    "a backend that is a Service needs a port (the Service port of {:?}, e.g. port: 80)",
                    r.name
                ),
            );
        }
        None => {}
    }
}

/// `ref_fields()` for the reference types, which all spell group, kind, name and namespace
/// alike.
macro_rules! ref_fields_of {
    ($($ty:ty),+) => {$(
        impl $ty {
            /// The fields the reference rules check.
            pub fn ref_fields(&self) -> RefFields<'_> {
                RefFields {
                    group: self.group.as_deref(),
                    kind: self.kind.as_deref(),
                    name: &self.name,
                    namespace: self.namespace.as_deref(),
                }
            }
        }
    )+};
}

ref_fields_of!(
    ParentReference,
    SecretObjectReference,
    BackendObjectReference,
    BackendRef,
    crate::gateway_api::http_route::HttpBackendRef,
    crate::gateway_api::grpc_route::GrpcBackendRef
);

impl Validate for BackendObjectReference {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        backend_fields(at, &self.ref_fields(), self.port, v);
    }
}

/// Rules of a weighted backend of a route rule (`backendRefs[]` of any route kind).
pub fn weighted_backend(
    at: &FieldPath,
    r: &RefFields<'_>,
    port: Option<i32>,
    weight: Option<i32>,
    v: &mut Validator<'_>,
) {
    backend_fields(at, r, port, v);
    self::weight(at.key("weight"), weight, v);
}

/// A backend weight: 0–1000000 (not a percentage; weights need not sum to anything).
pub fn weight(at: FieldPath, weight: Option<i32>, v: &mut Validator<'_>) {
    if let Some(w) = weight
        && !(0..=1_000_000).contains(&w)
    {
        v.error(at, format!("weight {w} must be in 0-1000000"));
    }
}

/// `backendRefs[]` of a TCPRoute or TLSRoute: a weighted backend.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendRef {
    pub group: Option<String>,
    pub kind: Option<String>,
    #[serde(default)]
    pub name: String,
    pub namespace: Option<String>,
    pub port: Option<i32>,
    /// Defaults to 1.
    pub weight: Option<i32>,
}

impl Validate for BackendRef {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        weighted_backend(at, &self.ref_fields(), self.port, self.weight, v);
    }
}

/// A reference to a certificate (`certificateRefs[]`, `clientCertificateRef`): by default a
/// core Secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretObjectReference {
    /// Defaults to `""`, the core group.
    pub group: Option<String>,
    /// Defaults to `Secret`.
    pub kind: Option<String>,
    #[serde(default)]
    pub name: String,
    pub namespace: Option<String>,
}

impl Validate for SecretObjectReference {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        self.ref_fields().validate(at, v);
    }
}

/// A reference to an object of the same namespace (a filter's `extensionRef`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalObjectReference {
    /// Empty or absent for the core group.
    pub group: Option<String>,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
}

impl Validate for LocalObjectReference {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        if let Some(g) = &self.group {
            v.check(at.key("group"), checks::group(g));
        }
        v.check(at.key("kind"), checks::kind(&self.kind));
        v.check(at.key("name"), checks::object_name(&self.name));
    }
}

/// A reference to an object by group, kind, name and namespace (`caCertificateRefs[]`),
/// where the group must be written (`""` for the core group).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectReference {
    pub group: Option<String>,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    pub namespace: Option<String>,
}

impl Validate for ObjectReference {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        match &self.group {
            Some(g) => v.check(at.key("group"), checks::group(g)),
            None => v.error(
                at.key("group"),
                "required field is missing (write group: \"\" for the core group, e.g. a ConfigMap)",
            ),
        }
        v.check(at.key("kind"), checks::kind(&self.kind));
        v.check(at.key("name"), checks::object_name(&self.name));
        if let Some(ns) = &self.namespace {
            v.check(at.key("namespace"), checks::namespace(ns));
        }
    }
}

/// A Kubernetes label selector (`allowedRoutes.namespaces.selector`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// One `matchExpressions[]` entry: `key`, `operator` (In, NotIn, Exists, DoesNotExist), `values`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelectorRequirement {
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub operator: String,
    #[serde(default)]
    pub values: Vec<String>,
}

impl Validate for LabelSelector {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        validate::labels(&at.key("matchLabels"), &self.match_labels, v);
        for (i, e) in self.match_expressions.iter().enumerate() {
            let at = at.key("matchExpressions").index(i);
            v.check(at.key("key"), validate::label_key(&e.key));
            match e.operator.as_str() {
                "In" | "NotIn" if e.values.is_empty() => v.error(
                    at.key("values"),
                    format!("operator {} needs at least one value", e.operator),
                ),
                "Exists" | "DoesNotExist" if !e.values.is_empty() => v.error(
                    at.key("values"),
                    format!("operator {} takes no values", e.operator),
                ),
                "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
                other => v.error(
                    at.key("operator"),
                    format!("unknown operator {other:?} (use In, NotIn, Exists or DoesNotExist)"),
                ),
            }
            for (j, value) in e.values.iter().enumerate() {
                v.check(at.key("values").index(j), validate::label_value(value));
            }
        }
    }
}
