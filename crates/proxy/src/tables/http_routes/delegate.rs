//! Delegation: a root route with `delegate: {name, namespace}` serves the HTTP routes of
//! that VirtualService (one without hosts) in its place, each merged with the root route
//! the way Istio merges them (`mergeHTTPRoutes`): the child's match must fit inside one of
//! the root's matches and is narrowed by it, and the child inherits what it leaves unset.
//! Children that conflict with the root are dropped.

use std::collections::BTreeMap;

use weft_api::common::StringMatch;
use weft_api::networking::virtual_service::{Delegate, HttpMatchRequest, HttpRoute};

use super::{RouteContext, applies_here, compile_route};
use crate::tables::clusters::Clusters;
use crate::tables::{Action, Route};

/// Compiles a delegating route into a group of the delegate's merged routes.
pub(super) fn compile(
    root: &HttpRoute,
    d: &Delegate,
    ctx: &RouteContext<'_>,
    clusters: &mut Clusters<'_>,
) -> Result<Option<Route>, String> {
    let namespace = if d.namespace.is_empty() {
        ctx.namespace
    } else {
        d.namespace.as_str()
    };
    let Some((child_obj, child)) = clusters.delegate(namespace, &d.name) else {
        return Err(format!(
            "delegate VirtualService {namespace}/{} not found (a delegate has no hosts): the route is skipped, as Istio does",
            d.name
        ));
    };
    if !exported_to(&child.export_to, child_obj.namespace(), ctx.namespace) {
        return Err(format!(
            "delegate VirtualService {namespace}/{} is not exported to namespace {}: the route is skipped",
            d.name, ctx.namespace
        ));
    }
    // Root matches that cannot apply here (another gateway or port) take no part.
    let mut root = root.clone();
    root.matches.retain(|m| applies_here(m, ctx));
    // The delegate's destinations and gateway names resolve in its own namespace.
    let child_ctx = RouteContext {
        namespace: child_obj.namespace(),
        ..ctx.clone()
    };
    let mut routes = Vec::new();
    for (j, c) in child.http.iter().enumerate() {
        let Some(merged) = merge_route(&root, c) else {
            continue;
        };
        match compile_route(&merged, &child_ctx, clusters) {
            Ok(Some(route)) => routes.push(route),
            Ok(None) => {}
            Err(e) => {
                return Err(format!(
                    "delegate {}/{}: spec.http[{j}]: {e}",
                    child_obj.namespace(),
                    child_obj.name()
                ));
            }
        }
    }
    Ok(Some(Route {
        name: root.name.clone(),
        matches: Vec::new(),
        action: Action::Delegate(routes),
        request_headers: Default::default(),
        response_headers: Default::default(),
        rewrite: None,
        cors: None,
        policy: Default::default(),
    }))
}

/// Istio's visibility of a delegate: everywhere when `exportTo` is empty or has `*`, its
/// own namespace for `.`, else the namespaces listed.
fn exported_to(export_to: &[String], own: &str, to: &str) -> bool {
    export_to.is_empty()
        || export_to
            .iter()
            .any(|e| e == "*" || e == to || (e == "." && own == to))
}

/// Istio's `mergeHTTPRoute`: `None` when the child's matches conflict with the root's.
fn merge_route(root: &HttpRoute, child: &HttpRoute) -> Option<HttpRoute> {
    let mut out = child.clone();
    out.matches = merge_matches(&root.matches, &child.matches)?;
    out.name = join_names(&root.name, &child.name);
    out.delegate = None;
    macro_rules! inherit {
        ($($field:ident),*) => {$(
            if out.$field.is_none() {
                out.$field = root.$field.clone();
            }
        )*};
    }
    inherit!(
        rewrite,
        timeout,
        retries,
        fault,
        mirror,
        mirror_percent,
        mirror_percentage,
        cors_policy,
        headers
    );
    if out.mirrors.is_empty() {
        out.mirrors = root.mirrors.clone();
    }
    Some(out)
}

fn join_names(root: &str, child: &str) -> String {
    match (root.is_empty(), child.is_empty()) {
        (_, true) => root.to_string(),
        (true, false) => child.to_string(),
        (false, false) => format!("{root}-{child}"),
    }
}

/// Every child match must fit inside at least one root match; the result has one match
/// per (child, root) pair that fits. No matches on either side keeps the other's.
fn merge_matches(
    root: &[HttpMatchRequest],
    child: &[HttpMatchRequest],
) -> Option<Vec<HttpMatchRequest>> {
    if root.is_empty() {
        return Some(child.to_vec());
    }
    if child.is_empty() {
        return Some(root.to_vec());
    }
    let mut out = Vec::new();
    for c in child {
        let before = out.len();
        for r in root.iter().filter(|r| !has_conflict(r, c)) {
            out.push(merge_match(r, c));
        }
        if out.len() == before {
            return None;
        }
    }
    Some(out)
}

/// The child's match with what it leaves unset taken from the root's; header, query and
/// without-header conditions of both apply (the child's win on the same name).
fn merge_match(root: &HttpMatchRequest, child: &HttpMatchRequest) -> HttpMatchRequest {
    let mut out = child.clone();
    out.name = join_names(&root.name, &child.name);
    for (mine, theirs) in [
        (&mut out.uri, &root.uri),
        (&mut out.scheme, &root.scheme),
        (&mut out.method, &root.method),
        (&mut out.authority, &root.authority),
    ] {
        if mine.is_none() {
            mine.clone_from(theirs);
        }
    }
    let union = |r: &BTreeMap<String, StringMatch>, c: &BTreeMap<String, StringMatch>| {
        let mut all = r.clone();
        all.extend(c.iter().map(|(k, v)| (k.clone(), v.clone())));
        all
    };
    out.headers = union(&root.headers, &child.headers);
    out.without_headers = union(&root.without_headers, &child.without_headers);
    out.query_params = union(&root.query_params, &child.query_params);
    if out.port.is_none_or(|p| p == 0) {
        out.port = root.port;
    }
    out
}

/// Istio's `hasConflict`: the child asks for something the root's match excludes.
fn has_conflict(root: &HttpMatchRequest, leaf: &HttpMatchRequest) -> bool {
    let pairs = [
        (&root.uri, &leaf.uri),
        (&root.scheme, &leaf.scheme),
        (&root.method, &leaf.method),
        (&root.authority, &leaf.authority),
    ];
    if pairs.iter().any(|(r, l)| conflict(r.as_ref(), l.as_ref())) {
        return true;
    }
    // Istio compares a child's withoutHeaders with the root's headers, as here.
    let keyed = [
        (&root.headers, &leaf.headers),
        (&root.headers, &leaf.without_headers),
        (&root.query_params, &leaf.query_params),
    ];
    if keyed
        .iter()
        .any(|(r, l)| l.iter().any(|(k, v)| conflict(r.get(k), Some(v))))
    {
        return true;
    }
    let ports = (root.port.unwrap_or(0), leaf.port.unwrap_or(0));
    root.ignore_uri_case != leaf.ignore_uri_case
        || (ports.0 > 0 && ports.1 > 0 && ports.0 != ports.1)
}

/// Istio's `stringMatchConflict`: regexes always conflict (they cannot be compared); an
/// exact root admits only the same exact value; a prefix root admits exact values and
/// prefixes that start with it.
fn conflict(root: Option<&StringMatch>, leaf: Option<&StringMatch>) -> bool {
    let (Some(root), Some(leaf)) = (root, leaf) else {
        return false;
    };
    let set = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    if set(&root.regex).is_some() || set(&leaf.regex).is_some() {
        return true;
    }
    if let Some(exact) = set(&root.exact) {
        return set(&leaf.prefix).is_some() || set(&leaf.exact) != Some(exact);
    }
    if let Some(prefix) = set(&root.prefix) {
        if let Some(p) = set(&leaf.prefix) {
            return !p.starts_with(&prefix);
        }
        if let Some(e) = set(&leaf.exact) {
            return !e.starts_with(&prefix);
        }
    }
    true
}

#[cfg(test)]
mod tests;
