//! Property tests against plain reference models, and unit tests.

mod algorithms;
mod keyed;
mod misc;
mod model;
mod policy;

use proptest::test_runner::{Config, FileFailurePersistence};

/// ≥ 1,000 cases by default, `PROPTEST_CASES` for more; failures persisted
/// beside the sources in `regressions/`.
pub(crate) fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..Config::default()
    }
}
