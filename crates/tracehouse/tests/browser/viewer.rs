//! The viewer in a real browser: sign-in, the trace list with its filters, sorting, paging and
//! history, the waterfall and span detail, a 1,000-span trace, and hostile content.

use std::time::{Duration, Instant};

use fantoccini::Locator;
use serde_json::{Value, json};

use crate::seed::{self, XSS_IMG, XSS_SCRIPT};
use crate::util::{
    TestServer, browser_available, click, count, js, location, screenshot, sign_in, text, texts,
    type_into, wait_count, wait_for, wait_until, with_browser,
};

const ROWS: &str = "#trace-table tbody tr";
const NAMES: &str = "#trace-table tbody .trace-link";

/// Waits until the list shows `n` rows for a URL containing `url_part` and is done loading.
async fn wait_list(client: &fantoccini::Client, url_part: &str, n: usize) {
    wait_until(
        client,
        &format!("{n} rows at a URL with {url_part:?}"),
        "return (location.pathname + location.search).includes(arguments[0])
            && !document.querySelector('.results.loading')
            && document.querySelectorAll(arguments[1]).length === arguments[2];",
        vec![json!(url_part), json!(ROWS), json!(n)],
    )
    .await;
}

async fn value_of(client: &fantoccini::Client, css: &str) -> String {
    js(
        client,
        "return document.querySelector(arguments[0]).value;",
        vec![json!(css)],
    )
    .await
    .as_str()
    .unwrap()
    .to_owned()
}

async fn select(client: &fantoccini::Client, css: &str, value: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap()
        .select_by_value(value)
        .await
        .unwrap();
}

async fn session_key(client: &fantoccini::Client) -> Value {
    js(
        client,
        "return sessionStorage.getItem('tracehouse.apiKey');",
        vec![],
    )
    .await
}

#[tokio::test]
async fn trace_list_filters_sorts_pages_and_goes_back() {
    if !browser_available("trace_list_filters_sorts_pages_and_goes_back") {
        return;
    }
    let server = TestServer::start().await;
    server.ingest(&seed::list_traces()).await;
    let site = server.page_info();
    with_browser(move |client| async move {
        sign_in(&client, &site, "/").await;
        wait_list(&client, "/ui/traces", 33).await;
        assert_eq!(location(&client).await, "/ui/traces", "/ redirects to the list");
        assert!(text(&client, "#results-summary").await.contains("33 traces"));

        // Newest first, every column filled from the list answer.
        let names = texts(&client, NAMES).await;
        assert_eq!(names[..2], ["checkout-agent", "refund-agent"]);
        assert_eq!(names[32], "nightly-report");
        let cells = texts(&client, "#trace-table tbody tr:first-child td").await;
        assert!(cells[0].starts_with("checkout-agent"), "{cells:?}");
        assert!(cells[0].contains("gpt-4o"), "models under the name: {cells:?}");
        assert!(cells[1].contains("ago"), "start time: {cells:?}");
        assert_eq!(cells[2..5], ["9.00 s", "5", "2,200"]);
        assert!(cells[5].starts_with('$'), "cost: {cells:?}");
        assert_eq!(cells[6..], ["ok", "acme-corp"]);
        let refund = texts(&client, "#trace-table tbody tr:nth-child(2) td").await;
        assert_eq!(refund[6], "error");
        assert_eq!(count(&client, "tr.has-error .badge-error").await, 1);
        screenshot(&client, "list").await;

        // A text filter narrows the list and lands in the URL.
        type_into(&client, "#filter-customer", "acme").await;
        click(&client, "#apply-filters").await;
        wait_list(&client, "customer=acme", 2).await;
        // A select applies at once.
        select(&client, "#filter-status", "error").await;
        wait_list(&client, "status=error", 1).await;
        assert!(location(&client).await.contains("customer=acme"));
        assert_eq!(texts(&client, NAMES).await, ["refund-agent"]);

        // Into a trace and back: each step back restores the view that was on screen.
        click(&client, ".trace-link").await;
        wait_for(&client, "#trace-title").await;
        assert_eq!(text(&client, "#trace-title").await, "refund-agent");
        assert_eq!(location(&client).await, "/ui/traces/refund");
        client.back().await.unwrap();
        wait_list(&client, "status=error", 1).await;
        assert_eq!(value_of(&client, "#filter-customer").await, "acme");
        assert_eq!(value_of(&client, "#filter-status").await, "error");
        client.back().await.unwrap();
        wait_list(&client, "customer=acme", 2).await;
        assert_eq!(value_of(&client, "#filter-status").await, "");
        client.back().await.unwrap();
        wait_list(&client, "/ui/traces", 33).await;
        assert_eq!(value_of(&client, "#filter-customer").await, "");

        // Metadata key=value becomes a removable chip.
        type_into(&client, "#filter-meta", "plan=pro").await;
        click(&client, "#apply-filters").await;
        wait_list(&client, "meta=plan%3Dpro", 1).await;
        assert_eq!(texts(&client, NAMES).await, ["checkout-agent"]);
        assert_eq!(text(&client, ".chip .chip-text").await, "plan=pro");
        click(&client, ".chip button").await;
        wait_list(&client, "/ui/traces", 33).await;

        // Free text, model, environment and time range.
        for (input, value, url, rows) in [
            ("#filter-q", "refund", "q=refund", 1),
            ("#filter-model", "claude", "model=claude", 1),
            ("#filter-env", "staging", "env=staging", 30),
        ] {
            type_into(&client, input, value).await;
            click(&client, "#apply-filters").await;
            wait_list(&client, url, rows).await;
            click(&client, "#clear-filters").await;
            wait_until(
                &client,
                "filters cleared",
                "return location.search === '' && !document.querySelector('.results.loading')
                    && document.querySelectorAll(arguments[0]).length === 33;",
                vec![json!(ROWS)],
            )
            .await;
        }
        select(&client, "#filter-time", "24h").await;
        wait_list(&client, "time=24h", 32).await;
        assert!(!texts(&client, NAMES).await.contains(&"nightly-report".to_owned()));
        click(&client, "#clear-filters").await;
        wait_until(
            &client,
            "filters cleared",
            "return location.search === '' && document.querySelectorAll(arguments[0]).length === 33;",
            vec![json!(ROWS)],
        )
        .await;

        // Sorting by a column header, then the other way round.
        click(&client, "th[data-sort=span_count] a").await;
        wait_list(&client, "sort=-span_count", 33).await;
        assert_eq!(texts(&client, NAMES).await[0], "checkout-agent");
        assert_eq!(
            js(&client, "return document.querySelector('th[data-sort=span_count]').getAttribute('aria-sort');", vec![]).await,
            "descending"
        );
        click(&client, "th[data-sort=span_count] a").await;
        wait_list(&client, "sort=span_count", 33).await;
        assert_eq!(texts(&client, NAMES).await[0], "nightly-report");

        // Paging.
        select(&client, "#page-size", "25").await;
        wait_list(&client, "size=25", 25).await;
        assert_eq!(text(&client, "#page-of").await, "Page 1 of 2");
        click(&client, "#next-page").await;
        wait_list(&client, "page=2", 8).await;
        assert_eq!(text(&client, "#page-of").await, "Page 2 of 2");
        assert_eq!(count(&client, "a#next-page").await, 0, "no page after the last");
        client.back().await.unwrap();
        wait_until(
            &client,
            "page 1 again",
            "return !location.search.includes('page=2') && document.querySelectorAll(arguments[0]).length === 25;",
            vec![json!(ROWS)],
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn trace_view_shows_waterfall_tree_and_span_detail() {
    if !browser_available("trace_view_shows_waterfall_tree_and_span_detail") {
        return;
    }
    let server = TestServer::start().await;
    server.ingest(&seed::support_trace()).await;
    let site = server.page_info();
    with_browser(move |client| async move {
        sign_in(&client, &site, &format!("/ui/traces/{}", seed::SUPPORT_TRACE)).await;
        wait_for(&client, "#waterfall .wf-row").await;

        // Totals on top.
        assert_eq!(text(&client, "#trace-title").await, "support_agent.workflow");
        assert!(text(&client, "[data-stat=spans] dd").await.starts_with("7"));
        assert!(text(&client, "[data-stat=errors] dd").await.starts_with('1'));
        assert!(text(&client, "[data-stat=tokens] dd").await.starts_with("1,545"));
        assert_eq!(text(&client, "[data-stat=cost] dd").await, "$0.0123");

        // One bar per span, the failing one red, the orphan and the timeless one flagged.
        assert_eq!(count(&client, "#waterfall .wf-bar").await, 7);
        assert_eq!(count(&client, "#waterfall .wf-row").await, 7);
        let failing = format!(".wf-row[data-span-id={}]", seed::SUPPORT_FAILING);
        assert_eq!(
            js(&client, "return [...document.querySelectorAll('.wf-row.is-error')].map(r => r.dataset.spanId);", vec![]).await,
            json!([seed::SUPPORT_FAILING])
        );
        assert_eq!(
            js(&client, "return getComputedStyle(document.querySelector(arguments[0] + ' .wf-bar')).backgroundColor;", vec![json!(failing)]).await,
            "rgb(220, 38, 38)"
        );
        assert_eq!(count(&client, ".wf-row[data-span-id=support-orphan] .badge-orphan").await, 1);
        assert_eq!(count(&client, ".wf-row[data-span-id=support-note] .badge-notime").await, 1);
        assert_eq!(count(&client, ".wf-row[data-span-id=support-note] .wf-bar.is-inferred").await, 1);
        // Bars sit where the spans ran: the root spans the axis, the planning task is early.
        let geometry = js(
            &client,
            "const g = id => { const b = document.querySelector(`.wf-row[data-span-id=${id}] .wf-bar`);
                return [parseFloat(b.style.left), parseFloat(b.style.width)]; };
             return { root: g('support-root'), plan: g('support-plan'), email: g('support-email') };",
            vec![],
        )
        .await;
        assert_eq!(geometry["root"][0].as_f64(), Some(0.0), "{geometry}");
        assert_eq!(geometry["root"][1].as_f64(), Some(100.0), "{geometry}");
        assert!(geometry["plan"][0].as_f64().unwrap() < 5.0, "{geometry}");
        assert!(geometry["email"][0].as_f64().unwrap() > 60.0, "{geometry}");
        // Nested by parent: the tool call under the chat sits one level deeper.
        assert_eq!(
            js(&client, "return ['support-root', 'support-answer', 'support-lookup'].map(id =>
                document.querySelector(`.wf-row[data-span-id=${id}]`).getAttribute('aria-level'));", vec![]).await,
            json!(["1", "2", "3"])
        );
        screenshot(&client, "trace").await;

        // The tree collapses and expands.
        click(&client, ".wf-row[data-span-id=support-root] .wf-toggle").await;
        wait_count(&client, "#waterfall .wf-row", 2).await;
        click(&client, "#expand-all").await;
        wait_count(&client, "#waterfall .wf-row", 7).await;

        // Span detail: model, tokens, cost, the conversation with its tool call and result.
        click(&client, &format!(".wf-row[data-span-id={}] .wf-label", seed::SUPPORT_CHAT)).await;
        wait_for(&client, &format!("#span-detail .detail[data-span-id={}]", seed::SUPPORT_CHAT)).await;
        assert_eq!(text(&client, "#span-title").await, "answer.chat");
        assert_eq!(text(&client, "#span-detail [data-field=model] .value").await, "gpt-4o");
        assert_eq!(text(&client, "#span-detail [data-field=cost] .value").await, "$0.0123");
        assert_eq!(text(&client, "#span-detail [data-field=prompt_tokens] .value").await, "1,200");
        assert_eq!(text(&client, "#span-detail [data-field=total_tokens] .value").await, "1,545");
        assert_eq!(text(&client, "#span-detail [data-field=latency] .value").await, "2.10 s");
        assert_eq!(text(&client, "#span-detail [data-field=ttft] .value").await, "310 ms");
        assert!(location(&client).await.ends_with("?span=support-answer"));
        assert_eq!(
            texts(&client, "#conversation .msg-role").await,
            ["system", "user", "assistant", "tool", "assistant"]
        );
        assert_eq!(count(&client, "#conversation .msg.is-completion").await, 1);
        assert_eq!(text(&client, "#conversation .tool-call .tool-name").await, "lookup_order");
        assert!(text(&client, "#conversation .tool-call .json").await.contains("\"A-1001\""));
        assert!(text(&client, "#conversation .msg.role-tool .msg-ref").await.contains("call_1"));
        assert_eq!(text(&client, "#span-metadata tr[data-key=ticket] td").await, "T-42");
        assert_eq!(text(&client, "#span-metadata tr[data-key=priority] td").await, "2");
        assert!(text(&client, "#span-other").await.contains("temperature"), "unknown fields listed");
        assert_eq!(count(&client, "#span-error").await, 0);
        // JSON folds open on demand.
        let folded = "#span-raw .json > .j-node > .j-body";
        click(&client, "#span-raw summary").await;
        assert_eq!(js(&client, "return document.querySelector(arguments[0]).hidden;", vec![json!(folded)]).await, false);
        click(&client, "#span-raw .json > .j-node > .j-toggle").await;
        assert_eq!(js(&client, "return document.querySelector(arguments[0]).hidden;", vec![json!(folded)]).await, true);
        js(&client, "document.querySelector('#span-detail').scrollTop = 0;", vec![]).await;
        screenshot(&client, "span").await;

        // The failing span says why, prominently.
        click(&client, &format!("{failing} .wf-label")).await;
        wait_for(&client, "#span-error").await;
        let error = text(&client, "#span-error").await;
        assert!(error.contains("SMTP timeout after 30 s") && error.contains("status 500"), "{error}");
        screenshot(&client, "span-error").await;

        // A deep link opens the same span; an unknown trace says so.
        client.goto(&site.url("/ui/traces/support-1?span=support-orphan")).await.unwrap();
        wait_for(&client, "#span-detail .detail[data-span-id=support-orphan]").await;
        assert!(text(&client, "#span-detail .notice").await.contains("never-sent-parent"));
        client.goto(&site.url("/ui/traces/no-such-trace")).await.unwrap();
        wait_for(&client, "#trace-missing").await;
    })
    .await;
}

#[tokio::test]
async fn thousand_span_trace_renders_lazily() {
    if !browser_available("thousand_span_trace_renders_lazily") {
        return;
    }
    let server = TestServer::start().await;
    server.ingest(&seed::big_trace()).await;
    let site = server.page_info();
    with_browser(move |client| async move {
        sign_in(&client, &site, "/").await;
        let url = site.url(&format!("/ui/traces/{}", seed::BIG_TRACE));
        let started = Instant::now();
        client.goto(&url).await.unwrap();
        wait_for(&client, "#span-detail .detail").await;
        let elapsed = started.elapsed();
        eprintln!("1,000-span trace: page load to first paint of rows and detail in {elapsed:?}");
        assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
        assert_eq!(text(&client, "[data-stat=spans] dd").await, "1,000");
        assert_eq!(
            js(&client, "return document.getElementById('waterfall').dataset.spanCount;", vec![]).await,
            "1000"
        );
        let in_dom = count(&client, "#waterfall .wf-row").await;
        assert!(in_dom < 120, "only the rows in view are in the page, not {in_dom}");

        // Scrolling through the waterfall meets every span once, with a bar each.
        let walk = client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 const scroller = document.getElementById('waterfall');
                 const frame = () => new Promise(r => requestAnimationFrame(() => r()));
                 const spans = new Set();
                 let bars = 0, mostRows = 0, steps = 0;
                 (async () => {
                   scroller.scrollTop = 0;
                   await frame();
                   for (;;) {
                     const rows = scroller.querySelectorAll('.wf-row');
                     mostRows = Math.max(mostRows, rows.length);
                     for (const row of rows) {
                       if (!spans.has(row.dataset.spanId) && row.querySelector('.wf-bar')) bars += 1;
                       spans.add(row.dataset.spanId);
                     }
                     if (scroller.scrollTop + scroller.clientHeight >= scroller.scrollHeight - 1) break;
                     scroller.scrollTop += scroller.clientHeight;
                     steps += 1;
                     await frame();
                     await frame();
                   }
                   done({ spans: spans.size, bars, mostRows, steps });
                 })();",
                vec![],
            )
            .await
            .unwrap();
        eprintln!("waterfall walk: {walk}");
        assert_eq!(walk["spans"], 1000, "{walk}");
        assert_eq!(walk["bars"], 1000, "{walk}");
        assert!(walk["mostRows"].as_u64().unwrap() < 120, "{walk}");
        assert!(walk["steps"].as_u64().unwrap() > 10, "it did scroll: {walk}");

        // A row found by scrolling opens its detail.
        let visible = js(
            &client,
            "const box = document.getElementById('waterfall').getBoundingClientRect();
             const row = [...document.querySelectorAll('#waterfall .wf-row')]
               .find(r => { const b = r.getBoundingClientRect(); return b.top >= box.top + 30 && b.bottom <= box.bottom; });
             return row.dataset.spanId;",
            vec![],
        )
        .await;
        let id = visible.as_str().unwrap().to_owned();
        click(&client, &format!(".wf-row[data-span-id={id}] .wf-label")).await;
        wait_for(&client, &format!("#span-detail .detail[data-span-id={id}]")).await;
        screenshot(&client, "trace-1000").await;

        click(&client, "#collapse-all").await;
        wait_count(&client, "#waterfall .wf-row", 1).await;
        click(&client, "#expand-all").await;
        wait_until(
            &client,
            "all rows back",
            "return document.getElementById('wf-canvas').style.height === (1000 * 28) + 'px';",
            vec![],
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn markup_in_spans_shows_as_text_and_never_runs() {
    if !browser_available("markup_in_spans_shows_as_text_and_never_runs") {
        return;
    }
    let server = TestServer::start().await;
    server.ingest(&seed::xss_trace()).await;
    let site = server.page_info();
    with_browser(move |client| async move {
        let inert = |client: fantoccini::Client| async move {
            assert_eq!(js(&client, "return typeof window.__xss;", vec![]).await, "undefined");
            assert_eq!(count(&client, "#app img, #app script, #app b").await, 0);
            assert_eq!(js(&client, "return document.scripts.length;", vec![]).await, 1);
        };
        let payload = format!("{XSS_SCRIPT} and {XSS_IMG}");

        sign_in(&client, &site, "/").await;
        wait_list(&client, "/ui/traces", 1).await;
        assert_eq!(texts(&client, NAMES).await, [XSS_IMG]);
        assert_eq!(text(&client, "#trace-table tbody td.c-customer").await, XSS_SCRIPT);
        inert(client.clone()).await;

        click(&client, ".trace-link").await;
        wait_for(&client, "#span-detail .detail").await;
        assert_eq!(
            location(&client).await,
            "/ui/traces/xss-%3Cb%3Etrace%3C%2Fb%3E",
            "the id is encoded into one path segment"
        );
        assert_eq!(text(&client, "#trace-title").await, XSS_IMG);
        assert_eq!(text(&client, ".trace-id").await, seed::XSS_TRACE);
        assert_eq!(
            texts(&client, "#waterfall .wf-label").await,
            [XSS_IMG, XSS_SCRIPT]
        );
        // The root: input, output and metadata with markup keys and values.
        click(&client, ".wf-row[data-span-id=xss-root] .wf-label").await;
        wait_for(&client, "#span-detail .detail[data-span-id=xss-root]").await;
        assert_eq!(text(&client, "#span-input pre").await, payload);
        assert_eq!(text(&client, "#span-output pre").await, XSS_IMG);
        assert_eq!(text(&client, "#span-metadata th").await, XSS_IMG);
        assert_eq!(text(&client, "#span-metadata td").await, XSS_SCRIPT);
        inert(client.clone()).await;

        // The chat: model, messages and a tool call made of markup.
        click(&client, ".wf-row[data-span-id=xss-chat] .wf-label").await;
        wait_for(&client, "#span-detail .detail[data-span-id=xss-chat]").await;
        assert_eq!(text(&client, "#span-title").await, XSS_SCRIPT);
        assert_eq!(text(&client, "#span-detail [data-field=model] .value").await, XSS_IMG);
        assert_eq!(
            texts(&client, "#conversation .msg > pre.text").await,
            [payload.clone(), XSS_IMG.to_owned()]
        );
        assert_eq!(text(&client, "#conversation .tool-name").await, XSS_SCRIPT);
        assert_eq!(text(&client, "#conversation .tool-id").await, XSS_IMG);
        // Opening every fold renders every remaining string; none of it may become markup.
        js(
            &client,
            "document.querySelectorAll('#span-detail details').forEach(d => d.open = true);
             document.querySelectorAll('#span-detail .j-toggle[aria-expanded=false]').forEach(t => t.click());",
            vec![],
        )
        .await;
        assert!(text(&client, "#span-raw").await.contains(XSS_SCRIPT));
        inert(client.clone()).await;
        screenshot(&client, "xss").await;
    })
    .await;
}

#[tokio::test]
async fn sign_in_empty_state_and_live_refresh() {
    if !browser_available("sign_in_empty_state_and_live_refresh") {
        return;
    }
    let server = TestServer::start().await;
    let site = server.page_info();
    let http = server.http().clone();
    with_browser(move |client| async move {
        client.goto(&site.url("/")).await.unwrap();
        wait_for(&client, "#api-key").await;

        // A wrong key is refused and not kept.
        type_into(&client, "#api-key", "th_not_a_key").await;
        click(&client, "#sign-in button[type=submit]").await;
        wait_until(
            &client,
            "the refusal",
            "return document.getElementById('sign-in-error').textContent.length > 0;",
            vec![],
        )
        .await;
        assert!(
            text(&client, "#sign-in-error")
                .await
                .contains("not accepted")
        );
        assert_eq!(session_key(&client).await, Value::Null);

        // The right key opens an empty project, which says how to send the first trace.
        type_into(&client, "#api-key", &site.key).await;
        click(&client, "#sign-in button[type=submit]").await;
        wait_for(&client, "#empty-state").await;
        assert_eq!(session_key(&client).await, json!(site.key));
        assert_eq!(text(&client, "#empty-state h2").await, "No traces yet");
        let curl = text(&client, "#curl-example").await;
        let endpoint = site.url("/api/v1/traces/ingest");
        assert!(curl.contains(&endpoint), "{curl}");
        assert!(
            curl.contains("Authorization: Bearer $TRACEHOUSE_API_KEY"),
            "{curl}"
        );
        assert!(
            !curl.contains(&site.key),
            "the key is not printed on the page"
        );
        screenshot(&client, "empty").await;

        // Live refresh picks up what the example sends, without a reload.
        click(&client, "#live-toggle").await;
        assert!(location(&client).await.ends_with("?live=1"));
        let body = curl
            .split_once("-d '")
            .and_then(|(_, rest)| rest.strip_suffix('\''))
            .unwrap_or_else(|| panic!("no -d '...' in {curl}"));
        let payload: Value = serde_json::from_str(body).unwrap();
        let response = http
            .post(&endpoint)
            .bearer_auth(&site.key)
            .json(&payload)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        wait_list(&client, "live=1", 1).await;
        assert_eq!(texts(&client, NAMES).await, ["hello.chat"]);
        assert!(text(&client, "#updated-at").await.starts_with("live"));

        // Signing out forgets the key.
        click(&client, "#sign-out").await;
        wait_for(&client, "#api-key").await;
        assert_eq!(session_key(&client).await, Value::Null);
    })
    .await;
}

/// Past 10,000 matches a filtered list stops counting: the viewer says "10,000+" and keeps
/// paging, while the unfiltered list still shows the exact total.
#[tokio::test]
async fn capped_counts_show_as_lower_bounds_and_still_page() {
    if !browser_available("capped_counts_show_as_lower_bounds_and_still_page") {
        return;
    }
    let server = TestServer::start().await;
    let traces: Vec<Value> = (0..10_050)
        .map(|index| {
            json!({"trace_unique_id": format!("bulk-{index:05}"), "span_unique_id": "root",
                   "span_name": "bulk.agent", "model": "gpt-4o", "customer_identifier": "acme",
                   "start_time": 1_735_689_600 + index, "latency": 0.5})
        })
        .collect();
    server.ingest(&traces).await;
    let site = server.page_info();
    with_browser(move |client| async move {
        sign_in(&client, &site, "/").await;
        wait_list(&client, "/ui/traces", 50).await;
        assert!(
            text(&client, "#results-summary")
                .await
                .contains("10,050 traces"),
            "{}",
            text(&client, "#results-summary").await
        );
        assert_eq!(text(&client, "#page-of").await, "Page 1 of 201");

        type_into(&client, "#filter-customer", "acme").await;
        click(&client, "#apply-filters").await;
        wait_list(&client, "customer=acme", 50).await;
        assert_eq!(text(&client, "#trace-count").await, "10,000+ traces");
        assert_eq!(text(&client, "#page-of").await, "Page 1 of 200+");
        screenshot(&client, "capped-count").await;
        // The next page is there, as on any page of a capped list.
        click(&client, "#next-page").await;
        wait_list(&client, "page=2", 50).await;
        assert_eq!(text(&client, "#trace-count").await, "10,000+ traces");
    })
    .await;
}
