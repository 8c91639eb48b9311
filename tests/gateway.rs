//! The gateway example's router (examples/gateway/app.rs) served on
//! 127.0.0.1:0 and driven by a real HTTP client over TCP: per-plan limits
//! with exact headers, 429 + Retry-After, the reset after the window (a
//! manual clock, no sleeping), per-key and per-IP isolation, the cached
//! menu loaded once, nearby drivers and bad input, concurrent clients that
//! never get more 200s than the quota, and the same on Redis.

#[path = "../examples/gateway/app.rs"]
#[allow(dead_code)]
mod app;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use app::{Backend, Gateway, Options, RulesFile};

const EPOCH_T0: u64 = 1_800_000_000;

struct Clock {
    t0: Instant,
    ms: Arc<AtomicU64>,
}

impl Clock {
    fn advance(&self, d: Duration) {
        self.ms.fetch_add(d.as_millis() as u64, Ordering::SeqCst);
    }
}

async fn start(backend: Backend, drivers: usize) -> (SocketAddr, Gateway, Clock) {
    let clock = Clock {
        t0: Instant::now(),
        ms: Arc::new(AtomicU64::new(0)),
    };
    let (t0, ms) = (clock.t0, Arc::clone(&clock.ms));
    let gateway = app::build(Options {
        rules: RulesFile::bundled(),
        backend,
        store_latency: Duration::ZERO,
        drivers,
        clock: Some((
            Arc::new(move || t0 + Duration::from_millis(ms.load(Ordering::SeqCst))),
            t0,
            SystemTime::UNIX_EPOCH + Duration::from_secs(EPOCH_T0),
        )),
    })
    .expect("gateway builds");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = gateway
        .router
        .clone()
        .into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, service).await.unwrap() });
    (addr, gateway, clock)
}

struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Reply {
    fn h(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

async fn get(client: &reqwest::Client, addr: SocketAddr, path: &str, key: Option<&str>) -> Reply {
    let mut req = client.get(format!("http://{addr}{path}"));
    if let Some(k) = key {
        req = req.header("x-api-key", k);
    }
    reply(req.send().await.unwrap()).await
}

async fn reply(res: reqwest::Response) -> Reply {
    Reply {
        status: res.status().as_u16(),
        headers: res.headers().clone(),
        body: res.text().await.unwrap(),
    }
}

const MENU: &str = "/v1/restaurants/17/menu";

#[tokio::test]
async fn free_plan_headers_429_and_reset() {
    let (addr, _g, clock) = start(Backend::Memory, 0).await;
    let c = reqwest::Client::new();
    for i in 0..10u32 {
        let r = get(&c, addr, MENU, Some("free-demo-key")).await;
        assert_eq!(r.status, 200, "request {i}");
        // Token bucket of 10 per minute: one token back every 6 s.
        assert_eq!(r.h("ratelimit-policy"), Some(r#""free-minute";q=10;w=60"#));
        assert_eq!(
            r.h("ratelimit"),
            Some(format!(r#""free-minute";r={};t=6"#, 9 - i).as_str())
        );
        assert_eq!(r.h("x-ratelimit-limit"), Some("10"));
        assert_eq!(
            r.h("x-ratelimit-remaining"),
            Some((9 - i).to_string().as_str())
        );
        // Full again 6 s per token used.
        assert_eq!(
            r.h("x-ratelimit-reset"),
            Some((EPOCH_T0 + 6 * u64::from(i + 1)).to_string().as_str())
        );
    }
    let r = get(&c, addr, MENU, Some("free-demo-key")).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.h("retry-after"), Some("6"));
    assert_eq!(r.h("content-type"), Some("application/problem+json"));
    assert_eq!(r.json()["status"], 429);
    assert!(r.json()["detail"].as_str().unwrap().contains("free-minute"));
    // Another free account is untouched; the pro plan has its own policy.
    let r = get(&c, addr, MENU, Some("free-key-2")).await;
    assert_eq!(
        (r.status, r.h("ratelimit")),
        (200, Some(r#""free-minute";r=9;t=6"#))
    );
    let r = get(&c, addr, MENU, Some("pro-demo-key")).await;
    assert_eq!(r.h("ratelimit-policy"), Some(r#""pro-minute";q=100;w=60"#));
    // One token back after 6 s.
    clock.advance(Duration::from_secs(6));
    let r = get(&c, addr, MENU, Some("free-demo-key")).await;
    assert_eq!(
        (r.status, r.h("ratelimit")),
        (200, Some(r#""free-minute";r=0;t=6"#))
    );
    assert_eq!(get(&c, addr, MENU, Some("free-demo-key")).await.status, 429);
    // A full window later, the whole burst.
    clock.advance(Duration::from_secs(60));
    let r = get(&c, addr, MENU, Some("free-demo-key")).await;
    assert_eq!((r.status, r.h("x-ratelimit-remaining")), (200, Some("9")));
}

#[tokio::test]
async fn keys_are_checked_before_anything_else() {
    let (addr, g, _clock) = start(Backend::Memory, 0).await;
    let c = reqwest::Client::new();
    let r = get(&c, addr, MENU, None).await;
    assert_eq!(
        (r.status, r.h("content-type")),
        (401, Some("application/problem+json"))
    );
    let r = get(&c, addr, MENU, Some("no-such-key")).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["detail"], "unknown API key");
    assert_eq!(
        g.store_loads.load(Ordering::SeqCst),
        0,
        "rejected before the handler"
    );
}

#[tokio::test]
async fn login_is_limited_per_ip() {
    let (addr, _g, clock) = start(Backend::Memory, 0).await;
    let c = reqwest::Client::new();
    let login = || c.post(format!("http://{addr}/v1/login")).send();
    for i in 0..5 {
        let r = reply(login().await.unwrap()).await;
        assert_eq!(r.status, 200, "login {i}");
        assert_eq!(r.h("ratelimit-policy"), Some(r#""login-ip";q=5;w=60"#));
    }
    let r = reply(login().await.unwrap()).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.h("retry-after"), Some("60"));
    // The API key plans are separate from the login limit.
    assert_eq!(get(&c, addr, MENU, Some("free-demo-key")).await.status, 200);
    clock.advance(Duration::from_secs(60));
    assert_eq!(reply(login().await.unwrap()).await.status, 200);
}

#[tokio::test]
async fn menus_are_cached_and_unknown_ones_are_404() {
    let (addr, g, _clock) = start(Backend::Memory, 0).await;
    let c = reqwest::Client::new();
    let first = get(&c, addr, MENU, Some("pro-demo-key")).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.json()["restaurant"], 17);
    for _ in 0..5 {
        assert_eq!(
            get(&c, addr, MENU, Some("pro-demo-key")).await.body,
            first.body
        );
    }
    assert_eq!(g.store_loads.load(Ordering::SeqCst), 1);
    let r = get(
        &c,
        addr,
        "/v1/restaurants/123456/menu",
        Some("pro-demo-key"),
    )
    .await;
    assert_eq!(r.status, 404);
    // The miss is negatively cached for 10 s: no second store read.
    get(
        &c,
        addr,
        "/v1/restaurants/123456/menu",
        Some("pro-demo-key"),
    )
    .await;
    assert_eq!(g.store_loads.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn nearby_drivers_and_bad_coordinates() {
    let (addr, _g, _clock) = start(Backend::Memory, 20_000).await;
    let c = reqwest::Client::new();
    // London is one of the workload's metros.
    let r = get(
        &c,
        addr,
        "/v1/drivers/nearby?lon=-0.1276&lat=51.5072&radius=5",
        Some("pro-demo-key"),
    )
    .await;
    assert_eq!(r.status, 200);
    let drivers = r.json()["drivers"].as_array().unwrap().clone();
    assert_eq!(drivers.len(), 10);
    let d: Vec<f64> = drivers
        .iter()
        .map(|x| x["distance_km"].as_f64().unwrap())
        .collect();
    assert!(d.windows(2).all(|w| w[0] <= w[1]), "{d:?}");
    assert!(d.iter().all(|&x| x <= 5.0));
    // Every other driver is available: only even ids come back.
    assert!(drivers.iter().all(|x| x["id"].as_u64().unwrap() % 2 == 0));
    for bad in [
        "/v1/drivers/nearby?lon=200&lat=0",
        "/v1/drivers/nearby?lon=0&lat=NaN",
        "/v1/drivers/nearby?lon=0&lat=89",
        "/v1/drivers/nearby?lon=0&lat=0&radius=-1",
        "/v1/drivers/nearby?lat=0",
    ] {
        let r = get(&c, addr, bad, Some("pro-demo-key")).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert_eq!(
            r.h("content-type"),
            Some("application/problem+json"),
            "{bad}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_never_get_more_than_the_plan() {
    let (addr, _g, _clock) = start(Backend::Memory, 0).await;
    // The clock stands still: the pro plan's burst of 100 is all there is.
    let mut tasks = Vec::new();
    for _ in 0..2 {
        tasks.push(tokio::spawn(async move {
            let c = reqwest::Client::new();
            let mut ok = 0u32;
            for _ in 0..5_000 {
                let r = c
                    .get(format!("http://{addr}{MENU}"))
                    .header("x-api-key", "pro-key-2")
                    .send()
                    .await
                    .unwrap();
                match r.status().as_u16() {
                    200 => ok += 1,
                    429 => {}
                    s => panic!("status {s}"),
                }
            }
            ok
        }));
    }
    let mut oks = Vec::new();
    for t in tasks {
        oks.push(t.await.unwrap());
    }
    assert_eq!(oks.iter().sum::<u32>(), 100, "{oks:?}");
}

#[tokio::test]
async fn the_redis_backend_limits_the_same_way() {
    // None only outside CI (under CI=true a missing server fails).
    let Some(server) = dispatchkit_test_support::redis_server::RedisServer::start() else {
        return;
    };
    let (addr, _g, _clock) = start(Backend::Redis(server.url()), 0).await;
    let c = reqwest::Client::new();
    for i in 0..10u32 {
        let r = get(&c, addr, MENU, Some("free-demo-key")).await;
        assert_eq!(r.status, 200, "request {i}");
        assert_eq!(
            r.h("ratelimit"),
            Some(format!(r#""free-minute";r={};t=6"#, 9 - i).as_str())
        );
    }
    let r = get(&c, addr, MENU, Some("free-demo-key")).await;
    assert_eq!((r.status, r.h("retry-after")), (429, Some("6")));
    // A second gateway instance on the same Redis shares the quota.
    let (other, _g2, _c2) = start(Backend::Redis(server.url()), 0).await;
    assert_eq!(
        get(&c, other, MENU, Some("free-demo-key")).await.status,
        429
    );
    assert_eq!(get(&c, other, MENU, Some("free-key-2")).await.status, 200);
}
