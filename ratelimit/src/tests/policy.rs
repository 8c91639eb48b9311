//! Policies against per-rule models: all rules fit → all charged; any
//! denial → none charged. Multi-subject checks, resolution, rule changes.

use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::config;
use super::model::{Kind, Model};
use crate::*;

fn kind_of(a: AlgorithmKind) -> Kind {
    match a {
        AlgorithmKind::TokenBucket => Kind::Gcra,
        AlgorithmKind::FixedWindow => Kind::Fixed,
        AlgorithmKind::SlidingLog => Kind::Log,
        AlgorithmKind::SlidingCounter => Kind::Counter,
    }
}

fn algo() -> impl Strategy<Value = AlgorithmKind> {
    prop::sample::select(vec![
        AlgorithmKind::TokenBucket,
        AlgorithmKind::FixedWindow,
        AlgorithmKind::SlidingLog,
        AlgorithmKind::SlidingCounter,
    ])
}

/// 1 to 3 limits: (count, window ns, burst, algorithm).
fn limits() -> impl Strategy<Value = Vec<(u32, u64, u32, AlgorithmKind)>> {
    prop::collection::vec(
        (
            1u32..6,
            prop::sample::select(vec![10u64, 30, 100, 400]),
            1u32..6,
            algo(),
        ),
        1..4,
    )
}

fn table(ls: &[(u32, u64, u32, AlgorithmKind)]) -> (RuleTable, Vec<Model>) {
    let limits = ls
        .iter()
        .enumerate()
        .map(|(i, &(c, w, b, a))| {
            Limit::new(c, Window::new(Duration::from_nanos(w)))
                .with_burst(b)
                .with_algorithm(a)
                .named(&format!("r{i}"))
        })
        .collect();
    let models = ls
        .iter()
        .map(|&(c, w, b, a)| Model::new(kind_of(a), c, b, w))
        .collect();
    (
        RuleTable {
            rules: vec![RuleSet {
                limits,
                ..RuleSet::default()
            }],
        },
        models,
    )
}

proptest! {
    #![proptest_config(config())]

    /// The policy allows iff every rule's model allows, and charges every
    /// rule or none (a charge on denial would make the models diverge).
    #[test]
    fn policy_is_atomic_over_its_rules(ls in limits(), ops in prop::collection::vec((-20i64..80, 1u32..4, prop::bool::weighted(0.1)), 1..60)) {
        let (t, mut models) = table(&ls);
        let t0 = Instant::now();
        let lim = PolicyLimiter::<u64>::new_at(&t, t0).expect("table");
        let cap = models.iter().map(Model::capacity).min().unwrap_or(1) as u32;
        let mut now = 0i64;
        for (step, cost, peek) in ops {
            now = (now + step).max(0);
            let at = t0 + Duration::from_nanos(now as u64);
            let req = Request { tier: None, endpoint: "/x", kind: KeyKind::User, key: &7u64 };
            let res = if peek { lim.peek_at(&req, cost, at) } else { lim.check_at(&req, cost, at) };
            if cost > cap {
                let is_cap = matches!(res, Err(RateLimitError::InsufficientCapacity { .. }));
                prop_assert!(is_cap, "expected InsufficientCapacity");
                continue;
            }
            let d = res.expect("valid cost");
            let t_eff = (now as u64).max(models[0].seen);
            let fits: Vec<bool> = models.iter().map(|m| m.clone().check(t_eff, u64::from(cost), false).allowed).collect();
            let all = fits.iter().all(|&f| f);
            prop_assert_eq!(d.is_allowed(), all);
            for m in &mut models {
                m.seen = if peek { m.seen } else { t_eff };
                if all && !peek {
                    m.check(t_eff, u64::from(cost), true);
                }
            }
            if !all {
                let name = d.denied_by().expect("a denial names its rule");
                let i: usize = name[1..].parse().expect("rule name");
                prop_assert!(!fits[i], "{} reported but it fits", name);
            }
            lim.validate();
        }
    }

    /// Per-user AND per-IP: both charged or neither.
    #[test]
    fn multi_subject_checks_are_atomic(user_limit in 1u32..5, ip_limit in 1u32..5, ops in prop::collection::vec((0u64..40, 0u8..3, 0u8..3), 1..80)) {
        let hour = Window::new(Duration::from_nanos(1_000));
        let t = RuleTable { rules: vec![
            RuleSet { kind: Some(KeyKind::User), limits: vec![Limit::new(user_limit, hour).with_algorithm(AlgorithmKind::SlidingLog)], ..RuleSet::default() },
            RuleSet { kind: Some(KeyKind::Ip), limits: vec![Limit::new(ip_limit, hour).with_algorithm(AlgorithmKind::SlidingLog)], ..RuleSet::default() },
        ] };
        let t0 = Instant::now();
        let lim = PolicyLimiter::<u64>::new_at(&t, t0).expect("table");
        let mut users: Vec<Model> = (0..3).map(|_| Model::new(Kind::Log, user_limit, 1, 1_000)).collect();
        let mut ips: Vec<Model> = (0..3).map(|_| Model::new(Kind::Log, ip_limit, 1, 1_000)).collect();
        let mut now = 0u64;
        for (step, u, ip) in ops {
            now += step;
            let (uk, ik) = (u64::from(u), u64::from(ip));
            let reqs = [
                Request { tier: None, endpoint: "/rides", kind: KeyKind::User, key: &uk },
                Request { tier: None, endpoint: "/rides", kind: KeyKind::Ip, key: &ik },
            ];
            let d = lim.check_all_at(&reqs, 1, t0 + Duration::from_nanos(now)).expect("valid");
            let ok = users[usize::from(u)].clone().check(now, 1, false).allowed && ips[usize::from(ip)].clone().check(now, 1, false).allowed;
            prop_assert_eq!(d.is_allowed(), ok);
            users[usize::from(u)].seen = now;
            ips[usize::from(ip)].seen = now;
            if ok {
                users[usize::from(u)].check(now, 1, true);
                ips[usize::from(ip)].check(now, 1, true);
            } else {
                // The reported subject is one whose rule denied.
                let denies = match d.subject() {
                    0 => !users[usize::from(u)].clone().check(now, 1, false).allowed,
                    _ => !ips[usize::from(ip)].clone().check(now, 1, false).allowed,
                };
                prop_assert!(denies, "reported subject {} did not deny", d.subject());
            }
            lim.validate();
        }
    }
}

#[test]
fn resolution_is_most_specific_first() {
    let w = |s: &str| s.parse::<Window>().expect("window");
    let set = |tier, endpoint: Option<&str>, kind, name: &str| RuleSet {
        tier,
        endpoint: endpoint.map(str::to_string),
        kind,
        limits: vec![Limit::new(5, w("hour")).named(name)],
    };
    let t = RuleTable {
        rules: vec![
            set(None, None, None, "default"),
            set(Some(Tier::Premium), None, None, "premium"),
            set(None, Some("/rides"), None, "rides"),
            set(Some(Tier::Premium), Some("/rides"), None, "premium-rides"),
            set(None, None, Some(KeyKind::Ip), "ip"),
            set(Some(Tier::Free), None, Some(KeyKind::User), "free-user"),
            set(None, Some("/quotes"), None, "quotes"),
        ],
    };
    let lim = PolicyLimiter::<u64>::new(&t).expect("table");
    let name = |tier, endpoint, kind| {
        let p = lim.policies_for(&Request {
            tier,
            endpoint,
            kind,
            key: &1,
        });
        p.first()
            .map(|i| i.name.as_str().to_string())
            .unwrap_or_default()
    };
    assert_eq!(
        name(Some(Tier::Premium), "/rides", KeyKind::User),
        "premium-rides"
    );
    // Two fields beat one; among one-field rows endpoint beats tier.
    assert_eq!(name(Some(Tier::Free), "/rides", KeyKind::User), "free-user");
    assert_eq!(
        name(Some(Tier::Enterprise), "/rides", KeyKind::User),
        "rides"
    );
    assert_eq!(
        name(Some(Tier::Premium), "/quotes", KeyKind::User),
        "quotes"
    );
    assert_eq!(
        name(Some(Tier::Premium), "/other", KeyKind::User),
        "premium"
    );
    assert_eq!(name(Some(Tier::Free), "/other", KeyKind::User), "free-user");
    assert_eq!(name(None, "/other", KeyKind::Ip), "ip");
    assert_eq!(name(None, "/rides", KeyKind::Ip), "rides");
    assert_eq!(name(None, "/other", KeyKind::ApiKey), "default");
}

#[test]
fn rule_changes_keep_the_state_of_unchanged_rules() {
    let w = |s: &str| s.parse::<Window>().expect("window");
    let t0 = Instant::now();
    let v1 = RuleTable {
        rules: vec![RuleSet {
            limits: vec![Limit::new(1000, w("hour")), Limit::new(10_000, w("day"))],
            ..RuleSet::default()
        }],
    };
    let lim = PolicyLimiter::<u64>::new_at(&v1, t0).expect("table");
    let req = Request {
        tier: None,
        endpoint: "/x",
        kind: KeyKind::User,
        key: &1u64,
    };
    assert!(lim.check_at(&req, 600, t0).expect("cost").is_allowed());
    // Change the daily rule only: the hourly one keeps its 600 used.
    let v2 = RuleTable {
        rules: vec![RuleSet {
            limits: vec![Limit::new(1000, w("hour")), Limit::new(20_000, w("day"))],
            ..RuleSet::default()
        }],
    };
    lim.set_table(&v2).expect("table");
    let d = lim.check_at(&req, 500, t0).expect("cost");
    assert!(!d.is_allowed());
    assert_eq!(d.denied_by(), Some("1000-per-hour"));
    let d = lim.peek_at(&req, 400, t0).expect("cost");
    assert!(d.is_allowed());
    assert_eq!(d.decision().map(Decision::remaining), Some(400));
    // A bad table is refused and the old one stays in force.
    assert!(
        lim.set_table(&RuleTable {
            rules: vec![RuleSet::default()]
        })
        .is_err()
    );
    assert!(lim.check_at(&req, 400, t0).expect("cost").is_allowed());
    lim.validate();
}

#[test]
fn denial_names_the_rule_and_headers_report_it() {
    let w = |s: &str| s.parse::<Window>().expect("window");
    let t0 = Instant::now();
    let t = RuleTable {
        rules: vec![RuleSet {
            limits: vec![
                Limit::new(10, w("second")).with_burst(20).named("burst"),
                Limit::new(1000, w("hour")).named("hourly"),
            ],
            ..RuleSet::default()
        }],
    };
    let lim = PolicyLimiter::<u64>::new_at(&t, t0).expect("table");
    let req = Request {
        tier: None,
        endpoint: "/x",
        kind: KeyKind::User,
        key: &1u64,
    };
    let d = lim.check_at(&req, 5, t0).expect("cost");
    assert!(d.is_allowed());
    // Tightest: the burst rule has 15 left, the hourly 995.
    assert_eq!(
        d.rule().map(|(i, d)| (i.name.as_str(), d.remaining())),
        Some(("burst", 15))
    );
    lim.check_at(&req, 15, t0).expect("cost");
    let d = lim.check_at(&req, 1, t0).expect("cost");
    assert_eq!(d.denied_by(), Some("burst"));
    let h = policy_headers(&d, &ClockMap::new(t0, std::time::UNIX_EPOCH));
    assert!(h.contains(&("Retry-After", "1".to_string())));
    assert!(h.contains(&("RateLimit", r#""burst";r=0;t=1"#.to_string())));
    let (_, p) = ratelimit_policy_header(&lim.policies_for(&req));
    assert_eq!(p, r#""burst";q=10;w=1, "hourly";q=1000;w=3600"#);
}
