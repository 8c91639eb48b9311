//! Issue 14, pricing's cases: a promo use given back only for a
//! redemption (7), records loaded from JSON checked like the constructors
//! build them (10), and the bounds of traces and multipliers (13).

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use dispatchkit_pricing::{
    Bps, Capture, Currency, DistanceRate, Money, Multiplier, PricingError, Promo, PromoBook,
    PromoKind, RateCard, RateCardSpec, Rounding, RouteEstimate, TracePoint, TraceRules, UserId,
    measure_trace,
};

fn usd(m: i64) -> Money {
    Money::new(m, Currency::USD)
}

fn card() -> RateCard {
    RateCard::new(RateCardSpec {
        currency: Currency::USD,
        base: 250,
        distance: DistanceRate::PerKm(100),
        per_minute: 30,
        minimum_fare: 800,
        booking_fee: 275,
        cancellation_fee: 500,
        rounding: Rounding::HalfEven,
    })
    .unwrap()
}

#[test]
fn case_07_only_a_redemption_can_be_released_and_only_once() {
    let t0 = Instant::now();
    let mut book = PromoBook::new();
    let mut once = Promo::new(
        "ONCE",
        PromoKind::PercentOff {
            off: Bps::percent(50),
            cap: None,
        },
    );
    once.per_user_limit = Some(1);
    book.insert(once).unwrap();
    let book = Arc::new(book);
    let alice = UserId(1);
    // The attack: check (never counted), then hand the checked selection
    // back as if it had been redeemed, repeatedly. `release` takes a
    // `Redemption` by value now, so that no longer compiles (see the
    // compile_fail example on `Redemption`); the use count can only go
    // down by what a redemption put up.
    let r = book.redeem_at(&["ONCE"], alice, t0).unwrap();
    assert_eq!(book.uses("ONCE", alice), 1);
    let _checked_is_refused = book.check_at(&["ONCE"], alice, t0).unwrap_err();
    book.release(r).unwrap();
    assert_eq!(book.uses("ONCE", alice), 0);
    // Racing threads: every redemption that is released frees exactly one
    // use, so with a limit of 1 the grants never overlap.
    let start = Arc::new(std::sync::Barrier::new(4));
    let granted: Vec<_> = (0..4)
        .map(|_| {
            let (book, start) = (Arc::clone(&book), Arc::clone(&start));
            thread::spawn(move || {
                let mut held = 0;
                let mut granted = 0;
                start.wait();
                for _ in 0..20_000 {
                    if let Ok(r) = book.redeem_at(&["ONCE"], alice, t0) {
                        granted += 1;
                        held += 1;
                        assert_eq!(book.uses("ONCE", alice), 1, "over-granted");
                        book.release(r).unwrap();
                        held -= 1;
                    }
                }
                assert_eq!(held, 0);
                granted
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    assert!(granted.iter().sum::<u32>() > 0);
    assert_eq!(book.uses("ONCE", alice), 0);
    assert!(book.lock_waits() > 0, "no contention happened");
    // A redemption from another book is refused and changes nothing.
    let mut other = PromoBook::new();
    other
        .insert(Promo::new("ONCE", PromoKind::FixedOff { off: usd(100) }))
        .unwrap();
    let foreign = other.redeem_at(&["ONCE"], alice, t0).unwrap();
    let kept = book.redeem_at(&["ONCE"], alice, t0).unwrap();
    assert!(matches!(
        book.release(foreign),
        Err(PricingError::ForeignRedemption { user: 1 })
    ));
    assert_eq!(book.uses("ONCE", alice), 1);
    drop(kept.into_selection());
}

#[test]
fn case_10_a_tampered_capture_does_not_load() {
    let mut c = Capture::new(usd(3_699), usd(2_000), usd(600), usd(300)).unwrap();
    let _ = c.refund(usd(1_000)).unwrap();
    let json = serde_json::to_value(c).unwrap();
    let back: Capture = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(back, c);
    // The restaurant "refunded" more than its part (net −3.00), a split that
    // does not sum to the capture, a negative part, another currency.
    let mut tampered = json.clone();
    tampered["refunded"]["restaurant"]["minor"] = serde_json::json!(2_300);
    let e = serde_json::from_value::<Capture>(tampered).unwrap_err();
    assert!(e.to_string().contains("refunds"), "{e}");
    let mut tampered = json.clone();
    tampered["split"]["platform"]["minor"] = serde_json::json!(800);
    assert!(serde_json::from_value::<Capture>(tampered).is_err());
    let mut tampered = json.clone();
    tampered["split"]["dasher"]["minor"] = serde_json::json!(-100);
    tampered["split"]["platform"]["minor"] = serde_json::json!(1_799);
    assert!(serde_json::from_value::<Capture>(tampered).is_err());
    let mut tampered = json.clone();
    tampered["shortfall"]["currency"] = serde_json::json!("EUR");
    assert!(serde_json::from_value::<Capture>(tampered).is_err());
    let mut tampered = json;
    tampered["split"]["restaurant"]["minor"] = serde_json::json!(i64::MAX);
    assert!(serde_json::from_value::<Capture>(tampered).is_err());
    // Fares whose lines do not add up do not load either.
    let fare = card()
        .quote(
            &RouteEstimate {
                distance_m: 8_000.0,
                duration: Duration::from_secs(1_200),
            },
            Multiplier::from_milli(1_500).unwrap(),
        )
        .unwrap();
    let json = serde_json::to_value(fare).unwrap();
    assert_eq!(
        serde_json::from_value::<dispatchkit_pricing::Fare>(json.clone()).unwrap(),
        fare
    );
    for (field, value) in [
        ("total", serde_json::json!(1)),
        ("promo", serde_json::json!(5)),
        ("base", serde_json::json!(i64::MAX)),
        ("multiplier", serde_json::json!(0)),
    ] {
        let mut t = json.clone();
        t[field] = value;
        assert!(
            serde_json::from_value::<dispatchkit_pricing::Fare>(t).is_err(),
            "{field}"
        );
    }
}

#[test]
fn case_13_traces_and_multipliers_are_bounded() {
    let s = Duration::from_secs;
    let rules = TraceRules::default();
    // Two fixes, the second 1000 km away a second later: refused (it used
    // to price base + booking fee only), so the caller charges the quote.
    let jump = [
        TracePoint::new(13.40, 52.52, s(0)),
        TracePoint::new(2.35, 48.85, s(1)),
    ];
    let e = measure_trace(&jump, &rules).unwrap_err();
    assert!(
        matches!(
            e,
            PricingError::InvalidTrace {
                points: 2,
                rejected: 1,
                ..
            }
        ),
        "{e}"
    );
    assert!(card().final_fare(&jump, &rules, Multiplier::ONE).is_err());
    // Half the fixes rejected is refused; more than half accepted is fine.
    let four = [
        TracePoint::new(13.40, 52.52, s(0)),
        TracePoint::new(2.35, 48.85, s(1)),
        TracePoint::new(2.35, 48.86, s(2)),
        TracePoint::new(13.401, 52.52, s(60)),
    ];
    assert!(measure_trace(&four, &rules).is_err());
    let five = [
        four[0],
        four[1],
        four[3],
        TracePoint::new(13.402, 52.52, s(120)),
    ];
    assert_eq!(measure_trace(&five, &rules).unwrap().rejected, 1);
    // Rules that would accept anything are refused.
    for (speed, jitter) in [(1e308, 25.0), (55.0, 1e12), (0.0, 25.0), (f64::NAN, 25.0)] {
        let r = TraceRules {
            max_speed_mps: speed,
            jitter_m: jitter,
        };
        assert!(matches!(
            measure_trace(&five, &r),
            Err(PricingError::InvalidTrace { .. })
        ));
    }
    // Multipliers: 1.0x..=10.0x, whichever way they are made.
    for bad in [0, 999, 10_001, u32::MAX] {
        assert!(matches!(
            Multiplier::from_milli(bad),
            Err(PricingError::InvalidRate { .. })
        ));
        assert!(serde_json::from_str::<Multiplier>(&bad.to_string()).is_err());
    }
    let route = RouteEstimate {
        distance_m: 8_000.0,
        duration: Duration::from_secs(1_200),
    };
    let max = card().quote(&route, Multiplier::MAX).unwrap();
    // (250 + 800 + 600) × 10 + 275: the most a 8 km ride can cost.
    assert_eq!(max.total(), usd(16_775));
    assert_eq!(
        serde_json::from_str::<Multiplier>("1250").unwrap().milli(),
        1_250
    );
}
