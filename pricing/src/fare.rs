//! Ride fares: upfront quotes, final fares from GPS traces, cancellation,
//! and the receipt breakdown.

use std::fmt;
use std::time::Duration;

use crate::rounding::mul_div_round;
use crate::{
    Currency, Money, Multiplier, PricingError, PromoSelection, RateCard, Rounding, TracePoint,
    TraceRules, measure_trace,
};

/// Longest distance a fare accepts, metres (a little over the equator).
pub const MAX_FARE_DISTANCE_M: f64 = 50_000_000.0;

/// One line of a receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum FareComponent {
    /// The card's base amount.
    Base,
    /// Distance × rate.
    Distance,
    /// Time × per-minute rate.
    Time,
    /// `(base + distance + time) × (multiplier − 1)`.
    Surge,
    /// Top-up to the card's minimum fare.
    MinimumFare,
    /// The card's booking fee.
    BookingFee,
    /// Promo discount (negative).
    Promo,
    /// Late-cancellation fee.
    CancellationFee,
}

impl FareComponent {
    /// A receipt label.
    pub const fn label(self) -> &'static str {
        match self {
            Self::Base => "base fare",
            Self::Distance => "distance",
            Self::Time => "time",
            Self::Surge => "surge",
            Self::MinimumFare => "minimum fare adjustment",
            Self::BookingFee => "booking fee",
            Self::Promo => "promo",
            Self::CancellationFee => "cancellation fee",
        }
    }
}

/// One component of a fare and its amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct FareLine {
    /// Which component.
    pub component: FareComponent,
    /// Its amount (negative for a discount).
    pub amount: Money,
}

/// An estimated route for an upfront quote.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RouteEstimate {
    /// Route length, metres (rounded to whole metres for pricing).
    pub distance_m: f64,
    /// Driving time.
    pub duration: Duration,
}

/// A priced ride: one amount per [`FareComponent`] whose lines sum exactly
/// to the total. Allocation-free (`Copy`).
///
/// Order of computation, each line rounded once by the card's rounding:
/// 1. `base`, `distance` (`rate × metres`), `time` (`per_minute × ms`);
/// 2. `surge = (base + distance + time) × (multiplier − 1)`;
/// 3. `minimum = max(0, minimum_fare − (base + distance + time + surge))`;
/// 4. `booking_fee` (never surged, not part of the minimum);
/// 5. `promo` (negative) on the trip fare of steps 1–3, never below zero;
/// 6. `total` = the sum of the lines.
///
/// Deserialising checks that the lines are non-negative (the promo line
/// non-positive and at most the trip fare) and sum to the total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "FareData")
)]
pub struct Fare {
    currency: Currency,
    rounding: Rounding,
    multiplier: Multiplier,
    distance_m: u64,
    duration_ms: u64,
    base: i64,
    distance: i64,
    time: i64,
    surge: i64,
    minimum: i64,
    booking_fee: i64,
    promo: i64,
    cancellation: i64,
    total: i64,
}

/// The serialised form of a [`Fare`], checked on the way in.
#[cfg(feature = "serde")]
#[derive(serde::Deserialize)]
#[serde(rename = "Fare", deny_unknown_fields)]
struct FareData {
    currency: Currency,
    rounding: Rounding,
    multiplier: Multiplier,
    distance_m: u64,
    duration_ms: u64,
    base: i64,
    distance: i64,
    time: i64,
    surge: i64,
    minimum: i64,
    booking_fee: i64,
    promo: i64,
    cancellation: i64,
    total: i64,
}

#[cfg(feature = "serde")]
impl TryFrom<FareData> for Fare {
    type Error = PricingError;
    fn try_from(d: FareData) -> Result<Self, PricingError> {
        let f = Fare {
            currency: d.currency,
            rounding: d.rounding,
            multiplier: d.multiplier,
            distance_m: d.distance_m,
            duration_ms: d.duration_ms,
            base: d.base,
            distance: d.distance,
            time: d.time,
            surge: d.surge,
            minimum: d.minimum,
            booking_fee: d.booking_fee,
            promo: d.promo,
            cancellation: d.cancellation,
            total: d.total,
        };
        f.check()?;
        Ok(f)
    }
}

impl Fare {
    fn money(&self, m: i64) -> Money {
        Money::new(m, self.currency)
    }

    /// What the rider pays.
    pub fn total(&self) -> Money {
        self.money(self.total)
    }

    /// The trip fare before booking fee and promo (lines 1–3), which the
    /// driver's share is computed from.
    pub fn trip_fare(&self) -> Money {
        self.money(self.base + self.distance + self.time + self.surge + self.minimum)
    }

    /// The amount of one component (zero when absent).
    pub fn component(&self, c: FareComponent) -> Money {
        self.money(match c {
            FareComponent::Base => self.base,
            FareComponent::Distance => self.distance,
            FareComponent::Time => self.time,
            FareComponent::Surge => self.surge,
            FareComponent::MinimumFare => self.minimum,
            FareComponent::BookingFee => self.booking_fee,
            FareComponent::Promo => self.promo,
            FareComponent::CancellationFee => self.cancellation,
        })
    }

    /// The receipt: one line per non-zero component (the base line always),
    /// in [`FareComponent`] order. The lines sum to [`Fare::total`].
    pub fn lines(&self) -> impl Iterator<Item = FareLine> + '_ {
        use FareComponent::*;
        [
            Base,
            Distance,
            Time,
            Surge,
            MinimumFare,
            BookingFee,
            Promo,
            CancellationFee,
        ]
        .into_iter()
        .map(|c| FareLine {
            component: c,
            amount: self.component(c),
        })
        .filter(|l| !l.amount.is_zero() || (l.component == Base && self.cancellation == 0))
    }

    /// The surge multiplier the fare was priced with.
    pub fn multiplier(&self) -> Multiplier {
        self.multiplier
    }

    /// Priced distance, whole metres.
    pub fn distance_m(&self) -> u64 {
        self.distance_m
    }

    /// Priced time, milliseconds.
    pub fn duration_ms(&self) -> u64 {
        self.duration_ms
    }

    /// The fare with `promos` applied to the trip fare (lines 1–3). A
    /// fare's promos are applied once; applying again replaces them.
    ///
    /// # Errors
    /// [`PricingError::PromoMinimumNotMet`] when the trip fare is below a
    /// promo's minimum, [`PricingError::PromoNotApplicable`] for free
    /// delivery, [`PricingError::CurrencyMismatch`] for promo amounts in
    /// another currency.
    pub fn with_promos(mut self, promos: &PromoSelection) -> Result<Fare, PricingError> {
        let trip = self.trip_fare();
        let d = promos.discounts(trip, None, self.rounding)?;
        self.total -= self.promo; // undo a previous application
        self.promo = -d.subtotal.minor();
        self.total += self.promo;
        Ok(self)
    }

    /// Checks the invariants (what deserialising checks).
    ///
    /// # Errors
    /// [`PricingError::InvalidRecord`] naming the broken one.
    pub(crate) fn check(&self) -> Result<(), PricingError> {
        let bad = |reason| {
            Err(PricingError::InvalidRecord {
                what: "fare",
                reason,
            })
        };
        let charges = [
            self.base,
            self.distance,
            self.time,
            self.surge,
            self.minimum,
            self.booking_fee,
            self.cancellation,
        ];
        if charges.iter().any(|&v| v < 0) || self.promo > 0 {
            return bad("charge lines cannot be negative, nor the promo line positive");
        }
        let sum = |v: &[i64]| v.iter().try_fold(0_i64, |a, &x| a.checked_add(x));
        let trip = sum(&charges[..5]);
        let total = sum(&charges).and_then(|t| t.checked_add(self.promo));
        let (Some(trip), Some(total)) = (trip, total) else {
            return bad("the lines overflow");
        };
        if total != self.total {
            return bad("the lines must sum to the total");
        }
        if -self.promo > trip {
            return bad("a promo cannot exceed the trip fare");
        }
        Ok(())
    }

    /// Checks the invariants; panics with the broken one.
    /// For tests (public so that integration tests can call it).
    #[doc(hidden)]
    pub fn check_invariants(&self) {
        if let Err(e) = self.check() {
            panic!("{e}");
        }
        let sum: i64 = self.lines().map(|l| l.amount.minor()).sum();
        assert_eq!(sum, self.total, "the receipt lines sum to the total");
    }
}

impl fmt::Display for Fare {
    /// A plain-text receipt.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for l in self.lines() {
            let label = if l.component == FareComponent::Surge {
                format!("surge {}", self.multiplier)
            } else {
                l.component.label().to_string()
            };
            writeln!(f, "  {label:<26}{:>14}", l.amount.to_string())?;
        }
        write!(f, "  {:<26}{:>14}", "total", self.total().to_string())
    }
}

fn overflow(op: &'static str, value: i64) -> PricingError {
    PricingError::Overflow { op, value }
}

impl RateCard {
    /// Upfront quote from an estimated route, at the surge multiplier of
    /// the request. O(1), allocation-free.
    ///
    /// ```
    /// use std::time::Duration;
    /// use dispatchkit_pricing::*;
    ///
    /// let card = RateCard::new(RateCardSpec {
    ///     currency: Currency::USD, base: 250, distance: DistanceRate::PerKm(100),
    ///     per_minute: 30, minimum_fare: 800, booking_fee: 275, cancellation_fee: 500,
    ///     rounding: Rounding::HalfEven,
    /// })?;
    /// let route = RouteEstimate { distance_m: 8_000.0, duration: Duration::from_secs(20 * 60) };
    /// let fare = card.quote(&route, Multiplier::from_milli(1_500)?)?;
    /// // (250 + 800 + 600) × 1.5 = 2475, + 275 booking fee.
    /// assert_eq!(fare.total(), Money::new(2_750, Currency::USD));
    /// # Ok::<(), PricingError>(())
    /// ```
    ///
    /// # Errors
    /// [`PricingError::InvalidDistance`] for a NaN, infinite, negative or
    /// absurd distance; [`PricingError::Overflow`].
    #[inline]
    pub fn quote(&self, route: &RouteEstimate, surge: Multiplier) -> Result<Fare, PricingError> {
        let metres = whole_metres(route.distance_m)?;
        let ms = millis(route.duration)?;
        self.price(metres, ms, surge)
    }

    /// Final fare from the trip's GPS trace (distance by
    /// [`measure_trace`], time from first to last fix) at the surge
    /// multiplier of the request. O(n) in the trace.
    ///
    /// # Errors
    /// As [`measure_trace`] and [`RateCard::quote`].
    pub fn final_fare(
        &self,
        trace: &[TracePoint],
        rules: &TraceRules,
        surge: Multiplier,
    ) -> Result<Fare, PricingError> {
        let m = measure_trace(trace, rules)?;
        let metres = whole_metres(m.distance_m)?;
        self.price(metres, millis(m.duration)?, surge)
    }

    /// The late-cancellation charge: one line, the card's cancellation fee.
    pub fn cancellation(&self) -> Fare {
        let fee = self.spec().cancellation_fee;
        Fare {
            currency: self.currency(),
            rounding: self.rounding(),
            multiplier: Multiplier::ONE,
            distance_m: 0,
            duration_ms: 0,
            base: 0,
            distance: 0,
            time: 0,
            surge: 0,
            minimum: 0,
            booking_fee: 0,
            promo: 0,
            cancellation: fee,
            total: fee,
        }
    }

    /// Prices `metres` and `ms` at `surge` (steps 1–4 and 6 of [`Fare`]).
    ///
    /// # Errors
    /// [`PricingError::Overflow`].
    #[inline]
    pub fn price(&self, metres: u64, ms: u64, surge: Multiplier) -> Result<Fare, PricingError> {
        let spec = self.spec();
        let distance = self.distance_charge(metres)?.minor();
        let time = self.time_charge(ms)?.minor();
        let sub = spec
            .base
            .checked_add(distance)
            .and_then(|s| s.checked_add(time))
            .ok_or(overflow("fare subtotal", spec.base))?;
        let surge_line = mul_div_round(sub, i64::from(surge.milli()) - 1_000, 1_000, spec.rounding)
            .ok_or(overflow("surge", sub))?;
        let fare = sub.checked_add(surge_line).ok_or(overflow("surge", sub))?;
        let minimum = (spec.minimum_fare - fare).max(0);
        let total = fare
            .checked_add(minimum)
            .and_then(|t| t.checked_add(spec.booking_fee))
            .ok_or(overflow("fare total", fare))?;
        Ok(Fare {
            currency: spec.currency,
            rounding: spec.rounding,
            multiplier: surge,
            distance_m: metres,
            duration_ms: ms,
            base: spec.base,
            distance,
            time,
            surge: surge_line,
            minimum,
            booking_fee: spec.booking_fee,
            promo: 0,
            cancellation: 0,
            total,
        })
    }
}

/// Whole metres of a route length: finite, `>= 0`, at most
/// [`MAX_FARE_DISTANCE_M`], rounded half-up.
fn whole_metres(d: f64) -> Result<u64, PricingError> {
    let bad = |reason| PricingError::InvalidDistance { value: d, reason };
    if d.is_nan() {
        return Err(bad("distance is NaN"));
    }
    if d < 0.0 {
        return Err(bad("distance must not be negative"));
    }
    if d > MAX_FARE_DISTANCE_M {
        return Err(bad("distance longer than 50,000 km (or infinite)"));
    }
    Ok((d + 0.5) as u64)
}

fn millis(d: Duration) -> Result<u64, PricingError> {
    u64::try_from(d.as_millis()).map_err(|_| PricingError::InvalidDuration {
        value: d,
        reason: "longer than u64::MAX milliseconds",
    })
}
