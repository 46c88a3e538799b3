//! The `rss` source: fetches a feed (RSS 0.9x/1.0/2.0, Atom, JSON Feed) with the shared
//! `Fetcher` and maps its entries to `Mention`s with ids that stay stable across polls.
//! It does not filter, deduplicate or remember items: the intake does that.

use super::config::{Common, KindConfig};
use super::html::{collapse_whitespace, html_to_text, plain_text};
use super::http::{Fetched, Fetcher};
use super::{Source, SourceError, SourceKind, SourceState};
use crate::analysis::dedup::{is_placeholder_author, unwrap_redirect};
use crate::config::{Reader, Table};
use crate::model::Mention;
use feed_rs::model::{Entry, Feed, FeedType, Link, Person, Text};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// `kind = "rss"`: a feed URL.
#[derive(Debug, Clone, PartialEq)]
pub struct RssConfig {
    pub(crate) common: Common,
    /// The feed's http(s) URL.
    pub(crate) url: String,
}

impl KindConfig for RssConfig {
    const KIND: &'static str = "rss";
    const KEYS: &'static [&'static str] = &["url"];
    const DEFAULT_EVERY: Duration = Duration::from_secs(300);

    fn read(r: &mut Reader, t: &Table, key: &str, common: Common) -> Option<RssConfig> {
        if !t.contains_key("url") {
            let line = r.table_line(t);
            r.problem(
                line,
                &format!("{key}.url"),
                "an rss source needs url = \"https://…/feed.xml\"",
            );
        }
        let url = r.url(t, key, "url", false)?;
        Some(RssConfig { common, url })
    }

    fn common(&self) -> &Common {
        &self.common
    }

    fn build(&self) -> Result<Box<dyn Source>, SourceError> {
        Ok(Box::new(RssSource::new(self)?))
    }
}

/// A feed polled over HTTP(S).
pub(crate) struct RssSource {
    name: String,
    url: String,
    fetcher: Fetcher,
}

impl RssSource {
    /// Needs a non-blank `url`; the URL is checked when fetched, so a bad one shows up as a
    /// poll error naming the problem rather than failing start-up for every other source.
    pub(crate) fn new(spec: &RssConfig) -> Result<RssSource, SourceError> {
        RssSource::with_fetcher(spec, Fetcher::new(&spec.common)?)
    }

    /// Builds the source around a given fetcher (tests pin host names with it).
    pub(crate) fn with_fetcher(
        spec: &RssConfig,
        fetcher: Fetcher,
    ) -> Result<RssSource, SourceError> {
        if spec.url.trim().is_empty() {
            return Err(SourceError::Config(format!(
                "source {:?}: kind \"rss\" needs url = \"https://…\"",
                spec.common.name
            )));
        }
        let url = spec.url.clone();
        Ok(RssSource {
            name: spec.common.name.clone(),
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
    format!("sha256:{}", hex::encode(&Sha256::digest(bytes)[..16]))
}

/// Parses a feed document into mentions. Shared by every source that reads feeds (`rss`, `file`).
/// `base_uri` resolves relative links; it does not take part in ids.
pub(crate) fn parse_feed(
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
    hex::encode(&hasher.finalize()[..16])
}

fn map_feed(feed: Feed, source: &str, kind: SourceKind) -> Vec<Mention> {
    let feed_lang = feed.language.clone();
    // JSON Feed allows HTML only in content_html, so its plain fields are taken as written.
    // XML feeds put HTML into fields feed-rs calls plain (RSS titles, RSS 1.0 descriptions).
    let plain: Plain = if feed.feed_type == FeedType::JSON {
        collapse_whitespace
    } else {
        plain_text
    };
    feed.entries
        .into_iter()
        .filter_map(|entry| map_entry(entry, source, kind, feed_lang.as_deref(), plain))
        .collect()
}

fn map_entry(
    entry: Entry,
    source: &str,
    kind: SourceKind,
    feed_lang: Option<&str>,
    plain: Plain,
) -> Option<Mention> {
    // YouTube's Atom feeds carry a video's title and description only in media:group.
    let media_title = entry.media.iter().find_map(|m| m.title.as_ref());
    let media_description = entry.media.iter().find_map(|m| m.description.as_ref());
    let title = entry
        .title
        .as_ref()
        .or(media_title)
        .map(|t| text_of(t, plain))
        .filter(|t| !t.is_empty());
    // The full content when the feed has it, so rules see every word; the summary otherwise.
    let content = entry.content.as_ref().and_then(|c| {
        let body = c.body.as_deref()?;
        Some(if c.content_type.to_string().starts_with("text/plain") {
            plain(body)
        } else {
            html_to_text(body)
        })
    });
    let text = [
        content,
        entry.summary.as_ref().map(|t| text_of(t, plain)),
        media_description.map(|t| text_of(t, plain)),
    ]
    .into_iter()
    .flatten()
    .find(|t| !t.is_empty())
    .unwrap_or_default();
    // The page a redirect wrapper (Google Alerts' google.com/url?…) leads to, for display and
    // for dedup alike.
    let url = entry
        .links
        .iter()
        .find(|l| l.rel.as_deref().is_none_or(|r| r == "alternate"))
        .or(entry.links.first())
        .map(|l| unwrap_redirect(&l.href));
    let author = author_of(&entry.authors);
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
        author,
        author_reach: None,
        published: entry.published.or(entry.updated),
        lang: entry
            .language
            .or_else(|| feed_lang.map(str::to_string))
            .filter(|l| !l.is_empty()),
        rating: None,
    })
}

/// The entry's author as people name them, or `None` when the feed gives no real one.
///
/// feed-rs reports a real name for `dc:creator`, Atom `<name>` and JSON Feed `name`, but turns
/// RSS 2.0 `<author>` (an e-mail address by the RSS 2.0 spec) into a person named `author`
/// with the element's text as e-mail, and an Atom author without a name into `unknown`. So a
/// real name wins; otherwise the e-mail field is read the way feeds write it:
/// `lawyer@boyer.net (Lawyer Boyer)` and `Lawyer Boyer <lawyer@boyer.net>` give the name, a
/// bare address gives the whole address (unique, so a mute or repeat thread never joins two
/// people who share a local part), and a plain name (many feeds put one there) is kept.
fn author_of(people: &[Person]) -> Option<String> {
    let real = |s: String| Some(s).filter(|s| !is_placeholder_author(s));
    people
        .iter()
        .find_map(|p| real(name_from_contact(&plain_text(&p.name))))
        .or_else(|| {
            people
                .iter()
                .filter_map(|p| p.email.as_deref())
                .find_map(|e| real(name_from_contact(&plain_text(e))))
        })
}

/// `email (Name)`, `Name (mailto:email)` and `Name <email>` → `Name`; the address when the
/// name part is empty or a placeholder; anything else as written.
fn name_from_contact(contact: &str) -> String {
    let contact = contact.trim();
    let bracketed = |open: char, close: char| {
        let at = contact.rfind(open)?;
        let inside = contact[at + open.len_utf8()..].strip_suffix(close)?;
        Some((contact[..at].trim(), inside.trim()))
    };
    let Some((outside, inside)) = bracketed('(', ')').or_else(|| bracketed('<', '>')) else {
        return contact.trim_start_matches("mailto:").to_string();
    };
    let (address, name) = if inside.contains('@') {
        (inside, outside)
    } else if outside.contains('@') {
        (outside, inside)
    } else {
        return contact.to_string();
    };
    let name = name.trim_matches('"').trim();
    if is_placeholder_author(name) {
        address.trim_start_matches("mailto:").to_string()
    } else {
        name.to_string()
    }
}

/// How a feed's plain-text fields become mention text.
type Plain = fn(&str) -> String;

fn text_of(text: &Text, plain: Plain) -> String {
    if text.content_type.to_string().starts_with("text/plain") {
        plain(&text.content)
    } else {
        html_to_text(&text.content)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(xml: &str) -> Vec<Mention> {
        parse_feed(xml.as_bytes(), "feed", SourceKind::Rss, None).unwrap()
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

    fn person(name: &str, email: Option<&str>) -> Person {
        Person {
            name: name.to_string(),
            uri: None,
            email: email.map(str::to_string),
        }
    }

    /// feed-rs's shapes: RSS 2.0 `<author>` → ("author", Some(text)); Atom without a name →
    /// ("unknown", email); dc:creator, Atom and JSON Feed names → (name, None or email).
    #[test]
    fn author_comes_from_the_name_or_the_contact_never_a_placeholder() {
        // (people as feed-rs reports them, the author we want)
        type Case<'a> = (&'a [(&'a str, Option<&'a str>)], Option<&'a str>);
        let cases: &[Case] = &[
            (
                &[("author", Some("lawyer@boyer.net (Lawyer Boyer)"))],
                Some("Lawyer Boyer"),
            ),
            (
                &[("author", Some("lawyer@boyer.net"))],
                Some("lawyer@boyer.net"),
            ),
            (
                &[("author", Some("\"Sam Lee\" <sam@news.example>"))],
                Some("Sam Lee"),
            ),
            (
                &[("author", Some("<sam@news.example>"))],
                Some("sam@news.example"),
            ),
            (&[("author", Some("Jane Roe"))], Some("Jane Roe")),
            (
                &[("author", Some("noreply@blogger.com (Kim Park)"))],
                Some("Kim Park"),
            ),
            (&[("author", Some("noreply@blogger.com"))], None),
            (
                &[("author", Some("x@example.com (unknown)"))],
                Some("x@example.com"),
            ),
            (&[("author", Some("  "))], None),
            (&[("unknown", None)], None),
            (
                &[("unknown", Some("ann@example.com"))],
                Some("ann@example.com"),
            ),
            (&[("", None)], None),
            (
                &[("Rael Dornfest (mailto:rael@oreilly.com)", None)],
                Some("Rael Dornfest"),
            ),
            (&[("Acme Support (EU)", None)], Some("Acme Support (EU)")),
            (
                &[("Mark Pilgrim", Some("f8dy@example.com"))],
                Some("Mark Pilgrim"),
            ),
            // An item with both <author> and <dc:creator>: the real name wins.
            (
                &[("author", Some("desk@news.example")), ("Jane Doe", None)],
                Some("Jane Doe"),
            ),
            (&[("  Anonymous ", None)], None),
            (&[("Jane &amp; John", None)], Some("Jane & John")),
        ];
        for (people, want) in cases {
            let people: Vec<Person> = people.iter().map(|(n, e)| person(n, *e)).collect();
            assert_eq!(author_of(&people).as_deref(), *want, "{people:?}");
        }
    }

    #[test]
    fn rss2_author_element_and_atom_empty_name_give_real_authors_or_none() {
        let rss = parse(
            r#"<rss version="2.0"><channel><title>t</title>
            <item><guid>1</guid><title>a</title><author>lawyer@boyer.net (Lawyer Boyer)</author></item>
            <item><guid>2</guid><title>b</title><author>jdoe@news.example</author></item>
            </channel></rss>"#,
        );
        assert_eq!(rss[0].author.as_deref(), Some("Lawyer Boyer"));
        assert_eq!(rss[1].author.as_deref(), Some("jdoe@news.example"));
        let atom = parse(
            r#"<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title><id>f</id>
            <entry><id>e</id><title>x</title><author><name/></author></entry></feed>"#,
        );
        assert_eq!(atom[0].author, None);
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
