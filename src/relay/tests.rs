//! The relay's retry schedule and per-platform delivery state, without a platform.

use super::health::{Cleared, Problem};
use super::*;
use crate::chat::{ChatError, Scope};
use chrono::Utc;
use std::collections::HashSet;

#[test]
fn backoff_doubles_from_two_seconds_to_five_minutes_with_jitter() {
    for (step, secs) in [
        (1, 2),
        (2, 4),
        (3, 8),
        (4, 16),
        (8, 256),
        (9, 300),
        (30, 300),
    ] {
        let b = BACKOFF.delay(step);
        let base = Duration::from_secs(secs);
        assert!(b >= base && b <= base.mul_f64(1.2), "step {step}: {b:?}");
    }
    let samples: HashSet<u128> = (0..20).map(|_| BACKOFF.delay(3).as_millis()).collect();
    assert!(samples.len() > 1, "jittered");
}

fn refusal(scope: Scope, reason: &str) -> ChatError {
    ChatError::Refused {
        platform: "slack",
        scope,
        reason: reason.into(),
        call: "chat.postMessage".into(),
        fix: "do the thing".into(),
    }
}

#[tokio::test(start_paused = true)]
async fn rate_limit_holds_every_target_of_the_platform_until_it_ends() {
    let h = DeliveryHealth::default();
    h.register("slack");
    let a = Target::Slack("#a".into());
    let b = Target::Slack("#b".into());
    let d = Target::Discord("1".into());
    h.rate_limited("slack", Duration::from_secs(5));
    assert!(h.holds("slack", &a) && h.holds("slack", &b));
    assert!(!h.holds("discord", &d), "other platforms go on");
    tokio::time::advance(Duration::from_millis(4900)).await;
    assert!(h.holds("slack", &a));
    tokio::time::advance(Duration::from_millis(200)).await;
    assert!(!h.holds("slack", &a));
    assert_eq!(h.status(), Status::Ok, "a 429 is not a failure");
}

#[tokio::test(start_paused = true)]
async fn refused_token_makes_the_platform_unreachable_until_a_success() {
    let h = DeliveryHealth::default();
    h.register("slack");
    let a = Target::Slack("#a".into());
    h.note_refusal(
        "slack",
        Some(&a),
        &refusal(Scope::Platform, "invalid_auth"),
        Utc::now(),
    );
    assert_eq!(h.status(), Status::Unhealthy);
    assert!(h.holds("slack", &a));
    assert!(!h.probe_due("slack"), "first probe after ~16 s");
    tokio::time::advance(Duration::from_secs(20)).await;
    assert!(h.probe_due("slack"));
    assert!(h.holds("slack", &a), "entries wait for the probe");
    let snap = h.snapshot();
    assert_eq!(snap["slack"]["status"], "unreachable");
    assert_eq!(snap["slack"]["reason"], "invalid_auth");
    assert_eq!(snap["slack"]["fix"], "do the thing");
    // The second refusal waits twice as long, and is not logged again.
    assert!(!h.refuse_platform(
        "slack",
        Problem {
            reason: "invalid_auth".into(),
            fix: String::new(),
            detail: String::new(),
            since: Utc::now()
        }
    ));
    tokio::time::advance(Duration::from_secs(31)).await;
    assert!(!h.probe_due("slack"));
    tokio::time::advance(Duration::from_secs(8)).await;
    assert!(h.probe_due("slack"));
    let cleared = h.succeeded("slack", None);
    assert!(cleared.platform);
    assert_eq!(h.status(), Status::Ok);
    assert!(!h.holds("slack", &a));
    assert_eq!(h.up(), vec![("slack", true)]);
}

/// A missing scope passes `auth.test`: the credential check must not clear it (that made
/// it flap every probe, logged each time); one entry probes it on the backoff schedule.
#[tokio::test(start_paused = true)]
async fn missing_scope_waits_for_a_delivery_not_a_credential_check() {
    let h = DeliveryHealth::default();
    h.register("slack");
    let a = Target::Slack("#a".into());
    let refuse = || {
        h.refuse_platform(
            "slack",
            Problem {
                reason: "missing_scope".into(),
                fix: "add the scope".into(),
                detail: String::new(),
                since: Utc::now(),
            },
        )
    };
    assert!(refuse(), "logged the first time");
    assert_eq!(h.status(), Status::Unhealthy);
    assert!(h.holds("slack", &a));
    tokio::time::advance(Duration::from_secs(20)).await;
    assert!(!h.probe_due("slack"), "no credential check for a scope");
    assert!(!h.holds("slack", &a), "an entry may go as the probe");
    assert_eq!(h.credentials_accepted("slack"), Cleared::default());
    assert_eq!(
        h.status(),
        Status::Unhealthy,
        "a token check proves nothing"
    );
    assert!(!refuse(), "refused again: not logged again");
    assert!(h.holds("slack", &a));
    tokio::time::advance(Duration::from_secs(20)).await;
    assert!(h.holds("slack", &a), "the second probe waits twice as long");
    tokio::time::advance(Duration::from_secs(20)).await;
    assert!(!h.holds("slack", &a));
    assert!(
        h.succeeded("slack", Some(&a)).platform,
        "a delivery clears it"
    );
    assert_eq!(h.status(), Status::Ok);
    assert!(refuse(), "a new refusal after a fix is logged again");
}

#[tokio::test(start_paused = true)]
async fn refused_channel_holds_only_that_target_and_clears_on_its_success() {
    let h = DeliveryHealth::default();
    h.register("discord");
    let bad = Target::Discord("1".into());
    let good = Target::Discord("2".into());
    h.note_refusal(
        "discord",
        Some(&bad),
        &refusal(Scope::Target, "403/50013"),
        Utc::now(),
    );
    assert_eq!(h.status(), Status::Degraded);
    assert!(h.holds("discord", &bad) && !h.holds("discord", &good));
    assert_eq!(
        h.snapshot()["discord"]["failing_targets"][0]["target"],
        "discord:1"
    );
    assert_eq!(h.succeeded("discord", Some(&good)), Cleared::default());
    assert_eq!(h.status(), Status::Degraded);
    tokio::time::advance(Duration::from_secs(20)).await;
    assert!(!h.holds("discord", &bad), "probe due");
    assert!(h.succeeded("discord", Some(&bad)).target);
    assert_eq!(h.status(), Status::Ok);
}

#[tokio::test(start_paused = true)]
async fn outage_holds_the_platform_on_the_backoff_schedule() {
    let h = DeliveryHealth::default();
    h.register("slack");
    let a = Target::Slack("#a".into());
    let waits: Vec<Duration> = (0..5)
        .map(|_| h.unavailable("slack", "503", Utc::now()))
        .collect();
    for (i, w) in waits.iter().enumerate() {
        let base = Duration::from_secs(2 << i);
        assert!(*w >= base && *w <= base.mul_f64(1.2), "{i}: {w:?}");
    }
    assert!(h.holds("slack", &a));
    assert_eq!(h.status(), Status::Degraded, "an outage degrades");
    assert_eq!(h.snapshot()["slack"]["reason"], "unavailable");
    assert!(h.succeeded("slack", Some(&a)).platform);
    assert!(!h.holds("slack", &a));
    assert_eq!(h.status(), Status::Ok);
}

#[test]
fn slack_error_codes_are_classified() {
    use crate::chat::slack::refusal;
    for (code, scope) in [
        ("invalid_auth", Scope::Platform),
        ("not_authed", Scope::Platform),
        ("account_inactive", Scope::Platform),
        ("token_revoked", Scope::Platform),
        ("token_expired", Scope::Platform),
        ("missing_scope", Scope::Platform),
        ("channel_not_found", Scope::Target),
        ("not_in_channel", Scope::Target),
        ("is_archived", Scope::Target),
        ("invalid_blocks", Scope::Message),
        ("msg_too_long", Scope::Message),
        ("invalid_arguments", Scope::Message),
    ] {
        assert_eq!(refusal(code).map(|r| r.0), Some(scope), "{code}");
    }
    for transient in [
        "internal_error",
        "fatal_error",
        "service_unavailable",
        "ratelimited",
    ] {
        assert!(refusal(transient).is_none(), "{transient}");
    }
    assert!(refusal("invalid_auth")
        .unwrap()
        .1
        .contains("SLACK_BOT_TOKEN"));
}

/// The bug issue 12 found: a 60 s in-line rate-limit wait inside a 30 s call timeout ended
/// as a timeout. The compile-time assertion in `relay` ties the two; this states it as a test.
#[test]
fn inline_rate_limit_wait_ends_well_inside_the_call_timeout() {
    assert!(crate::chat::MAX_INLINE_WAIT < CALL_TIMEOUT);
    assert!(crate::retry::fits_inside(
        crate::chat::MAX_INLINE_WAIT,
        CALL_TIMEOUT
    ));
}

#[test]
fn a_platforms_retry_after_is_honoured_as_asked_up_to_a_day() {
    assert_eq!(
        BACKOFF.retry_after(Duration::from_secs(42)),
        Duration::from_secs(42)
    );
    assert_eq!(
        BACKOFF.retry_after(Duration::from_secs(30 * 86_400)),
        Duration::from_secs(86_400)
    );
}
