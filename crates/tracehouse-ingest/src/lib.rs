//! Decoding of ingest request bodies into core spans, with a rejection per bad item.
//!
//! # Layout
//! - [`compression`]: `Content-Encoding: gzip` with a limit on the inflated size.
//! - [`spanlog`]: the span-log routes' body (a JSON array, or `{"data": [...]}`).
//! - [`otlp`]: the OTLP routes' body (protobuf or JSON), each span mapped to a span log.
//! - [`peer`]: other tracing tools' exports (Phoenix, MLflow, Langfuse), record by record,
//!   with a report of what each source field became.
//! - [`request_log`]: the logging API's body (one request log, or an array), ids generated
//!   by the caller's [`request_log::IdSource`] where a log carries none.
//! - [`redact`]: redaction rules (built-in detectors and custom regexes) applied to decoded
//!   spans before they are stored.
//!
//! Architecture invariant: decoding is pure (bytes in, spans and rejections out): no IO, no
//! clock (the caller passes the receive time), no store.
//! A bad item is data ([`Rejection`]), never an error for the whole body; [`DecodeError`] is
//! only for bodies that cannot be read at all.

pub mod compression;
pub mod otlp;
pub mod peer;
pub mod redact;
pub mod request_log;
pub mod spanlog;

use serde_json::Value;
use tracehouse_core::{FieldError, IngestContext, Span, span_from_log};

/// One item of a batch that was not stored, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Position of the item in the batch, from 0.
    pub index: usize,
    /// The field at fault, empty when the item as a whole is wrong.
    pub field: String,
    /// What is wrong.
    pub error: String,
}

/// A decoded batch: the valid spans, in order, and the rejected items.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Decoded {
    /// Spans that passed validation.
    pub spans: Vec<Span>,
    /// Items that did not.
    pub rejected: Vec<Rejection>,
}

/// Validates span-log items (or why each could not be one) with `span_from_log`, in order: a
/// rejection's index is the item's position. Every decoder ends here.
pub(crate) fn validate_each(
    items: impl IntoIterator<Item = Result<Value, FieldError>>,
    context: IngestContext<'_>,
) -> Decoded {
    let mut decoded = Decoded::default();
    for (index, item) in items.into_iter().enumerate() {
        match item.and_then(|item| span_from_log(item, context)) {
            Ok(span) => decoded.spans.push(span),
            Err(error) => decoded.rejected.push(Rejection {
                index,
                field: error.field,
                error: error.message,
            }),
        }
    }
    decoded
}

/// Why a whole body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The body is not JSON; line and column point at the problem.
    #[error("body is not valid JSON: {message} at line {line} column {column}")]
    InvalidJson {
        /// What the parser expected.
        message: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// The JSON is valid but not of the expected shape.
    #[error("{0}")]
    WrongShape(String),
    /// The body says gzip but is not valid gzip.
    #[error("body is not valid gzip: {0}")]
    BadGzip(#[source] std::io::Error),
    /// The inflated body is larger than allowed.
    #[error("decompressed body exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The body is not a protobuf `ExportTraceServiceRequest`.
    #[error("body is not a valid OTLP protobuf request: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// A batch holds more items than allowed in one request.
    #[error("batch has {count} items, the limit is {limit} per request")]
    TooManyItems {
        /// Items in the batch.
        count: usize,
        /// The limit.
        limit: usize,
    },
}

impl DecodeError {
    pub(crate) fn from_json(error: &serde_json::Error) -> Self {
        // serde_json's message ends with " at line L column C"; keep only the reason.
        let full = error.to_string();
        let message = match full.rfind(" at line ") {
            Some(cut) => full[..cut].to_owned(),
            None => full,
        };
        DecodeError::InvalidJson {
            message,
            line: error.line(),
            column: error.column(),
        }
    }
}
