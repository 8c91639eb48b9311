//! The drivers: the reference fleet, their attributes, and the 4 s
//! location rounds that keep the geo index live, applied through the batch
//! API on two threads.

use std::time::Instant;

use dispatchkit::geo::{
    Attrs, DriverId, DriverUpdate, LonLat, Rating, Status, VehicleSet, VehicleType,
};
use dispatchkit::workload::{Fleet, LocationUpdate, MetroConfig, UpdateStream};

use crate::args::Options;
use crate::index::Index;
use crate::report::Latencies;

/// Updates per `upsert_batch_at` call: what one ingest worker hands the
/// index at a time.
pub const BATCH: usize = 4096;
/// Threads applying location updates (and generating them).
pub const THREADS: usize = 2;
/// Seconds between two reports of a driver (the seed's 900 updates/hour).
pub const ROUND_SECS: u64 = 4;

/// Vehicle types: 0 car (economy), 1 XL, 2 bike (couriers).
pub fn vehicle(t: u8) -> VehicleType {
    VehicleType::new(t).expect("0..3 are valid vehicle types")
}

/// Cars and XLs: the ride-hailing fleet.
pub fn ride_vehicles() -> VehicleSet {
    VehicleSet::of(&[vehicle(0), vehicle(1)])
}

/// Bikes: the couriers (dashers) of the delivery side.
pub fn courier_vehicles() -> VehicleSet {
    VehicleSet::of(&[vehicle(2)])
}

/// The attributes driver `id` starts with: 80 % available (the rest busy
/// with work that began before the stretch), vehicle types car 3/7, XL
/// 2/7, bike 2/7, ratings 4.00..=5.00.
pub fn attrs_of(id: u64) -> Attrs {
    let h = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
    Attrs {
        status: if h % 10 < 8 {
            Status::AVAILABLE
        } else {
            Status::BUSY
        },
        vehicle: vehicle((h % 7 % 3) as u8),
        rating: Rating::from_hundredths(400 + (h % 101) as u16).expect("<= 500"),
        load: 0,
    }
}

/// A workload point as an index coordinate (the workload emits only valid
/// points).
pub fn lonlat(p: geo::Point<f64>) -> LonLat {
    LonLat::try_from(p).expect("workload points are valid")
}

/// The fleet, its update stream and the index they feed.
pub struct Drivers {
    pub fleet: Fleet,
    pub index: Index,
    updates: UpdateStream,
    round: Vec<LocationUpdate>,
    /// Driver ids in the order they are applied (by id: the round is read
    /// sequentially, which measured faster than a spatially sorted order).
    order: Vec<u32>,
    bufs: Vec<Vec<DriverUpdate>>,
    /// Wall time of each `upsert_batch_at` call.
    pub batch_latency: Latencies,
    /// Drivers inserted by the initial load.
    pub loaded: u64,
    /// Updates applied (moved or inserted) and refused as stale.
    pub applied: u64,
    pub stale: u64,
    pub rounds: u64,
    pub gen_secs: f64,
    pub apply_secs: f64,
    pub load_secs: f64,
}

impl Drivers {
    /// Generates the fleet and loads it into a fresh index at `t0`.
    pub fn load(opts: &Options, t0: Instant) -> Result<Self, Box<dyn std::error::Error>> {
        let cfg = MetroConfig {
            drivers: opts.drivers,
            seed: opts.seed,
            ..MetroConfig::default()
        };
        let fleet = Fleet::generate(&cfg)?;
        let updates = fleet.uniform_updates(opts.seed ^ 0x0B5E)?;
        let index = Index::open(opts, t0)?;
        let order: Vec<u32> = (0..fleet.drivers().len() as u32).collect();
        let mut d = Self {
            fleet,
            index,
            updates,
            round: Vec::new(),
            order,
            bufs: (0..THREADS).map(|_| Vec::with_capacity(BATCH)).collect(),
            batch_latency: Latencies::default(),
            loaded: 0,
            applied: 0,
            stale: 0,
            rounds: 0,
            gen_secs: 0.0,
            apply_secs: 0.0,
            load_secs: 0.0,
        };
        let w = Instant::now();
        let drivers = d.fleet.drivers();
        let (_, loaded, _) = apply(&d.index, &d.order, &mut d.bufs, t0, |id| {
            let p = drivers[id as usize].position;
            DriverUpdate::new(DriverId::new(id).unwrap(), lonlat(p), t0).with_attrs(attrs_of(id))
        })?;
        d.loaded = loaded;
        d.load_secs = w.elapsed().as_secs_f64();
        Ok(d)
    }

    /// One reporting round at `at`: every driver moves (at most 60 m) and
    /// reports its position; statuses stay as the matchers set them.
    pub fn round(&mut self, at: Instant) -> Result<(), dispatchkit::geo::GeoError> {
        let g = Instant::now();
        self.updates.round_parallel(THREADS, &mut self.round);
        self.gen_secs += g.elapsed().as_secs_f64();
        let a = Instant::now();
        let round = &self.round;
        let r = apply(&self.index, &self.order, &mut self.bufs, at, |id| {
            DriverUpdate::new(
                DriverId::new(id).unwrap(),
                lonlat(round[id as usize].position),
                at,
            )
        })?;
        self.absorb(r);
        self.apply_secs += a.elapsed().as_secs_f64();
        self.rounds += 1;
        Ok(())
    }

    /// Current positions of every driver, by id.
    pub fn positions(&self) -> &[geo::Point<f64>] {
        self.updates.positions()
    }

    fn absorb(&mut self, (lat, applied, stale): (Latencies, u64, u64)) {
        self.batch_latency.merge(lat);
        self.applied += applied;
        self.stale += stale;
    }
}

/// Builds every driver's update with `make` and applies them in batches of
/// `BATCH`, the driver order split in `THREADS` contiguous parts, one per
/// thread (this one and scoped helpers). Returns the call latencies, the
/// updates applied and the stale ones.
fn apply(
    index: &Index,
    order: &[u32],
    bufs: &mut [Vec<DriverUpdate>],
    at: Instant,
    make: impl Fn(u64) -> DriverUpdate + Sync,
) -> Result<(Latencies, u64, u64), dispatchkit::geo::GeoError> {
    let per = order.len().div_ceil(bufs.len()).max(1);
    let work = |ids: &[u32], buf: &mut Vec<DriverUpdate>| {
        let mut lat = Latencies::default();
        let (mut applied, mut stale) = (0u64, 0u64);
        for chunk in ids.chunks(BATCH) {
            buf.clear();
            buf.extend(chunk.iter().map(|&id| make(u64::from(id))));
            let t = Instant::now();
            let rep = index.upsert_batch_at(buf, at)?;
            lat.record(t.elapsed());
            debug_assert!(rep.rejected.is_empty(), "{:?}", rep.rejected.first());
            applied += (rep.inserted + rep.moved) as u64;
            stale += rep.stale as u64;
        }
        Ok((lat, applied, stale))
    };
    let mut parts = order.chunks(per).zip(bufs.iter_mut());
    let Some((first, buf0)) = parts.next() else {
        return Ok((Latencies::default(), 0, 0));
    };
    std::thread::scope(|s| {
        let helpers: Vec<_> = parts.map(|(ids, buf)| s.spawn(|| work(ids, buf))).collect();
        let mut total = work(first, buf0)?;
        for h in helpers {
            let (lat, a, st) = h.join().expect("update thread panicked")?;
            total.0.merge(lat);
            total.1 += a;
            total.2 += st;
        }
        Ok(total)
    })
}
