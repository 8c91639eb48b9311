//! Policies: how a rules table becomes limits checked per request.
//!
//! 1. [`rules`]: the table as data (`RuleTable` → `RuleSet` rows of
//!    `Limit`s, selected by tier, endpoint and key kind), as the seed stores
//!    it and as `serde` loads it.
//! 2. `rule`: one limit compiled to an algorithm over a slot of state words.
//! 3. `compiled`: the whole table compiled once: a lookup from (tier,
//!    endpoint, kind) to a `CompiledSet` of rules and the layout of their
//!    state (inline words or boxed, sliding logs apart).
//! 4. `entry`: one key's state under one compiled set, checked all-or-none.
//! 5. `limiter`: the `PolicyLimiter`, a sharded store of entries that
//!    resolves each request's sets, locks their entries in a fixed order and
//!    answers a [`PolicyDecision`] (`decision`), swappable to a new table at
//!    run time.
//!
//! Dependencies run one way: rules ← rule ← compiled ← entry ← limiter, with
//! `decision` below all of them.

pub(crate) mod compiled;
pub(crate) mod decision;
pub(crate) mod entry;
pub(crate) mod limiter;
pub(crate) mod rule;
pub(crate) mod rules;

pub use decision::{MAX_LIMITS, MAX_NAME, PolicyDecision, PolicyInfo, Request, RuleName};
pub use limiter::PolicyLimiter;
