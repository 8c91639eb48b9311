//! What ride and dasher matching share in the simulation: answering an
//! offer and handling a round's deadline, over either matcher (the event
//! plumbing; what a step *means* stays in `rides.rs` / `orders.rs`).

use std::time::Instant;

use dispatchkit::geo::{DriverId, GeoIndex};
use dispatchkit::matching::{
    DasherMatch, DasherMatcher, DasherStep, EtaModel, MatchingError, RideMatch, RideMatcher,
    RideStep,
};

use crate::report::Latencies;

/// A matcher as the simulation drives it.
pub trait Matcher {
    type Match;
    type Step;
    fn answer(
        &self,
        index: &GeoIndex,
        m: &mut Self::Match,
        driver: DriverId,
        accept: bool,
        now: Instant,
    ) -> Result<Self::Step, MatchingError>;
    fn tick(
        &self,
        index: &GeoIndex,
        m: &mut Self::Match,
        now: Instant,
    ) -> Result<Self::Step, MatchingError>;
    fn deadline(m: &Self::Match) -> Option<Instant>;
}

impl<E: EtaModel> Matcher for RideMatcher<E> {
    type Match = RideMatch;
    type Step = RideStep;
    fn answer(
        &self,
        index: &GeoIndex,
        m: &mut RideMatch,
        driver: DriverId,
        accept: bool,
        now: Instant,
    ) -> Result<RideStep, MatchingError> {
        if accept {
            self.accept_at(index, m, driver, now)
        } else {
            self.decline_at(index, m, driver, now)
        }
    }
    fn tick(
        &self,
        index: &GeoIndex,
        m: &mut RideMatch,
        now: Instant,
    ) -> Result<RideStep, MatchingError> {
        self.tick_at(index, m, now)
    }
    fn deadline(m: &RideMatch) -> Option<Instant> {
        m.deadline()
    }
}

impl<E: EtaModel> Matcher for DasherMatcher<E> {
    type Match = DasherMatch;
    type Step = DasherStep;
    fn answer(
        &self,
        index: &GeoIndex,
        m: &mut DasherMatch,
        dasher: DriverId,
        accept: bool,
        now: Instant,
    ) -> Result<DasherStep, MatchingError> {
        if accept {
            self.accept_at(index, m, dasher, now)
        } else {
            self.decline_at(index, m, dasher, now)
        }
    }
    fn tick(
        &self,
        index: &GeoIndex,
        m: &mut DasherMatch,
        now: Instant,
    ) -> Result<DasherStep, MatchingError> {
        self.tick_at(index, m, now)
    }
    fn deadline(m: &DasherMatch) -> Option<Instant> {
        m.deadline()
    }
}

/// A driver's answer to an offer of match `m` (if it is still matching),
/// timed into `latency`. `None`: nothing to do (the match is over, or the
/// offer was withdrawn or lapsed before the answer came).
pub fn answer<M: Matcher>(
    matcher: &M,
    index: &GeoIndex,
    m: Option<&mut M::Match>,
    driver: u64,
    accept: bool,
    now: Instant,
    latency: &mut Latencies,
) -> Result<Option<M::Step>, MatchingError> {
    let Some(m) = m else { return Ok(None) };
    let driver = DriverId::new(driver).map_err(MatchingError::Geo)?;
    let t = Instant::now();
    match matcher.answer(index, m, driver, accept, now) {
        Ok(step) => {
            latency.record(t.elapsed());
            Ok(Some(step))
        }
        Err(MatchingError::InvalidEvent { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The deadline event of match `m` at `now`, timed into `latency`. `None`
/// when the match is over or a later round replaced this deadline.
pub fn deadline<M: Matcher>(
    matcher: &M,
    index: &GeoIndex,
    m: Option<&mut M::Match>,
    now: Instant,
    latency: &mut Latencies,
) -> Result<Option<M::Step>, MatchingError> {
    let Some(m) = m else { return Ok(None) };
    if M::deadline(m) != Some(now) {
        return Ok(None);
    }
    let t = Instant::now();
    let step = matcher.tick(index, m, now)?;
    latency.record(t.elapsed());
    Ok(Some(step))
}
