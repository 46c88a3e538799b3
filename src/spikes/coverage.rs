//! When mentiondesk was listening: the daemon's run intervals and each source's failures,
//! sampled by the spike watch on every round and kept in the store, so a spike baseline can
//! leave out the windows in which it heard only part of what was said (daemon down, a source
//! failing or not yet added). Such a window looks quiet, and the catch-up afterwards is not
//! news. Only the spike watch writes it (one writer, one small record); it decides nothing.

use crate::sources::poll::SourceStatus;
use crate::store::{Store, StoreError};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The store's meta key of the record.
const KEY: &str = "spike_coverage";

/// Intervals that ended longer ago than this are dropped: `[spikes].baseline` is at most
/// 30 days.
const KEEP_DAYS: i64 = 31;

/// How much of a failure that is still going on is left out of the baseline: its first day.
/// A source broken for longer is as good as removed while it stays broken: it adds nothing to
/// the baseline or to the current window alike, so those hours count again, and one dead feed
/// cannot wear every rule's baseline down until spike detection stops. Once it recovers, the
/// whole failure is left out again (its catch-up lands in those hours).
const FAILURE_EXCLUDED_HOURS: i64 = 24;

/// `[from, to]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Span {
    /// Whether the span and `[from, to)` share time.
    fn overlaps(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
        self.from < to && self.to > from
    }
}

/// One source's listening: since when, and when it failed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceCoverage {
    /// When the spike watch first saw the source; `None` for sources already there when the
    /// record was started (their past is as good as the rule log says).
    pub since: Option<DateTime<Utc>>,
    /// Failure spans, oldest first; the last one is still growing while `failing`.
    pub failures: Vec<Span>,
    pub failing: bool,
}

/// The whole record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Coverage {
    /// Daemon runs, oldest first: start and the last round it was seen alive.
    pub runs: Vec<Span>,
    pub sources: BTreeMap<String, SourceCoverage>,
}

/// What the record needs to know of a source's health at a round.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceSample {
    pub name: String,
    /// False after a failed poll, until the next good one.
    pub healthy: bool,
    /// The last good poll (in this run).
    pub last_success: Option<DateTime<Utc>>,
}

impl From<&SourceStatus> for SourceSample {
    fn from(s: &SourceStatus) -> SourceSample {
        SourceSample {
            name: s.name.clone(),
            healthy: s.healthy,
            last_success: s.last_success,
        }
    }
}

impl Coverage {
    /// The record as stored (empty before the first round).
    pub async fn load(store: &Store) -> Result<Coverage, StoreError> {
        Ok(store.meta_get::<Coverage>(KEY).await?.unwrap_or_default())
    }

    /// Adds one round at `now` of the run that started at `run_start`, with the sources'
    /// health, and stores the record (flushed).
    pub async fn record(
        store: &Store,
        run_start: DateTime<Utc>,
        now: DateTime<Utc>,
        sources: &[SourceSample],
    ) -> Result<(), StoreError> {
        let mut c = Coverage::load(store).await?;
        c.sample(run_start, now, sources);
        store.meta_set(KEY, &c).await
    }

    /// One round: the run is alive until `now`; a newly seen source is listened to from now
    /// (unless this is the first round ever); a failing source has failed since its last
    /// good poll of this run (else since the run started) until now, and a recovered one
    /// until its good poll.
    pub(crate) fn sample(
        &mut self,
        run_start: DateTime<Utc>,
        now: DateTime<Utc>,
        sources: &[SourceSample],
    ) {
        let first_round = self.runs.is_empty();
        match self.runs.last_mut() {
            Some(run) if run.from == run_start => run.to = run.to.max(now),
            _ => self.runs.push(Span {
                from: run_start,
                to: now,
            }),
        }
        for s in sources {
            let c = self
                .sources
                .entry(s.name.clone())
                .or_insert_with(|| SourceCoverage {
                    since: (!first_round).then_some(now),
                    ..SourceCoverage::default()
                });
            match (s.healthy, c.failing, c.failures.last_mut()) {
                (false, true, Some(open)) => open.to = open.to.max(now),
                (false, _, _) => {
                    let from = s
                        .last_success
                        .filter(|t| *t >= run_start)
                        .unwrap_or(run_start)
                        .min(now);
                    c.failures.push(Span { from, to: now });
                    c.failing = true;
                }
                // Recovered: failing until the good poll (or this round, if unknown).
                (true, true, Some(open)) => {
                    open.to = open.to.max(s.last_success.unwrap_or(now).min(now));
                    c.failing = false;
                }
                (true, _, _) => c.failing = false,
            }
        }
        let horizon = now - Duration::days(KEEP_DAYS);
        // The current run ends at `now`, so it is never dropped.
        self.runs.retain(|r| r.to >= horizon);
        for c in self.sources.values_mut() {
            c.failures.retain(|f| f.to >= horizon);
        }
    }

    /// Whether `[from, to)` was heard in full: no gap between two runs, no source failing or
    /// not yet added, overlaps it. Time before the first recorded run is taken as heard (the
    /// record did not exist yet; the rule log's first hit bounds it instead).
    pub(crate) fn covers(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
        let down = self.runs.windows(2).any(|w| {
            Span {
                from: w[0].to,
                to: w[1].from,
            }
            .overlaps(from, to)
        });
        let sources = self.sources.values().any(|s| {
            s.since.is_some_and(|since| from < since)
                || s.failures.iter().enumerate().any(|(i, f)| {
                    let ongoing = s.failing && i + 1 == s.failures.len();
                    let to_excluded = match ongoing {
                        true => f.to.min(f.from + Duration::hours(FAILURE_EXCLUDED_HOURS)),
                        false => f.to,
                    };
                    Span {
                        from: f.from,
                        to: to_excluded,
                    }
                    .overlaps(from, to)
                })
        });
        !down && !sources
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(h: i64) -> DateTime<Utc> {
        "2026-11-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap() + Duration::hours(h)
    }

    fn src(name: &str, healthy: bool, last_success: Option<DateTime<Utc>>) -> SourceSample {
        SourceSample {
            name: name.into(),
            healthy,
            last_success,
        }
    }

    #[test]
    fn a_restart_leaves_the_downtime_uncovered() {
        let mut c = Coverage::default();
        c.sample(t(0), t(0), &[src("hn", true, None)]);
        c.sample(t(0), t(5), &[src("hn", true, None)]);
        // Down from hour 5 to hour 9.
        c.sample(t(9), t(9), &[src("hn", true, None)]);
        c.sample(t(9), t(12), &[src("hn", true, None)]);
        assert_eq!(c.runs.len(), 2);
        assert!(c.covers(t(1), t(2)));
        assert!(!c.covers(t(4), t(6)), "the run ended during this hour");
        assert!(!c.covers(t(6), t(7)));
        assert!(!c.covers(t(8), t(10)));
        assert!(c.covers(t(10), t(11)));
        assert!(c.covers(t(-10), t(-9)), "before the record: as heard");
    }

    #[test]
    fn failing_and_new_sources_leave_their_hours_uncovered() {
        let mut c = Coverage::default();
        c.sample(t(0), t(0), &[src("hn", true, None)]);
        c.sample(t(0), t(3), &[src("hn", false, Some(t(2)))]);
        c.sample(t(0), t(4), &[src("hn", false, Some(t(2)))]);
        c.sample(t(0), t(6), &[src("hn", true, Some(t(6)))]);
        assert_eq!(
            c.sources["hn"].failures,
            vec![Span {
                from: t(2),
                to: t(6)
            }],
            "failing from the last good poll to the next good one"
        );
        assert!(c.covers(t(1), t(2)));
        assert!(!c.covers(t(2), t(3)));
        assert!(!c.covers(t(5), t(6)));
        assert!(c.covers(t(6), t(7)));
        // A source added at hour 8: hours before it were not heard in full.
        c.sample(
            t(0),
            t(8),
            &[src("hn", true, None), src("forum", true, None)],
        );
        assert_eq!(c.sources["forum"].since, Some(t(8)));
        assert!(!c.covers(t(7), t(8)));
        assert!(c.covers(t(8), t(9)));
    }

    /// A source broken for days leaves only its first day out while it stays broken: after
    /// that it is as good as removed, and the hours count again (else one dead feed would stop
    /// spike detection). Once it recovers, the whole failure is left out.
    #[test]
    fn a_long_failure_leaves_out_only_its_first_day() {
        let mut c = Coverage::default();
        c.sample(t(0), t(0), &[src("hn", true, None)]);
        c.sample(t(0), t(1), &[src("hn", false, Some(t(1)))]);
        c.sample(t(0), t(72), &[src("hn", false, Some(t(1)))]);
        assert!(!c.covers(t(1), t(2)));
        assert!(!c.covers(t(24), t(25)));
        assert!(c.covers(t(25), t(26)));
        assert!(c.covers(t(48), t(49)));
        c.sample(t(0), t(80), &[src("hn", true, Some(t(80)))]);
        assert!(
            !c.covers(t(48), t(49)),
            "recovered: its catch-up lands there"
        );
        assert!(c.covers(t(80), t(81)));
    }

    #[test]
    fn old_intervals_are_dropped_but_not_the_current_run() {
        let mut c = Coverage::default();
        c.sample(t(0), t(0), &[src("hn", false, None)]);
        c.sample(t(0), t(1), &[src("hn", true, None)]);
        c.sample(t(2), t(2), &[]);
        let later = t(2) + Duration::days(40);
        c.sample(t(2), later, &[]);
        assert_eq!(
            c.runs,
            vec![Span {
                from: t(2),
                to: later
            }]
        );
        assert!(c.sources["hn"].failures.is_empty());
    }
}
