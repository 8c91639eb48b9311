//! Rounding modes and exact integer `a × b / d` with explicit rounding.

/// How a quotient that falls between two minor units is rounded (the modes
/// of `java.math.RoundingMode`).
///
/// | mode | 2.5 | 2.4 | −2.5 | 3.5 |
/// |---|---|---|---|---|
/// | `HalfEven` (default, banker's) | 2 | 2 | −2 | 4 |
/// | `HalfUp` (ties away from zero) | 3 | 2 | −3 | 4 |
/// | `HalfDown` (ties toward zero) | 2 | 2 | −2 | 3 |
/// | `Up` (away from zero) | 3 | 3 | −3 | 4 |
/// | `Down` (toward zero, truncate) | 2 | 2 | −2 | 3 |
/// | `Ceiling` | 3 | 3 | −2 | 4 |
/// | `Floor` | 2 | 2 | −3 | 3 |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Rounding {
    /// Nearest; ties to the even neighbour.
    #[default]
    HalfEven,
    /// Nearest; ties away from zero.
    HalfUp,
    /// Nearest; ties toward zero.
    HalfDown,
    /// Away from zero.
    Up,
    /// Toward zero.
    Down,
    /// Toward +∞.
    Ceiling,
    /// Toward −∞.
    Floor,
}

macro_rules! div_round_impl {
    ($name:ident, $t:ty) => {
        /// `n / d` rounded by `mode`; `d > 0`. Never overflows: the quotient
        /// is at most `|n|` and a rounding step of 1 away from a truncated
        /// quotient stays within the type because `|q| < |n|` whenever a
        /// remainder exists.
        #[inline]
        pub(crate) fn $name(n: $t, d: $t, mode: Rounding) -> $t {
            debug_assert!(d > 0);
            let q = n / d;
            let r = n % d;
            if r == 0 {
                return q;
            }
            let away: $t = if n < 0 { -1 } else { 1 };
            let twice = r.unsigned_abs() as u128 * 2;
            let d = d as u128;
            let bump = match mode {
                Rounding::Up => true,
                Rounding::Down => false,
                Rounding::Ceiling => n > 0,
                Rounding::Floor => n < 0,
                Rounding::HalfUp => twice >= d,
                Rounding::HalfDown => twice > d,
                Rounding::HalfEven => twice > d || (twice == d && q % 2 != 0),
            };
            if bump { q + away } else { q }
        }
    };
}

div_round_impl!(div_round_i64, i64);
div_round_impl!(div_round_i128, i128);

/// `a × b / d` rounded by `mode`, exact (i64 fast path, i128 when the
/// product overflows). `None` when `d <= 0` or the result does not fit in
/// `i64`.
#[inline]
pub(crate) fn mul_div_round(a: i64, b: i64, d: i64, mode: Rounding) -> Option<i64> {
    if d <= 0 {
        return None;
    }
    match a.checked_mul(b) {
        Some(p) => Some(div_round_i64(p, d, mode)),
        None => {
            let q = div_round_i128(a as i128 * b as i128, d as i128, mode);
            i64::try_from(q).ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Rounding::*;

    /// The table of the type's docs, in tenths: `n / 10`.
    #[test]
    fn worked_examples_match_the_table() {
        let cases: [(Rounding, [i64; 4]); 7] = [
            (HalfEven, [2, 2, -2, 4]),
            (HalfUp, [3, 2, -3, 4]),
            (HalfDown, [2, 2, -2, 3]),
            (Up, [3, 3, -3, 4]),
            (Down, [2, 2, -2, 3]),
            (Ceiling, [3, 3, -2, 4]),
            (Floor, [2, 2, -3, 3]),
        ];
        for (mode, want) in cases {
            let got = [25, 24, -25, 35].map(|n| div_round_i64(n, 10, mode));
            assert_eq!(got, want, "{mode:?}");
            let got128 = [25, 24, -25, 35].map(|n| div_round_i128(n, 10, mode) as i64);
            assert_eq!(got128, want, "{mode:?} (i128)");
        }
    }

    #[test]
    fn money_worked_examples() {
        // 8.5% tax on $12.34 = 104.89 cents.
        assert_eq!(mul_div_round(1234, 850, 10_000, HalfEven), Some(105));
        // 1.5 cents: half-even → 2, half-up → 2; 2.5 cents: 2 vs 3.
        assert_eq!(mul_div_round(3, 1, 2, HalfEven), Some(2));
        assert_eq!(mul_div_round(5, 1, 2, HalfEven), Some(2));
        assert_eq!(mul_div_round(5, 1, 2, HalfUp), Some(3));
        assert_eq!(mul_div_round(-5, 1, 2, HalfUp), Some(-3));
        // 1.25 × $9.99 = 12.4875 → 12.49.
        assert_eq!(mul_div_round(999, 1250, 1000, HalfEven), Some(1249));
        // Exact results never round.
        assert_eq!(mul_div_round(1000, 3, 3, Up), Some(1000));
    }

    #[test]
    fn wide_products_take_the_i128_path() {
        let big = i64::MAX / 2;
        assert_eq!(mul_div_round(big, 4, 4, HalfEven), Some(big));
        assert_eq!(mul_div_round(i64::MAX, 3, 2, HalfEven), None);
        assert_eq!(mul_div_round(i64::MIN, 1, 1, HalfEven), Some(i64::MIN));
        assert_eq!(mul_div_round(1, 1, 0, HalfEven), None);
    }
}
