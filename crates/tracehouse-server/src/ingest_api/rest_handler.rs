//! Handlers of the span-log ingest routes.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tracehouse_core::IngestContext;
use tracehouse_ingest::otlp::{OtlpEncoding, decode_otlp, encode_export_response};
use tracehouse_ingest::spanlog::decode_span_logs;
use tracehouse_ingest::{DecodeError, Decoded};

use super::body::{decode_error, media_type, read_body, require_json};
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
    let decoded = decode_off_runtime(&state, bytes, |bytes, context| {
        decode_span_logs(bytes, context)
    })
    .await?;

    check_item_count(&state, decoded.spans.len() + decoded.rejected.len())?;
    let accepted = decoded.spans.len();
    let rejected: Vec<RejectedItem> = decoded
        .rejected
        .into_iter()
        .map(RejectedItem::from)
        .collect();
    if accepted > 0 {
        state.store.write_spans(project.id, decoded.spans).await?;
    }
    state
        .guard
        .metrics
        .spans_ingested(accepted, rejected.iter().map(|r| r.field.as_str()));
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

/// Runs a decoder on a blocking thread: decoding a large batch takes milliseconds, which
/// must not stall the async workers that serve other requests.
async fn decode_off_runtime(
    state: &AppState,
    bytes: Vec<u8>,
    decoder: fn(&[u8], IngestContext<'_>) -> Result<Decoded, DecodeError>,
) -> Result<Decoded, ApiError> {
    let received_at = now();
    let prices = Arc::clone(&state.prices);
    tokio::task::spawn_blocking(move || {
        decoder(
            &bytes,
            IngestContext {
                received_at,
                prices: &prices,
            },
        )
    })
    .await
    .map_err(|join| ApiError::Internal(format!("decoder task failed: {join}")))?
    .map_err(decode_error)
}

/// The OTLP encoding named by a request's content type.
fn otlp_encoding(headers: &HeaderMap) -> Result<OtlpEncoding, ApiError> {
    match media_type(headers).as_deref() {
        Some("application/x-protobuf" | "application/protobuf") => Ok(OtlpEncoding::Protobuf),
        Some("application/json") => Ok(OtlpEncoding::Json),
        other => Err(ApiError::UnsupportedMediaType(format!(
            "content type {:?} is not OTLP: send application/x-protobuf or application/json",
            other.unwrap_or("(none)")
        ))),
    }
}

/// `POST /v1/traces` (and `/api/v1/traces`, `/v2/traces`, `/api/v2/traces`): an OTLP/HTTP
/// `ExportTraceServiceRequest`. Answers, after the commit, an `ExportTraceServiceResponse` in
/// the request's encoding; spans that fail validation are counted in its partial success.
/// The configured bound on items per request; the decoders enforce the absolute one.
fn check_item_count(state: &AppState, count: usize) -> Result<(), ApiError> {
    let limit = state.limits.max_spans_per_request;
    if count > limit {
        return Err(ApiError::TooManyItems { count, limit });
    }
    Ok(())
}

pub(super) async fn ingest_otlp(
    State(state): State<AppState>,
    Authenticated(project): Authenticated,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let encoding = otlp_encoding(&headers)?;
    let bytes = read_body(&headers, body, &state.limits).await?;
    let decoded = match encoding {
        OtlpEncoding::Protobuf => {
            decode_off_runtime(&state, bytes, |bytes, context| {
                decode_otlp(bytes, OtlpEncoding::Protobuf, context)
            })
            .await?
        }
        OtlpEncoding::Json => {
            decode_off_runtime(&state, bytes, |bytes, context| {
                decode_otlp(bytes, OtlpEncoding::Json, context)
            })
            .await?
        }
    };
    check_item_count(&state, decoded.spans.len() + decoded.rejected.len())?;
    let rejected = decoded.rejected;
    let accepted = decoded.spans.len();
    if accepted > 0 {
        state.store.write_spans(project.id, decoded.spans).await?;
    }
    state
        .guard
        .metrics
        .spans_ingested(accepted, rejected.iter().map(|r| r.field.as_str()));
    let message = rejected
        .iter()
        .take(10)
        .map(|r| format!("span {}: {}", r.index, r.error))
        .collect::<Vec<_>>()
        .join("; ");
    let rejected_count = i64::try_from(rejected.len()).unwrap_or(i64::MAX);
    let content_type = match encoding {
        OtlpEncoding::Protobuf => "application/x-protobuf",
        OtlpEncoding::Json => "application/json",
    };
    Ok((
        StatusCode::OK,
        [(CONTENT_TYPE, content_type)],
        encode_export_response(rejected_count, &message, encoding),
    )
        .into_response())
}
