//! Spike detection: is this window's count far above the rule's usual volume? The baseline
//! is the mean and standard deviation of equally long windows over the past days; a spike
//! needs both `count > mean + sigma·σ` and a minimum count, so a quiet brand does not alert
//! on two mentions. Also picks the terms that explain a spike. Pure functions.

use std::collections::{BTreeMap, HashSet};

/// Fewer history windows than this and the baseline means nothing yet.
pub(crate) const MIN_HISTORY_WINDOWS: usize = 24;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Baseline {
    pub(crate) mean: f64,
    pub(crate) sd: f64,
    pub(crate) windows: usize,
}

impl Baseline {
    /// Population mean and standard deviation of the per-window counts.
    pub(crate) fn of(counts: &[u32]) -> Baseline {
        let n = counts.len();
        if n == 0 {
            return Baseline {
                mean: 0.0,
                sd: 0.0,
                windows: 0,
            };
        }
        let mean = counts.iter().map(|&c| f64::from(c)).sum::<f64>() / n as f64;
        let var = counts
            .iter()
            .map(|&c| (f64::from(c) - mean).powi(2))
            .sum::<f64>()
            / n as f64;
        Baseline {
            mean,
            sd: var.sqrt(),
            windows: n,
        }
    }

    pub(crate) fn threshold(&self, sigma: f64) -> f64 {
        self.mean + sigma * self.sd
    }
}

/// Whether `count` is a spike against `baseline`.
pub(crate) fn is_spike(count: u32, baseline: &Baseline, sigma: f64, min_count: u32) -> bool {
    baseline.windows >= MIN_HISTORY_WINDOWS
        && count >= min_count
        && f64::from(count) > baseline.threshold(sigma)
}

/// Words too common to explain anything.
const STOPWORDS: &[&str] = &[
    "the", "and", "for", "are", "but", "not", "you", "your", "all", "any", "can", "had", "her",
    "was", "one", "our", "out", "has", "have", "him", "his", "how", "its", "may", "new", "now",
    "see", "two", "who", "did", "get", "got", "let", "say", "she", "too", "use", "that", "this",
    "with", "from", "they", "will", "what", "when", "just", "been", "were", "there", "their",
    "about", "would", "which", "them", "than", "then", "into", "more", "some", "like", "also",
    "only", "very", "even", "over", "does", "here", "http", "https", "www", "com", "amp",
];

/// The `n` words found in most texts (each text counts a word once), skipping stopwords,
/// words under three letters and `exclude` (the brand's own words, which every text has).
pub(crate) fn top_terms(texts: &[&str], exclude: &[String], n: usize) -> Vec<(String, usize)> {
    let exclude: HashSet<String> = exclude.iter().map(|w| w.to_lowercase()).collect();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for text in texts {
        let words: HashSet<String> = text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| w.chars().count() >= 3 && !w.chars().all(|c| c.is_ascii_digit()))
            .map(str::to_lowercase)
            .filter(|w| !STOPWORDS.contains(&w.as_str()) && !exclude.contains(w))
            .collect();
        for w in words {
            *counts.entry(w).or_default() += 1;
        }
    }
    let mut v: Vec<(String, usize)> = counts.into_iter().filter(|(_, c)| *c > 1).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v.truncate(n);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic noisy series around `level`: ±`amp` in a fixed pattern.
    fn noisy(level: u32, amp: u32, n: usize) -> Vec<u32> {
        (0..n)
            .map(|i| {
                let wobble = [0i64, 1, -1, 2, -2, 1, 0, -1][i % 8] * i64::from(amp) / 2;
                (i64::from(level) + wobble).max(0) as u32
            })
            .collect()
    }

    #[test]
    fn noise_never_alerts() {
        let history = noisy(12, 4, 14 * 24);
        let b = Baseline::of(&history);
        for (i, &c) in noisy(12, 4, 14 * 24).iter().enumerate() {
            assert!(!is_spike(c, &b, 3.0, 10), "window {i} with {c} is noise");
        }
    }

    #[test]
    fn a_real_spike_alerts() {
        let b = Baseline::of(&noisy(3, 2, 14 * 24));
        assert!(b.mean > 2.5 && b.mean < 3.5, "{b:?}");
        assert!(is_spike(42, &b, 3.0, 10));
        assert!(!is_spike(6, &b, 3.0, 10), "below the minimum count");
    }

    #[test]
    fn a_quiet_brand_needs_the_minimum_count() {
        let b = Baseline::of(&vec![0; 14 * 24]);
        assert!(
            !is_spike(2, &b, 3.0, 10),
            "2 mentions after silence is not a spike"
        );
        assert!(is_spike(10, &b, 3.0, 10));
    }

    #[test]
    fn no_alert_before_a_day_of_history() {
        let b = Baseline::of(&[0; 10]);
        assert!(
            !is_spike(500, &b, 3.0, 10),
            "still learning the usual volume"
        );
    }

    #[test]
    fn top_terms_explain_and_skip_the_brand() {
        let texts = [
            "Acme login is down again",
            "acme: login down for everyone?",
            "Is Acme down? Login fails",
            "love my acme blender",
        ];
        let terms = top_terms(&texts, &["acme".to_string()], 3);
        assert_eq!(terms[0], ("down".to_string(), 3));
        assert_eq!(terms[1], ("login".to_string(), 3));
        assert!(terms.iter().all(|(w, _)| w != "acme" && w != "the"));
    }
}
