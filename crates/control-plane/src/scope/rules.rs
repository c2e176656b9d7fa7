//! Istio's selection rules, one function each: `exportTo` visibility, which Sidecar
//! resource applies to a workload and what its egress hosts import, the DestinationRule
//! lookup order, which Gateways select a gateway proxy, and which policies apply to a
//! workload.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use weft_api::analyze::{fqdn, host_matches};
use weft_api::common::PolicyTargetReference;
use weft_api::networking::virtual_service::Destination;
use weft_api::registry::Service;
use weft_api::{Kind, Object, Spec};

use super::index::{Index, ObjectKey};
use super::{Options, ProxyIdentity, ProxyKind, vs_hosts};

/// The label Istio puts on the pods of a Gateway API gateway, naming it.
const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";
/// The label naming the GatewayClass of such a gateway.
const GATEWAY_CLASS_LABEL: &str = "gateway.networking.k8s.io/gateway-class-name";

/// Whether an object of `object_ns` with `export_to` is visible from `from_ns`: `*` (or
/// nothing, Istio's default) everywhere, `.` in its own namespace, `~` nowhere, a name
/// in that namespace.
pub(crate) fn visible(export_to: &[String], object_ns: &str, from_ns: &str) -> bool {
    export_to.is_empty()
        || export_to.iter().any(|e| match e.as_str() {
            "*" => true,
            "." => object_ns == from_ns,
            "~" => false,
            ns => ns == from_ns,
        })
}

pub(crate) fn service_visible(service: &Service, from_ns: &str) -> bool {
    visible(&service.export_to, &service.namespace, from_ns)
}

/// The labels scoping reads from a proxy besides those its selectors name (below).
pub(crate) const GATEWAY_LABELS: [&str; 2] = [GATEWAY_NAME_LABEL, GATEWAY_CLASS_LABEL];

/// The label keys an object's selector reads from a proxy (the keys `selects` looks up
/// for it). A proxy's labels are read nowhere else but through `GATEWAY_LABELS`, so two
/// proxies that agree on these keys get the same view; a new rule that selects by
/// labels must name its keys here.
pub(crate) fn selector_keys(o: &Object) -> Vec<&String> {
    let selector = match &o.spec {
        Spec::Sidecar(s) => s.workload_selector.as_ref().map(|w| &w.labels),
        Spec::Gateway(g) => Some(&g.selector),
        Spec::DestinationRule(dr) => dr.workload_selector.as_ref().map(|s| &s.match_labels),
        spec => policy_scope(spec).and_then(|(selector, _)| selector),
    };
    selector.into_iter().flat_map(|s| s.keys()).collect()
}

/// Whether every label of `selector` is on the workload (an empty selector selects all).
pub(crate) fn selects(
    selector: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Whether two hosts, either possibly a wildcard, name a common host (Istio's
/// `host.Name.Matches`).
pub(crate) fn overlaps(a: &str, b: &str) -> bool {
    match (a.strip_prefix('*'), b.strip_prefix('*')) {
        (None, None) => a.eq_ignore_ascii_case(b),
        (Some(_), None) => host_matches(a, b),
        (None, Some(_)) => host_matches(b, a),
        (Some(sa), Some(sb)) => sa.ends_with(sb) || sb.ends_with(sa),
    }
}

/// The Sidecar resource that applies to a sidecar proxy, in Istio's order: the oldest
/// one of its namespace whose `workloadSelector` matches its labels, else its
/// namespace's one without a selector, else the root namespace's one without a selector.
pub(crate) fn sidecar_for<'i>(
    index: &'i Index,
    proxy: &ProxyIdentity,
    opts: &Options,
) -> Option<&'i Arc<Object>> {
    if proxy.kind != ProxyKind::Sidecar {
        return None;
    }
    let sidecars = index.of(Kind::Sidecar);
    let selector = |o: &Object| match &o.spec {
        Spec::Sidecar(s) => s.workload_selector.as_ref().map(|w| w.labels.clone()),
        _ => None,
    };
    let own = |o: &&Arc<Object>| o.namespace() == proxy.namespace;
    let root = |o: &&Arc<Object>| o.namespace() == opts.root_namespace;
    sidecars
        .iter()
        .filter(own)
        .find(|o| selector(o).is_some_and(|s| selects(&s, &proxy.labels)))
        .or_else(|| sidecars.iter().filter(own).find(|o| selector(o).is_none()))
        .or_else(|| sidecars.iter().filter(root).find(|o| selector(o).is_none()))
}

/// The `namespace/host` imports of a Sidecar's egress listeners.
pub(crate) struct Egress {
    hosts: Vec<(String, String)>,
}

impl Egress {
    /// `.` names the proxy's namespace, also in a root-namespace default Sidecar (Istio
    /// reads it in the namespace of the workload it applies to). No egress listener
    /// imports everything (`*/*`).
    pub(crate) fn of(sidecar: &Object, proxy_ns: &str) -> Egress {
        let Spec::Sidecar(spec) = &sidecar.spec else {
            return Egress { hosts: Vec::new() };
        };
        if spec.egress.is_empty() {
            return Egress {
                hosts: vec![("*".into(), "*".into())],
            };
        }
        let hosts = spec
            .egress
            .iter()
            .flat_map(|l| l.hosts.iter())
            .filter_map(|h| h.split_once('/'))
            .map(|(ns, host)| {
                let ns = if ns == "." { proxy_ns } else { ns };
                (ns.to_string(), host.to_ascii_lowercase())
            })
            .collect();
        Egress { hosts }
    }

    /// Whether a host of `namespace` is imported.
    pub(crate) fn imports(&self, namespace: &str, host: &str) -> bool {
        self.hosts
            .iter()
            .any(|(ns, h)| (ns == "*" || ns == namespace) && overlaps(h, host))
    }

    /// Whether a VirtualService is imported: its namespace and one of its hosts.
    pub(crate) fn imports_virtual_service(&self, vs: &Object) -> bool {
        vs_hosts(vs).iter().any(|h| self.imports(vs.namespace(), h))
    }
}

/// A VirtualService a sidecar in `from_ns` may use: it has hosts (delegates have none),
/// binds the `mesh` gateway (implicitly when it names no gateway) and is exported there.
pub(crate) fn mesh_virtual_service_visible(vs: &Object, from_ns: &str) -> bool {
    let Spec::VirtualService(spec) = &vs.spec else {
        return false;
    };
    let mesh = spec.gateways.is_empty() || spec.gateways.iter().any(|g| g == "mesh");
    !spec.hosts.is_empty() && mesh && visible(&spec.export_to, vs.namespace(), from_ns)
}

/// Whether a VirtualService visible from `from_ns` binds one of `gateways`
/// (`namespace/name`; a short name is of the VirtualService's namespace).
pub(crate) fn bound_to_any(vs: &Object, gateways: &BTreeSet<String>, from_ns: &str) -> bool {
    let Spec::VirtualService(spec) = &vs.spec else {
        return false;
    };
    let ns = vs.namespace();
    !spec.hosts.is_empty()
        && visible(&spec.export_to, ns, from_ns)
        && spec.gateways.iter().filter(|g| *g != "mesh").any(|g| {
            if g.contains('/') {
                gateways.contains(g)
            } else {
                gateways.contains(&format!("{ns}/{g}"))
            }
        })
}

/// The fully-qualified hosts a VirtualService routes or mirrors to.
pub(crate) fn destination_hosts(vs: &Object) -> Vec<String> {
    let Spec::VirtualService(spec) = &vs.spec else {
        return Vec::new();
    };
    let mut out: Vec<&Destination> = Vec::new();
    for r in &spec.http {
        out.extend(r.route.iter().filter_map(|d| d.destination.as_ref()));
        out.extend(r.mirror.iter());
        out.extend(r.mirrors.iter().filter_map(|m| m.destination.as_ref()));
    }
    for r in &spec.tcp {
        out.extend(r.route.iter().filter_map(|d| d.destination.as_ref()));
    }
    for r in &spec.tls {
        out.extend(r.route.iter().filter_map(|d| d.destination.as_ref()));
    }
    out.iter().map(|d| fqdn(&d.host, vs.namespace())).collect()
}

/// The VirtualServices a VirtualService delegates to.
pub(crate) fn delegates(vs: &Object) -> Vec<ObjectKey> {
    let Spec::VirtualService(spec) = &vs.spec else {
        return Vec::new();
    };
    spec.http
        .iter()
        .filter_map(|r| r.delegate.as_ref())
        .map(|d| {
            let ns = if d.namespace.is_empty() {
                vs.namespace()
            } else {
                &d.namespace
            };
            ObjectKey::new(Kind::VirtualService, ns, &d.name)
        })
        .collect()
}

/// Whether an Istio Gateway selects a gateway proxy: its `selector` labels are all on
/// the proxy (an empty selector selects every gateway), from any namespace unless
/// `scope_gateway_to_namespace`.
pub(crate) fn gateway_selects(gw: &Object, proxy: &ProxyIdentity, opts: &Options) -> bool {
    let Spec::Gateway(spec) = &gw.spec else {
        return false;
    };
    proxy.kind == ProxyKind::Gateway
        && (!opts.scope_gateway_to_namespace || gw.namespace() == proxy.namespace)
        && selects(&spec.selector, &proxy.labels)
}

/// The secrets a Gateway's servers take their certificates from.
pub(crate) fn credential_names(gw: &Object) -> Vec<String> {
    let Spec::Gateway(spec) = &gw.spec else {
        return Vec::new();
    };
    let mut names = Vec::new();
    for t in spec.servers.iter().filter_map(|s| s.tls.as_ref()) {
        for name in t.credential_name.iter().chain(&t.credential_names) {
            let name = name.strip_prefix("kubernetes://").unwrap_or(name);
            // Istio reads a credential's client CA from `<name>-cacert` when it exists.
            names.push(name.to_string());
            names.push(format!("{name}-cacert"));
        }
        names.extend(t.ca_cert_credential_name.iter().cloned());
    }
    names
}

/// The DestinationRules that apply to `service` for `proxy`, in Istio's lookup order:
/// those of the proxy's namespace, else those of the service's namespace exported to
/// the proxy's, else those of the root namespace exported to it. In each namespace the
/// most specific host wins (exact, then the longest wildcard), and every rule for that
/// host is returned (Istio merges them). A rule with a `workloadSelector` counts only
/// for the workloads of its namespace it selects.
pub(crate) fn destination_rules<'i>(
    index: &'i Index,
    proxy: &ProxyIdentity,
    service: &Service,
    opts: &Options,
) -> Vec<&'i Arc<Object>> {
    let mut namespaces = vec![proxy.namespace.as_str()];
    for ns in [service.namespace.as_str(), opts.root_namespace.as_str()] {
        if !namespaces.contains(&ns) {
            namespaces.push(ns);
        }
    }
    for ns in namespaces {
        let candidates: Vec<(&Arc<Object>, String)> = index
            .of(Kind::DestinationRule)
            .iter()
            .filter(|o| o.namespace() == ns)
            .filter_map(|o| match &o.spec {
                Spec::DestinationRule(dr) => {
                    let selected = dr.workload_selector.as_ref().is_none_or(|s| {
                        ns == proxy.namespace && selects(&s.match_labels, &proxy.labels)
                    });
                    (selected && visible(&dr.export_to, ns, &proxy.namespace))
                        .then(|| (o, fqdn(&dr.host, ns)))
                }
                _ => None,
            })
            .collect();
        if let Some(best) = most_specific(candidates.iter().map(|(_, h)| h.as_str()), &service.host)
        {
            return candidates
                .iter()
                .filter(|(_, h)| h == best)
                .map(|(o, _)| *o)
                .collect();
        }
    }
    Vec::new()
}

/// The pattern among `patterns` that covers `host` most specifically.
fn most_specific<'a>(patterns: impl Iterator<Item = &'a str>, host: &str) -> Option<&'a str> {
    patterns
        .filter(|p| host_matches(p, host))
        .max_by_key(|p| (!p.starts_with('*'), p.len()))
}

/// Whether a policy-like object (the `POLICY_KINDS`) applies to a proxy: one of its
/// namespace that its `selector` matches (or every one of the namespace without a
/// selector), every proxy of the mesh when it sits in the root namespace without a
/// selector, or the gateway its `targetRef(s)` name.
pub(crate) fn policy_applies(o: &Object, proxy: &ProxyIdentity, opts: &Options) -> bool {
    let Some((selector, targets)) = policy_scope(&o.spec) else {
        return false;
    };
    let ns = o.namespace();
    if !targets.is_empty() {
        return targets.iter().any(|t| target_applies(t, ns, proxy, opts));
    }
    match selector {
        None => ns == proxy.namespace || ns == opts.root_namespace,
        Some(labels) => ns == proxy.namespace && selects(labels, &proxy.labels),
    }
}

type PolicyScope<'a> = (
    Option<&'a BTreeMap<String, String>>,
    Vec<&'a PolicyTargetReference>,
);

fn policy_scope(spec: &Spec) -> Option<PolicyScope<'_>> {
    Some(match spec {
        Spec::PeerAuthentication(p) => (p.selector.as_ref().map(|s| &s.match_labels), Vec::new()),
        Spec::RequestAuthentication(p) => (
            p.selector.as_ref().map(|s| &s.match_labels),
            refs(&p.target_ref, &p.target_refs),
        ),
        Spec::AuthorizationPolicy(p) => (
            p.selector.as_ref().map(|s| &s.match_labels),
            refs(&p.target_ref, &p.target_refs),
        ),
        Spec::Telemetry(p) => (
            p.selector.as_ref().map(|s| &s.match_labels),
            refs(&p.target_ref, &p.target_refs),
        ),
        Spec::WasmPlugin(p) => (
            p.selector.as_ref().map(|s| &s.match_labels),
            refs(&p.target_ref, &p.target_refs),
        ),
        Spec::EnvoyFilter(p) => (
            p.workload_selector.as_ref().map(|s| &s.labels),
            p.target_refs.iter().collect(),
        ),
        Spec::ProxyConfig(p) => (p.selector.as_ref().map(|s| &s.match_labels), Vec::new()),
        _ => return None,
    })
}

fn refs<'a>(
    one: &'a Option<PolicyTargetReference>,
    many: &'a [PolicyTargetReference],
) -> Vec<&'a PolicyTargetReference> {
    one.iter().chain(many.iter()).collect()
}

/// `targetRef`: a Gateway API Gateway of the policy's namespace (its pods carry the
/// gateway's name), or from the root namespace a GatewayClass. References to a Service
/// or ServiceEntry attach to waypoints, which sidecars are not.
fn target_applies(
    t: &PolicyTargetReference,
    ns: &str,
    proxy: &ProxyIdentity,
    opts: &Options,
) -> bool {
    let label = |l: &str| proxy.labels.get(l).is_some_and(|v| *v == t.name);
    match (t.group.as_str(), t.kind.as_str()) {
        ("gateway.networking.k8s.io", "Gateway") => {
            ns == proxy.namespace && label(GATEWAY_NAME_LABEL)
        }
        ("gateway.networking.k8s.io", "GatewayClass") => {
            ns == opts.root_namespace && label(GATEWAY_CLASS_LABEL)
        }
        _ => false,
    }
}
