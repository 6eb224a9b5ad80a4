//! The dashboard in a real browser: charts drawn from a known data set, the group-by selector
//! and its legend, a click on a bar opening the trace list for that bucket and group, and the
//! empty state.

use serde_json::{Value, json};

use crate::seed;
use crate::util::{
    TestServer, browser_available, count, js, location, screenshot, sign_in, texts, wait_count,
    wait_for, wait_until, with_browser,
};

/// Six whole hours ending at the start of the current hour (UTC).
fn first_hour() -> f64 {
    let now = seed::now();
    (now / 3600.0).floor() * 3600.0 - 6.0 * 3600.0
}

/// One single-span trace of `gpt-4o` in each of the six hours, and one of `claude-3-5-sonnet`
/// in hours 1 and 3 (the second fails).
fn spans(h0: f64) -> Vec<Value> {
    let mut spans = Vec::new();
    for k in 0..6 {
        let start = h0 + f64::from(k) * 3600.0 + 600.0;
        spans.push(seed::span(
            &format!("dash-{k}-a"),
            "root",
            None,
            &format!("gpt-call-{k}"),
            (start, start + 1.5),
            json!({"model": "gpt-4o", "customer_identifier": "acme", "cost": 0.01 * f64::from(k + 1),
                   "prompt_tokens": 100, "completion_tokens": 20, "log_type": "chat"}),
        ));
        if k == 1 || k == 3 {
            spans.push(seed::span(
                &format!("dash-{k}-b"),
                "root",
                None,
                &format!("claude-call-{k}"),
                (start + 60.0, start + 63.0),
                json!({"model": "claude-3-5-sonnet", "customer_identifier": "globex", "cost": 0.5,
                       "prompt_tokens": 300, "completion_tokens": 90, "log_type": "chat",
                       "status": if k == 3 { "error" } else { "success" }}),
            ));
        }
    }
    spans
}

fn iso(epoch: f64) -> String {
    let millis = (epoch * 1000.0) as i64;
    chrono_free_iso(millis)
}

/// RFC 3339 (UTC) of epoch milliseconds, computed here to keep the test free of date crates.
fn chrono_free_iso(millis: i64) -> String {
    let seconds = millis.div_euclid(1000);
    let days = seconds.div_euclid(86_400);
    let rest = seconds.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

async fn wait_dashboard(client: &fantoccini::Client) {
    wait_for(client, "#chart-latency").await;
}

#[tokio::test]
async fn dashboard_charts_group_by_and_bucket_click_filter_the_trace_list() {
    if !browser_available("dashboard_charts_group_by_and_bucket_click_filter_the_trace_list") {
        return;
    }
    let server = TestServer::start().await;
    let h0 = first_hour();
    server.ingest(&spans(h0)).await;
    let site = server.page_info();
    let path = format!(
        "/ui/dashboard?from={}&to={}&interval=hour",
        iso(h0),
        iso(h0 + 6.0 * 3600.0 - 1.0)
    );
    with_browser(move |client| async move {
        sign_in(&client, &site, &path).await;
        wait_dashboard(&client).await;
        // Six hourly buckets: three percentile lines of six points each.
        wait_count(&client, "#chart-latency circle.ch-point", 18).await;
        assert_eq!(count(&client, "#chart-latency polyline.ch-line").await, 3);
        assert_eq!(count(&client, "#chart-cost rect.ch-hit").await, 6);
        // Without a group, one bar per hour that has spans.
        assert_eq!(count(&client, "#chart-cost rect.ch-bar").await, 6);
        assert_eq!(texts(&client, "#chart-cost .legend-label").await, ["all"]);
        // Prompt and completion tokens stack in every hour.
        assert_eq!(count(&client, "#chart-tokens rect.ch-bar").await, 12);
        assert_eq!(
            texts(&client, "#chart-tokens .legend-label").await,
            ["prompt", "completion"]
        );
        wait_count(&client, "#top-customers tbody tr", 2).await;
        assert_eq!(
            texts(&client, "#top-customers tbody td:first-child").await,
            ["globex", "acme"]
        );
        screenshot(&client, "dashboard").await;

        // Group by model: the legend names the models, the bars split by them.
        client
            .find(fantoccini::Locator::Css("#dash-group"))
            .await
            .unwrap()
            .select_by_value("model")
            .await
            .unwrap();
        wait_until(
            &client,
            "legend by model",
            "return location.search.includes('group=model')
                && [...document.querySelectorAll('#chart-cost .legend-label')].map(e => e.textContent).join(',')
                   === 'claude-3-5-sonnet,gpt-4o';",
            vec![],
        )
        .await;
        assert_eq!(count(&client, "#chart-cost rect.ch-bar").await, 8);
        // Each legend swatch shows its series' colour (set through the CSSOM, which the
        // Content-Security-Policy allows where a `style` attribute is refused).
        let swatches = js(
            &client,
            "return [...document.querySelectorAll('#chart-cost .ch-swatch')]
                .map(e => getComputedStyle(e).backgroundColor);",
            vec![],
        )
        .await;
        let swatches: Vec<&str> = swatches
            .as_array()
            .unwrap()
            .iter()
            .map(|colour| colour.as_str().unwrap())
            .collect();
        assert_eq!(swatches.len(), 2, "{swatches:?}");
        assert!(
            swatches
                .iter()
                .all(|colour| colour.starts_with("rgb") && *colour != "rgba(0, 0, 0, 0)"),
            "{swatches:?}"
        );
        assert_ne!(swatches[0], swatches[1], "two series, two colours");
        assert_eq!(
            texts(&client, "#chart-errors .legend-label").await,
            ["gpt-4o", "claude-3-5-sonnet"],
            "error-rate groups rank by requests"
        );
        screenshot(&client, "dashboard-by-model").await;

        // The claude bar of hour 3 opens the trace list for that hour and model.
        js(
            &client,
            "document.querySelector('#chart-cost rect.ch-bar[data-bucket=\"3\"][data-series=\"0\"]')
                .dispatchEvent(new MouseEvent('click', {bubbles: true}));",
            vec![],
        )
        .await;
        wait_until(
            &client,
            "trace list for the clicked bucket",
            "return location.pathname === '/ui/traces'
                && !document.querySelector('.results.loading')
                && document.querySelectorAll('#trace-table tbody tr').length === 1;",
            vec![],
        )
        .await;
        let at = location(&client).await;
        assert!(at.contains("span=model%3Dclaude-3-5-sonnet"), "{at}");
        assert_eq!(
            texts(&client, "#trace-table tbody .trace-link").await,
            ["claude-call-3"]
        );
        assert!(texts(&client, "#chip-span .chip-text").await[0].contains("claude-3-5-sonnet"));
        screenshot(&client, "dashboard-bucket-list").await;

        // A click on an empty part of a bucket keeps only its time range.
        client.back().await.unwrap();
        wait_count(&client, "#chart-cost rect.ch-bar", 8).await;
        js(
            &client,
            "document.querySelector('#chart-latency rect.ch-hit[data-bucket=\"1\"]')
                .dispatchEvent(new MouseEvent('click', {bubbles: true}));",
            vec![],
        )
        .await;
        wait_until(
            &client,
            "both traces of hour 1",
            "return location.pathname === '/ui/traces'
                && !document.querySelector('.results.loading')
                && document.querySelectorAll('#trace-table tbody tr').length === 2;",
            vec![],
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn dashboard_without_data_explains_how_to_send_spans() {
    if !browser_available("dashboard_without_data_explains_how_to_send_spans") {
        return;
    }
    let server = TestServer::start().await;
    let site = server.page_info();
    with_browser(move |client| async move {
        sign_in(&client, &site, "/ui/dashboard").await;
        wait_for(&client, "#dash-empty").await;
        let text = texts(&client, "#dash-empty").await.join(" ");
        assert!(text.contains("/api/v1/traces/ingest"), "{text}");
        assert!(texts(&client, "#nav-dashboard").await == ["Dashboard"]);
        screenshot(&client, "dashboard-empty").await;
    })
    .await;
}
