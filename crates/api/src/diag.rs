//! Problems found while loading, validating or analysing config, and how they print.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use crate::path::FieldPath;

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The object (or file) is refused.
    Error,
    /// The object is accepted, but something in it is probably not what the user meant.
    Warning,
    /// Worth knowing; nothing is wrong.
    Info,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        })
    }
}

/// One problem with one field of one object, before it is tied to a file and line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// A stable code for analyzer messages (`IST0101`-style), `None` for validation errors.
    pub code: Option<&'static str>,
    /// Where in the object; the root when the problem is with the object as a whole.
    pub path: FieldPath,
    pub message: String,
    /// What the user can do about it, when there is something better to say than the message.
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn error(path: FieldPath, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            code: None,
            path,
            message: message.into(),
            hint: None,
        }
    }

    pub fn warning(path: FieldPath, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            code: None,
            path,
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }
}

/// Which object a problem belongs to, as users name it: `VirtualService default/reviews`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectRef {
    pub kind: String,
    /// Empty for cluster-scoped objects.
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.namespace.is_empty(), self.name.is_empty()) {
            (_, true) => write!(f, "{} (unnamed)", self.kind),
            (true, false) => write!(f, "{} {}", self.kind, self.name),
            (false, false) => write!(f, "{} {}/{}", self.kind, self.namespace, self.name),
        }
    }
}

/// Where something stands in the user's files.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Location {
    pub file: Arc<Path>,
    /// 1-based; 0 when the whole file is meant.
    pub line: u32,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file.display())
        } else {
            write!(f, "{}:{}", self.file.display(), self.line)
        }
    }
}

/// A problem tied to its file, line and object: what `weft validate` prints, one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub location: Location,
    pub object: Option<ObjectRef>,
    pub diagnostic: Diagnostic,
}

impl Report {
    pub fn severity(&self) -> Severity {
        self.diagnostic.severity
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.diagnostic;
        write!(f, "{}: {}", self.location, d.severity)?;
        if let Some(code) = d.code {
            write!(f, " [{code}]")?;
        }
        f.write_str(": ")?;
        if let Some(object) = &self.object {
            write!(f, "{object}: ")?;
        }
        if !d.path.is_root() {
            write!(f, "{}: ", d.path)?;
        }
        f.write_str(&d.message)?;
        if let Some(hint) = &d.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}
