//! Helpers shared by the store test binaries.

use serde_json::json;
use tracehouse_core::{IngestContext, PriceTable, Span, Timestamp, span_from_log};

/// A validated span of `trace` with `id` (and `parent`), starting 2025-01-01 and lasting a
/// second, with `extra` span-log fields on top.
pub(crate) fn span(trace: &str, id: &str, parent: Option<&str>, extra: serde_json::Value) -> Span {
    let prices = PriceTable::builtin();
    let mut item = json!({"trace_unique_id": trace, "span_unique_id": id,
        "start_time": "2025-01-01T00:00:00Z", "latency": 1.0});
    if let Some(parent) = parent {
        item["span_parent_id"] = json!(parent);
    }
    if let (Some(item), serde_json::Value::Object(extra)) = (item.as_object_mut(), extra) {
        item.extend(extra);
    }
    span_from_log(
        item,
        IngestContext {
            received_at: Timestamp::from_unix_nanos(0),
            prices: &prices,
        },
    )
    .unwrap()
}
