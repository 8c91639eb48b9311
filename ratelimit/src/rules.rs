//! The rules table as data (the seed's DynamoDB rules table:
//! `limits[] = [{window: 'hour', count: 1000}, {window: 'day', count: 10000}]`),
//! loadable with serde.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::RateLimitError;

/// A user tier (the seed's free / premium / enterprise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Tier {
    /// Free tier.
    Free,
    /// Premium tier.
    Premium,
    /// Enterprise tier.
    Enterprise,
}

/// What a key identifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum KeyKind {
    /// A user id.
    User,
    /// A client IP address.
    Ip,
    /// An API key.
    ApiKey,
}

/// Which algorithm enforces a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum AlgorithmKind {
    /// Token bucket as GCRA (default): constant memory, smooth refill.
    #[default]
    #[cfg_attr(feature = "serde", serde(alias = "gcra"))]
    TokenBucket,
    /// Fixed window counter (the seed's `INCR` + TTL).
    FixedWindow,
    /// Exact sliding log (the seed's sorted set), O(count) memory per key.
    SlidingLog,
    /// Sliding-window counter (approximate, bounded error).
    SlidingCounter,
}

/// A window length, written in rule data as `"second"`, `"minute"`,
/// `"hour"`, `"day"`, `"week"`, or a number with a unit: `"500ms"`,
/// `"10s"`, `"15m"`, `"2h"`, `"7d"`.
///
/// ```
/// use dispatchkit_ratelimit::Window;
/// use std::time::Duration;
///
/// assert_eq!("hour".parse::<Window>()?.duration(), Duration::from_secs(3600));
/// assert_eq!("15m".parse::<Window>()?.duration(), Duration::from_secs(900));
/// assert!("0s".parse::<Window>().is_err());
/// # Ok::<(), dispatchkit_ratelimit::RateLimitError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "String", into = "String"))]
pub struct Window(Duration);

impl Window {
    /// A window of `d` (non-zero; checked when the rule is compiled).
    pub fn new(d: Duration) -> Self {
        Self(d)
    }

    /// The length.
    pub fn duration(&self) -> Duration {
        self.0
    }
}

impl FromStr for Window {
    type Err = RateLimitError;

    fn from_str(s: &str) -> Result<Self, RateLimitError> {
        let bad = |reason| RateLimitError::InvalidWindow {
            value: s.to_string(),
            reason,
        };
        let secs = |n: u64| Duration::from_secs(n);
        let d = match s.trim() {
            "second" => secs(1),
            "minute" => secs(60),
            "hour" => secs(3_600),
            "day" => secs(86_400),
            "week" => secs(604_800),
            t => {
                let split = t
                    .find(|c: char| !c.is_ascii_digit())
                    .ok_or_else(|| bad("a number needs a unit: ms, s, m, h or d"))?;
                let (num, unit) = t.split_at(split);
                let n: u64 = num
                    .parse()
                    .map_err(|_| bad("expected a whole number before the unit"))?;
                let mul = match unit {
                    "ms" => return Ok(Self(Duration::from_millis(n))).and_then(nonzero(s)),
                    "s" => 1,
                    "m" => 60,
                    "h" => 3_600,
                    "d" => 86_400,
                    _ => return Err(bad("unknown unit (use ms, s, m, h or d)")),
                };
                secs(n.checked_mul(mul).ok_or_else(|| bad("window too long"))?)
            }
        };
        nonzero(s)(Self(d))
    }
}

fn nonzero(s: &str) -> impl FnOnce(Window) -> Result<Window, RateLimitError> + '_ {
    move |w| {
        if w.0.is_zero() {
            Err(RateLimitError::InvalidWindow {
                value: s.to_string(),
                reason: "a window must be longer than zero",
            })
        } else {
            Ok(w)
        }
    }
}

impl TryFrom<String> for Window {
    type Error = RateLimitError;

    fn try_from(s: String) -> Result<Self, RateLimitError> {
        s.parse()
    }
}

impl From<Window> for String {
    fn from(w: Window) -> String {
        w.to_string()
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        match d.as_secs() {
            1 if d.subsec_nanos() == 0 => f.write_str("second"),
            60 if d.subsec_nanos() == 0 => f.write_str("minute"),
            3_600 if d.subsec_nanos() == 0 => f.write_str("hour"),
            86_400 if d.subsec_nanos() == 0 => f.write_str("day"),
            604_800 if d.subsec_nanos() == 0 => f.write_str("week"),
            s if d.subsec_nanos() == 0 => write!(f, "{s}s"),
            _ => write!(f, "{}ms", d.as_millis()),
        }
    }
}

/// One limit of a rule set: `count` units per `window`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Limit {
    /// Name shown in headers and decisions (printable ASCII without `"`
    /// or `\`, at most 32 bytes); defaults to `"{count}-per-{window}"`.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub name: Option<String>,
    /// The window length.
    pub window: Window,
    /// Units per window.
    pub count: u32,
    /// Token bucket capacity (defaults to `count`; ignored by the window
    /// algorithms).
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub burst: Option<u32>,
    /// The algorithm (default: token bucket).
    #[cfg_attr(feature = "serde", serde(default))]
    pub algorithm: AlgorithmKind,
}

impl Limit {
    /// `count` per `window`, token bucket, default name.
    pub fn new(count: u32, window: Window) -> Self {
        Self {
            name: None,
            window,
            count,
            burst: None,
            algorithm: AlgorithmKind::TokenBucket,
        }
    }

    /// The same limit with a name.
    pub fn named(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }

    /// The same limit with a token-bucket burst.
    pub fn with_burst(mut self, burst: u32) -> Self {
        self.burst = Some(burst);
        self
    }

    /// The same limit enforced by `algorithm`.
    pub fn with_algorithm(mut self, algorithm: AlgorithmKind) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// The name used in headers and decisions.
    pub fn display_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("{}-per-{}", self.count, self.window))
    }
}

/// A row of the rules table: the limits that apply to requests matching
/// its selector. An absent field matches anything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RuleSet {
    /// Only for this tier.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub tier: Option<Tier>,
    /// Only for this endpoint (the seed's partition key `apiEndpoint`).
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub endpoint: Option<String>,
    /// Only for this kind of key.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub kind: Option<KeyKind>,
    /// The limits, all checked atomically (1 to 8).
    pub limits: Vec<Limit>,
}

/// The rules table: which limits apply to a request, by tier, endpoint and
/// key kind. Resolution picks the **most specific** matching row: more
/// fields set wins, and on a tie endpoint outranks tier, which outranks
/// kind — the order `(endpoint, tier, kind)`, `(endpoint, tier)`,
/// `(endpoint, kind)`, `(tier, kind)`, `(endpoint)`, `(tier)`, `(kind)`, `()`.
///
/// ```
/// use dispatchkit_ratelimit::{KeyKind, Limit, RuleSet, RuleTable, Window};
///
/// let hour: Window = "hour".parse()?;
/// let table = RuleTable {
///     rules: vec![RuleSet {
///         kind: Some(KeyKind::User),
///         limits: vec![Limit::new(1000, hour), Limit::new(10_000, "day".parse()?)],
///         ..RuleSet::default()
///     }],
/// };
/// assert_eq!(table.rules[0].limits[0].display_name(), "1000-per-hour");
/// # Ok::<(), dispatchkit_ratelimit::RateLimitError>(())
/// ```
///
/// With the `serde` feature the table loads from data shaped like the
/// seed's: `{"rules": [{"endpoint": "/v1/rides", "limits": [{"window":
/// "hour", "count": 1000}, {"window": "day", "count": 10000}]}]}`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RuleTable {
    /// The rows; at most one per selector.
    pub rules: Vec<RuleSet>,
}
