//! Spans that are still running (issue 21 part 3) and expired content (part 1) as the viewer
//! shows them: an open bar that grows while the span runs, a trace view that refreshes itself
//! until the span is closed, and the notice on a span whose content expired.

use serde_json::{Value, json};

use crate::seed;
use crate::util::{
    TestServer, browser_available, screenshot, sign_in, text, wait_for, wait_until, with_browser,
};

const AGENT: &str = ".wf-row[data-span-id='agent']";

fn agent(start: f64, end: Option<f64>) -> Value {
    let mut log = json!({
        "trace_unique_id": "live", "span_unique_id": "agent", "span_name": "agent.workflow",
        "start_time": start, "input": "book a flight",
    });
    if let Some(end) = end {
        log["timestamp"] = json!(end);
    }
    log
}

#[tokio::test]
async fn a_running_span_is_an_open_bar_that_grows_until_it_is_closed() {
    if !browser_available("a_running_span_is_an_open_bar_that_grows_until_it_is_closed") {
        return;
    }
    let server = TestServer::start().await;
    let start = seed::now() - 4.0;
    server
        .ingest(&[
            agent(start, None),
            seed::span(
                "live",
                "search",
                Some("agent"),
                "search.tool",
                (start + 0.5, start + 1.5),
                json!({}),
            ),
        ])
        .await;
    let site = server.page_info();
    with_browser(move |client| async move {
        sign_in(&client, &site, "/ui/traces").await;
        wait_for(
            &client,
            "#trace-table tbody tr[data-trace-id='live'] .badge-running",
        )
        .await;

        client.goto(&site.url("/ui/traces/live")).await.unwrap();
        wait_for(&client, &format!("{AGENT} .wf-bar.is-open")).await;
        assert_eq!(text(&client, "#trace-title").await, "agent.workflow");
        assert_eq!(text(&client, ".trace-head .badge-running").await, "running");
        assert_eq!(
            text(&client, &format!("{AGENT} .badge-running")).await,
            "running"
        );
        let first = text(&client, &format!("{AGENT} .wf-dur")).await;
        assert!(first.starts_with("running "), "{first}");
        // The finished child is a closed bar.
        wait_for(
            &client,
            ".wf-row[data-span-id='search'] .wf-bar:not(.is-open)",
        )
        .await;
        // The open bar grows: its running time goes on.
        wait_until(
            &client,
            "the running time to advance",
            "return document.querySelector(arguments[0]).textContent !== arguments[1];",
            vec![json!(format!("{AGENT} .wf-dur")), json!(first)],
        )
        .await;
        screenshot(&client, "trace-running").await;

        // Closed by another request: the open view refreshes itself to the closed bar.
        site.ingest(&[agent(start, Some(start + 9.0))]).await;
        wait_until(
            &client,
            "the view to show the closed span",
            "return !document.querySelector('.wf-bar.is-open')
                && !!document.querySelector('.trace-head .badge-ok');",
            vec![],
        )
        .await;
        assert_eq!(text(&client, &format!("{AGENT} .wf-dur")).await, "9.00 s");
        screenshot(&client, "trace-running-closed").await;
    })
    .await;
}

#[tokio::test]
async fn a_span_whose_content_expired_says_when() {
    if !browser_available("a_span_whose_content_expired_says_when") {
        return;
    }
    let server = TestServer::start().await;
    let start = seed::now() - 60.0;
    server
        .ingest(&[seed::span(
            "old",
            "call",
            None,
            "openai.chat",
            (start, start + 2.0),
            json!({"content_expired_at": "2026-01-02T03:04:05Z", "model": "gpt-4o",
                   "prompt_tokens": 12, "metadata": {"team": "search"}}),
        )])
        .await;
    let site = server.page_info();
    with_browser(move |client| async move {
        sign_in(&client, &site, "/ui/traces/old").await;
        wait_for(&client, "#content-expired").await;
        let notice = text(&client, "#content-expired").await;
        assert!(notice.starts_with("Content expired: input, output, messages and tools were removed by the retention policy on "), "{notice}");
        assert!(notice.contains("2026"), "{notice}");
        wait_for(&client, "#span-metadata").await;
    })
    .await;
}
