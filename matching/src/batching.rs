use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

use dispatchkit_geo_index::{Attrs, VehicleType, haversine_m};

use crate::MatchingError;
use crate::batch_route::{BatchRoute, MAX_BATCH, Order, batch_route};
use crate::eta::EtaModel;

/// Parameters of [`batch_orders`].
///
/// | field | default | meaning |
/// |---|---|---|
/// | `max_orders` | 3 | largest batch (1..=[`MAX_BATCH`]) |
/// | `slack` | 10 min | extra delivery time an order may take in a batch … |
/// | `slack_ratio` | 0.0 | … plus this fraction of its direct delivery time |
/// | `max_pickup_gap_m` | 2 000 m | only orders whose restaurants are this close are batched together |
/// | `neighbours` | 8 | candidate partners considered per order (k) |
/// | `vehicle` | type 0 | vehicle whose speed the ETA model uses |
///
/// An order's delivery in a batch must satisfy
/// `delivered_after ≤ direct × (1 + slack_ratio) + slack`, where
/// `delivered_after` runs from the start of the batch route (the first
/// pickup) to its drop-off and `direct` is its own pickup → drop-off time
/// (with the pickup overhead): the seed's "balance efficiency vs customer
/// wait time".
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "batching_config_serde::Unchecked")
)]
pub struct BatchingConfig {
    /// Largest batch.
    pub max_orders: usize,
    /// Absolute delivery-time slack.
    pub slack: Duration,
    /// Relative delivery-time slack.
    pub slack_ratio: f64,
    /// Largest restaurant-to-restaurant distance inside a batch, metres.
    pub max_pickup_gap_m: f64,
    /// Candidate partners per order.
    pub neighbours: usize,
    /// Vehicle type for the ETA model.
    pub vehicle: VehicleType,
}

dispatchkit_geo_index::deserialize_checked!(
    batching_config_serde,
    BatchingConfig {
        max_orders: usize,
        slack: Duration,
        slack_ratio: f64,
        max_pickup_gap_m: f64,
        neighbours: usize,
        vehicle: VehicleType,
    },
    BatchingConfig::validate,
    MatchingError
);

impl Default for BatchingConfig {
    fn default() -> Self {
        Self {
            max_orders: MAX_BATCH,
            slack: Duration::from_secs(600),
            slack_ratio: 0.0,
            max_pickup_gap_m: 2_000.0,
            neighbours: 8,
            vehicle: Attrs::default().vehicle,
        }
    }
}

impl BatchingConfig {
    /// Checks the parameters.
    ///
    /// # Errors
    /// [`MatchingError::InvalidParameter`] for `max_orders` outside
    /// `1..=MAX_BATCH`, `neighbours == 0` (k = 0), a negative or NaN
    /// `slack_ratio`, or a gap that is not finite and positive.
    pub fn validate(&self) -> Result<(), MatchingError> {
        if !(1..=MAX_BATCH).contains(&self.max_orders) {
            return Err(MatchingError::param(
                "max_orders",
                self.max_orders as f64,
                "batches hold 1..=3 orders",
            ));
        }
        if self.neighbours == 0 {
            return Err(MatchingError::param(
                "neighbours",
                0.0,
                "k = 0: each order needs at least one candidate partner",
            ));
        }
        if !(self.slack_ratio.is_finite() && self.slack_ratio >= 0.0) {
            return Err(MatchingError::param(
                "slack_ratio",
                self.slack_ratio,
                "must be finite and non-negative",
            ));
        }
        if !(1.0..=20_037_508.0).contains(&self.max_pickup_gap_m) {
            return Err(MatchingError::param(
                "max_pickup_gap_m",
                self.max_pickup_gap_m,
                "must be a number of metres in 1..=20037508 (half the equator)",
            ));
        }
        Ok(())
    }
}

/// A batch of orders with its route.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Batch {
    /// Indices into the input slice, ascending.
    pub orders: Vec<usize>,
    /// The exact route from the first pickup (no dasher position yet).
    pub route: BatchRoute,
    /// Sum of the orders' direct delivery times, seconds.
    pub solo_secs: f64,
    /// Sum of the orders' direct delivery distances, metres.
    pub solo_metres: f64,
}

impl Batch {
    /// Time saved against delivering every order on its own, seconds
    /// (≥ 0 for every batch [`batch_orders`] forms).
    pub fn saved_secs(&self) -> f64 {
        self.solo_secs - self.route.secs
    }
}

/// A candidate merge, ordered by savings (largest first), then by the
/// smaller cluster ids.
#[derive(Debug)]
struct Merge {
    saved: f64,
    a: usize,
    b: usize,
    route: BatchRoute,
}

impl PartialEq for Merge {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Merge {}
impl PartialOrd for Merge {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Merge {
    fn cmp(&self, o: &Self) -> Ordering {
        self.saved
            .total_cmp(&o.saved)
            .then(o.a.cmp(&self.a))
            .then(o.b.cmp(&self.b))
    }
}

/// Groups orders into batches of at most `max_orders`.
///
/// The clustering is savings-based agglomeration (Clarke & Wright 1964
/// applied to pickup-and-delivery batches), chosen over k-means because
/// it needs no k, respects the batch size and the delay slack by
/// construction, and looks at pickups and drop-offs together through the
/// exact route:
///
/// 1. candidates: for each order, its `neighbours` nearest other orders by
///    `d(pickupᵢ, pickupⱼ) + d(dropoffᵢ, dropoffⱼ)` ("nearby orders going
///    the same direction") among those whose restaurants are within
///    `max_pickup_gap_m` (a grid of that cell size prunes the scan);
/// 2. every candidate pair is routed exactly ([`batch_route`]); a merge is
///    kept if every order meets its slack and the batch saves time over
///    solo deliveries;
/// 3. merges are applied best saving first; after each merge the new
///    batch's candidate merges with its members' neighbours' batches (up
///    to `max_orders` orders) are routed and queued.
///
/// Every order ends up in exactly one batch (singletons included). Batches
/// are returned ordered by their smallest order index. Deterministic.
/// O(n·k) routes of ≤ 3 orders plus O(n·k·log(n·k)) heap work; no orders
/// gives no batches.
///
/// ```
/// use dispatchkit_geo_index::LonLat;
/// use dispatchkit_matching::{batch_orders, BatchingConfig, HaversineEta, Order, OrderId};
///
/// let p = |lon: f64, lat: f64| LonLat::new(lon, lat).unwrap();
/// let orders = [
///     Order { id: OrderId(1), pickup: p(2.350, 48.850), dropoff: p(2.380, 48.860) },
///     Order { id: OrderId(2), pickup: p(2.351, 48.850), dropoff: p(2.382, 48.861) }, // same way
///     Order { id: OrderId(3), pickup: p(2.352, 48.851), dropoff: p(2.300, 48.830) }, // opposite way
/// ];
/// let batches = batch_orders(&HaversineEta::default(), &orders, &BatchingConfig::default())?;
/// assert_eq!(batches.len(), 2);
/// assert_eq!(batches[0].orders, vec![0, 1]);
/// assert!(batches[0].saved_secs() > 0.0);
/// # Ok::<(), dispatchkit_matching::MatchingError>(())
/// ```
///
/// # Errors
/// As [`BatchingConfig::validate`]; [`MatchingError::InvalidDistance`]
/// when the ETA model returns an unusable leg.
pub fn batch_orders<E: EtaModel + ?Sized>(
    eta: &E,
    orders: &[Order],
    config: &BatchingConfig,
) -> Result<Vec<Batch>, MatchingError> {
    config.validate()?;
    let n = orders.len();
    let v = config.vehicle;
    let overhead = eta.pickup_overhead_secs(v);
    let mut solo = Vec::with_capacity(n);
    for (i, o) in orders.iter().enumerate() {
        let leg = eta.leg(o.pickup, o.dropoff, v);
        if !leg.is_usable() {
            return Err(MatchingError::InvalidDistance {
                from: i,
                to: i,
                value: leg.secs,
                reason: "the ETA model returned an unusable leg",
            });
        }
        solo.push((leg.secs + overhead, leg.metres));
    }
    let limit = |i: usize| solo[i].0 * (1.0 + config.slack_ratio) + config.slack.as_secs_f64();
    let neighbours = candidate_neighbours(orders, config);

    // Clusters: members (indices into `orders`), alive flag; `owner[i]`
    // is the cluster holding order i.
    let mut members: Vec<Vec<usize>> = (0..n).map(|i| vec![i]).collect();
    let mut routes: Vec<Option<BatchRoute>> = vec![None; n];
    let mut alive = vec![true; n];
    let mut owner: Vec<usize> = (0..n).collect();
    let cluster_secs = |c: usize, members: &[Vec<usize>], routes: &[Option<BatchRoute>]| -> f64 {
        match &routes[c] {
            Some(r) => r.secs,
            None => solo[members[c][0]].0,
        }
    };
    let mut heap = BinaryHeap::new();
    let try_merge = |a: usize,
                     b: usize,
                     members: &[Vec<usize>],
                     routes: &[Option<BatchRoute>]|
     -> Result<Option<Merge>, MatchingError> {
        let mut all: Vec<usize> = members[a].iter().chain(&members[b]).copied().collect();
        if all.len() > config.max_orders {
            return Ok(None);
        }
        all.sort_unstable();
        let batch: Vec<Order> = all.iter().map(|&i| orders[i]).collect();
        let route = batch_route(eta, v, None, &batch)?;
        for &i in &all {
            let t = route
                .delivered_after_secs(orders[i].id)
                .unwrap_or(f64::INFINITY);
            if t > limit(i) + 1e-9 {
                return Ok(None);
            }
        }
        let saved =
            cluster_secs(a, members, routes) + cluster_secs(b, members, routes) - route.secs;
        Ok((saved > 1e-9).then_some(Merge {
            saved,
            a: a.min(b),
            b: a.max(b),
            route,
        }))
    };
    for i in 0..n {
        for &j in &neighbours[i] {
            if (i < j || !neighbours[j].contains(&i))
                && let Some(m) = try_merge(i, j, &members, &routes)?
            {
                heap.push(m);
            }
        }
    }
    let mut next_id = n;
    while let Some(m) = heap.pop() {
        if !alive[m.a] || !alive[m.b] {
            continue;
        }
        alive[m.a] = false;
        alive[m.b] = false;
        let mut all: Vec<usize> = members[m.a].iter().chain(&members[m.b]).copied().collect();
        all.sort_unstable();
        let c = next_id;
        next_id += 1;
        for &i in &all {
            owner[i] = c;
        }
        members.push(all);
        routes.push(Some(m.route));
        alive.push(true);
        if members[c].len() >= config.max_orders {
            continue;
        }
        let mut partners: Vec<usize> = members[c]
            .iter()
            .flat_map(|&i| neighbours[i].iter().map(|&j| owner[j]))
            .filter(|&d| d != c && alive[d])
            .collect();
        partners.sort_unstable();
        partners.dedup();
        for d in partners {
            if let Some(m) = try_merge(c, d, &members, &routes)? {
                heap.push(m);
            }
        }
    }
    let mut out: Vec<Batch> = Vec::new();
    for c in (0..members.len()).filter(|&c| alive[c]) {
        let idx = members[c].clone();
        let route = match routes[c].take() {
            Some(r) => r,
            None => batch_route(eta, v, None, &[orders[idx[0]]])?,
        };
        out.push(Batch {
            solo_secs: idx.iter().map(|&i| solo[i].0).sum(),
            solo_metres: idx.iter().map(|&i| solo[i].1).sum(),
            orders: idx,
            route,
        });
    }
    out.sort_by_key(|b| b.orders[0]);
    Ok(out)
}

/// For each order, up to `neighbours` other orders with restaurants within
/// `max_pickup_gap_m`, nearest first by pickup + drop-off distance (ties
/// by index). A grid of `max_pickup_gap_m` cells on a local equirectangular
/// projection limits the scan to the 3 × 3 cells around each restaurant.
fn candidate_neighbours(orders: &[Order], config: &BatchingConfig) -> Vec<Vec<usize>> {
    const M_PER_DEG: f64 = 111_195.0;
    let cell = config.max_pickup_gap_m;
    let key = |o: &Order| -> (i64, i64) {
        let (lon, lat) = (o.pickup.lon(), o.pickup.lat());
        let y = (lat * M_PER_DEG / cell).floor() as i64;
        let x = (lon * M_PER_DEG * lat.to_radians().cos() / cell).floor() as i64;
        (x, y)
    };
    let mut grid: HashMap<(i64, i64), Vec<usize>> = HashMap::new();
    for (i, o) in orders.iter().enumerate() {
        grid.entry(key(o)).or_default().push(i);
    }
    let mut out = Vec::with_capacity(orders.len());
    let mut cand: Vec<(f64, usize)> = Vec::new();
    for (i, o) in orders.iter().enumerate() {
        cand.clear();
        let (x, y) = key(o);
        for dx in -1..=1 {
            for dy in -1..=1 {
                for &j in grid
                    .get(&(x.saturating_add(dx), y.saturating_add(dy)))
                    .map_or(&[][..], |v| v)
                {
                    if j == i {
                        continue;
                    }
                    let gap = haversine_m(o.pickup, orders[j].pickup);
                    if gap <= config.max_pickup_gap_m {
                        cand.push((gap + haversine_m(o.dropoff, orders[j].dropoff), j));
                    }
                }
            }
        }
        cand.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        out.push(
            cand.iter()
                .take(config.neighbours)
                .map(|&(_, j)| j)
                .collect(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{HaversineEta, OrderId};
    use dispatchkit_geo_index::LonLat;
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

    fn orders() -> impl Strategy<Value = Vec<Order>> {
        prop::collection::vec(
            (
                2.30..2.40f64,
                48.84..48.88f64,
                2.28..2.42f64,
                48.82..48.90f64,
            ),
            0..40,
        )
        .prop_map(|v| {
            v.into_iter()
                .enumerate()
                .map(|(i, (a, b, c, d))| Order {
                    id: OrderId(i as u64),
                    pickup: LonLat::new(a, b).unwrap(),
                    dropoff: LonLat::new(c, d).unwrap(),
                })
                .collect()
        })
    }

    proptest! {
        #![proptest_config(config(128))]

        /// Batches partition the orders, respect the size limit and every
        /// order's slack, save time, and carry an exact route.
        #[test]
        fn batches_partition_and_respect_the_slack(
            os in orders(),
            max_orders in 1usize..=3,
            slack in 0u64..900,
            ratio in 0.0..1.0f64,
        ) {
            let eta = HaversineEta::default();
            let cfg = BatchingConfig { max_orders, slack: Duration::from_secs(slack), slack_ratio: ratio, ..BatchingConfig::default() };
            let bs = batch_orders(&eta, &os, &cfg).unwrap();
            let mut seen = vec![false; os.len()];
            for b in &bs {
                prop_assert!(!b.orders.is_empty() && b.orders.len() <= max_orders);
                prop_assert!(b.orders.windows(2).all(|w| w[0] < w[1]));
                let batch: Vec<Order> = b.orders.iter().map(|&i| os[i]).collect();
                let exact = batch_route(&eta, cfg.vehicle, None, &batch).unwrap();
                prop_assert!((exact.secs - b.route.secs).abs() < 1e-6);
                prop_assert!(b.saved_secs() >= -1e-9);
                for &i in &b.orders {
                    prop_assert!(!std::mem::replace(&mut seen[i], true), "order in two batches");
                    let direct = eta.leg(os[i].pickup, os[i].dropoff, cfg.vehicle).secs + 60.0;
                    let t = b.route.delivered_after_secs(os[i].id).unwrap();
                    if b.orders.len() > 1 {
                        prop_assert!(t <= direct * (1.0 + ratio) + slack as f64 + 1e-6, "slack broken");
                        let gap = os[i].pickup.distance_m(os[b.orders[0]].pickup);
                        prop_assert!(gap <= 2.0 * cfg.max_pickup_gap_m + 1e-6);
                    }
                }
            }
            prop_assert!(seen.iter().all(|&s| s), "order lost");
        }
    }

    #[test]
    fn zero_slack_never_batches_and_bad_configs_are_errors() {
        let eta = HaversineEta::default();
        let p = |lon: f64| LonLat::new(lon, 48.85).unwrap();
        let os: Vec<Order> = (0..6)
            .map(|i| Order {
                id: OrderId(i),
                pickup: p(2.35),
                dropoff: p(2.36 + 0.001 * i as f64),
            })
            .collect();
        let tight = BatchingConfig {
            slack: Duration::ZERO,
            ..BatchingConfig::default()
        };
        // With no slack nothing can be batched: a second pickup alone
        // delays the first order past its direct delivery time.
        let bs = batch_orders(&eta, &os, &tight).unwrap();
        assert_eq!(bs.len(), 6);
        let loose = batch_orders(&eta, &os, &BatchingConfig::default()).unwrap();
        assert_eq!(
            loose.len(),
            2,
            "six orders on one street: two batches of three"
        );
        assert!(
            batch_orders(&eta, &[], &BatchingConfig::default())
                .unwrap()
                .is_empty()
        );
        for bad in [
            BatchingConfig {
                max_orders: 0,
                ..BatchingConfig::default()
            },
            BatchingConfig {
                max_orders: 4,
                ..BatchingConfig::default()
            },
            BatchingConfig {
                neighbours: 0,
                ..BatchingConfig::default()
            },
            BatchingConfig {
                slack_ratio: -0.1,
                ..BatchingConfig::default()
            },
            BatchingConfig {
                slack_ratio: f64::NAN,
                ..BatchingConfig::default()
            },
            BatchingConfig {
                max_pickup_gap_m: 0.0,
                ..BatchingConfig::default()
            },
        ] {
            assert!(matches!(
                batch_orders(&eta, &os, &bad),
                Err(MatchingError::InvalidParameter { .. })
            ));
        }
    }
}
