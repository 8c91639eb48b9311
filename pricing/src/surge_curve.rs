//! The demand/supply ratio → surge multiplier curve.

use crate::{Multiplier, PricingError};

/// Maps a demand/supply ratio to a surge multiplier, in integers.
///
/// With `r` the ratio in thousandths:
/// `m = 1.0` for `r <= threshold`, otherwise
/// `m = 1.0 + ⌊(r − threshold) × slope / 1000 / step⌋ × step`, then capped at
/// `cap` (or at `emergency_cap` while an emergency is declared). Every
/// multiplier is therefore `1.0 + k × step` and the curve is monotone
/// (non-decreasing) in `r`.
///
/// ```
/// use dispatchkit_pricing::{Multiplier, SurgeCurve};
///
/// let c = SurgeCurve::default(); // 1.2 threshold, slope 1, step 0.1, cap 3.0, emergency 1.5
/// assert_eq!(c.multiplier(1_200, false), Multiplier::ONE);
/// assert_eq!(c.multiplier(2_000, false), Multiplier::from_milli(1_800)?);
/// assert_eq!(c.multiplier(9_000, false), Multiplier::from_milli(3_000)?);
/// assert_eq!(c.multiplier(9_000, true), Multiplier::from_milli(1_500)?);
/// # Ok::<(), dispatchkit_pricing::PricingError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "surge_curve_serde::Unchecked")
)]
pub struct SurgeCurve {
    /// Ratio (thousandths) at or below which there is no surge.
    pub threshold_milli: u32,
    /// Multiplier increase (thousandths) per 1.0 of ratio above the
    /// threshold.
    pub slope_milli: u32,
    /// Multipliers move in steps of this many thousandths (`> 0`).
    pub step_milli: u32,
    /// Highest multiplier.
    pub cap: Multiplier,
    /// Highest multiplier while an emergency is declared (`<= cap`).
    pub emergency_cap: Multiplier,
}

dispatchkit_geo_index::deserialize_checked!(
    surge_curve_serde,
    SurgeCurve {
        threshold_milli: u32,
        slope_milli: u32,
        step_milli: u32,
        cap: Multiplier,
        emergency_cap: Multiplier,
    },
    SurgeCurve::validate,
    PricingError
);

impl Default for SurgeCurve {
    fn default() -> Self {
        Self {
            threshold_milli: 1_200,
            slope_milli: 1_000,
            step_milli: 100,
            cap: Multiplier::within_bounds(3_000),
            emergency_cap: Multiplier::within_bounds(1_500),
        }
    }
}

impl SurgeCurve {
    /// Checks the curve.
    ///
    /// # Errors
    /// [`PricingError::InvalidConfig`] when `step` is zero, a cap is below
    /// 1.0 or not `1.0 + k × step`, or `emergency_cap > cap`.
    pub fn validate(&self) -> Result<(), PricingError> {
        let bad = |what, value: u32, reason| PricingError::InvalidConfig {
            what,
            value: i64::from(value),
            reason,
        };
        if self.step_milli == 0 {
            return Err(bad("curve.step_milli", 0, "must be greater than zero"));
        }
        for (what, cap) in [
            ("curve.cap", self.cap),
            ("curve.emergency_cap", self.emergency_cap),
        ] {
            let m = cap.milli();
            if m < 1_000 {
                return Err(bad(what, m, "a cap below 1.0x is a discount, not surge"));
            }
            if !(m - 1_000).is_multiple_of(self.step_milli) {
                return Err(bad(what, m, "must be 1.0x plus a whole number of steps"));
            }
        }
        if self.emergency_cap > self.cap {
            return Err(bad(
                "curve.emergency_cap",
                self.emergency_cap.milli(),
                "must not exceed cap",
            ));
        }
        Ok(())
    }

    /// The cap in force.
    #[inline]
    pub fn effective_cap(&self, emergency: bool) -> Multiplier {
        if emergency {
            self.emergency_cap
        } else {
            self.cap
        }
    }

    /// Rounds `milli >= 1000` down to `1.0 + k × step`.
    #[inline]
    pub(crate) fn quantise(&self, milli: u64) -> u64 {
        let step = u64::from(self.step_milli.max(1));
        let excess = milli.saturating_sub(1_000);
        1_000 + excess / step * step
    }

    /// The multiplier for a ratio of `ratio_milli / 1000`. O(1).
    #[inline]
    pub fn multiplier(&self, ratio_milli: u64, emergency: bool) -> Multiplier {
        let t = u64::from(self.threshold_milli);
        if ratio_milli <= t {
            return Multiplier::ONE;
        }
        // (r − t) < 2^64 and slope < 2^32: the product fits in u128.
        let rise = (u128::from(ratio_milli - t) * u128::from(self.slope_milli) / 1_000)
            .min(u128::from(u32::MAX)) as u64;
        let m = self.quantise(1_000 + rise);
        let cap = u64::from(self.effective_cap(emergency).milli());
        Multiplier::within_bounds(m.min(cap) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bad_curves_are_rejected() {
        let c = SurgeCurve::default();
        assert!(c.validate().is_ok());
        let bad = [
            SurgeCurve { step_milli: 0, ..c },
            SurgeCurve {
                cap: Multiplier::from_milli(2_050).unwrap(),
                ..c
            },
            SurgeCurve {
                emergency_cap: Multiplier::from_milli(3_100).unwrap(),
                ..c
            },
        ];
        // A cap below 1.0x cannot even be made.
        assert!(Multiplier::from_milli(950).is_err());
        for b in bad {
            assert!(
                matches!(b.validate(), Err(PricingError::InvalidConfig { .. })),
                "{b:?}"
            );
        }
    }

    #[test]
    fn worked_examples() {
        let c = SurgeCurve::default();
        // Ratio 1.25: 0.05 above threshold → +0.05x → rounds down to 1.0.
        assert_eq!(c.multiplier(1_250, false), Multiplier::ONE);
        // Ratio 1.35: +0.15x → 1.1x.
        assert_eq!(
            c.multiplier(1_350, false),
            Multiplier::from_milli(1_100).unwrap()
        );
        // Steeper slope: 2.0 per ratio unit, ratio 2.0 → +1.6x → 2.6x.
        let steep = SurgeCurve {
            slope_milli: 2_000,
            ..c
        };
        assert_eq!(
            steep.multiplier(2_000, false),
            Multiplier::from_milli(2_600).unwrap()
        );
        assert_eq!(c.multiplier(u64::MAX, false), c.cap);
    }

    fn cases() -> u32 {
        dispatchkit_test_support::cases(10_000)
    }

    fn curve() -> impl Strategy<Value = SurgeCurve> {
        (0_u32..5_000, 1_u32..5_000, 1_u32..500, 0_u32..40, 0_u32..40).prop_map(
            |(threshold, slope, step, cap_steps, em_steps)| {
                // Caps stay within Multiplier::MAX (10x).
                let cap_steps = cap_steps.min(9_000 / step);
                let cap = 1_000 + cap_steps * step;
                let em = 1_000 + em_steps.min(cap_steps) * step;
                SurgeCurve {
                    threshold_milli: threshold,
                    slope_milli: slope,
                    step_milli: step,
                    cap: Multiplier::from_milli(cap).unwrap(),
                    emergency_cap: Multiplier::from_milli(em).unwrap(),
                }
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: cases(),
            failure_persistence: Some(Box::new(
                proptest::test_runner::FileFailurePersistence::WithSource("regressions"),
            )),
            ..ProptestConfig::default()
        })]

        /// Monotone in the ratio, within 1.0..=cap, on the step grid, and 1.0
        /// at or below the threshold.
        #[test]
        fn monotone_capped_stepped(c in curve(), a in any::<u64>(), b in any::<u64>(), em in any::<bool>()) {
            prop_assert!(c.validate().is_ok());
            let (lo, hi) = (a.min(b), a.max(b));
            let (mlo, mhi) = (c.multiplier(lo, em), c.multiplier(hi, em));
            prop_assert!(mlo <= mhi);
            prop_assert!(mhi <= c.effective_cap(em) && mlo >= Multiplier::ONE);
            prop_assert_eq!((mhi.milli() - 1_000) % c.step_milli, 0);
            if lo <= u64::from(c.threshold_milli) {
                prop_assert_eq!(mlo, Multiplier::ONE);
            }
            prop_assert!(c.multiplier(hi, true) <= c.multiplier(hi, false));
        }
    }
}
