//! Request body decompression, bounded so a small gzip bomb cannot exhaust memory.

use std::io::Read;

use flate2::read::MultiGzDecoder;

use crate::DecodeError;

/// Inflates a gzip body, failing with [`DecodeError::TooLarge`] as soon as the output passes
/// `limit` bytes (the inflated data is never held beyond `limit + 1` bytes).
pub fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    let mut inflated = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    let read_limit = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    MultiGzDecoder::new(body)
        .take(read_limit)
        .read_to_end(&mut inflated)
        .map_err(DecodeError::BadGzip)?;
    if inflated.len() > limit {
        return Err(DecodeError::TooLarge { limit });
    }
    Ok(inflated)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn round_trips_and_enforces_the_limit() {
        let body = gzip(b"[1,2,3]");
        assert_eq!(gunzip(&body, 1024).unwrap(), b"[1,2,3]");
        let bomb = gzip(&vec![b' '; 10 * 1024 * 1024]);
        assert!(bomb.len() < 64 * 1024);
        assert!(matches!(
            gunzip(&bomb, 1024 * 1024),
            Err(DecodeError::TooLarge { limit: 1_048_576 })
        ));
    }

    #[test]
    fn rejects_bodies_that_are_not_gzip() {
        assert!(matches!(
            gunzip(b"[1,2,3]", 1024),
            Err(DecodeError::BadGzip(_))
        ));
        let mut truncated = gzip(b"[1,2,3,4,5,6,7,8,9]");
        truncated.truncate(truncated.len() - 6);
        assert!(matches!(
            gunzip(&truncated, 1024),
            Err(DecodeError::BadGzip(_))
        ));
    }
}
