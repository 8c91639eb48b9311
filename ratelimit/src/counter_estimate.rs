//! The sliding-window counter's estimate, shared by the algorithm (does a
//! cost fit now?) and its decisions (when will it fit?): the previous
//! window's count weighted by how much of it still overlaps the sliding
//! window, plus the current window's count.

/// Whether `cost` fits at `e` ns into a window whose counts are `prev`,
/// `curr`.
pub(crate) fn fits_counts(w: u64, limit: u32, prev: u32, curr: u32, e: u64, cost: u32) -> bool {
    let lhs = u128::from(prev) * u128::from(w - e)
        + (u128::from(curr) + u128::from(cost)) * u128::from(w);
    lhs <= u128::from(limit) * u128::from(w)
}

/// Earliest time `≥ t` at which `cost` (`≤ limit`) fits, given the counts
/// `prev`, `curr` of window `idx` (which contains `t`) and no further grants.
pub(crate) fn earliest_fit(
    w: u64,
    limit: u32,
    idx: u64,
    prev: u32,
    curr: u32,
    t: u64,
    cost: u32,
) -> u64 {
    let start = idx * w;
    if u64::from(curr) + u64::from(cost) <= u64::from(limit) {
        if prev == 0 {
            return t;
        }
        // prev·(W − e) ≤ A·W  ⇔  e ≥ W − ⌊A·W / prev⌋.
        let a = u128::from(limit - curr - cost);
        let slack = (a * u128::from(w) / u128::from(prev)).min(u128::from(w)) as u64;
        let x = (start + (w - slack)).max(t);
        if x < start + w {
            return x;
        }
    }
    // Next window: prev' = curr, curr' = 0.
    let next = start + w;
    if curr == 0 {
        return next.max(t);
    }
    let a = u128::from(limit - cost);
    let slack = (a * u128::from(w) / u128::from(curr)).min(u128::from(w)) as u64;
    next + (w - slack)
}
