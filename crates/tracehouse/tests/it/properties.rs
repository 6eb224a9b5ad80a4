//! Property tests: decoders and the filter parser never panic on any input, and any valid span
//! log survives decode → store → read, and read → JSON → decode, unchanged.

use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use tracehouse_core::query::{SpanFilter, TraceQuery, parse_span_filters, parse_trace_filters};
use tracehouse_core::{
    IngestContext, PriceTable, ProjectName, SpanStore, Timestamp, span_from_log,
};
use tracehouse_ingest::compression::gunzip;
use tracehouse_ingest::otlp::{OtlpEncoding, decode_otlp};
use tracehouse_ingest::spanlog::decode_span_logs;
use tracehouse_store::{SqliteConfig, SqliteStore};

use crate::util::fixture_bytes;

fn context(prices: &PriceTable) -> IngestContext<'_> {
    IngestContext {
        received_at: Timestamp::from_unix_nanos(1_750_000_000_000_000_000),
        prices,
    }
}

fn run_every_decoder(bytes: &[u8]) {
    let prices = PriceTable::builtin();
    let _ = decode_span_logs(bytes, context(&prices));
    let _ = decode_otlp(bytes, OtlpEncoding::Json, context(&prices));
    let _ = decode_otlp(bytes, OtlpEncoding::Protobuf, context(&prices));
    let _ = gunzip(bytes, 1 << 20);
}

/// A valid body with a few bytes changed, inserted or removed: most inputs a decoder meets in
/// the wild are near-misses, not noise.
fn mutated(base: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = base.len();
    proptest::collection::vec((0..len.max(1), any::<u8>(), 0u8..3), 1..8).prop_map(move |edits| {
        let mut bytes = base.clone();
        for (position, byte, kind) in edits {
            let position = position.min(bytes.len().saturating_sub(1));
            match kind {
                0 if !bytes.is_empty() => bytes[position] = byte,
                1 => bytes.insert(position, byte),
                _ if !bytes.is_empty() => {
                    bytes.remove(position);
                }
                _ => {}
            }
        }
        bytes
    })
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e12f64..1e12).prop_map(Value::from),
        "[a-z_]{0,12}".prop_map(Value::String),
        "\\PC{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("operator".to_owned()),
                    Just("value".to_owned()),
                    Just("model".to_owned()),
                    Just("cost".to_owned()),
                    Just("start_time".to_owned()),
                    Just("metadata__user".to_owned()),
                    Just("total_cost".to_owned()),
                    "[a-z_]{1,10}"
                ],
                inner,
                0..5
            )
            .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn decoders_never_panic_on_noise(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        run_every_decoder(&bytes);
    }

    #[test]
    fn decoders_never_panic_on_near_misses(
        span_log in mutated(fixture_bytes("respan-logs-sample.json")),
        otlp_json in mutated(fixture_bytes("otlp-json-sdk-capture.json")),
        protobuf in mutated(fixture_bytes("otlp-protobuf-sdk-capture.pb")),
    ) {
        run_every_decoder(&span_log);
        run_every_decoder(&otlp_json);
        run_every_decoder(&protobuf);
    }

    #[test]
    fn filter_parsers_never_panic(filters in json_value()) {
        let _ = parse_span_filters(&filters, &mut SpanFilter::default());
        let _ = parse_trace_filters(&filters, &mut TraceQuery::default());
    }
}

/// Text of any kind: ASCII, other scripts, emoji, quotes, backslashes, controls.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,40}",
        "\\PC{0,30}",
        Just("\"quoted\" \\ back\\slash\n\t\u{0}nul".to_owned()),
        Just("日本語 עברית 🚀 e\u{301}".to_owned()),
    ]
}

fn span_log() -> impl Strategy<Value = Value> {
    (
        "[A-Za-z0-9_.:-]{1,40}",
        "[A-Za-z0-9_.:-]{1,40}",
        any_text(),
        proptest::option::of(prop_oneof![
            Just("gpt-4o"),
            Just("claude-3-5-sonnet"),
            Just("my-model")
        ]),
        (0u32..5_000_000, 0u32..100_000),
        proptest::option::of(0.0f64..50.0),
        (
            1_600_000_000_000_000u64..1_900_000_000_000_000,
            0u64..600_000_000,
        ),
        proptest::collection::btree_map(
            "[a-z_]{1,12}",
            prop_oneof![
                any_text().prop_map(Value::String),
                any::<i64>().prop_map(Value::from),
                (-1e9f64..1e9).prop_map(Value::from),
                any::<bool>().prop_map(Value::Bool),
            ],
            0..5,
        ),
        any_text(),
        any::<bool>(),
    )
        .prop_map(
            |(
                trace,
                span,
                name,
                model,
                (prompt, completion),
                cost,
                (start_us, latency_us),
                metadata,
                input,
                error,
            )| {
                let mut item = json!({
                    "trace_unique_id": trace,
                    "span_unique_id": span,
                    "span_name": name,
                    "start_time": start_us as f64 / 1e6,
                    "latency": latency_us as f64 / 1e6,
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "metadata": Value::Object(metadata.into_iter().collect::<Map<_, _>>()),
                    "input": input,
                    "x_custom": {"kept": [1, "two", null]},
                });
                if let Some(model) = model {
                    item["model"] = json!(model);
                }
                if let Some(cost) = cost {
                    item["cost"] = json!(cost);
                }
                if error {
                    item["status"] = json!("error");
                    item["error_message"] = json!("boom");
                }
                item
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn valid_span_logs_survive_store_and_export_unchanged(items in proptest::collection::vec(span_log(), 1..6)) {
        let prices = PriceTable::builtin();
        // Span ids unique per project, so that a lookup by span id names one span.
        let spans: Vec<_> = items
            .into_iter()
            .enumerate()
            .map(|(index, mut item)| {
                item["span_unique_id"] = json!(format!("{}-{index}", item["span_unique_id"].as_str().unwrap_or("s")));
                span_from_log(item, context(&prices))
            })
            .collect::<Result<_, _>>()
            .map_err(|e| TestCaseError::fail(format!("generated span log rejected: {e:?}")))?;
        let mut expected = std::collections::BTreeMap::new();
        for span in &spans {
            expected.insert(span.span_id.clone(), span.clone());
        }
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let store: Arc<dyn SpanStore> = Arc::new(SqliteStore::open(SqliteConfig::in_data_dir(dir.path())).unwrap());
            let project = store.create_project(&ProjectName::default_project()).await.unwrap().id;
            store.write_spans(project, spans.clone()).await.unwrap();
            for (span_id, span) in &expected {
                let read = store.get_span(project, &span.trace_id, span_id).await.unwrap();
                prop_assert_eq!(read.as_ref(), Some(span));
                // What the read API and exports write decodes back to the same span.
                let rendered = Value::Object(tracehouse_server::span_to_json(span));
                let again = span_from_log(rendered, context(&prices)).unwrap();
                prop_assert_eq!(&again, span);
            }
            Ok(())
        })?;
    }
}
