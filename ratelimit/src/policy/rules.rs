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
/// `"hour"`, `"day"`, `"week"`, or a whole number with a unit: `"250ns"`,
/// `"40us"`, `"500ms"`, `"10s"`, `"15m"`, `"2h"`, `"7d"`.
///
/// Writing one out picks the largest unit that divides it exactly, so
/// every window reads back as itself (`1.5 ms` is `"1500us"`).
///
/// ```
/// use dispatchkit_ratelimit::Window;
/// use std::time::Duration;
///
/// assert_eq!("hour".parse::<Window>()?.duration(), Duration::from_secs(3600));
/// assert_eq!("15m".parse::<Window>()?.duration(), Duration::from_secs(900));
/// assert!("0s".parse::<Window>().is_err());
/// let w = Window::new(Duration::from_micros(1_500))?;
/// assert_eq!(w.to_string(), "1500us");
/// assert_eq!(w.to_string().parse::<Window>()?, w);
/// assert!(Window::new(Duration::ZERO).is_err());
/// # Ok::<(), dispatchkit_ratelimit::RateLimitError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "String", into = "String"))]
pub struct Window(Duration);

/// Units a window is written in, largest first, with their length in ns.
const UNITS: [(&str, u128); 7] = [
    ("d", 86_400_000_000_000),
    ("h", 3_600_000_000_000),
    ("m", 60_000_000_000),
    ("s", 1_000_000_000),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("ns", 1),
];

impl Window {
    /// A window of `d`.
    ///
    /// # Errors
    /// [`RateLimitError::InvalidWindow`] for a zero duration.
    pub fn new(d: Duration) -> Result<Self, RateLimitError> {
        if d.is_zero() {
            return Err(RateLimitError::InvalidWindow {
                value: format!("{d:?}"),
                reason: "a window must be longer than zero",
            });
        }
        Ok(Self(d))
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
                    .ok_or_else(|| bad("a number needs a unit: ns, us, ms, s, m, h or d"))?;
                let (num, unit) = t.split_at(split);
                let n: u128 = num
                    .parse()
                    .map_err(|_| bad("expected a whole number before the unit"))?;
                let (_, per) = UNITS
                    .iter()
                    .find(|(u, _)| *u == unit || (unit == "µs" && *u == "us"))
                    .ok_or_else(|| bad("unknown unit (use ns, us, ms, s, m, h or d)"))?;
                let nanos = n.checked_mul(*per).ok_or_else(|| bad("window too long"))?;
                let whole =
                    u64::try_from(nanos / 1_000_000_000).map_err(|_| bad("window too long"))?;
                Duration::new(whole, (nanos % 1_000_000_000) as u32)
            }
        };
        Window::new(d).map_err(|_| bad("a window must be longer than zero"))
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
        let nanos = self.0.as_nanos();
        let name = match nanos {
            1_000_000_000 => Some("second"),
            60_000_000_000 => Some("minute"),
            3_600_000_000_000 => Some("hour"),
            86_400_000_000_000 => Some("day"),
            604_800_000_000_000 => Some("week"),
            _ => None,
        };
        if let Some(name) = name {
            return f.write_str(name);
        }
        // Exact: the largest unit that divides the length (ns always does).
        let (unit, per) = UNITS
            .iter()
            .find(|(_, per)| nanos.is_multiple_of(*per))
            .copied()
            .unwrap_or(("ns", 1));
        write!(f, "{}{unit}", nanos / per)
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
