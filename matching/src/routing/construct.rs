use crate::MatchingError;
use crate::routing::neighbours::Neighbours;
use crate::routing::problem::Problem;
use crate::routing::{Distances, Route, RouteShape};

/// How the heuristics build their first tour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum Construction {
    /// Nearest neighbour: from the first stop, always go to the nearest
    /// unvisited one. O(n²); typically 20–25 % above optimal on random
    /// Euclidean instances.
    NearestNeighbour,
    /// Greedy edge matching: take candidate edges (each stop's nearest
    /// neighbours) shortest first whenever both ends have degree < 2 and
    /// no cycle closes, then join the fragments nearest-end first.
    /// O(n² + n·k·log(n·k)); typically 15–20 % above optimal.
    #[default]
    Greedy,
}

/// A route built by `construction` alone (no improvement).
///
/// ```
/// use dispatchkit_matching::routing::{construct, Construction, PlanarMetric, PlanarPoints, RouteShape};
///
/// let pts = PlanarPoints::new(vec![(0., 0.), (5., 0.), (1., 0.), (6., 0.)], PlanarMetric::Euclidean)?;
/// let r = construct(&pts, RouteShape::path_from(0), Construction::NearestNeighbour)?;
/// assert_eq!(r.order, vec![0, 2, 1, 3]);
/// # Ok::<(), dispatchkit_matching::MatchingError>(())
/// ```
///
/// # Errors
/// The errors of [`RouteShape::check`]; [`MatchingError::InvalidDistance`]
/// for a NaN, infinite or negative distance.
pub fn construct<D: Distances + ?Sized>(
    d: &D,
    shape: RouteShape,
    construction: Construction,
) -> Result<Route, MatchingError> {
    let p = Problem::new(d, shape)?;
    let nb = Neighbours::new(&p, 10);
    Ok(p.to_route(&build(&p, &nb, construction)))
}

/// Internal closed tour by `construction`.
pub(crate) fn build<D: Distances + ?Sized>(
    p: &Problem<'_, D>,
    nb: &Neighbours,
    construction: Construction,
) -> Vec<u32> {
    let tour = match construction {
        Construction::NearestNeighbour => nearest_neighbour(p),
        Construction::Greedy => greedy(p, nb),
    };
    // Nearest neighbour may close the tour through a penalised dummy edge
    // when both ends are fixed; move the endpoints into place.
    p.repaired(tour)
}

fn nearest_neighbour<D: Distances + ?Sized>(p: &Problem<'_, D>) -> Vec<u32> {
    let n = p.n();
    // An open path starts from the dummy, whose nearest are the allowed
    // endpoints.
    let first = (p.real() % n) as u32;
    let mut visited = vec![false; n];
    let mut tour = Vec::with_capacity(n);
    let mut cur = first;
    visited[cur as usize] = true;
    tour.push(cur);
    for _ in 1..n {
        let mut best = (f64::INFINITY, u32::MAX);
        for c in 0..n as u32 {
            if !visited[c as usize] {
                let dc = p.d(cur, c);
                if dc < best.0 || best.1 == u32::MAX {
                    best = (dc, c);
                }
            }
        }
        cur = best.1;
        visited[cur as usize] = true;
        tour.push(cur);
    }
    tour
}

fn find(parent: &mut [u32], mut x: u32) -> u32 {
    while parent[x as usize] != x {
        let up = parent[parent[x as usize] as usize];
        parent[x as usize] = up;
        x = up;
    }
    x
}

fn greedy<D: Distances + ?Sized>(p: &Problem<'_, D>, nb: &Neighbours) -> Vec<u32> {
    let n = p.n();
    if n < 3 {
        return (0..n as u32).collect();
    }
    let mut edges: Vec<(f64, u32, u32)> = Vec::with_capacity(n * 10);
    for a in 0..n as u32 {
        for &b in nb.of(a) {
            if a < b || !nb.of(b).contains(&a) {
                edges.push((p.d(a, b), a.min(b), a.max(b)));
            }
        }
    }
    edges.sort_unstable_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)).then(x.2.cmp(&y.2)));
    edges.dedup_by(|x, y| x.1 == y.1 && x.2 == y.2);
    let mut adj = vec![[u32::MAX; 2]; n];
    let mut deg = vec![0u8; n];
    let mut parent: Vec<u32> = (0..n as u32).collect();
    let link = |adj: &mut Vec<[u32; 2]>, deg: &mut Vec<u8>, a: u32, b: u32| {
        adj[a as usize][deg[a as usize] as usize] = b;
        deg[a as usize] += 1;
        adj[b as usize][deg[b as usize] as usize] = a;
        deg[b as usize] += 1;
    };
    let mut added = 0;
    for &(_, a, b) in &edges {
        if deg[a as usize] >= 2 || deg[b as usize] >= 2 {
            continue;
        }
        let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
        if ra == rb {
            continue;
        }
        parent[ra as usize] = rb;
        link(&mut adj, &mut deg, a, b);
        added += 1;
        if added == n - 1 {
            break;
        }
    }
    // Join the fragments: from the current fragment's free end, go to the
    // nearest free end of another fragment. O(f²) over f fragment ends.
    let mut ends: Vec<u32> = (0..n as u32).filter(|&c| deg[c as usize] < 2).collect();
    let mut used = vec![false; n];
    let other_end = |adj: &[[u32; 2]], deg: &[u8], start: u32| -> u32 {
        if deg[start as usize] == 0 {
            return start;
        }
        let (mut prev, mut cur) = (start, adj[start as usize][0]);
        while deg[cur as usize] == 2 {
            let next = if adj[cur as usize][0] == prev {
                adj[cur as usize][1]
            } else {
                adj[cur as usize][0]
            };
            prev = cur;
            cur = next;
        }
        cur
    };
    if let Some(&first) = ends.first() {
        let mut cur_end = other_end(&adj, &deg, first);
        used[first as usize] = true;
        used[cur_end as usize] = true;
        ends.retain(|&c| !used[c as usize]);
        while !ends.is_empty() {
            let (mut bi, mut bd) = (0, f64::INFINITY);
            for (i, &c) in ends.iter().enumerate() {
                let dc = p.d(cur_end, c);
                if dc < bd {
                    bd = dc;
                    bi = i;
                }
            }
            let next = ends[bi];
            let far = other_end(&adj, &deg, next);
            link(&mut adj, &mut deg, cur_end, next);
            used[next as usize] = true;
            used[far as usize] = true;
            cur_end = far;
            ends.retain(|&c| !used[c as usize]);
        }
    }
    // Walk the Hamiltonian path (or cycle) from a degree-1 end if any.
    let start = (0..n as u32).find(|&c| deg[c as usize] < 2).unwrap_or(0);
    let mut tour = Vec::with_capacity(n);
    let (mut prev, mut cur) = (u32::MAX, start);
    for _ in 0..n {
        tour.push(cur);
        let [x, y] = adj[cur as usize];
        let next = if x != prev && x != u32::MAX { x } else { y };
        prev = cur;
        cur = next;
        if cur == u32::MAX {
            break;
        }
    }
    debug_assert_eq!(tour.len(), n);
    tour
}
