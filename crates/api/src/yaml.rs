//! Reads YAML (and JSON, which is YAML) into plain JSON values, remembering the line of
//! every field so that decoding and validation errors can point at it.
//!
//! Files are split into documents at `---` lines before parsing, as kubectl does, so that
//! one broken document does not hide the others.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::path::FieldPath;

/// One YAML document of a file, not yet parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawDocument<'a> {
    /// The 1-based line at which the document's text starts in the file.
    pub first_line: u32,
    pub text: &'a str,
}

/// Splits a file into its documents. Documents holding nothing but blank lines and
/// comments are dropped, as every Kubernetes tool drops them.
pub fn split_documents(text: &str) -> Vec<RawDocument<'_>> {
    let mut docs = Vec::new();
    let mut start = 0usize;
    let mut start_line = 1u32;
    let mut offset = 0usize;
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let trimmed = line.trim_end_matches(['\n', '\r']);
        let separator = trimmed == "---"
            || trimmed.starts_with("--- ")
            || trimmed.starts_with("---\t")
            || trimmed == "...";
        if separator && n > 0 {
            docs.push(RawDocument {
                first_line: start_line,
                text: &text[start..offset],
            });
            start = offset;
            start_line = n as u32 + 1;
        }
        offset += line.len();
    }
    docs.push(RawDocument {
        first_line: start_line,
        text: &text[start..],
    });
    docs.retain(|d| has_content(d.text));
    docs
}

fn has_content(text: &str) -> bool {
    text.lines().any(|l| {
        let l = l.trim();
        !(l.is_empty() || l.starts_with('#') || l == "---" || l == "..." || l.starts_with("%"))
    })
}

/// The line of each field of a document, keyed by its path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineMap {
    lines: HashMap<FieldPath, u32>,
    first_line: u32,
}

impl LineMap {
    /// The line of the field at `path`, or of the nearest enclosing field the map knows
    /// (a field that is absent is reported at its parent).
    pub fn line_of(&self, path: &FieldPath) -> u32 {
        let mut at = Some(path.clone());
        while let Some(p) = at {
            if let Some(line) = self.lines.get(&p) {
                return *line;
            }
            at = p.parent();
        }
        self.first_line
    }

    /// The map of the sub-tree at `prefix`, re-rooted there (for the items of a `kind: List`).
    pub fn subtree(&self, prefix: &FieldPath) -> LineMap {
        let first_line = self.line_of(prefix);
        let p = prefix.as_str();
        let lines = self
            .lines
            .iter()
            .filter_map(|(k, v)| {
                let rest = k.as_str().strip_prefix(p)?;
                let rest = rest
                    .strip_prefix('.')
                    .or_else(|| rest.starts_with('[').then_some(rest))?;
                Some((FieldPath::from_printed(rest), *v))
            })
            .collect();
        LineMap { lines, first_line }
    }
}

/// A parse failure with the line it happened on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: u32,
    pub message: String,
}

/// Parses one document into a JSON value and the lines of its fields. Lines are those of
/// the file (the document's `first_line` is added).
pub fn parse_document(doc: &RawDocument<'_>) -> Result<(Value, LineMap), SyntaxError> {
    let offset = doc.first_line - 1;
    let mut builder = Builder {
        offset,
        ..Builder::default()
    };
    let mut parser = Parser::new_from_str(doc.text);
    if let Err(e) = parser.load(&mut builder, false) {
        return Err(SyntaxError {
            line: e.marker().line() as u32 + offset,
            message: e.info().to_string(),
        });
    }
    if let Some(err) = builder.error {
        return Err(err);
    }
    let value = builder.done.unwrap_or(Value::Null);
    let lines = LineMap {
        lines: builder.lines,
        first_line: builder.root_line.unwrap_or(doc.first_line),
    };
    Ok((value, lines))
}

#[derive(Default)]
struct Builder {
    offset: u32,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Value>,
    lines: HashMap<FieldPath, u32>,
    root_line: Option<u32>,
    done: Option<Value>,
    error: Option<SyntaxError>,
}

enum Frame {
    Seq {
        path: FieldPath,
        anchor: usize,
        items: Vec<Value>,
    },
    Map {
        path: FieldPath,
        anchor: usize,
        map: Map<String, Value>,
        key: Option<(String, u32)>,
        merges: Vec<Value>,
    },
}

impl Builder {
    fn line(&self, mark: Marker) -> u32 {
        mark.line() as u32 + self.offset
    }

    /// The path the next node will have, or `None` when the next scalar is a mapping key.
    fn next_path(&mut self, line: u32) -> Option<FieldPath> {
        let path = match self.stack.last() {
            None => {
                self.root_line.get_or_insert(line);
                FieldPath::root()
            }
            Some(Frame::Seq { path, items, .. }) => path.index(items.len()),
            Some(Frame::Map { key: None, .. }) => return None,
            Some(Frame::Map {
                path,
                key: Some((k, _)),
                ..
            }) => path.key(k),
        };
        if let Some(Frame::Seq { .. }) = self.stack.last() {
            self.lines.insert(path.clone(), line);
        }
        Some(path)
    }

    fn fail(&mut self, line: u32, message: impl Into<String>) {
        if self.error.is_none() {
            self.error = Some(SyntaxError {
                line,
                message: message.into(),
            });
        }
    }

    /// Puts a finished node into its parent (or makes it the document).
    fn push_value(&mut self, value: Value, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, value.clone());
        }
        match self.stack.last_mut() {
            None => self.done = Some(value),
            Some(Frame::Seq { items, .. }) => items.push(value),
            Some(Frame::Map {
                map, key, merges, ..
            }) => {
                if let Some((k, _)) = key.take() {
                    if k == "<<" {
                        merges.push(value);
                    } else {
                        map.insert(k, value);
                    }
                }
            }
        }
    }

    fn on_key(&mut self, text: String, line: u32) {
        let Some(Frame::Map { path, map, key, .. }) = self.stack.last_mut() else {
            return;
        };
        if map.contains_key(&text) {
            let previous = self.lines.get(&path.key(&text)).copied().unwrap_or(0);
            let msg = format!("mapping key {text:?} already defined at line {previous}");
            self.fail(line, msg);
            return;
        }
        let child = path.key(&text);
        *key = Some((text, line));
        self.lines.insert(child, line);
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let line = self.line(mark);
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                if self.next_path(line).is_none() {
                    self.on_key(text, line);
                    return;
                }
                let tag = tag.map(|t| t.suffix);
                let value = resolve_scalar(text, style, tag.as_deref());
                self.push_value(value, anchor);
            }
            Event::SequenceStart(anchor, _) => match self.next_path(line) {
                Some(path) => self.stack.push(Frame::Seq {
                    path,
                    anchor,
                    items: Vec::new(),
                }),
                None => self.fail(line, "a list cannot be a mapping key"),
            },
            Event::MappingStart(anchor, _) => match self.next_path(line) {
                Some(path) => self.stack.push(Frame::Map {
                    path,
                    anchor,
                    map: Map::new(),
                    key: None,
                    merges: Vec::new(),
                }),
                None => self.fail(line, "a mapping cannot be a mapping key"),
            },
            Event::SequenceEnd => {
                if let Some(Frame::Seq { anchor, items, .. }) = self.stack.pop() {
                    self.push_value(Value::Array(items), anchor);
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map {
                    anchor,
                    mut map,
                    merges,
                    ..
                }) = self.stack.pop()
                {
                    merge_keys(&mut map, merges);
                    self.push_value(Value::Object(map), anchor);
                }
            }
            Event::Alias(id) => {
                let Some(value) = self.anchors.get(&id).cloned() else {
                    self.fail(line, "alias to an unknown anchor");
                    return;
                };
                match self.next_path(line) {
                    Some(_) => self.push_value(value, 0),
                    None => match value {
                        Value::String(s) => self.on_key(s, line),
                        _ => self.fail(line, "an alias used as a mapping key must name a string"),
                    },
                }
            }
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

/// Applies YAML merge keys (`<<: *base`): keys written in the mapping win over merged ones.
fn merge_keys(map: &mut Map<String, Value>, merges: Vec<Value>) {
    for merged in merges {
        let sources = match merged {
            Value::Array(items) => items,
            other => vec![other],
        };
        for source in sources {
            if let Value::Object(entries) = source {
                for (k, v) in entries {
                    map.entry(k).or_insert(v);
                }
            }
        }
    }
}

/// Resolves a scalar with YAML 1.2's core schema, as Kubernetes tools read config.
fn resolve_scalar(text: String, style: TScalarStyle, tag: Option<&str>) -> Value {
    match tag {
        Some("str") => return Value::String(text),
        Some("int") | Some("float") => return parse_number(&text).unwrap_or(Value::String(text)),
        Some("bool") => {
            return parse_bool(&text)
                .map(Value::Bool)
                .unwrap_or(Value::String(text));
        }
        Some("null") => return Value::Null,
        _ => {}
    }
    if style != TScalarStyle::Plain {
        return Value::String(text);
    }
    match text.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        _ => {}
    }
    if let Some(b) = parse_bool(&text) {
        return Value::Bool(b);
    }
    parse_number(&text).unwrap_or(Value::String(text))
}

fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

fn parse_number(text: &str) -> Option<Value> {
    let t = text.trim();
    let (neg, digits) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let radix = |p: &str, r: u32| -> Option<Value> {
        let v = i64::from_str_radix(p, r).ok()?;
        Some(Value::from(if neg { -v } else { v }))
    };
    if let Some(hex) = digits.strip_prefix("0x") {
        return radix(hex, 16);
    }
    if let Some(oct) = digits.strip_prefix("0o") {
        return radix(oct, 8);
    }
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(v) = t.parse::<i64>() {
            return Some(Value::from(v));
        }
        if let Ok(v) = t.parse::<u64>() {
            return Some(Value::from(v));
        }
    }
    let float_like = digits.bytes().any(|b| b.is_ascii_digit())
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
        && digits
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_digit() || b == b'.');
    if float_like {
        return t
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number);
    }
    None
}

#[cfg(test)]
mod tests;
