//! Protocol detection on ports that declare no protocol, the way Istio's sidecars do it:
//! read the first bytes for a bounded time and look for an HTTP/1.x method, the HTTP/2
//! connection preface or a TLS record; anything else is opaque TCP. A client that sends
//! nothing before the timeout is TCP too, so server-first protocols (MySQL, SMTP) are
//! not stalled. The bytes read are replayed to whoever handles the connection next.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// What the first bytes of a connection say it speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Detected {
    Http1,
    Http2,
    /// A TLS ClientHello (routed by SNI by the TCP/TLS routes).
    Tls,
    /// Anything else, including a client that stayed silent.
    Tcp,
}

impl Detected {
    pub fn is_http(self) -> bool {
        matches!(self, Detected::Http1 | Detected::Http2)
    }
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Request methods Envoy's HTTP inspector recognises, each with the space after it.
const METHODS: &[&[u8]] = &[
    b"GET ",
    b"HEAD ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"CONNECT ",
    b"OPTIONS ",
    b"TRACE ",
    b"PATCH ",
    b"PROPFIND ",
    b"PROPPATCH ",
    b"MKCOL ",
    b"COPY ",
    b"MOVE ",
    b"LOCK ",
    b"UNLOCK ",
];

/// Enough to decide: the longest pattern above is the HTTP/2 preface.
const MAX_SNIFF: usize = 24;

/// Classifies the bytes seen so far; `None` while they could still become more than one
/// answer (more bytes are needed).
pub fn classify(seen: &[u8]) -> Option<Detected> {
    let could_be = |pattern: &[u8]| {
        let n = seen.len().min(pattern.len());
        seen[..n] == pattern[..n]
    };
    if seen.is_empty() {
        return None;
    }
    if seen.starts_with(H2_PREFACE) {
        return Some(Detected::Http2);
    }
    if METHODS.iter().any(|m| seen.starts_with(m)) {
        return Some(Detected::Http1);
    }
    let pending = could_be(H2_PREFACE) || METHODS.iter().any(|m| could_be(m));
    if pending && seen.len() < MAX_SNIFF {
        return None;
    }
    // A TLS handshake record: content type 22, major version 3.
    match seen {
        [0x16] => None,
        [0x16, 0x03, ..] => Some(Detected::Tls),
        _ => Some(Detected::Tcp),
    }
}

/// Reads from `stream` until the first bytes decide its protocol, the stream ends, or
/// `timeout` passes (then it is TCP). Returns the verdict and the bytes read, which the
/// caller must replay ([`Prefixed`]).
pub async fn sniff<S: AsyncRead + Unpin>(
    stream: &mut S,
    timeout: Duration,
) -> io::Result<(Detected, BytesMut)> {
    let deadline = Instant::now() + timeout;
    let mut seen = BytesMut::with_capacity(MAX_SNIFF);
    loop {
        if let Some(found) = classify(&seen) {
            return Ok((found, seen));
        }
        let mut chunk = [0u8; MAX_SNIFF];
        let want = MAX_SNIFF.saturating_sub(seen.len()).max(1);
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk[..want])).await {
            Err(_elapsed) => return Ok((Detected::Tcp, seen)),
            Ok(Ok(0)) => return Ok((Detected::Tcp, seen)),
            Ok(Ok(n)) => seen.extend_from_slice(&chunk[..n]),
            Ok(Err(e)) => return Err(e),
        }
    }
}

/// A stream that first yields bytes already read from it (the sniffed prefix).
pub struct Prefixed<S> {
    prefix: BytesMut,
    inner: S,
}

impl<S> Prefixed<S> {
    pub fn new(prefix: BytesMut, inner: S) -> Self {
        Self { prefix, inner }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The bytes not yet yielded and the stream, for a reader that wants more than the
    /// sniffed prefix before it decides (the TCP proxy reading a whole ClientHello).
    pub fn into_parts(self) -> (BytesMut, S) {
        (self.prefix, self.inner)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_and_the_h2_preface_are_http() {
        assert_eq!(classify(b"GET / HTTP/1.1\r\n"), Some(Detected::Http1));
        assert_eq!(classify(b"DELETE /x"), Some(Detected::Http1));
        assert_eq!(classify(H2_PREFACE), Some(Detected::Http2));
    }

    #[test]
    fn prefixes_wait_for_more_bytes() {
        assert_eq!(classify(b""), None);
        assert_eq!(classify(b"GE"), None);
        assert_eq!(classify(b"P"), None, "PUT, POST, PATCH or the preface");
        assert_eq!(classify(b"PRI * HTTP/2.0\r\n"), None);
        assert_eq!(classify(&[0x16]), None);
    }

    #[test]
    fn everything_else_is_tcp_or_tls() {
        assert_eq!(classify(b"\x00\x00\x00\x01"), Some(Detected::Tcp));
        assert_eq!(
            classify(b"get / HTTP/1.1"),
            Some(Detected::Tcp),
            "methods are case-sensitive"
        );
        assert_eq!(classify(b"GETX"), Some(Detected::Tcp));
        assert_eq!(classify(b"PRI * HTTP/1.1\r\n"), Some(Detected::Tcp));
        assert_eq!(classify(&[0x16, 0x03, 0x01, 0x02]), Some(Detected::Tls));
    }

    #[tokio::test]
    async fn a_silent_client_is_tcp_after_the_timeout() {
        let (mut client, _server) = tokio::io::duplex(64);
        let start = std::time::Instant::now();
        let (found, seen) = sniff(&mut client, Duration::from_millis(50)).await.unwrap();
        assert_eq!((found, seen.len()), (Detected::Tcp, 0));
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn sniffed_bytes_are_replayed() {
        use tokio::io::AsyncWriteExt;
        let (mut client, mut server) = tokio::io::duplex(64);
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let (found, seen) = sniff(&mut server, Duration::from_secs(5)).await.unwrap();
        assert_eq!(found, Detected::Http1);
        drop(client);
        let mut all = String::new();
        Prefixed::new(seen, server)
            .read_to_string(&mut all)
            .await
            .unwrap();
        assert_eq!(all, "GET / HTTP/1.1\r\n\r\n");
    }
}
