//! Connections to one Redis server: a small pool of synchronous
//! connections with connect and I/O timeouts, reconnecting after any error.

use std::time::Duration;

use parking_lot::Mutex;

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

/// What kind of failure a Redis error is.
fn kind_of(e: &redis::RedisError) -> BackendErrorKind {
    use redis::{ErrorKind, ServerErrorKind};
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if s.downcast_ref::<rustls::Error>().is_some() {
            return BackendErrorKind::Tls;
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
        {
            return BackendErrorKind::Tls;
        }
        source = s.source();
    }
    let text = e.to_string();
    match (e.kind(), e.code()) {
        (ErrorKind::AuthenticationFailed, _) | (_, Some("WRONGPASS" | "NOAUTH" | "NOPERM")) => {
            BackendErrorKind::Auth
        }
        // A long command from a client that has not authenticated is cut
        // off before it could be refused NOAUTH.
        _ if text.contains("unauthenticated") => BackendErrorKind::Auth,
        (ErrorKind::Server(ServerErrorKind::ReadOnly), _) | (_, Some("READONLY")) => {
            BackendErrorKind::ReadOnly
        }
        (ErrorKind::Server(ServerErrorKind::BusyLoading), _) | (_, Some("BUSY" | "LOADING")) => {
            BackendErrorKind::Busy
        }
        (ErrorKind::Parse | ErrorKind::UnexpectedReturnType, _) => BackendErrorKind::Reply,
        _ if e.is_timeout() => BackendErrorKind::Timeout,
        _ if e.is_connection_refusal() || e.is_connection_dropped() => BackendErrorKind::Refused,
        _ if text.contains("certificate") => BackendErrorKind::Tls,
        _ => BackendErrorKind::Other,
    }
}

/// A Redis error as the crate's error.
pub(crate) fn unavailable(e: &redis::RedisError) -> RateLimitError {
    RateLimitError::Unavailable {
        backend: "redis",
        kind: kind_of(e),
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
        if cfg.url.starts_with("rediss://") {
            install_crypto();
        }
        if let Some(pem) = &cfg.tls_root_cert {
            use rustls::pki_types::CertificateDer;
            use rustls::pki_types::pem::PemObject;
            let certs = CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>();
            if !certs.is_ok_and(|c| !c.is_empty()) {
                return Err(RateLimitError::InvalidConfig {
                    name: "tls_root_cert",
                    value: pem.len() as u64,
                    reason: "not one or more PEM certificates",
                });
            }
        }
        let client = match &cfg.tls_root_cert {
            None => redis::Client::open(cfg.url.as_str()),
            Some(pem) => redis::Client::build_with_tls(
                cfg.url.as_str(),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone()),
                },
            ),
        }
        .map_err(|e| RateLimitError::InvalidConfig {
            name: if cfg.tls_root_cert.is_some() {
                "tls_root_cert"
            } else {
                "url"
            },
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

/// rustls's process-wide crypto provider (ring), installed once; a
/// provider the application installed first is kept.
fn install_crypto() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    #[expect(
        deprecated,
        reason = "ring builds with cc alone (aws-lc-rs needs more of a toolchain); the post-quantum key exchange it lacks is not what a Redis link inside a VPC is defended by today"
    )]
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

fn invalid_url_reason(e: &redis::RedisError) -> &'static str {
    match e.kind() {
        redis::ErrorKind::InvalidClientConfig => {
            "not a redis:// or rediss:// URL the client accepts"
        }
        _ => "the URL could not be used to configure a client",
    }
}
