//! Policies: several rules per request, checked atomically, resolved from
//! a rules table by tier, endpoint and key kind, changeable at run time.

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hashbrown::HashMap;
use parking_lot::{Mutex, RwLock};

use crate::decision::Decision;
use crate::keyed::{DefaultHasher, FailMode, KeyedConfig};
use crate::rule::Ruled;
use crate::rules::{AlgorithmKind, KeyKind, RuleTable, Tier};
use crate::store::Store;
use crate::time::nanos_since;
use crate::{RateLimitError, algorithm::cap_decision};

/// Most limits one rule set may hold.
pub const MAX_LIMITS: usize = 8;
/// Longest rule name, in bytes.
pub const MAX_NAME: usize = 32;

/// A rule name, stored inline (no allocation, no shared reference count
/// in decisions): printable ASCII without `"` or `\`, at most
/// [`MAX_NAME`] bytes, so it is always a valid structured-field string.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RuleName {
    buf: [u8; MAX_NAME],
    len: u8,
}

impl RuleName {
    /// Checks and stores `name`.
    ///
    /// # Errors
    /// [`RateLimitError::InvalidRule`] when `name` is empty, longer than
    /// [`MAX_NAME`] bytes, or holds anything but printable ASCII other
    /// than `"` and `\`.
    pub fn new(name: &str) -> Result<Self, RateLimitError> {
        let ok = !name.is_empty()
            && name.len() <= MAX_NAME
            && name
                .bytes()
                .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\');
        if !ok {
            return Err(RateLimitError::InvalidRule {
                rule: name.to_string(),
                reason: "names are 1 to 32 bytes of printable ASCII without '\"' or '\\'",
            });
        }
        let mut buf = [0u8; MAX_NAME];
        buf[..name.len()].copy_from_slice(name.as_bytes());
        Ok(Self {
            buf,
            len: name.len() as u8,
        })
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or("")
    }
}

impl fmt::Debug for RuleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for RuleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One request subject: who is asking (`kind`, `key`), at which tier and
/// endpoint.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a, K> {
    /// The subject's tier, when known (anonymous IPs have none).
    pub tier: Option<Tier>,
    /// The endpoint called.
    pub endpoint: &'a str,
    /// What the key identifies.
    pub kind: KeyKind,
    /// The key (user id, IP, API key).
    pub key: &'a K,
}

/// A limit as advertised in `RateLimit-Policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyInfo {
    /// The rule name.
    pub name: RuleName,
    /// Units per window.
    pub limit: u32,
    /// The window.
    pub window: Duration,
}

/// The outcome of a policy check: allowed or not, and the one rule a
/// response should report — the rule that denied (the one with the longest
/// wait when several did), or when allowed the tightest rule (least
/// remaining).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyDecision {
    allowed: bool,
    subject: usize,
    rule: Option<(PolicyInfo, Decision)>,
}

impl PolicyDecision {
    /// Whether the request is allowed (every rule of every subject had room).
    pub fn is_allowed(&self) -> bool {
        self.allowed
    }

    /// On denial, the name of the rule that denied.
    pub fn denied_by(&self) -> Option<&str> {
        if self.allowed {
            None
        } else {
            self.rule.as_ref().map(|(p, _)| p.name.as_str())
        }
    }

    /// The reported rule and its decision (`None` when no rule applies).
    pub fn rule(&self) -> Option<(&PolicyInfo, &Decision)> {
        self.rule.as_ref().map(|(p, d)| (p, d))
    }

    /// The reported rule's decision: tightest remaining and its reset.
    pub fn decision(&self) -> Option<&Decision> {
        self.rule.as_ref().map(|(_, d)| d)
    }

    /// Index of the subject (in a multi-subject check) the reported rule
    /// belongs to.
    pub fn subject(&self) -> usize {
        self.subject
    }
}

#[derive(Debug, Clone)]
struct CompiledRule {
    id: u32,
    info: PolicyInfo,
    fresh: Ruled,
}

#[derive(Debug, Clone)]
struct CompiledSet {
    id: u32,
    rules: Vec<CompiledRule>,
}

const NO_SET: u16 = u16::MAX;

/// A rules table compiled for O(1) resolution.
#[derive(Debug)]
pub(crate) struct Compiled {
    sets: Vec<CompiledSet>,
    by_id: HashMap<u32, usize>,
    endpoints: HashMap<String, usize>,
    /// Per endpoint row (the last is "any other endpoint"):
    /// `[tier or none][kind]` → index into `sets`.
    rows: Vec<[[u16; 3]; 4]>,
}

fn tier_idx(t: Option<Tier>) -> usize {
    match t {
        Some(Tier::Free) => 0,
        Some(Tier::Premium) => 1,
        Some(Tier::Enterprise) => 2,
        None => 3,
    }
}

fn kind_idx(k: KeyKind) -> usize {
    match k {
        KeyKind::User => 0,
        KeyKind::Ip => 1,
        KeyKind::ApiKey => 2,
    }
}

type Selector = (Option<Tier>, Option<String>, Option<KeyKind>);
type LimitKey = (String, u64, u32, Option<u32>, AlgorithmKind);

/// Stable ids: the same selector (and the same limit within it) keeps its
/// id across table changes, which is how state survives them.
#[derive(Debug, Default)]
struct Registry {
    sets: std::collections::HashMap<Selector, u32>,
    rules: std::collections::HashMap<(u32, LimitKey), u32>,
}

impl Compiled {
    fn new(table: &RuleTable, reg: &mut Registry) -> Result<Self, RateLimitError> {
        let mut sets = Vec::with_capacity(table.rules.len());
        let mut selectors: Vec<Selector> = Vec::new();
        for rs in &table.rules {
            let sel: Selector = (rs.tier, rs.endpoint.clone(), rs.kind);
            let label = format!("{:?}/{:?}/{:?}", sel.0, sel.1, sel.2);
            if selectors.contains(&sel) {
                return Err(RateLimitError::InvalidRule {
                    rule: label,
                    reason: "two rule sets have the same tier, endpoint and kind",
                });
            }
            if rs.limits.is_empty() || rs.limits.len() > MAX_LIMITS {
                return Err(RateLimitError::InvalidRule {
                    rule: label,
                    reason: "a rule set holds 1 to 8 limits",
                });
            }
            let mut rules = Vec::with_capacity(rs.limits.len());
            let mut names = Vec::new();
            for l in &rs.limits {
                let name_s = l.display_name();
                let name = RuleName::new(&name_s)?;
                if names.contains(&name) {
                    return Err(RateLimitError::InvalidRule {
                        rule: name_s,
                        reason: "two limits of one rule set share a name",
                    });
                }
                names.push(name);
                let (fresh, quota) = Ruled::compile(l)?;
                rules.push((name, fresh, quota, l));
            }
            let n = reg.sets.len() as u32;
            let set_id = *reg.sets.entry(sel.clone()).or_insert(n);
            let rules = rules
                .into_iter()
                .map(|(name, fresh, quota, l)| {
                    let key: LimitKey = (
                        name.as_str().to_string(),
                        crate::time::duration_nanos(l.window.duration()),
                        l.count,
                        l.burst,
                        l.algorithm,
                    );
                    let n = reg.rules.len() as u32;
                    let id = *reg.rules.entry((set_id, key)).or_insert(n);
                    CompiledRule {
                        id,
                        info: PolicyInfo {
                            name,
                            limit: quota.limit(),
                            window: quota.period(),
                        },
                        fresh,
                    }
                })
                .collect();
            selectors.push(sel);
            sets.push(CompiledSet { id: set_id, rules });
        }
        let mut endpoints = HashMap::new();
        for (_, e, _) in &selectors {
            if let Some(e) = e {
                let n = endpoints.len();
                endpoints.entry(e.clone()).or_insert(n);
            }
        }
        let find = |t: Option<Tier>, e: Option<&str>, k: Option<KeyKind>| {
            selectors
                .iter()
                .position(|s| s.0 == t && s.1.as_deref() == e && s.2 == k)
        };
        let mut rows = vec![[[NO_SET; 3]; 4]; endpoints.len() + 1];
        let mut names: Vec<(&String, usize)> = endpoints.iter().map(|(e, &i)| (e, i)).collect();
        names.sort_by_key(|&(_, i)| i);
        let wild = endpoints.len();
        for (ri, row) in rows.iter_mut().enumerate().take(wild + 1) {
            let ep = names.get(ri).map(|(e, _)| e.as_str());
            for (ti, tier) in [
                Some(Tier::Free),
                Some(Tier::Premium),
                Some(Tier::Enterprise),
                None,
            ]
            .into_iter()
            .enumerate()
            {
                for (ki, kind) in [KeyKind::User, KeyKind::Ip, KeyKind::ApiKey]
                    .into_iter()
                    .enumerate()
                {
                    let k = Some(kind);
                    // Most specific first; endpoint outranks tier outranks kind.
                    let order = [
                        (ep, tier, k),
                        (ep, tier, None),
                        (ep, None, k),
                        (None, tier, k),
                        (ep, None, None),
                        (None, tier, None),
                        (None, None, k),
                        (None, None, None),
                    ];
                    let hit = order.iter().find_map(|&(e, t, k)| find(t, e, k));
                    row[ti][ki] = hit.map_or(NO_SET, |i| i as u16);
                }
            }
        }
        let by_id = sets.iter().enumerate().map(|(i, s)| (s.id, i)).collect();
        Ok(Self {
            sets,
            by_id,
            endpoints,
            rows,
        })
    }

    #[inline]
    fn resolve(&self, tier: Option<Tier>, endpoint: &str, kind: KeyKind) -> Option<&CompiledSet> {
        let row = if self.endpoints.is_empty() {
            0
        } else {
            self.endpoints
                .get(endpoint)
                .copied()
                .unwrap_or(self.rows.len() - 1)
        };
        let i = self.rows[row][tier_idx(tier)][kind_idx(kind)];
        self.sets.get(usize::from(i))
    }
}

/// One state per (rule set, key kind, key): the newest time seen and one
/// state per rule, in the set's order.
#[derive(Debug)]
pub(crate) struct Entry {
    seen: u64,
    rules: Vec<(u32, Ruled)>,
}

impl Entry {
    fn fresh(set: &CompiledSet, floor: u64) -> Self {
        Self {
            seen: floor,
            rules: set.rules.iter().map(|r| (r.id, r.fresh.clone())).collect(),
        }
    }

    fn idle(&self) -> (u64, u64) {
        (
            self.seen,
            self.rules
                .iter()
                .map(|(_, r)| r.full_at())
                .max()
                .unwrap_or(0),
        )
    }

    /// Re-shapes the state for a new version of its set: rules with the same
    /// id keep their state, new rules start full.
    fn migrate(&mut self, set: &CompiledSet) {
        let mut old = std::mem::take(&mut self.rules);
        self.rules = set
            .rules
            .iter()
            .map(|r| match old.iter().position(|(id, _)| *id == r.id) {
                Some(i) => old.swap_remove(i),
                None => (r.id, r.fresh.clone()),
            })
            .collect();
    }
}

/// Outcome of evaluating one entry: whether all its rules fit, and the rule
/// to report with its decision.
struct Eval {
    fits: bool,
    report: Option<(PolicyInfo, Decision)>,
}

/// Evaluates (and when `consume` and everything fits, charges) one entry.
fn evaluate(
    set: &CompiledSet,
    e: &mut Entry,
    t: u64,
    at: Instant,
    cost: u32,
    consume: bool,
    commit: bool,
) -> Eval {
    let t_eff = t.max(e.seen);
    if consume {
        e.seen = t_eff;
        for (_, r) in &mut e.rules {
            r.advance(t_eff);
        }
    }
    let fits = e.rules.iter().all(|(_, r)| r.fits(t_eff, cost));
    if fits && commit {
        for (_, r) in &mut e.rules {
            r.commit(t_eff, cost);
        }
    }
    let mut report: Option<(PolicyInfo, Decision)> = None;
    for ((_, r), c) in e.rules.iter().zip(&set.rules) {
        // On denial nothing was charged: report only the rules that deny.
        if !fits && r.fits(t_eff, cost) {
            continue;
        }
        let d = Decision {
            allowed: fits,
            from_key_cap: false,
            limit: r.capacity(),
            cost,
            now: t,
            at,
            t_eff,
            detail: r.detail(t_eff, cost, fits),
        };
        if report.as_ref().is_none_or(|(_, a)| better(a, &d, fits)) {
            report = Some((c.info, d));
        }
    }
    Eval { fits, report }
}

/// Whether `b` should be reported instead of `a`: on denial the longest
/// wait, when allowed the least remaining (then the longest reset).
fn better(a: &Decision, b: &Decision, allowed: bool) -> bool {
    if allowed {
        (b.remaining(), std::cmp::Reverse(b.reset_after()))
            < (a.remaining(), std::cmp::Reverse(a.reset_after()))
    } else {
        b.retry_after() > a.retry_after()
    }
}

type PKey<K> = (u32, KeyKind, K);

/// Multi-rule, multi-subject rate limiting over a [`RuleTable`].
///
/// Each request subject resolves (by tier, endpoint and key kind, most
/// specific row first) to a rule set; its rules are checked **atomically**:
/// when any rule denies, no rule is charged. [`check_all_at`] does the same
/// across several subjects (per-user AND per-IP): all or nothing.
/// [`set_table`] swaps the rules at run time; rules that did not change keep
/// their state, new ones start full.
///
/// State is one small lock per (rule set, key); keys are sharded as in
/// [`KeyedRateLimiter`](crate::KeyedRateLimiter), with the same bounded
/// memory (full states dropped by amortised sweeps, hard cap with a
/// [`FailMode`]).
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
    origin: Instant,
    fail_mode: FailMode,
    store: Store<PKey<K>, Mutex<Entry>, S, Arc<Compiled>>,
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
            origin,
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
            g.table
                .retain(|((set_id, _, _), cell)| match compiled.by_id.get(set_id) {
                    Some(&i) => {
                        cell.get_mut().migrate(&compiled.sets[i]);
                        true
                    }
                    None => false,
                });
            g.extra = compiled.clone();
        }
        *self.current.write() = compiled;
        Ok(())
    }

    /// The limits that apply to `req` (for `RateLimit-Policy`), in table
    /// order; empty when none does.
    pub fn policies_for(&self, req: &Request<'_, K>) -> Vec<PolicyInfo> {
        let c = self.current.read();
        c.resolve(req.tier, req.endpoint, req.kind)
            .map(|s| s.rules.iter().map(|r| r.info).collect())
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
    /// reported rule. Amortised O(rules).
    ///
    /// # Errors
    /// [`RateLimitError::InvalidCost`] for `cost == 0`;
    /// [`RateLimitError::InsufficientCapacity`] when some rule can never
    /// grant `cost`. Nothing is charged.
    pub fn check_at(
        &self,
        req: &Request<'_, K>,
        cost: u32,
        now: Instant,
    ) -> Result<PolicyDecision, RateLimitError> {
        self.single(req, cost, now, true)
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
        self.single(req, cost, now, false)
    }

    fn single(
        &self,
        req: &Request<'_, K>,
        cost: u32,
        now: Instant,
        consume: bool,
    ) -> Result<PolicyDecision, RateLimitError> {
        validate_cost(cost)?;
        let t = nanos_since(self.origin, now);
        let sh = self.store.hash(&(req.kind, req.key));
        let shard = self.store.shard(sh);
        {
            let g = shard.read();
            let Some(set) = g.extra.resolve(req.tier, req.endpoint, req.kind) else {
                return Ok(PolicyDecision {
                    allowed: true,
                    subject: 0,
                    rule: None,
                });
            };
            check_capacity(set, cost)?;
            let h = self.store.hash(&(set.id, req.kind, req.key));
            if let Some((_, cell)) = g.table.find(h, |(k, _)| {
                k.0 == set.id && k.1 == req.kind && k.2 == *req.key
            }) {
                let ev = evaluate(set, &mut cell.lock(), t, now, cost, consume, consume);
                return Ok(PolicyDecision {
                    allowed: ev.fits,
                    subject: 0,
                    rule: ev.report,
                });
            }
            if !consume {
                let mut e = Entry::fresh(set, g.floor);
                let ev = evaluate(set, &mut e, t, now, cost, false, false);
                return Ok(PolicyDecision {
                    allowed: ev.fits,
                    subject: 0,
                    rule: ev.report,
                });
            }
        }
        let mut g = shard.write();
        let table = g.extra.clone();
        let Some(set) = table.resolve(req.tier, req.endpoint, req.kind) else {
            return Ok(PolicyDecision {
                allowed: true,
                subject: 0,
                rule: None,
            });
        };
        check_capacity(set, cost)?;
        let pkey = (set.id, req.kind, req.key.clone());
        let h = self.store.hash(&pkey);
        let cell = match g.table.find_mut(h, |(k, _)| *k == pkey) {
            Some((_, cell)) => cell,
            None => match self.store.insert_locked(
                &mut g,
                h,
                &pkey,
                t,
                |floor| Mutex::new(Entry::fresh(set, floor)),
                |c| c.get_mut().idle(),
            ) {
                Ok(cell) => cell,
                Err(at_cap) => return Ok(self.at_cap(set, cost, t, now, at_cap.retry_at, 0)),
            },
        };
        let ev = evaluate(set, cell.get_mut(), t, now, cost, true, true);
        Ok(PolicyDecision {
            allowed: ev.fits,
            subject: 0,
            rule: ev.report,
        })
    }

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
            allowed,
            subject,
            rule: Some((
                r.info,
                cap_decision(allowed, r.fresh.capacity(), cost, t, now, retry_at),
            )),
        }
    }

    /// Checks `cost` units for several subjects of one request (e.g. the
    /// user AND the client IP) as one atomic step: either every rule of
    /// every subject is charged, or none is. Subjects no rule applies to
    /// are skipped. Takes the write locks of the subjects' shards in
    /// ascending order (deadlock-free).
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
        let t = nanos_since(self.origin, now);
        let shard_of: Vec<usize> = reqs
            .iter()
            .map(|r| self.store.shard_index(self.store.hash(&(r.kind, r.key))))
            .collect();
        let mut order: Vec<usize> = shard_of.clone();
        order.sort_unstable();
        order.dedup();
        let mut guards: Vec<_> = order
            .iter()
            .map(|&i| (i, self.store.shard_at(i).write()))
            .collect();
        let gi = |s: usize| order.binary_search(&s).unwrap_or(0);
        // Resolve and validate everything before touching any state.
        let mut plan: Vec<Option<(Arc<Compiled>, usize, u64)>> = Vec::with_capacity(reqs.len());
        for (i, r) in reqs.iter().enumerate() {
            let table = guards[gi(shard_of[i])].1.extra.clone();
            match table.resolve(r.tier, r.endpoint, r.kind) {
                None => plan.push(None),
                Some(set) => {
                    check_capacity(set, cost)?;
                    let si = table.by_id.get(&set.id).copied().unwrap_or(0);
                    let h = self.store.hash(&(set.id, r.kind, r.key));
                    for (j, prev) in plan.iter().enumerate() {
                        if let Some((pt, psi, _)) = prev
                            && pt.sets[*psi].id == set.id
                            && reqs[j].kind == r.kind
                            && reqs[j].key == r.key
                        {
                            return Err(RateLimitError::DuplicateSubject {
                                first: j,
                                second: i,
                            });
                        }
                    }
                    plan.push(Some((table, si, h)));
                }
            }
        }
        // Phase 1: make sure every state exists and see whether all fit.
        let mut denied: Option<(usize, PolicyInfo, Decision)> = None;
        for (i, r) in reqs.iter().enumerate() {
            let Some((table, si, h)) = &plan[i] else {
                continue;
            };
            let set = &table.sets[*si];
            let g = &mut guards[gi(shard_of[i])].1;
            let pkey = (set.id, r.kind, r.key.clone());
            if g.table.find_mut(*h, |(k, _)| *k == pkey).is_none() {
                let ins = self.store.insert_locked(
                    g,
                    *h,
                    &pkey,
                    t,
                    |floor| Mutex::new(Entry::fresh(set, floor)),
                    |c| c.get_mut().idle(),
                );
                if let Err(at_cap) = ins {
                    let d = self.at_cap(set, cost, t, now, at_cap.retry_at, i);
                    if !d.allowed {
                        return Ok(d);
                    }
                    plan[i] = None; // fail open: untracked
                    continue;
                }
            }
            let Some((_, cell)) = g.table.find_mut(*h, |(k, _)| *k == pkey) else {
                continue;
            };
            let ev = evaluate(set, cell.get_mut(), t, now, cost, true, false);
            if !ev.fits
                && let Some((info, d)) = ev.report
                && denied.as_ref().is_none_or(|(_, _, a)| better(a, &d, false))
            {
                denied = Some((i, info, d));
            }
        }
        if let Some((i, info, d)) = denied {
            return Ok(PolicyDecision {
                allowed: false,
                subject: i,
                rule: Some((info, d)),
            });
        }
        // Phase 2: everything fits; charge it all.
        let mut best: Option<(usize, PolicyInfo, Decision)> = None;
        for (i, r) in reqs.iter().enumerate() {
            let Some((table, si, h)) = &plan[i] else {
                continue;
            };
            let set = &table.sets[*si];
            let g = &mut guards[gi(shard_of[i])].1;
            let Some((_, cell)) = g
                .table
                .find_mut(*h, |(k, _)| k.0 == set.id && k.1 == r.kind && k.2 == *r.key)
            else {
                continue;
            };
            let ev = evaluate(set, cell.get_mut(), t, now, cost, true, true);
            if let Some((info, d)) = ev.report
                && best.as_ref().is_none_or(|(_, _, a)| better(a, &d, true))
            {
                best = Some((i, info, d));
            }
        }
        drop(guards);
        Ok(match best {
            Some((i, info, d)) => PolicyDecision {
                allowed: true,
                subject: i,
                rule: Some((info, d)),
            },
            None => PolicyDecision {
                allowed: true,
                subject: 0,
                rule: None,
            },
        })
    }

    /// Panics if the table or any state breaks an invariant.
    #[cfg(any(test, fuzzing))]
    pub(crate) fn validate(&self) {
        self.store.validate(
            |k| self.store.hash(&(k.1, &k.2)),
            |c| {
                let e = c.lock();
                for (_, r) in &e.rules {
                    r.validate(e.seen);
                }
            },
        );
    }
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
    for r in &set.rules {
        let capacity = r.fresh.capacity();
        if cost > capacity {
            return Err(RateLimitError::InsufficientCapacity { cost, capacity });
        }
    }
    Ok(())
}
