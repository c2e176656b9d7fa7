//! The push server's protocol on a real tonic stream in the test's process (a file
//! store in a temp dir, the server on 127.0.0.1, raw `DeltaConfig` clients): first
//! responses, ACK and NACK by nonce, resume with versions, debouncing, one encoding per
//! version, only the affected proxies woken.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use weft_xds::{
    CONFIG_TYPE, ConfigDiscoveryClient, DeltaConfigRequest, DeltaConfigResponse, ErrorDetail, Node,
    ProxyMode, ResourceError, SERVICE_TYPE, TYPES,
};

use super::*;
use crate::store::{Batch, FileStore};

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("weft-push-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A store, a push server over it serving on 127.0.0.1, stopped when dropped.
struct Harness {
    store: Arc<FileStore>,
    server: Arc<PushServer>,
    addr: String,
    registry: prometheus_client::registry::Registry,
    _stop: oneshot::Sender<()>,
    _dir: TempDir,
}

impl Harness {
    async fn start(name: &str, yaml: &str) -> Harness {
        let dir = TempDir::new(name);
        let store = Arc::new(FileStore::open(&dir.0).unwrap());
        // Stored before the server starts: its first world has it.
        if !yaml.is_empty() {
            let batch = Batch::parse(yaml, "<test>", "default").expect("valid config");
            store.apply(batch).await.unwrap();
        }
        let harness_store = Arc::clone(&store);
        let dyn_store: Arc<dyn ConfigStore> = store;
        let mut registry = prometheus_client::registry::Registry::default();
        let server = PushServer::new(dyn_store, PushOptions::default(), &mut registry);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(Arc::clone(&server).run());
        let serving = Arc::clone(&server);
        tokio::spawn(async move {
            let _ = serving
                .serve(listener, async {
                    let _ = stopped.await;
                })
                .await;
        });
        Harness {
            store: harness_store,
            server,
            addr,
            registry,
            _stop: stop,
            _dir: dir,
        }
    }

    async fn apply(&self, yaml: &str) {
        let batch = Batch::parse(yaml, "<test>", "default").expect("valid config");
        self.store.apply(batch).await.unwrap();
    }

    /// `/metrics`' text.
    fn metrics(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).unwrap();
        out
    }

    async fn connect(&self, node: Node) -> Client {
        Client::connect(&self.addr, node, [HashMap::new(), HashMap::new()]).await
    }

    /// A stream that subscribes to services with `*` and to config by `names`.
    async fn connect_named(&self, node: Node, names: &[&str]) -> Client {
        Client::open(&self.addr, node, [&["*"], names], Default::default()).await
    }
}

/// A raw client: sends requests, reads responses.
struct Client {
    tx: mpsc::UnboundedSender<DeltaConfigRequest>,
    rx: tonic::Streaming<DeltaConfigResponse>,
}

impl Client {
    /// Opens a stream and subscribes to both types (`*`) with the versions given.
    async fn connect(addr: &str, node: Node, have: [HashMap<String, String>; 2]) -> Client {
        Client::open(addr, node, [&["*"], &["*"]], have).await
    }

    /// Opens a stream and subscribes to each type by the names given.
    async fn open(
        addr: &str,
        node: Node,
        names: [&[&str]; 2],
        have: [HashMap<String, String>; 2],
    ) -> Client {
        let mut client = ConfigDiscoveryClient::connect(addr.to_string())
            .await
            .unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        for (i, ((t, versions), names)) in TYPES.iter().zip(have).zip(names).enumerate() {
            tx.send(DeltaConfigRequest {
                node: (i == 0).then(|| node.clone()),
                type_url: t.to_string(),
                resource_names_subscribe: names.iter().map(ToString::to_string).collect(),
                initial_resource_versions: versions,
                ..Default::default()
            })
            .unwrap();
        }
        let rx = client
            .delta_config(tokio_stream::wrappers::UnboundedReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        Client { tx, rx }
    }

    /// The next response within `wait`, if any.
    async fn recv_within(&mut self, wait: Duration) -> Option<DeltaConfigResponse> {
        tokio::time::timeout(wait, self.rx.message())
            .await
            .ok()
            .and_then(|r| r.unwrap())
    }

    async fn recv(&mut self) -> DeltaConfigResponse {
        self.recv_within(Duration::from_secs(5))
            .await
            .expect("a response within 5s")
    }

    /// The next response of `type_url`, ACKing others on the way.
    async fn recv_type(&mut self, type_url: &str) -> DeltaConfigResponse {
        loop {
            let r = self.recv().await;
            if r.type_url == type_url {
                return r;
            }
            self.ack(&r);
        }
    }

    fn ack(&self, r: &DeltaConfigResponse) {
        self.tx
            .send(DeltaConfigRequest {
                type_url: r.type_url.clone(),
                response_nonce: r.nonce.clone(),
                ..Default::default()
            })
            .unwrap();
    }

    /// Changes the config subscription (with no nonce, or ACKing `ack`).
    fn subscribe(&self, ack: Option<&DeltaConfigResponse>, add: &[&str], drop: &[&str]) {
        self.tx
            .send(DeltaConfigRequest {
                type_url: CONFIG_TYPE.into(),
                response_nonce: ack.map(|r| r.nonce.clone()).unwrap_or_default(),
                resource_names_subscribe: add.iter().map(ToString::to_string).collect(),
                resource_names_unsubscribe: drop.iter().map(ToString::to_string).collect(),
                ..Default::default()
            })
            .unwrap();
    }

    fn nack(&self, r: &DeltaConfigResponse, name: &str) {
        self.tx
            .send(DeltaConfigRequest {
                type_url: r.type_url.clone(),
                response_nonce: r.nonce.clone(),
                error_detail: Some(ErrorDetail {
                    code: 3,
                    message: "1 resource(s) refused".into(),
                }),
                resource_errors: vec![ResourceError {
                    name: name.into(),
                    reason: "not served yet".into(),
                }],
                ..Default::default()
            })
            .unwrap();
    }

    /// Receives and ACKs the first response of each type; the config one is returned.
    async fn sync(&mut self) -> DeltaConfigResponse {
        let services = self.recv_type(SERVICE_TYPE).await;
        self.ack(&services);
        let config = self.recv_type(CONFIG_TYPE).await;
        self.ack(&config);
        config
    }
}

fn gateway(name: &str, labels: &[(&str, &str)]) -> Node {
    Node {
        name: name.into(),
        mode: ProxyMode::Gateway as i32,
        namespace: "istio-system".into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        service_account: "default".into(),
        version: "test".into(),
        admin_address: String::new(),
        ip_addresses: Vec::new(),
    }
}

const GATEWAY: &str = "apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  selector: {istio: a}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: [\"*\"]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: v1, namespace: default}
spec:
  hosts: [v1.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
";

fn route(name: &str, status: u16) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: default}}
spec:
  hosts: [\"*\"]
  gateways: [gw]
  http:
  - directResponse: {{status: {status}}}
"
    )
}

fn names(r: &DeltaConfigResponse) -> Vec<&str> {
    r.resources.iter().map(|r| r.name.as_str()).collect()
}

fn state_of(server: &PushServer, proxy: &str, type_name: &str) -> serde_json::Value {
    let syncz = server.syncz(None).unwrap();
    let p = syncz["proxies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["proxy"] == proxy)
        .unwrap()
        .clone();
    p["types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == type_name)
        .unwrap()
        .clone()
}

#[tokio::test]
async fn a_new_proxy_gets_its_view_then_only_changes_acked_by_nonce() {
    let h = Harness::start("first", &format!("{GATEWAY}---\n{}", route("r", 200))).await;
    let mut a = h.connect(gateway("a", &[("istio", "a")])).await;
    let services = a.recv_type(SERVICE_TYPE).await;
    assert_eq!(names(&services), ["v1.example.com"]);
    let body: serde_json::Value = serde_json::from_slice(&services.resources[0].body).unwrap();
    // The registry's service, with its auto-allocated VIP.
    let vip = body["addresses"][0].as_str().unwrap();
    assert!(vip.starts_with("240.240."), "{vip}");
    a.ack(&services);
    let config = a.recv_type(CONFIG_TYPE).await;
    // The ServiceEntry is in the services, not the objects.
    assert_eq!(
        names(&config),
        ["Gateway/default/gw", "VirtualService/default/r"]
    );
    assert_eq!(state_of(&h.server, "a", "CONFIG")["state"], "STALE");
    a.ack(&config);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(state_of(&h.server, "a", "CONFIG")["state"], "SYNCED");
    // A change: only that object is sent.
    h.apply(&route("r", 503)).await;
    let next = a.recv().await;
    assert_eq!(next.type_url, CONFIG_TYPE);
    assert_eq!(names(&next), ["VirtualService/default/r"]);
    // An ACK with an old nonce is ignored: the response stays in flight.
    a.ack(&config);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(state_of(&h.server, "a", "CONFIG")["state"], "STALE");
    a.ack(&next);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let state = state_of(&h.server, "a", "CONFIG");
    assert_eq!(state["state"], "SYNCED");
    assert_eq!(state["nonce_acked"], next.nonce.as_str());
}

#[tokio::test]
async fn a_nack_is_recorded_and_the_rest_is_sent_again_without_the_refused_version() {
    let h = Harness::start("nack", &format!("{GATEWAY}---\n{}", route("r", 200))).await;
    let mut a = h.connect(gateway("a", &[("istio", "a")])).await;
    a.sync().await;
    h.apply(&format!("{}---\n{}", route("r", 503), route("s", 204)))
        .await;
    let both = a.recv().await;
    assert_eq!(
        names(&both),
        ["VirtualService/default/r", "VirtualService/default/s"]
    );
    a.nack(&both, "VirtualService/default/r");
    // The good one comes again, alone; the refused version is not resent.
    let again = a.recv().await;
    assert_eq!(names(&again), ["VirtualService/default/s"]);
    a.ack(&again);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let state = state_of(&h.server, "a", "CONFIG");
    assert_eq!(state["state"], "NACKED");
    let reason = state["last_nack"].as_str().unwrap();
    assert!(
        reason.contains("VirtualService/default/r: not served yet"),
        "{reason}"
    );
    assert!(a.recv_within(Duration::from_millis(300)).await.is_none());
    // The object's status counts the refusal.
    let status = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let key = crate::store::Key {
                kind: weft_api::Kind::VirtualService,
                namespace: "default".into(),
                name: "r".into(),
            };
            if let Some(d) = h.store.get(&key).and_then(|o| o.status.distribution)
                && d.rejected == 1
            {
                return d;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the distribution to show the NACK");
    assert_eq!((status.applied, status.total), (0, 1));
    // A new version of the refused object is sent, and clears the NACK once ACKed.
    h.apply(&route("r", 200)).await;
    let fixed = a.recv().await;
    assert_eq!(names(&fixed), ["VirtualService/default/r"]);
    a.ack(&fixed);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(state_of(&h.server, "a", "CONFIG")["state"], "SYNCED");
}

#[tokio::test]
async fn a_reconnecting_proxy_is_sent_only_what_changed_since_its_versions() {
    let h = Harness::start(
        "resume",
        &format!("{GATEWAY}---\n{}---\n{}", route("r", 200), route("s", 200)),
    )
    .await;
    let mut a = h.connect(gateway("a", &[("istio", "a")])).await;
    let services = a.recv_type(SERVICE_TYPE).await;
    a.ack(&services);
    let config = a.recv_type(CONFIG_TYPE).await;
    a.ack(&config);
    let versions = |r: &DeltaConfigResponse| -> HashMap<String, String> {
        r.resources
            .iter()
            .map(|r| (r.name.clone(), r.version.clone()))
            .collect()
    };
    let have = [versions(&services), versions(&config)];
    drop(a);
    // While it is away: one object changes, one goes.
    h.apply(&route("r", 503)).await;
    let key = crate::store::Key {
        kind: weft_api::Kind::VirtualService,
        namespace: "default".into(),
        name: "s".into(),
    };
    h.store.delete(key).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut again = Client::connect(&h.addr, gateway("a", &[("istio", "a")]), have).await;
    let services = again.recv_type(SERVICE_TYPE).await;
    assert!(services.resources.is_empty() && services.removed_resources.is_empty());
    again.ack(&services);
    let config = again.recv_type(CONFIG_TYPE).await;
    assert_eq!(names(&config), ["VirtualService/default/r"]);
    assert_eq!(config.removed_resources, ["VirtualService/default/s"]);
}

#[tokio::test]
async fn a_burst_of_applies_becomes_a_few_pushes() {
    let h = Harness::start("burst", GATEWAY).await;
    let mut a = h.connect(gateway("a", &[("istio", "a")])).await;
    a.sync().await;
    let batches = h.server.batches();
    for i in 0..100 {
        h.apply(&route(&format!("r{i}"), 200)).await;
    }
    let mut pushes = 0;
    let mut seen = 0;
    while seen < 100 {
        let r = a.recv().await;
        pushes += 1;
        seen += r.resources.len();
        a.ack(&r);
    }
    let batched = h.server.batches() - batches;
    assert!(
        pushes <= 5 && batched <= 5,
        "{pushes} pushes in {batched} batches"
    );
}

#[tokio::test]
async fn each_version_is_encoded_once_and_each_view_worked_out_once() {
    let h = Harness::start("encode", GATEWAY).await;
    let mut clients = Vec::new();
    for name in ["a", "b", "c"] {
        let mut c = h.connect(gateway(name, &[("istio", "a")])).await;
        c.sync().await;
        clients.push(c);
    }
    let before = h.server.encodes();
    let scopes = h.server.scopes();
    h.apply(&route("r", 200)).await;
    for c in &mut clients {
        let r = c.recv().await;
        assert_eq!(names(&r), ["VirtualService/default/r"]);
    }
    assert_eq!(h.server.encodes() - before, 1);
    // Alike proxies share one view, worked out once.
    assert_eq!(h.server.scopes() - scopes, 1);
}

#[tokio::test]
async fn a_change_goes_only_to_the_proxies_it_affects() {
    let h = Harness::start("affected", GATEWAY).await;
    let mut a = h.connect(gateway("a", &[("istio", "a")])).await;
    let mut b = h.connect(gateway("b", &[("istio", "b")])).await;
    a.sync().await;
    let b_config = b.sync().await;
    assert!(b_config.resources.is_empty(), "no Gateway selects b");
    // Bound to the Gateway only `a` serves: only `a`'s view is worked out again.
    let scopes = h.server.scopes();
    h.apply(&route("r", 200)).await;
    let r = a.recv().await;
    assert_eq!(names(&r), ["VirtualService/default/r"]);
    assert!(b.recv_within(Duration::from_millis(300)).await.is_none());
    assert_eq!(h.server.scopes() - scopes, 1);
}

/// `pilot_proxy_convergence_time_count`.
fn convergence_count(h: &Harness) -> u64 {
    let text = h.metrics();
    let line = text
        .lines()
        .find(|l| l.starts_with("pilot_proxy_convergence_time_count "))
        .unwrap();
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_batch_converges_when_every_affected_proxy_has_answered() {
    let h = Harness::start("converge", &format!("{GATEWAY}---\n{}", route("r", 200))).await;
    let mut a = h.connect(gateway("a", &[("istio", "a")])).await;
    let mut other = h.connect(gateway("other", &[("istio", "other")])).await;
    a.sync().await;
    other.sync().await;
    assert_eq!(convergence_count(&h), 0);

    h.apply(&route("r", 201)).await;
    let pushed = a.recv_type(CONFIG_TYPE).await;
    // Not converged while the affected proxy has not answered; the unaffected one is
    // not waited for.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(convergence_count(&h), 0);
    a.ack(&pushed);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while convergence_count(&h) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "{}", h.metrics());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let text = h.metrics();
    // Counted from the change (debounce and the 300 ms wait included).
    assert!(
        text.contains("pilot_proxy_convergence_time_bucket{le=\"0.25\"} 0\n"),
        "{text}"
    );
    assert_eq!(convergence_count(&h), 1);
    assert!(text.contains("pilot_xds{version=\"test\"} 2\n"), "{text}");
    assert!(
        text.contains("pilot_xds_pushes{type=\"config\"} "),
        "{text}"
    );
}

const R: &str = "VirtualService/default/r";
const S: &str = "VirtualService/default/s";
const T: &str = "VirtualService/default/t";
const GW: &str = "Gateway/default/gw";

#[tokio::test]
async fn named_subscriptions_get_what_they_name_and_a_missing_name_is_answered_removed() {
    let yaml = format!("{GATEWAY}---\n{}---\n{}", route("r", 200), route("s", 200));
    let h = Harness::start("named", &yaml).await;
    let mut a = h
        .connect_named(gateway("a", &[("istio", "a")]), &[R, T])
        .await;
    let services = a.recv_type(SERVICE_TYPE).await;
    a.ack(&services);
    // Only what it named; `t` does not exist, which it is told at once.
    let config = a.recv_type(CONFIG_TYPE).await;
    assert_eq!(names(&config), [R]);
    assert_eq!(config.removed_resources, [T]);
    a.ack(&config);
    // A change to what it did not name is not sent.
    h.apply(&route("s", 503)).await;
    assert!(a.recv_within(Duration::from_millis(400)).await.is_none());
    // A named resource that comes to exist is sent.
    h.apply(&route("t", 200)).await;
    let created = a.recv().await;
    assert_eq!(names(&created), [T]);
    // A subscription may change on an ACK.
    a.subscribe(Some(&created), &[GW], &[]);
    let added = a.recv().await;
    assert_eq!(names(&added), [GW]);
    assert!(added.removed_resources.is_empty());
    a.ack(&added);
    // Unsubscribing is not answered, and changes to that resource stop.
    a.subscribe(None, &[], &[R]);
    h.apply(&route("r", 503)).await;
    assert!(a.recv_within(Duration::from_millis(400)).await.is_none());
    // `*` later: everything else in its view, `r` again as it dropped it.
    a.subscribe(None, &["*"], &[]);
    let all = a.recv().await;
    assert_eq!(names(&all), [R, S]);
    a.ack(&all);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(state_of(&h.server, "a", "CONFIG")["state"], "SYNCED");
    assert_eq!(state_of(&h.server, "a", "CONFIG")["resources"], 4);
}

#[tokio::test]
async fn a_name_subscribed_again_is_resent_and_unsubscribing_under_a_wildcard_answers() {
    let h = Harness::start("resubscribe", &format!("{GATEWAY}---\n{}", route("r", 200))).await;
    let mut a = h.connect(gateway("a", &[("istio", "a")])).await;
    a.sync().await;
    // The proxy may have forgotten what it holds: a name subscribed again is sent.
    a.subscribe(None, &[R], &[]);
    let again = a.recv().await;
    assert_eq!(names(&again), [R]);
    a.ack(&again);
    a.subscribe(None, &["VirtualService/default/missing"], &[]);
    let missing = a.recv().await;
    assert!(missing.resources.is_empty());
    assert_eq!(
        missing.removed_resources,
        ["VirtualService/default/missing"]
    );
    a.ack(&missing);
    // With `*` as well, dropping a name must say whether the wildcard still covers it.
    a.subscribe(None, &[], &[R]);
    let kept = a.recv().await;
    assert_eq!(names(&kept), [R]);
    a.ack(&kept);
    a.subscribe(None, &[], &["VirtualService/default/missing"]);
    let gone = a.recv().await;
    assert_eq!(gone.removed_resources, ["VirtualService/default/missing"]);
    a.ack(&gone);
    // A name it is not subscribed to: nothing to say.
    a.subscribe(None, &[], &["VirtualService/default/never"]);
    assert!(a.recv_within(Duration::from_millis(300)).await.is_none());
    // A first request that names nothing subscribes to everything (the legacy form).
    let mut b = Client::open(
        &h.addr,
        gateway("b", &[("istio", "a")]),
        [&[], &[]],
        Default::default(),
    )
    .await;
    let config = b.sync().await;
    assert_eq!(names(&config), [GW, R]);
}

const SELECTED: &str = "---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: sel, namespace: default}
spec:
  hosts: [sel.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: sel}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: sel-1, namespace: default}
spec: {address: 127.0.0.2, labels: {app: sel}}
";

/// Waits until the object's distribution is (generation, applied, total).
async fn distribution_becomes(
    h: &Harness,
    kind: weft_api::Kind,
    name: &str,
    want: (i64, u32, u32),
) {
    let key = crate::store::Key {
        kind,
        namespace: "default".into(),
        name: name.into(),
    };
    let mut seen = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < deadline {
        seen = h.store.get(&key).and_then(|o| o.status.distribution);
        if seen.is_some_and(|d| (d.generation, d.applied, d.total) == want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{kind} {name}: distribution {seen:?}, want {want:?}");
}

#[tokio::test]
async fn registry_sources_count_the_proxies_that_have_the_services_they_feed() {
    use weft_api::Kind::{ServiceEntry, WorkloadEntry};
    let h = Harness::start("sources", &format!("{GATEWAY}{SELECTED}")).await;
    let mut a = h.connect(gateway("a", &[("istio", "a")])).await;
    a.sync().await;
    distribution_becomes(&h, ServiceEntry, "v1", (1, 1, 1)).await;
    distribution_becomes(&h, ServiceEntry, "sel", (1, 1, 1)).await;
    distribution_becomes(&h, WorkloadEntry, "sel-1", (1, 1, 1)).await;
    // A proxy that has not answered its services yet is counted, not up to date.
    let mut b = h.connect(gateway("b", &[("istio", "b")])).await;
    b.recv_type(SERVICE_TYPE).await;
    distribution_becomes(&h, WorkloadEntry, "sel-1", (1, 1, 2)).await;
    // A new generation of the endpoint counts once its service's new version is ACKed.
    h.apply(&SELECTED.replace("127.0.0.2", "127.0.0.3")).await;
    let moved = a.recv_type(SERVICE_TYPE).await;
    assert_eq!(names(&moved), ["sel.example.com"]);
    distribution_becomes(&h, WorkloadEntry, "sel-1", (2, 0, 2)).await;
    a.ack(&moved);
    distribution_becomes(&h, WorkloadEntry, "sel-1", (2, 1, 2)).await;
    // Its ServiceEntry did not change, yet its service did: it is behind with `b` too.
    distribution_becomes(&h, ServiceEntry, "sel", (1, 1, 2)).await;
    let key = crate::store::Key {
        kind: WorkloadEntry,
        namespace: "default".into(),
        name: "sel-1".into(),
    };
    let status = h.store.get(&key).unwrap().to_json()["status"].clone();
    let reconciled = &status["conditions"][1];
    assert_eq!(reconciled["type"], "Reconciled");
    assert_eq!(reconciled["message"], "1/2 proxies up to date.");
    assert_eq!(reconciled["status"], "False");
}

/// The names `proxy-status NAME` and `proxy-config ... NAME` take, as istioctl takes a pod:
/// the proxy's name, `name.namespace`, a `deploy/` prefix, and a bare name that picks the
/// proxy in `default`, else the only one of that name, else says it is ambiguous.
#[tokio::test]
async fn a_proxy_is_found_by_its_name_with_or_without_namespace() {
    let h = Harness::start("names", GATEWAY).await;
    let node = |name: &str, ns: &str| Node {
        namespace: ns.into(),
        ..gateway(name, &[("istio", "a")])
    };
    let mut streams = Vec::new();
    for (name, ns) in [
        ("fortio.default", "default"),
        ("web.shop", "shop"),
        ("web.default", "default"),
        ("api.shop", "shop"),
        ("api.pay", "pay"),
        ("plain", "shop"),
    ] {
        let mut s = h.connect(node(name, ns)).await;
        s.sync().await;
        streams.push(s);
    }
    let found = |id: &str| -> Result<String, String> {
        match h.server.syncz(Some(id)) {
            Ok(v) => Ok(v["proxies"][0]["proxy"].as_str().unwrap().to_string()),
            Err(e) => Err(e.to_string()),
        }
    };
    assert_eq!(found("fortio.default"), Ok("fortio.default".into()));
    assert_eq!(found("fortio"), Ok("fortio.default".into()));
    assert_eq!(found("deploy/fortio"), Ok("fortio.default".into()));
    assert_eq!(found("web"), Ok("web.default".into()), "default first");
    assert_eq!(found("web.shop"), Ok("web.shop".into()));
    assert_eq!(found("plain"), Ok("plain".into()));
    assert_eq!(found("plain.shop"), Ok("plain".into()), "name.namespace");
    assert!(
        found("api").unwrap_err().contains("api.pay, api.shop"),
        "{:?}",
        found("api")
    );
    assert_eq!(found("api.pay"), Ok("api.pay".into()));
    assert!(
        found("nope")
            .unwrap_err()
            .contains("no proxy named \"nope\"")
    );
    assert_eq!(
        h.server.syncz(None).unwrap()["proxies"]
            .as_array()
            .unwrap()
            .len(),
        6
    );
}
