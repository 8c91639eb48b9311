//! The replacement and admission policies a cache can be built with.

/// How a full shard chooses what to evict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Policy {
    /// S3-FIFO (the default): a small FIFO for new keys, a main CLOCK queue
    /// for keys read again, a ghost of recently evicted keys. An LRU
    /// approximation whose hit ratio is above exact LRU's on the ARC OLTP
    /// trace (0.40 vs 0.33 at 1,000 entries, 0.47 vs 0.42 at 2,000;
    /// `tests/hit_ratio.rs`). Reads take the shard's read lock and write
    /// nothing shared once an entry is hot.
    #[default]
    S3Fifo,
    /// Exact LRU per shard: a read moves the entry to the most recently used
    /// end, so reads take the shard's write lock. With one shard
    /// (`.shards(1)`) the cache is exactly an LRU of its capacity — the
    /// reference the property tests compare against.
    Lru,
}

/// Whether new keys must earn their place.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Admission {
    /// Every key the policy would keep is kept (the default).
    #[default]
    AdmitAll,
    /// TinyLFU: a 4-bit count-min sketch of recent insert/load frequency
    /// (halved every 10 × capacity additions) gates entry into S3-FIFO's
    /// main queue: a candidate that is not at least as frequent as main's
    /// next victim is dropped instead. Resists scans and one-hit bursts.
    /// Applies to [`Policy::S3Fifo`] only.
    TinyLfu,
}
