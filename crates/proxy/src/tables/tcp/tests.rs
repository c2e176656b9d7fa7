use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use weft_api::object::Object;
use weft_api::{LoadOptions, Spec};

use crate::registry::Protocol;
use crate::tables::{ProxyIdentity, Tables};

/// The tcp-echo sample as a VM mesh describes it, a Gateway with a TCP, a TLS and an
/// HTTPS-passthrough server, and `extra` (more YAML documents), compiled.
fn tables(extra: &str) -> Tables {
    compile(&objects(extra))
}

fn compile(objects: &[Object]) -> Tables {
    let me = ProxyIdentity {
        namespace: "istio-system".into(),
        labels: [("istio".to_string(), "ingressgateway".to_string())].into(),
    };
    Tables::for_gateway(objects, &me, 1)
}

/// The objects `tables` compiles; loading must not refuse any.
fn objects(extra: &str) -> Vec<Object> {
    let yaml = format!(
        "apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: gw, namespace: istio-system}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 31400, name: tcp, protocol: TCP}}
    hosts: ['*']
  - port: {{number: 443, name: tls, protocol: TLS}}
    hosts: ['*.example.com']
    tls: {{mode: PASSTHROUGH}}
  - port: {{number: 8443, name: https, protocol: HTTPS}}
    hosts: ['*']
    tls: {{mode: PASSTHROUGH}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: tcp-echo}}
spec:
  hosts: [tcp-echo.default.svc.cluster.local]
  ports:
  - {{number: 9000, name: tcp, protocol: TCP}}
  resolution: STATIC
  endpoints:
  - {{address: 127.0.0.1, labels: {{version: v1}}}}
  - {{address: 127.0.0.2, labels: {{version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: tcp-echo}}
spec:
  host: tcp-echo
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
{extra}"
    );
    let mut loaded = weft_api::Loaded::default();
    weft_api::load_str(
        &yaml,
        Arc::from(Path::new("test.yaml")),
        &LoadOptions::default(),
        &mut loaded,
    );
    let errors: Vec<String> = loaded.errors().map(ToString::to_string).collect();
    assert!(errors.is_empty(), "{errors:?}");
    loaded.objects
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

const LOCAL: &str = "127.0.0.1";

#[test]
fn tcp_routes_compile_to_weighted_istio_clusters() {
    let t = tables(
        "---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp-echo}
spec:
  hosts: ['*']
  gateways: [istio-system/gw]
  tcp:
  - match: [{port: 31400}]
    route:
    - {destination: {host: tcp-echo, port: {number: 9000}, subset: v1}, weight: 80}
    - {destination: {host: tcp-echo, subset: v2}, weight: 20}
",
    );
    assert!(t.rejected.is_empty(), "{:?}", t.rejected);
    let l = &t.listeners[&31400];
    assert_eq!(l.protocol, Protocol::Tcp);
    assert!(l.virtual_hosts.is_empty() && l.l4.tls.is_empty());
    let route = l.l4.pick_tcp(ip(LOCAL), ip(LOCAL)).unwrap();
    assert_eq!(route.name, "default/tcp-echo tcp[0]");
    let dests: Vec<(&str, u32)> = route
        .destinations
        .iter()
        .map(|d| (d.cluster.as_str(), d.weight))
        .collect();
    assert_eq!(
        dests,
        [
            ("outbound|9000|v1|tcp-echo.default.svc.cluster.local", 80),
            ("outbound|9000|v2|tcp-echo.default.svc.cluster.local", 20),
        ]
    );
    let v2 = &t.clusters["outbound|9000|v2|tcp-echo.default.svc.cluster.local"];
    assert_eq!(v2.endpoints.len(), 1);
    assert_eq!(v2.endpoints[0].address, "127.0.0.2:9000");
    // The port-443 and 8443 listeners exist but this VirtualService has no tls routes.
    assert!(t.listeners[&443].l4.tls.is_empty());
}

#[test]
fn tcp_matches_are_tried_in_order_on_every_condition() {
    let route = |cond: &str, subset: &str| {
        format!(
            "  - match: [{{{cond}}}]\n    route: [{{destination: {{host: tcp-echo, subset: {subset}}}}}]\n"
        )
    };
    let t = tables(&format!(
        "---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: tcp-echo}}
spec:
  hosts: [tcp.example.com]
  gateways: [istio-system/gw, mesh]
  tcp:
{}{}{}{}{}{}{}",
        route("port: 9999", "v2"),
        route("gateways: [mesh]", "v2"),
        route("sourceLabels: {app: sleep}", "v2"),
        route("sourceNamespace: default", "v2"),
        route("destinationSubnets: [10.0.0.0/8]", "v2"),
        route("sourceSubnet: 10.1.2.3", "v2"),
        route(
            "port: 31400, gateways: [istio-system/gw], sourceLabels: {istio: ingressgateway}, \
             sourceNamespace: istio-system, destinationSubnets: [127.0.0.0/8], \
             sourceSubnet: 127.0.0.1/32",
            "v1"
        ),
    ));
    assert!(t.rejected.is_empty(), "{:?}", t.rejected);
    let l4 = &t.listeners[&31400].l4;
    // What is known when compiling (port, gateway, labels, namespace) leaves routes out.
    assert_eq!(l4.tcp.len(), 3, "{:#?}", l4.tcp);
    let picked = |peer: &str, dst: &str| l4.pick_tcp(ip(peer), ip(dst)).map(|r| r.name.clone());
    assert_eq!(
        picked(LOCAL, LOCAL).as_deref(),
        Some("default/tcp-echo tcp[6]")
    );
    assert_eq!(
        picked(LOCAL, "10.0.0.1").as_deref(),
        Some("default/tcp-echo tcp[4]")
    );
    assert_eq!(
        picked("10.1.2.3", LOCAL).as_deref(),
        Some("default/tcp-echo tcp[5]")
    );
    assert_eq!(picked("127.0.0.2", LOCAL), None);
}

#[test]
fn tls_routes_pick_the_most_specific_sni() {
    let t = tables(
        "---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: sni}
spec:
  hosts: ['*.example.com']
  gateways: [istio-system/gw]
  tls:
  - match: [{sniHosts: ['*.example.com'], port: 443}]
    route: [{destination: {host: tcp-echo, subset: v2}}]
  - match: [{sniHosts: [a.example.com], port: 443}]
    route: [{destination: {host: tcp-echo, subset: v1}}]
  - match: [{sniHosts: [a.example.com], port: 443}]
    route: [{destination: {host: tcp-echo, subset: v2}}]
  - match: [{sniHosts: ['*.deep.example.com'], port: 443}]
    route: [{destination: {host: tcp-echo, subset: v1}}]
  - match: [{sniHosts: [b.example.com], port: 8443}]
    route: [{destination: {host: tcp-echo, subset: v1}}]
",
    );
    assert!(t.rejected.is_empty(), "{:?}", t.rejected);
    let l4 = &t.listeners[&443].l4;
    assert_eq!(l4.tls.len(), 4, "the 8443 route is left out of port 443");
    let sni = |name: Option<&str>| {
        l4.pick_tls(name, ip(LOCAL), ip(LOCAL))
            .map(|r| r.name.clone())
    };
    assert_eq!(
        sni(Some("a.example.com")).as_deref(),
        Some("default/sni tls[1]")
    );
    assert_eq!(
        sni(Some("x.example.com")).as_deref(),
        Some("default/sni tls[0]")
    );
    assert_eq!(
        sni(Some("x.deep.example.com")).as_deref(),
        Some("default/sni tls[3]")
    );
    assert_eq!(sni(Some("example.com")), None);
    assert_eq!(sni(Some("other.org")), None);
    assert_eq!(sni(None), None);
    // The HTTPS server in PASSTHROUGH mode routes by SNI the same way.
    let https = &t.listeners[&8443];
    assert_eq!(https.protocol, Protocol::Https);
    let b = https
        .l4
        .pick_tls(Some("b.example.com"), ip(LOCAL), ip(LOCAL));
    assert_eq!(b.unwrap().name, "default/sni tls[4]");
}

#[test]
fn a_catch_all_sni_takes_what_nothing_else_does() {
    let t = tables(
        "---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: sni}
spec:
  hosts: ['*']
  gateways: [istio-system/gw]
  tls:
  - match: [{sniHosts: ['*']}]
    route: [{destination: {host: tcp-echo, subset: v2}}]
  - match: [{sniHosts: [a.example.com]}]
    route: [{destination: {host: tcp-echo, subset: v1}}]
",
    );
    let l4 = &t.listeners[&8443].l4;
    let pick = |name| {
        l4.pick_tls(name, ip(LOCAL), ip(LOCAL))
            .map(|r| r.name.clone())
    };
    assert_eq!(
        pick(Some("a.example.com")).as_deref(),
        Some("default/sni tls[1]")
    );
    assert_eq!(pick(Some("z.org")).as_deref(), Some("default/sni tls[0]"));
    assert_eq!(pick(None).as_deref(), Some("default/sni tls[0]"));
}

#[test]
fn a_bad_subnet_rejects_its_route_alone() {
    // Validation refuses such a VirtualService when it is loaded; the compiler must
    // still cope with one that reaches it another way (a future push from a control
    // plane), so the subnet is spoiled after loading.
    let mut objects = objects(
        "---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp-echo}
spec:
  hosts: ['*']
  gateways: [istio-system/gw]
  tcp:
  - match: [{destinationSubnets: [10.0.0.0/8]}]
    route: [{destination: {host: tcp-echo, subset: v2}}]
  - route: [{destination: {host: tcp-echo, subset: v1}}]
",
    );
    for o in &mut objects {
        if let Spec::VirtualService(vs) = &mut o.spec {
            vs.tcp[0].matches[0].destination_subnets = vec!["10.0.0.0/40".into()];
        }
    }
    let t = compile(&objects);
    assert_eq!(t.rejected.len(), 1, "{:?}", t.rejected);
    assert!(
        t.rejected[0].contains("default/tcp-echo tcp[0]") && t.rejected[0].contains("10.0.0.0/40"),
        "{:?}",
        t.rejected
    );
    let l4 = &t.listeners[&31400].l4;
    assert_eq!(l4.tcp.len(), 1);
    assert_eq!(l4.tcp[0].name, "default/tcp-echo tcp[1]");
}

#[test]
fn missing_credentials_and_port_clashes_are_reported_with_the_reason() {
    let t = tables(
        "---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: other, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 31400, name: http, protocol: HTTP}
    hosts: ['*']
  - port: {number: 9443, name: https, protocol: HTTPS}
    hosts: ['*']
    tls: {mode: SIMPLE, credentialName: cert}
",
    );
    assert_eq!(t.rejected.len(), 2, "{:?}", t.rejected);
    assert!(
        t.rejected
            .iter()
            .any(|r| r.contains("31400") && r.contains("one port carries one protocol"))
    );
    assert!(
        t.rejected
            .iter()
            .any(|r| r.starts_with("Secret istio-system/cert: not found") && r.contains("9443"))
    );
    assert_eq!(t.listeners[&31400].protocol, Protocol::Tcp);
    assert!(!t.listeners.contains_key(&9443));
}
