//! Conversations and customers: the threads API (`/api/log_threads/`, `/api/log_thread/{id}/`)
//! and the users API (`/api/users/list/`, `/api/users/{id}/`), both answered from the store's
//! grouping of traces ([`tracehouse_core::groups`]) and, for users, the profiles people set.

mod threads;
mod users;

use axum::Router;
use axum::routing::get;
use serde_json::{Map, Value, json};
use tracehouse_core::groups::TraceGroup;

use crate::{AppState, routes};

/// The threads and users routes, under every spelling clients use.
pub(crate) fn router() -> Router<AppState> {
    let table = [
        (
            "/log_threads",
            get(threads::list_threads).post(threads::list_threads),
        ),
        ("/log_thread/{thread_identifier}", get(threads::get_thread)),
        (
            "/users/list",
            get(users::list_users).post(users::list_users),
        ),
        (
            "/users/{customer_identifier}",
            get(users::get_user).patch(users::update_user),
        ),
    ];
    let mut router = Router::new();
    for (path, handler) in table {
        for variant in routes::variants(path) {
            router = router.route(&variant, handler.clone());
        }
    }
    router
}

/// The totals every thread and user row carries, under the names the filters and `sort_by` use.
fn totals_json(group: &TraceGroup) -> Map<String, Value> {
    let object = json!({
        "first_seen": group.first_seen.to_rfc3339(),
        "last_seen": group.last_seen.to_rfc3339(),
        "trace_count": group.trace_count,
        "number_of_requests": group.span_count,
        "llm_call_count": group.llm_call_count,
        "error_count": group.error_count,
        "total_cost": group.total_cost,
        "total_tokens": group.total_tokens,
        "total_prompt_tokens": group.total_prompt_tokens,
        "total_completion_tokens": group.total_completion_tokens,
        "average_latency": group.average_latency,
        "latency_p50": group.latency_p50,
    });
    let mut map = match object {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    if !group.cost_series.is_empty() {
        map.insert("cost_series".to_owned(), json!(group.cost_series));
    }
    map
}
