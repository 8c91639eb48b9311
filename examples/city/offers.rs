//! What ride and dasher matching share in the simulation: answering an
//! offer and handling a round's deadline, over either matcher through
//! `OfferMatcher` (the event plumbing; what a step *means* stays in
//! `rides.rs` / `orders.rs`).

use std::time::Instant;

use dispatchkit::geo::{DriverId, DriverIndex};
use dispatchkit::matching::{MatchingError, OfferMatcher, OfferStep};

use crate::report::Latencies;

/// The step an event of matcher `M` produces.
type Step<M> = OfferStep<<M as OfferMatcher>::Offer, <M as OfferMatcher>::Status>;

/// A driver's answer to an offer of match `m` (if it is still matching),
/// timed into `latency`. `None`: nothing to do (the match is over, or the
/// offer was withdrawn or lapsed before the answer came).
pub fn answer<M: OfferMatcher>(
    matcher: &M,
    index: &dyn DriverIndex,
    m: Option<&mut M::Match>,
    driver: u64,
    accept: bool,
    now: Instant,
    latency: &mut Latencies,
) -> Result<Option<Step<M>>, MatchingError> {
    let Some(m) = m else { return Ok(None) };
    let driver = DriverId::new(driver).map_err(MatchingError::Geo)?;
    let t = Instant::now();
    let step = if accept {
        matcher.accept_at(index, m, driver, now)
    } else {
        matcher.decline_at(index, m, driver, now)
    };
    match step {
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
pub fn deadline<M: OfferMatcher>(
    matcher: &M,
    index: &dyn DriverIndex,
    m: Option<&mut M::Match>,
    now: Instant,
    latency: &mut Latencies,
) -> Result<Option<Step<M>>, MatchingError> {
    let Some(m) = m else { return Ok(None) };
    if M::deadline(m) != Some(now) {
        return Ok(None);
    }
    let t = Instant::now();
    let step = matcher.tick_at(index, m, now)?;
    latency.record(t.elapsed());
    Ok(Some(step))
}
