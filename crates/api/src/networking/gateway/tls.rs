//! `tls` of a Gateway server (and of a Sidecar ingress listener): how the proxy terminates
//! or passes through TLS from downstream clients, and Istio's rules for it.

use std::collections::BTreeSet;

use serde::Deserialize;

use crate::networking::checks::set;
use crate::path::FieldPath;
use crate::validate::{Validate, Validator};

/// `ServerTLSSettings`: TLS towards downstream clients.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServerTlsSettings {
    /// Answer plain HTTP requests with a 301 redirect to HTTPS.
    pub https_redirect: Option<bool>,
    pub mode: Option<ServerTlsMode>,
    /// File paths of the server certificate and key (or use `credentialName`).
    pub server_certificate: Option<String>,
    pub private_key: Option<String>,
    /// CA bundle verifying client certificates (MUTUAL).
    pub ca_certificates: Option<String>,
    pub ca_crl: Option<String>,
    /// A Kubernetes secret holding the key, certificate and (for MUTUAL) the CA.
    pub credential_name: Option<String>,
    /// Up to two secrets (e.g. an RSA and an ECDSA certificate for the same hosts).
    #[serde(default)]
    pub credential_names: Vec<String>,
    /// Up to two certificate/key file pairs.
    #[serde(default)]
    pub tls_certificates: Vec<TlsCertificate>,
    /// A secret holding only the CA bundle for client verification.
    pub ca_cert_credential_name: Option<String>,
    #[serde(default)]
    pub subject_alt_names: Vec<String>,
    #[serde(default)]
    pub verify_certificate_spki: Vec<String>,
    #[serde(default)]
    pub verify_certificate_hash: Vec<String>,
    pub min_protocol_version: Option<TlsProtocol>,
    pub max_protocol_version: Option<TlsProtocol>,
    #[serde(default)]
    pub cipher_suites: Vec<String>,
}

/// `tlsCertificates[]`: one certificate/key pair given as file paths.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsCertificate {
    pub server_certificate: Option<String>,
    pub private_key: Option<String>,
    pub ca_certificates: Option<String>,
}

/// `tls.mode` of a server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum ServerTlsMode {
    /// Route on SNI to the destination without terminating TLS (VirtualService tls routes).
    #[default]
    #[serde(rename = "PASSTHROUGH")]
    Passthrough,
    /// Terminate TLS.
    #[serde(rename = "SIMPLE")]
    Simple,
    /// Terminate TLS and require a client certificate.
    #[serde(rename = "MUTUAL")]
    Mutual,
    /// Passthrough with the destination encoded in the SNI (east-west gateways).
    #[serde(rename = "AUTO_PASSTHROUGH")]
    AutoPassthrough,
    /// Mutual TLS with the mesh's own certificates.
    #[serde(rename = "ISTIO_MUTUAL")]
    IstioMutual,
    /// Terminate TLS and verify a client certificate when one is presented.
    #[serde(rename = "OPTIONAL_MUTUAL")]
    OptionalMutual,
}

/// A TLS protocol version bound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub enum TlsProtocol {
    #[default]
    #[serde(rename = "TLS_AUTO")]
    Auto,
    #[serde(rename = "TLSV1_0")]
    V1_0,
    #[serde(rename = "TLSV1_1")]
    V1_1,
    #[serde(rename = "TLSV1_2")]
    V1_2,
    #[serde(rename = "TLSV1_3")]
    V1_3,
}

/// The cipher suites the proxy's TLS library offers, by their OpenSSL names.
const CIPHER_SUITES: [&str; 15] = [
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
    "ECDHE-ECDSA-AES128-SHA",
    "ECDHE-RSA-AES128-SHA",
    "ECDHE-ECDSA-AES256-SHA",
    "ECDHE-RSA-AES256-SHA",
    "AES128-GCM-SHA256",
    "AES256-GCM-SHA384",
    "AES128-SHA",
    "AES256-SHA",
    "DES-CBC3-SHA",
];

/// Names Istio lets through unchecked: `ALL`, and expressions starting with an operator
/// (`-`, `!`, `+`, `[`) that would need a full cipher-string parser.
fn known_cipher(cs: &str) -> bool {
    cs.is_empty()
        || cs == "ALL"
        || !cs.starts_with(|c: char| c.is_alphanumeric())
        || CIPHER_SUITES.contains(&cs)
}

impl ServerTlsSettings {
    fn has_credential(&self) -> bool {
        set(&self.credential_name) || !self.credential_names.is_empty()
    }

    fn has_certificate_and_key(&self) -> bool {
        (set(&self.server_certificate) && set(&self.private_key))
            || (!self.tls_certificates.is_empty()
                && self
                    .tls_certificates
                    .iter()
                    .all(|c| set(&c.server_certificate) && set(&c.private_key)))
    }

    fn has_ca(&self) -> bool {
        set(&self.ca_certificates)
            || set(&self.ca_cert_credential_name)
            || self
                .tls_certificates
                .iter()
                .any(|c| set(&c.ca_certificates))
    }

    fn validate_ciphers(&self, at: &FieldPath, v: &mut Validator<'_>) {
        let old = matches!(
            self.min_protocol_version,
            Some(TlsProtocol::V1_0 | TlsProtocol::V1_1)
        );
        if old && self.cipher_suites.is_empty() {
            v.warn(
                at.key("minProtocolVersion"),
                "TLS versions below 1.2 need cipherSuites that support them: the default ciphers no longer do",
            );
        }
        let mut seen = BTreeSet::new();
        for (i, cs) in self.cipher_suites.iter().enumerate() {
            let p = at.key("cipherSuites").index(i);
            if !known_cipher(cs) {
                v.warn(p, format!("unknown cipher suite {cs:?} is ignored"));
            } else if !seen.insert(cs.as_str()) {
                v.warn(p, format!("duplicate cipher suite {cs:?} is ignored"));
            }
        }
    }

    fn validate_sources(&self, at: &FieldPath, v: &mut Validator<'_>) {
        let name = set(&self.credential_name);
        let names = !self.credential_names.is_empty();
        let files = !self.tls_certificates.is_empty();
        if name && names {
            v.error(
                at.key("credentialNames"),
                "set only one of credentialName and credentialNames",
            );
        }
        if names && files {
            v.error(
                at.key("tlsCertificates"),
                "set only one of credentialNames and tlsCertificates",
            );
        }
        if name && files {
            v.error(
                at.key("tlsCertificates"),
                "set only one of credentialName and tlsCertificates",
            );
        }
        if self.credential_names.len() > 2 {
            v.error(
                at.key("credentialNames"),
                "at most 2 credentialNames (e.g. one RSA and one ECDSA certificate)",
            );
        }
        if self.tls_certificates.len() > 2 {
            v.error(
                at.key("tlsCertificates"),
                "at most 2 tlsCertificates (e.g. one RSA and one ECDSA certificate)",
            );
        }
    }

    fn validate_istio_mutual(&self, at: &FieldPath, v: &mut Validator<'_>) {
        let fields = [
            ("serverCertificate", set(&self.server_certificate)),
            ("privateKey", set(&self.private_key)),
            ("caCertificates", set(&self.ca_certificates)),
            ("credentialName", set(&self.credential_name)),
            ("credentialNames", !self.credential_names.is_empty()),
            ("tlsCertificates", !self.tls_certificates.is_empty()),
        ];
        for (field, present) in fields {
            if present {
                v.error(
                    at.key(field),
                    format!("ISTIO_MUTUAL uses the mesh's own certificates: remove {field}"),
                );
            }
        }
    }
}

impl Validate for ServerTlsSettings {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        self.validate_ciphers(at, v);
        self.validate_sources(at, v);
        let mode = self.mode.unwrap_or_default();
        if mode == ServerTlsMode::IstioMutual {
            self.validate_istio_mutual(at, v);
            return;
        }
        let certs = set(&self.ca_crl)
            || set(&self.server_certificate)
            || set(&self.private_key)
            || set(&self.ca_certificates)
            || self.has_credential()
            || !self.tls_certificates.is_empty();
        if matches!(
            mode,
            ServerTlsMode::Passthrough | ServerTlsMode::AutoPassthrough
        ) && certs
        {
            v.warn(
                at.key("mode"),
                "PASSTHROUGH and AUTO_PASSTHROUGH do not terminate TLS: the certificates are ignored",
            );
        }
        let terminates = matches!(
            mode,
            ServerTlsMode::Simple | ServerTlsMode::Mutual | ServerTlsMode::OptionalMutual
        );
        if terminates && !self.has_credential() {
            self.validate_files(at, mode, v);
        }
        if set(&self.ca_crl) {
            if self.has_credential() {
                v.error(
                    at.key("caCrl"),
                    "caCrl cannot be combined with credentialName: put the CRL in the secret",
                );
            }
            if mode == ServerTlsMode::Simple {
                v.error(
                    at.key("caCrl"),
                    "caCrl has no use in SIMPLE mode (no client certificates are verified)",
                );
            }
        }
    }
}

impl ServerTlsSettings {
    /// SIMPLE and MUTUAL servers without a secret need the files.
    fn validate_files(&self, at: &FieldPath, mode: ServerTlsMode, v: &mut Validator<'_>) {
        let name = match mode {
            ServerTlsMode::Simple => "SIMPLE",
            ServerTlsMode::Mutual => "MUTUAL",
            _ => "OPTIONAL_MUTUAL",
        };
        if !self.has_certificate_and_key() {
            if !set(&self.server_certificate) {
                v.error(
                    at.key("serverCertificate"),
                    format!(
                        "{name} TLS needs a serverCertificate and privateKey, or a credentialName"
                    ),
                );
            }
            if !set(&self.private_key) {
                v.error(
                    at.key("privateKey"),
                    format!(
                        "{name} TLS needs a privateKey and serverCertificate, or a credentialName"
                    ),
                );
            }
        }
        if mode != ServerTlsMode::Simple && !self.has_ca() {
            v.error(
                at.key("caCertificates"),
                format!("{name} TLS needs caCertificates (the CA bundle that verifies client certificates), or a credentialName"),
            );
        }
    }
}
