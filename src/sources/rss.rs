//! The `rss` source: fetches a feed (RSS 0.9x/1.0/2.0, Atom, JSON Feed) with the shared
//! `Fetcher` and maps its entries to `Mention`s with ids that stay stable across polls.
//! It does not filter, deduplicate or remember items: the intake does that.

use super::http::{Fetched, Fetcher};
use super::{Source, SourceError, SourceKind, SourceSpec, SourceState};
use crate::model::Mention;
use feed_rs::model::{Entry, Feed, Link, Text};
use sha2::{Digest, Sha256};

/// A feed polled over HTTP(S).
pub struct RssSource {
    name: String,
    url: String,
    fetcher: Fetcher,
}

impl RssSource {
    /// Needs `spec.url`; the URL is checked when fetched, so a bad one shows up as a poll error
    /// naming the problem rather than failing start-up for every other source.
    pub fn new(spec: &SourceSpec) -> Result<RssSource, SourceError> {
        RssSource::with_fetcher(spec, Fetcher::new(spec)?)
    }

    /// Builds the source around a given fetcher (tests pin host names with it).
    pub(crate) fn with_fetcher(
        spec: &SourceSpec,
        fetcher: Fetcher,
    ) -> Result<RssSource, SourceError> {
        let url = spec
            .url
            .clone()
            .filter(|u| !u.trim().is_empty())
            .ok_or_else(|| {
                SourceError::Config(format!(
                    "source {:?}: kind \"rss\" needs url = \"https://…\"",
                    spec.name
                ))
            })?;
        Ok(RssSource {
            name: spec.name.clone(),
            url,
            fetcher,
        })
    }
}

#[async_trait::async_trait]
impl Source for RssSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> SourceKind {
        SourceKind::Rss
    }

    async fn poll(&mut self, state: &mut SourceState) -> Result<Vec<Mention>, SourceError> {
        let (bytes, etag, last_modified) = match self.fetcher.fetch(&self.url, state).await? {
            Fetched::NotModified => return Ok(Vec::new()),
            Fetched::Body {
                bytes,
                etag,
                last_modified,
            } => (bytes, etag, last_modified),
        };
        // Servers without validators still send the same bytes when nothing changed: a body hash
        // in the cursor turns that into "no items" without parsing.
        let digest = body_digest(&bytes);
        let unchanged = state.cursor.as_deref() == Some(digest.as_str());
        let mentions = if unchanged {
            Vec::new()
        } else {
            let name = self.name.clone();
            let url = self.url.clone();
            tokio::task::spawn_blocking(move || {
                parse_feed(&bytes, &name, SourceKind::Rss, Some(&url))
            })
            .await
            .map_err(|e| SourceError::Parse(format!("feed parser stopped: {e}")))??
        };
        state.etag = etag;
        state.last_modified = last_modified;
        state.cursor = Some(digest);
        Ok(mentions)
    }
}

fn body_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)[..16]))
}

/// Parses a feed document into mentions. Shared by every source that reads feeds (`rss`, `file`).
/// `base_uri` resolves relative links; it does not take part in ids.
pub fn parse_feed(
    bytes: &[u8],
    source: &str,
    kind: SourceKind,
    base_uri: Option<&str>,
) -> Result<Vec<Mention>, SourceError> {
    check_well_formed(bytes)?;
    let parser = feed_rs::parser::Builder::new()
        .base_uri(base_uri)
        .id_generator(stable_id)
        .build();
    let feed = parser.parse(bytes).map_err(|e| match e {
        feed_rs::parser::ParseFeedError::ParseError(
            feed_rs::parser::ParseErrorKind::NoFeedRoot,
        ) => SourceError::Parse(
            "no RSS, Atom or JSON Feed root element found (is the URL really a feed?)".to_string(),
        ),
        other => SourceError::Parse(other.to_string()),
    })?;
    Ok(map_feed(feed, source, kind))
}

/// Rejects ill-formed XML with the XML parser's message and position. feed-rs is lenient: on a
/// mis-nested tag it drops the element's content and still returns Ok, which would turn a broken
/// feed into a silently empty one. JSON (and anything not starting with '<') is left to feed-rs.
fn check_well_formed(bytes: &[u8]) -> Result<(), SourceError> {
    use quick_xml::events::Event;
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'<') {
        return Ok(());
    }
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut buf = Vec::new();
    let mut depth: u64 = 0;
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(_)) => depth += 1,
            Ok(Event::End(_)) => depth = depth.saturating_sub(1),
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => {
                return Err(SourceError::Parse(format!(
                    "malformed XML at byte {}: {e}",
                    reader.error_position()
                )))
            }
        }
        buf.clear();
    }
    if depth > 0 {
        return Err(SourceError::Parse(format!(
            "malformed XML: the document ends inside {depth} unclosed element(s); was it cut off?"
        )));
    }
    Ok(())
}

/// Pins the id of entries without guid/id: sha256 of first link + title, so the same entry
/// gets the same id on every poll and after restarts (feed-rs would otherwise fall back to a
/// random UUID when there is no link). Returns "" when there is neither, and `map_entry` then
/// derives the id from the entry's text.
fn stable_id(links: &[Link], title: &Option<Text>, _base_uri: Option<&str>) -> String {
    let link = links.first().map(|l| l.href.as_str());
    let title = title.as_ref().map(|t| t.content.as_str());
    if link.is_none() && title.is_none() {
        return String::new();
    }
    content_id(&[link.unwrap_or(""), title.unwrap_or("")])
}

/// A short stable id from some fields: hex of the first 16 bytes of their sha256.
pub(crate) fn content_id(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0x1f]);
    }
    hex(&hasher.finalize()[..16])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn map_feed(feed: Feed, source: &str, kind: SourceKind) -> Vec<Mention> {
    let feed_lang = feed.language.clone();
    feed.entries
        .into_iter()
        .filter_map(|entry| map_entry(entry, source, kind, feed_lang.as_deref()))
        .collect()
}

fn map_entry(
    entry: Entry,
    source: &str,
    kind: SourceKind,
    feed_lang: Option<&str>,
) -> Option<Mention> {
    let title = entry.title.as_ref().map(text_of).filter(|t| !t.is_empty());
    // The full content when the feed has it, so rules see every word; the summary otherwise.
    let content = entry.content.as_ref().and_then(|c| {
        let body = c.body.as_deref()?;
        Some(if c.content_type.to_string().starts_with("text/plain") {
            plain_text(body)
        } else {
            html_to_text(body)
        })
    });
    let summary = entry.summary.as_ref().map(text_of);
    let text = content
        .filter(|t| !t.is_empty())
        .or(summary)
        .unwrap_or_default();
    let url = entry
        .links
        .iter()
        .find(|l| l.rel.as_deref().is_none_or(|r| r == "alternate"))
        .or(entry.links.first())
        .map(|l| l.href.clone());
    let item_id = if entry.id.is_empty() {
        if text.is_empty() {
            tracing::debug!(
                source,
                "skipping a feed entry with no id, link, title or text"
            );
            return None;
        }
        content_id(&["", "", &text])
    } else {
        entry.id
    };
    Some(Mention {
        item_id,
        source: source.to_string(),
        source_kind: kind.as_str().to_string(),
        url,
        title,
        text,
        author: entry
            .authors
            .first()
            .map(|p| p.name.trim().to_string())
            .filter(|n| !n.is_empty()),
        author_reach: None,
        published: entry.published.or(entry.updated),
        lang: entry
            .language
            .or_else(|| feed_lang.map(str::to_string))
            .filter(|l| !l.is_empty()),
    })
}

fn text_of(text: &Text) -> String {
    if text.content_type.to_string().starts_with("text/plain") {
        plain_text(&text.content)
    } else {
        html_to_text(&text.content)
    }
}

/// Plain text as feeds deliver it: entities decoded (many feeds escape twice), spaces collapsed.
fn plain_text(s: &str) -> String {
    collapse_whitespace(&decode_entities(s))
}

/// HTML to readable plain text: tags, comments, scripts and styles dropped, block elements
/// turned into spaces, entities decoded, whitespace collapsed. Not a sanitiser: its output is
/// text, never HTML, so there is nothing left to sanitise.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(lt) = rest.find('<') {
        out.push_str(&decode_entities(&rest[..lt]));
        let after = &rest[lt..];
        if let Some(comment) = after.strip_prefix("<!--") {
            rest = comment.find("-->").map_or("", |end| &comment[end + 3..]);
            continue;
        }
        let Some(gt) = after.find('>') else {
            // A lone '<' is text ("a < b").
            out.push_str(&decode_entities(after));
            rest = "";
            break;
        };
        let tag = &after[1..gt];
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        let starts_like_tag = tag
            .trim_start_matches('/')
            .starts_with(|c: char| c.is_ascii_alphabetic())
            || tag
                .get(..8)
                .is_some_and(|t| t.eq_ignore_ascii_case("!doctype"));
        if !starts_like_tag {
            // "<" followed by something that is not a tag name: "1 <2 and 3> 2", or chat
            // tokens such as "<!channel>" and "<@U123>" that must stay visible so the chat
            // layer escapes them rather than us silently dropping them.
            out.push('<');
            rest = &after[1..];
            continue;
        }
        rest = &after[gt + 1..];
        if (name == "script" || name == "style") && !tag.starts_with('/') {
            let close = format!("</{name}");
            rest = find_ignore_ascii_case(rest, &close)
                .and_then(|i| rest[i..].find('>').map(|j| &rest[i + j + 1..]))
                .unwrap_or("");
            continue;
        }
        if is_block(&name) {
            out.push(' ');
        }
    }
    out.push_str(&decode_entities(rest));
    collapse_whitespace(&out)
}

fn find_ignore_ascii_case(haystack: &str, needle: &str) -> Option<usize> {
    haystack
        .as_bytes()
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

fn is_block(name: &str) -> bool {
    matches!(
        name,
        "br" | "p"
            | "div"
            | "li"
            | "ul"
            | "ol"
            | "tr"
            | "td"
            | "th"
            | "table"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "blockquote"
            | "pre"
            | "hr"
            | "section"
            | "article"
            | "header"
            | "footer"
            | "figure"
            | "figcaption"
            | "img"
    )
}

fn collapse_whitespace(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Decodes numeric entities and the named ones feeds actually use; unknown ones stay as written.
fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let decoded = after
            .find(';')
            .filter(|&semi| semi <= 32)
            .and_then(|semi| decode_entity(&after[..semi]).map(|c| (c, semi)));
        match decoded {
            Some((c, semi)) => {
                out.push(c);
                rest = &after[semi + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn decode_entity(name: &str) -> Option<char> {
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse::<u32>().ok()?,
        };
        return char::from_u32(code).filter(|c| *c != '\0');
    }
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => ' ',
        "ndash" => '–',
        "mdash" => '—',
        "hellip" => '…',
        "lsquo" => '‘',
        "rsquo" => '’',
        "sbquo" => '‚',
        "ldquo" => '“',
        "rdquo" => '”',
        "bdquo" => '„',
        "laquo" => '«',
        "raquo" => '»',
        "copy" => '©',
        "reg" => '®',
        "trade" => '™',
        "euro" => '€',
        "pound" => '£',
        "yen" => '¥',
        "cent" => '¢',
        "bull" => '•',
        "middot" => '·',
        "deg" => '°',
        "times" => '×',
        "auml" => 'ä',
        "ouml" => 'ö',
        "uuml" => 'ü',
        "Auml" => 'Ä',
        "Ouml" => 'Ö',
        "Uuml" => 'Ü',
        "szlig" => 'ß',
        "eacute" => 'é',
        "egrave" => 'è',
        "aacute" => 'á',
        "agrave" => 'à',
        "ccedil" => 'ç',
        "ntilde" => 'ñ',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(xml: &str) -> Vec<Mention> {
        parse_feed(xml.as_bytes(), "feed", SourceKind::Rss, None).unwrap()
    }

    #[test]
    fn html_becomes_plain_text() {
        let cases = [
            (
                "<p>Hello <b>Acme</b> &amp; co</p><p>next</p>",
                "Hello Acme & co next",
            ),
            ("a<br/>b", "a b"),
            ("x<script>alert('acme')</script>y", "xy"),
            ("x<STYLE>p{}</STYLE>y", "xy"),
            ("<!-- acme --> visible", "visible"),
            ("1 < 2 and 3 > 2", "1 < 2 and 3 > 2"),
            ("1 <2 and 3> 2", "1 <2 and 3> 2"),
            (
                "it&#39;s &#x263A; &rsquo;n&nbsp;fine &bogus; &",
                "it's ☺ ’n fine &bogus; &",
            ),
            ("a &lt;b&gt; tag shown as text", "a <b> tag shown as text"),
            ("  lots \n\n of\tspace ", "lots of space"),
            ("unclosed <a href=", "unclosed <a href="),
            ("<!channel> <@U123> hi", "<!channel> <@U123> hi"),
            ("<!DOCTYPE html><p>x</p>", "x"),
        ];
        for (html, want) in cases {
            assert_eq!(html_to_text(html), want, "input {html:?}");
        }
    }

    #[test]
    fn entries_without_guid_get_ids_that_do_not_change() {
        let xml = r#"<rss version="2.0"><channel><title>t</title>
            <item><title>Acme launches</title><link>https://example.com/a</link></item>
            <item><description>only text about acme</description></item>
            <item><title>title only</title></item>
        </channel></rss>"#;
        let first = parse(xml);
        let second = parse(xml);
        assert_eq!(first.len(), 3);
        let ids: Vec<_> = first.iter().map(|m| m.item_id.clone()).collect();
        assert_eq!(
            ids,
            second.iter().map(|m| m.item_id.clone()).collect::<Vec<_>>()
        );
        assert_eq!(
            ids[0],
            content_id(&["https://example.com/a", "Acme launches"])
        );
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(
            unique.len(),
            3,
            "distinct entries need distinct ids: {ids:?}"
        );
    }

    #[test]
    fn guid_is_used_when_present() {
        let xml = r#"<rss version="2.0"><channel><title>t</title>
            <item><guid isPermaLink="false">tag:acme,1</guid><title>x</title></item>
        </channel></rss>"#;
        assert_eq!(parse(xml)[0].item_id, "tag:acme,1");
    }

    #[test]
    fn entries_with_nothing_in_them_are_skipped() {
        let xml = r#"<rss version="2.0"><channel><title>t</title><item></item>
            <item><guid>g</guid><title>kept</title></item></channel></rss>"#;
        let got = parse(xml);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].title.as_deref(), Some("kept"));
    }

    #[test]
    fn malformed_xml_is_a_parse_error_with_the_parser_message() {
        let err = parse_feed(
            b"<rss version=\"2.0\"><channel><item><title>x</titel></item></channel></rss>",
            "feed",
            SourceKind::Rss,
            None,
        )
        .unwrap_err();
        match err {
            SourceError::Parse(msg) => {
                assert!(msg.contains("XML") && msg.contains("titel"), "{msg}")
            }
            other => panic!("expected a parse error, got {other:?}"),
        }
        let err = parse_feed(
            b"<rss version=\"2.0\"><channel><item><guid>1</guid>",
            "f",
            SourceKind::Rss,
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("cut off"), "{err}");
        let err = parse_feed(
            b"<html><body>not a feed</body></html>",
            "f",
            SourceKind::Rss,
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("really a feed"), "{err}");
    }

    /// A billion-laughs document: feed-rs (quick-xml) does not expand DTD entities, so the
    /// reference stays as written and memory stays bounded.
    #[test]
    fn entity_expansion_is_not_performed() {
        let mut doc =
            String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE rss [\n<!ENTITY lol \"lol\">\n");
        for i in 1..=9 {
            let prev = if i == 1 {
                "lol".to_string()
            } else {
                format!("lol{}", i - 1)
            };
            doc.push_str(&format!(
                "<!ENTITY lol{i} \"{}\">\n",
                format!("&{prev};").repeat(10)
            ));
        }
        doc.push_str("]>\n<rss version=\"2.0\"><channel><title>t</title><item><guid>1</guid><title>&lol9;</title><description>&lol9;</description></item></channel></rss>");
        match parse_feed(doc.as_bytes(), "f", SourceKind::Rss, None) {
            Ok(mentions) => {
                for m in &mentions {
                    assert!(
                        m.text.len() < 100,
                        "entity was expanded: {} bytes",
                        m.text.len()
                    );
                    assert!(m.title.as_deref().unwrap_or("").len() < 100);
                }
            }
            Err(SourceError::Parse(_)) => {}
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
}
