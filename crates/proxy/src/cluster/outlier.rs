//! Outlier detection (DestinationRule `outlierDetection`): endpoints that keep failing are
//! ejected from load balancing for a while, as Envoy's outlier detector does.
//!
//! SKELETON: the types the request path reports to; the detector itself is being written.

use serde::Serialize;

/// What one attempt to an endpoint came to, as the outlier detector classifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The endpoint answered with this status (its headers arrived).
    Status(u16),
    /// No connection could be made (refused, unreachable, connect timeout): a
    /// locally-originated failure.
    ConnectFailed,
    /// The attempt timed out waiting for the endpoint (route or per-try timeout).
    Timeout,
    /// The connection broke before the answer's headers.
    Reset,
}

/// The cluster's `outlierDetection`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutlierConfig {}

/// The detector's state for one cluster: per-endpoint failure counts and ejections. It
/// outlives config reloads (it belongs to the cluster's name, like its stats).
#[derive(Debug, Default)]
pub struct Health {}

impl Health {
    /// Records what an attempt to `address` came to.
    pub fn report(&self, _config: &OutlierConfig, _address: &str, _outcome: Outcome) {}

    /// Whether `address` is ejected now.
    pub fn is_ejected(&self, _address: &str) -> bool {
        false
    }
}
