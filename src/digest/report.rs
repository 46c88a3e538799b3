//! What a digest says: new mentions by rule, source and sentiment, the desk's state, time to
//! claim and resolve, the oldest unclaimed alerts, the top mentions, the period's spikes,
//! each compared with the period before; and the chart's buckets. It reads the store and
//! writes nothing.

use super::chart::Bucket;
use crate::chat::escape::truncate;
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
/// VADER's own thresholds for calling a compound score positive or negative.
const POSITIVE_AT: f64 = 0.05;
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
    pub spikes: Vec<Item>,
    pub chart_title: String,
    pub chart: Vec<Bucket>,
}

/// Reads what the digest needs for `period` (and the period before it) from the store.
pub fn gather(
    store: &Store,
    rules: &[String],
    period: Period,
    tz: Tz,
    now: DateTime<Utc>,
) -> Result<Report, StoreError> {
    let before = period.before();
    // The chart's bucket starts: the last 24 hours, or the last 7 local days up to today.
    let (chart_title, starts, label): (&str, Vec<DateTime<Utc>>, &str) =
        if period.len().num_seconds() <= HOURLY_UP_TO {
            let hours = (1..=24).rev().map(|h| period.to - Duration::hours(h));
            ("Mentions per hour, last 24 hours", hours.collect(), "%H:%M")
        } else {
            let days = (0..7).rev().map(|d| local_midnight(period.to, tz, d));
            ("Mentions per day, last 7 days", days.collect(), "%a %d")
        };
    let read_from = before.from.min(starts[0]);
    let mut hits = Vec::new();
    for rule in rules {
        hits.extend(store.rule_hits(rule, read_from, period.to)?);
    }
    let alerts = store.alerts()?;
    // Only the few listed alerts need their mention read; a spike is known by its key.
    let item = |a: &Alert| {
        let m = store
            .mention(&a.mention_key)
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
    };
    let spike_prefix = format!("{SPIKE_SOURCE}\u{1f}");
    let is_spike = |a: &Alert| a.mention_key.starts_with(&spike_prefix);

    let mut states = States::default();
    let mut top: Vec<&Alert> = Vec::new();
    let mut spikes = Vec::new();
    for a in alerts.iter().filter(|a| period.contains(a.created_at)) {
        match &a.state {
            AlertState::Open => states.open += 1,
            AlertState::Snoozed { .. } => states.snoozed += 1,
            AlertState::Claimed { .. } => states.claimed += 1,
            AlertState::Resolved { .. } => states.resolved += 1,
            AlertState::Ignored { .. } => states.ignored += 1,
        }
        if is_spike(a) {
            spikes.push(item(a));
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
    Ok(Report {
        period,
        tz,
        now: figures(&hits, &alerts, period),
        before: figures(&hits, &alerts, before),
        states,
        unclaimed_total: unclaimed.len(),
        oldest_unclaimed: unclaimed.iter().take(OLDEST).map(|a| item(a)).collect(),
        top: top.iter().take(TOP).map(|a| item(a)).collect(),
        spikes,
        chart_title: chart_title.into(),
        chart: buckets(&hits, &starts, period.to, tz, label),
    })
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
            f.to_claim.push((t - a.created_at).num_seconds());
        }
        if let Some(t) = a.resolved_at.filter(|t| period.contains(*t)) {
            f.to_resolve.push((t - a.created_at).num_seconds());
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
    } else if h.sentiment >= POSITIVE_AT {
        Sentiment::Positive
    } else {
        Sentiment::Neutral
    }
}

/// One bucket per start (the last ends at `to`), labelled with its local start time in
/// `label` format; each mention counted once, by sentiment.
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
        (Some(m), Some(p)) => note.text(format!(
            "median {} {} · p90 {} · {} alert{}",
            human_duration(m),
            compare_secs(Some(m), percentile(&mut b, 50)),
            human_duration(p),
            n.len(),
            if n.len() == 1 { "" } else { "s" }
        )),
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

fn item_line(note: Note, i: &Item, now: DateTime<Utc>) -> Note {
    let flag = match (i.priority, i.negative) {
        (Priority::Critical, _) => "🔴",
        (Priority::High, _) => "🟠",
        (_, true) => "🟡",
        _ => "⚪",
    };
    let mut note = note
        .text(format!("{flag} "))
        .bold(format!("#{}", i.id))
        .text(format!(
            " {} · {} · {} · {} ago — “",
            i.priority,
            i.rule,
            i.source,
            human_duration((now - i.created_at).num_seconds())
        ))
        .text(i.excerpt.clone())
        .text(format!("” ({})", i.state));
    if let Some(u) = &i.url {
        note = note.text(" ").link(u.clone(), "open");
    }
    note.newline()
}

/// The digest's title and body.
pub fn render(r: &Report, name: &str, now: DateTime<Utc>) -> (String, Note) {
    let local = r.period.to.with_timezone(&r.tz);
    let title = format!(
        "📊 {name} — {} ({})",
        local.format("%a %d %b %Y, %H:%M"),
        r.tz.name()
    );
    let (n, b) = (&r.now, &r.before);
    let mut note = Note::new()
        .text(format!(
            "Covering the last {}, compared with the {} before.",
            human_duration(r.period.len().num_seconds()),
            human_duration(r.period.len().num_seconds())
        ))
        .newline()
        .bold("New mentions:").text(" ")
        .text(format!("{} {}", n.mentions, compare(n.mentions, b.mentions)))
        .newline()
        .bold("Sentiment:").text(" ")
        .text(format!(
            "negative {} {} · neutral {} · positive {}",
            n.negative,
            compare(n.negative, b.negative),
            n.neutral,
            n.positive
        ))
        .newline()
        .bold("By rule:").text(" ")
        .text(counts(&n.by_rule))
        .newline()
        .bold("By source:").text(" ")
        .text(counts(&n.by_source))
        .newline()
        .bold("Desk:").text(" ")
        .text(format!(
            "{} open · {} snoozed · {} claimed · {} resolved · {} ignored (this period's alerts); {} waiting for someone in all",
            r.states.open, r.states.snoozed, r.states.claimed, r.states.resolved, r.states.ignored, r.unclaimed_total
        ))
        .newline()
        .append(times("Time to claim", &n.to_claim, &b.to_claim))
        .newline()
        .append(times("Time to resolve", &n.to_resolve, &b.to_resolve))
        .newline();
    if !r.spikes.is_empty() {
        note = note.bold("Spikes:").newline();
        for s in r.spikes.iter().take(TOP) {
            note = item_line(note, s, now);
        }
        if r.spikes.len() > TOP {
            note = note
                .text(format!("…and {} more", r.spikes.len() - TOP))
                .newline();
        }
    }
    if !r.oldest_unclaimed.is_empty() {
        note = note.bold("Oldest unclaimed:").newline();
        for i in &r.oldest_unclaimed {
            note = item_line(note, i, now);
        }
    }
    if r.top.is_empty() {
        note = note
            .bold("Top mentions:")
            .text(" ")
            .text("none in this period");
    } else {
        note = note.bold("Top mentions:").newline();
        for i in &r.top {
            note = item_line(note, i, now);
        }
    }
    (title, note)
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
}
