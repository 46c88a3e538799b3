//! Intake: turns what a poll returned into stored mentions and alerts. It runs every mention
//! through the rules, scores sentiment and priority, decides which mentions repeat an alert
//! (and go into its thread), and hands the store one batch per poll (dedup happens inside the
//! store's transaction). It never talks to chat, and it does not wake the relay: the store
//! does on every outbox write.

use crate::analysis::relevance::{self, config::RelevanceConfig, Counts};
use crate::analysis::{dedup, lang, negativity, priority};
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::model::{Mention, Note, Priority, SourceState, Target, TimerKind};
use crate::rules::config::RuleConfig;
use crate::rules::{Document, RuleSet};
use crate::shutdown::Shutdown;
use crate::sources::poll::{PollOutcome, Polled};
use crate::sources::webhook::Delivery;
use crate::store::{
    off_runtime, Candidate, MentionPrune, NewAlert, Repeat, RepeatOf, Store, StoreError, ThreadKey,
};
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

pub(crate) mod leases;
#[cfg(test)]
mod replay;

/// What the rules and analysis say about one mention.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub rules: Vec<String>,
    /// VADER compound; `None` when no rule matched (only matched mentions are analysed) or
    /// the mention is in a language the analysis was not built for (`lang::is_scored`).
    pub sentiment: Option<f64>,
    /// `None` when no rule matched, or when the language is not scored and no 1–2 star
    /// rating says so.
    pub negative: Option<bool>,
    /// `None` when no rule matched.
    pub priority: Option<Priority>,
    pub targets: Vec<Target>,
    pub highlights: Vec<(usize, usize)>,
    /// The mention's language: its own tag, else detected (ISO 639-1) when a rule matched or
    /// a rule needed it; `None` when unknown.
    pub lang: Option<String>,
}

/// Everything needed to judge a mention; shared by `run`, `match` and `scan`.
pub struct Judge {
    pub matcher: Arc<RuleSet>,
    pub rules: Vec<RuleConfig>,
    /// Source name → the languages its `languages` key keeps (primary codes); sources
    /// without the key are not listed.
    pub source_languages: HashMap<String, Vec<String>>,
}

impl Verdict {
    /// No rule matched (or the mention was dropped as a whole): nothing analysed.
    fn unmatched(lang: Option<String>) -> Verdict {
        Verdict {
            rules: Vec::new(),
            sentiment: None,
            negative: None,
            priority: None,
            targets: Vec::new(),
            highlights: Vec::new(),
            lang,
        }
    }
}

impl Judge {
    pub fn judge(&self, m: &Mention) -> Verdict {
        let given = lang::given(m.lang.as_deref());
        let doc = Document {
            text: &m.text,
            title: m.title.as_deref(),
            author: m.author.as_deref(),
            url: m.url.as_deref(),
            source: &m.source,
            source_kind: &m.source_kind,
            lang: given,
        };
        let found = self.matcher.matches_detecting(&doc);
        let matches = found.rules;
        if matches.is_empty() {
            // Sentiment and complaint analysis (and language detection) cost more than
            // matching; nothing reads them for a mention that alerts nobody.
            return Verdict::unmatched(
                given
                    .map(str::to_string)
                    .or(found.detected.flatten().map(str::to_string)),
            );
        }
        let lang = given.map(str::to_string).or_else(|| {
            found
                .detected
                .unwrap_or_else(|| lang::detect(m.title.as_deref(), &m.text))
                .map(str::to_string)
        });
        // A source's `languages` drops its mentions in other languages, as `[rules_defaults]
        // languages` does for every source; a language that cannot be told passes.
        if let Some(kept) = self.source_languages.get(&m.source) {
            if lang::left_out_by(kept, lang.as_deref()) {
                return Verdict::unmatched(lang);
            }
        }
        // The analysis knows English only: elsewhere its score would be a guess, so it is
        // left unknown (and the alert says why).
        let s = lang::is_scored(lang.as_deref())
            .then(|| negativity::assess(&negativity::analysed_text(m.title.as_deref(), &m.text)));
        // A 1- or 2-star review is a complaint whatever its words say ("fine I guess" with one
        // star): the stars are the author's own verdict, in any language. The text's sentiment
        // score is kept.
        let low_rating = m.rating.is_some_and(|r| (1..=2).contains(&r));
        let negative = match &s {
            Some(s) => Some(s.negative || low_rating),
            None => low_rating.then_some(true),
        };
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
            sentiment: s.map(|s| s.sentiment),
            negative,
            priority: rule_priority.map(|p| {
                priority::priority(p, negative.unwrap_or(false), m.author_reach, m.reach_unit())
            }),
            targets,
            highlights,
            lang,
        }
    }

    /// The mention judged, with its language filled in when it had none and one was found.
    pub(crate) fn candidate(&self, mut m: Mention) -> Candidate {
        m.strip_nul();
        let v = self.judge(&m);
        if lang::given(m.lang.as_deref()).is_none() && v.lang.is_some() {
            m.lang = v.lang.clone();
        }
        Candidate {
            dedup_keys: if v.priority.is_some() {
                dedup::keys(&m)
            } else {
                dedup::unmatched_keys(&m)
            },
            alert: v.priority.map(|priority| NewAlert {
                rules: v.rules,
                priority,
                sentiment: v.sentiment.unwrap_or_default(),
                negative: v.negative.unwrap_or_default(),
                targets: v.targets,
                highlights: v.highlights,
                timers: vec![],
                thread_keys: vec![],
                repeat_of: None,
                log_hit: true,
                relevance: None,
                held: false,
            }),
            mention: m,
        }
    }
}

pub(crate) use crate::store::REPEAT_WINDOW_DAYS;

/// The most mentions one store transaction holds: a larger poll is written in batches, so
/// neither a transaction's memory nor how long it holds the store grows with the poll.
pub(crate) const MAX_BATCH: usize = 500;

/// How often old mention bodies are dropped (`[store] keep_mentions`); also once at start.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Mention-log entries one blocking prune call looks at (a few milliseconds of sled work).
const PRUNE_CHUNK: usize = 2000;

/// How often one poll's batch is decided again when the store reports that a read it was
/// decided from changed before the write (another writer claimed a thread key meanwhile).
const DECIDE_TRIES: usize = 3;

/// The pipeline stage between the sources and the store: stores each poll's outcome as it
/// arrives, until shutdown or until every source has stopped.
pub(crate) struct Intake {
    judge: Arc<Judge>,
    /// When an unclaimed alert escalates (`[desk].escalate_after`): its timer starts with it.
    escalate_after: Duration,
    store: Store,
    polls: mpsc::Receiver<Polled>,
    /// Webhook deliveries, each answered once stored (see `with_deliveries`).
    deliveries: Option<mpsc::Receiver<Delivery>>,
    relevance: Arc<RelevanceFilter>,
    metrics: Arc<Metrics>,
    clock: Clock,
}

/// Who waits for a stored outcome, and how they are answered.
enum Answer {
    /// A poller: whether to move on to the outcome's state.
    Poll(tokio::sync::oneshot::Sender<bool>),
    /// A webhook's sender: stored, or why not.
    Webhook(tokio::sync::oneshot::Sender<Result<(), String>>),
}

impl Intake {
    pub(crate) fn new(
        judge: Arc<Judge>,
        escalate_after: Duration,
        store: Store,
        polls: mpsc::Receiver<Polled>,
        metrics: Arc<Metrics>,
        clock: Clock,
    ) -> Intake {
        Intake {
            judge,
            escalate_after,
            store,
            polls,
            deliveries: None,
            relevance: Arc::new(RelevanceFilter::new(RelevanceConfig::default())),
            metrics,
            clock,
        }
    }

    /// Scores and holds back as `[relevance]` says (the default is on).
    pub(crate) fn with_relevance(mut self, cfg: RelevanceConfig) -> Intake {
        self.relevance = Arc::new(RelevanceFilter::new(cfg));
        self
    }

    /// Also stores the webhook deliveries sent on `deliveries` (by `server::ingest`), in turn
    /// with the polls, and answers each one's `stored` only after `accept` returned: after the
    /// store's flush, so the 202 the server then sends means the items survive a crash. The
    /// intake then runs until shutdown even when no source polls.
    pub(crate) fn with_deliveries(mut self, deliveries: mpsc::Receiver<Delivery>) -> Intake {
        self.deliveries = Some(deliveries);
        self
    }

    pub(crate) async fn run(mut self, mut shutdown: Shutdown) {
        let mut polling = true;
        let receiving = self.deliveries.is_some();
        let mut prune_every = tokio::time::interval(PRUNE_EVERY);
        prune_every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pruning: Option<tokio::task::JoinHandle<usize>> = None;
        loop {
            let (outcome, answer) = tokio::select! {
                _ = prune_every.tick() => {
                    // In a task of its own, so polls and webhooks are stored meanwhile; never
                    // two at once (a tick while one runs is skipped).
                    if pruning.as_ref().is_none_or(|p| p.is_finished()) {
                        let (store, now) = (self.store.clone(), self.clock.now());
                        pruning = Some(tokio::spawn(prune(store, now, shutdown.clone())));
                    }
                    continue;
                }
                o = self.polls.recv(), if polling => match o {
                    Some(p) => (p.outcome, Answer::Poll(p.stored)),
                    None if receiving => {
                        polling = false;
                        continue;
                    }
                    None => break,
                },
                Some(d) = next_delivery(&mut self.deliveries) => (d.outcome, Answer::Webhook(d.stored)),
                _ = shutdown.wait() => break,
            };
            // A poll was made under this replica's lease on its source: stored only while the
            // lease is still held (fencing). A webhook delivery has no lease: any replica
            // takes its requests.
            let leased = matches!(answer, Answer::Poll(_));
            let result = self.accept_as(outcome, leased).await;
            match answer {
                Answer::Poll(stored) => {
                    match &result {
                        Err(e @ StoreError::LeaseLost { .. }) => {
                            tracing::warn!(error = %e, "a poll was not stored: this replica no longer holds its source (taken over, or released at shutdown); the holder fetches the items again");
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "could not store a poll's mentions; they will be fetched again");
                        }
                        Ok(_) => {}
                    }
                    // The poller keeps its last stored state unless this one was stored.
                    let _ = stored.send(result.is_ok());
                }
                Answer::Webhook(stored) => {
                    let result = result.map(|_| ()).map_err(|e| {
                        tracing::error!(error = %e, "could not store a webhook delivery; its sender is asked to send it again");
                        e.to_string()
                    });
                    // The sender may have given up waiting; the items are stored either way.
                    let _ = stored.send(result);
                }
            }
        }
        tracing::debug!("intake stopped");
    }

    /// Judges one poll's mentions, decides which repeat an alert, and stores them in batches
    /// of at most `MAX_BATCH`, each one transaction (mentions, alerts, outbox entries), the
    /// source's new state only with the last: a crash between batches leaves the state
    /// where it was, so the next poll fetches the items again and dedup drops those already
    /// stored, and nothing is lost or posted twice. Judging (matching, scoring) and the
    /// writes run off the runtime's workers; the threading decision awaits the store's
    /// lookups. The store rings the relay itself. Returns how many alerts were created.
    #[cfg(test)]
    async fn accept(&self, outcome: PollOutcome) -> Result<usize, StoreError> {
        self.accept_as(outcome, false).await
    }

    /// `accept`, fenced by this replica's lease on the outcome's source when `leased` (see
    /// `Store::accept_leased`: nothing is written once another replica took the source over).
    async fn accept_as(&self, outcome: PollOutcome, leased: bool) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let PollOutcome {
            source,
            mentions,
            state,
        } = outcome;
        let total = mentions.len();
        let mut mentions = mentions.into_iter();
        let mut alerts = 0;
        let mut left = total;
        loop {
            let batch: Vec<Mention> = mentions.by_ref().take(MAX_BATCH).collect();
            left -= batch.len();
            let last = left == 0;
            let with_state = last.then(|| (source.clone(), state.clone()));
            alerts += self
                .accept_batch(&source, with_state, batch, now, leased)
                .await?;
            if last {
                return Ok(alerts);
            }
        }
    }

    /// Stores one batch of a poll (see `accept`); `state` only with the poll's last batch.
    async fn accept_batch(
        &self,
        source: &str,
        state: Option<(String, SourceState)>,
        batch: Vec<Mention>,
        now: DateTime<Utc>,
        leased: bool,
    ) -> Result<usize, StoreError> {
        let total = batch.len() as u64;
        let (judge, store, escalate_after) =
            (self.judge.clone(), self.store.clone(), self.escalate_after);
        // Matching and scoring take the CPU time: off the runtime. The store reads that
        // follow (mutes, relevance counts, threading) are each a lookup.
        let scored = {
            let judge = judge.clone();
            off_runtime(move || batch.into_iter().map(|m| judge.candidate(m)).collect()).await
        };
        let judged =
            settle_all(&judge, &self.relevance, &store, escalate_after, scored, now).await?;
        let mut tries = 0;
        let accepted = loop {
            tries += 1;
            let batch = decide_threads(&self.store, judged.clone(), now).await?;
            let written = if leased {
                let state = state.clone().map(|(_, state)| state);
                self.store.accept_leased(source, state, batch, now).await
            } else {
                self.store.accept_owned(state.clone(), batch, now).await
            };
            match written {
                Err(StoreError::Stale { reason }) if tries < DECIDE_TRIES => {
                    tracing::debug!(source, %reason, "threading decision went stale; deciding again");
                }
                other => break other?,
            }
        };
        let metrics = &self.metrics;
        Metrics::add(&metrics.mentions_total, accepted.new_mentions as u64);
        Metrics::add(
            &metrics.duplicates_total,
            total - accepted.new_mentions as u64,
        );
        let held = accepted.alerts.iter().filter(|a| a.held).count() as u64;
        Metrics::add(&metrics.alerts_total, accepted.alerts.len() as u64 - held);
        Metrics::add(&metrics.held_total, held);
        for a in &accepted.alerts {
            if a.held {
                tracing::info!(source, alert = %a.id, rules = ?a.rules, relevance = ?a.relevance, "new alert held back (low relevance)");
            } else {
                tracing::info!(source, alert = %a.id, rules = ?a.rules, priority = %a.priority, "new alert");
            }
        }
        for id in &accepted.threaded {
            tracing::info!(source, alert = %id, "repeat of an existing alert; added to its thread");
        }
        Ok(accepted.alerts.len())
    }

    /// A mention judged, its alert (unless muted) with the escalation timer; not yet threaded.
    #[cfg(test)]
    async fn judged(&self, m: Mention, now: DateTime<Utc>) -> Result<Candidate, StoreError> {
        let c = self.judge.candidate(m);
        settle(
            &self.judge,
            &self.relevance,
            &self.store,
            self.escalate_after,
            c,
            now,
        )
        .await
    }
}

/// Drops old mention bodies (`[store] keep_mentions`) off the runtime, `PRUNE_CHUNK` log
/// entries per blocking call, stopping between chunks at shutdown; a failure is logged and
/// tried again at the next prune. Returns how many chunks it ran.
async fn prune(store: Store, now: DateTime<Utc>, shutdown: Shutdown) -> usize {
    let mut state = MentionPrune::new(now);
    loop {
        if shutdown.is_triggered() {
            break;
        }
        let done;
        (state, done) = store.prune_mentions_chunk(state, PRUNE_CHUNK).await;
        match done {
            Ok(false) => {}
            Ok(true) => break,
            Err(e) => {
                tracing::warn!(error = %e, "could not drop old mention bodies; trying again later");
                break;
            }
        }
    }
    if state.dropped > 0 {
        tracing::info!(
            dropped = state.dropped,
            "dropped old mention bodies ([store] keep_mentions)"
        );
    }
    state.calls
}

/// `settle` for each candidate of a batch.
async fn settle_all(
    judge: &Judge,
    relevance: &RelevanceFilter,
    store: &Store,
    escalate_after: Duration,
    candidates: Vec<Candidate>,
    now: DateTime<Utc>,
) -> Result<Vec<Candidate>, StoreError> {
    let mut settled = Vec::with_capacity(candidates.len());
    for c in candidates {
        settled.push(settle(judge, relevance, store, escalate_after, c, now).await?);
    }
    Ok(settled)
}

/// A matched and scored mention's alert: dropped when its author or site is muted, else
/// scored for relevance and, unless held back, given its escalation timer; not yet threaded.
async fn settle(
    judge: &Judge,
    relevance: &RelevanceFilter,
    store: &Store,
    escalate_after: Duration,
    mut c: Candidate,
    now: DateTime<Utc>,
) -> Result<Candidate, StoreError> {
    if c.alert.is_none() {
        return Ok(c);
    }
    let keys = dedup::mute_keys(&c.mention);
    let mut muted = false;
    for k in keys.all() {
        muted |= store.is_muted(k).await?;
    }
    if muted {
        tracing::debug!(source = %c.mention.source, item = %c.mention.item_id, "muted author or site; stored without an alert");
        c.alert = None;
    }
    if let Some(a) = &mut c.alert {
        let critical = a.rules.iter().any(|name| {
            judge
                .rules
                .iter()
                .any(|r| r.name == *name && r.priority == Priority::Critical)
        });
        // The relevance filter only ever holds back: when its counts cannot be read, the
        // mention is posted as if there were none, never dropped or retried for ever.
        (a.relevance, a.held) = match relevance.judge(store, &c.mention, a, critical).await {
            Ok(judged) => judged,
            Err(e) => {
                tracing::warn!(rules = ?a.rules, error = %e, "relevance counts unreadable; the alert is posted without a relevance score");
                (None, false)
            }
        };
        if !a.held {
            let escalate_at = now + chrono::Duration::from_std(escalate_after).unwrap_or_default();
            a.timers = vec![(TimerKind::Escalate, escalate_at)];
        }
    }
    Ok(c)
}

/// Scores alerting mentions with their rules' relevance models and decides which are held
/// back. The counts are read from the store once per label written (the store's label
/// generation) and shared by every mention until the next label.
pub(crate) struct RelevanceFilter {
    cfg: RelevanceConfig,
    cache: Mutex<ModelCache>,
}

#[derive(Default)]
struct ModelCache {
    /// The store's label generation the models below were read at.
    generation: Option<u64>,
    global: Option<Arc<Counts>>,
    rules: HashMap<String, Arc<Counts>>,
}

impl RelevanceFilter {
    pub(crate) fn new(cfg: RelevanceConfig) -> RelevanceFilter {
        RelevanceFilter {
            cfg,
            cache: Mutex::default(),
        }
    }

    /// The relevance of `m` (the highest of its rules' scores; `None` while none of its rules
    /// has a label) and whether it is held back: only when every rule it matched has learned
    /// enough (`min_labels`, both kinds) and scores it below `hold_below`, and never a
    /// complaint (negative at high priority or above), a post in a language whose sentiment is
    /// not scored, or a mention of a critical rule.
    async fn judge(
        &self,
        store: &Store,
        m: &Mention,
        alert: &NewAlert,
        critical: bool,
    ) -> Result<(Option<f32>, bool), StoreError> {
        if !self.cfg.enabled || alert.rules.is_empty() {
            return Ok((None, false));
        }
        let (global, models) = self.models(store, &alert.rules).await?;
        if models.iter().all(|c| c.header.labels.total() == 0) {
            return Ok((None, false));
        }
        let features = relevance::features(m);
        let mut best: Option<f64> = None;
        let mut all_low = true;
        for counts in &models {
            let labelled = counts.header.labels.total() > 0;
            let trained = relevance::trained(&counts.header.labels, self.cfg.min_labels);
            let score = labelled.then(|| relevance::score(counts, &global, &features));
            if let Some(s) = score {
                best = Some(best.map_or(s, |b: f64| b.max(s)));
            }
            all_low &= trained && score.is_some_and(|s| s < self.cfg.hold_below);
        }
        let complaint = alert.negative && alert.priority >= Priority::High;
        // A post in a language the analysis does not score could be a complaint nobody can
        // tell: it is never held back.
        let unscored = !lang::is_scored(m.lang.as_deref());
        let held = all_low && !complaint && !critical && !unscored;
        Ok((best.map(|s| s as f32), held))
    }

    /// The global model and each rule's, from the cache while no label was written since.
    async fn models(
        &self,
        store: &Store,
        rules: &[String],
    ) -> Result<(Arc<Counts>, Vec<Arc<Counts>>), StoreError> {
        let generation = store.label_generation().await?;
        let cached = |rule: Option<&str>| -> Option<Arc<Counts>> {
            let mut cache = self.cache.lock().expect("relevance cache lock");
            if cache.generation != Some(generation) {
                *cache = ModelCache {
                    generation: Some(generation),
                    ..ModelCache::default()
                };
            }
            match rule {
                None => cache.global.clone(),
                Some(r) => cache.rules.get(r).cloned(),
            }
        };
        // The lock is never held across a read: counts read twice by racing batches are equal.
        let keep = |rule: Option<&str>, counts: Arc<Counts>| {
            let mut cache = self.cache.lock().expect("relevance cache lock");
            if cache.generation == Some(generation) {
                match rule {
                    None => cache.global = Some(counts),
                    Some(r) => {
                        cache.rules.insert(r.to_string(), counts);
                    }
                }
            }
        };
        let global = match cached(None) {
            Some(g) => g,
            None => {
                let g = Arc::new(store.relevance_counts(None).await?);
                keep(None, g.clone());
                g
            }
        };
        let mut models = Vec::with_capacity(rules.len());
        for rule in rules {
            let counts = match cached(Some(rule)) {
                Some(c) => c,
                None => {
                    let c = Arc::new(store.relevance_counts(Some(rule)).await?);
                    keep(Some(rule), c.clone());
                    c
                }
            };
            models.push(counts);
        }
        Ok((global, models))
    }
}

/// The next webhook delivery; never resolves without a receiver.
async fn next_delivery(deliveries: &mut Option<mpsc::Receiver<Delivery>>) -> Option<Delivery> {
    match deliveries {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Decides, for each alerting mention of a batch, whether it repeats an alert (one sharing a
/// thread key, created within `REPEAT_WINDOW_DAYS`): an earlier alert of the same batch, or
/// one in the store. It reads the store as the store's transaction would see it after the
/// batch's earlier candidates: known mentions are skipped (they write nothing), and a new
/// alert's keys point at it for the rest of the batch. Every thread key's read goes into the
/// candidate, so the store can refuse the batch if one changed before it wrote
/// (`StoreError::Stale`).
async fn decide_threads(
    store: &Store,
    mut batch: Vec<Candidate>,
    now: DateTime<Utc>,
) -> Result<Vec<Candidate>, StoreError> {
    let window = chrono::Duration::days(REPEAT_WINDOW_DAYS);
    let mut seen_here: HashSet<String> = HashSet::new();
    // Thread key -> index of the candidate whose new alert claimed it in this batch.
    let mut claimed_here: HashMap<String, usize> = HashMap::new();
    for (i, c) in batch.iter_mut().enumerate() {
        let mut known = false;
        for k in &c.dedup_keys {
            if seen_here.contains(k) || store.is_seen(k).await? {
                known = true;
                break;
            }
        }
        if known {
            continue;
        }
        seen_here.extend(c.dedup_keys.iter().cloned());
        let Some(alert) = &mut c.alert else {
            continue;
        };
        // A held-back alert is not on the desk: nothing threads into it, and it threads
        // into nothing (it would post a note about a mention the filter kept back).
        if alert.held {
            alert.thread_keys = Vec::new();
            continue;
        }
        alert.thread_keys = Vec::new();
        for key in dedup::thread_keys(&c.mention) {
            let read = store.thread_mark(&key).await?;
            alert.thread_keys.push(ThreadKey { key, read });
        }
        let mut repeat_of = None;
        for k in &alert.thread_keys {
            if let Some(&j) = claimed_here.get(&k.key) {
                repeat_of = Some(RepeatOf::Earlier(j));
                break;
            }
            let Some(mark) = k.read else {
                continue;
            };
            if now - mark.at > window {
                continue;
            }
            match store.alert(mark.alert).await {
                Ok(Some(a)) => {
                    repeat_of = Some(RepeatOf::Stored {
                        alert: a.id,
                        targets: a.targets,
                    });
                    break;
                }
                // An unreadable alert threads nothing, as a missing one.
                Ok(None) | Err(StoreError::Corrupt { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        match repeat_of {
            Some(of) => {
                alert.repeat_of = Some(Repeat {
                    of,
                    note: repeat_note(&c.mention),
                })
            }
            None => {
                for k in &alert.thread_keys {
                    claimed_here.insert(k.key.clone(), i);
                }
            }
        }
    }
    Ok(batch)
}

/// What goes into an existing alert's thread when the same author or story comes up again.
fn repeat_note(m: &Mention) -> Note {
    let mut note = Note::new().text("🔁 Another mention");
    // A placeholder ("author", "unknown") names nobody; thread keys skip it too.
    if let Some(a) = dedup::real_author(m) {
        // In a code span so the handle shows exactly as written (`dana_k`), yet cannot format
        // or ping anything.
        note = note.text(" by ").code(crate::chat::text::truncate(
            a,
            80,
            crate::chat::text::Unit::Chars,
        ));
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
    use crate::model::SourceState;
    use crate::store::OutboxAction;

    fn intake(store: &Store, clock: Clock) -> Intake {
        Intake::new(
            Arc::new(judge()),
            Duration::from_secs(900),
            store.clone(),
            mpsc::channel(1).1,
            Arc::new(Metrics::default()),
            clock,
        )
    }

    fn poll(mentions: Vec<Mention>) -> PollOutcome {
        PollOutcome {
            source: "s".into(),
            mentions,
            state: SourceState::default(),
        }
    }

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
            source_languages: HashMap::new(),
        }
    }

    /// A store, intake and desk whose rule `acme` (of `priority`) learned from four labels:
    /// router posts claimed, cartoon anvil posts marked not relevant (`min_labels` 4).
    async fn learned(store: &Store, priority: Priority) -> (Intake, crate::desk::Desk) {
        use crate::desk::{config::DeskConfig, state::Action, Desk};
        let cfg = RelevanceConfig {
            enabled: true,
            min_labels: 4,
            hold_below: 0.4,
        };
        let mut judge = judge();
        judge.rules[0].priority = priority;
        let intake = Intake::new(
            Arc::new(judge),
            Duration::from_secs(900),
            store.clone(),
            mpsc::channel(1).1,
            Arc::new(Metrics::default()),
            Clock::System,
        )
        .with_relevance(cfg.clone());
        let desk_cfg = DeskConfig {
            command: "/desk".into(),
            escalate_after: Duration::from_secs(900),
            escalate_to: None,
            remind_after: None,
            allowed: vec![],
            timezone: chrono_tz::UTC,
        };
        let desk = Desk::new(store.clone(), desk_cfg).with_relevance(cfg);
        let posts = [
            (
                "r1",
                "the acme router firmware update fixed my wifi speed",
                true,
            ),
            (
                "c1",
                "acme anvil falls on the coyote in the old cartoon",
                false,
            ),
            ("r2", "setting up the acme router mesh wifi at home", true),
            (
                "c2",
                "the roadrunner cartoon where the acme anvil misses the coyote",
                false,
            ),
        ];
        for (id, text, relevant) in posts {
            let m = Mention {
                text: text.into(),
                ..mention(id, &format!("a-{id}"), &format!("https://x.example/{id}"))
            };
            intake.accept(poll(vec![m])).await.unwrap();
            let alert = store.alerts().await.unwrap().pop().unwrap();
            assert_eq!(
                alert.state,
                crate::model::AlertState::Open,
                "not learned yet"
            );
            let action = if relevant {
                Action::Claim
            } else {
                Action::Ignore { reason: None }
            };
            let o = desk
                .act(
                    alert.id,
                    &"slack:U1".to_string(),
                    action,
                    chrono::Utc::now(),
                )
                .await
                .unwrap();
            assert!(o.applied);
        }
        (intake, desk)
    }

    /// Once a rule learned, a mention like those marked not relevant is held back: stored,
    /// no outbox entry, no escalation timer, its score kept. A complaint (negative, high
    /// priority) like them is posted all the same, and so is anything of a critical rule.
    #[tokio::test]
    async fn held_back_unless_a_complaint_or_a_critical_rule() {
        for priority in [Priority::Normal, Priority::Critical] {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(dir.path()).unwrap();
            let (intake, _desk) = learned(&store, priority).await;
            let outbox = store.outbox().await.unwrap().len();
            let timers = store.timers().await.unwrap().len();
            let quiet = Mention {
                text: "another acme anvil scene with the coyote in a cartoon".into(),
                ..mention("c3", "a-c3", "https://x.example/c3")
            };
            intake.accept(poll(vec![quiet])).await.unwrap();
            let alert = store.alerts().await.unwrap().pop().unwrap();
            let score = alert.relevance.expect("scored from the first label on");
            assert!(score < 0.4, "{score}");
            let held = priority != Priority::Critical;
            assert_eq!(alert.held, held, "{priority}");
            assert_eq!(alert.state == crate::model::AlertState::Held, held);
            let new_entries = store.outbox().await.unwrap().len() - outbox;
            assert_eq!(new_entries, if held { 0 } else { 1 }, "{priority}");
            let new_timers = store.timers().await.unwrap().len() - timers;
            assert_eq!(new_timers, if held { 0 } else { 1 }, "{priority}");

            let complaint = Mention {
                text: "the acme anvil coyote cartoon is terrible, awful, I hate it".into(),
                ..mention("c4", "a-c4", "https://x.example/c4")
            };
            intake.accept(poll(vec![complaint])).await.unwrap();
            let alert = store.alerts().await.unwrap().pop().unwrap();
            assert!(
                alert.negative && alert.priority >= Priority::High,
                "{alert:?}"
            );
            assert!(alert.relevance.unwrap() < 0.4, "{alert:?}");
            assert!(!alert.held, "a complaint is never held back");
            assert_eq!(alert.state, crate::model::AlertState::Open);

            let relevant = Mention {
                text: "my acme router keeps the wifi fast after the firmware update".into(),
                ..mention("r3", "a-r3", "https://x.example/r3")
            };
            intake.accept(poll(vec![relevant])).await.unwrap();
            let alert = store.alerts().await.unwrap().pop().unwrap();
            assert!(alert.relevance.unwrap() > 0.5 && !alert.held, "{alert:?}");
        }
    }

    /// A held-back alert confirmed not relevant and then reopened goes back to the held list
    /// (it was never posted: nothing to edit, nothing to escalate) and is not counted as a
    /// promotion; promoting it posts it and counts it, and its ages start at the promotion.
    /// A post in a language that is not scored is never held back.
    #[tokio::test]
    async fn a_reopened_held_alert_stays_held_and_only_a_promotion_counts() {
        use crate::desk::state::Action;
        use crate::model::AlertState;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (intake, desk) = learned(&store, Priority::Normal).await;
        let quiet = Mention {
            text: "another acme anvil scene with the coyote in a cartoon".into(),
            ..mention("c3", "a-c3", "https://x.example/c3")
        };
        intake.accept(poll(vec![quiet])).await.unwrap();
        let held = store.alerts().await.unwrap().pop().unwrap();
        assert_eq!(held.state, AlertState::Held);
        let outbox = store.outbox().await.unwrap().len();
        let timers = store.timers().await.unwrap().len();
        let who = "slack:U9".to_string();
        let now = chrono::Utc::now();
        let ignore = Action::Ignore { reason: None };
        assert!(desk.act(held.id, &who, ignore, now).await.unwrap().applied);
        assert!(
            desk.act(held.id, &who, Action::Reopen, now)
                .await
                .unwrap()
                .applied
        );
        let a = store.alert(held.id).await.unwrap().unwrap();
        assert_eq!(a.state, AlertState::Held, "back among the held ones");
        assert_eq!(
            store.outbox().await.unwrap().len(),
            outbox,
            "nothing to edit or note"
        );
        assert_eq!(
            store.timers().await.unwrap().len(),
            timers,
            "nothing escalates"
        );
        assert!(a.promoted_at.is_none());

        let later = now + chrono::Duration::hours(3);
        assert!(
            desk.act(held.id, &who, Action::Promote, later)
                .await
                .unwrap()
                .applied
        );
        let a = store.alert(held.id).await.unwrap().unwrap();
        assert_eq!(a.state, AlertState::Open);
        assert_eq!(a.posted_at(), later, "ages count from the promotion");
        let posts = store.outbox().await.unwrap().len() - outbox;
        assert_eq!(posts, 2, "the alert and its note");

        let german = Mention {
            text: "noch eine acme anvil Szene mit dem coyote im cartoon".into(),
            lang: Some("de".into()),
            ..mention("c5", "a-c5", "https://x.example/c5")
        };
        intake.accept(poll(vec![german])).await.unwrap();
        let a = store.alerts().await.unwrap().pop().unwrap();
        assert!(a.relevance.is_some_and(|r| r < 0.4), "{a:?}");
        assert!(!a.held, "an unscored language is never held back");
    }

    /// A note on an alert marked Not relevant (most likely saying why) keeps its label: it
    /// does not teach the rule the opposite of what the person meant.
    #[tokio::test]
    async fn a_note_on_an_ignored_alert_keeps_its_not_relevant_label() {
        use crate::analysis::relevance::LabelKind;
        use crate::desk::state::Action;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (intake, desk) = learned(&store, Priority::Critical).await;
        let m = Mention {
            text: "acme anvil falls on the coyote again in the cartoon".into(),
            ..mention("n1", "a-n1", "https://x.example/n1")
        };
        intake.accept(poll(vec![m])).await.unwrap();
        let a = store.alerts().await.unwrap().pop().unwrap();
        let who = "slack:U9".to_string();
        let now = chrono::Utc::now();
        let ignore = Action::Ignore { reason: None };
        assert!(desk.act(a.id, &who, ignore, now).await.unwrap().applied);
        let label = async |store: &Store| {
            store
                .labels("acme")
                .await
                .unwrap()
                .into_iter()
                .find(|(id, _)| *id == a.id)
                .map(|(_, l)| l.kind)
        };
        assert_eq!(label(&store).await, Some(LabelKind::Negative));
        desk.note(a.id, &who, "the cartoon, not our anvils", now)
            .await
            .unwrap();
        assert_eq!(
            label(&store).await,
            Some(LabelKind::Negative),
            "the note kept it"
        );
    }

    /// With `[relevance] enabled = false` nothing is learned, scored or held.
    #[tokio::test]
    async fn relevance_off_learns_and_holds_nothing() {
        use crate::desk::state::Action;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let off = RelevanceConfig {
            enabled: false,
            ..RelevanceConfig::default()
        };
        let intake = intake(&store, Clock::System).with_relevance(off.clone());
        let desk_cfg = crate::desk::config::DeskConfig {
            command: "/desk".into(),
            escalate_after: Duration::from_secs(900),
            escalate_to: None,
            remind_after: None,
            allowed: vec![],
            timezone: chrono_tz::UTC,
        };
        let desk = crate::desk::Desk::new(store.clone(), desk_cfg).with_relevance(off);
        intake
            .accept(poll(vec![mention("1", "dana", "https://a.example/1")]))
            .await
            .unwrap();
        let a = store.alerts().await.unwrap().pop().unwrap();
        desk.act(
            a.id,
            &"slack:U1".to_string(),
            Action::Claim,
            chrono::Utc::now(),
        )
        .await
        .unwrap();
        assert_eq!(
            store.relevance_header("acme").await.unwrap().labels.total(),
            0
        );
        intake
            .accept(poll(vec![mention("2", "kim", "https://a.example/2")]))
            .await
            .unwrap();
        assert_eq!(store.alerts().await.unwrap().pop().unwrap().relevance, None);
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
            rating: None,
        }
    }

    #[test]
    fn one_or_two_stars_are_a_complaint_whatever_the_words() {
        let j = judge();
        let review = |rating: Option<u8>| Mention {
            text: "acme is great, I love it".into(),
            rating,
            ..mention("r", "dana", "https://apps.apple.com/us/app/id1#review-1")
        };
        let praise = j.judge(&review(None));
        assert!(
            praise.negative == Some(false) && praise.sentiment > Some(0.0),
            "{praise:?}"
        );
        for stars in [1, 2] {
            let v = j.judge(&review(Some(stars)));
            assert_eq!(v.negative, Some(true), "{stars} stars: {v:?}");
            assert_eq!(v.sentiment, praise.sentiment, "the text's score is kept");
            assert_eq!(
                v.priority,
                Some(Priority::High),
                "a complaint raises the priority"
            );
        }
        for stars in [3, 4, 5] {
            let v = j.judge(&review(Some(stars)));
            assert_eq!(v.negative, Some(false), "{stars} stars");
        }
        let angry = Mention {
            text: "acme is terrible, awful, the worst".into(),
            ..review(Some(5))
        };
        assert_eq!(
            j.judge(&angry).negative,
            Some(true),
            "five stars do not hide angry words"
        );
    }

    /// A matched mention in another language: its detected language is stored with it, and
    /// its alert is neither scored nor negative (so the digest and spike alerts do not count
    /// it as negative) nor raised, unless a low rating says so.
    #[test]
    fn a_mention_in_another_language_is_stored_with_its_language_and_not_scored() {
        let j = judge();
        let de = Mention {
            text: "Acme hat mein Geld nicht erstattet und der Kundenservice antwortet nicht".into(),
            ..mention("d", "dana", "https://a.example/d")
        };
        let v = j.judge(&de);
        assert_eq!(v.lang.as_deref(), Some("de"));
        assert_eq!((v.sentiment, v.negative), (None, None), "{v:?}");
        assert_eq!(v.priority, Some(Priority::Normal));
        let c = j.candidate(de.clone());
        assert_eq!(
            c.mention.lang.as_deref(),
            Some("de"),
            "filled on the mention"
        );
        let alert = c.alert.expect("an alert");
        assert!(!alert.negative && alert.sentiment == 0.0);
        let rated = j.judge(&Mention {
            rating: Some(1),
            ..de
        });
        assert_eq!((rated.sentiment, rated.negative), (None, Some(true)));
        assert_eq!(rated.priority, Some(Priority::High));
        let tagged = Mention {
            lang: Some("en".into()),
            ..mention("e", "dana", "https://a.example/e")
        };
        assert_eq!(j.candidate(tagged).mention.lang.as_deref(), Some("en"));
    }

    /// A source's `languages` drops its matched mentions in other languages (given or
    /// detected); a mention whose language cannot be told passes, and other sources are not
    /// affected.
    #[test]
    fn a_sources_languages_drop_its_mentions_in_other_languages() {
        let mut j = judge();
        j.source_languages
            .insert("forum".into(), vec!["de".into(), "fr".into()]);
        let post = |source: &str, text: &str, lang: Option<&str>| Mention {
            source: source.into(),
            text: text.into(),
            lang: lang.map(str::to_string),
            ..mention("p", "dana", "https://a.example/p")
        };
        let en = "Acme refunded my order quickly and the support team was friendly and helpful";
        let de = "Acme hat mein Geld nicht erstattet und der Kundenservice antwortet nicht";
        let v = j.judge(&post("forum", en, None));
        assert!(v.rules.is_empty(), "detected English is dropped: {v:?}");
        assert_eq!(v.lang.as_deref(), Some("en"));
        assert_eq!((v.priority, v.negative), (None, None));
        assert!(j.candidate(post("forum", en, None)).alert.is_none());
        assert!(j.judge(&post("forum", en, Some("en-GB"))).rules.is_empty());
        assert_eq!(j.judge(&post("forum", de, None)).rules, vec!["acme"]);
        assert_eq!(
            j.judge(&post("forum", en, Some("fr-CA"))).rules,
            vec!["acme"],
            "a given tag wins, its region ignored"
        );
        let short = j.judge(&post("forum", "acme!", None));
        assert_eq!((short.rules, short.lang), (vec!["acme".to_string()], None));
        assert_eq!(j.judge(&post("hn", en, None)).rules, vec!["acme"]);
    }

    #[test]
    fn only_matched_mentions_are_analysed() {
        let j = judge();
        let unmatched = Mention {
            text: "globex is terrible, my parcel never arrived".into(),
            rating: Some(1),
            ..mention("u", "dana", "https://a.example/u")
        };
        let v = j.judge(&unmatched);
        assert_eq!((v.sentiment, v.negative, v.priority), (None, None, None));
        assert!(j.candidate(unmatched).alert.is_none());
        let matched = Mention {
            text: "acme is terrible, my parcel never arrived".into(),
            ..mention("m", "dana", "https://a.example/m")
        };
        let v = j.judge(&matched);
        assert!(
            v.sentiment < Some(-0.4) && v.negative == Some(true),
            "{v:?}"
        );
        let alert = j.candidate(matched).alert.expect("an alert");
        assert_eq!(Some(alert.sentiment), v.sentiment);
        assert!(alert.negative);
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
        let alerts = intake(&store, Clock::System).accept(outcome).await.unwrap();
        assert_eq!(
            alerts, 5,
            "1-4 alert separately; 6 is a repeat of 5 (same author)"
        );
        assert_eq!(store.alerts().await.unwrap().len(), 5);
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
        let alerts = intake(&store, Clock::System).accept(outcome).await.unwrap();
        assert_eq!(alerts, 1, "only the unmuted mention alerts");
        assert_eq!(
            store.mention_count().await,
            3,
            "muted mentions are still stored"
        );
        let alert = &store.alerts().await.unwrap()[0];
        assert!(alert.mention_key.ends_with('3'));
        let timers = store.timers().await.unwrap();
        assert_eq!(timers.len(), 1, "the alert's escalation timer started");
        assert_eq!(timers[0].kind, TimerKind::Escalate);
    }

    /// A page is remembered by its URL only once it matched a rule: the same article from a
    /// second source is a duplicate after an alert, but news when the first copy alerted
    /// nothing (its words did not match). Its item key is always kept, so a source serving
    /// it again is never stored twice.
    #[tokio::test]
    async fn a_page_is_a_duplicate_by_its_url_only_after_it_matched() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let poll = |source: &str, mentions: Vec<Mention>| PollOutcome {
            source: source.into(),
            mentions: mentions
                .into_iter()
                .map(|m| Mention {
                    source: source.into(),
                    ..m
                })
                .collect(),
            state: SourceState::default(),
        };
        let quiet = Mention {
            text: "a review of routers".into(),
            ..mention("q", "dana", "https://news.example/routers?utm_source=feed")
        };
        let loud = mention("l", "dana", "https://news.example/acme");
        let intake = intake(&store, Clock::System);
        assert_eq!(
            intake
                .accept(poll("feed", vec![quiet.clone(), loud.clone()]))
                .await
                .unwrap(),
            1
        );
        // Served again by the same source: both are known by their items.
        assert_eq!(
            intake
                .accept(poll("feed", vec![quiet.clone(), loud.clone()]))
                .await
                .unwrap(),
            0
        );
        assert_eq!(store.mention_count().await, 2);
        // The same two pages from another source, whose copy of the first names acme.
        let quiet_elsewhere = Mention {
            text: "acme routers reviewed".into(),
            ..mention("q2", "lee", "https://news.example/routers")
        };
        let loud_elsewhere = mention("l2", "lee", "https://news.example/acme");
        assert_eq!(
            intake
                .accept(poll("other", vec![quiet_elsewhere, loud_elsewhere]))
                .await
                .unwrap(),
            1,
            "the page that alerted nothing alerts now; the alerted one is a duplicate"
        );
        let alerts = store.alerts().await.unwrap();
        assert_eq!(
            alerts
                .iter()
                .map(|a| a.mention_key.as_str())
                .collect::<Vec<_>>(),
            ["feed\u{1f}l", "other\u{1f}q2"]
        );
    }

    /// A NUL character in a post (a feed or webhook can carry one; PostgreSQL refuses it in
    /// text and JSON) is dropped before the mention is judged and stored, so the poll is
    /// stored, alerting once, instead of failing on every retry.
    #[tokio::test]
    async fn a_post_with_a_nul_character_is_stored_without_it_on_postgresql() {
        let Some(db) = crate::store::pg::throwaway::database().await else {
            return;
        };
        let mut cfg = crate::store::StoreConfig::at("unused-by-postgres");
        cfg.backend = crate::store::config::Backend::Postgres(db.config());
        let store = Store::open_with(&cfg).await.unwrap();
        let mut m = mention("1\0", "da\0na", "https://ok.example/1");
        m.text = "acme\0 checkout is down".into();
        m.title = Some("\0acme".into());
        let alerts = intake(&store, Clock::System).accept(poll(vec![m])).await;
        assert_eq!(alerts.unwrap(), 1);
        let alert = &store.alerts().await.unwrap()[0];
        let stored = store.alert_mention(alert).await.unwrap().unwrap();
        assert_eq!(stored.mention.text, "acme checkout is down");
        assert_eq!(stored.mention.title.as_deref(), Some("acme"));
        assert_eq!(stored.mention.author.as_deref(), Some("dana"));
        assert_eq!(stored.mention.item_id, "1");
    }

    /// A Bluesky post as the source hands it on: by DID when the profile lookup failed or is
    /// paused, by `@handle` when it worked.
    fn bluesky(rkey: &str, did: &str, shown: &str) -> Mention {
        Mention {
            item_id: format!("at://{did}/app.bsky.feed.post/{rkey}"),
            source_kind: "bluesky".into(),
            url: Some(format!("https://bsky.app/profile/{did}/post/{rkey}")),
            ..mention(rkey, shown, "")
        }
    }

    /// Review 6 #7: Bluesky mutes and repeat threads go by the DID, whatever the alert shows.
    /// A mute set from chat (stored under the DID) holds while the AppView fails (the post
    /// shows the DID) and after a handle change; a mute stored under a handle (before mutes
    /// went by DID) still holds for that handle; the same author threads whether the lookup
    /// worked or not.
    #[tokio::test]
    async fn bluesky_authors_are_muted_and_threaded_by_did_whatever_is_shown() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = chrono::Utc::now();
        let spammer = "did:plc:spamspamspamspam";
        let old = "did:plc:oldmuteoldmuteold";
        let dana = "did:plc:danadanadanadana";
        let keys = dedup::mute_keys(&bluesky("0", spammer, "@spam.bsky.social"));
        assert_eq!(
            keys.author.as_deref(),
            Some("author:bluesky:did:plc:spamspamspamspam"),
            "a new mute stores the DID"
        );
        store
            .mute(&keys.author.unwrap(), "slack:U1", now)
            .await
            .unwrap();
        store
            .mute("author:bluesky:@old.bsky.social", "slack:U1", now)
            .await
            .unwrap();
        let intake = intake(&store, Clock::System);
        let outcome = poll(vec![
            bluesky("1", spammer, spammer),
            bluesky("2", spammer, "@Spam.bsky.social"),
            bluesky("3", spammer, "@renamed.example.com"),
            bluesky("4", old, "@old.bsky.social"),
            bluesky("5", dana, dana),
        ]);
        assert_eq!(intake.accept(outcome).await.unwrap(), 1, "only dana alerts");
        assert_eq!(
            store.mention_count().await,
            5,
            "muted posts are still stored"
        );

        let again = poll(vec![bluesky("6", dana, "@dana.bsky.social")]);
        assert_eq!(
            intake.accept(again).await.unwrap(),
            0,
            "dana by handle repeats dana by DID"
        );
        assert_eq!(store.alerts().await.unwrap().len(), 1);
    }

    /// A repeat in a later poll goes into the stored alert's thread, on every target of that
    /// alert, and creates nothing; after the window it is an alert of its own again.
    #[tokio::test(start_paused = true)]
    async fn a_repeat_in_a_later_poll_threads_into_the_stored_alert() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let base = "2026-01-05T09:00:00Z".parse().unwrap();
        let intake = intake(&store, Clock::tokio_at(base));
        let first = poll(vec![mention("1", "dana", "https://a.example/1")]);
        assert_eq!(intake.accept(first).await.unwrap(), 1);
        let alert = store.alerts().await.unwrap()[0].clone();
        assert_eq!(
            alert.created_at, base,
            "intake stamps with the injected clock"
        );
        assert_eq!(
            store.timers().await.unwrap()[0].due,
            base + chrono::Duration::minutes(15)
        );

        tokio::time::advance(std::time::Duration::from_secs(3600)).await;
        let again = poll(vec![mention("2", "Dana", "https://b.example/2")]);
        assert_eq!(intake.accept(again).await.unwrap(), 0);
        let notes: Vec<_> = store
            .outbox()
            .await
            .unwrap()
            .into_iter()
            .filter_map(|(_, e)| match e.action {
                OutboxAction::ThreadNote(n) => Some((e.alert_id, e.target, n.plain())),
                _ => None,
            })
            .collect();
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert_eq!(notes[0].0, alert.id);
        assert_eq!(notes[0].1, Target::Slack("#pr".into()));
        assert!(notes[0].2.contains("acme post 2"), "{}", notes[0].2);

        let days = REPEAT_WINDOW_DAYS as u64 + 1;
        tokio::time::advance(std::time::Duration::from_secs(days * 86_400)).await;
        let late = poll(vec![mention("3", "dana", "https://c.example/3")]);
        assert_eq!(
            intake.accept(late).await.unwrap(),
            1,
            "outside the window a repeat is a new alert"
        );
    }

    /// Threading is decided from reads outside the store's transaction. When another writer
    /// claims a thread key between the read and the write, the store refuses the stale batch
    /// (writing nothing), and deciding again from a fresh read threads the mention.
    #[tokio::test]
    async fn a_decision_gone_stale_is_refused_and_decided_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = chrono::Utc::now();
        let intake = intake(&store, Clock::System);
        let judged = vec![intake
            .judged(mention("2", "dana", "https://b.example/2"), now)
            .await
            .unwrap()];
        let decided = decide_threads(&store, judged.clone(), now).await.unwrap();
        assert!(decided[0].alert.as_ref().unwrap().repeat_of.is_none());

        // Meanwhile another writer stores an alert by the same author.
        intake
            .accept(poll(vec![mention("1", "dana", "https://a.example/1")]))
            .await
            .unwrap();
        let err = store
            .accept("s", &SourceState::default(), &decided, now)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Stale { .. }), "{err}");
        assert_eq!(
            store.alerts().await.unwrap().len(),
            1,
            "the stale batch wrote nothing"
        );

        let fresh = decide_threads(&store, judged, now).await.unwrap();
        let got = store
            .accept("s", &SourceState::default(), &fresh, now)
            .await
            .unwrap();
        assert_eq!(got.threaded, vec![store.alerts().await.unwrap()[0].id]);
        assert_eq!(store.alerts().await.unwrap().len(), 1);
    }

    /// A large poll is written in batches of at most `MAX_BATCH` mentions, one transaction
    /// each, and its source state only with the last. If a crash ends the write after some
    /// batches (here: only the first batch was stored, without the state), the next poll
    /// hands the same items again and every mention ends up stored and alerted exactly once.
    #[tokio::test]
    async fn a_large_poll_is_written_in_bounded_batches_and_resumes_after_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let intake = intake(&store, Clock::System);
        let n = 2 * MAX_BATCH + 34;
        let mentions: Vec<Mention> = (0..n)
            .map(|i| {
                mention(
                    &i.to_string(),
                    &format!("a{i}"),
                    &format!("https://a.example/{i}"),
                )
            })
            .collect();
        let state = SourceState {
            cursor: Some("end".into()),
            ..SourceState::default()
        };
        // A crash after the first batch: stored without the poll's state.
        let first: Vec<Mention> = mentions[..MAX_BATCH].to_vec();
        intake
            .accept_batch("s", None, first, chrono::Utc::now(), false)
            .await
            .unwrap();
        assert_eq!(
            store.source_state("s").await.unwrap(),
            SourceState::default()
        );
        let before = store.sled().batch_stats().0;

        let outcome = PollOutcome {
            source: "s".into(),
            mentions,
            state: state.clone(),
        };
        let alerts = intake.accept(outcome).await.unwrap();
        assert_eq!(alerts, n - MAX_BATCH, "the first batch was alerted before");
        assert_eq!(
            store.alerts().await.unwrap().len(),
            n,
            "each mention alerted once"
        );
        assert_eq!(store.outbox().await.unwrap().len(), n, "and posted once");
        assert_eq!(store.source_state("s").await.unwrap(), state);
        let (transactions, largest) = store.sled().batch_stats();
        assert_eq!(
            transactions - before,
            3,
            "{n} mentions in batches of {MAX_BATCH}"
        );
        assert!(largest <= MAX_BATCH, "{largest}");
    }

    /// The prune task listens for shutdown between its chunks: once shut down, it runs none.
    #[tokio::test]
    async fn a_prune_stops_between_chunks_at_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let old = chrono::Utc::now() - chrono::Duration::days(400);
        let quiet: Vec<Mention> = (0..3)
            .map(|i| mention(&i.to_string(), &format!("a{i}"), "quiet words"))
            .collect();
        intake(&store, Clock::System)
            .accept_batch("s", None, quiet, old, false)
            .await
            .unwrap();
        // A mention today: the old ones' journal segment is closed and can be rewritten.
        let today = vec![mention("new", "b", "quiet words")];
        intake(&store, Clock::System)
            .accept_batch("s", None, today, chrono::Utc::now(), false)
            .await
            .unwrap();
        let (trigger, shutdown) = crate::shutdown::channel();
        trigger.trigger();
        assert_eq!(prune(store.clone(), chrono::Utc::now(), shutdown).await, 0);
        assert_eq!(
            store.mention_count().await,
            4,
            "nothing pruned after shutdown"
        );
        let (_trigger, shutdown) = crate::shutdown::channel();
        assert_eq!(
            prune(store.clone(), chrono::Utc::now(), shutdown).await,
            2,
            "the journal's old segment, then sled's (empty) log"
        );
        assert_eq!(store.mention_count().await, 1);
    }
}
