//! A route's CORS policy, answered the way Envoy's CORS filter answers it with the policy
//! Istio compiles from `corsPolicy`: preflights whose origin is allowed are answered by the
//! proxy; actual requests from an allowed origin get the `Access-Control-*` response
//! headers; requests from other origins pass through untouched.

use http::Method;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;
use weft_api::networking::virtual_service::{CorsPolicy, UnmatchedPreflights};

use super::StrMatcher;

/// A compiled `corsPolicy`; list values are joined with `,` as Istio sends them to Envoy.
#[derive(Debug, Clone, Serialize)]
pub struct Cors {
    /// `allowOrigins` (or the deprecated exact `allowOrigin`).
    pub allow_origins: Vec<StrMatcher>,
    pub allow_methods: String,
    pub allow_headers: String,
    pub expose_headers: String,
    /// Seconds, as `Access-Control-Max-Age` carries it; empty when unset.
    pub max_age: String,
    pub allow_credentials: bool,
    /// `unmatchedPreflights`: FORWARD (the default) sends preflights from origins that are
    /// not allowed on to the upstream; IGNORE answers them without an allowed origin.
    pub forward_unmatched_preflights: bool,
}

/// What the CORS policy makes of a request before it is forwarded.
pub enum Verdict {
    /// Not a CORS request, or one from an origin that is not allowed: forward as is.
    Forward,
    /// An actual request from an allowed origin: forward, then add these response headers.
    Allowed(HeaderMap),
    /// A preflight the proxy answers itself with `200` and these headers.
    Preflight(HeaderMap),
}

impl Cors {
    pub fn compile(p: &CorsPolicy) -> Result<Cors, String> {
        let allow_origins = if p.allow_origins.is_empty() {
            p.allow_origin
                .iter()
                .map(|o| StrMatcher::Exact(o.clone()))
                .collect()
        } else {
            p.allow_origins
                .iter()
                .map(|m| StrMatcher::compile(m, false))
                .collect::<Result<_, _>>()
                .map_err(|e| format!("corsPolicy.allowOrigins: {e}"))?
        };
        Ok(Cors {
            allow_origins,
            allow_methods: p.allow_methods.join(","),
            allow_headers: p.allow_headers.join(","),
            expose_headers: p.expose_headers.join(","),
            max_age: p
                .max_age
                .map(|d| d.get().as_secs().to_string())
                .unwrap_or_default(),
            allow_credentials: p.allow_credentials == Some(true),
            forward_unmatched_preflights: p.unmatched_preflights
                != Some(UnmatchedPreflights::Ignore),
        })
    }

    /// Envoy: an origin is allowed when a matcher accepts it, or accepts `*` (which then
    /// allows every origin).
    pub fn allows(&self, origin: &str) -> bool {
        self.allow_origins
            .iter()
            .any(|m| m.matches("*", false) || m.matches(origin, false))
    }

    /// Decides what to do with a request (method and headers).
    pub fn verdict(&self, method: &Method, headers: &HeaderMap) -> Verdict {
        let Some(origin) = headers.get(header::ORIGIN).filter(|o| !o.is_empty()) else {
            return Verdict::Forward;
        };
        let allowed = origin.to_str().is_ok_and(|o| self.allows(o));
        let requested_method = headers
            .get(header::ACCESS_CONTROL_REQUEST_METHOD)
            .filter(|m| !m.is_empty());
        let preflight = method == Method::OPTIONS && requested_method.is_some();
        if !preflight {
            return match allowed {
                true => Verdict::Allowed(self.actual_headers(origin)),
                false => Verdict::Forward,
            };
        }
        if !allowed && self.forward_unmatched_preflights {
            return Verdict::Forward;
        }
        let mut out = HeaderMap::new();
        if allowed {
            out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        }
        self.credentials(&mut out);
        let echo = |value: &str, request: Option<&HeaderValue>| match value {
            "*" => request.cloned(),
            "" => None,
            v => HeaderValue::try_from(v).ok(),
        };
        let requested_headers = headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS);
        let pairs = [
            (
                header::ACCESS_CONTROL_ALLOW_METHODS,
                echo(&self.allow_methods, requested_method),
            ),
            (
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                echo(&self.allow_headers, requested_headers),
            ),
            (header::ACCESS_CONTROL_MAX_AGE, echo(&self.max_age, None)),
        ];
        insert_all(&mut out, pairs);
        Verdict::Preflight(out)
    }

    /// The headers an actual request's response gets: the (allowed) origin, credentials,
    /// exposed headers.
    fn actual_headers(&self, origin: &HeaderValue) -> HeaderMap {
        let mut out = HeaderMap::new();
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        self.credentials(&mut out);
        let expose = (!self.expose_headers.is_empty())
            .then(|| HeaderValue::try_from(self.expose_headers.as_str()).ok())
            .flatten();
        insert_all(&mut out, [(header::ACCESS_CONTROL_EXPOSE_HEADERS, expose)]);
        out
    }

    fn credentials(&self, out: &mut HeaderMap) {
        if self.allow_credentials {
            out.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }
}

fn insert_all<const N: usize>(out: &mut HeaderMap, pairs: [(HeaderName, Option<HeaderValue>); N]) {
    for (name, value) in pairs {
        if let Some(v) = value {
            out.insert(name, v);
        }
    }
}
