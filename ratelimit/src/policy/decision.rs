//! What a policy check is asked and answers: the request's subject, the
//! rules' names and advertised limits, and the decision.

use std::cmp::Reverse;
use std::fmt;
use std::time::{Duration, Instant};

use crate::RateLimitError;
use crate::algorithm::Algorithm;
use crate::compiled::INLINE_WORDS;
use crate::decision::{Decision, Source};
use crate::gcra::Gcra;
use crate::rules::{KeyKind, Tier};

/// Most limits one rule set may hold.
pub const MAX_LIMITS: usize = 8;
/// Longest rule name, in bytes.
pub const MAX_NAME: usize = 32;

/// A rule name, stored inline (no allocation, no shared reference count
/// in decisions): printable ASCII without `"` or `\`, at most
/// [`MAX_NAME`] bytes, so it is always a valid structured-field string.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RuleName {
    buf: [u8; MAX_NAME],
    len: u8,
}

impl RuleName {
    /// Checks and stores `name`.
    ///
    /// # Errors
    /// [`RateLimitError::InvalidRule`] when `name` is empty, longer than
    /// [`MAX_NAME`] bytes, or holds anything but printable ASCII other
    /// than `"` and `\`.
    pub fn new(name: &str) -> Result<Self, RateLimitError> {
        let ok = !name.is_empty()
            && name.len() <= MAX_NAME
            && name
                .bytes()
                .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\');
        if !ok {
            return Err(RateLimitError::InvalidRule {
                rule: name.to_string(),
                reason: "names are 1 to 32 bytes of printable ASCII without '\"' or '\\'",
            });
        }
        let mut buf = [0u8; MAX_NAME];
        buf[..name.len()].copy_from_slice(name.as_bytes());
        Ok(Self {
            buf,
            len: name.len() as u8,
        })
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or("")
    }
}

impl fmt::Debug for RuleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for RuleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One request subject: who is asking (`kind`, `key`), at which tier and
/// endpoint.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a, K> {
    /// The subject's tier, when known (anonymous IPs have none).
    pub tier: Option<Tier>,
    /// The endpoint called.
    pub endpoint: &'a str,
    /// What the key identifies.
    pub kind: KeyKind,
    /// The key (user id, IP, API key).
    pub key: &'a K,
}

/// A limit as advertised in `RateLimit-Policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyInfo {
    /// The rule name.
    pub name: RuleName,
    /// Units per window.
    pub limit: u32,
    /// The window.
    pub window: Duration,
}

/// The outcome of a policy check: allowed or not, and the one rule a
/// response should report — the rule that denied (the one with the longest
/// wait when several did), or when allowed the tightest rule (least
/// remaining, then the latest reset).
///
/// For a set of two token buckets (the usual per-hour and per-day pair)
/// the reported rule is chosen when asked ([`rule`](Self::rule),
/// [`decision`](Self::decision), [`denied_by`](Self::denied_by)), from
/// both buckets' state taken with the verdict, so a caller that reads only
/// [`is_allowed`](Self::is_allowed) pays for no ranking; a set of three is
/// ranked at the check, so that its decision carries one rule instead of
/// copies of three (a decision is built on every check). Two decisions are
/// equal when they agree on the verdict, the subject and the reported rule.
#[derive(Clone, Copy)]
#[must_use = "a dropped decision fails open: check is_allowed()"]
pub struct PolicyDecision {
    pub(crate) allowed: bool,
    pub(crate) subject: usize,
    pub(crate) report: Report,
}

/// What a decision reports, chosen already or on demand.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Report {
    /// No rule applies.
    None,
    /// The rule chosen at the check.
    Rule(PolicyInfo, Decision),
    /// The two buckets of a two-bucket set, ranked when asked.
    Buckets(Buckets),
}

/// A token bucket of a rule set: its advertised limit and its parameters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BucketRule {
    pub(crate) info: PolicyInfo,
    pub(crate) gcra: Gcra,
}

/// The rules of a set of token buckets held inline (unused places repeat
/// the last rule).
pub(crate) type BucketRules = [BucketRule; INLINE_WORDS];

/// Both buckets of a two-bucket set after a check: their rules, their
/// TATs and the check's cost and times, enough to rank them and build the
/// reported rule's decision when asked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Buckets {
    pub(crate) rules: [BucketRule; 2],
    pub(crate) tats: [u64; 2],
    pub(crate) cost: u32,
    /// The caller's `now`, in nanoseconds since the origin.
    pub(crate) t: u64,
    pub(crate) at: Instant,
    pub(crate) t_eff: u64,
}

/// The bucket to report among `rules` with TATs `tats` after a check of
/// `cost`: when allowed the least remaining, then the latest reset; on
/// denial the longest wait among the buckets that deny (nothing was
/// charged). The earliest bucket on ties.
#[inline(always)]
pub(crate) fn choose(
    rules: &[BucketRule],
    tats: &[u64],
    cost: u32,
    t: u64,
    t_eff: u64,
    allowed: bool,
) -> usize {
    let n = rules.len().min(tats.len());
    let mut best = 0;
    if allowed {
        let key = |i: usize| {
            let g = &rules[i].gcra;
            (
                g.remaining_tat(tats[i], t_eff),
                Reverse(tats[i].saturating_sub(t)),
            )
        };
        let mut best_key = key(0);
        for i in 1..n {
            let k = key(i);
            if k < best_key {
                (best, best_key) = (i, k);
            }
        }
    } else {
        let mut wait = None;
        for i in 0..n {
            let g = &rules[i].gcra;
            if g.fits_tat(tats[i], t_eff, cost) {
                continue;
            }
            let w = g.fit_at_tat(tats[i], t_eff, cost).saturating_sub(t);
            if wait.is_none_or(|x| w > x) {
                (best, wait) = (i, Some(w));
            }
        }
    }
    best
}

impl Buckets {
    /// The bucket to report (see [`choose`]).
    fn chosen(&self, allowed: bool) -> usize {
        choose(
            &self.rules,
            &self.tats,
            self.cost,
            self.t,
            self.t_eff,
            allowed,
        )
    }

    /// The reported rule and its decision.
    fn rule(&self, allowed: bool) -> (&PolicyInfo, Decision) {
        let i = self.chosen(allowed);
        let r = &self.rules[i];
        let d = bucket_decision(
            &r.gcra,
            self.tats[i],
            allowed,
            self.cost,
            self.t,
            self.at,
            self.t_eff,
        );
        (&r.info, d)
    }
}

/// The decision of token bucket `g` whose TAT after the check is `tat`.
#[inline]
pub(crate) fn bucket_decision(
    g: &Gcra,
    tat: u64,
    allowed: bool,
    cost: u32,
    t: u64,
    at: Instant,
    t_eff: u64,
) -> Decision {
    Decision {
        allowed,
        source: Source::State,
        limit: g.capacity(),
        cost,
        now: t,
        at,
        t_eff,
        detail: g.detail_tat(tat),
    }
}

impl PolicyDecision {
    /// Allowed, no rule applies.
    pub(crate) fn unlimited() -> Self {
        Self {
            allowed: true,
            subject: 0,
            report: Report::None,
        }
    }

    /// Allowed iff `allowed`, reporting `info` with `decision`.
    pub(crate) fn reporting(allowed: bool, info: PolicyInfo, decision: Decision) -> Self {
        Self {
            allowed,
            subject: 0,
            report: Report::Rule(info, decision),
        }
    }

    /// Whether the request is allowed (every rule of every subject had room).
    #[inline]
    pub fn is_allowed(&self) -> bool {
        self.allowed
    }

    /// On denial, the name of the rule that denied.
    pub fn denied_by(&self) -> Option<&str> {
        if self.allowed {
            None
        } else {
            self.rule().map(|(p, _)| p.name.as_str())
        }
    }

    /// The reported rule and its decision (`None` when no rule applies):
    /// on denial the rule that denied with the longest wait, when allowed
    /// the one with the least remaining (then the latest reset).
    ///
    /// ```
    /// use dispatchkit_ratelimit::{KeyKind, Limit, PolicyLimiter, Request, RuleSet, RuleTable};
    /// use std::time::{Duration, Instant};
    ///
    /// let table = RuleTable { rules: vec![RuleSet {
    ///     limits: vec![
    ///         Limit::new(10, "second".parse()?).named("burst"),
    ///         Limit::new(100, "hour".parse()?).named("hourly"),
    ///     ],
    ///     ..RuleSet::default()
    /// }] };
    /// let t0 = Instant::now();
    /// let limiter = PolicyLimiter::new_at(&table, t0)?;
    /// let req = Request { tier: None, endpoint: "/v1/rides", kind: KeyKind::User, key: &7u64 };
    /// let d = limiter.check_at(&req, 4, t0)?;
    /// let (info, dec) = d.rule().expect("a rule applies");
    /// assert_eq!((info.name.as_str(), dec.remaining()), ("burst", 6)); // 6 < 96
    /// let d = limiter.check_at(&req, 8, t0)?;
    /// let (info, dec) = d.rule().expect("a rule applies");
    /// assert_eq!(info.name.as_str(), "burst");
    /// assert_eq!(dec.retry_after(), Some(Duration::from_millis(200)));
    /// # Ok::<(), dispatchkit_ratelimit::RateLimitError>(())
    /// ```
    pub fn rule(&self) -> Option<(&PolicyInfo, Decision)> {
        match &self.report {
            Report::None => None,
            Report::Rule(p, d) => Some((p, *d)),
            Report::Buckets(b) => Some(b.rule(self.allowed)),
        }
    }

    /// The reported rule's decision: its remaining units, reset and (on
    /// denial) retry time.
    pub fn decision(&self) -> Option<Decision> {
        self.rule().map(|(_, d)| d)
    }

    /// Index of the subject (in a multi-subject check) the reported rule
    /// belongs to.
    pub fn subject(&self) -> usize {
        self.subject
    }
}

impl PartialEq for PolicyDecision {
    fn eq(&self, other: &Self) -> bool {
        self.allowed == other.allowed
            && self.subject == other.subject
            && self.rule() == other.rule()
    }
}

impl Eq for PolicyDecision {}

impl fmt::Debug for PolicyDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyDecision")
            .field("allowed", &self.allowed)
            .field("subject", &self.subject)
            .field("rule", &self.rule())
            .finish()
    }
}
