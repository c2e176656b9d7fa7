//! Turning a gateway server's `tls` settings and credentials into a rustls server config:
//! protocol versions, cipher suites (the TLS 1.2 ones rustls implements; TLS 1.3's are
//! not configurable, as in Envoy), ALPN `h2` and `http/1.1`, the certificate picked per
//! client (RSA or ECDSA), and client certificate verification for MUTUAL and
//! OPTIONAL_MUTUAL. One crypto provider: ring.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::crypto::ring::cipher_suite as suite;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig, SupportedCipherSuite, SupportedProtocolVersion};
use weft_api::networking::gateway::{ServerTlsMode, ServerTlsSettings, TlsProtocol};

use super::client_auth::ClientCerts;
use super::credentials::Credential;

/// What a server offers, as the config dump shows it.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Offered {
    /// `TLSv1_2`, `TLSv1_3`.
    pub versions: Vec<String>,
    /// The TLS 1.2 cipher suites offered, by their OpenSSL names.
    pub cipher_suites: Vec<String>,
    /// `cipherSuites` entries rustls cannot serve, left out.
    pub ignored_cipher_suites: Vec<String>,
    pub alpn: Vec<String>,
}

/// The OpenSSL names of the TLS 1.2 suites rustls (ring) implements, Envoy's default
/// order. CBC, non-ECDHE key exchange and 3DES suites are not implemented by rustls.
const TLS12_SUITES: [(&str, SupportedCipherSuite); 6] = [
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];

const TLS13_SUITES: [SupportedCipherSuite; 3] = [
    suite::TLS13_AES_128_GCM_SHA256,
    suite::TLS13_AES_256_GCM_SHA384,
    suite::TLS13_CHACHA20_POLY1305_SHA256,
];

/// Builds the config a terminating server serves with; the error says what cannot be
/// served (the Gateway is at fault: its settings, or a key that does not fit).
pub fn server_config(
    tls: &ServerTlsSettings,
    credential: &Credential,
) -> Result<(Arc<ServerConfig>, Offered), String> {
    let mut offered = Offered {
        alpn: vec!["h2".into(), "http/1.1".into()],
        ..Offered::default()
    };
    let versions = versions(tls, &mut offered)?;
    let tls12 = cipher_suites(&tls.cipher_suites, &mut offered);
    if versions.len() == 1 && versions[0] == &rustls::version::TLS12 && tls12.is_empty() {
        return Err(format!(
            "none of cipherSuites {:?} is one rustls implements for TLS 1.2 (it has {}), and \
             maxProtocolVersion rules out TLS 1.3",
            tls.cipher_suites,
            TLS12_SUITES.map(|(n, _)| n).join(", ")
        ));
    }
    let provider = Arc::new(CryptoProvider {
        cipher_suites: TLS13_SUITES.iter().copied().chain(tls12).collect(),
        ..rustls::crypto::ring::default_provider()
    });
    let mut keys = Vec::new();
    for pair in &credential.pairs {
        let key = certified_key(pair.chain.clone(), pair.key.clone_key(), &provider)
            .map_err(|e| format!("{}: unusable certificate or key: {e}", credential.source))?;
        keys.push(Arc::new(key));
    }
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("cannot serve these TLS settings: {e}"))?;
    let mode = tls.mode.unwrap_or_default();
    let builder = match &credential.client_ca {
        Some(ca) if matches!(mode, ServerTlsMode::Mutual | ServerTlsMode::OptionalMutual) => {
            let mut roots = RootCertStore::empty();
            for cert in &ca.roots {
                roots
                    .add(cert.clone())
                    .map_err(|e| format!("a client CA certificate is unusable: {e}"))?;
            }
            let algorithms = provider.signature_verification_algorithms;
            let mut verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                    .with_crls(ca.crls.iter().cloned())
                    .only_check_end_entity_revocation();
            if mode == ServerTlsMode::OptionalMutual {
                verifier = verifier.allow_unauthenticated();
            }
            let verifier = verifier
                .build()
                .map_err(|e| format!("cannot verify client certificates: {e}"))?;
            builder.with_client_cert_verifier(Arc::new(ClientCerts::new(
                verifier,
                &ca.roots,
                algorithms,
                !ca.crls.is_empty(),
            )))
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(Arc::new(Certificates(keys)));
    config.alpn_protocols = offered.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Ok((Arc::new(config), offered))
}

/// Checks that PEM `cert` and `key` make a pair a server can use (what `kubectl create
/// secret tls` checks before it stores them).
pub fn check_pair(cert: &[u8], key: &[u8]) -> Result<(), String> {
    let chain =
        super::credentials::certificates(cert).map_err(|e| format!("the certificate: {e}"))?;
    let key = super::credentials::private_key(key).map_err(|e| format!("the key: {e}"))?;
    certified_key(chain, key, &rustls::crypto::ring::default_provider()).map(|_| ())
}

/// A certificate chain with its key, once the key is known to be the certificate's.
/// (rustls' own check parses the certificate with webpki, which refuses X.509 version 1
/// certificates; Envoy serves them, and Istio's secure-ingress task makes one.)
fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, String> {
    let leaf = chain.first().ok_or("no certificate")?;
    let signer = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("the key: {e}"))?;
    let spki = super::der::subject_public_key_info(leaf)?;
    match signer.public_key() {
        Some(key_spki) if key_spki.as_ref() != spki => {
            Err("the private key does not match the certificate's public key".into())
        }
        Some(_) => Ok(CertifiedKey::new(chain, signer)),
        None => Err("cannot tell the key's public key (an unsupported key type?)".into()),
    }
}

/// The versions between `minProtocolVersion` and `maxProtocolVersion` (TLS 1.2 and 1.3 by
/// default). rustls has no TLS 1.0 or 1.1: a minimum below 1.2 is raised to 1.2, a maximum
/// below it cannot be served.
fn versions(
    tls: &ServerTlsSettings,
    offered: &mut Offered,
) -> Result<Vec<&'static SupportedProtocolVersion>, String> {
    let min = match tls.min_protocol_version.unwrap_or_default() {
        TlsProtocol::Auto | TlsProtocol::V1_0 | TlsProtocol::V1_1 | TlsProtocol::V1_2 => 2,
        TlsProtocol::V1_3 => 3,
    };
    let max = match tls.max_protocol_version.unwrap_or_default() {
        TlsProtocol::Auto | TlsProtocol::V1_3 => 3,
        TlsProtocol::V1_2 => 2,
        old => {
            return Err(format!(
                "maxProtocolVersion {old:?} cannot be served: Weft's TLS (rustls) speaks TLS \
                 1.2 and 1.3 only"
            ));
        }
    };
    if min > max {
        return Err("minProtocolVersion is above maxProtocolVersion".into());
    }
    let mut versions = Vec::new();
    if min <= 2 {
        versions.push(&rustls::version::TLS12);
        offered.versions.push("TLSv1_2".into());
    }
    if max == 3 {
        versions.push(&rustls::version::TLS13);
        offered.versions.push("TLSv1_3".into());
    }
    Ok(versions)
}

/// The TLS 1.2 suites `cipherSuites` names, in its order (all of them when it names
/// none). Envoy's `[A|B]` groups of equal preference count as their members; names
/// rustls does not implement are recorded as ignored.
fn cipher_suites(names: &[String], offered: &mut Offered) -> Vec<SupportedCipherSuite> {
    if names.is_empty() {
        offered.cipher_suites = TLS12_SUITES.iter().map(|(n, _)| n.to_string()).collect();
        return TLS12_SUITES.iter().map(|(_, s)| *s).collect();
    }
    let mut out = Vec::new();
    let members = names
        .iter()
        .flat_map(|n| n.trim_matches(['[', ']']).split('|'))
        .map(str::trim);
    for name in members {
        match TLS12_SUITES.iter().find(|(n, _)| *n == name) {
            Some((n, s)) if !out.contains(s) => {
                out.push(*s);
                offered.cipher_suites.push(n.to_string());
            }
            Some(_) => {}
            None => offered.ignored_cipher_suites.push(name.to_string()),
        }
    }
    out
}

/// The server's certificates: the first whose key can sign with a scheme the client
/// offers (an ECDSA one for a client that takes ECDSA, else RSA), else the first.
struct Certificates(Vec<Arc<CertifiedKey>>);

impl std::fmt::Debug for Certificates {
    // Never the keys themselves.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Certificates({})", self.0.len())
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let schemes = hello.signature_schemes();
        self.0
            .iter()
            .find(|k| k.key.choose_scheme(schemes).is_some())
            .or_else(|| self.0.first())
            .cloned()
    }
}
