//! The validation context every kind's rules write into, and the checks that many kinds
//! share (hosts, durations, ports, percentages, regexes, labels, names).
//!
//! DNS names come in two families (see `validate/hosts.rs`): Istio's ([`wildcard_host`],
//! [`fqdn_host`], [`partial_wildcard`], [`is_dns_label`]; either case) for what istiod
//! validates, such as config hosts and `exportTo` namespaces, and Kubernetes'
//! ([`is_k8s_label`], [`is_k8s_subdomain`]; lower case) for names the API server checks.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Deserializer};

use crate::diag::Diagnostic;
use crate::path::FieldPath;

mod hosts;

pub(crate) use hosts::is_go_integer;
pub use hosts::{
    DNS_LABEL_RULE, fqdn_host, gateway_bound_host, is_dns_label, is_k8s_label, is_k8s_subdomain,
    partial_wildcard, wildcard_host,
};

/// The rules of one kind: called on the typed object once it has decoded.
pub trait Validate {
    /// Reports every problem in `self`, which stands at `at` in its object.
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>);
}

/// Collects the problems found in one object, with what the rules need to know about it.
pub struct Validator<'a> {
    /// The object's namespace (`default` when the file gives none); empty when cluster-scoped.
    pub namespace: &'a str,
    pub name: &'a str,
    diagnostics: Vec<Diagnostic>,
}

impl<'a> Validator<'a> {
    pub fn new(namespace: &'a str, name: &'a str) -> Self {
        Self {
            namespace,
            name,
            diagnostics: Vec::new(),
        }
    }

    pub fn error(&mut self, at: FieldPath, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic::error(at, message));
    }

    pub fn warn(&mut self, at: FieldPath, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic::warning(at, message));
    }

    /// Records a ready-made diagnostic (one with a hint, say).
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    /// Records the error of a shared check, if it failed.
    pub fn check(&mut self, at: FieldPath, result: Result<(), String>) {
        if let Err(message) = result {
            self.error(at, message);
        }
    }

    /// Reports a required field that is missing or empty.
    pub fn required(&mut self, at: FieldPath, present: bool) {
        if !present {
            self.error(at, "required field is missing or empty");
        }
    }

    pub fn into_diagnostics(self) -> Vec<Diagnostic> {
        self.diagnostics
    }
}

/// A duration as Istio's YAML writes it: `1s`, `500ms`, `1.5s`, `1h30m`, `100us`
/// (Go's duration syntax, of which protobuf's `"1.5s"` is a subset).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(std::time::Duration);

impl Duration {
    pub fn get(self) -> std::time::Duration {
        self.0
    }

    pub fn from_std(d: std::time::Duration) -> Self {
        Self(d)
    }

    /// Parses Go's duration syntax: one or more `<decimal><unit>` with units ns, us, µs,
    /// ms, s, m, h; a bare `0` is zero. Negative durations are refused.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad =
            |why: &str| format!("invalid duration {text:?}: {why} (write e.g. 500ms, 10s, 1m30s)");
        let s = text.trim();
        if s == "0" {
            return Ok(Self::default());
        }
        if s.starts_with('-') {
            return Err(bad("must not be negative"));
        }
        let mut rest = s.strip_prefix('+').unwrap_or(s);
        if rest.is_empty() {
            return Err(bad("empty"));
        }
        let mut nanos: u128 = 0;
        while !rest.is_empty() {
            let num_len = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            let (num, tail) = rest.split_at(num_len);
            if num.is_empty() || num == "." {
                return Err(bad("expected a number"));
            }
            let unit_len = tail
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(tail.len());
            let (unit, tail) = tail.split_at(unit_len);
            let scale: u128 = match unit {
                "ns" => 1,
                "us" | "µs" | "μs" => 1_000,
                "ms" => 1_000_000,
                "s" => 1_000_000_000,
                "m" => 60_000_000_000,
                "h" => 3_600_000_000_000,
                "" => return Err(bad("missing unit")),
                other => return Err(bad(&format!("unknown unit {other:?}"))),
            };
            let (int, frac) = num.split_once('.').unwrap_or((num, ""));
            let int: u128 = if int.is_empty() {
                0
            } else {
                int.parse().map_err(|_| bad("number too large"))?
            };
            let mut part = int.checked_mul(scale).ok_or_else(|| bad("too large"))?;
            let mut div = 1u128;
            for d in frac.bytes().take(18) {
                div *= 10;
                part += u128::from(d - b'0') * scale / div;
            }
            nanos = nanos.checked_add(part).ok_or_else(|| bad("too large"))?;
            rest = tail;
        }
        let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| bad("too large"))?;
        Ok(Self(std::time::Duration::new(
            secs,
            (nanos % 1_000_000_000) as u32,
        )))
    }
}

impl fmt::Debug for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Duration::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Istio's rule for timeouts and intervals: at least 1ms, and no finer than 1ms.
pub fn duration_ms(d: Duration) -> Result<(), String> {
    let d = d.get();
    if d < std::time::Duration::from_millis(1) {
        return Err(format!("duration {d:?} must be at least 1ms"));
    }
    if !d.subsec_nanos().is_multiple_of(1_000_000) {
        return Err(format!(
            "duration {d:?}: only millisecond precision is supported"
        ));
    }
    Ok(())
}

/// A Kubernetes DNS-1123 label, with a message when it is not one: the rule the API server
/// applies to namespaces, container names and label-key prefixes (lower case, digits and
/// '-', at most 63). Hosts in Istio config follow Istio's laxer rules instead:
/// [`wildcard_host`], [`fqdn_host`].
pub fn dns1123_label(label: &str) -> Result<(), String> {
    if label.is_empty() {
        return Err("empty DNS label".into());
    }
    if label.len() > 63 {
        return Err(format!("DNS label {label:?} is longer than 63 characters"));
    }
    if is_k8s_label(label) {
        Ok(())
    } else {
        Err(format!(
            "{label:?} is not a valid DNS label (lower-case letters, digits and '-', starting and ending with a letter or digit)"
        ))
    }
}

/// A header name as Istio's `ValidateHTTPHeaderName` takes it: letters, digits, '-' and
/// '_' (no pseudo-headers, no other token characters).
pub fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A port number, 1–65535.
pub fn port(number: u32) -> Result<(), String> {
    if (1..=65535).contains(&number) {
        Ok(())
    } else {
        Err(format!("port number {number} must be in 1-65535"))
    }
}

/// A percentage, 0–100.
pub fn percent(value: f64) -> Result<(), String> {
    if (0.0..=100.0).contains(&value) {
        Ok(())
    } else {
        Err(format!("percentage {value} must be between 0 and 100"))
    }
}

/// A regular expression in RE2 syntax, as Envoy evaluates them.
pub fn regex(pattern: &str) -> Result<(), String> {
    if pattern.is_empty() {
        return Err("regex must not be empty".into());
    }
    regex::Regex::new(pattern)
        .map(|_| ())
        .map_err(|e| format!("invalid regex {pattern:?}: {}", one_line(&e.to_string())))
}

fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// An IP address (`10.0.0.1`, `::1`).
pub fn ip_address(text: &str) -> Result<(), String> {
    text.parse::<IpAddr>()
        .map(|_| ())
        .map_err(|_| format!("{text:?} is not a valid IP address"))
}

/// An IP address or a CIDR block (`10.0.0.1`, `10.0.0.0/8`, `2001:db8::/32`); a text with a
/// '/' is judged, and reported on, as a CIDR block.
pub fn ip_or_cidr(text: &str) -> Result<(), String> {
    if !text.contains('/') {
        return ip_address(text)
            .map_err(|_| format!("{text:?} is not an IP address or CIDR block"));
    }
    text.parse::<ipnet::IpNet>()
        .map(|_| ())
        .map_err(|_| format!("{text:?} is not a valid CIDR block"))
}

/// Kubernetes label keys and values (`app`, `app.kubernetes.io/name: bookinfo`).
pub fn labels(at: &FieldPath, labels: &BTreeMap<String, String>, v: &mut Validator<'_>) {
    for (key, value) in labels {
        v.check(at.key(key), label_key(key));
        v.check(at.key(key), label_value(value));
    }
}

/// A label key: an optional DNS-subdomain prefix and '/', then a name of at most 63 characters.
pub fn label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let bad_prefix =
        |p: &str| p.is_empty() || p.len() > 253 || p.split('.').any(|l| dns1123_label(l).is_err());
    if prefix.is_some_and(bad_prefix) {
        return Err(format!(
            "label key {key:?} has an invalid prefix (must be a DNS subdomain)"
        ));
    }
    if name.is_empty() || name.len() > 63 || !qualified_name(name) {
        return Err(format!(
            "invalid label key {key:?}: a name of at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// A label value: empty, or at most 63 characters of the same alphabet as a label name.
pub fn label_value(value: &str) -> Result<(), String> {
    if value.is_empty() || (value.len() <= 63 && qualified_name(value)) {
        Ok(())
    } else {
        Err(format!(
            "invalid label value {value:?}: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        ))
    }
}

fn qualified_name(s: &str) -> bool {
    let b = s.as_bytes();
    b.iter()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// A Kubernetes object name (DNS-1123 subdomain: lowercase, digits, '-' and '.').
pub fn object_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("metadata.name is required".into());
    }
    if is_k8s_subdomain(name) {
        Ok(())
    } else {
        Err(format!(
            "invalid name {name:?}: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
        ))
    }
}

#[cfg(test)]
mod tests;
