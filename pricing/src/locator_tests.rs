//! Unit tests of `locator.rs` (a child module: they see its private items).

use super::*;
use proptest::prelude::*;

fn h3(lon: f64, lat: f64, res: Resolution) -> CellIndex {
    LatLng::new(lat, lon).unwrap().to_cell(res)
}

fn resolve(loc: &Locator, learner: &mut Locator, lon: f64, lat: f64) -> CellIndex {
    let mut cur = Cursor::default();
    match loc.locate(&mut cur, learner, lon, lat).unwrap() {
        Located::Slot(s) => loc.cell(s),
        Located::Cell(c) => c,
    }
}

#[test]
fn cell_geometry_contains_its_centre_not_its_neighbours_centres() {
    let c = h3(-122.33, 47.61, Resolution::Seven);
    let g = CellGeom::of(c).unwrap();
    let ll = LatLng::from(c);
    assert!(g.contains(unit(ll.lng(), ll.lat())));
    for n in c.grid_disk::<Vec<_>>(1) {
        if n != c {
            let ll = LatLng::from(n);
            assert!(!g.contains(unit(ll.lng(), ll.lat())));
        }
    }
    // Pentagons are never on the fast path.
    let p = Resolution::Seven.pentagons().next().unwrap();
    assert!(CellGeom::of(p).is_none());
}

/// Points on and around cell vertices and edge midpoints — the hardest
/// places — agree with `h3o` once the tables are warm.
#[test]
fn boundaries_agree_with_h3o() {
    for res in [Resolution::Five, Resolution::Seven, Resolution::Nine] {
        let mut loc = Locator::new(res, DEFAULT_MAX_TILES);
        let centre = h3(2.35, 48.85, res);
        let mut pts = Vec::new();
        for c in centre.grid_disk::<Vec<_>>(3) {
            let b = c.boundary();
            for i in 0..b.len() {
                let (a, z) = (b[i], b[(i + 1) % b.len()]);
                for t in [0.0, 0.5, 1e-7, 1.0 - 1e-7] {
                    let lat = a.lat() + (z.lat() - a.lat()) * t;
                    let lon = a.lng() + (z.lng() - a.lng()) * t;
                    for d in [0.0, 1e-12, -1e-12, 1e-9, -1e-9, 1e-7, -1e-7] {
                        pts.push((lon + d, lat - d));
                    }
                }
            }
        }
        for round in 0..2 {
            let mut learner = loc.learner();
            for &(lon, lat) in &pts {
                assert_eq!(
                    resolve(&loc, &mut learner, lon, lat),
                    h3(lon, lat, res),
                    "({lon}, {lat}) at {res:?}, round {round}"
                );
            }
            loc.absorb(&learner);
            loc.check_invariants();
        }
        assert!(loc.slots() > 0);
    }
}

fn cases() -> u32 {
    dispatchkit_test_support::cases(10_000)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases() / 10,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("regressions"),
        )),
        ..ProptestConfig::default()
    })]

    /// Anywhere on the globe (including the antimeridian and near the
    /// poles), after warming on a cloud of points, every lookup equals
    /// `h3o`.
    #[test]
    fn agrees_with_h3o_anywhere(
        lon in -180.0_f64..=180.0,
        lat in -85.0_f64..=85.0,
        offsets in proptest::collection::vec((-0.05_f64..0.05, -0.05_f64..0.05), 50),
        res in 4_u8..=10,
    ) {
        let res = Resolution::try_from(res).unwrap();
        let mut loc = Locator::new(res, DEFAULT_MAX_TILES);
        let pts: Vec<(f64, f64)> = offsets
            .iter()
            .map(|&(dx, dy)| {
                let x = lon + dx;
                let x = if x > 180.0 { x - 360.0 } else if x < -180.0 { x + 360.0 } else { x };
                (x, (lat + dy).clamp(-85.0, 85.0))
            })
            .collect();
        for _ in 0..2 {
            let mut learner = loc.learner();
            for &(x, y) in &pts {
                prop_assert_eq!(resolve(&loc, &mut learner, x, y), h3(x, y, res));
            }
            loc.absorb(&learner);
        }
        loc.check_invariants();
    }
}
