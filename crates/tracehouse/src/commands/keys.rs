//! `tracehouse keys`: create, list, revoke and rotate API keys.

use std::process::ExitCode;

use anyhow::{Context, bail};
use tracehouse_core::{ProjectName, Scopes};

use super::open_store;
use crate::cli::KeysCommand;
use crate::config::StoreConfig;

pub(super) async fn run(command: KeysCommand) -> anyhow::Result<ExitCode> {
    match command {
        KeysCommand::Create {
            project,
            label,
            scopes,
            store,
        } => {
            let project: ProjectName = project.parse().context("invalid --project")?;
            let scopes: Scopes = scopes.join(",").parse().context("invalid --scope")?;
            let store = open_store(&StoreConfig::from_args(&store)?).await?;
            let key = store
                .create_key(&project, &label, scopes)
                .await
                .context("cannot create key")?;
            println!(
                "created key {} ({scopes}) for project {:?}; it is shown only now, store it safely:",
                key.info.id,
                project.as_str()
            );
            println!("{}", key.secret);
        }
        KeysCommand::List { store } => {
            let store = open_store(&StoreConfig::from_args(&store)?).await?;
            let keys = store.list_keys().await.context("cannot list keys")?;
            if keys.is_empty() {
                println!("no keys yet: create one with `tracehouse keys create --project NAME`");
            } else {
                println!(
                    "{:<6} {:<20} {:<18} {:<12} {:<24} {:<30} {:<30} REVOKED",
                    "ID", "PROJECT", "SCOPE", "PREFIX", "LABEL", "CREATED", "LAST USED"
                );
                for key in keys {
                    println!(
                        "{:<6} {:<20} {:<18} {:<12} {:<24} {:<30} {:<30} {}",
                        key.id,
                        key.project.as_str(),
                        key.scopes.to_string(),
                        format!("{}…", key.prefix),
                        key.label,
                        key.created_at,
                        key.last_used_at.as_deref().unwrap_or("never"),
                        key.revoked_at.as_deref().unwrap_or("-")
                    );
                }
            }
        }
        KeysCommand::Revoke { id, store } => {
            let store = open_store(&StoreConfig::from_args(&store)?).await?;
            let key = store
                .revoke_key(id)
                .await
                .with_context(|| format!("cannot revoke key {id}"))?;
            println!(
                "revoked key {} ({}…) of project {:?}",
                key.id,
                key.prefix,
                key.project.as_str()
            );
        }
        KeysCommand::Rotate { id, store } => {
            let store = open_store(&StoreConfig::from_args(&store)?).await?;
            let keys = store.list_keys().await.context("cannot list keys")?;
            let Some(old) = keys.into_iter().find(|key| key.id == id) else {
                bail!("no key with id {id}: `tracehouse keys list` shows the ids");
            };
            if old.revoked_at.is_some() {
                bail!(
                    "key {id} is already revoked: create a new one with `tracehouse keys create --project {}`",
                    old.project.as_str()
                );
            }
            // The new key exists before the old one stops, so a client can switch without a gap.
            let new = store
                .create_key(&old.project, &old.label, old.scopes)
                .await
                .context("cannot create the replacement key")?;
            store.revoke_key(id).await.with_context(|| {
                format!("created key {} but cannot revoke key {id}", new.info.id)
            })?;
            println!(
                "revoked key {id} ({}…) and created key {} ({}) for project {:?}; it is shown only now, store it safely:",
                old.prefix,
                new.info.id,
                old.scopes,
                old.project.as_str()
            );
            println!("{}", new.secret);
        }
    }
    Ok(ExitCode::SUCCESS)
}
