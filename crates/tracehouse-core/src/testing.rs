//! Spans for tests, made the way ingest makes them, so tests of every crate above core build
//! their fixtures with the one validation path instead of filling `Span` fields by hand.
//!
//! Only compiled for core's own tests and with the `testing` feature, which other crates turn
//! on for their dev-dependency: it panics on invalid input, as a test wants.

use serde_json::{Value, json};

use crate::cost::PriceTable;
use crate::span::Span;
use crate::spanlog::{IngestContext, span_from_log};
use crate::time::Timestamp;

/// A validated span of `trace` with `id` (and `parent`), starting 2025-01-01 and lasting a
/// second, with `extra` span-log fields on top (they replace the defaults of the same name).
///
/// # Panics
/// When the resulting span log does not validate.
#[allow(clippy::expect_used)]
pub fn span(trace: &str, id: &str, parent: Option<&str>, extra: Value) -> Span {
    let prices = PriceTable::builtin();
    let mut item = json!({"trace_unique_id": trace, "span_unique_id": id,
        "start_time": "2025-01-01T00:00:00Z", "latency": 1.0});
    if let Some(parent) = parent {
        item["span_parent_id"] = json!(parent);
    }
    if let (Some(item), Value::Object(extra)) = (item.as_object_mut(), extra) {
        item.extend(extra);
    }
    span_from_log(
        item,
        IngestContext {
            received_at: Timestamp::from_unix_nanos(0),
            prices: &prices,
        },
    )
    .expect("a test span log validates")
}
