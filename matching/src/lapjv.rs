//! The Jonker–Volgenant shortest augmenting path algorithm for the dense
//! square linear assignment problem (Jonker & Volgenant, "A shortest
//! augmenting path algorithm for dense and sparse linear assignment
//! problems", Computing 38, 1987), in the structure of Tomas Kazmar's
//! `lap` (column reduction with reduction transfer, two rounds of
//! augmenting row reduction, then Dijkstra-like augmentation), with
//! `f64::INFINITY` in place of its `LARGE` sentinel.

/// Minimum-cost perfect assignment of an `n × n` row-major matrix of
/// finite costs. Returns `x` with `x[row] = column`. O(n³) worst case;
/// far less on typical inputs because most rows are settled by the
/// reductions.
pub(crate) fn lapjv(n: usize, cost: &[f64]) -> Vec<usize> {
    debug_assert_eq!(cost.len(), n * n);
    debug_assert!(cost.iter().all(|c| c.is_finite()));
    if n == 0 {
        return Vec::new();
    }
    if n == 1 {
        return vec![0];
    }
    let mut x = vec![NONE; n];
    let mut y = vec![NONE; n];
    let mut v = vec![0.0; n];
    let mut free_rows = vec![0usize; n];
    let mut n_free = ccrrt(n, cost, &mut free_rows, &mut x, &mut y, &mut v);
    let mut round = 0;
    while n_free > 0 && round < 2 {
        n_free = carr(n, cost, n_free, &mut free_rows, &mut x, &mut y, &mut v);
        round += 1;
    }
    if n_free > 0 {
        ca(n, cost, &free_rows[..n_free], &mut x, &mut y, &mut v);
    }
    debug_assert!(x.iter().all(|&j| j < n));
    x
}

const NONE: usize = usize::MAX;

#[inline]
fn c(cost: &[f64], n: usize, i: usize, j: usize) -> f64 {
    cost[i * n + j]
}

/// Column reduction and reduction transfer. Returns the number of free
/// rows, listed in `free_rows`.
fn ccrrt(n: usize, cost: &[f64], free_rows: &mut [usize], x: &mut [usize], y: &mut [usize], v: &mut [f64]) -> usize {
    v.fill(f64::INFINITY);
    y.fill(0);
    for i in 0..n {
        let row = &cost[i * n..(i + 1) * n];
        for (j, &cij) in row.iter().enumerate() {
            if cij < v[j] {
                v[j] = cij;
                y[j] = i;
            }
        }
    }
    let mut unique = vec![true; n];
    for j in (0..n).rev() {
        let i = y[j];
        if x[i] == NONE {
            x[i] = j;
        } else {
            unique[i] = false;
            y[j] = NONE;
        }
    }
    let mut n_free = 0;
    for i in 0..n {
        if x[i] == NONE {
            free_rows[n_free] = i;
            n_free += 1;
        } else if unique[i] {
            let j = x[i];
            let mut min = f64::INFINITY;
            for j2 in 0..n {
                if j2 != j {
                    let r = c(cost, n, i, j2) - v[j2];
                    if r < min {
                        min = r;
                    }
                }
            }
            v[j] -= min;
        }
    }
    n_free
}

/// Augmenting row reduction. Returns the number of rows still free.
fn carr(
    n: usize,
    cost: &[f64],
    n_free: usize,
    free_rows: &mut [usize],
    x: &mut [usize],
    y: &mut [usize],
    v: &mut [f64],
) -> usize {
    let mut current = 0;
    let mut new_free = 0;
    let mut rr_cnt = 0usize;
    while current < n_free {
        rr_cnt += 1;
        let free_i = free_rows[current];
        current += 1;
        let mut j1 = 0;
        let mut v1 = c(cost, n, free_i, 0) - v[0];
        let mut j2 = NONE;
        let mut v2 = f64::INFINITY;
        for j in 1..n {
            let r = c(cost, n, free_i, j) - v[j];
            if r < v2 {
                if r >= v1 {
                    v2 = r;
                    j2 = j;
                } else {
                    v2 = v1;
                    v1 = r;
                    j2 = j1;
                    j1 = j;
                }
            }
        }
        let mut i0 = y[j1];
        let v1_new = v[j1] - (v2 - v1);
        let v1_lowers = v1_new < v[j1];
        if rr_cnt < current * n {
            if v1_lowers {
                v[j1] = v1_new;
            } else if i0 != NONE && j2 != NONE {
                j1 = j2;
                i0 = y[j2];
            }
            if i0 != NONE {
                if v1_lowers {
                    current -= 1;
                    free_rows[current] = i0;
                } else {
                    free_rows[new_free] = i0;
                    new_free += 1;
                }
            }
        } else if i0 != NONE {
            free_rows[new_free] = i0;
            new_free += 1;
        }
        x[free_i] = j1;
        y[j1] = free_i;
    }
    new_free
}

/// Moves the columns of minimal `d` among `cols[lo..]` to `cols[lo..hi]`;
/// returns `hi`.
fn find(lo: usize, d: &[f64], cols: &mut [usize]) -> usize {
    let n = cols.len();
    let mut hi = lo + 1;
    let mut mind = d[cols[lo]];
    for k in hi..n {
        let j = cols[k];
        if d[j] <= mind {
            if d[j] < mind {
                hi = lo;
                mind = d[j];
            }
            cols[k] = cols[hi];
            cols[hi] = j;
            hi += 1;
        }
    }
    hi
}

/// Scans the columns in `cols[lo..hi]`, relaxing the others; returns a
/// free column reached at minimal distance, if any. `lo` / `hi` are
/// written back only when none is found: the caller then reads the
/// minimal distance at the unchanged `cols[lo]`.
#[allow(clippy::too_many_arguments)]
fn scan(
    n: usize,
    cost: &[f64],
    plo: &mut usize,
    phi: &mut usize,
    d: &mut [f64],
    cols: &mut [usize],
    pred: &mut [usize],
    y: &[usize],
    v: &[f64],
) -> Option<usize> {
    let (mut lo, mut hi) = (*plo, *phi);
    while lo != hi {
        let j = cols[lo];
        lo += 1;
        let i = y[j];
        let mind = d[j];
        let h = c(cost, n, i, j) - v[j] - mind;
        for k in hi..n {
            let j = cols[k];
            let cred = c(cost, n, i, j) - v[j] - h;
            if cred < d[j] {
                d[j] = cred;
                pred[j] = i;
                if cred == mind {
                    if y[j] == NONE {
                        return Some(j);
                    }
                    cols[k] = cols[hi];
                    cols[hi] = j;
                    hi += 1;
                }
            }
        }
    }
    (*plo, *phi) = (lo, hi);
    None
}

/// Shortest augmenting path from `start_i`; updates the duals `v` of the
/// columns settled before the free column; returns that column.
fn find_path(
    n: usize,
    cost: &[f64],
    start_i: usize,
    y: &[usize],
    v: &mut [f64],
    pred: &mut [usize],
    cols: &mut [usize],
    d: &mut [f64],
) -> usize {
    let (mut lo, mut hi) = (0, 0);
    let mut n_ready = 0;
    let mut final_j = None;
    for (k, col) in cols.iter_mut().enumerate() {
        *col = k;
        pred[k] = start_i;
        d[k] = c(cost, n, start_i, k) - v[k];
    }
    while final_j.is_none() {
        if lo == hi {
            n_ready = lo;
            hi = find(lo, d, cols);
            for &j in &cols[lo..hi] {
                if y[j] == NONE {
                    final_j = Some(j);
                }
            }
        }
        if final_j.is_none() {
            final_j = scan(n, cost, &mut lo, &mut hi, d, cols, pred, y, v);
        }
    }
    let mind = d[cols[lo]];
    for &j in &cols[..n_ready] {
        v[j] += d[j] - mind;
    }
    final_j.unwrap_or(0)
}

/// Augments every remaining free row along a shortest path.
fn ca(n: usize, cost: &[f64], free_rows: &[usize], x: &mut [usize], y: &mut [usize], v: &mut [f64]) {
    let mut pred = vec![0usize; n];
    let mut cols = vec![0usize; n];
    let mut d = vec![0.0; n];
    for &free_i in free_rows {
        let mut j = find_path(n, cost, free_i, y, v, &mut pred, &mut cols, &mut d);
        // Flip the path back to `free_i`; at most n steps.
        for _ in 0..n {
            let i = pred[j];
            y[j] = i;
            std::mem::swap(&mut j, &mut x[i]);
            if i == free_i {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::FileFailurePersistence;

    /// Reference twin: the textbook O(n³) Hungarian algorithm with
    /// potentials (Kuhn–Munkres as in Lawler 1976), returning the optimal
    /// total cost.
    fn hungarian(n: usize, a: &[f64]) -> f64 {
        let inf = f64::INFINITY;
        let mut u = vec![0.0; n + 1];
        let mut v = vec![0.0; n + 1];
        let mut p = vec![0usize; n + 1];
        let mut way = vec![0usize; n + 1];
        for i in 1..=n {
            p[0] = i;
            let mut j0 = 0;
            let mut minv = vec![inf; n + 1];
            let mut used = vec![false; n + 1];
            loop {
                used[j0] = true;
                let i0 = p[j0];
                let mut delta = inf;
                let mut j1 = 0;
                for j in 1..=n {
                    if !used[j] {
                        let cur = a[(i0 - 1) * n + j - 1] - u[i0] - v[j];
                        if cur < minv[j] {
                            minv[j] = cur;
                            way[j] = j0;
                        }
                        if minv[j] < delta {
                            delta = minv[j];
                            j1 = j;
                        }
                    }
                }
                for j in 0..=n {
                    if used[j] {
                        u[p[j]] += delta;
                        v[j] -= delta;
                    } else {
                        minv[j] -= delta;
                    }
                }
                j0 = j1;
                if p[j0] == 0 {
                    break;
                }
            }
            loop {
                let j1 = way[j0];
                p[j0] = p[j1];
                j0 = j1;
                if j0 == 0 {
                    break;
                }
            }
        }
        (1..=n).map(|j| a[(p[j] - 1) * n + j - 1]).sum()
    }

    fn config(default_cases: u32) -> ProptestConfig {
        let cases = std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default_cases);
        ProptestConfig {
            cases,
            failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
            ..ProptestConfig::default()
        }
    }

    proptest! {
        #![proptest_config(config(128))]

        /// On larger square matrices (beyond brute force) JV's total equals
        /// the Hungarian algorithm's, for wide, narrow (many ties) and
        /// big-M-heavy cost ranges; the result is a permutation.
        #[test]
        fn lapjv_matches_hungarian(n in 1usize..60, mode in 0u8..3, seed in any::<u64>()) {
            let mut x = seed | 1;
            let a: Vec<f64> = (0..n * n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    match mode {
                        0 => (x % 100_000) as f64 / 7.0,
                        1 => (x % 10) as f64,
                        _ => if x % 3 == 0 { 1e6 } else { (x % 100) as f64 },
                    }
                })
                .collect();
            let xs = lapjv(n, &a);
            let mut seen = vec![false; n];
            for &j in &xs {
                prop_assert!(j < n && !std::mem::replace(&mut seen[j], true));
            }
            let got: f64 = (0..n).map(|i| a[i * n + xs[i]]).sum();
            let want = hungarian(n, &a);
            prop_assert!((got - want).abs() <= 1e-9 * (1.0 + want), "n={} got {} want {}", n, got, want);
        }
    }
}
