//! API keys and projects in ClickHouse, so tracehouse servers in front of one cluster share
//! them and keep no state of their own. Keys are stored only as SHA-256 hashes.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracehouse_core::{
    ApiKeyHash, ApiKeyInfo, KeyGrant, NewApiKey, Project, ProjectId, ProjectName, Scopes, Timestamp,
};

use super::ClickHouseError;
use super::client::{Client, string_literal};
use super::rows::{json_lines, version_of};
use crate::now_ns;

/// Characters of the secret kept in clear to recognise a key in listings.
const VISIBLE_PREFIX_LEN: usize = 10;

/// The id of a project, derived from its name: every server computes the same id without
/// coordination, where a counter would need a transaction ClickHouse does not have.
pub(crate) fn project_id(name: &ProjectName) -> ProjectId {
    let digest = Sha256::digest(format!("tracehouse-project\0{}", name.as_str()).as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // Positive, so ids print like the SQLite store's.
    ProjectId(i64::from_be_bytes(first) & i64::MAX)
}

#[derive(Serialize, Deserialize)]
struct ProjectRow {
    id: i64,
    name: String,
    created_at_ns: i64,
}

#[derive(Serialize, Deserialize, Clone)]
struct KeyRow {
    id: i64,
    project_id: i64,
    project_name: String,
    key_hash: String,
    prefix: String,
    label: String,
    created_at_ns: i64,
    revoked_at_ns: Option<i64>,
    version: u64,
    scopes: String,
}

const KEY_COLUMNS: &str = "id, project_id, project_name, key_hash, prefix, label, created_at_ns, \
     revoked_at_ns, version, scopes";

fn parse_name(raw: &str) -> Result<ProjectName, ClickHouseError> {
    raw.parse()
        .map_err(|e| ClickHouseError::Corrupt(format!("stored project name: {e}")))
}

impl KeyRow {
    fn scopes(&self) -> Result<Scopes, ClickHouseError> {
        self.scopes
            .parse()
            .map_err(|e| ClickHouseError::Corrupt(format!("stored key scopes: {e}")))
    }

    fn info(&self, last_used_ns: Option<i64>) -> Result<ApiKeyInfo, ClickHouseError> {
        Ok(ApiKeyInfo {
            id: self.id,
            project: parse_name(&self.project_name)?,
            label: self.label.clone(),
            prefix: self.prefix.clone(),
            created_at: Timestamp::from_unix_nanos(self.created_at_ns).to_rfc3339(),
            revoked_at: self
                .revoked_at_ns
                .map(|ns| Timestamp::from_unix_nanos(ns).to_rfc3339()),
            scopes: self.scopes()?,
            last_used_at: last_used_ns.map(|ns| Timestamp::from_unix_nanos(ns).to_rfc3339()),
        })
    }
}

pub(crate) async fn find_project(
    client: &Client,
    name: &ProjectName,
) -> Result<Option<Project>, ClickHouseError> {
    let rows: Vec<ProjectRow> = client
        .rows(&format!(
            "SELECT id, name, created_at_ns FROM projects FINAL WHERE name = {}",
            string_literal(name.as_str())
        ))
        .await?;
    Ok(rows.into_iter().next().map(|row| Project {
        id: ProjectId(row.id),
        name: name.clone(),
    }))
}

pub(crate) async fn list_projects(client: &Client) -> Result<Vec<Project>, ClickHouseError> {
    let rows: Vec<ProjectRow> = client
        .rows("SELECT id, name, created_at_ns FROM projects FINAL ORDER BY name")
        .await?;
    rows.into_iter()
        .map(|row| {
            Ok(Project {
                id: ProjectId(row.id),
                name: parse_name(&row.name)?,
            })
        })
        .collect()
}

pub(crate) async fn create_project(
    client: &Client,
    name: &ProjectName,
) -> Result<Project, ClickHouseError> {
    if let Some(project) = find_project(client, name).await? {
        return Ok(project);
    }
    let id = project_id(name);
    // Two servers creating the same project insert the same row; the table keeps one.
    client
        .insert(
            "projects",
            json_lines(&[ProjectRow {
                id: id.0,
                name: name.as_str().to_owned(),
                created_at_ns: now_ns(),
            }])?,
        )
        .await?;
    Ok(Project {
        id,
        name: name.clone(),
    })
}

/// Keys recently found valid, so a busy client's requests do not each query ClickHouse.
///
/// Only valid keys are kept, for [`KEY_CACHE_TTL`]: a key revoked by this server is forgotten
/// at once, one revoked elsewhere (another server, `tracehouse keys revoke`) within the TTL.
/// Bounded: when full, it starts over, which costs one query per key in use.
#[derive(Debug, Default)]
pub(crate) struct KeyCache {
    valid: Mutex<HashMap<ApiKeyHash, (KeyGrant, Instant)>>,
}

/// How long a valid key is trusted without asking ClickHouse again.
pub(crate) const KEY_CACHE_TTL: Duration = Duration::from_secs(10);
const KEY_CACHE_CAPACITY: usize = 10_000;

impl KeyCache {
    fn lookup(&self, key: &ApiKeyHash, now: Instant) -> Option<KeyGrant> {
        let valid = self.valid.lock().unwrap_or_else(PoisonError::into_inner);
        valid
            .get(key)
            .filter(|(_, checked)| now.duration_since(*checked) < KEY_CACHE_TTL)
            .map(|(grant, _)| grant.clone())
    }

    fn remember(&self, key: &ApiKeyHash, grant: &KeyGrant, now: Instant) {
        let mut valid = self.valid.lock().unwrap_or_else(PoisonError::into_inner);
        if valid.len() >= KEY_CACHE_CAPACITY {
            valid.clear();
        }
        valid.insert(key.clone(), (grant.clone(), now));
    }

    /// Forgets every key, after this server revoked one.
    pub(crate) fn clear(&self) {
        self.valid
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

pub(crate) async fn authenticate_cached(
    client: &Client,
    cache: &KeyCache,
    key: &ApiKeyHash,
) -> Result<Option<KeyGrant>, ClickHouseError> {
    let now = Instant::now();
    if let Some(grant) = cache.lookup(key, now) {
        return Ok(Some(grant));
    }
    let grant = authenticate(client, key).await?;
    if let Some(grant) = &grant {
        cache.remember(key, grant, now);
    }
    Ok(grant)
}

async fn authenticate(
    client: &Client,
    key: &ApiKeyHash,
) -> Result<Option<KeyGrant>, ClickHouseError> {
    let rows: Vec<KeyRow> = client
        .rows(&format!(
            "SELECT {KEY_COLUMNS} FROM access_keys FINAL WHERE key_hash = {}",
            string_literal(&hex::encode(key.as_bytes()))
        ))
        .await?;
    rows.into_iter()
        .find(|row| row.revoked_at_ns.is_none())
        .map(|row| {
            Ok(KeyGrant {
                project: Project {
                    id: ProjectId(row.project_id),
                    name: parse_name(&row.project_name)?,
                },
                scopes: row.scopes()?,
            })
        })
        .transpose()
}

/// Notes a use of `key`: one row per recorded use, the latest kept after merges.
pub(crate) async fn record_use(
    client: &Client,
    key: &ApiKeyHash,
    at: Timestamp,
) -> Result<(), ClickHouseError> {
    #[derive(Serialize)]
    struct KeyUse {
        key_hash: String,
        used_ns: i64,
    }
    client
        .insert(
            "key_uses",
            json_lines(&[KeyUse {
                key_hash: hex::encode(key.as_bytes()),
                used_ns: at.unix_nanos(),
            }])?,
        )
        .await
}

pub(crate) async fn create(
    client: &Client,
    project: &ProjectName,
    label: &str,
    scopes: Scopes,
) -> Result<NewApiKey, ClickHouseError> {
    let secret = crate::new_key_secret().map_err(ClickHouseError::Randomness)?;
    let hash = ApiKeyHash::of_secret(&secret);
    let project = create_project(client, project).await?;
    #[derive(Deserialize)]
    struct Next {
        id: i64,
    }
    // Key ids are small counters, as in SQLite, because users type them into `keys revoke`.
    // Two keys created at the same instant on two servers could share an id; key creation
    // is a rare administrative act, and the secret (hash) stays unique regardless.
    let next: Next = client
        .row("SELECT max(id) + 1 AS id FROM access_keys")
        .await?;
    let now = now_ns();
    let row = KeyRow {
        id: next.id.max(1),
        project_id: project.id.0,
        project_name: project.name.as_str().to_owned(),
        key_hash: hex::encode(hash.as_bytes()),
        prefix: secret.chars().take(VISIBLE_PREFIX_LEN).collect(),
        label: label.to_owned(),
        created_at_ns: now,
        revoked_at_ns: None,
        version: version_of(now),
        scopes: scopes.to_string(),
    };
    client
        .insert("access_keys", json_lines(std::slice::from_ref(&row))?)
        .await?;
    Ok(NewApiKey {
        info: row.info(None)?,
        secret,
    })
}

pub(crate) async fn list(client: &Client) -> Result<Vec<ApiKeyInfo>, ClickHouseError> {
    let rows: Vec<KeyRow> = client
        .rows(&format!(
            "SELECT {KEY_COLUMNS} FROM access_keys FINAL ORDER BY id, created_at_ns"
        ))
        .await?;
    #[derive(Deserialize)]
    struct LastUse {
        key_hash: String,
        used_ns: i64,
    }
    let uses: HashMap<String, i64> = client
        .rows::<LastUse>("SELECT key_hash, max(used_ns) AS used_ns FROM key_uses GROUP BY key_hash")
        .await?
        .into_iter()
        .map(|last| (last.key_hash, last.used_ns))
        .collect();
    rows.iter()
        .map(|row| row.info(uses.get(&row.key_hash).copied()))
        .collect()
}

pub(crate) async fn revoke(
    client: &Client,
    id: i64,
) -> Result<Option<ApiKeyInfo>, ClickHouseError> {
    let rows: Vec<KeyRow> = client
        .rows(&format!(
            "SELECT {KEY_COLUMNS} FROM access_keys FINAL WHERE id = {id}"
        ))
        .await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let now = now_ns();
    let revoked: Vec<KeyRow> = rows
        .iter()
        .filter(|row| row.revoked_at_ns.is_none())
        .map(|row| KeyRow {
            revoked_at_ns: Some(now),
            version: version_of(now).max(row.version + 1),
            ..row.clone()
        })
        .collect();
    if revoked.is_empty() {
        return first.info(None).map(Some);
    }
    client.insert("access_keys", json_lines(&revoked)?).await?;
    revoked.first().map(|row| row.info(None)).transpose()
}

#[cfg(test)]
mod cache_tests {
    use super::*;

    fn project(name: &str) -> KeyGrant {
        KeyGrant {
            project: Project {
                id: ProjectId(7),
                name: name.parse().unwrap(),
            },
            scopes: Scopes::ADMIN,
        }
    }

    #[test]
    fn a_valid_key_is_trusted_for_the_ttl_only() {
        let cache = KeyCache::default();
        let key = ApiKeyHash::of_secret("th_secret");
        let start = Instant::now();
        assert_eq!(cache.lookup(&key, start), None);
        cache.remember(&key, &project("shop"), start);
        assert_eq!(
            cache.lookup(&key, start + Duration::from_secs(9)),
            Some(project("shop"))
        );
        assert_eq!(cache.lookup(&key, start + KEY_CACHE_TTL), None);
        assert_eq!(
            cache.lookup(&ApiKeyHash::of_secret("th_other"), start),
            None
        );
    }

    #[test]
    fn clearing_forgets_every_key() {
        let cache = KeyCache::default();
        let key = ApiKeyHash::of_secret("th_secret");
        let now = Instant::now();
        cache.remember(&key, &project("shop"), now);
        cache.clear();
        assert_eq!(cache.lookup(&key, now), None);
    }
}
