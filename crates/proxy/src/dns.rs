//! The sidecar's DNS proxy (Istio's DNS proxying, on 127.0.0.1:15053, where iptables sends
//! the workload's DNS queries): A questions for mesh names are answered from the services
//! the proxy knows (`names`): Kubernetes-style names with their search-path forms and
//! ServiceEntry hosts, with their VIPs. A known name's AAAA question gets an empty
//! answer, as Istio gives for IPv4-only services. Every other question goes, as it came,
//! to the upstream nameservers (`upstream`); SERVFAIL when none answers in time. A packet
//! that does not parse gets FORMERR, never a panic.

pub mod names;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::CNAME;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::http::Shared;
pub use names::NameTable;
pub use upstream::Upstreams;

/// Istio's TTL for the answers its agent gives.
const TTL: u32 = 30;
/// Questions being answered at once, per transport; past it UDP questions are dropped
/// (the client asks again) and TCP connections wait.
const IN_FLIGHT: usize = 1024;
/// How long a TCP client may take to send its next question.
const TCP_IDLE: Duration = Duration::from_secs(5);

/// Where the DNS proxy listens and forwards to.
#[derive(Debug, Clone)]
pub struct DnsOptions {
    pub listen: SocketAddr,
    pub upstreams: Upstreams,
}

/// What to do with a question.
#[derive(Debug)]
pub enum Decision {
    /// This answer.
    Answer(Vec<u8>),
    /// Ask upstream; the parsed question serves the SERVFAIL if nobody answers.
    Forward(Box<Message>),
    /// Not a question (a response, or too short to carry an id): say nothing.
    Drop,
}

/// Binds UDP and TCP on `opts.listen` and serves them until the tasks are aborted.
pub async fn start(opts: &DnsOptions, shared: Arc<Shared>) -> std::io::Result<Vec<JoinHandle<()>>> {
    let bind_error = |e: std::io::Error, what: &str| {
        std::io::Error::new(
            e.kind(),
            format!("cannot serve DNS ({what}) on {}: {e}", opts.listen),
        )
    };
    let udp = UdpSocket::bind(opts.listen)
        .await
        .map_err(|e| bind_error(e, "UDP"))?;
    let tcp = TcpListener::bind(opts.listen)
        .await
        .map_err(|e| bind_error(e, "TCP"))?;
    tracing::info!(listen = %opts.listen, upstreams = ?opts.upstreams.servers, "DNS proxy listening");
    let upstreams = Arc::new(opts.upstreams.clone());
    Ok(vec![
        tokio::spawn(serve_udp(Arc::new(udp), shared.clone(), upstreams.clone())),
        tokio::spawn(serve_tcp(tcp, shared, upstreams)),
    ])
}

async fn serve_udp(socket: Arc<UdpSocket>, shared: Arc<Shared>, upstreams: Arc<Upstreams>) {
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut buf = vec![0u8; 65535];
    loop {
        let (n, peer) = match socket.recv_from(&mut buf).await {
            Ok(got) => got,
            Err(e) => {
                tracing::debug!(error = %e, "DNS receive failed");
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "too many DNS questions in flight: dropped");
            continue;
        };
        let packet = buf[..n].to_vec();
        let (socket, shared, upstreams) = (socket.clone(), shared.clone(), upstreams.clone());
        tokio::spawn(async move {
            let reply = match decide(&packet, &shared, true) {
                Decision::Answer(bytes) => Some(bytes),
                Decision::Forward(q) => Some(match upstreams.forward_udp(&packet).await {
                    Some(bytes) => bytes,
                    None => servfail(&q),
                }),
                Decision::Drop => None,
            };
            if let Some(bytes) = reply
                && let Err(e) = socket.send_to(&bytes, peer).await
            {
                tracing::debug!(%peer, error = %e, "DNS answer not sent");
            }
            drop(permit);
        });
    }
}

async fn serve_tcp(listener: TcpListener, shared: Arc<Shared>, upstreams: Arc<Upstreams>) {
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::debug!(error = %e, "DNS accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let (shared, upstreams) = (shared.clone(), upstreams.clone());
        tokio::spawn(async move {
            if let Err(e) = tcp_connection(stream, &shared, &upstreams).await {
                tracing::debug!(%peer, error = %e, "DNS over TCP ended");
            }
            drop(permit);
        });
    }
}

/// Answers a TCP client's questions, one length-prefixed message after another, until it
/// closes or stays silent for `TCP_IDLE`.
async fn tcp_connection(
    mut stream: TcpStream,
    shared: &Shared,
    upstreams: &Upstreams,
) -> std::io::Result<()> {
    loop {
        let packet = match tokio::time::timeout(TCP_IDLE, upstream::read_frame(&mut stream)).await {
            Ok(Ok(packet)) => packet,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Ok(()),
        };
        let reply = match decide(&packet, shared, false) {
            Decision::Answer(bytes) => bytes,
            Decision::Forward(q) => match upstreams.forward_tcp(&packet).await {
                Some(bytes) => bytes,
                None => servfail(&q),
            },
            Decision::Drop => return Ok(()),
        };
        let len = u16::try_from(reply.len()).unwrap_or(u16::MAX);
        let mut framed = Vec::with_capacity(reply.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(&reply[..usize::from(len)]);
        stream.write_all(&framed).await?;
    }
}

/// What to do with one packet, with the names of the tables current now.
fn decide(packet: &[u8], shared: &Shared, udp: bool) -> Decision {
    let tables = shared.tables.load();
    let empty = NameTable::default();
    let names = tables.sidecar.as_ref().map_or(&empty, |s| &s.names);
    respond(packet, names, udp)
}

/// Answers `packet` from `names`, or says to forward it. `udp`: the answer must fit the
/// client's UDP payload size (512 bytes, or what its EDNS record says), else it is sent
/// truncated for the client to ask again over TCP.
pub fn respond(packet: &[u8], names: &NameTable, udp: bool) -> Decision {
    let request = match Message::from_vec(packet) {
        Ok(m) => m,
        Err(e) => {
            tracing::debug!(error = %e, "malformed DNS packet");
            return format_error(packet);
        }
    };
    if request.metadata.message_type != MessageType::Query {
        return Decision::Drop;
    }
    let [question] = request.queries.as_slice() else {
        // One question per message, as every resolver sends (RFC 9619).
        return format_error(packet);
    };
    let qtype = question.query_type();
    if request.metadata.op_code != OpCode::Query
        || question.query_class() != DNSClass::IN
        || !matches!(qtype, RecordType::A | RecordType::AAAA)
    {
        return Decision::Forward(Box::new(request));
    }
    let mut name = question.name().to_lowercase().to_ascii();
    if !name.ends_with('.') {
        name.push('.');
    }
    let Some(found) = names.lookup(&name) else {
        return Decision::Forward(Box::new(request));
    };
    let response = authoritative_answer(&request, question.name(), qtype, &found);
    let limit = udp.then(|| usize::from(request.max_payload()));
    encode(&response, limit).map_or_else(|| format_error(packet), Decision::Answer)
}

/// The mesh's answer for `name`: the CNAME of a search-path form first, then the
/// addresses of the asked type (none, for AAAA of an IPv4-only service).
fn authoritative_answer(
    request: &Message,
    name: &Name,
    qtype: RecordType,
    found: &names::Found,
) -> Message {
    let mut response = reply_to(request, ResponseCode::NoError);
    response.metadata.authoritative = true;
    let mut owner = name.clone();
    if let Some(target) = &found.cname
        && let Ok(target) = Name::from_ascii(target)
    {
        let alias = RData::CNAME(CNAME(target.clone()));
        response.add_answer(Record::from_rdata(owner, TTL, alias));
        owner = target;
    }
    let ips: Vec<RData> = if qtype == RecordType::A {
        found
            .addresses
            .v4
            .iter()
            .map(|ip| RData::from(*ip))
            .collect()
    } else {
        found
            .addresses
            .v6
            .iter()
            .map(|ip| RData::from(*ip))
            .collect()
    };
    for ip in ips {
        response.add_answer(Record::from_rdata(owner.clone(), TTL, ip));
    }
    response
}

/// A response to `request` with its id, question and flags, and `code`.
fn reply_to(request: &Message, code: ResponseCode) -> Message {
    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.checking_disabled = request.metadata.checking_disabled;
    response.metadata.recursion_available = true;
    response.metadata.response_code = code;
    response.add_queries(request.queries.iter().cloned());
    if request.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(1232);
        response.set_edns(edns);
    }
    response
}

/// `message` encoded; with `limit`, truncated (TC set, records dropped) when longer.
fn encode(message: &Message, limit: Option<usize>) -> Option<Vec<u8>> {
    let bytes = message.to_vec().ok()?;
    match limit {
        Some(max) if bytes.len() > max => message.truncate().to_vec().ok(),
        _ => Some(bytes),
    }
}

/// SERVFAIL for a question no upstream answered.
pub fn servfail(request: &Message) -> Vec<u8> {
    let response = reply_to(request, ResponseCode::ServFail);
    response.to_vec().unwrap_or_default()
}

/// FORMERR with the packet's id when it has one to answer to; nothing otherwise (and
/// nothing for what looks like a response, which would only bounce).
fn format_error(packet: &[u8]) -> Decision {
    let (Some(id), Some(flags)) = (packet.get(..2), packet.get(2)) else {
        return Decision::Drop;
    };
    if flags & 0x80 != 0 {
        return Decision::Drop;
    }
    let id = u16::from_be_bytes([id[0], id[1]]);
    let mut response = Message::error_msg(id, OpCode::Query, ResponseCode::FormErr);
    response.metadata.recursion_available = true;
    response.to_vec().map_or(Decision::Drop, Decision::Answer)
}

#[cfg(test)]
mod tests;
