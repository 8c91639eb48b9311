//! The hash map of the crate's internal tables (rate cards by city, H3
//! cells, grid tiles, promo uses): `foldhash`'s seeded fast hasher, the one
//! hashbrown defaults to and the other dispatchkit crates use. Cells come
//! from riders' pickups, so the seed per map keeps crafted keys from
//! colliding on purpose (HashDoS).

/// A `HashMap` with `foldhash`'s per-map random seed.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
