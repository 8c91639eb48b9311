//! [`RedisPolicyLimiter`]: a rules table on Redis. One script call checks
//! every rule of a request's rule set and charges all or none, exactly as
//! the in-process [`PolicyLimiter`](crate::PolicyLimiter) entry does; the
//! decision (which rule to report, its numbers) is built by the in-process
//! code from the states the script returns.

use std::fmt;
use std::time::{Instant, UNIX_EPOCH};

use redis::Value;

use super::conn::{self, Pool};
use super::scripts::{Call, Lua, eval};
use super::{RedisConfig, RedisKey, check_prefix, escape_into};
use crate::algorithm::{Algorithm, fallback_decision};
use crate::backend::PolicyLimit;
use crate::policy::compiled::{Compiled, CompiledSet, Registry};
use crate::policy::decision::{PolicyDecision, Request};
use crate::policy::entry::eval as evaluate;
use crate::policy::rule::{RuleAlg, States};
use crate::rules::{KeyKind, RuleTable};
use crate::sliding_log::LogState;
use crate::{ClockMap, FailMode, RateLimitError};

/// A multi-rule, all-or-nothing policy whose state lives in Redis, shared
/// by every instance connected to the same server and prefix.
///
/// A request's subject (`kind` + `key`) owns one Redis hash tag,
/// `{<prefix>:<kind>:<escaped key>}`; its entry (`…:e<set>`) and every
/// rule's state (`…:r<rule>`) carry it, so one script call on one node
/// (one slot of a Redis Cluster) checks them all. Rule ids are the
/// in-process limiter's stable ids: a table reloaded with the same rules
/// keeps their state.
///
/// ```no_run
/// use dispatchkit_ratelimit::{KeyKind, Limit, PolicyLimit, RedisConfig, RedisPolicyLimiter, Request, RuleSet, RuleTable};
///
/// let table = RuleTable { rules: vec![RuleSet {
///     limits: vec![Limit::new(1000, "hour".parse()?), Limit::new(10_000, "day".parse()?)],
///     ..RuleSet::default()
/// }] };
/// let limiter = RedisPolicyLimiter::new(&table, RedisConfig::new("redis://127.0.0.1:6379/"))?;
/// let req = Request { tier: None, endpoint: "/v1/rides", kind: KeyKind::User, key: &42u64 };
/// let d = limiter.check(&req, 1)?; // both rules or neither, at the server's clock
/// # Ok::<(), dispatchkit_ratelimit::RateLimitError>(())
/// ```
pub struct RedisPolicyLimiter {
    compiled: Compiled,
    pool: Pool,
    prefix: String,
    clock: ClockMap,
    margin_ms: u64,
    on_unavailable: FailMode,
    #[cfg(feature = "tokio")]
    apool: dispatchkit_redis_conn::AsyncPool,
}

impl fmt::Debug for RedisPolicyLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisPolicyLimiter")
            .field("rule_sets", &self.compiled.sets.len())
            .field("prefix", &self.prefix)
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

fn kind_tag(k: KeyKind) -> &'static [u8] {
    match k {
        KeyKind::User => b"user",
        KeyKind::Ip => b"ip",
        KeyKind::ApiKey => b"api",
    }
}

fn lua() -> &'static Lua {
    static LUA: std::sync::OnceLock<Lua> = std::sync::OnceLock::new();
    LUA.get_or_init(|| Lua::new(include_str!("policy.lua").to_string()))
}

impl RedisPolicyLimiter {
    /// A limiter applying `table` on the server of `config`.
    ///
    /// # Errors
    /// As [`PolicyLimiter::new`](crate::PolicyLimiter::new) for the table,
    /// and as [`RedisRateLimiter::new`](crate::RedisRateLimiter::new) for
    /// the configuration and windows (whole milliseconds on Redis).
    pub fn new(table: &RuleTable, config: RedisConfig) -> Result<Self, RateLimitError> {
        Self::with_clock(table, config, ClockMap::now())
    }

    /// [`new`](Self::new) with the `Instant` ↔ wall-clock mapping `clock`
    /// for the `_at` forms.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn with_clock(
        table: &RuleTable,
        config: RedisConfig,
        clock: ClockMap,
    ) -> Result<Self, RateLimitError> {
        check_prefix(&config.key_prefix)?;
        let compiled = Compiled::new(table, &mut Registry::default())?;
        for set in &compiled.sets {
            for r in &set.rules {
                match r.alg {
                    RuleAlg::Gcra(_) => {}
                    RuleAlg::Fixed(a) => super::scripts::sealed::Sealed::check_redis(&a)?,
                    RuleAlg::Counter(a) => super::scripts::sealed::Sealed::check_redis(&a)?,
                    RuleAlg::Log(a) => super::scripts::sealed::Sealed::check_redis(&a)?,
                }
            }
        }
        let pool = conn::pool(&config)?;
        Ok(Self {
            compiled,
            #[cfg(feature = "tokio")]
            apool: dispatchkit_redis_conn::AsyncPool::of(&pool),
            pool,
            prefix: config.key_prefix,
            clock,
            margin_ms: 1_000,
            on_unavailable: config.on_unavailable,
        })
    }

    fn unix_ns(&self, now: Instant) -> u64 {
        let d = self
            .clock
            .system_at(now)
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
    }

    /// The script call for `req`'s set.
    fn call<K: RedisKey>(
        &self,
        set: &CompiledSet,
        req: &Request<'_, K>,
        cost: u32,
        now_ns: Option<u64>,
        consume: bool,
    ) -> Call {
        let mut tag = Vec::with_capacity(48);
        tag.push(b'{');
        tag.extend_from_slice(self.prefix.as_bytes());
        tag.push(b':');
        tag.extend_from_slice(kind_tag(req.kind));
        tag.push(b':');
        let mut raw = Vec::new();
        req.key.key_bytes(&mut raw);
        escape_into(&raw, &mut tag);
        tag.push(b'}');
        let named = |suffix: String| {
            let mut k = tag.clone();
            k.extend_from_slice(suffix.as_bytes());
            k
        };
        let mut keys = vec![named(format!(":e{}", set.id))];
        let mut call_args: Vec<String> = Vec::with_capacity(5 + 5 * set.rules.len());
        match now_ns {
            Some(n) => {
                call_args.push((n / 1_000_000_000).to_string());
                call_args.push((n % 1_000_000_000).to_string());
            }
            None => call_args.extend([String::new(), String::new()]),
        }
        call_args.push(cost.to_string());
        call_args.push(u8::from(consume).to_string());
        call_args.push(self.margin_ms.to_string());
        for r in &set.rules {
            keys.push(named(format!(":r{}", r.id)));
            let split = |ns: u64| {
                [
                    (ns / 1_000_000_000).to_string(),
                    (ns % 1_000_000_000).to_string(),
                ]
            };
            match r.alg {
                RuleAlg::Gcra(g) => {
                    let (t, tau) = (g.interval_ns(), g.tolerance_ns());
                    call_args.push("g".into());
                    call_args.extend(split(u64::from(cost) * t));
                    call_args.extend(split(tau + t));
                }
                RuleAlg::Fixed(a) => window_args(&mut call_args, "f", a.quota()),
                RuleAlg::Counter(a) => window_args(&mut call_args, "c", a.quota()),
                RuleAlg::Log(a) => {
                    keys.push(named(format!(":r{}:sum", r.id)));
                    window_args(&mut call_args, "l", a.quota());
                }
            }
        }
        let mut call = Call::new(lua(), keys);
        for a in call_args {
            call = call.arg(a);
        }
        call
    }

    /// The decision from the script's reply, by the in-process evaluation.
    fn decide(
        &self,
        set: &CompiledSet,
        reply: Value,
        cost: u32,
        at: Instant,
    ) -> Result<PolicyDecision, RateLimitError> {
        let items = match reply {
            Value::Array(v) => v,
            other => return Err(bad(format_args!("{other:?}"))),
        };
        let mut it = items.into_iter();
        fn int(it: &mut impl Iterator<Item = Value>) -> Result<u64, RateLimitError> {
            match it.next() {
                Some(v) => redis::from_redis_value::<u64>(v).map_err(bad),
                None => Err(bad("a short policy reply")),
            }
        }
        let fits = int(&mut it)? == 1;
        // Saturating: a reply out of range must not panic.
        let ns = |s: u64, n: u64| s.saturating_mul(1_000_000_000).saturating_add(n);
        let t_eff = {
            let (s, n) = (int(&mut it)?, int(&mut it)?);
            ns(s, n)
        };
        let now = {
            let (s, n) = (int(&mut it)?, int(&mut it)?);
            ns(s, n)
        };
        let mut words = vec![0u64; set.words];
        let mut logs = vec![LogState::default(); set.logs];
        for r in &set.rules {
            let w = usize::from(r.slot.word);
            match r.alg {
                RuleAlg::Gcra(_) => {
                    let (s, n) = (int(&mut it)?, int(&mut it)?);
                    words[w] = ns(s, n);
                }
                RuleAlg::Fixed(_) => {
                    words[w] = int(&mut it)?;
                    words[w + 1] = int(&mut it)?;
                }
                RuleAlg::Counter(_) => {
                    let (idx, prev, curr) = (int(&mut it)?, int(&mut it)?, int(&mut it)?);
                    words[w] = idx;
                    words[w + 1] = prev | curr << 32;
                }
                RuleAlg::Log(_) => {
                    let n = int(&mut it)?;
                    let mut entries = Vec::with_capacity(n as usize);
                    for _ in 0..n {
                        let g: String = match it.next() {
                            Some(v) => redis::from_redis_value(v).map_err(bad)?,
                            None => return Err(bad("a short sliding-log reply")),
                        };
                        let (t, u) = g.split_once(':').ok_or_else(|| bad(&g))?;
                        entries.push((
                            t.parse().map_err(|_| bad(t))?,
                            u.parse().map_err(|_| bad(u))?,
                        ));
                    }
                    logs[usize::from(r.slot.log)] = LogState::from_entries(entries);
                }
            }
        }
        let st = States {
            words: &words,
            logs: &logs,
        };
        Ok(evaluate(set, &st, now, t_eff, at, cost, fits))
    }

    /// The rule set of `req` and the checked cost (`None`: no rule
    /// applies).
    fn prepare<K: RedisKey>(
        &self,
        req: &Request<'_, K>,
        cost: u32,
    ) -> Result<Option<&CompiledSet>, RateLimitError> {
        if cost == 0 {
            return Err(RateLimitError::InvalidCost {
                cost,
                reason: "a check must ask for at least one unit",
            });
        }
        let Some(si) = self.compiled.resolve(req.tier, req.endpoint, req.kind) else {
            return Ok(None);
        };
        let set = &self.compiled.sets[si];
        if cost > set.capacity {
            return Err(RateLimitError::InsufficientCapacity {
                cost,
                capacity: set.capacity,
            });
        }
        Ok(Some(set))
    }

    /// The script's reply as a decision, or the fail mode's answer.
    fn finish(
        &self,
        set: &CompiledSet,
        reply: Result<Value, RateLimitError>,
        cost: u32,
        at: Instant,
    ) -> Result<PolicyDecision, RateLimitError> {
        reply
            .and_then(|reply| self.decide(set, reply, cost, at))
            .or_else(|e| match (self.on_unavailable, &e) {
                (FailMode::Open, RateLimitError::Unavailable { .. }) => {
                    let r = &set.rules[0];
                    Ok(PolicyDecision::reporting(
                        true,
                        r.info,
                        fallback_decision(r.alg.capacity(), cost, at),
                    ))
                }
                _ => Err(e),
            })
    }

    fn run<K: RedisKey>(
        &self,
        req: &Request<'_, K>,
        cost: u32,
        now: Option<Instant>,
        consume: bool,
    ) -> Result<PolicyDecision, RateLimitError> {
        let Some(set) = self.prepare(req, cost)? else {
            return Ok(PolicyDecision::unlimited());
        };
        let at = now.unwrap_or_else(Instant::now);
        let call = self.call(set, req, cost, now.map(|n| self.unix_ns(n)), consume);
        self.finish(set, conn::run(&self.pool, |con| eval(con, &call)), cost, at)
    }

    /// [`PolicyLimit::check`] without blocking the thread (feature `tokio`).
    ///
    /// # Errors
    /// As [`PolicyLimit::check`].
    #[cfg(feature = "tokio")]
    pub async fn check_async<K: RedisKey>(
        &self,
        req: &Request<'_, K>,
        cost: u32,
    ) -> Result<PolicyDecision, RateLimitError> {
        self.run_async(req, cost, None, true).await
    }

    /// [`PolicyLimit::check_at`] without blocking the thread.
    ///
    /// # Errors
    /// As [`PolicyLimit::check`].
    #[cfg(feature = "tokio")]
    pub async fn check_at_async<K: RedisKey>(
        &self,
        req: &Request<'_, K>,
        cost: u32,
        now: Instant,
    ) -> Result<PolicyDecision, RateLimitError> {
        self.run_async(req, cost, Some(now), true).await
    }

    /// [`PolicyLimit::peek`] without blocking the thread.
    ///
    /// # Errors
    /// As [`PolicyLimit::check`].
    #[cfg(feature = "tokio")]
    pub async fn peek_async<K: RedisKey>(
        &self,
        req: &Request<'_, K>,
        cost: u32,
    ) -> Result<PolicyDecision, RateLimitError> {
        self.run_async(req, cost, None, false).await
    }

    #[cfg(feature = "tokio")]
    async fn run_async<K: RedisKey>(
        &self,
        req: &Request<'_, K>,
        cost: u32,
        now: Option<Instant>,
        consume: bool,
    ) -> Result<PolicyDecision, RateLimitError> {
        let Some(set) = self.prepare(req, cost)? else {
            return Ok(PolicyDecision::unlimited());
        };
        let at = now.unwrap_or_else(Instant::now);
        let call = self.call(set, req, cost, now.map(|n| self.unix_ns(n)), consume);
        let reply = self
            .apool
            .run(|con| super::scripts::eval_async(con, &call))
            .await
            .map_err(conn::unavailable);
        self.finish(set, reply, cost, at)
    }
}

fn window_args(out: &mut Vec<String>, ty: &str, q: crate::Quota) {
    out.push(ty.to_string());
    out.push((q.period_ns() / 1_000_000).to_string());
    out.push(q.limit().to_string());
    out.push("0".into());
    out.push("0".into());
}

fn bad(what: impl fmt::Display) -> RateLimitError {
    RateLimitError::Unavailable {
        backend: "redis",
        kind: crate::BackendErrorKind::Reply,
        reason: format!("unexpected policy script reply: {what}"),
    }
}

impl<K: RedisKey> PolicyLimit<K> for RedisPolicyLimiter {
    fn check(&self, req: &Request<'_, K>, cost: u32) -> Result<PolicyDecision, RateLimitError> {
        self.run(req, cost, None, true)
    }

    fn check_at(
        &self,
        req: &Request<'_, K>,
        cost: u32,
        now: Instant,
    ) -> Result<PolicyDecision, RateLimitError> {
        self.run(req, cost, Some(now), true)
    }

    fn peek(&self, req: &Request<'_, K>, cost: u32) -> Result<PolicyDecision, RateLimitError> {
        self.run(req, cost, None, false)
    }

    fn peek_at(
        &self,
        req: &Request<'_, K>,
        cost: u32,
        now: Instant,
    ) -> Result<PolicyDecision, RateLimitError> {
        self.run(req, cost, Some(now), false)
    }
}
