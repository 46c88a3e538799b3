//! VADER: the compound score (Hutto & Gilbert 2014), exactly as the Python reference
//! vaderSentiment 3.3.2 computes it. `negative` is VADER's own convention: compound ≤ -0.05.
//! Since issue 15 the alerts' sentiment and `negative` come from the trained model
//! ([`super::negativity`]); VADER is what `match` prints as `vader`, for comparison and for
//! the parity checks (`scripts/vader_parity.py`, `tests/it/analysis_parity.rs`).
//!
//! Most texts are scored by [`super::vader`] (one pass, no per-token allocation); the few with
//! characters whose Python casing it does not reproduce go to the `vader-parity` crate, which
//! vendors CPython's casing tables (slower, equally exact).

use super::vader;
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

/// Scores `text` (title and body joined by the caller). The lexicons load once per process.
pub fn score(text: &str) -> Sentiment {
    let score = vader::compound(text).unwrap_or_else(|| {
        static ANALYZER: OnceLock<SentimentIntensityAnalyzer> = OnceLock::new();
        let analyzer = ANALYZER.get_or_init(SentimentIntensityAnalyzer::new);
        analyzer.polarity_scores(text).compound
    });
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
