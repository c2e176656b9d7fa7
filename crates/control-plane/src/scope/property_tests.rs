//! Properties of scoping on generated configs: for random meshes, proxies and changes
//! (an object added, modified or removed, a workload registered or gone), every proxy
//! whose scoped view differs before and after the change is in the affected set; and
//! proxies with the same view key get the same view.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use weft_api::registry::{ConfigObjects, Registry, VipAllocator, Workload, Workloads};
use weft_api::{LoadOptions, Loaded, Object, load_str};

use super::*;

const NAMESPACES: [&str; 4] = ["default", "a", "b", "istio-system"];
const APPS: [&str; 3] = ["svc0", "svc1", "svc2"];

struct Gen(fastrand::Rng);

impl Gen {
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.0.usize(..from.len())]
    }

    fn ns(&mut self) -> &'static str {
        self.pick(&NAMESPACES)
    }

    fn host(&mut self) -> String {
        match self.0.u8(..6) {
            0 => "ext.example.com".into(),
            1 => self.pick(&APPS).to_string(),
            _ => format!("{}.{}.svc.cluster.local", self.pick(&APPS), self.ns()),
        }
    }

    fn export(&mut self, none_allowed: bool) -> String {
        let choices: &[&str] = if none_allowed {
            &["", "", ".", "*", "a", "default", "~"]
        } else {
            &["", "", ".", "*", "a", "default"]
        };
        match self.pick(choices) {
            "" => String::new(),
            e => format!(", exportTo: [\"{e}\"]"),
        }
    }

    /// One object of a random kind, named from a small pool so changes hit existing ones.
    fn object(&mut self) -> String {
        let ns = self.ns();
        let n = self.0.u8(..3);
        let meta = |kind: &str, api: &str, name: String| {
            format!(
                "apiVersion: {api}\nkind: {kind}\nmetadata: {{name: {name}, namespace: {ns}}}\n"
            )
        };
        match self.0.u8(..10) {
            0 => {
                let host = format!("{}.{ns}.svc.cluster.local", self.pick(&APPS));
                let host = if self.0.bool() { host } else { self.host() };
                let host = if host.contains('.') {
                    host
                } else {
                    format!("{host}.example.org")
                };
                let sel = match self.0.bool() {
                    true => format!(
                        ", workloadSelector: {{labels: {{app: {}}}}}",
                        self.pick(&APPS)
                    ),
                    false => String::new(),
                };
                meta("ServiceEntry", "networking.istio.io/v1", format!("se{n}"))
                    + &format!(
                        "spec: {{hosts: [\"{host}\"], location: MESH_INTERNAL, resolution: STATIC, ports: [{{number: 80, name: http, protocol: HTTP}}]{sel}{}}}\n",
                        self.export(true)
                    )
            }
            1 => {
                let app = self.pick(&APPS);
                let ann = match self.0.u8(..3) {
                    0 => ", annotations: {networking.istio.io/exportTo: \".\"}".to_string(),
                    _ => String::new(),
                };
                format!(
                    "apiVersion: v1\nkind: Service\nmetadata: {{name: {app}, namespace: {ns}{ann}}}\nspec: {{selector: {{app: {app}}}, ports: [{{name: http, port: {}}}]}}\n",
                    80 + u16::from(self.0.u8(..2))
                )
            }
            2 | 3 => {
                let gateways = self.pick(&[
                    "",
                    "",
                    ", gateways: [mesh]",
                    ", gateways: [istio-system/gw0]",
                    ", gateways: [gw1]",
                    ", gateways: [mesh, istio-system/gw0]",
                ]);
                let host = self.host();
                let to = self.host();
                meta("VirtualService", "networking.istio.io/v1", format!("vs{n}"))
                    + &format!(
                        "spec: {{hosts: [\"{host}\"], http: [{{route: [{{destination: {{host: \"{to}\"}}}}]}}]{gateways}{}}}\n",
                        self.export(false)
                    )
            }
            4 => {
                let host = if self.0.u8(..4) == 0 {
                    "*.svc.cluster.local".to_string()
                } else {
                    self.host()
                };
                let (sel, export) = match self.0.u8(..4) {
                    0 => (
                        format!(
                            ", workloadSelector: {{matchLabels: {{app: {}}}}}",
                            self.pick(&APPS)
                        ),
                        ", exportTo: [\".\"]".to_string(),
                    ),
                    _ => (String::new(), self.export(false)),
                };
                meta(
                    "DestinationRule",
                    "networking.istio.io/v1",
                    format!("dr{n}"),
                ) + &format!("spec: {{host: \"{host}\"{sel}{export}}}\n")
            }
            5 => {
                let sel = match self.0.u8(..2) {
                    0 => format!(
                        "workloadSelector: {{labels: {{app: {}}}}}, ",
                        self.pick(&APPS)
                    ),
                    _ => String::new(),
                };
                let pool = [
                    "./*",
                    "*/*",
                    "a/*",
                    "istio-system/*",
                    "*/svc1.a.svc.cluster.local",
                    "~/*",
                    "default/svc0.default.svc.cluster.local",
                    "*/ext.example.com",
                ];
                let hosts: BTreeSet<&str> =
                    (0..=self.0.u8(..2)).map(|_| self.pick(&pool)).collect();
                let hosts: Vec<String> = hosts.iter().map(|h| format!("\"{h}\"")).collect();
                meta("Sidecar", "networking.istio.io/v1", format!("sc{n}"))
                    + &format!(
                        "spec: {{{sel}egress: [{{hosts: [{}]}}]}}\n",
                        hosts.join(", ")
                    )
            }
            6 => {
                let istio = self.pick(&["ingress", "egress"]);
                let tls = match self.0.bool() {
                    true => {
                        "port: {number: 443, name: https, protocol: HTTPS}, tls: {mode: SIMPLE, credentialName: cert0}"
                    }
                    false => "port: {number: 80, name: http, protocol: HTTP}",
                };
                meta("Gateway", "networking.istio.io/v1", format!("gw{}", n % 2))
                    + &format!(
                        "spec: {{selector: {{istio: {istio}}}, servers: [{{{tls}, hosts: [\"*\"]}}]}}\n"
                    )
            }
            7 => format!(
                "apiVersion: v1\nkind: Secret\nmetadata: {{name: cert{}, namespace: {ns}}}\ndata: {{}}\n",
                n % 2
            ),
            8 => {
                let sel = match self.0.u8(..3) {
                    0 => String::new(),
                    _ => format!(", selector: {{matchLabels: {{app: {}}}}}", self.pick(&APPS)),
                };
                let (kind, api, spec) = match self.0.u8(..3) {
                    0 => (
                        "PeerAuthentication",
                        "security.istio.io/v1",
                        "mtls: {mode: STRICT}",
                    ),
                    1 => (
                        "AuthorizationPolicy",
                        "security.istio.io/v1",
                        "action: ALLOW, rules: [{}]",
                    ),
                    _ => (
                        "Telemetry",
                        "telemetry.istio.io/v1",
                        "accessLogging: [{providers: [{name: envoy}]}]",
                    ),
                };
                meta(kind, api, format!("p{n}")) + &format!("spec: {{{spec}{sel}}}\n")
            }
            _ => {
                let target = self.pick(&["web", "api"]);
                meta(
                    "AuthorizationPolicy",
                    "security.istio.io/v1",
                    format!("t{n}"),
                ) + &format!(
                    "spec: {{targetRef: {{group: gateway.networking.k8s.io, kind: Gateway, name: {target}}}, action: DENY, rules: [{{}}]}}\n"
                )
            }
        }
    }

    fn proxy(&mut self) -> ProxyIdentity {
        let gateway = self.0.u8(..4) == 0;
        let mut labels = BTreeMap::new();
        if gateway {
            labels.insert(
                "istio".to_string(),
                self.pick(&["ingress", "egress"]).to_string(),
            );
            if self.0.bool() {
                labels.insert(
                    "gateway.networking.k8s.io/gateway-name".to_string(),
                    self.pick(&["web", "api"]).to_string(),
                );
            }
        } else if self.0.u8(..4) != 0 {
            labels.insert("app".to_string(), self.pick(&APPS).to_string());
        }
        ProxyIdentity {
            kind: if gateway {
                ProxyKind::Gateway
            } else {
                ProxyKind::Sidecar
            },
            namespace: self.ns().to_string(),
            labels,
            service_account: "default".into(),
        }
    }

    fn workload(&mut self, i: usize) -> Workload {
        Workload {
            name: format!("w{i}"),
            namespace: self.ns().to_string(),
            labels: BTreeMap::from([("app".to_string(), self.pick(&APPS).to_string())]),
            service_account: "default".into(),
            address: format!("127.0.0.{}", i + 1),
            ports: BTreeMap::from([("http".to_string(), 8080)]),
            group: None,
        }
    }
}

/// Loads one generated object; `None` when validation refuses it.
fn parse(yaml: &str) -> Option<Arc<Object>> {
    let mut out = Loaded::default();
    load_str(
        yaml,
        Arc::from(Path::new("gen.yaml")),
        &LoadOptions::default(),
        &mut out,
    );
    if out.has_errors() {
        return None;
    }
    out.objects.pop().map(Arc::new)
}

struct World {
    objects: BTreeMap<ObjectKey, Arc<Object>>,
    workloads: Workloads,
}

impl World {
    fn snapshot(&self, vips: &mut VipAllocator) -> (Index, Registry) {
        let plain: Vec<Object> = self.objects.values().map(|o| (**o).clone()).collect();
        let registry = Registry::from_sources(&[&ConfigObjects(&plain), &self.workloads], vips);
        (Index::new(self.objects.values().cloned()), registry)
    }
}

#[test]
fn a_change_never_misses_a_proxy_whose_view_changes() {
    let opts = Options::default();
    let (mut refused, mut generated, mut changed_views, mut affected_total, mut proxies_total) =
        (0, 0, 0, 0, 0);
    for seed in 0..400 {
        let mut g = Gen(fastrand::Rng::with_seed(seed));
        let mut world = World {
            objects: BTreeMap::new(),
            workloads: Workloads::default(),
        };
        for _ in 0..30 {
            generated += 1;
            match parse(&g.object()) {
                Some(o) => {
                    world.objects.insert(ObjectKey::of(&o), o);
                }
                None => refused += 1,
            }
        }
        for i in 0..3 {
            world.workloads.register(g.workload(i));
        }
        let proxies: Vec<ProxyIdentity> = (0..12).map(|_| g.proxy()).collect();
        let mut vips = VipAllocator::default();
        let (index_before, registry_before) = world.snapshot(&mut vips);
        let mut changed = Vec::new();
        match g.0.u8(..4) {
            0 if !world.objects.is_empty() => {
                let key = world
                    .objects
                    .keys()
                    .nth(g.0.usize(..world.objects.len()))
                    .cloned();
                if let Some(key) = key {
                    world.objects.remove(&key);
                    changed.push(key);
                }
            }
            1 => {
                let i = g.0.usize(..5);
                let name = format!("w{i}");
                let ns = world
                    .workloads
                    .iter()
                    .find(|w| w.name == name)
                    .map(|w| w.namespace.clone());
                match ns {
                    Some(ns) => {
                        world.workloads.deregister(&ns, &name);
                    }
                    None => {
                        world.workloads.register(g.workload(i));
                    }
                }
            }
            _ => {
                if let Some(o) = parse(&g.object()) {
                    let key = ObjectKey::of(&o);
                    world.objects.insert(key.clone(), o);
                    changed.push(key);
                }
            }
        }
        let (index_after, registry_after) = world.snapshot(&mut vips);
        let hit = affected(
            Snapshot {
                index: &index_before,
                registry: &registry_before,
            },
            Snapshot {
                index: &index_after,
                registry: &registry_after,
            },
            &changed,
            &proxies,
            &opts,
        );
        for (i, p) in proxies.iter().enumerate() {
            let before = scope(&index_before, &registry_before, p, &opts);
            let after = scope(&index_after, &registry_after, p, &opts);
            if before != after {
                changed_views += 1;
                assert!(
                    hit.contains(&i),
                    "seed {seed}: {p:?} changed by {changed:?} but not in the affected set {hit:?}\nbefore: {:?}\nafter: {:?}",
                    before.objects.keys().collect::<Vec<_>>(),
                    after.objects.keys().collect::<Vec<_>>(),
                );
            }
        }
        affected_total += hit.len();
        proxies_total += proxies.len();
    }
    eprintln!(
        "{refused}/{generated} refused, {changed_views} views changed, {affected_total}/{proxies_total} affected"
    );
    assert!(
        refused * 10 < generated,
        "the generator makes mostly valid objects: {refused} of {generated} refused"
    );
    assert!(
        changed_views > 100,
        "the changes exercise the property: {changed_views} views changed"
    );
    assert!(
        affected_total < proxies_total * 3 / 4,
        "the affected set is narrower than everyone: {affected_total} of {proxies_total}"
    );
}

#[test]
fn proxies_with_the_same_view_key_get_the_same_view() {
    let opts = Options::default();
    let mut compared = 0;
    for seed in 0..200 {
        let mut g = Gen(fastrand::Rng::with_seed(seed));
        let mut world = World {
            objects: BTreeMap::new(),
            workloads: Workloads::default(),
        };
        for _ in 0..30 {
            if let Some(o) = parse(&g.object()) {
                world.objects.insert(ObjectKey::of(&o), o);
            }
        }
        for i in 0..3 {
            world.workloads.register(g.workload(i));
        }
        let (index, registry) = world.snapshot(&mut VipAllocator::default());
        for _ in 0..12 {
            // A replica's labels: the selected ones, and others no selector reads.
            let mut proxy = g.proxy();
            proxy
                .labels
                .insert("pod-template-hash".into(), g.0.u32(..).to_string());
            let key = index.view_key(&proxy);
            let bare = ProxyIdentity {
                labels: key.labels.iter().cloned().collect(),
                ..proxy.clone()
            };
            assert_eq!(
                scope(&index, &registry, &proxy, &opts),
                scope(&index, &registry, &bare, &opts),
                "seed {seed}: {proxy:?} and {bare:?} share the key {key:?}"
            );
            compared += 1;
        }
    }
    assert_eq!(compared, 200 * 12);
}
