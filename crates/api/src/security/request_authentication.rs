//! `RequestAuthentication` (security.istio.io v1 and v1beta1): the JWTs a workload's
//! proxy validates, where it finds them and what it does with their claims.

pub(crate) mod uri;

use serde::Deserialize;

use crate::common::{PolicyScope, PolicyTargetReference, WorkloadSelector};
use crate::path::FieldPath;
use crate::validate::{self, Duration, Validate, Validator};

/// The spec of a RequestAuthentication.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestAuthentication {
    /// Workloads the policy applies to.
    pub selector: Option<WorkloadSelector>,
    /// A Gateway, Service or ServiceEntry the policy attaches to instead of a selector.
    pub target_ref: Option<PolicyTargetReference>,
    /// Several of those.
    #[serde(default)]
    pub target_refs: Vec<PolicyTargetReference>,
    /// The tokens that are accepted; a request may carry none (see AuthorizationPolicy).
    #[serde(default)]
    pub jwt_rules: Vec<JwtRule>,
}

/// One accepted issuer and how its tokens are checked and used (Istio's `JWTRule`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtRule {
    /// The `iss` claim tokens must carry.
    pub issuer: Option<String>,
    /// Accepted `aud` values; empty accepts the service's own name.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Where the key set is fetched from (http or https).
    pub jwks_uri: Option<String>,
    /// The snake_case spelling the CRD schema also accepts for `jwksUri`.
    #[serde(rename = "jwks_uri")]
    pub jwks_uri_snake: Option<String>,
    /// The key set inline, as JSON text.
    pub jwks: Option<String>,
    /// Headers the token may come in (default: `Authorization: Bearer`).
    #[serde(default)]
    pub from_headers: Vec<JwtHeader>,
    /// Query parameters the token may come in.
    #[serde(default)]
    pub from_params: Vec<String>,
    /// Cookies the token may come in.
    #[serde(default)]
    pub from_cookies: Vec<String>,
    /// A header to put the verified payload in (base64url).
    pub output_payload_to_header: Option<String>,
    /// Whether the token is passed on to the application.
    pub forward_original_token: Option<bool>,
    /// Claims copied into request headers.
    #[serde(default)]
    pub output_claim_to_headers: Vec<ClaimToHeader>,
    /// How long fetching the key set may take.
    pub timeout: Option<Duration>,
    /// Claims whose space-separated string value is matched as a list (besides `scope`
    /// and `permission`).
    #[serde(default)]
    pub space_delimited_claims: Vec<String>,
}

/// `fromHeaders: [{name, prefix}]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtHeader {
    /// The header name.
    #[serde(default)]
    pub name: String,
    /// Stripped before the token is decoded, e.g. `"Bearer "`.
    pub prefix: Option<String>,
}

/// `outputClaimToHeaders: [{header, claim}]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimToHeader {
    /// The header to create, letters, digits, '-' and '_'.
    #[serde(default)]
    pub header: String,
    /// The claim to copy; nested claims are written with dots.
    #[serde(default)]
    pub claim: String,
}

/// The CRD caps the number of JWT rules.
const MAX_JWT_RULES: usize = 4096;
/// And the length of a JWKS URI.
const MAX_JWKS_URI: usize = 2048;

impl Validate for RequestAuthentication {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        PolicyScope {
            selector: self.selector.as_ref(),
            target_ref: self.target_ref.as_ref(),
            target_refs: &self.target_refs,
        }
        .validate(at, v);
        let rules = at.key("jwtRules");
        if self.jwt_rules.len() > MAX_JWT_RULES {
            v.error(
                rules.clone(),
                format!("at most {MAX_JWT_RULES} jwtRules are allowed"),
            );
        }
        for (i, rule) in self.jwt_rules.iter().enumerate() {
            rule.validate(&rules.index(i), v);
        }
    }
}

impl Validate for JwtRule {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        self.key_source_rules(at, v);
        for (i, aud) in self.audiences.iter().enumerate() {
            let p = at.key("audiences").index(i);
            if aud.is_empty() {
                v.error(p, "audience must not be empty");
            } else if aud.split_whitespace().nth(1).is_some() {
                v.warn(
                    p,
                    format!(
                        "audience {aud:?} contains whitespace, so it is one audience, not several (YAML joins an indented next line into the same item; start each audience with '- ')"
                    ),
                );
            }
        }
        for (i, header) in self.from_headers.iter().enumerate() {
            let p = at.key("fromHeaders").index(i);
            v.required(p.key("name"), !header.name.is_empty());
        }
        non_empty_items(
            &at.key("fromParams"),
            &self.from_params,
            "query parameter",
            v,
        );
        non_empty_items(&at.key("fromCookies"), &self.from_cookies, "cookie name", v);
        non_empty_items(
            &at.key("spaceDelimitedClaims"),
            &self.space_delimited_claims,
            "claim name",
            v,
        );
        for (i, out) in self.output_claim_to_headers.iter().enumerate() {
            claim_to_header(&at.key("outputClaimToHeaders").index(i), out, v);
        }
        if let Some(timeout) = self.timeout {
            v.check(at.key("timeout"), validate::duration_ms(timeout));
        }
    }
}

impl JwtRule {
    /// `issuer`, `jwksUri` / `jwks_uri` and `jwks`: who issues the tokens and where the
    /// keys come from.
    fn key_source_rules(&self, at: &FieldPath, v: &mut Validator<'_>) {
        if self.issuer.as_deref() == Some("") {
            v.error(at.key("issuer"), "issuer must not be empty");
        }
        let uris = [
            ("jwksUri", self.jwks_uri.as_deref()),
            ("jwks_uri", self.jwks_uri_snake.as_deref()),
        ];
        let has_uri = uris.iter().any(|(_, u)| u.is_some_and(|u| !u.is_empty()));
        if self.issuer.as_deref().unwrap_or("").is_empty() && !has_uri {
            v.error(
                at.key("issuer"),
                "set issuer (the iss claim tokens carry) or jwksUri: a rule needs one of them",
            );
        }
        let sources: Vec<&str> = uris
            .iter()
            .chain(&[("jwks", self.jwks.as_deref())])
            .filter_map(|(name, value)| value.map(|_| *name))
            .collect();
        for extra in sources.iter().skip(1) {
            v.error(
                at.key(extra),
                format!(
                    "set only one of jwks and jwksUri ({} is set too)",
                    sources[0]
                ),
            );
        }
        for (name, uri) in uris {
            if let Some(uri) = uri {
                v.check(at.key(name), jwks_uri(uri));
            }
        }
        if let Some(jwks) = &self.jwks {
            match jwks_keys(jwks) {
                Ok(0) => v.warn(
                    at.key("jwks"),
                    "jwks holds no keys, so every token is rejected",
                ),
                Ok(_) => {}
                Err(e) => v.error(at.key("jwks"), e),
            }
        }
    }
}

fn non_empty_items(at: &FieldPath, items: &[String], what: &str, v: &mut Validator<'_>) {
    for (i, item) in items.iter().enumerate() {
        if item.is_empty() {
            v.error(at.index(i), format!("{what} must not be empty"));
        }
    }
}

fn claim_to_header(at: &FieldPath, out: &ClaimToHeader, v: &mut Validator<'_>) {
    v.required(at.key("claim"), !out.claim.is_empty());
    if out.header.is_empty() {
        v.required(at.key("header"), false);
    } else if !validate::is_header_name(&out.header) {
        v.error(
            at.key("header"),
            format!(
                "invalid header name {:?}: letters, digits, '-' and '_' only (pseudo-headers such as :authority cannot be set)",
                out.header
            ),
        );
    }
}

/// Istio fetches keys over http or https only.
fn jwks_uri(text: &str) -> Result<(), String> {
    let bad = |why: String| {
        Err(format!(
            "invalid jwksUri {text:?}: {why} (write e.g. https://example.com/.well-known/jwks.json)"
        ))
    };
    if text.is_empty() {
        return bad("empty".into());
    }
    if text.len() > MAX_JWKS_URI {
        return bad(format!("longer than {MAX_JWKS_URI} characters"));
    }
    let url = match uri::parse(text) {
        Ok(url) => url,
        Err(e) => return bad(e),
    };
    match url.scheme.map(str::to_ascii_lowercase).as_deref() {
        Some("http" | "https") => {}
        Some(other) => {
            return bad(format!(
                "scheme {other:?} is not supported, only http and https"
            ));
        }
        None => return bad("no scheme: it must start with https:// or http://".into()),
    }
    if url.host.is_empty() {
        return bad("no host".into());
    }
    Ok(())
}

/// The inline key set must be a JWK Set (`{"keys": [...]}`) or a single JWK, each key
/// naming its type (`kty`). Returns how many keys it holds.
fn jwks_keys(text: &str) -> Result<usize, String> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        format!("jwks is not valid JSON: {e} (paste the key set document, {{\"keys\": [...]}})")
    })?;
    let keys = match value.get("keys") {
        Some(serde_json::Value::Array(keys)) => keys.iter().collect(),
        Some(_) => return Err("jwks: \"keys\" must be a list of keys".into()),
        None if value.is_object() => vec![&value],
        None => return Err("jwks must be a JSON object: {\"keys\": [...]} or a single key".into()),
    };
    for (i, key) in keys.iter().enumerate() {
        if !key.get("kty").is_some_and(serde_json::Value::is_string) {
            return Err(format!(
                "jwks key {i} has no \"kty\" (key type such as RSA or EC)"
            ));
        }
    }
    Ok(keys.len())
}

#[cfg(test)]
mod tests;
