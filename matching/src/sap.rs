//! Exact minimum-cost assignment of every row of a sparse bipartite graph,
//! by shortest augmenting paths (Jonker & Volgenant 1987's augmentation
//! with column potentials only; Dijkstra on a binary heap over the row's
//! edges, as in their sparse variant LAPJVsp).
//!
//! Every row must end up matched: callers give each row a private
//! "unassigned" column, so the problem is always feasible and the
//! row-by-row augmentation is exact (each augmentation is a shortest path
//! with respect to reduced costs that stay non-negative).

use std::cmp::Ordering;
use std::collections::BinaryHeap;

const NONE: u32 = u32::MAX;

/// A sparse cost structure: row `i`'s edges are
/// `cols[start[i]..start[i + 1]]` with `costs[..]` alongside.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sparse {
    pub(crate) start: Vec<usize>,
    pub(crate) cols: Vec<u32>,
    pub(crate) costs: Vec<f64>,
    pub(crate) n_cols: usize,
}

impl Sparse {
    pub(crate) fn rows(&self) -> usize {
        self.start.len().saturating_sub(1)
    }

    fn edges(&self, i: usize) -> (&[u32], &[f64]) {
        let (a, b) = (self.start[i], self.start[i + 1]);
        (&self.cols[a..b], &self.costs[a..b])
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry(f64, u32);

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    /// Reversed: the smallest distance pops first (ties: smaller column).
    fn cmp(&self, o: &Self) -> Ordering {
        o.0.total_cmp(&self.0).then(o.1.cmp(&self.1))
    }
}

/// An optimal assignment with its dual certificate.
#[derive(Debug, Clone)]
pub(crate) struct Solution {
    /// `row → column`.
    pub(crate) row_col: Vec<u32>,
    /// Cost of each row's edge.
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "the certificate is checked in tests")
    )]
    pub(crate) row_cost: Vec<f64>,
    /// Column potentials (≤ 0; 0 on unmatched columns). With the implicit
    /// row potentials `u[i] = row_cost[i] - v[row_col[i]]`, every edge has
    /// `cost - u - v >= 0` and matched edges are tight: the LP optimality
    /// certificate.
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "the certificate is checked in tests")
    )]
    pub(crate) v: Vec<f64>,
}

/// Matches every row to a distinct column at minimum total cost. Every
/// row must have at least one edge to a column no other row uses (its
/// private fallback), which makes the problem feasible. Costs must be
/// finite.
///
/// Initial matching: each row takes its cheapest column when that column
/// is still free (tight under zero column potentials); the rest are
/// augmented one by one. O(rows · E log E) worst case; typically each
/// augmentation settles a few columns.
pub(crate) fn assign_rows(g: &Sparse) -> Solution {
    let rows = g.rows();
    let mut row_col = vec![NONE; rows];
    let mut row_cost = vec![0.0; rows];
    let mut col_row = vec![NONE; g.n_cols];
    let mut v = vec![0.0f64; g.n_cols];
    let mut free = Vec::new();
    for (i, rc) in row_col.iter_mut().enumerate() {
        let (cols, costs) = g.edges(i);
        let mut best: Option<(f64, u32)> = None;
        for (&j, &c) in cols.iter().zip(costs) {
            if best.is_none_or(|(bc, bj)| c < bc || (c == bc && j < bj)) {
                best = Some((c, j));
            }
        }
        match best {
            Some((c, j)) if col_row[j as usize] == NONE => {
                *rc = j;
                row_cost[i] = c;
                col_row[j as usize] = i as u32;
            }
            _ => free.push(i),
        }
    }
    let free = reduce_rows(g, free, &mut row_col, &mut row_cost, &mut col_row, &mut v);
    // Per-column search state in one array: one cache line per relaxation.
    #[derive(Clone, Copy)]
    struct Col {
        v: f64,
        d: f64,
        pred: u32,
        row: u32,
        settled: bool,
    }
    let mut cs: Vec<Col> = (0..g.n_cols)
        .map(|j| Col {
            v: v[j],
            d: f64::INFINITY,
            pred: NONE,
            row: col_row[j],
            settled: false,
        })
        .collect();
    let mut touched: Vec<u32> = Vec::new();
    let mut done: Vec<u32> = Vec::new();
    let mut heap = BinaryHeap::new();
    for start in free {
        heap.clear();
        let (cols, costs) = g.edges(start);
        for (&j, &c) in cols.iter().zip(costs) {
            let col = &mut cs[j as usize];
            let dj = c - col.v;
            if dj < col.d {
                if col.d == f64::INFINITY {
                    touched.push(j);
                }
                col.d = dj;
                col.pred = start as u32;
                heap.push(Entry(dj, j));
            }
        }
        let mut target = NONE;
        let mut dist = 0.0;
        while let Some(Entry(dj, j)) = heap.pop() {
            let col = &mut cs[j as usize];
            if col.settled || dj > col.d {
                continue;
            }
            col.settled = true;
            done.push(j);
            let i = col.row;
            if i == NONE {
                target = j;
                dist = dj;
                break;
            }
            let iu = i as usize;
            // Row i's current edge is tight: its reduced cost to j2 is
            // (c - v[j2]) - (row_cost - v[j]).
            let h = row_cost[iu] - col.v - dj;
            let (cols, costs) = g.edges(iu);
            for (&j2, &c) in cols.iter().zip(costs) {
                let col = &mut cs[j2 as usize];
                let nd = c - col.v - h;
                if nd < col.d && !col.settled {
                    if col.d == f64::INFINITY {
                        touched.push(j2);
                    }
                    col.d = nd;
                    col.pred = i;
                    heap.push(Entry(nd, j2));
                }
            }
        }
        debug_assert!(target != NONE, "a row without a reachable free column");
        if target != NONE {
            // Column potentials: settled columns move by d - dist (≤ 0),
            // which keeps reduced costs non-negative and the path tight.
            for &j in &done {
                let col = &mut cs[j as usize];
                col.v += col.d - dist;
            }
            // Flip the alternating path back to `start`.
            let mut j = target;
            loop {
                let i = cs[j as usize].pred;
                let iu = i as usize;
                cs[j as usize].row = i;
                let prev = row_col[iu];
                row_col[iu] = j;
                let (cols, costs) = g.edges(iu);
                row_cost[iu] = cols.iter().position(|&c| c == j).map_or(0.0, |k| costs[k]);
                if iu == start {
                    break;
                }
                j = prev;
            }
        }
        for &j in &touched {
            let col = &mut cs[j as usize];
            col.d = f64::INFINITY;
            col.settled = false;
        }
        touched.clear();
        done.clear();
    }
    let v = cs.iter().map(|c| c.v).collect();
    Solution {
        row_col,
        row_cost,
        v,
    }
}

/// Augmenting row reduction (two rounds, as in Jonker & Volgenant 1987),
/// for the rectangular case: a free row takes the column of least reduced
/// cost, lowering that column's potential to the row's second-least so the
/// displaced row finds it less attractive; the displaced row goes on at
/// once (within a step budget). Only columns that become matched are
/// lowered, so unmatched columns keep potential 0 and every matched row
/// stays on a column of least reduced cost: the optimality conditions the
/// augmentation relies on still hold. Returns the rows still free.
fn reduce_rows(
    g: &Sparse,
    mut free: Vec<usize>,
    row_col: &mut [u32],
    row_cost: &mut [f64],
    col_row: &mut [u32],
    v: &mut [f64],
) -> Vec<usize> {
    let budget = 4 * g.rows().max(1);
    for _ in 0..2 {
        if free.is_empty() {
            break;
        }
        let mut queue = std::mem::take(&mut free);
        let mut cur = 0;
        let mut steps = 0;
        while cur < queue.len() {
            let i = queue[cur];
            cur += 1;
            steps += 1;
            let (cols, costs) = g.edges(i);
            let (mut j1, mut c1, mut r1) = (NONE, 0.0, f64::INFINITY);
            let (mut j2, mut c2, mut r2) = (NONE, 0.0, f64::INFINITY);
            for (&j, &c) in cols.iter().zip(costs) {
                let r = c - v[j as usize];
                if r < r1 {
                    (j2, c2, r2) = (j1, c1, r1);
                    (j1, c1, r1) = (j, c, r);
                } else if r < r2 {
                    (j2, c2, r2) = (j, c, r);
                }
            }
            if j1 == NONE {
                continue;
            }
            let mut i0 = col_row[j1 as usize];
            let lowers = j2 != NONE && r1 < r2;
            if lowers {
                v[j1 as usize] -= r2 - r1;
            } else if i0 != NONE && j2 != NONE {
                (j1, c1) = (j2, c2);
                i0 = col_row[j1 as usize];
            }
            if i0 != NONE {
                row_col[i0 as usize] = NONE;
                if lowers && steps < budget {
                    cur -= 1;
                    queue[cur] = i0 as usize;
                } else {
                    free.push(i0 as usize);
                }
            }
            row_col[i] = j1;
            row_cost[i] = c1;
            col_row[j1 as usize] = i as u32;
        }
    }
    free
}

#[cfg(test)]
impl Solution {
    /// The optimality certificate: every row matched to a distinct column
    /// over one of its edges, column potentials ≤ 0 and 0 on unmatched
    /// columns, reduced costs ≥ 0 everywhere and 0 on matched edges.
    pub(crate) fn check_invariants(&self, g: &Sparse) {
        let mut used = vec![false; g.n_cols];
        for i in 0..g.rows() {
            let (cols, costs) = g.edges(i);
            let j = self.row_col[i];
            let k = cols
                .iter()
                .position(|&c| c == j)
                .expect("matched over an edge");
            assert_eq!(costs[k], self.row_cost[i]);
            assert!(
                !std::mem::replace(&mut used[j as usize], true),
                "column used twice"
            );
            let u = self.row_cost[i] - self.v[j as usize];
            for (&c, &cost) in cols.iter().zip(costs) {
                let r = cost - u - self.v[c as usize];
                assert!(
                    r >= -1e-7 * (1.0 + cost.abs() + u.abs()),
                    "negative reduced cost {r}"
                );
            }
        }
        for (j, &vj) in self.v.iter().enumerate() {
            assert!(vj <= 1e-9, "positive column potential");
            if !used[j] {
                assert!(vj.abs() <= 1e-9, "unmatched column with potential {vj}");
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
    /// potentials (Kuhn–Munkres as in Lawler 1976) on a dense square
    /// matrix, returning the optimal total cost.
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

        /// On dense square matrices beyond brute force (up to 60 × 60) the
        /// sparse augmentation's total equals the Hungarian algorithm's, for
        /// wide, narrow (many ties) and big-value-heavy cost ranges, and the
        /// result is a permutation.
        #[test]
        fn matches_hungarian_on_dense_matrices(n in 1usize..60, mode in 0u8..3, seed in any::<u64>()) {
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
            let g = Sparse {
                start: (0..=n).map(|i| i * n).collect(),
                cols: (0..n * n).map(|k| (k % n) as u32).collect(),
                costs: a.clone(),
                n_cols: n,
            };
            let sol = assign_rows(&g);
            sol.check_invariants(&g);
            let xs = sol.row_col;
            let mut seen = vec![false; n];
            for &j in &xs {
                prop_assert!((j as usize) < n && !std::mem::replace(&mut seen[j as usize], true));
            }
            let got: f64 = (0..n).map(|i| a[i * n + xs[i] as usize]).sum();
            let want = hungarian(n, &a);
            prop_assert!((got - want).abs() <= 1e-9 * (1.0 + want), "n={} got {} want {}", n, got, want);
        }
    }
}
