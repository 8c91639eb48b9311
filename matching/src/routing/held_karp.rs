use crate::MatchingError;
use crate::routing::distances::check_distance;
use crate::routing::route::length_unchecked;
use crate::routing::{Distances, Route, RouteShape};

/// Largest number of stops [`held_karp`] accepts (its table has
/// `2¹⁶ × 16` entries, 9 MiB, at the limit).
pub const HELD_KARP_LIMIT: usize = 16;

/// The optimal route by the Held–Karp dynamic programme (Bellman 1962,
/// Held & Karp 1962): exact for closed tours and for open paths with
/// any combination of fixed / free endpoints. O(2ⁿ · n²) time,
/// O(2ⁿ · n) memory.
///
/// Ties are broken towards the lower stop index, so the result is
/// deterministic.
///
/// ```
/// use dispatchkit_matching::routing::{held_karp, PlanarMetric, PlanarPoints, RouteShape};
///
/// let pts = PlanarPoints::new(vec![(0., 0.), (2., 0.), (1., 0.), (3., 0.)], PlanarMetric::Euclidean)?;
/// let path = held_karp(&pts, RouteShape::path_from(0))?;
/// assert_eq!(path.order, vec![0, 2, 1, 3]);
/// assert_eq!(path.length, 3.0);
/// # Ok::<(), dispatchkit_matching::MatchingError>(())
/// ```
///
/// # Errors
/// [`MatchingError::TooLarge`] above [`HELD_KARP_LIMIT`] stops; the
/// errors of [`RouteShape::check`]; [`MatchingError::InvalidDistance`] for
/// a NaN, infinite or negative distance.
pub fn held_karp<D: Distances + ?Sized>(d: &D, shape: RouteShape) -> Result<Route, MatchingError> {
    let n = d.len();
    shape.check(n)?;
    if n > HELD_KARP_LIMIT {
        return Err(MatchingError::TooLarge {
            what: "stops for Held-Karp",
            size: n,
            limit: HELD_KARP_LIMIT,
        });
    }
    for i in 0..n {
        for j in 0..n {
            if i != j {
                check_distance(i, j, d.dist(i, j))?;
            }
        }
    }
    let (start, end, reverse) = match shape {
        RouteShape::Closed => (Some(0), None, false),
        RouteShape::Open {
            start: None,
            end: Some(e),
        } => (Some(e), None, true),
        RouteShape::Open { start, end } => (start, end, false),
    };
    let mut order = dp(d, start, end, shape.is_closed());
    if reverse {
        order.reverse();
    }
    let length = length_unchecked(d, shape.is_closed(), &order);
    Ok(Route { order, length })
}

/// The DP proper. `start` fixed (or free), `end` fixed (or free), `closed`
/// adds the leg back to `start`.
fn dp<D: Distances + ?Sized>(
    d: &D,
    start: Option<usize>,
    end: Option<usize>,
    closed: bool,
) -> Vec<usize> {
    let n = d.len();
    if n == 1 {
        return vec![0];
    }
    let nodes: Vec<usize> = (0..n).filter(|&v| Some(v) != start).collect();
    let m = nodes.len();
    let full = (1usize << m) - 1;
    let mut cost = vec![f64::INFINITY; (full + 1) * m];
    let mut parent = vec![u8::MAX; (full + 1) * m];
    for (j, &v) in nodes.iter().enumerate() {
        cost[(1 << j) * m + j] = start.map_or(0.0, |s| d.dist(s, v));
    }
    for mask in 1..=full {
        for j in 0..m {
            let c = cost[mask * m + j];
            if mask & (1 << j) == 0 || !c.is_finite() {
                continue;
            }
            let vj = nodes[j];
            for (k, &vk) in nodes.iter().enumerate() {
                if mask & (1 << k) != 0 {
                    continue;
                }
                let next = mask | (1 << k);
                let nc = c + d.dist(vj, vk);
                let slot = next * m + k;
                if nc < cost[slot] {
                    cost[slot] = nc;
                    parent[slot] = j as u8;
                }
            }
        }
    }
    let last = match end {
        Some(e) => nodes.iter().position(|&v| v == e).unwrap_or(0),
        None => {
            let mut best = (f64::INFINITY, 0);
            for (j, &vj) in nodes.iter().enumerate() {
                let tail = match (closed, start) {
                    (true, Some(s)) => d.dist(vj, s),
                    _ => 0.0,
                };
                let c = cost[full * m + j] + tail;
                if c < best.0 {
                    best = (c, j);
                }
            }
            best.1
        }
    };
    let mut order = Vec::with_capacity(n);
    let (mut mask, mut j) = (full, last);
    loop {
        order.push(nodes[j]);
        let p = parent[mask * m + j];
        mask &= !(1 << j);
        if p == u8::MAX || mask == 0 {
            break;
        }
        j = p as usize;
    }
    if let Some(s) = start {
        order.push(s);
    }
    order.reverse();
    order
}
