//! Handlers of the read routes.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tracehouse_core::query::Page;
use tracehouse_core::{Listing, SpanId, Timestamp, TraceId};

use super::model::{span_json, trace_json, trace_list_item_json};
use super::params::{ListParams, SNAPSHOT_COUNT, list_envelope, page_link};
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::{AppState, now};

type JsonObject = Json<Map<String, Value>>;

fn trace_not_found(trace_id: &str) -> ApiError {
    ApiError::NotFound(format!("trace {trace_id:?} not found"))
}

/// Where a list request came from: what its `next`/`previous` links are built from.
struct ListRequest {
    headers: HeaderMap,
    uri: Uri,
    query: HashMap<String, String>,
}

impl ListRequest {
    /// The list envelope of one page, with links to the neighbouring pages pinned to the
    /// snapshot the first page saw.
    fn envelope<T>(
        &self,
        page: Page,
        as_of: Timestamp,
        listing: &Listing<T>,
        results: Vec<Value>,
    ) -> JsonObject {
        let (total, total_is_exact) = (listing.total, listing.total_is_exact);
        let carried = self
            .query
            .get(SNAPSHOT_COUNT)
            .and_then(|count| count.parse::<u64>().ok());
        let (total, total_is_exact) = match carried {
            Some(count) => (count, true),
            None => (total, total_is_exact),
        };
        let shown = results.len() as u64;
        let snapshot_count = total_is_exact.then_some(total);
        let link = |number| {
            page_link(
                &self.headers,
                &self.uri,
                &self.query,
                number,
                as_of,
                snapshot_count,
            )
        };
        let next = (page.offset() + shown < total).then(|| link(page.number + 1));
        let previous = (page.number > 1).then(|| link(page.number - 1));
        Json(list_envelope(
            total,
            total_is_exact,
            next,
            previous,
            results,
        ))
    }
}

/// `GET|POST /api/traces/list/`: a page of the project's traces.
pub(super) async fn list_traces(
    State(state): State<AppState>,
    Authenticated(project): Authenticated,
    Query(query_string): Query<HashMap<String, String>>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Result<JsonObject, ApiError> {
    let mut query = ListParams::new(query_string.clone(), &body)?.trace_query()?;
    let as_of = *query.as_of.get_or_insert_with(now);
    let listing = state.store.list_traces(project.id, &query).await?;
    let results = listing
        .items
        .iter()
        .map(|item| Value::Object(trace_list_item_json(item)))
        .collect();
    let request = ListRequest {
        headers,
        uri,
        query: query_string,
    };
    Ok(request.envelope(query.page, as_of, &listing, results))
}

/// `GET|POST /api/request-logs/list/`: a page of the project's spans.
pub(super) async fn list_spans(
    State(state): State<AppState>,
    Authenticated(project): Authenticated,
    Query(query_string): Query<HashMap<String, String>>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Result<JsonObject, ApiError> {
    let mut query = ListParams::new(query_string.clone(), &body)?.span_query()?;
    let as_of = *query.as_of.get_or_insert_with(now);
    let listing = state.store.list_spans(project.id, &query).await?;
    let results = listing
        .items
        .iter()
        .map(|span| Value::Object(span_json(span)))
        .collect();
    let request = ListRequest {
        headers,
        uri,
        query: query_string,
    };
    Ok(request.envelope(query.page, as_of, &listing, results))
}

/// `POST /api/request-logs/summary/`: totals and latency percentiles over a filter.
pub(super) async fn summarize_spans(
    State(state): State<AppState>,
    Authenticated(project): Authenticated,
    Query(query_string): Query<HashMap<String, String>>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let filter = ListParams::new(query_string, &body)?.span_filter()?;
    let stats = state.store.span_statistics(project.id, &filter).await?;
    Ok(Json(json!({
        "number_of_requests": stats.number_of_requests,
        "total_cost": stats.total_cost,
        "total_tokens": stats.total_tokens,
        "total_prompt_tokens": stats.total_prompt_tokens,
        "total_completion_tokens": stats.total_completion_tokens,
        "avg_latency": stats.avg_latency,
        "p50_latency": stats.p50_latency,
        "p90_latency": stats.p90_latency,
        "p99_latency": stats.p99_latency,
        "error_count": stats.error_count,
    })))
}

/// `GET|POST /api/traces/{trace_unique_id}/`: one trace of the key's project with its span tree.
pub(super) async fn get_trace(
    State(state): State<AppState>,
    Authenticated(project): Authenticated,
    Path(trace_id): Path<String>,
) -> Result<JsonObject, ApiError> {
    let id = TraceId::try_from(trace_id.as_str()).map_err(|_| trace_not_found(&trace_id))?;
    match state.store.get_trace(project.id, &id).await? {
        Some(trace) => Ok(Json(trace_json(&trace))),
        None => Err(trace_not_found(&trace_id)),
    }
}

/// `DELETE /api/traces/{trace_unique_id}/`: removes the trace and its spans (204), 404 when absent.
pub(super) async fn delete_trace(
    State(state): State<AppState>,
    Authenticated(project): Authenticated,
    Path(trace_id): Path<String>,
) -> Result<Response, ApiError> {
    let id = TraceId::try_from(trace_id.as_str()).map_err(|_| trace_not_found(&trace_id))?;
    if state.store.delete_trace(project.id, &id).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(trace_not_found(&trace_id))
    }
}

/// `GET /api/request-logs/{span_unique_id}/`: one span with every stored field.
pub(super) async fn get_span(
    State(state): State<AppState>,
    Authenticated(project): Authenticated,
    Path(span_id): Path<String>,
) -> Result<JsonObject, ApiError> {
    let not_found = || ApiError::NotFound(format!("span {span_id:?} not found"));
    let id = SpanId::try_from(span_id.as_str()).map_err(|_| not_found())?;
    match state.store.get_span(project.id, &id).await? {
        Some(span) => Ok(Json(span_json(&span))),
        None => Err(not_found()),
    }
}

/// `GET /api/projects/current/`: the key's project and how much it holds.
pub(super) async fn current_project(
    State(state): State<AppState>,
    Authenticated(project): Authenticated,
) -> Result<Json<Value>, ApiError> {
    let stats = state.store.project_stats(project.id).await?;
    Ok(Json(json!({
        "id": project.id.0,
        "name": project.name.as_str(),
        "trace_count": stats.traces,
        "span_count": stats.spans,
    })))
}
