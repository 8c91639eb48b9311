//! The write path of single updates: validation, insert-or-move under the
//! shard lock(s), cross-shard moves and races with other writers (the
//! batch path in `batch.rs` falls back to it).

use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use crate::fence::{FenceEvent, transitions};
use crate::grid::{cell_key, cell_xy, shard_of};
use crate::index::ttl_ms;
use crate::shard::{Loc, Shard, Slot};
use crate::{Attrs, DriverId, DriverUpdate, GeoError, GeoIndex, LonLat, Upsert};

/// A prepared update: validated, with its cell, shards and times.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Prep {
    pub(crate) id: u64,
    /// A move of a known driver ([`GeoIndex::move_at`]): never inserts.
    pub(crate) must_exist: bool,
    pub(crate) pos: LonLat,
    pub(crate) key: u32,
    pub(crate) target: u32,
    pub(crate) at_ms: u64,
    pub(crate) attrs: Option<u32>,
    pub(crate) ttl_ms: Option<u64>,
    /// Processing time: an expired driver counts as absent.
    pub(crate) now_ms: u64,
    pub(crate) loc: Option<Loc>,
}

pub(crate) enum Applied {
    Inserted,
    Moved,
    Stale,
    /// A move ([`Prep::must_exist`]) of a driver that has expired.
    Absent,
    /// Raced with another writer or crosses shards: take the slow path.
    Deferred,
}

impl GeoIndex {
    // ---- writes ------------------------------------------------------

    pub(crate) fn prepare(&self, u: &DriverUpdate, now_ms: u64) -> Result<Prep, GeoError> {
        let at_ms = self.update_ms(u.at, now_ms)?;
        self.prepare_with(u, now_ms, at_ms)
    }

    /// An update time as stored (see [`Clock::update_ms`]).
    #[inline]
    pub(crate) fn update_ms(&self, at: Instant, now_ms: u64) -> Result<u64, GeoError> {
        self.clock.update_ms(at, now_ms, self.max_skew_ms)
    }

    /// [`GeoIndex::prepare`] with the update time already converted and
    /// checked.
    #[inline]
    pub(crate) fn prepare_with(
        &self,
        u: &DriverUpdate,
        now_ms: u64,
        at_ms: u64,
    ) -> Result<Prep, GeoError> {
        if let Some(a) = &u.attrs {
            a.validate()?;
        }
        let ttl_ms = u.ttl.map(ttl_ms).transpose()?;
        let (cx, cy) = cell_xy(u.pos);
        Ok(Prep {
            id: u.id.get(),
            must_exist: false,
            pos: u.pos,
            key: cell_key(cx, cy),
            target: shard_of(cx, cy, self.mask) as u32,
            at_ms,
            attrs: u.attrs.map(|a| a.pack()),
            ttl_ms,
            now_ms,
            loc: None,
        })
    }

    /// Inserts a driver or moves it, setting its attributes, with update
    /// time `now`. O(1) expected.
    ///
    /// # Errors
    /// [`GeoError::ReservedId`] for `u64::MAX`; [`GeoError::InvalidAttribute`]
    /// for a load above 7. The index is unchanged on error.
    pub fn upsert_at(
        &self,
        id: DriverId,
        pos: LonLat,
        attrs: Attrs,
        now: Instant,
    ) -> Result<Upsert, GeoError> {
        self.update_at(DriverUpdate::new(id, pos, now).with_attrs(attrs), now)
    }

    /// [`GeoIndex::upsert_at`] at `Instant::now()`.
    ///
    /// # Errors
    /// As [`GeoIndex::upsert_at`].
    pub fn upsert(&self, id: DriverId, pos: LonLat, attrs: Attrs) -> Result<Upsert, GeoError> {
        self.upsert_at(id, pos, attrs, Instant::now())
    }

    /// Moves a known driver, keeping its attributes and TTL. The driver's
    /// presence is checked under the same shard lock that moves it, so a
    /// concurrent removal either happens first (then this is
    /// [`GeoError::UnknownDriver`] and nothing is inserted) or after.
    ///
    /// # Errors
    /// [`GeoError::UnknownDriver`] when the driver is not in the index or
    /// has expired at `now`; nothing changes.
    pub fn move_at(&self, id: DriverId, pos: LonLat, now: Instant) -> Result<Upsert, GeoError> {
        let now_ms = self.clock.ms(now);
        let mut p = self.prepare(&DriverUpdate::new(id, pos, now), now_ms)?;
        p.must_exist = true;
        self.upsert_slow(p)
    }

    /// Applies one [`DriverUpdate`]: `u.at` is the update time (the stale
    /// rule and the expiry use it), `now` the processing time (a driver
    /// expired at `now` counts as absent, so the update inserts it afresh).
    ///
    /// # Errors
    /// As [`GeoIndex::upsert_at`], plus [`GeoError::InvalidValue`] for a zero
    /// or overlong TTL.
    pub fn update_at(&self, u: DriverUpdate, now: Instant) -> Result<Upsert, GeoError> {
        let p = self.prepare(&u, self.clock.ms(now))?;
        self.upsert_slow(p)
    }

    /// Applies a prepared update to the locked shard `s`, which holds the
    /// driver (or is its target when `p.loc` is `None`).
    pub(crate) fn apply(
        &self,
        shard: &mut Shard,
        s: usize,
        p: &Prep,
        events: &mut Vec<FenceEvent>,
    ) -> Applied {
        match p.loc {
            None => {
                let mut table = self.dir.write();
                if table.contains(p.id) || p.target as usize != s || p.must_exist {
                    return Applied::Deferred;
                }
                let attrs = p.attrs.unwrap_or_else(|| Attrs::default().pack());
                let loc = shard.insert_at(
                    s,
                    p.key,
                    Slot::new(p.id, p.pos, p.at_ms, attrs, p.ttl_ms.is_some()),
                    &mut |id, l| {
                        table.set(id, l);
                    },
                );
                if let Some(t) = p.ttl_ms {
                    shard.ttl.insert(p.id, t);
                }
                table.insert(p.id, loc);
                if !shard.fences.is_empty() {
                    transitions(
                        DriverId::stored(p.id),
                        None,
                        (p.pos, shard.fences.at(p.pos)),
                        events,
                    );
                }
                Applied::Inserted
            }
            Some(l) => {
                let Some(cur) = shard.slot_of(l.cell, l.slot, p.id).copied() else {
                    return Applied::Deferred;
                };
                if p.must_exist && !self.is_live(shard, &cur, p.now_ms) {
                    return Applied::Absent;
                }
                let Some((next, revived)) = self.successor(shard, &cur, p) else {
                    return Applied::Stale;
                };
                if p.target as usize != s {
                    return Applied::Deferred;
                }
                set_ttl(shard, p, revived);
                if shard.cells[l.cell as usize].holds(p.key, next.lon_q, next.lat_q) {
                    *shard.slot_mut(l.cell, l.slot) = next;
                } else {
                    let loc = shard.relocate(s, l, p.key, next, &mut |id, l| self.dir.set(id, l));
                    self.dir.set(p.id, loc);
                }
                if !shard.fences.is_empty() {
                    let old = cur.pos();
                    let old = (!revived).then(|| (old, shard.fences.at(old)));
                    transitions(
                        DriverId::stored(p.id),
                        old,
                        (p.pos, shard.fences.at(p.pos)),
                        events,
                    );
                }
                if revived {
                    Applied::Inserted
                } else {
                    Applied::Moved
                }
            }
        }
    }

    /// The slot an update leaves in place of `cur`, and whether `cur` had
    /// expired (then the update starts the driver afresh); `None` when the
    /// update is stale.
    #[inline]
    fn successor(&self, shard: &Shard, cur: &Slot, p: &Prep) -> Option<(Slot, bool)> {
        if !self.is_live(shard, cur, p.now_ms) {
            let attrs = p.attrs.unwrap_or_else(|| Attrs::default().pack());
            return Some((
                Slot::new(p.id, p.pos, p.at_ms, attrs, p.ttl_ms.is_some()),
                true,
            ));
        }
        let next = Slot::new(
            p.id,
            p.pos,
            p.at_ms,
            p.attrs.unwrap_or_else(|| cur.attrs()),
            p.ttl_ms.is_some() || cur.custom_ttl(),
        );
        (next.version() > cur.version()).then_some((next, false))
    }

    fn upsert_slow(&self, p: Prep) -> Result<Upsert, GeoError> {
        let mut events = Vec::new();
        self.upsert_slow_into(p, &mut events)
    }

    /// One update with retries: handles new drivers, cross-shard moves and
    /// races with other writers.
    ///
    /// # Errors
    /// [`GeoError::UnknownDriver`] when `p.must_exist` and the driver is
    /// not stored (checked under the lock that would have moved it).
    pub(crate) fn upsert_slow_into(
        &self,
        mut p: Prep,
        events: &mut Vec<FenceEvent>,
    ) -> Result<Upsert, GeoError> {
        loop {
            p.loc = self.dir.get(p.id);
            if p.loc.is_none() && p.must_exist {
                return Err(GeoError::UnknownDriver(DriverId::stored(p.id)));
            }
            let t = p.target as usize;
            match p.loc {
                Some(l) if l.shard as usize != t => {
                    if let Some(r) = self.cross_move(&p, l, events) {
                        return r;
                    }
                }
                _ => {
                    let s = p.loc.map_or(t, |l| l.shard as usize);
                    let mut shard = self.write_shard(s);
                    match self.apply(&mut shard, s, &p, events) {
                        Applied::Inserted => return Ok(Upsert::Inserted),
                        Applied::Moved => return Ok(Upsert::Moved),
                        Applied::Stale => return Ok(Upsert::Stale),
                        Applied::Absent => {
                            return Err(GeoError::UnknownDriver(DriverId::stored(p.id)));
                        }
                        Applied::Deferred => {}
                    }
                }
            }
            self.retries.fetch_add(1, Relaxed);
        }
    }

    /// Moves a driver from shard `l.shard` to `p.target` holding both locks;
    /// `None` when the location went stale (retry).
    fn cross_move(
        &self,
        p: &Prep,
        l: Loc,
        events: &mut Vec<FenceEvent>,
    ) -> Option<Result<Upsert, GeoError>> {
        let (a, b) = (l.shard as usize, p.target as usize);
        let (mut first, mut second) = (self.write_shard(a.min(b)), self.write_shard(a.max(b)));
        let (from, to) = if a < b {
            (&mut *first, &mut *second)
        } else {
            (&mut *second, &mut *first)
        };
        let cur = *from.slot_of(l.cell, l.slot, p.id)?;
        if p.must_exist && !self.is_live(from, &cur, p.now_ms) {
            return Some(Err(GeoError::UnknownDriver(DriverId::stored(p.id))));
        }
        let Some((next, revived)) = self.successor(from, &cur, p) else {
            return Some(Ok(Upsert::Stale));
        };
        from.free(l.cell, l.slot);
        let ttl = from.ttl.remove(&p.id).filter(|_| !revived);
        if let Some(t) = p.ttl_ms.or(ttl) {
            to.ttl.insert(p.id, t);
        }
        let loc = to.insert_at(b, p.key, next, &mut |id, l| self.dir.set(id, l));
        self.dir.set(p.id, loc);
        if !from.fences.is_empty() || !to.fences.is_empty() {
            let old = cur.pos();
            let old = (!revived).then(|| (old, from.fences.at(old)));
            transitions(
                DriverId::stored(p.id),
                old,
                (p.pos, to.fences.at(p.pos)),
                events,
            );
        }
        Some(Ok(if revived {
            Upsert::Inserted
        } else {
            Upsert::Moved
        }))
    }
}

/// Applies an update's TTL to the shard's override map: a new TTL is
/// stored; a revived driver without one goes back to the default.
#[inline]
fn set_ttl(shard: &mut Shard, p: &Prep, revived: bool) {
    match p.ttl_ms {
        Some(t) => {
            shard.ttl.insert(p.id, t);
        }
        None if revived => {
            shard.ttl.remove(&p.id);
        }
        None => {}
    }
}
