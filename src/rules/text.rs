//! Text normalisation and word splitting shared by queries and documents, so both sides are
//! compared in exactly the same form. It does not know about operators, fields or rules.
//!
//! Normalisation, character by character, in this order:
//! 1. compatibility decomposition (NFKD, the compatibility half of NFKC): ligatures `ﬁ` → `fi`,
//!    full-width `Ａ` → `A`, `①` → `1`, accented letters split into letter + combining mark;
//! 2. combining marks that follow a Latin, Greek or Cyrillic letter are dropped (diacritic
//!    folding: `Nestlé` ≡ `nestle`, `Ørsted` stays `ørsted` because `ø` has no mark); marks in
//!    other scripts (Devanagari vowel signs, kana voicing marks) are kept as part of the word;
//! 3. lowercase (Unicode), plus the full case folds `ß`/`ẞ` → `ss` and final `ς` → `σ`.
//!
//! Text is compared in this decomposed form and never recomposed: both sides go through the
//! same steps, so recomposing would change nothing that matching can see.
//!
//! Words: a maximal run of letters and digits (plus the kept marks); everything else separates
//! words. Each CJK ideograph, hiragana or katakana character is a word of its own, because those
//! scripts are written without spaces: a CJK term then matches as a run of characters. Thai,
//! Lao, Khmer and Myanmar are not segmented: a term there matches a whole space-delimited run.

use unicode_normalization::char::{decompose_compatible, is_combining_mark};

/// One word of a normalised text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tok {
    /// Byte range in the normalised text.
    pub(crate) start: u32,
    pub(crate) end: u32,
    /// Byte range in the original text, for highlight spans.
    pub(crate) ostart: u32,
    pub(crate) oend: u32,
}

/// A normalised text and its words, in order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tokens {
    pub(crate) norm: String,
    pub(crate) words: Vec<Tok>,
}

impl Tokens {
    /// The normalised text of word `i`.
    pub(crate) fn word(&self, i: usize) -> &str {
        let t = self.words[i];
        &self.norm[t.start as usize..t.end as usize]
    }

    /// The normalised text between word `i` and word `i + 1`.
    pub(crate) fn gap(&self, i: usize) -> &str {
        &self.norm[self.words[i].end as usize..self.words[i + 1].start as usize]
    }

    /// The normalised character just before word `i`, and the one before that.
    pub(crate) fn before(&self, i: usize) -> (Option<char>, Option<char>) {
        let mut it = self.norm[..self.words[i].start as usize].chars().rev();
        (it.next(), it.next())
    }

    /// The normalised text after word `i`.
    pub(crate) fn after(&self, i: usize) -> &str {
        &self.norm[self.words[i].end as usize..]
    }
}

/// CJK characters that form a word on their own.
pub(crate) fn is_singleton(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // hiragana, katakana
        | 0x31F0..=0x31FF    // katakana phonetic extensions
        | 0x3400..=0x4DBF    // CJK extension A
        | 0x4E00..=0x9FFF    // CJK unified ideographs
        | 0xF900..=0xFAFF    // CJK compatibility ideographs
        | 0x20000..=0x3134F) // CJK extensions B..G
}

/// Scripts whose diacritics are folded away.
fn folds_marks(c: char) -> bool {
    matches!(c as u32,
        0x0041..=0x024F      // Latin
        | 0x1E00..=0x1EFF    // Latin extended additional
        | 0x0370..=0x03FF    // Greek
        | 0x1F00..=0x1FFF    // Greek extended
        | 0x0400..=0x052F) // Cyrillic
}

/// Whether a normalised character can start or continue a word.
pub(crate) fn is_word_char(c: char) -> bool {
    c.is_alphanumeric()
}

/// How a normalised character takes part in words.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Word,
    Singleton,
    Mark,
    Other,
}

fn class(c: char, wild: &str) -> Class {
    // Marks first: kana voicing marks lie inside the kana block but belong to the kana before.
    if is_combining_mark(c) {
        Class::Mark
    } else if is_singleton(c) {
        Class::Singleton
    } else if is_word_char(c) || wild.contains(c) {
        Class::Word
    } else {
        Class::Other
    }
}

/// Normalises `s` and splits it into words.
pub(crate) fn tokenize(s: &str) -> Tokens {
    split(s, "")
}

/// Like `tokenize`, but `*` and `?` count as word characters, for wildcard query terms.
pub(crate) fn tokenize_wild(s: &str) -> Tokens {
    split(s, "*?")
}

/// Like `tokenize`, but `*` counts as a word character: for URL terms, where `?` is the
/// URL's own punctuation and only `*` is a wildcard.
pub(crate) fn tokenize_star(s: &str) -> Tokens {
    split(s, "*")
}

fn split(s: &str, wild: &str) -> Tokens {
    if s.is_ascii() {
        return split_ascii(s, wild);
    }
    let mut b = Builder {
        norm: String::with_capacity(s.len() + 8),
        words: Vec::new(),
        open: None,
        last_end: (0, 0),
        last_base: None,
    };
    for (o, c) in s.char_indices() {
        let oend = o + c.len_utf8();
        // ASCII decomposes to itself, is never a mark and lowercases byte for byte: most
        // characters of a post with one emoji or accent skip the Unicode tables.
        if c.is_ascii() {
            b.last_base = Some(c);
            let class = if c.is_ascii_alphanumeric() || wild.contains(c) {
                Class::Word
            } else {
                Class::Other
            };
            b.push_classed(c.to_ascii_lowercase(), class, o, oend);
            continue;
        }
        decompose_compatible(c, |d| {
            if is_combining_mark(d) && b.last_base.is_some_and(folds_marks) {
                return;
            }
            if !is_combining_mark(d) {
                b.last_base = Some(d);
            }
            match d {
                'ß' | 'ẞ' => {
                    b.push('s', o, oend, wild);
                    b.push('s', o, oend, wild);
                }
                'ς' => b.push('σ', o, oend, wild),
                _ => {
                    for l in d.to_lowercase() {
                        b.push(l, o, oend, wild);
                    }
                }
            }
        });
    }
    b.finish()
}

/// ASCII needs no decomposition and lowercases byte for byte, so offsets are the same on both
/// sides; most posts take this path.
fn split_ascii(s: &str, wild: &str) -> Tokens {
    let bytes = s.as_bytes();
    let mut words = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let is_w = |b: u8| b.is_ascii_alphanumeric() || wild.as_bytes().contains(&b);
        if is_w(bytes[i]) {
            let start = i;
            while i < bytes.len() && is_w(bytes[i]) {
                i += 1;
            }
            words.push(tok(start, i, start, i));
        } else {
            i += 1;
        }
    }
    Tokens {
        norm: s.to_ascii_lowercase(),
        words,
    }
}

struct Builder {
    norm: String,
    words: Vec<Tok>,
    /// Word being built: (normalised start, original start, is a CJK singleton).
    open: Option<(usize, usize, bool)>,
    /// End of the last character added to a word: (normalised, original).
    last_end: (usize, usize),
    /// Last non-mark character seen, to decide whether a following mark is folded.
    last_base: Option<char>,
}

impl Builder {
    fn push(&mut self, c: char, o: usize, oend: usize, wild: &str) {
        self.push_classed(c, class(c, wild), o, oend);
    }

    /// `push` with the character's class already known.
    fn push_classed(&mut self, c: char, class: Class, o: usize, oend: usize) {
        let nstart = self.norm.len();
        self.norm.push(c);
        let nend = self.norm.len();
        match class {
            Class::Singleton => {
                self.close();
                self.open = Some((nstart, o, true));
            }
            Class::Word => {
                if matches!(self.open, Some((_, _, true))) {
                    self.close();
                }
                if self.open.is_none() {
                    self.open = Some((nstart, o, false));
                }
            }
            // A kept mark extends the word it follows and never starts one.
            Class::Mark => {
                if self.open.is_none() {
                    return;
                }
            }
            Class::Other => {
                self.close();
                return;
            }
        }
        self.last_end = (nend, oend);
    }

    fn close(&mut self) {
        if let Some((ns, os, _)) = self.open.take() {
            self.words
                .push(tok(ns, self.last_end.0, os, self.last_end.1));
        }
    }

    fn finish(mut self) -> Tokens {
        self.close();
        Tokens {
            norm: self.norm,
            words: self.words,
        }
    }
}

fn tok(start: usize, end: usize, ostart: usize, oend: usize) -> Tok {
    Tok {
        start: start as u32,
        end: end as u32,
        ostart: ostart as u32,
        oend: oend as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        let t = tokenize(s);
        (0..t.words.len()).map(|i| t.word(i).to_string()).collect()
    }

    #[test]
    fn splits_and_folds() {
        let cases: &[(&str, &[&str])] = &[
            ("Acme, Inc.", &["acme", "inc"]),
            ("acme-corp's", &["acme", "corp", "s"]),
            ("ÉCLAIR au café", &["eclair", "au", "cafe"]),
            ("Nestlé", &["nestle"]),
            ("Ørsted", &["ørsted"]),
            ("STRASSE straße", &["strasse", "strasse"]),
            ("ﬁnance", &["finance"]),
            ("ＡＣＭＥ　Ｃｏｒｐ", &["acme", "corp"]),
            ("①② x²", &["12", "x2"]),
            ("ΟΔΥΣΣΕΥΣ", &["οδυσσευσ"]),
            ("Ångström", &["angstrom"]),
            ("İstanbul", &["istanbul"]),
            ("🚀acme🚀", &["acme"]),
            ("東京acme", &["東", "京", "acme"]),
            ("ガ", &["ガ"]),
            ("हिंदी", &["हिंदी"]),
            ("", &[]),
            ("!!!", &[]),
        ];
        for (input, want) in cases {
            let want: Vec<String> = want.iter().map(|w| normalize_expected(w)).collect();
            assert_eq!(words(input), want, "input {input:?}");
        }
    }

    /// Expected words are written composed; normalisation keeps kept marks decomposed.
    fn normalize_expected(w: &str) -> String {
        let mut out = String::new();
        for c in w.chars() {
            decompose_compatible(c, |d| out.push(d));
        }
        out
    }

    #[test]
    fn original_offsets_survive_normalisation() {
        let s = "İx ﬁnance ＡＣＭＥ";
        let t = tokenize(s);
        let spans: Vec<&str> = t
            .words
            .iter()
            .map(|w| &s[w.ostart as usize..w.oend as usize])
            .collect();
        assert_eq!(spans, vec!["İx", "ﬁnance", "ＡＣＭＥ"]);
    }

    #[test]
    fn ascii_path_agrees_with_general_path() {
        for s in ["Acme, Inc. 2024!", "a_b-c", "  x  "] {
            let fast = split_ascii(s, "");
            // Appending a non-ASCII space forces the general path without adding a word.
            let slow = split(&format!("{s}\u{3000}"), "");
            assert_eq!(fast.words, slow.words, "input {s:?}");
        }
    }
}
