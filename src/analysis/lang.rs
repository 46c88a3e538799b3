//! Language of a mention that arrived without one. A post's function words decide first
//! ([`evidence`]): English ones alone make it English, a short post with none of any listed
//! language stays unknown, and only the rest goes to `whatlang` (pure Rust, trigram and
//! alphabet tables compiled in, no model files), which costs about 60 µs per Latin-script
//! post against well under 1 µs for the word check. Links, handles and hashtags are left
//! out. A whatlang guess below [`MIN_CONFIDENCE`] is no answer: on a short post a wrong
//! language would hide the post from `lang:` rules and `[rules_defaults] languages`, or
//! leave a complaint unscored, so "unknown" is the safer result. Also says which languages the
//! sentiment analysis applies to ([`is_scored`]). Deciding when detection runs is the caller's
//! job (the rule matcher and `intake::Judge`), so a post no rule wants costs nothing here.

use whatlang::Lang;

/// Lowest whatlang confidence (0..1) taken as an answer, for the posts the word check
/// ([`evidence`]) leaves to whatlang. Chosen with `scripts/lang_bench.sh`
/// (figures in BENCHMARKS.md, "Language detection"): from 0.4 up no short post of
/// `tests/data/lang_short.tsv` gets a wrong language, and the higher the floor the fewer
/// English posts are called another language (and so lose their sentiment, or are dropped
/// by `[rules_defaults] languages`): 0.88 % of TweetEval's English tweets at 0.5, 0.23 % at
/// 0.8, while 44 % of the short non-English posts are still named. A missed complaint costs
/// more than a foreign post scored as if English (mostly neutral), so the floor is high.
pub const MIN_CONFIDENCE: f64 = 0.8;

/// At most this many bytes of a post are read: a few sentences decide the language, and the
/// cost per post stays bounded however long the post is.
const MAX_BYTES: usize = 600;

/// The languages the sentiment analysis (VADER's lexicon, the complaint cues, the trained
/// model) was built from; elsewhere its score would be a guess.
const SCORED: &[&str] = &["en"];

/// Every language whatlang can answer, as (ISO 639-1, whatlang's language). `[rules_defaults]
/// languages` accepts exactly these codes.
const CODES: &[(&str, Lang)] = &[
    ("af", Lang::Afr),
    ("ak", Lang::Aka),
    ("am", Lang::Amh),
    ("ar", Lang::Ara),
    ("az", Lang::Aze),
    ("be", Lang::Bel),
    ("bg", Lang::Bul),
    ("bn", Lang::Ben),
    ("ca", Lang::Cat),
    ("cs", Lang::Ces),
    ("cy", Lang::Cym),
    ("da", Lang::Dan),
    ("de", Lang::Deu),
    ("el", Lang::Ell),
    ("en", Lang::Eng),
    ("eo", Lang::Epo),
    ("es", Lang::Spa),
    ("et", Lang::Est),
    ("fa", Lang::Pes),
    ("fi", Lang::Fin),
    ("fr", Lang::Fra),
    ("gu", Lang::Guj),
    ("he", Lang::Heb),
    ("hi", Lang::Hin),
    ("hr", Lang::Hrv),
    ("hu", Lang::Hun),
    ("hy", Lang::Hye),
    ("id", Lang::Ind),
    ("it", Lang::Ita),
    ("ja", Lang::Jpn),
    ("jv", Lang::Jav),
    ("ka", Lang::Kat),
    ("km", Lang::Khm),
    ("kn", Lang::Kan),
    ("ko", Lang::Kor),
    ("la", Lang::Lat),
    ("lt", Lang::Lit),
    ("lv", Lang::Lav),
    ("mk", Lang::Mkd),
    ("ml", Lang::Mal),
    ("mr", Lang::Mar),
    ("my", Lang::Mya),
    ("nb", Lang::Nob),
    ("ne", Lang::Nep),
    ("nl", Lang::Nld),
    ("or", Lang::Ori),
    ("pa", Lang::Pan),
    ("pl", Lang::Pol),
    ("pt", Lang::Por),
    ("ro", Lang::Ron),
    ("ru", Lang::Rus),
    ("si", Lang::Sin),
    ("sk", Lang::Slk),
    ("sl", Lang::Slv),
    ("sn", Lang::Sna),
    ("sr", Lang::Srp),
    ("sv", Lang::Swe),
    ("ta", Lang::Tam),
    ("te", Lang::Tel),
    ("th", Lang::Tha),
    ("tk", Lang::Tuk),
    ("tl", Lang::Tgl),
    ("tr", Lang::Tur),
    ("uk", Lang::Ukr),
    ("ur", Lang::Urd),
    ("uz", Lang::Uzb),
    ("vi", Lang::Vie),
    ("yi", Lang::Yid),
    ("zh", Lang::Cmn),
    ("zu", Lang::Zul),
];

/// A detection: the ISO 639-1 code and whatlang's confidence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Guess {
    pub code: &'static str,
    pub confidence: f64,
}

/// Whether a list of languages (`[rules_defaults] languages`, a source's `languages`, primary
/// codes) leaves out a post in `lang`: only a known language outside the list does; a post
/// whose language cannot be told is kept.
pub fn left_out_by(languages: &[String], lang: Option<&str>) -> bool {
    lang.map(primary).is_some_and(|l| !languages.contains(&l))
}

/// whatlang's best guess for `title` and `text`, whatever its confidence and without the
/// function-word check of [`detect`] (`None` when the text has no letters). Public for
/// `scripts/lang_bench.sh`.
pub fn guess(title: Option<&str>, text: &str) -> Option<Guess> {
    whatlang_guess(&words_only(title, text))
}

fn whatlang_guess(cleaned: &str) -> Option<Guess> {
    let info = whatlang::detect(cleaned)?;
    let code = CODES.iter().find(|(_, l)| *l == info.lang())?.0;
    Some(Guess {
        code,
        confidence: info.confidence(),
    })
}

/// The language of a post as an ISO 639-1 code (`"en"`, `"de"`), or `None` when the post is
/// too short or mixed to tell. The post's function words decide first ([`evidence`]): enough
/// English ones make it English, none at all in a short post leave it unknown, and only the
/// rest (another script, diacritics, another language's function words, long posts) go to
/// whatlang, whose guess counts from [`MIN_CONFIDENCE`]. On English tweets this is both
/// cheaper (whatlang runs for about 1 % of them) and more often right than whatlang alone
/// (BENCHMARKS.md, "Language detection"). The word check reads the post in place; only a post
/// left to whatlang is copied (without links and handles) for it.
pub fn detect(title: Option<&str>, text: &str) -> Option<&'static str> {
    match evidence_of(kept_words(title, text)) {
        Evidence::English => Some("en"),
        Evidence::Neither => None,
        Evidence::Other => whatlang_guess(&words_only(title, text))
            .filter(|g| g.confidence >= MIN_CONFIDENCE)
            .map(|g| g.code),
    }
}

/// What a post's own words say about its language before whatlang is asked: whatlang costs
/// about 60 µs per Latin-script post (it compares the post with 300 trigrams of each of 37
/// languages), a word lookup well under one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    /// English function words and nothing against them: only ASCII letters, at least one
    /// English function word and no function word of another Latin-script language; or, as
    /// the stronger evidence some posts need, two English function words beside Latin
    /// diacritics (a name like "José" in an English post), at least two and twice as many as
    /// another language's function words ("Livin' la vida loca, and then you..."), or, in a
    /// post of at least [`NEITHER_MAX_WORDS`] ASCII words with no listed function word, two
    /// distinct words English shares with other languages ([`SHARED_WORDS`]). Another
    /// language's function word in capitals (`LA`, `IL`, `EST`) counts as an abbreviation,
    /// not as that language.
    English,
    /// Letters of another script, diacritics or another language's function words without
    /// the English evidence above, or a long post with no word of any list: whatlang decides.
    Other,
    /// ASCII letters and no function word of any listed language, in a short post, or in a
    /// long one with a single word of [`SHARED_WORDS`] (mostly English headlines: whatlang
    /// named 26 of 58 such tweets English and none another language, and could not tell
    /// the rest; asking it cost more than the rest of the analysis): too little to tell.
    Neither,
}

/// The words of the title and text that detection reads: split at whitespace, without links,
/// `@handles`, `#hashtags` and `$cashtags` (names, not language), as many as fit in
/// `MAX_BYTES` joined by spaces ([`words_only`] joins exactly these).
fn kept_words<'a>(title: Option<&'a str>, text: &'a str) -> impl Iterator<Item = &'a str> {
    let mut len = 0usize;
    title
        .into_iter()
        .flat_map(|t| Words { rest: t })
        .chain(Words { rest: text })
        .filter(|w| {
            // `contains(':')` first: a byte search, where `contains("://")` sets up a
            // substring search for every word.
            !(w.starts_with(['@', '#', '$'])
                || (w.contains(':') && w.contains("://"))
                || w.starts_with("www."))
        })
        .take_while(move |w| {
            if len + w.len() + 1 > MAX_BYTES {
                return false;
            }
            len += w.len() + usize::from(len > 0);
            true
        })
}

/// The words of a text as `str::split_whitespace` gives them, reading ASCII byte by byte (the
/// standard splitter decodes every character, a fifth of the word check's time).
struct Words<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Words<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let bytes = self.rest.as_bytes();
        let mut start = 0;
        while start < bytes.len() && matches!(bytes[start], b'\t'..=b'\r' | b' ') {
            start += 1;
        }
        let rest = if bytes.get(start).is_some_and(|&b| b >= 0x80) {
            self.rest[start..].trim_start()
        } else {
            &self.rest[start..]
        };
        if rest.is_empty() {
            self.rest = rest;
            return None;
        }
        let bytes = rest.as_bytes();
        let mut end = 0;
        while end < bytes.len() {
            let b = bytes[end];
            if b < 0x80 {
                if matches!(b, b'\t'..=b'\r' | b' ') {
                    break;
                }
                end += 1;
            } else {
                let c = rest[end..].chars().next().unwrap_or(' ');
                if c.is_whitespace() {
                    break;
                }
                end += c.len_utf8();
            }
        }
        self.rest = &rest[end..];
        Some(&rest[..end])
    }
}

/// Letters of the Latin script outside ASCII (Latin-1, Extended-A and -B, Extended
/// Additional): diacritics, which English posts carry in names and loanwords.
fn is_latin_diacritic(c: char) -> bool {
    matches!(c, '\u{c0}'..='\u{24f}' | '\u{1e00}'..='\u{1eff}') && c.is_alphabetic()
}

/// The evidence of a post's text (see [`Evidence`]), as [`detect`] weighs it. Public (with
/// [`Evidence`]) for `scripts/lang_bench.sh`.
pub fn evidence(text: &str) -> Evidence {
    evidence_of(kept_words(None, text))
}

/// The evidence of a post's words, without allocating. A word is a run of letters; a run of
/// ASCII letters is packed into an integer and looked up in [`FUNCTION_WORDS`], a run with a
/// diacritic is no function word, so a tweet costs well under a microsecond.
fn evidence_of<'a>(words: impl IntoIterator<Item = &'a str>) -> Evidence {
    let table = &*FUNCTION_WORDS;
    let (mut english, mut foreign, mut count) = (0usize, 0usize, 0usize);
    let (mut shared, mut diacritics) = (0u32, false);
    // The run being read: its key, its ASCII length, whether it holds a diacritic, whether
    // it is all capitals.
    let (mut key, mut len, mut mixed, mut caps) = (0u64, 0usize, false, true);
    let mut end_run = |key: &mut u64, len: &mut usize, mixed: &mut bool, caps: &mut bool| {
        if *len == 0 && !*mixed {
            return;
        }
        count += 1;
        if !*mixed && *len <= MAX_KEY_LETTERS {
            match table.get(*key) {
                Some(Word::English) => english += 1,
                // In capitals it is an abbreviation in English posts (`LA`, `IL`, `EST`,
                // `MIT`) more often than a shouted article.
                Some(Word::Foreign) if !*caps => foreign += 1,
                Some(Word::Shared(bit)) => shared |= bit,
                _ => {}
            }
        }
        (*key, *len, *mixed, *caps) = (0, 0, false, true);
    };
    for word in words {
        if word.is_ascii() {
            for &b in word.as_bytes() {
                if b.is_ascii_alphabetic() {
                    key = key << 5 | u64::from(b.to_ascii_lowercase() - b'a' + 1);
                    len += 1;
                    caps &= b.is_ascii_uppercase();
                } else {
                    end_run(&mut key, &mut len, &mut mixed, &mut caps);
                }
            }
        } else {
            for c in word.chars() {
                if c.is_ascii_alphabetic() {
                    key = key << 5 | u64::from(c.to_ascii_lowercase() as u8 - b'a' + 1);
                    len += 1;
                    caps &= c.is_ascii_uppercase();
                } else if is_latin_diacritic(c) {
                    (mixed, diacritics) = (true, true);
                } else if c.is_alphabetic() {
                    return Evidence::Other;
                } else {
                    end_run(&mut key, &mut len, &mut mixed, &mut caps);
                }
            }
        }
        end_run(&mut key, &mut len, &mut mixed, &mut caps);
    }
    let english = if diacritics {
        english >= 2 && foreign == 0
    } else if foreign > 0 {
        english >= 2 && english >= 2 * foreign
    } else if english > 0 {
        true
    } else {
        count >= NEITHER_MAX_WORDS && shared.count_ones() >= 2
    };
    if english {
        Evidence::English
    } else if diacritics || foreign > 0 || (count >= NEITHER_MAX_WORDS && shared == 0) {
        Evidence::Other
    } else {
        Evidence::Neither
    }
}

/// What a word of [`FUNCTION_WORDS`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Word {
    English,
    Foreign,
    /// One of [`SHARED_WORDS`], as its own bit (distinct ones are counted).
    Shared(u32),
}

/// Longest word [`word_key`] packs (5 bits a letter in a `u64`); the lists' words are
/// shorter, so a longer run is no function word.
const MAX_KEY_LETTERS: usize = 12;

/// A word of up to [`MAX_KEY_LETTERS`] ASCII letters as one integer: 5 bits a letter (`a` = 1),
/// first letter highest; never 0. Shifting a longer run pushes its first letters out, which is
/// why runs longer than that are not looked up.
fn word_key(word: &str) -> u64 {
    word.bytes().fold(0, |k, b| {
        k << 5 | u64::from(b.to_ascii_lowercase() - b'a' + 1)
    })
}

/// [`ENGLISH_WORDS`], [`FOREIGN_WORDS`] and [`SHARED_WORDS`] by [`word_key`]: an
/// open-addressing hash table (one multiplication and usually one probe a word, where a
/// binary search took nine unpredictable comparisons).
struct FunctionWords {
    keys: Vec<u64>,
    words: Vec<Word>,
}

impl FunctionWords {
    /// Slots: a power of two over twice the number of words.
    const BITS: u32 = 10;

    fn slot(key: u64) -> usize {
        (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - Self::BITS)) as usize
    }

    fn new(entries: impl Iterator<Item = (&'static str, Word)>) -> Self {
        let size = 1 << Self::BITS;
        let mut table = FunctionWords {
            keys: vec![0; size],
            words: vec![Word::English; size],
        };
        for (word, what) in entries {
            let key = word_key(word);
            let mut i = Self::slot(key);
            while table.keys[i] != 0 {
                i = (i + 1) & (size - 1);
            }
            (table.keys[i], table.words[i]) = (key, what);
        }
        table
    }

    fn get(&self, key: u64) -> Option<Word> {
        let mut i = Self::slot(key);
        loop {
            match self.keys[i] {
                0 => return None,
                k if k == key => return Some(self.words[i]),
                _ => i = (i + 1) & (self.keys.len() - 1),
            }
        }
    }
}

static FUNCTION_WORDS: std::sync::LazyLock<FunctionWords> = std::sync::LazyLock::new(|| {
    FunctionWords::new(
        ENGLISH_WORDS
            .iter()
            .map(|&w| (w, Word::English))
            .chain(FOREIGN_WORDS.iter().map(|&w| (w, Word::Foreign)))
            .chain(
                SHARED_WORDS
                    .iter()
                    .enumerate()
                    .map(|(i, &w)| (w, Word::Shared(1 << i))),
            ),
    )
});

/// A post of this many words without a function word or a shared word of any listed language
/// is long enough for whatlang to name a language these lists do not cover.
const NEITHER_MAX_WORDS: usize = 14;

/// English function words that are not everyday words of another Latin-script language in
/// CODES (`is`, `of`, `to`, `in`, `my`, `was`, `will` are, in Dutch, Polish, German...; so are
/// `we` and `had` in Dutch, `also` in German, `her` in Danish and Turkish, `are` in Romanian,
/// `don` in Spanish), nor loanwords many languages use (`like`, `love`, `lol`, `please`,
/// `thanks`). Sorted.
#[rustfmt::skip]
const ENGLISH_WORDS: &[&str] = &[
    "about", "after", "again", "and", "any", "aren", "be", "because", "been",
    "being", "but", "could", "couldn", "day", "did", "didn", "does", "doesn", "dont", "from",
    "get", "good", "got", "have", "haven", "here", "him", "his", "how", "if", "isn", "it",
    "just", "know", "ll", "more", "much", "never", "new", "not", "nothing", "now", "one",
    "only", "our", "out", "people", "really", "she", "should", "shouldn", "some", "something",
    "still", "than", "that", "the", "their", "them", "then", "there", "these", "they", "think",
    "this", "those", "today", "up", "very", "want", "wasn", "were", "what", "when", "where",
    "which", "who", "why", "with", "would", "wouldn", "you", "your",
];

/// Everyday English words that other Latin-script languages use too (so they are not in
/// [`ENGLISH_WORDS`]): two distinct ones in a long post with no function word of either
/// list make it English (a 14-word post of another language nearly always has one of
/// [`FOREIGN_WORDS`]). Single letters (`a`, `i`, `o`) are left out. At most 32. Sorted.
#[rustfmt::skip]
const SHARED_WORDS: &[&str] = &[
    "all", "also", "am", "an", "are", "as", "at", "by", "can", "don", "for", "had", "has", "her",
    "in", "is", "like", "love", "me", "my", "of", "on", "or", "please", "so", "to", "was", "we",
    "will",
];

/// Function words of other Latin-script languages that English does not use. Sorted.
#[rustfmt::skip]
const FOREIGN_WORDS: &[&str] = &[
    "ainda", "ako", "aku", "als", "ama", "anche", "ang", "att", "auf", "aussi", "avec", "ay",
    "bei", "bir", "bu", "che", "chez", "cok", "como", "con", "czy", "dan", "das", "dass", "de",
    "del", "della", "den", "dengan", "der", "des", "det", "di", "dit", "du", "een", "ei", "ein",
    "eine", "el", "en", "es", "est", "esta", "este", "geen", "het", "hindi", "ich", "icin", "ik",
    "ikke", "il", "ile", "ini", "inte", "io", "ist", "itu", "ja", "jag", "je", "jeg", "jest",
    "jij", "juz", "kami", "la", "las", "les", "lo", "los", "maar", "mais", "mas", "mein", "meine",
    "meu", "mga", "mijn", "minha", "mir", "mit", "muy", "na", "nao", "ne", "ng", "ni", "nicht",
    "nie", "niet", "noch", "nog", "nous", "och", "og", "ook", "ou", "pada", "para", "pas", "pero",
    "por", "pour", "qu", "que", "qui", "saya", "sie", "sind", "som", "sono", "sur", "tak", "tidak",
    "tres", "tu", "uma", "und", "une", "uno", "untuk", "van", "voor", "vous", "wie", "wir", "yang",
    "ze", "zu",
];

/// The title and text as whatlang reads them: [`kept_words`] joined by spaces.
/// Crate-visible for `scripts/lang_bench.sh`.
pub(crate) fn words_only(title: Option<&str>, text: &str) -> String {
    let mut out = String::with_capacity(MAX_BYTES.min(text.len() + 64));
    for word in kept_words(title, text) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// The primary language of a tag, lower case: `en-GB` → `en`.
pub fn primary(tag: &str) -> String {
    tag.split(['-', '_'])
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// A source's language tag, unless it says nothing: empty, `und` (undetermined), `mul`
/// (several) or `zxx` (no language). Such a mention counts as having no tag.
/// A tag whose primary subtag is not two or three ASCII letters (`English`, `en us`, `1`) is
/// not a language tag either: a feed's `<language>English</language>` must not make every
/// post unscored, or drop them all under `[rules_defaults] languages`; detection decides.
pub fn given(tag: Option<&str>) -> Option<&str> {
    tag.filter(|t| {
        let p = primary(t);
        (2..=3).contains(&p.len())
            && p.bytes().all(|b| b.is_ascii_lowercase())
            && !matches!(p.as_str(), "und" | "mul" | "zxx")
    })
}

/// Whether sentiment and negativity are scored for a post in `lang` (a tag as sources give
/// it, or as detected): English, or unknown (most posts too short to tell are English, and
/// leaving them unscored would let complaints through unseen).
pub fn is_scored(lang: Option<&str>) -> bool {
    given(lang).is_none_or(|l| SCORED.contains(&primary(l).as_str()))
}

/// Whether `code` is a language code detection can produce (for checking config lists).
pub fn is_known(code: &str) -> bool {
    CODES.iter().any(|(c, _)| *c == code)
}

/// Every known code, for error messages.
pub fn known_codes() -> impl Iterator<Item = &'static str> {
    CODES.iter().map(|(c, _)| *c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_whatlang_language_has_a_code() {
        for l in Lang::all() {
            assert!(
                CODES.iter().any(|(_, c)| c == l),
                "{l:?} has no ISO 639-1 code in CODES"
            );
        }
        let mut codes: Vec<&str> = known_codes().collect();
        let n = codes.len();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), n, "codes are unique");
    }

    #[test]
    fn detects_short_posts_and_says_unknown_when_unsure() {
        assert_eq!(
            detect(
                None,
                "My Acme order never arrived and support has not answered my emails for a week"
            ),
            Some("en")
        );
        assert_eq!(
            detect(
                None,
                "Ich warte immer noch auf meine Rückerstattung von Acme"
            ),
            Some("de")
        );
        assert_eq!(detect(None, "Acmeの注文がまだ届かない"), Some("ja"));
        assert_eq!(detect(None, "acme x2"), None, "two words say nothing");
        assert_eq!(
            detect(None, "still waiting for my Acme refund"),
            Some("en"),
            "English function words name a post whatlang finds too short"
        );
        assert_eq!(
            detect(None, "Acme Bestellung storniert"),
            None,
            "no function word: too short to be sure"
        );
        assert_eq!(detect(None, "https://acme.com/x @acme #acme"), None);
    }

    #[test]
    fn function_words_decide_before_whatlang() {
        assert_eq!(
            evidence("Why does the Acme app log me out"),
            Evidence::English
        );
        assert_eq!(evidence("I've had it with Acme"), Evidence::English);
        // A word of another language sends the post to whatlang, English words or not.
        assert_eq!(evidence("Acme ist the best"), Evidence::Other);
        assert_eq!(
            evidence("Waarom logt de Acme app me steeds uit"),
            Evidence::Other
        );
        assert_eq!(evidence("The café at Acme"), Evidence::Other, "diacritics");
        assert_eq!(
            evidence("Acmeの注文がまだ届かない"),
            Evidence::Other,
            "another script"
        );
        assert_eq!(evidence("Acme Bestellung storniert"), Evidence::Neither);
        // Words English shares with Dutch, German, Danish or Turkish are no evidence: these
        // are not called English (and so not dropped by `languages = ["nl"]` or scored as
        // English).
        for other in [
            "we wachten al weken op Acme",
            "Also Acme kann man echt vergessen",
            "Acme er elendig her",
            "Acme are o problema",
        ] {
            assert_ne!(evidence(other), Evidence::English, "{other}");
            assert_ne!(detect(None, other), Some("en"), "{other}");
        }
        let long = "Acme ".repeat(NEITHER_MAX_WORDS);
        assert_eq!(evidence(&long), Evidence::Other, "long enough for whatlang");
        let one_shared = format!("{long} is");
        assert_eq!(evidence(&one_shared), Evidence::Neither, "one shared word");
        assert_eq!(
            evidence(&format!("{one_shared} of")),
            Evidence::English,
            "two shared words"
        );
        // Stronger English evidence decides some posts whatlang was asked about.
        assert_eq!(
            evidence("mi mamá didn't tell me there was codeine in the syrup"),
            Evidence::English,
            "two English function words beside a diacritic"
        );
        assert_eq!(
            evidence("Ich wünsche mir eine Antwort, the end"),
            Evidence::Other,
            "a foreign function word beside diacritics"
        );
        assert_eq!(
            evidence("Livin' la vida loca and then you know what the day brings"),
            Evidence::English,
            "one foreign word against three English ones"
        );
        assert_eq!(evidence("la vida loca and"), Evidence::Other);
        assert_eq!(
            evidence("de la vida loca, and the day"),
            Evidence::Other,
            "fewer than twice as many English words"
        );
        assert_eq!(
            evidence("spotted my buddy in LA and the IL crew"),
            Evidence::English,
            "capitals are abbreviations"
        );
        assert_eq!(
            evidence("Trump is likely supporting Putin talking on unsecured phone lines bc Trump's tied to Russia"),
            Evidence::English,
            "a long post with shared words"
        );
        assert_eq!(
            evidence("Putin is TV Putin is TV Putin is TV Putin is TV Putin is TV"),
            Evidence::Neither,
            "one distinct shared word is not enough"
        );
        assert_eq!(
            evidence("Commander visit and the wounded ¯\\_(ツ)_/¯"),
            Evidence::Other,
            "letters of another script"
        );
        assert_eq!(
            evidence("itá and"),
            Evidence::Other,
            "a word with a diacritic is a word, not a function word"
        );
        assert_eq!(evidence(""), Evidence::Neither);
    }

    #[test]
    fn word_lists_are_sorted_lowercase_and_disjoint() {
        for list in [ENGLISH_WORDS, FOREIGN_WORDS] {
            assert!(list.windows(2).all(|w| w[0] < w[1]), "sorted, unique");
            assert!(list
                .iter()
                .all(|w| w.len() <= MAX_KEY_LETTERS && w.bytes().all(|b| b.is_ascii_lowercase())));
        }
        for w in ENGLISH_WORDS.iter().chain(FOREIGN_WORDS) {
            assert!(SHARED_WORDS.binary_search(w).is_err(), "{w} in two lists");
        }
        for w in ENGLISH_WORDS {
            assert!(FOREIGN_WORDS.binary_search(w).is_err(), "{w} in both lists");
        }
        assert!(SHARED_WORDS.len() <= 32, "one bit each in a u32");
        let table = &*FUNCTION_WORDS;
        for (list, what) in [
            (ENGLISH_WORDS, Word::English),
            (FOREIGN_WORDS, Word::Foreign),
        ] {
            for w in list {
                assert_eq!(table.get(word_key(w)), Some(what), "{w}");
            }
        }
        for (i, w) in SHARED_WORDS.iter().enumerate() {
            assert_eq!(table.get(word_key(w)), Some(Word::Shared(1 << i)), "{w}");
        }
        for other in ["thee", "a", "i", "somethin", "everything", "acme"] {
            assert_eq!(table.get(word_key(other)), None, "{other}");
        }
    }

    /// The accuracy figures of BENCHMARKS.md ("Language detection"), kept: no post of the
    /// short-post set gets a wrong language, and at least 90 of them (19 of the 20 English
    /// ones) are named.
    #[test]
    fn short_posts_get_their_language_or_none() {
        let data = include_str!("../../tests/data/lang_short.tsv");
        let (mut right, mut english_right) = (0, 0);
        for line in data
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        {
            let (want, text) = line.split_once('\t').expect("code TAB text");
            match detect(None, text) {
                Some(got) if got == want => {
                    right += 1;
                    english_right += usize::from(want == "en");
                }
                Some(got) => panic!("{text:?} is {want}, detected {got}"),
                None => {}
            }
        }
        assert!(
            right >= 90 && english_right >= 19,
            "{right} right, {english_right} English"
        );
    }

    #[test]
    fn words_split_as_split_whitespace_does() {
        for text in [
            "",
            "  one\ttwo\n\u{b}three\u{a0}four\u{3000}five  ",
            "caf\u{e9} na\u{ef}ve\u{2003}\u{65e5}\u{672c} x",
            "\u{85}a\u{2028}b\r\n",
        ] {
            let ours: Vec<&str> = Words { rest: text }.collect();
            let std: Vec<&str> = text.split_whitespace().collect();
            assert_eq!(ours, std, "{text:?}");
        }
    }

    #[test]
    fn links_and_handles_do_not_decide() {
        let text = "@AcmeHilfe #AcmeFail https://acme.example/hilfe/rueckerstattung Ich warte seit drei Wochen auf mein Geld";
        assert_eq!(
            words_only(None, text),
            "Ich warte seit drei Wochen auf mein Geld"
        );
        assert_eq!(detect(Some("Acme"), text), Some("de"));
    }

    #[test]
    fn long_posts_are_cut() {
        let text =
            "My Acme order never arrived and support has not answered my emails for a week. "
                .repeat(100);
        assert!(words_only(None, &text).len() <= MAX_BYTES);
        assert_eq!(detect(None, &text), Some("en"));
    }

    #[test]
    fn only_english_and_unknown_are_scored() {
        assert!(is_scored(None));
        assert!(is_scored(Some("en")));
        assert!(is_scored(Some("en-GB")));
        assert!(is_scored(Some("EN_us")));
        assert!(!is_scored(Some("de")));
        assert!(!is_scored(Some("pt-BR")));
        assert!(is_scored(Some("und")) && given(Some("und")).is_none());
        for not_a_tag in ["English", "en us", "1", "", "deutsch-DE"] {
            assert_eq!(given(Some(not_a_tag)), None, "{not_a_tag:?}");
        }
        assert_eq!(given(Some("en-GB")), Some("en-GB"));
        assert_eq!(given(Some("DE")), Some("DE"));
        assert!(
            is_scored(Some("English")),
            "detection decides, not the bad tag"
        );
        assert_eq!(primary("pt-BR"), "pt");
        assert!(is_known("de") && !is_known("english") && !is_known("DE"));
    }
}
