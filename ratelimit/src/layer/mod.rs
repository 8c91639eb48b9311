//! A tower [`Layer`] that rate-limits HTTP requests
//! (feature `tower`): axum, hyper, tonic or any `tower::Service` over
//! `http::Request`s.
//!
//! Every response carries the IETF `RateLimit-Policy` and `RateLimit`
//! fields of draft-ietf-httpapi-ratelimit-headers-11 (the reported rule:
//! the one that denied, else the tightest), and, if configured, the legacy
//! `X-RateLimit-Limit` / `-Remaining` / `-Reset`. A denial is `429 Too Many
//! Requests` with `Retry-After` (seconds) and an RFC 9457
//! `application/problem+json` body; a request without a usable key is the
//! extractor's [`Rejection`] (`401` with `WWW-Authenticate`, `400`); a
//! limiter that cannot answer (Redis down, fail-closed) is `503`, or passes
//! if the layer is [`fail_open`](RateLimitLayer::fail_open); a limit that
//! cannot be applied (a misconfigured rule) is `500`. Nothing panics.
//!
//! Layers stack: an inner layer's `RateLimit` / `RateLimit-Policy` items
//! stay and an outer layer adds its own to the lists (the draft's list
//! fields); the legacy headers and `Retry-After` are the innermost
//! layer's.
//!
//! In-process limiters ([`Keyed`], [`Policy`]) decide inside `call`: the
//! allowed path allocates only the header values it writes. The Redis
//! forms ([`RedisKeyed`], [`RedisPolicy`], feature `tokio`) await the
//! server without blocking a thread.
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use dispatchkit_ratelimit::layer::{HeaderKey, Keyed, RateLimitLayer};
//! use dispatchkit_ratelimit::{Gcra, KeyedRateLimiter, Quota, RuleName};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let per_key = KeyedRateLimiter::<String, _>::new(Gcra::new(Quota::per_minute(60)?));
//! let limit = Keyed::new(per_key, HeaderKey::new("x-api-key")?, RuleName::new("per-key")?);
//! let app = Router::new()
//!     .route("/v1/hello", get(|| async { "hello" }))
//!     .layer(RateLimitLayer::new(limit).legacy_headers(true));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```

mod extract;
mod limit;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker, ready};
use std::time::{Instant, SystemTime};

use http::header::{CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use http::{Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

pub use extract::{FromExtension, HeaderKey, KeyExtractor, KeyFn, PeerIp, Rejection};
pub use limit::{Endpoint, Keyed, LimitError, Policy, RequestLimit};
#[cfg(feature = "tokio")]
pub use limit::{RedisKeyed, RedisPolicy};

use crate::headers::{policy_value, write_headers};
use crate::{ClockMap, HeaderStyle, PolicyDecision, PolicyInfo, RateLimitError};

type Now = Arc<dyn Fn() -> Instant + Send + Sync>;

#[derive(Clone)]
struct Config {
    style: HeaderStyle,
    fail_open: bool,
    clock: ClockMap,
    /// `None`: each limiter's own clock.
    now: Option<Now>,
    /// The `RateLimit-Policy` value of the first policy reported (a keyed
    /// limit reports one policy for ever): built once, then cloned.
    policy: OnceLock<(PolicyInfo, HeaderValue)>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("style", &self.style)
            .field("fail_open", &self.fail_open)
            .field("own_clock", &self.now.is_some())
            .finish()
    }
}

/// The layer: wraps a service so that each request is checked by `L`
/// first. `Clone` (an `Arc` each for the limit and the settings).
pub struct RateLimitLayer<L> {
    limit: Arc<L>,
    config: Arc<Config>,
}

impl<L> Clone for RateLimitLayer<L> {
    fn clone(&self) -> Self {
        Self {
            limit: Arc::clone(&self.limit),
            config: Arc::clone(&self.config),
        }
    }
}

impl<L> fmt::Debug for RateLimitLayer<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<L> RateLimitLayer<L> {
    /// Checks every request against `limit`; the IETF headers only,
    /// fail-closed (`503` when the limiter cannot answer).
    pub fn new(limit: L) -> Self {
        Self {
            limit: Arc::new(limit),
            config: Arc::new(Config {
                style: HeaderStyle::default(),
                fail_open: false,
                clock: ClockMap::now(),
                now: None,
                policy: OnceLock::new(),
            }),
        }
    }

    fn with(mut self, f: impl FnOnce(&mut Config)) -> Self {
        let mut c = Config::clone(&self.config);
        f(&mut c);
        self.config = Arc::new(c);
        self
    }

    /// Also writes `X-RateLimit-Limit`, `X-RateLimit-Remaining` and
    /// `X-RateLimit-Reset` (Unix seconds).
    pub fn legacy_headers(self, on: bool) -> Self {
        self.with(|c| c.style.legacy = on)
    }

    /// Writes the IETF `RateLimit-Policy` / `RateLimit` fields (default on).
    pub fn ietf_headers(self, on: bool) -> Self {
        self.with(|c| c.style.ietf = on)
    }

    /// When the limiter cannot answer (a Redis backend down and configured
    /// to fail closed), let the request through without rate-limit headers
    /// instead of answering `503`.
    pub fn fail_open(self, on: bool) -> Self {
        self.with(|c| c.fail_open = on)
    }

    /// Checks at the instant `now()` returns instead of each limiter's own
    /// clock (tests drive time this way; a Redis limiter then uses the
    /// caller's time instead of the server's). `wall` is the wall-clock
    /// time of `at` for `X-RateLimit-Reset`.
    pub fn clock(
        self,
        now: impl Fn() -> Instant + Send + Sync + 'static,
        at: Instant,
        wall: SystemTime,
    ) -> Self {
        let now: Now = Arc::new(now);
        self.with(|c| {
            c.now = Some(now);
            c.clock = ClockMap::new(at, wall);
        })
    }
}

impl<L, S> Layer<S> for RateLimitLayer<L> {
    type Service = RateLimitService<L, S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService {
            inner,
            limit: Arc::clone(&self.limit),
            config: Arc::clone(&self.config),
        }
    }
}

/// The service [`RateLimitLayer`] wraps around `S`.
pub struct RateLimitService<L, S> {
    inner: S,
    limit: Arc<L>,
    config: Arc<Config>,
}

impl<L, S: Clone> Clone for RateLimitService<L, S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            limit: Arc::clone(&self.limit),
            config: Arc::clone(&self.config),
        }
    }
}

impl<L, S: fmt::Debug> fmt::Debug for RateLimitService<L, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitService")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What a verdict means for the request.
enum Next<R> {
    /// Call the inner service; write the decision's headers (if any) on
    /// its response.
    Pass(Option<PolicyDecision>),
    /// Answer without calling it.
    Answer(Response<R>),
}

impl Config {
    fn next<R: From<String>>(&self, verdict: Result<PolicyDecision, LimitError>) -> Next<R> {
        match verdict {
            Ok(d) if d.is_allowed() => Next::Pass(Some(d)),
            Ok(d) => {
                let detail = match d.rule() {
                    Some((info, dec)) => format!(
                        "rate limit \"{}\" ({} per {} s) exceeded; retry in {} s",
                        info.name,
                        info.limit,
                        info.window.as_secs_f64(),
                        crate::headers::retry_after_secs(&dec).unwrap_or(1)
                    ),
                    None => "rate limit exceeded".to_owned(),
                };
                let mut res = problem(StatusCode::TOO_MANY_REQUESTS, &detail);
                self.write(res.headers_mut(), &d);
                Next::Answer(res)
            }
            Err(LimitError::Rejected(r)) => {
                let mut res = problem(r.status, &r.detail);
                if let Some(c) = r.challenge.and_then(|c| HeaderValue::try_from(&*c).ok()) {
                    res.headers_mut().insert(WWW_AUTHENTICATE, c);
                }
                Next::Answer(res)
            }
            // Only "cannot answer" may fail open; the backend's own words
            // stay in the server (they can name hosts).
            Err(LimitError::Backend(RateLimitError::Unavailable { .. })) if self.fail_open => {
                Next::Pass(None)
            }
            Err(LimitError::Backend(RateLimitError::Unavailable { .. })) => Next::Answer(problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "the rate limiter is unavailable; retry later",
            )),
            // A limit that cannot be applied (a misconfigured rule or
            // cost) is a server error, never a free pass.
            Err(LimitError::Backend(_)) => Next::Answer(problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the rate limit is misconfigured",
            )),
        }
    }

    fn finish<R>(&self, mut res: Response<R>, d: Option<PolicyDecision>) -> Response<R> {
        if let Some(d) = d {
            self.write(res.headers_mut(), &d);
        }
        res
    }

    fn write(&self, map: &mut http::HeaderMap, d: &PolicyDecision) {
        let policy = d.rule().and_then(|(info, _)| {
            let (cached, value) = self.policy.get_or_init(|| {
                let v = policy_value(info).unwrap_or(HeaderValue::from_static(""));
                (*info, v)
            });
            (cached == info).then_some(value)
        });
        write_headers(map, d, self.style, &self.clock, policy);
    }
}

/// An RFC 9457 problem response: `{"type":"about:blank","title":…,
/// "status":…,"detail":…}`.
fn problem<R: From<String>>(status: StatusCode, detail: &str) -> Response<R> {
    let title = status.canonical_reason().unwrap_or("Error");
    let body = format!(
        r#"{{"type":"about:blank","title":"{}","status":{},"detail":"{}"}}"#,
        json_escape(title),
        status.as_u16(),
        json_escape(detail)
    );
    let mut res = Response::new(R::from(body));
    *res.status_mut() = status;
    res.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    res
}

fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

impl<L, S, B, R> Service<Request<B>> for RateLimitService<L, S>
where
    L: RequestLimit<B>,
    S: Service<Request<B>, Response = Response<R>> + Clone,
    R: From<String>,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = ResponseFuture<L::Future, S, S::Future, B, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let now = self.config.now.as_ref().map(|f| f());
        let mut check = self.limit.check(&req, now);
        // In-process limits are ready at once: decide here, without
        // storing the request or cloning the inner service.
        let first = Pin::new(&mut check).poll(&mut Context::from_waker(Waker::noop()));
        let state = match first {
            Poll::Ready(verdict) => match self.config.next(verdict) {
                Next::Pass(d) => State::Call {
                    fut: self.inner.call(req),
                    decision: d,
                },
                Next::Answer(res) => State::Answer { res: Some(res) },
            },
            Poll::Pending => {
                // The standard tower move: the service polled ready goes
                // with the request; a clone stays for the next one.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                // Boxed: only a limiter that waits (Redis, I/O anyway)
                // pays for it; the ready path's future stays small.
                State::Check {
                    wait: Some(Box::new((check, req, inner))),
                }
            }
        };
        ResponseFuture {
            state,
            config: Arc::clone(&self.config),
        }
    }
}

pin_project! {
    /// The response future of [`RateLimitService`].
    pub struct ResponseFuture<C, S, F, B, R> {
        #[pin]
        state: State<C, S, F, B, R>,
        config: Arc<Config>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<C, S, F, B, R> {
        Check { wait: Option<Box<(C, Request<B>, S)>> },
        Call { #[pin] fut: F, decision: Option<PolicyDecision> },
        Answer { res: Option<Response<R>> },
    }
}

impl<C, S, F, B, R> fmt::Debug for ResponseFuture<C, S, F, B, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<C, S, B, R> Future for ResponseFuture<C, S, S::Future, B, R>
where
    C: Future<Output = Result<PolicyDecision, LimitError>> + Unpin,
    S: Service<Request<B>, Response = Response<R>>,
    R: From<String>,
{
    type Output = Result<Response<R>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Check { wait } => {
                    let Some(w) = wait.as_mut() else {
                        panic!("ResponseFuture polled after completion");
                    };
                    let verdict = ready!(Pin::new(&mut w.0).poll(cx));
                    let next = match wait.take() {
                        Some(w) => {
                            let (_, req, mut inner) = *w;
                            match this.config.next(verdict) {
                                Next::Pass(decision) => State::Call {
                                    fut: inner.call(req),
                                    decision,
                                },
                                Next::Answer(res) => State::Answer { res: Some(res) },
                            }
                        }
                        None => State::Answer { res: None },
                    };
                    this.state.set(next);
                }
                StateProj::Call { fut, decision } => {
                    let res = ready!(fut.poll(cx))?;
                    return Poll::Ready(Ok(this.config.finish(res, decision.take())));
                }
                StateProj::Answer { res } => {
                    let res = res.take().expect("ResponseFuture polled after completion");
                    return Poll::Ready(Ok(res));
                }
            }
        }
    }
}
