//! The hourly rollups the writer keeps beside the spans (`span_rollup_hourly` and
//! `span_latency_hourly`): what each span adds, summed per group commit and applied in the
//! writer's transaction. The metrics queries that read them live in `metrics`; this module is
//! the writer's side and imports nothing from the read side.

use std::collections::HashMap;

use rusqlite::{Transaction, params};
use tracehouse_core::metrics::GroupBy;
use tracehouse_core::query::SpanColumn;
use tracehouse_core::{ProjectId, Span, SpanStatus};

use super::SqliteError;
use super::rows::{FACT_COLUMN_COUNT, FACT_COLUMNS, StoredFacts};

pub(crate) const NANOS_PER_HOUR: i64 = 3_600_000_000_000;
/// The one dimension the latency histogram is kept for. Every span has a model value (absent
/// included), so its rows also answer ungrouped percentiles; a histogram per dimension cost
/// the writer about a third of its speed in the benchmark, for group-bys rarely charted.
pub(crate) const LATENCY_DIMENSION: &str = "model";
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
pub(crate) fn latency_of_bin(bin: i64) -> f64 {
    if bin <= 0 {
        return 0.0;
    }
    LATENCY_FLOOR * LATENCY_BIN_RATIO.powf(bin as f64 - 0.5)
}

/// The `spans` column of each rollup dimension, in the order of [`GroupBy::COLUMNS`].
pub(crate) fn dimension_column(column: SpanColumn) -> Option<&'static str> {
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
    /// Running spans stay out of the rollups until they end (see `query::FINISHED_SPANS`).
    running: bool,
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
            running: span.status == SpanStatus::Running,
        }
    }

    /// The facts of a stored span, as [`RollupFacts::from_span`] gave them when it was stored.
    pub(crate) fn from_stored(stored: &StoredFacts) -> Self {
        let grouping = &stored.grouping;
        Self {
            start_ns: stored.start_ns,
            dimensions: [
                stored.model.clone(),
                stored.provider_id.clone(),
                grouping[1].clone(),
                grouping[0].clone(),
                Some(stored.log_type.clone()),
                stored.workflow_name.clone(),
                Some(stored.status.clone()),
            ],
            error: stored.status == "error",
            cost: stored.cost.unwrap_or(0.0),
            prompt_tokens: stored.prompt_tokens.unwrap_or(0),
            completion_tokens: stored.completion_tokens.unwrap_or(0),
            total_tokens: stored.total_tokens.unwrap_or(0),
            latency: stored.latency,
            running: stored.status == SpanStatus::Running.as_str(),
        }
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
    /// Sum of latencies in seconds, for exact averages.
    latency: f64,
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
        if facts.running {
            return;
        }
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
            delta.latency += sign as f64 * facts.latency;
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
            sum.latency += delta.latency;
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
             cost, prompt_tokens, completion_tokens, total_tokens, latency_total) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
             ON CONFLICT (project_id, dimension, hour_ns, value) DO UPDATE SET \
             requests = requests + excluded.requests, errors = errors + excluded.errors, \
             cost = cost + excluded.cost, prompt_tokens = prompt_tokens + excluded.prompt_tokens, \
             completion_tokens = completion_tokens + excluded.completion_tokens, \
             total_tokens = total_tokens + excluded.total_tokens, \
             latency_total = latency_total + excluded.latency_total \
             RETURNING requests",
        )?;
        let mut remove = transaction.prepare_cached(
            "DELETE FROM span_rollup_hourly WHERE project_id = ?1 AND dimension = ?2 AND hour_ns = ?3 AND value = ?4",
        )?;
        for ((project, dimension, value, hour), delta) in self.rows.drain() {
            if delta.requests == 0
                && delta.errors == 0
                && delta.cost == 0.0
                && delta.latency == 0.0
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
                    delta.total_tokens,
                    delta.latency
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
    let mut statement =
        transaction.prepare(&format!("SELECT {FACT_COLUMNS}, project_id FROM spans"))?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let stored = StoredFacts::from_row(row)?;
        deltas.add(
            ProjectId(row.get(FACT_COLUMN_COUNT)?),
            &RollupFacts::from_stored(&stored),
            1,
        );
        pending += 1;
        // Bound memory on big databases: the upserts add up however often they run.
        if pending >= 200_000 {
            deltas.flush(transaction)?;
            pending = 0;
        }
    }
    deltas.flush(transaction)
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
