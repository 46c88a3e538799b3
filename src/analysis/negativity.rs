//! Negativity: the one place that decides whether a mention is negative and how positive or
//! negative it sounds. `intake::Judge::judge` calls [`assess`], so `run`, `scan`, `match`,
//! alerts and the digest all use this code.
//!
//! Both numbers come from the trained model ([`super::model`], issue 15): `negative` is its
//! negative head's probability at or above the threshold chosen on the validation split, and
//! `sentiment` is the positive head's probability minus the negative head's. VADER
//! ([`super::sentiment`]) stays available (`match` prints it as `vader`, the parity tests
//! hold it to the Python reference), but no longer decides.

use super::model::NegativeModel;

/// What the analysis says about how negative one text is.
#[derive(Debug, Clone, PartialEq)]
pub struct Negativity {
    /// P(positive) - P(negative), -1..1, rounded to 4 decimals (as VADER's compound was).
    pub sentiment: f64,
    /// How negative, 0..1: the model's probability that the text is negative about or a
    /// complaint to the brand. Orders alerts.
    pub score: f64,
    /// `score` reached the model's threshold.
    pub negative: bool,
}

/// The text the analysis scores: title and body joined as "title. body", or the body alone.
/// One definition for intake, `match` and the alert view, so they score the same words.
pub fn analysed_text<'t>(title: Option<&str>, text: &'t str) -> std::borrow::Cow<'t, str> {
    match title {
        Some(t) if !t.is_empty() => format!("{t}. {text}").into(),
        _ => text.into(),
    }
}

/// Scores `text` (title and body joined by the caller). Public for `benches/analysis.rs`.
pub fn assess(text: &str) -> Negativity {
    let model = NegativeModel::embedded();
    let s = model.scores(text);
    let round4 = |x: f32| (f64::from(x) * 1e4).round() / 1e4;
    Negativity {
        sentiment: round4(s.positive - s.negative),
        score: f64::from(s.negative),
        negative: s.negative >= model.threshold(),
    }
}

/// Sentiment from which a mention counts as positive in alerts and the digest: stored with
/// the model, chosen on its validation split (see models/README.md).
pub fn positive_at() -> f64 {
    NegativeModel::embedded().positive_at()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::sentiment;

    #[test]
    fn complaints_without_emotion_are_negative() {
        let text = "ordered two weeks ago and the package never arrived, still waiting";
        assert!(!sentiment::score(text).negative, "plain VADER misses it");
        let n = assess(text);
        assert!(n.negative && n.sentiment < 0.0, "{n:?}");
    }

    #[test]
    fn clear_cases_follow_the_words() {
        let bad = assess("Acme support is terrible and I hate them");
        assert!(bad.negative && bad.sentiment < -0.5, "{bad:?}");
        let news = assess("Acme released version 2.1 today");
        assert!(!news.negative, "{news:?}");
        let good = assess("I love Acme, the new app is great, thank you!");
        assert!(
            !good.negative && good.sentiment >= positive_at(),
            "{good:?}"
        );
        assert!(bad.sentiment < news.sentiment && news.sentiment < good.sentiment);
    }

    #[test]
    fn a_plain_question_is_not_negative() {
        // Issue 15's example of what VADER + cues called negative with high priority.
        let n = assess("Does anyone know if the Acme X2 works with 5 GHz networks?");
        assert!(!n.negative, "{n:?}");
    }

    #[test]
    fn score_is_the_models_probability() {
        let text = "charged twice and nobody replies";
        let n = assess(text);
        let model = NegativeModel::embedded();
        assert_eq!(n.score, f64::from(model.score(text)));
        assert_eq!(n.negative, model.is_negative(text));
    }
}
