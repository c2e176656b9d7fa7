//! Traffic capture: the capture listeners and the original destination of a connection
//! that iptables redirected to them (`SO_ORIGINAL_DST`, read through socket2's safe API).
//! The proxy's own connections are kept out of capture by running it as UID 1337, which
//! Istio's rules (`-m owner --uid-owner 1337 -j RETURN`) exempt.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::net::{TcpListener, TcpStream};

/// Istio's outbound capture port (`iptables ... REDIRECT --to-ports 15001`).
pub const OUTBOUND_PORT: u16 = 15001;
/// Istio's inbound capture port.
pub const INBOUND_PORT: u16 = 15006;
/// The UID Istio's iptables rules exempt from capture.
pub const PROXY_UID: u32 = 1337;

/// Binds a capture listener. `SO_REUSEADDR` lets a restarted proxy take its port back
/// while the old one's connections linger in TIME_WAIT.
pub fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

/// Where the client meant to connect before iptables redirected it here; `None` when
/// the connection was not redirected (someone dialled the capture port itself: serving
/// that would make the proxy connect to itself).
pub fn original_dst(stream: &TcpStream) -> io::Result<Option<SocketAddr>> {
    let sock = SockRef::from(stream);
    let local = stream.local_addr()?;
    let original = match local {
        SocketAddr::V4(_) => sock.original_dst_v4()?,
        SocketAddr::V6(_) => sock.original_dst_v6()?,
    };
    let original = original
        .as_socket()
        .ok_or_else(|| io::Error::other("the original destination is not an IP address"))?;
    Ok((original != local).then_some(original))
}
