//! Writes on the Redis index: batches of upserts (one script on a single
//! server; directory scripts, then tile scripts on a Cluster), and the
//! one-driver directory ops (read, remove, claims) with their tile copies.

use std::collections::HashMap;
use std::time::Instant;

use dispatchkit_redis_conn::script::{Call, eval_pipelined_with};

use super::reply::{self, Rec, Reply};
use super::{DirOp, RedisGeoIndex};
use crate::index::ttl_ms;
use crate::{Attrs, BatchReport, DriverId, DriverUpdate, DriverView, GeoError};

impl RedisGeoIndex {
    /// One directory op on `id`'s bucket: its reply.
    pub(super) fn dir_op(&self, id: DriverId, op: DirOp, now: Instant) -> Result<Reply, GeoError> {
        let now_ms = self.ms(now);
        let bucket = self.bucket_of(id);
        let mut call = if self.is_single() {
            self.single_call(now_ms).arg("O").arg(bucket).arg(1)
        } else {
            self.dir_call(bucket, now_ms)
        };
        call.push(op.0);
        call.push(id);
        call.push_bytes(op.1);
        if self.is_single() {
            call.push("-");
        }
        let replies = self.eval_all(&[call], "directory")?;
        let mut reply = replies.into_iter().next();
        if self.is_single() {
            reply = reply
                .map(reply::array)
                .transpose()?
                .and_then(|g| g.into_iter().next());
        }
        let mut ops = Reply::ops(reply)?;
        ops.pop()
            .ok_or_else(|| reply::malformed("an empty directory reply"))
    }

    /// Validates one update into the packed operands of its `U` op:
    /// `<I8 at_ms, I4 lon_q, I4 lat_q, i4 attrs|-1, i8 ttl_ms|-1, I4 tile>`.
    pub(super) fn prep(&self, u: &DriverUpdate, now_ms: u64) -> Result<Vec<u8>, GeoError> {
        if let Some(a) = &u.attrs {
            a.validate()?;
        }
        let ttl = u.ttl.map(ttl_ms).transpose()?;
        let at_ms = self.ms(u.at);
        if at_ms > now_ms.saturating_add(self.max_skew_ms) {
            return Err(GeoError::FutureUpdate {
                ahead_ms: at_ms - now_ms,
                max_skew_ms: self.max_skew_ms,
            });
        }
        let (lon_q, lat_q) = u.pos.raw();
        let mut b = Vec::with_capacity(32);
        b.extend_from_slice(&at_ms.to_le_bytes());
        b.extend_from_slice(&lon_q.to_le_bytes());
        b.extend_from_slice(&lat_q.to_le_bytes());
        let attrs = u.attrs.map_or(-1, |a| a.pack() as i32);
        b.extend_from_slice(&attrs.to_le_bytes());
        // TTLs are at most 2^40 ms (ttl_ms checks).
        let ttl = ttl.map_or(-1, |t| t as i64);
        b.extend_from_slice(&ttl.to_le_bytes());
        b.extend_from_slice(&self.tile_of(u.pos).to_le_bytes());
        Ok(b)
    }

    /// Applies a batch; `rejected` as in-process. The scripts take each
    /// driver at most once per call, so a batch that names a driver more
    /// than once runs in rounds: round `r` holds the `r`-th update of each
    /// driver, in batch order, and round `r + 1` starts after round `r`
    /// answered (a driver's updates apply in batch order; the counts are
    /// per update, so they add up across rounds).
    pub(super) fn apply(
        &self,
        updates: &[DriverUpdate],
        now: Instant,
    ) -> Result<BatchReport, GeoError> {
        let mut seen: HashMap<DriverId, usize> = HashMap::with_capacity(updates.len());
        let rounds: Vec<usize> = updates
            .iter()
            .map(|u| {
                let n = seen.entry(u.id).or_insert(0);
                *n += 1;
                *n - 1
            })
            .collect();
        let last = rounds.iter().copied().max().unwrap_or(0);
        if last == 0 {
            return self.apply_round(updates, now);
        }
        let mut report = BatchReport::default();
        for r in 0..=last {
            let idx: Vec<usize> = (0..updates.len()).filter(|&i| rounds[i] == r).collect();
            let part: Vec<DriverUpdate> = idx.iter().map(|&i| updates[i]).collect();
            let sub = self.apply_round(&part, now)?;
            report.inserted += sub.inserted;
            report.moved += sub.moved;
            report.stale += sub.stale;
            report
                .rejected
                .extend(sub.rejected.into_iter().map(|(i, e)| (idx[i], e)));
        }
        report.rejected.sort_by_key(|(i, _)| *i);
        Ok(report)
    }

    /// Applies updates that name each driver at most once. On a single
    /// server one script call does it all; on a Cluster, two pipelined
    /// round trips: the directory buckets, then the tiles.
    fn apply_round(&self, updates: &[DriverUpdate], now: Instant) -> Result<BatchReport, GeoError> {
        let now_ms = self.ms(now);
        let mut report = BatchReport::default();
        let mut buckets: HashMap<u64, Vec<(usize, Vec<u8>)>> = HashMap::new();
        for (i, u) in updates.iter().enumerate() {
            match self.prep(u, now_ms) {
                Err(e) => report.rejected.push((i, e)),
                Ok(args) => buckets
                    .entry(self.bucket_of(u.id))
                    .or_default()
                    .push((i, args)),
            }
        }
        if buckets.is_empty() {
            return Ok(report);
        }
        let mut count = |code: i64| match code {
            0 => report.inserted += 1,
            1 => report.moved += 1,
            _ => report.stale += 1,
        };
        if self.is_single() {
            let mut call = self.single_call(now_ms).arg("B");
            let mut sizes = Vec::with_capacity(buckets.len());
            for (b, ops) in buckets {
                call.push(b);
                call.push(ops.len());
                sizes.push(ops.len());
                // One argument for the bucket: <len id, 32-byte operands,
                // len geohash> per update (see single.lua).
                let mut blob = Vec::with_capacity(ops.len() * 56);
                for (i, args) in ops {
                    let u = &updates[i];
                    let id = u.id.to_string();
                    let score = u.pos.redis_geohash().to_string();
                    debug_assert_eq!(args.len(), 32);
                    blob.push(id.len() as u8);
                    blob.extend_from_slice(id.as_bytes());
                    blob.extend_from_slice(&args);
                    blob.push(score.len() as u8);
                    blob.extend_from_slice(score.as_bytes());
                }
                call.push_bytes(blob);
            }
            let replies = self.eval_all(&[call], "directory")?;
            let groups = reply::array(
                replies
                    .into_iter()
                    .next()
                    .ok_or_else(|| reply::malformed("no reply"))?,
            )?;
            if groups.len() != sizes.len() {
                return Err(reply::malformed("an upsert reply of the wrong length"));
            }
            for (group, &n) in groups.into_iter().zip(&sizes) {
                let codes = reply::array(group)?;
                if codes.len() != n {
                    return Err(reply::malformed("an upsert reply of the wrong length"));
                }
                for c in &codes {
                    count(reply::int(c)?);
                }
            }
            return Ok(report);
        }
        let (calls, idx): (Vec<Call>, Vec<Vec<usize>>) = buckets
            .into_iter()
            .map(|(b, ops)| {
                let mut call = self.dir_call(b, now_ms);
                let mut idx = Vec::with_capacity(ops.len());
                for (i, args) in ops {
                    call.push("U");
                    call.push(updates[i].id);
                    call.push_bytes(args);
                    idx.push(i);
                }
                (call, idx)
            })
            .unzip();
        let replies = self.eval_all(&calls, "directory")?;
        let mut sync = TileSync::new(self, now_ms);
        for (reply, idx) in replies.into_iter().zip(&idx) {
            let ops = Reply::ops(Some(reply))?;
            if ops.len() != idx.len() {
                return Err(reply::malformed("a directory reply of the wrong length"));
            }
            for (op, &i) in ops.into_iter().zip(idx) {
                count(op.code);
                if op.code == 2 {
                    continue;
                }
                let id = updates[i].id;
                let rec = op.record()?;
                sync.put(id, &rec);
                if let Some(old) = op.old_tile()?
                    && old != rec.tile
                {
                    sync.remove(old, id, rec.ver);
                }
            }
        }
        sync.run()?;
        Ok(report)
    }

    /// The view of a live directory record.
    pub(super) fn view(&self, id: DriverId, rec: &Rec) -> DriverView {
        DriverView {
            id,
            pos: rec.pos(),
            attrs: Attrs::unpack(rec.attrs),
            updated_at: self.instant(rec.upd),
            expires_at: self.instant(rec.upd.saturating_add(rec.ttl)),
        }
    }

    /// A directory change on one driver (claim, CAS), then its tile copy.
    pub(super) fn change(&self, id: DriverId, op: DirOp, now: Instant) -> Result<bool, GeoError> {
        let r = self.dir_op(id, op, now)?;
        match r.code {
            -1 => Err(GeoError::UnknownDriver(id)),
            1 => {
                if !self.is_single() {
                    let mut sync = TileSync::new(self, self.ms(now));
                    sync.put(id, &r.record()?);
                    sync.run()?;
                }
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// The tile writes that follow directory changes, grouped per tile into
/// one script call each, all in one pipeline.
pub(super) struct TileSync<'a> {
    index: &'a RedisGeoIndex,
    now_ms: u64,
    /// Per tile, its ops: put (the record) or remove (the version).
    ops: HashMap<u32, Vec<(bool, DriverId, Vec<u8>)>>,
}

impl<'a> TileSync<'a> {
    pub(super) fn new(index: &'a RedisGeoIndex, now_ms: u64) -> Self {
        TileSync {
            index,
            now_ms,
            ops: HashMap::new(),
        }
    }

    pub(super) fn put(&mut self, id: DriverId, rec: &Rec) {
        self.ops
            .entry(rec.tile)
            .or_default()
            .push((true, id, rec.bytes()));
    }

    pub(super) fn remove(&mut self, tile: u32, id: DriverId, version: u64) {
        self.ops
            .entry(tile)
            .or_default()
            .push((false, id, version.to_le_bytes().to_vec()));
    }

    /// The tile calls, and the tiles added to the registry (the set of
    /// tiles that ever held a driver, which searches over more than 64
    /// tiles read), in one pipeline.
    pub(super) fn run(self) -> Result<(), GeoError> {
        if self.ops.is_empty() {
            return Ok(());
        }
        let mut register = redis::cmd("SADD");
        register
            .arg(self.index.registry_key())
            .arg(self.ops.keys().copied().collect::<Vec<u32>>());
        let calls: Vec<Call> = self
            .ops
            .into_iter()
            .map(|(tile, ops)| {
                let mut call = self.index.tile_call(tile, self.now_ms);
                for (put, id, payload) in ops {
                    call.push(if put { "P" } else { "D" });
                    call.push(id);
                    call.push_bytes(payload);
                }
                call
            })
            .collect();
        self.index
            .pool
            .run_session(|s| eval_pipelined_with(s, &calls, std::slice::from_ref(&register)))
            .map(drop)
            .map_err(|f| RedisGeoIndex::unavailable("tiles", f))
    }
}
