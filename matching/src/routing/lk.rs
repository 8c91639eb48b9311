//! Lin–Kernighan chains (Lin & Kernighan 1973) as sequences of 2-opt
//! moves over the array tour: from an edge `(t1, t2)`, each step adds an
//! edge `(t2, t3)` chosen by the LK gain criterion with one step of
//! look-ahead and closes the tour with `(t4, t1)`; the best prefix of the
//! chain is kept when it shortens the tour, the rest undone move by move.

use crate::routing::Distances;
use crate::routing::local_search::{ArrayTour, LocalSearch};
use crate::routing::neighbours::Neighbours;
use crate::routing::problem::Problem;

/// Most 2-opt moves in one chain.
const LK_DEPTH: usize = 6;

/// A Lin–Kernighan chain from `t1`: see [`Moves::lk`](crate::routing::Moves::lk). Returns the
/// change in tour length when the chain improved the tour.
pub(crate) fn chain<D: Distances + ?Sized>(
    ls: &mut LocalSearch,
    p: &Problem<'_, D>,
    nb: &Neighbours,
    t: &mut ArrayTour,
    t1: u32,
) -> Option<f64> {
    let eps = ls.eps();
    let next = |t: &ArrayTour, c: u32, fwd: bool| if fwd { t.succ(c) } else { t.pred(c) };
    for first in [true, false] {
        let mut fwd = first;
        let mut t2 = next(t, t1, fwd);
        // The LK gain: removed minus added edge lengths, the closing
        // edge (t1, t2) not yet added.
        let mut g = p.d(t1, t2);
        let mut steps = [(0u32, 0u32, 0u32); LK_DEPTH];
        let (mut len, mut best_len) = (0, 0);
        let (mut total, mut best) = (0.0, -eps);
        while len < LK_DEPTH {
            let beyond = next(t, t2, fwd);
            let mut pick = None;
            let mut pick_gain = f64::NEG_INFINITY;
            for &t3 in nb.of(t2) {
                let d23 = p.d(t2, t3);
                if d23 >= g - eps {
                    break;
                }
                if t3 == t1 || t3 == beyond {
                    continue;
                }
                // Removing (t4, t3) and closing with (t4, t1) keeps a tour.
                let t4 = next(t, t3, !fwd);
                let look = p.d(t4, t3) - d23;
                if look > pick_gain {
                    pick_gain = look;
                    pick = Some((t3, t4, d23));
                }
            }
            let Some((t3, t4, d23)) = pick else {
                break;
            };
            let d43 = p.d(t4, t3);
            total += p.d(t1, t4) + d23 - p.d(t1, t2) - d43;
            t.exchange(t1, t2, t4, t3, fwd);
            steps[len] = (t2, t3, t4);
            len += 1;
            g = g - d23 + d43;
            if total < best {
                (best, best_len) = (total, len);
            }
            t2 = t4;
            fwd = t.succ(t1) == t4;
        }
        // Undo the steps after the best prefix, last first: each
        // restores edges (t1, t2) and (t4, t3).
        while len > best_len {
            len -= 1;
            let (t2, t3, t4) = steps[len];
            let f = t.succ(t1) == t4;
            t.exchange(t1, t4, t2, t3, f);
        }
        if best_len > 0 {
            ls.push(t1);
            for &(a, b, c) in &steps[..best_len] {
                for x in [a, b, c] {
                    ls.push(x);
                }
            }
            return Some(best);
        }
    }
    None
}
