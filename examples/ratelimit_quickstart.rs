//! Rate limiting in 30 seconds: a per-user token bucket, a rules table with
//! several limits per request, and the response headers.
//!
//! ```text
//! cargo run --release --example ratelimit_quickstart
//! ```

use std::time::{Duration, Instant, SystemTime};

use dispatchkit::ratelimit::{
    ClockMap, Gcra, KeyKind, KeyedRateLimiter, Limit, PolicyLimiter, Quota, RateLimitError,
    Request, RuleSet, RuleTable, legacy_headers, policy_headers,
};

fn main() -> Result<(), RateLimitError> {
    let t0 = Instant::now();

    // 1. One token bucket per API key: 10 requests/s, bursts of 20.
    let per_key = KeyedRateLimiter::new_at(Gcra::new(Quota::per_second(10)?.with_burst(20)?), t0);
    let granted = (0..25)
        .filter(|_| per_key.check_at(&"key-abc", t0).is_allowed())
        .count();
    println!("token bucket: {granted} of 25 immediate requests granted");
    let d = per_key.check_at(&"key-abc", t0);
    println!(
        "  next one: allowed={} retry after {:?}",
        d.is_allowed(),
        d.retry_after()
    );
    let clock = ClockMap::new(t0, SystemTime::now());
    for (name, value) in legacy_headers(&d, &clock) {
        println!("  {name}: {value}");
    }

    // 2. The seed's rules table: 1,000/hour and 10,000/day per user,
    //    checked atomically (a denial charges neither).
    let table = RuleTable {
        rules: vec![RuleSet {
            kind: Some(KeyKind::User),
            limits: vec![
                Limit::new(1_000, "hour".parse()?),
                Limit::new(10_000, "day".parse()?),
            ],
            ..RuleSet::default()
        }],
    };
    let limiter = PolicyLimiter::<u64>::new_at(&table, t0)?;
    let user = 123u64;
    let req = Request {
        tier: None,
        endpoint: "/v1/rides",
        kind: KeyKind::User,
        key: &user,
    };
    let mut allowed = 0;
    // Two requests a second for 12.5 minutes: the hourly bucket (1,000,
    // refilling 1,000/h) runs dry.
    for i in 0..1_500u64 {
        if limiter
            .check_at(&req, 1, t0 + Duration::from_millis(500 * i))?
            .is_allowed()
        {
            allowed += 1;
        }
    }
    let d = limiter.check_at(&req, 1, t0 + Duration::from_millis(750_000))?;
    println!(
        "policy: {allowed} of 1500 allowed in 12.5 minutes; next denied by {:?}",
        d.denied_by()
    );
    for (name, value) in policy_headers(&d, &clock) {
        println!("  {name}: {value}");
    }
    Ok(())
}
