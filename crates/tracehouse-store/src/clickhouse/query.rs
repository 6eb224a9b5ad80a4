//! Translation of the core query model into ClickHouse SQL.
//!
//! The SQL text is assembled from fixed fragments chosen by the typed model; user values enter
//! only as literals built by `client::string_literal` and friends.
//!
//! Every read goes through [`live_spans`] or [`live_traces`]: the table read with `FINAL`
//! (filtered only on sorting-key columns, which every version of a row shares), with the
//! remaining conditions applied outside, after replaced versions and tombstones collapsed.

use tracehouse_core::ProjectId;
use tracehouse_core::query::{
    Condition, Direction, FieldType, FilterValue, Operator, Page, SpanColumn, SpanField,
    SpanFilter, TraceColumn, TraceQuery,
};

use super::client::{float_literal, string_literal};

/// Live (latest, undeleted) spans of a project, narrowed by `key_filter` on key columns.
pub(crate) fn live_spans(project: ProjectId, key_filter: &str) -> String {
    format!(
        "(SELECT * FROM spans FINAL WHERE project_id = {}{key_filter}) WHERE deleted = 0",
        project.0
    )
}

/// Live traces of a project, narrowed by `key_filter` on key columns.
pub(crate) fn live_traces(project: ProjectId, key_filter: &str) -> String {
    format!(
        "(SELECT * FROM traces FINAL WHERE project_id = {}{key_filter}) WHERE deleted = 0",
        project.0
    )
}

/// ` AND column IN ('a', 'b')`, for key filters.
pub(crate) fn in_list<'a>(column: &str, values: impl Iterator<Item = &'a str>) -> String {
    let literals: Vec<String> = values.map(string_literal).collect();
    if literals.is_empty() {
        " AND 0".to_owned()
    } else {
        format!(" AND {column} IN ({})", literals.join(", "))
    }
}

pub(crate) fn span_column(column: SpanColumn) -> &'static str {
    match column {
        SpanColumn::TraceId => "trace_id",
        SpanColumn::SpanId => "span_id",
        SpanColumn::ParentId => "parent_id",
        SpanColumn::Name => "name",
        SpanColumn::LogType => "log_type",
        SpanColumn::Model => "model",
        SpanColumn::ProviderId => "provider_id",
        SpanColumn::Status => "status",
        SpanColumn::StatusCode => "status_code",
        SpanColumn::ErrorMessage => "error_message",
        SpanColumn::PromptTokens => "prompt_tokens",
        SpanColumn::CompletionTokens => "completion_tokens",
        SpanColumn::TotalTokens => "total_tokens",
        SpanColumn::Cost => "cost",
        SpanColumn::Latency => "latency",
        SpanColumn::StartTime => "start_ns",
        SpanColumn::EndTime => "end_ns",
        SpanColumn::CustomerIdentifier => "customer_identifier",
        SpanColumn::SessionIdentifier => "session_identifier",
        SpanColumn::ThreadIdentifier => "thread_identifier",
        SpanColumn::TraceGroupIdentifier => "trace_group_identifier",
        SpanColumn::Environment => "environment",
        SpanColumn::WorkflowName => "workflow_name",
        SpanColumn::Path => "path",
    }
}

fn trace_column(column: TraceColumn) -> &'static str {
    match column {
        TraceColumn::TraceId => "trace_id",
        TraceColumn::Name => "name",
        TraceColumn::CustomerIdentifier => "customer_identifier",
        TraceColumn::Environment => "environment",
        TraceColumn::TraceGroupIdentifier => "trace_group_identifier",
        TraceColumn::SessionIdentifier => "session_identifier",
        TraceColumn::ThreadIdentifier => "thread_identifier",
        TraceColumn::SpanCount => "span_count",
        TraceColumn::LlmCallCount => "llm_call_count",
        TraceColumn::ErrorCount => "error_count",
        TraceColumn::TotalCost => "total_cost",
        TraceColumn::TotalPromptTokens => "total_prompt_tokens",
        TraceColumn::TotalCompletionTokens => "total_completion_tokens",
        TraceColumn::TotalTokens => "total_tokens",
        TraceColumn::Duration => "duration",
        TraceColumn::StartTime => "start_ns",
        TraceColumn::EndTime => "end_ns",
    }
}

fn span_column_is_text(column: SpanColumn) -> bool {
    SpanColumn::from_api(column.api_name()).is_some_and(|(_, kind)| kind == FieldType::String)
}

fn trace_column_is_text(column: TraceColumn) -> bool {
    TraceColumn::from_api(column.api_name()).is_some_and(|(_, kind)| kind == FieldType::String)
}

fn literal(value: &FilterValue) -> String {
    match value {
        FilterValue::Text(text) => string_literal(text),
        FilterValue::Number(number) => float_literal(*number),
        FilterValue::Time(time) => time.unix_nanos().to_string(),
        FilterValue::Bool(flag) => u8::from(*flag).to_string(),
    }
}

/// `expr operator value` for the operators that test one value.
fn value_predicate(expr: &str, operator: Operator, value: &FilterValue) -> String {
    let text = || string_literal(&value.as_text());
    match operator {
        Operator::Lt => format!("{expr} < {}", literal(value)),
        Operator::Lte => format!("{expr} <= {}", literal(value)),
        Operator::Gt => format!("{expr} > {}", literal(value)),
        Operator::Gte => format!("{expr} >= {}", literal(value)),
        Operator::Contains | Operator::NotContains => format!("position({expr}, {}) > 0", text()),
        Operator::IContains => format!("positionCaseInsensitiveUTF8({expr}, {}) > 0", text()),
        Operator::StartsWith => format!("startsWith({expr}, {})", text()),
        Operator::EndsWith => format!("endsWith({expr}, {})", text()),
        Operator::Equals | Operator::In | Operator::Not | Operator::NotIn => {
            format!("{expr} = {}", literal(value))
        }
        Operator::Empty | Operator::NotEmpty | Operator::IsNull => "1".to_owned(),
    }
}

fn any_of(predicates: Vec<String>) -> String {
    if predicates.is_empty() {
        "0".to_owned()
    } else {
        format!("({})", predicates.join(" OR "))
    }
}

/// A condition on a plain (possibly Nullable) column. Like the SQLite store, negated
/// operators match NULL, and `empty` means NULL or the empty string.
fn column_condition<F>(expr: &str, is_text: bool, condition: &Condition<F>) -> String {
    let operator = condition.operator;
    let matches = || {
        any_of(
            condition
                .values
                .iter()
                .map(|value| value_predicate(expr, operator, value))
                .collect(),
        )
    };
    match operator {
        Operator::Empty if is_text => format!("(isNull({expr}) OR {expr} = '')"),
        Operator::Empty => format!("isNull({expr})"),
        Operator::NotEmpty if is_text => format!("(isNotNull({expr}) AND {expr} != '')"),
        Operator::NotEmpty => format!("isNotNull({expr})"),
        Operator::IsNull => match condition.values.first() {
            Some(FilterValue::Bool(false)) => format!("isNotNull({expr})"),
            _ => format!("isNull({expr})"),
        },
        Operator::Not | Operator::NotIn | Operator::NotContains => {
            format!("(isNull({expr}) OR NOT {})", matches())
        }
        _ => matches(),
    }
}

/// A condition on a metadata key, answered from the flattened `meta_*` arrays of the row.
fn metadata_condition(keys: &[String], condition: &Condition<SpanField>) -> String {
    let key = string_literal(&keys.join("__"));
    let operator = condition.operator;
    let exists = |predicate: &str| {
        format!(
            "arrayExists((mk, mt, mn, mi) -> mk = {key} AND ({predicate}), meta_keys, meta_text, meta_num, meta_is_num)"
        )
    };
    let value_matches = || {
        any_of(
            condition
                .values
                .iter()
                .map(|value| match value {
                    FilterValue::Number(_) if !operator.is_textual() => {
                        format!("mi = 1 AND {}", value_predicate("mn", operator, value))
                    }
                    FilterValue::Bool(flag) => format!(
                        "mi = 0 AND {}",
                        value_predicate("mt", operator, &FilterValue::Text(flag.to_string()))
                    ),
                    other => format!("mi = 0 AND {}", value_predicate("mt", operator, other)),
                })
                .map(|predicate| format!("({predicate})"))
                .collect(),
        )
    };
    let present = "mi = 1 OR mt != ''";
    match operator {
        Operator::Empty => format!("NOT {}", exists(present)),
        Operator::NotEmpty => exists(present),
        Operator::IsNull => match condition.values.first() {
            Some(FilterValue::Bool(false)) => format!("has(meta_keys, {key})"),
            _ => format!("NOT has(meta_keys, {key})"),
        },
        Operator::Not | Operator::NotIn | Operator::NotContains => {
            format!("NOT {}", exists(&value_matches()))
        }
        _ => exists(&value_matches()),
    }
}

/// The conditions of a span filter over a [`live_spans`] row, joined by AND.
pub(crate) fn span_filter_sql(filter: &SpanFilter) -> String {
    let mut clauses = Vec::new();
    if let Some(from) = filter.start_from {
        clauses.push(format!("start_ns >= {}", from.unix_nanos()));
    }
    if let Some(to) = filter.start_to {
        clauses.push(format!("start_ns <= {}", to.unix_nanos()));
    }
    for condition in &filter.conditions {
        clauses.push(match &condition.field {
            SpanField::Column(column) => column_condition(
                span_column(*column),
                span_column_is_text(*column),
                condition,
            ),
            SpanField::Metadata(keys) => metadata_condition(keys, condition),
        });
    }
    if let Some(search) = &filter.search {
        // Every word must occur in the span's name, input or output; words are literals,
        // never query syntax.
        for word in search.split_whitespace() {
            clauses.push(format!(
                "positionCaseInsensitiveUTF8(search_text, {}) > 0",
                string_literal(word)
            ));
        }
    }
    if clauses.is_empty() {
        "1".to_owned()
    } else {
        clauses.join(" AND ")
    }
}

/// The WHERE conditions of a trace list over a [`live_traces`] row.
pub(crate) fn trace_filter_sql(project: ProjectId, query: &TraceQuery) -> String {
    let mut clauses = Vec::new();
    if let Some(from) = query.start_from {
        clauses.push(format!("start_ns >= {}", from.unix_nanos()));
    }
    if let Some(to) = query.start_to {
        clauses.push(format!("start_ns <= {}", to.unix_nanos()));
    }
    if let Some(as_of) = query.as_of {
        clauses.push(format!("first_seen_ns <= {}", as_of.unix_nanos()));
    }
    for condition in &query.conditions {
        clauses.push(column_condition(
            trace_column(condition.field),
            trace_column_is_text(condition.field),
            condition,
        ));
    }
    if !query.spans.is_empty() {
        clauses.push(format!(
            "trace_id IN (SELECT trace_id FROM {} AND {})",
            live_spans(project, ""),
            span_filter_sql(&query.spans)
        ));
    }
    if clauses.is_empty() {
        "1".to_owned()
    } else {
        clauses.join(" AND ")
    }
}

fn direction(direction: Direction) -> (&'static str, &'static str) {
    match direction {
        Direction::Ascending => ("ASC", "DESC"),
        Direction::Descending => ("DESC", "ASC"),
    }
}

/// ORDER BY of a trace list: NULLs first when ascending, last when descending (as SQLite
/// sorts them), ties broken by trace id in the same direction.
pub(crate) fn trace_order(column: TraceColumn, dir: Direction) -> String {
    let (order, reverse) = direction(dir);
    let column = trace_column(column);
    format!("isNull({column}) {reverse}, {column} {order}, trace_id {order}")
}

/// ORDER BY of a span list, ties broken by trace id then span id.
pub(crate) fn span_order(column: SpanColumn, dir: Direction) -> String {
    let (order, reverse) = direction(dir);
    let column = span_column(column);
    format!("isNull({column}) {reverse}, {column} {order}, trace_id {order}, span_id {order}")
}

/// `LIMIT offset, size` (the form 18.16 reads).
pub(crate) fn page_sql(page: Page) -> String {
    format!("LIMIT {}, {}", page.offset(), page.size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negated_conditions_match_null_and_values_are_literals() {
        let condition = Condition {
            field: SpanField::Column(SpanColumn::Model),
            operator: Operator::NotIn,
            values: vec![
                FilterValue::Text("a'b".to_owned()),
                FilterValue::Text("c".to_owned()),
            ],
        };
        assert_eq!(
            column_condition("model", true, &condition),
            "(isNull(model) OR NOT (model = 'a\\'b' OR model = 'c'))"
        );
        let empty = Condition {
            field: SpanField::Column(SpanColumn::Cost),
            operator: Operator::Empty,
            values: vec![],
        };
        assert_eq!(column_condition("cost", false, &empty), "isNull(cost)");
    }
}
