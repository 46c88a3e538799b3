//! The syntax tree a query parses into. Plain data: it does not parse (see `parser.rs`) and does
//! not match (see `eval.rs`).

/// A boolean query. Closed: every construct of the language is one variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Expr {
    Term(Term),
    /// `raw:"Acme"`: the exact characters, case-sensitive, on word boundaries, in title or text.
    Raw(String),
    /// `site:`, `source:`, `lang:`: tests on the document's metadata, not its words.
    Meta(Meta),
    /// `a NEAR/n b` and `a ONEAR/n b`.
    Near(Near),
    Not(Box<Expr>),
    /// All children must match. Has at least two children.
    And(Vec<Expr>),
    /// At least one child must match. Has at least two children.
    Or(Vec<Expr>),
}

/// Where a term is searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    /// Title and text: a match in either counts (the default).
    Any,
    Title,
    Author,
}

/// One word of a term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WordPat {
    /// The normalised word.
    Exact(String),
    /// A normalised word with `*` (any run of characters, possibly none) and `?` (exactly one
    /// character); `prefix` is the literal text before the first wildcard, at least 3 chars.
    Wild { pattern: String, prefix: String },
}

/// How consecutive words of a term may be separated in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Joint {
    /// Anything that is not a word (phrases, plain words with inner punctuation).
    Loose,
    /// Exactly these normalised separators, one per gap (hashtags, handles, domains, URLs),
    /// and the term must not go on with one of `glue` followed by a word character.
    Exact {
        seps: Vec<String>,
        glue: &'static str,
    },
}

/// A word, phrase, wildcard, #hashtag, @handle, $cashtag, domain or URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Term {
    /// Never empty.
    pub(crate) words: Vec<WordPat>,
    pub(crate) joint: Joint,
    /// `#`, `@` or `$` right before the first word, itself not preceded by a word character.
    pub(crate) sigil: Option<char>,
    pub(crate) field: Field,
}

/// Document metadata tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Meta {
    /// The URL's host is this domain or one of its subdomains.
    Site(String),
    /// The source name or the source kind equals this, ignoring case.
    Source(String),
    /// The language is this tag or a subtag of it (`en` matches `en-GB`), ignoring case.
    Lang(String),
}

/// Proximity: at most `distance` words between the two terms, in either order unless
/// `ordered`, within one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Near {
    pub(crate) left: Term,
    pub(crate) right: Term,
    pub(crate) distance: u32,
    pub(crate) ordered: bool,
}
