use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::tables::Route;

fn objects(yaml: &str) -> Vec<Object> {
    let mut loaded = weft_api::Loaded::default();
    weft_api::load_str(
        yaml,
        Arc::from(Path::new("test.yaml")),
        &weft_api::LoadOptions::default(),
        &mut loaded,
    );
    let errors: Vec<String> = loaded.errors().map(|r| r.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    loaded.objects
}

const REVIEWS: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: reviews
  namespace: default
spec:
  hosts:
  - reviews.default.svc.cluster.local
  location: MESH_INTERNAL
  ports:
  - number: 9080
    name: http
    protocol: HTTP
  - number: 3306
    name: db
  - number: 9000
    name: tcp-metrics
  resolution: STATIC
  endpoints:
  - address: 10.0.0.7
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: external
  namespace: default
spec:
  hosts:
  - api.example.com
  addresses:
  - 192.0.2.10
  - 198.51.100.0/24
  ports:
  - number: 443
    name: tls
    protocol: TLS
  resolution: NONE
";

fn me(namespace: &str, labels: &[(&str, &str)]) -> ProxyIdentity {
    ProxyIdentity {
        namespace: namespace.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        addresses: Vec::new(),
    }
}

fn sidecar_tables(yaml: &str, who: &ProxyIdentity) -> Tables {
    Tables::for_sidecar(&objects(yaml), who, OutboundPolicy::AllowAny, 1)
}

#[test]
fn services_without_addresses_get_a_stable_vip_in_240_240() {
    let tables = sidecar_tables(REVIEWS, &me("default", &[]));
    let reviews = &tables.registry.services["reviews.default.svc.cluster.local"];
    assert_eq!(reviews.addresses.len(), 1);
    let vip = reviews.addresses[0];
    assert!(
        "240.240.0.0/16"
            .parse::<IpNet>()
            .unwrap()
            .contains(&vip.addr()),
        "{vip}"
    );
    let again = sidecar_tables(
        &format!("{REVIEWS}---\n{}", REVIEWS.replace("reviews", "ratings")),
        &me("default", &[]),
    );
    assert_eq!(
        again.registry.services["reviews.default.svc.cluster.local"].addresses,
        vec![vip],
        "adding a service does not move another's address"
    );
    assert_ne!(
        again.registry.services["ratings.default.svc.cluster.local"].addresses,
        vec![vip]
    );
    let external = &tables.registry.services["api.example.com"];
    assert_eq!(
        external.addresses.len(),
        2,
        "declared addresses are kept, none allocated"
    );
}

#[test]
fn original_destinations_name_service_ports() {
    let tables = sidecar_tables(REVIEWS, &me("default", &[]));
    let side = tables.sidecar.as_ref().unwrap();
    let vip = tables.registry.services["reviews.default.svc.cluster.local"].addresses[0].addr();
    let http = side.outbound_target(SocketAddr::new(vip, 9080)).unwrap();
    assert_eq!(
        (http.protocol, http.detect, http.cluster.as_str()),
        (
            Protocol::Http,
            false,
            "outbound|9080||reviews.default.svc.cluster.local"
        )
    );
    let sniffed = side.outbound_target(SocketAddr::new(vip, 3306)).unwrap();
    assert!(sniffed.detect, "a port named `db` declares no protocol");
    let tcp = side.outbound_target(SocketAddr::new(vip, 9000)).unwrap();
    assert_eq!(
        (tcp.protocol, tcp.detect),
        (Protocol::Tcp, false),
        "tcp-metrics is TCP"
    );
    assert!(side.outbound_target(SocketAddr::new(vip, 1234)).is_none());
    let exact = side
        .outbound_target("192.0.2.10:443".parse().unwrap())
        .unwrap();
    assert_eq!(exact.service, "api.example.com");
    assert!(
        side.outbound_target("198.51.100.77:443".parse().unwrap())
            .is_some(),
        "CIDR"
    );
    assert!(
        side.outbound_target("198.51.101.1:443".parse().unwrap())
            .is_none()
    );
    let inbound = side.inbound_port("10.0.0.7:9080".parse().unwrap()).unwrap();
    assert_eq!((inbound.protocol, inbound.detect), (Protocol::Http, false));
    assert!(
        side.inbound_port("10.0.0.7:3306".parse().unwrap())
            .unwrap()
            .detect
    );
}

/// Two services over the same workload (10.0.0.7) and another workload (10.0.0.8).
const TWO_SERVICES: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports:
  - {number: 9080, name: http, protocol: HTTP}
  - {number: 3306, name: db}
  resolution: STATIC
  endpoints:
  - address: 10.0.0.7
  - address: 10.0.0.8
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: default}
spec:
  hosts: [web.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports:
  - {number: 80, name: web, targetPort: 3306}
  resolution: STATIC
  endpoints:
  - address: 10.0.0.7
";

#[test]
fn inbound_clusters_are_the_ports_of_the_endpoints_at_the_workloads_own_addresses() {
    let mut who = me("default", &[]);
    who.addresses = vec!["10.0.0.7".parse().unwrap()];
    let tables = sidecar_tables(TWO_SERVICES, &who);
    let side = tables.sidecar.as_ref().unwrap();
    let names: Vec<&str> = side.inbound_clusters.keys().map(String::as_str).collect();
    assert_eq!(names, ["inbound|3306||", "inbound|9080||"]);
    let db = &side.inbound_clusters["inbound|3306||"];
    assert!(db.detect, "neither service declares a protocol for it");
    assert_eq!(
        db.services,
        [
            "reviews.default.svc.cluster.local:3306",
            "web.default.svc.cluster.local:80"
        ],
        "two services' ports land on the workload's port 3306"
    );
    let http = &side.inbound_clusters["inbound|9080||"];
    assert_eq!((http.protocol, http.detect), (Protocol::Http, false));
    assert!(
        side.inbound_port("10.0.0.8:9080".parse().unwrap())
            .is_none(),
        "another workload's endpoint is not this sidecar's inbound"
    );
    assert!(
        side.inbound_port("10.0.0.7:9080".parse().unwrap())
            .is_some()
    );

    // Addresses not known: every endpoint's protocol, no inbound clusters.
    let tables = sidecar_tables(TWO_SERVICES, &me("default", &[]));
    let side = tables.sidecar.as_ref().unwrap();
    assert!(side.inbound_clusters.is_empty());
    assert!(
        side.inbound_port("10.0.0.8:9080".parse().unwrap())
            .is_some()
    );
}

#[test]
fn http_ports_get_a_route_table_with_istios_domains() {
    let tables = sidecar_tables(REVIEWS, &me("default", &[]));
    assert_eq!(
        tables.listeners.keys().copied().collect::<Vec<_>>(),
        vec![3306, 9080],
        "HTTP and undeclared ports (which may sniff as HTTP); not TCP or TLS ones"
    );
    let vh = &tables.listeners[&9080].virtual_hosts[0];
    assert_eq!(vh.name, "reviews.default.svc.cluster.local:9080");
    let vip = tables.registry.services["reviews.default.svc.cluster.local"].addresses[0].addr();
    for domain in [
        "reviews.default.svc.cluster.local".to_string(),
        "reviews.default.svc.cluster.local:9080".into(),
        "reviews".into(),
        "reviews:9080".into(),
        "reviews.default".into(),
        "reviews.default.svc:9080".into(),
        vip.to_string(),
        format!("{vip}:9080"),
    ] {
        assert!(vh.domains.contains(&domain), "{domain} in {:?}", vh.domains);
    }
    let other = sidecar_tables(REVIEWS, &me("prod", &[]));
    let domains = &other.listeners[&9080].virtual_hosts[0].domains;
    assert!(
        !domains.contains(&"reviews".to_string())
            && domains.contains(&"reviews.default".to_string()),
        "the bare name means prod's reviews from prod: {domains:?}"
    );
    assert!(matches!(
        &vh.routes[..],
        [Route { action: Action::Forward(w), .. }] if w[0].cluster == "outbound|9080||reviews.default.svc.cluster.local"
    ));
}

#[test]
fn mesh_virtual_services_route_and_gateway_ones_do_not() {
    let vs = |name: &str, gateways: &str, subset: &str| {
        format!(
            "---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: {name}
  namespace: default
spec:
  hosts:
  - reviews
{gateways}  http:
  - route:
    - destination:
        host: reviews
        subset: {subset}
"
        )
    };
    let rule = "---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
  namespace: default
spec:
  host: reviews
  subsets:
  - name: v1
    labels:
      version: v1
  - name: v2
    labels:
      version: v2
";
    let gateway_only = vs("a-gw", "  gateways:\n  - bookinfo-gateway\n", "v1");
    let mesh = vs("b-mesh", "  gateways:\n  - mesh\n", "v2");
    let tables = sidecar_tables(
        &format!("{REVIEWS}{rule}{gateway_only}{mesh}"),
        &me("default", &[]),
    );
    let route = &tables.listeners[&9080].virtual_hosts[0].routes[0];
    assert!(
        matches!(&route.action, Action::Forward(w) if w[0].cluster == "outbound|9080|v2|reviews.default.svc.cluster.local"),
        "{route:?}"
    );
    let tables = sidecar_tables(
        &format!("{REVIEWS}{rule}{gateway_only}"),
        &me("default", &[]),
    );
    let route = &tables.listeners[&9080].virtual_hosts[0].routes[0];
    assert_eq!(
        route.name, "default",
        "a gateway's VirtualService is not the mesh's"
    );
}

#[test]
fn the_sidecar_resource_that_applies_sets_the_outbound_policy() {
    let sidecar = |name: &str, ns: &str, selector: &str, mode: &str| {
        format!(
            "---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata:
  name: {name}
  namespace: {ns}
spec:
{selector}  outboundTrafficPolicy:
    mode: {mode}
"
        )
    };
    let root = sidecar("default", "istio-system", "", "REGISTRY_ONLY");
    let ns_wide = sidecar("default", "default", "", "ALLOW_ANY");
    let selected = sidecar(
        "sleep",
        "default",
        "  workloadSelector:\n    labels:\n      app: sleep\n",
        "REGISTRY_ONLY",
    );
    let policy = |yaml: &str, who: &ProxyIdentity| {
        let t = sidecar_tables(&format!("{REVIEWS}{yaml}"), who);
        let s = t.sidecar.unwrap();
        (s.outbound_policy, s.policy_source)
    };
    let sleep = me("default", &[("app", "sleep")]);
    let other = me("default", &[("app", "other")]);
    assert_eq!(
        policy("", &sleep),
        (OutboundPolicy::AllowAny, "mesh".into())
    );
    assert_eq!(policy(&root, &sleep).0, OutboundPolicy::RegistryOnly);
    assert_eq!(
        policy(&format!("{root}{ns_wide}"), &sleep).0,
        OutboundPolicy::AllowAny
    );
    let all = format!("{root}{ns_wide}{selected}");
    assert_eq!(
        policy(&all, &sleep),
        (OutboundPolicy::RegistryOnly, "Sidecar default/sleep".into())
    );
    assert_eq!(policy(&all, &other).0, OutboundPolicy::AllowAny);
    assert_eq!(
        policy(&root, &me("prod", &[])).0,
        OutboundPolicy::RegistryOnly
    );
}

#[test]
fn tcp_routes_on_tcp_ports_and_tls_routes_on_tls_ports_as_istio_builds_them() {
    let yaml = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: db
  namespace: default
spec:
  hosts:
  - db.example.com
  addresses:
  - 10.9.0.1
  ports:
  - number: 5432
    name: tcp
    protocol: TCP
  - number: 443
    name: tls
    protocol: TLS
  resolution: STATIC
  endpoints:
  - address: 10.0.0.9
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: db
  namespace: default
spec:
  hosts:
  - db.example.com
  tcp:
  - match:
    - destinationSubnets: [10.9.0.0/16]
      sourceLabels:
        app: sleep
    route:
    - destination:
        host: db.example.com
        port:
          number: 5432
  - match:
    - sourceLabels:
        app: other
    route:
    - destination:
        host: other.example.com
  tls:
  - match:
    - sniHosts: [db.example.com]
    route:
    - destination:
        host: db.example.com
        port:
          number: 443
";
    let t = sidecar_tables(yaml, &me("default", &[("app", "sleep")]));
    let side = t.sidecar.as_ref().unwrap();
    let tcp = side.l4.get("db.example.com:5432").unwrap();
    assert!(tcp.tls.is_empty(), "tls routes do not apply on a TCP port");
    let names: Vec<&str> = tcp.tcp.iter().map(|r| r.name.as_str()).collect();
    // The sourceLabels of the second route name another workload; the first has only a
    // subnet match, so the service's own cluster ends the list.
    assert_eq!(names, ["default/db tcp[0]", "default"]);
    assert_eq!(
        tcp.tcp[1].destinations[0].cluster,
        "outbound|5432||db.example.com"
    );
    let tls = side.l4.get("db.example.com:443").unwrap();
    assert!(
        tls.tcp.is_empty(),
        "tcp routes do not apply on a TLS port, nor a default"
    );
    assert_eq!(tls.tls.len(), 1);

    let other = sidecar_tables(yaml, &me("default", &[("app", "web")]));
    let side = other.sidecar.as_ref().unwrap();
    assert!(
        !side.l4.contains_key("db.example.com:5432"),
        "no tcp route applies to this workload: the default cluster"
    );
}
