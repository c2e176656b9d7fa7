//! Wall-clock time in UTC, split into calendar fields for log lines (the samples need no
//! time zones, so no date crate).

use std::time::{SystemTime, UNIX_EPOCH};

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A UTC instant as calendar fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Utc {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

pub(crate) fn now() -> Utc {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    from_unix(secs)
}

/// Splits seconds since the epoch into calendar fields (the proleptic Gregorian calendar,
/// by the days-from-civil inverse).
pub(crate) fn from_unix(secs: u64) -> Utc {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Shift the epoch to 0000-03-01 so leap days fall at the end of each 400-year era.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    Utc {
        year,
        month,
        day,
        hour: (rem / 3_600) as u32,
        minute: (rem % 3_600 / 60) as u32,
        second: (rem % 60) as u32,
    }
}

impl Utc {
    /// `21/Nov/2026:15:23:01 +0000`, the access-log timestamp.
    pub fn common_log(&self) -> String {
        let month = MONTHS
            .get(self.month.saturating_sub(1) as usize)
            .copied()
            .unwrap_or("Jan");
        format!(
            "{:02}/{month}/{}:{:02}:{:02}:{:02} +0000",
            self.day, self.year, self.hour, self.minute, self.second
        )
    }

    /// `15:23:01`, the time fortio's log lines start with.
    pub fn clock(&self) -> String {
        format!("{:02}:{:02}:{:02}", self.hour, self.minute, self.second)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(from_unix(0).common_log(), "01/Jan/1970:00:00:00 +0000");
        // 2000-02-29 12:34:56 UTC, a leap day in a century leap year.
        assert_eq!(
            from_unix(951_827_696).common_log(),
            "29/Feb/2000:12:34:56 +0000"
        );
        // 2026-11-21 15:23:01 UTC.
        let t = from_unix(1_795_274_581);
        assert_eq!(t.common_log(), "21/Nov/2026:15:23:01 +0000");
        assert_eq!(t.clock(), "15:23:01");
    }
}
