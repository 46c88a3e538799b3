//! Per-platform delivery state: 429 pauses, outage holds, refused credentials and refused
//! channels with their probe schedule, as the relay saw them; `/healthz` and `/metrics` read
//! it. In memory only: parked entries in the store carry their reasons across restarts. It
//! decides no delivery itself; the relay asks it whether a delivery must wait.

use super::{BACKOFF, OUTAGE_AFTER, PROBE_FIRST_STEP};
use crate::chat::{credential_refusal as credential_reason, ChatError, Scope};
use crate::model::Target;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// A cause that stops deliveries, and what a person must do about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Problem {
    /// The platform's short error code (`invalid_auth`, `403/50013`, `unavailable`).
    pub(crate) reason: String,
    pub(crate) fix: String,
    /// The refused call and the platform's words, for the curious.
    pub(crate) detail: String,
    pub(crate) since: DateTime<Utc>,
}

/// How the chat platforms are doing, as the relay saw it: shared with `/healthz` and
/// `/metrics`. In memory only; parked entries in the store carry their reasons across
/// restarts, and the start-up credential check and first deliveries refill this.
#[derive(Clone, Default)]
pub(crate) struct DeliveryHealth(Arc<Mutex<HealthState>>);

#[derive(Default)]
struct HealthState {
    platforms: BTreeMap<&'static str, PlatformHealth>,
    /// Causes whose fix was logged, so the log says it once and not per entry per retry.
    logged: HashSet<String>,
}

#[derive(Default)]
struct PlatformHealth {
    /// The platform refuses the bot itself (token, scopes): chat is unreachable.
    refused: Option<Problem>,
    /// Nothing goes to this platform before then (429 pause, outage backoff, refusal probe).
    hold_until: Option<Instant>,
    /// Transient failures (network, 5xx, timeouts) in a row, and the last one.
    failures: u32,
    outage: Option<Problem>,
    /// Refused probes in a row, for the probe backoff.
    probes: u32,
    /// Channels that refuse the bot, by target.
    targets: BTreeMap<String, TargetHealth>,
}

struct TargetHealth {
    problem: Problem,
    retry_at: Instant,
    probes: u32,
}

/// Overall state of chat delivery, for `/healthz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Ok,
    /// Some targets fail, or the platform has an outage: restarting will not help.
    Degraded,
    /// A platform refuses the bot's credentials: nothing reaches it until someone acts.
    Unhealthy,
}

/// What a success cleared, so the relay can let the entries it held go at once.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Cleared {
    pub(super) platform: bool,
    pub(super) target: bool,
}

impl DeliveryHealth {
    /// Lists a configured platform (as `ok`) before anything happened to it.
    pub(crate) fn register(&self, platform: &'static str) {
        self.lock().platforms.entry(platform).or_default();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HealthState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a delivery to `target` on `platform` must wait (platform held or refused, or
    /// the channel refused and its next probe not yet due).
    pub(super) fn holds(&self, platform: &'static str, target: &Target) -> bool {
        let now = Instant::now();
        let st = self.lock();
        let Some(p) = st.platforms.get(platform) else {
            return false;
        };
        // A credential refusal waits for its probe (the credential check); any other
        // refusal lets the next entry through when its hold ends, as its probe.
        p.refused
            .as_ref()
            .is_some_and(|r| credential_reason(&r.reason))
            || p.hold_until.is_some_and(|t| t > now)
            || p.targets
                .get(&target.to_string())
                .is_some_and(|t| t.retry_at > now)
    }

    /// Whether a platform that refuses the bot's credentials is due for another credential
    /// check. Other refusals (a missing scope) pass that check, so a delivery probes them.
    pub(super) fn probe_due(&self, platform: &'static str) -> bool {
        let now = Instant::now();
        self.lock().platforms.get(platform).is_some_and(|p| {
            p.refused
                .as_ref()
                .is_some_and(|r| credential_reason(&r.reason))
                && p.hold_until.is_none_or(|t| t <= now)
        })
    }

    /// A 429: nothing goes to the platform for `wait`.
    pub(super) fn rate_limited(&self, platform: &'static str, wait: Duration) {
        let until = Instant::now() + wait;
        let mut st = self.lock();
        let p = st.platforms.entry(platform).or_default();
        p.hold_until = Some(p.hold_until.map_or(until, |t| t.max(until)));
    }

    /// A network error, 5xx or timeout: the platform is held on the backoff schedule of its
    /// failures in a row, so an outage costs one call per step, not one per entry.
    pub(super) fn unavailable(
        &self,
        platform: &'static str,
        detail: &str,
        now: DateTime<Utc>,
    ) -> Duration {
        let mut st = self.lock();
        let p = st.platforms.entry(platform).or_default();
        p.failures += 1;
        let wait = BACKOFF.delay(p.failures);
        p.hold_until = Some(Instant::now() + wait);
        if p.failures >= OUTAGE_AFTER {
            let since = p.outage.as_ref().map_or(now, |o| o.since);
            p.outage = Some(Problem {
                reason: "unavailable".into(),
                fix: format!("{platform} is not answering; deliveries resume on their own when it does (check the network and {platform}'s status page)"),
                detail: detail.to_string(),
                since,
            });
        }
        wait
    }

    /// Records a refusal of the platform or of a target , logging its fix the
    /// first time; anything else is logged as a warning.
    pub(super) fn note_refusal(
        &self,
        platform: &'static str,
        target: Option<&Target>,
        e: &ChatError,
        now: DateTime<Utc>,
    ) {
        let ChatError::Refused {
            scope,
            reason,
            call,
            fix,
            ..
        } = e
        else {
            tracing::warn!(platform, error = %e, "chat call failed");
            return;
        };
        let problem = Problem {
            reason: reason.clone(),
            fix: fix.to_string(),
            detail: call.clone(),
            since: now,
        };
        match (scope, target) {
            (Scope::Platform, _) => {
                if self.refuse_platform(platform, problem) {
                    tracing::error!(platform, reason = %reason, call = %call, "{platform} refuses the bot ({reason}): {fix}; deliveries wait (nothing is lost)");
                }
            }
            (Scope::Target, Some(t)) => {
                if self.refuse_target(platform, t, problem) {
                    tracing::error!(platform, target = %t, reason = %reason, call = %call, "cannot deliver to {t} ({reason}): {fix}; its deliveries wait (nothing is lost)");
                }
            }
            (_, _) => {}
        }
    }

    /// The platform refuses the bot. Returns true the first time for this cause (log it).
    pub(super) fn refuse_platform(&self, platform: &'static str, problem: Problem) -> bool {
        let mut st = self.lock();
        let first = st.logged.insert(format!("{platform}|{}", problem.reason));
        let p = st.platforms.entry(platform).or_default();
        p.hold_until = Some(Instant::now() + BACKOFF.delay(PROBE_FIRST_STEP + p.probes));
        p.probes += 1;
        let since = p.refused.as_ref().map_or(problem.since, |r| r.since);
        p.refused = Some(Problem { since, ..problem });
        first
    }

    /// A channel refuses the bot. Returns true the first time for this cause (log it).
    pub(super) fn refuse_target(
        &self,
        platform: &'static str,
        target: &Target,
        problem: Problem,
    ) -> bool {
        let key = target.to_string();
        let mut st = self.lock();
        let first = st.logged.insert(format!("{key}|{}", problem.reason));
        let p = st.platforms.entry(platform).or_default();
        let probes = p.targets.get(&key).map_or(0, |t| t.probes);
        let since = p
            .targets
            .get(&key)
            .map_or(problem.since, |t| t.problem.since);
        p.targets.insert(
            key,
            TargetHealth {
                problem: Problem { since, ..problem },
                retry_at: Instant::now() + BACKOFF.delay(PROBE_FIRST_STEP + probes),
                probes: probes + 1,
            },
        );
        first
    }

    /// A delivery to `target` went through: clears every cause it disproves.
    pub(super) fn succeeded(&self, platform: &'static str, target: Option<&Target>) -> Cleared {
        self.cleared(platform, target, true)
    }

    /// The credential check passed: it disproves an outage and a refused token, but not a
    /// missing scope or permission (those stay until a delivery goes through, or the refused
    /// call would be retried and refused again every probe, logged and flipping `/healthz`).
    pub(super) fn credentials_accepted(&self, platform: &'static str) -> Cleared {
        self.cleared(platform, None, false)
    }

    fn cleared(&self, platform: &'static str, target: Option<&Target>, delivered: bool) -> Cleared {
        let mut st = self.lock();
        let Some(p) = st.platforms.get_mut(platform) else {
            return Cleared::default();
        };
        let refusal_cleared = p
            .refused
            .as_ref()
            .is_some_and(|r| delivered || credential_reason(&r.reason));
        let cleared_platform = refusal_cleared || p.failures > 0;
        if refusal_cleared {
            p.refused = None;
            p.probes = 0;
        }
        p.failures = 0;
        p.outage = None;
        if p.refused.is_none() {
            p.hold_until = None;
        }
        let cleared_target = target.is_some_and(|t| p.targets.remove(&t.to_string()).is_some());
        let prefix = format!("{platform}|");
        let target_prefix = target.map(|t| format!("{t}|"));
        if refusal_cleared || cleared_target {
            st.logged.retain(|k| {
                let platform_cause = refusal_cleared && k.starts_with(&prefix);
                let target_cause = target_prefix.as_ref().is_some_and(|t| k.starts_with(t));
                !platform_cause && !target_cause
            });
        }
        Cleared {
            platform: cleared_platform,
            target: cleared_target,
        }
    }

    /// The worst state over every platform.
    pub(crate) fn status(&self) -> Status {
        let st = self.lock();
        let mut status = Status::Ok;
        for p in st.platforms.values() {
            if p.refused.is_some() {
                return Status::Unhealthy;
            }
            if p.outage.is_some() || !p.targets.is_empty() {
                status = Status::Degraded;
            }
        }
        status
    }

    /// Per platform: `status` (`ok`, `unreachable`, `degraded`), the reason and fix when
    /// it is not ok, and the failing targets with theirs.
    pub(crate) fn snapshot(&self) -> serde_json::Value {
        let st = self.lock();
        let mut out = serde_json::Map::new();
        for (name, p) in &st.platforms {
            let failing: Vec<serde_json::Value> = p
                .targets
                .iter()
                .map(|(t, h)| {
                    serde_json::json!({
                        "target": t,
                        "reason": h.problem.reason,
                        "fix": h.problem.fix,
                        "detail": h.problem.detail,
                        "since": h.problem.since,
                    })
                })
                .collect();
            let (status, problem) = match (&p.refused, &p.outage) {
                (Some(r), _) => ("unreachable", Some(r)),
                (None, Some(o)) => ("degraded", Some(o)),
                (None, None) if !failing.is_empty() => ("degraded", None),
                _ => ("ok", None),
            };
            let mut v = serde_json::json!({ "status": status, "failing_targets": failing });
            if let Some(pr) = problem {
                v["reason"] = pr.reason.clone().into();
                v["fix"] = pr.fix.clone().into();
                v["detail"] = pr.detail.clone().into();
                v["since"] = serde_json::to_value(pr.since).unwrap_or_default();
            }
            out.insert(name.to_string(), v);
        }
        serde_json::Value::Object(out)
    }

    /// Whether `platform` refuses the bot's credentials right now.
    pub(crate) fn refused(&self, platform: &str) -> bool {
        self.lock()
            .platforms
            .get(platform)
            .is_some_and(|p| p.refused.is_some())
    }

    /// 1 per platform unless it refuses the bot's credentials, for `/metrics`.
    pub(crate) fn up(&self) -> Vec<(&'static str, bool)> {
        self.lock()
            .platforms
            .iter()
            .map(|(n, p)| (*n, p.refused.is_none()))
            .collect()
    }
}
