//! Expiry: drivers not updated within their TTL are invisible at once and
//! reclaimed by a full purge or by the amortised sweep the batch path runs
//! in every shard it locks.

use std::time::Instant;

use crate::GeoIndex;
use crate::shard::{Loc, Shard};

impl GeoIndex {
    // ---- expiry ---------------------------------------------------------

    /// Frees every driver expired at `now`; returns how many. O(n).
    pub fn purge_expired_at(&self, now: Instant) -> usize {
        let now_ms = self.clock.ms(now);
        (0..self.shards.len())
            .map(|s| {
                let mut shard = self.write_shard(s);
                let cells = shard.cells.len();
                self.sweep(&mut shard, s, now_ms, cells, &mut Vec::new())
            })
            .sum()
    }

    /// Sweeps up to `budget` cells of a locked shard from its cursor: frees
    /// expired drivers and compacts cells that are mostly free (`moved` is
    /// scratch for the new locations, published in one directory pass).
    pub(crate) fn sweep(
        &self,
        shard: &mut Shard,
        s: usize,
        now_ms: u64,
        budget: usize,
        moved: &mut Vec<(u64, Loc)>,
    ) -> usize {
        debug_assert!(moved.is_empty());
        let n = shard.cells.len();
        let mut purged = 0;
        for _ in 0..budget.min(n) {
            let c = shard.sweep_cursor % n;
            shard.sweep_cursor = (c + 1) % n;
            for i in 0..shard.cells[c].slots.len() {
                let slot = shard.cells[c].slots[i];
                if !slot.is_free() && !self.is_live(shard, &slot, now_ms) {
                    shard.free(c as u32, i as u32);
                    shard.ttl.remove(&slot.id);
                    self.dir.remove(slot.id);
                    purged += 1;
                }
            }
            shard.compact(c as u32, |id, i| {
                let loc = Loc {
                    shard: s as u32,
                    cell: c as u32,
                    slot: i,
                };
                moved.push((id, loc));
            });
            self.dir.set_many(moved);
            moved.clear();
        }
        purged
    }
}
