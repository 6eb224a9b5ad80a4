//! Messages and tool definitions that conventions spread over many attributes
//! (`gen_ai.prompt.0.role`, `gen_ai.prompt.0.content`...) or pack into one JSON attribute
//! (`gen_ai.input.messages`), rebuilt in the chat shape span logs use: `{"role", "content",
//! "tool_calls": [{"id", "type": "function", "function": {"name", "arguments"}}]}`.

use serde_json::{Map, Value, json};

use super::value::parse_json_text;

/// Longest attribute path below an item (`tool_calls.0.function.name` is 4); longer keys are
/// kept in metadata rather than rebuilt into ever deeper JSON.
const MAX_PATH_SEGMENTS: usize = 8;

/// How a convention spells a list over indexed attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum IndexedList {
    /// Traceloop and the Respan SDKs: `<prefix>N.role`, `.content`, `.tool_calls.M.name|arguments`.
    Messages,
    /// OpenInference: `<prefix>N.message.role`, `.message.tool_calls.M.tool_call.function.name`,
    /// `.message.contents.M.message_content.text`.
    OpenInferenceMessages,
    /// Traceloop tool definitions: `llm.request.functions.N.name|description|parameters`.
    Functions,
}

impl IndexedList {
    /// Segments OpenInference wraps each list item in; dropped so that its items look like
    /// everyone else's.
    fn wrappers(self) -> &'static [&'static str] {
        match self {
            IndexedList::OpenInferenceMessages => &["message", "tool_call", "message_content"],
            IndexedList::Messages | IndexedList::Functions => &[],
        }
    }
}

/// One attribute of an indexed list: its full key (for metadata if it cannot be placed), the key
/// below the convention's prefix (`0.role`), and its value.
#[derive(Debug)]
pub(super) struct IndexedAttribute {
    pub(super) key: String,
    pub(super) rest: String,
    pub(super) value: Value,
}

/// A JSON tree built from dotted paths. Kept apart from `Value` so that only the objects the
/// paths create, never the attribute values themselves, are turned into arrays.
enum Node {
    Leaf(Value),
    Branch(Vec<(String, Node)>),
}

impl Node {
    /// Places `value` at `path`, or gives it back when the path is taken or runs through a value.
    fn insert(&mut self, path: &[&str], value: Value) -> Result<(), Value> {
        let Node::Branch(children) = self else {
            return Err(value);
        };
        let Some((first, rest)) = path.split_first() else {
            return Err(value);
        };
        let position = children.iter().position(|(key, _)| key == first);
        if rest.is_empty() {
            if position.is_some() {
                return Err(value);
            }
            children.push(((*first).to_owned(), Node::Leaf(value)));
            return Ok(());
        }
        let position = match position {
            Some(position) => position,
            None => {
                children.push(((*first).to_owned(), Node::Branch(Vec::new())));
                children.len() - 1
            }
        };
        children[position].1.insert(rest, value)
    }

    /// A branch whose keys are all indices becomes an array in index order (gaps closed).
    fn into_value(self) -> Value {
        match self {
            Node::Leaf(value) => value,
            Node::Branch(children) => {
                let indices: Option<Vec<u64>> =
                    children.iter().map(|(key, _)| index_of(key)).collect();
                match indices {
                    Some(indices) if !children.is_empty() => {
                        let mut items: Vec<(u64, Value)> = indices
                            .into_iter()
                            .zip(children)
                            .map(|(index, (_, node))| (index, node.into_value()))
                            .collect();
                        items.sort_by_key(|(index, _)| *index);
                        Value::Array(items.into_iter().map(|(_, value)| value).collect())
                    }
                    _ => Value::Object(
                        children
                            .into_iter()
                            .map(|(key, node)| (key, node.into_value()))
                            .collect(),
                    ),
                }
            }
        }
    }
}

fn index_of(segment: &str) -> Option<u64> {
    let digits =
        !segment.is_empty() && segment.len() <= 9 && segment.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| segment.parse().ok()).flatten()
}

/// Rebuilds the list; attributes that do not fit (no index, a path too long, a path already
/// taken) are returned as `(key, value)` for metadata. `None` when nothing fit.
pub(super) fn build_indexed(
    list: IndexedList,
    attributes: Vec<IndexedAttribute>,
    unplaced: &mut Vec<(String, Value)>,
) -> Option<Value> {
    let mut root = Node::Branch(Vec::new());
    for attribute in attributes {
        let mut path: Vec<&str> = Vec::new();
        let mut after_index = true;
        for (position, segment) in attribute.rest.split('.').enumerate() {
            if position > 0 && after_index && list.wrappers().contains(&segment) {
                continue;
            }
            after_index = index_of(segment).is_some();
            path.push(segment);
        }
        // An item must be an object (span-log validation rejects a `completion_message` that
        // is not), so what follows the index has to be a field name, not another index.
        let placeable = path.len() >= 2
            && path.len() <= MAX_PATH_SEGMENTS + 1
            && path.first().is_some_and(|first| index_of(first).is_some())
            && path.get(1).is_some_and(|field| index_of(field).is_none());
        if !placeable {
            unplaced.push((attribute.key, attribute.value));
            continue;
        }
        if let Err(value) = root.insert(&path, attribute.value) {
            unplaced.push((attribute.key, value));
        }
    }
    let Value::Array(items) = root.into_value() else {
        return None;
    };
    let items: Vec<Value> = match list {
        IndexedList::Messages | IndexedList::OpenInferenceMessages => {
            items.into_iter().map(chat_message).collect()
        }
        IndexedList::Functions => items.into_iter().map(function_tool).collect(),
    };
    Some(Value::Array(items))
}

/// Puts a rebuilt message in chat shape: tool calls as OpenAI tool calls, OpenInference
/// `contents` as the content parts they are.
fn chat_message(message: Value) -> Value {
    let Value::Object(mut message) = message else {
        return message;
    };
    if let Some(Value::Array(calls)) = message.remove("tool_calls") {
        let calls = calls.into_iter().map(tool_call).collect();
        message.insert("tool_calls".to_owned(), Value::Array(calls));
    }
    if !message.contains_key("content") {
        if let Some(contents) = message.remove("contents") {
            message.insert("content".to_owned(), contents);
        }
    }
    Value::Object(message)
}

/// `{"id", "name", "arguments"}` (Traceloop) or `{"id", "function": {...}}` (OpenInference) to
/// `{"id", "type": "function", "function": {"name", "arguments"}}`.
fn tool_call(call: Value) -> Value {
    let Value::Object(mut call) = call else {
        return call;
    };
    if !call.contains_key("function")
        && (call.contains_key("name") || call.contains_key("arguments"))
    {
        let mut function = Map::new();
        for field in ["name", "arguments"] {
            if let Some(value) = call.remove(field) {
                function.insert(field.to_owned(), value);
            }
        }
        call.insert("function".to_owned(), Value::Object(function));
    }
    if call.contains_key("function") && !call.contains_key("type") {
        call.insert("type".to_owned(), Value::from("function"));
    }
    Value::Object(call)
}

/// `{"name", "description", "parameters"}` to an OpenAI tool definition; `parameters` arrives as
/// JSON text and is parsed when it holds an object.
fn function_tool(function: Value) -> Value {
    let Value::Object(mut function) = function else {
        return function;
    };
    if let Some(Value::String(text)) = function.get("parameters") {
        if let Some(schema @ Value::Object(_)) = parse_json_text(text) {
            function.insert("parameters".to_owned(), schema);
        }
    }
    json!({"type": "function", "function": function})
}

/// Reads a GenAI semantic-convention message list (`gen_ai.input.messages`,
/// `gen_ai.output.messages`): JSON text or a structured value holding a non-empty array of
/// message objects. Gives the value back untouched when it is not one.
pub(super) fn semconv_messages(value: Value) -> Result<Value, Value> {
    let messages = match value {
        Value::String(text) => match parse_json_text(&text) {
            Some(Value::Array(messages)) if is_message_list(&messages) => messages,
            _ => return Err(Value::String(text)),
        },
        Value::Array(messages) if is_message_list(&messages) => messages,
        other => return Err(other),
    };
    Ok(Value::Array(
        messages.into_iter().map(semconv_message).collect(),
    ))
}

fn is_message_list(messages: &[Value]) -> bool {
    !messages.is_empty() && messages.iter().all(Value::is_object)
}

/// `{"role", "parts": [...]}` to chat shape: text parts become the content (a plain string when
/// there is one), `tool_call` parts become tool calls, a `tool_call_response` part gives the
/// `tool_call_id` and content; other parts stay content parts as sent. A message without
/// `parts` is taken to be in chat shape already.
fn semconv_message(message: Value) -> Value {
    let Value::Object(mut message) = message else {
        return message;
    };
    let Some(Value::Array(parts)) = message.remove("parts") else {
        return chat_message(Value::Object(message));
    };
    let mut content = Vec::new();
    let mut tool_calls = Vec::new();
    for part in parts {
        let Value::Object(mut part) = part else {
            content.push(part);
            continue;
        };
        match part.get("type").and_then(Value::as_str) {
            Some("text") => {
                let text = part.remove("content").unwrap_or(Value::Null);
                content.push(json!({"type": "text", "text": text}));
            }
            Some("tool_call") => {
                let arguments = match part.remove("arguments") {
                    Some(Value::String(text)) => Value::String(text),
                    Some(Value::Null) | None => Value::Null,
                    Some(structured) => Value::String(structured.to_string()),
                };
                let mut call = Map::new();
                if let Some(id) = part.remove("id") {
                    call.insert("id".to_owned(), id);
                }
                call.insert("type".to_owned(), Value::from("function"));
                let name = part.remove("name").unwrap_or(Value::Null);
                call.insert(
                    "function".to_owned(),
                    json!({"name": name, "arguments": arguments}),
                );
                tool_calls.push(Value::Object(call));
            }
            Some("tool_call_response") => {
                if let Some(id) = part.remove("id") {
                    message.insert("tool_call_id".to_owned(), id);
                }
                let text = match part.remove("response") {
                    Some(Value::String(text)) => Value::String(text),
                    Some(other) => Value::String(other.to_string()),
                    None => Value::Null,
                };
                content.push(json!({"type": "text", "text": text}));
            }
            _ => content.push(Value::Object(part)),
        }
    }
    let single_text = match content.as_slice() {
        [Value::Object(part)] if part.get("type").and_then(Value::as_str) == Some("text") => {
            part.get("text").cloned()
        }
        _ => None,
    };
    if let Some(text) = single_text {
        message.insert("content".to_owned(), text);
    } else if !content.is_empty() {
        message.insert("content".to_owned(), Value::Array(content));
    }
    if !tool_calls.is_empty() {
        message.insert("tool_calls".to_owned(), Value::Array(tool_calls));
    }
    Value::Object(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attribute(rest: &str, value: Value) -> IndexedAttribute {
        IndexedAttribute {
            key: format!("p.{rest}"),
            rest: rest.to_owned(),
            value,
        }
    }

    fn build(
        list: IndexedList,
        attributes: Vec<IndexedAttribute>,
    ) -> (Option<Value>, Vec<(String, Value)>) {
        let mut unplaced = Vec::new();
        let built = build_indexed(list, attributes, &mut unplaced);
        (built, unplaced)
    }

    #[test]
    fn rebuilds_indexed_messages_in_index_order() {
        let (built, unplaced) = build(
            IndexedList::Messages,
            vec![
                attribute("10.role", json!("user")),
                attribute("2.role", json!("system")),
                attribute("2.content", json!("be brief")),
                attribute("10.content", json!("hi")),
                attribute("10.tool_calls.0.id", json!("call_1")),
                attribute("10.tool_calls.0.name", json!("lookup")),
                attribute("10.tool_calls.0.arguments", json!("{\"q\": 1}")),
                attribute("x.role", json!("not indexed")),
                attribute("3", json!("no path")),
                attribute("4.0", json!("index after index")),
                attribute("2.role", json!("duplicate")),
                attribute("2.role.deeper", json!("through a value")),
            ],
        );
        assert_eq!(
            built,
            Some(json!([
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "hi", "tool_calls": [
                    {"id": "call_1", "function": {"name": "lookup", "arguments": "{\"q\": 1}"}, "type": "function"}
                ]}
            ]))
        );
        let unplaced: Vec<&str> = unplaced.iter().map(|(key, _)| key.as_str()).collect();
        assert_eq!(
            unplaced,
            ["p.x.role", "p.3", "p.4.0", "p.2.role", "p.2.role.deeper"]
        );
    }

    #[test]
    fn drops_openinference_wrappers() {
        let (built, unplaced) = build(
            IndexedList::OpenInferenceMessages,
            vec![
                attribute("0.message.role", json!("assistant")),
                attribute("0.message.tool_calls.0.tool_call.id", json!("c1")),
                attribute("0.message.tool_calls.0.tool_call.function.name", json!("f")),
                attribute(
                    "0.message.tool_calls.0.tool_call.function.arguments",
                    json!("{}"),
                ),
                attribute("1.message.role", json!("user")),
                attribute("1.message.contents.0.message_content.type", json!("text")),
                attribute("1.message.contents.0.message_content.text", json!("hello")),
            ],
        );
        assert!(unplaced.is_empty(), "{unplaced:?}");
        assert_eq!(
            built,
            Some(json!([
                {"role": "assistant", "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": "{}"}, "type": "function"}]},
                {"role": "user", "content": [{"type": "text", "text": "hello"}]}
            ]))
        );
    }

    #[test]
    fn keeps_overlong_paths_out() {
        let long = format!("0.{}", ["a"; MAX_PATH_SEGMENTS + 1].join("."));
        let (built, unplaced) = build(IndexedList::Messages, vec![attribute(&long, json!(1))]);
        assert_eq!(built, None);
        assert_eq!(unplaced.len(), 1);
    }

    #[test]
    fn rebuilds_function_definitions() {
        let (built, _) = build(
            IndexedList::Functions,
            vec![
                attribute("0.name", json!("get_weather")),
                attribute("0.parameters", json!("{\"type\": \"object\"}")),
            ],
        );
        assert_eq!(
            built,
            Some(
                json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}])
            )
        );
    }

    #[test]
    fn converts_semconv_messages_to_chat_shape() {
        let text = json!([
            {"role": "system", "parts": [{"type": "text", "content": "be brief"}]},
            {"role": "assistant", "parts": [
                {"type": "text", "content": "checking"},
                {"type": "tool_call", "id": "c1", "name": "weather", "arguments": {"city": "Paris"}}
            ], "finish_reason": "tool_call"},
            {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "response": "21C"}]},
            {"role": "user", "content": "already chat shaped"}
        ])
        .to_string();
        assert_eq!(
            semconv_messages(Value::String(text)),
            Ok(json!([
                {"role": "system", "content": "be brief"},
                {"role": "assistant", "finish_reason": "tool_call", "content": "checking", "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "c1", "content": "21C"},
                {"role": "user", "content": "already chat shaped"}
            ]))
        );
        assert_eq!(semconv_messages(json!("not json")), Err(json!("not json")));
        assert_eq!(semconv_messages(json!("[]")), Err(json!("[]")));
        assert_eq!(semconv_messages(json!("[1, 2]")), Err(json!("[1, 2]")));
        assert_eq!(semconv_messages(json!(7)), Err(json!(7)));
    }
}
