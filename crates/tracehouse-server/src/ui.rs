//! The web trace viewer: hand-written HTML, CSS and JavaScript embedded in the binary and served
//! at `/` and under `/ui/`.
//!
//! The viewer is a client of the JSON API: it holds no server state of its own and calls the read
//! routes with the API key the user signs in with. Client-side routing uses the History API, so
//! every `/ui/...` path answers with the same page and the script renders the view the URL names.
//! Unknown paths outside `/ui/` (notably `/api/...`) keep the API's JSON 404.
//!
//! The script is a set of ES modules under `assets/ui/modules/`, one per view plus shared
//! helpers; the page's classic `app.js` imports `modules/main.js`, which imports the rest by
//! relative URL. Browsers load modules natively, so splitting the code costs no bundler.
//!
//! Architecture invariant: the assets are compiled into the binary (`include_str!`); nothing is
//! read from disk or fetched from elsewhere at run time, and there is no build step.

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::AppState;
use crate::error::ApiError;

/// One embedded file.
struct Asset {
    body: &'static str,
    content_type: &'static str,
    /// Hash of `body`, computed at compile time, so an unchanged asset revalidates with a 304.
    hash: u64,
}

impl Asset {
    const fn new(body: &'static str, content_type: &'static str) -> Self {
        Self {
            body,
            content_type,
            hash: fnv1a(body.as_bytes()),
        }
    }
}

const INDEX_HTML: Asset = Asset::new(
    include_str!("../assets/ui/index.html"),
    "text/html; charset=utf-8",
);
const APP_JS: Asset = Asset::new(
    include_str!("../assets/ui/app.js"),
    "text/javascript; charset=utf-8",
);
const APP_CSS: Asset = Asset::new(
    include_str!("../assets/ui/app.css"),
    "text/css; charset=utf-8",
);
/// One ES module of the viewer, embedded under its file name.
macro_rules! module_asset {
    ($name:literal) => {
        (
            $name,
            Asset::new(
                include_str!(concat!("../assets/ui/modules/", $name)),
                "text/javascript; charset=utf-8",
            ),
        )
    };
}

/// Every module `modules/main.js` may import, by the file name its `import` statements use.
const MODULES: &[(&str, Asset)] = &[
    module_asset!("api.js"),
    module_asset!("dashboard.js"),
    module_asset!("dom.js"),
    module_asset!("feedback.js"),
    module_asset!("format.js"),
    module_asset!("group-list.js"),
    module_asset!("main.js"),
    module_asset!("shell.js"),
    module_asset!("span-detail.js"),
    module_asset!("threads.js"),
    module_asset!("trace-list.js"),
    module_asset!("trace-view.js"),
    module_asset!("users.js"),
];
const FAVICON_SVG: Asset = Asset::new(include_str!("../assets/ui/favicon.svg"), "image/svg+xml");

/// Scripts and styles come only from this origin, so neither an injected `<script>` nor an
/// inline event handler can run; the page talks only to its own API; nothing may frame it.
/// Style *attributes* stay blocked too: the script positions waterfall bars through the CSSOM
/// (`element.style.left`), which CSP does not restrict.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

/// FNV-1a, 64 bits: a `const fn` so every asset's validator is fixed at compile time.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

fn etag(asset: &Asset) -> String {
    format!("\"{:016x}\"", asset.hash)
}

/// Whether the client's `If-None-Match` already names this version.
fn is_fresh(headers: &HeaderMap, tag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|candidate| candidate.trim().trim_start_matches("W/"))
        .any(|candidate| candidate == tag || candidate == "*")
}

/// Answers with an asset, or 304 when the client holds the same version.
///
/// `no-cache` rather than a long max-age: asset URLs carry no version, so a browser must
/// revalidate to notice a new binary; the ETag makes that a bodiless 304.
fn asset_response(asset: &Asset, headers: &HeaderMap) -> Response {
    let tag = etag(asset);
    let mut response = if is_fresh(headers, &tag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            )],
            asset.body,
        )
            .into_response()
    };
    let response_headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&tag) {
        response_headers.insert(header::ETAG, value);
    }
    let fixed = [
        (header::CACHE_CONTROL, "no-cache"),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        // The API key never travels in URLs, but trace names and ids do; keep them on this site.
        (header::REFERRER_POLICY, "no-referrer"),
    ];
    for (name, value) in fixed {
        response_headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

async fn index(headers: HeaderMap) -> Response {
    asset_response(&INDEX_HTML, &headers)
}

async fn app_js(headers: HeaderMap) -> Response {
    asset_response(&APP_JS, &headers)
}

async fn module(
    axum::extract::Path(name): axum::extract::Path<String>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    match MODULES.iter().find(|(file, _)| *file == name) {
        Some((_, asset)) => asset_response(asset, &headers),
        None => missing_asset(uri).await.into_response(),
    }
}

async fn app_css(headers: HeaderMap) -> Response {
    asset_response(&APP_CSS, &headers)
}

async fn favicon(headers: HeaderMap) -> Response {
    asset_response(&FAVICON_SVG, &headers)
}

/// A mistyped asset name must not come back as the HTML page with a 200: a browser would
/// then try to run HTML as a script.
async fn missing_asset(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no UI asset at {}", uri.path()))
}

/// The viewer's routes: the page at `/` and every `/ui/...` path, and its assets.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/ui", get(index))
        .route("/ui/", get(index))
        .route("/ui/{*view}", get(index))
        .route("/ui/static/app.js", get(app_js))
        .route("/ui/static/modules/{name}", get(module))
        .route("/ui/static/app.css", get(app_css))
        .route("/ui/static/favicon.svg", get(favicon))
        .route("/ui/static/{*rest}", get(missing_asset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_follow_the_content() {
        assert_ne!(fnv1a(b"a"), fnv1a(b"b"));
        assert_eq!(etag(&APP_JS), etag(&Asset::new(APP_JS.body, "x")));
        assert!(etag(&INDEX_HTML).starts_with('"') && etag(&INDEX_HTML).ends_with('"'));
    }

    #[test]
    fn if_none_match_lists_and_weak_tags_are_understood() {
        let tag = etag(&APP_CSS);
        let mut headers = HeaderMap::new();
        assert!(!is_fresh(&headers, &tag));
        headers.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_str(&format!("\"other\", W/{tag}")).unwrap(),
        );
        assert!(is_fresh(&headers, &tag));
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"other\""));
        assert!(!is_fresh(&headers, &tag));
    }

    #[test]
    fn the_page_loads_only_external_same_origin_scripts() {
        // The policy forbids inline script, so the page must not depend on any.
        assert!(!INDEX_HTML.body.contains("<script>"));
        assert!(!INDEX_HTML.body.contains(" on"), "no inline event handlers");
        assert!(INDEX_HTML.body.contains("src=\"/ui/static/app.js\""));
        // innerHTML with data is how escaping goes wrong; the script builds DOM nodes instead.
        let scripts = std::iter::once(("app.js", &APP_JS))
            .chain(MODULES.iter().map(|(name, asset)| (*name, asset)));
        for (name, script) in scripts {
            for sink in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
            ] {
                assert!(!script.body.contains(sink), "{name} uses {sink}");
            }
        }
    }

    #[test]
    fn every_module_file_is_embedded_and_every_import_resolves() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/ui/modules");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        on_disk.sort();
        let embedded: Vec<String> = MODULES.iter().map(|(name, _)| name.to_string()).collect();
        assert_eq!(on_disk, embedded, "a module file is not listed in MODULES");
        for (name, asset) in MODULES {
            for line in asset
                .body
                .lines()
                .filter(|line| line.starts_with("import "))
            {
                let target = line
                    .rsplit_once(" from './")
                    .and_then(|(_, rest)| rest.strip_suffix("';"))
                    .unwrap_or_else(|| panic!("{name}: unexpected import form: {line}"));
                assert!(
                    MODULES.iter().any(|(file, _)| *file == target),
                    "{name} imports {target}, which is not embedded"
                );
            }
        }
        assert!(APP_JS.body.contains("import('/ui/static/modules/main.js')"));
    }
}
