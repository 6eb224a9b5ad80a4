//! Metrics of the usage dashboard over ClickHouse: the same two-level query as SQLite's
//! (`sqlite::metrics`), always over the live spans (ClickHouse aggregates a month of spans
//! quickly enough that it needs no rollup):
//!
//! 1. an inner SELECT yields one row per span with `b` (the bucket index,
//!    `(start + offset(start) - origin) / width` with the grid's integers), `top` (whether the
//!    span's group is a named group), `gg` (the group value, NULL for "other"), `v` (the value
//!    to aggregate) and `w` (the error-rate denominator);
//! 2. an outer SELECT aggregates per `(b, top, gg)`; percentiles are exact nearest rank (the
//!    smallest value with at least p % of the values at or below it), from the sorted values.

use serde::Deserialize;
use tracehouse_core::ProjectId;
use tracehouse_core::Timestamp;
use tracehouse_core::metrics::{
    Aggregation, BucketGrid, GroupBy, Measure, Metric, Timeseries, TimeseriesQuery, TopEntry,
    TopQuery,
};
use tracehouse_core::query::{SpanColumn, SpanFilter};

use super::ClickHouseError;
use super::client::{Client, string_literal};
use super::query::{FINISHED_SPANS, live_spans_scan, span_column, span_filter_sql};
use crate::series::{Cell, SeriesPlan, TOTALS, ranked};

/// The value of a measure on a span row; NULL where the span has none.
fn measure_expr(measure: Measure) -> &'static str {
    match measure {
        Measure::Cost => "cost",
        Measure::PromptTokens => "prompt_tokens",
        Measure::CompletionTokens => "completion_tokens",
        Measure::TotalTokens => "total_tokens",
        Measure::Latency => "latency",
        // The content column is the span's JSON; 18.16 has no JSONExtract, but has these.
        Measure::TimeToFirstToken => {
            "if(visitParamHas(content, 'time_to_first_token'), \
             visitParamExtractFloat(content, 'time_to_first_token'), NULL)"
        }
    }
}

/// The group value of a span row, NULL when the field is absent.
fn group_expr(group_by: Option<&GroupBy>) -> String {
    match group_by {
        None => "CAST(NULL AS Nullable(String))".to_owned(),
        Some(GroupBy::Column(column)) => {
            let name = span_column(*column);
            if is_nullable(*column) {
                name.to_owned()
            } else {
                format!("toNullable({name})")
            }
        }
        Some(GroupBy::Metadata(keys)) => {
            let key = string_literal(&keys.join("__"));
            // Numbers read as written ("3", "2.5"), as SQLite answers them.
            format!(
                "if(has(meta_keys, {key}), \
                 toNullable(if(meta_is_num[indexOf(meta_keys, {key})] = 1, \
                 toString(meta_num[indexOf(meta_keys, {key})]), \
                 meta_text[indexOf(meta_keys, {key})])), NULL)"
            )
        }
    }
}

/// Span columns stored as `String` rather than `Nullable(String)`.
fn is_nullable(column: SpanColumn) -> bool {
    !matches!(column, SpanColumn::LogType | SpanColumn::Status)
}

/// The bucket index of a span from its start, by the grid's arithmetic.
fn bucket_expr(grid: Option<&BucketGrid>) -> String {
    let Some(grid) = grid else {
        return "toInt64(0)".to_owned();
    };
    // Every literal is made Int64: ClickHouse finds no common type for Int64 and UInt64.
    let mut offset = format!(
        "toInt64({})",
        grid.offsets.first().map_or(0, |o| o.offset_ns)
    );
    for change in grid.offsets.iter().skip(1) {
        offset = format!(
            "if(start_ns >= toInt64({}), toInt64({}), {offset})",
            change.from_ns, change.offset_ns
        );
    }
    format!(
        "intDiv(toInt64(start_ns) + {offset} - toInt64({}), toInt64({}))",
        grid.origin_ns, grid.width_ns
    )
}

/// Whether a span's group is one of the named ones.
fn top_expr(group: &str, named: Option<&[Option<String>]>) -> String {
    let Some(named) = named else {
        return "1".to_owned();
    };
    let values: Vec<String> = named.iter().flatten().map(|v| string_literal(v)).collect();
    let mut parts = Vec::new();
    if !values.is_empty() {
        parts.push(format!("ifNull({group} IN ({}), 0)", values.join(", ")));
    }
    if named.iter().any(Option::is_none) {
        parts.push(format!("isNull({group})"));
    }
    if parts.is_empty() {
        "0".to_owned()
    } else {
        format!("({})", parts.join(" OR "))
    }
}

#[derive(Deserialize)]
struct CellRow {
    b: i64,
    is_top: u8,
    gg: Option<String>,
    value: Option<f64>,
    n: u64,
}

/// The spans of `filter` starting in `start..end`, aggregated per bucket and group. `source`
/// is the project's live spans (`live_spans_scan`), found once per request: finding which
/// traces were rewritten is a query of its own, the same for every aggregation of a request.
#[allow(clippy::too_many_arguments)]
async fn cells(
    client: &Client,
    source: &str,
    filter: &SpanFilter,
    range: (Timestamp, Timestamp),
    group_by: Option<&GroupBy>,
    aggregation: Aggregation,
    grid: Option<&BucketGrid>,
    named: Option<&[Option<String>]>,
) -> Result<Vec<Cell>, ClickHouseError> {
    let group = group_expr(group_by);
    let top = top_expr(&group, named);
    let (value, weight) = match aggregation {
        Aggregation::Count => ("toFloat64(1)".to_owned(), "0"),
        Aggregation::DistinctTraces => ("trace_id".to_owned(), "0"),
        Aggregation::Sum(measure) | Aggregation::Percentile { measure, .. } => {
            (format!("toFloat64({})", measure_expr(measure)), "0")
        }
        Aggregation::ErrorCount => ("toFloat64(status = 'error')".to_owned(), "0"),
        Aggregation::ErrorRate => ("toFloat64(status = 'error')".to_owned(), "1"),
    };
    let mut conditions = format!(
        "{} AND {FINISHED_SPANS} AND start_ns >= {} AND start_ns < {}",
        span_filter_sql(filter),
        range.0.unix_nanos(),
        range.1.unix_nanos()
    );
    if let Aggregation::Percentile { .. } = aggregation {
        conditions.push_str(&format!(" AND isNotNull({value})"));
    }
    // Inner and outer names differ (`val`/`value`): ClickHouse resolves an alias before a
    // column of the same name and would see `sum(value) AS value` as a cycle.
    let inner = format!(
        "SELECT {bucket} AS b, toUInt8({top}) AS is_top, if(is_top = 1, {group}, NULL) AS gg, \
         {value} AS val, {weight} AS wt FROM {source} AND {conditions}",
        bucket = bucket_expr(grid),
    );
    let outer = match aggregation {
        Aggregation::Percentile { percent, .. } => format!(
            "arrayElement(arraySort(groupArray(assumeNotNull(val))), \
             toUInt64(greatest(1, intDiv(count() * {percent} + 99, 100))))"
        ),
        Aggregation::DistinctTraces => "toFloat64(uniqExact(val))".to_owned(),
        Aggregation::ErrorRate => "if(sum(wt) = 0, 0, sum(val) / sum(wt))".to_owned(),
        Aggregation::Count | Aggregation::Sum(_) | Aggregation::ErrorCount => {
            "toFloat64(sum(ifNull(val, 0)))".to_owned()
        }
    };
    let sql = format!(
        "SELECT b, is_top, gg, {outer} AS value, count() AS n FROM ({inner}) \
         GROUP BY b, is_top, gg"
    );
    let rows: Vec<CellRow> = client.rows(&sql).await?;
    Ok(rows
        .into_iter()
        .map(|row| Cell {
            bucket: row.b,
            top: row.is_top != 0,
            group: row.gg,
            value: row.value.unwrap_or(0.0),
            requests: row.n,
        })
        .collect())
}

/// Per-group values over a range, largest first.
async fn ranking(
    client: &Client,
    source: &str,
    metric: Metric,
    filter: &SpanFilter,
    group_by: &GroupBy,
    range: (Timestamp, Timestamp),
) -> Result<Vec<TopEntry>, ClickHouseError> {
    let cells = cells(
        client,
        source,
        filter,
        range,
        Some(group_by),
        metric.aggregation(),
        None,
        None,
    )
    .await?;
    Ok(ranked(cells))
}

pub(crate) async fn top(
    client: &Client,
    project: ProjectId,
    query: &TopQuery,
) -> Result<Vec<TopEntry>, ClickHouseError> {
    let source = live_spans_scan(client, project, "").await?;
    let mut entries = ranking(
        client,
        &source,
        query.metric,
        &query.filter,
        &query.group_by,
        (query.start, query.end),
    )
    .await?;
    entries.truncate(query.limit);
    Ok(entries)
}

pub(crate) async fn timeseries(
    client: &Client,
    project: ProjectId,
    query: &TimeseriesQuery,
) -> Result<Timeseries, ClickHouseError> {
    let grid = &query.grid;
    let range = (grid.start(), grid.end());
    let group_by = query.group_by.as_ref();
    let source = live_spans_scan(client, project, "").await?;
    let plan = match group_by {
        None => SeriesPlan::ungrouped(),
        Some(group_by) => SeriesPlan::grouped(
            ranking(
                client,
                &source,
                query.metric.ranking(),
                &query.filter,
                group_by,
                range,
            )
            .await?,
            query.limit,
        ),
    };
    let named_groups = plan.named.clone();
    let named = group_by.is_some().then_some(named_groups.as_slice());
    let aggregation = query.metric.aggregation();
    // The buckets and the totals beside them are independent: ClickHouse runs both at once.
    let (buckets, mut totals) = tokio::try_join!(
        cells(
            client,
            &source,
            &query.filter,
            range,
            group_by,
            aggregation,
            Some(grid),
            named,
        ),
        cells(
            client,
            &source,
            &query.filter,
            range,
            group_by,
            aggregation,
            None,
            named,
        ),
    )?;
    for cell in &mut totals {
        cell.bucket = TOTALS;
    }
    Ok(plan.fill(grid.len(), buckets, totals))
}
