//! Complaint detection: finds the phrases customers use when a service or product failed them
//! ("flight delayed 3 hours", "no one at the desk", "still no refund", "never again"), which
//! carry no emotional word and so score neutral in VADER.
//!
//! It is a small, explainable lexicon of cue phrases, each with a kind and a weight, matched on
//! lower-cased word tokens with negation: "no problem", "never had an issue" and "wasn't
//! delayed" are not complaints. Every hit is reported, so an alert can say why it was called
//! negative. It does not detect sarcasm, does not read anything but English, and does not
//! decide `negative` on its own: [`super::negativity`] combines it with VADER.

use rustc_hash::FxHashMap;
use std::sync::OnceLock;

/// What kind of failure a cue points at; shown to people, so the names are plain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Delay,
    Cancellation,
    Refund,
    LostItem,
    Ignored,
    Broken,
    ServiceFailure,
    NeverAgain,
    Unanswered,
}

/// Weight of a cue that is a complaint on its own ("never arrived", "refund").
const STRONG: f64 = 1.0;
/// Weight of a cue that needs a second one, or text with nothing positive in it ("waiting",
/// "why is", "issue").
const WEAK: f64 = 0.5;

/// One cue: a phrase pattern, space-separated. In a pattern, `word*` matches any word that
/// starts with `word`, `a|b` matches either, `#` matches a number, `_` matches any one word.
///
/// `negatable` cues name a bad thing ("delayed", "broken"): a negator shortly before them
/// ("not delayed", "never had a problem") cancels the cue. Cues that already say something
/// good is missing ("no reply", "never arrived", "not working") are not negatable: their
/// negation is the complaint.
struct Cue {
    pattern: &'static str,
    kind: Kind,
    weight: f64,
    negatable: bool,
}

const fn bad(pattern: &'static str, kind: Kind, weight: f64) -> Cue {
    Cue {
        pattern,
        kind,
        weight,
        negatable: true,
    }
}

const fn missing(pattern: &'static str, kind: Kind, weight: f64) -> Cue {
    Cue {
        pattern,
        kind,
        weight,
        negatable: false,
    }
}

/// The lexicon. Order does not matter; each cue counts at most once per text.
const CUES: &[Cue] = &[
    // Delay.
    bad("delayed", Kind::Delay, STRONG),
    bad("delays", Kind::Delay, STRONG),
    bad("delay", Kind::Delay, WEAK),
    bad("# hours late", Kind::Delay, STRONG),
    bad("# hour late", Kind::Delay, STRONG),
    bad("# minutes late", Kind::Delay, STRONG),
    bad("# days late", Kind::Delay, STRONG),
    bad("running late", Kind::Delay, WEAK),
    bad("still waiting", Kind::Delay, STRONG),
    bad("been waiting", Kind::Delay, STRONG),
    bad("waiting for # *", Kind::Delay, WEAK),
    bad("waited", Kind::Delay, WEAK),
    bad("on hold", Kind::Delay, STRONG),
    bad("stuck", Kind::Delay, WEAK),
    bad("takes forever", Kind::Delay, STRONG),
    bad("taking forever", Kind::Delay, STRONG),
    bad("took forever", Kind::Delay, STRONG),
    bad("overdue", Kind::Delay, STRONG),
    missing("not yet arrived", Kind::Delay, STRONG),
    missing("still hasn't", Kind::Delay, STRONG),
    missing("still haven't", Kind::Delay, STRONG),
    missing("still not", Kind::Delay, STRONG),
    bad("still trying", Kind::Delay, STRONG),
    missing("still no", Kind::Delay, STRONG),
    // Cancellation.
    bad("cancelled", Kind::Cancellation, STRONG),
    bad("canceled", Kind::Cancellation, STRONG),
    bad("cancellation", Kind::Cancellation, STRONG),
    bad("cancelling", Kind::Cancellation, WEAK),
    bad("canceling", Kind::Cancellation, WEAK),
    // Refund and billing.
    bad("refund", Kind::Refund, STRONG),
    bad("refunds", Kind::Refund, STRONG),
    bad("refunded", Kind::Refund, WEAK),
    missing("no refund", Kind::Refund, STRONG),
    bad("money back", Kind::Refund, STRONG),
    bad("charged twice", Kind::Refund, STRONG),
    bad("double charged", Kind::Refund, STRONG),
    bad("overcharg*", Kind::Refund, STRONG),
    bad("chargeback", Kind::Refund, STRONG),
    bad("returned it", Kind::Refund, STRONG),
    bad("return it", Kind::Refund, WEAK),
    bad("returning it", Kind::Refund, STRONG),
    bad("sent it back", Kind::Refund, STRONG),
    bad("send it back", Kind::Refund, STRONG),
    bad("waste of money", Kind::Refund, STRONG),
    bad("rip off", Kind::Refund, STRONG),
    bad("ripoff", Kind::Refund, STRONG),
    // Lost or missing items.
    bad("lost my", Kind::LostItem, STRONG),
    bad("lost our", Kind::LostItem, STRONG),
    bad("lost luggage", Kind::LostItem, STRONG),
    bad("missing", Kind::LostItem, WEAK),
    bad("wrong item", Kind::LostItem, STRONG),
    bad("wrong order", Kind::LostItem, STRONG),
    bad("wrong size", Kind::LostItem, WEAK),
    missing("never arrived", Kind::LostItem, STRONG),
    missing("never received", Kind::LostItem, STRONG),
    missing("never got", Kind::LostItem, WEAK),
    missing("never came", Kind::LostItem, STRONG),
    missing("never showed", Kind::LostItem, STRONG),
    missing("didn't arrive", Kind::LostItem, STRONG),
    missing("hasn't arrived", Kind::LostItem, STRONG),
    missing("haven't received", Kind::LostItem, STRONG),
    missing("didn't receive", Kind::LostItem, STRONG),
    missing("not received", Kind::LostItem, STRONG),
    missing("not delivered", Kind::LostItem, STRONG),
    missing("where is my", Kind::LostItem, STRONG),
    missing("where's my", Kind::LostItem, STRONG),
    // Being ignored.
    missing("no one", Kind::Ignored, WEAK),
    missing("nobody", Kind::Ignored, WEAK),
    missing("no reply", Kind::Ignored, STRONG),
    missing("no response", Kind::Ignored, STRONG),
    missing("no answer", Kind::Ignored, STRONG),
    missing("no help", Kind::Ignored, STRONG),
    missing("no call back", Kind::Ignored, STRONG),
    missing("no callback", Kind::Ignored, STRONG),
    missing("not responding", Kind::Ignored, STRONG),
    missing("not answering", Kind::Ignored, STRONG),
    missing("never responded", Kind::Ignored, STRONG),
    missing("never replied", Kind::Ignored, STRONG),
    missing("never heard back", Kind::Ignored, STRONG),
    missing("never called back", Kind::Ignored, STRONG),
    missing("haven't heard", Kind::Ignored, STRONG),
    missing("hasn't replied", Kind::Ignored, STRONG),
    missing("haven't replied", Kind::Ignored, STRONG),
    missing("didn't reply", Kind::Ignored, STRONG),
    missing("didn't respond", Kind::Ignored, STRONG),
    missing("didn't bother", Kind::Ignored, STRONG),
    bad("ignored", Kind::Ignored, STRONG),
    bad("ignoring", Kind::Ignored, STRONG),
    bad("unanswered", Kind::Ignored, STRONG),
    bad("unresponsive", Kind::Ignored, STRONG),
    bad("nonresponsive", Kind::Ignored, STRONG),
    bad("non responsive", Kind::Ignored, STRONG),
    bad("nonexistent", Kind::Ignored, STRONG),
    bad("non existent", Kind::Ignored, STRONG),
    missing("can't get anyone", Kind::Ignored, STRONG),
    missing("can't reach", Kind::Ignored, STRONG),
    // Broken or defective.
    bad("broken", Kind::Broken, STRONG),
    bad("broke", Kind::Broken, STRONG),
    bad("defective", Kind::Broken, STRONG),
    bad("faulty", Kind::Broken, STRONG),
    bad("damaged", Kind::Broken, STRONG),
    bad("malfunction*", Kind::Broken, STRONG),
    bad("stopped working", Kind::Broken, STRONG),
    bad("quit working", Kind::Broken, STRONG),
    bad("dead on arrival", Kind::Broken, STRONG),
    bad("fell apart", Kind::Broken, STRONG),
    bad("keeps crashing", Kind::Broken, STRONG),
    bad("crash*", Kind::Broken, WEAK),
    bad("outage", Kind::Broken, STRONG),
    bad("glitch*", Kind::Broken, WEAK),
    bad("bug", Kind::Broken, WEAK),
    bad("buggy", Kind::Broken, STRONG),
    bad("error", Kind::Broken, WEAK),
    bad("leak*", Kind::Broken, WEAK),
    bad("died", Kind::Broken, WEAK),
    bad("is down", Kind::Broken, STRONG),
    bad("are down", Kind::Broken, STRONG),
    bad("was down", Kind::Broken, STRONG),
    bad("been down", Kind::Broken, STRONG),
    bad("went down", Kind::Broken, STRONG),
    bad("freez*", Kind::Broken, WEAK),
    bad("skipping", Kind::Broken, WEAK),
    bad("recall*", Kind::Broken, WEAK),
    bad("replacement", Kind::Broken, WEAK),
    bad("paperweight", Kind::Broken, STRONG),
    bad("only lasted", Kind::Broken, STRONG),
    missing(
        "won't|wouldn't|can't|cannot|couldn't|doesn't|didn't|isn't|wasn't|not|never \
         play*|load*|open*|close*|connect*|charg*|stream*|print*|sync*|start*|boot*|stay|\
         respond*|recogni*|install*|updat*|log|sign|turn|read*|send*|deliver*",
        Kind::Broken,
        STRONG,
    ),
    missing("doesn't work", Kind::Broken, STRONG),
    missing("does not work", Kind::Broken, STRONG),
    missing("didn't work", Kind::Broken, STRONG),
    missing("did not work", Kind::Broken, STRONG),
    missing("don't work", Kind::Broken, STRONG),
    missing("won't work", Kind::Broken, STRONG),
    missing("not working", Kind::Broken, STRONG),
    missing("won't turn on", Kind::Broken, STRONG),
    missing("won't start", Kind::Broken, STRONG),
    missing("won't load", Kind::Broken, STRONG),
    missing("can't log in", Kind::Broken, STRONG),
    missing("can't login", Kind::Broken, STRONG),
    missing("unable to", Kind::Broken, WEAK),
    missing("can't get", Kind::Broken, WEAK),
    // Service failure.
    bad("problem", Kind::ServiceFailure, WEAK),
    bad("problems", Kind::ServiceFailure, WEAK),
    bad("issue", Kind::ServiceFailure, WEAK),
    bad("issues", Kind::ServiceFailure, WEAK),
    bad("rude", Kind::ServiceFailure, STRONG),
    bad("unacceptable", Kind::ServiceFailure, STRONG),
    bad("ridiculous", Kind::ServiceFailure, STRONG),
    bad("useless", Kind::ServiceFailure, STRONG),
    bad("incompetent", Kind::ServiceFailure, STRONG),
    bad("complain*", Kind::ServiceFailure, STRONG),
    bad("poor service", Kind::ServiceFailure, STRONG),
    bad("bad service", Kind::ServiceFailure, STRONG),
    bad("customer service", Kind::ServiceFailure, WEAK),
    bad("disappoint*", Kind::ServiceFailure, STRONG),
    bad("fix this", Kind::ServiceFailure, STRONG),
    bad("fix it", Kind::ServiceFailure, WEAK),
    bad("second|third|fourth|fifth time", Kind::ServiceFailure, WEAK),
    bad("badservice", Kind::ServiceFailure, STRONG),
    bad("nothappy", Kind::ServiceFailure, STRONG),
    missing("not even", Kind::ServiceFailure, WEAK),
    missing("not worth", Kind::NeverAgain, STRONG),
    bad("what gives", Kind::Unanswered, STRONG),
    bad("what's up with", Kind::Unanswered, WEAK),
    bad("anyone know", Kind::Unanswered, WEAK),
    bad("why", Kind::Unanswered, WEAK),
    bad("again", Kind::ServiceFailure, WEAK),
    bad("yet again", Kind::ServiceFailure, STRONG),
    bad("every time", Kind::ServiceFailure, WEAK),
    missing("not happy", Kind::ServiceFailure, STRONG),
    missing("not impressed", Kind::ServiceFailure, STRONG),
    missing("not acceptable", Kind::ServiceFailure, STRONG),
    missing("no way to", Kind::ServiceFailure, WEAK),
    // Never again.
    missing("never again", Kind::NeverAgain, STRONG),
    missing("never buy*", Kind::NeverAgain, STRONG),
    missing("never purchas*", Kind::NeverAgain, STRONG),
    missing("don't purchas*", Kind::NeverAgain, STRONG),
    bad("save your money", Kind::NeverAgain, STRONG),
    missing("never use*", Kind::NeverAgain, STRONG),
    missing("never fly*", Kind::NeverAgain, STRONG),
    missing("never order*", Kind::NeverAgain, STRONG),
    missing("never shop*", Kind::NeverAgain, STRONG),
    missing("never be back", Kind::NeverAgain, STRONG),
    missing("won't be back", Kind::NeverAgain, STRONG),
    missing("don't buy", Kind::NeverAgain, STRONG),
    missing("do not buy", Kind::NeverAgain, STRONG),
    missing("don't wast*", Kind::NeverAgain, STRONG),
    bad("switching to", Kind::NeverAgain, STRONG),
    bad("cancel my", Kind::NeverAgain, WEAK),
    bad("last time i", Kind::NeverAgain, STRONG),
    bad("avoid", Kind::NeverAgain, WEAK),
    // Questions left unanswered.
    bad("why is", Kind::Unanswered, WEAK),
    bad("why does", Kind::Unanswered, WEAK),
    bad("why do", Kind::Unanswered, WEAK),
    bad("why can't", Kind::Unanswered, STRONG),
    bad("why won't", Kind::Unanswered, STRONG),
    bad("why isn't", Kind::Unanswered, STRONG),
    bad("why hasn't", Kind::Unanswered, STRONG),
    bad("why haven't", Kind::Unanswered, STRONG),
    bad("how long", Kind::Unanswered, WEAK),
    bad("when will", Kind::Unanswered, WEAK),
    bad("any update", Kind::Unanswered, STRONG),
    bad("any updates", Kind::Unanswered, STRONG),
    bad("anyone there", Kind::Unanswered, STRONG),
];

/// Words that cancel a following negatable cue. Contractions ending in "n't" (and their
/// apostrophe-less spellings below) count too.
const NEGATORS: &[&str] = &[
    "not", "no", "never", "without", "none", "nothing", "nobody", "zero", "hardly", "barely",
    "dont", "doesnt", "didnt", "isnt", "wasnt", "werent", "arent", "havent", "hasnt", "hadnt",
    "cant", "couldnt", "wont", "wouldnt", "shouldnt", "aint", "nor",
];

/// How many words before a negatable cue a negator still reaches ("never had a problem").
const NEGATION_WINDOW: usize = 3;

/// Words near a cue that say the failure is over ("problem solved", "fixed the issue").
const RESOLVED: &[&str] = &[
    "solved",
    "resolved",
    "fixed",
    "sorted",
    "vanished",
    "gone",
    "eliminate",
    "eliminates",
    "solve",
    "fix",
    "fixes",
];

/// Words right before a cue that make it a side remark, not a complaint ("minor issue").
const DAMPENERS: &[&str] = &["minor", "slight", "small", "tiny", "little", "only"];

/// One matched cue, for the explanation on an alert.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Hit {
    pub(crate) kind: Kind,
    pub(crate) phrase: &'static str,
    pub(crate) weight: f64,
}

/// The complaint found in one text.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Complaint {
    /// Sum of the weights of the distinct cues that matched; 1.0 is one strong cue.
    pub(crate) weight: f64,
    pub(crate) hits: Vec<Hit>,
}

impl Complaint {
    /// The kinds found, in lexicon order, without repeats.
    #[cfg(test)]
    pub(crate) fn kinds(&self) -> Vec<Kind> {
        let mut kinds: Vec<Kind> = Vec::new();
        for h in &self.hits {
            if !kinds.contains(&h.kind) {
                kinds.push(h.kind);
            }
        }
        kinds
    }
}

/// A compiled pattern element.
#[derive(Debug)]
enum Part {
    Word(&'static str),
    Prefix(&'static str),
    /// `a|b*|c`: any of the alternatives.
    OneOf(Vec<Part>),
    Number,
    Any,
}

fn part(w: &'static str) -> Part {
    match w {
        "#" => Part::Number,
        "_" | "*" => Part::Any,
        w if w.ends_with('*') => Part::Prefix(&w[..w.len() - 1]),
        w => Part::Word(w),
    }
}

fn parts(pattern: &'static str) -> Vec<Part> {
    pattern
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(|w| match w.contains('|') {
            true => Part::OneOf(w.split('|').map(part).collect()),
            false => part(w),
        })
        .collect()
}

/// The cues compiled, and indexed by what their first word can be, so a text's word only
/// tries the few cues that can start with it (instead of every cue at every word).
struct Lexicon {
    cues: Vec<(Vec<Part>, &'static Cue)>,
    /// Cues whose first part is a word (or words: `a|b`), by that word.
    by_word: FxHashMap<&'static str, Vec<usize>>,
    /// Cues whose first part is a prefix, by that prefix.
    by_prefix: Vec<(&'static str, usize)>,
    /// Cues whose first part is a number, or is anything else no word index covers: tried at
    /// every word.
    anywhere: Vec<usize>,
}

fn lexicon() -> &'static Lexicon {
    static LEXICON: OnceLock<Lexicon> = OnceLock::new();
    LEXICON.get_or_init(|| {
        let mut lex = Lexicon {
            cues: CUES.iter().map(|c| (parts(c.pattern), c)).collect(),
            by_word: FxHashMap::default(),
            by_prefix: Vec::new(),
            anywhere: Vec::new(),
        };
        for (i, (parts, _)) in lex.cues.iter().enumerate() {
            let firsts: &[Part] = match &parts[0] {
                Part::OneOf(alternatives) => alternatives,
                p => std::slice::from_ref(p),
            };
            if firsts
                .iter()
                .all(|p| matches!(p, Part::Word(_) | Part::Prefix(_)))
            {
                for p in firsts {
                    match p {
                        Part::Word(w) => lex.by_word.entry(w).or_default().push(i),
                        Part::Prefix(x) => lex.by_prefix.push((x, i)),
                        _ => unreachable!("only words and prefixes here"),
                    }
                }
            } else {
                lex.anywhere.push(i);
            }
        }
        lex
    })
}

/// A text's lower-cased words (`lower[start..end]`) and clause breaks ([`BREAK`]).
#[derive(Debug, Default)]
struct Words {
    lower: String,
    toks: Vec<(u32, u32)>,
}

/// A clause break: negation does not reach across it and phrases do not span it.
const BREAK: (u32, u32) = (u32::MAX, u32::MAX);

impl Words {
    /// Word `k`; `None` past the end or at a break.
    fn word(&self, k: usize) -> Option<&str> {
        match self.toks.get(k) {
            Some(&(s, e)) if (s, e) != BREAK => Some(&self.lower[s as usize..e as usize]),
            _ => None,
        }
    }

    fn close(&mut self, start: usize, break_after_but: bool) {
        let word = self.lower[start..].trim_end_matches('\'');
        let is_but = word == "but";
        let end = start + word.len();
        self.toks.push((start as u32, end as u32));
        if is_but && break_after_but {
            self.toks.push(BREAK);
        }
    }
}

/// Lower-cases, folds typographic apostrophes, and splits into words and clause breaks: a word
/// is letters and digits with inner apostrophes; `.!?;,:`, a newline and the word "but" end a
/// clause.
fn tokenize(text: &str) -> Words {
    let mut w = Words {
        lower: String::with_capacity(text.len()),
        toks: Vec::with_capacity(text.len() / 4 + 1),
    };
    let mut open: Option<usize> = None;
    for ch in text.chars() {
        let ch = if ch == '\u{2019}' { '\'' } else { ch };
        if ch.is_ascii_alphanumeric() || (ch == '\'' && open.is_some()) {
            open.get_or_insert(w.lower.len());
            w.lower.push(ch.to_ascii_lowercase());
            continue;
        }
        if !ch.is_ascii() && ch.is_alphanumeric() {
            open.get_or_insert(w.lower.len());
            w.lower.extend(ch.to_lowercase());
            continue;
        }
        if let Some(start) = open.take() {
            w.close(start, true);
        }
        if matches!(ch, '.' | '!' | '?' | ';' | ',' | ':' | '\n') && w.toks.last() != Some(&BREAK) {
            w.toks.push(BREAK);
        }
    }
    if let Some(start) = open {
        w.close(start, false);
    }
    w
}

fn is_negator(w: &str) -> bool {
    NEGATORS.contains(&w) || w.ends_with("n't")
}

fn part_matches(p: &Part, w: &str) -> bool {
    match p {
        Part::Word(x) => *x == w,
        Part::Prefix(x) => w.starts_with(x),
        Part::OneOf(alternatives) => alternatives.iter().any(|p| part_matches(p, w)),
        Part::Number => w.chars().all(|c| c.is_ascii_digit()) || NUMBER_WORDS.contains(&w),
        Part::Any => true,
    }
}

/// Spelled numbers, so "two hours late" reads like "2 hours late".
const NUMBER_WORDS: &[&str] = &[
    "a", "an", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "several", "few", "many",
];

/// Whether a negator or a fix ("solved our problem") sits within [`NEGATION_WINDOW`] words
/// before `at`, in the same clause.
fn negated_before(words: &Words, at: usize) -> bool {
    (at.saturating_sub(NEGATION_WINDOW)..at)
        .rev()
        .map_while(|k| words.word(k))
        .any(|w| is_negator(w) || RESOLVED.contains(&w))
}

/// Whether cue `parts` matches at word `i` and, for a negatable cue, is not negated,
/// resolved or dampened there.
fn hit_at(words: &Words, parts: &[Part], cue: &Cue, i: usize) -> bool {
    let mut k = i;
    for p in parts {
        match words.word(k) {
            Some(w) if part_matches(p, w) => k += 1,
            _ => return false,
        }
    }
    if !cue.negatable {
        return true;
    }
    let resolved = (k..k + 2)
        .map_while(|j| words.word(j))
        .any(|w| RESOLVED.contains(&w));
    let dampened = i > 0 && words.word(i - 1).is_some_and(|w| DAMPENERS.contains(&w));
    !resolved && !dampened && !negated_before(words, i)
}

/// Finds the complaint cues in `text`. Pure; the compiled lexicon is built once per process.
/// Each word of the text is looked up once in the index of cues' first words, so the cost is
/// a pass over the words plus the few cues that start at one of them.
pub(crate) fn detect(text: &str) -> Complaint {
    let lex = lexicon();
    let words = tokenize(text);
    let mut hit = vec![false; lex.cues.len()];
    let mut any = false;
    let mut try_cue = |c: usize, i: usize| {
        if !hit[c] {
            let (parts, cue) = &lex.cues[c];
            if hit_at(&words, parts, cue, i) {
                hit[c] = true;
                any = true;
            }
        }
    };
    for i in 0..words.toks.len() {
        let Some(w) = words.word(i) else {
            continue;
        };
        if let Some(cues) = lex.by_word.get(w) {
            for &c in cues {
                try_cue(c, i);
            }
        }
        for &(prefix, c) in &lex.by_prefix {
            if w.starts_with(prefix) {
                try_cue(c, i);
            }
        }
        for &c in &lex.anywhere {
            try_cue(c, i);
        }
    }
    let mut found = Complaint::default();
    if !any {
        return found;
    }
    for (c, (_, cue)) in lex.cues.iter().enumerate() {
        if hit[c] {
            found.weight += cue.weight;
            found.hits.push(Hit {
                kind: cue.kind,
                phrase: cue.pattern,
                weight: cue.weight,
            });
        }
    }
    found
}

/// The detector as it was before words were indexed (every cue tried at every word), kept to
/// check the indexed one against.
#[cfg(test)]
mod reference {
    // The pattern parts and their matching are shared with the indexed detector: what this
    // reference checks is the index and the one-pass tokens, not the pattern language.
    use super::{
        is_negator, part_matches, parts, Complaint, Cue, Hit, Part, CUES, DAMPENERS,
        NEGATION_WINDOW, RESOLVED,
    };
    use std::sync::OnceLock;

    fn compiled() -> &'static [(Vec<Part>, &'static Cue)] {
        static COMPILED: OnceLock<Vec<(Vec<Part>, &'static Cue)>> = OnceLock::new();
        COMPILED.get_or_init(|| CUES.iter().map(|c| (parts(c.pattern), c)).collect())
    }

    /// A word token, or a clause break that stops negation from reaching across it.
    #[derive(Debug, PartialEq)]
    enum Token {
        Word(String),
        Break,
    }

    /// Lower-cases, folds typographic apostrophes, and splits into words and clause breaks.
    fn tokenize(text: &str) -> Vec<Token> {
        let mut out = Vec::new();
        let mut word = String::new();
        for ch in text.chars() {
            let ch = if ch == '\u{2019}' { '\'' } else { ch };
            if ch.is_alphanumeric() || (ch == '\'' && !word.is_empty()) {
                word.extend(ch.to_lowercase());
                continue;
            }
            if !word.is_empty() {
                let w = std::mem::take(&mut word);
                let w = w.trim_end_matches('\'').to_string();
                let is_but = w == "but";
                out.push(Token::Word(w));
                if is_but {
                    out.push(Token::Break);
                }
            }
            if matches!(ch, '.' | '!' | '?' | ';' | ',' | ':' | '\n')
                && out.last() != Some(&Token::Break)
            {
                out.push(Token::Break);
            }
        }
        if !word.is_empty() {
            out.push(Token::Word(word.trim_end_matches('\'').to_string()));
        }
        out
    }

    /// The words of the clause starting at `start`, up to the next break.
    fn words_from(tokens: &[Token], start: usize) -> impl Iterator<Item = &str> {
        tokens[start..].iter().map_while(|t| match t {
            Token::Word(w) => Some(w.as_str()),
            Token::Break => None,
        })
    }

    /// Whether a negator or a fix ("solved our problem") sits within [`NEGATION_WINDOW`] words before `at`, in the same clause.
    fn negated_before(tokens: &[Token], at: usize) -> bool {
        tokens[..at]
            .iter()
            .rev()
            .take(NEGATION_WINDOW)
            .map_while(|t| match t {
                Token::Word(w) => Some(w.as_str()),
                Token::Break => None,
            })
            .any(|w| is_negator(w) || RESOLVED.contains(&w))
    }

    /// Finds the complaint cues in `text`. Pure; the compiled lexicon is built once per process.
    pub(crate) fn detect(text: &str) -> Complaint {
        let tokens = tokenize(text);
        let mut found = Complaint::default();
        for (parts, cue) in compiled() {
            let hit = (0..tokens.len()).any(|i| {
                let mut words = words_from(&tokens, i);
                let matched = parts
                    .iter()
                    .all(|p| words.next().is_some_and(|w| part_matches(p, w)));
                if !matched || !cue.negatable {
                    return matched;
                }
                let resolved = words.take(2).any(|w| RESOLVED.contains(&w));
                let dampened = i > 0
                    && matches!(&tokens[i - 1], Token::Word(w) if DAMPENERS.contains(&w.as_str()));
                !resolved && !dampened && !negated_before(&tokens, i)
            });
            if hit {
                found.weight += cue.weight;
                found.hits.push(Hit {
                    kind: cue.kind,
                    phrase: cue.pattern,
                    weight: cue.weight,
                });
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weight(text: &str) -> f64 {
        detect(text).weight
    }

    #[test]
    fn complaints_without_emotional_words_are_found() {
        let cases: &[(&str, &[Kind])] = &[
            (
                "flight delayed 3 hours and no one at the desk",
                &[Kind::Delay, Kind::Ignored],
            ),
            ("my parcel never arrived", &[Kind::LostItem]),
            ("still waiting for my refund", &[Kind::Delay, Kind::Refund]),
            (
                "they cancelled my order without telling me",
                &[Kind::Cancellation],
            ),
            ("emailed support twice, no reply", &[Kind::Ignored]),
            ("the charger stopped working after a week", &[Kind::Broken]),
            (
                "never again, switching to another bank",
                &[Kind::NeverAgain],
            ),
            (
                "Why can't anyone tell me where my bag is?",
                &[Kind::Unanswered],
            ),
            ("app doesn’t work since the update", &[Kind::Broken]),
            ("the train was two hours late", &[Kind::Delay]),
            ("the app won't load since Monday", &[Kind::Broken]),
            ("my phone isn't charging anymore", &[Kind::Broken]),
            ("Acme tech support is nonexistent", &[Kind::Ignored]),
            ("do not buy this kettle", &[Kind::NeverAgain]),
        ];
        for (text, kinds) in cases {
            let c = detect(text);
            assert!(c.weight >= STRONG, "{text}: {c:?}");
            for k in *kinds {
                assert!(c.kinds().contains(k), "{text}: missing {k:?} in {c:?}");
            }
        }
    }

    #[test]
    fn negated_and_resolved_cues_do_not_count() {
        for text in [
            "no problem at all, thanks Acme",
            "never had an issue with them",
            "my flight wasn't delayed for once",
            "not broken, just needed a restart",
            "problem solved within minutes",
            "the box arrived without damage, nothing broken",
            "no issues, works as described",
            "support fixed the issue the same day",
            "the only minor issue is the short cable",
        ] {
            assert_eq!(weight(text), 0.0, "{text}: {:?}", detect(text));
        }
    }

    #[test]
    fn plain_mentions_are_not_complaints() {
        for text in [
            "Acme released version 2.1 today",
            "I love my new Acme headphones",
            "Acme is hiring engineers in Berlin",
            "can I return online purchases to a store?",
        ] {
            assert!(weight(text) < STRONG, "{text}: {:?}", detect(text));
        }
    }

    #[test]
    fn negation_does_not_cross_clauses_or_reach_far() {
        // "not" ends its clause at the comma; "delayed" stands.
        assert!(weight("not again, delayed") >= STRONG);
        // four words away is outside the window.
        assert!(weight("i do not think the train is delayed") >= STRONG);
    }

    #[test]
    fn each_cue_counts_once_and_hits_explain_the_weight() {
        let c = detect("delayed, delayed, delayed");
        assert_eq!(c.hits.len(), 1);
        assert_eq!(c.weight, STRONG);
        let c = detect("flight delayed 3 hours and no one at the desk");
        let sum: f64 = c.hits.iter().map(|h| h.weight).sum();
        assert_eq!(c.weight, sum);
    }

    #[test]
    fn tokens_split_on_clause_marks_and_but() {
        let w = tokenize("Good, but DOESN’T work! Ça va'' but");
        let toks: Vec<Option<&str>> = (0..w.toks.len()).map(|k| w.word(k)).collect();
        assert_eq!(
            toks,
            vec![
                Some("good"),
                None,
                Some("but"),
                None,
                Some("doesn't"),
                Some("work"),
                None,
                Some("ça"),
                Some("va"),
                Some("but"),
            ]
        );
    }

    /// Texts made of cue words, negators, fixes, dampeners, numbers and clause marks: the
    /// indexed detector finds exactly what trying every cue at every word finds.
    fn vocabulary() -> Vec<String> {
        let mut v: Vec<String> = CUES
            .iter()
            .flat_map(|c| c.pattern.split([' ', '|']))
            .map(|w| w.trim_end_matches('*').replace('#', "3"))
            .filter(|w| !w.is_empty())
            .collect();
        v.extend(
            NEGATORS
                .iter()
                .chain(RESOLVED)
                .chain(DAMPENERS)
                .map(|w| w.to_string()),
        );
        v.extend(
            [
                "but",
                ".",
                ",",
                "!",
                "?",
                "\n",
                "two",
                "hours",
                "late",
                "Delayed",
                "NEVER",
                "doesn’t",
                "it's",
                "x",
                "acme",
                "overcharged",
                "crashing",
                "refunds!",
                "'",
            ]
            .map(String::from),
        );
        v.sort();
        v.dedup();
        v
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]
        #[test]
        fn indexed_detector_agrees_with_the_reference(
            words in proptest::collection::vec(proptest::sample::select(vocabulary()), 0..25),
        ) {
            let text = words.join(" ");
            proptest::prop_assert_eq!(detect(&text), reference::detect(&text), "{:?}", text);
        }
    }

    #[test]
    fn indexed_detector_agrees_with_the_reference_on_the_examples() {
        for text in [
            "flight delayed 3 hours and no one at the desk",
            "never had an issue with them",
            "the only minor issue is the short cable",
            "problem solved within minutes",
            "i do not think the train is delayed",
            "my phone won't charge, can't connect and never updates",
            "second time this week, why is it down again?",
            "",
        ] {
            assert_eq!(detect(text), reference::detect(text), "{text}");
        }
    }
}
