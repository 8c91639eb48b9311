//! pricing in one screen: exact money, a rate card, surge from live drivers,
//! a quote with its receipt, a delivery order with promos, the capture split
//! and a refund.
//!
//! `cargo run --release --example pricing_quickstart`

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dispatchkit::geo::{Attrs, DriverId, DriverUpdate, GeoIndex, LonLat, Rating, VehicleType};
use dispatchkit::pricing::{
    Bps, Currency, DasherPay, DeliveryPricing, DeliveryPricingSpec, DistanceRate, DistanceTier,
    LineItem, Money, OrderRequest, PricingError, Promo, PromoBook, PromoKind, RateBook,
    RateCardSpec, Rounding, RouteEstimate, ServiceFee, SmallOrderFee, Stacking, SurgeConfig,
    SurgeEngine, TaxRule, UserId,
};
use geo::Point;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let usd = |minor| Money::new(minor, Currency::USD);

    // Money: i64 minor units, checked, never mixed across currencies.
    let a = usd(1_001);
    let parts = a.allocate(&[1, 1, 1])?; // 3.34 + 3.34 + 3.33, exactly 10.01
    println!("$10.01 / 3 = {parts:?}");
    let yen = Money::new(500, Currency::JPY);
    if let Err(e) = a.checked_add(yen) {
        println!("refused: {e}");
    }

    // A rate card (loadable with serde under the `serde` feature).
    let mut book = RateBook::new();
    book.insert(
        "seattle",
        "economy",
        RateCardSpec {
            currency: Currency::USD,
            base: 250,
            distance: DistanceRate::PerMile(150),
            per_minute: 30,
            minimum_fare: 800,
            booking_fee: 275,
            cancellation_fee: 500,
            rounding: Rounding::HalfEven,
        },
    )?;

    // Supply from the geo index, demand from ride requests: surge per H3 cell.
    let t0 = Instant::now();
    let index = GeoIndex::new();
    let downtown = Point::new(-122.3350, 47.6080);
    let car = VehicleType::new(0)?;
    let drivers: Vec<DriverUpdate> = (0..3_u64)
        .map(|i| {
            let pos = LonLat::new(-122.3350 + i as f64 * 1e-4, 47.6080)?;
            Ok(DriverUpdate::new(DriverId::new(i).unwrap(), pos, t0)
                .with_attrs(Attrs::available(car, Rating::new(4.9)?)))
        })
        .collect::<Result<_, dispatchkit::geo::GeoError>>()?;
    let _ = index.upsert_batch_at(&drivers, t0);
    let engine = SurgeEngine::new(SurgeConfig::default())?;
    for s in 0..12 {
        engine.record_request_at(downtown, t0 + Duration::from_secs(s))?;
    }
    // Drivers report every few seconds and expire after 30 s without one.
    let now = t0 + Duration::from_secs(20);
    engine.recompute_at(&index, now); // every minute in production
    let surge = engine.multiplier_at(downtown)?;
    let map = engine.snapshot();
    for (cell, s) in map.hottest(3) {
        println!(
            "surge:{{seattle}} {cell} ratio {:.2} -> {}",
            s.ratio_milli as f64 / 1000.0,
            s.multiplier
        );
    }

    // An upfront quote: 5 miles, 18 minutes, at the request's surge.
    let route = RouteEstimate {
        distance_m: 8_046.72,
        duration: Duration::from_secs(18 * 60),
    };
    let fare = book.card("seattle", "economy")?.quote(&route, surge)?;
    println!("ride receipt:\n{fare}");

    // A delivery order: tiered fee, service fee, tax, stacked promos, tip.
    let pricing = DeliveryPricing::new(DeliveryPricingSpec {
        currency: Currency::USD,
        tiers: vec![
            DistanceTier {
                up_to_m: 3_000,
                fee: 199,
            },
            DistanceTier {
                up_to_m: 10_000,
                fee: 399,
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
        taxes: BTreeMap::from([(
            "wa".to_string(),
            TaxRule {
                rate: Bps(1_025),
                on_fees: true,
            },
        )]),
        commission: Bps(2_000),
        dasher: DasherPay {
            base: 300,
            per_km: 60,
            per_minute: 10,
        },
        rounding: Rounding::HalfEven,
    })?;
    let mut promos = PromoBook::new();
    let mut save = Promo::new(
        "SAVE20",
        PromoKind::PercentOff {
            off: Bps::percent(20),
            cap: Some(usd(500)),
        },
    );
    save.stacking = Stacking::Stackable;
    save.per_user_limit = Some(1);
    promos.insert(save)?;
    let mut free = Promo::new("FREEDEL", PromoKind::FreeDelivery);
    free.stacking = Stacking::Stackable;
    promos.insert(free)?;

    let alice = UserId(1);
    let selection = promos.redeem_at(&["SAVE20", "FREEDEL"], alice, now)?;
    let items = [
        LineItem {
            unit_price: usd(1_250),
            quantity: 2,
        },
        LineItem {
            unit_price: usd(450),
            quantity: 1,
        },
    ];
    let order = OrderRequest {
        items: &items,
        distance_m: 4_200,
        duration_s: 1_500,
        jurisdiction: "wa",
        surge,
        tip: usd(500),
    };
    let total = pricing.price(&order, &selection)?;
    println!("order receipt:\n{total}");
    match promos.redeem_at(&["SAVE20"], alice, now) {
        Err(e @ PricingError::PromoUsageExceeded { .. }) => println!("second use refused: {e}"),
        other => println!("unexpected: {other:?}"),
    }

    // Capture and split, then a partial refund reversing it proportionally.
    let mut capture = total.capture()?;
    let s = capture.split();
    println!(
        "split: restaurant {} + dasher {} + platform {} = {}",
        s.restaurant,
        s.dasher,
        s.platform,
        capture.captured()
    );
    let r = capture.refund(usd(1_000))?;
    println!(
        "refund $10.00: restaurant {} + dasher {} + platform {}; {} still refundable",
        r.restaurant,
        r.dasher,
        r.platform,
        capture.refundable()
    );
    Ok(())
}
