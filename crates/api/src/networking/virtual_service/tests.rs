//! Tests of the VirtualService model and rules, driven through the real loader: Istio's
//! samples, the seeds' snippets, and each rule with a valid and an invalid case. The HTTP
//! route rules are in `tests/http_rules.rs`, TCP/TLS and the unreachable-rule analysis in
//! `tests/l4_rules.rs`.

use std::path::{Path, PathBuf};

use crate::diag::Severity;
use crate::load::{LoadOptions, load_paths};
use crate::testing::{assert_error, assert_valid, assert_warning, load, problems};

mod http_rules;
mod l4_rules;

/// A VirtualService document around `spec` (written unindented); the spec's first line is
/// line 7 of `test.yaml`.
pub(super) fn vs(spec: &str) -> String {
    let mut out = String::from(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: test\n  namespace: default\nspec:\n",
    );
    for line in spec.strip_prefix('\n').unwrap_or(spec).lines() {
        out.push_str("  ");
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Files under `dir` (recursively) that hold a VirtualService.
fn files_with_virtual_services(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_with_virtual_services(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml")
            && std::fs::read_to_string(&path).is_ok_and(|t| t.contains("kind: VirtualService"))
        {
            out.push(path);
        }
    }
}

#[test]
fn istio_samples_and_security_tasks_load_cleanly() {
    let mut files = Vec::new();
    for dir in [
        crate::testing::shared("istio-samples/samples"),
        crate::testing::shared("istio-security/tasks"),
    ] {
        files_with_virtual_services(Path::new(&dir), &mut files);
    }
    assert!(files.len() >= 25, "found only {} files", files.len());
    let loaded = load_paths(&files, &LoadOptions::default());
    let ours: Vec<String> = loaded
        .reports
        .iter()
        .filter(|r| {
            r.object
                .as_ref()
                .is_some_and(|o| o.kind == "VirtualService")
        })
        .map(ToString::to_string)
        .collect();
    let bad: Vec<&String> = ours
        .iter()
        .filter(|r| r.contains(": error:") || r.contains("unknown field"))
        .collect();
    assert!(bad.is_empty(), "{}", ours.join("\n"));
    // Istio itself warns that the second match-less rule of this sample is never used.
    for r in &ours {
        assert!(
            r.contains("fault-injection-details-v1.yaml:18") && r.contains("never used"),
            "unexpected report: {r}"
        );
    }
    let documents: usize = files
        .iter()
        .map(|f| {
            std::fs::read_to_string(f)
                .map(|t| t.matches("kind: VirtualService").count())
                .unwrap_or(0)
        })
        .sum();
    let objects = loaded
        .objects
        .iter()
        .filter(|o| o.kind == crate::Kind::VirtualService)
        .count();
    assert_eq!(objects, documents);
}

#[test]
fn a_route_split_across_two_rules_warns_that_the_second_is_never_used() {
    // Seed 004a (L2251): the 70/30 "split" puts each destination in its own rule; the first
    // rule has no match, so it takes every request and the second is dead.
    let yaml = vs(r#"
hosts: [customers.default.svc.cluster.local]
http:
- name: customers-v1-routes
  route:
  - destination: {host: customers.default.svc.cluster.local, subset: v1}
    weight: 70
- name: customers-v2-routes
  route:
  - destination: {host: customers.default.svc.cluster.local, subset: v2}
    weight: 30
"#);
    assert_warning(
        &yaml,
        &[
            "test.yaml:13",
            "spec.http[1]",
            "\"customers-v2-routes\" is never used",
            "\"customers-v1-routes\"",
        ],
    );
}

#[test]
fn a_route_split_within_one_rule_is_valid() {
    assert_valid(&vs(r#"
hosts: [customers.default.svc.cluster.local]
http:
- route:
  - destination: {host: customers.default.svc.cluster.local, port: {number: 80}, subset: v1}
    weight: 70
  - destination: {host: customers.default.svc.cluster.local, port: {number: 80}, subset: v2}
    weight: 30
"#));
}

#[test]
fn host_instead_of_hosts_is_named_and_makes_a_delegate() {
    // Seed 004b: `host:` where `hosts:` is meant. Istio would take the result for a delegate
    // VirtualService; say both things.
    let yaml = vs(r#"
host: customers.default.svc.cluster.local
http:
- route:
  - destination: {host: customers.default.svc.cluster.local}
"#);
    assert_warning(
        &yaml,
        &[
            "test.yaml:7",
            "spec.host",
            "unknown field \"host\"",
            "did you mean \"hosts\"",
        ],
    );
    let all = problems(&yaml);
    assert!(
        all.iter()
            .any(|r| r.contains("info") && r.contains("delegate VirtualService")),
        "{all:?}"
    );
    let with_gateway = vs(r#"
host: customers.default.svc.cluster.local
gateways: [gateway]
http:
- route:
  - destination: {host: customers.default.svc.cluster.local}
"#);
    assert_error(
        &with_gateway,
        &[
            "test.yaml:8",
            "spec.gateways",
            "delegate VirtualService (no hosts) cannot have gateways",
            "add hosts",
        ],
    );
}

#[test]
fn delegates_have_only_http_routes_and_do_not_delegate_again() {
    let delegate = load(&vs(r#"
http:
- match: [{uri: {prefix: /productpage/v1/}}]
  route:
  - destination: {host: productpage-v1.nsA.svc.cluster.local}
- route:
  - destination: {host: productpage.nsA.svc.cluster.local}
"#));
    assert!(!delegate.has_errors());
    assert!(
        delegate
            .reports
            .iter()
            .all(|r| r.severity() == Severity::Info)
    );
    assert_error(
        &vs(r#"
tcp:
- route:
  - destination: {host: db}
"#),
        &["spec.tcp", "cannot have tcp routes"],
    );
    assert_error(
        &vs(r#"
tls:
- match: [{sniHosts: [a.com]}]
  route:
  - destination: {host: db}
"#),
        &["spec.tls", "cannot have tls routes"],
    );
    assert_error(
        &vs(r#"
http:
- delegate: {name: other}
"#),
        &["spec.http[0].delegate", "cannot delegate again"],
    );
}

#[test]
fn a_root_route_delegates_and_does_nothing_else() {
    assert_valid(&vs(r#"
hosts: [bookinfo.com]
gateways: [mygateway]
http:
- match: [{uri: {prefix: /productpage}}]
  delegate: {name: productpage, namespace: nsA}
- match: [{uri: {prefix: /reviews}}]
  delegate: {name: reviews, namespace: nsB}
"#));
    assert_error(
        &vs(r#"
hosts: [bookinfo.com]
http:
- delegate: {name: productpage}
  route:
  - destination: {host: productpage}
"#),
        &[
            "spec.http[0].route",
            "delegates cannot also have route destinations",
        ],
    );
    assert_error(
        &vs(r#"
hosts: [bookinfo.com]
http:
- delegate: {name: productpage}
  redirect: {uri: /x}
"#),
        &["spec.http[0].redirect", "delegates cannot also redirect"],
    );
    assert_warning(
        &vs(r#"
hosts: [bookinfo.com]
http:
- delegate: {namespace: nsA}
"#),
        &[
            "spec.http[0].delegate.name",
            "no VirtualService will be found",
        ],
    );
}

#[test]
fn some_route_is_required() {
    assert_error(
        &vs("hosts: [reviews]\n"),
        &["test.yaml:6", "spec.http", "at least one route"],
    );
}

#[test]
fn hosts_are_dns_names_with_a_wildcard_first_label() {
    for ok in [
        "reviews",
        "reviews.prod.svc.cluster.local",
        "\"*.example.com\"",
        "ISTIOD-HOST.DOMAIN",
        "10.1.2.3",
        "\"*foo.example.com\"",
    ] {
        assert_valid(&vs(&format!(
            "hosts: [{ok}]\nhttp:\n- route:\n  - destination: {{host: reviews}}\n"
        )));
    }
    let bad = |host: &str, needles: &[&str]| {
        let yaml = vs(&format!(
            "hosts:\n- \"{host}\"\nhttp:\n- route:\n  - destination: {{host: reviews}}\n"
        ));
        let mut all = vec!["test.yaml:8", "spec.hosts[0]"];
        all.extend_from_slice(needles);
        assert_error(&yaml, &all);
    };
    bad("foo_bar.com", &["label \"foo_bar\" is not a DNS label"]);
    bad("foo.*.com", &["only the first label may hold a wildcard"]);
    bad("default/reviews", &["not namespace/name"]);
    bad(
        "reviews.123",
        &["top-level domain \"123\" cannot be all digits"],
    );
    bad("*", &["host \"*\" is not allowed", "applies to sidecars"]);
}

#[test]
fn the_wildcard_host_needs_a_gateway() {
    assert_valid(&vs(r#"
hosts: ["*"]
gateways: [bookinfo-gateway]
http:
- route:
  - destination: {host: productpage, port: {number: 9080}}
"#));
    assert_error(
        &vs(r#"
hosts: ["*"]
gateways: [bookinfo-gateway, mesh]
http:
- route:
  - destination: {host: productpage}
"#),
        &["spec.hosts[0]", "host \"*\" is not allowed"],
    );
}

#[test]
fn hosts_must_not_overlap() {
    assert_error(
        &vs(r#"
hosts: ["*.example.com", a.example.com]
gateways: [gw]
http:
- route:
  - destination: {host: reviews}
"#),
        &[
            "spec.hosts[1]",
            "duplicate hosts",
            "\"a.example.com\" overlaps \"*.example.com\"",
        ],
    );
    assert_error(
        &vs("hosts: [reviews, reviews]\nhttp:\n- route:\n  - destination: {host: reviews}\n"),
        &["spec.hosts[1]", "duplicate hosts"],
    );
    assert_valid(&vs(
        "hosts: [reviews, ratings]\nhttp:\n- route:\n  - destination: {host: reviews}\n",
    ));
}

#[test]
fn gateways_are_mesh_names_or_namespace_slash_name() {
    assert_valid(&vs(r#"
hosts: [reviews]
gateways: [mesh, my-gateway, istio-system/ingress]
http:
- route:
  - destination: {host: reviews}
"#));
    let with = |gw: &str| {
        vs(&format!(
            "hosts: [reviews]\ngateways:\n- \"{gw}\"\nhttp:\n- route:\n  - destination: {{host: reviews}}\n"
        ))
    };
    assert_error(
        &with("bad_gw"),
        &["test.yaml:9", "spec.gateways[0]", "invalid gateway name"],
    );
    assert_error(
        &with("istio-system/"),
        &["needs both a namespace and a name"],
    );
    assert_error(&with("Bad_NS/gw"), &["invalid namespace \"Bad_NS\""]);
    assert_warning(
        &with("gw.istio-system"),
        &["spec.gateways[0]", "legacy", "\"istio-system/gw\""],
    );
}

#[test]
fn export_to_takes_dot_star_or_namespaces() {
    let with = |list: &str| {
        vs(&format!(
            "hosts: [reviews]\nexportTo: {list}\nhttp:\n- route:\n  - destination: {{host: reviews}}\n"
        ))
    };
    assert_valid(&with("[\".\", other-ns]"));
    assert_valid(&with("[\"*\"]"));
    assert_error(
        &with("[\".\", default]"),
        &[
            "spec.exportTo[1]",
            "both name this VirtualService's namespace",
        ],
    );
    assert_error(&with("[a, a]"), &["spec.exportTo[1]", "more than once"]);
    assert_error(
        &with("[\"*\", a]"),
        &["spec.exportTo", "cannot be combined"],
    );
    assert_error(
        &with("[\"~\"]"),
        &["spec.exportTo[0]", "only allowed on a ServiceEntry"],
    );
    assert_error(
        &with("[Bad_ns]"),
        &["spec.exportTo[0]", "invalid exportTo entry"],
    );
}

#[test]
fn destinations_name_one_service() {
    let with = |dest: &str| {
        vs(&format!(
            "hosts: [reviews]\nhttp:\n- route:\n  - destination: {dest}\n"
        ))
    };
    assert_valid(&with(
        "{host: reviews.prod.svc.cluster.local, subset: v1, port: {number: 9080}}",
    ));
    assert_error(
        &with("{subset: v1}"),
        &[
            "test.yaml:10",
            "spec.http[0].route[0].destination.host",
            "required",
        ],
    );
    assert_error(
        &with("{host: \"*\"}"),
        &["destination host \"*\" is not allowed"],
    );
    assert_error(&with("{host: bad_host}"), &["invalid destination host"]);
    assert_error(
        &with("{host: reviews, subset: v1_x}"),
        &["destination.subset", "invalid subset name \"v1_x\""],
    );
    assert_error(
        &with("{host: reviews, port: {number: 0}}"),
        &["destination.port.number", "1-65535"],
    );
    // A misspelt field is named, and what it left out is still reported.
    let typo = with("{hosts: reviews}");
    assert_error(&typo, &["destination.host", "required"]);
    assert!(
        problems(&typo)
            .iter()
            .any(|r| r.contains("unknown field \"hosts\"") && r.contains("did you mean \"host\"")),
        "{:?}",
        problems(&typo)
    );
}

#[test]
fn decode_errors_name_the_field() {
    assert_error(
        &vs(r#"
hosts: [reviews]
http:
- route:
  - destination: {host: reviews}
    weight: fifty
"#),
        &["spec.http[0].route[0].weight", "invalid type"],
    );
    assert_error(
        &vs(r#"
hosts: [reviews]
http:
- redirect: {uri: /x, derivePort: FROM_NOWHERE}
"#),
        &["spec.http[0].redirect.derivePort", "FROM_REQUEST_PORT"],
    );
}

#[test]
fn all_api_versions_share_the_model() {
    for version in ["v1alpha3", "v1beta1", "v1"] {
        let yaml = vs("hosts: [reviews]\nhttp:\n- route:\n  - destination: {host: reviews}\n")
            .replace(
                "networking.istio.io/v1\n",
                &format!("networking.istio.io/{version}\n"),
            );
        assert_valid(&yaml);
    }
}
