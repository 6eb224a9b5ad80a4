//! The span: one LLM call, tool call or agent step, with its hot fields typed and everything else kept as sent.

use serde_json::{Map, Value};

use crate::ids::{SpanId, TraceId};
use crate::time::Timestamp;

/// What kind of work a span records, lowercase (`chat`, `workflow`, `tool`...).
///
/// Clients invent new kinds, so this is an open set: known kinds are constants, anything else
/// is kept as sent (lowercased) rather than coerced.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LogType(String);

impl LogType {
    /// Kinds that are a call to a model; they count towards a trace's `llm_call_count`.
    pub const LLM_KINDS: [&'static str; 7] = [
        "chat",
        "completion",
        "response",
        "embedding",
        "transcription",
        "speech",
        "generation",
    ];

    /// The kind given to spans that carry no hint at all.
    pub fn custom() -> Self {
        Self("custom".to_owned())
    }

    /// Builds a kind from client text; case and surrounding whitespace are ignored.
    pub fn new(raw: &str) -> Self {
        Self(raw.trim().to_ascii_lowercase())
    }

    /// The lowercase name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether spans of this kind are model calls.
    pub fn is_llm_call(&self) -> bool {
        Self::LLM_KINDS.contains(&self.0.as_str())
    }

    /// Infers the kind of a span that did not say, from its name and content.
    ///
    /// Order matters: an explicit framework suffix (`joke.workflow`) is the strongest hint,
    /// then the shape of the content, then the model.
    pub fn infer(span_name: &str, content: &Map<String, Value>, model: Option<&str>) -> Self {
        const SUFFIXES: [(&str, &str); 8] = [
            (".workflow", "workflow"),
            (".task", "task"),
            (".tool", "tool"),
            (".agent", "agent"),
            (".chat", "chat"),
            (".completion", "completion"),
            (".embeddings", "embedding"),
            (".embedding", "embedding"),
        ];
        let name = span_name.to_ascii_lowercase();
        if let Some((_, kind)) = SUFFIXES.iter().find(|(suffix, _)| name.ends_with(suffix)) {
            return Self((*kind).to_owned());
        }
        let model_says_embedding = model.is_some_and(|m| m.to_ascii_lowercase().contains("embed"));
        if model_says_embedding {
            return Self("embedding".to_owned());
        }
        let has_messages = [
            "prompt_messages",
            "completion_message",
            "completion_messages",
        ]
        .iter()
        .any(|key| content.get(*key).is_some_and(|v| !v.is_null()));
        if has_messages || model.is_some_and(|m| !m.is_empty()) {
            return Self("chat".to_owned());
        }
        Self::custom()
    }
}

/// Whether a span succeeded, failed, or has not ended yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpanStatus {
    /// No error signal was present.
    Success,
    /// The client said so through `status`, `error_bit`, `status_code >= 400`, `error_message` or OTLP status 2.
    Error,
    /// Started and not ended: sent with a start and neither end nor latency, or with
    /// `status: "running"`. Its end is its start until the client sends it again with an end.
    Running,
}

impl SpanStatus {
    /// `success`, `error` or `running`, as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            SpanStatus::Success => "success",
            SpanStatus::Error => "error",
            SpanStatus::Running => "running",
        }
    }

    /// Parses the API spelling; anything but `error` and `running` is success.
    pub fn from_api(raw: &str) -> Self {
        if raw.eq_ignore_ascii_case("error") {
            SpanStatus::Error
        } else if raw.eq_ignore_ascii_case("running") {
            SpanStatus::Running
        } else {
            SpanStatus::Success
        }
    }
}

/// Token counts of a model call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TokenUsage {
    /// Input tokens.
    pub prompt_tokens: Option<u64>,
    /// Output tokens.
    pub completion_tokens: Option<u64>,
    /// Total as sent, or prompt + completion.
    pub total_tokens: Option<u64>,
}

/// Identifiers that group spans and traces for filtering.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SpanGrouping {
    /// The end user the call was made for.
    pub customer_identifier: Option<String>,
    /// A user session.
    pub session_identifier: Option<String>,
    /// A conversation thread.
    pub thread_identifier: Option<String>,
    /// A group of related traces.
    pub trace_group_identifier: Option<String>,
    /// Deployment environment (`prod`, `staging`...).
    pub environment: Option<String>,
}

/// One stored span. Built only through validation ([`crate::spanlog`]), so every value here is
/// already checked: the store and the API never re-validate.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// Trace this span belongs to.
    pub trace_id: TraceId,
    /// This span's id, unique within its trace.
    pub span_id: SpanId,
    /// Parent span, `None` for a root.
    pub parent_id: Option<SpanId>,
    /// `span_name`, empty when the client sent none.
    pub name: String,
    /// Kind of work, given or inferred.
    pub log_type: LogType,
    /// Start of the work.
    pub start: Timestamp,
    /// End of the work (`timestamp` on the wire).
    pub end: Timestamp,
    /// Duration in seconds, as sent or derived from start and end.
    pub latency: f64,
    /// The client sent no time at all, so start and end are the receive time; such spans
    /// do not stretch their trace's time range.
    pub times_inferred: bool,
    /// Model name.
    pub model: Option<String>,
    /// Model provider (`openai`...).
    pub provider_id: Option<String>,
    /// Success or error.
    pub status: SpanStatus,
    /// HTTP-like status code, when sent.
    pub status_code: Option<i64>,
    /// Error text, when the span failed.
    pub error_message: Option<String>,
    /// Token counts.
    pub usage: TokenUsage,
    /// Cost in USD, as sent or computed from the price table.
    pub cost: Option<f64>,
    /// Customer, session, environment and other grouping ids.
    pub grouping: SpanGrouping,
    /// Nearest workflow name.
    pub workflow_name: Option<String>,
    /// Path within the workflow.
    pub path: Option<String>,
    /// Every other field exactly as sent (input, output, messages, metadata, unknown fields).
    pub content: Map<String, Value>,
}

impl Span {
    /// Whether this span has no parent inside its trace as sent (the tree may still find it orphaned).
    pub fn is_root(&self) -> bool {
        self.parent_id
            .as_ref()
            .is_none_or(|parent| *parent == self.span_id)
    }

    /// `metadata` as sent, if it is an object.
    pub fn metadata(&self) -> Option<&Map<String, Value>> {
        self.content.get("metadata").and_then(Value::as_object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn infer(name: &str, content: Value, model: Option<&str>) -> String {
        let Value::Object(map) = content else {
            return String::from("not an object");
        };
        LogType::infer(name, &map, model).as_str().to_owned()
    }

    #[test]
    fn infers_log_type_from_suffix_then_content_then_model() {
        assert_eq!(
            infer("pirate_joke.workflow", Value::Object(Map::new()), None),
            "workflow"
        );
        assert_eq!(
            infer("store_joke.task", Value::Object(Map::new()), None),
            "task"
        );
        assert_eq!(
            infer("search.tool", Value::Object(Map::new()), None),
            "tool"
        );
        assert_eq!(
            infer("planner.agent", Value::Object(Map::new()), None),
            "agent"
        );
        assert_eq!(
            infer("openai.chat", Value::Object(Map::new()), Some("gpt-4o")),
            "chat"
        );
        assert_eq!(
            infer(
                "openai.embeddings",
                Value::Object(Map::new()),
                Some("text-embedding-3-small")
            ),
            "embedding"
        );
        assert_eq!(
            infer(
                "call",
                serde_json::json!({"prompt_messages": [{"role": "user"}]}),
                None
            ),
            "chat"
        );
        assert_eq!(
            infer("call", Value::Object(Map::new()), Some("gpt-4o")),
            "chat"
        );
        assert_eq!(infer("prepare", Value::Object(Map::new()), None), "custom");
    }

    #[test]
    fn llm_kinds_count_as_calls() {
        assert!(LogType::new("Chat").is_llm_call());
        assert!(LogType::new("embedding").is_llm_call());
        assert!(!LogType::new("workflow").is_llm_call());
        assert!(!LogType::custom().is_llm_call());
    }
}
