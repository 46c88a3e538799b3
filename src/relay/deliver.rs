//! One delivery: posts, edits or notes an outbox entry on its platform at most once (an
//! attempt that may have reached the platform is looked up before posting again), and
//! records the result in the store. It does not decide what happens after a failure; the
//! relay's pass does.

use super::{DeliveryError, Pass, CALL_TIMEOUT};
use crate::chat::{AlertView, ChatError, ChatPlatform, Posted};
use crate::metrics::Metrics;
use crate::model::MessageRef;
use crate::store::{OutboxAction, OutboxEntry, OutboxKey};

impl Pass<'_> {
    /// Delivers one entry; on success it is finished (or recorded) in the store.
    pub(super) async fn deliver(
        &self,
        platform: &dyn ChatPlatform,
        key: OutboxKey,
        entry: &OutboxEntry,
    ) -> Result<(), DeliveryError> {
        let store = self.store;
        match &entry.action {
            OutboxAction::PostAlert => self.post_alert(platform, key, entry).await,
            OutboxAction::UpdateAlert => {
                let Some(msg) = store.message_ref(entry.alert_id, &entry.target).await? else {
                    // Not posted yet: the pending post will show the current state anyway.
                    store.finish(key).await?;
                    return Ok(());
                };
                let view = self.current_view(entry).await?;
                timed(platform, platform.update_alert(&msg, &view)).await?;
                store.finish(key).await?;
                Ok(())
            }
            OutboxAction::ThreadNote(note) => {
                let Some(msg) = store.message_ref(entry.alert_id, &entry.target).await? else {
                    if self.root_pending(key, entry).await? {
                        store
                            .defer(key, self.clock.now() + chrono::Duration::seconds(2))
                            .await?;
                    } else {
                        tracing::warn!(alert = %entry.alert_id, target = %entry.target, "thread note for an alert that was never posted there; dropped");
                        store.finish(key).await?;
                    }
                    return Ok(());
                };
                self.post_note(
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
                store.mark_in_flight(key, self.clock.now()).await?;
                timed(platform, platform.post_digest(channel, post, &delivery)).await?;
                store.finish(key).await?;
                Metrics::add(&self.metrics.digests_posted_total, 1);
                tracing::info!(target = %entry.target, "digest posted");
                Ok(())
            }
            OutboxAction::ChannelNote(note) => {
                self.post_note(platform, key, entry, entry.target.channel(), None, note)
                    .await
            }
        }
    }

    /// Posts a note at most once: an attempt that may have reached the platform is looked up
    /// by its delivery id before posting again.
    async fn post_note(
        &self,
        platform: &dyn ChatPlatform,
        key: OutboxKey,
        entry: &OutboxEntry,
        channel: &str,
        thread: Option<&str>,
        note: &crate::model::Note,
    ) -> Result<(), DeliveryError> {
        let store = self.store;
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
        store.mark_in_flight(key, self.clock.now()).await?;
        timed(
            platform,
            platform.post_note(channel, thread, note, &delivery),
        )
        .await?;
        store.finish(key).await?;
        Ok(())
    }

    /// Whether the alert's root post to this target is still waiting in the outbox. Only
    /// entries queued before the note are read: a root post is always queued before the
    /// notes of its thread (with the alert, or with the promotion whose note follows it),
    /// and the entries still ahead of a note are few once the relay has worked through them.
    async fn root_pending(
        &self,
        key: OutboxKey,
        entry: &OutboxEntry,
    ) -> Result<bool, DeliveryError> {
        let mut after = None;
        loop {
            let page = self
                .store
                .outbox_page(after, Some(key), super::PAGE)
                .await?;
            if page.iter().any(|(_, e)| {
                e.alert_id == entry.alert_id
                    && e.target == entry.target
                    && e.action == OutboxAction::PostAlert
            }) {
                return Ok(true);
            }
            if page.len() < super::PAGE {
                return Ok(false);
            }
            after = page.last().map(|(k, _)| *k);
        }
    }

    /// The alert as it is now, for posting or editing.
    async fn current_view(&self, entry: &OutboxEntry) -> Result<AlertView, DeliveryError> {
        let alert = self
            .store
            .alert(entry.alert_id)
            .await?
            .ok_or_else(|| DeliveryError::Missing(entry.alert_id.to_string()))?;
        let mention = self
            .store
            .alert_mention(&alert)
            .await?
            .ok_or_else(|| DeliveryError::Missing(alert.mention_key.clone()))?;
        Ok(AlertView::new(&alert, &mention.mention))
    }

    /// Posts an alert's root message at most once and records its message reference.
    async fn post_alert(
        &self,
        platform: &dyn ChatPlatform,
        key: OutboxKey,
        entry: &OutboxEntry,
    ) -> Result<(), DeliveryError> {
        let store = self.store;
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
                self.record(platform, key, entry, posted).await?;
                Metrics::add(&self.metrics.recovered_posts_total, 1);
                return Ok(());
            }
        }
        let view = self.current_view(entry).await?;
        let entry = store.mark_in_flight(key, self.clock.now()).await?;
        let posted = timed(platform, platform.post_alert(channel, &view)).await?;
        self.record(platform, key, &entry, posted).await?;
        Metrics::add(&self.metrics.alerts_posted_total, 1);
        tracing::info!(alert = %entry.alert_id, target = %entry.target, "alert posted");
        Ok(())
    }

    async fn record(
        &self,
        platform: &dyn ChatPlatform,
        key: OutboxKey,
        entry: &OutboxEntry,
        posted: Posted,
    ) -> Result<(), DeliveryError> {
        let permalink = platform.permalink(&posted);
        let msg = MessageRef {
            target: entry.target.clone(),
            channel_id: posted.channel_id,
            message_id: posted.message_id,
            permalink,
        };
        self.store.complete(key, entry, &msg).await?;
        Ok(())
    }
}

/// A platform call bounded by `CALL_TIMEOUT`.
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
