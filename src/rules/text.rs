//! Text normalisation and word splitting shared by queries and documents, so both sides are
//! compared in exactly the same form. It does not know about operators or fields.
//!
//! Rules: every character is lowercased; a word is a maximal run of alphanumeric characters,
//! except that each CJK ideograph, hiragana or katakana character is a word of its own (those
//! scripts are written without spaces, so a CJK term matches as a run of characters).

/// One word of a normalised text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tok {
    /// Byte range in the normalised text.
    pub start: u32,
    pub end: u32,
    /// Byte range in the original text, for highlight spans.
    pub ostart: u32,
    pub oend: u32,
}

/// A normalised text and its words, in order.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    pub norm: String,
    pub words: Vec<Tok>,
}

impl Tokens {
    /// The normalised text of word `i`.
    pub fn word(&self, i: usize) -> &str {
        let t = self.words[i];
        &self.norm[t.start as usize..t.end as usize]
    }
}

/// CJK characters that form a word on their own.
pub fn is_singleton(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // hiragana, katakana
        | 0x31F0..=0x31FF    // katakana phonetic extensions
        | 0x3400..=0x4DBF    // CJK extension A
        | 0x4E00..=0x9FFF    // CJK unified ideographs
        | 0xF900..=0xFAFF    // CJK compatibility ideographs
        | 0x20000..=0x3134F) // CJK extensions B..G
}

/// Characters that make up words.
pub fn is_word_char(c: char) -> bool {
    c.is_alphanumeric()
}

/// Normalises `s` and splits it into words.
pub fn tokenize(s: &str) -> Tokens {
    let mut norm = String::with_capacity(s.len());
    let mut words = Vec::new();
    // Word being built: (norm start, original start).
    let mut open: Option<(usize, usize)> = None;
    let mut last_oend = 0;
    for (o, c) in s.char_indices() {
        let oend = o + c.len_utf8();
        let nstart = norm.len();
        for l in c.to_lowercase() {
            norm.push(l);
        }
        if is_word_char(c) {
            if is_singleton(c) {
                if let Some((ns, os)) = open.take() {
                    words.push(tok(ns, nstart, os, last_oend));
                }
                words.push(tok(nstart, norm.len(), o, oend));
            } else if open.is_none() {
                open = Some((nstart, o));
            }
        } else if let Some((ns, os)) = open.take() {
            words.push(tok(ns, nstart, os, last_oend));
        }
        last_oend = oend;
    }
    if let Some((ns, os)) = open {
        words.push(tok(ns, norm.len(), os, last_oend));
    }
    Tokens { norm, words }
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
    fn splits_on_non_alphanumerics() {
        let cases: &[(&str, &[&str])] = &[
            ("Acme, Inc.", &["acme", "inc"]),
            ("acme-corp's", &["acme", "corp", "s"]),
            ("ÉCLAIR au café", &["éclair", "au", "café"]),
            ("🚀acme🚀", &["acme"]),
            ("東京acme", &["東", "京", "acme"]),
            ("", &[]),
            ("!!!", &[]),
        ];
        for (input, want) in cases {
            assert_eq!(words(input), *want, "input {input:?}");
        }
    }

    #[test]
    fn original_offsets_survive_lowercasing() {
        // 'İ' lowercases to two chars, so normalised and original offsets differ.
        let s = "İx ACME";
        let t = tokenize(s);
        let last = t.words[1];
        assert_eq!(&s[last.ostart as usize..last.oend as usize], "ACME");
        assert_eq!(t.word(1), "acme");
    }
}
