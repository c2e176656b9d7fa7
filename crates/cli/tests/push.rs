//! The push stream end to end: the real `weft control-plane`, real `weft proxy` gateways
//! that take their config from it (`--control-plane`), echo backends and curl. An apply
//! changes routing within a second; config the proxy cannot serve is NACKed (shown in
//! `/debug/syncz` and the object's status) while the proxy keeps its previous config;
//! a control plane killed and restarted loses no request and the proxy resyncs;
//! deleting an object removes its effect.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed set-up step should stop the test

#[allow(dead_code)] // this file uses only part of the shared support
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::config::{http_gateway, static_service};
use support::control_plane::{ControlPlane, GatewayProxy};
use support::{Backend, DEADLINE, TempDir, eventually, free_port, try_curl};

/// A VirtualService on Gateway `gw` sending everything to `backend`.
fn route_to(backend: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: route
spec:
  hosts: [\"*\"]
  gateways: [gw]
  http:
  - route:
    - destination:
        host: {backend}.default.svc.cluster.local
        port: {{number: 9080}}
"
    )
}

/// Which backend answers on the gateway port (`None`: no answer or not a backend's).
fn answered_by(port: u16) -> Option<String> {
    let reply = try_curl(&["-m", "2", &format!("http://127.0.0.1:{port}/")])?;
    (reply.status == 200).then(|| reply.echo().backend().to_string())
}

/// A mesh of two backends (`v1`, `v2`), a control plane with a Gateway on a free port
/// routing to `v1`, and a gateway proxy serving it.
struct Mesh {
    port: u16,
    cp: ControlPlane,
    proxy: GatewayProxy,
    _backends: [Backend; 2],
    dir: TempDir,
}

impl Mesh {
    fn start(name: &str) -> Mesh {
        let dir = TempDir::new(name);
        let backends = [Backend::start("v1"), Backend::start("v2")];
        let port = free_port();
        let cp = ControlPlane::start(&dir);
        cp.apply(&format!(
            "{}---\n{}---\n{}---\n{}",
            http_gateway("gw", port, &["*"]),
            static_service("v1", backends[0].port),
            static_service("v2", backends[1].port),
            route_to("v1")
        ));
        let proxy = GatewayProxy::start(&dir, &cp, &[]);
        eventually("the proxy to route to v1", DEADLINE, || {
            answered_by(port).filter(|b| b == "v1")
        });
        Mesh {
            port,
            cp,
            proxy,
            _backends: backends,
            dir,
        }
    }
}

#[test]
fn an_applied_virtual_service_changes_routing_within_a_second() {
    let mesh = Mesh::start("push-apply");
    let samples = mesh
        .cp
        .convergence_samples()
        .expect("the convergence histogram");
    let started = Instant::now();
    mesh.cp.apply(&route_to("v2"));
    eventually("the proxy to route to v2", Duration::from_secs(1), || {
        answered_by(mesh.port).filter(|b| b == "v2")
    });
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "took {took:?}");
    // The proxy ACKed it: SYNCED, and the object's status says so.
    eventually("CONFIG to be SYNCED", DEADLINE, || {
        mesh.cp
            .sync_state("CONFIG")
            .filter(|t| t["state"] == "SYNCED")
    });
    eventually(
        "the VirtualService's status to count the proxy",
        DEADLINE,
        || {
            let vs = mesh
                .cp
                .get_json("/apis/networking.istio.io/v1/namespaces/default/virtualservices/route");
            let message = vs["status"]["conditions"][1]["message"]
                .as_str()?
                .to_string();
            (message == "1/1 proxies up to date.").then_some(())
        },
    );
    // The change reached every proxy it affects: one more convergence sample.
    eventually("a convergence sample for the apply", DEADLINE, || {
        mesh.cp.convergence_samples().filter(|n| *n > samples)
    });
    eprintln!("routing changed {took:?} after weft apply returned");
}

#[test]
fn config_the_proxy_cannot_serve_is_nacked_and_the_previous_config_stays() {
    let mesh = Mesh::start("push-nack");
    // A certificate file the proxy cannot read: its tables refuse this server.
    let tls_port = free_port();
    let refused = format!(
        "{}  - port:
      number: {tls_port}
      name: https
      protocol: HTTPS
    tls:
      mode: SIMPLE
      serverCertificate: /nonexistent/weft-test/cert.pem
      privateKey: /nonexistent/weft-test/key.pem
    hosts:
    - \"*\"
",
        http_gateway("gw", mesh.port, &["*"])
    );
    mesh.cp.apply(&refused);
    let config = eventually("CONFIG to be NACKED", DEADLINE, || {
        mesh.cp
            .sync_state("CONFIG")
            .filter(|t| t["state"] == "NACKED")
    });
    let reason = config["last_nack"].as_str().unwrap();
    assert!(
        reason.contains("Gateway/default/gw") && reason.contains("cannot read it"),
        "{reason}"
    );
    // `weft proxy-status` shows it as istioctl would, with the reason.
    let out = mesh.cp.weft(&["proxy-status"], "");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let header = table.lines().next().unwrap();
    assert!(
        header.starts_with("NAME") && header.contains("SERVICES") && header.contains("CONFIG"),
        "{table}"
    );
    let row = table.lines().find(|l| l.starts_with("ingress")).unwrap();
    assert!(
        row.contains("gateway") && row.contains("SYNCED") && row.contains("NACKED"),
        "{table}"
    );
    assert!(
        table.contains("NACK ingress CONFIG: ") && table.contains("cannot read it"),
        "{table}"
    );
    eventually("the Gateway's status to show the NACK", DEADLINE, || {
        let gw = mesh
            .cp
            .get_json("/apis/networking.istio.io/v1/namespaces/default/gateways/gw");
        let message = gw["status"]["conditions"][1]["message"]
            .as_str()?
            .to_string();
        message.contains("rejected").then_some(message)
    });
    // The previous config is still served: v1 answers, the refused port is not open.
    assert_eq!(answered_by(mesh.port).as_deref(), Some("v1"));
    assert!(std::net::TcpStream::connect(("127.0.0.1", tls_port)).is_err());
    // Other changes still go through, and fixing the Gateway clears the NACK.
    mesh.cp.apply(&route_to("v2"));
    eventually("the proxy to route to v2", DEADLINE, || {
        answered_by(mesh.port).filter(|b| b == "v2")
    });
    mesh.cp.apply(&http_gateway("gw", mesh.port, &["*"]));
    eventually("CONFIG to be SYNCED again", DEADLINE, || {
        mesh.cp
            .sync_state("CONFIG")
            .filter(|t| t["state"] == "SYNCED")
    });
}

#[test]
fn a_control_plane_restart_loses_no_request_and_the_proxy_resyncs() {
    let mut mesh = Mesh::start("push-restart");
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let client = {
        let (stop, sent, failed, port) = (stop.clone(), sent.clone(), failed.clone(), mesh.port);
        std::thread::spawn(move || {
            // Bounded: at most 60 s of requests, whatever happens to the test.
            let start = Instant::now();
            while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(60) {
                sent.fetch_add(1, Ordering::Relaxed);
                if answered_by(port).as_deref() != Some("v1") {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let wait_for_requests = |n: usize| {
        let target = sent.load(Ordering::Relaxed) + n;
        eventually("requests to flow", DEADLINE, || {
            (sent.load(Ordering::Relaxed) >= target).then_some(())
        });
    };
    wait_for_requests(20);
    let (api, xds) = (mesh.cp.api.clone(), mesh.cp.xds.clone());
    mesh.cp.kill();
    // Away for a while: the proxy keeps serving what it has, and retries.
    wait_for_requests(50);
    mesh.cp = ControlPlane::start_on(&mesh.dir, api, xds);
    eventually("the proxy to reconnect", DEADLINE, || {
        mesh.cp
            .sync_state("CONFIG")
            .filter(|t| t["state"] == "SYNCED")
    });
    wait_for_requests(20);
    stop.store(true, Ordering::Relaxed);
    client.join().unwrap();
    let (sent, failed) = (sent.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!("{sent} requests through the restart, {failed} failed");
    assert_eq!(failed, 0, "{failed} of {sent} requests failed");
    // Resynced: an apply after the restart takes effect.
    mesh.cp.apply(&route_to("v2"));
    eventually("the proxy to route to v2", DEADLINE, || {
        answered_by(mesh.port).filter(|b| b == "v2")
    });
    assert!(mesh.proxy.log_text().contains("config stream open"));
}

#[test]
fn deleting_an_object_removes_its_effect() {
    let mesh = Mesh::start("push-delete");
    let out = mesh.cp.weft(&["delete", "vs", "route"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // No VirtualService binds the Gateway any more: 404 (Envoy's NR).
    eventually("the route to be gone", DEADLINE, || {
        let reply = try_curl(&["-m", "2", &format!("http://127.0.0.1:{}/", mesh.port)])?;
        (reply.status == 404).then_some(())
    });
    // Deleting the Gateway closes its port.
    let out = mesh.cp.weft(&["delete", "gw", "gw"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eventually("the gateway port to close", DEADLINE, || {
        std::net::TcpStream::connect(("127.0.0.1", mesh.port))
            .is_err()
            .then_some(())
    });
}

/// `weft proxy-config KIND ingress` run against the mesh's control plane: its stdout,
/// after asserting it succeeded.
fn proxy_config(cp: &ControlPlane, args: &[&str]) -> String {
    let out = cp.weft(&[&["proxy-config"], args].concat(), "");
    assert!(
        out.status.success(),
        "weft proxy-config {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The cells of the table row that starts with `first`.
fn table_row(table: &str, first: &str) -> Vec<String> {
    table
        .lines()
        .find(|l| l.starts_with(first))
        .unwrap_or_else(|| panic!("no row {first:?} in\n{table}"))
        .split("   ")
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .collect()
}

#[test]
fn proxy_config_reads_the_proxys_tables_through_the_control_plane() {
    let mesh = Mesh::start("push-proxy-config");
    let cp = &mesh.cp;
    let clusters = proxy_config(cp, &["clusters", "ingress"]);
    assert!(clusters.starts_with("SERVICE FQDN"), "{clusters}");
    assert_eq!(
        table_row(&clusters, "v1.default.svc.cluster.local"),
        [
            "v1.default.svc.cluster.local",
            "9080",
            "-",
            "outbound",
            "EDS"
        ]
    );
    // Istio's `name.namespace` works too; the routes name their VirtualService.
    let routes = proxy_config(cp, &["routes", "ingress.istio-system"]);
    let row = table_row(&routes, &format!("http.{}", mesh.port));
    assert_eq!(
        row.last().map(String::as_str),
        Some("route.default"),
        "{routes}"
    );
    let endpoints = proxy_config(cp, &["endpoints", "ingress"]);
    let row = table_row(&endpoints, "127.0.0.1:");
    assert_eq!(row[1..3], ["HEALTHY", "OK"], "{endpoints}");
    let listeners = proxy_config(cp, &["listeners", "ingress"]);
    assert_eq!(
        table_row(&listeners, "0.0.0.0"),
        [
            "0.0.0.0",
            &mesh.port.to_string(),
            "ALL",
            &format!("Route: http.{}", mesh.port)
        ]
    );
    // istioctl's filters: what does not match leaves the header alone.
    for (args, rows) in [
        (&["clusters", "ingress", "--direction", "outbound"][..], 1),
        (&["clusters", "ingress", "--direction", "inbound"], 0),
        (&["clusters", "ingress", "--subset", "v9"], 0),
        (
            &["clusters", "ingress", "--port", "9080", "--subset", ""],
            1,
        ),
        (
            &[
                "endpoints",
                "ingress",
                "--status",
                "HEALTHY",
                "--address",
                "127.0.0.1",
            ],
            1,
        ),
        (&["endpoints", "ingress", "--status", "UNHEALTHY"], 0),
        (&["routes", "ingress", "--name", "80"], 0),
    ] {
        let table = proxy_config(cp, args);
        assert_eq!(table.lines().count(), 1 + rows, "{args:?}:\n{table}");
    }
    let secrets = proxy_config(cp, &["secrets", "ingress"]);
    assert_eq!(secrets.lines().count(), 2, "{secrets}");
    let json: Value =
        serde_json::from_str(&proxy_config(cp, &["clusters", "ingress", "-o", "json"])).unwrap();
    assert!(
        json["outbound|9080||v1.default.svc.cluster.local"].is_object(),
        "{json}"
    );
    // An unknown proxy is an error; the debug path needs the token.
    let out = cp.weft(&["proxy-config", "clusters", "nope"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no proxy named \"nope\""));
    let url = format!("http://{}/debug/config_dump?proxyID=ingress", cp.api);
    assert_eq!(try_curl(&[&url]).unwrap().status, 401);
}

/// A Service `v3` that selects workloads labelled `app: v3`, on their `http` port.
const V3_SERVICE: &str = "apiVersion: v1
kind: Service
metadata:
  name: v3
spec:
  selector: {app: v3}
  ports:
  - {name: http, port: 9080, targetPort: http}
";

#[test]
fn a_self_registered_workload_becomes_a_services_endpoint() {
    let mesh = Mesh::start("push-workloads");
    let v3 = Backend::start("v3");
    let cp = &mesh.cp;
    cp.apply(V3_SERVICE);
    cp.apply(&route_to("v3"));
    let token = std::fs::read_to_string(cp.state.join("api-token")).unwrap();
    let auth = format!("Authorization: Bearer {}", token.trim());
    let url = format!("http://{}/v1/workloads", cp.api);
    let body = format!(
        r#"{{"name":"v3-1","namespace":"default","labels":{{"app":"v3"}},"serviceAccount":"v3","address":"127.0.0.1","ports":{{"http":{}}}}}"#,
        v3.port
    );
    let reply = try_curl(&["-X", "POST", "-H", &auth, "--data-binary", &body, &url]).unwrap();
    assert_eq!(reply.status, 201, "{}", reply.body);
    eventually("the proxy to route to the workload", DEADLINE, || {
        answered_by(mesh.port).filter(|b| b == "v3")
    });
    let list: Value = serde_json::from_str(&try_curl(&["-H", &auth, &url]).unwrap().body).unwrap();
    assert_eq!(list["items"][0]["name"], "v3-1", "{list}");
    // Without the token: refused.
    assert_eq!(
        try_curl(&["-X", "POST", "--data-binary", &body, &url])
            .unwrap()
            .status,
        401
    );
    // Deregistered: the service has no endpoint left (Envoy's 503, no healthy upstream).
    let item = format!("{url}/default/v3-1");
    assert_eq!(
        try_curl(&["-X", "DELETE", "-H", &auth, &item])
            .unwrap()
            .status,
        200
    );
    eventually("the workload to be gone from the proxy", DEADLINE, || {
        let reply = try_curl(&["-m", "2", &format!("http://127.0.0.1:{}/", mesh.port)])?;
        (reply.status == 503).then_some(())
    });
    assert_eq!(
        try_curl(&["-X", "DELETE", "-H", &auth, &item])
            .unwrap()
            .status,
        404
    );
}
