//! Where a terminating gateway server's certificates, keys and client CA come from, by
//! Istio's rules: Secrets named by `credentialName`/`credentialNames`, read from the
//! gateway's own namespace (a generic Secret's `cert`/`key`/`cacert`/`crl`, else a
//! `kubernetes.io/tls` Secret's `tls.crt`/`tls.key`/`ca.crt`/`ca.crl`; the client CA from
//! `<name>-cacert` first, else the same Secret, or from `caCertCredentialName`), or files
//! (`serverCertificate`, `privateKey`, `caCertificates`, `caCrl`, `tlsCertificates`).
//! PEM is decoded here; no error message ever quotes key material.

use std::collections::BTreeMap;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use weft_api::networking::gateway::ServerTlsSettings;
use weft_api::{Object, Spec};

/// The suffix of the Secret holding only a credential's client CA (Istio's
/// `SdsCaSuffix`).
pub const CA_SUFFIX: &str = "-cacert";

/// The Secrets a gateway may read: those of its own namespace.
pub struct Secrets<'o> {
    namespace: &'o str,
    by_name: BTreeMap<&'o str, BTreeMap<&'o str, &'o [u8]>>,
}

impl<'o> Secrets<'o> {
    pub fn new(objects: &'o [Object], namespace: &'o str) -> Self {
        let by_name = objects
            .iter()
            .filter(|o| o.namespace() == namespace)
            .filter_map(|o| match &o.spec {
                Spec::Secret(s) => Some((o.name(), weft_api::kube::secret_data(s))),
                _ => None,
            })
            .collect();
        Secrets { namespace, by_name }
    }

    fn get(&self, name: &str) -> Option<&BTreeMap<&'o str, &'o [u8]>> {
        self.by_name.get(name)
    }
}

/// One certificate chain with its private key.
pub struct KeyPair {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

/// The CA bundle (and revocation lists) client certificates are verified against.
pub struct ClientCa {
    pub roots: Vec<CertificateDer<'static>>,
    pub crls: Vec<CertificateRevocationListDer<'static>>,
}

/// A server's credentials, decoded.
pub struct Credential {
    /// One pair per `credentialNames`/`tlsCertificates` entry (an RSA and an ECDSA
    /// certificate side by side), else one.
    pub pairs: Vec<KeyPair>,
    /// Present when the server verifies clients (MUTUAL, OPTIONAL_MUTUAL).
    pub client_ca: Option<ClientCa>,
    /// Where it came from (`kubernetes://name` or the file path), for logs and dumps.
    pub source: String,
}

/// Why a server's credentials cannot be had. Who is to blame decides what the proxy does
/// with the config (see `reason`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// A Secret the server needs is not there (yet): the server waits for it.
    #[error("Secret {namespace}/{name}: not found{why}")]
    Missing {
        namespace: String,
        name: String,
        /// What else was tried, starting with "; ".
        why: String,
    },
    /// A Secret is there, but unusable.
    #[error("Secret {namespace}/{name}: {reason}")]
    BadSecret {
        namespace: String,
        name: String,
        reason: String,
    },
    /// A file the Gateway names cannot be read or used, or the settings cannot be served.
    #[error("{0}")]
    Gateway(String),
}

impl CredentialError {
    /// The line the proxy reports. It starts with the object at fault, which is what a
    /// NACK names: a bad Secret is refused (the previous version stays in use), a bad
    /// file refuses the Gateway; a missing Secret refuses nothing (it is not in any
    /// push), so the Gateway is taken and its server comes up once the Secret exists.
    pub fn reason(&self, gateway: &str, port: u16) -> String {
        match self {
            CredentialError::Missing { .. } => format!(
                "{self}: the TLS server on port {port} of Gateway {gateway} is not served \
                 until it exists"
            ),
            CredentialError::BadSecret { .. } => {
                format!("{self} (needed by the TLS server on port {port} of Gateway {gateway})")
            }
            CredentialError::Gateway(why) => format!("Gateway {gateway}: port {port}: {why}"),
        }
    }
}

/// The credentials a terminating server names, decoded; `mutual` when clients are
/// verified (a CA is then required).
pub fn load(
    tls: &ServerTlsSettings,
    secrets: &Secrets<'_>,
    mutual: bool,
) -> Result<Credential, CredentialError> {
    let names: Vec<&str> = tls
        .credential_name
        .iter()
        .chain(&tls.credential_names)
        .map(|n| secret_name(n))
        .filter(|n| !n.is_empty())
        .collect();
    if names.is_empty() {
        return from_files(tls, mutual);
    }
    let pairs = names
        .iter()
        .map(|n| secret_pair(secrets, n))
        .collect::<Result<Vec<_>, _>>()?;
    let client_ca = if mutual {
        Some(secret_ca(tls, secrets, names[0])?)
    } else {
        None
    };
    Ok(Credential {
        pairs,
        client_ca,
        source: names
            .iter()
            .map(|n| format!("kubernetes://{n}"))
            .collect::<Vec<_>>()
            .join(","),
    })
}

/// `kubernetes://name` and `name` name the same Secret.
fn secret_name(name: &str) -> &str {
    name.strip_prefix("kubernetes://").unwrap_or(name).trim()
}

fn missing(secrets: &Secrets<'_>, name: &str, why: &str) -> CredentialError {
    CredentialError::Missing {
        namespace: secrets.namespace.to_string(),
        name: name.to_string(),
        why: why.to_string(),
    }
}

fn bad(secrets: &Secrets<'_>, name: &str, reason: String) -> CredentialError {
    CredentialError::BadSecret {
        namespace: secrets.namespace.to_string(),
        name: name.to_string(),
        reason,
    }
}

/// A value present and not empty.
fn value<'a>(data: &BTreeMap<&str, &'a [u8]>, key: &str) -> Option<&'a [u8]> {
    data.get(key).copied().filter(|v| !v.is_empty())
}

/// The certificate and key of a Secret: `cert`/`key` first, then `tls.crt`/`tls.key`.
fn secret_pair(secrets: &Secrets<'_>, name: &str) -> Result<KeyPair, CredentialError> {
    let data = secrets
        .get(name)
        .ok_or_else(|| missing(secrets, name, ""))?;
    let found = [("cert", "key"), ("tls.crt", "tls.key")]
        .into_iter()
        .find_map(|(c, k)| Some((c, value(data, c)?, k, value(data, k)?)));
    let Some((cert_key, cert, key_key, key)) = found else {
        let keys: Vec<&str> = data.keys().copied().collect();
        return Err(bad(
            secrets,
            name,
            format!(
                "has no certificate and key: expected (cert and key) or (tls.crt and tls.key), \
                 found [{}]",
                keys.join(", ")
            ),
        ));
    };
    let chain = certificates(cert).map_err(|e| bad(secrets, name, format!("{cert_key}: {e}")))?;
    let key = private_key(key).map_err(|e| bad(secrets, name, format!("{key_key}: {e}")))?;
    Ok(KeyPair { chain, key })
}

/// The client CA of a MUTUAL server: `caCertCredentialName`'s Secret, else
/// `<name>-cacert`, else the credential's own Secret (`cacert`, then `ca.crt`), else the
/// `caCertificates` file.
fn secret_ca(
    tls: &ServerTlsSettings,
    secrets: &Secrets<'_>,
    name: &str,
) -> Result<ClientCa, CredentialError> {
    if let Some(ca_name) = tls.ca_cert_credential_name.as_deref().map(secret_name) {
        let data = secrets
            .get(ca_name)
            .ok_or_else(|| missing(secrets, ca_name, " (caCertCredentialName)"))?;
        let found = ca_of(data).unwrap_or_else(|| Err("has no cacert or ca.crt".into()));
        return found.map_err(|reason| bad(secrets, ca_name, reason));
    }
    let ca_name = format!("{name}{CA_SUFFIX}");
    for candidate in [ca_name.as_str(), name] {
        if let Some(found) = secrets.get(candidate).and_then(ca_of) {
            return found.map_err(|reason| bad(secrets, candidate, reason));
        }
    }
    if let Some(path) = tls.ca_certificates.as_deref().filter(|p| !p.is_empty()) {
        return ca_from_files(path, tls.ca_crl.as_deref());
    }
    // The CA may come in a Secret created after this one: wait for it, refuse nothing.
    Err(missing(
        secrets,
        &ca_name,
        &format!(
            " and Secret {}/{name} has no cacert or ca.crt: a MUTUAL server needs the CA \
             that signs client certificates",
            secrets.namespace
        ),
    ))
}

/// A Secret's CA and CRL (`cacert`/`crl`, else `ca.crt`/`ca.crl`); `None` when it has no
/// CA, else the CA or why it is unusable.
fn ca_of(data: &BTreeMap<&str, &[u8]>) -> Option<Result<ClientCa, String>> {
    let (ca_key, ca, crl_key) = [("cacert", "crl"), ("ca.crt", "ca.crl")]
        .into_iter()
        .find_map(|(c, r)| Some((c, value(data, c)?, r)))?;
    let roots = match certificates(ca) {
        Ok(roots) => roots,
        Err(e) => return Some(Err(format!("{ca_key}: {e}"))),
    };
    let crls = match value(data, crl_key).map(revocation_lists) {
        None => Vec::new(),
        Some(Ok(crls)) => crls,
        Some(Err(e)) => return Some(Err(format!("{crl_key}: {e}"))),
    };
    Some(Ok(ClientCa { roots, crls }))
}

/// Certificates and keys from files: `tlsCertificates` pairs, else `serverCertificate`
/// and `privateKey`; the client CA from `caCertificates` (and `caCrl`).
fn from_files(tls: &ServerTlsSettings, mutual: bool) -> Result<Credential, CredentialError> {
    let mut listed: Vec<(&str, &str)> = tls
        .tls_certificates
        .iter()
        .filter_map(|c| Some((c.server_certificate.as_deref()?, c.private_key.as_deref()?)))
        .collect();
    if listed.is_empty() {
        match (
            tls.server_certificate.as_deref(),
            tls.private_key.as_deref(),
        ) {
            (Some(c), Some(k)) if !c.is_empty() && !k.is_empty() => listed.push((c, k)),
            _ => {
                return Err(CredentialError::Gateway(
                    "TLS termination needs a credentialName, or serverCertificate and \
                     privateKey"
                        .into(),
                ));
            }
        }
    }
    let mut pairs = Vec::new();
    for (cert_path, key_path) in &listed {
        let chain = certificates(&read("serverCertificate", cert_path)?)
            .map_err(|e| file_error("serverCertificate", cert_path, &e))?;
        let key = private_key(&read("privateKey", key_path)?)
            .map_err(|e| file_error("privateKey", key_path, &e))?;
        pairs.push(KeyPair { chain, key });
    }
    let ca_path = tls
        .ca_certificates
        .as_deref()
        .or_else(|| {
            tls.tls_certificates
                .iter()
                .find_map(|c| c.ca_certificates.as_deref())
        })
        .filter(|p| !p.is_empty());
    let client_ca = match (mutual, ca_path) {
        (false, _) => None,
        (true, Some(path)) => Some(ca_from_files(path, tls.ca_crl.as_deref())?),
        (true, None) => {
            return Err(CredentialError::Gateway(
                "a MUTUAL server needs caCertificates (the CA that signs client \
                 certificates), or a credentialName whose Secret holds one"
                    .into(),
            ));
        }
    };
    Ok(Credential {
        pairs,
        client_ca,
        source: listed
            .iter()
            .map(|(c, _)| (*c).to_string())
            .collect::<Vec<_>>()
            .join(","),
    })
}

fn ca_from_files(path: &str, crl: Option<&str>) -> Result<ClientCa, CredentialError> {
    let roots = certificates(&read("caCertificates", path)?)
        .map_err(|e| file_error("caCertificates", path, &e))?;
    let crls = match crl.filter(|p| !p.is_empty()) {
        Some(crl) => {
            revocation_lists(&read("caCrl", crl)?).map_err(|e| file_error("caCrl", crl, &e))?
        }
        None => Vec::new(),
    };
    Ok(ClientCa { roots, crls })
}

fn read(field: &str, path: &str) -> Result<Vec<u8>, CredentialError> {
    std::fs::read(path).map_err(|e| file_error(field, path, &format!("cannot read it: {e}")))
}

fn file_error(field: &str, path: &str, why: &str) -> CredentialError {
    CredentialError::Gateway(format!("{field} {path}: {why}"))
}

/// Every certificate of a PEM bundle; at least one.
pub fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not PEM certificates ({e})"))?;
    if certs.is_empty() {
        return Err("no PEM certificate (-----BEGIN CERTIFICATE-----) in it".into());
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 RSA or SEC1 EC).
pub fn private_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    // The decoder's error may describe the bytes it choked on; say only what was expected.
    PrivateKeyDer::from_pem_slice(pem).map_err(|_| {
        "no PEM private key (PKCS#8 \"PRIVATE KEY\", \"RSA PRIVATE KEY\" or \"EC PRIVATE KEY\") \
         in it"
            .to_string()
    })
}

fn revocation_lists(pem: &[u8]) -> Result<Vec<CertificateRevocationListDer<'static>>, String> {
    CertificateRevocationListDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not PEM revocation lists ({e})"))
}

#[cfg(test)]
mod tests;
