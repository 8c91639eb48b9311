//! What `RateLimitLayer` allocates on the allowed path, beyond the inner
//! service: only the header values it writes (each a formatted `String`
//! turned into a `HeaderValue`) and the response header map's growth. A
//! counting global allocator sees every allocation, so this binary runs
//! without the libtest harness (`harness = false`).

use std::alloc::System;
use std::future::{Future, Ready, ready};
use std::task::{Context, Poll, Waker};

use cap::Cap;
use dispatchkit_ratelimit::layer::{HeaderKey, Keyed, RateLimitLayer};
use dispatchkit_ratelimit::{Gcra, KeyedRateLimiter, Quota, RuleName};
use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

#[global_allocator]
static ALLOC: Cap<System> = Cap::new(System, usize::MAX);

/// The handler: a fixed body, no allocation of its own.
#[derive(Clone)]
struct Hello;

impl Service<Request<()>> for Hello {
    type Response = Response<String>;
    type Error = std::convert::Infallible;
    type Future = Ready<Result<Response<String>, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<()>) -> Self::Future {
        ready(Ok(Response::new(String::new())))
    }
}

fn run<S>(svc: &mut S, req: Request<()>) -> Response<String>
where
    S: Service<Request<()>, Response = Response<String>>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    assert!(svc.poll_ready(&mut cx).is_ready());
    let mut fut = std::pin::pin!(svc.call(req));
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(r) => r.unwrap(),
        Poll::Pending => panic!("in-process: ready at once"),
    }
}

/// Bytes allocated per request by `svc` over `n` requests (the requests
/// are built beforehand), and the header count of the last response.
fn per_request<S>(svc: &mut S, n: usize) -> (f64, usize)
where
    S: Service<Request<()>, Response = Response<String>>,
    S::Error: std::fmt::Debug,
{
    let reqs: Vec<Request<()>> = (0..n)
        .map(|_| {
            Request::get("/")
                .header("x-api-key", "k-1")
                .body(())
                .unwrap()
        })
        .collect();
    let mut headers = 0;
    let before = ALLOC.total_allocated();
    for req in reqs {
        let res = run(svc, req);
        headers = res.headers().len();
        drop(res);
    }
    let after = ALLOC.total_allocated();
    ((after - before) as f64 / n as f64, headers)
}

fn limit() -> Keyed<KeyedRateLimiter<String, Gcra>, HeaderKey> {
    Keyed::new(
        KeyedRateLimiter::<String, _>::new(Gcra::new(Quota::per_second(1_000_000).unwrap())),
        HeaderKey::new("x-api-key").unwrap(),
        RuleName::new("per-key").unwrap(),
    )
}

fn main() {
    const N: usize = 1_000;
    let mut bare = Hello;
    let mut silent = RateLimitLayer::new(limit())
        .ietf_headers(false)
        .layer(Hello);
    let mut ietf = RateLimitLayer::new(limit()).layer(Hello);
    // Warm up: the key is stored, every lazy static initialised.
    let _ = per_request(&mut silent, 10);
    let _ = per_request(&mut ietf, 10);
    let (bare_bytes, _) = per_request(&mut bare, N);
    let (silent_bytes, none) = per_request(&mut silent, N);
    let (ietf_bytes, two) = per_request(&mut ietf, N);
    println!(
        "bytes allocated per request: bare {bare_bytes:.1}, layer writing no headers \
         {silent_bytes:.1}, layer writing {two} headers {ietf_bytes:.1}"
    );
    assert_eq!((none, two), (0, 2));
    // The check itself (key lookup, decision, response future) allocates
    // nothing: only the header values a response carries do.
    assert_eq!(
        silent_bytes, bare_bytes,
        "the allowed path allocates nothing beyond the headers it writes"
    );
    assert!(ietf_bytes > bare_bytes);
    println!("test layer_allocates_only_its_headers ... ok");
}
