//! Just enough DER to read the fields of an X.509 certificate that matter when webpki
//! cannot: webpki refuses version 1 certificates, which `openssl x509 -req` makes without
//! an extensions file (as Istio's secure-ingress tasks do) and which Envoy accepts. A
//! server's key is matched with its certificate by the SubjectPublicKeyInfo; a client's
//! version 1 certificate is checked by `client_auth.rs` from the fields of [`Certificate`].

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
const BIT_STRING: u8 = 0x03;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
/// `[0] EXPLICIT Version`, present from version 2 on.
const VERSION: u8 = 0xa0;

/// The fields of an X.509 certificate (RFC 5280 4.1) a check needs, as DER.
pub struct Certificate<'a> {
    /// Whether it is a version 1 certificate (no version field, no extensions).
    pub version_1: bool,
    /// tbsCertificate, whole: what the issuer signed.
    pub signed: &'a [u8],
    /// The issuer's and the subject's Name, whole.
    pub issuer: &'a [u8],
    pub subject: &'a [u8],
    /// The validity period, in seconds since the Unix epoch.
    pub not_before: u64,
    pub not_after: u64,
    /// SubjectPublicKeyInfo, whole.
    pub public_key_info: &'a [u8],
    /// The contents of the outer signatureAlgorithm (an AlgorithmIdentifier without its
    /// SEQUENCE header, as rustls compares them) and the signature's bits.
    pub signature_algorithm: &'a [u8],
    pub signature: &'a [u8],
}

impl<'a> Certificate<'a> {
    pub fn parse(cert: &'a [u8]) -> Result<Certificate<'a>, String> {
        let bad = |why: &str| format!("not an X.509 certificate ({why})");
        let sequence = |input: &'a [u8], what: &str| match element(input) {
            Ok(e) if e.tag == SEQUENCE => Ok(e),
            Ok(_) => Err(bad(&format!("{what} is not a SEQUENCE"))),
            Err(e) => Err(bad(e)),
        };
        let certificate = sequence(cert, "the certificate")?;
        let tbs = sequence(certificate.contents, "tbsCertificate")?;
        let algorithm = sequence(tbs.rest, "signatureAlgorithm")?;
        let signature = bit_string(algorithm.rest).map_err(bad)?;
        let mut fields = tbs.contents;
        let version_1 = fields.first() != Some(&VERSION);
        if !version_1 {
            fields = element(fields).map_err(bad)?.rest;
        }
        let serial = element(fields).map_err(bad)?;
        let inner_algorithm = sequence(serial.rest, "signature")?;
        let issuer = sequence(inner_algorithm.rest, "issuer")?;
        let validity = sequence(issuer.rest, "validity")?;
        let subject = sequence(validity.rest, "subject")?;
        let spki = sequence(subject.rest, "subjectPublicKeyInfo")?;
        let not_before = element(validity.contents).map_err(bad)?;
        let not_after = element(not_before.rest).map_err(bad)?;
        Ok(Certificate {
            version_1,
            signed: tbs.whole,
            issuer: issuer.whole,
            subject: subject.whole,
            not_before: time(&not_before).map_err(bad)?,
            not_after: time(&not_after).map_err(bad)?,
            public_key_info: spki.whole,
            signature_algorithm: algorithm.contents,
            signature,
        })
    }
}

/// A SubjectPublicKeyInfo's algorithm (the AlgorithmIdentifier's contents) and key bits.
pub fn public_key_parts(spki: &[u8]) -> Result<(&[u8], &[u8]), String> {
    let bad = |why: &str| format!("not a SubjectPublicKeyInfo ({why})");
    let info = element(spki).map_err(bad)?;
    let algorithm = element(info.contents).map_err(bad)?;
    if info.tag != SEQUENCE || algorithm.tag != SEQUENCE {
        return Err(bad("not a SEQUENCE"));
    }
    Ok((algorithm.contents, bit_string(algorithm.rest).map_err(bad)?))
}

/// A BIT STRING's bits, which must fill whole octets (keys and signatures do).
fn bit_string(input: &[u8]) -> Result<&[u8], &'static str> {
    let e = element(input)?;
    match e.contents.split_first() {
        Some((0, bits)) if e.tag == BIT_STRING => Ok(bits),
        _ => Err("not a BIT STRING of whole octets"),
    }
}

/// A UTCTime or GeneralizedTime (`YYMMDDHHMMSSZ`, `YYYYMMDDHHMMSSZ`; RFC 5280 4.1.2.5) in
/// seconds since the Unix epoch.
fn time(e: &Element<'_>) -> Result<u64, &'static str> {
    let digits = match (e.tag, e.contents.split_last()) {
        (UTC_TIME | GENERALIZED_TIME, Some((b'Z', digits))) => digits,
        _ => return Err("bad time"),
    };
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err("bad time");
    }
    let number = |d: &[u8]| d.iter().fold(0u64, |n, c| n * 10 + u64::from(c - b'0'));
    let (year, rest) = match (e.tag, digits.len()) {
        (UTC_TIME, 12) => {
            let yy = number(&digits[..2]);
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
        }
        (GENERALIZED_TIME, 14) => (number(&digits[..4]), &digits[4..]),
        _ => return Err("bad time"),
    };
    let [month, day, hour, minute, second] = [0, 2, 4, 6, 8].map(|i| number(&rest[i..i + 2]));
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err("bad time");
    }
    // Days from 1970-01-01 to the date (the proleptic Gregorian calendar).
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era_days = 365 * y + y / 4 - y / 100 + y / 400 + (153 * m + 2) / 5 + day - 1;
    let days = era_days.checked_sub(719_468).ok_or("bad time")?;
    Ok(days * 86_400 + hour * 3600 + minute * 60 + second)
}

/// The DER of a certificate's SubjectPublicKeyInfo, whatever its version.
pub fn subject_public_key_info(cert: &[u8]) -> Result<&[u8], String> {
    Ok(Certificate::parse(cert)?.public_key_info)
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
    fn reads_the_validity_and_the_signature() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["a.example".to_string()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2024, 2, 29);
        params.not_after = rcgen::date_time_ymd(2051, 1, 1);
        let cert = params.self_signed(&key).unwrap();
        let c = Certificate::parse(cert.der()).unwrap();
        assert!(!c.version_1);
        assert_eq!(
            c.not_before, 1_709_164_800,
            "2024-02-29T00:00:00Z (UTCTime)"
        );
        assert_eq!(
            c.not_after, 2_556_144_000,
            "2051-01-01T00:00:00Z (GeneralizedTime)"
        );
        assert_eq!(c.issuer, c.subject, "self-signed");
        assert!(!c.signature.is_empty());
        let (algorithm, bits) = public_key_parts(c.public_key_info).unwrap();
        assert!(!algorithm.is_empty() && !bits.is_empty());
    }

    #[test]
    fn times_as_rfc_5280_writes_them() {
        let t = |tag, s: &str| {
            time(&Element {
                tag,
                contents: s.as_bytes(),
                whole: &[],
                rest: &[],
            })
        };
        assert_eq!(t(UTC_TIME, "700101000000Z"), Ok(0));
        assert_eq!(t(UTC_TIME, "491231235959Z"), Ok(2_524_607_999));
        assert_eq!(t(GENERALIZED_TIME, "20000301000000Z"), Ok(951_868_800));
        for (tag, s) in [
            (UTC_TIME, "7001010000Z"),
            (UTC_TIME, "700101000000"),
            (UTC_TIME, "701301000000Z"),
            (GENERALIZED_TIME, "700101000000Z"),
            (SEQUENCE, "700101000000Z"),
            (UTC_TIME, "70010100000aZ"),
        ] {
            assert!(t(tag, s).is_err(), "{s}");
        }
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
