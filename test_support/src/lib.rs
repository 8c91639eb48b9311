//! Helpers shared by the tests of every dispatchkit crate (a dev-dependency
//! only; not published).
#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]

#[cfg(feature = "redis")]
pub mod redis_server;

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// Property-test cases: `PROPTEST_CASES` from the environment, else
/// `default` (a long run sets it; the default keeps `cargo test` quick).
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Runs `f` on its own thread and panics if it has not returned within
/// `secs` seconds: a hang is a test failure, not a stuck test run.
pub fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(secs))
        .expect("the call did not return in time (hang)")
}

/// The error of a test double that is down ("store down").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Down;

impl std::fmt::Display for Down {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("store down")
    }
}

impl std::error::Error for Down {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_returns_and_cases_defaults() {
        assert_eq!(within(5, || 7), 7);
        if std::env::var_os("PROPTEST_CASES").is_none() {
            assert_eq!(cases(12), 12);
        }
    }

    #[test]
    #[should_panic(expected = "hang")]
    fn within_fails_a_hang() {
        within(0, || thread::sleep(Duration::from_millis(200)));
    }
}

/// SplitMix64 (Steele, Lea & Flood 2014): the seeded, reproducible stream
/// the tests draw their workloads from (`SplitMix64(seed)`).
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// In `0..n` (modulo bias below n / 2^64; `n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}
