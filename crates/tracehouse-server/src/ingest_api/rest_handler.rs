//! Handlers of the span-log ingest routes.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tracehouse_core::IngestContext;
use tracehouse_ingest::spanlog::decode_span_logs;

use super::body::{decode_error, read_body, require_json};
use super::model::{IngestResponse, RejectedItem};
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::{AppState, now};

/// `POST /api/v1/traces/ingest`: a JSON array of span logs (or `{"data": [...]}`).
/// Answers only after the accepted spans are committed.
pub(super) async fn ingest_span_logs(
    State(state): State<AppState>,
    Authenticated(project): Authenticated,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    require_json(&headers)?;
    let bytes = read_body(&headers, body, &state.limits).await?;
    let received_at = now();
    let prices = Arc::clone(&state.prices);
    // Decoding a large batch takes milliseconds: keep it off the async workers.
    let decoded = tokio::task::spawn_blocking(move || {
        decode_span_logs(
            &bytes,
            IngestContext {
                received_at,
                prices: &prices,
            },
        )
    })
    .await
    .map_err(|join| ApiError::Internal(format!("decoder task failed: {join}")))?
    .map_err(decode_error)?;

    let accepted = decoded.spans.len();
    let rejected: Vec<RejectedItem> = decoded
        .rejected
        .into_iter()
        .map(RejectedItem::from)
        .collect();
    if accepted > 0 {
        state.store.write_spans(project.id, decoded.spans).await?;
    }
    let (status, message) = match (accepted, rejected.len()) {
        (_, 0) => (StatusCode::OK, format!("ingested {accepted} spans")),
        (0, bad) => (
            StatusCode::BAD_REQUEST,
            format!("no spans ingested: all {bad} items were rejected"),
        ),
        (_, bad) => (
            StatusCode::MULTI_STATUS,
            format!("ingested {accepted} spans, rejected {bad} items"),
        ),
    };
    if !rejected.is_empty() {
        tracing::debug!(project = %project.name, accepted, rejected = rejected.len(), "span logs partly rejected");
    }
    Ok((
        status,
        Json(IngestResponse {
            message,
            accepted,
            rejected,
        }),
    )
        .into_response())
}
