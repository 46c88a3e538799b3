//! Language of a mention that arrived without one: `whatlang` (pure Rust, trigram and
//! alphabet tables compiled in, no model files) over the title and text, with links, handles
//! and hashtags left out. A guess below [`MIN_CONFIDENCE`] is no answer: on a short post a
//! wrong language would hide the post from `lang:` rules and `[rules_defaults] languages`, or
//! leave a complaint unscored, so "unknown" is the safer result. Also says which languages the
//! sentiment analysis applies to ([`is_scored`]). Deciding when detection runs is the caller's
//! job (the rule matcher and `intake::Judge`), so a post no rule wants costs nothing here.

use whatlang::Lang;

/// Lowest whatlang confidence (0..1) taken as an answer. Chosen with `scripts/lang_bench.sh`
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

/// whatlang's best guess for `title` and `text`, whatever its confidence (`None` when the
/// text has no letters). Public for `scripts/lang_bench.sh`.
pub fn guess(title: Option<&str>, text: &str) -> Option<Guess> {
    let cleaned = words_only(title, text);
    let info = whatlang::detect(&cleaned)?;
    let code = CODES.iter().find(|(_, l)| *l == info.lang())?.0;
    Some(Guess {
        code,
        confidence: info.confidence(),
    })
}

/// The language of a post as an ISO 639-1 code (`"en"`, `"de"`), or `None` when the post is
/// too short or mixed to tell with [`MIN_CONFIDENCE`].
pub fn detect(title: Option<&str>, text: &str) -> Option<&'static str> {
    guess(title, text)
        .filter(|g| g.confidence >= MIN_CONFIDENCE)
        .map(|g| g.code)
}

/// The title and text, without links, `@handles`, `#hashtags` and `$cashtags` (names, not
/// language), cut at `MAX_BYTES`.
fn words_only(title: Option<&str>, text: &str) -> String {
    let mut out = String::with_capacity(MAX_BYTES.min(text.len() + 64));
    for word in title
        .into_iter()
        .flat_map(str::split_whitespace)
        .chain(text.split_whitespace())
    {
        if word.starts_with(['@', '#', '$']) || word.contains("://") || word.starts_with("www.") {
            continue;
        }
        if out.len() + word.len() + 1 > MAX_BYTES {
            break;
        }
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
            None,
            "too short to be sure"
        );
        assert_eq!(detect(None, "https://acme.com/x @acme #acme"), None);
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
