//! Turning batches of raw items into what the target takes: validated spans for the local store
//! (and the dry run), a request body for a server. Validation is the ingest decoders' (and so
//! `span_from_log`'s), exactly as the server's routes run it.

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;
use tracehouse_core::{IngestContext, PriceTable, Span, Timestamp};
use tracehouse_ingest::otlp::{OtlpEncoding, decode_otlp};
use tracehouse_ingest::peer::{MappingReport, PeerSource, ScorePatch, decode_record, detect};
use tracehouse_ingest::redact::RuleSet;
use tracehouse_ingest::spanlog::decode_span_logs;

use super::checkpoint::Position;
use super::inputs::FileFormat;
use crate::cli::ImportSource;

/// Largest item text copied into a reject record.
const MAX_REJECT_TEXT: usize = 1024 * 1024;

/// One item as read from an input.
#[derive(Debug)]
pub(super) struct RawItem {
    pub(super) bytes: Vec<u8>,
    /// 1-based line the item starts on.
    pub(super) line: u64,
    /// 0-based position among the input's items.
    pub(super) index: u64,
}

/// Items read from one input, in order.
#[derive(Debug)]
pub(super) struct RawBatch {
    /// Batches are numbered from 0 in the order read, which is the order they commit in.
    pub(super) seq: u64,
    pub(super) file: usize,
    pub(super) format: FileFormat,
    pub(super) items: Vec<RawItem>,
    /// What the reader already knows is not an item (truncated input, garbage).
    pub(super) rejects: Vec<Reject>,
    /// Where the next batch starts.
    pub(super) end: Position,
    /// Decompressed input bytes this batch covers.
    pub(super) bytes: u64,
}

/// One rejected item, as written to the rejects file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(super) struct Reject {
    pub(super) file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) line: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) index: Option<u64>,
    /// For OTLP input: the span's position inside the request at `index`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) span_index: Option<u64>,
    pub(super) field: String,
    pub(super) reason: String,
    pub(super) item: Value,
}

/// Where an item sent to a server came from, to place the server's rejections.
#[derive(Debug, Clone, Copy)]
pub(super) struct ItemRef {
    pub(super) line: u64,
    pub(super) index: u64,
    pub(super) span_index: Option<u64>,
}

/// What a batch became.
#[derive(Debug)]
pub(super) enum Payload {
    /// Validated spans, for the local store or the dry run.
    Spans(Vec<Span>),
    /// A span-log request body (a JSON array) and the origin of each of its elements.
    Body { body: Bytes, refs: Vec<ItemRef> },
}

/// A batch, decoded.
#[derive(Debug)]
pub(super) struct DecodedBatch {
    pub(super) seq: u64,
    /// The input's display name.
    pub(super) file_name: String,
    pub(super) end: Position,
    pub(super) bytes: u64,
    /// Items read: span logs, or OTLP spans (plus requests that could not be read at all).
    pub(super) items: u64,
    pub(super) payload: Payload,
    pub(super) rejects: Vec<Reject>,
    /// For a peer tool's export: the tool, the records read, and what their fields became.
    pub(super) mapping: Option<(PeerSource, u64, MappingReport)>,
    /// Scores a peer export lists apart from their spans, for spans already stored, and the
    /// item each came from.
    pub(super) scores: Vec<(ItemRef, ScorePatch)>,
}

/// The item as JSON when it is JSON, else its text (cut at 1 MiB).
pub(super) fn item_value(bytes: &[u8]) -> Value {
    match serde_json::from_slice(bytes) {
        Ok(value) => value,
        Err(_) => {
            let cut = bytes.len().min(MAX_REJECT_TEXT);
            Value::String(String::from_utf8_lossy(&bytes[..cut]).into_owned())
        }
    }
}

/// The span at `index` of an OTLP JSON request, counted across resource and scope groups as
/// the decoder counts its rejections.
fn otlp_span_at(request: &[u8], index: u64) -> Value {
    let Ok(request) = serde_json::from_slice::<Value>(request) else {
        return Value::Null;
    };
    fn groups<'a>(value: &'a Value, camel: &str, snake: &str) -> &'a [Value] {
        value
            .get(camel)
            .or_else(|| value.get(snake))
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }
    groups(&request, "resourceSpans", "resource_spans")
        .iter()
        .flat_map(|resource| groups(resource, "scopeSpans", "scope_spans"))
        .flat_map(|scope| groups(scope, "spans", "spans"))
        .nth(usize::try_from(index).unwrap_or(usize::MAX))
        .cloned()
        .unwrap_or(Value::Null)
}

fn join_array<'a>(items: impl Iterator<Item = &'a [u8]>, capacity: usize) -> Vec<u8> {
    let mut body = Vec::with_capacity(capacity + 2);
    body.push(b'[');
    for (position, item) in items.enumerate() {
        if position > 0 {
            body.push(b',');
        }
        body.extend_from_slice(item);
    }
    body.push(b']');
    body
}

fn is_one_json_value(bytes: &[u8]) -> Result<(), serde_json::Error> {
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes).map(|_| ())
}

/// Spans decoded from a batch's items, where each came from, and how many spans were read.
#[derive(Default)]
struct Placed {
    spans: Vec<Span>,
    refs: Vec<ItemRef>,
    read: u64,
    scores: Vec<(ItemRef, ScorePatch)>,
}

/// Where decoded spans go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Target {
    /// The local store or the dry run: validate here.
    Spans,
    /// A server: send span logs as they are (it validates), convert OTLP here.
    Http,
}

/// Decodes batches; one per decoding thread.
pub(super) struct Decoder {
    pub(super) target: Target,
    /// The receive time of spans without any time: the start of the import.
    pub(super) received_at: Timestamp,
    pub(super) prices: PriceTable,
    /// Display names of the inputs, by index.
    pub(super) names: std::sync::Arc<Vec<String>>,
    /// `--redact`: rules applied to validated spans before they reach the store (a server
    /// target applies its own rules).
    pub(super) redaction: Option<std::sync::Arc<RuleSet>>,
    /// `--from`: the tool the inputs come from.
    pub(super) from: ImportSource,
}

impl Decoder {
    fn context(&self) -> IngestContext<'_> {
        IngestContext {
            received_at: self.received_at,
            prices: &self.prices,
        }
    }

    fn reject(
        &self,
        file: usize,
        at: ItemRef,
        field: String,
        reason: String,
        item: Value,
    ) -> Reject {
        Reject {
            file: self.names.get(file).cloned().unwrap_or_default(),
            line: Some(at.line),
            index: Some(at.index),
            span_index: at.span_index,
            field,
            reason,
            item,
        }
    }

    pub(super) fn decode(&self, batch: RawBatch) -> DecodedBatch {
        let RawBatch {
            seq,
            file,
            format,
            items,
            mut rejects,
            end,
            bytes,
        } = batch;
        let mut count = (items.len() + rejects.len()) as u64;
        let mut mapping = None;
        let mut scores = Vec::new();
        let mut payload = match (self.peer_source(format, &items), format, self.target) {
            (Some(source), _, _) => {
                let (placed, report) = self.peer(source, file, &items, &mut rejects);
                count = count - items.len() as u64 + placed.read;
                mapping = Some((source, items.len() as u64, report));
                scores = placed.scores;
                if self.target == Target::Http {
                    // The span-log route takes whole spans; a score alone needs the stored
                    // span, which only a local store gives.
                    for (at, _) in scores.drain(..) {
                        rejects.push(self.reject(
                            file,
                            at,
                            String::new(),
                            "a score listed apart from its span is applied to a local store only; import it with --data-dir or --store".to_owned(),
                            Value::Null,
                        ));
                    }
                }
                self.spans_payload(placed.spans, placed.refs, file, &mut rejects)
            }
            (
                None,
                FileFormat::Json | FileFormat::Jsonl | FileFormat::Parquet | FileFormat::Csv,
                Target::Spans,
            ) => Payload::Spans(self.span_logs(file, &items, &mut rejects)),
            (
                None,
                FileFormat::Json | FileFormat::Jsonl | FileFormat::Parquet | FileFormat::Csv,
                Target::Http,
            ) => self.span_log_body(file, &items, &mut rejects),
            (None, FileFormat::OtlpJson, _) => {
                let (spans, refs, spans_read) = self.otlp(file, &items, &mut rejects);
                count = count - items.len() as u64 + spans_read;
                self.spans_payload(spans, refs, file, &mut rejects)
            }
        };
        if let (Payload::Spans(spans), Some(rules)) = (&mut payload, &self.redaction) {
            rules.redact_spans(spans);
        }
        DecodedBatch {
            seq,
            file_name: self.names.get(file).cloned().unwrap_or_default(),
            end,
            bytes,
            items: count,
            payload,
            rejects,
            mapping,
            scores,
        }
    }

    /// The peer tool a batch comes from: `--from`'s, or with `auto` the one whose records look
    /// like the batch's first JSON item (an input holds one tool's export).
    fn peer_source(&self, format: FileFormat, items: &[RawItem]) -> Option<PeerSource> {
        match self.from {
            ImportSource::Phoenix => Some(PeerSource::Phoenix),
            ImportSource::Mlflow => Some(PeerSource::Mlflow),
            ImportSource::Langfuse => Some(PeerSource::Langfuse),
            ImportSource::Otlp | ImportSource::SpanLog => None,
            ImportSource::Auto => {
                let first = items
                    .iter()
                    .find_map(|item| serde_json::from_slice::<Value>(&item.bytes).ok())?;
                // Canonical OTLP requests keep the OTLP path, whatever else they hold.
                if format == FileFormat::OtlpJson && first.get("resourceSpans").is_some() {
                    return None;
                }
                detect(&first)
            }
        }
    }

    /// Validated spans for the local store, or for a server the span logs the read API shows
    /// for them (which validate back to the same spans there).
    fn spans_payload(
        &self,
        spans: Vec<Span>,
        refs: Vec<ItemRef>,
        file: usize,
        rejects: &mut Vec<Reject>,
    ) -> Payload {
        if self.target == Target::Spans {
            return Payload::Spans(spans);
        }
        let mut body = Vec::with_capacity(spans.len() * 1024 + 2);
        body.push(b'[');
        let mut kept = Vec::with_capacity(refs.len());
        for (span, at) in spans.iter().zip(refs) {
            let start = body.len();
            if !kept.is_empty() {
                body.push(b',');
            }
            let json = tracehouse_server::span_to_json(span);
            match serde_json::to_writer(&mut body, &json) {
                Ok(()) => kept.push(at),
                Err(error) => {
                    body.truncate(start);
                    rejects.push(self.reject(
                        file,
                        at,
                        String::new(),
                        format!("cannot write the span as JSON: {error}"),
                        Value::Null,
                    ));
                }
            }
        }
        body.push(b']');
        Payload::Body {
            body: Bytes::from(body),
            refs: kept,
        }
    }

    /// Records of a peer tool's export through its ingest mapper: the spans, where each came
    /// from (the record, and the span's position among the record's spans), how many spans
    /// were read, and the mapping report.
    fn peer(
        &self,
        source: PeerSource,
        file: usize,
        items: &[RawItem],
        rejects: &mut Vec<Reject>,
    ) -> (Placed, MappingReport) {
        let mut placed = Placed::default();
        let mut report = MappingReport::default();
        for item in items {
            let decoded = serde_json::from_slice::<Value>(&item.bytes)
                .map_err(|error| format!("not valid JSON: {error}"))
                .and_then(|record| {
                    decode_record(source, record, self.context()).map_err(|e| e.to_string())
                });
            let decoded = match decoded {
                Ok(decoded) => decoded,
                Err(reason) => {
                    rejects.push(self.reject(
                        file,
                        Self::at(item),
                        String::new(),
                        reason,
                        item_value(&item.bytes),
                    ));
                    continue;
                }
            };
            report.merge(&decoded.report);
            let at = Self::at(item);
            placed
                .scores
                .extend(decoded.scores.into_iter().map(|patch| (at, patch)));
            self.place(file, item, decoded.decoded, &mut placed, rejects, |_| {
                item_value(&item.bytes)
            });
        }
        (placed, report)
    }

    fn at(item: &RawItem) -> ItemRef {
        ItemRef {
            line: item.line,
            index: item.index,
            span_index: None,
        }
    }

    /// Validates span logs through the span-log decoder, the whole batch as one body. When some
    /// item is not JSON (the body then is not either), those items are rejected on their own and
    /// the others decoded together.
    fn span_logs(&self, file: usize, items: &[RawItem], rejects: &mut Vec<Reject>) -> Vec<Span> {
        let size: usize = items.iter().map(|item| item.bytes.len() + 1).sum();
        let body = join_array(items.iter().map(|item| item.bytes.as_slice()), size);
        if let Ok(decoded) = decode_span_logs(&body, self.context()) {
            // An item such as `1, 2` keeps the body valid but shifts every index after it.
            if decoded.spans.len() + decoded.rejected.len() == items.len() {
                for rejection in decoded.rejected {
                    let item = &items[rejection.index];
                    rejects.push(self.reject(
                        file,
                        Self::at(item),
                        rejection.field,
                        rejection.error,
                        item_value(&item.bytes),
                    ));
                }
                return decoded.spans;
            }
        }
        let mut good: Vec<&RawItem> = Vec::with_capacity(items.len());
        for item in items {
            match is_one_json_value(&item.bytes) {
                Ok(()) => good.push(item),
                Err(error) => rejects.push(self.reject(
                    file,
                    Self::at(item),
                    String::new(),
                    format!("not valid JSON: {error}"),
                    item_value(&item.bytes),
                )),
            }
        }
        let body = join_array(good.iter().map(|item| item.bytes.as_slice()), size);
        match decode_span_logs(&body, self.context()) {
            Ok(decoded) => {
                for rejection in decoded.rejected {
                    let item = good[rejection.index];
                    rejects.push(self.reject(
                        file,
                        Self::at(item),
                        rejection.field,
                        rejection.error,
                        item_value(&item.bytes),
                    ));
                }
                decoded.spans
            }
            Err(error) => {
                for item in good {
                    rejects.push(self.reject(
                        file,
                        Self::at(item),
                        String::new(),
                        error.to_string(),
                        item_value(&item.bytes),
                    ));
                }
                Vec::new()
            }
        }
    }

    /// A span-log body for a server: the items exactly as read, minus those that are not JSON
    /// (which would make the server refuse the whole body).
    fn span_log_body(&self, file: usize, items: &[RawItem], rejects: &mut Vec<Reject>) -> Payload {
        let mut refs = Vec::with_capacity(items.len());
        let mut good: Vec<&[u8]> = Vec::with_capacity(items.len());
        for item in items {
            match is_one_json_value(&item.bytes) {
                Ok(()) => {
                    good.push(&item.bytes);
                    refs.push(Self::at(item));
                }
                Err(error) => rejects.push(self.reject(
                    file,
                    Self::at(item),
                    String::new(),
                    format!("not valid JSON: {error}"),
                    item_value(&item.bytes),
                )),
            }
        }
        let size: usize = good.iter().map(|item| item.len() + 1).sum();
        Payload::Body {
            body: Bytes::from(join_array(good.into_iter(), size)),
            refs,
        }
    }

    /// OTLP JSON requests through the OTLP decoder: the spans, where each came from, and how
    /// many spans were read (valid or not).
    fn otlp(
        &self,
        file: usize,
        items: &[RawItem],
        rejects: &mut Vec<Reject>,
    ) -> (Vec<Span>, Vec<ItemRef>, u64) {
        let mut placed = Placed::default();
        for item in items {
            match decode_otlp(&item.bytes, OtlpEncoding::Json, self.context()) {
                Ok(decoded) => self.place(file, item, decoded, &mut placed, rejects, |index| {
                    otlp_span_at(&item.bytes, index)
                }),
                Err(error) => {
                    placed.read += 1;
                    rejects.push(self.reject(
                        file,
                        Self::at(item),
                        String::new(),
                        error.to_string(),
                        item_value(&item.bytes),
                    ));
                }
            }
        }
        (placed.spans, placed.refs, placed.read)
    }

    /// Adds what one item decoded to: each valid span keeps its position among all the spans
    /// of the item, each rejection names it (`rejected_item` gives what the rejects file shows).
    fn place(
        &self,
        file: usize,
        item: &RawItem,
        decoded: tracehouse_ingest::Decoded,
        placed: &mut Placed,
        rejects: &mut Vec<Reject>,
        rejected_item: impl Fn(u64) -> Value,
    ) {
        placed.read += (decoded.spans.len() + decoded.rejected.len()) as u64;
        let rejected: std::collections::HashSet<usize> =
            decoded.rejected.iter().map(|r| r.index).collect();
        let positions = (0..).filter(|position| !rejected.contains(position));
        let at = |position: u64| ItemRef {
            line: item.line,
            index: item.index,
            span_index: Some(position),
        };
        for (span, position) in decoded.spans.into_iter().zip(positions) {
            placed.spans.push(span);
            placed.refs.push(at(position as u64));
        }
        for rejection in decoded.rejected {
            let position = rejection.index as u64;
            rejects.push(self.reject(
                file,
                at(position),
                rejection.field,
                rejection.error,
                rejected_item(position),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn decoder(target: Target) -> Decoder {
        Decoder {
            target,
            received_at: Timestamp::from_unix_nanos(1_700_000_000_000_000_000),
            prices: PriceTable::builtin(),
            names: std::sync::Arc::new(vec!["in.jsonl".to_owned()]),
            redaction: None,
            from: ImportSource::Auto,
        }
    }

    fn batch(format: FileFormat, lines: &[&str]) -> RawBatch {
        RawBatch {
            seq: 0,
            file: 0,
            format,
            items: lines
                .iter()
                .enumerate()
                .map(|(index, text)| RawItem {
                    bytes: text.as_bytes().to_vec(),
                    line: index as u64 + 1,
                    index: index as u64,
                })
                .collect(),
            rejects: Vec::new(),
            end: Position::start_of(1),
            bytes: 0,
        }
    }

    fn places(rejects: &[Reject]) -> Vec<(Option<u64>, Option<u64>, String)> {
        rejects
            .iter()
            .map(|r| (r.line, r.span_index, r.field.clone()))
            .collect()
    }

    #[test]
    fn span_logs_are_validated_and_bad_items_placed() {
        let lines = [
            r#"{"trace_unique_id": "t", "span_unique_id": "a"}"#,
            r#"{"trace_unique_id": "t"}"#,
            r#"{"trace_unique_id": "t", "span_unique_id": "b",,}"#,
            r#"1, 2"#,
            r#"{"trace_unique_id": "t", "span_unique_id": "c", "cost": "x"}"#,
            r#"{"trace_unique_id": "t", "span_unique_id": "d"}"#,
        ];
        let decoded = decoder(Target::Spans).decode(batch(FileFormat::Jsonl, &lines));
        let Payload::Spans(spans) = &decoded.payload else {
            panic!("spans expected");
        };
        let ids: Vec<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
        assert_eq!(ids, ["a", "d"]);
        assert_eq!(decoded.items, 6);
        let mut found = places(&decoded.rejects);
        found.sort();
        assert_eq!(
            found,
            vec![
                (Some(2), None, "span_unique_id".to_owned()),
                (Some(3), None, String::new()),
                (Some(4), None, String::new()),
                (Some(5), None, "cost".to_owned()),
            ]
        );
        let cost = decoded.rejects.iter().find(|r| r.field == "cost").unwrap();
        assert_eq!(cost.item["span_unique_id"], "c");
        let broken = decoded.rejects.iter().find(|r| r.line == Some(3)).unwrap();
        assert_eq!(broken.item, json!(lines[2]));
        assert!(broken.reason.starts_with("not valid JSON"), "{broken:?}");
    }

    #[test]
    fn server_bodies_keep_items_as_read() {
        let lines = [
            r#"{"trace_unique_id": "t", "span_unique_id": "a", "x": 1.50}"#,
            r#"{"broken"#,
            r#"{"trace_unique_id": "t"}"#,
        ];
        let decoded = decoder(Target::Http).decode(batch(FileFormat::Jsonl, &lines));
        let Payload::Body { body, refs } = &decoded.payload else {
            panic!("body expected");
        };
        assert_eq!(
            std::str::from_utf8(body).unwrap(),
            format!("[{},{}]", lines[0], lines[2])
        );
        assert_eq!(refs.iter().map(|r| r.line).collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!(
            places(&decoded.rejects),
            vec![(Some(2), None, String::new())]
        );
    }

    #[test]
    fn otlp_requests_decode_with_span_positions() {
        let request = json!({"resourceSpans": [{"scopeSpans": [{"spans": [
            {"traceId": "0123456789abcdef0123456789abcdef", "spanId": "0123456789abcdef", "name": "a",
             "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000001000000000"},
            {"traceId": "0123456789abcdef0123456789abcdef", "spanId": "", "name": "bad"},
            {"traceId": "0123456789abcdef0123456789abcdef", "spanId": "1123456789abcdef", "name": "c"}
        ]}]}]})
        .to_string();
        let decoded =
            decoder(Target::Spans).decode(batch(FileFormat::OtlpJson, &[&request, "{nope"]));
        let Payload::Spans(spans) = &decoded.payload else {
            panic!("spans expected");
        };
        assert_eq!(spans.len(), 2);
        assert_eq!(decoded.items, 4);
        assert_eq!(
            places(&decoded.rejects),
            vec![
                (Some(1), Some(1), "span_unique_id".to_owned()),
                (Some(2), None, String::new())
            ]
        );
        assert_eq!(decoded.rejects[0].item["name"], "bad");

        let sent = decoder(Target::Http).decode(batch(FileFormat::OtlpJson, &[&request]));
        let Payload::Body { body, refs } = &sent.payload else {
            panic!("body expected");
        };
        let body: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(body[1]["span_name"], "c");
        assert_eq!(refs[1].span_index, Some(2));
    }
}
