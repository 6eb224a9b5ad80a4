//! Customers' profiles in ClickHouse: each change is a new row with a higher version, read
//! back collapsed with `FINAL`, like keys.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tracehouse_core::{CustomerProfile, ProjectId, Timestamp};

use super::ClickHouseError;
use super::client::{Client, string_literal};
use super::rows::{json_lines, version_of};

#[derive(Serialize, Deserialize)]
struct ProfileRow {
    project_id: i64,
    customer_identifier: String,
    profile: String,
    updated_ns: i64,
    version: u64,
}

pub(crate) async fn customer_profiles(
    client: &Client,
    project: ProjectId,
    customers: &[String],
) -> Result<Vec<CustomerProfile>, ClickHouseError> {
    if customers.is_empty() {
        return Ok(Vec::new());
    }
    let list: Vec<String> = customers.iter().map(|c| string_literal(c)).collect();
    let rows: Vec<ProfileRow> = client
        .rows(&format!(
            "SELECT project_id, customer_identifier, profile, updated_ns, version \
             FROM customer_profiles FINAL WHERE project_id = {} AND customer_identifier IN ({}) \
             ORDER BY customer_identifier",
            project.0,
            list.join(", ")
        ))
        .await?;
    rows.into_iter()
        .map(|row| {
            let fields: Map<String, Value> = serde_json::from_str(&row.profile)
                .map_err(|e| ClickHouseError::Corrupt(format!("stored customer profile: {e}")))?;
            Ok(CustomerProfile {
                customer_identifier: row.customer_identifier,
                fields,
                updated_at: Timestamp::from_unix_nanos(row.updated_ns),
            })
        })
        .collect()
}

pub(crate) async fn put_customer_profile(
    client: &Client,
    project: ProjectId,
    profile: &CustomerProfile,
) -> Result<(), ClickHouseError> {
    let updated_ns = profile.updated_at.unix_nanos();
    let row = ProfileRow {
        project_id: project.0,
        customer_identifier: profile.customer_identifier.clone(),
        profile: serde_json::to_string(&profile.fields)
            .map_err(|e| ClickHouseError::Corrupt(format!("customer profile: {e}")))?,
        updated_ns,
        version: version_of(crate::now_ns()),
    };
    client
        .insert("customer_profiles", json_lines(std::slice::from_ref(&row))?)
        .await
}
