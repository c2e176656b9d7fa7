//! Istio's rules for gateway credentials, and the rustls config built from them.

use std::path::Path;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use weft_api::networking::gateway::ServerTlsSettings;
use weft_api::{LoadOptions, Loaded, Object};

use super::*;
use crate::tls::config::server_config;

/// A CA and a certificate it signs for `host`: (ca pem, cert pem, key pem).
fn issued(host: &str) -> (String, String, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec![host.to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    (ca.as_ref().pem(), cert.pem(), key.serialize_pem())
}

fn escaped(text: &str) -> String {
    // A double-quoted YAML string: newlines as `\\n`.
    text.lines().collect::<Vec<_>>().join("\\n")
}

/// A Secret in istio-system with these string entries.
fn secret(name: &str, entries: &[(&str, &str)]) -> String {
    let mut out = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: istio-system}}\nstringData:\n"
    );
    for (k, v) in entries {
        out.push_str(&format!("  {k}: \"{}\"\n", escaped(v)));
    }
    out.push_str("---\n");
    out
}

fn objects(yaml: &str) -> Vec<Object> {
    let mut loaded = Loaded::default();
    weft_api::load_str(
        yaml,
        Arc::from(Path::new("t.yaml")),
        &LoadOptions::default(),
        &mut loaded,
    );
    let errors: Vec<String> = loaded.errors().map(ToString::to_string).collect();
    assert!(errors.is_empty(), "{errors:?}");
    loaded.objects
}

fn settings(yaml: &str) -> ServerTlsSettings {
    let value: serde_json::Value = serde_json::from_str(yaml).unwrap();
    serde_json::from_value(value).unwrap()
}

#[test]
fn a_tls_secret_and_a_generic_one_both_serve() {
    let (_, cert, key) = issued("httpbin.example.com");
    let objs = objects(
        &(secret("tls-style", &[("tls.crt", &cert), ("tls.key", &key)])
            + &secret("generic", &[("cert", &cert), ("key", &key)])),
    );
    let secrets = Secrets::new(&objs, "istio-system");
    for name in ["tls-style", "generic"] {
        let tls = settings(&format!(
            r#"{{"mode": "SIMPLE", "credentialName": "{name}"}}"#
        ));
        let c = load(&tls, &secrets, false).unwrap();
        assert_eq!(c.source, format!("kubernetes://{name}"));
        assert_eq!(c.pairs.len(), 1);
        let (config, offered) = server_config(&tls, &c).unwrap();
        assert_eq!(
            config.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        assert_eq!(offered.versions, ["TLSv1_2", "TLSv1_3"]);
    }
}

#[test]
fn secrets_of_other_namespaces_are_not_seen() {
    let (_, cert, key) = issued("a.example.com");
    let objs = objects(&secret("cert", &[("tls.crt", &cert), ("tls.key", &key)]));
    let tls = settings(r#"{"mode": "SIMPLE", "credentialName": "cert"}"#);
    let err = load(&tls, &Secrets::new(&objs, "default"), false)
        .err()
        .unwrap();
    assert!(matches!(err, CredentialError::Missing { .. }), "{err}");
    let reason = err.reason("default/gw", 443);
    assert!(
        reason.starts_with("Secret default/cert: not found")
            && reason.contains("not served until it exists"),
        "{reason}"
    );
}

#[test]
fn a_broken_secret_is_blamed_without_quoting_it() {
    let objs = objects(&secret(
        "cert",
        &[
            ("tls.crt", "garbage"),
            ("tls.key", "-----BEGIN PRIVATE KEY-----\nsecretbytes\n"),
        ],
    ));
    let tls = settings(r#"{"mode": "SIMPLE", "credentialName": "cert"}"#);
    let err = load(&tls, &Secrets::new(&objs, "istio-system"), false)
        .err()
        .unwrap();
    let reason = err.reason("istio-system/gw", 443);
    assert!(
        reason.starts_with("Secret istio-system/cert: tls.crt: no PEM certificate"),
        "{reason}"
    );
    let (_, cert, _) = issued("a.example.com");
    let objs = objects(&secret(
        "cert",
        &[
            ("tls.crt", &cert),
            (
                "tls.key",
                "-----BEGIN PRIVATE KEY-----\nsecretbytes\n-----END PRIVATE KEY-----\n",
            ),
        ],
    ));
    // PEM that decodes is a key as far as PEM goes; the crypto provider refuses it.
    let c = load(&tls, &Secrets::new(&objs, "istio-system"), false).unwrap();
    let err = server_config(&tls, &c).err().unwrap();
    assert!(
        err.contains("unusable certificate or key") && !err.contains("secretbytes"),
        "{err}"
    );
    let objs = objects(&secret(
        "cert",
        &[("tls.crt", &cert), ("tls.key", "not pem")],
    ));
    let err = load(&tls, &Secrets::new(&objs, "istio-system"), false)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("tls.key: no PEM private key"), "{err}");
    let objs = objects(&secret("cert", &[("other", "x")]));
    let err = load(&tls, &Secrets::new(&objs, "istio-system"), false)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("found [other]"), "{err}");
}

#[test]
fn a_key_that_does_not_fit_the_certificate_is_refused() {
    let (_, cert, _) = issued("a.example.com");
    let (_, _, other_key) = issued("a.example.com");
    let objs = objects(&secret(
        "cert",
        &[("tls.crt", &cert), ("tls.key", &other_key)],
    ));
    let tls = settings(r#"{"mode": "SIMPLE", "credentialName": "cert"}"#);
    let c = load(&tls, &Secrets::new(&objs, "istio-system"), false).unwrap();
    let err = server_config(&tls, &c).err().unwrap();
    assert!(err.contains("unusable certificate or key"), "{err}");
}

#[test]
fn the_client_ca_comes_from_the_cacert_secret_first_then_the_secret_itself() {
    let (ca, cert, key) = issued("a.example.com");
    let (other_ca, _, _) = issued("b.example.com");
    let tls = settings(r#"{"mode": "MUTUAL", "credentialName": "cert"}"#);
    // Neither: the server waits for `cert-cacert`.
    let objs = objects(&secret("cert", &[("tls.crt", &cert), ("tls.key", &key)]));
    let err = load(&tls, &Secrets::new(&objs, "istio-system"), true)
        .err()
        .unwrap();
    assert!(
        matches!(&err, CredentialError::Missing { name, .. } if name == "cert-cacert"),
        "{err}"
    );
    // The same Secret's ca.crt.
    let objs = objects(&secret(
        "cert",
        &[("tls.crt", &cert), ("tls.key", &key), ("ca.crt", &ca)],
    ));
    let c = load(&tls, &Secrets::new(&objs, "istio-system"), true).unwrap();
    assert_eq!(
        c.client_ca.as_ref().unwrap().roots,
        certificates(ca.as_bytes()).unwrap()
    );
    assert!(server_config(&tls, &c).is_ok());
    // `cert-cacert` wins over the Secret's own.
    let objs = objects(
        &(secret(
            "cert",
            &[("tls.crt", &cert), ("tls.key", &key), ("ca.crt", &ca)],
        ) + &secret("cert-cacert", &[("cacert", &other_ca)])),
    );
    let c = load(&tls, &Secrets::new(&objs, "istio-system"), true).unwrap();
    assert_eq!(
        c.client_ca.unwrap().roots,
        certificates(other_ca.as_bytes()).unwrap()
    );
}

#[test]
fn protocol_versions_and_cipher_suites_within_what_rustls_has() {
    let (_, cert, key) = issued("a.example.com");
    let objs = objects(&secret("cert", &[("tls.crt", &cert), ("tls.key", &key)]));
    let secrets = Secrets::new(&objs, "istio-system");
    let build = |json: &str| {
        let tls = settings(json);
        let c = load(&tls, &secrets, false).unwrap();
        server_config(&tls, &c).map(|(_, offered)| offered)
    };
    let only13 =
        build(r#"{"mode": "SIMPLE", "credentialName": "cert", "minProtocolVersion": "TLSV1_3"}"#)
            .unwrap();
    assert_eq!(only13.versions, ["TLSv1_3"]);
    let old =
        build(r#"{"mode": "SIMPLE", "credentialName": "cert", "maxProtocolVersion": "TLSV1_1"}"#)
            .err()
            .unwrap();
    assert!(old.contains("TLS 1.2 and 1.3 only"), "{old}");
    let ciphers = build(
        r#"{"mode": "SIMPLE", "credentialName": "cert", "cipherSuites": ["[ECDHE-ECDSA-AES128-GCM-SHA256|ECDHE-ECDSA-CHACHA20-POLY1305]", "AES128-SHA"]}"#,
    )
    .unwrap();
    assert_eq!(
        ciphers.cipher_suites,
        [
            "ECDHE-ECDSA-AES128-GCM-SHA256",
            "ECDHE-ECDSA-CHACHA20-POLY1305"
        ]
    );
    assert_eq!(ciphers.ignored_cipher_suites, ["AES128-SHA"]);
    let none = build(
        r#"{"mode": "SIMPLE", "credentialName": "cert", "maxProtocolVersion": "TLSV1_2", "cipherSuites": ["AES128-SHA"]}"#,
    )
    .err()
    .unwrap();
    assert!(none.contains("none of cipherSuites"), "{none}");
}

#[test]
fn files_are_read_and_blamed_on_the_gateway() {
    let dir = std::env::temp_dir().join(format!("weft-tls-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (_, cert, key) = issued("foo.com");
    std::fs::write(dir.join("tls.crt"), &cert).unwrap();
    std::fs::write(dir.join("tls.key"), &key).unwrap();
    let json = format!(
        r#"{{"mode": "SIMPLE", "serverCertificate": "{0}/tls.crt", "privateKey": "{0}/tls.key"}}"#,
        dir.display()
    );
    let c = load(&settings(&json), &Secrets::new(&[], "istio-system"), false).unwrap();
    assert_eq!(c.source, format!("{}/tls.crt", dir.display()));
    let missing = settings(
        r#"{"mode": "SIMPLE", "serverCertificate": "/nonexistent/tls.crt", "privateKey": "/nonexistent/tls.key"}"#,
    );
    let err = load(&missing, &Secrets::new(&[], "istio-system"), false)
        .err()
        .unwrap()
        .reason("default/gw", 443);
    assert!(
        err.starts_with(
            "Gateway default/gw: port 443: serverCertificate /nonexistent/tls.crt: cannot read it"
        ),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
