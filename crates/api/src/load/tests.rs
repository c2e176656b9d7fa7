use std::path::Path;

use super::*;
use crate::testing::{assert_error, assert_valid, assert_warning, load, load_with, problems};

const SERVICE: &str = "apiVersion: v1
kind: Service
metadata:
  name: reviews
  labels:
    app: reviews
spec:
  ports:
  - port: 9080
    name: http
  selector:
    app: reviews
";

#[test]
fn loads_an_object_with_its_source_and_default_namespace() {
    let loaded = assert_valid(SERVICE);
    let [svc] = loaded.objects.as_slice() else {
        panic!("one object")
    };
    assert_eq!(svc.kind, Kind::Service);
    assert_eq!(svc.namespace(), "default");
    assert_eq!(svc.raw["metadata"]["namespace"], "default");
    assert_eq!(svc.source.location.to_string(), "test.yaml:1");
    assert_eq!(
        svc.source
            .locate(&FieldPath::of("spec").key("ports").index(0).key("port"))
            .line,
        9
    );
}

#[test]
fn many_documents_and_a_list() {
    let text = format!(
        "{SERVICE}---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Namespace\n  metadata: {{name: foo}}\n- apiVersion: v1\n  kind: ServiceAccount\n  metadata: {{name: bookinfo-reviews, namespace: foo}}\n"
    );
    let loaded = assert_valid(&text);
    let names: Vec<String> = loaded
        .objects
        .iter()
        .map(|o| o.object_ref().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "Service default/reviews",
            "Namespace foo",
            "ServiceAccount foo/bookinfo-reviews"
        ]
    );
    assert_eq!(loaded.objects[2].source.location.line, 20);
}

#[test]
fn a_field_of_the_wrong_type_names_file_line_object_and_path() {
    let text = SERVICE.replace("port: 9080", "port: nine");
    assert_error(
        &text,
        &[
            "test.yaml:9: error: Service default/reviews: spec.ports[0].port: invalid type: string \"nine\"",
        ],
    );
}

#[test]
fn unknown_kinds_and_versions_are_errors() {
    assert_error(
        "apiVersion: v1\nkind: Servce\nmetadata: {name: a}\n",
        &["test.yaml:2", "unknown kind \"Servce\""],
    );
    assert_error(
        "apiVersion: networking.istio.io/v2\nkind: VirtualService\nmetadata: {name: a}\n",
        &["not served in apiVersion", "networking.istio.io/v1alpha3"],
    );
    assert_error(
        "kind: Service\nmetadata: {name: a}\n",
        &["apiVersion: apiVersion is required"],
    );
    assert_error(
        "- a\n- b\n",
        &["expected an object with apiVersion and kind"],
    );
}

#[test]
fn unknown_fields_warn_and_strict_mode_refuses_them() {
    let text = SERVICE.replace("  selector:", "  selectr:");
    assert_warning(
        &text,
        &["test.yaml:11", "spec.selectr", "unknown field \"selectr\""],
    );
    let strict = LoadOptions {
        strict: true,
        ..LoadOptions::default()
    };
    let loaded = load_with(&text, &strict);
    assert!(loaded.has_errors() && loaded.objects.is_empty());
}

#[test]
fn a_broken_document_does_not_hide_the_others() {
    let text = format!("apiVersion: v1\nkind: Service\nmetadata: {{name: [\n---\n{SERVICE}");
    let loaded = load(&text);
    assert_eq!(loaded.objects.len(), 1);
    let errors: Vec<String> = loaded.errors().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("test.yaml:") && errors[0].contains("invalid YAML"),
        "{errors:?}"
    );
}

#[test]
fn duplicate_keys_are_refused() {
    let text = SERVICE.replace(
        "  selector:\n    app: reviews\n",
        "  selector:\n    app: reviews\n    app: ratings\n",
    );
    assert_error(
        &text,
        &["test.yaml:13", "\"app\" already defined at line 12"],
    );
}

#[test]
fn metadata_rules() {
    assert_error(
        &SERVICE.replace("name: reviews", "name: Reviews"),
        &["metadata.name", "invalid name \"Reviews\""],
    );
    assert_error(
        &SERVICE.replace("  name: reviews\n", ""),
        &["metadata.name", "required"],
    );
    assert_error(
        &SERVICE.replace("app: reviews\nspec", "app: -reviews\nspec"),
        &["metadata.labels.app", "invalid label value"],
    );
    let ns = SERVICE.replace("name: reviews\n", "name: reviews\n  namespace: Bad_NS\n");
    assert_error(&ns, &["metadata.namespace", "invalid namespace"]);
}

#[test]
fn cluster_scoped_kinds_have_no_namespace() {
    let loaded =
        assert_valid("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: foo\n  namespace: bar\n");
    assert_eq!(loaded.objects[0].namespace(), "");
}

#[test]
fn json_documents_load_like_yaml() {
    let json = r#"{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a"},
 "spec": {"ports": [{"port": "x"}]}}"#;
    let p = problems(json);
    assert!(
        p.iter()
            .any(|p| p.starts_with("test.yaml:2: error: Service default/a: spec.ports[0].port")),
        "{p:?}"
    );
}

#[test]
fn loads_directories_recursively_in_name_order() {
    let dir = std::env::temp_dir().join(format!("weft-load-test-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("b.yaml"), SERVICE.replace("reviews", "b")).unwrap();
    std::fs::write(dir.join("sub/a.yml"), SERVICE.replace("reviews", "a")).unwrap();
    std::fs::write(dir.join("notes.txt"), "not config").unwrap();
    let loaded = load_paths(&[&dir], &LoadOptions::default());
    std::fs::remove_dir_all(&dir).unwrap();
    let names: Vec<&str> = loaded.objects.iter().map(Object::name).collect();
    assert_eq!(names, ["b", "a"]);
    assert_eq!(loaded.files, 2);
    let missing = load_paths(
        &[Path::new("/nonexistent/weft.yaml")],
        &LoadOptions::default(),
    );
    assert!(
        missing
            .errors()
            .next()
            .unwrap()
            .to_string()
            .contains("/nonexistent/weft.yaml: error: cannot read")
    );
}

#[test]
fn suggestions_for_misspelt_names() {
    let known = [
        "hosts".to_string(),
        "gateways".to_string(),
        "http".to_string(),
    ];
    assert_eq!(did_you_mean("host", &known), Some("hosts"));
    assert_eq!(did_you_mean("gatways", &known), Some("gateways"));
    assert_eq!(did_you_mean("tcp", &known), None);
}

#[test]
fn a_known_field_without_a_value_is_unset_as_the_api_server_prunes_it() {
    // `selector:` with nothing under it is no selector; `metadata:` with nothing is no name.
    let loaded = assert_valid(&SERVICE.replace("  selector:\n    app: reviews\n", "  selector:\n"));
    assert_eq!(loaded.objects.len(), 1);
    assert_error(
        "apiVersion: v1\nkind: Service\nmetadata:\nspec:\n  ports: [{port: 80}]\n",
        &["metadata.name", "required"],
    );
    // An unknown field stays unknown whatever its value.
    assert_warning(
        &SERVICE.replace("  selector:\n    app: reviews\n", "  selectr:\n"),
        &["spec.selectr", "unknown field"],
    );
}
