//! How the viewer is served: the page on every UI path, its security and cache headers, and
//! the API's JSON answers left untouched beside it. Plain HTTP, no browser needed.

use reqwest::StatusCode;
use reqwest::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH,
    X_CONTENT_TYPE_OPTIONS,
};
use serde_json::Value;

use crate::util::TestServer;

#[tokio::test]
async fn every_ui_path_serves_the_page_with_a_strict_policy() {
    let server = TestServer::start().await;
    for path in [
        "/",
        "/ui",
        "/ui/",
        "/ui/traces",
        "/ui/traces/some%2Fid?span=x",
    ] {
        let response = server.http().get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers().clone();
        assert_eq!(headers[CONTENT_TYPE], "text/html; charset=utf-8", "{path}");
        let policy = headers[CONTENT_SECURITY_POLICY].to_str().unwrap();
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(policy.contains(directive), "{path}: {policy}");
        }
        assert!(!policy.contains("unsafe-inline"), "{policy}");
        assert!(!policy.contains("unsafe-eval"), "{policy}");
        assert_eq!(headers[X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(headers[CACHE_CONTROL], "no-cache");
        let body = response.text().await.unwrap();
        assert!(body.contains(r#"<script src="/ui/static/app.js" defer></script>"#));
    }
}

#[tokio::test]
async fn assets_revalidate_with_their_etag() {
    let server = TestServer::start().await;
    for (path, kind) in [
        ("/ui/static/app.js", "text/javascript; charset=utf-8"),
        ("/ui/static/app.css", "text/css; charset=utf-8"),
        ("/ui/static/favicon.svg", "image/svg+xml"),
    ] {
        let response = server.http().get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(response.headers()[CONTENT_TYPE], kind);
        assert_eq!(response.headers()[X_CONTENT_TYPE_OPTIONS], "nosniff");
        let tag = response.headers()[ETAG].clone();
        assert!(!response.bytes().await.unwrap().is_empty());

        let again = server
            .http()
            .get(server.url(path))
            .header(IF_NONE_MATCH, tag.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
        assert_eq!(again.headers()[ETAG], tag);
        assert!(again.bytes().await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn api_paths_keep_answering_json() {
    let server = TestServer::start().await;
    let json = |response: reqwest::Response| async move {
        let status = response.status();
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        let body: Value = response.json().await.unwrap();
        (status, body)
    };

    // Unknown API paths and unknown assets are the API's JSON 404, never the HTML page.
    for path in [
        "/api/nope",
        "/api/traces/list/extra/more",
        "/ui/static/missing.js",
        "/nope",
    ] {
        let response = server.http().get(server.url(path)).send().await.unwrap();
        let (status, body) = json(response).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body["error"], "not_found", "{path}");
    }
    // The page does not weaken authentication of the data routes.
    let response = server
        .http()
        .get(server.url("/api/traces/list/"))
        .send()
        .await
        .unwrap();
    let (status, body) = json(response).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "unauthorized");
    // Only GET (and HEAD) reach the page.
    let response = server.http().post(server.url("/")).send().await.unwrap();
    let (status, _) = json(response).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn viewer_modules_are_served_as_scripts_and_unknown_ones_are_json_404s() {
    let server = TestServer::start().await;
    for name in [
        "main.js",
        "shell.js",
        "trace-list.js",
        "trace-view.js",
        "span-detail.js",
    ] {
        let path = format!("/ui/static/modules/{name}");
        let response = server.http().get(server.url(&path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(
            response.headers()[CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        let policy = response.headers()[CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(policy.contains("script-src 'self'"), "{policy}");
        assert!(response.text().await.unwrap().contains("import "), "{path}");
    }
    let response = server
        .http()
        .get(server.url("/ui/static/modules/nope.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "not_found");
}
