//! Integer rates: basis points and multipliers. No `f64` reaches a money
//! path.

use std::fmt;

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

/// A multiplier in thousandths: `Multiplier::from_milli(1_250)` = 1.25×.
/// Surge multipliers and any other scaling of an amount use it; applying
/// one to [`Money`](crate::Money) is exact with explicit rounding.
///
/// ```
/// use dispatchkit_pricing::Multiplier;
/// let m = Multiplier::from_milli(1_750);
/// assert_eq!(m.to_string(), "1.75x");
/// assert!(m > Multiplier::ONE);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct Multiplier(u32);

impl Multiplier {
    /// 1.0×.
    pub const ONE: Multiplier = Multiplier(1_000);

    /// A multiplier of `milli / 1000`.
    pub const fn from_milli(milli: u32) -> Multiplier {
        Multiplier(milli)
    }

    /// The multiplier in thousandths.
    pub const fn milli(self) -> u32 {
        self.0
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
