//! Helpers shared by the store test binaries.

use tracehouse_core::{ApiKeyHash, ProjectId, ProjectName, SpanStore};

/// Creates a key for project "acme" in `store` and returns the project it authenticates as.
pub(crate) async fn acme_project(store: &dyn SpanStore) -> ProjectId {
    let key = store
        .create_key(
            &"acme".parse::<ProjectName>().unwrap(),
            "test",
            tracehouse_core::Scopes::ADMIN,
        )
        .await
        .unwrap();
    store
        .authenticate(&ApiKeyHash::of_secret(&key.secret))
        .await
        .unwrap()
        .unwrap()
        .project
        .id
}

pub(crate) use tracehouse_core::testing::span;

/// The ClickHouse server's URL from `TRACEHOUSE_CLICKHOUSE_URL`.
// Not every test binary that includes this module talks to ClickHouse.
#[allow(dead_code)]
pub(crate) fn clickhouse_url() -> Option<String> {
    env_or_skip("TRACEHOUSE_CLICKHOUSE_URL").map(|url| url.trim_end_matches('/').to_owned())
}

/// The value of `variable`. Without it the test is skipped with a line on stderr, except
/// under CI (`CI=true`) or `TRACEHOUSE_CLICKHOUSE_TESTS=required`, where it fails.
#[allow(dead_code)]
pub(crate) fn env_or_skip(variable: &str) -> Option<String> {
    if let Ok(value) = std::env::var(variable) {
        if !value.trim().is_empty() {
            return Some(value.trim().to_owned());
        }
    }
    let required = std::env::var("CI").is_ok_and(|v| v == "true")
        || std::env::var("TRACEHOUSE_CLICKHOUSE_TESTS").is_ok_and(|v| v == "required");
    assert!(
        !required,
        "{variable} is not set but ClickHouse tests are required (CI=true or TRACEHOUSE_CLICKHOUSE_TESTS=required); run scripts/test, or scripts/clickhouse start DIR"
    );
    eprintln!(
        "skipping ClickHouse test: {variable} is not set (scripts/clickhouse start DIR starts a server)"
    );
    None
}
