//! What the layer checks a request against: [`RequestLimit`], with the
//! in-process forms [`Keyed`] (one keyed limiter, one key per request) and
//! [`Policy`] (a rules table by tier / endpoint / key kind), and, with the
//! `tokio` feature, their Redis forms [`RedisKeyed`] and [`RedisPolicy`].
//! In-process checks never wait: their future is `std::future::Ready`,
//! which the layer resolves inside `call` without storing the request.

use std::borrow::Cow;
use std::fmt;
use std::future::{Future, Ready, ready};
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Instant;

use http::{Extensions, Request};

use super::extract::{KeyExtractor, Rejection};
use crate::backend::{KeyedLimit, PolicyLimit};
use crate::{KeyKind, PolicyDecision, PolicyInfo, RateLimitError, RuleName, Tier};

/// Why a check gave no verdict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// The request has no usable key (answered with the rejection).
    #[error("request rejected: {0}")]
    Rejected(Rejection),
    /// The limiter failed: a remote backend down (answered `503`, or let
    /// through when the layer is fail-open).
    #[error("rate limiter failed: {0}")]
    Backend(RateLimitError),
}

/// A limit the layer applies to each request: the decision, with the
/// rule to report in the headers.
pub trait RequestLimit<B>: Send + Sync + 'static {
    /// The check's future; `Unpin` so the layer can poll it in place
    /// (in-process: `Ready`, Redis: a boxed future).
    type Future: Future<Output = Result<PolicyDecision, LimitError>> + Send + Unpin + 'static;

    /// Checks (and charges) one request, at `now` when given, else at the
    /// limiter's own clock (in-process: `Instant::now()`; Redis: the
    /// server's `TIME`, so that every instance agrees).
    fn check(&self, req: &Request<B>, now: Option<Instant>) -> Self::Future;
}

fn keyed_decision(info: PolicyInfo, d: crate::Decision) -> PolicyDecision {
    PolicyDecision::reporting(d.is_allowed(), info, d)
}

fn info_of(name: &RuleName, quota: crate::Quota) -> PolicyInfo {
    PolicyInfo {
        name: *name,
        limit: quota.limit(),
        window: quota.period(),
    }
}

/// One keyed limiter, one unit per request, keyed by an extractor; the
/// headers report it as the policy `name` with the limiter's quota.
///
/// ```
/// use dispatchkit_ratelimit::layer::{HeaderKey, Keyed, RequestLimit};
/// use dispatchkit_ratelimit::{Gcra, KeyedRateLimiter, Quota, RuleName};
///
/// let per_key = KeyedRateLimiter::<String, _>::new(Gcra::new(Quota::per_minute(2)?));
/// let limit = Keyed::new(per_key, HeaderKey::new("x-api-key")?, RuleName::new("per-key")?);
/// let req = http::Request::get("/").header("x-api-key", "k1").body(())?;
/// let d = futures_lite_now(limit.check(&req, None))?;
/// assert!(d.is_allowed());
/// # fn futures_lite_now<F: std::future::Future + Unpin>(f: F) -> F::Output {
/// #     let mut f = f;
/// #     match std::pin::Pin::new(&mut f).poll(&mut std::task::Context::from_waker(std::task::Waker::noop())) {
/// #         std::task::Poll::Ready(v) => v,
/// #         std::task::Poll::Pending => unreachable!("in-process checks are ready"),
/// #     }
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Keyed<L, X> {
    limiter: L,
    extractor: X,
    name: RuleName,
}

impl<L, X> Keyed<L, X> {
    /// `limiter` keyed by `extractor`, reported as the policy `name`.
    pub fn new(limiter: L, extractor: X, name: RuleName) -> Self {
        Self {
            limiter,
            extractor,
            name,
        }
    }
}

impl<B, L, X> RequestLimit<B> for Keyed<L, X>
where
    X: KeyExtractor<B>,
    L: KeyedLimit<X::Key> + 'static,
{
    type Future = Ready<Result<PolicyDecision, LimitError>>;

    fn check(&self, req: &Request<B>, now: Option<Instant>) -> Self::Future {
        ready(match self.extractor.extract(req) {
            Err(r) => Err(LimitError::Rejected(r)),
            Ok(key) => match now {
                Some(t) => self.limiter.check_n_at(&key, 1, t),
                None => self.limiter.check_n(&key, 1),
            }
            .map(|d| keyed_decision(info_of(&self.name, self.limiter.quota()), d))
            .map_err(LimitError::Backend),
        })
    }
}

type EndpointFn = dyn Fn(&Extensions) -> Option<&str> + Send + Sync;

/// Which endpoint name a request is checked under (the rules table's
/// `endpoint`).
#[derive(Clone)]
pub enum Endpoint {
    /// The request path (`/v1/restaurants/17/menu`).
    Path,
    /// The route template a router recorded in the request's extensions
    /// (axum's `MatchedPath`, available to a `route_layer`:
    /// `/v1/restaurants/{id}/menu`), else the path.
    Route(Arc<EndpointFn>),
    /// One name for every request through this layer.
    Fixed(&'static str),
    /// The method, a space, and the route as [`Endpoint::Route`] finds it
    /// (`GET /v1/restaurants/{id}/menu`): rules per method. One small
    /// allocation per request (the joined name).
    MethodRoute(Arc<EndpointFn>),
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Path => f.write_str("Path"),
            Endpoint::Route(_) => f.write_str("Route(..)"),
            Endpoint::Fixed(s) => f.debug_tuple("Fixed").field(s).finish(),
            Endpoint::MethodRoute(_) => f.write_str("MethodRoute(..)"),
        }
    }
}

impl Endpoint {
    /// [`Endpoint::Route`] from a function of the extensions:
    ///
    /// ```ignore
    /// Endpoint::route(|e| e.get::<axum::extract::MatchedPath>().map(|m| m.as_str()))
    /// ```
    pub fn route<F>(f: F) -> Self
    where
        F: Fn(&Extensions) -> Option<&str> + Send + Sync + 'static,
    {
        Endpoint::Route(Arc::new(f))
    }

    /// [`Endpoint::MethodRoute`] from a function of the extensions.
    pub fn method_route<F>(f: F) -> Self
    where
        F: Fn(&Extensions) -> Option<&str> + Send + Sync + 'static,
    {
        Endpoint::MethodRoute(Arc::new(f))
    }

    /// The endpoint name of `req`.
    ///
    /// ```
    /// use dispatchkit_ratelimit::layer::Endpoint;
    ///
    /// let req = http::Request::post("/v1/login").body(())?;
    /// assert_eq!(Endpoint::Path.of(&req), "/v1/login");
    /// assert_eq!(Endpoint::method_route(|_| None).of(&req), "POST /v1/login");
    /// # Ok::<(), http::Error>(())
    /// ```
    pub fn of<'r, B>(&self, req: &'r Request<B>) -> Cow<'r, str> {
        let route = |f: &EndpointFn| f(req.extensions()).unwrap_or_else(|| req.uri().path());
        match self {
            Endpoint::Path => Cow::Borrowed(req.uri().path()),
            Endpoint::Route(f) => Cow::Borrowed(route(&**f)),
            Endpoint::Fixed(s) => Cow::Borrowed(s),
            Endpoint::MethodRoute(f) => Cow::Owned(format!("{} {}", req.method(), route(&**f))),
        }
    }
}

type TierFn<K> = dyn Fn(&K) -> Option<Tier> + Send + Sync;

/// A rules table applied per request: the subject is the extractor's key
/// of kind `kind`, its tier from `tier` (an API key's plan, say; `None`
/// for anonymous subjects), the endpoint from [`Endpoint`].
pub struct Policy<L, X: KeyExtractor<B>, B> {
    limiter: L,
    extractor: X,
    kind: KeyKind,
    tier: Arc<TierFn<X::Key>>,
    endpoint: Endpoint,
    _body: PhantomData<fn(&B)>,
}

impl<L: fmt::Debug, X: KeyExtractor<B> + fmt::Debug, B> fmt::Debug for Policy<L, X, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("limiter", &self.limiter)
            .field("extractor", &self.extractor)
            .field("kind", &self.kind)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl<L, X: KeyExtractor<B>, B> Policy<L, X, B> {
    /// `limiter` for subjects of `kind` keyed by `extractor`; no tier and
    /// the path as endpoint until set.
    pub fn new(limiter: L, extractor: X, kind: KeyKind) -> Self {
        Self {
            limiter,
            extractor,
            kind,
            tier: Arc::new(|_| None),
            endpoint: Endpoint::Path,
            _body: PhantomData,
        }
    }

    /// The subject's tier from its key.
    pub fn tier(mut self, tier: impl Fn(&X::Key) -> Option<Tier> + Send + Sync + 'static) -> Self {
        self.tier = Arc::new(tier);
        self
    }

    /// Where the endpoint name comes from.
    pub fn endpoint(mut self, endpoint: Endpoint) -> Self {
        self.endpoint = endpoint;
        self
    }

    /// The subject of `req`, for the limiter's `Request`.
    fn subject<'r>(&self, req: &'r Request<B>) -> Result<Subject<'r, X::Key>, Rejection> {
        let key = self.extractor.extract(req)?;
        Ok(Subject {
            tier: (self.tier)(&key),
            endpoint: self.endpoint.of(req),
            key,
        })
    }
}

/// Who a request is, for a rules table.
struct Subject<'r, K: ?Sized + ToOwned> {
    tier: Option<Tier>,
    endpoint: Cow<'r, str>,
    key: Cow<'r, K>,
}

impl<B, L, X> RequestLimit<B> for Policy<L, X, B>
where
    B: 'static,
    X: KeyExtractor<B>,
    X::Key: Sized,
    L: PolicyLimit<X::Key> + 'static,
{
    type Future = Ready<Result<PolicyDecision, LimitError>>;

    fn check(&self, req: &Request<B>, now: Option<Instant>) -> Self::Future {
        ready(match self.subject(req) {
            Err(r) => Err(LimitError::Rejected(r)),
            Ok(s) => {
                let req = crate::Request {
                    tier: s.tier,
                    endpoint: &s.endpoint,
                    kind: self.kind,
                    key: &*s.key,
                };
                match now {
                    Some(t) => self.limiter.check_at(&req, 1, t),
                    None => self.limiter.check(&req, 1),
                }
                .map_err(LimitError::Backend)
            }
        })
    }
}

#[cfg(feature = "tokio")]
mod on_redis {
    use std::pin::Pin;

    use super::*;
    use crate::on_redis::{RedisAlgorithm, RedisKey, RedisPolicyLimiter, RedisRateLimiter};

    type Boxed = Pin<Box<dyn Future<Output = Result<PolicyDecision, LimitError>> + Send>>;

    /// [`Keyed`] on a [`RedisRateLimiter`]: the check is the limiter's
    /// async form, so no thread blocks on Redis.
    #[derive(Debug)]
    pub struct RedisKeyed<A, X> {
        limiter: Arc<RedisRateLimiter<A>>,
        extractor: X,
        name: RuleName,
    }

    impl<A, X> RedisKeyed<A, X> {
        /// `limiter` keyed by `extractor`, reported as the policy `name`.
        pub fn new(limiter: Arc<RedisRateLimiter<A>>, extractor: X, name: RuleName) -> Self {
            Self {
                limiter,
                extractor,
                name,
            }
        }
    }

    impl<B, A, X> RequestLimit<B> for RedisKeyed<A, X>
    where
        A: RedisAlgorithm,
        X: KeyExtractor<B>,
        X::Key: RedisKey + Sync,
        <X::Key as ToOwned>::Owned: Send + 'static,
    {
        type Future = Boxed;

        fn check(&self, req: &Request<B>, now: Option<Instant>) -> Self::Future {
            let key = match self.extractor.extract(req) {
                Err(r) => return Box::pin(ready(Err(LimitError::Rejected(r)))),
                Ok(k) => k.into_owned(),
            };
            let limiter = Arc::clone(&self.limiter);
            let info = info_of(&self.name, self.limiter.algorithm().quota());
            Box::pin(async move {
                use std::borrow::Borrow;
                let key: &X::Key = key.borrow();
                match now {
                    Some(t) => limiter.check_n_at_async(key, 1, t).await,
                    None => limiter.check_n_async(key, 1).await,
                }
                .map(|d| keyed_decision(info, d))
                .map_err(LimitError::Backend)
            })
        }
    }

    /// [`Policy`] on a [`RedisPolicyLimiter`], checked with its async form.
    pub struct RedisPolicy<X: KeyExtractor<B>, B> {
        limiter: Arc<RedisPolicyLimiter>,
        extractor: X,
        kind: KeyKind,
        tier: Arc<TierFn<X::Key>>,
        endpoint: Endpoint,
        _body: PhantomData<fn(&B)>,
    }

    impl<X: KeyExtractor<B> + fmt::Debug, B> fmt::Debug for RedisPolicy<X, B> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("RedisPolicy")
                .field("extractor", &self.extractor)
                .field("kind", &self.kind)
                .field("endpoint", &self.endpoint)
                .finish_non_exhaustive()
        }
    }

    impl<X: KeyExtractor<B>, B> RedisPolicy<X, B> {
        /// As [`Policy::new`].
        pub fn new(limiter: Arc<RedisPolicyLimiter>, extractor: X, kind: KeyKind) -> Self {
            Self {
                limiter,
                extractor,
                kind,
                tier: Arc::new(|_| None),
                endpoint: Endpoint::Path,
                _body: PhantomData,
            }
        }

        /// As [`Policy::tier`].
        pub fn tier(
            mut self,
            tier: impl Fn(&X::Key) -> Option<Tier> + Send + Sync + 'static,
        ) -> Self {
            self.tier = Arc::new(tier);
            self
        }

        /// As [`Policy::endpoint`].
        pub fn endpoint(mut self, endpoint: Endpoint) -> Self {
            self.endpoint = endpoint;
            self
        }
    }

    impl<B, X> RequestLimit<B> for RedisPolicy<X, B>
    where
        B: 'static,
        X: KeyExtractor<B>,
        X::Key: Sized + Clone + RedisKey + Send + Sync + 'static,
    {
        type Future = Boxed;

        fn check(&self, req: &Request<B>, now: Option<Instant>) -> Self::Future {
            let key = match self.extractor.extract(req) {
                Err(r) => return Box::pin(ready(Err(LimitError::Rejected(r)))),
                Ok(k) => X::Key::clone(&k),
            };
            let tier = (self.tier)(&key);
            let endpoint = self.endpoint.of(req).into_owned();
            let kind = self.kind;
            let limiter = Arc::clone(&self.limiter);
            Box::pin(async move {
                let req = crate::Request {
                    tier,
                    endpoint: &endpoint,
                    kind,
                    key: &key,
                };
                match now {
                    Some(t) => limiter.check_at_async(&req, 1, t).await,
                    None => limiter.check_async(&req, 1).await,
                }
                .map_err(LimitError::Backend)
            })
        }
    }
}

#[cfg(feature = "tokio")]
pub use on_redis::{RedisKeyed, RedisPolicy};
