//! The offer-round engine shared by ride and dasher matching: ranked
//! candidates are offered `per_round` at a time with a common deadline;
//! declines and lost races free slots; timeouts either widen the search
//! radius (rides) or move on to the next candidates (dashers).

use std::time::{Duration, Instant};

use dispatchkit_geo_index::DriverId;

use crate::MatchingError;

/// A candidate with its ranking score (lower is better) and the data the
/// offer carries.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Ranked<P> {
    pub(crate) driver: DriverId,
    pub(crate) score: f64,
    pub(crate) payload: P,
}

/// Sorts candidates best first: by score, then by driver id (so equal
/// scores rank deterministically).
pub(crate) fn rank<P>(v: &mut [Ranked<P>]) {
    v.sort_by(|a, b| a.score.total_cmp(&b.score).then(a.driver.cmp(&b.driver)));
}

/// What a timeout does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnTimeout {
    /// Go to the next (wider) radius step and search again.
    ExpandRadius,
    /// Offer to the next candidates at the same radius (widening only when
    /// none are left).
    NextCandidates,
}

/// Parameters of the rounds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RoundRules<'a> {
    pub(crate) radius_steps_km: &'a [f64],
    pub(crate) per_round: usize,
    pub(crate) timeout: Duration,
    pub(crate) on_timeout: OnTimeout,
}

/// The state of the rounds of one match.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rounds<P> {
    /// Index into the radius steps.
    pub(crate) step: usize,
    /// Every driver offered so far, in offer order.
    pub(crate) offered: Vec<DriverId>,
    /// Open offers of the current round.
    pub(crate) open: Vec<Ranked<P>>,
    /// Ranked candidates of the current step not offered yet, best last
    /// (so the next one pops).
    pub(crate) queue: Vec<Ranked<P>>,
    /// Deadline of the current round.
    pub(crate) deadline: Option<Instant>,
    /// Whether any search ever found a candidate.
    pub(crate) found_any: bool,
    /// Time of the last event (events must not go back in time).
    pub(crate) last_event: Instant,
}

impl<P: Clone> Rounds<P> {
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            step: 0,
            offered: Vec::new(),
            open: Vec::new(),
            queue: Vec::new(),
            deadline: None,
            found_any: false,
            last_event: now,
        }
    }

    /// Opens the next round at `now`: from the queue, else from a new
    /// search at the current step, else at the next steps. Returns the new
    /// offers; an empty result means every step is exhausted.
    pub(crate) fn next_round<S>(
        &mut self,
        now: Instant,
        rules: &RoundRules<'_>,
        search: &mut S,
    ) -> Result<Vec<Ranked<P>>, MatchingError>
    where
        S: FnMut(f64, &[DriverId]) -> Result<Vec<Ranked<P>>, MatchingError>,
    {
        debug_assert!(self.open.is_empty());
        self.deadline = None;
        while self.step < rules.radius_steps_km.len() {
            if self.queue.is_empty() {
                let mut found = search(rules.radius_steps_km[self.step], &self.offered)?;
                found.retain(|c| !self.offered.contains(&c.driver));
                rank(&mut found);
                found.dedup_by(|a, b| a.driver == b.driver);
                found.reverse();
                self.queue = found;
            }
            if self.queue.is_empty() {
                self.step += 1;
                continue;
            }
            self.found_any = true;
            let take = rules.per_round.min(self.queue.len());
            let at = self.queue.len() - take;
            let mut round: Vec<Ranked<P>> = self.queue.drain(at..).collect();
            round.reverse();
            self.offered.extend(round.iter().map(|c| c.driver));
            self.open = round.clone();
            self.deadline = Some(offer_deadline(now, rules.timeout)?);
            return Ok(round);
        }
        Ok(Vec::new())
    }

    /// Handles a timeout at `now >= deadline`: drops the open offers
    /// (returned) and opens the next round per `rules.on_timeout`.
    pub(crate) fn time_out<S>(
        &mut self,
        now: Instant,
        rules: &RoundRules<'_>,
        search: &mut S,
    ) -> Result<(Vec<DriverId>, Vec<Ranked<P>>), MatchingError>
    where
        S: FnMut(f64, &[DriverId]) -> Result<Vec<Ranked<P>>, MatchingError>,
    {
        let withdrawn: Vec<DriverId> = self.open.drain(..).map(|c| c.driver).collect();
        if rules.on_timeout == OnTimeout::ExpandRadius {
            self.queue.clear();
            self.step += 1;
        }
        let offers = self.next_round(now, rules, search)?;
        Ok((withdrawn, offers))
    }

    /// Removes `driver`'s open offer (declined, or lost to another match)
    /// and, if it was the last one, opens the next round.
    pub(crate) fn close_offer<S>(
        &mut self,
        driver: DriverId,
        now: Instant,
        rules: &RoundRules<'_>,
        search: &mut S,
    ) -> Result<Vec<Ranked<P>>, MatchingError>
    where
        S: FnMut(f64, &[DriverId]) -> Result<Vec<Ranked<P>>, MatchingError>,
    {
        self.open.retain(|c| c.driver != driver);
        if self.open.is_empty() {
            self.next_round(now, rules, search)
        } else {
            Ok(Vec::new())
        }
    }

    /// The open offer of `driver`, if any.
    pub(crate) fn open_offer(&self, driver: DriverId) -> Option<&Ranked<P>> {
        self.open.iter().find(|c| c.driver == driver)
    }

    /// Checks an event: the match is not over, `now` is not older than the
    /// last event, and (for accept / decline) `driver` holds an open,
    /// unexpired offer.
    pub(crate) fn check_event(
        &self,
        event: &'static str,
        state: &'static str,
        finished: bool,
        driver: Option<DriverId>,
        now: Instant,
    ) -> Result<(), MatchingError> {
        let refuse = |reason| {
            Err(MatchingError::InvalidEvent {
                event,
                state,
                reason,
            })
        };
        if finished {
            return refuse("the match is over");
        }
        self.check_time(event, state, now)?;
        if let Some(d) = driver {
            if self.open_offer(d).is_none() {
                return refuse("this driver has no open offer");
            }
            if self.expired(now) {
                return refuse("the offer has expired; process the timeout with `tick_at`");
            }
        }
        Ok(())
    }

    /// Checks that an event at `now` is not from the past.
    pub(crate) fn check_time(
        &self,
        event: &'static str,
        state: &'static str,
        now: Instant,
    ) -> Result<(), MatchingError> {
        if now < self.last_event {
            return Err(MatchingError::InvalidEvent {
                event,
                state,
                reason: "the event is older than the previous one",
            });
        }
        Ok(())
    }

    /// Whether the round's deadline has passed at `now`.
    pub(crate) fn expired(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|d| now >= d)
    }

    /// Invariants: open offers and queue hold distinct drivers; every open
    /// offer was offered; nothing queued was offered; a deadline exactly
    /// when offers are open.
    pub(crate) fn check_invariants(&self, active: bool) {
        let mut seen = self.offered.clone();
        seen.sort();
        let before = seen.len();
        seen.dedup();
        assert_eq!(before, seen.len(), "a driver was offered twice");
        for c in &self.open {
            assert!(
                self.offered.contains(&c.driver),
                "open offer never recorded"
            );
        }
        for c in &self.queue {
            assert!(
                !self.offered.contains(&c.driver),
                "queued driver already offered"
            );
        }
        assert!(
            self.queue.windows(2).all(|w| w[0].score >= w[1].score),
            "queue out of order"
        );
        if active {
            assert!(!self.open.is_empty(), "an active match has open offers");
            assert!(self.deadline.is_some());
        } else {
            assert!(self.open.is_empty(), "a finished match has no open offers");
        }
    }
}

/// When offers made at `now` expire.
///
/// # Errors
/// [`MatchingError::InvalidParameter`] when `now + timeout` is beyond what
/// `Instant` can represent (a fabricated far-future `now`).
pub(crate) fn offer_deadline(now: Instant, timeout: Duration) -> Result<Instant, MatchingError> {
    now.checked_add(timeout)
        .ok_or(MatchingError::InvalidParameter {
            name: "now",
            value: timeout.as_secs_f64(),
            reason: "now + offer_timeout is beyond the range of Instant",
        })
}
