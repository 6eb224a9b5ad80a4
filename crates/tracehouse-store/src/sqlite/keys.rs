//! API keys and projects: keys are stored only as hashes and resolve to a project.

use rusqlite::{Connection, OptionalExtension, Row, params};
use tracehouse_core::{
    ApiKeyHash, ApiKeyInfo, CustomerProfile, KeyGrant, Project, ProjectId, ProjectName,
    RetentionOverride, Scopes, Timestamp,
};

use super::SqliteError;
use crate::now_ns;

const INFO_SELECT: &str = "SELECT k.id, p.name, k.label, k.prefix, k.created_at_ns, k.revoked_at_ns, \
     k.scopes, k.last_used_ns FROM api_keys k JOIN projects p ON p.id = k.project_id";

/// Characters of the secret kept in clear to recognise a key in listings.
const VISIBLE_PREFIX_LEN: usize = 10;

/// A change to projects or keys, made by the writer thread like every other write, so it never
/// waits on (or holds) the database's write lock from a reader connection.
pub(crate) enum KeyChange {
    CreateProject(ProjectName),
    CreateKey {
        project: ProjectName,
        label: String,
        secret: String,
        scopes: Scopes,
    },
    Revoke(i64),
    RecordUse {
        key: ApiKeyHash,
        at: Timestamp,
    },
    SetRetention(ProjectName, RetentionOverride),
    /// Not a key, but like keys a small change of a project's own records.
    CustomerProfile {
        project: ProjectId,
        profile: CustomerProfile,
    },
}

/// What a [`KeyChange`] answers.
pub(crate) enum KeyAnswer {
    Project(Project),
    Key(ApiKeyInfo),
    Revoked(Option<ApiKeyInfo>),
    Recorded,
    Retention(Project, RetentionOverride),
}

impl KeyChange {
    /// Makes the change inside the writer's transaction.
    pub(crate) fn apply(&self, connection: &Connection) -> Result<KeyAnswer, SqliteError> {
        Ok(match self {
            KeyChange::CreateProject(name) => KeyAnswer::Project(create_project(connection, name)?),
            KeyChange::CreateKey {
                project,
                label,
                secret,
                scopes,
            } => KeyAnswer::Key(create(connection, project, label, secret, *scopes)?),
            KeyChange::Revoke(id) => KeyAnswer::Revoked(revoke(connection, *id)?),
            KeyChange::RecordUse { key, at } => {
                connection
                    .prepare_cached("UPDATE api_keys SET last_used_ns = ?2 WHERE key_hash = ?1")?
                    .execute(params![key.as_bytes().as_slice(), at.unix_nanos()])?;
                KeyAnswer::Recorded
            }
            KeyChange::SetRetention(name, retention) => {
                let project = create_project(connection, name)?;
                connection
                    .prepare_cached(
                        "UPDATE projects SET retention_days = coalesce(?2, retention_days), \
                         content_retention_days = coalesce(?3, content_retention_days) WHERE id = ?1",
                    )?
                    .execute(params![project.id.0, retention.days, retention.content_days])?;
                let stored = project_retention(connection)?
                    .into_iter()
                    .find(|(listed, _)| listed.id == project.id)
                    .map_or_else(RetentionOverride::default, |(_, stored)| stored);
                KeyAnswer::Retention(project, stored)
            }
            KeyChange::CustomerProfile { project, profile } => {
                super::groups::put_customer_profile(connection, *project, profile)?;
                KeyAnswer::Recorded
            }
        })
    }
}

pub(super) fn authenticate(
    connection: &Connection,
    key: &ApiKeyHash,
) -> Result<Option<KeyGrant>, SqliteError> {
    let found = connection
        .prepare_cached(
            "SELECT p.id, p.name, k.scopes FROM api_keys k JOIN projects p ON p.id = k.project_id \
             WHERE k.key_hash = ?1 AND k.revoked_at_ns IS NULL",
        )?
        .query_row(params![key.as_bytes().as_slice()], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
            ))
        })
        .optional()?;
    found
        .map(|(id, name, scopes)| {
            let name = name
                .parse::<ProjectName>()
                .map_err(|e| SqliteError::Corrupt(format!("stored project name: {e}")))?;
            Ok(KeyGrant {
                project: Project {
                    id: ProjectId(id),
                    name,
                },
                scopes: parse_scopes(&scopes)?,
            })
        })
        .transpose()
}

fn parse_scopes(stored: &str) -> Result<Scopes, SqliteError> {
    stored
        .parse()
        .map_err(|e| SqliteError::Corrupt(format!("stored key scopes: {e}")))
}

pub(super) fn find_project(
    connection: &Connection,
    name: &ProjectName,
) -> Result<Option<Project>, SqliteError> {
    let id = connection
        .prepare_cached("SELECT id FROM projects WHERE name = ?1")?
        .query_row(params![name.as_str()], |row| row.get::<_, i64>(0))
        .optional()?;
    Ok(id.map(|id| Project {
        id: ProjectId(id),
        name: name.clone(),
    }))
}

pub(super) fn list_projects(connection: &Connection) -> Result<Vec<Project>, SqliteError> {
    Ok(project_retention(connection)?
        .into_iter()
        .map(|(project, _)| project)
        .collect())
}

/// Every project with its own retention, ordered by name.
pub(super) fn project_retention(
    connection: &Connection,
) -> Result<Vec<(Project, RetentionOverride)>, SqliteError> {
    let mut statement = connection.prepare_cached(
        "SELECT id, name, retention_days, content_retention_days FROM projects ORDER BY name",
    )?;
    let mut rows = statement.query([])?;
    let mut projects = Vec::new();
    while let Some(row) = rows.next()? {
        let name: String = row.get(1)?;
        projects.push((
            Project {
                id: ProjectId(row.get(0)?),
                name: name
                    .parse()
                    .map_err(|e| SqliteError::Corrupt(format!("stored project name: {e}")))?,
            },
            RetentionOverride {
                days: row.get(2)?,
                content_days: row.get(3)?,
            },
        ));
    }
    Ok(projects)
}

pub(super) fn create_project(
    connection: &Connection,
    name: &ProjectName,
) -> Result<Project, SqliteError> {
    connection.execute(
        "INSERT INTO projects (name, created_at_ns) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
        params![name.as_str(), now_ns()],
    )?;
    find_project(connection, name)?
        .ok_or_else(|| SqliteError::Corrupt(format!("project {name} vanished after insert")))
}

fn info_from_row(row: &Row<'_>) -> Result<ApiKeyInfo, SqliteError> {
    let project: String = row.get(1)?;
    Ok(ApiKeyInfo {
        id: row.get(0)?,
        project: project
            .parse()
            .map_err(|e| SqliteError::Corrupt(format!("stored project name: {e}")))?,
        label: row.get(2)?,
        prefix: row.get(3)?,
        created_at: Timestamp::from_unix_nanos(row.get(4)?).to_rfc3339(),
        revoked_at: row
            .get::<_, Option<i64>>(5)?
            .map(|ns| Timestamp::from_unix_nanos(ns).to_rfc3339()),
        scopes: parse_scopes(&row.get::<_, String>(6)?)?,
        last_used_at: row
            .get::<_, Option<i64>>(7)?
            .map(|ns| Timestamp::from_unix_nanos(ns).to_rfc3339()),
    })
}

fn info_by_id(connection: &Connection, id: i64) -> Result<Option<ApiKeyInfo>, SqliteError> {
    let mut statement = connection.prepare_cached(&format!("{INFO_SELECT} WHERE k.id = ?1"))?;
    let mut rows = statement.query(params![id])?;
    rows.next()?.map(info_from_row).transpose()
}

/// A new key's secret, from the operating system's randomness: made before the key's row is
/// written, so the writer thread never waits for entropy.
pub(super) fn new_secret() -> Result<String, SqliteError> {
    crate::new_key_secret().map_err(SqliteError::Randomness)
}

/// Stores a key with `secret` for `project` (created if missing). Runs inside the writer's
/// transaction, so the project and the key are committed together.
pub(super) fn create(
    connection: &Connection,
    project: &ProjectName,
    label: &str,
    secret: &str,
    scopes: Scopes,
) -> Result<ApiKeyInfo, SqliteError> {
    let hash = ApiKeyHash::of_secret(secret);
    let now = now_ns();
    let project = create_project(connection, project)?;
    connection.execute(
        "INSERT INTO api_keys (project_id, key_hash, prefix, label, created_at_ns, scopes) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            project.id.0,
            hash.as_bytes().as_slice(),
            secret.get(..VISIBLE_PREFIX_LEN).unwrap_or(secret),
            label,
            now,
            scopes.to_string()
        ],
    )?;
    let id = connection.last_insert_rowid();
    info_by_id(connection, id)?
        .ok_or_else(|| SqliteError::Corrupt(format!("api key {id} vanished after insert")))
}

pub(super) fn list(connection: &Connection) -> Result<Vec<ApiKeyInfo>, SqliteError> {
    let mut statement = connection.prepare_cached(&format!("{INFO_SELECT} ORDER BY k.id"))?;
    let mut rows = statement.query([])?;
    let mut keys = Vec::new();
    while let Some(row) = rows.next()? {
        keys.push(info_from_row(row)?);
    }
    Ok(keys)
}

pub(super) fn revoke(connection: &Connection, id: i64) -> Result<Option<ApiKeyInfo>, SqliteError> {
    connection.execute(
        "UPDATE api_keys SET revoked_at_ns = ?2 WHERE id = ?1 AND revoked_at_ns IS NULL",
        params![id, now_ns()],
    )?;
    info_by_id(connection, id)
}
