//! Trip distance from a GPS trace, with implausible jumps filtered.

use std::time::Duration;

use geo::{Distance, Haversine, Point};

use crate::PricingError;

/// One GPS fix of a trip.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TracePoint {
    /// Longitude, degrees, −180..=180.
    pub lon: f64,
    /// Latitude, degrees, −90..=90.
    pub lat: f64,
    /// Time of the fix since the start of the trip.
    pub t: Duration,
}

impl TracePoint {
    /// A fix at `(lon, lat)` taken `t` after the start of the trip.
    pub const fn new(lon: f64, lat: f64, t: Duration) -> Self {
        Self { lon, lat, t }
    }
}

/// The jump filter of [`measure_trace`].
///
/// A fix is **implausible** when reaching it from the last accepted fix
/// would need more than `max_speed_mps` after allowing `jitter_m` of GPS
/// noise: `distance > jitter_m + max_speed_mps × Δt`. Implausible fixes are
/// dropped and the next fix is measured from the last accepted one.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "trace_rules_serde::Unchecked")
)]
pub struct TraceRules {
    /// Highest believable speed, m/s (default 55 ≈ 200 km/h).
    pub max_speed_mps: f64,
    /// Noise allowance, metres, that any fix may add regardless of Δt
    /// (default 25 m).
    pub jitter_m: f64,
}

dispatchkit_geo_index::deserialize_checked!(
    trace_rules_serde,
    TraceRules {
        max_speed_mps: f64,
        jitter_m: f64,
    },
    TraceRules::validate,
    PricingError
);

impl TraceRules {
    /// Checks the bounds: `max_speed_mps` in (0, 340], `jitter_m` in
    /// 0..=10,000 (see [`measure_trace`]).
    ///
    /// # Errors
    /// [`PricingError::InvalidTrace`] naming the bounds.
    pub fn validate(&self) -> Result<(), PricingError> {
        self.check().map_err(|reason| PricingError::InvalidTrace {
            points: 0,
            rejected: 0,
            reason,
        })
    }

    fn check(&self) -> Result<(), &'static str> {
        let speed_ok = self.max_speed_mps > 0.0 && self.max_speed_mps <= 340.0;
        let jitter_ok = (0.0..=10_000.0).contains(&self.jitter_m);
        if speed_ok && jitter_ok {
            Ok(())
        } else {
            Err("rules need max_speed_mps in (0, 340] and jitter_m in 0..=10000")
        }
    }
}

impl Default for TraceRules {
    fn default() -> Self {
        Self {
            max_speed_mps: 55.0,
            jitter_m: 25.0,
        }
    }
}

/// What [`measure_trace`] found.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct TraceSummary {
    /// Haversine length of the accepted fixes, metres.
    pub distance_m: f64,
    /// Last fix time minus first fix time (all fixes).
    pub duration: Duration,
    /// Fixes in the trace.
    pub points: usize,
    /// Fixes dropped as implausible jumps.
    pub rejected: usize,
}

/// Measures a trip from its GPS trace: the haversine length (`geo`, mean
/// earth radius) of the accepted fixes and the elapsed time. O(n).
///
/// The rule, in order:
/// 1. a trace needs at least two fixes;
/// 2. every fix has a finite longitude in −180..=180 and latitude in
///    −90..=90, and no fix is earlier than the one before it;
/// 3. the first fix is accepted (it is the pickup); every later fix is
///    accepted unless it is implausible under `rules` (see [`TraceRules`]);
/// 4. unless **more than half** of the fixes are accepted (the first
///    included) the trace is refused: with too few believable fixes the
///    first fix itself may be the outlier, and nothing reliable was
///    measured. A 2-fix trace therefore needs both fixes. The caller then
///    charges the upfront quote ([`RateCard::quote`](crate::RateCard::quote)),
///    as the seed's fare service does when the trip trace is unusable.
///
/// `rules` are bounded too: `max_speed_mps` in (0, 340] (the speed of
/// sound; nothing on a road is faster) and `jitter_m` in 0..=10,000, so a
/// rule cannot accept a 1,000 km jump.
///
/// ```
/// use std::time::Duration;
/// use dispatchkit_pricing::{measure_trace, PricingError, TracePoint, TraceRules};
///
/// let s = |t| Duration::from_secs(t);
/// let trace = [
///     TracePoint::new(-122.3350, 47.6080, s(0)),
///     TracePoint::new(-122.3350, 47.6170, s(60)),   // ~1 km north in a minute
///     TracePoint::new(-121.0000, 47.6170, s(61)),   // 100 km in a second: dropped
///     TracePoint::new(-122.3350, 47.6260, s(120)),  // another ~1 km
/// ];
/// let m = measure_trace(&trace, &TraceRules::default())?;
/// assert_eq!(m.rejected, 1);
/// assert!((m.distance_m - 2_001.5).abs() < 1.0);
/// assert_eq!(m.duration, s(120));
/// # Ok::<(), PricingError>(())
/// ```
///
/// # Errors
/// [`PricingError::InvalidTrace`] for fewer than two fixes, half or more
/// of them rejected, or bad rules; [`PricingError::InvalidGpsPoint`] naming the
/// index and coordinates of a NaN, infinite or out-of-range fix or a fix
/// earlier than its predecessor.
pub fn measure_trace(
    points: &[TracePoint],
    rules: &TraceRules,
) -> Result<TraceSummary, PricingError> {
    let refuse = |rejected, reason| PricingError::InvalidTrace {
        points: points.len(),
        rejected,
        reason,
    };
    rules.check().map_err(|reason| refuse(0, reason))?;
    if points.len() < 2 {
        return Err(refuse(0, "a trace needs at least two points"));
    }
    for (i, p) in points.iter().enumerate() {
        let bad = |reason| PricingError::InvalidGpsPoint {
            index: i,
            lon: p.lon,
            lat: p.lat,
            reason,
        };
        if !p.lon.is_finite() || !p.lat.is_finite() {
            return Err(bad("coordinates must be finite numbers"));
        }
        if !(-180.0..=180.0).contains(&p.lon) || !(-90.0..=90.0).contains(&p.lat) {
            return Err(bad(
                "longitude must be in -180..=180 and latitude in -90..=90",
            ));
        }
        if i > 0 && p.t < points[i - 1].t {
            return Err(bad("timestamp earlier than the previous point"));
        }
    }
    let mut last = points[0];
    let mut distance_m = 0.0;
    let mut rejected = 0;
    for p in &points[1..] {
        let d = Haversine.distance(Point::new(last.lon, last.lat), Point::new(p.lon, p.lat));
        let dt = (p.t - last.t).as_secs_f64();
        if d > rules.jitter_m + rules.max_speed_mps * dt {
            rejected += 1;
        } else {
            distance_m += d;
            last = *p;
        }
    }
    let accepted = points.len() - rejected;
    if accepted * 2 <= points.len() {
        return Err(refuse(
            rejected,
            "half or more of the points are implausible jumps: charge the upfront quote",
        ));
    }
    Ok(TraceSummary {
        distance_m,
        duration: points[points.len() - 1].t - points[0].t,
        points: points.len(),
        rejected,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t: u64) -> Duration {
        Duration::from_secs(t)
    }

    #[test]
    fn bad_points_name_index_and_reason() {
        let ok = TracePoint::new(0.0, 0.0, s(0));
        let r = TraceRules::default();
        assert!(matches!(
            measure_trace(&[], &r),
            Err(PricingError::InvalidTrace { points: 0, .. })
        ));
        assert!(matches!(
            measure_trace(&[ok], &r),
            Err(PricingError::InvalidTrace { points: 1, .. })
        ));
        let nan = TracePoint::new(f64::NAN, 1.0, s(1));
        match measure_trace(&[ok, nan], &r) {
            Err(PricingError::InvalidGpsPoint {
                index, lat, reason, ..
            }) => {
                assert_eq!((index, lat), (1, 1.0));
                assert_eq!(reason, "coordinates must be finite numbers");
            }
            other => panic!("{other:?}"),
        }
        let far = TracePoint::new(0.0, 91.0, s(1));
        assert!(matches!(
            measure_trace(&[ok, far], &r),
            Err(PricingError::InvalidGpsPoint { index: 1, .. })
        ));
        let inf = TracePoint::new(f64::INFINITY, 0.0, s(1));
        assert!(matches!(
            measure_trace(&[inf, ok], &r),
            Err(PricingError::InvalidGpsPoint { index: 0, .. })
        ));
        let back = [
            TracePoint::new(0.0, 0.0, s(5)),
            TracePoint::new(0.0, 0.0, s(4)),
        ];
        assert!(matches!(
            measure_trace(&back, &r),
            Err(PricingError::InvalidGpsPoint { index: 1, .. })
        ));
        let bad_rules = TraceRules {
            max_speed_mps: f64::NAN,
            ..r
        };
        assert!(matches!(
            measure_trace(&[ok, ok], &bad_rules),
            Err(PricingError::InvalidTrace { .. })
        ));
    }

    #[test]
    fn standing_still_is_zero_metres() {
        let p = TracePoint::new(2.35, 48.85, s(0));
        let q = TracePoint { t: s(300), ..p };
        let m = measure_trace(&[p, q], &TraceRules::default()).unwrap();
        assert_eq!((m.distance_m, m.duration, m.rejected), (0.0, s(300), 0));
    }

    #[test]
    fn jumps_are_filtered_and_an_outlier_start_is_refused() {
        let r = TraceRules::default();
        // 0.001° of latitude ≈ 111 m; 10 s at 55 m/s + 25 m = 575 m allowed.
        let walk: Vec<TracePoint> = (0..10)
            .map(|i| TracePoint::new(0.0, 0.001 * i as f64, s(10 * i)))
            .collect();
        let clean = measure_trace(&walk, &r).unwrap();
        assert_eq!(clean.rejected, 0);
        let mut spiky = walk.clone();
        spiky[4].lon = 1.0; // 111 km sideways for one fix
        let m = measure_trace(&spiky, &r).unwrap();
        assert_eq!(m.rejected, 1);
        // Skipping fix 4 measures 3 → 5 directly: the same straight line.
        assert!((m.distance_m - clean.distance_m).abs() < 1e-6);
        let mut bad_start = walk;
        bad_start[0].lon = 5.0;
        assert!(matches!(
            measure_trace(&bad_start, &r),
            Err(PricingError::InvalidTrace { rejected: 9, .. })
        ));
    }
}
