//! `GET|POST /api/log_threads/` and `GET /api/log_thread/{thread_identifier}/`: conversations,
//! listed with their totals and a preview of their first user message, and one conversation as
//! its traces in time order with the LLM turns of each.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use futures_util::future::try_join_all;
use serde_json::{Map, Value, json};
use tracehouse_core::groups::{GroupQuery, Grouping, TraceGroup};
use tracehouse_core::query::{
    Condition, Direction, FilterValue, MAX_PAGE_SIZE, Operator, Page, Sort, SpanColumn, SpanField,
    SpanFilter, SpanQuery, TraceColumn, TraceQuery, parse_page,
};
use tracehouse_core::{LogType, ProjectId, Span, StoredTrace, TraceId};

use super::{GroupPage, totals_json};
use crate::AppState;
use crate::auth::ReadKey;
use crate::error::ApiError;
use crate::read_api::ListRequest;
use crate::read_api::model::span_json;

/// Characters of a thread's first user message shown in the list.
const PREVIEW_CHARS: usize = 200;
/// Traces of one thread answered at once when `page_size` does not say.
const DEFAULT_THREAD_PAGE: u64 = 100;
/// Most traces of one thread answered at once: each is read whole.
const MAX_THREAD_PAGE: u64 = 200;

type JsonObject = Json<Map<String, Value>>;

/// One thread as listed.
fn thread_json(group: &TraceGroup, first_user_message: Option<String>) -> Value {
    let mut object = Map::new();
    object.insert("id".to_owned(), json!(group.key));
    object.insert("thread_identifier".to_owned(), json!(group.key));
    object.insert(
        "customer_identifier".to_owned(),
        json!(group.customer_identifier),
    );
    object.extend(totals_json(group));
    object.insert(
        "first_trace_unique_id".to_owned(),
        json!(group.first_trace_id.as_ref().map(TraceId::as_str)),
    );
    object.insert("first_user_message".to_owned(), json!(first_user_message));
    Value::Object(object)
}

/// `GET|POST /api/log_threads/`: a page of the project's threads.
pub(super) async fn list_threads(
    State(state): State<AppState>,
    ReadKey(project): ReadKey,
    request: ListRequest,
    body: Bytes,
) -> Result<JsonObject, ApiError> {
    let page = GroupPage::read(&state, project.id, Grouping::Thread, request, &body).await?;
    let previews = first_user_messages(&state, project.id, &page.listing.items).await?;
    let results = page
        .listing
        .items
        .iter()
        .zip(previews)
        .map(|(group, preview)| thread_json(group, preview))
        .collect();
    Ok(page.envelope(results))
}

/// The first user message of each group's first trace, shortened: what a thread list shows of
/// a conversation. The LLM spans of every first trace are read in one span list; a trace whose
/// LLM spans hold no user message (or that has none) is read whole, for a text root input.
async fn first_user_messages(
    state: &AppState,
    project: ProjectId,
    groups: &[TraceGroup],
) -> Result<Vec<Option<String>>, ApiError> {
    let ids: Vec<&TraceId> = groups
        .iter()
        .filter_map(|g| g.first_trace_id.as_ref())
        .collect();
    let mut found: HashMap<&str, String> = HashMap::new();
    if !ids.is_empty() {
        let query = SpanQuery {
            filter: SpanFilter {
                conditions: vec![
                    Condition {
                        field: SpanField::Column(SpanColumn::TraceId),
                        operator: Operator::In,
                        values: ids
                            .iter()
                            .map(|id| FilterValue::Text(id.as_str().to_owned()))
                            .collect(),
                    },
                    Condition {
                        field: SpanField::Column(SpanColumn::LogType),
                        operator: Operator::In,
                        values: LogType::LLM_KINDS
                            .iter()
                            .map(|kind| FilterValue::Text((*kind).to_owned()))
                            .collect(),
                    },
                ],
                ..SpanFilter::default()
            },
            // In trace id order the spans are read off the primary key, trace by trace; by
            // start they would be looked for along the whole time index.
            sort: Sort {
                column: SpanColumn::TraceId,
                direction: Direction::Ascending,
            },
            page: Page {
                number: 1,
                size: MAX_PAGE_SIZE,
            },
            as_of: None,
        };
        let mut spans = state.store.list_spans(project, &query).await?.items;
        spans.sort_by(|a, b| (&a.trace_id, a.start).cmp(&(&b.trace_id, b.start)));
        for id in &ids {
            let text = spans
                .iter()
                .filter(|span| span.trace_id == **id)
                .find_map(|span| first_user_text(&span_json(span)));
            if let Some(text) = text {
                found.insert(id.as_str(), text);
            }
        }
    }
    let mut previews = Vec::with_capacity(groups.len());
    for group in groups {
        let known = group
            .first_trace_id
            .as_ref()
            .and_then(|id| found.remove(id.as_str()));
        previews.push(match known {
            Some(text) => Some(shorten(&text, PREVIEW_CHARS)),
            None => first_user_message(state, project, group.first_trace_id.as_ref()).await?,
        });
    }
    Ok(previews)
}

/// A span's first user message, else a plain-text input.
fn first_user_text(object: &Map<String, Value>) -> Option<String> {
    prompt_messages(object)
        .iter()
        .find(|message| message.get("role").and_then(Value::as_str) == Some("user"))
        .map(message_text)
        .or_else(|| match object.get("input") {
            Some(Value::String(text)) if maybe_json(text).is_none() => Some(text.clone()),
            _ => None,
        })
}

/// The first user message of a trace read whole, shortened.
async fn first_user_message(
    state: &AppState,
    project: ProjectId,
    trace_id: Option<&TraceId>,
) -> Result<Option<String>, ApiError> {
    let Some(trace_id) = trace_id else {
        return Ok(None);
    };
    let Some(trace) = state.store.get_trace(project, trace_id).await? else {
        return Ok(None);
    };
    let text = trace
        .spans
        .iter()
        .find_map(|span| first_user_text(&span_json(span)));
    Ok(text.map(|text| shorten(&text, PREVIEW_CHARS)))
}

fn shorten(text: &str, chars: usize) -> String {
    let text = text.trim();
    match text.char_indices().nth(chars) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// JSON inside a string, when the string holds an array or object.
fn maybe_json(text: &str) -> Option<Value> {
    let trimmed = text.trim_start();
    if !(trimmed.starts_with('[') || trimmed.starts_with('{')) {
        return None;
    }
    serde_json::from_str(trimmed).ok()
}

fn is_message(value: &Value) -> bool {
    value.get("role").is_some_and(Value::is_string)
}

fn as_messages(value: &Value) -> Option<Vec<Value>> {
    let parsed;
    let value = match value {
        Value::String(text) => {
            parsed = maybe_json(text)?;
            &parsed
        }
        other => other,
    };
    match value {
        Value::Array(items) if !items.is_empty() && items.iter().all(is_message) => {
            Some(items.clone())
        }
        _ => None,
    }
}

/// A span's prompt: `prompt_messages`, else an `input` that is a list of messages.
fn prompt_messages(span: &Map<String, Value>) -> Vec<Value> {
    ["prompt_messages", "input"]
        .iter()
        .find_map(|key| span.get(*key).and_then(as_messages))
        .unwrap_or_default()
}

/// A span's completion: `completion_message`, the last of `completion_messages`, else an
/// `output` that is a message or a list of them.
fn completion(span: &Map<String, Value>) -> Option<Value> {
    if let Some(message) = span.get("completion_message").filter(|m| is_message(m)) {
        return Some(message.clone());
    }
    for key in ["completion_messages", "output"] {
        let Some(value) = span.get(key) else { continue };
        if is_message(value) {
            return Some(value.clone());
        }
        if let Value::String(text) = value
            && let Some(parsed) = maybe_json(text).filter(is_message)
        {
            return Some(parsed);
        }
        if let Some(last) = as_messages(value).and_then(|mut list| list.pop()) {
            return Some(last);
        }
    }
    None
}

/// The text of a message's content: a string, or its text parts joined.
fn message_text(message: &Value) -> String {
    match message.get("content") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| match part {
                Value::String(text) => Some(text.as_str()),
                other => other.get("text").and_then(Value::as_str),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// What identifies a message across turns: a client re-sends the history with each call, not
/// always byte for byte (a completion comes back with fields the next prompt leaves out).
fn message_key(message: &Value) -> (String, String) {
    (
        message
            .get("role")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        message_text(message),
    )
}

/// The conversation so far, to tell which of a turn's prompt messages are new.
#[derive(Default)]
struct History {
    messages: Vec<(String, String)>,
}

impl History {
    /// The prompt's messages after the longest prefix it shares with the history, then the
    /// history becomes the prompt plus the completion.
    fn new_messages(&mut self, prompt: &[Value], completion: Option<&Value>) -> Vec<Value> {
        let keys: Vec<(String, String)> = prompt.iter().map(message_key).collect();
        let shared = keys
            .iter()
            .zip(&self.messages)
            .take_while(|(a, b)| a == b)
            .count();
        let fresh = prompt[shared..].to_vec();
        self.messages = keys;
        self.messages.extend(completion.map(message_key));
        fresh
    }
}

fn turn_json(span: &Span, history: &mut History) -> Value {
    let object = span_json(span);
    let prompt = prompt_messages(&object);
    let completion = completion(&object);
    let new_messages = history.new_messages(&prompt, completion.as_ref());
    let field = |key: &str| object.get(key).cloned().unwrap_or(Value::Null);
    json!({
        "id": field("id"),
        "span_unique_id": span.span_id.as_str(),
        "span_name": span.name,
        "model": span.model,
        "start_time": span.start.to_rfc3339(),
        "latency": span.latency,
        "cost": span.cost,
        "prompt_tokens": span.usage.prompt_tokens,
        "completion_tokens": span.usage.completion_tokens,
        "total_tokens": span.usage.total_tokens,
        "status": span.status.as_str(),
        "error_message": span.error_message,
        "prompt_message_count": prompt.len(),
        "new_messages": new_messages,
        "completion_message": completion,
        "positive_feedback": field("positive_feedback"),
    })
}

fn trace_turns_json(trace: &StoredTrace, history: &mut History) -> Value {
    let summary = &trace.summary;
    let turns: Vec<Value> = trace
        .spans
        .iter()
        .filter(|span| span.log_type.is_llm_call())
        .map(|span| turn_json(span, history))
        .collect();
    json!({
        "trace_unique_id": summary.trace_id.as_str(),
        "name": summary.name,
        "start_time": summary.start.to_rfc3339(),
        "end_time": summary.end.to_rfc3339(),
        "duration": summary.duration,
        "span_count": summary.span_count,
        "llm_call_count": summary.llm_call_count,
        "error_count": summary.error_count,
        "total_cost": summary.total_cost,
        "total_tokens": summary.total_tokens,
        "total_prompt_tokens": summary.total_prompt_tokens,
        "total_completion_tokens": summary.total_completion_tokens,
        "customer_identifier": summary.customer_identifier,
        "turns": turns,
    })
}

/// `GET /api/log_thread/{thread_identifier}/`: the thread's totals and its traces in time order
/// (`page`/`page_size` walk long threads), each with its LLM turns: the prompt messages new
/// since the previous turn and the completion, so a client renders the conversation from this
/// one answer.
pub(super) async fn get_thread(
    State(state): State<AppState>,
    ReadKey(project): ReadKey,
    Path(thread): Path<String>,
    Query(query_string): Query<HashMap<String, String>>,
) -> Result<JsonObject, ApiError> {
    let get = |key: &str| query_string.get(key).map(String::as_str);
    let mut page = parse_page(get("page"), None)?;
    page.size = match get("page_size") {
        None => DEFAULT_THREAD_PAGE,
        Some(raw) => parse_page(None, Some(raw))?.size.min(MAX_THREAD_PAGE),
    };
    let not_found = || ApiError::NotFound(format!("thread {thread:?} not found"));
    let mut groups = GroupQuery::new(Grouping::Thread);
    groups.keys = Some(vec![thread.clone()]);
    let group = state
        .store
        .list_trace_groups(project.id, &groups)
        .await?
        .items
        .into_iter()
        .next()
        .ok_or_else(not_found)?;
    let traces = thread_traces(&state, project.id, &thread, page).await?;
    // The turns of a page start from the last turn of the page before, so the first prompt
    // of a later page is not shown as all new.
    let mut history = History::default();
    if page.number > 1
        && let Some(before) = thread_traces(
            &state,
            project.id,
            &thread,
            Page {
                number: page.offset(),
                size: 1,
            },
        )
        .await?
        .last()
    {
        trace_turns_json(before, &mut history);
    }
    let rendered: Vec<Value> = traces
        .iter()
        .map(|trace| trace_turns_json(trace, &mut history))
        .collect();
    let shown = page.offset() + traces.len() as u64;
    let mut object = Map::new();
    object.insert("thread_identifier".to_owned(), json!(thread));
    object.insert(
        "customer_identifier".to_owned(),
        json!(group.customer_identifier),
    );
    object.extend(totals_json(&group));
    object.insert("page".to_owned(), json!(page.number));
    object.insert(
        "next_page".to_owned(),
        json!((shown < group.trace_count).then_some(page.number + 1)),
    );
    object.insert("traces".to_owned(), Value::Array(rendered));
    Ok(Json(object))
}

/// One page of a thread's traces, whole, oldest first.
async fn thread_traces(
    state: &AppState,
    project: ProjectId,
    thread: &str,
    page: Page,
) -> Result<Vec<StoredTrace>, ApiError> {
    let query = TraceQuery {
        conditions: vec![Condition {
            field: TraceColumn::ThreadIdentifier,
            operator: Operator::Equals,
            values: vec![FilterValue::Text(thread.to_owned())],
        }],
        sort: Sort {
            column: TraceColumn::StartTime,
            direction: Direction::Ascending,
        },
        page,
        ..TraceQuery::default()
    };
    let listing = state.store.list_traces(project, &query).await?;
    let traces = try_join_all(
        listing
            .items
            .iter()
            .map(|item| state.store.get_trace(project, &item.summary.trace_id)),
    )
    .await?;
    // A trace deleted between the two reads is left out.
    Ok(traces.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(role: &str, content: &str) -> Value {
        json!({"role": role, "content": content})
    }

    #[test]
    fn each_turn_shows_only_what_the_client_added_since_the_last() {
        let mut history = History::default();
        let first = [message("system", "be brief"), message("user", "hi")];
        let answer = json!({"role": "assistant", "content": "hello", "refusal": null});
        assert_eq!(history.new_messages(&first, Some(&answer)).len(), 2);
        let second = [
            message("system", "be brief"),
            message("user", "hi"),
            message("assistant", "hello"),
            message("user", "how are you?"),
        ];
        let fresh = history.new_messages(&second, Some(&message("assistant", "fine")));
        assert_eq!(fresh, [message("user", "how are you?")]);
        // A client that starts over shows its whole prompt again.
        let restart = [message("user", "new topic")];
        assert_eq!(history.new_messages(&restart, None), restart);
    }

    #[test]
    fn messages_are_found_in_typed_fields_and_in_json_text() {
        let span: Map<String, Value> = serde_json::from_value(json!({
            "input": "[{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"a\"}, {\"type\": \"text\", \"text\": \"b\"}]}]",
            "output": "{\"role\": \"assistant\", \"content\": \"c\"}",
        }))
        .unwrap();
        let prompt = prompt_messages(&span);
        assert_eq!(message_text(&prompt[0]), "a\nb");
        assert_eq!(message_text(&completion(&span).unwrap()), "c");
        assert_eq!(shorten("  abcdef ", 3), "abc…");
    }
}
