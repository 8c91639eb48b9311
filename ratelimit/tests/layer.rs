//! `RateLimitLayer` in a real axum server on 127.0.0.1:0, driven by a real
//! HTTP client (reqwest) over TCP: exact header values for a known
//! sequence, the 429 with `Retry-After` and a problem body, per-key
//! isolation, the reset after the window (a manual clock: no sleeping),
//! rejections, fail-open and fail-closed on a dead Redis, and concurrent
//! clients that never get more 200s than the quota.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::extract::ConnectInfo;
use axum::routing::get;
use dispatchkit_ratelimit::layer::{HeaderKey, Keyed, PeerIp, RateLimitLayer, RedisKeyed};
use dispatchkit_ratelimit::{
    Decision, FixedWindow, Gcra, KeyedLimit, KeyedRateLimiter, Quota, RateLimitError, RedisConfig,
    RedisRateLimiter, RuleName,
};

/// A clock the test moves: `t0` plus the stored milliseconds.
#[derive(Clone)]
struct Manual {
    t0: Instant,
    ms: Arc<AtomicU64>,
}

impl Manual {
    fn new() -> Self {
        Self {
            t0: Instant::now(),
            ms: Arc::new(AtomicU64::new(0)),
        }
    }
    fn now(&self) -> Instant {
        self.t0 + Duration::from_millis(self.ms.load(Ordering::SeqCst))
    }
    fn advance(&self, d: Duration) {
        self.ms.fetch_add(d.as_millis() as u64, Ordering::SeqCst);
    }
}

/// The wall-clock time of `t0` in these tests.
const EPOCH_T0: u64 = 1_700_000_000;

fn layer_with<L>(limit: L, clock: &Manual) -> RateLimitLayer<L> {
    let c = clock.clone();
    RateLimitLayer::new(limit).legacy_headers(true).clock(
        move || c.now(),
        clock.t0,
        SystemTime::UNIX_EPOCH + Duration::from_secs(EPOCH_T0),
    )
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn app<L>(layer: RateLimitLayer<L>) -> Router
where
    L: dispatchkit_ratelimit::layer::RequestLimit<axum::body::Body>,
{
    Router::new()
        .route("/v1/hello", get(|| async { "hello" }))
        .layer(layer)
}

struct Seen {
    status: u16,
    header: Vec<(String, String)>,
    body: String,
}

impl Seen {
    fn get(&self, name: &str) -> Option<&str> {
        self.header
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

async fn call(client: &reqwest::Client, addr: SocketAddr, key: Option<&str>) -> Seen {
    let mut req = client.get(format!("http://{addr}/v1/hello"));
    if let Some(k) = key {
        req = req.header("x-api-key", k);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let header = res
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
        .collect();
    let body = res.text().await.unwrap();
    Seen {
        status,
        header,
        body,
    }
}

fn per_minute(
    limit: u32,
    clock: &Manual,
) -> Keyed<KeyedRateLimiter<String, FixedWindow>, HeaderKey> {
    Keyed::new(
        KeyedRateLimiter::new_at(
            FixedWindow::new(Quota::per_minute(limit).unwrap()),
            clock.t0,
        ),
        HeaderKey::new("x-api-key").unwrap(),
        RuleName::new("per-key").unwrap(),
    )
}

#[tokio::test]
async fn headers_429_isolation_and_reset_over_tcp() {
    let clock = Manual::new();
    let addr = serve(app(layer_with(per_minute(3, &clock), &clock))).await;
    let client = reqwest::Client::new();
    clock.advance(Duration::from_secs(15));
    for remaining in [2, 1, 0] {
        let r = call(&client, addr, Some("alice")).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body, "hello");
        assert_eq!(r.get("ratelimit-policy"), Some(r#""per-key";q=3;w=60"#));
        // The window started at t0: 45 s of it are left.
        assert_eq!(
            r.get("ratelimit"),
            Some(format!(r#""per-key";r={remaining};t=45"#).as_str())
        );
        assert_eq!(r.get("x-ratelimit-limit"), Some("3"));
        assert_eq!(
            r.get("x-ratelimit-remaining"),
            Some(remaining.to_string().as_str())
        );
        assert_eq!(
            r.get("x-ratelimit-reset"),
            Some((EPOCH_T0 + 60).to_string().as_str())
        );
        assert_eq!(r.get("retry-after"), None);
    }
    let r = call(&client, addr, Some("alice")).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.get("retry-after"), Some("45"));
    assert_eq!(r.get("ratelimit"), Some(r#""per-key";r=0;t=45"#));
    assert_eq!(r.get("content-type"), Some("application/problem+json"));
    let problem: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(problem["status"], 429);
    assert_eq!(problem["title"], "Too Many Requests");
    assert_eq!(problem["type"], "about:blank");
    assert!(
        problem["detail"].as_str().unwrap().contains("per-key"),
        "{problem}"
    );
    // Another key has its own quota.
    let r = call(&client, addr, Some("bob")).await;
    assert_eq!(
        (r.status, r.get("ratelimit")),
        (200, Some(r#""per-key";r=2;t=45"#))
    );
    // Next window: alice is back.
    clock.advance(Duration::from_secs(45));
    let r = call(&client, addr, Some("alice")).await;
    assert_eq!(
        (r.status, r.get("ratelimit")),
        (200, Some(r#""per-key";r=2;t=60"#))
    );
    assert_eq!(
        r.get("x-ratelimit-reset"),
        Some((EPOCH_T0 + 120).to_string().as_str())
    );
}

#[tokio::test]
async fn a_request_without_a_key_is_rejected_with_a_problem() {
    let clock = Manual::new();
    let addr = serve(app(layer_with(per_minute(3, &clock), &clock))).await;
    let r = call(&reqwest::Client::new(), addr, None).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.get("www-authenticate"),
        Some(r#"ApiKey header="x-api-key""#)
    );
    assert_eq!(r.get("content-type"), Some("application/problem+json"));
    let problem: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(problem["status"], 401);
    assert!(problem["detail"].as_str().unwrap().contains("x-api-key"));
    assert_eq!(r.get("ratelimit"), None);
}

#[tokio::test]
async fn gcra_headers_and_legacy_off() {
    // GCRA 10/s with a burst of 2; only the IETF fields.
    let clock = Manual::new();
    let limit = Keyed::new(
        KeyedRateLimiter::<String, _>::new_at(
            Gcra::new(Quota::per_second(10).unwrap().with_burst(2).unwrap()),
            clock.t0,
        ),
        HeaderKey::new("x-api-key").unwrap(),
        RuleName::new("burst").unwrap(),
    );
    let c = clock.clone();
    let layer = RateLimitLayer::new(limit).clock(move || c.now(), clock.t0, SystemTime::now());
    let addr = serve(app(layer)).await;
    let client = reqwest::Client::new();
    let a = call(&client, addr, Some("k")).await;
    assert_eq!(a.get("ratelimit-policy"), Some(r#""burst";q=10;w=1"#));
    assert_eq!(a.get("ratelimit"), Some(r#""burst";r=1;t=1"#));
    assert_eq!(a.get("x-ratelimit-limit"), None);
    let b = call(&client, addr, Some("k")).await;
    assert_eq!(b.get("ratelimit"), Some(r#""burst";r=0;t=1"#));
    let c = call(&client, addr, Some("k")).await;
    // 100 ms to the next token, rounded up to whole seconds.
    assert_eq!((c.status, c.get("retry-after")), (429, Some("1")));
    clock.advance(Duration::from_millis(100));
    assert_eq!(call(&client, addr, Some("k")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_never_exceed_the_quota() {
    // The clock stands still: exactly 500 requests fit, of 10,000.
    let clock = Manual::new();
    let addr = serve(app(layer_with(per_minute(500, &clock), &clock))).await;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let (mut ok, mut limited) = (0u32, 0u32);
            for _ in 0..2_500 {
                let res = client
                    .get(format!("http://{addr}/v1/hello"))
                    .header("x-api-key", "shared")
                    .send()
                    .await
                    .unwrap();
                match res.status().as_u16() {
                    200 => ok += 1,
                    429 => limited += 1,
                    s => panic!("unexpected status {s}"),
                }
            }
            (ok, limited)
        }));
    }
    let (mut ok, mut limited) = (0, 0);
    let mut tasks_that_got_some = 0;
    for t in tasks {
        let (o, l) = t.await.unwrap();
        ok += o;
        limited += l;
        tasks_that_got_some += u32::from(o > 0);
    }
    assert_eq!(ok + limited, 10_000);
    assert_eq!(ok, 500, "never above the quota, and all of it granted");
    // The clients raced for the quota: more than one got a share.
    assert!(tasks_that_got_some >= 2, "{tasks_that_got_some}");
}

#[tokio::test]
async fn redis_down_is_503_or_passes_when_fail_open() {
    // A port nothing listens on: every check fails (fail-closed limiter).
    let port = dispatchkit_test_support::redis_server::RedisServer::free_port().unwrap();
    let mut cfg = RedisConfig::new(format!("redis://127.0.0.1:{port}/"));
    cfg.connect_timeout = Duration::from_millis(200);
    cfg.io_timeout = Duration::from_millis(200);
    let limiter =
        Arc::new(RedisRateLimiter::new(Gcra::new(Quota::per_second(5).unwrap()), cfg).unwrap());
    let limit = |l: &Arc<RedisRateLimiter<Gcra>>| {
        RedisKeyed::new(
            Arc::clone(l),
            HeaderKey::new("x-api-key").unwrap(),
            RuleName::new("redis").unwrap(),
        )
    };
    let closed = serve(app(RateLimitLayer::new(limit(&limiter)))).await;
    let open = serve(app(RateLimitLayer::new(limit(&limiter)).fail_open(true))).await;
    let client = reqwest::Client::new();
    let r = call(&client, closed, Some("k")).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.get("content-type"), Some("application/problem+json"));
    let r = call(&client, open, Some("k")).await;
    assert_eq!(
        (r.status, r.body.as_str(), r.get("ratelimit")),
        (200, "hello", None)
    );
}

#[tokio::test]
async fn redis_backed_layer_counts_on_the_server() {
    // None only outside CI (under CI=true a missing server fails).
    let Some(server) = dispatchkit_test_support::redis_server::RedisServer::start() else {
        return;
    };
    let limiter = Arc::new(
        // A year-long window: windows are aligned to the server's clock,
        // and a test that straddled a minute boundary would rightly get a
        // fresh quota.
        RedisRateLimiter::new(
            FixedWindow::new(Quota::new(2, Duration::from_secs(365 * 86_400)).unwrap()),
            RedisConfig::new(server.url()),
        )
        .unwrap(),
    );
    let limit = RedisKeyed::new(
        limiter,
        HeaderKey::new("x-api-key").unwrap(),
        RuleName::new("shared").unwrap(),
    );
    // Two servers (two "instances") share the Redis quota.
    let layer = RateLimitLayer::new(limit);
    let a = serve(app(layer.clone())).await;
    let b = serve(app(layer)).await;
    let client = reqwest::Client::new();
    assert_eq!(call(&client, a, Some("k")).await.status, 200);
    let r = call(&client, b, Some("k")).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.get("ratelimit-policy"),
        Some(r#""shared";q=2;w=31536000"#)
    );
    let r = call(&client, a, Some("k")).await;
    assert_eq!(r.status, 429);
    assert!(r.get("retry-after").is_some());
}

#[tokio::test]
async fn forwarded_for_is_trusted_only_as_configured() {
    // One proxy of ours in front: the client is the last X-Forwarded-For
    // entry; 1 request per minute per client.
    let clock = Manual::new();
    let limit = Keyed::new(
        KeyedRateLimiter::<std::net::IpAddr, _>::new_at(
            FixedWindow::new(Quota::per_minute(1).unwrap()),
            clock.t0,
        ),
        PeerIp::from_extension(|c: &ConnectInfo<SocketAddr>| c.0.ip()).trust_x_forwarded_for(1),
        RuleName::new("per-ip").unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = app(layer_with(limit, &clock));
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap()
    });
    let c = reqwest::Client::new();
    let send = |xff: Option<&'static [u8]>| {
        let mut req = c.get(format!("http://{addr}/v1/hello"));
        if let Some(v) = xff {
            req = req.header(
                "x-forwarded-for",
                reqwest::header::HeaderValue::from_bytes(v).unwrap(),
            );
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    // The client's own garbage before the proxy's entry changes nothing.
    assert_eq!(send(Some(b"\xff\xfe, 198.51.100.1")).await, 200);
    assert_eq!(
        send(Some(b"10.9.9.9, 198.51.100.1")).await,
        429,
        "same client"
    );
    assert_eq!(send(Some(b"198.51.100.2")).await, 200, "another client");
    // The proxy's entry must be an address.
    assert_eq!(send(Some(b"198.51.100.3, not-an-ip")).await, 400);
    // No header: not through the proxy, the peer is the client.
    assert_eq!(send(None).await, 200);
    assert_eq!(send(None).await, 429);
}

#[tokio::test]
async fn stacked_layers_list_both_policies() {
    let clock = Manual::new();
    let global = Keyed::new(
        KeyedRateLimiter::<String, _>::new_at(
            FixedWindow::new(Quota::per_minute(100).unwrap()),
            clock.t0,
        ),
        HeaderKey::new("x-api-key").unwrap(),
        RuleName::new("global").unwrap(),
    );
    let app = Router::new()
        .route("/v1/hello", get(|| async { "hello" }))
        .layer(layer_with(per_minute(1, &clock), &clock))
        .layer(layer_with(global, &clock));
    let addr = serve(app).await;
    let c = reqwest::Client::new();
    let res = c
        .get(format!("http://{addr}/v1/hello"))
        .header("x-api-key", "k")
        .send()
        .await
        .unwrap();
    let all = |name: &str| -> Vec<String> {
        res.headers()
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        all("ratelimit"),
        [r#""per-key";r=0;t=60"#, r#""global";r=99;t=60"#]
    );
    assert_eq!(
        all("ratelimit-policy"),
        [r#""per-key";q=1;w=60"#, r#""global";q=100;w=60"#]
    );
    assert_eq!(
        all("x-ratelimit-remaining"),
        ["0"],
        "the inner layer's numbers"
    );
    // The inner layer's denial keeps its Retry-After and its 429.
    let r = call(&c, addr, Some("k")).await;
    assert_eq!((r.status, r.get("retry-after")), (429, Some("60")));
    assert_eq!(r.get("x-ratelimit-remaining"), Some("0"));
}

/// A limit that cannot be applied: every check is a configuration error.
struct Misconfigured;

impl KeyedLimit<str> for Misconfigured {
    fn quota(&self) -> Quota {
        Quota::per_second(1).unwrap()
    }
    fn capacity(&self) -> u32 {
        1
    }
    fn check_n(&self, _: &str, cost: u32) -> Result<Decision, RateLimitError> {
        Err(RateLimitError::InvalidCost {
            cost,
            reason: "test: misconfigured",
        })
    }
    fn check_n_at(&self, k: &str, cost: u32, _: Instant) -> Result<Decision, RateLimitError> {
        self.check_n(k, cost)
    }
    fn peek_n(&self, k: &str, cost: u32) -> Result<Decision, RateLimitError> {
        self.check_n(k, cost)
    }
    fn peek_n_at(&self, k: &str, cost: u32, _: Instant) -> Result<Decision, RateLimitError> {
        self.check_n(k, cost)
    }
}

#[tokio::test]
async fn a_misconfigured_limit_is_a_500_even_when_fail_open() {
    let limit = Keyed::new(
        Misconfigured,
        HeaderKey::new("x-api-key").unwrap(),
        RuleName::new("broken").unwrap(),
    );
    let addr = serve(app(RateLimitLayer::new(limit).fail_open(true))).await;
    let r = call(&reqwest::Client::new(), addr, Some("k")).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.get("content-type"), Some("application/problem+json"));
    assert!(
        !r.body.contains("test: misconfigured"),
        "internal details stay inside"
    );
}
