//! Fares, delivery orders, splits and refunds worked by hand.
//!
//! Every expected figure below is computed in the comment next to it from
//! the documented configuration, with the rounding rule stated (half-even
//! unless said otherwise), so a change in any formula fails here.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dispatchkit_pricing::{
    Bps, Capture, Currency, DasherPay, DeliveryPricing, DeliveryPricingSpec, DistanceRate,
    DistanceTier, FareComponent, LineItem, Money, Multiplier, OrderRequest, PricingError, Promo,
    PromoBook, PromoKind, PromoSelection, RateBook, RateCard, RateCardSpec, Rounding,
    RouteEstimate, ServiceFee, SmallOrderFee, Stacking, TaxRule, TracePoint, TraceRules, UserId,
};

fn usd(minor: i64) -> Money {
    Money::new(minor, Currency::USD)
}

/// The documented ride rate card: Seattle economy, USD.
/// base $2.50, $1.50 per mile (1 609.344 m), $0.30 per minute, minimum
/// fare $8.00, booking fee $2.75, cancellation $5.00, half-even.
fn seattle_economy() -> RateCardSpec {
    RateCardSpec {
        currency: Currency::USD,
        base: 250,
        distance: DistanceRate::PerMile(150),
        per_minute: 30,
        minimum_fare: 800,
        booking_fee: 275,
        cancellation_fee: 500,
        rounding: Rounding::HalfEven,
    }
}

fn book() -> RateBook {
    let mut b = RateBook::new();
    b.insert("seattle", "economy", seattle_economy()).unwrap();
    b
}

fn minutes(m: u64) -> Duration {
    Duration::from_secs(60 * m)
}

fn lines(f: &dispatchkit_pricing::Fare) -> Vec<(FareComponent, i64)> {
    f.lines().map(|l| (l.component, l.amount.minor())).collect()
}

#[test]
fn upfront_quote_five_miles_eighteen_minutes() {
    let card = *book().card("seattle", "economy").unwrap();
    // 5 miles = 8 046.72 m → 8 047 m priced.
    let route = RouteEstimate {
        distance_m: 8_046.72,
        duration: minutes(18),
    };
    let f = card.quote(&route, Multiplier::ONE).unwrap();
    f.check_invariants();
    // distance: 150 × 8 047 000 / 1 609 344 = 750.03 → 750
    // time: 30 × 18 = 540
    // 250 + 750 + 540 = 1 540 ≥ 800; + 275 booking fee = 1 815
    use FareComponent::*;
    assert_eq!(
        lines(&f),
        [(Base, 250), (Distance, 750), (Time, 540), (BookingFee, 275)]
    );
    assert_eq!(f.total(), usd(1_815));

    // Surge 1.5× at request time: surge line = 1 540 × 0.5 = 770.
    let f = card
        .quote(&route, Multiplier::from_milli(1_500).unwrap())
        .unwrap();
    f.check_invariants();
    assert_eq!(f.component(Surge), usd(770));
    assert_eq!(f.total(), usd(1_540 + 770 + 275));
    assert_eq!(f.trip_fare(), usd(2_310));
    assert!(f.to_string().contains("surge 1.50x"));
}

#[test]
fn minimum_fare_applies_after_surge_and_before_the_booking_fee() {
    let card = *book().card("seattle", "economy").unwrap();
    // Half a mile: 805 m, 3 minutes.
    let route = RouteEstimate {
        distance_m: 805.0,
        duration: minutes(3),
    };
    let f = card.quote(&route, Multiplier::ONE).unwrap();
    // 250 + 75 (150 × 805 000 / 1 609 344 = 75.03) + 90 = 415 → +385 to reach 800.
    use FareComponent::*;
    assert_eq!(
        lines(&f),
        [
            (Base, 250),
            (Distance, 75),
            (Time, 90),
            (MinimumFare, 385),
            (BookingFee, 275)
        ]
    );
    assert_eq!(f.total(), usd(1_075));
    // 1.25×: 415 × 0.25 = 103.75 → 104; 519 → +281; the rider still pays 10.75.
    let f = card
        .quote(&route, Multiplier::from_milli(1_250).unwrap())
        .unwrap();
    f.check_invariants();
    assert_eq!(
        (f.component(Surge), f.component(MinimumFare)),
        (usd(104), usd(281))
    );
    assert_eq!(f.total(), usd(1_075));
}

#[test]
fn promo_on_a_ride_is_capped_and_never_touches_the_booking_fee() {
    let card = *book().card("seattle", "economy").unwrap();
    let mut promos = PromoBook::new();
    let mut p = Promo::new(
        "RIDE20",
        PromoKind::PercentOff {
            off: Bps::percent(20),
            cap: Some(usd(300)),
        },
    );
    p.min_subtotal = Some(usd(1_000));
    promos.insert(p).unwrap();
    let sel = promos
        .check_at(&["RIDE20"], UserId(7), Instant::now())
        .unwrap();
    let route = RouteEstimate {
        distance_m: 8_046.72,
        duration: minutes(18),
    };
    // Trip fare 2 310 at 1.5×: 20 % = 462, capped at 300; 2 585 − 300 = 2 285.
    let f = card
        .quote(&route, Multiplier::from_milli(1_500).unwrap())
        .unwrap()
        .with_promos(&sel)
        .unwrap();
    f.check_invariants();
    assert_eq!(f.component(FareComponent::Promo), usd(-300));
    assert_eq!(f.total(), usd(2_285));
    // Applying again replaces, it does not stack.
    assert_eq!(f.with_promos(&sel).unwrap().total(), usd(2_285));
    // The short trip's fare (800) is under the promo's $10 minimum.
    let short = card
        .quote(
            &RouteEstimate {
                distance_m: 805.0,
                duration: minutes(3),
            },
            Multiplier::ONE,
        )
        .unwrap();
    assert_eq!(
        short.with_promos(&sel),
        Err(PricingError::PromoMinimumNotMet {
            code: "RIDE20".into(),
            subtotal: usd(800),
            minimum: usd(1_000)
        })
    );
    // Free delivery does not apply to rides.
    let mut p2 = PromoBook::new();
    p2.insert(Promo::new("SHIP", PromoKind::FreeDelivery))
        .unwrap();
    let ship = p2.check_at(&["SHIP"], UserId(7), Instant::now()).unwrap();
    assert!(matches!(
        short.with_promos(&ship),
        Err(PricingError::PromoNotApplicable { .. })
    ));
}

#[test]
fn final_fare_from_a_gps_trace_with_a_jump() {
    let card = *book().card("seattle", "economy").unwrap();
    // Ten fixes one minute apart, 0.009° of latitude apart along a
    // meridian (1 000.756 m each on geo's mean-radius sphere), and one
    // fix 0.5° east at t = 275 s that would need ~38 km in 35 s.
    let mut trace: Vec<TracePoint> = (0..10)
        .map(|i| TracePoint::new(-122.335, 47.600 + 0.009 * i as f64, minutes(i)))
        .collect();
    trace.insert(
        5,
        TracePoint::new(-121.835, 47.640, Duration::from_secs(275)),
    );
    let f = card
        .final_fare(
            &trace,
            &TraceRules::default(),
            Multiplier::from_milli(1_200).unwrap(),
        )
        .unwrap();
    f.check_invariants();
    // 9 × 1 000.756 = 9 006.8 → 9 007 m; 150 × 9 007 000 / 1 609 344 = 839.50 → 840
    // time 9 min: 270; 250 + 840 + 270 = 1 360; surge 20 %: 272; + 275 = 1 907
    assert_eq!(f.distance_m(), 9_007);
    assert_eq!(f.duration_ms(), 540_000);
    use FareComponent::*;
    assert_eq!(
        lines(&f),
        [
            (Base, 250),
            (Distance, 840),
            (Time, 270),
            (Surge, 272),
            (BookingFee, 275)
        ]
    );
    assert_eq!(f.total(), usd(1_907));
}

#[test]
fn cancellation_is_one_line() {
    let f = book().card("seattle", "economy").unwrap().cancellation();
    f.check_invariants();
    assert_eq!(lines(&f), [(FareComponent::CancellationFee, 500)]);
}

#[test]
fn rounding_modes_on_a_tie() {
    // 85 ¢/km over 2.5 km = 212.5 ¢: half-even → 212, half-up → 213.
    let spec = RateCardSpec {
        distance: DistanceRate::PerKm(85),
        ..seattle_economy()
    };
    let he = RateCard::new(spec).unwrap();
    let hu = RateCard::new(RateCardSpec {
        rounding: Rounding::HalfUp,
        ..spec
    })
    .unwrap();
    assert_eq!(he.distance_charge(2_500).unwrap(), usd(212));
    assert_eq!(hu.distance_charge(2_500).unwrap(), usd(213));
    // 100 yen per km in a 0-digit currency: 1.5 km = 150 yen exactly.
    let yen = RateCard::new(RateCardSpec {
        currency: Currency::JPY,
        distance: DistanceRate::PerKm(100),
        ..spec
    })
    .unwrap();
    assert_eq!(
        yen.distance_charge(1_500).unwrap(),
        Money::new(150, Currency::JPY)
    );
}

#[test]
fn bad_ride_inputs_are_typed_errors() {
    let b = book();
    assert_eq!(
        b.card("boston", "economy").unwrap_err(),
        PricingError::UnknownCity {
            city: "boston".into()
        }
    );
    assert!(matches!(
        b.card("seattle", "helicopter"),
        Err(PricingError::UnknownVehicle { .. })
    ));
    let card = b.card("seattle", "economy").unwrap();
    for d in [f64::NAN, -1.0, f64::INFINITY, 1e12] {
        let r = card.quote(
            &RouteEstimate {
                distance_m: d,
                duration: minutes(1),
            },
            Multiplier::ONE,
        );
        assert!(
            matches!(r, Err(PricingError::InvalidDistance { .. })),
            "{d}"
        );
    }
    let nan = [
        TracePoint::new(-122.3, 47.6, minutes(0)),
        TracePoint::new(-122.3, f64::NAN, minutes(1)),
    ];
    assert!(matches!(
        card.final_fare(&nan, &TraceRules::default(), Multiplier::ONE),
        Err(PricingError::InvalidGpsPoint { index: 1, .. })
    ));
    assert!(matches!(
        card.final_fare(&[], &TraceRules::default(), Multiplier::ONE),
        Err(PricingError::InvalidTrace { points: 0, .. })
    ));
    let mut spec = seattle_economy();
    spec.base = -250;
    let mut b2 = RateBook::new();
    assert_eq!(
        b2.insert("x", "y", spec),
        Err(PricingError::NegativeAmount {
            what: "base".into(),
            value: -250,
            reason: "rate-card amounts are prices and cannot be negative"
        })
    );
}

/// The documented delivery market: tiers ≤ 2 km $1.99, ≤ 5 km $3.99,
/// ≤ 10 km $5.99; service fee 15 % within $2.00..=$8.00; small-order fee
/// $2.50 below $12.00; tax "wa" 10.25 % on items and fees, "or" none;
/// commission 20 %; dasher $3.00 + $0.60/km + $0.10/min; half-even.
fn market() -> DeliveryPricing {
    DeliveryPricing::new(DeliveryPricingSpec {
        currency: Currency::USD,
        tiers: vec![
            DistanceTier {
                up_to_m: 2_000,
                fee: 199,
            },
            DistanceTier {
                up_to_m: 5_000,
                fee: 399,
            },
            DistanceTier {
                up_to_m: 10_000,
                fee: 599,
            },
        ],
        service_fee: ServiceFee {
            rate: Bps(1_500),
            min: 200,
            max: 800,
        },
        small_order: SmallOrderFee {
            below: 1_200,
            fee: 250,
        },
        taxes: BTreeMap::from([
            (
                "wa".to_string(),
                TaxRule {
                    rate: Bps(1_025),
                    on_fees: true,
                },
            ),
            (
                "or".to_string(),
                TaxRule {
                    rate: Bps(0),
                    on_fees: false,
                },
            ),
        ]),
        commission: Bps(2_000),
        dasher: DasherPay {
            base: 300,
            per_km: 60,
            per_minute: 10,
        },
        rounding: Rounding::HalfEven,
    })
    .unwrap()
}

fn promo_book() -> PromoBook {
    let mut b = PromoBook::new();
    let mut save = Promo::new(
        "SAVE20",
        PromoKind::PercentOff {
            off: Bps::percent(20),
            cap: Some(usd(500)),
        },
    );
    save.min_subtotal = Some(usd(1_500));
    save.stacking = Stacking::Stackable;
    b.insert(save).unwrap();
    let mut free = Promo::new("FREEDEL", PromoKind::FreeDelivery);
    free.stacking = Stacking::Stackable;
    b.insert(free).unwrap();
    b
}

#[test]
fn delivery_order_with_stacked_promos_and_a_short_capture() {
    let items = [
        LineItem {
            unit_price: usd(875),
            quantity: 2,
        },
        LineItem {
            unit_price: usd(450),
            quantity: 1,
        },
    ];
    let order = OrderRequest {
        items: &items,
        distance_m: 3_200,
        duration_s: 1_200,
        jurisdiction: "wa",
        surge: Multiplier::from_milli(1_200).unwrap(),
        tip: usd(400),
    };
    let sel = promo_book()
        .check_at(&["SAVE20", "FREEDEL"], UserId(1), Instant::now())
        .unwrap();
    let t = market().price(&order, &sel).unwrap();
    t.check_invariants();
    // subtotal 2 × 8.75 + 4.50 = 22.00
    // delivery 3.99 × 1.2 = 4.788 → 4.79, waived by FREEDEL
    // service 15 % × 22.00 = 3.30; no small-order fee
    // SAVE20: 20 % × 22.00 = 4.40 (cap 5.00)
    // tax 10.25 % × (22.00 − 4.40 + 0 + 3.30) = 20.90 × 0.1025 = 2.142 → 2.14
    // total 22.00 − 4.40 + 4.79 − 4.79 + 3.30 + 2.14 + 4.00 = 27.04
    let got: Vec<(&str, i64)> = t.lines().map(|(l, m)| (l, m.minor())).collect();
    assert_eq!(
        got,
        [
            ("items", 2_200),
            ("promo", -440),
            ("delivery fee", 479),
            ("free delivery", -479),
            ("service fee", 330),
            ("tax", 214),
            ("tip", 400)
        ]
    );
    assert_eq!(t.total(), usd(2_704));
    // Owed: restaurant 22.00 − 20 % = 17.60; dasher 3.00 + 0.60 × 3.2 + 0.10 × 20 = 6.92.
    assert_eq!((t.restaurant_due(), t.dasher_pay()), (usd(1_760), usd(692)));
    // 17.60 + 6.92 + 4.00 tip = 28.52 > 27.04 captured: the platform-funded
    // promo leaves nothing for the platform, and nobody goes negative:
    // tip first, then 23.04 split 1 760 : 692 → 1 653.76 / 650.24 →
    // 1 654 / 650 (largest remainder), platform 0, shortfall 1.48.
    let c = t.capture().unwrap();
    c.check_invariants();
    let s = c.split();
    assert_eq!(
        (s.restaurant, s.dasher, s.platform),
        (usd(1_654), usd(1_050), usd(0))
    );
    assert_eq!(c.shortfall(), usd(148));
}

#[test]
fn small_order_split_and_refunds() {
    let items = [LineItem {
        unit_price: usd(950),
        quantity: 1,
    }];
    let order = OrderRequest {
        items: &items,
        distance_m: 1_500,
        duration_s: 900,
        jurisdiction: "or",
        surge: Multiplier::ONE,
        tip: usd(0),
    };
    let t = market().price(&order, &PromoSelection::none()).unwrap();
    t.check_invariants();
    // 9.50 + 1.99 + service max(2.00, 15 % × 9.50 = 1.425 → 1.42) = 2.00
    // + small-order 2.50 (9.50 < 12.00), no tax = 15.99
    assert_eq!(
        (
            t.delivery_fee(),
            t.service_fee(),
            t.small_order_fee(),
            t.tax()
        ),
        (usd(199), usd(200), usd(250), usd(0))
    );
    assert_eq!(t.total(), usd(1_599));
    // restaurant 9.50 − 1.90 = 7.60; dasher 3.00 + 0.90 + 1.50 = 5.40; platform 2.99
    let mut c = t.capture().unwrap();
    let s = c.split();
    assert_eq!(
        (s.restaurant, s.dasher, s.platform),
        (usd(760), usd(540), usd(299))
    );
    // Refund $5.00 in proportion 760 : 540 : 299 of 1 599:
    // 237.65 / 168.86 / 93.50 → floors 237 + 168 + 93 = 498, the 2 left
    // go to the largest remainders (dasher .86, restaurant .65).
    let r = c.refund(usd(500)).unwrap();
    c.check_invariants();
    assert_eq!(
        (r.restaurant, r.dasher, r.platform),
        (usd(238), usd(169), usd(93))
    );
    assert_eq!(c.refundable(), usd(1_099));
    assert_eq!(
        c.refund(usd(1_100)),
        Err(PricingError::RefundExceedsCapture {
            requested: usd(1_100),
            refundable: usd(1_099)
        })
    );
    let rest = c.refund_all();
    c.check_invariants();
    assert_eq!(
        (rest.restaurant, rest.dasher, rest.platform),
        (usd(522), usd(371), usd(206))
    );
    assert_eq!(c.refunded().total(), usd(1_599));
    assert_eq!(c.net().total(), usd(0));
}

#[test]
fn bad_order_inputs_are_typed_errors() {
    let m = market();
    let none = PromoSelection::none();
    let item = |p: Money, q| {
        [LineItem {
            unit_price: p,
            quantity: q,
        }]
    };
    let base = |items: &[LineItem]| -> Result<_, PricingError> {
        m.price(
            &OrderRequest {
                items,
                distance_m: 1_000,
                duration_s: 600,
                jurisdiction: "wa",
                surge: Multiplier::ONE,
                tip: usd(0),
            },
            &none,
        )
    };
    assert_eq!(
        base(&item(usd(-100), 1)).unwrap_err(),
        PricingError::NegativeAmount {
            what: "unit_price".into(),
            value: -100,
            reason: "must be zero or more"
        }
    );
    assert!(matches!(
        base(&item(usd(100), 0)),
        Err(PricingError::InvalidOrder { .. })
    ));
    assert!(matches!(base(&[]), Err(PricingError::InvalidOrder { .. })));
    assert_eq!(
        base(&item(Money::new(100, Currency::EUR), 1)).unwrap_err(),
        PricingError::CurrencyMismatch {
            expected: Currency::USD,
            found: Currency::EUR
        }
    );
    assert!(matches!(
        base(&item(Money::new(i64::MAX / 2, Currency::USD), 3)),
        Err(PricingError::Overflow { .. })
    ));
    let items = item(usd(1_000), 1);
    let req = OrderRequest {
        items: &items,
        distance_m: 10_001,
        duration_s: 600,
        jurisdiction: "wa",
        surge: Multiplier::ONE,
        tip: usd(0),
    };
    assert_eq!(
        m.price(&req, &none).unwrap_err(),
        PricingError::OutOfDeliveryRange {
            distance_m: 10_001,
            max_m: 10_000
        }
    );
    let req = OrderRequest {
        distance_m: 1_000,
        jurisdiction: "ca",
        ..req
    };
    assert_eq!(
        m.price(&req, &none).unwrap_err(),
        PricingError::UnknownJurisdiction {
            jurisdiction: "ca".into()
        }
    );
    let req = OrderRequest {
        jurisdiction: "wa",
        tip: usd(-1),
        ..req
    };
    assert!(matches!(
        m.price(&req, &none),
        Err(PricingError::NegativeAmount { .. })
    ));
    // SAVE20 needs $15.00; this order is $10.00.
    let sel = promo_book()
        .check_at(&["SAVE20"], UserId(1), Instant::now())
        .unwrap();
    let req = OrderRequest { tip: usd(0), ..req };
    assert!(matches!(
        m.price(&req, &sel),
        Err(PricingError::PromoMinimumNotMet { .. })
    ));
    // Expired and over-used promos.
    let t0 = Instant::now();
    let mut b = PromoBook::new();
    let mut once = Promo::new("ONCE", PromoKind::FixedOff { off: usd(100) });
    once.per_user_limit = Some(1);
    once.expires_at = Some(t0 + Duration::from_secs(10));
    b.insert(once).unwrap();
    let _ = b.redeem_at(&["ONCE"], UserId(3), t0).unwrap();
    assert!(matches!(
        b.redeem_at(&["ONCE"], UserId(3), t0),
        Err(PricingError::PromoUsageExceeded {
            uses: 1,
            limit: 1,
            ..
        })
    ));
    assert!(matches!(
        b.check_at(&["ONCE"], UserId(4), t0 + Duration::from_secs(10)),
        Err(PricingError::PromoExpired { .. })
    ));
    // Bad market configurations.
    let mut spec = market().spec().clone();
    spec.tiers.reverse();
    assert!(matches!(
        DeliveryPricing::new(spec),
        Err(PricingError::InvalidConfig { .. })
    ));
    let mut spec = market().spec().clone();
    spec.service_fee.min = 900;
    assert!(matches!(
        DeliveryPricing::new(spec),
        Err(PricingError::InvalidConfig { .. })
    ));
    let mut spec = market().spec().clone();
    spec.dasher.per_km = -1;
    assert!(matches!(
        DeliveryPricing::new(spec),
        Err(PricingError::NegativeAmount { .. })
    ));
    // A capture split never takes negative input.
    assert!(matches!(
        Capture::new(usd(100), usd(-1), usd(0), usd(0)),
        Err(PricingError::NegativeAmount { .. })
    ));
}

#[cfg(feature = "serde")]
#[test]
fn rate_cards_and_markets_load_with_serde() {
    let json = r#"{
        "seattle": {
            "economy": { "currency": "USD", "base": 250, "distance": { "per_mile": 150 },
                         "per_minute": 30, "minimum_fare": 800, "booking_fee": 275,
                         "cancellation_fee": 500 }
        },
        "tokyo": {
            "taxi": { "currency": "JPY", "base": 500, "distance": { "per_km": 400 },
                      "per_minute": 90, "minimum_fare": 730, "booking_fee": 0,
                      "cancellation_fee": 300, "rounding": "half_up" }
        }
    }"#;
    let b: RateBook = serde_json::from_str(json).unwrap();
    assert_eq!(b.len(), 2);
    assert_eq!(
        b.card("seattle", "economy").unwrap().spec(),
        seattle_economy()
    );
    let taxi = b.card("tokyo", "taxi").unwrap();
    assert_eq!(taxi.base(), Money::new(500, Currency::JPY));
    assert_eq!(taxi.rounding(), Rounding::HalfUp);
    // Round trip.
    let again: RateBook = serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap();
    assert_eq!(again.card("tokyo", "taxi").unwrap(), taxi);
    // A negative price or an unknown currency is refused on load.
    let bad = json.replace("\"base\": 250", "\"base\": -250");
    let err = serde_json::from_str::<RateBook>(&bad)
        .unwrap_err()
        .to_string();
    assert!(err.contains("negative amount for base: -250"), "{err}");
    let bad = json.replace("\"JPY\"", "\"XXX\"");
    assert!(serde_json::from_str::<RateBook>(&bad).is_err());
    // A delivery market round-trips and validates.
    let m = market();
    let s = serde_json::to_string(&m).unwrap();
    let back: DeliveryPricing = serde_json::from_str(&s).unwrap();
    assert_eq!(back.spec(), m.spec());
    let bad = s.replace("\"min\":200", "\"min\":900");
    assert!(serde_json::from_str::<DeliveryPricing>(&bad).is_err());
}
