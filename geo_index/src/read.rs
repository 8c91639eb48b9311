//! Reads and in-place changes of one driver (lookups, attribute updates,
//! atomic status claims, removal) and whole-index scans.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use crate::shard::{Loc, Shard, Slot};
use crate::{Attrs, DriverId, DriverView, GeoError, GeoIndex, LonLat, Status, Unit, haversine_m};

impl GeoIndex {
    // ---- reads and attribute changes -----------------------------------

    /// Runs `f` on the driver's shard (write-locked) and slot location,
    /// retrying if the driver moves meanwhile; `None` if it is not stored.
    fn with_driver_mut<R>(
        &self,
        id: DriverId,
        mut f: impl FnMut(&mut Shard, usize, Loc) -> R,
    ) -> Option<R> {
        loop {
            let l = self.dir.get(id.get())?;
            let s = l.shard as usize;
            let mut shard = self.write_shard(s);
            if shard.slot_of(l.cell, l.slot, id.get()).is_some() {
                return Some(f(&mut shard, s, l));
            }
            drop(shard);
            self.retries.fetch_add(1, Relaxed);
        }
    }

    /// Runs `f` on the driver's slot under a read lock; `None` if it is not
    /// stored.
    fn with_driver<R>(&self, id: DriverId, mut f: impl FnMut(&Shard, &Slot) -> R) -> Option<R> {
        loop {
            let l = self.dir.get(id.get())?;
            let shard = self.read_shard(l.shard as usize);
            if let Some(slot) = shard.slot_of(l.cell, l.slot, id.get()) {
                return Some(f(&shard, slot));
            }
            drop(shard);
            self.retries.fetch_add(1, Relaxed);
        }
    }

    /// The driver as stored (`GEOPOS` plus attributes and times).
    ///
    /// # Errors
    /// [`GeoError::UnknownDriver`] when it is not in the index or has
    /// expired at `now`.
    pub fn get_at(&self, id: DriverId, now: Instant) -> Result<DriverView, GeoError> {
        let now_ms = self.clock.ms(now);
        self.with_driver(id, |shard, slot| {
            self.is_live(shard, slot, now_ms)
                .then(|| self.view(shard, slot))
        })
        .flatten()
        .ok_or(GeoError::UnknownDriver(id))
    }

    /// The driver's position (`GEOPOS`).
    ///
    /// # Errors
    /// As [`GeoIndex::get_at`].
    pub fn position_at(&self, id: DriverId, now: Instant) -> Result<LonLat, GeoError> {
        self.get_at(id, now).map(|v| v.pos)
    }

    /// Distance between two drivers in `unit` (`GEODIST`).
    ///
    /// # Errors
    /// As [`GeoIndex::get_at`], for either driver.
    pub fn distance_at(
        &self,
        a: DriverId,
        b: DriverId,
        unit: Unit,
        now: Instant,
    ) -> Result<f64, GeoError> {
        let (pa, pb) = (self.position_at(a, now)?, self.position_at(b, now)?);
        Ok(haversine_m(pa, pb) / unit.metres())
    }

    /// Replaces a live driver's attributes without moving it or refreshing
    /// its update time.
    ///
    /// # Errors
    /// [`GeoError::UnknownDriver`] (absent or expired),
    /// [`GeoError::InvalidAttribute`] for a load above 7.
    pub fn set_attrs_at(&self, id: DriverId, attrs: Attrs, now: Instant) -> Result<(), GeoError> {
        self.update_attrs_at(id, |a| *a = attrs, now).map(|_| ())
    }

    /// [`GeoIndex::set_attrs_at`] at `Instant::now()`.
    ///
    /// # Errors
    /// As [`GeoIndex::set_attrs_at`].
    pub fn set_attrs(&self, id: DriverId, attrs: Attrs) -> Result<(), GeoError> {
        self.set_attrs_at(id, attrs, Instant::now())
    }

    /// Changes a live driver's attributes in place with `f`, atomically
    /// with respect to every other operation on the index; returns the new
    /// attributes. If `f` produces invalid attributes nothing changes.
    ///
    /// # Errors
    /// [`GeoError::UnknownDriver`] (absent or expired),
    /// [`GeoError::InvalidAttribute`] if `f` sets a load above 7.
    pub fn update_attrs_at(
        &self,
        id: DriverId,
        mut f: impl FnMut(&mut Attrs),
        now: Instant,
    ) -> Result<Attrs, GeoError> {
        let now_ms = self.clock.ms(now);
        self.with_driver_mut(id, |shard, _, l| {
            let slot = shard.cells[l.cell as usize].slots[l.slot as usize];
            if !self.is_live(shard, &slot, now_ms) {
                return Err(GeoError::UnknownDriver(id));
            }
            let mut a = Attrs::unpack(slot.attrs());
            f(&mut a);
            a.validate()?;
            shard.slot_mut(l.cell, l.slot).set_attrs(a.pack());
            Ok(a)
        })
        .unwrap_or(Err(GeoError::UnknownDriver(id)))
    }

    /// [`GeoIndex::update_attrs_at`] at `Instant::now()`.
    ///
    /// # Errors
    /// As [`GeoIndex::update_attrs_at`].
    pub fn update_attrs(&self, id: DriverId, f: impl FnMut(&mut Attrs)) -> Result<Attrs, GeoError> {
        self.update_attrs_at(id, f, Instant::now())
    }

    /// Sets the status to `new` if it is `expected`, atomically: of two
    /// callers racing to claim one available driver exactly one gets
    /// `Ok(true)`.
    ///
    /// # Errors
    /// [`GeoError::UnknownDriver`] (absent or expired).
    pub fn compare_and_set_status_at(
        &self,
        id: DriverId,
        expected: Status,
        new: Status,
        now: Instant,
    ) -> Result<bool, GeoError> {
        let mut won = false;
        self.update_attrs_at(
            id,
            |a| {
                won = a.status == expected;
                if won {
                    a.status = new;
                }
            },
            now,
        )?;
        Ok(won)
    }

    /// [`GeoIndex::compare_and_set_status_at`] at `Instant::now()`.
    ///
    /// # Errors
    /// As [`GeoIndex::compare_and_set_status_at`].
    pub fn compare_and_set_status(
        &self,
        id: DriverId,
        expected: Status,
        new: Status,
    ) -> Result<bool, GeoError> {
        self.compare_and_set_status_at(id, expected, new, Instant::now())
    }

    /// Removes a driver visible at `now` and returns it (`ZREM`). An expired
    /// driver counts as absent: its slot is reclaimed and the result is
    /// [`GeoError::UnknownDriver`].
    ///
    /// # Errors
    /// [`GeoError::UnknownDriver`] when it is absent or expired.
    pub fn remove_at(&self, id: DriverId, now: Instant) -> Result<DriverView, GeoError> {
        let now_ms = self.clock.ms(now);
        self.with_driver_mut(id, |shard, _, l| {
            let slot = shard.cells[l.cell as usize].slots[l.slot as usize];
            let view = self.view(shard, &slot);
            let live = self.is_live(shard, &slot, now_ms);
            shard.free(l.cell, l.slot);
            shard.ttl.remove(&id.get());
            self.dir.remove(id.get());
            live.then_some(view)
        })
        .flatten()
        .ok_or(GeoError::UnknownDriver(id))
    }

    /// [`GeoIndex::remove_at`] at `Instant::now()`.
    ///
    /// # Errors
    /// As [`GeoIndex::remove_at`].
    pub fn remove(&self, id: DriverId) -> Result<DriverView, GeoError> {
        self.remove_at(id, Instant::now())
    }

    /// Drivers stored, including expired ones not yet purged. O(shards).
    pub fn len(&self) -> usize {
        (0..self.shards.len())
            .map(|s| self.read_shard(s).occupied)
            .sum()
    }

    /// Whether no driver is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drivers visible at `now`. O(n).
    pub fn live_len_at(&self, now: Instant) -> usize {
        let now_ms = self.clock.ms(now);
        (0..self.shards.len())
            .map(|s| {
                let shard = self.read_shard(s);
                shard
                    .cells
                    .iter()
                    .flat_map(|c| &c.slots)
                    .filter(|slot| !slot.is_free() && self.is_live(&shard, slot, now_ms))
                    .count()
            })
            .sum()
    }

    /// Calls `f` for every driver visible at `now`, shard by shard. The
    /// drivers are copied out under the shard's read lock a few hundred at
    /// a time and `f` runs after the lock is released, so `f` may call
    /// into the index and writers proceed while a scan is under way.
    ///
    /// Like Redis's `SCAN`, this is not a snapshot
    /// ([`GeoIndex::snapshot_at`] is one): a driver present throughout is
    /// seen at least once; one that moves meanwhile may be seen twice or
    /// not at all, and one whose crowded cell is split into sub-cells
    /// meanwhile (which moves the drivers it held) may be seen twice.
    pub fn for_each_at(&self, now: Instant, mut f: impl FnMut(&DriverView)) {
        let now_ms = self.clock.ms(now);
        let mut buf = Vec::new();
        for s in 0..self.shards.len() {
            self.visit_shard(
                s,
                now_ms,
                &mut buf,
                |shard, slot| Some(self.view(shard, slot)),
                |v| f(&v),
            );
        }
    }

    /// Calls `f(id, position, attributes)` for every driver visible at `now`
    /// that passes `filter`: [`GeoIndex::for_each_at`] without building
    /// views (no `Instant` arithmetic per driver), for whole-fleet scans such
    /// as surge supply counts. Shard by shard, with the guarantees of
    /// [`GeoIndex::for_each_at`]; `f` runs with no lock held.
    pub fn for_each_matching_at(
        &self,
        now: Instant,
        filter: &crate::Filter,
        mut f: impl FnMut(DriverId, LonLat, Attrs),
    ) {
        let now_ms = self.clock.ms(now);
        let mut buf = Vec::new();
        for s in 0..self.shards.len() {
            self.visit_matching(s, now_ms, filter, &mut buf, &mut f);
        }
    }

    /// The number of spatial shards (`IndexConfig::shards`): the parts
    /// [`GeoIndex::for_each_matching_in_shard_at`] visits.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// [`GeoIndex::for_each_matching_at`] for the drivers of one shard
    /// (`0..shard_count()`), with the same guarantees: every driver is in
    /// one shard, so threads that take the shards between them scan the
    /// whole index, each shard under its own read lock.
    ///
    /// ```
    /// use std::time::Instant;
    /// use dispatchkit_geo_index::{Attrs, DriverId, Filter, GeoIndex, LonLat};
    ///
    /// let (index, now) = (GeoIndex::new(), Instant::now());
    /// for i in 1..=100 {
    ///     let p = LonLat::new(-0.1 + i as f64 * 1e-3, 51.5)?;
    ///     index.upsert_at(DriverId::new(i)?, p, Attrs::default(), now)?;
    /// }
    /// let mut seen = 0;
    /// for s in 0..index.shard_count() {
    ///     index.for_each_matching_in_shard_at(s, now, &Filter::default(), |_, _, _| seen += 1)?;
    /// }
    /// assert_eq!(seen, 100);
    /// assert!(index.for_each_matching_in_shard_at(256, now, &Filter::default(), |_, _, _| ()).is_err());
    /// # Ok::<(), dispatchkit_geo_index::GeoError>(())
    /// ```
    ///
    /// # Errors
    /// [`GeoError::UnknownShard`] when `shard` is not below
    /// [`GeoIndex::shard_count`] (nothing is visited).
    pub fn for_each_matching_in_shard_at(
        &self,
        shard: usize,
        now: Instant,
        filter: &crate::Filter,
        mut f: impl FnMut(DriverId, LonLat, Attrs),
    ) -> Result<(), GeoError> {
        if shard >= self.shards.len() {
            return Err(GeoError::UnknownShard {
                shard,
                shards: self.shards.len(),
            });
        }
        let now_ms = self.clock.ms(now);
        self.visit_matching(shard, now_ms, filter, &mut Vec::new(), &mut f);
        Ok(())
    }

    /// Copies shard `s`'s matching drivers into `buf`, a batch at a time
    /// under its read lock, and hands each batch to `f` with no lock held.
    fn visit_matching(
        &self,
        s: usize,
        now_ms: u64,
        filter: &crate::Filter,
        buf: &mut Vec<(u64, LonLat, u32)>,
        f: &mut impl FnMut(DriverId, LonLat, Attrs),
    ) {
        self.visit_shard(
            s,
            now_ms,
            buf,
            |_, slot| {
                let attrs = slot.attrs();
                filter
                    .matches_packed(attrs)
                    .then(|| (slot.id, slot.pos(), attrs))
            },
            |(id, pos, attrs)| f(DriverId::stored(id), pos, Attrs::unpack(attrs)),
        );
    }

    /// The shard walk of the whole-index scans: what `pick` makes of each
    /// visible driver of shard `s` is collected in `buf` under the read
    /// lock until about [`SCAN_BATCH`] are held (whole cells at a time),
    /// then the lock is released while `f` consumes them, and the walk
    /// resumes at the next cell (cells are never removed from a shard's
    /// arena, so the position stays meaningful). The batch stays in the
    /// cache, where one copy of a whole shard would not.
    fn visit_shard<T>(
        &self,
        s: usize,
        now_ms: u64,
        buf: &mut Vec<T>,
        mut pick: impl FnMut(&Shard, &Slot) -> Option<T>,
        mut f: impl FnMut(T),
    ) {
        let mut next = 0;
        loop {
            let more = {
                let shard = self.read_shard(s);
                while next < shard.cells.len() && buf.len() < SCAN_BATCH {
                    for slot in &shard.cells[next].slots {
                        if !slot.is_free() && self.is_live(&shard, slot, now_ms) {
                            buf.extend(pick(&shard, slot));
                        }
                    }
                    next += 1;
                }
                next < shard.cells.len()
            };
            buf.drain(..).for_each(&mut f);
            if !more {
                return;
            }
        }
    }
}

/// Drivers a whole-index scan copies out per read-lock hold.
const SCAN_BATCH: usize = 512;
