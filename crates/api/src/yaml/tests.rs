use super::*;

fn parse(text: &str) -> Vec<(Value, LineMap)> {
    split_documents(text)
        .iter()
        .map(|d| parse_document(d).expect("parses"))
        .collect()
}

#[test]
fn splits_documents_and_keeps_their_lines() {
    let text = "# leading comment\na: 1\n---\n# only a comment\n---\nb: 2\n...\n--- {c: 3}\n";
    let docs = split_documents(text);
    let firsts: Vec<u32> = docs.iter().map(|d| d.first_line).collect();
    assert_eq!(firsts, [1, 5, 8]);
    let values: Vec<Value> = docs.iter().map(|d| parse_document(d).unwrap().0).collect();
    assert_eq!(
        values,
        [
            serde_json::json!({"a": 1}),
            serde_json::json!({"b": 2}),
            serde_json::json!({"c": 3})
        ]
    );
}

#[test]
fn records_the_line_of_every_field() {
    let text = "a: 1\n---\nkind: X\nspec:\n  http:\n  - route:\n    - weight: 10\n      destination:\n        host: r\n";
    let docs = parse(text);
    let lines = &docs[1].1;
    let spec = FieldPath::of("spec");
    assert_eq!(lines.line_of(&FieldPath::of("kind")), 3);
    assert_eq!(lines.line_of(&spec.key("http")), 5);
    assert_eq!(lines.line_of(&spec.key("http").index(0)), 6);
    let route0 = spec.key("http").index(0).key("route").index(0);
    assert_eq!(lines.line_of(&route0.key("weight")), 7);
    assert_eq!(lines.line_of(&route0.key("destination").key("host")), 9);
    // An absent field is reported at its nearest parent.
    assert_eq!(lines.line_of(&route0.key("destination").key("subset")), 8);
}

#[test]
fn resolves_scalars_like_kubernetes_tools() {
    let (v, _) = parse("a: 1\nb: 1.5\nc: true\nd: ~\ne: '1'\nf: 0x10\ng: 1e3\nh: v1\ni: \"true\"\nj: !!str 80\nk: -3\n")
        .remove(0);
    assert_eq!(
        v,
        serde_json::json!({"a": 1, "b": 1.5, "c": true, "d": null, "e": "1", "f": 16, "g": 1000.0,
                           "h": "v1", "i": "true", "j": "80", "k": -3})
    );
}

#[test]
fn reads_json_documents() {
    let (v, lines) =
        parse("{\n  \"kind\": \"Gateway\",\n  \"spec\": {\"servers\": []}\n}\n").remove(0);
    assert_eq!(v["kind"], "Gateway");
    assert_eq!(lines.line_of(&FieldPath::of("spec")), 3);
}

#[test]
fn anchors_aliases_and_merge_keys() {
    let (v, _) = parse("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\nlist: [*b]\n").remove(0);
    assert_eq!(v["other"], serde_json::json!({"x": 1, "y": 3}));
    assert_eq!(v["list"][0], serde_json::json!({"x": 1, "y": 2}));
}

#[test]
fn duplicate_keys_are_an_error_naming_both_lines() {
    let docs = split_documents("rules:\n- from:\n  - source: {a: 1}\n    source: {b: 2}\n");
    let err = parse_document(&docs[0]).unwrap_err();
    assert_eq!(err.line, 4);
    assert!(
        err.message.contains("\"source\" already defined at line 3"),
        "{}",
        err.message
    );
}

#[test]
fn syntax_errors_carry_the_file_line() {
    let text = "a: 1\n---\nkind: X\nspec:\n  hosts: [a\n  b: c\n";
    let docs = split_documents(text);
    assert!(parse_document(&docs[0]).is_ok());
    let err = parse_document(&docs[1]).unwrap_err();
    assert!(err.line >= 5, "line {}", err.line);
}

#[test]
fn subtree_reroots_line_maps() {
    let (_, lines) =
        parse("kind: List\nitems:\n- kind: A\n  metadata:\n    name: x\n- kind: B\n").remove(0);
    let item = lines.subtree(&FieldPath::of("items").index(0));
    assert_eq!(item.line_of(&FieldPath::of("metadata").key("name")), 5);
    assert_eq!(item.line_of(&FieldPath::of("spec")), 3);
}
