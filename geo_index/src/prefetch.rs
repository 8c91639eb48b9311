//! A software prefetch: the one place this crate uses `unsafe`.
//!
//! The batch path and the k-nearest ring walk know, some items ahead,
//! which cache lines they will read. Loading them (`black_box(*p)`)
//! overlaps the misses too, but a load that misses holds its place in the
//! reorder buffer until the line arrives, so only as many misses overlap
//! as the loop's instructions fit behind it. A prefetch retires at once, so
//! the misses of the next items overlap the work on this one. The
//! `geo_update` bench measures it (its figures live in the README's
//! performance table, not here).

/// Asks the CPU to bring the line holding `p` into L1. `p` may dangle or be
/// out of bounds: nothing is read through it.
#[inline(always)]
#[allow(unsafe_code, reason = "PREFETCHT0; see the SAFETY note")]
pub(crate) fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is a hint with no architecturally visible effect:
    // it never faults, even for an invalid address, and reads nothing the
    // program can observe; SSE, which the intrinsic needs, is part of the
    // x86_64 baseline.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
