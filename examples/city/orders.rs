//! Delivery orders, end to end: rate-limit policy → restaurant menu
//! through the tiered cache → order total with fees, tax, surge on the
//! delivery fee and promos → every 30 s the orders placed since the last
//! window are batched with their neighbours (savings clustering, exact
//! pickup-before-drop-off routes) → dasher matching (offers to the top 5,
//! 20 s to answer) → the dasher's route, waiting at restaurants until the
//! food is ready → on each delivery the capture is split between
//! restaurant, dasher and platform (a few orders are refunded).

use std::time::{Duration, Instant};

use dispatchkit::geo::{DriverId, GeoError, Status};
use dispatchkit::matching::{
    BatchingConfig, DasherConfig, DasherMatch, DasherMatcher, DasherOffer, DasherStatus,
    DasherStep, EtaModel, HaversineEta, Order, OrderId, StopKind, batch_orders,
};
use dispatchkit::pricing::{
    Bps, LineItem, OrderRequest, OrderTotal, PricingError, PromoSelection, Redemption, Rounding,
    UserId,
};
use dispatchkit::workload::{DeliveryOrder, Fleet, METROS, OrderConfig, OrderStream, ZipfKeys};
use geo::{Distance, Haversine};

use crate::args::Options;
use crate::fleet::{courier_vehicles, lonlat, vehicle};
use crate::ledger::Kind;
use crate::markets::{ORDER_PROMOS, local};
use crate::offers;
use crate::policy::ORDERS;
use crate::report::{self, Latencies, Stage};
use crate::sim::{Event, World};
use crate::stores::{Menu, Synthesise};
use crate::trace::mix;

/// Orders are batched and offered every 30 simulated seconds.
pub const BATCH_WINDOW_MS: u64 = 30_000;
/// Courier speed for the delivery-time estimate in dasher pay, m/s (15 km/h).
const COURIER_MPS: f64 = 15.0 / 3.6;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Placed,
    Denied,
    Pending,
    Batched,
    Cancelled,
    Delivered,
    WaitingAtEnd,
    UnservedAtEnd,
}

#[derive(Debug)]
struct Placed {
    src: DeliveryOrder,
    customer: u64,
    total: Option<OrderTotal>,
    promo: Option<Redemption>,
    state: State,
}

#[derive(Debug)]
struct BatchState {
    orders: Vec<u32>,
    matching: Option<DasherMatch>,
    dasher: Option<DriverId>,
}

/// The delivery side's state and counters.
pub struct Orders {
    /// Orders per second.
    pub rate: f64,
    seed: u64,
    stream: OrderStream,
    customers: ZipfKeys,
    orders: Vec<Placed>,
    pending: Vec<u32>,
    batches: Vec<BatchState>,
    matcher: DasherMatcher<HaversineEta>,
    batching: BatchingConfig,
    eta: HaversineEta,
    items: Vec<LineItem>,
    pub report: report::Deliveries,
    delivery_mins_sum: f64,
    pay_sum: f64,
    price_latency: Latencies,
    batch_latency: Latencies,
    match_latency: Latencies,
    capture_latency: Latencies,
}

impl Orders {
    pub fn new(
        opts: &Options,
        fleet: &Fleet,
        users: u64,
        rate: f64,
        eta: HaversineEta,
    ) -> Result<Self, Box<dyn std::error::Error>> {
        let stream = OrderStream::new(
            fleet.config(),
            &OrderConfig {
                seed: opts.seed ^ 0x0D,
                orders_per_sec: rate,
                ..OrderConfig::default()
            },
        )?;
        let matcher = DasherMatcher::new(
            DasherConfig {
                vehicles: courier_vehicles(),
                ..DasherConfig::default()
            },
            eta.clone(),
        )?;
        Ok(Self {
            rate,
            seed: opts.seed,
            stream,
            customers: ZipfKeys::new(users, 1.0, opts.seed ^ 0xC5)?,
            orders: Vec::new(),
            pending: Vec::new(),
            batches: Vec::new(),
            matcher,
            batching: BatchingConfig {
                vehicle: vehicle(2),
                ..BatchingConfig::default()
            },
            eta,
            items: Vec::new(),
            report: report::Deliveries::default(),
            delivery_mins_sum: 0.0,
            pay_sum: 0.0,
            price_latency: Latencies::default(),
            batch_latency: Latencies::default(),
            match_latency: Latencies::default(),
            capture_latency: Latencies::default(),
        })
    }

    /// The orders of the reference `OrderStream` placed before `to` ms:
    /// (time, order index).
    pub fn arrivals(&mut self, to: u64) -> Vec<(u64, u32)> {
        self.stream
            .until(Duration::from_millis(to))
            .into_iter()
            .map(|src| {
                self.orders.push(Placed {
                    src,
                    customer: self.customers.next_key(),
                    total: None,
                    promo: None,
                    state: State::Placed,
                });
                (
                    src.placed_at.as_millis() as u64,
                    (self.orders.len() - 1) as u32,
                )
            })
            .collect()
    }

    /// When and how a dasher answers an offer of batch `b`: 55 % accept
    /// after 3–15 s, 30 % decline after 2–10 s, 15 % never answer.
    fn answer(&self, b: u32, dasher: DriverId) -> Option<(u64, bool)> {
        let h = mix(self.seed ^ 0xDA5, (u64::from(b) << 24) ^ dasher.get());
        match h % 100 {
            0..55 => Some((3_000 + (h >> 8) % 12_000, true)),
            55..85 => Some((2_000 + (h >> 8) % 8_000, false)),
            _ => None,
        }
    }

    pub fn summary(&self) -> report::Deliveries {
        let mut r = self.report.clone();
        r.mean_delivery_mins = self.delivery_mins_sum / r.delivered.max(1) as f64;
        r.mean_offer_pay_usd_cents = self.pay_sum / r.assigned_batches.max(1) as f64;
        let count = |s: State| self.orders.iter().filter(|x| x.state == s).count() as u64;
        debug_assert_eq!(count(State::Delivered), r.delivered);
        debug_assert_eq!(count(State::Denied), r.denied);
        debug_assert_eq!(count(State::Cancelled), r.cancelled_orders);
        debug_assert_eq!(count(State::WaitingAtEnd), r.waiting_at_end);
        debug_assert_eq!(count(State::UnservedAtEnd), r.unserved_at_end);
        debug_assert_eq!(
            count(State::Placed) + count(State::Pending) + count(State::Batched),
            0
        );
        r
    }

    pub fn stages(&mut self) -> Vec<Stage> {
        vec![
            self.price_latency
                .stage("pricing: order total (fees, tax, promos)", "orders/s", 1),
            self.batch_latency
                .stage("matching: batch_orders (30 s window)", "windows/s", 1),
            self.match_latency
                .stage("matching: dasher start/accept/decline/tick", "events/s", 1),
            self.capture_latency
                .stage("pricing: capture split + refunds", "orders/s", 1),
        ]
    }
}

impl World {
    pub fn order_placed(&mut self, o: u32, ms: u64) -> Result<(), Box<dyn std::error::Error>> {
        let now = self.at(ms);
        let (src, customer) = {
            let x = &self.orders.orders[o as usize];
            (x.src, x.customer)
        };
        self.orders.report.orders += 1;
        if !self.gateway.admit(customer, ORDERS, now)? {
            self.orders.report.denied += 1;
            self.orders.orders[o as usize].state = State::Denied;
            return Ok(());
        }
        self.orders.report.allowed += 1;
        let menu = self.stores.menus.get(u64::from(o), &src.restaurant, now)?;
        if src.id % 997 == 0 {
            // The restaurant raises its prices 5 % (write-behind).
            let mut edited = Menu::synthesise(&src.restaurant);
            for p in &mut edited.prices_usd_cents {
                *p += *p / 20;
            }
            edited.text.push_str("\n(prices updated)");
            self.stores
                .menus
                .set(u64::from(o) + 1, src.restaurant, edited, now)?;
        }

        let m = usize::from(src.metro);
        let t = Instant::now();
        let orders = &mut self.orders;
        orders.items.clear();
        let n = menu.prices_usd_cents.len().max(1);
        for k in 0..usize::from(src.items) {
            let usd = menu.prices_usd_cents[(src.id as usize * 31 + k * 7) % n];
            orders.items.push(LineItem {
                unit_price: local(m, usd)?,
                quantity: 1 + (k % 2) as u32,
            });
        }
        let distance_m = Haversine.distance(src.pickup, src.dropoff).round() as u32;
        let req = OrderRequest {
            items: &orders.items,
            distance_m,
            duration_s: (f64::from(distance_m) / COURIER_MPS) as u32 + 300,
            jurisdiction: METROS[m].name,
            surge: self.surge.map.multiplier_at(src.dropoff)?,
            tip: local(m, 100 * (src.id % 5) as i64)?,
        };
        let pricing = &self.markets.delivery[m];
        let mut total = pricing.price(&req, &PromoSelection::none())?;
        let mut promo = None;
        if src.id % 5 == 0 {
            let book = self.markets.promos(pricing.currency());
            match book.redeem_at(&ORDER_PROMOS, UserId(customer), now) {
                Ok(sel) => match pricing.price(&req, &sel) {
                    Ok(t) => {
                        total = t;
                        promo = Some(sel);
                        orders.report.promos_applied += 1;
                    }
                    Err(PricingError::PromoMinimumNotMet { .. }) => {
                        book.release(sel)?;
                        orders.report.promos_refused += 1;
                    }
                    Err(e) => return Err(e.into()),
                },
                Err(PricingError::PromoUsageExceeded { .. }) => orders.report.promos_refused += 1,
                Err(e) => return Err(e.into()),
            }
        }
        orders.price_latency.record(t.elapsed());
        let x = &mut orders.orders[o as usize];
        x.total = Some(total);
        x.promo = promo;
        x.state = State::Pending;
        orders.pending.push(o);
        Ok(())
    }

    /// Batches the orders placed since the last window and offers every
    /// batch to dashers.
    pub fn batch_window(&mut self, ms: u64) -> Result<(), Box<dyn std::error::Error>> {
        let now = self.at(ms);
        let ids = std::mem::take(&mut self.orders.pending);
        if ids.is_empty() {
            return Ok(());
        }
        let orders = &mut self.orders;
        let os: Vec<Order> = ids
            .iter()
            .map(|&i| {
                let s = &orders.orders[i as usize].src;
                Order {
                    id: OrderId(u64::from(i)),
                    pickup: lonlat(s.pickup),
                    dropoff: lonlat(s.dropoff),
                }
            })
            .collect();
        let t = Instant::now();
        let batches = batch_orders(&orders.eta, &os, &orders.batching)?;
        orders.batch_latency.record(t.elapsed());
        // Every order of the window is in exactly one batch.
        let mut covered: Vec<usize> = batches
            .iter()
            .flat_map(|b| b.orders.iter().copied())
            .collect();
        covered.sort_unstable();
        if covered != (0..os.len()).collect::<Vec<_>>() {
            return Err("batch_orders did not cover every order exactly once".into());
        }
        orders.report.batch_windows += 1;
        orders.report.dispatched += ids.len() as u64;
        let mut batch_orders_buf = Vec::with_capacity(3);
        for b in batches {
            let rep = &mut self.orders.report;
            rep.batches += 1;
            rep.batch_sizes[b.orders.len() - 1] += 1;
            batch_orders_buf.clear();
            batch_orders_buf.extend(b.orders.iter().map(|&k| os[k]));
            let members: Vec<u32> = b.orders.iter().map(|&k| ids[k]).collect();
            for &i in &members {
                self.orders.orders[i as usize].state = State::Batched;
            }
            let bi = self.orders.batches.len() as u32;
            let t = Instant::now();
            let (m, step) =
                self.orders
                    .matcher
                    .start_at(self.drivers.index.get(), &batch_orders_buf, now)?;
            self.orders.match_latency.record(t.elapsed());
            self.orders.batches.push(BatchState {
                orders: members,
                matching: Some(m),
                dasher: None,
            });
            self.dasher_step(bi, step, ms)?;
        }
        Ok(())
    }

    pub fn dasher_answer(
        &mut self,
        b: u32,
        dasher: u64,
        accept: bool,
        ms: u64,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let now = self.at(ms);
        let orders = &mut self.orders;
        let m = orders.batches[b as usize].matching.as_mut();
        let index = self.drivers.index.get();
        let latency = &mut orders.match_latency;
        let Some(step) = offers::answer(&orders.matcher, index, m, dasher, accept, now, latency)?
        else {
            return Ok(());
        };
        if !accept {
            orders.report.dasher_declines += 1;
        }
        self.dasher_step(b, step, ms)
    }

    pub fn dasher_deadline(&mut self, b: u32, ms: u64) -> Result<(), Box<dyn std::error::Error>> {
        let now = self.at(ms);
        let orders = &mut self.orders;
        let m = orders.batches[b as usize].matching.as_mut();
        let index = self.drivers.index.get();
        let latency = &mut orders.match_latency;
        let Some(step) = offers::deadline(&orders.matcher, index, m, now, latency)? else {
            return Ok(());
        };
        orders.report.dasher_timeouts += 1;
        self.dasher_step(b, step, ms)
    }

    fn dasher_step(
        &mut self,
        b: u32,
        step: DasherStep,
        ms: u64,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let orders = &mut self.orders;
        orders.report.dasher_offers += step.offers.len() as u64;
        orders.report.dasher_lost_races += u64::from(step.lost_race.is_some());
        for o in &step.offers {
            if let Some((delay, accept)) = orders.answer(b, o.dasher) {
                self.queue.push(
                    ms + delay,
                    Event::DasherAnswer {
                        batch: b,
                        dasher: o.dasher.get(),
                        accept,
                    },
                );
            }
        }
        let batch = &mut orders.batches[b as usize];
        if !step.offers.is_empty()
            && let Some(d) = batch.matching.as_ref().and_then(DasherMatch::deadline)
        {
            let d = d.saturating_duration_since(self.t0).as_millis() as u64;
            self.queue.push(d, Event::DasherDeadline(b));
        }
        match step.status {
            DasherStatus::Offering => Ok(()),
            DasherStatus::Assigned(offer) => self.dasher_assigned(b, &offer, ms),
            DasherStatus::Unmatched { .. } => {
                orders.report.unmatched_batches += 1;
                batch.matching = None;
                for &i in &batch.orders {
                    let x = &mut orders.orders[i as usize];
                    x.state = State::Cancelled;
                    orders.report.cancelled_orders += 1;
                    release_promo(&self.markets, x)?;
                }
                Ok(())
            }
        }
    }

    fn dasher_assigned(
        &mut self,
        b: u32,
        offer: &DasherOffer,
        ms: u64,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let now = self.at(ms);
        let orders = &mut self.orders;
        let batch = &mut orders.batches[b as usize];
        batch.matching = None;
        batch.dasher = Some(offer.dasher);
        orders.report.assigned_batches += 1;
        orders.pay_sum += offer.earnings_cents as f64;
        // One dasher per order instead, from the same starting point.
        let start = self.drivers.index.get().position_at(offer.dasher, now)?;
        let bike = vehicle(2);
        for &i in &batch.orders {
            let s = &orders.orders[i as usize].src;
            let (p, d) = (lonlat(s.pickup), lonlat(s.dropoff));
            orders.report.solo_km += (orders.eta.leg(start, p, bike).metres
                + orders.eta.leg(p, d, bike).metres)
                / 1000.0;
        }
        orders.report.batched_km += offer.metres / 1000.0;
        // The route on the timeline: the dasher waits at a restaurant until
        // the food is ready (plus the pickup overhead).
        let overhead_ms = orders.eta.pickup_overhead_secs(bike) * 1000.0;
        let (mut t, mut prev) = (ms as f64, 0.0);
        for stop in &offer.route.stops {
            let arrive = t + (stop.done_after_secs - prev) * 1000.0;
            prev = stop.done_after_secs;
            let src = &orders.orders[stop.order.0 as usize].src;
            match stop.kind {
                StopKind::Pickup => {
                    t = arrive.max(src.ready_at.as_millis() as f64 + overhead_ms);
                }
                StopKind::Dropoff => {
                    t = arrive;
                    self.queue
                        .push(t.ceil() as u64, Event::Delivered(stop.order.0 as u32));
                }
            }
        }
        self.queue.push(t.ceil() as u64, Event::BatchDone(b));
        Ok(())
    }

    pub fn delivered(&mut self, o: u32, ms: u64) -> Result<(), Box<dyn std::error::Error>> {
        let orders = &mut self.orders;
        let x = &mut orders.orders[o as usize];
        let total = x.total.ok_or("a delivery without a total")?;
        let t = Instant::now();
        let mut c = total.capture()?;
        let id = x.src.id;
        if id % 300 == 7 {
            c.refund_all();
            orders.report.refunds_full += 1;
        } else if id % 50 == 3 {
            // A missing item: a quarter back, reversed across the parties.
            let quarter = c.captured().mul_bps(Bps(2_500), Rounding::HalfEven)?;
            c.refund(quarter)?;
            orders.report.refunds_partial += 1;
        }
        self.ledger.book(Kind::Order, &c)?;
        orders.capture_latency.record(t.elapsed());
        x.state = State::Delivered;
        orders.report.delivered += 1;
        orders.delivery_mins_sum += (ms as f64 - x.src.placed_at.as_millis() as f64) / 60_000.0;
        Ok(())
    }

    /// The dasher of batch `b` is done: its load goes down (and it is
    /// available again if it was full).
    pub fn batch_done(&mut self, b: u32, ms: u64) -> Result<(), Box<dyn std::error::Error>> {
        let batch = &self.orders.batches[b as usize];
        let (Some(dasher), k) = (batch.dasher, batch.orders.len() as u8) else {
            return Ok(());
        };
        if !self.open {
            return Ok(());
        }
        let now = self.at(ms);
        let r = self.drivers.index.get().release_load_at(
            dasher,
            k,
            Status::BUSY,
            Status::AVAILABLE,
            now,
        );
        match r {
            Ok(_) | Err(GeoError::UnknownDriver(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// End of the stretch: orders not batched yet and batches still
    /// offered are not served.
    pub fn close_orders(&mut self) -> Result<(), Box<dyn std::error::Error>> {
        let orders = &mut self.orders;
        for i in std::mem::take(&mut orders.pending) {
            let x = &mut orders.orders[i as usize];
            x.state = State::WaitingAtEnd;
            orders.report.waiting_at_end += 1;
            release_promo(&self.markets, x)?;
        }
        for batch in &mut orders.batches {
            if batch.matching.take().is_some() {
                orders.report.open_batches_at_end += 1;
                for &i in &batch.orders {
                    let x = &mut orders.orders[i as usize];
                    x.state = State::UnservedAtEnd;
                    orders.report.unserved_at_end += 1;
                    release_promo(&self.markets, x)?;
                }
            }
        }
        Ok(())
    }
}

fn release_promo(markets: &crate::markets::Markets, x: &mut Placed) -> Result<(), PricingError> {
    if let (Some(sel), Some(t)) = (x.promo.take(), x.total) {
        markets.promos(t.total().currency()).release(sel)?;
    }
    Ok(())
}
