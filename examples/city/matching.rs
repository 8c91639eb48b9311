//! Stage 3: matching (issue 7) on the live index of stage 2.
//!
//! 1. A stream of ride requests, matched one by one as event-driven state
//!    machines (offers to the 3 best ETAs, accept / decline / 30 s timeout
//!    with radius expansion). Drivers answer deterministically from the
//!    seed: 55 % accept, 30 % decline, 15 % never answer, after 2–21 s.
//!    The index stays live: every driver reports every 12 s meanwhile
//!    (stage 2 runs the 4 s cadence; 12 s stays within the 30 s TTL at a
//!    third of the cost).
//! 2. One batch window of waiting riders in the busiest metro assigned
//!    globally: exact (minimum total ETA) against greedy.
//! 3. Delivery orders batched (≤ 3, 10 min slack) and offered to dashers
//!    (top 5, with pay, distance and time); km saved by batching against
//!    one order per dasher.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::time::{Duration, Instant};

use dispatchkit::geo::{
    DriverId, DriverUpdate, Filter, Rating, Search, Unit, VehicleSet, VehicleType,
};
use dispatchkit::matching::{
    BatchingConfig, DasherConfig, DasherMatcher, DasherStatus, DriverSpot, EtaModel, HaversineEta,
    Order, OrderId, RideConfig, RideMatch, RideMatcher, RideRequest, RideStatus, RideStep, RiderId,
    UnmatchedReason, assign_greedy, assign_optimal, batch_orders, eta_costs,
};
use dispatchkit::workload::{Fleet, OrderConfig, OrderStream, QueryStream, UpdateStream};

use crate::args::Options;
use crate::geo::{BATCH, Geo, lonlat};
use crate::report::{Section, rate};

/// Vehicle types of stage 2: 0 car, 1 XL, 2 bike.
fn vehicle(t: u8) -> VehicleType {
    VehicleType::new(t).expect("0..3 are valid")
}

/// The ETA model of the city: cars and XLs 30 km/h, bikes 15 km/h,
/// circuity 1.3, 60 s at each pickup.
fn eta_model() -> Result<HaversineEta, Box<dyn std::error::Error>> {
    Ok(HaversineEta::new(1.3, 30.0, Duration::from_secs(60))?.with_speed_kmh(vehicle(2), 15.0)?)
}

/// Interval of the location-update rounds during the ride simulation.
const UPDATE_MS: u64 = 12_000;

/// A deterministic hash of the seed and two ids.
fn mix(seed: u64, a: u64, b: u64) -> u64 {
    let mut x =
        seed ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    x ^= x >> 33;
    x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    x ^= x >> 33;
    x
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// Every driver reports its position (every `UPDATE_MS`).
    Updates,
    /// Rider `r` opens the app.
    Arrive(usize),
    /// Driver answers rider `r`: accept or decline.
    Answer(usize, u64, bool),
    /// Rider `r`'s round deadline (ms since the stage start).
    Deadline(usize, u64),
}

struct Sim<'a> {
    opts: &'a Options,
    geo: &'a Geo,
    matcher: RideMatcher<HaversineEta>,
    queue: BinaryHeap<Reverse<(u64, u64, Event)>>,
    seq: u64,
    matches: Vec<Option<RideMatch>>,
    arrived_ms: Vec<u64>,
    matched_ms: Vec<u64>,
    lost_races: usize,
    events: usize,
    matcher_secs: f64,
}

impl Sim<'_> {
    fn at(&self, ms: u64) -> Instant {
        self.geo.now + Duration::from_millis(ms)
    }

    fn push(&mut self, ms: u64, e: Event) {
        self.seq += 1;
        self.queue.push(Reverse((ms, self.seq, e)));
    }

    /// Schedules the answers to new offers and the round's deadline.
    fn schedule(&mut self, r: usize, step: &RideStep, now_ms: u64) {
        for o in &step.offers {
            let h = mix(self.opts.seed, r as u64, o.driver.0);
            let delay = 2_000 + (h >> 8) % 20_000;
            match h % 100 {
                0..55 => self.push(now_ms + delay, Event::Answer(r, o.driver.0, true)),
                55..85 => self.push(now_ms + delay, Event::Answer(r, o.driver.0, false)),
                _ => {}
            }
        }
        if let Some(first) = step.offers.first() {
            let dl = (first.expires_at - self.geo.now).as_millis() as u64;
            self.push(dl, Event::Deadline(r, dl));
        }
        if let Some(d) = step.lost_race {
            let _ = d;
            self.lost_races += 1;
        }
        if matches!(step.status, RideStatus::Assigned { .. }) {
            self.matched_ms[r] = now_ms;
        }
    }
}

pub fn run(
    opts: &Options,
    fleet: &Fleet,
    geo: &Geo,
    updates: &mut UpdateStream,
) -> Result<Section, Box<dyn std::error::Error>> {
    let mut s = Section::new("matching: rides, global assignment, delivery batching");
    let eta = eta_model()?;

    // ---------------------------------------------------------- 1. rides
    let n = if opts.quick { 2_000 } else { 20_000 };
    let window_ms = 30_000u64;
    let car = VehicleSet::of(&[vehicle(0)]);
    let xl = VehicleSet::of(&[vehicle(1)]);
    let requests: Vec<RideRequest> = QueryStream::new(fleet.config(), opts.seed ^ 0x7)?
        .pickups(n)
        .into_iter()
        .enumerate()
        .map(|(i, p)| RideRequest {
            rider: RiderId(i as u64),
            pickup: lonlat(p.point),
            vehicles: if i % 10 == 0 { xl } else { car },
        })
        .collect();
    let mut sim = Sim {
        opts,
        geo,
        matcher: RideMatcher::new(RideConfig::default(), eta.clone())?,
        queue: BinaryHeap::new(),
        seq: 0,
        matches: vec![None; n],
        arrived_ms: vec![0; n],
        matched_ms: vec![0; n],
        lost_races: 0,
        events: 0,
        matcher_secs: 0.0,
    };
    for i in 0..n {
        sim.push(i as u64 * window_ms / n as u64, Event::Arrive(i));
    }
    sim.push(UPDATE_MS, Event::Updates);
    let mut round = Vec::new();
    let mut batch = Vec::with_capacity(BATCH);
    let mut pending = n;
    let mut finished = vec![false; n];
    let mut last_update_ms = 0;
    let wall = Instant::now();
    while let Some(Reverse((ms, _, e))) = sim.queue.pop() {
        let now = sim.at(ms);
        match e {
            Event::Updates => {
                // Keep the index live while any ride is still matching.
                updates.round(&mut round);
                for chunk in round.chunks(BATCH) {
                    batch.clear();
                    batch.extend(
                        chunk.iter().map(|u| {
                            DriverUpdate::new(DriverId(u.driver), lonlat(u.position), now)
                        }),
                    );
                    geo.index.upsert_batch_at(&batch, now);
                }
                last_update_ms = ms;
                if pending > 0 {
                    sim.push(ms + UPDATE_MS, Event::Updates);
                }
                continue;
            }
            Event::Arrive(r) => {
                let t = Instant::now();
                let (m, step) = sim.matcher.start_at(&geo.index, requests[r], now)?;
                sim.matcher_secs += t.elapsed().as_secs_f64();
                sim.arrived_ms[r] = ms;
                sim.schedule(r, &step, ms);
                sim.matches[r] = Some(m);
            }
            Event::Answer(r, d, accept) => {
                let Some(mut m) = sim.matches[r].take() else {
                    continue;
                };
                let open = m.open_offers().iter().any(|o| o.driver.0 == d);
                if open && m.deadline().is_some_and(|dl| now < dl) {
                    let t = Instant::now();
                    let step = if accept {
                        sim.matcher
                            .accept_at(&geo.index, &mut m, DriverId(d), now)?
                    } else {
                        sim.matcher
                            .decline_at(&geo.index, &mut m, DriverId(d), now)?
                    };
                    sim.matcher_secs += t.elapsed().as_secs_f64();
                    sim.schedule(r, &step, ms);
                }
                sim.matches[r] = Some(m);
            }
            Event::Deadline(r, dl) => {
                let Some(mut m) = sim.matches[r].take() else {
                    continue;
                };
                if m.deadline() == Some(sim.at(dl)) {
                    let t = Instant::now();
                    let step = sim.matcher.tick_at(&geo.index, &mut m, now)?;
                    sim.matcher_secs += t.elapsed().as_secs_f64();
                    sim.schedule(r, &step, ms);
                }
                sim.matches[r] = Some(m);
            }
        }
        sim.events += 1;
        if let Event::Arrive(r) | Event::Answer(r, ..) | Event::Deadline(r, _) = e
            && sim.matches[r]
                .as_ref()
                .is_some_and(|m| m.status().is_final())
            && !std::mem::replace(&mut finished[r], true)
        {
            pending -= 1;
        }
    }
    let sim_secs = wall.elapsed().as_secs_f64();
    let (mut assigned, mut eta_sum, mut wait_sum, mut expanded) = (0usize, 0.0, 0.0, 0usize);
    let (mut no_drivers, mut nobody) = (0usize, 0usize);
    for (r, m) in sim.matches.iter().enumerate() {
        let Some(m) = m else { continue };
        match m.status() {
            RideStatus::Assigned { eta, .. } => {
                assigned += 1;
                eta_sum += eta.as_secs_f64();
                wait_sum += (sim.matched_ms[r] - sim.arrived_ms[r]) as f64 / 1000.0;
                expanded += usize::from(m.radius_step() > 0);
            }
            RideStatus::Unmatched {
                reason: UnmatchedReason::NoDriversInRange,
                ..
            } => no_drivers += 1,
            RideStatus::Unmatched { .. } => nobody += 1,
            RideStatus::Offering => {}
        }
    }
    s.metric(
        "ride requests",
        format!(
            "{n} over 30 s; {:.0} s simulated in {:.2} s",
            last_update_ms as f64 / 1000.0,
            sim_secs
        ),
    );
    s.metric(
        "match rate",
        format!(
            "{:.1} % ({assigned} assigned; {nobody} nobody accepted, {no_drivers} no driver within 10 km)",
            100.0 * assigned as f64 / n as f64
        ),
    );
    s.metric(
        "mean pickup ETA / time to accept",
        format!(
            "{:.0} s / {:.1} s ({:.1} % after widening to 10 km)",
            eta_sum / assigned.max(1) as f64,
            wait_sum / assigned.max(1) as f64,
            100.0 * expanded as f64 / assigned.max(1) as f64
        ),
    );
    s.metric(
        "claims lost to another rider",
        format!("{}", sim.lost_races),
    );
    s.metric(
        "matcher calls",
        format!(
            "{} at {} (search + ETA + rank per call)",
            sim.events,
            rate(sim.events, sim.matcher_secs)
        ),
    );
    let now = sim.at(last_update_ms);

    // ------------------------------------------------ 2. global assignment
    let riders_n = if opts.quick { 200 } else { 1_000 };
    let waiting: Vec<RideRequest> = QueryStream::new(fleet.config(), opts.seed ^ 0xB)?
        .filter(|p| p.metro == 0)
        .take(riders_n)
        .enumerate()
        .map(|(i, p)| RideRequest {
            rider: RiderId(i as u64),
            pickup: lonlat(p.point),
            vehicles: car,
        })
        .collect();
    let filter = Filter::available()
        .min_rating(Rating::from_hundredths(451)?)
        .vehicles(car);
    let mut seen = HashSet::new();
    let mut spots = Vec::new();
    for r in &waiting {
        let q = Search::radius(r.pickup, 5.0, Unit::Kilometers)
            .count(20)
            .filter(filter);
        for h in geo.index.search_at(&q, now)? {
            if seen.insert(h.id) {
                spots.push(DriverSpot::from(&h));
            }
        }
    }
    let costs = eta_costs(&eta, &waiting, &spots, 5.0)?;
    let t = Instant::now();
    let exact = assign_optimal(&costs);
    let exact_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let greedy = assign_greedy(&costs);
    let greedy_ms = t.elapsed().as_secs_f64() * 1e3;
    let mean = |a: &dispatchkit::matching::Assignment| a.total_cost / a.pairs.len().max(1) as f64;
    s.metric(
        "batch window (New York)",
        format!(
            "{} riders x {} nearby drivers, {} edges",
            waiting.len(),
            spots.len(),
            costs.edges()
        ),
    );
    s.metric(
        "  exact (min total ETA)",
        format!(
            "{} served, mean ETA {:.1} s, {:.1} ms",
            exact.pairs.len(),
            mean(&exact),
            exact_ms
        ),
    );
    s.metric(
        "  greedy (cheapest first)",
        format!(
            "{} served, mean ETA {:.1} s, {:.1} ms",
            greedy.pairs.len(),
            mean(&greedy),
            greedy_ms
        ),
    );

    // -------------------------------------------------------- 3. delivery
    let window = Duration::from_secs(if opts.quick { 10 } else { 60 });
    let orders: Vec<Order> = OrderStream::new(
        fleet.config(),
        &OrderConfig {
            seed: opts.seed ^ 0xD,
            ..OrderConfig::default()
        },
    )?
    .until(window)
    .into_iter()
    .map(|o| Order {
        id: OrderId(o.id),
        pickup: lonlat(o.pickup),
        dropoff: lonlat(o.dropoff),
    })
    .collect();
    let t = Instant::now();
    let batches = batch_orders(&eta, &orders, &BatchingConfig::default())?;
    let batch_ms = t.elapsed().as_secs_f64() * 1e3;
    let mut sizes = [0usize; 4];
    let mut saved_secs = 0.0;
    for b in &batches {
        sizes[b.orders.len()] += 1;
        saved_secs += b.saved_secs();
    }
    s.metric(
        "delivery orders batched",
        format!(
            "{} orders ({:.0} s of arrivals) into {} batches in {:.0} ms",
            orders.len(),
            window.as_secs_f64(),
            batches.len(),
            batch_ms
        ),
    );
    s.metric(
        "batch sizes 1 / 2 / 3",
        format!(
            "{} / {} / {} (mean {:.2} orders; {:.0} s saved per multi-order batch)",
            sizes[1],
            sizes[2],
            sizes[3],
            orders.len() as f64 / batches.len().max(1) as f64,
            saved_secs / (sizes[2] + sizes[3]).max(1) as f64
        ),
    );
    let dashers = DasherMatcher::new(DasherConfig::default(), eta.clone())?;
    let (mut served, mut solo_m, mut batched_m, mut pay) = (0usize, 0.0, 0.0, 0i64);
    let t = Instant::now();
    for (bi, b) in batches.iter().enumerate() {
        let os: Vec<Order> = b.orders.iter().map(|&i| orders[i]).collect();
        let (mut m, _) = dashers.start_at(&geo.index, &os, now)?;
        // Dashers answer in rank order: 60 % accept.
        while let DasherStatus::Offering = m.status() {
            let o = m.open_offers()[0].clone();
            if mix(opts.seed, bi as u64, o.dasher.0) % 100 < 60 {
                dashers.accept_at(&geo.index, &mut m, o.dasher, now)?;
            } else {
                dashers.decline_at(&geo.index, &mut m, o.dasher, now)?;
            }
        }
        if let DasherStatus::Assigned(o) = m.status() {
            served += b.orders.len();
            batched_m += o.metres;
            pay += o.earnings_cents;
            let at = geo.index.position_at(o.dasher, now)?;
            let v = geo.index.get_at(o.dasher, now)?.attrs.vehicle;
            for ord in &os {
                solo_m +=
                    eta.leg(at, ord.pickup, v).metres + eta.leg(ord.pickup, ord.dropoff, v).metres;
            }
        }
    }
    let dasher_secs = t.elapsed().as_secs_f64();
    s.metric(
        "dasher offers (top 5, 20 s)",
        format!(
            "{:.1} % of orders placed, {} batches at {}, mean pay {:.2}",
            100.0 * served as f64 / orders.len().max(1) as f64,
            batches.len(),
            rate(batches.len(), dasher_secs),
            pay as f64 / 100.0 / batches.len().max(1) as f64
        ),
    );
    s.metric(
        "km: batched vs one per dasher",
        format!(
            "{:.0} km vs {:.0} km: {:.0} km saved ({:.1} %)",
            batched_m / 1000.0,
            solo_m / 1000.0,
            (solo_m - batched_m) / 1000.0,
            100.0 * (solo_m - batched_m) / solo_m.max(1.0)
        ),
    );
    Ok(s)
}
