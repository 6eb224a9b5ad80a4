//! `GET|POST /api/users/list/` and `GET|PATCH /api/users/{customer_identifier}/`: the customers
//! of a project (every `customer_identifier` its traces name), their usage, and the profile
//! fields people set, in the shapes the vendor's `respan-api` client reads.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use serde_json::{Map, Value, json};
use tracehouse_core::groups::{
    GroupQuery, Grouping, PROFILE_FIELDS, TraceGroup, budget_period_start, profile_field_fits,
};
use tracehouse_core::spanlog::json_type_name;
use tracehouse_core::{CustomerProfile, Project, Timestamp};

use super::{GroupPage, totals_json};
use crate::auth::{AdminKey, ReadKey};
use crate::error::ApiError;
use crate::read_api::ListRequest;
use crate::{AppState, now};

type JsonObject = Json<Map<String, Value>>;

/// A user as listed: usage totals, then the profile (each profile field present, null when
/// never set), under the vendor's names and their older aliases. A profile field is the value
/// set by PATCH, else the latest value the customer's spans sent in `customer_params`.
fn user_json(group: &TraceGroup, profile: Option<&CustomerProfile>) -> Map<String, Value> {
    let mut object = Map::new();
    object.insert("id".to_owned(), json!(group.key));
    object.insert("customer_identifier".to_owned(), json!(group.key));
    object.extend(totals_json(group));
    let aliases = [
        ("total_requests", json!(group.span_count)),
        ("tokens", json!(group.total_tokens)),
        ("cost", json!(group.total_cost)),
        ("last_active_timeframe", json!(group.last_seen.to_rfc3339())),
        ("thread_count", json!(group.thread_count)),
        ("active_days", json!(group.active_days)),
        ("average_ttft", json!(group.average_ttft)),
    ];
    for (key, value) in aliases {
        object.insert(key.to_owned(), value);
    }
    for (field, _) in PROFILE_FIELDS {
        let value = profile
            .and_then(|p| p.field(field))
            .cloned()
            .unwrap_or(Value::Null);
        object.insert((*field).to_owned(), value);
    }
    object.insert(
        "updated_at".to_owned(),
        json!(profile.map(|p| p.updated_at.to_rfc3339())),
    );
    object
}

/// `GET|POST /api/users/list/`: a page of the project's customers. As the vendor's API does,
/// `count` is the number of users on this page (`total` counts every match), and a page past
/// the last answers an empty `results`, which ends the client's pager.
pub(super) async fn list_users(
    State(state): State<AppState>,
    ReadKey(project): ReadKey,
    request: ListRequest,
    body: Bytes,
) -> Result<JsonObject, ApiError> {
    let page = GroupPage::read(&state, project.id, Grouping::Customer, request, &body).await?;
    let keys: Vec<String> = page.listing.items.iter().map(|g| g.key.clone()).collect();
    let profiles: HashMap<String, CustomerProfile> = state
        .store
        .customer_profiles(project.id, &keys)
        .await?
        .into_iter()
        .map(|profile| (profile.customer_identifier.clone(), profile))
        .collect();
    let results: Vec<Value> = page
        .listing
        .items
        .iter()
        .map(|group| Value::Object(user_json(group, profiles.get(&group.key))))
        .collect();
    let shown = results.len();
    let Json(mut envelope) = page.envelope(results);
    let total = envelope.insert("count".to_owned(), json!(shown));
    envelope.insert("total".to_owned(), total.unwrap_or(Value::Null));
    Ok(Json(envelope))
}

/// One user's usage (`None` when no trace names them) and profile.
async fn find_user(
    state: &AppState,
    project: &Project,
    customer: &str,
) -> Result<(Option<TraceGroup>, Option<CustomerProfile>), ApiError> {
    let keys = vec![customer.to_owned()];
    let mut query = GroupQuery::new(Grouping::Customer);
    query.keys = Some(keys.clone());
    let (groups, profiles) = tokio::try_join!(
        state.store.list_trace_groups(project.id, &query),
        state.store.customer_profiles(project.id, &keys),
    )?;
    Ok((groups.items.into_iter().next(), profiles.into_iter().next()))
}

/// The answer of retrieve and update: the listed fields plus the budget period's usage.
async fn user_detail(
    state: &AppState,
    project: &Project,
    customer: &str,
) -> Result<JsonObject, ApiError> {
    let (group, profile) = find_user(state, project, customer).await?;
    // Users exist through their traces; a profile alone (its traces deleted) still answers.
    let group = match (group, &profile) {
        (Some(group), _) => group,
        (None, Some(profile)) => TraceGroup::empty(customer, profile.updated_at),
        (None, None) => {
            return Err(ApiError::NotFound(format!(
                "customer {customer:?} not found: no trace names them"
            )));
        }
    };
    let mut object = user_json(&group, profile.as_ref());
    let field = |name: &str| profile.as_ref().and_then(|p| p.field(name));
    let period_start = field("period_start")
        .and_then(Value::as_str)
        .and_then(|text| Timestamp::parse(text).ok())
        .or_else(|| {
            field("budget_duration")
                .and_then(Value::as_str)
                .and_then(|duration| budget_period_start(duration, now()))
        });
    let period_usage = match period_start {
        None => group.total_cost,
        Some(start) => {
            let mut query = GroupQuery::new(Grouping::Customer);
            query.keys = Some(vec![customer.to_owned()]);
            query.traces.start_from = Some(start);
            state
                .store
                .list_trace_groups(project.id, &query)
                .await?
                .items
                .first()
                .map_or(0.0, |g| g.total_cost)
        }
    };
    object.insert("total_period_usage".to_owned(), json!(period_usage));
    object.insert("organization_name".to_owned(), json!(project.name.as_str()));
    object.insert("environment".to_owned(), Value::Null);
    Ok(Json(object))
}

/// `GET /api/users/{customer_identifier}/`.
pub(super) async fn get_user(
    State(state): State<AppState>,
    ReadKey(project): ReadKey,
    Path(customer): Path<String>,
) -> Result<JsonObject, ApiError> {
    user_detail(&state, &project, &customer).await
}

/// Checks a PATCH body: known fields of the right type (null clears one).
fn profile_changes(body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    let names = || {
        PROFILE_FIELDS
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let parsed: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Map::new())
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("body is not valid JSON: {e}")))?
    };
    let Value::Object(fields) = parsed else {
        return Err(ApiError::BadRequest(format!(
            "body must be a JSON object with any of {}, got {}",
            names(),
            json_type_name(&parsed)
        )));
    };
    for (key, value) in &fields {
        let Some((_, expected)) = PROFILE_FIELDS.iter().find(|(name, _)| name == key) else {
            return Err(ApiError::BadRequest(format!(
                "{key} cannot be set on a user; settable fields: {}",
                names()
            )));
        };
        let fits = value.is_null() || profile_field_fits(key, value) == Some(true);
        if !fits {
            return Err(ApiError::BadRequest(format!(
                "{key} must be {expected} or null, got {}",
                match value {
                    Value::String(text) => format!("{text:?}"),
                    other => json_type_name(other).to_owned(),
                }
            )));
        }
    }
    Ok(fields)
}

/// `PATCH /api/users/{customer_identifier}/`: sets profile fields of a customer the project's
/// traces name (a null clears a field; `metadata` is replaced whole) and answers the user.
pub(super) async fn update_user(
    State(state): State<AppState>,
    AdminKey(project): AdminKey,
    Path(customer): Path<String>,
    body: Bytes,
) -> Result<JsonObject, ApiError> {
    let changes = profile_changes(&body)?;
    let (group, profile) = find_user(&state, &project, &customer).await?;
    if group.is_none() && profile.is_none() {
        return Err(ApiError::NotFound(format!(
            "customer {customer:?} not found: users come from traces that name them"
        )));
    }
    // Only what PATCH set is written: values spans sent stay theirs, and show again when a
    // PATCH clears the field.
    let mut fields = profile.map(|p| p.fields).unwrap_or_default();
    for (key, value) in changes {
        if value.is_null() {
            fields.shift_remove(&key);
        } else {
            fields.insert(key, value);
        }
    }
    state
        .store
        .put_customer_profile(
            project.id,
            CustomerProfile {
                customer_identifier: customer.clone(),
                fields,
                ingested: Map::new(),
                updated_at: now(),
            },
        )
        .await?;
    user_detail(&state, &project, &customer).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes(body: Value) -> Result<Map<String, Value>, String> {
        profile_changes(&Bytes::from(body.to_string())).map_err(|e| e.to_string())
    }

    #[test]
    fn profile_fields_are_checked_by_name_and_type() {
        let ok = changes(
            json!({"name": "Ann", "period_budget": 12.5, "budget_duration": "weekly",
            "metadata": {"plan": "pro"}, "email": null}),
        )
        .unwrap();
        assert_eq!(ok.len(), 5);
        let error = changes(json!({"budget_duration": "yearly"})).unwrap_err();
        assert!(
            error.contains("budget_duration must be one of daily, weekly, monthly"),
            "{error}"
        );
        let error = changes(json!({"total_cost": 3})).unwrap_err();
        assert!(error.contains("total_cost cannot be set"), "{error}");
        let error = changes(json!({"period_budget": "ten"})).unwrap_err();
        assert!(error.contains("period_budget must be a number"), "{error}");
    }
}
