//! Stage: pricing (issue 8). Simulated minutes of ride requests and
//! delivery orders over the live index:
//!
//! - every minute all drivers report once (one update round), then the
//!   surge engine recomputes every H3 cell from live supply (available
//!   drivers in the index) and demand (ride requests of the last 5 min);
//! - ride requests arrive at the seed's peak rate (3,000/s per 10M
//!   drivers, scaled) plus, for four minutes, a crowd leaving a stadium in
//!   London; each is matched to the nearest available driver (claimed
//!   atomically), priced upfront with the rate card of its metro and the
//!   surge of its cell, with rider promos (per-user limits) and late
//!   cancellations;
//! - delivery orders of the reference `OrderStream` are priced (tiered
//!   delivery fee with surge at the drop-off, service, small-order fee, tax
//!   per metro, stacked promos, tip), captured and split; some are
//!   refunded, partly or fully;
//! - a ledger per currency checks that restaurant + courier + platform
//!   equals charged − refunded to the minor unit.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use dispatchkit::geo::{DriverId, DriverUpdate, Filter, GeoIndex, Search, Status, Unit};
use dispatchkit::pricing::{
    Bps, Capture, Currency, DasherPay, DeliveryPricing, DeliveryPricingSpec, DistanceRate,
    DistanceTier, LineItem, Money, Multiplier, OrderRequest, PricingError, Promo, PromoBook,
    PromoKind, PromoSelection, RateBook, RateCardSpec, Rounding, RouteEstimate, ServiceFee,
    SmallOrderFee, Stacking, SurgeConfig, SurgeEngine, SurgeMap, TaxRule, UserId,
};
use dispatchkit::workload::{
    Fleet, METROS, MetroConfig, OrderConfig, OrderStream, QueryStream, UpdateStream, ZipfKeys,
};
use geo::{Distance, Haversine, Point};

use crate::args::Options;
use crate::geo::{Geo, attrs_of, lonlat};
use crate::report::{Section, rate};

/// Ride requests per second per driver (the seed's 3,000/s at 10M drivers).
const RIDES_PER_DRIVER_S: f64 = 3_000.0 / 10_000_000.0;
/// Average city driving speed for route estimates, m/s (≈ 29 km/h).
const DRIVE_MPS: f64 = 8.0;
/// Courier speed, m/s.
const COURIER_MPS: f64 = 5.0;
/// Drivers keep this share of the trip fare (take rate 25 %).
const DRIVER_SHARE: Bps = Bps(7_500);
/// Wembley Stadium: where the crowd requests rides.
const STADIUM: (f64, f64) = (-0.2795, 51.5560);

/// Currency of each metro (in `METROS` order) and its minor units per US
/// dollar, used to scale the USD price list (a rough exchange rate; price
/// levels are not modelled).
const MARKETS: [(&str, i64); 20] = [
    ("USD", 100),
    ("USD", 100),
    ("USD", 100),
    ("USD", 100),
    ("USD", 100),
    ("CAD", 137),
    ("MXN", 1_700),
    ("BRL", 500),
    ("ARS", 90_000),
    ("GBP", 79),
    ("EUR", 92),
    ("EUR", 92),
    ("TRY", 3_200),
    ("EGP", 4_800),
    ("NGN", 150_000),
    ("INR", 8_300),
    ("INR", 8_300),
    ("SGD", 134),
    ("JPY", 150),
    ("AUD", 152),
];

/// Sales tax or VAT per metro, basis points (applied to items and fees
/// where `on_fees`).
const TAX_BPS: [(u32, bool); 20] = [
    (888, false),
    (950, false),
    (1_025, false),
    (863, false),
    (1_025, true),
    (1_300, true),
    (1_600, true),
    (900, true),
    (2_100, true),
    (2_000, true),
    (1_000, true),
    (1_900, true),
    (1_000, true),
    (1_400, true),
    (750, true),
    (500, true),
    (500, true),
    (900, true),
    (1_000, true),
    (1_000, true),
];

/// USD cents → minor units of metro `m`'s currency, half-even.
fn local(m: usize, usd_cents: i64) -> Result<Money, PricingError> {
    let cur = Currency::from_code(MARKETS[m].0)?;
    Money::new(usd_cents, cur).mul_ratio(MARKETS[m].1, 100, Rounding::HalfEven)
}

fn rate_book() -> Result<RateBook, PricingError> {
    let mut book = RateBook::new();
    // (vehicle, base, per km, per minute, minimum, booking, cancellation), USD cents.
    let cards = [
        ("economy", 250, 95, 28, 800, 275, 500),
        ("xl", 400, 160, 40, 1_200, 275, 700),
        ("moto", 100, 50, 15, 400, 100, 300),
    ];
    for (m, metro) in METROS.iter().enumerate() {
        for (vehicle, base, km, min, minimum, booking, cancel) in cards {
            let l = |c| local(m, c).map(|x| x.minor());
            book.insert(
                metro.name,
                vehicle,
                RateCardSpec {
                    currency: Currency::from_code(MARKETS[m].0)?,
                    base: l(base)?,
                    distance: DistanceRate::PerKm(l(km)?),
                    per_minute: l(min)?,
                    minimum_fare: l(minimum)?,
                    booking_fee: l(booking)?,
                    cancellation_fee: l(cancel)?,
                    rounding: Rounding::HalfEven,
                },
            )?;
        }
    }
    Ok(book)
}

fn market(m: usize) -> Result<DeliveryPricing, PricingError> {
    let l = |c| local(m, c).map(|x| x.minor());
    let (tax, on_fees) = TAX_BPS[m];
    DeliveryPricing::new(DeliveryPricingSpec {
        currency: Currency::from_code(MARKETS[m].0)?,
        tiers: vec![
            DistanceTier {
                up_to_m: 2_000,
                fee: l(99)?,
            },
            DistanceTier {
                up_to_m: 5_000,
                fee: l(299)?,
            },
            // The workload's longest delivery is 10 km (plus rounding).
            DistanceTier {
                up_to_m: 10_500,
                fee: l(499)?,
            },
        ],
        service_fee: ServiceFee {
            rate: Bps(1_500),
            min: l(200)?,
            max: l(800)?,
        },
        small_order: SmallOrderFee {
            below: l(1_200)?,
            fee: l(250)?,
        },
        taxes: BTreeMap::from([(
            METROS[m].name.to_string(),
            TaxRule {
                rate: Bps(tax),
                on_fees,
            },
        )]),
        commission: Bps(2_000),
        dasher: DasherPay {
            base: l(300)?,
            per_km: l(60)?,
            per_minute: l(10)?,
        },
        rounding: Rounding::HalfEven,
    })
}

/// One promo book per currency (promo amounts are money in a currency).
fn promo_books() -> Result<HashMap<Currency, PromoBook>, PricingError> {
    let mut books = HashMap::new();
    for (m, (code, _)) in MARKETS.iter().enumerate() {
        let cur = Currency::from_code(code)?;
        if books.contains_key(&cur) {
            continue;
        }
        let mut b = PromoBook::new();
        let mut ride = Promo::new(
            "RIDE10",
            PromoKind::PercentOff {
                off: Bps::percent(10),
                cap: Some(local(m, 500)?),
            },
        );
        ride.per_user_limit = Some(2);
        b.insert(ride)?;
        let mut save = Promo::new(
            "SAVE15",
            PromoKind::PercentOff {
                off: Bps::percent(15),
                cap: Some(local(m, 600)?),
            },
        );
        save.min_subtotal = Some(local(m, 2_000)?);
        save.per_user_limit = Some(3);
        save.stacking = Stacking::Stackable;
        b.insert(save)?;
        let mut free = Promo::new("FREEDEL", PromoKind::FreeDelivery);
        free.per_user_limit = Some(5);
        free.stacking = Stacking::Stackable;
        b.insert(free)?;
        books.insert(cur, b);
    }
    Ok(books)
}

/// Totals of one currency.
#[derive(Debug)]
struct Ledger {
    charged: Money,
    refunded: Money,
    restaurant: Money,
    courier: Money,
    platform: Money,
    shortfall: Money,
    rides: usize,
    orders: usize,
}

impl Ledger {
    fn new(c: Currency) -> Self {
        let z = Money::zero(c);
        Self {
            charged: z,
            refunded: z,
            restaurant: z,
            courier: z,
            platform: z,
            shortfall: z,
            rides: 0,
            orders: 0,
        }
    }

    /// Books a capture after its refunds.
    fn book(&mut self, c: &Capture) -> Result<(), PricingError> {
        let net = c.net();
        self.charged = self.charged.checked_add(c.captured())?;
        self.refunded = self.refunded.checked_add(c.refunded().total())?;
        self.restaurant = self.restaurant.checked_add(net.restaurant)?;
        self.courier = self.courier.checked_add(net.dasher)?;
        self.platform = self.platform.checked_add(net.platform)?;
        self.shortfall = self.shortfall.checked_add(c.shortfall())?;
        Ok(())
    }

    /// `restaurant + courier + platform − (charged − refunded)`: zero when
    /// the ledger balances.
    fn imbalance(&self) -> Result<Money, PricingError> {
        self.restaurant
            .checked_add(self.courier)?
            .checked_add(self.platform)?
            .checked_sub(self.charged.checked_sub(self.refunded)?)
    }
}

/// A metro index for a point: the nearest metro centre.
fn metro_of(p: Point<f64>) -> usize {
    let mut best = (f64::MAX, 0);
    for (i, m) in METROS.iter().enumerate() {
        let d = Haversine.distance(p, m.centre());
        if d < best.0 {
            best = (d, i);
        }
    }
    best.1
}

const VEHICLES: [&str; 3] = ["economy", "xl", "moto"];

/// One reporting round of the whole fleet at `at`: every driver app sends
/// its position and status (busy while on a trip).
fn report_round(
    index: &GeoIndex,
    updates: &mut UpdateStream,
    busy: &[bool],
    round: &mut Vec<dispatchkit::workload::LocationUpdate>,
    batch: &mut Vec<DriverUpdate>,
    at: Instant,
) {
    updates.round_parallel(2, round);
    for chunk in round.chunks(crate::geo::BATCH) {
        batch.clear();
        batch.extend(chunk.iter().map(|u| {
            let mut attrs = attrs_of(u.driver);
            if busy[u.driver as usize] {
                attrs.status = Status::BUSY;
            }
            DriverUpdate::new(DriverId(u.driver), lonlat(u.position), at).with_attrs(attrs)
        }));
        index.upsert_batch_at(batch, at);
    }
}

pub fn run(
    opts: &Options,
    fleet: &Fleet,
    updates: &mut UpdateStream,
    geo: &Geo,
) -> Result<Section, Box<dyn std::error::Error>> {
    let mut s = Section::new("pricing: fares, surge, delivery fees, splits");
    let index: &GeoIndex = &geo.index;
    let minutes: u64 = if opts.quick { 4 } else { 10 };
    let book = rate_book()?;
    let markets: Vec<DeliveryPricing> = (0..METROS.len()).map(market).collect::<Result<_, _>>()?;
    let promos = promo_books()?;
    let engine = SurgeEngine::new(SurgeConfig::default())?;
    let mut ledgers: BTreeMap<Currency, Ledger> = BTreeMap::new();

    let cfg: &MetroConfig = fleet.config();
    let mut pickups = QueryStream::new(cfg, opts.seed ^ 0x8)?;
    let riders = (fleet.drivers().len() as u64 * 10).max(1);
    let mut rider_keys = ZipfKeys::new(riders, 1.0, opts.seed ^ 0x9)?;
    let rides_per_min = (fleet.drivers().len() as f64 * RIDES_PER_DRIVER_S * 60.0).ceil() as usize;
    let crowd_per_min = rides_per_min / 6;
    let london = MetroConfig::metro_index("London").unwrap_or(0);
    let mut last_pickup: Vec<Option<Point<f64>>> = vec![None; METROS.len()];
    let mut orders = OrderStream::new(
        cfg,
        &OrderConfig {
            seed: opts.seed ^ 0x0D,
            orders_per_sec: OrderConfig::default().orders_per_sec * fleet.drivers().len() as f64
                / 1_000_000.0,
            ..OrderConfig::default()
        },
    )?;
    let filter = Filter::available();
    let mut hits = Vec::new();
    let mut round = Vec::new();
    let mut batch = Vec::with_capacity(crate::geo::BATCH);
    // Drivers on a trip: (minute they are free again, id), and by id.
    let mut on_trip: Vec<(u64, DriverId)> = Vec::new();
    let mut busy = vec![false; fleet.drivers().len()];

    let (mut requests, mut matched, mut unmatched, mut cancelled) =
        (0usize, 0usize, 0usize, 0usize);
    let (mut promo_used, mut promo_refused) = (0usize, 0usize);
    let (mut n_orders, mut refunds_partial, mut refunds_full) = (0usize, 0usize, 0usize);
    let (mut recompute_ms, mut recompute_max_ms, mut walk_ms) = (0.0_f64, 0.0_f64, 0.0_f64);
    let (mut price_secs, mut order_secs, mut update_secs) = (0.0_f64, 0.0_f64, 0.0_f64);
    let mut n_updates = 0usize;
    let mut sample_receipt = None;
    let mut minute_lines = Vec::new();
    let mut map: std::sync::Arc<SurgeMap> = engine.snapshot();
    // The stage is a later shift: an hour after the geo stage, so its
    // reports are never older than an earlier stage's (the index rejects
    // stale updates) and every driver starts it afresh with its status.
    let base = geo.now + Duration::from_secs(3_600);

    for minute in 1..=minutes {
        let start = base + Duration::from_secs(60 * minute);
        // Drivers whose trip ended are free again.
        on_trip.retain(|&(free_at, id)| {
            if free_at <= minute {
                busy[id.0 as usize] = false;
                false
            } else {
                true
            }
        });
        // Every driver reports position and status once a minute; the
        // minute's searches and the recompute read the index at `start`.
        let u = Instant::now();
        report_round(index, updates, &busy, &mut round, &mut batch, start);
        update_secs += u.elapsed().as_secs_f64();
        n_updates += round.len();
        // Surge from live supply and the last 5 minutes of demand.
        let w = Instant::now();
        let mut live = 0usize;
        index.for_each_at(start, |_| live += 1);
        walk_ms += w.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        let stats = engine.recompute_at(index, start);
        let ms = t.elapsed().as_secs_f64() * 1e3;
        recompute_ms += ms;
        recompute_max_ms = recompute_max_ms.max(ms);
        map = engine.snapshot();
        let top = map.hottest(1);
        minute_lines.push(format!(
            "    minute {minute:>2}: {:>7} of {live} drivers available, {:>6} requests in window, \
             {:>3} cells surging, max {}  (recompute {ms:.1} ms)",
            stats.drivers,
            stats.requests,
            stats.surging,
            top.first().map_or(Multiplier::ONE, |h| h.1.multiplier),
        ));

        // This minute's ride requests (plus the stadium crowd in minutes 3..=6).
        let crowd = if (3..=6).contains(&minute) {
            crowd_per_min
        } else {
            0
        };
        let n = rides_per_min + crowd;
        for i in 0..n {
            let at = start + Duration::from_millis((i as u64 * 60_000) / n as u64);
            let (metro, pickup) = if i < crowd {
                // A London pickup pulled to within ~1 km of the stadium.
                let mut p = pickups.next_pickup();
                while p.metro as usize != london {
                    p = pickups.next_pickup();
                }
                let c = METROS[london].centre();
                let f = 0.08;
                (
                    london,
                    Point::new(
                        STADIUM.0 + (p.point.x() - c.x()) * f,
                        STADIUM.1 + (p.point.y() - c.y()) * f,
                    ),
                )
            } else {
                let p = pickups.next_pickup();
                (p.metro as usize, p.point)
            };
            requests += 1;
            engine.record_request_at(pickup, at)?;
            // The drop-off: the previous pickup of the same metro.
            let dropoff = last_pickup[metro]
                .replace(pickup)
                .unwrap_or(METROS[metro].centre());
            let q = Search::radius(lonlat(pickup), 3.0, Unit::Kilometers)
                .count(1)
                .filter(filter);
            index.search_into_at(&q, start, &mut hits)?;
            let Some(hit) = hits.first().copied() else {
                unmatched += 1;
                continue;
            };
            if !index.compare_and_set_status_at(hit.id, Status::AVAILABLE, Status::BUSY, start)? {
                unmatched += 1;
                continue;
            }
            busy[hit.id.0 as usize] = true;
            matched += 1;
            let card = book.card(
                METROS[metro].name,
                VEHICLES[usize::from(hit.attrs.vehicle.get()) % 3],
            )?;
            let cur = card.currency();
            let rider = UserId(rider_keys.next_key());
            if i % 25 == 24 {
                // A late cancellation: the fee, split like a fare.
                cancelled += 1;
                let fare = card.cancellation();
                let due = fare.total().mul_bps(DRIVER_SHARE, Rounding::HalfEven)?;
                let c = Capture::new(fare.total(), Money::zero(cur), due, Money::zero(cur))?;
                let l = ledgers.entry(cur).or_insert_with(|| Ledger::new(cur));
                l.book(&c)?;
                let _ =
                    index.compare_and_set_status_at(hit.id, Status::BUSY, Status::AVAILABLE, start);
                busy[hit.id.0 as usize] = false;
                continue;
            }
            let distance = Haversine.distance(pickup, dropoff).max(200.0);
            let route = RouteEstimate {
                distance_m: distance,
                duration: Duration::from_secs_f64(distance / DRIVE_MPS + 60.0),
            };
            let p = Instant::now();
            let surge = map.multiplier_at(pickup)?;
            let mut fare = card.quote(&route, surge)?;
            if i % 10 == 0 {
                match promos[&cur].redeem_at(&["RIDE10"], rider, at) {
                    Ok(sel) => match fare.with_promos(&sel) {
                        Ok(f) => {
                            fare = f;
                            promo_used += 1;
                        }
                        Err(_) => {
                            promos[&cur].release(&sel, rider);
                            promo_refused += 1;
                        }
                    },
                    Err(PricingError::PromoUsageExceeded { .. }) => promo_refused += 1,
                    Err(e) => return Err(e.into()),
                }
            }
            let due = fare.trip_fare().mul_bps(DRIVER_SHARE, Rounding::HalfEven)?;
            let c = Capture::new(fare.total(), Money::zero(cur), due, Money::zero(cur))?;
            price_secs += p.elapsed().as_secs_f64();
            let l = ledgers.entry(cur).or_insert_with(|| Ledger::new(cur));
            l.book(&c)?;
            l.rides += 1;
            if sample_receipt.is_none() && surge > Multiplier::ONE {
                sample_receipt = Some((METROS[metro].name, fare));
            }
            let trip_min = (route.duration.as_secs() / 60).max(1);
            on_trip.push((minute + trip_min, hit.id));
        }

        // This minute's delivery orders.
        let until = start - base;
        let o = Instant::now();
        for order in orders.until(until) {
            n_orders += 1;
            let m = usize::from(order.metro);
            let pricing = &markets[m];
            let cur = pricing.currency();
            let items: Vec<LineItem> = (0..order.items)
                .map(|k| {
                    let usd = 450
                        + (i64::from(order.restaurant) * 7_919 + i64::from(k) * 104_729) % 1_800;
                    local(m, usd).map(|price| LineItem {
                        unit_price: price,
                        quantity: 1 + u32::from(k % 2),
                    })
                })
                .collect::<Result<_, _>>()?;
            let distance_m = Haversine.distance(order.pickup, order.dropoff).round() as u32;
            let req = OrderRequest {
                items: &items,
                distance_m,
                duration_s: (f64::from(distance_m) / COURIER_MPS) as u32 + 300,
                jurisdiction: METROS[m].name,
                surge: map.multiplier_at(order.dropoff)?,
                tip: local(m, 100 * (order.id % 5) as i64)?,
            };
            let customer = UserId(riders + order.id % (riders / 4).max(1));
            let at = base + order.placed_at;
            let mut total = pricing.price(&req, &PromoSelection::none())?;
            if order.id % 5 == 0 {
                match promos[&cur].redeem_at(&["SAVE15", "FREEDEL"], customer, at) {
                    Ok(sel) => match pricing.price(&req, &sel) {
                        Ok(t) => {
                            total = t;
                            promo_used += 1;
                        }
                        Err(PricingError::PromoMinimumNotMet { .. }) => {
                            promos[&cur].release(&sel, customer);
                            promo_refused += 1;
                        }
                        Err(e) => return Err(e.into()),
                    },
                    Err(PricingError::PromoUsageExceeded { .. }) => promo_refused += 1,
                    Err(e) => return Err(e.into()),
                }
            }
            let mut c = total.capture()?;
            if order.id % 300 == 7 {
                c.refund_all();
                refunds_full += 1;
            } else if order.id % 50 == 3 {
                let quarter = c.captured().mul_bps(Bps(2_500), Rounding::HalfEven)?;
                c.refund(quarter)?;
                refunds_partial += 1;
            }
            let l = ledgers.entry(cur).or_insert_with(|| Ledger::new(cur));
            l.book(&c)?;
            l.orders += 1;
        }
        order_secs += o.elapsed().as_secs_f64();
    }
    // Leave the index as we found it: every claimed driver available again.
    let end = base + Duration::from_secs(60 * minutes);
    for (_, id) in on_trip.drain(..) {
        let _ = index.compare_and_set_status_at(id, Status::BUSY, Status::AVAILABLE, end);
    }
    engine.validate();

    s.metric(
        "surge recompute (whole index)",
        format!(
            "{} drivers, mean {:.1} ms, max {:.1} ms ({} recomputes, H3 res 7)",
            fleet.drivers().len(),
            recompute_ms / minutes as f64,
            recompute_max_ms,
            minutes
        ),
    );
    s.metric(
        "  of which the index walk alone",
        format!(
            "mean {:.1} ms (GeoIndex::for_each_at)",
            walk_ms / minutes as f64
        ),
    );
    s.metric(
        "location updates (once a minute)",
        format!("{n_updates} ({})", rate(n_updates, update_secs)),
    );
    for l in &minute_lines {
        s.line(l.clone());
    }
    s.line("  surge distribution at the end (cells per multiplier):".into());
    let hist = map.distribution();
    s.line(format!(
        "    {}",
        hist.iter()
            .map(|(m, n)| format!("{m}: {n}"))
            .collect::<Vec<_>>()
            .join("   ")
    ));
    s.line("  hottest cells (ZREVRANGE surge:{city} 0 4 WITHSCORES):".into());
    for (cell, c) in map.hottest(5) {
        let ll = dispatchkit::pricing::h3o::LatLng::from(cell);
        let metro = METROS[metro_of(Point::new(ll.lng(), ll.lat()))].name;
        s.line(format!(
            "    {cell}  {metro:<13} ratio {:>6.2}  demand {:>5}  supply {:>4}  {}",
            c.ratio_milli as f64 / 1000.0,
            c.demand,
            c.supply,
            c.multiplier
        ));
    }
    s.metric(
        "ride requests",
        format!(
            "{requests}: {matched} matched, {unmatched} without a driver in 3 km, {cancelled} cancelled late"
        ),
    );
    s.metric(
        "rides priced (quote+surge+split)",
        rate(matched - cancelled, price_secs),
    );
    s.metric(
        "delivery orders priced and split",
        format!(
            "{n_orders} ({}; {refunds_partial} partly and {refunds_full} fully refunded)",
            rate(n_orders, order_secs)
        ),
    );
    s.metric(
        "promos",
        format!("{promo_used} applied, {promo_refused} refused (limit or minimum)"),
    );
    if let Some((metro, fare)) = sample_receipt {
        s.line(format!("  a surged receipt ({metro}):"));
        for l in fare.to_string().lines() {
            s.line(format!("  {l}"));
        }
    }
    s.line("  ledger (charged − refunded = restaurants + couriers + platform):".into());
    let mut balanced = 0;
    for (cur, l) in &ledgers {
        let off = l.imbalance()?;
        if !off.is_zero() {
            return Err(format!("ledger {cur} is off by {off}").into());
        }
        balanced += 1;
        s.line(format!(
            "    {cur}: {} rides, {} orders; charged {} − refunded {} = restaurants {} + couriers {} + platform {} (promo shortfall {})",
            l.rides, l.orders, l.charged, l.refunded, l.restaurant, l.courier, l.platform, l.shortfall
        ));
    }
    s.metric(
        "ledger",
        format!("{balanced} currencies, every one balances to the minor unit"),
    );
    Ok(s)
}
