//! Istio's syntax checks shared by the networking kinds (`namespace/host` entries,
//! `exportTo`, port names, addresses, label selectors), written to accept and refuse what
//! istiod's validation accepts and refuses.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::common::WorkloadSelector;
use crate::path::FieldPath;
use crate::validate::{self, DNS_LABEL_RULE, Duration, Validator};

/// A port name (`http`, `grpc-web`): a DNS label.
pub(crate) fn port_name(name: &str) -> Result<(), String> {
    if validate::is_dns_label(name) {
        Ok(())
    } else if name.is_empty() {
        Err("port name is required".into())
    } else {
        Err(format!("invalid port name {name:?}: {DNS_LABEL_RULE}"))
    }
}

/// A port number, with Istio's wording.
pub(crate) fn port(at: FieldPath, number: u32, v: &mut Validator<'_>) {
    v.check(at, validate::port(number));
}

/// A duration Istio requires to be at least 1ms, to the millisecond.
pub(crate) fn duration(at: FieldPath, d: Option<Duration>, v: &mut Validator<'_>) {
    if let Some(d) = d {
        v.check(at, validate::duration_ms(d));
    }
}

/// The path of a Unix domain socket after `unix://`: absolute (`/var/run/x.sock`) or
/// abstract (`@name`), and not a directory.
pub(crate) fn unix_address(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("unix socket path must not be empty".into());
    }
    if path.starts_with('@') {
        return Ok(());
    }
    if !path.starts_with('/') || path.ends_with('/') {
        return Err(format!(
            "unix socket path {path:?} must be an absolute path to a file (e.g. unix:///var/run/app.sock) or an abstract socket (unix://@name)"
        ));
    }
    Ok(())
}

/// The `unix://` prefix of socket addresses.
pub(crate) const UNIX_PREFIX: &str = "unix://";

/// Whether a string field is set (proto3 strings: empty means unset).
pub(crate) fn set(s: &Option<String>) -> bool {
    s.as_deref().is_some_and(|s| !s.is_empty())
}

/// The kinds that have `exportTo`, which Istio checks alike but for two details.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exporter {
    VirtualService,
    /// With a workload selector, a DestinationRule may only be exported to its own
    /// namespace.
    DestinationRule {
        workload_selector: bool,
    },
    /// The one kind that may be exported to no namespace at all (`~`).
    ServiceEntry,
}

impl Exporter {
    fn name(self) -> &'static str {
        match self {
            Self::VirtualService => "VirtualService",
            Self::DestinationRule { .. } => "DestinationRule",
            Self::ServiceEntry => "ServiceEntry",
        }
    }
}

/// `exportTo` (Istio's `validateExportTo`): `.` (this namespace), `*` (every namespace), a
/// namespace name, or on a ServiceEntry `~` (no namespace); no namespace twice, and `*` or
/// `~` alone.
pub(crate) fn export_to(at: &FieldPath, entries: &[String], kind: Exporter, v: &mut Validator<'_>) {
    let own = v.namespace.to_string();
    // Each valid entry so far by the namespace it names, with its spelling (`.` or a name).
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    for (i, e) in entries.iter().enumerate() {
        let key = if e == "." { own.clone() } else { e.clone() };
        if let Some(first) = seen.get(&key) {
            let why = if first == e {
                format!("duplicate exportTo entry {e:?}: it is listed more than once")
            } else {
                format!(
                    "duplicate exportTo entry {e:?}: \".\" and {own:?} both name this {}'s namespace",
                    kind.name()
                )
            };
            v.error(at.index(i), why);
            continue;
        }
        match export_entry(e, kind) {
            Ok(()) => {
                seen.insert(key, e);
            }
            Err(why) => v.error(at.index(i), why),
        }
    }
    if kind
        == (Exporter::DestinationRule {
            workload_selector: true,
        })
        && !seen.is_empty()
    {
        if !seen.contains_key(&own) {
            v.error(at.clone(), "a DestinationRule with a workloadSelector can only be exported to its own namespace (\".\")");
        } else if seen.len() > 1 {
            v.error(at.clone(), "a DestinationRule with a workloadSelector cannot be exported to more than its own namespace");
        }
    }
    if seen.contains_key("*") && entries.len() > 1 {
        v.error(
            at.clone(),
            "\"*\" (every namespace) cannot be combined with other exportTo entries",
        );
    }
    if seen.contains_key("~") && entries.len() > 1 {
        v.error(
            at.clone(),
            "\"~\" (no namespace) cannot be combined with other exportTo entries",
        );
    }
}

/// One `exportTo` entry on its own.
fn export_entry(e: &str, kind: Exporter) -> Result<(), String> {
    match e {
        "." | "*" => Ok(()),
        "~" if kind == Exporter::ServiceEntry => Ok(()),
        "~" => Err("exportTo \"~\" (no namespace) is only allowed on a ServiceEntry".into()),
        ns if validate::is_dns_label(ns) => Ok(()),
        _ => Err(format!(
            "invalid exportTo entry {e:?}: use \".\" (this namespace), \"*\" (every namespace) or a namespace name"
        )),
    }
}

/// A host entry of a Gateway server or a Sidecar egress listener: `namespace/dnsName`
/// (`istio-system/*`, `./reviews.default.svc.cluster.local`, `*/*.example.com`). A Gateway
/// may omit the namespace, and may name an IP address.
pub(crate) fn namespace_slash_host(host: &str, gateway: bool) -> Vec<String> {
    let Some((ns, name)) = host.split_once('/') else {
        if gateway {
            return host_part(host, true);
        }
        return vec![format!(
            "host {host:?} must be of the form namespace/dnsName (e.g. \"./reviews.default.svc.cluster.local\", \"istio-system/*\")"
        )];
    };
    let mut errs = Vec::new();
    if ns.is_empty() || name.is_empty() {
        errs.push(format!(
            "host {host:?}: the namespace and the dnsName of namespace/dnsName must not be empty"
        ));
    }
    let ns_ok = ns == "*" || ns == "." || (!gateway && ns == "~") || validate::is_dns_label(ns);
    if !ns.is_empty() && !ns_ok {
        let allowed = if gateway {
            "\"*\", \".\" or a namespace name"
        } else {
            "\"*\", \".\", \"~\" or a namespace name"
        };
        errs.push(format!(
            "host {host:?}: invalid namespace {ns:?} (use {allowed})"
        ));
    }
    if !name.is_empty() {
        errs.extend(host_part(name, gateway));
    }
    errs
}

fn host_part(name: &str, gateway: bool) -> Vec<String> {
    let mut errs = Vec::new();
    if name != "*" && !name.contains('.') {
        let example = if gateway {
            format!("{name}.example.com")
        } else {
            format!("{name}.default.svc.cluster.local")
        };
        errs.push(format!(
            "short host name {name:?} is not allowed here: write the fully qualified name (e.g. {example:?})"
        ));
    }
    // A Gateway may name an IP address instead of a host.
    if let Err(e) = validate::wildcard_host(name)
        && !(gateway && name.parse::<IpAddr>().is_ok())
    {
        errs.push(e);
    }
    if let Err(e) = validate::partial_wildcard(name) {
        errs.push(e);
    }
    errs
}

/// `workloadSelector: {labels: ...}` (the networking kinds' form, with `labels` rather
/// than `matchLabels`). Istio refuses empty keys and wildcards; an empty selector selects
/// every workload of the namespace, which Istio accepts with a warning.
pub(crate) fn labels_selector(
    at: &FieldPath,
    labels: &BTreeMap<String, String>,
    what: &str,
    v: &mut Validator<'_>,
) {
    let at = at.key("labels");
    for (k, val) in labels {
        if k.is_empty() {
            v.error(
                at.clone(),
                format!("empty label key in selector (\"{k}={val}\")"),
            );
        }
        if k.contains('*') || val.contains('*') {
            v.error(
                at.key(k),
                format!("wildcards are not supported in selectors: \"{k}={val}\""),
            );
        }
    }
    if labels.is_empty() {
        v.warn(
            at,
            format!("workload selector has no labels: the {what} applies to every workload in the namespace"),
        );
    }
}

/// `selector: {matchLabels: ...}` with Istio's warning for an empty selector.
pub(crate) fn match_labels_selector(
    at: &FieldPath,
    selector: &WorkloadSelector,
    what: &str,
    v: &mut Validator<'_>,
) {
    use crate::validate::Validate;
    selector.validate(at, v);
    if selector.match_labels.is_empty() {
        v.warn(
            at.key("matchLabels"),
            format!("workload selector has no labels: the {what} applies to every workload in the namespace"),
        );
    }
}

/// Test support: every problem reported for the `networking.istio.io` objects of `kind`
/// in Istio's sample configs and security examples (the corpus that must load cleanly),
/// and how many such objects there are.
#[cfg(test)]
pub(crate) fn corpus_problems(kind: &str) -> (usize, Vec<String>) {
    use std::path::Path;
    use std::sync::Arc;

    use crate::load::{LoadOptions, Loaded, load_str};
    let mut out = Loaded::default();
    let mut files = Vec::new();
    let mut dirs = vec![
        Path::new(&crate::testing::shared("istio-samples/samples")).to_path_buf(),
        Path::new(&crate::testing::shared("istio-security")).to_path_buf(),
    ];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.push(p);
            }
        }
    }
    let wanted = format!("kind: {kind}\n");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for doc in crate::yaml::split_documents(&text) {
            if doc.text.contains("apiVersion: networking.istio.io/") && doc.text.contains(&wanted) {
                load_str(
                    doc.text,
                    Arc::from(file.as_path()),
                    &LoadOptions::default(),
                    &mut out,
                );
            }
        }
    }
    let problems = out.reports.iter().map(ToString::to_string).collect();
    (out.objects.len(), problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_hosts() {
        assert!(namespace_slash_host("istio-system/*", false).is_empty());
        assert!(namespace_slash_host("./reviews.default.svc.cluster.local", false).is_empty());
        assert!(namespace_slash_host("~/*", false).is_empty());
        assert!(!namespace_slash_host("~/*", true).is_empty());
        assert!(!namespace_slash_host("reviews.default.svc", false).is_empty());
        assert!(namespace_slash_host("*.local", true).is_empty());
        assert!(namespace_slash_host("10.0.0.1", true).is_empty());
        assert!(!namespace_slash_host("ns/reviews", true).is_empty());
        assert!(!namespace_slash_host("Bad_ns/*", false).is_empty());
    }

    #[test]
    fn addresses() {
        assert!(
            validate::ip_or_cidr("10.0.0.0/8").is_ok() && validate::ip_or_cidr("001:db8::").is_ok()
        );
        assert!(
            validate::ip_or_cidr("1.2.3.4/99").is_err() && validate::ip_or_cidr("a/b/c").is_err()
        );
        assert!(unix_address("/var/run/a.sock").is_ok() && unix_address("@abs").is_ok());
        assert!(unix_address("rel").is_err() && unix_address("/dir/").is_err());
    }
}
