//! Retention: how long a project keeps its traces, and how long their heavy content.
//!
//! A policy is two ages in days. Past the first, a trace whose last activity (its latest span
//! end) is older is removed; past the second, which must be shorter, spans keep their ids,
//! names, times, model, tokens, cost, status, identifiers and metadata but lose their payload
//! ([`LOGGED_CONTENT_FIELDS`]) and search rows, so lists, filters, trees and the dashboard keep
//! answering while prompts and answers are gone.

use serde_json::{Map, Value};

use crate::spanlog::LOGGED_CONTENT_FIELDS;
use crate::time::Timestamp;

/// The content field an expired span carries instead of its payload: when it expired, RFC 3339.
pub const CONTENT_EXPIRED_FIELD: &str = "content_expired_at";

/// Nanoseconds in a day.
const DAY_NS: i64 = 86_400 * 1_000_000_000;

/// A policy that does not hold together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetentionError {
    /// Content would outlive the traces that hold it.
    #[error("content retention ({content_days} days) must be shorter than retention ({days} days)")]
    ContentOutlivesTraces {
        /// Days traces are kept.
        days: u32,
        /// Days content is kept.
        content_days: u32,
    },
}

/// Days a project keeps traces and content; 0 keeps them forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retention {
    /// Traces whose last activity is older than this many days are removed.
    pub days: u32,
    /// Spans older than this many days lose their content.
    pub content_days: u32,
}

impl Retention {
    /// A policy, refused when content would be kept as long as (or longer than) the traces.
    pub fn new(days: u32, content_days: u32) -> Result<Self, RetentionError> {
        if days > 0 && content_days >= days {
            return Err(RetentionError::ContentOutlivesTraces { days, content_days });
        }
        Ok(Self { days, content_days })
    }

    /// Whether the policy removes anything at all.
    pub fn is_forever(&self) -> bool {
        self.days == 0 && self.content_days == 0
    }

    /// This policy with a project's own values where it has them.
    pub fn overridden_by(self, project: RetentionOverride) -> Result<Self, RetentionError> {
        Self::new(
            project.days.unwrap_or(self.days),
            project.content_days.unwrap_or(self.content_days),
        )
    }

    /// The instants before which data and content go, seen at `now`.
    pub fn cutoffs(&self, now: Timestamp) -> Cutoffs {
        let before = |days: u32| {
            (days > 0).then(|| {
                Timestamp::from_unix_nanos(
                    now.unix_nanos().saturating_sub(i64::from(days) * DAY_NS),
                )
            })
        };
        Cutoffs {
            data_before: before(self.days),
            content_before: before(self.content_days),
        }
    }
}

/// A project's own retention, each value replacing the server-wide one when set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionOverride {
    /// Days traces are kept (0: forever).
    pub days: Option<u32>,
    /// Days content is kept (0: forever).
    pub content_days: Option<u32>,
}

impl RetentionOverride {
    /// `other`'s values where it has them, else these.
    pub fn or(self, other: RetentionOverride) -> Self {
        Self {
            days: other.days.or(self.days),
            content_days: other.content_days.or(self.content_days),
        }
    }
}

/// What one sweep of a project removes: traces whose last activity is before `data_before`,
/// and the content of spans that started before `content_before`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cutoffs {
    /// Remove traces last active before this; `None` keeps them.
    pub data_before: Option<Timestamp>,
    /// Expire the content of spans started before this; `None` keeps it.
    pub content_before: Option<Timestamp>,
}

/// What one bounded step of a sweep did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionStep {
    /// Traces removed.
    pub traces_removed: u64,
    /// Spans removed with them.
    pub spans_removed: u64,
    /// Spans whose content expired.
    pub spans_content_expired: u64,
    /// Whole days of data the store dropped at once (ClickHouse partitions).
    pub days_dropped: u64,
    /// Whether the step found nothing more to do below the cutoffs.
    pub done: bool,
}

impl RetentionStep {
    /// Adds another step's counts; done only when both are.
    pub fn merge(&mut self, other: RetentionStep) {
        self.traces_removed += other.traces_removed;
        self.spans_removed += other.spans_removed;
        self.spans_content_expired += other.spans_content_expired;
        self.days_dropped += other.days_dropped;
        self.done = self.done && other.done;
    }
}

/// Drops a span's payload, keeping metadata and every other field, and marks when it expired.
/// The marker comes first, so stores can tell expired content by its opening bytes.
pub fn expire_content(content: &mut Map<String, Value>, at: Timestamp) {
    for field in LOGGED_CONTENT_FIELDS {
        content.shift_remove(*field);
    }
    content.shift_remove(CONTENT_EXPIRED_FIELD);
    content.shift_insert(
        0,
        CONTENT_EXPIRED_FIELD.to_owned(),
        Value::String(at.to_rfc3339()),
    );
}

/// Whether a span's content has expired.
pub fn content_expired(content: &Map<String, Value>) -> bool {
    content.contains_key(CONTENT_EXPIRED_FIELD)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_must_expire_before_traces() {
        assert!(Retention::new(30, 7).is_ok());
        assert!(Retention::new(0, 7).is_ok());
        assert!(Retention::new(7, 0).is_ok());
        assert_eq!(
            Retention::new(7, 7),
            Err(RetentionError::ContentOutlivesTraces {
                days: 7,
                content_days: 7
            })
        );
    }

    #[test]
    fn project_values_replace_the_server_ones() {
        let server = Retention::new(30, 7).unwrap_or_default();
        let project = RetentionOverride {
            days: Some(0),
            content_days: None,
        };
        assert_eq!(
            server.overridden_by(project),
            Ok(Retention {
                days: 0,
                content_days: 7
            })
        );
    }

    #[test]
    fn cutoffs_are_days_before_now() {
        let now = Timestamp::from_unix_nanos(10 * DAY_NS);
        let cutoffs = Retention::new(3, 1).unwrap_or_default().cutoffs(now);
        assert_eq!(
            cutoffs.data_before,
            Some(Timestamp::from_unix_nanos(7 * DAY_NS))
        );
        assert_eq!(
            cutoffs.content_before,
            Some(Timestamp::from_unix_nanos(9 * DAY_NS))
        );
        assert_eq!(Retention::default().cutoffs(now), Cutoffs::default());
    }

    #[test]
    fn expiry_keeps_metadata_and_marks_the_time() {
        let serde_json::Value::Object(mut content) = serde_json::json!({
            "input": "secret prompt", "output": "answer", "prompt_messages": [],
            "metadata": {"user": "u1"}, "tools": [], "custom": 1
        }) else {
            unreachable!("a json object literal")
        };
        expire_content(&mut content, Timestamp::from_unix_nanos(DAY_NS));
        assert_eq!(
            Value::Object(content.clone()),
            serde_json::json!({
                "content_expired_at": "1970-01-02T00:00:00Z",
                "metadata": {"user": "u1"}, "custom": 1
            })
        );
        assert_eq!(
            content.keys().next().map(String::as_str),
            Some(CONTENT_EXPIRED_FIELD)
        );
        assert!(content_expired(&content));
    }
}
