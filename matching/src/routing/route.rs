use crate::MatchingError;
use crate::routing::Distances;

/// Which kind of route to build over the stops.
///
/// ```
/// use dispatchkit_matching::routing::RouteShape;
///
/// let from_depot = RouteShape::path_from(0); // open path, starts at stop 0, ends anywhere
/// assert_eq!(from_depot, RouteShape::Open { start: Some(0), end: None });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum RouteShape {
    /// A closed tour: visits every stop once and returns to the first.
    /// Reported starting at stop 0.
    #[default]
    Closed,
    /// An open path: visits every stop once; `start` / `end` fix the first
    /// / last stop when given.
    Open {
        /// Stop the path must start at.
        start: Option<usize>,
        /// Stop the path must end at.
        end: Option<usize>,
    },
}

impl RouteShape {
    /// An open path starting at `start`, ending anywhere.
    pub const fn path_from(start: usize) -> Self {
        Self::Open {
            start: Some(start),
            end: None,
        }
    }

    /// An open path from `start` to `end`.
    pub const fn path_between(start: usize, end: usize) -> Self {
        Self::Open {
            start: Some(start),
            end: Some(end),
        }
    }

    /// An open path with both ends free.
    pub const fn free_path() -> Self {
        Self::Open {
            start: None,
            end: None,
        }
    }

    /// Whether the route returns to its first stop.
    pub const fn is_closed(&self) -> bool {
        matches!(self, Self::Closed)
    }

    /// Checks the shape against `n` stops.
    ///
    /// # Errors
    /// [`MatchingError::Empty`] for `n == 0`; [`MatchingError::TooLarge`]
    /// above [`MAX_STOPS`] (the solvers' set-up is O(n²));
    /// [`MatchingError::UnknownId`] for an endpoint `>= n`;
    /// [`MatchingError::InvalidParameter`] when `start == end` on more than
    /// one stop (that is a closed tour).
    pub fn check(&self, n: usize) -> Result<(), MatchingError> {
        if n == 0 {
            return Err(MatchingError::Empty {
                what: "stops",
                reason: "a route needs at least one stop",
            });
        }
        if n > MAX_STOPS {
            return Err(MatchingError::TooLarge {
                what: "stops of a route",
                size: n,
                limit: MAX_STOPS,
            });
        }
        if let Self::Open { start, end } = *self {
            for s in [start, end].into_iter().flatten() {
                if s >= n {
                    return Err(MatchingError::UnknownId {
                        what: "stop",
                        id: s as u64,
                    });
                }
            }
            if let (Some(s), Some(e)) = (start, end)
                && s == e
                && n > 1
            {
                return Err(MatchingError::param(
                    "end",
                    e as f64,
                    "an open path cannot start and end at the same stop; use RouteShape::Closed",
                ));
            }
        }
        Ok(())
    }
}

/// Largest number of stops a route may have (2^20): the solvers check
/// every distance up front, O(n²), and size their tables by `n`, so a
/// [`Distances`] reporting a larger `len()` is refused before any of that.
pub const MAX_STOPS: usize = 1 << 20;

/// A route: the stops in visiting order and its length.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Route {
    /// Every stop exactly once, in visiting order. A closed tour starts at
    /// stop 0; an open path starts / ends at the fixed endpoints.
    pub order: Vec<usize>,
    /// Sum of the legs (for a closed tour, including the leg back to the
    /// first stop), in the unit of the [`Distances`].
    pub length: f64,
}

/// Length of `order` under `shape`: the sum of consecutive legs, plus the
/// closing leg for [`RouteShape::Closed`]. O(n).
///
/// ```
/// use dispatchkit_matching::routing::{route_length, PlanarMetric, PlanarPoints, RouteShape};
///
/// let square = PlanarPoints::new(vec![(0., 0.), (0., 1.), (1., 1.), (1., 0.)], PlanarMetric::Euclidean)?;
/// assert_eq!(route_length(&square, RouteShape::Closed, &[0, 1, 2, 3])?, 4.0);
/// assert_eq!(route_length(&square, RouteShape::free_path(), &[0, 1, 2, 3])?, 3.0);
/// # Ok::<(), dispatchkit_matching::MatchingError>(())
/// ```
///
/// # Errors
/// [`MatchingError::InvalidTour`] when `order` is not a permutation of
/// `0..d.len()` or breaks the shape's fixed endpoints; the errors of
/// [`RouteShape::check`].
pub fn route_length<D: Distances + ?Sized>(
    d: &D,
    shape: RouteShape,
    order: &[usize],
) -> Result<f64, MatchingError> {
    check_order(d.len(), shape, order)?;
    Ok(length_unchecked(d, shape.is_closed(), order))
}

pub(crate) fn length_unchecked<D: Distances + ?Sized>(d: &D, closed: bool, order: &[usize]) -> f64 {
    let mut len: f64 = order.windows(2).map(|w| d.dist(w[0], w[1])).sum();
    if closed && order.len() > 1 {
        len += d.dist(order[order.len() - 1], order[0]);
    }
    len
}

/// Checks that `order` is a permutation of `0..n` that respects `shape`.
pub(crate) fn check_order(
    n: usize,
    shape: RouteShape,
    order: &[usize],
) -> Result<(), MatchingError> {
    shape.check(n)?;
    if order.len() != n {
        return Err(MatchingError::SizeMismatch {
            what: "route stops",
            expected: n,
            got: order.len(),
        });
    }
    let mut seen = vec![false; n];
    for (at, &s) in order.iter().enumerate() {
        if s >= n {
            return Err(MatchingError::InvalidTour {
                at,
                reason: "stop index out of range",
            });
        }
        if std::mem::replace(&mut seen[s], true) {
            return Err(MatchingError::InvalidTour {
                at,
                reason: "stop visited twice",
            });
        }
    }
    if let RouteShape::Open { start, end } = shape {
        if start.is_some_and(|s| order[0] != s) {
            return Err(MatchingError::InvalidTour {
                at: 0,
                reason: "the path does not start at the fixed start",
            });
        }
        if end.is_some_and(|e| order[n - 1] != e) {
            return Err(MatchingError::InvalidTour {
                at: n - 1,
                reason: "the path does not end at the fixed end",
            });
        }
    }
    Ok(())
}
