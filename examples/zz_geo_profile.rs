//! profiling harness (not committed)
use dispatchkit::geo::*;
use dispatchkit::workload::*;
use std::time::{Duration, Instant};
fn ll(p: geo::Point<f64>) -> LonLat {
    LonLat::try_from(p).unwrap()
}
fn cpu() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap();
    let f: Vec<&str> = s.rsplit(')').next().unwrap().split_whitespace().collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}
fn main() {
    let mode = std::env::args().nth(1).unwrap_or("update".into());
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let fleet = Fleet::generate(&MetroConfig {
        drivers: n,
        ..MetroConfig::default()
    })
    .unwrap();
    let t0 = Instant::now();
    let index = GeoIndex::new();
    for ch in fleet.drivers().chunks(4096) {
        let b: Vec<_> = ch
            .iter()
            .map(|d| {
                DriverUpdate::new(DriverId(d.id), ll(d.position), t0).with_attrs(Attrs {
                    status: if d.id % 10 < 7 {
                        Status::AVAILABLE
                    } else {
                        Status::BUSY
                    },
                    ..Attrs::default()
                })
            })
            .collect();
        index.upsert_batch_at(&b, t0);
    }
    let mut s = fleet.uniform_updates(1).unwrap();
    let ups: Vec<(DriverId, LonLat)> = (0..2_000_000)
        .map(|_| {
            let u = s.next_update();
            (DriverId(u.driver), ll(u.position))
        })
        .collect();
    let qs: Vec<LonLat> = QueryStream::new(fleet.config(), 5)
        .unwrap()
        .pickups(20000)
        .into_iter()
        .map(|p| ll(p.point))
        .collect();
    let mut buf = Vec::with_capacity(4096);
    let mut clock = 0u64;
    let start = Instant::now();
    let c0 = cpu();
    let mut n = 0usize;
    if mode == "update" {
        while start.elapsed() < Duration::from_secs(8) {
            for ch in ups.chunks(4096) {
                clock += 1;
                let at = t0 + Duration::from_millis(clock);
                buf.clear();
                buf.extend(ch.iter().map(|&(id, p)| DriverUpdate::new(id, p, at)));
                let r = index.upsert_batch_at(&buf, at);
                n += r.moved;
            }
        }
    } else {
        let now = t0;
        let mut out = Vec::new();
        let f = Filter::available();
        while start.elapsed() < Duration::from_secs(8) {
            for &q in &qs {
                let s = Search::radius(q, 5.0, Unit::Kilometers).filter(f);
                let s = if mode == "knn" { s.count(10) } else { s.asc() };
                index.search_into_at(&s, now, &mut out).unwrap();
                n += 1;
            }
        }
    }
    let el = start.elapsed().as_secs_f64();
    let c = cpu() - c0;
    println!(
        "{mode}: {n} in {el:.2}s wall = {:.3} M/s; cpu {c:.2}s = {:.3} M/s per cpu-second",
        n as f64 / el / 1e6,
        n as f64 / c / 1e6
    );
}
