//! Issue 14, the limiters' case 9: a rules table reads back exactly what
//! was written (windows of any length, to the nanosecond), and a zero
//! window is refused where it is made, not when its text fails to load.

use std::time::Duration;

use dispatchkit_ratelimit::{KeyKind, Limit, RateLimitError, RuleSet, RuleTable, Window};
use dispatchkit_test_support::cases;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

#[test]
fn case_09_windows_serialise_exactly() {
    for (d, text) in [
        (Duration::from_micros(1_500), "1500us"),
        (Duration::from_micros(500), "500us"),
        (Duration::from_nanos(16_666_667), "16666667ns"),
        (Duration::from_millis(16), "16ms"),
        (Duration::from_secs(7_200), "2h"),
        (Duration::from_secs(3_600), "hour"),
        (Duration::from_secs(86_400 * 3), "3d"),
    ] {
        let w = Window::new(d).unwrap();
        assert_eq!(w.to_string(), text);
        assert_eq!(text.parse::<Window>().unwrap(), w);
        let json = serde_json::to_string(&w).unwrap();
        assert_eq!(serde_json::from_str::<Window>(&json).unwrap(), w);
    }
    assert!(matches!(
        Window::new(Duration::ZERO),
        Err(RateLimitError::InvalidWindow { .. })
    ));
    for bad in [
        "0ms",
        "0ns",
        "5",
        "5y",
        "-1s",
        "99999999999999999999999d",
        "",
    ] {
        assert!(bad.parse::<Window>().is_err(), "{bad}");
        assert!(serde_json::from_str::<Window>(&format!("\"{bad}\"")).is_err());
    }
    assert_eq!(
        "40µs".parse::<Window>().unwrap().duration(),
        Duration::from_micros(40)
    );
}

fn window() -> impl Strategy<Value = Window> {
    prop_oneof![
        (0u64..=u64::MAX, 0u32..1_000_000_000),
        (0u64..100_000, 0u32..1_000_000_000),
        (1u64..100_000, Just(0u32)),
        (0u64..10, (0u32..1_000_000).prop_map(|n| n * 1_000)),
    ]
    .prop_filter_map("non-zero", |(s, n)| Window::new(Duration::new(s, n)).ok())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(2_000),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    })]

    /// Every window, and every rules table made of them, reads back equal.
    #[test]
    fn case_09_every_window_and_table_round_trips(
        w in window(),
        count in 1u32..=u32::MAX,
        burst in prop::option::of(1u32..=u32::MAX),
    ) {
        prop_assert_eq!(w.to_string().parse::<Window>().unwrap(), w);
        let json = serde_json::to_string(&w).unwrap();
        prop_assert_eq!(serde_json::from_str::<Window>(&json).unwrap(), w);
        let mut limit = Limit::new(count, w);
        if let Some(b) = burst {
            limit = limit.with_burst(b);
        }
        let table = RuleTable {
            rules: vec![RuleSet {
                kind: Some(KeyKind::User),
                endpoint: Some("/v1/rides".into()),
                limits: vec![limit],
                ..RuleSet::default()
            }],
        };
        let json = serde_json::to_string(&table).unwrap();
        let back: RuleTable = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back, table);
    }
}
