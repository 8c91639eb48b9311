//! The sharded key → state table behind keyed limiters and policies.
//!
//! Each shard is a `parking_lot::RwLock` around a `hashbrown::HashTable`,
//! on its own cache line. Keyed limiters look an existing key up under the
//! read lock and update its cell atomically (GCRA: a CAS on the key's own
//! line) or under the key's own small lock, taking the write lock only to
//! insert a new key; policies check under the write lock (their state is
//! plain data). Keys whose state is back to full are dropped by amortised
//! sweeps during inserts, and a hard cap bounds the number of keys.

use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;

use hashbrown::HashTable;
use parking_lot::RwLock;

use crate::direct::Padded;

/// Shards smaller than this never sweep (except at the cap).
const MIN_SWEEP: usize = 32;

pub(crate) struct Shard<K, C, X> {
    pub(crate) table: HashTable<(K, C)>,
    /// Newest time of any state dropped here: a new key starts at it, so a
    /// dropped-and-recreated key never sees time run backwards.
    pub(crate) floor: u64,
    /// At the cap: no key can become full before this time, so a sweep
    /// before it would free nothing.
    next_sweep: u64,
    /// Time of the shard's last sweep: a sweep below the cap drops only
    /// the keys that were already full then.
    swept_at: u64,
    /// Per-shard data of the owner (a policy's rule table).
    pub(crate) extra: X,
}

type Shards<K, C, X> = Box<[Padded<RwLock<Shard<K, C, X>>>]>;

/// How a store hashes a stored key for its table (statically dispatched).
pub(crate) trait KeyHash<K, S> {
    fn key_hash(hasher: &S, key: &K) -> u64;
}

/// The key's own hash (keyed limiters).
pub(crate) struct OwnHash;

impl<K: Hash, S: BuildHasher> KeyHash<K, S> for OwnHash {
    #[inline]
    fn key_hash(hasher: &S, key: &K) -> u64 {
        hasher.hash_one(key)
    }
}

pub(crate) struct Store<K, C, S, X = (), H = OwnHash> {
    shards: Shards<K, C, X>,
    hasher: S,
    /// The table hash of a stored key.
    key_hash: PhantomData<fn() -> H>,
    mask: usize,
    cap_per_shard: usize,
}

/// Why a new key could not be inserted: the shard is at its cap and no key
/// can be dropped before `retry_at`.
pub(crate) struct AtCap {
    pub(crate) retry_at: u64,
}

impl<K: Hash + Eq + Clone, C, S: BuildHasher, X: Clone, H: KeyHash<K, S>> Store<K, C, S, X, H> {
    /// `shards` must be a power of two, `max_keys ≥ shards`.
    pub(crate) fn new(shards: usize, max_keys: usize, hasher: S, extra: X) -> Self {
        debug_assert!(shards.is_power_of_two() && max_keys >= shards);
        let shards_vec = (0..shards)
            .map(|_| {
                Padded(RwLock::new(Shard {
                    table: HashTable::new(),
                    floor: 0,
                    next_sweep: 0,
                    swept_at: 0,
                    extra: extra.clone(),
                }))
            })
            .collect();
        Self {
            shards: shards_vec,
            hasher,
            key_hash: PhantomData,
            mask: shards - 1,
            cap_per_shard: max_keys / shards,
        }
    }
}

impl<K: Hash + Eq + Clone, C, S: BuildHasher, X, H: KeyHash<K, S>> Store<K, C, S, X, H> {
    #[inline]
    pub(crate) fn hash<Q: Hash + ?Sized>(&self, k: &Q) -> u64 {
        self.hasher.hash_one(k)
    }

    /// The table hash of a stored key.
    #[inline]
    pub(crate) fn key_hash(&self, k: &K) -> u64 {
        H::key_hash(&self.hasher, k)
    }

    /// The shard of a key whose shard hash is `sh`. Bits 32.. are used:
    /// hashbrown takes bucket positions from the low bits and tags from the
    /// top 7, so the shard choice stays independent of both.
    #[inline]
    pub(crate) fn shard(&self, sh: u64) -> &RwLock<Shard<K, C, X>> {
        &self.shards[(sh >> 32) as usize & self.mask].0
    }

    #[inline]
    pub(crate) fn shard_index(&self, sh: u64) -> usize {
        (sh >> 32) as usize & self.mask
    }

    pub(crate) fn shard_at(&self, i: usize) -> &RwLock<Shard<K, C, X>> {
        &self.shards[i].0
    }

    pub(crate) fn shards(&self) -> impl Iterator<Item = &RwLock<Shard<K, C, X>>> {
        self.shards.iter().map(|p| &p.0)
    }

    pub(crate) fn cap_per_shard(&self) -> usize {
        self.cap_per_shard
    }

    /// Number of keys held. O(shards), takes each read lock in turn.
    pub(crate) fn len(&self) -> usize {
        self.shards().map(|s| s.read().table.len()).sum()
    }

    /// Inserts `key` (table hash `h`) into the write-locked shard `g`,
    /// sweeping first when the shard is due; returns its bucket index in
    /// the table, its cell and the shard's data, or `AtCap`.
    /// `new_cell(extra, floor)` makes the cell, `idle(extra, key, cell)`
    /// tells `(seen, full_at)` for sweeps, and a sweep keeps the keys for
    /// which `keep` is true even when full (the other subjects of a
    /// multi-subject check in progress).
    ///
    /// Sweeps are amortised O(1) per insert: a shard sweeps only when its
    /// table is about to grow (it is at capacity) or at the cap, and when a
    /// sweep frees less than half of the table the table doubles at once,
    /// so the next sweep is at least as many inserts away as it cost.
    #[expect(
        clippy::too_many_arguments,
        reason = "the key, its hash and time, and the owner's three cell callbacks"
    )]
    pub(crate) fn insert_locked<'g>(
        &self,
        g: &'g mut Shard<K, C, X>,
        h: u64,
        key: &K,
        now: u64,
        new_cell: impl FnOnce(&X, u64) -> C,
        mut idle: impl FnMut(&X, &K, &mut C) -> (u64, u64),
        keep: impl Fn(&K) -> bool,
    ) -> Result<(usize, &'g mut C, &'g X), AtCap> {
        let len = g.table.len();
        let at_cap = len >= self.cap_per_shard;
        let must_grow = len >= MIN_SWEEP && len >= g.table.capacity();
        if (must_grow && !at_cap) || (at_cap && now >= g.next_sweep) {
            Self::sweep(g, now, at_cap, &mut idle, &keep);
            let (len, capacity) = (g.table.len(), g.table.capacity());
            if len * 2 > capacity && len < self.cap_per_shard {
                g.table
                    .reserve(capacity.min(self.cap_per_shard - len), |(k, _)| {
                        self.key_hash(k)
                    });
            }
        }
        if g.table.len() >= self.cap_per_shard {
            return Err(AtCap {
                retry_at: g.next_sweep,
            });
        }
        let cell = new_cell(&g.extra, g.floor);
        let Shard { table, extra, .. } = g;
        let entry = table.insert_unique(h, (key.clone(), cell), |(k, _)| self.key_hash(k));
        Ok((entry.bucket_index(), &mut entry.into_mut().1, extra))
    }

    /// Drops the keys whose state is full at `max(now, its newest time)`,
    /// except those `keep` names (which count for the next sweep's time);
    /// O(keys in the shard).
    ///
    /// Below the cap a key is dropped only if it was full already at the
    /// shard's previous sweep (two-sweep ageing): a key that comes back
    /// between sweeps stays stored instead of being dropped and inserted
    /// again each time. A full key and an absent one decide alike, so this
    /// changes no decision, only memory: after a sweep a shard holds no key
    /// that has been full since before the sweep before it. The table still
    /// doubles only when a sweep frees less than half of it. On the
    /// Zipf bench workload (keys full 1 ms after a check) the eager rule
    /// re-inserted most of the tail on every visit, which the
    /// `ratelimit_keyed_zipf` bench shows as time per check. At the cap
    /// every full key goes.
    fn sweep(
        g: &mut Shard<K, C, X>,
        now: u64,
        at_cap: bool,
        idle: &mut impl FnMut(&X, &K, &mut C) -> (u64, u64),
        keep: &impl Fn(&K) -> bool,
    ) {
        let mut floor = g.floor;
        let mut next = u64::MAX;
        let aged = if at_cap { u64::MAX } else { g.swept_at };
        g.swept_at = g.swept_at.max(now);
        let Shard { table, extra, .. } = g;
        table.retain(|(k, c)| {
            let (seen, full_at) = idle(extra, k, c);
            let t = now.max(seen);
            if full_at <= t.min(aged) && !keep(k) {
                floor = floor.max(t);
                false
            } else {
                next = next.min(full_at);
                true
            }
        });
        g.floor = floor;
        g.next_sweep = next;
    }

    /// Checks the table's structure: every key findable under its own hash
    /// in the shard `shard_hash` picks, and no shard above its cap.
    #[cfg(any(test, fuzzing))]
    pub(crate) fn validate(
        &self,
        shard_hash: impl Fn(&K) -> u64,
        mut cell: impl FnMut(&X, &K, &C),
    ) {
        for (i, s) in self.shards().enumerate() {
            let g = s.read();
            assert!(
                g.table.len() <= self.cap_per_shard,
                "shard {i} above its cap"
            );
            for (k, c) in g.table.iter() {
                assert_eq!(
                    (shard_hash(k) >> 32) as usize & self.mask,
                    i,
                    "key in the wrong shard"
                );
                let h = self.key_hash(k);
                assert!(
                    g.table.find(h, |(kk, _)| kk == k).is_some(),
                    "key not findable by its hash"
                );
                cell(&g.extra, k, c);
            }
        }
    }
}
