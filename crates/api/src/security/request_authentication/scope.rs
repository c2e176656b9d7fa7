//! Which workloads a policy reaches: the `selector` / `targetRef` / `targetRefs` rules that
//! RequestAuthentication, AuthorizationPolicy, Telemetry and WasmPlugin share in Istio.

use crate::common::{PolicyTargetReference, WorkloadSelector};
use crate::path::FieldPath;
use crate::validate::{self, Validate, Validator};

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

/// How a policy picks its workloads.
pub(crate) struct Scope<'a> {
    pub selector: Option<&'a WorkloadSelector>,
    pub target_ref: Option<&'a PolicyTargetReference>,
    pub target_refs: &'a [PolicyTargetReference],
}

impl Scope<'_> {
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
            selector_rules(&at.key("selector"), selector, v);
        }
        if let Some(target) = self.target_ref {
            target_rules(&at.key("targetRef"), target, v);
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
            target_rules(&refs.index(i), target, v);
        }
    }
}

fn selector_rules(at: &FieldPath, selector: &WorkloadSelector, v: &mut Validator<'_>) {
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

fn target_rules(at: &FieldPath, target: &PolicyTargetReference, v: &mut Validator<'_>) {
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
