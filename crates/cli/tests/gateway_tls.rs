//! Gateway TLS end to end, as Istio's secure-ingress task plays it: the real `weft
//! control-plane`, a `weft proxy --control-plane` gateway in istio-system, Secrets made
//! with `weft create secret`, and curl with `--resolve HOST:PORT:127.0.0.1 --cacert`.
//! SIMPLE and MUTUAL servers, SNI picking a certificate, `httpsRedirect`, a Secret
//! rotated while serving, a missing Secret reported then served, a broken one refused,
//! PASSTHROUGH by SNI beside a terminating server, and the low-port offset.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed set-up step should stop the test

#[allow(dead_code)] // this file uses only part of the shared support
mod support;

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa, KeyPair,
};
use support::config::{service, static_service};
use support::control_plane::{ControlPlane, GatewayProxy};
use support::tcp::TlsBackend;
use support::{Backend, DEADLINE, Reply, TempDir, eventually, free_port, try_curl};

/// A certificate authority made for one test.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, format!("{name} Inc."));
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Ca { issuer }
    }

    fn pem(&self) -> String {
        self.issuer.as_ref().pem()
    }

    /// A certificate for `host` it signs: (cert pem, key pem).
    fn issue(&self, host: &str) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![host.to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, host);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// Writes its certificate, and one it issues for `host`, into `dir`: (ca, cert, key).
    fn files(&self, dir: &Path, host: &str) -> (PathBuf, PathBuf, PathBuf) {
        std::fs::create_dir_all(dir).unwrap();
        let (cert, key) = self.issue(host);
        let paths = (
            dir.join(format!("ca-{host}.crt")),
            dir.join(format!("{host}.crt")),
            dir.join(format!("{host}.key")),
        );
        std::fs::write(&paths.0, self.pem()).unwrap();
        std::fs::write(&paths.1, cert).unwrap();
        std::fs::write(&paths.2, key).unwrap();
        paths
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `weft create secret tls NAME -n istio-system --cert --key`; asserts kubectl's line.
fn create_tls_secret(cp: &ControlPlane, name: &str, cert: &Path, key: &Path) {
    let out = cp.weft(&["create", "secret", "tls", name, "-n", "istio-system"], "");
    assert!(!out.status.success(), "--cert and --key are required");
    let out = cp.weft(
        &[
            "create",
            "secret",
            "tls",
            name,
            "-n",
            "istio-system",
            "--cert",
            path(cert),
            "--key",
            path(key),
        ],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("secret/{name} created\n")
    );
}

/// An HTTPS request to `host` on 127.0.0.1:`port`, trusting `ca`; `None` when TLS or the
/// connection fails.
fn https(host: &str, port: u16, ca: &Path, path_and_query: &str, extra: &[&str]) -> Option<Reply> {
    let resolve = format!("{host}:{port}:127.0.0.1");
    let url = format!("https://{host}:{port}{path_and_query}");
    let mut args = vec!["-m", "5", "--resolve", &resolve, "--cacert", path(ca)];
    args.extend_from_slice(extra);
    args.push(&url);
    try_curl(&args)
}

/// A Gateway `mygateway` (namespace default, for the istio-system ingress gateway) with
/// `servers` (items of `spec.servers`, indented two spaces).
fn gateway(servers: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: mygateway
spec:
  selector:
    istio: ingressgateway
  servers:
{servers}"
    )
}

/// An HTTPS server on `port` for `host`, terminating with `tls` (a flow map).
fn https_server(port: u16, name: &str, host: &str, tls: &str) -> String {
    format!(
        "  - port: {{number: {port}, name: {name}, protocol: HTTPS}}
    tls: {tls}
    hosts: [\"{host}\"]
"
    )
}

/// Istio's secure-ingress config: mygateway with one HTTPS server on `port` for
/// httpbin.example.com terminating with `tls` (a flow map), and its route to httpbin.
fn httpbin_https(port: u16, tls: &str) -> String {
    format!(
        "{}---\n{}",
        gateway(&https_server(port, "https", "httpbin.example.com", tls)),
        route("httpbin", "httpbin.example.com", "httpbin")
    )
}

/// A VirtualService for `host` on mygateway routing everything to `backend`.
fn route(name: &str, host: &str, backend: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: {name}
spec:
  hosts: [\"{host}\"]
  gateways: [mygateway]
  http:
  - route:
    - destination:
        host: {backend}
        port: {{number: 9080}}
"
    )
}

/// A control plane, the ingress gateway proxy, and the echo backend `httpbin`.
struct Mesh {
    proxy: GatewayProxy,
    cp: ControlPlane,
    _httpbin: Backend,
    dir: TempDir,
}

impl Mesh {
    fn start(name: &str, proxy_args: &[&str]) -> Mesh {
        let dir = TempDir::new(name);
        let httpbin = Backend::start("httpbin");
        let cp = ControlPlane::start(&dir);
        cp.apply(&static_service("httpbin", httpbin.port));
        let proxy = GatewayProxy::start(&dir, &cp, proxy_args);
        Mesh {
            proxy,
            cp,
            _httpbin: httpbin,
            dir,
        }
    }

    fn certs(&self) -> PathBuf {
        self.dir.config_dir().join("certs")
    }
}

#[test]
fn simple_tls_from_a_secret_serves_https_to_curl_with_the_ca() {
    let mesh = Mesh::start("gwtls-simple", &[]);
    let ca = Ca::new("example.com");
    let (ca_file, cert, key) = ca.files(&mesh.certs(), "httpbin.example.com");
    create_tls_secret(&mesh.cp, "httpbin-credential", &cert, &key);
    // kubectl's refusal of a name taken, and its table without the key material.
    let again = mesh.cp.weft(
        &[
            "create",
            "secret",
            "tls",
            "httpbin-credential",
            "-n",
            "istio-system",
            "--cert",
            path(&cert),
            "--key",
            path(&key),
        ],
        "",
    );
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr)
            .contains("secrets \"httpbin-credential\" already exists")
    );
    let table = mesh.cp.weft(&["get", "secret", "-n", "istio-system"], "");
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(table.contains("TYPE") && table.contains("DATA"), "{table}");
    assert!(table.contains("kubernetes.io/tls   2"), "{table}");
    assert!(
        !table.contains("BEGIN") && !table.contains("LS0t"),
        "{table}"
    );
    let port = free_port();
    mesh.cp.apply(&httpbin_https(
        port,
        "{mode: SIMPLE, credentialName: httpbin-credential}",
    ));
    let reply = eventually("HTTPS through the gateway", DEADLINE, || {
        https("httpbin.example.com", port, &ca_file, "/status/418", &[])
    });
    assert_eq!(reply.status, 200);
    let echo = reply.echo();
    assert_eq!(echo.backend(), "httpbin");
    assert_eq!(echo.header("x-forwarded-proto"), Some("https"));
    assert_eq!(reply.version, "HTTP/2", "ALPN h2");
    let h1 = https("httpbin.example.com", port, &ca_file, "/", &["--http1.1"]).unwrap();
    assert_eq!((h1.status, h1.version.as_str()), (200, "HTTP/1.1"));
    // The certificate is the one made for the host: an unrelated CA does not trust it,
    // and a host the Gateway does not serve gets no certificate at all.
    let other = Ca::new("other.com");
    let (other_ca, _, _) = other.files(&mesh.certs(), "x.other.com");
    assert!(https("httpbin.example.com", port, &other_ca, "/", &[]).is_none());
    assert!(https("unknown.example.com", port, &ca_file, "/", &[]).is_none());
    // TLS 1.2 and 1.3 both by default.
    for v in [
        ["--tlsv1.2", "--tls-max", "1.2"],
        ["--tlsv1.3", "--tls-max", "1.3"],
    ] {
        let r = https("httpbin.example.com", port, &ca_file, "/", &v).unwrap();
        assert_eq!(r.status, 200, "{v:?}");
    }
}

#[test]
fn mutual_tls_requires_a_client_certificate_signed_by_the_ca() {
    let mesh = Mesh::start("gwtls-mutual", &[]);
    let ca = Ca::new("example.com");
    let dir = mesh.certs();
    let (ca_file, cert, key) = ca.files(&dir, "httpbin.example.com");
    let (_, client_cert, client_key) = ca.files(&dir, "client.example.com");
    // Istio's MUTUAL step: one generic Secret with the key, certificate and CA.
    let out = mesh.cp.weft(
        &[
            "create",
            "secret",
            "generic",
            "httpbin-credential",
            "-n",
            "istio-system",
            &format!("--from-file=tls.key={}", path(&key)),
            &format!("--from-file=tls.crt={}", path(&cert)),
            &format!("--from-file=ca.crt={}", path(&ca_file)),
        ],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "secret/httpbin-credential created\n"
    );
    let port = free_port();
    let apply = |mode: &str| {
        mesh.cp.apply(&httpbin_https(
            port,
            &format!("{{mode: {mode}, credentialName: httpbin-credential}}"),
        ))
    };
    apply("MUTUAL");
    let client = ["--cert", path(&client_cert), "--key", path(&client_key)];
    let reply = eventually("mutual TLS with a client certificate", DEADLINE, || {
        https(
            "httpbin.example.com",
            port,
            &ca_file,
            "/status/418",
            &client,
        )
    });
    assert_eq!(reply.echo().backend(), "httpbin");
    assert!(
        https("httpbin.example.com", port, &ca_file, "/status/418", &[]).is_none(),
        "no client certificate: the handshake fails"
    );
    // A client certificate from another CA is refused too.
    let stranger = Ca::new("stranger.com");
    let (_, s_cert, s_key) = stranger.files(&dir, "client.stranger.com");
    let theirs = ["--cert", path(&s_cert), "--key", path(&s_key)];
    assert!(https("httpbin.example.com", port, &ca_file, "/", &theirs).is_none());
    // OPTIONAL_MUTUAL lets a client without a certificate in, and still refuses a bad one.
    apply("OPTIONAL_MUTUAL");
    eventually(
        "OPTIONAL_MUTUAL without a client certificate",
        DEADLINE,
        || https("httpbin.example.com", port, &ca_file, "/", &[]).filter(|r| r.status == 200),
    );
    assert!(https("httpbin.example.com", port, &ca_file, "/", &theirs).is_none());
    assert_eq!(
        https("httpbin.example.com", port, &ca_file, "/", &client)
            .unwrap()
            .status,
        200
    );
}

#[test]
fn sni_picks_the_certificate_and_routes_of_each_host_on_one_port() {
    let mesh = Mesh::start("gwtls-sni", &[]);
    let helloworld = Backend::start("helloworld");
    mesh.cp
        .apply(&static_service("helloworld", helloworld.port));
    let dir = mesh.certs();
    let (ca1, ca2) = (Ca::new("example.com"), Ca::new("example.org"));
    let (ca1_file, cert1, key1) = ca1.files(&dir, "httpbin.example.com");
    let (ca2_file, cert2, key2) = ca2.files(&dir, "helloworld.example.com");
    create_tls_secret(&mesh.cp, "httpbin-credential", &cert1, &key1);
    create_tls_secret(&mesh.cp, "helloworld-credential", &cert2, &key2);
    let port = free_port();
    mesh.cp.apply(&format!(
        "{}---\n{}---\n{}",
        gateway(&format!(
            "{}{}",
            https_server(
                port,
                "https-httpbin",
                "httpbin.example.com",
                "{mode: SIMPLE, credentialName: httpbin-credential}"
            ),
            https_server(
                port,
                "https-helloworld",
                "helloworld.example.com",
                "{mode: SIMPLE, credentialName: helloworld-credential}"
            ),
        )),
        route("httpbin", "httpbin.example.com", "httpbin"),
        route("helloworld", "helloworld.example.com", "helloworld"),
    ));
    let a = eventually("httpbin.example.com", DEADLINE, || {
        https("httpbin.example.com", port, &ca1_file, "/", &[])
    });
    assert_eq!(a.echo().backend(), "httpbin");
    let b = eventually("helloworld.example.com", DEADLINE, || {
        https("helloworld.example.com", port, &ca2_file, "/", &[])
    });
    assert_eq!(b.echo().backend(), "helloworld");
    // Each host's certificate is its own: the other CA does not verify it.
    assert!(https("helloworld.example.com", port, &ca1_file, "/", &[]).is_none());
    assert!(https("httpbin.example.com", port, &ca2_file, "/", &[]).is_none());
    // The Host header does not cross servers: helloworld's routes are not httpbin's.
    let crossed = https(
        "httpbin.example.com",
        port,
        &ca1_file,
        "/",
        &["-H", "Host: helloworld.example.com"],
    )
    .unwrap();
    assert_eq!(crossed.status, 404);
}

#[test]
fn https_redirect_answers_301_to_the_https_port() {
    let mesh = Mesh::start("gwtls-redirect", &[]);
    let ca = Ca::new("example.com");
    let (ca_file, cert, key) = ca.files(&mesh.certs(), "httpbin.example.com");
    create_tls_secret(&mesh.cp, "httpbin-credential", &cert, &key);
    let (http_port, https_port) = (free_port(), free_port());
    mesh.cp.apply(&format!(
        "{}---\n{}",
        gateway(&format!(
            "  - port: {{number: {http_port}, name: http, protocol: HTTP}}
    hosts: [\"httpbin.example.com\"]
    tls: {{httpsRedirect: true}}
{}",
            https_server(
                https_port,
                "https",
                "httpbin.example.com",
                "{mode: SIMPLE, credentialName: httpbin-credential}"
            )
        )),
        route("httpbin", "httpbin.example.com", "httpbin")
    ));
    let url = format!("http://127.0.0.1:{http_port}/status/200?x=1");
    let reply = eventually("the redirect", DEADLINE, || {
        try_curl(&["-m", "5", "-H", "Host: httpbin.example.com", &url]).filter(|r| r.status == 301)
    });
    let location = format!("https://httpbin.example.com:{https_port}/status/200?x=1");
    assert_eq!(reply.header("location"), Some(location.as_str()));
    // Following it lands on the HTTPS server.
    let resolve = format!("httpbin.example.com:{https_port}:127.0.0.1");
    let followed = try_curl(&[
        "-m",
        "5",
        "-L",
        "--resolve",
        &resolve,
        "--cacert",
        path(&ca_file),
        "-H",
        "Host: httpbin.example.com",
        &url,
    ])
    .unwrap();
    // `curl -i -L` prints the 301 first, then the answer it followed it to.
    let followed = support::parse_reply(&followed.body);
    assert_eq!(followed.status, 200, "{followed:?}");
    assert_eq!(followed.echo().backend(), "httpbin");
}

#[test]
fn a_rotated_secret_is_served_without_a_restart() {
    let mesh = Mesh::start("gwtls-rotate", &[]);
    let dir = mesh.certs();
    let (old, new) = (Ca::new("example.com"), Ca::new("example.net"));
    let (old_ca, cert, key) = old.files(&dir.join("old"), "httpbin.example.com");
    create_tls_secret(&mesh.cp, "httpbin-credential", &cert, &key);
    let port = free_port();
    mesh.cp.apply(&httpbin_https(
        port,
        "{mode: SIMPLE, credentialName: httpbin-credential}",
    ));
    eventually("the first certificate", DEADLINE, || {
        https("httpbin.example.com", port, &old_ca, "/", &[])
    });
    let pid = mesh.proxy.pid();
    // kubectl's way to replace a Secret: print it with --dry-run, apply that.
    let (new_ca, cert, key) = new.files(&dir.join("new"), "httpbin.example.com");
    let printed = mesh.cp.weft(
        &[
            "create",
            "secret",
            "tls",
            "httpbin-credential",
            "-n",
            "istio-system",
            "--cert",
            path(&cert),
            "--key",
            path(&key),
            "--dry-run=client",
            "-o",
            "yaml",
        ],
        "",
    );
    assert!(
        printed.status.success(),
        "{}",
        String::from_utf8_lossy(&printed.stderr)
    );
    let yaml = String::from_utf8(printed.stdout).unwrap();
    assert!(
        yaml.contains("kind: Secret") && yaml.contains("tls.crt:"),
        "{yaml}"
    );
    mesh.cp.apply(&yaml);
    eventually("the new certificate", DEADLINE, || {
        https("httpbin.example.com", port, &new_ca, "/", &[])
    });
    assert!(https("httpbin.example.com", port, &old_ca, "/", &[]).is_none());
    assert_eq!(mesh.proxy.pid(), pid, "the same proxy process");
}

#[test]
fn a_missing_secret_is_reported_and_served_once_created_and_a_broken_one_is_refused() {
    let mesh = Mesh::start("gwtls-missing", &[]);
    let port = free_port();
    // The Gateway first, as happens when a Secret is deleted and created again.
    mesh.cp.apply(&httpbin_https(
        port,
        "{mode: SIMPLE, credentialName: late-credential}",
    ));
    eventually("the proxy to report the missing Secret", DEADLINE, || {
        mesh.proxy
            .log_text()
            .contains("Secret istio-system/late-credential: not found")
            .then_some(())
    });
    // Nothing is refused: the Gateway is taken and its server waits, unpublished.
    let config = eventually("CONFIG to be SYNCED", DEADLINE, || {
        mesh.cp
            .sync_state("CONFIG")
            .filter(|t| t["state"] == "SYNCED")
    });
    assert!(config["last_nack"].is_null(), "{config}");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    let dump = mesh.proxy.config_dump();
    let rejected = dump["rejected"].to_string();
    assert!(
        rejected.contains("late-credential: not found"),
        "{rejected}"
    );
    let ca = Ca::new("example.com");
    let (ca_file, cert, key) = ca.files(&mesh.certs(), "httpbin.example.com");
    create_tls_secret(&mesh.cp, "late-credential", &cert, &key);
    eventually("HTTPS once the Secret exists", DEADLINE, || {
        https("httpbin.example.com", port, &ca_file, "/", &[]).filter(|r| r.status == 200)
    });
    // A Secret whose certificate is not PEM is refused, naming it; the good one stays.
    mesh.cp.apply(
        "apiVersion: v1
kind: Secret
metadata: {name: late-credential, namespace: istio-system}
type: kubernetes.io/tls
stringData: {tls.crt: not a certificate, tls.key: not a key}
",
    );
    let nacked = eventually("CONFIG to be NACKED", DEADLINE, || {
        mesh.cp
            .sync_state("CONFIG")
            .filter(|t| t["state"] == "NACKED")
    });
    let reason = nacked["last_nack"].as_str().unwrap();
    assert!(
        reason.contains("Secret/istio-system/late-credential") && reason.contains("tls.crt"),
        "{reason}"
    );
    assert!(
        !reason.contains("not a key"),
        "no key material in reports: {reason}"
    );
    assert_eq!(
        https("httpbin.example.com", port, &ca_file, "/", &[])
            .unwrap()
            .status,
        200
    );
    // `weft delete secret` takes the server down again.
    let out = mesh.cp.weft(
        &["delete", "secret", "late-credential", "-n", "istio-system"],
        "",
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "secret \"late-credential\" deleted\n"
    );
    eventually("the server to go down with its Secret", DEADLINE, || {
        https("httpbin.example.com", port, &ca_file, "/", &[])
            .is_none()
            .then_some(())
    });
}

#[test]
fn simple_tls_from_files_as_the_seed_writes_it() {
    let mesh = Mesh::start("gwtls-files", &[]);
    let ca = Ca::new("example.com");
    let (ca_file, cert, key) = ca.files(&mesh.certs(), "foo.com");
    let port = free_port();
    mesh.cp.apply(&format!(
        "{}---\n{}",
        gateway(&https_server(
            port,
            "https",
            "foo.com",
            &format!(
                "{{mode: SIMPLE, serverCertificate: {}, privateKey: {}}}",
                path(&cert),
                path(&key)
            )
        )),
        route("foo", "foo.com", "httpbin")
    ));
    let reply = eventually("HTTPS with the certificate files", DEADLINE, || {
        https("foo.com", port, &ca_file, "/", &[])
    });
    assert_eq!(reply.echo().backend(), "httpbin");
}

#[test]
fn passthrough_by_sni_shares_the_port_with_a_terminating_server() {
    let mesh = Mesh::start("gwtls-passthrough", &[]);
    let nginx = TlsBackend::start(&mesh.dir, "nginx", "nginx.example.com");
    mesh.cp.apply(&service("nginx", "TLS", &[nginx.port]));
    let ca = Ca::new("example.com");
    let (ca_file, cert, key) = ca.files(&mesh.certs(), "httpbin.example.com");
    create_tls_secret(&mesh.cp, "httpbin-credential", &cert, &key);
    let port = free_port();
    mesh.cp.apply(&format!(
        "{}  - port: {{number: {port}, name: tls-nginx, protocol: TLS}}
    tls: {{mode: PASSTHROUGH}}
    hosts: [\"nginx.example.com\"]
---
{}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: nginx
spec:
  hosts: [\"nginx.example.com\"]
  gateways: [mygateway]
  tls:
  - match:
    - port: {port}
      sniHosts: [\"nginx.example.com\"]
    route:
    - destination:
        host: nginx
        port: {{number: 9080}}
",
        gateway(&https_server(
            port,
            "https",
            "httpbin.example.com",
            "{mode: SIMPLE, credentialName: httpbin-credential}"
        )),
        route("httpbin", "httpbin.example.com", "httpbin"),
    ));
    // The backend's own certificate reaches the client: the gateway did not terminate.
    let reply = eventually("passthrough to the TLS backend", DEADLINE, || {
        https(
            "nginx.example.com",
            port,
            &nginx.cert(),
            "/who",
            &["--http1.1"],
        )
    });
    assert_eq!(reply.body, "nginx\n");
    let terminated = https("httpbin.example.com", port, &ca_file, "/", &[]).unwrap();
    assert_eq!(terminated.echo().backend(), "httpbin");
}

#[test]
fn the_low_port_offset_publishes_port_80_higher_and_says_where() {
    let published = free_port();
    let offset = (published - 80).to_string();
    let mesh = Mesh::start("gwtls-offset", &["--low-port-offset", &offset]);
    mesh.cp.apply(&format!(
        "{}---\n{}",
        gateway(
            "  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [\"*\"]
"
        ),
        route("httpbin", "*", "httpbin")
    ));
    let url = format!("http://127.0.0.1:{published}/");
    let reply = eventually("port 80 served on 80 + the offset", DEADLINE, || {
        try_curl(&["-m", "5", &url]).filter(|r| r.status == 200)
    });
    assert_eq!(reply.echo().backend(), "httpbin");
    let dump = mesh.proxy.config_dump();
    assert_eq!(dump["listeners"]["80"]["port"], 80);
    assert_eq!(dump["listeners"]["80"]["published_port"], published);
    let log = mesh.proxy.log_text();
    assert!(
        log.lines().any(|l| l.contains("listening")
            && l.contains("port=80")
            && l.contains(&format!("published={published}"))),
        "{log}"
    );
}
