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
use rusqlite::{Connection, Row, Transaction, params};
use tracehouse_core::metrics::{
    Aggregation, BucketGrid, GroupBy, Measure, Metric, Timeseries, TimeseriesQuery, TopEntry,
    TopQuery,
};
use tracehouse_core::query::{SpanColumn, SpanFilter};
use tracehouse_core::{ProjectId, Span, Timestamp};

use super::SqliteError;
use super::query::{Where, span_filter_clauses};
use crate::series::{Cell, SeriesPlan, TOTALS, ranked as ranked_cells};

const NANOS_PER_HOUR: i64 = 3_600_000_000_000;
/// The one dimension the latency histogram is kept for. Every span has a model value (absent
/// included), so its rows also answer ungrouped percentiles; a histogram per dimension cost
/// the writer about a third of its speed in the benchmark, for group-bys rarely charted.
const LATENCY_DIMENSION: &str = "model";
/// Latencies at or below this many seconds share bin 0.
const LATENCY_FLOOR: f64 = 1e-4;
/// Ratio between the edges of consecutive latency bins.
const LATENCY_BIN_RATIO: f64 = 1.02;

/// The histogram bin of a latency in seconds: bin `k >= 1` holds `(F·r^(k-1), F·r^k]` with
/// `F` = [`LATENCY_FLOOR`] and `r` = [`LATENCY_BIN_RATIO`].
pub(crate) fn latency_bin(seconds: f64) -> i64 {
    if seconds.is_nan() || seconds <= LATENCY_FLOOR {
        return 0;
    }
    ((seconds / LATENCY_FLOOR).ln() / LATENCY_BIN_RATIO.ln()).ceil() as i64
}

/// The value reported for a bin: the geometric middle of its edges.
fn latency_of_bin(bin: i64) -> f64 {
    if bin <= 0 {
        return 0.0;
    }
    LATENCY_FLOOR * LATENCY_BIN_RATIO.powf(bin as f64 - 0.5)
}

/// Columns of `spans` that [`RollupFacts::from_row`] reads, in order.
pub(crate) const ROLLUP_FACT_COLUMNS: &str = "start_ns, model, provider_id, customer_identifier, \
     environment, log_type, workflow_name, status, cost, prompt_tokens, completion_tokens, total_tokens, latency";

/// The `spans` column of each rollup dimension, in the order of [`GroupBy::COLUMNS`].
fn dimension_column(column: SpanColumn) -> Option<&'static str> {
    Some(match column {
        SpanColumn::Model => "model",
        SpanColumn::ProviderId => "provider_id",
        SpanColumn::CustomerIdentifier => "customer_identifier",
        SpanColumn::Environment => "environment",
        SpanColumn::LogType => "log_type",
        SpanColumn::WorkflowName => "workflow_name",
        SpanColumn::Status => "status",
        _ => return None,
    })
}

/// What one span adds to the rollup.
pub(crate) struct RollupFacts {
    start_ns: i64,
    /// Values of [`GroupBy::COLUMNS`], in order.
    dimensions: [Option<String>; 7],
    error: bool,
    cost: f64,
    prompt_tokens: i64,
    completion_tokens: i64,
    total_tokens: i64,
    latency: f64,
}

fn tokens(count: Option<u64>) -> i64 {
    count.map_or(0, |c| i64::try_from(c).unwrap_or(i64::MAX))
}

impl RollupFacts {
    /// The facts of a span about to be stored; they match what [`RollupFacts::from_row`] reads
    /// back from its row, because both follow the columns `rows::upsert_span` writes.
    pub(crate) fn from_span(span: &Span) -> Self {
        Self {
            start_ns: span.start.unix_nanos(),
            dimensions: [
                span.model.clone(),
                span.provider_id.clone(),
                span.grouping.customer_identifier.clone(),
                span.grouping.environment.clone(),
                Some(span.log_type.as_str().to_owned()),
                span.workflow_name.clone(),
                Some(span.status.as_str().to_owned()),
            ],
            error: span.status.as_str() == "error",
            cost: span.cost.unwrap_or(0.0),
            prompt_tokens: tokens(span.usage.prompt_tokens),
            completion_tokens: tokens(span.usage.completion_tokens),
            total_tokens: tokens(span.usage.total_tokens),
            latency: span.latency,
        }
    }

    /// The facts of a stored span, from a row selecting [`ROLLUP_FACT_COLUMNS`] from `first` on.
    pub(crate) fn from_row(row: &Row<'_>, first: usize) -> Result<Self, SqliteError> {
        let status: String = row.get(first + 7)?;
        Ok(Self {
            start_ns: row.get(first)?,
            dimensions: [
                row.get(first + 1)?,
                row.get(first + 2)?,
                row.get(first + 3)?,
                row.get(first + 4)?,
                row.get(first + 5)?,
                row.get(first + 6)?,
                Some(status.clone()),
            ],
            error: status == "error",
            cost: row.get::<_, Option<f64>>(first + 8)?.unwrap_or(0.0),
            prompt_tokens: row.get::<_, Option<i64>>(first + 9)?.unwrap_or(0),
            completion_tokens: row.get::<_, Option<i64>>(first + 10)?.unwrap_or(0),
            total_tokens: row.get::<_, Option<i64>>(first + 11)?.unwrap_or(0),
            latency: row.get(first + 12)?,
        })
    }
}

#[derive(Default, Clone, Copy)]
struct Delta {
    requests: i64,
    errors: i64,
    cost: f64,
    prompt_tokens: i64,
    completion_tokens: i64,
    total_tokens: i64,
}

/// Rollup changes of one transaction, summed per row so a group commit of thousands of spans
/// writes each touched (project, dimension, value, hour) row once.
#[derive(Default)]
pub(crate) struct RollupDeltas {
    rows: HashMap<(i64, &'static str, String, i64), Delta>,
    /// Span count changes per (project, dimension, value, hour, latency bin).
    latencies: HashMap<(i64, &'static str, String, i64, i64), i64>,
}

/// The stored form of a group value: `''` when the field is absent, `'=' || value` otherwise,
/// so an absent field and an empty string stay apart in a NOT NULL key.
fn encode_value(value: Option<&str>) -> String {
    value.map_or_else(String::new, |v| format!("={v}"))
}

impl RollupDeltas {
    /// Counts a span in (`sign` 1) or out (`sign` -1, for a replaced or deleted span).
    pub(crate) fn add(&mut self, project: ProjectId, facts: &RollupFacts, sign: i64) {
        let hour = facts.start_ns - facts.start_ns.rem_euclid(NANOS_PER_HOUR);
        let dimensions = std::iter::once(("", None)).chain(
            GroupBy::COLUMNS
                .iter()
                .zip(&facts.dimensions)
                .map(|(column, value)| (column.api_name(), Some(value.as_deref()))),
        );
        let bin = latency_bin(facts.latency);
        for (dimension, value) in dimensions {
            let value = value.map_or_else(String::new, encode_value);
            if dimension == LATENCY_DIMENSION {
                *self
                    .latencies
                    .entry((project.0, dimension, value.clone(), hour, bin))
                    .or_default() += sign;
            }
            let delta = self
                .rows
                .entry((project.0, dimension, value, hour))
                .or_default();
            // Token counts come from clients and may be absurd; saturate rather than overflow.
            delta.requests += sign;
            delta.errors += sign * i64::from(facts.error);
            delta.cost += sign as f64 * facts.cost;
            delta.prompt_tokens = delta
                .prompt_tokens
                .saturating_add(sign.saturating_mul(facts.prompt_tokens));
            delta.completion_tokens = delta
                .completion_tokens
                .saturating_add(sign.saturating_mul(facts.completion_tokens));
            delta.total_tokens = delta
                .total_tokens
                .saturating_add(sign.saturating_mul(facts.total_tokens));
        }
    }

    /// Adds another set of changes to these.
    pub(crate) fn merge(&mut self, other: &RollupDeltas) {
        for (key, delta) in &other.rows {
            let sum = self.rows.entry(key.clone()).or_default();
            sum.requests += delta.requests;
            sum.errors += delta.errors;
            sum.cost += delta.cost;
            sum.prompt_tokens = sum.prompt_tokens.saturating_add(delta.prompt_tokens);
            sum.completion_tokens = sum
                .completion_tokens
                .saturating_add(delta.completion_tokens);
            sum.total_tokens = sum.total_tokens.saturating_add(delta.total_tokens);
        }
        for (key, count) in &other.latencies {
            *self.latencies.entry(key.clone()).or_default() += count;
        }
    }

    /// Applies the changes; rows whose spans all went away are removed.
    pub(crate) fn flush(&mut self, transaction: &Transaction<'_>) -> Result<(), SqliteError> {
        self.flush_latencies(transaction)?;
        if self.rows.is_empty() {
            return Ok(());
        }
        let mut upsert = transaction.prepare_cached(
            "INSERT INTO span_rollup_hourly (project_id, dimension, value, hour_ns, requests, errors, \
             cost, prompt_tokens, completion_tokens, total_tokens) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
             ON CONFLICT (project_id, dimension, hour_ns, value) DO UPDATE SET \
             requests = requests + excluded.requests, errors = errors + excluded.errors, \
             cost = cost + excluded.cost, prompt_tokens = prompt_tokens + excluded.prompt_tokens, \
             completion_tokens = completion_tokens + excluded.completion_tokens, \
             total_tokens = total_tokens + excluded.total_tokens \
             RETURNING requests",
        )?;
        let mut remove = transaction.prepare_cached(
            "DELETE FROM span_rollup_hourly WHERE project_id = ?1 AND dimension = ?2 AND hour_ns = ?3 AND value = ?4",
        )?;
        for ((project, dimension, value, hour), delta) in self.rows.drain() {
            if delta.requests == 0
                && delta.errors == 0
                && delta.cost == 0.0
                && delta.total_tokens == 0
            {
                // A replacement by an identical span changes nothing.
                continue;
            }
            let requests: i64 = upsert.query_row(
                params![
                    project,
                    dimension,
                    value,
                    hour,
                    delta.requests,
                    delta.errors,
                    delta.cost,
                    delta.prompt_tokens,
                    delta.completion_tokens,
                    delta.total_tokens
                ],
                |row| row.get(0),
            )?;
            if requests <= 0 {
                remove.execute(params![project, dimension, hour, value])?;
            }
        }
        Ok(())
    }
}

impl RollupDeltas {
    fn flush_latencies(&mut self, transaction: &Transaction<'_>) -> Result<(), SqliteError> {
        if self.latencies.is_empty() {
            return Ok(());
        }
        let mut upsert = transaction.prepare_cached(
            "INSERT INTO span_latency_hourly (project_id, dimension, value, hour_ns, bin, count) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
             ON CONFLICT (project_id, dimension, hour_ns, value, bin) DO UPDATE SET count = count + excluded.count \
             RETURNING count",
        )?;
        let mut remove = transaction.prepare_cached(
            "DELETE FROM span_latency_hourly WHERE project_id = ?1 AND dimension = ?2 AND hour_ns = ?3 AND value = ?4 AND bin = ?5",
        )?;
        for ((project, dimension, value, hour, bin), delta) in self.latencies.drain() {
            if delta == 0 {
                continue;
            }
            let count: i64 = upsert.query_row(
                params![project, dimension, value, hour, bin, delta],
                |row| row.get(0),
            )?;
            if count <= 0 {
                remove.execute(params![project, dimension, hour, value, bin])?;
            }
        }
        Ok(())
    }
}

/// Fills the rollups from the spans already stored (the v2 migration), with the writer's code.
pub(crate) fn backfill_rollups(transaction: &Transaction<'_>) -> Result<(), SqliteError> {
    let mut deltas = RollupDeltas::default();
    let mut pending = 0usize;
    let mut statement = transaction.prepare(&format!(
        "SELECT project_id, {ROLLUP_FACT_COLUMNS} FROM spans"
    ))?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        deltas.add(ProjectId(row.get(0)?), &RollupFacts::from_row(row, 1)?, 1);
        pending += 1;
        // Bound memory on big databases: the upserts add up however often they run.
        if pending >= 200_000 {
            deltas.flush(transaction)?;
            pending = 0;
        }
    }
    deltas.flush(transaction)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_values_encode_absence_apart_from_the_empty_string() {
        assert_eq!(encode_value(None), "");
        assert_eq!(encode_value(Some("")), "=");
        assert_eq!(encode_value(Some("gpt-4o")), "=gpt-4o");
    }

    #[test]
    fn latency_bins_are_two_percent_wide_and_report_within_one_percent() {
        assert_eq!(latency_bin(0.0), 0);
        assert_eq!(latency_bin(f64::NAN), 0);
        for seconds in [0.00015, 0.0123, 0.5, 1.5, 3.0, 42.0, 3600.0] {
            let reported = latency_of_bin(latency_bin(seconds));
            assert!(
                (reported / seconds - 1.0).abs() < 0.0101,
                "{seconds} -> {reported}"
            );
        }
        assert!(latency_bin(1.0) < latency_bin(1.03));
    }
}
