//! Writes JSON values as YAML in kubectl's block style (keys in order, a sequence's items
//! at its key's indentation, `{}` and `[]` for empty collections), for the store's files
//! and `weft get -o yaml`. Scalars are written by yaml-rust2's emitter, which quotes what
//! would otherwise read back as another type.

use std::fmt::Write;

use serde_json::Value;
use yaml_rust2::{Yaml, YamlEmitter};

/// The value as one YAML document, without the leading `---`, ending in a newline.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => mapping(map, 0, &mut out),
        Value::Array(items) if !items.is_empty() => sequence(items, 0, &mut out),
        other => {
            out.push_str(&inline(other));
            out.push('\n');
        }
    }
    out
}

/// A mapping's entries, each on its own line at `indent`.
fn mapping(map: &serde_json::Map<String, Value>, indent: usize, out: &mut String) {
    for (key, value) in map {
        let _ = write!(out, "{:indent$}{}:", "", scalar(&Yaml::String(key.clone())));
        nested(value, indent, out);
    }
}

/// A sequence's items, each `- ` at `indent` (kubectl's style: the same indentation as
/// the key that holds it).
fn sequence(items: &[Value], indent: usize, out: &mut String) {
    for item in items {
        let _ = write!(out, "{:indent$}-", "");
        match item {
            Value::Object(map) if !map.is_empty() => {
                // The first entry on the dash's line, the others under it.
                let mut entries = String::new();
                mapping(map, indent + 2, &mut entries);
                out.push(' ');
                out.push_str(&entries[indent + 2..]);
            }
            Value::Array(inner) if !inner.is_empty() => {
                let mut nested_items = String::new();
                sequence(inner, indent + 2, &mut nested_items);
                out.push(' ');
                out.push_str(&nested_items[indent + 2..]);
            }
            other => {
                out.push(' ');
                out.push_str(&inline(other));
                out.push('\n');
            }
        }
    }
}

/// What follows a key's colon: the value inline, or its block on the next lines.
fn nested(value: &Value, indent: usize, out: &mut String) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            mapping(map, indent + 2, out);
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            sequence(items, indent, out);
        }
        other => {
            out.push(' ');
            out.push_str(&inline(other));
            out.push('\n');
        }
    }
}

/// A scalar, or an empty collection, on one line.
fn inline(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => scalar(&Yaml::String(s.clone())),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

/// A scalar as yaml-rust2 writes it (quoted when it would read back as something else,
/// with escapes for line breaks).
fn scalar(node: &Yaml) -> String {
    let mut out = String::new();
    if YamlEmitter::new(&mut out).dump(node).is_err() {
        return String::new();
    }
    let text = out.strip_prefix("---").unwrap_or(&out);
    text.strip_prefix(['\n', ' ']).unwrap_or(text).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn block_yaml_that_reads_back_the_same() {
        let v = json!({
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": "reviews", "labels": {"version": "1.0", "on": "yes"}},
            "spec": {"hosts": ["reviews"], "http": [{"timeout": "1s", "weight": 80, "ratio": 0.5, "script": "a\nb\n", "empty": [], "none": null, "flag": true}]},
        });
        let text = to_yaml(&v);
        assert!(
            text.starts_with("apiVersion: networking.istio.io/v1\n"),
            "{text}"
        );
        let doc = weft_api::yaml::split_documents(&text);
        let (back, _) = weft_api::yaml::parse_document(&doc[0]).expect("parses");
        assert_eq!(back, v, "{text}");
    }

    /// kubectl's shape: a sequence's dashes at its key's indentation, a mapping item's
    /// first key on the dash's line.
    #[test]
    fn sequences_sit_at_their_keys_indentation_as_kubectl_writes_them() {
        let v = json!({
            "spec": {
                "hosts": ["reviews"],
                "http": [{"route": [{"destination": {"host": "reviews", "subset": "v1"}, "weight": 100}]}],
                "gateways": [],
                "nested": [["a", "b"], []],
                "empty": {},
            },
        });
        // (serde_json's map keeps its keys sorted here.)
        assert_eq!(
            to_yaml(&v),
            "spec:
  empty: {}
  gateways: []
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews
        subset: v1
      weight: 100
  nested:
  - - a
    - b
  - []
"
        );
    }

    #[test]
    fn scalars_that_would_read_back_as_another_type_are_quoted() {
        let v = json!({
            "a": "true", "b": "1.0", "c": "", "d": "x: y", "e": "- z", "f": "line\nbreak",
            "g": "null", "h": "#x", "i": "*", "j": 7, "k": -1.5, "weird key: x": "ok",
            "list": ["yes", "on", "", "0x10", "null"],
        });
        let text = to_yaml(&v);
        let doc = weft_api::yaml::split_documents(&text);
        let (back, _) = weft_api::yaml::parse_document(&doc[0]).expect("parses");
        assert_eq!(back, v, "{text}");
    }
}
