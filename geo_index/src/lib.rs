//! A sharded, in-process index of moving drivers with Redis `GEOSEARCH`
//! semantics: the critical path of a ride-hailing platform (seed example 1,
//! step 1: `GEOADD drivers:{city}:{quadrant}`, `GEORADIUS … 5 km`, a 30 s
//! TTL meaning "offline") in one process.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::{Duration, Instant};
//! use dispatchkit_geo_index::{
//!     Attrs, DriverId, DriverUpdate, Filter, GeoIndex, LonLat, Rating, Search, Status, Unit,
//!     VehicleType,
//! };
//!
//! let index = Arc::new(GeoIndex::new()); // Send + Sync
//! let t0 = Instant::now();
//! let car = VehicleType::new(1)?;
//!
//! // Location updates arrive in batches; one lock per shard touched.
//! let batch: Vec<DriverUpdate> = (0..100u64)
//!     .map(|i| {
//!         let pos = LonLat::new(-122.33 + i as f64 * 1e-3, 47.61)?;
//!         Ok(DriverUpdate::new(DriverId::new(i)?, pos, t0)
//!             .with_attrs(Attrs::available(car, Rating::new(4.8)?)))
//!     })
//!     .collect::<Result<_, dispatchkit_geo_index::GeoError>>()?;
//! let report = index.upsert_batch_at(&batch, t0);
//! assert_eq!(report.inserted, 100);
//!
//! // GEOSEARCH drivers FROMLONLAT -122.33 47.61 BYRADIUS 5 km ASC COUNT 10,
//! // available cars rated 4.5+ only.
//! let q = Search::radius(LonLat::new(-122.33, 47.61)?, 5.0, Unit::Kilometers)
//!     .count(10)
//!     .filter(Filter::available().min_rating(Rating::new(4.5)?));
//! let hits = index.search_at(&q, t0)?;
//! assert_eq!(hits[0].id, DriverId::new(0)?);
//!
//! // A matcher claims the nearest driver atomically.
//! assert!(index.compare_and_set_status_at(hits[0].id, Status::AVAILABLE, Status::BUSY, t0)?);
//! assert_eq!(index.search_at(&q, t0)?[0].id, DriverId::new(1)?);
//!
//! // Without updates, drivers go offline after the TTL.
//! assert!(index.search_at(&q, t0 + Duration::from_secs(30))?.is_empty());
//! # Ok::<(), dispatchkit_geo_index::GeoError>(())
//! ```
//!
//! # What it does
//!
//! | operation | Redis | here |
//! |---|---|---|
//! | insert or move | `GEOADD` | [`GeoIndex::upsert_at`], [`GeoIndex::upsert_batch_at`] (stale updates rejected: last writer by update time wins) |
//! | position, distance | `GEOPOS`, `GEODIST` | [`GeoIndex::position_at`], [`GeoIndex::distance_at`] |
//! | search | `GEOSEARCH FROMLONLAT/FROMMEMBER BYRADIUS/BYBOX ASC/DESC COUNT n [ANY] WITHDIST WITHCOORD WITHHASH` | [`GeoIndex::search_at`] with [`Search`] |
//! | offline after 30 s | key `EXPIRE` | per-index and per-driver TTL, [`GeoIndex::purge_expired_at`] plus an amortised sweep |
//! | — | — | attribute [`Filter`]s and closures inside the walk, k-nearest within a cap ([`GeoIndex::nearest_at`]), atomic status claims, geofence enter/exit events ([`GeoIndex::add_fence`]), snapshots ([`GeoIndex::snapshot_at`]) |
//!
//! Distances are haversine with Redis's earth radius (6372797.560856 m);
//! coordinates are validated against the Redis ranges and stored to ≤ 6.6 mm,
//! so distances agree with Redis (which stores a 52-bit geohash, ≤ 0.6 m)
//! to well within 0.5 m.
//!
//! # Design
//!
//! The world is a fixed grid of ~600 m cells; 64 × 64-cell tiles (~39 km,
//! a city quadrant) are hashed onto lock shards (`parking_lot::RwLock`), so
//! writers in different areas do not contend and a batch takes each
//! shard's lock once. A driver is a 24-byte slot in its cell (a cell's
//! slots are one array, carved from chunks the index's shards share and
//! backed by huge pages where the kernel allows); a cell that
//! gets crowded ([`IndexConfig::split_cells_at`] drivers, default 64) is
//! split into 2 × 2 sub-cells, so that a k-nearest search in a dense area
//! scans the sub-cells near its centre, not whole cells. A directory
//! (an open-addressing table, 16 bytes a driver) maps its id to its slot. Searches read-lock every shard their
//! area touches before reading, so a driver crossing a shard boundary is
//! never lost and never seen twice. See `index.rs` for the locking protocol.
//!
//! Times are milliseconds on the index's own timeline (1 ms resolution,
//! 34.8 years of range); an update dated more than
//! [`IndexConfig::max_future_skew`] (default 5 s) after the processing time
//! is refused, so a bad phone clock cannot freeze a driver. Driver ids are
//! `u64` except `u64::MAX`, which the index reserves: [`DriverId::new`]
//! (and its `Deserialize`) refuses it, so no call can meet it.
//!
//! # Features
//!
//! | feature | default | what it enables |
//! |---|---|---|
//! | `serde` | off | `Serialize`/`Deserialize` on [`LonLat`], attributes, [`Snapshot`] and events |
//! | `redis` | off | `RedisGeoIndex`: the same [`DriverIndex`] on Redis or a Redis Cluster, for a fleet several processes share (its docs give the key layout) |
//!
//! # Where this fits
//!
//! This crate is one module of [dispatchkit](https://docs.rs/dispatchkit)
//! (re-exported as `dispatchkit::geo`); the module map and the rules every
//! module follows are in
//! [ARCHITECTURE.md](https://github.com/dispatchkit/dispatchkit/blob/main/ARCHITECTURE.md).
#![warn(missing_debug_implementations)]

mod area;
mod attrs;
mod backend;
mod batch;
mod checked_serde;
mod coord;
mod dir;
mod driver;
mod error;
mod expiry;
mod fence;
mod fence_registry;
mod grid;
mod index;
#[cfg(feature = "redis")]
mod on_redis;
mod prefetch;
mod query;
mod read;
mod rings;
mod search;
mod shard;
mod slab;
mod snapshot;
mod time;
mod write;

pub use attrs::{Attrs, Filter, Rating, Status, VehicleSet, VehicleType};
pub use backend::DriverIndex;
pub use batch::BatchReport;
pub use coord::{
    EARTH_RADIUS_M, LAT_LIMIT, LON_LIMIT, LonLat, REDIS_HAVERSINE, Unit, haversine_m, redis_geohash,
};
pub use driver::{DriverId, DriverUpdate, DriverView, Upsert};
pub use error::GeoError;
pub use fence::{Fence, FenceEvent, FenceEventKind};
pub use index::{GeoIndex, IndexConfig, IndexStats};
#[cfg(feature = "redis")]
pub use on_redis::{PartialHits, RedisGeoConfig, RedisGeoIndex, SweepReport};
pub use query::{Center, Hit, Order, Search, Shape};
pub use snapshot::{Snapshot, SnapshotDriver};

// Shared across threads by design (documented as `Send + Sync`): checked
// at compile time.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<GeoIndex>();
    send_sync::<Search>();
    send_sync::<Snapshot>();
};
