//! Relevance learned from the desk: which mentions a rule's team acts on and which it marks
//! not relevant. A mention becomes a set of hashed features (its words and word pairs, its
//! source, author and site); a label adds the features of its alert's mention to the rule's
//! counts of that kind; a new mention is scored by naive Bayes over those counts, smoothed
//! towards the counts of every rule together (the global prior), so a young rule borrows
//! what the desk taught the others. Counts are whole numbers (a weak label counts half, in
//! half-units), so a label that changes kind is taken back exactly.
//!
//! Pure functions over plain data: the store keeps the counts and the labels, intake asks
//! for a score, the desk says which label an action gives. Nothing here reads or writes the
//! store.

pub mod config;

use crate::model::Mention;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use unicode_segmentation::UnicodeSegmentation;

/// What an alert's outcome says about its mention's relevance to its rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelKind {
    /// Claimed, assigned, noted, resolved, relabelled or promoted: the team acted on it.
    Positive,
    /// Not relevant (with or without muting its author or site).
    Negative,
    /// Snoozed and left alone until the snooze ran out: probably not worth the time.
    WeakNegative,
}

impl LabelKind {
    /// How much the label counts, in half-labels: a weak negative is half a negative.
    pub(crate) fn weight(self) -> u32 {
        match self {
            LabelKind::Positive | LabelKind::Negative => 2,
            LabelKind::WeakNegative => 1,
        }
    }

    /// 0 for the relevant class, 1 for the not relevant one.
    pub(crate) fn class(self) -> usize {
        match self {
            LabelKind::Positive => 0,
            LabelKind::Negative | LabelKind::WeakNegative => 1,
        }
    }

    pub(crate) fn is_positive(self) -> bool {
        self == LabelKind::Positive
    }

    /// Whether a later label of `self` replaces an earlier `old` one: a person's outcome
    /// always does; a snooze running out never overrides what a person said.
    pub(crate) fn replaces(self, old: Option<LabelKind>) -> bool {
        match (self, old) {
            (_, None) => true,
            (LabelKind::WeakNegative, Some(_)) => false,
            (new, Some(old)) => new != old,
        }
    }
}

/// How many labels of each kind a model has seen (whole labels, not half-units).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelCounts {
    pub positive: u32,
    pub negative: u32,
    pub weak_negative: u32,
}

impl LabelCounts {
    pub fn total(&self) -> u32 {
        self.positive + self.negative + self.weak_negative
    }

    /// Whether there is at least one label of each kind (weak negatives count as negative).
    pub fn both_kinds(&self) -> bool {
        self.positive > 0 && self.negative + self.weak_negative > 0
    }

    pub(crate) fn add(&mut self, kind: LabelKind, sign: i64) {
        let slot = match kind {
            LabelKind::Positive => &mut self.positive,
            LabelKind::Negative => &mut self.negative,
            LabelKind::WeakNegative => &mut self.weak_negative,
        };
        *slot = (*slot as i64 + sign).max(0) as u32;
    }
}

/// A model's totals, kept beside its feature counts: labels per kind, label weight per class
/// and feature weight per class (half-units), and how many features it has counts for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelHeader {
    pub labels: LabelCounts,
    /// Label weight per class (relevant, not relevant), in half-units.
    pub docs: [u64; 2],
    /// Feature weight per class, in half-units.
    pub mass: [u64; 2],
    /// Features with a non-zero count.
    pub vocab: u64,
}

/// A model as intake scores with it: its totals and its feature counts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counts {
    pub header: ModelHeader,
    pub features: HashMap<u32, [u32; 2]>,
}

/// How strongly the global counts pull a rule's feature estimates, in half-units of feature
/// weight: a rule with few labels reads mostly like every rule together.
const PRIOR_STRENGTH: f64 = 40.0;

/// The summed log-likelihood ratios are divided by the square root of the number of
/// features: naive Bayes counts every word of a post as independent evidence, which makes its
/// raw probabilities nearly always 0 or 1; this keeps scores readable and the threshold
/// meaningful (chosen on the replay test's data, see BENCHMARKS.md "Relevance learning").
fn temper(features: usize) -> f64 {
    (features.max(1) as f64).sqrt()
}

/// The relevance of a mention with `features` to the rule whose counts are `rule`, from 0
/// (reads like what the team marked not relevant) to 1 (like what it acted on).
pub fn score(rule: &Counts, global: &Counts, features: &[u32]) -> f64 {
    let g = &global.header;
    let r = &rule.header;
    // Laplace-smoothed global estimate of P(feature | class), the prior of the rule's.
    let p_global = |f: u32, c: usize| {
        let n = global.features.get(&f).map_or(0, |x| x[c]) as f64;
        (n + 1.0) / (g.mass[c] as f64 + g.vocab as f64 + 1.0)
    };
    let p_rule = |f: u32, c: usize| {
        let n = rule.features.get(&f).map_or(0, |x| x[c]) as f64;
        (n + PRIOR_STRENGTH * p_global(f, c)) / (r.mass[c] as f64 + PRIOR_STRENGTH)
    };
    let prior = ((r.docs[0] as f64 + 1.0) / (r.docs[1] as f64 + 1.0)).ln();
    // A feature no label ever had says nothing about either class; counting it would only
    // favour the class whose labelled mentions were shorter.
    let known: Vec<u32> = features
        .iter()
        .copied()
        .filter(|f| global.features.contains_key(f) || rule.features.contains_key(f))
        .collect();
    let evidence: f64 = known
        .iter()
        .map(|&f| (p_rule(f, 0) / p_rule(f, 1)).ln())
        .sum();
    let logit = prior + evidence / temper(known.len());
    1.0 / (1.0 + (-logit).exp())
}

/// The hashed features of a mention: its lower-cased words and word pairs (title and text),
/// its source and source kind, and its author and site as muting names them. Each at most
/// once (what counts is whether a word occurs, not how often), sorted.
pub fn features(m: &Mention) -> Vec<u32> {
    let mut out: Vec<u32> = Vec::new();
    let mut text = String::new();
    if let Some(t) = m.title.as_deref() {
        text.push_str(t);
        text.push_str(" \n ");
    }
    text.push_str(&m.text);
    let words: Vec<String> = text
        .unicode_words()
        .map(|w| w.to_lowercase())
        .filter(|w| {
            w.chars().count() > 1 || w.chars().all(|c| c.is_alphanumeric() && !c.is_ascii())
        })
        .collect();
    for w in &words {
        out.push(hash(&["w", w]));
    }
    for pair in words.windows(2) {
        out.push(hash(&["b", &pair[0], &pair[1]]));
    }
    out.push(hash(&["src", &m.source]));
    out.push(hash(&["kind", &m.source_kind]));
    let keys = crate::analysis::dedup::mute_keys(m);
    if let Some(a) = &keys.author {
        out.push(hash(&["au", a]));
    }
    if let Some(s) = &keys.site {
        out.push(hash(&["site", s]));
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// FNV-1a over the parts with a separator: stable across versions and platforms, because
/// stored labels keep their features' hashes.
fn hash(parts: &[&str]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h ^= 0x1f;
            h = h.wrapping_mul(0x0100_0193);
        }
        for b in p.bytes() {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
    }
    h
}

/// What the alert says about its score: which labelled mentions it reads like.
pub fn explain(score: f64) -> &'static str {
    if score < 0.5 {
        "most like mentions you marked not relevant"
    } else {
        "most like mentions you acted on"
    }
}

/// Whether a rule's model has learned enough to hold mentions back.
pub fn trained(labels: &LabelCounts, min_labels: u32) -> bool {
    labels.total() >= min_labels && labels.both_kinds()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mention(text: &str) -> Mention {
        Mention {
            item_id: "1".into(),
            source: "news".into(),
            source_kind: "rss".into(),
            url: Some("https://example.com/a".into()),
            title: None,
            text: text.into(),
            author: Some("dana".into()),
            author_reach: None,
            published: None,
            lang: None,
            rating: None,
        }
    }

    /// Adds a labelled mention's features to `c` as the store does.
    fn learn(c: &mut Counts, text: &str, kind: LabelKind) {
        let f = features(&mention(text));
        let w = kind.weight();
        let class = kind.class();
        c.header.labels.add(kind, 1);
        c.header.docs[class] += u64::from(w);
        for x in f {
            let e = c.features.entry(x).or_insert_with(|| [0, 0]);
            if *e == [0, 0] {
                c.header.vocab += 1;
            }
            e[class] += w;
            c.header.mass[class] += u64::from(w);
        }
    }

    #[test]
    fn features_are_stable_sets_of_words_pairs_and_places() {
        let a = features(&mention("The Jaguar F-Type roars; the jaguar roars"));
        let b = features(&mention("the jaguar roars"));
        assert!(b.iter().all(|f| a.contains(f)));
        let mut sorted = a.clone();
        sorted.dedup();
        assert_eq!(sorted, a, "each feature once");
        // The hash is part of the stored format: it must never change.
        assert_eq!(hash(&["w", "jaguar"]), 0x651c_3f51);
        assert_eq!(
            hash(&["a"]),
            0xe40c_292c,
            "FNV-1a's published value for \"a\""
        );
    }

    #[test]
    fn a_score_follows_the_labels_and_the_global_prior_helps_a_young_rule() {
        let mut rule = Counts::default();
        for _ in 0..5 {
            learn(
                &mut rule,
                "jaguar dealership test drive of the new sedan",
                LabelKind::Positive,
            );
            learn(
                &mut rule,
                "a jaguar hunts capybara in the rainforest",
                LabelKind::Negative,
            );
        }
        let global = rule.clone();
        let car = features(&mention("my jaguar sedan is at the dealership again"));
        let cat = features(&mention("the jaguar was seen hunting in the rainforest"));
        let s_car = score(&rule, &global, &car);
        let s_cat = score(&rule, &global, &cat);
        assert!(s_car > 0.8 && s_cat < 0.2, "car {s_car}, cat {s_cat}");
        // A rule without labels of its own scores by what every rule learned.
        let young = Counts::default();
        assert!(score(&young, &global, &cat) < 0.5);
        assert!(score(&young, &global, &car) > 0.5);
    }

    #[test]
    fn a_weak_negative_never_overrides_a_person() {
        use LabelKind::*;
        assert!(WeakNegative.replaces(None));
        assert!(!WeakNegative.replaces(Some(Positive)));
        assert!(Negative.replaces(Some(Positive)));
        assert!(Positive.replaces(Some(WeakNegative)));
        assert!(!Positive.replaces(Some(Positive)));
        let mut l = LabelCounts::default();
        assert!(!trained(&l, 1));
        l.add(Positive, 1);
        l.add(WeakNegative, 1);
        assert!(trained(&l, 2) && !trained(&l, 3));
    }
}
