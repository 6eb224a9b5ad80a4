//! Any bytes as an OTLP protobuf body: decoding answers Ok or Err, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracehouse_core::{IngestContext, PriceTable, Timestamp};
use tracehouse_ingest::otlp::{OtlpEncoding, decode_otlp};

fuzz_target!(|body: &[u8]| {
    let prices = PriceTable::builtin();
    let context = IngestContext {
        received_at: Timestamp::from_unix_nanos(1_750_000_000_000_000_000),
        prices: &prices,
    };
    let _ = decode_otlp(body, OtlpEncoding::Protobuf, context);
});
