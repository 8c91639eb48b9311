//! The reference workload: determinism, validity, the 60 m step bound and
//! the Zipf law.

use std::time::Duration;

use dispatchkit::workload::{
    DriverChoice, Fleet, LAT_LIMIT, METROS, MetroConfig, OrderConfig, OrderStream, QueryStream,
    UpdateConfig, WorkloadError, ZipfKeys, zipf_keys,
};
use geo::{Distance, Haversine, Point};
use proptest::prelude::*;

fn small(drivers: usize, seed: u64) -> MetroConfig {
    MetroConfig {
        drivers,
        seed,
        ..MetroConfig::default()
    }
}

fn assert_valid(p: Point<f64>) {
    assert!(p.x().is_finite() && p.y().is_finite(), "{p:?} not finite");
    assert!(
        (-180.0..=180.0).contains(&p.x()),
        "{p:?} longitude out of range"
    );
    assert!(
        (-LAT_LIMIT..=LAT_LIMIT).contains(&p.y()),
        "{p:?} latitude out of range"
    );
}

#[test]
fn same_seed_same_streams() {
    let a = Fleet::generate(&small(5_000, 9)).unwrap();
    let b = Fleet::generate(&small(5_000, 9)).unwrap();
    assert_eq!(a.drivers(), b.drivers());
    let ua = a.uniform_updates(3).unwrap().batch(5_000);
    let ub = b.uniform_updates(3).unwrap().batch(5_000);
    assert_eq!(ua, ub);
    let qa = QueryStream::new(&small(0, 9), 4).unwrap().pickups(1_000);
    let qb = QueryStream::new(&small(0, 9), 4).unwrap().pickups(1_000);
    assert_eq!(qa, qb);
    assert_eq!(
        zipf_keys(1_000, 1.0, 1_000, 5).unwrap(),
        zipf_keys(1_000, 1.0, 1_000, 5).unwrap()
    );
    let oa: Vec<_> = OrderStream::new(&small(0, 9), &OrderConfig::default())
        .unwrap()
        .take(500)
        .collect();
    let ob: Vec<_> = OrderStream::new(&small(0, 9), &OrderConfig::default())
        .unwrap()
        .take(500)
        .collect();
    assert_eq!(oa, ob);
}

#[test]
fn different_seed_different_streams() {
    let a = Fleet::generate(&small(1_000, 1)).unwrap();
    let b = Fleet::generate(&small(1_000, 2)).unwrap();
    assert_ne!(a.drivers(), b.drivers());
    assert_ne!(
        a.uniform_updates(1).unwrap().batch(100),
        a.uniform_updates(2).unwrap().batch(100)
    );
    assert_ne!(
        QueryStream::new(&small(0, 1), 1).unwrap().pickups(100),
        QueryStream::new(&small(0, 1), 2).unwrap().pickups(100)
    );
    assert_ne!(
        zipf_keys(1_000, 1.0, 100, 1).unwrap(),
        zipf_keys(1_000, 1.0, 100, 2).unwrap()
    );
    let orders = |seed| -> Vec<_> {
        let cfg = OrderConfig {
            seed,
            ..OrderConfig::default()
        };
        OrderStream::new(&small(0, 1), &cfg)
            .unwrap()
            .take(100)
            .collect()
    };
    assert_ne!(orders(1), orders(2));
}

#[test]
fn fleet_and_pickups_are_valid_and_spread_over_every_metro() {
    let fleet = Fleet::generate(&small(50_000, 3)).unwrap();
    fleet
        .drivers()
        .iter()
        .for_each(|d| assert_valid(d.position));
    let per_metro = fleet.per_metro();
    assert_eq!(per_metro.iter().sum::<usize>(), 50_000);
    let total_weight: u32 = METROS.iter().map(|m| m.weight).sum();
    for (m, &count) in METROS.iter().zip(&per_metro) {
        let expected = 50_000.0 * f64::from(m.weight) / f64::from(total_weight);
        assert!(
            (count as f64 - expected).abs() < 5.0 * expected.sqrt() + 1.0,
            "{}: {count} drivers, expected about {expected:.0}",
            m.name
        );
    }
    for (i, d) in fleet.drivers().iter().enumerate() {
        assert_eq!(d.id, i as u64);
    }
    for p in QueryStream::new(&small(0, 3), 8).unwrap().pickups(20_000) {
        assert_valid(p.point);
    }
}

#[test]
fn clouds_are_round_on_the_ground_at_every_latitude() {
    // For an isotropic 2-D Gaussian, E[d²] = 2σ². Without the cos φ
    // correction London's cloud would be squashed east-west and E[d²] would
    // fall to about 1.39σ².
    let sigma = 8_000.0;
    let fleet = Fleet::generate(&small(200_000, 5)).unwrap();
    for (m, metro) in METROS.iter().enumerate() {
        let d2: Vec<f64> = fleet
            .drivers()
            .iter()
            .filter(|d| d.metro as usize == m)
            .map(|d| Haversine.distance(d.position, metro.centre()).powi(2))
            .collect();
        let ratio = d2.iter().sum::<f64>() / d2.len() as f64 / (2.0 * sigma * sigma);
        assert!(
            (ratio - 1.0).abs() < 0.06,
            "{}: E[d²]/2σ² = {ratio:.3}",
            metro.name
        );
    }
}

#[test]
fn huge_clouds_stay_inside_the_redis_ranges() {
    let cfg = MetroConfig {
        drivers: 20_000,
        sigma_m: 5_000_000.0,
        seed: 1,
    };
    let fleet = Fleet::generate(&cfg).unwrap();
    fleet
        .drivers()
        .iter()
        .for_each(|d| assert_valid(d.position));
    let mut updates = fleet.uniform_updates(1).unwrap();
    updates
        .batch(20_000)
        .iter()
        .for_each(|u| assert_valid(u.position));
}

#[test]
fn every_move_is_at_most_60_m() {
    let fleet = Fleet::generate(&small(2_000, 4)).unwrap();
    for choice in [DriverChoice::Uniform, DriverChoice::Zipf { s: 1.0 }] {
        let mut stream = fleet
            .update_stream(&UpdateConfig {
                choice,
                ..UpdateConfig::default()
            })
            .unwrap();
        let mut last: Vec<Point<f64>> = fleet.drivers().iter().map(|d| d.position).collect();
        let mut longest: f64 = 0.0;
        for (i, u) in stream.by_ref().take(200_000).enumerate() {
            assert_eq!(u.seq, i as u64);
            assert_valid(u.position);
            let step = Haversine.distance(last[u.driver as usize], u.position);
            assert!(
                step <= 60.0,
                "update {i} moved driver {} by {step} m",
                u.driver
            );
            longest = longest.max(step);
            last[u.driver as usize] = u.position;
        }
        // The bound is tight, not vacuous: moves use the whole 60 m range.
        assert!(longest > 59.0, "longest move {longest} m");
        assert_eq!(stream.positions(), &last[..]);
    }
    // Everywhere on the globe, up to the latitude limit and across the
    // antimeridian, in rounds too.
    let world = Fleet::generate(&MetroConfig {
        drivers: 20_000,
        sigma_m: 5e6,
        seed: 8,
    })
    .unwrap();
    let mut stream = world.uniform_updates(3).unwrap();
    let mut buf = Vec::new();
    let mut last: Vec<Point<f64>> = world.drivers().iter().map(|d| d.position).collect();
    for _ in 0..10 {
        stream.round(&mut buf);
        for u in &buf {
            let step = Haversine.distance(last[u.driver as usize], u.position);
            assert!(
                step <= 60.0,
                "driver {} at {:?} moved {step} m",
                u.driver,
                u.position
            );
            last[u.driver as usize] = u.position;
        }
    }
}

#[test]
fn a_round_moves_every_driver_once_by_at_most_60_m() {
    let fleet = Fleet::generate(&small(3_000, 4)).unwrap();
    let mut stream = fleet.uniform_updates(2).unwrap();
    let mut buf = Vec::new();
    let mut last: Vec<Point<f64>> = fleet.drivers().iter().map(|d| d.position).collect();
    for r in 0..3u64 {
        stream.round(&mut buf);
        assert_eq!(buf.len(), 3_000);
        for (i, u) in buf.iter().enumerate() {
            assert_eq!(u.driver, i as u64);
            assert_eq!(u.seq, r * 3_000 + i as u64);
            assert!(Haversine.distance(last[i], u.position) <= 60.0);
            last[i] = u.position;
        }
    }
    assert_eq!(stream.positions(), &last[..]);
}

#[test]
fn parallel_rounds_equal_sequential_rounds() {
    let fleet = Fleet::generate(&small(150_000, 4)).unwrap();
    let (mut a, mut b) = (
        fleet.uniform_updates(9).unwrap(),
        fleet.uniform_updates(9).unwrap(),
    );
    let (mut ra, mut rb) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        a.round(&mut ra);
        b.round_parallel(3, &mut rb);
        assert_eq!(ra, rb);
    }
    // Rounds differ from each other.
    let first = ra.clone();
    a.round(&mut ra);
    assert_ne!(first, ra);
}

#[test]
fn batches_equal_the_plain_stream() {
    let fleet = Fleet::generate(&small(1_000, 4)).unwrap();
    let plain: Vec<_> = fleet.uniform_updates(5).unwrap().take(3_000).collect();
    let mut batched = fleet.uniform_updates(5).unwrap();
    let mut buf = Vec::new();
    let mut all = Vec::new();
    for _ in 0..3 {
        batched.fill_batch(&mut buf, 1_000);
        all.extend_from_slice(&buf);
    }
    assert_eq!(plain, all);
}

#[test]
fn zipf_driver_choice_is_skewed_and_uniform_is_not() {
    let fleet = Fleet::generate(&small(1_000, 4)).unwrap();
    let count = |choice| {
        let mut hits = vec![0u32; 1_000];
        let cfg = UpdateConfig {
            choice,
            ..UpdateConfig::default()
        };
        for u in fleet.update_stream(&cfg).unwrap().take(100_000) {
            hits[u.driver as usize] += 1;
        }
        hits
    };
    let uniform = count(DriverChoice::Uniform);
    assert!(
        uniform.iter().all(|&h| (50..=160).contains(&h)),
        "uniform choice is skewed"
    );
    let zipf = count(DriverChoice::Zipf { s: 1.0 });
    // P(rank 1) = 1 / H(1000) ≈ 0.1336.
    assert!(
        (12_500..14_200).contains(&zipf[0]),
        "driver 0 moved {} times",
        zipf[0]
    );
    assert!(zipf[0] > zipf[1] && zipf[1] > zipf[9]);
}

#[test]
fn zipf_rank_one_frequency_matches_theory() {
    for (n, s) in [(100_000u64, 1.0), (1_000_000, 1.0), (10_000, 1.2)] {
        let keys = ZipfKeys::new(n, s, 17).unwrap();
        let theory = keys.probability(0);
        let draws = keys.clone().take_vec(1_000_000);
        assert!(draws.iter().all(|&k| k < n));
        let freq = draws.iter().filter(|&&k| k == 0).count() as f64 / 1e6;
        assert!(
            (freq / theory - 1.0).abs() < 0.02,
            "n={n} s={s}: rank-1 frequency {freq:.5} vs theory {theory:.5}"
        );
        let freq2 = draws.iter().filter(|&&k| k == 1).count() as f64 / 1e6;
        assert!((freq2 / keys.probability(1) - 1.0).abs() < 0.03);
    }
}

#[test]
fn orders_arrive_in_order_with_sane_times_and_distances() {
    let cfg = OrderConfig::default();
    let mut stream = OrderStream::new(&small(0, 2), &cfg).unwrap();
    let first = stream.until(Duration::from_secs(60));
    // 231.5 orders/s for 60 s: Poisson, mean 13,889, σ ≈ 118.
    assert!(
        (13_300..14_500).contains(&first.len()),
        "{} orders",
        first.len()
    );
    let rest: Vec<_> = stream.by_ref().take(1_000).collect();
    assert!(rest[0].placed_at >= Duration::from_secs(60));
    let all: Vec<_> = first.iter().chain(&rest).collect();
    for w in all.windows(2) {
        assert!(w[0].placed_at <= w[1].placed_at);
        assert_eq!(w[0].id + 1, w[1].id);
    }
    for o in all {
        assert_valid(o.pickup);
        assert_valid(o.dropoff);
        assert!((1..=5).contains(&o.items));
        assert!(o.ready_at >= o.placed_at + cfg.min_prep);
        assert!(o.ready_at <= o.placed_at + cfg.max_prep + Duration::from_millis(1));
        let d = Haversine.distance(o.pickup, o.dropoff);
        assert!((99.0..=10_001.0).contains(&d), "delivery distance {d}");
        assert_eq!(o.restaurant / cfg.restaurants_per_metro, u32::from(o.metro));
    }
    // `until` splits the stream without losing or duplicating an order.
    let mut split = OrderStream::new(&small(0, 2), &cfg).unwrap();
    let mut joined = split.until(Duration::from_secs(10));
    joined.extend(split.until(Duration::from_secs(20)));
    let plain: Vec<_> = OrderStream::new(&small(0, 2), &cfg)
        .unwrap()
        .take_while(|o| o.placed_at < Duration::from_secs(20))
        .collect();
    assert_eq!(joined, plain);
}

#[test]
fn bad_parameters_are_typed_errors() {
    for sigma in [f64::NAN, -1.0, 0.0, f64::INFINITY] {
        let err = Fleet::generate(&MetroConfig {
            sigma_m: sigma,
            ..small(10, 1)
        })
        .unwrap_err();
        assert!(
            matches!(
                err,
                WorkloadError::InvalidParameter {
                    name: "sigma_m",
                    ..
                }
            ),
            "{err}"
        );
        assert!(
            QueryStream::new(
                &MetroConfig {
                    sigma_m: sigma,
                    ..small(0, 1)
                },
                1
            )
            .is_err()
        );
    }
    assert!(matches!(
        ZipfKeys::new(0, 1.0, 1),
        Err(WorkloadError::Empty { .. })
    ));
    for s in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let err = ZipfKeys::new(10, s, 1).unwrap_err();
        assert!(err.to_string().contains("`s`"), "{err}");
    }
    let fleet = Fleet::generate(&small(10, 1)).unwrap();
    for step in [0.0, 60.5, f64::NAN] {
        let err = fleet
            .update_stream(&UpdateConfig {
                max_step_m: step,
                ..UpdateConfig::default()
            })
            .unwrap_err();
        assert!(err.to_string().contains("max_step_m"), "{err}");
    }
    let empty = Fleet::generate(&small(0, 1)).unwrap();
    assert!(matches!(
        empty.uniform_updates(1),
        Err(WorkloadError::Empty { .. })
    ));
    let bad_orders = [
        OrderConfig {
            orders_per_sec: 0.0,
            ..OrderConfig::default()
        },
        OrderConfig {
            restaurants_per_metro: 0,
            ..OrderConfig::default()
        },
        OrderConfig {
            max_delivery_m: f64::NAN,
            ..OrderConfig::default()
        },
        OrderConfig {
            min_prep: Duration::from_secs(100),
            max_prep: Duration::from_secs(10),
            ..OrderConfig::default()
        },
    ];
    for cfg in bad_orders {
        assert!(
            OrderStream::new(&small(0, 1), &cfg).is_err(),
            "{cfg:?} accepted"
        );
    }
}

#[test]
fn metro_lookup_by_name() {
    assert_eq!(MetroConfig::metro_index("seattle"), Some(4));
    assert_eq!(MetroConfig::metro_index("Atlantis"), None);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_seed_and_sigma_gives_valid_points(seed in any::<u64>(), sigma in 1.0f64..2e7) {
        let cfg = MetroConfig { drivers: 64, sigma_m: sigma, seed };
        let fleet = Fleet::generate(&cfg).unwrap();
        fleet.drivers().iter().for_each(|d| assert_valid(d.position));
        for u in fleet.uniform_updates(seed).unwrap().take(256) {
            assert_valid(u.position);
        }
        for p in QueryStream::new(&cfg, seed).unwrap().take(64) {
            assert_valid(p.point);
        }
    }
}
