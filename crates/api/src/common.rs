//! Small types that several API groups share.

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
