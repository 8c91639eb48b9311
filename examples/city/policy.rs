//! The API gateway's rate-limit policy: every ride request and delivery
//! order is checked per user AND per client IP in one atomic step; a
//! denial is a 429 counted by the rule that denied it.

use std::collections::BTreeMap;
use std::time::Instant;

use dispatchkit::ratelimit::{
    AlgorithmKind, KeyKind, Limit, PolicyLimiter, RateLimitError, Request, RuleSet, RuleTable,
    Tier, Window,
};

use crate::report::Latencies;

pub const RIDES: &str = "/v1/rides";
pub const ORDERS: &str = "/v1/orders";

/// Users per driver (the seed's 100M users for 10M drivers).
pub const USERS_PER_DRIVER: u64 = 10;

/// A user's client IP (as a `u64` key): a deterministic mix of the user id
/// into a pool a quarter the size of the user population (carrier NAT:
/// four users per address on average).
pub fn ip_of(user: u64, pool: u64) -> u64 {
    let mut x = user.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 29;
    x % pool.max(1)
}

/// Every 20th user is premium (a deterministic tier assignment).
pub fn tier_of(user: u64) -> Tier {
    if user.is_multiple_of(20) {
        Tier::Premium
    } else {
        Tier::Free
    }
}

/// The rules: riders 6 requests/min (burst 3) and 20/hour, premium riders
/// 60/min; customers 10 orders/hour; every IP 30 requests/min (sliding
/// log) over both endpoints.
pub fn table() -> Result<RuleTable, RateLimitError> {
    let w = |s: &str| s.parse::<Window>();
    Ok(RuleTable {
        rules: vec![
            RuleSet {
                kind: Some(KeyKind::User),
                endpoint: Some(RIDES.into()),
                limits: vec![
                    Limit::new(6, w("minute")?)
                        .with_burst(3)
                        .named("user-burst"),
                    Limit::new(20, w("hour")?)
                        .with_algorithm(AlgorithmKind::FixedWindow)
                        .named("user-hourly"),
                ],
                ..RuleSet::default()
            },
            RuleSet {
                kind: Some(KeyKind::User),
                tier: Some(Tier::Premium),
                endpoint: Some(RIDES.into()),
                limits: vec![Limit::new(60, w("minute")?).named("premium-user")],
            },
            RuleSet {
                kind: Some(KeyKind::User),
                endpoint: Some(ORDERS.into()),
                limits: vec![
                    Limit::new(10, w("hour")?)
                        .with_algorithm(AlgorithmKind::SlidingCounter)
                        .named("orders-hourly"),
                ],
                ..RuleSet::default()
            },
            RuleSet {
                kind: Some(KeyKind::Ip),
                limits: vec![
                    Limit::new(30, w("minute")?)
                        .with_algorithm(AlgorithmKind::SlidingLog)
                        .named("ip-minute"),
                ],
                ..RuleSet::default()
            },
        ],
    })
}

/// The limiter with its counters.
pub struct Gateway {
    limiter: PolicyLimiter<u64>,
    ip_pool: u64,
    pub allowed: u64,
    pub denied_by: BTreeMap<String, u64>,
    pub latency: Latencies,
}

impl Gateway {
    pub fn new(users: u64, t0: Instant) -> Result<Self, RateLimitError> {
        Ok(Self {
            limiter: PolicyLimiter::new_at(&table()?, t0)?,
            ip_pool: (users / 4).max(1),
            allowed: 0,
            denied_by: BTreeMap::new(),
            latency: Latencies::default(),
        })
    }

    /// Checks one request of `user` on `endpoint`: `true` when allowed.
    pub fn admit(
        &mut self,
        user: u64,
        endpoint: &str,
        now: Instant,
    ) -> Result<bool, RateLimitError> {
        let ip = ip_of(user, self.ip_pool);
        let subjects = [
            Request {
                tier: Some(tier_of(user)),
                endpoint,
                kind: KeyKind::User,
                key: &user,
            },
            Request {
                tier: None,
                endpoint,
                kind: KeyKind::Ip,
                key: &ip,
            },
        ];
        let t = Instant::now();
        let d = self.limiter.check_all_at(&subjects, 1, now)?;
        self.latency.record(t.elapsed());
        if d.is_allowed() {
            self.allowed += 1;
        } else {
            let rule = d.denied_by().unwrap_or("?");
            match self.denied_by.get_mut(rule) {
                Some(n) => *n += 1,
                None => {
                    self.denied_by.insert(rule.to_string(), 1);
                }
            }
        }
        Ok(d.is_allowed())
    }

    /// Limiter states held (one per user or IP and rule set seen).
    pub fn states(&self) -> usize {
        self.limiter.len()
    }
}
