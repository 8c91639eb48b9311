//! `GEOSEARCH` on the Redis index: the tiles the area touches, one script
//! call per tile in one pipeline, the candidates judged with the
//! in-process index's own shape tests and merged in its order; tiles are
//! asked again, for more, only while they could still hold a better hit.

use std::collections::HashMap;
use std::time::Instant;

use redis::Value;

use dispatchkit_redis_conn::script::{Call, eval, eval_pipelined};

use super::reply::{Rec, array, bytes, int, malformed};
use super::{RedisGeoIndex, search_lua};
use crate::backend::DriverIndex;
use crate::grid::{COLS, CellRange};
use crate::{Center, DriverId, GeoError, Hit, Order, Search};

/// How far (m) Redis's distances, measured between the centres of its
/// 52-bit cells, may be from the exact ones: candidates are fetched that
/// much beyond the shape's reach, and a tile whose last candidate was
/// within it of the current k-th hit is asked again.
const SLACK_M: f64 = 2.0;

/// Redis's radius for "everything" (more than half the circumference).
const WORLD_M: f64 = 2.2e7;

/// Searches touching more tiles than this read the registry of non-empty
/// tiles instead of enumerating the area.
const DIRECT_TILES: i64 = 64;

/// A search's hits and the tiles it could not read.
#[derive(Debug, Clone, PartialEq)]
pub struct PartialHits {
    /// The hits from the tiles that answered, in the query's order.
    pub hits: Vec<Hit>,
    /// Why each unread tile failed ([`GeoError::Unavailable`], naming the
    /// tile); empty when the answer is complete.
    pub missing: Vec<GeoError>,
}

impl PartialHits {
    /// Whether every tile answered.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty()
    }
}

/// A candidate: its record, and its exact distance (m) when inside the
/// shape.
struct Cand {
    rec: Rec,
    d: Option<f64>,
}

impl RedisGeoIndex {
    /// [`DriverIndex::search_at`], but a tile that cannot be read (its
    /// node down) leaves its drivers out instead of failing the search;
    /// the answer says which tiles are missing.
    ///
    /// # Errors
    /// As [`DriverIndex::search_at`] for a bad query or a `FROMMEMBER`
    /// driver that cannot be read.
    pub fn search_partial_at(&self, q: &Search, now: Instant) -> Result<PartialHits, GeoError> {
        self.run_search(q, &[], now, true)
    }

    pub(super) fn run_search(
        &self,
        q: &Search,
        exclude: &[DriverId],
        now: Instant,
        partial: bool,
    ) -> Result<PartialHits, GeoError> {
        let shape = q.validate()?;
        let center = match q.center {
            Center::Point(p) => p,
            Center::Member(id) => self.position_at(id, now)?,
        };
        let shape = shape.exact_if_tiny(center, matches!(q.center, Center::Member(_)));
        let range = shape.range(center);
        let now_ms = self.ms(now);
        let order = q.effective_order();
        let desc = order == Some(Order::Desc);
        let reach = (shape.reach() + SLACK_M).min(WORLD_M);
        let (status, vehicles, min_rating, load_bound) = q.filter.parts();
        let mut missing = Vec::new();
        let tiles = match self.tiles_of(&range) {
            Ok(t) => t,
            Err(e) if partial => {
                missing.push(e);
                Vec::new()
            }
            Err(e) => return Err(e),
        };
        let first_want = q.count.map_or(0, |k| k.saturating_add(exclude.len()));
        // k nearest: the centre's tile first; the others then only out to
        // its k-th distance (their own walks would otherwise widen to the
        // whole reach looking for k drivers of their own).
        let home = self.tile_of(center);
        let nearest_first = q.count.is_some() && !desc && tiles.contains(&home);
        let (first, mut later): (Vec<u32>, Vec<u32>) = if nearest_first {
            tiles.into_iter().partition(|&t| t == home)
        } else {
            (tiles, Vec::new())
        };
        let mut pending: Vec<(u32, usize, f64)> =
            first.into_iter().map(|t| (t, first_want, reach)).collect();
        let mut cands: HashMap<DriverId, Cand> = HashMap::new();
        let mut found: Vec<(f64, DriverId)> = Vec::new();
        while !pending.is_empty() {
            let calls: Vec<Call> = pending
                .iter()
                .map(|&(tile, want, radius)| {
                    let keys = self.tile_keys(tile)[..2].to_vec();
                    let call = Call::new(search_lua(), keys)
                        .arg(now_ms)
                        .arg(center.lon())
                        .arg(center.lat())
                        .arg(radius)
                        .arg(if desc { "DESC" } else { "ASC" })
                        .arg(want)
                        .arg(status.map_or(-1, |s| i64::from(s.get())))
                        .arg(vehicles & 0xFFFF_FFFF)
                        .arg(vehicles >> 32)
                        .arg(min_rating)
                        .arg(load_bound);
                    if self.is_single() {
                        call.arg(&self.prefix).arg(self.bucket_mask + 1).arg(tile)
                    } else {
                        call
                    }
                })
                .collect();
            let names: Vec<u32> = pending.iter().map(|p| p.0).collect();
            let replies = self.eval_tiles(&calls, &names, partial, &mut missing)?;
            // Tiles that stopped early: (tile, want, radius, last distance).
            let mut open: Vec<(u32, usize, f64, f64)> = Vec::new();
            for (&(tile, want, radius), reply) in pending.iter().zip(replies) {
                let Some(reply) = reply else { continue };
                let items = array(reply)?;
                if items.len() < 2 || items.len() % 2 != 0 {
                    return Err(malformed("a search reply of the wrong shape"));
                }
                for pair in items[2..].chunks_exact(2) {
                    let id = std::str::from_utf8(bytes(&pair[0])?)
                        .ok()
                        .and_then(|s| s.parse::<u64>().ok())
                        .and_then(|n| DriverId::new(n).ok())
                        .ok_or_else(|| malformed("a member that is not a driver id"))?;
                    let rec = Rec::parse(bytes(&pair[1])?)?;
                    if cands.get(&id).is_some_and(|c| c.rec.ver >= rec.ver) {
                        continue;
                    }
                    let keep = rec.live(now_ms)
                        && q.filter.matches_packed(rec.attrs)
                        && !exclude.contains(&id);
                    let d = if keep {
                        shape.test(center, rec.pos())
                    } else {
                        None
                    };
                    cands.insert(id, Cand { rec, d });
                }
                if int(&items[0])? != 1 {
                    let last = std::str::from_utf8(bytes(&items[1])?)
                        .ok()
                        .and_then(|s| s.parse::<f64>().ok())
                        .ok_or_else(|| malformed("a distance that is not a number"))?;
                    open.push((tile, want, radius, last));
                }
            }
            found.clear();
            found.extend(cands.iter().filter_map(|(&id, c)| c.d.map(|d| (d, id))));
            // The in-process order: (distance, id), DESC its exact reverse.
            found.sort_unstable_by_key(|&(d, id)| (d.to_bits(), id));
            if desc {
                found.reverse();
            }
            let Some(k) = q.count else { break };
            let bound = found.get(k.saturating_sub(1)).map(|f| f.0);
            pending = open
                .into_iter()
                .filter(|&(_, _, _, last)| match bound {
                    None => true,
                    Some(b) if desc => last + SLACK_M >= b,
                    Some(b) => last - SLACK_M <= b,
                })
                .map(|(tile, want, radius, _)| (tile, want.saturating_mul(4), radius))
                .collect();
            let radius = bound.map_or(reach, |b| (b + SLACK_M).min(reach));
            pending.extend(later.drain(..).map(|t| (t, first_want, radius)));
        }
        if let Some(k) = q.count {
            found.truncate(k);
        }
        let per_unit = q.unit.metres();
        let hits = found
            .iter()
            .map(|&(d, id)| {
                let c = &cands[&id];
                let pos = c.rec.pos();
                Hit {
                    id,
                    distance: d / per_unit,
                    pos,
                    attrs: crate::Attrs::unpack(c.rec.attrs),
                    hash: q.with_hash.then(|| pos.redis_geohash()),
                }
            })
            .collect();
        Ok(PartialHits { hits, missing })
    }

    /// One reply per call; after a failed pipeline each call runs alone, so
    /// the failure names its tile (`partial`: the tile's drivers are left
    /// out and the failure recorded; else the search fails).
    fn eval_tiles(
        &self,
        calls: &[Call],
        tiles: &[u32],
        partial: bool,
        missing: &mut Vec<GeoError>,
    ) -> Result<Vec<Option<Value>>, GeoError> {
        if let Ok(replies) = self.pool.run_session(|s| eval_pipelined(s, calls)) {
            return Ok(replies.into_iter().map(Some).collect());
        }
        let mut out = Vec::with_capacity(calls.len());
        for (call, &tile) in calls.iter().zip(tiles) {
            match self.pool.run(|con| eval(con, call)) {
                Ok(v) => out.push(Some(v)),
                Err(f) => {
                    let e = Self::unavailable(
                        format!(
                            "tile {tile} (column {}, row {}) at {}",
                            tile & 0xFFFF,
                            tile >> 16,
                            String::from_utf8_lossy(&self.tile_keys(tile)[0])
                        ),
                        f,
                    );
                    if !partial {
                        return Err(e);
                    }
                    missing.push(e);
                    out.push(None);
                }
            }
        }
        Ok(out)
    }

    /// The tiles a cell range touches: enumerated when few, else the
    /// registered (non-empty) ones inside the range.
    fn tiles_of(&self, range: &CellRange) -> Result<Vec<u32>, GeoError> {
        let s = self.tile_shift;
        let tcols = i64::from(COLS >> s);
        let (c_lo, ncols) = if range.all_cols() {
            (0, tcols)
        } else {
            let lo = range.col_lo >> s;
            (lo, ((range.col_hi >> s) - lo + 1).min(tcols))
        };
        let (r_lo, r_hi) = (range.row_lo >> s, range.row_hi >> s);
        let tile = |c: i64, r: i64| ((r as u32) << 16) | c.rem_euclid(tcols) as u32;
        if ncols * (r_hi - r_lo + 1) <= DIRECT_TILES {
            return Ok((r_lo..=r_hi)
                .flat_map(|r| (c_lo..c_lo + ncols).map(move |c| tile(c, r)))
                .collect());
        }
        let key = self.registry_key();
        let all: Vec<u32> = self
            .pool
            .run(|con| redis::cmd("SMEMBERS").arg(&key).query(con))
            .map_err(|f| Self::unavailable("tile registry", f))?;
        Ok(all
            .into_iter()
            .filter(|&t| {
                let (tx, ty) = (i64::from(t & 0xFFFF), i64::from(t >> 16));
                (r_lo..=r_hi).contains(&ty) && (tx - c_lo).rem_euclid(tcols) < ncols
            })
            .collect())
    }
}
