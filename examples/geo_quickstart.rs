//! geo_index in one screen: index drivers, move them in batches, search
//! like `GEOSEARCH`, claim a driver, watch a geofence, let drivers expire.
//!
//! `cargo run --release --example geo_quickstart`

use std::time::{Duration, Instant};

use dispatchkit::geo::{
    Attrs, DriverId, DriverUpdate, Fence, Filter, GeoError, GeoIndex, LonLat, Rating, Search,
    Status, Unit, VehicleSet, VehicleType,
};

fn main() -> Result<(), GeoError> {
    let index = GeoIndex::new(); // TTL 30 s; share it across threads with Arc
    let t0 = Instant::now();
    let (car, xl) = (VehicleType::new(0)?, VehicleType::new(1)?);

    // GEOADD: 1,000 drivers around Seattle, in one batch.
    let seattle = LonLat::new(-122.3321, 47.6062)?;
    let batch: Vec<DriverUpdate> = (0..1_000u64)
        .map(|i| {
            let pos = LonLat::new(
                -122.3321 + (i % 40) as f64 * 0.002 - 0.04,
                47.6062 + (i / 40) as f64 * 0.002 - 0.025,
            )?;
            let vehicle = if i % 5 == 0 { xl } else { car };
            let rating = Rating::from_hundredths(430 + (i % 71) as u16)?;
            Ok(DriverUpdate::new(DriverId::new(i).unwrap(), pos, t0)
                .with_attrs(Attrs::available(vehicle, rating)))
        })
        .collect::<Result<_, GeoError>>()?;
    let report = index.upsert_batch_at(&batch, t0);
    println!("inserted {} drivers", report.inserted);

    // GEOSEARCH drivers FROMLONLAT … BYRADIUS 5 km ASC COUNT 3, but only
    // available XL drivers rated 4.5+ (a filter Redis does not have).
    let q = Search::radius(seattle, 5.0, Unit::Kilometers)
        .count(3)
        .filter(
            Filter::available()
                .vehicles(VehicleSet::of(&[xl]))
                .min_rating(Rating::new(4.5)?),
        );
    for hit in index.search_at(&q, t0)? {
        println!(
            "  {:>4}  {:.3} km  rated {:?}",
            hit.id.get(),
            hit.distance,
            hit.attrs.rating
        );
    }

    // A matcher claims the nearest one atomically: exactly one caller wins.
    let best = index.search_at(&q, t0)?[0].id;
    assert!(index.compare_and_set_status_at(best, Status::AVAILABLE, Status::BUSY, t0)?);
    assert!(!index.compare_and_set_status_at(best, Status::AVAILABLE, Status::BUSY, t0)?);

    // Geofence: tell us when a driver comes within 150 m of the restaurant.
    index.add_fence(
        7,
        Fence::Circle {
            center: seattle,
            radius_m: 150.0,
        },
    )?;
    let t1 = t0 + Duration::from_secs(4);
    let near = DriverUpdate::new(
        DriverId::new(3).unwrap(),
        LonLat::new(-122.3325, 47.6063)?,
        t1,
    );
    for e in index.upsert_batch_at(&[near], t1).events {
        println!("driver {} {:?} fence {}", e.driver, e.kind, e.fence);
    }

    // GEODIST and GEOPOS.
    let d = index.distance_at(DriverId::new(3).unwrap(), best, Unit::Meters, t1)?;
    println!(
        "driver 3 is {d:.0} m from driver {best}, at {}",
        index.position_at(DriverId::new(3).unwrap(), t1)?
    );

    // Drivers that stop reporting go offline after the TTL.
    let later = t0 + Duration::from_secs(31);
    println!(
        "online at +31 s: {} (driver 3 reported at +4 s)",
        index.live_len_at(later)
    );
    println!("purged: {}", index.purge_expired_at(later));
    Ok(())
}
