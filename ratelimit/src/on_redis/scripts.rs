//! One Lua script per algorithm, and the decision built from what it
//! returns with the in-process algorithm's own code, so the numbers are
//! the same: GCRA (`gcra.lua`), and the window algorithms over a shared
//! prelude (`window_prelude.lua`; whole-millisecond windows aligned to the
//! Unix epoch).

use std::sync::OnceLock;
use std::time::Instant;

use crate::algorithm::{Algorithm, Plain};
use crate::decision::{Decision, Detail};
use crate::sliding_log::LogState;
use crate::{FixedWindow, Gcra, RateLimitError, SlidingCounter, SlidingLog};

/// An algorithm that runs on Redis (sealed): [`Gcra`], [`FixedWindow`],
/// [`SlidingCounter`], [`SlidingLog`].
pub trait RedisAlgorithm: Algorithm + sealed::Sealed {}

impl RedisAlgorithm for Gcra {}
impl RedisAlgorithm for FixedWindow {}
impl RedisAlgorithm for SlidingCounter {}
impl RedisAlgorithm for SlidingLog {}

pub(crate) mod sealed {
    use std::time::Instant;

    use crate::RateLimitError;
    use crate::decision::Decision;

    /// The script and the decision of one algorithm.
    pub trait Sealed {
        /// Whether the algorithm's parameters can run on Redis.
        fn check_redis(&self) -> Result<(), RateLimitError> {
            Ok(())
        }

        /// Runs one check on `key` (`now_ns`: `None` for the server's
        /// clock; `at`: the caller's instant for the decision).
        #[expect(
            clippy::too_many_arguments,
            reason = "one check's inputs: the connection, the key, the cost, the two times, the mode and the expiry margin"
        )]
        fn run(
            &self,
            con: &mut redis::Connection,
            key: &[u8],
            cost: u32,
            now_ns: Option<u64>,
            at: Instant,
            consume: bool,
            margin_ms: u64,
        ) -> redis::RedisResult<Result<Decision, RateLimitError>>;
    }
}

/// A script, built once.
fn script(cell: &'static OnceLock<redis::Script>, src: &'static str) -> &'static redis::Script {
    cell.get_or_init(|| redis::Script::new(src))
}

/// A script's decimal number.
fn num(s: &str) -> Result<u64, RateLimitError> {
    s.parse().map_err(|_| RateLimitError::Unavailable {
        backend: "redis",
        reason: format!("the script returned `{s}` where a number was expected"),
    })
}

fn now_arg(now_ns: Option<u64>) -> String {
    now_ns.map_or_else(String::new, |n| n.to_string())
}

/// What every decision shares.
fn decision(
    limit: u32,
    cost: u32,
    allowed: bool,
    now: &str,
    t_eff: &str,
    at: Instant,
    detail: Detail,
) -> Result<Decision, RateLimitError> {
    Ok(Decision {
        allowed,
        source: crate::decision::Source::State,
        limit,
        cost,
        now: num(now)?,
        at,
        t_eff: num(t_eff)?,
        detail,
    })
}

impl sealed::Sealed for Gcra {
    fn run(
        &self,
        con: &mut redis::Connection,
        key: &[u8],
        cost: u32,
        now_ns: Option<u64>,
        at: Instant,
        consume: bool,
        margin_ms: u64,
    ) -> redis::RedisResult<Result<Decision, RateLimitError>> {
        static S: OnceLock<redis::Script> = OnceLock::new();
        let (t, tau) = (self.interval_ns(), self.tolerance_ns());
        let (allowed, tat, t_eff, now): (u8, String, String, String) =
            script(&S, include_str!("gcra.lua"))
                .key(key)
                .arg(now_arg(now_ns))
                .arg(u64::from(cost) * t)
                .arg(tau + t)
                .arg(tau)
                .arg(u8::from(consume))
                .arg(margin_ms)
                .invoke(con)?;
        Ok(num(&tat).and_then(|tat| {
            decision(
                self.capacity(),
                cost,
                allowed == 1,
                &now,
                &t_eff,
                at,
                Detail::Gcra { tat, t, tau },
            )
        }))
    }
}

/// Largest `limit × window in ms` the window scripts compute exactly.
const EXACT: u128 = 1 << 53;

/// A window that runs on Redis: whole milliseconds, and `limit × window`
/// within Lua's exact integers.
fn check_window(quota: crate::Quota) -> Result<u64, RateLimitError> {
    let ns = quota.period_ns();
    if !ns.is_multiple_of(1_000_000) {
        return Err(RateLimitError::InvalidQuota {
            name: "period",
            value: u128::from(ns),
            reason: "a window on Redis is a whole number of milliseconds",
        });
    }
    let ms = ns / 1_000_000;
    if u128::from(ms) * u128::from(quota.limit()) >= EXACT {
        return Err(RateLimitError::InvalidQuota {
            name: "limit",
            value: u128::from(quota.limit()),
            reason: "limit × window in ms must stay below 2^53 on Redis",
        });
    }
    Ok(ms)
}

/// Runs a window script: `(now, W ms, limit, cost, consume, margin)`.
fn window_call(
    s: &'static redis::Script,
    keys: &[&[u8]],
    quota: crate::Quota,
    cost: u32,
    now_ns: Option<u64>,
    consume: bool,
    margin_ms: u64,
) -> redis::ScriptInvocation<'static> {
    let mut inv = s.prepare_invoke();
    for k in keys {
        inv.key(*k);
    }
    inv.arg(now_arg(now_ns))
        .arg(quota.period_ns() / 1_000_000)
        .arg(quota.limit())
        .arg(cost)
        .arg(u8::from(consume))
        .arg(margin_ms);
    inv
}

const PRELUDE: &str = include_str!("window_prelude.lua");

fn window_script(
    cell: &'static OnceLock<redis::Script>,
    body: &'static str,
) -> &'static redis::Script {
    cell.get_or_init(|| redis::Script::new(&format!("{PRELUDE}\n{body}")))
}

impl sealed::Sealed for FixedWindow {
    fn check_redis(&self) -> Result<(), RateLimitError> {
        check_window(self.quota()).map(drop)
    }

    fn run(
        &self,
        con: &mut redis::Connection,
        key: &[u8],
        cost: u32,
        now_ns: Option<u64>,
        at: Instant,
        consume: bool,
        margin_ms: u64,
    ) -> redis::RedisResult<Result<Decision, RateLimitError>> {
        static S: OnceLock<redis::Script> = OnceLock::new();
        let s = window_script(&S, include_str!("fixed_window.lua"));
        let (allowed, idx, count, t_eff, now): (u8, String, u32, String, String) =
            window_call(s, &[key], self.quota(), cost, now_ns, consume, margin_ms).invoke(con)?;
        let w = self.quota().period_ns();
        Ok(num(&idx).and_then(|idx| {
            let detail = Detail::Fixed {
                end: (idx + 1) * w,
                count,
            };
            decision(
                self.capacity(),
                cost,
                allowed == 1,
                &now,
                &t_eff,
                at,
                detail,
            )
        }))
    }
}

impl sealed::Sealed for SlidingCounter {
    fn check_redis(&self) -> Result<(), RateLimitError> {
        check_window(self.quota()).map(drop)
    }

    fn run(
        &self,
        con: &mut redis::Connection,
        key: &[u8],
        cost: u32,
        now_ns: Option<u64>,
        at: Instant,
        consume: bool,
        margin_ms: u64,
    ) -> redis::RedisResult<Result<Decision, RateLimitError>> {
        static S: OnceLock<redis::Script> = OnceLock::new();
        let s = window_script(&S, include_str!("sliding_counter.lua"));
        let (allowed, idx, prev, curr, t_eff, now): (u8, String, u32, u32, String, String) =
            window_call(s, &[key], self.quota(), cost, now_ns, consume, margin_ms).invoke(con)?;
        let window = self.quota().period_ns();
        Ok(num(&idx).and_then(|idx| {
            let detail = Detail::Counter {
                window,
                idx,
                prev,
                curr,
            };
            decision(
                self.capacity(),
                cost,
                allowed == 1,
                &now,
                &t_eff,
                at,
                detail,
            )
        }))
    }
}

impl sealed::Sealed for SlidingLog {
    fn check_redis(&self) -> Result<(), RateLimitError> {
        check_window(self.quota()).map(drop)
    }

    fn run(
        &self,
        con: &mut redis::Connection,
        key: &[u8],
        cost: u32,
        now_ns: Option<u64>,
        at: Instant,
        consume: bool,
        margin_ms: u64,
    ) -> redis::RedisResult<Result<Decision, RateLimitError>> {
        static S: OnceLock<redis::Script> = OnceLock::new();
        let s = window_script(&S, include_str!("sliding_log.lua"));
        let mut sums = key.to_vec();
        sums.extend_from_slice(b":sum");
        let reply: Vec<String> = window_call(
            s,
            &[key, &sums],
            self.quota(),
            cost,
            now_ns,
            consume,
            margin_ms,
        )
        .invoke(con)?;
        Ok(log_decision(self, &reply, cost, at))
    }
}

/// The sliding log's decision from `{allowed, t_eff, now, grants…}`.
fn log_decision(
    alg: &SlidingLog,
    reply: &[String],
    cost: u32,
    at: Instant,
) -> Result<Decision, RateLimitError> {
    let [allowed, t_eff, now, grants @ ..] = reply else {
        return Err(RateLimitError::Unavailable {
            backend: "redis",
            reason: format!(
                "the sliding-log script returned {} values, expected at least 3",
                reply.len()
            ),
        });
    };
    let entries = grants
        .iter()
        .map(|g| {
            let (t, units) = g.split_once(':').unwrap_or((g, ""));
            Ok((num(t)?, u32::try_from(num(units)?).unwrap_or(u32::MAX)))
        })
        .collect::<Result<Vec<_>, RateLimitError>>()?;
    let allowed = allowed == "1";
    let t = num(t_eff)?;
    let detail = alg.detail(&LogState::from_entries(entries), t, cost, allowed);
    decision(alg.capacity(), cost, allowed, now, t_eff, at, detail)
}
