//! PLACEHOLDER: replaced by the full model and rules.

use serde::Deserialize;

use crate::path::FieldPath;
use crate::validate::{Validate, Validator};

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct TcpRoute {}

impl Validate for TcpRoute {
    fn validate(&self, _at: &FieldPath, _v: &mut Validator<'_>) {}
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct TlsRoute {}

impl Validate for TlsRoute {
    fn validate(&self, _at: &FieldPath, _v: &mut Validator<'_>) {}
}
