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
    /// The admission asked for means nothing under the policy (TinyLFU
    /// with exact LRU, admit-all with W-TinyLFU, whose policy is its
    /// admission filter).
    #[error("admission {admission:?} with policy {policy:?}: {reason}")]
    IncompatibleAdmission {
        /// The policy.
        policy: crate::Policy,
        /// The admission refused with it.
        admission: crate::Admission,
        /// Why the combination means nothing.
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
    /// An instant too far from the cache's creation (more than 150 years
    /// either way) to set a deadline at; nothing was stored.
    #[error("instant {offset_secs} s from the cache's creation is out of range: {reason}")]
    InstantOutOfRange {
        /// Seconds from the cache's creation (saturated at ±292 years).
        offset_secs: i64,
        /// The limit.
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
    /// The Redis tier could not answer (refused, timed out, …).
    #[error("redis {operation} failed: {reason}")]
    Unavailable {
        /// `"get"`, `"set"` or `"write"`.
        operation: &'static str,
        /// What the client reported.
        reason: String,
    },
    /// A key or value could not be encoded for, or decoded from, Redis.
    #[error("codec: {reason}")]
    Codec {
        /// What the codec reported.
        reason: String,
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
    /// The write-behind queue is full and every pending write is being
    /// applied by a concurrent [`flush`](crate::SharedTier::flush): SET
    /// refuses instead of waiting for it (no tier changed). Retry after the
    /// flush, or size the queue for the write rate.
    #[error(
        "write-behind queue full ({capacity} pending, {in_flight} being flushed); retry after the flush"
    )]
    QueueFull {
        /// The queue's capacity.
        capacity: usize,
        /// Pending writes a flush is applying now.
        in_flight: usize,
    },
    /// A write-behind write was being applied when its flush unwound (a
    /// panic outside the store call); it is pending again and the next
    /// flush retries it. Seen in [`SharedTier::failed_writes`](crate::SharedTier::failed_writes).
    #[error(
        "the flush applying this write unwound before recording its result; the write is pending again"
    )]
    FlushAbandoned,
    /// `flush` could not apply every pending write; the `failed` ones stay
    /// queued (nothing is dropped) and are retried by the next flush.
    /// [`SharedTier::failed_writes`](crate::SharedTier::failed_writes) lists
    /// them with their errors.
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

/// The error a [`Store`](crate::Store) call that panicked is reported with
/// (the source of a [`CacheError::Store`]): the cache catches the panic, so
/// a faulty store never leaves a write "in flight" or loses it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("the store panicked: {message}")]
pub struct StorePanic {
    /// The panic message (or a placeholder when it was not a string).
    pub message: String,
}

impl StorePanic {
    pub(crate) fn from_payload(payload: &(dyn std::any::Any + Send)) -> Self {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a non-string panic payload".to_string());
        Self { message }
    }
}
