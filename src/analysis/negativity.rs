//! Negativity: the one place that decides whether a mention is negative, by combining the
//! VADER compound score ([`super::sentiment`]) with complaint cues ([`super::complaint`]).
//! `intake::Judge::judge` calls [`assess`], so `run`, `scan` and `match` all use this code.
//!
//! It does not change the sentiment score itself (that stays VADER's compound, faithful to
//! the reference) and does not set priority ([`super::priority`] does, from `negative`).

use super::complaint::{self, Complaint};
use super::sentiment;

/// Complaint weight from which a mention with some positive wording still counts as
/// negative: one strong cue ("never arrived") or two weak ones ("waiting" + "why is"). Where
/// VADER finds nothing positive (compound <= 0), any cue is enough.
pub(crate) const COMPLAINT_THRESHOLD: f64 = 1.0;

/// VADER compound at and above which a single complaint cue is not enough: "my old one broke,
/// this one is wonderful" is praise that mentions a failure.
pub(crate) const POSITIVE_GUARD: f64 = 0.5;

/// Complaint weight that outweighs even clearly positive wording ("thanks a lot for the
/// cancelled flight and the lost bag").
pub(crate) const STRONG_COMPLAINT: f64 = 2.0;

/// What the analysis says about how negative one text is.
#[derive(Debug, Clone, PartialEq)]
pub struct Negativity {
    /// VADER compound, -1..1, unchanged.
    pub sentiment: f64,
    pub(crate) complaint: Complaint,
    /// How negative, 0..1: VADER's negative side and the complaint strength combined as
    /// independent evidence, `1 - (1 - max(0, -sentiment)) * (1 - strength)`. Orders alerts;
    /// 0 for neutral or positive text without complaint cues.
    pub score: f64,
    pub negative: bool,
}

/// Scores `text` (title and body joined by the caller). Public for `benches/analysis.rs`.
pub fn assess(text: &str) -> Negativity {
    let s = sentiment::score(text);
    let complaint = complaint::detect(text);
    let complains = if s.score <= 0.0 {
        // Nothing positive said: any cue ("why is", "issue", "delay") tips it.
        complaint.weight > 0.0
    } else {
        complaint.weight >= COMPLAINT_THRESHOLD
            && (s.score < POSITIVE_GUARD || complaint.weight >= STRONG_COMPLAINT)
    };
    let score = 1.0 - (1.0 - (-s.score).max(0.0)) * (1.0 - complaint.strength());
    Negativity {
        sentiment: s.score,
        negative: s.negative || complains,
        score,
        complaint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complaints_without_emotion_are_negative() {
        let text = "ordered two weeks ago and the package never arrived, still waiting";
        assert!(!sentiment::score(text).negative, "plain VADER misses it");
        let n = assess(text);
        assert!(n.negative && n.score > 0.5, "{n:?}");
        assert_eq!(n.sentiment, sentiment::score(text).score);
    }

    #[test]
    fn vader_negatives_stay_negative_and_neutral_stays_neutral() {
        let n = assess("Acme support is terrible and I hate them");
        assert!(n.negative && n.complaint.hits.is_empty(), "{n:?}");
        let n = assess("Acme released version 2.1 today");
        assert!(!n.negative && n.score == 0.0, "{n:?}");
    }

    #[test]
    fn praise_that_mentions_one_failure_is_not_negative() {
        let n = assess("my old one broke, this one is wonderful and I love it");
        assert!(n.complaint.weight >= COMPLAINT_THRESHOLD, "{n:?}");
        assert!(n.sentiment >= POSITIVE_GUARD && !n.negative, "{n:?}");
    }

    #[test]
    fn many_failures_outweigh_polite_words() {
        let n = assess("thanks a lot for the cancelled flight and the lost luggage, great job");
        assert!(n.sentiment >= POSITIVE_GUARD, "{n:?}");
        assert!(n.negative, "{n:?}");
    }

    #[test]
    fn score_grows_with_evidence() {
        let one = assess("my parcel never arrived").score;
        let two = assess("my parcel never arrived and no reply from support").score;
        assert!(0.0 < one && one < two && two < 1.0, "{one} {two}");
    }
}
