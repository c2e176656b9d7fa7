//! The kinds Weft understands: their API groups and versions, names and short names, and
//! the typed model each decodes into. This table is the one place a new kind is added.

use std::fmt;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::path::FieldPath;
use crate::validate::{Validate, Validator};

/// Whether objects of a kind live in a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Namespaced,
    Cluster,
}

/// What is known of one kind.
#[derive(Debug)]
pub struct KindInfo {
    pub kind: Kind,
    /// Empty for Kubernetes' core group (`v1`).
    pub group: &'static str,
    /// As written in `kind:`.
    pub name: &'static str,
    /// Served versions, newest first.
    pub versions: &'static [&'static str],
    pub plural: &'static str,
    pub short_names: &'static [&'static str],
    pub scope: Scope,
}

impl KindInfo {
    /// `networking.istio.io/v1`, or `v1` for the core group.
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{version}", self.group)
        }
    }

    /// The lowercase singular, as kubectl prints it (`virtualservice`).
    pub fn singular(&self) -> String {
        self.name.to_ascii_lowercase()
    }
}

macro_rules! kinds {
    (
        istio { $( $v:ident => $ty:ty, $group:literal, $name:literal, [$($ver:literal),+], $plural:literal, [$($short:literal),*], $scope:ident; )+ }
        kube { $( $kv:ident => $kty:ty, $kgroup:literal, $kname:literal, [$($kver:literal),+], $kplural:literal, [$($kshort:literal),*], $kscope:ident; )+ }
    ) => {
        /// Every kind Weft reads.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Kind { $($v,)+ $($kv,)+ }

        static INFOS: &[KindInfo] = &[
            $(KindInfo { kind: Kind::$v, group: $group, name: $name, versions: &[$($ver),+], plural: $plural, short_names: &[$($short),*], scope: Scope::$scope },)+
            $(KindInfo { kind: Kind::$kv, group: $kgroup, name: $kname, versions: &[$($kver),+], plural: $kplural, short_names: &[$($kshort),*], scope: Scope::$kscope },)+
        ];

        /// The typed body of an object: the `spec` of Istio-style kinds, the whole object
        /// for Kubernetes' own kinds (whose shape is not spec-only: Secret, Endpoints...).
        #[derive(Debug, Clone, PartialEq)]
        pub enum Spec { $($v(Box<$ty>),)+ $($kv(Box<$kty>),)+ }

        impl Spec {
            pub fn kind(&self) -> Kind {
                match self { $(Spec::$v(_) => Kind::$v,)+ $(Spec::$kv(_) => Kind::$kv,)+ }
            }

            /// Runs the kind's validation rules.
            pub fn validate(&self, v: &mut Validator<'_>) {
                let spec = FieldPath::of("spec");
                match self {
                    $(Spec::$v(s) => s.validate(&spec, v),)+
                    $(Spec::$kv(s) => s.validate(&FieldPath::root(), v),)+
                }
            }
        }

        /// Decodes a whole document of `kind`; the error path is relative to the document.
        pub(crate) fn decode_spec(kind: Kind, doc: &Value, unknown: &mut dyn FnMut(FieldPath)) -> Result<(k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, Spec), DecodeError> {
            match kind {
                $(Kind::$v => {
                    let d: crate::object::Document<$ty> = decode(doc, unknown)?;
                    Ok((d.metadata, Spec::$v(Box::new(d.spec))))
                })+
                $(Kind::$kv => {
                    let d: $kty = decode(doc, unknown)?;
                    let meta = k8s_openapi::Metadata::metadata(&d).clone();
                    Ok((meta, Spec::$kv(Box::new(d))))
                })+
            }
        }
    };
}

kinds! {
    istio {
        VirtualService => crate::networking::VirtualService, "networking.istio.io", "VirtualService", ["v1", "v1beta1", "v1alpha3"], "virtualservices", ["vs"], Namespaced;
        DestinationRule => crate::networking::DestinationRule, "networking.istio.io", "DestinationRule", ["v1", "v1beta1", "v1alpha3"], "destinationrules", ["dr"], Namespaced;
        Gateway => crate::networking::Gateway, "networking.istio.io", "Gateway", ["v1", "v1beta1", "v1alpha3"], "gateways", ["gw"], Namespaced;
        ServiceEntry => crate::networking::ServiceEntry, "networking.istio.io", "ServiceEntry", ["v1", "v1beta1", "v1alpha3"], "serviceentries", ["se"], Namespaced;
        WorkloadEntry => crate::networking::WorkloadEntry, "networking.istio.io", "WorkloadEntry", ["v1", "v1beta1", "v1alpha3"], "workloadentries", ["we"], Namespaced;
        WorkloadGroup => crate::networking::WorkloadGroup, "networking.istio.io", "WorkloadGroup", ["v1", "v1beta1", "v1alpha3"], "workloadgroups", ["wg"], Namespaced;
        Sidecar => crate::networking::Sidecar, "networking.istio.io", "Sidecar", ["v1", "v1beta1", "v1alpha3"], "sidecars", [], Namespaced;
        EnvoyFilter => crate::networking::EnvoyFilter, "networking.istio.io", "EnvoyFilter", ["v1alpha3"], "envoyfilters", [], Namespaced;
        ProxyConfig => crate::networking::ProxyConfig, "networking.istio.io", "ProxyConfig", ["v1beta1"], "proxyconfigs", [], Namespaced;
        PeerAuthentication => crate::security::PeerAuthentication, "security.istio.io", "PeerAuthentication", ["v1", "v1beta1"], "peerauthentications", ["pa"], Namespaced;
        RequestAuthentication => crate::security::RequestAuthentication, "security.istio.io", "RequestAuthentication", ["v1", "v1beta1"], "requestauthentications", ["ra"], Namespaced;
        AuthorizationPolicy => crate::security::AuthorizationPolicy, "security.istio.io", "AuthorizationPolicy", ["v1", "v1beta1"], "authorizationpolicies", ["ap"], Namespaced;
        Telemetry => crate::telemetry::Telemetry, "telemetry.istio.io", "Telemetry", ["v1", "v1alpha1"], "telemetries", ["telemetry"], Namespaced;
        WasmPlugin => crate::extensions::WasmPlugin, "extensions.istio.io", "WasmPlugin", ["v1alpha1"], "wasmplugins", [], Namespaced;
        IstioOperator => crate::install::IstioOperator, "install.istio.io", "IstioOperator", ["v1alpha1"], "istiooperators", ["iop", "io"], Namespaced;
        KubeGateway => crate::gateway_api::Gateway, "gateway.networking.k8s.io", "Gateway", ["v1", "v1beta1"], "gateways", ["gtw"], Namespaced;
        GatewayClass => crate::gateway_api::GatewayClass, "gateway.networking.k8s.io", "GatewayClass", ["v1", "v1beta1"], "gatewayclasses", ["gc"], Cluster;
        HttpRoute => crate::gateway_api::HttpRoute, "gateway.networking.k8s.io", "HTTPRoute", ["v1", "v1beta1"], "httproutes", [], Namespaced;
        GrpcRoute => crate::gateway_api::GrpcRoute, "gateway.networking.k8s.io", "GRPCRoute", ["v1", "v1alpha2"], "grpcroutes", [], Namespaced;
        TcpRoute => crate::gateway_api::TcpRoute, "gateway.networking.k8s.io", "TCPRoute", ["v1", "v1alpha2"], "tcproutes", [], Namespaced;
        TlsRoute => crate::gateway_api::TlsRoute, "gateway.networking.k8s.io", "TLSRoute", ["v1", "v1alpha3", "v1alpha2"], "tlsroutes", [], Namespaced;
        ReferenceGrant => crate::gateway_api::ReferenceGrant, "gateway.networking.k8s.io", "ReferenceGrant", ["v1beta1", "v1alpha2"], "referencegrants", ["refgrant"], Namespaced;
    }
    kube {
        Namespace => k8s_openapi::api::core::v1::Namespace, "", "Namespace", ["v1"], "namespaces", ["ns"], Cluster;
        Service => k8s_openapi::api::core::v1::Service, "", "Service", ["v1"], "services", ["svc"], Namespaced;
        Endpoints => k8s_openapi::api::core::v1::Endpoints, "", "Endpoints", ["v1"], "endpoints", ["ep"], Namespaced;
        EndpointSlice => k8s_openapi::api::discovery::v1::EndpointSlice, "discovery.k8s.io", "EndpointSlice", ["v1"], "endpointslices", [], Namespaced;
        Pod => k8s_openapi::api::core::v1::Pod, "", "Pod", ["v1"], "pods", ["po"], Namespaced;
        Deployment => k8s_openapi::api::apps::v1::Deployment, "apps", "Deployment", ["v1"], "deployments", ["deploy"], Namespaced;
        ServiceAccount => k8s_openapi::api::core::v1::ServiceAccount, "", "ServiceAccount", ["v1"], "serviceaccounts", ["sa"], Namespaced;
        Secret => k8s_openapi::api::core::v1::Secret, "", "Secret", ["v1"], "secrets", [], Namespaced;
    }
}

impl Kind {
    /// Every kind, in the table's order.
    pub fn all() -> impl Iterator<Item = Kind> {
        INFOS.iter().map(|i| i.kind)
    }

    pub fn info(self) -> &'static KindInfo {
        // The table lists the kinds in declaration order.
        &INFOS[self as usize]
    }

    /// The kind a document's `apiVersion` and `kind` name.
    pub fn resolve(api_version: &str, kind: &str) -> Result<Kind, String> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let same_name: Vec<&KindInfo> = INFOS.iter().filter(|i| i.name == kind).collect();
        if same_name.is_empty() {
            let hint = INFOS
                .iter()
                .find(|i| i.name.eq_ignore_ascii_case(kind))
                .map(|i| format!(" (did you mean {:?}?)", i.name))
                .unwrap_or_default();
            return Err(format!("unknown kind {kind:?}{hint}"));
        }
        let Some(info) = same_name.iter().find(|i| i.group == group) else {
            let groups: Vec<String> = same_name
                .iter()
                .map(|i| i.api_version(i.versions[0]))
                .collect();
            return Err(format!(
                "kind {kind:?} is not in API group {group:?} (it is served as {})",
                groups.join(", ")
            ));
        };
        if !info.versions.contains(&version) {
            let served: Vec<String> = info.versions.iter().map(|v| info.api_version(v)).collect();
            return Err(format!(
                "{kind} is not served in apiVersion {api_version:?} (use {})",
                served.join(", ")
            ));
        }
        Ok(info.kind)
    }

    /// The kind a user names on a command line: plural, singular, short name or kind,
    /// optionally qualified by its group (`gateways.gateway.networking.k8s.io`).
    pub fn from_name(name: &str) -> Option<Kind> {
        let lower = name.to_ascii_lowercase();
        let (base, group) = match lower.split_once('.') {
            Some((b, g)) => (b.to_string(), Some(g.to_string())),
            None => (lower, None),
        };
        INFOS
            .iter()
            .filter(|i| group.as_deref().is_none_or(|g| g == i.group))
            .find(|i| {
                i.plural == base || i.singular() == base || i.short_names.contains(&base.as_str())
            })
            .map(|i| i.kind)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.info().name)
    }
}

/// Why a document did not decode into its kind's model.
#[derive(Debug)]
pub(crate) struct DecodeError {
    pub path: serde_path_to_error::Path,
    pub message: String,
}

/// Decodes with path tracking, reporting fields the model has no place for.
fn decode<T: DeserializeOwned>(
    value: &Value,
    unknown: &mut dyn FnMut(FieldPath),
) -> Result<T, DecodeError> {
    let mut on_ignored = |path: serde_ignored::Path<'_>| unknown(FieldPath::from_ignored(&path));
    let de = serde_ignored::Deserializer::new(value, &mut on_ignored);
    serde_path_to_error::deserialize(de).map_err(|e| DecodeError {
        path: e.path().clone(),
        message: e.inner().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_order_matches_the_enum() {
        for (i, info) in INFOS.iter().enumerate() {
            assert_eq!(info.kind as usize, i, "{}", info.name);
        }
    }

    #[test]
    fn resolves_api_versions() {
        for v in [
            "networking.istio.io/v1alpha3",
            "networking.istio.io/v1beta1",
            "networking.istio.io/v1",
        ] {
            assert_eq!(Kind::resolve(v, "VirtualService"), Ok(Kind::VirtualService));
        }
        assert_eq!(
            Kind::resolve("gateway.networking.k8s.io/v1", "Gateway"),
            Ok(Kind::KubeGateway)
        );
        assert_eq!(
            Kind::resolve("networking.istio.io/v1beta1", "Gateway"),
            Ok(Kind::Gateway)
        );
        assert_eq!(Kind::resolve("v1", "Service"), Ok(Kind::Service));
        let e = Kind::resolve("networking.istio.io/v2", "VirtualService").unwrap_err();
        assert!(
            e.contains("not served in apiVersion") && e.contains("networking.istio.io/v1"),
            "{e}"
        );
        let e = Kind::resolve("networking.istio.io/v1", "VirtualServce").unwrap_err();
        assert!(e.contains("unknown kind"), "{e}");
        let e = Kind::resolve("networking.istio.io/v1", "virtualservice").unwrap_err();
        assert!(e.contains("did you mean \"VirtualService\""), "{e}");
        let e = Kind::resolve("security.istio.io/v1", "VirtualService").unwrap_err();
        assert!(e.contains("networking.istio.io/v1"), "{e}");
    }

    #[test]
    fn names_as_users_type_them() {
        assert_eq!(Kind::from_name("vs"), Some(Kind::VirtualService));
        assert_eq!(
            Kind::from_name("virtualservices"),
            Some(Kind::VirtualService)
        );
        assert_eq!(
            Kind::from_name("DestinationRule"),
            Some(Kind::DestinationRule)
        );
        assert_eq!(Kind::from_name("ap"), Some(Kind::AuthorizationPolicy));
        assert_eq!(Kind::from_name("gateway"), Some(Kind::Gateway));
        assert_eq!(
            Kind::from_name("gateways.gateway.networking.k8s.io"),
            Some(Kind::KubeGateway)
        );
        assert_eq!(Kind::from_name("svc"), Some(Kind::Service));
        assert_eq!(Kind::from_name("nonsense"), None);
    }
}
