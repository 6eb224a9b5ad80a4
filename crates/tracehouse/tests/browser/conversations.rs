//! Threads, users and feedback in a real browser: a conversation read turn by turn, a user
//! opened to their threads, traces and usage, feedback and a score set and still there after a
//! reload, and hostile content on every new page staying text.

use serde_json::{Value, json};

use crate::seed::{self, XSS_IMG, XSS_SCRIPT};
use crate::util::{
    TestServer, browser_available, click, count, js, location, screenshot, sign_in, text, texts,
    type_into, wait_count, wait_for, wait_until, with_browser,
};

const THREAD: &str = "support-chat-42";

/// One turn: a workflow root naming the thread and customer (with the customer's name and email
/// in `customer_params`), and its chat call with the whole history as prompt.
fn turn(
    trace: &str,
    thread: &str,
    customer: &str,
    at: f64,
    prompt: &[(&str, &str)],
    answer: &str,
) -> Vec<Value> {
    let messages: Vec<Value> = prompt
        .iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    vec![
        seed::span(
            trace,
            &format!("{trace}-root"),
            None,
            "support.turn",
            (at, at + 2.0),
            json!({"thread_identifier": thread, "customer_identifier": customer, "log_type": "workflow",
                   "customer_params": {"name": format!("{customer} inc"),
                                       "email": format!("ops@{customer}.example")}}),
        ),
        seed::span(
            trace,
            &format!("{trace}-chat"),
            Some(&format!("{trace}-root")),
            "openai.chat",
            (at + 0.2, at + 1.4),
            json!({"log_type": "chat", "model": "gpt-4o-mini", "prompt_messages": messages,
                   "completion_message": {"role": "assistant", "content": answer},
                   "prompt_tokens": 30, "completion_tokens": 12, "cost": 0.0125,
                   "time_to_first_token": 0.25}),
        ),
    ]
}

/// Thread `support-chat-42` of `acme-corp` (three turns, sent newest first) and a one-turn
/// thread of `globex`.
fn conversations() -> Vec<Value> {
    let t = seed::now() - 300.0;
    let system = ("system", "You are a support agent.");
    let mut spans = turn(
        "conv-t3",
        THREAD,
        "acme-corp",
        t + 120.0,
        &[
            system,
            ("user", "Hi, I need help"),
            ("assistant", "Hello! What happened?"),
            ("user", "My order is late"),
            ("assistant", "It ships tomorrow."),
            ("user", "Thanks"),
        ],
        "You're welcome.",
    );
    spans.extend(turn(
        "conv-t2",
        THREAD,
        "acme-corp",
        t + 60.0,
        &[
            system,
            ("user", "Hi, I need help"),
            ("assistant", "Hello! What happened?"),
            ("user", "My order is late"),
        ],
        "It ships tomorrow.",
    ));
    spans.extend(turn(
        "conv-t1",
        THREAD,
        "acme-corp",
        t,
        &[system, ("user", "Hi, I need help")],
        "Hello! What happened?",
    ));
    spans.extend(turn(
        "other-t1",
        "globex-chat",
        "globex",
        t + 200.0,
        &[("user", "Bonjour")],
        "Salut",
    ));
    spans
}

#[tokio::test]
async fn a_thread_reads_as_a_conversation_with_every_turn_in_order() {
    if !browser_available("a_thread_reads_as_a_conversation_with_every_turn_in_order") {
        return;
    }
    let server = TestServer::start().await;
    server.ingest(&conversations()).await;
    let site = server.page_info();
    with_browser(move |client| async move {
        sign_in(&client, &site, "/ui/threads").await;
        wait_count(&client, "#thread-table tbody tr", 2).await;
        assert_eq!(
            texts(&client, "#thread-table tbody .thread-link").await,
            ["globex-chat", THREAD],
            "latest activity first"
        );
        assert_eq!(
            text(
                &client,
                "#thread-table tbody tr[data-thread-id=support-chat-42] .preview"
            )
            .await,
            "Hi, I need help"
        );
        assert_eq!(
            text(
                &client,
                "#thread-table tbody tr[data-thread-id=support-chat-42] .c-traces"
            )
            .await,
            "3"
        );
        click(
            &client,
            "#thread-table tbody tr[data-thread-id=support-chat-42] .thread-link",
        )
        .await;
        wait_count(&client, "#conversation-thread .turn", 3).await;
        assert_eq!(location(&client).await, "/ui/threads/support-chat-42");
        assert_eq!(text(&client, "#thread-title").await, THREAD);
        assert_eq!(text(&client, "#thread-customer").await, "acme-corp");
        // Each turn shows what the client added since the last one, then the answer.
        assert_eq!(
            texts(&client, "#conversation-thread .turn .msg > pre.text").await,
            [
                "You are a support agent.",
                "Hi, I need help",
                "Hello! What happened?",
                "My order is late",
                "It ships tomorrow.",
                "Thanks",
                "You're welcome.",
            ]
        );
        assert_eq!(
            texts(&client, "#conversation-thread .turn-group .turn-cost").await,
            [
                "$0.0125", "$0.0125", "$0.0125", "$0.0125", "$0.0125", "$0.0125"
            ]
        );
        screenshot(&client, "thread-conversation").await;
        // A turn links to its span in the trace view.
        click(&client, ".turn[data-span-id=conv-t2-chat] .turn-span").await;
        wait_for(&client, "#span-detail .detail[data-span-id=conv-t2-chat]").await;
        assert_eq!(
            location(&client).await,
            "/ui/traces/conv-t2?span=conv-t2-chat"
        );
        client.back().await.unwrap();
        wait_count(&client, "#conversation-thread .turn", 3).await;
    })
    .await;
}

#[tokio::test]
async fn a_user_opens_to_their_threads_traces_and_usage() {
    if !browser_available("a_user_opens_to_their_threads_traces_and_usage") {
        return;
    }
    let server = TestServer::start().await;
    server.ingest(&conversations()).await;
    let site = server.page_info();
    with_browser(move |client| async move {
        sign_in(&client, &site, "/ui/users").await;
        wait_count(&client, "#user-table tbody tr", 2).await;
        assert_eq!(
            texts(&client, "#user-table tbody .user-link").await,
            ["globex", "acme-corp"]
        );
        let acme = "#user-table tbody tr[data-customer-id=acme-corp]";
        assert_eq!(text(&client, &format!("{acme} .c-threads")).await, "1");
        assert_eq!(text(&client, &format!("{acme} .c-cost")).await, "$0.0375");
        // Each row draws its daily cost; today's bar holds the whole cost.
        wait_for(&client, &format!("{acme} .c-spark svg .spark-bar")).await;
        let today = js(
            &client,
            "const bars = [...document.querySelectorAll(arguments[0])];
             return bars.map(b => Number(b.dataset.value)).reduce((a, b) => a + b, 0);",
            vec![json!(format!("{acme} .spark-bar"))],
        )
        .await;
        assert!((today.as_f64().unwrap() - 0.0375).abs() < 1e-9, "{today}");
        screenshot(&client, "users").await;
        // The profile the spans sent shows under the id, and the email box finds it.
        assert_eq!(
            text(&client, &format!("{acme} .c-name .sub")).await,
            "acme-corp inc · ops@acme-corp.example"
        );
        type_into(&client, "#user-table-email", "ACME-CORP.example").await;
        click(&client, "#user-table-filters button[type=submit]").await;
        wait_count(&client, "#user-table tbody tr", 1).await;
        assert_eq!(
            texts(&client, "#user-table tbody .user-link").await,
            ["acme-corp"]
        );
        assert_eq!(location(&client).await, "/ui/users?email=ACME-CORP.example");
        assert_eq!(text(&client, &format!("{acme} .c-days")).await, "1");
        click(&client, &format!("{acme} .user-link")).await;
        wait_for(&client, "#user-threads").await;
        assert_eq!(location(&client).await, "/ui/users/acme-corp");
        assert_eq!(
            texts(&client, "#user-threads tbody .thread-link").await,
            [THREAD]
        );
        assert_eq!(count(&client, "#user-traces tbody tr").await, 3);
        assert_eq!(
            text(&client, "#user-totals [data-stat=traces] dd").await,
            "3"
        );
        assert_eq!(text(&client, "#user-title").await, "acme-corp inc");
        assert_eq!(
            text(&client, "#user-totals [data-stat=active-days] dd").await,
            "1"
        );
        assert_eq!(
            text(&client, "#user-totals [data-stat=ttft] dd").await,
            "250 ms"
        );
        wait_for(&client, "#user-cost-chart .spark-bar").await;
        click(&client, "#user-threads tbody .thread-link").await;
        wait_count(&client, "#conversation-thread .turn", 3).await;
    })
    .await;
}

#[tokio::test]
async fn feedback_and_a_score_stay_after_a_reload_and_filter_the_lists() {
    if !browser_available("feedback_and_a_score_stay_after_a_reload_and_filter_the_lists") {
        return;
    }
    let server = TestServer::start().await;
    server.ingest(&conversations()).await;
    let site = server.page_info();
    with_browser(move |client| async move {
        sign_in(&client, &site, "/ui/traces/conv-t1?span=conv-t1-chat").await;
        wait_for(&client, "#span-feedback").await;
        assert_eq!(text(&client, "#span-no-scores").await, "No scores yet.");
        click(&client, "#thumb-up").await;
        wait_for(&client, "#thumb-up[aria-pressed=true]").await;
        type_into(&client, "#feedback-note", "answered the question").await;
        click(&client, "#save-note").await;
        wait_until(
            &client,
            "the note saved",
            "const s = document.querySelector('#feedback-status'); return Boolean(s) && s.textContent.startsWith('Saved');",
            vec![],
        )
        .await;
        type_into(&client, "#score-evaluator", "quality").await;
        type_into(&client, "#score-value", "4").await;
        click(&client, "#save-score").await;
        wait_for(&client, "#span-scores tr[data-evaluator=quality]").await;

        client.refresh().await.unwrap();
        wait_for(&client, "#span-feedback").await;
        assert_eq!(count(&client, "#thumb-up[aria-pressed=true]").await, 1);
        assert_eq!(count(&client, "#thumb-down[aria-pressed=true]").await, 0);
        assert_eq!(
            js(&client, "return document.querySelector('#feedback-note').value;", vec![]).await,
            "answered the question"
        );
        assert!(
            text(&client, "#span-scores tr[data-evaluator=quality] td")
                .await
                .starts_with('4')
        );
        screenshot(&client, "span-feedback").await;

        client.goto(&site.url("/ui/traces?feedback=up")).await.unwrap();
        wait_count(&client, "#trace-table tbody tr", 1).await;
        assert_eq!(text(&client, "#trace-table tbody .trace-link").await, "support.turn");
        client
            .goto(&site.url("/ui/threads?score=quality%3E%3D4"))
            .await
            .unwrap();
        wait_count(&client, "#thread-table tbody tr", 1).await;
        assert_eq!(text(&client, "#thread-table tbody .thread-link").await, THREAD);
        client
            .goto(&site.url("/ui/threads?feedback=down"))
            .await
            .unwrap();
        wait_for(&client, "#thread-table-empty").await;
    })
    .await;
}

#[tokio::test]
async fn thread_and_user_pages_show_markup_as_text() {
    if !browser_available("thread_and_user_pages_show_markup_as_text") {
        return;
    }
    let server = TestServer::start().await;
    let payload = format!("{XSS_SCRIPT} and {XSS_IMG}");
    let t = seed::now() - 60.0;
    server
        .ingest(&turn(
            "xss-turn",
            XSS_IMG,
            XSS_SCRIPT,
            t,
            &[("user", payload.as_str())],
            XSS_IMG,
        ))
        .await;
    let site = server.page_info();
    with_browser(move |client| async move {
        let inert = |client: fantoccini::Client| async move {
            assert_eq!(
                js(&client, "return typeof window.__xss;", vec![]).await,
                "undefined"
            );
            assert_eq!(count(&client, "#app img, #app script, #app b").await, 0);
            assert_eq!(
                js(&client, "return document.scripts.length;", vec![]).await,
                1
            );
        };
        sign_in(&client, &site, "/ui/threads").await;
        wait_count(&client, "#thread-table tbody tr", 1).await;
        assert_eq!(
            text(&client, "#thread-table tbody .thread-link").await,
            XSS_IMG
        );
        assert_eq!(text(&client, "#thread-table tbody .preview").await, payload);
        assert_eq!(
            text(&client, "#thread-table tbody .c-customer").await,
            XSS_SCRIPT
        );
        inert(client.clone()).await;
        click(&client, "#thread-table tbody .thread-link").await;
        wait_count(&client, "#conversation-thread .turn", 1).await;
        assert_eq!(
            texts(&client, "#conversation-thread .msg > pre.text").await,
            [payload.clone(), XSS_IMG.to_owned()]
        );
        assert_eq!(text(&client, "#thread-title").await, XSS_IMG);
        inert(client.clone()).await;
        click(&client, "#thread-customer").await;
        wait_for(&client, "#user-threads").await;
        // The title is the name the spans sent in customer_params, markup and all, as text.
        assert_eq!(
            text(&client, "#user-title").await,
            format!("{XSS_SCRIPT} inc")
        );
        assert_eq!(
            text(&client, "#user-threads tbody .thread-link").await,
            XSS_IMG
        );
        inert(client.clone()).await;
        click(&client, "#nav-users").await;
        wait_count(&client, "#user-table tbody tr", 1).await;
        assert_eq!(
            text(&client, "#user-table tbody .user-link").await,
            XSS_SCRIPT
        );
        inert(client.clone()).await;
    })
    .await;
}
