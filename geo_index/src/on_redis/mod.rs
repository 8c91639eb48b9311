//! The driver index on Redis or a Redis Cluster (feature `redis`):
//! `RedisGeoIndex` and its configuration; the layout is documented on
//! `RedisGeoIndex`.

mod config;
mod replay;
mod reply;
mod search;
mod write;

use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dispatchkit_redis_conn::script::{Call, Lua, eval_pipelined};
use dispatchkit_redis_conn::{Pool, PoolConfig};
use redis::Value;

use crate::backend::DriverIndex;
use crate::grid::cell_xy;
use crate::index::ttl_ms;
use crate::{
    Attrs, BatchReport, DriverId, DriverUpdate, DriverView, GeoError, Hit, LonLat, Search, Status,
    Unit, Upsert, haversine_m,
};

pub use config::RedisGeoConfig;
pub use replay::SweepReport;
pub use search::PartialHits;

use write::TileSync;

/// The driver index on Redis or a Redis Cluster (feature `redis`): the
/// same [`DriverIndex`] as the in-process [`GeoIndex`](crate::GeoIndex),
/// with the same answers, for a fleet that outgrows one process.
/// `Send + Sync`; share it through an `Arc`.
///
/// ```
/// use std::time::Instant;
/// use dispatchkit_geo_index::{
///     Attrs, DriverId, DriverIndex, Filter, LonLat, RedisGeoConfig, RedisGeoIndex, Search,
///     Status, Unit,
/// };
/// # let Some(server) = dispatchkit_test_support::redis_server::RedisServer::start() else {
/// #     return Ok(());
/// # };
/// # let url = server.url();
/// let index = RedisGeoIndex::new(RedisGeoConfig::new(url))?; // e.g. "redis://10.0.0.5:6379/"
/// let now = Instant::now();
/// let _ = index.upsert_at(DriverId::new(7)?, LonLat::new(-122.33, 47.61)?, Attrs::default(), now)?;
/// let q = Search::radius(LonLat::new(-122.33, 47.61)?, 5.0, Unit::Kilometers)
///     .count(10)
///     .filter(Filter::available());
/// let hits = index.search_at(&q, now)?;
/// assert_eq!(hits[0].id, DriverId::new(7)?);
/// // Atomic across every process sharing the index: one winner.
/// assert!(index.compare_and_set_status_at(hits[0].id, Status::AVAILABLE, Status::BUSY, now)?);
/// assert!(index.search_at(&q, now)?.is_empty());
/// # Ok::<(), dispatchkit_geo_index::GeoError>(())
/// ```
///
/// # Layout (the seed's `drivers:{city}:{quadrant}` GEO sets, generalised)
///
/// - **Directory**: each driver's authoritative record (position,
///   attributes, update time, TTL, version; 41 bytes) in one of
///   [`RedisGeoConfig::dir_buckets`] hashes `{prefix:d<bucket>}` (bucket =
///   id mod buckets). Upserts with the stale check, removals and the two
///   claims are scripts on the driver's bucket, so they are atomic whatever
///   process runs them.
/// - **Tiles**: the world grid's cells (≈ 611 m) grouped into square tiles
///   of [`RedisGeoConfig::tile_cells`] cells a side (default 32, ≈ 20 km of
///   latitude), each a GEO set `{prefix:t<tile>}g` (member = driver id)
///   under its own hash tag. A search runs a script in each tile its area
///   touches, all in one pipeline; the script applies the expiry and the
///   attribute filter while it walks `GEOSEARCH`'s answer, so `COUNT 10`
///   with a filter returns the 10 nearest *matching* drivers.
/// - **On a single server** the tiles' GEO sets are an index on the
///   directory: every write (a whole batch, a claim, a removal) is one
///   script that changes the directory and the GEO sets together, and the
///   search script reads the candidates' records from the directory.
/// - **On a Cluster** a script can only touch one slot, so each tile also
///   keeps copies of its drivers' records (`{prefix:t<tile>}a`), written in
///   a second step after the directory's: one pipelined round trip of
///   directory scripts, then one of tile scripts. Every change of a driver
///   takes a new version from its bucket's counter and a tile applies a
///   driver's changes in version order (a removal leaves a tombstone for
///   [`RedisGeoConfig::tombstone_keep`]), so concurrent writers converge on
///   the directory's state and a move between tiles never leaves a ghost.
///   Between the two steps a moving driver can be in both tiles: a search
///   keeps its newest record. The claims are decided on the directory
///   alone, so two processes never both win one driver.
/// - **Expiry** (Redis GEO sets have none): every record carries its update
///   time and TTL; the scripts skip expired records, so nothing older than
///   its TTL is ever returned, and [`RedisGeoIndex::sweep_at`] deletes them
///   (one atomic script per bucket and tile, scanning its records). A
///   last-seen sorted set per tile would let the sweep read only what
///   expired, but its `ZADD` on every update cost more than the scan (see
///   the update bench).
/// - **Time**: update and processing times are Unix milliseconds
///   ([`RedisGeoConfig::clock`] maps the process's `Instant`s onto the
///   system clock), so processes on synchronised hosts share one timeline.
///
/// Distances, the shapes' membership tests and the result order are the
/// in-process index's own code, run on the exact stored positions: Redis
/// finds the candidates (within the shape's reach plus 2 m), the client
/// judges them, so both backends return the same drivers in the same order.
pub struct RedisGeoIndex {
    pool: Pool,
    prefix: String,
    default_ttl_ms: u64,
    max_skew_ms: u64,
    keep_ms: u64,
    tile_shift: u32,
    bucket_mask: u64,
    anchor: Instant,
    anchor_ms: i64,
}

impl std::fmt::Debug for RedisGeoIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisGeoIndex")
            .field("pool", &self.pool)
            .field("prefix", &self.prefix)
            .field("default_ttl_ms", &self.default_ttl_ms)
            .finish_non_exhaustive()
    }
}

fn config_error(what: &'static str, value: u64, reason: &'static str) -> GeoError {
    GeoError::InvalidConfig {
        what,
        value,
        reason,
    }
}

/// The script of a `.lua` file beside this one, built once.
/// (The record logic all scripts share, `prelude.lua`, comes first.)
macro_rules! lua {
    ($file:literal) => {{
        static LUA: OnceLock<Lua> = OnceLock::new();
        LUA.get_or_init(|| {
            Lua::new(concat!(include_str!("prelude.lua"), "\n", include_str!($file)).to_string())
        })
    }};
}

fn dir_lua() -> &'static Lua {
    lua!("dir.lua")
}

fn tile_lua() -> &'static Lua {
    lua!("tile.lua")
}

fn single_lua() -> &'static Lua {
    lua!("single.lua")
}

fn search_lua() -> &'static Lua {
    lua!("search.lua")
}

/// A directory op: its code and packed operands (the driver id goes
/// between them when the call is built; the scripts' stride is 3).
struct DirOp(&'static str, Vec<u8>);

impl RedisGeoIndex {
    /// An index on the configured server. Connects lazily: a server that is
    /// down shows on the first operation, as [`GeoError::Unavailable`].
    ///
    /// # Errors
    /// [`GeoError::InvalidConfig`] for a bad URL, prefix, tile size, bucket
    /// count or timeout; [`GeoError::InvalidValue`] for a TTL outside
    /// 1 ms..=2^40 ms.
    pub fn new(config: RedisGeoConfig) -> Result<Self, GeoError> {
        if config.prefix.contains(['{', '}']) {
            return Err(config_error(
                "prefix",
                config.prefix.len() as u64,
                "must not contain `{` or `}` (the index puts its own hash tags around it)",
            ));
        }
        if !config.tile_cells.is_power_of_two() || config.tile_cells > 1024 {
            return Err(config_error(
                "tile_cells",
                u64::from(config.tile_cells),
                "must be a power of two in 1..=1024",
            ));
        }
        if !config.dir_buckets.is_power_of_two() || config.dir_buckets > 65_536 {
            return Err(config_error(
                "dir_buckets",
                u64::from(config.dir_buckets),
                "must be a power of two in 1..=65536",
            ));
        }
        let default_ttl_ms = ttl_ms(config.default_ttl)?;
        let pool = Pool::new(&PoolConfig {
            url: config.url,
            connect_timeout: config.connect_timeout,
            io_timeout: config.io_timeout,
            tls_root_cert: config.tls_root_cert,
            max_idle: 8,
            cluster: config.cluster,
        })
        .map_err(|e| config_error(e.name, 0, e.reason))?;
        let (anchor, system) = config
            .clock
            .unwrap_or_else(|| (Instant::now(), SystemTime::now()));
        let anchor_ms = system
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Ok(RedisGeoIndex {
            pool,
            prefix: config.prefix,
            default_ttl_ms,
            max_skew_ms: u64::try_from(config.max_future_skew.as_millis()).unwrap_or(u64::MAX),
            keep_ms: u64::try_from(config.tombstone_keep.as_millis())
                .unwrap_or(u64::MAX)
                .max(1),
            tile_shift: config.tile_cells.trailing_zeros(),
            bucket_mask: u64::from(config.dir_buckets - 1),
            anchor,
            anchor_ms,
        })
    }

    /// The default TTL in ms.
    pub fn default_ttl_ms(&self) -> u64 {
        self.default_ttl_ms
    }

    /// Unix milliseconds of `t` (0 before 1970).
    fn ms(&self, t: Instant) -> u64 {
        let off = match t.checked_duration_since(self.anchor) {
            Some(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            None => -i64::try_from((self.anchor - t).as_millis()).unwrap_or(i64::MAX),
        };
        u64::try_from(self.anchor_ms.saturating_add(off)).unwrap_or(0)
    }

    /// The instant of Unix milliseconds `ms` (clamped to what `Instant`
    /// can hold).
    fn instant(&self, ms: u64) -> Instant {
        let off = i128::from(ms) - i128::from(self.anchor_ms);
        let d = Duration::from_millis(u64::try_from(off.unsigned_abs()).unwrap_or(u64::MAX));
        if off >= 0 {
            self.anchor.checked_add(d).unwrap_or(self.anchor)
        } else {
            self.anchor.checked_sub(d).unwrap_or(self.anchor)
        }
    }

    /// `id mod buckets`: every process and build agrees, and the search
    /// script can compute it from the decimal id (ids are assigned
    /// sequentially in practice, so this spreads them evenly).
    fn bucket_of(&self, id: DriverId) -> u64 {
        id.get() & self.bucket_mask
    }

    fn is_single(&self) -> bool {
        !self.pool.is_cluster()
    }

    /// The call of `single.lua`, up to its prefix.
    fn single_call(&self, now_ms: u64) -> Call {
        Call::new(single_lua(), Vec::new())
            .arg(now_ms)
            .arg(self.default_ttl_ms)
            .arg(Attrs::default().pack())
            .arg(&self.prefix)
    }

    fn tile_of(&self, pos: LonLat) -> u32 {
        let (cx, cy) = cell_xy(pos);
        ((cy >> self.tile_shift) << 16) | (cx >> self.tile_shift)
    }

    fn dir_keys(&self, bucket: u64) -> Vec<Vec<u8>> {
        vec![format!("{{{}:d{bucket}}}", self.prefix).into_bytes()]
    }

    /// The tile's GEO set and records hash.
    fn tile_keys(&self, tile: u32) -> Vec<Vec<u8>> {
        let tag = format!("{{{}:t{tile}}}", self.prefix);
        vec![
            format!("{tag}g").into_bytes(),
            format!("{tag}a").into_bytes(),
        ]
    }

    fn registry_key(&self) -> String {
        format!("{{{}}}:tiles", self.prefix)
    }

    fn unavailable(part: impl Into<String>, f: dispatchkit_redis_conn::Failure) -> GeoError {
        GeoError::Unavailable {
            part: part.into(),
            reason: f.reason,
        }
    }

    /// Runs `calls` in one pipeline; a failure names `part`.
    fn eval_all(&self, calls: &[Call], part: &str) -> Result<Vec<Value>, GeoError> {
        if calls.is_empty() {
            return Ok(Vec::new());
        }
        self.pool
            .run_session(|s| eval_pipelined(s, calls))
            .map_err(|f| Self::unavailable(part, f))
    }

    /// A `dir.lua` call on `bucket`, up to its ops (no driver twice).
    fn dir_call(&self, bucket: u64, now_ms: u64) -> Call {
        Call::new(dir_lua(), self.dir_keys(bucket))
            .arg(now_ms)
            .arg(self.default_ttl_ms)
            .arg(Attrs::default().pack())
    }

    /// A `tile.lua` call on `tile`, up to its ops (no driver twice).
    fn tile_call(&self, tile: u32, now_ms: u64) -> Call {
        Call::new(tile_lua(), self.tile_keys(tile))
            .arg(now_ms)
            .arg(self.keep_ms)
    }
}

impl DriverIndex for RedisGeoIndex {
    fn upsert_at(
        &self,
        id: DriverId,
        pos: LonLat,
        attrs: Attrs,
        now: Instant,
    ) -> Result<Upsert, GeoError> {
        let u = DriverUpdate::new(id, pos, now).with_attrs(attrs);
        let mut r = self.apply(&[u], now)?;
        if let Some((_, e)) = r.rejected.pop() {
            return Err(e);
        }
        Ok(match (r.inserted, r.moved) {
            (1, _) => Upsert::Inserted,
            (_, 1) => Upsert::Moved,
            _ => Upsert::Stale,
        })
    }

    fn upsert_batch_at(
        &self,
        updates: &[DriverUpdate],
        now: Instant,
    ) -> Result<BatchReport, GeoError> {
        self.apply(updates, now)
    }

    fn remove_at(&self, id: DriverId, now: Instant) -> Result<DriverView, GeoError> {
        let r = self.dir_op(id, DirOp("R", Vec::new()), now)?;
        if r.code == -1 {
            return Err(GeoError::UnknownDriver(id));
        }
        let rec = r.record()?;
        if !self.is_single() {
            let mut sync = TileSync::new(self, self.ms(now));
            sync.remove(rec.tile, id, r.int(2)?);
            sync.run()?;
        }
        Ok(self.view(id, &rec))
    }

    fn get_at(&self, id: DriverId, now: Instant) -> Result<DriverView, GeoError> {
        let r = self.dir_op(id, DirOp("G", Vec::new()), now)?;
        if r.code == -1 {
            return Err(GeoError::UnknownDriver(id));
        }
        Ok(self.view(id, &r.record()?))
    }

    fn distance_at(
        &self,
        a: DriverId,
        b: DriverId,
        unit: Unit,
        now: Instant,
    ) -> Result<f64, GeoError> {
        let (pa, pb) = (self.position_at(a, now)?, self.position_at(b, now)?);
        Ok(haversine_m(pa, pb) / unit.metres())
    }

    fn search_at(&self, q: &Search, now: Instant) -> Result<Vec<Hit>, GeoError> {
        self.search_excluding_at(q, &[], now)
    }

    fn search_excluding_at(
        &self,
        q: &Search,
        exclude: &[DriverId],
        now: Instant,
    ) -> Result<Vec<Hit>, GeoError> {
        self.run_search(q, exclude, now, false).map(|p| p.hits)
    }

    fn compare_and_set_status_at(
        &self,
        id: DriverId,
        expected: Status,
        new: Status,
        now: Instant,
    ) -> Result<bool, GeoError> {
        self.change(id, DirOp("C", vec![expected.get(), new.get()]), now)
    }

    fn claim_load_at(
        &self,
        id: DriverId,
        eligible: Status,
        load: u8,
        max: u8,
        full: Status,
        now: Instant,
    ) -> Result<bool, GeoError> {
        if max > Attrs::MAX_LOAD {
            return Err(GeoError::InvalidAttribute {
                what: "load",
                value: f64::from(max),
                reason: "a driver carries at most 7 orders",
            });
        }
        let args = vec![eligible.get(), load, max, full.get()];
        self.change(id, DirOp("L", args), now)
    }

    fn release_load_at(
        &self,
        id: DriverId,
        load: u8,
        full: Status,
        available: Status,
        now: Instant,
    ) -> Result<(), GeoError> {
        let args = vec![load, full.get(), available.get()];
        self.change(id, DirOp("F", args), now).map(drop)
    }
}

// Shared across threads by design.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<RedisGeoIndex>();
};
