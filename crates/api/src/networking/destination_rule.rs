//! `DestinationRule`: the policies applied to traffic for a host once routing has chosen
//! it — named subsets of its endpoints, load balancing, connection pools, outlier
//! detection and client TLS — with Istio's rules for them.

mod traffic_policy;
mod traffic_rules;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

pub use traffic_policy::{
    ClientTlsMode, ClientTlsSettings, ConnectionPoolSettings, ConsistentHashLb, CookieAttribute,
    H2UpgradePolicy, Http2KeepAlive, HttpCookie, HttpSettings, LoadBalancerSettings,
    LocalityDistribute, LocalityFailover, LocalityLbSetting, Maglev, OutlierDetection,
    PortTrafficPolicy, ProxyProtocol, ProxyProtocolVersion, RetryBudget, RingHash, SimpleLb,
    TcpKeepalive, TcpSettings, TrafficPolicy, TunnelSettings, WarmupConfiguration,
};

use super::checks::{self, Exporter};
use crate::common::WorkloadSelector;
use crate::load::did_you_mean;
use crate::path::FieldPath;
use crate::validate::{self, DNS_LABEL_RULE, Validate, Validator};

/// `DestinationRule.spec`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DestinationRule {
    /// The service the rule applies to: a registry name, short (`reviews`) or fully
    /// qualified, optionally wildcarded (`*.example.com`).
    #[serde(default)]
    pub host: String,
    pub traffic_policy: Option<TrafficPolicy>,
    #[serde(default)]
    pub subsets: Vec<Subset>,
    #[serde(default)]
    pub export_to: Vec<String>,
    /// Restricts the rule to the selected client workloads of its namespace.
    pub workload_selector: Option<WorkloadSelector>,
}

/// `subsets[]`: a named version of the host — the endpoints whose labels match — with
/// its own traffic policy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Subset {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub traffic_policy: Option<TrafficPolicy>,
    /// `labels:` was written with no value under it.
    pub labels_is_null: bool,
    /// Fields Istio does not know that were written in the subset (the loader reports
    /// each as unknown; they matter when they look like mis-indented labels).
    pub unknown_fields: Vec<String>,
}

// Written by hand, not derived, to keep the fields Istio does not know: the classic
// mistake of labels not indented under `labels:` leaves them as siblings, and the rule
// needs their names to say so.
impl<'de> Deserialize<'de> for Subset {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(SubsetVisitor)
    }
}

struct SubsetVisitor;

impl<'de> Visitor<'de> for SubsetVisitor {
    type Value = Subset;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a subset: {name, labels, trafficPolicy}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Subset, A::Error> {
        let mut s = Subset::default();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "name" => s.name = map.next_value::<Option<String>>()?.unwrap_or_default(),
                "labels" => match map.next_value::<Option<BTreeMap<String, String>>>()? {
                    Some(labels) => s.labels = labels,
                    None => s.labels_is_null = true,
                },
                "trafficPolicy" => s.traffic_policy = map.next_value()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    s.unknown_fields.push(key);
                }
            }
        }
        Ok(s)
    }
}

impl Validate for DestinationRule {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        if self.host.is_empty() {
            v.error(
                at.key("host"),
                "host is required: the service this rule applies to (e.g. reviews or reviews.default.svc.cluster.local)",
            );
        } else {
            v.check(at.key("host"), validate::wildcard_host(&self.host));
        }
        if let Some(tp) = &self.traffic_policy {
            tp.validate(&at.key("trafficPolicy"), v);
        }
        let mut names = BTreeSet::new();
        for (i, s) in self.subsets.iter().enumerate() {
            let sat = at.key("subsets").index(i);
            if !s.name.is_empty() && !names.insert(s.name.as_str()) {
                v.error(
                    sat.key("name"),
                    format!(
                        "duplicate subset name {:?}: subset names must be unique",
                        s.name
                    ),
                );
            }
            s.validate(&sat, v);
        }
        let exporter = Exporter::DestinationRule {
            workload_selector: self.workload_selector.is_some(),
        };
        checks::export_to(&at.key("exportTo"), &self.export_to, exporter, v);
        if let Some(sel) = &self.workload_selector {
            checks::match_labels_selector(&at.key("workloadSelector"), sel, "DestinationRule", v);
        }
    }
}

impl Validate for Subset {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        if self.name.is_empty() {
            v.error(
                at.key("name"),
                "subset name is required (routes refer to the subset by it, e.g. name: v1)",
            );
        } else if !validate::is_dns_label(&self.name) {
            v.error(
                at.key("name"),
                format!("invalid subset name {:?}: {DNS_LABEL_RULE}", self.name),
            );
        }
        validate::labels(&at.key("labels"), &self.labels, v);
        self.check_label_indentation(at, v);
        if let Some(tp) = &self.traffic_policy {
            tp.validate(&at.key("trafficPolicy"), v);
        }
    }
}

impl Subset {
    /// Catches labels written beside `labels:` instead of under it (kubectl refuses the
    /// stray fields; here they would silently leave the subset matching every endpoint).
    fn check_label_indentation(&self, at: &FieldPath, v: &mut Validator<'_>) {
        let known = ["name".to_string(), "labels".into(), "trafficPolicy".into()];
        let (typos, stray): (Vec<&String>, Vec<&String>) = self
            .unknown_fields
            .iter()
            .partition(|f| did_you_mean(f, &known).is_some());
        if self.labels.is_empty() {
            for f in typos {
                let meant = did_you_mean(f, &known).unwrap_or_default();
                v.error(
                    at.key(f),
                    format!("unknown field {f:?} (did you mean {meant:?}?): as written, the subset has no labels and selects every endpoint"),
                );
            }
        }
        if self.labels.is_empty() && !stray.is_empty() {
            let names: Vec<String> = stray.iter().map(|f| format!("{f:?}")).collect();
            let lead = if self.labels_is_null {
                "\"labels:\" has no value"
            } else {
                "the subset has no labels"
            };
            v.error(
                at.key("labels"),
                format!(
                    "{lead}, and the subset has the unknown field(s) {}: these look like labels that are not indented under \"labels:\" (write them one level deeper, e.g. labels: {{{}: ...}})",
                    names.join(", "),
                    stray[0]
                ),
            );
        } else if self.labels_is_null {
            // An empty `labels:` is likely labels forgotten; no `labels` at all is the
            // idiom of Istio's egress-gateway task (a subset naming the whole host).
            v.warn(
                at.key("labels"),
                "\"labels:\" has no value: the subset selects every endpoint of the host",
            );
        }
    }
}

#[cfg(test)]
mod tests;
