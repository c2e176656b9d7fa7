//! Reading the server name (SNI) out of a TLS ClientHello, the way Envoy's TLS inspector
//! does before it picks a filter chain: bounded (at most `MAX_HELLO` bytes are looked
//! at), every length checked against what is there, nothing decrypted or consumed.

/// The most bytes of handshake a ClientHello may take (Envoy's TLS inspector's limit).
pub const MAX_HELLO: usize = 64 * 1024;

/// A TLS record's largest payload (2^14) plus the expansion TLS 1.2 allows.
const MAX_RECORD: usize = 16_384 + 2_048;

const CONTENT_HANDSHAKE: u8 = 22;
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
const EXTENSION_SERVER_NAME: u16 = 0;
const NAME_TYPE_HOST_NAME: u8 = 0;

/// What the bytes seen so far say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hello {
    /// A ClientHello may be starting: read more.
    Incomplete,
    /// A whole ClientHello, and its server name (lower-case) if it sent one.
    Complete(Option<String>),
    /// Not a ClientHello (another protocol, a malformed or oversized hello).
    NotTls,
}

/// Looks for a ClientHello at the start of `buf`, which may hold more than one record
/// (a hello can be split across records) and anything after it.
pub fn parse(buf: &[u8]) -> Hello {
    let mut handshake = Vec::new();
    let mut rest = buf;
    loop {
        let Some(header) = rest.get(..5) else {
            return if rest.first().is_some_and(|b| *b != CONTENT_HANDSHAKE) {
                Hello::NotTls
            } else {
                Hello::Incomplete
            };
        };
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if header[0] != CONTENT_HANDSHAKE || header[1] != 3 || len == 0 || len > MAX_RECORD {
            return Hello::NotTls;
        }
        let Some(fragment) = rest.get(5..5 + len) else {
            // The first record alone may already tell that this is no ClientHello.
            return match rest.get(5) {
                Some(t) if handshake.is_empty() && *t != HANDSHAKE_CLIENT_HELLO => Hello::NotTls,
                _ => Hello::Incomplete,
            };
        };
        handshake.extend_from_slice(fragment);
        rest = &rest[5 + len..];
        let mut r = Reader(&handshake);
        let (Some(kind), Some(body_len)) = (r.u8(), r.u24()) else {
            continue;
        };
        if kind != HANDSHAKE_CLIENT_HELLO || body_len > MAX_HELLO {
            return Hello::NotTls;
        }
        if let Some(body) = r.take(body_len) {
            return match server_name(body) {
                Some(sni) => Hello::Complete(sni),
                None => Hello::NotTls,
            };
        }
        if handshake.len() > MAX_HELLO {
            return Hello::NotTls;
        }
    }
}

/// The server name of a ClientHello's body: `Some(None)` when it has none, `None` when
/// the body is malformed.
fn server_name(body: &[u8]) -> Option<Option<String>> {
    let mut r = Reader(body);
    r.take(2 + 32)?; // legacy_version, random
    r.vec8()?; // legacy_session_id
    r.vec16()?; // cipher_suites
    r.vec8()?; // legacy_compression_methods
    if r.0.is_empty() {
        return Some(None); // no extensions at all (SSLv3-style hello)
    }
    let mut extensions = Reader(r.vec16()?);
    while !extensions.0.is_empty() {
        let kind = extensions.u16()?;
        let data = extensions.vec16()?;
        if kind == EXTENSION_SERVER_NAME {
            return host_name(data).map(Some);
        }
    }
    Some(None)
}

/// The `host_name` entry of a `server_name` extension.
fn host_name(data: &[u8]) -> Option<String> {
    let mut list = Reader(Reader(data).vec16()?);
    while !list.0.is_empty() {
        let name_type = list.u8()?;
        let name = list.vec16()?;
        if name_type == NAME_TYPE_HOST_NAME {
            let name = std::str::from_utf8(name).ok()?;
            // A DNS name: letters, digits, '-', '.', '_' (never '/', spaces or controls).
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
            {
                return None;
            }
            return Some(name.to_ascii_lowercase());
        }
    }
    None
}

/// A cursor over bytes whose every read is checked against what is left.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = self.0.split_at_checked(n)?;
        self.0 = tail;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    fn u24(&mut self) -> Option<usize> {
        self.take(3)
            .map(|b| (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]))
    }

    /// A vector with a one-byte length.
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }

    /// A vector with a two-byte length.
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
}

#[cfg(test)]
mod tests;
