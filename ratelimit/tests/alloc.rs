//! Policy checks allocate nothing once their keys are stored: a single
//! subject, and per-user AND per-IP (`check_all_at`) for up to four
//! subjects. Counted with a global counting allocator (`cap`), so this
//! binary runs without the libtest harness (`harness = false` in
//! `Cargo.toml`): the harness's own thread allocates while a test runs
//! (it records the running test), which a global count would see.

use std::alloc::System;
use std::time::{Duration, Instant};

use cap::Cap;
use dispatchkit_ratelimit::{
    AlgorithmKind, KeyKind, Limit, PolicyLimiter, Request, RuleSet, RuleTable, Tier, Window,
};

#[global_allocator]
static ALLOC: Cap<System> = Cap::new(System, usize::MAX);

/// The city stage's table: per-user token bucket + fixed window, premium
/// users one bucket, per-IP sliding log.
fn table() -> RuleTable {
    let w = |s: &str| s.parse::<Window>().expect("window");
    RuleTable {
        rules: vec![
            RuleSet {
                kind: Some(KeyKind::User),
                endpoint: Some("/v1/rides".into()),
                limits: vec![
                    Limit::new(6, w("minute")).with_burst(3).named("user-burst"),
                    Limit::new(20, w("hour"))
                        .with_algorithm(AlgorithmKind::FixedWindow)
                        .named("user-hourly"),
                ],
                ..RuleSet::default()
            },
            RuleSet {
                kind: Some(KeyKind::User),
                tier: Some(Tier::Premium),
                endpoint: Some("/v1/rides".into()),
                limits: vec![
                    Limit::new(60, w("minute")).named("premium-user"),
                    Limit::new(1_000, w("hour")).named("premium-hourly"),
                ],
            },
            RuleSet {
                kind: Some(KeyKind::Ip),
                limits: vec![
                    Limit::new(30, w("minute"))
                        .with_algorithm(AlgorithmKind::SlidingLog)
                        .named("ip-minute"),
                ],
                ..RuleSet::default()
            },
        ],
    }
}

fn user(tier: Tier, key: &u64) -> Request<'_, u64> {
    Request {
        tier: Some(tier),
        endpoint: "/v1/rides",
        kind: KeyKind::User,
        key,
    }
}

fn ip(key: &u64) -> Request<'_, u64> {
    Request {
        tier: None,
        endpoint: "/v1/rides",
        kind: KeyKind::Ip,
        key,
    }
}

/// Bytes allocated while `f` runs.
fn allocated_by(f: impl FnOnce()) -> usize {
    let before = ALLOC.total_allocated();
    f();
    ALLOC.total_allocated() - before
}

fn main() {
    stored_keys_are_checked_without_allocating();
    println!("test stored_keys_are_checked_without_allocating ... ok");
}

fn stored_keys_are_checked_without_allocating() {
    let t0 = Instant::now();
    let lim = PolicyLimiter::<u64>::new_at(&table(), t0).expect("table");
    let tier = |k: u64| {
        if k.is_multiple_of(2) {
            Tier::Premium
        } else {
            Tier::Free
        }
    };
    let keys: Vec<u64> = (0..64).collect();
    // Warm up: store every key and fill every IP log to its limit (so that
    // its buffer has reached the size it keeps).
    for _ in 0..40 {
        for k in &keys {
            let _ = lim.check_at(&user(tier(*k), k), 1, t0).expect("check");
            let _ = lim.check_at(&ip(k), 1, t0).expect("check");
        }
    }
    let mut decisions = 0usize;
    let mut allowed = 0usize;
    let bytes = allocated_by(|| {
        for step in 1..=200u64 {
            let now = t0 + Duration::from_millis(250 * step);
            for (i, k) in keys.iter().enumerate() {
                let other = keys[(i + 1) % keys.len()];
                let d1 = lim.check_at(&user(tier(*k), k), 1, now).expect("check");
                let d2 = lim
                    .check_all_at(&[user(tier(*k), k), ip(k)], 1, now)
                    .expect("check");
                let d4 = lim
                    .check_all_at(
                        &[
                            user(tier(*k), k),
                            ip(k),
                            user(tier(other), &other),
                            ip(&other),
                        ],
                        1,
                        now,
                    )
                    .expect("check");
                for d in [d1, d2, d4] {
                    decisions += 1;
                    allowed += usize::from(d.is_allowed());
                }
            }
        }
    });
    assert_eq!(bytes, 0, "steady-state checks allocated {bytes} bytes");
    // The run mixed grants and denials of every kind of rule.
    assert!(
        allowed > 0 && allowed < decisions,
        "{allowed} of {decisions}"
    );
    // The counter sees allocations: five subjects use heap scratch space.
    let five = [
        user(Tier::Free, &keys[1]),
        ip(&keys[1]),
        user(Tier::Free, &keys[3]),
        ip(&keys[3]),
        ip(&keys[5]),
    ];
    let bytes = allocated_by(|| {
        let _ = lim
            .check_all_at(&five, 1, t0 + Duration::from_secs(60))
            .expect("check");
    });
    assert!(bytes > 0, "five subjects should use heap scratch space");
    // One state per user (under its tier's set) and per IP.
    assert_eq!(lim.len(), 2 * keys.len());
}
