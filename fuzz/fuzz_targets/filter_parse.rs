//! Any JSON as a `filters` object of the list routes: parsing answers Ok or Err, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracehouse_core::query::{SpanFilter, TraceQuery, parse_span_filters, parse_trace_filters};

fuzz_target!(|body: &[u8]| {
    let Ok(filters) = serde_json::from_slice::<serde_json::Value>(body) else {
        return;
    };
    let _ = parse_span_filters(&filters, &mut SpanFilter::default());
    let _ = parse_trace_filters(&filters, &mut TraceQuery::default());
});
