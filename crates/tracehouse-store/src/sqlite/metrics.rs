//! Metrics of the usage dashboard over SQLite: per-bucket, per-group values of a
//! [`tracehouse_core::metrics::Metric`], answered from the hourly rollup when it can answer
//! exactly and from the spans otherwise.
//!
//! Every query has the same two-level shape, which is what another backend (ClickHouse) needs
//! to reproduce:
//!
//! 1. an inner SELECT yields one row per span (or per rollup row) with `b` (the bucket index,
//!    `(start + offset(start) - origin) / width` with the grid's integers), `top` (whether the
//!    row's group is one of the named groups), `gg` (the group value, NULL for "other"), `v`
//!    (the value to aggregate), `w` (the error-rate denominator) and `n` (spans the row
//!    stands for);
//! 2. an outer SELECT aggregates per `(b, top, gg)`: `total(v)` for sums and counts,
//!    `count(DISTINCT v)` for traces, `total(v) / total(w)` for the error rate, and for
//!    percentiles a `row_number()` window ordered by `v` keeping the nearest-rank row
//!    (`rn = max(1, ceil(n * p / 100))`); from the latency histogram the same rank is found
//!    by a running count over the bins (see [`histogram_percentiles`]).
//!
//! Timeseries run it twice: once without buckets to rank groups (by
//! [`tracehouse_core::metrics::Metric::ranking`]), then with the named groups bound into `top`.
//!
//! The rollup `span_rollup_hourly` holds, per project, UTC hour and group-by dimension value,
//! the additive measures (requests, errors, cost, tokens); `span_latency_hourly` holds span
//! counts per logarithmic latency bin (2 % wide, see [`latency_bin`]) per model only (see
//! [`LATENCY_DIMENSION`]). The writer keeps both current in the same transaction as the
//! spans (see [`RollupDeltas`]). They answer a request when the filter is empty, the metric
//! is additive,
//! the error rate or a latency percentile (ungrouped or by model), the group is a column (or
//! none), and every bucket boundary and offset change falls on a whole UTC hour. Latency
//! percentiles from the histogram are the geometric middle of the bin holding the
//! nearest-rank span, within 1 % of the exact value; from the spans they are exact.

use std::collections::HashMap;

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, params};
use tracehouse_core::metrics::{
    Aggregation, BucketGrid, GroupBy, Measure, Metric, Timeseries, TimeseriesQuery, TopEntry,
    TopQuery,
};
use tracehouse_core::query::{FilterValue, Operator, SpanColumn, SpanField, SpanFilter};
use tracehouse_core::{ProjectId, SpanStatistics, Timestamp};

use super::SqliteError;
use super::query::{FINISHED_SPANS, Where, span_filter_clauses};
use super::rollup::{LATENCY_DIMENSION, NANOS_PER_HOUR, dimension_column, latency_of_bin};
use crate::series::{Cell, SeriesPlan, TOTALS, ranked as ranked_cells};

/// Where the rows of a metric query come from.
struct Source {
    /// `FROM ...` with its WHERE clause and parameters, including the time range.
    clause: Where,
    from: &'static str,
    /// The instant a row is bucketed by.
    time: &'static str,
    /// The group value of a row (NULL when absent), or `NULL` without grouping.
    group: String,
    rollup: Rollup,
}

/// Which pre-aggregate a query reads, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rollup {
    /// The spans themselves.
    None,
    /// `span_rollup_hourly`.
    Sums,
    /// `span_latency_hourly`.
    Latency,
}

fn measure_column(measure: Measure, rollup: bool) -> &'static str {
    match (measure, rollup) {
        (Measure::Cost, false) => "s.cost",
        (Measure::PromptTokens, false) => "s.prompt_tokens",
        (Measure::CompletionTokens, false) => "s.completion_tokens",
        (Measure::TotalTokens, false) => "s.total_tokens",
        (Measure::Latency, false) => "s.latency",
        (Measure::TimeToFirstToken, false) => {
            "CAST(json_extract(span_content(s.content), '$.time_to_first_token') AS REAL)"
        }
        (Measure::Cost, true) => "r.cost",
        (Measure::PromptTokens, true) => "r.prompt_tokens",
        (Measure::CompletionTokens, true) => "r.completion_tokens",
        (Measure::TotalTokens, true) => "r.total_tokens",
        // Not additive: `rollup_answers` never sends percentiles to the rollup.
        (Measure::Latency | Measure::TimeToFirstToken, true) => "NULL",
    }
}

/// The rollup that holds what a request over hour-aligned buckets needs, if one does.
fn rollup_for(metric: Metric, filter: &SpanFilter, group_by: Option<&GroupBy>) -> Rollup {
    if !filter.is_empty() || matches!(group_by, Some(GroupBy::Metadata(_))) {
        return Rollup::None;
    }
    match metric.aggregation() {
        Aggregation::Count
        | Aggregation::Sum(_)
        | Aggregation::ErrorCount
        | Aggregation::ErrorRate => Rollup::Sums,
        Aggregation::Percentile {
            measure: Measure::Latency,
            ..
        } if matches!(group_by, None | Some(GroupBy::Column(SpanColumn::Model))) => Rollup::Latency,
        Aggregation::DistinctTraces | Aggregation::Percentile { .. } => Rollup::None,
    }
}

fn grid_hour_aligned(grid: &BucketGrid) -> bool {
    grid.hour_aligned()
        && grid
            .offsets
            .iter()
            .all(|o| o.offset_ns % NANOS_PER_HOUR == 0 && o.from_ns % NANOS_PER_HOUR == 0)
}

fn source(
    project: ProjectId,
    filter: &SpanFilter,
    group_by: Option<&GroupBy>,
    start: Timestamp,
    end: Timestamp,
    rollup: Rollup,
) -> Source {
    let mut clause = Where::default();
    if rollup != Rollup::None {
        let project_param = clause.bind(SqlValue::Integer(project.0));
        let dimension = match (rollup, group_by) {
            (Rollup::Latency, _) => LATENCY_DIMENSION,
            (_, Some(GroupBy::Column(column))) => column.api_name(),
            _ => "",
        };
        let dimension_param = clause.bind(SqlValue::Text(dimension.to_owned()));
        let start_param = clause.bind(SqlValue::Integer(start.unix_nanos()));
        let end_param = clause.bind(SqlValue::Integer(end.unix_nanos()));
        clause.clauses.push(format!(
            "r.project_id = {project_param} AND r.dimension = {dimension_param} \
             AND r.hour_ns >= {start_param} AND r.hour_ns < {end_param}"
        ));
        let group = if group_by.is_some() {
            "CASE WHEN r.value = '' THEN NULL ELSE substr(r.value, 2) END".to_owned()
        } else {
            "NULL".to_owned()
        };
        return Source {
            clause,
            from: if rollup == Rollup::Latency {
                "span_latency_hourly r"
            } else {
                "span_rollup_hourly r"
            },
            time: "r.hour_ns",
            group,
            rollup,
        };
    }
    span_filter_clauses(project, filter, &mut clause);
    clause.clauses.push(FINISHED_SPANS.to_owned());
    let start_param = clause.bind(SqlValue::Integer(start.unix_nanos()));
    let end_param = clause.bind(SqlValue::Integer(end.unix_nanos()));
    clause.clauses.push(format!(
        "s.start_ns >= {start_param} AND s.start_ns < {end_param}"
    ));
    let group = match group_by {
        None => "NULL".to_owned(),
        Some(GroupBy::Column(column)) => {
            format!("s.{}", dimension_column(*column).unwrap_or("model"))
        }
        Some(GroupBy::Metadata(keys)) => {
            let key = clause.bind(SqlValue::Text(keys.join("__")));
            // Whole numbers read as "3", not "3.0", as a client would have written them.
            format!(
                "(SELECT coalesce(m.text_value, CASE WHEN m.num_value = CAST(m.num_value AS INTEGER) \
                 THEN CAST(CAST(m.num_value AS INTEGER) AS TEXT) ELSE CAST(m.num_value AS TEXT) END) \
                 FROM span_metadata m WHERE m.span_rowid = s.rowid AND m.key = {key} LIMIT 1)"
            )
        }
    };
    Source {
        clause,
        from: "spans s",
        time: "s.start_ns",
        group,
        rollup,
    }
}

/// Named groups of a timeseries, bound into the `top` expression.
struct TopSet<'a> {
    values: &'a [Option<String>],
}

/// Runs the two-level query described in the module documentation.
fn cells(
    connection: &Connection,
    mut source: Source,
    aggregation: Aggregation,
    grid: Option<&BucketGrid>,
    top: Option<&TopSet<'_>>,
) -> Result<Vec<Cell>, SqliteError> {
    let clause = &mut source.clause;
    let bucket = match grid {
        None => "0".to_owned(),
        Some(grid) => {
            // The offset in force at the row's time: the last change at or before it.
            let first = clause.bind(SqlValue::Integer(
                grid.offsets.first().map_or(0, |o| o.offset_ns),
            ));
            let offset = if grid.offsets.len() > 1 {
                let mut case = String::from("CASE");
                for change in grid.offsets.iter().skip(1).rev() {
                    let from = clause.bind(SqlValue::Integer(change.from_ns));
                    let value = clause.bind(SqlValue::Integer(change.offset_ns));
                    case.push_str(&format!(" WHEN {} >= {from} THEN {value}", source.time));
                }
                format!("{case} ELSE {first} END")
            } else {
                first
            };
            let origin = clause.bind(SqlValue::Integer(grid.origin_ns));
            let width = clause.bind(SqlValue::Integer(grid.width_ns));
            format!("(({} + {offset}) - {origin}) / {width}", source.time)
        }
    };
    let is_top = match top {
        None => "1".to_owned(),
        Some(set) => {
            let named: Vec<String> = set
                .values
                .iter()
                .flatten()
                .map(|v| clause.bind(SqlValue::Text(v.clone())))
                .collect();
            let mut parts = Vec::new();
            if !named.is_empty() {
                parts.push(format!("{} IN ({})", source.group, named.join(", ")));
            }
            if set.values.iter().any(Option::is_none) {
                parts.push(format!("{} IS NULL", source.group));
            }
            if parts.is_empty() {
                "0".to_owned()
            } else {
                // `NULL IN (...)` is NULL, not false.
                format!("coalesce(({}), 0)", parts.join(" OR "))
            }
        }
    };
    let rollup = source.rollup != Rollup::None;
    let (value, weight, count) = match aggregation {
        Aggregation::Count => (if rollup { "r.requests" } else { "1" }, "0", "1"),
        Aggregation::DistinctTraces => ("s.trace_id", "0", "1"),
        Aggregation::Sum(measure) | Aggregation::Percentile { measure, .. } => {
            (measure_column(measure, rollup), "0", "1")
        }
        Aggregation::ErrorCount => (
            if rollup {
                "r.errors"
            } else {
                "(s.status = 'error')"
            },
            "0",
            "1",
        ),
        Aggregation::ErrorRate => {
            if rollup {
                ("r.errors", "r.requests", "1")
            } else {
                ("(s.status = 'error')", "1", "1")
            }
        }
    };
    let (value, count) = match source.rollup {
        Rollup::None => (value, count),
        Rollup::Sums => (value, "r.requests"),
        Rollup::Latency => ("r.bin", "r.count"),
    };
    let mut inner = format!(
        "SELECT {bucket} AS b, {is_top} AS top, CASE WHEN {is_top} THEN {group} END AS gg, \
         {value} AS v, {weight} AS w, {count} AS n FROM {from} WHERE {where_sql}",
        group = source.group,
        from = source.from,
        where_sql = clause.text(),
    );
    if let (Rollup::Latency, Aggregation::Percentile { percent, .. }) = (source.rollup, aggregation)
    {
        return histogram_percentiles(connection, &inner, &clause.params, percent, grid.is_some());
    }
    let sql = match aggregation {
        Aggregation::Percentile { percent, .. } => {
            inner.push_str(&format!(" AND {value} IS NOT NULL"));
            format!(
                "SELECT b, top, gg, v, n FROM (SELECT b, top, gg, v, \
                 row_number() OVER (PARTITION BY b, top, gg ORDER BY v) AS rn, \
                 count(*) OVER (PARTITION BY b, top, gg) AS n FROM ({inner})) \
                 WHERE rn = max(1, (n * {percent} + 99) / 100)"
            )
        }
        Aggregation::DistinctTraces => format!(
            "SELECT b, top, gg, count(DISTINCT v), total(n) FROM ({inner}) GROUP BY b, top, gg"
        ),
        Aggregation::ErrorRate => format!(
            "SELECT b, top, gg, coalesce(total(v) / nullif(total(w), 0), 0), total(n) FROM ({inner}) GROUP BY b, top, gg"
        ),
        Aggregation::Count | Aggregation::Sum(_) | Aggregation::ErrorCount => {
            format!("SELECT b, top, gg, total(v), total(n) FROM ({inner}) GROUP BY b, top, gg")
        }
    };
    let mut statement = connection.prepare_cached(&sql)?;
    let mut rows = statement.query(rusqlite::params_from_iter(clause.params.iter()))?;
    let mut cells = Vec::new();
    while let Some(row) = rows.next()? {
        let value: Option<f64> = row.get(3)?;
        let requests: f64 = row.get(4)?;
        cells.push(Cell {
            bucket: row.get(0)?,
            top: row.get::<_, i64>(1)? != 0,
            group: row.get(2)?,
            value: value.unwrap_or(0.0),
            requests: requests.max(0.0) as u64,
        });
    }
    Ok(cells)
}

/// Nearest-rank percentiles from histogram rows (`v` = bin, `n` = spans): per cell, the bin
/// where the running count first reaches `ceil(total * percent / 100)`.
///
/// The walk runs here rather than as a SQL window: the rows arrive in index order and need no
/// sort, which made a 30-day chart over 1M spans faster. (ClickHouse would use
/// `quantileExactWeighted(p)(bin, count)` instead.) With `totals`, the same rows also give
/// each group's percentile over the whole range, as cells of bucket [`TOTALS`], which saves
/// the timeseries a second pass.
fn histogram_percentiles(
    connection: &Connection,
    inner: &str,
    params: &[SqlValue],
    percent: u8,
    totals: bool,
) -> Result<Vec<Cell>, SqliteError> {
    type CellKey = (i64, bool, Option<String>);
    let mut histograms: HashMap<CellKey, Vec<(i64, i64)>> = HashMap::new();
    let mut statement =
        connection.prepare_cached(&format!("SELECT b, top, gg, v, n FROM ({inner})"))?;
    let mut rows = statement.query(rusqlite::params_from_iter(params.iter()))?;
    while let Some(row) = rows.next()? {
        let key: CellKey = (row.get(0)?, row.get::<_, i64>(1)? != 0, row.get(2)?);
        let bin: (i64, i64) = (row.get(3)?, row.get(4)?);
        if totals {
            histograms
                .entry((TOTALS, key.1, key.2.clone()))
                .or_default()
                .push(bin);
        }
        histograms.entry(key).or_default().push(bin);
    }
    Ok(histograms
        .into_iter()
        .filter_map(|((bucket, top, group), mut bins)| {
            bins.sort_unstable();
            let total: i64 = bins.iter().map(|(_, count)| count).sum();
            if total <= 0 {
                return None;
            }
            let rank = ((total * i64::from(percent) + 99) / 100).max(1);
            let mut running = 0;
            let bin = bins.iter().find_map(|(bin, count)| {
                running += count;
                (running >= rank).then_some(*bin)
            })?;
            Some(Cell {
                bucket,
                top,
                group,
                value: latency_of_bin(bin),
                requests: u64::try_from(total).unwrap_or(0),
            })
        })
        .collect())
}

/// Per-group values over a range, largest first, ties by group value.
fn ranked(
    connection: &Connection,
    project: ProjectId,
    metric: Metric,
    filter: &SpanFilter,
    group_by: &GroupBy,
    range: (Timestamp, Timestamp),
    rollup: Rollup,
) -> Result<Vec<TopEntry>, SqliteError> {
    let source = source(project, filter, Some(group_by), range.0, range.1, rollup);
    Ok(ranked_cells(cells(
        connection,
        source,
        metric.aggregation(),
        None,
        None,
    )?))
}

pub(crate) fn top(
    connection: &Connection,
    project: ProjectId,
    query: &TopQuery,
) -> Result<Vec<TopEntry>, SqliteError> {
    let aligned = |t: Timestamp| t.unix_nanos().rem_euclid(NANOS_PER_HOUR) == 0;
    let rollup = if aligned(query.start) && aligned(query.end) {
        rollup_for(query.metric, &query.filter, Some(&query.group_by))
    } else {
        Rollup::None
    };
    let mut entries = ranked(
        connection,
        project,
        query.metric,
        &query.filter,
        &query.group_by,
        (query.start, query.end),
        rollup,
    )?;
    entries.truncate(query.limit);
    Ok(entries)
}

pub(crate) fn timeseries(
    connection: &Connection,
    project: ProjectId,
    query: &TimeseriesQuery,
) -> Result<Timeseries, SqliteError> {
    let grid = &query.grid;
    let group_by = query.group_by.as_ref();
    let aligned = grid_hour_aligned(grid);
    let rollup = if aligned {
        rollup_for(query.metric, &query.filter, group_by)
    } else {
        Rollup::None
    };
    let range = (grid.start(), grid.end());
    let aggregation = query.metric.aggregation();
    let plan = match group_by {
        None => SeriesPlan::ungrouped(),
        Some(group_by) => {
            let ranking_rollup = if aligned {
                rollup_for(query.metric.ranking(), &query.filter, Some(group_by))
            } else {
                Rollup::None
            };
            let ranking = ranked(
                connection,
                project,
                query.metric.ranking(),
                &query.filter,
                group_by,
                range,
                ranking_rollup,
            )?;
            SeriesPlan::grouped(ranking, query.limit)
        }
    };
    let named = plan.named.clone();
    let top = TopSet { values: &named };
    let top = group_by.is_some().then_some(&top);
    let source_for = || source(project, &query.filter, group_by, range.0, range.1, rollup);
    let buckets = cells(connection, source_for(), aggregation, Some(grid), top)?;
    // The histogram path computes whole-range totals in the same pass as the buckets.
    let totals = if buckets.iter().any(|cell| cell.bucket == TOTALS) {
        Vec::new()
    } else {
        cells(connection, source_for(), aggregation, None, top)?
            .into_iter()
            .map(|cell| Cell {
                bucket: TOTALS,
                ..cell
            })
            .collect()
    };
    Ok(plan.fill(grid.len(), buckets, totals))
}

/// A summary over every span of a project, or of one model, from the rollups: exact counts,
/// sums and average, latency percentiles within 1 % (the histogram's bins, as the metrics API
/// answers them). `None` when the filter needs the spans (any other condition, a search or a
/// time range), since the histogram is kept per model only.
pub(crate) fn summary_from_rollups(
    connection: &Connection,
    project: ProjectId,
    filter: &SpanFilter,
) -> Result<Option<SpanStatistics>, SqliteError> {
    if filter.search.is_some() || filter.start_from.is_some() || filter.start_to.is_some() {
        return Ok(None);
    }
    let model = match filter.conditions.as_slice() {
        [] => None,
        [condition] => match (
            &condition.field,
            condition.operator,
            condition.values.as_slice(),
        ) {
            (
                SpanField::Column(SpanColumn::Model),
                Operator::Equals,
                [FilterValue::Text(model)],
            ) => Some(format!("={model}")),
            _ => return Ok(None),
        },
        _ => return Ok(None),
    };
    // The '' dimension holds every span; the model dimension one row per model value.
    let (dimension, value) = match &model {
        Some(value) => (LATENCY_DIMENSION, value.as_str()),
        None => ("", ""),
    };
    let totals = connection
        .prepare_cached(
            "SELECT total(requests), total(cost), total(total_tokens), total(prompt_tokens), \
             total(completion_tokens), total(latency_total), total(errors) FROM span_rollup_hourly \
             WHERE project_id = ?1 AND dimension = ?2 AND value = ?3",
        )?
        .query_row(params![project.0, dimension, value], |row| {
            Ok([
                row.get::<_, f64>(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
                row.get(5)?,
                row.get(6)?,
            ])
        })?;
    let whole = |value: f64| value.max(0.0).round() as u64;
    let requests = whole(totals[0]);
    let mut statistics = SpanStatistics {
        number_of_requests: requests,
        total_cost: totals[1],
        total_tokens: whole(totals[2]),
        total_prompt_tokens: whole(totals[3]),
        total_completion_tokens: whole(totals[4]),
        avg_latency: (requests > 0).then(|| totals[5] / requests as f64),
        p50_latency: None,
        p90_latency: None,
        p99_latency: None,
        error_count: whole(totals[6]),
    };
    if requests > 0 {
        let mut bins: Vec<(i64, i64)> = Vec::new();
        let mut statement = connection.prepare_cached(
            "SELECT bin, sum(count) FROM span_latency_hourly WHERE project_id = ?1 AND dimension = ?2 \
             AND (?3 IS NULL OR value = ?3) GROUP BY bin ORDER BY bin",
        )?;
        let mut rows = statement.query(params![project.0, LATENCY_DIMENSION, model])?;
        while let Some(row) = rows.next()? {
            bins.push((row.get(0)?, row.get(1)?));
        }
        let total: i64 = bins.iter().map(|(_, count)| count).sum();
        let percentile = |percent: i64| -> Option<f64> {
            let rank = ((total * percent + 99) / 100).max(1);
            let mut running = 0;
            bins.iter().find_map(|(bin, count)| {
                running += count;
                (running >= rank).then(|| latency_of_bin(*bin))
            })
        };
        statistics.p50_latency = percentile(50);
        statistics.p90_latency = percentile(90);
        statistics.p99_latency = percentile(99);
    }
    Ok(Some(statistics))
}
