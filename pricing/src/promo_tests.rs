//! Unit tests of `promo.rs` (a child module: they see its private items).

use super::*;
use crate::Currency;
use proptest::prelude::*;
use std::time::Duration;

fn usd(m: i64) -> Money {
    Money::new(m, Currency::USD)
}

fn book() -> PromoBook {
    let mut b = PromoBook::new();
    let mut pct = Promo::new(
        "PCT20",
        PromoKind::PercentOff {
            off: Bps::percent(20),
            cap: Some(usd(500)),
        },
    );
    pct.stacking = Stacking::Stackable;
    pct.min_subtotal = Some(usd(1_500));
    b.insert(pct).unwrap();
    let mut fixed = Promo::new("FIVE", PromoKind::FixedOff { off: usd(500) });
    fixed.stacking = Stacking::Stackable;
    b.insert(fixed).unwrap();
    let mut free = Promo::new("SHIPFREE", PromoKind::FreeDelivery);
    free.stacking = Stacking::Stackable;
    b.insert(free).unwrap();
    b.insert(Promo::new("SOLO", PromoKind::FixedOff { off: usd(300) }))
        .unwrap();
    let mut pct2 = Promo::new(
        "PCT10",
        PromoKind::PercentOff {
            off: Bps::percent(10),
            cap: None,
        },
    );
    pct2.stacking = Stacking::Stackable;
    b.insert(pct2).unwrap();
    b.check_invariants();
    b
}

#[test]
fn stacking_rules() {
    let b = book();
    let t = Instant::now();
    let u = UserId(1);
    assert_eq!(
        b.check_at(&["PCT20", "FIVE", "SHIPFREE"], u, t)
            .unwrap()
            .promos()
            .len(),
        3
    );
    assert!(matches!(
        b.check_at(&["PCT20", "SOLO"], u, t),
        Err(PricingError::PromoNotStackable {
            reason: "an exclusive promo cannot be combined",
            ..
        })
    ));
    assert!(matches!(
        b.check_at(&["PCT20", "PCT10"], u, t),
        Err(PricingError::PromoNotStackable {
            reason: "at most one promo of each kind",
            ..
        })
    ));
    assert!(matches!(
        b.check_at(&["FIVE", "FIVE"], u, t),
        Err(PricingError::PromoNotStackable {
            reason: "the same code is listed twice",
            ..
        })
    ));
    assert_eq!(
        b.check_at(&["NOPE"], u, t),
        Err(PricingError::UnknownPromo {
            code: "NOPE".into()
        })
    );
    assert!(b.check_at(&["SOLO"], u, t).is_ok());
}

#[test]
fn bad_definitions_are_rejected() {
    let mut b = PromoBook::new();
    let too_much = Promo::new(
        "X",
        PromoKind::PercentOff {
            off: Bps(10_001),
            cap: None,
        },
    );
    assert!(matches!(
        b.insert(too_much),
        Err(PricingError::InvalidPromo { .. })
    ));
    assert!(matches!(
        b.insert(Promo::new("N", PromoKind::FixedOff { off: usd(-1) })),
        Err(PricingError::NegativeAmount { value: -1, .. })
    ));
    let mut mixed = Promo::new("M", PromoKind::FixedOff { off: usd(100) });
    mixed.min_subtotal = Some(Money::new(1000, Currency::JPY));
    assert!(matches!(
        b.insert(mixed),
        Err(PricingError::CurrencyMismatch { .. })
    ));
    assert!(matches!(
        b.insert(Promo::new("", PromoKind::FreeDelivery)),
        Err(PricingError::InvalidPromo { .. })
    ));
    b.insert(Promo::new("A", PromoKind::FreeDelivery)).unwrap();
    assert!(matches!(
        b.insert(Promo::new("A", PromoKind::FreeDelivery)),
        Err(PricingError::InvalidPromo { .. })
    ));
    b.check_invariants();
}

#[test]
fn expiry_and_limits() {
    let t0 = Instant::now();
    let mut b = PromoBook::new();
    let mut p = Promo::new("ONCE", PromoKind::FixedOff { off: usd(100) });
    p.per_user_limit = Some(2);
    p.expires_at = Some(t0 + Duration::from_secs(60));
    b.insert(p).unwrap();
    let u = UserId(9);
    let _ = b.redeem_at(&["ONCE"], u, t0).unwrap();
    let sel = b.redeem_at(&["ONCE"], u, t0).unwrap();
    b.check_invariants();
    assert_eq!(
        b.redeem_at(&["ONCE"], u, t0),
        Err(PricingError::PromoUsageExceeded {
            code: "ONCE".into(),
            user: 9,
            uses: 2,
            limit: 2
        })
    );
    assert_eq!(b.uses("ONCE", u), 2);
    b.release(sel).unwrap();
    assert_eq!(b.uses("ONCE", u), 1);
    // Another book's redemption is refused.
    let mut other = PromoBook::new();
    other
        .insert(Promo::new("ONCE", PromoKind::FixedOff { off: usd(100) }))
        .unwrap();
    let foreign = other.redeem_at(&["ONCE"], u, t0).unwrap();
    assert!(matches!(
        b.release(foreign),
        Err(PricingError::ForeignRedemption { user: 9 })
    ));
    assert_eq!(b.uses("ONCE", u), 1);
    assert!(b.check_at(&["ONCE"], UserId(10), t0).is_ok());
    assert_eq!(
        b.check_at(&["ONCE"], UserId(10), t0 + Duration::from_secs(61)),
        Err(PricingError::PromoExpired {
            code: "ONCE".into(),
            expired_for: Duration::from_secs(1)
        })
    );
    // Expiry is exclusive: at the instant itself the promo is gone.
    assert!(
        b.check_at(&["ONCE"], UserId(10), t0 + Duration::from_secs(60))
            .is_err()
    );
}

#[test]
fn discounts_follow_the_rules() {
    let b = book();
    let t = Instant::now();
    let sel = b
        .check_at(&["PCT20", "FIVE", "SHIPFREE"], UserId(1), t)
        .unwrap();
    // 20 % of $30 = $6, capped at $5; + $5 fixed = $10; delivery waived.
    let d = sel
        .discounts(usd(3_000), Some(usd(399)), Rounding::HalfEven)
        .unwrap();
    assert_eq!((d.subtotal, d.delivery), (usd(1_000), usd(399)));
    // Below the $15 minimum of PCT20.
    assert!(matches!(
        sel.discounts(usd(1_499), Some(usd(399)), Rounding::HalfEven),
        Err(PricingError::PromoMinimumNotMet { .. })
    ));
    // Free delivery on a ride.
    assert!(matches!(
        sel.discounts(usd(3_000), None, Rounding::HalfEven),
        Err(PricingError::PromoNotApplicable { .. })
    ));
    // A fixed discount larger than the subtotal stops at zero.
    let five = b.check_at(&["FIVE"], UserId(1), t).unwrap();
    let d = five.discounts(usd(320), None, Rounding::HalfEven).unwrap();
    assert_eq!(d.subtotal, usd(320));
}

/// The book against a plain model: a list of promos scanned linearly,
/// a map of uses, and the stacking rules written out as a table.
#[derive(Debug, Clone)]
enum Op {
    Check(Vec<usize>, u64, u64),
    Redeem(Vec<usize>, u64, u64),
    /// Releases the redemption at this index (modulo the held ones).
    Release(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let codes = || proptest::collection::vec(0_usize..5, 0..4);
    prop_oneof![
        (codes(), 0_u64..3, 0_u64..120).prop_map(|(c, u, t)| Op::Check(c, u, t)),
        (codes(), 0_u64..3, 0_u64..120).prop_map(|(c, u, t)| Op::Redeem(c, u, t)),
        (0_usize..8).prop_map(Op::Release),
    ]
}

const CODES: [&str; 5] = ["PCT20", "FIVE", "SHIPFREE", "SOLO", "PCT10"];

/// `Ok(())` or the variant name the model expects.
fn model_check(
    b: &PromoBook,
    uses: &std::collections::HashMap<(usize, u64), u32>,
    codes: &[usize],
    user: u64,
    now: Instant,
    limits: &[Option<u32>],
    expiry: &[Option<Instant>],
) -> Result<(), &'static str> {
    for (k, &c) in codes.iter().enumerate() {
        let p = b.get(CODES[c]).unwrap();
        if expiry[c].is_some_and(|e| now >= e) {
            return Err("expired");
        }
        for &d in &codes[..k] {
            let q = b.get(CODES[d]).unwrap();
            let kind = |x: &Promo| std::mem::discriminant(&x.kind);
            if c == d
                || p.stacking == Stacking::Exclusive
                || q.stacking == Stacking::Exclusive
                || kind(p) == kind(q)
            {
                return Err("stacking");
            }
        }
    }
    for &c in codes {
        let n = uses.get(&(c, user)).copied().unwrap_or(0);
        if limits[c].is_some_and(|l| n >= l) {
            return Err("limit");
        }
    }
    Ok(())
}

fn kind_of<T>(r: &Result<T, PricingError>) -> Result<(), &'static str> {
    match r {
        Ok(_) => Ok(()),
        Err(PricingError::PromoExpired { .. }) => Err("expired"),
        Err(PricingError::PromoNotStackable { .. }) => Err("stacking"),
        Err(PricingError::PromoUsageExceeded { .. }) => Err("limit"),
        Err(e) => panic!("unexpected {e}"),
    }
}

proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 1_000,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("regressions"),
        )),
        ..proptest::prelude::ProptestConfig::default()
    })]

    #[test]
    fn book_matches_model(
        ops in proptest::collection::vec(op(), 1..40),
        limits in proptest::collection::vec(proptest::option::of(0_u32..3), 5),
        expiry in proptest::collection::vec(proptest::option::of(0_u64..120), 5),
    ) {
        let t0 = Instant::now();
        let mut b = book();
        let expiry: Vec<Option<Instant>> =
            expiry.iter().map(|e| e.map(|s| t0 + Duration::from_secs(s))).collect();
        let mut promos: Vec<Promo> = CODES.iter().map(|c| b.get(c).unwrap().clone()).collect();
        for (i, p) in promos.iter_mut().enumerate() {
            p.per_user_limit = limits[i];
            p.expires_at = expiry[i];
        }
        b = PromoBook::new();
        for p in promos {
            b.insert(p).unwrap();
        }
        let mut uses: std::collections::HashMap<(usize, u64), u32> = Default::default();
        let mut held: Vec<(Vec<usize>, u64, Redemption)> = Vec::new();
        for op in ops {
            match op {
                Op::Check(codes, user, t) => {
                    let now = t0 + Duration::from_secs(t);
                    let names: Vec<&str> = codes.iter().map(|&c| CODES[c]).collect();
                    let want = model_check(&b, &uses, &codes, user, now, &limits, &expiry);
                    prop_assert_eq!(kind_of(&b.check_at(&names, UserId(user), now)), want);
                }
                Op::Redeem(codes, user, t) => {
                    let now = t0 + Duration::from_secs(t);
                    let names: Vec<&str> = codes.iter().map(|&c| CODES[c]).collect();
                    let want = model_check(&b, &uses, &codes, user, now, &limits, &expiry);
                    let got = b.redeem_at(&names, UserId(user), now);
                    prop_assert_eq!(kind_of(&got), want);
                    if let Ok(r) = got {
                        for &c in &codes {
                            *uses.entry((c, user)).or_insert(0) += 1;
                        }
                        held.push((codes, user, r));
                    }
                }
                Op::Release(k) => {
                    if !held.is_empty() {
                        let (codes, user, r) = held.swap_remove(k % held.len());
                        b.release(r).unwrap();
                        for &c in &codes {
                            let n = uses.get_mut(&(c, user)).expect("counted");
                            *n -= 1;
                        }
                    }
                }
            }
            b.check_invariants();
            for (c, code) in CODES.iter().enumerate() {
                for user in 0..3 {
                    prop_assert_eq!(
                        b.uses(code, UserId(user)),
                        uses.get(&(c, user)).copied().unwrap_or(0)
                    );
                }
            }
        }
    }
}

#[test]
fn concurrent_redemptions_never_exceed_the_limit() {
    let mut b = PromoBook::new();
    let mut p = Promo::new("HOT", PromoKind::FixedOff { off: usd(100) });
    p.per_user_limit = Some(500);
    b.insert(p).unwrap();
    // Rounds with a fresh user each until the lock was seen contended
    // (almost always the first round); every round must hit the limit
    // exactly.
    for round in 0..50 {
        let wins = std::sync::atomic::AtomicU64::new(0);
        let user = UserId(round);
        let start = std::sync::Barrier::new(4);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    let t = Instant::now();
                    start.wait();
                    for _ in 0..5_000 {
                        if b.redeem_at(&["HOT"], user, t).is_ok() {
                            wins.fetch_add(1, Ordering::Relaxed);
                        }
                        // Readers contend for the same lock.
                        let _ = b.uses("HOT", user);
                    }
                });
            }
        });
        assert_eq!(wins.load(Ordering::Relaxed), 500);
        assert_eq!(b.uses("HOT", user), 500);
        b.check_invariants();
        if b.lock_waits() > 0 {
            return;
        }
    }
    panic!("50 rounds of 4 threads never contended: the test proves nothing");
}
