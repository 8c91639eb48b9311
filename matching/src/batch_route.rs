use dispatchkit_geo_index::{LonLat, VehicleType};

use crate::MatchingError;
use crate::eta::{EtaModel, Leg};

/// Largest number of orders in one batch (the seed's "batch up to 3
/// orders per Dasher"); [`batch_route`] is exact up to it.
pub const MAX_BATCH: usize = 3;

/// A delivery order's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct OrderId(pub u64);

/// A delivery order ready for pickup.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Order {
    /// Its id.
    pub id: OrderId,
    /// The restaurant.
    pub pickup: LonLat,
    /// The customer.
    pub dropoff: LonLat,
}

/// Whether a stop collects or delivers an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum StopKind {
    /// Collect the order at the restaurant.
    Pickup,
    /// Deliver it to the customer.
    Dropoff,
}

/// One stop of a batch route.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Stop {
    /// The order.
    pub order: OrderId,
    /// Pickup or drop-off.
    pub kind: StopKind,
    /// Where.
    pub at: LonLat,
    /// Seconds from the start of the route until the stop is done
    /// (pickups include the model's pickup overhead).
    pub done_after_secs: f64,
}

/// The best route through a batch: every pickup before its drop-off.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct BatchRoute {
    /// The stops in order (2 per order).
    pub stops: Vec<Stop>,
    /// Road distance, metres (from the start position when one was given).
    pub metres: f64,
    /// Total time, seconds: driving plus the pickup overheads.
    pub secs: f64,
}

impl BatchRoute {
    /// Seconds from the start of the route until `order` is delivered.
    pub fn delivered_after_secs(&self, order: OrderId) -> Option<f64> {
        self.stops
            .iter()
            .find(|s| s.order == order && s.kind == StopKind::Dropoff)
            .map(|s| s.done_after_secs)
    }
}

/// The optimal route through a batch of at most [`MAX_BATCH`] orders, from
/// `start` (a dasher's position) when given, else from whichever pickup
/// comes first: exhaustive over the `(2k)! / 2ᵏ` orders of stops that put
/// every pickup before its drop-off (90 for 3 orders), minimising total
/// time (driving + pickup overheads; ties keep the first sequence in
/// enumeration order: lower node first, pickups before drop-offs). O((2k+1)²) ETA calls + O((2k)!/2ᵏ · k).
///
/// ```
/// use dispatchkit_geo_index::{LonLat, VehicleType};
/// use dispatchkit_matching::{batch_route, HaversineEta, Order, OrderId, StopKind};
///
/// let p = |lon: f64| LonLat::new(lon, 48.85).unwrap();
/// // Two orders from one restaurant going east, the nearer one first.
/// let orders = [
///     Order { id: OrderId(1), pickup: p(2.30), dropoff: p(2.34) },
///     Order { id: OrderId(2), pickup: p(2.30), dropoff: p(2.32) },
/// ];
/// let r = batch_route(&HaversineEta::default(), VehicleType::new(0)?, Some(p(2.29)), &orders)?;
/// let seq: Vec<(u64, StopKind)> = r.stops.iter().map(|s| (s.order.0, s.kind)).collect();
/// assert_eq!(seq[2..], [(2, StopKind::Dropoff), (1, StopKind::Dropoff)]);
/// # Ok::<(), dispatchkit_matching::MatchingError>(())
/// ```
///
/// # Errors
/// [`MatchingError::Empty`] for no orders; [`MatchingError::TooLarge`]
/// above [`MAX_BATCH`]; [`MatchingError::InvalidDistance`] when the ETA
/// model returns an unusable leg.
pub fn batch_route<E: EtaModel + ?Sized>(
    eta: &E,
    vehicle: VehicleType,
    start: Option<LonLat>,
    orders: &[Order],
) -> Result<BatchRoute, MatchingError> {
    let k = orders.len();
    if k == 0 {
        return Err(MatchingError::Empty {
            what: "batch orders",
            reason: "a batch route needs at least one order",
        });
    }
    if k > MAX_BATCH {
        return Err(MatchingError::TooLarge {
            what: "batch",
            size: k,
            limit: MAX_BATCH,
        });
    }
    // Nodes: 0..k pickups, k..2k drop-offs, 2k the start (if any).
    let pos = |n: usize| -> LonLat {
        if n < k {
            orders[n].pickup
        } else if n < 2 * k {
            orders[n - k].dropoff
        } else {
            start.unwrap_or(orders[0].pickup)
        }
    };
    let nodes = 2 * k + 1;
    let mut legs = [[Leg::default(); 2 * MAX_BATCH + 1]; 2 * MAX_BATCH + 1];
    for (a, row) in legs.iter_mut().enumerate().take(nodes) {
        for (b, leg) in row.iter_mut().enumerate().take(nodes) {
            if a == b || (start.is_none() && (a == 2 * k || b == 2 * k)) {
                continue;
            }
            *leg = eta.leg(pos(a), pos(b), vehicle);
            if !leg.is_usable() {
                return Err(MatchingError::InvalidDistance {
                    from: a,
                    to: b,
                    value: leg.secs,
                    reason: "the ETA model returned an unusable leg",
                });
            }
        }
    }
    let overhead = eta.pickup_overhead_secs(vehicle);
    let (seq, _) = best_sequence(k, start.is_some(), |a, b| legs[a][b].secs, overhead);
    let mut stops = Vec::with_capacity(2 * k);
    let (mut metres, mut secs) = (0.0, 0.0);
    let mut prev = start.map(|_| 2 * k);
    for &n in &seq {
        if let Some(p) = prev {
            metres += legs[p][n].metres;
            secs += legs[p][n].secs;
        }
        let kind = if n < k {
            StopKind::Pickup
        } else {
            StopKind::Dropoff
        };
        if kind == StopKind::Pickup {
            secs += overhead;
        }
        stops.push(Stop {
            order: orders[n % k].id,
            kind,
            at: pos(n),
            done_after_secs: secs,
        });
        prev = Some(n);
    }
    Ok(BatchRoute {
        stops,
        metres,
        secs,
    })
}

/// The exact search: the cheapest sequence of nodes `0..2k` (pickup `i`
/// is node `i`, its drop-off node `k + i`) with every pickup before its
/// drop-off, starting from node `2k` when `from_start`. `cost(a, b)` is
/// the leg cost; each pickup adds `overhead`. Returns (sequence, cost).
pub(crate) fn best_sequence(
    k: usize,
    from_start: bool,
    cost: impl Fn(usize, usize) -> f64,
    overhead: f64,
) -> (Vec<usize>, f64) {
    struct Search<'c, C> {
        k: usize,
        cost: &'c C,
        overhead: f64,
        seq: Vec<usize>,
        best: Vec<usize>,
        best_cost: f64,
    }
    impl<C: Fn(usize, usize) -> f64> Search<'_, C> {
        fn go(&mut self, at: Option<usize>, done: u32, acc: f64) {
            let k = self.k;
            if self.seq.len() == 2 * k {
                if acc < self.best_cost {
                    self.best_cost = acc;
                    self.best.clone_from(&self.seq);
                }
                return;
            }
            for n in 0..2 * k {
                let ready = if n < k {
                    true
                } else {
                    done & (1 << (n - k)) != 0
                };
                if done & (1 << n) != 0 || !ready {
                    continue;
                }
                let mut c = acc + at.map_or(0.0, |a| (self.cost)(a, n));
                if n < k {
                    c += self.overhead;
                }
                // Costs are non-negative: prune paths already no better.
                if c >= self.best_cost {
                    continue;
                }
                self.seq.push(n);
                self.go(Some(n), done | (1 << n), c);
                self.seq.pop();
            }
        }
    }
    let mut s = Search {
        k,
        cost: &cost,
        overhead,
        seq: Vec::with_capacity(2 * k),
        best: Vec::new(),
        best_cost: f64::INFINITY,
    };
    s.go(from_start.then_some(2 * k), 0, 0.0);
    (s.best, s.best_cost)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HaversineEta;
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

    /// The naive twin: every permutation of the 2k stops, keeping those
    /// with each pickup before its drop-off.
    fn brute_force(
        k: usize,
        from_start: bool,
        cost: &dyn Fn(usize, usize) -> f64,
        overhead: f64,
    ) -> f64 {
        fn perms(items: &mut Vec<usize>, at: usize, f: &mut dyn FnMut(&[usize])) {
            if at == items.len() {
                f(items);
                return;
            }
            for i in at..items.len() {
                items.swap(at, i);
                perms(items, at + 1, f);
                items.swap(at, i);
            }
        }
        let mut best = f64::INFINITY;
        let mut items: Vec<usize> = (0..2 * k).collect();
        perms(&mut items, 0, &mut |p| {
            let pos = |n: usize| p.iter().position(|&x| x == n).unwrap();
            if (0..k).any(|i| pos(i) > pos(k + i)) {
                return;
            }
            let mut c = k as f64 * overhead;
            let mut prev = from_start.then_some(2 * k);
            for &n in p {
                if let Some(a) = prev {
                    c += cost(a, n);
                }
                prev = Some(n);
            }
            best = best.min(c);
        });
        best
    }

    fn point() -> impl Strategy<Value = LonLat> {
        (2.25..2.45f64, 48.80..48.92f64).prop_map(|(x, y)| LonLat::new(x, y).unwrap())
    }

    proptest! {
        #![proptest_config(config(256))]

        /// The exact batch route equals brute force over all permutations,
        /// and every pickup precedes its drop-off.
        #[test]
        fn exact_route_equals_brute_force(
            orders in prop::collection::vec((point(), point()), 1..=3),
            start in prop::option::of(point()),
            overhead in 0.0..120.0f64,
        ) {
            let eta = HaversineEta::new(1.3, 30.0, std::time::Duration::from_secs_f64(overhead)).unwrap();
            let v = VehicleType::new(0).unwrap();
            let orders: Vec<Order> = orders.into_iter().enumerate()
                .map(|(i, (p, d))| Order { id: OrderId(i as u64 + 10), pickup: p, dropoff: d })
                .collect();
            let r = batch_route(&eta, v, start, &orders).unwrap();
            let k = orders.len();
            prop_assert_eq!(r.stops.len(), 2 * k);
            for o in &orders {
                let p = r.stops.iter().position(|s| s.order == o.id && s.kind == StopKind::Pickup).unwrap();
                let d = r.stops.iter().position(|s| s.order == o.id && s.kind == StopKind::Dropoff).unwrap();
                prop_assert!(p < d, "pickup after drop-off");
            }
            let pos = |n: usize| if n < k { orders[n].pickup } else if n < 2 * k { orders[n - k].dropoff } else { start.unwrap() };
            let cost = |a: usize, b: usize| eta.leg(pos(a), pos(b), v).secs;
            let bf = brute_force(k, start.is_some(), &cost, eta.pickup_overhead_secs(v));
            prop_assert!((r.secs - bf).abs() <= 1e-9 * (1.0 + bf), "exact {} brute force {}", r.secs, bf);
            // Stop times are cumulative and end at the total.
            prop_assert!(r.stops.windows(2).all(|w| w[0].done_after_secs <= w[1].done_after_secs));
            prop_assert!((r.stops.last().unwrap().done_after_secs - r.secs).abs() < 1e-9);
        }
    }

    #[test]
    fn bad_batches_are_typed_errors() {
        let eta = HaversineEta::default();
        let v = VehicleType::new(0).unwrap();
        assert!(matches!(
            batch_route(&eta, v, None, &[]),
            Err(MatchingError::Empty { .. })
        ));
        let p = LonLat::new(0.0, 0.0).unwrap();
        let o = Order {
            id: OrderId(1),
            pickup: p,
            dropoff: p,
        };
        assert!(matches!(
            batch_route(&eta, v, None, &[o; 4]),
            Err(MatchingError::TooLarge {
                size: 4,
                limit: 3,
                ..
            })
        ));
        struct Broken;
        impl EtaModel for Broken {
            fn leg(&self, _: LonLat, _: LonLat, _: VehicleType) -> Leg {
                Leg {
                    metres: f64::NAN,
                    secs: -1.0,
                }
            }
        }
        let q = LonLat::new(0.01, 0.0).unwrap();
        let o = Order {
            id: OrderId(1),
            pickup: p,
            dropoff: q,
        };
        assert!(matches!(
            batch_route(&Broken, v, None, &[o]),
            Err(MatchingError::InvalidDistance { .. })
        ));
    }

    #[test]
    fn ties_keep_the_first_sequence() {
        // With unit costs every valid sequence ties; the first in
        // enumeration order (pickups first) is kept.
        let (seq, c) = best_sequence(3, false, |_, _| 1.0, 0.0);
        assert_eq!(c, 5.0);
        assert_eq!(seq, vec![0, 1, 2, 3, 4, 5]);
    }
}
