//! The OTLP export itself, whichever transport carried it (OTLP/HTTP in `rest_handler`,
//! OTLP/gRPC in `crate::grpc`): decode off the async runtime, check the item count, write,
//! count, and say what the partial success must report.

use std::sync::Arc;

use tracehouse_core::{IngestContext, Project};
use tracehouse_ingest::{DecodeError, Decoded, Rejection};

use super::body::decode_error;
use crate::error::ApiError;
use crate::redaction::SpanRedactor;
use crate::{AppState, now};

/// Rejections named in a partial success's message; the count covers them all.
const REJECTIONS_IN_MESSAGE: usize = 10;

/// What an export came to, for its `ExportTraceServiceResponse`.
#[derive(Debug)]
pub(crate) struct ExportOutcome {
    /// Spans not stored (the partial success' `rejected_spans`; 0: no partial success).
    pub(crate) rejected_spans: i64,
    /// The first rejections by index and field (the partial success' `error_message`).
    pub(crate) message: String,
}

/// Decodes an OTLP export with `decoder`, writes its valid spans to `project` and returns once
/// they are committed. A span that fails validation is counted in the outcome, not an error.
pub(crate) async fn ingest_export<T: Send + 'static>(
    state: &AppState,
    project: &Project,
    request: T,
    decoder: fn(T, IngestContext<'_>) -> Result<Decoded, DecodeError>,
) -> Result<ExportOutcome, ApiError> {
    let decoded = decode_off_runtime(state, project, request, decoder).await?;
    check_item_count(state, decoded.spans.len() + decoded.rejected.len())?;
    let (_, rejected) =
        super::commit_batch(state, project, decoded.spans, decoded.rejected).await?;
    let message = rejected
        .iter()
        .take(REJECTIONS_IN_MESSAGE)
        .map(describe)
        .collect::<Vec<_>>()
        .join("; ");
    Ok(ExportOutcome {
        rejected_spans: i64::try_from(rejected.len()).unwrap_or(i64::MAX),
        message,
    })
}

/// `span 3: trace_unique_id must be 16 bytes ...`: the index, and the field when the error's
/// text does not already name it.
fn describe(rejection: &Rejection) -> String {
    let Rejection {
        index,
        field,
        error,
    } = rejection;
    if field.is_empty() || error.contains(field.as_str()) {
        format!("span {index}: {error}")
    } else {
        format!("span {index}: {field}: {error}")
    }
}

/// Runs a decoder on a blocking thread, then `project`'s redaction rules on what it decoded:
/// decoding and redacting a large batch take milliseconds, which must not stall the async
/// workers that serve other requests. Nothing sees the spans before they are redacted.
pub(super) async fn decode_off_runtime<T: Send + 'static>(
    state: &AppState,
    project: &Project,
    input: T,
    decoder: fn(T, IngestContext<'_>) -> Result<Decoded, DecodeError>,
) -> Result<Decoded, ApiError> {
    let received_at = now();
    let prices = Arc::clone(&state.prices);
    let redactor = SpanRedactor::for_project(state, &project.name);
    tokio::task::spawn_blocking(move || {
        let mut decoded = decoder(
            input,
            IngestContext {
                received_at,
                prices: &prices,
            },
        )?;
        redactor.apply(&mut decoded.spans);
        Ok::<_, DecodeError>(decoded)
    })
    .await
    .map_err(|join| ApiError::Internal(format!("decoder task failed: {join}")))?
    .map_err(decode_error)
}

/// The configured bound on items per request; the decoders enforce the absolute one.
pub(super) fn check_item_count(state: &AppState, count: usize) -> Result<(), ApiError> {
    let limit = state.limits.max_spans_per_request;
    if count > limit {
        return Err(ApiError::TooManyItems { count, limit });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejection(index: usize, field: &str, error: &str) -> Rejection {
        Rejection {
            index,
            field: field.to_owned(),
            error: error.to_owned(),
        }
    }

    #[test]
    fn messages_name_index_and_field() {
        assert_eq!(
            describe(&rejection(
                1,
                "trace_unique_id",
                "trace_unique_id must be 16 bytes"
            )),
            "span 1: trace_unique_id must be 16 bytes"
        );
        assert_eq!(
            describe(&rejection(4, "resource", "nested too deep")),
            "span 4: resource: nested too deep"
        );
        assert_eq!(
            describe(&rejection(0, "", "not an object")),
            "span 0: not an object"
        );
    }
}
