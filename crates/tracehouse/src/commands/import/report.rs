//! What an import tells the user: the dry-run analysis of the input, and the final summary.
//!
//! The analysis keeps only hashes of ids and contents (about 30 bytes per distinct span), never
//! the spans, so it runs over inputs far larger than memory; the tree questions (orphans, parent
//! cycles, several roots) are answered at the end with the same rules as `build_tree`: a parent
//! that is the span itself makes a root, a parent not in the trace an orphan, and a span that
//! no root reaches sits on (or below) a parent cycle.

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;

use serde_json::{Value, json};
use tracehouse_core::{Span, Timestamp};
use tracehouse_ingest::peer::{MappingReport, PeerSource};

use super::decode::Reject;

/// Distinct models listed in a report; the rest are counted together.
const MAX_MODELS: usize = 1000;
/// Distinct rejection reasons listed in a report; the rest are counted together.
const MAX_REASONS: usize = 100;

const DONE: u32 = 1 << 31;
const ACTIVE: u32 = 1 << 30;
const FINGERPRINT_BITS: u32 = ACTIVE - 1;

/// One distinct span: its parent's key (0 for a root), its trace, and a content fingerprint
/// whose top two bits mark the cycle search's progress.
#[derive(Debug, Clone, Copy)]
struct Entry {
    parent: u64,
    trace: u32,
    mark: u32,
}

/// The key of a span id within its trace. `DefaultHasher::new()` is SipHash with fixed keys:
/// the same id always gives the same key, so parent references find their spans.
fn key(trace: &str, span: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    trace.hash(&mut hasher);
    span.hash(&mut hasher);
    hasher.finish().max(1)
}

struct HashWriter<'a>(&'a mut DefaultHasher);

impl Write for HashWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.write(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A hash of everything a span stores, to tell a repeated span from a conflicting one.
fn fingerprint(span: &Span) -> u32 {
    let mut hasher = DefaultHasher::new();
    span.parent_id.hash(&mut hasher);
    span.name.hash(&mut hasher);
    span.log_type.hash(&mut hasher);
    (span.start, span.end, span.times_inferred).hash(&mut hasher);
    span.latency.to_bits().hash(&mut hasher);
    (&span.model, &span.provider_id, &span.error_message).hash(&mut hasher);
    (span.status, span.status_code).hash(&mut hasher);
    let usage = span.usage;
    (
        usage.prompt_tokens,
        usage.completion_tokens,
        usage.total_tokens,
    )
        .hash(&mut hasher);
    span.cost.map(f64::to_bits).hash(&mut hasher);
    let grouping = &span.grouping;
    (
        &grouping.customer_identifier,
        &grouping.session_identifier,
        &grouping.thread_identifier,
        &grouping.trace_group_identifier,
        &grouping.environment,
    )
        .hash(&mut hasher);
    (&span.workflow_name, &span.path).hash(&mut hasher);
    let _ = serde_json::to_writer(HashWriter(&mut hasher), &span.content);
    (hasher.finish() as u32) & FINGERPRINT_BITS
}

/// A rejection reason without the values that vary item to item (quoted text, numbers), so
/// that equal problems count together.
fn reason_key(reject: &Reject) -> String {
    let mut out = String::new();
    if !reject.field.is_empty() {
        out.push_str(&reject.field);
        out.push_str(": ");
    }
    let mut in_quote = false;
    let mut last_digit = false;
    for character in reject.reason.chars() {
        if character == '"' {
            if !in_quote {
                out.push_str("\"…\"");
            }
            in_quote = !in_quote;
            last_digit = false;
            continue;
        }
        if in_quote {
            continue;
        }
        if character.is_ascii_digit() {
            if !last_digit {
                out.push('N');
            }
            last_digit = true;
            continue;
        }
        last_digit = false;
        out.push(character);
    }
    out
}

/// Counts `key` in `counts`, or in `others` once `counts` holds `cap` keys.
fn count_capped(counts: &mut BTreeMap<String, u64>, key: &str, cap: usize, others: &mut u64) {
    if let Some(count) = counts.get_mut(key) {
        *count += 1;
    } else if counts.len() < cap {
        counts.insert(key.to_owned(), 1);
    } else {
        *others += 1;
    }
}

/// The dry run's running analysis.
#[derive(Debug, Default)]
pub(super) struct Analysis {
    spans: HashMap<u64, Entry>,
    traces: HashMap<u64, u32>,
    valid: u64,
    duplicates_same: u64,
    duplicates_conflicting: u64,
    without_times: u64,
    earliest: Option<Timestamp>,
    latest: Option<Timestamp>,
    models: BTreeMap<String, u64>,
    other_models: u64,
    invalid: u64,
    reasons: BTreeMap<String, u64>,
    other_reasons: u64,
    /// Per peer tool: records read, spans they gave, and what their fields became.
    sources: BTreeMap<PeerSource, (u64, u64, MappingReport)>,
}

/// Tree findings, computed once at the end.
#[derive(Debug, Default, PartialEq, Eq)]
struct TreeFindings {
    orphans: u64,
    cycles: u64,
    spans_in_cycles: u64,
    traces_with_several_roots: u64,
}

impl Analysis {
    /// Counts a peer tool's batch: its records, the valid spans they gave, the field fates.
    pub(super) fn add_mapping(
        &mut self,
        source: PeerSource,
        records: u64,
        spans: u64,
        mapping: &MappingReport,
    ) {
        let entry = self.sources.entry(source).or_default();
        entry.0 += records;
        entry.1 += spans;
        entry.2.merge(mapping);
    }

    pub(super) fn add_span(&mut self, span: &Span) {
        self.valid += 1;
        let trace_count = self.traces.len() as u32;
        let trace = *self
            .traces
            .entry(key(span.trace_id.as_str(), ""))
            .or_insert(trace_count);
        let parent = match &span.parent_id {
            Some(parent) if *parent != span.span_id => key(span.trace_id.as_str(), parent.as_str()),
            _ => 0,
        };
        let entry = Entry {
            parent,
            trace,
            mark: fingerprint(span),
        };
        // The last copy of a span is the one stored, as `build_tree` and the store agree.
        if let Some(previous) = self
            .spans
            .insert(key(span.trace_id.as_str(), span.span_id.as_str()), entry)
        {
            if previous.mark == entry.mark {
                self.duplicates_same += 1;
            } else {
                self.duplicates_conflicting += 1;
            }
        }
        if span.times_inferred {
            self.without_times += 1;
        } else {
            self.earliest = Some(self.earliest.map_or(span.start, |t| t.min(span.start)));
            self.latest = Some(self.latest.map_or(span.end, |t| t.max(span.end)));
        }
        if let Some(model) = span.model.as_deref().filter(|m| !m.is_empty()) {
            count_capped(&mut self.models, model, MAX_MODELS, &mut self.other_models);
        }
    }

    pub(super) fn add_reject(&mut self, reject: &Reject) {
        self.invalid += 1;
        let reason = reason_key(reject);
        count_capped(
            &mut self.reasons,
            &reason,
            MAX_REASONS,
            &mut self.other_reasons,
        );
    }

    fn tree_findings(&mut self) -> TreeFindings {
        let mut findings = TreeFindings::default();
        let mut roots: HashMap<u32, u32> = HashMap::new();
        for entry in self.spans.values() {
            if entry.parent == 0 {
                *roots.entry(entry.trace).or_default() += 1;
            } else if !self.spans.contains_key(&entry.parent) {
                findings.orphans += 1;
            }
        }
        findings.traces_with_several_roots = roots.values().filter(|n| **n > 1).count() as u64;

        // Every span has at most one parent, so following parents from any span either ends
        // (a root, an orphan, a span already settled) or comes back to a span of this walk.
        let keys: Vec<u64> = self.spans.keys().copied().collect();
        let mut path = Vec::new();
        for start in keys {
            let mut current = start;
            while let Some(entry) = self.spans.get_mut(&current) {
                if entry.mark & DONE != 0 {
                    break;
                }
                if entry.mark & ACTIVE != 0 {
                    findings.cycles += 1;
                    let mut length = 1;
                    let mut next = entry.parent;
                    while next != current {
                        length += 1;
                        next = self.spans.get(&next).map_or(current, |e| e.parent);
                    }
                    findings.spans_in_cycles += length;
                    break;
                }
                entry.mark |= ACTIVE;
                path.push(current);
                if entry.parent == 0 {
                    break;
                }
                current = entry.parent;
            }
            for settled in path.drain(..) {
                if let Some(entry) = self.spans.get_mut(&settled) {
                    entry.mark = (entry.mark & !ACTIVE) | DONE;
                }
            }
        }
        findings
    }

    /// The dry-run report.
    pub(super) fn report(mut self, files: usize, items: u64, bytes: u64) -> Value {
        let tree = self.tree_findings();
        let mut models: serde_json::Map<String, Value> = self
            .models
            .iter()
            .map(|(model, count)| (model.clone(), json!(count)))
            .collect();
        if self.other_models > 0 {
            models.insert("(others)".to_owned(), json!(self.other_models));
        }
        let mut reasons: serde_json::Map<String, Value> = self
            .reasons
            .iter()
            .map(|(reason, count)| (reason.clone(), json!(count)))
            .collect();
        if self.other_reasons > 0 {
            reasons.insert("(others)".to_owned(), json!(self.other_reasons));
        }
        json!({
            "dry_run": true,
            "files": files,
            "bytes": bytes,
            "items": items,
            "spans": self.valid,
            "distinct_spans": self.spans.len(),
            "traces": self.traces.len(),
            "time_range": {
                "start": self.earliest.map(Timestamp::to_rfc3339),
                "end": self.latest.map(Timestamp::to_rfc3339),
            },
            "spans_without_times": self.without_times,
            "models": models,
            "invalid": {"total": self.invalid, "by_reason": reasons},
            "duplicate_span_ids": {
                "total": self.duplicates_same + self.duplicates_conflicting,
                "same_content": self.duplicates_same,
                "conflicting_content": self.duplicates_conflicting,
            },
            "orphans": tree.orphans,
            "parent_cycles": tree.cycles,
            "spans_in_parent_cycles": tree.spans_in_cycles,
            "traces_with_multiple_roots": tree.traces_with_several_roots,
            "sources": self.sources_report(),
        })
    }

    /// Per peer tool: `records`, `spans`, and `mapped` (`source field -> span-log field`),
    /// `metadata` (kept as they were) and `dropped` (`field: why`), each counted.
    fn sources_report(&self) -> Value {
        let counts = |map: &BTreeMap<String, u64>| -> Value {
            map.iter()
                .map(|(key, count)| (key.clone(), json!(count)))
                .collect::<serde_json::Map<_, _>>()
                .into()
        };
        self.sources
            .iter()
            .map(|(source, (records, spans, mapping))| {
                let report = json!({
                    "records": records,
                    "spans": spans,
                    "mapped": counts(&mapping.mapped),
                    "metadata": counts(&mapping.metadata),
                    "dropped": counts(&mapping.dropped),
                });
                (source.name().to_owned(), report)
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    }
}

fn number(value: &Value) -> u64 {
    value.as_u64().unwrap_or(0)
}

/// The dry-run report as text.
pub(super) fn print_report(report: &Value) {
    let line = |label: &str, value: String| println!("  {label:<28} {value}");
    println!("dry run: nothing was written");
    line("files", report["files"].to_string());
    line("bytes read", report["bytes"].to_string());
    line("items read", report["items"].to_string());
    line("valid spans", report["spans"].to_string());
    line("traces", report["traces"].to_string());
    let range = &report["time_range"];
    line(
        "time range",
        match (range["start"].as_str(), range["end"].as_str()) {
            (Some(start), Some(end)) => format!("{start} .. {end}"),
            _ => "-".to_owned(),
        },
    );
    line(
        "spans without times",
        report["spans_without_times"].to_string(),
    );
    let models = report["models"].as_object();
    line(
        "models",
        match models.filter(|m| !m.is_empty()) {
            None => "-".to_owned(),
            Some(models) => models
                .iter()
                .map(|(model, count)| format!("{model} ({count})"))
                .collect::<Vec<_>>()
                .join(", "),
        },
    );
    line("invalid items", report["invalid"]["total"].to_string());
    if let Some(reasons) = report["invalid"]["by_reason"].as_object() {
        for (reason, count) in reasons {
            println!("    {count:>8}  {reason}");
        }
    }
    let duplicates = &report["duplicate_span_ids"];
    line(
        "duplicate span ids",
        format!(
            "{} ({} same content, {} conflicting)",
            number(&duplicates["total"]),
            number(&duplicates["same_content"]),
            number(&duplicates["conflicting_content"])
        ),
    );
    line("orphans (parent never seen)", report["orphans"].to_string());
    line(
        "parent cycles",
        format!(
            "{} ({} spans on them)",
            number(&report["parent_cycles"]),
            number(&report["spans_in_parent_cycles"])
        ),
    );
    line(
        "traces with several roots",
        report["traces_with_multiple_roots"].to_string(),
    );
    for (source, mapping) in report["sources"].as_object().into_iter().flatten() {
        println!(
            "{source}: {} records gave {} spans",
            number(&mapping["records"]),
            number(&mapping["spans"])
        );
        for (title, key) in [
            ("mapped", "mapped"),
            ("kept in metadata", "metadata"),
            ("dropped", "dropped"),
        ] {
            let Some(fields) = mapping[key].as_object().filter(|f| !f.is_empty()) else {
                continue;
            };
            println!("  {title}:");
            for (field, count) in fields {
                println!("    {count:>8}  {field}");
            }
        }
    }
}

/// The final summary of an import as text: imported, rejected, time, rates.
pub(super) fn print_summary(summary: &Value) {
    let imported = number(&summary["imported"]);
    let rejected = number(&summary["rejected"]);
    let seconds = summary["seconds"].as_f64().unwrap_or(0.0);
    let mut text = format!(
        "imported {imported} spans from {} input(s) in {seconds:.1} s ({:.0} spans/s, {:.1} MB/s)",
        number(&summary["files"]),
        summary["spans_per_second"].as_f64().unwrap_or(0.0),
        summary["megabytes_per_second"].as_f64().unwrap_or(0.0),
    );
    if let Some(earlier) = summary["resumed_after"].as_u64() {
        text.push_str(&format!(
            "; resumed from a checkpoint ({earlier} spans were imported before)"
        ));
    }
    println!("{text}");
    if rejected > 0 {
        match summary["rejects_file"].as_str() {
            Some(file) => println!("rejected {rejected} items: see {file}"),
            None => println!(
                "rejected {rejected} items (pass --rejects FILE to keep them); first: {}",
                summary["first_reject"].as_str().unwrap_or("")
            ),
        }
    } else {
        println!("rejected 0 items");
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tracehouse_core::testing::span;

    use super::*;

    #[test]
    fn finds_duplicates_orphans_cycles_and_several_roots() {
        let mut analysis = Analysis::default();
        let spans = [
            span("t1", "root", None, json!({"model": "gpt-4o"})),
            span("t1", "child", Some("root"), json!({})),
            span("t1", "child", Some("root"), json!({})),
            span("t1", "lost", Some("never"), json!({})),
            span("t2", "a", Some("b"), json!({})),
            span("t2", "b", Some("c"), json!({})),
            span("t2", "c", Some("a"), json!({})),
            span("t2", "below", Some("a"), json!({})),
            span("t2", "self", Some("self"), json!({})),
            span("t3", "r1", None, json!({})),
            span("t3", "r2", None, json!({"input": "x"})),
            span("t3", "r2", None, json!({"input": "y"})),
            // The same span id in another trace is another span.
            span("t4", "root", Some("root"), json!({})),
        ];
        for span in &spans {
            analysis.add_span(span);
        }
        let report = analysis.report(1, 13, 0);
        assert_eq!(report["spans"], 13);
        assert_eq!(report["distinct_spans"], 11);
        assert_eq!(report["traces"], 4);
        assert_eq!(report["duplicate_span_ids"]["same_content"], 1);
        assert_eq!(report["duplicate_span_ids"]["conflicting_content"], 1);
        assert_eq!(report["orphans"], 1);
        assert_eq!(report["parent_cycles"], 1);
        assert_eq!(report["spans_in_parent_cycles"], 3);
        // t3 has r1 and r2; t2's only root is `self`.
        assert_eq!(report["traces_with_multiple_roots"], 1);
        assert_eq!(report["models"], json!({"gpt-4o": 1}));
        assert_eq!(report["time_range"]["start"], "2025-01-01T00:00:00Z");
    }

    #[test]
    fn reasons_group_without_their_values() {
        let reject = |field: &str, reason: &str| Reject {
            file: String::new(),
            line: None,
            index: None,
            span_index: None,
            field: field.to_owned(),
            reason: reason.to_owned(),
            item: Value::Null,
        };
        let mut analysis = Analysis::default();
        analysis.add_reject(&reject(
            "start_time",
            "\"last tuesday\" is not an ISO-8601 time or epoch number",
        ));
        analysis.add_reject(&reject(
            "start_time",
            "\"yesterday\" is not an ISO-8601 time or epoch number",
        ));
        analysis.add_reject(&reject("", "not valid JSON: EOF at line 1 column 12"));
        let report = analysis.report(1, 3, 0);
        assert_eq!(
            report["invalid"]["by_reason"],
            json!({
                "not valid JSON: EOF at line N column N": 1,
                "start_time: \"…\" is not an ISO-N time or epoch number": 2,
            })
        );
    }
}
