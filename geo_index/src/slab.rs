//! The cells' slot arrays: blocks carved from chunks that an index's
//! shards share, the large chunks advised for huge pages.
//!
//! A 1M-driver index holds 24 MB of slots and a search or a batch update
//! reads them at random, so with 4 KB pages most of those reads also miss
//! the TLB and pay a page walk. From the global allocator the arrays are
//! small blocks scattered over its heap, which the library cannot advise;
//! here they live in the index's chunks (64 KB doubling to 2 MB, then
//! 2 MB each, aligned to 2 MB and advised `MADV_HUGEPAGE` before first
//! use), so that one TLB entry covers 2 MB of slots. The `geo_update` and
//! `geo_search_5km_count10` benches measure it.
//!
//! A shard takes pages from its index's [`Pool`] (under the pool's mutex,
//! once per page: 64 slots doubling to [`PAGE`]) and carves them into
//! blocks of size classes ([`CLASSES`], ×1.33 to ×1.5 apart, as the arrays
//! grew before), each class with its own free list. A shard keeps up to
//! [`LOCAL`] free blocks of a class and gives the pool half of them when it
//! holds more; the pool's lists serve every shard, so a block one shard's
//! cells gave up (drivers leave for another shard's tiles, a cell is
//! compacted) is reused wherever a cell of its class grows, before a new
//! page is taken. An array larger than the largest class is an allocation
//! of its own. Memory returns to the system when the index is dropped.

use std::alloc::{Layout, alloc, dealloc, handle_alloc_error};
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::shard::Slot;

/// Block sizes in slots.
const CLASSES: [u32; 13] = [4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256];
/// The largest block a page holds: larger arrays are allocations of their
/// own.
const LARGEST: u32 = CLASSES[CLASSES.len() - 1];
/// A shard's first page, in slots; each next page is twice the last, up to
/// [`PAGE`].
const FIRST_PAGE: u32 = 64;
/// The largest page a shard takes, in slots (24 KB).
const PAGE: u32 = 1024;
/// Free blocks of a class a shard keeps before it gives the pool half.
const LOCAL: usize = 16;
/// The first chunk, in bytes; each next one is twice the last, up to
/// [`HUGE`].
const FIRST_CHUNK: usize = 64 << 10;
/// A huge page, the size and alignment of every chunk from the sixth on.
const HUGE: usize = 2 << 20;

/// The class of arrays of up to `n` slots, if a page holds them.
#[inline]
fn class_for(n: u32) -> Option<usize> {
    CLASSES.iter().position(|&c| c >= n)
}

/// A cell's slots: an array of `len` slots in a block of `cap`, from its
/// shard's [`Slab`] (or an allocation of its own beyond the largest
/// class). Derefs to the slice of its slots.
///
/// A `Slots` never leaves the shard whose slab gave its block: its memory
/// belongs to the index's pool, which the slab keeps alive, and it is
/// grown and released only through that slab (`release` checks the pool
/// in debug builds). Cells are never moved between shards or indexes.
pub(crate) struct Slots {
    ptr: NonNull<Slot>,
    len: u32,
    cap: u32,
}

// SAFETY: a `Slots` owns its block (as a `Box<[Slot]>` would): nothing
// else reads or writes it, and `Slot` is plain data.
#[allow(unsafe_code, reason = "Slots owns its block like a Box")]
unsafe impl Send for Slots {}
// SAFETY: shared references only read the block, as with a `Box<[Slot]>`.
#[allow(unsafe_code, reason = "Slots owns its block like a Box")]
unsafe impl Sync for Slots {}

impl Default for Slots {
    fn default() -> Self {
        Slots {
            ptr: NonNull::dangling(),
            len: 0,
            cap: 0,
        }
    }
}

impl Slots {
    /// An array of its own (beyond the largest class) for `cap` slots.
    fn own(cap: u32) -> Self {
        let layout = Layout::array::<Slot>(cap as usize).expect("below 2^26 slots");
        // SAFETY: `cap` > LARGEST, so the layout's size is not zero.
        #[allow(unsafe_code, reason = "an allocation of its own; see SAFETY")]
        let p = unsafe { alloc(layout) };
        let Some(ptr) = NonNull::new(p.cast::<Slot>()) else {
            handle_alloc_error(layout)
        };
        Slots { ptr, len: 0, cap }
    }

    /// Appends `slot`; the block must have room.
    #[inline]
    fn push_within(&mut self, slot: Slot) {
        assert!(self.len < self.cap, "push beyond the block");
        // SAFETY: `len < cap` and the block is valid for `cap` slots.
        #[allow(unsafe_code, reason = "a write inside the block; see SAFETY")]
        unsafe {
            self.ptr.as_ptr().add(self.len as usize).write(slot);
        }
        self.len += 1;
    }
}

impl Deref for Slots {
    type Target = [Slot];

    #[inline]
    fn deref(&self) -> &[Slot] {
        // SAFETY: the block is valid for `cap` ≥ `len` slots while the pool
        // lives (or is dangling with `len` 0), the first `len` are written,
        // and `&self` keeps `&mut` access away.
        #[allow(unsafe_code, reason = "the slice of the block; see SAFETY")]
        unsafe {
            std::slice::from_raw_parts(self.ptr.as_ptr(), self.len as usize)
        }
    }
}

impl DerefMut for Slots {
    #[inline]
    fn deref_mut(&mut self) -> &mut [Slot] {
        // SAFETY: as in `deref`; `&mut self` makes the access unique.
        #[allow(unsafe_code, reason = "the slice of the block; see SAFETY")]
        unsafe {
            std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len as usize)
        }
    }
}

impl<'a> IntoIterator for &'a Slots {
    type Item = &'a Slot;
    type IntoIter = std::slice::Iter<'a, Slot>;

    #[inline]
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl Drop for Slots {
    fn drop(&mut self) {
        // A block from a page belongs to the pool; only an array of its
        // own is freed here.
        if self.cap > LARGEST {
            let layout = Layout::array::<Slot>(self.cap as usize).expect("allocated with it");
            // SAFETY: allocated by `Slots::own` with this layout, and
            // dropped once.
            #[allow(unsafe_code, reason = "frees what Slots::own allocated")]
            unsafe {
                dealloc(self.ptr.as_ptr().cast(), layout);
            }
        }
    }
}

impl std::fmt::Debug for Slots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// The chunks of one index, from which its shards take pages.
pub(crate) struct Pool {
    state: Mutex<PoolState>,
}

struct PoolState {
    /// Every chunk with its layout, the last one being carved.
    chunks: Vec<(NonNull<Slot>, Layout)>,
    /// Slots of the last chunk handed out.
    used: usize,
    /// Free blocks of each class that slabs gave back.
    free: [Vec<NonNull<Slot>>; CLASSES.len()],
    /// Slots handed out as pages (for the tests' accounting).
    paged: u64,
}

// SAFETY: the chunks are plain memory owned by the pool; the pointers
// (pages, and the free blocks slabs gave back) are only handed out, to the
// slabs, which own what they take, under the mutex.
#[allow(unsafe_code, reason = "the pool owns its chunks")]
unsafe impl Send for PoolState {}

impl Pool {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Pool {
            state: Mutex::new(PoolState {
                chunks: Vec::new(),
                used: 0,
                free: Default::default(),
                paged: 0,
            }),
        })
    }

    /// A page of `n` slots (at most [`PAGE`]).
    fn page(&self, n: u32) -> NonNull<Slot> {
        let n = n as usize;
        let mut st = self.state.lock();
        let room = st
            .chunks
            .last()
            .map_or(0, |(_, l)| l.size() / size_of::<Slot>() - st.used);
        if room < n {
            let bytes = (FIRST_CHUNK << st.chunks.len().min(5)).min(HUGE);
            let align = if bytes == HUGE { HUGE } else { 64 };
            let layout = Layout::from_size_align(bytes, align).expect("a valid chunk layout");
            // SAFETY: the layout's size is not zero.
            #[allow(unsafe_code, reason = "a chunk; see SAFETY")]
            let p = unsafe { alloc(layout) };
            let Some(p) = NonNull::new(p) else {
                handle_alloc_error(layout)
            };
            if bytes == HUGE {
                crate::prefetch::advise_huge_range(p.as_ptr(), bytes);
            }
            st.chunks.push((p.cast(), layout));
            st.used = 0;
        }
        let base = st.chunks.last().expect("a chunk").0;
        // SAFETY: `used + n` slots fit in the last chunk (checked above; a
        // chunk of 64 KB or more holds a page of 24 KB).
        #[allow(unsafe_code, reason = "an offset inside the chunk; see SAFETY")]
        let p = unsafe { base.add(st.used) };
        st.used += n;
        st.paged += n as u64;
        p
    }

    /// A free block of class `k` some slab gave back, if any.
    fn take(&self, k: usize) -> Option<NonNull<Slot>> {
        self.state.lock().free[k].pop()
    }

    /// Takes free blocks of class `k` from a slab.
    fn give(&self, k: usize, blocks: impl Iterator<Item = NonNull<Slot>>) {
        self.state.lock().free[k].extend(blocks);
    }

    /// Whether every block (address, slots) lies inside one of the pool's
    /// chunks.
    fn contains(&self, blocks: &[(usize, usize)]) -> bool {
        let st = self.state.lock();
        blocks.iter().all(|&(start, n)| {
            let end = start + n * size_of::<Slot>();
            st.chunks.iter().any(|&(c, l)| {
                let c = c.as_ptr() as usize;
                c <= start && end <= c + l.size()
            })
        })
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        for &(p, layout) in &self.state.get_mut().chunks {
            // SAFETY: allocated in `page` with this layout, freed once; the
            // pool drops after every slab that took pages from it.
            #[allow(unsafe_code, reason = "frees the chunks page allocated")]
            unsafe {
                dealloc(p.as_ptr().cast(), layout);
            }
        }
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.state.lock();
        f.debug_struct("Pool")
            .field("chunks", &st.chunks.len())
            .field("used", &st.used)
            .field("free", &st.free.iter().map(Vec::len).collect::<Vec<_>>())
            .finish()
    }
}

/// One shard's allocator of slot arrays.
pub(crate) struct Slab {
    pool: Arc<Pool>,
    /// The unused rest of the current page: `left` slots from `page`.
    page: NonNull<Slot>,
    left: u32,
    /// The next page's size.
    next_page: u32,
    /// Free blocks of each class (up to [`LOCAL`] after a release).
    free: [Vec<NonNull<Slot>>; CLASSES.len()],
    /// Slots the slab holds from the pool (pages and free blocks taken,
    /// less the free blocks given back), and of those, the ones too few to
    /// carve into a block (fewer than the smallest class at a page's end).
    taken: u64,
    lost: u64,
}

// SAFETY: the slab owns its page's rest and its free blocks (memory of
// the pool it keeps alive); it reads and writes them only through
// `&mut self`.
#[allow(unsafe_code, reason = "the slab owns its free blocks")]
unsafe impl Send for Slab {}
// SAFETY: `&Slab` gives no access to the blocks.
#[allow(unsafe_code, reason = "the slab owns its free blocks")]
unsafe impl Sync for Slab {}

impl Slab {
    pub(crate) fn new(pool: Arc<Pool>) -> Self {
        Slab {
            pool,
            page: NonNull::dangling(),
            left: 0,
            next_page: FIRST_PAGE,
            free: Default::default(),
            taken: 0,
            lost: 0,
        }
    }

    /// An empty array with room for `n` slots.
    pub(crate) fn with_capacity(&mut self, n: usize) -> Slots {
        let n = u32::try_from(n).expect("below 2^26 slots");
        if n == 0 {
            return Slots::default();
        }
        match class_for(n) {
            Some(k) => Slots {
                ptr: self.block(k),
                len: 0,
                cap: CLASSES[k],
            },
            None => Slots::own(n),
        }
    }

    /// A block of class `k`: a free one of the slab's, one the pool was
    /// given, or the next of the page.
    #[inline]
    fn block(&mut self, k: usize) -> NonNull<Slot> {
        if let Some(p) = self.free[k].pop() {
            return p;
        }
        let c = CLASSES[k];
        if let Some(p) = self.pool.take(k) {
            self.taken += u64::from(c);
            return p;
        }
        if self.left < c {
            self.carve_rest();
            let n = self.next_page.max(c);
            self.page = self.pool.page(n);
            self.left = n;
            self.taken += u64::from(n);
            self.next_page = (self.next_page * 2).min(PAGE);
        }
        self.cut(c)
    }

    /// The first `c` slots of the page's rest (which holds them).
    #[inline]
    fn cut(&mut self, c: u32) -> NonNull<Slot> {
        debug_assert!(self.left >= c);
        let p = self.page;
        #[allow(unsafe_code, reason = "an offset inside the page; see SAFETY")]
        // SAFETY: the rest of the page holds `left` ≥ `c` slots, so the
        // result is inside the page or one past its end.
        let rest = unsafe { p.add(c as usize) };
        self.page = rest;
        self.left -= c;
        p
    }

    /// Carves the rest of the page into free blocks, largest first.
    fn carve_rest(&mut self) {
        while let Some(k) = CLASSES.iter().rposition(|&c| c <= self.left) {
            let p = self.cut(CLASSES[k]);
            self.free[k].push(p);
        }
        self.lost += u64::from(self.left);
        self.left = 0;
    }

    /// Appends `slot` to `s`, moving `s` to a larger block first if its
    /// block is full.
    #[inline]
    pub(crate) fn push(&mut self, s: &mut Slots, slot: Slot) {
        if s.len == s.cap {
            self.grow(s);
        }
        s.push_within(slot);
    }

    /// Moves `s` to a block of the next class (by half again beyond the
    /// largest class).
    #[inline(never)]
    fn grow(&mut self, s: &mut Slots) {
        let len = s.len as usize;
        let want = if s.cap < LARGEST {
            len + 1
        } else {
            len + len / 2
        };
        let mut new = self.with_capacity(want);
        // SAFETY: `new`'s block is another block than `s`'s, with room for
        // `want` > `len` slots; `s`'s first `len` slots are written.
        #[allow(unsafe_code, reason = "copies between two blocks; see SAFETY")]
        unsafe {
            std::ptr::copy_nonoverlapping(s.ptr.as_ptr(), new.ptr.as_ptr(), len);
        }
        new.len = s.len;
        let old = std::mem::replace(s, new);
        self.release(old);
    }

    /// Gives `s`'s block back: to its class's free list, or (an array of
    /// its own) to the global allocator.
    pub(crate) fn release(&mut self, s: Slots) {
        debug_assert!(
            s.cap > LARGEST
                || s.cap == 0
                || self
                    .pool
                    .contains(&[(s.ptr.as_ptr() as usize, s.cap as usize)]),
            "a block released into a slab of another pool"
        );
        if let Some(k) = CLASSES.iter().position(|&c| c == s.cap) {
            self.free[k].push(s.ptr);
            if self.free[k].len() > LOCAL {
                let half = self.free[k].len() / 2;
                self.taken -= u64::from(s.cap) * half as u64;
                self.pool.give(k, self.free[k].drain(..half));
            }
        }
        drop(s);
    }

    /// Every block the slab holds (the arrays of `live`, its free lists and
    /// the page's rest) as (address, slots).
    fn blocks<'a>(&self, live: impl Iterator<Item = &'a Slots>) -> Vec<(usize, usize)> {
        let mut blocks: Vec<(usize, usize)> = live
            .filter(|s| s.cap > 0 && s.cap <= LARGEST)
            .map(|s| (s.ptr.as_ptr() as usize, s.cap as usize))
            .collect();
        blocks.extend(listed(&self.free));
        if self.left > 0 {
            blocks.push((self.page.as_ptr() as usize, self.left as usize));
        }
        blocks
    }

    /// Checks that the blocks of `live` (the shard's arrays), the free
    /// lists and the page's rest account for every slot taken from the
    /// pool, lie inside its chunks and do not overlap. Panics otherwise.
    /// For tests.
    pub(crate) fn check<'a>(&self, live: impl Iterator<Item = &'a Slots>) {
        let live: Vec<&Slots> = live.collect();
        for s in live.iter().filter(|s| s.cap > 0) {
            assert!(s.len <= s.cap, "array longer than its block");
            assert!(
                s.cap > LARGEST || CLASSES.contains(&s.cap),
                "block of no class"
            );
        }
        let blocks = self.blocks(live.into_iter());
        let held: u64 = blocks.iter().map(|&(_, n)| n as u64).sum();
        assert_eq!(held + self.lost, self.taken, "slab slots unaccounted for");
        assert!(
            self.pool.contains(&blocks),
            "a block outside the pool's chunks"
        );
        assert_disjoint(blocks);
    }
}

/// Checks the slabs of one pool together: every slot the pool handed out
/// as pages is held once, by one slab (its arrays, free lists, page rest
/// or lost page ends) or by the pool's free lists, and no two blocks
/// overlap. `slabs` pairs each slab with its shard's arrays. Panics
/// otherwise. For tests.
pub(crate) fn check_pool<'a>(slabs: impl Iterator<Item = (&'a Slab, Vec<&'a Slots>)>) {
    let mut pool: Option<&Arc<Pool>> = None;
    let (mut blocks, mut held) = (Vec::new(), 0u64);
    for (slab, live) in slabs {
        let p = *pool.get_or_insert(&slab.pool);
        assert!(Arc::ptr_eq(p, &slab.pool), "slabs of two pools");
        blocks.extend(slab.blocks(live.into_iter()));
        held += slab.taken;
    }
    let Some(pool) = pool else { return };
    let st = pool.state.lock();
    let pooled: Vec<(usize, usize)> = listed(&st.free).collect();
    held += pooled.iter().map(|&(_, n)| n as u64).sum::<u64>();
    blocks.extend(pooled);
    assert_eq!(held, st.paged, "pool slots unaccounted for");
    drop(st);
    assert_disjoint(blocks);
}

/// The blocks of free lists by class, as (address, slots).
fn listed(free: &[Vec<NonNull<Slot>>; CLASSES.len()]) -> impl Iterator<Item = (usize, usize)> + '_ {
    free.iter().enumerate().flat_map(|(k, list)| {
        list.iter()
            .map(move |p| (p.as_ptr() as usize, CLASSES[k] as usize))
    })
}

/// Panics if two of `blocks` (address, slots) overlap.
fn assert_disjoint(mut blocks: Vec<(usize, usize)>) {
    blocks.sort_unstable();
    for w in blocks.windows(2) {
        assert!(
            w[0].0 + w[0].1 * size_of::<Slot>() <= w[1].0,
            "two blocks overlap"
        );
    }
}

impl std::fmt::Debug for Slab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slab")
            .field("taken", &self.taken)
            .field("left", &self.left)
            .field("lost", &self.lost)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[path = "slab_tests.rs"]
mod tests;
