//! The surge engine over the reference workload against brute force: per
//! cell, the engine's supply and demand counts equal one `h3o` conversion
//! per available driver and per request in the window, cold and after the
//! fleet moved (so the cell cache is exercised on new positions).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dispatchkit::geo::{
    Attrs, DriverId, DriverUpdate, GeoIndex, LonLat, Rating, Status, VehicleType,
};
use dispatchkit::pricing::h3o::{CellIndex, LatLng, Resolution};
use dispatchkit::pricing::{SurgeConfig, SurgeEngine};
use dispatchkit::workload::{Fleet, MetroConfig, QueryStream};

fn cell(lon: f64, lat: f64, res: Resolution) -> CellIndex {
    LatLng::new(lat, lon).expect("valid").to_cell(res)
}

#[test]
fn surge_counts_over_the_reference_fleet_equal_brute_force() {
    let t0 = Instant::now();
    let cfg = MetroConfig {
        drivers: 100_000,
        seed: 5,
        ..MetroConfig::default()
    };
    let fleet = Fleet::generate(&cfg).expect("fleet");
    let index = GeoIndex::new();
    let car = VehicleType::new(0).expect("vehicle");
    let rating = Rating::new(4.7).expect("rating");
    let updates: Vec<DriverUpdate> = fleet
        .drivers()
        .iter()
        .map(|d| {
            let mut attrs = Attrs::available(car, rating);
            if d.id % 10 == 0 {
                attrs.status = Status::BUSY; // not supply
            }
            let pos = LonLat::new(d.position.x(), d.position.y()).expect("in range");
            DriverUpdate::new(DriverId::new(d.id).unwrap(), pos, t0).with_attrs(attrs)
        })
        .collect();
    let _ = index.upsert_batch_at(&updates, t0);

    let res = Resolution::Eight;
    let engine = SurgeEngine::new(SurgeConfig {
        resolution: res,
        ..SurgeConfig::default()
    })
    .expect("config");
    let requests = QueryStream::new(&cfg, 3).expect("queries").pickups(20_000);
    let mut want_demand: BTreeMap<CellIndex, u32> = BTreeMap::new();
    for p in &requests {
        engine.record_request_at(p.point, t0).expect("valid pickup");
        *want_demand
            .entry(cell(p.point.x(), p.point.y(), res))
            .or_default() += 1;
    }

    let mut moves = fleet.uniform_updates(9).expect("updates");
    let mut now = t0;
    for round in 0..3 {
        let stats = engine.recompute_at(&index, now);
        engine.check_invariants();
        let mut want_supply: BTreeMap<CellIndex, u32> = BTreeMap::new();
        index.for_each_at(now, |v| {
            if v.attrs.status == Status::AVAILABLE {
                *want_supply
                    .entry(cell(v.pos.lon(), v.pos.lat(), res))
                    .or_default() += 1;
            }
        });
        let map = engine.snapshot();
        let got_supply: BTreeMap<CellIndex, u32> = map
            .iter()
            .filter(|(_, s)| s.supply > 0)
            .map(|(c, s)| (c, s.supply))
            .collect();
        let got_demand: BTreeMap<CellIndex, u32> = map
            .iter()
            .filter(|(_, s)| s.demand > 0)
            .map(|(c, s)| (c, s.demand))
            .collect();
        assert_eq!(got_supply, want_supply, "supply, round {round}");
        assert_eq!(got_demand, want_demand, "demand, round {round}");
        assert_eq!(stats.drivers, 90_000);
        if round > 0 {
            assert!(stats.fast_path > 75_000, "warm cache: {stats:?}");
        }
        // Movement: 100k location updates (each ≤ 60 m).
        now += Duration::from_secs(10);
        {
            let batch: Vec<DriverUpdate> = moves
                .batch(100_000)
                .iter()
                .map(|u| {
                    let pos = LonLat::new(u.position.x(), u.position.y()).expect("in range");
                    DriverUpdate::new(DriverId::new(u.driver).unwrap(), pos, now) // keeps attrs
                })
                .collect();
            let _ = index.upsert_batch_at(&batch, now);
        }
    }
}
