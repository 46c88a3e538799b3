//! The spike watch: every few minutes, each rule's mentions in the last window are compared
//! with its baseline (`analysis::spike`); a spike becomes an alert like any other (claimable,
//! resolvable, escalated), explained in its text, with a per-rule cooldown. It only writes
//! alerts through the store; posting is the relay's job.

pub mod config;

use crate::analysis::{dedup, spike};
use crate::clock::Clock;
use crate::desk::config::DeskConfig;
use crate::digest::report::SPIKE_KIND;
use crate::metrics::Metrics;
use crate::model::{Alert, Mention, TimerKind};
use crate::rules::config::RuleConfig;
use crate::shutdown::Shutdown;
use crate::sources::prefilter::Prefilter;
use crate::store::{Candidate, NewAlert, RuleHit, Store, StoreError};
use crate::util::human_duration;
use chrono::{DateTime, Duration, Utc};
use config::SpikeConfig;
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
}

impl SpikeWatch {
    pub(crate) fn new(
        cfg: SpikeConfig,
        rules: Vec<RuleConfig>,
        desk: DeskConfig,
        store: Store,
        clock: Clock,
        metrics: Arc<Metrics>,
    ) -> SpikeWatch {
        SpikeWatch {
            cfg,
            rules,
            desk,
            store,
            clock,
            metrics,
        }
    }

    /// Checks every rule now and then every `[spikes].every`; a spike alert reaches the
    /// relay through the store's outbox signal.
    pub(crate) async fn run(self, mut shutdown: Shutdown) {
        loop {
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
    if let Some(last) = store.meta_get::<DateTime<Utc>>(&cooldown_key(&rule.name))? {
        if now - last < cooldown {
            return Ok(None);
        }
    }
    let Some(first) = store.first_hit(&rule.name)? else {
        return Ok(None);
    };
    let window_from = now - window;
    let baseline_windows = (cfg.baseline.as_secs() / cfg.window.as_secs().max(1)).max(1) as usize;
    let history_from = window_from - window * baseline_windows as i32;
    let hits = store.rule_hits(&rule.name, history_from.max(first), now)?;
    let current: Vec<&RuleHit> = hits.iter().filter(|h| h.at >= window_from).collect();
    let count = current.len() as u32;
    if count < cfg.min_count {
        return Ok(None);
    }
    // Only whole windows since the rule's first mention count: before that it was silent
    // because nobody listened, not because the brand was quiet.
    // Window i (0 = the one just before the current) is [from - (i+1)·w, from - i·w).
    let w = window.num_milliseconds().max(1);
    let mut counts = vec![0u32; baseline_windows];
    for h in hits.iter().filter(|h| h.at < window_from) {
        let i = ((window_from - h.at).num_milliseconds() - 1).max(0) / w;
        if let Some(c) = counts.get_mut(i as usize) {
            *c += 1;
        }
    }
    let usable = (0..baseline_windows)
        .take_while(|&i| window_from - window * (i as i32 + 1) >= first)
        .count();
    counts.truncate(usable);
    let baseline = spike::Baseline::of(&counts);
    if !spike::is_spike(count, &baseline, cfg.sigma, cfg.min_count) {
        return Ok(None);
    }
    let mut texts = Vec::new();
    let mut sources: BTreeMap<&str, usize> = BTreeMap::new();
    for h in &current {
        *sources.entry(h.source.as_str()).or_default() += 1;
        if let Some(m) = store.mention(&h.mention_key)? {
            let title = m.mention.title.unwrap_or_default();
            texts.push(format!("{title} {}", m.mention.text));
        }
    }
    let brand_words = Prefilter::from_query(&rule.query)
        .map(|p| p.keywords().to_vec())
        .unwrap_or_default();
    let text_refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let terms = spike::top_terms(&text_refs, &brand_words, 5);
    let explanation = explain(count, &baseline, window, cfg, &sources, &terms);

    let negatives = current.iter().filter(|h| h.negative).count();
    let sentiment = current.iter().map(|h| h.sentiment).sum::<f64>() / current.len() as f64;
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
        lang: None,
        rating: None,
    };
    let escalate_at = now + Duration::from_std(desk.escalate_after).unwrap_or_default();
    let candidate = Candidate {
        dedup_keys: dedup::keys(&mention),
        alert: Some(NewAlert {
            rules: vec![rule.name.clone()],
            priority: rule.priority.raised(),
            sentiment,
            negative: negatives * 2 > current.len(),
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
    let accepted = store.accept_generated(&[candidate], now).await?;
    store.meta_set(&cooldown_key(&rule.name), &now).await?;
    Ok(accepted.alerts.into_iter().next())
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
