//! The crate's one error type.

/// Everything that can be wrong with the input of a limiter, a quota or a
/// rule table. Every variant carries the offending value and a reason; an
/// operation that returns an error leaves all state unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RateLimitError {
    /// A quota parameter (limit, period, burst) is zero or too large.
    #[error("invalid quota {name} = {value}: {reason}")]
    InvalidQuota {
        /// Which parameter (`"limit"`, `"period"`, `"burst"`).
        name: &'static str,
        /// The value given (nanoseconds for periods).
        value: u128,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A cost of zero units was asked for.
    #[error("invalid cost {cost}: {reason}")]
    InvalidCost {
        /// The cost given.
        cost: u32,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// The cost can never be granted: it is above what the rule holds when
    /// full (its burst, or its limit per window). Waiting does not help.
    #[error("cost {cost} can never fit: the rule holds at most {capacity}")]
    InsufficientCapacity {
        /// The cost asked for.
        cost: u32,
        /// The most the rule can ever grant at once.
        capacity: u32,
    },
    /// A window in rule data could not be parsed.
    #[error("invalid window `{value}`: {reason}")]
    InvalidWindow {
        /// The text given.
        value: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A rule or rule set of a table is unusable.
    #[error("invalid rule `{rule}`: {reason}")]
    InvalidRule {
        /// The rule's name (or selector) as written in the table.
        rule: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A configuration value of a limiter is unusable.
    #[error("invalid configuration {name} = {value}: {reason}")]
    InvalidConfig {
        /// Which setting.
        name: &'static str,
        /// The value given.
        value: u64,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A remote backend (Redis) could not answer: refused, timed out,
    /// `BUSY`, `READONLY` during a failover, or a reply that made no sense.
    /// Nothing was decided; map it to `503` (or fail open if you choose).
    #[error("the {backend} backend is unavailable ({kind:?}): {reason}")]
    Unavailable {
        /// Which backend (`"redis"`).
        backend: &'static str,
        /// What kind of failure, for a caller that answers them apart.
        kind: BackendErrorKind,
        /// What the client reported.
        reason: String,
    },
    /// Two subjects of one multi-subject check resolve to the same state.
    #[error("subjects {first} and {second} resolve to the same limiter state")]
    DuplicateSubject {
        /// Index of the first subject.
        first: usize,
        /// Index of the repeated subject.
        second: usize,
    },
}

/// Why a remote backend could not answer
/// ([`RateLimitError::Unavailable`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BackendErrorKind {
    /// Nothing listens, or the connection was closed or reset.
    Refused,
    /// No answer within the configured timeout (a stalled or overloaded
    /// server, a network partition).
    Timeout,
    /// The server refused the credentials (`WRONGPASS`, `NOAUTH`,
    /// `NOPERM`).
    Auth,
    /// The TLS handshake failed (an untrusted or invalid certificate, a
    /// server that does not speak TLS).
    Tls,
    /// The server is busy running a script or loading its data (`BUSY`,
    /// `LOADING`).
    Busy,
    /// The server is a read-only replica (`READONLY`, during a failover).
    ReadOnly,
    /// A reply the client could not make sense of.
    Reply,
    /// Anything else the client reported.
    Other,
}
