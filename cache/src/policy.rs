//! The replacement and admission policies a cache can be built with.

/// How a full shard chooses what to evict.
///
/// Which to pick: the measured hit ratios on the ARC paper's OLTP and P3
/// traces, beside moka, quick_cache and an exact LRU, are the
/// `cache_traces` table in BENCHMARKS.md. [`Policy::WTinyLfu`] has the
/// best ratio of the three policies on OLTP at every capacity and on P3
/// at 1,000 to 32,768 entries, above every peer there; on P3 at 1,000
/// entries (hit ratios near 1 %, a trace of scans) its mean over hasher
/// seeds is a few hundredths of a point above an exact LRU's, while a
/// single cache lands a little below it for some seeds (the table gives
/// the spread). [`Policy::S3Fifo`] (the default) is better on the scan-heavy P3
/// at 100,000 entries (a large cache of a looping workload) and has the
/// lighter write path (no sketch, no duel): pick it for write-heavy
/// caches and as the safe default, W-TinyLFU when the key popularity is
/// skewed and misses are expensive. [`Policy::Lru`] only for a known
/// pure-recency workload or as an exact reference. A read under either
/// takes the shard's read lock and marks the entry; W-TinyLFU also counts
/// the hit or miss (its window climber samples the hit ratio), which
/// S3-FIFO does only with
/// [`CacheBuilder::record_stats`](crate::CacheBuilder::record_stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Policy {
    /// W-TinyLFU: new keys enter a small LRU window; the
    /// window's least recently used key enters the segmented-LRU main
    /// space (probation, protected) only if a count-min sketch of recent
    /// accesses, hits and misses, rates it more frequent than main's
    /// victim; a tie admits it with a probability each shard learns from
    /// which of its tie decisions' evicted keys come back. The window's
    /// share of the capacity (1 % at first) is moved by hill climbing on
    /// the sampled hit ratio, so recency-heavy phases get a larger window
    /// and frequency-heavy ones a smaller. Reads take
    /// the shard's read lock and only mark the entry; the policy drains
    /// the marks into the sketch when it next meets the entry. Always
    /// admits by frequency: [`Admission::AdmitAll`] with it is refused.
    WTinyLfu,
    /// S3-FIFO (Yang et al., SOSP 2023): a small FIFO for new keys, a main
    /// CLOCK queue for keys read again, a ghost of recently evicted keys;
    /// optional [`Admission::TinyLfu`] gates moves into main. The cheapest
    /// write path (no sketch unless admission is on). Reads take the
    /// shard's read lock and write nothing shared once an entry is hot.
    /// The default.
    #[default]
    S3Fifo,
    /// Exact LRU per shard: a read moves the entry to the most recently used
    /// end, so reads take the shard's write lock. With one shard
    /// (`.shards(1)`) the cache is exactly an LRU of its capacity — the
    /// reference the property tests compare against. Has no admission
    /// filter: [`Admission::TinyLfu`] with it is refused.
    Lru,
}

impl Policy {
    /// The admission this policy runs when none is asked for.
    pub fn default_admission(self) -> Admission {
        match self {
            Policy::WTinyLfu => Admission::TinyLfu,
            Policy::S3Fifo | Policy::Lru => Admission::AdmitAll,
        }
    }
}

/// Whether new keys must earn their place.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Admission {
    /// Every key the policy would keep is kept (the default of
    /// [`Policy::S3Fifo`] and [`Policy::Lru`]; refused with
    /// [`Policy::WTinyLfu`]).
    #[default]
    AdmitAll,
    /// TinyLFU: a 4-bit count-min sketch of recent frequency (halved every
    /// 10 × capacity additions) decides who enters the main space. Built
    /// into [`Policy::WTinyLfu`]; with [`Policy::S3Fifo`] it counts inserts
    /// and loads and gates entry into S3-FIFO's main queue (a candidate
    /// that is not at least as frequent as main's next victim is dropped).
    TinyLfu,
}
