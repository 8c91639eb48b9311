//! scratch
use dispatchkit::geo::*;
use dispatchkit::workload::{Fleet, MetroConfig, UpdateConfig};
use dispatchkit_test_support::redis_server::RedisServer;
use std::time::{Duration, Instant, SystemTime};
fn main() {
    let server = RedisServer::start().unwrap();
    let fleet = Fleet::generate(&MetroConfig {
        drivers: 200_000,
        ..MetroConfig::default()
    })
    .unwrap();
    let t0 = Instant::now();
    let mut cfg = RedisGeoConfig::new(server.url());
    cfg.clock = Some((t0, SystemTime::now()));
    cfg.default_ttl = Duration::from_secs(3600);
    cfg.io_timeout = Duration::from_secs(30);
    cfg.dir_buckets = std::env::var("B").map_or(1024, |b| b.parse().unwrap());
    let index = RedisGeoIndex::new(cfg).unwrap();
    for chunk in fleet.drivers().chunks(4096) {
        let batch: Vec<DriverUpdate> = chunk
            .iter()
            .map(|d| {
                DriverUpdate::new(
                    DriverId::new(d.id).unwrap(),
                    LonLat::try_from(d.position).unwrap(),
                    t0,
                )
            })
            .collect();
        let _ = index.upsert_batch_at(&batch, t0).unwrap();
    }
    let mut stream = fleet.update_stream(&UpdateConfig::default()).unwrap();
    let mut con = server.connection().unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query(&mut con)
        .unwrap();
    let start = Instant::now();
    let n: u64 = std::env::var("N").map_or(20, |v| v.parse().unwrap());
    for i in 0..n {
        let at = t0 + Duration::from_millis(i + 1);
        let batch: Vec<DriverUpdate> = (0..4096)
            .map(|_| {
                let u = stream.next_update();
                DriverUpdate::new(
                    DriverId::new(u.driver).unwrap(),
                    LonLat::try_from(u.position).unwrap(),
                    at,
                )
            })
            .collect();
        let _ = index.upsert_batch_at(&batch, at).unwrap();
    }
    let el = start.elapsed();
    println!("{:.0} updates/s", (n * 4096) as f64 / el.as_secs_f64());
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut con)
        .unwrap();
    println!("{info}");
    let info: String = redis::cmd("INFO").arg("cpu").query(&mut con).unwrap();
    println!("{info}");
}
