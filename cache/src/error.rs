//! The crate's error type.

use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;

/// Why a cache could not be built or an operation was refused.
///
/// Every refused operation leaves the cache unchanged.
#[derive(Debug, Clone, Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The capacity (entries or weight) is out of range.
    #[error("invalid capacity {value}: {reason}")]
    InvalidCapacity {
        /// The rejected capacity.
        value: u64,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A time-to-live, time-to-idle or negative TTL is out of range.
    #[error("invalid {name} {value:?}: {reason}")]
    InvalidDuration {
        /// Which setting (`"time_to_live"`, `"time_to_idle"`, `"negative_ttl"`, `"ttl"`).
        name: &'static str,
        /// The rejected duration.
        value: Duration,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// The shard count is out of range.
    #[error("invalid shard count {value}: {reason}")]
    InvalidShards {
        /// The rejected shard count.
        value: usize,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// An entry weighs more than one shard can hold; it was not stored and
    /// nothing was evicted for it.
    #[error("entry weight {weight} exceeds the largest storable weight {max}: {reason}")]
    EntryTooHeavy {
        /// The entry's weight as the weigher reported it.
        weight: u64,
        /// [`Cache::max_entry_weight`](crate::Cache::max_entry_weight).
        max: u64,
        /// Why that is the limit.
        reason: &'static str,
    },
    /// A write-behind / tier setting is out of range.
    #[error("invalid {name} {value}: {reason}")]
    InvalidSetting {
        /// Which setting.
        name: &'static str,
        /// The rejected value.
        value: u64,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// The L3 store failed (after `attempts` tries).
    #[error("store {operation} failed after {attempts} attempt(s): {source}")]
    Store {
        /// `"get"`, `"put"` or `"delete"`.
        operation: &'static str,
        /// How many times it was tried.
        attempts: u32,
        /// The store's error.
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// The write-behind queue is full and its oldest write could not be
    /// applied to the store to make room: this write was refused (no tier
    /// changed); the pending writes are kept.
    #[error("write-behind queue full ({capacity} pending) and draining it failed: {source}")]
    WriteBehindFull {
        /// The queue's capacity.
        capacity: usize,
        /// The store error that prevented draining.
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// `flush` could not apply every pending write; the `failed` ones stay
    /// queued (nothing is dropped) and are retried by the next flush.
    #[error(
        "write-behind flush applied {applied} write(s), {failed} failed and stay queued: {source}"
    )]
    FlushFailed {
        /// Writes applied to the store by this flush.
        applied: usize,
        /// Writes that failed every retry and are still pending.
        failed: usize,
        /// The first store error.
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
}
