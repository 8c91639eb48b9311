//! What a policy check is asked and answers: the request's subject, the
//! rules' names and advertised limits, and the decision.

use std::fmt;
use std::time::Duration;

use crate::RateLimitError;
use crate::decision::Decision;
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
/// remaining).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a dropped decision fails open: check is_allowed()"]
pub struct PolicyDecision {
    pub(crate) allowed: bool,
    pub(crate) subject: usize,
    pub(crate) rule: Option<(PolicyInfo, Decision)>,
}

impl PolicyDecision {
    /// Allowed, no rule applies.
    pub(crate) fn unlimited() -> Self {
        Self {
            allowed: true,
            subject: 0,
            rule: None,
        }
    }

    /// Whether the request is allowed (every rule of every subject had room).
    pub fn is_allowed(&self) -> bool {
        self.allowed
    }

    /// On denial, the name of the rule that denied.
    pub fn denied_by(&self) -> Option<&str> {
        if self.allowed {
            None
        } else {
            self.rule.as_ref().map(|(p, _)| p.name.as_str())
        }
    }

    /// The reported rule and its decision (`None` when no rule applies).
    pub fn rule(&self) -> Option<(&PolicyInfo, &Decision)> {
        self.rule.as_ref().map(|(p, d)| (p, d))
    }

    /// The reported rule's decision: tightest remaining and its reset.
    pub fn decision(&self) -> Option<&Decision> {
        self.rule.as_ref().map(|(_, d)| d)
    }

    /// Index of the subject (in a multi-subject check) the reported rule
    /// belongs to.
    pub fn subject(&self) -> usize {
        self.subject
    }
}
