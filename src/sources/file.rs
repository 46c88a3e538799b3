//! The `file` source: a local RSS/Atom/JSON Feed file or a JSON-lines file of mentions,
//! re-read only when its modification time or length changed.
//! It does not watch the file (the poll loop decides when to look) and does not follow appends
//! line by line: a changed file is read whole, and the intake deduplicates.

use super::config::{Common, KindConfig};
use super::rss::{content_id, parse_feed};
use super::{Source, SourceError, SourceKind, SourceState};
use crate::config::{Reader, Table};
use crate::model::Mention;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// `kind = "file"`: a local feed or JSON-lines file.
#[derive(Debug, Clone, PartialEq)]
pub struct FileConfig {
    pub(crate) common: Common,
    pub(crate) path: PathBuf,
}

impl KindConfig for FileConfig {
    const KIND: &'static str = "file";
    const KEYS: &'static [&'static str] = &["path"];
    const DEFAULT_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

    fn read(r: &mut Reader, t: &Table, key: &str, common: Common) -> Option<FileConfig> {
        if !t.contains_key("path") {
            let line = r.table_line(t);
            r.problem(
                line,
                &format!("{key}.path"),
                "a file source needs path = \"path/to/mentions.jsonl\" (or a .xml feed)",
            );
        }
        let path = r.string(t, key, "path")?;
        if path.trim().is_empty() {
            // Refused here so `check` names it; the source could not start with it.
            let line = r.key_line(t, "path");
            r.problem(
                line,
                &format!("{key}.path"),
                "is empty; write the file to watch, e.g. path = \"data/mentions.jsonl\"",
            );
            return None;
        }
        // Relative to the config file's folder, so `check` and `run` read the same file
        // whatever the working directory.
        let path = r.resolve(&path);
        if !path.exists() {
            // A warning, not a problem: another program may create the file later; until
            // then every poll of this source fails.
            let line = r.key_line(t, "path");
            r.warning(
                line,
                &format!("{key}.path"),
                format!(
                    "{} does not exist, so every poll of this source will fail until it does; \
                     create it or correct path (a relative path is read from the config file's folder)",
                    path.display()
                ),
            );
        }
        Some(FileConfig { common, path })
    }

    fn common(&self) -> &Common {
        &self.common
    }

    fn build(&self) -> Result<Box<dyn Source>, SourceError> {
        Ok(Box::new(FileSource::new(self)?))
    }
}

/// A local file polled for new mentions.
pub(crate) struct FileSource {
    name: String,
    path: PathBuf,
    max_body_bytes: u64,
    /// The last poll read a JSON-lines file only in part (see `PART_BYTES`).
    more: bool,
}

impl FileSource {
    /// Needs a non-empty `path`; the file may not exist yet (that is a poll error, not a
    /// start-up one).
    pub(crate) fn new(spec: &FileConfig) -> Result<FileSource, SourceError> {
        if spec.path.as_os_str().is_empty() {
            return Err(SourceError::Config(format!(
                "source {:?}: kind \"file\" needs path = \"…\"",
                spec.common.name
            )));
        }
        Ok(FileSource {
            name: spec.common.name.clone(),
            path: spec.path.clone(),
            max_body_bytes: spec.common.max_body_bytes,
            more: false,
        })
    }
}

#[async_trait::async_trait]
impl Source for FileSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> SourceKind {
        SourceKind::File
    }

    async fn poll(&mut self, state: &mut SourceState) -> Result<Vec<Mention>, SourceError> {
        self.more = false;
        let io = |what: &str, e: std::io::Error| {
            SourceError::Io(format!("cannot {what} {}: {e}", self.path.display()))
        };
        let meta = tokio::fs::metadata(&self.path)
            .await
            .map_err(|e| io("read", e))?;
        if !meta.is_file() {
            return Err(SourceError::Io(format!(
                "{} is not a regular file",
                self.path.display()
            )));
        }
        // Taken before reading: if the file changes while we read, the next poll sees a newer
        // fingerprint and reads it again.
        let fingerprint = fingerprint(&meta);
        let reading = state
            .extra
            .get(READING)
            .and_then(|r| Reading::parse(r.as_str()));
        if reading.is_none() && state.cursor.as_deref() == Some(fingerprint.as_str()) {
            return Ok(Vec::new());
        }
        let limit = self.max_body_bytes;
        if meta.len() > limit {
            return Err(SourceError::TooLarge { limit });
        }
        // A file that shrank below where the last part ended was rewritten: read it anew.
        let from = reading
            .filter(|r| r.offset <= meta.len())
            .unwrap_or(Reading {
                offset: 0,
                line: 0,
                fingerprint,
            });

        let name = self.name.clone();
        let path = self.path.clone();
        let (mentions, next) =
            tokio::task::spawn_blocking(move || read_part(&path, &name, limit, &from))
                .await
                .map_err(|e| SourceError::Parse(format!("file parser stopped: {e}")))??;
        match next {
            Part::Rest(reading) => {
                state.extra.insert(READING.into(), reading.to_string());
                self.more = true;
            }
            Part::End(fingerprint) => {
                state.extra.remove(READING);
                state.cursor = Some(fingerprint);
            }
        }
        Ok(mentions)
    }

    /// A JSON-lines file read in part has more to hand over: poll again at once.
    async fn ready(&mut self) {
        if !self.more {
            std::future::pending::<()>().await
        }
    }
}

/// The `SourceState::extra` key of a JSON-lines file read in parts: where the next part
/// starts, and the fingerprint of the file when its first part was read (the cursor once the
/// last part is read, so a file that changed meanwhile is read again).
const READING: &str = "reading";

/// At most this much of a JSON-lines file (whole lines, at least one) is read per poll, so
/// memory does not grow with the file: a larger file is read in parts on consecutive polls,
/// each stored with its place in the file, and a restart resumes at the last stored part.
const PART_BYTES: u64 = 128 * 1024;

/// Where the next part of a JSON-lines file starts.
#[derive(Debug, Clone, PartialEq)]
struct Reading {
    offset: u64,
    /// Lines before `offset`, so warnings name the right line.
    line: usize,
    fingerprint: String,
}

impl Reading {
    fn parse(s: &str) -> Option<Reading> {
        let mut parts = s.splitn(3, ';');
        Some(Reading {
            offset: parts.next()?.parse().ok()?,
            line: parts.next()?.parse().ok()?,
            fingerprint: parts.next()?.to_string(),
        })
    }
}

impl std::fmt::Display for Reading {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{};{};{}", self.offset, self.line, self.fingerprint)
    }
}

/// What is left after a part.
#[derive(Debug, PartialEq)]
enum Part {
    Rest(Reading),
    /// The file is read to its end; the fingerprint it had when reading began.
    End(String),
}

/// Reads the part of the file that starts at `from`: a feed whole, JSON lines up to
/// `PART_BYTES` of whole lines.
fn read_part(
    path: &Path,
    source: &str,
    limit: u64,
    from: &Reading,
) -> Result<(Vec<Mention>, Part), SourceError> {
    use std::io::{Read, Seek, SeekFrom};
    let io = |what: &str, e: std::io::Error| {
        SourceError::Io(format!("cannot {what} {}: {e}", path.display()))
    };
    let mut file = std::fs::File::open(path).map_err(|e| io("open", e))?;
    file.seek(SeekFrom::Start(from.offset))
        .map_err(|e| io("read", e))?;
    let mut bytes = Vec::new();
    (&mut file)
        .take(PART_BYTES)
        .read_to_end(&mut bytes)
        .map_err(|e| io("read", e))?;
    let end = Part::End(from.fingerprint.clone());
    if from.offset == 0 && detect(path, &bytes) == Format::Feed {
        // Feeds are one document: read whole (never more than the cap plus one byte, as the
        // file may have grown since its size was checked).
        file.take(limit.saturating_add(1).saturating_sub(bytes.len() as u64))
            .read_to_end(&mut bytes)
            .map_err(|e| io("read", e))?;
        if bytes.len() as u64 > limit {
            return Err(SourceError::TooLarge { limit });
        }
        return Ok((parse_file(&bytes, path, source)?, end));
    }
    let mut at_end = (bytes.len() as u64) < PART_BYTES;
    // Up to the last whole line; a line longer than a part is read on to its end.
    let mut cut = memchr::memrchr(b'\n', &bytes).map(|i| i + 1);
    while cut.is_none() && !at_end {
        let before = bytes.len();
        (&mut file)
            .take(PART_BYTES)
            .read_to_end(&mut bytes)
            .map_err(|e| io("read", e))?;
        if bytes.len() as u64 > limit {
            return Err(SourceError::TooLarge { limit });
        }
        at_end = bytes.len() - before < PART_BYTES as usize;
        cut = memchr::memchr(b'\n', &bytes[before..]).map(|i| before + i + 1);
    }
    let cut = if at_end {
        bytes.len()
    } else {
        cut.unwrap_or(bytes.len())
    };
    let (mentions, lines) = parse_json_lines(&bytes[..cut], path, source, from.line);
    if at_end && cut == bytes.len() {
        return Ok((mentions, end));
    }
    let next = Reading {
        offset: from.offset + cut as u64,
        line: from.line + lines,
        fingerprint: from.fingerprint.clone(),
    };
    Ok((mentions, Part::Rest(next)))
}

/// mtime (ns since the epoch) and length: cheap to get and changes on every ordinary write.
fn fingerprint(meta: &std::fs::Metadata) -> String {
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    format!("mtime={mtime};len={}", meta.len())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Feed,
    JsonLines,
}

/// `.jsonl`/`.ndjson` are JSON lines; otherwise the first non-space byte decides: `<` is a feed,
/// `{` is JSON lines unless the document is a JSON Feed (pretty-printed, or one line with
/// a jsonfeed.org `version`).
fn detect(path: &Path, bytes: &[u8]) -> Format {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    if matches!(ext.as_deref(), Some("jsonl" | "ndjson")) {
        return Format::JsonLines;
    }
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {
            let first_line = body
                .split(|b| *b == b'\n')
                .find(|l| !l.trim_ascii().is_empty())
                .unwrap_or_default();
            match serde_json::from_slice::<serde_json::Value>(first_line) {
                Ok(v) => {
                    let is_json_feed = v
                        .get("version")
                        .and_then(|v| v.as_str())
                        .is_some_and(|v| v.starts_with("https://jsonfeed.org/version/"));
                    if is_json_feed {
                        Format::Feed
                    } else {
                        Format::JsonLines
                    }
                }
                // The first line is not a whole object: one pretty-printed JSON document.
                Err(_) => Format::Feed,
            }
        }
        _ => Format::Feed,
    }
}

fn parse_file(bytes: &[u8], path: &Path, source: &str) -> Result<Vec<Mention>, SourceError> {
    if bytes.trim_ascii().is_empty() {
        return Ok(Vec::new());
    }
    match detect(path, bytes) {
        Format::Feed => parse_feed(bytes, source, SourceKind::File, None),
        Format::JsonLines => Ok(parse_json_lines(bytes, path, source, 0).0),
    }
}

/// One mention as JSON: a line of a JSON-lines file (as documented for `mentiondesk match`)
/// and an item of a webhook delivery (`webhook.rs`) have this one shape.
#[derive(Debug, Deserialize)]
struct Line {
    id: Option<LineId>,
    text: String,
    title: Option<String>,
    url: Option<String>,
    author: Option<String>,
    published: Option<DateTime<Utc>>,
    lang: Option<String>,
}

/// Ids written by tools are sometimes numbers; both are accepted.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum LineId {
    Text(String),
    Number(serde_json::Number),
}

/// Parses JSON lines (`first_line` lines of the file came before `bytes`); a bad line is
/// logged with its number and skipped so one typo does not hide the rest of the file. A line
/// without `id` gets one derived from its content. Also returns how many lines it read.
fn parse_json_lines(
    bytes: &[u8],
    path: &Path,
    source: &str,
    first_line: usize,
) -> (Vec<Mention>, usize) {
    let mut mentions = Vec::new();
    let lines = memchr::memchr_iter(b'\n', bytes).count()
        + usize::from(bytes.last().is_some_and(|b| *b != b'\n'));
    for (index, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let raw = raw.trim_ascii();
        if raw.is_empty() {
            continue;
        }
        let line: Line = match serde_json::from_slice(raw) {
            Ok(line) => line,
            Err(e) => {
                tracing::warn!(
                    source,
                    file = %path.display(),
                    line = first_line + index + 1,
                    error = %e,
                    "skipping a bad JSON line"
                );
                continue;
            }
        };
        mentions.push(line_mention(line, source, SourceKind::File));
    }
    (mentions, lines)
}

/// One JSON object in the shape of a JSON line, as a mention of `source` (of `kind`); the
/// reason (serde's, naming the field) when it is not one. Shared with the `webhook` source so
/// a delivered item and a line of a file mean the same thing.
pub(crate) fn json_mention(
    value: serde_json::Value,
    source: &str,
    kind: SourceKind,
) -> Result<Mention, String> {
    let line: Line = serde_json::from_value(value).map_err(|e| e.to_string())?;
    Ok(line_mention(line, source, kind))
}

/// A parsed line as a mention. Without `id` it gets one derived from its content, so the same
/// item read (or delivered) again has the same id and the intake drops it as a duplicate.
fn line_mention(line: Line, source: &str, kind: SourceKind) -> Mention {
    let published = line.published.map(|p| p.to_rfc3339());
    let item_id = match line.id {
        Some(LineId::Text(id)) if !id.trim().is_empty() => id,
        Some(LineId::Number(n)) => n.to_string(),
        _ => content_id(&[
            &line.text,
            line.title.as_deref().unwrap_or(""),
            line.url.as_deref().unwrap_or(""),
            line.author.as_deref().unwrap_or(""),
            published.as_deref().unwrap_or(""),
        ]),
    };
    Mention {
        item_id,
        source: source.to_string(),
        source_kind: kind.as_str().to_string(),
        url: line.url,
        title: line.title,
        text: line.text,
        author: line.author,
        author_reach: None,
        published: line.published,
        lang: line.lang,
        rating: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_is_detected_by_extension_then_content() {
        let p = Path::new;
        assert_eq!(detect(p("a.jsonl"), b"<rss/>"), Format::JsonLines);
        assert_eq!(detect(p("a.NDJSON"), b""), Format::JsonLines);
        assert_eq!(detect(p("a.txt"), b"  \n<rss/>"), Format::Feed);
        assert_eq!(detect(p("a"), b"\xEF\xBB\xBF<feed/>"), Format::Feed);
        assert_eq!(
            detect(p("a"), b"{\"id\":\"1\",\"text\":\"x\"}\n"),
            Format::JsonLines
        );
        assert_eq!(
            detect(p("feed.json"), b"{\n  \"version\": \"x\"\n}"),
            Format::Feed
        );
        assert_eq!(
            detect(
                p("feed.json"),
                br#"{"version":"https://jsonfeed.org/version/1.1","items":[]}"#
            ),
            Format::Feed
        );
    }

    #[test]
    fn json_lines_skip_bad_lines_and_keep_the_rest() {
        let input = concat!(
            "{\"id\":\"a\",\"text\":\"acme rocks\",\"published\":\"2024-05-01T10:00:00+02:00\",\"lang\":\"en\"}\n",
            "this is not json\n",
            "\n",
            "{\"text\":\"no id here\",\"url\":\"https://x.test/1\"}\n",
            "{\"id\":\"c\"}\n",
            "{\"id\":7,\"text\":\"numeric id\"}\n",
            "{\"id\":\"d\",\"text\":\"bad date\",\"published\":\"yesterday\"}\n",
        );
        let (got, _) = parse_json_lines(input.as_bytes(), Path::new("m.jsonl"), "src", 0);
        let ids: Vec<_> = got.iter().map(|m| m.item_id.as_str()).collect();
        assert_eq!(ids.len(), 3, "{ids:?}");
        assert_eq!(ids[0], "a");
        assert_eq!(ids[2], "7");
        assert_eq!(
            got[0].published.unwrap().to_rfc3339(),
            "2024-05-01T08:00:00+00:00"
        );
        assert_eq!(got[0].lang.as_deref(), Some("en"));
        assert_eq!(got[0].source_kind, "file");
        // Derived ids are stable and differ from other lines.
        let (again, _) = parse_json_lines(input.as_bytes(), Path::new("m.jsonl"), "src", 0);
        assert_eq!(got[1].item_id, again[1].item_id);
        assert_eq!(got[1].item_id.len(), 32);
    }

    /// A JSON-lines file larger than a part is handed over in parts of whole lines on
    /// consecutive polls (the source asks to be polled again at once), each part's place
    /// saved in the state, so memory does not grow with the file; every line arrives exactly
    /// once, a state saved mid-file resumes there, and the file counts as read only at its end.
    #[tokio::test]
    async fn a_large_json_lines_file_is_read_in_parts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.jsonl");
        let lines = 3 * PART_BYTES as usize / 100 + 7;
        let body: String = (0..lines)
            .map(|i| format!("{{\"id\":\"{i}\",\"text\":\"acme post {i:>70}\"}}\n"))
            .collect();
        std::fs::write(&path, &body).unwrap();
        let spec = FileConfig {
            common: Common {
                max_body_bytes: 64 * 1024 * 1024,
                ..Common::new("big", std::time::Duration::from_secs(60))
            },
            path: path.clone(),
        };
        let mut source = FileSource::new(&spec).unwrap();
        let mut state = SourceState::default();
        let mut ids = Vec::new();
        let mut polls = 0;
        let mut saved_mid_file = None;
        loop {
            let got = source.poll(&mut state).await.unwrap();
            polls += 1;
            assert!(
                !got.is_empty() && got.len() as u64 * 100 <= PART_BYTES + 100,
                "poll {polls}: {} lines",
                got.len()
            );
            ids.extend(got.into_iter().map(|m| m.item_id));
            let more = tokio::time::timeout(std::time::Duration::from_millis(1), source.ready())
                .await
                .is_ok();
            if !more {
                break;
            }
            assert!(state.cursor.is_none(), "not read to its end yet");
            saved_mid_file.get_or_insert((state.clone(), ids.len()));
        }
        assert!(polls >= 3, "{polls} polls");
        let want: Vec<String> = (0..lines).map(|i| i.to_string()).collect();
        assert_eq!(ids, want, "every line once, in order");
        assert!(state.cursor.is_some() && !state.extra.contains_key(READING));
        assert!(
            source.poll(&mut state).await.unwrap().is_empty(),
            "read whole"
        );

        // A restart with the state of the first part resumes after it.
        let (mid, seen) = saved_mid_file.unwrap();
        let mut state = mid;
        let mut source = FileSource::new(&spec).unwrap();
        let next = source.poll(&mut state).await.unwrap();
        assert_eq!(next[0].item_id, seen.to_string());
    }
}
