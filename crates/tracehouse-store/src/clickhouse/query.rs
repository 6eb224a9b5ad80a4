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
use super::rows::{SPAN_COLUMNS, SpanRead, SpanVersionRead, VERSION_COLUMNS};

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
    let rewritten = rewritten_traces(client, project, None).await?;
    Ok(scan_source(project, key_filter, None, &rewritten))
}

/// The traces with a span written more than once, among those with a span starting at or
/// after `since` (all with `None`); `Rewritten::TooMany` past [`REWRITTEN_TRACES_LISTED`].
/// The answer for a window also serves any narrower window: collapsing a trace that needed
/// no collapsing costs time, not correctness.
pub(crate) async fn rewritten_traces(
    client: &Client,
    project: ProjectId,
    since: Option<i64>,
) -> Result<Rewritten, ClickHouseError> {
    #[derive(Deserialize)]
    struct Row {
        trace_id: String,
    }
    let p = project.0;
    // `GLOBAL`: on a cluster both tables are distributed, and ClickHouse refuses a subquery
    // over one inside another's `IN` unless it is run once and shipped.
    let window_traces = since
        .map(|since| {
            format!(
                " AND trace_id GLOBAL IN (SELECT trace_id FROM span_versions \
                 PREWHERE start_ns >= {since} WHERE project_id = {p})"
            )
        })
        .unwrap_or_default();
    let rows: Vec<Row> = client
        .rows(&format!(
            "SELECT trace_id FROM trace_span_counts WHERE project_id = {p}{window_traces} \
             GROUP BY trace_id \
             HAVING countMerge(rows) > uniqMerge(spans) OR countMerge(rows) > {} LIMIT {}",
            super::schema::UNIQ_EXACT_UP_TO,
            REWRITTEN_TRACES_LISTED + 1
        ))
        .await?;
    Ok(if rows.len() > REWRITTEN_TRACES_LISTED {
        Rewritten::TooMany
    } else {
        Rewritten::Listed(rows.into_iter().map(|row| row.trace_id).collect())
    })
}

/// Which traces a scan must collapse with `FINAL`.
pub(crate) enum Rewritten {
    /// These (possibly none).
    Listed(Vec<String>),
    /// So many that the whole range is collapsed.
    TooMany,
}

/// The live-spans source of [`live_spans_scan`] for a known [`Rewritten`] answer.
///
/// With `since`, only spans starting at or after it are live here: the rows written once are
/// narrowed by `PREWHERE` (recent traces lie together in the sort order, so this reads their
/// granules rather than the table), and the rewritten traces' rows are narrowed after `FINAL`,
/// so an older version inside the window never stands in for a latest one outside it.
fn scan_source(
    project: ProjectId,
    key_filter: &str,
    since: Option<i64>,
    rewritten: &Rewritten,
) -> String {
    let p = project.0;
    let (prewhere, outer) = match since {
        Some(since) => (
            format!(" PREWHERE start_ns >= {since}"),
            format!("start_ns >= {since}"),
        ),
        None => (String::new(), "1".to_owned()),
    };
    let traces = match rewritten {
        Rewritten::TooMany => return format!("{} AND {outer}", live_spans(project, key_filter)),
        Rewritten::Listed(traces) if traces.is_empty() => {
            return format!(
                "(SELECT * FROM span_versions{prewhere} WHERE project_id = {p}{key_filter} \
                 AND deleted = 0) WHERE {outer}"
            );
        }
        Rewritten::Listed(traces) => traces,
    };
    let listed = in_list("trace_id", traces.iter().map(String::as_str));
    let others = format!(" AND NOT ({})", listed.trim_start_matches(" AND "));
    format!(
        "(SELECT * FROM span_versions{prewhere} WHERE project_id = {p}{key_filter} \
         AND deleted = 0{others} \
         UNION ALL SELECT * FROM (SELECT * FROM span_versions FINAL \
         WHERE project_id = {p}{key_filter}{listed}) WHERE deleted = 0) WHERE {outer}"
    )
}

/// Rows of `trace_starts` (about one per trace per request that carried it) behind each
/// window a newest-first scan tries before reading everything: a few hundred traces' spans,
/// then ten and a hundred times more.
const RECENT_WINDOW_ROWS: [u64; 3] = [500, 5_000, 50_000];

/// How far back from now [`recent_windows`] looks for its bounds before it reads the whole
/// index: an hour, a day, a week.
const RECENT_HORIZONS_NS: [i64; 3] = [
    3_600 * 1_000_000_000,
    86_400 * 1_000_000_000,
    7 * 86_400 * 1_000_000_000,
];

/// Lower start bounds of growing windows of a project's newest spans, for newest-first reads
/// that can stop once a window holds their page. Taken from `trace_starts`, whose sort order
/// is the start: the rows of the last hour (else day, else week) are read, not the index, so
/// this costs what recent traffic holds, not what the project has kept. When the horizon holds
/// too few rows for every window, the horizon itself is the last bound. Empty when the project
/// is small enough that one read of everything is as cheap.
pub(crate) async fn recent_windows(
    client: &Client,
    project: ProjectId,
) -> Result<Vec<i64>, ClickHouseError> {
    #[derive(Deserialize)]
    struct Windows {
        bounds: Vec<i64>,
        rows: u64,
    }
    let last = RECENT_WINDOW_ROWS[RECENT_WINDOW_ROWS.len() - 1];
    let picks: Vec<String> = RECENT_WINDOW_ROWS
        .iter()
        .map(|rows| format!("starts[{rows}]"))
        .collect();
    let now = crate::now_ns();
    let horizons = RECENT_HORIZONS_NS
        .iter()
        .map(|back| Some(now.saturating_sub(*back)))
        .chain([None]);
    for horizon in horizons {
        let range = horizon
            .map(|lower| format!(" AND start_ns >= {lower}"))
            .unwrap_or_default();
        // An index past the array's end reads 0: that window would hold everything read.
        let windows: Windows = client
            .row(&format!(
                "SELECT arrayFilter(bound -> bound != 0, [{}]) AS bounds, length(starts) AS rows \
                 FROM (SELECT groupArray(start_ns) AS starts FROM (SELECT start_ns \
                 FROM trace_starts WHERE project_id = {}{range} AND deleted = 0 \
                 ORDER BY start_ns DESC LIMIT {last}))",
                picks.join(", "),
                project.0
            ))
            .await?;
        let mut bounds = windows.bounds;
        match horizon {
            Some(lower) if windows.rows >= RECENT_WINDOW_ROWS[0] => {
                if windows.rows < last {
                    bounds.push(lower);
                }
                return Ok(bounds);
            }
            Some(_) => {}
            None => return Ok(bounds),
        }
    }
    Ok(Vec::new())
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
    let keys: Vec<SpanKey> = client.rows(key_sql).await?;
    spans_by_keys(client, project, keys).await
}

/// A span's primary key, as the first step of a list selects it.
#[derive(Deserialize)]
struct SpanKey {
    trace_id: String,
    span_id: String,
}

/// The live spans of `keys`, in their order.
async fn spans_by_keys(
    client: &Client,
    project: ProjectId,
    keys: Vec<SpanKey>,
) -> Result<Vec<Span>, StoreError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut found: HashMap<(String, String), Span> = HashMap::with_capacity(keys.len());
    // In chunks, so no statement outgrows the server's query size limit (256 KiB). Every
    // version of the page's spans is read by primary key and collapsed here: `FINAL` would
    // merge the granules' rows in one thread, several times slower for the same rows.
    for chunk in keys.chunks(KEYS_PER_FETCH) {
        let rows: Vec<SpanVersionRead> = client
            .rows(&format!(
                "SELECT {SPAN_COLUMNS}, {VERSION_COLUMNS} FROM span_versions \
                 PREWHERE project_id = {}{}{}",
                project.0,
                in_list("trace_id", chunk.iter().map(|k| k.trace_id.as_str())),
                in_list("span_id", chunk.iter().map(|k| k.span_id.as_str()))
            ))
            .await?;
        for (trace_id, trace) in super::traces::collapse(rows)? {
            for span in trace.spans {
                found.insert((trace_id.clone(), span.span_id.as_str().to_owned()), span);
            }
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

/// A page of spans, and its count: exact when the list is unfiltered, else counted up to
/// [`Page::count_limit`].
///
/// Newest first (the default and the viewer's order) the page is looked for in windows of
/// recent spans ([`recent_windows`]) before the whole project: a window holding the page's
/// last row holds every row before it, since all it leaves out starts earlier. A filtered
/// count is tried in the widest window first: past the limit there, the lower bound is known
/// without reading further. The cost then follows the windows, not the project, for a filter
/// or search that matches often; a rare one reads on to the whole project.
pub(crate) async fn list_spans(
    client: &Client,
    project: ProjectId,
    query: &SpanQuery,
) -> Result<Listing<Span>, StoreError> {
    let mut conditions = span_filter_sql(&query.filter);
    if let Some(as_of) = query.as_of {
        conditions.push_str(&format!(" AND ingested_ns <= {}", as_of.unix_nanos()));
    }
    let conditions = conditions.as_str();
    let newest_first =
        query.sort.column == SpanColumn::StartTime && query.sort.direction == Direction::Descending;
    let order = format!(
        "ORDER BY {} {}",
        span_order(query.sort.column, query.sort.direction),
        page_sql(query.page)
    );
    let windows = if newest_first {
        recent_windows(client, project).await?
    } else {
        Vec::new()
    };
    // One lookup of rewritten traces for every window (the widest's answer serves them all),
    // and at most one over the whole project, shared by the page and the count.
    let in_windows = match windows.last() {
        Some(widest) => Some(rewritten_traces(client, project, Some(*widest)).await?),
        None => None,
    };
    let everywhere = tokio::sync::OnceCell::new();
    let whole_project = || async {
        let rewritten = everywhere
            .get_or_try_init(|| rewritten_traces(client, project, None))
            .await?;
        Ok::<_, ClickHouseError>(scan_source(project, "", None, rewritten))
    };
    let page = async {
        if let Some(rewritten) = &in_windows {
            for since in &windows {
                let source = scan_source(project, "", Some(*since), rewritten);
                let keys: Vec<SpanKey> = client
                    .rows(&format!(
                        "SELECT trace_id, span_id FROM {source} AND {conditions} {order}"
                    ))
                    .await?;
                if keys.len() as u64 == query.page.size {
                    return spans_by_keys(client, project, keys).await;
                }
            }
        }
        let source = whole_project().await?;
        let keys: Vec<SpanKey> = client
            .rows(&format!(
                "SELECT trace_id, span_id FROM {source} AND {conditions} {order}"
            ))
            .await?;
        spans_by_keys(client, project, keys).await
    };
    let total = async {
        let limit = query.page.count_limit();
        let capped = |source: String| {
            format!(
                "SELECT count() AS n FROM (SELECT 1 FROM {source} AND {conditions} LIMIT {})",
                limit.saturating_add(1)
            )
        };
        if query.filter.is_empty() {
            let source = whole_project().await?;
            let all = count(
                client,
                &format!("SELECT count() AS n FROM {source} AND {conditions}"),
            )
            .await?;
            return Ok((all, true));
        }
        // Counting stops at the limit, so a filter that matches most spans reads few of them.
        if let (Some(rewritten), Some(widest)) = (&in_windows, windows.last()) {
            let source = scan_source(project, "", Some(*widest), rewritten);
            if count(client, &capped(source)).await? > limit {
                return Ok((limit, false));
            }
        }
        let counted = count(client, &capped(whole_project().await?)).await?;
        Ok::<_, StoreError>(if counted > limit {
            (limit, false)
        } else {
            (counted, true)
        })
    };
    let (items, (total, total_is_exact)) = tokio::try_join!(page, total)?;
    Ok(Listing {
        total,
        total_is_exact,
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
