//! The timeline: one simulated stretch of platform time, event-driven and
//! deterministic for a seed.
//!
//! Time advances in 4 s rounds. Before round `r` (at `4r` s) every event
//! earlier than it is handled in time order (ties in scheduling order):
//! arrivals of ride requests and delivery orders, driver and dasher
//! answers, offer deadlines, trip ends, deliveries, the 30 s batch windows
//! and the minute's surge recompute; events see the index as of the
//! previous round. Then every driver reports its position (round `r`,
//! applied on two threads). After the last round the books are closed:
//! no new demand and no more location updates; offers still open are
//! withdrawn, and trips and deliveries already assigned run to completion
//! on the timeline so that every accepted ride and order is settled.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use dispatchkit::geo::Filter;
use dispatchkit::matching::HaversineEta;
use dispatchkit::workload::METROS;
use indicatif::{ProgressBar, ProgressStyle};

use crate::args::Options;
use crate::fleet::{Drivers, ROUND_SECS, ride_vehicles, vehicle};
use crate::ledger::Ledger;
use crate::markets::Markets;
use crate::orders::Orders;
use crate::policy::{Gateway, USERS_PER_DRIVER};
use crate::report::{self, Report};
use crate::rides::Rides;
use crate::stores::Stores;
use crate::surge::Surge;

/// The seed's peak rates for its 10M drivers: 3,000 ride requests/s (its
/// 50M rides/day average 579/s) and 1,500 delivery orders/s (20M
/// orders/day average 231/s). The stretch runs at peak, scaled to the
/// simulated fleet.
pub const PEAK_RIDES_PER_SEC: f64 = 3_000.0;
pub const PEAK_ORDERS_PER_SEC: f64 = 1_500.0;
pub const SEED_DRIVERS: f64 = 10_000_000.0;

/// Something that happens at a simulated time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Event {
    /// Ride request `ride` arrives at the gateway.
    RideRequest(u32),
    /// A driver answers an offer of `ride`.
    RideAnswer {
        ride: u32,
        driver: u64,
        accept: bool,
    },
    /// The round of offers of `ride` lapses (if this is still its deadline).
    RideDeadline(u32),
    /// The rider cancels after assignment.
    RideCancel(u32),
    /// The trip of `ride` ends at the drop-off.
    TripEnd(u32),
    /// Delivery order `order` is placed.
    OrderPlaced(u32),
    /// Orders placed since the last window are batched and offered.
    BatchWindow,
    /// A dasher answers an offer of `batch`.
    DasherAnswer {
        batch: u32,
        dasher: u64,
        accept: bool,
    },
    /// The round of offers of `batch` lapses.
    DasherDeadline(u32),
    /// Order `order` reaches its customer.
    Delivered(u32),
    /// The dasher of `batch` finished its last drop-off.
    BatchDone(u32),
    /// Surge recompute and write-behind flush.
    Minute(u32),
}

/// Events ordered by time (ms since the start), then scheduling order.
#[derive(Debug, Default)]
pub struct Queue {
    heap: BinaryHeap<Reverse<(u64, u64, Event)>>,
    seq: u64,
    pub handled: u64,
}

impl Queue {
    pub fn push(&mut self, ms: u64, e: Event) {
        self.seq += 1;
        self.heap.push(Reverse((ms, self.seq, e)));
    }

    fn pop_before(&mut self, end_ms: u64) -> Option<(u64, Event)> {
        match self.heap.peek() {
            Some(Reverse((ms, _, _))) if *ms < end_ms => {
                self.heap.pop().map(|Reverse((ms, _, e))| (ms, e))
            }
            _ => None,
        }
    }
}

/// Every service of the platform, and the simulation's state.
pub struct World {
    pub opts: Options,
    pub t0: Instant,
    pub drivers: Drivers,
    pub gateway: Gateway,
    pub stores: Stores,
    pub markets: Markets,
    pub surge: Surge,
    pub ledger: Ledger,
    pub eta: HaversineEta,
    pub queue: Queue,
    pub rides: Rides,
    pub orders: Orders,
    /// False once the stretch is over: the index is no longer written.
    pub open: bool,
    /// End of the stretch, ms.
    pub end_ms: u64,
}

impl World {
    /// The instant `ms` after the start.
    pub fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    fn handle(&mut self, ms: u64, e: Event) -> Result<(), Box<dyn std::error::Error>> {
        self.queue.handled += 1;
        match e {
            Event::RideRequest(r) => self.ride_request(r, ms),
            Event::RideAnswer {
                ride,
                driver,
                accept,
            } => self.ride_answer(ride, driver, accept, ms),
            Event::RideDeadline(r) => self.ride_deadline(r, ms),
            Event::RideCancel(r) => self.ride_cancel(r, ms),
            Event::TripEnd(r) => self.trip_end(r, ms),
            Event::OrderPlaced(o) => self.order_placed(o, ms),
            Event::BatchWindow => self.batch_window(ms),
            Event::DasherAnswer {
                batch,
                dasher,
                accept,
            } => self.dasher_answer(batch, dasher, accept, ms),
            Event::DasherDeadline(b) => self.dasher_deadline(b, ms),
            Event::Delivered(o) => self.delivered(o, ms),
            Event::BatchDone(b) => self.batch_done(b, ms),
            Event::Minute(m) => {
                let now = self.at(ms);
                self.surge.recompute(&self.drivers.index, now, m)?;
                self.stores.flush()?;
                Ok(())
            }
        }
    }
}

/// What a run produces.
pub struct Outcome {
    pub report: Report,
    pub svg: String,
}

/// Runs the simulation described by `opts`.
pub fn run(opts: &Options) -> Result<Outcome, Box<dyn std::error::Error>> {
    let wall = Instant::now();
    let t0 = Instant::now();
    let drivers = Drivers::load(opts, t0)?;
    let users = (opts.drivers as u64 * USERS_PER_DRIVER).max(10);
    let scale = opts.drivers as f64 / SEED_DRIVERS;
    let rides_per_sec = PEAK_RIDES_PER_SEC * scale;
    let orders_per_sec = PEAK_ORDERS_PER_SEC * scale;
    let eta =
        HaversineEta::new(1.3, 30.0, Duration::from_secs(60))?.with_speed_kmh(vehicle(2), 15.0)?;
    let rounds = u64::from(opts.minutes) * 60 / ROUND_SECS;
    let end_ms = rounds * ROUND_SECS * 1000;
    let mut w = World {
        opts: opts.clone(),
        t0,
        gateway: Gateway::new(users, t0)?,
        stores: Stores::new()?,
        markets: Markets::new()?,
        surge: Surge::new()?,
        ledger: Ledger::default(),
        rides: Rides::new(opts, &drivers.fleet, users, rides_per_sec, eta.clone())?,
        orders: Orders::new(opts, &drivers.fleet, users, orders_per_sec, eta.clone())?,
        eta,
        drivers,
        queue: Queue::default(),
        open: true,
        end_ms,
    };
    for m in 1..=opts.minutes {
        w.queue.push(u64::from(m) * 60_000, Event::Minute(m));
    }
    let mut ms = crate::orders::BATCH_WINDOW_MS;
    while ms < end_ms {
        w.queue.push(ms, Event::BatchWindow);
        ms += crate::orders::BATCH_WINDOW_MS;
    }
    let setup_secs = wall.elapsed().as_secs_f64();

    let bar = if opts.progress {
        let b = ProgressBar::new(rounds);
        b.set_style(ProgressStyle::with_template(
            "{elapsed:>4} [{bar:30}] {pos}/{len} rounds  {msg}",
        )?);
        b
    } else {
        ProgressBar::hidden()
    };
    let mut events_secs = 0.0;
    for r in 1..=rounds {
        let round_ms = r * ROUND_SECS * 1000;
        let e = Instant::now();
        w.arrivals(round_ms - ROUND_SECS * 1000, round_ms)?;
        while let Some((ms, ev)) = w.queue.pop_before(round_ms) {
            w.handle(ms, ev)?;
        }
        events_secs += e.elapsed().as_secs_f64();
        let at = w.at(round_ms);
        w.drivers.round(at)?;
        bar.inc(1);
        if r % 5 == 0 || r == rounds {
            bar.set_message(format!(
                "t={}:{:02}  rides {}  orders {}  trips done {}",
                round_ms / 60_000,
                round_ms / 1000 % 60,
                report::group(w.rides.report.requests),
                report::group(w.orders.report.orders),
                report::group(w.rides.report.completed)
            ));
        }
    }
    // Events at the last round's time see that round.
    let e = Instant::now();
    while let Some((ms, ev)) = w.queue.pop_before(end_ms + 1) {
        w.handle(ms, ev)?;
    }
    events_secs += e.elapsed().as_secs_f64();
    bar.finish_and_clear();

    // Closing the books.
    let c = Instant::now();
    let now = w.at(end_ms);
    let mut available = 0u64;
    let filter = Filter::available().vehicles(ride_vehicles());
    let online = w
        .drivers
        .index
        .for_each_matching_at(now, &filter, |_| available += 1)? as u64;
    w.open = false;
    w.close_rides()?;
    w.close_orders()?;
    while let Some((ms, ev)) = w.queue.pop_before(u64::MAX) {
        match ev {
            Event::TripEnd(_)
            | Event::RideCancel(_)
            | Event::Delivered(_)
            | Event::BatchDone(_) => w.handle(ms, ev)?,
            // Answers and deadlines of withdrawn offers.
            _ => {}
        }
    }
    let closing_secs = c.elapsed().as_secs_f64();

    let o = Instant::now();
    let mut report = w.report(online, available)?;
    let svg = crate::map::draw(&w, &mut report.map);
    let output_secs = o.elapsed().as_secs_f64();
    let wl = &mut report.wall;
    wl.setup_secs = setup_secs;
    wl.load_secs = w.drivers.load_secs;
    wl.update_generation_secs = w.drivers.gen_secs;
    wl.update_apply_secs = w.drivers.apply_secs;
    wl.updates_per_sec = w.drivers.applied as f64 / w.drivers.apply_secs.max(1e-9);
    wl.events_secs = events_secs;
    wl.closing_secs = closing_secs;
    wl.output_secs = output_secs;
    wl.total_secs = wall.elapsed().as_secs_f64();
    Ok(Outcome { report, svg })
}

impl World {
    /// Schedules the ride requests and orders arriving in `[from, to)` ms.
    fn arrivals(&mut self, from: u64, to: u64) -> Result<(), Box<dyn std::error::Error>> {
        for (ms, r) in self.rides.arrivals(from, to) {
            self.queue.push(ms, Event::RideRequest(r));
        }
        for (ms, o) in self.orders.arrivals(to) {
            self.queue.push(ms, Event::OrderPlaced(o));
        }
        Ok(())
    }

    /// Assembles the report (everything but the map and wall times).
    fn report(
        &mut self,
        online: u64,
        available: u64,
    ) -> Result<Report, Box<dyn std::error::Error>> {
        let o = &self.opts;
        let mut r = Report::default();
        let rounds = self.drivers.rounds;
        r.run = report::Run {
            seed: o.seed,
            drivers: o.drivers as u64,
            minutes: o.minutes,
            rounds,
            metro: METROS[o.metro].name.to_string(),
            quick: o.quick,
            rides_per_sec: self.rides.rate,
            orders_per_sec: self.orders.rate,
            crowd_rides_per_sec: self.rides.crowd_rate,
            backend: self.drivers.index.name().to_string(),
            scaling: format!(
                "demand at the seed's peak scaled to the fleet: {PEAK_RIDES_PER_SEC:.0} ride requests/s and \
                 {PEAK_ORDERS_PER_SEC:.0} orders/s for 10M drivers (its 50M rides/day and 20M orders/day average \
                 579/s and 231/s) x {} drivers / 10M = {:.1} rides/s and {:.1} orders/s, plus {:.1} rides/s \
                 from a stadium letting out in {} from 0:20; {} users (10 per driver)",
                report::group(o.drivers as u64),
                self.rides.rate,
                self.orders.rate,
                self.rides.crowd_rate,
                METROS[o.metro].name,
                report::group((o.drivers as u64 * USERS_PER_DRIVER).max(10)),
            ),
        };
        let per_metro = self.drivers.fleet.per_metro();
        r.fleet = report::Fleet {
            drivers: o.drivers as u64,
            loaded: self.drivers.loaded,
            location_updates: self.drivers.applied,
            stale_updates: self.drivers.stale,
            online_at_end: online,
            available_at_end: available,
            per_metro: METROS
                .iter()
                .zip(per_metro)
                .map(|(m, n)| (m.name.to_string(), n as u64))
                .collect(),
        };
        let g = &self.gateway;
        let denied: u64 = g.denied_by.values().sum();
        let mut by: Vec<(String, u64)> = g.denied_by.iter().map(|(k, v)| (k.clone(), *v)).collect();
        by.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        r.limiter = report::Limiter {
            requests: g.allowed + denied,
            allowed: g.allowed,
            denied,
            denied_by: by,
        };
        r.wall.limiter_states = g.states() as u64;
        r.caches = vec![
            crate::stores::tier_report(
                "rider profiles (L2 1 h, write-through)",
                &self.stores.profiles,
            ),
            crate::stores::tier_report(
                "restaurant menus (L2 30 min, write-behind)",
                &self.stores.menus,
            ),
        ];
        r.rides = self.rides.summary();
        r.deliveries = self.orders.summary();
        r.surge = self.surge_report();
        r.ledger = self.ledger.books();

        let mut stages = vec![
            self.drivers.batch_latency.stage(
                "geo: upsert_batch_at (4096 updates)",
                "updates/s",
                crate::fleet::BATCH as u64,
            ),
            self.gateway
                .latency
                .stage("ratelimit: check_all_at (user + IP)", "checks/s", 1),
            self.stores
                .profiles
                .latency
                .stage("cache: rider profile get_at", "gets/s", 1),
            self.stores
                .menus
                .latency
                .stage("cache: menu get_at", "gets/s", 1),
            self.surge
                .record_latency
                .stage("pricing: record_request_at", "requests/s", 1),
            self.surge
                .lookup_latency
                .stage("pricing: SurgeMap::multiplier_at", "lookups/s", 1),
            self.surge.recompute_latency.stage(
                "pricing: surge recompute_at (index)",
                "recomputes/s",
                1,
            ),
        ];
        stages.extend(self.rides.stages());
        stages.extend(self.orders.stages());
        // The batch stage counts updates, not calls.
        if let Some(s) = stages.first_mut() {
            s.items = self.drivers.applied;
            s.items_per_sec = s.items as f64 / s.secs.max(1e-9);
        }
        r.wall.stages = stages;
        Ok(r)
    }

    fn surge_report(&self) -> report::Surge {
        let map = &self.surge.map;
        report::Surge {
            recomputes: self.surge.minutes.clone(),
            distribution: map
                .distribution()
                .into_iter()
                .map(|(m, n)| (m.to_string(), n as u64))
                .collect(),
            hottest: map
                .hottest(5)
                .into_iter()
                .map(|(cell, c)| {
                    let ll = dispatchkit::pricing::h3o::LatLng::from(cell);
                    (
                        cell.to_string(),
                        crate::rides::metro_of(geo::Point::new(ll.lng(), ll.lat()))
                            .map_or("-", |m| METROS[m].name)
                            .to_string(),
                        c.ratio_milli as f64 / 1000.0,
                        c.demand,
                        c.supply,
                        c.multiplier.to_string(),
                    )
                })
                .collect(),
            quotes_surged: self.rides.report.surged,
        }
    }
}
