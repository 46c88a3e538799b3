//! `[[sources]]`: the keys every source takes (`name`, `kind`, `every`, `timeout`,
//! `max_body_bytes`, `allow_private`, `languages`) and the reading of the list, which hands each entry to
//! its kind's own config (`KindConfig`, one per file). It does not know any kind's own keys.

use super::{Source, SourceConfig, SourceError, SourceKind};
use crate::config::{Reader, Table};
use std::collections::HashSet;
use std::time::Duration;

/// Largest feed body accepted unless a source says otherwise: 10 MB after decompression.
pub(crate) const DEFAULT_MAX_BODY_BYTES: u64 = 10 * 1024 * 1024;

/// The keys every kind accepts.
pub(crate) const COMMON_KEYS: &[&str] = &[
    "name",
    "kind",
    "every",
    "timeout",
    "max_body_bytes",
    "allow_private",
    "languages",
];

/// The settings every source has, whatever its kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Common {
    pub name: String,
    /// Time between polls.
    pub every: Duration,
    /// Timeout of one whole poll (connect + body).
    pub timeout: Duration,
    /// Largest accepted body, counted after decompression.
    pub max_body_bytes: u64,
    /// Allow fetching from private / loopback addresses (tests, intranet feeds).
    pub allow_private: bool,
    /// ISO 639-1 codes, lower case: this source's matched mentions in another language
    /// (given or detected) alert nobody; a mention whose language cannot be told passes, as
    /// with `[rules_defaults] languages`. Empty: every language.
    pub languages: Vec<String>,
}

impl Common {
    /// A source named `name` with the defaults (`every` as given).
    pub fn new(name: impl Into<String>, every: Duration) -> Common {
        Common {
            name: name.into(),
            every,
            timeout: Duration::from_secs(30),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            allow_private: false,
            languages: Vec::new(),
        }
    }

    fn read(r: &mut Reader, t: &Table, key: &str, name: String, every: Duration) -> Common {
        let d = Common::new(name, every);
        Common {
            every: r.duration(t, key, "every").unwrap_or(d.every),
            timeout: r.duration(t, key, "timeout").unwrap_or(d.timeout),
            max_body_bytes: r
                .integer(t, key, "max_body_bytes")
                .unwrap_or(d.max_body_bytes),
            allow_private: r
                .boolean(t, key, "allow_private")
                .unwrap_or(d.allow_private),
            languages: crate::rules::config::read_languages(r, t, key),
            name: d.name,
        }
    }
}

/// What one kind's config provides: its name in `kind = "…"`, its own keys, how it reads
/// and checks them, and how it builds its source.
pub(crate) trait KindConfig: Sized {
    /// The value of `kind`.
    const KIND: &'static str;
    /// The keys this kind takes beyond [`COMMON_KEYS`].
    const KEYS: &'static [&'static str];
    /// `every` when the entry does not say.
    const DEFAULT_EVERY: Duration;

    /// Reads this kind's keys of entry `t` (called `key` in problems), reporting what is
    /// missing or wrong; `None` when the entry cannot make a source.
    fn read(r: &mut Reader, t: &Table, key: &str, common: Common) -> Option<Self>;

    fn common(&self) -> &Common;

    fn build(&self) -> Result<Box<dyn Source>, SourceError>;
}

/// Every `[[sources]]` entry, each read and checked by its kind; names must be unique.
pub(crate) fn read_all(r: &mut Reader, root: &Table) -> Vec<SourceConfig> {
    let mut out = Vec::new();
    let mut names = HashSet::new();
    for (i, t) in r.array_of_tables(root, "sources").into_iter().enumerate() {
        let key = format!("sources[{i}]");
        let name = r.required_string(t, &key, "name");
        if let Some(n) = &name {
            r.unique_name(&mut names, t, &key, n, || {
                format!("duplicate source name {n:?}; names must be unique")
            });
        }
        let kind = r.required_string(t, &key, "kind").and_then(|k| {
            let parsed = SourceKind::parse(&k);
            if parsed.is_none() {
                let line = r.key_line(t, "kind");
                let expected: Vec<&str> = SourceKind::ALL.iter().map(|k| k.as_str()).collect();
                r.problem(
                    line,
                    &format!("{key}.kind"),
                    format!(
                        "unknown source kind {k:?}; expected one of {}",
                        expected.join(", ")
                    ),
                );
            }
            parsed
        });
        match kind {
            Some(kind) => {
                let keys: Vec<&str> = COMMON_KEYS.iter().chain(kind.keys()).copied().collect();
                r.known_keys_of(t, &key, &keys, &format!("kind {:?}", kind.as_str()));
            }
            None => {
                // Without a known kind, a key is only wrong if no kind takes it.
                let mut keys: Vec<&str> = COMMON_KEYS.to_vec();
                for k in SourceKind::ALL {
                    for key in k.keys() {
                        if !keys.contains(key) {
                            keys.push(key);
                        }
                    }
                }
                r.known_keys(t, &key, &keys);
            }
        }
        let every = kind.map_or(Duration::from_secs(300), SourceKind::default_every);
        let common = Common::read(r, t, &key, name.clone().unwrap_or_default(), every);
        let config = kind.and_then(|kind| SourceConfig::read(kind, r, t, &key, common));
        if let (Some(_), Some(config)) = (name, config) {
            out.push(config);
        }
    }
    out
}

/// `query`, which kinds that search need: reported at the table when missing or blank.
pub(crate) fn required_query(r: &mut Reader, t: &Table, key: &str, why: &str) -> Option<String> {
    let query = r.string(t, key, "query");
    if query.as_deref().is_none_or(|q| q.trim().is_empty()) {
        let line = r.table_line(t);
        r.problem(
            line,
            &format!("{key}.query"),
            format!("missing; add query = \"acme\" ({why})"),
        );
        return None;
    }
    query
}
