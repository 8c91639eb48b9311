//! Iterated local search (Lourenço, Martin & Stützle 2003; the kick is
//! Martin, Otto & Felten's double bridge restricted to short segments so
//! that the local search after it stays local, as in Johnson & McGeoch
//! 1997).

use std::time::{Duration, Instant};

use crate::routing::Distances;
use crate::routing::local_search::{ArrayTour, LocalSearch};
use crate::routing::neighbours::Neighbours;
use crate::routing::problem::Problem;

/// Longest segment a double-bridge kick moves.
const KICK_SEGMENT: usize = 50;

/// Read the clock once per this many iterations.
const CLOCK_EVERY: u64 = 32;

/// Where the kicks land: SplitMix64 (Steele, Lea & Flood 2014) seeded by
/// [`SolveOptions::seed`](crate::routing::SolveOptions::seed). Choosing
/// kick positions needs no more than that, and a generator crate would put
/// `rand` into every build that depends on dispatchkit.
struct Kicks(u64);

impl Kicks {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` by multiply-shift (bias below n / 2^64).
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next()) * n as u128) >> 64) as usize
    }
}

/// What the ILS loop did.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IlsStats {
    pub(crate) iterations: u64,
    pub(crate) improvements: u64,
}

/// Runs the local search to a local optimum, then kicks and re-optimises
/// until `max_iterations` or `deadline`, keeping a kicked tour when it is
/// no longer than the current one. Returns the final (best) tour length.
#[expect(
    clippy::too_many_arguments,
    reason = "the loop's inputs are distinct (problem, neighbours, search state, tour, limits, seed, tolerance) and it has one caller"
)]
pub(crate) fn iterated_local_search<D: Distances + ?Sized>(
    p: &Problem<'_, D>,
    nb: &Neighbours,
    ls: &mut LocalSearch,
    t: &mut ArrayTour,
    max_iterations: u64,
    deadline: Option<Instant>,
    seed: u64,
    eps: f64,
) -> (f64, IlsStats) {
    ls.push_all(t);
    ls.run(p, nb, t);
    let mut cur = p.tour_length(&t.tour);
    let mut stats = IlsStats {
        iterations: 0,
        improvements: 0,
    };
    let n = t.n();
    // Below five stops the local search alone is exact: four stops have
    // three tours, each one 2-opt or one Or-opt move from the others.
    if n < 5 {
        return (cur, stats);
    }
    let open = p.real() != n;
    let lmax = KICK_SEGMENT.min((n - 2) / 2).max(1);
    let mut rng = Kicks(seed);
    let mut saved = t.clone();
    let mut buf = Vec::with_capacity(2 * lmax);
    while stats.iterations < max_iterations {
        if stats.iterations.is_multiple_of(CLOCK_EVERY)
            && deadline.is_some_and(|d| Instant::now() >= d)
        {
            break;
        }
        stats.iterations += 1;
        saved.copy_from(t);
        let p0 = rng.below(n);
        let l1 = 1 + rng.below(lmax);
        let l2 = 1 + rng.below(lmax);
        let [a, b, c, d, e, f] = t.double_bridge(p0, l1, l2, &mut buf);
        let kick = (p.d(a, d) + p.d(e, b) + p.d(c, f)) - (p.d(a, b) + p.d(c, d) + p.d(e, f));
        for x in [a, b, c, d, e, f] {
            ls.push(x);
        }
        let gain = ls.run(p, nb, t);
        // Open paths carry penalised dummy edges whose large values would
        // make an incremental sum drift: recount exactly.
        let new = if open {
            p.tour_length(&t.tour)
        } else {
            cur + kick + gain
        };
        if new < cur - eps {
            cur = new;
            stats.improvements += 1;
        } else if new <= cur + eps {
            // A sideways step: keep it (it diversifies), length unchanged.
        } else {
            t.copy_from(&saved);
        }
    }
    (p.tour_length(&t.tour), stats)
}

/// `deadline` from a budget, saturating far in the future.
pub(crate) fn deadline(start: Instant, budget: Option<Duration>) -> Option<Instant> {
    budget.map(|b| {
        start
            .checked_add(b)
            .unwrap_or(start + Duration::from_secs(86_400 * 365))
    })
}

#[cfg(test)]
mod tests {
    use super::Kicks;

    #[test]
    fn kicks_are_seeded_uniform_and_in_range() {
        let mut a = Kicks(7);
        let mut b = Kicks(7);
        let mut counts = [0u32; 5];
        for _ in 0..50_000 {
            let x = a.below(5);
            assert_eq!(x, b.below(5), "same seed, same kicks");
            counts[x] += 1;
        }
        // Each of 5 values within 5 % of 10,000.
        assert!(
            counts.iter().all(|&c| c.abs_diff(10_000) < 500),
            "{counts:?}"
        );
        assert_ne!(Kicks(1).next(), Kicks(2).next());
        assert_eq!(Kicks(3).below(1), 0);
    }
}
