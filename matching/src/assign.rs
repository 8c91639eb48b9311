use dispatchkit_geo_index::{DriverId, DriverView, Hit, LonLat, VehicleType};

use crate::sap::{Sparse, assign_rows};
use crate::{EtaModel, MatchingError, RideRequest};

/// A rectangular matrix of assignment costs (rows = riders / orders,
/// columns = drivers / dashers) in which a pair may have no edge (the
/// driver is outside the rider's radius, the vehicle does not fit, …).
///
/// ```
/// use dispatchkit_matching::CostMatrix;
///
/// let m = CostMatrix::from_fn(2, 3, |r, c| (r != c).then(|| (r + c) as f64))?;
/// assert_eq!((m.get(0, 0), m.get(0, 1)), (None, Some(1.0)));
/// # Ok::<(), dispatchkit_matching::MatchingError>(())
/// ```
///
/// Deserialising goes through [`CostMatrix::new`] (JSON
/// `{"rows": 2, "cols": 2, "data": [1.0, null, 2.5, 0.0]}`, `null` = no
/// edge), so it checks exactly what the constructor checks.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "CostMatrixData", into = "CostMatrixData")
)]
pub struct CostMatrix {
    rows: usize,
    cols: usize,
    /// Row-major; `f64::INFINITY` marks "no edge".
    data: Vec<f64>,
}

/// The serialised form of a [`CostMatrix`].
#[cfg(feature = "serde")]
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename = "CostMatrix", deny_unknown_fields)]
struct CostMatrixData {
    rows: usize,
    cols: usize,
    data: Vec<Option<f64>>,
}

#[cfg(feature = "serde")]
impl TryFrom<CostMatrixData> for CostMatrix {
    type Error = MatchingError;
    fn try_from(d: CostMatrixData) -> Result<Self, MatchingError> {
        CostMatrix::new(d.rows, d.cols, d.data)
    }
}

#[cfg(feature = "serde")]
impl From<CostMatrix> for CostMatrixData {
    fn from(m: CostMatrix) -> Self {
        let data = m.data.iter().map(|v| v.is_finite().then_some(*v)).collect();
        CostMatrixData {
            rows: m.rows,
            cols: m.cols,
            data,
        }
    }
}

impl CostMatrix {
    /// Largest number of rows or of columns (2^24).
    pub const MAX_SIDE: usize = 1 << 24;

    /// Largest number of entries (2^28, 2 GiB of `f64`).
    pub const MAX_ENTRIES: usize = 1 << 28;

    /// Largest cost an entry may have: `f64::MAX / 2^64`, so that sums over
    /// any number of entries a computer can hold (totals, the assignment's
    /// "leave unassigned" penalty) stay finite.
    pub const MAX_COST: f64 = f64::MAX / 18_446_744_073_709_551_616.0;

    /// A matrix from `rows × cols` row-major entries, `None` = no edge.
    /// O(rows · cols).
    ///
    /// # Errors
    /// [`MatchingError::TooLarge`] for more than [`CostMatrix::MAX_SIDE`] rows or
    /// columns or more than [`CostMatrix::MAX_ENTRIES`] entries;
    /// [`MatchingError::SizeMismatch`] when `data.len() != rows * cols`;
    /// [`MatchingError::InvalidDistance`] for a NaN, infinite, negative or
    /// above-[`CostMatrix::MAX_COST`] cost.
    pub fn new(rows: usize, cols: usize, data: Vec<Option<f64>>) -> Result<Self, MatchingError> {
        let expected = check_shape(rows, cols)?;
        if data.len() != expected {
            return Err(MatchingError::SizeMismatch {
                what: "cost matrix entries",
                expected,
                got: data.len(),
            });
        }
        let mut it = data.into_iter();
        Self::from_fn(rows, cols, |_, _| it.next().flatten())
    }

    /// The matrix with entry `(r, c) = f(r, c)`, `None` = no edge.
    /// O(rows · cols) calls.
    ///
    /// # Errors
    /// As [`CostMatrix::new`] (the sizes are checked before `f` is called
    /// or anything is allocated).
    pub fn from_fn(
        rows: usize,
        cols: usize,
        mut f: impl FnMut(usize, usize) -> Option<f64>,
    ) -> Result<Self, MatchingError> {
        let mut data = Vec::with_capacity(check_shape(rows, cols)?);
        for r in 0..rows {
            for c in 0..cols {
                match f(r, c) {
                    None => data.push(f64::INFINITY),
                    Some(v) if (0.0..=Self::MAX_COST).contains(&v) => data.push(v),
                    Some(value) => {
                        return Err(MatchingError::InvalidDistance {
                            from: r,
                            to: c,
                            value,
                            reason: "an assignment cost must be a number in 0..=MAX_COST (f64::MAX / 2^64)",
                        });
                    }
                }
            }
        }
        Ok(Self { rows, cols, data })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Cost of `(r, c)`, `None` when there is no edge or the index is out
    /// of range.
    pub fn get(&self, r: usize, c: usize) -> Option<f64> {
        if r >= self.rows || c >= self.cols {
            return None;
        }
        let v = self.data[r * self.cols + c];
        v.is_finite().then_some(v)
    }

    /// Number of pairs with an edge. O(rows · cols).
    pub fn edges(&self) -> usize {
        self.data.iter().filter(|v| v.is_finite()).count()
    }
}

/// The number of entries of a `rows × cols` matrix, checked against the
/// limits.
fn check_shape(rows: usize, cols: usize) -> Result<usize, MatchingError> {
    for (what, size) in [("cost matrix rows", rows), ("cost matrix columns", cols)] {
        if size > CostMatrix::MAX_SIDE {
            return Err(MatchingError::TooLarge {
                what,
                size,
                limit: CostMatrix::MAX_SIDE,
            });
        }
    }
    let entries = rows.saturating_mul(cols);
    if entries > CostMatrix::MAX_ENTRIES {
        return Err(MatchingError::TooLarge {
            what: "cost matrix entries",
            size: entries,
            limit: CostMatrix::MAX_ENTRIES,
        });
    }
    Ok(entries)
}

/// A set of disjoint (row, column) pairs over existing edges.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[must_use]
pub struct Assignment {
    /// `(row, column)` pairs, ascending by row; every pair has an edge.
    pub pairs: Vec<(usize, usize)>,
    /// Rows left without a column, ascending (riders nobody can serve).
    pub unassigned_rows: Vec<usize>,
    /// Columns left without a row, ascending (idle drivers).
    pub unassigned_cols: Vec<usize>,
    /// Sum of the costs of `pairs`.
    pub total_cost: f64,
}

impl Assignment {
    fn from_pairs(m: &CostMatrix, mut pairs: Vec<(usize, usize)>) -> Self {
        pairs.sort_unstable();
        let mut row_used = vec![false; m.rows];
        let mut col_used = vec![false; m.cols];
        let mut total_cost = 0.0;
        for &(r, c) in &pairs {
            row_used[r] = true;
            col_used[c] = true;
            total_cost += m.data[r * m.cols + c];
        }
        Self {
            pairs,
            unassigned_rows: (0..m.rows).filter(|&r| !row_used[r]).collect(),
            unassigned_cols: (0..m.cols).filter(|&c| !col_used[c]).collect(),
            total_cost,
        }
    }

    /// Checks the invariants against the matrix it was computed from:
    /// pairs disjoint, over existing edges, sorted; the unassigned lists
    /// are exactly the rest; `total_cost` is the sum.
    #[doc(hidden)]
    pub fn check_invariants(&self, m: &CostMatrix) {
        let mut row_used = vec![false; m.rows];
        let mut col_used = vec![false; m.cols];
        let mut total = 0.0;
        assert!(
            self.pairs.windows(2).all(|w| w[0] < w[1]),
            "pairs not sorted"
        );
        for &(r, c) in &self.pairs {
            let cost = m.get(r, c).expect("pair without an edge");
            assert!(!std::mem::replace(&mut row_used[r], true), "row {r} twice");
            assert!(
                !std::mem::replace(&mut col_used[c], true),
                "column {c} twice"
            );
            total += cost;
        }
        let rows: Vec<usize> = (0..m.rows).filter(|&r| !row_used[r]).collect();
        let cols: Vec<usize> = (0..m.cols).filter(|&c| !col_used[c]).collect();
        assert_eq!(rows, self.unassigned_rows);
        assert_eq!(cols, self.unassigned_cols);
        assert!((total - self.total_cost).abs() <= 1e-9 * (1.0 + total.abs()));
    }
}

/// The optimal assignment: the most pairs possible (a maximum-cardinality
/// matching over the existing edges) and, among those, the least total
/// cost. Exact: every row gets a private "unassigned" option priced
/// `M = Σ_rows max cost + 1` (so one more real pair always beats any cost
/// saving) and the rows are matched by shortest augmenting paths
/// (Jonker–Volgenant's augmentation on the sparse edge list, Dijkstra with
/// a binary heap). O(R · E log E) worst case for R rows and E edges;
/// typically a few settled columns per row. O(E) memory.
///
/// ```
/// use dispatchkit_matching::{assign_greedy, assign_optimal, CostMatrix};
///
/// // Greedy takes the cheapest edge (0, 0) first and strands rider 1.
/// let m = CostMatrix::new(2, 2, vec![Some(1.0), Some(2.0), Some(2.0), None])?;
/// let best = assign_optimal(&m);
/// assert_eq!(best.pairs, vec![(0, 1), (1, 0)]);
/// assert_eq!(assign_greedy(&m).unassigned_rows, vec![1]);
/// # Ok::<(), dispatchkit_matching::MatchingError>(())
/// ```
pub fn assign_optimal(m: &CostMatrix) -> Assignment {
    let mut big = 1.0;
    for r in 0..m.rows {
        let row = &m.data[r * m.cols..(r + 1) * m.cols];
        big += row
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max);
    }
    solve_with_fallback(m, big)
}

/// The assignment of least `total cost + unassigned_cost × unassigned
/// rows`: leaving a rider for the next batch costs `unassigned_cost` (in
/// the unit of the costs, e.g. seconds of ETA). Exact, by the same
/// augmentation as [`assign_optimal`]. Its objective is never above the
/// greedy assignment's under the same pricing.
///
/// ```
/// use dispatchkit_matching::{assign_optimal, assign_optimal_penalized, CostMatrix};
///
/// // Serving both riders costs 100 + 800; serving only rider 0 costs
/// // 1 + 500 for leaving rider 1.
/// let m = CostMatrix::new(2, 2, vec![Some(1.0), Some(100.0), Some(800.0), None])?;
/// assert_eq!(assign_optimal(&m).pairs.len(), 2);
/// let p = assign_optimal_penalized(&m, 500.0)?;
/// assert_eq!(p.pairs, vec![(0, 0)]);
/// assert_eq!(p.unassigned_rows, vec![1]);
/// # Ok::<(), dispatchkit_matching::MatchingError>(())
/// ```
///
/// # Errors
/// [`MatchingError::InvalidParameter`] when `unassigned_cost` is NaN,
/// infinite or negative.
pub fn assign_optimal_penalized(
    m: &CostMatrix,
    unassigned_cost: f64,
) -> Result<Assignment, MatchingError> {
    if !(unassigned_cost.is_finite() && unassigned_cost >= 0.0) {
        return Err(MatchingError::param(
            "unassigned_cost",
            unassigned_cost,
            "must be finite and non-negative",
        ));
    }
    Ok(solve_with_fallback(m, unassigned_cost))
}

/// Every row gets its real edges plus a private column priced `fallback`;
/// rows matched to their private column are unassigned.
fn solve_with_fallback(m: &CostMatrix, fallback: f64) -> Assignment {
    let edges = m.edges();
    let mut g = Sparse {
        start: Vec::with_capacity(m.rows + 1),
        cols: Vec::with_capacity(edges + m.rows),
        costs: Vec::with_capacity(edges + m.rows),
        n_cols: m.cols + m.rows,
    };
    g.start.push(0);
    for r in 0..m.rows {
        let row = &m.data[r * m.cols..(r + 1) * m.cols];
        for (c, &v) in row.iter().enumerate() {
            if v.is_finite() {
                g.cols.push(c as u32);
                g.costs.push(v);
            }
        }
        g.cols.push((m.cols + r) as u32);
        g.costs.push(fallback);
        g.start.push(g.cols.len());
    }
    let sol = assign_rows(&g);
    #[cfg(test)]
    sol.check_invariants(&g);
    let pairs = (0..m.rows)
        .filter_map(|r| {
            let c = sol.row_col[r] as usize;
            (c < m.cols).then_some((r, c))
        })
        .collect();
    Assignment::from_pairs(m, pairs)
}

/// The greedy baseline: take edges cheapest first (ties by row, then
/// column) whenever both ends are still free. O(E log E) for E edges. Its
/// total cost is never below [`assign_optimal`]'s for the same number of
/// pairs, and it may leave rows unassigned that the optimum serves.
pub fn assign_greedy(m: &CostMatrix) -> Assignment {
    let mut edges: Vec<(f64, u32, u32)> = Vec::with_capacity(m.edges());
    for r in 0..m.rows {
        for c in 0..m.cols {
            let v = m.data[r * m.cols + c];
            if v.is_finite() {
                edges.push((v, r as u32, c as u32));
            }
        }
    }
    edges.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut row_used = vec![false; m.rows];
    let mut col_used = vec![false; m.cols];
    let mut pairs = Vec::with_capacity(m.rows.min(m.cols));
    for (_, r, c) in edges {
        let (r, c) = (r as usize, c as usize);
        if !row_used[r] && !col_used[c] {
            row_used[r] = true;
            col_used[c] = true;
            pairs.push((r, c));
        }
    }
    Assignment::from_pairs(m, pairs)
}

/// A driver taking part in a global assignment.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct DriverSpot {
    /// The driver.
    pub id: DriverId,
    /// Where it is.
    pub pos: LonLat,
    /// Its vehicle type.
    pub vehicle: VehicleType,
}

impl From<&Hit> for DriverSpot {
    fn from(h: &Hit) -> Self {
        Self {
            id: h.id,
            pos: h.pos,
            vehicle: h.attrs.vehicle,
        }
    }
}

impl From<&DriverView> for DriverSpot {
    fn from(v: &DriverView) -> Self {
        Self {
            id: v.id,
            pos: v.pos,
            vehicle: v.attrs.vehicle,
        }
    }
}

/// The rider × driver cost matrix of pickup ETAs (seconds) for a global
/// assignment: "no edge" where the driver is farther than `radius_km`
/// (straight line) or its vehicle type is not in the rider's set, or the
/// ETA model gives an unusable leg. O(R · D) distance checks, one ETA per
/// pair within the radius.
///
/// ```
/// use dispatchkit_geo_index::{DriverId, LonLat, VehicleSet, VehicleType};
/// use dispatchkit_matching::{assign_optimal, eta_costs, DriverSpot, HaversineEta, RideRequest, RiderId};
///
/// let car = VehicleType::new(0)?;
/// let p = |lon: f64| LonLat::new(lon, 40.0).unwrap();
/// let riders: Vec<RideRequest> = [-73.99, -73.98]
///     .iter()
///     .enumerate()
///     .map(|(i, &lon)| RideRequest { rider: RiderId(i as u64), pickup: p(lon), vehicles: VehicleSet::of(&[car]) })
///     .collect();
/// let drivers = [DriverSpot { id: DriverId::new(7)?, pos: p(-73.985), vehicle: car },
///                DriverSpot { id: DriverId::new(8)?, pos: p(-73.90), vehicle: car }];
/// let costs = eta_costs(&HaversineEta::default(), &riders, &drivers, 5.0)?;
/// assert_eq!(costs.get(0, 1), None); // driver 8 is 7.7 km away
/// let a = assign_optimal(&costs);
/// assert_eq!(a.pairs.len(), 1);
/// assert_eq!(a.unassigned_rows.len(), 1);
/// # Ok::<(), dispatchkit_matching::MatchingError>(())
/// ```
///
/// # Errors
/// [`MatchingError::InvalidParameter`] for a radius that is not finite and
/// positive.
pub fn eta_costs<E: EtaModel + ?Sized>(
    eta: &E,
    riders: &[RideRequest],
    drivers: &[DriverSpot],
    radius_km: f64,
) -> Result<CostMatrix, MatchingError> {
    if !(radius_km.is_finite() && radius_km > 0.0) {
        return Err(MatchingError::param(
            "radius_km",
            radius_km,
            "must be finite and positive",
        ));
    }
    let radius_m = radius_km * 1000.0;
    // 1° of latitude is at least 110.5 km: a cheap pre-check before the
    // haversine.
    let dlat_max = radius_m / 110_500.0;
    CostMatrix::from_fn(riders.len(), drivers.len(), |r, c| {
        let (rq, d) = (&riders[r], &drivers[c]);
        if !rq.vehicles.contains(d.vehicle) || (rq.pickup.lat() - d.pos.lat()).abs() > dlat_max {
            return None;
        }
        if rq.pickup.distance_m(d.pos) > radius_m {
            return None;
        }
        let secs = eta.pickup_eta_secs(d.pos, rq.pickup, d.vehicle);
        (secs.is_finite() && secs >= 0.0).then_some(secs)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::FileFailurePersistence;

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

    /// The naive twin: every permutation of the padded square matrix;
    /// best = most real pairs, then least cost. Returns (pairs, cost).
    fn brute_force(m: &CostMatrix) -> (usize, f64) {
        let n = m.rows().max(m.cols());
        let mut perm: Vec<usize> = (0..n).collect();
        let mut best = (0usize, 0.0f64);
        let mut first = true;
        let mut c = vec![0; n];
        let mut eval = |p: &[usize]| {
            let mut k = 0;
            let mut cost = 0.0;
            for (r, &col) in p.iter().enumerate() {
                if let Some(v) = m.get(r, col) {
                    k += 1;
                    cost += v;
                }
            }
            if first || k > best.0 || (k == best.0 && cost < best.1) {
                best = (k, cost);
                first = false;
            }
        };
        eval(&perm);
        let mut i = 0;
        while i < n {
            if c[i] < i {
                if i % 2 == 0 {
                    perm.swap(0, i);
                } else {
                    perm.swap(c[i], i);
                }
                eval(&perm);
                c[i] += 1;
                i = 0;
            } else {
                c[i] = 0;
                i += 1;
            }
        }
        best
    }

    /// Naive twin of the penalised objective: every way of giving each row
    /// a distinct column or nothing.
    fn brute_force_penalized(m: &CostMatrix, penalty: f64) -> f64 {
        fn go(
            m: &CostMatrix,
            penalty: f64,
            r: usize,
            used: &mut Vec<bool>,
            acc: f64,
            best: &mut f64,
        ) {
            if r == m.rows() {
                *best = best.min(acc);
                return;
            }
            go(m, penalty, r + 1, used, acc + penalty, best);
            for c in 0..m.cols() {
                if let Some(v) = m.get(r, c)
                    && !used[c]
                {
                    used[c] = true;
                    go(m, penalty, r + 1, used, acc + v, best);
                    used[c] = false;
                }
            }
        }
        let mut best = f64::INFINITY;
        go(m, penalty, 0, &mut vec![false; m.cols()], 0.0, &mut best);
        best
    }

    fn matrix() -> impl Strategy<Value = CostMatrix> {
        (0usize..=7, 0usize..=7, 0u32..=100).prop_flat_map(|(r, c, missing)| {
            prop::collection::vec((0u32..100, 0.0..1000.0f64, any::<bool>()), r * c).prop_map(
                move |cells| {
                    let data = cells
                        .into_iter()
                        .map(|(roll, v, int)| {
                            (roll >= missing).then_some(if int { v.floor() } else { v })
                        })
                        .collect();
                    CostMatrix::new(r, c, data).unwrap()
                },
            )
        })
    }

    proptest! {
        #![proptest_config(config(512))]

        /// Jonker–Volgenant equals brute force over all permutations, on
        /// rectangular matrices with missing edges (and ties: integers).
        #[test]
        fn optimal_matches_brute_force(m in matrix()) {
            let a = assign_optimal(&m);
            a.check_invariants(&m);
            let (k, cost) = brute_force(&m);
            prop_assert_eq!(a.pairs.len(), k);
            prop_assert!((a.total_cost - cost).abs() <= 1e-9 * (1.0 + cost), "jv {} brute force {}", a.total_cost, cost);
        }

        /// The penalised objective equals brute force, and is never above
        /// greedy's under the same pricing.
        #[test]
        fn penalized_matches_brute_force(m in matrix(), penalty in 0.0..1500.0f64) {
            let a = assign_optimal_penalized(&m, penalty).unwrap();
            a.check_invariants(&m);
            let obj = |a: &Assignment| a.total_cost + penalty * a.unassigned_rows.len() as f64;
            let want = brute_force_penalized(&m, penalty);
            prop_assert!((obj(&a) - want).abs() <= 1e-9 * (1.0 + want), "got {} want {}", obj(&a), want);
            let g = assign_greedy(&m);
            prop_assert!(obj(&a) <= obj(&g) + 1e-9 * (1.0 + obj(&g)));
        }

        /// Greedy is valid, never serves more riders, and never costs less
        /// when it serves as many.
        #[test]
        fn greedy_is_valid_and_never_better(m in matrix()) {
            let g = assign_greedy(&m);
            g.check_invariants(&m);
            let o = assign_optimal(&m);
            prop_assert!(g.pairs.len() <= o.pairs.len());
            if g.pairs.len() == o.pairs.len() {
                prop_assert!(o.total_cost <= g.total_cost + 1e-9 * (1.0 + g.total_cost));
            }
        }
    }

    #[test]
    fn bad_costs_are_typed_errors() {
        for bad in [f64::NAN, -1.0, f64::INFINITY] {
            assert!(matches!(
                CostMatrix::new(1, 2, vec![Some(1.0), Some(bad)]),
                Err(MatchingError::InvalidDistance { from: 0, to: 1, .. })
            ));
        }
        assert!(matches!(
            CostMatrix::new(2, 2, vec![Some(1.0)]),
            Err(MatchingError::SizeMismatch { .. })
        ));
        assert_eq!(
            CostMatrix::new(1, 1, vec![Some(1.0)]).unwrap().get(5, 0),
            None
        );
        let m = CostMatrix::new(1, 1, vec![Some(1.0)]).unwrap();
        for bad in [f64::NAN, -1.0, f64::INFINITY] {
            assert!(matches!(
                assign_optimal_penalized(&m, bad),
                Err(MatchingError::InvalidParameter { .. })
            ));
        }
    }

    #[test]
    fn empty_and_edgeless_matrices() {
        let m = CostMatrix::new(0, 3, vec![]).unwrap();
        let a = assign_optimal(&m);
        a.check_invariants(&m);
        assert_eq!(a.unassigned_cols, vec![0, 1, 2]);
        let m = CostMatrix::new(2, 2, vec![None; 4]).unwrap();
        let a = assign_optimal(&m);
        a.check_invariants(&m);
        assert_eq!(a.unassigned_rows, vec![0, 1]);
        assert_eq!(assign_greedy(&m), a);
    }

    #[test]
    fn large_random_instance_beats_greedy() {
        // 300 × 200 with about half the edges missing.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let m = CostMatrix::from_fn(300, 200, |_, _| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.is_multiple_of(2).then_some((x % 10_000) as f64)
        })
        .unwrap();
        let o = assign_optimal(&m);
        o.check_invariants(&m);
        let g = assign_greedy(&m);
        g.check_invariants(&m);
        assert_eq!(o.pairs.len(), 200);
        assert!(g.pairs.len() < o.pairs.len() || o.total_cost <= g.total_cost);
        // Check optimality against the LP dual: no other 200-pair matching
        // is cheaper if no single 2-swap improves it (a necessary
        // condition; the property test covers exactness on small sizes).
        for i in 0..o.pairs.len() {
            for j in i + 1..o.pairs.len() {
                let ((r1, c1), (r2, c2)) = (o.pairs[i], o.pairs[j]);
                if let (Some(a), Some(b)) = (m.get(r1, c2), m.get(r2, c1)) {
                    let now = m.get(r1, c1).unwrap() + m.get(r2, c2).unwrap();
                    assert!(a + b >= now, "swap improves");
                }
            }
        }
        eprintln!(
            "optimal {} pairs {}, greedy {} pairs {}",
            o.pairs.len(),
            o.total_cost,
            g.pairs.len(),
            g.total_cost
        );
    }
}
