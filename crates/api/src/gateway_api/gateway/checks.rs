//! Format checks of the Gateway API's string types (hostnames, section names, groups,
//! kinds, header names, durations...), as the `gateway.networking.k8s.io` CRD schemas
//! enforce them, shared by every Gateway API kind.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::LazyLock;

use regex::Regex;
use serde::Deserialize;

use crate::path::FieldPath;
use crate::validate::{self, Validator};

/// The API group of the Gateway API kinds, the default `group` of parent refs and route kinds.
pub const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("built-in pattern compiles")
}

static KIND: LazyLock<Regex> = LazyLock::new(|| re(r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$"));
static HEADER_NAME: LazyLock<Regex> = LazyLock::new(|| re(r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$"));
static DOMAIN_PATH: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/[A-Za-z0-9/\-._~%!$&'()*+,;=:]+$",
    )
});

/// A `Hostname` (`foo.example.com`, or `*.example.com` where `wildcard` is allowed): lower-case
/// RFC 1123 labels, at most 253 characters.
pub fn hostname(host: &str, wildcard: bool) -> Result<(), String> {
    let name = match host.strip_prefix("*.") {
        Some(rest) if wildcard => rest,
        Some(_) => {
            return Err(format!(
                "invalid hostname {host:?}: a wildcard is not allowed here (give a precise hostname such as foo.example.com)"
            ));
        }
        None => host,
    };
    if host.is_empty() {
        return Err("hostname must not be empty".into());
    }
    if host.len() > 253 {
        return Err(format!("hostname {host:?} is longer than 253 characters"));
    }
    if !validate::is_k8s_subdomain(name) {
        let allowed = if wildcard {
            "lower-case letters, digits, '-' and '.', optionally prefixed by '*.'"
        } else {
            "lower-case letters, digits, '-' and '.'"
        };
        return Err(format!("invalid hostname {host:?}: use {allowed}"));
    }
    Ok(())
}

/// The Gateway API refuses IP addresses as hostnames in its prose but not in its schema:
/// a warning, since the API server accepts them.
pub fn warn_ip_hostname(at: FieldPath, host: &str, v: &mut Validator<'_>) {
    if host.parse::<IpAddr>().is_ok() {
        v.warn(
            at,
            format!("hostname {host:?} is an IP address; the Gateway API expects a DNS name here"),
        );
    }
}

/// A `SectionName` (listener names, rule names, `sectionName`): a DNS subdomain.
pub fn section_name(name: &str) -> Result<(), String> {
    if !validate::is_k8s_subdomain(name) {
        return Err(format!(
            "invalid name {name:?}: use lower-case letters, digits, '-' and '.' (at most 253), starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// A `Group`: empty (the core group) or a DNS subdomain.
pub fn group(group: &str) -> Result<(), String> {
    if group.is_empty() || validate::is_k8s_subdomain(group) {
        Ok(())
    } else {
        Err(format!(
            "invalid group {group:?}: must be empty (the core group) or a DNS subdomain such as {GATEWAY_GROUP}"
        ))
    }
}

/// A `Kind`: a letter, then letters, digits and '-', at most 63 characters.
pub fn kind(kind: &str) -> Result<(), String> {
    if kind.is_empty() {
        return Err("kind must not be empty".into());
    }
    if kind.len() > 63 || !KIND.is_match(kind) {
        return Err(format!(
            "invalid kind {kind:?}: a letter followed by letters, digits or '-' (e.g. Service, HTTPRoute)"
        ));
    }
    Ok(())
}

/// A `Namespace` name: a DNS-1123 label.
pub fn namespace(ns: &str) -> Result<(), String> {
    if validate::is_k8s_label(ns) {
        Ok(())
    } else {
        Err(format!(
            "invalid namespace {ns:?}: lower-case letters, digits and '-' (at most 63), starting and ending with a letter or digit"
        ))
    }
}

/// An `ObjectName`: 1–253 characters (its exact form depends on the referent's kind).
pub fn object_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        Err("name must not be empty".into())
    } else if name.len() > 253 {
        Err(format!("name {name:?} is longer than 253 characters"))
    } else {
        Ok(())
    }
}

/// An HTTP header (or query parameter) name: RFC 7230 token characters, at most 256.
pub fn header_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("header name must not be empty".into());
    }
    if name.len() > 256 || !HEADER_NAME.is_match(name) {
        return Err(format!(
            "invalid header name {name:?}: letters, digits and !#$%&'*+-.^_`|~ only (no ':', '/' or spaces), at most 256"
        ));
    }
    Ok(())
}

/// A `GatewayController` (`example.net/gateway-controller`) or a domain-prefixed custom value
/// of an extensible field: a DNS subdomain, '/', then a path.
pub fn domain_prefixed_path(text: &str) -> bool {
    text.len() <= 253 && DOMAIN_PATH.is_match(text)
}

/// A `PortNumber` (1–65535); the API types it as a signed integer.
pub fn port(number: i32) -> Result<(), String> {
    if (1..=65535).contains(&number) {
        Ok(())
    } else {
        Err(format!("port number {number} must be in 1-65535"))
    }
}

/// A string length limit of the schema.
pub fn max_len(at: FieldPath, text: &str, max: usize, v: &mut Validator<'_>) {
    if text.chars().count() > max {
        v.error(
            at,
            format!(
                "is {} characters long; at most {max} are allowed",
                text.chars().count()
            ),
        );
    }
}

/// A list length limit of the schema.
pub fn max_items(at: FieldPath, len: usize, max: usize, v: &mut Validator<'_>) {
    if len > max {
        v.error(at, format!("has {len} entries; at most {max} are allowed"));
    }
}

/// `labels` maps of the API (Gateway infrastructure): Kubernetes label rules, at most `max`.
pub fn label_map(
    at: &FieldPath,
    map: &BTreeMap<String, String>,
    max: usize,
    v: &mut Validator<'_>,
) {
    max_items(at.clone(), map.len(), max, v);
    validate::labels(at, map, v);
}

/// `annotations`-like maps (Gateway infrastructure, listener TLS options): qualified-name
/// keys, values of at most 4096 characters, at most `max` entries.
pub fn annotation_map(
    at: &FieldPath,
    map: &BTreeMap<String, String>,
    max: usize,
    v: &mut Validator<'_>,
) {
    max_items(at.clone(), map.len(), max, v);
    for (key, value) in map {
        let key_at = at.key(key);
        v.check(
            key_at.clone(),
            validate::label_key(key).map_err(|e| e.replace("label key", "key")),
        );
        max_len(key_at, value, 4096, v);
    }
}

/// A Gateway API `Duration` (GEP-2257): one to four `<1-5 digits><unit>` groups with units
/// h, m, s, ms, e.g. `10s`, `500ms`, `1h30m`. Kept as written; the rules check its syntax so
/// that every bad duration of an object is reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GatewayDuration(pub String);

/// Reads a number written without quotes (`timeout: 10`) as its text, so that the rules can
/// say what is wrong with it (a missing unit) instead of failing to decode.
impl<'de> Deserialize<'de> for GatewayDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = String;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a duration such as 10s")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<String, E> {
                Ok(s.to_string())
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<String, E> {
                Ok(n.to_string())
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<String, E> {
                Ok(n.to_string())
            }
            fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<String, E> {
                Ok(n.to_string())
            }
        }
        d.deserialize_any(Text).map(GatewayDuration)
    }
}

impl GatewayDuration {
    /// The duration, or why the text is not a Gateway API duration.
    pub fn parse(&self) -> Result<std::time::Duration, String> {
        let text = self.0.as_str();
        let bad = |why: &str| {
            format!("invalid duration {text:?}: {why} (write e.g. 500ms, 10s, 1m30s, 1h)")
        };
        let mut rest = text;
        let mut millis: u64 = 0;
        let mut groups = 0;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(bad("expected a whole number"));
            }
            if digits > 5 {
                return Err(bad("at most 5 digits per number"));
            }
            let value: u64 = rest[..digits].parse().map_err(|_| bad("bad number"))?;
            let tail = &rest[digits..];
            let (scale, unit_len) = if tail.starts_with("ms") {
                (1, 2)
            } else if tail.starts_with('h') {
                (3_600_000, 1)
            } else if tail.starts_with('m') {
                (60_000, 1)
            } else if tail.starts_with('s') {
                (1_000, 1)
            } else if tail.is_empty() {
                return Err(bad("missing unit"));
            } else {
                let unit: String = tail.chars().take_while(|c| !c.is_ascii_digit()).collect();
                return Err(bad(&format!("unit {unit:?} is not one of h, m, s, ms")));
            };
            millis += value * scale;
            groups += 1;
            rest = &tail[unit_len..];
        }
        if groups == 0 {
            return Err(bad("empty"));
        }
        if groups > 4 {
            return Err(bad("at most 4 number-unit groups"));
        }
        Ok(std::time::Duration::from_millis(millis))
    }
}

/// Checks an optional duration field; returns its value when it is valid.
pub fn duration(
    at: FieldPath,
    d: Option<&GatewayDuration>,
    v: &mut Validator<'_>,
) -> Option<std::time::Duration> {
    match d?.parse() {
        Ok(d) => Some(d),
        Err(e) => {
            v.error(at, e);
            None
        }
    }
}

/// A regular expression of a `RegularExpression` match: Istio hands it to Envoy as RE2.
pub fn regex(at: FieldPath, pattern: &str, v: &mut Validator<'_>) {
    v.check(at, validate::regex(pattern));
}
