//! Bad input, headers against the draft's and the seed's examples, memory.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::*;

#[test]
fn bad_quotas_are_typed_errors() {
    assert!(matches!(
        Quota::per_second(0),
        Err(RateLimitError::InvalidQuota {
            name: "limit",
            value: 0,
            ..
        })
    ));
    assert!(matches!(
        Quota::new(5, Duration::ZERO),
        Err(RateLimitError::InvalidQuota { name: "period", .. })
    ));
    assert!(matches!(
        Quota::new(5, Duration::from_secs(u64::MAX)),
        Err(RateLimitError::InvalidQuota { name: "period", .. })
    ));
    let q = Quota::per_second(5).expect("quota");
    assert!(matches!(
        q.with_burst(0),
        Err(RateLimitError::InvalidQuota {
            name: "burst",
            value: 0,
            ..
        })
    ));
    // burst × T overflowing the time range.
    let slow = Quota::new(1, Duration::from_secs(100 * 365 * 86_400)).expect("quota");
    assert!(matches!(
        slow.with_burst(u32::MAX),
        Err(RateLimitError::InvalidQuota { name: "burst", .. })
    ));
}

#[test]
fn bad_costs_are_typed_errors_and_change_nothing() {
    let t0 = Instant::now();
    let lim = RateLimiter::new_at(Gcra::new(Quota::per_second(3).expect("quota")), t0);
    assert!(matches!(
        lim.check_n_at(0, t0),
        Err(RateLimitError::InvalidCost { cost: 0, .. })
    ));
    assert_eq!(
        lim.check_n_at(4, t0),
        Err(RateLimitError::InsufficientCapacity {
            cost: 4,
            capacity: 3
        })
    );
    assert_eq!(lim.peek_at(t0).remaining(), 3);
    let keyed = KeyedRateLimiter::new_at(SlidingLog::new(Quota::per_second(3).expect("quota")), t0);
    assert!(keyed.check_n_at(&1, 0, t0).is_err());
    assert_eq!(
        keyed.check_n_at(&1, 9, t0),
        Err(RateLimitError::InsufficientCapacity {
            cost: 9,
            capacity: 3
        })
    );
    assert!(keyed.is_empty());
}

#[test]
fn bad_configs_and_rules_are_typed_errors() {
    let t0 = Instant::now();
    let g = Gcra::new(Quota::per_second(3).expect("quota"));
    let cfg = KeyedConfig {
        max_keys: 0,
        ..KeyedConfig::default()
    };
    assert!(matches!(
        KeyedRateLimiter::<u64, _, _>::with_config(g, cfg, DefaultHasher::default(), t0),
        Err(RateLimitError::InvalidConfig {
            name: "max_keys",
            ..
        })
    ));
    let cfg = KeyedConfig {
        shards: 0,
        ..KeyedConfig::default()
    };
    assert!(
        KeyedRateLimiter::<u64, _, _>::with_config(g, cfg, DefaultHasher::default(), t0).is_err()
    );
    assert!(matches!(
        "fortnight".parse::<Window>(),
        Err(RateLimitError::InvalidWindow { .. })
    ));
    assert!("0h".parse::<Window>().is_err());
    assert!("12".parse::<Window>().is_err());
    let hour: Window = "hour".parse().expect("window");
    let bad = |rules| PolicyLimiter::<u64>::new_at(&RuleTable { rules }, t0);
    assert!(matches!(
        bad(vec![RuleSet::default()]),
        Err(RateLimitError::InvalidRule { .. })
    ));
    assert!(matches!(
        bad(vec![RuleSet {
            limits: vec![Limit::new(0, hour)],
            ..RuleSet::default()
        }]),
        Err(RateLimitError::InvalidQuota { name: "limit", .. })
    ));
    assert!(
        bad(vec![RuleSet {
            limits: vec![Limit::new(5, hour).with_burst(0)],
            ..RuleSet::default()
        }])
        .is_err()
    );
    assert!(
        bad(vec![RuleSet {
            limits: vec![Limit::new(5, hour).named("bad\"name")],
            ..RuleSet::default()
        }])
        .is_err()
    );
    assert!(
        bad(vec![RuleSet {
            limits: vec![Limit::new(5, hour), Limit::new(5, hour)],
            ..RuleSet::default()
        }])
        .is_err()
    );
    let one = RuleSet {
        limits: vec![Limit::new(5, hour)],
        ..RuleSet::default()
    };
    assert!(bad(vec![one.clone(), one]).is_err());
}

/// The seed's response: `X-RateLimit-Limit: 1000`, `Remaining: 847`,
/// `Reset: 1635724800`.
#[test]
fn legacy_headers_match_the_seed() {
    let t0 = Instant::now();
    let lim = RateLimiter::new_at(FixedWindow::new(Quota::per_hour(1000).expect("quota")), t0);
    let at = t0 + Duration::from_secs(1200);
    let d = lim.check_n_at(153, at).expect("cost");
    // The hour started at 1635721200 (= 1635724800 − 3600).
    let clock = ClockMap::new(t0, UNIX_EPOCH + Duration::from_secs(1_635_721_200));
    let h = legacy_headers(&d, &clock);
    assert_eq!(h[0], ("X-RateLimit-Limit", "1000".into()));
    assert_eq!(h[1], ("X-RateLimit-Remaining", "847".into()));
    assert_eq!(h[2], ("X-RateLimit-Reset", "1635724800".into()));
    assert_eq!(h.len(), 3);
    let denied = lim.check_n_at(900, at).expect("cost");
    let h = legacy_headers(&denied, &clock);
    assert_eq!(h[3], ("Retry-After", "2400".into()));
}

/// Draft -11, §3 and §4 and Appendix B examples.
#[test]
fn ietf_headers_match_the_draft() {
    let t0 = Instant::now();
    let info = |n: &str, q: u32, w: u64| PolicyInfo {
        name: RuleName::new(n).expect("name"),
        limit: q,
        window: Duration::from_secs(w),
    };
    // §3: RateLimit-Policy: "burst";q=100;w=60,"daily";q=1000;w=86400
    let (name, v) = ratelimit_policy_header(&[info("burst", 100, 60), info("daily", 1000, 86_400)]);
    assert_eq!(name, "RateLimit-Policy");
    assert_eq!(
        v.replace(", ", ","),
        r#""burst";q=100;w=60,"daily";q=1000;w=86400"#
    );
    // §3.2: "permin";q=50;w=60,"perhr";q=1000;w=3600
    let (_, v) = ratelimit_policy_header(&[info("permin", 50, 60), info("perhr", 1000, 3600)]);
    assert_eq!(
        v.replace(", ", ","),
        r#""permin";q=50;w=60,"perhr";q=1000;w=3600"#
    );
    // B.2.1: 100 per minute, one request 10 s in → "fixedwindow";r=99;t=50.
    let fw = RateLimiter::new_at(FixedWindow::new(Quota::per_minute(100).expect("quota")), t0);
    let d = fw.check_at(t0 + Duration::from_secs(10));
    let n = RuleName::new("fixedwindow").expect("name");
    assert_eq!(ratelimit_header(&n, &d).1, r#""fixedwindow";r=99;t=50"#);
    assert_eq!(
        ratelimit_policy_header(&[info("fixedwindow", 100, 60)]).1,
        r#""fixedwindow";q=100;w=60"#
    );
    // B.1.3: "basic";q=100;w=60, 40 used after 2 s → r=60;t=58.
    let basic = RateLimiter::new_at(FixedWindow::new(Quota::per_minute(100).expect("quota")), t0);
    let d = basic
        .check_n_at(40, t0 + Duration::from_secs(2))
        .expect("cost");
    assert_eq!(
        ratelimit_header(&RuleName::new("basic").expect("name"), &d).1,
        r#""basic";r=60;t=58"#
    );
    // B.1.2: daily 5000, 4900 used in the first 14 hours → "dayLimit";r=100;t=36000.
    let day = RateLimiter::new_at(FixedWindow::new(Quota::per_day(5000).expect("quota")), t0);
    let d = day
        .check_n_at(4900, t0 + Duration::from_secs(14 * 3600))
        .expect("cost");
    assert_eq!(
        ratelimit_header(&RuleName::new("dayLimit").expect("name"), &d).1,
        r#""dayLimit";r=100;t=36000"#
    );
    // B.1.4: denied, Retry-After 5 s, "default";r=0;t=5.
    let lim = RateLimiter::new_at(
        FixedWindow::new(Quota::new(3, Duration::from_secs(10)).expect("quota")),
        t0,
    );
    let at = t0 + Duration::from_secs(5);
    let _ = lim.check_n_at(3, at).expect("cost");
    let d = lim.check_at(at);
    assert_eq!(
        ratelimit_header(&RuleName::new("default").expect("name"), &d).1,
        r#""default";r=0;t=5"#
    );
    let h = legacy_headers(&d, &ClockMap::new(t0, SystemTime::UNIX_EPOCH));
    assert_eq!(h[3], ("Retry-After", "5".into()));
}

#[test]
fn gcra_state_fits_in_64_bytes_per_key() {
    let g = Gcra::new(Quota::per_second(1).expect("quota"));
    assert_eq!(g.state_bytes(), 16);
    // With a u64 key the table slot is 24 bytes.
    assert!(std::mem::size_of::<(u64, crate::gcra::GcraCell)>() <= 64);
    assert!(FixedWindow::new(Quota::per_second(1).expect("q")).state_bytes() <= 64);
    assert!(SlidingCounter::new(Quota::per_second(1).expect("q")).state_bytes() <= 64);
}

#[cfg(feature = "serde")]
#[test]
fn rules_load_from_the_seeds_data() {
    let json = r#"{"rules": [
        {"endpoint": "/v1/rides", "limits": [{"window": "hour", "count": 1000}, {"window": "day", "count": 10000}]},
        {"tier": "premium", "kind": "user", "limits": [{"name": "fast", "window": "second", "count": 10, "burst": 20, "algorithm": "gcra"}]},
        {"kind": "ip", "limits": [{"window": "1m", "count": 60, "algorithm": "sliding_log"}]}
    ]}"#;
    let table: RuleTable = serde_json::from_str(json).expect("rules parse");
    assert_eq!(table.rules[0].limits[1].count, 10_000);
    assert_eq!(
        table.rules[2].limits[0].algorithm,
        AlgorithmKind::SlidingLog
    );
    let lim = PolicyLimiter::<u64>::new(&table).expect("valid table");
    let req = Request {
        tier: Some(Tier::Free),
        endpoint: "/v1/rides",
        kind: KeyKind::User,
        key: &1,
    };
    let p = lim.policies_for(&req);
    assert_eq!(
        p.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(),
        ["1000-per-hour", "10000-per-day"]
    );
    let back = serde_json::to_string(&table).expect("serialize");
    assert_eq!(
        serde_json::from_str::<RuleTable>(&back).expect("round trip"),
        table
    );
    assert!(
        serde_json::from_str::<RuleTable>(
            r#"{"rules":[{"limits":[{"window":"fortnight","count":1}]}]}"#
        )
        .is_err()
    );
}

#[test]
fn every_limiter_offers_the_same_peek_and_check_forms() {
    // Issue 15 (14): peek / peek_n without `_at` on both limiter types, and
    // the absolute retry_at / reset_at next to the relative forms.
    let q = Quota::with_period(Duration::from_millis(500))
        .unwrap()
        .with_burst(2)
        .unwrap();
    assert_eq!((q.limit(), q.burst()), (1, 2));
    let direct = RateLimiter::new(Gcra::new(q));
    let keyed = KeyedRateLimiter::<&str, _>::new(Gcra::new(q));
    assert!(direct.peek().is_allowed() && direct.peek_n(2).unwrap().is_allowed());
    assert!(keyed.peek(&"k").is_allowed() && keyed.peek_n(&"k", 2).unwrap().is_allowed());
    assert!(matches!(
        direct.peek_n(3),
        Err(RateLimitError::InsufficientCapacity { .. })
    ));
    assert!(keyed.peek_n(&"k", 0).is_err());
    assert!(keyed.is_empty(), "a peek creates no state");
    let t0 = Instant::now();
    let lim = RateLimiter::new_at(Gcra::new(q), t0);
    assert!(lim.check_n_at(2, t0).unwrap().is_allowed());
    let d = lim.check_at(t0);
    assert_eq!(d.retry_after(), Some(Duration::from_millis(500)));
    assert_eq!(d.retry_at(), Some(t0 + Duration::from_millis(500)));
    assert_eq!(d.reset_at(), Some(t0 + d.reset_after()));
}
