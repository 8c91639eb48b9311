//! The batch path: what `upsert_batch_at` does with thousands of location
//! updates at a time.
//!
//! 1. Each update becomes a 48-byte [`Item`]: its cell, target shard and
//!    update time (converted once per distinct `Instant`); updates that
//!    carry attributes or a TTL are validated in full and marked.
//! 2. Under one directory read lock, every item's bucket is looked up,
//!    with the bucket [`AHEAD`] items later prefetched (into L2, as all
//!    of the batch path's prefetches): the memory fetches overlap instead
//!    of queueing.
//! 3. Items are sorted (stably, counting sort) by the shard that holds the
//!    driver; each shard's write lock is taken once. Inside, the group's
//!    cell headers and slots are prefetched (and, for drivers changing cell,
//!    the destination cell's index word, header and free slot), then
//!    position-only moves within the shard are applied inline: most stay in
//!    their ~600 m cell, about 9 % at the seed's 60 m per 4 s change cell,
//!    and their new locations are published in one directory pass before
//!    the lock is released. Anything else goes through the general path.
//! 4. Cross-shard moves and races with other writers are replayed one at a
//!    time, in batch order, after the groups.
//!
//! A driver's updates keep their batch order: all of them land in one
//! group (the shard holding it, or for a new driver its first target), and
//! once one is deferred the rest are too.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::time::Instant;

use foldhash::fast::RandomState;
use parking_lot::RwLockWriteGuard;

use crate::fence::FenceEvent;
use crate::grid::{cell_key, cell_xy, shard_of};
use crate::prefetch::{Level, prefetch_to, prefetch_whole};
use crate::shard::{Loc, Shard, Slot, pack_meta, sub_of};
use crate::write::Applied;
use crate::{DriverId, DriverUpdate, GeoError, GeoIndex, Upsert};

/// The outcome of [`GeoIndex::upsert_batch_at`]. Rejected updates are only
/// reported here, so dropping it is a warning:
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// # use std::time::Instant;
/// # use dispatchkit_geo_index::GeoIndex;
/// let index = GeoIndex::new();
/// index.upsert_batch_at(&[], Instant::now());
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[must_use = "rejected updates are only reported here"]
#[non_exhaustive]
pub struct BatchReport {
    /// New drivers.
    pub inserted: usize,
    /// Drivers moved (or re-attributed).
    pub moved: usize,
    /// Updates ignored as older than the stored state.
    pub stale: usize,
    /// Updates refused, by index in the batch, with the reason.
    pub rejected: Vec<(usize, GeoError)>,
    /// Geofence transitions the batch caused.
    pub events: Vec<FenceEvent>,
    /// Expired drivers the amortised sweep reclaimed while applying it.
    pub purged: usize,
}

/// How many items ahead the directory lookups prefetch. The batch path's
/// prefetches fill L2 ([`Level::L2`]), so a longer run of them in flight
/// does not hold the L1 miss buffers the loop's own loads need: with L1
/// prefetches 16 was the best distance here; into L2, this and
/// [`SLOT_AHEAD`] as pairs 16/8, 32/16, 48/24 and 64/32 were compared on
/// the `geo_update` bench's stream at 1M drivers, where 32/16 and longer
/// pairs tie; at 10M drivers, whose lookups miss to DRAM, 64/32 beat 32/16
/// in every alternating pair, and 64/16, 96/32 and 128/64 did not beat it.
const AHEAD: usize = 64;

/// How many items ahead the apply loop prefetches slots. Shorter than
/// [`AHEAD`]: applying an item does more work than looking one up.
const SLOT_AHEAD: usize = 32;

/// No location: a driver the directory does not hold.
const NO_LOC: u64 = u64::MAX;

/// One update of a batch, as the batch path carries it.
#[derive(Debug, Clone, Copy)]
struct Item {
    id: u64,
    /// Packed [`Loc`], or [`NO_LOC`].
    loc: u64,
    at_ms: u64,
    lon_q: u32,
    lat_q: u32,
    key: u32,
    /// Index in the caller's batch (for attributes, TTL, and order).
    idx: u32,
    target: u16,
    primary: u16,
    /// Position only, default TTL: eligible for the inline path.
    plain: bool,
}

#[derive(Debug, Default)]
struct Scratch {
    items: Vec<Item>,
    sorted: Vec<Item>,
    counts: Vec<u32>,
    /// Destination cells of the drivers of one lock group that change cell.
    movers: Vec<(u32, u8)>,
    /// New locations of the drivers of one lock group that changed cell.
    relocated: Vec<(u64, Loc)>,
}

thread_local! {
    /// Per-thread scratch, so a batch allocates nothing in steady state.
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

impl GeoIndex {
    /// Applies a batch of updates, taking each spatial shard's lock once for
    /// all the updates it holds, and runs a slice of the amortised expiry
    /// sweep in every shard it locks. Updates are applied in batch order per
    /// driver; invalid ones are reported in [`BatchReport::rejected`] and
    /// the rest still applied. `now` is the processing time (a driver
    /// expired at `now` counts as absent); each update's `at` is its update
    /// time. Allocation-free in steady state unless geofence events,
    /// rejections or new drivers are reported.
    pub fn upsert_batch_at(&self, updates: &[DriverUpdate], now: Instant) -> BatchReport {
        let mut report = BatchReport::default();
        let now_ms = self.clock.ms(now);
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let Scratch {
                items,
                sorted,
                counts,
                movers,
                relocated,
            } = &mut *scratch;
            self.prepare_items(updates, now_ms, items, &mut report);
            self.locate(items);
            self.group(items, sorted, counts);
            let deferred =
                self.apply_groups(updates, sorted, movers, relocated, now_ms, &mut report);
            // Cross-shard moves and races, one at a time, in batch order.
            for idx in deferred {
                // Validated in step 1, so `prepare` succeeds; never panic.
                match self
                    .prepare(&updates[idx as usize], now_ms)
                    .and_then(|p| self.upsert_slow_into(p, &mut report.events))
                {
                    Ok(Upsert::Inserted) => report.inserted += 1,
                    Ok(Upsert::Moved) => report.moved += 1,
                    Ok(Upsert::Stale) => report.stale += 1,
                    Err(e) => report.rejected.push((idx as usize, e)),
                }
            }
        });
        report
    }

    /// Step 1: validation, cells and times.
    fn prepare_items(
        &self,
        updates: &[DriverUpdate],
        now_ms: u64,
        items: &mut Vec<Item>,
        report: &mut BatchReport,
    ) {
        items.clear();
        items.reserve(updates.len());
        // Updates of one batch usually share their time: convert and check
        // it once (an accepted time only; a refused one is rare).
        let mut last_at: Option<(Instant, u64)> = None;
        for (i, u) in updates.iter().enumerate() {
            let at_ms = match last_at {
                Some((at, ms)) if at == u.at => ms,
                _ => match self.update_ms(u.at, now_ms) {
                    Ok(ms) => {
                        last_at = Some((u.at, ms));
                        ms
                    }
                    Err(e) => {
                        report.rejected.push((i, e));
                        continue;
                    }
                },
            };
            let plain = u.attrs.is_none() && u.ttl.is_none();
            if !plain && let Err(e) = self.prepare_with(u, now_ms, at_ms) {
                report.rejected.push((i, e));
                continue;
            }
            let (cx, cy) = cell_xy(u.pos);
            let (lon_q, lat_q) = u.pos.raw();
            items.push(Item {
                id: u.id.get(),
                loc: NO_LOC,
                at_ms,
                lon_q,
                lat_q,
                key: cell_key(cx, cy),
                idx: i as u32,
                target: shard_of(cx, cy, self.mask) as u16,
                primary: 0,
                plain,
            });
        }
    }

    /// Step 2: locations, under one directory read lock; each bucket is
    /// prefetched [`AHEAD`] lookups before its own, so the misses overlap.
    fn locate(&self, items: &mut [Item]) {
        let table = self.dir.read();
        for it in items.iter().take(AHEAD) {
            table.prefetch(it.id);
        }
        for k in 0..items.len() {
            if let Some(ahead) = items.get(k + AHEAD) {
                table.prefetch(ahead.id);
            }
            items[k].loc = table.get_packed(items[k].id).unwrap_or(NO_LOC);
        }
    }

    /// Step 3a: the lock group of every item, and a stable counting sort of
    /// the items into `sorted` by group.
    fn group(&self, items: &mut [Item], sorted: &mut Vec<Item>, counts: &mut Vec<u32>) {
        let mut new_ids: Option<HashMap<u64, u16, RandomState>> = None;
        for it in items.iter_mut() {
            it.primary = if it.loc != NO_LOC {
                Loc::unpack(it.loc).shard as u16
            } else {
                // Every update of a new driver goes to its first target.
                *new_ids
                    .get_or_insert_with(HashMap::default)
                    .entry(it.id)
                    .or_insert(it.target)
            };
        }
        let buckets = self.mask + 1;
        counts.clear();
        counts.resize(buckets + 1, 0);
        for it in items.iter() {
            counts[it.primary as usize + 1] += 1;
        }
        for b in 1..=buckets {
            counts[b] += counts[b - 1];
        }
        // Every place is written below: the buffer keeps its length between
        // batches so that only growth fills it (a fill is 48 bytes an item).
        sorted.resize(items.len(), EMPTY_ITEM);
        for it in items.iter() {
            let k = it.primary as usize;
            sorted[counts[k] as usize] = *it;
            counts[k] += 1;
        }
    }

    /// Step 3b: one write lock per group; returns the batch indices of the
    /// deferred updates, ascending.
    fn apply_groups(
        &self,
        updates: &[DriverUpdate],
        sorted: &[Item],
        movers: &mut Vec<(u32, u8)>,
        relocated: &mut Vec<(u64, Loc)>,
        now_ms: u64,
        report: &mut BatchReport,
    ) -> Vec<u32> {
        relocated.clear();
        let mut deferred: Vec<u32> = Vec::new();
        let mut deferred_ids: HashSet<u64, RandomState> = HashSet::default();
        let mut groups = sorted.chunk_by(|a, b| a.primary == b.primary).peekable();
        // The next group's shard, locked early with its headers prefetched.
        let mut next_shard: Option<RwLockWriteGuard<'_, Shard>> = None;
        while let Some(group) = groups.next() {
            let s = group[0].primary as usize;
            let mut shard = next_shard.take().unwrap_or_else(|| {
                let shard = self.write_shard(s);
                prefetch_headers(&shard, group);
                shard
            });
            // A group's own prefetches cannot land before its first items
            // need them (and a batch spread over many shards makes groups of
            // a few items): the next group's shard is locked now (if free;
            // shards are locked in ascending order, so holding two cannot
            // deadlock) and its cell headers are fetched while this group is
            // applied. (On the metro workload groups are larger than a batch
            // spread over every shard would give: the metros' tiles hash
            // onto only some of the shards.)
            if let Some(next) = groups.peek()
                && let Some(g) = self.shards[next[0].primary as usize].try_write()
            {
                prefetch_headers(&g, next);
                next_shard = Some(g);
            }
            self.prefetch_group(&shard, s, group, movers);
            let fences = !shard.fences.is_empty();
            for (k, it) in group.iter().enumerate() {
                if let Some(ahead) = group.get(k + SLOT_AHEAD) {
                    prefetch_slot(&shard, ahead);
                }
                let applied = if !deferred_ids.is_empty() && deferred_ids.contains(&it.id) {
                    Applied::Deferred
                } else if let Some(a) = (it.plain && !fences)
                    .then(|| self.apply_inline(&mut shard, s, it, now_ms, relocated))
                    .flatten()
                {
                    a
                } else {
                    match self.prepare(&updates[it.idx as usize], now_ms) {
                        Ok(mut p) => {
                            p.loc = (it.loc != NO_LOC).then(|| Loc::unpack(it.loc));
                            self.apply(&mut shard, s, &p, &mut report.events)
                        }
                        // Validated in step 1; unreachable, but never panic.
                        Err(e) => {
                            report.rejected.push((it.idx as usize, e));
                            continue;
                        }
                    }
                };
                match applied {
                    Applied::Inserted => report.inserted += 1,
                    Applied::Moved => report.moved += 1,
                    Applied::Stale => report.stale += 1,
                    // Only moves (`must_exist`) report it; a batch never does.
                    Applied::Absent => report.rejected.push((
                        it.idx as usize,
                        GeoError::UnknownDriver(DriverId::stored(it.id)),
                    )),
                    Applied::Deferred => {
                        deferred.push(it.idx);
                        deferred_ids.insert(it.id);
                    }
                }
            }
            // Before the sweep, whose compaction may move these slots again.
            self.dir.set_many(relocated);
            relocated.clear();
            // One cell of expiry sweep per 128 updates the shard receives
            // (counted across batches): a full cycle over a metro's cells
            // every few minutes at the seed's update rate.
            shard.sweep_credit += group.len();
            let cells = shard.sweep_credit / 128;
            shard.sweep_credit %= 128;
            report.purged += self.sweep(&mut shard, s, now_ms, cells, relocated);
        }
        deferred.sort_unstable();
        deferred
    }

    /// Fetches, ahead of applying `group` under shard `s`'s lock, what
    /// that will read (the cell headers were prefetched by
    /// [`prefetch_headers`] when the shard was locked): the slots
    /// of the first [`SLOT_AHEAD`] drivers (the apply loop prefetches the
    /// rest, [`SLOT_AHEAD`] items before it reaches them, so their misses
    /// overlap the work on earlier items), and for drivers that move to
    /// another cell of this shard (about 9 % of updates at the seed's 60 m
    /// per 4 s) the destination cell's index word, header and next free
    /// slot, prefetched in passes. Without this each such move waits for
    /// three misses in a row.
    fn prefetch_group(&self, shard: &Shard, s: usize, group: &[Item], movers: &mut Vec<(u32, u8)>) {
        for it in group.iter().take(SLOT_AHEAD) {
            prefetch_slot(shard, it);
        }
        movers.clear();
        for it in group.iter().filter(|it| it.loc != NO_LOC) {
            let l = Loc::unpack(it.loc);
            if let Some(c) = shard.cells.get(l.cell as usize)
                && !c.holds(it.key, it.lon_q, it.lat_q)
                && it.target as usize == s
            {
                shard.cell_of.prefetch(it.key, Level::L2);
                movers.push((it.key, sub_of(it.lon_q, it.lat_q)));
            }
        }
        for (m, sub) in movers.iter_mut() {
            // The key becomes the destination cell (the sub-cell of a split
            // one); MAX marks a cell not created yet.
            *m = shard
                .prefetch_cell(*m, Level::L2)
                .map_or(u32::MAX, |v| Shard::leaf(v, *sub));
        }
        for &(c, _) in movers.iter().filter(|&&(c, _)| c != u32::MAX) {
            shard.prefetch_vacancy(c);
        }
    }

    /// The common case, inline: a live driver with the default TTL, in
    /// this shard, position only. A move within its cell rewrites the slot;
    /// a move to another cell of this shard frees it, fills one in the
    /// destination and queues the new location in `relocated` (published
    /// in one directory pass before the shard lock is released). `None`
    /// when any of that does not hold (the general path decides).
    #[inline(always)]
    fn apply_inline(
        &self,
        shard: &mut Shard,
        s: usize,
        it: &Item,
        now_ms: u64,
        relocated: &mut Vec<(u64, Loc)>,
    ) -> Option<Applied> {
        if it.loc == NO_LOC || it.target as usize != s {
            return None;
        }
        let l = Loc::unpack(it.loc);
        let cell = shard.cells.get_mut(l.cell as usize)?;
        let same_cell = cell.holds(it.key, it.lon_q, it.lat_q);
        let slot = cell.slots.get_mut(l.slot as usize)?;
        if slot.id != it.id
            || slot.custom_ttl()
            || now_ms >= slot.updated_ms() + self.default_ttl_ms
        {
            return None;
        }
        let attrs = slot.attrs();
        if (it.at_ms, it.lon_q, it.lat_q, attrs) <= slot.version() {
            return Some(Applied::Stale);
        }
        let next = Slot {
            id: it.id,
            lon_q: it.lon_q,
            lat_q: it.lat_q,
            meta: pack_meta(it.at_ms, attrs, false),
        };
        if same_cell {
            *slot = next;
        } else {
            let loc = shard.relocate(s, l, it.key, next, &mut |id, l| relocated.push((id, l)));
            relocated.push((it.id, loc));
        }
        Some(Applied::Moved)
    }
}

/// Prefetches the cell header of every driver of `group` that `shard`
/// holds.
fn prefetch_headers(shard: &Shard, group: &[Item]) {
    for it in group.iter().filter(|it| it.loc != NO_LOC) {
        let l = Loc::unpack(it.loc);
        prefetch_to(
            shard.cells.as_ptr().wrapping_add(l.cell as usize),
            Level::L2,
        );
    }
}

/// Prefetches the slot `it` will be applied to (its cell header was
/// prefetched a pass earlier), whole: the apply path reads its id at the
/// start and its time at the end.
#[inline(always)]
fn prefetch_slot(shard: &Shard, it: &Item) {
    if it.loc != NO_LOC {
        let l = Loc::unpack(it.loc);
        if let Some(c) = shard.cells.get(l.cell as usize) {
            prefetch_whole(c.slots.as_ptr().wrapping_add(l.slot as usize), Level::L2);
        }
    }
}

const EMPTY_ITEM: Item = Item {
    id: 0,
    loc: NO_LOC,
    at_ms: 0,
    lon_q: 0,
    lat_q: 0,
    key: 0,
    idx: 0,
    target: 0,
    primary: 0,
    plain: false,
};
