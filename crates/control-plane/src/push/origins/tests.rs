//! Which services each registry source feeds, per kind.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use weft_api::registry::{ConfigObjects, VipAllocator, Workload};
use weft_api::{LoadOptions, Loaded, load_str};

use super::*;

const MESH: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings.example.com, ratings.internal]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: ratings}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ratings-1, namespace: default}
spec: {address: 10.0.0.7, labels: {app: ratings}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: nobody, namespace: default}
spec: {address: 10.0.0.9, labels: {app: nobody}}
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  selector: {app: reviews}
  ports: [{port: 9080, name: http}]
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-1, namespace: default, labels: {app: reviews}}
spec: {containers: [{name: app, image: reviews}]}
status: {podIP: 10.0.1.1}
---
apiVersion: v1
kind: Endpoints
metadata: {name: reviews, namespace: default}
subsets: [{addresses: [{ip: 10.0.1.50}], ports: [{port: 9080, name: http}]}]
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: default}
spec: {ports: [{port: 5432, name: tcp}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: db, namespace: default}
subsets: [{addresses: [{ip: 10.0.2.1}], ports: [{port: 5432, name: tcp}]}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: shadowed, namespace: default}
spec:
  hosts: [db.default.svc.cluster.local]
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 10.9.9.9}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {name: vm, namespace: default}
spec:
  template: {labels: {app: vm}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: vm, namespace: default}
spec:
  hosts: [vm.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: vm}}
";

#[test]
fn each_source_kind_feeds_the_services_its_effect_is_in() {
    let mut loaded = Loaded::default();
    load_str(
        MESH,
        Arc::from(Path::new("t.yaml")),
        &LoadOptions::default(),
        &mut loaded,
    );
    assert!(!loaded.has_errors(), "{:?}", loaded.reports);
    let mut workloads = Workloads::default();
    workloads.register(Workload {
        name: "vm-1".into(),
        namespace: "default".into(),
        address: "10.0.3.1".into(),
        group: Some("vm".into()),
        ..Workload::default()
    });
    let registry = Registry::from_sources(
        &[&ConfigObjects(&loaded.objects), &workloads],
        &mut VipAllocator::default(),
    );
    let index = Index::new(loaded.objects.into_iter().map(Arc::new));
    let feeds = feeds(&index, &registry, &workloads);
    let of = |kind: Kind, name: &str| -> Vec<&str> {
        feeds
            .get(&ObjectKey::new(kind, "default", name))
            .map(|h| h.iter().map(String::as_str).collect())
            .unwrap_or_default()
    };
    assert_eq!(
        of(Kind::ServiceEntry, "ratings"),
        ["ratings.example.com", "ratings.internal"]
    );
    assert_eq!(
        of(Kind::WorkloadEntry, "ratings-1"),
        ["ratings.example.com", "ratings.internal"]
    );
    assert!(
        of(Kind::WorkloadEntry, "nobody").is_empty(),
        "selected by no service"
    );
    let reviews = ["reviews.default.svc.cluster.local"];
    assert_eq!(of(Kind::Service, "reviews"), reviews);
    assert_eq!(of(Kind::Pod, "reviews-1"), reviews);
    // The Service selects pods: its Endpoints object is not read.
    assert!(of(Kind::Endpoints, "reviews").is_empty());
    let db = ["db.default.svc.cluster.local"];
    assert_eq!(of(Kind::Service, "db"), db);
    assert_eq!(of(Kind::Endpoints, "db"), db);
    // The Service is the authority for its name; the ServiceEntry feeds nothing.
    assert!(of(Kind::ServiceEntry, "shadowed").is_empty());
    assert_eq!(of(Kind::WorkloadGroup, "vm"), ["vm.example.com"]);
}
