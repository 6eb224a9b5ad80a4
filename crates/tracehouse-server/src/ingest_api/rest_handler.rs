//! Handlers of the span-log ingest routes.

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

use super::body::{media_type, read_body, require_json};
use super::model::{IngestResponse, RejectedItem};
use super::otlp::{check_item_count, decode_off_runtime, ingest_export};
use crate::AppState;
use crate::auth::IngestKey;
use crate::error::ApiError;

/// `POST /api/v1/traces/ingest`: a JSON array of span logs (or `{"data": [...]}`).
/// Answers only after the accepted spans are committed.
pub(super) async fn ingest_span_logs(
    State(state): State<AppState>,
    IngestKey(project): IngestKey,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    require_json(&headers)?;
    let bytes = read_body(&headers, body, &state.limits).await?;
    let decoded = decode_off_runtime(&state, &project, bytes, |bytes, context| {
        decode_span_logs(&bytes, context)
    })
    .await?;

    check_item_count(&state, decoded.spans.len() + decoded.rejected.len())?;
    let (accepted, rejected) =
        super::commit_batch(&state, &project, decoded.spans, decoded.rejected).await?;
    let rejected: Vec<RejectedItem> = rejected.into_iter().map(RejectedItem::from).collect();
    let (status, message) = super::batch_status(accepted, rejected.len(), "ingested", "spans");
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
pub(super) async fn ingest_otlp(
    State(state): State<AppState>,
    IngestKey(project): IngestKey,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let encoding = otlp_encoding(&headers)?;
    let bytes = read_body(&headers, body, &state.limits).await?;
    let decoder = match encoding {
        OtlpEncoding::Protobuf => decode_otlp_protobuf,
        OtlpEncoding::Json => decode_otlp_json,
    };
    let outcome = ingest_export(&state, &project, bytes, decoder).await?;
    let content_type = match encoding {
        OtlpEncoding::Protobuf => "application/x-protobuf",
        OtlpEncoding::Json => "application/json",
    };
    Ok((
        StatusCode::OK,
        [(CONTENT_TYPE, content_type)],
        encode_export_response(outcome.rejected_spans, &outcome.message, encoding),
    )
        .into_response())
}

fn decode_otlp_protobuf(body: Vec<u8>, context: IngestContext<'_>) -> Result<Decoded, DecodeError> {
    decode_otlp(&body, OtlpEncoding::Protobuf, context)
}

fn decode_otlp_json(body: Vec<u8>, context: IngestContext<'_>) -> Result<Decoded, DecodeError> {
    decode_otlp(&body, OtlpEncoding::Json, context)
}
