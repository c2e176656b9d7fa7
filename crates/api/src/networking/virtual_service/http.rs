//! Istio's rules for one HTTP route (`validateHTTPRoute` and the checks it calls): what a
//! route does, its matches, header changes, CORS, faults, mirrors, redirects, direct
//! responses, retries, rewrites, destinations and timeouts.

use std::collections::BTreeMap;

use crate::common::{Percent, StringMatch};
use crate::diag::Diagnostic;
use crate::path::FieldPath;
use crate::validate::{self, Duration, Validator};

use super::names;
use super::rules::{Context, destination};
use super::{
    CorsPolicy, FaultAbort, FaultDelay, HeaderOperations, Headers, HttpDirectResponse,
    HttpFaultInjection, HttpMatchRequest, HttpRedirect, HttpRetry, HttpRewrite, HttpRoute,
    HttpRouteDestination,
};

pub(super) fn http_route(at: &FieldPath, r: &HttpRoute, ctx: &Context<'_>, v: &mut Validator<'_>) {
    actions(at, r, ctx, v);
    for (j, m) in r.matches.iter().enumerate() {
        match_request(&at.key("match").index(j), m, ctx, v);
    }
    if let Some(h) = &r.headers {
        headers(&at.key("headers"), h, v);
    }
    if let Some(cors) = &r.cors_policy {
        cors_policy(&at.key("corsPolicy"), cors, v);
    }
    if let Some(fault) = &r.fault {
        fault_injection(&at.key("fault"), fault, v);
    }
    mirrors(at, r, v);
    if let Some(redirect) = &r.redirect {
        http_redirect(&at.key("redirect"), redirect, v);
    }
    if let Some(dr) = &r.direct_response {
        direct_response(&at.key("directResponse"), dr, v);
    }
    if let Some(retries) = &r.retries {
        retry(&at.key("retries"), retries, v);
    }
    if let Some(rewrite) = &r.rewrite {
        http_rewrite(&at.key("rewrite"), rewrite, v);
    }
    authority_set_once(at, r, v);
    route_destinations(&at.key("route"), &r.route, v);
    if let Some(timeout) = r.timeout {
        duration(&at.key("timeout"), timeout, v);
    }
    if let Some(d) = &r.delegate {
        if d.name.is_empty() {
            v.warn(
                at.key("delegate").key("name"),
                "delegate has no name: no VirtualService will be found, so the route sends nothing",
            );
        }
        if !d.namespace.is_empty() && !validate::is_dns_label(&d.namespace) {
            v.warn(
                at.key("delegate").key("namespace"),
                format!(
                    "{:?} is not a valid namespace name: no VirtualService will be found",
                    d.namespace
                ),
            );
        }
    }
}

/// What a route does: forward (`route`), `redirect`, `directResponse` or `delegate`, and
/// which of the other fields go with each.
fn actions(at: &FieldPath, r: &HttpRoute, ctx: &Context<'_>, v: &mut Validator<'_>) {
    if r.delegate.is_some() && !ctx.delegate {
        if r.redirect.is_some() {
            v.error(
                at.key("redirect"),
                "a route that delegates cannot also redirect",
            );
        }
        if !r.route.is_empty() {
            v.error(
                at.key("route"),
                "a route that delegates cannot also have route destinations",
            );
        }
        return;
    }
    if r.delegate.is_some() {
        v.error(
            at.key("delegate"),
            "a delegate VirtualService (no hosts) cannot delegate again: only one level of delegation is supported",
        );
    }
    let answered_by = if r.redirect.is_some() {
        Some("redirect")
    } else if r.direct_response.is_some() {
        Some("directResponse")
    } else {
        None
    };
    match answered_by {
        Some(with) => local_answer_conflicts(at, r, with, v),
        None if r.route.is_empty() => v.error(
            at.key("route"),
            "the route does nothing: set route (destinations), redirect, directResponse or delegate",
        ),
        None => {}
    }
    if r.mirror.is_some() && !r.mirrors.is_empty() {
        v.error(at.key("mirrors"), "set only one of mirror and mirrors");
    }
}

/// A route that answers itself (`with`: redirect or directResponse) neither forwards,
/// injects faults nor rewrites.
fn local_answer_conflicts(at: &FieldPath, r: &HttpRoute, with: &str, v: &mut Validator<'_>) {
    for (field, set) in [
        ("route", !r.route.is_empty()),
        ("fault", r.fault.is_some()),
        ("rewrite", r.rewrite.is_some()),
        (
            "directResponse",
            with == "redirect" && r.direct_response.is_some(),
        ),
    ] {
        if set {
            v.error(
                at.key(field),
                format!(
                    "a route cannot have both {with} and {field}: {with} answers the request itself"
                ),
            );
        }
    }
}

fn match_request(at: &FieldPath, m: &HttpMatchRequest, ctx: &Context<'_>, v: &mut Validator<'_>) {
    for (field, map) in [
        ("headers", &m.headers),
        ("withoutHeaders", &m.without_headers),
    ] {
        for (name, sm) in map {
            let at = at.key(field).key(name);
            v.check(at.clone(), names::match_header_name(name));
            if names::is_claim_key(name) && !ctx.gateway_only {
                v.error(
                    at.clone(),
                    format!(
                        "JWT claim routing ({name:?}) only works on gateways: this VirtualService also applies to sidecars (no gateways, or `mesh` among them)"
                    ),
                );
            }
            // In withoutHeaders, regex "*" is not a regex: it means "header absent".
            if !(field == "withoutHeaders" && sm.regex.as_deref() == Some("*")) {
                string_match(&at, sm, false, v);
            }
        }
    }
    // Envoy accepts an empty path prefix, but not empty prefixes on other headers.
    for (field, sm, empty_prefix_ok) in [
        ("uri", &m.uri, true),
        ("scheme", &m.scheme, false),
        ("method", &m.method, false),
        ("authority", &m.authority, false),
    ] {
        let Some(sm) = sm else { continue };
        if sm.get().is_none() {
            v.warn(
                at.key(field),
                format!("{field} sets none of exact, prefix and regex: it matches every request"),
            );
        }
        string_match(&at.key(field), sm, empty_prefix_ok, v);
    }
    for (name, sm) in &m.query_params {
        string_match(&at.key("queryParams").key(name), sm, false, v);
    }
    l4_conditions(at, m.port, &m.source_labels, &m.gateways, v);
    if !m.source_namespace.is_empty() && !validate::is_dns_label(&m.source_namespace) {
        v.error(
            at.key("sourceNamespace"),
            format!(
                "invalid sourceNamespace {:?}: must be a namespace name",
                m.source_namespace
            ),
        );
    }
}

/// The conditions HTTP, TCP and TLS matches share: port, source labels, gateways.
pub(super) fn l4_conditions(
    at: &FieldPath,
    port: Option<u32>,
    labels: &BTreeMap<String, String>,
    gateways: &[String],
    v: &mut Validator<'_>,
) {
    if let Some(port) = port.filter(|p| *p != 0) {
        v.check(at.key("port"), validate::port(port));
    }
    validate::labels(&at.key("sourceLabels"), labels, v);
    names::gateway_names(&at.key("gateways"), gateways, v);
}

/// Istio's `validateStringMatch`: one kind at most, a valid regex of at most 1024
/// characters, and (except for the path) a non-empty prefix.
pub(super) fn string_match(
    at: &FieldPath,
    sm: &StringMatch,
    empty_prefix_ok: bool,
    v: &mut Validator<'_>,
) {
    let set = [&sm.exact, &sm.prefix, &sm.regex];
    if set.iter().filter(|s| s.is_some()).count() > 1 {
        v.error(at.clone(), "set only one of exact, prefix and regex");
    }
    if sm.prefix.as_deref() == Some("") && !empty_prefix_ok {
        v.error(at.key("prefix"), "prefix must not be empty");
    }
    if let Some(re) = &sm.regex {
        v.check(at.key("regex"), regex(re));
    }
}

/// A regex as Istio accepts it: RE2 syntax, at most 1024 characters (Envoy's program-size
/// limit, approximated by length).
pub(super) fn regex(re: &str) -> Result<(), String> {
    if re.len() > 1024 {
        return Err(format!(
            "regex is {} characters long; at most 1024 are allowed",
            re.len()
        ));
    }
    validate::regex(re).map_err(|e| format!("{e} (Istio uses RE2 syntax)"))
}

fn headers(at: &FieldPath, h: &Headers, v: &mut Validator<'_>) {
    if let Some(ops) = &h.request {
        header_operations(&at.key("request"), ops, true, v);
    }
    if let Some(ops) = &h.response {
        header_operations(&at.key("response"), ops, false, v);
    }
}

fn header_operations(at: &FieldPath, ops: &HeaderOperations, request: bool, v: &mut Validator<'_>) {
    for (field, map) in [("set", &ops.set), ("add", &ops.add)] {
        for (name, value) in map {
            let at = at.key(field).key(name);
            let name_ok = if request {
                names::settable_request_header(name)
            } else {
                names::changeable_header(name)
            };
            v.check(at.clone(), name_ok);
            v.check(at, names::header_value(value));
        }
    }
    for (i, name) in ops.remove.iter().enumerate() {
        v.check(at.key("remove").index(i), names::changeable_header(name));
    }
}

/// Istio's `validateAuthorityRewrite`: the authority is rewritten in one place only.
fn authority_set_once(at: &FieldPath, r: &HttpRoute, v: &mut Validator<'_>) {
    let mut current = r
        .rewrite
        .as_ref()
        .map(|rw| rw.authority.clone())
        .unwrap_or_default();
    let Some(ops) = r.headers.as_ref().and_then(|h| h.request.as_ref()) else {
        return;
    };
    for (field, map) in [("set", &ops.set), ("add", &ops.add)] {
        for (name, value) in map.iter().filter(|(k, _)| names::is_authority_header(k)) {
            if !current.is_empty() {
                v.error(
                    at.key("headers").key("request").key(field).key(name),
                    format!(
                        "the authority is already set to {current:?}; it cannot also be set to {value:?}: set it in one place"
                    ),
                );
                return;
            }
            current = value.clone();
        }
    }
}

fn cors_policy(at: &FieldPath, cors: &CorsPolicy, v: &mut Validator<'_>) {
    for (i, origin) in cors.allow_origins.iter().enumerate() {
        let at = at.key("allowOrigins").index(i);
        let value = origin
            .exact
            .as_deref()
            .or(origin.prefix.as_deref())
            .or(origin.regex.as_deref());
        if value.is_none_or(str::is_empty) {
            v.error(
                at.clone(),
                "an allowed origin needs a non-empty exact, prefix or regex",
            );
        }
        string_match(&at, origin, true, v);
    }
    if !cors.allow_origin.is_empty() {
        v.warn(
            at.key("allowOrigin"),
            "allowOrigin is deprecated: use allowOrigins: [{exact: ...}] (it is ignored when allowOrigins is set)",
        );
    }
    const METHODS: &[&str] = &[
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE",
    ];
    for (i, method) in cors.allow_methods.iter().enumerate() {
        if !METHODS.contains(&method.as_str()) {
            v.error(
                at.key("allowMethods").index(i),
                format!(
                    "{method:?} is not a supported HTTP method (use one of {}, in upper case)",
                    METHODS.join(", ")
                ),
            );
        }
    }
    for field in ["allowHeaders", "exposeHeaders"] {
        let list = if field == "allowHeaders" {
            &cors.allow_headers
        } else {
            &cors.expose_headers
        };
        for (i, name) in list.iter().enumerate() {
            v.check(at.key(field).index(i), names::cors_header_name(name));
        }
    }
    if let Some(max_age) = cors.max_age {
        let at = at.key("maxAge");
        if let Err(e) = validate::duration_ms(max_age) {
            v.error(at, e);
        } else if max_age.get().subsec_nanos() != 0 {
            v.error(
                at,
                format!("maxAge {max_age} must be a whole number of seconds"),
            );
        }
    }
}

fn fault_injection(at: &FieldPath, fault: &HttpFaultInjection, v: &mut Validator<'_>) {
    if fault.abort.is_none() && fault.delay.is_none() {
        v.error(at.clone(), "a fault needs an abort, a delay, or both");
    }
    if let Some(abort) = &fault.abort {
        fault_abort(&at.key("abort"), abort, v);
    }
    if let Some(delay) = &fault.delay {
        fault_delay(&at.key("delay"), delay, v);
    }
}

fn fault_abort(at: &FieldPath, abort: &FaultAbort, v: &mut Validator<'_>) {
    fault_share(
        at,
        abort.percentage.as_ref(),
        abort.percent,
        Fault::Abort,
        v,
    );
    let kinds = [
        abort.http_status.is_some(),
        abort.grpc_status.is_some(),
        abort.http2_error.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() > 1 {
        v.error(
            at.clone(),
            "set only one of httpStatus, grpcStatus and http2Error",
        );
    }
    if let Some(status) = abort.http_status {
        if !(200..=600).contains(&status) {
            v.error(
                at.key("httpStatus"),
                format!("HTTP status {status} is out of range (200-599)"),
            );
        }
    } else if let Some(status) = &abort.grpc_status {
        if !GRPC_STATUSES.contains(&status.as_str()) {
            v.error(
                at.key("grpcStatus"),
                format!("unknown gRPC status {status:?} (use a name such as UNAVAILABLE or NOT_FOUND: {})", GRPC_STATUSES.join(", ")),
            );
        }
    } else if abort.http2_error.is_some() {
        v.error(
            at.key("http2Error"),
            "http2Error aborts are not supported: use httpStatus or grpcStatus",
        );
    } else {
        v.warn(
            at.clone(),
            "abort sets none of httpStatus, grpcStatus and http2Error: no error is injected",
        );
    }
}

/// gRPC status names Istio accepts in `grpcStatus`, in the order of their codes (0-16).
pub const GRPC_STATUSES: &[&str] = &[
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

fn fault_delay(at: &FieldPath, delay: &FaultDelay, v: &mut Validator<'_>) {
    fault_share(
        at,
        delay.percentage.as_ref(),
        delay.percent,
        Fault::Delay,
        v,
    );
    match (delay.fixed_delay, delay.exponential_delay) {
        (Some(_), Some(_)) => v.error(
            at.clone(),
            "set only one of fixedDelay and exponentialDelay",
        ),
        (Some(d), None) => duration(&at.key("fixedDelay"), d, v),
        (None, Some(_)) => v.error(
            at.key("exponentialDelay"),
            "exponentialDelay is not supported: use fixedDelay",
        ),
        // Istio lets this through, but the proxy config it yields is refused (Envoy
        // requires the delay), so the fault would silently not apply.
        (None, None) => v.error(
            at.key("fixedDelay"),
            "a delay needs fixedDelay (e.g. fixedDelay: 5s)",
        ),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Fault {
    Abort,
    Delay,
}

/// The share of requests a fault applies to: `percentage` (0, or 0.0001-100), or the old
/// integer `percent`, accepted with a warning.
fn fault_share(
    at: &FieldPath,
    percentage: Option<&Percent>,
    percent: Option<i32>,
    kind: Fault,
    v: &mut Validator<'_>,
) {
    if let Some(p) = percentage {
        let x = p.value;
        if !(0.0..=100.0).contains(&x) || (x > 0.0 && x < 0.0001) {
            v.error(
                at.key("percentage").key("value"),
                format!("percentage {x} must be 0 or between 0.0001 and 100"),
            );
        }
    }
    let at_percent = at.key("percent");
    match (percentage, percent) {
        (Some(_), Some(_)) => v.warn(at_percent, "both percent and percentage are set: the deprecated percent is ignored"),
        // Current Istio has no `abort.percent` at all: it drops the field and aborts
        // nothing. Weft reads it as Istio 1.0 did, so old configs keep their meaning.
        (None, Some(n)) if kind == Fault::Abort => v.warn(
            at_percent,
            format!("percent is an Istio 1.0 field that current Istio no longer has (it would abort nothing); Weft reads it as percentage: write percentage: {{value: {n}}}"),
        ),
        (None, Some(n)) => v.warn(at_percent, format!("percent is deprecated: write percentage: {{value: {n}}}")),
        (None, None) => {
            let verb = if kind == Fault::Abort { "aborted" } else { "delayed" };
            v.warn(
                at.clone(),
                format!("no percentage: no request is {verb} (write percentage: {{value: 100}} to affect every request)"),
            );
        }
        (Some(_), None) => {}
    }
    if let Some(n) = percent.filter(|n| !(0..=100).contains(n)) {
        v.warn(at.key("percent"), format!("percent {n} is outside 0-100"));
    }
}

fn mirrors(at: &FieldPath, r: &HttpRoute, v: &mut Validator<'_>) {
    if let Some(n) = r.mirror_percent {
        if n > 100 {
            v.error(
                at.key("mirrorPercent"),
                format!("mirrorPercent {n} must be at most 100"),
            );
        }
        v.warn(
            at.key("mirrorPercent"),
            format!("mirrorPercent is deprecated: write mirrorPercentage: {{value: {n}}}"),
        );
    }
    if let Some(p) = &r.mirror_percentage {
        v.check(
            at.key("mirrorPercentage").key("value"),
            validate::percent(p.value),
        );
    }
    if let Some(d) = &r.mirror {
        destination(d, &at.key("mirror"), v);
    }
    for (i, m) in r.mirrors.iter().enumerate() {
        let at = at.key("mirrors").index(i);
        match &m.destination {
            Some(d) => destination(d, &at.key("destination"), v),
            None => v.required(at.key("destination"), false),
        }
        if let Some(p) = &m.percentage {
            v.check(
                at.key("percentage").key("value"),
                validate::percent(p.value),
            );
        }
    }
}

fn http_redirect(at: &FieldPath, r: &HttpRedirect, v: &mut Validator<'_>) {
    if r.uri.is_empty()
        && r.authority.is_empty()
        && r.port.is_none()
        && r.derive_port.is_none()
        && r.scheme.is_empty()
    {
        v.error(
            at.clone(),
            "a redirect must change something: set uri, authority, scheme, port or derivePort",
        );
    }
    if r.port.is_some() && r.derive_port.is_some() {
        v.error(at.clone(), "set only one of port and derivePort");
    }
    if r.redirect_code != 0 && !(300..=399).contains(&r.redirect_code) {
        v.error(
            at.key("redirectCode"),
            format!(
                "{} is not a redirect code: use a 3xx code such as 301, 302, 307 or 308",
                r.redirect_code
            ),
        );
    }
    if !matches!(r.scheme.as_str(), "" | "http" | "https") {
        v.error(
            at.key("scheme"),
            format!(
                "invalid redirect scheme {:?}: use \"http\" or \"https\"",
                r.scheme
            ),
        );
    }
    if let Some(port) = r.port.filter(|p| *p > 0) {
        v.check(at.key("port"), validate::port(port));
    }
}

fn direct_response(at: &FieldPath, dr: &HttpDirectResponse, v: &mut Validator<'_>) {
    if !(200..=600).contains(&dr.status) {
        v.error(
            at.key("status"),
            format!("HTTP status {} is out of range (200-599)", dr.status),
        );
    }
    let Some(body) = &dr.body else { return };
    let at = at.key("body");
    let size = match (&body.string, &body.bytes) {
        (Some(_), Some(_)) => {
            v.error(at.clone(), "set only one of string and bytes");
            return;
        }
        (Some(s), None) => s.len(),
        (None, Some(b)) => match base64_len(b) {
            Some(n) => n,
            None => {
                v.error(at.key("bytes"), "bytes must be base64-encoded");
                return;
            }
        },
        (None, None) => 0,
    };
    if size > 1024 * 1024 {
        v.error(
            at,
            format!("the body is {size} bytes; direct responses must be under 1MB"),
        );
    } else if size > 100 * 1024 {
        v.warn(
            at,
            format!("the body is {size} bytes: large direct responses slow down config pushes"),
        );
    }
}

/// The decoded length of standard or URL-safe base64 (padding optional), if it is base64.
fn base64_len(text: &str) -> Option<usize> {
    let body = text.trim_end_matches('=');
    let ok = text.len() - body.len() <= 2
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_'))
        && body.len() % 4 != 1;
    ok.then_some(body.len() * 3 / 4)
}

fn retry(at: &FieldPath, r: &HttpRetry, v: &mut Validator<'_>) {
    if r.attempts < 0 {
        v.error(
            at.key("attempts"),
            format!("attempts {} must not be negative", r.attempts),
        );
    }
    if r.attempts == 0
        && (r.per_try_timeout.is_some()
            || !r.retry_on.is_empty()
            || r.retry_remote_localities.is_some())
    {
        v.push(
            Diagnostic::error(
                at.key("attempts"),
                "attempts is 0 (retries off), yet perTryTimeout, retryOn or retryRemoteLocalities is set",
            )
            .with_hint("set attempts to the number of retries wanted (attempts defaults to 0 when left out)"),
        );
    }
    if let Some(d) = r.per_try_timeout {
        duration(&at.key("perTryTimeout"), d, v);
    }
    if let Some(d) = r.backoff {
        duration(&at.key("backoff"), d, v);
    }
    if !r.retry_on.is_empty() {
        names::retry_on(&at.key("retryOn"), &r.retry_on, v);
    }
}

fn http_rewrite(at: &FieldPath, r: &HttpRewrite, v: &mut Validator<'_>) {
    if !r.uri.is_empty() && r.uri_regex_rewrite.is_some() {
        v.error(at.clone(), "set only one of uri and uriRegexRewrite");
    }
    if r.uri.is_empty() && r.uri_regex_rewrite.is_none() && r.authority.is_empty() {
        v.error(
            at.clone(),
            "a rewrite must change something: set uri, uriRegexRewrite or authority",
        );
    }
    if let Some(rr) = &r.uri_regex_rewrite {
        let at = at.key("uriRegexRewrite");
        v.required(at.key("match"), !rr.regex.is_empty());
        v.required(at.key("rewrite"), !rr.rewrite.is_empty());
        if !rr.regex.is_empty() {
            v.check(at.key("match"), regex(&rr.regex));
        }
    }
}

fn route_destinations(at: &FieldPath, route: &[HttpRouteDestination], v: &mut Validator<'_>) {
    for (i, rd) in route.iter().enumerate() {
        let at = at.index(i);
        match &rd.destination {
            Some(d) => destination(d, &at.key("destination"), v),
            None => v.required(at.key("destination"), false),
        }
        if let Some(h) = &rd.headers {
            headers(&at.key("headers"), h, v);
        }
        v.check(at.key("weight"), weight(rd.weight));
    }
    total_weight(at, route.iter().map(|r| r.weight), v);
}

pub(super) fn weight(w: i32) -> Result<(), String> {
    if w < 0 {
        Err(format!("weight {w} must not be negative"))
    } else {
        Ok(())
    }
}

/// Istio normalises weights that do not sum to 100, but refuses several destinations that
/// all weigh nothing.
pub(super) fn total_weight(
    at: &FieldPath,
    weights: impl ExactSizeIterator<Item = i32>,
    v: &mut Validator<'_>,
) {
    let n = weights.len();
    let total: i64 = weights.map(i64::from).sum();
    if n > 1 && total == 0 {
        v.error(
            at.clone(),
            "all destination weights are 0: give at least one destination a positive weight",
        );
    }
}

/// Istio's rule for timeouts and delays: at least 1ms, whole milliseconds.
fn duration(at: &FieldPath, d: Duration, v: &mut Validator<'_>) {
    if let Err(e) = validate::duration_ms(d) {
        let mut diag = Diagnostic::error(at.clone(), e);
        if d.get().is_zero() && at.as_str().to_ascii_lowercase().ends_with("timeout") {
            diag = diag.with_hint("leave the field out for no timeout");
        }
        v.push(diag);
    }
}
