//! What a route does when things go wrong, compiled from its VirtualService rule: the
//! request's timeout, the retry policy, injected faults, and the mirrors that get a copy.

mod fault;
mod retry;

use std::time::Duration;

use serde::Serialize;
use weft_api::common::Percent;
use weft_api::networking::virtual_service::HttpRoute;

pub use fault::{Abort, AbortWith, Delay, Fault};
pub use retry::{Failure, RetryOn, RetryPolicy};

/// One route's resilience settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoutePolicy {
    /// The whole request's timeout, retries included (`timeout`); none by default.
    pub timeout: Option<Duration>,
    pub retry: RetryPolicy,
    pub fault: Option<Fault>,
    pub mirrors: Vec<Mirror>,
}

impl Default for RoutePolicy {
    fn default() -> Self {
        Self {
            timeout: None,
            retry: RetryPolicy::istio_default(),
            fault: None,
            mirrors: Vec::new(),
        }
    }
}

/// A destination that gets a copy of a share of the route's requests.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mirror {
    pub cluster: String,
    /// Share of requests mirrored, 0-100.
    pub percent: f64,
}

impl Mirror {
    /// Whether this request is mirrored.
    pub fn roll(&self) -> bool {
        self.percent >= 100.0 || fastrand::f64() * 100.0 < self.percent
    }
}

impl RoutePolicy {
    /// Compiles a rule's `timeout`, `retries`, `fault` and mirrors; `cluster` names the
    /// cluster of a mirror destination.
    pub fn compile(
        http: &HttpRoute,
        mut cluster: impl FnMut(&weft_api::networking::virtual_service::Destination) -> String,
    ) -> Self {
        let share = |p: Option<&Percent>| p.map_or(100.0, |p| p.value.clamp(0.0, 100.0));
        let mut mirrors = Vec::new();
        if let Some(d) = &http.mirror {
            // `mirrorPercentage`, else the deprecated integer `mirrorPercent`, else all.
            let percent = match (&http.mirror_percentage, http.mirror_percent) {
                (Some(p), _) => share(Some(p)),
                (None, Some(n)) => f64::from(n.min(100)),
                (None, None) => 100.0,
            };
            mirrors.push(Mirror {
                cluster: cluster(d),
                percent,
            });
        }
        for m in &http.mirrors {
            if let Some(d) = &m.destination {
                mirrors.push(Mirror {
                    cluster: cluster(d),
                    percent: share(m.percentage.as_ref()),
                });
            }
        }
        RoutePolicy {
            // Istio: a zero timeout is no timeout.
            timeout: http.timeout.map(|t| t.get()).filter(|t| !t.is_zero()),
            retry: RetryPolicy::compile(http.retries.as_ref()),
            fault: http.fault.as_ref().and_then(Fault::compile),
            mirrors,
        }
    }
}
