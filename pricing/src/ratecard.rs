//! Rate cards per city and vehicle type.

use crate::hash::FastMap;
use crate::rounding::mul_div_round;
use crate::{Currency, Money, PricingError, Rounding};

/// Millimetres in an international mile (1 609.344 m), so that per-mile
/// rates are applied exactly in integers.
const MM_PER_MILE: i64 = 1_609_344;

/// How a rate card charges distance: minor units per kilometre or per
/// (international, 1 609.344 m) mile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum DistanceRate {
    /// Minor units per kilometre.
    PerKm(i64),
    /// Minor units per mile.
    PerMile(i64),
}

impl DistanceRate {
    fn amount(self) -> i64 {
        match self {
            Self::PerKm(a) | Self::PerMile(a) => a,
        }
    }
}

/// The plain data of a [`RateCard`]: every amount in minor units of
/// `currency`. This is the serde form; [`RateCard::new`] validates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RateCardSpec {
    /// Currency of every amount.
    pub currency: Currency,
    /// Flat amount per trip.
    pub base: i64,
    /// Distance charge.
    pub distance: DistanceRate,
    /// Minor units per minute of trip time.
    pub per_minute: i64,
    /// Least a trip costs (before the booking fee and promos).
    pub minimum_fare: i64,
    /// Flat fee per trip, added after the minimum and surge.
    pub booking_fee: i64,
    /// Charged when the rider cancels late.
    pub cancellation_fee: i64,
    /// Rounding of the distance, time and surge lines (default half-even).
    #[cfg_attr(feature = "serde", serde(default))]
    pub rounding: Rounding,
}

/// A validated rate card: what a trip in one city with one vehicle type
/// costs (seed: base fare + distance × per-mile + time × per-minute, then
/// surge). Every amount is non-negative.
///
/// Pricing methods ([`RateCard::quote`], [`RateCard::final_fare`],
/// [`RateCard::cancellation`]) are in `fare.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "RateCardSpec", into = "RateCardSpec")
)]
pub struct RateCard {
    spec: RateCardSpec,
}

impl RateCard {
    /// Validates `spec`.
    ///
    /// # Errors
    /// [`PricingError::NegativeAmount`] naming the first negative amount.
    pub fn new(spec: RateCardSpec) -> Result<Self, PricingError> {
        let fields = [
            ("base", spec.base),
            ("distance rate", spec.distance.amount()),
            ("per_minute", spec.per_minute),
            ("minimum_fare", spec.minimum_fare),
            ("booking_fee", spec.booking_fee),
            ("cancellation_fee", spec.cancellation_fee),
        ];
        for (what, v) in fields {
            if v < 0 {
                return Err(PricingError::negative(
                    what,
                    v,
                    "rate-card amounts are prices and cannot be negative",
                ));
            }
        }
        Ok(Self { spec })
    }

    /// The card's data.
    pub fn spec(&self) -> RateCardSpec {
        self.spec
    }

    /// Currency of every amount of the card.
    pub fn currency(&self) -> Currency {
        self.spec.currency
    }

    /// Rounding of computed lines.
    pub fn rounding(&self) -> Rounding {
        self.spec.rounding
    }

    fn money(&self, minor: i64) -> Money {
        Money::new(minor, self.spec.currency)
    }

    /// Flat amount per trip.
    pub fn base(&self) -> Money {
        self.money(self.spec.base)
    }

    /// The distance rate.
    pub fn distance_rate(&self) -> DistanceRate {
        self.spec.distance
    }

    /// Per-minute rate.
    pub fn per_minute(&self) -> Money {
        self.money(self.spec.per_minute)
    }

    /// Minimum fare.
    pub fn minimum_fare(&self) -> Money {
        self.money(self.spec.minimum_fare)
    }

    /// Booking fee.
    pub fn booking_fee(&self) -> Money {
        self.money(self.spec.booking_fee)
    }

    /// Cancellation fee.
    pub fn cancellation_fee(&self) -> Money {
        self.money(self.spec.cancellation_fee)
    }

    /// Distance charge for `metres`: `rate × metres / 1000` per km or
    /// `rate × metres × 1000 / 1 609 344` per mile, rounded once. O(1).
    ///
    /// # Errors
    /// [`PricingError::Overflow`] for absurd distances.
    #[inline]
    pub fn distance_charge(&self, metres: u64) -> Result<Money, PricingError> {
        let m = i64::try_from(metres).map_err(|_| PricingError::Overflow {
            op: "distance charge",
            value: i64::MAX,
        })?;
        let r = self.spec.rounding;
        let v = match self.spec.distance {
            DistanceRate::PerKm(rate) => mul_div_round(rate, m, 1_000, r),
            DistanceRate::PerMile(rate) => m
                .checked_mul(1_000)
                .and_then(|mm| mul_div_round(rate, mm, MM_PER_MILE, r)),
        };
        v.map(|v| self.money(v)).ok_or(PricingError::Overflow {
            op: "distance charge",
            value: m,
        })
    }

    /// Time charge for `millis` of trip time: `per_minute × ms / 60 000`,
    /// rounded once. O(1).
    ///
    /// # Errors
    /// [`PricingError::Overflow`] for absurd durations.
    #[inline]
    pub fn time_charge(&self, millis: u64) -> Result<Money, PricingError> {
        let ms = i64::try_from(millis).map_err(|_| PricingError::Overflow {
            op: "time charge",
            value: i64::MAX,
        })?;
        mul_div_round(self.spec.per_minute, ms, 60_000, self.spec.rounding)
            .map(|v| self.money(v))
            .ok_or(PricingError::Overflow {
                op: "time charge",
                value: ms,
            })
    }
}

impl TryFrom<RateCardSpec> for RateCard {
    type Error = PricingError;

    fn try_from(spec: RateCardSpec) -> Result<Self, PricingError> {
        Self::new(spec)
    }
}

impl From<RateCard> for RateCardSpec {
    fn from(card: RateCard) -> Self {
        card.spec
    }
}

/// Rate cards by city, then vehicle type (`"seattle"` → `"economy"` →
/// card). Loadable with serde as a map of maps of [`RateCardSpec`]s, each
/// validated on the way in.
///
/// ```
/// use dispatchkit_pricing::{Currency, DistanceRate, PricingError, RateBook, RateCardSpec, Rounding};
///
/// let mut book = RateBook::new();
/// book.insert("seattle", "economy", RateCardSpec {
///     currency: Currency::USD, base: 250, distance: DistanceRate::PerMile(150),
///     per_minute: 30, minimum_fare: 800, booking_fee: 275, cancellation_fee: 500,
///     rounding: Rounding::HalfEven,
/// })?;
/// assert_eq!(book.card("seattle", "economy")?.base().minor(), 250);
/// assert!(matches!(book.card("boston", "economy"), Err(PricingError::UnknownCity { .. })));
/// assert!(matches!(book.card("seattle", "lux"), Err(PricingError::UnknownVehicle { .. })));
/// # Ok::<(), PricingError>(())
/// ```
#[derive(Debug, Clone, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(transparent)
)]
pub struct RateBook {
    cities: FastMap<String, FastMap<String, RateCard>>,
}

impl RateBook {
    /// An empty book.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces the card of `vehicle` in `city`.
    ///
    /// # Errors
    /// As [`RateCard::new`]; the book is unchanged on error.
    pub fn insert(
        &mut self,
        city: &str,
        vehicle: &str,
        spec: RateCardSpec,
    ) -> Result<(), PricingError> {
        let card = RateCard::new(spec)?;
        self.cities
            .entry(city.to_string())
            .or_default()
            .insert(vehicle.to_string(), card);
        Ok(())
    }

    /// The card of `vehicle` in `city`. O(1): two hash lookups.
    ///
    /// # Errors
    /// [`PricingError::UnknownCity`], [`PricingError::UnknownVehicle`].
    #[inline]
    pub fn card(&self, city: &str, vehicle: &str) -> Result<&RateCard, PricingError> {
        let cards = self
            .cities
            .get(city)
            .ok_or_else(|| PricingError::UnknownCity {
                city: city.to_string(),
            })?;
        cards
            .get(vehicle)
            .ok_or_else(|| PricingError::UnknownVehicle {
                city: city.to_string(),
                vehicle: vehicle.to_string(),
            })
    }

    /// Number of cards.
    pub fn len(&self) -> usize {
        self.cities.values().map(FastMap::len).sum()
    }

    /// `true` without cards.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cities, in no particular order.
    pub fn cities(&self) -> impl Iterator<Item = &str> {
        self.cities.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> RateCardSpec {
        RateCardSpec {
            currency: Currency::USD,
            base: 250,
            distance: DistanceRate::PerMile(150),
            per_minute: 30,
            minimum_fare: 800,
            booking_fee: 275,
            cancellation_fee: 500,
            rounding: Rounding::HalfEven,
        }
    }

    #[test]
    fn negative_amounts_are_rejected_by_name() {
        let mut s = spec();
        s.per_minute = -1;
        assert_eq!(
            RateCard::new(s),
            Err(PricingError::NegativeAmount {
                what: "per_minute".into(),
                value: -1,
                reason: "rate-card amounts are prices and cannot be negative"
            })
        );
        let mut s = spec();
        s.distance = DistanceRate::PerKm(-5);
        assert!(matches!(
            RateCard::new(s),
            Err(PricingError::NegativeAmount { value: -5, .. })
        ));
        let mut book = RateBook::new();
        assert!(book.insert("x", "y", s).is_err());
        assert!(book.is_empty());
    }

    #[test]
    fn charges_are_exact() {
        let card = RateCard::new(spec()).unwrap();
        // One mile exactly: 150 ¢.
        assert_eq!(card.distance_charge(1_609).unwrap().minor(), 150); // 149.97 → 150
        // 10 km at $1.50/mile = 932.06 ¢ → 932.
        assert_eq!(card.distance_charge(10_000).unwrap().minor(), 932);
        // 90 s at 30 ¢/min = 45 ¢.
        assert_eq!(card.time_charge(90_000).unwrap().minor(), 45);
        let km = RateCard::new(RateCardSpec {
            distance: DistanceRate::PerKm(95),
            ..spec()
        })
        .unwrap();
        // 2.5 km at 95 ¢/km = 237.5 → 238 (half-even: 237 is odd → 238).
        assert_eq!(km.distance_charge(2_500).unwrap().minor(), 238);
        assert!(km.distance_charge(u64::MAX).is_err());
        assert!(card.time_charge(u64::MAX).is_err());
    }

    #[test]
    fn unknown_city_and_vehicle() {
        let mut book = RateBook::new();
        book.insert("seattle", "economy", spec()).unwrap();
        assert_eq!(book.len(), 1);
        assert_eq!(
            book.card("Seattle", "economy"),
            Err(PricingError::UnknownCity {
                city: "Seattle".into()
            })
        );
        assert_eq!(
            book.card("seattle", "xl"),
            Err(PricingError::UnknownVehicle {
                city: "seattle".into(),
                vehicle: "xl".into()
            })
        );
    }
}
