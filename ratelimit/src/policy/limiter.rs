//! The policy limiter: several rules per request, checked atomically,
//! resolved from a rules table by tier, endpoint and key kind, changeable
//! at run time.

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Mutex, RwLock, RwLockWriteGuard};

use crate::compiled::{Compiled, CompiledSet, Registry};
use crate::entry::Entry;
use crate::keyed::{DefaultHasher, FailMode, KeyedConfig};
use crate::policy::decision::{PolicyDecision, PolicyInfo, Request};
use crate::rules::{KeyKind, RuleTable};
use crate::store::{KeyHash, Shard, Store};
use crate::time::Origin;
use crate::{RateLimitError, algorithm::cap_decision};

type PKey<K> = (u32, KeyKind, K);

/// The table hash of a stored (rule set, kind, key): the hash of (kind,
/// key), which also picks the shard. The set is left out, so a check's
/// load of the table's control bytes does not wait for the rules table's
/// resolution of the set (a chain of dependent loads); a subject's states
/// under different sets (endpoints, tiers) share a probe sequence and are
/// told apart by the key compare, one compare per set the subject has
/// state under.
struct PolicyKeyHash;

impl<K: Hash, S: BuildHasher> KeyHash<PKey<K>, S> for PolicyKeyHash {
    #[inline]
    fn key_hash(hasher: &S, k: &PKey<K>) -> u64 {
        hasher.hash_one((k.1, &k.2))
    }
}

type PShard<K> = Shard<PKey<K>, Entry, Arc<Compiled>>;
type PGuard<'a, K> = RwLockWriteGuard<'a, PShard<K>>;

/// Subjects of a multi-subject check handled without allocating.
const INLINE_SUBJECTS: usize = 4;

/// One subject of a multi-subject check.
#[derive(Debug, Clone, Copy, Default)]
struct Subject {
    /// Hash of (kind, key).
    h: u64,
    shard: usize,
    /// Index of its shard's guard.
    guard: usize,
    /// Index of its set in its shard's table, when a rule applies and the
    /// state is tracked.
    set: Option<usize>,
    set_id: u32,
    /// Bucket of its state in its shard's table, unless `stale`.
    index: usize,
    /// A later insert into the same shard may have moved its state.
    stale: bool,
}

/// Multi-rule, multi-subject rate limiting over a [`RuleTable`].
///
/// Each request subject resolves (by tier, endpoint and key kind, most
/// specific row first) to a rule set; its rules are checked **atomically**:
/// when any rule denies, no rule is charged. [`check_all_at`] does the same
/// across several subjects (per-user AND per-IP): all or nothing.
/// [`set_table`] swaps the rules at run time; rules that did not change keep
/// their state, new ones start full.
///
/// Keys are sharded as in [`KeyedRateLimiter`](crate::KeyedRateLimiter),
/// with the same bounded memory (full states dropped by amortised sweeps,
/// hard cap with a [`FailMode`]); a check holds its shard's lock for
/// O(rules). A (rule set, key)'s state sits next to its key in the shard's
/// table: 32 bytes for sets of up to three token buckets (or one window
/// counter and one bucket), with no allocation; sets with a sliding log or
/// more rules keep their states in one heap block per key. A check hashes
/// the key once and allocates nothing once the key is stored; so does
/// [`check_all_at`] for up to four subjects.
///
/// [`check_all_at`]: PolicyLimiter::check_all_at
/// [`set_table`]: PolicyLimiter::set_table
///
/// ```
/// use dispatchkit_ratelimit::{KeyKind, Limit, PolicyLimiter, Request, RuleSet, RuleTable};
/// use std::time::Instant;
///
/// let table = RuleTable { rules: vec![RuleSet {
///     limits: vec![
///         Limit::new(10, "second".parse()?).with_burst(20),
///         Limit::new(1000, "hour".parse()?),
///         Limit::new(10_000, "day".parse()?),
///     ],
///     ..RuleSet::default()
/// }] };
/// let t0 = Instant::now();
/// let limiter = PolicyLimiter::new_at(&table, t0)?;
/// let req = Request { tier: None, endpoint: "/v1/rides", kind: KeyKind::User, key: &42u64 };
/// let granted = (0..25).filter(|_| limiter.check_at(&req, 1, t0).map_or(false, |d| d.is_allowed())).count();
/// assert_eq!(granted, 20);
/// let d = limiter.check_at(&req, 1, t0)?;
/// assert_eq!(d.denied_by(), Some("10-per-second"));
/// # Ok::<(), dispatchkit_ratelimit::RateLimitError>(())
/// ```
pub struct PolicyLimiter<K, S = DefaultHasher> {
    origin: Origin,
    fail_mode: FailMode,
    store: Store<PKey<K>, Entry, S, Arc<Compiled>, PolicyKeyHash>,
    registry: Mutex<Registry>,
    current: RwLock<Arc<Compiled>>,
}

impl<K, S> fmt::Debug for PolicyLimiter<K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyLimiter")
            .field("origin", &self.origin)
            .field("fail_mode", &self.fail_mode)
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq + Clone> PolicyLimiter<K> {
    /// A limiter for `table` with the default [`KeyedConfig`], time origin
    /// `Instant::now()`.
    ///
    /// # Errors
    /// As [`set_table`](Self::set_table).
    pub fn new(table: &RuleTable) -> Result<Self, RateLimitError> {
        Self::new_at(table, Instant::now())
    }

    /// A limiter for `table` with the default [`KeyedConfig`] and time
    /// origin `origin`.
    ///
    /// # Errors
    /// As [`set_table`](Self::set_table).
    pub fn new_at(table: &RuleTable, origin: Instant) -> Result<Self, RateLimitError> {
        Self::with_config(
            table,
            KeyedConfig::default(),
            DefaultHasher::default(),
            origin,
        )
    }
}

impl<K: Hash + Eq + Clone, S: BuildHasher> PolicyLimiter<K, S> {
    /// A limiter for `table`, sized by `config`, hashing with `hasher`.
    ///
    /// # Errors
    /// As [`set_table`](Self::set_table), and
    /// [`RateLimitError::InvalidConfig`] for a bad `config`.
    pub fn with_config(
        table: &RuleTable,
        config: KeyedConfig,
        hasher: S,
        origin: Instant,
    ) -> Result<Self, RateLimitError> {
        let (shards, max_keys) = config.resolve()?;
        let mut registry = Registry::default();
        let compiled = Arc::new(Compiled::new(table, &mut registry)?);
        Ok(Self {
            origin: Origin::new(origin),
            fail_mode: config.fail_mode,
            store: Store::new(shards, max_keys, hasher, compiled.clone()),
            registry: Mutex::new(registry),
            current: RwLock::new(compiled),
        })
    }

    /// Replaces the rules table. Rule sets with the same selector keep their
    /// keys; within them, limits that are unchanged (same name, window,
    /// count, burst and algorithm) keep their state, others start full;
    /// state of removed rule sets is dropped. O(stored keys); checks proceed
    /// meanwhile (each shard switches atomically).
    ///
    /// # Errors
    /// [`RateLimitError::InvalidRule`] for duplicate selectors, empty or
    /// oversized rule sets, bad or duplicate names;
    /// [`RateLimitError::InvalidQuota`] for zero counts or bursts and
    /// overlong windows. The old table stays in force.
    pub fn set_table(&self, table: &RuleTable) -> Result<(), RateLimitError> {
        let compiled = Arc::new(Compiled::new(table, &mut self.registry.lock())?);
        for shard in self.store.shards() {
            let mut g = shard.write();
            let Shard {
                table: keys, extra, ..
            } = &mut *g;
            keys.retain(|((set_id, _, _), e)| {
                match (extra.by_id(*set_id), compiled.by_id(*set_id)) {
                    (Some(old), Some(new)) => {
                        *e = e.migrate(old, new);
                        true
                    }
                    _ => false,
                }
            });
            *extra = compiled.clone();
        }
        *self.current.write() = compiled;
        Ok(())
    }

    /// The limits that apply to `req` (for `RateLimit-Policy`), in table
    /// order; empty when none does.
    pub fn policies_for(&self, req: &Request<'_, K>) -> Vec<PolicyInfo> {
        let c = self.current.read();
        c.resolve(req.tier, req.endpoint, req.kind)
            .map(|i| c.sets[i].rules.iter().map(|r| r.info).collect())
            .unwrap_or_default()
    }

    /// Number of (rule set, key) states stored. O(shards).
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// Whether no state is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// [`check_at`](Self::check_at) with `Instant::now()`.
    ///
    /// # Errors
    /// As [`check_at`](Self::check_at).
    pub fn check(&self, req: &Request<'_, K>, cost: u32) -> Result<PolicyDecision, RateLimitError> {
        self.check_at(req, cost, Instant::now())
    }

    /// Checks `cost` units against every rule that applies to `req`; charges
    /// all of them or none. A request no rule applies to is allowed with no
    /// reported rule. Amortised O(rules): one hash of the key, the shard's
    /// lock, one probe; no allocation once the key is stored.
    ///
    /// # Errors
    /// [`RateLimitError::InvalidCost`] for `cost == 0`;
    /// [`RateLimitError::InsufficientCapacity`] when some rule can never
    /// grant `cost`. Nothing is charged.
    #[inline]
    pub fn check_at(
        &self,
        req: &Request<'_, K>,
        cost: u32,
        now: Instant,
    ) -> Result<PolicyDecision, RateLimitError> {
        validate_cost(cost)?;
        let t = self.origin.nanos_to(now);
        let h = self.store.hash(&(req.kind, req.key));
        let mut g = self.store.shard(h).write();
        let Some(si) = g.extra.resolve(req.tier, req.endpoint, req.kind) else {
            return Ok(PolicyDecision::unlimited());
        };
        let set = &g.extra.sets[si];
        check_capacity(set, cost)?;
        let set_id = set.id;
        let eq = |k: &(PKey<K>, Entry)| k.0.0 == set_id && k.0.1 == req.kind && k.0.2 == *req.key;
        let index = match g.table.find_bucket_index(h, eq) {
            Some(i) => i,
            // `insert_locked` is out of line; the check below stays inline
            // and shared, so the decision is built in place either way.
            None => match self.store.insert_locked(
                &mut g,
                h,
                &(set_id, req.kind, req.key.clone()),
                t,
                |x, floor| Entry::fresh(&x.sets[si], floor),
                idle,
                |_| false,
            ) {
                Ok((i, _, _)) => i,
                Err(at_cap) => {
                    let set = &g.extra.sets[si];
                    return Ok(self.at_cap(set, cost, t, now, at_cap.retry_at, 0));
                }
            },
        };
        let Shard {
            table: keys, extra, ..
        } = &mut *g;
        match keys.get_bucket_mut(index) {
            Some((_, e)) => Ok(e.check(&extra.sets[si], t, now, cost, true)),
            None => unreachable!("the key was found or inserted at this index"),
        }
    }

    /// Whether [`check_at`](Self::check_at) would allow, charging nothing
    /// and creating no state.
    ///
    /// # Errors
    /// As [`check_at`](Self::check_at).
    pub fn peek_at(
        &self,
        req: &Request<'_, K>,
        cost: u32,
        now: Instant,
    ) -> Result<PolicyDecision, RateLimitError> {
        validate_cost(cost)?;
        let t = self.origin.nanos_to(now);
        let h = self.store.hash(&(req.kind, req.key));
        let g = self.store.shard(h).read();
        let Some(si) = g.extra.resolve(req.tier, req.endpoint, req.kind) else {
            return Ok(PolicyDecision::unlimited());
        };
        let set = &g.extra.sets[si];
        check_capacity(set, cost)?;
        let found = g.table.find(h, |(k, _)| {
            k.0 == set.id && k.1 == req.kind && k.2 == *req.key
        });
        let ev = match found {
            Some((_, e)) => e.peek(set, t, now, cost),
            // A key never seen (or dropped while full) is full.
            None => Entry::fresh(set, g.floor).peek(set, t, now, cost),
        };
        Ok(ev)
    }

    #[cold]
    #[inline(never)]
    fn at_cap(
        &self,
        set: &CompiledSet,
        cost: u32,
        t: u64,
        now: Instant,
        retry_at: u64,
        subject: usize,
    ) -> PolicyDecision {
        let allowed = self.fail_mode == FailMode::Open;
        let r = &set.rules[0];
        PolicyDecision {
            subject,
            ..PolicyDecision::reporting(
                allowed,
                r.info,
                cap_decision(allowed, r.alg.capacity(), cost, t, now, retry_at),
            )
        }
    }

    /// Checks `cost` units for several subjects of one request (e.g. the
    /// user AND the client IP) as one atomic step: either every rule of
    /// every subject is charged, or none is. Subjects no rule applies to
    /// are skipped. Takes the write locks of the subjects' shards in
    /// ascending order (deadlock-free). O(subjects · rules); allocates
    /// nothing for up to four subjects once their keys are stored.
    ///
    /// # Errors
    /// As [`check_at`](Self::check_at), and
    /// [`RateLimitError::DuplicateSubject`] when two subjects resolve to the
    /// same state. Nothing is charged.
    pub fn check_all_at(
        &self,
        reqs: &[Request<'_, K>],
        cost: u32,
        now: Instant,
    ) -> Result<PolicyDecision, RateLimitError> {
        validate_cost(cost)?;
        let n = reqs.len();
        if n <= INLINE_SUBJECTS {
            let mut subjects = [Subject::default(); INLINE_SUBJECTS];
            let mut order = [0usize; INLINE_SUBJECTS];
            let mut guards: [Option<PGuard<'_, K>>; INLINE_SUBJECTS] = Default::default();
            self.check_all_in(
                reqs,
                cost,
                now,
                &mut subjects[..n],
                &mut order[..n],
                &mut guards[..n],
            )
        } else {
            let mut subjects = vec![Subject::default(); n];
            let mut order = vec![0usize; n];
            let mut guards: Vec<Option<PGuard<'_, K>>> = (0..n).map(|_| None).collect();
            self.check_all_in(reqs, cost, now, &mut subjects, &mut order, &mut guards)
        }
    }

    /// [`check_all_at`](Self::check_all_at) with caller-provided scratch
    /// space of `reqs.len()` each.
    fn check_all_in<'a>(
        &'a self,
        reqs: &[Request<'_, K>],
        cost: u32,
        now: Instant,
        subjects: &mut [Subject],
        order: &mut [usize],
        guards: &mut [Option<PGuard<'a, K>>],
    ) -> Result<PolicyDecision, RateLimitError> {
        let t = self.origin.nanos_to(now);
        for (i, (s, r)) in subjects.iter_mut().zip(reqs).enumerate() {
            s.h = self.store.hash(&(r.kind, r.key));
            s.shard = self.store.shard_index(s.h);
            order[i] = i;
        }
        // Lock each distinct shard once, in ascending order.
        order.sort_unstable_by_key(|&i| subjects[i].shard);
        let mut locked = 0;
        for (j, &i) in order.iter().enumerate() {
            let shard = subjects[i].shard;
            if j == 0 || subjects[order[j - 1]].shard != shard {
                guards[locked] = Some(self.store.shard_at(shard).write());
                locked += 1;
            }
            subjects[i].guard = locked - 1;
        }
        // Resolve and validate everything before touching any state.
        for i in 0..reqs.len() {
            let r = &reqs[i];
            let g = locked_shard(guards, subjects[i].guard);
            let Some(si) = g.extra.resolve(r.tier, r.endpoint, r.kind) else {
                subjects[i].set = None;
                continue;
            };
            let set = &g.extra.sets[si];
            check_capacity(set, cost)?;
            let set_id = set.id;
            for j in 0..i {
                if subjects[j].set.is_some()
                    && subjects[j].set_id == set_id
                    && reqs[j].kind == r.kind
                    && reqs[j].key == r.key
                {
                    return Err(RateLimitError::DuplicateSubject {
                        first: j,
                        second: i,
                    });
                }
            }
            subjects[i].set = Some(si);
            subjects[i].set_id = set_id;
        }
        // Phase 1: make sure every state exists and see whether all fit.
        let mut denied: Option<PolicyDecision> = None;
        for i in 0..reqs.len() {
            let r = &reqs[i];
            let s = subjects[i];
            let Some(si) = s.set else {
                continue;
            };
            let g = locked_shard(guards, s.guard);
            let eq = |k: &(PKey<K>, Entry)| k.0.0 == s.set_id && k.0.1 == r.kind && k.0.2 == *r.key;
            let index = match g.table.find_bucket_index(s.h, eq) {
                Some(index) => index,
                None => {
                    // A sweep must keep the states of the earlier subjects in
                    // this shard, new (so full) ones included: they are about
                    // to be charged.
                    let earlier = &subjects[..i];
                    let keep = |k: &PKey<K>| {
                        earlier.iter().zip(reqs).any(|(e, q)| {
                            e.set.is_some()
                                && e.guard == s.guard
                                && e.set_id == k.0
                                && q.kind == k.1
                                && *q.key == k.2
                        })
                    };
                    let ins = self.store.insert_locked(
                        g,
                        s.h,
                        &(s.set_id, r.kind, r.key.clone()),
                        t,
                        |x, floor| Entry::fresh(&x.sets[si], floor),
                        idle,
                        keep,
                    );
                    match ins {
                        Ok((index, _, _)) => {
                            // The insert may have moved the earlier states.
                            for e in subjects[..i].iter_mut().filter(|e| e.guard == s.guard) {
                                e.stale = true;
                            }
                            index
                        }
                        Err(at_cap) => {
                            let set = &g.extra.sets[si];
                            let d = self.at_cap(set, cost, t, now, at_cap.retry_at, i);
                            if !d.allowed {
                                return Ok(d);
                            }
                            subjects[i].set = None; // fail open: untracked
                            continue;
                        }
                    }
                }
            };
            subjects[i].index = index;
            subjects[i].stale = false;
            let Shard {
                table: keys, extra, ..
            } = g;
            let Some((_, e)) = keys.get_bucket_mut(index) else {
                unreachable!("the state was found or inserted at this index");
            };
            let d = e.check(&extra.sets[si], t, now, cost, false);
            if !d.allowed && denied.as_ref().is_none_or(|a| waits_longer(&d, a, t)) {
                denied = Some(PolicyDecision { subject: i, ..d });
            }
        }
        if let Some(d) = denied {
            return Ok(d);
        }
        // Phase 2: everything fits; charge it all.
        let mut best: Option<PolicyDecision> = None;
        for i in 0..reqs.len() {
            let r = &reqs[i];
            let s = subjects[i];
            let Some(si) = s.set else {
                continue;
            };
            let g = locked_shard(guards, s.guard);
            let index = if s.stale {
                let found = g.table.find_bucket_index(s.h, |k| {
                    k.0.0 == s.set_id && k.0.1 == r.kind && k.0.2 == *r.key
                });
                found.expect("sweeps keep the states of a check in progress")
            } else {
                s.index
            };
            let Shard {
                table: keys, extra, ..
            } = g;
            let Some((_, e)) = keys.get_bucket_mut(index) else {
                unreachable!("the state is at this index");
            };
            let d = e.check(&extra.sets[si], t, now, cost, true);
            if best.as_ref().is_none_or(|a| tighter(&d, a, t)) {
                best = Some(PolicyDecision { subject: i, ..d });
            }
        }
        Ok(best.unwrap_or_else(PolicyDecision::unlimited))
    }

    /// Panics if the table or any state breaks an invariant.
    #[cfg(any(test, fuzzing))]
    pub(crate) fn check_invariants(&self) {
        self.store.validate(
            |k| self.store.hash(&(k.1, &k.2)),
            |extra, k, e| {
                let set = extra
                    .by_id(k.0)
                    .expect("every stored key's set is in its shard's table");
                e.check_invariants(set);
            },
        );
    }
}

/// The shard behind guard `gi` of a multi-subject check.
fn locked_shard<'g, K>(guards: &'g mut [Option<PGuard<'_, K>>], gi: usize) -> &'g mut PShard<K> {
    guards[gi]
        .as_deref_mut()
        .expect("every subject's shard is locked")
}

/// `(seen, full_at)` of a stored entry, for sweeps.
fn idle<K>(x: &Arc<Compiled>, k: &PKey<K>, e: &mut Entry) -> (u64, u64) {
    match x.by_id(k.0) {
        Some(set) => e.idle(set),
        // Not reachable: a table change drops the keys of removed sets.
        None => (0, 0),
    }
}

/// Whether allowed decision `b` reports a tighter rule than `a` (least
/// remaining, then the latest reset), as a rule set ranks its own rules.
fn tighter(b: &PolicyDecision, a: &PolicyDecision, t: u64) -> bool {
    let key = |d: &PolicyDecision| {
        d.decision().map(|d| {
            (
                d.remaining(),
                std::cmp::Reverse(d.reset_at_ns().saturating_sub(t)),
            )
        })
    };
    key(b) < key(a)
}

/// Whether denial `b` reports a longer wait than denial `a`.
fn waits_longer(b: &PolicyDecision, a: &PolicyDecision, t: u64) -> bool {
    let wait = |d: &PolicyDecision| d.decision().map(|d| d.retry_at_ns().saturating_sub(t));
    wait(b) > wait(a)
}

fn validate_cost(cost: u32) -> Result<(), RateLimitError> {
    if cost == 0 {
        Err(RateLimitError::InvalidCost {
            cost,
            reason: "a check must ask for at least one unit",
        })
    } else {
        Ok(())
    }
}

fn check_capacity(set: &CompiledSet, cost: u32) -> Result<(), RateLimitError> {
    if cost > set.capacity {
        return Err(RateLimitError::InsufficientCapacity {
            cost,
            capacity: set.capacity,
        });
    }
    Ok(())
}
