//! Helpers shared by the store test binaries.

use serde_json::json;
use tracehouse_core::{
    ApiKeyHash, IngestContext, PriceTable, ProjectId, ProjectName, Span, SpanStore, Timestamp,
    span_from_log,
};

/// Creates a key for project "acme" in `store` and returns the project it authenticates as.
pub(crate) async fn acme_project(store: &dyn SpanStore) -> ProjectId {
    let key = store
        .create_key(&"acme".parse::<ProjectName>().unwrap(), "test")
        .await
        .unwrap();
    store
        .authenticate(&ApiKeyHash::of_secret(&key.secret))
        .await
        .unwrap()
        .unwrap()
        .id
}

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
