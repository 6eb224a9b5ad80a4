//! Timestamps: one UTC instant type, the formats clients send it in, and the one format we answer in.

use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};

/// A UTC instant with nanosecond precision, stored as nanoseconds since the Unix epoch.
///
/// An `i64` of nanoseconds covers the years 1678 to 2262, which is every timestamp an LLM
/// application can produce, and sorts and subtracts without any calendar logic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// Why a value is not a timestamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    /// Text that is neither ISO-8601 nor an epoch number.
    #[error("{0:?} is not an ISO-8601 time or epoch number")]
    Unparseable(String),
    /// A number that is negative, not finite, or beyond year 2262.
    #[error("{0} is out of the supported time range")]
    OutOfRange(String),
}

impl Timestamp {
    /// Builds a timestamp from nanoseconds since the Unix epoch.
    pub const fn from_unix_nanos(nanos: i64) -> Self {
        Self(nanos)
    }

    /// Nanoseconds since the Unix epoch.
    pub const fn unix_nanos(self) -> i64 {
        self.0
    }

    /// Seconds from `earlier` to `self`, negative when `self` is earlier.
    pub fn seconds_since(self, earlier: Timestamp) -> f64 {
        // Subtract as integers first: an f64 cannot hold epoch nanoseconds exactly.
        self.0.saturating_sub(earlier.0) as f64 / 1e9
    }

    /// This instant moved by a (possibly negative) number of seconds; `None` on overflow.
    pub fn plus_seconds(self, seconds: f64) -> Option<Timestamp> {
        let delta = seconds * 1e9;
        if !delta.is_finite() || delta.abs() > i64::MAX as f64 {
            return None;
        }
        self.0.checked_add(delta.round() as i64).map(Timestamp)
    }

    /// Parses an epoch number, guessing its unit from its size: seconds, milliseconds,
    /// microseconds or nanoseconds (all real clients send one of these, and the ranges of
    /// plausible values for each unit do not overlap for dates after 1973).
    pub fn from_epoch_number(value: f64) -> Result<Self, TimestampError> {
        if !value.is_finite() || value < 0.0 {
            return Err(TimestampError::OutOfRange(value.to_string()));
        }
        let nanos = if value < 1e11 {
            value * 1e9
        } else if value < 1e14 {
            value * 1e6
        } else if value < 1e17 {
            value * 1e3
        } else {
            value
        };
        if nanos >= i64::MAX as f64 {
            return Err(TimestampError::OutOfRange(value.to_string()));
        }
        Ok(Self(nanos.round() as i64))
    }

    /// Parses ISO-8601 / RFC 3339 text, with or without a zone (no zone means UTC), with any
    /// number of fractional digits; a date alone means midnight UTC; digits alone are an epoch number.
    pub fn parse(text: &str) -> Result<Self, TimestampError> {
        let trimmed = text.trim();
        let unparseable = || TimestampError::Unparseable(text.to_owned());
        if trimmed.is_empty() {
            return Err(unparseable());
        }
        if trimmed.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            let number: f64 = trimmed.parse().map_err(|_| unparseable())?;
            return Self::from_epoch_number(number);
        }
        let datetime = if let Ok(with_zone) = DateTime::parse_from_rfc3339(trimmed) {
            with_zone.with_timezone(&Utc)
        } else if let Ok(with_zone) = DateTime::parse_from_str(trimmed, "%Y-%m-%dT%H:%M:%S%.f%z") {
            with_zone.with_timezone(&Utc)
        } else if let Ok(with_zone) = DateTime::parse_from_str(trimmed, "%Y-%m-%d %H:%M:%S%.f%#z") {
            with_zone.with_timezone(&Utc)
        } else if let Some(naive) = parse_naive(trimmed) {
            naive.and_utc()
        } else {
            return Err(unparseable());
        };
        datetime
            .timestamp_nanos_opt()
            .map(Self)
            .ok_or_else(|| TimestampError::OutOfRange(text.to_owned()))
    }

    /// RFC 3339 in UTC with as many fractional digits as needed (0, 3, 6 or 9).
    pub fn to_rfc3339(self) -> String {
        DateTime::<Utc>::from_timestamp_nanos(self.0).to_rfc3339_opts(SecondsFormat::AutoSi, true)
    }
}

fn parse_naive(text: &str) -> Option<NaiveDateTime> {
    const FORMATS: [&str; 4] = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ];
    FORMATS
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|date| date.and_hms_opt(0, 0, 0))
        })
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE_NANOS: i64 = 1_757_317_578_037_942_000; // 2025-09-08T07:46:18.037942Z

    #[test]
    fn parses_the_iso_forms_clients_send() {
        for text in [
            "2025-09-08T07:46:18.037942Z",
            "2025-09-08T07:46:18.037942+00:00",
            "2025-09-08T09:46:18.037942+02:00",
            "2025-09-08T07:46:18.037942",
            "2025-09-08 07:46:18.037942",
            "2025-09-08T07:46:18.037942000Z",
        ] {
            assert_eq!(
                Timestamp::parse(text),
                Ok(Timestamp(SAMPLE_NANOS)),
                "{text}"
            );
        }
        assert_eq!(
            Timestamp::parse("2025-09-08"),
            Ok(Timestamp(1_757_289_600_000_000_000))
        );
    }

    #[test]
    fn parses_epoch_numbers_in_any_unit() {
        let expected = Ok(Timestamp(1_757_317_578_000_000_000));
        assert_eq!(Timestamp::from_epoch_number(1_757_317_578.0), expected);
        assert_eq!(Timestamp::from_epoch_number(1_757_317_578_000.0), expected);
        assert_eq!(
            Timestamp::from_epoch_number(1_757_317_578_000_000.0),
            expected
        );
        assert_eq!(Timestamp::parse("1757317578"), expected);
        assert_eq!(
            Timestamp::from_epoch_number(1_757_317_578.5),
            Ok(Timestamp(1_757_317_578_500_000_000))
        );
    }

    #[test]
    fn rejects_garbage_and_out_of_range() {
        assert!(matches!(
            Timestamp::parse("yesterday"),
            Err(TimestampError::Unparseable(_))
        ));
        assert!(matches!(
            Timestamp::parse("2025-13-40T00:00:00Z"),
            Err(TimestampError::Unparseable(_))
        ));
        assert!(matches!(
            Timestamp::from_epoch_number(-1.0),
            Err(TimestampError::OutOfRange(_))
        ));
        assert!(matches!(
            Timestamp::from_epoch_number(f64::NAN),
            Err(TimestampError::OutOfRange(_))
        ));
        assert!(matches!(
            Timestamp::parse("9999-01-01T00:00:00Z"),
            Err(TimestampError::OutOfRange(_))
        ));
    }

    #[test]
    fn formats_in_utc_with_needed_precision() {
        assert_eq!(
            Timestamp(SAMPLE_NANOS).to_rfc3339(),
            "2025-09-08T07:46:18.037942Z"
        );
        assert_eq!(
            Timestamp(1_757_317_578_000_000_000).to_rfc3339(),
            "2025-09-08T07:46:18Z"
        );
    }

    #[test]
    fn arithmetic_in_seconds() {
        let start = Timestamp(SAMPLE_NANOS);
        let end = start.plus_seconds(1.003839);
        assert_eq!(end, Some(Timestamp(SAMPLE_NANOS + 1_003_839_000)));
        assert!(
            (Timestamp(SAMPLE_NANOS + 1_003_839_000).seconds_since(start) - 1.003839).abs() < 1e-12
        );
        assert_eq!(start.plus_seconds(f64::INFINITY), None);
    }
}
