//! Customers' profiles in ClickHouse: each change is a new row with a higher version, read
//! back collapsed with `FINAL`, like keys.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tracehouse_core::groups::ProfileNames;
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

#[derive(Deserialize)]
struct ParamRead {
    customer_identifier: String,
    field: String,
    value: String,
    ingested_ns: i64,
}

/// The `IN (...)` condition on customers, or `1` for every customer of the project.
fn customers_condition(customers: Option<&[String]>) -> String {
    match customers {
        None => "1".to_owned(),
        Some([]) => "0".to_owned(),
        Some(customers) => {
            let list: Vec<String> = customers.iter().map(|c| string_literal(c)).collect();
            format!("customer_identifier IN ({})", list.join(", "))
        }
    }
}

/// Profiles of these customers (every customer of the project for `None`): the PATCHed
/// fields and the latest value of each field their spans sent.
async fn read_profiles(
    client: &Client,
    project: ProjectId,
    customers: Option<&[String]>,
    fields: Option<&[&str]>,
) -> Result<Vec<CustomerProfile>, ClickHouseError> {
    let condition = customers_condition(customers);
    let field_condition = match fields {
        None => "1".to_owned(),
        Some(fields) => {
            let list: Vec<String> = fields.iter().map(|f| string_literal(f)).collect();
            format!("field IN ({})", list.join(", "))
        }
    };
    let explicit_sql = format!(
        "SELECT project_id, customer_identifier, profile, updated_ns, version \
         FROM customer_profiles FINAL WHERE project_id = {} AND {condition}",
        project.0
    );
    let ingested_sql = format!(
        "SELECT customer_identifier, field, value, ingested_ns \
         FROM customer_params FINAL WHERE project_id = {} AND {condition} AND {field_condition}",
        project.0
    );
    let explicit = client.rows::<ProfileRow>(&explicit_sql);
    let ingested = client.rows::<ParamRead>(&ingested_sql);
    let (explicit, ingested) = tokio::try_join!(explicit, ingested)?;
    let corrupt =
        |e: serde_json::Error| ClickHouseError::Corrupt(format!("stored customer profile: {e}"));
    let mut profiles: HashMap<String, CustomerProfile> = HashMap::new();
    for row in explicit {
        let fields: Map<String, Value> = serde_json::from_str(&row.profile).map_err(corrupt)?;
        let at = Timestamp::from_unix_nanos(row.updated_ns);
        CustomerProfile::assembling(&mut profiles, row.customer_identifier, at).fields = fields;
    }
    for row in ingested {
        let value: Value = serde_json::from_str(&row.value).map_err(corrupt)?;
        let at = Timestamp::from_unix_nanos(row.ingested_ns);
        CustomerProfile::assembling(&mut profiles, row.customer_identifier, at)
            .ingested
            .insert(row.field, value);
    }
    let mut profiles: Vec<CustomerProfile> = profiles.into_values().collect();
    profiles.sort_by(|a, b| a.customer_identifier.cmp(&b.customer_identifier));
    Ok(profiles)
}

pub(crate) async fn customer_profiles(
    client: &Client,
    project: ProjectId,
    customers: &[String],
) -> Result<Vec<CustomerProfile>, ClickHouseError> {
    if customers.is_empty() {
        return Ok(Vec::new());
    }
    read_profiles(client, project, Some(customers), None).await
}

/// The display name and email of these customers (every customer of the project for `None`),
/// for the users list's `name` and `email` filters and sort orders.
pub(crate) async fn profile_names(
    client: &Client,
    project: ProjectId,
    customers: Option<&[String]>,
) -> Result<HashMap<String, ProfileNames>, ClickHouseError> {
    Ok(
        read_profiles(client, project, customers, Some(&["name", "email"]))
            .await?
            .into_iter()
            .map(|profile| {
                let names = (
                    profile.text("name").map(str::to_owned),
                    profile.text("email").map(str::to_owned),
                );
                (profile.customer_identifier, names)
            })
            .collect(),
    )
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
