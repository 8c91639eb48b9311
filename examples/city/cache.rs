//! Stage: rider profiles and restaurant menus through tiered caches.
//!
//! Seed example 7's cache in-process: eight app instances, each with its own
//! L1 (60 s TTL, 8 MiB), over one shared L2 per kind of data (menus 30 min,
//! profiles 1 h: seed example 5's and 3's TTLs), over a simulated slow
//! store that counts its calls and their simulated latency (nothing
//! sleeps). Orders come from the reference `OrderStream` (restaurant ids),
//! riders from `ZipfKeys`; every order reads its restaurant's menu and its
//! rider's profile through a round-robin instance. Restaurants edit menus
//! (write-behind, flushed every simulated minute) and riders edit profiles
//! (write-through); both invalidate the other instances' L1s.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dispatchkit::cache::{
    Cache, CacheError, SharedTier, Store, TierConfig, TierStats, TieredCache, WriteMode,
};
use dispatchkit::workload::{MetroConfig, OrderConfig, OrderStream, ZipfKeys};

use crate::args::Options;
use crate::report::{Section, rate};

/// Simulated latency of one store read / write (a DynamoDB-class store).
const READ_LATENCY: Duration = Duration::from_millis(5);
const WRITE_LATENCY: Duration = Duration::from_millis(10);
const INSTANCES: usize = 8;

/// A slow store: values are synthesised from the key unless written;
/// every call is counted with its simulated latency.
struct SlowStore<K> {
    written: Mutex<HashMap<K, Arc<str>>>,
    make: fn(&K) -> String,
    reads: AtomicU64,
    writes: AtomicU64,
}

impl<K> SlowStore<K> {
    fn new(make: fn(&K) -> String) -> Self {
        Self {
            written: Mutex::new(HashMap::new()),
            make,
            reads: AtomicU64::new(0),
            writes: AtomicU64::new(0),
        }
    }

    fn latency(&self) -> Duration {
        READ_LATENCY * self.reads.load(Relaxed) as u32
            + WRITE_LATENCY * self.writes.load(Relaxed) as u32
    }
}

#[derive(Debug)]
struct Unavailable;
impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("store lock poisoned")
    }
}
impl std::error::Error for Unavailable {}

impl<K: Hash + Eq + Clone + Send + Sync> Store<K, Arc<str>> for SlowStore<K> {
    type Error = Unavailable;
    fn get(&self, key: &K) -> Result<Option<Arc<str>>, Unavailable> {
        self.reads.fetch_add(1, Relaxed);
        let w = self.written.lock().map_err(|_| Unavailable)?;
        Ok(Some(
            w.get(key)
                .cloned()
                .unwrap_or_else(|| (self.make)(key).into()),
        ))
    }
    fn put(&self, key: &K, value: &Arc<str>) -> Result<(), Unavailable> {
        self.writes.fetch_add(1, Relaxed);
        self.written
            .lock()
            .map_err(|_| Unavailable)?
            .insert(key.clone(), Arc::clone(value));
        Ok(())
    }
    fn delete(&self, key: &K) -> Result<(), Unavailable> {
        self.writes.fetch_add(1, Relaxed);
        self.written.lock().map_err(|_| Unavailable)?.remove(key);
        Ok(())
    }
}

fn menu_text(restaurant: &u32) -> String {
    let items = 8 + restaurant % 24;
    (0..items)
        .map(|i| {
            format!(
                "item {i} of restaurant {restaurant}: {} cents",
                500 + (i * 37 + restaurant) % 2000
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn profile_text(rider: &u64) -> String {
    format!("rider {rider}: name, phone, 3 saved addresses, payment token, preferences")
}

/// The byte weigher of both tiers.
type Weigh<K> = fn(&K, &Arc<str>) -> u64;
type Shared<K> = Arc<SharedTier<K, Arc<str>, SlowStore<K>, Weigh<K>>>;
type Instance<K> = TieredCache<K, Arc<str>, SlowStore<K>, Weigh<K>>;

/// Bytes of a cached string plus a fixed 64 for the key and bookkeeping.
fn weigh<K>(_: &K, v: &Arc<str>) -> u64 {
    v.len() as u64 + 64
}

fn tier<K: Hash + Eq + Clone + Send + Sync + 'static>(
    l2_ttl: Duration,
    l2_bytes: u64,
    mode: WriteMode,
    make: fn(&K) -> String,
) -> Result<(Shared<K>, Vec<Instance<K>>), CacheError> {
    let w: Weigh<K> = weigh::<K>;
    let l2 = Cache::builder(l2_bytes)
        .weigher(w)
        .estimated_entries((l2_bytes / 1024) as usize)
        .time_to_live(l2_ttl)
        .build()?;
    let shared = SharedTier::new(
        l2,
        SlowStore::new(make),
        TierConfig {
            write_mode: mode,
            ..TierConfig::default()
        },
    )?;
    let instances = (0..INSTANCES)
        .map(|_| {
            Cache::builder(8 << 20)
                .weigher(w)
                .estimated_entries(8 << 10)
                .time_to_live(Duration::from_secs(60))
                .build()
                .map(|l1| shared.instance(l1))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((shared, instances))
}

fn describe(
    s: &mut Section,
    name: &str,
    gets: u64,
    st: &TierStats,
    l1: (u64, u64),
    store: &SlowStoreSummary,
) {
    let (l1_hits, l1_lookups) = l1;
    let l2_lookups = st.l2.hits + st.l2.misses;
    s.line(format!("  {name}"));
    s.metric(
        "    L1 hit ratio (8 instances)",
        format!(
            "{:.1}% of {} GETs",
            100.0 * l1_hits as f64 / l1_lookups.max(1) as f64,
            l1_lookups
        ),
    );
    s.metric(
        "    L2 hit ratio (shared)",
        format!(
            "{:.1}% of {} L1 misses",
            100.0 * st.l2.hits as f64 / l2_lookups.max(1) as f64,
            l2_lookups
        ),
    );
    s.metric(
        "    store reads / avoided",
        format!(
            "{} / {} ({:.2}% of GETs avoided)",
            store.reads,
            gets - store.reads.min(gets),
            100.0 * (gets - store.reads.min(gets)) as f64 / gets.max(1) as f64
        ),
    );
    s.metric(
        "    store writes / L1 drops",
        format!(
            "{} ({} coalesced away) / {} keys",
            store.writes, st.coalesced_writes, st.l1_invalidations
        ),
    );
}

/// (hits, lookups) over every instance's L1.
fn l1_sum<K: Hash + Eq + Clone + Send + Sync>(l1s: &[Instance<K>]) -> (u64, u64) {
    l1s.iter().fold((0, 0), |(h, t), c| {
        let st = c.l1().stats();
        (h + st.hits, t + st.hits + st.misses)
    })
}

struct SlowStoreSummary {
    reads: u64,
    writes: u64,
    latency: Duration,
}

fn summary<K>(s: &SlowStore<K>) -> SlowStoreSummary {
    SlowStoreSummary {
        reads: s.reads.load(Relaxed),
        writes: s.writes.load(Relaxed),
        latency: s.latency(),
    }
}

/// Runs the stage.
pub fn run(opts: &Options) -> Result<Section, Box<dyn std::error::Error>> {
    let sim = if opts.quick {
        Duration::from_secs(5 * 60)
    } else {
        Duration::from_secs(60 * 60)
    };
    let riders = if opts.quick { 50_000 } else { 1_000_000 };
    let (menus, menu_l1s) = tier::<u32>(
        Duration::from_secs(30 * 60),
        64 << 20,
        WriteMode::Behind {
            queue_capacity: 4096,
        },
        menu_text,
    )?;
    let (profiles, profile_l1s) = tier::<u64>(
        Duration::from_secs(60 * 60),
        64 << 20,
        WriteMode::Through,
        profile_text,
    )?;
    let metros = MetroConfig {
        seed: opts.seed,
        ..MetroConfig::default()
    };
    let mut orders = OrderStream::new(
        &metros,
        &OrderConfig {
            seed: opts.seed,
            ..OrderConfig::default()
        },
    )?;
    let mut rider_keys = ZipfKeys::new(riders, 1.0, opts.seed)?;

    // The workload first, so the timing below is the caches' alone.
    let mut work = Vec::new();
    loop {
        let o = orders.next_order();
        if o.placed_at >= sim {
            break;
        }
        work.push((o.id, o.restaurant, o.placed_at, rider_keys.next_key()));
    }

    let t0 = Instant::now();
    let wall = Instant::now();
    let (mut n, mut menu_edits, mut profile_edits, mut flushes) = (0u64, 0u64, 0u64, 0u64);
    let mut next_flush = Duration::from_secs(60);
    for &(id, restaurant, placed_at, rider) in &work {
        let now = t0 + placed_at;
        let i = (id as usize) % INSTANCES;
        menu_l1s[i].get_at(&restaurant, now)?;
        profile_l1s[i].get_at(&rider, now)?;
        n += 1;
        if id % 997 == 0 {
            // A restaurant edits its menu (write-behind).
            let menu: Arc<str> =
                format!("{}\n(special of the day #{id})", menu_text(&restaurant)).into();
            menu_l1s[(i + 1) % INSTANCES].set_at(restaurant, menu, now)?;
            menu_edits += 1;
        }
        if id % 499 == 0 {
            // A rider edits their profile (write-through).
            let p: Arc<str> = format!("{} (edited at order {id})", profile_text(&rider)).into();
            profile_l1s[(i + 3) % INSTANCES].set_at(rider, p, now)?;
            profile_edits += 1;
        }
        if placed_at >= next_flush {
            menus.flush()?;
            flushes += 1;
            next_flush += Duration::from_secs(60);
        }
    }
    menus.flush()?;
    let wall = wall.elapsed().as_secs_f64();

    let mut s = Section::new("cache");
    s.line(format!(
        "{} orders over {} simulated min, {} riders (Zipf 1.0); {} instances, L1 60 s / 8 MiB each",
        n,
        sim.as_secs() / 60,
        riders,
        INSTANCES
    ));
    s.metric(
        "tiered GETs + SETs/s (wall)",
        rate((2 * n + menu_edits + profile_edits) as usize, wall),
    );
    let ms = summary(menus.store());
    let ps = summary(profiles.store());
    describe(
        &mut s,
        "menus (L2 30 min, write-behind)",
        n,
        &menu_l1s[0].stats(),
        l1_sum(&menu_l1s),
        &ms,
    );
    describe(
        &mut s,
        "rider profiles (L2 1 h, write-through)",
        n,
        &profile_l1s[0].stats(),
        l1_sum(&profile_l1s),
        &ps,
    );
    s.metric(
        "edits / write-behind flushes",
        format!("{menu_edits} menus, {profile_edits} profiles / {flushes} flushes"),
    );
    let uncached =
        READ_LATENCY * (2 * n) as u32 + WRITE_LATENCY * (menu_edits + profile_edits) as u32;
    s.metric(
        "simulated store time",
        format!(
            "{:.0} s with the tiers vs {:.0} s without ({:.1}x less)",
            (ms.latency + ps.latency).as_secs_f64(),
            uncached.as_secs_f64(),
            uncached.as_secs_f64() / (ms.latency + ps.latency).as_secs_f64().max(1e-9)
        ),
    );
    Ok(s)
}
