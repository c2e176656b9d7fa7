//! The sidecar's DNS proxy end to end, as Istio's DNS proxying behaves: a client pod with
//! Istio's capture rules and DNS capture, a resolv.conf as Kubernetes writes it (search
//! path, ndots 5) naming the lab's fake nameserver, and a sidecar fed by the control
//! plane (a Service over a registered workload, a Service of another namespace,
//! ServiceEntries with and without addresses). Mesh names resolve to their VIPs through
//! glibc (`getent`) and curl reaches them through the sidecar; every other name is asked
//! of the nameserver, over UDP and TCP, and its answer (NXDOMAIN) relayed; a nameserver
//! that stays silent gives SERVFAIL; a malformed packet gives FORMERR. Needs root,
//! iproute2 and iptables (it fails, naming the package, when one is missing).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed set-up step should stop the test

#[path = "support/netns.rs"]
#[allow(dead_code)] // shared by the capture test files; not every helper is used in each
mod netns;
#[allow(dead_code)] // shared with the gateway tests; not every helper is used here
mod support;

use hickory_proto::op::ResponseCode;
use netns::cp::XDS;
use netns::dns::{KNOWN, KNOWN_ADDRESS, MALFORMED, SILENT};
use netns::{App, Lab, Pod, ok, vip_of};
use support::{DEADLINE, eventually};

/// The test binary doubles as the apps the lab runs inside namespaces; run normally,
/// this returns at once.
#[test]
#[ignore = "not a test: the helper processes the capture tests start inside namespaces"]
fn netns_helper() {
    netns::helper_main();
}

/// `reviews` over a registered workload, `ratings` in another namespace, an external
/// service whose endpoint is a pod (auto-allocated VIP), and one with a declared address.
const MESH: &str = "apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: other}
spec:
  selector: {app: ratings}
  ports: [{name: http, port: 9080}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: default}
spec:
  hosts: [ext.example.test]
  location: MESH_EXTERNAL
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.250.0.12}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: default}
spec:
  hosts: [db.example.test]
  addresses: [192.0.2.55]
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 10.250.0.13}]
";

/// Kubernetes' resolv.conf for a pod of `default`, with the lab's nameserver.
const RESOLV_CONF: &str = "nameserver 10.250.0.1
search default.svc.cluster.local svc.cluster.local cluster.local
options ndots:5
";

/// Where the client's resolver sends its questions (the capture rules send them on).
const NAMESERVER: &str = "10.250.0.1:53";

/// The first IPv4 address glibc's resolver gives for `name` in the pod (search path and
/// all), `None` when it finds none.
fn resolve(lab: &Lab, pod: &Pod, name: &str) -> Option<String> {
    let (code, out) = lab.bash(pod, &format!("getent ahostsv4 {name}"));
    if code != 0 {
        return None;
    }
    out.split_whitespace().next().map(str::to_string)
}

/// A mesh with DNS capture: the control plane, the fake nameserver (both in the hub),
/// reviews-v1 and ext with echo apps, and the client `sleep` with its sidecar.
fn mesh(lab: &mut Lab) -> (Pod, usize) {
    let cp = lab.control_plane();
    let upstream = lab.dns_upstream(&cp.hub);
    let reviews = lab.pod("reviews-v1", 11);
    lab.app(&reviews, App::Echo, "reviews-v1", &[9080]);
    let labels = [("app", "reviews"), ("version", "v1")];
    cp.register(lab, &reviews, "reviews-v1", &labels, &[("http", 9080)]);
    let ext = lab.pod("ext", 12);
    lab.app(&ext, App::Echo, "ext", &[80]);
    cp.apply(lab, MESH);

    let client = lab.pod("sleep", 10);
    lab.resolv_conf(&client, RESOLV_CONF);
    lab.capture_dns(&client);
    // No --dns-upstream: the sidecar takes resolv.conf's nameserver.
    lab.sidecar_from(
        &client,
        &["--control-plane", XDS],
        &["--name", "sleep", "--labels", "app=sleep"],
    );
    eventually("the sidecar to get the mesh's services", DEADLINE, || {
        let dump = lab.admin_json(&client, "/config_dump");
        let services = &dump["registry"]["services"];
        let ready = services["reviews.default.svc.cluster.local"]["endpoints"]
            .as_array()
            .is_some_and(|e| e.len() == 1)
            && services["db.example.test"].is_object();
        ready.then_some(())
    });
    (client, upstream)
}

#[test]
fn mesh_names_resolve_to_their_vips_and_the_rest_is_forwarded() {
    let mut lab = Lab::new();
    let (client, _) = mesh(&mut lab);
    let vip = vip_of(&lab, &client, "reviews.default.svc.cluster.local");
    assert!(vip.starts_with("240.240."), "{vip}");
    for name in [
        "reviews",
        "reviews.default",
        "reviews.default.svc",
        "reviews.default.svc.cluster.local",
    ] {
        assert_eq!(
            resolve(&lab, &client, name).as_deref(),
            Some(vip.as_str()),
            "{name}"
        );
    }
    // `getent hosts` asks AAAA first: the empty answer for a known name sends it on to A.
    let (code, hosts) = lab.bash(&client, "getent hosts reviews");
    assert_eq!(
        (code, hosts.split_whitespace().next()),
        (0, Some(vip.as_str()))
    );
    // The name resolves, the connection to the VIP is captured and routed.
    let reply = ok(lab.curl(&client, &["http://reviews:9080/"]));
    assert_eq!(reply.echo().backend(), "reviews-v1");
    assert!(reply.header("x-envoy-upstream-service-time").is_some());

    // ServiceEntry hosts: the auto-allocated VIP (and routing to the endpoint), the
    // declared address.
    let ext_vip = vip_of(&lab, &client, "ext.example.test");
    assert!(ext_vip.starts_with("240.240."), "{ext_vip}");
    assert_eq!(resolve(&lab, &client, "ext.example.test"), Some(ext_vip));
    let reply = ok(lab.curl(&client, &["http://ext.example.test/"]));
    assert_eq!(reply.echo().backend(), "ext");
    assert_eq!(
        resolve(&lab, &client, "db.example.test").as_deref(),
        Some("192.0.2.55")
    );

    // Another namespace's service: by name.namespace only, never by the bare name.
    let ratings = vip_of(&lab, &client, "ratings.other.svc.cluster.local");
    assert_eq!(resolve(&lab, &client, "ratings.other"), Some(ratings));
    assert_eq!(resolve(&lab, &client, "ratings"), None);

    // A name only the nameserver knows: asked of it, its answer relayed.
    assert_eq!(
        resolve(&lab, &client, KNOWN.trim_end_matches('.')),
        Some(KNOWN_ADDRESS.to_string())
    );
}

#[test]
fn answers_on_the_wire_udp_and_tcp() {
    let mut lab = Lab::new();
    let (client, upstream) = mesh(&mut lab);
    let vip = vip_of(&lab, &client, "reviews.default.svc.cluster.local");
    let ask = |name: &str, qtype: &str, transport: &str| {
        lab.dns_ask(&client, NAMESERVER, name, qtype, transport)
            .unwrap_or_else(|| panic!("no parsable answer for {name} {qtype} over {transport}"))
    };
    for transport in ["udp", "tcp"] {
        let a = ask("reviews.default.svc.cluster.local.", "A", transport);
        assert_eq!(
            (a.rcode, a.authoritative, a.records.clone()),
            (ResponseCode::NoError, true, vec![vip.clone()]),
            "{transport}"
        );
        // IPv4-only: a known name's AAAA is an empty answer, not NXDOMAIN.
        let aaaa = ask("reviews.default.svc.cluster.local.", "AAAA", transport);
        assert_eq!((aaaa.rcode, aaaa.records.len()), (ResponseCode::NoError, 0));
        // Forwarded over the client's transport, the nameserver's answer relayed.
        let known = ask(KNOWN, "A", transport);
        assert_eq!(known.records, [KNOWN_ADDRESS.to_string()], "{transport}");
        assert!(!known.authoritative);
        let unknown = ask("nosuch.example.", "A", transport);
        assert_eq!(unknown.rcode, ResponseCode::NXDomain, "{transport}");
        let malformed = ask(MALFORMED, "A", transport);
        assert_eq!(malformed.rcode, ResponseCode::FormErr, "{transport}");
    }
    // The resolver's first try for `reviews.default`: an alias, then the address.
    let expanded = ask("reviews.default.default.svc.cluster.local.", "A", "udp");
    assert_eq!(
        expanded.records,
        ["CNAME:reviews.default.".to_string(), vip.clone()]
    );
    // A search-path form that names no service of this namespace is not made up.
    let other = ask("reviews.svc.cluster.local.", "A", "udp");
    assert_eq!(other.rcode, ResponseCode::NXDomain);
    // A nameserver that never answers: SERVFAIL after the proxy's 2 s.
    let started = std::time::Instant::now();
    let silent = ask(SILENT, "A", "udp");
    assert_eq!(silent.rcode, ResponseCode::ServFail);
    assert!(started.elapsed() < std::time::Duration::from_secs(7));

    // What reached the nameserver: the forwarded questions, over both transports, and
    // none of the mesh's names.
    lab.assert_running(upstream);
    let log = std::fs::read_to_string(lab.dir().join("fake-nameserver-in-hub.log")).unwrap();
    for line in [
        "asked nosuch.example. A over udp",
        "asked nosuch.example. A over tcp",
        "asked reviews.svc.cluster.local. A over udp",
    ] {
        assert!(log.contains(line), "{line:?} not in:\n{log}");
    }
    assert!(!log.contains("reviews.default.svc.cluster.local."), "{log}");
}
