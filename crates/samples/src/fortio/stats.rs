//! Fortio's numbers: a counter (count, avg, stddev, min, max, sum), a latency histogram with
//! fortio's bucket bounds and its interpolated percentiles, and the printf-style `%g`
//! formatting its report uses.

use std::fmt::Write;

/// Fortio's bucket upper bounds, in milliseconds (its histogram's divider is 0.001 s).
const BOUNDS_MS: &[f64] = &[
    1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 14.0, 16.0, 18.0, 20.0, 25.0,
    30.0, 35.0, 40.0, 45.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0, 200.0, 300.0, 400.0, 500.0, 600.0,
    700.0, 800.0, 900.0, 1_000.0, 2_000.0, 3_000.0, 4_000.0, 5_000.0, 7_500.0, 10_000.0, 20_000.0,
    30_000.0, 40_000.0, 50_000.0, 60_000.0, 70_000.0, 80_000.0, 90_000.0, 100_000.0,
];

/// Count, sum and spread of a series of values.
#[derive(Debug, Clone, Default)]
pub(crate) struct Counter {
    pub count: u64,
    pub sum: f64,
    sum_sq: f64,
    pub min: f64,
    pub max: f64,
}

impl Counter {
    pub fn record(&mut self, v: f64) {
        if self.count == 0 || v < self.min {
            self.min = v;
        }
        if self.count == 0 || v > self.max {
            self.max = v;
        }
        self.count += 1;
        self.sum += v;
        self.sum_sq += v * v;
    }

    pub fn merge(&mut self, other: &Counter) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 || other.min < self.min {
            self.min = other.min;
        }
        if self.count == 0 || other.max > self.max {
            self.max = other.max;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.sum_sq += other.sum_sq;
    }

    pub fn avg(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum / self.count as f64
        }
    }

    pub fn stddev(&self) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let n = self.count as f64;
        let var = self.sum_sq / n - (self.sum / n).powi(2);
        var.max(0.0).sqrt()
    }

    /// `LABEL : count 20 avg 0.0076 +/- 0.006768 min 0.0012 max 0.027 sum 0.152`.
    pub fn line(&self, label: &str) -> String {
        format!(
            "{label} : count {} avg {} +/- {} min {} max {} sum {}",
            self.count,
            g(self.avg(), 8),
            g(self.stddev(), 4),
            shortest(self.min),
            shortest(self.max),
            g(self.sum, 9)
        )
    }
}

/// Call durations (seconds) in fortio's buckets.
#[derive(Debug, Clone)]
pub(crate) struct Histogram {
    pub counter: Counter,
    /// One count per bound, then one for everything above the last.
    buckets: Vec<u64>,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counter: Counter::default(),
            buckets: vec![0; BOUNDS_MS.len() + 1],
        }
    }
}

impl Histogram {
    pub fn record(&mut self, secs: f64) {
        self.counter.record(secs);
        let ms = secs * 1_000.0;
        let i = BOUNDS_MS
            .iter()
            .position(|b| ms <= *b)
            .unwrap_or(BOUNDS_MS.len());
        if let Some(slot) = self.buckets.get_mut(i) {
            *slot += 1;
        }
    }

    pub fn merge(&mut self, other: &Histogram) {
        self.counter.merge(&other.counter);
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine += theirs;
        }
    }

    /// The non-empty buckets as (low, high, cumulative percent, count), bounds clamped to
    /// the smallest and largest values seen.
    fn rows(&self) -> Vec<(f64, f64, f64, u64)> {
        let total = self.counter.count as f64;
        let mut rows = Vec::new();
        let mut seen = 0u64;
        for (i, count) in self.buckets.iter().enumerate() {
            if *count == 0 {
                continue;
            }
            seen += count;
            let low = if i == 0 {
                0.0
            } else {
                BOUNDS_MS[i - 1] / 1_000.0
            };
            let high = BOUNDS_MS.get(i).map_or(f64::INFINITY, |b| b / 1_000.0);
            let low = low.max(self.counter.min);
            let high = high.min(self.counter.max);
            rows.push((low, high, 100.0 * seen as f64 / total, *count));
        }
        rows
    }

    /// The value below which `p` percent of calls fall, interpolated inside its bucket.
    pub fn percentile(&self, p: f64) -> f64 {
        let mut prev = 0.0;
        let rows = self.rows();
        for (low, high, pct, _) in &rows {
            if *pct >= p {
                if pct - prev <= 0.0 {
                    return *high;
                }
                return low + (high - low) * (p - prev) / (pct - prev);
            }
            prev = *pct;
        }
        self.counter.max
    }

    /// The histogram and percentile lines of fortio's report.
    pub fn report(&self, percentiles: &[f64]) -> String {
        let mut out = String::from("# range, mid point, percentile, count\n");
        for (i, (low, high, pct, count)) in self.rows().into_iter().enumerate() {
            let open = if i == 0 { ">=" } else { ">" };
            let _ = writeln!(
                out,
                "{open} {} <= {} , {} , {pct:.2}, {count}",
                g(low, 6),
                g(high, 6),
                g((low + high) / 2.0, 6)
            );
        }
        for p in percentiles {
            let _ = writeln!(
                out,
                "# target {}% {}",
                shortest(*p),
                g(self.percentile(*p), 6)
            );
        }
        out
    }
}

/// C's `%.{prec}g`: `prec` significant digits, trailing zeros dropped, exponent form for
/// very small or large values.
pub(crate) fn g(v: f64, prec: usize) -> String {
    if v == 0.0 || !v.is_finite() {
        return shortest(v);
    }
    let prec = prec.max(1);
    let exp = v.abs().log10().floor() as i32;
    // Rounding can carry into the next power of ten (9.9999 -> 10.000).
    let rounded_exp = {
        let s = format!("{:.*e}", prec - 1, v);
        s.rsplit('e')
            .next()
            .and_then(|e| e.parse::<i32>().ok())
            .unwrap_or(exp)
    };
    if rounded_exp < -4 || rounded_exp >= prec as i32 {
        let s = format!("{:.*e}", prec - 1, v);
        let (mantissa, e) = s.split_once('e').unwrap_or((&s, "0"));
        let e: i32 = e.parse().unwrap_or(0);
        let sign = if e < 0 { '-' } else { '+' };
        return format!("{}e{sign}{:02}", trim_zeros(mantissa), e.abs());
    }
    let decimals = (prec as i32 - 1 - rounded_exp).max(0) as usize;
    trim_zeros(&format!("{v:.decimals$}"))
}

/// The shortest text that reads back as `v` (Go's `%g` without a precision).
pub(crate) fn shortest(v: f64) -> String {
    format!("{v}")
}

fn trim_zeros(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g_matches_c() {
        assert_eq!(g(0.0272712381, 6), "0.0272712");
        assert_eq!(g(0.00760278005, 8), "0.00760278");
        assert_eq!(g(258.4245, 5), "258.42");
        assert_eq!(g(17.7416902, 5), "17.742");
        assert_eq!(g(0.0012632, 6), "0.0012632");
        assert_eq!(g(0.002, 6), "0.002");
        assert_eq!(g(123456789.0, 6), "1.23457e+08");
        assert_eq!(g(0.00001234, 3), "1.23e-05");
        assert_eq!(g(99.99999, 3), "100");
    }

    /// The first run of seed 003's circuit-breaker walkthrough, bucket by bucket.
    #[test]
    fn percentiles_interpolate_like_fortio() {
        let mut h = Histogram::default();
        let values = [
            0.001263203,
            0.0025,
            0.0035,
            0.0035,
            0.0035,
            0.0045,
            0.0055,
            0.0055,
            0.0055,
            0.0055,
            0.0055,
            0.0065,
            0.0065,
            0.0065,
            0.0075,
            0.0085,
            0.0085,
            0.0085,
            0.026,
            0.027271238,
        ];
        for v in values {
            h.record(v);
        }
        let report = h.report(&[50.0, 75.0, 90.0, 99.0, 99.9]);
        assert!(report.starts_with(
            "# range, mid point, percentile, count\n>= 0.0012632 <= 0.002 , 0.0016316 , 5.00, 1\n"
        ));
        assert!(report.contains("> 0.025 <= 0.0272712 , 0.0261356 , 100.00, 2\n"));
        assert!(report.contains("# target 50% 0.0058\n"));
        assert!(report.contains("# target 75% 0.008\n"));
        assert!(report.contains("# target 99% 0.0270441\n"));
        assert!(report.contains("# target 99.9% 0.0272485\n"));
    }

    #[test]
    fn counter_line() {
        let mut c = Counter::default();
        for v in [1.0, 2.0, 3.0] {
            c.record(v);
        }
        assert_eq!(
            c.line("X"),
            "X : count 3 avg 2 +/- 0.8165 min 1 max 3 sum 6"
        );
    }
}
