//! One Lua script per algorithm, and the decision built from what it
//! returns with the in-process algorithm's own code, so the numbers are
//! the same: GCRA (`gcra.lua`), and the window algorithms over a shared
//! prelude (`window_prelude.lua`; whole-millisecond windows aligned to the
//! Unix epoch). A check is a [`Call`] (script, keys, arguments), run alone
//! ([`eval`]: `EVALSHA`, loaded again on `NOSCRIPT`) or many in one
//! pipeline ([`eval_many`]).

use std::sync::OnceLock;
use std::time::Instant;

use redis::Value;

use crate::algorithm::{Algorithm, Plain};
use crate::decision::{Decision, Detail, Source};
use crate::sliding_log::LogState;
use crate::{FixedWindow, Gcra, Quota, RateLimitError, SlidingCounter, SlidingLog};

/// An algorithm that runs on Redis (sealed): [`Gcra`], [`FixedWindow`],
/// [`SlidingCounter`], [`SlidingLog`].
pub trait RedisAlgorithm: Algorithm + sealed::Sealed {}

impl RedisAlgorithm for Gcra {}
impl RedisAlgorithm for FixedWindow {}
impl RedisAlgorithm for SlidingCounter {}
impl RedisAlgorithm for SlidingLog {}

pub use dispatchkit_redis_conn::script::{Call, Lua};

pub(crate) mod sealed {
    use std::time::Instant;

    use super::Call;
    use crate::RateLimitError;
    use crate::decision::Decision;

    /// The script and the decision of one algorithm.
    pub trait Sealed {
        /// Whether the algorithm's parameters can run on Redis.
        fn check_redis(&self) -> Result<(), RateLimitError> {
            Ok(())
        }

        /// The call that checks `cost` units of `key` (`now_ns`: `None`
        /// for the server's clock).
        fn call(
            &self,
            key: &[u8],
            cost: u32,
            now_ns: Option<u64>,
            consume: bool,
            margin_ms: u64,
        ) -> Call;

        /// One call checking every key of `keys` in order, each on its own,
        /// if the algorithm's script takes several keys (`None`: pipeline
        /// one call per key); its reply goes to `decide_many`.
        fn call_many(
            &self,
            _keys: Vec<Vec<u8>>,
            _cost: u32,
            _now_ns: Option<u64>,
            _margin_ms: u64,
        ) -> Option<Call> {
            None
        }

        /// The decisions from a `call_many` reply, in the keys' order.
        fn decide_many(
            &self,
            _reply: redis::Value,
            _cost: u32,
            _at: Instant,
        ) -> Result<Vec<Decision>, RateLimitError> {
            Err(RateLimitError::Unavailable {
                backend: "redis",
                kind: crate::BackendErrorKind::Other,
                reason: "this algorithm's script checks one key per call".into(),
            })
        }

        /// The decision from the call's reply (`at`: the caller's instant).
        fn decide(
            &self,
            reply: redis::Value,
            cost: u32,
            at: Instant,
        ) -> Result<Decision, RateLimitError>;
    }
}

pub(crate) use dispatchkit_redis_conn::script::eval;
#[cfg(feature = "tokio")]
pub(crate) use dispatchkit_redis_conn::script::eval_async;
pub(crate) use dispatchkit_redis_conn::script::eval_many;

fn unexpected(what: impl std::fmt::Display) -> RateLimitError {
    RateLimitError::Unavailable {
        backend: "redis",
        kind: crate::BackendErrorKind::Reply,
        reason: format!("unexpected script reply: {what}"),
    }
}

/// A reply as `T`.
fn parse<T: redis::FromRedisValue>(v: Value) -> Result<T, RateLimitError> {
    redis::from_redis_value(v).map_err(unexpected)
}

/// A script's decimal number.
fn num(s: &str) -> Result<u64, RateLimitError> {
    s.parse()
        .map_err(|_| unexpected(format_args!("`{s}` is not a number")))
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
        source: Source::State,
        limit,
        cost,
        now: num(now)?,
        at,
        t_eff: num(t_eff)?,
        detail,
    })
}

/// Seconds and nanoseconds of a time or duration in ns, as GCRA's script
/// takes them.
fn split_ns(ns: u64) -> (u64, u64) {
    (ns / 1_000_000_000, ns % 1_000_000_000)
}

impl Gcra {
    fn script_call(
        &self,
        keys: Vec<Vec<u8>>,
        cost: u32,
        now_ns: Option<u64>,
        consume: bool,
        margin_ms: u64,
    ) -> Call {
        static LUA: OnceLock<Lua> = OnceLock::new();
        let lua = LUA.get_or_init(|| Lua::new(include_str!("gcra.lua").to_string()));
        let (t, tau) = (self.interval_ns(), self.tolerance_ns());
        let mut call = Call::new(lua, keys);
        call = match now_ns.map(split_ns) {
            Some((s, n)) => call.arg(s).arg(n),
            None => call.arg("").arg(""),
        };
        for v in [u64::from(cost) * t, tau + t, tau] {
            let (s, n) = split_ns(v);
            call = call.arg(s).arg(n);
        }
        call.arg(u8::from(consume)).arg(margin_ms)
    }

    /// The decisions of a GCRA reply: five integers per key (allowed, TAT,
    /// t_eff as seconds and ns), then now.
    fn decide_all(
        &self,
        reply: Value,
        cost: u32,
        at: Instant,
    ) -> Result<Vec<Decision>, RateLimitError> {
        let v: Vec<u64> = parse(reply)?;
        let [per_key @ .., now_s, now_n] = v.as_slice() else {
            return Err(unexpected("an empty GCRA reply"));
        };
        if per_key.len() % 5 != 0 {
            return Err(unexpected(format_args!("{} values from GCRA", v.len())));
        }
        // Saturating: a reply out of range must not panic.
        let ns = |s: u64, n: u64| s.saturating_mul(1_000_000_000).saturating_add(n);
        let (t, tau) = (self.interval_ns(), self.tolerance_ns());
        Ok(per_key
            .chunks_exact(5)
            .map(|c| Decision {
                allowed: c[0] == 1,
                source: Source::State,
                limit: self.capacity(),
                cost,
                now: ns(*now_s, *now_n),
                at,
                t_eff: ns(c[3], c[4]),
                detail: Detail::Gcra {
                    tat: ns(c[1], c[2]),
                    t,
                    tau,
                },
            })
            .collect())
    }
}

impl Gcra {
    /// A lease's call: charge the largest of `costs` (largest first) that
    /// fits.
    pub(crate) fn lease_call(&self, key: &[u8], costs: &[u32], margin_ms: u64) -> Call {
        let mut call = self.script_call(vec![key.to_vec()], costs[0], None, true, margin_ms);
        for &c in &costs[1..] {
            let (s, n) = split_ns(u64::from(c) * self.interval_ns());
            call = call.arg(s).arg(n);
        }
        call
    }

    /// A lease's reply: the decision for the cost charged (or, when none
    /// fits, for the smallest), and the units charged.
    pub(crate) fn decide_lease(
        &self,
        reply: Value,
        costs: &[u32],
        at: Instant,
    ) -> Result<(Decision, u32), RateLimitError> {
        let mut v: Vec<i64> = parse(reply)?;
        let chosen = v.pop().ok_or_else(|| unexpected("an empty lease reply"))?;
        let taken = usize::try_from(chosen)
            .ok()
            .and_then(|i| costs.get(i).copied());
        let cost = taken.unwrap_or(costs[costs.len() - 1]);
        let as_u64: Vec<Value> = v.into_iter().map(Value::Int).collect();
        let d = sealed::Sealed::decide(self, Value::Array(as_u64), cost, at)?;
        Ok((d, taken.unwrap_or(0)))
    }
}

impl sealed::Sealed for Gcra {
    fn call(
        &self,
        key: &[u8],
        cost: u32,
        now_ns: Option<u64>,
        consume: bool,
        margin_ms: u64,
    ) -> Call {
        self.script_call(vec![key.to_vec()], cost, now_ns, consume, margin_ms)
    }

    fn call_many(
        &self,
        keys: Vec<Vec<u8>>,
        cost: u32,
        now_ns: Option<u64>,
        margin_ms: u64,
    ) -> Option<Call> {
        Some(self.script_call(keys, cost, now_ns, true, margin_ms))
    }

    fn decide(&self, reply: Value, cost: u32, at: Instant) -> Result<Decision, RateLimitError> {
        let mut all = self.decide_all(reply, cost, at)?;
        match (all.pop(), all.is_empty()) {
            (Some(d), true) => Ok(d),
            _ => Err(unexpected("a GCRA reply for one key holds another count")),
        }
    }

    fn decide_many(
        &self,
        reply: Value,
        cost: u32,
        at: Instant,
    ) -> Result<Vec<Decision>, RateLimitError> {
        self.decide_all(reply, cost, at)
    }
}

/// Largest `limit × window in ms` the window scripts compute exactly.
const EXACT: u128 = 1 << 53;

/// A window that runs on Redis: whole milliseconds, and `limit × window`
/// within Lua's exact integers.
fn check_window(quota: Quota) -> Result<(), RateLimitError> {
    let ns = quota.period_ns();
    if !ns.is_multiple_of(1_000_000) {
        return Err(RateLimitError::InvalidQuota {
            name: "period",
            value: u128::from(ns),
            reason: "a window on Redis is a whole number of milliseconds",
        });
    }
    if u128::from(ns / 1_000_000) * u128::from(quota.limit()) >= EXACT {
        return Err(RateLimitError::InvalidQuota {
            name: "limit",
            value: u128::from(quota.limit()),
            reason: "limit × window in ms must stay below 2^53 on Redis",
        });
    }
    Ok(())
}

/// A window script: the shared prelude and `body`, built once in `cell`.
fn window_lua(cell: &'static OnceLock<Lua>, body: &'static str) -> &'static Lua {
    cell.get_or_init(|| Lua::new(format!("{}\n{body}", include_str!("window_prelude.lua"))))
}

/// A window script's call: `(now, W ms, limit, cost, consume, margin)`.
fn window_call(
    lua: &'static Lua,
    keys: Vec<Vec<u8>>,
    quota: Quota,
    cost: u32,
    now_ns: Option<u64>,
    consume: bool,
    margin_ms: u64,
) -> Call {
    Call::new(lua, keys)
        .arg(now_arg(now_ns))
        .arg(quota.period_ns() / 1_000_000)
        .arg(quota.limit())
        .arg(cost)
        .arg(u8::from(consume))
        .arg(margin_ms)
}

/// `check_redis` and `call` of a window algorithm: its script body (after
/// the shared prelude) and whether its state has a `:sum` twin key.
macro_rules! window_methods {
    ($body:literal, $sum_key:expr) => {
        fn check_redis(&self) -> Result<(), RateLimitError> {
            check_window(self.quota())
        }

        fn call(
            &self,
            key: &[u8],
            cost: u32,
            now_ns: Option<u64>,
            consume: bool,
            margin_ms: u64,
        ) -> Call {
            static LUA: OnceLock<Lua> = OnceLock::new();
            let mut keys = vec![key.to_vec()];
            if $sum_key {
                let mut sums = key.to_vec();
                sums.extend_from_slice(b":sum");
                keys.push(sums);
            }
            let lua = window_lua(&LUA, include_str!($body));
            window_call(lua, keys, self.quota(), cost, now_ns, consume, margin_ms)
        }
    };
}

impl sealed::Sealed for FixedWindow {
    window_methods!("fixed_window.lua", false);

    fn decide(&self, reply: Value, cost: u32, at: Instant) -> Result<Decision, RateLimitError> {
        let (allowed, idx, count, t_eff, now): (u8, String, u32, String, String) = parse(reply)?;
        let w = self.quota().period_ns();
        let detail = Detail::Fixed {
            end: (num(&idx)? + 1) * w,
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
    }
}

impl sealed::Sealed for SlidingCounter {
    window_methods!("sliding_counter.lua", false);

    fn decide(&self, reply: Value, cost: u32, at: Instant) -> Result<Decision, RateLimitError> {
        let (allowed, idx, prev, curr, t_eff, now): (u8, String, u32, u32, String, String) =
            parse(reply)?;
        let detail = Detail::Counter {
            window: self.quota().period_ns(),
            idx: num(&idx)?,
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
    }
}

impl sealed::Sealed for SlidingLog {
    window_methods!("sliding_log.lua", true);

    fn decide(&self, reply: Value, cost: u32, at: Instant) -> Result<Decision, RateLimitError> {
        let reply: Vec<String> = parse(reply)?;
        let [allowed, t_eff, now, grants @ ..] = reply.as_slice() else {
            return Err(unexpected(format_args!(
                "{} values from the sliding log",
                reply.len()
            )));
        };
        let entries = grants
            .iter()
            .map(|g| {
                let (t, units) = g.split_once(':').unwrap_or((g, ""));
                Ok((num(t)?, u32::try_from(num(units)?).unwrap_or(u32::MAX)))
            })
            .collect::<Result<Vec<_>, RateLimitError>>()?;
        let allowed = allowed == "1";
        let detail = self.detail(&LogState::from_entries(entries), num(t_eff)?, cost, allowed);
        decision(self.capacity(), cost, allowed, now, t_eff, at, detail)
    }
}
