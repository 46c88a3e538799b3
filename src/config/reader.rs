//! The table reader every component uses on its own config section: typed accessors that
//! report their own problems (key, line, fix) and carry on, so `check` can list them all.
//! It does not know which keys any section has; callers pass their key lists.

use super::interpolate::interpolate;
use super::lean::{RawTable, RawValue};
use super::lines::LineIndex;
use super::{ConfigError, Problem};
use crate::model::{Secret, Target};
use crate::util::parse_duration;
use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml_edit::{Item, Table, Value};

/// Reads one config file's tables, collecting problems and warnings as it goes.
pub(crate) struct Reader<'a> {
    lines: LineIndex,
    env: &'a dyn Fn(&str) -> Option<String>,
    /// The config file's folder: relative paths in the file mean "next to this file", so
    /// `check --config elsewhere/x.toml` and `run` from any directory read the same files.
    base: PathBuf,
    problems: Vec<Problem>,
    warnings: Vec<Problem>,
}

impl<'a> Reader<'a> {
    /// `text` is the whole file (for line numbers); `env` answers `${VAR}` look-ups.
    pub(crate) fn new(text: &str, env: &'a dyn Fn(&str) -> Option<String>) -> Reader<'a> {
        Reader {
            lines: LineIndex::new(text),
            env,
            base: PathBuf::new(),
            problems: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Resolves relative paths against `dir` (the config file's folder) from now on.
    pub(crate) fn base_dir(mut self, dir: &Path) -> Reader<'a> {
        self.base = dir.to_path_buf();
        self
    }

    /// `${VAR}` look-up in the environment this reader was given.
    pub(crate) fn env(&self, name: &str) -> Option<String> {
        (self.env)(name).filter(|v| !v.is_empty())
    }

    /// Moves `other`'s problems and warnings into this reader, renaming each key with
    /// `rename` and placing it on line 0 (no line of the file): for a section that was built
    /// from environment variables rather than read from the file.
    pub(crate) fn absorb(&mut self, other: Reader, rename: impl Fn(&str) -> String) {
        let moved = |p: Problem| Problem {
            line: 0,
            key: rename(&p.key),
            message: p.message,
        };
        self.problems.extend(other.problems.into_iter().map(moved));
        self.warnings.extend(other.warnings.into_iter().map(moved));
    }

    /// The warnings if nothing is wrong, else every problem sorted by line.
    pub(crate) fn finish(mut self, path: &Path) -> Result<Vec<Problem>, ConfigError> {
        if self.problems.is_empty() {
            Ok(self.warnings)
        } else {
            self.problems.sort_by_key(|p| p.line);
            Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                problems: self.problems,
            })
        }
    }

    pub(crate) fn problem(&mut self, line: usize, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            line,
            key: key.to_string(),
            message: message.into(),
        });
    }

    /// Something allowed but probably not meant: `check` prints it and still exits 0.
    pub(crate) fn warning(&mut self, line: usize, key: &str, message: impl Into<String>) {
        self.warnings.push(Problem {
            line,
            key: key.to_string(),
            message: message.into(),
        });
    }

    /// The line of a span's start (1 without a span).
    pub(crate) fn line(&self, span: Option<std::ops::Range<usize>>) -> usize {
        self.line_at(span.map(|s| s.start))
    }

    fn line_at(&self, offset: Option<usize>) -> usize {
        offset.map_or(1, |o| self.lines.line(o))
    }

    /// The line where a table starts: where a missing key is reported.
    pub(crate) fn table_line(&self, t: &Table) -> usize {
        self.line(t.span())
    }

    /// The line of `key` in `t`, else of the table.
    pub(crate) fn key_line(&self, t: &Table, key: &str) -> usize {
        self.line(
            t.key(key)
                .and_then(|k| k.span())
                .or_else(|| t.get(key).and_then(Item::span))
                .or_else(|| t.span()),
        )
    }

    /// Reports every key of `t` not in `allowed`, with the nearest allowed one.
    pub(crate) fn known_keys(&mut self, t: &Table, prefix: &str, allowed: &[&str]) {
        self.unknown_keys(t, prefix, allowed, |_, suggestion| {
            format!(
                "unknown key{suggestion} (known here: {})",
                allowed.join(", ")
            )
        });
    }

    /// Like `known_keys` for a table whose keys depend on a variant (a source's `kind`):
    /// the message names the key, `owner` (e.g. `kind "rss"`) and the keys it accepts.
    pub(crate) fn known_keys_of(&mut self, t: &Table, prefix: &str, allowed: &[&str], owner: &str) {
        self.unknown_keys(t, prefix, allowed, |key, suggestion| {
            format!(
                "unknown key {key:?} for {owner}{suggestion} ({owner} accepts: {})",
                allowed.join(", ")
            )
        });
    }

    fn unknown_keys(
        &mut self,
        t: &Table,
        prefix: &str,
        allowed: &[&str],
        message: impl Fn(&str, &str) -> String,
    ) {
        for (k, item) in t.iter() {
            if allowed.contains(&k) {
                continue;
            }
            let line = self.line(t.key(k).and_then(|k| k.span()).or_else(|| item.span()));
            let full = if prefix.is_empty() {
                k.to_string()
            } else {
                format!("{prefix}.{k}")
            };
            let suggestion = did_you_mean(k, allowed)
                .map(|s| format!("; did you mean {s:?}?"))
                .unwrap_or_default();
            self.problem(line, &full, message(k, &suggestion));
        }
    }

    /// `[key]` of `root`; a problem if it is there but not a table.
    pub(crate) fn table<'t>(&mut self, root: &'t Table, key: &str) -> Option<&'t Table> {
        let item = root.get(key)?;
        match item.as_table() {
            Some(t) => Some(t),
            None => {
                let line = self.line(item.span());
                self.problem(line, key, format!("must be a table: write [{key}]"));
                None
            }
        }
    }

    /// `[[key]]` of `root` (empty when absent); a problem if it is something else.
    pub(crate) fn array_of_tables<'t>(&mut self, root: &'t Table, key: &str) -> Vec<&'t Table> {
        match root.get(key) {
            None => Vec::new(),
            Some(Item::ArrayOfTables(a)) => a.iter().collect(),
            Some(other) => {
                let line = self.line(other.span());
                self.problem(
                    line,
                    key,
                    format!("must be a list of tables: write [[{key}]] for each entry"),
                );
                Vec::new()
            }
        }
    }

    fn raw_string(&mut self, t: &Table, prefix: &str, key: &str) -> Option<(String, usize)> {
        let item = t.get(key)?;
        let line = self.key_line(t, key);
        match item.as_str() {
            Some(s) => Some((s.to_string(), line)),
            None => {
                self.problem(
                    line,
                    &format!("{prefix}.{key}"),
                    "must be a string in quotes",
                );
                None
            }
        }
    }

    /// An optional string, `${VAR}`s replaced.
    pub(crate) fn string(&mut self, t: &Table, prefix: &str, key: &str) -> Option<String> {
        let (raw, line) = self.raw_string(t, prefix, key)?;
        match interpolate(&raw, self.env) {
            Ok(s) => Some(s),
            Err(e) => {
                self.problem(line, &format!("{prefix}.{key}"), e);
                None
            }
        }
    }

    /// The string at `key` with `${VAR}`s replaced, reporting nothing: for a second look at
    /// a key its owner has already read (and reported on).
    pub(crate) fn peek_string(&self, t: &Table, key: &str) -> Option<String> {
        interpolate(t.get(key)?.as_str()?, self.env).ok()
    }

    /// Records `name` as taken; if an earlier table already took it, reports `message()` at
    /// this table's `name` key (the second one is the mistake).
    pub(crate) fn unique_name(
        &mut self,
        taken: &mut HashSet<String>,
        t: &Table,
        prefix: &str,
        name: &str,
        message: impl FnOnce() -> String,
    ) {
        #[cfg(test)]
        super::lines::work::add(1);
        if !taken.insert(name.to_string()) {
            let line = self.key_line(t, "name");
            self.problem(line, &format!("{prefix}.name"), message());
        }
    }

    /// `p` as the program should open it: a relative path is relative to the config file's
    /// folder, not to the working directory.
    pub(crate) fn resolve(&self, p: &str) -> PathBuf {
        self.base.join(p)
    }

    /// An optional path, `${VAR}`s replaced and resolved with [`Reader::resolve`]; a blank
    /// value is reported (nothing could be opened with it).
    pub(crate) fn path(&mut self, t: &Table, prefix: &str, key: &str) -> Option<PathBuf> {
        let s = self.string(t, prefix, key)?;
        if s.trim().is_empty() {
            let line = self.key_line(t, key);
            self.problem(
                line,
                &format!("{prefix}.{key}"),
                format!("is empty; write a path, e.g. {key} = \"data/mentions.jsonl\" (relative to the config file's folder)"),
            );
            return None;
        }
        Some(self.resolve(&s))
    }

    /// A string that must be there; its absence is reported at the table's line.
    pub(crate) fn required_string(&mut self, t: &Table, prefix: &str, key: &str) -> Option<String> {
        if !t.contains_key(key) {
            let line = self.table_line(t);
            self.problem(
                line,
                &format!("{prefix}.{key}"),
                format!("missing; add {key} = \"…\""),
            );
            return None;
        }
        self.string(t, prefix, key)
    }

    /// An optional string turned into a value by `parse`; its error is reported at the key.
    pub(crate) fn parsed<T>(
        &mut self,
        t: &Table,
        prefix: &str,
        key: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let s = self.string(t, prefix, key)?;
        match parse(&s) {
            Ok(v) => Some(v),
            Err(e) => {
                let line = self.key_line(t, key);
                self.problem(line, &format!("{prefix}.{key}"), e);
                None
            }
        }
    }

    /// A required secret (`token = "${TOKEN}"`); the hint names the variable to export.
    /// Its value never appears in a problem.
    pub(crate) fn secret(
        &mut self,
        t: &Table,
        prefix: &str,
        key: &str,
        env_hint: &str,
    ) -> Option<Secret> {
        if !t.contains_key(key) {
            let line = self.table_line(t);
            self.problem(
                line,
                &format!("{prefix}.{key}"),
                format!("missing secret; add {key} = \"${{{env_hint}}}\" and export {env_hint}"),
            );
            return None;
        }
        let value = self.string(t, prefix, key)?;
        if value.trim().is_empty() {
            let line = self.key_line(t, key);
            self.problem(
                line,
                &format!("{prefix}.{key}"),
                format!("missing secret: the value is empty; export {env_hint}"),
            );
            return None;
        }
        Some(Secret::new(value))
    }

    /// A secret read only when its key is there.
    pub(crate) fn optional_secret(
        &mut self,
        t: &Table,
        prefix: &str,
        key: &str,
        env_hint: &str,
    ) -> Option<Secret> {
        if t.contains_key(key) {
            self.secret(t, prefix, key, env_hint)
        } else {
            None
        }
    }

    /// A list of strings (empty when absent), `${VAR}`s replaced.
    pub(crate) fn string_array(&mut self, t: &Table, prefix: &str, key: &str) -> Vec<String> {
        let Some(item) = t.get(key) else {
            return Vec::new();
        };
        let line = self.key_line(t, key);
        let full = format!("{prefix}.{key}");
        let Some(arr) = item.as_array() else {
            self.problem(
                line,
                &full,
                "must be a list of strings, e.g. [\"slack:#pr-alerts\"]",
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for v in arr.iter() {
            match v.as_str() {
                Some(s) => match interpolate(s, self.env) {
                    Ok(s) => out.push(s),
                    Err(e) => self.problem(line, &full, e),
                },
                None => self.problem(line, &full, "every entry must be a string in quotes"),
            }
        }
        out
    }

    /// A duration such as `"5m"`, `"5 minutes"` or `"1h30m"` (`util::parse_duration`), longer
    /// than zero.
    pub(crate) fn duration(&mut self, t: &Table, prefix: &str, key: &str) -> Option<Duration> {
        let s = self.string(t, prefix, key)?;
        match parse_duration(&s) {
            Ok(d) if d.is_zero() => {
                let line = self.key_line(t, key);
                self.problem(line, &format!("{prefix}.{key}"), "must be longer than zero");
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                let line = self.key_line(t, key);
                self.problem(line, &format!("{prefix}.{key}"), e);
                None
            }
        }
    }

    /// A positive whole number.
    pub(crate) fn integer(&mut self, t: &Table, prefix: &str, key: &str) -> Option<u64> {
        let item = t.get(key)?;
        match item.as_integer() {
            Some(i) if i > 0 => Some(i as u64),
            _ => {
                let line = self.key_line(t, key);
                self.problem(
                    line,
                    &format!("{prefix}.{key}"),
                    "must be a positive whole number",
                );
                None
            }
        }
    }

    /// `true` or `false`, unquoted.
    pub(crate) fn boolean(&mut self, t: &Table, prefix: &str, key: &str) -> Option<bool> {
        let item = t.get(key)?;
        match item.as_value() {
            Some(Value::Boolean(b)) => Some(*b.value()),
            _ => {
                let line = self.key_line(t, key);
                self.problem(
                    line,
                    &format!("{prefix}.{key}"),
                    "must be true or false (no quotes)",
                );
                None
            }
        }
    }

    /// An IANA time zone name such as `"Europe/Berlin"`.
    pub(crate) fn timezone(&mut self, t: &Table, prefix: &str, key: &str) -> Option<chrono_tz::Tz> {
        self.parsed(t, prefix, key, |s| {
            s.parse::<chrono_tz::Tz>().map_err(|_| {
                format!("unknown time zone {s:?}; use an IANA name such as \"Europe/Berlin\" or \"UTC\"")
            })
        })
    }

    /// A list of chat targets (`["slack:#pr", "discord:123"]`), each one checked.
    pub(crate) fn targets(&mut self, t: &Table, key: &str, field: &str) -> Vec<Target> {
        let mut out = Vec::new();
        let line = self.key_line(t, field);
        for s in self.string_array(t, key, field) {
            match Target::parse(&s) {
                Ok(target) => out.push(target),
                Err(e) => self.problem(line, &format!("{key}.{field}"), e),
            }
        }
        out
    }

    /// A single chat target.
    pub(crate) fn target(&mut self, t: &Table, prefix: &str, key: &str) -> Option<Target> {
        self.parsed(t, prefix, key, Target::parse)
    }

    /// An optional http(s) URL (or ws(s) with `websocket`).
    pub(crate) fn url(
        &mut self,
        t: &Table,
        prefix: &str,
        key: &str,
        websocket: bool,
    ) -> Option<String> {
        let u = self.string(t, prefix, key)?;
        self.check_url(t, prefix, key, &u, websocket);
        Some(u)
    }

    /// Reports `u` (read from `key`) unless it is an http(s) URL (ws(s) with `websocket`).
    pub(crate) fn check_url(
        &mut self,
        t: &Table,
        prefix: &str,
        key: &str,
        u: &str,
        websocket: bool,
    ) {
        let ok = if websocket {
            u.starts_with("wss://") || u.starts_with("ws://")
        } else {
            u.starts_with("https://") || u.starts_with("http://")
        };
        if !ok {
            let line = self.key_line(t, key);
            let what = if websocket { "a ws(s)" } else { "an http(s)" };
            self.problem(
                line,
                &format!("{prefix}.{key}"),
                format!("{u:?} is not {what} URL"),
            );
        }
    }
}

/// Accessors for [`RawTable`]s (the `[[rules]]` tables read by the lean scanner, or
/// converted from `toml_edit`): the same checks and messages as the [`Table`] accessors. A
/// table's key prefix (`rules[3]`) is formatted only when a problem is reported.
impl Reader<'_> {
    /// Reports every key of `t` not in `allowed`, with the nearest allowed one.
    pub(crate) fn raw_known_keys(&mut self, t: &RawTable, prefix: &dyn Display, allowed: &[&str]) {
        for e in &t.entries {
            if allowed.contains(&e.key) {
                continue;
            }
            let suggestion = did_you_mean(e.key, allowed)
                .map(|s| format!("; did you mean {s:?}?"))
                .unwrap_or_default();
            self.problem(
                e.line,
                &format!("{prefix}.{}", e.key),
                format!(
                    "unknown key{suggestion} (known here: {})",
                    allowed.join(", ")
                ),
            );
        }
    }

    /// `raw` with `${VAR}`s replaced (borrowed when it has no `$`); a bad reference is
    /// reported at `line`.
    fn raw_interpolate<'s>(
        &mut self,
        raw: &'s str,
        line: usize,
        prefix: &dyn Display,
        key: &str,
    ) -> Option<Cow<'s, str>> {
        if !raw.contains('$') {
            return Some(Cow::Borrowed(raw));
        }
        match interpolate(raw, self.env) {
            Ok(s) => Some(Cow::Owned(s)),
            Err(e) => {
                self.problem(line, &format!("{prefix}.{key}"), e);
                None
            }
        }
    }

    /// An optional string, `${VAR}`s replaced, with the line of its key.
    pub(crate) fn raw_str<'s>(
        &mut self,
        t: &'s RawTable,
        prefix: &dyn Display,
        key: &str,
    ) -> Option<(Cow<'s, str>, usize)> {
        let e = t.get(key)?;
        match &e.value {
            RawValue::Str(s) => self
                .raw_interpolate(s, e.line, prefix, key)
                .map(|s| (s, e.line)),
            _ => {
                self.problem(
                    e.line,
                    &format!("{prefix}.{key}"),
                    "must be a string in quotes",
                );
                None
            }
        }
    }

    /// A string that must be there; its absence is reported at the table's line.
    pub(crate) fn raw_required_str<'s>(
        &mut self,
        t: &'s RawTable,
        prefix: &dyn Display,
        key: &str,
    ) -> Option<(Cow<'s, str>, usize)> {
        if t.get(key).is_none() {
            self.problem(
                t.line,
                &format!("{prefix}.{key}"),
                format!("missing; add {key} = \"…\""),
            );
            return None;
        }
        self.raw_str(t, prefix, key)
    }

    /// A list of strings (empty when absent), `${VAR}`s replaced, each passed to `each` with
    /// the key's line.
    pub(crate) fn raw_string_array<'s>(
        &mut self,
        t: &'s RawTable,
        prefix: &dyn Display,
        key: &str,
        mut each: impl FnMut(&mut Self, Cow<'s, str>, usize),
    ) {
        let Some(e) = t.get(key) else {
            return;
        };
        let RawValue::Array(items) = &e.value else {
            self.problem(
                e.line,
                &format!("{prefix}.{key}"),
                "must be a list of strings, e.g. [\"slack:#pr-alerts\"]",
            );
            return;
        };
        for item in items {
            match item {
                Some(s) => {
                    if let Some(s) = self.raw_interpolate(s, e.line, prefix, key) {
                        each(self, s, e.line);
                    }
                }
                None => self.problem(
                    e.line,
                    &format!("{prefix}.{key}"),
                    "every entry must be a string in quotes",
                ),
            }
        }
    }

    /// Records `name` as taken; if an earlier table already took it, reports `message()` at
    /// this table's `name` key (the second one is the mistake).
    pub(crate) fn raw_unique_name<'s>(
        &mut self,
        taken: &mut HashSet<Cow<'s, str>>,
        name: Cow<'s, str>,
        line: usize,
        prefix: &dyn Display,
        message: impl FnOnce() -> String,
    ) {
        #[cfg(test)]
        super::lines::work::add(1);
        if !taken.insert(name) {
            self.problem(line, &format!("{prefix}.name"), message());
        }
    }
}

/// The allowed name nearest to a typo (edit distance ≤ 2), for "did you mean".
pub(crate) fn did_you_mean<'a>(word: &str, allowed: &[&'a str]) -> Option<&'a str> {
    #[cfg(test)]
    super::lines::work::add(allowed.len() as u64);
    allowed
        .iter()
        .map(|a| (strsim::levenshtein(word, a), *a))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, a)| a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_you_mean_picks_the_nearest_within_two_edits() {
        assert_eq!(did_you_mean("pth", &["path", "url"]), Some("path"));
        assert_eq!(
            did_you_mean("subredits", &["subreddits"]),
            Some("subreddits")
        );
        assert_eq!(did_you_mean("zzzzzz", &["path", "url"]), None);
        // Ties go to the alphabetically first name.
        assert_eq!(did_you_mean("ab", &["ac", "aa"]), Some("aa"));
    }
}
