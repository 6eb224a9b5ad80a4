//! The logging API's create route: one request log (or an array of them) per POST, as the
//! vendor's logging clients send them.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tracehouse_core::IngestContext;
use tracehouse_ingest::request_log::{DecodedRequestLogs, IdSource, decode_request_logs};

use super::body::{decode_error, read_body, require_json};
use super::model::RejectedItem;
use crate::auth::IngestKey;
use crate::error::ApiError;
use crate::read_api::model::span_json;
use crate::redaction::SpanRedactor;
use crate::{AppState, now};

/// Random ids in the shapes OTLP uses: 32 hex digits for a trace, 16 for a span.
struct RandomIds;

impl IdSource for RandomIds {
    fn trace_id(&mut self) -> String {
        format!("{:032x}", fastrand::u128(..))
    }

    fn span_id(&mut self) -> String {
        format!("{:016x}", fastrand::u64(..))
    }
}

/// `POST /api/request-logs/` (also `/api/request-logs/create/` and the keywordsai client's
/// `/request-logs/create`): stores request logs once committed. One object answers `201` with
/// the stored log (its `id` reads it back); an array answers like the span-log ingest route,
/// with each stored log's ids under `results`.
pub(super) async fn create_request_logs(
    State(state): State<AppState>,
    IngestKey(project): IngestKey,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    require_json(&headers)?;
    let bytes = read_body(&headers, body, &state.limits).await?;
    let received_at = now();
    let prices = std::sync::Arc::clone(&state.prices);
    let redactor = SpanRedactor::for_project(&state, &project.name);
    // Redacted on the decoding thread, before the answer's copy of each log is made.
    let DecodedRequestLogs { decoded, single } = tokio::task::spawn_blocking(move || {
        let context = IngestContext {
            received_at,
            prices: &prices,
        };
        let mut logs = decode_request_logs(&bytes, context, &mut RandomIds)?;
        redactor.apply(&mut logs.decoded.spans);
        Ok::<_, tracehouse_ingest::DecodeError>(logs)
    })
    .await
    .map_err(|join| ApiError::Internal(format!("decoder task failed: {join}")))?
    .map_err(decode_error)?;

    let count = decoded.spans.len() + decoded.rejected.len();
    let limit = state.limits.max_spans_per_request;
    if count > limit {
        return Err(ApiError::TooManyItems { count, limit });
    }
    if single {
        if let Some(rejection) = decoded.rejected.first() {
            state
                .guard
                .metrics
                .spans_ingested(0, std::iter::once(rejection.field.as_str()));
            return Err(ApiError::BadRequest(format!(
                "request log rejected: {}: {}",
                if rejection.field.is_empty() {
                    "log"
                } else {
                    &rejection.field
                },
                rejection.error
            )));
        }
    }
    let stored: Vec<Value> = decoded
        .spans
        .iter()
        .map(|span| Value::Object(span_json(span)))
        .collect();
    let (accepted, rejected) =
        super::commit_batch(&state, &project, decoded.spans, decoded.rejected).await?;
    let rejected: Vec<RejectedItem> = rejected.into_iter().map(RejectedItem::from).collect();

    if single {
        let mut log = match stored.into_iter().next() {
            Some(Value::Object(log)) => log,
            _ => return Err(ApiError::Internal("a decoded log went missing".to_owned())),
        };
        log.insert("message".to_owned(), json!("log successful"));
        return Ok((StatusCode::CREATED, Json(log)).into_response());
    }
    let results: Vec<Value> = stored
        .iter()
        .map(|log| {
            json!({
                "id": log["id"],
                "unique_id": log["unique_id"],
                "trace_unique_id": log["trace_unique_id"],
                "span_unique_id": log["span_unique_id"],
            })
        })
        .collect();
    let (status, message) = super::batch_status(accepted, rejected.len(), "logged", "requests");
    Ok((
        status,
        Json(json!({
            "message": message,
            "accepted": accepted,
            "rejected": rejected,
            "results": results,
        })),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_have_the_otlp_shapes() {
        let mut ids = RandomIds;
        let trace = ids.trace_id();
        let span = ids.span_id();
        assert_eq!(trace.len(), 32);
        assert_eq!(span.len(), 16);
        assert!(
            trace
                .chars()
                .chain(span.chars())
                .all(|c| c.is_ascii_hexdigit())
        );
        assert_ne!(ids.trace_id(), trace);
    }
}
