//! Small types that several API groups share, and the `selector` / `targetRef(s)` rules of
//! the policies that use them.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::path::FieldPath;
use crate::validate::{self, Validate, Validator};

/// `selector: {matchLabels: {...}}`: which workloads a policy applies to. An empty
/// selector selects every workload of the namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadSelector {
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
}

impl Validate for WorkloadSelector {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        validate::labels(&at.key("matchLabels"), &self.match_labels, v);
    }
}

/// `targetRef` / `targetRefs`: a policy attached to a Gateway API resource instead of a
/// workload selector.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyTargetReference {
    #[serde(default)]
    pub group: String,
    pub kind: String,
    pub name: String,
    #[serde(default)]
    pub namespace: String,
}

impl Validate for PolicyTargetReference {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        v.required(at.key("kind"), !self.kind.is_empty());
        v.required(at.key("name"), !self.name.is_empty());
        if !self.namespace.is_empty() && self.namespace != v.namespace {
            v.error(
                at.key("namespace"),
                "a policy can only target resources in its own namespace",
            );
        }
    }
}

/// The namespace Istio installs into and treats as the mesh's root namespace by default.
const ROOT_NAMESPACE: &str = "istio-system";

/// Istio caps `targetRefs` at 16 entries.
const MAX_TARGET_REFS: usize = 16;

/// The kinds a policy may be attached to with `targetRef(s)`: (group, kind), with `""` for
/// Kubernetes' core group.
const TARGET_KINDS: [(&str, &str); 4] = [
    ("", "Service"),
    ("networking.istio.io", "ServiceEntry"),
    ("gateway.networking.k8s.io", "Gateway"),
    ("gateway.networking.k8s.io", "GatewayClass"),
];

/// How a policy picks its workloads: the `selector` / `targetRef` / `targetRefs` fields
/// that RequestAuthentication, AuthorizationPolicy, PeerAuthentication (selector only),
/// Telemetry and WasmPlugin share, with Istio's rules for them.
pub(crate) struct PolicyScope<'a> {
    pub selector: Option<&'a WorkloadSelector>,
    pub target_ref: Option<&'a PolicyTargetReference>,
    pub target_refs: &'a [PolicyTargetReference],
}

impl PolicyScope<'_> {
    /// Checks the three fields of the policy whose spec is at `at`.
    pub(crate) fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        let set: Vec<&str> = [
            ("selector", self.selector.is_some()),
            ("targetRef", self.target_ref.is_some()),
            ("targetRefs", !self.target_refs.is_empty()),
        ]
        .into_iter()
        .filter_map(|(name, present)| present.then_some(name))
        .collect();
        if let [first, rest @ ..] = set.as_slice() {
            for other in rest {
                v.error(
                    at.key(other),
                    format!(
                        "set only one of selector, targetRef and targetRefs ({first} is set too)"
                    ),
                );
            }
        }
        if let Some(selector) = self.selector {
            policy_selector(&at.key("selector"), selector, v);
        }
        if let Some(target) = self.target_ref {
            policy_target(&at.key("targetRef"), target, v);
        }
        let refs = at.key("targetRefs");
        if self.target_refs.len() > MAX_TARGET_REFS {
            v.error(
                refs.clone(),
                format!(
                    "{} targetRefs given; at most {MAX_TARGET_REFS} are allowed",
                    self.target_refs.len()
                ),
            );
        }
        for (i, target) in self.target_refs.iter().enumerate() {
            policy_target(&refs.index(i), target, v);
        }
    }
}

fn policy_selector(at: &FieldPath, selector: &WorkloadSelector, v: &mut Validator<'_>) {
    selector.validate(at, v);
    if selector.match_labels.is_empty() {
        let reach = if v.namespace == ROOT_NAMESPACE {
            format!(
                "every workload in the mesh ({ROOT_NAMESPACE} is Istio's default root namespace)"
            )
        } else {
            format!("every workload in namespace {:?}", v.namespace)
        };
        v.warn(
            at.clone(),
            format!("selector has no matchLabels, so the policy applies to {reach}"),
        );
    }
}

fn policy_target(at: &FieldPath, target: &PolicyTargetReference, v: &mut Validator<'_>) {
    target.validate(at, v);
    if !target.namespace.is_empty() && target.namespace == v.namespace {
        v.error(
            at.key("namespace"),
            "leave namespace out: Istio refuses any targetRef namespace, even the policy's own",
        );
    }
    if !target.group.is_empty() && !validate::is_k8s_subdomain(&target.group) {
        v.error(
            at.key("group"),
            format!(
                "invalid group {:?}: lowercase DNS subdomain such as gateway.networking.k8s.io, or empty for the core group",
                target.group
            ),
        );
    }
    if target.kind.is_empty() {
        return;
    }
    let allowed = TARGET_KINDS
        .iter()
        .any(|(g, k)| *g == target.group && *k == target.kind);
    if !allowed {
        let mut msg = format!(
            "cannot target kind {:?} in group {:?}: a policy attaches to a Gateway or GatewayClass (group gateway.networking.k8s.io), a Service (group \"\") or a ServiceEntry (group networking.istio.io)",
            target.kind, target.group
        );
        if let Some((g, k)) = TARGET_KINDS
            .iter()
            .find(|(_, k)| k.eq_ignore_ascii_case(&target.kind))
        {
            msg.push_str(&format!(" (did you mean kind {k:?} with group {g:?}?)"));
        }
        v.error(at.key("kind"), msg);
    }
}

/// `percentage: {value: 12.5}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Percent {
    #[serde(default)]
    pub value: f64,
}

impl Validate for Percent {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        v.check(at.key("value"), validate::percent(self.value));
    }
}

/// `port: {number: 9080}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortSelector {
    #[serde(default)]
    pub number: u32,
}

impl Validate for PortSelector {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        v.check(at.key("number"), validate::port(self.number));
    }
}

/// `{exact: ..}`, `{prefix: ..}` or `{regex: ..}`. Istio accepts an empty match in some
/// places (a header that must merely be present), so this is a struct with one of three
/// fields set rather than an enum.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StringMatch {
    pub exact: Option<String>,
    pub prefix: Option<String>,
    pub regex: Option<String>,
}

/// Which kind of [`StringMatch`] is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringMatchKind<'a> {
    Exact(&'a str),
    Prefix(&'a str),
    Regex(&'a str),
}

impl StringMatch {
    /// The match that is set; `None` when the match is empty.
    pub fn get(&self) -> Option<StringMatchKind<'_>> {
        match (&self.exact, &self.prefix, &self.regex) {
            (Some(e), _, _) => Some(StringMatchKind::Exact(e)),
            (_, Some(p), _) => Some(StringMatchKind::Prefix(p)),
            (_, _, Some(r)) => Some(StringMatchKind::Regex(r)),
            _ => None,
        }
    }
}

impl Validate for StringMatch {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        let set = [
            self.exact.is_some(),
            self.prefix.is_some(),
            self.regex.is_some(),
        ];
        if set.iter().filter(|s| **s).count() > 1 {
            v.error(at.clone(), "set only one of exact, prefix and regex");
        }
        if let Some(r) = &self.regex {
            v.check(at.key("regex"), validate::regex(r));
        }
    }
}
