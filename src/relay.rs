//! The outbox relay: delivers each stored outbox entry to its chat platform exactly once.
//! Before calling the platform it marks the entry in flight (flushed); after a crash, an
//! in-flight entry is first looked up on the platform and only posted if it is not there.
//! Failures have an end and are visible: every entry backs off on its own, a 429 or an
//! outage holds every delivery to that platform, and a refusal a retry cannot fix parks the
//! entry with its reason (shown in `/healthz`, `/metrics` and `/desk list`) until its cause
//! is gone. It decides nothing about what to post; the intake and the desk write the outbox.

use crate::chat::{
    credential_refusal as credential_reason, message_gone, AlertView, ChatError, ChatPlatform,
    Posted, Scope,
};
use crate::metrics::Metrics;
use crate::model::{MessageRef, Target};
use crate::shutdown::Shutdown;
use crate::store::{OutboxAction, OutboxEntry, OutboxKey, Parked, Store};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// One platform call may take this long before it counts as failed (and in flight). The
/// platform clients wait out rate limits in-line for at most `chat::MAX_INLINE_WAIT`, well
/// below it.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait between two attempts at one entry (before jitter).
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How often the relay looks at the outbox when nothing wakes it.
const IDLE_TICK: Duration = Duration::from_secs(1);
/// The first look at a refused platform or channel comes 2^4 = 16 s after the refusal, then
/// doubling to five minutes: a fixed permission is noticed soon, a bad token costs a few calls.
const PROBE_FIRST_STEP: u32 = 4;
/// An entry whose content was refused is tried again at every start-up, and daily.
const CONTENT_RETRY: chrono::Duration = chrono::Duration::days(1);
/// After this many transient failures in a row a platform shows as degraded in `/healthz`.
const OUTAGE_AFTER: u32 = 3;
/// How long the start-up credential check may take per platform.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(10);

/// The configured platforms; a target whose platform is not configured goes to the console,
/// so the default config works with no chat account.
#[derive(Clone)]
pub struct Platforms {
    pub slack: Option<Arc<dyn ChatPlatform>>,
    pub discord: Option<Arc<dyn ChatPlatform>>,
    pub console: Arc<dyn ChatPlatform>,
}

impl Platforms {
    pub fn for_target(&self, target: &Target) -> &Arc<dyn ChatPlatform> {
        match target {
            Target::Slack(_) => self.slack.as_ref().unwrap_or(&self.console),
            Target::Discord(_) => self.discord.as_ref().unwrap_or(&self.console),
        }
    }

    /// The chat platforms with credentials (not the console).
    pub fn configured(&self) -> impl Iterator<Item = &Arc<dyn ChatPlatform>> {
        self.slack.iter().chain(self.discord.iter())
    }
}

#[derive(Debug, thiserror::Error)]
enum DeliveryError {
    #[error(transparent)]
    Chat(#[from] ChatError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("{platform} did not answer within {CALL_TIMEOUT:?}")]
    Timeout { platform: &'static str },
    #[error("alert {0} or its mention is missing from the store")]
    Missing(String),
}

/// A cause that stops deliveries, and what a person must do about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    /// The platform's short error code (`invalid_auth`, `403/50013`, `unavailable`).
    pub reason: String,
    pub fix: String,
    /// The refused call and the platform's words, for the curious.
    pub detail: String,
    pub since: DateTime<Utc>,
}

/// How the chat platforms are doing, as the relay saw it: shared with `/healthz` and
/// `/metrics`. In memory only; parked entries in the store carry their reasons across
/// restarts, and the start-up credential check and first deliveries refill this.
#[derive(Clone, Default)]
pub struct DeliveryHealth(Arc<Mutex<HealthState>>);

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
pub enum Status {
    Ok,
    /// Some targets fail, or the platform has an outage: restarting will not help.
    Degraded,
    /// A platform refuses the bot's credentials: nothing reaches it until someone acts.
    Unhealthy,
}

/// What a success cleared, so the relay can let the entries it held go at once.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Cleared {
    platform: bool,
    target: bool,
}

impl DeliveryHealth {
    /// Lists a configured platform (as `ok`) before anything happened to it.
    pub fn register(&self, platform: &'static str) {
        self.lock().platforms.entry(platform).or_default();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HealthState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a delivery to `target` on `platform` must wait (platform held or refused, or
    /// the channel refused and its next probe not yet due).
    fn holds(&self, platform: &'static str, target: &Target) -> bool {
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
    fn probe_due(&self, platform: &'static str) -> bool {
        let now = Instant::now();
        self.lock().platforms.get(platform).is_some_and(|p| {
            p.refused
                .as_ref()
                .is_some_and(|r| credential_reason(&r.reason))
                && p.hold_until.is_none_or(|t| t <= now)
        })
    }

    /// A 429: nothing goes to the platform for `wait`.
    fn rate_limited(&self, platform: &'static str, wait: Duration) {
        let until = Instant::now() + wait;
        let mut st = self.lock();
        let p = st.platforms.entry(platform).or_default();
        p.hold_until = Some(p.hold_until.map_or(until, |t| t.max(until)));
    }

    /// A network error, 5xx or timeout: the platform is held on the backoff schedule of its
    /// failures in a row, so an outage costs one call per step, not one per entry.
    fn unavailable(&self, platform: &'static str, detail: &str) -> Duration {
        let mut st = self.lock();
        let p = st.platforms.entry(platform).or_default();
        p.failures += 1;
        let wait = backoff(p.failures);
        p.hold_until = Some(Instant::now() + wait);
        if p.failures >= OUTAGE_AFTER {
            let since = p.outage.as_ref().map_or_else(Utc::now, |o| o.since);
            p.outage = Some(Problem {
                reason: "unavailable".into(),
                fix: format!("{platform} is not answering; deliveries resume on their own when it does (check the network and {platform}'s status page)"),
                detail: detail.to_string(),
                since,
            });
        }
        wait
    }

    /// The platform refuses the bot. Returns true the first time for this cause (log it).
    fn refuse_platform(&self, platform: &'static str, problem: Problem) -> bool {
        let mut st = self.lock();
        let first = st.logged.insert(format!("{platform}|{}", problem.reason));
        let p = st.platforms.entry(platform).or_default();
        p.hold_until = Some(Instant::now() + backoff(PROBE_FIRST_STEP + p.probes));
        p.probes += 1;
        let since = p.refused.as_ref().map_or(problem.since, |r| r.since);
        p.refused = Some(Problem { since, ..problem });
        first
    }

    /// A channel refuses the bot. Returns true the first time for this cause (log it).
    fn refuse_target(&self, platform: &'static str, target: &Target, problem: Problem) -> bool {
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
                retry_at: Instant::now() + backoff(PROBE_FIRST_STEP + probes),
                probes: probes + 1,
            },
        );
        first
    }

    /// A delivery to `target` went through: clears every cause it disproves.
    fn succeeded(&self, platform: &'static str, target: Option<&Target>) -> Cleared {
        self.cleared(platform, target, true)
    }

    /// The credential check passed: it disproves an outage and a refused token, but not a
    /// missing scope or permission (those stay until a delivery goes through, or the refused
    /// call would be retried and refused again every probe, logged and flipping `/healthz`).
    fn credentials_accepted(&self, platform: &'static str) -> Cleared {
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
    pub fn status(&self) -> Status {
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
    pub fn snapshot(&self) -> serde_json::Value {
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
    pub fn refused(&self, platform: &str) -> bool {
        self.lock()
            .platforms
            .get(platform)
            .is_some_and(|p| p.refused.is_some())
    }

    /// 1 per platform unless it refuses the bot's credentials, for `/metrics`.
    pub fn up(&self) -> Vec<(&'static str, bool)> {
        self.lock()
            .platforms
            .iter()
            .map(|(n, p)| (*n, p.refused.is_none()))
            .collect()
    }
}

/// Checks every configured platform's credentials (`auth.test`, `GET /users/@me`) once, at
/// start-up: a refused token is logged with its fix and marks the platform unreachable;
/// the daemon keeps running and keeps storing alerts, nothing is lost.
pub async fn check_credentials(platforms: &Platforms, health: &DeliveryHealth, metrics: &Metrics) {
    for p in platforms.configured() {
        health.register(p.name());
        match tokio::time::timeout(VERIFY_TIMEOUT, p.verify()).await {
            Ok(Ok(me)) => {
                tracing::info!(platform = p.name(), bot = %me.name, "chat credentials accepted")
            }
            Ok(Err(e)) => {
                metrics.delivery_failure(p.name(), failure_kind(&e));
                note_refusal(health, p.name(), None, &e)
            }
            Err(_) => tracing::warn!(
                platform = p.name(),
                "could not check the chat credentials in time; the first delivery will tell"
            ),
        }
    }
}

/// Records a refusal of the platform or of a target in `health`, logging its fix the first
/// time; anything else is logged as a warning.
fn note_refusal(
    health: &DeliveryHealth,
    platform: &'static str,
    target: Option<&Target>,
    e: &ChatError,
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
        since: Utc::now(),
    };
    match (scope, target) {
        (Scope::Platform, _) => {
            if health.refuse_platform(platform, problem) {
                tracing::error!(platform, reason = %reason, call = %call, "{platform} refuses the bot ({reason}): {fix}; deliveries wait (nothing is lost)");
            }
        }
        (Scope::Target, Some(t)) => {
            if health.refuse_target(platform, t, problem) {
                tracing::error!(platform, target = %t, reason = %reason, call = %call, "cannot deliver to {t} ({reason}): {fix}; its deliveries wait (nothing is lost)");
            }
        }
        (_, _) => {}
    }
}

pub async fn run(
    store: Store,
    platforms: Platforms,
    wake: Arc<Notify>,
    metrics: Arc<Metrics>,
    health: DeliveryHealth,
    mut shutdown: Shutdown,
) {
    // A restart is when a fixed token, renderer or permission is most likely: every parked
    // entry gets one more try (held platforms and channels still hold theirs).
    match store.retry_now(|e| e.parked.is_some()) {
        Ok(0) => {}
        Ok(n) => tracing::info!(entries = n, "retrying parked deliveries after the restart"),
        Err(e) => tracing::error!(error = %e, "cannot read the outbox"),
    }
    loop {
        deliver_due_with(&store, &platforms, &metrics, &health, &shutdown).await;
        if shutdown.is_triggered() {
            break;
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(IDLE_TICK) => {}
            _ = shutdown.wait() => break,
        }
    }
    tracing::debug!("relay stopped");
}

/// One pass over the outbox with no earlier platform state (`digest --now` without a
/// daemon, tests).
pub async fn deliver_due(
    store: &Store,
    platforms: &Platforms,
    metrics: &Metrics,
    shutdown: &Shutdown,
) {
    deliver_due_with(
        store,
        platforms,
        metrics,
        &DeliveryHealth::default(),
        shutdown,
    )
    .await
}

/// Delivers every entry that is due, oldest first, except where its platform or channel is
/// held. Stops between entries on shutdown, so the post in flight is finished and recorded.
pub async fn deliver_due_with(
    store: &Store,
    platforms: &Platforms,
    metrics: &Metrics,
    health: &DeliveryHealth,
    shutdown: &Shutdown,
) {
    for p in platforms.configured() {
        if health.probe_due(p.name()) {
            probe(store, p.as_ref(), metrics, health).await;
        }
    }
    let entries = match store.outbox() {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the outbox");
            return;
        }
    };
    let now = Utc::now();
    for (key, entry) in entries {
        if shutdown.is_triggered() {
            return;
        }
        if entry.not_before.is_some_and(|t| t > now) {
            continue;
        }
        let platform = platforms.for_target(&entry.target).clone();
        let name = platform.name();
        if health.holds(name, &entry.target) {
            continue;
        }
        match deliver(store, platform.as_ref(), key, &entry, metrics).await {
            Ok(()) => {
                let cleared = health.succeeded(name, Some(&entry.target));
                release(store, platforms, name, &entry.target, cleared);
            }
            Err(DeliveryError::Chat(ChatError::Refused {
                scope: Scope::Message,
                reason,
                ..
            })) if message_gone(&reason)
                && matches!(
                    entry.action,
                    OutboxAction::UpdateAlert | OutboxAction::ThreadNote(_)
                ) =>
            {
                gone(store, metrics, name, key, &entry, &reason).await
            }
            Err(e) => failed(store, metrics, health, name, key, &entry, e),
        }
    }
}

/// The alert's message was deleted in the channel (by a person: the bot never deletes), so
/// its state line cannot be edited and its thread cannot take a reply. Retrying cannot help
/// and the deletion was someone's choice: the entry ends with a warning instead of staying
/// parked (and `/healthz` degraded) for good. A thread note is not re-posted into the channel
/// either, where it would bring back, without its context, what a person removed; the alert
/// and its history stay on the desk (`/desk show ID`).
async fn gone(
    store: &Store,
    metrics: &Metrics,
    platform: &'static str,
    key: OutboxKey,
    entry: &OutboxEntry,
    reason: &str,
) {
    metrics.delivery_failure(platform, "refused_message");
    let what = match entry.action {
        OutboxAction::UpdateAlert => "state change",
        _ => "thread note",
    };
    tracing::warn!(alert = %entry.alert_id, target = %entry.target, reason, "the alert's message is gone from {} (deleted?); this {what} is not shown there. The alert stays on the desk: /desk show {}", entry.target, entry.alert_id.0);
    if let Err(e) = store.finish(key).await {
        tracing::error!(error = %e, "could not record a delivery failure");
    }
}

/// Asks a refused platform whether it accepts the bot again (its credential check), so a
/// platform with nothing to deliver recovers too.
async fn probe(store: &Store, p: &dyn ChatPlatform, metrics: &Metrics, health: &DeliveryHealth) {
    match tokio::time::timeout(CALL_TIMEOUT, p.verify()).await {
        Ok(Ok(_)) => {
            let cleared = health.credentials_accepted(p.name());
            tracing::info!(platform = p.name(), "the platform accepts the bot again");
            if cleared.platform {
                if let Err(e) =
                    store.retry_now(|e| e.target.platform() == p.name() && !content_refused(e))
                {
                    tracing::error!(error = %e, "cannot read the outbox");
                }
            }
        }
        Ok(Err(e)) => {
            metrics.delivery_failure(p.name(), failure_kind(&e));
            match &e {
                ChatError::Refused { .. } => note_refusal(health, p.name(), None, &e),
                ChatError::RateLimited { retry_after, .. } => {
                    health.rate_limited(p.name(), *retry_after)
                }
                _ => {
                    health.unavailable(p.name(), &e.to_string());
                }
            }
        }
        Err(_) => {
            health.unavailable(p.name(), "credential check timed out");
        }
    }
}

/// After a success cleared a platform's or channel's trouble, its held entries go now
/// instead of at their backoff time (content refusals wait for a restart).
fn release(store: &Store, platforms: &Platforms, name: &str, target: &Target, cleared: Cleared) {
    if cleared == Cleared::default() {
        return;
    }
    let released = store.retry_now(|e| {
        platforms.for_target(&e.target).name() == name
            && (cleared.platform || &e.target == target)
            && !content_refused(e)
    });
    match released {
        Ok(n) => tracing::info!(
            platform = name,
            target = %target,
            released = n,
            "deliveries resumed"
        ),
        Err(e) => tracing::error!(error = %e, "cannot read the outbox"),
    }
}

/// Whether the platform refused this entry's content (retried only at start-up and daily).
fn content_refused(e: &OutboxEntry) -> bool {
    e.parked.as_ref().is_some_and(|p| p.scope == Scope::Message)
}

/// The `kind` label of `mentiondesk_delivery_failures_total`.
fn failure_kind(e: &ChatError) -> &'static str {
    match e {
        ChatError::RateLimited { .. } => "rate_limited",
        ChatError::Refused {
            scope: Scope::Platform,
            ..
        } => "refused_platform",
        ChatError::Refused {
            scope: Scope::Target,
            ..
        } => "refused_target",
        ChatError::Refused {
            scope: Scope::Message,
            ..
        } => "refused_message",
        ChatError::Network { .. } => "unavailable",
        ChatError::Api { .. } | ChatError::Config(_) => "error",
    }
}

/// Records a failed delivery: the entry's next try, and what it says about its platform.
fn failed(
    store: &Store,
    metrics: &Metrics,
    health: &DeliveryHealth,
    platform: &'static str,
    key: OutboxKey,
    entry: &OutboxEntry,
    e: DeliveryError,
) {
    Metrics::add(&metrics.post_errors_total, 1);
    let now = Utc::now();
    let attempts = entry.attempts + 1;
    let error = e.to_string();
    let result = match &e {
        DeliveryError::Chat(ChatError::RateLimited { retry_after, .. }) => {
            // Not the entry's fault: no attempt counted; the whole platform waits.
            metrics.delivery_failure(platform, "rate_limited");
            health.rate_limited(platform, *retry_after);
            tracing::info!(
                platform,
                retry_in_secs = retry_after.as_secs_f64(),
                "rate limited; holding every delivery to {platform} as asked"
            );
            store.record_failure(
                key,
                entry.attempts,
                &error,
                now + chrono_duration(*retry_after),
            )
        }
        DeliveryError::Chat(
            c @ ChatError::Refused {
                scope, reason, fix, ..
            },
        ) => {
            metrics.delivery_failure(platform, failure_kind(c));
            let parked = Parked {
                reason: reason.clone(),
                fix: fix.to_string(),
                scope: *scope,
                since: entry.parked.as_ref().map_or(now, |p| p.since),
            };
            let retry = match scope {
                Scope::Message => {
                    if entry.parked.as_ref().map(|p| &p.reason) != Some(reason) {
                        tracing::error!(alert = %entry.alert_id, target = %entry.target, reason = %reason, "{platform} refused this delivery ({reason}): {fix}");
                    }
                    Some(now + CONTENT_RETRY)
                }
                _ => {
                    note_refusal(health, platform, Some(&entry.target), c);
                    None
                }
            };
            store.park(key, attempts, &error, &parked, retry)
        }
        DeliveryError::Chat(c) => {
            let wait = backoff(attempts);
            metrics.delivery_failure(platform, failure_kind(c));
            if matches!(c, ChatError::Network { .. }) {
                health.unavailable(platform, &error);
            }
            tracing::warn!(alert = %entry.alert_id, target = %entry.target, attempts, retry_in_secs = wait.as_secs(), error = %e, "could not deliver; will retry");
            store.record_failure(key, attempts, &error, now + chrono_duration(wait))
        }
        DeliveryError::Timeout { .. } => {
            let wait = backoff(attempts);
            metrics.delivery_failure(platform, "unavailable");
            health.unavailable(platform, &error);
            tracing::warn!(alert = %entry.alert_id, target = %entry.target, attempts, retry_in_secs = wait.as_secs(), error = %e, "could not deliver; will retry");
            store.record_failure(key, attempts, &error, now + chrono_duration(wait))
        }
        DeliveryError::Store(_) | DeliveryError::Missing(_) => {
            let wait = backoff(attempts);
            tracing::error!(alert = %entry.alert_id, target = %entry.target, attempts, retry_in_secs = wait.as_secs(), error = %e, "could not deliver; will retry");
            store.record_failure(key, attempts, &error, now + chrono_duration(wait))
        }
    };
    if let Err(e) = result {
        tracing::error!(error = %e, "could not record a delivery failure");
    }
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::seconds(300))
}

async fn deliver(
    store: &Store,
    platform: &dyn ChatPlatform,
    key: OutboxKey,
    entry: &OutboxEntry,
    metrics: &Metrics,
) -> Result<(), DeliveryError> {
    match &entry.action {
        OutboxAction::PostAlert => post_alert(store, platform, key, entry, metrics).await,
        OutboxAction::UpdateAlert => {
            let Some(msg) = store.message_ref(entry.alert_id, &entry.target)? else {
                // Not posted yet: the pending post will show the current state anyway.
                store.finish(key).await?;
                return Ok(());
            };
            let view = current_view(store, entry)?;
            timed(platform, platform.update_alert(&msg, &view)).await?;
            store.finish(key).await?;
            Ok(())
        }
        OutboxAction::ThreadNote(note) => {
            let Some(msg) = store.message_ref(entry.alert_id, &entry.target)? else {
                if root_pending(store, entry)? {
                    store.defer(key, Utc::now() + chrono::Duration::seconds(2))?;
                } else {
                    tracing::warn!(alert = %entry.alert_id, target = %entry.target, "thread note for an alert that was never posted there; dropped");
                    store.finish(key).await?;
                }
                return Ok(());
            };
            post_note(
                store,
                platform,
                key,
                entry,
                &msg.channel_id,
                Some(&msg.message_id),
                note,
            )
            .await
        }
        OutboxAction::Digest(post) => {
            let channel = entry.target.channel();
            let delivery = format!("digest-{}", key.seq());
            if let Some(since) = entry.in_flight_since {
                let found = timed(platform, platform.find_digest(channel, &delivery, since));
                if found.await?.is_some() {
                    tracing::info!(target = %entry.target, "found a digest posted before a restart; not posting it again");
                    store.finish(key).await?;
                    return Ok(());
                }
            }
            store.mark_in_flight(key, Utc::now()).await?;
            timed(platform, platform.post_digest(channel, post, &delivery)).await?;
            store.finish(key).await?;
            Metrics::add(&metrics.digests_posted_total, 1);
            tracing::info!(target = %entry.target, "digest posted");
            Ok(())
        }
        OutboxAction::ChannelNote(note) => {
            post_note(
                store,
                platform,
                key,
                entry,
                entry.target.channel(),
                None,
                note,
            )
            .await
        }
    }
}

/// Posts a note at most once: an attempt that may have reached the platform is looked up
/// by its delivery id before posting again.
async fn post_note(
    store: &Store,
    platform: &dyn ChatPlatform,
    key: OutboxKey,
    entry: &OutboxEntry,
    channel: &str,
    thread: Option<&str>,
    note: &crate::model::Note,
) -> Result<(), DeliveryError> {
    let delivery = format!("{}-{}", entry.alert_id, key.seq());
    if let Some(since) = entry.in_flight_since {
        if timed(
            platform,
            platform.find_note(channel, thread, &delivery, since),
        )
        .await?
        .is_some()
        {
            store.finish(key).await?;
            return Ok(());
        }
    }
    store.mark_in_flight(key, Utc::now()).await?;
    timed(
        platform,
        platform.post_note(channel, thread, note, &delivery),
    )
    .await?;
    store.finish(key).await?;
    Ok(())
}

fn root_pending(store: &Store, entry: &OutboxEntry) -> Result<bool, DeliveryError> {
    Ok(store.outbox()?.iter().any(|(_, e)| {
        e.alert_id == entry.alert_id
            && e.target == entry.target
            && e.action == OutboxAction::PostAlert
    }))
}

fn current_view(store: &Store, entry: &OutboxEntry) -> Result<AlertView, DeliveryError> {
    let alert = store
        .alert(entry.alert_id)?
        .ok_or_else(|| DeliveryError::Missing(entry.alert_id.to_string()))?;
    let mention = store
        .mention(&alert.mention_key)?
        .ok_or_else(|| DeliveryError::Missing(alert.mention_key.clone()))?;
    Ok(AlertView::new(&alert, &mention.mention))
}

async fn post_alert(
    store: &Store,
    platform: &dyn ChatPlatform,
    key: OutboxKey,
    entry: &OutboxEntry,
    metrics: &Metrics,
) -> Result<(), DeliveryError> {
    let channel = entry.target.channel();
    if let Some(since) = entry.in_flight_since {
        // An earlier attempt may have reached the platform: look before posting again.
        let found = timed(
            platform,
            platform.find_alert(channel, entry.alert_id, since),
        )
        .await?;
        if let Some(posted) = found {
            tracing::info!(alert = %entry.alert_id, target = %entry.target, "found an alert posted before a restart; not posting it again");
            record(store, key, entry, posted).await?;
            Metrics::add(&metrics.recovered_posts_total, 1);
            return Ok(());
        }
    }
    let view = current_view(store, entry)?;
    let entry = store.mark_in_flight(key, Utc::now()).await?;
    let posted = timed(platform, platform.post_alert(channel, &view)).await?;
    record(store, key, &entry, posted).await?;
    Metrics::add(&metrics.alerts_posted_total, 1);
    tracing::info!(alert = %entry.alert_id, target = %entry.target, "alert posted");
    Ok(())
}

async fn record(
    store: &Store,
    key: OutboxKey,
    entry: &OutboxEntry,
    posted: Posted,
) -> Result<(), DeliveryError> {
    let msg = MessageRef {
        target: entry.target.clone(),
        channel_id: posted.channel_id,
        message_id: posted.message_id,
    };
    store.complete(key, entry, &msg).await?;
    Ok(())
}

async fn timed<T>(
    platform: &dyn ChatPlatform,
    call: impl std::future::Future<Output = Result<T, ChatError>>,
) -> Result<T, DeliveryError> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(DeliveryError::Timeout {
            platform: platform.name(),
        }),
    }
}

/// The one backoff schedule of the relay: 2, 4, 8 … seconds for step 1, 2, 3 …, capped at
/// five minutes, plus up to 20 % jitter so held entries do not all return at once.
pub fn backoff(step: u32) -> Duration {
    let base = Duration::from_secs(1u64 << step.clamp(1, 16)).min(MAX_BACKOFF);
    base + base.mul_f64(fastrand::f64() * 0.2)
}

#[cfg(test)]
mod tests {
    use super::*;

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
            let b = backoff(step);
            let base = Duration::from_secs(secs);
            assert!(b >= base && b <= base.mul_f64(1.2), "step {step}: {b:?}");
        }
        let samples: HashSet<u128> = (0..20).map(|_| backoff(3).as_millis()).collect();
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
        note_refusal(
            &h,
            "slack",
            Some(&a),
            &refusal(Scope::Platform, "invalid_auth"),
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
        note_refusal(
            &h,
            "discord",
            Some(&bad),
            &refusal(Scope::Target, "403/50013"),
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
        let waits: Vec<Duration> = (0..5).map(|_| h.unavailable("slack", "503")).collect();
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
}
