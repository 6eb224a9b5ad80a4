//! `tracehouse projects`: list projects and set a project's own retention.

use std::process::ExitCode;

use anyhow::Context;
use tracehouse_core::{ProjectName, Retention, RetentionOverride};

use super::open_store;
use super::retention::days;
use crate::cli::ProjectsCommand;
use crate::config::StoreConfig;

pub(super) async fn run(command: ProjectsCommand) -> anyhow::Result<ExitCode> {
    match command {
        ProjectsCommand::List { store } => {
            let store = open_store(&StoreConfig::from_args(&store)?).await?;
            let projects = store
                .project_retention()
                .await
                .context("cannot list projects")?;
            if projects.is_empty() {
                println!("no projects yet: `tracehouse keys create --project NAME` makes one");
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<24} {:>10} {:>10} {:<14} CONTENT RETENTION",
                "PROJECT", "TRACES", "SPANS", "RETENTION"
            );
            for (project, own) in projects {
                let stats = store
                    .project_stats(project.id)
                    .await
                    .context("cannot count a project's data")?;
                let shown = |value: Option<u32>| value.map_or_else(|| "-".to_owned(), days);
                println!(
                    "{:<24} {:>10} {:>10} {:<14} {}",
                    project.name.as_str(),
                    stats.traces,
                    stats.spans,
                    shown(own.days),
                    shown(own.content_days)
                );
            }
        }
        ProjectsCommand::Set {
            name,
            retention_days,
            content_retention_days,
            store,
        } => {
            let name: ProjectName = name.parse().context("invalid project name")?;
            if retention_days.is_none() && content_retention_days.is_none() {
                anyhow::bail!(
                    "nothing to set: give --retention-days and/or --content-retention-days"
                );
            }
            if let (Some(days), Some(content_days)) = (retention_days, content_retention_days) {
                Retention::new(days, content_days).context("invalid --content-retention-days")?;
            }
            let store = open_store(&StoreConfig::from_args(&store)?).await?;
            let (project, stored) = store
                .set_project_retention(
                    &name,
                    RetentionOverride {
                        days: retention_days,
                        content_days: content_retention_days,
                    },
                )
                .await
                .context("cannot set the project's retention")?;
            let shown = |value: Option<u32>| value.map_or_else(|| "the server's".to_owned(), days);
            println!(
                "project {:?}: retention {}, content retention {}",
                project.name.as_str(),
                shown(stored.days),
                shown(stored.content_days)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
