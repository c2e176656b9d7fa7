use crate::extensions::{EnvValueSource, FailStrategy, PluginPhase, PluginType, PullPolicy};
use crate::kind::Spec;
use crate::testing::*;

fn wasm(spec: &str) -> String {
    format!(
        "apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\nmetadata:\n  name: w\n  namespace: default\nspec:\n{spec}"
    )
}

fn with_url(url: &str) -> String {
    wasm(&format!("  url: \"{url}\"\n"))
}

const SHA: &str = "a7de3c6f3a6a1a8f3d1c9a7a0b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e";

#[test]
fn every_field_decodes() {
    let loaded = assert_valid(&wasm(&format!(
        "  selector:\n    matchLabels:\n      app: httpbin\n  url: oci://ghcr.io/example/plugin:v1\n  sha256: {SHA}\n  imagePullPolicy: IfNotPresent\n  imagePullSecret: registry-creds\n  pluginName: my-root-id\n  phase: AUTHN\n  priority: -10\n  failStrategy: FAIL_OPEN\n  type: HTTP\n  pluginConfig:\n    header_1: first_header\n    nested:\n      list: [1, 2]\n  vmConfig:\n    env:\n    - name: POD_NAME\n      valueFrom: HOST\n    - name: TRUST_DOMAIN\n      value: cluster.local\n  match:\n  - mode: SERVER\n    ports:\n    - number: 80\n    - number: 8080\n"
    )));
    let Spec::WasmPlugin(spec) = &loaded.objects[0].spec else {
        panic!("wrong kind");
    };
    assert_eq!(spec.phase, Some(PluginPhase::Authn));
    assert_eq!(spec.priority, Some(-10));
    assert_eq!(spec.image_pull_policy, Some(PullPolicy::IfNotPresent));
    assert_eq!(spec.fail_strategy, Some(FailStrategy::FailOpen));
    assert_eq!(spec.type_, Some(PluginType::Http));
    let config = spec.plugin_config.as_ref().expect("pluginConfig");
    assert_eq!(config["nested"]["list"][1], 2);
    let vm = spec.vm_config.as_ref().expect("vmConfig");
    assert_eq!(vm.env[0].value_from, EnvValueSource::Host);
    assert_eq!(vm.env[1].value_from, EnvValueSource::Inline);
    assert_eq!(spec.match_[0].ports[1].number, Some(8080));
}

#[test]
fn course_lab_plugin_loads() {
    assert_valid(&wasm(
        "  selector:\n    matchLabels:\n      app: httpbin\n  url: oci://docker.io/example/wasm:v1\n  pluginConfig:\n    header_1: \"first_header\"\n    header_2: \"second_header\"\n",
    ));
}

#[test]
fn course_text_selector_labels_is_reported() {
    // The course writes `selector.labels`; the field is matchLabels.
    let text = wasm(
        "  selector:\n    labels:\n      app: hello-world\n  url: oci://my-registry/hello-world:v1\n  pluginConfig:\n    greeting: hello\n    debug: true\n",
    );
    assert_warning(
        &text,
        &[
            "spec.selector.labels",
            "unknown field \"labels\"",
            "matchLabels",
        ],
    );
    assert_warning(&text, &["spec.selector", "no matchLabels"]);
}

#[test]
fn url_is_required() {
    assert_error(&wasm("  phase: STATS\n"), &["spec.url", "url is required"]);
    assert_error(&with_url(""), &["spec.url", "url is required"]);
}

#[test]
fn url_schemes_are_oci_http_https_or_file() {
    for ok in [
        "oci://ghcr.io/x/y:v1",
        "https://example.com/plugin.wasm",
        "http://10.0.0.1:8000/p.wasm",
        "file:///opt/filters/plugin.wasm",
        "/opt/filters/plugin.wasm",
        "ghcr.io/x/y:v1",
        "localhost:5000/plugin:v1",
    ] {
        assert_valid(&with_url(ok));
    }
    assert_error(
        &with_url("fake://example.com"),
        &[
            "spec.url",
            "scheme \"fake\" is not supported",
            "test.yaml:7",
        ],
    );
    assert_error(&with_url("#%blah$#@"), &["spec.url", "invalid url"]);
    // Go's parser reads this as http://oci:/... and Istio accepts it; say so.
    assert_warning(
        &with_url("oci://reg istry/x"),
        &[
            "spec.url",
            "not a valid oci URL (invalid character ' '",
            "http://oci://reg istry/x",
        ],
    );
    assert_error(
        &with_url("oci://reg istry/%zz"),
        &["spec.url", "invalid escape"],
    );
}

#[test]
fn sha256_is_64_lower_case_hex_digits() {
    assert_error(
        &wasm("  url: http://test\n  sha256: foo\n"),
        &["spec.sha256", "64 lower-case hex digits"],
    );
    assert_error(
        &wasm(&format!(
            "  url: http://test\n  sha256: {}\n",
            SHA.to_uppercase()
        )),
        &["spec.sha256", "use lower-case hex digits"],
    );
    assert_error(
        &wasm(&format!(
            "  url: http://test\n  sha256: sha256:{}\n",
            &SHA[..57]
        )),
        &["spec.sha256", "leave out the \"sha256:\" prefix"],
    );
    assert_valid(&wasm("  url: http://test\n  sha256: \"\"\n"));
}

#[test]
fn pull_secret_and_plugin_name_lengths() {
    assert_error(
        &wasm("  url: oci://r/x\n  imagePullSecret: \"\"\n"),
        &["spec.imagePullSecret", "1-253 characters"],
    );
    assert_error(
        &wasm("  url: http://test\n  pluginName: \"\"\n"),
        &["spec.pluginName", "1-256 characters"],
    );
    let long = "a".repeat(257);
    assert_error(
        &wasm(&format!("  url: http://test\n  pluginName: {long}\n")),
        &["spec.pluginName"],
    );
}

#[test]
fn pull_secret_with_a_non_oci_url_warns() {
    assert_warning(
        &wasm("  url: https://example.com/p.wasm\n  imagePullSecret: creds\n"),
        &["spec.imagePullSecret", "only used to pull OCI images"],
    );
    assert_valid(
        &wasm("  url: ghcr.io/x/y:v1\n  imagePullSecret: creds\n")
            .replace("ghcr.io", "oci://ghcr.io"),
    );
}

#[test]
fn vm_env_names_are_unique_and_host_values_are_not_inline() {
    let env = |body: &str| {
        wasm(&format!(
            "  url: http://test\n  vmConfig:\n    env:\n{body}"
        ))
    };
    assert_error(
        &env("    - name: a\n    - name: a\n"),
        &["spec.vmConfig.env[1].name", "duplicate env name \"a\""],
    );
    assert_error(
        &env("    - name: \"\"\n"),
        &["spec.vmConfig.env[0].name", "1-256"],
    );
    assert_error(&env("    - value: x\n"), &["spec.vmConfig.env[0].name"]);
    assert_error(
        &env("    - name: test\n      valueFrom: HOST\n      value: value\n"),
        &[
            "spec.vmConfig.env[0].value",
            "only be set when valueFrom is INLINE",
        ],
    );
    assert_error(
        &env(&format!(
            "    - name: big\n      value: {}\n",
            "v".repeat(2049)
        )),
        &["spec.vmConfig.env[0].value", "longer than 2048"],
    );
}

#[test]
fn match_ports_are_required_and_in_range() {
    let m = |body: &str| wasm(&format!("  url: http://test\n  match:\n  - ports:\n{body}"));
    assert_error(
        &m("    - {}\n"),
        &["spec.match[0].ports[0].number", "required"],
    );
    assert_error(
        &m("    - number: 0\n"),
        &["spec.match[0].ports[0].number", "1-65535"],
    );
    assert_error(&m("    - number: 65536\n"), &["ports[0].number", "1-65535"]);
    assert_error(
        &m("    - number: 80\n    - number: 80\n"),
        &["spec.match[0].ports[1].number", "listed twice"],
    );
}

#[test]
fn enums_are_istios() {
    assert_error(
        &wasm("  url: http://test\n  phase: AUTH\n"),
        &["spec.phase", "unknown variant `AUTH`"],
    );
    assert_error(
        &wasm("  url: http://test\n  imagePullPolicy: IF_NOT_PRESENT\n"),
        &["spec.imagePullPolicy", "IfNotPresent"],
    );
    assert_error(
        &wasm("  url: http://test\n  failStrategy: OPEN\n"),
        &["spec.failStrategy"],
    );
    assert_error(&wasm("  url: http://test\n  type: L7\n"), &["spec.type"]);
    assert_error(
        &wasm("  url: http://test\n  match:\n  - mode: IN\n"),
        &["spec.match[0].mode"],
    );
}

#[test]
fn priority_is_an_int32() {
    assert_valid(&wasm("  url: http://test\n  priority: 2147483647\n"));
    assert_error(
        &wasm("  url: http://test\n  priority: 2147483648\n"),
        &["spec.priority"],
    );
}

#[test]
fn selector_and_target_ref_exclude_each_other() {
    assert_error(
        &wasm(
            "  url: http://test\n  selector:\n    matchLabels:\n      app: a\n  targetRef:\n    kind: Gateway\n    group: gateway.networking.k8s.io\n    name: gw\n",
        ),
        &[
            "spec.targetRef",
            "only one of selector, targetRef and targetRefs",
        ],
    );
    assert_error(
        &wasm("  url: http://test\n  selector:\n    matchLabels:\n      istio: \"bar*\"\n"),
        &[
            "spec.selector.matchLabels.istio",
            "invalid label value \"bar*\"",
        ],
    );
}
