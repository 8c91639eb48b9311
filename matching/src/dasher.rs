use std::time::{Duration, Instant};

use dispatchkit_geo_index::{
    Attrs, DriverId, Filter, GeoError, GeoIndex, Hit, Rating, Search, Status, Unit, VehicleSet,
};

use crate::MatchingError;
use crate::batch_route::{BatchRoute, MAX_BATCH, Order, batch_route};
use crate::eta::EtaModel;
use crate::offers::{OnTimeout, Ranked, RoundRules, Rounds, rank};
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
    fn name(&self) -> &'static str {
        match self {
            Self::Offering => "offering",
            Self::Assigned(_) => "assigned",
            Self::Unmatched { .. } => "unmatched",
        }
    }

    /// Whether the match is over.
    pub fn is_final(&self) -> bool {
        !matches!(self, Self::Offering)
    }
}

/// What an event changed. It lists the offers to send and withdraw, so
/// dropping it is a warning.
#[derive(Debug, Clone, PartialEq)]
#[must_use = "a step lists offers to send and withdraw"]
#[non_exhaustive]
pub struct DasherStep {
    /// New offers to push.
    pub offers: Vec<DasherOffer>,
    /// Dashers whose offer was withdrawn.
    pub withdrawn: Vec<DriverId>,
    /// A dasher who accepted but could no longer take the batch (claimed
    /// by another batch meanwhile, or offline).
    pub lost_race: Option<DriverId>,
    /// The status after the event.
    pub status: DasherStatus,
}

/// One batch's dasher-matching state machine (seed example 5, step 3,
/// states 1–4): offers to the best `offers_per_round` dashers by time to
/// the last drop-off; a 20 s timeout moves on to the next dashers.
#[derive(Debug, Clone, PartialEq)]
pub struct DasherMatch {
    orders: Vec<Order>,
    rounds: Rounds<DasherOffer>,
    status: DasherStatus,
}

impl DasherMatch {
    /// The batch.
    pub fn orders(&self) -> &[Order] {
        &self.orders
    }

    /// The current status.
    pub fn status(&self) -> &DasherStatus {
        &self.status
    }

    /// Open offers, best first.
    pub fn open_offers(&self) -> Vec<DasherOffer> {
        self.rounds.open.iter().map(|c| c.payload.clone()).collect()
    }

    /// When the open offers lapse.
    pub fn deadline(&self) -> Option<Instant> {
        self.rounds.deadline
    }

    /// Every dasher offered so far.
    pub fn offered(&self) -> &[DriverId] {
        &self.rounds.offered
    }

    /// Checks the invariants.
    #[doc(hidden)]
    pub fn check_invariants(&self) {
        self.rounds.check_invariants(!self.status.is_final());
        for c in &self.rounds.open {
            assert_eq!(c.payload.dasher, c.driver);
            assert_eq!(Some(c.payload.expires_at), self.rounds.deadline);
        }
    }
}

/// Dasher matching over a shared [`GeoIndex`] with an [`EtaModel`];
/// `Send + Sync` when the model is. Claims are atomic (one
/// read-modify-write of the dasher's attributes in the index).
///
/// ```
/// use std::time::{Duration, Instant};
/// use dispatchkit_geo_index::{Attrs, DriverId, GeoIndex, LonLat, Rating, VehicleType};
/// use dispatchkit_matching::{DasherConfig, DasherMatcher, DasherStatus, HaversineEta, Order, OrderId};
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
        index: &GeoIndex,
        orders: &[Order],
        radius_km: f64,
        exclude: &[DriverId],
        now: Instant,
    ) -> Result<Vec<DasherOffer>, MatchingError> {
        let k = self.check_batch(orders)?;
        let mut v = self.search(index, orders, k, radius_km, exclude, now)?;
        let expires_at = crate::offers::offer_deadline(now, self.config.offer_timeout)?;
        for c in &mut v {
            c.payload.expires_at = expires_at;
        }
        Ok(v.into_iter().map(|c| c.payload).collect())
    }

    fn search(
        &self,
        index: &GeoIndex,
        orders: &[Order],
        k: u8,
        radius_km: f64,
        exclude: &[DriverId],
        now: Instant,
    ) -> Result<Vec<Ranked<DasherOffer>>, MatchingError> {
        if !(radius_km.is_finite() && radius_km > 0.0) {
            return Err(MatchingError::param(
                "radius_km",
                radius_km,
                "must be finite and positive",
            ));
        }
        let r = strict_rating(self.config.min_rating)?;
        let filter = Filter::new()
            .status(self.config.eligible_status)
            .min_rating(r)
            .vehicles(self.config.vehicles)
            .max_load(self.config.max_orders - k + 1);
        let q = Search::radius(orders[0].pickup, radius_km, Unit::Kilometers)
            .count(self.config.candidates)
            .filter(filter);
        let hits: Vec<Hit> = if exclude.is_empty() {
            index.search_at(&q, now)?
        } else {
            index.search_where_at(&q, now, |v| !exclude.contains(&v.id))?
        };
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

    fn rules(&self) -> RoundRules<'_> {
        RoundRules {
            radius_steps_km: &self.config.radius_steps_km,
            per_round: self.config.offers_per_round,
            timeout: self.config.offer_timeout,
            on_timeout: OnTimeout::NextCandidates,
        }
    }

    /// Stamps the round's deadline on new offers, closes the match when
    /// nothing is left, and builds the step.
    fn settle(
        &self,
        m: &mut DasherMatch,
        mut offers: Vec<Ranked<DasherOffer>>,
        withdrawn: Vec<DriverId>,
        lost_race: Option<DriverId>,
    ) -> DasherStep {
        if let Some(d) = m.rounds.deadline {
            for c in offers.iter_mut().chain(m.rounds.open.iter_mut()) {
                c.payload.expires_at = d;
            }
        }
        if offers.is_empty() && m.rounds.open.is_empty() && !m.status.is_final() {
            m.status = DasherStatus::Unmatched {
                reason: if m.rounds.found_any {
                    DasherUnmatched::NobodyAccepted
                } else {
                    DasherUnmatched::NoDashersInRange
                },
                offers_made: m.rounds.offered.len(),
            };
            m.rounds.deadline = None;
        }
        DasherStep {
            offers: offers.into_iter().map(|c| c.payload).collect(),
            withdrawn,
            lost_race,
            status: m.status.clone(),
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
        index: &GeoIndex,
        orders: &[Order],
        now: Instant,
    ) -> Result<(DasherMatch, DasherStep), MatchingError> {
        let k = self.check_batch(orders)?;
        let mut m = DasherMatch {
            orders: orders.to_vec(),
            rounds: Rounds::new(now),
            status: DasherStatus::Offering,
        };
        let mut search = |r: f64, ex: &[DriverId]| self.search(index, orders, k, r, ex, now);
        let offers = m.rounds.next_round(now, &self.rules(), &mut search)?;
        let step = self.settle(&mut m, offers, Vec::new(), None);
        Ok((m, step))
    }

    /// [`DasherMatcher::start_at`] at `Instant::now()`.
    ///
    /// # Errors
    /// As [`DasherMatcher::start_at`].
    pub fn start(
        &self,
        index: &GeoIndex,
        orders: &[Order],
    ) -> Result<(DasherMatch, DasherStep), MatchingError> {
        self.start_at(index, orders, Instant::now())
    }

    /// `dasher` accepts: claimed atomically if still available with room
    /// for the batch (load += batch size, busy when full); otherwise the
    /// race is lost and the next dashers are offered when no offer is
    /// left open.
    ///
    /// # Errors
    /// [`MatchingError::InvalidEvent`] (state unchanged) when the match is
    /// over, the dasher has no open offer, the offer expired, or `now` is
    /// older than the previous event; [`MatchingError::Geo`] if the index
    /// fails.
    pub fn accept_at(
        &self,
        index: &GeoIndex,
        m: &mut DasherMatch,
        dasher: DriverId,
        now: Instant,
    ) -> Result<DasherStep, MatchingError> {
        m.rounds.check_event(
            "accept",
            m.status.name(),
            m.status.is_final(),
            Some(dasher),
            now,
        )?;
        let k = m.orders.len() as u8;
        let max = self.config.max_orders;
        let (eligible, full) = (self.config.eligible_status, self.config.full_status);
        let mut won = false;
        let claim = index.update_attrs_at(
            dasher,
            |a| {
                won = a.status == eligible && a.load + k <= max;
                if won {
                    a.load += k;
                    if a.load >= max {
                        a.status = full;
                    }
                }
            },
            now,
        );
        match claim {
            Ok(_) | Err(GeoError::UnknownDriver(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let won = won && claim.is_ok();
        let mut next = m.clone();
        next.rounds.last_event = now;
        if won {
            let offer = next.rounds.open_offer(dasher).map(|c| c.payload.clone());
            let withdrawn = next
                .rounds
                .open
                .drain(..)
                .map(|c| c.driver)
                .filter(|&d| d != dasher)
                .collect();
            next.rounds.queue.clear();
            next.rounds.deadline = None;
            if let Some(o) = offer {
                next.status = DasherStatus::Assigned(Box::new(o));
            }
            let step = self.settle(&mut next, Vec::new(), withdrawn, None);
            *m = next;
            return Ok(step);
        }
        let orders = next.orders.clone();
        let mut search = |r: f64, ex: &[DriverId]| self.search(index, &orders, k, r, ex, now);
        let offers = next
            .rounds
            .close_offer(dasher, now, &self.rules(), &mut search)?;
        let step = self.settle(&mut next, offers, Vec::new(), Some(dasher));
        *m = next;
        Ok(step)
    }

    /// [`DasherMatcher::accept_at`] at `Instant::now()`.
    ///
    /// # Errors
    /// As [`DasherMatcher::accept_at`].
    pub fn accept(
        &self,
        index: &GeoIndex,
        m: &mut DasherMatch,
        dasher: DriverId,
    ) -> Result<DasherStep, MatchingError> {
        self.accept_at(index, m, dasher, Instant::now())
    }

    /// `dasher` declines; when no offer is left open the next dashers are
    /// offered.
    ///
    /// # Errors
    /// As [`DasherMatcher::accept_at`].
    pub fn decline_at(
        &self,
        index: &GeoIndex,
        m: &mut DasherMatch,
        dasher: DriverId,
        now: Instant,
    ) -> Result<DasherStep, MatchingError> {
        m.rounds.check_event(
            "decline",
            m.status.name(),
            m.status.is_final(),
            Some(dasher),
            now,
        )?;
        let mut next = m.clone();
        next.rounds.last_event = now;
        let orders = next.orders.clone();
        let k = orders.len() as u8;
        let mut search = |r: f64, ex: &[DriverId]| self.search(index, &orders, k, r, ex, now);
        let offers = next
            .rounds
            .close_offer(dasher, now, &self.rules(), &mut search)?;
        let step = self.settle(&mut next, offers, Vec::new(), None);
        *m = next;
        Ok(step)
    }

    /// [`DasherMatcher::decline_at`] at `Instant::now()`.
    ///
    /// # Errors
    /// As [`DasherMatcher::decline_at`].
    pub fn decline(
        &self,
        index: &GeoIndex,
        m: &mut DasherMatch,
        dasher: DriverId,
    ) -> Result<DasherStep, MatchingError> {
        self.decline_at(index, m, dasher, Instant::now())
    }

    /// The clock: after the 20 s deadline the open offers are withdrawn and
    /// the next dashers (not offered yet) get the batch; when nobody is
    /// left within the last radius the match gives up.
    ///
    /// # Errors
    /// [`MatchingError::InvalidEvent`] when the match is over or `now` is
    /// older than the previous event.
    pub fn tick_at(
        &self,
        index: &GeoIndex,
        m: &mut DasherMatch,
        now: Instant,
    ) -> Result<DasherStep, MatchingError> {
        m.rounds
            .check_event("tick", m.status.name(), m.status.is_final(), None, now)?;
        if !m.rounds.expired(now) {
            m.rounds.last_event = now;
            return Ok(self.settle(m, Vec::new(), Vec::new(), None));
        }
        let mut next = m.clone();
        next.rounds.last_event = now;
        let orders = next.orders.clone();
        let k = orders.len() as u8;
        let mut search = |r: f64, ex: &[DriverId]| self.search(index, &orders, k, r, ex, now);
        let (withdrawn, offers) = next.rounds.time_out(now, &self.rules(), &mut search)?;
        let step = self.settle(&mut next, offers, withdrawn, None);
        *m = next;
        Ok(step)
    }

    /// [`DasherMatcher::tick_at`] at `Instant::now()`.
    ///
    /// # Errors
    /// As [`DasherMatcher::tick_at`].
    pub fn tick(&self, index: &GeoIndex, m: &mut DasherMatch) -> Result<DasherStep, MatchingError> {
        self.tick_at(index, m, Instant::now())
    }
}

#[cfg(test)]
#[path = "dasher_tests.rs"]
mod tests;
