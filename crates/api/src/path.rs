//! Field paths inside an object (`spec.http[0].route[1].weight`), shared by the YAML
//! locator, the decoder and the validators so that every message names the same path.

use std::fmt;

/// A path from the root of one object to one of its fields.
///
/// Keys that look like identifiers are joined with dots (`spec.hosts`); any other key (a
/// label such as `app.kubernetes.io/name`, a header name with odd characters) is written in
/// brackets (`labels[app.kubernetes.io/name]`), and list items by index (`http[0]`).
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldPath(String);

impl FieldPath {
    /// The root of the object.
    pub fn root() -> Self {
        Self::default()
    }

    /// A path made of one field name, e.g. `FieldPath::of("spec")`.
    pub fn of(key: &str) -> Self {
        Self::root().key(key)
    }

    /// The path of field `key` below this one.
    pub fn key(&self, key: &str) -> Self {
        let mut s = String::with_capacity(self.0.len() + key.len() + 3);
        s.push_str(&self.0);
        if is_plain(key) {
            if !s.is_empty() {
                s.push('.');
            }
            s.push_str(key);
        } else {
            s.push('[');
            s.push_str(key);
            s.push(']');
        }
        Self(s)
    }

    /// The path of item `index` of the list at this path.
    pub fn index(&self, index: usize) -> Self {
        Self(format!("{}[{index}]", self.0))
    }

    /// Whether this is the object's root.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The path as text (empty for the root).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The enclosing path (`spec.http[0]` for `spec.http[0].route`), `None` at the root.
    pub fn parent(&self) -> Option<Self> {
        if self.0.is_empty() {
            return None;
        }
        let cut = if self.0.ends_with(']') {
            self.0.rfind('[')
        } else {
            self.0.rfind(['.', ']']).map(|i| {
                if self.0.as_bytes()[i] == b']' {
                    i + 1
                } else {
                    i
                }
            })
        };
        Some(Self(self.0[..cut.unwrap_or(0)].to_string()))
    }

    /// A path from its printed form, which is already normalised.
    pub(crate) fn from_printed(text: &str) -> Self {
        Self(text.to_string())
    }

    /// Converts the path that `serde_path_to_error` reports for a decoding error.
    pub fn from_serde(path: &serde_path_to_error::Path) -> Self {
        use serde_path_to_error::Segment;
        path.iter().fold(Self::root(), |p, seg| match seg {
            Segment::Seq { index } => p.index(*index),
            Segment::Map { key } => p.key(key),
            Segment::Enum { variant } => p.key(variant),
            Segment::Unknown => p.key("?"),
        })
    }

    /// Converts the path that `serde_ignored` reports for a field nobody asked for.
    pub fn from_ignored(path: &serde_ignored::Path<'_>) -> Self {
        use serde_ignored::Path;
        match path {
            Path::Root => Self::root(),
            Path::Seq { parent, index } => Self::from_ignored(parent).index(*index),
            Path::Map { parent, key } => Self::from_ignored(parent).key(key),
            Path::Some { parent }
            | Path::NewtypeStruct { parent }
            | Path::NewtypeVariant { parent } => Self::from_ignored(parent),
        }
    }
}

fn is_plain(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'$' || b == b'@')
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FieldPath({:?})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_displays_paths() {
        let p = FieldPath::of("spec")
            .key("http")
            .index(0)
            .key("match")
            .index(2)
            .key("uri");
        assert_eq!(p.to_string(), "spec.http[0].match[2].uri");
        let l = FieldPath::of("metadata")
            .key("labels")
            .key("app.kubernetes.io/name");
        assert_eq!(l.to_string(), "metadata.labels[app.kubernetes.io/name]");
    }

    #[test]
    fn parent_walks_up_one_segment() {
        let p = FieldPath::of("spec").key("http").index(0).key("route");
        let up: Vec<String> = std::iter::successors(Some(p), FieldPath::parent)
            .map(|p| p.to_string())
            .collect();
        assert_eq!(
            up,
            [
                "spec.http[0].route",
                "spec.http[0]",
                "spec.http",
                "spec",
                ""
            ]
        );
        let l = FieldPath::of("labels").key("a.b/c").key("x");
        assert_eq!(l.parent().unwrap().to_string(), "labels[a.b/c]");
        assert_eq!(l.parent().unwrap().parent().unwrap().to_string(), "labels");
    }
}
