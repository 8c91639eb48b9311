//! Rider profiles and restaurant menus behind tiered caches (seed example
//! 7 in-process): an L1 per app instance (60 s TTL, 8 MiB), one shared L2
//! per kind of data (profiles 1 h, menus 30 min), and as L3 a simulated
//! slow store that counts its calls and their simulated latency (nothing
//! sleeps). Requests are spread round-robin over the instances; menu edits
//! are written behind (flushed every simulated minute), profile edits
//! through; both drop the key from the other instances' L1s.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, DefaultHasher, Hash};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dispatchkit::cache::{
    Cache, CacheError, SharedTier, Store, TierConfig, TieredCache, WriteMode,
};

use crate::markets::RIDE_PROMO;
use crate::report::Latencies;

/// App instances behind the load balancer.
pub const INSTANCES: usize = 8;
/// Simulated latency of one store read / write (a DynamoDB-class store).
pub const READ_LATENCY: Duration = Duration::from_millis(5);
pub const WRITE_LATENCY: Duration = Duration::from_millis(10);

/// A rider's profile as the ride service needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub user: u64,
    /// A promo code in the rider's wallet (one rider in ten).
    pub promo: Option<&'static str>,
    /// Preferred product: 1 = XL (one rider in ten), else economy.
    pub product: u8,
    /// Free text: name, phone, saved places, payment token (weighs the
    /// entry like the real thing).
    pub details: String,
}

/// A restaurant's menu: item prices in US cents (converted to the local
/// currency when an order is priced).
#[derive(Debug, Clone, PartialEq)]
pub struct Menu {
    pub restaurant: u32,
    pub prices_usd_cents: Vec<i64>,
    pub text: String,
}

/// What the store synthesises for a key it was never written.
pub trait Synthesise: Sized {
    type Key;
    fn synthesise(key: &Self::Key) -> Self;
    /// Bytes the entry takes in a cache (the weigher).
    fn weight(&self) -> u64;
}

impl Synthesise for Profile {
    type Key = u64;
    fn synthesise(&user: &u64) -> Self {
        let h = user.wrapping_mul(0xD6E8_FEB8_6659_FD93) >> 40;
        Self {
            user,
            promo: (h % 10 == 3).then_some(RIDE_PROMO),
            product: u8::from(h % 10 == 7),
            details: format!(
                "rider {user}: name, phone +00 {h:010}, home, work, gym; payment tok_{h:x}; prefs quiet"
            ),
        }
    }
    fn weight(&self) -> u64 {
        self.details.len() as u64 + 64
    }
}

impl Synthesise for Menu {
    type Key = u32;
    fn synthesise(&restaurant: &u32) -> Self {
        let items = 8 + restaurant % 24;
        let prices_usd_cents: Vec<i64> = (0..items)
            .map(|i| 450 + i64::from((i * 7_919 + restaurant * 104_729) % 1_800))
            .collect();
        let text = prices_usd_cents
            .iter()
            .enumerate()
            .map(|(i, p)| format!("item {i} of restaurant {restaurant}: {p} cents"))
            .collect::<Vec<_>>()
            .join("\n");
        Self {
            restaurant,
            prices_usd_cents,
            text,
        }
    }
    fn weight(&self) -> u64 {
        self.text.len() as u64 + 8 * self.prices_usd_cents.len() as u64 + 64
    }
}

/// The slow store (L3): values are synthesised from the key unless
/// written; every call is counted.
pub struct SlowStore<V: Synthesise> {
    written: Mutex<HashMap<V::Key, Arc<V>>>,
    pub reads: AtomicU64,
    pub writes: AtomicU64,
}

impl<V: Synthesise> SlowStore<V> {
    fn new() -> Self {
        Self {
            written: Mutex::new(HashMap::new()),
            reads: AtomicU64::new(0),
            writes: AtomicU64::new(0),
        }
    }
}

#[derive(Debug)]
pub struct Unavailable;
impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("store lock poisoned")
    }
}
impl std::error::Error for Unavailable {}

impl<V> Store<V::Key, Arc<V>> for SlowStore<V>
where
    V: Synthesise + Send + Sync,
    V::Key: Hash + Eq + Clone + Send + Sync,
{
    type Error = Unavailable;
    fn get(&self, key: &V::Key) -> Result<Option<Arc<V>>, Unavailable> {
        self.reads.fetch_add(1, Relaxed);
        let w = self.written.lock().map_err(|_| Unavailable)?;
        Ok(Some(
            w.get(key)
                .cloned()
                .unwrap_or_else(|| Arc::new(V::synthesise(key))),
        ))
    }
    fn put(&self, key: &V::Key, value: &Arc<V>) -> Result<(), Unavailable> {
        self.writes.fetch_add(1, Relaxed);
        self.written
            .lock()
            .map_err(|_| Unavailable)?
            .insert(key.clone(), Arc::clone(value));
        Ok(())
    }
    fn delete(&self, key: &V::Key) -> Result<(), Unavailable> {
        self.writes.fetch_add(1, Relaxed);
        self.written.lock().map_err(|_| Unavailable)?.remove(key);
        Ok(())
    }
}

/// Byte weigher of both cache tiers.
type Weigh<K, V> = fn(&K, &Arc<V>) -> u64;
/// A fixed hasher: the run is deterministic for a seed, hit ratios
/// included (the default hasher is randomly seeded per cache).
type Fixed = BuildHasherDefault<DefaultHasher>;
type Instance<V> = TieredCache<
    <V as Synthesise>::Key,
    Arc<V>,
    SlowStore<V>,
    Weigh<<V as Synthesise>::Key, V>,
    Fixed,
>;
type Shared<V> = Arc<
    SharedTier<
        <V as Synthesise>::Key,
        Arc<V>,
        SlowStore<V>,
        Weigh<<V as Synthesise>::Key, V>,
        Fixed,
    >,
>;

fn weigh<K, V: Synthesise>(_: &K, v: &Arc<V>) -> u64 {
    v.weight()
}

/// One kind of data behind its tiers.
pub struct Tiered<V: Synthesise> {
    pub shared: Shared<V>,
    pub instances: Vec<Instance<V>>,
    pub latency: Latencies,
    pub gets: u64,
    pub edits: u64,
}

impl<V> Tiered<V>
where
    V: Synthesise + Send + Sync + 'static,
    V::Key: Hash + Eq + Clone + Send + Sync + 'static,
{
    fn new(l2_ttl: Duration, l2_bytes: u64, mode: WriteMode) -> Result<Self, CacheError> {
        let w: Weigh<V::Key, V> = weigh::<V::Key, V>;
        let l2 = Cache::builder(l2_bytes)
            .weigher(w)
            .hasher(Fixed::default())
            .estimated_entries((l2_bytes / 512) as usize)
            .time_to_live(l2_ttl)
            .record_stats(true)
            .build()?;
        let shared = SharedTier::new(
            l2,
            SlowStore::new(),
            TierConfig {
                write_mode: mode,
                ..TierConfig::default()
            },
        )?;
        let instances = (0..INSTANCES)
            .map(|_| {
                Cache::builder(8 << 20)
                    .weigher(w)
                    .hasher(Fixed::default())
                    .estimated_entries(16 << 10)
                    .time_to_live(Duration::from_secs(60))
                    .record_stats(true)
                    .build()
                    .map(|l1| shared.instance(l1))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            shared,
            instances,
            latency: Latencies::default(),
            gets: 0,
            edits: 0,
        })
    }

    /// GET through instance `request % INSTANCES`: L1 → L2 → store.
    pub fn get(&mut self, request: u64, key: &V::Key, now: Instant) -> Result<Arc<V>, CacheError> {
        let inst = &self.instances[(request % INSTANCES as u64) as usize];
        let t = Instant::now();
        let v = inst.get_at(key, now)?;
        self.latency.record(t.elapsed());
        self.gets += 1;
        // The store synthesises every key, so a GET always finds a value.
        Ok(v.unwrap_or_else(|| Arc::new(V::synthesise(key))))
    }

    /// SET through instance `request % INSTANCES` (write-through or
    /// write-behind as configured; the other instances' L1s drop the key).
    pub fn set(
        &mut self,
        request: u64,
        key: V::Key,
        value: V,
        now: Instant,
    ) -> Result<(), CacheError> {
        let inst = &self.instances[(request % INSTANCES as u64) as usize];
        inst.set_at(key, Arc::new(value), now)?;
        self.edits += 1;
        Ok(())
    }

    /// (hits, lookups) summed over every instance's L1.
    pub fn l1(&self) -> (u64, u64) {
        self.instances.iter().fold((0, 0), |(h, t), c| {
            let st = c.l1().stats();
            (h + st.hits, t + st.hits + st.misses)
        })
    }

    /// (hits, lookups) of the shared L2.
    pub fn l2(&self) -> (u64, u64) {
        let st = self.shared.l2().stats();
        (st.hits, st.hits + st.misses)
    }

    /// Store (reads, writes).
    pub fn store(&self) -> (u64, u64) {
        let s = self.shared.store();
        (s.reads.load(Relaxed), s.writes.load(Relaxed))
    }
}

/// Both kinds of data.
pub struct Stores {
    pub profiles: Tiered<Profile>,
    pub menus: Tiered<Menu>,
    pub flushes: u64,
}

impl Stores {
    pub fn new() -> Result<Self, CacheError> {
        Ok(Self {
            profiles: Tiered::new(Duration::from_secs(3_600), 64 << 20, WriteMode::Through)?,
            menus: Tiered::new(
                Duration::from_secs(30 * 60),
                64 << 20,
                WriteMode::Behind {
                    queue_capacity: 4096,
                },
            )?,
            flushes: 0,
        })
    }

    /// Applies the pending write-behind menu writes (once a simulated minute).
    pub fn flush(&mut self) -> Result<(), CacheError> {
        self.menus.shared.flush()?;
        self.flushes += 1;
        Ok(())
    }
}

/// The report's row of one kind of data.
pub fn tier_report<V>(name: &str, t: &Tiered<V>) -> crate::report::Tier
where
    V: Synthesise + Send + Sync + 'static,
    V::Key: Hash + Eq + Clone + Send + Sync + 'static,
{
    let (l1_hits, l1_lookups) = t.l1();
    let (l2_hits, l2_lookups) = t.l2();
    let (store_reads, store_writes) = t.store();
    crate::report::Tier {
        name: name.to_string(),
        gets: t.gets,
        l1_hits,
        l1_lookups,
        l2_hits,
        l2_lookups,
        store_reads,
        store_writes,
        store_reads_avoided: t.gets.saturating_sub(store_reads),
        edits: t.edits,
        store_secs: (READ_LATENCY * store_reads as u32 + WRITE_LATENCY * store_writes as u32)
            .as_secs_f64(),
        store_secs_uncached: (READ_LATENCY * t.gets as u32 + WRITE_LATENCY * t.edits as u32)
            .as_secs_f64(),
    }
}
