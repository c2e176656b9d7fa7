//! Tests of the registry: its sources, addresses and name resolution.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use super::*;
use crate::testing::load;

fn objects(yaml: &str) -> Vec<Object> {
    let loaded = load(yaml);
    let errors: Vec<String> = loaded.errors().map(ToString::to_string).collect();
    assert!(errors.is_empty(), "{errors:?}");
    loaded.objects
}

fn addresses(s: &Service) -> Vec<String> {
    s.endpoints
        .iter()
        .map(|e| e.address.clone())
        .collect::<Vec<_>>()
}

fn vip(r: &Registry, host: &str) -> Ipv4Addr {
    match r.services[host].addresses.as_slice() {
        [net] => match net.addr() {
            std::net::IpAddr::V4(ip) => ip,
            other => panic!("{other}"),
        },
        other => panic!("{host}: {other:?}"),
    }
}

const SE_WITH_ENTRIES: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: vm-reviews, namespace: default}
spec:
  hosts: [reviews.vm.internal]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP, targetPort: 9090}]
  workloadSelector: {labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm1, namespace: default}
spec: {address: 10.0.0.1, labels: {app: reviews, version: v1}, ports: {http: 8080}, serviceAccount: bookinfo-reviews}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm2, namespace: default}
spec: {address: 10.0.0.2, labels: {app: ratings}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm3, namespace: other}
spec: {address: 10.0.0.3, labels: {app: reviews}}
"#;

#[test]
fn a_service_entry_selects_the_workload_entries_of_its_namespace_by_label() {
    let r = Registry::build(&objects(SE_WITH_ENTRIES));
    let s = &r.services["reviews.vm.internal"];
    assert_eq!(
        addresses(s),
        ["10.0.0.1"],
        "vm2 has other labels, vm3 another namespace"
    );
    let e = &s.endpoints[0];
    assert_eq!(e.port_for(&s.ports[0]), 8080, "the entry's own port wins");
    assert_eq!(e.service_account.as_deref(), Some("bookinfo-reviews"));
    assert_eq!(s.origin.kind, "ServiceEntry");
}

const GROUP: &str = r#"
apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {name: reviews-vms, namespace: default}
spec:
  metadata: {labels: {app: reviews}}
  template: {serviceAccount: reviews-vm, ports: {http: 9081}, labels: {version: v2}}
"#;

#[test]
fn workloads_registered_through_a_workload_group_take_its_template() {
    let objs = objects(&format!("{SE_WITH_ENTRIES}---{GROUP}"));
    let mut workloads = Workloads::default();
    workloads.register(Workload {
        name: "vm-7".into(),
        namespace: "default".into(),
        address: "10.0.0.7".into(),
        group: Some("reviews-vms".into()),
        ..Workload::default()
    });
    let r = Registry::from_sources(
        &[&ConfigObjects(&objs), &workloads],
        &mut VipAllocator::default(),
    );
    let s = &r.services["reviews.vm.internal"];
    assert_eq!(addresses(s), ["10.0.0.1", "10.0.0.7"]);
    let vm = &s.endpoints[1];
    assert_eq!(vm.labels["version"], "v2");
    assert_eq!(vm.service_account.as_deref(), Some("reviews-vm"));
    assert_eq!(vm.port_for(&s.ports[0]), 9081);
}

const KUBE: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default, annotations: {networking.istio.io/exportTo: "., istio-system"}}
spec:
  selector: {app: reviews}
  ports:
  - {name: http, port: 9080, targetPort: web}
  - {name: metrics, port: 9100, appProtocol: http}
  - {name: dns, port: 53, protocol: UDP}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v1-abc, namespace: default, labels: {app: reviews, version: v1}}
spec:
  serviceAccountName: bookinfo-reviews
  containers: [{name: app, image: reviews, ports: [{name: web, containerPort: 9081}]}]
status: {podIP: 10.1.0.5, phase: Running}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-old, namespace: default, labels: {app: reviews}}
spec: {containers: [{name: app, image: reviews}]}
status: {podIP: 10.1.0.6, phase: Succeeded}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: data}
spec:
  clusterIP: 10.96.0.20
  ports: [{name: tcp-pg, port: 5432}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: db, namespace: data}
subsets:
- addresses: [{ip: 192.168.0.9}]
  ports: [{name: tcp-pg, port: 5433}]
---
apiVersion: v1
kind: Service
metadata: {name: headless, namespace: data}
spec: {clusterIP: None, selector: {app: h}, ports: [{name: http, port: 80}]}
"#;

#[test]
fn kubernetes_services_take_endpoints_from_pods_or_endpoints_objects() {
    let r = Registry::build(&objects(KUBE));
    let reviews = &r.services["reviews.default.svc.cluster.local"];
    assert_eq!(reviews.ports.len(), 2, "the UDP port is left out");
    assert_eq!(reviews.ports[1].protocol, Protocol::Http, "appProtocol");
    assert!(reviews.ports[0].protocol == Protocol::Http && !reviews.ports[0].detect);
    assert_eq!(
        addresses(reviews),
        ["10.1.0.5"],
        "a finished pod is no endpoint"
    );
    let e = &reviews.endpoints[0];
    assert_eq!(e.port_for(&reviews.ports[0]), 9081, "named targetPort");
    assert_eq!(e.service_account.as_deref(), Some("bookinfo-reviews"));
    assert_eq!(reviews.export_to, [".", "istio-system"]);
    assert!(
        VIP_RANGE
            .parse::<IpNet>()
            .unwrap()
            .contains(&std::net::IpAddr::V4(vip(
                &r,
                "reviews.default.svc.cluster.local"
            )))
    );

    let db = &r.services["db.data.svc.cluster.local"];
    assert_eq!(
        vip(&r, "db.data.svc.cluster.local"),
        Ipv4Addr::new(10, 96, 0, 20),
        "clusterIP"
    );
    assert_eq!(addresses(db), ["192.168.0.9"]);
    assert_eq!(db.endpoints[0].port_for(&db.ports[0]), 5433);
    assert!(
        r.services["headless.data.svc.cluster.local"]
            .addresses
            .is_empty(),
        "no VIP for a headless service"
    );
}

#[test]
fn self_registered_workloads_come_and_go() {
    let objs = objects(KUBE);
    let mut workloads = Workloads::default();
    let w = Workload {
        name: "reviews-v2".into(),
        namespace: "default".into(),
        labels: BTreeMap::from([("app".into(), "reviews".into())]),
        service_account: "reviews".into(),
        address: "127.0.10.2".into(),
        ports: BTreeMap::from([("web".into(), 19081)]),
        group: None,
    };
    assert!(workloads.register(w.clone()));
    assert!(
        !workloads.register(w.clone()),
        "the same record again changes nothing"
    );
    let mut vips = VipAllocator::default();
    let r = Registry::from_sources(&[&ConfigObjects(&objs), &workloads], &mut vips);
    let reviews = &r.services["reviews.default.svc.cluster.local"];
    assert_eq!(addresses(reviews), ["10.1.0.5", "127.0.10.2"]);
    assert_eq!(reviews.endpoints[1].port_for(&reviews.ports[0]), 19081);
    assert_eq!(workloads.deregister("default", "reviews-v2"), Some(w));
    let r = Registry::from_sources(&[&ConfigObjects(&objs), &workloads], &mut vips);
    assert_eq!(
        addresses(&r.services["reviews.default.svc.cluster.local"]),
        ["10.1.0.5"]
    );
}

#[test]
fn a_kubernetes_service_wins_its_host_over_a_service_entry() {
    let yaml = format!(
        "{KUBE}---\n{}",
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: shadow, namespace: default}
spec: {hosts: [reviews.default.svc.cluster.local], resolution: STATIC, ports: [{number: 1, name: http}], endpoints: [{address: 1.1.1.1}]}
"#
    );
    let r = Registry::build(&objects(&yaml));
    assert_eq!(
        r.services["reviews.default.svc.cluster.local"].origin.kind,
        "Service"
    );
}

fn service_entry(ns: &str, host: &str, resolution: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {}, namespace: {ns}}}\nspec: {{hosts: [\"{host}\"], resolution: {resolution}, location: MESH_INTERNAL, ports: [{{number: 80, name: http, protocol: HTTP}}]{}}}\n---\n",
        host.replace(['.', '*'], "-").trim_matches('-'),
        if resolution == "STATIC" {
            ", endpoints: [{address: 10.0.0.1}]"
        } else {
            ""
        }
    )
}

#[test]
fn no_address_is_allocated_for_wildcards_or_resolution_none() {
    let yaml = service_entry("default", "*.example.com", "NONE")
        + &service_entry("default", "api.example.com", "NONE")
        + &service_entry("default", "db.example.com", "DNS");
    let r = Registry::build(&objects(&yaml));
    assert!(r.services["*.example.com"].addresses.is_empty());
    assert!(r.services["api.example.com"].addresses.is_empty());
    assert_eq!(r.services["db.example.com"].addresses.len(), 1);
}

/// Two hosts of namespace `default` whose first slots collide.
fn colliding_hosts() -> (String, String) {
    let mut first_by_slot: BTreeMap<u32, String> = BTreeMap::new();
    for i in 0.. {
        let host = format!("svc{i}.example.com");
        let slot = vip::slot_for_test(&format!("default/{host}"));
        if let Some(other) = first_by_slot.insert(slot, host.clone()) {
            return (other, host);
        }
    }
    unreachable!()
}

#[test]
fn addresses_stay_when_other_services_come_and_go() {
    let (a, b) = colliding_hosts();
    let mut vips = VipAllocator::default();
    let build = |yaml: &str, vips: &mut VipAllocator| {
        Registry::from_sources(&[&ConfigObjects(&objects(yaml))], vips)
    };
    let both = service_entry("default", &a, "STATIC") + &service_entry("default", &b, "STATIC");
    let r = build(&both, &mut vips);
    let (va, vb) = (vip(&r, &a), vip(&r, &b));
    assert_ne!(va, vb, "a collision is resolved");
    assert_eq!(
        build(&both, &mut VipAllocator::default()).services,
        r.services,
        "deterministic: a restart with no saved state gives the same addresses"
    );
    let mut many = both.clone();
    for i in 0..50 {
        many += &service_entry("default", &format!("extra{i}.example.com"), "STATIC");
    }
    let r = build(&many, &mut vips);
    assert_eq!((vip(&r, &a), vip(&r, &b)), (va, vb), "others added");
    let r = build(&service_entry("default", &b, "STATIC"), &mut vips);
    assert_eq!(
        vip(&r, &b),
        vb,
        "the collision's winner removed: the loser keeps its address"
    );
    assert_eq!(
        vips.len(),
        1,
        "the addresses of removed services are released"
    );
    let saved = serde_json::to_string(&vips).unwrap();
    let mut restored: VipAllocator = serde_json::from_str(&saved).unwrap();
    let r = build(&both, &mut restored);
    assert_eq!(
        vip(&r, &b),
        vb,
        "kept across a restart when the allocator is saved"
    );
    assert_ne!(vip(&r, &a), vb);
}

#[test]
fn collisions_go_to_the_oldest_service_first() {
    let (a, b) = colliding_hosts();
    let stamp = |yaml: String, ts: &str| {
        yaml.replacen(
            "namespace: default}",
            &format!("namespace: default, creationTimestamp: \"{ts}\"}}"),
            1,
        )
    };
    let older_b = stamp(
        service_entry("default", &a, "STATIC"),
        "2026-01-02T00:00:00Z",
    ) + &stamp(
        service_entry("default", &b, "STATIC"),
        "2026-01-01T00:00:00Z",
    );
    let r = Registry::build(&objects(&older_b));
    let b_alone = Registry::build(&objects(&service_entry("default", &b, "STATIC")));
    assert_eq!(
        vip(&r, &b),
        vip(&b_alone, &b),
        "the older service keeps its first slot"
    );
}

#[test]
fn names_resolve_as_kubernetes_dns_resolves_them() {
    let r = Registry::build(&objects(
        &(KUBE.to_string() + "---\n" + &service_entry("default", "api.example.com", "DNS")),
    ));
    let fqdn = "reviews.default.svc.cluster.local";
    for name in [
        "reviews",
        "reviews.default",
        "reviews.default.svc",
        fqdn,
        "REVIEWS",
        "reviews.default.svc.cluster.local.",
    ] {
        assert_eq!(
            r.resolve(name, "default").map(|s| s.host.as_str()),
            Some(fqdn),
            "{name}"
        );
    }
    assert!(
        r.resolve("reviews", "other").is_none(),
        "a short name stays in its namespace"
    );
    assert_eq!(
        r.resolve("reviews.default", "other")
            .map(|s| s.host.as_str()),
        Some(fqdn)
    );
    assert_eq!(
        r.resolve("api.example.com", "default")
            .map(|s| s.host.as_str()),
        Some("api.example.com")
    );
    assert_eq!(
        search_names("reviews", "default"),
        [
            "reviews.default.svc.cluster.local",
            "reviews.svc.cluster.local",
            "reviews.cluster.local",
            "reviews"
        ]
    );
    assert_eq!(
        search_names("a.b.c.d.e.f", "ns")[0],
        "a.b.c.d.e.f",
        "ndots:5"
    );
    assert_eq!(
        r.lookup("reviews", "default").map(|s| s.host.as_str()),
        Some(fqdn)
    );
}
