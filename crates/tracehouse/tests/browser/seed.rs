//! Span logs the browser tests ingest: shaped like what LLM applications send, with times
//! relative to now so the time-range presets have something to cut.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

/// The script both payloads try to run; the page must show it as text.
pub(crate) const XSS_SCRIPT: &str = "<script>window.__xss=1</script>";
/// The HTML payload: an image whose error handler would set the flag.
pub(crate) const XSS_IMG: &str = "<img src=x onerror=window.__xss=1>";

/// Seconds since the epoch, with a fraction: the ingest API takes epoch numbers for times.
pub(crate) fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A span log with ids, name and times; `extra` adds or overrides fields.
pub(crate) fn span(
    trace: &str,
    id: &str,
    parent: Option<&str>,
    name: &str,
    (start, end): (f64, f64),
    extra: Value,
) -> Value {
    let mut log = json!({
        "trace_unique_id": trace,
        "span_unique_id": id,
        "span_name": name,
        "start_time": start,
        "timestamp": end,
    });
    if let Some(parent) = parent {
        log["span_parent_id"] = json!(parent);
    }
    if let (Value::Object(log), Value::Object(extra)) = (&mut log, extra) {
        log.extend(extra);
    }
    log
}

/// Traces for the list: 30 routine ones, two of customer `acme-corp` (one failing, one with
/// metadata and the most spans) and one from three days ago.
pub(crate) fn list_traces() -> Vec<Value> {
    let now = now();
    let mut spans = Vec::new();
    for i in 0..30 {
        let trace = format!("batch-{i:02}");
        let start = now - 600.0 - f64::from(i) * 60.0;
        spans.push(span(
            &trace,
            &format!("{trace}-root"),
            None,
            &format!("batch-job-{i:02}.workflow"),
            (start, start + 2.0),
            json!({"customer_identifier": "bulk-importer", "environment": "staging"}),
        ));
        spans.push(span(
            &trace,
            &format!("{trace}-llm"),
            Some(&format!("{trace}-root")),
            "summarize.chat",
            (start + 0.2, start + 1.5),
            json!({"model": "gpt-4o-mini", "prompt_tokens": 100 + i, "completion_tokens": 20}),
        ));
    }
    let start = now - 60.0;
    let acme = json!({"customer_identifier": "acme-corp", "environment": "production"});
    spans.push(span(
        "checkout",
        "checkout-root",
        None,
        "checkout-agent",
        (start, start + 9.0),
        json!({"customer_identifier": "acme-corp", "environment": "production",
               "metadata": {"plan": "pro", "region": "eu"}}),
    ));
    for i in 0..4 {
        let at = start + 1.0 + f64::from(i);
        spans.push(span(
            "checkout",
            &format!("checkout-step-{i}"),
            Some("checkout-root"),
            &format!("step-{i}.chat"),
            (at, at + 0.8),
            json!({"model": "gpt-4o", "prompt_tokens": 500, "completion_tokens": 50,
                   "customer_identifier": "acme-corp"}),
        ));
    }
    let start = now - 120.0;
    spans.push(span(
        "refund",
        "refund-root",
        None,
        "refund-agent",
        (start, start + 3.0),
        acme.clone(),
    ));
    spans.push(span(
        "refund",
        "refund-llm",
        Some("refund-root"),
        "decide.chat",
        (start + 0.5, start + 2.5),
        json!({"model": "claude-3-5-sonnet", "status": "error", "status_code": 529,
               "error_message": "overloaded", "customer_identifier": "acme-corp"}),
    ));
    let start = now - 3.0 * 86400.0;
    spans.push(span(
        "nightly",
        "nightly-root",
        None,
        "nightly-report",
        (start, start + 40.0),
        json!({"customer_identifier": "globex", "environment": "production"}),
    ));
    spans
}

/// Ids of the trace the trace-view test opens.
pub(crate) const SUPPORT_TRACE: &str = "support-1";
pub(crate) const SUPPORT_CHAT: &str = "support-answer";
pub(crate) const SUPPORT_FAILING: &str = "support-email";

/// A support agent: workflow, planning task, a chat call with tool use, two tools (one
/// failing), an orphan whose parent never arrives and a note sent without any time.
pub(crate) fn support_trace() -> Vec<Value> {
    let t = now() - 30.0;
    let trace = SUPPORT_TRACE;
    let arguments = json!({"order_id": "A-1001", "include": ["items", "shipping"]}).to_string();
    vec![
        span(
            trace,
            "support-root",
            None,
            "support_agent.workflow",
            (t, t + 4.0),
            json!({"customer_identifier": "acme-corp", "environment": "production",
                   "input": "Where is my order A-1001?", "output": "It ships tomorrow."}),
        ),
        span(
            trace,
            "support-plan",
            Some("support-root"),
            "plan.task",
            (t + 0.05, t + 0.4),
            json!({"input": {"goal": "answer the customer"}}),
        ),
        span(
            trace,
            SUPPORT_CHAT,
            Some("support-root"),
            "answer.chat",
            (t + 0.5, t + 2.6),
            json!({
                "model": "gpt-4o",
                "provider_id": "openai",
                "prompt_tokens": 1200,
                "completion_tokens": 345,
                "cost": 0.0123,
                "time_to_first_token": 0.31,
                "temperature": 0.2,
                "metadata": {"ticket": "T-42", "priority": 2, "tags": ["vip", "eu"]},
                "tools": [{"type": "function", "function": {"name": "lookup_order",
                           "parameters": {"type": "object"}}}],
                "prompt_messages": [
                    {"role": "system", "content": "You are a helpful support agent."},
                    {"role": "user", "content": "Where is my order A-1001?"},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "call_1", "type": "function",
                         "function": {"name": "lookup_order", "arguments": arguments}}]},
                    {"role": "tool", "tool_call_id": "call_1",
                     "content": "{\"status\": \"packed\", \"ships\": \"tomorrow\"}"},
                ],
                "completion_message": {"role": "assistant",
                                       "content": "Your order A-1001 is packed and ships tomorrow."},
            }),
        ),
        span(
            trace,
            "support-lookup",
            Some(SUPPORT_CHAT),
            "lookup_order.tool",
            (t + 0.9, t + 1.3),
            json!({"input": {"order_id": "A-1001"}, "output": {"status": "packed"}}),
        ),
        span(
            trace,
            SUPPORT_FAILING,
            Some("support-root"),
            "send_email.tool",
            (t + 2.7, t + 3.9),
            json!({"status": "error", "status_code": 500,
                   "error_message": "SMTP timeout after 30 s"}),
        ),
        span(
            trace,
            "support-orphan",
            Some("never-sent-parent"),
            "late_callback.task",
            (t + 3.0, t + 3.5),
            json!({}),
        ),
        json!({
            "trace_unique_id": trace,
            "span_unique_id": "support-note",
            "span_parent_id": "support-root",
            "span_name": "audit_note",
            "input": "written without timestamps",
        }),
    ]
}

/// Id of the 1,000-span trace.
pub(crate) const BIG_TRACE: &str = "big-1000";

/// A 1,000-span agent run: a root, ten agents, LLM and tool calls under them, and every
/// fiftieth span nested under the one before it so the tree is also deep in places.
pub(crate) fn big_trace() -> Vec<Value> {
    let t = now() - 300.0;
    let mut spans = vec![span(
        BIG_TRACE,
        "big-0000",
        None,
        "research_run.workflow",
        (t, t + 120.0),
        json!({"customer_identifier": "bulk-importer"}),
    )];
    for i in 1..1000u32 {
        let id = format!("big-{i:04}");
        let parent = if i <= 10 {
            "big-0000".to_owned()
        } else if i % 50 == 0 {
            format!("big-{:04}", i - 1)
        } else {
            format!("big-{:04}", i % 10 + 1)
        };
        let start = t + f64::from(i) * 0.11;
        let (name, extra) = if i <= 10 {
            (format!("agent-{i}.agent"), json!({}))
        } else if i % 3 == 0 {
            (format!("search-{i}.tool"), json!({"input": {"query": i}}))
        } else {
            (
                format!("think-{i}.chat"),
                json!({"model": "gpt-4o-mini", "prompt_tokens": 50, "completion_tokens": 10}),
            )
        };
        let end = if i <= 10 { t + 119.0 } else { start + 0.5 };
        spans.push(span(
            BIG_TRACE,
            &id,
            Some(&parent),
            &name,
            (start, end),
            extra,
        ));
    }
    spans
}

/// Id of the trace whose every field is hostile.
pub(crate) const XSS_TRACE: &str = "xss-<b>trace</b>";

/// Markup in every place a client controls: names, input, output, messages, metadata, ids.
pub(crate) fn xss_trace() -> Vec<Value> {
    let t = now() - 20.0;
    let payload = format!("{XSS_SCRIPT} and {XSS_IMG}");
    vec![
        span(
            XSS_TRACE,
            "xss-root",
            None,
            XSS_IMG,
            (t, t + 2.0),
            json!({"customer_identifier": XSS_SCRIPT, "input": payload,
                   "output": XSS_IMG, "metadata": {XSS_IMG: XSS_SCRIPT}}),
        ),
        span(
            XSS_TRACE,
            "xss-chat",
            Some("xss-root"),
            XSS_SCRIPT,
            (t + 0.5, t + 1.5),
            json!({"model": XSS_IMG, "input": payload,
                   "prompt_messages": [{"role": "user", "content": payload}],
                   "completion_message": {"role": "assistant", "content": XSS_IMG,
                       "tool_calls": [{"id": XSS_IMG, "type": "function",
                                       "function": {"name": XSS_SCRIPT,
                                                    "arguments": payload}}]}}),
        ),
    ]
}
