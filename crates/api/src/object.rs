//! One config object as loaded: its kind, metadata, typed body, the document as written,
//! and where it came from.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use serde_json::Value;

use crate::diag::{Location, ObjectRef};
use crate::kind::{Kind, Spec};
use crate::path::FieldPath;
use crate::yaml::LineMap;

/// A validated config object.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    pub kind: Kind,
    /// As written (`networking.istio.io/v1alpha3`).
    pub api_version: String,
    /// With the namespace filled in for namespaced kinds.
    pub metadata: ObjectMeta,
    pub spec: Spec,
    /// The document as written, for storing and printing it back unchanged.
    pub raw: Value,
    pub source: Source,
}

/// Where an object was read from, and the line of each of its fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    /// The file and the line the object starts on.
    pub location: Location,
    pub lines: Arc<LineMap>,
}

impl Source {
    /// The file and line of one field of the object.
    pub fn locate(&self, path: &FieldPath) -> Location {
        Location {
            file: self.location.file.clone(),
            line: self.lines.line_of(path),
        }
    }
}

impl Object {
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or("")
    }

    /// The namespace; empty for cluster-scoped kinds.
    pub fn namespace(&self) -> &str {
        self.metadata.namespace.as_deref().unwrap_or("")
    }

    /// How users name it: `VirtualService default/reviews`.
    pub fn object_ref(&self) -> ObjectRef {
        ObjectRef {
            kind: self.kind.to_string(),
            namespace: self.namespace().into(),
            name: self.name().into(),
        }
    }

    /// The object's labels (empty map when none).
    pub fn labels(&self) -> &std::collections::BTreeMap<String, String> {
        static EMPTY: std::collections::BTreeMap<String, String> =
            std::collections::BTreeMap::new();
        self.metadata.labels.as_ref().unwrap_or(&EMPTY)
    }
}

/// The envelope of an Istio-style object, around its typed `spec`.
#[derive(Deserialize)]
#[serde(
    rename_all = "camelCase",
    bound(deserialize = "S: Deserialize<'de> + Default")
)]
pub(crate) struct Document<S> {
    #[serde(rename = "apiVersion")]
    _api_version: String,
    #[serde(rename = "kind")]
    _kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default, deserialize_with = "null_as_default")]
    pub spec: S,
    /// Written by the control plane, never read from users' files.
    #[serde(default, rename = "status")]
    _status: Option<Value>,
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}
