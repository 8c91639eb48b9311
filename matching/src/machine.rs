//! The offer state machine shared by ride and dasher matching.
//!
//! A match offers what it offers (a ride, a batch) in rounds
//! ([`Rounds`]) and moves on four events: start, accept, decline and the
//! clock. The machine is the same for both; what differs is behind
//! [`Offered`]: how candidates are searched and ranked, how a driver is
//! claimed atomically in the index, and what the final statuses say.
//!
//! ```text
//!   start ──► Offering ──accept (claim won)──► Assigned
//!              │  ▲ decline / lost race: next candidates
//!              │  └ timeout: per `OnTimeout` (wider radius / next candidates)
//!              └──nobody left after the last step──► Unmatched
//! ```
//!
//! Every event is checked first ([`Rounds::check_event`]) and applied to a
//! copy, so an event that fails (a refused event, an index error) leaves
//! the match unchanged.

use std::time::Instant;

use dispatchkit_geo_index::{DriverId, DriverIndex, Hit, Search};

use crate::MatchingError;
use crate::offers::{Ranked, RoundRules, Rounds};

/// What an event changed. It lists the offers to send and withdraw, so
/// dropping it is a warning.
#[derive(Debug, Clone, PartialEq)]
#[must_use = "a step lists offers to send and withdraw"]
#[non_exhaustive]
pub struct OfferStep<O, S> {
    /// New offers to send (push notifications).
    pub offers: Vec<O>,
    /// Drivers whose open offer was withdrawn (timed out, or the match went
    /// to someone else).
    pub withdrawn: Vec<DriverId>,
    /// A driver who accepted but could no longer be claimed (claimed by
    /// another match meanwhile, or offline): the race was lost and matching
    /// went on.
    pub lost_race: Option<DriverId>,
    /// The status after the event.
    pub status: S,
}

/// The events every offer matcher ([`RideMatcher`](crate::RideMatcher),
/// [`DasherMatcher`](crate::DasherMatcher)) takes after it has started a
/// match: a driver's answer and the clock. Code that drives offers (a push
/// service, a simulation) can be written once over this trait.
///
/// Every event is checked first and applied to a copy: an event that
/// returns an error leaves the match unchanged.
pub trait OfferMatcher {
    /// One match's state.
    type Match;
    /// What one offer carries.
    type Offer;
    /// Where a match stands.
    type Status;

    /// `driver` accepts at `now`. The driver is claimed atomically in the
    /// index: if the claim wins, the match is assigned and the other open
    /// offers are withdrawn; if it loses (the driver was just claimed
    /// elsewhere, or went offline) the offer is dropped (`lost_race`) and
    /// matching goes on with the next candidates.
    ///
    /// # Errors
    /// [`MatchingError::InvalidEvent`] (state unchanged) when the match is
    /// over, the driver has no open offer, the offer has expired, or `now`
    /// is older than the previous event; [`MatchingError::Geo`] if the
    /// index fails.
    fn accept_at(
        &self,
        index: &dyn DriverIndex,
        m: &mut Self::Match,
        driver: DriverId,
        now: Instant,
    ) -> Result<OfferStep<Self::Offer, Self::Status>, MatchingError>;

    /// `driver` declines at `now`; when it held the last open offer of the
    /// round the next candidates are offered.
    ///
    /// # Errors
    /// As [`accept_at`](Self::accept_at).
    fn decline_at(
        &self,
        index: &dyn DriverIndex,
        m: &mut Self::Match,
        driver: DriverId,
        now: Instant,
    ) -> Result<OfferStep<Self::Offer, Self::Status>, MatchingError>;

    /// The clock: at or after the round's deadline the open offers are
    /// withdrawn and the next round opens (what it offers is the matcher's
    /// rule); before the deadline nothing changes.
    ///
    /// # Errors
    /// [`MatchingError::InvalidEvent`] when the match is over or `now` is
    /// older than the previous event; [`MatchingError::Geo`] if the index
    /// fails.
    fn tick_at(
        &self,
        index: &dyn DriverIndex,
        m: &mut Self::Match,
        now: Instant,
    ) -> Result<OfferStep<Self::Offer, Self::Status>, MatchingError>;

    /// When the open offers of `m` lapse (`None` once it is over): when to
    /// call [`tick_at`](Self::tick_at).
    fn deadline(m: &Self::Match) -> Option<Instant>;

    /// [`accept_at`](Self::accept_at) at `Instant::now()`.
    ///
    /// # Errors
    /// As [`accept_at`](Self::accept_at).
    fn accept(
        &self,
        index: &dyn DriverIndex,
        m: &mut Self::Match,
        driver: DriverId,
    ) -> Result<OfferStep<Self::Offer, Self::Status>, MatchingError> {
        self.accept_at(index, m, driver, Instant::now())
    }

    /// [`decline_at`](Self::decline_at) at `Instant::now()`.
    ///
    /// # Errors
    /// As [`accept_at`](Self::accept_at).
    fn decline(
        &self,
        index: &dyn DriverIndex,
        m: &mut Self::Match,
        driver: DriverId,
    ) -> Result<OfferStep<Self::Offer, Self::Status>, MatchingError> {
        self.decline_at(index, m, driver, Instant::now())
    }

    /// [`tick_at`](Self::tick_at) at `Instant::now()`.
    ///
    /// # Errors
    /// As [`tick_at`](Self::tick_at).
    fn tick(
        &self,
        index: &dyn DriverIndex,
        m: &mut Self::Match,
    ) -> Result<OfferStep<Self::Offer, Self::Status>, MatchingError> {
        self.tick_at(index, m, Instant::now())
    }
}

/// The status of a match, as the machine needs to see it.
pub(crate) trait MatchStatus: Clone {
    /// The state's name in [`MatchingError::InvalidEvent`].
    fn name(&self) -> &'static str;
    /// Whether the match is over.
    fn is_final(&self) -> bool;
}

/// What is offered: the domain half of the machine, for one match and one
/// event (it borrows the matcher, the index and the match's subject).
pub(crate) trait Offered {
    /// What a ranked candidate carries.
    type Payload: Clone;
    /// The match's status.
    type Status: MatchStatus;

    /// The round parameters.
    fn rules(&self) -> RoundRules<'_>;
    /// Eligible candidates within `radius_km`, not in `exclude`, ranked.
    fn search(
        &self,
        radius_km: f64,
        exclude: &[DriverId],
        now: Instant,
    ) -> Result<Vec<Ranked<Self::Payload>>, MatchingError>;
    /// Claims `driver` atomically in the index; false when the race is
    /// lost (claimed meanwhile, offline, gone).
    fn claim(&self, driver: DriverId, now: Instant) -> Result<bool, MatchingError>;
    /// The status after `offer` (open until `expires_at`) was accepted and
    /// claimed.
    fn assigned(&self, offer: &Ranked<Self::Payload>, expires_at: Instant) -> Self::Status;
    /// The status when nobody is left.
    fn unmatched(&self, found_any: bool, offers_made: usize) -> Self::Status;
}

/// What an event changed (the caller turns it into its public step).
pub(crate) struct Outcome<P> {
    pub(crate) offers: Vec<Ranked<P>>,
    pub(crate) withdrawn: Vec<DriverId>,
    pub(crate) lost_race: Option<DriverId>,
}

impl<P> Outcome<P> {
    fn new(offers: Vec<Ranked<P>>, withdrawn: Vec<DriverId>, lost_race: Option<DriverId>) -> Self {
        Self {
            offers,
            withdrawn,
            lost_race,
        }
    }
}

/// One match's rounds and status.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Machine<P, S> {
    pub(crate) rounds: Rounds<P>,
    pub(crate) status: S,
}

impl<P: Clone, S: MatchStatus> Machine<P, S> {
    /// Starts at `now` with status `offering`: opens the first round
    /// (possibly `Unmatched` at once).
    pub(crate) fn start<O>(
        o: &O,
        offering: S,
        now: Instant,
    ) -> Result<(Self, Outcome<P>), MatchingError>
    where
        O: Offered<Payload = P, Status = S>,
    {
        let mut m = Self {
            rounds: Rounds::new(now),
            status: offering,
        };
        let mut search = |r: f64, ex: &[DriverId]| o.search(r, ex, now);
        let offers = m.rounds.next_round(now, &o.rules(), &mut search)?;
        let out = m.settle(o, offers, Vec::new(), None);
        Ok((m, out))
    }

    /// `driver` accepts: if the claim wins the match is assigned and the
    /// other open offers withdrawn; otherwise the offer is dropped (a lost
    /// race) and matching goes on.
    pub(crate) fn accept<O>(
        &mut self,
        o: &O,
        driver: DriverId,
        now: Instant,
    ) -> Result<Outcome<P>, MatchingError>
    where
        O: Offered<Payload = P, Status = S>,
    {
        self.check_event("accept", Some(driver), now)?;
        let won = o.claim(driver, now)?;
        let mut next = self.clone();
        next.rounds.last_event = now;
        if won {
            let expires_at = next.rounds.deadline.unwrap_or(now);
            if let Some(c) = next.rounds.open_offer(driver) {
                next.status = o.assigned(c, expires_at);
            }
            let withdrawn = next
                .rounds
                .open
                .drain(..)
                .map(|c| c.driver)
                .filter(|&d| d != driver)
                .collect();
            next.rounds.queue.clear();
            next.rounds.deadline = None;
            *self = next;
            return Ok(Outcome::new(Vec::new(), withdrawn, None));
        }
        let mut search = |r: f64, ex: &[DriverId]| o.search(r, ex, now);
        let offers = next
            .rounds
            .close_offer(driver, now, &o.rules(), &mut search)?;
        let out = next.settle(o, offers, Vec::new(), Some(driver));
        *self = next;
        Ok(out)
    }

    /// `driver` declines; when it held the last open offer the next round
    /// opens.
    pub(crate) fn decline<O>(
        &mut self,
        o: &O,
        driver: DriverId,
        now: Instant,
    ) -> Result<Outcome<P>, MatchingError>
    where
        O: Offered<Payload = P, Status = S>,
    {
        self.check_event("decline", Some(driver), now)?;
        let mut next = self.clone();
        next.rounds.last_event = now;
        let mut search = |r: f64, ex: &[DriverId]| o.search(r, ex, now);
        let offers = next
            .rounds
            .close_offer(driver, now, &o.rules(), &mut search)?;
        let out = next.settle(o, offers, Vec::new(), None);
        *self = next;
        Ok(out)
    }

    /// The clock: at or after the deadline the open offers are withdrawn
    /// and the next round opens per the rules' `on_timeout`; before it
    /// nothing changes.
    pub(crate) fn tick<O>(&mut self, o: &O, now: Instant) -> Result<Outcome<P>, MatchingError>
    where
        O: Offered<Payload = P, Status = S>,
    {
        self.check_event("tick", None, now)?;
        if !self.rounds.expired(now) {
            self.rounds.last_event = now;
            return Ok(Outcome::new(Vec::new(), Vec::new(), None));
        }
        let mut next = self.clone();
        next.rounds.last_event = now;
        let mut search = |r: f64, ex: &[DriverId]| o.search(r, ex, now);
        let (withdrawn, offers) = next.rounds.time_out(now, &o.rules(), &mut search)?;
        let out = next.settle(o, offers, withdrawn, None);
        *self = next;
        Ok(out)
    }

    /// When the open offers lapse; the last event's time once none are
    /// open.
    pub(crate) fn expires_at(&self) -> Instant {
        self.rounds.deadline.unwrap_or(self.rounds.last_event)
    }

    fn check_event(
        &self,
        event: &'static str,
        driver: Option<DriverId>,
        now: Instant,
    ) -> Result<(), MatchingError> {
        self.rounds.check_event(
            event,
            self.status.name(),
            self.status.is_final(),
            driver,
            now,
        )
    }

    /// Closes the match when nothing is open and nothing new was offered.
    fn settle<O>(
        &mut self,
        o: &O,
        offers: Vec<Ranked<P>>,
        withdrawn: Vec<DriverId>,
        lost_race: Option<DriverId>,
    ) -> Outcome<P>
    where
        O: Offered<Payload = P, Status = S>,
    {
        if offers.is_empty() && self.rounds.open.is_empty() && !self.status.is_final() {
            self.status = o.unmatched(self.rounds.found_any, self.rounds.offered.len());
            self.rounds.deadline = None;
        }
        Outcome::new(offers, withdrawn, lost_race)
    }

    /// The rounds' invariants, with the status's finality.
    pub(crate) fn check_invariants(&self) {
        self.rounds.check_invariants(!self.status.is_final());
    }
}

/// Checks a search radius (finite and positive, km).
pub(crate) fn check_radius(radius_km: f64) -> Result<(), MatchingError> {
    if radius_km.is_finite() && radius_km > 0.0 {
        Ok(())
    } else {
        Err(MatchingError::param(
            "radius_km",
            radius_km,
            "must be finite and positive",
        ))
    }
}

/// Runs `q` at `now`, skipping the drivers in `exclude` inside the search
/// (so `COUNT` counts only drivers not excluded).
pub(crate) fn search_excluding(
    index: &dyn DriverIndex,
    q: &Search,
    exclude: &[DriverId],
    now: Instant,
) -> Result<Vec<Hit>, MatchingError> {
    Ok(index.search_excluding_at(q, exclude, now)?)
}
