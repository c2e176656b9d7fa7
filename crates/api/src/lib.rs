//! Istio's and Kubernetes' API objects as Weft reads them: loading YAML and JSON with the
//! line of every field, a typed model per kind, Istio's validation rules, and the
//! cross-object analysis behind `weft analyze`. No async and no I/O beyond reading the
//! files it is handed.

pub mod analyze;
pub mod common;
pub mod diag;
pub mod extensions;
pub mod gateway_api;
pub mod install;
pub mod kind;
pub mod kube;
pub mod load;
pub mod networking;
pub mod object;
pub mod path;
pub mod registry;
pub mod security;
pub mod telemetry;
pub mod validate;
pub mod yaml;

#[cfg(test)]
mod testing;

pub use diag::{Diagnostic, Location, ObjectRef, Report, Severity};
pub use kind::{Kind, Scope, Spec};
pub use load::{LoadOptions, Loaded, load_paths, load_str};
pub use object::Object;
pub use path::FieldPath;
