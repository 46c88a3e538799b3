//! The outbox relay: delivers each stored outbox entry to its chat platform exactly once.
//! Before calling the platform it marks the entry in flight (flushed); after a crash, an
//! in-flight entry is first looked up on the platform and only posted if it is not there.
//! It decides nothing about what to post; the intake and the desk write the outbox.

use crate::chat::{AlertView, ChatError, ChatPlatform, Posted};
use crate::metrics::Metrics;
use crate::model::{MessageRef, Target};
use crate::shutdown::Shutdown;
use crate::store::{OutboxAction, OutboxEntry, OutboxKey, Store};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// One platform call may take this long before it counts as failed (and in flight).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait between two attempts at one entry.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How often the relay looks at the outbox when nothing wakes it.
const IDLE_TICK: Duration = Duration::from_secs(1);

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

pub async fn run(
    store: Store,
    platforms: Platforms,
    wake: Arc<Notify>,
    metrics: Arc<Metrics>,
    mut shutdown: Shutdown,
) {
    loop {
        deliver_due(&store, &platforms, &metrics, &shutdown).await;
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

/// Delivers every entry that is due, oldest first. Stops between entries on shutdown, so
/// the post in flight is finished and recorded.
pub async fn deliver_due(
    store: &Store,
    platforms: &Platforms,
    metrics: &Metrics,
    shutdown: &Shutdown,
) {
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
        match deliver(store, platform.as_ref(), key, &entry, metrics).await {
            Ok(()) => {}
            Err(e) => {
                Metrics::add(&metrics.post_errors_total, 1);
                let wait = match &e {
                    DeliveryError::Chat(ChatError::RateLimited { retry_after, .. }) => *retry_after,
                    _ => backoff(entry.attempts),
                };
                tracing::warn!(
                    alert = %entry.alert_id,
                    target = %entry.target,
                    attempts = entry.attempts,
                    retry_in_secs = wait.as_secs(),
                    error = %e,
                    "could not deliver alert; will retry"
                );
                let next = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
                if let Err(e) = store.record_failure(key, &e.to_string(), next) {
                    tracing::error!(error = %e, "could not record a delivery failure");
                }
            }
        }
    }
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

/// 2, 4, 8 … seconds, capped at five minutes, with up to 20 % jitter.
fn backoff(attempts: u32) -> Duration {
    let base = Duration::from_secs(1u64 << attempts.clamp(1, 16)).min(MAX_BACKOFF);
    base + base.mul_f64(fastrand::f64() * 0.2)
}

/// When the oldest undelivered entry was created, for `/healthz`.
pub fn oldest_pending(store: &Store) -> Option<DateTime<Utc>> {
    store
        .outbox()
        .ok()?
        .into_iter()
        .map(|(_, e)| e.created_at)
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        assert!(backoff(1) >= Duration::from_secs(2) && backoff(1) < Duration::from_secs(3));
        assert!(backoff(3) >= Duration::from_secs(8));
        assert!(backoff(30) <= MAX_BACKOFF.mul_f64(1.2));
    }
}
