//! Cross-object checks behind `weft analyze` (like `istioctl analyze`): references to
//! gateways, hosts and subsets that do not exist, objects that conflict with each other.
//! Each finding carries Istio's analyzer code so users can look it up.

mod hosts;
mod networking;

use std::collections::HashMap;

use crate::diag::{Diagnostic, Report, Severity};
use crate::kind::Spec;
use crate::object::Object;
use crate::path::FieldPath;

pub use hosts::{CLUSTER_DOMAIN, Index, fqdn, host_matches};

/// Istio's analyzer message codes.
pub mod codes {
    pub const REFERENCED_RESOURCE_NOT_FOUND: &str = "IST0101";
    pub const CONFLICTING_MESH_GATEWAY_VIRTUAL_SERVICE_HOSTS: &str = "IST0109";
    pub const CONFLICTING_SIDECAR_WORKLOAD_SELECTORS: &str = "IST0110";
    pub const MULTIPLE_SIDECARS_WITHOUT_WORKLOAD_SELECTORS: &str = "IST0111";
    pub const VIRTUAL_SERVICE_DESTINATION_PORT_SELECTOR_REQUIRED: &str = "IST0112";
    pub const PORT_NAME_IS_NOT_UNDER_NAMING_CONVENTION: &str = "IST0118";
    pub const VIRTUAL_SERVICE_HOST_NOT_FOUND_IN_GATEWAY: &str = "IST0132";
    pub const SERVICE_ENTRY_ADDRESSES_REQUIRED: &str = "IST0134";
    pub const CONFLICTING_GATEWAYS: &str = "IST0145";
}

/// Runs every analyzer over a set of objects that each passed validation. Findings come
/// back in file and line order.
pub fn analyze(objects: &[Object]) -> Vec<Report> {
    let index = Index::new(objects);
    let mut out = Findings::default();
    duplicates(objects, &mut out);
    for object in objects {
        match &object.spec {
            Spec::VirtualService(vs) => networking::virtual_service(object, vs, &index, &mut out),
            Spec::DestinationRule(dr) => networking::destination_rule(object, dr, &index, &mut out),
            Spec::ServiceEntry(se) => networking::service_entry(object, se, &mut out),
            Spec::Service(svc) => networking::service_ports(object, svc, &mut out),
            Spec::HttpRoute(route) => networking::http_route(object, route, &index, &mut out),
            _ => {}
        }
    }
    networking::mesh_host_conflicts(objects, &mut out);
    networking::gateway_conflicts(objects, &mut out);
    networking::sidecar_selectors(objects, &mut out);
    let mut reports = out.0;
    reports.sort_by(|a, b| a.location.cmp(&b.location));
    reports
}

/// The findings so far.
#[derive(Default)]
pub(crate) struct Findings(Vec<Report>);

impl Findings {
    /// Records a finding about one field of an object.
    pub(crate) fn add(
        &mut self,
        object: &Object,
        at: FieldPath,
        severity: Severity,
        code: &'static str,
        message: String,
    ) {
        self.push(object, finding(at, severity, code, message));
    }

    /// Records a finding with advice on how to fix it.
    pub(crate) fn add_with_hint(
        &mut self,
        object: &Object,
        at: FieldPath,
        severity: Severity,
        code: &'static str,
        message: String,
        hint: impl Into<String>,
    ) {
        self.push(object, finding(at, severity, code, message).with_hint(hint));
    }

    pub(crate) fn push(&mut self, object: &Object, diagnostic: Diagnostic) {
        let location = object.source.locate(&diagnostic.path);
        self.0.push(Report {
            location,
            object: Some(object.object_ref()),
            diagnostic,
        });
    }
}

/// An analyzer's diagnostic: a coded finding with no hint yet.
fn finding(at: FieldPath, severity: Severity, code: &'static str, message: String) -> Diagnostic {
    Diagnostic {
        severity,
        code: Some(code),
        path: at,
        message,
        hint: None,
    }
}

/// The same object defined twice: the later definition replaces the earlier one, as
/// `kubectl apply` of both files would.
fn duplicates(objects: &[Object], out: &mut Findings) {
    let mut seen: HashMap<(crate::Kind, &str, &str), &Object> = HashMap::new();
    for object in objects {
        let key = (object.kind, object.namespace(), object.name());
        if let Some(first) = seen.insert(key, object) {
            let message = format!(
                "defined again at {}; the later definition replaces this one",
                object.source.location
            );
            let hint = "give one of them another name, or keep only one";
            out.push(
                first,
                Diagnostic::warning(FieldPath::of("metadata").key("name"), message).with_hint(hint),
            );
        }
    }
}

#[cfg(test)]
mod tests;
