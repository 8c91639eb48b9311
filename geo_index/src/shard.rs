//! One lock shard: the cells of the tiles hashed onto it, each cell a
//! vector of 24-byte slots scanned contiguously by searches.

use std::collections::HashMap;

use foldhash::fast::RandomState;

use crate::LonLat;
use crate::attrs::ATTR_BITS;
use crate::fence::ShardFences;
use crate::grid::key_xy;
use crate::prefetch::prefetch;

/// Marks a free slot (so `u64::MAX` is not a valid driver id).
pub(crate) const TOMB: u64 = u64::MAX;
const NO_FREE: u32 = u32::MAX;

const TIME_BITS: u32 = 40;
/// Largest storable update time: 2^40 ms ≈ 34.8 years after the epoch.
pub(crate) const TIME_MASK: u64 = (1 << TIME_BITS) - 1;
const ATTR_MASK: u64 = (1 << ATTR_BITS) - 1;
const CUSTOM_TTL: u64 = 1 << 63;

/// One driver: 24 bytes.
///
/// `meta` packs the update time in ms since the index epoch (40 bits), the
/// attributes (23 bits) and a flag for a per-driver TTL (1 bit; the TTL
/// itself lives in the shard's sparse `ttl` map). A free slot has
/// `id == TOMB` and chains the free list through `lon_q`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot {
    pub id: u64,
    pub lon_q: u32,
    pub lat_q: u32,
    pub meta: u64,
}

impl Slot {
    #[inline]
    pub(crate) fn new(id: u64, pos: LonLat, updated_ms: u64, attrs: u32, custom_ttl: bool) -> Self {
        let (lon_q, lat_q) = pos.raw();
        Slot {
            id,
            lon_q,
            lat_q,
            meta: pack_meta(updated_ms, attrs, custom_ttl),
        }
    }

    #[inline]
    pub(crate) fn is_free(&self) -> bool {
        self.id == TOMB
    }

    #[inline]
    pub(crate) fn pos(&self) -> LonLat {
        LonLat::from_raw(self.lon_q, self.lat_q)
    }

    #[inline]
    pub(crate) fn updated_ms(&self) -> u64 {
        self.meta & TIME_MASK
    }

    #[inline]
    pub(crate) fn attrs(&self) -> u32 {
        ((self.meta >> TIME_BITS) & ATTR_MASK) as u32
    }

    #[inline]
    pub(crate) fn custom_ttl(&self) -> bool {
        self.meta & CUSTOM_TTL != 0
    }

    #[inline]
    pub(crate) fn set_attrs(&mut self, attrs: u32) {
        self.meta = pack_meta(self.updated_ms(), attrs, self.custom_ttl());
    }

    /// The total order that decides between two updates of one driver: the
    /// later update time wins; at equal times the larger position (in
    /// `LonLat` order), then the larger packed attributes (load, rating,
    /// vehicle, status) win, so applying a log in any order converges.
    #[inline]
    pub(crate) fn version(&self) -> (u64, u32, u32, u32) {
        (self.updated_ms(), self.lon_q, self.lat_q, self.attrs())
    }
}

#[inline]
pub(crate) fn pack_meta(updated_ms: u64, attrs: u32, custom_ttl: bool) -> u64 {
    debug_assert!(updated_ms <= TIME_MASK);
    debug_assert!(u64::from(attrs) <= ATTR_MASK);
    updated_ms | (u64::from(attrs) << TIME_BITS) | if custom_ttl { CUSTOM_TTL } else { 0 }
}

/// The drivers of one grid cell.
#[derive(Debug, Default)]
pub(crate) struct Cell {
    pub key: u32,
    pub slots: Vec<Slot>,
    free_head: u32,
    pub free: u32,
}

impl Cell {
    fn new(key: u32) -> Self {
        Cell {
            key,
            slots: Vec::new(),
            free_head: NO_FREE,
            free: 0,
        }
    }

    pub(crate) fn live(&self) -> usize {
        self.slots.len() - self.free as usize
    }
}

/// Where a driver is: shard (12 bits), cell arena index (26 bits), slot
/// index (26 bits), packed in the directory's `AtomicU64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Loc {
    pub shard: u32,
    pub cell: u32,
    pub slot: u32,
}

pub(crate) const MAX_SHARDS: usize = 1 << 12;
pub(crate) const MAX_CELLS: u32 = 1 << 26;
pub(crate) const MAX_SLOTS: usize = 1 << 26;

impl Loc {
    #[inline]
    pub(crate) fn pack(self) -> u64 {
        (u64::from(self.shard) << 52) | (u64::from(self.cell) << 26) | u64::from(self.slot)
    }

    #[inline]
    pub(crate) fn unpack(v: u64) -> Self {
        Loc {
            shard: (v >> 52) as u32,
            cell: ((v >> 26) & (u64::from(MAX_CELLS) - 1)) as u32,
            slot: (v & (MAX_SLOTS as u64 - 1)) as u32,
        }
    }
}

/// Cell key → arena index: open addressing with linear probing over
/// packed `key << 32 | index` words, so a lookup is one cache line (a
/// `HashMap` reads a control byte and a bucket on two). Cells are never
/// removed, so there is no deletion. Cell keys are below 2^31: `u64::MAX`
/// marks an empty word.
#[derive(Debug, Default)]
pub(crate) struct CellIndex {
    words: Vec<u64>,
    len: usize,
}

impl CellIndex {
    const EMPTY: u64 = u64::MAX;

    #[inline]
    fn home(&self, key: u32) -> usize {
        let h = u64::from(key).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        ((u128::from(h) * self.words.len() as u128) >> 64) as usize
    }

    /// The arena index of `key`.
    #[inline]
    pub(crate) fn get(&self, key: u32) -> Option<u32> {
        if self.words.is_empty() {
            return None;
        }
        let mut i = self.home(key);
        loop {
            let w = self.words[i];
            if w == Self::EMPTY {
                return None;
            }
            if (w >> 32) as u32 == key {
                return Some(w as u32);
            }
            i = if i + 1 == self.words.len() { 0 } else { i + 1 };
        }
    }

    /// Prefetches the home word of `key` so that a later
    /// [`get`](Self::get) hits the cache (walks prefetch a whole ring of
    /// cells first so that the misses overlap).
    #[inline]
    pub(crate) fn prefetch(&self, key: u32) {
        if !self.words.is_empty() {
            prefetch(self.words.as_ptr().wrapping_add(self.home(key)));
        }
    }

    fn insert(&mut self, key: u32, index: u32) {
        if (self.len + 1) * 4 > self.words.len() * 3 {
            let cap = (self.words.len() * 2).max(16);
            let old = std::mem::replace(&mut self.words, vec![Self::EMPTY; cap]);
            self.len = 0;
            for w in old.into_iter().filter(|&w| w != Self::EMPTY) {
                self.insert((w >> 32) as u32, w as u32);
            }
        }
        let mut i = self.home(key);
        while self.words[i] != Self::EMPTY {
            i = if i + 1 == self.words.len() { 0 } else { i + 1 };
        }
        self.words[i] = (u64::from(key) << 32) | u64::from(index);
        self.len += 1;
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

/// One lock shard.
#[derive(Debug, Default)]
pub(crate) struct Shard {
    /// Cell arena: indices are stable (a cell is never removed, only
    /// emptied and compacted), so a `Loc` stays valid while its slot does.
    pub cells: Vec<Cell>,
    /// Cell key → arena index.
    pub cell_of: CellIndex,
    /// Per-driver TTL overrides in ms, for slots with the custom-TTL flag.
    pub ttl: HashMap<u64, u64, RandomState>,
    /// Occupied slots (live or expired-but-unpurged).
    pub occupied: usize,
    /// Next cell the amortised sweep looks at.
    pub sweep_cursor: usize,
    /// Updates received since the batch path last swept a cell here.
    pub sweep_credit: usize,
    /// Geofences whose bounding box touches this shard's tiles.
    pub fences: ShardFences,
}

impl Shard {
    /// Arena index of the cell with `key`, creating it if needed.
    pub(crate) fn cell_index(&mut self, key: u32) -> u32 {
        if let Some(i) = self.cell_of.get(key) {
            return i;
        }
        let i = self.cells.len() as u32;
        assert!(i < MAX_CELLS, "more than 2^26 cells in one shard");
        self.cells.push(Cell::new(key));
        self.cell_of.insert(key, i);
        i
    }

    /// Prefetches the header of the cell with `key`, if it exists, and
    /// returns its arena index (the batch path's second pass over drivers
    /// that change cell; the index word was prefetched in the first).
    #[inline]
    pub(crate) fn prefetch_cell(&self, key: u32) -> Option<u32> {
        let c = self.cell_of.get(key)?;
        prefetch(self.cells.as_ptr().wrapping_add(c as usize));
        Some(c)
    }

    /// Prefetches the slot that [`insert`](Self::insert) into cell `c` will
    /// write next (the free-list head, or the line of the last slot when
    /// the cell has no free slot: the next one is usually on it), so that
    /// a batch's inserts miss in parallel.
    #[inline]
    pub(crate) fn prefetch_vacancy(&self, c: u32) {
        if let Some(cell) = self.cells.get(c as usize) {
            let i = if cell.free_head != NO_FREE {
                cell.free_head as usize
            } else {
                cell.slots.len().saturating_sub(1)
            };
            prefetch(cell.slots.as_ptr().wrapping_add(i));
        }
    }

    /// Moves the driver in slot `from` to a slot of the cell with `key`
    /// (created if needed), holding `next`; returns its new location, which
    /// the caller publishes in the directory.
    pub(crate) fn relocate(&mut self, s: usize, from: Loc, key: u32, next: Slot) -> Loc {
        self.free(from.cell, from.slot);
        let cell = self.cell_index(key);
        let slot = self.insert(cell, next);
        Loc {
            shard: s as u32,
            cell,
            slot,
        }
    }

    /// Stores `slot` in cell `c`, reusing a free slot if there is one;
    /// returns its index.
    pub(crate) fn insert(&mut self, c: u32, slot: Slot) -> u32 {
        let cell = &mut self.cells[c as usize];
        self.occupied += 1;
        if cell.free_head != NO_FREE {
            let i = cell.free_head;
            cell.free_head = cell.slots[i as usize].lon_q;
            cell.free -= 1;
            cell.slots[i as usize] = slot;
            i
        } else {
            let i = cell.slots.len();
            assert!(i < MAX_SLOTS, "more than 2^26 drivers in one cell");
            if cell.slots.len() == cell.slots.capacity() {
                // Grow by half instead of doubling: slots are most of the
                // index's memory.
                cell.slots.reserve_exact((i / 2).max(4));
            }
            cell.slots.push(slot);
            i as u32
        }
    }

    /// Frees slot `i` of cell `c` and returns what it held.
    pub(crate) fn free(&mut self, c: u32, i: u32) -> Slot {
        let cell = &mut self.cells[c as usize];
        let old = cell.slots[i as usize];
        debug_assert!(!old.is_free());
        cell.slots[i as usize] = Slot {
            id: TOMB,
            lon_q: cell.free_head,
            lat_q: 0,
            meta: 0,
        };
        cell.free_head = i;
        cell.free += 1;
        self.occupied -= 1;
        old
    }

    /// The occupied slot at (`c`, `i`) if it holds driver `id`.
    #[inline]
    pub(crate) fn slot_of(&self, c: u32, i: u32, id: u64) -> Option<&Slot> {
        self.cells
            .get(c as usize)
            .and_then(|cell| cell.slots.get(i as usize))
            .filter(|s| s.id == id)
    }

    #[inline]
    pub(crate) fn slot_mut(&mut self, c: u32, i: u32) -> &mut Slot {
        &mut self.cells[c as usize].slots[i as usize]
    }

    /// Rebuilds cell `c` without free slots when at least half are free;
    /// calls `moved(id, new_index)` for every slot that changed index.
    pub(crate) fn compact(&mut self, c: u32, mut moved: impl FnMut(u64, u32)) {
        let cell = &mut self.cells[c as usize];
        if cell.free == 0 || (cell.free as usize) * 2 < cell.slots.len() {
            return;
        }
        let mut kept = Vec::with_capacity(cell.live());
        for s in cell.slots.iter().filter(|s| !s.is_free()) {
            let new_index = kept.len() as u32;
            kept.push(*s);
            moved(s.id, new_index);
        }
        cell.slots = kept;
        cell.free = 0;
        cell.free_head = NO_FREE;
    }

    /// Checks the shard's invariants; panics with a description if one is
    /// broken. For tests.
    pub(crate) fn check_invariants(&self, shard: usize, mask: usize) {
        let mut occupied = 0;
        assert_eq!(
            self.cells.len(),
            self.cell_of.len(),
            "cell index out of step"
        );
        for (ci, cell) in self.cells.iter().enumerate() {
            assert_eq!(self.cell_of.get(cell.key), Some(ci as u32));
            let (cx, cy) = key_xy(cell.key);
            assert_eq!(
                crate::grid::shard_of(cx, cy, mask),
                shard,
                "cell in the wrong shard"
            );
            let mut free = 0;
            let mut f = cell.free_head;
            while f != NO_FREE {
                assert!(
                    cell.slots[f as usize].is_free(),
                    "free list reaches an occupied slot"
                );
                free += 1;
                assert!(free <= cell.slots.len(), "free list has a cycle");
                f = cell.slots[f as usize].lon_q;
            }
            assert_eq!(free, cell.free as usize, "free count out of step");
            for s in cell.slots.iter().filter(|s| !s.is_free()) {
                occupied += 1;
                assert_eq!(
                    crate::grid::cell_xy(s.pos()),
                    (cx, cy),
                    "slot in the wrong cell"
                );
                assert_eq!(
                    s.custom_ttl(),
                    self.ttl.contains_key(&s.id),
                    "TTL flag out of step"
                );
            }
        }
        assert_eq!(occupied, self.occupied, "occupied count out of step");
        assert!(self.ttl.len() <= occupied);
    }
}
