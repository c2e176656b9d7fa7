//! Istio's rules for AuthorizationPolicy: the action and provider, each rule's sources,
//! operations and conditions, and the warnings Istio gives for policies that deny more
//! than they seem to.

use super::{Action, AuthorizationPolicy, Condition, Operation, Rule, Source};
use crate::path::FieldPath;
use crate::validate::{self, Validator};

/// Istio's default root namespace: a policy there with no selector covers the whole mesh.
const ROOT_NAMESPACE: &str = "istio-system";

/// Source fields a CUSTOM policy cannot use (the external authorizer sees no peer identity).
const CUSTOM_UNSUPPORTED_SOURCE: [&str; 8] = [
    "principals",
    "notPrincipals",
    "requestPrincipals",
    "notRequestPrincipals",
    "namespaces",
    "notNamespaces",
    "serviceAccounts",
    "notServiceAccounts",
];

/// The `when` keys Istio knows; `[...]` marks a key that takes a name (and `*[...]` a
/// prefix that does).
const KNOWN_KEYS: [&str; 15] = [
    "request.headers[...]",
    "request.experimental.inline.headers[...]",
    "source.ip",
    "remote.ip",
    "source.namespace",
    "source.serviceAccount",
    "source.principal",
    "request.auth.principal",
    "request.auth.audiences",
    "request.auth.presenter",
    "request.auth.claims[...]",
    "destination.ip",
    "destination.port",
    "connection.sni",
    "experimental.envoy.filters.*[...]",
];

/// `action`, `provider` and whether `rules` may be empty.
pub(super) fn action_rules(p: &AuthorizationPolicy, at: &FieldPath, v: &mut Validator<'_>) {
    let none_hint = "add an empty rule `rules: [{}]` to make it apply to every request";
    match p.action {
        Action::Custom => {
            if p.rules.is_empty() {
                v.error(
                    at.key("rules"),
                    format!("a CUSTOM policy without rules is never triggered; {none_hint}"),
                );
            }
            if p.provider.as_ref().is_none_or(|pr| pr.name.is_empty()) {
                v.error(
                    at.key("provider").key("name"),
                    "a CUSTOM policy needs provider.name: the name of an extension provider in MeshConfig",
                );
            }
        }
        Action::Deny if p.rules.is_empty() => v.error(
            at.key("rules"),
            format!("a DENY policy without rules is never triggered; {none_hint}"),
        ),
        Action::Allow if p.rules.is_empty() => {
            let scoped =
                p.selector.is_some() || p.target_ref.is_some() || !p.target_refs.is_empty();
            if v.namespace == ROOT_NAMESPACE && !scoped {
                v.warn(
                    at.clone(),
                    format!("an ALLOW policy without rules allows nothing; in {ROOT_NAMESPACE} (Istio's default root namespace) with no selector it denies every request to every workload in the mesh"),
                );
            }
        }
        _ => {}
    }
    if p.provider.is_some() && p.action != Action::Custom {
        v.error(
            at.key("provider"),
            format!(
                "provider is only used with action CUSTOM (the action is {:?}); remove it or set action: CUSTOM",
                action_name(p.action)
            ),
        );
    }
}

fn action_name(a: Action) -> &'static str {
    match a {
        Action::Allow => "ALLOW",
        Action::Deny => "DENY",
        Action::Audit => "AUDIT",
        Action::Custom => "CUSTOM",
    }
}

/// One entry of `rules`.
pub(super) fn rule_rules(rule: &Rule, action: Action, at: &FieldPath, v: &mut Validator<'_>) {
    let (from_exists, tcp_in_from) = rule_side(
        at,
        rule.from.as_deref(),
        ("from", "source", "a"),
        |f| f.source.as_ref(),
        |src, p, v| {
            source_rules(src, action, p, v);
            has_tcp_fields(src)
        },
        v,
    );
    let (to_exists, tcp_in_to) = rule_side(
        at,
        rule.to.as_deref(),
        ("to", "operation", "an"),
        |t| t.operation.as_ref(),
        |op, p, v| {
            operation_rules(op, p, v);
            !op.ports.is_empty() || !op.not_ports.is_empty()
        },
        v,
    );
    for (i, cond) in rule.when.iter().enumerate() {
        condition_rules(cond, action, &at.key("when").index(i), v);
    }
    let http_only = (from_exists && !to_exists && !tcp_in_from) || (to_exists && !tcp_in_to);
    if action == Action::Deny && http_only {
        v.warn(
            at.clone(),
            "this DENY rule uses only HTTP attributes, which TCP traffic does not have, so it denies all TCP traffic to the selected workloads; add ports to limit it to the HTTP ports",
        );
    }
}

/// A rule's `from` or `to` list, named by (field, what each entry holds, its article): an
/// empty list matches anything (a warning), and each entry needs its source or operation,
/// which `check` validates, returning whether it uses fields plain TCP traffic has.
/// Returns whether any entry holds one, and whether any of those uses TCP fields.
fn rule_side<E, T>(
    at: &FieldPath,
    list: Option<&[E]>,
    (field, what, article): (&str, &str, &str),
    inner: impl Fn(&E) -> Option<&T>,
    mut check: impl FnMut(&T, &FieldPath, &mut Validator<'_>) -> bool,
    v: &mut Validator<'_>,
) -> (bool, bool) {
    let (mut exists, mut tcp) = (false, false);
    let Some(list) = list else {
        return (exists, tcp);
    };
    if list.is_empty() {
        v.warn(
            at.key(field),
            format!("an empty {field} list matches any {what}; remove it or list the {what}s"),
        );
    }
    for (i, item) in list.iter().enumerate() {
        let p = at.key(field).index(i).key(what);
        match inner(item) {
            None => v.error(p, format!("each {field} entry needs {article} {what}")),
            Some(x) => {
                exists = true;
                tcp |= check(x, &p, v);
            }
        }
    }
    (exists, tcp)
}

/// Whether a source uses fields that also apply to plain TCP connections.
fn has_tcp_fields(s: &Source) -> bool {
    [
        &s.principals,
        &s.not_principals,
        &s.namespaces,
        &s.not_namespaces,
        &s.ip_blocks,
        &s.not_ip_blocks,
        &s.remote_ip_blocks,
        &s.not_remote_ip_blocks,
        &s.service_accounts,
        &s.not_service_accounts,
    ]
    .iter()
    .any(|l| !l.is_empty())
}

fn source_fields(s: &Source) -> [(&'static str, &Vec<String>); 12] {
    [
        ("principals", &s.principals),
        ("notPrincipals", &s.not_principals),
        ("requestPrincipals", &s.request_principals),
        ("notRequestPrincipals", &s.not_request_principals),
        ("namespaces", &s.namespaces),
        ("notNamespaces", &s.not_namespaces),
        ("ipBlocks", &s.ip_blocks),
        ("notIpBlocks", &s.not_ip_blocks),
        ("remoteIpBlocks", &s.remote_ip_blocks),
        ("notRemoteIpBlocks", &s.not_remote_ip_blocks),
        ("serviceAccounts", &s.service_accounts),
        ("notServiceAccounts", &s.not_service_accounts),
    ]
}

fn source_rules(s: &Source, action: Action, at: &FieldPath, v: &mut Validator<'_>) {
    let fields = source_fields(s);
    if fields.iter().all(|(_, l)| l.is_empty()) {
        v.error(
            at.clone(),
            "source must not be empty: set principals, requestPrincipals, namespaces, ipBlocks, remoteIpBlocks or serviceAccounts (or their not- forms)",
        );
    }
    let identity = !(s.principals.is_empty()
        && s.not_principals.is_empty()
        && s.namespaces.is_empty()
        && s.not_namespaces.is_empty());
    if identity && !(s.service_accounts.is_empty() && s.not_service_accounts.is_empty()) {
        let sa = if s.service_accounts.is_empty() {
            "notServiceAccounts"
        } else {
            "serviceAccounts"
        };
        v.error(
            at.key(sa),
            "serviceAccounts cannot be combined with principals or namespaces in one source; use separate from entries",
        );
    }
    for (name, values) in fields {
        let p = at.key(name);
        for (i, value) in values.iter().enumerate() {
            value_rules(name, value, &p.index(i), v);
        }
        if action == Action::Custom
            && CUSTOM_UNSUPPORTED_SOURCE.contains(&name)
            && !values.is_empty()
        {
            v.error(p, format!("{name} is not supported with action CUSTOM"));
        }
    }
}

/// The checks on one value of a source or operation field.
fn value_rules(field: &str, value: &str, at: &FieldPath, v: &mut Validator<'_>) {
    if value.is_empty() {
        v.error(at.clone(), format!("empty value in {field}"));
        return;
    }
    match field {
        "ipBlocks" | "notIpBlocks" | "remoteIpBlocks" | "notRemoteIpBlocks" => {
            v.check(at.clone(), ip_value(value));
        }
        "serviceAccounts" | "notServiceAccounts" => {
            let ok = value
                .split_once('/')
                .is_some_and(|(ns, sa)| !ns.is_empty() && !sa.is_empty() && !sa.contains('/'));
            if !ok {
                v.error(
                    at.clone(),
                    format!("service account {value:?} must be written <namespace>/<name>, e.g. default/bookinfo-productpage"),
                );
            }
        }
        "ports" | "notPorts" => v.check(at.clone(), port_value(value)),
        _ => pattern_warnings(field, value, at, v),
    }
}

/// Warnings for values that can never match as written.
fn pattern_warnings(field: &str, value: &str, at: &FieldPath, v: &mut Validator<'_>) {
    let templated = is_path_field(field) && is_path_template(value);
    if !templated && value != "*" {
        let core = value
            .strip_prefix('*')
            .or_else(|| value.strip_suffix('*'))
            .unwrap_or(value);
        if core.contains('*') {
            v.warn(
                at.clone(),
                format!("{value:?}: only a single '*' at the start or the end is a wildcard; any other '*' is matched literally"),
            );
        }
    }
    let wild = value.contains('*');
    match field {
        "principals" | "notPrincipals" if !wild && !value.contains('/') => v.warn(
            at.clone(),
            format!("principal {value:?} has no '/': workload identities look like cluster.local/ns/<namespace>/sa/<service-account>, so this only matches a peer whose certificate names spiffe://{value}"),
        ),
        "requestPrincipals" | "notRequestPrincipals" if !wild && !value.contains('/') => v.warn(
            at.clone(),
            format!("request principal {value:?} can never match: request principals are <issuer>/<subject> of the JWT, e.g. issuer.example.com/user-1"),
        ),
        "namespaces" | "notNamespaces" if !wild && validate::dns1123_label(value).is_err() => v.warn(
            at.clone(),
            format!("{value:?} is not a valid namespace name, so it never matches"),
        ),
        "methods" | "notMethods" if value != value.to_ascii_uppercase() => v.warn(
            at.clone(),
            format!("HTTP methods are upper case and matched exactly: {value:?} never matches (write {:?})", value.to_ascii_uppercase()),
        ),
        "paths" | "notPaths" if !value.starts_with('/') && !value.starts_with('*') => v.warn(
            at.clone(),
            format!("path {value:?} does not start with '/', so it never matches a request path"),
        ),
        _ => {}
    }
}

fn operation_rules(op: &Operation, at: &FieldPath, v: &mut Validator<'_>) {
    let fields = [
        ("hosts", &op.hosts),
        ("notHosts", &op.not_hosts),
        ("ports", &op.ports),
        ("notPorts", &op.not_ports),
        ("methods", &op.methods),
        ("notMethods", &op.not_methods),
        ("paths", &op.paths),
        ("notPaths", &op.not_paths),
    ];
    if fields.iter().all(|(_, l)| l.is_empty()) {
        v.error(
            at.clone(),
            "operation must not be empty: set hosts, ports, methods or paths (or their not- forms)",
        );
    }
    for (name, values) in fields {
        for (i, value) in values.iter().enumerate() {
            let p = at.key(name).index(i);
            value_rules(name, value, &p, v);
            if is_path_field(name) && is_path_template(value) {
                v.check(p, path_template(value));
            }
        }
    }
}

/// An IP or CIDR; docs often show `$VAR` placeholders that were never substituted.
fn ip_value(value: &str) -> Result<(), String> {
    validate::ip_or_cidr(value).map_err(|e| {
        if value.starts_with('$') {
            format!("{e}: it looks like a shell variable that was never expanded")
        } else {
            e
        }
    })
}

/// A port as AuthorizationPolicy writes it: a decimal string up to 65535.
fn port_value(text: &str) -> Result<(), String> {
    match text.parse::<u32>() {
        Ok(n) if n <= 65535 => Ok(()),
        _ => Err(format!(
            "bad port {text:?}: a number from 0 to 65535, written as a string"
        )),
    }
}

fn is_path_field(field: &str) -> bool {
    matches!(field, "paths" | "notPaths")
}

/// Istio's path templates: `{*}` matches one segment, `{**}` any number of them.
fn is_path_template(path: &str) -> bool {
    path.contains("{*}") || path.contains("{**}")
}

/// Templates may not name variables (`{x}`, `{x=*}`) nor mix in bare `*` segments.
fn path_template(path: &str) -> Result<(), String> {
    let unsupported =
        regex::Regex::new(r"/\{\w+=\*\*?\}|\{\w*\}|/\*\*?|\*\*?/").map_err(|e| e.to_string())?;
    if unsupported.is_match(path) {
        return Err(format!(
            "unsupported path template {path:?}: use {{*}} for one segment and {{**}} for the rest, with no named variables or bare '*' segments"
        ));
    }
    Ok(())
}

fn condition_rules(c: &Condition, action: Action, at: &FieldPath, v: &mut Validator<'_>) {
    if c.key.is_empty() {
        v.required(at.key("key"), false);
        return;
    }
    if c.values.is_empty() && c.not_values.is_empty() {
        v.error(
            at.clone(),
            format!("condition on {:?} needs values or notValues", c.key),
        );
        return;
    }
    if let Err(e) = attribute_key(&c.key) {
        v.error(at.key("key"), e);
        return;
    }
    for (name, values) in [("values", &c.values), ("notValues", &c.not_values)] {
        for (i, value) in values.iter().enumerate() {
            v.check(at.key(name).index(i), attribute_value(&c.key, value));
        }
    }
    let custom_unsupported = matches!(
        c.key.as_str(),
        "source.namespace" | "source.serviceAccount" | "source.principal"
    ) || c.key.starts_with("request.auth.");
    if action == Action::Custom && custom_unsupported {
        v.error(
            at.key("key"),
            format!("{:?} is not supported with action CUSTOM", c.key),
        );
    }
}

/// Whether Istio knows the attribute `key` names.
fn attribute_key(key: &str) -> Result<(), String> {
    for known in KNOWN_KEYS {
        match known.strip_suffix("[...]") {
            None if key == known => return Ok(()),
            Some(prefix) if key.starts_with(prefix.trim_end_matches('*')) => return map_key(key),
            _ => {}
        }
    }
    match key {
        "destination.namespace" => Err(format!(
            "attribute {key:?} is not supported: the policy's own metadata.namespace sets it"
        )),
        k if k.starts_with("destination.labels") => Err(format!(
            "attribute {key:?} is not supported: use the policy's selector"
        )),
        "destination.name" | "destination.user" => Err(format!(
            "attribute {key:?} was only supported by the old v1alpha1 API"
        )),
        _ => {
            let known: Vec<String> = KNOWN_KEYS
                .iter()
                .map(|k| k.split('[').next().unwrap_or(k).to_string())
                .collect();
            let base = key.split('[').next().unwrap_or(key);
            Err(match crate::load::did_you_mean(base, &known) {
                Some(k) => format!("unknown attribute {key:?} (did you mean {k:?}?)"),
                None => format!(
                    "unknown attribute {key:?}; known keys: {}",
                    KNOWN_KEYS.join(", ")
                ),
            })
        }
    }
}

/// `a[b]`: a name in brackets after the attribute.
fn map_key(key: &str) -> Result<(), String> {
    match key.find('[') {
        Some(open) if open > 0 && key.ends_with(']') && open < key.len() - 2 => Ok(()),
        _ => Err(format!(
            "bad key {key:?}: write the name in brackets, e.g. request.headers[User-Agent] or request.auth.claims[iss]"
        )),
    }
}

fn attribute_value(key: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("empty value for {key:?}"));
    }
    match key {
        "source.ip" | "remote.ip" | "destination.ip" => ip_value(value),
        "destination.port" => port_value(value),
        _ => Ok(()),
    }
}
