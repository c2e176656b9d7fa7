//! `WasmPlugin` (extensions.istio.io v1alpha1): a WebAssembly module the proxies of some
//! workloads fetch and run as an HTTP or network filter.

use std::collections::BTreeSet;

use serde::Deserialize;

use crate::common::{PolicyScope, PolicyTargetReference, WorkloadSelector};
use crate::path::FieldPath;
use crate::security::request_authentication::uri;
use crate::validate::{self, Validate, Validator};

/// The spec of a WasmPlugin.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WasmPlugin {
    /// Workloads that run the plugin.
    pub selector: Option<WorkloadSelector>,
    /// A Gateway, Service or ServiceEntry the plugin attaches to instead of a selector.
    pub target_ref: Option<PolicyTargetReference>,
    /// Several of those.
    #[serde(default)]
    pub target_refs: Vec<PolicyTargetReference>,
    /// Where the module comes from: `oci://`, `http(s)://` or `file://` (no scheme: OCI).
    #[serde(default)]
    pub url: String,
    /// The module's (or image's) SHA-256, 64 lowercase hex digits.
    pub sha256: Option<String>,
    /// When the module is fetched again (default: IfNotPresent, Always for `latest` tags).
    pub image_pull_policy: Option<PullPolicy>,
    /// A Secret in the plugin's namespace with registry credentials (OCI only).
    pub image_pull_secret: Option<String>,
    /// Deprecated and unused by Istio; accepted so that old manifests load.
    pub verification_key: Option<String>,
    /// Passed to the plugin as is.
    pub plugin_config: Option<serde_json::Value>,
    /// The plugin's root id inside the module.
    pub plugin_name: Option<String>,
    /// Where in the filter chain the plugin is inserted.
    pub phase: Option<PluginPhase>,
    /// Order among the plugins of one phase: higher runs first.
    pub priority: Option<i32>,
    /// Settings of the Wasm VM the plugin runs in.
    pub vm_config: Option<VmConfig>,
    /// Which traffic the plugin sees; all traffic when empty.
    #[serde(default, rename = "match")]
    pub match_: Vec<TrafficSelector>,
    /// What happens when the plugin fails fatally (default: FAIL_CLOSE).
    pub fail_strategy: Option<FailStrategy>,
    /// HTTP or network filter (default: HTTP).
    #[serde(rename = "type")]
    pub type_: Option<PluginType>,
}

/// When the module is fetched again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum PullPolicy {
    /// Not set: IfNotPresent, or Always for a `latest` tag.
    #[default]
    #[serde(rename = "UNSPECIFIED_POLICY")]
    Unspecified,
    /// Fetch only when the module is not cached.
    #[serde(rename = "IfNotPresent")]
    IfNotPresent,
    /// Fetch every time the plugin is applied.
    #[serde(rename = "Always")]
    Always,
}

/// Where the filter goes: before authentication, before authorization, or before stats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PluginPhase {
    /// Not set: last in the HTTP chain, before the router.
    #[default]
    UnspecifiedPhase,
    /// Before Istio's authentication filters.
    Authn,
    /// Before Istio's authorization filters.
    Authz,
    /// Before Istio's stats filter.
    Stats,
}

/// What happens when the plugin fails fatally.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FailStrategy {
    /// Fail the request (HTTP 5xx or connection reset).
    #[default]
    FailClose,
    /// Skip the plugin and carry on.
    FailOpen,
    /// Reload the VM and retry.
    FailReload,
}

/// An HTTP or a network filter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PluginType {
    /// Not set: an HTTP filter.
    #[default]
    UnspecifiedPluginType,
    /// An HTTP filter.
    Http,
    /// A network (L4) filter.
    Network,
}

/// `vmConfig: {env: [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VmConfig {
    /// Variables injected into the VM.
    #[serde(default)]
    pub env: Vec<EnvVar>,
}

/// An environment variable of the Wasm VM.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvVar {
    /// The variable's name, unique in the list.
    #[serde(default)]
    pub name: String,
    /// The value, with valueFrom INLINE.
    pub value: Option<String>,
    /// Where the value comes from (default: INLINE).
    #[serde(default)]
    pub value_from: EnvValueSource,
}

/// Whether the value is written inline or taken from the proxy's own environment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EnvValueSource {
    /// The value written in `value`.
    #[default]
    Inline,
    /// The proxy's own environment variable of the same name.
    Host,
}

/// `match: [{mode, ports}]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrafficSelector {
    /// Traffic direction (default: all).
    pub mode: Option<WorkloadMode>,
    /// Destination ports; all ports when empty.
    #[serde(default)]
    pub ports: Vec<PortSelector>,
}

/// The traffic direction a WasmPlugin match selects.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WorkloadMode {
    /// Not set: both directions.
    #[default]
    Undefined,
    /// Outbound traffic of the workload.
    Client,
    /// Inbound traffic of the workload.
    Server,
    /// Both directions.
    ClientAndServer,
}

/// `ports: [{number}]`, with the number required.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortSelector {
    /// The port number, 1-65535.
    pub number: Option<u32>,
}

/// Schemes Istio fetches modules with; the empty scheme is a bare path.
const SCHEMES: [&str; 5] = ["", "http", "https", "oci", "file"];
const MAX_PULL_SECRET: usize = 253;
const MAX_PLUGIN_NAME: usize = 256;
const MAX_ENV_NAME: usize = 256;
const MAX_ENV_VALUE: usize = 2048;
const MAX_ENV: usize = 256;

impl Validate for WasmPlugin {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        PolicyScope {
            selector: self.selector.as_ref(),
            target_ref: self.target_ref.as_ref(),
            target_refs: &self.target_refs,
        }
        .validate(at, v);
        let scheme = match plugin_url(&self.url) {
            Ok((scheme, note)) => {
                if let Some(note) = note {
                    v.warn(at.key("url"), note);
                }
                Some(scheme)
            }
            Err(e) => {
                v.error(at.key("url"), e);
                None
            }
        };
        if let Some(sha) = &self.sha256 {
            v.check(at.key("sha256"), sha256(sha));
        }
        if let Some(secret) = &self.image_pull_secret {
            let p = at.key("imagePullSecret");
            if secret.is_empty() || secret.len() > MAX_PULL_SECRET {
                v.error(p, format!("imagePullSecret must be 1-{MAX_PULL_SECRET} characters: the name of a Secret"));
            } else if scheme
                .as_deref()
                .is_some_and(|s| s != "oci" && !s.is_empty())
            {
                v.warn(
                    p,
                    "imagePullSecret is only used to pull OCI images (oci:// URLs)",
                );
            }
        }
        if let Some(name) = self
            .plugin_name
            .as_ref()
            .filter(|n| n.is_empty() || n.len() > MAX_PLUGIN_NAME)
        {
            v.error(
                at.key("pluginName"),
                format!(
                    "pluginName must be 1-{MAX_PLUGIN_NAME} characters ({} given)",
                    name.len()
                ),
            );
        }
        if let Some(vm) = &self.vm_config {
            vm_config(&at.key("vmConfig"), vm, v);
        }
        for (i, m) in self.match_.iter().enumerate() {
            traffic_selector(&at.key("match").index(i), m, v);
        }
    }
}

/// Checks the module URL as Istio does and returns its scheme (lower case; empty for a
/// bare path), with a warning when Istio only accepts it by reading it as `http://` + text.
fn plugin_url(text: &str) -> Result<(String, Option<String>), String> {
    let bad = |why: String| {
        Err(format!(
            "invalid url {text:?}: {why} (write e.g. oci://registry.example.com/plugin:v1, https://example.com/plugin.wasm or file:///opt/plugin.wasm)"
        ))
    };
    if text.is_empty() {
        return Err(
            "url is required: where to fetch the module, e.g. oci://registry.example.com/plugin:v1"
                .into(),
        );
    }
    // Like Go's url.ParseRequestURI: an absolute path or `scheme:/...` stands on its own;
    // anything else (or what fails that way) is retried as `http://` + text.
    let direct = if text.starts_with('/') {
        Some(("", uri::parse(text)))
    } else {
        uri::split_scheme(text)
            .filter(|(_, rest)| rest.starts_with('/'))
            .map(|(scheme, _)| (scheme, uri::parse(text)))
    };
    let mut note = None;
    let scheme = match direct {
        Some((scheme, Ok(_))) => scheme.to_ascii_lowercase(),
        Some((scheme, Err(e))) => match uri::parse(&format!("http://{text}")) {
            Ok(_) => {
                note = Some(format!(
                    "url {text:?} is not a valid {scheme} URL ({e}); Istio falls back to reading it as http://{text}"
                ));
                "http".to_string()
            }
            Err(_) => return bad(e),
        },
        None => match uri::parse(&format!("http://{text}")) {
            Ok(_) => "http".to_string(),
            Err(e) => return bad(e),
        },
    };
    if !SCHEMES.contains(&scheme.as_str()) {
        return bad(format!(
            "scheme {scheme:?} is not supported; use oci, http, https or file"
        ));
    }
    Ok((scheme, note))
}

fn sha256(text: &str) -> Result<(), String> {
    if text.is_empty()
        || (text.len() == 64
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    {
        return Ok(());
    }
    let hint = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        " (use lower-case hex digits)"
    } else if text.starts_with("sha256:") {
        " (leave out the \"sha256:\" prefix)"
    } else {
        ""
    };
    Err(format!(
        "sha256 {text:?} must be 64 lower-case hex digits{hint}"
    ))
}

fn vm_config(at: &FieldPath, vm: &VmConfig, v: &mut Validator<'_>) {
    let env = at.key("env");
    if vm.env.len() > MAX_ENV {
        v.error(
            env.clone(),
            format!("at most {MAX_ENV} env entries are allowed"),
        );
    }
    let mut seen = BTreeSet::new();
    for (i, e) in vm.env.iter().enumerate() {
        let p = env.index(i);
        if e.name.is_empty() || e.name.len() > MAX_ENV_NAME {
            v.error(
                p.key("name"),
                format!("env name must be 1-{MAX_ENV_NAME} characters"),
            );
        } else if !seen.insert(e.name.as_str()) {
            v.error(p.key("name"), format!("duplicate env name {:?}", e.name));
        }
        if let Some(value) = &e.value {
            if e.value_from == EnvValueSource::Host {
                v.error(
                    p.key("value"),
                    "value may only be set when valueFrom is INLINE (HOST takes the proxy's own variable)",
                );
            }
            if value.len() > MAX_ENV_VALUE {
                v.error(
                    p.key("value"),
                    format!("env value is longer than {MAX_ENV_VALUE} characters"),
                );
            }
        }
    }
}

fn traffic_selector(at: &FieldPath, m: &TrafficSelector, v: &mut Validator<'_>) {
    let mut seen = BTreeSet::new();
    for (i, port) in m.ports.iter().enumerate() {
        let p = at.key("ports").index(i).key("number");
        match port.number {
            None => v.required(p, false),
            Some(n) => {
                v.check(p.clone(), validate::port(n));
                if !seen.insert(n) {
                    v.error(p, format!("port {n} is listed twice"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
