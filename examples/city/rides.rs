//! Ride requests, end to end: rate-limit policy → rider profile through
//! the tiered cache → upfront quote at the live surge → ride matching
//! against the live index (drivers answer deterministically from the
//! seed: accept, decline or let the 30 s offer lapse) → the trip → final
//! fare from its GPS trace → exact split into the ledger.

use std::time::{Duration, Instant};

use dispatchkit::geo::{DriverId, GeoError, Status, VehicleSet};
use dispatchkit::matching::{
    EtaModel, HaversineEta, RideConfig, RideMatch, RideMatcher, RideRequest, RideStatus, RideStep,
    RiderId, UnmatchedReason,
};
use dispatchkit::pricing::{
    Capture, Fare, Money, PricingError, Redemption, Rounding, RouteEstimate, TracePoint,
    TraceRules, UserId, measure_trace,
};
use dispatchkit::workload::{Fleet, METROS, QueryStream, ZipfKeys};
use geo::{Distance, Haversine, Point};

use crate::args::Options;
use crate::fleet::{lonlat, vehicle};
use crate::ledger::Kind;
use crate::markets::DRIVER_SHARE;
use crate::offers;
use crate::policy::RIDES;
use crate::report::{self, Latencies, Stage};
use crate::sim::{Event, World};
use crate::stores::{Profile, Synthesise};
use crate::trace::{Trip, mix};

/// The stadium crowd starts leaving at 0:20 and asks for rides at a sixth
/// of the city-wide rate, within about a kilometre of the venue.
pub const CROWD_START_MS: u64 = 20_000;
const CROWD_SHARE: f64 = 1.0 / 6.0;
/// Routes drawn on the map.
pub const MAP_ROUTES: usize = 12;

/// The venue of metro `m`: 3.5 km north and 3.5 km west of the centre.
pub fn venue(m: usize) -> Point<f64> {
    let c = METROS[m].centre();
    let m_per_deg = 111_195.0;
    Point::new(
        c.x() - 3_500.0 / (m_per_deg * c.y().to_radians().cos()),
        c.y() + 3_500.0 / m_per_deg,
    )
}

/// The metro whose centre is nearest to `p`, if one is within 100 km.
pub fn metro_of(p: Point<f64>) -> Option<usize> {
    METROS
        .iter()
        .enumerate()
        .map(|(i, m)| (Haversine.distance(p, m.centre()), i))
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .filter(|(d, _)| *d < 100_000.0)
        .map(|(_, i)| i)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Requested,
    Denied,
    Matching,
    Unmatched,
    Assigned,
    Cancelled,
    Completed,
    OpenAtEnd,
}

#[derive(Debug)]
struct Ride {
    rider: u64,
    metro: u8,
    product: u8,
    pickup: Point<f64>,
    dropoff: Point<f64>,
    requested_ms: u64,
    quote: Option<Fare>,
    promo: Option<Redemption>,
    matching: Option<RideMatch>,
    driver: Option<DriverId>,
    state: State,
}

/// The ride side's state and counters.
pub struct Rides {
    /// Requests per second city-wide and from the crowd.
    pub rate: f64,
    pub crowd_rate: f64,
    seed: u64,
    map_metro: usize,
    matcher: RideMatcher<HaversineEta>,
    pickups: QueryStream,
    crowd_pickups: QueryStream,
    riders: ZipfKeys,
    last_pickup: Vec<Option<Point<f64>>>,
    issued: u64,
    crowd_issued: u64,
    rides: Vec<Ride>,
    trace: Vec<TracePoint>,
    rules: TraceRules,
    /// Driver → pickup → street corner → drop-off of a few rides in the
    /// map's metro.
    pub routes: Vec<[Point<f64>; 4]>,
    pub report: report::Rides,
    eta_sum: f64,
    wait_sum: f64,
    km_sum: f64,
    quote_error_sum: f64,
    quote_latency: Latencies,
    match_latency: Latencies,
    final_latency: Latencies,
}

impl Rides {
    pub fn new(
        opts: &Options,
        fleet: &Fleet,
        users: u64,
        rate: f64,
        eta: HaversineEta,
    ) -> Result<Self, Box<dyn std::error::Error>> {
        Ok(Self {
            rate,
            crowd_rate: rate * CROWD_SHARE,
            seed: opts.seed,
            map_metro: opts.metro,
            matcher: RideMatcher::new(RideConfig::default(), eta)?,
            pickups: QueryStream::new(fleet.config(), opts.seed ^ 0x8)?,
            crowd_pickups: QueryStream::new(fleet.config(), opts.seed ^ 0xC0)?,
            riders: ZipfKeys::new(users, 1.0, opts.seed ^ 0x9)?,
            last_pickup: vec![None; METROS.len()],
            issued: 0,
            crowd_issued: 0,
            rides: Vec::new(),
            trace: Vec::new(),
            rules: TraceRules::default(),
            routes: Vec::new(),
            report: report::Rides::default(),
            eta_sum: 0.0,
            wait_sum: 0.0,
            km_sum: 0.0,
            quote_error_sum: 0.0,
            quote_latency: Latencies::default(),
            match_latency: Latencies::default(),
            final_latency: Latencies::default(),
        })
    }

    /// The ride requests arriving in `[from, to)` ms, evenly spaced at the
    /// city-wide rate plus the crowd's: (time, ride index).
    pub fn arrivals(&mut self, from: u64, to: u64) -> Vec<(u64, u32)> {
        let mut out = Vec::new();
        let at = |k: u64, start: u64, rate: f64| start + (k as f64 * 1000.0 / rate).ceil() as u64;
        while at(self.issued, 0, self.rate) < to {
            let ms = at(self.issued, 0, self.rate).max(from);
            let p = self.pickups.next_pickup();
            let m = usize::from(p.metro);
            // The drop-off: a third of the way to the previous pickup of
            // the metro (about 5 km on average).
            let prev = self.last_pickup[m]
                .replace(p.point)
                .unwrap_or(METROS[m].centre());
            let dropoff = Point::new(
                p.point.x() + (prev.x() - p.point.x()) / 3.0,
                p.point.y() + (prev.y() - p.point.y()) / 3.0,
            );
            out.push((ms, self.push(p.metro, p.point, dropoff, ms)));
            self.issued += 1;
        }
        while to > CROWD_START_MS && at(self.crowd_issued, CROWD_START_MS, self.crowd_rate) < to {
            let ms = at(self.crowd_issued, CROWD_START_MS, self.crowd_rate).max(from);
            // A pickup of the metro's cloud pulled to within about a
            // kilometre of the venue; the rider goes home to the unpulled
            // point.
            let m = self.map_metro;
            let home = loop {
                let p = self.crowd_pickups.next_pickup();
                if usize::from(p.metro) == m {
                    break p.point;
                }
            };
            let (v, c, f) = (venue(m), METROS[m].centre(), 0.08);
            let pickup = Point::new(
                v.x() + (home.x() - c.x()) * f,
                v.y() + (home.y() - c.y()) * f,
            );
            out.push((ms, self.push(m as u8, pickup, home, ms)));
            self.crowd_issued += 1;
            self.report.crowd_requests += 1;
        }
        out
    }

    fn push(&mut self, metro: u8, pickup: Point<f64>, dropoff: Point<f64>, ms: u64) -> u32 {
        self.rides.push(Ride {
            rider: self.riders.next_key(),
            metro,
            product: 0,
            pickup,
            dropoff,
            requested_ms: ms,
            quote: None,
            promo: None,
            matching: None,
            driver: None,
            state: State::Requested,
        });
        (self.rides.len() - 1) as u32
    }

    /// When and how a driver answers an offer of ride `r`: 55 % accept
    /// after 2–15 s, 30 % decline after 1–10 s, 15 % never answer.
    fn answer(&self, r: u32, driver: DriverId) -> Option<(u64, bool)> {
        let h = mix(self.seed ^ 0xA11CE, (u64::from(r) << 24) ^ driver.get());
        match h % 100 {
            0..55 => Some((2_000 + (h >> 8) % 13_000, true)),
            55..85 => Some((1_000 + (h >> 8) % 9_000, false)),
            _ => None,
        }
    }

    pub fn summary(&self) -> report::Rides {
        let mut r = self.report.clone();
        r.mean_pickup_eta_secs = self.eta_sum / r.assigned.max(1) as f64;
        r.mean_time_to_accept_secs = self.wait_sum / r.assigned.max(1) as f64;
        r.mean_trip_km = self.km_sum / r.completed.max(1) as f64;
        r.mean_quote_error_pct = 100.0 * self.quote_error_sum / r.completed.max(1) as f64;
        let count = |s: State| self.rides.iter().filter(|x| x.state == s).count() as u64;
        debug_assert_eq!(count(State::Completed), r.completed);
        debug_assert_eq!(count(State::Cancelled), r.cancelled);
        debug_assert_eq!(count(State::OpenAtEnd), r.open_at_end);
        debug_assert_eq!(count(State::Denied), r.denied);
        debug_assert_eq!(
            count(State::Unmatched),
            r.no_driver_in_range + r.nobody_accepted
        );
        debug_assert_eq!(
            count(State::Requested) + count(State::Matching) + count(State::Assigned),
            0
        );
        r
    }

    pub fn stages(&mut self) -> Vec<Stage> {
        vec![
            self.quote_latency
                .stage("pricing: upfront quote (+ promo)", "quotes/s", 1),
            self.match_latency
                .stage("matching: ride start/accept/decline/tick", "events/s", 1),
            self.final_latency
                .stage("pricing: final_fare from GPS trace + split", "trips/s", 1),
        ]
    }
}

impl World {
    pub fn ride_request(&mut self, r: u32, ms: u64) -> Result<(), Box<dyn std::error::Error>> {
        let now = self.at(ms);
        let (rider, metro, pickup, dropoff) = {
            let x = &self.rides.rides[r as usize];
            (x.rider, usize::from(x.metro), x.pickup, x.dropoff)
        };
        let rep = &mut self.rides.report;
        rep.requests += 1;
        if !self.gateway.admit(rider, RIDES, now)? {
            rep.denied += 1;
            self.rides.rides[r as usize].state = State::Denied;
            return Ok(());
        }
        rep.allowed += 1;
        let profile = self.stores.profiles.get(u64::from(r), &rider, now)?;
        if r.is_multiple_of(499) {
            // The rider edits their profile (write-through; other app
            // instances drop their copy).
            let mut p = Profile::synthesise(&rider);
            p.details.push_str(" (edited)");
            self.stores.profiles.set(u64::from(r) + 3, rider, p, now)?;
        }
        let product = profile.product;
        let surge = self.surge.request(pickup, now)?;

        let t = Instant::now();
        let card = self.markets.cards[metro][usize::from(product)];
        let leg = self
            .eta
            .leg(lonlat(pickup), lonlat(dropoff), vehicle(product));
        let route = RouteEstimate {
            distance_m: leg.metres,
            duration: Duration::from_secs_f64(leg.secs),
        };
        let mut fare = card.quote(&route, surge)?;
        let mut promo = None;
        if let Some(code) = profile.promo {
            match self
                .markets
                .promos(card.currency())
                .redeem_at(&[code], UserId(rider), now)
            {
                Ok(sel) => {
                    fare = fare.with_promos(&sel)?;
                    promo = Some(sel);
                    self.rides.report.promos_applied += 1;
                }
                Err(PricingError::PromoUsageExceeded { .. }) => {
                    self.rides.report.promos_refused += 1
                }
                Err(e) => return Err(e.into()),
            }
        }
        self.rides.quote_latency.record(t.elapsed());
        if surge.milli() > 1_000 {
            self.rides.report.surged += 1;
        }

        let req = RideRequest {
            rider: RiderId(rider),
            pickup: lonlat(pickup),
            vehicles: VehicleSet::of(&[vehicle(product)]),
        };
        let t = Instant::now();
        let (m, step) = self
            .rides
            .matcher
            .start_at(self.drivers.index.get(), req, now)?;
        self.rides.match_latency.record(t.elapsed());
        let ride = &mut self.rides.rides[r as usize];
        ride.product = product;
        ride.quote = Some(fare);
        ride.promo = promo;
        ride.matching = Some(m);
        ride.state = State::Matching;
        self.ride_step(r, step, ms)
    }

    pub fn ride_answer(
        &mut self,
        r: u32,
        driver: u64,
        accept: bool,
        ms: u64,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let now = self.at(ms);
        let rides = &mut self.rides;
        let m = rides.rides[r as usize].matching.as_mut();
        let index = self.drivers.index.get();
        let latency = &mut rides.match_latency;
        let Some(step) = offers::answer(&rides.matcher, index, m, driver, accept, now, latency)?
        else {
            return Ok(());
        };
        if !accept {
            rides.report.declines += 1;
        }
        self.ride_step(r, step, ms)
    }

    pub fn ride_deadline(&mut self, r: u32, ms: u64) -> Result<(), Box<dyn std::error::Error>> {
        let now = self.at(ms);
        let rides = &mut self.rides;
        let m = rides.rides[r as usize].matching.as_mut();
        let index = self.drivers.index.get();
        let latency = &mut rides.match_latency;
        let Some(step) = offers::deadline(&rides.matcher, index, m, now, latency)? else {
            return Ok(());
        };
        rides.report.timeouts += 1;
        self.ride_step(r, step, ms)
    }

    /// Schedules the answers to a step's new offers and its deadline, and
    /// follows a final status.
    fn ride_step(
        &mut self,
        r: u32,
        step: RideStep,
        ms: u64,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let rides = &mut self.rides;
        rides.report.offers += step.offers.len() as u64;
        rides.report.lost_races += u64::from(step.lost_race.is_some());
        for o in &step.offers {
            if let Some((delay, accept)) = rides.answer(r, o.driver) {
                self.queue.push(
                    ms + delay,
                    Event::RideAnswer {
                        ride: r,
                        driver: o.driver.get(),
                        accept,
                    },
                );
            }
        }
        let ride = &mut rides.rides[r as usize];
        if !step.offers.is_empty()
            && let Some(d) = ride.matching.as_ref().and_then(RideMatch::deadline)
        {
            let d = d.saturating_duration_since(self.t0).as_millis() as u64;
            self.queue.push(d, Event::RideDeadline(r));
        }
        match step.status {
            RideStatus::Offering => Ok(()),
            RideStatus::Assigned { driver, eta } => self.ride_assigned(r, driver, eta, ms),
            RideStatus::Unmatched { reason, .. } => {
                match reason {
                    UnmatchedReason::NoDriversInRange => rides.report.no_driver_in_range += 1,
                    _ => rides.report.nobody_accepted += 1,
                }
                ride.state = State::Unmatched;
                ride.matching = None;
                if let (Some(sel), Some(q)) = (ride.promo.take(), ride.quote) {
                    self.markets.promos(q.total().currency()).release(sel)?;
                }
                Ok(())
            }
        }
    }

    fn ride_assigned(
        &mut self,
        r: u32,
        driver: DriverId,
        eta: Duration,
        ms: u64,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let now = self.at(ms);
        let seed = self.rides.seed;
        let map_metro = self.rides.map_metro;
        let rides = &mut self.rides;
        let ride = &mut rides.rides[r as usize];
        let widened = ride.matching.as_ref().is_some_and(|m| m.radius_step() > 0);
        ride.matching = None;
        ride.driver = Some(driver);
        ride.state = State::Assigned;
        let rep = &mut rides.report;
        rep.assigned += 1;
        rep.widened += u64::from(widened);
        rides.eta_sum += eta.as_secs_f64();
        rides.wait_sum += (ms - ride.requested_ms) as f64 / 1000.0;
        let key = mix(seed ^ 0x7217, u64::from(r));
        let eta_ms = eta.as_millis() as u64;
        if key.is_multiple_of(25) {
            // The rider cancels while the driver is on the way.
            self.queue.push(ms + eta_ms / 2, Event::RideCancel(r));
        } else {
            let trip = Trip::new(ride.pickup, ride.dropoff, key);
            let end = ms + eta_ms + trip.duration().as_millis() as u64;
            self.queue.push(end, Event::TripEnd(r));
        }
        // The map shows the latest few matches of its metro.
        if usize::from(ride.metro) == map_metro && r.is_multiple_of(3) {
            if rides.routes.len() == MAP_ROUTES {
                rides.routes.remove(0);
            }
            let from = self.drivers.index.get().position_at(driver, now)?;
            let corner = Point::new(ride.dropoff.x(), ride.pickup.y());
            rides.routes.push([
                Point::new(from.lon(), from.lat()),
                ride.pickup,
                corner,
                ride.dropoff,
            ]);
        }
        Ok(())
    }

    pub fn ride_cancel(&mut self, r: u32, ms: u64) -> Result<(), Box<dyn std::error::Error>> {
        let ride = &mut self.rides.rides[r as usize];
        let card = self.markets.cards[usize::from(ride.metro)][usize::from(ride.product)];
        let fee = card.cancellation().total();
        let due = fee.mul_bps(DRIVER_SHARE, Rounding::HalfEven)?;
        let zero = Money::zero(fee.currency());
        let c = Capture::new(fee, zero, due, zero)?;
        self.ledger.book(Kind::Cancellation, &c)?;
        ride.state = State::Cancelled;
        if let Some(sel) = ride.promo.take() {
            self.markets.promos(fee.currency()).release(sel)?;
        }
        self.rides.report.cancelled += 1;
        self.release_driver(r, ms)
    }

    pub fn trip_end(&mut self, r: u32, ms: u64) -> Result<(), Box<dyn std::error::Error>> {
        let seed = self.rides.seed;
        let rides = &mut self.rides;
        let ride = &mut rides.rides[r as usize];
        let quote = ride.quote.ok_or("a trip without a quote")?;
        let card = self.markets.cards[usize::from(ride.metro)][usize::from(ride.product)];
        let trip = Trip::new(ride.pickup, ride.dropoff, mix(seed ^ 0x7217, u64::from(r)));
        trip.trace(&mut rides.trace);

        let t = Instant::now();
        let mut fare = match card.final_fare(&rides.trace, &rides.rules, quote.multiplier()) {
            Ok(f) => f,
            // An unusable trace: the rider pays the upfront quote.
            Err(PricingError::InvalidTrace { .. }) => quote,
            Err(e) => return Err(e.into()),
        };
        if let Some(sel) = &ride.promo {
            fare = fare.with_promos(sel)?;
        }
        let due = fare.trip_fare().mul_bps(DRIVER_SHARE, Rounding::HalfEven)?;
        let zero = Money::zero(fare.total().currency());
        let c = Capture::new(fare.total(), zero, due, zero)?;
        self.ledger.book(Kind::Ride, &c)?;
        rides.final_latency.record(t.elapsed());

        let m = measure_trace(&rides.trace, &rides.rules)?;
        let rep = &mut rides.report;
        rep.completed += 1;
        rep.completed_in_stretch += u64::from(ms <= self.end_ms);
        rep.trace_fixes += m.points as u64;
        rep.trace_fixes_dropped += m.rejected as u64;
        rides.km_sum += m.distance_m / 1000.0;
        let q = quote.total().minor().max(1) as f64;
        rides.quote_error_sum += (fare.total().minor() - quote.total().minor()).abs() as f64 / q;
        ride.state = State::Completed;
        self.release_driver(r, ms)
    }

    /// The ride's driver is available again (while the stretch runs; after
    /// it the index is no longer written).
    fn release_driver(&mut self, r: u32, ms: u64) -> Result<(), Box<dyn std::error::Error>> {
        let Some(driver) = self.rides.rides[r as usize].driver else {
            return Ok(());
        };
        if !self.open {
            return Ok(());
        }
        let now = self.at(ms);
        match self.drivers.index.get().compare_and_set_status_at(
            driver,
            Status::BUSY,
            Status::AVAILABLE,
            now,
        ) {
            Ok(_) | Err(GeoError::UnknownDriver(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// End of the stretch: offers still open are withdrawn.
    pub fn close_rides(&mut self) -> Result<(), Box<dyn std::error::Error>> {
        for ride in &mut self.rides.rides {
            if ride.state == State::Matching {
                ride.state = State::OpenAtEnd;
                ride.matching = None;
                self.rides.report.open_at_end += 1;
                if let (Some(sel), Some(q)) = (ride.promo.take(), ride.quote) {
                    self.markets.promos(q.total().currency()).release(sel)?;
                }
            }
        }
        Ok(())
    }
}
