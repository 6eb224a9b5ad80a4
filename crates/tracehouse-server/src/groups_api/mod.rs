//! Conversations and customers: the threads API (`/api/log_threads/`, `/api/log_thread/{id}/`)
//! and the users API (`/api/users/list/`, `/api/users/{id}/`), both answered from the store's
//! grouping of traces ([`tracehouse_core::groups`]) and, for users, the profiles people set.

mod threads;
mod users;

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value, json};
use tracehouse_core::groups::{GroupQuery, Grouping, TraceGroup};
use tracehouse_core::{Listing, ProjectId, Timestamp};

use crate::error::ApiError;
use crate::read_api::ListRequest;
use crate::read_api::params::ListParams;
use crate::{AppState, now, routes};

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

/// One page of a threads or users list as the store answers it, and what its envelope needs.
struct GroupPage {
    query: GroupQuery,
    as_of: Timestamp,
    listing: Listing<TraceGroup>,
    request: ListRequest,
}

impl GroupPage {
    /// Parses the list request (query string, then body) and reads the page, pinned to a
    /// snapshot so its `next` link walks the same traces.
    async fn read(
        state: &AppState,
        project: ProjectId,
        grouping: Grouping,
        request: ListRequest,
        body: &[u8],
    ) -> Result<Self, ApiError> {
        let mut query = ListParams::new(request.query.clone(), body)?.group_query(grouping)?;
        let as_of = *query.traces.as_of.get_or_insert_with(now);
        let listing = state.store.list_trace_groups(project, &query).await?;
        Ok(Self {
            query,
            as_of,
            listing,
            request,
        })
    }

    /// The `{"count", "next", "previous", "results"}` envelope of the page.
    fn envelope(&self, results: Vec<Value>) -> Json<Map<String, Value>> {
        self.request
            .envelope(self.query.page, self.as_of, &self.listing, results)
    }
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
