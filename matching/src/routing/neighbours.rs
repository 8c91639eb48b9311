use crate::routing::Distances;
use crate::routing::problem::Problem;

/// The `k` nearest other nodes of every node, nearest first (ties by
/// index), flattened row by row. O(n² + n·k·log k) time, O(n·k) memory.
#[derive(Debug, Clone)]
pub(crate) struct Neighbours {
    k: usize,
    flat: Vec<u32>,
}

impl Neighbours {
    pub(crate) fn new<D: Distances + ?Sized>(p: &Problem<'_, D>, k: usize) -> Self {
        let n = p.n();
        let k = k.min(n.saturating_sub(1));
        let mut flat = Vec::with_capacity(n * k);
        let mut row: Vec<(f64, u32)> = Vec::with_capacity(n);
        for a in 0..n as u32 {
            row.clear();
            row.extend((0..n as u32).filter(|&b| b != a).map(|b| (p.d(a, b), b)));
            let cmp = |x: &(f64, u32), y: &(f64, u32)| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1));
            if k < row.len() && k > 0 {
                row.select_nth_unstable_by(k - 1, cmp);
                row.truncate(k);
            }
            row.sort_unstable_by(cmp);
            flat.extend(row.iter().take(k).map(|&(_, b)| b));
        }
        Self { k, flat }
    }

    /// Neighbours of `a`, nearest first.
    #[inline]
    pub(crate) fn of(&self, a: u32) -> &[u32] {
        let s = a as usize * self.k;
        &self.flat[s..s + self.k]
    }
}
