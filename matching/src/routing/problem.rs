//! The internal form every heuristic works on: a closed tour over `n`
//! nodes, where an open path is a closed tour through one extra "dummy"
//! node whose edges cost 0 to the allowed endpoints and a penalty `P` to
//! every other stop.
//!
//! `P = 2 · Σᵢ maxⱼ d(i, j) + 1` exceeds the length of every Hamiltonian
//! path, so (1) a tour with a penalised dummy edge is longer than every
//! tour without one and the iterated local search never keeps it, and (2)
//! no 2-opt / Or-opt move can gain more than `P` by adding one.

use crate::MatchingError;
use crate::routing::distances::{DENSE_LIMIT, check_distance};
use crate::routing::route::length_unchecked;
use crate::routing::{Distances, Route, RouteShape};

/// Endpoint rules of the dummy node.
#[derive(Debug, Clone, Copy)]
struct Dummy {
    start: Option<usize>,
    end: Option<usize>,
    penalty: f64,
}

impl Dummy {
    #[inline]
    fn cost(&self, x: usize) -> f64 {
        match (self.start, self.end) {
            (None, None) => 0.0,
            (s, e) => {
                if s == Some(x) || e == Some(x) {
                    0.0
                } else {
                    self.penalty
                }
            }
        }
    }
}

/// A validated instance in internal form.
#[derive(Debug)]
pub(crate) struct Problem<'a, D: ?Sized> {
    inner: &'a D,
    shape: RouteShape,
    /// Real stops.
    real: usize,
    /// Internal nodes: `real`, plus one for the dummy of an open path.
    n: usize,
    dummy: Option<Dummy>,
    /// Row-major `n × n` when `n <= DENSE_LIMIT`.
    dense: Option<Vec<f64>>,
    /// Largest real distance.
    pub(crate) dmax: f64,
}

impl<'a, D: Distances + ?Sized> Problem<'a, D> {
    /// Validates `shape` and every distance (O(n²) reads) and builds the
    /// dense matrix when it fits.
    pub(crate) fn new(inner: &'a D, shape: RouteShape) -> Result<Self, MatchingError> {
        let real = inner.len();
        shape.check(real)?;
        let mut row_max_sum = 0.0;
        let mut dmax: f64 = 0.0;
        for i in 0..real {
            let mut row_max: f64 = 0.0;
            for j in 0..real {
                if i == j {
                    continue;
                }
                let v = inner.dist(i, j);
                check_distance(i, j, v)?;
                row_max = row_max.max(v);
            }
            row_max_sum += row_max;
            dmax = dmax.max(row_max);
        }
        let dummy = match shape {
            RouteShape::Closed => None,
            RouteShape::Open { .. } if real == 1 => None,
            RouteShape::Open { start, end } => Some(Dummy {
                start,
                end,
                penalty: 2.0 * row_max_sum + 1.0,
            }),
        };
        let n = real + usize::from(dummy.is_some());
        let mut p = Self {
            inner,
            shape,
            real,
            n,
            dummy,
            dense: None,
            dmax,
        };
        if n <= DENSE_LIMIT {
            let mut m = vec![0.0; n * n];
            for i in 0..n {
                for j in 0..n {
                    if i != j {
                        m[i * n + j] = p.direct(i, j);
                    }
                }
            }
            p.dense = Some(m);
        }
        Ok(p)
    }

    /// Internal node count.
    #[inline]
    pub(crate) fn n(&self) -> usize {
        self.n
    }

    /// Real stop count.
    pub(crate) fn real(&self) -> usize {
        self.real
    }

    #[inline]
    fn direct(&self, a: usize, b: usize) -> f64 {
        match self.dummy {
            Some(dm) if a == self.real => {
                if b == self.real {
                    0.0
                } else {
                    dm.cost(b)
                }
            }
            Some(dm) if b == self.real => dm.cost(a),
            _ if a == b => 0.0,
            _ => self.inner.dist(a, b),
        }
    }

    /// Internal distance.
    #[inline]
    pub(crate) fn d(&self, a: u32, b: u32) -> f64 {
        let (a, b) = (a as usize, b as usize);
        match &self.dense {
            Some(m) => m[a * self.n + b],
            None => self.direct(a, b),
        }
    }

    /// Length of an internal closed tour.
    pub(crate) fn tour_length(&self, tour: &[u32]) -> f64 {
        if tour.len() < 2 {
            return 0.0;
        }
        let mut len = self.d(tour[tour.len() - 1], tour[0]);
        for w in tour.windows(2) {
            len += self.d(w[0], w[1]);
        }
        len
    }

    /// Internal closed tour of a valid real `order` (already checked
    /// against the shape): the dummy, if any, goes after the last stop.
    pub(crate) fn to_internal(&self, order: &[usize]) -> Vec<u32> {
        let mut t: Vec<u32> = order.iter().map(|&s| s as u32).collect();
        if self.dummy.is_some() {
            t.push(self.real as u32);
        }
        t
    }

    /// The real order of an internal closed tour: rotated to start at
    /// stop 0 (closed) or cut at the dummy and oriented to the fixed
    /// endpoints (open). The second value is false when a fixed endpoint
    /// was not next to the dummy and had to be moved into place (so the
    /// order is always valid for the shape).
    fn order_of(&self, tour: &[u32]) -> (Vec<usize>, bool) {
        let mut order: Vec<usize> = Vec::with_capacity(self.real);
        let anchor = match self.dummy {
            Some(_) => self.real as u32,
            None => 0,
        };
        let k = tour.iter().position(|&c| c == anchor).unwrap_or(0);
        let skip = usize::from(self.dummy.is_some());
        for i in 0..tour.len() - skip {
            order.push(tour[(k + skip + i) % tour.len()] as usize);
        }
        let mut fitted = true;
        if let RouteShape::Open { start, end } = self.shape {
            let fits = |o: &[usize]| {
                start.is_none_or(|s| o.first() == Some(&s))
                    && end.is_none_or(|e| o.last() == Some(&e))
            };
            if !fits(&order) {
                order.reverse();
            }
            if !fits(&order) {
                fitted = false;
                order.retain(|&c| Some(c) != start && Some(c) != end);
                if let Some(s) = start {
                    order.insert(0, s);
                }
                if let Some(e) = end {
                    order.push(e);
                }
            }
        }
        (order, fitted)
    }

    /// An internal tour whose dummy edges are both unpenalised (a
    /// construction's tour, repaired if needed).
    pub(crate) fn repaired(&self, tour: Vec<u32>) -> Vec<u32> {
        match self.order_of(&tour) {
            (_, true) => tour,
            (order, false) => self.to_internal(&order),
        }
    }

    /// The route of an internal closed tour (see `order_of`). The local
    /// search never keeps a penalised edge, so no repair is needed here.
    pub(crate) fn to_route(&self, tour: &[u32]) -> Route {
        let (order, fitted) = self.order_of(tour);
        debug_assert!(fitted, "penalised dummy edge survived");
        let length = length_unchecked(self.inner, self.shape.is_closed(), &order);
        Route { order, length }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::{DistanceMatrix, route_length};

    fn line(n: usize) -> DistanceMatrix {
        DistanceMatrix::from_fn(n, |i, j| (i as f64 - j as f64).abs()).unwrap()
    }

    #[test]
    fn dummy_tour_maps_back_to_a_valid_path() {
        let d = line(5);
        for shape in [
            RouteShape::free_path(),
            RouteShape::path_from(2),
            RouteShape::path_between(4, 0),
            RouteShape::Open {
                start: None,
                end: Some(3),
            },
        ] {
            let p = Problem::new(&d, shape).unwrap();
            assert_eq!(p.n(), 6);
            // Any internal tour maps to a valid route once repaired.
            let t = p.repaired(vec![0, 1, 2, 5, 3, 4]);
            let r = p.to_route(&t);
            route_length(&d, shape, &r.order).unwrap();
        }
    }

    #[test]
    fn penalty_exceeds_any_path() {
        let d = line(6);
        let p = Problem::new(&d, RouteShape::path_from(0)).unwrap();
        // The worst path is below the penalty.
        let worst = p.d(6, 3);
        assert!(worst > 5.0 * 5.0);
        assert_eq!(p.d(6, 0), 0.0);
    }

    #[test]
    fn closed_route_starts_at_zero() {
        let d = line(4);
        let p = Problem::new(&d, RouteShape::Closed).unwrap();
        let r = p.to_route(&[2, 3, 0, 1]);
        assert_eq!(r.order, vec![0, 1, 2, 3]);
        assert_eq!(r.length, 6.0);
    }
}
