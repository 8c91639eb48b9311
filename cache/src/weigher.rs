//! How much of the capacity an entry uses.

/// The weight of an entry, in the unit of the cache's capacity (entries,
/// bytes, …).
///
/// A weigher must be deterministic for an entry's lifetime (the cache
/// records the weight at insertion). A weight of 0 counts as 1, so every
/// entry occupies capacity. Any `Fn(&K, &V) -> u64 + Send + Sync` is a
/// weigher.
///
/// ```
/// use dispatchkit_cache::Cache;
///
/// // 1 MiB of strings (key and value bytes).
/// let cache = Cache::<String, String>::builder(1 << 20)
///     .weigher(|k: &String, v: &String| (k.len() + v.len()) as u64)
///     .build()?;
/// cache.insert("menu:42".to_string(), "pad thai".repeat(10))?;
/// assert_eq!(cache.weight(), 7 + 80);
/// # Ok::<(), dispatchkit_cache::CacheError>(())
/// ```
pub trait Weigher<K, V>: Send + Sync {
    /// The entry's weight; O(1) expected.
    fn weigh(&self, key: &K, value: &V) -> u64;
}

/// Every entry weighs 1: the capacity counts entries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct UnitWeigher;

impl<K, V> Weigher<K, V> for UnitWeigher {
    #[inline]
    fn weigh(&self, _key: &K, _value: &V) -> u64 {
        1
    }
}

impl<K, V, F> Weigher<K, V> for F
where
    F: Fn(&K, &V) -> u64 + Send + Sync,
{
    #[inline]
    fn weigh(&self, key: &K, value: &V) -> u64 {
        self(key, value)
    }
}
