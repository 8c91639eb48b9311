//! A trip's GPS trace, synthesised deterministically: the driver follows a
//! street-grid path (east–west, then north–south: about 1.27× the great
//! circle on average, close to the ETA model's circuity of 1.3) at a speed
//! of its own, one fix every 4 s with a few metres of noise and, now and
//! then, a wild fix (an urban-canyon jump) that the pricing's trace filter
//! has to drop.

use std::time::Duration;

use dispatchkit::pricing::TracePoint;
use geo::Point;

/// Metres per degree of latitude (mean earth radius).
const M_PER_DEG: f64 = 111_195.0;
/// Seconds between two fixes.
const FIX_SECS: f64 = 4.0;

/// A deterministic hash of two values.
pub fn mix(a: u64, b: u64) -> u64 {
    let mut x = a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    x ^= x >> 33;
    x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    x ^= x >> 33;
    x
}

/// A trip from `from` to `to` driven at the speed `key` picks.
#[derive(Debug, Clone, Copy)]
pub struct Trip {
    from: Point<f64>,
    to: Point<f64>,
    key: u64,
    /// East–west and north–south legs, metres.
    ew_m: f64,
    ns_m: f64,
    speed_mps: f64,
}

impl Trip {
    pub fn new(from: Point<f64>, to: Point<f64>, key: u64) -> Self {
        let cos = from.y().to_radians().cos();
        let ew_m = (to.x() - from.x()).abs() * M_PER_DEG * cos;
        let ns_m = (to.y() - from.y()).abs() * M_PER_DEG;
        // 22–36 km/h door to door.
        let speed_mps = (22.0 + (mix(key, 1) % 1_400) as f64 / 100.0) / 3.6;
        Self {
            from,
            to,
            key,
            ew_m,
            ns_m,
            speed_mps,
        }
    }

    /// Path length, metres.
    pub fn metres(&self) -> f64 {
        self.ew_m + self.ns_m
    }

    /// Driving time, whole seconds (at least one fix interval).
    pub fn duration(&self) -> Duration {
        Duration::from_secs((self.metres() / self.speed_mps).ceil().max(FIX_SECS) as u64)
    }

    /// The point `s` metres along the path.
    fn at(&self, s: f64) -> (f64, f64) {
        let (a, b) = (self.from, self.to);
        if s <= self.ew_m && self.ew_m > 0.0 {
            (a.x() + (b.x() - a.x()) * s / self.ew_m, a.y())
        } else if self.ns_m > 0.0 {
            let f = ((s - self.ew_m) / self.ns_m).clamp(0.0, 1.0);
            (b.x(), a.y() + (b.y() - a.y()) * f)
        } else {
            (b.x(), b.y())
        }
    }

    /// Clears `buf` and fills it with the trip's fixes, pickup to drop-off.
    pub fn trace(&self, buf: &mut Vec<TracePoint>) {
        buf.clear();
        let total = self.duration().as_secs_f64();
        let fixes = (total / FIX_SECS).ceil() as u64;
        let cos = self.from.y().to_radians().cos().max(1e-6);
        for i in 0..=fixes {
            let t = (i as f64 * FIX_SECS).min(total);
            let s = (t * self.speed_mps).min(self.metres());
            let (mut lon, mut lat) = self.at(s);
            let h = mix(self.key, i + 2);
            // ±5 m of noise on every fix but the first and last; one fix in
            // 150 jumps about 2 km away.
            if i > 0 && i < fixes {
                let (dx, dy) = (
                    (h % 1_001) as f64 / 100.0 - 5.0,
                    ((h >> 10) % 1_001) as f64 / 100.0 - 5.0,
                );
                let (dx, dy) = if (h >> 20).is_multiple_of(150) {
                    (dx + 2_000.0, dy)
                } else {
                    (dx, dy)
                };
                lon += dx / (M_PER_DEG * cos);
                lat += dy / M_PER_DEG;
            }
            buf.push(TracePoint::new(lon, lat, Duration::from_secs_f64(t)));
        }
    }
}
