//! Issue 14, matching's cases: headers and counts that used to allocate
//! before checking (4, 5), sums that overflowed to infinity (8) and JSON
//! that skipped the constructors (5, 10). Every call that could hang or
//! abort runs under a deadline on its own thread.

use std::time::Duration;

use dispatchkit_geo_index::{LonLat, VehicleType};
use dispatchkit_matching::routing::{
    DistanceMatrix, Distances, MAX_DISTANCE, PlanarMetric, PlanarPoints, RouteShape, SolveOptions,
    TsplibInstance, held_karp, solve,
};
use dispatchkit_matching::{
    CostMatrix, EtaModel, HaversineEta, MatchingError, assign_greedy, assign_optimal,
};
use dispatchkit_test_support::within;

#[test]
fn case_04_tsplib_dimension_is_checked_against_the_lines_present() {
    for dim in ["18446744073709551615", "1000000000000", "100000000", "3"] {
        let text = format!(
            "NAME: x\nTYPE: TSP\nDIMENSION: {dim}\nEDGE_WEIGHT_TYPE: EUC_2D\nNODE_COORD_SECTION\n1 0 0\n2 3 4\nEOF\n"
        );
        // Returns at once with a typed error, allocating nothing from the
        // header (the 10^8 case took 7.7 s and 2.4 GB).
        let e = within(5, move || TsplibInstance::parse(&text)).unwrap_err();
        match &e {
            MatchingError::Tsplib { reason, text, .. } => {
                assert!(reason.contains("DIMENSION"), "{e}");
                assert!(text.contains(dim), "{e}");
            }
            other => panic!("{other}"),
        }
    }
    let ok = "DIMENSION: 2\nEDGE_WEIGHT_TYPE: EUC_2D\nNODE_COORD_SECTION\n1 0 0\n\n2 3 4\nEOF\n";
    assert_eq!(TsplibInstance::parse(ok).unwrap().dimension(), 2);
}

#[test]
fn case_05_cost_matrix_sizes_are_bounded_and_json_goes_through_new() {
    let e = CostMatrix::new(usize::MAX, 0, vec![]).unwrap_err();
    assert!(
        matches!(
            e,
            MatchingError::TooLarge {
                size: usize::MAX,
                ..
            }
        ),
        "{e}"
    );
    assert!(CostMatrix::from_fn(1 << 20, 1 << 20, |_, _| Some(1.0)).is_err());
    let m = CostMatrix::new(0, 5, vec![]).unwrap();
    assert_eq!(
        within(5, move || assign_optimal(&m)).unassigned_cols.len(),
        5
    );
    // JSON whose data does not match its shape.
    for bad in [
        r#"{"rows":3,"cols":3,"data":[1.0]}"#,
        r#"{"rows":18446744073709551615,"cols":0,"data":[]}"#,
        r#"{"rows":1,"cols":1,"data":[1.0],"extra":1}"#,
    ] {
        assert!(serde_json::from_str::<CostMatrix>(bad).is_err(), "{bad}");
    }
    for bad in [r#"{"n":4,"data":[0.0]}"#, r#"{"n":2,"data":[0,1,2,0]}"#] {
        assert!(
            serde_json::from_str::<DistanceMatrix>(bad).is_err(),
            "{bad}"
        );
    }
    let e = serde_json::from_str::<HaversineEta>(
        r#"{"circuity":1.3,"speed_kmh":[],"pickup_overhead_secs":60}"#,
    )
    .unwrap_err();
    assert!(e.to_string().contains("speed_kmh"), "{e}");
    // Round trips, "no edge" included (JSON has no infinity).
    let m = CostMatrix::from_fn(2, 2, |r, c| (r != c).then_some(1.5)).unwrap();
    let back: CostMatrix = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
    assert_eq!(back, m);
    let d = DistanceMatrix::new(2, vec![0.0, 3.0, 3.0, 0.0]).unwrap();
    let back: DistanceMatrix = serde_json::from_str(&serde_json::to_string(&d).unwrap()).unwrap();
    assert_eq!(back, d);
    let eta = HaversineEta::default();
    let back: HaversineEta = serde_json::from_str(&serde_json::to_string(&eta).unwrap()).unwrap();
    assert_eq!(back, eta);
}

#[test]
fn case_08_tour_lengths_cannot_overflow() {
    // Every off-diagonal 1e308: finite, but a tour of 5 overflows.
    let n = 5;
    let data: Vec<f64> = (0..n * n)
        .map(|k| if k / n == k % n { 0.0 } else { 1e308 })
        .collect();
    let e = DistanceMatrix::new(n, data).unwrap_err();
    assert!(
        matches!(e, MatchingError::InvalidDistance { value, .. } if value == 1e308),
        "{e}"
    );
    // Custom distances are checked on the way in too, for every solver.
    struct Huge(usize);
    impl Distances for Huge {
        fn len(&self) -> usize {
            self.0
        }
        fn dist(&self, a: usize, b: usize) -> f64 {
            if a == b { 0.0 } else { 1e308 }
        }
    }
    assert!(held_karp(&Huge(5), RouteShape::Closed).is_err());
    let opts = SolveOptions {
        time_budget: None,
        max_iterations: 10,
        ..SolveOptions::default()
    };
    assert!(solve(&Huge(40), RouteShape::Closed, &opts).is_err());
    // At the bound, every tour length is finite and Held-Karp returns a
    // permutation.
    let at_max = DistanceMatrix::from_fn(5, |_, _| MAX_DISTANCE).unwrap();
    let r = held_karp(&at_max, RouteShape::Closed).unwrap();
    let mut order = r.order.clone();
    order.sort_unstable();
    assert_eq!(order, vec![0, 1, 2, 3, 4]);
    assert!(r.length.is_finite());
    let s = solve(
        &at_max,
        RouteShape::Open {
            start: Some(0),
            end: None,
        },
        &opts,
    )
    .unwrap();
    assert!(s.route.length.is_finite());
    // The same bound for assignment costs (their sum and the solver's
    // "unassigned" penalty).
    assert!(CostMatrix::from_fn(2, 2, |_, _| Some(1e308)).is_err());
    let m = CostMatrix::from_fn(3, 3, |_, _| Some(CostMatrix::MAX_COST)).unwrap();
    let a = assign_optimal(&m);
    assert_eq!(a.pairs.len(), 3);
    assert!(a.total_cost.is_finite());
    assert!(assign_greedy(&m).total_cost.is_finite());
    // Planar points far apart stay usable (distances checked on use).
    let far = PlanarPoints::new(vec![(0.0, 0.0), (1e300, 1e300)], PlanarMetric::Euclidean).unwrap();
    assert!(held_karp(&far, RouteShape::Closed).is_err());
}

#[test]
fn case_10_eta_json_goes_through_the_constructor() {
    // Negative circuity, speeds and overhead used to load and price a
    // pickup at 206.9 s.
    let mut speeds = vec![-30.0; 64];
    let bad = serde_json::json!({
        "circuity": -2.0, "speed_kmh": speeds.clone(), "pickup_overhead_secs": -60.0
    });
    assert!(serde_json::from_value::<HaversineEta>(bad).is_err());
    speeds.fill(30.0);
    for (c, o) in [(-2.0, 60.0), (1.3, -60.0), (0.5, 60.0), (1.3, 1e300)] {
        let v = serde_json::json!({
            "circuity": c, "speed_kmh": speeds, "pickup_overhead_secs": o
        });
        let e = serde_json::from_value::<HaversineEta>(v).unwrap_err();
        assert!(e.to_string().contains("invalid parameter"), "{e}");
    }
    speeds[7] = 0.0;
    let v = serde_json::json!({ "circuity": 1.3, "speed_kmh": speeds, "pickup_overhead_secs": 60 });
    assert!(serde_json::from_value::<HaversineEta>(v).is_err());
    // A valid one works as the constructor's does.
    let good: HaversineEta = serde_json::from_value(serde_json::json!({
        "circuity": 1.3, "speed_kmh": vec![30.0; 64], "pickup_overhead_secs": 60.0
    }))
    .unwrap();
    let made = HaversineEta::new(1.3, 30.0, Duration::from_secs(60)).unwrap();
    let (a, b) = (
        LonLat::new(13.40, 52.52).unwrap(),
        LonLat::new(13.41, 52.52).unwrap(),
    );
    let v = VehicleType::new(0).unwrap();
    assert_eq!(good.pickup_eta_secs(a, b, v), made.pickup_eta_secs(a, b, v));
    // Cost matrices: a negative cost no longer loads.
    let e = serde_json::from_str::<CostMatrix>(r#"{"rows":1,"cols":1,"data":[-5.0]}"#).unwrap_err();
    assert!(e.to_string().contains("-5"), "{e}");
}
