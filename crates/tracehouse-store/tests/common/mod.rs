//! Helpers shared by the store test binaries.

use tracehouse_core::{ApiKeyHash, ProjectId, ProjectName, SpanStore};

/// Creates a key for project "acme" in `store` and returns the project it authenticates as.
pub(crate) async fn acme_project(store: &dyn SpanStore) -> ProjectId {
    let key = store
        .create_key(&"acme".parse::<ProjectName>().unwrap(), "test")
        .await
        .unwrap();
    store
        .authenticate(&ApiKeyHash::of_secret(&key.secret))
        .await
        .unwrap()
        .unwrap()
        .id
}

pub(crate) use tracehouse_core::testing::span;
