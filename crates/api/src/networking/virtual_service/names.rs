//! The name rules VirtualService checks lean on, as Istio applies them: host overlap,
//! gateway references, header names and header values, and `retryOn` policies. (Host syntax itself is `crate::validate`'s.)

use std::net::IpAddr;

use crate::path::FieldPath;
use crate::validate::{self, DNS_LABEL_RULE, Validator, is_dns_label};

pub(super) fn is_ip(text: &str) -> bool {
    text.parse::<IpAddr>().is_ok()
}

/// Whether two hosts overlap: equal, or one wildcard covers the other (Istio's
/// `host.Name.Matches`).
pub(super) fn hosts_overlap(a: &str, b: &str) -> bool {
    match (a.strip_prefix('*'), b.strip_prefix('*')) {
        (Some(sa), Some(sb)) => {
            if a.len() < b.len() {
                sb.ends_with(sa)
            } else {
                sa.ends_with(sb)
            }
        }
        (Some(sa), None) => b.ends_with(sa),
        (None, Some(sb)) => a.ends_with(sb),
        (None, None) => a == b,
    }
}

/// Whether host `a` is covered by host `b` (Istio's `host.Name.SubsetOf`).
pub(super) fn host_within(a: &str, b: &str) -> bool {
    match (a.strip_prefix('*'), b.strip_prefix('*')) {
        (Some(sa), Some(sb)) => a.len() >= b.len() && sa.ends_with(sb),
        (Some(_), None) => false,
        (None, Some(sb)) => a.ends_with(sb),
        (None, None) => a == b,
    }
}

/// Gateway references: `mesh`, `name` (the VirtualService's namespace), `namespace/name`,
/// or the legacy `name.namespace` (accepted with a warning).
pub(super) fn gateway_names(at: &FieldPath, names: &[String], v: &mut Validator<'_>) {
    for (i, name) in names.iter().enumerate() {
        let at = at.index(i);
        match name.split_once('/') {
            None => {
                if let Some((gw, ns)) = name.split_once('.') {
                    let ns = ns.split('.').next().unwrap_or(ns);
                    v.warn(
                        at.clone(),
                        format!(
                            "gateway {name:?} uses the legacy name.namespace form; prefer namespace/name: \"{ns}/{gw}\""
                        ),
                    );
                }
                if name.is_empty() {
                    v.error(at, "gateway name must not be empty");
                } else if let Err(e) = validate::fqdn_host(name) {
                    v.error(at, format!("invalid gateway name: {e}"));
                }
            }
            Some((ns, gw)) => {
                if ns.is_empty() || gw.is_empty() {
                    v.error(
                        at.clone(),
                        format!("gateway reference {name:?} needs both a namespace and a name (namespace/name)"),
                    );
                }
                if !ns.is_empty() && !is_dns_label(ns) {
                    v.error(
                        at.clone(),
                        format!(
                            "invalid namespace {ns:?} in gateway reference {name:?} ({DNS_LABEL_RULE})"
                        ),
                    );
                }
                if !gw.is_empty() && !is_dns_label(gw) {
                    v.error(
                        at,
                        format!("invalid gateway name {gw:?} in gateway reference {name:?} ({DNS_LABEL_RULE})"),
                    );
                }
            }
        }
    }
}

/// Whether a match header key is Istio's JWT-claim form (`@request.auth.claims.groups`,
/// `@request.auth.claims[groups][0]`).
pub(super) fn is_claim_key(name: &str) -> bool {
    const PREFIX: &str = "@request.auth.claims";
    let Some(head) = name.get(..PREFIX.len()) else {
        return false;
    };
    if !head.eq_ignore_ascii_case(PREFIX) {
        return false;
    }
    let rest = &name[PREFIX.len()..];
    rest.starts_with('.') || (rest.starts_with('[') && rest.ends_with(']'))
}

/// A header name in a match: letters, digits, '-' and '_' (pseudo-headers are matched with
/// `uri`, `scheme`, `method` and `authority`), or a JWT-claim key.
pub(super) fn match_header_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("header name must not be empty".into());
    }
    if is_claim_key(name) || validate::is_header_name(name) {
        return Ok(());
    }
    let mut msg =
        format!("invalid header name {name:?}: only letters, digits, '-' and '_' are allowed");
    if name.starts_with(':') {
        msg.push_str(" (match pseudo-headers with uri, scheme, method or authority)");
    }
    Err(msg)
}

/// A header name in a CORS list: `*` or letters, digits, '-' and '_'.
pub(super) fn cors_header_name(name: &str) -> Result<(), String> {
    if name == "*" || validate::is_header_name(name) {
        Ok(())
    } else if name.is_empty() {
        Err("header name must not be empty".into())
    } else {
        Err(format!(
            "invalid header name {name:?}: only letters, digits, '-' and '_' are allowed, or \"*\""
        ))
    }
}

pub(super) fn is_authority_header(name: &str) -> bool {
    name.eq_ignore_ascii_case(":authority") || name.eq_ignore_ascii_case("host")
}

/// A header that `headers.request.set/add` may name: anything but pseudo-headers, except
/// that the authority (`:authority` or `host`) may be set.
pub(super) fn settable_request_header(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("header name must not be empty".into());
    }
    if name.starts_with(':') && !is_authority_header(name) {
        return Err(format!(
            "header {name:?} cannot be changed: pseudo-headers (\":\" prefix) belong to the proxy (only \":authority\" may be set)"
        ));
    }
    Ok(())
}

/// A header that request `remove` or any response operation may name: not `host`, not a
/// pseudo-header.
pub(super) fn changeable_header(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("header name must not be empty".into());
    }
    if name.eq_ignore_ascii_case("host") {
        return Err(format!(
            "header {name:?} cannot be changed here (set the authority with rewrite.authority or headers.request.set)"
        ));
    }
    if name.starts_with(':') {
        return Err(format!(
            "header {name:?} cannot be changed: pseudo-headers (\":\" prefix) belong to the proxy"
        ));
    }
    Ok(())
}

/// A header value as Envoy reads it: no control characters but tab, and `%` only in `%%`
/// or in `%VARIABLE%` / `%VARIABLE(args)%` expressions.
pub(super) fn header_value(value: &str) -> Result<(), String> {
    if value
        .bytes()
        .any(|b| (b <= 0x08) || (0x0a..=0x1f).contains(&b) || b == 0x7f)
    {
        return Err(format!(
            "invalid header value {value:?}: control characters are not allowed"
        ));
    }
    percent_expressions(value)
        .map_err(|why| format!("invalid header value {value:?}: {why} (write a literal % as %%)"))
}

/// Where a `%...%` expression scan stands (a port of Envoy's header formatter parser).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scan {
    Literal,
    Name,
    ArgsStart,
    ArgStart,
    Arg,
    ArgEnd,
    ParenEnd,
    PercentEnd,
}

fn percent_expressions(value: &str) -> Result<(), &'static str> {
    let b = value.as_bytes();
    let mut state = Scan::Literal;
    let mut i = 0;
    while i < b.len() {
        let (next, skip) = scan_step(state, b[i], b.get(i + 1).copied())?;
        state = next;
        i += if skip { 2 } else { 1 };
    }
    if state == Scan::Literal {
        Ok(())
    } else {
        Err("a %VARIABLE% expression is not closed")
    }
}

/// One step of the scan: the next state, and whether the following byte is consumed too
/// (`%%`, or a backslash escape).
fn scan_step(state: Scan, c: u8, next: Option<u8>) -> Result<(Scan, bool), &'static str> {
    let to = |s: Scan| Ok((s, false));
    match (state, c) {
        (Scan::Literal, b'%') => match next {
            None => Err("it ends with a lone %"),
            Some(b'%') => Ok((Scan::Literal, true)),
            Some(_) => to(Scan::Name),
        },
        (Scan::Literal, _) => to(Scan::Literal),
        (Scan::Name, b'%') => to(Scan::Literal),
        (Scan::Name, b'(') => to(Scan::ArgsStart),
        (Scan::Name, _) => to(Scan::Name),
        (Scan::ArgsStart, b'[') => to(Scan::ArgStart),
        (Scan::ArgsStart, b' ') => to(Scan::ArgsStart),
        (Scan::ArgsStart, _) => to(Scan::Arg),
        (Scan::ArgStart, b'"') => to(Scan::Arg),
        (Scan::ArgStart, b' ') => to(Scan::ArgStart),
        (Scan::ArgStart, _) => Err("expected '\"' to start an argument"),
        (Scan::Arg, b'\\') if next.is_none() => Err("an argument ends with a lone backslash"),
        (Scan::Arg, b'\\') => Ok((Scan::Arg, true)),
        (Scan::Arg, b')') => to(Scan::PercentEnd),
        (Scan::Arg, b'"') => to(Scan::ArgEnd),
        (Scan::Arg, _) => to(Scan::Arg),
        (Scan::ArgEnd, b',') => to(Scan::ArgStart),
        (Scan::ArgEnd, b']') => to(Scan::ParenEnd),
        (Scan::ArgEnd, b' ') => to(Scan::ArgEnd),
        (Scan::ArgEnd, _) => Err("expected ',' or ']' in the arguments"),
        (Scan::ParenEnd, b')') => to(Scan::PercentEnd),
        (Scan::ParenEnd, b' ') => to(Scan::ParenEnd),
        (Scan::ParenEnd, _) => Err("expected ')' after the arguments"),
        (Scan::PercentEnd, b'%') => to(Scan::Literal),
        (Scan::PercentEnd, b' ') => to(Scan::PercentEnd),
        (Scan::PercentEnd, _) => Err("expected '%' to close the expression"),
    }
}

/// Envoy's `x-envoy-retry-on` and `x-envoy-retry-grpc-on` conditions Istio accepts.
const RETRY_POLICIES: &[&str] = &[
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "envoy-ratelimited",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

/// `retryOn`: comma-separated conditions and HTTP status codes, with no spaces.
pub(super) fn retry_on(at: &FieldPath, text: &str, v: &mut Validator<'_>) {
    for policy in text.split(',') {
        if RETRY_POLICIES.contains(&policy) || is_known_status(policy) {
            continue;
        }
        let trimmed = policy.trim();
        let msg = if trimmed.is_empty() {
            "empty retryOn entry (a stray ',')".to_string()
        } else if trimmed != policy
            && (RETRY_POLICIES.contains(&trimmed) || is_known_status(trimmed))
        {
            format!("invalid retryOn policy {policy:?}: remove the spaces around ','")
        } else {
            format!(
                "invalid retryOn policy {policy:?}: use HTTP status codes or {}",
                RETRY_POLICIES.join(", ")
            )
        };
        v.error(at.clone(), msg);
    }
}

/// Whether the text is a number Go's `http.StatusText` knows (Istio's test for status
/// codes in `retryOn`).
fn is_known_status(text: &str) -> bool {
    if !validate::is_go_integer(text) {
        return false;
    }
    let Ok(code) = text.parse::<i64>() else {
        return false;
    };
    matches!(code,
        100..=103 | 200..=208 | 226 | 300..=305 | 307 | 308 | 400..=418 | 421..=426
        | 428 | 429 | 431 | 451 | 500..=508 | 510 | 511)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_overlap_and_cover() {
        assert!(hosts_overlap("*.com", "foo.com"));
        assert!(hosts_overlap("foo.com", "*.com"));
        assert!(!hosts_overlap("*.foo.com", "foo.com"));
        assert!(hosts_overlap("*", "*.com"));
        assert!(host_within("a.foo.com", "*.foo.com"));
        assert!(!host_within("*.foo.com", "a.foo.com"));
        assert!(host_within("*.a.foo.com", "*.foo.com"));
        assert!(host_within("*", "*"));
    }

    #[test]
    fn header_values_follow_envoys_syntax() {
        for ok in [
            "foo",
            "%HOSTNAME%",
            "100%%",
            "a %START_TIME% b",
            "%REQ([\"x\"])%",
            "%REQ(x-a)%",
        ] {
            assert_eq!(header_value(ok), Ok(()), "{ok}");
        }
        for bad in ["abc%", "%START_TIME", "a\nb", "%REQ([x])%"] {
            assert!(header_value(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn claim_keys() {
        assert!(is_claim_key("@request.auth.claims.groups"));
        assert!(is_claim_key("@request.auth.claims[nested][key]"));
        assert!(!is_claim_key("@request.auth.claimsx"));
        assert!(!is_claim_key("end-user"));
    }

    #[test]
    fn status_codes_in_retry_on() {
        assert!(is_known_status("503"));
        assert!(is_known_status("0503"));
        assert!(!is_known_status("306"));
        assert!(!is_known_status("600"));
        assert!(!is_known_status(" 503"));
    }
}
