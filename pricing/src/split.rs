//! Capture split between restaurant, dasher and platform, and refunds that
//! reverse it.

use crate::allocation::largest_remainder;
use crate::{Currency, Money, PricingError};

/// Amounts for the three parties of a delivery (for a ride: `restaurant`
/// is zero and `dasher` is the driver).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Split {
    /// The restaurant's part.
    pub restaurant: Money,
    /// The dasher's (or driver's) part.
    pub dasher: Money,
    /// The platform's part.
    pub platform: Money,
}

impl Split {
    /// All three zero.
    pub const fn zero(currency: Currency) -> Self {
        Self {
            restaurant: Money::zero(currency),
            dasher: Money::zero(currency),
            platform: Money::zero(currency),
        }
    }

    fn minors(&self) -> [i64; 3] {
        [
            self.restaurant.minor(),
            self.dasher.minor(),
            self.platform.minor(),
        ]
    }

    fn from_minors(m: [i64; 3], currency: Currency) -> Self {
        Self {
            restaurant: Money::new(m[0], currency),
            dasher: Money::new(m[1], currency),
            platform: Money::new(m[2], currency),
        }
    }

    /// Sum of the three parts.
    pub fn total(&self) -> Money {
        Money::new(self.minors().iter().sum(), self.restaurant.currency())
    }
}

/// A captured payment, its split and the refunds made against it.
///
/// Invariants: the split sums exactly to the captured amount and no part
/// is negative; refunds per party never exceed that party's part, so the
/// refunds never exceed the capture. Deserialising checks them all
/// (a tampered `refunded` could otherwise take a refund from the wrong
/// party).
///
/// ```
/// use dispatchkit_pricing::{Capture, Currency, Money, PricingError};
///
/// let usd = |m| Money::new(m, Currency::USD);
/// // Captured $36.99; restaurant owed $20.00, dasher pay $6.00, tip $3.00.
/// let mut c = Capture::new(usd(3_699), usd(2_000), usd(600), usd(300))?;
/// assert_eq!(c.split().platform, usd(799));
/// let r = c.refund(usd(1_000))?;  // reversed proportionally: 2000:900:799
/// assert_eq!((r.restaurant, r.dasher, r.platform), (usd(541), usd(243), usd(216)));
/// assert_eq!(c.refundable(), usd(2_699));
/// assert!(matches!(c.refund(usd(2_700)), Err(PricingError::RefundExceedsCapture { .. })));
/// # Ok::<(), PricingError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "CaptureData")
)]
pub struct Capture {
    captured: Money,
    split: Split,
    refunded: Split,
    shortfall: Money,
}

/// The serialised form of a [`Capture`], checked on the way in.
#[cfg(feature = "serde")]
#[derive(serde::Deserialize)]
#[serde(rename = "Capture", deny_unknown_fields)]
struct CaptureData {
    captured: Money,
    split: Split,
    refunded: Split,
    shortfall: Money,
}

#[cfg(feature = "serde")]
impl TryFrom<CaptureData> for Capture {
    type Error = PricingError;
    fn try_from(d: CaptureData) -> Result<Self, PricingError> {
        let c = Capture {
            captured: d.captured,
            split: d.split,
            refunded: d.refunded,
            shortfall: d.shortfall,
        };
        c.check()?;
        Ok(c)
    }
}

impl Capture {
    /// Splits `captured` between the restaurant (`restaurant_due` =
    /// subtotal − commission), the dasher (`dasher_pay + tip`) and the
    /// platform (the rest). O(1).
    ///
    /// When the capture cannot cover what is owed (a large platform-funded
    /// promo, a partial capture), nobody goes negative: the tip is paid
    /// first (up to the capture), the remainder is split between
    /// restaurant and dasher pay in proportion to what they are owed
    /// (largest remainder), the platform gets zero, and
    /// [`Capture::shortfall`] reports what the platform must fund
    /// separately.
    ///
    /// # Errors
    /// [`PricingError::NegativeAmount`] for a negative input,
    /// [`PricingError::CurrencyMismatch`], [`PricingError::Overflow`].
    pub fn new(
        captured: Money,
        restaurant_due: Money,
        dasher_pay: Money,
        tip: Money,
    ) -> Result<Self, PricingError> {
        let cur = captured.currency();
        captured.non_negative("captured amount")?;
        restaurant_due
            .same_currency(cur)?
            .non_negative("restaurant due")?;
        dasher_pay.same_currency(cur)?.non_negative("dasher pay")?;
        tip.same_currency(cur)?.non_negative("tip")?;
        let c = captured.minor();
        let tip_part = tip.minor().min(c);
        let rest = c - tip_part;
        let owed = restaurant_due.checked_add(dasher_pay)?.minor();
        let (restaurant, pay, platform) = if owed <= rest {
            (restaurant_due.minor(), dasher_pay.minor(), rest - owed)
        } else {
            let mut parts = [0_i64; 2];
            // owed > rest >= 0, so the weights are not both zero.
            largest_remainder(
                rest,
                &[restaurant_due.minor() as u64, dasher_pay.minor() as u64],
                &mut parts,
            )?;
            (parts[0], parts[1], 0)
        };
        let covered = restaurant + pay + tip_part;
        let shortfall = owed
            .checked_add(tip.minor())
            .ok_or(PricingError::Overflow {
                op: "shortfall",
                value: owed,
            })?
            - covered;
        let split = Split::from_minors([restaurant, pay + tip_part, platform], cur);
        Ok(Self {
            captured,
            split,
            refunded: Split::zero(cur),
            shortfall: Money::new(shortfall, cur),
        })
    }

    /// What was captured.
    pub fn captured(&self) -> Money {
        self.captured
    }

    /// The split of the capture.
    pub fn split(&self) -> Split {
        self.split
    }

    /// Refunded so far, per party.
    pub fn refunded(&self) -> Split {
        self.refunded
    }

    /// What each party keeps: split − refunded.
    pub fn net(&self) -> Split {
        let s = self.split.minors();
        let r = self.refunded.minors();
        Split::from_minors(
            [s[0] - r[0], s[1] - r[1], s[2] - r[2]],
            self.captured.currency(),
        )
    }

    /// What is owed to restaurant and dasher beyond the capture (zero
    /// unless the capture was too small).
    pub fn shortfall(&self) -> Money {
        self.shortfall
    }

    /// What can still be refunded: captured − refunded.
    pub fn refundable(&self) -> Money {
        self.net().total()
    }

    /// Refunds `amount`, reversing the split in proportion to what each
    /// party still holds (largest remainder, ties to restaurant, then
    /// dasher): every party's refund is at most what it holds, and the
    /// parts sum exactly to `amount`. Returns this refund's parts. O(1).
    ///
    /// # Errors
    /// [`PricingError::NegativeAmount`], [`PricingError::CurrencyMismatch`],
    /// [`PricingError::RefundExceedsCapture`] when `amount` is more than
    /// [`Capture::refundable`]. The capture is unchanged on error.
    pub fn refund(&mut self, amount: Money) -> Result<Split, PricingError> {
        let cur = self.captured.currency();
        amount.same_currency(cur)?.non_negative("refund")?;
        let refundable = self.refundable();
        if amount.minor() > refundable.minor() {
            return Err(PricingError::RefundExceedsCapture {
                requested: amount,
                refundable,
            });
        }
        if amount.is_zero() {
            return Ok(Split::zero(cur));
        }
        let held = self.net().minors();
        let mut parts = [0_i64; 3];
        largest_remainder(amount.minor(), &held.map(|h| h as u64), &mut parts)?;
        let r = self.refunded.minors();
        self.refunded =
            Split::from_minors([r[0] + parts[0], r[1] + parts[1], r[2] + parts[2]], cur);
        Ok(Split::from_minors(parts, cur))
    }

    /// Refunds everything still refundable; each party gives back exactly
    /// what it holds.
    pub fn refund_all(&mut self) -> Split {
        let all = self.refundable();
        let parts = self.net();
        self.refunded = self.split;
        debug_assert_eq!(parts.total(), all);
        parts
    }

    /// Checks the invariants (what deserialising checks).
    ///
    /// # Errors
    /// [`PricingError::InvalidRecord`] naming the broken one.
    pub(crate) fn check(&self) -> Result<(), PricingError> {
        let bad = |reason| {
            Err(PricingError::InvalidRecord {
                what: "capture",
                reason,
            })
        };
        let cur = self.captured.currency();
        let all = [
            self.split.restaurant,
            self.split.dasher,
            self.split.platform,
            self.refunded.restaurant,
            self.refunded.dasher,
            self.refunded.platform,
            self.shortfall,
        ];
        if all.iter().any(|m| m.currency() != cur) {
            return bad("every amount must be in the captured currency");
        }
        let s = self.split.minors();
        let r = self.refunded.minors();
        if s.iter().any(|&v| v < 0) || self.captured.minor() < 0 {
            return bad("the capture and its parts cannot be negative");
        }
        let sum = s.iter().try_fold(0_i64, |a, &v| a.checked_add(v));
        if sum != Some(self.captured.minor()) {
            return bad("the split must sum exactly to the captured amount");
        }
        if (0..3).any(|i| !(0..=s[i]).contains(&r[i])) {
            return bad("a party's refunds must be within 0..=its part");
        }
        if self.shortfall.minor() < 0 {
            return bad("the shortfall cannot be negative");
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn usd(m: i64) -> Money {
        Money::new(m, Currency::USD)
    }

    #[test]
    fn a_short_capture_never_goes_negative() {
        // $10 captured, $20 owed to the restaurant, $6 pay, $3 tip.
        let c = Capture::new(usd(1_000), usd(2_000), usd(600), usd(300)).unwrap();
        c.check_invariants();
        let s = c.split();
        // Tip first (300), then 700 split 2000:600 → 538.46 / 161.54.
        assert_eq!(
            (s.restaurant, s.dasher, s.platform),
            (usd(538), usd(462), usd(0))
        );
        assert_eq!(c.shortfall(), usd(2_900 - 1_000));
        let tiny = Capture::new(usd(100), usd(2_000), usd(600), usd(300)).unwrap();
        assert_eq!(tiny.split().dasher, usd(100));
        tiny.check_invariants();
    }

    #[test]
    fn bad_inputs_are_typed_errors() {
        assert!(matches!(
            Capture::new(usd(-1), usd(0), usd(0), usd(0)),
            Err(PricingError::NegativeAmount { .. })
        ));
        assert!(matches!(
            Capture::new(usd(1), usd(0), usd(0), Money::new(1, Currency::EUR)),
            Err(PricingError::CurrencyMismatch { .. })
        ));
        let mut c = Capture::new(usd(500), usd(100), usd(100), usd(0)).unwrap();
        let before = c;
        assert!(matches!(
            c.refund(usd(-5)),
            Err(PricingError::NegativeAmount { .. })
        ));
        assert!(matches!(
            c.refund(Money::new(5, Currency::JPY)),
            Err(PricingError::CurrencyMismatch { .. })
        ));
        assert_eq!(
            c.refund(usd(501)),
            Err(PricingError::RefundExceedsCapture {
                requested: usd(501),
                refundable: usd(500)
            })
        );
        assert_eq!(c, before, "errors leave the capture unchanged");
        c.refund_all();
        assert_eq!(c.refundable(), usd(0));
        assert!(c.refund(usd(1)).is_err());
        c.check_invariants();
    }

    fn cases() -> u32 {
        dispatchkit_test_support::cases(10_000)
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: cases(),
            failure_persistence: Some(Box::new(
                proptest::test_runner::FileFailurePersistence::WithSource("regressions"),
            )),
            ..ProptestConfig::default()
        })]

        /// The split sums exactly and is never negative, over any amounts;
        /// refunds (partial, in any sequence, then full) never exceed what
        /// was captured or what a party holds, and sum exactly.
        #[test]
        fn splits_and_refunds_are_exact(
            captured in prop_oneof![0_i64..100_000, 0_i64..=i64::MAX / 4],
            restaurant in prop_oneof![0_i64..100_000, 0_i64..=i64::MAX / 4],
            pay in prop_oneof![0_i64..10_000, 0_i64..=i64::MAX / 4],
            tip in prop_oneof![0_i64..5_000, 0_i64..=i64::MAX / 4],
            refunds in proptest::collection::vec(0_u32..=10_000, 0..6),
        ) {
            let mut c = Capture::new(usd(captured), usd(restaurant), usd(pay), usd(tip)).unwrap();
            c.check_invariants();
            let s = c.split();
            prop_assert_eq!(s.total(), usd(captured));
            let mut refunded = 0_i64;
            for f in refunds {
                // A fraction (in bps) of what is left, sometimes more than left.
                let left = c.refundable().minor();
                let ask = (left as i128 * i128::from(f) / 9_000) as i64;
                match c.refund(usd(ask)) {
                    Ok(parts) => {
                        prop_assert!(ask <= left);
                        prop_assert_eq!(parts.total(), usd(ask));
                        refunded += ask;
                    }
                    Err(PricingError::RefundExceedsCapture { .. }) => prop_assert!(ask > left),
                    Err(e) => prop_assert!(false, "unexpected {e}"),
                }
                c.check_invariants();
                prop_assert!(refunded <= captured);
            }
            let last = c.refund_all();
            prop_assert_eq!(last.total().minor(), captured - refunded);
            prop_assert_eq!(c.refunded().total(), usd(captured));
            c.check_invariants();
        }
    }
}
