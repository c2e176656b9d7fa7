//! `Gateway` (networking.istio.io): the ports, protocols, hosts and TLS settings a
//! standalone proxy at the edge of the mesh listens with, and Istio's rules for them.
//! `Port`, `ServerTlsSettings` and `Protocol` are shared with the Sidecar kind.

mod tls;

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

pub use tls::{ServerTlsMode, ServerTlsSettings, TlsCertificate, TlsProtocol};

use super::checks::{self, UNIX_PREFIX};
use crate::path::FieldPath;
use crate::validate::{self, Validate, Validator};

/// `Gateway.spec`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Gateway {
    /// Labels of the gateway proxies (pods) this configuration applies to.
    #[serde(default)]
    pub selector: BTreeMap<String, String>,
    #[serde(default)]
    pub servers: Vec<Server>,
}

/// `servers[]`: one listener of the gateway.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Server {
    pub port: Option<Port>,
    /// An IP address or `unix://` socket to bind instead of every address.
    pub bind: Option<String>,
    /// `[namespace/]dnsName` entries naming the VirtualService hosts exposed.
    #[serde(default)]
    pub hosts: Vec<String>,
    pub tls: Option<ServerTlsSettings>,
    pub default_endpoint: Option<String>,
    /// An optional name, used as a prefix of the server's statistics.
    pub name: Option<String>,
}

/// `port`: a port number with its protocol and name (Gateway servers and Sidecar listeners).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Port {
    #[serde(default)]
    pub number: u32,
    /// `HTTP`, `HTTPS`, `GRPC`, `GRPC-WEB`, `HTTP2`, `MONGO`, `MYSQL`, `REDIS`, `TCP`, `TLS`
    /// (any case).
    #[serde(default)]
    pub protocol: String,
    #[serde(default)]
    pub name: String,
    /// Has no effect on Gateways and Sidecars (only ServiceEntry ports use it).
    pub target_port: Option<u32>,
}

impl Port {
    /// The port's protocol, parsed.
    pub fn protocol(&self) -> Protocol {
        Protocol::parse(&self.protocol)
    }
}

/// A port protocol as Istio understands it (written in any case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Http,
    Http2,
    /// A generic outbound HTTP proxy port (Sidecar egress listeners only).
    HttpProxy,
    Https,
    Grpc,
    GrpcWeb,
    Tcp,
    Tls,
    Udp,
    Mongo,
    Redis,
    Mysql,
    /// Anything else, including an empty protocol.
    Unsupported,
}

impl Protocol {
    /// Parses a protocol name, ignoring case.
    pub fn parse(text: &str) -> Self {
        match text.to_ascii_lowercase().as_str() {
            "http" => Self::Http,
            "http2" => Self::Http2,
            "http_proxy" => Self::HttpProxy,
            "https" => Self::Https,
            "grpc" => Self::Grpc,
            "grpc-web" => Self::GrpcWeb,
            "tcp" => Self::Tcp,
            "tls" => Self::Tls,
            "udp" => Self::Udp,
            "mongo" => Self::Mongo,
            "redis" => Self::Redis,
            "mysql" => Self::Mysql,
            _ => Self::Unsupported,
        }
    }

    /// Carried over HTTP (the proxy parses requests).
    pub fn is_http(self) -> bool {
        matches!(
            self,
            Self::Http | Self::Http2 | Self::HttpProxy | Self::Grpc | Self::GrpcWeb
        )
    }

    /// Carried over TLS, routed by SNI unless terminated.
    pub fn is_tls(self) -> bool {
        matches!(self, Self::Https | Self::Tls)
    }

    /// Opaque TCP (including TLS and the database protocols).
    pub fn is_tcp(self) -> bool {
        matches!(
            self,
            Self::Tcp | Self::Https | Self::Tls | Self::Mongo | Self::Redis | Self::Mysql
        )
    }
}

/// The protocols a port may name, for messages.
pub(crate) const PROTOCOLS: &str =
    "HTTP, HTTPS, HTTP2, GRPC, GRPC-WEB, TCP, TLS, MONGO, MYSQL, REDIS";

/// Istio's check of a port's protocol; an empty protocol is allowed where `empty_ok`.
pub(crate) fn check_protocol(protocol: &str, empty_ok: bool) -> Result<(), String> {
    if protocol.is_empty() {
        return if empty_ok {
            Ok(())
        } else {
            Err(format!("protocol is required (one of {PROTOCOLS})"))
        };
    }
    match Protocol::parse(protocol) {
        Protocol::Unsupported => Err(format!(
            "unsupported protocol {protocol:?} (use one of {PROTOCOLS})"
        )),
        _ => Ok(()),
    }
}

impl Validate for Gateway {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        if !validate::is_dns_label(v.name) && !v.name.is_empty() {
            v.error(
                FieldPath::of("metadata").key("name"),
                format!(
                    "invalid Gateway name {:?}: a Gateway name must be a DNS label (no dots), since VirtualServices refer to it as namespace/name",
                    v.name
                ),
            );
        }
        if self.selector.is_empty() {
            // Istio accepts this; it is almost always a forgotten `istio: ingressgateway`.
            v.warn(
                at.key("selector"),
                "the Gateway has no selector: it applies to every gateway proxy (write e.g. selector: {istio: ingressgateway})",
            );
        }
        if self.servers.is_empty() {
            v.error(
                at.key("servers"),
                "a Gateway needs at least one server (port, protocol and hosts)",
            );
        }
        let mut names = BTreeSet::new();
        for (i, s) in self.servers.iter().enumerate() {
            let sat = at.key("servers").index(i);
            s.validate(&sat, v);
            let Some(p) = &s.port else { continue };
            if !p.name.is_empty() && !names.insert(p.name.as_str()) {
                v.error(
                    sat.key("port").key("name"),
                    format!("duplicate port name {:?}: port names must be unique across the servers of a Gateway", p.name),
                );
            }
            let redirect = s
                .tls
                .as_ref()
                .is_some_and(|t| t.https_redirect == Some(true));
            if redirect && !p.protocol().is_http() {
                v.warn(
                    sat.key("tls").key("httpsRedirect"),
                    "httpsRedirect only has an effect on HTTP servers",
                );
            }
        }
    }
}

impl Validate for Server {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        if self.hosts.is_empty() {
            v.error(
                at.key("hosts"),
                "a server needs at least one host (e.g. \"*\", \"example.com\" or \"ns/*.example.com\")",
            );
        }
        for (i, h) in self.hosts.iter().enumerate() {
            for e in checks::namespace_slash_host(h, true) {
                v.error(at.key("hosts").index(i), e);
            }
        }
        let bind = self.bind.as_deref().unwrap_or("");
        let port_ok = match &self.port {
            Some(p) => validate_server_port(&at.key("port"), p, bind, v),
            None => {
                v.error(
                    at.key("port"),
                    "port is required (number, protocol and name)",
                );
                false
            }
        };
        validate_bind(at, self.port.as_ref(), bind, v);
        if let Some(tls) = &self.tls {
            tls.validate(&at.key("tls"), v);
        }
        if port_ok && let Some(p) = &self.port {
            validate_tls_presence(at, p.protocol(), self.tls.as_ref(), v);
        }
    }
}

/// Returns whether the port is valid (the TLS rules depend on its protocol).
fn validate_server_port(at: &FieldPath, p: &Port, bind: &str, v: &mut Validator<'_>) -> bool {
    let mut ok = true;
    if let Err(e) = check_protocol(&p.protocol, false) {
        v.error(at.key("protocol"), e);
        ok = false;
    }
    if p.number > 0 || !bind.starts_with(UNIX_PREFIX) {
        if p.number == 0 {
            v.error(at.key("number"), "port number is required (1-65535)");
            ok = false;
        } else if p.number > 65535 {
            checks::port(at.key("number"), p.number, v);
            ok = false;
        }
    }
    if p.target_port.is_some_and(|t| t > 0) {
        v.error(
            at.key("targetPort"),
            "targetPort has no effect on a Gateway: remove it (the server listens on number)",
        );
        ok = false;
    }
    if p.name.is_empty() {
        v.error(at.key("name"), "port name is required (e.g. name: http)");
        ok = false;
    }
    ok
}

fn validate_bind(at: &FieldPath, port: Option<&Port>, bind: &str, v: &mut Validator<'_>) {
    if let Some(path) = bind.strip_prefix(UNIX_PREFIX) {
        v.check(at.key("bind"), checks::unix_address(path));
        if port.is_some_and(|p| p.number != 0) {
            v.error(
                at.key("port").key("number"),
                "port number must be 0 when the server binds a unix domain socket",
            );
        }
    } else if !bind.is_empty() {
        v.check(at.key("bind"), validate::ip_address(bind));
    }
}

/// HTTPS and TLS servers need TLS settings; plain HTTP servers may only carry
/// `httpsRedirect`; other protocols none.
fn validate_tls_presence(
    at: &FieldPath,
    protocol: Protocol,
    tls: Option<&ServerTlsSettings>,
    v: &mut Validator<'_>,
) {
    match tls {
        None if protocol.is_tls() => v.error(
            at.key("tls"),
            "HTTPS and TLS servers need tls settings (e.g. tls: {mode: SIMPLE, credentialName: my-cert})",
        ),
        Some(t) if !protocol.is_tls() && protocol.is_http() => {
            let passthrough = matches!(
                t.mode.unwrap_or_default(),
                ServerTlsMode::Passthrough | ServerTlsMode::AutoPassthrough
            );
            if !passthrough
                || checks::set(&t.ca_certificates)
                || checks::set(&t.private_key)
                || checks::set(&t.server_certificate)
            {
                v.error(
                    at.key("tls"),
                    "a plain-text HTTP server cannot have TLS settings other than httpsRedirect (use protocol HTTPS to terminate TLS)",
                );
            }
        }
        Some(_) if !protocol.is_tls() => v.error(
            at.key("tls"),
            "only HTTPS and TLS servers can have tls settings",
        ),
        _ => {}
    }
}

#[cfg(test)]
mod tests;
