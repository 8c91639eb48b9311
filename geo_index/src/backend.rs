//! [`DriverIndex`]: what a matcher, a surge engine or an application needs
//! from a driver index, whatever holds it — the in-process [`GeoIndex`]
//! today, a Redis-backed index (Redis or Redis Cluster) next — so code is
//! written once and the backend is picked at construction. Every operation
//! here is one a remote backend can do atomically; arbitrary closures over
//! a driver's state are not part of it (`GeoIndex::update_attrs_at` stays
//! an in-process extra).

use std::time::Instant;

use crate::{
    Attrs, BatchReport, DriverId, DriverUpdate, DriverView, GeoError, GeoIndex, Hit, LonLat,
    Search, Status, Unit, Upsert,
};

/// A moving-driver index with `GEOSEARCH` semantics.
pub trait DriverIndex: Send + Sync {
    /// Inserts or moves `id` to `pos` with `attrs`, as of `now`.
    ///
    /// # Errors
    /// As [`GeoIndex::upsert_at`].
    fn upsert_at(
        &self,
        id: DriverId,
        pos: LonLat,
        attrs: Attrs,
        now: Instant,
    ) -> Result<Upsert, GeoError>;

    /// Applies a batch of updates (each at its own time; older than the
    /// stored state → stale); the report counts what happened.
    ///
    /// # Errors
    /// Per update in [`BatchReport::rejected`]; a backend that could not be
    /// reached at all returns an error.
    fn upsert_batch_at(
        &self,
        updates: &[DriverUpdate],
        now: Instant,
    ) -> Result<BatchReport, GeoError>;

    /// Removes `id`, returning its last state.
    ///
    /// # Errors
    /// [`GeoError::UnknownDriver`] when absent or expired.
    fn remove_at(&self, id: DriverId, now: Instant) -> Result<DriverView, GeoError>;

    /// The live state of `id`.
    ///
    /// # Errors
    /// [`GeoError::UnknownDriver`] when absent or expired.
    fn get_at(&self, id: DriverId, now: Instant) -> Result<DriverView, GeoError>;

    /// The position of `id` (`GEOPOS`).
    ///
    /// # Errors
    /// As [`get_at`](Self::get_at).
    fn position_at(&self, id: DriverId, now: Instant) -> Result<LonLat, GeoError> {
        self.get_at(id, now).map(|v| v.pos)
    }

    /// The distance between two drivers in `unit` (`GEODIST`).
    ///
    /// # Errors
    /// As [`get_at`](Self::get_at), for either driver.
    fn distance_at(
        &self,
        a: DriverId,
        b: DriverId,
        unit: Unit,
        now: Instant,
    ) -> Result<f64, GeoError>;

    /// `GEOSEARCH` over the live drivers.
    ///
    /// # Errors
    /// As [`GeoIndex::search_at`].
    fn search_at(&self, q: &Search, now: Instant) -> Result<Vec<Hit>, GeoError>;

    /// [`search_at`](Self::search_at) skipping the drivers in `exclude`
    /// inside the search, so `COUNT` counts only the others (a matcher's
    /// "not offered yet").
    ///
    /// # Errors
    /// As [`search_at`](Self::search_at).
    fn search_excluding_at(
        &self,
        q: &Search,
        exclude: &[DriverId],
        now: Instant,
    ) -> Result<Vec<Hit>, GeoError>;

    /// Sets `id`'s status to `new` if it is `expected`, atomically; `Ok(false)`
    /// when it was not (the claim was lost).
    ///
    /// # Errors
    /// [`GeoError::UnknownDriver`] when absent or expired.
    fn compare_and_set_status_at(
        &self,
        id: DriverId,
        expected: Status,
        new: Status,
        now: Instant,
    ) -> Result<bool, GeoError>;

    /// Adds `load` orders to `id` if its status is `eligible` and the new
    /// load stays within `max`, setting the status to `full` when it
    /// reaches `max`, atomically; `Ok(false)` when it could not (a dasher's
    /// claim of a batch).
    ///
    /// # Errors
    /// [`GeoError::UnknownDriver`] when absent or expired;
    /// [`GeoError::InvalidAttribute`] for a `max` above the load field's 7.
    fn claim_load_at(
        &self,
        id: DriverId,
        eligible: Status,
        load: u8,
        max: u8,
        full: Status,
        now: Instant,
    ) -> Result<bool, GeoError>;

    /// Takes `load` orders off `id` (down to 0) and, if its status is
    /// `full`, sets it to `available`, atomically (a dasher finished a
    /// batch): the inverse of [`claim_load_at`](Self::claim_load_at).
    ///
    /// # Errors
    /// [`GeoError::UnknownDriver`] when absent or expired.
    fn release_load_at(
        &self,
        id: DriverId,
        load: u8,
        full: Status,
        available: Status,
        now: Instant,
    ) -> Result<(), GeoError>;
}

impl DriverIndex for GeoIndex {
    fn upsert_at(
        &self,
        id: DriverId,
        pos: LonLat,
        attrs: Attrs,
        now: Instant,
    ) -> Result<Upsert, GeoError> {
        GeoIndex::upsert_at(self, id, pos, attrs, now)
    }

    fn upsert_batch_at(
        &self,
        updates: &[DriverUpdate],
        now: Instant,
    ) -> Result<BatchReport, GeoError> {
        Ok(GeoIndex::upsert_batch_at(self, updates, now))
    }

    fn remove_at(&self, id: DriverId, now: Instant) -> Result<DriverView, GeoError> {
        GeoIndex::remove_at(self, id, now)
    }

    fn get_at(&self, id: DriverId, now: Instant) -> Result<DriverView, GeoError> {
        GeoIndex::get_at(self, id, now)
    }

    fn distance_at(
        &self,
        a: DriverId,
        b: DriverId,
        unit: Unit,
        now: Instant,
    ) -> Result<f64, GeoError> {
        GeoIndex::distance_at(self, a, b, unit, now)
    }

    fn search_at(&self, q: &Search, now: Instant) -> Result<Vec<Hit>, GeoError> {
        GeoIndex::search_at(self, q, now)
    }

    fn search_excluding_at(
        &self,
        q: &Search,
        exclude: &[DriverId],
        now: Instant,
    ) -> Result<Vec<Hit>, GeoError> {
        if exclude.is_empty() {
            GeoIndex::search_at(self, q, now)
        } else {
            self.search_where_at(q, now, |v| !exclude.contains(&v.id))
        }
    }

    fn compare_and_set_status_at(
        &self,
        id: DriverId,
        expected: Status,
        new: Status,
        now: Instant,
    ) -> Result<bool, GeoError> {
        GeoIndex::compare_and_set_status_at(self, id, expected, new, now)
    }

    fn claim_load_at(
        &self,
        id: DriverId,
        eligible: Status,
        load: u8,
        max: u8,
        full: Status,
        now: Instant,
    ) -> Result<bool, GeoError> {
        if max > Attrs::MAX_LOAD {
            return Err(GeoError::InvalidAttribute {
                what: "load",
                value: f64::from(max),
                reason: "a driver carries at most 7 orders",
            });
        }
        let mut won = false;
        self.update_attrs_at(
            id,
            |a| {
                won = a.status == eligible && a.load.saturating_add(load) <= max;
                if won {
                    a.load += load;
                    if a.load >= max {
                        a.status = full;
                    }
                }
            },
            now,
        )?;
        Ok(won)
    }

    fn release_load_at(
        &self,
        id: DriverId,
        load: u8,
        full: Status,
        available: Status,
        now: Instant,
    ) -> Result<(), GeoError> {
        self.update_attrs_at(
            id,
            |a| {
                a.load = a.load.saturating_sub(load);
                if a.status == full {
                    a.status = available;
                }
            },
            now,
        )
        .map(drop)
    }
}

/// An index shared through an `Arc` (as servers hold it) is an index.
impl<I: DriverIndex + ?Sized> DriverIndex for std::sync::Arc<I> {
    fn upsert_at(
        &self,
        id: DriverId,
        pos: LonLat,
        attrs: Attrs,
        now: Instant,
    ) -> Result<Upsert, GeoError> {
        (**self).upsert_at(id, pos, attrs, now)
    }

    fn upsert_batch_at(
        &self,
        updates: &[DriverUpdate],
        now: Instant,
    ) -> Result<BatchReport, GeoError> {
        (**self).upsert_batch_at(updates, now)
    }

    fn remove_at(&self, id: DriverId, now: Instant) -> Result<DriverView, GeoError> {
        (**self).remove_at(id, now)
    }

    fn get_at(&self, id: DriverId, now: Instant) -> Result<DriverView, GeoError> {
        (**self).get_at(id, now)
    }

    fn distance_at(
        &self,
        a: DriverId,
        b: DriverId,
        unit: Unit,
        now: Instant,
    ) -> Result<f64, GeoError> {
        (**self).distance_at(a, b, unit, now)
    }

    fn search_at(&self, q: &Search, now: Instant) -> Result<Vec<Hit>, GeoError> {
        (**self).search_at(q, now)
    }

    fn search_excluding_at(
        &self,
        q: &Search,
        exclude: &[DriverId],
        now: Instant,
    ) -> Result<Vec<Hit>, GeoError> {
        (**self).search_excluding_at(q, exclude, now)
    }

    fn compare_and_set_status_at(
        &self,
        id: DriverId,
        expected: Status,
        new: Status,
        now: Instant,
    ) -> Result<bool, GeoError> {
        (**self).compare_and_set_status_at(id, expected, new, now)
    }

    fn claim_load_at(
        &self,
        id: DriverId,
        eligible: Status,
        load: u8,
        max: u8,
        full: Status,
        now: Instant,
    ) -> Result<bool, GeoError> {
        (**self).claim_load_at(id, eligible, load, max, full, now)
    }

    fn release_load_at(
        &self,
        id: DriverId,
        load: u8,
        full: Status,
        available: Status,
        now: Instant,
    ) -> Result<(), GeoError> {
        (**self).release_load_at(id, load, full, available, now)
    }
}
