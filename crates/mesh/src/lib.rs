//! Weft's one-host runtime: a complete mesh on one Linux machine. `weft up` ([`up`])
//! makes a bridge, starts the control plane and the gateways, and the demos; every
//! workload ([`workload`]) runs in its own network namespace behind its own sidecar and
//! Istio's iptables capture, as a pod does on Kubernetes. What the mesh made is recorded
//! in the state directory ([`state`]) so that `weft run`, `exec`, `ps`, `logs` and
//! `down` find it.

pub mod api;
pub mod capture;
pub mod demos;
pub mod down;
mod error;
pub mod inspect;
pub mod legacy;
pub mod net;
pub mod preflight;
pub mod process;
pub mod state;
pub mod up;
pub mod workload;

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use error::{MeshError, Result};
pub use ipnet::Ipv4Net;
pub use state::{MeshInfo, StateDir, WorkloadRecord};
pub use workload::{Running, WorkloadSpec};

/// One port a workload serves: the Service's port, the port the app listens on, and
/// the protocol (`http`, `grpc`, `tcp`, ...; none: the sidecar sniffs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSpec {
    pub port: u16,
    pub target: u16,
    pub protocol: Option<String>,
}

impl PortSpec {
    /// `9080`, `9080/http`, `80:8080/http` (Service port 80, the app's 8080).
    pub fn parse(text: &str) -> Result<PortSpec> {
        let bad = |why: &str| {
            MeshError::Invalid(format!(
                "--port {text:?}: {why} (write PORT[:TARGET][/PROTOCOL], e.g. 9080/http or 80:8080/http)"
            ))
        };
        let (ports, protocol) = match text.split_once('/') {
            Some((p, proto)) => (p, Some(proto.to_ascii_lowercase())),
            None => (text, None),
        };
        if let Some(p) = &protocol
            && weft_api::registry::Protocol::declared(p, "", "").is_none()
        {
            return Err(bad(
                "the protocol must be http, http2, grpc, https, tls or tcp",
            ));
        }
        let number = |s: &str| s.parse::<u16>().ok().filter(|n| *n > 0);
        let (port, target) = match ports.split_once(':') {
            Some((a, b)) => (number(a), number(b)),
            None => (number(ports), number(ports)),
        };
        match (port, target) {
            (Some(port), Some(target)) => Ok(PortSpec {
                port,
                target,
                protocol,
            }),
            _ => Err(bad("ports are numbers from 1 to 65535")),
        }
    }

    /// The port's name in the Service and the workload: the protocol (`http`), with the
    /// port number when another port has the same protocol (`http-9080`); `port-N`
    /// without a protocol, so the sidecar sniffs.
    pub fn name(&self, all: &[PortSpec]) -> String {
        match &self.protocol {
            None => format!("port-{}", self.port),
            Some(p)
                if all
                    .iter()
                    .filter(|o| o.protocol.as_ref() == Some(p))
                    .count()
                    > 1 =>
            {
                format!("{p}-{}", self.port)
            }
            Some(p) => p.clone(),
        }
    }
}

/// A running mesh, as `weft run` finds it: its record, and its control plane's API.
#[derive(Debug, Clone)]
pub struct Mesh {
    pub state: StateDir,
    pub info: MeshInfo,
    pub api: api::ApiClient,
}

impl Mesh {
    /// The mesh `weft up` runs for `state_dir`; an error saying how to start one if none
    /// does, or if it runs in another network namespace.
    pub fn attach(state_dir: &Path) -> Result<Mesh> {
        let state = StateDir::new(state_dir);
        let not_running = || MeshError::NotRunning {
            state: state.root().to_path_buf(),
        };
        let info = state.read_info().ok_or_else(not_running)?;
        if !info.owner.alive() {
            return Err(not_running());
        }
        let here = net::netns_id();
        if here != info.netns_id {
            return Err(MeshError::OtherNetns {
                state: state.root().to_path_buf(),
                mesh: info.netns_id.clone(),
                here,
            });
        }
        let api = api::ApiClient::new(info.api, state.root())?;
        Ok(Mesh { state, info, api })
    }
}

/// A Kubernetes name (an RFC 1123 label): what namespaces and workload names must be.
pub fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(MeshError::Invalid(format!(
            "{what} {name:?} must be a lowercase RFC 1123 label (a-z, 0-9 and '-', at most 63 characters)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_parse_with_target_and_protocol() {
        let p = PortSpec::parse("80:8080/HTTP").ok();
        assert_eq!(
            p,
            Some(PortSpec {
                port: 80,
                target: 8080,
                protocol: Some("http".into())
            })
        );
        assert_eq!(PortSpec::parse("9000").ok().map(|p| p.target), Some(9000));
        assert!(PortSpec::parse("9080/bogus").is_err());
        assert!(PortSpec::parse("0").is_err());
        assert!(PortSpec::parse("http").is_err());
    }

    #[test]
    fn port_names_follow_istios_prefixes() {
        let all: Vec<PortSpec> = ["9080/http", "9090/http", "5000/grpc", "7000"]
            .iter()
            .filter_map(|t| PortSpec::parse(t).ok())
            .collect();
        let names: Vec<String> = all.iter().map(|p| p.name(&all)).collect();
        assert_eq!(names, ["http-9080", "http-9090", "grpc", "port-7000"]);
    }

    #[test]
    fn names_are_rfc_1123_labels() {
        assert!(check_name("name", "reviews-v1").is_ok());
        assert!(check_name("name", "Reviews").is_err());
        assert!(check_name("name", "a.b").is_err());
        assert!(check_name("name", "").is_err());
    }
}
