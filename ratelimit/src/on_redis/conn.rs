//! Connections to one Redis server: a small pool of synchronous
//! connections with connect and I/O timeouts, reconnecting after any error.

use std::time::Duration;

use crate::{BackendErrorKind, FailMode, RateLimitError};

/// How to reach Redis and how long to wait for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]` (or `rediss://` for TLS).
    pub url: String,
    /// The longest a new connection may take to open.
    pub connect_timeout: Duration,
    /// The longest one command may take (read and write), after which the
    /// call fails with [`RateLimitError::Unavailable`] instead of blocking.
    pub io_timeout: Duration,
    /// Prefix of every key this limiter writes (default `"dk:rl"`).
    pub key_prefix: String,
    /// Most idle connections kept for reuse.
    pub max_idle: usize,
    /// Extra root certificates (PEM) to trust for `rediss://` besides the
    /// system's (a private CA, a test's self-signed one). With `None`, the
    /// system's trust store alone.
    pub tls_root_cert: Option<Vec<u8>>,
    /// Whether `url` is one node of a Redis Cluster (commands are routed to
    /// the node of their key's hash slot; a policy's keys share one slot).
    pub cluster: bool,
    /// What a check answers when Redis cannot (refused, timed out, `BUSY`,
    /// `READONLY`): [`FailMode::Closed`] (the default) returns
    /// [`RateLimitError::Unavailable`], for the caller to map to `503`;
    /// [`FailMode::Open`] allows, with [`Decision::is_fallback`](crate::Decision::is_fallback)
    /// set and nothing charged.
    pub on_unavailable: FailMode,
}

impl RedisConfig {
    /// The defaults for `url`: 250 ms to connect, 100 ms per command,
    /// prefix `dk:rl`, 16 idle connections, fail closed.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            connect_timeout: Duration::from_millis(250),
            io_timeout: Duration::from_millis(100),
            key_prefix: "dk:rl".to_string(),
            max_idle: 16,
            tls_root_cert: None,
            cluster: false,
            on_unavailable: FailMode::Closed,
        }
    }
}

/// The pool (`dispatchkit-redis-conn`, shared with the cache's Redis tier).
pub(crate) use dispatchkit_redis_conn::Pool;

/// A connection failure as the crate's error.
pub(crate) fn unavailable(f: dispatchkit_redis_conn::Failure) -> RateLimitError {
    use dispatchkit_redis_conn::FailureKind as F;
    let kind = match f.kind {
        F::Refused => BackendErrorKind::Refused,
        F::Timeout => BackendErrorKind::Timeout,
        F::Auth => BackendErrorKind::Auth,
        F::Tls => BackendErrorKind::Tls,
        F::Busy => BackendErrorKind::Busy,
        F::ReadOnly => BackendErrorKind::ReadOnly,
        F::Reply => BackendErrorKind::Reply,
        _ => BackendErrorKind::Other,
    };
    RateLimitError::Unavailable {
        backend: "redis",
        kind,
        reason: f.reason,
    }
}

/// The pool of `cfg`.
pub(crate) fn pool(cfg: &RedisConfig) -> Result<Pool, RateLimitError> {
    Pool::new(&dispatchkit_redis_conn::PoolConfig {
        url: cfg.url.clone(),
        connect_timeout: cfg.connect_timeout,
        io_timeout: cfg.io_timeout,
        tls_root_cert: cfg.tls_root_cert.clone(),
        max_idle: cfg.max_idle,
        cluster: cfg.cluster,
    })
    .map_err(|e| RateLimitError::InvalidConfig {
        name: e.name,
        value: 0,
        reason: e.reason,
    })
}

/// Runs `f` on a pooled connection, failures as the crate's error.
pub(crate) fn run<T>(
    pool: &Pool,
    f: impl FnOnce(&mut dyn redis::ConnectionLike) -> redis::RedisResult<T>,
) -> Result<T, RateLimitError> {
    pool.run(f).map_err(unavailable)
}
