//! VADER's compound score (Hutto & Gilbert 2014, vaderSentiment 3.3.2) computed in one pass
//! over the text's tokens, without per-token allocation, for the texts it can score exactly;
//! [`super::sentiment`] sends every other text to the `vader-parity` crate.
//!
//! Why a second implementation: `vader-parity` is exact but slow per text (a String per token, SipHash lookups of every token in several tables, idiom n-grams built as Strings,
//! rounding through `format!`), which made sentiment 90 % of `match`'s per-post time. This
//! module looks each token up once in one FxHash table that holds everything VADER asks about a
//! word (valence, booster increment, negation and the handful of words the rules test), and
//! compares idiom n-grams by word id.
//!
//! Scope (what [`compound`] answers `None` for): CPython's `str.lower()`/`str.isupper()` follow
//! CPython's Unicode tables, which `vader-parity` vendors and which differ from Rust's for a few
//! recently assigned characters. This module only handles text whose characters (after emoji
//! are replaced by their descriptions) are ASCII, Latin-1, Latin Extended-A, or uncased
//! punctuation and symbol blocks (general punctuation, arrows, dingbats, emoji), where Rust's
//! casing and CPython's agree; any other character hands the whole text to the crate.
//! `tests::agrees_with_vader_parity_*` compare both implementations bit for bit.
//!
//! The tables are `assets/vader/` (written by `scripts/vader_tables.py` from the reference
//! package's own lexicon files; MIT licence in `assets/vader/LICENSE`); the booster, negation
//! and idiom lists are the ones in the reference's source.

use rustc_hash::FxHashMap;
use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};
use std::sync::OnceLock;

/// `word<TAB>valence`, the reference's `vader_lexicon.txt` without its rating columns.
const LEXICON: &str = include_str!("../../assets/vader/lexicon.tsv");
/// `emoji<TAB>description`, the reference's single code point emoji.
const EMOJI: &str = include_str!("../../assets/vader/emoji.tsv");

/// All-caps emphasis. Python: `C_INCR`.
const C_INCR: f64 = 0.733;
/// Negation scalar. Python: `N_SCALAR`.
const N_SCALAR: f64 = -0.74;
/// Per "!", at most four.
const EP_STEP: f64 = 0.292;
/// Per "?" when there are two or three.
const QM_STEP: f64 = 0.18;
/// "?" emphasis with more than three.
const QM_CAP: f64 = 0.96;
/// `normalize(score, alpha=15)`.
const ALPHA: f64 = 15.0;
const BUT_BEFORE: f64 = 0.5;
const BUT_AFTER: f64 = 1.5;
const DAMP_2: f64 = 0.95;
const DAMP_3: f64 = 0.9;
/// "never so" / "never this".
const NEVER_SCALAR: f64 = 1.25;

const B_INCR: f64 = 0.293;
const B_DECR: f64 = -0.293;

/// The reference's `BOOSTER_DICT`.
const BOOSTERS: &[(&str, f64)] = &[
    ("absolutely", B_INCR),
    ("amazingly", B_INCR),
    ("awfully", B_INCR),
    ("completely", B_INCR),
    ("considerable", B_INCR),
    ("considerably", B_INCR),
    ("decidedly", B_INCR),
    ("deeply", B_INCR),
    ("effing", B_INCR),
    ("enormous", B_INCR),
    ("enormously", B_INCR),
    ("entirely", B_INCR),
    ("especially", B_INCR),
    ("exceptional", B_INCR),
    ("exceptionally", B_INCR),
    ("extreme", B_INCR),
    ("extremely", B_INCR),
    ("fabulously", B_INCR),
    ("flipping", B_INCR),
    ("flippin", B_INCR),
    ("frackin", B_INCR),
    ("fracking", B_INCR),
    ("fricking", B_INCR),
    ("frickin", B_INCR),
    ("frigging", B_INCR),
    ("friggin", B_INCR),
    ("fully", B_INCR),
    ("fuckin", B_INCR),
    ("fucking", B_INCR),
    ("fuggin", B_INCR),
    ("fugging", B_INCR),
    ("greatly", B_INCR),
    ("hella", B_INCR),
    ("highly", B_INCR),
    ("hugely", B_INCR),
    ("incredible", B_INCR),
    ("incredibly", B_INCR),
    ("intensely", B_INCR),
    ("major", B_INCR),
    ("majorly", B_INCR),
    ("more", B_INCR),
    ("most", B_INCR),
    ("particularly", B_INCR),
    ("purely", B_INCR),
    ("quite", B_INCR),
    ("really", B_INCR),
    ("remarkably", B_INCR),
    ("so", B_INCR),
    ("substantially", B_INCR),
    ("thoroughly", B_INCR),
    ("total", B_INCR),
    ("totally", B_INCR),
    ("tremendous", B_INCR),
    ("tremendously", B_INCR),
    ("uber", B_INCR),
    ("unbelievably", B_INCR),
    ("unusually", B_INCR),
    ("utter", B_INCR),
    ("utterly", B_INCR),
    ("very", B_INCR),
    ("almost", B_DECR),
    ("barely", B_DECR),
    ("hardly", B_DECR),
    ("just enough", B_DECR),
    ("kind of", B_DECR),
    ("kinda", B_DECR),
    ("kindof", B_DECR),
    ("kind-of", B_DECR),
    ("less", B_DECR),
    ("little", B_DECR),
    ("marginal", B_DECR),
    ("marginally", B_DECR),
    ("occasional", B_DECR),
    ("occasionally", B_DECR),
    ("partly", B_DECR),
    ("scarce", B_DECR),
    ("scarcely", B_DECR),
    ("slight", B_DECR),
    ("slightly", B_DECR),
    ("somewhat", B_DECR),
    ("sort of", B_DECR),
    ("sorta", B_DECR),
    ("sortof", B_DECR),
    ("sort-of", B_DECR),
];

/// The reference's `SPECIAL_CASES`: key, value, and whether Python's literal is an int (which
/// CPython's `sum` treats differently; see [`python_sum`]).
const SPECIAL_CASES: &[(&str, f64, bool)] = &[
    ("the shit", 3.0, true),
    ("the bomb", 3.0, true),
    ("bad ass", 1.5, false),
    ("badass", 1.5, false),
    ("bus stop", 0.0, false),
    ("yeah right", -2.0, true),
    ("kiss of death", -1.5, false),
    ("to die for", 3.0, true),
    ("beating heart", 3.5, false),
];

/// The reference's `NEGATE` list.
const NEGATE: &[&str] = &[
    "aint",
    "arent",
    "cannot",
    "cant",
    "couldnt",
    "darent",
    "didnt",
    "doesnt",
    "ain't",
    "aren't",
    "can't",
    "couldn't",
    "daren't",
    "didn't",
    "doesn't",
    "dont",
    "hadnt",
    "hasnt",
    "havent",
    "isnt",
    "mightnt",
    "mustnt",
    "neither",
    "don't",
    "hadn't",
    "hasn't",
    "haven't",
    "isn't",
    "mightn't",
    "mustn't",
    "neednt",
    "needn't",
    "never",
    "none",
    "nope",
    "nor",
    "not",
    "nothing",
    "nowhere",
    "oughtnt",
    "shant",
    "shouldnt",
    "uhuh",
    "wasnt",
    "werent",
    "oughtn't",
    "shan't",
    "shouldn't",
    "uh-uh",
    "wasn't",
    "weren't",
    "without",
    "wont",
    "wouldnt",
    "won't",
    "wouldn't",
    "rarely",
    "seldom",
    "despite",
];

// What the rules ask of a word, as bits of `Entry::flags`.
const NO: u16 = 1;
const BUT: u16 = 1 << 1;
const KIND: u16 = 1 << 2;
const OF: u16 = 1 << 3;
const LEAST: u16 = 1 << 4;
const NEVER: u16 = 1 << 5;
const SO_OR_THIS: u16 = 1 << 6;
const WITHOUT: u16 = 1 << 7;
const DOUBT: u16 = 1 << 8;
const AT_OR_VERY: u16 = 1 << 9;
const OR_OR_NOR: u16 = 1 << 10;
const NEGATED: u16 = 1 << 11;

/// The words the rules compare tokens with, and the flag each sets.
const FLAG_WORDS: &[(&str, u16)] = &[
    ("no", NO),
    ("but", BUT),
    ("kind", KIND),
    ("of", OF),
    ("least", LEAST),
    ("never", NEVER),
    ("so", SO_OR_THIS),
    ("this", SO_OR_THIS),
    ("without", WITHOUT),
    ("doubt", DOUBT),
    ("at", AT_OR_VERY),
    ("very", AT_OR_VERY),
    ("or", OR_OR_NOR),
    ("nor", OR_OR_NOR),
];

/// Everything the rules ask about one lower-cased word, from one table lookup.
#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    /// Lexicon valence.
    valence: Option<f64>,
    /// Single-word `BOOSTER_DICT` increment; 0 when not a booster (no booster is 0).
    boost: f64,
    flags: u16,
    /// Id of the word in the multi-word idioms and boosters (1-based), 0 if in none.
    idiom: u8,
}

/// A multi-word `SPECIAL_CASES` or `BOOSTER_DICT` key as word ids.
#[derive(Debug, Clone, Copy)]
struct Ngram {
    ids: [u8; 3],
    len: usize,
    value: f64,
    is_int: bool,
}

struct Tables {
    words: FxHashMap<&'static str, Entry>,
    emoji: FxHashMap<char, &'static str>,
    specials: Vec<Ngram>,
    ngram_boosters: Vec<Ngram>,
}

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(Tables::load)
}

impl Tables {
    fn load() -> Tables {
        let mut words: FxHashMap<&'static str, Entry> = FxHashMap::default();
        for line in LEXICON.lines() {
            let (word, valence) = line.split_once('\t').expect("word<TAB>valence");
            let valence: f64 = valence.parse().expect("a lexicon valence");
            words.entry(word).or_default().valence = Some(valence);
        }
        for &(word, boost) in BOOSTERS {
            if !word.contains(' ') {
                words.entry(word).or_default().boost = boost;
            }
        }
        for &(word, flag) in FLAG_WORDS {
            words.entry(word).or_default().flags |= flag;
        }
        for &word in NEGATE {
            words.entry(word).or_default().flags |= NEGATED;
        }
        let mut next_id = 0u8;
        let mut ngram = |key: &'static str, value: f64, is_int: bool| {
            let mut ids = [0u8; 3];
            let mut len = 0;
            for w in key.split(' ') {
                let e = words.entry(w).or_default();
                if e.idiom == 0 {
                    next_id += 1;
                    e.idiom = next_id;
                }
                ids[len] = e.idiom;
                len += 1;
            }
            Ngram {
                ids,
                len,
                value,
                is_int,
            }
        };
        // Keys without a space ("badass") can never equal words joined by a space.
        let specials: Vec<Ngram> = SPECIAL_CASES
            .iter()
            .filter(|(k, _, _)| k.contains(' '))
            .map(|&(k, v, is_int)| ngram(k, v, is_int))
            .collect();
        let ngram_boosters: Vec<Ngram> = BOOSTERS
            .iter()
            .filter(|(k, _)| k.contains(' '))
            .map(|&(k, v)| ngram(k, v, false))
            .collect();
        let emoji = EMOJI
            .lines()
            .map(|line| {
                let (key, description) = line.split_once('\t').expect("emoji<TAB>description");
                let mut chars = key.chars();
                let c = chars.next().expect("one code point");
                assert!(chars.next().is_none(), "one code point: {key:?}");
                (c, description)
            })
            .collect();
        Tables {
            words,
            emoji,
            specials,
            ngram_boosters,
        }
    }

    /// The entry of a lower-cased token; a word in no table may still negate ("n't").
    fn entry(&self, lower: &str) -> Entry {
        let mut e = self.words.get(lower).copied().unwrap_or_default();
        if lower.contains("n't") {
            e.flags |= NEGATED;
        }
        e
    }
}

/// One token: its table entry and whether Python's `str.isupper()` holds for it.
#[derive(Debug, Clone, Copy)]
struct Tok {
    e: Entry,
    upper: bool,
}

impl Tok {
    fn is(&self, flag: u16) -> bool {
        self.e.flags & flag != 0
    }
}

/// A sentiments-list entry: the value and whether Python holds it as an int (see
/// [`python_sum`]).
#[derive(Debug, Clone, Copy)]
struct Valence {
    value: f64,
    from_int: bool,
}

const INT_ZERO: Valence = Valence {
    value: 0.0,
    from_int: true,
};

/// Python's `str.split()` whitespace: Unicode White_Space plus U+001C..U+001F.
fn is_py_space(c: char) -> bool {
    c.is_whitespace() || matches!(c, '\u{1c}'..='\u{1f}')
}

/// Characters whose Python casing (`lower()`, `isupper()`) Rust's `char` methods reproduce:
/// Latin-1 and Latin Extended-A (stable for decades, no titlecase letters), and uncased
/// punctuation, symbol and emoji blocks. ASCII is handled separately.
fn casing_agrees(c: char) -> bool {
    matches!(c as u32,
        0x80..=0x17F
        | 0x2000..=0x206F     // general punctuation
        | 0x20A0..=0x20FF     // currency, combining marks for symbols (keycap)
        | 0x2190..=0x23FF     // arrows, mathematical operators, technical
        | 0x2500..=0x27BF     // box drawing, shapes, miscellaneous symbols, dingbats
        | 0x2B00..=0x2BFF     // miscellaneous symbols and arrows
        | 0x3000              // ideographic space
        | 0xFE00..=0xFE0F     // variation selectors
        | 0x1F000..=0x1F0FF   // mahjong, domino, playing cards
        | 0x1F1E6..=0x1F1FF   // regional indicators (flags)
        | 0x1F200..=0x1FAFF   // emoji and pictographs
        | 0xE0020..=0xE007F) // tags (subdivision flags)
}

/// The reference's emoji walk: each character in the emoji table becomes its description,
/// after a space unless the previous emitted character was one. `None` when nothing is
/// replaced (the text is used as it is).
fn translate_emojis(text: &str, t: &Tables) -> Option<String> {
    let first = text
        .char_indices()
        .find(|(_, c)| !c.is_ascii() && t.emoji.contains_key(c))?
        .0;
    let mut out = String::with_capacity(text.len() + 32);
    out.push_str(&text[..first]);
    let mut prev_space = text[..first].ends_with(' ') || first == 0;
    for c in text[first..].chars() {
        match (!c.is_ascii()).then(|| t.emoji.get(&c)).flatten() {
            Some(description) => {
                if !prev_space {
                    out.push(' ');
                }
                out.push_str(description);
                prev_space = false;
            }
            None => {
                out.push(c);
                prev_space = c == ' ';
            }
        }
    }
    Some(out)
}

/// The reference's `_strip_punc_if_word`: strip ASCII punctuation at both ends unless that
/// leaves two characters or fewer (":)" stays itself).
fn strip_punc_if_word(token: &str) -> &str {
    let stripped = token.trim_matches(|c: char| c.is_ascii_punctuation());
    if stripped.len() <= 2 || stripped.chars().nth(2).is_none() {
        token
    } else {
        stripped
    }
}

/// Looks one token up; `lower` is scratch space for its lower-cased form.
fn token(word: &str, t: &Tables, lower: &mut String) -> Tok {
    lower.clear();
    let upper = if word.is_ascii() {
        let mut has_upper = false;
        let mut has_lower = false;
        for b in word.bytes() {
            has_upper |= b.is_ascii_uppercase();
            has_lower |= b.is_ascii_lowercase();
            lower.push(b.to_ascii_lowercase() as char);
        }
        has_upper && !has_lower
    } else {
        let mut has_upper = false;
        let mut has_lower = false;
        for c in word.chars() {
            has_upper |= c.is_uppercase();
            has_lower |= c.is_lowercase();
            lower.extend(c.to_lowercase());
        }
        has_upper && !has_lower
    };
    Tok {
        e: t.entry(lower),
        upper,
    }
}

/// Tokens of `text` (whitespace split, then the punctuation strip), or `None` when a
/// character is outside what this module's casing covers.
fn tokens(text: &str, t: &Tables, out: &mut Vec<Tok>) -> Option<()> {
    let mut lower = String::with_capacity(32);
    if text.is_ascii() {
        for word in text
            .split(|c: char| c.is_ascii_whitespace() || matches!(c, '\u{0b}' | '\u{1c}'..='\u{1f}'))
            .filter(|w| !w.is_empty())
        {
            out.push(token(strip_punc_if_word(word), t, &mut lower));
        }
        return Some(());
    }
    if !text.chars().all(|c| c.is_ascii() || casing_agrees(c)) {
        return None;
    }
    for word in text.split(is_py_space).filter(|w| !w.is_empty()) {
        out.push(token(strip_punc_if_word(word), t, &mut lower));
    }
    Some(())
}

/// VADER's compound score of `text`, rounded to 4 decimals as the reference returns it; `None`
/// when the text holds a character this module does not cover (see the module doc).
pub(crate) fn compound(text: &str) -> Option<f64> {
    let t = tables();
    let translated = translate_emojis(text, t);
    let text = translated.as_deref().unwrap_or(text);
    let mut toks = Vec::with_capacity(text.len() / 4 + 1);
    tokens(text, t, &mut toks)?;
    if toks.is_empty() {
        return Some(0.0);
    }
    let cap_diff = toks.iter().any(|k| k.upper) && toks.iter().any(|k| !k.upper);
    let mut sentiments: Vec<Valence> = Vec::with_capacity(toks.len());
    for (i, item) in toks.iter().enumerate() {
        let next_is_of = toks.get(i + 1).is_some_and(|n| n.is(OF));
        if item.e.boost != 0.0 || (item.is(KIND) && next_is_of) {
            sentiments.push(INT_ZERO);
            continue;
        }
        sentiments.push(valence(t, cap_diff, &toks, i));
    }
    if let Some(bi) = toks.iter().position(|k| k.is(BUT)) {
        but_check(bi, &mut sentiments);
    }
    let mut sum = python_sum(&sentiments);
    let emphasis = punctuation_emphasis(text);
    match sum.total_cmp(&0.0) {
        Ordering::Greater => sum += emphasis,
        Ordering::Less => sum -= emphasis,
        Ordering::Equal => {}
    }
    let raw = (sum / (sum * sum + ALPHA).sqrt()).clamp(-1.0, 1.0);
    Some(round4(raw))
}

/// The reference's `sentiment_valence` for the token at `i`.
fn valence(t: &Tables, cap_diff: bool, toks: &[Tok], i: usize) -> Valence {
    let item = toks[i];
    let Some(lex) = item.e.valence else {
        return INT_ZERO;
    };
    let prev = |k: usize| i.checked_sub(k).map(|j| toks[j]);
    let (p1, p2, p3) = (prev(1), prev(2), prev(3));
    let next1 = toks.get(i + 1);
    let mut v = lex;
    if item.is(NO) && next1.is_some_and(|n| n.e.valence.is_some()) {
        v = 0.0;
    }
    let is = |p: Option<Tok>, flag: u16| p.is_some_and(|p| p.is(flag));
    if is(p1, NO) || is(p2, NO) || (is(p3, NO) && is(p1, OR_OR_NOR)) {
        v = lex * N_SCALAR;
    }
    if item.upper && cap_diff {
        if v > 0.0 {
            v += C_INCR;
        } else {
            v -= C_INCR;
        }
    }
    let mut from_int = false;
    if let Some(p1) = p1 {
        if p1.e.valence.is_none() {
            v += scalar_inc_dec(p1, v, cap_diff);
            if p1.is(NEGATED) {
                v *= N_SCALAR;
            }
        }
    }
    if let (Some(p1), Some(p2)) = (p1, p2) {
        if p2.e.valence.is_none() {
            let mut s = scalar_inc_dec(p2, v, cap_diff);
            if s != 0.0 {
                s *= DAMP_2;
            }
            v += s;
            if p2.is(NEVER) && p1.is(SO_OR_THIS) {
                v *= NEVER_SCALAR;
            } else if p2.is(WITHOUT) && p1.is(DOUBT) {
            } else if p2.is(NEGATED) {
                v *= N_SCALAR;
            }
        }
    }
    if let (Some(p1), Some(p2), Some(p3)) = (p1, p2, p3) {
        if p3.e.valence.is_none() {
            let mut s = scalar_inc_dec(p3, v, cap_diff);
            if s != 0.0 {
                s *= DAMP_3;
            }
            v += s;
            // Python's `and` binds tighter than `or`: (never3 and (so2 or this2)) or so1/this1.
            if (p3.is(NEVER) && p2.is(SO_OR_THIS)) || p1.is(SO_OR_THIS) {
                v *= NEVER_SCALAR;
            } else if p3.is(WITHOUT) && (p2.is(DOUBT) || p1.is(DOUBT)) {
            } else if p3.is(NEGATED) {
                v *= N_SCALAR;
            }
            (v, from_int) = special_idioms(t, v, toks, i);
        }
    }
    // `_least_check`: "least" before the word damps it, unless "at least" / "very least".
    let damped = Valence {
        value: v * N_SCALAR,
        from_int: false,
    };
    let kept = Valence { value: v, from_int };
    match (p1, p2) {
        (Some(p1), Some(p2)) if p1.e.valence.is_none() && p1.is(LEAST) => {
            if p2.is(AT_OR_VERY) {
                kept
            } else {
                damped
            }
        }
        (Some(p1), None) if p1.e.valence.is_none() && p1.is(LEAST) => damped,
        _ => kept,
    }
}

/// The reference's `scalar_inc_dec`: a preceding booster's contribution, signed like the
/// valence, with its own all-caps emphasis.
fn scalar_inc_dec(word: Tok, valence: f64, cap_diff: bool) -> f64 {
    if word.e.boost == 0.0 {
        return 0.0;
    }
    let mut scalar = word.e.boost;
    if valence < 0.0 {
        scalar = -scalar;
    }
    if word.upper && cap_diff {
        if valence > 0.0 {
            scalar += C_INCR;
        } else {
            scalar -= C_INCR;
        }
    }
    scalar
}

/// Word ids of `toks[start..start + len]`, or `None` if out of range or a word is in no
/// idiom.
fn ids(toks: &[Tok], start: Option<usize>, len: usize) -> Option<[u8; 3]> {
    let start = start?;
    let words = toks.get(start..start + len)?;
    let mut ids = [0u8; 3];
    for (k, w) in words.iter().enumerate() {
        if w.e.idiom == 0 {
            return None;
        }
        ids[k] = w.e.idiom;
    }
    Some(ids)
}

fn find(table: &[Ngram], ids: Option<[u8; 3]>, len: usize) -> Option<Ngram> {
    let ids = ids?;
    table.iter().copied().find(|n| n.len == len && n.ids == ids)
}

/// The reference's `_special_idioms_check`; returns the valence and whether it is now a
/// Python int (an idiom's int literal).
fn special_idioms(t: &Tables, valence_in: f64, toks: &[Tok], i: usize) -> (f64, bool) {
    let mut valence = valence_in;
    let mut from_int = false;
    let onezero = ids(toks, i.checked_sub(1), 2);
    let twoonezero = ids(toks, i.checked_sub(2), 3);
    let twoone = ids(toks, i.checked_sub(2), 2);
    let threetwoone = ids(toks, i.checked_sub(3), 3);
    let threetwo = ids(toks, i.checked_sub(3), 2);
    for (seq, len) in [
        (onezero, 2),
        (twoonezero, 3),
        (twoone, 2),
        (threetwoone, 3),
        (threetwo, 2),
    ] {
        if let Some(hit) = find(&t.specials, seq, len) {
            valence = hit.value;
            from_int = hit.is_int;
            break;
        }
    }
    for len in [2, 3] {
        if let Some(hit) = find(&t.specials, ids(toks, Some(i), len), len) {
            valence = hit.value;
            from_int = hit.is_int;
        }
    }
    for (seq, len) in [(threetwoone, 3), (threetwo, 2), (twoone, 2)] {
        if let Some(hit) = find(&t.ngram_boosters, seq, len) {
            valence += hit.value;
            from_int = false;
        }
    }
    (valence, from_int)
}

/// The reference's `_but_check`, quirk included: Python re-finds each value with
/// `sentiments.index(value)`, the FIRST slot holding an equal value, and reweights that slot.
/// Short lists scan for it; long ones keep an index of the slots holding each value, so a
/// 10,000-word text stays linear.
fn but_check(bi: usize, s: &mut [Valence]) {
    fn weight(si: usize, bi: usize) -> Option<f64> {
        match si.cmp(&bi) {
            Ordering::Less => Some(BUT_BEFORE),
            Ordering::Greater => Some(BUT_AFTER),
            Ordering::Equal => None,
        }
    }
    if s.len() <= 64 {
        for pos in 0..s.len() {
            let value = s[pos].value;
            // Python `==`: NaN equals nothing (falls back to its own slot), 0.0 == -0.0.
            let si = s.iter().position(|v| v.value == value).unwrap_or(pos);
            if let Some(w) = weight(si, bi) {
                s[si] = Valence {
                    value: value * w,
                    from_int: false,
                };
            }
        }
        return;
    }
    fn key(value: f64) -> u64 {
        if value == 0.0 {
            0
        } else {
            value.to_bits()
        }
    }
    let mut slots: HashMap<u64, BTreeSet<usize>> = HashMap::new();
    for (pos, v) in s.iter().enumerate() {
        slots.entry(key(v.value)).or_default().insert(pos);
    }
    for pos in 0..s.len() {
        let value = s[pos].value;
        let si = if value.is_nan() {
            pos
        } else {
            slots
                .get(&key(value))
                .and_then(|set| set.first().copied())
                .unwrap_or(pos)
        };
        if let Some(w) = weight(si, bi) {
            if let Some(set) = slots.get_mut(&key(s[si].value)) {
                set.remove(&si);
            }
            let written = value * w;
            slots.entry(key(written)).or_default().insert(si);
            s[si] = Valence {
                value: written,
                from_int: false,
            };
        }
    }
}

/// CPython's `sum()` over the sentiments list: a leading run of ints is added exactly, the
/// first float is added plainly, and the rest with Neumaier compensation (CPython ≥ 3.12).
/// Which is which is visible in the last bit of the compound, so it is reproduced.
fn python_sum(values: &[Valence]) -> f64 {
    let mut iter = values.iter();
    let mut int_total = 0.0_f64;
    let (mut total, mut c) = loop {
        match iter.next() {
            None => return int_total,
            Some(v) if v.from_int => int_total += v.value,
            Some(v) => break (int_total + v.value, 0.0_f64),
        }
    };
    for v in iter {
        let x = v.value;
        let t = total + x;
        if total.abs() >= x.abs() {
            c += (total - t) + x;
        } else {
            c += (x - t) + total;
        }
        total = t;
    }
    if c != 0.0 && c.is_finite() {
        total += c;
    }
    total
}

/// The reference's `_punctuation_emphasis`: 0.292 per "!" (at most 4), and 0.18 per "?" for
/// two or three, 0.96 for more.
fn punctuation_emphasis(text: &str) -> f64 {
    let b = text.as_bytes();
    let ep = memchr::memchr_iter(b'!', b).count().min(4);
    let qm = memchr::memchr_iter(b'?', b).count();
    let qm_amplifier = match qm {
        0 | 1 => 0.0,
        2 | 3 => qm as f64 * QM_STEP,
        _ => QM_CAP,
    };
    ep as f64 * EP_STEP + qm_amplifier
}

/// CPython's `round(x, 4)`: the exact binary value rounded to 4 decimals, ties to even, then
/// the nearest double. `(x * 1e4).round() / 1e4` is that whenever `x * 1e4` is not within
/// rounding error of a tie (the division is correctly rounded); near a tie, exact decimal
/// formatting decides.
fn round4(x: f64) -> f64 {
    let y = x * 10_000.0;
    let frac = (y - y.trunc()).abs();
    if (frac - 0.5).abs() < 1e-6 {
        return format!("{x:.4}").parse().unwrap_or(x);
    }
    y.round() / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use vader_parity::SentimentIntensityAnalyzer;

    fn reference() -> &'static SentimentIntensityAnalyzer {
        static R: OnceLock<SentimentIntensityAnalyzer> = OnceLock::new();
        R.get_or_init(SentimentIntensityAnalyzer::new)
    }

    #[track_caller]
    fn same(text: &str) {
        let want = reference().polarity_scores(text).compound;
        match compound(text) {
            Some(got) => assert_eq!(got.to_bits(), want.to_bits(), "{text:?}: {got} != {want}"),
            None => panic!("{text:?} not covered"),
        }
    }

    #[test]
    fn tables_have_the_reference_sizes() {
        let t = tables();
        assert_eq!(LEXICON.lines().count(), 7506);
        assert_eq!(t.emoji.len(), 1212);
        assert_eq!(t.specials.len(), 8);
        assert_eq!(t.ngram_boosters.len(), 3);
        assert_eq!(BOOSTERS.len(), 84);
        assert_eq!(NEGATE.len(), 59);
    }

    #[test]
    fn agrees_with_vader_parity_on_hand_picked_texts() {
        for text in [
            "VADER is smart, handsome, and funny.",
            "VADER is smart, handsome, and funny!",
            "VADER is very smart, handsome, and funny.",
            "VADER is VERY SMART, handsome, and FUNNY.",
            "VADER is VERY SMART, handsome, and FUNNY!!!",
            "VADER is VERY SMART, uber handsome, and FRIGGIN FUNNY!!!",
            "VADER is not smart, handsome, nor funny.",
            "The book was good.",
            "At least it isn't a horrible book.",
            "The book was only kind of good.",
            "The plot was good, but the characters are uncompelling and the dialog is not great.",
            "Today SUX!",
            "Today only kinda sux! But I'll get by, lol",
            "Make sure you :) or :D today!",
            "Catch utf-8 emoji such as 💘 and 💋 and 😁",
            "Not bad at all",
            "the shit was the bomb, yeah right",
            "that movie was to die for, a kiss of death for the rest",
            "it was never so good, without doubt the best",
            "no no no good",
            "least good, at least good, very least good",
            "",
            "   ",
            "?!?!?!",
            "wow??? really????",
            "CAFÉ au lait was DÉLICIEUX but the service… meh",
            "🇩🇪 flag and ❤️ and 👍🏽 thumbs",
            "Nothing is better than being ignored by support",
            "I can't believe how bad it is",
            "it's kind of ok but sort of bad and just enough good",
        ] {
            same(text);
        }
    }

    #[test]
    fn every_lexicon_word_and_booster_agrees_alone_and_in_context() {
        for line in LEXICON.lines() {
            let word = line.split('\t').next().unwrap();
            if word.chars().any(char::is_whitespace) {
                continue;
            }
            same(word);
            same(&format!("not very {word}!"));
        }
        for (word, _) in BOOSTERS {
            same(&format!("{word} good but {word} BAD"));
        }
    }

    /// Every character this module claims to case like CPython, in the positions where
    /// casing changes the score: all-caps emphasis and booster caps.
    #[test]
    fn agrees_with_vader_parity_on_every_covered_character() {
        let covered = (0x80u32..0xE0080)
            .filter_map(char::from_u32)
            .filter(|&c| casing_agrees(c));
        for c in covered {
            same(&format!("GOOD{c} good"));
            same(&format!("VERY{c} good stuff"));
            same(&format!("{c}x{c} happy {c}"));
        }
    }

    #[test]
    fn uncovered_characters_are_left_to_the_reference() {
        assert_eq!(compound("ΟΔΥΣΣΕΥΣ is great"), None);
        assert_eq!(compound("\u{A7CE} good"), None);
        assert_eq!(compound("Ⓐ good"), None);
        assert!(compound("good 😀").is_some());
    }

    #[test]
    fn rounding_matches_python_round() {
        for x in [
            0.0625, 2.675, 0.00005, -0.00004, 0.4404, -0.6597, 0.0, 1.0, -1.0, 0.12345,
        ] {
            let want: f64 = format!("{x:.4}").parse().unwrap();
            assert_eq!(round4(x).to_bits(), want.to_bits(), "{x}");
        }
        let mut x = 0.123_456_789_f64;
        for _ in 0..100_000 {
            x = (x * 997.0 + 0.618_033_988_7).fract() * 2.0 - 1.0;
            let want: f64 = format!("{x:.4}").parse().unwrap();
            assert_eq!(round4(x).to_bits(), want.to_bits(), "{x}");
        }
    }

    /// Long texts with "but" take the indexed `but_check`; it must land where the scan does.
    #[test]
    fn long_but_texts_agree() {
        let mut text = String::new();
        for i in 0..200 {
            text.push_str(["good ", "bad ", "ok ", "great ", "not bad ", "the "][i % 6]);
            if i == 150 {
                text.push_str("but ");
            }
        }
        same(&text);
        same(&format!("but {text}"));
    }

    /// Words the rules treat specially, lexicon words, boosters, negations, idiom words, caps
    /// and punctuation, in random order.
    fn vocabulary() -> Vec<&'static str> {
        let mut v = vec![
            "no",
            "but",
            "BUT",
            "kind",
            "of",
            "least",
            "at",
            "very",
            "VERY",
            "never",
            "so",
            "this",
            "without",
            "doubt",
            "or",
            "nor",
            "not",
            "isn't",
            "don't",
            "aint",
            "the",
            "shit",
            "bomb",
            "bad",
            "ass",
            "bus",
            "stop",
            "yeah",
            "right",
            "kiss",
            "death",
            "to",
            "die",
            "for",
            "beating",
            "heart",
            "just",
            "enough",
            "sort",
            "good",
            "GOOD",
            "Good",
            "great",
            "love",
            "hate",
            "HATE",
            "terrible",
            "horrible",
            "ok",
            "lol",
            ":)",
            ":(",
            ":-D",
            "!",
            "!!",
            "?",
            "??",
            "...",
            "kinda",
            "really",
            "REALLY",
            "extremely",
            "slightly",
            "barely",
            "hardly",
            "acme",
            "refund",
            "delayed",
            "😀",
            "💔",
            "👍",
            "é",
            "naïve",
            "“good”",
            "good,",
            "(bad)",
            "x",
            "it's",
            "won't",
            "can't",
            "never!",
            "SO",
            "Kind",
        ];
        v.extend(FLAG_WORDS.iter().map(|(w, _)| *w));
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        #[test]
        fn agrees_with_vader_parity_on_random_texts(
            words in proptest::collection::vec(proptest::sample::select(vocabulary()), 0..30),
            seps in proptest::collection::vec(proptest::sample::select(vec![" ", "  ", "\t", ", ", "! ", "?", " \u{a0}", "\u{2019}"]), 30),
        ) {
            let mut text = String::new();
            for (w, s) in words.iter().zip(&seps) {
                text.push_str(w);
                text.push_str(s);
            }
            let want = reference().polarity_scores(&text).compound;
            let got = compound(&text);
            prop_assert_eq!(got.map(f64::to_bits), Some(want.to_bits()), "{:?}: {:?} != {}", text, got, want);
        }
    }
}
