//! Handlers of the read routes.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tracehouse_core::query::Page;
use tracehouse_core::{Listing, LogId, ProjectId, Scope, Span, SpanId, Timestamp, TraceId};

use super::model::{trace_json, trace_list_item_json};
use super::params::{ListParams, SNAPSHOT_COUNT, list_envelope, page_link};
use crate::auth::{AdminKey, AnyKey, ReadKey};
use crate::error::ApiError;
use crate::{AppState, now};

type JsonObject = Json<Map<String, Value>>;

fn trace_not_found(trace_id: &str) -> ApiError {
    ApiError::NotFound(format!("trace {trace_id:?} not found"))
}

/// Where a list request came from: what its `next`/`previous` links are built from.
pub(crate) struct ListRequest {
    pub(crate) headers: HeaderMap,
    pub(crate) uri: Uri,
    pub(crate) query: HashMap<String, String>,
}

/// Every list route reads its links from the same three parts of the request.
impl FromRequestParts<AppState> for ListRequest {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Query(query) = Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(ListRequest {
            headers: parts.headers.clone(),
            uri: parts.uri.clone(),
            query,
        })
    }
}

impl ListRequest {
    /// The list envelope of one page, with links to the neighbouring pages pinned to the
    /// snapshot the first page saw.
    pub(crate) fn envelope<T>(
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
    ReadKey(project): ReadKey,
    request: ListRequest,
    body: Bytes,
) -> Result<JsonObject, ApiError> {
    let mut query = ListParams::new(request.query.clone(), &body)?.trace_query()?;
    let as_of = *query.as_of.get_or_insert_with(now);
    let listing = state.store.list_traces(project.id, &query).await?;
    let clock = state.running_clock();
    let results = listing
        .items
        .iter()
        .map(|item| Value::Object(trace_list_item_json(item, clock)))
        .collect();
    Ok(request.envelope(query.page, as_of, &listing, results))
}

/// `GET|POST /api/request-logs/list/`: a page of the project's spans.
pub(super) async fn list_spans(
    State(state): State<AppState>,
    ReadKey(project): ReadKey,
    request: ListRequest,
    body: Bytes,
) -> Result<JsonObject, ApiError> {
    let mut query = ListParams::new(request.query.clone(), &body)?.span_query()?;
    let as_of = *query.as_of.get_or_insert_with(now);
    let listing = state.store.list_spans(project.id, &query).await?;
    let clock = state.running_clock();
    let results = listing
        .items
        .iter()
        .map(|span| Value::Object(clock.span_json(span)))
        .collect();
    Ok(request.envelope(query.page, as_of, &listing, results))
}

/// `POST /api/request-logs/summary/`: totals and latency percentiles over a filter.
pub(super) async fn summarize_spans(
    State(state): State<AppState>,
    ReadKey(project): ReadKey,
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
    ReadKey(project): ReadKey,
    Path(trace_id): Path<String>,
) -> Result<JsonObject, ApiError> {
    let id = TraceId::try_from(trace_id.as_str()).map_err(|_| trace_not_found(&trace_id))?;
    match state.store.get_trace(project.id, &id).await? {
        Some(trace) => Ok(Json(trace_json(&trace, state.running_clock()))),
        None => Err(trace_not_found(&trace_id)),
    }
}

/// `DELETE /api/traces/{trace_unique_id}/`: removes the trace and its spans (204), 404 when absent.
pub(super) async fn delete_trace(
    State(state): State<AppState>,
    AdminKey(project): AdminKey,
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
/// `GET /api/request-logs/{id}/`: one span by its `id`, or by a bare `span_unique_id` when
/// that names one span (`?trace_unique_id=` picks among several).
pub(super) async fn get_span(
    State(state): State<AppState>,
    ReadKey(project): ReadKey,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<JsonObject, ApiError> {
    let trace = query.get("trace_unique_id").map(String::as_str);
    let span = resolve_span(&state, project.id, &id, trace).await?;
    Ok(Json(state.running_clock().span_json(&span)))
}

/// Most spans a 409 for an ambiguous span id lists.
const AMBIGUOUS_CANDIDATES: usize = 20;

/// The span an id in a path names: its `id` (see [`LogId`]) first; otherwise a span id, which
/// must then name one span of the project, or be narrowed by `trace` (409 listing the
/// candidates when it names several).
pub(crate) async fn resolve_span(
    state: &AppState,
    project: ProjectId,
    raw: &str,
    trace: Option<&str>,
) -> Result<Span, ApiError> {
    let not_found = || ApiError::NotFound(format!("span {raw:?} not found"));
    if let Some((trace_id, span_id)) = LogId::parse(raw) {
        if let Some(span) = state.store.get_span(project, &trace_id, &span_id).await? {
            return Ok(span);
        }
    }
    let span_id = SpanId::try_from(raw).map_err(|_| not_found())?;
    if let Some(trace) = trace {
        let trace_id = TraceId::try_from(trace).map_err(|e| {
            ApiError::BadRequest(format!("trace_unique_id {trace:?} is not a trace id: {e}"))
        })?;
        return state
            .store
            .get_span(project, &trace_id, &span_id)
            .await?
            .ok_or_else(|| {
                ApiError::NotFound(format!("span {raw:?} not found in trace {trace:?}"))
            });
    }
    let mut found = state
        .store
        .find_spans(project, &span_id, AMBIGUOUS_CANDIDATES + 1)
        .await?;
    match found.len() {
        0 => Err(not_found()),
        1 => Ok(found.remove(0)),
        many => {
            let candidates: Vec<Value> = found
                .iter()
                .take(AMBIGUOUS_CANDIDATES)
                .map(|span| {
                    json!({
                        "id": LogId::of(&span.trace_id, &span.span_id).as_str(),
                        "trace_unique_id": span.trace_id.as_str(),
                        "span_unique_id": span.span_id.as_str(),
                        "span_name": span.name,
                        "start_time": span.start.to_rfc3339(),
                    })
                })
                .collect();
            let more = if many > AMBIGUOUS_CANDIDATES {
                format!("more than {AMBIGUOUS_CANDIDATES}")
            } else {
                many.to_string()
            };
            Err(ApiError::Ambiguous {
                message: format!(
                    "span id {raw:?} names {more} spans in different traces: use one's `id`, \
                     or add ?trace_unique_id="
                ),
                candidates,
            })
        }
    }
}

/// `GET /api/projects/current/`: the key's project, its scopes (so a client can check what it
/// holds) and, for a key that may read, how much the project holds. Any valid key may ask.
pub(super) async fn current_project(
    State(state): State<AppState>,
    AnyKey(grant): AnyKey,
) -> Result<Json<Value>, ApiError> {
    let project = &grant.project;
    let scopes: Vec<&str> = grant.scopes.iter().map(Scope::as_str).collect();
    let mut answer = json!({
        "id": project.id.0,
        "name": project.name.as_str(),
        "scopes": scopes,
        "can": {
            "ingest": grant.scopes.allow(Scope::Ingest),
            "read": grant.scopes.allow(Scope::Read),
            "admin": grant.scopes.allow(Scope::Admin),
        },
    });
    if grant.scopes.allow(Scope::Read) {
        let stats = state.store.project_stats(project.id).await?;
        answer["trace_count"] = json!(stats.traces);
        answer["span_count"] = json!(stats.spans);
    }
    Ok(Json(answer))
}
