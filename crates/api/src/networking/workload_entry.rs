//! PLACEHOLDER: replaced by the full model and rules.

use serde::Deserialize;

use crate::path::FieldPath;
use crate::validate::{Validate, Validator};

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct WorkloadEntry {}

impl Validate for WorkloadEntry {
    fn validate(&self, _at: &FieldPath, _v: &mut Validator<'_>) {}
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct WorkloadGroup {}

impl Validate for WorkloadGroup {
    fn validate(&self, _at: &FieldPath, _v: &mut Validator<'_>) {}
}
