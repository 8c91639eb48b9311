//! Where a Redis tier lives ([`RedisTierConfig`]) and what it counted
//! ([`RedisTierStats`]).

use std::time::Duration;

/// Where the shared tier lives and how long to wait for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisTierConfig {
    /// `redis://[user:password@]host:port[/db]`.
    pub url: String,
    /// Prefix of every key and of the invalidation channel (default
    /// `"dk:cache"`); tiers with different data use different prefixes.
    pub key_prefix: String,
    /// How long an entry stays in the L2 (Redis `SET … PX`; default 10 min).
    pub l2_ttl: Duration,
    /// The longest a new connection may take (default 250 ms).
    pub connect_timeout: Duration,
    /// The longest one command may take (default 100 ms).
    pub io_timeout: Duration,
    /// Extra root certificates (PEM) to trust for `rediss://` besides the
    /// system's.
    pub tls_root_cert: Option<Vec<u8>>,
    /// Whether `url` is one node of a Redis Cluster.
    pub cluster: bool,
}

impl RedisTierConfig {
    /// The defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            key_prefix: "dk:cache".into(),
            l2_ttl: Duration::from_secs(600),
            connect_timeout: Duration::from_millis(250),
            io_timeout: Duration::from_millis(100),
            tls_root_cert: None,
            cluster: false,
        }
    }
}

/// Counters of a [`RedisTier`](super::RedisTier) (all its instances).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisTierStats {
    /// L1 misses answered by Redis.
    pub l2_hits: u64,
    /// L1 misses Redis did not hold.
    pub l2_misses: u64,
    /// Redis calls that failed (reads fell through to the store; writes
    /// could not reach the L2 or the other processes).
    pub l2_errors: u64,
    /// Store reads.
    pub store_gets: u64,
    /// Invalidations received from other processes.
    pub invalidations_received: u64,
    /// Times the subscriber (re)subscribed and emptied the L1s.
    pub resubscriptions: u64,
}
