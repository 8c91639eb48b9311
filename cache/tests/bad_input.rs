//! Every bad input gives a typed error, leaves the cache unchanged and
//! never panics.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dispatchkit_cache::{
    Admission, Cache, CacheError, MAX_SHARDS, MAX_TTL, Policy, SharedTier, Store, TierConfig,
    WriteMode,
};

#[test]
fn zero_capacity_is_rejected() {
    let e = Cache::<u64, u64>::new(0).unwrap_err();
    assert!(
        matches!(e, CacheError::InvalidCapacity { value: 0, .. }),
        "{e}"
    );
    let e = Cache::<String, String>::builder(0)
        .weigher(|k: &String, v: &String| (k.len() + v.len()) as u64)
        .build()
        .unwrap_err();
    assert!(matches!(e, CacheError::InvalidCapacity { value: 0, .. }));
}

#[test]
fn zero_and_overflowing_ttls_are_rejected() {
    let too_long = MAX_TTL + Duration::from_nanos(1);
    for (name, b) in [
        (
            "time_to_live",
            Cache::<u64, u64>::builder(10).time_to_live(Duration::ZERO),
        ),
        (
            "time_to_live",
            Cache::<u64, u64>::builder(10).time_to_live(too_long),
        ),
        (
            "time_to_live",
            Cache::<u64, u64>::builder(10).time_to_live(Duration::MAX),
        ),
        (
            "time_to_idle",
            Cache::<u64, u64>::builder(10).time_to_idle(Duration::ZERO),
        ),
        (
            "time_to_idle",
            Cache::<u64, u64>::builder(10).time_to_idle(Duration::MAX),
        ),
        (
            "negative_ttl",
            Cache::<u64, u64>::builder(10).negative_ttl(Duration::ZERO),
        ),
        (
            "negative_ttl",
            Cache::<u64, u64>::builder(10).negative_ttl(too_long),
        ),
    ] {
        match b.build() {
            Err(CacheError::InvalidDuration { name: n, .. }) => assert_eq!(n, name),
            other => panic!("{name}: {other:?}"),
        }
    }
    // The longest accepted TTL works and does not overflow the deadline.
    let c = Cache::<u64, u64>::builder(10)
        .time_to_live(MAX_TTL)
        .build()
        .unwrap();
    let now = Instant::now();
    c.insert_at(1, 1, now).unwrap();
    assert_eq!(
        c.get_at(&1, now + Duration::from_secs(3600 * 24 * 365)),
        Some(1)
    );
}

#[test]
fn bad_per_entry_ttl_leaves_the_cache_unchanged() {
    let c = Cache::<u64, u64>::new(10).unwrap();
    let now = Instant::now();
    c.insert_at(1, 10, now).unwrap();
    for ttl in [
        Duration::ZERO,
        Duration::MAX,
        MAX_TTL + Duration::from_secs(1),
    ] {
        let e = c.insert_with_ttl_at(1, 99, ttl, now).unwrap_err();
        assert!(
            matches!(e, CacheError::InvalidDuration { name: "ttl", .. }),
            "{e}"
        );
        let e = c.insert_with_ttl_at(2, 99, ttl, now).unwrap_err();
        assert!(matches!(e, CacheError::InvalidDuration { .. }));
    }
    assert_eq!(c.get_at(&1, now), Some(10));
    assert_eq!(c.get_at(&2, now), None);
    assert_eq!(c.len(), 1);
    assert_eq!(c.stats().inserts, 1);
    c.check_invariants();
}

#[test]
fn bad_shard_counts_are_rejected() {
    for (n, cap) in [(0usize, 100u64), (MAX_SHARDS + 1, 1 << 20), (8, 4), (3, 3)] {
        let e = Cache::<u64, u64>::builder(cap)
            .shards(n)
            .build()
            .unwrap_err();
        assert!(
            matches!(e, CacheError::InvalidShards { value, .. } if value == n),
            "{n}: {e}"
        );
    }
    assert_eq!(
        Cache::<u64, u64>::builder(4)
            .shards(3)
            .build()
            .unwrap()
            .shard_count(),
        4
    );
}

#[test]
fn meaningless_policy_and_admission_pairs_are_rejected() {
    for (policy, admission) in [
        (Policy::Lru, Admission::TinyLfu),
        (Policy::WTinyLfu, Admission::AdmitAll),
    ] {
        let e = Cache::<u64, u64>::builder(100)
            .policy(policy)
            .admission(admission)
            .build()
            .unwrap_err();
        assert!(
            matches!(e, CacheError::IncompatibleAdmission { policy: p, admission: a, .. } if p == policy && a == admission),
            "{policy:?} + {admission:?}: {e}"
        );
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("{admission:?}")) && msg.contains(&format!("{policy:?}")),
            "the message names both: {msg}"
        );
    }
    // Each policy's own admission, asked for or not, is accepted.
    for (policy, admission) in [
        (Policy::S3Fifo, Admission::AdmitAll),
        (Policy::S3Fifo, Admission::TinyLfu),
        (Policy::Lru, Admission::AdmitAll),
        (Policy::WTinyLfu, Admission::TinyLfu),
    ] {
        let c = Cache::<u64, u64>::builder(100)
            .policy(policy)
            .admission(admission)
            .build()
            .unwrap();
        assert_eq!((c.policy(), c.admission()), (policy, admission));
        let d = Cache::<u64, u64>::builder(100)
            .policy(policy)
            .build()
            .unwrap();
        assert_eq!(d.admission(), policy.default_admission());
    }
}

#[test]
fn an_entry_heavier_than_the_capacity_is_refused_without_evicting() {
    let c = Cache::<u64, Vec<u8>>::builder(100)
        .weigher(|_: &u64, v: &Vec<u8>| v.len() as u64)
        .shards(1)
        .build()
        .unwrap();
    for k in 0..10 {
        c.insert(k, vec![0; 10]).unwrap();
    }
    assert_eq!(c.weight(), 100);
    let e = c.insert(99, vec![0; 101]).unwrap_err();
    assert!(
        matches!(
            e,
            CacheError::EntryTooHeavy {
                weight: 101,
                max: 100,
                ..
            }
        ),
        "{e}"
    );
    // Replacing an existing key with a too-heavy value: refused too, the
    // old value stays.
    let e = c.insert(3, vec![0; u16::MAX as usize]).unwrap_err();
    assert!(matches!(e, CacheError::EntryTooHeavy { .. }));
    assert_eq!(c.len(), 10, "nothing was evicted for the heavy entries");
    assert_eq!(c.get(&3).map(|v| v.len()), Some(10));
    assert_eq!(c.stats().evictions.total(), 0);
    // Exactly the capacity fits (and evicts the rest for it).
    c.insert(7, vec![0; 100]).unwrap();
    assert_eq!(c.weight(), 100);
    c.check_invariants();
}

#[test]
fn an_entry_heavier_than_a_shard_is_refused() {
    let c = Cache::<u64, Vec<u8>>::builder(1000)
        .weigher(|_: &u64, v: &Vec<u8>| v.len() as u64)
        .shards(4)
        .build()
        .unwrap();
    assert_eq!(c.max_entry_weight(), 250);
    assert!(c.insert(1, vec![0; 250]).is_ok());
    let e = c.insert(2, vec![0; 251]).unwrap_err();
    assert!(matches!(
        e,
        CacheError::EntryTooHeavy {
            weight: 251,
            max: 250,
            ..
        }
    ));
    assert_eq!(c.len(), 1);
    // A weigher returning 0 counts as 1: every entry occupies capacity.
    let z = Cache::<u64, u64>::builder(3)
        .weigher(|_: &u64, _: &u64| 0)
        .build()
        .unwrap();
    for k in 0..10 {
        z.insert(k, k).unwrap();
    }
    assert!(z.len() <= 3);
    assert_eq!(z.weight(), z.len() as u64);
    // A weigher returning u64::MAX is refused, never panics.
    let m = Cache::<u64, u64>::builder(u64::MAX)
        .weigher(|_: &u64, _: &u64| u64::MAX)
        .build()
        .unwrap();
    assert!(matches!(
        m.insert(1, 1),
        Err(CacheError::EntryTooHeavy { .. })
    ));
}

#[derive(Default)]
struct NullStore(Mutex<HashMap<u64, u64>>);

impl Store<u64, u64> for NullStore {
    type Error = std::io::Error;
    fn get(&self, key: &u64) -> Result<Option<u64>, Self::Error> {
        Ok(self.0.lock().unwrap().get(key).copied())
    }
    fn put(&self, key: &u64, value: &u64) -> Result<(), Self::Error> {
        self.0.lock().unwrap().insert(*key, *value);
        Ok(())
    }
    fn delete(&self, key: &u64) -> Result<(), Self::Error> {
        self.0.lock().unwrap().remove(key);
        Ok(())
    }
}

#[test]
fn bad_tier_settings_are_rejected() {
    let e = SharedTier::new(
        Cache::<u64, u64>::new(10).unwrap(),
        NullStore::default(),
        TierConfig {
            store_attempts: 0,
            ..TierConfig::default()
        },
    )
    .unwrap_err();
    assert!(matches!(
        e,
        CacheError::InvalidSetting {
            name: "store_attempts",
            value: 0,
            ..
        }
    ));
    let e = SharedTier::new(
        Cache::<u64, u64>::new(10).unwrap(),
        NullStore::default(),
        TierConfig {
            write_mode: WriteMode::Behind { queue_capacity: 0 },
            ..TierConfig::default()
        },
    )
    .unwrap_err();
    assert!(matches!(
        e,
        CacheError::InvalidSetting {
            name: "queue_capacity",
            value: 0,
            ..
        }
    ));
}
