//! `tracehouse import`: bulk loading of span logs and OTLP JSON, into the local store or a
//! running server.
//!
//! Three stages connected by bounded channels, so memory stays flat whatever the input size:
//! - one reader thread opens the inputs in order (decompressing gzip/zstd), detects formats
//!   and cuts the stream into batches of raw items ([`reader`], [`scan`]);
//! - decoding threads validate each batch with the ingest decoders, the server's own
//!   validation ([`decode`]);
//! - the committer, on the async runtime, takes batches in reading order and writes them with
//!   `SpanStore::write_spans` (one transaction per batch, answered after the commit) or POSTs
//!   them to the server, several at once ([`http`]); after each commit it appends the batch's
//!   rejects and moves the checkpoint ([`checkpoint`]).
//!
//! A dry run replaces the committer with the analysis of [`report`].

mod checkpoint;
mod csv_rows;
mod decode;
mod http;
mod inputs;
mod parquet;
mod reader;
mod report;
mod scan;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, IsTerminal, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::task::JoinSet;
use tracehouse_core::{PriceTable, ProjectId, ProjectName, SpanStore, Timestamp};
use tracehouse_ingest::redact::RuleSet;

use self::checkpoint::{Checkpoint, Position};
use self::decode::{DecodedBatch, Decoder, Payload, RawBatch, Reject, Target};
use self::http::{HttpTarget, IngestAnswer};
use self::inputs::Source;
use self::reader::Reader;
use self::report::Analysis;
use super::open_store;
use crate::cli::{ImportArgs, ImportFormat, ImportSource};
use crate::config::StoreConfig;

/// Exit status of an import that completed but rejected some items.
const EXIT_REJECTED: u8 = 2;
/// Exit status of an import stopped by Ctrl-C (128 + SIGINT, as shells report it).
const EXIT_INTERRUPTED: u8 = 130;

/// Batches received out of order are put back in reading order.
struct Ordered {
    receiver: tokio::sync::mpsc::Receiver<DecodedBatch>,
    waiting: BTreeMap<u64, DecodedBatch>,
    next: u64,
}

impl Ordered {
    /// The next batch in reading order, `None` after the last. Cancel-safe: a batch received
    /// is kept in `waiting` before any further await.
    async fn next(&mut self) -> Option<DecodedBatch> {
        loop {
            if let Some(batch) = self.waiting.remove(&self.next) {
                self.next += 1;
                return Some(batch);
            }
            let batch = self.receiver.recv().await?;
            self.waiting.insert(batch.seq, batch);
        }
    }
}

/// Starts the reader and decoding threads; batches come out decoded, in reading order.
fn start_pipeline(
    reader: Reader,
    workers: usize,
    target: Target,
    received_at: Timestamp,
    redaction: Option<Arc<RuleSet>>,
    from: ImportSource,
) -> anyhow::Result<Ordered> {
    // Two batches waiting per stage is enough to keep every stage busy.
    let (raw_sender, raw_receiver) = std::sync::mpsc::sync_channel::<RawBatch>(workers);
    let (decoded_sender, decoded_receiver) = tokio::sync::mpsc::channel(workers + 1);
    let names: Arc<Vec<String>> = Arc::new(reader.sources.iter().map(Source::display).collect());
    std::thread::Builder::new()
        .name("import-reader".to_owned())
        .spawn(move || reader.run(|batch| raw_sender.send(batch).is_ok()))
        .context("cannot start the reader thread")?;
    let raw_receiver = Arc::new(Mutex::new(raw_receiver));
    for worker in 0..workers {
        let decoder = Decoder {
            target,
            received_at,
            prices: PriceTable::builtin(),
            names: Arc::clone(&names),
            redaction: redaction.clone(),
            from,
        };
        let (receiver, sender) = (Arc::clone(&raw_receiver), decoded_sender.clone());
        std::thread::Builder::new()
            .name(format!("import-decoder-{worker}"))
            .spawn(move || {
                loop {
                    let next = match receiver.lock() {
                        Ok(receiver) => receiver.recv(),
                        Err(_) => return,
                    };
                    let Ok(batch) = next else { return };
                    if sender.blocking_send(decoder.decode(batch)).is_err() {
                        return;
                    }
                }
            })
            .context("cannot start a decoding thread")?;
    }
    Ok(Ordered {
        receiver: decoded_receiver,
        waiting: BTreeMap::new(),
        next: 0,
    })
}

/// The progress bar: input bytes read (compressed size) against the inputs' total size, and
/// spans committed with their rate.
struct Progress {
    bar: ProgressBar,
    bytes_read: Arc<AtomicU64>,
    started: Instant,
}

impl Progress {
    fn new(visible: bool, total: Option<u64>, bytes_read: Arc<AtomicU64>) -> Self {
        let bar = if !visible {
            ProgressBar::hidden()
        } else {
            let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
            let template = match total {
                Some(_) => {
                    "{spinner} [{elapsed_precise}] [{wide_bar}] {bytes}/{total_bytes} ({bytes_per_sec}, ETA {eta}) {msg}"
                }
                None => "{spinner} [{elapsed_precise}] {bytes} ({bytes_per_sec}) {msg}",
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        };
        Self {
            bar,
            bytes_read,
            started: Instant::now(),
        }
    }

    fn update(&self, spans: u64, rejected: u64) {
        self.bar
            .set_position(self.bytes_read.load(Ordering::Relaxed));
        let rate = spans as f64 / self.started.elapsed().as_secs_f64().max(1e-3);
        self.bar
            .set_message(format!("{spans} spans ({rate:.0}/s), {rejected} rejected"));
    }

    fn note(&self, message: &str) {
        self.bar.suspend(|| eprintln!("{message}"));
    }
}

/// The rejects file, appended after each commit and cut back on resume.
struct RejectsFile {
    path: PathBuf,
    writer: BufWriter<File>,
    len: u64,
}

impl RejectsFile {
    fn open(path: &Path, len: u64) -> anyhow::Result<Self> {
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(path)
            .with_context(|| format!("cannot open rejects file {}", path.display()))?;
        // Rejects past the checkpoint belong to batches that will be read again.
        file.set_len(len)
            .and_then(|()| file.seek(SeekFrom::Start(len)))
            .with_context(|| format!("cannot prepare rejects file {}", path.display()))?;
        Ok(Self {
            path: path.to_path_buf(),
            writer: BufWriter::new(file),
            len,
        })
    }

    fn append(&mut self, reject: &Reject) -> anyhow::Result<()> {
        let mut line = serde_json::to_vec(reject).context("cannot encode a reject")?;
        line.push(b'\n');
        self.writer
            .write_all(&line)
            .with_context(|| format!("cannot write rejects file {}", self.path.display()))?;
        self.len += line.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<u64> {
        self.writer
            .flush()
            .with_context(|| format!("cannot write rejects file {}", self.path.display()))?;
        Ok(self.len)
    }
}

/// Totals of this run (the checkpoint holds those of every run of the command).
#[derive(Debug, Default)]
struct RunTotals {
    imported: u64,
    rejected: u64,
    items: u64,
    bytes: u64,
    first_reject: Option<String>,
    /// Scores listed apart from their spans, added to stored spans.
    scores: u64,
}

/// Everything the committing loops share.
struct Committer {
    state: Checkpoint,
    checkpoint_path: Option<PathBuf>,
    rejects: Option<RejectsFile>,
    run: RunTotals,
    progress: Progress,
}

impl Committer {
    /// Records a batch the target has committed: its rejects, totals, and the checkpoint.
    fn record(
        &mut self,
        items: u64,
        bytes: u64,
        imported: u64,
        rejects: &[Reject],
    ) -> anyhow::Result<()> {
        for reject in rejects {
            if let Some(file) = &mut self.rejects {
                file.append(reject)?;
            }
            if self.run.first_reject.is_none() {
                self.run.first_reject = Some(describe_reject(reject));
            }
        }
        self.run.imported += imported;
        self.run.rejected += rejects.len() as u64;
        self.run.items += items;
        self.run.bytes += bytes;
        self.state.imported += imported;
        self.state.rejected += rejects.len() as u64;
        self.state.items += items;
        self.state.bytes += bytes;
        self.progress.update(self.run.imported, self.state.rejected);
        Ok(())
    }

    fn save(&mut self) -> anyhow::Result<()> {
        if let Some(rejects) = &mut self.rejects {
            self.state.rejects_len = rejects.flush()?;
        }
        if let Some(path) = &self.checkpoint_path {
            checkpoint::save(path, &self.state)?;
        }
        Ok(())
    }
}

fn describe_reject(reject: &Reject) -> String {
    let mut place = reject.file.clone();
    if let Some(line) = reject.line {
        place.push_str(&format!(":{line}"));
    }
    if let Some(span) = reject.span_index {
        place.push_str(&format!(" span {span}"));
    }
    if reject.field.is_empty() {
        format!("{place}: {}", reject.reason)
    } else {
        format!("{place}: {}: {}", reject.field, reject.reason)
    }
}

fn now() -> Timestamp {
    Timestamp::from_unix_nanos(super::now_ns())
}

fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .saturating_sub(1)
        .max(1)
}

/// The formats as the checkpoint's command hash names them: `--format`, and `--from` when
/// it is not `auto` (so a checkpoint of an import read as another tool's is not resumed).
fn format_name(format: ImportFormat, from: ImportSource) -> String {
    let format = match format {
        ImportFormat::Auto => "auto",
        ImportFormat::Json => "json",
        ImportFormat::Jsonl => "jsonl",
        ImportFormat::OtlpJson => "otlp-json",
    };
    let from = match from {
        ImportSource::Auto => return format.to_owned(),
        ImportSource::Phoenix => "phoenix",
        ImportSource::Mlflow => "mlflow",
        ImportSource::Langfuse => "langfuse",
        ImportSource::Otlp => "otlp",
        ImportSource::SpanLog => "span-log",
    };
    format!("{format} from {from}")
}

/// `--format` as the reader applies it: `--from otlp` reads OTLP JSON whatever the content.
fn reading_format(args: &ImportArgs) -> ImportFormat {
    match (args.format, args.from) {
        (ImportFormat::Auto, ImportSource::Otlp) => ImportFormat::OtlpJson,
        (format, _) => format,
    }
}

/// Where spans go.
enum Sink {
    Local {
        store: Arc<dyn SpanStore>,
        project: ProjectId,
    },
    Http {
        target: HttpTarget,
        concurrency: usize,
    },
}

pub(super) async fn run(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let sources = Arc::new(inputs::expand(&args.inputs)?);
    let batch_size = args.batch_size as usize;
    let visible = !args.quiet && !args.json && std::io::stdout().is_terminal();
    let bytes_read = Arc::new(AtomicU64::new(0));
    let total_size: Option<u64> = sources.iter().map(Source::size).sum();
    let received_at = now();
    if args.dry_run {
        return dry_run(&args, &sources, visible, total_size, received_at).await;
    }

    // Rules of `--redact` for the project imported into; a server target applies its own.
    let mut redaction: Option<Arc<RuleSet>> = None;
    let (sink, target_name, checkpoint_dir) = match &args.url {
        Some(url) => {
            let key = args.key.clone().context("--url needs --key")?;
            let key_hash = hex::encode(Sha256::digest(key.as_bytes()));
            let target = HttpTarget::new(url, key)?;
            target.check().await?;
            let name = format!("{} key:{key_hash}", target.describe());
            let concurrency = args.concurrency.map_or(4, |n| n as usize);
            let cwd = std::env::current_dir().context("cannot read the current directory")?;
            (
                Sink::Http {
                    target,
                    concurrency,
                },
                name,
                cwd,
            )
        }
        None => {
            let config = StoreConfig::from_args(&args.store)?;
            // The checkpoint lives beside a SQLite database; a ClickHouse store has no local
            // directory, so its checkpoint goes to the current directory as with `--url`.
            let (target, directory) = match &config {
                StoreConfig::Sqlite(sqlite) => {
                    let database = std::path::absolute(&sqlite.path)
                        .with_context(|| format!("invalid store path {}", sqlite.path.display()))?;
                    let directory = database
                        .parent()
                        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
                    (format!("sqlite:{}", database.display()), directory)
                }
                StoreConfig::ClickHouse(_) => (
                    config.display_name(),
                    std::env::current_dir().context("cannot read the current directory")?,
                ),
            };
            let project: ProjectName = args.project.parse().context("invalid --project")?;
            redaction = match &args.redact {
                Some(path) => {
                    let rules = crate::config::load_redaction(path)?;
                    Some(Arc::clone(rules.rules_for(&project)))
                }
                None => None,
            };
            let store = open_store(&config).await?;
            let project = store
                .create_project(&project)
                .await
                .context("cannot create the project")?;
            (
                Sink::Local {
                    store,
                    project: project.id,
                },
                format!("{target} project:{}", project.name),
                directory,
            )
        }
    };

    let progress = Progress::new(visible, total_size, Arc::clone(&bytes_read));
    let hash = checkpoint::command_hash(
        &sources,
        &format_name(args.format, args.from),
        &target_name,
        "",
    );
    let stamps = checkpoint::stamps(&sources);
    let mut state = Checkpoint::new(hash.clone(), stamps.clone(), args.batch_size);
    let reads_stdin = sources.contains(&Source::Stdin);
    let checkpoint_path = if reads_stdin {
        if !args.quiet {
            progress.note("note: stdin cannot be read again, so this import keeps no checkpoint");
        }
        None
    } else {
        Some(
            args.checkpoint
                .clone()
                .unwrap_or_else(|| checkpoint::default_path(&checkpoint_dir, &hash)),
        )
    };
    let mut resumed_after = None;
    if let Some(path) = &checkpoint_path {
        if args.restart {
            checkpoint::remove(path);
        } else if let Some(previous) = checkpoint::load(path)? {
            if previous.command == hash && previous.inputs == stamps {
                if !args.quiet {
                    progress.note(&format!(
                        "resuming from checkpoint {} ({} spans imported before; --restart to start over)",
                        path.display(),
                        previous.imported
                    ));
                }
                resumed_after = Some(previous.imported);
                state = previous;
                if state.batch_size != args.batch_size {
                    // Batches are cut differently now, so the ones acknowledged out of order
                    // cannot be recognised: sending them again is safe, only slower.
                    state.acked_ahead.clear();
                    state.batch_size = args.batch_size;
                }
            } else if !args.quiet {
                progress.note(&format!(
                    "checkpoint {} is for other inputs or another command; starting over",
                    path.display()
                ));
            }
        }
    }
    let rejects = match &args.rejects {
        Some(path) => Some(RejectsFile::open(path, state.rejects_len)?),
        None => None,
    };

    let target = match sink {
        Sink::Local { .. } => Target::Spans,
        Sink::Http { .. } => Target::Http,
    };
    let workers = match (&sink, args.concurrency) {
        (Sink::Local { .. }, Some(n)) => n as usize,
        (Sink::Local { .. }, None) => default_workers(),
        (Sink::Http { .. }, _) => default_workers().min(2),
    };
    let reader = Reader {
        sources: Arc::clone(&sources),
        format: reading_format(&args),
        batch_size,
        start: state.position,
        bytes_read: Arc::clone(&bytes_read),
    };
    // Scores applied to stored spans pass the same rules as the spans.
    let score_rules = redaction.clone();
    let batches = start_pipeline(reader, workers, target, received_at, redaction, args.from)?;
    let mut committer = Committer {
        state,
        checkpoint_path: checkpoint_path.clone(),
        rejects,
        run: RunTotals::default(),
        progress,
    };
    let outcome = match sink {
        Sink::Local { store, project } => {
            commit_locally(
                &mut committer,
                batches,
                store.as_ref(),
                project,
                score_rules,
            )
            .await
        }
        Sink::Http {
            target,
            concurrency,
        } => send_to_server(&mut committer, batches, &target, concurrency).await,
    };
    committer.progress.bar.finish_and_clear();
    let interrupted = match outcome {
        Ok(interrupted) => interrupted,
        Err(error) => {
            if let Some(path) = &checkpoint_path {
                eprintln!(
                    "the import stopped; {} spans are committed. Run the same command again to continue from checkpoint {}",
                    committer.state.imported,
                    path.display()
                );
            }
            return Err(error);
        }
    };
    if interrupted {
        let (imported, rejected) = (committer.state.imported, committer.state.rejected);
        eprintln!(
            "interrupted: {imported} spans imported and {rejected} items rejected so far; {}",
            match &checkpoint_path {
                Some(_) => "run the same command again to continue",
                None => "stdin imports cannot continue",
            }
        );
        return Ok(ExitCode::from(EXIT_INTERRUPTED));
    }
    if let Some(path) = &checkpoint_path {
        checkpoint::remove(path);
    }

    let seconds = committer.progress.started.elapsed().as_secs_f64();
    let run = &committer.run;
    let summary = json!({
        "imported": committer.state.imported,
        "rejected": committer.state.rejected,
        "items": committer.state.items,
        "files": sources.len(),
        "bytes": committer.state.bytes,
        "seconds": seconds,
        "imported_this_run": run.imported,
        "spans_per_second": run.imported as f64 / seconds.max(1e-9),
        "megabytes_per_second": run.bytes as f64 / 1e6 / seconds.max(1e-9),
        "resumed_after": resumed_after,
        "rejects_file": committer.rejects.as_ref().map(|r| r.path.display().to_string()),
        "first_reject": run.first_reject,
        "scores_applied": run.scores,
    });
    if args.json {
        println!("{summary}");
    } else {
        report::print_summary(&summary);
    }
    Ok(if committer.state.rejected > 0 {
        ExitCode::from(EXIT_REJECTED)
    } else {
        ExitCode::SUCCESS
    })
}

/// Adds scores listed apart from their spans to the stored spans they name (after the batch's
/// own spans are written, so a score may follow its span in the same input), through
/// `write_spans` as the scores API does. A score whose span is not stored is a reject.
async fn apply_scores(
    store: &dyn SpanStore,
    project: ProjectId,
    patches: Vec<(decode::ItemRef, tracehouse_ingest::peer::ScorePatch)>,
    file: &str,
    redaction: Option<&RuleSet>,
) -> anyhow::Result<(u64, Vec<Reject>)> {
    let mut changed: BTreeMap<(String, String), tracehouse_core::Span> = BTreeMap::new();
    let mut rejects = Vec::new();
    let mut applied = 0u64;
    for (at, patch) in patches {
        let cached = |trace: &str, span: &str| (trace.to_owned(), span.to_owned());
        let found: Result<tracehouse_core::Span, String> = match (&patch.trace_id, &patch.span_id) {
            (Some(trace), Some(span)) => {
                match changed.get(&cached(trace.as_str(), span.as_str())) {
                    Some(span) => Ok(span.clone()),
                    None => store
                        .get_span(project, trace, span)
                        .await
                        .context("cannot read the store")?
                        .ok_or_else(|| {
                            format!(
                                "span {span} of trace {trace} is not stored; import its spans first"
                            )
                        }),
                }
            }
            (None, Some(span)) => {
                let mut spans = store
                    .find_spans(project, span, 2)
                    .await
                    .context("cannot read the store")?;
                match spans.len() {
                    1 => Ok(spans.remove(0)),
                    0 => Err(format!("span {span} is not stored; import its spans first")),
                    _ => Err(format!("span id {span} names spans of several traces")),
                }
            }
            (Some(trace), None) => store
                .get_trace(project, trace)
                .await
                .context("cannot read the store")?
                .and_then(|stored| tracehouse_core::trace_state::root_of(&stored.spans).cloned())
                .ok_or_else(|| format!("trace {trace} is not stored; import its spans first")),
            (None, None) => Err("the score names no span".to_owned()),
        };
        match found {
            Ok(span) => {
                let key = cached(span.trace_id.as_str(), span.span_id.as_str());
                let mut span = changed.remove(&key).unwrap_or(span);
                patch.apply(&mut span);
                changed.insert(key, span);
                applied += 1;
            }
            Err(reason) => rejects.push(Reject {
                file: file.to_owned(),
                line: Some(at.line),
                index: Some(at.index),
                span_index: None,
                field: "scores".to_owned(),
                reason,
                item: Value::Null,
            }),
        }
    }
    let mut spans: Vec<tracehouse_core::Span> = changed.into_values().collect();
    if let Some(rules) = redaction {
        rules.redact_spans(&mut spans);
    }
    if !spans.is_empty() {
        store
            .write_spans(project, spans)
            .await
            .context("cannot write to the store")?;
    }
    Ok((applied, rejects))
}

/// Writes batches in reading order, one transaction each; `Ok(true)` when Ctrl-C stopped it.
async fn commit_locally(
    committer: &mut Committer,
    mut batches: Ordered,
    store: &dyn SpanStore,
    project: ProjectId,
    redaction: Option<Arc<RuleSet>>,
) -> anyhow::Result<bool> {
    let interrupt = tokio::signal::ctrl_c();
    tokio::pin!(interrupt);
    loop {
        let batch = tokio::select! {
            biased;
            _ = &mut interrupt => return Ok(true),
            batch = batches.next() => batch,
        };
        let Some(batch) = batch else {
            return Ok(false);
        };
        let Payload::Spans(spans) = batch.payload else {
            bail!("internal error: a local import decoded a request body");
        };
        let imported = spans.len() as u64;
        if !spans.is_empty() {
            store
                .write_spans(project, spans)
                .await
                .context("cannot write to the store")?;
        }
        let mut rejects = batch.rejects;
        if !batch.scores.is_empty() {
            let (applied, missing) = apply_scores(
                store,
                project,
                batch.scores,
                &batch.file_name,
                redaction.as_deref(),
            )
            .await?;
            committer.run.scores += applied;
            rejects.extend(missing);
        }
        committer.record(batch.items, batch.bytes, imported, &rejects)?;
        committer.state.position = batch.end;
        committer.save()?;
    }
}

/// What a finished request hands back to the committing loop.
struct Sent {
    seq: u64,
    batch: DecodedBatch,
    answer: anyhow::Result<IngestAnswer>,
}

/// Sends batches with up to `concurrency` requests at once; acknowledgements may come back
/// out of order, and the checkpoint records both the contiguous prefix and the batches
/// acknowledged beyond it. `Ok(true)` when Ctrl-C stopped it.
async fn send_to_server(
    committer: &mut Committer,
    mut batches: Ordered,
    target: &HttpTarget,
    concurrency: usize,
) -> anyhow::Result<bool> {
    let interrupt = tokio::signal::ctrl_c();
    tokio::pin!(interrupt);
    // Batch numbers of this run start at the checkpoint's position, as `acked_ahead` counts.
    let mut already_acked: BTreeSet<u64> = committer.state.acked_ahead.iter().copied().collect();
    let mut acked: BTreeMap<u64, Position> = BTreeMap::new();
    let mut prefix = 0u64;
    let mut in_flight: JoinSet<Sent> = JoinSet::new();
    let mut input_done = false;
    let mut failure: Option<anyhow::Error> = None;
    let mut interrupted = false;
    loop {
        if input_done && in_flight.is_empty() {
            break;
        }
        let can_send =
            !input_done && failure.is_none() && !interrupted && in_flight.len() < concurrency;
        tokio::select! {
            biased;
            _ = &mut interrupt, if !interrupted => {
                interrupted = true;
                input_done = true;
            }
            joined = in_flight.join_next(), if !in_flight.is_empty() => {
                let Some(joined) = joined else { continue };
                let sent = joined.context("a request task failed")?;
                match sent.answer {
                    Err(error) => {
                        // Let the other requests finish so their acknowledgements are kept.
                        failure.get_or_insert(error);
                        input_done = true;
                    }
                    Ok(answer) => {
                        let rejects = server_rejects(&sent.batch, &answer);
                        committer.record(sent.batch.items, sent.batch.bytes, answer.accepted, &rejects)?;
                        acked.insert(sent.seq, sent.batch.end);
                        advance(committer, &mut acked, &already_acked, &mut prefix)?;
                    }
                }
            }
            batch = batches.next(), if can_send => {
                let Some(batch) = batch else {
                    input_done = true;
                    continue;
                };
                let seq = batch.seq;
                if already_acked.remove(&seq) {
                    // Acknowledged by an earlier run: its totals are in the checkpoint already.
                    acked.insert(seq, batch.end);
                    advance(committer, &mut acked, &already_acked, &mut prefix)?;
                    continue;
                }
                let Payload::Body { body, .. } = &batch.payload else {
                    bail!("internal error: an HTTP import decoded spans");
                };
                if batch_is_empty(&batch) {
                    committer.record(batch.items, batch.bytes, 0, &batch.rejects)?;
                    acked.insert(seq, batch.end);
                    advance(committer, &mut acked, &already_acked, &mut prefix)?;
                    continue;
                }
                let (body, target) = (body.clone(), target.clone());
                in_flight.spawn(async move {
                    let answer = target.send(body).await;
                    Sent { seq, batch, answer }
                });
            }
        }
    }
    match failure {
        Some(error) => Err(error),
        None => Ok(interrupted),
    }
}

fn batch_is_empty(batch: &DecodedBatch) -> bool {
    matches!(&batch.payload, Payload::Body { refs, .. } if refs.is_empty())
}

/// Moves the checkpoint over every batch acknowledged without a gap before it. `known` are
/// batches an earlier run acknowledged that this run has not reached yet.
fn advance(
    committer: &mut Committer,
    acked: &mut BTreeMap<u64, Position>,
    known: &BTreeSet<u64>,
    prefix: &mut u64,
) -> anyhow::Result<()> {
    while let Some(end) = acked.remove(prefix) {
        committer.state.position = end;
        *prefix += 1;
    }
    // A later run numbers its batches from the position saved here.
    let ahead: BTreeSet<u64> = acked.keys().chain(known).copied().collect();
    committer.state.acked_ahead = ahead.into_iter().map(|seq| seq - *prefix).collect();
    committer.save()
}

/// The batch's own rejects plus those the server reported, placed by the batch's item refs.
fn server_rejects(batch: &DecodedBatch, answer: &IngestAnswer) -> Vec<Reject> {
    let mut rejects = batch.rejects.clone();
    if answer.rejected.is_empty() {
        return rejects;
    }
    let Payload::Body { body, refs } = &batch.payload else {
        return rejects;
    };
    // Only parsed when needed: the server's rejections are the exception.
    let items: Vec<Value> = serde_json::from_slice(body).unwrap_or_default();
    for rejected in &answer.rejected {
        let at = refs.get(rejected.index).copied();
        rejects.push(Reject {
            file: batch.file_name.clone(),
            line: at.map(|at| at.line),
            index: at.map(|at| at.index),
            span_index: at.and_then(|at| at.span_index),
            field: rejected.field.clone(),
            reason: rejected.error.clone(),
            item: items.get(rejected.index).cloned().unwrap_or(Value::Null),
        });
    }
    rejects
}

/// Reads and validates everything, writes nothing, prints the analysis.
async fn dry_run(
    args: &ImportArgs,
    sources: &Arc<Vec<Source>>,
    visible: bool,
    total_size: Option<u64>,
    received_at: Timestamp,
) -> anyhow::Result<ExitCode> {
    let bytes_read = Arc::new(AtomicU64::new(0));
    let progress = Progress::new(visible, total_size, Arc::clone(&bytes_read));
    let workers = args
        .concurrency
        .map_or_else(default_workers, |n| n as usize);
    let reader = Reader {
        sources: Arc::clone(sources),
        format: reading_format(args),
        batch_size: args.batch_size as usize,
        start: Position::start_of(0),
        bytes_read: Arc::clone(&bytes_read),
    };
    let mut batches = start_pipeline(reader, workers, Target::Spans, received_at, None, args.from)?;
    let mut analysis = Analysis::default();
    let (mut items, mut bytes, mut spans, mut rejected) = (0u64, 0u64, 0u64, 0u64);
    while let Some(batch) = batches.next().await {
        items += batch.items;
        bytes += batch.bytes;
        if let Payload::Spans(batch_spans) = &batch.payload {
            spans += batch_spans.len() as u64;
            for span in batch_spans {
                analysis.add_span(span);
            }
        }
        rejected += batch.rejects.len() as u64;
        for reject in &batch.rejects {
            analysis.add_reject(reject);
        }
        if let Some((source, records, mapping)) = &batch.mapping {
            let spans = match &batch.payload {
                Payload::Spans(spans) => spans.len() as u64,
                Payload::Body { refs, .. } => refs.len() as u64,
            };
            analysis.add_mapping(*source, *records, spans, mapping);
        }
        progress.update(spans, rejected);
    }
    progress.bar.finish_and_clear();
    let report = analysis.report(sources.len(), items, bytes);
    if args.json {
        println!("{report}");
    } else {
        report::print_report(&report);
    }
    Ok(ExitCode::SUCCESS)
}
