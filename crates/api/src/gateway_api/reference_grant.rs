//! The Gateway API's `ReferenceGrant`: which kinds of objects in which namespaces may refer to
//! objects of this namespace, with the rules of its CRD schema.

use serde::Deserialize;

use crate::gateway_api::gateway::checks;
use crate::path::FieldPath;
use crate::validate::{Validate, Validator};

/// `ReferenceGrant.spec`: every `from` may refer to every `to` in this namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReferenceGrant {
    #[serde(default)]
    pub from: Vec<ReferenceGrantFrom>,
    #[serde(default)]
    pub to: Vec<ReferenceGrantTo>,
}

/// `from[]`: the group, kind and namespace of the objects trusted to refer here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReferenceGrantFrom {
    /// Required; `""` is the core group.
    pub group: Option<String>,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub namespace: String,
}

/// `to[]`: the group, kind and optionally name of the objects here that may be referred to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReferenceGrantTo {
    /// Required; `""` is the core group (e.g. for a Service or Secret).
    pub group: Option<String>,
    #[serde(default)]
    pub kind: String,
    /// Absent: every object of the kind in this namespace.
    pub name: Option<String>,
}

fn group(at: &FieldPath, group: Option<&str>, v: &mut Validator<'_>) {
    match group {
        Some(g) => v.check(at.key("group"), checks::group(g)),
        None => v.error(
            at.key("group"),
            "required field is missing (write group: \"\" for the core group, e.g. a Service or Secret)",
        ),
    }
}

impl Validate for ReferenceGrant {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        for (field, len) in [("from", self.from.len()), ("to", self.to.len())] {
            if len == 0 {
                v.error(at.key(field), "needs at least one entry");
            }
            checks::max_items(at.key(field), len, 16, v);
        }
        for (i, f) in self.from.iter().enumerate() {
            let at = at.key("from").index(i);
            group(&at, f.group.as_deref(), v);
            v.check(at.key("kind"), checks::kind(&f.kind));
            v.check(at.key("namespace"), checks::namespace(&f.namespace));
        }
        for (i, t) in self.to.iter().enumerate() {
            let at = at.key("to").index(i);
            group(&at, t.group.as_deref(), v);
            v.check(at.key("kind"), checks::kind(&t.kind));
            if let Some(name) = &t.name {
                v.check(at.key("name"), checks::object_name(name));
            }
        }
    }
}

#[cfg(test)]
mod tests;
