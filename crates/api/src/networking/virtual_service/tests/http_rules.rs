//! Tests of the HTTP route rules: actions, matches, headers, CORS, faults, mirrors,
//! redirects, direct responses, retries, rewrites, weights and timeouts.

use super::vs;
use crate::testing::{assert_error, assert_valid, assert_warning, problems};

/// A VirtualService for host `reviews` with one HTTP rule; `rule` is the rule's fields,
/// written unindented; its first line is line 9 of `test.yaml`.
fn rule(rule: &str) -> String {
    let mut spec = String::from("hosts: [reviews]\nhttp:\n");
    for (i, line) in rule.trim_start_matches('\n').lines().enumerate() {
        spec.push_str(if i == 0 { "- " } else { "  " });
        spec.push_str(line);
        spec.push('\n');
    }
    vs(&spec)
}

const TO_REVIEWS: &str = "route:\n- destination: {host: reviews}\n";

fn with_route(fields: &str) -> String {
    rule(&format!("{fields}\n{TO_REVIEWS}"))
}

#[test]
fn a_rule_needs_exactly_one_action() {
    assert_error(
        &rule("name: nothing\n"),
        &["test.yaml:9", "spec.http[0].route", "does nothing"],
    );
    assert_error(
        &with_route("redirect: {uri: /v1/hello, authority: hello.default.svc.cluster.local}"),
        &["spec.http[0].route", "both redirect and route"],
    );
    assert_error(
        &rule("redirect: {uri: /x}\nrewrite: {uri: /y}\n"),
        &["spec.http[0].rewrite", "both redirect and rewrite"],
    );
    assert_error(
        &rule("redirect: {uri: /x}\ndirectResponse: {status: 200}\n"),
        &[
            "spec.http[0].directResponse",
            "both redirect and directResponse",
        ],
    );
    assert_error(
        &rule(
            "directResponse: {status: 503}\nfault: {abort: {httpStatus: 500, percentage: {value: 1}}}\n",
        ),
        &["spec.http[0].fault", "both directResponse and fault"],
    );
    assert_valid(&rule(
        "redirect: {uri: /v1/hello, authority: hello.default.svc.cluster.local}\n",
    ));
    assert_valid(&rule(
        "directResponse: {status: 503, body: {string: unavailable}}\n",
    ));
}

#[test]
fn header_matches_use_token_names_and_non_empty_prefixes() {
    assert_valid(&with_route(
        "match:\n- headers:\n    end-user: {exact: jason}\n    x-present: {}\n    user-agent: {regex: \".*Firefox.*\"}",
    ));
    assert_error(
        &with_route("match:\n- headers:\n    \":path\": {exact: /x}"),
        &[
            "test.yaml:11",
            "spec.http[0].match[0].headers[:path]",
            "invalid header name",
            "match pseudo-headers with uri",
        ],
    );
    assert_error(
        &with_route("match:\n- headers:\n    x-a: {prefix: \"\"}"),
        &["headers.x-a.prefix", "prefix must not be empty"],
    );
    assert_error(
        &with_route("match:\n- headers:\n    x-a: {exact: a, prefix: b}"),
        &["headers.x-a", "set only one of exact, prefix and regex"],
    );
    assert_error(
        &with_route("match:\n- headers:\n    x-a: {regex: \"(\"}"),
        &["headers.x-a.regex", "invalid regex", "RE2"],
    );
    let long = "a".repeat(1025);
    assert_error(
        &with_route(&format!("match:\n- uri: {{regex: {long}}}")),
        &["match[0].uri.regex", "at most 1024"],
    );
}

#[test]
fn without_headers_star_means_absent() {
    assert_valid(&with_route(
        "match:\n- withoutHeaders:\n    x-debug: {regex: \"*\"}",
    ));
    assert_error(
        &with_route("match:\n- headers:\n    x-debug: {regex: \"*\"}"),
        &["headers.x-debug.regex", "invalid regex"],
    );
}

#[test]
fn uri_matches_may_have_an_empty_prefix_but_not_other_fields() {
    assert_valid(&with_route("match:\n- uri: {prefix: \"\"}"));
    assert_error(
        &with_route("match:\n- method: {prefix: \"\"}"),
        &["match[0].method.prefix", "must not be empty"],
    );
    assert_warning(
        &with_route("match:\n- uri: {}"),
        &["match[0].uri", "matches every request"],
    );
}

#[test]
fn jwt_claim_routing_is_for_gateways_only() {
    let claim = "match:\n- headers:\n    \"@request.auth.claims.groups\": {exact: group1}";
    assert_error(
        &with_route(claim),
        &[
            "headers[@request.auth.claims.groups]",
            "only works on gateways",
        ],
    );
    let on_gateway = with_route(claim).replace(
        "hosts: [reviews]",
        "hosts: [\"*\"]\n  gateways: [httpbin-gateway]",
    );
    assert_valid(&on_gateway);
}

#[test]
fn match_sources_ports_and_gateways() {
    assert_valid(&with_route(
        "match:\n- port: 80\n  sourceLabels: {app: productpage}\n  sourceNamespace: default\n  gateways: [mesh]\n  queryParams: {v: {exact: \"1\"}}\n  ignoreUriCase: true\n  statPrefix: s\n  name: m",
    ));
    assert_error(
        &with_route("match:\n- port: 70000"),
        &["match[0].port", "1-65535"],
    );
    assert_error(
        &with_route("match:\n- sourceNamespace: Bad_NS"),
        &["match[0].sourceNamespace", "invalid sourceNamespace"],
    );
    assert_error(
        &with_route("match:\n- sourceLabels: {\"-bad\": x}"),
        &["match[0].sourceLabels", "invalid label key"],
    );
    assert_error(
        &with_route("match:\n- gateways: [bad_gw]"),
        &["match[0].gateways[0]", "invalid gateway name"],
    );
    assert_error(
        &with_route("match:\n- queryParams: {v: {prefix: \"\"}}"),
        &["queryParams.v.prefix", "must not be empty"],
    );
}

#[test]
fn header_operations() {
    // Seed 004a (L2834): v1beta1 header operations on the rule and on one destination.
    assert_valid(&vs(r#"
hosts: [customers.default.svc.cluster.local]
http:
- headers:
    request:
      set: {debug: "true"}
  route:
  - destination: {host: customers.default.svc.cluster.local, subset: v2}
    weight: 20
  - destination: {host: customers.default.svc.cluster.local, subset: v1}
    headers:
      response:
        remove: [x-api-key]
    weight: 80
"#));
    assert_valid(&with_route(
        "headers: {request: {set: {host: new.example.com, x-id: \"%HOSTNAME%\"}}}",
    ));
    assert_error(
        &with_route("headers: {request: {set: {\":path\": /x}}}"),
        &["headers.request.set[:path]", "pseudo-headers"],
    );
    assert_error(
        &with_route("headers: {response: {set: {host: x}}}"),
        &["headers.response.set.host", "cannot be changed"],
    );
    assert_error(
        &with_route("headers: {request: {remove: [\":authority\"]}}"),
        &["headers.request.remove[0]", "pseudo-headers"],
    );
    assert_error(
        &with_route("headers: {request: {add: {x-a: \"50%\"}}}"),
        &["headers.request.add.x-a", "invalid header value", "%%"],
    );
    assert_error(
        &rule(
            "headers: {request: {set: {x-a: a}}}\nroute:\n- destination: {host: reviews}\n  headers: {request: {set: {\":method\": GET}}}\n",
        ),
        &["route[0].headers.request.set[:method]", "pseudo-headers"],
    );
}

#[test]
fn the_authority_is_rewritten_in_one_place() {
    assert_error(
        &with_route(
            "rewrite: {authority: a.com}\nheaders: {request: {set: {\":authority\": b.com}}}",
        ),
        &[
            "headers.request.set[:authority]",
            "already set to \"a.com\"",
        ],
    );
    assert_valid(&with_route(
        "rewrite: {authority: a.com}\nheaders: {request: {set: {x-a: b}}}",
    ));
}

#[test]
fn cors_policy() {
    assert_valid(&with_route(
        "corsPolicy:\n  allowOrigins: [{exact: https://example.com}, {regex: \"https://.*\\\\.example\\\\.com\"}]\n  allowMethods: [GET, POST]\n  allowHeaders: [\"*\", x-custom]\n  exposeHeaders: [x-id]\n  maxAge: 24h\n  allowCredentials: false\n  unmatchedPreflights: IGNORE",
    ));
    assert_error(
        &with_route("corsPolicy: {allowOrigins: [{}]}"),
        &[
            "corsPolicy.allowOrigins[0]",
            "non-empty exact, prefix or regex",
        ],
    );
    assert_error(
        &with_route("corsPolicy: {allowMethods: [get]}"),
        &[
            "corsPolicy.allowMethods[0]",
            "\"get\" is not a supported HTTP method",
        ],
    );
    assert_error(
        &with_route("corsPolicy: {allowHeaders: [\"x y\"]}"),
        &["corsPolicy.allowHeaders[0]", "invalid header name"],
    );
    assert_error(
        &with_route("corsPolicy: {maxAge: 1500ms}"),
        &["corsPolicy.maxAge", "whole number of seconds"],
    );
    assert_error(
        &with_route("corsPolicy: {unmatchedPreflights: DROP}"),
        &["corsPolicy.unmatchedPreflights", "IGNORE"],
    );
    // Seed 002: the deprecated `allowOrigin` still works.
    assert_warning(
        &with_route("corsPolicy: {allowOrigin: [\"*\"], allowMethods: [GET]}"),
        &["corsPolicy.allowOrigin", "deprecated", "allowOrigins"],
    );
}

#[test]
fn fault_aborts() {
    assert_valid(&with_route(
        "fault: {abort: {httpStatus: 555, percentage: {value: 100}}}",
    ));
    assert_valid(&with_route(
        "fault: {abort: {grpcStatus: UNAVAILABLE, percentage: {value: 0.5}}}",
    ));
    assert_error(
        &with_route("fault: {}"),
        &["spec.http[0].fault", "an abort, a delay, or both"],
    );
    assert_error(
        &with_route("fault: {abort: {httpStatus: 700, percentage: {value: 1}}}"),
        &["fault.abort.httpStatus", "out of range"],
    );
    assert_error(
        &with_route("fault: {abort: {grpcStatus: BROKEN, percentage: {value: 1}}}"),
        &["fault.abort.grpcStatus", "unknown gRPC status \"BROKEN\""],
    );
    assert_error(
        &with_route("fault: {abort: {http2Error: x, percentage: {value: 1}}}"),
        &["fault.abort.http2Error", "not supported"],
    );
    assert_error(
        &with_route(
            "fault: {abort: {httpStatus: 500, grpcStatus: INTERNAL, percentage: {value: 1}}}",
        ),
        &[
            "fault.abort",
            "set only one of httpStatus, grpcStatus and http2Error",
        ],
    );
    assert_warning(
        &with_route("fault: {abort: {percentage: {value: 1}}}"),
        &["fault.abort", "no error is injected"],
    );
    assert_error(
        &with_route("fault: {abort: {httpStatus: 500, percentage: {value: 150}}}"),
        &["fault.abort.percentage.value", "between 0.0001 and 100"],
    );
    assert_error(
        &with_route("fault: {abort: {httpStatus: 500, percentage: {value: 0.00001}}}"),
        &["fault.abort.percentage.value", "must be 0 or between"],
    );
    assert_warning(
        &with_route("fault: {abort: {httpStatus: 500}}"),
        &["fault.abort", "no request is aborted"],
    );
}

#[test]
fn the_old_abort_percent_is_read_with_a_warning() {
    // Seed 000 (Istio 1.0): `abort.percent: 100`; current Istio dropped the field.
    let yaml = vs(r#"
hosts: [ratings]
http:
- fault:
    abort:
      httpStatus: 500
      percent: 100
  match:
  - headers:
      end-user: {exact: jason}
  route:
  - destination: {host: ratings, subset: v1}
- route:
  - destination: {host: ratings, subset: v1}
"#);
    assert_warning(
        &yaml,
        &[
            "test.yaml:12",
            "fault.abort.percent",
            "Istio 1.0",
            "percentage: {value: 100}",
        ],
    );
    assert!(!problems(&yaml).iter().any(|r| r.contains("unknown field")));
}

#[test]
fn fault_delays() {
    // Seed 003 (13): the deprecated integer percent, and the current percentage.
    assert_warning(
        &with_route("fault: {delay: {percent: 100, fixedDelay: 2s}}"),
        &[
            "fault.delay.percent",
            "deprecated",
            "percentage: {value: 100}",
        ],
    );
    assert_valid(&with_route(
        "fault: {delay: {percentage: {value: 50}, fixedDelay: 5s}}",
    ));
    assert_error(
        &with_route("fault: {delay: {percentage: {value: 50}}}"),
        &["fault.delay.fixedDelay", "needs fixedDelay"],
    );
    assert_error(
        &with_route("fault: {delay: {percentage: {value: 50}, exponentialDelay: 1s}}"),
        &["fault.delay.exponentialDelay", "not supported"],
    );
    assert_error(
        &with_route("fault: {delay: {percentage: {value: 50}, fixedDelay: 500us}}"),
        &["fault.delay.fixedDelay", "at least 1ms"],
    );
    assert_error(
        &with_route("fault: {delay: {percentage: {value: 50}, fixedDelay: 7x}}"),
        &["fault.delay.fixedDelay", "unknown unit \"x\""],
    );
}

#[test]
fn mirrors() {
    // Seed 004a (L2326): mirror with mirrorPercentage.
    assert_valid(&with_route(
        "mirror: {host: customers.default.svc.cluster.local, subset: v2}\nmirrorPercentage: {value: 100.0}",
    ));
    assert_valid(&with_route(
        "mirrors:\n- destination: {host: reviews, subset: v2}\n  percentage: {value: 10}",
    ));
    assert_error(
        &with_route("mirror: {host: reviews}\nmirrorPercentage: {value: 150}"),
        &["mirrorPercentage.value", "between 0 and 100"],
    );
    assert_error(
        &with_route("mirror: {host: reviews}\nmirrors: [{destination: {host: ratings}}]"),
        &["spec.http[0].mirrors", "only one of mirror and mirrors"],
    );
    assert_error(
        &with_route("mirrors: [{percentage: {value: 5}}]"),
        &["mirrors[0].destination", "required"],
    );
    assert_error(
        &with_route("mirror: {host: \"*\"}"),
        &["spec.http[0].mirror.host", "not allowed"],
    );
    assert_warning(
        &with_route("mirror: {host: reviews}\nmirrorPercent: 50"),
        &[
            "mirrorPercent",
            "deprecated",
            "mirrorPercentage: {value: 50}",
        ],
    );
    assert_warning(
        &with_route("mirror: {host: reviews}\nmirror_percent: 50"),
        &["mirrorPercent", "deprecated"],
    );
    assert_error(
        &with_route("mirror: {host: reviews}\nmirrorPercent: 101"),
        &["mirrorPercent", "at most 100"],
    );
}

#[test]
fn redirects() {
    assert_valid(&rule(
        "redirect: {scheme: https, derivePort: FROM_PROTOCOL_DEFAULT, redirectCode: 308}\n",
    ));
    assert_valid(&rule(
        "redirect: {authority: my-service.default.svc.cluster.local:8000, port: 8443}\n",
    ));
    assert_error(
        &rule("redirect: {redirectCode: 301}\n"),
        &["spec.http[0].redirect", "must change something"],
    );
    assert_error(
        &rule("redirect: {uri: /x, redirectCode: 200}\n"),
        &["redirect.redirectCode", "200 is not a redirect code"],
    );
    assert_error(
        &rule("redirect: {scheme: ftp}\n"),
        &["redirect.scheme", "\"ftp\""],
    );
    assert_error(
        &rule("redirect: {port: 80, derivePort: FROM_REQUEST_PORT}\n"),
        &["spec.http[0].redirect", "only one of port and derivePort"],
    );
    assert_error(
        &rule("redirect: {port: 70000}\n"),
        &["redirect.port", "1-65535"],
    );
}

#[test]
fn direct_responses() {
    assert_valid(&rule(
        "directResponse: {status: 200, body: {bytes: aGVsbG8=}}\n",
    ));
    assert_error(
        &rule("directResponse: {status: 100}\n"),
        &["directResponse.status", "out of range"],
    );
    assert_error(
        &rule("directResponse: {}\n"),
        &["directResponse.status", "HTTP status 0"],
    );
    assert_error(
        &rule("directResponse: {status: 200, body: {string: a, bytes: YQ==}}\n"),
        &["directResponse.body", "only one of string and bytes"],
    );
    assert_error(
        &rule("directResponse: {status: 200, body: {bytes: \"not base64!\"}}\n"),
        &["directResponse.body.bytes", "base64"],
    );
    let big = "a".repeat(200 * 1024);
    assert_warning(
        &rule(&format!(
            "directResponse: {{status: 200, body: {{string: {big}}}}}\n"
        )),
        &["directResponse.body", "large direct responses"],
    );
}

#[test]
fn retries() {
    // Seed 004a (L3247).
    assert_valid(&with_route(
        "retries: {attempts: 10, perTryTimeout: 2s, retryOn: \"connect-failure,reset\"}",
    ));
    assert_valid(&with_route(
        "retries: {attempts: 3, retryOn: \"5xx,503,retriable-4xx,unavailable\", backoff: 25ms, retryRemoteLocalities: true, retryIgnorePreviousHosts: false}",
    ));
    assert_valid(&with_route("retries: {attempts: 0}"));
    assert_error(
        &with_route("retries: {attempts: -1}"),
        &["retries.attempts", "must not be negative"],
    );
    assert_error(
        &with_route("retries: {perTryTimeout: 2s}"),
        &["retries.attempts", "attempts is 0", "defaults to 0"],
    );
    assert_error(
        &with_route("retries: {attempts: 2, retryOn: \"5xx, reset\"}"),
        &["retries.retryOn", "\" reset\"", "remove the spaces"],
    );
    assert_error(
        &with_route("retries: {attempts: 2, retryOn: \"5xx,on-failure\"}"),
        &["retries.retryOn", "invalid retryOn policy \"on-failure\""],
    );
    assert_error(
        &with_route("retries: {attempts: 2, retryOn: \"5xx,\"}"),
        &["retries.retryOn", "stray ','"],
    );
    assert_error(
        &with_route("retries: {attempts: 2, perTryTimeout: 0s}"),
        &["retries.perTryTimeout", "at least 1ms"],
    );
}

#[test]
fn rewrites() {
    assert_valid(&with_route("rewrite: {uri: /v2/api}"));
    assert_valid(&with_route(
        "rewrite: {uriRegexRewrite: {match: \"^/service/([^/]+)(/.*)$\", rewrite: \"\\\\2/instance/\\\\1\"}}",
    ));
    assert_error(
        &with_route("rewrite: {}"),
        &["spec.http[0].rewrite", "must change something"],
    );
    assert_error(
        &with_route("rewrite: {uri: /a, uriRegexRewrite: {match: a, rewrite: b}}"),
        &[
            "spec.http[0].rewrite",
            "only one of uri and uriRegexRewrite",
        ],
    );
    assert_error(
        &with_route("rewrite: {uriRegexRewrite: {match: \"^/a\"}}"),
        &["rewrite.uriRegexRewrite.rewrite", "required"],
    );
    assert_error(
        &with_route("rewrite: {uriRegexRewrite: {match: \"[\", rewrite: b}}"),
        &["rewrite.uriRegexRewrite.match", "invalid regex"],
    );
}

#[test]
fn weights() {
    // Istio does not require weights to sum to 100.
    assert_valid(&rule(
        "route:\n- destination: {host: reviews, subset: v1}\n  weight: 70\n- destination: {host: reviews, subset: v2}\n  weight: 20\n",
    ));
    assert_error(
        &rule("route:\n- destination: {host: reviews}\n  weight: -1\n"),
        &[
            "test.yaml:11",
            "spec.http[0].route[0].weight",
            "must not be negative",
        ],
    );
    assert_error(
        &rule(
            "route:\n- destination: {host: reviews, subset: v1}\n  weight: 0\n- destination: {host: reviews, subset: v2}\n",
        ),
        &["spec.http[0].route", "all destination weights are 0"],
    );
    assert_error(
        &rule("route:\n- weight: 100\n"),
        &["route[0].destination", "required"],
    );
}

#[test]
fn timeouts() {
    // Seed 003 (14): half a second.
    assert_valid(&with_route("timeout: 0.5s"));
    assert_valid(&with_route("timeout: 1m30s"));
    assert_error(
        &with_route("timeout: 0s"),
        &[
            "test.yaml:9",
            "spec.http[0].timeout",
            "at least 1ms",
            "leave the field out",
        ],
    );
    assert_error(
        &with_route("timeout: 1500us"),
        &["spec.http[0].timeout", "millisecond precision"],
    );
}
