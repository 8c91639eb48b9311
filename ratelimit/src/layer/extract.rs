//! Who a request is: key extractors for the layer (an API-key header, the
//! peer IP, a user id an auth layer put in the request's extensions, or
//! any function of the request), and the [`Rejection`] an extractor
//! answers with when the request carries no usable key.

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::{Extensions, HeaderName, Request, StatusCode};

/// Why a request has no key: answered with `status` and an RFC 9457
/// problem body whose `detail` is `detail`, before any limiter runs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {detail}")]
pub struct Rejection {
    /// The response status (`401` for a missing credential, `400` for a
    /// malformed one).
    pub status: StatusCode,
    /// What was wrong, for the client.
    pub detail: Cow<'static, str>,
    /// The `WWW-Authenticate` challenge a `401` carries (RFC 9110 §15.5.2
    /// requires one).
    pub challenge: Option<Cow<'static, str>>,
}

impl Rejection {
    /// A rejection with `status` and `detail`.
    pub fn new(status: StatusCode, detail: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            detail: detail.into(),
            challenge: None,
        }
    }

    /// `401 Unauthorized` with the `WWW-Authenticate` `challenge` (an
    /// auth-scheme and its parameters, e.g. `Bearer` or
    /// `ApiKey header="x-api-key"`): the credential is missing.
    pub fn unauthorized(
        challenge: impl Into<Cow<'static, str>>,
        detail: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            challenge: Some(challenge.into()),
            ..Self::new(StatusCode::UNAUTHORIZED, detail)
        }
    }

    /// `400 Bad Request`: the key's source is malformed.
    pub fn bad_request(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }
}

/// Takes the rate-limit key from a request. `Key` is what the limiter
/// looks up (`str` for a header value, borrowed from the request, so a
/// lookup of a known key allocates nothing).
pub trait KeyExtractor<B>: Send + Sync + 'static {
    /// The key type the limiter is keyed by (its borrowed form).
    type Key: ?Sized + ToOwned;

    /// The request's key.
    ///
    /// # Errors
    /// A [`Rejection`] when the request carries no usable key.
    fn extract<'r>(&self, req: &'r Request<B>) -> Result<Cow<'r, Self::Key>, Rejection>;
}

/// The value of a header, e.g. an API key in `x-api-key`: missing is
/// `401` (with `WWW-Authenticate: ApiKey header="x-api-key"`), not visible
/// ASCII or empty is `400`.
///
/// ```
/// use dispatchkit_ratelimit::layer::{HeaderKey, KeyExtractor};
///
/// let api_key = HeaderKey::new("x-api-key")?;
/// let req = http::Request::get("/").header("x-api-key", "k-123").body(())?;
/// assert_eq!(api_key.extract(&req)?, "k-123");
/// let anonymous = http::Request::get("/").body(())?;
/// assert_eq!(api_key.extract(&anonymous).unwrap_err().status, 401);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct HeaderKey {
    name: HeaderName,
}

impl HeaderKey {
    /// The header `name` (case-insensitive).
    ///
    /// # Errors
    /// When `name` is not a valid header name.
    pub fn new(name: &str) -> Result<Self, http::header::InvalidHeaderName> {
        Ok(Self {
            name: HeaderName::try_from(name)?,
        })
    }
}

impl<B> KeyExtractor<B> for HeaderKey {
    type Key = str;

    fn extract<'r>(&self, req: &'r Request<B>) -> Result<Cow<'r, str>, Rejection> {
        let v = req.headers().get(&self.name).ok_or_else(|| {
            Rejection::unauthorized(
                format!("ApiKey header=\"{}\"", self.name),
                format!("missing header {}", self.name),
            )
        })?;
        match v.to_str() {
            Ok(s) if !s.is_empty() => Ok(Cow::Borrowed(s)),
            _ => Err(Rejection::bad_request(format!(
                "header {} must be non-empty visible ASCII",
                self.name
            ))),
        }
    }
}

type PeerFn = dyn Fn(&Extensions) -> Option<IpAddr> + Send + Sync;

/// The client's IP address: the peer address of the connection (which the
/// server puts in the request's extensions), or, only when the user opts
/// in with [`trust_x_forwarded_for`](Self::trust_x_forwarded_for), the
/// address a known number of trusted proxies recorded in
/// `X-Forwarded-For` (an entry there that is not an address is `400`). IPv6
/// clients are keyed per /64 ([`ipv6_prefix`](Self::ipv6_prefix)). No
/// address at all is a server misconfiguration, answered `500`.
///
/// With axum, the peer is `ConnectInfo<SocketAddr>` (serve with
/// `into_make_service_with_connect_info::<SocketAddr>()`):
///
/// ```ignore
/// PeerIp::from_extension(|c: &axum::extract::ConnectInfo<std::net::SocketAddr>| c.0.ip())
/// ```
///
/// ```
/// use dispatchkit_ratelimit::layer::{KeyExtractor, PeerIp};
/// use std::net::{IpAddr, SocketAddr};
///
/// let mut req = http::Request::get("/").header("x-forwarded-for", "203.0.113.9, 10.0.0.2").body(())?;
/// req.extensions_mut().insert("10.0.0.1:4000".parse::<SocketAddr>()?);
/// // By default the header is ignored: anyone can write it.
/// assert_eq!(*PeerIp::new().extract(&req)?, "10.0.0.1".parse::<IpAddr>()?);
/// // Behind two proxies we run, the client is the second entry from the right.
/// let behind_two = PeerIp::new().trust_x_forwarded_for(2);
/// assert_eq!(*behind_two.extract(&req)?, "203.0.113.9".parse::<IpAddr>()?);
/// // IPv6 clients are keyed per /64.
/// let mut v6 = http::Request::get("/").body(())?;
/// v6.extensions_mut().insert("[2001:db8:1:2:aaaa::1]:443".parse::<SocketAddr>()?);
/// assert_eq!(*PeerIp::new().extract(&v6)?, "2001:db8:1:2::".parse::<IpAddr>()?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct PeerIp {
    peer: Arc<PeerFn>,
    trusted_proxies: usize,
    ipv6_prefix: u8,
}

impl fmt::Debug for PeerIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerIp")
            .field("trusted_proxies", &self.trusted_proxies)
            .field("ipv6_prefix", &self.ipv6_prefix)
            .finish_non_exhaustive()
    }
}

impl Default for PeerIp {
    fn default() -> Self {
        Self::new()
    }
}

impl PeerIp {
    /// The peer address from a `SocketAddr` (or an `IpAddr`) in the
    /// request's extensions.
    pub fn new() -> Self {
        Self {
            peer: Arc::new(|ext: &Extensions| {
                ext.get::<SocketAddr>()
                    .map(SocketAddr::ip)
                    .or_else(|| ext.get::<IpAddr>().copied())
            }),
            trusted_proxies: 0,
            ipv6_prefix: 64,
        }
    }

    /// The peer address from the extension of type `T` a server inserts
    /// (axum's `ConnectInfo<SocketAddr>`, say).
    pub fn from_extension<T, F>(ip: F) -> Self
    where
        T: Send + Sync + 'static,
        F: Fn(&T) -> IpAddr + Send + Sync + 'static,
    {
        Self {
            peer: Arc::new(move |ext: &Extensions| ext.get::<T>().map(&ip)),
            trusted_proxies: 0,
            ipv6_prefix: 64,
        }
    }

    /// IPv6 clients are keyed by their first `bits` bits (default 64: one
    /// key per /64, the block a single subscriber usually holds, so a
    /// client cannot rotate through addresses to escape its limit); 128
    /// keys every address apart. IPv4-mapped IPv6 addresses are keyed as
    /// the IPv4 address.
    pub fn ipv6_prefix(mut self, bits: u8) -> Self {
        self.ipv6_prefix = bits.min(128);
        self
    }

    fn key_of(&self, ip: IpAddr) -> IpAddr {
        match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let bits = u32::from(self.ipv6_prefix);
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                IpAddr::V6((u128::from(v6) & mask).into())
            }
            v4 => v4,
        }
    }

    /// Trusts `X-Forwarded-For` as written by `proxies` reverse proxies of
    /// yours in front of the server: the client is the entry `proxies`
    /// from the right (each proxy appends the address it saw). A request
    /// with fewer entries, or an entry that is not an IP address, falls
    /// back to the peer address. `0` (the default) ignores the header,
    /// which any client can set.
    pub fn trust_x_forwarded_for(mut self, proxies: usize) -> Self {
        self.trusted_proxies = proxies;
        self
    }

    /// The client address the trusted proxies recorded: `Ok(None)` when
    /// the header is not trusted or has fewer entries than proxies (the
    /// request did not come through them); `Err` when the entry the
    /// proxies vouch for is not an IP address.
    fn forwarded<B>(&self, req: &Request<B>) -> Result<Option<IpAddr>, Rejection> {
        if self.trusted_proxies == 0 {
            return Ok(None);
        }
        // Raw bytes: a client's own garbage in the line a proxy appended
        // to must not hide the proxies' entries.
        let entries = || {
            req.headers()
                .get_all("x-forwarded-for")
                .iter()
                .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        };
        let n = entries().count();
        let Some(i) = n.checked_sub(self.trusted_proxies) else {
            return Ok(None);
        };
        let entry = entries().nth(i).unwrap_or_default();
        std::str::from_utf8(entry)
            .ok()
            .and_then(|e| e.trim().parse().ok())
            .map(Some)
            .ok_or_else(|| {
                Rejection::bad_request("the client entry of X-Forwarded-For is not an IP address")
            })
    }
}

impl<B> KeyExtractor<B> for PeerIp {
    type Key = IpAddr;

    fn extract<'r>(&self, req: &'r Request<B>) -> Result<Cow<'r, IpAddr>, Rejection> {
        self.forwarded(req)?
            .or_else(|| (self.peer)(req.extensions()))
            .map(|ip| Cow::Owned(self.key_of(ip)))
            .ok_or_else(|| {
                Rejection::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the server does not record peer addresses (serve with connect info)",
                )
            })
    }
}

/// A key an earlier layer put in the request's extensions — an
/// authenticated user id, say — read through `key`. Missing is `401`.
///
/// ```
/// use dispatchkit_ratelimit::layer::{FromExtension, KeyExtractor};
///
/// #[derive(Clone)]
/// struct User { id: u64 }
/// let by_user = FromExtension::new(|u: &User| u.id);
/// let mut req = http::Request::get("/").body(())?;
/// assert_eq!(by_user.extract(&req).unwrap_err().status, 401);
/// req.extensions_mut().insert(User { id: 42 });
/// assert_eq!(*by_user.extract(&req)?, 42);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct FromExtension<T, K, F> {
    key: F,
    challenge: Cow<'static, str>,
    _types: std::marker::PhantomData<fn(&T) -> K>,
}

impl<T, K, F: Clone> Clone for FromExtension<T, K, F> {
    fn clone(&self) -> Self {
        Self {
            key: self.key.clone(),
            challenge: self.challenge.clone(),
            _types: std::marker::PhantomData,
        }
    }
}

impl<T, K, F> fmt::Debug for FromExtension<T, K, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FromExtension")
            .field("extension", &std::any::type_name::<T>())
            .finish_non_exhaustive()
    }
}

impl<T, K, F> FromExtension<T, K, F>
where
    T: Send + Sync + 'static,
    F: Fn(&T) -> K + Send + Sync + 'static,
{
    /// The key `key(t)` of the extension `t: T`; a request without one
    /// is `401` with `WWW-Authenticate: Bearer`.
    pub fn new(key: F) -> Self {
        Self {
            key,
            challenge: Cow::Borrowed("Bearer"),
            _types: std::marker::PhantomData,
        }
    }

    /// The `WWW-Authenticate` challenge of the `401` (default `Bearer`).
    pub fn challenge(mut self, challenge: impl Into<Cow<'static, str>>) -> Self {
        self.challenge = challenge.into();
        self
    }
}

impl<B, T, K, F> KeyExtractor<B> for FromExtension<T, K, F>
where
    T: Send + Sync + 'static,
    K: Clone + 'static,
    F: Fn(&T) -> K + Send + Sync + 'static,
{
    type Key = K;

    fn extract<'r>(&self, req: &'r Request<B>) -> Result<Cow<'r, K>, Rejection> {
        req.extensions()
            .get::<T>()
            .map(|t| Cow::Owned((self.key)(t)))
            .ok_or_else(|| {
                Rejection::unauthorized(self.challenge.clone(), "the request is not authenticated")
            })
    }
}

/// Any function of the request as an extractor (the key owned).
///
/// ```
/// use dispatchkit_ratelimit::layer::{KeyExtractor, KeyFn, Rejection};
///
/// let tenant = KeyFn::new(|req: &http::Request<()>| {
///     req.uri().host().map(str::to_owned).ok_or_else(|| Rejection::bad_request("no host"))
/// });
/// let req = http::Request::get("http://acme.example/").body(())?;
/// assert_eq!(tenant.extract(&req)?.as_str(), "acme.example");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct KeyFn<F>(F);

impl<F> fmt::Debug for KeyFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyFn")
    }
}

impl<F> KeyFn<F> {
    /// Wraps `f`.
    pub fn new(f: F) -> Self {
        Self(f)
    }
}

impl<B, K, F> KeyExtractor<B> for KeyFn<F>
where
    K: Clone + 'static,
    F: Fn(&Request<B>) -> Result<K, Rejection> + Send + Sync + 'static,
{
    type Key = K;

    fn extract<'r>(&self, req: &'r Request<B>) -> Result<Cow<'r, K>, Rejection> {
        (self.0)(req).map(Cow::Owned)
    }
}
