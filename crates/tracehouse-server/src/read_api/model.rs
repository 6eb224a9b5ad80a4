//! Wire shapes of spans and traces as the vendor's read API returns them.

use serde_json::{Map, Value, json};
use tracehouse_core::{
    LogId, Span, SpanStatus, StoredTrace, Timestamp, TraceListItem, TraceSummary, TreeNode,
    build_tree,
};

/// Deepest nesting of `children` rendered; deeper descendants are listed flat under the node
/// at this depth (marked `depth_truncated`), so a hostile parent chain cannot blow the stack
/// of the JSON encoder.
pub(crate) const MAX_TREE_DEPTH: usize = 100;

fn optional<T: Into<Value>>(value: Option<T>) -> Value {
    value.map_or(Value::Null, Into::into)
}

/// A span with every stored field: the content as sent, then the typed fields (so a content
/// key can never shadow them), `timestamp` also exposed as `end_time`, and the span's
/// [`LogId`] as `id` and `unique_id`.
pub(crate) fn span_json(span: &Span) -> Map<String, Value> {
    let mut object = span.content.clone();
    let end = span.end.to_rfc3339();
    let log_id = LogId::of(&span.trace_id, &span.span_id);
    let typed = [
        ("id", json!(log_id.as_str())),
        ("unique_id", json!(log_id.as_str())),
        ("trace_unique_id", json!(span.trace_id.as_str())),
        ("span_unique_id", json!(span.span_id.as_str())),
        (
            "span_parent_id",
            optional(span.parent_id.as_ref().map(|p| p.as_str())),
        ),
        ("span_name", json!(span.name)),
        ("log_type", json!(span.log_type.as_str())),
        ("start_time", json!(span.start.to_rfc3339())),
        ("timestamp", json!(end)),
        ("end_time", json!(end)),
        ("latency", json!(span.latency)),
        ("model", optional(span.model.clone())),
        ("provider_id", optional(span.provider_id.clone())),
        ("status", json!(span.status.as_str())),
        ("status_code", optional(span.status_code)),
        ("error_message", optional(span.error_message.clone())),
        ("prompt_tokens", optional(span.usage.prompt_tokens)),
        ("completion_tokens", optional(span.usage.completion_tokens)),
        ("total_tokens", optional(span.usage.total_tokens)),
        ("cost", optional(span.cost)),
        (
            "customer_identifier",
            optional(span.grouping.customer_identifier.clone()),
        ),
        (
            "session_identifier",
            optional(span.grouping.session_identifier.clone()),
        ),
        (
            "thread_identifier",
            optional(span.grouping.thread_identifier.clone()),
        ),
        (
            "trace_group_identifier",
            optional(span.grouping.trace_group_identifier.clone()),
        ),
        ("environment", optional(span.grouping.environment.clone())),
        ("span_workflow_name", optional(span.workflow_name.clone())),
        ("span_path", optional(span.path.clone())),
    ];
    for (key, value) in typed {
        object.insert(key.to_owned(), value);
    }
    if span.times_inferred {
        object.insert("times_inferred".to_owned(), json!(true));
    }
    object
}

/// When reads show a running span as `abandoned`: it started before `abandoned_before`
/// (`--running-timeout` ago). Stored data and exports keep `running`, so a span that ends
/// late still closes normally.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunningClock {
    pub(crate) abandoned_before: Timestamp,
}

impl RunningClock {
    /// A span's status as reads show it.
    pub(crate) fn span_status(self, span: &Span) -> &'static str {
        if span.status == SpanStatus::Running && span.start < self.abandoned_before {
            "abandoned"
        } else {
            span.status.as_str()
        }
    }

    /// A trace's status: `running` while a span runs (`abandoned` once even its latest
    /// activity is older than the timeout, so every running span of it is), else `error`
    /// when a span failed, else `success`.
    pub(crate) fn trace_status(self, summary: &TraceSummary) -> &'static str {
        if summary.running_count > 0 {
            if summary.end < self.abandoned_before {
                "abandoned"
            } else {
                "running"
            }
        } else if summary.error_count > 0 {
            "error"
        } else {
            "success"
        }
    }

    /// A span as reads show it: [`span_json`] with the status as of now.
    pub(crate) fn span_json(self, span: &Span) -> Map<String, Value> {
        let mut object = span_json(span);
        object.insert("status".to_owned(), json!(self.span_status(span)));
        object
    }
}

/// A trace's aggregates in the list/retrieve shape.
pub(crate) fn trace_summary_json(
    summary: &TraceSummary,
    clock: RunningClock,
) -> Map<String, Value> {
    let fields = [
        ("trace_unique_id", json!(summary.trace_id.as_str())),
        (
            "root_span_unique_id",
            optional(summary.root_span_id.as_ref().map(|s| s.as_str())),
        ),
        ("name", json!(summary.name)),
        ("environment", optional(summary.environment.clone())),
        (
            "customer_identifier",
            optional(summary.customer_identifier.clone()),
        ),
        (
            "session_identifier",
            optional(summary.session_identifier.clone()),
        ),
        (
            "thread_identifier",
            optional(summary.thread_identifier.clone()),
        ),
        (
            "trace_group_identifier",
            optional(summary.trace_group_identifier.clone()),
        ),
        ("start_time", json!(summary.start.to_rfc3339())),
        ("end_time", json!(summary.end.to_rfc3339())),
        ("duration", json!(summary.duration)),
        ("span_count", json!(summary.span_count)),
        ("llm_call_count", json!(summary.llm_call_count)),
        ("error_count", json!(summary.error_count)),
        ("running_count", json!(summary.running_count)),
        ("status", json!(clock.trace_status(summary))),
        ("total_cost", json!(summary.total_cost)),
        ("total_prompt_tokens", json!(summary.total_prompt_tokens)),
        (
            "total_completion_tokens",
            json!(summary.total_completion_tokens),
        ),
        ("total_tokens", json!(summary.total_tokens)),
        ("models", json!(summary.models)),
    ];
    fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// A trace in a list: aggregates plus the root span's input, output and metadata.
pub(crate) fn trace_list_item_json(
    item: &TraceListItem,
    clock: RunningClock,
) -> Map<String, Value> {
    let mut object = trace_summary_json(&item.summary, clock);
    object.insert(
        "input".to_owned(),
        item.input.clone().unwrap_or(Value::Null),
    );
    object.insert(
        "output".to_owned(),
        item.output.clone().unwrap_or(Value::Null),
    );
    object.insert(
        "metadata".to_owned(),
        item.metadata.clone().unwrap_or(Value::Null),
    );
    object
}

/// One trace with its aggregates, root input/output/metadata, models and `span_tree`.
pub(crate) fn trace_json(trace: &StoredTrace, clock: RunningClock) -> Map<String, Value> {
    let mut object = trace_summary_json(&trace.summary, clock);
    let root = trace
        .summary
        .root_span_id
        .as_ref()
        .and_then(|id| trace.spans.iter().find(|span| span.span_id == *id));
    for field in ["input", "output", "metadata"] {
        let value = root
            .and_then(|root| root.content.get(field))
            .cloned()
            .unwrap_or(Value::Null);
        object.insert(field.to_owned(), value);
    }
    let tree = build_tree(&trace.spans);
    let nodes: Vec<Value> = tree
        .iter()
        .map(|node| node_json(&trace.spans, node, 1, clock))
        .collect();
    object.insert("span_tree".to_owned(), Value::Array(nodes));
    object
}

fn node_json(spans: &[Span], node: &TreeNode, depth: usize, clock: RunningClock) -> Value {
    let mut object = clock.span_json(&spans[node.span]);
    object.insert("orphan".to_owned(), json!(node.orphan));
    let children: Vec<Value> = if depth < MAX_TREE_DEPTH {
        node.children
            .iter()
            .map(|child| node_json(spans, child, depth + 1, clock))
            .collect()
    } else {
        if !node.children.is_empty() {
            object.insert("depth_truncated".to_owned(), json!(true));
        }
        flatten_descendants(spans, node, clock)
    };
    object.insert("children".to_owned(), Value::Array(children));
    Value::Object(object)
}

fn flatten_descendants(spans: &[Span], node: &TreeNode, clock: RunningClock) -> Vec<Value> {
    let mut flat = Vec::new();
    let mut stack: Vec<&TreeNode> = node.children.iter().rev().collect();
    while let Some(next) = stack.pop() {
        let mut object = clock.span_json(&spans[next.span]);
        object.insert("orphan".to_owned(), json!(next.orphan));
        object.insert("children".to_owned(), json!([]));
        flat.push(Value::Object(object));
        stack.extend(next.children.iter().rev());
    }
    flat
}
