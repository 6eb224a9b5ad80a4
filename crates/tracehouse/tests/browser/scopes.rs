//! The viewer with keys of each scope: an ingest-only key cannot sign in (it could not read
//! anything), a read key sees everything but cannot delete (the button says why), and an admin
//! key deletes a trace.

use serde_json::{Value, json};

use crate::seed;
use crate::util::{
    Site, TestServer, browser_available, click, js, location, screenshot, sign_in, text, type_into,
    wait_for, wait_until, with_browser,
};

#[tokio::test]
async fn a_read_key_sees_traces_but_cannot_delete_them_and_an_admin_key_can() {
    if !browser_available("a_read_key_sees_traces_but_cannot_delete_them_and_an_admin_key_can") {
        return;
    }
    let server = TestServer::start().await;
    server.ingest(&seed::support_trace()).await;
    let admin = server.page_info();
    let reader = Site {
        key: server.key_with_scopes("read").await,
        ..admin.clone()
    };
    let ingester = server.key_with_scopes("ingest").await;
    let http = server.http().clone();
    let trace_path = format!("/ui/traces/{}", seed::SUPPORT_TRACE);
    let trace_api = admin.url(&format!("/api/traces/{}/", seed::SUPPORT_TRACE));
    with_browser(move |client| async move {
        // An ingest key is turned away at sign-in, and told why.
        client.goto(&admin.url("/")).await.unwrap();
        wait_for(&client, "#api-key").await;
        type_into(&client, "#api-key", &ingester).await;
        click(&client, "#sign-in button[type=submit]").await;
        wait_until(
            &client,
            "the refusal",
            "return document.getElementById('sign-in-error').textContent.length > 0;",
            vec![],
        )
        .await;
        let refusal = text(&client, "#sign-in-error").await;
        assert!(refusal.contains("ingest scope"), "{refusal}");
        assert!(refusal.contains("--scope read"), "{refusal}");
        assert_eq!(
            js(
                &client,
                "return sessionStorage.getItem('tracehouse.apiKey');",
                vec![]
            )
            .await,
            Value::Null
        );

        // A read key: the list and the trace load; delete is disabled, with the reason.
        sign_in(&client, &reader, "/ui/traces").await;
        wait_for(&client, "#trace-table tbody .trace-link").await;
        client.goto(&reader.url(&trace_path)).await.unwrap();
        wait_for(&client, "#waterfall .wf-row").await;
        assert_eq!(
            text(&client, "#trace-title").await,
            "support_agent.workflow"
        );
        let button = js(
            &client,
            "const b = document.getElementById('delete-trace'); \
             return {disabled: b.disabled, why: b.parentElement.title};",
            vec![],
        )
        .await;
        assert_eq!(button["disabled"], json!(true), "{button}");
        let why = button["why"].as_str().unwrap();
        assert!(
            why.contains("read scope") && why.contains("admin scope"),
            "{why}"
        );
        screenshot(&client, "read-key-trace").await;
        // Even forced, a click does nothing: the trace is still there.
        js(
            &client,
            "document.getElementById('delete-trace').click(); return null;",
            vec![],
        )
        .await;
        let still = http
            .get(&trace_api)
            .bearer_auth(&admin.key)
            .send()
            .await
            .unwrap();
        assert_eq!(still.status(), reqwest::StatusCode::OK);
        assert!(location(&client).await.ends_with(&trace_path));
        // The server refuses the read key too, whatever a page does.
        let refused = http
            .delete(&trace_api)
            .bearer_auth(&reader.key)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), reqwest::StatusCode::FORBIDDEN);

        // An admin key deletes it, after confirming, and lands back on the list.
        click(&client, "#sign-out").await;
        sign_in(&client, &admin, &trace_path).await;
        wait_for(&client, "#waterfall .wf-row").await;
        js(&client, "window.confirm = () => true; return null;", vec![]).await;
        click(&client, "#delete-trace").await;
        wait_until(
            &client,
            "the list after the delete",
            "return location.pathname === '/ui/traces';",
            vec![],
        )
        .await;
        let gone = http
            .get(&trace_api)
            .bearer_auth(&admin.key)
            .send()
            .await
            .unwrap();
        assert_eq!(gone.status(), reqwest::StatusCode::NOT_FOUND);
    })
    .await;
}
