use std::time::{Duration, Instant};

use crate::MatchingError;
use crate::routing::construct::build;
use crate::routing::held_karp::HELD_KARP_LIMIT;
use crate::routing::ils::{Limits, deadline, iterated_local_search};
use crate::routing::local_search::{ArrayTour, LocalSearch};
use crate::routing::neighbours::Neighbours;
use crate::routing::problem::Problem;
use crate::routing::route::check_order;
use crate::routing::{Construction, Distances, Moves, Route, RouteShape, held_karp};

/// Parameters of [`solve`] and [`improve`].
///
/// | field | default | meaning |
/// |---|---|---|
/// | `exact_up_to` | 12 | [`solve`] uses Held–Karp up to this many stops (max [`HELD_KARP_LIMIT`]) |
/// | `construction` | `Greedy` | first tour of the heuristic |
/// | `neighbours` | 10 | candidate list length per stop (≥ 1) |
/// | `moves` | 2-opt + Or-opt | local search moves |
/// | `max_iterations` | no cap (`u64::MAX`) | double-bridge kicks; 0 = plain local search |
/// | `stall_per_stop` | 200 | stop after `200 × n` kicks without a new best tour (0 = never) |
/// | `time_budget` | 1 s | wall-clock bound on the kicks (`None` = none) |
/// | `seed` | 1 | seed of the kicks |
///
/// The search stops at whichever limit comes first. By default that is
/// the budget on large instances (on the TSPLIB development instances,
/// 442 and 532 stops) and the stall rule on smaller ones, which then
/// return in 0.1–0.7 s (the bench's gap table). With `time_budget: None`
/// the result is a function of the input, the options and the seed only
/// (deterministic); with a budget, of how many kicks fit in it as well.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "solve_options_serde::Unchecked")
)]
pub struct SolveOptions {
    /// Largest instance solved exactly by Held–Karp.
    pub exact_up_to: usize,
    /// Construction of the first tour.
    pub construction: Construction,
    /// Nearest neighbours considered per stop by the moves.
    pub neighbours: usize,
    /// Local search moves.
    pub moves: Moves,
    /// Most kicks of the iterated local search.
    pub max_iterations: u64,
    /// Kicks without a new best tour, per stop, after which the search
    /// stops (0: no such limit).
    pub stall_per_stop: u64,
    /// Wall-clock bound on the iterated local search.
    pub time_budget: Option<Duration>,
    /// Seed of the kicks.
    pub seed: u64,
}

dispatchkit_geo_index::deserialize_checked!(
    solve_options_serde,
    SolveOptions {
        exact_up_to: usize,
        construction: Construction,
        neighbours: usize,
        moves: Moves,
        max_iterations: u64,
        stall_per_stop: u64,
        time_budget: Option<Duration>,
        seed: u64,
    },
    SolveOptions::check,
    MatchingError
);

impl Default for SolveOptions {
    fn default() -> Self {
        Self {
            exact_up_to: 12,
            construction: Construction::Greedy,
            neighbours: 10,
            moves: Moves::default(),
            max_iterations: u64::MAX,
            stall_per_stop: 200,
            time_budget: Some(Duration::from_secs(1)),
            seed: 1,
        }
    }
}

impl SolveOptions {
    /// Checks the options.
    ///
    /// # Errors
    /// [`MatchingError::InvalidParameter`] for `neighbours == 0`,
    /// `exact_up_to > HELD_KARP_LIMIT`, or no limit on the kicks at all
    /// (`max_iterations == u64::MAX`, `stall_per_stop == 0` and no
    /// `time_budget`: the search would never stop).
    pub fn check(&self) -> Result<(), MatchingError> {
        if self.neighbours == 0 {
            return Err(MatchingError::param(
                "neighbours",
                0.0,
                "the moves need at least one neighbour per stop",
            ));
        }
        if self.max_iterations == u64::MAX && self.stall_per_stop == 0 && self.time_budget.is_none()
        {
            return Err(MatchingError::param(
                "max_iterations",
                self.max_iterations as f64,
                "with no stall limit and no time budget, the kicks need a finite cap",
            ));
        }
        if self.exact_up_to > HELD_KARP_LIMIT {
            return Err(MatchingError::param(
                "exact_up_to",
                self.exact_up_to as f64,
                "Held-Karp is limited to HELD_KARP_LIMIT (16) stops",
            ));
        }
        Ok(())
    }
}

/// A route with how it was found.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Solution {
    /// The route.
    pub route: Route,
    /// Whether `route` is proven optimal (Held–Karp).
    pub exact: bool,
    /// Length of the tour the search started from.
    pub initial_length: f64,
    /// Kicks performed.
    pub iterations: u64,
    /// Kicks that found a new best tour.
    pub improvements: u64,
    /// Wall-clock time spent.
    pub elapsed: Duration,
}

/// The best route this crate can find within `opts`: Held–Karp (exact)
/// up to `opts.exact_up_to` stops, otherwise a construction followed by
/// the iterated local search (2-opt + Or-opt with neighbour lists and
/// don't-look bits, double-bridge kicks). O(n²) set-up (distance checks,
/// neighbour lists) plus the search.
///
/// ```
/// use std::time::Duration;
/// use dispatchkit_matching::routing::{solve, PlanarMetric, PlanarPoints, RouteShape, SolveOptions};
///
/// // 40 points on a circle: the optimal tour follows the circle.
/// let pts: Vec<(f64, f64)> = (0..40)
///     .map(|i| {
///         let a = (i * 17 % 40) as f64 * std::f64::consts::TAU / 40.0;
///         (1000.0 * a.cos(), 1000.0 * a.sin())
///     })
///     .collect();
/// let pts = PlanarPoints::new(pts, PlanarMetric::Euclidean)?;
/// let opts = SolveOptions { max_iterations: 200, time_budget: None, ..SolveOptions::default() };
/// let sol = solve(&pts, RouteShape::Closed, &opts)?;
/// let circle = 40.0 * 2.0 * 1000.0 * (std::f64::consts::PI / 40.0).sin();
/// assert!((sol.route.length - circle).abs() < 1e-6);
/// # Ok::<(), dispatchkit_matching::MatchingError>(())
/// ```
///
/// # Errors
/// The errors of [`SolveOptions::check`], [`RouteShape::check`] (e.g. no
/// stops) and [`MatchingError::InvalidDistance`] for a NaN, infinite or
/// negative distance.
pub fn solve<D: Distances + ?Sized>(
    d: &D,
    shape: RouteShape,
    opts: &SolveOptions,
) -> Result<Solution, MatchingError> {
    opts.check()?;
    let start = Instant::now();
    if d.len() <= opts.exact_up_to {
        let route = held_karp(d, shape)?;
        return Ok(Solution {
            initial_length: route.length,
            route,
            exact: true,
            iterations: 0,
            improvements: 0,
            elapsed: start.elapsed(),
        });
    }
    let p = Problem::new(d, shape)?;
    let nb = Neighbours::new(&p, opts.neighbours);
    let tour = build(&p, &nb, opts.construction);
    run(&p, &nb, tour, opts, start)
}

/// Improves a given route: local search to a local optimum, then the
/// iterated local search of [`solve`] (`opts.max_iterations == 0` gives
/// the plain local search). The result is never longer than `order`.
///
/// ```
/// use dispatchkit_matching::routing::{improve, route_length, PlanarMetric, PlanarPoints, RouteShape, SolveOptions};
///
/// let pts = PlanarPoints::new(vec![(0., 0.), (1., 1.), (1., 0.), (0., 1.), (2., 0.5)], PlanarMetric::Euclidean)?;
/// let start = [0, 1, 2, 3, 4];
/// let before = route_length(&pts, RouteShape::Closed, &start)?;
/// let opts = SolveOptions { max_iterations: 0, ..SolveOptions::default() };
/// let after = improve(&pts, RouteShape::Closed, &start, &opts)?;
/// assert!(after.route.length < before);
/// # Ok::<(), dispatchkit_matching::MatchingError>(())
/// ```
///
/// # Errors
/// As [`solve`]; [`MatchingError::InvalidTour`] /
/// [`MatchingError::SizeMismatch`] when `order` is not a permutation of
/// the stops that respects `shape`'s fixed endpoints.
pub fn improve<D: Distances + ?Sized>(
    d: &D,
    shape: RouteShape,
    order: &[usize],
    opts: &SolveOptions,
) -> Result<Solution, MatchingError> {
    opts.check()?;
    let start = Instant::now();
    check_order(d.len(), shape, order)?;
    let p = Problem::new(d, shape)?;
    let nb = Neighbours::new(&p, opts.neighbours);
    let tour = p.to_internal(order);
    run(&p, &nb, tour, opts, start)
}

fn run<D: Distances + ?Sized>(
    p: &Problem<'_, D>,
    nb: &Neighbours,
    tour: Vec<u32>,
    opts: &SolveOptions,
    start: Instant,
) -> Result<Solution, MatchingError> {
    let initial = p.to_route(&tour);
    let eps = 1e-9 * (1.0 + p.dmax);
    let mut t = ArrayTour::new(tour);
    let mut ls = LocalSearch::new(p.n(), opts.moves, eps);
    let (_, stats) = iterated_local_search(
        p,
        nb,
        &mut ls,
        &mut t,
        Limits {
            kicks: opts.max_iterations,
            stall: opts.stall_per_stop.saturating_mul(p.n() as u64),
            deadline: deadline(start, opts.time_budget),
        },
        opts.seed,
        eps,
    );
    let mut route = p.to_route(&t.tour);
    // Never return something longer than the start (rounding in the
    // incremental sums cannot make a tour worse by more than eps, but the
    // contract is strict).
    if route.length > initial.length {
        route = initial.clone();
    }
    Ok(Solution {
        route,
        exact: false,
        initial_length: initial.length,
        iterations: stats.iterations,
        improvements: stats.improvements,
        elapsed: start.elapsed(),
    })
}
