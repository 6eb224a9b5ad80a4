//! Translation of the core query model into SQLite SQL. User values only ever travel as bound
//! parameters; the SQL text is assembled from fixed fragments chosen by the typed model.

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use tracehouse_core::query::{
    COUNT_CAP, Condition, Direction, FilterValue, Operator, Page, SpanColumn, SpanField,
    SpanFilter, SpanQuery, TraceColumn, TraceQuery,
};
use tracehouse_core::{
    Listing, ProjectId, ProjectStats, Span, SpanId, SpanStatistics, Timestamp, TraceId,
    TraceListItem,
};

use super::SqliteError;
use super::rows::{
    SPAN_COLUMNS, TRACE_COLUMN_COUNT, TRACE_COLUMNS, span_from_row, summary_from_row,
};
use super::schema::FACET_COLUMNS;

/// A WHERE clause under construction: fragments joined by AND, and their parameters.
#[derive(Default)]
pub(crate) struct Where {
    pub(crate) clauses: Vec<String>,
    pub(crate) params: Vec<SqlValue>,
}

impl Where {
    /// Adds a parameter and returns its placeholder.
    pub(crate) fn bind(&mut self, value: SqlValue) -> String {
        self.params.push(value);
        format!("?{}", self.params.len())
    }

    pub(crate) fn text(&self) -> String {
        if self.clauses.is_empty() {
            "1".to_owned()
        } else {
            self.clauses.join(" AND ")
        }
    }
}

fn span_column(column: SpanColumn) -> &'static str {
    match column {
        SpanColumn::TraceId => "s.trace_id",
        SpanColumn::SpanId => "s.span_id",
        SpanColumn::ParentId => "s.parent_id",
        SpanColumn::Name => "s.name",
        SpanColumn::LogType => "s.log_type",
        SpanColumn::Model => "s.model",
        SpanColumn::ProviderId => "s.provider_id",
        SpanColumn::Status => "s.status",
        SpanColumn::StatusCode => "s.status_code",
        SpanColumn::ErrorMessage => "s.error_message",
        SpanColumn::PromptTokens => "s.prompt_tokens",
        SpanColumn::CompletionTokens => "s.completion_tokens",
        SpanColumn::TotalTokens => "s.total_tokens",
        SpanColumn::Cost => "s.cost",
        SpanColumn::Latency => "s.latency",
        SpanColumn::StartTime => "s.start_ns",
        SpanColumn::EndTime => "s.end_ns",
        SpanColumn::CustomerIdentifier => "s.customer_identifier",
        SpanColumn::SessionIdentifier => "s.session_identifier",
        SpanColumn::ThreadIdentifier => "s.thread_identifier",
        SpanColumn::TraceGroupIdentifier => "s.trace_group_identifier",
        SpanColumn::Environment => "s.environment",
        SpanColumn::WorkflowName => "s.workflow_name",
        SpanColumn::Path => "s.path",
    }
}

fn trace_column(column: TraceColumn) -> &'static str {
    match column {
        TraceColumn::TraceId => "t.trace_id",
        TraceColumn::Name => "t.name",
        TraceColumn::CustomerIdentifier => "t.customer_identifier",
        TraceColumn::Environment => "t.environment",
        TraceColumn::TraceGroupIdentifier => "t.trace_group_identifier",
        TraceColumn::SessionIdentifier => "t.session_identifier",
        TraceColumn::ThreadIdentifier => "t.thread_identifier",
        TraceColumn::SpanCount => "t.span_count",
        TraceColumn::LlmCallCount => "t.llm_call_count",
        TraceColumn::ErrorCount => "t.error_count",
        TraceColumn::TotalCost => "t.total_cost",
        TraceColumn::TotalPromptTokens => "t.total_prompt_tokens",
        TraceColumn::TotalCompletionTokens => "t.total_completion_tokens",
        TraceColumn::TotalTokens => "t.total_tokens",
        TraceColumn::Duration => "t.duration",
        TraceColumn::StartTime => "t.start_ns",
        TraceColumn::EndTime => "t.end_ns",
    }
}

fn sql_value(value: &FilterValue) -> SqlValue {
    match value {
        FilterValue::Text(text) => SqlValue::Text(text.clone()),
        FilterValue::Number(number) => SqlValue::Real(*number),
        FilterValue::Time(time) => SqlValue::Integer(time.unix_nanos()),
        FilterValue::Bool(flag) => SqlValue::Integer(i64::from(*flag)),
    }
}

/// `pattern` matched literally inside a LIKE with `ESCAPE '\'`.
fn like_literal(pattern: &str) -> String {
    pattern
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// `pattern` matched literally inside a GLOB (case-sensitive).
fn glob_literal(pattern: &str) -> String {
    pattern
        .chars()
        .map(|c| match c {
            '*' => "[*]".to_owned(),
            '?' => "[?]".to_owned(),
            '[' => "[[]".to_owned(),
            other => other.to_string(),
        })
        .collect()
}

/// One predicate per value for `expr`, for the operators that test a single value.
fn value_predicates(
    expr: &str,
    operator: Operator,
    values: &[FilterValue],
    clause: &mut Where,
) -> Vec<String> {
    values
        .iter()
        .map(|value| match operator {
            Operator::Lt => format!("{expr} < {}", clause.bind(sql_value(value))),
            Operator::Lte => format!("{expr} <= {}", clause.bind(sql_value(value))),
            Operator::Gt => format!("{expr} > {}", clause.bind(sql_value(value))),
            Operator::Gte => format!("{expr} >= {}", clause.bind(sql_value(value))),
            Operator::Contains | Operator::NotContains => {
                format!(
                    "instr({expr}, {}) > 0",
                    clause.bind(SqlValue::Text(value.as_text()))
                )
            }
            Operator::IContains => format!(
                "{expr} LIKE {} ESCAPE '\\'",
                clause.bind(SqlValue::Text(format!(
                    "%{}%",
                    like_literal(&value.as_text())
                )))
            ),
            Operator::StartsWith => format!(
                "{expr} GLOB {}",
                clause.bind(SqlValue::Text(format!(
                    "{}*",
                    glob_literal(&value.as_text())
                )))
            ),
            Operator::EndsWith => format!(
                "{expr} GLOB {}",
                clause.bind(SqlValue::Text(format!(
                    "*{}",
                    glob_literal(&value.as_text())
                )))
            ),
            Operator::Equals | Operator::In | Operator::Not | Operator::NotIn => {
                format!("{expr} = {}", clause.bind(sql_value(value)))
            }
            Operator::Empty | Operator::NotEmpty | Operator::IsNull => "1".to_owned(),
        })
        .collect()
}

fn any_of(predicates: Vec<String>) -> String {
    format!("({})", predicates.join(" OR "))
}

/// A condition on a plain column expression.
pub(crate) fn column_condition<F>(
    expr: &str,
    condition: &Condition<F>,
    clause: &mut Where,
) -> String {
    let operator = condition.operator;
    match operator {
        Operator::Empty => format!("({expr} IS NULL OR {expr} = '')"),
        Operator::NotEmpty => format!("({expr} IS NOT NULL AND {expr} <> '')"),
        Operator::IsNull => match condition.values.first() {
            Some(FilterValue::Bool(false)) => format!("{expr} IS NOT NULL"),
            _ => format!("{expr} IS NULL"),
        },
        Operator::Equals | Operator::In => {
            let placeholders: Vec<String> = condition
                .values
                .iter()
                .map(|v| clause.bind(sql_value(v)))
                .collect();
            format!("{expr} IN ({})", placeholders.join(", "))
        }
        Operator::Not | Operator::NotIn => {
            let placeholders: Vec<String> = condition
                .values
                .iter()
                .map(|v| clause.bind(sql_value(v)))
                .collect();
            format!(
                "({expr} IS NULL OR {expr} NOT IN ({}))",
                placeholders.join(", ")
            )
        }
        Operator::NotContains => {
            let matches = any_of(value_predicates(expr, operator, &condition.values, clause));
            format!("({expr} IS NULL OR NOT {matches})")
        }
        _ => any_of(value_predicates(expr, operator, &condition.values, clause)),
    }
}

/// A condition on a metadata key, answered from the flattened `span_metadata` index.
fn metadata_condition(
    project: ProjectId,
    keys: &[String],
    condition: &Condition<SpanField>,
    clause: &mut Where,
) -> String {
    let project_param = clause.bind(SqlValue::Integer(project.0));
    let key_param = clause.bind(SqlValue::Text(keys.join("__")));
    let rows = format!(
        "SELECT span_rowid FROM span_metadata WHERE project_id = {project_param} AND key = {key_param}"
    );
    let operator = condition.operator;
    let value_matches = |clause: &mut Where| -> String {
        let predicates = condition
            .values
            .iter()
            .map(|value| {
                let column = match value {
                    FilterValue::Number(_) if !operator.is_textual() => "num_value",
                    _ => "text_value",
                };
                let bound = match value {
                    FilterValue::Bool(flag) => FilterValue::Text(flag.to_string()),
                    other => other.clone(),
                };
                value_predicates(column, operator, std::slice::from_ref(&bound), clause).remove(0)
            })
            .collect();
        any_of(predicates)
    };
    let present = "(text_value <> '' OR num_value IS NOT NULL)";
    match operator {
        Operator::Empty => format!("s.rowid NOT IN ({rows} AND {present})"),
        Operator::NotEmpty => format!("s.rowid IN ({rows} AND {present})"),
        Operator::IsNull => match condition.values.first() {
            Some(FilterValue::Bool(false)) => format!("s.rowid IN ({rows})"),
            _ => format!("s.rowid NOT IN ({rows})"),
        },
        Operator::Not | Operator::NotIn | Operator::NotContains => {
            format!("s.rowid NOT IN ({rows} AND {})", value_matches(clause))
        }
        _ => format!("s.rowid IN ({rows} AND {})", value_matches(clause)),
    }
}

/// An FTS5 query matching every word of `text` literally (each word quoted), or `None`.
fn fts_query(text: &str) -> Option<String> {
    let words: Vec<String> = text
        .split_whitespace()
        .map(|word| format!("\"{}\"", word.replace('"', "\"\"")))
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

/// Adds the clauses of a span filter over alias `s`.
/// Statistics and metrics count finished spans only: a running span has no duration yet, and
/// the hourly rollups (which skip running spans) must answer like the spans do.
pub(crate) const FINISHED_SPANS: &str = "s.status <> 'running'";

pub(crate) fn span_filter_clauses(project: ProjectId, filter: &SpanFilter, clause: &mut Where) {
    let project_param = clause.bind(SqlValue::Integer(project.0));
    // Metadata and search conditions select a few rowids from their own indexes; the `+`
    // keeps SQLite from preferring the project index and scanning every span of the project.
    let selective = filter.search.is_some()
        || filter.conditions.iter().any(|c| {
            matches!(c.field, SpanField::Metadata(_))
                && !c.operator.is_negated()
                && !matches!(c.operator, Operator::Empty | Operator::IsNull)
        });
    let column = if selective {
        "+s.project_id"
    } else {
        "s.project_id"
    };
    clause.clauses.push(format!("{column} = {project_param}"));
    if let Some(from) = filter.start_from {
        let p = clause.bind(SqlValue::Integer(from.unix_nanos()));
        clause.clauses.push(format!("s.start_ns >= {p}"));
    }
    if let Some(to) = filter.start_to {
        let p = clause.bind(SqlValue::Integer(to.unix_nanos()));
        clause.clauses.push(format!("s.start_ns <= {p}"));
    }
    for condition in &filter.conditions {
        let sql = match &condition.field {
            SpanField::Column(column) => column_condition(span_column(*column), condition, clause),
            SpanField::Metadata(keys) => metadata_condition(project, keys, condition, clause),
        };
        clause.clauses.push(sql);
    }
    if let Some(query) = filter.search.as_deref().and_then(fts_query) {
        let p = clause.bind(SqlValue::Text(query));
        clause.clauses.push(format!(
            "s.rowid IN (SELECT rowid FROM span_search WHERE span_search MATCH {p})"
        ));
    }
}

/// Binds LIMIT and OFFSET of a page; returns their placeholders.
pub(crate) fn page_clause(page: Page, clause: &mut Where) -> String {
    let limit = clause.bind(SqlValue::Integer(
        i64::try_from(page.size).unwrap_or(i64::MAX),
    ));
    let offset = clause.bind(SqlValue::Integer(
        i64::try_from(page.offset()).unwrap_or(i64::MAX),
    ));
    format!("LIMIT {limit} OFFSET {offset}")
}

/// Runs a query and maps every row.
pub(crate) fn collect_rows<T>(
    connection: &Connection,
    sql: &str,
    params: &[SqlValue],
    map: impl Fn(&rusqlite::Row<'_>) -> Result<T, SqliteError>,
) -> Result<Vec<T>, SqliteError> {
    let mut statement = connection.prepare_cached(sql)?;
    let mut rows = statement.query(params_from_iter(params.iter()))?;
    let mut items = Vec::new();
    while let Some(row) = rows.next()? {
        items.push(map(row)?);
    }
    Ok(items)
}

pub(crate) fn direction(direction: Direction) -> &'static str {
    match direction {
        Direction::Ascending => "ASC",
        Direction::Descending => "DESC",
    }
}

fn prefixed(columns: &str, alias: &str) -> String {
    columns
        .split(',')
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn count(
    connection: &Connection,
    sql: &str,
    params: &[SqlValue],
) -> Result<u64, SqliteError> {
    let total: i64 = connection
        .prepare_cached(sql)?
        .query_row(params_from_iter(params.iter()), |row| row.get(0))?;
    Ok(u64::try_from(total).unwrap_or(0))
}

/// A list's count and whether it is exact: the project's total when the list is unfiltered
/// (`unfiltered` names which), else the rows `from_where` selects counted up to the page's
/// count limit.
fn count_matches(
    connection: &Connection,
    project: ProjectId,
    unfiltered: Option<Total>,
    from_where: &str,
    params: &[SqlValue],
    page: Page,
) -> Result<(u64, bool), SqliteError> {
    match unfiltered {
        Some(total) => Ok((project_total(connection, project, total)?, true)),
        None => count_capped(connection, from_where, params, page.count_limit()),
    }
}

/// The rows `from_where` (`FROM ... WHERE ...`) selects, counted up to `limit`: the count and
/// whether it is exact. Past the limit counting stops, so a count never walks every match.
fn count_capped(
    connection: &Connection,
    from_where: &str,
    params: &[SqlValue],
    limit: u64,
) -> Result<(u64, bool), SqliteError> {
    let counted = count(
        connection,
        &format!(
            "SELECT count(*) FROM (SELECT 1 {from_where} LIMIT {})",
            limit.saturating_add(1)
        ),
        params,
    )?;
    Ok(if counted > limit {
        (limit, false)
    } else {
        (counted, true)
    })
}

/// The `as_of` bound a list must apply, or `None` when no row of the project can be newer
/// than it: the writer stamps each project's last commit, and a bound at or past it excludes
/// nothing. A walk's first page (bound "now") then reads its index entries without checking
/// each row's first-seen time; later pages of a walk during ingest still check it.
fn snapshot_bound(
    connection: &Connection,
    project: ProjectId,
    as_of: Option<Timestamp>,
) -> Result<Option<Timestamp>, SqliteError> {
    let Some(as_of) = as_of else {
        return Ok(None);
    };
    let last_write: Option<i64> = connection
        .prepare_cached("SELECT last_write_ns FROM project_totals WHERE project_id = ?1")?
        .query_row(params![project.0], |row| row.get(0))
        .optional()?;
    Ok(match last_write {
        Some(last_write) if last_write <= as_of.unix_nanos() => None,
        _ => Some(as_of),
    })
}

/// What `project_totals` counts.
#[derive(Clone, Copy)]
enum Total {
    Spans,
    Traces,
}

/// A project's span or trace count as the writer keeps it.
fn project_total(
    connection: &Connection,
    project: ProjectId,
    total: Total,
) -> Result<u64, SqliteError> {
    let column = match total {
        Total::Spans => "spans",
        Total::Traces => "traces",
    };
    let counted: Option<i64> = connection
        .prepare_cached(&format!(
            "SELECT {column} FROM project_totals WHERE project_id = ?1"
        ))?
        .query_row(params![project.0], |row| row.get(0))
        .optional()?;
    Ok(counted.and_then(|n| u64::try_from(n).ok()).unwrap_or(0))
}

fn parse_json_column(text: Option<String>) -> Result<Option<serde_json::Value>, SqliteError> {
    text.map(|t| serde_json::from_str(&t))
        .transpose()
        .map_err(SqliteError::from)
}

/// The one equality condition on a faceted span field that a trace filter consists of, if
/// that is all it is; such a filter is answered from `trace_facets` instead of scanning spans.
/// Several span conditions must hold on the same span, which facets cannot tell, so they
/// take the general path.
fn facet_condition(filter: &SpanFilter) -> Option<(SpanColumn, &[FilterValue])> {
    let [condition] = filter.conditions.as_slice() else {
        return None;
    };
    if filter.search.is_some() || filter.start_from.is_some() || filter.start_to.is_some() {
        return None;
    }
    let SpanField::Column(column) = condition.field else {
        return None;
    };
    let text_only = condition
        .values
        .iter()
        .all(|v| matches!(v, FilterValue::Text(_)));
    (FACET_COLUMNS.contains(&column)
        && matches!(condition.operator, Operator::Equals | Operator::In)
        && text_only)
        .then_some((column, condition.values.as_slice()))
}

/// A newest-first span list narrowed by one metadata value: where its rows come from.
struct MetadataDriver {
    from: &'static str,
    /// `text_value` or `num_value`.
    column: &'static str,
    key: String,
    value: SqlValue,
    /// The filter without the metadata condition.
    rest: SpanFilter,
}

/// For a newest-first list (the default order) whose filter holds a metadata equality with one
/// value: the list walks that value's metadata rows, which carry their span's start, from the
/// newest and stops after the page, instead of collecting every matching span to sort them.
fn newest_first_metadata(
    filter: &SpanFilter,
    column: SpanColumn,
    direction: Direction,
) -> Option<MetadataDriver> {
    if column != SpanColumn::StartTime
        || direction != Direction::Descending
        || filter.search.is_some()
    {
        return None;
    }
    let position = filter.conditions.iter().position(|condition| {
        matches!(condition.field, SpanField::Metadata(_))
            && condition.operator == Operator::Equals
            && condition.values.len() == 1
    })?;
    let condition = &filter.conditions[position];
    let SpanField::Metadata(keys) = &condition.field else {
        return None;
    };
    let (index, column, value) = match condition.values.first()? {
        FilterValue::Text(text) => (
            "span_metadata_by_text",
            "text_value",
            SqlValue::Text(text.clone()),
        ),
        FilterValue::Bool(flag) => (
            "span_metadata_by_text",
            "text_value",
            SqlValue::Text(flag.to_string()),
        ),
        FilterValue::Number(number) => (
            "span_metadata_by_number",
            "num_value",
            SqlValue::Real(*number),
        ),
        _ => return None,
    };
    let from = match index {
        "span_metadata_by_number" => {
            "span_metadata m INDEXED BY span_metadata_by_number CROSS JOIN spans s ON s.rowid = m.span_rowid"
        }
        _ => {
            "span_metadata m INDEXED BY span_metadata_by_text CROSS JOIN spans s ON s.rowid = m.span_rowid"
        }
    };
    let mut rest = filter.clone();
    rest.conditions.remove(position);
    Some(MetadataDriver {
        from,
        column,
        key: keys.join("__"),
        value,
        rest,
    })
}

/// Spans joined to their full-text rows, walked from the newest match backwards.
const SEARCH_DRIVEN_SPANS: &str = "span_search CROSS JOIN spans s ON s.rowid = span_search.rowid";

/// For a search listed newest first (the default order): the FTS5 query and the rest of the
/// filter. Such a list walks the full-text index from its newest row (rowids grow as spans
/// arrive) and stops after the page, so a common word is as fast as a rare one; matches come
/// newest received first. Other orders rank the whole match set.
fn newest_first_search(
    filter: &SpanFilter,
    column: SpanColumn,
    direction: Direction,
) -> Option<(String, SpanFilter)> {
    if column != SpanColumn::StartTime || direction != Direction::Descending {
        return None;
    }
    let words = filter.search.as_deref().and_then(fts_query)?;
    let mut rest = filter.clone();
    rest.search = None;
    Some((words, rest))
}

/// A newest-first trace list searched by words (with optional other span conditions and no
/// trace conditions): the traces of the newest matching spans, in that order, found by walking
/// the full-text index backwards until the page and, within a budget of [`COUNT_CAP`] matching
/// spans, the count are known. `None` when the query takes the general path.
fn search_traces_newest_first(
    connection: &Connection,
    project: ProjectId,
    query: &TraceQuery,
) -> Result<Option<Listing<TraceListItem>>, SqliteError> {
    if !query.conditions.is_empty()
        || query.start_from.is_some()
        || query.start_to.is_some()
        || query.sort.column != TraceColumn::StartTime
    {
        return Ok(None);
    }
    let Some((words, rest)) =
        newest_first_search(&query.spans, SpanColumn::StartTime, query.sort.direction)
    else {
        return Ok(None);
    };
    let mut clause = Where::default();
    span_filter_clauses(project, &rest, &mut clause);
    let words = clause.bind(SqlValue::Text(words));
    clause.clauses.push(format!("span_search MATCH {words}"));
    if let Some(as_of) = snapshot_bound(connection, project, query.as_of)? {
        let p = clause.bind(SqlValue::Integer(as_of.unix_nanos()));
        clause.clauses.push(format!("s.first_seen_ns <= {p}"));
    }
    let sql = format!(
        "SELECT s.trace_id FROM {SEARCH_DRIVEN_SPANS} WHERE {} ORDER BY span_search.rowid DESC",
        clause.text()
    );
    let wanted =
        usize::try_from(query.page.offset().saturating_add(query.page.size)).unwrap_or(usize::MAX);
    let mut statement = connection.prepare_cached(&sql)?;
    let mut rows = statement.query(params_from_iter(clause.params.iter()))?;
    let mut seen = std::collections::HashSet::new();
    let mut ordered: Vec<String> = Vec::new();
    let mut scanned = 0u64;
    let mut exhausted = true;
    while let Some(row) = rows.next()? {
        let trace_id: String = row.get(0)?;
        scanned += 1;
        if seen.insert(trace_id.clone()) {
            ordered.push(trace_id);
        }
        // One trace past the page tells whether a next page exists; past that, counting
        // goes on only within the budget.
        if ordered.len() > wanted && scanned >= COUNT_CAP {
            exhausted = false;
            break;
        }
    }
    let offset = usize::try_from(query.page.offset()).unwrap_or(usize::MAX);
    let size = usize::try_from(query.page.size).unwrap_or(usize::MAX);
    let page: Vec<&String> = ordered.iter().skip(offset).take(size).collect();
    let mut items = Vec::with_capacity(page.len());
    if !page.is_empty() {
        let mut load = Where::default();
        let project_param = load.bind(SqlValue::Integer(project.0));
        let ids: Vec<String> = page
            .iter()
            .map(|id| load.bind(SqlValue::Text((*id).clone())))
            .collect();
        let sql = format!(
            "SELECT {columns}, span_content(r.content) -> '$.input', span_content(r.content) -> '$.output', span_content(r.content) -> '$.metadata' \
             FROM traces t LEFT JOIN spans r \
               ON r.project_id = t.project_id AND r.trace_id = t.trace_id AND r.span_id = t.root_span_id \
             WHERE t.project_id = {project_param} AND t.trace_id IN ({})",
            ids.join(", "),
            columns = prefixed(TRACE_COLUMNS, "t"),
        );
        let mut found = collect_rows(connection, &sql, &load.params, trace_list_item)?;
        for id in &page {
            if let Some(at) = found
                .iter()
                .position(|item| item.summary.trace_id.as_str() == id.as_str())
            {
                items.push(found.swap_remove(at));
            }
        }
    }
    Ok(Some(Listing {
        total: ordered.len() as u64,
        total_is_exact: exhausted,
        items,
    }))
}

fn trace_list_item(row: &rusqlite::Row<'_>) -> Result<TraceListItem, SqliteError> {
    Ok(TraceListItem {
        summary: summary_from_row(row)?,
        input: parse_json_column(row.get(TRACE_COLUMN_COUNT)?)?,
        output: parse_json_column(row.get(TRACE_COLUMN_COUNT + 1)?)?,
        metadata: parse_json_column(row.get(TRACE_COLUMN_COUNT + 2)?)?,
    })
}

/// Adds the clauses of a trace query over alias `t` that need no span: project, time range,
/// snapshot and conditions on trace aggregates.
pub(crate) fn trace_clauses(
    connection: &Connection,
    project: ProjectId,
    query: &TraceQuery,
    clause: &mut Where,
) -> Result<(), SqliteError> {
    let project_param = clause.bind(SqlValue::Integer(project.0));
    clause
        .clauses
        .push(format!("t.project_id = {project_param}"));
    if let Some(from) = query.start_from {
        let p = clause.bind(SqlValue::Integer(from.unix_nanos()));
        clause.clauses.push(format!("t.start_ns >= {p}"));
    }
    if let Some(to) = query.start_to {
        let p = clause.bind(SqlValue::Integer(to.unix_nanos()));
        clause.clauses.push(format!("t.start_ns <= {p}"));
    }
    if let Some(as_of) = snapshot_bound(connection, project, query.as_of)? {
        let p = clause.bind(SqlValue::Integer(as_of.unix_nanos()));
        clause.clauses.push(format!("t.first_seen_ns <= {p}"));
    }
    for condition in &query.conditions {
        let sql = column_condition(trace_column(condition.field), condition, clause);
        clause.clauses.push(sql);
    }
    Ok(())
}

/// Restricts traces (alias `t`) to those with a span matching `filter`, when it filters.
pub(crate) fn traces_with_matching_span(
    project: ProjectId,
    filter: &SpanFilter,
    clause: &mut Where,
) {
    if filter.is_empty() {
        return;
    }
    let mut spans = Where {
        clauses: Vec::new(),
        params: std::mem::take(&mut clause.params),
    };
    span_filter_clauses(project, filter, &mut spans);
    clause.params = spans.params;
    clause.clauses.push(format!(
        "t.trace_id IN (SELECT s.trace_id FROM spans s WHERE {})",
        spans.clauses.join(" AND ")
    ));
}

pub(crate) fn list_traces(
    connection: &Connection,
    project: ProjectId,
    query: &TraceQuery,
) -> Result<Listing<TraceListItem>, SqliteError> {
    if let Some(listing) = search_traces_newest_first(connection, project, query)? {
        return Ok(listing);
    }
    let mut clause = Where::default();
    trace_clauses(connection, project, query, &mut clause)?;
    // The trace rows come from `traces` alone, or, for a newest-first list narrowed to one
    // value of a faceted span field, from that value's facet rows in time order, so the page is
    // read off one index range and the scan stops after it.
    let mut from = "traces t".to_owned();
    let mut order_columns = (trace_column(query.sort.column), "t.trace_id");
    if let Some(facet) = facet_condition(&query.spans) {
        let project_param = clause.bind(SqlValue::Integer(project.0));
        let facet_param = clause.bind(SqlValue::Text(facet.0.api_name().to_owned()));
        let values: Vec<String> = facet.1.iter().map(|v| clause.bind(sql_value(v))).collect();
        // Facet rows carry their trace's start, so the trace time range narrows the index range.
        let mut range = String::new();
        if let Some(from) = query.start_from {
            range.push_str(&format!(
                " AND f.start_ns >= {}",
                clause.bind(SqlValue::Integer(from.unix_nanos()))
            ));
        }
        if let Some(to) = query.start_to {
            range.push_str(&format!(
                " AND f.start_ns <= {}",
                clause.bind(SqlValue::Integer(to.unix_nanos()))
            ));
        }
        if let ([value], TraceColumn::StartTime) = (values.as_slice(), query.sort.column) {
            from = "trace_facets f INDEXED BY trace_facets_lookup CROSS JOIN traces t \
                    ON t.project_id = f.project_id AND t.trace_id = f.trace_id"
                .to_owned();
            clause.clauses.push(format!(
                "f.project_id = {project_param} AND f.facet = {facet_param} AND f.value = {value}{range}"
            ));
            order_columns = ("f.start_ns", "f.trace_id");
        } else {
            clause.clauses.push(format!(
                "t.trace_id IN (SELECT f.trace_id FROM trace_facets f WHERE f.project_id = {project_param} \
                 AND f.facet = {facet_param} AND f.value IN ({}){range})",
                values.join(", ")
            ));
        }
    } else {
        traces_with_matching_span(project, &query.spans, &mut clause);
    }
    let where_sql = clause.text();
    let unfiltered = query.conditions.is_empty()
        && query.spans.is_empty()
        && query.start_from.is_none()
        && query.start_to.is_none();
    let (total, total_is_exact) = count_matches(
        connection,
        project,
        unfiltered.then_some(Total::Traces),
        &format!("FROM {from} WHERE {where_sql}"),
        &clause.params,
        query.page,
    )?;

    let order = direction(query.sort.direction);
    let sql = format!(
        "SELECT {columns}, span_content(r.content) -> '$.input', span_content(r.content) -> '$.output', span_content(r.content) -> '$.metadata' \
         FROM {from} LEFT JOIN spans r \
           ON r.project_id = t.project_id AND r.trace_id = t.trace_id AND r.span_id = t.root_span_id \
         WHERE {where_sql} ORDER BY {sort} {order}, {tie} {order} {page}",
        columns = prefixed(TRACE_COLUMNS, "t"),
        sort = order_columns.0,
        tie = order_columns.1,
        page = page_clause(query.page, &mut clause),
    );
    let items = collect_rows(connection, &sql, &clause.params, trace_list_item)?;
    Ok(Listing {
        total,
        total_is_exact,
        items,
    })
}

pub(crate) fn list_spans(
    connection: &Connection,
    project: ProjectId,
    query: &SpanQuery,
) -> Result<Listing<Span>, SqliteError> {
    let mut clause = Where::default();
    let newest_matches =
        newest_first_search(&query.filter, query.sort.column, query.sort.direction);
    let (from, order_by) = match &newest_matches {
        Some((words, rest)) => {
            span_filter_clauses(project, rest, &mut clause);
            let words = clause.bind(SqlValue::Text(words.clone()));
            clause.clauses.push(format!("span_search MATCH {words}"));
            (SEARCH_DRIVEN_SPANS, "span_search.rowid DESC".to_owned())
        }
        None => match newest_first_metadata(&query.filter, query.sort.column, query.sort.direction)
        {
            Some(driver) => {
                span_filter_clauses(project, &driver.rest, &mut clause);
                let project_param = clause.bind(SqlValue::Integer(project.0));
                let key = clause.bind(SqlValue::Text(driver.key));
                let value = clause.bind(driver.value);
                clause.clauses.push(format!(
                    "m.project_id = {project_param} AND m.key = {key} AND m.{} = {value}",
                    driver.column
                ));
                (
                    driver.from,
                    "m.start_ns DESC, s.trace_id DESC, s.span_id DESC".to_owned(),
                )
            }
            None => {
                span_filter_clauses(project, &query.filter, &mut clause);
                let order = direction(query.sort.direction);
                (
                    "spans s",
                    format!(
                        "{sort} {order}, s.trace_id {order}, s.span_id {order}",
                        sort = span_column(query.sort.column)
                    ),
                )
            }
        },
    };
    if let Some(as_of) = snapshot_bound(connection, project, query.as_of)? {
        let p = clause.bind(SqlValue::Integer(as_of.unix_nanos()));
        clause.clauses.push(format!("s.first_seen_ns <= {p}"));
    }
    let where_sql = clause.text();
    let (total, total_is_exact) = count_matches(
        connection,
        project,
        query.filter.is_empty().then_some(Total::Spans),
        &format!("FROM {from} WHERE {where_sql}"),
        &clause.params,
        query.page,
    )?;
    let sql = format!(
        "SELECT {columns} FROM {from} WHERE {where_sql} ORDER BY {order_by} {page}",
        columns = prefixed(SPAN_COLUMNS, "s"),
        page = page_clause(query.page, &mut clause),
    );
    let items = collect_rows(connection, &sql, &clause.params, span_from_row)?;
    Ok(Listing {
        total,
        total_is_exact,
        items,
    })
}

pub(crate) fn scan_spans(
    connection: &Connection,
    project: ProjectId,
    filter: &SpanFilter,
    after: Option<&(TraceId, SpanId)>,
    limit: usize,
) -> Result<Vec<Span>, SqliteError> {
    let mut clause = Where::default();
    span_filter_clauses(project, filter, &mut clause);
    if let Some((trace_id, span_id)) = after {
        let trace = clause.bind(SqlValue::Text(trace_id.as_str().to_owned()));
        let span = clause.bind(SqlValue::Text(span_id.as_str().to_owned()));
        clause
            .clauses
            .push(format!("(s.trace_id, s.span_id) > ({trace}, {span})"));
    }
    let limit = clause.bind(SqlValue::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
    let sql = format!(
        "SELECT {columns} FROM spans s WHERE {where_sql} ORDER BY s.trace_id, s.span_id LIMIT {limit}",
        columns = prefixed(SPAN_COLUMNS, "s"),
        where_sql = clause.text(),
    );
    collect_rows(connection, &sql, &clause.params, span_from_row)
}

pub(crate) fn get_span(
    connection: &Connection,
    project: ProjectId,
    trace_id: &TraceId,
    span_id: &SpanId,
) -> Result<Option<Span>, SqliteError> {
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {SPAN_COLUMNS} FROM spans WHERE project_id = ?1 AND trace_id = ?2 AND span_id = ?3"
    ))?;
    let mut rows = statement.query(params![project.0, trace_id.as_str(), span_id.as_str()])?;
    rows.next()?.map(span_from_row).transpose()
}

pub(crate) fn find_spans(
    connection: &Connection,
    project: ProjectId,
    span_id: &SpanId,
    limit: usize,
) -> Result<Vec<Span>, SqliteError> {
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {SPAN_COLUMNS} FROM spans WHERE project_id = ?1 AND span_id = ?2 \
         ORDER BY ingested_ns DESC LIMIT ?3"
    ))?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = statement.query_map(params![project.0, span_id.as_str(), limit], |row| {
        Ok(span_from_row(row))
    })?;
    let mut spans = Vec::new();
    for row in rows {
        spans.push(row??);
    }
    Ok(spans)
}

pub(crate) fn span_statistics(
    connection: &Connection,
    project: ProjectId,
    filter: &SpanFilter,
) -> Result<SpanStatistics, SqliteError> {
    if let Some(statistics) = super::metrics::summary_from_rollups(connection, project, filter)? {
        return Ok(statistics);
    }
    let mut clause = Where::default();
    span_filter_clauses(project, filter, &mut clause);
    clause.clauses.push(FINISHED_SPANS.to_owned());
    let where_sql = clause.text();
    let sql = format!(
        "SELECT count(*), total(s.cost), total(s.total_tokens), total(s.prompt_tokens), \
         total(s.completion_tokens), avg(s.latency), total(s.status = 'error') FROM spans s WHERE {where_sql}"
    );
    let mut statistics = connection.prepare_cached(&sql)?.query_row(
        params_from_iter(clause.params.iter()),
        |row| {
            let whole = |value: f64| value.max(0.0) as u64;
            Ok(SpanStatistics {
                number_of_requests: u64::try_from(row.get::<_, i64>(0)?).unwrap_or(0),
                total_cost: row.get(1)?,
                total_tokens: whole(row.get(2)?),
                total_prompt_tokens: whole(row.get(3)?),
                total_completion_tokens: whole(row.get(4)?),
                avg_latency: row.get(5)?,
                p50_latency: None,
                p90_latency: None,
                p99_latency: None,
                error_count: whole(row.get(6)?),
            })
        },
    )?;
    if statistics.number_of_requests > 0 {
        let n = statistics.number_of_requests;
        let offset = clause.bind(SqlValue::Integer(0));
        let offset_index = clause.params.len() - 1;
        let sql = format!(
            "SELECT s.latency FROM spans s WHERE {where_sql} ORDER BY s.latency LIMIT 1 OFFSET {offset}"
        );
        let mut statement = connection.prepare_cached(&sql)?;
        let mut percentile = |p: f64| -> Result<Option<f64>, SqliteError> {
            // Nearest rank: the smallest latency with at least p of the spans at or below it.
            let rank = ((p * n as f64).ceil() as u64).clamp(1, n) - 1;
            clause.params[offset_index] = SqlValue::Integer(i64::try_from(rank).unwrap_or(0));
            Ok(Some(statement.query_row(
                params_from_iter(clause.params.iter()),
                |row| row.get(0),
            )?))
        };
        statistics.p50_latency = percentile(0.5)?;
        statistics.p90_latency = percentile(0.9)?;
        statistics.p99_latency = percentile(0.99)?;
    }
    Ok(statistics)
}

pub(crate) fn project_stats(
    connection: &Connection,
    project: ProjectId,
) -> Result<ProjectStats, SqliteError> {
    Ok(ProjectStats {
        traces: project_total(connection, project, Total::Traces)?,
        spans: project_total(connection, project, Total::Spans)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_patterns_escape_wildcards() {
        assert_eq!(like_literal("50%_off\\"), "50\\%\\_off\\\\");
        assert_eq!(glob_literal("a*b?[c]"), "a[*]b[?][[]c]");
        assert_eq!(
            fts_query("  hello \"world\" "),
            Some("\"hello\" \"\"\"world\"\"\"".to_owned())
        );
        assert_eq!(fts_query("   "), None);
    }
}
