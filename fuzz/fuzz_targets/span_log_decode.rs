//! Any bytes as a span-log body: decoding answers Ok or Err, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracehouse_core::{IngestContext, PriceTable, Timestamp};

fuzz_target!(|body: &[u8]| {
    let prices = PriceTable::builtin();
    let context = IngestContext {
        received_at: Timestamp::from_unix_nanos(1_750_000_000_000_000_000),
        prices: &prices,
    };
    let _ = tracehouse_ingest::spanlog::decode_span_logs(body, context);
    let _ = tracehouse_ingest::compression::gunzip(body, 1 << 20);
});
