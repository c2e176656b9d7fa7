//! `weft proxy --mode sidecar` end to end, as Istio runs it: workloads in their own
//! network namespaces with Istio's iptables capture rules, the sidecar as UID 1337 beside
//! each, real apps and curl. Needs root, iproute2 and iptables (it fails, naming the
//! package, when one is missing).
#![allow(clippy::unwrap_used)] // a failed set-up step should stop the test

#[path = "support/netns.rs"]
mod netns;
#[allow(dead_code)] // shared with the gateway tests; not every helper is used here
mod support;

use netns::{App, Lab, Pod, ip};
use support::{DEADLINE, Reply, eventually};

/// The test binary doubles as the apps and the sidecar launcher that the lab runs inside
/// namespaces; run normally, this returns at once.
#[test]
#[ignore = "not a test: the helper processes the capture tests start inside namespaces"]
fn netns_helper() {
    netns::helper_main();
}

/// `reviews` as Istio's bookinfo has it, meshed the VM way: a ServiceEntry without
/// addresses (so the sidecar auto-allocates its VIP), a WorkloadEntry per version, a
/// subset per version, and a VirtualService sending `end-user: jason` to v2, the rest
/// to v1.
const REVIEWS: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: reviews
spec:
  hosts:
  - reviews.default.svc.cluster.local
  location: MESH_INTERNAL
  ports:
  - number: 9080
    name: http
    protocol: HTTP
  resolution: STATIC
  workloadSelector:
    labels:
      app: reviews
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: reviews-v1
spec:
  address: 10.250.0.11
  labels:
    app: reviews
    version: v1
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: reviews-v2
spec:
  address: 10.250.0.12
  labels:
    app: reviews
    version: v2
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
  subsets:
  - name: v1
    labels:
      version: v1
  - name: v2
    labels:
      version: v2
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - match:
    - headers:
        end-user:
          exact: jason
    route:
    - destination:
        host: reviews
        subset: v2
  - route:
    - destination:
        host: reviews
        subset: v1
";

/// A client pod and the two reviews pods, each with capture and a sidecar; the
/// client's /etc/hosts names reviews by the VIP its sidecar allocated.
fn bookinfo() -> (Lab, Pod, Pod) {
    let mut lab = Lab::new();
    lab.write_config("reviews.yaml", REVIEWS);
    let client = lab.pod("sleep", 10);
    let v1 = lab.pod("reviews-v1", 11);
    let v2 = lab.pod("reviews-v2", 12);
    lab.app(&v1, App::Echo, "reviews-v1", &[9080]);
    lab.app(&v2, App::Echo, "reviews-v2", &[9080]);
    for (pod, labels) in [
        (&client, "app=sleep"),
        (&v1, "app=reviews,version=v1"),
        (&v2, "app=reviews,version=v2"),
    ] {
        lab.capture(pod);
        lab.sidecar(pod, &["--labels", labels]);
    }
    let vip = vip_of(&lab, &client, "reviews.default.svc.cluster.local");
    assert!(
        vip.starts_with("240.240."),
        "auto-allocated VIPs come from 240.240.0.0/16, got {vip}"
    );
    lab.hosts(
        &client,
        &[
            ("reviews", vip.clone()),
            ("reviews.default", vip.clone()),
            ("reviews.default.svc.cluster.local", vip),
        ],
    );
    (lab, client, v2)
}

/// The address a sidecar gives `host`, from its config dump.
fn vip_of(lab: &Lab, pod: &Pod, host: &str) -> String {
    let dump = lab.admin_json(pod, "/config_dump");
    let address = dump["registry"]["services"][host]["addresses"][0]
        .as_str()
        .unwrap_or_else(|| panic!("{host} has no address in the config dump: {dump}"));
    address.trim_end_matches("/32").to_string()
}

fn ok(reply: Result<Reply, String>) -> Reply {
    let reply = reply.unwrap_or_else(|e| panic!("curl failed: {e}"));
    assert_eq!(reply.status, 200, "{reply:?}");
    reply
}

#[test]
fn captured_request_is_routed_by_virtual_service_and_delivered_inbound() {
    let (lab, client, _) = bookinfo();

    let jason = ok(lab.curl(&client, &["-H", "end-user: jason", "http://reviews:9080/"]));
    let echo = jason.echo();
    assert_eq!(
        echo.backend(),
        "reviews-v2",
        "the header match routes to subset v2"
    );
    assert_eq!(
        echo.0["local"], "127.0.0.1:9080",
        "reviews-v2's own sidecar captured the request inbound and delivered it on 127.0.0.1"
    );
    assert_eq!(echo.header("host"), Some("reviews:9080"));
    assert!(echo.header("x-request-id").is_some(), "{:?}", echo.0);
    assert!(
        jason.header("x-envoy-upstream-service-time").is_some(),
        "the client's sidecar routed it: {jason:?}"
    );

    let anyone = ok(lab.curl(&client, &["http://reviews:9080/"]));
    assert_eq!(
        anyone.echo().backend(),
        "reviews-v1",
        "everyone else gets v1"
    );

    // Istio's outbound domains: the FQDN (with or without the port) names it too.
    for url in [
        "http://reviews.default.svc.cluster.local:9080/",
        "http://reviews.default:9080/",
    ] {
        let reply = ok(lab.curl(&client, &["-H", "end-user: jason", url]));
        assert_eq!(reply.echo().backend(), "reviews-v2", "{url}");
    }
}

#[test]
fn the_proxys_own_connections_are_not_captured_again() {
    let (lab, client, v2) = bookinfo();
    let redirected = "-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001";
    let inbound = "-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006";
    let exempt = "-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN";
    let before = (
        lab.nat_count(&client, redirected),
        lab.nat_count(&client, exempt),
        lab.nat_count(&v2, inbound),
        lab.nat_count(&v2, exempt),
    );

    ok(lab.curl(&client, &["-H", "end-user: jason", "http://reviews:9080/"]));

    assert_eq!(
        lab.nat_count(&client, redirected) - before.0,
        1,
        "only curl's connection is redirected to 15001; the sidecar's own one to reviews-v2 is not (no loop)"
    );
    assert!(
        lab.nat_count(&client, exempt) > before.1,
        "the sidecar's upstream connection left as UID 1337"
    );
    assert_eq!(
        lab.nat_count(&v2, inbound) - before.2,
        1,
        "one inbound capture"
    );
    assert!(
        lab.nat_count(&v2, exempt) > before.3,
        "the server sidecar's connection to the app is exempt"
    );
}

/// A pod outside the mesh, no sidecar: an HTTP echo on 8080 (a port no service of the
/// mesh uses) and on 9080 (reviews' port, which has an HTTP route table), a greeter on
/// 2525.
fn external(lab: &mut Lab) -> Pod {
    let pod = lab.pod("external", 20);
    lab.app(&pod, App::Echo, "external", &[8080, 9080]);
    lab.app(&pod, App::Greeter, "external", &[2525]);
    pod
}

/// Connects to `host:port` from the pod with bash, reads the greeting, says `ping`,
/// reads the answer. Exit code 0 when both lines came, 1 when the connection was
/// closed first, more than 128 when a read timed out.
fn greet(lab: &Lab, pod: &Pod, host: &str, port: u16) -> (i32, String) {
    let script = format!(
        "exec 3<>/dev/tcp/{host}/{port} || exit 100
IFS= read -r -t 5 line <&3; status=$?; [ $status -eq 0 ] || exit $status
echo \"$line\"
echo ping >&3
IFS= read -r -t 5 line <&3; status=$?; [ $status -eq 0 ] || exit $status
echo \"$line\""
    );
    lab.bash(pod, &script)
}

const SIDECAR_POLICY: &str = "apiVersion: networking.istio.io/v1
kind: Sidecar
metadata:
  name: default
spec:
  outboundTrafficPolicy:
    mode: MODE
";

#[test]
fn registry_only_refuses_destinations_outside_the_registry() {
    let mut lab = Lab::new();
    lab.write_config("reviews.yaml", REVIEWS);
    let outside = external(&mut lab);
    let client = lab.pod("sleep", 10);
    lab.capture(&client);
    lab.sidecar(
        &client,
        &[
            "--labels",
            "app=sleep",
            "--outbound-policy",
            "REGISTRY_ONLY",
        ],
    );
    let url = format!("http://{}:8080/", outside.ip);

    for url in [url.clone(), format!("http://{}:9080/", outside.ip)] {
        let refused = lab.curl(&client, &[&url]).unwrap();
        assert_eq!(refused.status, 502, "{url}: {refused:?}");
        let reason = refused.header("x-weft-reason").unwrap_or("");
        assert!(reason.starts_with("NR"), "{url}: {refused:?}");
    }
    let (code, out) = greet(&lab, &client, &outside.ip.to_string(), 2525);
    assert_eq!(
        (code, out.as_str()),
        (1, ""),
        "opaque TCP outside the registry is closed, not passed through"
    );

    // A Sidecar resource in the workload's namespace overrides the mesh's policy.
    lab.write_config("sidecar.yaml", &SIDECAR_POLICY.replace("MODE", "ALLOW_ANY"));
    let passed = eventually("the Sidecar's ALLOW_ANY to apply", DEADLINE, || {
        lab.curl(&client, &[&url]).ok().filter(|r| r.status == 200)
    });
    assert_eq!(passed.echo().backend(), "external");
}

#[test]
fn allow_any_passes_unknown_destinations_through() {
    let mut lab = Lab::new();
    lab.write_config("reviews.yaml", REVIEWS);
    let outside = external(&mut lab);
    let client = lab.pod("sleep", 10);
    lab.capture(&client);
    lab.sidecar(&client, &["--labels", "app=sleep"]);
    let redirected = "-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001";
    let before = lab.nat_count(&client, redirected);
    let url = format!("http://{}:8080/", outside.ip);

    let reply = ok(lab.curl(&client, &[&url]));
    assert_eq!(reply.echo().backend(), "external");
    assert_eq!(
        reply.echo().0["peer"]
            .as_str()
            .map(|p| p.starts_with(&ip(10).to_string())),
        Some(true)
    );
    assert_eq!(
        reply.echo().header("x-request-id"),
        None,
        "no route table on 8080: the bytes pass through untouched, as Istio's PassthroughCluster"
    );
    // On a port with a route table the request is parsed; an unknown Host passes through
    // to the original destination as HTTP.
    let parsed = ok(lab.curl(&client, &[&format!("http://{}:9080/", outside.ip)]));
    assert_eq!(parsed.echo().backend(), "external");
    assert!(parsed.echo().header("x-request-id").is_some(), "{parsed:?}");
    let (code, out) = greet(&lab, &client, &outside.ip.to_string(), 2525);
    assert_eq!(
        (code, out.as_str()),
        (0, "HELLO external 2525\nECHO ping\n")
    );
    assert_eq!(
        lab.nat_count(&client, redirected) - before,
        3,
        "every connection went through the sidecar"
    );

    // A Sidecar selecting this workload can narrow the policy to REGISTRY_ONLY.
    let selected = SIDECAR_POLICY.replace("MODE", "REGISTRY_ONLY").replace(
        "spec:\n",
        "spec:\n  workloadSelector:\n    labels:\n      app: sleep\n",
    );
    lab.write_config("sidecar.yaml", &selected);
    eventually("the Sidecar's REGISTRY_ONLY to apply", DEADLINE, || {
        lab.curl(&client, &[&url]).ok().filter(|r| r.status == 502)
    });
}

#[test]
fn server_first_protocol_through_capture_is_not_stalled() {
    let mut lab = Lab::new();
    // No protocol and a name that says none: both sidecars sniff, and must give up
    // waiting for the client's first bytes, since the server speaks first.
    lab.write_config(
        "mysql.yaml",
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: mysql
spec:
  hosts:
  - mysql.default.svc.cluster.local
  location: MESH_INTERNAL
  ports:
  - number: 3306
    name: db
  resolution: STATIC
  workloadSelector:
    labels:
      app: mysql
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: mysql
spec:
  address: 10.250.0.13
  labels:
    app: mysql
",
    );
    let client = lab.pod("sleep", 10);
    let server = lab.pod("mysql", 13);
    lab.app(&server, App::Greeter, "mysql", &[3306]);
    for (pod, labels) in [(&client, "app=sleep"), (&server, "app=mysql")] {
        lab.capture(pod);
        lab.sidecar(pod, &["--labels", labels]);
    }
    let vip = vip_of(&lab, &client, "mysql.default.svc.cluster.local");
    lab.hosts(&client, &[("mysql", vip)]);

    let (code, out) = greet(&lab, &client, "mysql", 3306);
    assert_eq!((code, out.as_str()), (0, "HELLO mysql 3306\nECHO ping\n"));
}

#[test]
fn the_app_sees_the_port_the_client_dialled() {
    let mut lab = Lab::new();
    // Explicit `addresses` (no auto-allocation); port 80 is served by the app's 9080;
    // port 9092 declares no protocol, so both sidecars sniff it (and find HTTP).
    lab.write_config(
        "details.yaml",
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: details
spec:
  hosts:
  - details.default.svc.cluster.local
  addresses:
  - 10.250.1.80
  location: MESH_INTERNAL
  ports:
  - number: 80
    name: http
    protocol: HTTP
    targetPort: 9080
  - number: 9091
    name: http-admin
  - number: 9092
    name: web
  resolution: STATIC
  endpoints:
  - address: 10.250.0.14
",
    );
    let client = lab.pod("sleep", 10);
    let server = lab.pod("details", 14);
    lab.app(&server, App::Echo, "details", &[9080, 9091, 9092]);
    for (pod, labels) in [(&client, "app=sleep"), (&server, "app=details")] {
        lab.capture(pod);
        lab.sidecar(pod, &["--labels", labels]);
    }
    lab.hosts(&client, &[("details", "10.250.1.80".into())]);

    for (url, local) in [
        ("http://details/", "127.0.0.1:9080"),
        ("http://details:9091/", "127.0.0.1:9091"),
        ("http://details:9092/", "127.0.0.1:9092"),
    ] {
        let reply = ok(lab.curl(&client, &[url]));
        assert_eq!(reply.echo().0["local"], local, "{url}: {reply:?}");
        assert!(
            reply.header("x-envoy-upstream-service-time").is_some(),
            "{url} was routed as HTTP, not relayed as bytes: {reply:?}"
        );
    }
}

/// `tcp-echo` as Istio's TCP traffic-shifting task has it: a server-first TCP service on
/// 9000 with a v1 and a v2 workload, and a VirtualService `tcp` route splitting its
/// connections 80/20 between the two subsets; port 9001 declares no protocol (sidecars
/// sniff it) and sends everything to v2. `legacy.internal` is v2's address on 9100
/// without endpoints and a PASSTHROUGH load balancer: its `tcp` route goes where the
/// client dialled.
const TCP_ECHO: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: tcp-echo
spec:
  hosts:
  - tcp-echo.default.svc.cluster.local
  location: MESH_INTERNAL
  ports:
  - number: 9000
    name: tcp
    protocol: TCP
  - number: 9001
    name: echo
  resolution: STATIC
  workloadSelector:
    labels:
      app: tcp-echo
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: tcp-echo-v1
spec:
  address: 10.250.0.15
  labels:
    app: tcp-echo
    version: v1
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: tcp-echo-v2
spec:
  address: 10.250.0.16
  labels:
    app: tcp-echo
    version: v2
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: tcp-echo
spec:
  host: tcp-echo
  subsets:
  - name: v1
    labels:
      version: v1
  - name: v2
    labels:
      version: v2
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: tcp-echo
spec:
  hosts:
  - tcp-echo
  tcp:
  - match:
    - port: 9000
    route:
    - destination:
        host: tcp-echo
        port:
          number: 9000
        subset: v1
      weight: 80
    - destination:
        host: tcp-echo
        port:
          number: 9000
        subset: v2
      weight: 20
  - match:
    - port: 9001
    route:
    - destination:
        host: tcp-echo
        port:
          number: 9001
        subset: v2
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: legacy
spec:
  hosts:
  - legacy.internal
  addresses:
  - 10.250.0.16
  location: MESH_INTERNAL
  ports:
  - number: 9100
    name: tcp
    protocol: TCP
  resolution: NONE
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: legacy
spec:
  host: legacy.internal
  trafficPolicy:
    loadBalancer:
      simple: PASSTHROUGH
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: legacy
spec:
  hosts:
  - legacy.internal
  tcp:
  - route:
    - destination:
        host: legacy.internal
";

#[test]
fn tcp_route_splits_captured_connections_80_20() {
    let mut lab = Lab::new();
    lab.write_config("tcp-echo.yaml", TCP_ECHO);
    let client = lab.pod("sleep", 10);
    let v1 = lab.pod("tcp-echo-v1", 15);
    let v2 = lab.pod("tcp-echo-v2", 16);
    lab.app(&v1, App::Greeter, "tcp-echo-v1", &[9000, 9001]);
    lab.app(&v2, App::Greeter, "tcp-echo-v2", &[9000, 9001, 9100]);
    for (pod, labels) in [
        (&client, "app=sleep"),
        (&v1, "app=tcp-echo,version=v1"),
        (&v2, "app=tcp-echo,version=v2"),
    ] {
        lab.capture(pod);
        lab.sidecar(pod, &["--labels", labels]);
    }
    let vip = vip_of(&lab, &client, "tcp-echo.default.svc.cluster.local");
    lab.hosts(&client, &[("tcp-echo", vip)]);

    // N connections from one bash, each reading the greeting of whichever version
    // answered it.
    const N: usize = 500;
    let (code, out) = lab.bash(
        &client,
        &format!(
            "for i in $(seq {N}); do
               exec 3<>/dev/tcp/tcp-echo/9000 || exit 100
               read -r -t 5 line <&3 || exit 101
               echo \"$line\"
               exec 3<&-
             done"
        ),
    );
    assert_eq!(code, 0, "connections failed: {out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), N, "{out}");
    let v1 = lines
        .iter()
        .filter(|l| **l == "HELLO tcp-echo-v1 9000")
        .count();
    let v2 = lines
        .iter()
        .filter(|l| **l == "HELLO tcp-echo-v2 9000")
        .count();
    assert_eq!(v1 + v2, N, "unexpected greetings: {out}");
    // v1's count is Binomial(500, 0.8): mean 400, standard deviation
    // sqrt(500 * 0.8 * 0.2) = 8.94. Five standard deviations (±45) make the bound
    // 355..=445; a correct proxy fails it about once in 1.7 million runs, while the
    // default cluster's even spread (about 250) or an all-v1 route (500) is far outside.
    assert!((355..=445).contains(&v1), "v1 got {v1} of {N}, v2 {v2}");

    // A port without a declared protocol: sniffed, found not to be HTTP (the client
    // waits for the greeting), and routed by its own `tcp` route. The default cluster
    // would answer from v1 about half the time: 20 greetings all from v2 by chance is
    // a one-in-a-million event.
    let (code, out) = lab.bash(
        &client,
        "for i in $(seq 20); do
           exec 3<>/dev/tcp/tcp-echo/9001 || exit 100
           read -r -t 5 line <&3 || exit 101
           echo \"$line\"
           exec 3<&-
         done",
    );
    assert_eq!(code, 0, "connections failed: {out}");
    assert!(
        out.lines().count() == 20 && out.lines().all(|l| l == "HELLO tcp-echo-v2 9001"),
        "{out}"
    );

    // A route to a passthrough cluster connects to the original destination.
    let (code, out) = greet(&lab, &client, "10.250.0.16", 9100);
    assert_eq!(
        (code, out.as_str()),
        (0, "HELLO tcp-echo-v2 9100\nECHO ping\n")
    );
}

/// A real TLS server (`openssl s_server -WWW`) inside a pod on `0.0.0.0:8443`, with a
/// throwaway certificate for `host`; `GET /who` answers its name. Killed, and its files
/// removed, when dropped.
struct PodTlsServer {
    child: std::process::Child,
    dir: std::path::PathBuf,
}

impl PodTlsServer {
    fn start(lab: &Lab, pod: &Pod, name: &str, host: &str) -> PodTlsServer {
        let dir = lab.config_dir().with_file_name(format!("tls-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        support::tcp::openssl(
            &dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "1",
                "-keyout",
                "key.pem",
                "-out",
                "cert.pem",
                "-subj",
                &format!("/CN={host}"),
                "-addext",
                &format!("subjectAltName=DNS:{host}"),
            ],
        );
        std::fs::write(dir.join("who"), format!("{name}\n")).unwrap();
        let child = std::process::Command::new("ip")
            .args([
                "netns", "exec", &pod.ns, "openssl", "s_server", "-quiet", "-WWW",
            ])
            .args([
                "-cert",
                "cert.pem",
                "-key",
                "key.pem",
                "-accept",
                "0.0.0.0:8443",
            ])
            .current_dir(&dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run openssl s_server ({e}): install the Debian package `openssl`")
            });
        let mut server = PodTlsServer { child, dir };
        eventually(
            &format!("openssl s_server in {}", pod.name),
            DEADLINE,
            || {
                if let Ok(Some(status)) = server.child.try_wait() {
                    panic!("openssl s_server exited early ({status})");
                }
                let (code, _) = lab.bash(pod, "exec 3<>/dev/tcp/127.0.0.1/8443");
                (code == 0).then_some(())
            },
        );
        server
    }

    fn cert(&self) -> String {
        self.dir.join("cert.pem").display().to_string()
    }
}

impl Drop for PodTlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `a.example.com` and `b.example.com` share an address and port 443 (TLS); a
/// VirtualService sends each SNI to its own backend service, whose one endpoint is a pod
/// serving its own certificate on 8443. The front service's own endpoint is `a`'s, so a
/// sidecar that ignored the SNI would send `b` there. No route names `c.example.com`.
const TLS_BY_SNI: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: front
spec:
  hosts:
  - a.example.com
  - b.example.com
  - c.example.com
  addresses:
  - 10.250.2.1
  location: MESH_EXTERNAL
  ports:
  - number: 443
    name: tls
    protocol: TLS
    targetPort: 8443
  resolution: STATIC
  endpoints:
  - address: 10.250.0.17
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: tls-backends
spec:
  hosts:
  - tls-a.internal
  location: MESH_EXTERNAL
  ports:
  - number: 8443
    name: tls
    protocol: TLS
  resolution: STATIC
  endpoints:
  - address: 10.250.0.17
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: tls-b
spec:
  hosts:
  - tls-b.internal
  location: MESH_EXTERNAL
  ports:
  - number: 8443
    name: tls
    protocol: TLS
  resolution: STATIC
  endpoints:
  - address: 10.250.0.18
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: front
spec:
  hosts:
  - a.example.com
  - b.example.com
  tls:
  - match:
    - port: 443
      sniHosts:
      - a.example.com
    route:
    - destination:
        host: tls-a.internal
        port:
          number: 8443
  - match:
    - port: 443
      sniHosts:
      - b.example.com
    route:
    - destination:
        host: tls-b.internal
        port:
          number: 8443
";

#[test]
fn tls_route_picks_the_backend_by_sni_through_capture() {
    let mut lab = Lab::new();
    lab.write_config("front.yaml", TLS_BY_SNI);
    let client = lab.pod("sleep", 10);
    let a = lab.pod("tls-a", 17);
    let b = lab.pod("tls-b", 18);
    let server_a = PodTlsServer::start(&lab, &a, "tls-a", "a.example.com");
    let server_b = PodTlsServer::start(&lab, &b, "tls-b", "b.example.com");
    lab.capture(&client);
    lab.sidecar(&client, &["--labels", "app=sleep"]);
    lab.hosts(
        &client,
        &[
            ("a.example.com", "10.250.2.1".into()),
            ("b.example.com", "10.250.2.1".into()),
            ("c.example.com", "10.250.2.1".into()),
        ],
    );

    // The client's own TLS, end to end: each backend's certificate is the only one
    // trusted for its name, so a connection routed to the other backend fails.
    for (host, server, name) in [
        ("a.example.com", &server_a, "tls-a"),
        ("b.example.com", &server_b, "tls-b"),
    ] {
        let url = format!("https://{host}/who");
        let reply = ok(lab.curl(&client, &["--cacert", &server.cert(), &url]));
        assert_eq!(reply.body.trim(), name, "{url}: {reply:?}");
    }
    // On a TLS port with TLS routes, an SNI none of them names matches no filter chain
    // in Istio: the connection is closed (not sent to the service's own endpoint, which
    // `-k` would accept).
    let refused = lab.curl(&client, &["-k", "https://c.example.com/who"]);
    assert!(refused.is_err(), "unmatched SNI was served: {refused:?}");
}
