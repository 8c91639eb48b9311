//! Connections to one Redis server for dispatchkit's Redis backends (the
//! limiters, the cache's shared tier): a small pool of synchronous
//! connections with connect and I/O timeouts that reconnects after any
//! error, TLS (`rediss://`, rustls) with the system's roots or an extra CA,
//! ACL user and password from the URL, and failures sorted into
//! [`FailureKind`]s. Each backend crate maps them into its own error type.
#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]

use std::time::Duration;

use parking_lot::Mutex;

pub mod script;

/// Where a Redis server is and how long to wait for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// `redis://[user:password@]host:port[/db]` or `rediss://…` (TLS).
    pub url: String,
    /// The longest a new connection may take to open.
    pub connect_timeout: Duration,
    /// The longest one command may take (read and write).
    pub io_timeout: Duration,
    /// Extra root certificates (PEM) to trust for `rediss://`, besides the
    /// system's.
    pub tls_root_cert: Option<Vec<u8>>,
    /// Most idle connections kept for reuse.
    pub max_idle: usize,
    /// Whether `url` is one node of a Redis Cluster (the client discovers
    /// the others and routes each command to the node of its key's slot,
    /// following `MOVED` / `ASK`).
    pub cluster: bool,
}

/// Why a configuration was refused: the setting and the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigError {
    /// `"url"`, `"tls_root_cert"`, `"connect_timeout"` or `"io_timeout"`.
    pub name: &'static str,
    /// Why.
    pub reason: &'static str,
}

/// Why Redis could not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureKind {
    /// Nothing listens, or the connection was closed or reset.
    Refused,
    /// No answer within the configured timeout.
    Timeout,
    /// The server refused the credentials (`WRONGPASS`, `NOAUTH`, `NOPERM`).
    Auth,
    /// The TLS handshake failed (an untrusted or invalid certificate).
    Tls,
    /// The server is busy running a script or loading (`BUSY`, `LOADING`).
    Busy,
    /// The server is a read-only replica (`READONLY`).
    ReadOnly,
    /// A reply the client could not make sense of.
    Reply,
    /// Anything else.
    Other,
}

/// A failure: its kind and what the client reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What kind.
    pub kind: FailureKind,
    /// The client's message.
    pub reason: String,
}

impl Failure {
    /// The failure of a Redis error.
    pub fn of(e: &redis::RedisError) -> Self {
        Self {
            kind: kind_of(e),
            reason: e.to_string(),
        }
    }
}

fn kind_of(e: &redis::RedisError) -> FailureKind {
    use redis::{ErrorKind, ServerErrorKind};
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if s.downcast_ref::<rustls::Error>().is_some() {
            return FailureKind::Tls;
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
        {
            return FailureKind::Tls;
        }
        source = s.source();
    }
    let text = e.to_string();
    match (e.kind(), e.code()) {
        (ErrorKind::AuthenticationFailed, _) | (_, Some("WRONGPASS" | "NOAUTH" | "NOPERM")) => {
            FailureKind::Auth
        }
        // A long command from a client that has not authenticated is cut
        // off before it could be refused NOAUTH.
        _ if text.contains("unauthenticated") => FailureKind::Auth,
        (ErrorKind::Server(ServerErrorKind::ReadOnly), _) | (_, Some("READONLY")) => {
            FailureKind::ReadOnly
        }
        (ErrorKind::Server(ServerErrorKind::BusyLoading), _) | (_, Some("BUSY" | "LOADING")) => {
            FailureKind::Busy
        }
        (ErrorKind::Parse | ErrorKind::UnexpectedReturnType, _) => FailureKind::Reply,
        _ if e.is_timeout() => FailureKind::Timeout,
        _ if e.is_connection_refusal() || e.is_connection_dropped() => FailureKind::Refused,
        _ if text.contains("certificate") => FailureKind::Tls,
        _ => FailureKind::Other,
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

/// A pool of connections to one server, or to one Redis Cluster.
pub struct Pool {
    client: redis::Client,
    cluster: Option<redis::cluster::ClusterClient>,
    connect_timeout: Duration,
    io_timeout: Duration,
    max_idle: usize,
    idle: Mutex<Vec<Conn>>,
}

/// A pooled connection.
enum Conn {
    Single(redis::Connection),
    Cluster(Box<redis::cluster::ClusterConnection>),
}

impl Conn {
    fn as_dyn(&mut self) -> &mut dyn redis::ConnectionLike {
        match self {
            Conn::Single(c) => c,
            Conn::Cluster(c) => &mut **c,
        }
    }
}

/// A pooled connection lent by [`Pool::run_session`]: single commands, or
/// pipelines that also work on a Cluster.
pub struct Session<'a>(&'a mut Conn);

impl std::fmt::Debug for Session<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.0 {
            Conn::Single(_) => "single",
            Conn::Cluster(_) => "cluster",
        };
        f.debug_tuple("Session").field(&kind).finish()
    }
}

impl Session<'_> {
    /// The connection, for single commands (routed by key on a Cluster).
    pub fn con(&mut self) -> &mut dyn redis::ConnectionLike {
        self.0.as_dyn()
    }

    /// Runs `cmds` as a pipeline: one round trip on a single server; on a
    /// Cluster, the client splits it by the node of each command's first
    /// key (one pipeline per node) and follows `MOVED` / `ASK`. Replies in
    /// the commands' order.
    ///
    /// # Errors
    /// The first error of the pipeline.
    pub fn pipeline(&mut self, cmds: &[redis::Cmd]) -> redis::RedisResult<Vec<redis::Value>> {
        match self.0 {
            Conn::Single(c) => {
                let mut p = redis::pipe();
                for cmd in cmds {
                    p.add_command(cmd.clone());
                }
                p.query(c)
            }
            Conn::Cluster(c) => {
                let mut p = redis::cluster::cluster_pipe();
                for cmd in cmds {
                    p.add_command(cmd.clone());
                }
                p.query(c)
            }
        }
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("server", &self.client.get_connection_info().addr())
            .field("idle", &self.idle.lock().len())
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// A pool for `cfg`; opens no connection yet.
    ///
    /// # Errors
    /// A [`ConfigError`] for a zero timeout, a URL the client rejects, or a
    /// root certificate that is not PEM.
    pub fn new(cfg: &PoolConfig) -> Result<Self, ConfigError> {
        let bad = |name, reason| ConfigError { name, reason };
        if cfg.connect_timeout.is_zero() {
            return Err(bad(
                "connect_timeout",
                "a zero timeout would block for ever",
            ));
        }
        if cfg.io_timeout.is_zero() {
            return Err(bad("io_timeout", "a zero timeout would block for ever"));
        }
        if cfg.url.starts_with("rediss://") || cfg.tls_root_cert.is_some() {
            install_crypto();
        }
        let client = match &cfg.tls_root_cert {
            None => redis::Client::open(cfg.url.as_str())
                .map_err(|_| bad("url", "not a redis:// or rediss:// URL the client accepts"))?,
            Some(pem) => {
                use rustls::pki_types::CertificateDer;
                use rustls::pki_types::pem::PemObject;
                let certs = CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>();
                if !certs.is_ok_and(|c| !c.is_empty()) {
                    return Err(bad("tls_root_cert", "not one or more PEM certificates"));
                }
                redis::Client::build_with_tls(
                    cfg.url.as_str(),
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(pem.clone()),
                    },
                )
                .map_err(|_| bad("url", "not a rediss:// URL the client accepts"))?
            }
        };
        let cluster = if cfg.cluster {
            let mut b = redis::cluster::ClusterClientBuilder::new(vec![cfg.url.as_str()])
                .connection_timeout(cfg.connect_timeout)
                .response_timeout(cfg.io_timeout)
                .retries(2);
            if let Some(pem) = &cfg.tls_root_cert {
                b = b.certs(redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone()),
                });
            }
            Some(
                b.build()
                    .map_err(|_| bad("url", "not a cluster seed URL the client accepts"))?,
            )
        } else {
            None
        };
        Ok(Self {
            client,
            cluster,
            connect_timeout: cfg.connect_timeout,
            io_timeout: cfg.io_timeout,
            max_idle: cfg.max_idle,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Whether the pool talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.cluster.is_some()
    }

    /// A new connection to the configured node with the pool's timeouts
    /// (for a subscriber that keeps its own; on a Cluster, a `PUBLISH`
    /// reaches the subscribers of every node).
    ///
    /// # Errors
    /// The [`Failure`] of connecting.
    pub fn connect(&self) -> Result<redis::Connection, Failure> {
        let con = self
            .client
            .get_connection_with_timeout(self.connect_timeout)
            .map_err(|e| Failure::of(&e))?;
        con.set_read_timeout(Some(self.io_timeout))
            .and_then(|()| con.set_write_timeout(Some(self.io_timeout)))
            .map_err(|e| Failure::of(&e))?;
        Ok(con)
    }

    /// Runs `f` on a pooled connection; a connection that saw an error is
    /// dropped (the next call opens a new one).
    ///
    /// # Errors
    /// The [`Failure`] of connecting or of `f`.
    pub fn run<T>(
        &self,
        f: impl FnOnce(&mut dyn redis::ConnectionLike) -> redis::RedisResult<T>,
    ) -> Result<T, Failure> {
        self.run_session(|s| f(s.con()))
    }

    /// [`Pool::run`] with a [`Session`], for pipelines that must also work
    /// on a Cluster.
    ///
    /// # Errors
    /// The [`Failure`] of connecting or of `f`.
    pub fn run_session<T>(
        &self,
        f: impl FnOnce(&mut Session<'_>) -> redis::RedisResult<T>,
    ) -> Result<T, Failure> {
        let pooled = self.idle.lock().pop();
        let mut con = match (pooled, &self.cluster) {
            (Some(c), _) => c,
            (None, None) => Conn::Single(self.connect()?),
            (None, Some(cc)) => {
                Conn::Cluster(Box::new(cc.get_connection().map_err(|e| Failure::of(&e))?))
            }
        };
        match f(&mut Session(&mut con)) {
            Ok(v) => {
                let mut idle = self.idle.lock();
                if idle.len() < self.max_idle {
                    idle.push(con);
                }
                Ok(v)
            }
            Err(e) => Err(Failure::of(&e)),
        }
    }
}

/// An async connection to one server on tokio (feature `tokio`): one
/// multiplexed connection shared by every task (requests pipeline on it),
/// opened on first use with the pool's timeouts and opened again after an
/// error.
#[cfg(feature = "tokio")]
pub struct AsyncPool {
    client: redis::Client,
    config: redis::AsyncConnectionConfig,
    con: Mutex<Option<redis::aio::MultiplexedConnection>>,
}

#[cfg(feature = "tokio")]
impl std::fmt::Debug for AsyncPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncPool")
            .field("server", &self.client.get_connection_info().addr())
            .field("connected", &self.con.lock().is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "tokio")]
impl AsyncPool {
    /// The async twin of `pool` (same server, TLS and timeouts).
    pub fn of(pool: &Pool) -> Self {
        Self {
            client: pool.client.clone(),
            config: redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Some(pool.connect_timeout))
                .set_response_timeout(Some(pool.io_timeout)),
            con: Mutex::new(None),
        }
    }

    async fn connection(&self) -> Result<redis::aio::MultiplexedConnection, Failure> {
        if let Some(c) = self.con.lock().as_ref() {
            return Ok(c.clone());
        }
        let c = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await
            .map_err(|e| Failure::of(&e))?;
        *self.con.lock() = Some(c.clone());
        Ok(c)
    }

    /// Runs `f` on the shared connection; after an error the connection is
    /// dropped (the next call opens a new one).
    ///
    /// # Errors
    /// The [`Failure`] of connecting or of `f`.
    pub async fn run<T, F, Fut>(&self, f: F) -> Result<T, Failure>
    where
        F: FnOnce(redis::aio::MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let con = self.connection().await?;
        match f(con).await {
            Ok(v) => Ok(v),
            Err(e) => {
                *self.con.lock() = None;
                Err(Failure::of(&e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(url: &str) -> PoolConfig {
        PoolConfig {
            url: url.into(),
            connect_timeout: Duration::from_millis(100),
            io_timeout: Duration::from_millis(100),
            tls_root_cert: None,
            max_idle: 4,
            cluster: false,
        }
    }

    #[test]
    fn bad_configurations_name_the_setting() {
        let zero = PoolConfig {
            io_timeout: Duration::ZERO,
            ..cfg("redis://127.0.0.1:1/")
        };
        assert_eq!(Pool::new(&zero).unwrap_err().name, "io_timeout");
        assert_eq!(
            Pool::new(&cfg("http://example.com/")).unwrap_err().name,
            "url"
        );
        let pem = PoolConfig {
            tls_root_cert: Some(b"not a certificate".to_vec()),
            ..cfg("rediss://localhost:1/")
        };
        assert_eq!(Pool::new(&pem).unwrap_err().name, "tls_root_cert");
    }

    #[test]
    fn nothing_listening_is_refused_not_a_hang() {
        // Port 1 on loopback: nothing listens (and nothing may bind it).
        let pool = Pool::new(&cfg("redis://127.0.0.1:1/")).unwrap();
        let t = std::time::Instant::now();
        let f = pool
            .run(|c| redis::cmd("PING").query::<String>(c))
            .unwrap_err();
        assert_eq!(f.kind, FailureKind::Refused, "{}", f.reason);
        assert!(t.elapsed() < Duration::from_secs(2));
    }
}
