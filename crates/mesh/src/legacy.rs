//! Names for workloads outside the mesh (`weft run --no-sidecar`, Istio's "legacy"
//! clients): with no sidecar there is no DNS proxy and no capture to turn a VIP into an
//! endpoint, so their /etc/netns hosts file maps each Service's names to the address of
//! one workload it selects (kube-proxy would pick one too). `weft up` refreshes these
//! files as workloads come and go. A legacy client therefore reaches a Service's pods
//! on their own ports: a Service whose port differs from its targetPort is reached at
//! the targetPort.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde_json::Value;
use weft_api::registry::Workload;

use crate::state::WorkloadRecord;
use crate::{Mesh, net};

/// Rewrites the hosts file of every legacy workload whose names changed.
pub async fn refresh_all(mesh: &Mesh) {
    let legacy: Vec<WorkloadRecord> = mesh
        .state
        .records()
        .into_iter()
        .filter(|r| !r.sidecar && r.netns.is_some())
        .collect();
    if legacy.is_empty() {
        return;
    }
    let Some((services, workloads)) = fetch(mesh).await else {
        return;
    };
    for r in &legacy {
        write(r, &services, &workloads);
    }
}

/// Writes one legacy workload's hosts file.
pub async fn refresh_one(mesh: &Mesh, r: &WorkloadRecord) {
    if let Some((services, workloads)) = fetch(mesh).await {
        write(r, &services, &workloads);
    }
}

async fn fetch(mesh: &Mesh) -> Option<(Vec<Value>, Vec<Workload>)> {
    let services = mesh.api.services().await.ok()?;
    let workloads = mesh.api.workloads().await.ok()?;
    Some((services, workloads))
}

fn write(r: &WorkloadRecord, services: &[Value], workloads: &[Workload]) {
    let Some(netns) = &r.netns else {
        return;
    };
    let text = net::hosts_text(r, &entries(&r.namespace, services, workloads));
    let path = net::etc_dir(netns).join("hosts");
    if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
        let _ = net::write(&path, &text);
    }
}

/// For each Service with a selector that picks a workload: the first such workload's
/// address (by name) and the Service's names; the short name only in `namespace`.
pub fn entries(
    namespace: &str,
    services: &[Value],
    workloads: &[Workload],
) -> Vec<(Ipv4Addr, Vec<String>)> {
    let mut out = Vec::new();
    for svc in services {
        let meta = &svc["metadata"];
        let (Some(name), Some(ns)) = (meta["name"].as_str(), meta["namespace"].as_str()) else {
            continue;
        };
        let Some(selector) = svc["spec"]["selector"]
            .as_object()
            .filter(|s| !s.is_empty())
        else {
            continue;
        };
        let selector: BTreeMap<&str, &str> = selector
            .iter()
            .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)))
            .collect();
        let mut picked: Vec<&Workload> = workloads
            .iter()
            .filter(|w| w.namespace == ns)
            .filter(|w| {
                selector
                    .iter()
                    .all(|(k, v)| w.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect();
        picked.sort_by(|a, b| a.name.cmp(&b.name));
        let Some(ip) = picked
            .iter()
            .find_map(|w| w.address.parse::<Ipv4Addr>().ok())
        else {
            continue;
        };
        let mut names = Vec::new();
        if ns == namespace {
            names.push(name.to_string());
        }
        names.extend([
            format!("{name}.{ns}"),
            format!("{name}.{ns}.svc"),
            format!("{name}.{ns}.svc.cluster.local"),
        ]);
        out.push((ip, names));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn workload(name: &str, ns: &str, app: &str, ip: &str) -> Workload {
        Workload {
            name: name.into(),
            namespace: ns.into(),
            labels: BTreeMap::from([("app".to_string(), app.to_string())]),
            address: ip.into(),
            ..Workload::default()
        }
    }

    #[test]
    fn services_name_a_selected_workload() {
        let services = vec![
            json!({"metadata": {"name": "httpbin", "namespace": "foo"}, "spec": {"selector": {"app": "httpbin"}}}),
            json!({"metadata": {"name": "nobody", "namespace": "foo"}, "spec": {"selector": {"app": "none"}}}),
            json!({"metadata": {"name": "external", "namespace": "foo"}, "spec": {}}),
        ];
        let workloads = vec![
            workload("httpbin-v2", "foo", "httpbin", "10.251.0.9"),
            workload("httpbin-v1", "foo", "httpbin", "10.251.0.8"),
            workload("httpbin-v1", "bar", "httpbin", "10.251.0.7"),
        ];
        let here = entries("foo", &services, &workloads);
        assert_eq!(here.len(), 1);
        assert_eq!(here[0].0, Ipv4Addr::new(10, 251, 0, 8));
        assert_eq!(here[0].1[0], "httpbin");
        let elsewhere = entries("legacy", &services, &workloads);
        assert_eq!(
            elsewhere[0].1[0], "httpbin.foo",
            "no short name from another namespace"
        );
    }
}
