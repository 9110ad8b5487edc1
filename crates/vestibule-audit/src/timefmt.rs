//! Timestamps as the log writes them (RFC 3339, UTC, milliseconds) and the
//! human durations the CLI and the configuration accept.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::AuditError;

/// A point in time with millisecond precision, written as
/// `2024-05-01T12:00:00.123Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub fn now() -> Self {
        Self::from(SystemTime::now())
    }

    pub fn from_unix_millis(ms: i64) -> Self {
        Self(ms)
    }

    pub fn unix_millis(self) -> i64 {
        self.0
    }

    /// `self - duration`, saturating at the epoch's far past.
    pub fn minus(self, duration: Duration) -> Self {
        let ms = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_sub(ms))
    }

    /// Either an RFC 3339 time or a duration back from `now` (`30m`, `2h`,
    /// `7d`), as `--since` takes it.
    pub fn parse_since(text: &str, now: Timestamp) -> Result<Self, AuditError> {
        if let Ok(duration) = parse_duration(text) {
            return Ok(now.minus(duration));
        }
        text.parse()
    }
}

impl From<SystemTime> for Timestamp {
    fn from(time: SystemTime) -> Self {
        let ms = match time.duration_since(UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
            Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
        };
        Self(ms)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = i128::from(self.0) * 1_000_000;
        match OffsetDateTime::from_unix_timestamp_nanos(nanos) {
            Ok(t) => write!(
                f,
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
                t.millisecond()
            ),
            // Out of the calendar's range: still print something that sorts.
            Err(_) => write!(f, "{}ms", self.0),
        }
    }
}

impl FromStr for Timestamp {
    type Err = AuditError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let parsed = OffsetDateTime::parse(text.trim(), &Rfc3339)
            .map_err(|_| AuditError::Time(text.to_owned()))?;
        let ms = parsed.unix_timestamp_nanos() / 1_000_000;
        i64::try_from(ms)
            .map(Self)
            .map_err(|_| AuditError::Time(text.to_owned()))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A duration such as `500ms`, `30s`, `5m`, `2h`, `7d` or `1w`; a bare number
/// is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, AuditError> {
    let text = text.trim();
    let bad = || AuditError::Time(text.to_owned());
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let value: u64 = digits.parse().map_err(|_| bad())?;
    let millis_per_unit: u64 = match unit.trim() {
        "ms" => 1,
        "" | "s" | "sec" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 604_800_000,
        _ => return Err(bad()),
    };
    value
        .checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(bad)
}

/// Serde helper: durations in configuration files are strings like `"5s"`.
pub(crate) mod duration_str {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        super::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339_utc_millis() {
        let t = Timestamp::from_unix_millis(1_714_564_800_123);
        assert_eq!(t.to_string(), "2024-05-01T12:00:00.123Z");
        assert_eq!("2024-05-01T12:00:00.123Z".parse::<Timestamp>().unwrap(), t);
        assert_eq!(
            "2024-05-01T14:00:00.123+02:00"
                .parse::<Timestamp>()
                .unwrap(),
            t
        );
    }

    #[test]
    fn durations_and_since() {
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(604_800));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert!(parse_duration("2x").is_err());
        assert!(parse_duration("h").is_err());
        let now = Timestamp::from_unix_millis(10_000_000);
        assert_eq!(
            Timestamp::parse_since("1h", now).unwrap().unix_millis(),
            10_000_000 - 3_600_000
        );
        assert!(Timestamp::parse_since("yesterday", now).is_err());
    }
}
