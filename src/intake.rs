//! Intake: turns what a poll returned into stored mentions and alerts. It runs every mention
//! through the rules, scores sentiment and priority, and hands the store one batch per poll
//! (dedup happens inside the store's transaction). It never talks to chat; it only wakes
//! the relay.

use crate::analysis::{dedup, negativity, priority};
use crate::desk::config::DeskConfig;
use crate::metrics::Metrics;
use crate::model::{Mention, Note, Priority, Target, TimerKind};
use crate::rules::config::RuleConfig;
use crate::rules::{Document, RuleSet};
use crate::shutdown::Shutdown;
use crate::sources::poll::PollOutcome;
use crate::store::{Candidate, NewAlert, Store, StoreError};
use std::sync::Arc;
use tokio::sync::{mpsc, Notify};

/// What the rules and analysis say about one mention.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub rules: Vec<String>,
    pub sentiment: f64,
    pub negative: bool,
    /// `None` when no rule matched.
    pub priority: Option<Priority>,
    pub targets: Vec<Target>,
    pub highlights: Vec<(usize, usize)>,
}

/// Everything needed to judge a mention; shared by `run`, `match` and `scan`.
pub struct Judge {
    pub matcher: Arc<RuleSet>,
    pub rules: Vec<RuleConfig>,
}

impl Judge {
    pub fn judge(&self, m: &Mention) -> Verdict {
        let doc = Document {
            text: &m.text,
            title: m.title.as_deref(),
            author: m.author.as_deref(),
            url: m.url.as_deref(),
            source: &m.source,
            source_kind: &m.source_kind,
            lang: m.lang.as_deref(),
        };
        let matches = self.matcher.matches(&doc);
        let scored_text = match &m.title {
            Some(t) if !t.is_empty() => format!("{t}. {}", m.text),
            _ => m.text.clone(),
        };
        let s = negativity::assess(&scored_text);
        let mut rules = Vec::new();
        let mut targets: Vec<Target> = Vec::new();
        let mut highlights = Vec::new();
        let mut rule_priority: Option<Priority> = None;
        for hit in &matches {
            let rule = &self.rules[hit.rule];
            rules.push(rule.name.clone());
            rule_priority = rule_priority.max(Some(rule.priority));
            for t in &rule.alert {
                if !targets.contains(t) {
                    targets.push(t.clone());
                }
            }
            highlights.extend(hit.spans.iter().map(|s| (s.start, s.end)));
        }
        highlights.sort_unstable();
        highlights.dedup();
        Verdict {
            rules,
            sentiment: s.sentiment,
            negative: s.negative,
            priority: rule_priority.map(|p| priority::priority(p, s.negative, m.author_reach)),
            targets,
            highlights,
        }
    }

    pub fn candidate(&self, m: Mention) -> Candidate {
        let v = self.judge(&m);
        Candidate {
            dedup_keys: dedup::keys(&m),
            alert: v.priority.map(|priority| NewAlert {
                rules: v.rules,
                priority,
                sentiment: v.sentiment,
                negative: v.negative,
                targets: v.targets,
                highlights: v.highlights,
                timers: vec![],
                thread_keys: vec![],
                repeat_note: Note::new(),
                log_hit: true,
            }),
            mention: m,
        }
    }
}

/// Stores each poll's outcome as it arrives, until shutdown and the channel is drained.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    judge: Arc<Judge>,
    desk: DeskConfig,
    store: Store,
    mut polls: mpsc::Receiver<PollOutcome>,
    relay_wake: Arc<Notify>,
    metrics: Arc<Metrics>,
    mut shutdown: Shutdown,
) {
    loop {
        let outcome = tokio::select! {
            o = polls.recv() => match o { Some(o) => o, None => break },
            _ = shutdown.wait() => break,
        };
        if let Err(e) = accept(&judge, &desk, &store, outcome, &metrics).await {
            tracing::error!(error = %e, "could not store a poll's mentions; they will be fetched again");
            continue;
        }
        relay_wake.notify_one();
    }
    tracing::debug!("intake stopped");
}

pub async fn accept(
    judge: &Judge,
    desk: &DeskConfig,
    store: &Store,
    outcome: PollOutcome,
    metrics: &Metrics,
) -> Result<usize, StoreError> {
    let now = chrono::Utc::now();
    let total = outcome.mentions.len() as u64;
    let mut candidates = Vec::with_capacity(outcome.mentions.len());
    for m in outcome.mentions {
        let mut c = judge.candidate(m);
        let keys = dedup::mute_keys(&c.mention);
        let mut muted = false;
        for k in [keys.author, keys.site].into_iter().flatten() {
            muted |= store.is_muted(&k)?;
        }
        if muted {
            tracing::debug!(source = %c.mention.source, item = %c.mention.item_id, "muted author or site; stored without an alert");
            c.alert = None;
        }
        if let Some(a) = &mut c.alert {
            let escalate_at =
                now + chrono::Duration::from_std(desk.escalate_after).unwrap_or_default();
            a.timers = vec![(TimerKind::Escalate, escalate_at)];
            a.thread_keys = dedup::thread_keys(&c.mention);
            a.repeat_note = repeat_note(&c.mention);
        }
        candidates.push(c);
    }
    let accepted = store
        .accept(&outcome.source, &outcome.state, &candidates, now)
        .await?;
    Metrics::add(&metrics.mentions_total, accepted.new_mentions as u64);
    Metrics::add(
        &metrics.duplicates_total,
        total - accepted.new_mentions as u64,
    );
    Metrics::add(&metrics.alerts_total, accepted.alerts.len() as u64);
    for a in &accepted.alerts {
        tracing::info!(source = %outcome.source, alert = %a.id, rules = ?a.rules, priority = %a.priority, "new alert");
    }
    for id in &accepted.threaded {
        tracing::info!(source = %outcome.source, alert = %id, "repeat of an existing alert; added to its thread");
    }
    Ok(accepted.alerts.len())
}

/// What goes into an existing alert's thread when the same author or story comes up again.
fn repeat_note(m: &Mention) -> Note {
    let mut note = Note::new().text("🔁 Another mention");
    // A placeholder ("author", "unknown") names nobody; thread keys skip it too.
    if let Some(a) = dedup::real_author(m) {
        note = note.text(" by ").bold(a.to_string());
    }
    note = note
        .text(format!(" on {}: “", m.source))
        .text(crate::chat::escape::truncate(&m.text, 200))
        .text("”");
    if let Some(u) = &m.url {
        note = note.text(" ").link(u.clone(), "open");
    }
    note
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::SourceState;

    fn judge() -> Judge {
        let rules = vec![RuleConfig {
            name: "acme".into(),
            query: "acme".into(),
            alert: vec![Target::Slack("#pr".into())],
            priority: Priority::Normal,
        }];
        Judge {
            matcher: Arc::new(RuleSet::compile([("acme", "acme")]).unwrap()),
            rules,
        }
    }

    fn desk() -> DeskConfig {
        DeskConfig {
            command: "/desk".into(),
            escalate_after: std::time::Duration::from_secs(900),
            escalate_to: None,
            remind_after: None,
            allowed: vec![],
            timezone: chrono_tz::UTC,
        }
    }

    fn mention(id: &str, author: &str, url: &str) -> Mention {
        Mention {
            item_id: id.into(),
            source: "s".into(),
            source_kind: "rss".into(),
            url: Some(url.into()),
            title: None,
            text: format!("acme post {id}"),
            author: Some(author.into()),
            author_reach: None,
            published: None,
            lang: None,
        }
    }

    /// Regression (#11 defect 2): mentions whose author is a placeholder (feed-rs's "author"
    /// and "unknown", e.g. stored before the rss source stopped passing them on) were threaded
    /// under the first one as "Another mention by author".
    #[tokio::test]
    async fn placeholder_authors_never_thread_repeats() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let outcome = PollOutcome {
            source: "s".into(),
            mentions: vec![
                mention("1", "author", "https://a.example/1"),
                mention("2", "author", "https://a.example/2"),
                mention("3", "unknown", "https://b.example/3"),
                mention("4", " ", "https://b.example/4"),
                mention("5", "dana", "https://c.example/5"),
                mention("6", "Dana", "https://c.example/6"),
            ],
            state: SourceState::default(),
        };
        let alerts = accept(&judge(), &desk(), &store, outcome, &Metrics::default())
            .await
            .unwrap();
        assert_eq!(
            alerts, 5,
            "1-4 alert separately; 6 is a repeat of 5 (same author)"
        );
        assert_eq!(store.alerts().unwrap().len(), 5);
        let note = repeat_note(&mention("7", "author", "https://a.example/7")).plain();
        assert!(!note.contains(" by "), "{note}");
    }

    #[tokio::test]
    async fn muted_authors_and_sites_are_stored_without_alerts() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = chrono::Utc::now();
        store
            .mute("author:rss:spammer", "slack:U1", now)
            .await
            .unwrap();
        store
            .mute("site:spam.example", "slack:U1", now)
            .await
            .unwrap();
        let outcome = PollOutcome {
            source: "s".into(),
            mentions: vec![
                mention("1", "Spammer", "https://ok.example/1"),
                mention("2", "dana", "https://www.spam.example/2"),
                mention("3", "dana", "https://ok.example/3"),
            ],
            state: SourceState::default(),
        };
        let metrics = Metrics::default();
        let alerts = accept(&judge(), &desk(), &store, outcome, &metrics)
            .await
            .unwrap();
        assert_eq!(alerts, 1, "only the unmuted mention alerts");
        assert_eq!(store.mention_count(), 3, "muted mentions are still stored");
        let alert = &store.alerts().unwrap()[0];
        assert!(alert.mention_key.ends_with('3'));
        let timers = store.timers().unwrap();
        assert_eq!(timers.len(), 1, "the alert's escalation timer started");
        assert_eq!(timers[0].kind, TimerKind::Escalate);
    }
}
