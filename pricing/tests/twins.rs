//! Fares and delivery orders against naive twins: the same formulas written
//! out plainly in `i128` with floor-based half-even rounding (an
//! implementation independent of the crate's), over random inputs; every
//! result also passes `validate` (lines sum to the total, nothing negative)
//! and its capture split sums exactly.
//!
//! Cases: 10,000 by default; set `PROPTEST_CASES` for more.

use std::collections::BTreeMap;

use dispatchkit_pricing::{
    Bps, Currency, DasherPay, DeliveryPricing, DeliveryPricingSpec, DistanceRate, DistanceTier,
    LineItem, Money, Multiplier, OrderRequest, PricingError, PromoSelection, RateCard,
    RateCardSpec, Rounding, ServiceFee, SmallOrderFee, TaxRule,
};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

/// `n / d` rounded half to even, via floor division (`d > 0`).
fn rhe(n: i128, d: i128) -> i128 {
    let (q, r) = (n.div_euclid(d), n.rem_euclid(d));
    match (2 * r).cmp(&d) {
        std::cmp::Ordering::Less => q,
        std::cmp::Ordering::Greater => q + 1,
        std::cmp::Ordering::Equal => q + (q & 1),
    }
}

fn cases() -> u32 {
    dispatchkit_test_support::cases(10_000)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    }
}

#[test]
fn floor_half_even_reference_is_right() {
    let cases = [(25, 2), (24, 2), (-25, 2), (35, 2), (-35, 2), (-24, 10)];
    let want = [12, 12, -12, 18, -18, -2];
    for ((n, d), w) in cases.into_iter().zip(want) {
        assert_eq!(rhe(n, d), w, "{n}/{d}");
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn quote_matches_the_naive_formula(
        base in 0_i64..2_000,
        per_unit in 0_i64..500,
        per_mile in any::<bool>(),
        per_minute in 0_i64..200,
        minimum in 0_i64..3_000,
        booking in 0_i64..500,
        metres in 0_u64..200_000,
        ms in 0_u64..10_800_000,
        surge in 1_000_u32..=10_000,
    ) {
        let spec = RateCardSpec {
            currency: Currency::USD,
            base,
            distance: if per_mile { DistanceRate::PerMile(per_unit) } else { DistanceRate::PerKm(per_unit) },
            per_minute,
            minimum_fare: minimum,
            booking_fee: booking,
            cancellation_fee: 0,
            rounding: Rounding::HalfEven,
        };
        let fare = RateCard::new(spec).unwrap().price(metres, ms, Multiplier::from_milli(surge).unwrap()).unwrap();
        fare.check_invariants();
        let (m, t) = (i128::from(metres), i128::from(ms));
        let dist = if per_mile {
            rhe(i128::from(per_unit) * m * 1000, 1_609_344)
        } else {
            rhe(i128::from(per_unit) * m, 1000)
        };
        let time = rhe(i128::from(per_minute) * t, 60_000);
        let sub = i128::from(base) + dist + time;
        let surged = sub + rhe(sub * (i128::from(surge) - 1000), 1000);
        let total = surged.max(i128::from(minimum)) + i128::from(booking);
        prop_assert_eq!(i128::from(fare.total().minor()), total);
    }

    #[test]
    fn order_total_and_split_match_the_naive_formula(
        prices in proptest::collection::vec((0_i64..5_000, 1_u32..4), 1..6),
        distance_m in 0_u32..=9_000,
        duration_s in 0_u32..5_000,
        surge in 1_000_u32..3_000,
        tip in 0_i64..2_000,
        tax_bps in 0_u32..2_500,
        on_fees in any::<bool>(),
        commission in 0_u32..=10_000,
    ) {
        let spec = DeliveryPricingSpec {
            currency: Currency::USD,
            tiers: vec![
                DistanceTier { up_to_m: 2_000, fee: 199 },
                DistanceTier { up_to_m: 5_000, fee: 399 },
                DistanceTier { up_to_m: 9_000, fee: 599 },
            ],
            service_fee: ServiceFee { rate: Bps(1_500), min: 200, max: 800 },
            small_order: SmallOrderFee { below: 1_200, fee: 250 },
            taxes: BTreeMap::from([("x".to_string(), TaxRule { rate: Bps(tax_bps), on_fees })]),
            commission: Bps(commission),
            dasher: DasherPay { base: 300, per_km: 60, per_minute: 10 },
            rounding: Rounding::HalfEven,
        };
        let pricing = DeliveryPricing::new(spec).unwrap();
        let items: Vec<LineItem> = prices
            .iter()
            .map(|&(p, q)| LineItem { unit_price: Money::new(p, Currency::USD), quantity: q })
            .collect();
        let order = OrderRequest {
            items: &items,
            distance_m,
            duration_s,
            jurisdiction: "x",
            surge: Multiplier::from_milli(surge).unwrap(),
            tip: Money::new(tip, Currency::USD),
        };
        let t = pricing.price(&order, &PromoSelection::none()).unwrap();
        t.check_invariants();
        let sub: i128 = prices.iter().map(|&(p, q)| i128::from(p) * i128::from(q)).sum();
        let tier = if distance_m <= 2_000 { 199 } else if distance_m <= 5_000 { 399 } else { 599 };
        let delivery = rhe(tier * i128::from(surge), 1000);
        let service = rhe(sub * 1_500, 10_000).clamp(200, 800);
        let small = if sub < 1_200 { 250 } else { 0 };
        let taxable = if on_fees { sub + delivery + service + small } else { sub };
        let tax = rhe(taxable * i128::from(tax_bps), 10_000);
        let total = sub + delivery + service + small + tax + i128::from(tip);
        prop_assert_eq!(i128::from(t.total().minor()), total);
        let commission = rhe(sub * i128::from(commission), 10_000);
        prop_assert_eq!(i128::from(t.restaurant_due().minor()), sub - commission);
        let pay = 300 + rhe(60 * i128::from(distance_m), 1000) + rhe(10 * i128::from(duration_s), 60);
        prop_assert_eq!(i128::from(t.dasher_pay().minor()), pay);
        let c = t.capture().unwrap();
        c.check_invariants();
        let s = c.split();
        prop_assert_eq!(s.total(), t.total());
        // When the capture covers everything owed, each party gets exactly it.
        if sub - commission + pay + i128::from(tip) <= total {
            prop_assert_eq!(i128::from(s.restaurant.minor()), sub - commission);
            prop_assert_eq!(i128::from(s.dasher.minor()), pay + i128::from(tip));
        }
    }
}

#[test]
fn out_of_range_is_an_error_not_a_panic() {
    let card = RateCard::new(RateCardSpec {
        currency: Currency::USD,
        base: i64::MAX - 10,
        distance: DistanceRate::PerKm(1_000),
        per_minute: 0,
        minimum_fare: 0,
        booking_fee: 100,
        cancellation_fee: 0,
        rounding: Rounding::HalfEven,
    })
    .unwrap();
    assert!(matches!(
        card.price(100_000, 0, Multiplier::ONE),
        Err(PricingError::Overflow { .. })
    ));
    assert!(matches!(
        card.price(0, 0, Multiplier::from_milli(2_000).unwrap()),
        Err(PricingError::Overflow { .. })
    ));
}
