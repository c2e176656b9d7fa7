//! The request headers an app copies from the request it serves onto the calls it makes,
//! so that the mesh can join the spans of one request into a trace and route on them
//! (Istio's "trace context propagation": bookinfo keeps this list in each service).

use hyper::header::{HeaderMap, HeaderName, HeaderValue};

/// What bookinfo's productpage and reviews forward: tracing headers of every system Istio
/// supports, then the application's own (`end-user`, `user-agent`, session and credentials).
pub(crate) const PROPAGATED: &[&str] = &[
    "x-request-id",
    "x-ot-span-context",
    "x-datadog-trace-id",
    "x-datadog-parent-id",
    "x-datadog-sampling-priority",
    "traceparent",
    "tracestate",
    "x-cloud-trace-context",
    "grpc-trace-bin",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "b3",
    "sw8",
    "end-user",
    "user-agent",
    "cookie",
    "authorization",
    "jwt",
];

/// Copies the headers named in `names` (and present) from `incoming`.
pub(crate) fn forward(incoming: &HeaderMap, names: &[&str]) -> HeaderMap {
    let mut out = HeaderMap::new();
    for name in names {
        let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
            continue;
        };
        for value in incoming.get_all(&name) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// When a request arrives with no B3 context, bookinfo's productpage starts a trace of its
/// own (its tracer's fallback) and sends those ids on; with one, it passes it on verbatim.
pub(crate) fn ensure_b3(headers: &mut HeaderMap) {
    if headers.contains_key("x-b3-traceid") || headers.contains_key("b3") {
        return;
    }
    let trace = format!("{:016x}", fastrand::u64(1..));
    let span = format!("{:016x}", fastrand::u64(1..));
    for (name, value) in [
        ("x-b3-traceid", trace.as_str()),
        ("x-b3-spanid", span.as_str()),
        ("x-b3-sampled", "1"),
    ] {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_copies_only_listed_headers_with_all_values() {
        let mut incoming = HeaderMap::new();
        incoming.insert("x-request-id", HeaderValue::from_static("abc"));
        incoming.append("cookie", HeaderValue::from_static("a=1"));
        incoming.append("cookie", HeaderValue::from_static("b=2"));
        incoming.insert("x-secret", HeaderValue::from_static("no"));
        let out = forward(&incoming, PROPAGATED);
        assert_eq!(
            out.get("x-request-id").map(|v| v.as_bytes()),
            Some(&b"abc"[..])
        );
        assert_eq!(out.get_all("cookie").iter().count(), 2);
        assert!(!out.contains_key("x-secret"));
    }

    #[test]
    fn ensure_b3_keeps_an_existing_trace_and_starts_one_otherwise() {
        let mut with = HeaderMap::new();
        with.insert("x-b3-traceid", HeaderValue::from_static("0123456789abcdef"));
        ensure_b3(&mut with);
        assert_eq!(with.len(), 1);

        let mut without = HeaderMap::new();
        ensure_b3(&mut without);
        let trace = without.get("x-b3-traceid").and_then(|v| v.to_str().ok());
        assert_eq!(trace.map(str::len), Some(16));
        assert_eq!(
            without.get("x-b3-sampled").map(|v| v.as_bytes()),
            Some(&b"1"[..])
        );
    }
}
