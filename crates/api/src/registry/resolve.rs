//! Names as applications dial them, resolved the way a pod's resolver does with
//! Kubernetes' DNS search path, so the short forms users are used to name mesh services.

use crate::analyze::CLUSTER_DOMAIN;

/// The resolver's `ndots` in a Kubernetes pod: a name with fewer dots is tried with each
/// search domain before being tried as written.
const NDOTS: usize = 5;

/// The names a resolver in a pod of `namespace` tries for `name`, in order: with the
/// search domains `<ns>.svc.cluster.local`, `svc.cluster.local` and `cluster.local`
/// appended (so `reviews`, `reviews.default` and `reviews.default.svc` reach
/// `reviews.default.svc.cluster.local`), and as written. A name ending in `.` is
/// absolute and tried only as written.
pub fn search_names(name: &str, namespace: &str) -> Vec<String> {
    let name = name.to_ascii_lowercase();
    if let Some(absolute) = name.strip_suffix('.') {
        return vec![absolute.to_string()];
    }
    let root = CLUSTER_DOMAIN
        .split_once('.')
        .map_or(CLUSTER_DOMAIN, |(_, r)| r);
    let mut searched: Vec<String> = Vec::with_capacity(4);
    if !namespace.is_empty() {
        searched.push(format!("{name}.{namespace}.{CLUSTER_DOMAIN}"));
    }
    searched.push(format!("{name}.{CLUSTER_DOMAIN}"));
    searched.push(format!("{name}.{root}"));
    if name.matches('.').count() >= NDOTS {
        searched.insert(0, name);
    } else {
        searched.push(name);
    }
    searched
}
