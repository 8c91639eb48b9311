//! The geofence registry: which fence shapes exist (one lock) and in which
//! tiles' shards they are indexed, replaced under that one lock so that two
//! writers of one id cannot leave tiles behind.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use foldhash::fast::RandomState;
use parking_lot::{RwLock, RwLockWriteGuard};

use crate::fence::FenceShape;
use crate::grid::shard_of;
use crate::{Fence, GeoError, GeoIndex};

/// Registered fences by id.
pub(crate) type Registry = RwLock<HashMap<u64, Arc<FenceShape>, RandomState>>;

impl GeoIndex {
    /// The fence registry, write-locked (counted as contention when taken).
    fn write_fences(
        &self,
    ) -> RwLockWriteGuard<'_, HashMap<u64, std::sync::Arc<FenceShape>, RandomState>> {
        self.fences.try_write().unwrap_or_else(|| {
            self.contended.fetch_add(1, Relaxed);
            self.fences.write()
        })
    }

    // ---- geofences ------------------------------------------------------

    /// Registers a geofence under `id` (replacing one with the same id).
    /// Updates that take a driver into or out of it report a
    /// [`FenceEvent`](crate::FenceEvent).
    ///
    /// # Errors
    /// [`GeoError::InvalidValue`] for a bad circle radius,
    /// [`GeoError::InvalidFence`] / [`GeoError::InvalidCoordinate`] for a
    /// bad polygon.
    pub fn add_fence(&self, id: u64, fence: Fence) -> Result<(), GeoError> {
        let shape = std::sync::Arc::new(FenceShape::new(id, fence)?);
        // One registry lock around the replacement: two adds with one id
        // cannot interleave their tile updates.
        let mut registry = self.write_fences();
        if let Some(old) = registry.remove(&id) {
            self.unregister_tiles(&old, id);
        }
        for tile in shape.tiles() {
            self.write_shard(self.tile_shard(tile))
                .fences
                .add(tile, shape.clone());
        }
        registry.insert(id, shape);
        Ok(())
    }

    /// Unregisters a geofence.
    ///
    /// # Errors
    /// [`GeoError::UnknownFence`] when no fence has this id.
    pub fn remove_fence(&self, id: u64) -> Result<(), GeoError> {
        let mut registry = self.write_fences();
        let shape = registry.remove(&id).ok_or(GeoError::UnknownFence(id))?;
        self.unregister_tiles(&shape, id);
        Ok(())
    }

    /// The lock shard of a fence tile.
    fn tile_shard(&self, tile: u32) -> usize {
        let (tx, ty) = (tile & 1023, tile >> 10);
        shard_of(tx << 6, ty << 6, self.mask)
    }

    /// Removes fence `id`'s shape from its tiles (registry lock held).
    fn unregister_tiles(&self, shape: &FenceShape, id: u64) {
        for tile in shape.tiles() {
            self.write_shard(self.tile_shard(tile))
                .fences
                .remove(tile, id);
        }
    }
}
