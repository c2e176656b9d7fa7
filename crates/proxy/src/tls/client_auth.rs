//! Client certificate verification for MUTUAL and OPTIONAL_MUTUAL servers: webpki's, and
//! beside it a check of X.509 version 1 client certificates, which webpki refuses and
//! Envoy accepts (Istio's mutual-TLS ingress task makes its client certificate with
//! `openssl x509 -req`, a version 1 certificate). A version 1 certificate has no
//! extensions, hence no key usage to honour and no CA flag to abuse: it is accepted when
//! one of the server's CA certificates issued it directly (same issuer name, a signature
//! that verifies with that CA's key, by an algorithm rustls supports), it is within its
//! validity period, and no revocation list is configured (revocation of version 1
//! certificates is not checked, so with `crl` set they are refused).

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{
    WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature,
    verify_tls13_signature_with_raw_key,
};
use rustls::pki_types::{CertificateDer, SubjectPublicKeyInfoDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};

use super::der::{Certificate, public_key_parts};

/// A CA certificate a version 1 client certificate may be issued by.
struct Issuer {
    subject: Vec<u8>,
    public_key_info: Vec<u8>,
}

pub struct ClientCerts {
    webpki: Arc<dyn ClientCertVerifier>,
    issuers: Vec<Issuer>,
    algorithms: WebPkiSupportedAlgorithms,
    checks_revocation: bool,
}

impl ClientCerts {
    /// `webpki` verifies every certificate of version 3; `roots` are the same CA
    /// certificates it trusts.
    pub fn new(
        webpki: Arc<dyn ClientCertVerifier>,
        roots: &[CertificateDer<'static>],
        algorithms: WebPkiSupportedAlgorithms,
        checks_revocation: bool,
    ) -> ClientCerts {
        let issuers = roots
            .iter()
            .filter_map(|r| Certificate::parse(r).ok())
            .map(|c| Issuer {
                subject: c.subject.to_vec(),
                public_key_info: c.public_key_info.to_vec(),
            })
            .collect();
        ClientCerts {
            webpki,
            issuers,
            algorithms,
            checks_revocation,
        }
    }

    fn verify_version_1(&self, cert: &Certificate<'_>, now: UnixTime) -> Result<(), Error> {
        if self.checks_revocation {
            return Err(CertificateError::UnknownRevocationStatus.into());
        }
        let now = now.as_secs();
        if now < cert.not_before {
            return Err(CertificateError::NotValidYet.into());
        }
        if now > cert.not_after {
            return Err(CertificateError::Expired.into());
        }
        let mut known_issuer = false;
        for issuer in self.issuers.iter().filter(|i| i.subject == cert.issuer) {
            known_issuer = true;
            if self.signed_by(cert, issuer) {
                return Ok(());
            }
        }
        Err(if known_issuer {
            CertificateError::BadSignature.into()
        } else {
            CertificateError::UnknownIssuer.into()
        })
    }

    /// Whether `issuer`'s key verifies the certificate's signature.
    fn signed_by(&self, cert: &Certificate<'_>, issuer: &Issuer) -> bool {
        let Ok((key_algorithm, key)) = public_key_parts(&issuer.public_key_info) else {
            return false;
        };
        self.algorithms.all.iter().any(|alg| {
            alg.signature_alg_id().as_ref() == cert.signature_algorithm
                && alg.public_key_alg_id().as_ref() == key_algorithm
                && alg
                    .verify_signature(key, cert.signed, cert.signature)
                    .is_ok()
        })
    }
}

/// The certificate when it is of version 1 (webpki cannot parse it); `None` for any other.
fn version_1<'a>(cert: &'a CertificateDer<'_>) -> Option<Certificate<'a>> {
    Certificate::parse(cert).ok().filter(|c| c.version_1)
}

impl fmt::Debug for ClientCerts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCerts")
            .field("webpki", &self.webpki)
            .field("version_1_issuers", &self.issuers.len())
            .finish()
    }
}

impl ClientCertVerifier for ClientCerts {
    fn offer_client_auth(&self) -> bool {
        self.webpki.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.webpki.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.webpki.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        match version_1(end_entity) {
            Some(cert) => self
                .verify_version_1(&cert, now)
                .map(|()| ClientCertVerified::assertion()),
            None => self
                .webpki
                .verify_client_cert(end_entity, intermediates, now),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        let Some(cert) = version_1(cert) else {
            return verify_tls12_signature(message, cert, dss, &self.algorithms);
        };
        // As rustls does for a certificate it can parse: every algorithm of the scheme
        // that fits the key is tried.
        let (key_algorithm, key) = public_key_parts(cert.public_key_info)
            .map_err(|_| Error::from(CertificateError::BadEncoding))?;
        let verified = self
            .algorithms
            .mapping
            .iter()
            .filter(|(scheme, _)| *scheme == dss.scheme)
            .flat_map(|(_, algs)| algs.iter())
            .filter(|alg| alg.public_key_alg_id().as_ref() == key_algorithm)
            .any(|alg| alg.verify_signature(key, message, dss.signature()).is_ok());
        if verified {
            Ok(HandshakeSignatureValid::assertion())
        } else {
            Err(CertificateError::BadSignature.into())
        }
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        match version_1(cert) {
            Some(c) => verify_tls13_signature_with_raw_key(
                message,
                &SubjectPublicKeyInfoDer::from(c.public_key_info),
                dss,
                &self.algorithms,
            ),
            None => verify_tls13_signature(message, cert, dss, &self.algorithms),
        }
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}
