//! PLACEHOLDER: rules for Kubernetes' own kinds.

use crate::path::FieldPath;
use crate::validate::{Validate, Validator};
use k8s_openapi::api::{apps::v1::Deployment, core::v1::*, discovery::v1::EndpointSlice};

macro_rules! no_rules { ($($t:ty),*) => { $(impl Validate for $t { fn validate(&self, _at: &FieldPath, _v: &mut Validator<'_>) {} })* } }
no_rules!(
    Namespace,
    Service,
    Endpoints,
    EndpointSlice,
    Pod,
    Deployment,
    ServiceAccount,
    Secret
);
