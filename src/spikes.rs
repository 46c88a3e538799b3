//! The spike watch: every few minutes, each rule's mentions in the last window are compared
//! with its baseline (`analysis::spike`); a spike becomes an alert like any other (claimable,
//! resolvable, escalated), explained in its text, with a per-rule cooldown written in the
//! same transaction as the alert. It only writes alerts through the store; posting is the
//! relay's job.
//!
//! Mentions are counted in the window they were published in (the time they arrived only
//! when the source gives none), and windows in which the daemon was down or a source was
//! failing or not yet added (`coverage`, sampled here every round) are left out of the
//! baseline: a catch-up after an outage or a new source's back catalogue lands in the past
//! hours it was written in, not in the current one, and never looks like a spike.

pub mod config;
pub mod coverage;

use crate::analysis::{dedup, spike};
use crate::clock::Clock;
use crate::desk::config::DeskConfig;
use crate::digest::report::SPIKE_KIND;
use crate::metrics::Metrics;
use crate::model::{Alert, Mention, TimerKind};
use crate::rules::config::RuleConfig;
use crate::shutdown::Shutdown;
use crate::sources::poll::Health;
use crate::sources::prefilter::Prefilter;
use crate::store::{Candidate, NewAlert, RuleHit, Store, StoreError};
use crate::util::human_duration;
use chrono::{DateTime, Duration, Utc};
use config::SpikeConfig;
use coverage::{Coverage, SourceSample};
use std::collections::BTreeMap;
use std::sync::Arc;

pub(crate) use crate::digest::report::SPIKE_SOURCE;

/// The spike watch task: checks every rule every `[spikes].every` until shutdown.
pub(crate) struct SpikeWatch {
    cfg: SpikeConfig,
    rules: Vec<RuleConfig>,
    desk: DeskConfig,
    store: Store,
    clock: Clock,
    metrics: Arc<Metrics>,
    /// The sources' health, sampled into the coverage record every round.
    health: Health,
}

impl SpikeWatch {
    pub(crate) fn new(
        cfg: SpikeConfig,
        rules: Vec<RuleConfig>,
        desk: DeskConfig,
        store: Store,
        clock: Clock,
        metrics: Arc<Metrics>,
        health: Health,
    ) -> SpikeWatch {
        SpikeWatch {
            cfg,
            rules,
            desk,
            store,
            clock,
            metrics,
            health,
        }
    }

    /// Records this round in the coverage record and checks every rule, now and then every
    /// `[spikes].every`; a spike alert reaches the relay through the store's outbox signal.
    /// A crash loses at most one round of up-time, which only leaves a little more out of
    /// the baseline.
    pub(crate) async fn run(self, mut shutdown: Shutdown) {
        let run_start = self.clock.now();
        loop {
            let sources: Vec<SourceSample> = self
                .health
                .snapshot()
                .iter()
                .map(SourceSample::from)
                .collect();
            if let Err(e) =
                Coverage::record(&self.store, run_start, self.clock.now(), &sources).await
            {
                tracing::warn!(error = %e, "could not record which hours were heard in full; spike baselines may count an outage as quiet");
            }
            for rule in &self.rules {
                let now = self.clock.now();
                match check(&self.store, &self.cfg, rule, &self.desk, now).await {
                    Ok(Some(alert)) => {
                        Metrics::add(&self.metrics.spikes_total, 1);
                        tracing::info!(rule = %rule.name, alert = %alert.id, "spike alert");
                    }
                    Ok(None) => {}
                    Err(e) => tracing::error!(rule = %rule.name, error = %e, "spike check failed"),
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.cfg.every) => {}
                _ = shutdown.wait() => break,
            }
        }
        tracing::debug!("spike watch stopped");
    }
}

fn cooldown_key(rule: &str) -> String {
    format!("spike_last:{rule}")
}

/// When a hit counts: when it was published, unless the source gave no time or a time after
/// it arrived (a clock ahead, a scheduled post), then when it arrived.
fn counted_at(h: &RuleHit) -> DateTime<Utc> {
    h.published.filter(|p| *p <= h.at).unwrap_or(h.at)
}

/// Checks one rule at `now`; raises and returns the spike alert if there is one.
pub async fn check(
    store: &Store,
    cfg: &SpikeConfig,
    rule: &RuleConfig,
    desk: &DeskConfig,
    now: DateTime<Utc>,
) -> Result<Option<Alert>, StoreError> {
    let window = Duration::from_std(cfg.window).unwrap_or(Duration::hours(1));
    let cooldown = Duration::from_std(cfg.cooldown).unwrap_or_default();
    if let Some(last) = store
        .meta_get::<DateTime<Utc>>(&cooldown_key(&rule.name))
        .await?
    {
        if now - last < cooldown {
            return Ok(None);
        }
    }
    let Some(first) = store.first_hit(&rule.name).await? else {
        return Ok(None);
    };
    let window_from = now - window;
    let baseline_windows = (cfg.baseline.as_secs() / cfg.window.as_secs().max(1)).max(1) as usize;
    let history_from = window_from - window * baseline_windows as i32;
    // A hit is never counted before it arrived, so every hit counted in the history arrived
    // in it too: reading by arrival time finds them all.
    let mut hits = store
        .rule_hits(&rule.name, history_from.max(first), now)
        .await?;
    hits.retain(|h| !h.held);
    let current: Vec<&RuleHit> = hits
        .iter()
        .filter(|h| counted_at(h) >= window_from)
        .collect();
    let count = current.len() as u32;
    if count < cfg.min_count {
        return Ok(None);
    }
    // Window i (0 = the one just before the current) is [from - (i+1)·w, from - i·w).
    let w = window.num_milliseconds().max(1);
    let mut counts = vec![0u32; baseline_windows];
    for h in &hits {
        let at = counted_at(h);
        if at < window_from && at >= history_from {
            let i = ((window_from - at).num_milliseconds() - 1).max(0) / w;
            if let Some(c) = counts.get_mut(i as usize) {
                *c += 1;
            }
        }
    }
    // Only windows heard in full count: after the rule's first mention arrived (before that
    // nobody listened), with the daemon up and every source polling. A quiet window of an
    // outage would lower the baseline; its catch-up, counted when published, would raise it.
    let coverage = Coverage::load(store).await?;
    let counts: Vec<u32> = counts
        .into_iter()
        .enumerate()
        .filter(|&(i, _)| {
            let to = window_from - window * i as i32;
            let from = to - window;
            from >= first && coverage.covers(from, to)
        })
        .map(|(_, c)| c)
        .collect();
    let baseline = spike::Baseline::of(&counts);
    if !spike::is_spike(count, &baseline, cfg.sigma, cfg.min_count) {
        return Ok(None);
    }
    let mut texts = Vec::new();
    let mut sources: BTreeMap<&str, usize> = BTreeMap::new();
    let mut tone = Tone::default();
    for h in &current {
        *sources.entry(h.source.as_str()).or_default() += 1;
        let mention = store.hit_mention(h).await?;
        tone.add(h, mention.as_ref().map(|m| &m.mention));
        if let Some(m) = mention {
            let title = m.mention.title.unwrap_or_default();
            texts.push(format!("{title} {}", m.mention.text));
        }
    }
    let brand_words = Prefilter::from_query(&rule.query)
        .map(|p| p.keywords().to_vec())
        .unwrap_or_default();
    let text_refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let terms = spike::top_terms(&text_refs, &brand_words, 5);
    let explanation = format!(
        "{} {}",
        explain(count, &baseline, window, cfg, &sources, &terms),
        tone.words(count)
    );
    let mention = Mention {
        item_id: format!(
            "{}:{}",
            rule.name,
            window_from.timestamp() / window.num_seconds().max(1)
        ),
        source: SPIKE_SOURCE.into(),
        source_kind: SPIKE_KIND.into(),
        url: None,
        title: Some(format!("Spike: {count} mentions for {}", rule.name)),
        text: explanation,
        author: None,
        author_reach: None,
        published: Some(now),
        // With no hit scored, the alert says "sentiment not scored (language: …)" instead of
        // showing a score of 0.
        lang: tone.unscored_lang(),
        rating: None,
    };
    let escalate_at = now + Duration::from_std(desk.escalate_after).unwrap_or_default();
    let candidate = Candidate {
        dedup_keys: dedup::keys(&mention),
        alert: Some(NewAlert {
            rules: vec![rule.name.clone()],
            priority: rule.priority.raised(),
            sentiment: tone.mean().unwrap_or(0.0),
            negative: tone.negative(),
            targets: rule.alert.clone(),
            highlights: vec![],
            timers: vec![(TimerKind::Escalate, escalate_at)],
            thread_keys: vec![],
            repeat_of: None,
            log_hit: false,
            relevance: None,
            held: false,
        }),
        mention,
    };
    // One transaction: a crash cannot leave the alert without its cooldown (posted again) or
    // the cooldown without its alert (a spike nobody saw). It is written only while the
    // cooldown read above still holds (the last spike at or before `now - cooldown`): a
    // replica that checked the same rule at the same time and wrote first makes this one
    // write nothing.
    let passed = now - cooldown + Duration::nanoseconds(1);
    let accepted = store
        .accept_generated_marked(
            &[candidate],
            now,
            &cooldown_key(&rule.name),
            &now,
            Some(passed),
        )
        .await?;
    Ok(accepted.alerts.into_iter().next())
}

/// The tone of a spike's mentions, from the hits the analysis scored: a mention in a
/// language it does not score has no sentiment (stored as 0), and averaging it in would pull
/// a burst of German complaints towards neutral.
#[derive(Debug, Default)]
struct Tone {
    /// Sentiment of each scored hit.
    scored: Vec<f64>,
    /// Negative hits: scored and negative, or unscored with a 1–2 star rating.
    negative: usize,
    /// Hits whose negativity is known: scored ones, and negative unscored ones.
    judged: usize,
    /// Unscored hits by language.
    unscored: BTreeMap<String, usize>,
}

impl Tone {
    /// Adds one hit; `mention` is its stored mention (`None` once pruned: scored, as most
    /// are, since its language can no longer be told).
    fn add(&mut self, h: &RuleHit, mention: Option<&Mention>) {
        let lang = mention.and_then(|m| crate::analysis::lang::given(m.lang.as_deref()));
        if crate::analysis::lang::is_scored(lang) {
            self.scored.push(h.sentiment);
            self.judged += 1;
        } else {
            let lang = crate::analysis::lang::primary(lang.unwrap_or_default());
            *self.unscored.entry(lang).or_default() += 1;
            self.judged += usize::from(h.negative);
        }
        self.negative += usize::from(h.negative);
    }

    /// The mean sentiment of the scored hits; `None` when none was scored.
    fn mean(&self) -> Option<f64> {
        (!self.scored.is_empty())
            .then(|| self.scored.iter().sum::<f64>() / self.scored.len() as f64)
    }

    /// Most hits whose negativity is known are negative.
    fn negative(&self) -> bool {
        self.negative * 2 > self.judged
    }

    /// The most common language of the unscored hits when no hit was scored.
    fn unscored_lang(&self) -> Option<String> {
        if !self.scored.is_empty() {
            return None;
        }
        self.unscored
            .iter()
            .max_by_key(|(lang, n)| (**n, std::cmp::Reverse(lang.as_str())))
            .map(|(lang, _)| lang.clone())
    }

    /// "Sentiment: -0.42 on average over the 8 of 12 mentions in English (4 in languages it
    /// is not scored in: de 3, fr 1)." or "Sentiment: not scored: …".
    fn words(&self, count: u32) -> String {
        let langs = self
            .unscored
            .iter()
            .map(|(l, n)| format!("{l} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        match self.mean() {
            None => format!(
                "Sentiment: not scored; none of the {count} mentions is in a language it is scored in ({langs})."
            ),
            Some(mean) if self.unscored.is_empty() => {
                format!("Sentiment: {mean:+.2} on average.")
            }
            Some(mean) => format!(
                "Sentiment: {mean:+.2} on average over the {} of {count} mentions it is scored for; the others are in languages it is not scored in ({langs}).",
                self.scored.len()
            ),
        }
    }
}

/// "42 mentions in the last hour; usually 3 ± 1 (mean ± σ per hour over 14 days)…"
fn explain(
    count: u32,
    b: &spike::Baseline,
    window: Duration,
    cfg: &SpikeConfig,
    sources: &BTreeMap<&str, usize>,
    terms: &[(String, usize)],
) -> String {
    let per = match window.num_seconds() {
        3600 => "hour".to_string(),
        s => human_duration(s),
    };
    let mut sources: Vec<(&str, usize)> = sources.iter().map(|(k, v)| (*k, *v)).collect();
    sources.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let list = |v: Vec<String>| {
        if v.is_empty() {
            "none stand out".to_string()
        } else {
            v.join(", ")
        }
    };
    format!(
        "{count} mentions in the last {per}; usually {:.0} ± {:.0} (mean ± σ per {per} over the last {}). Top sources: {}. Top terms: {}.",
        b.mean,
        b.sd,
        match cfg.baseline.as_secs() {
            s if s % 86_400 == 0 => format!("{} days", s / 86_400),
            s => human_duration(s as i64),
        },
        list(sources.iter().take(3).map(|(s, n)| format!("{s} {n}")).collect()),
        list(terms.iter().map(|(t, n)| format!("{t} {n}")).collect()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Priority, Target};
    use crate::sources::SourceState;
    use crate::store::{Repeat, RepeatOf};

    fn rule() -> RuleConfig {
        RuleConfig {
            name: "acme".into(),
            query: "acme".into(),
            alert: vec![Target::Slack("#pr".into())],
            priority: Priority::Normal,
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

    fn candidate(id: &str, published: Option<DateTime<Utc>>) -> Candidate {
        Candidate {
            dedup_keys: vec![format!("item:hn:{id}")],
            mention: Mention {
                item_id: id.into(),
                source: "hn".into(),
                source_kind: "hackernews".into(),
                url: None,
                title: None,
                text: format!("acme post {id}"),
                author: Some(format!("a{id}")),
                author_reach: None,
                published,
                lang: None,
                rating: None,
            },
            alert: Some(NewAlert {
                rules: vec!["acme".into()],
                priority: Priority::Normal,
                sentiment: 0.0,
                negative: false,
                targets: vec![Target::Slack("#pr".into())],
                highlights: vec![],
                timers: vec![],
                thread_keys: vec![],
                repeat_of: None,
                log_hit: true,
                relevance: None,
                held: false,
            }),
        }
    }

    /// Stores `candidates` as one poll of `hn` received at `at`.
    async fn stored(store: &Store, candidates: &[Candidate], at: DateTime<Utc>) {
        store
            .accept("hn", &SourceState::default(), candidates, at)
            .await
            .unwrap();
    }

    /// Three mentions an hour (2, 3 or 4) published and heard from `from` to `to`, and the
    /// spike watch's first and last rounds of that run.
    async fn usual(store: &Store, from: DateTime<Utc>, to: DateTime<Utc>) {
        let hn = [SourceSample {
            name: "hn".into(),
            healthy: true,
            last_success: None,
        }];
        Coverage::record(store, from, from, &hn).await.unwrap();
        let mut at = from;
        let mut batch = Vec::new();
        while at < to {
            for k in 0..(2 + (at.timestamp() / 3600) % 3) {
                let published = at + Duration::minutes(5 + 10 * k);
                let c = candidate(&format!("u{}", published.timestamp()), Some(published));
                batch.push((c, published));
            }
            at += Duration::hours(1);
        }
        for (c, published) in batch {
            stored(store, &[c], published).await;
        }
        Coverage::record(store, from, to, &hn).await.unwrap();
    }

    /// The spike alert and its cooldown marker are one transaction: when the transaction is
    /// refused (here a second candidate of the batch is invalid, after the alert was written
    /// inside it), neither exists; when it commits, both do, also after the store is opened
    /// again (a crash after `check` returned), and the next check stays quiet.
    #[tokio::test]
    async fn the_cooldown_marker_and_the_spike_alert_are_written_together() {
        let dir = tempfile::tempdir().unwrap();
        let now: DateTime<Utc> = "2026-11-23T12:00:00Z".parse().unwrap();
        let key = cooldown_key("acme");
        {
            let store = Store::open(dir.path()).unwrap();
            let mut bad = candidate("bad", None);
            bad.alert.as_mut().unwrap().repeat_of = Some(Repeat {
                of: RepeatOf::Earlier(5),
                note: Default::default(),
            });
            let err = store
                .accept_generated_marked(&[candidate("spike", None), bad], now, &key, &now, None)
                .await
                .unwrap_err();
            assert!(matches!(err, StoreError::Stale { .. }), "{err}");
            assert_eq!(store.meta_get::<DateTime<Utc>>(&key).await.unwrap(), None);
            assert!(store.alerts().await.unwrap().is_empty());
            assert!(store.outbox().await.unwrap().is_empty());

            usual(&store, now - Duration::days(15), now - Duration::hours(1)).await;
            for k in 0..30 {
                let at = now - Duration::minutes(50) + Duration::minutes(k);
                stored(&store, &[candidate(&format!("b{k}"), Some(at))], at).await;
            }
            let cfg = SpikeConfig::default();
            let alert = check(&store, &cfg, &rule(), &desk(), now)
                .await
                .unwrap()
                .expect("a spike");
            assert_eq!(alert.created_at, now);
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(
            store.meta_get::<DateTime<Utc>>(&key).await.unwrap(),
            Some(now)
        );
        let spikes: Vec<_> = store
            .alerts()
            .await
            .unwrap()
            .into_iter()
            .filter(|a| a.mention_key.starts_with(SPIKE_SOURCE))
            .collect();
        assert_eq!(spikes.len(), 1);
        let cfg = SpikeConfig::default();
        let again = check(&store, &cfg, &rule(), &desk(), now + Duration::minutes(5))
            .await
            .unwrap();
        assert!(again.is_none(), "cooling down after the reopen");
    }

    /// A burst of mentions the relevance filter held back is no spike (they are what the team
    /// taught it to keep off the desk); the same burst posted is one.
    #[tokio::test]
    async fn a_burst_of_held_back_mentions_is_no_spike() {
        for held in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(dir.path()).unwrap();
            let now: DateTime<Utc> = "2026-11-23T12:00:00Z".parse().unwrap();
            usual(&store, now - Duration::days(15), now - Duration::hours(1)).await;
            for k in 0..30 {
                let at = now - Duration::minutes(50) + Duration::minutes(k);
                let mut c = candidate(&format!("b{k}"), Some(at));
                c.alert.as_mut().unwrap().held = held;
                stored(&store, &[c], at).await;
            }
            let spike = check(&store, &SpikeConfig::default(), &rule(), &desk(), now)
                .await
                .unwrap();
            assert_eq!(spike.is_some(), !held, "held: {held}");
        }
    }

    /// A spike's sentiment is the mean over the hits the analysis scored: German posts (no
    /// sentiment, stored as 0) do not pull a burst of English complaints towards neutral,
    /// and a burst with nothing scored says so instead of showing 0.
    #[tokio::test]
    async fn spike_sentiment_averages_scored_hits_only_and_says_when_none_were() {
        for english in [10u32, 0] {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(dir.path()).unwrap();
            let now: DateTime<Utc> = "2026-11-23T12:00:00Z".parse().unwrap();
            usual(&store, now - Duration::days(15), now - Duration::hours(1)).await;
            for k in 0..30u32 {
                let at = now - Duration::minutes(50) + Duration::minutes(i64::from(k));
                let mut c = candidate(&format!("b{k}"), Some(at));
                let alert = c.alert.as_mut().unwrap();
                if k < english {
                    c.mention.lang = Some("en".into());
                    alert.sentiment = -0.8;
                    alert.negative = true;
                } else {
                    c.mention.lang = Some(if k % 3 == 0 { "fr" } else { "de-AT" }.into());
                }
                stored(&store, &[c], at).await;
            }
            let alert = check(&store, &SpikeConfig::default(), &rule(), &desk(), now)
                .await
                .unwrap()
                .expect("a spike");
            let m = store.alert_mention(&alert).await.unwrap().unwrap().mention;
            if english > 0 {
                assert!((alert.sentiment + 0.8).abs() < 1e-9, "{}", alert.sentiment);
                assert!(alert.negative, "all scored hits are negative");
                assert_eq!(m.lang, None);
                assert!(
                    m.text.contains("Sentiment: -0.80 on average over the 10 of 30 mentions it is scored for; the others are in languages it is not scored in (de 14, fr 6)."),
                    "{}",
                    m.text
                );
            } else {
                assert_eq!(alert.sentiment, 0.0);
                assert!(!alert.negative);
                assert_eq!(m.lang.as_deref(), Some("de"), "the alert says the language");
                assert!(
                    m.text.contains("Sentiment: not scored; none of the 30 mentions is in a language it is scored in (de 20, fr 10)."),
                    "{}",
                    m.text
                );
                let view = crate::chat::AlertView::new(&alert, &m);
                assert!(
                    view.sentiment_words().starts_with("sentiment not scored"),
                    "{}",
                    view.sentiment_words()
                );
            }
        }
    }

    /// The spike task itself: at start it records its run (so the hours the daemon was down
    /// are known), finds no spike in a catch-up of posts published during the downtime, and
    /// alerts once on a real burst in a later round.
    #[tokio::test(start_paused = true)]
    async fn the_spike_task_skips_a_catch_up_and_alerts_on_a_burst() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let base: DateTime<Utc> = "2026-11-23T12:00:00Z".parse().unwrap();
        let down_from = base - Duration::hours(6);
        usual(&store, base - Duration::days(15), down_from).await;
        // Back at `base`: 18 posts published while down arrive in the first poll.
        for k in 0..18 {
            let published = down_from + Duration::minutes(20 * k + 3);
            stored(
                &store,
                &[candidate(&format!("c{k}"), Some(published))],
                base,
            )
            .await;
        }
        let health = Health::new();
        health.register("hn", "hackernews");
        let cfg = SpikeConfig::default();
        let watch = SpikeWatch::new(
            cfg.clone(),
            vec![rule()],
            desk(),
            store.clone(),
            Clock::tokio_at(base),
            Arc::new(Metrics::default()),
            health,
        );
        let (trigger, shutdown) = crate::shutdown::channel();
        let task = tokio::spawn(watch.run(shutdown));
        /// Waits (in paused time) until `done` holds for the store.
        async fn wait_for(store: &Store, what: &str, done: impl AsyncFn(&Store) -> bool) {
            for _ in 0..10_000 {
                if done(store).await {
                    return;
                }
                tokio::task::yield_now().await;
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            panic!("timed out waiting for {what}");
        }
        wait_for(&store, "the run to be recorded", async |s: &Store| {
            Coverage::load(s).await.unwrap().runs.len() == 2
        })
        .await;
        let runs = Coverage::load(&store).await.unwrap().runs;
        assert!(runs[1].from >= base && runs[1].from < base + Duration::minutes(1));
        assert_eq!(runs[0].to, down_from, "down from then until the restart");
        let spiked = async |s: &Store| {
            s.alerts()
                .await
                .unwrap()
                .iter()
                .any(|a| a.mention_key.starts_with(SPIKE_SOURCE))
        };
        assert!(!spiked(&store).await, "a catch-up is not a spike");

        // A real burst: 25 new posts in the next minutes, stored in one poll (one
        // transaction), so a round sees all of them or none.
        let burst: Vec<Candidate> = (0..25)
            .map(|k| candidate(&format!("b{k}"), Some(base + Duration::seconds(5 * k + 1))))
            .collect();
        stored(&store, &burst, base + Duration::minutes(2)).await;
        tokio::time::advance(cfg.every).await;
        wait_for(&store, "the spike alert", spiked).await;
        trigger.trigger();
        task.await.unwrap();
        let spikes: Vec<_> = store
            .alerts()
            .await
            .unwrap()
            .into_iter()
            .filter(|a| a.mention_key.starts_with(SPIKE_SOURCE))
            .collect();
        assert_eq!(spikes.len(), 1, "one spike alert");
        let m = store.alert_mention(&spikes[0]).await.unwrap().unwrap();
        assert!(
            m.mention.text.starts_with("27 mentions in the last hour"),
            "25 new and the 2 of the catch-up published in the last hour: {}",
            m.mention.text
        );
    }

    /// A spike store with the usual volume of 15 days and a burst in the last hour before
    /// `now`, on a fresh PostgreSQL database (`None`: the server binaries are missing).
    async fn spiking_database(
        now: DateTime<Utc>,
    ) -> Option<(crate::store::pg::throwaway::TestDatabase, Store, Store)> {
        let db = crate::store::pg::throwaway::database().await?;
        let mut config = crate::store::StoreConfig::at("");
        config.backend = crate::store::config::Backend::Postgres(db.config());
        let first = Store::open_with(&config).await.unwrap();
        let second = Store::open_with(&config).await.unwrap();
        usual(&first, now - Duration::days(15), now - Duration::hours(1)).await;
        for k in 0..30 {
            let at = now - Duration::minutes(50) + Duration::minutes(k);
            stored(&first, &[candidate(&format!("b{k}"), Some(at))], at).await;
        }
        Some((db, first, second))
    }

    fn spike_alerts(alerts: Vec<Alert>) -> usize {
        alerts
            .into_iter()
            .filter(|a| a.mention_key.starts_with(SPIKE_SOURCE))
            .count()
    }

    /// Two replicas check the same rule at the same moment (a minute apart, so their spike
    /// mentions differ and dedup alone would not stop the second): one spike alert is
    /// raised, whichever commits first. And a replica whose cooldown read is stale by the
    /// time it writes (another raised the spike meanwhile) writes nothing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_replicas_checking_a_spike_at_once_raise_it_once() {
        let now: DateTime<Utc> = "2026-11-23T12:00:00Z".parse().unwrap();
        let Some((_db, first, second)) = spiking_database(now).await else {
            return;
        };
        let cfg = SpikeConfig::default();
        let earlier = now - Duration::minutes(1);
        let (rule, desk) = (rule(), desk());
        let (a, b) = tokio::join!(
            check(&first, &cfg, &rule, &desk, now),
            check(&second, &cfg, &rule, &desk, earlier)
        );
        let raised = [a.unwrap(), b.unwrap()];
        assert_eq!(
            raised.iter().filter(|r| r.is_some()).count(),
            1,
            "{raised:?}"
        );
        assert_eq!(spike_alerts(first.alerts().await.unwrap()), 1);

        // The stale read, made deterministic: the second replica decided before the first
        // wrote its cooldown, and writes with the bound its read gave.
        let key = cooldown_key("acme");
        let passed = earlier - Duration::from_std(cfg.cooldown).unwrap() + Duration::nanoseconds(1);
        let late = second
            .accept_generated_marked(
                &[candidate("late-spike", None)],
                earlier,
                &key,
                &earlier,
                Some(passed),
            )
            .await
            .unwrap();
        assert!(late.alerts.is_empty());
        assert_eq!(spike_alerts(first.alerts().await.unwrap()), 1);
        assert!(
            !first.is_seen("item:hn:late-spike").await.unwrap(),
            "nothing written"
        );
    }
}
