//! The detector against a controlled clock: each kind of consecutive failure, ejection
//! time growth and decay, the maximum ejection percentage, return to service, stats, and
//! the panic threshold.

use std::collections::BTreeMap;

use super::*;

const BASE: Duration = Duration::from_secs(10);
const INTERVAL: Duration = Duration::from_secs(1);

fn config() -> OutlierConfig {
    OutlierConfig {
        consecutive_5xx: Threshold {
            consecutive: 3,
            enforcing: true,
        },
        consecutive_gateway: Threshold {
            consecutive: 0,
            enforcing: false,
        },
        interval: INTERVAL,
        base_ejection_time: BASE,
        max_ejection_time: Duration::from_secs(35),
        max_ejection_percent: 100,
        ..OutlierConfig::default()
    }
}

fn endpoints(n: usize) -> Vec<UpstreamEndpoint> {
    (0..n)
        .map(|i| UpstreamEndpoint::new(format!("10.0.0.{i}:80")))
        .collect()
}

/// A cluster's detector and endpoints, and a clock the test moves.
struct Fixture {
    config: OutlierConfig,
    endpoints: Vec<UpstreamEndpoint>,
    health: Health,
    start: Instant,
    now: Instant,
}

impl Fixture {
    fn new(config: OutlierConfig, n: usize) -> Self {
        let start = Instant::now();
        Self {
            config,
            endpoints: endpoints(n),
            health: Health::default(),
            start,
            now: start,
        }
    }

    fn report(&self, i: usize, outcome: Outcome, times: usize) {
        let address = &self.endpoints[i].address;
        for _ in 0..times {
            self.health
                .report(&self.config, &self.endpoints, address, outcome, self.now);
        }
    }

    fn ejected(&self, i: usize) -> bool {
        self.health.is_ejected(&self.endpoints[i].address, self.now)
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
    }

    /// The time since the fixture started.
    fn at(&self) -> Duration {
        self.now - self.start
    }

    fn stats(&self) -> BTreeMap<&'static str, u64> {
        let mut out = BTreeMap::new();
        self.health.render(self.now, &mut |k, v| {
            out.insert(k, v);
        });
        out
    }

    /// Advances the clock in 100 ms steps until endpoint `i` is back; returns how long
    /// that took.
    fn time_to_return(&mut self, i: usize) -> Duration {
        let from = self.now;
        while self.ejected(i) {
            self.advance(Duration::from_millis(100));
            assert!(
                self.now - from < Duration::from_secs(3600),
                "never returned"
            );
        }
        self.now - from
    }
}

#[test]
fn consecutive_5xx_ejects_at_the_threshold_and_a_success_resets_the_run() {
    let f = Fixture::new(config(), 4);
    f.report(0, Outcome::Status(500), 2);
    f.report(0, Outcome::Status(200), 1);
    f.report(0, Outcome::Status(503), 2);
    assert!(!f.ejected(0), "the 200 broke the run");
    // 4xx is no failure either, and breaks the run.
    f.report(0, Outcome::Status(404), 1);
    f.report(0, Outcome::Status(500), 2);
    assert!(!f.ejected(0));
    f.report(0, Outcome::Status(502), 1);
    assert!(f.ejected(0));
    assert!(!f.ejected(1));
    let stats = f.stats();
    assert_eq!(stats["ejections_active"], 1);
    assert_eq!(stats["ejections_enforced_total"], 1);
    assert_eq!(stats["ejections_enforced_consecutive_5xx"], 1);
    assert_eq!(stats["ejections_detected_consecutive_5xx"], 1);
    assert_eq!(stats["ejections_total"], 1);
    assert_eq!(stats["ejections_overflow"], 0);
}

#[test]
fn gateway_errors_count_only_502_503_504() {
    let mut c = config();
    c.consecutive_5xx.consecutive = 0;
    c.consecutive_gateway = Threshold {
        consecutive: 2,
        enforcing: true,
    };
    let f = Fixture::new(c, 4);
    f.report(0, Outcome::Status(503), 1);
    f.report(0, Outcome::Status(500), 1);
    f.report(0, Outcome::Status(504), 1);
    assert!(
        !f.ejected(0),
        "a 500 is a 5xx but not a gateway error: the run restarts"
    );
    f.report(0, Outcome::Status(502), 1);
    assert!(f.ejected(0));
    let stats = f.stats();
    assert_eq!(stats["ejections_enforced_consecutive_gateway_failure"], 1);
    assert_eq!(stats["ejections_detected_consecutive_5xx"], 0);
}

#[test]
fn unenforced_detection_counts_but_does_not_eject() {
    // Istio's defaults: gateway errors detected at 5, not enforced.
    let mut c = config();
    c.consecutive_5xx.consecutive = 0;
    c.consecutive_gateway = Threshold {
        consecutive: 5,
        enforcing: false,
    };
    let f = Fixture::new(c, 2);
    f.report(0, Outcome::Status(503), 5);
    assert!(!f.ejected(0));
    let stats = f.stats();
    assert_eq!(stats["ejections_detected_consecutive_gateway_failure"], 1);
    assert_eq!(stats["ejections_enforced_total"], 0);
    assert_eq!(stats["ejections_active"], 0);
}

#[test]
fn without_the_split_local_failures_count_as_503_and_504() {
    let mut c = config();
    c.consecutive_gateway = Threshold {
        consecutive: 3,
        enforcing: true,
    };
    c.consecutive_5xx.consecutive = 0;
    let f = Fixture::new(c, 4);
    f.report(0, Outcome::ConnectFailed, 1);
    f.report(0, Outcome::Reset, 1);
    f.report(0, Outcome::Timeout, 1);
    assert!(f.ejected(0), "503, 503, 504: three gateway errors");
    assert_eq!(
        f.stats()["ejections_enforced_consecutive_gateway_failure"],
        1
    );
}

#[test]
fn with_the_split_local_failures_have_their_own_count() {
    let mut c = config();
    c.split_external_local_origin_errors = true;
    c.consecutive_local_origin = Threshold {
        consecutive: 2,
        enforcing: true,
    };
    let f = Fixture::new(c, 4);
    // Any answer, even a 500, ends a run of local failures.
    f.report(1, Outcome::Timeout, 1);
    f.report(1, Outcome::Status(200), 1);
    f.report(1, Outcome::Reset, 1);
    assert!(!f.ejected(1), "the 200 ended the local-origin run");
    f.report(1, Outcome::ConnectFailed, 1);
    assert!(f.ejected(1));
    let stats = f.stats();
    assert_eq!(
        stats["ejections_enforced_consecutive_local_origin_failure"],
        1
    );
    assert_eq!(stats["ejections_detected_consecutive_5xx"], 0);
}

#[test]
fn the_split_keeps_5xx_apart_from_local_failures() {
    let mut c = config();
    c.split_external_local_origin_errors = true;
    let f = Fixture::new(c, 4);
    f.report(0, Outcome::Status(500), 2);
    f.report(0, Outcome::ConnectFailed, 4);
    f.report(0, Outcome::Status(500), 1);
    assert!(
        f.ejected(0),
        "the connect failures neither count as 5xx nor break the run"
    );
    assert_eq!(f.stats()["ejections_enforced_consecutive_5xx"], 1);
}

#[test]
fn an_ejected_endpoint_returns_when_its_time_is_up() {
    let mut f = Fixture::new(config(), 4);
    f.report(0, Outcome::Status(500), 3);
    f.advance(BASE - Duration::from_millis(1));
    assert!(f.ejected(0));
    f.advance(Duration::from_millis(1));
    assert!(!f.ejected(0));
    assert_eq!(f.stats()["ejections_active"], 0);
    // Its counts started afresh: two more 500s do not eject it again.
    f.report(0, Outcome::Status(500), 2);
    assert!(!f.ejected(0));
}

#[test]
fn each_ejection_in_a_row_lasts_longer_up_to_the_cap() {
    // Base 10s, cap 35s: 10, 20, 30, 35, 35.
    let mut f = Fixture::new(config(), 4);
    let mut lengths = Vec::new();
    for _ in 0..5 {
        f.report(0, Outcome::Status(500), 3);
        assert!(f.ejected(0));
        lengths.push(f.time_to_return(0).as_secs());
    }
    assert_eq!(lengths, [10, 20, 30, 35, 35]);
    assert_eq!(f.stats()["ejections_enforced_total"], 5);
}

#[test]
fn the_multiplier_decays_by_one_per_interval_spent_healthy() {
    let mut f = Fixture::new(config(), 4);
    // Three ejections in a row: the next would last 40s (capped to 35s).
    for _ in 0..3 {
        f.report(0, Outcome::Status(500), 3);
        f.time_to_return(0);
    }
    // Two intervals healthy: the multiplier drops from 3 to 1, so the next is 20s.
    f.advance(INTERVAL * 2);
    f.report(0, Outcome::Status(500), 3);
    assert_eq!(f.time_to_return(0), Duration::from_secs(20));
    // Long healthy: back to the base.
    f.advance(INTERVAL * 100);
    f.report(0, Outcome::Status(500), 3);
    assert_eq!(f.time_to_return(0), BASE);
    assert!(f.at() > BASE);
}

#[test]
fn max_ejection_percent_limits_how_many_are_out_at_once() {
    let mut c = config();
    c.max_ejection_percent = 50;
    let f = Fixture::new(c, 4);
    f.report(0, Outcome::Status(500), 3);
    f.report(1, Outcome::Status(500), 3);
    // A third would make 75%.
    f.report(2, Outcome::Status(500), 3);
    assert!(f.ejected(0) && f.ejected(1));
    assert!(!f.ejected(2));
    let stats = f.stats();
    assert_eq!(stats["ejections_active"], 2);
    assert_eq!(stats["ejections_overflow"], 1);
    // The run was reset: it takes another full run to be detected again.
    f.report(2, Outcome::Status(500), 2);
    assert_eq!(f.stats()["ejections_overflow"], 1);
    f.report(2, Outcome::Status(500), 1);
    assert_eq!(f.stats()["ejections_overflow"], 2);
}

#[test]
fn a_percentage_too_small_for_one_endpoint_ejects_none() {
    // Envoy (without always_eject_one_host, which Istio does not set): 1 of 2 is 50%,
    // over the default 10%, so nothing is ejected.
    let mut c = config();
    c.max_ejection_percent = 10;
    let f = Fixture::new(c, 2);
    f.report(0, Outcome::Status(500), 3);
    assert!(!f.ejected(0));
    assert_eq!(f.stats()["ejections_overflow"], 1);
    assert_eq!(f.stats()["ejections_total"], 0);
}

#[test]
fn reports_for_unknown_addresses_are_ignored() {
    let f = Fixture::new(config(), 2);
    for _ in 0..3 {
        f.health.report(
            &f.config,
            &f.endpoints,
            "192.0.2.1:80",
            Outcome::Status(500),
            f.now,
        );
    }
    assert!(!f.health.is_ejected("192.0.2.1:80", f.now));
    assert_eq!(f.stats()["ejections_detected_consecutive_5xx"], 0);
}

#[test]
fn the_ejected_mask_follows_endpoint_order_and_is_none_when_all_are_in() {
    let mut f = Fixture::new(config(), 3);
    assert_eq!(f.health.ejected(&f.endpoints, f.now), None);
    f.report(1, Outcome::Status(500), 3);
    assert_eq!(
        f.health.ejected(&f.endpoints, f.now),
        Some(vec![false, true, false])
    );
    f.advance(BASE);
    assert_eq!(f.health.ejected(&f.endpoints, f.now), None);
}

#[test]
fn stats_appear_only_for_clusters_with_outlier_detection() {
    let health = Health::default();
    let mut n = 0;
    health.render(Instant::now(), &mut |_, _| n += 1);
    assert_eq!(n, 0);
    let f = Fixture::new(config(), 2);
    f.health.ejected(&f.endpoints, f.now);
    assert!(f.stats().contains_key("ejections_overflow"));
}

#[test]
fn the_panic_threshold_follows_envoy() {
    let mut c = config();
    // Istio's default: never panic, even with none healthy.
    c.min_health_percent = 0;
    assert!(!c.panics(0, 2));
    c.min_health_percent = 50;
    assert!(!c.panics(1, 2), "50% healthy is not below 50%");
    assert!(c.panics(0, 2));
    assert!(c.panics(1, 3));
    // Over-provisioned by 1.4, 3 of 4 healthy counts as fully healthy: no panic even
    // under a 90% threshold.
    c.min_health_percent = 90;
    assert!(!c.panics(3, 4));
    assert!(c.panics(2, 4));
}
