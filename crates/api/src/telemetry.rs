//! `Telemetry` (telemetry.istio.io v1 and v1alpha1): which tracing, metrics and access
//! log providers a workload's proxy uses, and how.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::common::{PolicyScope, PolicyTargetReference, WorkloadSelector};
use crate::path::FieldPath;
use crate::validate::{self, Duration, Validate, Validator};

/// The spec of a Telemetry.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Telemetry {
    /// Workloads the settings apply to.
    pub selector: Option<WorkloadSelector>,
    /// A Gateway, Service or ServiceEntry the settings attach to instead of a selector.
    pub target_ref: Option<PolicyTargetReference>,
    /// Several of those.
    #[serde(default)]
    pub target_refs: Vec<PolicyTargetReference>,
    /// Tracing settings; only the first is used.
    #[serde(default)]
    pub tracing: Vec<Tracing>,
    /// Metrics settings, one per provider.
    #[serde(default)]
    pub metrics: Vec<Metrics>,
    /// Access logging settings.
    #[serde(default)]
    pub access_logging: Vec<AccessLogging>,
}

/// `providers: [{name}]`: an extension provider from MeshConfig.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProviderRef {
    /// The provider's name in MeshConfig `extensionProviders`.
    #[serde(default)]
    pub name: String,
}

/// Which direction of traffic a setting applies to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum WorkloadMode {
    /// Both directions (the default).
    #[default]
    #[serde(rename = "CLIENT_AND_SERVER")]
    ClientAndServer,
    /// Outbound traffic of the workload.
    #[serde(rename = "CLIENT")]
    Client,
    /// Inbound traffic of the workload.
    #[serde(rename = "SERVER")]
    Server,
}

/// `match: {mode}` of tracing and access logging.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModeSelector {
    /// Traffic direction (default: CLIENT_AND_SERVER).
    pub mode: Option<WorkloadMode>,
}

/// One tracing configuration.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tracing {
    /// Which traffic the settings apply to.
    #[serde(rename = "match")]
    pub match_: Option<ModeSelector>,
    /// Tracing providers; only one is supported.
    #[serde(default)]
    pub providers: Vec<ProviderRef>,
    /// Percentage of requests sampled when no upstream decision was made, 0–100.
    pub random_sampling_percentage: Option<f64>,
    /// Whether spans are not reported at all.
    pub disable_span_reporting: Option<bool>,
    /// Extra span tags, by tag name.
    #[serde(default)]
    pub custom_tags: BTreeMap<String, CustomTag>,
    /// Whether the request id decides sampling.
    pub use_request_id_for_trace_sampling: Option<bool>,
    /// Whether spans carry Istio's own tags.
    pub enable_istio_tags: Option<bool>,
}

/// One custom tag: set exactly one of its three sources.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomTag {
    /// A fixed value.
    pub literal: Option<LiteralTag>,
    /// An environment variable of the proxy.
    pub environment: Option<EnvironmentTag>,
    /// A request header.
    pub header: Option<HeaderTag>,
}

/// `literal: {value}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LiteralTag {
    /// The tag's value.
    #[serde(default)]
    pub value: String,
}

/// `environment: {name, defaultValue}`: an environment variable of the proxy.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvironmentTag {
    /// The variable's name.
    #[serde(default)]
    pub name: String,
    /// Used when the variable is not set.
    pub default_value: Option<String>,
}

/// `header: {name, defaultValue}`: a request header.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderTag {
    /// The header's name.
    #[serde(default)]
    pub name: String,
    /// Used when the header is absent.
    pub default_value: Option<String>,
}

/// One metrics configuration.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metrics {
    /// Metrics providers (e.g. prometheus).
    #[serde(default)]
    pub providers: Vec<ProviderRef>,
    /// Per-metric changes.
    #[serde(default)]
    pub overrides: Vec<MetricsOverrides>,
    /// How often metrics are reported (at least 1ms).
    pub reporting_interval: Option<Duration>,
}

/// Changes to some metrics: disable them or change their tags.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricsOverrides {
    /// Which metrics the override applies to; all when absent.
    #[serde(rename = "match")]
    pub match_: Option<MetricSelector>,
    /// Whether the metrics are not generated.
    pub disabled: Option<bool>,
    /// Tag changes, by tag name.
    #[serde(default)]
    pub tag_overrides: BTreeMap<String, TagOverride>,
}

/// Which metrics an override applies to: `metric` or `customMetric`, and a mode.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricSelector {
    /// One of Istio's standard metrics.
    pub metric: Option<IstioMetric>,
    /// Any other metric, by name.
    pub custom_metric: Option<String>,
    /// Traffic direction (default: CLIENT_AND_SERVER).
    pub mode: Option<WorkloadMode>,
}

/// Istio's standard metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum IstioMetric {
    /// Every standard metric.
    #[default]
    AllMetrics,
    /// `istio_requests_total`.
    RequestCount,
    /// `istio_request_duration_milliseconds`.
    RequestDuration,
    /// `istio_request_bytes`.
    RequestSize,
    /// `istio_response_bytes`.
    ResponseSize,
    /// `istio_tcp_connections_opened_total`.
    TcpOpenedConnections,
    /// `istio_tcp_connections_closed_total`.
    TcpClosedConnections,
    /// `istio_tcp_sent_bytes_total`.
    TcpSentBytes,
    /// `istio_tcp_received_bytes_total`.
    TcpReceivedBytes,
    /// `istio_request_messages_total` (gRPC).
    GrpcRequestMessages,
    /// `istio_response_messages_total` (gRPC).
    GrpcResponseMessages,
}

/// `tagOverrides: {name: {operation, value}}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TagOverride {
    /// Set or remove the tag (default: UPSERT).
    #[serde(default)]
    pub operation: TagOperation,
    /// A CEL expression giving the tag's value (UPSERT only).
    pub value: Option<String>,
}

/// Whether a tag override sets or removes the tag.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum TagOperation {
    /// Add or replace the tag.
    #[default]
    #[serde(rename = "UPSERT")]
    Upsert,
    /// Remove the tag.
    #[serde(rename = "REMOVE")]
    Remove,
}

/// One access logging configuration.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessLogging {
    /// Which traffic is logged.
    #[serde(rename = "match")]
    pub match_: Option<ModeSelector>,
    /// Access log providers (e.g. envoy, otel).
    #[serde(default)]
    pub providers: Vec<ProviderRef>,
    /// Whether logging is turned off.
    pub disabled: Option<bool>,
    /// Which requests are logged.
    pub filter: Option<AccessLogFilter>,
}

/// `filter: {expression}`: a CEL expression.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessLogFilter {
    /// The CEL expression.
    #[serde(default)]
    pub expression: String,
}

impl Validate for Telemetry {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        PolicyScope {
            selector: self.selector.as_ref(),
            target_ref: self.target_ref.as_ref(),
            target_refs: &self.target_refs,
        }
        .validate(at, v);
        let tracing = at.key("tracing");
        if self.tracing.len() > 1 {
            v.warn(
                tracing.index(1),
                "only the first tracing configuration is used: Istio does not support several",
            );
        }
        for (i, t) in self.tracing.iter().enumerate() {
            t.validate(&tracing.index(i), v);
        }
        for (i, m) in self.metrics.iter().enumerate() {
            m.validate(&at.key("metrics").index(i), v);
        }
        for (i, l) in self.access_logging.iter().enumerate() {
            l.validate(&at.key("accessLogging").index(i), v);
        }
    }
}

fn providers(at: &FieldPath, list: &[ProviderRef], v: &mut Validator<'_>) {
    for (i, p) in list.iter().enumerate() {
        v.required(at.index(i).key("name"), !p.name.is_empty());
    }
}

impl Validate for Tracing {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        providers(&at.key("providers"), &self.providers, v);
        if self.providers.len() > 1 {
            v.warn(
                at.key("providers").index(1),
                "only one tracing provider is used: Istio does not support several",
            );
        }
        if let Some(pct) = self.random_sampling_percentage {
            v.check(at.key("randomSamplingPercentage"), validate::percent(pct));
        }
        for (name, tag) in &self.custom_tags {
            custom_tag(&at.key("customTags").key(name), name, tag, v);
        }
    }
}

fn custom_tag(at: &FieldPath, name: &str, tag: &CustomTag, v: &mut Validator<'_>) {
    if name.is_empty() {
        v.error(at.clone(), "custom tag name must not be empty");
    }
    let set: Vec<&str> = [
        ("literal", tag.literal.is_some()),
        ("environment", tag.environment.is_some()),
        ("header", tag.header.is_some()),
    ]
    .into_iter()
    .filter_map(|(n, on)| on.then_some(n))
    .collect();
    match set.as_slice() {
        [] => v.warn(
            at.clone(),
            "custom tag sets none of literal, environment and header, so it adds nothing",
        ),
        [_] => {}
        [first, rest @ ..] => {
            for other in rest {
                v.error(
                    at.key(other),
                    format!("set only one of literal, environment and header ({first} is set too)"),
                );
            }
        }
    }
    if let Some(l) = &tag.literal {
        v.required(at.key("literal").key("value"), !l.value.is_empty());
    }
    if let Some(e) = &tag.environment {
        v.required(at.key("environment").key("name"), !e.name.is_empty());
    }
    if let Some(h) = &tag.header {
        v.required(at.key("header").key("name"), !h.name.is_empty());
    }
}

impl Validate for Metrics {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        providers(&at.key("providers"), &self.providers, v);
        if let Some(d) = self
            .reporting_interval
            .filter(|d| d.get() < std::time::Duration::from_millis(1))
        {
            v.error(
                at.key("reportingInterval"),
                format!("reportingInterval {d} must be at least 1ms"),
            );
        }
        for (i, o) in self.overrides.iter().enumerate() {
            o.validate(&at.key("overrides").index(i), v);
        }
    }
}

impl Validate for MetricsOverrides {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        if let Some(m) = &self.match_ {
            let p = at.key("match");
            if m.metric.is_some() && m.custom_metric.is_some() {
                v.error(
                    p.key("customMetric"),
                    "set only one of metric and customMetric",
                );
            }
            if m.custom_metric.as_deref() == Some("") {
                v.error(p.key("customMetric"), "customMetric must not be empty");
            }
        }
        for (name, tag) in &self.tag_overrides {
            let p = at.key("tagOverrides").key(name);
            if name.is_empty() {
                v.warn(p.clone(), "tag name is empty");
            }
            let has_value = tag.value.as_deref().is_some_and(|s| !s.is_empty());
            match tag.operation {
                TagOperation::Upsert if !has_value => v.error(
                    p.key("value"),
                    "value is required when operation is UPSERT (the default): a CEL expression such as request.host",
                ),
                TagOperation::Remove if tag.value.is_some() => v.error(
                    p.key("value"),
                    "value must not be set when operation is REMOVE",
                ),
                _ => {}
            }
        }
    }
}

impl Validate for AccessLogging {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        providers(&at.key("providers"), &self.providers, v);
        if let Some(f) = &self.filter {
            v.check(
                at.key("filter").key("expression"),
                cel_expression(&f.expression),
            );
        }
    }
}

/// A light syntax check of a CEL expression: not empty, brackets balanced, strings closed.
/// (Istio parses it with a full CEL parser; this catches the common slips.)
fn cel_expression(expr: &str) -> Result<(), String> {
    let bad = |why: &str| {
        Err(format!(
            "invalid CEL expression {expr:?}: {why} (e.g. response.code >= 400)"
        ))
    };
    if expr.trim().is_empty() {
        return bad("empty");
    }
    let mut stack = Vec::new();
    let mut chars = expr.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' => {
                let mut closed = false;
                while let Some(d) = chars.next() {
                    if d == '\\' {
                        chars.next();
                    } else if d == c {
                        closed = true;
                        break;
                    }
                }
                if !closed {
                    return bad("unterminated string");
                }
            }
            '(' | '[' | '{' => stack.push(c),
            ')' | ']' | '}' => {
                let want = match c {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                if stack.pop() != Some(want) {
                    return bad(&format!("unbalanced {c:?}"));
                }
            }
            _ => {}
        }
    }
    if let Some(open) = stack.pop() {
        return bad(&format!("unclosed {open:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
