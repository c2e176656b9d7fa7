//! Consistent hashing as Envoy does it: the request's hash key (header, cookie, source IP,
//! query parameter) hashed with xxHash64, looked up in a ring-hash (Ketama) or Maglev table
//! built once per cluster from the endpoints' addresses. The same hashes and table
//! construction as Envoy's mean every proxy with the same endpoints makes the same choice.

use std::fmt;
use std::time::Duration;

use serde::{Serialize, Serializer};
use xxhash_rust::xxh64::xxh64;

use super::PickRequest;

/// Envoy's limits: rings of at least 1024 and at most 8M entries; Maglev tables of 65537.
pub const DEFAULT_MIN_RING_SIZE: u64 = 1024;
pub const MAX_RING_SIZE: u64 = 8 * 1024 * 1024;
pub const DEFAULT_MAGLEV_TABLE_SIZE: u64 = 65537;
/// Istio refuses larger Maglev tables (the value must be a prime below 5000011).
const MAX_MAGLEV_TABLE_SIZE: u64 = 5_000_011;

/// What a request is hashed on (DestinationRule `consistentHash`).
#[derive(Debug, Clone, Serialize)]
pub enum HashKey {
    /// `httpHeaderName` (lower case): the header's first value.
    Header(String),
    /// `httpCookie`.
    Cookie(CookieSpec),
    /// `useSourceIp`: the downstream peer's IP.
    SourceIp,
    /// `httpQueryParameterName`: the parameter's first value, as written.
    QueryParameter(String),
}

/// `httpCookie`: the cookie to hash on, and how to generate it when a request has none.
#[derive(Debug, Clone, Serialize)]
pub struct CookieSpec {
    pub name: String,
    pub path: String,
    /// With a TTL the proxy generates the cookie when absent; `0s` makes it a session
    /// cookie. Without one, cookie-less requests go to a random endpoint.
    pub ttl: Option<Duration>,
    /// Extra attributes of the generated cookie, `(name, value)`; an empty value is written
    /// as the bare name.
    pub attributes: Vec<(String, String)>,
}

/// A request's hash, and the cookie to set on its response when one was generated.
pub struct Outcome {
    pub hash: Option<u64>,
    pub set_cookie: Option<String>,
}

impl HashKey {
    pub fn evaluate(&self, req: &PickRequest<'_>) -> Outcome {
        let hash_of = |bytes: &[u8]| Some(xxh64(bytes, 0));
        let mut set_cookie = None;
        let hash = match self {
            HashKey::Header(name) => req
                .headers
                .get(name.as_str())
                .and_then(|v| hash_of(v.as_bytes())),
            HashKey::SourceIp => hash_of(req.peer.ip().to_string().as_bytes()),
            HashKey::QueryParameter(name) => {
                query_value(req.path, name).and_then(|v| hash_of(v.as_bytes()))
            }
            HashKey::Cookie(spec) => match cookie_value(req.headers, &spec.name) {
                Some(value) => hash_of(value.as_bytes()),
                None => spec.ttl.and_then(|ttl| {
                    let value = generated_cookie(req);
                    set_cookie = Some(spec.set_cookie(&value, ttl));
                    hash_of(value.as_bytes())
                }),
            },
        };
        Outcome { hash, set_cookie }
    }
}

impl CookieSpec {
    /// Envoy's `Set-Cookie`: `name="value"; Max-Age=N; Path=p; attributes; HttpOnly`.
    fn set_cookie(&self, value: &str, ttl: Duration) -> String {
        let mut out = format!("{}=\"{value}\"", self.name);
        if ttl.as_secs() != 0 {
            out.push_str(&format!("; Max-Age={}", ttl.as_secs()));
        }
        if !self.path.is_empty() {
            out.push_str(&format!("; Path={}", self.path));
        }
        for (name, value) in &self.attributes {
            if value.is_empty() {
                out.push_str(&format!("; {name}"));
            } else {
                out.push_str(&format!("; {name}={value}"));
            }
        }
        out.push_str("; HttpOnly");
        out
    }
}

/// Envoy's generated cookie: the hex xxHash64 of the connection's two addresses, the same
/// for every request of one connection so that racing requests get the same cookie.
fn generated_cookie(req: &PickRequest<'_>) -> String {
    let conn = format!("{}{}", req.peer, req.local);
    format!("{:016x}", xxh64(conn.as_bytes(), 0))
}

/// The value of cookie `name` in the request's `Cookie` headers, without surrounding
/// quotes; `None` when absent or empty.
fn cookie_value<'h>(headers: &'h http::HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim_start().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| {
            v.strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v)
        })
        .filter(|v| !v.is_empty())
}

/// The first value of query parameter `name`, undecoded (as Envoy hashes it).
fn query_value<'p>(path: &'p str, name: &str) -> Option<&'p str> {
    let query = path.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}

/// A table that maps a 64-bit hash to an endpoint index.
pub enum HashTable {
    /// Ketama ring: `(hash, endpoint)` sorted by hash; a key goes to the first entry at or
    /// after its hash, wrapping around.
    Ring(Vec<(u64, u32)>),
    /// Maglev lookup table of prime size; a key goes to `table[hash % size]`.
    Maglev(Vec<u32>),
}

impl HashTable {
    /// Envoy's ring: each endpoint gets `ceil(min_size / n)` points hashed from
    /// `"<address>_<i>"`, so every endpoint has the same share of the ring.
    pub fn ring(addresses: &[&str], min_size: u64) -> HashTable {
        let n = addresses.len() as u64;
        if n == 0 {
            return HashTable::Ring(Vec::new());
        }
        let min_size = min_size.clamp(1, MAX_RING_SIZE);
        let per_host = min_size.div_ceil(n).min(MAX_RING_SIZE / n).max(1);
        let mut ring = Vec::with_capacity(usize::try_from(per_host * n).unwrap_or(0));
        for (index, address) in (0u32..).zip(addresses) {
            for i in 0..per_host {
                let key = format!("{address}_{i}");
                ring.push((xxh64(key.as_bytes(), 0), index));
            }
        }
        ring.sort_unstable();
        HashTable::Ring(ring)
    }

    /// Envoy's Maglev table (the paper's listing 1): each endpoint walks its own
    /// permutation of the slots (offset and skip from its address's hash) and takes the
    /// next free slot in turn, until the table is full. Endpoints are taken in address
    /// order so that every proxy builds the same table. A size that is not a prime (Istio
    /// refuses those) falls back to the default, since the walk needs a prime to finish.
    pub fn maglev(addresses: &[&str], table_size: u64) -> HashTable {
        let size = if (2..MAX_MAGLEV_TABLE_SIZE).contains(&table_size) && is_prime(table_size) {
            table_size
        } else {
            DEFAULT_MAGLEV_TABLE_SIZE
        };
        let mut hosts: Vec<(u32, &str)> = (0u32..).zip(addresses.iter().copied()).collect();
        if hosts.is_empty() {
            return HashTable::Maglev(Vec::new());
        }
        hosts.sort_by(|a, b| a.1.cmp(b.1));
        // (endpoint, offset, skip, next)
        let mut walkers: Vec<(u32, u64, u64, u64)> = hosts
            .iter()
            .map(|(index, address)| {
                let offset = xxh64(address.as_bytes(), 0) % size;
                let skip = xxh64(address.as_bytes(), 1) % (size - 1) + 1;
                (*index, offset, skip, 0)
            })
            .collect();
        let len = usize::try_from(size).unwrap_or(0);
        let mut table = vec![u32::MAX; len];
        let mut filled = 0;
        while filled < len {
            for (index, offset, skip, next) in walkers.iter_mut() {
                if filled == len {
                    break;
                }
                let mut slot = (*offset + *skip * *next) % size;
                while table[slot as usize] != u32::MAX {
                    *next += 1;
                    slot = (*offset + *skip * *next) % size;
                }
                table[slot as usize] = *index;
                *next += 1;
                filled += 1;
            }
        }
        HashTable::Maglev(table)
    }

    /// The endpoint index for `hash`; `None` for an empty table.
    pub fn lookup(&self, hash: u64) -> Option<usize> {
        let index = match self {
            HashTable::Ring(ring) => {
                let at = ring.partition_point(|(h, _)| *h < hash);
                ring.get(at).or(ring.first())?.1
            }
            HashTable::Maglev(table) => {
                let size = table.len() as u64;
                *table.get(usize::try_from(hash % size.max(1)).ok()?)?
            }
        };
        usize::try_from(index).ok()
    }

    /// The first endpoint `usable` accepts, walking the table from `hash`'s place. On a
    /// ring that is what a ring built without the unusable endpoints gives (up to the
    /// ring's resizing); on a Maglev table it is the next slot's owner, an approximation
    /// of the rebuilt table's choice. `None` when no entry is usable.
    pub fn lookup_where(&self, hash: u64, usable: impl Fn(usize) -> bool) -> Option<usize> {
        let accept = |index: &u32| usize::try_from(*index).ok().filter(|i| usable(*i));
        match self {
            HashTable::Ring(ring) => {
                let at = ring.partition_point(|(h, _)| *h < hash);
                ring[at..]
                    .iter()
                    .chain(&ring[..at])
                    .find_map(|(_, index)| accept(index))
            }
            HashTable::Maglev(table) => {
                let size = table.len() as u64;
                let at = usize::try_from(hash % size.max(1)).ok()?.min(table.len());
                table[at..].iter().chain(&table[..at]).find_map(accept)
            }
        }
    }

    /// Entries in the table.
    pub fn len(&self) -> usize {
        match self {
            HashTable::Ring(r) => r.len(),
            HashTable::Maglev(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for HashTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HashTable::Ring(r) => write!(f, "Ring({} entries)", r.len()),
            HashTable::Maglev(t) => write!(f, "Maglev({} entries)", t.len()),
        }
    }
}

/// The dump shows the algorithm and the table's size, not its entries.
impl Serialize for HashTable {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("HashTable", 2)?;
        let kind = match self {
            HashTable::Ring(_) => "RING_HASH",
            HashTable::Maglev(_) => "MAGLEV",
        };
        st.serialize_field("algorithm", kind)?;
        st.serialize_field("entries", &self.len())?;
        st.end()
    }
}

fn is_prime(x: u64) -> bool {
    x >= 2
        && (2..)
            .take_while(|d| d * d <= x)
            .all(|d| !x.is_multiple_of(d))
}
