//! `ProxyConfig` (networking.istio.io/v1beta1): per-workload proxy settings — worker
//! threads, extra environment variables, the proxy image flavour — and Istio's rules.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::checks;
use crate::common::WorkloadSelector;
use crate::path::FieldPath;
use crate::validate::{Validate, Validator};

/// `ProxyConfig.spec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyConfig {
    /// The workloads it applies to; without it, every workload of the namespace (or of
    /// the mesh, in the root namespace).
    pub selector: Option<WorkloadSelector>,
    /// Worker threads; 0 means one per CPU core.
    pub concurrency: Option<i32>,
    #[serde(default)]
    pub environment_variables: BTreeMap<String, String>,
    pub image: Option<ProxyImage>,
}

/// `image`: which build of the proxy image to run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyImage {
    /// `default`, `debug` or `distroless`.
    pub image_type: Option<String>,
}

impl Validate for ProxyConfig {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        if let Some(sel) = &self.selector {
            checks::match_labels_selector(&at.key("selector"), sel, "ProxyConfig", v);
        }
        if let Some(n) = self.concurrency.filter(|n| *n < 0) {
            v.error(
                at.key("concurrency"),
                format!("concurrency {n} must not be negative (0 means one worker per CPU core)"),
            );
        }
        for (name, value) in &self.environment_variables {
            if value.len() > 2048 {
                v.error(
                    at.key("environmentVariables").key(name),
                    "environment variable values are limited to 2048 characters",
                );
            }
        }
    }
}

#[cfg(test)]
mod tests;
