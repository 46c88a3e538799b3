//! The trained negative/complaint model (issue 15): two logistic regressions ("heads") over
//! the same hashed word uni/bigrams and character 3–5-grams, trained by
//! `scripts/train_negative.py` and shipped in `models/negative.bin`: the probability that a
//! post is negative about (or a complaint to) the brand, and the probability that it is
//! positive. Scoring reproduces the Python model's probabilities (the fixture test holds them
//! to 1e-7: both sum the same 16-bit integers exactly and then do the same f64 operations;
//! only the f32 rounding of the probability differs), so the figures in BENCHMARKS.md are
//! what this code does.
//!
//! Features ("negative-v3", the same steps as `scripts/negative_features.py`; the features
//! have not changed since v1, v3 stores 16-bit weights):
//! 1. each code point is lowercased on its own (`char::to_lowercase`, no context rules) and
//!    `'`/`’` are dropped ("don't" is "dont");
//! 2. tokens: `@` + word character is a handle, all "@user"; a link
//!    starting "http://" or "https://" outside a word is "<url>"; `!`, `?` and each emoji
//!    or pictograph are one-character tokens; runs of word characters (ASCII letters and
//!    digits, `_`, non-ASCII code points that are neither separators nor symbols) are words;
//!    anything else ends a word;
//! 3. features "w\0"+token, "b\0"+token+"\0"+next, and "c\0"+n code points (n = 3..=5) of
//!    " "+word+" ", each hashed with 64-bit FNV-1a, folded `h ^ (h >> 32)`, low `bits` bits;
//! 4. per head, probability = sigmoid(bias + scale × (integer sum of the hit weights) /
//!    sqrt(number of hits)).
//!
//! File: `MDNEGMOD`, u32 LE header length, a JSON header (scheme, bits, features, heads =
//! ["negative", "positive"], `weights` = "i16", `scales` (one power of two per head), biases,
//! threshold, training parameters), then `features` rows of two i16 LE weights (negative,
//! positive): one lookup reads both heads' weights, and at 4 bytes a row the table (1 MiB
//! at 18 bits) stays in a core's L2 cache far more than 8-byte f32 rows did: on real posts
//! each of about 190 features per post reads a different row, so the table's size, not the
//! arithmetic, set the model's speed (BENCHMARKS.md, "Negative model").

use std::sync::OnceLock;

use serde::Deserialize;

/// The model trained on the public data listed in models/README.md.
static EMBEDDED: &[u8] = include_bytes!("../../models/negative.bin");

const MAGIC: &[u8; 8] = b"MDNEGMOD";
const SCHEME: &str = "negative-v3";
/// The heads, in the order of each weight row.
const HEADS: [&str; 2] = ["negative", "positive"];
/// More than 2^26 weights (256 MiB) is not a model this crate ships.
const MAX_BITS: u32 = 26;
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
const CHAR_NGRAMS: std::ops::RangeInclusive<usize> = 3..=5;

const fn fnv(bytes: &[u8], mut h: u64) -> u64 {
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(FNV_PRIME);
        i += 1;
    }
    h
}

const WORD_SEED: u64 = fnv(b"w\0", FNV_OFFSET);
const BIGRAM_SEED: u64 = fnv(b"b\0", FNV_OFFSET);
const CHAR_SEED: u64 = fnv(b"c\0", FNV_OFFSET);

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("negative model: the file does not start with MDNEGMOD; pass a file written by scripts/train_negative.py")]
    Magic,
    #[error("negative model: the header is cut short or not JSON ({0}); retrain with scripts/train_negative.py")]
    Header(String),
    #[error("negative model: scheme {0:?} is not {SCHEME:?}; retrain with this version's scripts/train_negative.py")]
    Scheme(String),
    #[error("negative model: heads {0:?} are not [\"negative\", \"positive\"]; retrain with this version's scripts/train_negative.py")]
    Heads(Vec<String>),
    #[error("negative model: weights {weights:?} with scales {scales:?}; expected \"i16\" and two positive scales; retrain with this version's scripts/train_negative.py")]
    Scales { weights: String, scales: [f64; 2] },
    #[error("negative model: {found} weight bytes where the header promises {features} rows of 2 i16 weights (bits = {bits}); the file is truncated or mismatched")]
    Weights {
        bits: u32,
        features: u64,
        found: usize,
    },
}

#[derive(Deserialize)]
struct Header {
    scheme: String,
    bits: u32,
    features: u64,
    heads: Vec<String>,
    weights: String,
    scales: [f64; 2],
    biases: [f64; 2],
    threshold: f64,
    positive_at: f64,
}

/// What the model says about one text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scores {
    /// Probability, 0..1, that the text is negative about or a complaint to the brand.
    pub negative: f32,
    /// Probability, 0..1, that the text is positive.
    pub positive: f32,
}

/// Weights and decision threshold of a loaded model.
pub struct NegativeModel {
    /// One row per bucket: the negative head's weight, then the positive head's, each in
    /// units of its head's scale.
    weights: Vec<[i16; 2]>,
    /// What one unit of each head's weights is worth (a power of two).
    scales: [f64; 2],
    mask: u64,
    biases: [f64; 2],
    threshold: f32,
    positive_at: f64,
}

impl NegativeModel {
    /// Reads a model file (see the module docs for the format).
    pub fn load(bytes: &[u8]) -> Result<Self, ModelError> {
        if bytes.len() < 12 || &bytes[..8] != MAGIC {
            return Err(ModelError::Magic);
        }
        let len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
        let raw = bytes
            .get(12..12 + len)
            .ok_or_else(|| ModelError::Header(format!("{len} header bytes promised")))?;
        let header: Header =
            serde_json::from_slice(raw).map_err(|e| ModelError::Header(e.to_string()))?;
        if header.scheme != SCHEME {
            return Err(ModelError::Scheme(header.scheme));
        }
        if header.heads != HEADS {
            return Err(ModelError::Heads(header.heads));
        }
        if header.weights != "i16" || !header.scales.iter().all(|s| s.is_finite() && *s > 0.0) {
            return Err(ModelError::Scales {
                weights: header.weights,
                scales: header.scales,
            });
        }
        let body = &bytes[12 + len..];
        if header.bits == 0
            || header.bits > MAX_BITS
            || header.features != 1u64 << header.bits
            || body.len() as u64 != header.features * 4
        {
            return Err(ModelError::Weights {
                bits: header.bits,
                features: header.features,
                found: body.len(),
            });
        }
        let weights = body
            .chunks_exact(4)
            .map(|c| {
                [
                    i16::from_le_bytes([c[0], c[1]]),
                    i16::from_le_bytes([c[2], c[3]]),
                ]
            })
            .collect();
        Ok(NegativeModel {
            weights,
            scales: header.scales,
            mask: header.features - 1,
            biases: header.biases,
            threshold: header.threshold as f32,
            positive_at: header.positive_at,
        })
    }

    /// The model in `models/negative.bin`, loaded once per process.
    pub fn embedded() -> &'static NegativeModel {
        static MODEL: OnceLock<NegativeModel> = OnceLock::new();
        MODEL.get_or_init(|| {
            // The bytes are compiled in and `embedded_model_loads` loads them on every test
            // run, so this cannot fail in a built binary.
            NegativeModel::load(EMBEDDED).expect("models/negative.bin is a valid model")
        })
    }

    /// Probability, 0..1, that `text` is negative about or a complaint to the brand.
    pub fn score(&self, text: &str) -> f32 {
        self.scores(text).negative
    }

    /// Both heads' probabilities for `text`.
    pub fn scores(&self, text: &str) -> Scores {
        // The bucket of every feature first, then the lookups in one tight loop: the loads
        // do not depend on each other, so the CPU keeps many cache misses in flight at once
        // instead of a few behind the hashing of each feature.
        let mut buckets: Vec<u32> = Vec::with_capacity(3 * text.len() + 8);
        let mask = self.mask;
        features(text, |h| buckets.push(((h ^ (h >> 32)) & mask) as u32));
        // Integer sums are exact, so any order gives the Python reference's result.
        let (mut neg, mut pos) = (0i64, 0i64);
        for &b in &buckets {
            let [n, p] = self.weights[b as usize];
            neg += i64::from(n);
            pos += i64::from(p);
        }
        // As the Python reference: bias + sum * scale / sqrt(hits), the bias alone without
        // features.
        let hits = buckets.len();
        let root = (hits as f64).sqrt();
        let z = |h: usize, sum: i64| {
            if hits == 0 {
                self.biases[h]
            } else {
                self.biases[h] + sum as f64 * self.scales[h] / root
            }
        };
        let sigmoid = |z: f64| (1.0 / (1.0 + (-z).exp())) as f32;
        Scores {
            negative: sigmoid(z(0, neg)),
            positive: sigmoid(z(1, pos)),
        }
    }

    /// How many hashed features `text` has (what `scores` looks up and divides by): for the
    /// speed script's report and the fixture test.
    pub fn feature_count(&self, text: &str) -> usize {
        let mut n = 0;
        features(text, |_| n += 1);
        n
    }

    /// Whether `score(text)` reaches the threshold chosen on the validation split.
    pub fn is_negative(&self, text: &str) -> bool {
        self.score(text) >= self.threshold
    }

    /// The decision threshold stored with the weights.
    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    /// P(positive) - P(negative) from which a text counts as positive, stored with the
    /// weights (chosen on the validation split like the threshold).
    pub fn positive_at(&self) -> f64 {
        self.positive_at
    }
}

/// Lowercases each code point on its own and drops apostrophes (step 1 of the module docs).
fn lowercase(text: &str) -> String {
    if text.is_ascii() {
        let bytes: Vec<u8> = text
            .bytes()
            .filter(|&b| b != b'\'')
            .map(|b| b.to_ascii_lowercase())
            .collect();
        // ASCII in, ASCII out: the check cannot fail (and is one fast pass).
        return String::from_utf8(bytes).expect("lowercased ASCII is UTF-8");
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars().filter(|&c| !is_apostrophe(c)) {
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
        } else {
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// One FNV-1a step over one byte.
#[inline(always)]
fn fnv_byte(h: u64, b: u8) -> u64 {
    (h ^ u64::from(b)).wrapping_mul(FNV_PRIME)
}

/// Calls `add` with the unfolded FNV-1a hash of every feature of `text` (steps 1–3 of the
/// module docs), words, then bigrams, then each word's character n-grams. FNV-1a reads its
/// input left to right, so the 4- and 5-gram starting at a code point continue the 3-gram's
/// hash: five steps per position instead of twelve.
fn features(text: &str, mut add: impl FnMut(u64)) {
    let lower = lowercase(text);
    let tokens = if lower.is_ascii() {
        tokenize_ascii(&lower)
    } else {
        tokenize(&lower)
    };
    for t in &tokens {
        add(fnv(t.text.as_bytes(), WORD_SEED));
    }
    for pair in tokens.windows(2) {
        let h = fnv(pair[0].text.as_bytes(), BIGRAM_SEED);
        add(fnv(pair[1].text.as_bytes(), fnv(b"\0", h)));
    }
    const MIN: usize = *CHAR_NGRAMS.start();
    const MAX: usize = *CHAR_NGRAMS.end();
    // An ASCII word padded: " " + word + " ", one byte per code point.
    let mut padded: Vec<u8> = Vec::new();
    // Byte offsets of the padded word's code points, for other words.
    let mut bounds: Vec<usize> = Vec::new();
    for t in tokens.iter().filter(|t| t.word) {
        let w = t.text.as_bytes();
        if w.is_ascii() {
            padded.clear();
            padded.push(b' ');
            padded.extend_from_slice(w);
            padded.push(b' ');
            let n = padded.len();
            for start in 0..=n - MIN {
                let gram = &padded[start..n.min(start + MAX)];
                let mut h = CHAR_SEED;
                for &b in &gram[..MIN - 1] {
                    h = fnv_byte(h, b);
                }
                for &b in &gram[MIN - 1..] {
                    h = fnv_byte(h, b);
                    add(h);
                }
            }
        } else {
            bounds.clear();
            bounds.extend(t.text.char_indices().map(|(i, _)| i));
            bounds.push(w.len());
            let n = bounds.len() + 1;
            let piece = |m: usize| -> &[u8] {
                if m == 0 || m == n - 1 {
                    b" "
                } else {
                    &w[bounds[m - 1]..bounds[m]]
                }
            };
            for start in 0..=n - MIN {
                let mut h = CHAR_SEED;
                for (k, m) in (start..n.min(start + MAX)).enumerate() {
                    h = fnv(piece(m), h);
                    if k + 1 >= MIN {
                        add(h);
                    }
                }
            }
        }
    }
}

struct Token<'a> {
    text: &'a str,
    /// A run of word characters (gets character n-grams); not a handle, link, `!`/`?` or symbol.
    word: bool,
}

/// Non-ASCII code points that end a word: spaces, general and CJK punctuation.
fn is_separator(cp: u32) -> bool {
    matches!(
        cp,
        0x85 | 0xA0 | 0xA1 | 0xA7 | 0xAB | 0xB6 | 0xB7 | 0xBB | 0xBF | 0x1680 | 0xFEFF
            | 0x2000..=0x2018
            | 0x201A..=0x206F
            | 0x3000..=0x303F
            | 0xFF01..=0xFF0F
            | 0xFF1A..=0xFF20
    )
}

/// Emoji and pictographs: each is a token of its own.
fn is_symbol(cp: u32) -> bool {
    matches!(
        cp,
        0x2190..=0x21FF | 0x2300..=0x23FF | 0x25A0..=0x27BF | 0x2B00..=0x2BFF | 0x1F000..=0x1FAFF
    )
}

#[inline]
fn is_word(c: char) -> bool {
    let cp = c as u32;
    if cp < 0x80 {
        return c.is_ascii_alphanumeric() || c == '_';
    }
    !is_separator(cp) && !is_symbol(cp) && !matches!(cp, 0x2019 | 0xFE0F | 0x200D)
}

fn is_apostrophe(c: char) -> bool {
    c == '\'' || c == '\u{2019}'
}

fn ends_link(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
        || (c as u32 >= 0x80 && is_separator(c as u32))
}

/// Ends the word that started at `start`, if any, at byte `end`.
fn flush<'a>(s: &'a str, out: &mut Vec<Token<'a>>, start: &mut Option<usize>, end: usize) {
    if let Some(b) = start.take() {
        out.push(Token {
            text: &s[b..end],
            word: true,
        });
    }
}

/// The code point at byte `pos` of `s`, if any; ASCII (most of most posts) without decoding.
#[inline(always)]
fn char_at(s: &str, pos: usize) -> Option<char> {
    match s.as_bytes().get(pos) {
        Some(&b) if b < 0x80 => Some(char::from(b)),
        Some(_) => s[pos..].chars().next(),
        None => None,
    }
}

/// Splits lowercased text without apostrophes into tokens (slices of it, or "@user" and
/// "<url>"), one allocation per text.
fn tokenize(s: &str) -> Vec<Token<'_>> {
    let mut out = Vec::with_capacity(s.len() / 4 + 1);
    // Byte offset where the current word started.
    let mut word_start: Option<usize> = None;
    let mut pos = 0;
    while let Some(c) = char_at(s, pos) {
        let next = pos + c.len_utf8();
        if c == '@' && char_at(s, next).is_some_and(is_word) {
            flush(s, &mut out, &mut word_start, pos);
            pos = next;
            while let Some(h) = char_at(s, pos) {
                if !is_word(h) {
                    break;
                }
                pos += h.len_utf8();
            }
            out.push(Token {
                text: "@user",
                word: false,
            });
            continue;
        }
        if c == 'h'
            && word_start.is_none()
            && (s[pos..].starts_with("http://") || s[pos..].starts_with("https://"))
        {
            while let Some(h) = char_at(s, pos) {
                if ends_link(h) {
                    break;
                }
                pos += h.len_utf8();
            }
            out.push(Token {
                text: "<url>",
                word: false,
            });
            continue;
        }
        if is_word(c) {
            word_start.get_or_insert(pos);
        } else {
            flush(s, &mut out, &mut word_start, pos);
            if c == '!' || c == '?' || is_symbol(c as u32) {
                out.push(Token {
                    text: &s[pos..next],
                    word: false,
                });
            }
        }
        pos = next;
    }
    flush(s, &mut out, &mut word_start, s.len());
    out
}

/// [`tokenize`] for ASCII text, byte by byte: the same tokens (a test compares them), without
/// decoding characters. In ASCII, `!` and `?` are the only one-character tokens.
fn tokenize_ascii(s: &str) -> Vec<Token<'_>> {
    let b = s.as_bytes();
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    let mut out = Vec::with_capacity(b.len() / 4 + 1);
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let (text, word_token) = if c == b'@' && b.get(i + 1).is_some_and(|&x| word(x)) {
            i += 1;
            while i < b.len() && word(b[i]) {
                i += 1;
            }
            ("@user", false)
        } else if c == b'h' && (b[i..].starts_with(b"http://") || b[i..].starts_with(b"https://")) {
            while i < b.len() && !matches!(b[i], b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
                i += 1;
            }
            ("<url>", false)
        } else if word(c) {
            let start = i;
            while i < b.len() && word(b[i]) {
                i += 1;
            }
            (&s[start..i], true)
        } else {
            i += 1;
            if c == b'!' || c == b'?' {
                (&s[i - 1..i], false)
            } else {
                continue;
            }
        };
        out.push(Token {
            text,
            word: word_token,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct FixtureLine {
        text: String,
        features: usize,
        p: f64,
        pos: f64,
    }

    /// Rust and Python sum the same integers exactly and then do the same f64 operations;
    /// only Rust's rounding of the probability to f32 (at most 3e-8 near 1) may differ.
    const MAX_DIFFERENCE: f64 = 1e-7;

    #[test]
    fn embedded_model_loads() {
        let model = NegativeModel::embedded();
        assert_eq!(model.weights.len(), model.mask as usize + 1);
        assert!(model.threshold > 0.0 && model.threshold < 1.0);
        assert!(model.positive_at > -1.0 && model.positive_at < 1.0);
    }

    /// The probabilities scripts/train_negative.py computed for the same texts with the same
    /// stored weights: tokeniser, hashing and arithmetic must agree.
    #[test]
    fn scores_match_the_python_model() {
        let model = NegativeModel::embedded();
        let fixture = include_str!("../../tests/data/negative_model_fixture.jsonl");
        let mut checked = 0;
        for line in fixture.lines() {
            let want: FixtureLine = serde_json::from_str(line).unwrap();
            let features = model.feature_count(&want.text);
            assert_eq!(features, want.features, "feature count of {:?}", want.text);
            let got = model.scores(&want.text);
            for (head, got, want_p) in [
                ("negative", got.negative, want.p),
                ("positive", got.positive, want.pos),
            ] {
                assert!(
                    (f64::from(got) - want_p).abs() < MAX_DIFFERENCE,
                    "{:?} {head}: rust {got}, python {want_p}",
                    want.text,
                );
            }
            checked += 1;
        }
        assert!(checked >= 50, "fixture has {checked} texts");
    }

    /// Same check on a large export (`scripts/train_negative.py export --out FILE`, texts
    /// not committed): `NEGATIVE_MODEL_CHECK=FILE cargo test --lib analysis::model -- --ignored`.
    #[test]
    #[ignore = "needs NEGATIVE_MODEL_CHECK, an export of the (uncommitted) training data"]
    fn scores_match_the_python_model_on_an_export() {
        let path = std::env::var("NEGATIVE_MODEL_CHECK").expect("set NEGATIVE_MODEL_CHECK");
        let export = std::fs::read_to_string(path).unwrap();
        let model = NegativeModel::embedded();
        let mut worst = 0.0f64;
        let mut n = 0;
        for line in export.lines() {
            let want: FixtureLine = serde_json::from_str(line).unwrap();
            let got = model.scores(&want.text);
            for (got, want_p) in [(got.negative, want.p), (got.positive, want.pos)] {
                let d = (f64::from(got) - want_p).abs();
                assert!(
                    d < MAX_DIFFERENCE,
                    "{:?}: rust {got}, python {want_p}",
                    want.text
                );
                worst = worst.max(d);
            }
            n += 1;
        }
        println!("{n} texts, largest difference {worst:e}");
    }

    #[test]
    fn tokens_follow_the_documented_rules() {
        let lower: String = "Don’t @United's flight!! http://t.co/x ok 😡"
            .chars()
            .filter(|&c| !is_apostrophe(c))
            .flat_map(char::to_lowercase)
            .collect();
        let got: Vec<&str> = tokenize(&lower).iter().map(|t| t.text).collect();
        assert_eq!(
            got,
            ["dont", "@user", "flight", "!", "!", "<url>", "ok", "😡"]
        );
    }

    /// The byte-wise tokenizer for ASCII text gives exactly the general one's tokens.
    #[test]
    fn the_ascii_tokenizer_agrees_with_the_general_one() {
        let fixture = include_str!("../../tests/data/negative_model_fixture.jsonl");
        let texts = fixture
            .lines()
            .map(|l| serde_json::from_str::<FixtureLine>(l).unwrap().text)
            .chain(
                [
                    "@@user x@y @ alone, mail me@example.com! http://a.b/c?d https://x",
                    "xhttp://not-a-link a_b_c 12:30 ?!?! end@",
                    "links end at tabs http://a\tb and\x0bvt http:/half https",
                    "hhttp://x h http://",
                ]
                .map(String::from),
            );
        let mut checked = 0;
        for text in texts.filter(|t| t.is_ascii()) {
            let lower = lowercase(&text);
            let general: Vec<(&str, bool)> =
                tokenize(&lower).iter().map(|t| (t.text, t.word)).collect();
            let ascii: Vec<(&str, bool)> = tokenize_ascii(&lower)
                .iter()
                .map(|t| (t.text, t.word))
                .collect();
            assert_eq!(ascii, general, "{text:?}");
            checked += 1;
        }
        assert!(checked >= 40, "{checked} ASCII texts");
    }

    #[test]
    fn rejects_damaged_files() {
        assert!(matches!(
            NegativeModel::load(b"not a model"),
            Err(ModelError::Magic)
        ));
        let cut = &EMBEDDED[..EMBEDDED.len() - 4];
        let err = NegativeModel::load(cut).err().unwrap();
        assert!(matches!(err, ModelError::Weights { .. }), "{err}");
        let mut wrong = EMBEDDED.to_vec();
        let at = wrong.windows(11).position(|w| w == b"negative-v3").unwrap();
        wrong[at + 10] = b'9';
        assert!(matches!(
            NegativeModel::load(&wrong),
            Err(ModelError::Scheme(s)) if s == "negative-v9"
        ));
    }

    #[test]
    fn a_complaint_scores_above_praise() {
        let model = NegativeModel::embedded();
        let complaint =
            model.score("Still waiting for my refund, nobody answers. Terrible service.");
        let praise = model.scores("Thanks so much, the new version is great!");
        assert!(
            complaint > praise.negative && praise.positive > 0.5,
            "complaint {complaint}, praise {praise:?}"
        );
        assert!(model.is_negative("Still waiting for my refund, nobody answers. Terrible service."));
    }
}
