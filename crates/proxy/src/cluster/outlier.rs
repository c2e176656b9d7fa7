//! Outlier detection (DestinationRule `outlierDetection`): endpoints that keep failing are
//! ejected from load balancing for a while, as Envoy's outlier detector does with the
//! configuration Istio writes for it.
//!
//! Envoy's consecutive-failure detectors run inline, on each reported result: 5xx,
//! gateway errors (502/503/504) and, when `splitExternalLocalOriginErrors` is on, local
//! origin failures (connect failures, resets, timeouts). Without the split, a local
//! failure counts as the status Envoy maps it to: 503 for a connect failure or reset, 504
//! for a timeout. Envoy returns ejected hosts to service at `interval` ticks; here the
//! ejection time is checked lazily against the clock whenever the state is read (a pick,
//! a report, the admin pages), so a host comes back exactly when its time is up. The
//! ejection-time multiplier decays by one per whole `interval` the host spent healthy
//! since it came back, which is what Envoy's ticks do.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::UpstreamEndpoint;

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

/// One consecutive-failure detector: how many failures in a row make an endpoint an
/// outlier, and whether the ejection is carried out (Envoy's `enforcing_*` percentage,
/// which Istio only ever sets to 0 or 100).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Threshold {
    /// Failures in a row; 0 turns the detector off.
    pub consecutive: u32,
    /// `false`: the outlier is counted as detected but stays in service.
    pub enforcing: bool,
}

/// The cluster's `outlierDetection`, with Envoy's defaults filled in where Istio leaves
/// a field unset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutlierConfig {
    /// `consecutive5xxErrors`.
    pub consecutive_5xx: Threshold,
    /// `consecutiveGatewayErrors` (502, 503, 504).
    pub consecutive_gateway: Threshold,
    /// `consecutiveLocalOriginFailures`; only counted when the errors are split.
    pub consecutive_local_origin: Threshold,
    /// `splitExternalLocalOriginErrors`.
    pub split_external_local_origin_errors: bool,
    /// `interval`: the period of Envoy's sweeps, here the unit the ejection-time
    /// multiplier decays by.
    pub interval: Duration,
    /// `baseEjectionTime`: the first ejection's length; the n-th in a row lasts n times it.
    pub base_ejection_time: Duration,
    /// Envoy's `max_ejection_time` (Istio leaves it unset): 300s, or the base if longer.
    pub max_ejection_time: Duration,
    /// `maxEjectionPercent`: an ejection that would take the ejected share of the
    /// cluster above this is not made (counted as `ejections_overflow`).
    pub max_ejection_percent: u32,
    /// `minHealthPercent`, Envoy's panic threshold: below this share of healthy
    /// endpoints the load balancer ignores ejections. Istio's default 0 never panics.
    pub min_health_percent: u32,
}

/// Envoy's default maximum ejection time.
pub const DEFAULT_MAX_EJECTION_TIME: Duration = Duration::from_secs(300);

impl Default for OutlierConfig {
    /// Envoy's defaults, as a DestinationRule with an empty `outlierDetection` gets them.
    fn default() -> Self {
        Self {
            consecutive_5xx: Threshold {
                consecutive: 5,
                enforcing: true,
            },
            // Envoy detects 5 gateway errors by default but enforces none.
            consecutive_gateway: Threshold {
                consecutive: 5,
                enforcing: false,
            },
            consecutive_local_origin: Threshold {
                consecutive: 5,
                enforcing: true,
            },
            split_external_local_origin_errors: false,
            interval: Duration::from_secs(10),
            base_ejection_time: Duration::from_secs(30),
            max_ejection_time: DEFAULT_MAX_EJECTION_TIME,
            max_ejection_percent: 10,
            min_health_percent: 0,
        }
    }
}

impl OutlierConfig {
    /// Whether a cluster with `healthy` of its `total` endpoints in service is in panic
    /// (and balances over all of them). Envoy never panics while the priority's health,
    /// over-provisioned by 1.4, reaches 100%; below that it panics when the healthy
    /// share is under the threshold.
    pub fn panics(&self, healthy: usize, total: usize) -> bool {
        const OVERPROVISIONING: usize = 140;
        total != 0
            && OVERPROVISIONING * healthy / total < 100
            && 100 * healthy < self.min_health_percent as usize * total
    }

    fn threshold(&self, kind: Kind) -> Threshold {
        match kind {
            Kind::Consecutive5xx => self.consecutive_5xx,
            Kind::GatewayFailure => self.consecutive_gateway,
            Kind::LocalOrigin => self.consecutive_local_origin,
        }
    }

    /// How long an endpoint's ejection lasts with multiplier `backoff`.
    fn ejection_time(&self, backoff: u32) -> Duration {
        self.base_ejection_time
            .saturating_mul(backoff)
            .min(self.max_ejection_time)
    }
}

/// The kinds of consecutive-failure detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Consecutive5xx,
    GatewayFailure,
    LocalOrigin,
}

/// One endpoint's failure counts and ejection.
#[derive(Debug, Default)]
struct Host {
    consecutive_5xx: u32,
    consecutive_gateway: u32,
    consecutive_local_origin: u32,
    /// Envoy's ejection-time multiplier: up by one per ejection, down by one per
    /// `interval` spent healthy.
    backoff: u32,
    /// When the current ejection began, and how long it lasts.
    ejection: Option<(Instant, Duration)>,
    /// When the last ejection ended (the multiplier decays from then on).
    returned: Option<Instant>,
}

impl Host {
    /// Counts `outcome`; returns the detectors that fired (at most two: a gateway error
    /// is a 5xx too).
    fn record(&mut self, config: &OutlierConfig, outcome: Outcome) -> [Option<Kind>; 2] {
        let split = config.split_external_local_origin_errors;
        let status = match outcome {
            Outcome::Status(code) => {
                // The connection worked: the local-origin run is over.
                self.consecutive_local_origin = 0;
                code
            }
            Outcome::ConnectFailed | Outcome::Reset if !split => 503,
            Outcome::Timeout if !split => 504,
            Outcome::ConnectFailed | Outcome::Reset | Outcome::Timeout => {
                self.consecutive_local_origin = self.consecutive_local_origin.saturating_add(1);
                let hit = fires(
                    self.consecutive_local_origin,
                    config.consecutive_local_origin,
                );
                return [hit.then_some(Kind::LocalOrigin), None];
            }
        };
        if !(500..600).contains(&status) {
            self.consecutive_5xx = 0;
            self.consecutive_gateway = 0;
            return [None, None];
        }
        let mut fired = [None, None];
        if matches!(status, 502..=504) {
            self.consecutive_gateway = self.consecutive_gateway.saturating_add(1);
            if fires(self.consecutive_gateway, config.consecutive_gateway) {
                fired[0] = Some(Kind::GatewayFailure);
            }
        } else {
            self.consecutive_gateway = 0;
        }
        self.consecutive_5xx = self.consecutive_5xx.saturating_add(1);
        if fires(self.consecutive_5xx, config.consecutive_5xx) {
            fired[1] = Some(Kind::Consecutive5xx);
        }
        fired
    }

    fn reset(&mut self, kind: Kind) {
        match kind {
            Kind::Consecutive5xx => self.consecutive_5xx = 0,
            Kind::GatewayFailure => self.consecutive_gateway = 0,
            Kind::LocalOrigin => self.consecutive_local_origin = 0,
        }
    }

    /// Ejects the host at `now`: the multiplier first decays for the intervals it spent
    /// healthy, then grows by one unless the ejection time is already at its cap.
    fn eject(&mut self, config: &OutlierConfig, now: Instant) {
        if let Some(returned) = self.returned.take() {
            let healthy = now.saturating_duration_since(returned).as_nanos();
            let intervals = healthy / config.interval.as_nanos().max(1);
            self.backoff = self
                .backoff
                .saturating_sub(u32::try_from(intervals).unwrap_or(u32::MAX));
        }
        let cap = config
            .max_ejection_time
            .saturating_add(config.base_ejection_time);
        if config.base_ejection_time.saturating_mul(self.backoff) < cap {
            self.backoff += 1;
        }
        self.ejection = Some((now, config.ejection_time(self.backoff)));
    }

    /// The moment the current ejection ends, if the host is ejected and that is not
    /// after `now`.
    fn expired(&self, now: Instant) -> Option<Instant> {
        let (at, length) = self.ejection?;
        (now.saturating_duration_since(at) >= length).then(|| at.checked_add(length).unwrap_or(now))
    }

    /// Back in service at `at`; the counts start afresh so a few new errors do not eject
    /// it again at once (as Envoy's uneject does).
    fn uneject(&mut self, at: Instant) {
        self.ejection = None;
        self.returned = Some(at);
        self.consecutive_5xx = 0;
        self.consecutive_gateway = 0;
        self.consecutive_local_origin = 0;
    }
}

/// Whether a run of `count` failures fires `threshold` (exactly at it, as Envoy does: a
/// host that keeps failing while ejected does not fire again).
fn fires(count: u32, threshold: Threshold) -> bool {
    threshold.consecutive != 0 && count == threshold.consecutive
}

/// Envoy's `outlier_detection.*` counters for one cluster.
#[derive(Debug, Default)]
struct Counters {
    /// Deprecated in Envoy but still served: consecutive-5xx outliers within the
    /// ejection limit, enforced or not.
    ejections_total: AtomicU64,
    ejections_enforced_total: AtomicU64,
    ejections_overflow: AtomicU64,
    ejections_detected_consecutive_5xx: AtomicU64,
    ejections_enforced_consecutive_5xx: AtomicU64,
    ejections_detected_consecutive_gateway_failure: AtomicU64,
    ejections_enforced_consecutive_gateway_failure: AtomicU64,
    ejections_detected_consecutive_local_origin_failure: AtomicU64,
    ejections_enforced_consecutive_local_origin_failure: AtomicU64,
}

impl Counters {
    fn detected(&self, kind: Kind) -> &AtomicU64 {
        match kind {
            Kind::Consecutive5xx => &self.ejections_detected_consecutive_5xx,
            Kind::GatewayFailure => &self.ejections_detected_consecutive_gateway_failure,
            Kind::LocalOrigin => &self.ejections_detected_consecutive_local_origin_failure,
        }
    }

    fn enforced(&self, kind: Kind) -> &AtomicU64 {
        match kind {
            Kind::Consecutive5xx => &self.ejections_enforced_consecutive_5xx,
            Kind::GatewayFailure => &self.ejections_enforced_consecutive_gateway_failure,
            Kind::LocalOrigin => &self.ejections_enforced_consecutive_local_origin_failure,
        }
    }

    fn all(&self) -> [(&'static str, &AtomicU64); 9] {
        [
            ("ejections_total", &self.ejections_total),
            ("ejections_enforced_total", &self.ejections_enforced_total),
            ("ejections_overflow", &self.ejections_overflow),
            (
                "ejections_detected_consecutive_5xx",
                &self.ejections_detected_consecutive_5xx,
            ),
            (
                "ejections_enforced_consecutive_5xx",
                &self.ejections_enforced_consecutive_5xx,
            ),
            (
                "ejections_detected_consecutive_gateway_failure",
                &self.ejections_detected_consecutive_gateway_failure,
            ),
            (
                "ejections_enforced_consecutive_gateway_failure",
                &self.ejections_enforced_consecutive_gateway_failure,
            ),
            (
                "ejections_detected_consecutive_local_origin_failure",
                &self.ejections_detected_consecutive_local_origin_failure,
            ),
            (
                "ejections_enforced_consecutive_local_origin_failure",
                &self.ejections_enforced_consecutive_local_origin_failure,
            ),
        ]
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Hosts kept beyond the cluster's endpoints before the state of departed ones is
/// dropped (endpoints change with config reloads; the state is per cluster name).
const STALE_HOSTS: usize = 16;

/// The detector's state for one cluster: per-endpoint failure counts and ejections. It
/// outlives config reloads (it belongs to the cluster's name, like its stats).
#[derive(Debug, Default)]
pub struct Health {
    /// Set once a cluster with `outlierDetection` used this state: only such clusters
    /// have `outlier_detection.*` stats, as in Envoy.
    enabled: AtomicBool,
    /// Hosts with an ejection on record (some may be due to return): while it is 0,
    /// picks never take the lock.
    ejected: AtomicUsize,
    hosts: Mutex<HashMap<String, Host>>,
    counters: Counters,
}

impl Health {
    /// Records what an attempt to `address`, one of `endpoints`, came to at `now`, and
    /// ejects it if that made it an outlier. Addresses outside `endpoints` (a request
    /// that straddled a config reload) are ignored.
    pub fn report(
        &self,
        config: &OutlierConfig,
        endpoints: &[UpstreamEndpoint],
        address: &str,
        outcome: Outcome,
        now: Instant,
    ) {
        self.enable();
        if !endpoints.iter().any(|e| e.address == address) {
            return;
        }
        let mut hosts = self.refreshed(now);
        if hosts.len() > endpoints.len() + STALE_HOSTS {
            self.forget_departed(&mut hosts, endpoints);
        }
        if !hosts.contains_key(address) {
            hosts.insert(address.to_string(), Host::default());
        }
        let fired = match hosts.get_mut(address) {
            Some(host) => host.record(config, outcome),
            None => return,
        };
        for kind in fired.into_iter().flatten() {
            self.on_outlier(&mut hosts, config, endpoints, address, kind, now);
        }
    }

    /// Envoy's `ejectHost` for an outlier `kind` just detected on `address`.
    fn on_outlier(
        &self,
        hosts: &mut HashMap<String, Host>,
        config: &OutlierConfig,
        endpoints: &[UpstreamEndpoint],
        address: &str,
        kind: Kind,
        now: Instant,
    ) {
        // An ejected host is not ejected again (nor its count reset): it keeps failing
        // while in-flight requests finish.
        if hosts.get(address).is_none_or(|h| h.ejection.is_some()) {
            return;
        }
        bump(self.counters.detected(kind));
        let active = endpoints
            .iter()
            .filter(|e| hosts.get(&e.address).is_some_and(|h| h.ejection.is_some()))
            .count();
        // Envoy: eject only if the ejected share stays within the maximum, so with
        // too few endpoints for the percentage none is ever ejected.
        let within = 100 * (active + 1) <= config.max_ejection_percent as usize * endpoints.len();
        let Some(host) = hosts.get_mut(address) else {
            return;
        };
        if !within {
            bump(&self.counters.ejections_overflow);
        } else {
            if kind == Kind::Consecutive5xx {
                bump(&self.counters.ejections_total);
            }
            if config.threshold(kind).enforcing {
                host.eject(config, now);
                self.ejected.fetch_add(1, Ordering::AcqRel);
                bump(&self.counters.ejections_enforced_total);
                bump(self.counters.enforced(kind));
                tracing::info!(address, kind = ?kind, "outlier detection ejected an endpoint");
            }
        }
        host.reset(kind);
    }

    /// Which of `endpoints` are ejected at `now`, in their order; `None` when none is
    /// (without taking the lock when no ejection is on record).
    pub fn ejected(&self, endpoints: &[UpstreamEndpoint], now: Instant) -> Option<Vec<bool>> {
        self.enable();
        if self.ejected.load(Ordering::Acquire) == 0 {
            return None;
        }
        let hosts = self.refreshed(now);
        let mask: Vec<bool> = endpoints
            .iter()
            .map(|e| hosts.get(&e.address).is_some_and(|h| h.ejection.is_some()))
            .collect();
        mask.contains(&true).then_some(mask)
    }

    /// Whether `address` is ejected at `now`.
    pub fn is_ejected(&self, address: &str, now: Instant) -> bool {
        self.ejected.load(Ordering::Acquire) != 0
            && self
                .refreshed(now)
                .get(address)
                .is_some_and(|h| h.ejection.is_some())
    }

    /// Envoy's `outlier_detection.*` stats at `now`, by name, for a cluster that has
    /// outlier detection (nothing otherwise).
    pub fn render(&self, now: Instant, out: &mut dyn FnMut(&'static str, u64)) {
        if !self.enabled.load(Ordering::Relaxed) {
            return;
        }
        let active = self
            .refreshed(now)
            .values()
            .filter(|h| h.ejection.is_some())
            .count();
        out("ejections_active", active as u64);
        for (name, counter) in self.counters.all() {
            out(name, counter.load(Ordering::Relaxed));
        }
    }

    fn enable(&self) {
        if !self.enabled.load(Ordering::Relaxed) {
            self.enabled.store(true, Ordering::Relaxed);
        }
    }

    /// The hosts, with those whose ejection time is up at `now` back in service.
    fn refreshed(&self, now: Instant) -> MutexGuard<'_, HashMap<String, Host>> {
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        if self.ejected.load(Ordering::Acquire) != 0 {
            for (address, host) in hosts.iter_mut() {
                if let Some(at) = host.expired(now) {
                    host.uneject(at);
                    self.ejected.fetch_sub(1, Ordering::AcqRel);
                    tracing::info!(address, "outlier detection returned an endpoint to service");
                }
            }
        }
        hosts
    }

    /// Drops the state of hosts no longer among `endpoints`.
    fn forget_departed(&self, hosts: &mut HashMap<String, Host>, endpoints: &[UpstreamEndpoint]) {
        hosts.retain(|address, host| {
            let keep = endpoints.iter().any(|e| e.address == *address);
            if !keep && host.ejection.is_some() {
                self.ejected.fetch_sub(1, Ordering::AcqRel);
            }
            keep
        });
    }
}

#[cfg(test)]
mod tests;
