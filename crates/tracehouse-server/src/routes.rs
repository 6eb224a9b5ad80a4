//! Path spelling rules shared by every route.

/// Every spelling of a route that clients use: with and without the `/api` prefix, with and
/// without a trailing slash.
pub(crate) fn variants(path: &str) -> [String; 4] {
    [
        format!("/api{path}"),
        format!("/api{path}/"),
        path.to_owned(),
        format!("{path}/"),
    ]
}
