use crate::kind::Spec;
use crate::testing::corpus;
use crate::testing::*;

const JWKS_URI: &str =
    "https://raw.githubusercontent.com/istio/istio/master/security/tools/jwt/samples/jwks.json";

fn ra(spec: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata:\n  name: ra\n  namespace: foo\nspec:\n{spec}"
    )
}

/// A RequestAuthentication whose only JWT rule is `rule`, given as YAML lines without
/// indentation.
fn rule(rule: &str) -> String {
    let body: String = rule.lines().map(|l| format!("    {l}\n")).collect();
    ra(&format!("  jwtRules:\n  - {}", body.trim_start()))
}

#[test]
fn the_task_example_loads() {
    let loaded = assert_valid(&ra(&format!(
        "  selector:\n    matchLabels:\n      app: httpbin\n  jwtRules:\n  - issuer: \"testing@secure.istio.io\"\n    jwksUri: \"{JWKS_URI}\"\n    outputClaimToHeaders:\n    - header: x-jwt-claim-foo\n      claim: foo\n"
    )));
    let Spec::RequestAuthentication(spec) = &loaded.objects[0].spec else {
        panic!("wrong kind");
    };
    let r = &spec.jwt_rules[0];
    assert_eq!(r.issuer.as_deref(), Some("testing@secure.istio.io"));
    assert_eq!(r.jwks_uri.as_deref(), Some(JWKS_URI));
    assert_eq!(r.output_claim_to_headers[0].claim, "foo");
}

#[test]
fn every_jwt_rule_field_decodes() {
    let loaded = assert_valid(&rule(
        "issuer: https://example.com\naudiences: [a, b]\njwksUri: http://keys.example.com:8080/jwks.json\nfromHeaders:\n- name: x-jwt-assertion\n  prefix: \"Bearer \"\nfromParams: [my_token]\nfromCookies: [auth-token]\noutputPayloadToHeader: x-jwt-payload\nforwardOriginalToken: true\noutputClaimToHeaders:\n- header: x-group\n  claim: nested.key.group\ntimeout: 10s\nspaceDelimitedClaims: [roles]\n",
    ));
    let Spec::RequestAuthentication(spec) = &loaded.objects[0].spec else {
        panic!("wrong kind");
    };
    let r = &spec.jwt_rules[0];
    assert_eq!(r.from_headers[0].prefix.as_deref(), Some("Bearer "));
    assert_eq!(r.forward_original_token, Some(true));
    assert_eq!(r.timeout.map(|t| t.get().as_secs()), Some(10));
    assert_eq!(r.space_delimited_claims, ["roles"]);
}

#[test]
fn inline_jwks_from_the_jwt_samples_is_accepted() {
    let jwks = std::fs::read_to_string(shared("istio-security/jwt/jwks.json")).expect("jwks.json");
    let block: String = jwks.lines().map(|l| format!("  {l}\n")).collect();
    assert_valid(&rule(&format!(
        "issuer: testing@secure.istio.io\njwks: |\n{block}"
    )));
}

#[test]
fn inline_jwks_must_be_a_key_set() {
    assert_error(
        &rule("issuer: a\njwks: not json"),
        &["spec.jwtRules[0].jwks", "not valid JSON", "test.yaml:9"],
    );
    assert_error(
        &rule("issuer: a\njwks: '{\"keys\": [{\"n\": \"x\"}]}'"),
        &["spec.jwtRules[0].jwks", "no \"kty\""],
    );
    assert_error(
        &rule("issuer: a\njwks: '[1, 2]'"),
        &["spec.jwtRules[0].jwks", "must be a JSON object"],
    );
    assert_warning(
        &rule("issuer: a\njwks: '{\"keys\": []}'"),
        &["spec.jwtRules[0].jwks", "no keys"],
    );
}

#[test]
fn jwks_uri_must_be_http_or_https() {
    // The course text's placeholder.
    assert_error(
        &rule("issuer: issuer@tetrate.io\njwksUri: someuri"),
        &["spec.jwtRules[0].jwksUri", "no scheme", "test.yaml:9"],
    );
    assert_error(
        &rule("issuer: a\njwksUri: ftp://example.com/jwks"),
        &["jwksUri", "scheme \"ftp\" is not supported"],
    );
    assert_error(
        &rule("issuer: a\njwksUri: 'hTPp\\\\\\blah'"),
        &["jwksUri", "invalid jwksUri"],
    );
    assert_error(
        &rule("issuer: a\njwksUri: https://"),
        &["jwksUri", "no host"],
    );
    assert_error(
        &rule("issuer: a\njwksUri: https://example.com:99999/k"),
        &["jwksUri", "invalid port"],
    );
    assert_error(&rule("issuer: a\njwksUri: ''"), &["jwksUri", "empty"]);
    assert_valid(&rule("issuer: a\njwksUri: HTTPS://example.com/k"));
}

#[test]
fn the_snake_case_jwks_uri_of_the_schema_is_accepted_and_checked() {
    assert_valid(&rule("issuer: a\njwks_uri: https://example.com/jwks.json"));
    assert_error(
        &rule("issuer: a\njwks_uri: example.com/jwks.json"),
        &["spec.jwtRules[0].jwks_uri", "no scheme"],
    );
}

#[test]
fn only_one_key_source() {
    assert_error(
        &rule("issuer: a\njwksUri: https://example.com/k\njwks: '{\"keys\": []}'"),
        &[
            "spec.jwtRules[0].jwks",
            "only one of jwks and jwksUri",
            "test.yaml:10",
        ],
    );
    assert_error(
        &rule("issuer: a\njwksUri: https://example.com/k\njwks_uri: https://example.com/k"),
        &["spec.jwtRules[0].jwks_uri", "only one"],
    );
}

#[test]
fn issuer_or_jwks_uri_is_required() {
    assert_error(
        &rule("audiences: [a]"),
        &["spec.jwtRules[0].issuer", "set issuer"],
    );
    assert_error(
        &rule("issuer: ''\njwksUri: https://e.com/k"),
        &["issuer must not be empty"],
    );
    // Since Istio 1.27 a rule may leave the issuer out when it names the keys.
    assert_valid(&rule("jwksUri: https://example.com/jwks.json"));
    // Keys found through OpenID discovery of the issuer.
    assert_valid(&rule("issuer: issuer-foo"));
}

#[test]
fn audiences_must_not_be_empty() {
    assert_error(
        &rule("issuer: a\naudiences:\n- \"\""),
        &[
            "spec.jwtRules[0].audiences[0]",
            "audience must not be empty",
        ],
    );
}

#[test]
fn an_audience_folded_by_yaml_warns() {
    // The istio.io reference example: the second line continues the first item.
    let text = std::fs::read_to_string(format!(
        "{}/ref-request-authentication/06-fragment-jwtrule-issuer-audiences-oidc.yaml",
        corpus::security_tasks()
    ))
    .expect("fragment");
    let body = text.split("\n---\n").nth(1).expect("fragment body");
    assert_warning(
        &rule(body),
        &[
            "spec.jwtRules[0].audiences[0]",
            "contains whitespace",
            "one audience",
        ],
    );
}

#[test]
fn token_locations_must_be_named() {
    assert_error(
        &rule("issuer: a\nfromHeaders:\n- prefix: baz"),
        &["spec.jwtRules[0].fromHeaders[0].name", "required"],
    );
    assert_error(
        &rule("issuer: a\nfromHeaders:\n- name: ''"),
        &["fromHeaders[0].name", "required"],
    );
    assert_error(
        &rule("issuer: a\nfromParams: ['']"),
        &[
            "spec.jwtRules[0].fromParams[0]",
            "query parameter must not be empty",
        ],
    );
    assert_error(
        &rule("issuer: a\nfromCookies: ['']"),
        &[
            "spec.jwtRules[0].fromCookies[0]",
            "cookie name must not be empty",
        ],
    );
    assert_error(
        &rule("issuer: a\nspaceDelimitedClaims: ['']"),
        &["spaceDelimitedClaims[0]", "claim name must not be empty"],
    );
}

#[test]
fn from_headers_items_are_objects() {
    // The istio.io reference example writes a bare header name.
    assert_error(
        &rule("issuer: https://example.com\nfromHeaders:\n- \"x-goog-iap-jwt-assertion\""),
        &["spec.jwtRules[0].fromHeaders[0]", "invalid type: string"],
    );
}

#[test]
fn snake_case_from_cookies_is_an_unknown_field() {
    assert_warning(
        &rule("issuer: a\nfrom_cookies:\n- auth-token"),
        &[
            "spec.jwtRules[0].from_cookies",
            "unknown field",
            "fromCookies",
        ],
    );
}

#[test]
fn claim_to_header_needs_a_plain_header_and_a_claim() {
    assert_error(
        &rule("issuer: a\noutputClaimToHeaders:\n- claim: x\n  header: \":authority\""),
        &[
            "outputClaimToHeaders[0].header",
            "invalid header name \":authority\"",
        ],
    );
    assert_error(
        &rule("issuer: a\noutputClaimToHeaders:\n- claim: ''\n  header: h"),
        &["outputClaimToHeaders[0].claim", "required"],
    );
    assert_error(
        &rule("issuer: a\noutputClaimToHeaders:\n- claim: x"),
        &["outputClaimToHeaders[0].header", "required"],
    );
}

#[test]
fn timeout_is_a_duration_of_at_least_a_millisecond() {
    assert_error(
        &rule("issuer: a\ntimeout: apple"),
        &["spec.jwtRules[0].timeout", "invalid duration"],
    );
    assert_error(
        &rule("issuer: a\ntimeout: 100us"),
        &["spec.jwtRules[0].timeout", "at least 1ms"],
    );
    assert_valid(&rule("issuer: a\ntimeout: 1.5s"));
}

#[test]
fn selector_and_target_refs_exclude_each_other() {
    let gw = "kind: Gateway\n    group: gateway.networking.k8s.io\n    name: gw\n";
    assert_error(
        &ra(&format!(
            "  selector:\n    matchLabels:\n      a: b\n  targetRef:\n    {gw}"
        )),
        &[
            "spec.targetRef",
            "only one of selector, targetRef and targetRefs",
            "test.yaml:10",
        ],
    );
    assert_error(
        &ra(&format!("  targetRef:\n    {gw}  targetRefs:\n  - {gw}")),
        &["spec.targetRefs", "only one of"],
    );
    assert_valid(&ra(&format!("  targetRef:\n    {gw}")));
    assert_valid(&ra(&format!("  targetRefs:\n  - {gw}")));
}

#[test]
fn target_refs_name_a_supported_kind_in_this_namespace() {
    let target = |body: &str| ra(&format!("  targetRef:\n{body}"));
    assert_error(
        &target("    kind: Deployment\n    group: apps\n    name: d\n"),
        &["spec.targetRef.kind", "cannot target kind \"Deployment\""],
    );
    assert_error(
        &target("    kind: Gateway\n    name: gw\n"),
        &[
            "spec.targetRef.kind",
            "did you mean kind \"Gateway\" with group \"gateway.networking.k8s.io\"",
        ],
    );
    assert_error(
        &target("    kind: Service\n    group: \"__\"\n    name: s\n"),
        &["spec.targetRef.group", "invalid group"],
    );
    assert_error(
        &target("    kind: Service\n    name: s\n    namespace: foo\n"),
        &["spec.targetRef.namespace", "leave namespace out"],
    );
    assert_error(
        &target("    kind: Service\n    name: s\n    namespace: bar\n"),
        &["spec.targetRef.namespace"],
    );
    assert_error(
        &target("    kind: Service\n    name: ''\n"),
        &["spec.targetRef.name"],
    );
    assert_error(&target("    kind: Service\n"), &["spec.targetRef", "name"]);
    assert_valid(&target("    kind: Service\n    name: s\n"));
    assert_valid(&target(
        "    kind: ServiceEntry\n    group: networking.istio.io\n    name: se\n",
    ));
    assert_valid(&target(
        "    kind: GatewayClass\n    group: gateway.networking.k8s.io\n    name: istio\n",
    ));
}

#[test]
fn at_most_sixteen_target_refs() {
    let one = "  - kind: Service\n    name: s\n";
    assert_error(
        &ra(&format!("  targetRefs:\n{}", one.repeat(17))),
        &["spec.targetRefs", "at most 16"],
    );
    assert_valid(&ra(&format!("  targetRefs:\n{}", one.repeat(16))));
}

#[test]
fn misindented_course_example_is_refused() {
    // The course text's RequestAuthentication with `spec: selector:` on one line.
    let text = "apiVersion: security.istio.io/v1beta1\nkind: RequestAuthentication\nmetadata:\n  name: customers-v1\n  namespace: default\nspec: selector:\n    matchLabels:\n      app: customers-v1\n";
    let errors: Vec<String> = load(text).errors().map(ToString::to_string).collect();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("invalid YAML") && e.contains("test.yaml:6")),
        "{errors:?}"
    );
}

#[test]
fn security_task_corpus_loads_cleanly() {
    let loaded = corpus::load_dir(&corpus::security_tasks(), |_| true);
    let (count, bad) = corpus::check(&loaded, "RequestAuthentication");
    assert!(count >= 8, "only {count} RequestAuthentications loaded");
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn valid_jwt_rule_fragments_of_the_reference_page_load() {
    for name in [
        "09-fragment-jwtrule-fromheaders-prefix.yaml",
        "10-fragment-jwtrule-fromparams.yaml",
        "12-fragment-jwtrule-outputclaimtoheaders.yaml",
    ] {
        let text = std::fs::read_to_string(format!(
            "{}/ref-request-authentication/{name}",
            corpus::security_tasks()
        ))
        .expect("fragment");
        let body = text.split("\n---\n").nth(1).expect("fragment body");
        let dedented: String = body
            .lines()
            .map(|l| format!("{}\n", l.strip_prefix("  ").unwrap_or(l)))
            .collect();
        assert_valid(&rule(&format!("issuer: issuer-foo\n{dedented}")));
    }
}
