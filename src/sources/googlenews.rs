//! The `googlenews` source: a preset of the `rss` source for Google News search feeds. It
//! builds the feed URL from `query`, `language` and `country`
//! (`/rss/search?q=…&hl=en-US&gl=US&ceid=US:en`), parses it with the rss source's parser, and
//! then does what only Google News needs: article links are unwrapped to the publisher's URL
//! where the link carries it (`analysis::dedup::unwrap_redirect`, offline), the publisher named
//! by the item's `<source url="…">` becomes the mention's author, and its " - Publisher" title
//! suffix is dropped.
//! The feed is a relevance-ranked search without a cursor, so the source remembers which items
//! it has seen; the first poll hands on only the last hour's items. It never calls Google to
//! resolve an opaque link.

use super::config::{required_query, Common, KindConfig};
use super::html::decode_entities;
use super::http::{Fetched, Fetcher};
use super::rss::{content_id, parse_feed};
use super::{Source, SourceError, SourceKind, SourceState};
use crate::config::{Reader, Table};
use crate::model::Mention;
use chrono::Utc;
use reqwest::Url;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

pub(crate) const DEFAULT_URL: &str = "https://news.google.com";
/// How far back the very first poll looks, so a new source does not alert on old news.
pub(crate) const INITIAL_LOOKBACK_SECS: i64 = 3600;
/// The feed is ranked by relevance, not date, so older articles drift in and out of it; an
/// unseen item older than this is old news resurfacing, not a new mention.
pub(crate) const MAX_AGE_SECS: i64 = 2 * 86_400;
/// How long an item id is remembered after it was last in the feed.
pub(crate) const REMEMBER_SECS: i64 = 7 * 86_400;
/// The wait after Google refuses (429/503, its "unusual traffic" page) without a Retry-After.
pub(crate) const THROTTLE_WAIT: Duration = Duration::from_secs(900);

const SEEN_KEY: &str = "seen";

/// `kind = "googlenews"`: a Google News search, its edition, and a base URL override.
#[derive(Debug, Clone, PartialEq)]
pub struct GoogleNewsConfig {
    pub(crate) common: Common,
    /// Google News search syntax (`"acme corp" OR acme -hiring`, `when:1d`), sent as written.
    pub(crate) query: String,
    /// Interface language, `en` (default), `de`, `pt`, …
    pub(crate) language: String,
    /// Edition country, `US` (default), `GB`, `DE`, …
    pub(crate) country: String,
    /// Base (default [`DEFAULT_URL`]); `/rss/search?…` is appended.
    pub(crate) url: Option<String>,
}

impl KindConfig for GoogleNewsConfig {
    const KIND: &'static str = "googlenews";
    const KEYS: &'static [&'static str] = &["query", "language", "country", "url"];
    const DEFAULT_EVERY: Duration = Duration::from_secs(600);

    fn read(r: &mut Reader, t: &Table, key: &str, common: Common) -> Option<GoogleNewsConfig> {
        let query = required_query(r, t, key, "it is what Google News is searched for");
        let language = match r.string(t, key, "language") {
            None => Some("en".to_string()),
            Some(l) if is_language(l.trim()) => Some(l.trim().to_string()),
            Some(l) => {
                let line = r.key_line(t, "language");
                r.problem(
                    line,
                    &format!("{key}.language"),
                    format!("{l:?} is not a language code; use e.g. language = \"en\" or \"de\""),
                );
                None
            }
        };
        let country = match r.string(t, key, "country") {
            None => Some("US".to_string()),
            Some(c) if c.trim().len() == 2 && c.trim().bytes().all(|b| b.is_ascii_alphabetic()) => {
                Some(c.trim().to_ascii_uppercase())
            }
            Some(c) => {
                let line = r.key_line(t, "country");
                r.problem(
                    line,
                    &format!("{key}.country"),
                    format!("{c:?} is not a two-letter country code; use e.g. country = \"US\" or \"GB\""),
                );
                None
            }
        };
        let url = r.url(t, key, "url", false);
        Some(GoogleNewsConfig {
            common,
            query: query?,
            language: language?,
            country: country?,
            url,
        })
    }

    fn common(&self) -> &Common {
        &self.common
    }

    fn build(&self) -> Result<Box<dyn Source>, SourceError> {
        Ok(Box::new(GoogleNewsSource::new(self)?))
    }
}

/// `en`, `pt-BR`, `zh-Hans`: letters, optionally a dash and a region or script.
fn is_language(l: &str) -> bool {
    let mut parts = l.split('-');
    let main = parts.next().unwrap_or_default();
    (2..=3).contains(&main.len())
        && main.bytes().all(|b| b.is_ascii_alphabetic())
        && parts.all(|p| (2..=4).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// The search feed's URL: `{base}/rss/search?q=…&hl={language}-{country}&gl={country}&ceid={country}:{language}`,
/// the form Google News itself links to from its search page's RSS button. A language that
/// already names a region (`pt-BR`) is sent as `hl` unchanged.
pub(crate) fn feed_url(spec: &GoogleNewsConfig) -> Result<String, SourceError> {
    let base = spec
        .url
        .as_deref()
        .unwrap_or(DEFAULT_URL)
        .trim_end_matches('/');
    let mut url = Url::parse(&format!("{base}/rss/search"))
        .map_err(|e| SourceError::Config(format!("googlenews url is not valid: {e}")))?;
    let lang = spec.language.split('-').next().unwrap_or("en");
    let hl = if spec.language.contains('-') {
        spec.language.clone()
    } else {
        format!("{}-{}", spec.language, spec.country)
    };
    url.query_pairs_mut()
        .append_pair("q", spec.query.trim())
        .append_pair("hl", &hl)
        .append_pair("gl", &spec.country)
        .append_pair("ceid", &format!("{}:{lang}", spec.country));
    Ok(url.to_string())
}

/// Polls one Google News search feed.
pub(crate) struct GoogleNewsSource {
    name: String,
    url: String,
    fetcher: Fetcher,
}

impl GoogleNewsSource {
    pub(crate) fn new(spec: &GoogleNewsConfig) -> Result<GoogleNewsSource, SourceError> {
        if spec.query.trim().is_empty() {
            return Err(SourceError::Config(format!(
                "source {:?}: kind \"googlenews\" needs query = \"…\"",
                spec.common.name
            )));
        }
        Ok(GoogleNewsSource {
            name: spec.common.name.clone(),
            url: feed_url(spec)?,
            fetcher: Fetcher::new(&spec.common)?,
        })
    }
}

#[async_trait::async_trait]
impl Source for GoogleNewsSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> SourceKind {
        SourceKind::Googlenews
    }

    async fn poll(&mut self, state: &mut SourceState) -> Result<Vec<Mention>, SourceError> {
        let fetched = self.fetcher.fetch(&self.url, state).await.map_err(|e| match e {
            SourceError::Status {
                status: status @ (429 | 503),
                retry_after,
            } => {
                let wait = retry_after.unwrap_or(THROTTLE_WAIT);
                tracing::warn!(source = %self.name, status, wait_secs = wait.as_secs(), "Google News refused the feed (it does this when polled too often); backing off");
                SourceError::RateLimited { wait }
            }
            other => other,
        })?;
        let (bytes, etag, last_modified) = match fetched {
            Fetched::NotModified => return Ok(Vec::new()),
            Fetched::Body {
                bytes,
                etag,
                last_modified,
            } => (bytes, etag, last_modified),
        };
        let digest = format!("sha256:{}", hex::encode(&Sha256::digest(&bytes)[..16]));
        if state.cursor.as_deref() == Some(digest.as_str()) {
            return Ok(Vec::new());
        }
        let name = self.name.clone();
        let url = self.url.clone();
        let items = tokio::task::spawn_blocking(move || {
            let mentions = parse_feed(&bytes, &name, SourceKind::Googlenews, Some(&url))?;
            Ok::<_, SourceError>((mentions, publishers(&bytes)))
        })
        .await
        .map_err(|e| SourceError::Parse(format!("feed parser stopped: {e}")))??;
        let (mentions, publishers) = items;

        let now = Utc::now().timestamp();
        let first_poll = state.cursor.is_none();
        let mut seen = read_seen(state);
        let mut out = Vec::new();
        for mut m in mentions {
            let key = content_id(&[&m.item_id]);
            let known = seen.insert(key, now).is_some();
            let published = m.published.map_or(now, |p| p.timestamp());
            let oldest = if first_poll {
                now - INITIAL_LOOKBACK_SECS
            } else {
                now - MAX_AGE_SECS
            };
            if known || published < oldest {
                continue;
            }
            if let Some(p) = publishers.get(m.item_id.trim()) {
                apply_publisher(&mut m, p);
            }
            out.push(m);
        }
        seen.retain(|_, last| *last >= now - REMEMBER_SECS);
        write_seen(state, &seen);
        state.etag = etag;
        state.last_modified = last_modified;
        state.cursor = Some(digest);
        Ok(out)
    }
}

/// The publisher of an item, from `<source url="https://publisher.example">Publisher</source>`.
/// Its `url` is the publisher's home page, not the article, so it does not replace the link.
#[derive(Debug, Clone, PartialEq, Default)]
struct Publisher {
    name: String,
}

/// The publisher as author (where the feed named no author), and the title without Google's
/// " - Publisher" suffix, so the headline matches the same story from other sources.
fn apply_publisher(m: &mut Mention, p: &Publisher) {
    if p.name.is_empty() {
        return;
    }
    if let Some(title) = &m.title {
        if let Some(head) = title.strip_suffix(&format!(" - {}", p.name)) {
            if !head.trim().is_empty() {
                m.title = Some(head.trim().to_string());
            }
        }
    }
    if m.author.is_none() {
        m.author = Some(p.name.clone());
    }
}

/// Each item's publisher by its `guid` (the id the rss parser gives the mention). feed-rs
/// does not read RSS 2.0's `<source>`, so this is a second, small pass over the same bytes.
fn publishers(bytes: &[u8]) -> HashMap<String, Publisher> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(bytes);
    let mut buf = Vec::new();
    let mut out = HashMap::new();
    let mut in_item = false;
    let mut field: Option<&'static str> = None;
    let mut guid = String::new();
    let mut publisher = Publisher::default();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) => match e.local_name().as_ref() {
                b"item" => {
                    in_item = true;
                    guid.clear();
                    publisher = Publisher::default();
                }
                b"guid" if in_item => field = Some("guid"),
                b"source" if in_item => field = Some("source"),
                _ => field = None,
            },
            // Entity references arrive as their own events; they are kept as `&name;` and
            // decoded once the element is complete.
            Ok(Event::GeneralRef(r)) => {
                let text = format!("&{};", r.decode().unwrap_or_default());
                match field {
                    Some("guid") => guid.push_str(&text),
                    Some("source") => publisher.name.push_str(&text),
                    _ => {}
                }
            }
            Ok(Event::Text(t)) => {
                let text = t.decode().map(|s| s.into_owned()).unwrap_or_default();
                match field {
                    Some("guid") => guid.push_str(&text),
                    Some("source") => publisher.name.push_str(&text),
                    _ => {}
                }
            }
            Ok(Event::CData(t)) => {
                let text = String::from_utf8_lossy(&t).into_owned();
                match field {
                    Some("guid") => guid.push_str(&text),
                    Some("source") => publisher.name.push_str(&text),
                    _ => {}
                }
            }
            Ok(Event::End(e)) => {
                field = None;
                if e.local_name().as_ref() == b"item" {
                    in_item = false;
                    publisher.name = decode_entities(publisher.name.trim());
                    let id = decode_entities(guid.trim());
                    if !id.is_empty() {
                        out.insert(id, std::mem::take(&mut publisher));
                    }
                }
            }
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => {}
        }
        buf.clear();
    }
    out
}

/// Item ids (hashed: Google's are up to 300 characters) with the last time they were in
/// the feed: `hash@ts hash@ts …`.
fn read_seen(state: &SourceState) -> BTreeMap<String, i64> {
    super::seen::decode(state.extra.get(SEEN_KEY))
}

fn write_seen(state: &mut SourceState, seen: &BTreeMap<String, i64>) {
    if seen.is_empty() {
        state.extra.remove(SEEN_KEY);
        return;
    }
    let joined: Vec<String> = seen.iter().map(|(id, ts)| format!("{id}@{ts}")).collect();
    state.extra.insert(SEEN_KEY.to_string(), joined.join(" "));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(query: &str, language: &str, country: &str) -> GoogleNewsConfig {
        GoogleNewsConfig {
            common: Common::new("gn", Duration::from_secs(600)),
            query: query.into(),
            language: language.into(),
            country: country.into(),
            url: None,
        }
    }

    #[test]
    fn the_feed_url_names_the_edition_and_encodes_the_query() {
        assert_eq!(
            feed_url(&spec("\"acme corp\" OR acme -hiring", "en", "US")).unwrap(),
            "https://news.google.com/rss/search?q=%22acme+corp%22+OR+acme+-hiring&hl=en-US&gl=US&ceid=US%3Aen"
        );
        assert_eq!(
            feed_url(&spec("acme & co", "de", "DE")).unwrap(),
            "https://news.google.com/rss/search?q=acme+%26+co&hl=de-DE&gl=DE&ceid=DE%3Ade"
        );
        assert_eq!(
            feed_url(&spec("acme", "pt-BR", "BR")).unwrap(),
            "https://news.google.com/rss/search?q=acme&hl=pt-BR&gl=BR&ceid=BR%3Apt"
        );
        let mut s = spec("acme", "en", "GB");
        s.url = Some("http://127.0.0.1:9/".into());
        assert_eq!(
            feed_url(&s).unwrap(),
            "http://127.0.0.1:9/rss/search?q=acme&hl=en-GB&gl=GB&ceid=GB%3Aen"
        );
    }

    #[test]
    fn languages_are_checked() {
        for ok in ["en", "de", "pt-BR", "zh-Hans", "fil"] {
            assert!(is_language(ok), "{ok}");
        }
        for bad in ["", "e", "english", "en_US", "en-", "e1"] {
            assert!(!is_language(bad), "{bad}");
        }
    }

    #[test]
    fn publishers_are_read_per_guid() {
        let xml = br#"<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"><channel>
            <item><title>Acme recalls routers - The Example Times</title>
            <link>https://news.google.com/rss/articles/CBMiX?oc=5</link>
            <guid isPermaLink="false">CBMiX</guid>
            <source url="https://www.example.com">The Example Times</source></item>
            <item><title>No source</title><guid isPermaLink="false">CBMiY</guid></item>
            <item><guid>CBMiZ</guid><source url="https://att.example">AT&amp;T &#8211; News</source></item>
        </channel></rss>"#;
        let p = publishers(xml);
        assert_eq!(
            p["CBMiX"],
            Publisher {
                name: "The Example Times".into()
            }
        );
        assert_eq!(p["CBMiY"].name, "");
        assert_eq!(p["CBMiZ"].name, "AT&T \u{2013} News");
    }

    #[test]
    fn the_publisher_suffix_leaves_the_title_and_becomes_the_author() {
        let mut m = Mention {
            item_id: "x".into(),
            source: "gn".into(),
            source_kind: "googlenews".into(),
            url: None,
            title: Some("Acme - the company - recalls routers - The Example Times".into()),
            text: String::new(),
            author: None,
            author_reach: None,
            published: None,
            lang: None,
            rating: None,
        };
        let p = Publisher {
            name: "The Example Times".into(),
        };
        apply_publisher(&mut m, &p);
        assert_eq!(
            m.title.as_deref(),
            Some("Acme - the company - recalls routers")
        );
        assert_eq!(m.author.as_deref(), Some("The Example Times"));
    }
}
