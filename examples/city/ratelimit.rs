//! Stage: every ride request passes a per-user AND per-IP rate-limit policy.
//!
//! Load: the seed's peak of 3,000 ride requests/s for 10M drivers, scaled
//! to the simulated fleet, over ten simulated minutes. Riders (10 per
//! driver, as 100M users to 10M drivers) are drawn Zipf(1.0), so a few
//! heavy riders hit their limits; each rider has a fixed IP, and riders
//! share IPs (carrier NAT, 4 riders per address on average).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use dispatchkit::ratelimit::{
    AlgorithmKind, KeyKind, Limit, PolicyLimiter, Request, RuleSet, RuleTable, Tier, Window,
};
use dispatchkit::workload::ZipfKeys;

use crate::args::Options;
use crate::report::{Section, rate};

/// Peak ride requests per second per driver (3,000/s over 10M drivers).
const PEAK_PER_DRIVER: f64 = 3_000.0 / 10_000_000.0;
/// Simulated span.
const SPAN: Duration = Duration::from_secs(600);

/// The rider's IP (as a u64 key): a deterministic mix of the rider id into
/// a pool a quarter the size of the rider population.
fn ip_of(rider: u64, pool: u64) -> u64 {
    let mut x = rider.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 29;
    x % pool
}

pub fn run(opts: &Options) -> Result<Section, Box<dyn std::error::Error>> {
    let w = |s: &str| s.parse::<Window>();
    let table = RuleTable {
        rules: vec![
            RuleSet {
                kind: Some(KeyKind::User),
                endpoint: Some("/v1/rides".into()),
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
                endpoint: Some("/v1/rides".into()),
                limits: vec![Limit::new(60, w("minute")?).named("premium-user")],
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
    };
    let riders = (opts.drivers as u64 * 10).max(10);
    let ip_pool = (riders / 4).max(1);
    let n =
        ((opts.drivers as f64 * PEAK_PER_DRIVER * SPAN.as_secs_f64()).round() as usize).max(1_000);
    let mut zipf = ZipfKeys::new(riders, 1.0, opts.seed ^ 0x5EED)?;
    let requests: Vec<(u64, u64)> = (0..n)
        .map(|_| {
            let r = zipf.next_key();
            (r, ip_of(r, ip_pool))
        })
        .collect();

    let t0 = Instant::now();
    let limiter = PolicyLimiter::<u64>::new_at(&table, t0)?;
    let gap = SPAN / n as u32;
    let mut allowed = 0usize;
    let mut denied_by: HashMap<String, usize> = HashMap::new();
    let start = Instant::now();
    for (i, &(rider, ip)) in requests.iter().enumerate() {
        let now = t0 + gap * i as u32;
        // Every 20th rider is premium (a deterministic tier assignment).
        let tier = if rider % 20 == 0 {
            Tier::Premium
        } else {
            Tier::Free
        };
        let subjects = [
            Request {
                tier: Some(tier),
                endpoint: "/v1/rides",
                kind: KeyKind::User,
                key: &rider,
            },
            Request {
                tier: None,
                endpoint: "/v1/rides",
                kind: KeyKind::Ip,
                key: &ip,
            },
        ];
        let d = limiter.check_all_at(&subjects, 1, now)?;
        if d.is_allowed() {
            allowed += 1;
        } else {
            *denied_by
                .entry(d.denied_by().unwrap_or("?").to_string())
                .or_default() += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let denied = n - allowed;

    let mut s = Section::new("rate limiting (per-user AND per-IP policy)");
    s.line(format!(
        "{n} ride requests over {} simulated minutes ({:.0}/s, seed peak scaled to {} drivers), {riders} riders Zipf(1.0), {ip_pool} IPs",
        SPAN.as_secs() / 60,
        n as f64 / SPAN.as_secs_f64(),
        opts.drivers
    ));
    s.metric(
        "allowed",
        format!("{allowed} ({:.2}%)", 100.0 * allowed as f64 / n as f64),
    );
    s.metric(
        "denied",
        format!("{denied} ({:.2}%)", 100.0 * denied as f64 / n as f64),
    );
    let mut by: Vec<_> = denied_by.into_iter().collect();
    by.sort_by_key(|(rule, count)| (std::cmp::Reverse(*count), rule.clone()));
    for (rule, count) in by {
        s.metric(&format!("  denied by {rule}"), count.to_string());
    }
    s.metric("policy checks/s (2 subjects each)", rate(n, secs));
    s.metric("limiter states held", limiter.len().to_string());
    Ok(s)
}
