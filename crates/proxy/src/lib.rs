//! Weft's proxy: the data plane. It compiles the Istio config it is given into immutable
//! tables (listeners, virtual hosts, routes, clusters), swaps them in one step when the
//! config changes, and serves every request from the tables it started with.

pub mod admin;
pub mod capture;
pub mod cluster;
pub mod drain;
pub mod error;
pub mod http;
pub mod registry;
pub mod resilience;
pub mod route;
pub mod run;
pub mod sidecar;
pub mod sniff;
pub mod source;
pub mod stats;
pub mod tables;
pub mod tcp;
pub mod tls;

pub use http::ServerLimits;
pub use run::{LogControl, ProxyMode, ProxyOptions, run};
pub use sidecar::SidecarOptions;
pub use source::{ConfigSource, DirectorySource, Snapshot, XdsOptions, XdsSource};
pub use tables::{OutboundPolicy, ProxyIdentity, Tables};
