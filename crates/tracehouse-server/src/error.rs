//! The one place where failures become HTTP answers.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tracehouse_core::StoreError;

/// Every error a handler can answer with. 4xx messages are safe to show and are not logged as
/// errors; 5xx answers carry a generic message and the cause is logged once, here.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed request: the message names what is wrong and where.
    #[error("{0}")]
    BadRequest(String),
    /// No key, or a key that is unknown or revoked.
    #[error("{0}")]
    Unauthorized(String),
    /// A valid key without the scope this needs.
    #[error("{0}")]
    Forbidden(String),
    /// Nothing at this path for this project.
    #[error("{0}")]
    NotFound(String),
    /// An id names several things; `candidates` describes each, so the client can pick one.
    #[error("{message}")]
    Ambiguous {
        /// What is ambiguous and how to say which is meant.
        message: String,
        /// One JSON object per match.
        candidates: Vec<serde_json::Value>,
    },
    /// The route exists but not for this method.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// Body over the configured limit.
    #[error("request body exceeds the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// An ingest request carries more items than allowed.
    #[error("batch has {count} items, the limit is {limit} per request: split it")]
    TooManyItems {
        /// Items in the request.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// The client did not send its body in time.
    #[error("{0}")]
    RequestTimeout(String),
    /// The key sent more requests than its rate allows.
    #[error("rate limit exceeded for this API key; retry in {retry_after_secs} s")]
    TooManyRequests {
        /// Seconds until a request will be accepted again.
        retry_after_secs: u64,
    },
    /// The request's headers are larger than allowed.
    #[error("request headers are {bytes} bytes, the limit is {limit}")]
    HeadersTooLarge {
        /// Total size of header names and values.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// Content type or encoding this route does not take.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The store cannot take the request now; retry later. Nothing was acknowledged.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// A bug or backend failure; the client sees a generic message.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Ambiguous { .. } => StatusCode::CONFLICT,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge { .. } | ApiError::TooManyItems { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A stable machine-readable code, the `error` field of the body.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Ambiguous { .. } => "ambiguous_id",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::TooManyItems { .. } => "too_many_items",
            ApiError::TooManyRequests { .. } => "rate_limited",
            ApiError::RequestTimeout(_) => "request_timeout",
            ApiError::HeadersTooLarge { .. } => "headers_too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }
}

/// The JSON body of every error answer.
#[derive(Debug, Serialize)]
pub(crate) struct ErrorBody<'a> {
    pub(crate) error: &'a str,
    pub(crate) message: String,
    /// The id in the answer's `x-request-id` header, to find the request in the server log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) request_id: Option<String>,
    /// What an ambiguous id could mean (409 answers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) candidates: Option<Vec<serde_json::Value>>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let candidates = match &self {
            ApiError::Ambiguous { candidates, .. } => Some(candidates.clone()),
            _ => None,
        };
        let message = match &self {
            ApiError::Internal(cause) => {
                tracing::error!(error = %cause, "request failed");
                "internal error; the server log has the cause".to_owned()
            }
            ApiError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "store unavailable");
                self.to_string()
            }
            other => other.to_string(),
        };
        let mut response = (
            status,
            Json(ErrorBody {
                error: self.code(),
                message,
                request_id: crate::guard::current_request_id(),
                candidates,
            }),
        )
            .into_response();
        let retry_after = match &self {
            ApiError::Unavailable(_) => Some(1),
            ApiError::TooManyRequests { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        };
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable { reason } => ApiError::Unavailable(reason),
            StoreError::NotFound { what } => ApiError::NotFound(format!("{what} not found")),
            StoreError::Conflict(message) => ApiError::BadRequest(message),
            StoreError::Backend(cause) => ApiError::Internal(cause.to_string()),
        }
    }
}
