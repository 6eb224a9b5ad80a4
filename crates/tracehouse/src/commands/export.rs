//! `tracehouse export`: every span of a project that matches the filters, streamed from the
//! local store to a file or stdout.
//!
//! Spans are read with `SpanStore::scan_spans` (a keyset walk in trace id, span id order) one
//! batch at a time and encoded by `tracehouse_server::ExportEncoder`, the encoder of the HTTP
//! export route, so both give the same bytes and memory stays flat.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Map, Value, json};
use tracehouse_core::ProjectName;
use tracehouse_core::query::{SpanFilter, parse_span_filters, parse_time_parameter};
use tracehouse_server::{ExportEncoder, ExportFormat};

use super::open_store;
use crate::cli::{ExportArgs, ExportFormatArg};
use crate::config::StoreConfig;

/// Spans read from the store per step.
const SCAN_BATCH: usize = 1000;

/// Filter operators of `--filter`, longest first so `>=` is not read as `>`.
const OPERATORS: &[(&str, &str)] = &[
    ("!=", "not"),
    (">=", "gte"),
    ("<=", "lte"),
    ("^=", "startswith"),
    ("==", ""),
    ("=", ""),
    (">", "gt"),
    ("<", "lt"),
    ("~", "contains"),
];

/// Splits `FIELD OP VALUE` into the field, the read API's operator name and the value.
fn parse_condition(raw: &str) -> anyhow::Result<(String, &'static str, String)> {
    let Some(start) = raw.find(['=', '!', '<', '>', '~', '^']) else {
        bail!("--filter {raw:?} has no operator: use FIELD=VALUE (or !=, >, >=, <, <=, ~, ^=)");
    };
    let field = raw[..start].trim();
    let rest = &raw[start..];
    let Some((symbol, operator)) = OPERATORS
        .iter()
        .find(|(symbol, _)| rest.starts_with(*symbol))
    else {
        bail!("--filter {raw:?}: unknown operator; use =, !=, >, >=, <, <=, ~ or ^=");
    };
    if field.is_empty() {
        bail!("--filter {raw:?} names no field");
    }
    Ok((
        field.to_owned(),
        operator,
        rest[symbol.len()..].trim().to_owned(),
    ))
}

/// The span filter of the command line, through the read API's own parser.
fn build_filter(args: &ExportArgs) -> anyhow::Result<SpanFilter> {
    let mut filter = SpanFilter {
        start_from: args
            .since
            .as_deref()
            .map(|raw| parse_time_parameter("since", raw))
            .transpose()?,
        start_to: args
            .until
            .as_deref()
            .map(|raw| parse_time_parameter("until", raw))
            .transpose()?,
        search: args.search.clone().filter(|s| !s.trim().is_empty()),
        ..SpanFilter::default()
    };
    for raw in &args.filter {
        let (field, operator, value) = parse_condition(raw)?;
        let mut spec = Map::new();
        spec.insert(field, json!({"operator": operator, "value": [value]}));
        parse_span_filters(&Value::Object(spec), &mut filter)
            .with_context(|| format!("invalid --filter {raw:?}"))?;
    }
    if !args.trace.is_empty() {
        let spec = json!({"trace_unique_id": {"operator": "in", "value": args.trace}});
        parse_span_filters(&spec, &mut filter).context("invalid --trace")?;
    }
    Ok(filter)
}

/// Where the bytes go: stdout or a temporary file renamed into place at the end (so a failed
/// export never leaves a truncated file under the requested name), gzipped or not.
enum Output {
    Plain(BufWriter<Box<dyn Write + Send>>),
    Gzip(GzEncoder<BufWriter<Box<dyn Write + Send>>>),
}

impl Output {
    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Output::Plain(writer) => writer.write_all(bytes),
            Output::Gzip(writer) => writer.write_all(bytes),
        }
    }

    fn finish(self) -> std::io::Result<()> {
        match self {
            Output::Plain(mut writer) => writer.flush(),
            Output::Gzip(writer) => writer.finish()?.flush(),
        }
    }
}

/// The temporary name an export to `path` is written under.
fn partial_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.partial"))
}

pub(super) async fn run(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let filter = build_filter(&args)?;
    let project: ProjectName = args.project.parse().context("invalid --project")?;
    let config = StoreConfig::from_args(&args.store)?;
    // Opening creates a database; an export from a path with none is a mistake to report.
    match &config {
        StoreConfig::Sqlite(sqlite) if !sqlite.path.exists() => {
            bail!("no tracehouse store at {}", sqlite.path.display())
        }
        StoreConfig::Sqlite(_) | StoreConfig::ClickHouse(_) => {}
    }
    let store = open_store(&config).await?;
    let project = store
        .find_project(&project)
        .await
        .context("cannot read projects")?
        .with_context(|| format!("project {project:?} does not exist in {}", store.describe()))?;
    let format = match args.format {
        ExportFormatArg::Jsonl => ExportFormat::Jsonl,
        ExportFormatArg::Json => ExportFormat::Json,
        ExportFormatArg::Csv => ExportFormat::Csv,
        ExportFormatArg::OtlpJson => ExportFormat::OtlpJson,
    };

    let partial = args.out.as_deref().map(partial_path);
    let inner: Box<dyn Write + Send> = match &partial {
        Some(path) => Box::new(
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout()),
    };
    let buffered = BufWriter::with_capacity(256 * 1024, inner);
    let mut output = if args.gzip {
        Output::Gzip(GzEncoder::new(buffered, Compression::default()))
    } else {
        Output::Plain(buffered)
    };

    let mut encoder = ExportEncoder::new(format);
    let mut chunk = Vec::with_capacity(1024 * 1024);
    let mut after = None;
    let written: anyhow::Result<()> = async {
        encoder.begin(&mut chunk)?;
        loop {
            let spans = store
                .scan_spans(project.id, &filter, after.take(), SCAN_BATCH)
                .await
                .context("cannot read spans from the store")?;
            encoder.encode(&spans, &mut chunk)?;
            let last = spans.last().filter(|_| spans.len() == SCAN_BATCH);
            after = last.map(|last| (last.trace_id.clone(), last.span_id.clone()));
            if after.is_none() {
                encoder.finish(&mut chunk);
            }
            // Writing blocks; the store's reads run on other threads meanwhile.
            tokio::task::block_in_place(|| output.write_all(&chunk))
                .context("cannot write the export")?;
            chunk.clear();
            if after.is_none() {
                return Ok(());
            }
        }
    }
    .await;
    let finished = written.and_then(|()| {
        tokio::task::block_in_place(|| output.finish()).context("cannot write the export")
    });
    if let Err(error) = finished {
        if let Some(path) = &partial {
            let _ = std::fs::remove_file(path);
        }
        return Err(error);
    }
    if let (Some(partial), Some(out)) = (&partial, &args.out) {
        std::fs::rename(partial, out)
            .with_context(|| format!("cannot move the export into {}", out.display()))?;
    }
    if !args.quiet {
        eprintln!(
            "exported {} spans of project {:?} as {} to {} in {:.1} s",
            encoder.written(),
            project.name.as_str(),
            format.name(),
            args.out
                .as_ref()
                .map_or_else(|| "stdout".to_owned(), |out| out.display().to_string()),
            started.elapsed().as_secs_f64()
        );
        if encoder.skipped() > 0 {
            eprintln!(
                "left out {} spans whose ids are not the hex ids OTLP requires (32 and 16 digits)",
                encoder.skipped()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_split_on_the_first_operator() {
        let parsed = |raw: &str| parse_condition(raw).unwrap();
        assert_eq!(
            parsed("model=gpt-4o"),
            ("model".to_owned(), "", "gpt-4o".to_owned())
        );
        assert_eq!(
            parsed("cost >= 0.5"),
            ("cost".to_owned(), "gte", "0.5".to_owned())
        );
        assert_eq!(
            parsed("metadata__env!=prod"),
            ("metadata__env".to_owned(), "not", "prod".to_owned())
        );
        assert_eq!(
            parsed("span_name~a=b"),
            ("span_name".to_owned(), "contains", "a=b".to_owned())
        );
        assert_eq!(
            parsed("span_name^=open"),
            ("span_name".to_owned(), "startswith", "open".to_owned())
        );
        assert_eq!(
            parsed("latency<1"),
            ("latency".to_owned(), "lt", "1".to_owned())
        );
        assert!(parse_condition("model").is_err());
        assert!(parse_condition("=x").is_err());
        assert!(parse_condition("model!x").is_err());
    }
}
