//! Writes JSON values as YAML (block style, keys in order), for the store's files and
//! `weft get -o yaml`.

use serde_json::Value;
use yaml_rust2::{Yaml, YamlEmitter, yaml};

/// The value as one YAML document, without the leading `---`, ending in a newline.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    let mut emitter = YamlEmitter::new(&mut out);
    emitter.multiline_strings(true);
    if emitter.dump(&to_node(value)).is_err() {
        // Writing to a String cannot fail; JSON is the fallback all the same.
        return format!("{value}\n");
    }
    let text = out.strip_prefix("---\n").unwrap_or(&out);
    let text = text
        .strip_prefix("---")
        .unwrap_or(text)
        .trim_start_matches(' ');
    format!("{text}\n")
}

fn to_node(value: &Value) -> Yaml {
    match value {
        Value::Null => Yaml::Null,
        Value::Bool(b) => Yaml::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Yaml::Integer(i),
            None => Yaml::Real(n.to_string()),
        },
        Value::String(s) => Yaml::String(s.clone()),
        Value::Array(items) => Yaml::Array(items.iter().map(to_node).collect()),
        Value::Object(map) => {
            let mut hash = yaml::Hash::new();
            for (k, v) in map {
                hash.insert(Yaml::String(k.clone()), to_node(v));
            }
            Yaml::Hash(hash)
        }
    }
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
}
