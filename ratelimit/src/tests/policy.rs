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
            Limit::new(c, Window::new(Duration::from_nanos(w)).unwrap())
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
            lim.check_invariants();
        }
    }

    /// Per-user AND per-IP: both charged or neither.
    #[test]
    fn multi_subject_checks_are_atomic(user_limit in 1u32..5, ip_limit in 1u32..5, ops in prop::collection::vec((0u64..40, 0u8..3, 0u8..3), 1..80)) {
        let hour = Window::new(Duration::from_nanos(1_000)).unwrap();
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
            lim.check_invariants();
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
    assert_eq!(d.decision().map(|d| d.remaining()), Some(400));
    // A bad table is refused and the old one stays in force.
    assert!(
        lim.set_table(&RuleTable {
            rules: vec![RuleSet::default()]
        })
        .is_err()
    );
    assert!(lim.check_at(&req, 400, t0).expect("cost").is_allowed());
    lim.check_invariants();
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
    let _ = lim.check_at(&req, 15, t0).expect("cost");
    let d = lim.check_at(&req, 1, t0).expect("cost");
    assert_eq!(d.denied_by(), Some("burst"));
    let h = policy_headers(&d, &ClockMap::new(t0, std::time::UNIX_EPOCH));
    assert!(h.contains(&("Retry-After", "1".to_string())));
    assert!(h.contains(&("RateLimit", r#""burst";r=0;t=1"#.to_string())));
    let (_, p) = ratelimit_policy_header(&lim.policies_for(&req));
    assert_eq!(p, r#""burst";q=10;w=1, "hourly";q=1000;w=3600"#);
}

/// One subject's states under many rule sets share its hash (the table
/// hash leaves the set out): each endpoint's set still counts alone, and
/// the reported rule is that endpoint's.
#[test]
fn one_subject_under_many_rule_sets_counts_each_apart() {
    let w = |s: &str| s.parse::<Window>().expect("window");
    let t0 = Instant::now();
    let endpoints: Vec<String> = (0..40).map(|i| format!("/e{i}")).collect();
    let rules = endpoints
        .iter()
        .enumerate()
        .map(|(i, e)| RuleSet {
            endpoint: Some(e.clone()),
            limits: vec![
                Limit::new(1, w("second"))
                    .with_burst(1 + i as u32 % 3)
                    .named(&format!("fast{i}")),
                Limit::new(100, w("hour")).named(&format!("slow{i}")),
            ],
            ..RuleSet::default()
        })
        .collect();
    let lim = PolicyLimiter::<u64>::new_at(&RuleTable { rules }, t0).expect("table");
    for round in 0..4u32 {
        for (i, e) in endpoints.iter().enumerate() {
            let req = Request {
                tier: None,
                endpoint: e,
                kind: KeyKind::User,
                key: &7u64,
            };
            let d = lim.check_at(&req, 1, t0).expect("cost");
            let burst = 1 + i as u32 % 3;
            assert_eq!(d.is_allowed(), round < burst, "endpoint {i}, round {round}");
            let fast = format!("fast{i}");
            let (info, dec) = d.rule().expect("a rule applies");
            assert_eq!(info.name.as_str(), fast);
            assert_eq!(dec.remaining(), burst.saturating_sub(round + 1));
        }
    }
    assert_eq!(lim.len(), endpoints.len());
    lim.check_invariants();
}

/// The limits of a set named `prefix0`, `prefix1`, ….
fn named(prefix: &str, ls: &[(u32, u64, u32, AlgorithmKind)]) -> Vec<(String, Limit, Model)> {
    ls.iter()
        .enumerate()
        .map(|(i, &(c, w, b, a))| {
            let name = format!("{prefix}{i}");
            let limit = Limit::new(c, Window::new(Duration::from_nanos(w)).unwrap())
                .with_burst(b)
                .with_algorithm(a)
                .named(&name);
            (name, limit, Model::new(kind_of(a), c, b, w))
        })
        .collect()
}

/// One check (or peek) of the policy against per-rule models sharing the
/// newest time `seen`: the verdict, atomicity, and the reported rule (a
/// denying rule on denial) and its remaining units, number for number.
fn step(
    lim: &PolicyLimiter<u64>,
    models: &mut [(String, Limit, Model)],
    seen: &mut u64,
    now: u64,
    cost: u32,
    peek: bool,
    t0: Instant,
) -> Result<(), TestCaseError> {
    let at = t0 + Duration::from_nanos(now);
    let req = Request {
        tier: None,
        endpoint: "/x",
        kind: KeyKind::User,
        key: &7u64,
    };
    let res = if peek {
        lim.peek_at(&req, cost, at)
    } else {
        lim.check_at(&req, cost, at)
    };
    let cap = models
        .iter()
        .map(|(_, _, m)| m.capacity())
        .min()
        .unwrap_or(1) as u32;
    if cost > cap {
        let is_cap = matches!(res, Err(RateLimitError::InsufficientCapacity { capacity, .. }) if capacity == cap);
        prop_assert!(is_cap, "expected InsufficientCapacity {}", cap);
        return Ok(());
    }
    let d = res.expect("valid cost");
    let t_eff = now.max(*seen);
    let fits: Vec<bool> = models
        .iter()
        .map(|(_, _, m)| m.clone().check(t_eff, u64::from(cost), false).allowed)
        .collect();
    let all = fits.iter().all(|&f| f);
    prop_assert_eq!(d.is_allowed(), all);
    if !peek {
        *seen = t_eff;
        for (_, _, m) in models.iter_mut() {
            m.seen = t_eff;
            if all {
                m.check(t_eff, u64::from(cost), true);
            }
        }
    }
    let (info, rd) = d.rule().expect("a rule applies");
    let i = models
        .iter()
        .position(|(n, _, _)| n.as_str() == info.name.as_str())
        .expect("the reported rule is in the set");
    if !all {
        prop_assert!(!fits[i], "{} reported but it fits", info.name);
    }
    prop_assert_eq!(u64::from(rd.remaining()), models[i].2.remaining(t_eff));
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// Rule changes keep the state of unchanged limits wherever they move in
    /// the set (inline or spilled, any order), start new ones full, and keep
    /// checking against the models.
    #[test]
    fn rule_changes_keep_state_in_any_layout(
        first in limits(),
        added in prop::collection::vec((1u32..6, prop::sample::select(vec![10u64, 30, 100, 400]), 1u32..6, algo()), 0..3),
        keep in prop::collection::vec(any::<bool>(), 3),
        rotate in 0usize..6,
        ops1 in prop::collection::vec((-20i64..80, 1u32..4, prop::bool::weighted(0.1)), 1..40),
        ops2 in prop::collection::vec((-20i64..80, 1u32..4, prop::bool::weighted(0.1)), 1..40),
    ) {
        let table = |ms: &[(String, Limit, Model)]| RuleTable {
            rules: vec![RuleSet {
                limits: ms.iter().map(|(_, l, _)| l.clone()).collect(),
                ..RuleSet::default()
            }],
        };
        let mut models = named("a", &first);
        let t0 = Instant::now();
        let lim = PolicyLimiter::<u64>::new_at(&table(&models), t0).expect("table");
        let (mut now, mut seen) = (0i64, 0u64);
        for &(s, cost, peek) in &ops1 {
            now = (now + s).max(0);
            step(&lim, &mut models, &mut seen, now as u64, cost, peek, t0)?;
            lim.check_invariants();
        }
        // Keep some limits (with their models), add new ones, reorder.
        let mut next: Vec<_> = models
            .into_iter()
            .enumerate()
            .filter(|(i, _)| keep.get(*i).copied().unwrap_or(true))
            .map(|(_, m)| m)
            .collect();
        for (name, l, mut m) in named("b", &added) {
            m.seen = seen;
            next.push((name, l, m));
        }
        if next.is_empty() {
            let (name, l, mut m) = named("c", &first[..1]).remove(0);
            m.seen = seen;
            next.push((name, l, m));
        }
        next.truncate(MAX_LIMITS);
        let n = next.len();
        next.rotate_left(rotate % n);
        let mut models = next;
        lim.set_table(&table(&models)).expect("table");
        lim.check_invariants();
        for &(s, cost, peek) in &ops2 {
            now = (now + s).max(0);
            step(&lim, &mut models, &mut seen, now as u64, cost, peek, t0)?;
            lim.check_invariants();
        }
    }

    /// The inline token-bucket path decides exactly as the general path:
    /// same decisions (verdict, reported rule, numbers), same state.
    #[test]
    fn bucket_path_matches_general_path(
        ls in prop::collection::vec((1u32..6, prop::sample::select(vec![10u64, 30, 100, 400]), 1u32..6), 1..4),
        ops in prop::collection::vec((-20i64..80, 1u32..6, 0u8..4), 1..60),
    ) {
        use crate::compiled::{Compiled, Registry};
        use crate::entry::Entry;
        let limits = ls
            .iter()
            .enumerate()
            .map(|(i, &(c, w, b))| {
                Limit::new(c, Window::new(Duration::from_nanos(w)).unwrap())
                    .with_burst(b)
                    .named(&format!("r{i}"))
            })
            .collect();
        let table = RuleTable { rules: vec![RuleSet { limits, ..RuleSet::default() }] };
        let compiled = Compiled::new(&table, &mut Registry::default()).expect("table");
        let fast = &compiled.sets[0];
        prop_assert_eq!(fast.buckets.map(|b| b.n), Some(ls.len()));
        let mut general = fast.clone();
        general.buckets = None;
        let (mut a, mut b) = (Entry::fresh(fast, 0), Entry::fresh(&general, 0));
        let t0 = Instant::now();
        let mut now = 0i64;
        for (s, cost, mode) in ops {
            now = (now + s).max(0);
            let cost = cost.min(fast.capacity);
            let at = t0 + Duration::from_nanos(now as u64);
            let t = now as u64;
            let (da, db) = match mode {
                0 => (a.peek(fast, t, at, cost), b.peek(&general, t, at, cost)),
                1 => (a.check(fast, t, at, cost, false), b.check(&general, t, at, cost, false)),
                _ => (a.check(fast, t, at, cost, true), b.check(&general, t, at, cost, true)),
            };
            prop_assert_eq!(da, db);
            prop_assert_eq!(&a, &b);
            a.check_invariants(fast);
        }
    }

    /// Any number of subjects (the first four on the stack, more on the
    /// heap): all charged or none, a denial reports a denying subject, and
    /// a subject listed twice is an error that changes nothing.
    #[test]
    fn any_number_of_subjects_is_atomic(
        user_limit in 1u32..5,
        ip_limit in 1u32..5,
        ops in prop::collection::vec((prop_oneof![8 => 0u64..40, 1 => 1_000u64..3_000], prop::collection::vec((any::<bool>(), 0u64..3), 1..7)), 1..60),
        small in prop::option::of((1usize..3, 2usize..12)),
    ) {
        let w = Window::new(Duration::from_nanos(1_000)).unwrap();
        let t = RuleTable { rules: vec![
            RuleSet { kind: Some(KeyKind::User), limits: vec![Limit::new(user_limit, w)], ..RuleSet::default() },
            RuleSet { kind: Some(KeyKind::Ip), limits: vec![Limit::new(ip_limit, w).with_algorithm(AlgorithmKind::SlidingLog)], ..RuleSet::default() },
        ] };
        let t0 = Instant::now();
        // Small tables sweep inside multi-subject checks and hit the cap.
        let cfg = small.map_or_else(KeyedConfig::default, |(shards, max_keys)| KeyedConfig { shards, max_keys, fail_mode: FailMode::Closed });
        let lim = PolicyLimiter::<u64>::with_config(&t, cfg, DefaultHasher::default(), t0).expect("table");
        let mut users: Vec<Model> = (0..3).map(|_| Model::new(Kind::Gcra, user_limit, user_limit, 1_000)).collect();
        let mut ips: Vec<Model> = (0..3).map(|_| Model::new(Kind::Log, ip_limit, 1, 1_000)).collect();
        let mut now = 0u64;
        for (s, subjects) in ops {
            now += s;
            let keys: Vec<(KeyKind, u64)> = subjects
                .iter()
                .map(|&(ip, k)| (if ip { KeyKind::Ip } else { KeyKind::User }, k))
                .collect();
            let reqs: Vec<Request<'_, u64>> = keys
                .iter()
                .map(|(kind, key)| Request { tier: None, endpoint: "/rides", kind: *kind, key })
                .collect();
            let res = lim.check_all_at(&reqs, 1, t0 + Duration::from_nanos(now));
            let dup = (1..keys.len()).find_map(|i| (0..i).find(|&j| keys[j] == keys[i]).map(|j| (j, i)));
            if let Some((first, second)) = dup {
                prop_assert_eq!(res, Err(RateLimitError::DuplicateSubject { first, second }));
                continue;
            }
            let d = res.expect("valid");
            if d.decision().is_some_and(|d| d.from_key_cap()) {
                // Refused at the cap: denied, nothing charged.
                prop_assert!(!d.is_allowed());
                prop_assert!(lim.len() <= cfg.max_keys);
                lim.check_invariants();
                continue;
            }
            let fits = |kk: &(KeyKind, u64)| {
                let m = if kk.0 == KeyKind::Ip { &ips[kk.1 as usize] } else { &users[kk.1 as usize] };
                m.clone().check(now, 1, false).allowed
            };
            let all = keys.iter().all(fits);
            prop_assert_eq!(d.is_allowed(), all);
            if !all {
                prop_assert!(!fits(&keys[d.subject()]), "reported subject {} fits", d.subject());
            }
            for &(kind, key) in &keys {
                let m = if kind == KeyKind::Ip { &mut ips[key as usize] } else { &mut users[key as usize] };
                m.seen = now;
                if all {
                    m.check(now, 1, true);
                }
            }
            lim.check_invariants();
        }
    }
}

/// A multi-subject check whose second insert sweeps the shard must not drop
/// the first subject's new (still full) state before charging it: that
/// would let the first subject through again.
#[test]
fn a_sweep_inside_a_multi_subject_check_keeps_its_subjects() {
    let hour = Window::new(Duration::from_secs(3_600)).unwrap();
    let t = RuleTable {
        rules: vec![
            RuleSet {
                kind: Some(KeyKind::User),
                limits: vec![Limit::new(1, hour)],
                ..RuleSet::default()
            },
            RuleSet {
                kind: Some(KeyKind::Ip),
                limits: vec![Limit::new(1, hour)],
                ..RuleSet::default()
            },
        ],
    };
    let cfg = KeyedConfig {
        shards: 1,
        max_keys: 3,
        fail_mode: FailMode::Closed,
    };
    let t0 = Instant::now();
    let lim =
        PolicyLimiter::<u64>::with_config(&t, cfg, DefaultHasher::default(), t0).expect("table");
    let subjects = |user: &'static u64, ip: &'static u64| {
        [
            Request {
                tier: None,
                endpoint: "/x",
                kind: KeyKind::User,
                key: user,
            },
            Request {
                tier: None,
                endpoint: "/x",
                kind: KeyKind::Ip,
                key: ip,
            },
        ]
    };
    assert!(
        lim.check_all_at(&subjects(&1, &1), 1, t0)
            .expect("check")
            .is_allowed()
    );
    // Two hours later both are full again; the table is at its cap after
    // the next user's insert, so the IP's insert sweeps.
    let later = t0 + Duration::from_secs(7_200);
    assert!(
        lim.check_all_at(&subjects(&2, &2), 1, later)
            .expect("check")
            .is_allowed()
    );
    lim.check_invariants();
    // User 2 was charged: its hourly unit is used.
    let d = lim
        .check_all_at(&subjects(&2, &3), 1, later)
        .expect("check");
    assert!(!d.is_allowed(), "user 2 granted twice in one hour");
    assert_eq!(d.subject(), 0);
}
