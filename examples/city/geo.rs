//! Stage 2: the moving-driver index (issue 4): load the fleet, apply one
//! simulated minute of 4 s location updates through the batch API, run
//! pickup searches.

use std::time::{Duration, Instant};

use dispatchkit::geo::{
    Attrs, DriverId, DriverUpdate, Filter, GeoIndex, LonLat, Rating, Search, Status, Unit,
    VehicleType,
};
use dispatchkit::workload::{Fleet, QueryStream, UpdateStream};

use crate::args::Options;
use crate::report::{Latencies, Section, rate};

/// Updates per batch: what one ingest worker hands the index at a time.
pub const BATCH: usize = 4096;

/// The attributes the simulation gives driver `id`: 80 % available,
/// vehicle types 0 (car), 1 (XL), 2 (bike), ratings 4.00..=5.00.
pub fn attrs_of(id: u64) -> Attrs {
    let h = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
    Attrs {
        status: if h % 10 < 8 {
            Status::AVAILABLE
        } else {
            Status::BUSY
        },
        vehicle: VehicleType::new((h % 7 % 3) as u8).expect("0..3"),
        rating: Rating::from_hundredths(400 + (h % 101) as u16).expect("<= 500"),
        load: 0,
    }
}

/// A workload point as an index coordinate (the workload emits only valid
/// points).
pub fn lonlat(p: geo::Point<f64>) -> LonLat {
    LonLat::try_from(p).expect("workload points are valid")
}

/// What later stages need from this one.
pub struct Geo {
    pub index: GeoIndex,
    /// Simulated time after the minute of updates.
    pub now: Instant,
}

pub fn run(
    opts: &Options,
    fleet: &Fleet,
    updates: &mut UpdateStream,
    t0: Instant,
) -> Result<(Geo, Section), Box<dyn std::error::Error>> {
    let index = GeoIndex::new();
    let mut s = Section::new("geo: moving-driver index");

    let wall = Instant::now();
    let mut batch = Vec::with_capacity(BATCH);
    for chunk in fleet.drivers().chunks(BATCH) {
        batch.clear();
        batch.extend(chunk.iter().map(|d| {
            DriverUpdate::new(DriverId(d.id), lonlat(d.position), t0).with_attrs(attrs_of(d.id))
        }));
        index.upsert_batch_at(&batch, t0);
    }
    let load_secs = wall.elapsed().as_secs_f64();
    s.metric(
        "drivers loaded",
        format!(
            "{} in {:.0} ms ({})",
            index.len(),
            load_secs * 1e3,
            rate(fleet.drivers().len(), load_secs)
        ),
    );

    // One simulated minute: 15 rounds, every driver reports every 4 s.
    let rounds = 15;
    let mut round = Vec::new();
    let (mut gen_secs, mut apply_secs, mut applied, mut stale) = (0.0, 0.0, 0usize, 0usize);
    let mut now = t0;
    for r in 1..=rounds {
        now = t0 + Duration::from_secs(4 * r);
        let g = Instant::now();
        updates.round(&mut round);
        gen_secs += g.elapsed().as_secs_f64();
        let a = Instant::now();
        for chunk in round.chunks(BATCH) {
            batch.clear();
            batch.extend(
                chunk
                    .iter()
                    .map(|u| DriverUpdate::new(DriverId(u.driver), lonlat(u.position), now)),
            );
            let rep = index.upsert_batch_at(&batch, now);
            applied += rep.moved + rep.inserted;
            stale += rep.stale;
        }
        apply_secs += a.elapsed().as_secs_f64();
    }
    s.metric(
        "location updates (batch API)",
        format!(
            "{applied} in {:.2} s = {} ({stale} stale)",
            apply_secs,
            rate(applied, apply_secs)
        ),
    );
    s.metric("update generation (workload)", rate(applied, gen_secs));

    // Pickup searches: GEOSEARCH … BYRADIUS 5 km ASC COUNT 10, available only.
    let n = if opts.quick { 2_000 } else { 10_000 };
    let pickups = QueryStream::new(fleet.config(), opts.seed ^ 0x51)?.pickups(n);
    let filter = Filter::available().min_rating(Rating::new(4.5)?);
    let mut lat = Latencies::default();
    let (mut found, mut nearest_m, mut with_any) = (0usize, 0.0, 0usize);
    let mut out = Vec::new();
    let w = Instant::now();
    for p in &pickups {
        let q = Search::radius(lonlat(p.point), 5.0, Unit::Kilometers)
            .count(10)
            .filter(filter);
        let t = Instant::now();
        index.search_into_at(&q, now, &mut out)?;
        lat.record(t.elapsed());
        found += out.len();
        if let Some(h) = out.first() {
            nearest_m += h.distance * 1000.0;
            with_any += 1;
        }
    }
    let search_secs = w.elapsed().as_secs_f64();
    s.metric(
        "pickup searches (5 km, COUNT 10)",
        format!(
            "{n} in {:.0} ms = {}",
            search_secs * 1e3,
            rate(n, search_secs)
        ),
    );
    s.metric("search latency", lat.summary());
    s.metric(
        "drivers found per search",
        format!(
            "{:.1} (mean nearest {:.0} m; {:.1} % of pickups had a driver)",
            found as f64 / n as f64,
            nearest_m / with_any.max(1) as f64,
            100.0 * with_any as f64 / n as f64
        ),
    );
    Ok((Geo { index, now }, s))
}
