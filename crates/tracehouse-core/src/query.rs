//! The one query model: typed, validated filters, sorting and paging over traces and spans.
//!
//! Every list route, the summary and exports parse their input into these types; each store
//! translates them into its own query language with bound parameters, so no user text ever
//! becomes query text.

use serde_json::Value;

use crate::time::Timestamp;

/// The type of a filterable field, which decides how filter values are parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// Text.
    String,
    /// A number (float or integer).
    Number,
    /// A point in time.
    Time,
    /// `true` or `false`.
    Bool,
    /// A metadata value, whose type is that of each filter value.
    Dynamic,
}

/// A span column that can be filtered and sorted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpanColumn {
    /// `trace_unique_id`.
    TraceId,
    /// `span_unique_id`.
    SpanId,
    /// `span_parent_id`.
    ParentId,
    /// `span_name`.
    Name,
    /// `log_type`.
    LogType,
    /// `model`.
    Model,
    /// `provider_id`.
    ProviderId,
    /// `status` (`success`/`error`).
    Status,
    /// `status_code`.
    StatusCode,
    /// `error_message`.
    ErrorMessage,
    /// `prompt_tokens`.
    PromptTokens,
    /// `completion_tokens`.
    CompletionTokens,
    /// `total_tokens`.
    TotalTokens,
    /// `cost`.
    Cost,
    /// `latency` in seconds.
    Latency,
    /// `start_time`.
    StartTime,
    /// `timestamp` / `end_time`.
    EndTime,
    /// `customer_identifier`.
    CustomerIdentifier,
    /// `session_identifier`.
    SessionIdentifier,
    /// `thread_identifier`.
    ThreadIdentifier,
    /// `trace_group_identifier`.
    TraceGroupIdentifier,
    /// `environment`.
    Environment,
    /// `span_workflow_name`.
    WorkflowName,
    /// `span_path`.
    Path,
}

/// API names of span columns, their types; the first name of a column is its canonical one.
const SPAN_COLUMNS: &[(&str, SpanColumn, FieldType)] = &[
    ("trace_unique_id", SpanColumn::TraceId, FieldType::String),
    ("span_unique_id", SpanColumn::SpanId, FieldType::String),
    ("span_parent_id", SpanColumn::ParentId, FieldType::String),
    ("span_name", SpanColumn::Name, FieldType::String),
    ("log_type", SpanColumn::LogType, FieldType::String),
    ("model", SpanColumn::Model, FieldType::String),
    ("provider_id", SpanColumn::ProviderId, FieldType::String),
    ("status", SpanColumn::Status, FieldType::String),
    ("status_code", SpanColumn::StatusCode, FieldType::Number),
    ("error_message", SpanColumn::ErrorMessage, FieldType::String),
    ("prompt_tokens", SpanColumn::PromptTokens, FieldType::Number),
    (
        "completion_tokens",
        SpanColumn::CompletionTokens,
        FieldType::Number,
    ),
    ("total_tokens", SpanColumn::TotalTokens, FieldType::Number),
    (
        "total_request_tokens",
        SpanColumn::TotalTokens,
        FieldType::Number,
    ),
    ("cost", SpanColumn::Cost, FieldType::Number),
    ("latency", SpanColumn::Latency, FieldType::Number),
    ("start_time", SpanColumn::StartTime, FieldType::Time),
    ("timestamp", SpanColumn::EndTime, FieldType::Time),
    ("end_time", SpanColumn::EndTime, FieldType::Time),
    (
        "customer_identifier",
        SpanColumn::CustomerIdentifier,
        FieldType::String,
    ),
    (
        "session_identifier",
        SpanColumn::SessionIdentifier,
        FieldType::String,
    ),
    (
        "thread_identifier",
        SpanColumn::ThreadIdentifier,
        FieldType::String,
    ),
    (
        "trace_group_identifier",
        SpanColumn::TraceGroupIdentifier,
        FieldType::String,
    ),
    ("environment", SpanColumn::Environment, FieldType::String),
    (
        "span_workflow_name",
        SpanColumn::WorkflowName,
        FieldType::String,
    ),
    ("span_path", SpanColumn::Path, FieldType::String),
];

/// A trace aggregate column that can be filtered and sorted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TraceColumn {
    /// `trace_unique_id`.
    TraceId,
    /// `name` (of the root span).
    Name,
    /// `customer_identifier`.
    CustomerIdentifier,
    /// `environment`.
    Environment,
    /// `trace_group_identifier`.
    TraceGroupIdentifier,
    /// `session_identifier`.
    SessionIdentifier,
    /// `thread_identifier`.
    ThreadIdentifier,
    /// `span_count`.
    SpanCount,
    /// `llm_call_count`.
    LlmCallCount,
    /// `error_count`.
    ErrorCount,
    /// `total_cost`.
    TotalCost,
    /// `total_prompt_tokens`.
    TotalPromptTokens,
    /// `total_completion_tokens`.
    TotalCompletionTokens,
    /// `total_tokens` (also `total_request_tokens`).
    TotalTokens,
    /// `duration` in seconds.
    Duration,
    /// `start_time`.
    StartTime,
    /// `end_time`.
    EndTime,
}

const TRACE_COLUMNS: &[(&str, TraceColumn, FieldType)] = &[
    ("trace_unique_id", TraceColumn::TraceId, FieldType::String),
    ("name", TraceColumn::Name, FieldType::String),
    (
        "customer_identifier",
        TraceColumn::CustomerIdentifier,
        FieldType::String,
    ),
    ("environment", TraceColumn::Environment, FieldType::String),
    (
        "trace_group_identifier",
        TraceColumn::TraceGroupIdentifier,
        FieldType::String,
    ),
    (
        "session_identifier",
        TraceColumn::SessionIdentifier,
        FieldType::String,
    ),
    (
        "thread_identifier",
        TraceColumn::ThreadIdentifier,
        FieldType::String,
    ),
    ("span_count", TraceColumn::SpanCount, FieldType::Number),
    (
        "llm_call_count",
        TraceColumn::LlmCallCount,
        FieldType::Number,
    ),
    ("error_count", TraceColumn::ErrorCount, FieldType::Number),
    ("total_cost", TraceColumn::TotalCost, FieldType::Number),
    (
        "total_prompt_tokens",
        TraceColumn::TotalPromptTokens,
        FieldType::Number,
    ),
    (
        "total_completion_tokens",
        TraceColumn::TotalCompletionTokens,
        FieldType::Number,
    ),
    ("total_tokens", TraceColumn::TotalTokens, FieldType::Number),
    (
        "total_request_tokens",
        TraceColumn::TotalTokens,
        FieldType::Number,
    ),
    ("duration", TraceColumn::Duration, FieldType::Number),
    ("start_time", TraceColumn::StartTime, FieldType::Time),
    ("end_time", TraceColumn::EndTime, FieldType::Time),
];

impl SpanColumn {
    /// Looks a column up by its API name.
    pub fn from_api(name: &str) -> Option<(SpanColumn, FieldType)> {
        SPAN_COLUMNS
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, c, t)| (*c, *t))
    }

    /// The canonical API name.
    pub fn api_name(self) -> &'static str {
        SPAN_COLUMNS
            .iter()
            .find(|(_, c, _)| *c == self)
            .map_or("", |(n, _, _)| n)
    }

    /// Every API name, for error messages and the OpenAPI document.
    pub fn api_names() -> impl Iterator<Item = &'static str> {
        SPAN_COLUMNS.iter().map(|(n, _, _)| *n)
    }
}

impl TraceColumn {
    /// Looks a column up by its API name.
    pub fn from_api(name: &str) -> Option<(TraceColumn, FieldType)> {
        TRACE_COLUMNS
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, c, t)| (*c, *t))
    }

    /// The canonical API name.
    pub fn api_name(self) -> &'static str {
        TRACE_COLUMNS
            .iter()
            .find(|(_, c, _)| *c == self)
            .map_or("", |(n, _, _)| n)
    }

    /// Every API name, for error messages and the OpenAPI document.
    pub fn api_names() -> impl Iterator<Item = &'static str> {
        TRACE_COLUMNS.iter().map(|(n, _, _)| *n)
    }
}

/// A filterable span field: a column or a metadata path (`metadata__a__b` → `["a", "b"]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SpanField {
    /// A typed column.
    Column(SpanColumn),
    /// A value inside `metadata`, at any depth.
    Metadata(Vec<String>),
}

/// Comparison operators of the vendor's filter syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `""`: equals one of the values.
    Equals,
    /// `not`: equals none of the values.
    Not,
    /// `in`: equals one of the values.
    In,
    /// `not_in`: equals none of the values.
    NotIn,
    /// `lt`.
    Lt,
    /// `lte`.
    Lte,
    /// `gt`.
    Gt,
    /// `gte`.
    Gte,
    /// `contains` (case-sensitive substring).
    Contains,
    /// `icontains` (case-insensitive substring).
    IContains,
    /// `not_contains`.
    NotContains,
    /// `startswith`.
    StartsWith,
    /// `endswith`.
    EndsWith,
    /// `empty`: null or the empty string.
    Empty,
    /// `not_empty`.
    NotEmpty,
    /// `isnull`: null (or, with value `false`, not null).
    IsNull,
}

const OPERATORS: &[(&str, Operator)] = &[
    ("", Operator::Equals),
    ("eq", Operator::Equals),
    ("not", Operator::Not),
    ("in", Operator::In),
    ("not_in", Operator::NotIn),
    ("lt", Operator::Lt),
    ("lte", Operator::Lte),
    ("gt", Operator::Gt),
    ("gte", Operator::Gte),
    ("contains", Operator::Contains),
    ("icontains", Operator::IContains),
    ("not_contains", Operator::NotContains),
    ("startswith", Operator::StartsWith),
    ("endswith", Operator::EndsWith),
    ("empty", Operator::Empty),
    ("not_empty", Operator::NotEmpty),
    ("isnull", Operator::IsNull),
];

impl Operator {
    /// Parses an API operator name.
    pub fn from_api(name: &str) -> Option<Operator> {
        OPERATORS.iter().find(|(n, _)| *n == name).map(|(_, o)| *o)
    }

    /// Whether the operator needs at least one value.
    pub fn needs_value(self) -> bool {
        !matches!(
            self,
            Operator::Empty | Operator::NotEmpty | Operator::IsNull
        )
    }

    /// Whether the operator only makes sense on text.
    pub fn is_textual(self) -> bool {
        matches!(
            self,
            Operator::Contains
                | Operator::IContains
                | Operator::NotContains
                | Operator::StartsWith
                | Operator::EndsWith
        )
    }

    /// Whether the values combine as "none of" rather than "any of".
    pub fn is_negated(self) -> bool {
        matches!(
            self,
            Operator::Not | Operator::NotIn | Operator::NotContains
        )
    }
}

/// A parsed filter value, typed by its field.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterValue {
    /// Text.
    Text(String),
    /// A number.
    Number(f64),
    /// A time.
    Time(Timestamp),
    /// A boolean.
    Bool(bool),
}

impl FilterValue {
    /// The value as text, for text comparisons: numbers as Rust prints them, times in RFC 3339,
    /// booleans as `true`/`false`. Every store compares text filters against this.
    pub fn as_text(&self) -> String {
        match self {
            FilterValue::Text(text) => text.clone(),
            FilterValue::Number(number) => number.to_string(),
            FilterValue::Time(time) => time.to_rfc3339(),
            FilterValue::Bool(flag) => flag.to_string(),
        }
    }
}

/// One condition: `field operator values` (values OR-ed, or NOR-ed for negated operators).
#[derive(Debug, Clone, PartialEq)]
pub struct Condition<F> {
    /// What is compared.
    pub field: F,
    /// How.
    pub operator: Operator,
    /// With what; empty for `empty`/`not_empty`/`isnull`.
    pub values: Vec<FilterValue>,
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Smallest first.
    Ascending,
    /// Largest first.
    Descending,
}

/// A sort key; ties are always broken by the id (trace id, then span id) in the same direction,
/// which makes the order total and pagination stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort<C> {
    /// The column.
    pub column: C,
    /// The direction.
    pub direction: Direction,
}

/// Largest `page_size` accepted.
pub const MAX_PAGE_SIZE: u64 = 1000;
/// `page_size` when none is given.
pub const DEFAULT_PAGE_SIZE: u64 = 50;

/// A page of results: `page` is 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// 1-based page number.
    pub number: u64,
    /// Items per page, 1..=[`MAX_PAGE_SIZE`].
    pub size: u64,
}

/// Matches a filtered or searched list counts exactly; past it the count is a lower bound, so
/// no list's cost grows with the number of rows it matches.
pub const COUNT_CAP: u64 = 10_000;

impl Page {
    /// Rows to skip.
    pub fn offset(self) -> u64 {
        (self.number - 1).saturating_mul(self.size)
    }

    /// How far a store counts the matches of a filtered list before it reports a lower bound:
    /// [`COUNT_CAP`], or further on deep pages, so the count always reaches past this page
    /// and the next page of a capped list is still found.
    pub fn count_limit(self) -> u64 {
        COUNT_CAP.max(self.offset().saturating_add(self.size.saturating_mul(2)))
    }
}

impl Default for Page {
    fn default() -> Self {
        Self {
            number: 1,
            size: DEFAULT_PAGE_SIZE,
        }
    }
}

/// Filters over spans (used alone for span lists and summaries, and as "any span matches"
/// inside a trace query).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SpanFilter {
    /// All must hold.
    pub conditions: Vec<Condition<SpanField>>,
    /// Full-text search over span name, input and output.
    pub search: Option<String>,
    /// Spans starting at or after.
    pub start_from: Option<Timestamp>,
    /// Spans starting at or before.
    pub start_to: Option<Timestamp>,
}

impl SpanFilter {
    /// Whether the filter restricts nothing.
    pub fn is_empty(&self) -> bool {
        self.conditions.is_empty()
            && self.search.is_none()
            && self.start_from.is_none()
            && self.start_to.is_none()
    }
}

/// A trace list request.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceQuery {
    /// Conditions on trace aggregates, all must hold.
    pub conditions: Vec<Condition<TraceColumn>>,
    /// Conditions on spans: a trace matches when one of its spans matches all of them.
    pub spans: SpanFilter,
    /// Traces starting at or after.
    pub start_from: Option<Timestamp>,
    /// Traces starting at or before.
    pub start_to: Option<Timestamp>,
    /// Order.
    pub sort: Sort<TraceColumn>,
    /// Which page.
    pub page: Page,
    /// Only traces first seen at or before this instant: pages fetched with the same `as_of`
    /// neither repeat nor skip rows while ingest continues.
    pub as_of: Option<Timestamp>,
}

impl Default for TraceQuery {
    fn default() -> Self {
        Self {
            conditions: Vec::new(),
            spans: SpanFilter::default(),
            start_from: None,
            start_to: None,
            sort: Sort {
                column: TraceColumn::StartTime,
                direction: Direction::Descending,
            },
            page: Page::default(),
            as_of: None,
        }
    }
}

/// A span list request.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanQuery {
    /// Which spans.
    pub filter: SpanFilter,
    /// Order.
    pub sort: Sort<SpanColumn>,
    /// Which page.
    pub page: Page,
    /// Only spans first seen at or before this instant (see [`TraceQuery::as_of`]).
    pub as_of: Option<Timestamp>,
}

impl Default for SpanQuery {
    fn default() -> Self {
        Self {
            filter: SpanFilter::default(),
            sort: Sort {
                column: SpanColumn::StartTime,
                direction: Direction::Descending,
            },
            page: Page::default(),
            as_of: None,
        }
    }
}

/// Why a query could not be understood; every variant names the offending part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// A filter or sort field that does not exist.
    #[error("unknown field {field:?}; known fields: {known}")]
    UnknownField {
        /// The field as given.
        field: String,
        /// The accepted names.
        known: String,
    },
    /// An operator that does not exist.
    #[error(
        "unknown operator {operator:?} on field {field:?}; known operators: \"\", not, in, not_in, lt, lte, gt, gte, contains, icontains, not_contains, startswith, endswith, empty, not_empty, isnull"
    )]
    UnknownOperator {
        /// The field.
        field: String,
        /// The operator as given.
        operator: String,
    },
    /// A value of the wrong type for its field.
    #[error("field {field:?}: {message}")]
    BadValue {
        /// The field.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A paging or sort parameter out of range.
    #[error("parameter {parameter:?}: {message}")]
    BadParameter {
        /// The parameter.
        parameter: String,
        /// What is wrong.
        message: String,
    },
    /// The filter body does not have the documented shape.
    #[error("{0}")]
    BadShape(String),
}

fn bad_value(field: &str, message: impl Into<String>) -> QueryError {
    QueryError::BadValue {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// Parses a filter value for a field of type `kind`.
fn parse_value(
    field: &str,
    kind: FieldType,
    operator: Operator,
    raw: &Value,
) -> Result<FilterValue, QueryError> {
    if operator.is_textual() {
        return match raw {
            Value::String(text) => Ok(FilterValue::Text(text.clone())),
            Value::Number(n) => Ok(FilterValue::Text(n.to_string())),
            other => Err(bad_value(
                field,
                format!("operator needs a string, got {other}"),
            )),
        };
    }
    match (kind, raw) {
        (FieldType::String, Value::String(text)) => Ok(FilterValue::Text(text.clone())),
        (FieldType::String, Value::Number(n)) => Ok(FilterValue::Text(n.to_string())),
        (FieldType::Number, Value::Number(n)) => n
            .as_f64()
            .map(FilterValue::Number)
            .ok_or_else(|| bad_value(field, "number out of range")),
        (FieldType::Number, Value::String(text)) => text
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(FilterValue::Number)
            .ok_or_else(|| bad_value(field, format!("expected a number, got {text:?}"))),
        (FieldType::Time, Value::String(text)) => crate::time::Timestamp::parse(text)
            .map(FilterValue::Time)
            .map_err(|e| bad_value(field, e.to_string())),
        (FieldType::Time, Value::Number(n)) => n
            .as_f64()
            .ok_or_else(|| bad_value(field, "number out of range"))
            .and_then(|f| {
                Timestamp::from_epoch_number(f).map_err(|e| bad_value(field, e.to_string()))
            })
            .map(FilterValue::Time),
        (FieldType::Bool, Value::Bool(b)) => Ok(FilterValue::Bool(*b)),
        (FieldType::Dynamic, Value::String(text)) => Ok(FilterValue::Text(text.clone())),
        (FieldType::Dynamic, Value::Number(n)) => n
            .as_f64()
            .map(FilterValue::Number)
            .ok_or_else(|| bad_value(field, "number out of range")),
        (FieldType::Dynamic, Value::Bool(b)) => Ok(FilterValue::Bool(*b)),
        (kind, other) => Err(bad_value(
            field,
            format!(
                "expected {}, got {other}",
                match kind {
                    FieldType::String => "a string",
                    FieldType::Number => "a number",
                    FieldType::Time => "an ISO-8601 time or epoch number",
                    FieldType::Bool | FieldType::Dynamic => "a boolean, number or string",
                }
            ),
        )),
    }
}

/// Parses `{"operator": "...", "value": [...]}` (or a bare value / list, meaning equals).
pub(crate) fn parse_condition<F>(
    field_name: &str,
    field: F,
    kind: FieldType,
    spec: &Value,
) -> Result<Condition<F>, QueryError> {
    let (operator_name, raw_values) = match spec {
        Value::Object(object) => {
            for key in object.keys() {
                if key != "operator" && key != "value" {
                    return Err(QueryError::BadShape(format!(
                        "filter on {field_name:?} has unknown key {key:?}: use {{\"operator\": \"...\", \"value\": [...]}}"
                    )));
                }
            }
            let operator = match object.get("operator") {
                None | Some(Value::Null) => "",
                Some(Value::String(op)) => op.as_str(),
                Some(other) => {
                    return Err(QueryError::BadShape(format!(
                        "filter on {field_name:?}: operator must be a string, got {other}"
                    )));
                }
            };
            (
                operator,
                object.get("value").cloned().unwrap_or(Value::Null),
            )
        }
        other => ("", other.clone()),
    };
    let operator =
        Operator::from_api(operator_name).ok_or_else(|| QueryError::UnknownOperator {
            field: field_name.to_owned(),
            operator: operator_name.to_owned(),
        })?;
    if operator.is_textual() && !matches!(kind, FieldType::String | FieldType::Dynamic) {
        return Err(bad_value(
            field_name,
            format!("operator {operator_name:?} applies to text fields only"),
        ));
    }
    let raw_values: Vec<Value> = match raw_values {
        Value::Null => Vec::new(),
        Value::Array(values) => values,
        single => vec![single],
    };
    if operator == Operator::IsNull {
        // `isnull` takes an optional boolean: [true] (default) or [false].
        let wants_null = match raw_values.first() {
            None => true,
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) if s == "true" || s == "false" => s == "true",
            Some(other) => {
                return Err(bad_value(
                    field_name,
                    format!("isnull takes true or false, got {other}"),
                ));
            }
        };
        return Ok(Condition {
            field,
            operator,
            values: vec![FilterValue::Bool(wants_null)],
        });
    }
    if !operator.needs_value() {
        return Ok(Condition {
            field,
            operator,
            values: Vec::new(),
        });
    }
    if raw_values.is_empty() {
        return Err(bad_value(
            field_name,
            format!("operator {operator_name:?} needs a value"),
        ));
    }
    if raw_values.len() > 1000 {
        return Err(bad_value(field_name, "at most 1000 values per filter"));
    }
    let values = raw_values
        .iter()
        .map(|raw| parse_value(field_name, kind, operator, raw))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Condition {
        field,
        operator,
        values,
    })
}

/// The first key of the index path under which stores keep a span's scores beside its
/// metadata (`scores__<evaluator>` filters on `[SCORES_INDEX_KEY, evaluator]`). It starts with
/// a control character, which no `metadata__*` filter may name, so the two never meet.
pub const SCORES_INDEX_KEY: &str = "\u{1f}scores";

/// The metadata index key under which stores index a log's `positive_feedback` (`true` or
/// `false`, as text), so `positive_feedback` filters spans and traces like a metadata key;
/// like [`SCORES_INDEX_KEY`] it starts with a control character no metadata key can have.
pub const FEEDBACK_INDEX_KEY: &str = "\u{1f}feedback";

/// Parses a span field name: a column, `metadata__key__subkey`, or `scores__<evaluator>` (a
/// score's evaluator slug or id).
pub fn parse_span_field(name: &str) -> Result<(SpanField, FieldType), QueryError> {
    if let Some((column, kind)) = SpanColumn::from_api(name) {
        return Ok((SpanField::Column(column), kind));
    }
    if name == "positive_feedback" {
        return Ok((
            SpanField::Metadata(vec![FEEDBACK_INDEX_KEY.to_owned()]),
            FieldType::Dynamic,
        ));
    }
    if let Some(evaluator) = name.strip_prefix("scores__") {
        if evaluator.is_empty()
            || evaluator.contains('"')
            || evaluator.chars().any(char::is_control)
        {
            return Err(bad_value(
                name,
                "the evaluator after scores__ must be non-empty and contain no '\"'",
            ));
        }
        return Ok((
            SpanField::Metadata(vec![SCORES_INDEX_KEY.to_owned(), evaluator.to_owned()]),
            FieldType::Dynamic,
        ));
    }
    if let Some(path) = name.strip_prefix("metadata__") {
        let keys: Vec<String> = path.split("__").map(str::to_owned).collect();
        if keys
            .iter()
            .any(|k| k.is_empty() || k.contains('"') || k.chars().any(char::is_control))
        {
            return Err(bad_value(
                name,
                "metadata keys must be non-empty and contain no '\"'",
            ));
        }
        return Ok((SpanField::Metadata(keys), FieldType::Dynamic));
    }
    Err(QueryError::UnknownField {
        field: name.to_owned(),
        known: format!(
            "{}, positive_feedback, metadata__<key>, scores__<evaluator>",
            SpanColumn::api_names().collect::<Vec<_>>().join(", ")
        ),
    })
}

pub(crate) fn filters_object(
    filters: &Value,
) -> Result<Option<&serde_json::Map<String, Value>>, QueryError> {
    match filters {
        Value::Null => Ok(None),
        Value::Object(object) => Ok(Some(object)),
        other => Err(QueryError::BadShape(format!(
            "\"filters\" must be an object of {{\"<field>\": {{\"operator\": \"...\", \"value\": [...]}}}}, got {other}"
        ))),
    }
}

/// Parses the `filters` object of a span list or summary request into `filter`.
pub fn parse_span_filters(filters: &Value, filter: &mut SpanFilter) -> Result<(), QueryError> {
    let Some(object) = filters_object(filters)? else {
        return Ok(());
    };
    for (name, spec) in object {
        let (field, kind) = parse_span_field(name)?;
        filter
            .conditions
            .push(parse_condition(name, field, kind, spec)?);
    }
    Ok(())
}

/// Parses the `filters` object of a trace list request: trace fields filter aggregates, span
/// fields (and `metadata__*`) select traces that have a matching span.
pub fn parse_trace_filters(filters: &Value, query: &mut TraceQuery) -> Result<(), QueryError> {
    let Some(object) = filters_object(filters)? else {
        return Ok(());
    };
    for (name, spec) in object {
        if let Some((column, kind)) = TraceColumn::from_api(name) {
            query
                .conditions
                .push(parse_condition(name, column, kind, spec)?);
            continue;
        }
        let (field, kind) = parse_span_field(name).map_err(|error| match error {
            QueryError::UnknownField { field, .. } => QueryError::UnknownField {
                field,
                known: format!(
                    "{}, span fields ({}), metadata__<key>, scores__<evaluator>",
                    TraceColumn::api_names().collect::<Vec<_>>().join(", "),
                    SpanColumn::api_names().collect::<Vec<_>>().join(", ")
                ),
            },
            other => other,
        })?;
        query
            .spans
            .conditions
            .push(parse_condition(name, field, kind, spec)?);
    }
    Ok(())
}

/// Parses `sort_by` (`field` or `-field`) with a column lookup.
pub fn parse_sort<C: Copy>(
    raw: &str,
    lookup: impl Fn(&str) -> Option<(C, FieldType)>,
    known: impl Iterator<Item = &'static str>,
) -> Result<Sort<C>, QueryError> {
    let raw = raw.trim();
    let (direction, name) = match raw.strip_prefix('-') {
        Some(name) => (Direction::Descending, name),
        None => (Direction::Ascending, raw.strip_prefix('+').unwrap_or(raw)),
    };
    let (column, _) = lookup(name).ok_or_else(|| QueryError::BadParameter {
        parameter: "sort_by".to_owned(),
        message: format!(
            "unknown field {name:?}; sortable fields: {}",
            known.collect::<Vec<_>>().join(", ")
        ),
    })?;
    Ok(Sort { column, direction })
}

/// Validates `page` and `page_size`.
pub fn parse_page(page: Option<&str>, page_size: Option<&str>) -> Result<Page, QueryError> {
    let number = match page {
        None => 1,
        Some(raw) => raw
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| QueryError::BadParameter {
                parameter: "page".to_owned(),
                message: format!("must be a whole number from 1, got {raw:?}"),
            })?,
    };
    let size = match page_size {
        None => DEFAULT_PAGE_SIZE,
        Some(raw) => raw
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
            .ok_or_else(|| QueryError::BadParameter {
                parameter: "page_size".to_owned(),
                message: format!("must be a whole number from 1 to {MAX_PAGE_SIZE}, got {raw:?}"),
            })?,
    };
    Ok(Page { number, size })
}

/// Parses a `start_time`/`end_time` parameter.
pub fn parse_time_parameter(parameter: &str, raw: &str) -> Result<Timestamp, QueryError> {
    Timestamp::parse(raw).map_err(|e| QueryError::BadParameter {
        parameter: parameter.to_owned(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn parses_every_operator_with_typed_values() {
        let mut filter = SpanFilter::default();
        parse_span_filters(
            &json!({
                "model": {"operator": "in", "value": ["gpt-4o", "gpt-4o-mini"]},
                "cost": {"operator": "gte", "value": ["0.5"]},
                "start_time": {"operator": "lt", "value": "2025-01-01T00:00:00Z"},
                "customer_identifier": {"operator": "icontains", "value": ["Acme"]},
                "error_message": {"operator": "isnull", "value": [false]},
                "environment": {"operator": "not_empty"},
                "metadata__user__tier": {"operator": "", "value": [3]},
                "log_type": "chat",
            }),
            &mut filter,
        )
        .unwrap();
        let c = &filter.conditions;
        assert_eq!(c.len(), 8);
        assert_eq!(c[0].operator, Operator::In);
        assert_eq!(c[0].values.len(), 2);
        assert_eq!(c[1].values, vec![FilterValue::Number(0.5)]);
        assert!(matches!(c[2].values[0], FilterValue::Time(_)));
        assert_eq!(c[4].values, vec![FilterValue::Bool(false)]);
        assert!(c[5].values.is_empty());
        assert_eq!(
            c[6].field,
            SpanField::Metadata(vec!["user".into(), "tier".into()])
        );
        assert_eq!(c[6].values, vec![FilterValue::Number(3.0)]);
        assert_eq!(c[7].operator, Operator::Equals);
        assert_eq!(c[7].values, vec![FilterValue::Text("chat".into())]);
    }

    #[test]
    fn filter_values_read_as_text_the_same_in_every_store() {
        assert_eq!(FilterValue::Text("a b".to_owned()).as_text(), "a b");
        assert_eq!(FilterValue::Number(3.0).as_text(), "3");
        assert_eq!(FilterValue::Number(0.25).as_text(), "0.25");
        assert_eq!(FilterValue::Bool(true).as_text(), "true");
        assert_eq!(
            FilterValue::Time(Timestamp::from_unix_nanos(0)).as_text(),
            "1970-01-01T00:00:00Z"
        );
    }

    #[test]
    fn errors_name_the_field_or_operator() {
        let mut filter = SpanFilter::default();
        let error = parse_span_filters(
            &json!({"colour": {"operator": "", "value": ["red"]}}),
            &mut filter,
        );
        assert!(
            matches!(error, Err(QueryError::UnknownField { ref field, .. }) if field == "colour")
        );
        let error = parse_span_filters(
            &json!({"model": {"operator": "like", "value": ["x"]}}),
            &mut filter,
        );
        assert!(
            matches!(error, Err(QueryError::UnknownOperator { ref operator, .. }) if operator == "like")
        );
        let error = parse_span_filters(
            &json!({"cost": {"operator": "gt", "value": ["cheap"]}}),
            &mut filter,
        );
        assert!(matches!(error, Err(QueryError::BadValue { ref field, .. }) if field == "cost"));
        let error = parse_span_filters(
            &json!({"cost": {"operator": "contains", "value": ["1"]}}),
            &mut filter,
        );
        assert!(matches!(error, Err(QueryError::BadValue { ref field, .. }) if field == "cost"));
        let error = parse_span_filters(&json!({"model": {"operator": "gt"}}), &mut filter);
        assert!(matches!(error, Err(QueryError::BadValue { .. })));
        assert!(matches!(
            parse_span_filters(&json!([1]), &mut filter),
            Err(QueryError::BadShape(_))
        ));
        assert!(matches!(
            parse_span_filters(&json!({"model": {"op": "x"}}), &mut filter),
            Err(QueryError::BadShape(_))
        ));
        assert!(parse_span_field("metadata__").is_err());
        assert_eq!(
            parse_span_field("scores__helpfulness").map(|(field, _)| field),
            Ok(SpanField::Metadata(vec![
                SCORES_INDEX_KEY.to_owned(),
                "helpfulness".to_owned()
            ]))
        );
        assert!(parse_span_field("scores__").is_err());
        assert!(parse_span_field("metadata__a\"b").is_err());
    }

    #[test]
    fn trace_filters_split_into_aggregate_and_span_conditions() {
        let mut query = TraceQuery::default();
        parse_trace_filters(
            &json!({"total_cost": {"operator": "gt", "value": [1]}, "model": {"operator": "", "value": ["gpt-4o"]},
                    "metadata__k": {"operator": "", "value": ["v"]}, "total_request_tokens": {"operator": "lt", "value": [5]}}),
            &mut query,
        )
        .unwrap();
        assert_eq!(query.conditions.len(), 2);
        assert_eq!(query.conditions[0].field, TraceColumn::TotalCost);
        assert_eq!(query.conditions[1].field, TraceColumn::TotalTokens);
        assert_eq!(query.spans.conditions.len(), 2);
    }

    #[test]
    fn paging_and_sorting() {
        assert_eq!(
            parse_page(None, None),
            Ok(Page {
                number: 1,
                size: 50
            })
        );
        assert_eq!(
            parse_page(Some("3"), Some("1000")).map(|p| p.offset()),
            Ok(2000)
        );
        assert!(parse_page(Some("0"), None).is_err());
        assert!(parse_page(None, Some("1001")).is_err());
        assert!(parse_page(None, Some("x")).is_err());
        let sort = parse_sort(
            "-total_cost",
            TraceColumn::from_api,
            TraceColumn::api_names(),
        );
        assert_eq!(
            sort,
            Ok(Sort {
                column: TraceColumn::TotalCost,
                direction: Direction::Descending
            })
        );
        assert!(parse_sort("colour", TraceColumn::from_api, TraceColumn::api_names()).is_err());
        assert_eq!(TraceColumn::TotalTokens.api_name(), "total_tokens");
    }
}
