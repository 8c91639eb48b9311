//! Memory hints (with `slab.rs`, the places this crate uses `unsafe`): a
//! software prefetch, and huge-page advice for the directory and the slot
//! chunks.
//!
//! The batch path and the k-nearest ring walk know, some items ahead,
//! which cache lines they will read. Loading them (`black_box(*p)`)
//! overlaps the misses too, but a load that misses holds its place in the
//! reorder buffer until the line arrives, so only as many misses overlap
//! as the loop's instructions fit behind it. A prefetch retires at once, so
//! the misses of the next items overlap the work on this one. The
//! `geo_update` bench measures it (its figures live in the README's
//! performance table, not here).

/// Which cache level a prefetch fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    /// L1 (`PREFETCHT0`): for lines read soon after, as the ring walk's
    /// next pass reads them.
    L1,
    /// L2 (`PREFETCHT1`): for the batch path, whose prefetches run items
    /// ahead of their reads and were faster into L2 in alternating passes
    /// of the `geo_update` bench's stream at 1M and 10M drivers (the ring
    /// walk's were slower). The likely reason: a prefetch into L1 holds
    /// one of the core's few L1 miss buffers until its line arrives, the
    /// buffers the loop's own loads also need; one into L2 leaves them
    /// free, and its line then costs an L2 hit.
    L2,
}

/// Asks the CPU to bring the line holding `p` into `level`. `p` may
/// dangle or be out of bounds: nothing is read through it.
#[inline(always)]
#[allow(unsafe_code, reason = "PREFETCHT0 / PREFETCHT1; see the SAFETY note")]
pub(crate) fn prefetch_to<T>(p: *const T, level: Level) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 and PREFETCHT1 are hints with no architecturally
    // visible effect: they never fault, even for an invalid address, and
    // read nothing the program can observe; SSE, which the intrinsics
    // need, is part of the x86_64 baseline.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _MM_HINT_T1, _mm_prefetch};
        match level {
            Level::L1 => _mm_prefetch::<_MM_HINT_T0>(p.cast()),
            Level::L2 => _mm_prefetch::<_MM_HINT_T1>(p.cast()),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, level);
}

/// [`prefetch_to`] L1.
#[inline(always)]
pub(crate) fn prefetch<T>(p: *const T) {
    prefetch_to(p, Level::L1);
}

/// [`prefetch_to`] of every line the value at `p` spans: two when it
/// straddles a line boundary (a 24-byte slot does at two of every eight
/// offsets, and the paths that prefetch one read or write all of it).
#[inline(always)]
pub(crate) fn prefetch_whole<T>(p: *const T, level: Level) {
    prefetch_to(p, level);
    prefetch_to(
        p.cast::<u8>()
            .wrapping_add(size_of::<T>().saturating_sub(1)),
        level,
    );
}

/// [`prefetch`] of the cache lines `lines` (counted from the one holding
/// the first element) of `v`'s memory, each line once (a stride of
/// elements would prefetch some lines twice), stopping at its last line.
#[inline]
pub(crate) fn prefetch_lines<T>(v: &[T], lines: std::ops::Range<usize>) {
    let first = v.as_ptr().cast::<u8>();
    // Line addresses from the line of the first byte to that of the last
    // (none for an empty slice).
    let skew = first as usize % 64;
    let base = first.wrapping_sub(skew);
    for line in lines.start..lines.end.min(lines_spanned(skew, size_of_val(v))) {
        prefetch(base.wrapping_add(line * 64));
    }
}

/// How many 64-byte lines `bytes` bytes starting `skew` bytes into a line
/// touch.
#[inline]
fn lines_spanned(skew: usize, bytes: usize) -> usize {
    if bytes == 0 {
        0
    } else {
        (skew + bytes - 1) / 64 + 1
    }
}

/// Asks the kernel to back `v`'s buffer with transparent huge pages, before
/// anything is written to it (pages are allocated when first touched).
///
/// The directory is one table of 16 bytes a driver (18 MB at 1M drivers,
/// 180 MB at 10M) probed at random: with 4 KB pages nearly every lookup of
/// a batch also misses the TLB, and the page walk adds a dependent miss. A
/// hint only: a kernel with THP disabled, or a buffer smaller than one
/// 2 MB page, is left as it is. The `geo_update` bench measures it.
pub(crate) fn advise_huge_pages<T>(v: &mut Vec<T>) {
    // The `&mut` borrow keeps every other use of the buffer away meanwhile.
    advise_huge_range(
        v.as_mut_ptr().cast(),
        v.capacity() * std::mem::size_of::<T>(),
    );
}

/// [`advise_huge_pages`] for the `len` bytes at `start` (the slab's
/// chunks, before first use): the whole 2 MB pages inside them are
/// advised. Whatever the range, the advice cannot break memory safety: it
/// changes how the kernel backs pages, never their contents.
#[allow(unsafe_code, reason = "madvise(MADV_HUGEPAGE); see the SAFETY note")]
pub(crate) fn advise_huge_range(start: *mut u8, len: usize) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 1 << 21;
        let start = start as usize;
        let end = start.saturating_add(len);
        let first = start.next_multiple_of(HUGE);
        let len = end.saturating_sub(first) / HUGE * HUGE;
        // Miri runs the slab's tests without the system call.
        if len > 0 && !cfg!(miri) {
            // SAFETY: MADV_HUGEPAGE changes no content and no mapping the
            // program sees, whatever the range (callers pass their own
            // allocations): it only lets the kernel back the range with
            // huge pages. The result is ignored: a kernel that refuses the
            // advice (or a range it does not map) leaves it as it was.
            unsafe {
                libc::madvise(first as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (start, len);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_spanned_counts_every_line_touched_once() {
        for skew in 0..64 {
            for bytes in 0..300 {
                // The naive twin: the distinct lines of every byte.
                let mut lines: Vec<usize> = (skew..skew + bytes).map(|b| b / 64).collect();
                lines.dedup();
                let touched = lines.len();
                assert_eq!(
                    lines_spanned(skew, bytes),
                    touched,
                    "skew {skew} bytes {bytes}"
                );
            }
        }
        // A 24-byte slot at skew 48 straddles two lines.
        assert_eq!(lines_spanned(48, 24), 2);
        // Any range of lines, empty slices and ranges past the end included.
        let v = vec![0u64; 100];
        for (a, b) in [(0, 3), (3, usize::MAX), (20, 30), (5, 2)] {
            prefetch_lines(&v[1..], a..b);
            prefetch_lines(&v[..0], a..b);
        }
    }

    #[test]
    fn huge_page_advice_leaves_the_buffer_as_it_was() {
        // 24 MB: at least one whole 2 MB page inside, whatever the start.
        let mut v: Vec<u64> = Vec::with_capacity(3 << 20);
        let (ptr, cap) = (v.as_ptr(), v.capacity());
        advise_huge_pages(&mut v);
        assert_eq!((v.as_ptr(), v.capacity(), v.len()), (ptr, cap, 0));
        v.extend(0..cap as u64);
        assert!(v.iter().enumerate().all(|(i, &x)| x == i as u64));
        // Empty and small buffers are left alone.
        advise_huge_pages(&mut Vec::<u64>::new());
        advise_huge_pages(&mut vec![1u8; 100]);
    }
}
