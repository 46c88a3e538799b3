//! What a digest says: new mentions by rule, source and sentiment, the desk's state, time to
//! claim and resolve, the oldest unclaimed alerts, the top mentions, the period's spikes,
//! each compared with the period before; and the chart's buckets. It reads the store and
//! writes nothing.

use super::chart::Bucket;
use crate::analysis::negativity::positive_at;
use crate::analysis::relevance::config::RelevanceConfig;
use crate::chat::escape::truncate;
use crate::desk::relevance::RuleRelevance;
use crate::model::{Alert, AlertId, AlertState, Note, Priority};
use crate::store::{RuleHit, Store, StoreError};
use crate::util::human_duration;
use crate::util::percentile;
use chrono::{DateTime, Duration, TimeZone, Utc};
use chrono_tz::Tz;
use std::collections::{BTreeMap, HashSet};

/// Source kind of the mention behind a spike alert.
pub(crate) const SPIKE_KIND: &str = "spike";
/// The `source` shown on spike alerts (a name `[[sources]]` may not take).
pub(crate) const SPIKE_SOURCE: &str = "spike watch";
const TOP: usize = 5;
const OLDEST: usize = 3;
/// Periods longer than this get a per-day chart of the last 7 days instead of per hour.
const HOURLY_UP_TO: i64 = 36 * 3600;

/// `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Period {
    pub fn len(&self) -> Duration {
        self.to - self.from
    }

    /// The period of the same length just before this one.
    pub fn before(&self) -> Period {
        Period {
            from: self.from - self.len(),
            to: self.from,
        }
    }

    fn contains(&self, t: DateTime<Utc>) -> bool {
        t >= self.from && t < self.to
    }
}

/// Volume and response figures of one period.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    /// Distinct matched mentions (a mention matching two rules counts once).
    pub mentions: usize,
    pub by_rule: Vec<(String, usize)>,
    pub by_source: Vec<(String, usize)>,
    pub negative: usize,
    pub neutral: usize,
    pub positive: usize,
    /// Seconds from alert to first claim, for claims made in the period.
    pub to_claim: Vec<i64>,
    /// Seconds from alert to resolution, for resolutions in the period.
    pub to_resolve: Vec<i64>,
}

/// One alert as the digest lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub id: AlertId,
    pub priority: Priority,
    pub negative: bool,
    pub rule: String,
    pub source: String,
    pub excerpt: String,
    pub url: Option<String>,
    pub state: &'static str,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct States {
    pub open: usize,
    pub(crate) snoozed: usize,
    pub claimed: usize,
    pub resolved: usize,
    pub(crate) ignored: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The desk's slash command (`[desk] command`), in the commands the digest names.
    pub(crate) command: String,
    pub(crate) period: Period,
    pub(crate) tz: Tz,
    pub now: Figures,
    pub before: Figures,
    /// States, now, of the alerts created in the period.
    pub states: States,
    /// Alerts still waiting for someone, whenever they came in.
    pub(crate) unclaimed_total: usize,
    pub oldest_unclaimed: Vec<Item>,
    pub top: Vec<Item>,
    /// How many of the top mentions are left out of `top` because "Oldest unclaimed" lists
    /// them.
    pub top_skipped: usize,
    pub spikes: Vec<Item>,
    /// The period's alerts the relevance filter held back and nobody promoted yet.
    pub held: Vec<Item>,
    /// Relevance learning per rule, over the period's alerts (empty with `[relevance]` off).
    pub relevance: Vec<RuleRelevance>,
    /// `[relevance] min_labels`, for the "learning" wording.
    pub(crate) min_labels: u32,
    pub chart_title: String,
    pub chart: Vec<Bucket>,
}

/// Reads what the digest needs for `period` (and the period before it) from the store, with
/// relevance learning as configured by default.
pub async fn gather(
    store: &Store,
    rules: &[String],
    period: Period,
    tz: Tz,
    now: DateTime<Utc>,
) -> Result<Report, StoreError> {
    gather_with(store, rules, period, tz, now, &RelevanceConfig::default()).await
}

/// `gather`, with the relevance figures as `[relevance]` configures them.
pub async fn gather_with(
    store: &Store,
    rules: &[String],
    period: Period,
    tz: Tz,
    now: DateTime<Utc>,
    relevance: &RelevanceConfig,
) -> Result<Report, StoreError> {
    let before = period.before();
    // The chart's bucket starts: the last 24 hours, or the last 7 local days up to today;
    // further back when the period starts earlier, so the chart counts every mention of the
    // period (a digest at 09:48 also has 09:48–10:00 the day before, as a first partial bar).
    let hourly = period.len().num_seconds() <= HOURLY_UP_TO;
    let (mut chart_title, starts, label) = if hourly {
        // Whole local hours, so the ticks read 08:00, 09:00 (not 08:48): the last bar is
        // the hour the period's last moment falls in (at 09:48, 09:00 so far; at 09:00,
        // the whole hour from 08:00).
        let last = local_hour_start(period.to - Duration::nanoseconds(1), tz);
        let hours = bucket_starts(period.from, 24, |h| last - Duration::hours(h));
        (
            "Mentions per hour, last 24 hours".to_string(),
            hours,
            "%H:%M",
        )
    } else {
        let days = bucket_starts(period.from, 7, |d| local_midnight(period.to, tz, d));
        ("Mentions per day, last 7 days".to_string(), days, "%a %d")
    };
    if hourly && period.len() > Duration::hours(24) {
        let hours = (period.len().num_seconds() + 3599) / 3600;
        chart_title = format!("Mentions per hour, last {hours} hours");
    }
    let read_from = before.from.min(starts[0]);
    let mut hits = Vec::new();
    for rule in rules {
        hits.extend(store.rule_hits(rule, read_from, period.to).await?);
    }
    let alerts = store.alerts().await?;
    let spike_prefix = format!("{SPIKE_SOURCE}\u{1f}");
    let is_spike = |a: &Alert| a.mention_key.starts_with(&spike_prefix);

    let mut states = States::default();
    let mut top: Vec<&Alert> = Vec::new();
    let mut spikes = Vec::new();
    let mut held = Vec::new();
    let in_period: Vec<&Alert> = alerts
        .iter()
        .filter(|a| period.contains(a.created_at))
        .collect();
    for a in in_period.iter().copied() {
        match &a.state {
            AlertState::Open => states.open += 1,
            AlertState::Snoozed { .. } => states.snoozed += 1,
            AlertState::Claimed { .. } => states.claimed += 1,
            AlertState::Resolved { .. } => states.resolved += 1,
            AlertState::Ignored { .. } => states.ignored += 1,
            // Not on the desk: listed under "Held back" instead of among the top mentions.
            AlertState::Held => {
                held.push(item(store, a).await);
                continue;
            }
        }
        if is_spike(a) {
            spikes.push(item(store, a).await);
        } else {
            top.push(a);
        }
    }
    // Highest priority first; then the negative ones; then the most negative sentiment.
    top.sort_by(|x, y| {
        y.priority
            .cmp(&x.priority)
            .then(y.negative.cmp(&x.negative))
            .then(x.sentiment.total_cmp(&y.sentiment))
            .then(x.id.cmp(&y.id))
    });
    let mut unclaimed: Vec<&Alert> = alerts
        .iter()
        .filter(|a| matches!(a.state, AlertState::Open) && a.created_at < now)
        .collect();
    unclaimed.sort_by_key(|a| (a.created_at, a.id));
    let unclaimed_total = unclaimed.len();
    // This period's spikes are listed under "Spikes" already (with their state): once is enough.
    unclaimed.retain(|a| !(is_spike(a) && period.contains(a.created_at)));
    // An alert both unclaimed and among the top is listed once, under "Oldest unclaimed",
    // where it asks for someone; "Top mentions" says so and lists the next ones instead.
    let oldest: Vec<&Alert> = unclaimed.iter().take(OLDEST).copied().collect();
    let mut oldest_unclaimed = Vec::with_capacity(oldest.len());
    for a in &oldest {
        oldest_unclaimed.push(item(store, a).await);
    }
    let mut top_items = Vec::new();
    for a in top
        .iter()
        .filter(|a| !oldest.iter().any(|o| o.id == a.id))
        .take(TOP)
    {
        top_items.push(item(store, a).await);
    }
    Ok(Report {
        command: "/desk".into(),
        period,
        tz,
        now: figures(&hits, &alerts, period),
        before: figures(&hits, &alerts, before),
        states,
        unclaimed_total,
        oldest_unclaimed,
        top: top_items,
        top_skipped: top
            .iter()
            .take(TOP)
            .filter(|a| oldest.iter().any(|o| o.id == a.id))
            .count(),
        spikes,
        held,
        relevance: if relevance.enabled {
            crate::desk::relevance::figures(store, &in_period, relevance.min_labels).await?
        } else {
            Vec::new()
        },
        min_labels: relevance.min_labels,
        chart_title,
        chart: buckets(&hits, &starts, period.to, tz, label),
    })
}

/// One listed alert with its mention's source, link and excerpt (only the few listed alerts
/// need their mention read; an unreadable one is listed without them).
async fn item(store: &Store, a: &Alert) -> Item {
    let m = store
        .alert_mention(a)
        .await
        .ok()
        .flatten()
        .map(|m| m.mention);
    let (source, url, text) = match m {
        Some(m) => {
            let text = match &m.title {
                Some(t) if !t.is_empty() && m.source_kind != SPIKE_KIND => {
                    format!("{t} — {}", m.text)
                }
                _ => m.text,
            };
            (m.source, m.url, text)
        }
        None => Default::default(),
    };
    Item {
        id: a.id,
        priority: a.priority,
        negative: a.negative,
        rule: a.rules.first().cloned().unwrap_or_default(),
        source,
        excerpt: truncate(&text.split_whitespace().collect::<Vec<_>>().join(" "), 120),
        url,
        state: a.state.name(),
        created_at: a.created_at,
    }
}

fn figures(hits: &[RuleHit], alerts: &[Alert], period: Period) -> Figures {
    let mut f = Figures::default();
    let mut rules: BTreeMap<&str, usize> = BTreeMap::new();
    let mut sources: BTreeMap<&str, usize> = BTreeMap::new();
    let mut seen = HashSet::new();
    for h in hits.iter().filter(|h| period.contains(h.at)) {
        *rules.entry(&h.rule).or_default() += 1;
        if !seen.insert(&h.mention_key) {
            continue;
        }
        f.mentions += 1;
        *sources.entry(&h.source).or_default() += 1;
        match class(h) {
            Sentiment::Negative => f.negative += 1,
            Sentiment::Neutral => f.neutral += 1,
            Sentiment::Positive => f.positive += 1,
        }
    }
    f.by_rule = sorted_counts(rules);
    f.by_source = sorted_counts(sources);
    for a in alerts {
        if let Some(t) = a.first_claimed_at.filter(|t| period.contains(*t)) {
            f.to_claim.push((t - a.posted_at()).num_seconds());
        }
        if let Some(t) = a.resolved_at.filter(|t| period.contains(*t)) {
            f.to_resolve.push((t - a.posted_at()).num_seconds());
        }
    }
    f
}

fn sorted_counts(m: BTreeMap<&str, usize>) -> Vec<(String, usize)> {
    let mut v: Vec<(String, usize)> = m.into_iter().map(|(k, n)| (k.to_string(), n)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

enum Sentiment {
    Negative,
    Neutral,
    Positive,
}

fn class(h: &RuleHit) -> Sentiment {
    if h.negative {
        Sentiment::Negative
    } else if h.sentiment >= positive_at() {
        Sentiment::Positive
    } else {
        Sentiment::Neutral
    }
}

/// One bucket per start (the last ends at `to`), labelled with its local start time in
/// `label` format; each mention counted once, by sentiment.
/// Bucket starts, oldest first: `at(k)` for k = `least`-1 down to 0 (the chart's usual
/// span), preceded by older ones while they are after `from`, and then `from` itself as the
/// start of a partial first bucket when the period begins before the usual span.
fn bucket_starts(
    from: DateTime<Utc>,
    least: i64,
    at: impl Fn(i64) -> DateTime<Utc>,
) -> Vec<DateTime<Utc>> {
    let mut k = least - 1;
    while at(k + 1) > from {
        k += 1;
    }
    let mut starts: Vec<DateTime<Utc>> = (0..=k).rev().map(at).collect();
    if from < starts[0] {
        starts.insert(0, from);
    }
    starts
}

fn buckets(
    hits: &[RuleHit],
    starts: &[DateTime<Utc>],
    to: DateTime<Utc>,
    tz: Tz,
    label: &str,
) -> Vec<Bucket> {
    let mut out: Vec<Bucket> = starts
        .iter()
        .map(|s| Bucket {
            label: s.with_timezone(&tz).format(label).to_string(),
            negative: 0,
            neutral: 0,
            positive: 0,
        })
        .collect();
    let mut seen = HashSet::new();
    for h in hits.iter().filter(|h| h.at >= starts[0] && h.at < to) {
        if !seen.insert(&h.mention_key) {
            continue;
        }
        let i = starts.iter().rposition(|s| *s <= h.at).unwrap_or(0);
        add(&mut out[i], h);
    }
    out
}

fn add(b: &mut Bucket, h: &RuleHit) {
    match class(h) {
        Sentiment::Negative => b.negative += 1,
        Sentiment::Neutral => b.neutral += 1,
        Sentiment::Positive => b.positive += 1,
    }
}

/// The start of the local hour `t` falls in (time zones with half-hour offsets included).
fn local_hour_start(t: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
    use chrono::Timelike;
    let local = t.with_timezone(&tz);
    let into_hour = Duration::seconds(i64::from(local.minute() * 60 + local.second()))
        + Duration::nanoseconds(i64::from(local.nanosecond()));
    t - into_hour
}

/// Local midnight `days_back` days before the local day of `t`, as UTC (DST-safe).
fn local_midnight(t: DateTime<Utc>, tz: Tz, days_back: i64) -> DateTime<Utc> {
    let day = t.with_timezone(&tz).date_naive() - Duration::days(days_back);
    let midnight = day
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists as a naive time");
    tz.from_local_datetime(&midnight)
        .earliest()
        .or_else(|| {
            tz.from_local_datetime(&(midnight + Duration::hours(1)))
                .earliest()
        })
        .map(|l| l.with_timezone(&Utc))
        .unwrap_or(t - Duration::days(days_back))
}

/// `↑ 35% (was 31)`, `↓ 20% (was 15)`, `→ (same)`: the arrow is the direction of change.
pub(crate) fn compare(now: usize, before: usize) -> String {
    match (now, before) {
        (n, b) if n == b => "→ same as before".into(),
        (_, 0) => "↑ (none before)".into(),
        (n, b) => {
            let pct = ((n as f64 - b as f64) / b as f64 * 100.0).round().abs();
            let arrow = if n > b { "↑" } else { "↓" };
            format!("{arrow} {pct}% (was {b})")
        }
    }
}

/// Same for durations; shorter is better, but the arrow still says which way it moved.
fn compare_secs(now: Option<i64>, before: Option<i64>) -> String {
    match (now, before) {
        (Some(n), Some(b)) if n == b => "→ same as before".into(),
        (Some(n), Some(b)) => {
            let arrow = if n > b { "↑ slower" } else { "↓ faster" };
            format!("{arrow} (was {})", human_duration(b))
        }
        _ => String::new(),
    }
}

fn times(label: &str, now: &[i64], before: &[i64]) -> Note {
    let (mut n, mut b) = (now.to_vec(), before.to_vec());
    let note = Note::new().bold(format!("{label}:")).text(" ");
    match (percentile(&mut n, 50), percentile(&mut n, 90)) {
        (Some(m), Some(p)) => {
            let change = compare_secs(Some(m), percentile(&mut b, 50));
            let change = if change.is_empty() {
                change
            } else {
                format!(" {change}")
            };
            note.text(format!(
                "median {}{change} · p90 {} · {} alert{}",
                human_duration(m),
                human_duration(p),
                n.len(),
                if n.len() == 1 { "" } else { "s" }
            ))
        }
        _ => note.text("none in this period"),
    }
}

fn counts(v: &[(String, usize)]) -> String {
    if v.is_empty() {
        return "none".into();
    }
    v.iter()
        .take(8)
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(" · ")
}

/// Priority as alerts show it: its colour and its word.
fn priority_label(p: Priority) -> String {
    let icon = match p {
        Priority::Low => "⚪",
        Priority::Normal => "🔵",
        Priority::High => "🟠",
        Priority::Critical => "🔴",
    };
    format!("{icon} {}", crate::desk::priority_word(p))
}

/// `🟠 High · #12 · rule acme · hn · 2 h ago · open — “excerpt” · view post`
fn item_line(note: Note, i: &Item, now: DateTime<Utc>) -> Note {
    let mut note = note
        .text(format!("{} · ", priority_label(i.priority)))
        .bold(format!("#{}", i.id))
        .text(format!(" · rule {} · ", i.rule));
    if !i.source.is_empty() {
        note = note.text(i.source.clone()).text(" · ");
    }
    note = note.text(format!(
        "{} ago · {}{} — “",
        human_duration((now - i.created_at).num_seconds()),
        i.state,
        if i.negative { " · negative" } else { "" }
    ));
    note = note.text(i.excerpt.clone()).text("”");
    if let Some(u) = &i.url {
        note = note.text(" · ").link(u.clone(), "view post");
    }
    note.newline()
}

/// A period in words: "day", "7 days", "12 hours" (else the short form, "90 min").
fn period_words(secs: i64) -> String {
    let plural = |n: i64, unit: &str| match n {
        1 => unit.to_string(),
        n => format!("{n} {unit}s"),
    };
    match secs {
        s if s > 0 && s % 86_400 == 0 => plural(s / 86_400, "day"),
        s if s > 0 && s % 3600 == 0 => plural(s / 3600, "hour"),
        s => human_duration(s),
    }
}

/// The summary: volume, sentiment, rules, sources, desk state and response times.
pub(crate) fn summary_section(r: &Report) -> Note {
    let (n, b) = (&r.now, &r.before);
    let span = period_words(r.period.len().num_seconds());
    Note::new()
        .text(format!(
            "Covering the last {span}, compared with the {span} before."
        ))
        .newline()
        .bold("New mentions:")
        .text(" ")
        .text(format!("{} {}", n.mentions, compare(n.mentions, b.mentions)))
        .newline()
        .bold("Sentiment:")
        .text(" ")
        .text(format!(
            "negative {} {} · neutral {} · positive {}",
            n.negative,
            compare(n.negative, b.negative),
            n.neutral,
            n.positive
        ))
        .newline()
        .bold("By rule:")
        .text(" ")
        .text(counts(&n.by_rule))
        .newline()
        .bold("By source:")
        .text(" ")
        .text(counts(&n.by_source))
        .newline()
        .bold("Desk:")
        .text(" ")
        .text(format!(
            "{} open · {} snoozed · {} claimed · {} resolved · {} ignored (this period's alerts); {} waiting for someone in all",
            r.states.open, r.states.snoozed, r.states.claimed, r.states.resolved, r.states.ignored, r.unclaimed_total
        ))
        .newline()
        .append(times("Time to claim", &n.to_claim, &b.to_claim))
        .newline()
        .append(times("Time to resolve", &n.to_resolve, &b.to_resolve))
        .newline()
}

/// The period's spikes (empty when there were none).
pub(crate) fn spikes_section(r: &Report, now: DateTime<Utc>) -> Note {
    let mut note = Note::new();
    if r.spikes.is_empty() {
        return note;
    }
    note = note.bold("Spikes:").newline();
    for s in r.spikes.iter().take(TOP) {
        note = item_line(note, s, now);
    }
    if r.spikes.len() > TOP {
        note = note
            .text(format!("…and {} more", r.spikes.len() - TOP))
            .newline();
    }
    note
}

/// The alerts waiting longest for someone, whenever they came in (empty when none wait).
pub(crate) fn unclaimed_section(r: &Report, now: DateTime<Utc>) -> Note {
    let mut note = Note::new();
    if r.oldest_unclaimed.is_empty() {
        return note;
    }
    note = note.bold("Oldest unclaimed:").newline();
    for i in &r.oldest_unclaimed {
        note = item_line(note, i, now);
    }
    note
}

/// The period's most urgent alerts, without those "Oldest unclaimed" already lists.
pub(crate) fn top_section(r: &Report, now: DateTime<Utc>) -> Note {
    let mut note = Note::new().bold("Top mentions:");
    if r.top.is_empty() {
        return note.text(match r.top_skipped {
            0 => " none in this period".to_string(),
            1 => " the only one is listed under Oldest unclaimed".to_string(),
            n => format!(" all {n} are listed under Oldest unclaimed"),
        });
    }
    if r.top_skipped > 0 {
        note = note.text(match r.top_skipped {
            1 => " (1 more is listed under Oldest unclaimed)".to_string(),
            n => format!(" ({n} more are listed under Oldest unclaimed)"),
        });
    }
    note = note.newline();
    for i in &r.top {
        note = item_line(note, i, now);
    }
    note
}

/// The digest's title and body.
pub fn render(r: &Report, name: &str, now: DateTime<Utc>) -> (String, Note) {
    let local = r.period.to.with_timezone(&r.tz);
    let title = format!(
        "📊 {name} — {} ({})",
        local.format("%a %d %b %Y, %H:%M"),
        r.tz.name()
    );
    let note = summary_section(r)
        .append(spikes_section(r, now))
        .append(unclaimed_section(r, now))
        .append(top_section(r, now))
        .append(held_section(r, now));
    (title, note)
}

/// Relevance learning per rule, and the period's held-back alerts with the command that
/// promotes each (empty when nothing was learned or held).
pub(crate) fn held_section(r: &Report, now: DateTime<Utc>) -> Note {
    let mut note = Note::new();
    if r.relevance.is_empty() && r.held.is_empty() {
        return note;
    }
    note = note.newline().bold("Relevance:").newline();
    for rule in &r.relevance {
        note = note
            .text(format!("• {}", rule.line(r.min_labels)))
            .newline();
    }
    if r.held.is_empty() {
        return note;
    }
    note = note
        .bold(format!("Held back ({}):", r.held.len()))
        .text(" not posted; Promote or ")
        .code(format!("{} promote ID", r.command))
        .text(" posts one")
        .newline();
    // Each with a Promote button (below the digest's text): one click posts it.
    for i in r.held.iter().take(TOP) {
        note = item_line(note, i, now).button(
            crate::chat::buttons::PROMOTE,
            i.id,
            format!("Promote #{}", i.id),
        );
    }
    if r.held.len() > TOP {
        note = note
            .text(format!("…and {} more (", r.held.len() - TOP))
            .code(format!("{} list held", r.command))
            .text(" shows them)")
            .newline();
    }
    note
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparisons_point_the_right_way() {
        assert_eq!(compare(42, 31), "↑ 35% (was 31)");
        assert_eq!(compare(3, 12), "↓ 75% (was 12)");
        assert_eq!(compare(5, 5), "→ same as before");
        assert_eq!(compare(4, 0), "↑ (none before)");
        assert_eq!(compare(0, 0), "→ same as before");
        assert!(compare_secs(Some(600), Some(900)).starts_with("↓ faster"));
        assert!(compare_secs(Some(900), Some(600)).starts_with("↑ slower"));
    }

    #[test]
    fn local_midnight_is_dst_safe() {
        let tz = chrono_tz::Europe::Berlin;
        let t = DateTime::parse_from_rfc3339("2026-03-30T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        // Midnight of 2026-03-29 in Berlin is still CET (UTC+1).
        assert_eq!(
            local_midnight(t, tz, 1),
            DateTime::parse_from_rfc3339("2026-03-28T23:00:00Z").unwrap()
        );
        assert_eq!(
            local_midnight(t, tz, 0),
            DateTime::parse_from_rfc3339("2026-03-29T22:00:00Z").unwrap()
        );
    }

    /// The relevance section names each rule's figures and lists the held-back alerts with
    /// the command that promotes one; with nothing learned or held it is absent.
    #[test]
    fn the_held_back_section_lists_figures_and_held_alerts() {
        let now = t("2026-11-24T09:00:00Z");
        let mut r = fixed_report();
        assert!(held_section(&r, now).plain().is_empty());
        let mut held = item(
            14,
            Priority::Normal,
            false,
            "A jaguar cub was born at the zoo",
            3,
        );
        held.state = "held";
        r.held = vec![held];
        r.relevance = vec![RuleRelevance {
            rule: "jaguar".into(),
            labels: 34,
            trained: true,
            held: 2,
            promoted: 1,
            posted_positive: 9,
            posted_negative: 1,
        }];
        let text = held_section(&r, now).plain();
        assert!(
            text.contains(
                "• jaguar: 34 labels · 2 held back · 1 promoted · precision 90 % (of 10 labelled)"
            ),
            "{text}"
        );
        assert!(
            text.contains("Held back (1): not posted; Promote or /desk promote ID posts one"),
            "{text}"
        );
        let section = held_section(&r, now);
        let buttons: Vec<_> = section.buttons().collect();
        assert_eq!(
            buttons,
            vec![(crate::chat::buttons::PROMOTE, AlertId(14), "Promote #14")],
            "each held alert listed has its Promote button"
        );
        assert!(
            text.contains("#14") && text.contains("held — “A jaguar cub"),
            "{text}"
        );
        let (_, body) = render(&r, "Morning", now);
        assert!(body.plain().contains("Held back (1)"));
        r.command = "/pr".into();
        let text = held_section(&r, now).plain();
        assert!(
            text.contains("/pr promote ID") && !text.contains("/desk"),
            "{text}"
        );
    }

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn item(id: u64, priority: Priority, negative: bool, excerpt: &str, age_h: i64) -> Item {
        Item {
            id: AlertId(id),
            priority,
            negative,
            rule: "acme".into(),
            source: "hn".into(),
            excerpt: excerpt.into(),
            url: Some(format!("https://news.example/item?id={id}")),
            state: "open",
            created_at: t("2026-11-24T09:00:00Z") - Duration::hours(age_h),
        }
    }

    /// A report with every section filled, from fixed data.
    fn fixed_report() -> Report {
        let mut spike = item(11, Priority::High, false, "42 mentions in the last hour", 5);
        spike.source = SPIKE_SOURCE.into();
        let mut resolved = item(9, Priority::Critical, false, "Acme CEO interview", 20);
        resolved.state = "resolved";
        resolved.url = None;
        Report {
            command: "/desk".into(),
            period: Period {
                from: t("2026-11-23T09:00:00Z"),
                to: t("2026-11-24T09:00:00Z"),
            },
            tz: chrono_tz::UTC,
            now: Figures {
                mentions: 12,
                by_rule: vec![("acme".into(), 10), ("acme-ceo".into(), 3)],
                by_source: vec![("hn".into(), 7), ("reddit".into(), 5)],
                negative: 4,
                neutral: 6,
                positive: 2,
                to_claim: vec![300, 900, 1800],
                to_resolve: vec![7200],
            },
            before: Figures {
                mentions: 8,
                negative: 4,
                to_claim: vec![600],
                ..Figures::default()
            },
            states: States {
                open: 2,
                snoozed: 0,
                claimed: 1,
                resolved: 3,
                ignored: 1,
            },
            unclaimed_total: 3,
            oldest_unclaimed: vec![
                item(
                    4,
                    Priority::High,
                    true,
                    "Checkout & login <broken> again",
                    30,
                ),
                item(7, Priority::Normal, false, "Does acme ship to Norway?", 2),
            ],
            top: vec![resolved],
            top_skipped: 1,
            spikes: vec![spike],
            held: vec![],
            relevance: vec![],
            min_labels: 30,
            chart_title: "Mentions per hour, last 24 hours".into(),
            chart: vec![],
        }
    }

    /// Each section of the digest, rendered for the console and as Slack mrkdwn, is exactly
    /// the expected text: wording, spacing, priority words and escaping.
    #[test]
    fn every_digest_section_renders_to_its_expected_text() {
        let r = fixed_report();
        let now = t("2026-11-24T09:00:00Z");
        let sections = [
            ("summary", summary_section(&r)),
            ("spikes", spikes_section(&r, now)),
            ("unclaimed", unclaimed_section(&r, now)),
            ("top", top_section(&r, now)),
        ];
        let console: Vec<String> = sections
            .iter()
            .map(|(_, n)| crate::chat::console::render_note(n))
            .collect();
        let slack: Vec<String> = sections
            .iter()
            .map(|(_, n)| crate::chat::slack::render_note(n))
            .collect();
        for (i, (name, _)) in sections.iter().enumerate() {
            println!(
                "== {name} console ==\n{}\n== {name} slack ==\n{}",
                console[i], slack[i]
            );
        }
        assert_eq!(console[0], GOLDEN_SUMMARY_CONSOLE);
        assert_eq!(slack[0], GOLDEN_SUMMARY_SLACK);
        assert_eq!(console[1], GOLDEN_SPIKES_CONSOLE);
        assert_eq!(slack[1], GOLDEN_SPIKES_SLACK);
        assert_eq!(console[2], GOLDEN_UNCLAIMED_CONSOLE);
        assert_eq!(slack[2], GOLDEN_UNCLAIMED_SLACK);
        assert_eq!(console[3], GOLDEN_TOP_CONSOLE);
        assert_eq!(slack[3], GOLDEN_TOP_SLACK);
    }

    const GOLDEN_SUMMARY_CONSOLE: &str = "Covering the last day, compared with the day before.\n   New mentions: 12 ↑ 50% (was 8)\n   Sentiment: negative 4 → same as before · neutral 6 · positive 2\n   By rule: acme 10 · acme-ceo 3\n   By source: hn 7 · reddit 5\n   Desk: 2 open · 0 snoozed · 1 claimed · 3 resolved · 1 ignored (this period's alerts); 3 waiting for someone in all\n   Time to claim: median 15 min ↑ slower (was 10 min) · p90 30 min · 3 alerts\n   Time to resolve: median 2 h · p90 2 h · 1 alert\n   ";
    const GOLDEN_SUMMARY_SLACK: &str = "Covering the last day, compared with the day before.\n*New mentions:* 12 ↑ 50% (was 8)\n*Sentiment:* negative 4 → same as before · neutral 6 · positive 2\n*By rule:* acme 10 · acme-ceo 3\n*By source:* hn 7 · reddit 5\n*Desk:* 2 open · 0 snoozed · 1 claimed · 3 resolved · 1 ignored (this period's alerts); 3 waiting for someone in all\n*Time to claim:* median 15 min ↑ slower (was 10 min) · p90 30 min · 3 alerts\n*Time to resolve:* median 2 h · p90 2 h · 1 alert\n";
    const GOLDEN_SPIKES_CONSOLE: &str = "Spikes:\n   🟠 High · #11 · rule acme · spike watch · 5 h ago · open — “42 mentions in the last hour” · view post <https://news.example/item?id=11>\n   ";
    const GOLDEN_SPIKES_SLACK: &str = "*Spikes:*\n🟠 High · *#11* · rule acme · spike watch · 5 h ago · open — “42 mentions in the last hour” · <https://news.example/item?id=11|view post>\n";
    const GOLDEN_UNCLAIMED_CONSOLE: &str = "Oldest unclaimed:\n   🟠 High · #4 · rule acme · hn · 1 day 6 h ago · open · negative — “Checkout & login <broken> again” · view post <https://news.example/item?id=4>\n   🔵 Normal · #7 · rule acme · hn · 2 h ago · open — “Does acme ship to Norway?” · view post <https://news.example/item?id=7>\n   ";
    const GOLDEN_UNCLAIMED_SLACK: &str = "*Oldest unclaimed:*\n🟠 High · *#4* · rule acme · hn · 1 day 6 h ago · open · negative — “Checkout &amp; login &lt;broken&gt; again” · <https://news.example/item?id=4|view post>\n🔵 Normal · *#7* · rule acme · hn · 2 h ago · open — “Does acme ship to Norway?” · <https://news.example/item?id=7|view post>\n";
    const GOLDEN_TOP_CONSOLE: &str = "Top mentions: (1 more is listed under Oldest unclaimed)\n   🔴 Critical · #9 · rule acme · hn · 20 h ago · resolved — “Acme CEO interview”\n   ";
    const GOLDEN_TOP_SLACK: &str = "*Top mentions:* (1 more is listed under Oldest unclaimed)\n🔴 Critical · *#9* · rule acme · hn · 20 h ago · resolved — “Acme CEO interview”\n";

    #[test]
    fn hourly_chart_buckets_start_on_whole_local_hours() {
        let to = t("2026-11-24T09:48:30Z");
        assert_eq!(
            local_hour_start(to, chrono_tz::UTC),
            t("2026-11-24T09:00:00Z")
        );
        // India is UTC+5:30: its whole hours are at :30 UTC.
        assert_eq!(
            local_hour_start(to, chrono_tz::Asia::Kolkata),
            t("2026-11-24T09:30:00Z")
        );
    }

    #[test]
    fn periods_read_as_words() {
        assert_eq!(period_words(86_400), "day");
        assert_eq!(period_words(7 * 86_400), "7 days");
        assert_eq!(period_words(12 * 3600), "12 hours");
        assert_eq!(period_words(5400), "1 h 30 min");
    }
}
