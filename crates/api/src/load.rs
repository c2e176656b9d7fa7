//! Loading config from files, directories and text: YAML or JSON, many documents per
//! file, `kind: List`; each object decoded into its kind's model, validated, and tied to
//! its file and line. Problems come back as [`Report`]s; objects with errors are refused.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use crate::diag::{Diagnostic, Location, ObjectRef, Report, Severity};
use crate::kind::{DecodeError, Kind, Scope, decode_spec};
use crate::object::{Object, Source};
use crate::path::FieldPath;
use crate::validate::{self, Validator};
use crate::yaml::{self, LineMap};

/// How to read config.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The namespace of objects that name none (`default`, as with kubectl).
    pub default_namespace: String,
    /// Whether fields the model does not know are errors rather than warnings.
    pub strict: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            default_namespace: "default".into(),
            strict: false,
        }
    }
}

/// What loading produced: the accepted objects, and every problem found on the way.
#[derive(Debug, Default)]
pub struct Loaded {
    pub objects: Vec<Object>,
    pub reports: Vec<Report>,
    /// How many files were read.
    pub files: usize,
}

impl Loaded {
    pub fn errors(&self) -> impl Iterator<Item = &Report> {
        self.reports
            .iter()
            .filter(|r| r.severity() == Severity::Error)
    }

    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }
}

/// Loads files and directories (recursively: `*.yaml`, `*.yml`, `*.json`, in name order).
pub fn load_paths<P: AsRef<Path>>(paths: &[P], opts: &LoadOptions) -> Loaded {
    let mut out = Loaded::default();
    for path in paths {
        let path = path.as_ref();
        match config_files(path) {
            Ok(files) => {
                for file in files {
                    load_file(&file, opts, &mut out);
                }
            }
            Err(e) => out
                .reports
                .push(file_error(path, format!("cannot read: {e}"))),
        }
    }
    out
}

/// Loads one file.
pub fn load_file(path: &Path, opts: &LoadOptions, out: &mut Loaded) {
    match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => load_str(&text, Arc::from(path), opts, out),
            Err(_) => out.reports.push(file_error(path, "not UTF-8 text".into())),
        },
        Err(e) => out
            .reports
            .push(file_error(path, format!("cannot read: {e}"))),
    }
}

/// Loads the text of one file (`file` names it in reports; `<stdin>` for standard input).
pub fn load_str(text: &str, file: Arc<Path>, opts: &LoadOptions, out: &mut Loaded) {
    out.files += 1;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for doc in yaml::split_documents(text) {
        match yaml::parse_document(&doc) {
            Ok((value, lines)) => {
                let location = Location {
                    file: file.clone(),
                    line: lines.line_of(&FieldPath::root()),
                };
                load_value(value, lines, location, opts, out);
            }
            Err(e) => out.reports.push(Report {
                location: Location {
                    file: file.clone(),
                    line: e.line,
                },
                object: None,
                diagnostic: Diagnostic::error(
                    FieldPath::root(),
                    format!("invalid YAML: {}", e.message),
                ),
            }),
        }
    }
}

fn config_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        std::fs::metadata(path)?;
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    let mut dirs = vec![path.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let p = entry?.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p
                .extension()
                .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
            {
                files.push(p);
            }
        }
    }
    files.sort();
    Ok(files)
}

fn file_error(path: &Path, message: String) -> Report {
    Report {
        location: Location {
            file: Arc::from(path),
            line: 0,
        },
        object: None,
        diagnostic: Diagnostic::error(FieldPath::root(), message),
    }
}

/// Loads one parsed document, or each item of a `kind: List`.
fn load_value(
    value: Value,
    lines: LineMap,
    location: Location,
    opts: &LoadOptions,
    out: &mut Loaded,
) {
    let report = |path: &FieldPath, object: Option<ObjectRef>, diagnostic: Diagnostic| Report {
        location: Location {
            file: location.file.clone(),
            line: lines.line_of(path),
        },
        object,
        diagnostic,
    };
    let Value::Object(map) = &value else {
        let d = Diagnostic::error(
            FieldPath::root(),
            "expected an object with apiVersion and kind, found a YAML scalar or list",
        );
        out.reports.push(report(&FieldPath::root(), None, d));
        return;
    };
    let text = |k: &str| map.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let (api_version, kind_name) = (text("apiVersion"), text("kind"));
    let object = (!kind_name.is_empty()).then(|| object_ref(&kind_name, &value, opts));
    if kind_name.ends_with("List") && map.get("items").is_some_and(Value::is_array) {
        let Some(Value::Array(items)) = map.get("items") else {
            return;
        };
        for (i, item) in items.iter().enumerate() {
            let at = FieldPath::of("items").index(i);
            let sub = lines.subtree(&at);
            let loc = Location {
                file: location.file.clone(),
                line: sub.line_of(&FieldPath::root()),
            };
            load_value(item.clone(), sub, loc, opts, out);
        }
        return;
    }
    for (field, present) in [("apiVersion", &api_version), ("kind", &kind_name)] {
        if present.is_empty() {
            let d = Diagnostic::error(
                FieldPath::of(field),
                format!("{field} is required and must be a string"),
            );
            out.reports
                .push(report(&FieldPath::of(field), object.clone(), d));
            return;
        }
    }
    let kind = match Kind::resolve(&api_version, &kind_name) {
        Ok(kind) => kind,
        Err(message) => {
            let at = FieldPath::of("kind");
            out.reports
                .push(report(&at, object, Diagnostic::error(at.clone(), message)));
            return;
        }
    };
    let source = Source {
        location,
        lines: Arc::new(lines),
    };
    let (decoded, diagnostics) =
        decode_and_validate(kind, api_version, value, source.clone(), opts);
    let refused = diagnostics.iter().any(|d| d.severity == Severity::Error);
    for diagnostic in diagnostics {
        let location = source.locate(&diagnostic.path);
        out.reports.push(Report {
            location,
            object: object.clone(),
            diagnostic,
        });
    }
    if let Some(decoded) = decoded.filter(|_| !refused) {
        out.objects.push(decoded);
    }
}

/// The name users know a document by, read from the raw document (for problems found
/// before it decodes).
fn object_ref(kind: &str, doc: &Value, opts: &LoadOptions) -> ObjectRef {
    let meta = |k: &str| {
        doc.pointer(&format!("/metadata/{k}"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let scope = Kind::all()
        .find(|k| k.info().name == kind)
        .map(|k| k.info().scope);
    let namespace = match scope {
        Some(Scope::Cluster) => String::new(),
        _ => meta("namespace").unwrap_or_else(|| opts.default_namespace.clone()),
    };
    ObjectRef {
        kind: kind.to_string(),
        namespace,
        name: meta("name").unwrap_or_default(),
    }
}

/// Decodes a document of a known kind and runs its rules. Returns the object when it
/// decoded (it may still carry errors from validation) and every problem found.
pub(crate) fn decode_and_validate(
    kind: Kind,
    api_version: String,
    mut raw: Value,
    source: Source,
    opts: &LoadOptions,
) -> (Option<Object>, Vec<Diagnostic>) {
    let unknown_severity = if opts.strict {
        Severity::Error
    } else {
        Severity::Warning
    };
    let mut diagnostics = Vec::new();
    let mut unknown = Vec::new();
    let mut pruned = raw.clone();
    // Models that deny unknown fields stop at the first; note it, drop it, decode again.
    // A known field written with no value (`route:`) is unset, as the Kubernetes API
    // server prunes such nulls: drop it and decode again.
    let decoded = loop {
        unknown.clear();
        match decode_spec(kind, &pruned, &mut |p| unknown.push(p)) {
            Ok(ok) => break Some(ok),
            Err(e)
                if e.message.starts_with("invalid type: null")
                    && remove_null(&mut pruned, &e.path) => {}
            Err(e) => match unknown_field(&e) {
                Some((container, field, expected))
                    if remove_field(&mut pruned, &e.path, &field) =>
                {
                    let at = container.key(&field);
                    diagnostics.push(unknown_field_diagnostic(
                        at,
                        &field,
                        &expected,
                        unknown_severity,
                    ));
                }
                _ => {
                    let at = FieldPath::from_serde(&e.path);
                    diagnostics.push(Diagnostic::error(at, e.message));
                    break None;
                }
            },
        }
    };
    for at in unknown {
        let field = at
            .as_str()
            .rsplit(['.', '['])
            .next()
            .unwrap_or("")
            .trim_end_matches(']')
            .to_string();
        diagnostics.push(unknown_field_diagnostic(at, &field, &[], unknown_severity));
    }
    let Some((mut metadata, spec)) = decoded else {
        return (None, diagnostics);
    };
    match kind.info().scope {
        Scope::Namespaced if metadata.namespace.as_deref().is_none_or(str::is_empty) => {
            metadata.namespace = Some(opts.default_namespace.clone());
            if let Some(meta) = raw.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.insert(
                    "namespace".into(),
                    Value::String(opts.default_namespace.clone()),
                );
            }
        }
        Scope::Cluster => metadata.namespace = None,
        Scope::Namespaced => {}
    }
    let object = Object {
        kind,
        api_version,
        metadata,
        spec,
        raw,
        source,
    };
    let mut v = Validator::new(object.namespace(), object.name());
    validate_metadata(&object, &mut v);
    object.spec.validate(&mut v);
    diagnostics.extend(v.into_diagnostics());
    (Some(object), diagnostics)
}

/// Removes the null map entry at `path`; false when there is none to remove.
fn remove_null(value: &mut Value, path: &serde_path_to_error::Path) -> bool {
    use serde_path_to_error::Segment;
    let segments: Vec<&Segment> = path.iter().collect();
    let Some((Segment::Map { key: last }, parents)) = segments.split_last() else {
        return false;
    };
    let mut node = value;
    for seg in parents {
        node = match (seg, node) {
            (Segment::Seq { index }, Value::Array(items)) => match items.get_mut(*index) {
                Some(n) => n,
                None => return false,
            },
            (Segment::Map { key }, Value::Object(map)) => match map.get_mut(key) {
                Some(n) => n,
                None => return false,
            },
            _ => return false,
        };
    }
    match node {
        Value::Object(map) if map.get(last).is_some_and(Value::is_null) => {
            map.remove(last).is_some()
        }
        _ => false,
    }
}

fn validate_metadata(object: &Object, v: &mut Validator<'_>) {
    let meta = FieldPath::of("metadata");
    if object.kind == Kind::IstioOperator && object.metadata.name.is_none() {
        // `istioctl install -f` reads operator files that have no name.
    } else if object.metadata.generate_name.is_some() && object.metadata.name.is_none() {
        v.error(
            meta.key("name"),
            "generateName is not supported; give the object a name",
        );
    } else {
        v.check(meta.key("name"), validate::object_name(object.name()));
    }
    if object.kind.info().scope == Scope::Namespaced {
        v.check(
            meta.key("namespace"),
            validate::dns1123_label(object.namespace())
                .map_err(|e| format!("invalid namespace: {e}")),
        );
    }
    validate::labels(&meta.key("labels"), object.labels(), v);
}

/// Reads serde's "unknown field `x`, expected one of `a`, `b`" into the container's path,
/// the field, and the fields that were expected.
fn unknown_field(e: &DecodeError) -> Option<(FieldPath, String, Vec<String>)> {
    let rest = e.message.strip_prefix("unknown field `")?;
    let (field, rest) = rest.split_once('`')?;
    let expected = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    let mut container = FieldPath::from_serde(&e.path);
    if container.as_str().ends_with(field) {
        container = container.parent().unwrap_or_default();
    }
    Some((container, field.to_string(), expected))
}

/// Removes `field` from the mapping the error path points at (or at its parent).
fn remove_field(value: &mut Value, path: &serde_path_to_error::Path, field: &str) -> bool {
    use serde_path_to_error::Segment;
    let mut node = value;
    for seg in path.iter() {
        if let Value::Object(map) = node
            && map.contains_key(field)
            && matches!(seg, Segment::Map { key } if key == field)
        {
            break;
        }
        node = match (seg, node) {
            (Segment::Seq { index }, Value::Array(items)) => match items.get_mut(*index) {
                Some(n) => n,
                None => return false,
            },
            (Segment::Map { key }, Value::Object(map)) => match map.get_mut(key) {
                Some(n) => n,
                None => return false,
            },
            _ => return false,
        };
    }
    node.as_object_mut()
        .is_some_and(|m| m.remove(field).is_some())
}

fn unknown_field_diagnostic(
    at: FieldPath,
    field: &str,
    expected: &[String],
    severity: Severity,
) -> Diagnostic {
    let mut d = Diagnostic {
        severity,
        code: None,
        path: at,
        message: format!("unknown field {field:?}"),
        hint: None,
    };
    if let Some(best) = did_you_mean(field, expected) {
        d = d.with_hint(format!("did you mean {best:?}?"));
    } else if !expected.is_empty() {
        d = d.with_hint(format!("known fields here: {}", expected.join(", ")));
    }
    d
}

/// The closest candidate to a misspelt name, if one is close enough to be what was meant.
pub fn did_you_mean<'a>(name: &str, candidates: &'a [String]) -> Option<&'a str> {
    let lower = name.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (edit_distance(&lower, &c.to_ascii_lowercase()), c))
        .filter(|(d, c)| *d <= 1.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.as_str())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests;
