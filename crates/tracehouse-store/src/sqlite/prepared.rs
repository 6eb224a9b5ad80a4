//! Work on a request's spans that needs no database: done on the request's thread before the
//! spans join the write queue, so the single writer thread only writes.
//!
//! Under ingest load the writer is the bottleneck and the request threads have a core to
//! spare. Serializing and compressing content, cutting search text, flattening metadata,
//! summing the rollup deltas and freeing the spans afterwards all happen here; done by the
//! writer itself they took more than a tenth of its time.

use std::sync::Arc;

use serde_json::{Map, Value};
use tracehouse_core::groups::{ingested_profiles, llm_ttft};
use tracehouse_core::{ProjectId, Span};

use super::SqliteError;
use super::content::StoredContent;
use super::rollup::{RollupDeltas, RollupFacts};
use crate::indexing::{MetadataScalar, index_entries, searchable};

/// What the writer stores for one span besides its columns.
pub(crate) struct PreparedSpan {
    /// The span's content as stored.
    pub(crate) content: StoredContent,
    /// Text indexed for search: the input (or prompt messages) and the output (or completion).
    pub(crate) search_input: String,
    pub(crate) search_output: String,
    /// Flattened metadata, for the metadata index.
    pub(crate) metadata: Vec<(String, MetadataScalar)>,
    /// A model call's time to first token (`spans.ttft`).
    pub(crate) ttft: Option<f64>,
}

impl PreparedSpan {
    fn new(span: &Span) -> Result<Self, SqliteError> {
        // Chat spans from OTLP carry their text in messages rather than input/output; index
        // the messages then, so search finds what a user sees in the conversation view.
        let input = span
            .content
            .get("input")
            .or_else(|| span.content.get("prompt_messages"));
        let output = span
            .content
            .get("output")
            .or_else(|| span.content.get("completion_message"))
            .or_else(|| span.content.get("completion_messages"));
        Ok(Self {
            content: StoredContent::encode(serde_json::to_string(&span.content)?)?,
            search_input: searchable(input),
            search_output: searchable(output),
            metadata: distinct(index_entries(&span.content)),
            ttft: llm_ttft(span),
        })
    }
}

/// Metadata entries without repeats (an array holding one value twice), so a span has at most
/// one row per key and value and a list driven by the metadata index lists it once.
fn distinct(mut entries: Vec<(String, MetadataScalar)>) -> Vec<(String, MetadataScalar)> {
    let mut seen = std::collections::HashSet::new();
    entries.retain(|(key, value)| {
        let value = match value {
            MetadataScalar::Text(text) => (false, text.clone()),
            MetadataScalar::Number(number) => (true, number.to_bits().to_string()),
        };
        seen.insert((key.clone(), value))
    });
    entries
}

fn json_fields(fields: Map<String, Value>) -> Result<Vec<(String, String)>, SqliteError> {
    fields
        .into_iter()
        .map(|(name, value)| Ok((name, serde_json::to_string(&value)?)))
        .collect()
}

/// A request's spans with their prepared parts, index for index.
///
/// Shared between the request and the writer: the request holds the last reference once the
/// writer has answered, so the spans are freed on the request's thread, not the writer's.
pub(crate) struct PreparedBatch {
    pub(crate) spans: Vec<Span>,
    pub(crate) prepared: Vec<PreparedSpan>,
    /// What the spans add to the metrics rollups, summed per rollup row (the writer subtracts
    /// what the spans they replace had added).
    pub(crate) rollup: RollupDeltas,
    /// The profile fields the spans send for their customers (`customer_params`), merged per
    /// customer in span order, with each value as JSON text.
    pub(crate) profiles: Vec<(String, Vec<(String, String)>)>,
}

impl PreparedBatch {
    pub(crate) fn new(project: ProjectId, spans: Vec<Span>) -> Result<Arc<Self>, SqliteError> {
        let prepared = spans
            .iter()
            .map(PreparedSpan::new)
            .collect::<Result<_, _>>()?;
        let mut rollup = RollupDeltas::default();
        for span in &spans {
            rollup.add(project, &RollupFacts::from_span(span), 1);
        }
        let profiles = ingested_profiles(&spans)
            .into_iter()
            .map(|(customer, fields)| Ok((customer, json_fields(fields)?)))
            .collect::<Result<_, SqliteError>>()?;
        Ok(Arc::new(Self {
            spans,
            prepared,
            rollup,
            profiles,
        }))
    }

    /// Each span with its prepared parts.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Span, &PreparedSpan)> {
        self.spans.iter().zip(&self.prepared)
    }
}
