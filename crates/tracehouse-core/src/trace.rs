//! Trace assembly: the span tree of a trace and the aggregates that summarize it.

use std::borrow::Borrow;
use std::collections::HashMap;

use crate::ids::{SpanId, TraceId};
use crate::span::Span;
use crate::time::Timestamp;
use crate::trace_state::{RootInfo, SpanFacts, TraceState, root_of};

/// One node of a span tree: an index into the spans it was built from, and its children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeNode {
    /// Index of the span in the slice given to [`build_tree`].
    pub span: usize,
    /// True when the span names a parent that is not in the trace (or that is part of a
    /// parent cycle); it is shown as a root rather than hidden.
    pub orphan: bool,
    /// Child nodes, ordered by start time then span id.
    pub children: Vec<TreeNode>,
}

/// Builds the span tree of one trace.
///
/// Roots are spans without a parent, spans that are their own parent, and orphans (parent
/// never arrived). Spans caught in a parent cycle are unreachable from any root; the earliest
/// of each cycle is promoted to an orphan root so every span appears exactly once and the
/// read never loops. If a span id occurs more than once, the last occurrence wins.
///
/// Takes spans or references to them, so a caller holding scattered spans need not copy them.
pub fn build_tree<S: Borrow<Span>>(spans: &[S]) -> Vec<TreeNode> {
    let spans: Vec<&Span> = spans.iter().map(Borrow::borrow).collect();
    let mut index_of: HashMap<&SpanId, usize> = HashMap::with_capacity(spans.len());
    for (index, span) in spans.iter().enumerate() {
        index_of.insert(&span.span_id, index);
    }
    let live: Vec<usize> = {
        let mut live: Vec<usize> = index_of.values().copied().collect();
        live.sort_by(|a, b| order_key(spans[*a]).cmp(&order_key(spans[*b])));
        live
    };

    let mut children: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
    let mut roots: Vec<(usize, bool)> = Vec::new();
    for &index in &live {
        let span = spans[index];
        match span
            .parent_id
            .as_ref()
            .filter(|parent| **parent != span.span_id)
        {
            None => roots.push((index, false)),
            Some(parent) => match index_of.get(parent) {
                Some(&parent_index) => children[parent_index].push(index),
                None => roots.push((index, true)),
            },
        }
    }

    // Whatever is not reachable from a root sits on a parent cycle (or hangs below one).
    let mut reached = vec![false; spans.len()];
    let mut stack: Vec<usize> = roots.iter().map(|(index, _)| *index).collect();
    mark_reachable(&mut stack, &children, &mut reached);
    for &index in &live {
        if !reached[index] {
            // Cut the cycle at this span: drop it from its parent's child list and make it a root.
            if let Some(parent) = spans[index]
                .parent_id
                .as_ref()
                .and_then(|p| index_of.get(p))
            {
                children[*parent].retain(|child| *child != index);
            }
            roots.push((index, true));
            stack.push(index);
            mark_reachable(&mut stack, &children, &mut reached);
        }
    }
    roots.sort_by(|a, b| order_key(spans[a.0]).cmp(&order_key(spans[b.0])));

    // Build nodes bottom-up with an explicit stack so a 100k-deep chain cannot overflow ours.
    let mut built: Vec<Option<TreeNode>> = vec![None; spans.len()];
    let mut orphan_of = vec![false; spans.len()];
    for (index, orphan) in &roots {
        orphan_of[*index] = *orphan;
    }
    let mut work: Vec<(usize, bool)> = roots.iter().map(|(index, _)| (*index, false)).collect();
    while let Some((index, expanded)) = work.pop() {
        if expanded {
            let kids = children[index]
                .iter()
                .filter_map(|child| built[*child].take())
                .collect();
            built[index] = Some(TreeNode {
                span: index,
                orphan: orphan_of[index],
                children: kids,
            });
        } else {
            work.push((index, true));
            work.extend(children[index].iter().map(|child| (*child, false)));
        }
    }
    roots
        .iter()
        .filter_map(|(index, _)| built[*index].take())
        .collect()
}

impl Drop for TreeNode {
    // Children are dropped from an explicit stack: a parent chain of any depth must not
    // overflow the thread's stack when a trace is thrown away.
    fn drop(&mut self) {
        let mut stack = std::mem::take(&mut self.children);
        while let Some(mut node) = stack.pop() {
            stack.append(&mut node.children);
        }
    }
}

fn order_key(span: &Span) -> (Timestamp, &str) {
    (span.start, span.span_id.as_str())
}

fn mark_reachable(stack: &mut Vec<usize>, children: &[Vec<usize>], reached: &mut [bool]) {
    while let Some(index) = stack.pop() {
        if !reached[index] {
            reached[index] = true;
            stack.extend(children[index].iter().copied());
        }
    }
}

/// The aggregates of one trace, as listed and as shown on top of its tree.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceSummary {
    /// The trace.
    pub trace_id: TraceId,
    /// The root span (the earliest parentless span, else the earliest orphan).
    pub root_span_id: Option<SpanId>,
    /// The root span's name (or its `trace_name` when it sent one).
    pub name: String,
    /// Earliest span start.
    pub start: Timestamp,
    /// Latest span end.
    pub end: Timestamp,
    /// `end - start` in seconds.
    pub duration: f64,
    /// Number of spans.
    pub span_count: u64,
    /// Number of model calls (see [`crate::span::LogType::is_llm_call`]).
    pub llm_call_count: u64,
    /// Number of spans with error status.
    pub error_count: u64,
    /// Number of spans still running (status `running`).
    pub running_count: u64,
    /// Sum of prompt tokens.
    pub total_prompt_tokens: u64,
    /// Sum of completion tokens.
    pub total_completion_tokens: u64,
    /// Sum of total tokens.
    pub total_tokens: u64,
    /// Sum of costs in USD.
    pub total_cost: f64,
    /// The root's value, else the first span's (by start) that has one.
    pub environment: Option<String>,
    /// Same rule as `environment`.
    pub customer_identifier: Option<String>,
    /// Same rule as `environment`.
    pub session_identifier: Option<String>,
    /// Same rule as `environment`.
    pub thread_identifier: Option<String>,
    /// Same rule as `environment`.
    pub trace_group_identifier: Option<String>,
    /// Distinct models of the trace's spans, sorted.
    pub models: Vec<String>,
}

/// Computes a trace's aggregates from its spans; `None` for no spans.
///
/// This is the single definition of every aggregate: the fold of [`TraceState`] over the spans'
/// facts, with the root chosen by [`root_of`]. Stores keep the same fold incrementally on write,
/// so listing reads stored values, and tests call this to know what to expect.
pub fn summarize<S: Borrow<Span>>(spans: &[S]) -> Option<TraceSummary> {
    let first = spans.first()?.borrow();
    let mut state = TraceState::from_facts(spans.iter().map(|span| SpanFacts::of(span.borrow())));
    state.set_root(root_of(spans).map(RootInfo::of));
    state.summary(&first.trace_id)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::span::SpanStatus;

    fn span(id: &str, parent: Option<&str>, start_second: u32) -> Span {
        crate::testing::span(
            "t",
            id,
            parent,
            json!({"span_name": format!("{id}.task"),
                "start_time": format!("2025-01-01T00:00:{start_second:02}Z")}),
        )
    }

    /// Renders a tree as `id(child,child)` with `!` marking orphans, for compact assertions.
    fn render(spans: &[Span], nodes: &[TreeNode]) -> String {
        nodes
            .iter()
            .map(|node| {
                let mut out = spans[node.span].span_id.to_string();
                if node.orphan {
                    out.push('!');
                }
                if !node.children.is_empty() {
                    out.push_str(&format!("({})", render(spans, &node.children)));
                }
                out
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    #[test]
    fn builds_tree_from_spans_in_any_order() {
        let spans = vec![
            span("c2", Some("b"), 3),
            span("c1", Some("b"), 2),
            span("b", Some("a"), 1),
            span("a", None, 0),
        ];
        assert_eq!(render(&spans, &build_tree(&spans)), "a(b(c1,c2))");
    }

    #[test]
    fn orphans_become_flagged_roots() {
        let spans = vec![
            span("a", None, 0),
            span("x", Some("missing"), 1),
            span("y", Some("x"), 2),
        ];
        assert_eq!(render(&spans, &build_tree(&spans)), "a,x!(y)");
    }

    #[test]
    fn parent_cycles_are_cut_not_followed() {
        let spans = vec![
            span("a", Some("b"), 0),
            span("b", Some("a"), 1),
            span("c", Some("b"), 2),
            span("self", Some("self"), 3),
        ];
        assert_eq!(render(&spans, &build_tree(&spans)), "a!(b(c)),self");
    }

    #[test]
    fn duplicate_span_ids_keep_the_last() {
        let mut later = span("b", Some("a"), 5);
        later.name = "replaced".to_owned();
        let spans = vec![span("a", None, 0), span("b", Some("a"), 1), later];
        let tree = build_tree(&spans);
        assert_eq!(render(&spans, &tree), "a(b)");
        assert_eq!(spans[tree[0].children[0].span].name, "replaced");
    }

    #[test]
    fn deep_chains_do_not_overflow() {
        let template = span("0", None, 0);
        let mut spans = vec![template.clone()];
        for depth in 1..50_000 {
            let mut next = template.clone();
            next.span_id = SpanId::try_from(depth.to_string()).unwrap();
            next.parent_id = Some(SpanId::try_from((depth - 1).to_string()).unwrap());
            spans.push(next);
        }
        let tree = build_tree(&spans);
        assert_eq!(tree.len(), 1);
        let summary = summarize(&spans).unwrap();
        assert_eq!(summary.span_count, 50_000);
        drop(tree);
    }

    #[test]
    fn summary_aggregates_times_counts_and_root() {
        let mut chat = span("c", Some("a"), 1);
        chat.log_type = crate::span::LogType::new("chat");
        chat.usage.prompt_tokens = Some(10);
        chat.usage.completion_tokens = Some(5);
        chat.usage.total_tokens = Some(15);
        chat.cost = Some(0.25);
        chat.status = SpanStatus::Error;
        chat.grouping.customer_identifier = Some("acme".to_owned());
        let spans = vec![chat, span("a", None, 0), span("late", Some("a"), 9)];
        let summary = summarize(&spans).unwrap();
        assert_eq!(summary.root_span_id.as_ref().map(SpanId::as_str), Some("a"));
        assert_eq!(summary.name, "a.task");
        assert_eq!(summary.start.to_rfc3339(), "2025-01-01T00:00:00Z");
        assert_eq!(summary.end.to_rfc3339(), "2025-01-01T00:00:10Z");
        assert!((summary.duration - 10.0).abs() < 1e-9);
        assert_eq!(
            (
                summary.span_count,
                summary.llm_call_count,
                summary.error_count
            ),
            (3, 1, 1)
        );
        assert_eq!(
            (
                summary.total_prompt_tokens,
                summary.total_completion_tokens,
                summary.total_tokens
            ),
            (10, 5, 15)
        );
        assert!((summary.total_cost - 0.25).abs() < 1e-12);
        assert_eq!(summary.customer_identifier.as_deref(), Some("acme"));
        assert_eq!(summarize::<Span>(&[]), None);
    }

    #[test]
    fn spans_without_times_do_not_stretch_the_trace() {
        let mut untimed = span("root", None, 0);
        untimed.times_inferred = true;
        untimed.start = Timestamp::from_unix_nanos(i64::MAX / 2);
        untimed.end = untimed.start;
        let spans = vec![untimed, span("child", Some("root"), 3)];
        let summary = summarize(&spans).unwrap();
        assert_eq!(summary.start.to_rfc3339(), "2025-01-01T00:00:03Z");
        assert_eq!(summary.end.to_rfc3339(), "2025-01-01T00:00:04Z");
        assert_eq!(summary.name, "root.task");
    }
}
