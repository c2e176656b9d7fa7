//! Forwarding the questions the mesh does not answer to the upstream nameservers (by
//! default those of /etc/resolv.conf), over the transport the client used, with one
//! deadline for all of them: the first answer that carries the question's id wins.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::Instant;

/// The standard DNS port, which resolv.conf's nameservers listen on.
pub const DNS_PORT: u16 = 53;

/// The nameservers to forward to.
#[derive(Debug, Clone)]
pub struct Upstreams {
    pub servers: Vec<SocketAddr>,
    /// For all of them together; past it the client gets SERVFAIL.
    pub timeout: Duration,
}

/// The nameservers of a resolv.conf text, in order (port 53). Scoped IPv6 addresses
/// (`fe80::1%eth0`) are skipped.
pub fn resolv_conf_nameservers(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver")).then(|| words.next())?
        })
        .filter_map(|addr| addr.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, DNS_PORT))
        .collect()
}

/// `10.0.0.1`, `10.0.0.1:5353`, `::1` or `[::1]:5353`.
pub fn parse_server(text: &str) -> Result<SocketAddr, String> {
    text.parse::<SocketAddr>()
        .or_else(|_| {
            text.parse::<IpAddr>()
                .map(|ip| SocketAddr::new(ip, DNS_PORT))
        })
        .map_err(|_| format!("{text:?} is not an address like 10.0.0.1 or 10.0.0.1:53"))
}

impl Upstreams {
    /// The upstream's answer to `query` over UDP, `None` when none answered in time.
    pub async fn forward_udp(&self, query: &[u8]) -> Option<Vec<u8>> {
        let deadline = Instant::now() + self.timeout;
        for (i, server) in self.servers.iter().enumerate() {
            let budget = share(deadline, self.servers.len() - i);
            match tokio::time::timeout(budget, udp_once(*server, query)).await {
                Ok(Ok(answer)) => return Some(answer),
                Ok(Err(e)) => tracing::debug!(%server, error = %e, "upstream DNS failed"),
                Err(_) => tracing::debug!(%server, "upstream DNS did not answer in time"),
            }
        }
        None
    }

    /// The same over TCP (the client asked over TCP, or a UDP answer was truncated).
    pub async fn forward_tcp(&self, query: &[u8]) -> Option<Vec<u8>> {
        let deadline = Instant::now() + self.timeout;
        for (i, server) in self.servers.iter().enumerate() {
            let budget = share(deadline, self.servers.len() - i);
            match tokio::time::timeout(budget, tcp_once(*server, query)).await {
                Ok(Ok(answer)) => return Some(answer),
                Ok(Err(e)) => tracing::debug!(%server, error = %e, "upstream DNS failed"),
                Err(_) => tracing::debug!(%server, "upstream DNS did not answer in time"),
            }
        }
        None
    }
}

/// An equal share of what is left until `deadline` for each of the `left` servers.
fn share(deadline: Instant, left: usize) -> Duration {
    let remaining = deadline.saturating_duration_since(Instant::now());
    remaining / u32::try_from(left.max(1)).unwrap_or(u32::MAX)
}

/// Whether `answer` answers `query`: a response with its id.
fn answers(query: &[u8], answer: &[u8]) -> bool {
    answer.len() >= 12 && query.len() >= 2 && answer[..2] == query[..2] && answer[2] & 0x80 != 0
}

async fn udp_once(server: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let any: IpAddr = match server {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    // A fresh socket (random port) per question: answers cannot be confused.
    let socket = UdpSocket::bind((any, 0)).await?;
    socket.connect(server).await?;
    socket.send(query).await?;
    let mut buf = vec![0u8; 65535];
    loop {
        let n = socket.recv(&mut buf).await?;
        if answers(query, &buf[..n]) {
            buf.truncate(n);
            return Ok(buf);
        }
        // Someone else's datagram, or a stale answer: keep waiting.
    }
}

async fn tcp_once(server: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(server).await?;
    let len = u16::try_from(query.len())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "query too long"))?;
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(query);
    stream.write_all(&framed).await?;
    loop {
        let answer = read_frame(&mut stream).await?;
        if answers(query, &answer) {
            return Ok(answer);
        }
    }
}

/// One length-prefixed DNS message of a TCP stream.
pub async fn read_frame(stream: &mut (impl AsyncReadExt + Unpin)) -> std::io::Result<Vec<u8>> {
    let len = stream.read_u16().await?;
    let mut buf = vec![0u8; usize::from(len)];
    stream.read_exact(&mut buf).await?;
    Ok(buf)
}
