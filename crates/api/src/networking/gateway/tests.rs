//! Tests of the Gateway model and Istio's rules for it, through the real loader.

use crate::Spec;
use crate::networking::checks::corpus_problems;
use crate::testing::{assert_error, assert_valid, assert_warning, problems};

/// A Gateway named `gw` with the given spec lines (indented as under `spec:`).
fn gw(spec: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata:\n  name: gw\nspec:\n  selector: {{istio: ingressgateway}}\n{spec}"
    )
}

/// A Gateway with one server made of the given lines (indented as under `- `).
fn server(lines: &str) -> String {
    gw(&format!("  servers:\n  - {}", lines.trim_start()))
}

const HTTP_PORT: &str = "port: {number: 80, name: http, protocol: HTTP}\n    hosts: [\"*\"]\n";

#[test]
fn istio_samples_load_cleanly() {
    let (count, problems) = corpus_problems("Gateway");
    assert!(count >= 9, "only {count} Gateways loaded");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn full_model_decodes() {
    let loaded = assert_valid(&gw(r#"  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["bookinfo/*.bookinfo.com", "./uk.bookinfo.com"]
    name: main
    tls:
      mode: MUTUAL
      serverCertificate: /etc/certs/server.pem
      privateKey: /etc/certs/key.pem
      caCertificates: /etc/certs/ca.pem
      caCrl: /etc/certs/crl.pem
      subjectAltNames: [client.example.com]
      verifyCertificateSpki: [abc]
      verifyCertificateHash: [def]
      minProtocolVersion: TLSV1_2
      maxProtocolVersion: TLSV1_3
      cipherSuites: [ECDHE-RSA-AES256-GCM-SHA384]
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
    tls: {httpsRedirect: true}
  - port: {number: 15443, name: tls, protocol: TLS}
    hosts: ["*.local"]
    tls: {mode: AUTO_PASSTHROUGH}
"#));
    let Spec::Gateway(g) = &loaded.objects[0].spec else {
        panic!("not a Gateway")
    };
    assert_eq!(g.servers.len(), 3);
    let tls = g.servers[0].tls.as_ref().expect("tls");
    assert_eq!(tls.mode, Some(super::ServerTlsMode::Mutual));
    assert_eq!(tls.min_protocol_version, Some(super::TlsProtocol::V1_2));
    assert!(
        g.servers[1]
            .port
            .as_ref()
            .is_some_and(|p| p.protocol().is_http())
    );
}

#[test]
fn servers_are_required() {
    assert_error(&gw(""), &["spec.servers", "at least one server"]);
    assert_error(
        &server("port: {number: 80, name: http, protocol: HTTP}\n"),
        &["spec.servers[0].hosts", "at least one host"],
    );
    assert_error(
        &server("hosts: [\"*\"]\n"),
        &["spec.servers[0].port", "port is required"],
    );
}

#[test]
fn gateway_name_is_a_dns_label() {
    let doc = gw(&format!("  servers:\n  - {HTTP_PORT}")).replace("name: gw", "name: my.gw");
    assert_error(
        &doc,
        &[
            "metadata.name",
            "must be a DNS label (no dots)",
            "test.yaml:4",
        ],
    );
}

#[test]
fn ports_are_checked() {
    assert_error(
        &server("port: {number: 80, name: http, protocol: HTTP3}\n    hosts: [\"*\"]\n"),
        &[
            "spec.servers[0].port.protocol",
            "unsupported protocol \"HTTP3\"",
        ],
    );
    assert_error(
        &server("port: {number: 80, name: http}\n    hosts: [\"*\"]\n"),
        &["spec.servers[0].port.protocol", "protocol is required"],
    );
    assert_error(
        &server("port: {number: 80, protocol: HTTP}\n    hosts: [\"*\"]\n"),
        &["spec.servers[0].port.name", "port name is required"],
    );
    assert_error(
        &server("port: {name: http, protocol: HTTP}\n    hosts: [\"*\"]\n"),
        &["spec.servers[0].port.number", "port number is required"],
    );
    assert_error(
        &server("port: {number: 70000, name: http, protocol: HTTP}\n    hosts: [\"*\"]\n"),
        &["spec.servers[0].port.number", "1-65535"],
    );
    assert_error(
        &server(
            "port: {number: 80, name: http, protocol: HTTP, targetPort: 8080}\n    hosts: [\"*\"]\n",
        ),
        &["spec.servers[0].port.targetPort", "no effect on a Gateway"],
    );
    // Protocols are case-insensitive (seed 002 writes `http`).
    assert_valid(&server(
        "port: {number: 80, name: http, protocol: http}\n    hosts: [\"*\"]\n",
    ));
}

#[test]
fn port_names_are_unique() {
    let doc = gw(&format!(
        "  servers:\n  - {HTTP_PORT}  - port: {{number: 8080, name: http, protocol: HTTP}}\n    hosts: [\"*\"]\n"
    ));
    assert_error(
        &doc,
        &[
            "spec.servers[1].port.name",
            "duplicate port name \"http\"",
            "test.yaml:10",
        ],
    );
}

#[test]
fn hosts_are_namespace_slash_dns_names() {
    let host = |h: &str| {
        server(&format!(
            "port: {{number: 80, name: http, protocol: HTTP}}\n    hosts: [\"{h}\"]\n"
        ))
    };
    for ok in [
        "*",
        "*.example.com",
        "prod/*.example.com",
        "./foo.example.com",
        "*/foo.example.com",
        "10.0.0.1",
    ] {
        assert_valid(&host(ok));
    }
    assert_error(
        &host("foo"),
        &["spec.servers[0].hosts[0]", "short host name \"foo\""],
    );
    assert_error(
        &host("bad_ns/*"),
        &["spec.servers[0].hosts[0]", "invalid namespace \"bad_ns\""],
    );
    assert_error(
        &host("~/*"),
        &["spec.servers[0].hosts[0]", "invalid namespace \"~\""],
    );
    assert_error(
        &host("ns/"),
        &["spec.servers[0].hosts[0]", "must not be empty"],
    );
    assert_error(
        &host("*foo.example.com"),
        &["spec.servers[0].hosts[0]", "partial wildcard"],
    );
}

#[test]
fn bind_addresses() {
    assert_valid(&server(&format!("bind: 127.0.0.1\n    {HTTP_PORT}")));
    assert_error(
        &server(&format!("bind: localhost\n    {HTTP_PORT}")),
        &["spec.servers[0].bind", "not a valid IP"],
    );
    assert_valid(&server(
        "bind: unix:///var/run/gw.sock\n    port: {number: 0, name: http, protocol: HTTP}\n    hosts: [\"*\"]\n",
    ));
    assert_error(
        &server(&format!("bind: unix:///var/run/gw.sock\n    {HTTP_PORT}")),
        &["spec.servers[0].port.number", "must be 0"],
    );
    assert_error(
        &server(
            "bind: unix://relative\n    port: {number: 0, name: http, protocol: HTTP}\n    hosts: [\"*\"]\n",
        ),
        &["spec.servers[0].bind", "absolute path"],
    );
}

/// Seed 002's HTTPS gateway with certificate files.
#[test]
fn https_needs_tls_settings() {
    let https = "port: {number: 443, name: https, protocol: HTTPS}\n    hosts: [foo.com]\n";
    assert_error(
        &server(https),
        &["spec.servers[0].tls", "need tls settings"],
    );
    assert_valid(&server(&format!(
        "{https}    tls: {{mode: SIMPLE, serverCertificate: /tmp/tls.crt, privateKey: /tmp/tls.key}}\n"
    )));
    assert_valid(&server(&format!(
        "{https}    tls: {{mode: SIMPLE, credentialName: foo-cert}}\n"
    )));
    assert_error(
        &server(&format!(
            "{https}    tls: {{mode: SIMPLE, serverCertificate: /tmp/tls.crt}}\n"
        )),
        &[
            "spec.servers[0].tls.privateKey",
            "SIMPLE TLS needs a privateKey",
        ],
    );
    assert_error(
        &server(&format!("{https}    tls: {{mode: SIMPLE}}\n")),
        &[
            "spec.servers[0].tls.serverCertificate",
            "or a credentialName",
        ],
    );
    assert_error(
        &server(&format!(
            "{https}    tls: {{mode: MUTUAL, serverCertificate: /c, privateKey: /k}}\n"
        )),
        &[
            "spec.servers[0].tls.caCertificates",
            "MUTUAL TLS needs caCertificates",
        ],
    );
    assert_valid(&server(&format!(
        "{https}    tls: {{mode: MUTUAL, credentialName: foo-cert}}\n"
    )));
    assert_error(
        &server(&format!(
            "{https}    tls: {{mode: OPTIONAL_MUTUAL, serverCertificate: /c, privateKey: /k}}\n"
        )),
        &["spec.servers[0].tls.caCertificates", "OPTIONAL_MUTUAL"],
    );
}

#[test]
fn plain_servers_take_no_tls() {
    assert_valid(&server(&format!(
        "{HTTP_PORT}    tls: {{httpsRedirect: true}}\n"
    )));
    assert_error(
        &server(&format!(
            "{HTTP_PORT}    tls: {{mode: SIMPLE, credentialName: c}}\n"
        )),
        &["spec.servers[0].tls", "plain-text HTTP server"],
    );
    assert_error(
        &server(
            "port: {number: 3306, name: mysql, protocol: MYSQL}\n    hosts: [\"*\"]\n    tls: {mode: PASSTHROUGH}\n",
        ),
        &["spec.servers[0].tls", "only HTTPS and TLS servers"],
    );
    assert_warning(
        &server(
            "port: {number: 443, name: tls, protocol: TLS}\n    hosts: [\"*\"]\n    tls: {httpsRedirect: true}\n",
        ),
        &[
            "spec.servers[0].tls.httpsRedirect",
            "only has an effect on HTTP servers",
        ],
    );
}

#[test]
fn tls_mode_rules() {
    let tls = |t: &str| {
        server(&format!(
            "port: {{number: 443, name: https, protocol: HTTPS}}\n    hosts: [\"*\"]\n    tls: {t}\n"
        ))
    };
    assert_valid(&tls("{mode: ISTIO_MUTUAL}"));
    assert_error(
        &tls("{mode: ISTIO_MUTUAL, credentialName: c}"),
        &[
            "tls.credentialName",
            "ISTIO_MUTUAL uses the mesh's own certificates",
        ],
    );
    assert_error(
        &tls("{mode: ISTIO_MUTUAL, privateKey: /k}"),
        &["tls.privateKey", "remove privateKey"],
    );
    assert_warning(
        &tls("{mode: PASSTHROUGH, credentialName: c}"),
        &["tls.mode", "certificates are ignored"],
    );
    assert_error(
        &tls("{mode: SIMPLE, credentialName: c, caCrl: /crl}"),
        &["tls.caCrl", "put the CRL in the secret"],
    );
    assert_error(
        &tls("{mode: SIMPLE, serverCertificate: /c, privateKey: /k, caCrl: /crl}"),
        &["tls.caCrl", "no use in SIMPLE"],
    );
    assert_error(&tls("{mode: BOGUS}"), &["tls.mode", "BOGUS"]);
}

#[test]
fn dual_certificates() {
    let tls = |t: &str| {
        server(&format!(
            "port: {{number: 443, name: https, protocol: HTTPS}}\n    hosts: [\"*\"]\n    tls: {t}\n"
        ))
    };
    assert_valid(&tls(
        "{mode: SIMPLE, credentialNames: [rsa-cert, ecdsa-cert]}",
    ));
    assert_valid(&tls(
        "{mode: SIMPLE, tlsCertificates: [{serverCertificate: /rsa.pem, privateKey: /rsa.key}, {serverCertificate: /ec.pem, privateKey: /ec.key}]}",
    ));
    assert_error(
        &tls("{mode: SIMPLE, credentialName: a, credentialNames: [b]}"),
        &[
            "tls.credentialNames",
            "only one of credentialName and credentialNames",
        ],
    );
    assert_error(
        &tls("{mode: SIMPLE, credentialNames: [a, b, c]}"),
        &["tls.credentialNames", "at most 2"],
    );
    assert_error(
        &tls(
            "{mode: SIMPLE, credentialNames: [a], tlsCertificates: [{serverCertificate: /c, privateKey: /k}]}",
        ),
        &[
            "tls.tlsCertificates",
            "only one of credentialNames and tlsCertificates",
        ],
    );
    assert_error(
        &tls("{mode: SIMPLE, tlsCertificates: [{serverCertificate: /c}]}"),
        &["tls.privateKey", "SIMPLE TLS needs"],
    );
}

#[test]
fn cipher_suites() {
    let tls = |t: &str| {
        server(&format!(
            "port: {{number: 443, name: https, protocol: HTTPS}}\n    hosts: [\"*\"]\n    tls: {{mode: SIMPLE, credentialName: c, {t}}}\n"
        ))
    };
    assert_valid(&tls(
        "cipherSuites: [ECDHE-ECDSA-AES128-GCM-SHA256, \"-AES128-SHA\"]",
    ));
    assert_warning(
        &tls("cipherSuites: [NOT-A-CIPHER]"),
        &[
            "tls.cipherSuites[0]",
            "unknown cipher suite \"NOT-A-CIPHER\"",
        ],
    );
    assert_warning(
        &tls("cipherSuites: [AES128-SHA, AES128-SHA]"),
        &["tls.cipherSuites[1]", "duplicate cipher suite"],
    );
    assert_warning(
        &tls("minProtocolVersion: TLSV1_0"),
        &["tls.minProtocolVersion", "need cipherSuites"],
    );
}

#[test]
fn gateway_without_selector_is_flagged() {
    let doc = gw(&format!("  servers:\n  - {HTTP_PORT}"))
        .replace("  selector: {istio: ingressgateway}\n", "");
    assert_warning(&doc, &["spec.selector", "every gateway"]);
    let reports = problems(&doc);
    assert_eq!(reports.len(), 1, "{reports:?}");
}
