//! RFC 3339 timestamps in UTC, without a date crate.
//!
//! Exists because two places write them: the fleet report's `started` (to the second) and the
//! JSON envelope's `@timestamp` (to the millisecond, as Elastic Common Schema and Filebeat write
//! it). Days to a civil date is Howard Hinnant's algorithm.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, to the second (`2026-11-28T23:20:35Z`).
pub fn now_rfc3339() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (date, time) = civil(secs);
    format!("{date}T{time}Z")
}

/// `ms` milliseconds after the Unix epoch, to the millisecond (`2026-11-28T23:20:35.042Z`).
pub fn rfc3339_millis(ms: u64) -> String {
    let (date, time) = civil(ms / 1000);
    format!("{date}T{time}.{:03}Z", ms % 1000)
}

/// Milliseconds since the Unix epoch, now.
pub fn now_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Unix seconds as (`YYYY-MM-DD`, `hh:mm:ss`) in UTC.
fn civil(secs: u64) -> (String, String) {
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (format!("{y:04}-{m:02}-{d:02}"), format!("{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_millis(951_782_400_007), "2000-02-29T00:00:00.007Z");
        assert_eq!(rfc3339_millis(1_795_902_035_999), "2026-11-28T21:40:35.999Z");
        assert_eq!(now_rfc3339().len(), "2026-11-28T21:40:35Z".len());
    }
}
