//! The metrics model of the usage dashboard: which number (`Metric`), over which time buckets
//! (`Interval`, `TimeZone`, `BucketGrid`), split by which span field (`GroupBy`).
//!
//! A metrics request filters spans with the same [`SpanFilter`] as the list routes, so a chart
//! and the trace list it links to agree on what a filter means. Stores receive a
//! [`BucketGrid`] that already knows every bucket boundary in UTC and how to place a span's
//! start into a bucket with integer arithmetic (see [`BucketGrid`]), so a backend never needs
//! time-zone data of its own.

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, Offset, TimeZone as _, Utc};
use chrono_tz::Tz;

use crate::query::{QueryError, SpanColumn, SpanField, SpanFilter};
use crate::time::Timestamp;

const NANOS_PER_SECOND: i64 = 1_000_000_000;
const NANOS_PER_MINUTE: i64 = 60 * NANOS_PER_SECOND;
const NANOS_PER_HOUR: i64 = 60 * NANOS_PER_MINUTE;
const NANOS_PER_DAY: i64 = 24 * NANOS_PER_HOUR;

/// Most buckets one request may ask for; a chart wider than this is unreadable anyway and the
/// bound keeps the answer small.
pub const MAX_BUCKETS: usize = 2000;
/// 2200-01-01T00:00:00Z: the last instant a metrics range may touch.
const LAST_SUPPORTED_NS: i64 = 7_258_118_400 * NANOS_PER_SECOND;
/// Groups shown by name when none is asked for; the rest are summed up as "other".
pub const DEFAULT_GROUP_LIMIT: usize = 5;
/// Most named groups a timeseries or leaderboard may ask for.
pub const MAX_GROUP_LIMIT: usize = 100;

/// Which number a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Spans.
    Requests,
    /// Distinct traces with a span in the bucket.
    Traces,
    /// Sum of span costs (USD).
    Cost,
    /// Sum of prompt tokens.
    PromptTokens,
    /// Sum of completion tokens.
    CompletionTokens,
    /// Sum of total tokens.
    TotalTokens,
    /// Median span latency in seconds.
    LatencyP50,
    /// 90th percentile span latency.
    LatencyP90,
    /// 99th percentile span latency.
    LatencyP99,
    /// Spans with error status.
    Errors,
    /// Errors divided by requests (0 when there are none).
    ErrorRate,
    /// Median time to first token in seconds, over spans that report one.
    TtftP50,
}

const METRICS: &[(&str, Metric)] = &[
    ("requests", Metric::Requests),
    ("traces", Metric::Traces),
    ("cost", Metric::Cost),
    ("prompt_tokens", Metric::PromptTokens),
    ("completion_tokens", Metric::CompletionTokens),
    ("total_tokens", Metric::TotalTokens),
    ("latency_p50", Metric::LatencyP50),
    ("latency_p90", Metric::LatencyP90),
    ("latency_p99", Metric::LatencyP99),
    ("errors", Metric::Errors),
    ("error_rate", Metric::ErrorRate),
    ("ttft_p50", Metric::TtftP50),
];

/// A span measure that metrics sum or rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Measure {
    /// `cost`.
    Cost,
    /// `prompt_tokens`.
    PromptTokens,
    /// `completion_tokens`.
    CompletionTokens,
    /// `total_tokens`.
    TotalTokens,
    /// `latency` (seconds).
    Latency,
    /// `time_to_first_token` (seconds), kept in the span content.
    TimeToFirstToken,
}

/// How a metric is computed, which is what a store needs to know to translate it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregation {
    /// Number of spans.
    Count,
    /// Number of distinct trace ids.
    DistinctTraces,
    /// Sum of a measure (missing values count as 0).
    Sum(Measure),
    /// Spans with error status.
    ErrorCount,
    /// Error spans divided by spans.
    ErrorRate,
    /// Nearest-rank percentile of a measure over the spans that have it: the smallest value
    /// with at least `percent` % of the values at or below it.
    Percentile {
        /// What is ranked.
        measure: Measure,
        /// 1..=100.
        percent: u8,
    },
}

impl Metric {
    /// Looks a metric up by its API name.
    pub fn from_api(name: &str) -> Option<Metric> {
        METRICS.iter().find(|(n, _)| *n == name).map(|(_, m)| *m)
    }

    /// The API name.
    pub fn api_name(self) -> &'static str {
        METRICS
            .iter()
            .find(|(_, m)| *m == self)
            .map_or("", |(n, _)| n)
    }

    /// Every API name, for error messages and the OpenAPI document.
    pub fn api_names() -> impl Iterator<Item = &'static str> {
        METRICS.iter().map(|(n, _)| *n)
    }

    /// How the metric is computed.
    pub fn aggregation(self) -> Aggregation {
        match self {
            Metric::Requests => Aggregation::Count,
            Metric::Traces => Aggregation::DistinctTraces,
            Metric::Cost => Aggregation::Sum(Measure::Cost),
            Metric::PromptTokens => Aggregation::Sum(Measure::PromptTokens),
            Metric::CompletionTokens => Aggregation::Sum(Measure::CompletionTokens),
            Metric::TotalTokens => Aggregation::Sum(Measure::TotalTokens),
            Metric::LatencyP50 => Aggregation::Percentile {
                measure: Measure::Latency,
                percent: 50,
            },
            Metric::LatencyP90 => Aggregation::Percentile {
                measure: Measure::Latency,
                percent: 90,
            },
            Metric::LatencyP99 => Aggregation::Percentile {
                measure: Measure::Latency,
                percent: 99,
            },
            Metric::Errors => Aggregation::ErrorCount,
            Metric::ErrorRate => Aggregation::ErrorRate,
            Metric::TtftP50 => Aggregation::Percentile {
                measure: Measure::TimeToFirstToken,
                percent: 50,
            },
        }
    }

    /// The metric that orders groups of a timeseries: the metric itself when it adds up over
    /// time (the groups that cost most), otherwise requests (the busiest groups), because
    /// ranking by a percentile or a rate would favour groups with one slow or failed span.
    pub fn ranking(self) -> Metric {
        match self.aggregation() {
            Aggregation::Count | Aggregation::Sum(_) | Aggregation::ErrorCount => self,
            Aggregation::DistinctTraces
            | Aggregation::ErrorRate
            | Aggregation::Percentile { .. } => Metric::Requests,
        }
    }
}

/// What a metric is split by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GroupBy {
    /// A span column (one of [`GroupBy::COLUMNS`]).
    Column(SpanColumn),
    /// A metadata value, at any depth (`metadata__a__b`).
    Metadata(Vec<String>),
}

impl GroupBy {
    /// Span columns a metric can be grouped by.
    pub const COLUMNS: [SpanColumn; 7] = [
        SpanColumn::Model,
        SpanColumn::ProviderId,
        SpanColumn::CustomerIdentifier,
        SpanColumn::Environment,
        SpanColumn::LogType,
        SpanColumn::WorkflowName,
        SpanColumn::Status,
    ];

    /// Parses a `group_by` value.
    pub fn parse(name: &str) -> Result<GroupBy, QueryError> {
        let unknown = || QueryError::BadParameter {
            parameter: "group_by".to_owned(),
            message: format!(
                "unknown group {name:?}; groups: {}, metadata__<key>",
                Self::COLUMNS
                    .iter()
                    .map(|c| c.api_name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        match crate::query::parse_span_field(name) {
            Ok((SpanField::Column(column), _)) if Self::COLUMNS.contains(&column) => {
                Ok(GroupBy::Column(column))
            }
            Ok((SpanField::Metadata(keys), _)) => Ok(GroupBy::Metadata(keys)),
            Ok(_) | Err(QueryError::UnknownField { .. }) => Err(unknown()),
            Err(QueryError::BadValue { message, .. }) => Err(QueryError::BadParameter {
                parameter: "group_by".to_owned(),
                message,
            }),
            Err(other) => Err(other),
        }
    }

    /// The API name (`model`, `metadata__a__b`).
    pub fn api_name(&self) -> String {
        match self {
            GroupBy::Column(column) => column.api_name().to_owned(),
            GroupBy::Metadata(keys) => format!("metadata__{}", keys.join("__")),
        }
    }
}

/// Bucket width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Interval {
    /// One minute.
    Minute,
    /// One hour.
    Hour,
    /// One local calendar day.
    Day,
    /// One local week, starting on Monday.
    Week,
}

const INTERVALS: &[(&str, Interval)] = &[
    ("minute", Interval::Minute),
    ("hour", Interval::Hour),
    ("day", Interval::Day),
    ("week", Interval::Week),
];

impl Interval {
    /// Parses an `interval` value.
    pub fn from_api(name: &str) -> Option<Interval> {
        INTERVALS.iter().find(|(n, _)| *n == name).map(|(_, i)| *i)
    }

    /// The API name.
    pub fn api_name(self) -> &'static str {
        INTERVALS
            .iter()
            .find(|(_, i)| *i == self)
            .map_or("", |(n, _)| n)
    }

    /// The nominal width in nanoseconds (local time for days and weeks).
    pub fn nanos(self) -> i64 {
        match self {
            Interval::Minute => NANOS_PER_MINUTE,
            Interval::Hour => NANOS_PER_HOUR,
            Interval::Day => NANOS_PER_DAY,
            Interval::Week => 7 * NANOS_PER_DAY,
        }
    }

    /// The interval chosen when none is given: the finest that keeps a range to a few hundred
    /// buckets at most.
    pub fn auto(start: Timestamp, end: Timestamp) -> Interval {
        let span = end.unix_nanos().saturating_sub(start.unix_nanos());
        if span <= 3 * NANOS_PER_HOUR {
            Interval::Minute
        } else if span <= 4 * NANOS_PER_DAY {
            Interval::Hour
        } else if span <= 120 * NANOS_PER_DAY {
            Interval::Day
        } else {
            Interval::Week
        }
    }
}

/// The zone bucket boundaries are computed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeZone {
    /// A fixed offset from UTC (UTC itself is offset 0).
    Fixed(FixedOffset),
    /// An IANA zone, whose offset changes with daylight saving time.
    Named(Tz),
}

impl Default for TimeZone {
    fn default() -> Self {
        TimeZone::Fixed(Utc.fix())
    }
}

impl TimeZone {
    /// Parses `tz`: an IANA name (`Europe/Paris`), `UTC`/`Z`, or an offset (`+05:30`, `-0800`).
    pub fn parse(text: &str) -> Result<TimeZone, QueryError> {
        let bad = |message: String| QueryError::BadParameter {
            parameter: "tz".to_owned(),
            message,
        };
        let text = text.trim();
        if text.eq_ignore_ascii_case("utc") || text == "Z" {
            return Ok(TimeZone::default());
        }
        if let Some(sign) = text.chars().next().filter(|c| *c == '+' || *c == '-') {
            let digits: String = text[1..].chars().filter(|c| *c != ':').collect();
            let (hours, minutes) = match digits.len() {
                2 => (digits.parse::<i32>().ok(), Some(0)),
                4 => (
                    digits[..2].parse::<i32>().ok(),
                    digits[2..].parse::<i32>().ok(),
                ),
                _ => (None, None),
            };
            let seconds = match (hours, minutes) {
                (Some(h), Some(m))
                    if h <= 23 && m <= 59 && digits.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    (h * 3600 + m * 60) * if sign == '-' { -1 } else { 1 }
                }
                _ => return Err(bad(format!("{text:?} is not an offset like +05:30"))),
            };
            return FixedOffset::east_opt(seconds)
                .map(TimeZone::Fixed)
                .ok_or_else(|| bad(format!("{text:?} is out of range")));
        }
        text.parse::<Tz>().map(TimeZone::Named).map_err(|_| {
            bad(format!(
                "unknown time zone {text:?}; use an IANA name like Europe/Paris or an offset like +05:30"
            ))
        })
    }

    /// The name answered back: the IANA name, or the offset (`+05:30`, `UTC`).
    pub fn name(&self) -> String {
        match self {
            TimeZone::Named(tz) => tz.name().to_owned(),
            TimeZone::Fixed(offset) if offset.local_minus_utc() == 0 => "UTC".to_owned(),
            TimeZone::Fixed(offset) => offset.to_string(),
        }
    }

    /// Seconds east of UTC at an instant.
    fn offset_seconds(&self, at: Timestamp) -> i64 {
        match self {
            TimeZone::Fixed(offset) => i64::from(offset.local_minus_utc()),
            TimeZone::Named(tz) => {
                let utc = DateTime::<Utc>::from_timestamp_nanos(at.unix_nanos());
                i64::from(
                    tz.offset_from_utc_datetime(&utc.naive_utc())
                        .fix()
                        .local_minus_utc(),
                )
            }
        }
    }

    /// The first instant of a local date (its midnight, or the first time that exists after
    /// a daylight-saving gap at midnight).
    fn start_of_day(&self, date: NaiveDate) -> Option<Timestamp> {
        let midnight = date.and_hms_opt(0, 0, 0)?;
        let instant = match self {
            TimeZone::Fixed(offset) => offset.from_local_datetime(&midnight).earliest(),
            TimeZone::Named(tz) => (0..4).find_map(|hour| {
                tz.from_local_datetime(&(midnight + Duration::hours(hour)))
                    .earliest()
                    .map(|t| t.fixed_offset())
            }),
        }?;
        instant
            .timestamp_nanos_opt()
            .map(Timestamp::from_unix_nanos)
    }

    /// The local date of an instant.
    fn local_date(&self, at: Timestamp) -> Option<NaiveDate> {
        let local_ns = at
            .unix_nanos()
            .checked_add(self.offset_seconds(at) * NANOS_PER_SECOND)?;
        Some(DateTime::<Utc>::from_timestamp_nanos(local_ns).date_naive())
    }

    /// An instant as RFC 3339 in this zone (`2025-03-30T00:00:00+01:00`).
    pub fn format(&self, at: Timestamp) -> String {
        let utc = DateTime::<Utc>::from_timestamp_nanos(at.unix_nanos());
        let offset = FixedOffset::east_opt(self.offset_seconds(at) as i32).unwrap_or(Utc.fix());
        utc.with_timezone(&offset)
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
    }
}

/// From `from_ns` (UTC) on, local time is UTC plus `offset_ns` (until the next change).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetChange {
    /// First UTC instant with this offset.
    pub from_ns: i64,
    /// Local minus UTC, in nanoseconds.
    pub offset_ns: i64,
}

/// The buckets of one request: their boundaries, and the arithmetic that puts an instant
/// into one.
///
/// The bucket of a span starting at UTC `t` is
/// `(t + offset(t) - origin_ns) / width_ns` (integer division; `t >= start`, so it is never
/// negative), where `offset(t)` is the `offset_ns` of the last [`OffsetChange`] at or before
/// `t`. For minutes and hours the offset is that of the range start throughout, so buckets stay
/// one real minute or hour wide across a daylight-saving change; for days and weeks the offset
/// follows the zone, so a bucket is a local calendar day even when it lasts 23 or 25 hours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketGrid {
    /// Bucket width.
    pub interval: Interval,
    /// The zone boundaries are computed in.
    pub zone: TimeZone,
    /// Bucket boundaries in UTC: `boundaries[i]..boundaries[i + 1]` is bucket `i`.
    pub boundaries: Vec<Timestamp>,
    /// Local time (UTC + offset, in nanoseconds) of the first boundary.
    pub origin_ns: i64,
    /// Width of a bucket in local nanoseconds.
    pub width_ns: i64,
    /// Offsets in force over the range, oldest first; the first starts at or before the range.
    pub offsets: Vec<OffsetChange>,
}

impl BucketGrid {
    /// The buckets covering `start..end`, widened to whole buckets: the first bucket starts at
    /// or before `start`, the last ends after `end` (an instant on a boundary opens a bucket).
    pub fn new(
        start: Timestamp,
        end: Timestamp,
        interval: Interval,
        zone: TimeZone,
    ) -> Result<BucketGrid, QueryError> {
        let bad_range = |message: String| QueryError::BadParameter {
            parameter: "end_time".to_owned(),
            message,
        };
        // Far from the ends of i64 nanoseconds, so widening to whole weeks in any zone cannot
        // overflow.
        let supported =
            Timestamp::from_unix_nanos(0)..=Timestamp::from_unix_nanos(LAST_SUPPORTED_NS);
        if !supported.contains(&start) || !supported.contains(&end) {
            return Err(bad_range("times must lie between 1970 and 2200".to_owned()));
        }
        if end <= start {
            return Err(bad_range(format!(
                "end_time {} must be after start_time {}",
                end.to_rfc3339(),
                start.to_rfc3339()
            )));
        }
        let width = interval.nanos();
        let estimate = (end.unix_nanos() - start.unix_nanos()) / width;
        if estimate >= MAX_BUCKETS as i64 {
            return Err(QueryError::BadParameter {
                parameter: "interval".to_owned(),
                message: format!(
                    "{} buckets of a {} would exceed {MAX_BUCKETS}; use a wider interval or a shorter range",
                    estimate + 1,
                    interval.api_name()
                ),
            });
        }
        let out_of_range = || bad_range("time range is out of the supported range".to_owned());
        match interval {
            Interval::Minute | Interval::Hour => {
                let offset_ns = zone.offset_seconds(start) * NANOS_PER_SECOND;
                let local_start = start.unix_nanos() + offset_ns;
                let origin_ns = local_start - local_start.rem_euclid(width);
                let first = origin_ns - offset_ns;
                let count = (end.unix_nanos() - first).div_euclid(width) + 1;
                let boundaries = (0..=count)
                    .map(|i| Timestamp::from_unix_nanos(first + i * width))
                    .collect();
                Ok(BucketGrid {
                    interval,
                    zone,
                    boundaries,
                    origin_ns,
                    width_ns: width,
                    offsets: vec![OffsetChange {
                        from_ns: first,
                        offset_ns,
                    }],
                })
            }
            Interval::Day | Interval::Week => {
                let mut date = zone.local_date(start).ok_or_else(out_of_range)?;
                if interval == Interval::Week {
                    date -= Duration::days(i64::from(date.weekday().num_days_from_monday()));
                }
                let step = Duration::days(if interval == Interval::Week { 7 } else { 1 });
                let mut boundaries = vec![zone.start_of_day(date).ok_or_else(out_of_range)?];
                while boundaries.last().is_some_and(|last| *last <= end) {
                    date = date.checked_add_signed(step).ok_or_else(out_of_range)?;
                    boundaries.push(zone.start_of_day(date).ok_or_else(out_of_range)?);
                }
                let first = boundaries[0];
                let last = boundaries[boundaries.len() - 1];
                let offsets = offset_changes(&zone, first, last);
                let origin_ns = first.unix_nanos() + offsets[0].offset_ns;
                // Day starts moved by a gap at midnight are not a whole number of local days
                // from the origin; align the origin to local midnight so division still works.
                let origin_ns = origin_ns - origin_ns.rem_euclid(NANOS_PER_DAY);
                Ok(BucketGrid {
                    interval,
                    zone,
                    boundaries,
                    origin_ns,
                    width_ns: width,
                    offsets,
                })
            }
        }
    }

    /// Number of buckets.
    pub fn len(&self) -> usize {
        self.boundaries.len().saturating_sub(1)
    }

    /// Whether there are no buckets (never, for a grid built by [`BucketGrid::new`]).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// First instant covered.
    pub fn start(&self) -> Timestamp {
        self.boundaries
            .first()
            .copied()
            .unwrap_or(Timestamp::from_unix_nanos(0))
    }

    /// First instant after the range (exclusive).
    pub fn end(&self) -> Timestamp {
        self.boundaries
            .last()
            .copied()
            .unwrap_or(Timestamp::from_unix_nanos(0))
    }

    /// The bucket of an instant, by the same arithmetic stores use; `None` outside the range.
    pub fn bucket_of(&self, at: Timestamp) -> Option<usize> {
        if at < self.start() || at >= self.end() {
            return None;
        }
        let t = at.unix_nanos();
        let offset = self
            .offsets
            .iter()
            .rev()
            .find(|change| change.from_ns <= t)
            .map_or(0, |change| change.offset_ns);
        usize::try_from((t + offset - self.origin_ns) / self.width_ns).ok()
    }

    /// Whether every bucket boundary falls on a whole UTC hour, so per-hour pre-aggregates
    /// can answer the request exactly.
    pub fn hour_aligned(&self) -> bool {
        self.boundaries
            .iter()
            .all(|b| b.unix_nanos().rem_euclid(NANOS_PER_HOUR) == 0)
    }
}

/// Offset changes of a zone between two instants, found by sampling every hour and then
/// bisecting to the second (zones change offset at most a few times a year, never twice in an
/// hour).
fn offset_changes(zone: &TimeZone, from: Timestamp, to: Timestamp) -> Vec<OffsetChange> {
    let offset_ns = |t: i64| zone.offset_seconds(Timestamp::from_unix_nanos(t)) * NANOS_PER_SECOND;
    let mut changes = vec![OffsetChange {
        from_ns: from.unix_nanos(),
        offset_ns: offset_ns(from.unix_nanos()),
    }];
    if matches!(zone, TimeZone::Fixed(_)) {
        return changes;
    }
    let mut t = from.unix_nanos();
    let mut current = changes[0].offset_ns;
    while t < to.unix_nanos() {
        let next = (t + NANOS_PER_HOUR).min(to.unix_nanos());
        let next_offset = offset_ns(next);
        if next_offset != current {
            // The first second with the new offset lies in (t, next].
            let (mut low, mut high) = (t, next);
            while high - low > NANOS_PER_SECOND {
                let middle = low + (high - low) / 2;
                if offset_ns(middle) == current {
                    low = middle;
                } else {
                    high = middle;
                }
            }
            let high = high - high.rem_euclid(NANOS_PER_SECOND);
            changes.push(OffsetChange {
                from_ns: high,
                offset_ns: next_offset,
            });
            current = next_offset;
        }
        t = next;
    }
    changes
}

/// A timeseries request.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeseriesQuery {
    /// What is measured.
    pub metric: Metric,
    /// Which spans; its own time bounds are not used (the grid is the range).
    pub filter: SpanFilter,
    /// The buckets; spans are placed by their start time.
    pub grid: BucketGrid,
    /// How spans are split.
    pub group_by: Option<GroupBy>,
    /// Groups named in the answer; the others are added up as "other".
    pub limit: usize,
}

/// A leaderboard request: the groups with the largest metric over a range.
#[derive(Debug, Clone, PartialEq)]
pub struct TopQuery {
    /// What is measured and ranked.
    pub metric: Metric,
    /// Which spans.
    pub filter: SpanFilter,
    /// Spans starting at or after.
    pub start: Timestamp,
    /// Spans starting before.
    pub end: Timestamp,
    /// How spans are split.
    pub group_by: GroupBy,
    /// Most groups answered.
    pub limit: usize,
}

/// The identity of a series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SeriesKey {
    /// Every matching span (no `group_by`).
    All,
    /// Spans whose group field has this value (`None`: the field is absent).
    Value(Option<String>),
    /// Every group not named.
    Other,
}

/// One series of a timeseries: a value per bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Which spans.
    pub key: SeriesKey,
    /// One value per bucket of the grid, 0 where no span fell.
    pub values: Vec<f64>,
    /// The metric over the whole range (for the legend).
    pub total: f64,
}

/// A timeseries answer: named groups first (largest first), "other" last.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeseries {
    /// The series.
    pub series: Vec<Series>,
}

/// One row of a leaderboard.
#[derive(Debug, Clone, PartialEq)]
pub struct TopEntry {
    /// The group's value (`None`: the field is absent).
    pub value: Option<String>,
    /// The metric over the range.
    pub metric: f64,
    /// Spans of the group in the range.
    pub requests: u64,
}

/// Validates a group limit (`limit`).
pub fn parse_limit(raw: Option<&str>, default: usize) -> Result<usize, QueryError> {
    match raw {
        None => Ok(default),
        Some(text) => text
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_GROUP_LIMIT).contains(n))
            .ok_or_else(|| QueryError::BadParameter {
                parameter: "limit".to_owned(),
                message: format!(
                    "must be a whole number from 1 to {MAX_GROUP_LIMIT}, got {text:?}"
                ),
            }),
    }
}

/// Parses `metric`.
pub fn parse_metric(raw: &str) -> Result<Metric, QueryError> {
    Metric::from_api(raw.trim()).ok_or_else(|| QueryError::BadParameter {
        parameter: "metric".to_owned(),
        message: format!(
            "unknown metric {raw:?}; metrics: {}",
            Metric::api_names().collect::<Vec<_>>().join(", ")
        ),
    })
}

/// Parses `interval` (`None`/`auto`: chosen from the range).
pub fn parse_interval(
    raw: Option<&str>,
    start: Timestamp,
    end: Timestamp,
) -> Result<Interval, QueryError> {
    match raw.map(str::trim) {
        None | Some("auto") => Ok(Interval::auto(start, end)),
        Some(name) => Interval::from_api(name).ok_or_else(|| QueryError::BadParameter {
            parameter: "interval".to_owned(),
            message: format!("unknown interval {name:?}; intervals: minute, hour, day, week, auto"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse(text).unwrap()
    }

    #[test]
    fn names_parse_and_unknown_ones_name_the_parameter() {
        assert_eq!(parse_metric("latency_p90"), Ok(Metric::LatencyP90));
        assert!(
            matches!(parse_metric("speed"), Err(QueryError::BadParameter { ref parameter, .. }) if parameter == "metric")
        );
        assert_eq!(
            GroupBy::parse("model"),
            Ok(GroupBy::Column(SpanColumn::Model))
        );
        assert_eq!(
            GroupBy::parse("metadata__plan__tier"),
            Ok(GroupBy::Metadata(vec!["plan".into(), "tier".into()]))
        );
        for bad in ["cost", "colour", "metadata__"] {
            assert!(
                matches!(GroupBy::parse(bad), Err(QueryError::BadParameter { ref parameter, .. }) if parameter == "group_by"),
                "{bad}"
            );
        }
        assert!(parse_interval(Some("fortnight"), at("2025-01-01"), at("2025-01-02")).is_err());
        assert!(parse_limit(Some("0"), 5).is_err());
        assert_eq!(TimeZone::parse("+05:30").unwrap().name(), "+05:30");
        assert_eq!(
            TimeZone::parse("Europe/Paris").unwrap().name(),
            "Europe/Paris"
        );
        assert!(TimeZone::parse("Mars/Olympus").is_err());
        assert!(TimeZone::parse("+25:00").is_err());
    }

    #[test]
    fn hour_buckets_widen_the_range_and_follow_a_half_hour_offset() {
        let zone = TimeZone::parse("+05:30").unwrap();
        let grid = BucketGrid::new(
            at("2025-01-01T10:10:00Z"),
            at("2025-01-01T12:00:00Z"),
            Interval::Hour,
            zone,
        )
        .unwrap();
        assert_eq!(grid.start(), at("2025-01-01T09:30:00Z"));
        assert_eq!(grid.end(), at("2025-01-01T12:30:00Z"));
        assert_eq!(grid.len(), 3);
        assert_eq!(grid.bucket_of(at("2025-01-01T10:29:59Z")), Some(0));
        assert_eq!(grid.bucket_of(at("2025-01-01T10:30:00Z")), Some(1));
        assert_eq!(grid.bucket_of(at("2025-01-01T12:30:00Z")), None);
        assert!(!grid.hour_aligned());
        assert_eq!(zone.format(grid.start()), "2025-01-01T15:00:00+05:30");
    }

    #[test]
    fn day_buckets_are_local_days_across_daylight_saving() {
        let zone = TimeZone::parse("Europe/Paris").unwrap();
        // 2025-03-30 has 23 hours in Paris (02:00 → 03:00).
        let grid = BucketGrid::new(
            at("2025-03-29T12:00:00Z"),
            at("2025-03-31T12:00:00Z"),
            Interval::Day,
            zone,
        )
        .unwrap();
        assert_eq!(
            grid.boundaries,
            vec![
                at("2025-03-28T23:00:00Z"),
                at("2025-03-29T23:00:00Z"),
                at("2025-03-30T22:00:00Z"),
                at("2025-03-31T22:00:00Z"),
            ]
        );
        assert!(grid.hour_aligned());
        assert_eq!(grid.bucket_of(at("2025-03-30T21:59:59Z")), Some(1));
        assert_eq!(grid.bucket_of(at("2025-03-30T22:00:00Z")), Some(2));
        assert_eq!(grid.bucket_of(at("2025-03-29T22:59:59Z")), Some(0));
        assert_eq!(zone.format(grid.boundaries[2]), "2025-03-31T00:00:00+02:00");
    }

    #[test]
    fn weeks_start_on_monday_and_too_many_buckets_are_refused() {
        let grid = BucketGrid::new(
            at("2025-01-01T00:00:00Z"),
            at("2025-01-20T00:00:00Z"),
            Interval::Week,
            TimeZone::default(),
        )
        .unwrap();
        assert_eq!(grid.start(), at("2024-12-30T00:00:00Z"));
        assert_eq!(grid.len(), 4);
        let error = BucketGrid::new(
            at("2025-01-01T00:00:00Z"),
            at("2025-03-01T00:00:00Z"),
            Interval::Minute,
            TimeZone::default(),
        );
        assert!(
            matches!(error, Err(QueryError::BadParameter { ref parameter, .. }) if parameter == "interval")
        );
        assert_eq!(
            Interval::auto(at("2025-01-01"), at("2025-01-31")),
            Interval::Day
        );
        assert_eq!(Metric::LatencyP50.ranking(), Metric::Requests);
        assert_eq!(Metric::Cost.ranking(), Metric::Cost);
        let far = BucketGrid::new(
            at("2261-01-01T00:00:00Z"),
            at("2262-04-11T00:00:00Z"),
            Interval::Week,
            TimeZone::parse("+14:00").unwrap(),
        );
        assert!(matches!(far, Err(QueryError::BadParameter { .. })));
    }
}
