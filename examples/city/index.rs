//! The driver index the city runs on: the in-process `GeoIndex`
//! (`--backend memory`, the default) or `RedisGeoIndex` (`--backend
//! redis`: on `--redis-url`, or on a throwaway `redis-server` the example
//! starts on a free loopback port and stops when it ends). Matchers and
//! claims go through `DriverIndex`, so the simulation is the same code on
//! both.

use std::time::{Duration, Instant, SystemTime};

use dispatchkit::geo::{
    BatchReport, DriverIndex, DriverUpdate, Filter, GeoIndex, IndexConfig, LonLat, RedisGeoConfig,
    RedisGeoIndex,
};
use dispatchkit_test_support::redis_server::RedisServer;

use crate::args::{Backend, Options};

pub enum Index {
    Memory(GeoIndex),
    Redis {
        index: Box<RedisGeoIndex>,
        /// The server the example started (stopped on drop), if any.
        _server: Option<RedisServer>,
    },
}

impl Index {
    /// A fresh index, its clock starting at `t0`; the driver TTL is 30 s.
    pub fn open(opts: &Options, t0: Instant) -> Result<Self, Box<dyn std::error::Error>> {
        let ttl = Duration::from_secs(30);
        match &opts.backend {
            Backend::Memory => Ok(Index::Memory(GeoIndex::with_config(IndexConfig {
                default_ttl: ttl,
                epoch: Some(t0),
                ..IndexConfig::default()
            })?)),
            Backend::Redis { url } => {
                let (url, server) = match url {
                    Some(u) => (u.clone(), None),
                    None => {
                        let s = RedisServer::start()
                            .ok_or("--backend redis needs redis-server on PATH (or --redis-url)")?;
                        (s.url(), Some(s))
                    }
                };
                let mut cfg = RedisGeoConfig::new(url);
                cfg.prefix = format!("city:{}", opts.seed);
                cfg.default_ttl = ttl;
                cfg.clock = Some((t0, SystemTime::now()));
                cfg.io_timeout = Duration::from_secs(30);
                let index = RedisGeoIndex::new(cfg)?;
                // A run starts from an empty index (a URL may hold an
                // earlier run's drivers).
                index.clear()?;
                Ok(Index::Redis {
                    index: Box::new(index),
                    _server: server,
                })
            }
        }
    }

    /// The index as matchers and claims see it.
    pub fn get(&self) -> &dyn DriverIndex {
        match self {
            Index::Memory(i) => i,
            Index::Redis { index, .. } => &**index,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Index::Memory(_) => "in-process GeoIndex",
            Index::Redis { .. } => "RedisGeoIndex (one redis-server)",
        }
    }

    pub fn upsert_batch_at(
        &self,
        batch: &[DriverUpdate],
        at: Instant,
    ) -> Result<BatchReport, dispatchkit::geo::GeoError> {
        self.get().upsert_batch_at(batch, at)
    }

    /// Calls `f` with the position of every live driver that passes
    /// `filter` at `now`; returns how many drivers are live.
    pub fn for_each_matching_at(
        &self,
        now: Instant,
        filter: &Filter,
        mut f: impl FnMut(LonLat),
    ) -> Result<usize, dispatchkit::geo::GeoError> {
        match self {
            Index::Memory(i) => {
                i.for_each_matching_at(now, filter, |_, pos, _| f(pos));
                Ok(i.live_len_at(now))
            }
            Index::Redis { index, .. } => {
                let snap = index.snapshot_at(now)?;
                for d in &snap.drivers {
                    if filter.matches(&d.attrs) {
                        f(d.pos);
                    }
                }
                Ok(snap.drivers.len())
            }
        }
    }
}
