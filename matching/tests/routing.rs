//! Routing against brute force and against the published TSPLIB optima.

use std::path::PathBuf;

use dispatchkit_matching::MatchingError;
use dispatchkit_matching::routing::{
    Construction, DistanceMatrix, Distances, GeoPoints, HELD_KARP_LIMIT, Moves, PlanarMetric,
    PlanarPoints, RouteShape, SolveOptions, TsplibInstance, construct, held_karp, improve,
    parse_tour, route_length, solve,
};
use geo::Point;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

fn config(default_cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    }
}

/// Every permutation of `items` (Heap's algorithm), passed to `f`.
fn permutations(items: &mut [usize], f: &mut impl FnMut(&[usize])) {
    let n = items.len();
    let mut c = vec![0; n];
    f(items);
    let mut i = 0;
    while i < n {
        if c[i] < i {
            if i % 2 == 0 {
                items.swap(0, i);
            } else {
                items.swap(c[i], i);
            }
            f(items);
            c[i] += 1;
            i = 0;
        } else {
            c[i] = 0;
            i += 1;
        }
    }
}

/// The naive twin: the shortest route by enumerating every order.
fn brute_force(d: &impl Distances, shape: RouteShape) -> f64 {
    let n = d.len();
    let mut best = f64::INFINITY;
    let mut all: Vec<usize> = (0..n).collect();
    permutations(&mut all, &mut |o| {
        if let Ok(len) = route_length(d, shape, o) {
            best = best.min(len);
        }
    });
    best
}

fn shapes(n: usize, s: usize, e: usize) -> Vec<RouteShape> {
    let (s, e) = (s % n, e % n);
    let mut v = vec![
        RouteShape::Closed,
        RouteShape::free_path(),
        RouteShape::path_from(s),
        RouteShape::Open {
            start: None,
            end: Some(e),
        },
    ];
    if s != e {
        v.push(RouteShape::path_between(s, e));
    }
    v
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()))
}

fn points(max: usize) -> impl Strategy<Value = Vec<(f64, f64)>> {
    prop::collection::vec((0.0..1000.0f64, 0.0..1000.0f64), 1..=max)
}

proptest! {
    #![proptest_config(config(128))]

    /// Held–Karp equals brute force over every order, for every shape.
    #[test]
    fn held_karp_matches_brute_force(pts in points(8), s in 0usize..8, e in 0usize..8, rounded in any::<bool>()) {
        let metric = if rounded { PlanarMetric::Euc2d } else { PlanarMetric::Euclidean };
        let d = PlanarPoints::new(pts, metric).unwrap();
        for shape in shapes(d.len(), s, e) {
            let exact = held_karp(&d, shape).unwrap();
            // The route is valid and its reported length is its length.
            let len = route_length(&d, shape, &exact.order).unwrap();
            prop_assert!(close(len, exact.length));
            let bf = brute_force(&d, shape);
            prop_assert!(close(exact.length, bf), "{shape:?}: held-karp {} brute force {bf}", exact.length);
        }
    }

    /// Held–Karp on a (non-metric) matrix equals brute force too.
    #[test]
    fn held_karp_matches_brute_force_on_matrices(n in 1usize..=7, seed in any::<u64>(), s in 0usize..7, e in 0usize..7) {
        let mut x = seed | 1;
        let d = DistanceMatrix::from_fn(n, |_, _| {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            (x % 1000) as f64
        }).unwrap();
        for shape in shapes(n, s, e) {
            let exact = held_karp(&d, shape).unwrap();
            prop_assert!(close(exact.length, brute_force(&d, shape)));
        }
    }

    /// Construction + local search + kicks always give a valid permutation
    /// that respects the shape and is never longer than where they started.
    #[test]
    fn heuristics_return_valid_routes_no_longer_than_their_start(
        pts in points(60),
        start_seed in any::<u64>(),
        s in 0usize..60, e in 0usize..60,
        iterations in 0u64..40,
        two_opt in any::<bool>(), or_opt in any::<bool>(), lk in any::<bool>(),
    ) {
        let d = PlanarPoints::new(pts, PlanarMetric::Euc2d).unwrap();
        let n = d.len();
        for shape in shapes(n, s, e) {
            // A random starting order that respects the shape.
            let mut order: Vec<usize> = (0..n).collect();
            let mut x = start_seed | 1;
            for i in (1..n).rev() {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                order.swap(i, (x % (i as u64 + 1)) as usize);
            }
            if let RouteShape::Open { start, end } = shape {
                if let Some(st) = start {
                    let k = order.iter().position(|&c| c == st).unwrap();
                    order.swap(0, k);
                }
                if let Some(en) = end {
                    let k = order.iter().position(|&c| c == en).unwrap();
                    order.swap(n - 1, k);
                }
            }
            let before = route_length(&d, shape, &order).unwrap();
            let opts = SolveOptions {
                max_iterations: iterations,
                time_budget: None,
                moves: Moves { two_opt, or_opt, lk },
                ..SolveOptions::default()
            };
            let sol = improve(&d, shape, &order, &opts).unwrap();
            let after = route_length(&d, shape, &sol.route.order).unwrap();
            prop_assert!(close(after, sol.route.length));
            prop_assert!(after <= before, "{shape:?}: {after} > start {before}");
            prop_assert_eq!(sol.initial_length, before);

            for c in [Construction::Greedy, Construction::NearestNeighbour] {
                let r = construct(&d, shape, c).unwrap();
                let len = route_length(&d, shape, &r.order).unwrap();
                prop_assert!(close(len, r.length));
                let opts = SolveOptions { construction: c, exact_up_to: 0, ..opts };
                let sol = solve(&d, shape, &opts).unwrap();
                prop_assert!(route_length(&d, shape, &sol.route.order).unwrap() <= r.length + 1e-9);
            }
        }
    }

    /// The heuristic reaches the optimum on small instances (where
    /// Held–Karp can check it) nearly always: here we require it within 10 %
    /// and never below the optimum (which would mean a wrong length).
    #[test]
    fn heuristic_is_never_below_the_optimum(pts in points(11)) {
        let d = PlanarPoints::new(pts, PlanarMetric::Euclidean).unwrap();
        let exact = held_karp(&d, RouteShape::Closed).unwrap();
        let opts = SolveOptions { exact_up_to: 0, max_iterations: 50, time_budget: None, ..SolveOptions::default() };
        let h = solve(&d, RouteShape::Closed, &opts).unwrap();
        prop_assert!(h.route.length >= exact.length - 1e-9);
        prop_assert!(h.route.length <= exact.length * 1.10 + 1e-9);
    }
}

#[test]
fn the_heuristic_is_deterministic_for_a_seed() {
    let pts: Vec<(f64, f64)> = (0..80u64)
        .map(|i| ((i * 7919 % 1000) as f64, (i * 104_729 % 997) as f64))
        .collect();
    let d = PlanarPoints::new(pts, PlanarMetric::Euc2d).unwrap();
    let opts = SolveOptions {
        max_iterations: 300,
        time_budget: None,
        seed: 9,
        ..SolveOptions::default()
    };
    let a = solve(&d, RouteShape::Closed, &opts).unwrap();
    let b = solve(&d, RouteShape::Closed, &opts).unwrap();
    assert_eq!(a.route, b.route);
    assert_eq!(a.iterations, 300);
}

#[test]
fn geo_points_route_a_courier() {
    // Drops along a line east of the start, given out of order.
    let pts: Vec<Point<f64>> = [0, 5, 2, 8, 1, 9, 3, 7, 4, 6, 10, 12, 11, 14, 13]
        .iter()
        .map(|&k| Point::new(13.40 + 0.001 * k as f64, 52.52))
        .collect();
    let d = GeoPoints::new(pts).unwrap();
    let sol = solve(&d, RouteShape::path_from(0), &SolveOptions::default()).unwrap();
    assert!(!sol.exact);
    // The best path goes east in order: 14 steps of ~68 m.
    let step = d.dist(0, 4);
    assert!((sol.route.length - 14.0 * step).abs() < 1e-6 * sol.route.length);
}

#[test]
fn bad_input_is_a_typed_error() {
    let empty = PlanarPoints::new(vec![], PlanarMetric::Euc2d).unwrap();
    assert!(matches!(
        solve(&empty, RouteShape::Closed, &SolveOptions::default()),
        Err(MatchingError::Empty { .. })
    ));
    assert!(matches!(
        held_karp(&empty, RouteShape::Closed),
        Err(MatchingError::Empty { .. })
    ));
    assert!(matches!(
        PlanarPoints::new(vec![(0.0, f64::NAN)], PlanarMetric::Euc2d),
        Err(MatchingError::InvalidCoordinate { index: 0, .. })
    ));
    assert!(matches!(
        GeoPoints::new(vec![Point::new(0.0, 0.0), Point::new(f64::NAN, 1.0)]),
        Err(MatchingError::InvalidCoordinate { index: 1, .. })
    ));
    assert!(matches!(
        GeoPoints::new(vec![Point::new(0.0, 86.0)]),
        Err(MatchingError::InvalidCoordinate { .. })
    ));
    assert!(matches!(
        DistanceMatrix::new(2, vec![0.0, -1.0, -1.0, 0.0]),
        Err(MatchingError::InvalidDistance { .. })
    ));
    assert!(matches!(
        DistanceMatrix::new(2, vec![0.0, 1.0, 2.0, 0.0]),
        Err(MatchingError::InvalidDistance { .. })
    ));
    assert!(matches!(
        DistanceMatrix::new(2, vec![0.0, 1.0, 1.0]),
        Err(MatchingError::SizeMismatch { .. })
    ));
    let d = PlanarPoints::new(
        vec![(0.0, 0.0), (1.0, 0.0), (2.0, 0.0)],
        PlanarMetric::Euc2d,
    )
    .unwrap();
    assert!(matches!(
        solve(&d, RouteShape::path_from(3), &SolveOptions::default()),
        Err(MatchingError::UnknownId { id: 3, .. })
    ));
    assert!(matches!(
        solve(&d, RouteShape::path_between(1, 1), &SolveOptions::default()),
        Err(MatchingError::InvalidParameter { .. })
    ));
    let zero_k = SolveOptions {
        neighbours: 0,
        ..SolveOptions::default()
    };
    assert!(matches!(
        solve(&d, RouteShape::Closed, &zero_k),
        Err(MatchingError::InvalidParameter {
            name: "neighbours",
            ..
        })
    ));
    let too_exact = SolveOptions {
        exact_up_to: HELD_KARP_LIMIT + 1,
        ..SolveOptions::default()
    };
    assert!(solve(&d, RouteShape::Closed, &too_exact).is_err());
    // No cap, no stall rule and no budget: the kicks would never stop.
    let endless = SolveOptions {
        max_iterations: u64::MAX,
        stall_per_stop: 0,
        time_budget: None,
        ..SolveOptions::default()
    };
    assert!(matches!(
        solve(&d, RouteShape::Closed, &endless),
        Err(MatchingError::InvalidParameter {
            name: "max_iterations",
            ..
        })
    ));
    assert!(improve(&d, RouteShape::Closed, &[0, 1, 2], &endless).is_err());
    for bad in [&[0, 1][..], &[0, 1, 1], &[0, 1, 5]] {
        assert!(improve(&d, RouteShape::Closed, bad, &SolveOptions::default()).is_err());
    }
    assert!(matches!(
        improve(
            &d,
            RouteShape::path_from(1),
            &[0, 1, 2],
            &SolveOptions::default()
        ),
        Err(MatchingError::InvalidTour { .. })
    ));
    let big =
        PlanarPoints::new(vec![(0.0, 0.0); HELD_KARP_LIMIT + 1], PlanarMetric::Euc2d).unwrap();
    assert!(matches!(
        held_karp(&big, RouteShape::Closed),
        Err(MatchingError::TooLarge { .. })
    ));
    // A user-implemented Distances with a NaN entry.
    struct Nan;
    impl Distances for Nan {
        fn len(&self) -> usize {
            20
        }
        fn dist(&self, a: usize, b: usize) -> f64 {
            if a + b == 7 { f64::NAN } else { 1.0 }
        }
    }
    assert!(matches!(
        solve(&Nan, RouteShape::Closed, &SolveOptions::default()),
        Err(MatchingError::InvalidDistance { .. })
    ));
}

#[test]
fn single_and_two_stop_routes() {
    let one = PlanarPoints::new(vec![(1.0, 1.0)], PlanarMetric::Euc2d).unwrap();
    for shape in [
        RouteShape::Closed,
        RouteShape::path_from(0),
        RouteShape::free_path(),
    ] {
        let r = solve(&one, shape, &SolveOptions::default()).unwrap().route;
        assert_eq!((r.order, r.length), (vec![0], 0.0));
        let opts = SolveOptions {
            exact_up_to: 0,
            ..SolveOptions::default()
        };
        let r = solve(&one, shape, &opts).unwrap().route;
        assert_eq!((r.order, r.length), (vec![0], 0.0));
    }
    let two = PlanarPoints::new(vec![(0.0, 0.0), (3.0, 4.0)], PlanarMetric::Euc2d).unwrap();
    assert_eq!(held_karp(&two, RouteShape::Closed).unwrap().length, 10.0);
    assert_eq!(
        held_karp(&two, RouteShape::path_from(1)).unwrap().order,
        vec![1, 0]
    );
}

// ---------------------------------------------------------------- TSPLIB

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/tsplib")
}

fn optima() -> Vec<(String, usize, f64)> {
    let text = std::fs::read_to_string(data_dir().join("OPTIMA.tsv")).unwrap();
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (
                f[0].to_string(),
                f[1].parse().unwrap(),
                f[3].parse().unwrap(),
            )
        })
        .collect()
}

fn instance(name: &str) -> TsplibInstance {
    let text = std::fs::read_to_string(data_dir().join(format!("{name}.tsp"))).unwrap();
    TsplibInstance::parse(&text).unwrap()
}

#[test]
fn every_shared_instance_parses_with_its_dimension() {
    let all = optima();
    assert_eq!(all.len(), 12);
    for (name, dim, _) in &all {
        let inst = instance(name);
        assert_eq!(inst.dimension(), *dim, "{name}");
        assert_eq!(&inst.name, name);
    }
}

/// Recomputes each published optimal tour with the reader and the
/// distance functions: it must equal OPTIMA.tsv exactly.
#[test]
fn optimal_tours_have_the_published_length() {
    let mut checked = 0;
    for (name, _, optimum) in optima() {
        let path = data_dir().join(format!("{name}.opt.tour"));
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let tour = parse_tour(&text).unwrap();
        let d = instance(&name).distances().unwrap();
        let len = route_length(&d, RouteShape::Closed, &tour).unwrap();
        assert_eq!(len, optimum, "{name}");
        checked += 1;
    }
    assert_eq!(checked, 10, "10 of the 12 instances ship an .opt.tour");
}

/// The stall rule alone stops the search: no kick cap, no time budget,
/// and the search ends `stall_per_stop × n` kicks after its last new best
/// tour (deterministic, so the count is exact).
#[test]
fn the_stall_rule_stops_the_search() {
    let (name, n, _) = optima().into_iter().find(|(_, n, _)| *n == 51).unwrap();
    let d = instance(&name).distances().unwrap();
    let opts = SolveOptions {
        max_iterations: u64::MAX,
        stall_per_stop: 20,
        time_budget: None,
        exact_up_to: 0,
        ..SolveOptions::default()
    };
    let a = solve(&d, RouteShape::Closed, &opts).unwrap();
    assert!(a.iterations >= 20 * n as u64, "{} kicks", a.iterations);
    // The same seed gives the same kicks, so the same stop.
    let b = solve(&d, RouteShape::Closed, &opts).unwrap();
    assert_eq!((a.iterations, a.route.order), (b.iterations, b.route.order));
    // A longer stall allowance never stops earlier.
    let longer = SolveOptions {
        stall_per_stop: 40,
        ..opts
    };
    assert!(solve(&d, RouteShape::Closed, &longer).unwrap().iterations > a.iterations);
}

/// The heuristic on the small instances with a fixed kick budget (so the
/// result is deterministic and the test stays fast in the test profile).
#[test]
fn heuristic_gap_on_small_instances_is_bounded() {
    let mut total = 0.0;
    let small: Vec<_> = optima().into_iter().filter(|(_, n, _)| *n <= 100).collect();
    assert_eq!(small.len(), 6);
    for (name, _, optimum) in &small {
        let d = instance(name).distances().unwrap();
        let opts = SolveOptions {
            max_iterations: 3_000,
            time_budget: None,
            ..SolveOptions::default()
        };
        let sol = solve(&d, RouteShape::Closed, &opts).unwrap();
        route_length(&d, RouteShape::Closed, &sol.route.order).unwrap();
        let gap = sol.route.length / optimum - 1.0;
        assert!(
            gap >= 0.0,
            "{name}: below the optimum: {}",
            sol.route.length
        );
        assert!(gap <= 0.02, "{name}: gap {:.2} %", gap * 100.0);
        total += gap;
    }
    assert!(
        total / small.len() as f64 <= 0.01,
        "mean gap {:.3} %",
        total / 6.0 * 100.0
    );
}

#[test]
fn tsplib_reader_variants() {
    // `KEY: value`, `KEY : value`, `KEY :value`, scientific and decimal
    // coordinates, nodes out of order, no EOF.
    let text = "NAME:x\nCOMMENT : a\nCOMMENT :b\nTYPE :TSP\nDIMENSION :  4\n\
                EDGE_WEIGHT_TYPE: ATT\nNODE_COORD_SECTION\n 2 1.0e1 0\n1 0 0\n4   -3.5E+0 2.25\n3 0.0 10\n";
    let inst = TsplibInstance::parse(text).unwrap();
    assert_eq!(inst.comment, "a\nb");
    assert_eq!(inst.metric, PlanarMetric::Att);
    assert_eq!(
        inst.coords,
        vec![(0.0, 0.0), (10.0, 0.0), (0.0, 10.0), (-3.5, 2.25)]
    );
    // ATT: r = sqrt(100 / 10) = 3.162…, t = 3 < r → 4.
    assert_eq!(inst.distances().unwrap().dist(0, 1), 4.0);
    let ceil = "DIMENSION: 2\nEDGE_WEIGHT_TYPE: CEIL_2D\nNODE_COORD_SECTION\n1 0 0\n2 1 1\nEOF\n";
    assert_eq!(
        TsplibInstance::parse(ceil)
            .unwrap()
            .distances()
            .unwrap()
            .dist(0, 1),
        2.0
    );
    // Tours: several ids per line, ended by EOF without -1.
    assert_eq!(
        parse_tour("TOUR_SECTION\n1 2\n3\nEOF").unwrap(),
        vec![0, 1, 2]
    );
}

#[test]
fn tsplib_reader_rejects_bad_files() {
    let head = "DIMENSION: 2\nEDGE_WEIGHT_TYPE: EUC_2D\nNODE_COORD_SECTION\n";
    let cases = [
        format!("{head}1 0 0\n"),                            // node 2 missing
        format!("{head}1 0 0\n1 1 1\n"),                     // node twice
        format!("{head}1 0 0\n3 1 1\n"),                     // id out of range
        format!("{head}1 0 0\n2 x 1\n"),                     // not a number
        format!("{head}1 0 0\n2 1\n"),                       // missing y
        format!("{head}1 0 0\n2 inf 1\n"),                   // not finite
        format!("{head}1 0 0\n2 NaN 1\n"),                   // not finite
        format!("{head}1 0 0\n2 1 1\n3 2 2\n"),              // more than DIMENSION
        "DIMENSION: 2\nEDGE_WEIGHT_TYPE: GEO\n".to_string(), // unsupported
        "TYPE: ATSP\nDIMENSION: 2\n".to_string(),
        "NODE_COORD_SECTION\n1 0 0\n".to_string(), // no DIMENSION
        "DIMENSION: two\n".to_string(),
        "EDGE_WEIGHT_TYPE: EUC_2D\n".to_string(),
        "".to_string(),
    ];
    for c in &cases {
        assert!(TsplibInstance::parse(c).is_err(), "accepted: {c:?}");
    }
    assert!(matches!(
        TsplibInstance::parse("DIMENSION: 0\nEDGE_WEIGHT_TYPE: EUC_2D\nNODE_COORD_SECTION\n"),
        Err(MatchingError::Empty { .. })
    ));
    assert!(parse_tour("1\n2\n").is_err());
    assert!(parse_tour("TOUR_SECTION\n-1\n").is_err());
    assert!(parse_tour("TOUR_SECTION\n0\n").is_err());
    assert!(parse_tour("TYPE: TSP\nTOUR_SECTION\n1\n").is_err());
    assert!(parse_tour("TOUR_SECTION\n1\nx\n").is_err());
}
