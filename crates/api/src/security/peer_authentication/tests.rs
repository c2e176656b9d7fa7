use crate::kind::Spec;
use crate::security::peer_authentication::MtlsMode;
use crate::testing::corpus;
use crate::testing::*;

fn pa(spec: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: pa\n  namespace: foo\nspec:\n{spec}"
    )
}

#[test]
fn decodes_modes_and_numeric_port_keys() {
    let loaded = assert_valid(&pa(
        "  selector:\n    matchLabels:\n      app: finance\n  mtls:\n    mode: STRICT\n  portLevelMtls:\n    8080:\n      mode: DISABLE\n    \"9090\":\n      mode: PERMISSIVE\n",
    ));
    let Spec::PeerAuthentication(spec) = &loaded.objects[0].spec else {
        panic!("wrong kind");
    };
    assert_eq!(spec.mtls.as_ref().map(|m| m.mode), Some(MtlsMode::Strict));
    let ports = spec.port_level_mtls.as_ref().expect("ports");
    assert_eq!(ports.get(&8080).map(|m| m.mode), Some(MtlsMode::Disable));
    assert_eq!(ports.get(&9090).map(|m| m.mode), Some(MtlsMode::Permissive));
}

#[test]
fn empty_spec_and_unset_mode_are_valid() {
    assert_valid(&pa("  {}\n"));
    assert_valid(&pa("  mtls:\n    mode: UNSET\n"));
    assert_valid(&pa("  mtls: {}\n"));
}

#[test]
fn unknown_mode_is_refused() {
    assert_error(
        &pa("  mtls:\n    mode: BLAH\n"),
        &[
            "spec.mtls.mode",
            "unknown variant `BLAH`",
            "STRICT",
            "test.yaml:8",
        ],
    );
    // The mode names are case-sensitive, as in Istio.
    assert_error(&pa("  mtls:\n    mode: strict\n"), &["spec.mtls.mode"]);
}

#[test]
fn port_level_mtls_needs_a_selector_with_labels() {
    let text = pa("  mtls:\n    mode: STRICT\n  portLevelMtls:\n    8080:\n      mode: DISABLE\n");
    assert_error(
        &text,
        &["spec.portLevelMtls", "requires a selector", "test.yaml:9"],
    );
    let empty_selector =
        pa("  selector:\n    matchLabels: {}\n  portLevelMtls:\n    8080:\n      mode: DISABLE\n");
    assert_error(
        &empty_selector,
        &["spec.portLevelMtls", "requires a selector"],
    );
}

#[test]
fn port_level_mtls_must_not_be_empty() {
    assert_error(
        &pa("  selector:\n    matchLabels:\n      app: a\n  portLevelMtls: {}\n"),
        &["spec.portLevelMtls", "at least one port"],
    );
}

#[test]
fn port_keys_must_be_ports() {
    let sel = "  selector:\n    matchLabels:\n      app: a\n";
    assert_error(
        &pa(&format!(
            "{sel}  portLevelMtls:\n    0:\n      mode: STRICT\n"
        )),
        &[
            "spec.portLevelMtls.0",
            "port number 0 must be in 1-65535",
            "test.yaml:11",
        ],
    );
    assert_error(
        &pa(&format!(
            "{sel}  portLevelMtls:\n    70000:\n      mode: STRICT\n"
        )),
        &["spec.portLevelMtls.70000", "1-65535"],
    );
    assert_error(
        &pa(&format!(
            "{sel}  portLevelMtls:\n    acd:\n      mode: STRICT\n"
        )),
        &["spec.portLevelMtls"],
    );
}

#[test]
fn selector_without_labels_warns_with_its_reach() {
    assert_warning(
        &pa("  selector: {}\n  mtls:\n    mode: STRICT\n"),
        &["spec.selector", "no matchLabels", "namespace \"foo\""],
    );
    let mesh = pa("  selector: {}\n").replace("namespace: foo", "namespace: istio-system");
    assert_warning(&mesh, &["spec.selector", "every workload in the mesh"]);
}

#[test]
fn selector_labels_are_checked() {
    assert_error(
        &pa("  selector:\n    matchLabels:\n      \"app*\": x\n"),
        &["spec.selector.matchLabels[app*]"],
    );
}

#[test]
fn peer_authentication_has_no_target_ref() {
    let text =
        pa("  targetRef:\n    kind: Gateway\n    group: gateway.networking.k8s.io\n    name: gw\n");
    let p = problems(&text).join("\n");
    assert!(p.contains("unknown field \"targetRef\""), "{p}");
}

#[test]
fn security_task_corpus_loads_cleanly() {
    let loaded = corpus::load_dir(&corpus::security_tasks(), |_| true);
    let (count, bad) = corpus::check(&loaded, "PeerAuthentication");
    assert!(count >= 15, "only {count} PeerAuthentications loaded");
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn seed_course_examples() {
    // The workload policy of the course text, and its namespace-wide STRICT policy.
    assert_valid(&pa(
        "  selector:\n    matchLabels:\n      app: hello-world\n  mtls:\n    mode: STRICT\n",
    ));
    assert_valid(
        &pa("  mtls:\n    mode: STRICT\n").replace("namespace: foo", "namespace: default"),
    );
}
