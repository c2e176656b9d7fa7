//! Istio's rules for a VirtualService as a whole (`ValidateVirtualService`): hosts,
//! gateways, delegates, exportTo, the presence of routes, and destinations.

use crate::diag::{Diagnostic, Severity};
use crate::path::FieldPath;
use crate::validate::{self, DNS_LABEL_RULE, Validator};

use super::names;
use super::{Destination, VirtualService, analysis, http, l4};
use crate::networking::checks::{self, Exporter};

/// What the route rules need to know about the VirtualService they sit in.
pub(super) struct Context<'a> {
    /// The VirtualService itself.
    pub vs: &'a VirtualService,
    /// No hosts: the VirtualService only serves routes of others that delegate to it.
    pub delegate: bool,
    /// Bound to gateways only (`gateways` set, without `mesh`).
    pub gateway_only: bool,
}

pub(super) fn virtual_service(vs: &VirtualService, at: &FieldPath, v: &mut Validator<'_>) {
    let ctx = Context {
        vs,
        delegate: vs.hosts.is_empty(),
        gateway_only: !vs.gateways.is_empty() && !vs.gateways.iter().any(|g| g == "mesh"),
    };
    if ctx.delegate {
        delegate_rules(vs, at, v);
    }
    names::gateway_names(&at.key("gateways"), &vs.gateways, v);
    hosts(&ctx, at, v);
    if vs.http.is_empty() && vs.tcp.is_empty() && vs.tls.is_empty() {
        v.error(
            at.key("http"),
            "a VirtualService needs at least one route: set http, tcp or tls",
        );
    }
    for (i, route) in vs.http.iter().enumerate() {
        http::http_route(&at.key("http").index(i), route, &ctx, v);
    }
    for (i, route) in vs.tls.iter().enumerate() {
        l4::tls_route(&at.key("tls").index(i), route, &ctx, v);
    }
    for (i, route) in vs.tcp.iter().enumerate() {
        l4::tcp_route(&at.key("tcp").index(i), route, v);
    }
    checks::export_to(
        &at.key("exportTo"),
        &vs.export_to,
        Exporter::VirtualService,
        v,
    );
    analysis::unreachable_http(&at.key("http"), &vs.http, v);
    analysis::unreachable_l4(&at.key("tcp"), vs.tcp.iter().map(|r| &r.matches[..]), v);
    analysis::unreachable_l4(&at.key("tls"), vs.tls.iter().map(|r| &r.matches[..]), v);
}

/// A VirtualService without hosts is a delegate: only HTTP routes, and no gateways (the
/// root VirtualService's apply).
fn delegate_rules(vs: &VirtualService, at: &FieldPath, v: &mut Validator<'_>) {
    v.push(Diagnostic {
        severity: Severity::Info,
        code: None,
        path: at.key("hosts"),
        message: "no hosts: this is a delegate VirtualService, used only by http routes of other VirtualServices that name it in `delegate`".into(),
        hint: None,
    });
    let hint =
        "a VirtualService without hosts is a delegate; add hosts if this one routes traffic itself";
    if !vs.gateways.is_empty() {
        v.push(
            Diagnostic::error(
                at.key("gateways"),
                "a delegate VirtualService (no hosts) cannot have gateways: the gateways of the VirtualService that delegates to it apply",
            )
            .with_hint(hint),
        );
    }
    if !vs.tls.is_empty() {
        v.push(
            Diagnostic::error(
                at.key("tls"),
                "a delegate VirtualService (no hosts) cannot have tls routes: only http routes can be delegated",
            )
            .with_hint(hint),
        );
    }
    if !vs.tcp.is_empty() {
        v.push(
            Diagnostic::error(
                at.key("tcp"),
                "a delegate VirtualService (no hosts) cannot have tcp routes: only http routes can be delegated",
            )
            .with_hint(hint),
        );
    }
}

fn hosts(ctx: &Context<'_>, at: &FieldPath, v: &mut Validator<'_>) {
    let vs = ctx.vs;
    let sni = vs
        .tls
        .iter()
        .any(|t| t.matches.iter().any(|m| !m.sni_hosts.is_empty()));
    let mut all_valid = true;
    for (i, host) in vs.hosts.iter().enumerate() {
        let at = at.key("hosts").index(i);
        let checked = if ctx.gateway_only {
            validate::gateway_bound_host(sni, host)
        } else {
            validate::wildcard_host(host)
        };
        match checked {
            // Istio lets IP addresses through (they only make sense on gateways).
            Err(_) if names::is_ip(host) => {}
            Err(e) => {
                v.error(at, format!("invalid host: {e}"));
                all_valid = false;
            }
            Ok(()) if host == "*" && !ctx.gateway_only => {
                v.push(
                    Diagnostic::error(
                        at,
                        "host \"*\" is not allowed for a VirtualService that applies to sidecars (no gateways, or `mesh` among them)",
                    )
                    .with_hint("name the services, or bind the VirtualService to a gateway with `gateways`"),
                );
                all_valid = false;
            }
            Ok(()) => {}
        }
    }
    if !all_valid {
        return;
    }
    for (i, a) in vs.hosts.iter().enumerate() {
        for (j, b) in vs.hosts.iter().enumerate().skip(i + 1) {
            if names::hosts_overlap(a, b) {
                v.error(
                    at.key("hosts").index(j),
                    format!("duplicate hosts: {b:?} overlaps {a:?} (hosts[{i}])"),
                );
            }
        }
    }
}

/// Istio's `validateDestination`: a host that is not `*`, a DNS-label subset, a valid port.
pub(super) fn destination(d: &Destination, at: &FieldPath, v: &mut Validator<'_>) {
    let host_at = at.key("host");
    if d.host.is_empty() {
        v.required(host_at, false);
    } else if d.host == "*" {
        v.error(
            host_at,
            "destination host \"*\" is not allowed: name the service to send to",
        );
    } else if let Err(e) = validate::wildcard_host(&d.host) {
        v.error(host_at, format!("invalid destination host: {e}"));
    }
    if !d.subset.is_empty() && !validate::is_dns_label(&d.subset) {
        v.error(
            at.key("subset"),
            format!("invalid subset name {:?}: {DNS_LABEL_RULE}", d.subset),
        );
    }
    if let Some(port) = &d.port {
        v.check(at.key("port").key("number"), validate::port(port.number));
    }
}
