//! The name table's Istio rules, the answers' wire shapes, and forwarding.
#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;
use std::path::Path;

use hickory_proto::op::Query;

use super::*;
use crate::registry::Registry;

/// A Kubernetes Service `reviews` (VIP 10.96.0.7), a headless one, a ServiceEntry with an
/// address, one without (auto-allocated), a wildcard one, and one exported nowhere else.
const MESH: &str = "apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  clusterIP: 10.96.0.7
  ports: [{name: http, port: 9080}]
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: default}
spec:
  clusterIP: None
  ports: [{name: tcp, port: 5432}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: db, namespace: default}
subsets:
- addresses: [{ip: 10.1.0.5}]
  ports: [{name: tcp, port: 5432}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: default}
spec:
  hosts: [api.example.com]
  addresses: [192.0.2.10]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: NONE
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: auto, namespace: default}
spec:
  hosts: [auto.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wild, namespace: default}
spec:
  hosts: ['*.wild.example.com']
  addresses: [192.0.2.20]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: NONE
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: private, namespace: other}
spec:
  hosts: [private.example.com]
  addresses: [192.0.2.30]
  exportTo: ['.']
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: NONE
";

fn registry() -> Registry {
    let mut loaded = weft_api::Loaded::default();
    weft_api::load_str(
        MESH,
        Arc::from(Path::new("mesh.yaml")),
        &weft_api::LoadOptions::default(),
        &mut loaded,
    );
    let errors: Vec<String> = loaded.errors().map(|r| r.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    Registry::build(&loaded.objects)
}

fn v4(table: &NameTable, name: &str) -> Option<Vec<Ipv4Addr>> {
    table.lookup(name).map(|f| f.addresses.v4.clone())
}

const VIP: [u8; 4] = [10, 96, 0, 7];

#[test]
fn a_service_answers_to_its_kubernetes_names_from_its_namespace() {
    let table = NameTable::build(&registry(), "default");
    for name in [
        "reviews.",
        "reviews.default.",
        "reviews.default.svc.",
        "reviews.default.svc.cluster.local.",
    ] {
        assert_eq!(v4(&table, name), Some(vec![VIP.into()]), "{name}");
    }
    // The resolver's first try for `reviews.default` (ndots 5): an alias.
    let expanded = table
        .lookup("reviews.default.default.svc.cluster.local.")
        .unwrap();
    assert_eq!(expanded.cname.as_deref(), Some("reviews.default."));
    // Other search-path forms are not made up: they go upstream, as in Kubernetes.
    for name in [
        "reviews.svc.cluster.local.",
        "reviews.cluster.local.",
        "reviews.default.svc.cluster.",
        "reviews.default.svc.cluster.local.svc.cluster.local.",
    ] {
        assert_eq!(table.lookup(name), None, "{name}");
    }
}

#[test]
fn the_bare_name_is_only_the_own_namespaces() {
    let table = NameTable::build(&registry(), "other");
    assert_eq!(v4(&table, "reviews."), None);
    // In namespace `other` the search path's first domain is other's.
    assert_eq!(
        table.lookup("reviews.other.svc.cluster.local."),
        None,
        "a service of another namespace is not the own namespace's"
    );
    assert_eq!(v4(&table, "reviews.default."), Some(vec![VIP.into()]));
    assert_eq!(
        table
            .lookup("reviews.default.other.svc.cluster.local.")
            .and_then(|f| f.cname),
        Some("reviews.default.".to_string())
    );
}

#[test]
fn service_entry_hosts_headless_services_wildcards_and_export_to() {
    let registry = registry();
    let table = NameTable::build(&registry, "default");
    assert_eq!(
        v4(&table, "api.example.com."),
        Some(vec![[192, 0, 2, 10].into()])
    );
    // No short forms for a ServiceEntry host.
    assert_eq!(table.lookup("api."), None);
    let auto = v4(&table, "auto.example.com.").unwrap();
    let vip = registry.services["auto.example.com"].addresses[0].addr();
    assert_eq!(vec![std::net::IpAddr::from(auto[0])], vec![vip]);
    assert!(
        "240.240.0.0/16"
            .parse::<ipnet::IpNet>()
            .unwrap()
            .contains(&vip)
    );
    assert_eq!(
        v4(&table, "db.default.svc.cluster.local."),
        Some(vec![[10, 1, 0, 5].into()]),
        "a headless Service: its endpoints"
    );
    assert_eq!(
        v4(&table, "a.b.wild.example.com."),
        Some(vec![[192, 0, 2, 20].into()])
    );
    assert_eq!(table.lookup("wild.example.com."), None);
    assert_eq!(table.lookup("private.example.com."), None, "exportTo: .");
    let there = NameTable::build(&registry, "other");
    assert!(there.lookup("private.example.com.").is_some());
}

fn query(name: &str, qtype: RecordType) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.id = 4242;
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    m.to_vec().unwrap()
}

fn answer(d: Decision) -> Message {
    match d {
        Decision::Answer(bytes) => Message::from_vec(&bytes).unwrap(),
        other => panic!("expected an answer, got {other:?}"),
    }
}

#[test]
fn a_questions_for_mesh_names_are_answered_with_the_vip() {
    let table = NameTable::build(&registry(), "default");
    let m = answer(respond(
        &query("Reviews.default.svc.cluster.local.", RecordType::A),
        &table,
        true,
    ));
    assert_eq!(m.metadata.id, 4242);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative && m.metadata.recursion_desired);
    assert_eq!(m.queries.len(), 1);
    assert_eq!(m.answers.len(), 1);
    assert_eq!(m.answers[0].data, RData::from(Ipv4Addr::from(VIP)));
    assert_eq!(m.answers[0].ttl, TTL);

    // A search-path expansion: the CNAME, then the address.
    let m = answer(respond(
        &query("reviews.default.default.svc.cluster.local.", RecordType::A),
        &table,
        true,
    ));
    assert_eq!(m.answers.len(), 2);
    assert_eq!(m.answers[0].record_type(), RecordType::CNAME);
    assert_eq!(m.answers[1].name.to_ascii(), "reviews.default.");
}

#[test]
fn aaaa_for_a_known_name_is_an_empty_answer_other_questions_go_upstream() {
    let table = NameTable::build(&registry(), "default");
    let m = answer(respond(&query("reviews.", RecordType::AAAA), &table, true));
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    for (name, qtype) in [
        ("reviews.", RecordType::MX),
        ("example.org.", RecordType::A),
        ("reviews.svc.cluster.local.", RecordType::A),
    ] {
        assert!(
            matches!(
                respond(&query(name, qtype), &table, true),
                Decision::Forward(_)
            ),
            "{name} {qtype}"
        );
    }
}

#[test]
fn malformed_packets_get_formerr_or_nothing_never_a_panic() {
    let table = NameTable::build(&registry(), "default");
    let good = query("reviews.", RecordType::A);
    // Every prefix of a good query, and garbage.
    for n in 0..good.len() {
        let _ = respond(&good[..n], &table, true);
    }
    for seed in 0..500u64 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let len = rng.usize(0..64);
        let junk: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
        let _ = respond(&junk, &table, true);
    }
    // A header that announces a question it does not carry.
    let truncated = [0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    let m = answer(respond(&truncated, &table, true));
    assert_eq!(m.metadata.id, 0x1234);
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    // No question at all.
    let none = [0x12, 0x35, 0x01, 0x00, 0, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(
        answer(respond(&none, &table, true)).metadata.response_code,
        ResponseCode::FormErr
    );
    // A response, or no id: silence.
    let mut response = good.clone();
    response[2] |= 0x80;
    assert!(matches!(respond(&response, &table, true), Decision::Drop));
    assert!(matches!(respond(&[7], &table, true), Decision::Drop));
}

#[test]
fn resolv_conf_nameservers_and_upstream_addresses() {
    let text = "# comment\nsearch default.svc.cluster.local\nnameserver 10.0.0.10\nnameserver fe80::1%eth0\nnameserver ::1\noptions ndots:5\n";
    assert_eq!(
        upstream::resolv_conf_nameservers(text),
        vec![
            "10.0.0.10:53".parse::<SocketAddr>().unwrap(),
            "[::1]:53".parse().unwrap()
        ]
    );
    assert_eq!(
        upstream::parse_server("10.0.0.1").unwrap(),
        "10.0.0.1:53".parse().unwrap()
    );
    assert_eq!(
        upstream::parse_server("[::1]:5353").unwrap(),
        "[::1]:5353".parse().unwrap()
    );
    assert!(upstream::parse_server("resolver").is_err());
}

#[tokio::test]
async fn forwarding_relays_the_upstreams_answer_or_gives_up_in_time() {
    // A fake upstream that answers NXDOMAIN, after a stray datagram with a wrong id.
    let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        let (n, peer) = server.recv_from(&mut buf).await.unwrap();
        let mut stray = buf[..n].to_vec();
        stray[0] ^= 0xff;
        stray[2] |= 0x80;
        server.send_to(&stray, peer).await.unwrap();
        let mut reply = buf[..n].to_vec();
        reply[2] |= 0x80;
        reply[3] = (reply[3] & 0xf0) | 3;
        server.send_to(&reply, peer).await.unwrap();
    });
    let upstreams = Upstreams {
        servers: vec![addr],
        timeout: Duration::from_secs(5),
    };
    let q = query("nosuch.example.", RecordType::A);
    let got = upstreams.forward_udp(&q).await.unwrap();
    let m = Message::from_vec(&got).unwrap();
    assert_eq!(m.metadata.id, 4242);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);

    // A silent upstream: nothing within the timeout, and the SERVFAIL to send instead.
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let upstreams = Upstreams {
        servers: vec![silent.local_addr().unwrap()],
        timeout: Duration::from_millis(200),
    };
    let started = std::time::Instant::now();
    assert!(upstreams.forward_udp(&q).await.is_none());
    assert!(started.elapsed() < Duration::from_secs(2));
    let request = Message::from_vec(&q).unwrap();
    let fail = Message::from_vec(&servfail(&request)).unwrap();
    assert_eq!(
        (fail.metadata.id, fail.metadata.response_code),
        (4242, ResponseCode::ServFail)
    );
    assert_eq!(fail.queries, request.queries);
}
