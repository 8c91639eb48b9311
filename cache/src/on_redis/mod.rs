//! The shared tier on Redis (feature `redis`): [`RedisTier`] keeps the L2
//! in a Redis server every process shares and invalidates every process's
//! L1s through a pub/sub channel; [`RedisTieredCache`] is one instance's
//! view (its own L1), implementing [`Tier`](crate::Tier) like the
//! in-process [`TieredCache`](crate::TieredCache).
//!
//! # Invalidation: pub/sub, not client-side caching
//! A write or delete publishes `(origin, key)` on `<prefix>:inv`; a
//! subscriber thread per `RedisTier` removes the key from every local L1
//! (cancelling an in-flight fill of it). Pub/sub rather than `CLIENT
//! TRACKING`: tracking needs a RESP3 push connection per process and
//! tracks only keys this client read through Redis, while an L1 entry may
//! have come from the store; one channel says exactly "this key changed".
//! Pub/sub is fire-and-forget: a subscriber that loses its connection may
//! miss messages, so on every (re)subscription it empties its L1s.
//!
//! # Failures
//! Redis down or slow (refused, timed out): reads fall through to the
//! store; writes still reach the store first, and then the L2 and the
//! other processes' L1s cannot be told — they serve the old value until
//! their TTL (counted in [`RedisTierStats::l2_errors`]). Nothing blocks
//! past the configured timeouts. Single-flight stays per process.

mod codec;
mod config;
#[cfg(feature = "tokio")]
mod on_async;
mod subscriber;

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Instant;

use dispatchkit_redis_conn::{Failure, Pool, PoolConfig};
use parking_lot::{Mutex, RwLock};

pub use codec::{Codec, Postcard};
pub use config::{RedisTierConfig, RedisTierStats};
use subscriber::{origin_id, subscribe_loop};

use crate::cache::{Cache, DefaultHashBuilder};
use crate::tiered::{Store, apply_op, catch_store};
use crate::weigher::{UnitWeigher, Weigher};
use crate::write_behind::{Op, WriteBehind};
use crate::{CacheError, Tier, TierConfig, WriteMode};

#[derive(Debug, Default)]
struct Counters {
    l2_hits: AtomicU64,
    l2_misses: AtomicU64,
    l2_errors: AtomicU64,
    store_gets: AtomicU64,
    invalidations_received: AtomicU64,
    resubscriptions: AtomicU64,
}

/// The local L1s by instance id.
type Registry<K, V, W, S> = RwLock<Vec<(u64, Weak<Cache<K, V, W, S>>)>>;

/// What the subscriber thread shares with the tier.
struct Shared<K, V, W, S> {
    instances: Registry<K, V, W, S>,
    counters: Counters,
    subscribed: AtomicBool,
    stop: AtomicBool,
}

impl<K: Hash + Eq, V, W: Weigher<K, V>, S: BuildHasher> Shared<K, V, W, S> {
    fn each_l1(&self, mut f: impl FnMut(&Cache<K, V, W, S>)) {
        for (_, w) in self.instances.read().iter() {
            if let Some(c) = w.upgrade() {
                f(&c);
            }
        }
    }
}

/// The L2 on Redis and the store behind it, shared by every instance of
/// one process; every process that connects to the same server and prefix
/// shares the L2 and receives the others' invalidations.
pub struct RedisTier<K, V, St, C = Postcard, W = UnitWeigher, S = DefaultHashBuilder> {
    pool: Arc<Pool>,
    cfg: RedisTierConfig,
    channel: Vec<u8>,
    origin: u64,
    store: St,
    tier: TierConfig,
    queue: Option<WriteBehind<K, V>>,
    codec: Arc<C>,
    shared: Arc<Shared<K, V, W, S>>,
    next_instance: AtomicU64,
    subscriber: Mutex<Option<JoinHandle<()>>>,
}

impl<K, V, St, C, W, S> fmt::Debug for RedisTier<K, V, St, C, W, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTier")
            .field("prefix", &self.cfg.key_prefix)
            .field("instances", &self.shared.instances.read().len())
            .finish_non_exhaustive()
    }
}

fn redis_error(operation: &'static str, f: Failure) -> CacheError {
    CacheError::Unavailable {
        operation,
        reason: f.reason,
    }
}

/// What every Redis tier does, whatever its store (blocking [`Store`] or,
/// with the `tokio` feature, [`AsyncStore`](crate::AsyncStore)).
impl<K, V, St, C, W, S> RedisTier<K, V, St, C, W, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    St: Send + Sync + 'static,
    C: Codec<K> + Codec<V> + 'static,
    W: Weigher<K, V> + Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    /// A tier on the server of `cfg` over `store`, writing it as `tier`
    /// says (write-through, or write-behind through a queue that
    /// [`flush`](Self::flush) applies; `store_attempts` tries per write),
    /// encoding with `codec`; starts the invalidation subscriber (a thread,
    /// stopped on drop).
    ///
    /// # Errors
    /// [`CacheError::InvalidSetting`] for a URL the client rejects, a root
    /// certificate that is not PEM, zero timeouts or TTL, a prefix with
    /// braces, or a `tier` that [`TierConfig::validate`] refuses;
    /// [`CacheError::Unavailable`] when the subscriber thread cannot be
    /// started.
    pub fn new(
        cfg: RedisTierConfig,
        tier: TierConfig,
        store: St,
        codec: C,
    ) -> Result<Arc<Self>, CacheError> {
        tier.validate()?;
        let bad = |name: &'static str, reason: &'static str| CacheError::InvalidSetting {
            name,
            value: 0,
            reason,
        };
        if cfg.l2_ttl.as_millis() == 0 {
            return Err(bad("l2_ttl", "L2 entries need a TTL of at least 1 ms"));
        }
        if cfg.key_prefix.is_empty() || cfg.key_prefix.contains(['{', '}']) {
            return Err(bad(
                "key_prefix",
                "a prefix must be non-empty and hold no braces",
            ));
        }
        let pool = Pool::new(&PoolConfig {
            url: cfg.url.clone(),
            connect_timeout: cfg.connect_timeout,
            io_timeout: cfg.io_timeout,
            tls_root_cert: cfg.tls_root_cert.clone(),
            max_idle: 16,
            cluster: cfg.cluster,
        })
        .map_err(|e| bad(e.name, e.reason))?;
        let channel = format!("{}:inv", cfg.key_prefix).into_bytes();
        let tier = Arc::new(Self {
            pool: Arc::new(pool),
            channel,
            origin: origin_id(),
            cfg,
            store,
            queue: match tier.write_mode {
                WriteMode::Through => None,
                WriteMode::Behind { queue_capacity } => Some(WriteBehind::new(queue_capacity)),
            },
            tier,
            codec: Arc::new(codec),
            shared: Arc::new(Shared {
                instances: RwLock::new(Vec::new()),
                counters: Counters::default(),
                subscribed: AtomicBool::new(false),
                stop: AtomicBool::new(false),
            }),
            next_instance: AtomicU64::new(0),
            subscriber: Mutex::new(None),
        });
        let handle = tier
            .spawn_subscriber()
            .map_err(|e| CacheError::Unavailable {
                operation: "subscribe",
                reason: format!("cannot start the invalidation thread: {e}"),
            })?;
        *tier.subscriber.lock() = Some(handle);
        Ok(tier)
    }

    /// A new instance with its own `l1`, registered for invalidations.
    pub fn instance(
        self: &Arc<Self>,
        l1: Cache<K, V, W, S>,
    ) -> RedisTieredCache<K, V, St, C, W, S> {
        let l1 = Arc::new(l1);
        let id = self.next_instance.fetch_add(1, Relaxed);
        self.shared
            .instances
            .write()
            .push((id, Arc::downgrade(&l1)));
        RedisTieredCache {
            l1,
            tier: Arc::clone(self),
            id,
        }
    }

    /// Whether the invalidation subscriber is subscribed now (a process
    /// that starts serving before it is may miss an invalidation).
    pub fn is_subscribed(&self) -> bool {
        self.shared.subscribed.load(Relaxed)
    }

    /// The store.
    pub fn store(&self) -> &St {
        &self.store
    }

    /// Write-behind writes pending in this process.
    pub fn pending_writes(&self) -> usize {
        self.queue.as_ref().map_or(0, WriteBehind::len)
    }

    /// Pending writes whose last attempt failed, with that error.
    pub fn failed_writes(&self) -> Vec<(K, CacheError)> {
        self.queue
            .as_ref()
            .map_or_else(Vec::new, WriteBehind::failures)
    }

    /// Counters.
    pub fn stats(&self) -> RedisTierStats {
        let c = &self.shared.counters;
        RedisTierStats {
            l2_hits: c.l2_hits.load(Relaxed),
            l2_misses: c.l2_misses.load(Relaxed),
            l2_errors: c.l2_errors.load(Relaxed),
            store_gets: c.store_gets.load(Relaxed),
            invalidations_received: c.invalidations_received.load(Relaxed),
            resubscriptions: c.resubscriptions.load(Relaxed),
        }
    }

    /// Runs `f` on a pooled connection (counted as an L2 error when it fails).
    fn redis<T>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&mut dyn redis::ConnectionLike) -> redis::RedisResult<T>,
    ) -> Result<T, CacheError> {
        self.pool.run(f).map_err(|e| {
            self.shared.counters.l2_errors.fetch_add(1, Relaxed);
            redis_error(operation, e)
        })
    }

    fn key_name(&self, key: &K) -> Result<Vec<u8>, CacheError> {
        let mut name = Vec::with_capacity(self.cfg.key_prefix.len() + 24);
        name.extend_from_slice(self.cfg.key_prefix.as_bytes());
        name.push(b':');
        Codec::<K>::encode(&*self.codec, key, &mut name)?;
        Ok(name)
    }

    /// This process's pending write of `key` (`Some(None)`: a delete).
    fn pending(&self, key: &K) -> Option<Option<V>> {
        let op = self.queue.as_ref()?.peek(key)?;
        Some(match op {
            Op::Put(v) => Some(v),
            Op::Delete => None,
        })
    }

    /// The L2 entry of `key` (a Redis failure, or an entry another schema
    /// wrote, reads as a miss).
    fn l2_get(&self, key: &K) -> Option<V> {
        let name = self.key_name(key).ok()?;
        let cached: Result<Option<Vec<u8>>, CacheError> =
            self.redis("get", |c| redis::cmd("GET").arg(&name).query(c));
        if let Ok(Some(bytes)) = &cached
            && let Ok(v) = Codec::<V>::decode(&*self.codec, bytes)
        {
            self.shared.counters.l2_hits.fetch_add(1, Relaxed);
            return Some(v);
        }
        if cached.is_ok() {
            self.shared.counters.l2_misses.fetch_add(1, Relaxed);
        }
        None
    }

    /// A store read's result; a value found is to be put in Redis.
    fn from_store(
        r: Result<Option<V>, Arc<dyn std::error::Error + Send + Sync>>,
    ) -> Result<Option<V>, CacheError> {
        r.map_err(|source| CacheError::Store {
            operation: "get",
            attempts: 1,
            source,
        })
    }

    /// Puts a value the store answered into Redis (best effort).
    fn fill_l2(&self, key: &K, v: &V) {
        if let Ok(name) = self.key_name(key) {
            let _ = self.put_l2(&name, v);
        }
    }

    fn put_l2(&self, name: &[u8], v: &V) -> Result<(), CacheError> {
        let mut bytes = Vec::new();
        Codec::<V>::encode(&*self.codec, v, &mut bytes)?;
        let ttl = u64::try_from(self.cfg.l2_ttl.as_millis()).unwrap_or(u64::MAX);
        self.redis("set", |c| {
            redis::cmd("SET")
                .arg(name)
                .arg(bytes)
                .arg("PX")
                .arg(ttl)
                .query::<()>(c)
        })
    }

    /// Changes the L2 entry (`Some`: set; `None`: delete) and tells every
    /// other process, in one round trip (MULTI: the write and the PUBLISH).
    fn write_l2(&self, key: &K, value: Option<&V>) -> Result<(), CacheError> {
        let name = self.key_name(key)?;
        let mut msg = self.origin.to_le_bytes().to_vec();
        Codec::<K>::encode(&*self.codec, key, &mut msg)?;
        if self.pool.is_cluster() {
            // A Cluster transaction cannot hold a key and a PUBLISH: the
            // write first, then the message (the value is in Redis before
            // any process hears of it).
            self.redis("write", |c| match value {
                Some(v) => {
                    let mut bytes = Vec::new();
                    Codec::<V>::encode(&*self.codec, v, &mut bytes).map_err(|e| {
                        redis::RedisError::from((redis::ErrorKind::Client, "codec", e.to_string()))
                    })?;
                    let ttl = u64::try_from(self.cfg.l2_ttl.as_millis()).unwrap_or(u64::MAX);
                    redis::cmd("SET")
                        .arg(&name)
                        .arg(bytes)
                        .arg("PX")
                        .arg(ttl)
                        .query::<()>(c)
                }
                None => redis::cmd("DEL").arg(&name).query::<()>(c),
            })?;
            return self.redis("publish", |c| {
                redis::cmd("PUBLISH")
                    .arg(&self.channel)
                    .arg(msg)
                    .query::<()>(c)
            });
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        match value {
            Some(v) => {
                let mut bytes = Vec::new();
                Codec::<V>::encode(&*self.codec, v, &mut bytes)?;
                let ttl = u64::try_from(self.cfg.l2_ttl.as_millis()).unwrap_or(u64::MAX);
                pipe.cmd("SET")
                    .arg(&name)
                    .arg(bytes)
                    .arg("PX")
                    .arg(ttl)
                    .ignore();
            }
            None => {
                pipe.cmd("DEL").arg(&name).ignore();
            }
        }
        pipe.cmd("PUBLISH").arg(&self.channel).arg(msg).ignore();
        self.redis("write", |c| pipe.query::<()>(c))
    }

    fn spawn_subscriber(self: &Arc<Self>) -> std::io::Result<JoinHandle<()>> {
        let shared = Arc::clone(&self.shared);
        let pool = Arc::clone(&self.pool);
        let channel = self.channel.clone();
        let origin = self.origin;
        let codec = Arc::clone(&self.codec);
        std::thread::Builder::new()
            .name("dk-cache-invalidations".into())
            .spawn(move || subscribe_loop(&shared, &pool, &channel, origin, &*codec))
    }
}

/// The tier over a blocking [`Store`].
impl<K, V, St, C, W, S> RedisTier<K, V, St, C, W, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    St: Store<K, V> + 'static,
    C: Codec<K> + Codec<V> + 'static,
    W: Weigher<K, V> + Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    /// Applies every write-behind write pending when called; returns how
    /// many were applied (write-through: `Ok(0)`). A failed write stays
    /// pending with its error ([`failed_writes`](Self::failed_writes)).
    ///
    /// # Errors
    /// [`CacheError::FlushFailed`] if some writes failed every attempt.
    pub fn flush(&self) -> Result<usize, CacheError> {
        match &self.queue {
            None => Ok(0),
            Some(q) => q.flush(|k, o| self.apply(k, o)),
        }
    }

    fn apply(&self, key: &K, op: &Op<V>) -> Result<(), CacheError> {
        apply_op(&self.store, key, op, self.tier.store_attempts).0
    }

    /// The store write of `op` for `key`: now (write-through) or queued.
    fn write_store(&self, key: &K, op: Op<V>) -> Result<(), CacheError> {
        match &self.queue {
            None => self.apply(key, &op),
            Some(q) => q.enqueue(key, op, |k, o| self.apply(k, o)),
        }
    }

    /// This process's pending write, else L2, else the store (filling L2);
    /// `Ok(None)` when the store has none.
    fn load(&self, key: &K) -> Result<Option<V>, CacheError> {
        if let Some(v) = self.pending(key) {
            return Ok(v);
        }
        if let Some(v) = self.l2_get(key) {
            return Ok(Some(v));
        }
        self.load_l3(key)
    }

    /// The store's value of `key` (a pending write first), filling Redis.
    fn load_l3(&self, key: &K) -> Result<Option<V>, CacheError> {
        if let Some(v) = self.pending(key) {
            return Ok(v);
        }
        self.shared.counters.store_gets.fetch_add(1, Relaxed);
        let v = Self::from_store(catch_store(|| self.store.get(key)))?;
        if let Some(v) = &v {
            self.fill_l2(key, v);
        }
        Ok(v)
    }
}

impl<K, V, St, C, W, S> Drop for RedisTier<K, V, St, C, W, S> {
    fn drop(&mut self) {
        self.shared.stop.store(true, Relaxed);
        if let Some(h) = self.subscriber.lock().take() {
            let _ = h.join();
        }
    }
}

/// One instance's view: its own L1 over the Redis tier.
pub struct RedisTieredCache<K, V, St, C = Postcard, W = UnitWeigher, S = DefaultHashBuilder> {
    l1: Arc<Cache<K, V, W, S>>,
    tier: Arc<RedisTier<K, V, St, C, W, S>>,
    id: u64,
}

impl<K, V, St, C, W, S> fmt::Debug for RedisTieredCache<K, V, St, C, W, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTieredCache")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl<K, V, St, C, W, S> Drop for RedisTieredCache<K, V, St, C, W, S> {
    fn drop(&mut self) {
        self.tier
            .shared
            .instances
            .write()
            .retain(|(id, _)| *id != self.id);
    }
}

/// Why a load produced no value.
#[derive(Debug)]
enum Miss {
    NotFound,
    Failed(CacheError),
}

impl<K, V, St, C, W, S> RedisTieredCache<K, V, St, C, W, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    St: Send + Sync + 'static,
    C: Codec<K> + Codec<V> + 'static,
    W: Weigher<K, V> + Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    /// This instance's L1.
    pub fn l1(&self) -> &Cache<K, V, W, S> {
        &self.l1
    }

    /// The tier.
    pub fn tier(&self) -> &Arc<RedisTier<K, V, St, C, W, S>> {
        &self.tier
    }

    /// Removes `key` from every L1 of this process but this instance's.
    fn invalidate_local(&self, key: &K) {
        for (id, w) in self.tier.shared.instances.read().iter() {
            if *id != self.id
                && let Some(c) = w.upgrade()
            {
                c.remove(key);
            }
        }
    }
}

impl<K, V, St, C, W, S> RedisTieredCache<K, V, St, C, W, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    St: Store<K, V> + 'static,
    C: Codec<K> + Codec<V> + 'static,
    W: Weigher<K, V> + Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    /// The values of `keys` in one Redis round trip for the L1 misses
    /// (`MGET`), then the store for what Redis lacks (filling Redis and L1);
    /// `None` where the store has none. Not single-flight (a batch read is
    /// already one round trip); a Redis failure falls through to the store.
    ///
    /// # Errors
    /// [`CacheError::Store`] when a store read failed.
    pub fn get_many_at(&self, keys: &[K], now: Instant) -> Result<Vec<Option<V>>, CacheError> {
        let mut out: Vec<Option<V>> = keys.iter().map(|k| self.l1.get_at(k, now)).collect();
        let missing: Vec<usize> = (0..keys.len()).filter(|&i| out[i].is_none()).collect();
        if missing.is_empty() {
            return Ok(out);
        }
        let tier = &self.tier;
        let mut from_l2: Vec<Option<V>> = vec![None; missing.len()];
        let names: Result<Vec<Vec<u8>>, CacheError> =
            missing.iter().map(|&i| tier.key_name(&keys[i])).collect();
        if let Ok(names) = names {
            // One MGET on one node; on a Cluster the keys live in different
            // slots, so one GET each.
            let fetched = if tier.pool.is_cluster() {
                names
                    .iter()
                    .map(|n| tier.redis("get", |c| redis::cmd("GET").arg(n.as_slice()).query(c)))
                    .collect::<Result<Vec<Option<Vec<u8>>>, CacheError>>()
            } else {
                let mut cmd = redis::cmd("MGET");
                for n in &names {
                    cmd.arg(n.as_slice());
                }
                tier.redis("mget", |c| cmd.query::<Vec<Option<Vec<u8>>>>(c))
            };
            if let Ok(found) = fetched {
                for (slot, bytes) in from_l2.iter_mut().zip(found) {
                    *slot = bytes.and_then(|b| Codec::<V>::decode(&*tier.codec, &b).ok());
                }
            }
        }
        for (j, &i) in missing.iter().enumerate() {
            let v = match from_l2[j].take() {
                Some(v) => {
                    tier.shared.counters.l2_hits.fetch_add(1, Relaxed);
                    Some(v)
                }
                None => tier.load_l3(&keys[i])?,
            };
            if let Some(v) = &v {
                let _ = self.l1.insert_at(keys[i].clone(), v.clone(), now);
            }
            out[i] = v;
        }
        Ok(out)
    }
}

impl<K, V, St, C, W, S> Tier<K, V> for RedisTieredCache<K, V, St, C, W, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    St: Store<K, V> + 'static,
    C: Codec<K> + Codec<V> + 'static,
    W: Weigher<K, V> + Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    /// L1, else (single-flight per process) Redis, else the store filling
    /// Redis; a Redis failure falls through to the store.
    fn get_at(&self, key: &K, now: Instant) -> Result<Option<V>, CacheError> {
        let r = self
            .l1
            .try_get_or_load_at(key, now, || match self.tier.load(key) {
                Ok(Some(v)) => Ok(v),
                Ok(None) => Err(Miss::NotFound),
                Err(e) => Err(Miss::Failed(e)),
            });
        match r {
            Ok(v) => Ok(Some(v)),
            Err(e) => match &*e {
                Miss::NotFound => Ok(None),
                Miss::Failed(err) => Err(err.clone()),
            },
        }
    }

    /// The store first (write-through; write-behind: queued in this
    /// process, read back from the queue by its instances and from Redis by
    /// the others until [`RedisTier::flush`]); then Redis and the other
    /// processes' L1s in one round trip; then this process's L1s. With
    /// Redis unavailable the store write stands and `Ok` is returned (the
    /// other processes serve the old value until their L1 TTL; counted in
    /// `l2_errors`).
    fn set_at(&self, key: K, value: V, now: Instant) -> Result<(), CacheError> {
        self.tier.write_store(&key, Op::Put(value.clone()))?;
        let _ = self.tier.write_l2(&key, Some(&value));
        self.invalidate_local(&key);
        if self.l1.insert_at(key.clone(), value, now).is_err() {
            self.l1.remove(&key);
        }
        Ok(())
    }

    fn delete_at(&self, key: &K, _now: Instant) -> Result<(), CacheError> {
        self.tier.write_store(key, Op::Delete)?;
        let _ = self.tier.write_l2(key, None);
        self.invalidate_local(key);
        self.l1.remove(key);
        Ok(())
    }

    fn invalidate_at(&self, key: &K, _now: Instant) {
        let _ = self.tier.write_l2(key, None);
        self.invalidate_local(key);
        self.l1.remove(key);
    }
}
