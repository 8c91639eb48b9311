//! An amount of money: `i64` minor units in one currency.

use std::fmt;

use crate::rounding::mul_div_round;
use crate::{Bps, Currency, Multiplier, PricingError, Rounding};

/// An amount of money in integer minor units (cents, yen, fils) of one
/// [`Currency`]. `Copy`, 16 bytes.
///
/// All arithmetic is checked: overflow of `i64` and mixing currencies are
/// errors, never wrap-around or a panic. Multiplying by a rate takes an
/// explicit [`Rounding`]; the rate is an integer ratio ([`Bps`],
/// [`Multiplier`] or `num / den`), never a float.
///
/// ```
/// use dispatchkit_pricing::{Bps, Currency, Money, PricingError, Rounding};
///
/// let price = Money::new(1_234, Currency::USD);           // $12.34
/// let tax = price.mul_bps(Bps(850), Rounding::HalfEven)?; // 8.5 % = 104.89 ¢
/// assert_eq!(tax, Money::new(105, Currency::USD));
/// assert_eq!(price.checked_add(tax)?.to_string(), "USD 13.39");
///
/// let yen = Money::new(500, Currency::JPY);
/// assert!(matches!(price.checked_add(yen), Err(PricingError::CurrencyMismatch { .. })));
/// # Ok::<(), PricingError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Money {
    minor: i64,
    currency: Currency,
}

impl Money {
    /// `minor` minor units of `currency` (any sign).
    pub const fn new(minor: i64, currency: Currency) -> Self {
        Self { minor, currency }
    }

    /// Zero in `currency`.
    pub const fn zero(currency: Currency) -> Self {
        Self::new(0, currency)
    }

    /// `major` whole units (`Money::from_major(12, USD)` = $12.00).
    ///
    /// # Errors
    /// [`PricingError::Overflow`] when `major × 10^digits` overflows.
    pub fn from_major(major: i64, currency: Currency) -> Result<Self, PricingError> {
        major
            .checked_mul(currency.scale())
            .map(|m| Self::new(m, currency))
            .ok_or(PricingError::Overflow {
                op: "from_major",
                value: major,
            })
    }

    /// The amount in minor units.
    pub const fn minor(self) -> i64 {
        self.minor
    }

    /// The currency.
    pub const fn currency(self) -> Currency {
        self.currency
    }

    /// `true` for zero.
    pub const fn is_zero(self) -> bool {
        self.minor == 0
    }

    /// `true` below zero.
    pub const fn is_negative(self) -> bool {
        self.minor < 0
    }

    /// `Ok(self)` when the currencies match.
    ///
    /// # Errors
    /// [`PricingError::CurrencyMismatch`] otherwise.
    #[inline]
    pub fn same_currency(self, currency: Currency) -> Result<Self, PricingError> {
        if self.currency == currency {
            Ok(self)
        } else {
            Err(PricingError::CurrencyMismatch {
                expected: currency,
                found: self.currency,
            })
        }
    }

    /// `Ok(self)` when `self >= 0`.
    ///
    /// # Errors
    /// [`PricingError::NegativeAmount`] naming `what`.
    #[inline]
    pub fn non_negative(self, what: &str) -> Result<Self, PricingError> {
        if self.minor < 0 {
            Err(PricingError::negative(
                what,
                self.minor,
                "must be zero or more",
            ))
        } else {
            Ok(self)
        }
    }

    /// `self + rhs`.
    ///
    /// # Errors
    /// [`PricingError::CurrencyMismatch`], [`PricingError::Overflow`].
    #[inline]
    pub fn checked_add(self, rhs: Money) -> Result<Money, PricingError> {
        rhs.same_currency(self.currency)?;
        self.minor
            .checked_add(rhs.minor)
            .map(|m| Money::new(m, self.currency))
            .ok_or(PricingError::Overflow {
                op: "add",
                value: self.minor,
            })
    }

    /// `self − rhs`.
    ///
    /// # Errors
    /// [`PricingError::CurrencyMismatch`], [`PricingError::Overflow`].
    #[inline]
    pub fn checked_sub(self, rhs: Money) -> Result<Money, PricingError> {
        rhs.same_currency(self.currency)?;
        self.minor
            .checked_sub(rhs.minor)
            .map(|m| Money::new(m, self.currency))
            .ok_or(PricingError::Overflow {
                op: "subtract",
                value: self.minor,
            })
    }

    /// `−self`.
    ///
    /// # Errors
    /// [`PricingError::Overflow`] for `i64::MIN`.
    pub fn checked_neg(self) -> Result<Money, PricingError> {
        self.minor
            .checked_neg()
            .map(|m| Money::new(m, self.currency))
            .ok_or(PricingError::Overflow {
                op: "negate",
                value: self.minor,
            })
    }

    /// `self × n` (a quantity), exact.
    ///
    /// # Errors
    /// [`PricingError::Overflow`].
    #[inline]
    pub fn checked_mul(self, n: i64) -> Result<Money, PricingError> {
        self.minor
            .checked_mul(n)
            .map(|m| Money::new(m, self.currency))
            .ok_or(PricingError::Overflow {
                op: "multiply",
                value: self.minor,
            })
    }

    /// `self × num / den`, rounded by `mode`; exact (128-bit intermediate).
    ///
    /// # Errors
    /// [`PricingError::InvalidRate`] when `den <= 0`;
    /// [`PricingError::Overflow`] when the result does not fit.
    #[inline]
    pub fn mul_ratio(self, num: i64, den: i64, mode: Rounding) -> Result<Money, PricingError> {
        if den <= 0 {
            return Err(PricingError::InvalidRate {
                what: "ratio denominator",
                value: den,
                reason: "must be greater than zero",
            });
        }
        mul_div_round(self.minor, num, den, mode)
            .map(|m| Money::new(m, self.currency))
            .ok_or(PricingError::Overflow {
                op: "multiply by ratio",
                value: self.minor,
            })
    }

    /// `self × bps / 10 000`, rounded by `mode`.
    ///
    /// # Errors
    /// [`PricingError::Overflow`] (only for amounts near `i64::MAX`).
    #[inline]
    pub fn mul_bps(self, bps: Bps, mode: Rounding) -> Result<Money, PricingError> {
        self.mul_ratio(i64::from(bps.0), 10_000, mode)
    }

    /// `self × m`, rounded by `mode`.
    ///
    /// # Errors
    /// [`PricingError::Overflow`].
    #[inline]
    pub fn mul_multiplier(self, m: Multiplier, mode: Rounding) -> Result<Money, PricingError> {
        self.mul_ratio(i64::from(m.milli()), 1_000, mode)
    }

    /// The smaller of two amounts.
    ///
    /// # Errors
    /// [`PricingError::CurrencyMismatch`].
    pub fn min(self, other: Money) -> Result<Money, PricingError> {
        other.same_currency(self.currency)?;
        Ok(if other.minor < self.minor {
            other
        } else {
            self
        })
    }

    /// The larger of two amounts.
    ///
    /// # Errors
    /// [`PricingError::CurrencyMismatch`].
    pub fn max(self, other: Money) -> Result<Money, PricingError> {
        other.same_currency(self.currency)?;
        Ok(if other.minor > self.minor {
            other
        } else {
            self
        })
    }

    /// The sum of `amounts`, all in `currency` (zero for none). O(n).
    ///
    /// # Errors
    /// [`PricingError::CurrencyMismatch`], [`PricingError::Overflow`].
    pub fn sum<I: IntoIterator<Item = Money>>(
        currency: Currency,
        amounts: I,
    ) -> Result<Money, PricingError> {
        amounts
            .into_iter()
            .try_fold(Money::zero(currency), Money::checked_add)
    }
}

impl fmt::Display for Money {
    /// `USD 12.34`, `JPY 1200`, `BHD -1.005`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = u32::from(self.currency.digits());
        let sign = if self.minor < 0 { "-" } else { "" };
        let abs = self.minor.unsigned_abs();
        if digits == 0 {
            write!(f, "{} {sign}{abs}", self.currency)
        } else {
            let scale = 10_u64.pow(digits);
            write!(
                f,
                "{} {sign}{}.{:0width$}",
                self.currency,
                abs / scale,
                abs % scale,
                width = digits as usize
            )
        }
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USD: Currency = Currency::USD;

    #[test]
    fn display_uses_the_minor_digits() {
        assert_eq!(Money::new(1234, USD).to_string(), "USD 12.34");
        assert_eq!(Money::new(-5, USD).to_string(), "USD -0.05");
        assert_eq!(Money::new(1200, Currency::JPY).to_string(), "JPY 1200");
        assert_eq!(Money::new(1005, Currency::BHD).to_string(), "BHD 1.005");
        assert_eq!(
            Money::new(i64::MIN, USD).to_string(),
            "USD -92233720368547758.08"
        );
    }

    #[test]
    fn overflow_and_mismatch_are_errors() {
        let max = Money::new(i64::MAX, USD);
        let one = Money::new(1, USD);
        assert_eq!(
            max.checked_add(one),
            Err(PricingError::Overflow {
                op: "add",
                value: i64::MAX
            })
        );
        assert!(matches!(
            Money::new(i64::MIN, USD).checked_sub(one),
            Err(PricingError::Overflow { .. })
        ));
        assert!(matches!(
            Money::new(i64::MIN, USD).checked_neg(),
            Err(PricingError::Overflow { .. })
        ));
        assert!(matches!(
            max.checked_mul(2),
            Err(PricingError::Overflow { .. })
        ));
        assert!(matches!(
            max.mul_ratio(3, 2, Rounding::HalfEven),
            Err(PricingError::Overflow { .. })
        ));
        assert!(matches!(
            one.mul_ratio(1, 0, Rounding::HalfEven),
            Err(PricingError::InvalidRate { .. })
        ));
        assert!(matches!(
            Money::from_major(i64::MAX / 10, USD),
            Err(PricingError::Overflow { .. })
        ));
        let jpy = Money::new(1, Currency::JPY);
        assert_eq!(
            one.checked_add(jpy),
            Err(PricingError::CurrencyMismatch {
                expected: USD,
                found: Currency::JPY
            })
        );
        assert!(one.min(jpy).is_err() && one.max(jpy).is_err());
        assert!(Money::sum(USD, [one, jpy]).is_err());
        assert_eq!(
            Money::new(-3, USD).non_negative("tip"),
            Err(PricingError::NegativeAmount {
                what: "tip".into(),
                value: -3,
                reason: "must be zero or more"
            })
        );
    }

    #[test]
    fn rates_round_explicitly() {
        let m = Money::new(250, USD);
        // 2.50 × 1.5 % = 3.75 ¢.
        assert_eq!(m.mul_bps(Bps(150), Rounding::HalfEven).unwrap().minor(), 4);
        assert_eq!(m.mul_bps(Bps(150), Rounding::Down).unwrap().minor(), 3);
        // 0.05 × 1.5 = 7.5 ¢: half-even 8, half-up 8; 0.03 × 1.5 = 4.5: 4 vs 5.
        let m3 = Money::new(3, USD);
        let x = Multiplier::from_milli(1500).unwrap();
        assert_eq!(m3.mul_multiplier(x, Rounding::HalfEven).unwrap().minor(), 4);
        assert_eq!(m3.mul_multiplier(x, Rounding::HalfUp).unwrap().minor(), 5);
        assert_eq!(
            Money::new(-3, USD)
                .mul_multiplier(x, Rounding::HalfUp)
                .unwrap()
                .minor(),
            -5
        );
        assert_eq!(
            Money::from_major(12, Currency::BHD).unwrap().minor(),
            12_000
        );
    }
}
