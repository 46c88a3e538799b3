//! Sentiment: the VADER compound score (Hutto & Gilbert 2014) through `vader-parity`, which
//! claims exact parity with the Python reference. `negative` is VADER's own convention:
//! compound ≤ -0.05.

use std::sync::OnceLock;
use vader_parity::SentimentIntensityAnalyzer;

/// VADER's published threshold for calling a text negative.
pub(crate) const NEGATIVE_THRESHOLD: f64 = -0.05;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sentiment {
    /// Compound score, -1..1.
    pub score: f64,
    pub negative: bool,
}

/// Scores `text` (title and body joined by the caller). The lexicon loads once per process.
pub fn score(text: &str) -> Sentiment {
    static ANALYZER: OnceLock<SentimentIntensityAnalyzer> = OnceLock::new();
    let analyzer = ANALYZER.get_or_init(SentimentIntensityAnalyzer::new);
    let score = analyzer.polarity_scores(text).compound;
    Sentiment {
        score,
        negative: score <= NEGATIVE_THRESHOLD,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polarity_follows_the_words() {
        let bad = score("Acme support is terrible and I hate this broken product");
        assert!(bad.negative && bad.score < -0.5, "{bad:?}");
        let good = score("I love Acme, great service!");
        assert!(!good.negative && good.score > 0.5, "{good:?}");
        let flat = score("Acme released version 2.1 today");
        assert!(!flat.negative && flat.score.abs() < 0.05, "{flat:?}");
    }
}
