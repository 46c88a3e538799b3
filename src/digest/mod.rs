//! Scheduled digests: each `[[digest]]` fires on its cron schedule in its time zone, builds
//! its report and chart, and queues one outbox entry per destination together with the
//! "slot sent" marker (one transaction), so the relay posts it exactly once. A slot missed
//! while the daemon was down is sent once at start-up, not once per missed slot. It never
//! changes an alert.

pub mod chart;
pub(crate) mod config;
pub mod report;
pub mod schedule;

use crate::analysis::relevance::config::RelevanceConfig;
use crate::clock::Clock;
use crate::model::{DigestPost, Target};
use crate::shutdown::Shutdown;
use crate::store::{Store, StoreError};
use chrono::{DateTime, Duration, Utc};
use config::DigestConfig;
use report::Period;
use schedule::Schedule;

/// The longest period one digest covers (and the fallback for rare schedules).
const MAX_PERIOD_DAYS: i64 = 7;
/// How long the loop sleeps at most before looking at the clock again, so a wall-clock
/// jump (suspend, NTP) delays a digest by at most this much.
const MAX_SLEEP: std::time::Duration = std::time::Duration::from_secs(60);

/// One configured digest, ready to run.
#[derive(Debug, Clone)]
pub struct DigestJob {
    pub name: String,
    pub schedule: Schedule,
    pub to: Vec<Target>,
    pub chart: bool,
    /// `[relevance]`, for the digest's relevance figures.
    pub relevance: RelevanceConfig,
    /// `[desk] command`, for the commands the digest tells people to type.
    pub command: String,
}

impl DigestJob {
    pub(crate) fn from_config(c: &DigestConfig) -> Result<DigestJob, String> {
        Ok(DigestJob {
            name: c.name.clone(),
            schedule: Schedule::parse(&c.schedule, c.timezone)?,
            to: c.to.clone(),
            chart: c.chart,
            relevance: RelevanceConfig::default(),
            command: "/desk".into(),
        })
    }

    /// The store key under which the last slot sent is kept.
    fn slot_key(&self) -> String {
        format!("digest_slot:{}", self.name)
    }

    /// The period the digest of `slot` covers: since the slot before it (at most a week).
    fn period_ending(&self, slot: DateTime<Utc>) -> Period {
        let limit = Duration::days(MAX_PERIOD_DAYS);
        let from = self.schedule.previous(slot, limit).unwrap_or(slot - limit);
        Period { from, to: slot }
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum DigestError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("there is no digest named {name:?}; configured: {known}")]
    UnknownName { name: String, known: String },
    #[error("no [digest] is configured; add one (see README, \"Daily digest\")")]
    NotConfigured,
    #[error("building the digest failed: {0}")]
    Build(String),
}

/// Builds the digest for `period` and queues it for every destination; with `slot`, also
/// records that slot as sent, atomically, unless it was sent already (another replica at
/// the same slot): then nothing is queued and the post is not returned.
pub(crate) async fn queue(
    store: &Store,
    rules: &[String],
    job: &DigestJob,
    period: Period,
    slot: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<Option<DigestPost>, DigestError> {
    let post = build(store, rules, job, period, now).await?;
    let key = job.slot_key();
    let marker = slot.map(|s| (key.as_str(), s));
    let queued = store
        .enqueue_digest(marker.as_ref().map(|(k, s)| (*k, s)), &job.to, &post, now)
        .await?;
    if !queued {
        tracing::info!(digest = %job.name, to = %period.to, "digest already sent for this slot (by another replica)");
        return Ok(None);
    }
    tracing::info!(digest = %job.name, from = %period.from, to = %period.to, targets = job.to.len(), "digest queued");
    Ok(Some(post))
}

/// The digest's text and chart for `period`; the PNG is compressed off the runtime.
async fn build(
    store: &Store,
    rules: &[String],
    job: &DigestJob,
    period: Period,
    now: DateTime<Utc>,
) -> Result<DigestPost, DigestError> {
    let tz = job.schedule.timezone();
    let mut r = report::gather_with(store, rules, period, tz, now, &job.relevance).await?;
    r.command = job.command.clone();
    let (title, body) = report::render(&r, &job.name, now);
    let chart = if job.chart {
        let (title, buckets) = (r.chart_title.clone(), r.chart.clone());
        let png = tokio::task::spawn_blocking(move || {
            chart::render_png(&chart::ChartSpec {
                title: &title,
                buckets: &buckets,
            })
        })
        .await
        .map_err(|e| DigestError::Build(e.to_string()))?;
        match png {
            Ok(png) => Some(png),
            Err(e) => {
                // The numbers still go out; only the picture is missing.
                tracing::warn!(digest = %job.name, error = %e, "could not render the digest chart");
                None
            }
        }
    } else {
        None
    };
    let post = DigestPost {
        title,
        body,
        chart,
        chart_alt: format!("{} (stacked: negative, neutral, positive)", r.chart_title),
    };
    Ok(post)
}

/// `digest --now`: the digest of the period that ends now, as long as the schedule's usual
/// period, queued without touching the schedule.
pub(crate) async fn queue_now(
    store: &Store,
    rules: &[String],
    jobs: &[DigestJob],
    name: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Vec<(String, DigestPost)>, DigestError> {
    if jobs.is_empty() {
        return Err(DigestError::NotConfigured);
    }
    let chosen: Vec<&DigestJob> = match name {
        Some(n) => {
            let j = jobs
                .iter()
                .find(|j| j.name == n)
                .ok_or_else(|| DigestError::UnknownName {
                    name: n.to_string(),
                    known: jobs
                        .iter()
                        .map(|j| j.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
            vec![j]
        }
        None => jobs.iter().collect(),
    };
    let mut out = Vec::new();
    for job in chosen {
        let len = job
            .schedule
            .last_at_or_before(now)
            .map(|last| job.period_ending(last).len())
            .unwrap_or(Duration::days(1));
        let period = Period {
            from: now - len,
            to: now,
        };
        // Without a slot nothing can have been sent already: always queued.
        if let Some(post) = queue(store, rules, job, period, None, now).await? {
            out.push((job.name.clone(), post));
        }
    }
    Ok(out)
}

/// The digest task: runs every configured digest on its schedule until shutdown. A queued
/// digest reaches the relay through the store's outbox signal.
pub struct Digests {
    jobs: Vec<DigestJob>,
    store: Store,
    rules: Vec<String>,
    clock: Clock,
}

impl Digests {
    pub fn new(jobs: Vec<DigestJob>, store: Store, rules: Vec<String>, clock: Clock) -> Digests {
        Digests {
            jobs,
            store,
            rules,
            clock,
        }
    }

    /// Runs each job's schedule side by side; returns when every one has stopped.
    pub async fn run(self, shutdown: Shutdown) {
        let runs = self
            .jobs
            .iter()
            .map(|job| run_job(job, &self.store, &self.rules, self.clock, shutdown.clone()));
        futures_util::future::join_all(runs).await;
    }
}

/// Runs one digest job until shutdown.
async fn run_job(
    job: &DigestJob,
    store: &Store,
    rules: &[String],
    clock: Clock,
    mut shutdown: Shutdown,
) {
    let mut last = match catch_up(job, store, rules, clock.now()).await {
        Ok(last) => last,
        Err(e) => {
            tracing::error!(digest = %job.name, error = %e, "could not check for a missed digest");
            clock.now()
        }
    };
    loop {
        let Some(next) = job.schedule.next_after(last.max(clock.now())) else {
            tracing::warn!(digest = %job.name, "the schedule has no further firings; digest stopped");
            return;
        };
        tracing::debug!(digest = %job.name, next = %next, "next digest");
        loop {
            let now = clock.now();
            if now >= next {
                break;
            }
            let wait = (next - now).to_std().unwrap_or_default().min(MAX_SLEEP);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.wait() => return,
            }
        }
        let period = job.period_ending(next);
        // Retried every minute until it is queued (the marker is written with it), or until
        // the next slot is due and supersedes it.
        let following = job.schedule.next_after(next);
        loop {
            match queue(store, rules, job, period, Some(next), clock.now()).await {
                Ok(_) => {
                    break;
                }
                Err(e) => {
                    tracing::error!(digest = %job.name, error = %e, "could not queue the digest; retrying in a minute")
                }
            }
            if following.is_some_and(|f| clock.now() + Duration::minutes(1) >= f) {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(MAX_SLEEP) => {}
                _ = shutdown.wait() => return,
            }
        }
        last = next;
    }
}

/// At start-up: if the latest slot passed while the daemon was down, queue that one digest
/// now (never one per missed slot). A job seen for the first time starts from now.
/// Returns the slot to schedule from.
async fn catch_up(
    job: &DigestJob,
    store: &Store,
    rules: &[String],
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, DigestError> {
    let sent: Option<DateTime<Utc>> = store.meta_get(&job.slot_key()).await?;
    let latest = job.schedule.last_at_or_before(now);
    match (sent, latest) {
        (Some(sent), Some(latest)) if latest > sent => {
            tracing::info!(digest = %job.name, slot = %latest, "sending the digest missed while down");
            queue(
                store,
                rules,
                job,
                job.period_ending(latest),
                Some(latest),
                now,
            )
            .await?;
            Ok(latest)
        }
        (Some(sent), _) => Ok(sent),
        (None, _) => {
            store.meta_set(&job.slot_key(), &now).await?;
            Ok(now)
        }
    }
}
