//! Compiled HTTP route matching: a request's host picks a virtual host, its routes are
//! tried in order, the first whose match (any of its match blocks, every field of one
//! block) accepts the request wins. Regexes are compiled once, when the table is built.

mod cors;

use std::collections::BTreeMap;

pub use cors::{Cors, Verdict as CorsVerdict};
use http::request::Parts;
use regex::Regex;
use serde::Serialize;
use weft_api::common::StringMatch;

/// A compiled `{exact|prefix|regex}` string match. Envoy matches regexes against the
/// whole value, so they are anchored.
#[derive(Debug, Clone, Serialize)]
pub enum StrMatcher {
    Exact(String),
    Prefix(String),
    Regex(#[serde(serialize_with = "regex_text")] Regex),
    /// An empty match: the value only has to be present.
    Present,
}

fn regex_text<S: serde::Serializer>(re: &Regex, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(re.as_str())
}

impl StrMatcher {
    /// Compiles a match; `ignore_case` lower-cases exact and prefix values (Istio's
    /// `ignoreUriCase`). Regexes stay case-sensitive: Envoy ignores `case_sensitive` for
    /// `safe_regex` paths. A regex of `*` (not RE2) means "present", as Istio translates it.
    pub fn compile(m: &StringMatch, ignore_case: bool) -> Result<StrMatcher, String> {
        let fold = |s: &str| {
            if ignore_case {
                s.to_ascii_lowercase()
            } else {
                s.to_string()
            }
        };
        Ok(match (&m.exact, &m.prefix, &m.regex) {
            (Some(e), _, _) => StrMatcher::Exact(fold(e)),
            (_, Some(p), _) => StrMatcher::Prefix(fold(p)),
            (_, _, Some(r)) if r == "*" => StrMatcher::Present,
            (_, _, Some(r)) => {
                let re =
                    Regex::new(&format!("^(?:{r})$")).map_err(|e| format!("regex {r:?}: {e}"))?;
                StrMatcher::Regex(re)
            }
            _ => StrMatcher::Present,
        })
    }

    pub fn matches(&self, value: &str, ignore_case: bool) -> bool {
        match self {
            StrMatcher::Exact(e) if ignore_case => value.eq_ignore_ascii_case(e),
            StrMatcher::Exact(e) => value == e,
            StrMatcher::Prefix(p) if ignore_case => value
                .get(..p.len())
                .is_some_and(|v| v.eq_ignore_ascii_case(p)),
            StrMatcher::Prefix(p) => value.starts_with(p.as_str()),
            StrMatcher::Regex(re) => re.is_match(value),
            StrMatcher::Present => true,
        }
    }
}

/// One compiled match block: every field present must accept the request.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RouteMatch {
    pub uri: Option<StrMatcher>,
    pub ignore_uri_case: bool,
    pub scheme: Option<StrMatcher>,
    pub method: Option<StrMatcher>,
    pub authority: Option<StrMatcher>,
    pub headers: Vec<(String, StrMatcher)>,
    pub without_headers: Vec<(String, StrMatcher)>,
    pub query_params: Vec<(String, StrMatcher)>,
    /// The listener port the request must arrive on.
    pub port: Option<u16>,
}

/// What the matcher needs to know of a request.
pub struct RequestView<'a> {
    pub parts: &'a Parts,
    pub path: &'a str,
    pub authority: &'a str,
    pub scheme: &'a str,
    pub listener_port: u16,
}

impl RouteMatch {
    pub fn matches(&self, req: &RequestView<'_>) -> bool {
        let path_only = req.path.split('?').next().unwrap_or("");
        let header = |name: &str| header_value(&req.parts.headers, name);
        self.uri
            .as_ref()
            .is_none_or(|m| m.matches(path_only, self.ignore_uri_case))
            && self
                .scheme
                .as_ref()
                .is_none_or(|m| m.matches(req.scheme, false))
            && self
                .method
                .as_ref()
                .is_none_or(|m| m.matches(req.parts.method.as_str(), false))
            && self
                .authority
                .as_ref()
                .is_none_or(|m| m.matches(req.authority, false))
            && self
                .headers
                .iter()
                .all(|(name, m)| header(name).is_some_and(|v| m.matches(&v, false)))
            && self
                .without_headers
                .iter()
                .all(|(name, m)| !without_header_hit(m, header(name)))
            && self
                .query_params
                .iter()
                .all(|(name, m)| query_param(req.path, name).is_some_and(|v| m.matches(v, false)))
            && self.port.is_none_or(|p| p == req.listener_port)
    }
}

/// A header's values as Envoy matches them: all of them joined with `,`; `None` when absent
/// or not text.
fn header_value(headers: &http::HeaderMap, name: &str) -> Option<String> {
    let mut values = headers.get_all(name).iter().peekable();
    values.peek()?;
    let texts: Option<Vec<&str>> = values.map(|v| v.to_str().ok()).collect();
    texts.map(|t| t.join(","))
}

/// Whether a `withoutHeaders` condition sees its header: Istio inverts the match and, but
/// for presence matches, treats a missing header as empty (`treat_missing_header_as_empty`),
/// so `exact: ""` also excludes requests without the header.
fn without_header_hit(m: &StrMatcher, value: Option<String>) -> bool {
    match (m, value) {
        (StrMatcher::Present, v) => v.is_some(),
        (m, v) => m.matches(v.as_deref().unwrap_or(""), false),
    }
}

/// The value of query parameter `name` in `path`, as Envoy's route matching reads it:
/// undecoded (its `parseQueryString`, not the decoding variant), the first occurrence; a
/// parameter without `=` has the empty value.
fn query_param<'p>(path: &'p str, name: &str) -> Option<&'p str> {
    let query = path.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}

/// Header edits: `set` replaces, `add` appends, `remove` deletes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HeaderOps {
    pub set: BTreeMap<String, String>,
    pub add: BTreeMap<String, String>,
    pub remove: Vec<String>,
}

impl HeaderOps {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }

    pub fn apply(&self, headers: &mut http::HeaderMap) {
        for name in &self.remove {
            headers.remove(name.as_str());
        }
        for (name, value) in &self.set {
            if let (Ok(n), Ok(v)) = (
                http::HeaderName::try_from(name.as_str()),
                http::HeaderValue::try_from(value.as_str()),
            ) {
                headers.insert(n, v);
            }
        }
        for (name, value) in &self.add {
            if let (Ok(n), Ok(v)) = (
                http::HeaderName::try_from(name.as_str()),
                http::HeaderValue::try_from(value.as_str()),
            ) {
                headers.append(n, v);
            }
        }
    }
}

/// Envoy's virtual-host domain lookup: an exact domain first, then the longest `*.suffix`
/// wildcard, then `*`. Ports in the request's host are ignored.
pub fn pick_virtual_host<'v, V>(
    hosts: &'v [V],
    domains: impl Fn(&V) -> &[String],
    authority: &str,
) -> Option<&'v V> {
    let host = strip_port(authority).to_ascii_lowercase();
    let mut best: Option<(usize, &V)> = None;
    for vh in hosts {
        for d in domains(vh) {
            let score = if *d == host {
                usize::MAX
            } else if d == "*" {
                1
            } else if let Some(suffix) = d.strip_prefix('*') {
                if host.ends_with(suffix) && host.len() > suffix.len() {
                    1 + suffix.len()
                } else {
                    0
                }
            } else {
                0
            };
            if score > 0 && best.is_none_or(|(s, _)| score > s) {
                best = Some((score, vh));
            }
        }
    }
    best.map(|(_, vh)| vh)
}

/// `reviews:9080` -> `reviews`; `[::1]:80` -> `[::1]`.
pub fn strip_port(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority
            .split_once(']')
            .map_or(authority, |(h, _)| &authority[..h.len() + 1]);
    }
    authority
        .rsplit_once(':')
        .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
        .map_or(authority, |(h, _)| h)
}

#[cfg(test)]
mod tests;
