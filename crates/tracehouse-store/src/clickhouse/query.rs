//! Translation of the core query model into ClickHouse SQL, and the reads that run it.
//!
//! The SQL text is assembled from fixed fragments chosen by the typed model; user values enter
//! only as literals built by `client::string_literal` and friends.
//!
//! Span reads go through [`live_spans`] (by key) or [`live_spans_scan`] (over many spans): the
//! table read with `FINAL` (filtered only on sorting-key columns, which every version of a row
//! shares) where a span may have several versions, with the remaining conditions applied
//! outside, after replaced versions and tombstones collapsed. Trace reads, which
//! compute aggregates from the spans, are in `traces`.

use std::collections::HashMap;

use serde::Deserialize;
use tracehouse_core::query::{
    Condition, Direction, FieldType, FilterValue, Operator, Page, SpanColumn, SpanField,
    SpanFilter, SpanQuery,
};
use tracehouse_core::{
    Listing, ProjectId, ProjectStats, Span, SpanId, SpanStatistics, StoreError, TraceId,
};

use super::ClickHouseError;
use super::client::{Client, float_literal, string_literal};
use super::rows::{SPAN_COLUMNS, SpanRead};

/// Live (latest, undeleted) spans of a project, narrowed by `key_filter` on key columns.
pub(crate) fn live_spans(project: ProjectId, key_filter: &str) -> String {
    format!(
        "(SELECT * FROM span_versions FINAL WHERE project_id = {}{key_filter}) WHERE deleted = 0",
        project.0
    )
}

/// Traces with several versions of a span past which a scan collapses the whole project with
/// `FINAL` rather than listing them.
const REWRITTEN_TRACES_LISTED: usize = 10_000;

/// Live spans of a project for reads that scan many of them, narrowed by `key_filter`.
///
/// `FINAL` merges every row in one thread on 18.16 (half a second per million spans), yet most
/// spans were written once: the rows of traces whose spans all were (`trace_span_counts` says
/// which) are read as they are, and only the other traces' rows are collapsed with `FINAL`, by
/// primary key. Their ids are read first and written into the SQL, because 18.16 does not use
/// the primary key for an `IN` over a subquery.
pub(crate) async fn live_spans_scan(
    client: &Client,
    project: ProjectId,
    key_filter: &str,
) -> Result<String, ClickHouseError> {
    #[derive(Deserialize)]
    struct Rewritten {
        trace_id: String,
    }
    let p = project.0;
    let rewritten: Vec<Rewritten> = client
        .rows(&format!(
            "SELECT trace_id FROM trace_span_counts WHERE project_id = {p} GROUP BY trace_id \
             HAVING countMerge(rows) > uniqMerge(spans) OR countMerge(rows) > {} LIMIT {}",
            super::schema::UNIQ_EXACT_UP_TO,
            REWRITTEN_TRACES_LISTED + 1
        ))
        .await?;
    if rewritten.len() > REWRITTEN_TRACES_LISTED {
        return Ok(format!("{} AND 1", live_spans(project, key_filter)));
    }
    if rewritten.is_empty() {
        return Ok(format!(
            "(SELECT * FROM span_versions WHERE project_id = {p}{key_filter} AND deleted = 0) WHERE 1"
        ));
    }
    let listed = in_list(
        "trace_id",
        rewritten.iter().map(|row| row.trace_id.as_str()),
    );
    let others = format!(" AND NOT ({})", listed.trim_start_matches(" AND "));
    Ok(format!(
        "(SELECT * FROM span_versions WHERE project_id = {p}{key_filter} AND deleted = 0{others} \
         UNION ALL SELECT * FROM (SELECT * FROM span_versions FINAL \
         WHERE project_id = {p}{key_filter}{listed}) WHERE deleted = 0) WHERE 1"
    ))
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

fn span_column_is_text(column: SpanColumn) -> bool {
    SpanColumn::from_api(column.api_name()).is_some_and(|(_, kind)| kind == FieldType::String)
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
        // Every word must occur in the span's name or its content (input, output, messages
        // and the rest of what it carried, as JSON text); words are literals, never query
        // syntax. No copy of the text is stored for search: it would double what every
        // insert and merge writes, and a scan reads the content as fast.
        for word in search.split_whitespace() {
            let word = string_literal(word);
            clauses.push(format!(
                "(positionCaseInsensitiveUTF8(name, {word}) > 0 \
                 OR positionCaseInsensitiveUTF8(content, {word}) > 0)"
            ));
        }
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

// The read paths of the `SpanStore` methods: each builds its SQL from the pieces above and
// runs it on the client.

/// Spans fetched by key per statement: 250 keys of at most 2 x 256 bytes of ids stay well
/// under ClickHouse's default 256 KiB query size.
const KEYS_PER_FETCH: usize = 250;

/// The `n` of a query selecting one row `count() AS n`.
pub(crate) async fn count(client: &Client, sql: &str) -> Result<u64, StoreError> {
    #[derive(Deserialize)]
    struct Count {
        n: u64,
    }
    let count: Count = client.row(sql).await?;
    Ok(count.n)
}

async fn spans(client: &Client, sql: &str) -> Result<Vec<Span>, StoreError> {
    let rows: Vec<SpanRead> = client.rows(sql).await?;
    rows.into_iter()
        .map(|row| row.into_span().map_err(StoreError::from))
        .collect()
}

/// The spans a query selecting `trace_id, span_id` names, in its order.
///
/// Lists run in two steps because ClickHouse 18.16 reads every selected column of every
/// matching row before it sorts and cuts a page: selecting only the keys first reads the
/// light columns of the project, and the spans' content is then read for the page alone,
/// by primary key (ten times faster at a million spans).
async fn spans_by_key_query(
    client: &Client,
    project: ProjectId,
    key_sql: &str,
) -> Result<Vec<Span>, StoreError> {
    #[derive(Deserialize)]
    struct Key {
        trace_id: String,
        span_id: String,
    }
    let keys: Vec<Key> = client.rows(key_sql).await?;
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut found: HashMap<(String, String), Span> = HashMap::with_capacity(keys.len());
    // In chunks, so no statement outgrows the server's query size limit (256 KiB).
    for chunk in keys.chunks(KEYS_PER_FETCH) {
        let filter = format!(
            "{}{}",
            in_list("trace_id", chunk.iter().map(|k| k.trace_id.as_str())),
            in_list("span_id", chunk.iter().map(|k| k.span_id.as_str()))
        );
        let spans = spans(
            client,
            &format!(
                "SELECT {SPAN_COLUMNS} FROM {}",
                live_spans(project, &filter)
            ),
        )
        .await?;
        for span in spans {
            let key = (
                span.trace_id.as_str().to_owned(),
                span.span_id.as_str().to_owned(),
            );
            found.insert(key, span);
        }
    }
    // A span deleted between the two reads is left out rather than failing the page.
    Ok(keys
        .into_iter()
        .filter_map(|key| found.remove(&(key.trace_id, key.span_id)))
        .collect())
}

#[derive(Deserialize)]
struct Statistics {
    n: u64,
    total_cost: f64,
    total_tokens: u64,
    total_prompt_tokens: u64,
    total_completion_tokens: u64,
    avg_latency: Option<f64>,
    errors: u64,
    p50: f64,
    p90: f64,
    p99: f64,
}

pub(crate) async fn list_spans(
    client: &Client,
    project: ProjectId,
    query: &SpanQuery,
) -> Result<Listing<Span>, StoreError> {
    let mut conditions = span_filter_sql(&query.filter);
    if let Some(as_of) = query.as_of {
        conditions.push_str(&format!(" AND ingested_ns <= {}", as_of.unix_nanos()));
    }
    let source = live_spans_scan(client, project, "").await?;
    let total = count(
        client,
        &format!("SELECT count() AS n FROM {source} AND {conditions}"),
    )
    .await?;
    let items = spans_by_key_query(
        client,
        project,
        &format!(
            "SELECT trace_id, span_id FROM {source} AND {conditions} ORDER BY {} {}",
            span_order(query.sort.column, query.sort.direction),
            page_sql(query.page)
        ),
    )
    .await?;
    Ok(Listing {
        total,
        total_is_exact: true,
        items,
    })
}

pub(crate) async fn scan_spans(
    client: &Client,
    project: ProjectId,
    filter: &SpanFilter,
    after: Option<(TraceId, SpanId)>,
    limit: usize,
) -> Result<Vec<Span>, StoreError> {
    // The position is on key columns, so it narrows the FINAL read itself.
    let key_filter = match &after {
        Some((trace_id, span_id)) => format!(
            " AND (trace_id, span_id) > ({}, {})",
            string_literal(trace_id.as_str()),
            string_literal(span_id.as_str())
        ),
        None => String::new(),
    };
    spans_by_key_query(
        client,
        project,
        &format!(
            "SELECT trace_id, span_id FROM {} AND {} ORDER BY trace_id, span_id LIMIT {limit}",
            live_spans_scan(client, project, &key_filter).await?,
            span_filter_sql(filter),
        ),
    )
    .await
}

pub(crate) async fn get_span(
    client: &Client,
    project: ProjectId,
    trace_id: &TraceId,
    span_id: &SpanId,
) -> Result<Option<Span>, StoreError> {
    let filter = format!(
        "{}{}",
        in_list("trace_id", std::iter::once(trace_id.as_str())),
        in_list("span_id", std::iter::once(span_id.as_str()))
    );
    Ok(spans(
        client,
        &format!(
            "SELECT {SPAN_COLUMNS} FROM {}",
            live_spans(project, &filter)
        ),
    )
    .await?
    .pop())
}

pub(crate) async fn find_spans(
    client: &Client,
    project: ProjectId,
    span_id: &SpanId,
    limit: usize,
) -> Result<Vec<Span>, StoreError> {
    let filter = in_list("span_id", std::iter::once(span_id.as_str()));
    spans_by_key_query(
        client,
        project,
        &format!(
            "SELECT trace_id, span_id FROM {} ORDER BY ingested_ns DESC LIMIT {limit}",
            // The span id is not a prefix of the sorting key: this reads the whole project.
            live_spans_scan(client, project, &filter).await?
        ),
    )
    .await
}

/// Statistics and metrics count finished spans only: a running span has no duration yet (as
/// on SQLite).
pub(crate) const FINISHED_SPANS: &str = "status != 'running'";

pub(crate) async fn span_statistics(
    client: &Client,
    project: ProjectId,
    filter: &SpanFilter,
) -> Result<SpanStatistics, StoreError> {
    // Percentiles are nearest rank (the smallest latency with at least p of the spans at
    // or below it), computed on the server from the sorted latencies, as SQLite does.
    let rank =
        |p: &str| format!("sorted[toUInt64(least(toFloat64(n), greatest(1.0, ceil({p} * n))))]");
    let sql = format!(
        "SELECT count() AS n, sum(ifNull(cost, 0)) AS total_cost, \
         sum(ifNull(total_tokens, 0)) AS total_tokens, \
         sum(ifNull(prompt_tokens, 0)) AS total_prompt_tokens, \
         sum(ifNull(completion_tokens, 0)) AS total_completion_tokens, \
         if(n = 0, NULL, avg(latency)) AS avg_latency, countIf(status = 'error') AS errors, \
         arraySort(groupArray(latency)) AS sorted, {} AS p50, {} AS p90, {} AS p99 \
         FROM {} AND {} AND {FINISHED_SPANS}",
        rank("0.5"),
        rank("0.9"),
        rank("0.99"),
        live_spans_scan(client, project, "").await?,
        span_filter_sql(filter),
    );
    let row: Statistics = client.row(&sql).await?;
    let present = |value: f64| (row.n > 0).then_some(value);
    Ok(SpanStatistics {
        number_of_requests: row.n,
        total_cost: row.total_cost,
        total_tokens: row.total_tokens,
        total_prompt_tokens: row.total_prompt_tokens,
        total_completion_tokens: row.total_completion_tokens,
        avg_latency: row.avg_latency.filter(|_| row.n > 0),
        p50_latency: present(row.p50),
        p90_latency: present(row.p90),
        p99_latency: present(row.p99),
        error_count: row.errors,
    })
}

pub(crate) async fn project_stats(
    client: &Client,
    project: ProjectId,
) -> Result<ProjectStats, StoreError> {
    let traces = super::traces::trace_count(client, project).await?;
    let spans = count(
        client,
        &format!(
            "SELECT count() AS n FROM {}",
            live_spans_scan(client, project, "").await?
        ),
    )
    .await?;
    Ok(ProjectStats { traces, spans })
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
