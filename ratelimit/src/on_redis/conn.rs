//! Connections to one Redis server: a small pool of synchronous
//! connections with connect and I/O timeouts, reconnecting after any error.

use std::time::Duration;

use parking_lot::Mutex;

use crate::{FailMode, RateLimitError};

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
            on_unavailable: FailMode::Closed,
        }
    }
}

/// The pool.
pub(crate) struct Pool {
    client: redis::Client,
    connect_timeout: Duration,
    io_timeout: Duration,
    max_idle: usize,
    idle: Mutex<Vec<redis::Connection>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("server", &self.client.get_connection_info().addr())
            .field("idle", &self.idle.lock().len())
            .finish_non_exhaustive()
    }
}

/// A Redis error as the crate's error.
pub(crate) fn unavailable(e: &redis::RedisError) -> RateLimitError {
    RateLimitError::Unavailable {
        backend: "redis",
        reason: e.to_string(),
    }
}

impl Pool {
    pub(crate) fn new(cfg: &RedisConfig) -> Result<Self, RateLimitError> {
        if cfg.connect_timeout.is_zero() || cfg.io_timeout.is_zero() {
            return Err(RateLimitError::InvalidConfig {
                name: if cfg.connect_timeout.is_zero() {
                    "connect_timeout"
                } else {
                    "io_timeout"
                },
                value: 0,
                reason: "a zero timeout would block for ever; give a positive duration",
            });
        }
        let client =
            redis::Client::open(cfg.url.as_str()).map_err(|e| RateLimitError::InvalidConfig {
                name: "url",
                value: 0,
                reason: invalid_url_reason(&e),
            })?;
        Ok(Self {
            client,
            connect_timeout: cfg.connect_timeout,
            io_timeout: cfg.io_timeout,
            max_idle: cfg.max_idle,
            idle: Mutex::new(Vec::new()),
        })
    }

    fn connect(&self) -> Result<redis::Connection, RateLimitError> {
        let con = self
            .client
            .get_connection_with_timeout(self.connect_timeout)
            .map_err(|e| unavailable(&e))?;
        con.set_read_timeout(Some(self.io_timeout))
            .and_then(|()| con.set_write_timeout(Some(self.io_timeout)))
            .map_err(|e| unavailable(&e))?;
        Ok(con)
    }

    /// Runs `f` on a pooled connection; a connection that saw an error is
    /// dropped (the next call opens a new one).
    pub(crate) fn run<T>(
        &self,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, RateLimitError> {
        let pooled = self.idle.lock().pop();
        let mut con = match pooled {
            Some(c) => c,
            None => self.connect()?,
        };
        match f(&mut con) {
            Ok(v) => {
                let mut idle = self.idle.lock();
                if idle.len() < self.max_idle {
                    idle.push(con);
                }
                Ok(v)
            }
            Err(e) => Err(unavailable(&e)),
        }
    }
}

fn invalid_url_reason(e: &redis::RedisError) -> &'static str {
    match e.kind() {
        redis::ErrorKind::InvalidClientConfig => {
            "not a redis:// or rediss:// URL the client accepts"
        }
        _ => "the URL could not be used to configure a client",
    }
}
