//! Fault injection (`fault`): a share of the route's requests is delayed before it is
//! forwarded, and a share answered with an error instead, as Envoy's fault filter does
//! (the delay first, then the abort).

use std::time::Duration;

use serde::Serialize;
use weft_api::common::Percent;
use weft_api::networking::virtual_service::{GRPC_STATUSES, HttpFaultInjection};

/// A route's faults.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fault {
    pub delay: Option<Delay>,
    pub abort: Option<Abort>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delay {
    pub duration: Duration,
    /// Share of requests delayed, 0-100.
    pub percent: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Abort {
    pub error: AbortWith,
    /// Share of requests aborted, 0-100.
    pub percent: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AbortWith {
    /// An HTTP status.
    Http(u16),
    /// A gRPC status code, sent as a trailers-only gRPC answer (HTTP 200).
    Grpc(u8),
}

impl Fault {
    /// Istio's translation: `percentage`, else the old integer `percent`, else nothing is
    /// affected; an abort without a status or a delay without `fixedDelay` does nothing.
    pub fn compile(f: &HttpFaultInjection) -> Option<Fault> {
        let share = |p: Option<&Percent>, n: Option<i32>| match (p, n) {
            (Some(p), _) => p.value.clamp(0.0, 100.0),
            (None, Some(n)) => f64::from(n.clamp(0, 100)),
            (None, None) => 0.0,
        };
        let delay = f.delay.as_ref().and_then(|d| {
            Some(Delay {
                duration: d.fixed_delay?.get(),
                percent: share(d.percentage.as_ref(), d.percent),
            })
        });
        let abort = f.abort.as_ref().and_then(|a| {
            let error = match (a.http_status, &a.grpc_status) {
                (Some(status), _) => AbortWith::Http(u16::try_from(status).ok()?),
                (None, Some(name)) => {
                    let code = GRPC_STATUSES.iter().position(|s| s == name)?;
                    AbortWith::Grpc(u8::try_from(code).ok()?)
                }
                (None, None) => return None,
            };
            Some(Abort {
                error,
                percent: share(a.percentage.as_ref(), a.percent),
            })
        });
        (delay.is_some() || abort.is_some()).then_some(Fault { delay, abort })
    }

    /// The delay this request gets, if the dice say so.
    pub fn roll_delay(&self) -> Option<Duration> {
        self.delay
            .as_ref()
            .filter(|d| hit(d.percent))
            .map(|d| d.duration)
    }

    /// The error this request is answered with, if the dice say so.
    pub fn roll_abort(&self) -> Option<AbortWith> {
        self.abort
            .as_ref()
            .filter(|a| hit(a.percent))
            .map(|a| a.error)
    }
}

/// True for `percent` % of calls (Envoy draws on a million-step scale).
fn hit(percent: f64) -> bool {
    if percent >= 100.0 {
        return true;
    }
    // Rounded to a millionth: the finest share `percentage` can express.
    let per_million = (percent * 10_000.0).round() as u64;
    fastrand::u64(..1_000_000) < per_million
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_api::networking::virtual_service::{FaultAbort, FaultDelay};

    #[test]
    fn percentage_wins_over_the_old_percent_and_absent_means_none() {
        let f = Fault::compile(&HttpFaultInjection {
            delay: Some(FaultDelay {
                fixed_delay: Some(weft_api::validate::Duration::from_std(Duration::from_secs(
                    7,
                ))),
                percent: Some(100),
                ..FaultDelay::default()
            }),
            abort: Some(FaultAbort {
                http_status: Some(500),
                ..FaultAbort::default()
            }),
        })
        .unwrap();
        let delay = f.delay.as_ref().unwrap();
        assert_eq!(
            (delay.duration, delay.percent),
            (Duration::from_secs(7), 100.0)
        );
        assert_eq!(f.abort.as_ref().unwrap().percent, 0.0);
        assert_eq!(f.roll_delay(), Some(Duration::from_secs(7)));
        assert_eq!(f.roll_abort(), None);
    }

    #[test]
    fn grpc_aborts_carry_the_status_code() {
        let f = Fault::compile(&HttpFaultInjection {
            delay: None,
            abort: Some(FaultAbort {
                grpc_status: Some("UNAVAILABLE".into()),
                percentage: Some(Percent { value: 100.0 }),
                ..FaultAbort::default()
            }),
        })
        .unwrap();
        assert_eq!(f.roll_abort(), Some(AbortWith::Grpc(14)));
    }

    #[test]
    fn shares_are_honoured_within_a_stated_bound() {
        let n = 20_000;
        let hits = (0..n).filter(|_| hit(50.0)).count();
        // Binomial(20000, 0.5): sd = 70.7; 5 sd either side.
        assert!((9_646..=10_354).contains(&hits), "{hits}");
        assert!(!(0..1000).any(|_| hit(0.0)));
        assert!((0..1000).all(|_| hit(100.0)));
    }
}
