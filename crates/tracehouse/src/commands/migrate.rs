//! `tracehouse migrate`: copy every project's spans from one store to another (SQLite into
//! ClickHouse and back), streaming in bounded batches, then verify counts and per-trace
//! aggregates on both sides.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tracehouse_core::query::{Direction, Page, Sort, SpanFilter, TraceColumn, TraceQuery};
use tracehouse_core::{Project, ProjectName, SpanStore, StoreError, TraceSummary};

use super::open_store;
use crate::cli::MigrateArgs;
use crate::config::StoreConfig;

/// Attempts per batch when the target is briefly unavailable (ClickHouse restarting, a full
/// write queue); each waits twice as long as the one before, from 200 ms.
const WRITE_ATTEMPTS: u32 = 6;

/// Traces compared per page during verification.
const VERIFY_PAGE: u64 = 1000;

pub(super) async fn run(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let from = StoreConfig::from_location(&args.from, &args.clickhouse)?;
    let to = StoreConfig::from_location(&args.to, &args.clickhouse)?;
    if from.display_name() == to.display_name() {
        bail!("--from and --to are the same store");
    }
    // Opening a SQLite store creates it; a migration from nothing is a typo to report.
    if let StoreConfig::Sqlite(sqlite) = &from {
        if !sqlite.path.exists() {
            bail!("no tracehouse store at {}", sqlite.path.display());
        }
    }
    let source = open_store(&from).await?;
    let target = open_store(&to).await?;

    let projects = if args.project.is_empty() {
        source
            .list_projects()
            .await
            .context("cannot list the source's projects")?
    } else {
        let mut projects = Vec::new();
        for raw in &args.project {
            let name: ProjectName = raw.parse().context("invalid --project")?;
            projects.push(
                source
                    .find_project(&name)
                    .await
                    .context("cannot read projects")?
                    .with_context(|| format!("project {name:?} does not exist in the source"))?,
            );
        }
        projects
    };

    let mut total = 0u64;
    for project in &projects {
        total += source
            .project_stats(project.id)
            .await
            .context("cannot count the source's spans")?
            .spans;
    }
    let visible = !args.quiet && std::io::stderr().is_terminal();
    let bar = progress_bar(visible, total);
    let batch_size = usize::try_from(args.batch_size).unwrap_or(5000);
    let mut copied = 0u64;
    let mut pairs = Vec::with_capacity(projects.len());
    for project in &projects {
        let destination = target
            .create_project(&project.name)
            .await
            .context("cannot create the project in the target")?;
        copied += copy_project(
            source.as_ref(),
            target.as_ref(),
            project,
            &destination,
            batch_size,
            &bar,
        )
        .await?;
        pairs.push((project.clone(), destination));
    }
    bar.finish_and_clear();

    let mut traces = 0u64;
    for (project, destination) in &pairs {
        traces += verify(source.as_ref(), target.as_ref(), project, destination).await?;
    }
    if !args.quiet {
        eprintln!(
            "migrated {copied} spans in {traces} traces of {} project(s) from {} to {} in {:.1}s; \
             verified: span and trace counts and every trace's aggregates match",
            pairs.len(),
            from.display_name(),
            to.display_name(),
            started.elapsed().as_secs_f64()
        );
        eprintln!(
            "note: API keys are not copied (only their hashes exist); create keys on the target with `tracehouse keys create`"
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn progress_bar(visible: bool, total: u64) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] [{wide_bar}] {pos}/{len} spans ({per_sec}, ETA {eta}) {msg}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Streams one project's spans in (trace id, span id) order, one bounded batch in memory at a
/// time; returns how many were copied.
async fn copy_project(
    source: &dyn SpanStore,
    target: &dyn SpanStore,
    project: &Project,
    destination: &Project,
    batch_size: usize,
    bar: &ProgressBar,
) -> anyhow::Result<u64> {
    bar.set_message(format!("project {}", project.name));
    let filter = SpanFilter::default();
    let mut after = None;
    let mut copied = 0u64;
    loop {
        let batch = source
            .scan_spans(project.id, &filter, after.clone(), batch_size)
            .await
            .context("cannot read spans from the source")?;
        let Some(last) = batch.last() else {
            return Ok(copied);
        };
        after = Some((last.trace_id.clone(), last.span_id.clone()));
        let count = batch.len() as u64;
        write_with_retry(target, destination, batch).await?;
        copied += count;
        bar.inc(count);
    }
}

async fn write_with_retry(
    target: &dyn SpanStore,
    destination: &Project,
    batch: Vec<tracehouse_core::Span>,
) -> anyhow::Result<()> {
    let mut wait = Duration::from_millis(200);
    for attempt in 1..=WRITE_ATTEMPTS {
        // A copy per attempt: the store takes the batch by value and a retry needs it again.
        match target.write_spans(destination.id, batch.clone()).await {
            Ok(_) => return Ok(()),
            Err(StoreError::Unavailable { reason }) if attempt < WRITE_ATTEMPTS => {
                tracing::warn!(reason = %reason, attempt, "target unavailable; retrying the batch");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            Err(error) => return Err(error).context("cannot write spans to the target"),
        }
    }
    bail!("target stayed unavailable")
}

/// Compares span and trace counts, then every trace's aggregates in trace-id order; returns
/// the number of traces.
async fn verify(
    source: &dyn SpanStore,
    target: &dyn SpanStore,
    project: &Project,
    destination: &Project,
) -> anyhow::Result<u64> {
    let (before, after) = (
        source.project_stats(project.id).await?,
        target.project_stats(destination.id).await?,
    );
    if before != after {
        bail!(
            "project {}: the source holds {} traces and {} spans, the target {} and {} (was the target empty?)",
            project.name,
            before.traces,
            before.spans,
            after.traces,
            after.spans
        );
    }
    let mut query = TraceQuery {
        sort: Sort {
            column: TraceColumn::TraceId,
            direction: Direction::Ascending,
        },
        ..TraceQuery::default()
    };
    let mut number = 1;
    loop {
        query.page = Page {
            number,
            size: VERIFY_PAGE,
        };
        let (left, right) = (
            source.list_traces(project.id, &query).await?,
            target.list_traces(destination.id, &query).await?,
        );
        if left.items.len() != right.items.len() {
            bail!("project {}: trace lists differ in length", project.name);
        }
        for (a, b) in left.items.iter().zip(&right.items) {
            if !same_aggregates(&a.summary, &b.summary) {
                bail!(
                    "project {}: trace {} has different aggregates in the target:\n  source {:?}\n  target {:?}",
                    project.name,
                    a.summary.trace_id,
                    a.summary,
                    b.summary
                );
            }
        }
        if (left.items.len() as u64) < VERIFY_PAGE {
            return Ok(before.traces);
        }
        number += 1;
    }
}

/// Equal aggregates; sums of floats may differ in the last bits when the stores hand
/// `summarize` the spans in another order, so those compare with a relative tolerance.
fn same_aggregates(a: &TraceSummary, b: &TraceSummary) -> bool {
    let close = |x: f64, y: f64| (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0);
    close(a.total_cost, b.total_cost)
        && close(a.duration, b.duration)
        && TraceSummary {
            total_cost: 0.0,
            duration: 0.0,
            ..a.clone()
        } == TraceSummary {
            total_cost: 0.0,
            duration: 0.0,
            ..b.clone()
        }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracehouse_core::{Timestamp, TraceId};

    #[test]
    fn aggregates_compare_floats_with_tolerance_and_the_rest_exactly() {
        let summary = TraceSummary {
            trace_id: TraceId::try_from("t").unwrap(),
            root_span_id: None,
            name: "n".to_owned(),
            start: Timestamp::from_unix_nanos(0),
            end: Timestamp::from_unix_nanos(1),
            duration: 1e-9,
            span_count: 2,
            llm_call_count: 0,
            error_count: 0,
            running_count: 0,
            total_prompt_tokens: 0,
            total_completion_tokens: 0,
            total_tokens: 0,
            total_cost: 0.1 + 0.2,
            environment: None,
            customer_identifier: None,
            session_identifier: None,
            thread_identifier: None,
            trace_group_identifier: None,
            models: vec![],
        };
        let reordered = TraceSummary {
            total_cost: 0.2 + 0.1,
            ..summary.clone()
        };
        assert!(same_aggregates(&summary, &reordered));
        let other = TraceSummary {
            span_count: 3,
            ..summary.clone()
        };
        assert!(!same_aggregates(&summary, &other));
    }
}
