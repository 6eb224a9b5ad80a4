//! Retention: which projects lose what, the sweep that removes it in bounded steps, the
//! `serve` background task that runs a sweep every interval, and `tracehouse retention run`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tracehouse_core::{Cutoffs, Project, Retention, RetentionStep, SpanStore, Timestamp};

use super::{now_ns, open_store};
use crate::cli::RetentionRunArgs;
use crate::config::{RetentionPolicy, StoreConfig};

/// Pause between two steps of a background sweep, so the writer's queue drains between them
/// and ingest keeps its pace while a large backlog is removed.
const STEP_PAUSE: Duration = Duration::from_millis(100);

/// Each project's effective retention, for projects that remove anything. The store's
/// `projects set` values win over the command line's and config file's, which win over the
/// server's. A project whose values do not hold together is skipped with a warning.
pub(crate) async fn plan(
    store: &dyn SpanStore,
    policy: &RetentionPolicy,
) -> anyhow::Result<Vec<(Project, Retention)>> {
    let projects = store
        .project_retention()
        .await
        .context("cannot read the projects' retention")?;
    let mut plan = Vec::new();
    for (project, stored) in projects {
        let configured = policy
            .projects
            .get(&project.name)
            .copied()
            .unwrap_or_default();
        match policy.server.overridden_by(configured.or(stored)) {
            Ok(retention) if !retention.is_forever() => plan.push((project, retention)),
            Ok(_) => {}
            Err(error) => tracing::warn!(
                project = project.name.as_str(),
                error = %error,
                "retention of this project skipped"
            ),
        }
    }
    Ok(plan)
}

/// Removes everything below one project's cutoffs, step by step, pausing `pause` between steps.
pub(crate) async fn sweep_project(
    store: &dyn SpanStore,
    project: &Project,
    cutoffs: Cutoffs,
    now: Timestamp,
    batch: usize,
    pause: Duration,
) -> anyhow::Result<RetentionStep> {
    let mut total = RetentionStep::default();
    loop {
        let step = store
            .apply_retention(&[(project.id, cutoffs)], now, batch)
            .await
            .with_context(|| format!("retention of project {:?} failed", project.name.as_str()))?;
        total.merge(RetentionStep { done: true, ..step });
        if step.done {
            total.done = true;
            return Ok(total);
        }
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
}

/// Runs a sweep over every project now, then every `interval`, until `stop` turns true.
pub(crate) async fn run_in_background(
    store: Arc<dyn SpanStore>,
    policy: RetentionPolicy,
    interval: Duration,
    batch: usize,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let started = Instant::now();
        let now = Timestamp::from_unix_nanos(now_ns());
        let swept = async {
            for (project, retention) in plan(store.as_ref(), &policy).await? {
                let step = sweep_project(
                    store.as_ref(),
                    &project,
                    retention.cutoffs(now),
                    now,
                    batch,
                    STEP_PAUSE,
                )
                .await?;
                if step
                    != (RetentionStep {
                        done: true,
                        ..RetentionStep::default()
                    })
                {
                    tracing::info!(
                        project = project.name.as_str(),
                        traces_removed = step.traces_removed,
                        spans_removed = step.spans_removed,
                        spans_content_expired = step.spans_content_expired,
                        days_dropped = step.days_dropped,
                        seconds = started.elapsed().as_secs_f64(),
                        "retention sweep"
                    );
                }
            }
            anyhow::Ok(())
        };
        let swept = tokio::select! {
            swept = swept => swept,
            _ = stop.wait_for(|stop| *stop) => return,
        };
        if let Err(error) = swept {
            tracing::warn!(error = %format!("{error:#}"), "retention sweep stopped; retrying at the next interval");
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
    }
}

/// `tracehouse retention run`.
pub(super) async fn run(args: RetentionRunArgs) -> anyhow::Result<ExitCode> {
    let policy = RetentionPolicy::from_args(&args.retention)?;
    let store = open_store(&StoreConfig::from_args(&args.store)?).await?;
    let now = Timestamp::from_unix_nanos(now_ns());
    let plan = plan(store.as_ref(), &policy).await?;
    if plan.is_empty() {
        println!("no project has a retention: nothing to remove (see --retention-days)");
        return Ok(ExitCode::SUCCESS);
    }
    let mut total = RetentionStep::default();
    for (project, retention) in plan {
        let step = sweep_project(
            store.as_ref(),
            &project,
            retention.cutoffs(now),
            now,
            args.batch as usize,
            Duration::ZERO,
        )
        .await?;
        println!(
            "project {:?} (retention {}, content {}): removed {} traces ({} spans), expired the content of {} spans{}",
            project.name.as_str(),
            days(retention.days),
            days(retention.content_days),
            step.traces_removed,
            step.spans_removed,
            step.spans_content_expired,
            if step.days_dropped > 0 {
                format!(", dropped {} whole days", step.days_dropped)
            } else {
                String::new()
            }
        );
        total.merge(step);
    }
    println!(
        "removed {} traces ({} spans), expired the content of {} spans",
        total.traces_removed, total.spans_removed, total.spans_content_expired
    );
    Ok(ExitCode::SUCCESS)
}

/// A retention in days as `projects list` and `retention run` print it.
pub(crate) fn days(days: u32) -> String {
    if days == 0 {
        "forever".to_owned()
    } else {
        format!("{days} days")
    }
}
