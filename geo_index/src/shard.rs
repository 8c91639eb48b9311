//! One lock shard: the cells of the tiles hashed onto it, each cell an
//! array of 24-byte slots (from the shard's slab) scanned contiguously by
//! searches.

use std::collections::HashMap;
use std::sync::Arc;

use foldhash::fast::RandomState;

use crate::LonLat;
use crate::attrs::ATTR_BITS;
use crate::fence::ShardFences;
use crate::grid::key_xy;
use crate::prefetch::{Level, prefetch_to, prefetch_whole};
use crate::slab::{Pool, Slab, Slots};

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

/// Sub-cells per side of a split cell, as a shift: a crowded cell is
/// split into 2 × 2 sub-cells.
const SUB_SHIFT: u32 = 1;
/// Sub-cells of a split cell.
pub(crate) const SUBS: usize = 1 << (2 * SUB_SHIFT);
/// `Cell::sub` of a cell that is not a sub-cell.
pub(crate) const NO_SUB: u8 = u8::MAX;
/// `Cell::subs` of a cell not split.
pub(crate) const NO_SUBS: u32 = u32::MAX;
/// Flags a cell index value that names the first sub-cell of a split cell
/// (arena indices are below 2^26).
pub(crate) const SPLIT: u32 = 1 << 31;

/// The sub-cell (`0..SUBS`) of a stored position within its cell: row-major,
/// south-west first.
#[inline]
pub(crate) fn sub_of(lon_q: u32, lat_q: u32) -> u8 {
    let side = (1u32 << SUB_SHIFT) - 1;
    let sx = (lon_q >> (16 - SUB_SHIFT)) & side;
    let sy = (lat_q >> (17 - SUB_SHIFT)) & side;
    ((sy << SUB_SHIFT) | sx) as u8
}

/// Column and row offsets of sub-cell `sub` within its cell, and the
/// fraction of a cell's side a sub-cell spans.
#[inline]
pub(crate) fn sub_xy(sub: u8) -> (f64, f64, f64) {
    let side = (1u32 << SUB_SHIFT) - 1;
    let frac = 1.0 / f64::from(1u32 << SUB_SHIFT);
    let sx = u32::from(sub) & side;
    let sy = u32::from(sub) >> SUB_SHIFT;
    (f64::from(sx) * frac, f64::from(sy) * frac, frac)
}

/// The drivers of one grid cell, or of one sub-cell of a split cell.
///
/// A split cell holds no slots: its drivers live in its [`SUBS`] sub-cells,
/// consecutive cells of the same arena with the same key, each linked to
/// its place in the split cell (their headers share two or three cache
/// lines), and the cell index maps
/// the key to the first of them, flagged [`SPLIT`], so that a search
/// reaches them without reading the split cell's header. A cell stays
/// split once split.
///
/// 32 bytes aligned to 32, so two a cache line and none across two: the
/// batch path prefetches a header by its first byte, which must fetch all
/// of it (at the allocator's 16-byte alignment up to half of an arena's
/// headers straddled two lines, and the prefetch missed their keys). The
/// key and the link (what `holds` reads) share one aligned word.
#[derive(Debug, Default)]
#[repr(C, align(32))]
pub(crate) struct Cell {
    pub slots: Slots,
    pub key: u32,
    /// [`SUB_TAG`]` | sub` for sub-cell `sub` of its key; the arena index
    /// of the first sub-cell for a split cell; [`NO_LINK`] otherwise.
    link: u32,
    free_head: u32,
    pub free: u32,
}

// The sizes the docs above state.
const _: () =
    assert!(size_of::<Slot>() == 24 && size_of::<Cell>() == 32 && align_of::<Cell>() == 32);

/// `Cell::link` of a cell neither split nor a sub-cell.
const NO_LINK: u32 = u32::MAX;
/// Tags `Cell::link` of a sub-cell (arena indices are below 2^26).
const SUB_TAG: u32 = 1 << 30;

impl Cell {
    fn new(key: u32, link: u32) -> Self {
        Cell {
            slots: Slots::default(),
            key,
            link,
            free_head: NO_FREE,
            free: 0,
        }
    }

    pub(crate) fn live(&self) -> usize {
        self.slots.len() - self.free as usize
    }

    /// Which sub-cell of its key this is, or [`NO_SUB`].
    #[inline]
    pub(crate) fn sub(&self) -> u8 {
        if self.link != NO_LINK && self.link & SUB_TAG != 0 {
            self.link as u8
        } else {
            NO_SUB
        }
    }

    /// The arena index of the first sub-cell of a split cell, else
    /// [`NO_SUBS`].
    #[inline]
    fn subs(&self) -> u32 {
        if self.link & SUB_TAG == 0 {
            self.link
        } else {
            NO_SUBS
        }
    }

    /// Whether a driver at (`lon_q`, `lat_q`), whose cell key is `key`,
    /// belongs in this cell (a split cell holds none).
    #[inline]
    pub(crate) fn holds(&self, key: u32, lon_q: u32, lat_q: u32) -> bool {
        self.key == key
            && (self.link == NO_LINK || self.link == SUB_TAG | u32::from(sub_of(lon_q, lat_q)))
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
    pub(crate) fn prefetch(&self, key: u32, level: Level) {
        if !self.words.is_empty() {
            prefetch_to(self.words.as_ptr().wrapping_add(self.home(key)), level);
        }
    }

    /// Replaces the value of a present `key`.
    fn set(&mut self, key: u32, index: u32) {
        let mut i = self.home(key);
        while (self.words[i] >> 32) as u32 != key {
            i = if i + 1 == self.words.len() { 0 } else { i + 1 };
        }
        self.words[i] = (u64::from(key) << 32) | u64::from(index);
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
#[derive(Debug)]
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
    /// Cells split into sub-cells.
    pub split_cells: u64,
    /// The allocator of the cells' slot arrays.
    slab: Slab,
    /// A cell is split when an insert finds it holding this many drivers
    /// (`usize::MAX`: never); see [`IndexConfig::split_cells_at`].
    ///
    /// [`IndexConfig::split_cells_at`]: crate::IndexConfig::split_cells_at
    pub split_at: usize,
}

impl Shard {
    /// An empty shard whose cells split at `split_at` drivers
    /// (`usize::MAX`: never), its slot arrays carved from `pool`. The only
    /// constructor: a derived default would split every cell at its first
    /// driver.
    pub(crate) fn new(split_at: usize, pool: Arc<Pool>) -> Self {
        Shard {
            cells: Vec::new(),
            cell_of: CellIndex::default(),
            ttl: HashMap::default(),
            occupied: 0,
            sweep_cursor: 0,
            sweep_credit: 0,
            fences: ShardFences::default(),
            split_cells: 0,
            split_at,
            slab: Slab::new(pool),
        }
    }

    /// Arena index of the cell with `key`, creating it if needed.
    fn cell_index(&mut self, key: u32) -> u32 {
        if let Some(i) = self.cell_of.get(key) {
            return i;
        }
        let i = self.push_cell(key, NO_LINK);
        self.cell_of.insert(key, i);
        i
    }

    fn push_cell(&mut self, key: u32, link: u32) -> u32 {
        let i = self.cells.len() as u32;
        assert!(i < MAX_CELLS, "more than 2^26 cells in one shard");
        self.cells.push(Cell::new(key, link));
        i
    }

    /// Stores `slot` (of shard `s`) in the cell its position belongs to,
    /// creating the cell if needed and splitting it first if it is crowded
    /// (then `moved(id, loc)` is called for every driver the split moved;
    /// the caller publishes those locations, as it publishes the one
    /// returned, before releasing the shard's lock).
    #[inline]
    pub(crate) fn insert_at(
        &mut self,
        s: usize,
        key: u32,
        slot: Slot,
        moved: &mut impl FnMut(u64, Loc),
    ) -> Loc {
        let mut v = self.cell_index(key);
        if v & SPLIT == 0 && self.cells[v as usize].live() >= self.split_at {
            v = self.split(s, v, moved);
        }
        let c = Self::leaf(v, sub_of(slot.lon_q, slot.lat_q));
        let i = self.insert(c, slot);
        Loc {
            shard: s as u32,
            cell: c,
            slot: i,
        }
    }

    /// Splits cell `c` into [`SUBS`] sub-cells, moves its drivers there and
    /// returns the key's new cell index value.
    #[cold]
    #[inline(never)]
    fn split(&mut self, s: usize, c: u32, moved: &mut impl FnMut(u64, Loc)) -> u32 {
        let key = self.cells[c as usize].key;
        let first = self.cells.len() as u32;
        for i in 0..SUBS {
            self.push_cell(key, SUB_TAG | i as u32);
        }
        let cell = &mut self.cells[c as usize];
        let slots = std::mem::take(&mut cell.slots);
        cell.free = 0;
        cell.free_head = NO_FREE;
        cell.link = first;
        self.cell_of.set(key, SPLIT | first);
        self.split_cells += 1;
        for &slot in slots.iter().filter(|s| !s.is_free()) {
            let to = first + u32::from(sub_of(slot.lon_q, slot.lat_q));
            // `insert` counts the slot as newly occupied; it already was.
            let i = self.insert(to, slot);
            self.occupied -= 1;
            moved(
                slot.id,
                Loc {
                    shard: s as u32,
                    cell: to,
                    slot: i,
                },
            );
        }
        self.slab.release(slots);
        SPLIT | first
    }

    /// The cell a cell index value `v` names for a driver in sub-cell
    /// `sub`: the cell, or that sub-cell of a split one.
    #[inline]
    pub(crate) fn leaf(v: u32, sub: u8) -> u32 {
        if v & SPLIT != 0 {
            (v & !SPLIT) + u32::from(sub)
        } else {
            v
        }
    }

    /// The cells a cell index value `v` names: the cell, or the sub-cells
    /// of a split one (`cells` ascending).
    #[inline]
    pub(crate) fn leaves(v: u32) -> std::ops::Range<u32> {
        if v & SPLIT != 0 {
            let first = v & !SPLIT;
            first..first + SUBS as u32
        } else {
            v..v + 1
        }
    }

    /// The slots of the cells a cell index value `v` names.
    #[inline]
    pub(crate) fn leaf_slots(&self, v: u32) -> impl Iterator<Item = &[Slot]> {
        Self::leaves(v).filter_map(|c| self.cells.get(c as usize).map(|cell| &cell.slots[..]))
    }

    /// Prefetches the header of the cell with `key` (of its sub-cells if
    /// it is split), if it exists, and returns its cell index value (the
    /// batch path's second pass over drivers that change cell, and the ring
    /// walk's; the index word was prefetched in the first).
    #[inline]
    pub(crate) fn prefetch_cell(&self, key: u32, level: Level) -> Option<u32> {
        let v = self.cell_of.get(key)?;
        let cells = Self::leaves(v);
        let first = self.cells.as_ptr().wrapping_add(cells.start as usize);
        let bytes = cells.len() * size_of::<Cell>();
        for off in (0..bytes).step_by(64).chain([bytes - 1]) {
            prefetch_to(first.cast::<u8>().wrapping_add(off), level);
        }
        Some(v)
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
            prefetch_whole(cell.slots.as_ptr().wrapping_add(i), Level::L2);
        }
    }

    /// Moves the driver in slot `from` to a slot of the cell with `key`
    /// (created if needed), holding `next`; returns its new location, which
    /// the caller publishes in the directory (with those of the drivers a
    /// split moved: see [`insert_at`](Self::insert_at)).
    pub(crate) fn relocate(
        &mut self,
        s: usize,
        from: Loc,
        key: u32,
        next: Slot,
        moved: &mut impl FnMut(u64, Loc),
    ) -> Loc {
        self.free(from.cell, from.slot);
        self.insert_at(s, key, next, moved)
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
            self.slab.push(&mut cell.slots, slot);
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
        let mut kept = self.slab.with_capacity(cell.live());
        for &s in cell.slots.iter().filter(|s| !s.is_free()) {
            let new_index = kept.len() as u32;
            self.slab.push(&mut kept, s);
            moved(s.id, new_index);
        }
        let old = std::mem::replace(&mut cell.slots, kept);
        self.slab.release(old);
        cell.free = 0;
        cell.free_head = NO_FREE;
    }

    /// Checks the shard's invariants; panics with a description if one is
    /// broken. For tests.
    pub(crate) fn check_invariants(&self, shard: usize, mask: usize) {
        let mut occupied = 0;
        assert_eq!(
            self.cells.iter().filter(|c| c.sub() == NO_SUB).count(),
            self.cell_of.len(),
            "cell index out of step"
        );
        for (ci, cell) in self.cells.iter().enumerate() {
            let v = self.cell_of.get(cell.key).expect("cell key not indexed");
            if cell.sub() == NO_SUB && cell.subs() == NO_SUBS {
                assert_eq!(v, ci as u32, "cell index points elsewhere");
            } else if cell.sub() == NO_SUB {
                assert_eq!(v, SPLIT | cell.subs(), "split cell's index value");
                assert!(cell.slots.is_empty(), "split cell holds slots");
            } else {
                assert_eq!(
                    Self::leaves(v).nth(usize::from(cell.sub())),
                    Some(ci as u32),
                    "sub-cell not reached"
                );
                assert_eq!(cell.subs(), NO_SUBS, "split sub-cell");
            }
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
                assert!(
                    cell.sub() == NO_SUB || cell.sub() == sub_of(s.lon_q, s.lat_q),
                    "slot in the wrong sub-cell"
                );
                assert_eq!(
                    s.custom_ttl(),
                    self.ttl.contains_key(&s.id),
                    "TTL flag out of step"
                );
            }
        }
        assert_eq!(occupied, self.occupied, "occupied count out of step");
        self.slab.check(self.cells.iter().map(|c| &c.slots));
        assert!(self.ttl.len() <= occupied);
    }

    /// The shard's slab and its arrays, for [`crate::slab::check_pool`].
    pub(crate) fn slab_and_arrays(&self) -> (&Slab, Vec<&Slots>) {
        (&self.slab, self.cells.iter().map(|c| &c.slots).collect())
    }
}
