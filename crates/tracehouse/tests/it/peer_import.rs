//! `tracehouse import` of other tools' exports (issue 22): every export in
//! `shared/fixtures/peer-exports` imports with the source's trace and span counts, its parent
//! links, its times to the digit the source wrote, its models, tokens, cost, status, sessions
//! (as threads), users (as customers) and annotations (as scores); the dry run reports per
//! tool; a second import changes nothing; broken inputs are rejected by file and position.
//! The real binary on real files, into SQLite, ClickHouse and the 2-shard cluster.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::{Value, json};
use tracehouse_core::Timestamp;

use crate::migration::{
    export_to, import_killed_then_resumed, import_peak, path_str, run, run_ok, stdout_json,
};
use crate::util::{
    Backend, TestServer, drop_database, fixture_path, fresh_database, gzip, on_every_store,
};

fn peer(path: &str) -> PathBuf {
    fixture_path(&format!("peer-exports/{path}"))
}

/// A store the binary imports into and exports from, named by its command-line arguments.
struct Store {
    args: Vec<String>,
    _dir: tempfile::TempDir,
    clickhouse: Option<(Vec<String>, String)>,
}

impl Store {
    fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (args, clickhouse) = match backend {
            Backend::Sqlite => (
                vec!["--data-dir".to_owned(), path_str(dir.path()).to_owned()],
                None,
            ),
            Backend::ClickHouse(url) => {
                let database = fresh_database();
                let host = url.trim_start_matches("http://");
                let store = format!("clickhouse://{host}/{database}");
                (
                    vec!["--store".to_owned(), store],
                    Some((vec![url], database)),
                )
            }
            Backend::Cluster(urls) => {
                let database = fresh_database();
                let hosts: Vec<&str> = urls
                    .iter()
                    .map(|u| u.trim_start_matches("http://"))
                    .collect();
                let store = format!(
                    "clickhouse://{}/{database}?cluster=tracehouse",
                    hosts.join(",")
                );
                (vec!["--store".to_owned(), store], Some((urls, database)))
            }
        };
        Self {
            args,
            _dir: dir,
            clickhouse,
        }
    }

    /// `import --json` of `inputs` into `project`; the summary.
    fn import(&self, project: &str, inputs: &[PathBuf], extra: &[&str]) -> Value {
        let mut args = vec!["import", "--quiet", "--json", "--project", project];
        args.extend(self.args.iter().map(String::as_str));
        args.extend_from_slice(extra);
        args.extend(inputs.iter().map(|p| path_str(p)));
        stdout_json(&run(&args))
    }

    /// Every span of `project`, as `export --format jsonl` writes them, by (trace, span).
    fn spans(&self, project: &str) -> BTreeMap<(String, String), Value> {
        let mut args = vec![
            "export",
            "--quiet",
            "--format",
            "jsonl",
            "--project",
            project,
        ];
        args.extend(self.args.iter().map(String::as_str));
        String::from_utf8(run_ok(&args))
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str::<Value>(line).unwrap())
            .map(|span| {
                let key = (
                    text(&span["trace_unique_id"]),
                    text(&span["span_unique_id"]),
                );
                (key, span)
            })
            .collect()
    }
}

impl Store {
    /// Imports one export of the whole scenario into project `name`: every one of its 49 spans
    /// lands, none is rejected, they form its 14 traces and every parent is there. The spans.
    fn import_whole_scenario(
        &self,
        name: &str,
        inputs: &[PathBuf],
    ) -> BTreeMap<(String, String), Value> {
        let summary = self.import(name, inputs, &[]);
        assert_eq!(
            (summary["imported"].as_u64(), summary["rejected"].as_u64()),
            (Some(49), Some(0)),
            "{name}: {summary}"
        );
        let spans = self.spans(name);
        assert_eq!((spans.len(), trace_count(&spans)), (49, 14), "{name}");
        assert_no_orphans(name, &spans);
        spans
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Some((urls, database)) = &self.clickhouse {
            for url in urls {
                drop_database(url, database);
            }
        }
    }
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

fn nanos(value: &Value) -> i64 {
    Timestamp::parse(value.as_str().unwrap())
        .unwrap()
        .unix_nanos()
}

/// What a migration must keep of a span, as the read API shows it.
#[derive(Debug, Clone, PartialEq)]
struct Kept {
    parent: Value,
    name: Value,
    start: i64,
    end: i64,
    model: Value,
    tokens: [Value; 3],
    cost: Value,
    status: Value,
    customer: Value,
    thread: Value,
}

fn kept(span: &Value) -> Kept {
    Kept {
        parent: span["span_parent_id"].clone(),
        name: span["span_name"].clone(),
        start: nanos(&span["start_time"]),
        end: nanos(&span["timestamp"]),
        model: span["model"].clone(),
        tokens: [
            span["prompt_tokens"].clone(),
            span["completion_tokens"].clone(),
            span["total_tokens"].clone(),
        ],
        cost: span["cost"].clone(),
        status: span["status"].clone(),
        customer: span["customer_identifier"].clone(),
        thread: span["thread_identifier"].clone(),
    }
}

fn trace_count(spans: &BTreeMap<(String, String), Value>) -> usize {
    spans
        .keys()
        .map(|(trace, _)| trace)
        .collect::<std::collections::BTreeSet<_>>()
        .len()
}

/// Every parent a span names is a span of the same trace.
fn assert_no_orphans(label: &str, spans: &BTreeMap<(String, String), Value>) {
    for ((trace, span), value) in spans {
        if let Some(parent) = value["span_parent_id"].as_str() {
            assert!(
                spans.contains_key(&(trace.clone(), parent.to_owned())),
                "{label}: span {span} names parent {parent}, which the import does not have"
            );
        }
    }
}

fn scores(spans: &BTreeMap<(String, String), Value>) -> BTreeMap<(String, String), Value> {
    spans
        .iter()
        .flat_map(|((_, span), value)| {
            value["scores"]
                .as_object()
                .into_iter()
                .flatten()
                .map(move |(name, score)| ((span.clone(), name.clone()), score.clone()))
        })
        .collect()
}

/// Phoenix's spans as its REST listing writes them: (trace, span) -> (start, end) in ns.
fn phoenix_rest_times() -> BTreeMap<(String, String), (i64, i64)> {
    let mut times = BTreeMap::new();
    for page in 1..=3 {
        let path = peer(&format!("phoenix/rest/spans/page-00{page}.json"));
        let body: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        for span in body["data"].as_array().unwrap() {
            let key = (
                text(&span["context"]["trace_id"]),
                text(&span["context"]["span_id"]),
            );
            times.insert(key, (nanos(&span["start_time"]), nanos(&span["end_time"])));
        }
    }
    times
}

async fn every_phoenix_export_imports_what_phoenix_holds(backend: Backend) {
    let store = Store::new(backend);
    // The OTLP the Phoenix exporter sent is the ground truth for everything but the times,
    // which Phoenix keeps to the microsecond.
    let truth_summary = store.import("otlp", &[peer("otel-collector-file/traces.jsonl")], &[]);
    assert_eq!(truth_summary["imported"], 49, "{truth_summary}");
    let truth = store.spans("otlp");
    assert_eq!((truth.len(), trace_count(&truth)), (49, 14));
    let rest_times = phoenix_rest_times();
    assert_eq!(rest_times.len(), 49);
    let dataframe_ms: BTreeMap<(String, String), (i64, i64)> =
        std::fs::read_to_string(peer("phoenix/spans_dataframe.jsonl"))
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str::<Value>(line).unwrap())
            .map(|row| {
                let key = (
                    text(&row["context.trace_id"]),
                    text(&row["context.span_id"]),
                );
                let ms = |v: &Value| v.as_i64().unwrap() * 1_000_000;
                (key, (ms(&row["start_time"]), ms(&row["end_time"])))
            })
            .collect();

    let ui = |ext: &str| {
        let dir = peer("phoenix/ui-download");
        std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == ext))
            .unwrap()
    };
    let otlpv1_pages: Vec<PathBuf> = (1..=3)
        .map(|n| peer(&format!("phoenix/rest/spans-otlpv1/page-00{n}.json")))
        .collect();
    // Phoenix's snake_case OTLP writes nanoseconds it computed through a float
    // (`...486553900` for the REST's `...486554`): the file's own digits are what must land.
    let ui_otlp_times = snake_otlp_times(&[ui("json")]);
    let otlpv1_times = snake_otlp_times(&otlpv1_pages);
    type Times = BTreeMap<(String, String), (i64, i64)>;
    let exports: [(&str, Vec<PathBuf>, &Times); 7] = [
        ("rest", vec![peer("phoenix/rest/spans")], &rest_times),
        ("ui-jsonl", vec![ui("jsonl")], &rest_times),
        ("ui-otlp-json", vec![ui("json")], &ui_otlp_times),
        ("otlpv1", otlpv1_pages.clone(), &otlpv1_times),
        (
            "dataframe-jsonl",
            vec![peer("phoenix/spans_dataframe.jsonl")],
            &dataframe_ms,
        ),
        (
            "dataframe-parquet",
            vec![peer("phoenix/spans_dataframe.parquet")],
            &rest_times,
        ),
        (
            "trace-dataset",
            vec![peer("phoenix/trace_dataset")],
            &rest_times,
        ),
    ];
    for (name, inputs, times) in exports {
        let in_ms = name == "dataframe-jsonl";
        let spans = store.import_whole_scenario(name, &inputs);
        for (key, span) in &spans {
            let expected_span = truth
                .get(key)
                .unwrap_or_else(|| panic!("{name}: {key:?} not in the OTLP"));
            let mut expected = kept(expected_span);
            // Phoenix's sessions are threads too; the OTLP route keeps them as sessions only.
            expected.thread = expected_span["session_identifier"].clone();
            (expected.start, expected.end) = times[key];
            assert_eq!(kept(span), expected, "{name}: span {key:?}");
            // The source's precision is all that differs from the OTLP's nanoseconds.
            let unit = if in_ms { 1_000_000 } else { 1_000 };
            assert!(
                (kept(expected_span).start - span_start(span)).abs() < unit,
                "{name}: {key:?}"
            );
        }
        let errors = spans.values().filter(|s| s["status"] == "error").count();
        assert_eq!(
            errors, 3,
            "{name}: the 429, the timeout and the root it failed"
        );
    }

    // The UI download carries the annotations with their spans: 4 span and 4 trace ones.
    let annotated = scores(&store.spans("ui-jsonl"));
    assert_eq!(annotated.len(), 8, "{annotated:?}");
    let hallucination = &annotated[&("f842aa8bff0c6004".to_owned(), "hallucination".to_owned())];
    assert_eq!(hallucination["numerical_value"], 0);
    assert_eq!(hallucination["string_value"], "factual");
    assert_eq!(hallucination["source"], "LLM");
    assert_eq!(hallucination["score_value_type"], "numerical");
    // The hand-written Anthropic span's cost is the one the application set.
    let claude = store
        .spans("rest")
        .into_values()
        .find(|s| s["model"] == "claude-3-5-haiku-20241022")
        .unwrap();
    assert_eq!(claude["cost"].as_f64(), Some(0.0001672));
    assert_eq!(claude["customer_identifier"], "agent-ops-7");
}

/// (trace, span) -> (start, end) of Phoenix's snake_case OTLP JSON files, as written.
fn snake_otlp_times(files: &[PathBuf]) -> BTreeMap<(String, String), (i64, i64)> {
    let mut times = BTreeMap::new();
    for file in files {
        let body: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
        let spans: Vec<&Value> = match body.get("resource_spans") {
            Some(resources) => resources
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|r| r["scope_spans"].as_array().unwrap())
                .flat_map(|s| s["spans"].as_array().unwrap())
                .collect(),
            None => body["data"].as_array().unwrap().iter().collect(),
        };
        for span in spans {
            let key = (text(&span["trace_id"]), text(&span["span_id"]));
            let int = |v: &Value| v.as_i64().unwrap();
            times.insert(
                key,
                (
                    int(&span["start_time_unix_nano"]),
                    int(&span["end_time_unix_nano"]),
                ),
            );
        }
    }
    times
}

fn span_start(span: &Value) -> i64 {
    nanos(&span["start_time"])
}

/// MLflow's spans as `Trace.to_json()` holds them, mapped by hand from the documented fields.
fn mlflow_truth() -> BTreeMap<(String, String), Kept> {
    let b64 = |v: &Value| {
        hex::encode(
            base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap())
                .unwrap(),
        )
    };
    let attribute = |span: &Value, key: &str| -> Value {
        span["attributes"][key]
            .as_str()
            .map_or(Value::Null, |t| serde_json::from_str(t).unwrap())
    };
    let mut truth = BTreeMap::new();
    let traces: Vec<Value> =
        serde_json::from_slice(&std::fs::read(peer("mlflow/traces.json")).unwrap()).unwrap();
    for trace in traces {
        let metadata = &trace["info"]["trace_metadata"];
        for span in trace["data"]["spans"].as_array().unwrap() {
            let usage = attribute(span, "mlflow.chat.tokenUsage");
            let model = match attribute(span, "mlflow.llm.model") {
                Value::Null => attribute(span, "model"),
                model => model,
            };
            let failed = span["status"]["code"] == "STATUS_CODE_ERROR";
            let nanos_text =
                |key: &str| Timestamp::from_unix_nanos(span[key].as_i64().unwrap()).to_rfc3339();
            let parent = span["parent_span_id"]
                .as_str()
                .map(|p| b64(&Value::String(p.to_owned())));
            let kept = kept(&json!({
                "span_parent_id": parent, "span_name": span["name"],
                "start_time": nanos_text("start_time_unix_nano"),
                "timestamp": nanos_text("end_time_unix_nano"), "model": model,
                "prompt_tokens": usage["input_tokens"], "completion_tokens": usage["output_tokens"],
                "total_tokens": usage["total_tokens"],
                "cost": attribute(span, "mlflow.llm.cost")["total_cost"],
                "status": if failed { "error" } else { "success" },
                "customer_identifier": metadata["mlflow.trace.user"],
                "thread_identifier": metadata["mlflow.trace.session"],
            }));
            truth.insert((b64(&span["trace_id"]), b64(&span["span_id"])), kept);
        }
    }
    truth
}

async fn every_mlflow_export_imports_what_mlflow_holds(backend: Backend) {
    let store = Store::new(backend);
    let truth = mlflow_truth();
    assert_eq!(truth.len(), 49);
    let exports: [(&str, PathBuf); 6] = [
        ("trace-files", peer("mlflow/traces")),
        ("trace-array", peer("mlflow/traces.json")),
        ("search-traces-jsonl", peer("mlflow/search_traces.jsonl")),
        (
            "search-traces-parquet",
            peer("mlflow/search_traces.objcols-as-json.parquet"),
        ),
        ("cli-search", peer("mlflow/cli/traces-search.json")),
        ("rest-batch-get", peer("mlflow/rest/traces-batchGet.json")),
    ];
    for (name, input) in exports {
        let spans = store.import_whole_scenario(name, &[input]);
        for (key, span) in &spans {
            let mut actual = kept(span);
            let expected = &truth[key];
            // Spans the source did not price are priced by the price table, as on every route.
            if expected.cost.is_null() {
                actual.cost = Value::Null;
            }
            assert_eq!(&actual, expected, "{name}: span {key:?}");
        }
        let scored = scores(&spans);
        assert_eq!(scored.len(), 8, "{name}: {scored:?}");
    }
    // An integer above 2^53 survives to the nanosecond.
    let spans = store.spans("trace-files");
    let root = &spans[&(
        "7fcde9c7fc21ee86f914d1d9891968a8".to_owned(),
        "513379e81f2a6772".to_owned(),
    )];
    assert_eq!(span_start(root), 1_796_404_882_673_070_177);
    assert_eq!(root["scores"]["user_feedback"]["boolean_value"], true);
    assert_eq!(root["metadata"]["channel"], "web-chat");
}

/// Langfuse's observations as its API's trace detail holds them.
fn langfuse_truth() -> BTreeMap<(String, String), Kept> {
    let mut truth = BTreeMap::new();
    for entry in std::fs::read_dir(peer("langfuse/api")).unwrap() {
        let path = entry.unwrap().path();
        if !path_str(&path).contains("GET_api_public_traces_") {
            continue;
        }
        let trace: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        for observation in trace["observations"].as_array().unwrap() {
            let usage = &observation["usageDetails"];
            let generation = observation["type"] == "GENERATION";
            let cost = match generation {
                true => observation["costDetails"]["total"].clone(),
                false => Value::Null,
            };
            let kept = kept(&json!({
                "span_parent_id": observation["parentObservationId"],
                "span_name": observation["name"], "start_time": observation["startTime"],
                "timestamp": observation["endTime"], "model": observation["model"],
                "prompt_tokens": usage["input"], "completion_tokens": usage["output"],
                "total_tokens": usage["total"], "cost": cost,
                "status": if observation["level"] == "ERROR" { "error" } else { "success" },
                "customer_identifier": trace["userId"], "thread_identifier": trace["sessionId"],
            }));
            truth.insert(
                (text(&observation["traceId"]), text(&observation["id"])),
                kept,
            );
        }
    }
    truth
}

async fn every_langfuse_export_imports_what_langfuse_holds(backend: Backend) {
    let store = Store::new(backend);
    let truth = langfuse_truth();
    assert_eq!(truth.len(), 49);
    let details: Vec<PathBuf> = std::fs::read_dir(peer("langfuse/api"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| path_str(p).contains("GET_api_public_traces_"))
        .collect();
    let v2_pages: Vec<PathBuf> = (1..=3)
        .map(|n| {
            peer(&format!(
                "langfuse/api/GET_api_public_v2_observations.page-{n}.json"
            ))
        })
        .collect();
    let blob = peer("langfuse/blob-storage/c7e17dx0gpkeozx9hoaeviles");
    let exports: [(&str, Vec<PathBuf>, bool); 3] = [
        ("api-traces", details, true),
        ("api-v2-observations", v2_pages, false),
        // The whole blob export: trace rows say why they give no span, the score rows (read
        // after the observations) land on the stored observations.
        ("blob-storage", vec![blob], true),
    ];
    for (name, inputs, with_scores) in exports {
        let summary = store.import(name, &inputs, &[]);
        assert_eq!(summary["rejected"], 0, "{name}: {summary}");
        let spans = store.spans(name);
        assert_eq!((spans.len(), trace_count(&spans)), (49, 14), "{name}");
        assert_no_orphans(name, &spans);
        for (key, span) in &spans {
            let mut actual = kept(span);
            let expected = &truth[key];
            if expected.cost.is_null() {
                actual.cost = Value::Null;
            }
            // The blob's times have microseconds, the API's milliseconds.
            actual.start -= actual.start % 1_000_000;
            actual.end -= actual.end % 1_000_000;
            assert_eq!(&actual, expected, "{name}: span {key:?}");
        }
        assert_eq!(
            scores(&spans).len(),
            if with_scores { 8 } else { 0 },
            "{name}"
        );
    }
    let blob = store.spans("blob-storage");
    let root = &blob[&(
        "0e20000c167e4bfa9609d68689f78623".to_owned(),
        "2b9d3c2a320b37d5".to_owned(),
    )];
    assert_eq!(
        span_start(root),
        1_796_404_814_537_972_000,
        "zone-less text with µs"
    );
    assert_eq!(
        root["metadata"]["tags"],
        serde_json::json!(["rag", "returns"])
    );
    let generation = store
        .spans("api-traces")
        .into_values()
        .find(|s| s["model"] == "claude-3-5-haiku-20241022")
        .unwrap();
    assert_eq!(generation["log_type"], "generation");

    // The UI's traces-table export has one row per trace and nothing else: each row is one
    // span standing for its trace, with the trace's scores; its JSON, JSONL and CSV are the same.
    let ui_dir = peer("langfuse/ui-batch-export");
    for extension in ["json", "jsonl"] {
        let input = std::fs::read_dir(&ui_dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == extension))
            .unwrap();
        let summary = store.import("ui-export", &[input], &[]);
        assert_eq!(summary["imported"], 14, "{extension}: {summary}");
    }
    let traces = store.spans("ui-export");
    assert_eq!((traces.len(), trace_count(&traces)), (14, 14));
    assert_eq!(scores(&traces).len(), 8);
    for ((trace, _), span) in &traces {
        let root = truth
            .iter()
            .find(|((t, _), kept)| t == trace && kept.parent.is_null())
            .map(|(_, kept)| kept)
            .unwrap();
        assert_eq!(
            (&span["customer_identifier"], &span["thread_identifier"]),
            (&root.customer, &root.thread),
            "{trace}"
        );
        assert_eq!(span_start(span), root.start, "{trace}");
    }
    // Its CSV writes every non-text value as JSON text: the same rows, the same spans.
    let csv = std::fs::read_dir(&ui_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "csv"))
        .unwrap();
    let summary = store.import("ui-export-csv", &[csv], &[]);
    assert_eq!(summary["imported"], 14, "csv: {summary}");
    assert_eq!(
        store.spans("ui-export-csv"),
        traces,
        "the CSV export imports as its JSON does"
    );
}

async fn a_second_import_changes_nothing(backend: Backend) {
    let store = Store::new(backend);
    for (project, input) in [
        ("phoenix", peer("phoenix/rest/spans")),
        ("mlflow", peer("mlflow/traces.json")),
        (
            "langfuse",
            peer("langfuse/blob-storage/c7e17dx0gpkeozx9hoaeviles/observations_v2"),
        ),
    ] {
        store.import(project, std::slice::from_ref(&input), &[]);
        let first = store.spans(project);
        let summary = store.import(project, &[input], &[]);
        assert_eq!(summary["imported"], 49, "{project}: {summary}");
        assert_eq!(
            store.spans(project),
            first,
            "{project}: the second import changed spans"
        );
    }
}

on_every_store!(
    every_phoenix_export_imports_what_phoenix_holds,
    every_mlflow_export_imports_what_mlflow_holds,
    every_langfuse_export_imports_what_langfuse_holds,
    a_second_import_changes_nothing,
);

fn dry_run(inputs: &[&Path], extra: &[&str]) -> Value {
    let mut args = vec!["import", "--dry-run", "--json", "--quiet"];
    args.extend_from_slice(extra);
    args.extend(inputs.iter().map(|p| path_str(p)));
    stdout_json(&run(&args))
}

#[test]
fn dry_runs_say_per_tool_what_was_mapped_kept_and_dropped() {
    let report = dry_run(&[&peer("phoenix/rest/spans")], &[]);
    let phoenix = &report["sources"]["phoenix"];
    assert_eq!(
        (phoenix["records"].as_u64(), phoenix["spans"].as_u64()),
        (Some(49), Some(49)),
        "{report}"
    );
    assert_eq!(
        phoenix["mapped"]["llm.model_name -> model"], 20,
        "{phoenix}"
    );
    assert_eq!(
        phoenix["mapped"]["session.id -> session_identifier"], 40,
        "{phoenix}"
    );
    assert_eq!(
        phoenix["metadata"]["attributes.llm.invocation_parameters"], 21,
        "{phoenix}"
    );
    assert_eq!(
        phoenix["dropped"]["id: Phoenix's row id (a Relay global id), not the span id"],
        49
    );
    assert_eq!(
        (report["traces"].as_u64(), report["orphans"].as_u64()),
        (Some(14), Some(0))
    );

    let report = dry_run(&[&peer("langfuse/blob-storage")], &[]);
    let langfuse = &report["sources"]["langfuse"];
    assert_eq!(langfuse["records"], 49 + 49 + 14 + 8 + 1, "{langfuse}");
    let dropped = langfuse["dropped"].as_object().unwrap();
    assert_eq!(
        dropped["trace: a trace row without observations: its spans are in the observation exports"],
        14
    );
    assert_eq!(
        langfuse["mapped"]["score -> scores of the stored observation (or trace root)"], 8,
        "{langfuse}"
    );

    let report = dry_run(&[&peer("mlflow/traces")], &["--from", "mlflow"]);
    assert_eq!(
        report["sources"]["mlflow"]["mapped"]["assessments -> scores"], 8,
        "{report}"
    );
    // The dry run writes nothing and needs no store.
}

#[test]
fn the_collector_file_exporter_imports_plain_and_compressed() {
    let dir = tempfile::tempdir().unwrap();
    let plain = std::fs::read(peer("otel-collector-file/traces.jsonl")).unwrap();
    let compressed = dir.path().join("traces.jsonl.gz");
    std::fs::write(&compressed, gzip(&plain)).unwrap();
    for input in [peer("otel-collector-file/traces.jsonl"), compressed] {
        let report = dry_run(&[&input], &["--from", "otlp"]);
        assert_eq!(
            (report["spans"].as_u64(), report["traces"].as_u64()),
            (Some(49), Some(14)),
            "{report}"
        );
        assert_eq!(report["orphans"], 0);
    }
}

#[test]
fn broken_and_hostile_inputs_are_rejected_by_file_and_position() {
    let dir = tempfile::tempdir().unwrap();
    // A Parquet file cut in half has no footer.
    let parquet = std::fs::read(peer("phoenix/spans_dataframe.parquet")).unwrap();
    let cut = dir.path().join("cut.parquet");
    std::fs::write(&cut, &parquet[..parquet.len() / 2]).unwrap();
    // A Phoenix span with a time of the wrong type between two good ones.
    let lines: Vec<String> = std::fs::read_to_string(peer("phoenix/spans_dataframe.jsonl"))
        .unwrap()
        .lines()
        .take(3)
        .map(str::to_owned)
        .collect();
    let mut bad: Value = serde_json::from_str(&lines[1]).unwrap();
    bad["start_time"] = Value::Bool(true);
    let mixed = dir.path().join("mixed.jsonl");
    std::fs::write(
        &mixed,
        format!(
            "{}\n{}\n{}\n{{\"context.span_id\": 7\n",
            lines[0], bad, lines[2]
        ),
    )
    .unwrap();
    let data_dir = dir.path().join("data");
    let rejects = dir.path().join("rejects.jsonl");
    let output = run(&[
        "import",
        "--quiet",
        "--json",
        "--from",
        "phoenix",
        "--data-dir",
        path_str(&data_dir),
        "--rejects",
        path_str(&rejects),
        path_str(&cut),
        path_str(&mixed),
    ]);
    assert_eq!(
        output.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary = stdout_json(&output);
    assert_eq!(
        summary["imported"], 2,
        "the good lines around the bad one land: {summary}"
    );
    let rejected: Vec<Value> = std::fs::read_to_string(&rejects)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(rejected.len(), 3, "{rejected:?}");
    assert_eq!(rejected[0]["file"], path_str(&cut));
    assert!(
        text(&rejected[0]["reason"]).contains("not a readable Parquet file"),
        "{}",
        rejected[0]
    );
    assert_eq!(
        (rejected[1]["file"].as_str(), rejected[1]["line"].as_u64()),
        (Some(path_str(&mixed)), Some(2))
    );
    assert_eq!(rejected[1]["field"], "start_time", "{}", rejected[1]);
    assert!(
        text(&rejected[1]["reason"]).contains("a time must be text or a number"),
        "{}",
        rejected[1]
    );
    assert_eq!(rejected[2]["line"], 4);
    assert!(
        text(&rejected[2]["reason"]).starts_with("not valid JSON"),
        "{}",
        rejected[2]
    );

    // An unknown --from is refused before anything is read, naming the choices.
    let output = run(&["import", "--from", "honeycomb", path_str(&mixed)]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("honeycomb") && stderr.contains("phoenix, mlflow, langfuse"),
        "{stderr}"
    );
}

/// The UI download's 49 spans `copies` times, each copy its own 14 traces (the first 8 hex
/// digits of the trace id replaced by the copy's number).
fn write_many_phoenix_spans(path: &Path, copies: usize) {
    use std::io::Write;
    let dir = peer("phoenix/ui-download");
    let source = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .unwrap();
    let lines: Vec<String> = std::fs::read_to_string(source)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    const KEY: &str = "\"trace_id\":\"";
    for copy in 0..copies {
        for line in &lines {
            let at = line.find(KEY).unwrap() + KEY.len();
            writeln!(out, "{}{copy:08x}{}", &line[..at], &line[at + 8..]).unwrap();
        }
    }
    out.flush().unwrap();
}

/// A large peer import killed part way and run again finishes from its checkpoint with every
/// span once, and peer decoding adds no memory of its own: its peak is no higher than the
/// span-log import of the very same spans.
#[test]
fn a_large_peer_import_resumes_after_kill_with_the_memory_of_a_span_log_import() {
    let copies = 600; // 29,400 spans, about 72 MB
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("many.jsonl");
    write_many_phoenix_spans(&file, copies);
    let spans = (copies * 49) as u64;
    let data_dir = dir.path().join("data");

    let (first_peak, peak) =
        import_killed_then_resumed(&data_dir, &file, spans, std::time::Duration::from_secs(3));

    // The same spans as span logs, through the path whose memory is known to be flat.
    let exported = dir.path().join("exported.jsonl");
    export_to(&data_dir, "jsonl", &exported);
    let again = dir.path().join("again");
    let span_log_peak = import_peak(&again, &exported);
    let limit = span_log_peak + span_log_peak / 4;
    assert!(
        first_peak <= limit && peak <= limit,
        "peer import peaks {first_peak} KiB and {peak} KiB, span logs {span_log_peak} KiB"
    );
}

#[tokio::test]
async fn peer_exports_import_through_a_running_server() {
    let server = TestServer::start().await;
    let (base, key) = (server.base.clone(), server.key.clone());
    let inputs = [
        peer("phoenix/rest/spans"),
        peer("mlflow/traces.json"),
        peer("phoenix/rest/span_annotations.json"),
    ];
    let output = tokio::task::spawn_blocking(move || {
        let mut args = vec!["import", "--quiet", "--json", "--url", &base, "--key", &key];
        args.extend(inputs.iter().map(|p| path_str(p)));
        run(&args)
    })
    .await
    .unwrap();
    let summary = stdout_json(&output);
    assert_eq!(
        (summary["imported"].as_u64(), summary["rejected"].as_u64()),
        (Some(98), Some(4)),
        "{summary}"
    );
    // A score alone needs its stored span: refused by item, with the reason.
    assert!(
        text(&summary["first_reject"]).contains("applied to a local store only"),
        "{summary}"
    );
    let phoenix = server.trace("d3509d06a0c338eee1d9622c2319bc59").await;
    assert_eq!(phoenix["span_count"], 3, "{phoenix}");
    let mlflow = server.trace("7fcde9c7fc21ee86f914d1d9891968a8").await;
    assert_eq!(mlflow["span_count"], 3, "{mlflow}");
    assert_eq!(mlflow["total_prompt_tokens"], 864, "{mlflow}");
}

/// Annotations Phoenix lists apart from their spans (REST listings, the annotations dataframe)
/// land on the stored spans, trace annotations on the trace's root; before their spans are
/// stored they are rejects naming the span, and a server target refuses them by item.
#[test]
fn scores_listed_apart_land_on_the_stored_spans() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let annotations = [
        peer("phoenix/rest/span_annotations.json"),
        peer("phoenix/rest/trace_annotations.json"),
    ];
    let import = |inputs: &[PathBuf]| {
        let mut args = vec![
            "import",
            "--quiet",
            "--json",
            "--data-dir",
            path_str(&data_dir),
        ];
        args.extend(inputs.iter().map(|p| path_str(p)));
        run(&args)
    };
    let early = import(&annotations);
    assert_eq!(early.status.code(), Some(2));
    let summary = stdout_json(&early);
    assert_eq!(
        (
            summary["rejected"].as_u64(),
            summary["scores_applied"].as_u64()
        ),
        (Some(8), Some(0)),
        "{summary}"
    );
    assert!(
        text(&summary["first_reject"])
            .contains("span fc289cd00f9da4c5 is not stored; import its spans first"),
        "{summary}"
    );

    let mut inputs = vec![peer("phoenix/rest/spans")];
    inputs.extend(annotations);
    inputs.push(peer("phoenix/span_annotations_dataframe.jsonl"));
    let summary = stdout_json(&import(&inputs));
    assert_eq!(
        (summary["imported"].as_u64(), summary["rejected"].as_u64()),
        (Some(49), Some(0)),
        "{summary}"
    );
    assert_eq!(
        summary["scores_applied"], 12,
        "4 span and 4 trace annotations, 4 span ones again"
    );
    let output = run(&["export", "--quiet", "--data-dir", path_str(&data_dir)]);
    let spans: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let scored: BTreeMap<(String, String), Value> = spans
        .iter()
        .flat_map(|span| {
            span["scores"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(name, score)| ((text(&span["span_unique_id"]), name.clone()), score.clone()))
        })
        .collect();
    assert_eq!(scored.len(), 8, "{scored:?}");
    // A trace annotation is its root's score.
    let summary_quality = &scored[&("dc53bb7a4c8325fa".to_owned(), "summary_quality".to_owned())];
    assert_eq!(summary_quality["numerical_value"], 0.9);
    assert_eq!(summary_quality["string_value"], "good");
    assert_eq!(summary_quality["source"], "LLM");
    assert_eq!(
        summary_quality["explanation"],
        "Captures symptom, steps tried and the customer's request."
    );
    let correctness = &scored[&("07d98d5ea96802a5".to_owned(), "correctness".to_owned())];
    assert_eq!(
        (
            correctness["numerical_value"].as_f64(),
            correctness["source"].as_str()
        ),
        (Some(1.0), Some("CODE"))
    );
}
