//! PLACEHOLDER: replaced by the full model and rules.

use serde::Deserialize;

use crate::path::FieldPath;
use crate::validate::{Validate, Validator};

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ServiceEntry {}

impl Validate for ServiceEntry {
    fn validate(&self, _at: &FieldPath, _v: &mut Validator<'_>) {}
}
