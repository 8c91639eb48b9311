//! Two OS processes (this test binary spawned twice as workers; the
//! `worker` test does nothing unless `DK_GEO_WORKER` is set) share one
//! `RedisGeoIndex` — on a local 3-master Redis Cluster (the two-step
//! layout) and on a single server (one script per write) — and, at once:
//! - claim every driver (status AVAILABLE → BUSY): each driver is won by
//!   exactly one process, and both win some (they contended);
//! - move every driver back and forth between two tiles ~35 km apart with
//!   interleaved update times: afterwards each driver is where its latest
//!   update (by update time, whichever process sent it) put it, and
//!   searches over either tile return only the drivers whose latest update
//!   is there (no ghost left in the tile a driver moved out of);
//! - search around drivers that expired before the run began (never swept):
//!   none is ever returned.
//!
//! Skipped with a note without `redis-server` (a failure under `CI=true`).

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dispatchkit_geo_index::{
    Attrs, DriverId, DriverIndex, DriverUpdate, Filter, LonLat, RedisGeoConfig, RedisGeoIndex,
    Search, Status, Unit,
};
use dispatchkit_test_support::redis_server::{RedisCluster, RedisServer};

/// Drivers claimed and moved.
const DRIVERS: u64 = 300;
/// Drivers that expired before the workers start.
const EXPIRED: u64 = 100;
/// Move rounds per worker.
const ROUNDS: u64 = 6;

fn id(n: u64) -> DriverId {
    DriverId::new(n).unwrap()
}

fn index(url: &str, cluster: bool) -> (RedisGeoIndex, Instant, u64) {
    let (now, sys) = (Instant::now(), SystemTime::now());
    let mut cfg = RedisGeoConfig::new(url);
    cfg.cluster = cluster;
    cfg.prefix = "mp".into();
    cfg.clock = Some((now, sys));
    cfg.io_timeout = Duration::from_secs(10);
    let ms = sys.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    (RedisGeoIndex::new(cfg).unwrap(), now, ms)
}

/// The instant of Unix ms `ms` on a clock pinned at (`now`, `now_ms`).
fn at_ms(now: Instant, now_ms: u64, ms: u64) -> Instant {
    if ms >= now_ms {
        now + Duration::from_millis(ms - now_ms)
    } else {
        now - Duration::from_millis(now_ms - ms)
    }
}

/// Where worker `w`'s update number `step` puts driver `d`: worker 0 in
/// the western tile, worker 1 in the eastern one; the latitude encodes the
/// step.
fn position(d: u64, w: u64, step: u64) -> LonLat {
    let lon = 13.0 + 0.5 * w as f64 + 0.0001 * d as f64;
    LonLat::new(lon, 52.0 + 0.0001 * step as f64).unwrap()
}

/// The update time (ms after the base) of worker `w`'s round `r` for
/// driver `d`: the workers' times interleave, and which one is last
/// depends on the driver.
fn update_ms(d: u64, w: u64, r: u64) -> u64 {
    r * 10 + if (d + w).is_multiple_of(2) { 3 } else { 7 }
}

#[test]
fn worker() {
    let (Ok(url), Ok(w), Ok(base)) = (
        std::env::var("DK_GEO_WORKER"),
        std::env::var("DK_GEO_WORKER_ID"),
        std::env::var("DK_GEO_BASE_MS"),
    ) else {
        return;
    };
    let (w, base): (u64, u64) = (w.parse().unwrap(), base.parse().unwrap());
    let cluster = std::env::var_os("DK_GEO_CLUSTER").is_some();
    let (index, t, t_ms) = index(&url, cluster);
    // Start together: a barrier on the server.
    let mut con: Box<dyn redis::ConnectionLike> = if cluster {
        Box::new(
            redis::cluster::ClusterClient::new(vec![url.as_str()])
                .unwrap()
                .get_connection()
                .unwrap(),
        )
    } else {
        Box::new(
            redis::Client::open(url.as_str())
                .unwrap()
                .get_connection()
                .unwrap(),
        )
    };
    let _: u64 = redis::cmd("INCR")
        .arg("mp-barrier")
        .query(&mut *con)
        .unwrap();
    while redis::cmd("GET")
        .arg("mp-barrier")
        .query::<u64>(&mut *con)
        .unwrap()
        < 2
    {
        std::hint::spin_loop();
    }
    let (mut won, mut stale, mut expired_seen) = (Vec::new(), 0, 0);
    // Worker 1 goes through the drivers in reverse, so the two meet.
    let order: Vec<u64> = if w == 0 {
        (0..DRIVERS).collect()
    } else {
        (0..DRIVERS).rev().collect()
    };
    for r in 0..ROUNDS {
        let now = at_ms(t, t_ms, base + r * 10 + 10);
        let batch: Vec<DriverUpdate> = order
            .iter()
            .map(|&d| {
                let at = at_ms(t, t_ms, base + update_ms(d, w, r));
                DriverUpdate::new(id(d), position(d, w, r * 2 + w), at)
            })
            .collect();
        let report = index.upsert_batch_at(&batch, now).unwrap();
        assert!(report.rejected.is_empty(), "{:?}", report.rejected);
        stale += report.stale;
        for (k, &d) in order.iter().enumerate() {
            if k % ROUNDS as usize == r as usize
                && index
                    .compare_and_set_status_at(id(d), Status::AVAILABLE, Status::BUSY, now)
                    .unwrap()
            {
                won.push(d);
            }
        }
        let near_expired = Search::radius(LonLat::new(2.35, 48.85).unwrap(), 5.0, Unit::Kilometers);
        expired_seen += index.search_at(&near_expired, now).unwrap().len();
    }
    println!("STALE={stale}");
    println!("EXPIRED_SEEN={expired_seen}");
    println!(
        "WON={}",
        won.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
    );
}

fn field<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.split_once(name).map(|(_, v)| v))
        .unwrap_or_else(|| panic!("no {name} in {out}"))
        .trim()
}

#[test]
fn two_processes_on_a_cluster_claim_once_and_keep_the_latest_update() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    two_processes(&cluster.url(), true);
}

#[test]
fn two_processes_on_one_server_claim_once_and_keep_the_latest_update() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    two_processes(&server.url(), false);
}

fn two_processes(url: &str, cluster: bool) {
    let url = url.to_string();
    let (index, t, t_ms) = index(&url, cluster);
    let base = t_ms;
    // The drivers, available, and drivers that expired (1 ms TTL) long
    // before the workers' times, near Paris.
    let mut setup: Vec<DriverUpdate> = (0..DRIVERS)
        .map(|d| {
            DriverUpdate::new(id(d), position(d, 0, 0), at_ms(t, t_ms, base))
                .with_attrs(Attrs::default())
        })
        .collect();
    setup.extend((0..EXPIRED).map(|k| {
        DriverUpdate::new(
            id(10_000 + k),
            LonLat::new(2.35 + 0.0001 * k as f64, 48.85).unwrap(),
            at_ms(t, t_ms, base),
        )
        .with_ttl(Duration::from_millis(1))
    }));
    let r = index.upsert_batch_at(&setup, at_ms(t, t_ms, base)).unwrap();
    assert_eq!(r.inserted as u64, DRIVERS + EXPIRED);

    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..2)
        .map(|w| {
            let mut cmd = Command::new(&exe);
            if cluster {
                cmd.env("DK_GEO_CLUSTER", "1");
            }
            cmd.args(["--exact", "worker", "--nocapture", "--test-threads", "1"])
                .env("DK_GEO_WORKER", &url)
                .env("DK_GEO_WORKER_ID", w.to_string())
                .env("DK_GEO_BASE_MS", base.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut claimed: Vec<u64> = Vec::new();
    let mut stale = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "worker failed: {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            field(&text, "EXPIRED_SEEN="),
            "0",
            "an expired driver was returned"
        );
        stale += field(&text, "STALE=").parse::<usize>().unwrap();
        let won: Vec<u64> = field(&text, "WON=")
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap())
            .collect();
        assert!(!won.is_empty(), "each process won some claims");
        claimed.extend(won);
    }
    // Claims: every driver exactly once.
    let unique: HashSet<u64> = claimed.iter().copied().collect();
    assert_eq!(unique.len(), claimed.len(), "a driver was claimed twice");
    assert_eq!(unique.len() as u64, DRIVERS, "every driver was claimed");
    // Interleaved times: some updates arrived after a later one.
    assert!(stale > 0, "the workers' updates never overtook each other");
    // Updates: each driver where its latest update put it, BUSY.
    let now = at_ms(t, t_ms, base + ROUNDS * 10 + 10);
    let mut west = HashSet::new();
    for d in 0..DRIVERS {
        let (w, r) = (0..2)
            .flat_map(|w| (0..ROUNDS).map(move |r| (w, r)))
            .max_by_key(|&(w, r)| update_ms(d, w, r))
            .unwrap();
        let v = index.get_at(id(d), now).unwrap();
        assert_eq!(v.pos, position(d, w, r * 2 + w), "driver {d}: lost update");
        assert_eq!(v.attrs.status, Status::BUSY);
        if w == 0 {
            west.insert(d);
        }
    }
    assert!(!west.is_empty() && west.len() < DRIVERS as usize);
    // No ghosts: each tile's search returns exactly the drivers whose
    // latest position is there.
    for (w, lon) in [(0, 13.015), (1, 13.515)] {
        let q = Search::radius(LonLat::new(lon, 52.0).unwrap(), 5.0, Unit::Kilometers)
            .filter(Filter::new().status(Status::BUSY));
        let got: HashSet<u64> = index
            .search_at(&q, now)
            .unwrap()
            .iter()
            .map(|h| h.id.get())
            .collect();
        let want: HashSet<u64> = (0..DRIVERS)
            .filter(|d| west.contains(d) == (w == 0))
            .collect();
        assert_eq!(got, want, "tile of worker {w}");
    }
}
