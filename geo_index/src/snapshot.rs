//! Snapshots: every live driver with its state relative to the snapshot
//! time, to rebuild an identical index (the seed's replay from DynamoDB
//! after a Redis failure).

use std::time::{Duration, Instant};

use crate::index::ttl_ms;
use crate::{Attrs, DriverId, DriverUpdate, GeoError, GeoIndex, IndexConfig, LonLat};

/// One driver of a [`Snapshot`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SnapshotDriver {
    /// Id.
    pub id: DriverId,
    /// Position.
    pub pos: LonLat,
    /// Attributes.
    pub attrs: Attrs,
    /// Milliseconds between the driver's last update and the snapshot time
    /// (negative if the update carried a later time).
    pub age_ms: i64,
    /// Per-driver TTL in ms, if it has one.
    pub ttl_ms: Option<u64>,
}

/// Every driver visible at the snapshot time, sorted by id.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Snapshot {
    /// The index's default TTL in ms.
    pub default_ttl_ms: u64,
    /// The drivers.
    pub drivers: Vec<SnapshotDriver>,
}

impl GeoIndex {
    /// A snapshot of every driver visible at `now`. O(n log n).
    pub fn snapshot_at(&self, now: Instant) -> Snapshot {
        let now_ms = self.clock.ms(now) as i64;
        let mut drivers = Vec::new();
        for s in 0..self.shards.len() {
            let shard = self.read_shard(s);
            for cell in &shard.cells {
                for slot in cell.slots.iter().filter(|s| !s.is_free()) {
                    if self.is_live(&shard, slot, now_ms as u64) {
                        drivers.push(SnapshotDriver {
                            id: DriverId::stored(slot.id),
                            pos: slot.pos(),
                            attrs: Attrs::unpack(slot.attrs()),
                            age_ms: now_ms - slot.updated_ms() as i64,
                            ttl_ms: slot.custom_ttl().then(|| self.ttl_of(&shard, slot)),
                        });
                    }
                }
            }
        }
        drivers.sort_unstable_by_key(|d| d.id);
        Snapshot {
            default_ttl_ms: self.default_ttl_ms,
            drivers,
        }
    }

    /// Rebuilds an index from a snapshot taken at an earlier time, as of
    /// `now`: every driver gets its snapshot age back (`updated = now −
    /// age`), so expiry continues where it was. `config.default_ttl` is
    /// replaced by the snapshot's. The snapshot is checked whole before
    /// anything is built: a malformed one restores nothing.
    ///
    /// # Errors
    /// [`GeoError::InvalidConfig`] / [`GeoError::InvalidValue`] for a bad
    /// configuration or TTL in the snapshot; [`GeoError::InvalidSnapshot`]
    /// for a driver listed twice, an age at or beyond its TTL (a snapshot
    /// holds live drivers only) or further in the future than
    /// `config.max_future_skew`; [`GeoError::TimeOutOfRange`] when an age
    /// puts the update before `now`'s clock can go.
    pub fn restore_at(
        snapshot: &Snapshot,
        config: IndexConfig,
        now: Instant,
    ) -> Result<GeoIndex, GeoError> {
        let config = IndexConfig {
            default_ttl: Duration::from_millis(snapshot.default_ttl_ms),
            ..config
        };
        let updates = snapshot_updates(snapshot, config.max_future_skew, now)?;
        let index = GeoIndex::with_config(config)?;
        for chunk in updates.chunks(4096) {
            let report = index.upsert_batch_at(chunk, now);
            if let Some((_, e)) = report.rejected.into_iter().next() {
                return Err(e);
            }
        }
        Ok(index)
    }
}

/// The updates that rebuild `snapshot` as of `now`, checked whole: every
/// driver once, its TTL valid, its age below its TTL and not further in
/// the future than `max_future_skew`.
pub(crate) fn snapshot_updates(
    snapshot: &Snapshot,
    max_future_skew: Duration,
    now: Instant,
) -> Result<Vec<DriverUpdate>, GeoError> {
    let default_ttl = ttl_ms(Duration::from_millis(snapshot.default_ttl_ms))?;
    let max_skew_ms = i64::try_from(max_future_skew.as_millis()).unwrap_or(i64::MAX);
    let mut seen = std::collections::HashSet::with_capacity(snapshot.drivers.len());
    let mut updates = Vec::with_capacity(snapshot.drivers.len());
    for (row, d) in snapshot.drivers.iter().enumerate() {
        let bad = |reason| GeoError::InvalidSnapshot {
            row,
            id: d.id.get(),
            reason,
        };
        if !seen.insert(d.id) {
            return Err(bad("the driver is listed twice"));
        }
        let ttl = d
            .ttl_ms
            .map(|t| ttl_ms(Duration::from_millis(t)))
            .transpose()?;
        let ttl = ttl.unwrap_or(default_ttl);
        if d.age_ms >= 0 && d.age_ms.unsigned_abs() >= ttl {
            return Err(bad(
                "age_ms is not below the driver's TTL: a snapshot holds only live drivers",
            ));
        }
        if d.age_ms < -max_skew_ms {
            return Err(bad(
                "age_ms puts the update further in the future than max_future_skew",
            ));
        }
        let age = Duration::from_millis(d.age_ms.unsigned_abs());
        let at = if d.age_ms >= 0 {
            now.checked_sub(age)
        } else {
            now.checked_add(age)
        };
        let at = at.ok_or(GeoError::TimeOutOfRange {
            offset_ms: i128::from(d.age_ms),
            reason: "the snapshot age puts the update outside the range of Instant",
        })?;
        let mut u = DriverUpdate::new(d.id, d.pos, at).with_attrs(d.attrs);
        u.ttl = d.ttl_ms.map(Duration::from_millis);
        updates.push(u);
    }
    Ok(updates)
}
