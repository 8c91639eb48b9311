//! Integer rates: basis points and multipliers. No `f64` reaches a money
//! path.

use std::fmt;

use crate::PricingError;

/// A percentage in basis points: `Bps(1)` = 0.01 %, `Bps(10_000)` = 100 %.
///
/// ```
/// use dispatchkit_pricing::Bps;
/// assert_eq!(Bps::percent(15), Bps(1_500));
/// assert_eq!(Bps(875).to_string(), "8.75%");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct Bps(pub u32);

impl Bps {
    /// 100 %.
    pub const FULL: Bps = Bps(10_000);

    /// Whole percent: `Bps::percent(15)` = 15 %.
    pub const fn percent(p: u32) -> Bps {
        Bps(p.saturating_mul(100))
    }
}

impl fmt::Display for Bps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}%", self.0 / 100, self.0 % 100)
    }
}

/// A surge multiplier in thousandths: `Multiplier::from_milli(1_250)?` =
/// 1.25×. Applying one to [`Money`](crate::Money) is exact with explicit
/// rounding.
///
/// Bounds: at least [`Multiplier::ONE`] (a price below the rate card is a
/// promo, not a multiplier: 0× would make every ride free) and at most
/// [`Multiplier::MAX`] (10×: surge engines cap far lower, and an
/// unbounded multiplier turned a ride into USD 16 million). Every
/// constructor, `Deserialize` included, checks them.
///
/// ```
/// use dispatchkit_pricing::Multiplier;
/// let m = Multiplier::from_milli(1_750)?;
/// assert_eq!(m.to_string(), "1.75x");
/// assert!(m > Multiplier::ONE);
/// assert!(Multiplier::from_milli(0).is_err());
/// assert!(Multiplier::from_milli(u32::MAX).is_err());
/// # Ok::<(), dispatchkit_pricing::PricingError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "u32", into = "u32"))]
pub struct Multiplier(u32);

impl Multiplier {
    /// 1.0×.
    pub const ONE: Multiplier = Multiplier(1_000);

    /// 10.0×, the largest multiplier.
    pub const MAX: Multiplier = Multiplier(10_000);

    /// A multiplier of `milli / 1000`.
    ///
    /// # Errors
    /// [`PricingError::InvalidRate`] below 1.0× or above 10.0×.
    pub const fn from_milli(milli: u32) -> Result<Multiplier, PricingError> {
        if milli < Self::ONE.0 || milli > Self::MAX.0 {
            return Err(PricingError::InvalidRate {
                what: "multiplier (thousandths)",
                value: milli as i64,
                reason: "a multiplier must be within 1.0x..=10.0x (1000..=10000 thousandths)",
            });
        }
        Ok(Multiplier(milli))
    }

    /// A multiplier the crate computed within the bounds (a capped curve).
    pub(crate) const fn within_bounds(milli: u32) -> Multiplier {
        debug_assert!(milli >= Self::ONE.0 && milli <= Self::MAX.0);
        Multiplier(milli)
    }

    /// The multiplier in thousandths.
    pub const fn milli(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for Multiplier {
    type Error = PricingError;

    fn try_from(milli: u32) -> Result<Self, PricingError> {
        Multiplier::from_milli(milli)
    }
}

impl From<Multiplier> for u32 {
    fn from(m: Multiplier) -> u32 {
        m.0
    }
}

impl Default for Multiplier {
    fn default() -> Self {
        Self::ONE
    }
}

impl fmt::Display for Multiplier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, frac) = (self.0 / 1000, self.0 % 1000);
        if frac % 10 == 0 {
            write!(f, "{whole}.{:02}x", frac / 10)
        } else {
            write!(f, "{whole}.{frac:03}x")
        }
    }
}
