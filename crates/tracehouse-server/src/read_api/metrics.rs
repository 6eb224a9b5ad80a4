//! The metrics routes of the usage dashboard: `GET|POST /api/metrics/timeseries/` and
//! `GET|POST /api/metrics/top/`. Parameters are those of the list routes (so the same
//! filters apply) plus `metric`, `interval`, `tz`, `group_by` and `limit`.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use serde_json::{Map, Value, json};
use tracehouse_core::Timestamp;
use tracehouse_core::metrics::{
    Aggregation, BucketGrid, DEFAULT_GROUP_LIMIT, GroupBy, Metric, SeriesKey, TimeZone,
    TimeseriesQuery, TopQuery, parse_interval, parse_limit, parse_metric,
};
use tracehouse_core::query::SpanFilter;

use super::params::ListParams;
use crate::auth::ReadKey;
use crate::error::ApiError;
use crate::{AppState, now};

/// Range used when `start_time` is absent: the day before `end_time`.
const DEFAULT_RANGE_NANOS: i64 = 24 * 3_600_000_000_000;

/// What both metrics routes parse: the metric, the span filter and the time range.
struct MetricParams {
    metric: Metric,
    filter: SpanFilter,
    start: Timestamp,
    end: Timestamp,
    zone: TimeZone,
    group_by: Option<GroupBy>,
}

fn parse(params: &ListParams) -> Result<MetricParams, ApiError> {
    let metric = match params.get("metric") {
        Some(name) => parse_metric(name)?,
        None => {
            return Err(ApiError::BadRequest(format!(
                "metric is required; metrics: {}",
                Metric::api_names().collect::<Vec<_>>().join(", ")
            )));
        }
    };
    let mut filter = params.span_filter()?;
    // The range is the grid's, not a filter condition: take the bounds out of the filter.
    let end = filter.start_to.take().unwrap_or_else(now);
    let start = filter.start_from.take().unwrap_or_else(|| {
        Timestamp::from_unix_nanos(end.unix_nanos().saturating_sub(DEFAULT_RANGE_NANOS))
    });
    let zone = params
        .get("tz")
        .map(TimeZone::parse)
        .transpose()?
        .unwrap_or_default();
    let group_by = params.get("group_by").map(GroupBy::parse).transpose()?;
    Ok(MetricParams {
        metric,
        filter,
        start,
        end,
        zone,
        group_by,
    })
}

/// Counts answer as integers, everything else as a float.
fn number(metric: Metric, value: f64) -> Value {
    let whole = matches!(
        metric.aggregation(),
        Aggregation::Count | Aggregation::DistinctTraces | Aggregation::ErrorCount
    ) || matches!(
        metric,
        Metric::PromptTokens | Metric::CompletionTokens | Metric::TotalTokens
    );
    if whole && value.is_finite() && value.fract() == 0.0 && value.abs() < 9e15 {
        Value::from(value as i64)
    } else {
        Value::from(value)
    }
}

fn series_json(key: &SeriesKey, total: Value) -> Value {
    let (kind, group, label) = match key {
        SeriesKey::All => ("all", Value::Null, "all".to_owned()),
        SeriesKey::Other => ("other", Value::Null, "other".to_owned()),
        SeriesKey::Value(None) => ("none", Value::Null, "(none)".to_owned()),
        SeriesKey::Value(Some(value)) => ("value", Value::from(value.clone()), value.clone()),
    };
    json!({"kind": kind, "group": group, "label": label, "total": total})
}

/// `GET|POST /api/metrics/timeseries/`: a metric per time bucket and group.
pub(super) async fn timeseries(
    State(state): State<AppState>,
    ReadKey(project): ReadKey,
    Query(query_string): Query<HashMap<String, String>>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let params = ListParams::new(query_string, &body)?;
    let parsed = parse(&params)?;
    let interval = parse_interval(params.get("interval"), parsed.start, parsed.end)?;
    let grid = BucketGrid::new(parsed.start, parsed.end, interval, parsed.zone)?;
    let limit = parse_limit(params.get("limit"), DEFAULT_GROUP_LIMIT)?;
    let query = TimeseriesQuery {
        metric: parsed.metric,
        filter: parsed.filter,
        grid,
        group_by: parsed.group_by,
        limit,
    };
    let answer = state.store.metric_timeseries(project.id, &query).await?;
    let grid = &query.grid;
    let zone = &grid.zone;
    let buckets: Vec<Value> = grid
        .boundaries
        .windows(2)
        .enumerate()
        .map(|(i, pair)| {
            let values: Vec<Value> = answer
                .series
                .iter()
                .map(|s| number(query.metric, s.values.get(i).copied().unwrap_or(0.0)))
                .collect();
            json!({
                "start": zone.format(pair[0]),
                "end": zone.format(pair[1]),
                "values": values,
            })
        })
        .collect();
    let series: Vec<Value> = answer
        .series
        .iter()
        .map(|s| series_json(&s.key, number(query.metric, s.total)))
        .collect();
    let mut object = Map::new();
    object.insert("metric".to_owned(), query.metric.api_name().into());
    object.insert("interval".to_owned(), grid.interval.api_name().into());
    object.insert("tz".to_owned(), zone.name().into());
    object.insert(
        "group_by".to_owned(),
        query
            .group_by
            .as_ref()
            .map_or(Value::Null, |g| g.api_name().into()),
    );
    object.insert("start_time".to_owned(), zone.format(grid.start()).into());
    object.insert("end_time".to_owned(), zone.format(grid.end()).into());
    object.insert("series".to_owned(), Value::Array(series));
    object.insert("buckets".to_owned(), Value::Array(buckets));
    Ok(Json(Value::Object(object)))
}

/// `GET|POST /api/metrics/top/`: the groups with the largest metric over a range.
pub(super) async fn top(
    State(state): State<AppState>,
    ReadKey(project): ReadKey,
    Query(query_string): Query<HashMap<String, String>>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let params = ListParams::new(query_string, &body)?;
    let parsed = parse(&params)?;
    let Some(group_by) = parsed.group_by else {
        return Err(ApiError::BadRequest(
            "group_by is required: what the leaderboard ranks (for example customer_identifier)"
                .to_owned(),
        ));
    };
    if parsed.end <= parsed.start {
        return Err(ApiError::BadRequest(
            "end_time must be after start_time".to_owned(),
        ));
    }
    let query = TopQuery {
        metric: parsed.metric,
        filter: parsed.filter,
        start: parsed.start,
        end: parsed.end,
        group_by,
        limit: parse_limit(params.get("limit"), 10)?,
    };
    let entries = state.store.metric_top(project.id, &query).await?;
    let results: Vec<Value> = entries
        .iter()
        .map(|entry| {
            let key = SeriesKey::Value(entry.value.clone());
            let mut item = series_json(&key, Value::Null);
            if let Value::Object(object) = &mut item {
                object.remove("total");
                object.insert("value".to_owned(), number(query.metric, entry.metric));
                object.insert("requests".to_owned(), entry.requests.into());
            }
            item
        })
        .collect();
    Ok(Json(json!({
        "metric": query.metric.api_name(),
        "group_by": query.group_by.api_name(),
        "tz": parsed.zone.name(),
        "start_time": parsed.zone.format(query.start),
        "end_time": parsed.zone.format(query.end),
        "results": results,
    })))
}
