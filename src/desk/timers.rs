//! The timer loop: fires the desk's durable timers (escalation, reminders, snooze ends) when
//! they are due. Timers live in the store, so they survive restarts; a state change cancels
//! the timer it makes moot in the same transaction.

use super::Desk;
use crate::clock::Clock;
use crate::model::TimerKind;
use crate::shutdown::Shutdown;
use crate::store::{Store, ThreadPrune};
use std::time::Duration;

/// How often due timers are looked for; escalation minutes do not need finer.
pub(crate) const TICK: Duration = Duration::from_secs(5);

/// Request ids (for retry/replay dedup) are kept this long.
const REQUEST_ID_RETENTION: chrono::Duration = chrono::Duration::days(1);
/// Rule hits feed digests (two periods of at most a week) and the spike baseline (14 days
/// by default); older ones are dropped.
const RULE_HIT_RETENTION: chrono::Duration = chrono::Duration::days(35);

/// The timer task: fires due timers every `TICK` and prunes old request ids and rule hits
/// hourly, until shutdown.
pub struct Timers {
    desk: Desk,
    store: Store,
    clock: Clock,
}

impl Timers {
    pub fn new(desk: Desk, store: Store, clock: Clock) -> Timers {
        Timers { desk, store, clock }
    }

    pub async fn run(self, mut shutdown: Shutdown) {
        let Timers { desk, store, clock } = self;
        let mut last_prune = None;
        let mut threads = ThreadPrune::new(THREAD_MARKS_PER_PRUNE);
        loop {
            fire_due(&desk, &store, &clock).await;
            let now = clock.now();
            if last_prune.is_none_or(|t| now - t > chrono::Duration::hours(1)) {
                prune(&store, now, &mut threads).await;
                last_prune = Some(now);
            }
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {}
                _ = shutdown.wait() => break,
            }
        }
        tracing::debug!("timers stopped");
    }
}

/// How many thread marks one hourly prune reads on sled: 10,000 is about 1,000 of sled's
/// pages through its cache, and an alert sets one or two marks, so a desk taking up to
/// about 800,000 alerts a week still drops every mark within a week of its expiry.
const THREAD_MARKS_PER_PRUNE: usize = 10_000;

/// Drops request ids, rule hits and thread marks older than their retention (the thread
/// marks a part at a time, see `THREAD_MARKS_PER_PRUNE`).
async fn prune(store: &Store, now: chrono::DateTime<chrono::Utc>, threads: &mut ThreadPrune) {
    match store.prune_requests(now - REQUEST_ID_RETENTION).await {
        Ok(n) if n > 0 => tracing::debug!(removed = n, "pruned old request ids"),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not prune request ids"),
    }
    match store.prune_rule_hits(now - RULE_HIT_RETENTION).await {
        Ok(n) if n > 0 => tracing::debug!(removed = n, "pruned old rule hits"),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not prune rule hits"),
    }
    let window = chrono::Duration::days(crate::store::REPEAT_WINDOW_DAYS);
    match store.prune_thread_marks(now - window, threads).await {
        Ok(n) if n > 0 => tracing::debug!(removed = n, "pruned old thread marks"),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not prune thread marks"),
    }
    crate::heap::release_free_off_runtime().await;
}

/// At most this many timers make one round: a round holds each of its alerts in memory and
/// reads them through sled's cache (98,109 unclaimed alerts escalating in one round took the
/// daemon from 110 to 233 MiB; rounds of 5,000 swung it by 25 MiB). The soonest due go
/// first; the rest are still due at the next tick, 5 s later, and make the next round.
pub const ROUND_MAX: usize = 2_000;

/// Fires every timer due now as one round (`Desk::fire_round`), with, when an escalation is
/// due, every escalation due within the round window (`Desk::round_window`), at most
/// `ROUND_MAX` of them; returns how many fired (or were dropped as moot).
pub async fn fire_due(desk: &Desk, store: &Store, clock: &Clock) -> usize {
    fire_due_at_most(desk, store, clock, ROUND_MAX).await
}

/// `fire_due` with a round of at most `max` timers, the soonest due.
pub async fn fire_due_at_most(desk: &Desk, store: &Store, clock: &Clock, max: usize) -> usize {
    let now = clock.now();
    let soon = match store.due_timers(now + desk.round_window()).await {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "cannot read timers");
            return 0;
        }
    };
    let escalating = soon
        .iter()
        .any(|t| t.kind == TimerKind::Escalate && t.due <= now);
    // `due_timers` gives them soonest first.
    let due: Vec<_> = soon
        .into_iter()
        .filter(|t| t.due <= now || (escalating && t.kind == TimerKind::Escalate))
        .take(max)
        .collect();
    if due.is_empty() {
        return 0;
    }
    if let Err(e) = desk.fire_round(&due, now).await {
        tracing::error!(timers = due.len(), error = %e, "timer round failed; will retry");
    }
    if due.len() > super::ROUND_CHUNK {
        // A round this big read every one of its alerts: give that memory back.
        crate::heap::release_free_off_runtime().await;
    }
    due.len()
}
