//! VADER parity without Python: every text in `tests/data/vader_parity_sample.tsv` must get
//! exactly the compound score the reference vaderSentiment 3.3.2 gave it (4 decimals, as the
//! reference rounds). The sample and how it was made are described in `tests/data/README.md`;
//! the full ground-truth comparison is `scripts/vader_parity.py compare`.

use mentiondesk::analysis::sentiment;

const SAMPLE: &str = include_str!("../data/vader_parity_sample.tsv");

fn sample() -> Vec<(f64, &'static str)> {
    SAMPLE
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (score, text) = l.split_once('\t').expect("compound<TAB>text");
            (score.parse().expect("a number"), text)
        })
        .collect()
}

#[test]
fn compound_matches_the_reference_on_the_committed_sample() {
    let sample = sample();
    assert!(sample.len() >= 100, "sample went missing: {}", sample.len());
    let wrong: Vec<String> = sample
        .iter()
        .filter_map(|&(expected, text)| {
            let got = sentiment::score(text).score;
            ((got - expected).abs() > 1e-9).then(|| format!("{text:?}: {got} != {expected}"))
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} differ:\n{}",
        wrong.len(),
        sample.len(),
        wrong.join("\n")
    );
}

#[test]
fn sample_is_not_trivially_neutral() {
    // A parity test over texts that all score 0 would pass for any analyzer.
    let sample = sample();
    let negative = sample.iter().filter(|(s, _)| *s <= -0.05).count();
    let positive = sample.iter().filter(|(s, _)| *s >= 0.05).count();
    assert!(
        negative >= 20 && positive >= 20,
        "{negative} negative, {positive} positive"
    );
}
