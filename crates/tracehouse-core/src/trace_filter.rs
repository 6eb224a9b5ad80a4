//! Trace-list conditions and sort keys evaluated on a computed [`TraceSummary`], for stores that
//! compute a trace's aggregates when they read it instead of storing them (ClickHouse).
//!
//! The semantics are the SQL stores' (SQLite is the reference): a negated operator also matches
//! a missing value, `empty` means missing or the empty string, text comparisons are on
//! [`FilterValue::as_text`], `icontains` ignores case.

use std::cmp::Ordering;

use crate::query::{Condition, Direction, FilterValue, Operator, TraceColumn};
use crate::trace::TraceSummary;

/// The value of one trace column.
#[derive(Debug, Clone, PartialEq)]
pub enum TraceValue<'a> {
    /// A text column; `None` when the trace has no value.
    Text(Option<&'a str>),
    /// A count, sum or duration.
    Number(f64),
    /// A start or end, in Unix nanoseconds.
    Time(i64),
}

fn text(value: &Option<String>) -> Option<&str> {
    value.as_deref()
}

/// The value of `column` on `summary`.
pub fn trace_value(summary: &TraceSummary, column: TraceColumn) -> TraceValue<'_> {
    #[allow(clippy::cast_precision_loss)]
    let count = |value: u64| TraceValue::Number(value as f64);
    match column {
        TraceColumn::TraceId => TraceValue::Text(Some(summary.trace_id.as_str())),
        TraceColumn::Name => TraceValue::Text(Some(summary.name.as_str())),
        TraceColumn::CustomerIdentifier => TraceValue::Text(text(&summary.customer_identifier)),
        TraceColumn::Environment => TraceValue::Text(text(&summary.environment)),
        TraceColumn::TraceGroupIdentifier => {
            TraceValue::Text(text(&summary.trace_group_identifier))
        }
        TraceColumn::SessionIdentifier => TraceValue::Text(text(&summary.session_identifier)),
        TraceColumn::ThreadIdentifier => TraceValue::Text(text(&summary.thread_identifier)),
        TraceColumn::SpanCount => count(summary.span_count),
        TraceColumn::LlmCallCount => count(summary.llm_call_count),
        TraceColumn::ErrorCount => count(summary.error_count),
        TraceColumn::TotalCost => TraceValue::Number(summary.total_cost),
        TraceColumn::TotalPromptTokens => count(summary.total_prompt_tokens),
        TraceColumn::TotalCompletionTokens => count(summary.total_completion_tokens),
        TraceColumn::TotalTokens => count(summary.total_tokens),
        TraceColumn::Duration => TraceValue::Number(summary.duration),
        TraceColumn::StartTime => TraceValue::Time(summary.start.unix_nanos()),
        TraceColumn::EndTime => TraceValue::Time(summary.end.unix_nanos()),
    }
}

/// How a stored value compares with a filter value; `None` when they cannot be compared.
fn compare(value: &TraceValue<'_>, with: &FilterValue) -> Option<Ordering> {
    match (value, with) {
        (TraceValue::Text(None), _) => None,
        (TraceValue::Text(Some(text)), with) => Some((*text).cmp(with.as_text().as_str())),
        (TraceValue::Number(number), FilterValue::Number(other)) => number.partial_cmp(other),
        (TraceValue::Number(number), FilterValue::Bool(flag)) => {
            number.partial_cmp(&f64::from(u8::from(*flag)))
        }
        (TraceValue::Time(nanos), FilterValue::Time(time)) => Some(nanos.cmp(&time.unix_nanos())),
        #[allow(clippy::cast_precision_loss)]
        (TraceValue::Time(nanos), FilterValue::Number(number)) => {
            (*nanos as f64).partial_cmp(number)
        }
        _ => None,
    }
}

/// Whether `value` (present) meets `operator` against one filter value.
fn meets(value: &TraceValue<'_>, operator: Operator, with: &FilterValue) -> bool {
    let text = match value {
        TraceValue::Text(Some(text)) => Some(*text),
        _ => None,
    };
    let order = || compare(value, with);
    match operator {
        Operator::Lt => order() == Some(Ordering::Less),
        Operator::Lte => matches!(order(), Some(Ordering::Less | Ordering::Equal)),
        Operator::Gt => order() == Some(Ordering::Greater),
        Operator::Gte => matches!(order(), Some(Ordering::Greater | Ordering::Equal)),
        Operator::Equals | Operator::In | Operator::Not | Operator::NotIn => {
            order() == Some(Ordering::Equal)
        }
        Operator::Contains | Operator::NotContains => {
            text.is_some_and(|text| text.contains(with.as_text().as_str()))
        }
        Operator::IContains => text.is_some_and(|text| {
            text.to_lowercase()
                .contains(with.as_text().to_lowercase().as_str())
        }),
        Operator::StartsWith => text.is_some_and(|text| text.starts_with(with.as_text().as_str())),
        Operator::EndsWith => text.is_some_and(|text| text.ends_with(with.as_text().as_str())),
        Operator::Empty | Operator::NotEmpty | Operator::IsNull => true,
    }
}

/// Whether `summary` meets `condition`.
pub fn trace_matches(summary: &TraceSummary, condition: &Condition<TraceColumn>) -> bool {
    value_matches(&trace_value(summary, condition.field), condition)
}

/// Whether one value meets a condition's operator and values (the condition's field is the
/// caller's business), with the SQL stores' semantics.
pub fn value_matches<F>(value: &TraceValue<'_>, condition: &Condition<F>) -> bool {
    let value = value.clone();
    let missing = value == TraceValue::Text(None);
    let blank = missing || value == TraceValue::Text(Some(""));
    let any = || {
        condition
            .values
            .iter()
            .any(|with| meets(&value, condition.operator, with))
    };
    match condition.operator {
        Operator::Empty => blank,
        Operator::NotEmpty => !blank,
        Operator::IsNull => match condition.values.first() {
            Some(FilterValue::Bool(false)) => !missing,
            _ => missing,
        },
        Operator::Not | Operator::NotIn | Operator::NotContains => missing || !any(),
        _ => !missing && any(),
    }
}

/// The order of two traces in a list sorted by `column`: missing values first when ascending
/// and last when descending (as SQL sorts NULLs), ties broken by trace id in the same direction.
pub fn trace_order(
    a: &TraceSummary,
    b: &TraceSummary,
    column: TraceColumn,
    direction: Direction,
) -> Ordering {
    let (left, right) = (trace_value(a, column), trace_value(b, column));
    let ascending = match (&left, &right) {
        (TraceValue::Text(x), TraceValue::Text(y)) => x.cmp(y),
        (TraceValue::Number(x), TraceValue::Number(y)) => x.total_cmp(y),
        (TraceValue::Time(x), TraceValue::Time(y)) => x.cmp(y),
        _ => Ordering::Equal,
    }
    .then_with(|| a.trace_id.cmp(&b.trace_id));
    match direction {
        Direction::Ascending => ascending,
        Direction::Descending => ascending.reverse(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::testing::span;
    use crate::trace::summarize;

    fn summary() -> TraceSummary {
        let spans = vec![
            span(
                "t",
                "root",
                None,
                json!({"span_name": "Agent Run", "customer_identifier": "acme",
                       "start_time": "2025-01-01T00:00:00Z", "end_time": "2025-01-01T00:00:02Z"}),
            ),
            span(
                "t",
                "llm",
                Some("root"),
                json!({"log_type": "chat", "model": "gpt-4o", "cost": 0.25,
                       "start_time": "2025-01-01T00:00:01Z", "end_time": "2025-01-01T00:00:02Z"}),
            ),
        ];
        summarize(&spans).unwrap()
    }

    fn condition(
        field: TraceColumn,
        operator: Operator,
        values: Vec<FilterValue>,
    ) -> Condition<TraceColumn> {
        Condition {
            field,
            operator,
            values,
        }
    }

    fn text(value: &str) -> FilterValue {
        FilterValue::Text(value.to_owned())
    }

    #[test]
    fn text_conditions_follow_the_sql_stores() {
        let trace = summary();
        let name = TraceColumn::Name;
        assert!(trace_matches(
            &trace,
            &condition(name, Operator::Equals, vec![text("x"), text("Agent Run")])
        ));
        assert!(trace_matches(
            &trace,
            &condition(name, Operator::IContains, vec![text("agent")])
        ));
        assert!(!trace_matches(
            &trace,
            &condition(name, Operator::Contains, vec![text("agent")])
        ));
        assert!(trace_matches(
            &trace,
            &condition(name, Operator::StartsWith, vec![text("Agent")])
        ));
        // A negated operator matches a trace without the value; a positive one does not.
        let thread = TraceColumn::ThreadIdentifier;
        assert!(trace_matches(
            &trace,
            &condition(thread, Operator::Not, vec![text("a")])
        ));
        assert!(!trace_matches(
            &trace,
            &condition(thread, Operator::Equals, vec![text("a")])
        ));
        assert!(trace_matches(
            &trace,
            &condition(thread, Operator::Empty, vec![])
        ));
        assert!(trace_matches(
            &trace,
            &condition(
                TraceColumn::CustomerIdentifier,
                Operator::NotIn,
                vec![text("globex")]
            )
        ));
        assert!(!trace_matches(
            &trace,
            &condition(
                TraceColumn::CustomerIdentifier,
                Operator::IsNull,
                vec![FilterValue::Bool(true)]
            )
        ));
    }

    #[test]
    fn numbers_and_times_compare_by_value() {
        let trace = summary();
        assert!(trace_matches(
            &trace,
            &condition(
                TraceColumn::TotalCost,
                Operator::Gt,
                vec![FilterValue::Number(0.2)]
            )
        ));
        assert!(trace_matches(
            &trace,
            &condition(
                TraceColumn::SpanCount,
                Operator::Equals,
                vec![FilterValue::Number(2.0)]
            )
        ));
        let noon = crate::Timestamp::from_unix_nanos(1_735_732_800_000_000_000);
        assert!(trace_matches(
            &trace,
            &condition(
                TraceColumn::StartTime,
                Operator::Lt,
                vec![FilterValue::Time(noon)]
            )
        ));
    }

    #[test]
    fn missing_values_sort_first_ascending_and_last_descending() {
        let with = summary();
        let mut without = summary();
        without.customer_identifier = None;
        let column = TraceColumn::CustomerIdentifier;
        assert_eq!(
            trace_order(&without, &with, column, Direction::Ascending),
            Ordering::Less
        );
        assert_eq!(
            trace_order(&without, &with, column, Direction::Descending),
            Ordering::Greater
        );
    }
}
