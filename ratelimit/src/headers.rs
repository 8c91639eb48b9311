//! Response headers from decisions, as plain `(name, value)` pairs:
//! the legacy `X-RateLimit-*` trio with `Retry-After` (what the seed's API
//! Gateway returns), and the IETF `RateLimit-Policy` / `RateLimit`
//! structured fields of draft-ietf-httpapi-ratelimit-headers-11 (May 2026):
//! `RateLimit-Policy: "burst";q=100;w=60` and `RateLimit: "default";r=50;t=30`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::decision::Decision;
use crate::policy::decision::{PolicyDecision, PolicyInfo, RuleName};

/// A mapping from `Instant`s to wall-clock time, supplied by the caller so
/// that header formatting never reads a clock itself: the pair
/// `(instant, system)` names the same moment.
///
/// ```
/// use dispatchkit_ratelimit::ClockMap;
/// use std::time::{Duration, Instant, SystemTime};
///
/// let t0 = Instant::now();
/// let map = ClockMap::new(t0, SystemTime::UNIX_EPOCH + Duration::from_secs(1_635_721_200));
/// assert_eq!(map.epoch_seconds(t0 + Duration::from_secs(3600)), 1_635_724_800);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockMap {
    instant: Instant,
    system: SystemTime,
}

impl ClockMap {
    /// `instant` and `system` are the same moment.
    pub fn new(instant: Instant, system: SystemTime) -> Self {
        Self { instant, system }
    }

    /// Reads both clocks now (the one place a clock is read).
    pub fn now() -> Self {
        Self::new(Instant::now(), SystemTime::now())
    }

    /// The wall-clock time of `at`.
    pub fn system_at(&self, at: Instant) -> SystemTime {
        if at >= self.instant {
            self.system + (at - self.instant)
        } else {
            self.system
                .checked_sub(self.instant - at)
                .unwrap_or(UNIX_EPOCH)
        }
    }

    /// Seconds since the Unix epoch of `at`, rounded up (a client told to
    /// come back then is never early); 0 before the epoch.
    pub fn epoch_seconds(&self, at: Instant) -> u64 {
        ceil_secs(
            self.system_at(at)
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
        )
    }
}

/// Whole seconds, rounded up.
fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// The seed's headers: `X-RateLimit-Limit`, `X-RateLimit-Remaining`,
/// `X-RateLimit-Reset` (Unix seconds when the state is back to full,
/// rounded up) and, on denial, `Retry-After` (delay-seconds, rounded up,
/// at least 1).
///
/// ```
/// use dispatchkit_ratelimit::{ClockMap, FixedWindow, Quota, RateLimiter, legacy_headers};
/// use std::time::{Duration, Instant, SystemTime};
///
/// let t0 = Instant::now();
/// let hourly = RateLimiter::new_at(FixedWindow::new(Quota::per_hour(1000)?), t0);
/// let d = hourly.check_n_at(153, t0)?;
/// let clock = ClockMap::new(t0, SystemTime::UNIX_EPOCH + Duration::from_secs(1_635_721_200));
/// assert_eq!(legacy_headers(&d, &clock), vec![
///     ("X-RateLimit-Limit", "1000".to_string()),
///     ("X-RateLimit-Remaining", "847".to_string()),
///     ("X-RateLimit-Reset", "1635724800".to_string()),
/// ]);
/// # Ok::<(), dispatchkit_ratelimit::RateLimitError>(())
/// ```
pub fn legacy_headers(d: &Decision, clock: &ClockMap) -> Vec<(&'static str, String)> {
    let mut h = vec![
        ("X-RateLimit-Limit", d.limit().to_string()),
        ("X-RateLimit-Remaining", d.remaining().to_string()),
        ("X-RateLimit-Reset", reset_epoch(d, clock).to_string()),
    ];
    if let Some(secs) = retry_after_secs(d) {
        h.push(("Retry-After", secs.to_string()));
    }
    h
}

/// `X-RateLimit-Reset`: Unix seconds when the state is back to full.
fn reset_epoch(d: &Decision, clock: &ClockMap) -> u64 {
    clock.epoch_seconds(d.at() + d.reset_after())
}

/// `Retry-After` on a denial: delay-seconds, rounded up, at least 1.
pub(crate) fn retry_after_secs(d: &Decision) -> Option<u64> {
    d.retry_after().map(|wait| ceil_secs(wait).max(1))
}

/// `RateLimit-Policy`: one quota policy item per limit,
/// `"name";q=<limit>;w=<window seconds>` (`w` omitted when the window is
/// not a whole number of seconds, which the draft cannot express).
///
/// ```
/// use dispatchkit_ratelimit::{PolicyInfo, RuleName, ratelimit_policy_header};
/// use std::time::Duration;
///
/// let burst = PolicyInfo { name: RuleName::new("burst")?, limit: 100, window: Duration::from_secs(60) };
/// let daily = PolicyInfo { name: RuleName::new("daily")?, limit: 1000, window: Duration::from_secs(86_400) };
/// assert_eq!(
///     ratelimit_policy_header(&[burst, daily]),
///     ("RateLimit-Policy", r#""burst";q=100;w=60, "daily";q=1000;w=86400"#.to_string())
/// );
/// # Ok::<(), dispatchkit_ratelimit::RateLimitError>(())
/// ```
pub fn ratelimit_policy_header(policies: &[PolicyInfo]) -> (&'static str, String) {
    let mut v = Vec::new();
    for (i, p) in policies.iter().enumerate() {
        if i > 0 {
            v.push_bytes(b", ");
        }
        policy_item(&mut v, p);
    }
    ("RateLimit-Policy", ascii(v))
}

/// `"name";q=<limit>[;w=<window seconds>]`.
fn policy_item(out: &mut impl Out, p: &PolicyInfo) {
    out.quoted(p.name.as_str());
    out.push_bytes(b";q=");
    out.num(u64::from(p.limit));
    if p.window.subsec_nanos() == 0 && p.window.as_secs() > 0 {
        out.push_bytes(b";w=");
        out.num(p.window.as_secs());
    }
}

/// `"name";r=<remaining>;t=<effective window seconds, rounded up>`.
fn limit_item(out: &mut impl Out, name: &RuleName, d: &Decision) {
    out.quoted(name.as_str());
    out.push_bytes(b";r=");
    out.num(u64::from(d.remaining()));
    out.push_bytes(b";t=");
    out.num(ceil_secs(d.effective_window()));
}

/// The fields are ASCII (rule names are printable ASCII).
fn ascii(v: Vec<u8>) -> String {
    String::from_utf8(v).unwrap_or_default()
}

/// Where header text is written: a `Vec` for the string forms, a stack
/// buffer for `http` values.
trait Out {
    fn push_bytes(&mut self, s: &[u8]);

    fn quoted(&mut self, s: &str) {
        self.push_bytes(b"\"");
        self.push_bytes(s.as_bytes());
        self.push_bytes(b"\"");
    }

    fn num(&mut self, mut v: u64) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.push_bytes(&digits[i..]);
    }
}

impl Out for Vec<u8> {
    fn push_bytes(&mut self, s: &[u8]) {
        self.extend_from_slice(s);
    }
}

/// `RateLimit`: the service limit of one policy,
/// `"name";r=<remaining>;t=<effective window seconds, rounded up>`.
///
/// ```
/// use dispatchkit_ratelimit::{FixedWindow, Quota, RateLimiter, RuleName, ratelimit_header};
/// use std::time::{Duration, Instant};
///
/// let t0 = Instant::now();
/// let lim = RateLimiter::new_at(FixedWindow::new(Quota::per_minute(100)?), t0);
/// let d = lim.check_at(t0 + Duration::from_secs(10));
/// assert_eq!(
///     ratelimit_header(&RuleName::new("fixedwindow")?, &d),
///     ("RateLimit", r#""fixedwindow";r=99;t=50"#.to_string())
/// );
/// # Ok::<(), dispatchkit_ratelimit::RateLimitError>(())
/// ```
pub fn ratelimit_header(name: &RuleName, d: &Decision) -> (&'static str, String) {
    let mut v = Vec::new();
    limit_item(&mut v, name, d);
    ("RateLimit", ascii(v))
}

/// Every header for a policy decision: the legacy trio (and `Retry-After`)
/// and `RateLimit` for the reported rule (the denying or tightest one, as
/// the draft allows); empty when no rule applied.
pub fn policy_headers(d: &PolicyDecision, clock: &ClockMap) -> Vec<(&'static str, String)> {
    match d.rule() {
        None => Vec::new(),
        Some((info, dec)) => {
            let mut h = legacy_headers(&dec, clock);
            h.push(ratelimit_header(&info.name, &dec));
            h
        }
    }
}

/// Which headers [`insert_headers`] writes.
#[cfg(feature = "tower")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderStyle {
    /// `RateLimit-Policy` and `RateLimit` (the IETF draft's fields).
    pub ietf: bool,
    /// `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset`.
    pub legacy: bool,
}

#[cfg(feature = "tower")]
impl Default for HeaderStyle {
    /// The draft's fields only.
    fn default() -> Self {
        Self {
            ietf: true,
            legacy: false,
        }
    }
}

/// Writes a policy decision's headers into an `http::HeaderMap` (what
/// [`policy_headers`] formats as strings): `RateLimit-Policy` and
/// `RateLimit` for the reported rule (appended to items already there),
/// the legacy trio if `style` asks, and `Retry-After` on a denial (those
/// two only where the map has none yet). Nothing when no rule applied.
///
/// ```
/// use dispatchkit_ratelimit::{ClockMap, HeaderStyle, Limit, PolicyLimiter, Request, RuleSet, RuleTable};
/// use dispatchkit_ratelimit::{KeyKind, Tier, insert_headers};
/// use std::time::{Instant, SystemTime};
///
/// let table = RuleTable { rules: vec![RuleSet {
///     tier: Some(Tier::Free),
///     limits: vec![Limit::new(2, "minute".parse()?).named("free")],
///     ..RuleSet::default()
/// }] };
/// let t0 = Instant::now();
/// let limiter = PolicyLimiter::new_at(&table, t0)?;
/// let req = Request { tier: Some(Tier::Free), endpoint: "/v1/menu", kind: KeyKind::ApiKey, key: &7u64 };
/// let d = limiter.check_at(&req, 1, t0)?;
/// let mut map = http::HeaderMap::new();
/// insert_headers(&mut map, &d, HeaderStyle::default(), &ClockMap::new(t0, SystemTime::UNIX_EPOCH));
/// assert_eq!(map["ratelimit-policy"], r#""free";q=2;w=60"#);
/// // One token back every 30 s.
/// assert_eq!(map["ratelimit"], r#""free";r=1;t=30"#);
/// assert!(map.get("retry-after").is_none());
/// # Ok::<(), dispatchkit_ratelimit::RateLimitError>(())
/// ```
#[cfg(feature = "tower")]
pub fn insert_headers(
    map: &mut http::HeaderMap,
    d: &PolicyDecision,
    style: HeaderStyle,
    clock: &ClockMap,
) {
    write_headers(map, d, style, clock, None);
}

/// [`insert_headers`], with the `RateLimit-Policy` value already built when
/// `policy` is given (a layer whose policy never changes builds it once).
#[cfg(feature = "tower")]
pub(crate) fn write_headers(
    map: &mut http::HeaderMap,
    d: &PolicyDecision,
    style: HeaderStyle,
    clock: &ClockMap,
    policy: Option<&http::HeaderValue>,
) {
    use http::header::{HeaderName, HeaderValue, RETRY_AFTER};
    const POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
    const LIMIT: HeaderName = HeaderName::from_static("ratelimit");
    const X_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
    const X_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
    const X_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
    let Some((info, dec)) = d.rule() else { return };
    let dec = &dec;
    let n = 2 * usize::from(style.ietf) + 3 * usize::from(style.legacy);
    let n = n + usize::from(!d.is_allowed());
    if n > 0 {
        map.reserve(n);
    }
    if style.ietf {
        let policy = match policy {
            Some(v) => Some(v.clone()),
            None => policy_value(info),
        };
        // Appended: a response that already carries another layer's
        // policies lists both (the fields are structured lists).
        if let Some(v) = policy {
            map.append(POLICY, v);
        }
        let mut b = Buf::new();
        limit_item(&mut b, &info.name, dec);
        if let Some(v) = b.value() {
            map.append(LIMIT, v);
        }
    }
    if style.legacy {
        // One number each: an inner layer's (the one that decided a
        // denial) are kept.
        if !map.contains_key(&X_LIMIT) {
            map.insert(X_LIMIT, HeaderValue::from(dec.limit()));
            map.insert(X_REMAINING, HeaderValue::from(dec.remaining()));
            map.insert(X_RESET, HeaderValue::from(reset_epoch(dec, clock)));
        }
    }
    if !d.is_allowed()
        && !map.contains_key(RETRY_AFTER)
        && let Some(secs) = retry_after_secs(dec)
    {
        map.insert(RETRY_AFTER, HeaderValue::from(secs));
    }
}

/// The `RateLimit-Policy` value of one policy, as [`ratelimit_policy_header`]
/// formats it.
#[cfg(feature = "tower")]
pub(crate) fn policy_value(info: &PolicyInfo) -> Option<http::HeaderValue> {
    let mut b = Buf::new();
    policy_item(&mut b, info);
    b.value()
}

/// A header value built on the stack: a rule name (at most 32 bytes) and
/// two numbers always fit, so the only allocation is the value's own.
#[cfg(feature = "tower")]
struct Buf {
    b: [u8; 96],
    n: usize,
}

#[cfg(feature = "tower")]
impl Buf {
    fn new() -> Self {
        Self { b: [0; 96], n: 0 }
    }

    fn value(&self) -> Option<http::HeaderValue> {
        http::HeaderValue::from_bytes(&self.b[..self.n]).ok()
    }
}

#[cfg(feature = "tower")]
impl Out for Buf {
    fn push_bytes(&mut self, s: &[u8]) {
        let end = (self.n + s.len()).min(self.b.len());
        self.b[self.n..end].copy_from_slice(&s[..end - self.n]);
        self.n = end;
    }
}
