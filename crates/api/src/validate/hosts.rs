//! DNS names, the two ways the configs check them.
//!
//! - Istio's rules (istiod's `ValidateWildcardDomain`, `ValidateFQDN` and
//!   `IsDNS1123Label`), for what Istio itself validates: the hosts of VirtualServices,
//!   DestinationRules, ServiceEntries, Gateways and Sidecars, SNI names, gateway names, and
//!   the single labels Istio checks (`exportTo` namespaces, subset and port names). Upper
//!   case is accepted, `*foo` is a valid wildcard first label, and an all-digit top-level
//!   domain is refused. Use [`wildcard_host`], [`fqdn_host`], [`partial_wildcard`] and
//!   [`is_dns_label`].
//! - Kubernetes' rules, for names the API server checks before Istio sees them (namespaces
//!   and names of Gateway API references, API groups, section names): lower case only. Use
//!   [`is_k8s_label`] and [`is_k8s_subdomain`].

/// What a DNS label may hold, for messages.
pub const DNS_LABEL_RULE: &str =
    "letters, digits and '-', at most 63, not starting or ending with '-'";

/// A DNS label as Istio checks it: 1–63 letters (either case), digits and '-', starting and
/// ending with a letter or digit.
pub fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// A first label that may carry a wildcard: `*`, `*foo`, `*-foo`, or a plain label.
fn is_wildcard_label(s: &str) -> bool {
    if s.len() > 63 {
        return false;
    }
    if s == "*" {
        return true;
    }
    let rest = s
        .strip_prefix("*-")
        .or_else(|| s.strip_prefix('*'))
        .unwrap_or(s);
    is_dns_label(rest)
}

fn host_preconditions(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("host must not be empty".into());
    }
    if host.len() > 255 {
        return Err(format!("host {host:?} is longer than 255 characters"));
    }
    Ok(())
}

/// The labels after the first (`rest` of `host`): plain DNS labels, a trailing dot allowed,
/// and a top-level domain that is not a number.
fn later_labels(host: &str, rest: &str) -> Result<(), String> {
    let parts: Vec<&str> = rest.split('.').collect();
    let tld = parts.last().copied().unwrap_or("");
    if is_go_integer(tld) {
        return Err(format!(
            "invalid host {host:?}: the top-level domain {tld:?} cannot be all digits"
        ));
    }
    for (i, label) in parts.iter().enumerate() {
        if i == parts.len() - 1 && label.is_empty() {
            return Ok(());
        }
        if !is_dns_label(label) {
            return Err(label_error(host, label, false));
        }
    }
    Ok(())
}

fn label_error(host: &str, label: &str, first: bool) -> String {
    let mut msg =
        format!("invalid host {host:?}: label {label:?} is not a DNS label ({DNS_LABEL_RULE}");
    if label.contains('*') {
        msg.push_str(if first {
            "; a wildcard may only lead the label, as in *.example.com or *foo.example.com"
        } else {
            "; only the first label may hold a wildcard"
        });
    }
    msg.push(')');
    if first && host.contains('/') {
        msg.push_str(": a host is a DNS name such as reviews or reviews.prod.svc.cluster.local, not namespace/name");
    }
    msg
}

/// Whether Go's `strconv.Atoi` would read the text as a number (Istio's test for an
/// all-numeric top-level domain: a sign counts, a number too large for 64 bits does not).
pub(crate) fn is_go_integer(s: &str) -> bool {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && s.parse::<i64>().is_ok()
}

/// A host that may be wildcarded in its first label: `reviews`, `reviews.prod.svc.cluster.local`,
/// `*.example.com`, `*foo.example.com`, `*` (Istio's `ValidateWildcardDomain`).
pub fn wildcard_host(host: &str) -> Result<(), String> {
    host_preconditions(host)?;
    let (first, rest) = match host.split_once('.') {
        Some((f, r)) => (f, Some(r)),
        None => (host, None),
    };
    if !is_wildcard_label(first) {
        return Err(label_error(host, first, true));
    }
    match rest {
        Some(rest) => later_labels(host, rest),
        None => Ok(()),
    }
}

/// A fully qualified or short DNS name with no wildcard: `api.example.com`, `reviews`
/// (Istio's `ValidateFQDN`).
pub fn fqdn_host(host: &str) -> Result<(), String> {
    host_preconditions(host)?;
    later_labels(host, host)
}

/// The host rule of a VirtualService bound only to gateways: as [`wildcard_host`], and for
/// TLS routes that match on SNI, Istio's generated `outbound_.<port>_...` names too.
pub fn gateway_bound_host(sni: bool, host: &str) -> Result<(), String> {
    host_preconditions(host)?;
    if sni && host.split('.').next() == Some("outbound_") {
        return match host.as_bytes().get("outbound_.".len()) {
            Some(b'0'..=b'8') => Ok(()),
            _ => Err(label_error(host, "outbound_", false)),
        };
    }
    wildcard_host(host)
}

/// Istio's rule, where it has one (ServiceEntry, Gateway and Sidecar hosts), that a wildcard
/// is `*` alone or a leading `*.`: `*foo.example.com` is refused there.
pub fn partial_wildcard(host: &str) -> Result<(), String> {
    if host.contains('*') && host != "*" && !host.starts_with("*.") {
        Err(format!(
            "partial wildcard {host:?} is not allowed: use \"*\" or a leading \"*.\" (e.g. \"*.example.com\")"
        ))
    } else {
        Ok(())
    }
}

/// A Kubernetes DNS-1123 label (a namespace name): 1–63 lower-case letters, digits and '-',
/// starting and ending with a letter or digit.
pub fn is_k8s_label(s: &str) -> bool {
    s.len() <= 63 && is_lowercase_label(s)
}

/// A Kubernetes DNS-1123 subdomain (object names, API groups): lower-case labels joined by
/// '.', at most 253 characters (Kubernetes sets no length for each label here).
pub fn is_k8s_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_lowercase_label)
}

fn is_lowercase_label(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}
