use std::time::{Duration, Instant};

use dispatchkit_geo_index::{
    DriverId, DriverIndex, Filter, GeoError, LonLat, Rating, Search, Status, Unit, VehicleSet,
};

use crate::MatchingError;
use crate::eta::EtaModel;
use crate::machine::{
    Machine, MatchStatus, OfferMatcher, OfferStep, Offered, Outcome, check_radius, search_excluding,
};
use crate::offers::{OnTimeout, Ranked, RoundRules, rank};

/// A rider's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RiderId(pub u64);

/// A ride request: where and which vehicle types will do.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RideRequest {
    /// Who asks.
    pub rider: RiderId,
    /// Where to be picked up.
    pub pickup: LonLat,
    /// Acceptable vehicle types ("vehicle type matches").
    pub vehicles: VehicleSet,
}

/// Parameters of ride matching (seed example 1, step 2).
///
/// | field | default | seed |
/// |---|---|---|
/// | `radius_steps_km` | `[5, 10]` | "GEORADIUS (5km)", "expand search radius (5km → 10km)" |
/// | `min_rating` | 4.50, strictly above | "rating > 4.5" |
/// | `candidates` | 10 | "calculate ETA for top 10 drivers" (the 10 nearest) |
/// | `offers_per_round` | 3 | "publish to top 3 drivers" |
/// | `offer_timeout` | 30 s | "wait for accept (30-second timeout)" |
/// | `eligible_status` | [`Status::AVAILABLE`] | "filter: available" |
/// | `assigned_status` | [`Status::BUSY`] | "update Redis: driver status = busy" |
///
/// Eligible drivers have `eligible_status`, are rated strictly above
/// `min_rating` and drive a vehicle type in the request's set; an accept
/// moves the driver from `eligible_status` to `assigned_status` atomically.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "ride_config_serde::Unchecked")
)]
pub struct RideConfig {
    /// Search radii, km, strictly increasing; a timeout moves to the next.
    pub radius_steps_km: Vec<f64>,
    /// Drivers must be rated strictly above this.
    pub min_rating: Rating,
    /// How many nearest eligible drivers get an ETA and a rank (k).
    pub candidates: usize,
    /// How many ranked drivers are offered the ride at once.
    pub offers_per_round: usize,
    /// How long a round of offers stays open.
    pub offer_timeout: Duration,
    /// Status a driver must have to be offered a ride.
    pub eligible_status: Status,
    /// Status an accepting driver is moved to.
    pub assigned_status: Status,
}

dispatchkit_geo_index::deserialize_checked!(
    ride_config_serde,
    RideConfig {
        radius_steps_km: Vec<f64>,
        min_rating: Rating,
        candidates: usize,
        offers_per_round: usize,
        offer_timeout: Duration,
        eligible_status: Status,
        assigned_status: Status,
    },
    RideConfig::validate,
    MatchingError
);

impl Default for RideConfig {
    fn default() -> Self {
        Self {
            radius_steps_km: vec![5.0, 10.0],
            min_rating: Rating::from_hundredths(450).unwrap_or(Rating::MAX),
            candidates: 10,
            offers_per_round: 3,
            offer_timeout: Duration::from_secs(30),
            eligible_status: Status::AVAILABLE,
            assigned_status: Status::BUSY,
        }
    }
}

impl RideConfig {
    /// Checks the parameters.
    ///
    /// # Errors
    /// [`MatchingError::Empty`] for no radius steps;
    /// [`MatchingError::InvalidParameter`] for a radius that is not finite
    /// and positive or not above the previous one, `candidates == 0`
    /// (k = 0), `offers_per_round == 0` or above `candidates`, a zero
    /// timeout or one above a day, `min_rating` of 5.00 (nobody is rated above it), or equal
    /// eligible and assigned statuses (a claim would change nothing).
    pub fn validate(&self) -> Result<(), MatchingError> {
        if self.eligible_status == self.assigned_status {
            return Err(MatchingError::param(
                "assigned_status",
                f64::from(self.assigned_status.get()),
                "must differ from eligible_status",
            ));
        }
        check_steps(&self.radius_steps_km)?;
        check_counts(self.candidates, self.offers_per_round, self.offer_timeout)?;
        strict_rating(self.min_rating).map(|_| ())
    }
}

pub(crate) fn check_steps(steps: &[f64]) -> Result<(), MatchingError> {
    if steps.is_empty() {
        return Err(MatchingError::Empty {
            what: "radius_steps_km",
            reason: "matching needs at least one search radius",
        });
    }
    let mut prev = 0.0;
    for &r in steps {
        if !(r.is_finite() && r > prev) {
            return Err(MatchingError::param(
                "radius_steps_km",
                r,
                "radii must be finite, positive and strictly increasing",
            ));
        }
        prev = r;
    }
    Ok(())
}

pub(crate) fn check_counts(
    candidates: usize,
    per_round: usize,
    timeout: Duration,
) -> Result<(), MatchingError> {
    if candidates == 0 {
        return Err(MatchingError::param(
            "candidates",
            0.0,
            "k = 0: at least one candidate must be ranked",
        ));
    }
    if per_round == 0 || per_round > candidates {
        return Err(MatchingError::param(
            "offers_per_round",
            per_round as f64,
            "must be between 1 and `candidates`",
        ));
    }
    if timeout.is_zero() || timeout > MAX_OFFER_TIMEOUT {
        return Err(MatchingError::param(
            "offer_timeout",
            timeout.as_secs_f64(),
            "must be above zero and at most a day",
        ));
    }
    Ok(())
}

/// The longest an offer may stay open (a day): deadlines are `now +
/// timeout`, which must stay representable.
const MAX_OFFER_TIMEOUT: Duration = Duration::from_secs(86_400);

/// The inclusive index filter rating for "strictly above `r`".
pub(crate) fn strict_rating(r: Rating) -> Result<Rating, MatchingError> {
    Rating::from_hundredths(r.hundredths() + 1).map_err(|_| {
        MatchingError::param("min_rating", r.get(), "nobody is rated strictly above 5.00")
    })
}

/// An offer of a ride to a driver.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RideOffer {
    /// The driver offered the ride.
    pub driver: DriverId,
    /// Time until the driver is ready at the pickup (ETA model: driving +
    /// pickup overhead).
    pub eta: Duration,
    /// Straight-line distance to the pickup, metres.
    pub distance_m: f64,
    /// When the offer lapses.
    pub expires_at: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RideCandidate {
    eta_secs: f64,
    distance_m: f64,
}

/// Why a ride found no driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum UnmatchedReason {
    /// No eligible driver within the largest radius.
    NoDriversInRange,
    /// Drivers were offered the ride; every offer was declined, timed out
    /// or lost to another rider, and nobody is left within the largest
    /// radius.
    NobodyAccepted,
}

/// Where a ride match stands.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum RideStatus {
    /// Offers are open; waiting for an accept, a decline or the deadline.
    Offering,
    /// A driver accepted and was claimed (now `assigned_status`, by
    /// default [`Status::BUSY`], in the index).
    Assigned {
        /// The driver.
        driver: DriverId,
        /// Its ETA at the time of the offer.
        eta: Duration,
    },
    /// The match gave up after the last radius step.
    Unmatched {
        /// Why.
        reason: UnmatchedReason,
        /// Offers made in total.
        offers_made: usize,
        /// The largest radius searched, km.
        radius_km: f64,
    },
}

impl RideStatus {
    /// Whether the match is over.
    pub fn is_final(&self) -> bool {
        !matches!(self, Self::Offering)
    }
}

impl MatchStatus for RideStatus {
    fn name(&self) -> &'static str {
        match self {
            Self::Offering => "offering",
            Self::Assigned { .. } => "assigned",
            Self::Unmatched { .. } => "unmatched",
        }
    }
    fn is_final(&self) -> bool {
        RideStatus::is_final(self)
    }
}

/// What an event changed ([`OfferStep`] of RideOffers).
pub type RideStep = OfferStep<RideOffer, RideStatus>;

/// One ride request's matching state machine (the seed's Step Functions
/// states 1–4), driven by [`RideMatcher`] events that carry `now`.
///
/// ```text
///            start ──► Offering ──accept (claim won)──► Assigned
///                       │  ▲ decline / lost race: next candidates, same radius
///                       │  └ timeout: next radius step, drivers not offered yet
///                       └──nobody left after the last step──► Unmatched
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RideMatch {
    request: RideRequest,
    machine: Machine<RideCandidate, RideStatus>,
}

impl RideMatch {
    /// The request.
    pub fn request(&self) -> &RideRequest {
        &self.request
    }

    /// The current status.
    pub fn status(&self) -> RideStatus {
        self.machine.status
    }

    /// Open offers, best ETA first.
    pub fn open_offers(&self) -> Vec<RideOffer> {
        let expires_at = self.machine.expires_at();
        self.machine
            .rounds
            .open
            .iter()
            .map(|c| offer(c, expires_at))
            .collect()
    }

    /// When the open offers lapse (`None` once the match is over).
    pub fn deadline(&self) -> Option<Instant> {
        self.machine.rounds.deadline
    }

    /// Every driver offered this ride so far, in offer order.
    pub fn offered(&self) -> &[DriverId] {
        &self.machine.rounds.offered
    }

    /// Index of the current radius step in `RideConfig::radius_steps_km`
    /// (equal to its length once every step is exhausted).
    pub fn radius_step(&self) -> usize {
        self.machine.rounds.step
    }

    /// Checks the invariants of the rounds and that the status agrees with
    /// the open offers; panics on a violation.
    #[doc(hidden)]
    pub fn check_invariants(&self) {
        self.machine.check_invariants();
        if let RideStatus::Assigned { driver, .. } = self.machine.status {
            assert!(self.machine.rounds.offered.contains(&driver));
        }
    }
}

fn offer(c: &Ranked<RideCandidate>, expires_at: Instant) -> RideOffer {
    RideOffer {
        driver: c.driver,
        eta: crate::eta::saturating_secs(c.payload.eta_secs),
        distance_m: c.payload.distance_m,
        expires_at,
    }
}

/// A ride offered for one event: the matcher, the index and the request.
struct Ride<'a, E> {
    matcher: &'a RideMatcher<E>,
    index: &'a dyn DriverIndex,
    request: RideRequest,
}

impl<E: EtaModel> Offered for Ride<'_, E> {
    type Payload = RideCandidate;
    type Status = RideStatus;

    fn rules(&self) -> RoundRules<'_> {
        let c = &self.matcher.config;
        RoundRules {
            radius_steps_km: &c.radius_steps_km,
            per_round: c.offers_per_round,
            timeout: c.offer_timeout,
            on_timeout: OnTimeout::ExpandRadius,
        }
    }

    fn search(
        &self,
        radius_km: f64,
        exclude: &[DriverId],
        now: Instant,
    ) -> Result<Vec<Ranked<RideCandidate>>, MatchingError> {
        self.matcher
            .search(self.index, &self.request, radius_km, exclude, now)
    }

    fn claim(&self, driver: DriverId, now: Instant) -> Result<bool, MatchingError> {
        let c = &self.matcher.config;
        match self.index.compare_and_set_status_at(
            driver,
            c.eligible_status,
            c.assigned_status,
            now,
        ) {
            Ok(won) => Ok(won),
            Err(GeoError::UnknownDriver(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn assigned(&self, offer: &Ranked<RideCandidate>, _: Instant) -> RideStatus {
        RideStatus::Assigned {
            driver: offer.driver,
            eta: crate::eta::saturating_secs(offer.payload.eta_secs),
        }
    }

    fn unmatched(&self, found_any: bool, offers_made: usize) -> RideStatus {
        let steps = &self.matcher.config.radius_steps_km;
        RideStatus::Unmatched {
            reason: if found_any {
                UnmatchedReason::NobodyAccepted
            } else {
                UnmatchedReason::NoDriversInRange
            },
            offers_made,
            radius_km: steps[steps.len() - 1],
        }
    }
}

/// Ride matching over a shared driver index (any [`DriverIndex`]: the
/// in-process `GeoIndex` or a remote one) with an [`EtaModel`].
///
/// `Send + Sync` when the ETA model is: many threads may drive their own
/// [`RideMatch`]es against one matcher and one index; claims are atomic
/// (the index's compare-and-set on the driver's status), so when two
/// riders' offers race for one driver exactly one wins.
///
/// ```
/// use std::time::{Duration, Instant};
/// use dispatchkit_geo_index::{Attrs, DriverId, GeoIndex, LonLat, Rating, Status, VehicleSet, VehicleType};
/// use dispatchkit_matching::{HaversineEta, OfferMatcher, RideConfig, RideMatcher, RideRequest, RideStatus, RiderId};
///
/// let index = GeoIndex::new();
/// let t0 = Instant::now();
/// let car = VehicleType::new(0)?;
/// for (i, lon) in [13.400, 13.405, 13.410, 13.415].iter().enumerate() {
///     let attrs = Attrs::available(car, Rating::new(4.9)?);
///     index.upsert_at(DriverId::new(i as u64)?, LonLat::new(*lon, 52.52)?, attrs, t0)?;
/// }
/// let matcher = RideMatcher::new(RideConfig::default(), HaversineEta::default())?;
/// let req = RideRequest { rider: RiderId(1), pickup: LonLat::new(13.401, 52.52)?, vehicles: VehicleSet::of(&[car]) };
///
/// let (mut m, step) = matcher.start_at(&index, req, t0)?;
/// assert_eq!(step.offers.len(), 3); // the 3 best ETAs
/// assert_eq!(step.offers[0].driver, DriverId::new(0)?);
///
/// let step = matcher.accept_at(&index, &mut m, DriverId::new(1)?, t0 + Duration::from_secs(5))?;
/// assert!(matches!(step.status, RideStatus::Assigned { driver, .. } if driver == DriverId::new(1)?));
/// assert_eq!(index.get_at(DriverId::new(1)?, t0)?.attrs.status, Status::BUSY);
/// # Ok::<(), dispatchkit_matching::MatchingError>(())
/// ```
#[derive(Debug, Clone)]
pub struct RideMatcher<E> {
    config: RideConfig,
    eta: E,
}

impl<E: EtaModel> RideMatcher<E> {
    /// A matcher with `config` and `eta`.
    ///
    /// # Errors
    /// As [`RideConfig::validate`].
    pub fn new(config: RideConfig, eta: E) -> Result<Self, MatchingError> {
        config.validate()?;
        Ok(Self { config, eta })
    }

    /// The configuration.
    pub fn config(&self) -> &RideConfig {
        &self.config
    }

    /// The ETA model.
    pub fn eta_model(&self) -> &E {
        &self.eta
    }

    fn filter(&self, req: &RideRequest) -> Filter {
        // Validated in `new`: 5.00 is rejected, so +1 hundredth exists.
        let r = strict_rating(self.config.min_rating).unwrap_or(Rating::MAX);
        Filter::new()
            .status(self.config.eligible_status)
            .min_rating(r)
            .vehicles(req.vehicles)
    }

    /// State 1 on its own: the `candidates` nearest eligible drivers within
    /// `radius_km` of the pickup (skipping `exclude`), with their ETA,
    /// best ETA first (ties by driver id). One index search plus one ETA
    /// per hit: O(search + k log k).
    ///
    /// # Errors
    /// [`MatchingError::Geo`] / [`MatchingError::InvalidParameter`] for a
    /// radius that is not finite and positive.
    pub fn candidates_at(
        &self,
        index: &dyn DriverIndex,
        req: &RideRequest,
        radius_km: f64,
        exclude: &[DriverId],
        now: Instant,
    ) -> Result<Vec<RideOffer>, MatchingError> {
        let ranked = self.search(index, req, radius_km, exclude, now)?;
        let expires_at = crate::offers::offer_deadline(now, self.config.offer_timeout)?;
        Ok(ranked.iter().map(|c| offer(c, expires_at)).collect())
    }

    fn search(
        &self,
        index: &dyn DriverIndex,
        req: &RideRequest,
        radius_km: f64,
        exclude: &[DriverId],
        now: Instant,
    ) -> Result<Vec<Ranked<RideCandidate>>, MatchingError> {
        check_radius(radius_km)?;
        let q = Search::radius(req.pickup, radius_km, Unit::Kilometers)
            .count(self.config.candidates)
            .filter(self.filter(req));
        let hits = search_excluding(index, &q, exclude, now)?;
        let mut out = Vec::with_capacity(hits.len());
        for h in hits {
            let eta = self.eta.pickup_eta_secs(h.pos, req.pickup, h.attrs.vehicle);
            if eta.is_finite() && eta >= 0.0 {
                out.push(Ranked {
                    driver: h.id,
                    score: eta,
                    payload: RideCandidate {
                        eta_secs: eta,
                        distance_m: h.distance * 1000.0,
                    },
                });
            }
        }
        rank(&mut out);
        Ok(out)
    }

    fn ride<'a>(&'a self, index: &'a dyn DriverIndex, request: RideRequest) -> Ride<'a, E> {
        Ride {
            matcher: self,
            index,
            request,
        }
    }

    fn step(m: &RideMatch, out: Outcome<RideCandidate>) -> RideStep {
        let expires_at = m.machine.expires_at();
        RideStep {
            offers: out.offers.iter().map(|c| offer(c, expires_at)).collect(),
            withdrawn: out.withdrawn,
            lost_race: out.lost_race,
            status: m.machine.status,
        }
    }

    /// States 1–2: searches the first radius, ranks by ETA and offers the
    /// ride to the best `offers_per_round` drivers (moving out to the next
    /// radii at once if a radius has nobody). The match may be `Unmatched`
    /// straight away.
    ///
    /// # Errors
    /// [`MatchingError::Geo`] if the index rejects the search.
    pub fn start_at(
        &self,
        index: &dyn DriverIndex,
        request: RideRequest,
        now: Instant,
    ) -> Result<(RideMatch, RideStep), MatchingError> {
        let ride = self.ride(index, request);
        let (machine, out) = Machine::start(&ride, RideStatus::Offering, now)?;
        let m = RideMatch { request, machine };
        let step = Self::step(&m, out);
        Ok((m, step))
    }

    /// [`RideMatcher::start_at`] at `Instant::now()`.
    ///
    /// # Errors
    /// As [`RideMatcher::start_at`].
    pub fn start(
        &self,
        index: &dyn DriverIndex,
        request: RideRequest,
    ) -> Result<(RideMatch, RideStep), MatchingError> {
        self.start_at(index, request, Instant::now())
    }
}

impl<E: EtaModel> OfferMatcher for RideMatcher<E> {
    type Match = RideMatch;
    type Offer = RideOffer;
    type Status = RideStatus;

    fn accept_at(
        &self,
        index: &dyn DriverIndex,
        m: &mut RideMatch,
        driver: DriverId,
        now: Instant,
    ) -> Result<RideStep, MatchingError> {
        let out = m
            .machine
            .accept(&self.ride(index, m.request), driver, now)?;
        Ok(Self::step(m, out))
    }

    fn decline_at(
        &self,
        index: &dyn DriverIndex,
        m: &mut RideMatch,
        driver: DriverId,
        now: Instant,
    ) -> Result<RideStep, MatchingError> {
        let out = m
            .machine
            .decline(&self.ride(index, m.request), driver, now)?;
        Ok(Self::step(m, out))
    }

    fn deadline(m: &RideMatch) -> Option<Instant> {
        m.deadline()
    }

    fn tick_at(
        &self,
        index: &dyn DriverIndex,
        m: &mut RideMatch,
        now: Instant,
    ) -> Result<RideStep, MatchingError> {
        let out = m.machine.tick(&self.ride(index, m.request), now)?;
        Ok(Self::step(m, out))
    }
}

#[cfg(test)]
#[path = "ride_tests.rs"]
mod tests;
