//! DNS in the lab: Istio's DNS capture rules, a pod's resolv.conf, a fake upstream
//! nameserver (UDP and TCP) that knows one name, never answers another and says NXDOMAIN
//! to the rest, and a one-question client; the last two run as helper processes inside
//! pods (see `netns::helper_main`).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

use super::{Lab, PROXY_UID, Pod, capture_rules};
use crate::support::{DEADLINE, eventually};

/// The one name the fake upstream knows, and its address.
pub const KNOWN: &str = "upstream.test.";
pub const KNOWN_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 250, 0, 99);
/// A name the fake upstream never answers.
pub const SILENT: &str = "silent.test.";
/// The name the client sends as a header that announces a question it does not carry.
pub const MALFORMED: &str = "!malformed";

impl Lab {
    /// [`Lab::capture`] with Istio's DNS capture (`ISTIO_META_DNS_CAPTURE`, all DNS
    /// servers, as istio-iptables writes it for the CNI): the workload's DNS over UDP
    /// and TCP port 53 goes to the sidecar's 15053, the sidecar's own (UID/GID 1337) to
    /// the nameservers; UDP DNS is split into two conntrack zones (workload <-> proxy,
    /// proxy <-> nameserver) so that their entries never collide.
    pub fn capture_dns(&self, pod: &Pod) {
        self.apply_rules(pod, "nat", &capture_rules(true));
        let mut raw: Vec<String> = Vec::new();
        for owner in ["--uid-owner", "--gid-owner"] {
            raw.push(format!(
                "-A OUTPUT -p udp --dport 53 -m owner {owner} {PROXY_UID} -j CT --zone 1"
            ));
            raw.push(format!(
                "-A OUTPUT -p udp --sport 15053 -m owner {owner} {PROXY_UID} -j CT --zone 2"
            ));
        }
        raw.push("-A OUTPUT -p udp --dport 53 -j CT --zone 2".into());
        raw.push("-A PREROUTING -p udp --sport 53 -j CT --zone 1".into());
        self.apply_rules(pod, "raw", &raw);
    }

    /// The pod's /etc/resolv.conf (`ip netns exec` mounts /etc/netns/NS/resolv.conf
    /// over it), for its processes and its sidecar alike.
    pub fn resolv_conf(&self, pod: &Pod, text: &str) {
        let dir = Path::new("/etc/netns").join(&pod.ns);
        eventually("/etc/netns/<ns> to be created", DEADLINE, || {
            std::fs::create_dir_all(&dir).ok()
        });
        std::fs::write(dir.join("resolv.conf"), text).expect("write the pod's resolv.conf");
    }

    /// Starts the lab's fake upstream nameserver (see this module) in the pod, on port 53
    /// (UDP and TCP), and waits until it listens. Returns its index.
    pub fn dns_upstream(&mut self, pod: &Pod) -> usize {
        let ready = self.dir.join(format!("{}-dns.ready", pod.name));
        let what = format!("fake nameserver in {}", pod.name);
        let i = self.spawn_helper(
            pod,
            &what,
            &[
                ("dns-upstream", ""),
                ("ports", "53"),
                ("ready", &ready.display().to_string()),
            ],
        );
        eventually(&format!("the {what} to listen"), DEADLINE, || {
            self.assert_running(i);
            ready.exists().then_some(())
        });
        i
    }

    /// Asks `server` one DNS question from inside the pod (as root: the capture rules
    /// apply); `None` when no answer came.
    pub fn dns_ask(
        &self,
        pod: &Pod,
        server: &str,
        name: &str,
        qtype: &str,
        transport: &str,
    ) -> Option<Answer> {
        let out = self
            .helper_command(
                pod,
                &[
                    ("dns-ask", server),
                    ("name", name),
                    ("qtype", qtype),
                    ("transport", transport),
                ],
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .expect("run the DNS client helper");
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find_map(|l| l.split_once("DNS-ANSWER ").map(|(_, answer)| answer))
            .unwrap_or_else(|| panic!("no answer line from the DNS client:\n{text}"));
        parse_answer(line)
    }
}

/// The DNS client helper: one question, its answer printed as `DNS-ANSWER ...`.
pub fn ask_main(server: &str, var: impl Fn(&str) -> Option<String>) {
    let server: std::net::SocketAddr = server.parse().expect("the DNS server's address");
    let name = var("NAME").unwrap_or_default();
    let qtype = match var("QTYPE").as_deref() {
        Some("AAAA") => RecordType::AAAA,
        Some("MX") => RecordType::MX,
        _ => RecordType::A,
    };
    let tcp = var("TRANSPORT").as_deref() == Some("tcp");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let answer = runtime.block_on(ask(server, &name, qtype, tcp));
    println!("DNS-ANSWER {answer}");
}

/// The fake upstream's answer to one packet; `None`: stay silent.
fn upstream_answer(packet: &[u8]) -> Option<Vec<u8>> {
    let query = Message::from_vec(packet).ok()?;
    let question = query.queries.first()?.clone();
    let mut reply = Message::response(query.metadata.id, query.metadata.op_code);
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    let name = question.name().to_lowercase().to_ascii();
    if name == SILENT {
        return None;
    }
    if name == KNOWN && question.query_type() == RecordType::A {
        let record = Record::from_rdata(question.name().clone(), 60, RData::from(KNOWN_ADDRESS));
        reply.add_answer(record);
    } else if name != KNOWN {
        reply.metadata.response_code = ResponseCode::NXDomain;
    }
    reply.add_query(question);
    reply.to_vec().ok()
}

/// Serves the fake upstream on UDP and TCP until the process is killed; each question
/// it gets is logged to standard output (`asked NAME TYPE over udp|tcp`).
pub async fn upstream(udp: UdpSocket, tcp: TcpListener) {
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = tcp.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                while let Ok(len) = stream.read_u16().await {
                    let mut packet = vec![0u8; usize::from(len)];
                    if stream.read_exact(&mut packet).await.is_err() {
                        return;
                    }
                    log_question(&packet, "tcp");
                    let Some(reply) = upstream_answer(&packet) else {
                        continue;
                    };
                    let mut framed = (reply.len() as u16).to_be_bytes().to_vec();
                    framed.extend_from_slice(&reply);
                    if stream.write_all(&framed).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let mut buf = vec![0u8; 65535];
    loop {
        let Ok((n, peer)) = udp.recv_from(&mut buf).await else {
            continue;
        };
        log_question(&buf[..n], "udp");
        if let Some(reply) = upstream_answer(&buf[..n]) {
            let _ = udp.send_to(&reply, peer).await;
        }
    }
}

fn log_question(packet: &[u8], transport: &str) {
    if let Ok(m) = Message::from_vec(packet)
        && let Some(q) = m.queries.first()
    {
        println!("asked {} {} over {transport}", q.name(), q.query_type());
    }
}

/// What a client got for one question.
#[derive(Debug)]
pub struct Answer {
    pub rcode: ResponseCode,
    pub authoritative: bool,
    /// `CNAME target` or the address, in order.
    pub records: Vec<String>,
}

/// Asks `server` one question (`name` absolute, or [`MALFORMED`]) over UDP or TCP; the
/// answer's text for [`parse_answer`], or `timeout`.
pub async fn ask(server: SocketAddr, name: &str, qtype: RecordType, tcp: bool) -> String {
    let packet = if name == MALFORMED {
        // id 0x1234, a query, one question announced, none there.
        vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]
    } else {
        let mut m = Message::query();
        m.metadata.recursion_desired = true;
        let Ok(n) = Name::from_ascii(name) else {
            return format!("bad name {name}");
        };
        m.add_query(Query::query(n, qtype));
        m.to_vec().unwrap_or_default()
    };
    let exchange = async {
        if tcp {
            let mut s = tokio::net::TcpStream::connect(server).await.ok()?;
            let mut framed = (packet.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&packet);
            s.write_all(&framed).await.ok()?;
            let len = s.read_u16().await.ok()?;
            let mut reply = vec![0u8; usize::from(len)];
            s.read_exact(&mut reply).await.ok()?;
            Some(reply)
        } else {
            let s = UdpSocket::bind("0.0.0.0:0").await.ok()?;
            s.send_to(&packet, server).await.ok()?;
            let mut reply = vec![0u8; 65535];
            let n = s.recv(&mut reply).await.ok()?;
            reply.truncate(n);
            Some(reply)
        }
    };
    match tokio::time::timeout(Duration::from_secs(8), exchange).await {
        Ok(Some(reply)) => describe(&reply, &packet),
        _ => "timeout".to_string(),
    }
}

/// `RCODE AA|- RECORD...`, one line.
fn describe(reply: &[u8], query: &[u8]) -> String {
    let Ok(m) = Message::from_vec(reply) else {
        return "unparsable".to_string();
    };
    if reply[..2] != query[..2] || m.metadata.message_type != MessageType::Response {
        return "mismatched".to_string();
    }
    let records: Vec<String> = m
        .answers
        .iter()
        .map(|r| match &r.data {
            RData::CNAME(target) => format!("CNAME:{}", target.0),
            other => other.to_string(),
        })
        .collect();
    format!(
        "{:?} {} {}",
        m.metadata.response_code,
        if m.metadata.authoritative { "AA" } else { "-" },
        records.join(" ")
    )
}

/// The [`Answer`] in a helper's output line.
pub fn parse_answer(line: &str) -> Option<Answer> {
    let mut words = line.split_whitespace();
    let rcode = match words.next()? {
        "NoError" => ResponseCode::NoError,
        "NXDomain" => ResponseCode::NXDomain,
        "ServFail" => ResponseCode::ServFail,
        "FormErr" => ResponseCode::FormErr,
        "Refused" => ResponseCode::Refused,
        _ => return None,
    };
    let authoritative = words.next()? == "AA";
    Some(Answer {
        rcode,
        authoritative,
        records: words.map(String::from).collect(),
    })
}
