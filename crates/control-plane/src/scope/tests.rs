//! One test per scoping rule, each with Istio's semantics.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use weft_api::registry::Registry;
use weft_api::{Kind, LoadOptions, Loaded, Object, load_str};

use super::*;

pub(super) fn load(yaml: &str) -> Vec<Arc<Object>> {
    let mut out = Loaded::default();
    load_str(
        yaml,
        Arc::from(Path::new("t.yaml")),
        &LoadOptions::default(),
        &mut out,
    );
    let errors: Vec<String> = out.errors().map(ToString::to_string).collect();
    assert!(errors.is_empty(), "{errors:?}\n{yaml}");
    out.objects.into_iter().map(Arc::new).collect()
}

struct Mesh {
    index: Index,
    registry: Registry,
}

impl Mesh {
    fn new(yaml: &str) -> Mesh {
        let objects = load(yaml);
        let plain: Vec<Object> = objects.iter().map(|o| (**o).clone()).collect();
        Mesh {
            registry: Registry::build(&plain),
            index: Index::new(objects),
        }
    }

    fn view(&self, proxy: &ProxyIdentity) -> ScopedView {
        scope(&self.index, &self.registry, proxy, &Options::default())
    }

    fn view_with(&self, proxy: &ProxyIdentity, opts: &Options) -> ScopedView {
        scope(&self.index, &self.registry, proxy, opts)
    }
}

pub(super) fn proxy(kind: ProxyKind, ns: &str, labels: &[(&str, &str)]) -> ProxyIdentity {
    ProxyIdentity {
        kind,
        namespace: ns.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        service_account: "default".into(),
    }
}

fn sidecar(ns: &str, labels: &[(&str, &str)]) -> ProxyIdentity {
    proxy(ProxyKind::Sidecar, ns, labels)
}

fn hosts(view: &ScopedView) -> Vec<&str> {
    view.services.keys().map(String::as_str).collect()
}

/// `Kind ns/name` of the view's objects of `kind`.
fn names(view: &ScopedView, kind: Kind) -> Vec<String> {
    view.of_kind(kind)
        .map(|o| format!("{}/{}", o.namespace(), o.name()))
        .collect()
}

fn se(ns: &str, name: &str, host: &str, export: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {{hosts: [{host}], location: MESH_INTERNAL, resolution: STATIC, ports: [{{number: 80, name: http, protocol: HTTP}}], endpoints: [{{address: 10.0.0.1}}]{export}}}\n---\n"
    )
}

fn vs(ns: &str, name: &str, host: &str, to: &str, extra: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {{hosts: [\"{host}\"], http: [{{route: [{{destination: {{host: \"{to}\"}}}}]}}]{extra}}}\n---\n"
    )
}

fn dr(ns: &str, name: &str, host: &str, extra: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {{host: \"{host}\"{extra}}}\n---\n"
    )
}

#[test]
fn export_to_limits_services_virtual_services_and_destination_rules() {
    let yaml = se("a", "everyone", "all.a.svc.cluster.local", "")
        + &se(
            "a",
            "private",
            "private.a.svc.cluster.local",
            ", exportTo: [.]",
        )
        + &se(
            "a",
            "nobody",
            "none.a.svc.cluster.local",
            ", exportTo: [\"~\"]",
        )
        + &se("a", "to-b", "tob.a.svc.cluster.local", ", exportTo: [b]")
        + &vs(
            "a",
            "vs-private",
            "all.a.svc.cluster.local",
            "all.a.svc.cluster.local",
            ", exportTo: [.]",
        )
        + &vs(
            "a",
            "vs-star",
            "tob.a.svc.cluster.local",
            "tob.a.svc.cluster.local",
            ", exportTo: [\"*\"]",
        )
        + &dr("a", "dr-b", "all.a.svc.cluster.local", ", exportTo: [b]");
    let mesh = Mesh::new(&yaml);
    let in_a = mesh.view(&sidecar("a", &[]));
    assert_eq!(
        hosts(&in_a),
        ["all.a.svc.cluster.local", "private.a.svc.cluster.local"],
        "`~` is visible nowhere, not even at home; `b` only in b"
    );
    assert_eq!(
        names(&in_a, Kind::VirtualService),
        ["a/vs-private", "a/vs-star"]
    );
    assert!(
        names(&in_a, Kind::DestinationRule).is_empty(),
        "exported to b only"
    );
    let in_b = mesh.view(&sidecar("b", &[]));
    assert_eq!(
        hosts(&in_b),
        ["all.a.svc.cluster.local", "tob.a.svc.cluster.local"]
    );
    assert_eq!(names(&in_b, Kind::VirtualService), ["a/vs-star"]);
    assert_eq!(names(&in_b, Kind::DestinationRule), ["a/dr-b"]);
    let in_c = mesh.view(&sidecar("c", &[]));
    assert_eq!(hosts(&in_c), ["all.a.svc.cluster.local"]);
}

const SERVICES: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec: {selector: {app: reviews}, ports: [{name: http, port: 9080}]}
---
apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: default}
spec: {selector: {app: ratings}, ports: [{name: http, port: 9080}]}
---
apiVersion: v1
kind: Service
metadata: {name: istiod, namespace: istio-system}
spec: {selector: {app: istiod}, ports: [{name: grpc, port: 15010}]}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: data}
spec: {selector: {app: db}, ports: [{name: tcp, port: 5432}]}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: default}
spec: {hosts: [api.example.com], resolution: DNS, ports: [{number: 443, name: tls, protocol: TLS}]}
---
"#;

fn sidecar_resource(ns: &str, name: &str, selector: &str, hosts: &[&str]) -> String {
    let selector = if selector.is_empty() {
        String::new()
    } else {
        format!("workloadSelector: {{labels: {{{selector}}}}}, ")
    };
    format!(
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {{{selector}egress: [{{hosts: [{}]}}]}}\n---\n",
        hosts
            .iter()
            .map(|h| format!("\"{h}\""))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

#[test]
fn sidecar_egress_hosts_import_namespace_slash_host() {
    let yaml = SERVICES.to_string()
        + &sidecar_resource(
            "default",
            "default",
            "",
            &["./*", "istio-system/*", "*/api.example.com"],
        )
        + &vs(
            "data",
            "db-vs",
            "db.data.svc.cluster.local",
            "db.data.svc.cluster.local",
            "",
        );
    let mesh = Mesh::new(&yaml);
    let view = mesh.view(&sidecar("default", &[]));
    assert_eq!(
        hosts(&view),
        [
            "api.example.com",
            "istiod.istio-system.svc.cluster.local",
            "ratings.default.svc.cluster.local",
            "reviews.default.svc.cluster.local"
        ],
        "db of namespace data is not imported"
    );
    assert!(
        names(&view, Kind::VirtualService).is_empty(),
        "nor its VirtualService"
    );
    assert_eq!(names(&view, Kind::Sidecar), ["default/default"]);
    let narrow = SERVICES.to_string()
        + &sidecar_resource(
            "default",
            "default",
            "",
            &["default/reviews.default.svc.cluster.local"],
        );
    let view = Mesh::new(&narrow).view(&sidecar("default", &[]));
    assert_eq!(hosts(&view), ["reviews.default.svc.cluster.local"]);
    let none = SERVICES.to_string() + &sidecar_resource("default", "default", "", &["~/*"]);
    assert!(
        Mesh::new(&none)
            .view(&sidecar("default", &[]))
            .services
            .is_empty()
    );
}

#[test]
fn the_sidecar_resource_is_chosen_workload_then_namespace_then_root() {
    let yaml = SERVICES.to_string()
        + &sidecar_resource("istio-system", "mesh-default", "", &["./*"])
        + &sidecar_resource("default", "ns-default", "", &["istio-system/*"])
        + &sidecar_resource("default", "for-reviews", "app: reviews", &["data/*"]);
    let mesh = Mesh::new(&yaml);
    let reviews = mesh.view(&sidecar("default", &[("app", "reviews")]));
    assert_eq!(names(&reviews, Kind::Sidecar), ["default/for-reviews"]);
    assert_eq!(hosts(&reviews), ["db.data.svc.cluster.local"]);
    let other = mesh.view(&sidecar("default", &[("app", "ratings")]));
    assert_eq!(names(&other, Kind::Sidecar), ["default/ns-default"]);
    assert_eq!(hosts(&other), ["istiod.istio-system.svc.cluster.local"]);
    let in_data = mesh.view(&sidecar("data", &[]));
    assert_eq!(
        names(&in_data, Kind::Sidecar),
        ["istio-system/mesh-default"]
    );
    assert_eq!(
        hosts(&in_data),
        ["db.data.svc.cluster.local"],
        "`.` in the root default means the workload's own namespace"
    );
    let gateway = mesh.view(&proxy(ProxyKind::Gateway, "default", &[]));
    assert!(
        names(&gateway, Kind::Sidecar).is_empty(),
        "Sidecars are for sidecars"
    );
}

#[test]
fn the_oldest_matching_workload_sidecar_wins() {
    let stamp = |y: String, ts: &str| {
        y.replacen(
            "namespace: default}",
            &format!("namespace: default, creationTimestamp: \"{ts}\"}}"),
            1,
        )
    };
    let yaml = SERVICES.to_string()
        + &stamp(
            sidecar_resource("default", "a-newer", "app: reviews", &["data/*"]),
            "2026-02-01T00:00:00Z",
        )
        + &stamp(
            sidecar_resource("default", "z-older", "app: reviews", &["./*"]),
            "2026-01-01T00:00:00Z",
        );
    let view = Mesh::new(&yaml).view(&sidecar("default", &[("app", "reviews")]));
    assert_eq!(names(&view, Kind::Sidecar), ["default/z-older"]);
}

#[test]
fn a_sidecar_imports_what_its_virtual_services_route_to() {
    let yaml = SERVICES.to_string()
        + &sidecar_resource(
            "default",
            "default",
            "",
            &["./reviews.default.svc.cluster.local"],
        )
        + &vs(
            "default",
            "reviews",
            "reviews.default.svc.cluster.local",
            "db.data.svc.cluster.local",
            "",
        );
    let view = Mesh::new(&yaml).view(&sidecar("default", &[]));
    assert_eq!(
        hosts(&view),
        [
            "db.data.svc.cluster.local",
            "reviews.default.svc.cluster.local"
        ]
    );
}

#[test]
fn destination_rules_are_looked_up_proxy_then_service_then_root_namespace() {
    let yaml = SERVICES.to_string()
        + &dr("istio-system", "mesh-wide", "*.local", "")
        + &dr("default", "reviews-own", "reviews", "")
        + &dr(
            "client",
            "client-reviews",
            "reviews.default.svc.cluster.local",
            "",
        )
        + &dr(
            "client",
            "client-private",
            "ratings.default.svc.cluster.local",
            ", exportTo: [.]",
        )
        + &dr("data", "db-wild", "*.data.svc.cluster.local", "")
        + &dr("data", "db-exact", "db.data.svc.cluster.local", "");
    let mesh = Mesh::new(&yaml);
    let client = sidecar("client", &[]);
    let drs_for = |p: &ProxyIdentity, host: &str| {
        let service = &mesh.registry.services[host];
        let mut names: Vec<String> =
            rules::destination_rules(&mesh.index, p, service, &Options::default())
                .iter()
                .map(|o| format!("{}/{}", o.namespace(), o.name()))
                .collect();
        names.sort();
        names
    };
    assert_eq!(
        drs_for(&client, "reviews.default.svc.cluster.local"),
        ["client/client-reviews"],
        "the proxy's namespace first"
    );
    assert_eq!(
        drs_for(&client, "ratings.default.svc.cluster.local"),
        ["client/client-private"],
        "its own private rules count"
    );
    assert_eq!(
        drs_for(&client, "db.data.svc.cluster.local"),
        ["data/db-exact"],
        "the service's namespace; exact beats wildcard"
    );
    assert_eq!(
        drs_for(&client, "istiod.istio-system.svc.cluster.local"),
        ["istio-system/mesh-wide"],
        "the root namespace last"
    );
    let in_default = mesh.view(&sidecar("default", &[]));
    assert_eq!(
        names(&in_default, Kind::DestinationRule),
        [
            "data/db-exact",
            "default/reviews-own",
            "istio-system/mesh-wide"
        ],
        "ratings falls through to the root rule: client's private one is not visible"
    );
}

#[test]
fn a_destination_rule_with_a_workload_selector_is_for_the_workloads_it_selects() {
    let yaml = SERVICES.to_string()
        + &dr(
            "default",
            "for-v2",
            "reviews",
            ", workloadSelector: {matchLabels: {version: v2}}, exportTo: [.]",
        );
    let mesh = Mesh::new(&yaml);
    assert_eq!(
        names(
            &mesh.view(&sidecar("default", &[("version", "v2")])),
            Kind::DestinationRule
        ),
        ["default/for-v2"]
    );
    assert!(
        names(
            &mesh.view(&sidecar("default", &[("version", "v1")])),
            Kind::DestinationRule
        )
        .is_empty()
    );
}

const POLICIES: &str = r#"
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: root-selected, namespace: istio-system}
spec: {selector: {matchLabels: {app: reviews}}, mtls: {mode: PERMISSIVE}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: ns-wide, namespace: default}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: reviews-only, namespace: default}
spec: {selector: {matchLabels: {app: reviews}}, action: ALLOW, rules: [{}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: other-ns, namespace: data}
spec: {action: ALLOW, rules: [{}]}
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: on-gateway, namespace: default}
spec:
  targetRef: {group: gateway.networking.k8s.io, kind: Gateway, name: web}
  jwtRules: [{issuer: "https://issuer.example.com", jwksUri: "https://issuer.example.com/jwks"}]
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec: {accessLogging: [{providers: [{name: envoy}]}]}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: ratings-tracing, namespace: default}
spec: {selector: {matchLabels: {app: ratings}}, tracing: [{randomSamplingPercentage: 10}]}
---
"#;

#[test]
fn inbound_policy_selected_namespace_wide_or_mesh_wide() {
    let mesh = Mesh::new(POLICIES);
    let reviews = mesh.view(&sidecar("default", &[("app", "reviews")]));
    assert_eq!(
        names(&reviews, Kind::PeerAuthentication),
        ["default/ns-wide", "istio-system/default"],
        "a root policy with a selector is for root-namespace workloads"
    );
    assert_eq!(
        names(&reviews, Kind::AuthorizationPolicy),
        ["default/reviews-only"]
    );
    assert!(names(&reviews, Kind::RequestAuthentication).is_empty());
    let ratings = mesh.view(&sidecar("default", &[("app", "ratings")]));
    assert!(names(&ratings, Kind::AuthorizationPolicy).is_empty());
    let in_root = mesh.view(&sidecar("istio-system", &[("app", "reviews")]));
    assert_eq!(
        names(&in_root, Kind::PeerAuthentication),
        ["istio-system/default", "istio-system/root-selected"]
    );
}

#[test]
fn telemetry_is_selected_like_policy() {
    let mesh = Mesh::new(POLICIES);
    let ratings = mesh.view(&sidecar("default", &[("app", "ratings")]));
    assert_eq!(
        names(&ratings, Kind::Telemetry),
        ["default/ratings-tracing", "istio-system/mesh-default"]
    );
    let reviews = mesh.view(&sidecar("default", &[("app", "reviews")]));
    assert_eq!(
        names(&reviews, Kind::Telemetry),
        ["istio-system/mesh-default"]
    );
}

#[test]
fn a_target_ref_attaches_policy_to_the_gateway_it_names() {
    let mesh = Mesh::new(POLICIES);
    let web = proxy(
        ProxyKind::Gateway,
        "default",
        &[("gateway.networking.k8s.io/gateway-name", "web")],
    );
    assert_eq!(
        names(&mesh.view(&web), Kind::RequestAuthentication),
        ["default/on-gateway"]
    );
    let other = proxy(
        ProxyKind::Gateway,
        "default",
        &[("gateway.networking.k8s.io/gateway-name", "api")],
    );
    assert!(names(&mesh.view(&other), Kind::RequestAuthentication).is_empty());
}

const GATEWAYS: &str = r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: SIMPLE, credentialName: public-cert}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: team, namespace: team}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: egress, namespace: istio-system}
spec:
  selector: {istio: egressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: v1
kind: Secret
metadata: {name: public-cert, namespace: istio-system}
type: kubernetes.io/tls
data: {tls.crt: "", tls.key: ""}
---
apiVersion: v1
kind: Secret
metadata: {name: public-cert-cacert, namespace: istio-system}
data: {}
---
apiVersion: v1
kind: Secret
metadata: {name: unrelated, namespace: istio-system}
data: {}
---
"#;

#[test]
fn gateways_get_the_gateways_that_select_them_and_their_virtual_services() {
    let yaml = GATEWAYS.to_string()
        + SERVICES
        + &vs(
            "default",
            "bound-full",
            "bookinfo.example.com",
            "reviews",
            ", gateways: [istio-system/public]",
        )
        + &vs(
            "team",
            "bound-short",
            "team.example.com",
            "reviews.default.svc.cluster.local",
            ", gateways: [team]",
        )
        + &vs("default", "mesh-only", "reviews", "reviews", "")
        + &vs(
            "default",
            "egress-bound",
            "api.example.com",
            "api.example.com",
            ", gateways: [istio-system/egress]",
        );
    let mesh = Mesh::new(&yaml);
    let ingress = proxy(
        ProxyKind::Gateway,
        "istio-system",
        &[("istio", "ingressgateway")],
    );
    let view = mesh.view(&ingress);
    assert_eq!(
        names(&view, Kind::Gateway),
        ["istio-system/public", "team/team"],
        "any namespace by default"
    );
    assert_eq!(
        names(&view, Kind::VirtualService),
        ["default/bound-full", "team/bound-short"]
    );
    assert_eq!(
        names(&view, Kind::Secret),
        [
            "istio-system/public-cert",
            "istio-system/public-cert-cacert"
        ],
        "the credential and its client CA, nothing else"
    );
    let egress = proxy(
        ProxyKind::Gateway,
        "istio-system",
        &[("istio", "egressgateway")],
    );
    assert!(
        names(&mesh.view(&egress), Kind::Secret).is_empty(),
        "secrets go only to the gateways whose Gateways name them"
    );
    assert_eq!(
        view.services.len(),
        mesh.registry.services.len(),
        "every visible service"
    );
    let scoped = Options {
        scope_gateway_to_namespace: true,
        ..Options::default()
    };
    let view = mesh.view_with(&ingress, &scoped);
    assert_eq!(
        names(&view, Kind::Gateway),
        ["istio-system/public"],
        "PILOT_SCOPE_GATEWAY_TO_NAMESPACE"
    );
    assert_eq!(names(&view, Kind::VirtualService), ["default/bound-full"]);
    let sidecar_view = mesh.view(&sidecar("default", &[("istio", "ingressgateway")]));
    assert!(names(&sidecar_view, Kind::Gateway).is_empty());
    assert!(names(&sidecar_view, Kind::Secret).is_empty());
    assert_eq!(
        names(&sidecar_view, Kind::VirtualService),
        ["default/mesh-only"]
    );
}

#[test]
fn delegate_virtual_services_travel_with_their_parent() {
    let yaml = SERVICES.to_string()
        + "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: root, namespace: default}\nspec: {hosts: [reviews], http: [{match: [{uri: {prefix: /a}}], delegate: {name: child, namespace: data}}]}\n---\n"
        + "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: child, namespace: data}\nspec: {http: [{route: [{destination: {host: reviews.default.svc.cluster.local}}]}]}\n---\n"
        + "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: orphan, namespace: data}\nspec: {http: [{route: [{destination: {host: reviews.default.svc.cluster.local}}]}]}\n---\n";
    let view = Mesh::new(&yaml).view(&sidecar("default", &[]));
    assert_eq!(
        names(&view, Kind::VirtualService),
        ["data/child", "default/root"]
    );
}

#[test]
fn registry_source_objects_reach_proxies_as_services_not_objects() {
    let view = Mesh::new(SERVICES).view(&sidecar("default", &[]));
    assert_eq!(view.services.len(), 5);
    assert!(
        view.objects.is_empty(),
        "{:?}",
        view.objects.keys().collect::<BTreeSet<_>>()
    );
}

#[test]
fn a_change_affects_only_the_proxies_that_can_see_it() {
    let base = SERVICES.to_string() + &sidecar_resource("data", "default", "", &["./*"]);
    let before = Mesh::new(&base);
    let after = Mesh::new(
        &(base.clone()
            + &vs(
                "default",
                "private",
                "reviews",
                "reviews",
                ", exportTo: [.]",
            )),
    );
    let proxies = [
        sidecar("default", &[]),
        sidecar("data", &[]),
        sidecar("other", &[]),
        proxy(ProxyKind::Gateway, "default", &[]),
    ];
    let key = ObjectKey::new(Kind::VirtualService, "default", "private");
    let hit = affected(
        Snapshot {
            index: &before.index,
            registry: &before.registry,
        },
        Snapshot {
            index: &after.index,
            registry: &after.registry,
        },
        &[key],
        &proxies,
        &Options::default(),
    );
    assert_eq!(
        hit,
        BTreeSet::from([0]),
        "a private mesh VirtualService is for its own namespace's sidecars"
    );
    let after = Mesh::new(&(base + &se("default", "new", "new.default.svc.cluster.local", "")));
    let hit = affected(
        Snapshot {
            index: &before.index,
            registry: &before.registry,
        },
        Snapshot {
            index: &after.index,
            registry: &after.registry,
        },
        &[ObjectKey::new(Kind::ServiceEntry, "default", "new")],
        &proxies,
        &Options::default(),
    );
    assert_eq!(
        hit,
        BTreeSet::from([0, 2, 3]),
        "the sidecar in data imports only its own namespace"
    );
}
