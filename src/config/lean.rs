//! A lean path for the one section that grows with the user's config: many `[[name]]`
//! tables (`[[rules]]`) whose values are strings and lists of strings. `toml_edit`'s
//! format-preserving document costs dozens of allocations per key; this scanner reads those
//! tables straight from the text into [`RawTable`]s (keys, values, lines) and hands the rest of
//! the file, with the tables' lines left blank so every line number stays the same, to
//! `toml_edit` as before. Anything outside the small subset it knows (a multi-line string
//! anywhere, a number or inline table in such a table, a quoted or dotted key, a sub-table of
//! the array) makes it give up, and the caller parses the whole file with `toml_edit`: the
//! subset is a speed-up, never a second dialect, and every syntax error is still `toml_edit`'s.

use std::borrow::Cow;

/// One value of a raw table, as far as the readers of such tables need to tell them apart.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RawValue<'t> {
    Str(Cow<'t, str>),
    /// A list; `None` for an entry that is not a string.
    Array(Vec<Option<Cow<'t, str>>>),
    /// Anything else (a number, a table, …): only `toml_edit` produces these.
    Other,
}

/// One `key = value` of a raw table, with the line of its key.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawEntry<'t> {
    pub(crate) key: &'t str,
    pub(crate) line: usize,
    pub(crate) value: RawValue<'t>,
}

/// One table of an array of tables, keys in file order, with the line of its header.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RawTable<'t> {
    pub(crate) line: usize,
    pub(crate) entries: Vec<RawEntry<'t>>,
}

impl<'t> RawTable<'t> {
    pub(crate) fn get(&self, key: &str) -> Option<&RawEntry<'t>> {
        self.entries.iter().find(|e| e.key == key)
    }

    /// The table as `toml_edit` parsed it (the path taken when the lean scanner gave up).
    pub(crate) fn from_table(
        t: &'t toml_edit::Table,
        line: impl Fn(Option<std::ops::Range<usize>>) -> usize,
    ) -> RawTable<'t> {
        let entries = t
            .iter()
            .map(|(key, item)| {
                let value = match item.as_value() {
                    Some(toml_edit::Value::String(s)) => RawValue::Str(Cow::Borrowed(s.value())),
                    Some(toml_edit::Value::Array(a)) => {
                        RawValue::Array(a.iter().map(|v| v.as_str().map(Cow::Borrowed)).collect())
                    }
                    _ => RawValue::Other,
                };
                let span = t.key(key).and_then(|k| k.span()).or_else(|| item.span());
                RawEntry {
                    key,
                    line: line(span.or_else(|| t.span())),
                    value,
                }
            })
            .collect();
        RawTable {
            line: line(t.span()),
            entries,
        }
    }
}

/// More keys than any table of the lean subset needs; such a table goes to `toml_edit`.
const MAX_KEYS: usize = 32;

/// What [`split`] found: the file without the `[[name]]` tables (same lines, those blank)
/// and the tables themselves.
pub(crate) struct Split<'t> {
    pub(crate) rest: String,
    pub(crate) tables: Vec<RawTable<'t>>,
}

/// Reads every `[[name]]` table of `text` if all of them are in the lean subset and nothing
/// else in the file could hide or extend them; `None` means "parse the whole file with
/// `toml_edit`" (also when there is no such table: nothing to gain).
pub(crate) fn split<'t>(text: &'t str, name: &str) -> Option<Split<'t>> {
    let mut s = Scanner {
        text,
        b: text.as_bytes(),
        pos: 0,
        line: 1,
    };
    let mut tables: Vec<RawTable<'t>> = Vec::new();
    // Byte ranges of the tables (header to the next header), blanked in `rest`.
    let mut blocks: Vec<(usize, usize)> = Vec::new();
    let mut block_start: Option<usize> = None;
    while s.pos < s.b.len() {
        let line_start = s.pos;
        s.skip_blank();
        match s.peek() {
            Some(b'[') => {
                let header = s.header(name)?;
                if let Some(start) = block_start.take() {
                    blocks.push((start, line_start));
                }
                if header {
                    block_start = Some(line_start);
                    tables.push(RawTable {
                        line: s.line,
                        entries: Vec::new(),
                    });
                }
                s.end_of_line()?;
            }
            None | Some(b'\n' | b'#' | b'\r') => s.end_of_line()?,
            Some(_) if block_start.is_some() => {
                let table = tables.last_mut().expect("a block has a table");
                let entry = s.entry()?;
                // A duplicate key is `toml_edit`'s error to report; a table of many keys is
                // not a rule (and would make the duplicate check quadratic).
                if table.get(entry.key).is_some() || table.entries.len() >= MAX_KEYS {
                    return None;
                }
                table.entries.push(entry);
                s.end_of_line()?;
            }
            Some(_) => {
                // A line of another section: only its multi-line strings (which could hold a
                // line looking like a header) need understanding, and those are left to
                // `toml_edit`.
                let end = memchr::memchr(b'\n', &s.b[s.pos..]).map_or(s.b.len(), |i| s.pos + i);
                let line = &s.b[s.pos..end];
                if memchr::memmem::find(line, b"\"\"\"").is_some()
                    || memchr::memmem::find(line, b"'''").is_some()
                {
                    return None;
                }
                s.pos = end;
                s.end_of_line()?;
            }
        }
    }
    if let Some(start) = block_start {
        blocks.push((start, s.b.len()));
    }
    #[cfg(test)]
    super::lines::work::add(s.pos as u64);
    if tables.is_empty() {
        return None;
    }
    // The rest keeps every line (the blocks become their newlines), so a line found in it is
    // the line of the file.
    let blocked: usize = blocks.iter().map(|(start, end)| end - start).sum();
    let mut rest = String::with_capacity(text.len() - blocked + tables.len() * 8);
    let mut at = 0;
    for (start, end) in blocks {
        rest.push_str(&text[at..start]);
        let newlines = memchr::memchr_iter(b'\n', &s.b[start..end]).count();
        rest.extend(std::iter::repeat_n('\n', newlines));
        at = end;
    }
    rest.push_str(&text[at..]);
    Some(Split { rest, tables })
}

struct Scanner<'t> {
    text: &'t str,
    b: &'t [u8],
    pos: usize,
    /// 1-based line of `pos`.
    line: usize,
}

impl<'t> Scanner<'t> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn skip_blank(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    /// Spaces, an optional comment, then the end of the line (or of the file), stepping past
    /// the newline.
    fn end_of_line(&mut self) -> Option<()> {
        self.skip_blank();
        if self.peek() == Some(b'#') {
            self.pos += 1;
            while let Some(c) = self.peek() {
                match c {
                    b'\n' => break,
                    b'\r' if self.b.get(self.pos + 1) == Some(&b'\n') => break,
                    b'\t' => {}
                    c if c < 0x20 || c == 0x7f => return None,
                    _ => {}
                }
                self.pos += 1;
            }
        }
        match self.peek() {
            None => Some(()),
            Some(b'\n') => {
                self.pos += 1;
                self.line += 1;
                Some(())
            }
            Some(b'\r') if self.b.get(self.pos + 1) == Some(&b'\n') => {
                self.pos += 2;
                self.line += 1;
                Some(())
            }
            Some(_) => None,
        }
    }

    /// A header line at `[`: `Some(true)` for exactly `[[name]]`, `Some(false)` for a header
    /// of another table, `None` for anything that could concern `name` in another way
    /// (`[name]`, `[[name.sub]]`, a quoted spelling) or that is not a plain header.
    fn header(&mut self, name: &str) -> Option<bool> {
        let double = self.b[self.pos..].starts_with(b"[[");
        let open = if double { 2 } else { 1 };
        let close: &[u8] = if double { b"]]" } else { b"]" };
        let from = self.pos + open;
        let end = from + memchr::memchr(close[0], &self.b[from..])?;
        if !self.b[end..].starts_with(close) {
            return None;
        }
        let inner = &self.text[from..end];
        if inner.contains(['\n', '\\', '[']) {
            return None;
        }
        self.pos = end + close.len();
        let path = inner.trim_matches([' ', '\t']);
        if double && path == name {
            return Some(true);
        }
        let first = path
            .split('.')
            .next()
            .unwrap_or("")
            .trim_matches([' ', '\t'])
            .trim_matches(['"', '\'']);
        if first == name {
            return None;
        }
        Some(false)
    }

    /// `key = value` with a bare key and a string or list of strings.
    fn entry(&mut self) -> Option<RawEntry<'t>> {
        let line = self.line;
        let start = self.pos;
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
        {
            self.pos += 1;
        }
        if self.pos == start {
            return None;
        }
        let key = &self.text[start..self.pos];
        self.skip_blank();
        if self.peek() != Some(b'=') {
            return None;
        }
        self.pos += 1;
        self.skip_blank();
        let value = match self.peek()? {
            b'[' => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_array_space()?;
                    if self.peek() == Some(b']') {
                        self.pos += 1;
                        break;
                    }
                    items.push(Some(self.string()?));
                    self.skip_array_space()?;
                    match self.peek()? {
                        b',' => self.pos += 1,
                        b']' => {
                            self.pos += 1;
                            break;
                        }
                        _ => return None,
                    }
                }
                RawValue::Array(items)
            }
            _ => RawValue::Str(self.string()?),
        };
        Some(RawEntry { key, line, value })
    }

    /// Spaces, newlines and comments inside a list.
    fn skip_array_space(&mut self) -> Option<()> {
        loop {
            self.skip_blank();
            match self.peek() {
                Some(b'\n' | b'\r' | b'#') => self.end_of_line()?,
                _ => return Some(()),
            }
        }
    }

    /// A one-line basic (`"…"`) or literal (`'…'`) string.
    fn string(&mut self) -> Option<Cow<'t, str>> {
        let quote = self.peek()?;
        if quote != b'"' && quote != b'\'' {
            return None;
        }
        if self.b[self.pos..].starts_with(if quote == b'"' { b"\"\"\"" } else { b"'''" }) {
            return None;
        }
        self.pos += 1;
        let start = self.pos;
        let mut owned: Option<String> = None;
        loop {
            let c = self.peek()?;
            match c {
                _ if c == quote => break,
                b'\\' if quote == b'"' => {
                    if owned.is_none() {
                        owned = Some(self.text[start..self.pos].to_string());
                    }
                    self.pos += 1;
                    let ch = match self.peek()? {
                        b'b' => '\u{8}',
                        b't' => '\t',
                        b'n' => '\n',
                        b'f' => '\u{c}',
                        b'r' => '\r',
                        b'"' => '"',
                        b'\\' => '\\',
                        b'u' | b'U' => {
                            let len = if self.peek() == Some(b'u') { 4 } else { 8 };
                            let hex = self.text.get(self.pos + 1..self.pos + 1 + len)?;
                            if !hex.bytes().all(|h| h.is_ascii_hexdigit()) {
                                return None;
                            }
                            self.pos += len;
                            char::from_u32(u32::from_str_radix(hex, 16).ok()?)?
                        }
                        _ => return None,
                    };
                    self.pos += 1;
                    let buf = owned.as_mut().expect("set above");
                    buf.push(ch);
                    continue;
                }
                b'\t' => {}
                c if c < 0x20 || c == 0x7f => return None,
                _ => {}
            }
            let next = self.pos + 1;
            if let Some(buf) = owned.as_mut() {
                // Copy up to the next quote or escape in one go.
                let run_end = self.b[next..]
                    .iter()
                    .position(|&x| x == quote || x == b'\\' || x < 0x20 || x == 0x7f)
                    .map_or(self.b.len(), |i| next + i);
                buf.push_str(&self.text[self.pos..run_end]);
                self.pos = run_end;
            } else {
                self.pos = next;
            }
        }
        let value = match owned {
            Some(s) => Cow::Owned(s),
            None => Cow::Borrowed(&self.text[start..self.pos]),
        };
        self.pos += 1;
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::lines::LineIndex;

    /// The `[[rules]]` tables as `toml_edit` reads them, in the same form.
    fn reference(text: &str) -> Vec<RawTable<'static>> {
        let text: &'static str = Box::leak(text.to_string().into_boxed_str());
        let doc: &'static toml_edit::ImDocument<&'static str> = Box::leak(Box::new(
            toml_edit::ImDocument::parse(text).expect("valid TOML"),
        ));
        let lines = LineIndex::new(text);
        let line = |span: Option<std::ops::Range<usize>>| span.map_or(1, |s| lines.line(s.start));
        match doc.as_table().get("rules") {
            Some(toml_edit::Item::ArrayOfTables(a)) => {
                a.iter().map(|t| RawTable::from_table(t, line)).collect()
            }
            _ => Vec::new(),
        }
    }

    #[test]
    fn reads_the_tables_as_toml_edit_does_and_keeps_every_other_line() {
        let text = "# top\n[store]\npath = \"x\" # here\n\n[[rules]] # first\nname = \"a\\\"b\\u00e9\\\\\"\n\
            query = 'acme OR \"x # y\"'\n  alert = [ \"slack:#a\" , 'discord:1', ]\n\
            priority=\"high\"\n\n[rules_defaults]\nexclude = \"z\"\n\n[[rules]]\r\nname = \"é ü\"\r\n\
            alert = [\n  # where\n  \"slack:#b\", # one\n\n  \"slack:#c\"\n]\nquery = \"\"\n[[rules]]\n";
        let split = split(text, "rules").expect("in the lean subset");
        assert_eq!(split.tables, reference(text));
        assert_eq!(split.tables.len(), 3);
        assert_eq!(split.tables[0].line, 5);
        assert_eq!(
            split.tables[0].get("name").unwrap().value,
            RawValue::Str(Cow::Borrowed("a\"bé\\"))
        );
        assert_eq!(split.tables[1].get("query").unwrap().line, 22);
        assert_eq!(split.rest.lines().count(), text.lines().count());
        let rest = toml_edit::ImDocument::parse(split.rest.as_str()).unwrap();
        assert!(!rest.as_table().contains_key("rules"));
        assert_eq!(rest["rules_defaults"]["exclude"].as_str(), Some("z"));
        let exclude = rest["rules_defaults"].as_table().unwrap().key("exclude");
        let exclude_line = LineIndex::new(&split.rest).line(exclude.unwrap().span().unwrap().start);
        assert_eq!(exclude_line, 12);
    }

    #[test]
    fn gives_up_on_what_only_toml_edit_knows() {
        let rule = "[[rules]]\nname = \"a\"\n";
        for extra in [
            "[store]\npath = '''\n[[rules]]\n'''\n",
            "[[rules]]\nname = \"\"\"a\"\"\"\n",
            "[[rules]]\npriority = 3\n",
            "[[rules]]\nalert = [1]\n",
            "[[rules]]\nx.y = \"a\"\n",
            "[[rules]]\n\"quoted\" = \"a\"\n",
            "[[rules]]\nname = \"b\"\nname = \"c\"\n",
            "[[rules]]\nname = \"\\e\"\n",
            "[[rules]]\nname = \"a\" b\n",
            "[rules.sub]\nx = \"a\"\n",
            "[[rules.sub]]\nx = \"a\"\n",
            "[[\"rules\"]]\nname = \"b\"\n",
            "[rules]\n",
            "[[rules]]\nname = \"unclosed\n",
        ] {
            let text = format!("{rule}{extra}");
            assert!(split(&text, "rules").is_none(), "{text}");
        }
        assert!(split("[store]\npath = \"x\"\n", "rules").is_none());
        let many: String = (0..MAX_KEYS + 1)
            .map(|i| format!("k{i} = \"v\"\n"))
            .collect();
        assert!(split(&format!("{rule}{many}"), "rules").is_none());
    }
}
