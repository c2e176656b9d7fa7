//! Just enough DER to find a certificate's SubjectPublicKeyInfo, so that a key can be
//! matched with its certificate whatever the certificate's X.509 version. webpki refuses
//! version 1 certificates, which `openssl x509 -req` makes without an extensions file
//! (as Istio's secure-ingress task does) and which Envoy serves.

/// One DER element at the start of some input.
struct Element<'a> {
    tag: u8,
    contents: &'a [u8],
    /// The whole element, header included.
    whole: &'a [u8],
    /// What follows it.
    rest: &'a [u8],
}

fn element(input: &[u8]) -> Result<Element<'_>, &'static str> {
    let (&tag, after_tag) = input.split_first().ok_or("truncated")?;
    let (&first, mut rest) = after_tag.split_first().ok_or("truncated")?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let octets = usize::from(first & 0x7f);
        if octets == 0 || octets > 4 || rest.len() < octets {
            return Err("bad length");
        }
        let (bytes, after) = rest.split_at(octets);
        rest = after;
        bytes.iter().fold(0usize, |n, b| (n << 8) | usize::from(*b))
    };
    if rest.len() < len {
        return Err("truncated");
    }
    let header = input.len() - rest.len();
    let (contents, rest) = rest.split_at(len);
    Ok(Element {
        tag,
        contents,
        whole: &input[..header + len],
        rest,
    })
}

const SEQUENCE: u8 = 0x30;
/// `[0] EXPLICIT Version`, present from version 2 on.
const VERSION: u8 = 0xa0;

/// The DER of a certificate's SubjectPublicKeyInfo (RFC 5280 4.1: the seventh field of
/// tbsCertificate, counting the optional version).
pub fn subject_public_key_info(cert: &[u8]) -> Result<&[u8], String> {
    let bad = |why: &str| format!("not an X.509 certificate ({why})");
    let certificate = element(cert).map_err(bad)?;
    if certificate.tag != SEQUENCE {
        return Err(bad("not a SEQUENCE"));
    }
    let tbs = element(certificate.contents).map_err(bad)?;
    if tbs.tag != SEQUENCE {
        return Err(bad("tbsCertificate is not a SEQUENCE"));
    }
    let mut fields = tbs.contents;
    if fields.first() == Some(&VERSION) {
        fields = element(fields).map_err(bad)?.rest;
    }
    // serialNumber, signature, issuer, validity, subject.
    for _ in 0..5 {
        fields = element(fields).map_err(bad)?.rest;
    }
    let spki = element(fields).map_err(bad)?;
    if spki.tag != SEQUENCE {
        return Err(bad("subjectPublicKeyInfo is not a SEQUENCE"));
    }
    Ok(spki.whole)
}

#[cfg(test)]
mod tests {
    use rcgen::PublicKeyData;

    use super::*;

    fn v3_cert() -> (Vec<u8>, Vec<u8>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["a.example".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.der().to_vec(), key.subject_public_key_info())
    }

    #[test]
    fn finds_the_key_of_a_version_3_certificate() {
        let (cert, spki) = v3_cert();
        assert_eq!(subject_public_key_info(&cert).unwrap(), spki.as_slice());
    }

    /// The same certificate rewritten as version 1: no `[0] version`, lengths fixed up.
    #[test]
    fn finds_the_key_of_a_version_1_certificate() {
        let (cert, spki) = v3_cert();
        let certificate = element(&cert).unwrap();
        let tbs = element(certificate.contents).unwrap();
        let version = element(tbs.contents).unwrap();
        assert_eq!(version.tag, VERSION);
        let wrap = |tag: u8, body: &[u8]| {
            let mut out = vec![tag];
            let len = body.len();
            if len < 0x80 {
                out.push(len as u8);
            } else {
                out.extend([0x82, (len >> 8) as u8, len as u8]);
            }
            out.extend_from_slice(body);
            out
        };
        let tbs_v1 = wrap(SEQUENCE, version.rest);
        assert!(tbs_v1.len() < tbs.whole.len());
        let v1 = wrap(SEQUENCE, &[tbs_v1.as_slice(), tbs.rest].concat());
        assert_eq!(subject_public_key_info(&v1).unwrap(), spki.as_slice());
    }

    #[test]
    fn refuses_what_is_not_a_certificate() {
        assert!(subject_public_key_info(b"").is_err());
        assert!(subject_public_key_info(&[0x30, 0x05, 0x30]).is_err());
        assert!(subject_public_key_info(&[0x02, 0x01, 0x00]).is_err());
        let (cert, _) = v3_cert();
        for len in [1, 10, cert.len() / 2, cert.len() - 1] {
            assert!(subject_public_key_info(&cert[..len]).is_err(), "{len}");
        }
    }
}
