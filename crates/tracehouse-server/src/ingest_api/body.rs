//! Reading an ingest body: size limit, content type, content encoding.

use axum::body::Body;
use axum::http::HeaderMap;
use axum::http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use tracehouse_ingest::DecodeError;
use tracehouse_ingest::compression::gunzip;

use crate::Limits;
use crate::error::ApiError;

/// The request's media type, lowercase, without parameters; `None` when absent.
pub(crate) fn media_type(headers: &HeaderMap) -> Option<String> {
    headers.get(CONTENT_TYPE).map(|value| {
        value
            .to_str()
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    })
}

/// Whether the request's content type is JSON. A missing type is taken as JSON: hand-written
/// scripts often omit it and the body decides anyway.
pub(crate) fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(media_type) = media_type(headers) else {
        return Ok(());
    };
    if media_type == "application/json"
        || media_type.ends_with("+json")
        || media_type == "text/json"
    {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(format!(
            "content type {media_type:?} is not accepted here: send application/json"
        )))
    }
}

/// Reads the whole body within the limit, then inflates it if it is gzip.
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limits: &Limits,
) -> Result<Vec<u8>, ApiError> {
    let too_large = ApiError::PayloadTooLarge {
        limit: limits.max_body_bytes,
    };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limits.max_body_bytes as u64) {
        return Err(too_large);
    }
    let encoding = headers
        .get(CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("").trim().to_ascii_lowercase())
        .unwrap_or_default();
    if !matches!(encoding.as_str(), "" | "identity" | "gzip" | "x-gzip") {
        return Err(ApiError::UnsupportedMediaType(format!(
            "content encoding {encoding:?} is not supported: send gzip or no encoding"
        )));
    }
    let bytes = match axum::body::to_bytes(body, limits.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(error) => {
            let over_limit = std::error::Error::source(&error)
                .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
            let timed_out = std::iter::successors(
                Some(&error as &(dyn std::error::Error + 'static)),
                |error| error.source(),
            )
            .any(|cause| cause.is::<tower_http::timeout::TimeoutError>());
            return Err(if over_limit {
                too_large
            } else if timed_out {
                ApiError::RequestTimeout(format!(
                    "the request body did not arrive within {} s",
                    limits.request_body_timeout.as_secs()
                ))
            } else {
                ApiError::BadRequest(format!("could not read request body: {error}"))
            });
        }
    };
    if encoding.ends_with("gzip") {
        gunzip(&bytes, limits.max_inflated_bytes).map_err(decode_error)
    } else {
        Ok(bytes.to_vec())
    }
}

/// Maps a whole-body decode failure to its answer.
pub(crate) fn decode_error(error: DecodeError) -> ApiError {
    match error {
        DecodeError::TooLarge { limit } => ApiError::PayloadTooLarge { limit },
        other => ApiError::BadRequest(other.to_string()),
    }
}
