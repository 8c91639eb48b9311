//! Whole-index operations on Redis: snapshots in and out (the seed's replay
//! after a Redis failure, either direction), the expiry sweep, and clearing
//! the index's keys.

use std::time::{Duration, Instant};

use dispatchkit_redis_conn::script::{Call, eval_pipelined};
use redis::Value;

use super::reply::{Rec, array, bytes, int};
use super::{RedisGeoConfig, RedisGeoIndex};
use crate::snapshot::snapshot_updates;
use crate::{DriverId, GeoError, Snapshot, SnapshotDriver};

/// Buckets or tiles per pipeline in whole-index passes.
const PASS: usize = 256;

/// Most expired records one sweep call deletes per bucket or tile.
const SWEEP_LIMIT: u64 = 100_000;

/// What [`RedisGeoIndex::sweep_at`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Expired directory records.
    pub directory: u64,
    /// Expired tile records and old tombstones (on a Cluster; a single
    /// server keeps records in the directory only).
    pub tiles: u64,
}

impl RedisGeoIndex {
    fn buckets(&self) -> std::ops::Range<u64> {
        0..self.bucket_mask + 1
    }

    fn registered_tiles(&self) -> Result<Vec<u32>, GeoError> {
        let key = self.registry_key();
        self.pool
            .run(|con| redis::cmd("SMEMBERS").arg(&key).query(con))
            .map_err(|f| Self::unavailable("tile registry", f))
    }

    /// Every driver live at `now`, sorted by id: a [`Snapshot`] that
    /// [`GeoIndex::restore_at`](crate::GeoIndex::restore_at) (or
    /// [`RedisGeoIndex::restore_at`]) rebuilds. Reads every directory
    /// bucket, 256 per round trip.
    ///
    /// # Errors
    /// [`GeoError::Unavailable`] when a bucket cannot be read.
    pub fn snapshot_at(&self, now: Instant) -> Result<Snapshot, GeoError> {
        let now_ms = self.ms(now);
        let mut drivers = Vec::new();
        let buckets: Vec<u64> = self.buckets().collect();
        for chunk in buckets.chunks(PASS) {
            let keys: Vec<Vec<u8>> = chunk
                .iter()
                .map(|&b| self.dir_keys(b).swap_remove(0))
                .collect();
            let replies: Vec<Value> = self
                .pool
                .run_session(|s| {
                    let cmds: Vec<redis::Cmd> = keys
                        .iter()
                        .map(|k| {
                            let mut c = redis::cmd("HGETALL");
                            c.arg(k.as_slice());
                            c
                        })
                        .collect();
                    s.pipeline(&cmds)
                })
                .map_err(|f| Self::unavailable("directory", f))?;
            for reply in replies {
                let fields = match reply {
                    Value::Map(m) => m.into_iter().flat_map(|(k, v)| [k, v]).collect(),
                    other => array(other)?,
                };
                for pair in fields.chunks_exact(2) {
                    let name = bytes(&pair[0])?;
                    if name == b"v" {
                        continue;
                    }
                    let Some(id) = std::str::from_utf8(name)
                        .ok()
                        .and_then(|s| s.parse::<u64>().ok())
                        .and_then(|n| DriverId::new(n).ok())
                    else {
                        continue;
                    };
                    let rec = Rec::parse(bytes(&pair[1])?)?;
                    if rec.live(now_ms) {
                        drivers.push(SnapshotDriver {
                            id,
                            pos: rec.pos(),
                            attrs: crate::Attrs::unpack(rec.attrs),
                            age_ms: i64::try_from(i128::from(now_ms) - i128::from(rec.upd))
                                .unwrap_or(i64::MAX),
                            ttl_ms: rec.custom.then_some(rec.ttl),
                        });
                    }
                }
            }
        }
        drivers.sort_unstable_by_key(|d| d.id);
        Ok(Snapshot {
            default_ttl_ms: self.default_ttl_ms,
            drivers,
        })
    }

    /// Builds the index described by `config` from a snapshot taken at an
    /// earlier time, as of `now`: the index's keys are cleared, then every
    /// driver is written with its snapshot age (`updated = now − age`) and
    /// TTL, 4,096 per batch. `config.default_ttl` is replaced by the
    /// snapshot's. The snapshot is checked whole first, as
    /// [`GeoIndex::restore_at`](crate::GeoIndex::restore_at) checks it: a
    /// malformed one changes nothing.
    ///
    /// # Errors
    /// As [`GeoIndex::restore_at`](crate::GeoIndex::restore_at), and
    /// [`GeoError::Unavailable`] when Redis fails part-way (the index then
    /// holds part of the snapshot: restore again).
    pub fn restore_at(
        snapshot: &Snapshot,
        config: RedisGeoConfig,
        now: Instant,
    ) -> Result<RedisGeoIndex, GeoError> {
        let config = RedisGeoConfig {
            default_ttl: Duration::from_millis(snapshot.default_ttl_ms),
            ..config
        };
        let updates = snapshot_updates(snapshot, config.max_future_skew, now)?;
        let index = RedisGeoIndex::new(config)?;
        index.clear()?;
        for chunk in updates.chunks(4096) {
            let report = index.apply(chunk, now)?;
            if let Some((_, e)) = report.rejected.into_iter().next() {
                return Err(e);
            }
        }
        Ok(index)
    }

    /// Deletes every key of the index (its directory, tiles and tile
    /// registry). Clear only an index nobody writes to meanwhile.
    ///
    /// # Errors
    /// [`GeoError::Unavailable`] when Redis fails part-way.
    pub fn clear(&self) -> Result<(), GeoError> {
        let mut keys: Vec<Vec<u8>> = self.buckets().flat_map(|b| self.dir_keys(b)).collect();
        keys.extend(
            self.registered_tiles()?
                .into_iter()
                .flat_map(|t| self.tile_keys(t)),
        );
        keys.push(self.registry_key().into_bytes());
        for chunk in keys.chunks(PASS * 4) {
            self.pool
                .run_session(|s| {
                    let cmds: Vec<redis::Cmd> = chunk
                        .iter()
                        .map(|k| {
                            let mut c = redis::cmd("DEL");
                            c.arg(k.as_slice());
                            c
                        })
                        .collect();
                    s.pipeline(&cmds).map(drop)
                })
                .map_err(|f| Self::unavailable("clear", f))?;
        }
        Ok(())
    }

    /// Deletes the records that expired by `now` (searches already skip
    /// them; this frees their memory), and tile tombstones older than
    /// [`RedisGeoConfig::tombstone_keep`]. Run it every few seconds from
    /// one process; each bucket and tile is one atomic script.
    ///
    /// # Errors
    /// [`GeoError::Unavailable`] when Redis fails part-way (what was swept
    /// stays swept).
    pub fn sweep_at(&self, now: Instant) -> Result<SweepReport, GeoError> {
        let now_ms = self.ms(now);
        let mut report = SweepReport::default();
        let buckets: Vec<u64> = self.buckets().collect();
        if self.is_single() {
            // The directory is the only copy: its sweep also drops the GEO
            // members; there are no tile records.
            for chunk in buckets.chunks(PASS) {
                let mut call = self.single_call(now_ms).arg("S").arg(SWEEP_LIMIT);
                for b in chunk {
                    call.push(b);
                }
                report.directory += self.counts(&[call], "directory")?;
            }
            return Ok(report);
        }
        for chunk in buckets.chunks(PASS) {
            let calls: Vec<Call> = chunk
                .iter()
                .map(|&b| self.dir_call(b, now_ms).arg("S").arg(SWEEP_LIMIT).arg("-"))
                .collect();
            report.directory += self.counts(&calls, "directory")?;
        }
        let tiles = self.registered_tiles()?;
        for chunk in tiles.chunks(PASS) {
            let calls: Vec<Call> = chunk
                .iter()
                .map(|&t| self.tile_call(t, now_ms).arg("S").arg(SWEEP_LIMIT).arg("-"))
                .collect();
            report.tiles += self.counts(&calls, "tiles")?;
        }
        Ok(report)
    }

    /// The sum of the one-number replies of sweep calls.
    fn counts(&self, calls: &[Call], part: &str) -> Result<u64, GeoError> {
        let replies = self
            .pool
            .run_session(|s| eval_pipelined(s, calls))
            .map_err(|f| Self::unavailable(part, f))?;
        let mut n = 0;
        for r in replies {
            for v in array(r)? {
                n += u64::try_from(int(&v)?).unwrap_or(0);
            }
        }
        Ok(n)
    }
}
