//! W-TinyLFU (Einziger, Friedman & Manes, "TinyLFU: A Highly Efficient
//! Cache Admission Policy", ACM TOS 2017), with Caffeine's adaptive window.
//!
//! New keys enter a small LRU *window* (1 % of the shard's weight at
//! first; [`crate::climb`] moves the split). The window's least recently
//! used entry is the *candidate* for the main space, a segmented LRU of
//! *probation* (20 %) and *protected* (80 %). While main has room the
//! candidate simply moves into probation; when it is full the candidate
//! duels main's victim (probation's least recently used entry) on their
//! estimated frequency in a count-min sketch, and the loser is evicted.
//! A candidate that is not more frequent loses, except that one with an
//! estimate of at least [`HASH_DOS_THRESHOLD`] wins one duel in 128 at
//! random (Caffeine's defence against an attacker who keeps main's victim
//! artificially hot). A heavy candidate has to win one duel per victim it
//! displaces, so it never pushes out many frequent light entries on the
//! strength of one comparison.
//!
//! # Ties
//! A candidate as frequent as the victim is where recency and frequency
//! disagree: Caffeine refuses it, which loses 1.1 points to moka on the P3
//! trace at 100,000 entries, while admitting every tie loses 2.6 points at
//! 32,768. So a tie admits the candidate with a probability the shard
//! learns, ARC-style, from what it would have hit: the keys a tie evicted
//! (the victim when the tie admitted, the candidate when it refused) are
//! remembered in two small ghost tables, and a miss on a key a refusal
//! evicted raises the probability by 1/32, a miss on a key an admission
//! evicted lowers it by 1/16 (refusing is the safer default: a refused key
//! that returns is counted again and wins its next duel). The ghosts hold
//! one fingerprint per 16 entries each (0.5 B per entry together): the
//! signal is a ratio of returns, so a sample of the evictions is enough.
//!
//! # Reads under the shared lock
//! A read only stores the entry's 2-bit read mark ([`Slab::touch_shared`],
//! nothing when the mark is already 3), so hits write nothing shared and
//! move nothing. The lists are CLOCK approximations of LRU: when the
//! policy meets an entry at the LRU end of a list it drains the entry's
//! mark into the sketch (one increment per read, up to 3 per visit, the
//! read buffer Caffeine keeps per thread kept in the entry instead) and
//! acts on it: a marked window entry goes to the window's MRU end, a
//! marked probation entry is promoted to protected, a marked protected
//! entry goes to protected's MRU end. Protected's overflow is demoted to
//! probation's MRU end. Every list is passed at most once per decision,
//! since each visit clears the mark it acts on.

use std::hash::{BuildHasher, Hash};

use super::evict::{Evict, Victim};
use super::list::List;
use super::slab::{NIL, Queue, Slab};
use crate::ghost::Ghost;
use crate::sketch::Sketch;
use crate::stats::EvictionCause;
use crate::time::LazyTick;

/// Frequency estimate from which a losing candidate still wins one duel
/// in 128 (Caffeine's value: below it a key is too rare to be an attack).
const HASH_DOS_THRESHOLD: u8 = 6;

/// Protected's share of main, in percent (the SLRU split of the paper and
/// Caffeine).
const PROTECTED_PERCENT: u64 = 80;

/// Sketch counters per expected entry: 16 (one 64-bit word), Caffeine's
/// size. Measured on the P3 trace (fixed 1 % window, one shard): 4 per
/// entry lose 1.4 points at 32,768 entries to collisions that rate
/// one-time keys as frequent.
const SKETCH_COUNTERS: u64 = 16;

/// The sketch halves after `20 × entries` additions. Caffeine's 10 ages
/// P3's slow loops out between two of their passes: 20 gains 0.5–1 point
/// on P3 at 10,000 and 32,768 entries and nothing is lost on OLTP.
const SKETCH_PERIOD: u64 = 20;

/// While the cache is in a scan (the climber's sampled hit ratio below
/// [`crate::climb::SCAN_RATE`]), the sketch halves after at least this
/// many additions however small the shard: a shard of a few hundred
/// entries otherwise forgets every count within a few thousand of its
/// requests, before the keys of a slow loop come back, and frequency can
/// then find nothing. Only in a scan: kept always, the same floor costs a
/// shifting working set 3 points against LRU (the old set's counts
/// outlive it; `cache/tests/phases.rs`). 50,000 is the largest floor that
/// left P3 at 100,000 entries (3,125 per shard, 62,500 additions) as it
/// was. Measured on P3 at 1,000 entries (4 shards of 250, runs differing
/// only in the hasher's seed): 0.86–1.09 %, median 0.93 (8 runs) →
/// 0.89–1.13 %, median 1.04 (12 runs), against exact LRU's 1.05 %; P3 at
/// 10,000 / 32,768 / 100,000 and OLTP unchanged (their samples are not
/// scans).
const SCAN_MIN_SAMPLE: u64 = 50_000;

/// Entries per ghost slot (each ghost table holds one fingerprint per
/// `GHOST_SPARSITY` entries of the shard).
const GHOST_SPARSITY: usize = 16;

/// The tie-admission probability is a fraction of `TIE_ONE`.
const TIE_ONE: u32 = 1 << 16;
/// Its step up (a refused tie returned) and down (an admitted tie's victim
/// returned).
const TIE_UP: u32 = TIE_ONE / 32;
const TIE_DOWN: u32 = TIE_ONE / 16;

/// The window, the two main segments and the sketch.
pub(crate) struct WTinyLfu {
    /// `Queue::Small`.
    window: List,
    /// `Queue::Main`.
    probation: List,
    /// `Queue::Protected`.
    protected: List,
    capacity: u64,
    window_target: u64,
    protected_target: u64,
    /// The weight of the entry being inserted, between `place` and `link`
    /// (it joins the window, so it counts against the window's target).
    incoming: u64,
    /// Its key's hash.
    incoming_hash: u64,
    sketch: Sketch,
    /// xorshift64 state for the duel jitter and tie admissions.
    rng: u64,
    /// Keys evicted by a tie that admitted the candidate (the victims).
    tie_admitted: Ghost,
    /// Keys evicted by a tie that refused the candidate.
    tie_refused: Ghost,
    /// The probability, in `TIE_ONE`ths, that a tie admits the candidate.
    tie_p: u32,
}

impl WTinyLfu {
    /// A policy for a shard of `capacity` weight and about `est_entries`
    /// entries (sizes the sketch), its window `window` of the weight;
    /// `seed` makes the jitter differ between shards.
    pub(crate) fn new(capacity: u64, est_entries: usize, window: f64, seed: u64) -> Self {
        let mut p = Self {
            window: List::EMPTY,
            probation: List::EMPTY,
            protected: List::EMPTY,
            capacity,
            window_target: 0,
            protected_target: 0,
            incoming: 0,
            incoming_hash: 0,
            sketch: Sketch::new(est_entries, SKETCH_COUNTERS, SKETCH_PERIOD),
            rng: seed | 1,
            tie_admitted: Ghost::new(est_entries / GHOST_SPARSITY),
            tie_refused: Ghost::new(est_entries / GHOST_SPARSITY),
            tie_p: TIE_ONE / 2,
        };
        p.set_targets(window);
        p
    }

    /// Sets the window to `fraction` of the weight (rounded; protected
    /// gets its share of the rest). Entries move lazily: an oversized
    /// window feeds candidates at the next evictions, an oversized main
    /// gives up victims; [`Self::resize`] also demotes protected's
    /// overflow at once.
    fn set_targets(&mut self, fraction: f64) {
        // At least one unit: an unweighted entry always fits the window,
        // so only an entry heavier than the window can be refused.
        let w = (self.capacity as f64 * fraction.clamp(0.0, 1.0)).round() as u64;
        self.window_target = w.max(1).min(self.capacity);
        self.protected_target = (self.capacity - self.window_target) * PROTECTED_PERCENT / 100;
    }

    /// Whether the sketch keeps counts for at least [`SCAN_MIN_SAMPLE`]
    /// additions (the cache is in a scan) or for its usual period.
    pub(crate) fn set_scan_memory(&mut self, scan: bool) {
        self.sketch.set_min_sample(scan.then_some(SCAN_MIN_SAMPLE));
    }

    /// [`Self::set_targets`], then protected's overflow demoted.
    pub(crate) fn resize<K: Hash, V, S: BuildHasher>(
        &mut self,
        fraction: f64,
        slab: &mut Slab<K, V>,
        hasher: &S,
    ) {
        self.set_targets(fraction);
        self.demote(slab, hasher);
    }

    fn list_mut(&mut self, q: Queue) -> &mut List {
        match q {
            Queue::Small => &mut self.window,
            Queue::Main => &mut self.probation,
            Queue::Protected => &mut self.protected,
        }
    }

    fn main_weight(&self) -> u64 {
        self.probation.weight + self.protected.weight
    }

    fn main_target(&self) -> u64 {
        self.capacity - self.window_target
    }

    /// Moves entry `i` to the MRU end of `q`.
    fn move_to<K, V>(&mut self, slab: &mut Slab<K, V>, i: u32, q: Queue) {
        self.unlink(slab, i);
        self.list_mut(q).push_back(slab, i, q);
    }

    /// Drains entry `i`'s read mark into the sketch; whether it had one.
    fn drain_mark<K: Hash, V, S: BuildHasher>(
        &mut self,
        slab: &mut Slab<K, V>,
        i: u32,
        hasher: &S,
    ) -> bool {
        let f = slab.entry(i).freq();
        if f == 0 {
            return false;
        }
        let h = hasher.hash_one(&slab.entry(i).key);
        self.sketch.increment_by(h, u64::from(f));
        slab.entry_mut(i).set_freq(0);
        true
    }

    /// The window's LRU entry after second chances (a marked head moves
    /// to the MRU end); `None` when the window is empty.
    fn window_lru<K: Hash, V, S: BuildHasher>(
        &mut self,
        slab: &mut Slab<K, V>,
        hasher: &S,
    ) -> Option<u32> {
        loop {
            let i = self.window.head;
            if i == NIL {
                return None;
            }
            if !self.drain_mark(slab, i, hasher) {
                return Some(i);
            }
            self.move_to(slab, i, Queue::Small);
        }
    }

    /// Keeps protected within its target: its LRU entry (after second
    /// chances) moves to probation's MRU end.
    fn demote<K: Hash, V, S: BuildHasher>(&mut self, slab: &mut Slab<K, V>, hasher: &S) {
        while self.protected.weight > self.protected_target {
            let i = self.protected.head;
            if i == NIL {
                break;
            }
            let q = if self.drain_mark(slab, i, hasher) {
                Queue::Protected
            } else {
                Queue::Main
            };
            self.move_to(slab, i, q);
        }
    }

    /// Main's victim: probation's LRU entry once the marked ones ahead of
    /// it are promoted, else (probation empty) protected's LRU entry after
    /// second chances; `None` when main is empty.
    fn main_victim<K: Hash, V, S: BuildHasher>(
        &mut self,
        slab: &mut Slab<K, V>,
        hasher: &S,
    ) -> Option<u32> {
        loop {
            let i = self.probation.head;
            if i != NIL {
                if !self.drain_mark(slab, i, hasher) {
                    return Some(i);
                }
                self.move_to(slab, i, Queue::Protected);
                self.demote(slab, hasher);
                continue;
            }
            let i = self.protected.head;
            if i == NIL {
                return None;
            }
            if !self.drain_mark(slab, i, hasher) {
                return Some(i);
            }
            self.move_to(slab, i, Queue::Protected);
        }
    }

    fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    /// The duel between the candidate of hash `c` and main's victim of
    /// hash `v`: whether the candidate wins. A tie's loser is remembered in
    /// the ghost of its decision.
    fn admit(&mut self, c: u64, v: u64) -> bool {
        let (fc, fv) = (self.sketch.estimate(c), self.sketch.estimate(v));
        if fc > fv {
            return true;
        }
        if fc == fv {
            let admit = (self.next_random() % u64::from(TIE_ONE)) < u64::from(self.tie_p);
            if admit {
                self.tie_admitted.insert(v);
            } else {
                self.tie_refused.insert(c);
            }
            return admit;
        }
        fc >= HASH_DOS_THRESHOLD && self.next_random() & 127 == 0
    }

    /// A miss on `hash`: if a tie evicted it, the other decision would
    /// have hit; lean towards it.
    fn learn_ties(&mut self, hash: u64) {
        if self.tie_admitted.take(hash) {
            self.tie_p = self.tie_p.saturating_sub(TIE_DOWN);
        }
        if self.tie_refused.take(hash) {
            self.tie_p = (self.tie_p + TIE_UP).min(TIE_ONE);
        }
    }
}

/// Entry `i` given up, expired or evicted for capacity.
fn give_up<K: Hash, V, S: BuildHasher>(
    slab: &Slab<K, V>,
    i: u32,
    now: &mut LazyTick<'_>,
    hasher: &S,
) -> Victim {
    let cause = if slab.is_expired(i, now) {
        EvictionCause::Expired
    } else {
        EvictionCause::Capacity
    };
    Victim {
        index: i,
        hash: hasher.hash_one(&slab.entry(i).key),
        cause,
    }
}

impl Evict for WTinyLfu {
    #[inline]
    fn place<K: Hash, V, S: BuildHasher>(
        &mut self,
        slab: &mut Slab<K, V>,
        hash: u64,
        weight: u64,
        hasher: &S,
    ) -> Queue {
        // A miss is an access.
        self.sketch.increment(hash);
        self.learn_ties(hash);
        // While main has room (the cache is filling, or main gave up
        // victims), the window's overflow moves into probation uncontested.
        while self.window.weight + weight > self.window_target {
            let Some(c) = self.window_lru(slab, hasher) else {
                break;
            };
            if self.main_weight() + slab.weight_of(c) > self.main_target() {
                break;
            }
            self.move_to(slab, c, Queue::Main);
        }
        self.incoming = weight;
        self.incoming_hash = hash;
        Queue::Small
    }
    #[inline]
    fn link<K, V>(&mut self, slab: &mut Slab<K, V>, i: u32, q: Queue) {
        self.list_mut(q).push_back(slab, i, q);
        self.incoming = 0;
    }
    #[inline]
    fn unlink<K, V>(&mut self, slab: &mut Slab<K, V>, i: u32) {
        let q = slab.entry(i).queue();
        self.list_mut(q).unlink(slab, i);
    }
    #[inline]
    fn reweigh(&mut self, q: Queue, old: u64, new: u64) {
        self.list_mut(q).reweigh(old, new);
    }
    fn victim<K: Hash, V, S: BuildHasher>(
        &mut self,
        slab: &mut Slab<K, V>,
        now: &mut LazyTick<'_>,
        hasher: &S,
    ) -> Option<Victim> {
        loop {
            if self.window.weight + self.incoming > self.window_target
                && let Some(c) = self.window_lru(slab, hasher)
            {
                if slab.is_expired(c, now) {
                    return Some(give_up(slab, c, now, hasher));
                }
                if self.main_weight() + slab.weight_of(c) <= self.main_target() {
                    self.move_to(slab, c, Queue::Main);
                    continue;
                }
                let Some(v) = self.main_victim(slab, hasher) else {
                    // Heavier than all of main: nothing to duel.
                    return Some(give_up(slab, c, now, hasher));
                };
                if slab.is_expired(v, now) {
                    return Some(give_up(slab, v, now, hasher));
                }
                let hc = hasher.hash_one(&slab.entry(c).key);
                let hv = hasher.hash_one(&slab.entry(v).key);
                // The loser goes; a winning candidate stays at the window's
                // LRU end and moves into main once there is room for it.
                // Neither has expired (checked above); their hashes are known.
                let (index, hash) = if self.admit(hc, hv) { (v, hv) } else { (c, hc) };
                return Some(Victim {
                    index,
                    hash,
                    cause: EvictionCause::Capacity,
                });
            }
            if self.window.weight + self.incoming > self.window_target
                && self.incoming > 0
                && let Some(v) = self.main_victim(slab, hasher)
            {
                // The window is empty and the entry being inserted overflows
                // it alone: it is the candidate, and duels main's victim.
                if slab.is_expired(v, now) {
                    return Some(give_up(slab, v, now, hasher));
                }
                let hv = hasher.hash_one(&slab.entry(v).key);
                if self.admit(self.incoming_hash, hv) {
                    return Some(Victim {
                        index: v,
                        hash: hv,
                        cause: EvictionCause::Capacity,
                    });
                }
                self.incoming = 0;
                return Some(Victim {
                    index: NIL,
                    hash: self.incoming_hash,
                    cause: EvictionCause::Capacity,
                });
            }
            // The window is within its target, so main is over its own.
            if let Some(v) = self.main_victim(slab, hasher) {
                return Some(give_up(slab, v, now, hasher));
            }
            let c = self.window_lru(slab, hasher)?;
            return Some(give_up(slab, c, now, hasher));
        }
    }
    #[inline]
    fn sweeps(&self) -> bool {
        true
    }
    fn clear(&mut self) {
        self.window = List::EMPTY;
        self.probation = List::EMPTY;
        self.protected = List::EMPTY;
        self.incoming = 0;
        self.sketch.clear();
        self.tie_admitted.clear();
        self.tie_refused.clear();
        self.tie_p = TIE_ONE / 2;
    }
    fn heap_bytes(&self) -> usize {
        self.sketch.heap_bytes() + self.tie_admitted.heap_bytes() + self.tie_refused.heap_bytes()
    }
    fn check_invariants<K, V>(&self, slab: &Slab<K, V>, mut each: impl FnMut(u32)) {
        self.window.check_invariants(slab, Queue::Small, &mut each);
        self.probation
            .check_invariants(slab, Queue::Main, &mut each);
        self.protected
            .check_invariants(slab, Queue::Protected, &mut each);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A policy sized for 4,096 entries, its sketch holding `a` and `b`
    /// at the same estimate.
    fn tied(a: u64, b: u64) -> WTinyLfu {
        let mut p = WTinyLfu::new(4_096, 4_096, 0.01, 7);
        for h in [a, b] {
            p.sketch.increment_by(h, 2);
        }
        assert_eq!(p.sketch.estimate(a), p.sketch.estimate(b));
        p
    }

    #[test]
    fn ties_learn_from_the_keys_they_evicted() {
        let (c, v) = (0x1234_5678_9ABC_DEF0, 0x0FED_CBA9_8765_4321);
        // Refused candidates keep coming back: ties end up admitting.
        let mut p = tied(c, v);
        for _ in 0..200 {
            if !p.admit(c, v) {
                p.learn_ties(c);
            }
        }
        assert_eq!(p.tie_p, TIE_ONE);
        assert!((0..50).all(|_| p.admit(c, v)));
        // Admitted ties' victims keep coming back: ties end up refusing.
        let mut p = tied(c, v);
        for _ in 0..200 {
            if p.admit(c, v) {
                p.learn_ties(v);
            }
        }
        assert_eq!(p.tie_p, 0);
        assert!((0..50).all(|_| !p.admit(c, v)));
        // A clear forgets what was learnt.
        p.clear();
        assert_eq!(p.tie_p, TIE_ONE / 2);
    }

    #[test]
    fn a_strictly_more_frequent_candidate_always_wins_and_learns_nothing() {
        let (c, v) = (11u64, 22u64);
        let mut p = tied(c, v);
        p.sketch.increment(c);
        for _ in 0..100 {
            assert!(p.admit(c, v));
            p.learn_ties(v);
        }
        assert_eq!(p.tie_p, TIE_ONE / 2);
    }
}
