//! dispatchkit in an async HTTP server, beside what users pick instead.
//!
//! - `http_ratelimit_layer`: what a rate-limit layer adds to a request. An
//!   axum `Router` (one route answering `"hello"`) is driven in-process
//!   with `tower::ServiceExt::oneshot` on a current-thread runtime (no
//!   sockets, so the layer's cost is not lost in network noise): `bare`,
//!   with dispatchkit's `RateLimitLayer` (its IETF `RateLimit-Policy` /
//!   `RateLimit` headers on), and with `tower_governor` (the peer; its
//!   `x-ratelimit-*` headers on with `use_headers`). Both key per API key
//!   (the `x-api-key` header) over Zipf(1.0) keys from 100,000 and allow
//!   every request (1e9/s, burst 1e6): the allowed path, the common one.
//!   Added time per request = layer − bare, same run.
//!   Before the timings the bench prints requests/s over real TCP
//!   (keep-alive, 2 connections, one client task each) for the three, as
//!   information.
//! - `cache_get_or_load_async`: a hit through `Cache::get_or_load_async`
//!   beside `moka::future::Cache::get_with` (the async cache users pick),
//!   Zipf(1.0) keys over 100,000, both caches (capacity 200,000) prefilled
//!   with every key.

#[path = "common/notes.rs"]
mod notes;

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use criterion::{BenchmarkId, Criterion, Throughput};
use dispatchkit::cache::Cache;
use dispatchkit::ratelimit::layer::{HeaderKey, Keyed, RateLimitLayer};
use dispatchkit::ratelimit::{Gcra, KeyedRateLimiter, Quota, RuleName};
use dispatchkit::workload::zipf_keys;
use http::Request;
use tower::ServiceExt;
use tower_governor::GovernorError;
use tower_governor::governor::GovernorConfigBuilder;

const KEYS: u64 = 100_000;
/// Requests per criterion iteration.
const BATCH: usize = 1_000;

/// tower_governor keyed by the same header (its extractors return an owned
/// key).
#[derive(Clone)]
struct ApiKey;

impl tower_governor::key_extractor::KeyExtractor for ApiKey {
    type Key = String;

    fn extract<T>(&self, req: &Request<T>) -> Result<String, GovernorError> {
        req.headers()
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or(GovernorError::UnableToExtractKey)
    }
}

fn hello() -> Router {
    Router::new().route("/v1/hello", get(|| async { "hello" }))
}

fn routers() -> [(&'static str, Router); 3] {
    let ours = Keyed::new(
        KeyedRateLimiter::<String, _>::new(Gcra::new(
            Quota::per_second(1_000_000_000)
                .and_then(|q| q.with_burst(1_000_000))
                .expect("valid quota"),
        )),
        HeaderKey::new("x-api-key").expect("valid header"),
        RuleName::new("per-key").expect("valid name"),
    );
    let governor = GovernorConfigBuilder::default()
        .per_nanosecond(1)
        .burst_size(1_000_000)
        .key_extractor(ApiKey)
        .use_headers()
        .finish()
        .expect("valid config");
    [
        ("bare", hello()),
        ("dispatchkit", hello().layer(RateLimitLayer::new(ours))),
        (
            "tower_governor",
            hello().layer(tower_governor::GovernorLayer::new(governor)),
        ),
    ]
}

fn requests(keys: &[String], from: usize) -> Vec<Request<Body>> {
    (0..BATCH)
        .map(|i| {
            Request::get("/v1/hello")
                .header("x-api-key", &keys[(from + i) % keys.len()])
                .body(Body::empty())
                .expect("valid request")
        })
        .collect()
}

/// Requests/s over TCP: 2 keep-alive connections, one client task each,
/// for `secs` seconds.
fn over_tcp(router: Router, keys: &[String], secs: f64) -> f64 {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, router).await });
        let deadline = Instant::now() + Duration::from_secs_f64(secs);
        let mut tasks = Vec::new();
        for t in 0..2 {
            let keys: Vec<String> = keys.iter().skip(t).step_by(2).cloned().collect();
            tasks.push(tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .pool_max_idle_per_host(1)
                    .build()
                    .expect("client");
                let url = format!("http://{addr}/v1/hello");
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let res = client
                        .get(&url)
                        .header("x-api-key", &keys[n as usize % keys.len()])
                        .send()
                        .await
                        .expect("request");
                    assert_eq!(res.status(), 200);
                    let _ = res.bytes().await;
                    n += 1;
                }
                n
            }));
        }
        let start = Instant::now();
        let mut total = 0;
        for t in tasks {
            total += t.await.expect("client task");
        }
        total as f64 / start.elapsed().as_secs_f64()
    })
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let quick = std::env::args().any(|a| a == "--test" || a == "--list");
    let keys: Vec<String> = zipf_keys(KEYS, 1.0, 200_000, 7)
        .expect("valid workload")
        .into_iter()
        .map(|k| format!("key-{k}"))
        .collect();

    if !quick {
        for (name, router) in routers() {
            let rate = over_tcp(router, &keys, 3.0);
            notes::line(
                "http",
                &format!("over TCP (keep-alive, 2 connections): {name} {rate:.0} requests/s"),
            );
        }
    }

    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut g = c.benchmark_group("http_ratelimit_layer");
    g.throughput(Throughput::Elements(BATCH as u64));
    for (name, router) in routers() {
        let mut from = 0usize;
        g.bench_function(BenchmarkId::new(name, "1t"), |b| {
            b.iter_batched(
                || {
                    from += BATCH;
                    requests(&keys, from)
                },
                |reqs| {
                    rt.block_on(async {
                        for req in reqs {
                            let res = router.clone().oneshot(req).await.expect("infallible");
                            debug_assert_eq!(res.status(), 200);
                            black_box(res);
                        }
                    })
                },
                criterion::BatchSize::LargeInput,
            )
        });
    }
    g.finish();

    let ids: Vec<u64> = zipf_keys(KEYS, 1.0, 200_000, 11).expect("valid workload");
    // Room for every key (no shard overflows, no evictions): hits only.
    let ours = Cache::<u64, u64>::new(2 * KEYS).expect("valid capacity");
    let moka = moka::future::Cache::<u64, u64>::new(2 * KEYS);
    rt.block_on(async {
        for k in 0..KEYS {
            ours.insert(k, k).expect("fits");
            moka.insert(k, k).await;
        }
        moka.run_pending_tasks().await;
    });
    let mut g = c.benchmark_group("cache_get_or_load_async");
    g.throughput(Throughput::Elements(BATCH as u64));
    let mut from = 0usize;
    g.bench_function(BenchmarkId::new("dispatchkit", "hit"), |b| {
        b.iter(|| {
            from = (from + BATCH) % (ids.len() - BATCH);
            rt.block_on(async {
                let mut sum = 0u64;
                for k in &ids[from..from + BATCH] {
                    sum += ours
                        .get_or_load_async(k, || async { unreachable!("a hit") })
                        .await;
                }
                black_box(sum)
            })
        })
    });
    let mut from = 0usize;
    g.bench_function(BenchmarkId::new("moka", "hit"), |b| {
        b.iter(|| {
            from = (from + BATCH) % (ids.len() - BATCH);
            rt.block_on(async {
                let mut sum = 0u64;
                for k in &ids[from..from + BATCH] {
                    sum += moka.get_with(*k, async { unreachable!("a hit") }).await;
                }
                black_box(sum)
            })
        })
    });
    g.finish();
    c.final_summary();
}
