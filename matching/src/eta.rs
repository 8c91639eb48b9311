use std::time::Duration;

use dispatchkit_geo_index::{LonLat, VehicleType, haversine_m};

use crate::MatchingError;

/// One leg of travel: road distance and driving time.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Leg {
    /// Road distance, metres.
    pub metres: f64,
    /// Driving time, seconds.
    pub secs: f64,
}

impl Leg {
    /// Whether both values are finite and non-negative (what every caller
    /// in this crate requires; an unusable leg makes its candidate
    /// ineligible).
    pub fn is_usable(&self) -> bool {
        self.metres.is_finite() && self.metres >= 0.0 && self.secs.is_finite() && self.secs >= 0.0
    }
}

/// Travel times for matching and routing. Implement it to plug a mapping
/// service in (the seed's "external mapping API"); [`HaversineEta`] is the
/// built-in model.
///
/// Contract: [`EtaModel::leg`] is cheap enough to call for every candidate
/// (10 per ride request, ~100 per dasher offer) and returns finite,
/// non-negative values; a leg that is not ([`Leg::is_usable`]) marks the
/// destination unreachable: the candidate is skipped, nothing panics.
///
/// ```
/// use dispatchkit_geo_index::{LonLat, VehicleType};
/// use dispatchkit_matching::{EtaModel, Leg};
///
/// /// A model with a fixed 20 km/h grid-city speed and Manhattan distances.
/// struct Grid;
/// impl EtaModel for Grid {
///     fn leg(&self, a: LonLat, b: LonLat, _: VehicleType) -> Leg {
///         let m = ((a.lon() - b.lon()).abs() * 75_000.0) + ((a.lat() - b.lat()).abs() * 111_000.0);
///         Leg { metres: m, secs: m / (20.0 / 3.6) }
///     }
/// }
/// let a = LonLat::new(2.35, 48.85)?;
/// let b = LonLat::new(2.36, 48.86)?;
/// assert!(Grid.pickup_eta_secs(a, b, VehicleType::new(0)?) > 300.0);
/// # Ok::<(), dispatchkit_geo_index::GeoError>(())
/// ```
pub trait EtaModel {
    /// Road distance and driving time from `from` to `to` for `vehicle`.
    fn leg(&self, from: LonLat, to: LonLat, vehicle: VehicleType) -> Leg;

    /// Fixed time spent at each pickup (finding the rider, loading the
    /// order), seconds. Default 0.
    fn pickup_overhead_secs(&self, vehicle: VehicleType) -> f64 {
        let _ = vehicle;
        0.0
    }

    /// Seconds until a driver at `driver` is ready to go at `pickup`:
    /// driving time plus the pickup overhead. This is the ETA ride
    /// matching ranks by.
    fn pickup_eta_secs(&self, driver: LonLat, pickup: LonLat, vehicle: VehicleType) -> f64 {
        self.leg(driver, pickup, vehicle).secs + self.pickup_overhead_secs(vehicle)
    }
}

impl<E: EtaModel + ?Sized> EtaModel for &E {
    fn leg(&self, from: LonLat, to: LonLat, vehicle: VehicleType) -> Leg {
        (**self).leg(from, to, vehicle)
    }
    fn pickup_overhead_secs(&self, vehicle: VehicleType) -> f64 {
        (**self).pickup_overhead_secs(vehicle)
    }
}

impl<E: EtaModel + ?Sized> EtaModel for std::sync::Arc<E> {
    fn leg(&self, from: LonLat, to: LonLat, vehicle: VehicleType) -> Leg {
        (**self).leg(from, to, vehicle)
    }
    fn pickup_overhead_secs(&self, vehicle: VehicleType) -> f64 {
        (**self).pickup_overhead_secs(vehicle)
    }
}

/// Seconds as a `Duration`, saturating: NaN and negative give zero,
/// values beyond `Duration::MAX` give `Duration::MAX` (a user's
/// [`EtaModel`] may return anything; reports must not panic on it).
pub(crate) fn saturating_secs(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs.max(0.0)).unwrap_or(Duration::MAX)
}

/// Number of vehicle types (`VehicleType` is 0..=63).
const VEHICLE_TYPES: usize = VehicleType::MAX as usize + 1;

/// The default ETA model: great-circle (haversine, the geo index's sphere)
/// distance × a road circuity factor ÷ a speed per vehicle type, plus a
/// fixed overhead at each pickup. O(1) per leg (one haversine).
///
/// | parameter | default | meaning |
/// |---|---|---|
/// | `circuity` | 1.3 | road distance ÷ great-circle distance (measured values in cities are typically 1.2–1.4) |
/// | speed | 30 km/h for every vehicle type | average door-to-door driving speed; set per type with [`HaversineEta::with_speed_kmh`] (e.g. bicycle 15, scooter 25) |
/// | `pickup_overhead` | 60 s | time at each pickup: finding the rider / collecting the order |
///
/// ```
/// use std::time::Duration;
/// use dispatchkit_geo_index::{LonLat, VehicleType};
/// use dispatchkit_matching::{EtaModel, HaversineEta};
///
/// let bike = VehicleType::new(1)?;
/// let eta = HaversineEta::new(1.3, 30.0, Duration::from_secs(60))?.with_speed_kmh(bike, 15.0)?;
/// let a = LonLat::new(13.40, 52.52)?;
/// let b = LonLat::new(13.41, 52.52)?; // 677 m east
/// let leg = eta.leg(a, b, bike);
/// assert!((leg.metres - 1.3 * 677.0).abs() < 2.0);
/// assert!((leg.secs - leg.metres / (15.0 / 3.6)).abs() < 1e-9);
/// assert!((eta.pickup_eta_secs(a, b, bike) - leg.secs - 60.0).abs() < 1e-9);
/// # Ok::<(), dispatchkit_matching::MatchingError>(())
/// ```
///
/// Deserialising checks what the constructors check (the speed list must
/// hold one speed per vehicle type, 64).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "HaversineEtaData", into = "HaversineEtaData")
)]
pub struct HaversineEta {
    circuity: f64,
    /// km/h, by vehicle type.
    speed_kmh: Vec<f64>,
    pickup_overhead_secs: f64,
}

#[cfg(feature = "serde")]
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename = "HaversineEta", deny_unknown_fields)]
struct HaversineEtaData {
    circuity: f64,
    speed_kmh: Vec<f64>,
    pickup_overhead_secs: f64,
}

#[cfg(feature = "serde")]
impl TryFrom<HaversineEtaData> for HaversineEta {
    type Error = MatchingError;
    fn try_from(d: HaversineEtaData) -> Result<Self, MatchingError> {
        check_circuity(d.circuity)?;
        check_overhead(d.pickup_overhead_secs)?;
        if d.speed_kmh.len() != VEHICLE_TYPES {
            return Err(MatchingError::SizeMismatch {
                what: "speed_kmh (one per vehicle type)",
                expected: VEHICLE_TYPES,
                got: d.speed_kmh.len(),
            });
        }
        for &v in &d.speed_kmh {
            check_speed(v)?;
        }
        Ok(Self {
            circuity: d.circuity,
            speed_kmh: d.speed_kmh,
            pickup_overhead_secs: d.pickup_overhead_secs,
        })
    }
}

#[cfg(feature = "serde")]
impl From<HaversineEta> for HaversineEtaData {
    fn from(m: HaversineEta) -> Self {
        HaversineEtaData {
            circuity: m.circuity,
            speed_kmh: m.speed_kmh,
            pickup_overhead_secs: m.pickup_overhead_secs,
        }
    }
}

impl Default for HaversineEta {
    fn default() -> Self {
        Self {
            circuity: 1.3,
            speed_kmh: vec![30.0; VEHICLE_TYPES],
            pickup_overhead_secs: 60.0,
        }
    }
}

fn check_speed(kmh: f64) -> Result<f64, MatchingError> {
    if (0.01..=1_000.0).contains(&kmh) {
        Ok(kmh)
    } else {
        Err(MatchingError::param(
            "speed_kmh",
            kmh,
            "a speed must be a number of km/h in 0.01..=1000",
        ))
    }
}

fn check_circuity(circuity: f64) -> Result<(), MatchingError> {
    if (1.0..=100.0).contains(&circuity) {
        Ok(())
    } else {
        Err(MatchingError::param(
            "circuity",
            circuity,
            "the circuity factor is road / great-circle distance: a number in 1..=100",
        ))
    }
}

fn check_overhead(secs: f64) -> Result<(), MatchingError> {
    if (0.0..=86_400.0).contains(&secs) {
        Ok(())
    } else {
        Err(MatchingError::param(
            "pickup_overhead_secs",
            secs,
            "the pickup overhead must be a number of seconds in 0..=86400",
        ))
    }
}

impl HaversineEta {
    /// A model with `circuity`, one speed for every vehicle type and a
    /// pickup overhead.
    ///
    /// # Errors
    /// [`MatchingError::InvalidParameter`] when `circuity` is outside
    /// 1..=100 (no road is shorter than the great circle) or NaN, the speed
    /// outside 0.01..=1000 km/h or NaN, or the overhead longer than a day.
    pub fn new(
        circuity: f64,
        speed_kmh: f64,
        pickup_overhead: Duration,
    ) -> Result<Self, MatchingError> {
        check_circuity(circuity)?;
        check_overhead(pickup_overhead.as_secs_f64())?;
        let kmh = check_speed(speed_kmh)?;
        Ok(Self {
            circuity,
            speed_kmh: vec![kmh; VEHICLE_TYPES],
            pickup_overhead_secs: pickup_overhead.as_secs_f64(),
        })
    }

    /// The same model with `vehicle` driving at `speed_kmh`.
    ///
    /// # Errors
    /// [`MatchingError::InvalidParameter`] for a speed outside
    /// 0.01..=1000 km/h or NaN.
    pub fn with_speed_kmh(
        mut self,
        vehicle: VehicleType,
        speed_kmh: f64,
    ) -> Result<Self, MatchingError> {
        self.speed_kmh[usize::from(vehicle.get())] = check_speed(speed_kmh)?;
        Ok(self)
    }

    /// The circuity factor.
    pub fn circuity(&self) -> f64 {
        self.circuity
    }

    /// The speed of `vehicle`, km/h.
    pub fn speed_kmh(&self, vehicle: VehicleType) -> f64 {
        self.speed_kmh[usize::from(vehicle.get())]
    }

    /// The pickup overhead.
    pub fn pickup_overhead(&self) -> Duration {
        saturating_secs(self.pickup_overhead_secs)
    }
}

impl EtaModel for HaversineEta {
    #[inline]
    fn leg(&self, from: LonLat, to: LonLat, vehicle: VehicleType) -> Leg {
        let metres = haversine_m(from, to) * self.circuity;
        Leg {
            metres,
            secs: metres * 3.6 / self.speed_kmh[usize::from(vehicle.get())],
        }
    }

    fn pickup_overhead_secs(&self, _: VehicleType) -> f64 {
        self.pickup_overhead_secs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_parameters_are_typed_errors() {
        let d = Duration::from_secs(1);
        for (c, s) in [
            (0.9, 30.0),
            (f64::NAN, 30.0),
            (1.2, -5.0),
            (1.2, 0.0),
            (1.2, f64::INFINITY),
            (1.2, f64::NAN),
        ] {
            assert!(matches!(
                HaversineEta::new(c, s, d),
                Err(MatchingError::InvalidParameter { .. })
            ));
        }
        let m = HaversineEta::default();
        assert!(
            m.clone()
                .with_speed_kmh(VehicleType::new(3).unwrap(), -1.0)
                .is_err()
        );
        assert_eq!(m.speed_kmh(VehicleType::new(63).unwrap()), 30.0);
    }

    #[test]
    fn eta_scales_with_distance_and_speed() {
        let m = HaversineEta::default();
        let v = VehicleType::new(0).unwrap();
        let a = LonLat::new(0.0, 0.0).unwrap();
        let b = LonLat::new(0.01, 0.0).unwrap();
        let c = LonLat::new(0.02, 0.0).unwrap();
        let (ab, ac) = (m.leg(a, b, v), m.leg(a, c, v));
        assert!((ac.secs / ab.secs - 2.0).abs() < 1e-4);
        assert!(ab.is_usable());
        assert_eq!(m.leg(a, a, v).secs, 0.0);
        assert_eq!(m.pickup_eta_secs(a, a, v), 60.0);
        assert!(
            !Leg {
                metres: f64::NAN,
                secs: 1.0
            }
            .is_usable()
        );
    }
}
