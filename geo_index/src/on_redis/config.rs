//! Where a `RedisGeoIndex` lives and how it is laid out.

use std::time::{Duration, Instant, SystemTime};

/// Where the Redis index lives and how it is laid out.
///
/// ```no_run
/// use dispatchkit_geo_index::{RedisGeoConfig, RedisGeoIndex};
///
/// let mut cfg = RedisGeoConfig::new("redis://127.0.0.1:6379");
/// cfg.prefix = "drivers:seattle".into();
/// let index = RedisGeoIndex::new(cfg)?;
/// # Ok::<(), dispatchkit_geo_index::GeoError>(())
/// ```
#[derive(Debug, Clone)]
pub struct RedisGeoConfig {
    /// `redis://[user:password@]host:port[/db]` or `rediss://…` (TLS); on
    /// a Cluster, any node.
    pub url: String,
    /// Whether `url` is a node of a Redis Cluster.
    pub cluster: bool,
    /// Prepended to every key (inside the hash tags); indexes with
    /// different prefixes share a server without meeting. No `{` or `}`.
    pub prefix: String,
    /// How long a driver stays visible after its last update (default
    /// 30 s, the seed's).
    pub default_ttl: Duration,
    /// How far an update's time may be ahead of the processing time
    /// (default 5 s), as [`IndexConfig::max_future_skew`](crate::IndexConfig::max_future_skew).
    pub max_future_skew: Duration,
    /// Grid cells per tile side, a power of two in 1..=1024 (default 32:
    /// ≈ 20 km of latitude, so a 5 km search reads at most 4 tiles). Every
    /// process sharing an index must use the same value.
    pub tile_cells: u32,
    /// Directory buckets, a power of two in 1..=65536 (default 64: a
    /// batch costs a script call per bucket it touches on a Cluster, and
    /// 1M drivers make 16k-field hashes). Every process sharing an index
    /// must use the same value.
    pub dir_buckets: u32,
    /// How long a tile keeps the tombstone of a driver that left it, on a
    /// Cluster (default 60 s): a write to the tile delayed longer than this
    /// behind a later move could bring the driver back there until its TTL.
    pub tombstone_keep: Duration,
    /// An `Instant` and the system time it stands for; `None`: now. Tests
    /// pin it for exact millisecond arithmetic.
    pub clock: Option<(Instant, SystemTime)>,
    /// The longest a connection may take to open (default 1 s).
    pub connect_timeout: Duration,
    /// The longest one round trip may take (default 1 s).
    pub io_timeout: Duration,
    /// Extra root certificates (PEM) for `rediss://`.
    pub tls_root_cert: Option<Vec<u8>>,
}

impl RedisGeoConfig {
    /// The defaults, on the server at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        RedisGeoConfig {
            url: url.into(),
            cluster: false,
            prefix: "dk:drivers".into(),
            default_ttl: Duration::from_secs(30),
            max_future_skew: Duration::from_secs(5),
            tile_cells: 32,
            dir_buckets: 64,
            tombstone_keep: Duration::from_secs(60),
            clock: None,
            connect_timeout: Duration::from_secs(1),
            io_timeout: Duration::from_secs(1),
            tls_root_cert: None,
        }
    }
}
