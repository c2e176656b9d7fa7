use crate::kind::Spec;
use crate::security::authorization_policy::Action;
use crate::testing::corpus;
use crate::testing::*;

fn ap_in(namespace: &str, spec: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: ap\n  namespace: {namespace}\nspec:\n{spec}"
    )
}

fn ap(spec: &str) -> String {
    ap_in("foo", spec)
}

/// An ALLOW policy with one rule, given as YAML lines of the rule without indentation.
fn with_rule(action: &str, rule: &str) -> String {
    let body: String = rule.lines().map(|l| format!("    {l}\n")).collect();
    ap(&format!(
        "  action: {action}\n  rules:\n  - {}",
        body.trim_start()
    ))
}

fn allow_rule(rule: &str) -> String {
    with_rule("ALLOW", rule)
}

/// An ALLOW rule with one source.
fn source(fields: &str) -> String {
    let body: String = fields.lines().map(|l| format!("    {l}\n")).collect();
    allow_rule(&format!("from:\n- source:\n{body}"))
}

/// An ALLOW rule with one operation.
fn operation(fields: &str) -> String {
    let body: String = fields.lines().map(|l| format!("    {l}\n")).collect();
    allow_rule(&format!("to:\n- operation:\n{body}"))
}

/// An ALLOW rule with one condition.
fn when(cond: &str) -> String {
    let body: String = cond.lines().map(|l| format!("  {l}\n")).collect();
    allow_rule(&format!("when:\n- {}", body.trim_start()))
}

#[test]
fn full_reference_example_decodes() {
    let loaded = assert_valid(&ap(
        "  action: ALLOW\n  rules:\n  - from:\n    - source:\n        principals: [\"cluster.local/ns/default/sa/sleep\"]\n    - source:\n        namespaces: [\"test\"]\n    to:\n    - operation:\n        methods: [\"GET\"]\n        paths: [\"/info*\"]\n    - operation:\n        methods: [\"POST\"]\n        paths: [\"/data\"]\n    when:\n    - key: request.auth.claims[iss]\n      values: [\"https://accounts.google.com\"]\n",
    ));
    let Spec::AuthorizationPolicy(spec) = &loaded.objects[0].spec else {
        panic!("wrong kind");
    };
    assert_eq!(spec.action, Action::Allow);
    let rule = &spec.rules[0];
    assert_eq!(rule.from.as_ref().map(Vec::len), Some(2));
    assert_eq!(rule.to.as_ref().map(Vec::len), Some(2));
    assert_eq!(rule.when[0].key, "request.auth.claims[iss]");
}

#[test]
fn empty_spec_allows_nothing_and_is_valid() {
    // The course's deny-all and istio.io's allow-nothing.
    assert_valid(&ap_in("default", "  {}\n"));
    assert_valid(&ap("  action: ALLOW\n"));
    assert_valid(&ap("  rules:\n  - {}\n"));
}

#[test]
fn allow_nothing_in_the_root_namespace_warns_about_the_whole_mesh() {
    assert_warning(
        &ap_in("istio-system", "  {}\n"),
        &["ALLOW policy without rules", "every workload in the mesh"],
    );
    assert_valid(&ap_in(
        "istio-system",
        "  selector:\n    matchLabels:\n      version: v1\n",
    ));
}

#[test]
fn deny_and_custom_need_rules() {
    assert_error(
        &ap("  action: DENY\n"),
        &[
            "spec.rules",
            "DENY policy without rules is never triggered",
            "rules: [{}]",
        ],
    );
    assert_error(
        &ap("  action: CUSTOM\n  provider:\n    name: ext-authz\n"),
        &["spec.rules", "CUSTOM policy without rules"],
    );
    assert_valid(&ap("  action: DENY\n  rules:\n  - {}\n"));
    assert_valid(&ap(
        "  action: AUDIT\n  rules:\n  - to:\n    - operation:\n        ports: [\"80\"]\n",
    ));
}

#[test]
fn custom_needs_a_provider_and_only_custom_takes_one() {
    assert_error(
        &ap("  action: CUSTOM\n  rules:\n  - {}\n"),
        &["spec.provider.name", "needs provider.name"],
    );
    assert_error(
        &ap("  action: CUSTOM\n  provider: {}\n  rules:\n  - {}\n"),
        &["spec.provider.name"],
    );
    assert_error(
        &ap("  provider:\n    name: ext-authz\n  rules:\n  - {}\n"),
        &["spec.provider", "only used with action CUSTOM", "\"ALLOW\""],
    );
    assert_valid(&ap(
        "  action: CUSTOM\n  provider:\n    name: sample-ext-authz-grpc\n  rules:\n  - to:\n    - operation:\n        paths: [\"/headers\"]\n",
    ));
}

#[test]
fn custom_cannot_use_peer_or_request_identity() {
    let custom = |rule: &str| {
        let body: String = rule.lines().map(|l| format!("    {l}\n")).collect();
        ap(&format!(
            "  action: CUSTOM\n  provider:\n    name: x\n  rules:\n  - {}",
            body.trim_start()
        ))
    };
    assert_error(
        &custom("from:\n- source:\n    principals: [\"cluster.local/ns/a/sa/b\"]"),
        &["source.principals", "not supported with action CUSTOM"],
    );
    assert_error(
        &custom("from:\n- source:\n    notNamespaces: [\"a\"]"),
        &["source.notNamespaces", "not supported with action CUSTOM"],
    );
    assert_error(
        &custom("when:\n- key: request.auth.claims[iss]\n  values: [a]"),
        &["when[0].key", "not supported with action CUSTOM"],
    );
    assert_error(
        &custom("when:\n- key: source.principal\n  values: [a/b]"),
        &["when[0].key", "not supported with action CUSTOM"],
    );
    assert_valid(&custom("from:\n- source:\n    ipBlocks: [\"10.0.0.0/8\"]"));
}

#[test]
fn sources_and_operations_must_say_something() {
    assert_error(
        &allow_rule("from:\n- {}"),
        &["rules[0].from[0].source", "needs a source"],
    );
    assert_error(
        &allow_rule("from:\n- source: {}"),
        &["rules[0].from[0].source", "source must not be empty"],
    );
    assert_error(
        &allow_rule("to:\n- {}"),
        &["rules[0].to[0].operation", "needs an operation"],
    );
    assert_error(
        &allow_rule("to:\n- operation: {}"),
        &["rules[0].to[0].operation", "operation must not be empty"],
    );
}

#[test]
fn empty_from_or_to_lists_match_anything_and_warn() {
    assert_warning(
        &allow_rule("from: []"),
        &["rules[0].from", "matches any source"],
    );
    assert_warning(
        &allow_rule("to: []"),
        &["rules[0].to", "matches any operation"],
    );
}

#[test]
fn empty_values_are_refused() {
    assert_error(
        &source("principals: [\"\"]"),
        &["source.principals[0]", "empty value in principals"],
    );
    assert_error(
        &operation("methods: [\"\"]"),
        &["operation.methods[0]", "empty value"],
    );
    assert_error(
        &when("key: request.headers[x]\nvalues: [\"\"]"),
        &["when[0].values[0]", "empty value"],
    );
}

#[test]
fn ip_blocks_are_ips_or_cidrs() {
    assert_valid(&source(
        "ipBlocks: [\"1.2.3.4\", \"5.6.7.0/24\", \"2001:db8::/32\"]\nnotRemoteIpBlocks: [\"203.0.113.4\"]",
    ));
    assert_error(
        &source("ipBlocks: [\"1.2.3\"]"),
        &["source.ipBlocks[0]", "not an IP address or CIDR block"],
    );
    assert_error(
        &source("remoteIpBlocks: [\"10.0.0.0/33\"]"),
        &["source.remoteIpBlocks[0]"],
    );
    // The istio.io ingress task leaves $CLIENT_IP for the shell to expand.
    assert_error(
        &source("ipBlocks: [\"$CLIENT_IP\"]"),
        &[
            "source.ipBlocks[0]",
            "shell variable that was never expanded",
        ],
    );
}

#[test]
fn service_accounts_are_namespace_slash_name_and_stand_alone() {
    assert_valid(&source("serviceAccounts: [\"bar/sa\"]"));
    assert_error(
        &source("serviceAccounts: [\"sa\"]"),
        &["source.serviceAccounts[0]", "<namespace>/<name>"],
    );
    assert_error(
        &source("serviceAccounts: [\"bar/sa\"]\nnamespaces: [\"bar\"]"),
        &[
            "source.serviceAccounts",
            "cannot be combined with principals or namespaces",
        ],
    );
    assert_error(
        &source("notServiceAccounts: [\"baz/sa\"]\nprincipals: [\"bar\"]"),
        &["source.notServiceAccounts", "cannot be combined"],
    );
}

#[test]
fn ports_are_quoted_numbers_up_to_65535() {
    assert_valid(&operation("ports: [\"9000\", \"9001\"]"));
    assert_error(
        &operation("ports: [\"http\"]"),
        &["operation.ports[0]", "bad port \"http\""],
    );
    assert_error(
        &operation("notPorts: [\"70000\"]"),
        &["operation.notPorts[0]", "bad port"],
    );
    assert_error(
        &operation("ports: [9000]"),
        &[
            "operation.ports",
            "9000 must be a string here: quote it (\"9000\")",
        ],
    );
}

#[test]
fn path_templates_must_be_supported_ones() {
    assert_valid(&operation("paths: [\"/foo/{*}/bar/{**}\"]"));
    assert_error(
        &operation("paths: [\"/foo/{bar}/{*}\"]"),
        &["operation.paths[0]", "unsupported path template"],
    );
    assert_error(
        &operation("notPaths: [\"/foo/*/{**}\"]"),
        &["operation.notPaths[0]", "unsupported path template"],
    );
    // Without {*} or {**} a path is not a template: '*' keeps its prefix/suffix meaning.
    assert_valid(&operation("paths: [\"/test/*\", \"*/info\"]"));
}

#[test]
fn conditions_need_a_known_key_and_values() {
    assert_error(&when("values: [a]"), &["when[0].key", "required"]);
    assert_error(
        &when("key: request.headers[x-token]"),
        &["when[0]", "needs values or notValues"],
    );
    assert_error(
        &when("key: source.principals\nvalues: [a/b]"),
        &[
            "when[0].key",
            "unknown attribute",
            "did you mean \"source.principal\"",
        ],
    );
    assert_error(
        &when("key: request.headers\nvalues: [a]"),
        &["when[0].key", "bad key", "request.headers[User-Agent]"],
    );
    assert_error(
        &when("key: request.auth.claims[]\nvalues: [a]"),
        &["bad key"],
    );
    assert_error(
        &when("key: destination.namespace\nvalues: [a]"),
        &["when[0].key", "metadata.namespace"],
    );
    assert_error(
        &when("key: destination.labels[app]\nvalues: [a]"),
        &["when[0].key", "selector"],
    );
    assert_error(&when("key: destination.user\nvalues: [a]"), &["v1alpha1"]);
    assert_error(
        &when("key: foo.bar\nvalues: [a]"),
        &[
            "when[0].key",
            "unknown attribute \"foo.bar\"",
            "known keys: request.headers[...]",
        ],
    );
    for key in [
        "request.headers[User-Agent]",
        "request.experimental.inline.headers[x]",
        "source.namespace",
        "source.serviceAccount",
        "request.auth.principal",
        "request.auth.audiences",
        "request.auth.presenter",
        "request.auth.claims[groups]",
        "request.auth.claims[nested][key]",
        "connection.sni",
        "experimental.envoy.filters.network.mysql_proxy[db.table]",
    ] {
        assert_valid(&when(&format!("key: {key}\nnotValues: [\"a/*\"]")));
    }
}

#[test]
fn condition_values_are_checked_by_attribute() {
    assert_valid(&when("key: source.ip\nvalues: [\"10.1.0.0/16\"]"));
    assert_valid(&when("key: remote.ip\nvalues: [\"10.1.2.3\"]"));
    assert_error(
        &when("key: destination.ip\nnotValues: [\"10.1.2\"]"),
        &["when[0].notValues[0]", "not an IP address"],
    );
    assert_valid(&when("key: destination.port\nvalues: [\"443\"]"));
    assert_error(
        &when("key: destination.port\nvalues: [\"https\"]"),
        &["when[0].values[0]", "bad port"],
    );
    assert_error(
        &when("key: destination.port\nvalues: [443]"),
        &["when[0].values", "quote it"],
    );
}

#[test]
fn deny_rules_with_only_http_attributes_warn_about_tcp() {
    let warn = [
        "rules[0]",
        "DENY rule uses only HTTP attributes",
        "denies all TCP traffic",
    ];
    assert_warning(
        &with_rule("DENY", "to:\n- operation:\n    methods: [\"GET\"]"),
        &warn,
    );
    assert_warning(
        &with_rule("DENY", "from:\n- source:\n    requestPrincipals: [\"*\"]"),
        &warn,
    );
    assert_warning(
        &with_rule("DENY", "to:\n- operation:\n    notMethods: [\"GET\"]"),
        &warn,
    );
    assert_valid(&with_rule(
        "DENY",
        "to:\n- operation:\n    methods: [\"GET\"]\n    ports: [\"9000\"]",
    ));
    assert_valid(&with_rule(
        "DENY",
        "from:\n- source:\n    notNamespaces: [\"foo\"]",
    ));
    // The same rule in an ALLOW policy only narrows what is allowed.
    assert_valid(&allow_rule("to:\n- operation:\n    methods: [\"GET\"]"));
}

#[test]
fn values_that_cannot_match_as_written_warn() {
    assert_warning(
        &source("principals: [\"cluster.local/ns/*/sa/curl\"]"),
        &[
            "source.principals[0]",
            "only a single '*' at the start or the end",
        ],
    );
    assert_warning(
        &source("principals: [\"admin\"]"),
        &[
            "source.principals[0]",
            "cluster.local/ns/<namespace>/sa/<service-account>",
        ],
    );
    assert_warning(
        &source("requestPrincipals: [\"peterj\"]"),
        &["source.requestPrincipals[0]", "<issuer>/<subject>"],
    );
    assert_warning(
        &source("namespaces: [\"Prod_1\"]"),
        &["source.namespaces[0]", "not a valid namespace name"],
    );
    assert_warning(
        &operation("methods: [\"get\"]"),
        &["operation.methods[0]", "upper case", "\"GET\""],
    );
    assert_warning(
        &operation("paths: [\"info\"]"),
        &["operation.paths[0]", "does not start with '/'"],
    );
    assert_valid(&source(
        "principals: [\"*\", \"cluster.local/ns/default/*\", \"*/sa/curl\"]\nrequestPrincipals: [\"issuer-foo/*\", \"testing@secure.istio.io/testing@secure.istio.io\"]\nnamespaces: [\"prod*\"]",
    ));
}

#[test]
fn duplicate_source_key_of_the_course_text_is_refused_with_its_line() {
    let text = ap_in(
        "default",
        "  selector:\n    matchLabels:\n      app: customers\n      version: v1\n  action: ALLOW\n  rules:\n  - from:\n    - source:\n        namespaces: [\"default\"]\n      source:\n        principals: [\"cluster.local/ns/default/sa/web-frontend\"]\n",
    );
    let loaded = load(&text);
    let errors: Vec<String> = loaded.errors().map(ToString::to_string).collect();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("test.yaml:16")
                && e.contains("\"source\" already defined at line 14")),
        "{errors:?}"
    );
    assert!(loaded.objects.is_empty());
}

#[test]
fn misspelt_host_field_of_the_course_text_is_reported() {
    assert_warning(
        &operation("host: [\"*.hello.com\"]\nmethods: [\"DELETE\"]\nnotPaths: [\"/admin*\"]"),
        &[
            "operation.host",
            "unknown field \"host\"",
            "did you mean \"hosts\"?",
        ],
    );
}

#[test]
fn course_text_policies_load() {
    // require-jwt, allow-ingress-frontend, the from and when examples.
    assert_valid(&ap_in(
        "default",
        "  selector:\n    matchLabels:\n      app: hello-world\n  action: ALLOW\n  rules:\n  - from:\n    - source:\n        requestPrincipals: [\"*\"]\n",
    ));
    assert_valid(&ap_in(
        "default",
        "  selector:\n    matchLabels:\n      app: web-frontend\n  action: ALLOW\n  rules:\n  - from:\n    - source:\n        namespaces: [\"istio-system\"]\n    - source:\n        principals: [\"cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account\"]\n",
    ));
    assert_valid(&allow_rule(
        "from:\n- source:\n    ipBlocks: [\"10.0.0.1\", \"10.0.0.2\"]\n- source:\n    notNamespaces: [\"prod\"]\n- source:\n    requestPrincipals: [\"tetrate.io/peterj\"]",
    ));
    assert_valid(&allow_rule(
        "when:\n- key: request.auth.claims[iss]\n  values: [\"https://accounts.google.com\"]\n- key: request.headers[User-Agent]\n  notValues: [\"curl/*\"]",
    ));
}

#[test]
fn reference_page_fragments_load_inside_a_policy() {
    let body = |name: &str| {
        let text = std::fs::read_to_string(format!(
            "{}/ref-authorization-policy/{name}",
            corpus::security_tasks()
        ))
        .expect("fragment");
        text.split("\n---\n")
            .nth(1)
            .expect("fragment body")
            .to_string()
    };
    assert_valid(&operation(&body("12-fragment-operation.yaml")));
    // Its principals are bare words, not workload identities.
    assert_warning(
        &source(&body("11-fragment-source.yaml")),
        &["source.principals[0]", "has no '/'"],
    );
}

#[test]
fn security_task_corpus_loads_cleanly() {
    let loaded = corpus::load_dir(&corpus::security_tasks(), |_| true);
    let (count, bad) = corpus::check(&loaded, "AuthorizationPolicy");
    assert!(count >= 50, "only {count} AuthorizationPolicies loaded");
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn tcp_task_deny_policy_gets_istios_warning() {
    let loaded = corpus::load_dir(&corpus::security_tasks(), |p| {
        p.ends_with("authz-tcp/03-ap-tcp-policy-deny-get.yaml")
    });
    assert!(!loaded.has_errors());
    let warnings: Vec<String> = loaded.reports.iter().map(ToString::to_string).collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("03-ap-tcp-policy-deny-get.yaml:23")
                && w.contains("denies all TCP traffic")),
        "{warnings:?}"
    );
}
