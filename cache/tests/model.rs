//! Property tests against a naive model: an exact LRU list with expiry
//! (linear scans over a `Vec`, least recently used first).
//!
//! - `lru_policy_equals_model`: with `Policy::Lru` and one shard the cache
//!   IS an exact LRU, so every result (hit or miss, the value returned, the
//!   value `remove` returns, insert errors) and every eviction count by
//!   cause equals the model's, step by step.
//! - `default_policy_keeps_invariants`: the default (S3-FIFO, several
//!   shards, optional TinyLFU) is an approximation, so the model is used
//!   as ground truth of the latest write: a returned value is always the
//!   latest live write of that key, an expired entry is never returned, a
//!   just-inserted entry is present, capacity (entries and weight) is never
//!   exceeded.
//!
//! `validate()` (every structural invariant) runs after every step. Case
//! count: 256 by default, `PROPTEST_CASES` to change.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dispatchkit_cache::{Admission, Cache, CacheError, EvictionCause, Policy, Weigher};
use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, TestCaseError};

/// Value = (payload, weight the weigher reports).
type Val = (u32, u32);

#[derive(Debug, Clone)]
enum Op {
    Get(u8),
    Insert {
        key: u8,
        val: u32,
        weight: u32,
        ttl_ms: Option<u64>,
    },
    Remove(u8),
    Advance(u64),
    Purge,
}

fn op(keys: u8) -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0..keys).prop_map(Op::Get),
        5 => (0..keys, any::<u32>(), 0u32..6, proptest::option::of(1u64..400))
            .prop_map(|(key, val, weight, ttl_ms)| Op::Insert { key, val, weight, ttl_ms }),
        1 => (0..keys).prop_map(Op::Remove),
        2 => (1u64..300).prop_map(Op::Advance),
        1 => Just(Op::Purge),
    ]
}

#[derive(Debug, Clone)]
struct MEntry {
    key: u8,
    val: Val,
    weight: u64,
    deadline: Option<Instant>,
    idle: Option<Instant>,
}

/// The naive twin: exact LRU with expiry, weights and time-to-idle.
#[derive(Debug)]
struct Model {
    cap: u64,
    /// Every entry weighs 1 (the cache has no weigher).
    unit: bool,
    ttl: Option<Duration>,
    tti: Option<Duration>,
    /// Least recently used first.
    list: Vec<MEntry>,
    evictions: [u64; 4],
}

impl Model {
    fn expired(&self, e: &MEntry, now: Instant) -> bool {
        e.deadline.is_some_and(|d| now >= d) || e.idle.is_some_and(|d| now >= d)
    }

    fn weight(&self) -> u64 {
        self.list.iter().map(|e| e.weight).sum()
    }

    fn pos(&self, key: u8) -> Option<usize> {
        self.list.iter().position(|e| e.key == key)
    }

    fn get(&mut self, key: u8, now: Instant) -> Option<Val> {
        let i = self.pos(key)?;
        if self.expired(&self.list[i], now) {
            self.list.remove(i);
            self.evictions[1] += 1;
            return None;
        }
        let mut e = self.list.remove(i);
        e.idle = self.tti.map(|t| now + t);
        let v = e.val;
        self.list.push(e);
        Some(v)
    }

    /// Evicts from the LRU end until `extra` more weight fits.
    fn make_room(&mut self, extra: u64, now: Instant) {
        while self.weight() + extra > self.cap && !self.list.is_empty() {
            let e = self.list.remove(0);
            let cause = if self.expired(&e, now) { 1 } else { 0 };
            self.evictions[cause] += 1;
        }
    }

    fn insert(&mut self, key: u8, val: Val, ttl: Option<Duration>, now: Instant) -> Result<(), ()> {
        let weight = if self.unit {
            1
        } else {
            u64::from(val.1).max(1)
        };
        if weight > self.cap {
            return Err(());
        }
        let deadline = ttl.or(self.ttl).map(|t| now + t);
        let idle = self.tti.map(|t| now + t);
        if let Some(i) = self.pos(key) {
            let old = self.list.remove(i);
            if self.expired(&old, now) {
                self.evictions[1] += 1;
            } else {
                self.evictions[3] += 1;
            }
        }
        self.make_room(weight, now);
        self.list.push(MEntry {
            key,
            val,
            weight,
            deadline,
            idle,
        });
        Ok(())
    }

    fn remove(&mut self, key: u8, now: Instant) -> Option<Val> {
        let i = self.pos(key)?;
        let e = self.list.remove(i);
        if self.expired(&e, now) {
            self.evictions[1] += 1;
            None
        } else {
            self.evictions[2] += 1;
            Some(e.val)
        }
    }

    fn purge(&mut self, now: Instant) -> usize {
        let before = self.list.len();
        let list = std::mem::take(&mut self.list);
        self.list = list.into_iter().filter(|e| !self.expired(e, now)).collect();
        let n = before - self.list.len();
        self.evictions[1] += n as u64;
        n
    }
}

fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    }
}

type Events = Arc<Mutex<Vec<(u8, EvictionCause)>>>;

fn cache(
    cap: u64,
    ttl: Option<u64>,
    tti: Option<u64>,
    policy: Policy,
    shards: Option<usize>,
    admission: Admission,
    events: &Events,
) -> Cache<u8, Val, impl Weigher<u8, Val>> {
    let mut b = Cache::builder(cap)
        .record_stats(true)
        .weigher(|_: &u8, v: &Val| u64::from(v.1))
        .policy(policy)
        .admission(admission)
        .estimated_entries(cap as usize);
    if let Some(s) = shards {
        b = b.shards(s);
    }
    if let Some(t) = ttl {
        b = b.time_to_live(Duration::from_millis(t));
    }
    if let Some(t) = tti {
        b = b.time_to_idle(Duration::from_millis(t));
    }
    let ev = Arc::clone(events);
    b.eviction_listener(move |k, _, cause| ev.lock().unwrap().push((*k, cause)))
        .build()
        .unwrap()
}

/// Runs `ops` on the exact-LRU cache `c` and the model side by side.
fn check_lru<W: Weigher<u8, Val>>(
    c: &Cache<u8, Val, W>,
    mut m: Model,
    ops: &[Op],
    events: &Events,
) -> Result<(), TestCaseError> {
    let cap = m.cap;
    let t0 = Instant::now();
    let mut now = t0;
    let (mut hits, mut misses) = (0u64, 0u64);
    for (step, o) in ops.iter().enumerate() {
        match *o {
            Op::Get(k) => {
                let want = m.get(k, now);
                prop_assert_eq!(c.get_at(&k, now), want, "step {} {:?}", step, o);
                if want.is_some() {
                    hits += 1
                } else {
                    misses += 1
                }
            }
            Op::Insert {
                key,
                val,
                weight,
                ttl_ms,
            } => {
                let ttl = ttl_ms.map(Duration::from_millis);
                let want = m.insert(key, (val, weight), ttl, now);
                let got = match ttl {
                    Some(t) => c.insert_with_ttl_at(key, (val, weight), t, now),
                    None => c.insert_at(key, (val, weight), now),
                };
                match (want, got) {
                    (Ok(()), Ok(())) => {}
                    (Err(()), Err(CacheError::EntryTooHeavy { weight: w, max, .. })) => {
                        prop_assert_eq!(w, u64::from(weight));
                        prop_assert_eq!(max, cap);
                    }
                    (w, g) => {
                        prop_assert!(false, "step {} {:?}: model {:?}, cache {:?}", step, o, w, g)
                    }
                }
            }
            Op::Remove(k) => {
                prop_assert_eq!(
                    c.remove_at(&k, now),
                    m.remove(k, now),
                    "step {} {:?}",
                    step,
                    o
                );
            }
            Op::Advance(ms) => now += Duration::from_millis(ms),
            Op::Purge => prop_assert_eq!(c.purge_expired_at(now), m.purge(now)),
        }
        c.check_invariants();
        prop_assert_eq!(c.len(), m.list.len(), "step {} {:?}", step, o);
        prop_assert_eq!(c.weight(), m.weight());
        prop_assert!(c.weight() <= cap);
        let s = c.stats();
        prop_assert_eq!((s.hits, s.misses), (hits, misses));
        let e = s.evictions;
        prop_assert_eq!(
            [e.capacity, e.expired, e.explicit, e.replaced],
            m.evictions,
            "step {} {:?}",
            step,
            o
        );
        prop_assert_eq!(events.lock().unwrap().len() as u64, e.total());
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn lru_policy_equals_model(
        cap in 1u64..24,
        unit in any::<bool>(),
        ttl in proptest::option::of(50u64..500),
        tti in proptest::option::of(50u64..500),
        ops in proptest::collection::vec(op(16), 1..200),
    ) {
        let events: Events = Arc::default();
        let model = Model {
            cap,
            unit,
            ttl: ttl.map(Duration::from_millis),
            tti: tti.map(Duration::from_millis),
            list: Vec::new(),
            evictions: [0; 4],
        };
        if unit {
            // No weigher: capacity in entries.
            let mut b = Cache::builder(cap)
                .record_stats(true)
                .policy(Policy::Lru)
                .shards(1);
            if let Some(t) = ttl {
                b = b.time_to_live(Duration::from_millis(t));
            }
            if let Some(t) = tti {
                b = b.time_to_idle(Duration::from_millis(t));
            }
            let ev = Arc::clone(&events);
            let c = b.eviction_listener(move |k, _, cause| ev.lock().unwrap().push((*k, cause)))
                .build()
                .unwrap();
            check_lru(&c, model, &ops, &events)?;
        } else {
            let c = cache(cap, ttl, tti, Policy::Lru, Some(1), Admission::AdmitAll, &events);
            check_lru(&c, model, &ops, &events)?;
        }
    }

    #[test]
    fn default_policy_unit_weights_keep_invariants(
        cap in 1u64..100,
        ttl in proptest::option::of(50u64..500),
        ops in proptest::collection::vec(op(64), 1..400),
    ) {
        // No weigher: capacity in entries (the slab never outgrows it).
        let mut b = Cache::builder(cap).record_stats(true);
        if let Some(t) = ttl {
            b = b.time_to_live(Duration::from_millis(t));
        }
        let c = b.build().unwrap();
        let t0 = Instant::now();
        let mut now = t0;
        let mut truth: std::collections::HashMap<u8, (Val, Option<Instant>)> = Default::default();
        for (step, o) in ops.iter().enumerate() {
            match *o {
                Op::Get(k) => {
                    if let Some(v) = c.get_at(&k, now) {
                        let (want, dl) = truth[&k];
                        prop_assert_eq!(v, want, "step {}", step);
                        prop_assert!(dl.is_none_or(|d| now < d), "step {}: expired value returned", step);
                    }
                }
                Op::Insert { key, val, weight, ttl_ms } => {
                    let t = ttl_ms.map(Duration::from_millis);
                    match t {
                        Some(t) => c.insert_with_ttl_at(key, (val, weight), t, now).unwrap(),
                        None => c.insert_at(key, (val, weight), now).unwrap(),
                    }
                    let dl = t.or(ttl.map(Duration::from_millis)).map(|t| now + t);
                    truth.insert(key, ((val, weight), dl));
                    prop_assert_eq!(c.get_at(&key, now), Some((val, weight)), "step {}: just inserted", step);
                }
                Op::Remove(k) => {
                    if let Some(v) = c.remove_at(&k, now) {
                        prop_assert_eq!(v, truth[&k].0);
                    }
                    truth.remove(&k);
                }
                Op::Advance(ms) => now += Duration::from_millis(ms),
                Op::Purge => {
                    c.purge_expired_at(now);
                }
            }
            c.check_invariants();
            prop_assert!(c.len() as u64 <= cap);
            // Every insert of a key not live is in the cache or was removed
            // (the in-place replace path counts like the general one).
            let s = c.stats();
            let e = s.evictions;
            prop_assert_eq!(
                s.inserts - e.replaced,
                c.len() as u64 + e.capacity + e.expired + e.explicit,
                "step {}", step
            );
        }
    }

    #[test]
    fn default_policy_keeps_invariants(
        cap in 1u64..200,
        shards in proptest::option::of(0u32..4),
        (policy, admission) in prop_oneof![
            Just((Policy::S3Fifo, Admission::AdmitAll)),
            Just((Policy::S3Fifo, Admission::TinyLfu)),
            Just((Policy::WTinyLfu, Admission::TinyLfu)),
        ],
        ttl in proptest::option::of(50u64..500),
        tti in proptest::option::of(50u64..500),
        ops in proptest::collection::vec(op(64), 1..400),
    ) {
        // A power of two no larger than the capacity.
        let shards = shards.map(|e| {
            let mut s = 1usize << e;
            while s as u64 > cap {
                s /= 2;
            }
            s
        });
        let events: Events = Arc::default();
        let c = cache(cap, ttl, tti, policy, shards, admission, &events);
        // Ground truth of the latest write per key (no eviction): a value
        // the cache returns must be this one, and live.
        let mut truth = Model {
            cap: u64::MAX,
            unit: false,
            ttl: ttl.map(Duration::from_millis),
            tti: tti.map(Duration::from_millis),
            list: Vec::new(),
            evictions: [0; 4],
        };
        let max = c.max_entry_weight();
        let t0 = Instant::now();
        let mut now = t0;
        for (step, o) in ops.iter().enumerate() {
            match *o {
                Op::Get(k) => {
                    let got = c.get_at(&k, now);
                    let want = truth.get(k, now);
                    if got.is_some() {
                        prop_assert_eq!(got, want, "step {} {:?}: stale or expired value", step, o);
                    } else if want.is_some() {
                        // Evicted by the policy: the truth forgets it too,
                        // so its idle clock does not keep running.
                        truth.remove(k, now);
                    }
                }
                Op::Insert { key, val, weight, ttl_ms } => {
                    let ttl = ttl_ms.map(Duration::from_millis);
                    let r = match ttl {
                        Some(t) => c.insert_with_ttl_at(key, (val, weight), t, now),
                        None => c.insert_at(key, (val, weight), now),
                    };
                    if u64::from(weight).max(1) > max {
                        let too_heavy = matches!(r, Err(CacheError::EntryTooHeavy { .. }));
                        prop_assert!(too_heavy, "step {}: {:?}", step, r);
                    } else {
                        prop_assert!(r.is_ok(), "step {}: {:?}", step, r);
                        truth.insert(key, (val, weight), ttl, now).unwrap();
                        let got = c.get_at(&key, now);
                        if got.is_none() && policy == Policy::WTinyLfu {
                            // W-TinyLFU refused an entry heavier than its
                            // window: reported as a capacity eviction.
                            let last = events.lock().unwrap().last().copied();
                            prop_assert_eq!(last, Some((key, EvictionCause::Capacity)), "step {}", step);
                            truth.remove(key, now);
                        } else {
                            // Just inserted: present, with this value.
                            prop_assert_eq!(got, Some((val, weight)), "step {}", step);
                            truth.get(key, now);
                        }
                    }
                }
                Op::Remove(k) => {
                    let got = c.remove_at(&k, now);
                    let want = truth.remove(k, now);
                    if got.is_some() {
                        prop_assert_eq!(got, want, "step {} {:?}", step, o);
                    }
                }
                Op::Advance(ms) => now += Duration::from_millis(ms),
                Op::Purge => {
                    c.purge_expired_at(now);
                    truth.purge(now);
                }
            }
            c.check_invariants();
            prop_assert!(c.weight() <= cap, "weight {} > {}", c.weight(), cap);
            prop_assert!(c.len() as u64 <= cap);
            prop_assert_eq!(events.lock().unwrap().len() as u64, c.stats().evictions.total());
        }
    }
}
