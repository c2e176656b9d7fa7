//! PLACEHOLDER: replaced by the full model and rules.

use serde::Deserialize;

use crate::path::FieldPath;
use crate::validate::{Validate, Validator};

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Gateway {}

impl Validate for Gateway {
    fn validate(&self, _at: &FieldPath, _v: &mut Validator<'_>) {}
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct GatewayClass {}

impl Validate for GatewayClass {
    fn validate(&self, _at: &FieldPath, _v: &mut Validator<'_>) {}
}
