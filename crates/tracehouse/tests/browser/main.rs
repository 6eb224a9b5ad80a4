//! Browser tests of the web trace viewer: the real server in-process, headless Chromium driven
//! over WebDriver (chromedriver), assertions on what the page shows.
//!
//! Run alone with `cargo test -p tracehouse --test browser`. Needs Debian's `chromium` and
//! `chromium-driver` (`scripts/browser-deps` installs them). Without chromedriver each browser
//! test prints a skip line and passes, except with `TRACEHOUSE_BROWSER_TESTS=required` (what
//! `scripts/test` sets) or `CI=true`, where that is a failure.
//! Screenshots of the list, trace and span views land in `target/ui-screenshots/`.
// Test helpers outside #[test] functions may panic on broken test setup; that is their job.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod conversations;
mod dashboard;
mod running;
mod scopes;
mod seed;
mod serving;
mod util;
mod viewer;
