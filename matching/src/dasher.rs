use std::time::{Duration, Instant};

use dispatchkit_geo_index::{
    Attrs, DriverId, DriverIndex, Filter, GeoError, Rating, Search, Status, Unit, VehicleSet,
};

use crate::MatchingError;
use crate::batch_route::{BatchRoute, MAX_BATCH, Order, batch_route};
use crate::eta::EtaModel;
use crate::machine::{
    Machine, MatchStatus, OfferMatcher, OfferStep, Offered, Outcome, check_radius, search_excluding,
};
use crate::offers::{OnTimeout, Ranked, RoundRules, rank};
use crate::ride::{check_counts, check_steps, strict_rating};

/// What a dasher is paid for a batch, in integer minor units (cents):
/// `base + per_order × orders + round(per_km × km)` (the distance term
/// rounds half away from zero to the cent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Earnings {
    /// Fixed pay per batch (default 300 = 3.00).
    pub base_cents: i64,
    /// Pay per order in the batch (default 100).
    pub per_order_cents: i64,
    /// Pay per km driven, approach included (default 60).
    pub per_km_cents: i64,
}

impl Default for Earnings {
    fn default() -> Self {
        Self {
            base_cents: 300,
            per_order_cents: 100,
            per_km_cents: 60,
        }
    }
}

impl Earnings {
    /// Pay for `orders` orders over `metres`, saturating on overflow.
    pub fn pay_cents(&self, orders: usize, metres: f64) -> i64 {
        let km_part = (self.per_km_cents as f64 * metres.max(0.0) / 1000.0).round();
        let km_part = if km_part.is_finite() {
            km_part as i64
        } else {
            0
        };
        self.base_cents
            .saturating_add(self.per_order_cents.saturating_mul(orders as i64))
            .saturating_add(km_part)
    }
}

/// Parameters of dasher matching (seed example 5, step 3).
///
/// | field | default | seed |
/// |---|---|---|
/// | `radius_steps_km` | `[5]` | "GEORADIUS (restaurant location, 5km)" |
/// | `min_rating` | 4.50, strictly above | "Rating > 4.5" |
/// | `max_orders` | 3 | "not at maximum orders (typically 3)" |
/// | `vehicles` | all | "vehicle type appropriate (bike, car, scooter)" |
/// | `candidates` | 20 | nearest eligible dashers routed and ranked (k) |
/// | `offers_per_round` | 5 | "push notification to top 5 Dashers" |
/// | `offer_timeout` | 20 s | "wait for acceptance (20 seconds)" |
/// | `earnings` | [`Earnings::default`] | "include: earnings, distance, estimated time" |
/// | `eligible_status` | [`Status::AVAILABLE`] | "Status = available" |
/// | `full_status` | [`Status::BUSY`] | status once at `max_orders` |
///
/// A dasher with `load` orders in hand is eligible for a batch of `k`
/// when it has `eligible_status` and `load + k ≤ max_orders`; accepting
/// adds `k` to the load and moves the dasher to `full_status` once full.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "dasher_config_serde::Unchecked")
)]
pub struct DasherConfig {
    /// Search radii around the restaurant, km, strictly increasing.
    pub radius_steps_km: Vec<f64>,
    /// Dashers must be rated strictly above this.
    pub min_rating: Rating,
    /// Most orders a dasher carries at once (1..=7).
    pub max_orders: u8,
    /// Suitable vehicle types.
    pub vehicles: VehicleSet,
    /// How many nearest eligible dashers are routed and ranked (k).
    pub candidates: usize,
    /// How many ranked dashers are offered the batch at once.
    pub offers_per_round: usize,
    /// How long a round of offers stays open.
    pub offer_timeout: Duration,
    /// The pay shown in each offer.
    pub earnings: Earnings,
    /// Status a dasher must have to be offered a batch.
    pub eligible_status: Status,
    /// Status of a dasher carrying `max_orders`.
    pub full_status: Status,
}

dispatchkit_geo_index::deserialize_checked!(
    dasher_config_serde,
    DasherConfig {
        radius_steps_km: Vec<f64>,
        min_rating: Rating,
        max_orders: u8,
        vehicles: VehicleSet,
        candidates: usize,
        offers_per_round: usize,
        offer_timeout: Duration,
        earnings: Earnings,
        eligible_status: Status,
        full_status: Status,
    },
    DasherConfig::validate,
    MatchingError
);

impl Default for DasherConfig {
    fn default() -> Self {
        Self {
            radius_steps_km: vec![5.0],
            min_rating: Rating::from_hundredths(450).unwrap_or(Rating::MAX),
            max_orders: 3,
            vehicles: VehicleSet::ALL,
            candidates: 20,
            offers_per_round: 5,
            offer_timeout: Duration::from_secs(20),
            earnings: Earnings::default(),
            eligible_status: Status::AVAILABLE,
            full_status: Status::BUSY,
        }
    }
}

impl DasherConfig {
    /// Checks the parameters.
    ///
    /// # Errors
    /// As [`crate::RideConfig::validate`], plus
    /// [`MatchingError::InvalidParameter`] for `max_orders` outside 1..=7
    /// or equal eligible and full statuses.
    pub fn validate(&self) -> Result<(), MatchingError> {
        if self.eligible_status == self.full_status {
            return Err(MatchingError::param(
                "full_status",
                f64::from(self.full_status.get()),
                "must differ from eligible_status",
            ));
        }
        check_steps(&self.radius_steps_km)?;
        check_counts(self.candidates, self.offers_per_round, self.offer_timeout)?;
        strict_rating(self.min_rating)?;
        if !(1..=Attrs::MAX_LOAD).contains(&self.max_orders) {
            return Err(MatchingError::param(
                "max_orders",
                f64::from(self.max_orders),
                "a dasher carries 1..=7 orders (the index's load field)",
            ));
        }
        Ok(())
    }
}

/// An offer of a batch to a dasher.
#[derive(Debug, Clone, PartialEq)]
pub struct DasherOffer {
    /// The dasher.
    pub dasher: DriverId,
    /// Pay for the batch, cents.
    pub earnings_cents: i64,
    /// Road distance from the dasher through every stop, metres.
    pub metres: f64,
    /// Time from now to the last drop-off.
    pub duration: Duration,
    /// Time until the first pickup is done.
    pub first_pickup: Duration,
    /// The exact route from the dasher's position.
    pub route: BatchRoute,
    /// When the offer lapses.
    pub expires_at: Instant,
}

/// Why a batch found no dasher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum DasherUnmatched {
    /// No eligible dasher within the largest radius.
    NoDashersInRange,
    /// Every eligible dasher was offered the batch and none took it.
    NobodyAccepted,
}

/// Where a dasher match stands.
#[derive(Debug, Clone, PartialEq)]
pub enum DasherStatus {
    /// Offers are open.
    Offering,
    /// A dasher accepted and was claimed (load increased in the index).
    Assigned(Box<DasherOffer>),
    /// Gave up.
    Unmatched {
        /// Why.
        reason: DasherUnmatched,
        /// Offers made in total.
        offers_made: usize,
    },
}

impl DasherStatus {
    /// Whether the match is over.
    pub fn is_final(&self) -> bool {
        !matches!(self, Self::Offering)
    }
}

impl MatchStatus for DasherStatus {
    fn name(&self) -> &'static str {
        match self {
            Self::Offering => "offering",
            Self::Assigned(_) => "assigned",
            Self::Unmatched { .. } => "unmatched",
        }
    }
    fn is_final(&self) -> bool {
        DasherStatus::is_final(self)
    }
}

/// What an event changed ([`OfferStep`] of DasherOffers).
pub type DasherStep = OfferStep<DasherOffer, DasherStatus>;

/// One batch's dasher-matching state machine (seed example 5, step 3,
/// states 1–4): offers to the best `offers_per_round` dashers by time to
/// the last drop-off; a 20 s timeout moves on to the next dashers.
#[derive(Debug, Clone, PartialEq)]
pub struct DasherMatch {
    orders: Vec<Order>,
    machine: Machine<DasherOffer, DasherStatus>,
}

impl DasherMatch {
    /// The batch.
    pub fn orders(&self) -> &[Order] {
        &self.orders
    }

    /// The current status.
    pub fn status(&self) -> &DasherStatus {
        &self.machine.status
    }

    /// Open offers, best first.
    pub fn open_offers(&self) -> Vec<DasherOffer> {
        stamped(&self.machine.rounds.open, self.machine.expires_at())
    }

    /// When the open offers lapse.
    pub fn deadline(&self) -> Option<Instant> {
        self.machine.rounds.deadline
    }

    /// Every dasher offered so far.
    pub fn offered(&self) -> &[DriverId] {
        &self.machine.rounds.offered
    }

    /// Checks the invariants; panics on a violation.
    #[doc(hidden)]
    pub fn check_invariants(&self) {
        self.machine.check_invariants();
        for c in &self.machine.rounds.open {
            assert_eq!(c.payload.dasher, c.driver);
        }
        if let DasherStatus::Assigned(o) = &self.machine.status {
            assert!(self.machine.rounds.offered.contains(&o.dasher));
        }
    }
}

/// The offers of `ranked`, each lapsing at `expires_at`.
fn stamped(ranked: &[Ranked<DasherOffer>], expires_at: Instant) -> Vec<DasherOffer> {
    ranked
        .iter()
        .map(|c| DasherOffer {
            expires_at,
            ..c.payload.clone()
        })
        .collect()
}

/// A batch offered for one event: the matcher, the index and the orders.
struct Batch<'a, E> {
    matcher: &'a DasherMatcher<E>,
    index: &'a dyn DriverIndex,
    orders: &'a [Order],
}

impl<E: EtaModel> Offered for Batch<'_, E> {
    type Payload = DasherOffer;
    type Status = DasherStatus;

    fn rules(&self) -> RoundRules<'_> {
        let c = &self.matcher.config;
        RoundRules {
            radius_steps_km: &c.radius_steps_km,
            per_round: c.offers_per_round,
            timeout: c.offer_timeout,
            on_timeout: OnTimeout::NextCandidates,
        }
    }

    fn search(
        &self,
        radius_km: f64,
        exclude: &[DriverId],
        now: Instant,
    ) -> Result<Vec<Ranked<DasherOffer>>, MatchingError> {
        self.matcher
            .search(self.index, self.orders, radius_km, exclude, now)
    }

    fn claim(&self, dasher: DriverId, now: Instant) -> Result<bool, MatchingError> {
        // `orders` passed `check_batch` at start: at most MAX_BATCH.
        let k = self.orders.len() as u8;
        let c = &self.matcher.config;
        let (max, eligible, full) = (c.max_orders, c.eligible_status, c.full_status);
        match self
            .index
            .claim_load_at(dasher, eligible, k, max, full, now)
        {
            Ok(won) => Ok(won),
            Err(GeoError::UnknownDriver(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn assigned(&self, offer: &Ranked<DasherOffer>, expires_at: Instant) -> DasherStatus {
        DasherStatus::Assigned(Box::new(DasherOffer {
            expires_at,
            ..offer.payload.clone()
        }))
    }

    fn unmatched(&self, found_any: bool, offers_made: usize) -> DasherStatus {
        DasherStatus::Unmatched {
            reason: if found_any {
                DasherUnmatched::NobodyAccepted
            } else {
                DasherUnmatched::NoDashersInRange
            },
            offers_made,
        }
    }
}

/// Dasher matching over a shared driver index (any [`DriverIndex`]: the
/// in-process `GeoIndex` or a remote one) with an [`EtaModel`];
/// `Send + Sync` when the model is. Claims are atomic (one
/// read-modify-write of the dasher's attributes in the index).
///
/// ```
/// use std::time::{Duration, Instant};
/// use dispatchkit_geo_index::{Attrs, DriverId, GeoIndex, LonLat, Rating, VehicleType};
/// use dispatchkit_matching::{DasherConfig, DasherMatcher, DasherStatus, HaversineEta, OfferMatcher, Order, OrderId};
///
/// let index = GeoIndex::new();
/// let t0 = Instant::now();
/// let bike = VehicleType::new(1)?;
/// for i in 0..8u64 {
///     let pos = LonLat::new(2.34 + 0.002 * i as f64, 48.85)?;
///     index.upsert_at(DriverId::new(i)?, pos, Attrs::available(bike, Rating::new(4.8)?), t0)?;
/// }
/// let restaurant = LonLat::new(2.345, 48.851)?;
/// let orders = [
///     Order { id: OrderId(1), pickup: restaurant, dropoff: LonLat::new(2.36, 48.86)? },
///     Order { id: OrderId(2), pickup: restaurant, dropoff: LonLat::new(2.365, 48.862)? },
/// ];
/// let matcher = DasherMatcher::new(DasherConfig::default(), HaversineEta::default())?;
/// let (mut m, step) = matcher.start_at(&index, &orders, t0)?;
/// assert_eq!(step.offers.len(), 5);
/// assert!(step.offers[0].earnings_cents >= 500); // 3.00 base + 2 × 1.00
///
/// let best = step.offers[0].dasher;
/// let step = matcher.accept_at(&index, &mut m, best, t0 + Duration::from_secs(3))?;
/// assert!(matches!(step.status, DasherStatus::Assigned(_)));
/// assert_eq!(index.get_at(best, t0)?.attrs.load, 2);
/// # Ok::<(), dispatchkit_matching::MatchingError>(())
/// ```
#[derive(Debug, Clone)]
pub struct DasherMatcher<E> {
    config: DasherConfig,
    eta: E,
}

impl<E: EtaModel> DasherMatcher<E> {
    /// A matcher with `config` and `eta`.
    ///
    /// # Errors
    /// As [`DasherConfig::validate`].
    pub fn new(config: DasherConfig, eta: E) -> Result<Self, MatchingError> {
        config.validate()?;
        Ok(Self { config, eta })
    }

    /// The configuration.
    pub fn config(&self) -> &DasherConfig {
        &self.config
    }

    fn check_batch(&self, orders: &[Order]) -> Result<u8, MatchingError> {
        if orders.is_empty() {
            return Err(MatchingError::Empty {
                what: "batch orders",
                reason: "a dasher is matched to at least one order",
            });
        }
        let limit = MAX_BATCH.min(usize::from(self.config.max_orders));
        if orders.len() > limit {
            return Err(MatchingError::TooLarge {
                what: "batch",
                size: orders.len(),
                limit,
            });
        }
        Ok(orders.len() as u8)
    }

    /// State 1 and the ranking on their own: the `candidates` nearest
    /// eligible dashers within `radius_km` of the first order's restaurant
    /// (skipping `exclude`), each with the exact route from its position,
    /// pay, distance and time; fastest to the last drop-off first.
    /// O(search + k · 90 routes).
    ///
    /// # Errors
    /// [`MatchingError::Empty`] / [`MatchingError::TooLarge`] for a batch of
    /// 0 or more than `min(3, max_orders)` orders;
    /// [`MatchingError::InvalidParameter`] for a bad radius.
    pub fn candidates_at(
        &self,
        index: &dyn DriverIndex,
        orders: &[Order],
        radius_km: f64,
        exclude: &[DriverId],
        now: Instant,
    ) -> Result<Vec<DasherOffer>, MatchingError> {
        self.check_batch(orders)?;
        let mut v = self.search(index, orders, radius_km, exclude, now)?;
        let expires_at = crate::offers::offer_deadline(now, self.config.offer_timeout)?;
        for c in &mut v {
            c.payload.expires_at = expires_at;
        }
        Ok(v.into_iter().map(|c| c.payload).collect())
    }

    fn search(
        &self,
        index: &dyn DriverIndex,
        orders: &[Order],
        radius_km: f64,
        exclude: &[DriverId],
        now: Instant,
    ) -> Result<Vec<Ranked<DasherOffer>>, MatchingError> {
        check_radius(radius_km)?;
        // `orders` passed `check_batch`: at most MAX_BATCH.
        let k = orders.len() as u8;
        let r = strict_rating(self.config.min_rating)?;
        let filter = Filter::new()
            .status(self.config.eligible_status)
            .min_rating(r)
            .vehicles(self.config.vehicles)
            .max_load(self.config.max_orders - k + 1);
        let q = Search::radius(orders[0].pickup, radius_km, Unit::Kilometers)
            .count(self.config.candidates)
            .filter(filter);
        let hits = search_excluding(index, &q, exclude, now)?;
        let mut out = Vec::with_capacity(hits.len());
        for h in hits {
            // An unusable ETA leg makes this dasher ineligible.
            let Ok(route) = batch_route(&self.eta, h.attrs.vehicle, Some(h.pos), orders) else {
                continue;
            };
            let first = route.stops.first().map_or(0.0, |s| s.done_after_secs);
            out.push(Ranked {
                driver: h.id,
                score: route.secs,
                payload: DasherOffer {
                    dasher: h.id,
                    earnings_cents: self.config.earnings.pay_cents(orders.len(), route.metres),
                    metres: route.metres,
                    duration: crate::eta::saturating_secs(route.secs),
                    first_pickup: crate::eta::saturating_secs(first),
                    route,
                    expires_at: now,
                },
            });
        }
        rank(&mut out);
        Ok(out)
    }

    fn batch<'a>(&'a self, index: &'a dyn DriverIndex, orders: &'a [Order]) -> Batch<'a, E> {
        Batch {
            matcher: self,
            index,
            orders,
        }
    }

    fn step(m: &DasherMatch, out: Outcome<DasherOffer>) -> DasherStep {
        DasherStep {
            offers: stamped(&out.offers, m.machine.expires_at()),
            withdrawn: out.withdrawn,
            lost_race: out.lost_race,
            status: m.machine.status.clone(),
        }
    }

    /// Searches around the restaurant, routes the batch from each
    /// candidate, and offers it to the `offers_per_round` fastest.
    ///
    /// # Errors
    /// [`MatchingError::Empty`] / [`MatchingError::TooLarge`] for a bad
    /// batch size; [`MatchingError::Geo`] if the index rejects the search.
    pub fn start_at(
        &self,
        index: &dyn DriverIndex,
        orders: &[Order],
        now: Instant,
    ) -> Result<(DasherMatch, DasherStep), MatchingError> {
        self.check_batch(orders)?;
        let batch = self.batch(index, orders);
        let (machine, out) = Machine::start(&batch, DasherStatus::Offering, now)?;
        let m = DasherMatch {
            orders: orders.to_vec(),
            machine,
        };
        let step = Self::step(&m, out);
        Ok((m, step))
    }

    /// [`DasherMatcher::start_at`] at `Instant::now()`.
    ///
    /// # Errors
    /// As [`DasherMatcher::start_at`].
    pub fn start(
        &self,
        index: &dyn DriverIndex,
        orders: &[Order],
    ) -> Result<(DasherMatch, DasherStep), MatchingError> {
        self.start_at(index, orders, Instant::now())
    }
}

impl<E: EtaModel> OfferMatcher for DasherMatcher<E> {
    type Match = DasherMatch;
    type Offer = DasherOffer;
    type Status = DasherStatus;

    fn accept_at(
        &self,
        index: &dyn DriverIndex,
        m: &mut DasherMatch,
        dasher: DriverId,
        now: Instant,
    ) -> Result<DasherStep, MatchingError> {
        let out = m
            .machine
            .accept(&self.batch(index, &m.orders), dasher, now)?;
        Ok(Self::step(m, out))
    }

    fn decline_at(
        &self,
        index: &dyn DriverIndex,
        m: &mut DasherMatch,
        dasher: DriverId,
        now: Instant,
    ) -> Result<DasherStep, MatchingError> {
        let out = m
            .machine
            .decline(&self.batch(index, &m.orders), dasher, now)?;
        Ok(Self::step(m, out))
    }

    fn deadline(m: &DasherMatch) -> Option<Instant> {
        m.deadline()
    }

    fn tick_at(
        &self,
        index: &dyn DriverIndex,
        m: &mut DasherMatch,
        now: Instant,
    ) -> Result<DasherStep, MatchingError> {
        let out = m.machine.tick(&self.batch(index, &m.orders), now)?;
        Ok(Self::step(m, out))
    }
}

#[cfg(test)]
#[path = "dasher_tests.rs"]
mod tests;
