use std::time::Duration;

use governor::clock::FakeRelativeClock;

use super::*;

fn quota(s: &str) -> RateQuota {
    s.parse().unwrap()
}

const KEY: [u8; 12] = *b"abcdefghijkl";

#[test]
fn nth_passes_next_is_refused_and_refills_after_period_over_n() {
    let clock = FakeRelativeClock::default();
    let limiter = GovernorLimiter::with_clock(clock.clone());
    let q = quota("5/5m");
    for used in 1..=5u32 {
        let RateDecision::Allowed(status) = limiter.check(&KEY, q) else {
            panic!("request {used} should pass");
        };
        assert_eq!(status.limit, 5);
        assert_eq!(status.remaining, 5 - used);
        assert_eq!(status.reset, Duration::from_secs(60 * u64::from(used)));
    }
    let RateDecision::Limited {
        status,
        retry_after,
    } = limiter.check(&KEY, q)
    else {
        panic!("the sixth request should be refused");
    };
    assert_eq!(retry_after, Duration::from_secs(60));
    assert_eq!(status.remaining, 0);
    assert_eq!(status.reset, Duration::from_secs(300));
    assert_eq!(ceil_seconds(retry_after), 60);

    clock.advance(Duration::from_secs(59));
    let RateDecision::Limited { retry_after, .. } = limiter.check(&KEY, q) else {
        panic!("still refused one second early");
    };
    assert_eq!(ceil_seconds(retry_after), 1);

    clock.advance(Duration::from_secs(1));
    let RateDecision::Allowed(status) = limiter.check(&KEY, q) else {
        panic!("one more passes after period/N");
    };
    assert_eq!(status.remaining, 0);
    assert!(matches!(
        limiter.check(&KEY, q),
        RateDecision::Limited { .. }
    ));
}

#[test]
fn keys_are_independent() {
    let limiter = GovernorLimiter::with_clock(FakeRelativeClock::default());
    let q = quota("1/1h");
    assert!(matches!(
        limiter.check(b"aaaaaaaaaaaa", q),
        RateDecision::Allowed(_)
    ));
    assert!(matches!(
        limiter.check(b"bbbbbbbbbbbb", q),
        RateDecision::Allowed(_)
    ));
    assert!(matches!(
        limiter.check(b"aaaaaaaaaaaa", q),
        RateDecision::Limited { .. }
    ));
}

#[test]
fn a_changed_quota_applies_on_the_next_request() {
    let limiter = GovernorLimiter::with_clock(FakeRelativeClock::default());
    assert!(matches!(
        limiter.check(&KEY, quota("1/1h")),
        RateDecision::Allowed(_)
    ));
    assert!(matches!(
        limiter.check(&KEY, quota("1/1h")),
        RateDecision::Limited { .. }
    ));
    let RateDecision::Allowed(status) = limiter.check(&KEY, quota("10/1h")) else {
        panic!("a raised limit lets the next request through");
    };
    assert_eq!(status.limit, 10);
    assert_eq!(status.remaining, 9);
}

#[test]
fn idle_keys_are_dropped() {
    let clock = FakeRelativeClock::default();
    let limiter = GovernorLimiter::with_clock(clock.clone());
    let q = quota("10/1m");
    for i in 0..100_000u32 {
        let mut key = [b'0'; 12];
        key[..8].copy_from_slice(format!("{i:08}").as_bytes());
        limiter.check(&key, q);
    }
    assert_eq!(limiter.len(), 100_000);
    limiter.retain_recent();
    assert_eq!(limiter.len(), 100_000, "keys in use are kept");
    clock.advance(Duration::from_secs(61));
    limiter.retain_recent();
    assert_eq!(limiter.len(), 0);
    assert!(limiter.by_quota.read().unwrap().is_empty());
}
