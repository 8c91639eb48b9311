//! The index against its naive twin: a map of drivers scanned linearly with
//! Redis's GEOSEARCH rules written out plainly. Random sequences of inserts,
//! moves (some stale, some batched, some crossing shards), removals,
//! attribute changes, time steps, purges and searches must agree step by
//! step, and `validate()` must hold after every step.
//!
//! Cases: 1,000 by default; set `PROPTEST_CASES` for more.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dispatchkit_geo_index::{
    Attrs, Center, DriverId, DriverUpdate, EARTH_RADIUS_M, Filter, GeoError, GeoIndex, Hit,
    IndexConfig, LAT_LIMIT, LonLat, Order, REDIS_HAVERSINE, Rating, Search, Shape, Status, Unit,
    Upsert, VehicleSet, VehicleType,
};
use geo::{Distance, Point};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

// ---------------------------------------------------------------- the twin

#[derive(Debug, Clone, Copy)]
struct TwinDriver {
    pos: LonLat,
    attrs: Attrs,
    updated: u64,
    ttl: Option<u64>,
}

#[derive(Debug)]
struct Twin {
    drivers: BTreeMap<u64, TwinDriver>,
    default_ttl: u64,
}

fn hav(a: (f64, f64), b: (f64, f64)) -> f64 {
    REDIS_HAVERSINE.distance(Point::new(a.0, a.1), Point::new(b.0, b.1))
}

fn attr_key(a: &Attrs) -> (u8, u16, u8, u8) {
    (
        a.load,
        a.rating.hundredths(),
        a.vehicle.get(),
        a.status.get(),
    )
}

impl Twin {
    fn live(&self, d: &TwinDriver, now: u64) -> bool {
        now < d.updated + d.ttl.unwrap_or(self.default_ttl)
    }

    fn get(&self, id: u64, now: u64) -> Option<&TwinDriver> {
        self.drivers.get(&id).filter(|d| self.live(d, now))
    }

    /// An update: absent or expired → fresh insert; else last writer (by
    /// time, then position, then attributes) wins.
    fn upsert(
        &mut self,
        id: u64,
        pos: LonLat,
        attrs: Option<Attrs>,
        ttl: Option<u64>,
        at: u64,
        now: u64,
    ) -> Upsert {
        match self.get(id, now).copied() {
            None => {
                self.drivers.insert(
                    id,
                    TwinDriver {
                        pos,
                        attrs: attrs.unwrap_or_default(),
                        updated: at,
                        ttl,
                    },
                );
                Upsert::Inserted
            }
            Some(cur) => {
                let next = TwinDriver {
                    pos,
                    attrs: attrs.unwrap_or(cur.attrs),
                    updated: at,
                    ttl: ttl.or(cur.ttl),
                };
                let v = |d: &TwinDriver| (d.updated, d.pos, attr_key(&d.attrs));
                if v(&next) <= v(&cur) {
                    return Upsert::Stale;
                }
                self.drivers.insert(id, next);
                Upsert::Moved
            }
        }
    }

    fn search(&self, q: &Search, now: u64) -> Result<Vec<(u64, f64)>, ()> {
        let m = q.unit().metres();
        // Redis: 0 and infinity are sizes; NaN and negatives are errors.
        let ok = |v: f64| v >= 0.0;
        match q.shape() {
            Shape::Radius(r) if !ok(r) => return Err(()),
            Shape::Box(w, h) if !ok(w) || !ok(h) => return Err(()),
            _ => {}
        }
        if q.count_limit() == Some(0) || (q.is_any() && q.count_limit().is_none()) {
            return Err(());
        }
        let c = match q.center() {
            Center::Point(p) => p,
            Center::Member(id) => self.get(id.get(), now).ok_or(())?.pos,
        };
        // Shapes under 10 m are judged as Redis judges them, on the centres
        // of its 52-bit cells: the members' cells, and the centre's cell for
        // FROMMEMBER (or for a point that is its cell's centre).
        let reach = match q.shape() {
            Shape::Radius(r) => r * m,
            Shape::Box(w, h) => (w / 2.0 + h / 2.0) * m,
        };
        let exact = reach < 10.0;
        let cp = if exact {
            let cc = cell_centre(c.redis_geohash());
            let member = matches!(q.center(), Center::Member(_));
            if member || LonLat::new(cc.0, cc.1).is_ok_and(|p| p == c) {
                cc
            } else {
                (c.lon(), c.lat())
            }
        } else {
            (c.lon(), c.lat())
        };
        let mut out = Vec::new();
        for (&id, d) in &self.drivers {
            if !self.live(d, now) || !q.attr_filter().matches(&d.attrs) {
                continue;
            }
            let dp = if exact {
                cell_centre(d.pos.redis_geohash())
            } else {
                (d.pos.lon(), d.pos.lat())
            };
            let dist = hav(cp, dp);
            let inside = match q.shape() {
                Shape::Radius(r) => dist <= r * m,
                Shape::Box(w, h) => {
                    let lat_d = EARTH_RADIUS_M * (dp.1.to_radians() - cp.1.to_radians()).abs();
                    lat_d <= h * m / 2.0 && hav(dp, (cp.0, dp.1)) <= w * m / 2.0
                }
            };
            if inside {
                out.push((id, dist / m));
            }
        }
        let key = |a: &(u64, f64), b: &(u64, f64)| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0));
        match q.effective_order() {
            Some(Order::Asc) => out.sort_by(key),
            Some(Order::Desc) => out.sort_by(|a, b| key(b, a)),
            None => {}
        }
        Ok(out)
    }
}

/// The centre of a Redis geohash cell, decoded bit by bit (Redis's
/// `geohashDecode` + `geohashDecodeAreaToLongLat`, written out plainly).
fn cell_centre(hash: u64) -> (f64, f64) {
    let (mut lon_bits, mut lat_bits) = (0u64, 0u64);
    for i in 0..26 {
        lat_bits |= ((hash >> (2 * i)) & 1) << i;
        lon_bits |= ((hash >> (2 * i + 1)) & 1) << i;
    }
    let centre = |bits: u64, lim: f64| {
        let scale = lim - (-lim);
        let min = -lim + (bits as f64 / 67_108_864.0) * scale;
        let max = -lim + ((bits + 1) as f64 / 67_108_864.0) * scale;
        ((min + max) / 2.0).clamp(-lim, lim)
    };
    (centre(lon_bits, 180.0), centre(lat_bits, LAT_LIMIT))
}

// ------------------------------------------------------------- strategies

/// Anchors: a metro, both sides of the antimeridian, the latitude limit,
/// the equator and a tile corner (four shards meet there).
const ANCHORS: [(f64, f64); 6] = [
    (-122.33, 47.61),
    (179.998, -16.5),
    (-179.998, -16.5),
    (25.0, 85.0),
    (0.0, 0.0),
    (-122.6953125, 47.4609375),
];

fn point() -> impl Strategy<Value = LonLat> {
    (0..ANCHORS.len(), -0.05f64..0.05, -0.05f64..0.05, 0..4u8).prop_map(|(a, dx, dy, snap)| {
        let (lon, lat) = ANCHORS[a];
        // Some points sit exactly on the anchor, for ties and zero distances.
        let (dx, dy) = if snap == 0 { (0.0, 0.0) } else { (dx, dy) };
        let lon = (lon + dx + 180.0).rem_euclid(360.0) - 180.0;
        let lat = (lat + dy).clamp(-LAT_LIMIT, LAT_LIMIT);
        LonLat::new(lon, lat).expect("clamped into range")
    })
}

fn attrs() -> impl Strategy<Value = Attrs> {
    (0..4u8, 0..3u8, 420..=500u16, 0..=4u8).prop_map(|(s, v, r, load)| Attrs {
        status: Status::new(s).unwrap(),
        vehicle: VehicleType::new(v).unwrap(),
        rating: Rating::from_hundredths(r).unwrap(),
        load,
    })
}

fn filter() -> impl Strategy<Value = Filter> {
    (
        any::<bool>(),
        0..4u8,
        prop::option::of(430..=500u16),
        prop::option::of(1..5u8),
    )
        .prop_map(|(avail, veh, rating, load)| {
            let mut f = if avail {
                Filter::available()
            } else {
                Filter::new()
            };
            if veh > 0 {
                f = f.vehicles(VehicleSet::of(&[VehicleType::new(veh - 1).unwrap()]));
            }
            if let Some(r) = rating {
                f = f.min_rating(Rating::from_hundredths(r).unwrap());
            }
            if let Some(l) = load {
                f = f.max_load(l);
            }
            f
        })
}

fn unit() -> impl Strategy<Value = Unit> {
    prop_oneof![
        Just(Unit::Meters),
        Just(Unit::Kilometers),
        Just(Unit::Feet),
        Just(Unit::Miles)
    ]
}

fn search() -> impl Strategy<Value = Search> {
    let size = prop_oneof![
        12 => 0.05f64..12.0,
        1 => 12.0f64..3_000.0,
        // Under 10 m: Redis's cell-centre arithmetic.
        2 => 0.0f64..0.012,
        1 => prop_oneof![Just(0.0), Just(f64::INFINITY), Just(-1.0), Just(f64::NAN)],
    ];
    let center = prop_oneof![
        4 => point().prop_map(Center::Point),
        1 => (0..24u64).prop_map(|i| Center::Member(DriverId::new(i).unwrap())),
    ];
    (
        center,
        any::<bool>(),
        size.clone(),
        size,
        unit(),
        prop::option::of(0..8usize),
        0..4u8,
        0..3u8,
        filter(),
        any::<bool>(),
    )
        .prop_map(
            |(c, is_box, a_km, b_km, u, count, any_flag, order, f, hash)| {
                // Sizes are drawn in km; express them in the query's unit.
                let (a, b) = (a_km * 1000.0 / u.metres(), b_km * 1000.0 / u.metres());
                let shape = if is_box {
                    Shape::Box(a, b)
                } else {
                    Shape::Radius(a)
                };
                let mut q = Search::new(c, shape, u).filter(f);
                if let Some(n) = count {
                    q = q.count(n);
                }
                if any_flag == 0 {
                    q = q.any();
                }
                q = match order {
                    1 => q.asc(),
                    2 => q.desc(),
                    _ => q,
                };
                if hash { q.with_hash() } else { q }
            },
        )
}

#[derive(Debug, Clone)]
struct Upd {
    id: u64,
    pos: LonLat,
    attrs: Option<Attrs>,
    ttl_s: Option<u64>,
    back_ms: u64,
}

fn upd() -> impl Strategy<Value = Upd> {
    (
        0..24u64,
        point(),
        prop::option::of(attrs()),
        prop::option::weighted(0.15, 1..90u64),
        prop_oneof![3 => Just(0u64), 1 => 0..4_000u64],
    )
        .prop_map(|(id, pos, attrs, ttl_s, back_ms)| Upd {
            id,
            pos,
            attrs,
            ttl_s,
            back_ms,
        })
}

#[derive(Debug, Clone)]
enum Op {
    Upsert(Upd),
    Batch(Vec<Upd>),
    Move(u64, LonLat),
    Remove(u64),
    Claim(u64),
    SetLoad(u64, u8),
    Advance(u64),
    Purge,
    Search(Search),
    Get(u64),
    Dist(u64, u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => upd().prop_map(Op::Upsert),
        3 => prop::collection::vec(upd(), 1..24).prop_map(Op::Batch),
        2 => (0..24u64, point()).prop_map(|(i, p)| Op::Move(i, p)),
        1 => (0..24u64).prop_map(Op::Remove),
        1 => (0..24u64).prop_map(Op::Claim),
        1 => (0..24u64, 0..10u8).prop_map(|(i, l)| Op::SetLoad(i, l)),
        2 => prop_oneof![0..2_000u64, 2_000..40_000u64].prop_map(Op::Advance),
        1 => Just(Op::Purge),
        6 => search().prop_map(Op::Search),
        1 => (0..24u64).prop_map(Op::Get),
        1 => (0..24u64, 0..24u64).prop_map(|(a, b)| Op::Dist(a, b)),
    ]
}

// ------------------------------------------------------------- the check

fn check_search(index: &GeoIndex, twin: &Twin, q: &Search, t: Instant, now: u64) {
    let got = index.search_at(q, t);
    let want = twin.search(q, now);
    let (got, want) = match (got, want) {
        (Err(_), Err(())) => return,
        (Ok(g), Ok(w)) => (g, w),
        (g, w) => panic!("{q:?}: index {g:?} vs twin {w:?}"),
    };
    let mut ids: Vec<u64> = got.iter().map(|h| h.id.get()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), got.len(), "duplicate in result of {q:?}");
    for h in &got {
        check_hit(index, q, h, t);
    }
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(1.0);
    if q.is_any() {
        // ANY: any `count` matches (nearest cells first), sorted if asked.
        let k = q.count_limit().unwrap();
        assert_eq!(got.len(), k.min(want.len()), "{q:?}");
        for h in &got {
            let w = want
                .iter()
                .find(|w| w.0 == h.id.get())
                .unwrap_or_else(|| panic!("{q:?}: {h:?} is not a match"));
            assert!(close(h.distance, w.1));
        }
        return;
    }
    let mut want = want;
    if let Some(k) = q.count_limit() {
        want.truncate(k);
    }
    let mut got_pairs: Vec<(u64, f64)> = got.iter().map(|h| (h.id.get(), h.distance)).collect();
    if q.effective_order().is_none() {
        got_pairs.sort_by_key(|p| p.0);
        want.sort_by_key(|p| p.0);
    }
    assert_eq!(
        got_pairs.len(),
        want.len(),
        "{q:?}\nindex {got_pairs:?}\ntwin  {want:?}"
    );
    for (g, w) in got_pairs.iter().zip(&want) {
        assert!(
            g.0 == w.0 && close(g.1, w.1),
            "{q:?}\nindex {got_pairs:?}\ntwin  {want:?}"
        );
    }
}

fn check_hit(index: &GeoIndex, q: &Search, h: &Hit, t: Instant) {
    let v = index.get_at(h.id, t).expect("a hit is a live driver");
    assert_eq!((v.pos, v.attrs), (h.pos, h.attrs));
    assert_eq!(h.hash.is_some(), q.wants_hash());
    if let Some(hash) = h.hash {
        assert_eq!(hash, h.pos.redis_geohash());
    }
}

fn run(ops: Vec<Op>, shards: usize) {
    let t0 = Instant::now();
    let config = IndexConfig {
        default_ttl: Duration::from_secs(30),
        shards,
        epoch: Some(t0),
        ..IndexConfig::default()
    };
    let index = GeoIndex::with_config(config).unwrap();
    let mut twin = Twin {
        drivers: BTreeMap::new(),
        default_ttl: 30_000,
    };
    let mut now: u64 = 100_000;
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    for op in ops {
        let t = at(now);
        match op {
            Op::Upsert(u) => {
                let when = now - u.back_ms;
                let mut du = DriverUpdate::new(DriverId::new(u.id).unwrap(), u.pos, at(when));
                du.attrs = u.attrs;
                du.ttl = u.ttl_s.map(Duration::from_secs);
                let got = index.update_at(du, t).unwrap();
                let want = twin.upsert(u.id, u.pos, u.attrs, u.ttl_s.map(|s| s * 1000), when, now);
                assert_eq!(got, want, "upsert {u:?}");
            }
            Op::Batch(us) => {
                let batch: Vec<DriverUpdate> = us
                    .iter()
                    .map(|u| {
                        let mut du = DriverUpdate::new(
                            DriverId::new(u.id).unwrap(),
                            u.pos,
                            at(now - u.back_ms),
                        );
                        du.attrs = u.attrs;
                        du.ttl = u.ttl_s.map(Duration::from_secs);
                        du
                    })
                    .collect();
                let report = index.upsert_batch_at(&batch, t);
                assert!(report.rejected.is_empty());
                let (mut ins, mut mov, mut stale) = (0, 0, 0);
                for u in &us {
                    match twin.upsert(
                        u.id,
                        u.pos,
                        u.attrs,
                        u.ttl_s.map(|s| s * 1000),
                        now - u.back_ms,
                        now,
                    ) {
                        Upsert::Inserted => ins += 1,
                        Upsert::Moved => mov += 1,
                        Upsert::Stale => stale += 1,
                    }
                }
                assert_eq!(
                    (report.inserted + report.moved, report.stale),
                    (ins + mov, stale),
                    "{us:?}"
                );
            }
            Op::Move(id, pos) => {
                let got = index.move_at(DriverId::new(id).unwrap(), pos, t);
                match twin.get(id, now).is_some() {
                    true => {
                        let want = twin.upsert(id, pos, None, None, now, now);
                        assert_eq!(got, Ok(want));
                    }
                    false => assert_eq!(
                        got,
                        Err(GeoError::UnknownDriver(DriverId::new(id).unwrap()))
                    ),
                }
            }
            Op::Remove(id) => {
                let got = index.remove_at(DriverId::new(id).unwrap(), t);
                match twin.get(id, now).copied() {
                    Some(d) => {
                        let v = got.unwrap();
                        assert_eq!((v.pos, v.attrs), (d.pos, d.attrs));
                        twin.drivers.remove(&id);
                    }
                    None => assert_eq!(
                        got,
                        Err(GeoError::UnknownDriver(DriverId::new(id).unwrap()))
                    ),
                }
            }
            Op::Claim(id) => {
                let got = index.compare_and_set_status_at(
                    DriverId::new(id).unwrap(),
                    Status::AVAILABLE,
                    Status::BUSY,
                    t,
                );
                match twin.get(id, now).copied() {
                    Some(mut d) => {
                        let won = d.attrs.status == Status::AVAILABLE;
                        if won {
                            d.attrs.status = Status::BUSY;
                            twin.drivers.insert(id, d);
                        }
                        assert_eq!(got, Ok(won));
                    }
                    None => assert_eq!(
                        got,
                        Err(GeoError::UnknownDriver(DriverId::new(id).unwrap()))
                    ),
                }
            }
            Op::SetLoad(id, load) => {
                let got = index.update_attrs_at(DriverId::new(id).unwrap(), |a| a.load = load, t);
                match twin.get(id, now).copied() {
                    Some(_) if load > Attrs::MAX_LOAD => {
                        assert!(matches!(
                            got,
                            Err(GeoError::InvalidAttribute { what: "load", .. })
                        ));
                    }
                    Some(mut d) => {
                        d.attrs.load = load;
                        twin.drivers.insert(id, d);
                        assert_eq!(got, Ok(d.attrs));
                    }
                    None => assert_eq!(
                        got,
                        Err(GeoError::UnknownDriver(DriverId::new(id).unwrap()))
                    ),
                }
            }
            Op::Advance(ms) => now += ms,
            Op::Purge => {
                index.purge_expired_at(t);
                let live = twin.drivers.values().filter(|d| twin.live(d, now)).count();
                assert_eq!(
                    index.len(),
                    live,
                    "after a full purge only live drivers are stored"
                );
            }
            Op::Search(q) => check_search(&index, &twin, &q, t, now),
            Op::Get(id) => {
                let got = index.get_at(DriverId::new(id).unwrap(), t);
                match twin.get(id, now) {
                    Some(d) => {
                        let v = got.unwrap();
                        assert_eq!(
                            (v.pos, v.attrs, v.updated_at),
                            (d.pos, d.attrs, at(d.updated))
                        );
                        assert_eq!(v.expires_at, at(d.updated + d.ttl.unwrap_or(30_000)));
                    }
                    None => assert_eq!(
                        got,
                        Err(GeoError::UnknownDriver(DriverId::new(id).unwrap()))
                    ),
                }
            }
            Op::Dist(a, b) => {
                let got = index.distance_at(
                    DriverId::new(a).unwrap(),
                    DriverId::new(b).unwrap(),
                    Unit::Kilometers,
                    t,
                );
                match (twin.get(a, now), twin.get(b, now)) {
                    (Some(x), Some(y)) => {
                        let want =
                            hav((x.pos.lon(), x.pos.lat()), (y.pos.lon(), y.pos.lat())) / 1000.0;
                        assert!((got.unwrap() - want).abs() < 1e-9);
                    }
                    _ => assert!(matches!(got, Err(GeoError::UnknownDriver(_)))),
                }
            }
        }
        index.check_invariants();
        assert_eq!(
            index.live_len_at(at(now)),
            twin.drivers.values().filter(|d| twin.live(d, now)).count()
        );
    }
}

fn cases() -> u32 {
    dispatchkit_test_support::cases(1_000)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn index_agrees_with_naive_twin(ops in prop::collection::vec(op(), 1..32), shards in prop_oneof![Just(1usize), Just(4), Just(256)]) {
        run(ops, shards);
    }
}

/// Dense clusters (hundreds of drivers within a few km) so that k-nearest
/// walks cross many cells and rings, with filters, against brute force.
fn dense_case(
    anchor: usize,
    n: usize,
    seed: u64,
    queries: Vec<(f64, f64, usize, f64, Filter, Unit)>,
) {
    let split = IndexConfig::default().split_cells_at;
    let _ = dense_case_in(anchor, n, seed, (0.04, 0.03), false, split, queries);
}

/// [`dense_case`] with drivers spread over `spread` degrees (lon, lat)
/// around the anchor, cells split at `split_cells_at` drivers and, when
/// `moving`, half of the drivers then moved in a batch and a few one at a
/// time before the queries.
fn dense_case_in(
    anchor: usize,
    n: usize,
    seed: u64,
    spread: (f64, f64),
    moving: bool,
    split_cells_at: Option<usize>,
    queries: Vec<(f64, f64, usize, f64, Filter, Unit)>,
) -> GeoIndex {
    let t0 = Instant::now();
    let index = GeoIndex::with_config(IndexConfig {
        epoch: Some(t0),
        shards: 16,
        split_cells_at,
        ..IndexConfig::default()
    })
    .unwrap();
    let mut twin = Twin {
        drivers: BTreeMap::new(),
        default_ttl: 30_000,
    };
    let (alon, alat) = ANCHORS[anchor];
    let mut x = seed | 1;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 11) as f64 / (1u64 << 53) as f64
    };
    let place = |dx: f64, dy: f64| {
        let lon = (alon + dx + 180.0).rem_euclid(360.0) - 180.0;
        LonLat::new(lon, (alat + dy).clamp(-LAT_LIMIT, LAT_LIMIT)).unwrap()
    };
    let now = 1_000u64;
    let batch: Vec<DriverUpdate> = (0..n as u64)
        .map(|id| {
            // Sum of uniforms: a bell shape about 3 km wide.
            let dx = (rnd() + rnd() + rnd() - 1.5) * spread.0;
            let dy = (rnd() + rnd() + rnd() - 1.5) * spread.1;
            let a = Attrs {
                status: if rnd() < 0.7 {
                    Status::AVAILABLE
                } else {
                    Status::BUSY
                },
                vehicle: VehicleType::new((rnd() * 3.0) as u8).unwrap(),
                rating: Rating::from_hundredths(400 + (rnd() * 100.0) as u16).unwrap(),
                load: (rnd() * 4.0) as u8,
            };
            let pos = place(dx, dy);
            let _ = twin.upsert(id, pos, Some(a), None, now, now);
            DriverUpdate::new(
                DriverId::new(id).unwrap(),
                pos,
                t0 + Duration::from_millis(now),
            )
            .with_attrs(a)
        })
        .collect();
    let r = index.upsert_batch_at(&batch, t0 + Duration::from_millis(now));
    assert_eq!(r.inserted, n);
    index.check_invariants();
    let mut now = now;
    if moving {
        // Half of the drivers move at once (many across sub-cell and cell
        // edges), then a few one at a time.
        now += 1;
        let at = t0 + Duration::from_millis(now);
        let mut moves = Vec::new();
        for id in 0..n as u64 {
            if rnd() < 0.5 {
                let dx = (rnd() + rnd() + rnd() - 1.5) * spread.0;
                let dy = (rnd() + rnd() + rnd() - 1.5) * spread.1;
                let pos = place(dx, dy);
                let _ = twin.upsert(id, pos, None, None, now, now);
                moves.push(DriverUpdate::new(DriverId::new(id).unwrap(), pos, at));
            }
        }
        let r = index.upsert_batch_at(&moves, at);
        assert!(r.rejected.is_empty(), "{:?}", r.rejected);
        index.check_invariants();
        now += 1;
        let at = t0 + Duration::from_millis(now);
        for _ in 0..8 {
            let id = (rnd() * n as f64) as u64;
            let pos = place(
                (rnd() - 0.5) * spread.0 * 2.0,
                (rnd() - 0.5) * spread.1 * 2.0,
            );
            let _ = twin.upsert(id, pos, None, None, now, now);
            let _ = index
                .update_at(DriverUpdate::new(DriverId::new(id).unwrap(), pos, at), at)
                .unwrap();
        }
        index.check_invariants();
    }
    let t = t0 + Duration::from_millis(now);
    for (dx, dy, k, r_km, f, u) in queries {
        let c = place(dx, dy);
        let q = Search::radius(c, r_km * 1000.0 / u.metres(), u)
            .count(k)
            .filter(f);
        check_search(&index, &twin, &q, t, now);
        let q = Search::radius(c, r_km * 1000.0 / u.metres(), u)
            .filter(f)
            .desc();
        check_search(&index, &twin, &q, t, now);
        let q = Search::boxed(
            c,
            2.0 * r_km * 1000.0 / u.metres(),
            r_km * 1000.0 / u.metres(),
            u,
        )
        .count(k);
        check_search(&index, &twin, &q, t, now);
    }
    index
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases() / 5,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn nearest_walks_agree_with_brute_force_in_dense_clusters(
        anchor in 0..ANCHORS.len(),
        n in 50..600usize,
        seed in any::<u64>(),
        queries in prop::collection::vec(
            (-0.05f64..0.05, -0.04f64..0.04, 1..25usize, 0.1f64..8.0, filter(), unit()),
            1..12,
        ),
    ) {
        dense_case(anchor, n, seed, queries);
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases() / 10,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    })]

    /// Crowded cells (hundreds of drivers in one ~600 m cell) are split
    /// into sub-cells, moves then cross sub-cell edges: searches still
    /// agree with brute force and every invariant (sub-cells, directory)
    /// holds after each step.
    #[test]
    fn crowded_cells_split_and_agree_with_brute_force(
        anchor in 0..ANCHORS.len(),
        n in 400..1200usize,
        split in prop_oneof![Just(None), (8usize..100).prop_map(Some)],
        seed in any::<u64>(),
        queries in prop::collection::vec(
            (-0.003f64..0.003, -0.002f64..0.002, 1..25usize, 0.02f64..2.0, filter(), unit()),
            1..8,
        ),
    ) {
        let index = dense_case_in(anchor, n, seed, (0.003, 0.002), true, split, queries);
        // The anchor's cells hold hundreds of drivers: some were split,
        // unless splitting is off.
        prop_assert_eq!(index.stats().split_cells > 0, split.is_some());
    }
}
