//! The one poll loop every polled source runs in (its own task per source), and the per-source
//! health registry that `/healthz` and `/metrics` read.
//! It does not persist state or filter mentions: it hands each poll's result to the intake.

use super::lease::{Hold, LeaseGate};
use super::{Quota, Source, SourceError, SourceState};
use crate::model::Mention;
use crate::retry::Backoff;
use crate::shutdown::Shutdown;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Longest wait between polls of a failing source (unless its normal interval is longer).
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// A Retry-After beyond this is treated as a server mistake, not as "stop polling for a week".
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// What one successful poll produced; the intake stores `mentions` and `state` together so a
/// restart resumes after the last committed poll.
#[derive(Debug, Clone, PartialEq)]
pub struct PollOutcome {
    pub source: String,
    pub mentions: Vec<Mention>,
    pub state: SourceState,
}

/// A poll's outcome on its way to the intake, with the answer whether it was stored: the
/// poller moves on to the new state only once it was, so after a failed write the next poll
/// fetches the same items again instead of resuming past them.
#[derive(Debug)]
pub struct Polled {
    pub outcome: PollOutcome,
    pub stored: tokio::sync::oneshot::Sender<bool>,
}

/// How one source is doing, as shown on `/healthz` and `/metrics`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceStatus {
    pub name: String,
    pub kind: String,
    /// True while the last poll succeeded (or none has run yet).
    pub healthy: bool,
    /// True when the last poll succeeded only in part (e.g. one Mastodon instance of three
    /// failed): its mentions were delivered, and `last_error` says what was missing.
    pub degraded: bool,
    pub(crate) last_success: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub consecutive_errors: u32,
    pub polls_total: u64,
    /// Failed polls plus partial failures, so a degraded source shows in
    /// `mentiondesk_source_errors_total` too.
    pub errors_total: u64,
    /// Polls that succeeded only in part (a subset of `polls_total`).
    pub partial_total: u64,
    pub(crate) mentions_total: u64,
    /// Seconds until the next poll is due, when one is scheduled.
    pub(crate) next_poll_in_secs: Option<u64>,
    /// The service's request budget as the source last saw it (only sources that know one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<Quota>,
    /// Requests refused before they proved who sent them (a `webhook` source's bad
    /// signatures): counted and shown, but they never change `healthy`, or anyone who knows
    /// a source's name could make `/healthz` report a problem.
    #[serde(skip_serializing_if = "is_zero")]
    pub refused_total: u64,
    /// Why the last such request was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_refused: Option<String>,
    /// With several replicas on PostgreSQL: the replica polling this source, as this one last
    /// saw (its own name while it holds the lease). A source another replica holds is not
    /// polled here and is not unhealthy here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_by: Option<String>,
    /// Whether this replica holds the source's lease (`held_by` shows it).
    #[serde(skip)]
    pub(crate) lease_held: bool,
    /// Times this replica took the source's lease (PostgreSQL).
    #[serde(skip_serializing_if = "is_zero")]
    pub lease_acquired_total: u64,
    /// Times this replica lost the source's lease: taken over, or the store unreachable.
    #[serde(skip_serializing_if = "is_zero")]
    pub lease_lost_total: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug)]
struct Entry {
    status: SourceStatus,
    next_poll_at: Option<Instant>,
}

/// Registry of every source's status. Cheap to clone; every clone sees the same data.
#[derive(Debug, Clone, Default)]
pub struct Health {
    inner: Arc<Mutex<BTreeMap<String, Entry>>>,
    /// Why the last try for a source lease could not reach the store, until one does.
    lease_error: Arc<Mutex<Option<String>>>,
}

impl Health {
    pub fn new() -> Health {
        Health::default()
    }

    /// Adds a source (healthy, no polls yet). Registering again keeps its counters.
    pub(crate) fn register(&self, name: &str, kind: &str) {
        self.with(name, kind, |_| {});
    }

    /// Every source's status, sorted by name.
    pub(crate) fn snapshot(&self) -> Vec<SourceStatus> {
        let now = Instant::now();
        let map = self.lock();
        map.values()
            .map(|entry| {
                let mut status = entry.status.clone();
                status.next_poll_in_secs = entry
                    .next_poll_at
                    .map(|at| at.saturating_duration_since(now).as_secs());
                status
            })
            .collect()
    }

    /// One source's status, if registered.
    pub fn get(&self, name: &str) -> Option<SourceStatus> {
        self.snapshot().into_iter().find(|s| s.name == name)
    }

    /// Records a successful poll; resets the consecutive error count. Public so sources that
    /// stream instead of polling can report too.
    pub(crate) fn record_success(&self, name: &str, kind: &str, mentions: usize) {
        self.with(name, kind, |s| {
            s.healthy = true;
            s.degraded = false;
            s.last_success = Some(Utc::now());
            s.consecutive_errors = 0;
            s.polls_total += 1;
            s.mentions_total += mentions as u64;
        });
    }

    /// Records a poll that delivered its mentions but hit a problem it worked around (some
    /// endpoints failed). Counted as a success (the source is up, nothing backs off) and as an
    /// error (so it is not only in the log): `degraded` stays set until a clean poll.
    pub(crate) fn record_partial(&self, name: &str, kind: &str, mentions: usize, warning: &str) {
        self.record_success(name, kind, mentions);
        self.with(name, kind, |s| {
            s.degraded = true;
            s.last_error = Some(warning.to_string());
            s.errors_total += 1;
            s.partial_total += 1;
        });
    }

    /// Records a failed poll with its (already secret-free) message.
    pub(crate) fn record_error(&self, name: &str, kind: &str, error: &str) {
        self.with(name, kind, |s| {
            s.healthy = false;
            s.degraded = false;
            s.last_error = Some(error.to_string());
            s.consecutive_errors = s.consecutive_errors.saturating_add(1);
            s.polls_total += 1;
            s.errors_total += 1;
        });
    }

    /// Records a request refused before it was authenticated; the source's health stays.
    pub(crate) fn record_refused(&self, name: &str, kind: &str, reason: &str) {
        self.with(name, kind, |s| {
            s.refused_total += 1;
            s.last_refused = Some(reason.to_string());
        });
    }

    /// This replica took (or took back) the source's lease: it polls the source now.
    pub(crate) fn record_lease_taken(&self, name: &str, kind: &str, replica: &str) {
        self.with(name, kind, |s| {
            s.lease_held = true;
            s.held_by = Some(replica.to_string());
            s.lease_acquired_total += 1;
        });
        self.set_lease_error(None);
    }

    /// A renewal went through: the store answers.
    pub(crate) fn record_lease_renewed(&self) {
        self.set_lease_error(None);
    }

    /// Another replica holds the source (`holder`, when known): this one does not poll it,
    /// and its own earlier errors no longer say anything about the source.
    pub(crate) fn record_lease_elsewhere(&self, name: &str, kind: &str, holder: Option<&str>) {
        self.with(name, kind, |s| {
            if std::mem::take(&mut s.lease_held) {
                s.lease_lost_total += 1;
            }
            s.held_by = holder.map(str::to_string);
            s.healthy = true;
            s.degraded = false;
            s.consecutive_errors = 0;
        });
        self.set_next_poll(name, None);
        self.set_lease_error(None);
    }

    /// The store could not be asked for the source's lease: this replica stops polling it
    /// (its lease lapses) and `/healthz` reports the replica unhealthy with `error`.
    pub(crate) fn record_lease_error(&self, name: &str, kind: &str, error: &str) {
        self.with(name, kind, |s| {
            if std::mem::take(&mut s.lease_held) {
                s.lease_lost_total += 1;
            }
            s.held_by = None;
        });
        self.set_next_poll(name, None);
        self.set_lease_error(Some(error.to_string()));
    }

    /// Why this replica cannot reach the store for its source leases, while it cannot.
    pub fn lease_error(&self) -> Option<String> {
        self.lease_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_lease_error(&self, error: Option<String>) {
        *self.lease_error.lock().unwrap_or_else(|e| e.into_inner()) = error;
    }

    /// Records what the source last saw of its service's request budget.
    pub(crate) fn set_quota(&self, name: &str, kind: &str, quota: Option<Quota>) {
        self.with(name, kind, |s| s.quota = quota);
    }

    fn set_next_poll(&self, name: &str, at: Option<Instant>) {
        if let Some(entry) = self.lock().get_mut(name) {
            entry.next_poll_at = at;
        }
    }

    fn with(&self, name: &str, kind: &str, f: impl FnOnce(&mut SourceStatus)) {
        let mut map = self.lock();
        let entry = map.entry(name.to_string()).or_insert_with(|| Entry {
            status: SourceStatus {
                name: name.to_string(),
                kind: kind.to_string(),
                healthy: true,
                degraded: false,
                last_success: None,
                last_error: None,
                consecutive_errors: 0,
                polls_total: 0,
                errors_total: 0,
                partial_total: 0,
                mentions_total: 0,
                next_poll_in_secs: None,
                quota: None,
                refused_total: 0,
                last_refused: None,
                held_by: None,
                lease_held: false,
                lease_acquired_total: 0,
                lease_lost_total: 0,
            },
            next_poll_at: None,
        });
        f(&mut entry.status);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        // A panic while holding the lock leaves plain counters behind; they are still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Polls `source` now and then every `every` (±10 % jitter, so sources do not poll in step),
/// each poll bounded by `timeout`. Failures back off exponentially (`every × 2^errors`, capped
/// at `MAX_BACKOFF` or the source's `max_backoff`, never shorter than the server's
/// Retry-After). Streaming sources use the same loop: their connection lives in a task the
/// source owns, `poll` drains what it buffered, and `Source::ready` ends the wait early
/// when something arrived, so a streamed mention is handed on within milliseconds. Sends a `PollOutcome` after
/// each successful poll that found mentions or moved the state, and keeps the new state
/// only once the intake answers that it was stored.
///
/// With a lease gate (several replicas on PostgreSQL) the loop polls only while it holds the
/// source's lease: it takes or renews it before a poll when the last renewal is a third of
/// the lease period old, stores the next poll time with it after every poll, renews every
/// third of the period while it waits, and retries that often while another replica holds
/// the source. Taking a source (over) resumes from the stored state and schedule; losing it
/// (taken over, or the store unreachable) stops polling at once and drops a stream's
/// connection. At shutdown the lease is released.
pub struct Poller {
    source: Box<dyn Source>,
    every: Duration,
    timeout: Duration,
    state: SourceState,
    out: mpsc::Sender<Polled>,
    health: Health,
    lease: Option<Arc<dyn LeaseGate>>,
}

/// This loop's hold on its source's lease.
struct Keeper {
    gate: Arc<dyn LeaseGate>,
    held: bool,
    /// When the lease is renewed next (a third of the period after the last renewal).
    renew_at: Instant,
}

/// What one try for the lease found, for the loop.
enum Kept {
    /// Held before and still.
    Holding,
    /// Taken just now: resume from the stored state and schedule.
    Taken {
        state: SourceState,
        next_poll_in: Option<Duration>,
    },
    /// Not held (another replica, or the store unreachable): do not poll.
    NotHeld,
}

impl Keeper {
    fn third(&self) -> Duration {
        self.gate.period() / 3
    }

    /// Takes or renews the lease (storing `next_poll_in` when given) and records what it
    /// found in `health`. A store that does not answer within a third of the lease period
    /// counts as unreachable: the lease may lapse meanwhile.
    async fn keep(
        &mut self,
        name: &str,
        kind: &str,
        health: &Health,
        next_poll_in: Option<Duration>,
    ) -> Kept {
        let asked = Instant::now();
        let third = self.third();
        let answer = tokio::time::timeout(third, self.gate.hold(name, next_poll_in))
            .await
            .unwrap_or_else(|_| {
                Err(super::lease::LeaseError(format!(
                    "the store did not answer within {third:?}"
                )))
            });
        match answer {
            Ok(Hold::Held {
                state,
                next_poll_in,
            }) => {
                self.renew_at = asked + third;
                if std::mem::replace(&mut self.held, true) {
                    health.record_lease_renewed();
                    return Kept::Holding;
                }
                health.record_lease_taken(name, kind, self.gate.replica());
                tracing::info!(source = %name, replica = %self.gate.replica(), next_poll_in_secs = next_poll_in.map(|d| d.as_secs_f64()), "took the source's lease; polling it from its stored state");
                Kept::Taken {
                    state,
                    next_poll_in,
                }
            }
            Ok(Hold::Elsewhere { holder }) => {
                if std::mem::take(&mut self.held) {
                    tracing::warn!(source = %name, holder = holder.as_deref().unwrap_or("?"), "another replica took the source's lease over; stopped polling it");
                }
                health.record_lease_elsewhere(name, kind, holder.as_deref());
                Kept::NotHeld
            }
            Err(e) => {
                let message = format!(
                    "cannot reach the store for source leases, so this replica polls nothing until it can (its leases lapse and other replicas take the sources): {e}"
                );
                if std::mem::take(&mut self.held) {
                    tracing::error!(source = %name, error = %e, "could not renew the source's lease; stopped polling it");
                } else {
                    tracing::warn!(source = %name, error = %e, "could not try for the source's lease");
                }
                health.record_lease_error(name, kind, &message);
                Kept::NotHeld
            }
        }
    }
}

impl Poller {
    /// A poll loop for `source`, resuming from `state` (the last committed one), sending to
    /// `out` and reporting to `health`.
    pub fn new(
        source: Box<dyn Source>,
        every: Duration,
        timeout: Duration,
        state: SourceState,
        out: mpsc::Sender<Polled>,
        health: Health,
    ) -> Poller {
        Poller {
            source,
            every,
            timeout,
            state,
            out,
            health,
            lease: None,
        }
    }

    /// Polls only while `gate` grants this replica the source's lease (`None`: always, as
    /// on sled).
    pub fn with_lease(mut self, gate: Option<Arc<dyn LeaseGate>>) -> Poller {
        self.lease = gate;
        self
    }

    /// Runs the loop. Returns when `shutdown` fires (also mid-poll and mid-wait) or when the
    /// receiver of `out` is gone.
    pub async fn run(self, mut shutdown: Shutdown) {
        let Poller {
            mut source,
            every,
            timeout,
            mut state,
            out,
            health,
            lease,
        } = self;
        let name = source.name().to_string();
        let kind = source.kind().as_str();
        health.register(&name, kind);
        let mut errors: u32 = 0;
        let mut wake_early = true;
        let mut keeper = lease.map(|gate| Keeper {
            gate,
            held: false,
            renew_at: Instant::now(),
        });
        // When the next poll is due, and (with a lease) the delay to store with the next renewal.
        let mut due = Instant::now();
        let mut store_next: Option<Duration> = None;
        tracing::info!(source = %name, kind, every_secs = every.as_secs_f64(), "source started");

        'run: loop {
            // Wait until the poll is due (or a stream has something), holding the lease.
            loop {
                if shutdown.is_triggered() {
                    break 'run;
                }
                if let Some(k) = keeper.as_mut() {
                    if !k.held || store_next.is_some() || Instant::now() >= k.renew_at {
                        let kept = tokio::select! {
                            biased;
                            _ = shutdown.wait() => break 'run,
                            kept = k.keep(&name, kind, &health, store_next.take()) => kept,
                        };
                        match kept {
                            Kept::Holding => {}
                            Kept::Taken {
                                state: stored,
                                next_poll_in,
                            } => {
                                // Another replica may have polled it meanwhile: its state and
                                // schedule are the stored ones, not this loop's.
                                state = stored;
                                due = Instant::now() + next_poll_in.unwrap_or_default();
                                errors = 0;
                                wake_early = true;
                            }
                            Kept::NotHeld => {
                                source.disconnect();
                                let retry = k.third();
                                tokio::select! {
                                    biased;
                                    _ = shutdown.wait() => break 'run,
                                    _ = tokio::time::sleep(retry) => {}
                                }
                                continue;
                            }
                        }
                    }
                }
                let now = Instant::now();
                if now >= due {
                    break;
                }
                health.set_next_poll(&name, Some(due));
                let wake = keeper.as_ref().map_or(due, |k| due.min(k.renew_at));
                tokio::select! {
                    biased;
                    _ = shutdown.wait() => break 'run,
                    _ = tokio::time::sleep_until(wake) => {}
                    // A streaming source with data waiting is drained at once (never after a
                    // Retry-After, which is the server's call).
                    _ = source.ready(), if wake_early => break,
                }
            }
            wake_early = true;
            health.set_next_poll(&name, None);
            // Poll on a copy: a failed poll must not leave a half-updated state behind.
            let mut next_state = state.clone();
            let result = {
                let poll = tokio::time::timeout(timeout, source.poll(&mut next_state));
                tokio::pin!(poll);
                loop {
                    let renew_at = keeper.as_ref().map(|k| k.renew_at);
                    tokio::select! {
                        biased;
                        _ = shutdown.wait() => break 'run,
                        r = &mut poll => break Some(r.unwrap_or(Err(SourceError::Timeout(timeout)))),
                        // A poll may outlast the lease period: renewed meanwhile, so no
                        // other replica takes the source over while this one still polls it.
                        _ = tokio::time::sleep_until(renew_at.unwrap_or_else(Instant::now)), if renew_at.is_some() => {
                            if let Some(k) = keeper.as_mut() {
                                if let Kept::NotHeld = k.keep(&name, kind, &health, None).await {
                                    // Lost mid-poll: abandoned (the new holder polls it).
                                    break None;
                                }
                            }
                        }
                    }
                }
            };
            let Some(result) = result else {
                continue;
            };
            health.set_quota(&name, kind, source.quota());

            let delay = match result {
                Ok(mentions) => {
                    errors = 0;
                    match source.take_warning() {
                        Some(warning) => {
                            health.record_partial(&name, kind, mentions.len(), &warning);
                            tracing::warn!(source = %name, mentions = mentions.len(), warning = %warning, "polled in part");
                        }
                        None => health.record_success(&name, kind, mentions.len()),
                    }
                    tracing::debug!(source = %name, mentions = mentions.len(), "polled");
                    if !mentions.is_empty() || next_state != state {
                        let (stored_tx, stored_rx) = tokio::sync::oneshot::channel();
                        let polled = Polled {
                            outcome: PollOutcome {
                                source: name.clone(),
                                mentions,
                                state: next_state.clone(),
                            },
                            stored: stored_tx,
                        };
                        tokio::select! {
                            biased;
                            _ = shutdown.wait() => break,
                            sent = out.send(polled) => {
                                if sent.is_err() {
                                    tracing::debug!(source = %name, "intake is gone; stopping");
                                    break;
                                }
                            }
                        }
                        let mut stored_rx = stored_rx;
                        let stored = loop {
                            // Only while held: a lease lost meanwhile is not taken back here
                            // (the intake's fenced write then fails, and the loop starts over).
                            let renew_at = keeper.as_ref().filter(|k| k.held).map(|k| k.renew_at);
                            tokio::select! {
                                biased;
                                _ = shutdown.wait() => break 'run,
                                stored = &mut stored_rx => match stored {
                                    Ok(stored) => break stored,
                                    Err(_) => {
                                        tracing::debug!(source = %name, "intake is gone; stopping");
                                        break 'run;
                                    }
                                },
                                // The intake stores one poll at a time for every source, so a
                                // slow store or another source's large poll can keep this one
                                // waiting: the lease is renewed meanwhile, so no other replica
                                // takes the source over (and fetches it again) for that.
                                _ = tokio::time::sleep_until(renew_at.unwrap_or_else(Instant::now)), if renew_at.is_some() => {
                                    if let Some(k) = keeper.as_mut() {
                                        k.keep(&name, kind, &health, None).await;
                                    }
                                }
                            }
                        };
                        if stored {
                            state = next_state;
                        } else {
                            // The intake logged why. A polled source fetches the items again
                            // from the last stored state; a stream's drained buffer is not
                            // replayed until it reconnects from its stored cursor. (With a
                            // lease, the renewal below finds out whether it was lost.)
                            let message = "polled, but the store could not take the mentions (see the log); the next poll resumes from the last stored state";
                            health.record_error(&name, kind, message);
                            tracing::warn!(source = %name, "poll not stored; the next poll resumes from the last stored state");
                        }
                    }
                    jitter(every)
                }
                Err(e) => {
                    errors = errors.saturating_add(1);
                    let message = e.to_string();
                    health.record_error(&name, kind, &message);
                    let delay = backoff(every).delay_after(errors, e.retry_after()).min(
                        // A server's Retry-After always wins over a source's short cap.
                        e.retry_after()
                            .map_or(source.max_backoff(), |ra| ra.max(source.max_backoff())),
                    );
                    wake_early = e.retry_after().is_none();
                    tracing::warn!(
                        source = %name,
                        error = %message,
                        consecutive_errors = errors,
                        retry_in_secs = delay.as_secs(),
                        "poll failed"
                    );
                    delay
                }
            };
            due = Instant::now() + delay;
            if keeper.is_some() {
                store_next = Some(delay);
            }
        }
        health.set_next_poll(&name, None);
        if let Some(k) = keeper.filter(|k| k.held) {
            // Let go at once so another replica takes the source at its next try; bounded (at
            // most 2 s, whatever the lease), so an unreachable store does not hold up the
            // shutdown past a container's stop timeout (the lease then lapses).
            let wait = k.third().min(Duration::from_secs(2));
            let released = tokio::time::timeout(wait, k.gate.release(&name)).await;
            match released {
                Ok(Ok(())) => tracing::debug!(source = %name, "released the source's lease"),
                Ok(Err(e)) => {
                    tracing::warn!(source = %name, error = %e, "could not release the source's lease; it lapses")
                }
                Err(_) => {
                    tracing::warn!(source = %name, "the store did not answer the lease release in time; it lapses")
                }
            }
        }
        tracing::info!(source = %name, "source stopped");
    }
}

/// `d` scaled by a random factor in [0.9, 1.1).
fn jitter(d: Duration) -> Duration {
    d.mul_f64(0.9 + 0.2 * fastrand::f64())
}

/// The poll loop's retry schedule for a source polled every `every`: after `errors`
/// consecutive failures, `every × 2^errors` capped at `max(MAX_BACKOFF, every)` (a slow
/// source is not polled more often because it fails), ±10 % jitter, raised to the server's
/// Retry-After (up to `MAX_RETRY_AFTER`) if longer.
pub(crate) fn backoff(every: Duration) -> Backoff {
    Backoff::new(every.saturating_mul(2), MAX_BACKOFF.max(every))
        .with_jitter(0.9, 1.1)
        .with_max_retry_after(MAX_RETRY_AFTER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_then_caps_and_honours_retry_after() {
        let every = Duration::from_secs(60);
        let within = |d: Duration, want: u64| {
            let w = want as f64;
            let got = d.as_secs_f64();
            assert!(
                got >= w * 0.9 && got <= w * 1.1,
                "{got} not within 10% of {want}"
            );
        };
        let b = backoff(every);
        within(b.delay_after(1, None), 120);
        within(b.delay_after(2, None), 240);
        within(b.delay_after(3, None), 480);
        within(b.delay_after(10, None), 3600);
        within(b.delay_after(u32::MAX, None), 3600);
        assert!(b.delay_after(1, Some(Duration::from_secs(900))) >= Duration::from_secs(900));
        assert_eq!(
            b.delay_after(1, Some(Duration::from_secs(10 * 24 * 3600))),
            MAX_RETRY_AFTER
        );
        // A source polled every 2 h is not polled more often because it fails.
        assert!(
            backoff(Duration::from_secs(7200)).delay_after(3, None) >= Duration::from_secs(6480)
        );
    }

    #[test]
    fn health_snapshot_is_sorted_and_counts() {
        let health = Health::new();
        health.register("zeta", "rss");
        health.register("alpha", "file");
        health.record_error("alpha", "file", "boom");
        health.record_error("alpha", "file", "boom again");
        let snap = health.snapshot();
        assert_eq!(
            snap.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["alpha", "zeta"]
        );
        assert!(!snap[0].healthy);
        assert_eq!(snap[0].consecutive_errors, 2);
        assert_eq!(snap[0].last_error.as_deref(), Some("boom again"));
        health.record_success("alpha", "file", 3);
        let alpha = health.get("alpha").unwrap();
        assert!(alpha.healthy);
        assert_eq!(alpha.consecutive_errors, 0);
        assert_eq!(
            (alpha.polls_total, alpha.errors_total, alpha.mentions_total),
            (3, 2, 3)
        );
        let json = serde_json::to_value(&alpha).unwrap();
        assert_eq!(json["kind"], "file");
    }

    /// The loop itself, with scripted sources, mostly on tokio's paused clock.
    mod run_loop {
        use super::{Health, PollOutcome, Polled, Poller};
        use crate::model::Mention;
        use crate::shutdown;
        use crate::sources::{Source, SourceError, SourceKind, SourceState};
        use std::collections::VecDeque;
        use std::sync::{Arc, Mutex};
        use std::time::Duration;
        use tokio::sync::mpsc;
        use tokio::time::Instant;

        /// The poll loop as `app` starts it.
        fn run(
            source: Box<dyn Source>,
            every: Duration,
            timeout: Duration,
            initial: SourceState,
            out: mpsc::Sender<PollOutcome>,
            health: Health,
            stop: shutdown::Shutdown,
        ) -> impl std::future::Future<Output = ()> {
            run_answering(source, every, timeout, initial, out, health, stop, |_| true)
        }

        /// The poll loop with an intake that answers each outcome with `stored(&outcome)`,
        /// then hands it to `out`.
        #[allow(clippy::too_many_arguments)]
        fn run_answering(
            source: Box<dyn Source>,
            every: Duration,
            timeout: Duration,
            initial: SourceState,
            out: mpsc::Sender<PollOutcome>,
            health: Health,
            stop: shutdown::Shutdown,
            mut stored: impl FnMut(&PollOutcome) -> bool + Send + 'static,
        ) -> impl std::future::Future<Output = ()> {
            let (tx, mut rx) = mpsc::channel::<Polled>(1);
            tokio::spawn(async move {
                while let Some(p) = rx.recv().await {
                    let answer = stored(&p.outcome);
                    if out.send(p.outcome).await.is_err() {
                        break;
                    }
                    let _ = p.stored.send(answer);
                }
            });
            Poller::new(source, every, timeout, initial, tx, health).run(stop)
        }

        enum Step {
            Ok(usize),
            /// Succeeds with no mentions but moves the cursor.
            Moved,
            /// Succeeds with one mention and appends `+` to the cursor it was given.
            Append,
            Fail(SourceError),
            Hang,
        }

        struct Scripted {
            name: String,
            steps: VecDeque<Step>,
            polls: Arc<Mutex<Vec<Instant>>>,
        }

        fn scripted(name: &str, steps: Vec<Step>) -> (Box<dyn Source>, Arc<Mutex<Vec<Instant>>>) {
            let polls: Arc<Mutex<Vec<Instant>>> = Arc::default();
            let source = Scripted {
                name: name.to_string(),
                steps: steps.into(),
                polls: polls.clone(),
            };
            (Box::new(source), polls)
        }

        fn mention(n: usize) -> Mention {
            Mention {
                item_id: n.to_string(),
                source: "s".into(),
                source_kind: "rss".into(),
                url: None,
                title: None,
                text: format!("acme {n}"),
                author: None,
                author_reach: None,
                published: None,
                lang: None,
                rating: None,
            }
        }

        #[async_trait::async_trait]
        impl Source for Scripted {
            fn name(&self) -> &str {
                &self.name
            }
            fn kind(&self) -> SourceKind {
                SourceKind::Rss
            }
            async fn poll(&mut self, state: &mut SourceState) -> Result<Vec<Mention>, SourceError> {
                self.polls.lock().unwrap().push(Instant::now());
                match self.steps.pop_front().unwrap_or(Step::Ok(0)) {
                    Step::Ok(n) => Ok((0..n).map(mention).collect()),
                    Step::Append => {
                        let given = state.cursor.take().unwrap_or_default();
                        state.cursor = Some(format!("{given}+"));
                        Ok(vec![mention(1)])
                    }
                    Step::Moved => {
                        let n = self.polls.lock().unwrap().len();
                        state.cursor = Some(format!("c{n}"));
                        Ok(Vec::new())
                    }
                    Step::Fail(e) => {
                        // A failing poll that scribbled on the state must not leak it.
                        state.cursor = Some("garbage".into());
                        Err(e)
                    }
                    Step::Hang => std::future::pending().await,
                }
            }
            /// A budget of 100 requests, one spent per poll.
            fn quota(&self) -> Option<crate::sources::Quota> {
                Some(crate::sources::Quota {
                    unit: "requests",
                    remaining: 100 - self.polls.lock().unwrap().len() as u64,
                    limit: Some(100),
                    resets_at: None,
                })
            }
        }

        fn boom() -> SourceError {
            SourceError::Status {
                status: 500,
                retry_after: None,
            }
        }

        async fn wait_for_polls(polls: &Arc<Mutex<Vec<Instant>>>, n: usize) {
            while polls.lock().unwrap().len() < n {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }

        fn gaps(polls: &Arc<Mutex<Vec<Instant>>>) -> Vec<f64> {
            let p = polls.lock().unwrap();
            p.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()).collect()
        }

        fn near(got: f64, want: f64) -> bool {
            got >= want * 0.9 - 1.0 && got <= want * 1.1 + 1.0
        }

        #[tokio::test(start_paused = true)]
        async fn errors_back_off_exponentially_are_counted_and_reset_after_success() {
            let every = Duration::from_secs(60);
            let (source, polls) = scripted(
                "flaky",
                vec![
                    Step::Fail(boom()),
                    Step::Fail(boom()),
                    Step::Fail(boom()),
                    Step::Ok(2),
                    Step::Ok(0),
                ],
            );
            let (tx, mut rx) = mpsc::channel(8);
            let health = Health::new();
            let (trigger, stop) = shutdown::channel();
            let task = tokio::spawn(run(
                source,
                every,
                Duration::from_secs(10),
                SourceState::default(),
                tx,
                health.clone(),
                stop,
            ));

            wait_for_polls(&polls, 3).await;
            let status = health.get("flaky").unwrap();
            assert!(!status.healthy);
            assert_eq!(status.consecutive_errors, 3);
            assert_eq!(status.errors_total, 3);
            assert_eq!(
                status.last_error.as_deref(),
                Some("server answered HTTP 500")
            );
            let next = status.next_poll_in_secs.expect("a next poll is scheduled");
            assert!(near(next as f64, 480.0), "next poll in {next}s");
            let quota = status.quota.as_ref().expect("the source's quota");
            assert_eq!((quota.remaining, quota.limit), (97, Some(100)));
            let json = serde_json::to_value(&status).unwrap();
            assert_eq!(json["quota"]["remaining"], 97, "{json}");

            wait_for_polls(&polls, 6).await;
            let g = gaps(&polls);
            assert!(
                near(g[0], 120.0) && near(g[1], 240.0) && near(g[2], 480.0),
                "backoff gaps {g:?}"
            );
            assert!(
                near(g[3], 60.0) && near(g[4], 60.0),
                "gaps after success {g:?}"
            );

            let status = health.get("flaky").unwrap();
            assert!(status.healthy);
            assert_eq!(status.consecutive_errors, 0);
            assert_eq!(status.errors_total, 3);
            assert_eq!(status.mentions_total, 2);
            assert_eq!(status.polls_total, 6);
            assert!(status.last_success.is_some());

            // Only the poll with mentions produced an outcome, and failed polls left no state behind.
            let outcome = rx.try_recv().unwrap();
            assert_eq!(outcome.source, "flaky");
            assert_eq!(outcome.mentions.len(), 2);
            assert_eq!(outcome.state, SourceState::default());
            assert!(rx.try_recv().is_err());

            trigger.trigger();
            task.await.unwrap();
        }

        #[tokio::test(start_paused = true)]
        async fn retry_after_is_honoured_when_longer_than_the_backoff() {
            let (source, polls) = scripted(
                "limited",
                vec![Step::Fail(SourceError::Status {
                    status: 429,
                    retry_after: Some(Duration::from_secs(900)),
                })],
            );
            let (tx, _rx) = mpsc::channel(8);
            let (trigger, stop) = shutdown::channel();
            let task = tokio::spawn(run(
                source,
                Duration::from_secs(60),
                Duration::from_secs(10),
                SourceState::default(),
                tx,
                Health::new(),
                stop,
            ));
            wait_for_polls(&polls, 2).await;
            let g = gaps(&polls);
            assert!(
                g[0] >= 900.0,
                "polled again after {}s despite Retry-After: 900",
                g[0]
            );
            trigger.trigger();
            task.await.unwrap();
        }

        #[tokio::test(start_paused = true)]
        async fn a_hanging_poll_times_out_and_counts_as_an_error() {
            let (source, polls) = scripted("slow", vec![Step::Hang, Step::Ok(1)]);
            let (tx, mut rx) = mpsc::channel(8);
            let health = Health::new();
            let (trigger, stop) = shutdown::channel();
            let task = tokio::spawn(run(
                source,
                Duration::from_secs(60),
                Duration::from_secs(10),
                SourceState::default(),
                tx,
                health.clone(),
                stop,
            ));
            let outcome = rx.recv().await.unwrap();
            assert_eq!(outcome.mentions.len(), 1);
            let g = gaps(&polls);
            assert!(near(g[0], 10.0 + 120.0), "timeout then backoff, got {g:?}");
            let status = health.get("slow").unwrap();
            assert_eq!(status.errors_total, 1);
            assert!(status.last_error.unwrap().contains("timed out"));
            trigger.trigger();
            task.await.unwrap();
        }

        /// When the intake could not store a poll (a full disk, a store error), the poller
        /// keeps the state it had: the next poll resumes from the last stored state and hands
        /// the same items on again, instead of resuming past them and losing them.
        #[tokio::test(start_paused = true)]
        async fn a_poll_the_intake_could_not_store_is_fetched_again() {
            let (source, _polls) =
                scripted("disk-full", vec![Step::Append, Step::Append, Step::Append]);
            let (tx, mut rx) = mpsc::channel(8);
            let (trigger, stop) = shutdown::channel();
            let mut answers = vec![false, true, true].into_iter();
            let health = Health::new();
            let task = tokio::spawn(run_answering(
                source,
                Duration::from_secs(60),
                Duration::from_secs(10),
                SourceState::default(),
                tx,
                health.clone(),
                stop,
                move |_| answers.next().unwrap_or(true),
            ));
            let mut cursors = Vec::new();
            for _ in 0..3 {
                let outcome = rx.recv().await.unwrap();
                assert_eq!(outcome.mentions.len(), 1);
                cursors.push(outcome.state.cursor.unwrap());
            }
            assert_eq!(
                cursors,
                ["+", "+", "++"],
                "the failed poll's state was not kept; the stored one was"
            );
            let status = health.get("disk-full").unwrap();
            assert_eq!(
                status.errors_total, 1,
                "the unstored poll shows on /healthz"
            );
            assert!(status.last_error.unwrap().contains("store could not take"));
            trigger.trigger();
            task.await.unwrap();
        }

        #[tokio::test(start_paused = true)]
        async fn a_moved_state_is_sent_even_without_mentions() {
            let initial = SourceState {
                etag: Some("\"old\"".into()),
                ..SourceState::default()
            };
            let (source, polls) = scripted("mover", vec![Step::Ok(0), Step::Moved]);
            let (tx, mut rx) = mpsc::channel(8);
            let (trigger, stop) = shutdown::channel();
            let task = tokio::spawn(run(
                source,
                Duration::from_secs(60),
                Duration::from_secs(10),
                initial,
                tx,
                Health::new(),
                stop,
            ));
            let outcome: PollOutcome = rx.recv().await.unwrap();
            assert_eq!(
                polls.lock().unwrap().len(),
                2,
                "the empty unchanged poll sends nothing"
            );
            assert!(outcome.mentions.is_empty());
            assert_eq!(outcome.state.cursor.as_deref(), Some("c2"));
            assert_eq!(
                outcome.state.etag.as_deref(),
                Some("\"old\""),
                "the initial state is carried on"
            );
            trigger.trigger();
            task.await.unwrap();
        }

        #[tokio::test]
        async fn shutdown_stops_an_in_flight_poll_promptly() {
            let (source, polls) = scripted("stuck", vec![Step::Hang]);
            let (tx, _rx) = mpsc::channel(8);
            let (trigger, stop) = shutdown::channel();
            let task = tokio::spawn(run(
                source,
                Duration::from_secs(60),
                Duration::from_secs(3600),
                SourceState::default(),
                tx,
                Health::new(),
                stop,
            ));
            while polls.lock().unwrap().is_empty() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let started = std::time::Instant::now();
            trigger.trigger();
            tokio::time::timeout(Duration::from_secs(2), task)
                .await
                .expect("run returned")
                .unwrap();
            assert!(started.elapsed() < Duration::from_millis(500));
        }

        #[tokio::test]
        async fn shutdown_stops_the_wait_between_polls_promptly() {
            let (source, polls) = scripted("idle", vec![Step::Ok(1)]);
            let (tx, mut rx) = mpsc::channel(8);
            let health = Health::new();
            let (trigger, stop) = shutdown::channel();
            let task = tokio::spawn(run(
                source,
                Duration::from_secs(3600),
                Duration::from_secs(10),
                SourceState::default(),
                tx,
                health.clone(),
                stop,
            ));
            rx.recv().await.unwrap();
            let started = std::time::Instant::now();
            trigger.trigger();
            tokio::time::timeout(Duration::from_secs(2), task)
                .await
                .expect("run returned")
                .unwrap();
            assert!(started.elapsed() < Duration::from_millis(500));
            assert_eq!(polls.lock().unwrap().len(), 1);
            assert_eq!(health.get("idle").unwrap().next_poll_in_secs, None);
        }

        #[tokio::test]
        async fn a_stuck_source_does_not_hold_up_another() {
            let (stuck, _) = scripted("stuck", vec![Step::Hang]);
            let (fine, _) = scripted("fine", vec![Step::Ok(1)]);
            let (tx, mut rx) = mpsc::channel(8);
            let health = Health::new();
            let (trigger, stop) = shutdown::channel();
            let a = tokio::spawn(run(
                stuck,
                Duration::from_secs(60),
                Duration::from_secs(3600),
                SourceState::default(),
                tx.clone(),
                health.clone(),
                stop.clone(),
            ));
            let b = tokio::spawn(run(
                fine,
                Duration::from_secs(60),
                Duration::from_secs(10),
                SourceState::default(),
                tx,
                health.clone(),
                stop,
            ));
            let outcome = tokio::time::timeout(Duration::from_secs(2), rx.recv())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(outcome.source, "fine");
            let names: Vec<_> = health.snapshot().into_iter().map(|s| s.name).collect();
            assert_eq!(names, ["fine", "stuck"]);
            trigger.trigger();
            a.await.unwrap();
            b.await.unwrap();
        }

        /// A streaming-style source: `ready` fires when the test pushes, `poll` drains.
        struct Streamy {
            wake: Arc<tokio::sync::Notify>,
            pending: Arc<Mutex<usize>>,
        }

        #[async_trait::async_trait]
        impl Source for Streamy {
            fn name(&self) -> &str {
                "streamy"
            }
            fn kind(&self) -> SourceKind {
                SourceKind::Bluesky
            }
            async fn poll(&mut self, _: &mut SourceState) -> Result<Vec<Mention>, SourceError> {
                let n = std::mem::take(&mut *self.pending.lock().unwrap());
                Ok((0..n).map(mention).collect())
            }
            async fn ready(&mut self) {
                self.wake.notified().await
            }
        }

        #[tokio::test(start_paused = true)]
        async fn a_ready_source_is_polled_at_once_instead_of_after_its_interval() {
            let wake = Arc::new(tokio::sync::Notify::new());
            let pending = Arc::new(Mutex::new(0));
            let source = Box::new(Streamy {
                wake: wake.clone(),
                pending: pending.clone(),
            });
            let (tx, mut rx) = mpsc::channel(8);
            let (trigger, stop) = shutdown::channel();
            let task = tokio::spawn(run(
                source,
                Duration::from_secs(3600),
                Duration::from_secs(10),
                SourceState::default(),
                tx,
                Health::new(),
                stop,
            ));
            tokio::time::sleep(Duration::from_secs(1)).await;
            let start = Instant::now();
            *pending.lock().unwrap() = 2;
            wake.notify_one();
            let outcome = rx.recv().await.unwrap();
            assert_eq!(outcome.mentions.len(), 2);
            assert!(
                start.elapsed() < Duration::from_secs(1),
                "not the hour-long interval"
            );
            trigger.trigger();
            task.await.unwrap();
        }

        #[tokio::test]
        async fn the_loop_ends_when_the_intake_is_gone() {
            let (source, _) = scripted("orphan", vec![Step::Ok(1)]);
            let (tx, rx) = mpsc::channel(1);
            drop(rx);
            let (_trigger, stop) = shutdown::channel();
            let task = tokio::spawn(run(
                source,
                Duration::from_secs(60),
                Duration::from_secs(10),
                SourceState::default(),
                tx,
                Health::new(),
                stop,
            ));
            tokio::time::timeout(Duration::from_secs(2), task)
                .await
                .expect("run returned")
                .unwrap();
        }

        /// One call of the gate: when, and the next poll time it was asked to store.
        type HoldCall = (Instant, Option<Duration>);

        /// A lease gate the test scripts: grants the lease while `held` is set (with the
        /// `stored` state and schedule), and logs every call.
        #[derive(Clone, Default)]
        struct FakeGate {
            held: Arc<std::sync::atomic::AtomicBool>,
            stored: Arc<Mutex<(SourceState, Option<Duration>)>>,
            calls: Arc<Mutex<Vec<HoldCall>>>,
            released: Arc<std::sync::atomic::AtomicBool>,
        }

        const PERIOD: Duration = Duration::from_secs(15);

        #[async_trait::async_trait]
        impl crate::sources::lease::LeaseGate for FakeGate {
            fn replica(&self) -> &str {
                "me"
            }
            fn period(&self) -> Duration {
                PERIOD
            }
            async fn hold(
                &self,
                _: &str,
                next_poll_in: Option<Duration>,
            ) -> Result<crate::sources::lease::Hold, crate::sources::lease::LeaseError>
            {
                use crate::sources::lease::Hold;
                use std::sync::atomic::Ordering;
                self.calls
                    .lock()
                    .unwrap()
                    .push((Instant::now(), next_poll_in));
                if !self.held.load(Ordering::SeqCst) {
                    return Ok(Hold::Elsewhere {
                        holder: Some("other".into()),
                    });
                }
                let (state, next) = self.stored.lock().unwrap().clone();
                Ok(Hold::Held {
                    state,
                    next_poll_in: next,
                })
            }
            async fn release(&self, _: &str) -> Result<(), crate::sources::lease::LeaseError> {
                self.released
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                Ok(())
            }
        }

        fn hold_calls(gate: &FakeGate) -> Vec<HoldCall> {
            gate.calls.lock().unwrap().clone()
        }

        /// With a lease: polls only while it is held, renews it every third of the period
        /// while waiting (storing the next poll time right after each poll), retries that
        /// often while another replica holds it, resumes from the stored state and schedule
        /// when it gets it back, and releases it at shutdown.
        #[tokio::test(start_paused = true)]
        async fn a_leased_loop_polls_only_while_held_and_renews_every_third_of_the_period() {
            use std::sync::atomic::Ordering;
            let (source, polls) = scripted("leased", (0..10).map(|_| Step::Append).collect());
            let (tx, mut rx) = mpsc::channel(8);
            let health = Health::new();
            let gate = FakeGate::default();
            gate.held.store(true, Ordering::SeqCst);
            let (trigger, stop) = shutdown::channel();
            let (ptx, mut prx) = mpsc::channel::<Polled>(1);
            tokio::spawn(async move {
                while let Some(p) = prx.recv().await {
                    let _ = p.stored.send(true);
                    if tx.send(p.outcome).await.is_err() {
                        break;
                    }
                }
            });
            let every = Duration::from_secs(60);
            let task = tokio::spawn(
                Poller::new(
                    source,
                    every,
                    Duration::from_secs(10),
                    SourceState::default(),
                    ptx,
                    health.clone(),
                )
                .with_lease(Some(Arc::new(gate.clone())))
                .run(stop),
            );
            rx.recv().await.unwrap();
            rx.recv().await.unwrap();
            let calls = hold_calls(&gate);
            let first_poll = polls.lock().unwrap()[0];
            let second_poll = polls.lock().unwrap()[1];
            let between: Vec<_> = calls
                .iter()
                .filter(|(at, _)| *at >= first_poll && *at <= second_poll)
                .collect();
            assert!(
                between
                    .windows(2)
                    .all(|w| w[1].0 - w[0].0 <= PERIOD / 3 + Duration::from_millis(10)),
                "renewed every third of the period: {between:?}"
            );
            let stored_next = between
                .iter()
                .find_map(|(_, next)| *next)
                .expect("the next poll time, stored after the poll");
            assert!(stored_next >= every.mul_f64(0.9) && stored_next <= every.mul_f64(1.1));
            let status = health.get("leased").unwrap();
            assert_eq!(status.held_by.as_deref(), Some("me"));
            assert!(status.lease_held);

            // Another replica takes it over: no more polls, retries every third of the period.
            gate.held.store(false, Ordering::SeqCst);
            let lost_at = Instant::now();
            tokio::time::sleep(Duration::from_secs(600)).await;
            let polled = polls.lock().unwrap().len();
            assert!(
                polls
                    .lock()
                    .unwrap()
                    .iter()
                    .all(|at| *at <= lost_at + PERIOD / 3),
                "not polled while held elsewhere"
            );
            let status = health.get("leased").unwrap();
            assert_eq!(status.held_by.as_deref(), Some("other"));
            assert!(status.healthy && !status.lease_held);
            assert_eq!(status.lease_lost_total, 1);
            let retries = hold_calls(&gate)
                .iter()
                .filter(|(at, _)| *at > lost_at + PERIOD)
                .count();
            assert!((100..=125).contains(&retries), "{retries} tries in 10 min");

            // Given back, advanced by the other replica and due in 30 s: resumes from there.
            *gate.stored.lock().unwrap() = (
                SourceState {
                    cursor: Some("theirs".into()),
                    ..SourceState::default()
                },
                Some(Duration::from_secs(30)),
            );
            gate.held.store(true, Ordering::SeqCst);
            let back = Instant::now();
            let outcome = rx.recv().await.unwrap();
            assert_eq!(outcome.state.cursor.as_deref(), Some("theirs+"));
            let at = polls.lock().unwrap()[polled];
            assert!(
                at >= back + Duration::from_secs(25),
                "kept the stored schedule"
            );
            assert_eq!(health.get("leased").unwrap().lease_acquired_total, 2);

            trigger.trigger();
            task.await.unwrap();
            assert!(gate.released.load(Ordering::SeqCst), "released at shutdown");
        }

        /// A leased poll loop over `source` polling every `every` (45 s timeout) whose gate
        /// grants the lease: the gate, the loop's shutdown trigger and its task.
        fn spawn_holding(
            source: Box<dyn Source>,
            every: Duration,
            out: mpsc::Sender<Polled>,
        ) -> (
            FakeGate,
            shutdown::ShutdownTrigger,
            tokio::task::JoinHandle<()>,
        ) {
            let gate = FakeGate::default();
            gate.held.store(true, std::sync::atomic::Ordering::SeqCst);
            let (trigger, stop) = shutdown::channel();
            let task = tokio::spawn(
                Poller::new(
                    source,
                    every,
                    Duration::from_secs(45),
                    SourceState::default(),
                    out,
                    Health::new(),
                )
                .with_lease(Some(Arc::new(gate.clone())))
                .run(stop),
            );
            (gate, trigger, task)
        }

        /// When the loop's first poll started.
        async fn first_poll(polls: &Arc<Mutex<Vec<Instant>>>) -> Instant {
            while polls.lock().unwrap().is_empty() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            polls.lock().unwrap()[0]
        }

        /// A poll that outlasts the lease period renews the lease meanwhile.
        #[tokio::test(start_paused = true)]
        async fn a_long_poll_keeps_its_lease() {
            let (source, polls) = scripted("slow", vec![Step::Hang]);
            let (tx, _rx) = mpsc::channel(8);
            let (gate, trigger, task) = spawn_holding(source, Duration::from_secs(60), tx);
            let started = first_poll(&polls).await;
            tokio::time::sleep(Duration::from_secs(44)).await;
            let during = hold_calls(&gate)
                .iter()
                .filter(|(at, _)| *at > started)
                .count();
            assert!(during >= 7, "{during} renewals during a 44 s poll");
            trigger.trigger();
            task.await.unwrap();
        }

        /// A poll the intake takes long to store (its store is slow, or it is busy with
        /// another source's large poll) keeps its lease while it waits for the answer.
        #[tokio::test(start_paused = true)]
        async fn a_poll_waiting_for_the_intake_keeps_its_lease() {
            let (source, polls) = scripted("busy", vec![Step::Ok(1)]);
            // The intake takes the poll but does not answer for 44 s.
            let (tx, mut rx) = mpsc::channel::<Polled>(8);
            let answered = tokio::spawn(async move {
                let polled = rx.recv().await.unwrap();
                tokio::time::sleep(Duration::from_secs(44)).await;
                let _ = polled.stored.send(true);
                rx
            });
            let (gate, trigger, task) = spawn_holding(source, Duration::from_secs(600), tx);
            let polled = first_poll(&polls).await;
            let _rx = answered.await.unwrap();
            let during = hold_calls(&gate)
                .iter()
                .filter(|(at, _)| *at > polled && *at < polled + Duration::from_secs(44))
                .count();
            assert!(
                during >= 7,
                "{during} renewals while the intake stored the poll"
            );
            trigger.trigger();
            task.await.unwrap();
        }
    }
}
