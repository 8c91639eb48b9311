use std::fmt;

use geo::{Distance, HaversineMeasure, Point};

use crate::GeoError;

/// Longitude limit of Redis GEO (and of this index).
pub const LON_LIMIT: f64 = 180.0;
/// Latitude limit of Redis GEO (EPSG:3857): ±85.05112878.
pub const LAT_LIMIT: f64 = 85.051_128_78;
/// Redis's earth radius for GEO distances, metres.
pub const EARTH_RADIUS_M: f64 = 6_372_797.560_856;
/// Haversine with Redis's earth radius: the only distance this crate uses.
pub const REDIS_HAVERSINE: HaversineMeasure = HaversineMeasure::new(EARTH_RADIUS_M);

/// Quantisation steps: 2^32 over 360° of longitude and 180° of latitude
/// (≈ 9.3 mm and 4.7 mm at the equator).
const LON_STEP: f64 = 360.0 / 4_294_967_296.0;
const LAT_STEP: f64 = 180.0 / 4_294_967_296.0;

/// A validated longitude/latitude pair, stored fixed-point in 8 bytes.
///
/// Construction checks the Redis ranges (longitude −180..=180, latitude
/// −85.05112878..=85.05112878, finite); after that a `LonLat` is always
/// valid. Coordinates are quantised to 2^32 steps per axis (≤ 9.3 mm), so
/// [`LonLat::lon`] / [`LonLat::lat`] return the stored value, within 6.6 mm of
/// the input — like Redis, whose `GEOPOS` returns its 52-bit geohash cell
/// centre (≤ 0.6 m off), only finer. The stored point always lies in the
/// input's Redis cell, so [`LonLat::redis_geohash`] equals the hash
/// `GEOADD` stores for the input.
///
/// ```
/// use dispatchkit_geo_index::LonLat;
///
/// let p = LonLat::new(-122.3321, 47.6062)?;
/// assert!((p.lon() + 122.3321).abs() < 1e-7);
/// assert!(LonLat::new(f64::NAN, 0.0).is_err());
/// assert!(LonLat::new(0.0, 86.0).is_err());
/// # Ok::<(), dispatchkit_geo_index::GeoError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LonLat {
    lon_q: u32,
    lat_q: u32,
}

impl LonLat {
    /// Validates and stores a coordinate.
    ///
    /// # Errors
    /// [`GeoError::InvalidCoordinate`] for NaN / infinite values or values
    /// outside the Redis ranges.
    pub fn new(lon: f64, lat: f64) -> Result<Self, GeoError> {
        let bad = |reason| Err(GeoError::InvalidCoordinate { lon, lat, reason });
        if !lon.is_finite() || !lat.is_finite() {
            return bad("coordinates must be finite numbers");
        }
        if !(-LON_LIMIT..=LON_LIMIT).contains(&lon) {
            return bad("longitude must be within -180..=180");
        }
        if !(-LAT_LIMIT..=LAT_LIMIT).contains(&lat) {
            return bad("latitude must be within -85.05112878..=85.05112878");
        }
        // The stored point stays in the input's Redis 52-bit cell, so
        // `WITHHASH` of the stored point is `GEOADD`'s hash of the input.
        let lon_q = in_cell(
            quantise((lon + 180.0) / LON_STEP),
            redis_bits(lon, LON_LIMIT),
            |q| redis_bits(dequantise(q, LON_STEP, 180.0), LON_LIMIT),
        );
        let mut lat_q = quantise((lat + 90.0) / LAT_STEP);
        // The stored latitude stays within the Redis range too (a step
        // centre can fall half a step outside it at the limits).
        while dequantise(lat_q, LAT_STEP, 90.0) < -LAT_LIMIT {
            lat_q += 1;
        }
        while dequantise(lat_q, LAT_STEP, 90.0) > LAT_LIMIT {
            lat_q -= 1;
        }
        let lat_q = in_cell(lat_q, redis_bits(lat, LAT_LIMIT), |q| {
            redis_bits(dequantise(q, LAT_STEP, 90.0), LAT_LIMIT)
        });
        Ok(Self { lon_q, lat_q })
    }

    /// Longitude in degrees.
    #[inline]
    pub fn lon(self) -> f64 {
        dequantise(self.lon_q, LON_STEP, 180.0)
    }

    /// Latitude in degrees.
    #[inline]
    pub fn lat(self) -> f64 {
        dequantise(self.lat_q, LAT_STEP, 90.0)
    }

    /// Haversine distance in metres (Redis's earth radius).
    #[inline]
    pub fn distance_m(self, other: LonLat) -> f64 {
        haversine_m(self, other)
    }

    /// Redis's 52-bit geohash of this point, as `GEOADD` stores it and
    /// `GEOSEARCH … WITHHASH` returns it.
    pub fn redis_geohash(self) -> u64 {
        redis_geohash(self.lon(), self.lat())
    }

    #[inline]
    pub(crate) fn raw(self) -> (u32, u32) {
        (self.lon_q, self.lat_q)
    }

    #[inline]
    pub(crate) fn from_raw(lon_q: u32, lat_q: u32) -> Self {
        Self { lon_q, lat_q }
    }
}

/// The centre of quantisation step `q`.
#[inline]
fn dequantise(q: u32, step: f64, offset: f64) -> f64 {
    (f64::from(q) + 0.5) * step - offset
}

/// Step `q` moved to the nearest step whose Redis cell (`bits_of`) is
/// `target`. Redis cells are 64 steps wide (2^26 against 2^32 over
/// slightly different ranges), so this moves at most one step, and only
/// for inputs within a step of a cell edge.
#[inline]
fn in_cell(mut q: u32, target: u64, bits_of: impl Fn(u32) -> u64) -> u32 {
    while q < u32::MAX && bits_of(q) < target {
        q += 1;
    }
    while q > 0 && bits_of(q) > target {
        q -= 1;
    }
    q
}

#[inline]
fn quantise(x: f64) -> u32 {
    // x is within 0..=2^32 for valid input, so truncation is floor (no
    // libm call on baseline x86-64), and the saturating cast maps the top
    // edge, 2^32, to the last step.
    debug_assert!(x >= 0.0);
    x as u32
}

impl fmt::Debug for LonLat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LonLat({:.7}, {:.7})", self.lon(), self.lat())
    }
}

impl fmt::Display for LonLat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.6},{:.6}", self.lon(), self.lat())
    }
}

impl From<LonLat> for Point<f64> {
    fn from(p: LonLat) -> Self {
        Point::new(p.lon(), p.lat())
    }
}

impl TryFrom<Point<f64>> for LonLat {
    type Error = GeoError;

    fn try_from(p: Point<f64>) -> Result<Self, GeoError> {
        LonLat::new(p.x(), p.y())
    }
}

impl TryFrom<(f64, f64)> for LonLat {
    type Error = GeoError;

    /// From `(lon, lat)`.
    fn try_from((lon, lat): (f64, f64)) -> Result<Self, GeoError> {
        LonLat::new(lon, lat)
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for LonLat {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let mut t = s.serialize_tuple(2)?;
        t.serialize_element(&self.lon())?;
        t.serialize_element(&self.lat())?;
        t.end()
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for LonLat {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (lon, lat) = <(f64, f64)>::deserialize(d)?;
        LonLat::new(lon, lat).map_err(serde::de::Error::custom)
    }
}

/// Haversine distance in metres between two points, with Redis's earth
/// radius (`geo`'s haversine, so the formula is Redis's `geohashGetDistance`).
#[inline]
pub fn haversine_m(a: LonLat, b: LonLat) -> f64 {
    REDIS_HAVERSINE.distance(Point::from(a), Point::from(b))
}

/// [`haversine_m`] from one origin, with the origin's cosine of latitude
/// computed once (a search measures every candidate from its centre). The
/// same operations in the same order as `geo`'s haversine, so the same
/// bits; a test holds the two equal.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HaversineFrom {
    origin: LonLat,
    cos_lat: f64,
}

impl HaversineFrom {
    pub(crate) fn new(origin: LonLat) -> Self {
        HaversineFrom {
            origin,
            cos_lat: origin.lat().to_radians().cos(),
        }
    }

    pub(crate) fn origin(&self) -> LonLat {
        self.origin
    }

    /// `haversine_m(origin, p)`.
    #[inline]
    pub(crate) fn to(&self, p: LonLat) -> f64 {
        let (lon1, lat1) = (self.origin.lon(), self.origin.lat());
        let theta2 = p.lat().to_radians();
        let delta_theta = (p.lat() - lat1).to_radians();
        let delta_lambda = (p.lon() - lon1).to_radians();
        let a = (delta_theta / 2.0).sin().powi(2)
            + self.cos_lat * theta2.cos() * (delta_lambda / 2.0).sin().powi(2);
        let c = 2.0 * a.sqrt().asin();
        EARTH_RADIUS_M * c
    }
}

/// A distance unit of `GEOSEARCH` / `GEODIST`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Unit {
    /// Metres (`m`).
    Meters,
    /// Kilometres (`km`).
    Kilometers,
    /// Feet (`ft`, 0.3048 m).
    Feet,
    /// Miles (`mi`, 1609.34 m as Redis defines it).
    Miles,
}

impl Unit {
    /// Metres in one unit (Redis's `extractUnitOrReply` factors).
    pub fn metres(self) -> f64 {
        match self {
            Unit::Meters => 1.0,
            Unit::Kilometers => 1000.0,
            Unit::Feet => 0.3048,
            Unit::Miles => 1609.34,
        }
    }
}

impl std::str::FromStr for Unit {
    type Err = GeoError;

    /// Parses `m`, `km`, `ft`, `mi`, case-insensitively, like Redis.
    fn from_str(s: &str) -> Result<Self, GeoError> {
        match s.to_ascii_lowercase().as_str() {
            "m" => Ok(Unit::Meters),
            "km" => Ok(Unit::Kilometers),
            "ft" => Ok(Unit::Feet),
            "mi" => Ok(Unit::Miles),
            _ => Err(GeoError::InvalidUnit(s.to_string())),
        }
    }
}

/// Bits per axis of Redis's geohash.
const STEPS: u32 = 26;

/// Redis's 26-bit cell index of `x` over `-limit..=limit`
/// (`geohashEncode`'s arithmetic, in its order of operations).
#[inline]
fn redis_bits(x: f64, limit: f64) -> u64 {
    let off = (x - (-limit)) / (limit - (-limit));
    ((off * f64::from(1u32 << STEPS)) as u64).min((1 << STEPS) - 1)
}

/// Redis's 52-bit geohash (`geohashEncodeWGS84` at 26 steps, latitude over
/// the Redis range ±85.05112878): latitude bits in the even positions,
/// longitude bits in the odd ones.
pub fn redis_geohash(lon: f64, lat: f64) -> u64 {
    spread(redis_bits(lat, LAT_LIMIT)) | (spread(redis_bits(lon, LON_LIMIT)) << 1)
}

/// The centre of a Redis geohash cell as `(lon, lat)`, exactly as Redis
/// decodes a stored member (`geohashDecodeAreaToLongLat`): what `GEOPOS`
/// returns and what Redis measures distances from.
pub(crate) fn redis_cell_centre(hash: u64) -> (f64, f64) {
    let centre = |bits: u64, limit: f64| {
        let scale = limit - (-limit);
        let cells = (1u64 << STEPS) as f64;
        let min = -limit + (bits as f64 * 1.0 / cells) * scale;
        let max = -limit + ((bits + 1) as f64 * 1.0 / cells) * scale;
        ((min + max) / 2.0).clamp(-limit, limit)
    };
    (
        centre(squash(hash >> 1), LON_LIMIT),
        centre(squash(hash), LAT_LIMIT),
    )
}

/// The inverse of [`spread`]: the even bits of `x`, packed.
fn squash(x: u64) -> u64 {
    let mut x = x & 0x5555_5555_5555_5555;
    x = (x | (x >> 1)) & 0x3333_3333_3333_3333;
    x = (x | (x >> 2)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x >> 4)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x >> 8)) & 0x0000_FFFF_0000_FFFF;
    (x | (x >> 16)) & 0x0000_0000_FFFF_FFFF
}

/// Interleaves the low 32 bits of `x` with zeros (bit i → bit 2i).
fn spread(x: u64) -> u64 {
    let mut x = x & 0xFFFF_FFFF;
    x = (x | (x << 16)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x << 8)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x << 4)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x << 2)) & 0x3333_3333_3333_3333;
    (x | (x << 1)) & 0x5555_5555_5555_5555
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantisation_is_within_6_6_mm() {
        for &(lon, lat) in &[
            (0.0, 0.0),
            (-180.0, -85.05112878),
            (180.0, 85.05112878),
            (-122.3321, 47.6062),
            (139.6503, 35.6762),
        ] {
            let p = LonLat::new(lon, lat).unwrap();
            let exact = Point::new(lon, lat);
            let d = REDIS_HAVERSINE.distance(exact, Point::from(p));
            assert!(d < 0.0066, "({lon}, {lat}) stored {p:?}, {d} m off");
            assert_eq!(p.redis_geohash(), redis_geohash(lon, lat));
        }
    }

    #[test]
    fn haversine_from_a_fixed_origin_is_geos_to_the_bit() {
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut next = |lo: f64, hi: f64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            lo + (x >> 11) as f64 / (1u64 << 53) as f64 * (hi - lo)
        };
        for _ in 0..20_000 {
            let c = LonLat::new(next(-180.0, 180.0), next(-85.0, 85.0)).unwrap();
            let from = HaversineFrom::new(c);
            // Near the origin (a search's candidates) and anywhere.
            let near = LonLat::new(
                (c.lon() + next(-0.1, 0.1)).clamp(-180.0, 180.0),
                (c.lat() + next(-0.1, 0.1)).clamp(-85.0, 85.0),
            )
            .unwrap();
            let far = LonLat::new(next(-180.0, 180.0), next(-85.0, 85.0)).unwrap();
            for p in [near, far, c] {
                assert_eq!(
                    from.to(p).to_bits(),
                    haversine_m(c, p).to_bits(),
                    "{c:?} -> {p:?}"
                );
            }
        }
    }

    #[test]
    fn ranges_are_redis_ranges() {
        assert!(LonLat::new(180.0, 0.0).is_ok());
        assert!(LonLat::new(-180.0, 0.0).is_ok());
        assert!(LonLat::new(180.000001, 0.0).is_err());
        assert!(LonLat::new(0.0, 85.05112878).is_ok());
        assert!(LonLat::new(0.0, 85.05112879).is_err());
        assert!(LonLat::new(0.0, -85.05112879).is_err());
        assert!(LonLat::new(f64::INFINITY, 0.0).is_err());
        let err = LonLat::new(0.0, f64::NAN).unwrap_err();
        assert!(err.to_string().contains("finite"), "{err}");
    }

    #[test]
    fn units_parse_like_redis() {
        assert_eq!("KM".parse::<Unit>().unwrap(), Unit::Kilometers);
        assert_eq!("mi".parse::<Unit>().unwrap().metres(), 1609.34);
        assert!(matches!("yd".parse::<Unit>(), Err(GeoError::InvalidUnit(u)) if u == "yd"));
    }

    #[test]
    fn geohash_matches_a_value_redis_returns() {
        // `GEOADD k 13.361389 38.115556 Palermo` then
        // `GEOSEARCH k FROMLONLAT 15 37 BYRADIUS 200 km WITHHASH` → 3479099956230698
        // (the Redis documentation's GEORADIUS example).
        assert_eq!(redis_geohash(13.361389, 38.115556), 3_479_099_956_230_698);
        assert_eq!(redis_geohash(15.087269, 37.502669), 3_479_447_370_796_909);
        // GEOPOS of Palermo in the same documentation example.
        let (lon, lat) = redis_cell_centre(3_479_099_956_230_698);
        assert!((lon - 13.361389338970184).abs() < 1e-12, "{lon}");
        assert!((lat - 38.115_556_395_496_3).abs() < 1e-12, "{lat}");
    }
}
