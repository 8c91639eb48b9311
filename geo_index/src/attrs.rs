use std::fmt;

use crate::GeoError;

/// A driver's status. Three are predefined; values 3..=31 are free for the
/// application (e.g. "on break", "returning").
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "u8", into = "u8"))]
pub struct Status(u8);

impl Status {
    /// Free for a new ride or order.
    pub const AVAILABLE: Status = Status(0);
    /// On a trip / claimed by a matcher.
    pub const BUSY: Status = Status(1);
    /// Logged off (still indexed until expiry or removal).
    pub const OFFLINE: Status = Status(2);
    /// Largest status value (statuses take 5 bits).
    pub const MAX: u8 = 31;

    /// A status from its number.
    ///
    /// # Errors
    /// [`GeoError::InvalidAttribute`] above [`Status::MAX`].
    pub fn new(value: u8) -> Result<Self, GeoError> {
        if value > Self::MAX {
            return Err(GeoError::InvalidAttribute {
                what: "status",
                value: f64::from(value),
                reason: "statuses are 0..=31",
            });
        }
        Ok(Status(value))
    }

    /// The status number.
    pub fn get(self) -> u8 {
        self.0
    }
}

impl fmt::Debug for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Status::AVAILABLE => f.write_str("AVAILABLE"),
            Status::BUSY => f.write_str("BUSY"),
            Status::OFFLINE => f.write_str("OFFLINE"),
            Status(n) => write!(f, "Status({n})"),
        }
    }
}

impl TryFrom<u8> for Status {
    type Error = GeoError;
    fn try_from(v: u8) -> Result<Self, GeoError> {
        Status::new(v)
    }
}

impl From<Status> for u8 {
    fn from(s: Status) -> u8 {
        s.0
    }
}

/// A vehicle type, 0..=63; the application gives them meaning (car, XL,
/// bike, scooter, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "u8", into = "u8"))]
pub struct VehicleType(u8);

impl VehicleType {
    /// Largest vehicle type (types take 6 bits).
    pub const MAX: u8 = 63;

    /// A vehicle type from its number.
    ///
    /// # Errors
    /// [`GeoError::InvalidAttribute`] above [`VehicleType::MAX`].
    pub fn new(value: u8) -> Result<Self, GeoError> {
        if value > Self::MAX {
            return Err(GeoError::InvalidAttribute {
                what: "vehicle type",
                value: f64::from(value),
                reason: "vehicle types are 0..=63",
            });
        }
        Ok(VehicleType(value))
    }

    /// The type number.
    pub fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<u8> for VehicleType {
    type Error = GeoError;
    fn try_from(v: u8) -> Result<Self, GeoError> {
        VehicleType::new(v)
    }
}

impl From<VehicleType> for u8 {
    fn from(v: VehicleType) -> u8 {
        v.0
    }
}

/// A [`Filter`] compiled for a scan over many drivers
/// ([`Filter::attr_test`]).
#[derive(Debug, Clone, Copy)]
pub(crate) enum AttrTest {
    /// Passes when `bits & mask == value`.
    Masked {
        /// The bits the filter looks at.
        mask: u32,
        /// What they must be.
        value: u32,
    },
    /// [`Filter::matches_packed`].
    Full(Filter),
}

/// A set of vehicle types (a 64-bit mask), for filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct VehicleSet(u64);

impl VehicleSet {
    /// Every vehicle type.
    pub const ALL: VehicleSet = VehicleSet(u64::MAX);

    /// The set of the given types.
    pub fn of(types: &[VehicleType]) -> Self {
        VehicleSet(types.iter().fold(0, |m, t| m | (1 << t.0)))
    }

    /// Whether `t` is in the set.
    pub fn contains(self, t: VehicleType) -> bool {
        self.0 & (1 << t.0) != 0
    }
}

/// A driver rating 0.00..=5.00, stored in hundredths.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "u16", into = "u16"))]
pub struct Rating(u16);

impl Rating {
    /// 5.00, what a new driver starts with.
    pub const MAX: Rating = Rating(500);

    /// A rating from a number of stars, rounded to the nearest hundredth.
    ///
    /// # Errors
    /// [`GeoError::InvalidAttribute`] for NaN or values outside 0..=5.
    pub fn new(stars: f64) -> Result<Self, GeoError> {
        if !(0.0..=5.0).contains(&stars) {
            return Err(GeoError::InvalidAttribute {
                what: "rating",
                value: stars,
                reason: "ratings are finite numbers within 0..=5",
            });
        }
        Ok(Rating((stars * 100.0).round() as u16))
    }

    /// A rating from hundredths of a star (487 = 4.87).
    ///
    /// # Errors
    /// [`GeoError::InvalidAttribute`] above 500.
    pub fn from_hundredths(h: u16) -> Result<Self, GeoError> {
        if h > 500 {
            return Err(GeoError::InvalidAttribute {
                what: "rating (hundredths)",
                value: f64::from(h),
                reason: "ratings are 0..=500 hundredths",
            });
        }
        Ok(Rating(h))
    }

    /// Stars, 0.0..=5.0.
    pub fn get(self) -> f64 {
        f64::from(self.0) / 100.0
    }

    /// Hundredths of a star.
    pub fn hundredths(self) -> u16 {
        self.0
    }
}

impl fmt::Debug for Rating {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

impl TryFrom<u16> for Rating {
    type Error = GeoError;
    fn try_from(v: u16) -> Result<Self, GeoError> {
        Rating::from_hundredths(v)
    }
}

impl From<Rating> for u16 {
    fn from(r: Rating) -> u16 {
        r.0
    }
}

/// Compact per-driver attributes that filters test inside the search walk.
/// Packed into 23 bits of the driver's slot.
///
/// Deserialising runs [`Attrs::validate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "attrs_serde::Unchecked")
)]
pub struct Attrs {
    /// Availability.
    pub status: Status,
    /// Vehicle type.
    pub vehicle: VehicleType,
    /// Rating.
    pub rating: Rating,
    /// Orders or riders in hand, 0..=[`Attrs::MAX_LOAD`].
    pub load: u8,
}

crate::deserialize_checked!(
    attrs_serde,
    Attrs {
        status: Status,
        vehicle: VehicleType,
        rating: Rating,
        load: u8,
    },
    Attrs::validate,
    GeoError
);

impl Default for Attrs {
    /// Available, vehicle type 0, rating 5.00, load 0.
    fn default() -> Self {
        Attrs {
            status: Status::AVAILABLE,
            vehicle: VehicleType(0),
            rating: Rating::MAX,
            load: 0,
        }
    }
}

// Bit layout of packed attributes (23 bits).
const STATUS_BITS: u32 = 5;
const VEHICLE_SHIFT: u32 = 5;
const RATING_SHIFT: u32 = 11;
const LOAD_SHIFT: u32 = 20;
pub(crate) const ATTR_BITS: u32 = 23;

impl Attrs {
    /// Largest load (loads take 3 bits).
    pub const MAX_LOAD: u8 = 7;

    /// An available driver of the given vehicle type and rating.
    pub fn available(vehicle: VehicleType, rating: Rating) -> Self {
        Attrs {
            vehicle,
            rating,
            ..Attrs::default()
        }
    }

    /// Checks the one field a caller can set out of range (`load`).
    ///
    /// # Errors
    /// [`GeoError::InvalidAttribute`] when `load > 7`.
    pub fn validate(&self) -> Result<(), GeoError> {
        if self.load > Self::MAX_LOAD {
            return Err(GeoError::InvalidAttribute {
                what: "load",
                value: f64::from(self.load),
                reason: "loads are 0..=7",
            });
        }
        Ok(())
    }

    #[inline]
    pub(crate) fn pack(&self) -> u32 {
        debug_assert!(self.load <= Self::MAX_LOAD);
        u32::from(self.status.0)
            | u32::from(self.vehicle.0) << VEHICLE_SHIFT
            | u32::from(self.rating.0) << RATING_SHIFT
            | u32::from(self.load) << LOAD_SHIFT
    }

    #[inline]
    pub(crate) fn unpack(bits: u32) -> Self {
        Attrs {
            status: Status((bits & ((1 << STATUS_BITS) - 1)) as u8),
            vehicle: VehicleType(((bits >> VEHICLE_SHIFT) & 63) as u8),
            rating: Rating(((bits >> RATING_SHIFT) & 511) as u16),
            load: ((bits >> LOAD_SHIFT) & 7) as u8,
        }
    }
}

/// Attribute filter applied inside the search walk (what Redis lacks): every
/// condition set must hold.
///
/// ```
/// use dispatchkit_geo_index::{Attrs, Filter, Rating, Status, VehicleSet, VehicleType};
///
/// let car = VehicleType::new(1)?;
/// let f = Filter::new()
///     .status(Status::AVAILABLE)
///     .min_rating(Rating::new(4.5)?)
///     .vehicles(VehicleSet::of(&[car]))
///     .max_load(3);
/// assert!(f.matches(&Attrs::available(car, Rating::new(4.9)?)));
/// assert!(!f.matches(&Attrs::available(car, Rating::new(4.4)?)));
/// # Ok::<(), dispatchkit_geo_index::GeoError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Filter {
    status: Option<Status>,
    vehicles: VehicleSet,
    min_rating: u16,
    max_load: u8,
}

impl Default for Filter {
    fn default() -> Self {
        Filter::new()
    }
}

impl Filter {
    /// A filter that accepts every driver.
    pub const fn new() -> Self {
        Filter {
            status: None,
            vehicles: VehicleSet::ALL,
            min_rating: 0,
            max_load: u8::MAX,
        }
    }

    /// Only drivers with this status.
    pub fn status(mut self, s: Status) -> Self {
        self.status = Some(s);
        self
    }

    /// Only available drivers (shorthand for `status(Status::AVAILABLE)`).
    pub fn available() -> Self {
        Filter::new().status(Status::AVAILABLE)
    }

    /// Only these vehicle types.
    pub fn vehicles(mut self, v: VehicleSet) -> Self {
        self.vehicles = v;
        self
    }

    /// Only drivers rated at least `r`.
    pub fn min_rating(mut self, r: Rating) -> Self {
        self.min_rating = r.0;
        self
    }

    /// Only drivers with `load < n` (e.g. `max_load(3)`: fewer than 3 orders).
    pub fn max_load(mut self, n: u8) -> Self {
        self.max_load = n;
        self
    }

    /// Whether `a` passes.
    pub fn matches(&self, a: &Attrs) -> bool {
        self.matches_packed(a.pack())
    }

    /// The conditions: status, vehicle mask, minimum rating (hundredths),
    /// load bound (load < bound).
    #[cfg(feature = "redis")]
    pub(crate) fn parts(&self) -> (Option<Status>, u64, u16, u8) {
        (self.status, self.vehicles.0, self.min_rating, self.max_load)
    }

    /// The filter as the cheapest test over packed attributes: one mask
    /// and compare when it asks for a status at most (the usual "available
    /// drivers" query), [`Filter::matches_packed`] otherwise.
    #[inline]
    pub(crate) fn attr_test(&self) -> AttrTest {
        let status_only = self.vehicles == VehicleSet::ALL
            && self.min_rating == 0
            && self.max_load > Attrs::MAX_LOAD;
        match (status_only, self.status) {
            (true, Some(s)) => AttrTest::Masked {
                mask: (1 << STATUS_BITS) - 1,
                value: u32::from(s.0),
            },
            (true, None) => AttrTest::Masked { mask: 0, value: 0 },
            (false, _) => AttrTest::Full(*self),
        }
    }

    /// Whether packed attributes `bits` pass. Every condition is evaluated
    /// and combined with `&`, no branch per condition: a search calls this
    /// for every driver of the cells it scans, where the outcomes (statuses
    /// and vehicles mixed at random) are what a branch predictor cannot
    /// learn.
    #[inline]
    pub(crate) fn matches_packed(&self, bits: u32) -> bool {
        let status = match self.status {
            Some(s) => bits & ((1 << STATUS_BITS) - 1) == u32::from(s.0),
            None => true,
        };
        status
            & (self.vehicles.0 >> ((bits >> VEHICLE_SHIFT) & 63) & 1 != 0)
            & (((bits >> RATING_SHIFT) & 511) as u16 >= self.min_rating)
            & ((((bits >> LOAD_SHIFT) & 7) as u8) < self.max_load)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_round_trips_every_field() {
        for status in [0, 1, 2, 31] {
            for vehicle in [0, 1, 63] {
                for rating in [0, 450, 487, 500] {
                    for load in 0..=7 {
                        let a = Attrs {
                            status: Status::new(status).unwrap(),
                            vehicle: VehicleType::new(vehicle).unwrap(),
                            rating: Rating::from_hundredths(rating).unwrap(),
                            load,
                        };
                        assert_eq!(Attrs::unpack(a.pack()), a);
                        assert!(a.pack() < 1 << ATTR_BITS);
                    }
                }
            }
        }
    }

    #[test]
    fn out_of_range_attributes_are_errors() {
        assert!(Status::new(32).is_err());
        assert!(VehicleType::new(64).is_err());
        assert!(Rating::new(5.01).is_err());
        assert!(Rating::new(f64::NAN).is_err());
        assert!(Rating::new(-0.1).is_err());
        assert!(Rating::from_hundredths(501).is_err());
        let a = Attrs {
            load: 8,
            ..Attrs::default()
        };
        assert!(matches!(
            a.validate(),
            Err(GeoError::InvalidAttribute { what: "load", .. })
        ));
    }

    #[test]
    fn filter_conditions() {
        let v1 = VehicleType::new(1).unwrap();
        let v2 = VehicleType::new(2).unwrap();
        let a = Attrs {
            status: Status::BUSY,
            vehicle: v1,
            rating: Rating::new(4.6).unwrap(),
            load: 2,
        };
        assert!(Filter::new().matches(&a));
        assert!(!Filter::available().matches(&a));
        assert!(Filter::new().status(Status::BUSY).matches(&a));
        assert!(!Filter::new().vehicles(VehicleSet::of(&[v2])).matches(&a));
        assert!(
            Filter::new()
                .vehicles(VehicleSet::of(&[v1, v2]))
                .matches(&a)
        );
        assert!(
            Filter::new()
                .min_rating(Rating::new(4.6).unwrap())
                .matches(&a)
        );
        assert!(
            !Filter::new()
                .min_rating(Rating::new(4.61).unwrap())
                .matches(&a)
        );
        assert!(Filter::new().max_load(3).matches(&a));
        assert!(!Filter::new().max_load(2).matches(&a));
    }
}
