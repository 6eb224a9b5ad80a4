//! The configured redaction rules, applied to a request's spans after decoding and before
//! `write_spans`, so no store, index, read, export or log line ever holds the raw values.

use std::sync::Arc;

use tracehouse_core::{ProjectName, Span};
use tracehouse_ingest::redact::RuleSet;

use crate::AppState;
use crate::error::ApiError;
use crate::guard::Metrics;

/// One request's redaction: its project's compiled rules (none when the server has no rules
/// file) and the metrics that count what they did. Cheap to clone into a blocking task.
#[derive(Clone)]
pub(crate) struct SpanRedactor {
    rules: Option<Arc<RuleSet>>,
    metrics: Arc<Metrics>,
}

impl SpanRedactor {
    /// The rules of `project`.
    pub(crate) fn for_project(state: &AppState, project: &ProjectName) -> Self {
        Self {
            rules: state
                .redaction
                .as_ref()
                .map(|redaction| Arc::clone(redaction.rules_for(project)))
                .filter(|rules| !rules.is_empty()),
            metrics: Arc::clone(&state.guard.metrics),
        }
    }

    /// Redacts spans in place. Scanning every string takes time in proportion to the batch, so
    /// callers run it where decoding runs: on a blocking thread.
    pub(crate) fn apply(&self, spans: &mut [Span]) {
        if let Some(rules) = &self.rules {
            let counts = rules.redact_spans(spans);
            self.metrics.redacted(&counts);
        }
    }

    /// Redacts spans on a blocking thread (for handlers that have no decoding task to share).
    pub(crate) async fn apply_off_runtime(
        &self,
        mut spans: Vec<Span>,
    ) -> Result<Vec<Span>, ApiError> {
        if self.rules.is_none() {
            return Ok(spans);
        }
        let redactor = self.clone();
        tokio::task::spawn_blocking(move || {
            redactor.apply(&mut spans);
            spans
        })
        .await
        .map_err(|join| ApiError::Internal(format!("redaction task failed: {join}")))
    }
}
