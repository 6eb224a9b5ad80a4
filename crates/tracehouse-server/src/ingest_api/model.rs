//! Wire types of the ingest answers.

use serde::Serialize;
use tracehouse_ingest::Rejection;

/// One rejected item, as the client sees it.
#[derive(Debug, Serialize)]
pub(crate) struct RejectedItem {
    pub(crate) index: usize,
    pub(crate) field: String,
    pub(crate) error: String,
}

impl From<Rejection> for RejectedItem {
    fn from(rejection: Rejection) -> Self {
        Self {
            index: rejection.index,
            field: rejection.field,
            error: rejection.error,
        }
    }
}

/// The span-log ingest answer: 200 when all items were stored, 207 when some, 400 when none.
#[derive(Debug, Serialize)]
pub(crate) struct IngestResponse {
    pub(crate) message: String,
    pub(crate) accepted: usize,
    pub(crate) rejected: Vec<RejectedItem>,
}
