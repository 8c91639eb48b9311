//! Exact allocation: splitting an amount by ratios so that the parts sum to
//! the whole, to the minor unit.

use crate::{Bps, Money, PricingError};

/// Parts up to this many are split without a heap allocation.
const INLINE: usize = 16;

/// Splits `amount` by `weights` with the largest-remainder (Hamilton)
/// method: part `i` gets `⌊|amount| × wᵢ / W⌋`, and the `L < n` minor units
/// left over go one each to the parts with the largest remainders
/// `|amount| × wᵢ mod W`, ties to the lower index. A negative amount is
/// split as its absolute value with every part negated, so the rule is
/// symmetric. Exact in 128-bit integers; O(n) for n ≤ 16, O(n log n) above.
pub(crate) fn largest_remainder(
    amount: i64,
    weights: &[u64],
    out: &mut [i64],
) -> Result<(), PricingError> {
    let n = weights.len();
    if n == 0 || out.len() != n {
        return Err(PricingError::InvalidAllocation {
            parts: n,
            reason: "needs at least one ratio and one output slot per ratio",
        });
    }
    let total: u128 = weights.iter().map(|&w| u128::from(w)).sum();
    if total == 0 {
        return Err(PricingError::InvalidAllocation {
            parts: n,
            reason: "the ratios sum to zero",
        });
    }
    let a = u128::from(amount.unsigned_abs());
    let mut inline = [0_u128; INLINE];
    let mut heap = Vec::new();
    let rems: &mut [u128] = if n <= INLINE {
        &mut inline[..n]
    } else {
        heap.resize(n, 0);
        &mut heap
    };
    let mut given: u128 = 0;
    let mut parts = [0_u128; INLINE];
    let mut heap_parts = Vec::new();
    let q: &mut [u128] = if n <= INLINE {
        &mut parts[..n]
    } else {
        heap_parts.resize(n, 0);
        &mut heap_parts
    };
    for i in 0..n {
        // a < 2^64 and w < 2^64: the product fits in u128.
        let p = a * u128::from(weights[i]);
        q[i] = p / total;
        rems[i] = p % total;
        given += q[i];
    }
    let left = a - given;
    debug_assert!(
        left < n as u128,
        "largest remainder leaves fewer than n units"
    );
    if left > 0 {
        if n <= INLINE {
            // Selection: `left` rounds of "largest remainder not yet bumped".
            let mut bumped = [false; INLINE];
            for _ in 0..left {
                let mut best = usize::MAX;
                for i in 0..n {
                    if !bumped[i] && (best == usize::MAX || rems[i] > rems[best]) {
                        best = i;
                    }
                }
                bumped[best] = true;
                q[best] += 1;
            }
        } else {
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|&x, &y| rems[y].cmp(&rems[x]).then(x.cmp(&y)));
            for &i in &order[..left as usize] {
                q[i] += 1;
            }
        }
    }
    let neg = amount < 0;
    for (o, &p) in out.iter_mut().zip(q.iter()) {
        // p <= |amount| <= 2^63, so ±p fits in i64 (−2^63 = i64::MIN).
        let v = p as i128;
        *o = (if neg { -v } else { v }) as i64;
    }
    Ok(())
}

impl Money {
    /// Splits `self` by `ratios` (any non-negative weights, not all zero):
    /// parts proportional to the ratios that **always sum exactly** to
    /// `self`, each within one minor unit of its exact share, all with the
    /// sign of `self`. Leftover minor units go to the largest remainders,
    /// ties to the lower index (deterministic). O(n) for up to 16 parts.
    ///
    /// ```
    /// use dispatchkit_pricing::{Currency, Money, PricingError};
    ///
    /// let parts = Money::new(100, Currency::USD).allocate(&[1, 1, 1])?;
    /// let cents: Vec<i64> = parts.iter().map(|m| m.minor()).collect();
    /// assert_eq!(cents, [34, 33, 33]);
    /// # Ok::<(), PricingError>(())
    /// ```
    ///
    /// # Errors
    /// [`PricingError::InvalidAllocation`] for no ratios or ratios summing
    /// to zero.
    pub fn allocate(self, ratios: &[u64]) -> Result<Vec<Money>, PricingError> {
        let mut out = vec![Money::zero(self.currency()); ratios.len()];
        self.allocate_into(ratios, &mut out)?;
        Ok(out)
    }

    /// [`Money::allocate`] into a caller's buffer (no heap allocation for up
    /// to 16 parts).
    ///
    /// # Errors
    /// As [`Money::allocate`], and when `out.len() != ratios.len()`.
    pub fn allocate_into(self, ratios: &[u64], out: &mut [Money]) -> Result<(), PricingError> {
        let mut minor = [0_i64; INLINE];
        let mut heap = Vec::new();
        let buf: &mut [i64] = if ratios.len() <= INLINE {
            &mut minor[..ratios.len()]
        } else {
            heap.resize(ratios.len(), 0);
            &mut heap
        };
        if out.len() != ratios.len() {
            return Err(PricingError::InvalidAllocation {
                parts: ratios.len(),
                reason: "output buffer length differs from the number of ratios",
            });
        }
        largest_remainder(self.minor(), ratios, buf)?;
        for (o, &m) in out.iter_mut().zip(buf.iter()) {
            *o = Money::new(m, self.currency());
        }
        Ok(())
    }

    /// Splits `self` by shares in basis points that must sum to exactly
    /// 10 000 (100 %). Same guarantees as [`Money::allocate`].
    ///
    /// ```
    /// use dispatchkit_pricing::{Bps, Currency, Money, PricingError};
    ///
    /// let fee = Money::new(1_001, Currency::USD);
    /// let parts = fee.allocate_bps(&[Bps(7_000), Bps(3_000)])?;
    /// assert_eq!((parts[0].minor(), parts[1].minor()), (701, 300));
    /// # Ok::<(), PricingError>(())
    /// ```
    ///
    /// # Errors
    /// [`PricingError::InvalidAllocation`] when the shares do not sum to
    /// 10 000.
    pub fn allocate_bps(self, shares: &[Bps]) -> Result<Vec<Money>, PricingError> {
        let sum: u64 = shares.iter().map(|b| u64::from(b.0)).sum();
        if sum != 10_000 {
            return Err(PricingError::InvalidAllocation {
                parts: shares.len(),
                reason: "basis-point shares must sum to exactly 10000",
            });
        }
        let ratios: Vec<u64> = shares.iter().map(|b| u64::from(b.0)).collect();
        self.allocate(&ratios)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Currency;
    use proptest::prelude::*;

    fn cents(parts: &[Money]) -> Vec<i64> {
        parts.iter().map(|m| m.minor()).collect()
    }

    /// Exact reference: the same rule computed with rationals in i128 and a
    /// full sort (no selection shortcut).
    fn naive(amount: i64, w: &[u64]) -> Vec<i64> {
        let total: i128 = w.iter().map(|&x| x as i128).sum();
        let a = (amount as i128).abs();
        let mut parts: Vec<(i128, i128, usize)> = w
            .iter()
            .enumerate()
            .map(|(i, &x)| (a * x as i128 / total, a * x as i128 % total, i))
            .collect();
        let left = a - parts.iter().map(|p| p.0).sum::<i128>();
        let mut by_rem = parts.clone();
        by_rem.sort_by(|x, y| y.1.cmp(&x.1).then(x.2.cmp(&y.2)));
        for p in by_rem.iter().take(left as usize) {
            parts[p.2].0 += 1;
        }
        parts
            .iter()
            .map(|p| if amount < 0 { -p.0 } else { p.0 } as i64)
            .collect()
    }

    #[test]
    fn worked_examples() {
        let usd = |m| Money::new(m, Currency::USD);
        assert_eq!(cents(&usd(100).allocate(&[1, 1, 1]).unwrap()), [34, 33, 33]);
        assert_eq!(
            cents(&usd(-100).allocate(&[1, 1, 1]).unwrap()),
            [-34, -33, -33]
        );
        assert_eq!(cents(&usd(5).allocate(&[3, 7]).unwrap()), [2, 3]); // 1.5 / 3.5: tie → index 0
        assert_eq!(cents(&usd(5).allocate(&[0, 1]).unwrap()), [0, 5]);
        assert_eq!(cents(&usd(0).allocate(&[2, 9]).unwrap()), [0, 0]);
        let min = Money::new(i64::MIN, Currency::USD);
        assert_eq!(cents(&min.allocate(&[1]).unwrap()), [i64::MIN]);
        let parts = usd(1_000).allocate(&[1; 40]).unwrap();
        assert_eq!(cents(&parts), naive(1_000, &[1; 40]));
    }

    #[test]
    fn bad_ratios_are_errors() {
        let m = Money::new(10, Currency::USD);
        assert!(matches!(
            m.allocate(&[]),
            Err(PricingError::InvalidAllocation { .. })
        ));
        assert!(matches!(
            m.allocate(&[0, 0]),
            Err(PricingError::InvalidAllocation { .. })
        ));
        assert!(matches!(
            m.allocate_bps(&[Bps(5_000), Bps(4_999)]),
            Err(PricingError::InvalidAllocation { .. })
        ));
        let mut out = [m; 1];
        assert!(m.allocate_into(&[1, 2], &mut out).is_err());
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

        /// Parts sum exactly, keep the sign, stay within one unit of the
        /// exact share, and agree with the naive twin.
        #[test]
        fn allocation_is_exact(
            amount in prop_oneof![any::<i64>(), -1_000_000_i64..1_000_000],
            weights in proptest::collection::vec(prop_oneof![0_u64..1_000, any::<u64>()], 1..24),
        ) {
            prop_assume!(weights.iter().any(|&w| w > 0));
            let parts = Money::new(amount, Currency::USD).allocate(&weights).unwrap();
            let sum: i128 = parts.iter().map(|m| m.minor() as i128).sum();
            prop_assert_eq!(sum, amount as i128);
            let total: i128 = weights.iter().map(|&w| w as i128).sum();
            for (p, &w) in parts.iter().zip(&weights) {
                let p = p.minor() as i128;
                let same_sign = if amount >= 0 { p >= 0 } else { p <= 0 };
                prop_assert!(same_sign);
                // |p × W − amount × w| < W: within one minor unit.
                prop_assert!((p * total - amount as i128 * w as i128).abs() < total);
            }
            prop_assert_eq!(cents(&parts), naive(amount, &weights));
        }

        #[test]
        fn bps_shares_sum_exactly(amount in 0_i64..10_000_000_000, cut in 0_u32..=10_000) {
            let parts = Money::new(amount, Currency::JPY)
                .allocate_bps(&[Bps(cut), Bps(10_000 - cut)])
                .unwrap();
            prop_assert_eq!(parts[0].minor() + parts[1].minor(), amount);
            prop_assert!(parts.iter().all(|p| p.minor() >= 0));
        }
    }
}
