//! The outbox relay: delivers each stored outbox entry to its chat platform exactly once.
//! Before calling the platform it marks the entry in flight (flushed); after a crash, an
//! in-flight entry is first looked up on the platform and only posted if it is not there.
//! Failures have an end and are visible: every entry backs off on its own, a 429 or an
//! outage holds every delivery to that platform, and a refusal a retry cannot fix parks the
//! entry with its reason (shown in `/healthz`, `/metrics` and `/desk list`) until its cause
//! is gone. The store wakes it after every outbox write. It decides nothing about what to
//! post; the intake, the desk, the spike watch and the digests write the outbox.

mod deliver;
mod health;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_claims;

pub(crate) use health::{DeliveryHealth, Status};

use crate::chat::{message_gone, ChatError, ChatPlatform, Scope, MAX_INLINE_WAIT};
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::model::Target;
use crate::retry::{self, Backoff};
use crate::shutdown::Shutdown;
use crate::store::pg::Claimed;
use crate::store::{OutboxAction, OutboxEntry, OutboxKey, Parked, Store, StoreError};
use health::Cleared;
use std::sync::Arc;
use std::time::Duration;

/// One platform call may take this long before it counts as failed (and in flight). The
/// platform clients wait out rate limits in-line for at most `chat::MAX_INLINE_WAIT`, well
/// below it (checked at compile time below).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
// A platform's in-line Retry-After wait sits inside one call: if it could outlast the call's
// timeout, a rate limit would end as a timeout and hold the platform as an outage.
const _: () = assert!(retry::fits_inside(MAX_INLINE_WAIT, CALL_TIMEOUT));
// On PostgreSQL a post starts only under a claim renewed for at least `MIN_CLAIM`: the call
// must end well inside it, or another replica could take the entry over mid-post and, finding
// nothing on the platform yet, post it again.
const _: () = assert!(CALL_TIMEOUT.as_secs() + 10 <= crate::store::pg::MIN_CLAIM.as_secs());
/// The relay's retry schedule: 2, 4, 8 … seconds for attempt 1, 2, 3 …, capped at five
/// minutes, plus up to 20 % jitter so held entries do not all return at once. A platform's
/// Retry-After is honoured as asked, up to a day.
pub(crate) const BACKOFF: Backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(300))
    .with_jitter(1.0, 1.2)
    .with_max_retry_after(retry::DEFAULT_MAX_RETRY_AFTER);
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
    pub(crate) fn for_target(&self, target: &Target) -> &Arc<dyn ChatPlatform> {
        match target {
            Target::Slack(_) => self.slack.as_ref().unwrap_or(&self.console),
            Target::Discord(_) => self.discord.as_ref().unwrap_or(&self.console),
        }
    }

    /// The chat platforms with credentials (not the console).
    pub(crate) fn configured(&self) -> impl Iterator<Item = &Arc<dyn ChatPlatform>> {
        self.slack.iter().chain(self.discord.iter())
    }
}

/// Why one delivery failed; `Pass::failed` decides what that means for the entry.
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

/// The relay task: owns what delivering needs and runs until shutdown.
pub(crate) struct Relay {
    store: Store,
    platforms: Platforms,
    metrics: Arc<Metrics>,
    health: DeliveryHealth,
    clock: Clock,
}

impl Relay {
    pub(crate) fn new(
        store: Store,
        platforms: Platforms,
        metrics: Arc<Metrics>,
        health: DeliveryHealth,
        clock: Clock,
    ) -> Relay {
        Relay {
            store,
            platforms,
            metrics,
            health,
            clock,
        }
    }

    fn pass(&self) -> Pass<'_> {
        Pass {
            store: &self.store,
            platforms: &self.platforms,
            metrics: &self.metrics,
            health: &self.health,
            clock: self.clock,
        }
    }

    /// Checks every configured platform's credentials (`auth.test`, `GET /users/@me`) once,
    /// at start-up: a refused token is logged with its fix and marks the platform
    /// unreachable; the daemon keeps running and keeps storing alerts, nothing is lost.
    pub(crate) async fn check_credentials(&self) {
        for p in self.platforms.configured() {
            self.health.register(p.name());
            match tokio::time::timeout(VERIFY_TIMEOUT, p.verify()).await {
                Ok(Ok(me)) => {
                    tracing::info!(platform = p.name(), bot = %me.name, "chat credentials accepted")
                }
                Ok(Err(e)) => {
                    self.metrics.delivery_failure(p.name(), failure_kind(&e));
                    self.health
                        .note_refusal(p.name(), None, &e, self.clock.now())
                }
                Err(_) => tracing::warn!(
                    platform = p.name(),
                    "could not check the chat credentials in time; the first delivery will tell"
                ),
            }
        }
    }

    /// Delivers what is due, then waits for the store's outbox signal (or the idle tick)
    /// and does it again, until shutdown; the post in flight is finished first.
    pub(crate) async fn run(self, mut shutdown: Shutdown) {
        // A restart is when a fixed token, renderer or permission is most likely: every
        // parked entry gets one more try (held platforms and channels still hold theirs).
        match self.store.retry_now(|e| e.parked.is_some()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(entries = n, "retrying parked deliveries after the restart"),
            Err(e) => tracing::error!(error = %e, "cannot read the outbox"),
        }
        let signal = self.store.outbox_signal();
        loop {
            self.pass().deliver_due(&shutdown).await;
            if shutdown.is_triggered() {
                break;
            }
            tokio::select! {
                _ = signal.notified() => {}
                _ = tokio::time::sleep(IDLE_TICK) => {}
                _ = shutdown.wait() => break,
            }
        }
        tracing::debug!("relay stopped");
    }
}

/// One pass over the outbox with no earlier platform state and the system clock
/// (`digest --now` without a daemon, tests).
pub async fn deliver_due(
    store: &Store,
    platforms: &Platforms,
    metrics: &Metrics,
    shutdown: &Shutdown,
) {
    Pass {
        store,
        platforms,
        metrics,
        health: &DeliveryHealth::default(),
        clock: Clock::System,
    }
    .deliver_due(shutdown)
    .await
}

/// What one pass over the outbox works with, borrowed from the `Relay` (or from a one-off
/// caller), so the steps of a delivery need no long argument lists.
struct Pass<'a> {
    store: &'a Store,
    platforms: &'a Platforms,
    metrics: &'a Metrics,
    health: &'a DeliveryHealth,
    clock: Clock,
}

/// Outbox entries the relay reads at once.
const PAGE: usize = 256;

impl Pass<'_> {
    /// Delivers every entry that is due, oldest first, except where its platform or channel
    /// is held. Stops between entries on shutdown, so the post in flight is finished and
    /// recorded.
    async fn deliver_due(&self, shutdown: &Shutdown) {
        for p in self.platforms.configured() {
            if self.health.probe_due(p.name()) {
                self.probe(p.as_ref()).await;
            }
        }
        // A page at a time (a backlog after an outage can be large); entries queued during
        // the pass are reached by later pages.
        let mut after = None;
        loop {
            let page = match self.store.outbox_page(after, None, PAGE).await {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the outbox");
                    return;
                }
            };
            let full = page.len() == PAGE;
            after = page.last().map(|(k, _)| *k);
            let now = self.clock.now();
            for (key, entry) in page {
                if shutdown.is_triggered() {
                    return;
                }
                if entry.not_before.is_some_and(|t| t > now) {
                    continue;
                }
                let platform = self.platforms.for_target(&entry.target).clone();
                let name = platform.name();
                if self.health.holds(name, &entry.target) {
                    continue;
                }
                // Several replicas read one outbox on PostgreSQL: deliver only what this one
                // claimed, as it is stored now (another replica may have marked it in flight).
                let entry = match self.store.claim(key, entry, now).await {
                    Ok(Some(claimed)) => self.claimed(key, claimed),
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot claim an outbox entry");
                        return;
                    }
                };
                match self.deliver(platform.as_ref(), key, &entry).await {
                    Ok(()) => {
                        let cleared = self.health.succeeded(name, Some(&entry.target));
                        self.release(name, &entry.target, cleared).await;
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
                        self.gone(name, key, &entry, &reason).await
                    }
                    Err(DeliveryError::Store(e @ StoreError::ClaimLost { .. })) => {
                        // Its new holder delivers it; recording anything here would undo that.
                        tracing::info!(alert = %entry.alert_id, target = %entry.target, reason = %e, "left an outbox entry to the replica that took it over")
                    }
                    Err(e) => self.failed(name, key, &entry, e).await,
                }
            }
            if !full {
                return;
            }
        }
    }

    /// Counts a claim taken (none on sled) and a takeover from a replica whose claim lapsed.
    fn claimed(&self, key: OutboxKey, claimed: Claimed) -> OutboxEntry {
        if claimed.claimed {
            Metrics::add(&self.metrics.outbox_claims_total, 1);
        }
        if let Some(from) = &claimed.taken_over_from {
            Metrics::add(&self.metrics.outbox_claims_taken_over_total, 1);
            tracing::info!(seq = key.seq(), alert = %claimed.entry.alert_id, target = %claimed.entry.target, from = %from, "took over an outbox entry whose replica's claim lapsed");
        }
        claimed.entry
    }

    /// The alert's message was deleted in the channel (by a person: the bot never deletes), so
    /// its state line cannot be edited and its thread cannot take a reply. Retrying cannot help
    /// and the deletion was someone's choice: the entry ends with a warning instead of staying
    /// parked (and `/healthz` degraded) for good. A thread note is not re-posted into the channel
    /// either, where it would bring back, without its context, what a person removed; the alert
    /// and its history stay on the desk (`/desk show ID`).
    async fn gone(
        &self,
        platform: &'static str,
        key: OutboxKey,
        entry: &OutboxEntry,
        reason: &str,
    ) {
        self.metrics.delivery_failure(platform, "refused_message");
        let what = match entry.action {
            OutboxAction::UpdateAlert => "state change",
            _ => "thread note",
        };
        tracing::warn!(alert = %entry.alert_id, target = %entry.target, reason, "the alert's message is gone from {} (deleted?); this {what} is not shown there. The alert stays on the desk: /desk show {}", entry.target, entry.alert_id.0);
        if let Err(e) = self.store.finish(key).await {
            tracing::error!(error = %e, "could not record a delivery failure");
        }
    }

    /// Asks a refused platform whether it accepts the bot again (its credential check), so a
    /// platform with nothing to deliver recovers too.
    async fn probe(&self, p: &dyn ChatPlatform) {
        let (store, metrics, health) = (self.store, self.metrics, self.health);
        match tokio::time::timeout(CALL_TIMEOUT, p.verify()).await {
            Ok(Ok(_)) => {
                let cleared = health.credentials_accepted(p.name());
                tracing::info!(platform = p.name(), "the platform accepts the bot again");
                if cleared.platform {
                    if let Err(e) = store
                        .retry_now(|e| e.target.platform() == p.name() && !content_refused(e))
                        .await
                    {
                        tracing::error!(error = %e, "cannot read the outbox");
                    }
                }
            }
            Ok(Err(e)) => {
                metrics.delivery_failure(p.name(), failure_kind(&e));
                match &e {
                    ChatError::Refused { .. } => {
                        health.note_refusal(p.name(), None, &e, self.clock.now())
                    }
                    ChatError::RateLimited { retry_after, .. } => {
                        health.rate_limited(p.name(), BACKOFF.retry_after(*retry_after))
                    }
                    _ => {
                        health.unavailable(p.name(), &e.to_string(), self.clock.now());
                    }
                }
            }
            Err(_) => {
                health.unavailable(p.name(), "credential check timed out", self.clock.now());
            }
        }
    }

    /// After a success cleared a platform's or channel's trouble, its held entries go now
    /// instead of at their backoff time (content refusals wait for a restart).
    async fn release(&self, name: &str, target: &Target, cleared: Cleared) {
        let (store, platforms) = (self.store, self.platforms);
        if cleared == Cleared::default() {
            return;
        }
        let released = store.retry_now(|e| {
            platforms.for_target(&e.target).name() == name
                && (cleared.platform || &e.target == target)
                && !content_refused(e)
        });
        match released.await {
            Ok(n) => tracing::info!(
                platform = name,
                target = %target,
                released = n,
                "deliveries resumed"
            ),
            Err(e) => tracing::error!(error = %e, "cannot read the outbox"),
        }
    }

    /// Records a failed delivery: the entry's next try, and what it says about its platform.
    async fn failed(
        &self,
        platform: &'static str,
        key: OutboxKey,
        entry: &OutboxEntry,
        e: DeliveryError,
    ) {
        let (store, metrics, health) = (self.store, self.metrics, self.health);
        Metrics::add(&metrics.post_errors_total, 1);
        let now = self.clock.now();
        let attempts = entry.attempts + 1;
        let error = e.to_string();
        let result = match &e {
            DeliveryError::Chat(ChatError::RateLimited { retry_after, .. }) => {
                // Not the entry's fault: no attempt counted; the whole platform waits.
                metrics.delivery_failure(platform, "rate_limited");
                let wait = BACKOFF.retry_after(*retry_after);
                health.rate_limited(platform, wait);
                tracing::info!(
                    platform,
                    retry_in_secs = wait.as_secs_f64(),
                    "rate limited; holding every delivery to {platform} as asked"
                );
                store
                    .record_failure(key, entry.attempts, &error, now + chrono_duration(wait))
                    .await
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
                        health.note_refusal(platform, Some(&entry.target), c, now);
                        None
                    }
                };
                store.park(key, attempts, &error, &parked, retry).await
            }
            DeliveryError::Chat(c) => {
                let wait = BACKOFF.delay(attempts);
                metrics.delivery_failure(platform, failure_kind(c));
                if matches!(c, ChatError::Network { .. }) {
                    health.unavailable(platform, &error, now);
                }
                tracing::warn!(alert = %entry.alert_id, target = %entry.target, attempts, retry_in_secs = wait.as_secs(), error = %e, "could not deliver; will retry");
                store
                    .record_failure(key, attempts, &error, now + chrono_duration(wait))
                    .await
            }
            DeliveryError::Timeout { .. } => {
                let wait = BACKOFF.delay(attempts);
                metrics.delivery_failure(platform, "unavailable");
                health.unavailable(platform, &error, now);
                tracing::warn!(alert = %entry.alert_id, target = %entry.target, attempts, retry_in_secs = wait.as_secs(), error = %e, "could not deliver; will retry");
                store
                    .record_failure(key, attempts, &error, now + chrono_duration(wait))
                    .await
            }
            DeliveryError::Store(_) | DeliveryError::Missing(_) => {
                let wait = BACKOFF.delay(attempts);
                tracing::error!(alert = %entry.alert_id, target = %entry.target, attempts, retry_in_secs = wait.as_secs(), error = %e, "could not deliver; will retry");
                store
                    .record_failure(key, attempts, &error, now + chrono_duration(wait))
                    .await
            }
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "could not record a delivery failure");
        }
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

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::seconds(300))
}
