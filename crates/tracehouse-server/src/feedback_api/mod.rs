//! What people add to stored logs after the fact: updates of a log's feedback fields.
//! The routes share paths with the read routes, which register them (see `read_api`).

pub(crate) mod updates;
