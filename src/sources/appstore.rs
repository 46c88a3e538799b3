//! The `appstore` source: customer reviews of listed apps from Apple's public reviews feed
//! (`/{country}/rss/customerreviews/page={1..10}/id={app}/sortby=mostrecent/json`, no account).
//! The feed keeps the newest ~500 reviews per app and country, 50 per page, newest first; the
//! source reads pages until it reaches its watermark (the newest `updated` it has handed on,
//! less an overlap for reviews that reach the feed late) and remembers the ids it handed on
//! inside the overlap, so nothing repeats or is skipped across polls and restarts.
//! Each review carries its star rating (`Mention.rating`); the judge and the alert use it.
//! It does not filter by rules: every review is a candidate and the rules decide.

use super::config::{Common, KindConfig};
use super::html::collapse_whitespace;
use super::http::{decode_json, Fetcher};
use super::{Source, SourceError, SourceKind, SourceState};
use crate::config::{Reader, Table};
use crate::model::Mention;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

pub(crate) const DEFAULT_URL: &str = "https://itunes.apple.com";
/// The feed serves at most this many pages (page 11 is refused).
pub(crate) const MAX_PAGES: u32 = 10;
/// How far back the very first poll of a feed looks, so a new source does not alert on the
/// whole review history.
pub(crate) const INITIAL_LOOKBACK_SECS: i64 = 3600;
/// Every poll re-reads this much before the watermark: Apple publishes reviews to the feed
/// some time after they were written (`updated`), and this is how late one may be and still
/// be seen. Ids handed on inside it are remembered, so the re-read repeats nothing.
pub(crate) const OVERLAP_SECS: i64 = 6 * 3600;
/// The wait after a throttling answer (403/429/503) without a Retry-After: Apple documents
/// no limit, and polling again at once only prolongs the refusal.
pub(crate) const THROTTLE_WAIT: Duration = Duration::from_secs(300);

/// `kind = "appstore"`: which apps, in which countries' stores, and an API base override.
#[derive(Debug, Clone, PartialEq)]
pub struct AppStoreConfig {
    pub(crate) common: Common,
    /// Numeric App Store ids (the digits after `/id` in an apps.apple.com link).
    pub(crate) apps: Vec<String>,
    /// Two-letter store country codes, lower case (default `["us"]`).
    pub(crate) countries: Vec<String>,
    /// API base (default [`DEFAULT_URL`]).
    pub(crate) url: Option<String>,
}

impl KindConfig for AppStoreConfig {
    const KIND: &'static str = "appstore";
    const KEYS: &'static [&'static str] = &["apps", "countries", "url"];
    const DEFAULT_EVERY: Duration = Duration::from_secs(600);

    fn read(r: &mut Reader, t: &Table, key: &str, common: Common) -> Option<AppStoreConfig> {
        let apps = read_apps(r, t, key);
        let countries = read_countries(r, t, key);
        let url = r.url(t, key, "url", false);
        Some(AppStoreConfig {
            common,
            apps: apps?,
            countries: countries?,
            url,
        })
    }

    fn common(&self) -> &Common {
        &self.common
    }

    fn build(&self) -> Result<Box<dyn Source>, SourceError> {
        Ok(Box::new(AppStoreSource::new(self)?))
    }
}

const APPS_HINT: &str =
    "the number after /id in the app's App Store link, e.g. apps = [284882215] for https://apps.apple.com/us/app/facebook/id284882215";

/// `apps`: numbers or digit strings; each wrong entry is one problem naming it.
fn read_apps(r: &mut Reader, t: &Table, key: &str) -> Option<Vec<String>> {
    let full = format!("{key}.apps");
    let Some(item) = t.get("apps") else {
        let line = r.table_line(t);
        r.problem(
            line,
            &full,
            format!("missing; add apps = [<id>] ({APPS_HINT})"),
        );
        return None;
    };
    let line = r.key_line(t, "apps");
    let Some(arr) = item.as_array() else {
        r.problem(
            line,
            &full,
            format!("must be a list of App Store ids ({APPS_HINT})"),
        );
        return None;
    };
    let mut apps: Vec<String> = Vec::new();
    let mut ok = true;
    for v in arr.iter() {
        let id = match (v.as_integer(), v.as_str()) {
            (Some(i), _) if i > 0 => Some(i.to_string()),
            (_, Some(s)) if is_app_id(s.trim()) => Some(s.trim().to_string()),
            _ => None,
        };
        match id {
            Some(id) => {
                if !apps.contains(&id) {
                    apps.push(id);
                }
            }
            None => {
                ok = false;
                let shown = match (v.as_str(), v.as_integer()) {
                    (Some(s), _) => format!("{s:?}"),
                    (_, Some(i)) => i.to_string(),
                    _ => v.type_name().to_string(),
                };
                r.problem(
                    line,
                    &full,
                    format!("{shown} is not a numeric App Store id; use {APPS_HINT}"),
                );
            }
        }
    }
    if ok && apps.is_empty() {
        r.problem(
            line,
            &full,
            format!("is empty; list at least one app ({APPS_HINT})"),
        );
        return None;
    }
    ok.then_some(apps)
}

fn is_app_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()) && s != "0"
}

/// `countries`: two-letter store codes, default `["us"]`.
fn read_countries(r: &mut Reader, t: &Table, key: &str) -> Option<Vec<String>> {
    if !t.contains_key("countries") {
        return Some(vec!["us".to_string()]);
    }
    let full = format!("{key}.countries");
    let line = r.key_line(t, "countries");
    let listed = r.string_array(t, key, "countries");
    let mut countries: Vec<String> = Vec::new();
    let mut ok = true;
    for c in listed {
        let code = c.trim().to_ascii_lowercase();
        if code.len() == 2 && code.bytes().all(|b| b.is_ascii_lowercase()) {
            if !countries.contains(&code) {
                countries.push(code);
            }
        } else {
            ok = false;
            r.problem(
                line,
                &full,
                format!("{c:?} is not a two-letter store country code; use e.g. countries = [\"us\", \"gb\", \"de\"]"),
            );
        }
    }
    if ok && countries.is_empty() {
        r.problem(
            line,
            &full,
            "is empty; list store countries, e.g. countries = [\"us\"], or leave the key out for [\"us\"]",
        );
        return None;
    }
    ok.then_some(countries)
}

/// Polls the reviews feed of every listed app in every listed country.
pub(crate) struct AppStoreSource {
    name: String,
    base: String,
    apps: Vec<String>,
    countries: Vec<String>,
    fetcher: Fetcher,
    /// Which feeds failed in the last poll that still delivered; see `take_warning`.
    warning: Option<String>,
}

/// The feed document. Apple's JSON rendering of its Atom feed: every value is an object with
/// a `label`; `entry` is an array, a single object when there is one entry, and absent when
/// there are none.
#[derive(Debug, Deserialize)]
struct Document {
    feed: FeedBody,
}

#[derive(Debug, Deserialize)]
struct FeedBody {
    #[serde(default)]
    entry: Option<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
struct Label {
    #[serde(default)]
    label: String,
}

#[derive(Debug, Default, Deserialize)]
struct Author {
    #[serde(default)]
    name: Option<Label>,
}

/// One entry: a review, or (first on page 1 of some feeds) the app itself, which has
/// `im:name` and no `im:rating`.
#[derive(Debug, Default, Deserialize)]
struct Entry {
    #[serde(default)]
    id: Option<Label>,
    #[serde(default, rename = "im:rating")]
    rating: Option<Label>,
    #[serde(default)]
    author: Option<Author>,
    #[serde(default)]
    title: Option<Label>,
    #[serde(default)]
    content: Option<Label>,
    #[serde(default)]
    updated: Option<Label>,
}

/// A review read from the feed, before it becomes a mention.
#[derive(Debug, Clone, PartialEq)]
struct Review {
    id: String,
    rating: Option<u8>,
    author: Option<String>,
    title: Option<String>,
    text: String,
    updated: Option<DateTime<Utc>>,
}

/// The reviews on one page (the app's own entry and anything without an id left out).
fn parse_page(bytes: &[u8]) -> Result<Vec<Review>, SourceError> {
    let doc: Document = decode_json(bytes, "the App Store reviews feed")?;
    let entries: Vec<serde_json::Value> = match doc.feed.entry {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::Array(a)) => a,
        Some(one @ serde_json::Value::Object(_)) => vec![one],
        Some(other) => {
            return Err(SourceError::Parse(format!(
                "malformed JSON from the App Store reviews feed: feed.entry is {other}, not a list"
            )))
        }
    };
    let mut reviews = Vec::new();
    for value in entries {
        let entry: Entry = serde_json::from_value(value).map_err(|e| {
            SourceError::Parse(format!(
                "malformed JSON from the App Store reviews feed: an entry: {e}"
            ))
        })?;
        if let Some(review) = review_of(entry) {
            reviews.push(review);
        }
    }
    Ok(reviews)
}

fn review_of(entry: Entry) -> Option<Review> {
    // The app's own entry has no rating; a review always has one.
    let rating_label = entry.rating?.label;
    let id = entry.id.map(|l| l.label.trim().to_string())?;
    if id.is_empty() {
        return None;
    }
    let rating = rating_label
        .trim()
        .parse::<u8>()
        .ok()
        .filter(|r| (1..=5).contains(r));
    let text = entry
        .content
        .map(|c| collapse_whitespace(&c.label))
        .unwrap_or_default();
    let title = entry
        .title
        .map(|t| collapse_whitespace(&t.label))
        .filter(|t| !t.is_empty());
    Some(Review {
        id,
        rating,
        author: entry
            .author
            .and_then(|a| a.name)
            .map(|n| n.label.trim().to_string())
            .filter(|n| !n.is_empty()),
        title,
        text,
        updated: entry
            .updated
            .and_then(|u| DateTime::parse_from_rfc3339(u.label.trim()).ok())
            .map(|d| d.with_timezone(&Utc)),
    })
}

/// Why one feed could not be read: `Skip` feeds are reported and the others still read.
enum FeedError {
    Skip(String),
    Fatal(SourceError),
}

impl AppStoreSource {
    pub(crate) fn new(spec: &AppStoreConfig) -> Result<AppStoreSource, SourceError> {
        if spec.apps.is_empty() || spec.countries.is_empty() {
            return Err(SourceError::Config(format!(
                "source {:?}: kind \"appstore\" needs apps = [<App Store id>]",
                spec.common.name
            )));
        }
        Ok(AppStoreSource {
            name: spec.common.name.clone(),
            base: spec
                .url
                .clone()
                .unwrap_or_else(|| DEFAULT_URL.to_string())
                .trim_end_matches('/')
                .to_string(),
            apps: spec.apps.clone(),
            countries: spec.countries.clone(),
            fetcher: Fetcher::new(&spec.common)?,
            warning: None,
        })
    }

    fn page_url(&self, app: &str, country: &str, page: u32) -> String {
        format!(
            "{}/{country}/rss/customerreviews/page={page}/id={app}/sortby=mostrecent/json",
            self.base
        )
    }

    async fn page(&self, app: &str, country: &str, page: u32) -> Result<Vec<Review>, FeedError> {
        let url = self.page_url(app, country, page);
        let response = self
            .fetcher
            .get(&url, &[("accept", "application/json")])
            .await
            .map_err(|e| match e {
                SourceError::Status {
                    status: status @ (403 | 429 | 503),
                    retry_after,
                } => {
                    let wait = retry_after.unwrap_or(THROTTLE_WAIT);
                    tracing::warn!(
                        source = %self.name,
                        app,
                        country,
                        status,
                        wait_secs = wait.as_secs(),
                        "Apple's reviews feed is throttling (it documents no limit); backing off"
                    );
                    FeedError::Fatal(SourceError::RateLimited { wait })
                }
                SourceError::Status {
                    status: status @ (400 | 404),
                    ..
                } => FeedError::Skip(format!(
                    "app {app} has no reviews feed in the {country:?} store (HTTP {status}); check that {app} is the number after /id in the app's App Store link and that the app is sold in that country"
                )),
                SourceError::Parse(m) => {
                    FeedError::Fatal(SourceError::Parse(format!("app {app} ({country}): {m}")))
                }
                other => FeedError::Fatal(other),
            })?;
        parse_page(&response.bytes).map_err(|e| match e {
            SourceError::Parse(m) => {
                FeedError::Fatal(SourceError::Parse(format!("app {app} ({country}): {m}")))
            }
            other => FeedError::Fatal(other),
        })
    }

    /// Reads one app's feed in one country from page 1 until a page reaches back to `since`
    /// (or the feed ends), and returns what is new with the feed's new state.
    async fn read_feed(
        &self,
        app: &str,
        country: &str,
        state: &SourceState,
        now: i64,
    ) -> Result<(Vec<Mention>, FeedState), FeedError> {
        let key = FeedKey::new(app, country);
        let number = |k: &str| -> Option<i64> { state.extra.get(k).and_then(|s| s.parse().ok()) };
        let watermark = number(&key.watermark);
        // The first poll's lookback stays the floor: the overlap must not reach back to
        // reviews older than it, which were never meant to alert.
        let floor = number(&key.floor).unwrap_or(now - INITIAL_LOOKBACK_SECS);
        let mut recent = super::seen::decode(state.extra.get(&key.recent));
        let since = watermark.map_or(floor, |w| (w - OVERLAP_SECS).max(floor));
        let mut reviews: Vec<Review> = Vec::new();
        let mut reached = false;
        for page in 1..=MAX_PAGES {
            let got = match self.page(app, country, page).await {
                // Past its last page the feed may refuse instead of answering empty: the
                // app exists (page 1 was read), so that is the end of its reviews.
                Err(FeedError::Skip(_)) if page > 1 => Vec::new(),
                other => other?,
            };
            if got.is_empty() {
                reached = true;
                break;
            }
            let oldest = got
                .iter()
                .filter_map(|r| r.updated.map(|u| u.timestamp()))
                .min();
            reviews.extend(got);
            if oldest.is_some_and(|o| o < since) {
                reached = true;
                break;
            }
        }
        if !reached {
            tracing::warn!(
                source = %self.name,
                app,
                country,
                "more reviews since the last poll than the feed's 10 pages hold; older ones cannot be read (poll more often)"
            );
        }
        let mut newest = watermark.unwrap_or(since);
        let mut mentions = Vec::new();
        for review in reviews {
            let ts = review.updated.map(|u| u.timestamp());
            if ts.is_some_and(|t| t < since) || recent.contains_key(&review.id) {
                continue;
            }
            let at = ts.unwrap_or(now);
            newest = newest.max(at);
            recent.insert(review.id.clone(), at);
            mentions.push(to_mention(review, &self.name, app, country));
        }
        recent.retain(|_, at| *at >= newest - OVERLAP_SECS);
        Ok((
            mentions,
            FeedState {
                key,
                floor,
                watermark: newest,
                recent,
            },
        ))
    }
}

/// The state keys of one app's feed in one country.
struct FeedKey {
    floor: String,
    watermark: String,
    recent: String,
}

impl FeedKey {
    fn new(app: &str, country: &str) -> FeedKey {
        FeedKey {
            floor: format!("floor:{app}:{country}"),
            watermark: format!("watermark:{app}:{country}"),
            recent: format!("recent:{app}:{country}"),
        }
    }
}

struct FeedState {
    key: FeedKey,
    /// Where the first poll started reading (its lookback).
    floor: i64,
    watermark: i64,
    recent: BTreeMap<String, i64>,
}

impl FeedState {
    fn save(self, state: &mut SourceState) {
        state.extra.insert(self.key.floor, self.floor.to_string());
        state
            .extra
            .insert(self.key.watermark, self.watermark.to_string());
        if self.recent.is_empty() {
            state.extra.remove(&self.key.recent);
        } else {
            let joined: Vec<String> = self
                .recent
                .iter()
                .map(|(id, ts)| format!("{id}@{ts}"))
                .collect();
            state.extra.insert(self.key.recent, joined.join(" "));
        }
    }
}

#[async_trait::async_trait]
impl Source for AppStoreSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> SourceKind {
        SourceKind::Appstore
    }

    async fn poll(&mut self, state: &mut SourceState) -> Result<Vec<Mention>, SourceError> {
        self.warning = None;
        let now = Utc::now().timestamp();
        let mut mentions = Vec::new();
        let mut skipped: Vec<String> = Vec::new();
        let mut read = Vec::new();
        for app in &self.apps {
            for country in &self.countries {
                match self.read_feed(app, country, state, now).await {
                    Ok((found, feed)) => {
                        mentions.extend(found);
                        read.push(feed);
                    }
                    Err(FeedError::Skip(why)) => {
                        tracing::warn!(source = %self.name, app = %app, country = %country, problem = %why, "reviews feed skipped");
                        skipped.push(why);
                    }
                    Err(FeedError::Fatal(e)) => return Err(e),
                }
            }
        }
        if read.is_empty() {
            return Err(SourceError::Config(skipped.join("; ")));
        }
        if !skipped.is_empty() {
            self.warning = Some(format!(
                "{} of {} review feeds failed: {}",
                skipped.len(),
                skipped.len() + read.len(),
                skipped.join("; ")
            ));
        }
        for feed in read {
            feed.save(state);
        }
        Ok(mentions)
    }

    fn take_warning(&mut self) -> Option<String> {
        self.warning.take()
    }
}

/// The review as a mention. Apple has no page per review, so the link is the app's reviews
/// page with the review id as fragment: it opens where people read reviews, and two reviews
/// of one app keep distinct canonical URLs (a fragment with digits names an item).
fn to_mention(review: Review, source: &str, app: &str, country: &str) -> Mention {
    Mention {
        url: Some(format!(
            "https://apps.apple.com/{country}/app/id{app}?see-all=reviews#review-{}",
            review.id
        )),
        item_id: review.id,
        source: source.to_string(),
        source_kind: SourceKind::Appstore.as_str().to_string(),
        title: review.title,
        text: review.text,
        author: review.author,
        author_reach: None,
        published: review.updated,
        lang: None,
        rating: review.rating,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A review entry as the feed sends it (fields and order as in Apple's JSON feed).
    fn entry(id: &str, rating: &str, updated: &str) -> String {
        format!(
            r#"{{"author":{{"uri":{{"label":"https://itunes.apple.com/us/reviews/id1"}},"name":{{"label":"dana"}},"label":""}},
            "updated":{{"label":"{updated}"}},"im:rating":{{"label":"{rating}"}},"im:version":{{"label":"4.2"}},
            "id":{{"label":"{id}"}},"title":{{"label":"Crashes  on start"}},
            "content":{{"label":"Since the update\nit crashes.","attributes":{{"type":"text"}}}},
            "link":{{"attributes":{{"rel":"related","href":"https://itunes.apple.com/us/review?id=9&type=Purple%20Software"}}}},
            "im:voteSum":{{"label":"0"}},"im:contentType":{{"attributes":{{"term":"Application","label":"Application"}}}},"im:voteCount":{{"label":"0"}}}}"#
        )
    }

    #[test]
    fn a_list_a_single_object_and_no_entry_all_parse() {
        let one = entry("11", "2", "2026-09-10T11:02:00-07:00");
        let list = format!(
            r#"{{"feed":{{"entry":[{one},{}]}}}}"#,
            entry("12", "5", "2026-09-10T10:00:00-07:00")
        );
        let reviews = parse_page(list.as_bytes()).unwrap();
        assert_eq!(reviews.len(), 2);
        let r = &reviews[0];
        assert_eq!(r.id, "11");
        assert_eq!(r.rating, Some(2));
        assert_eq!(r.author.as_deref(), Some("dana"));
        assert_eq!(r.title.as_deref(), Some("Crashes on start"));
        assert_eq!(r.text, "Since the update it crashes.");
        assert_eq!(
            r.updated.unwrap().to_rfc3339(),
            "2026-09-10T18:02:00+00:00",
            "the offset is applied"
        );

        let single = format!(r#"{{"feed":{{"entry":{one}}}}}"#);
        assert_eq!(parse_page(single.as_bytes()).unwrap().len(), 1);

        let empty = r#"{"feed":{"author":{"name":{"label":"iTunes Store"}},"updated":{"label":"2026-09-10T11:02:00-07:00"}}}"#;
        assert!(parse_page(empty.as_bytes()).unwrap().is_empty());
    }

    #[test]
    fn the_apps_own_entry_is_not_a_review() {
        let app = r#"{"im:name":{"label":"Acme"},"rights":{"label":"© Acme"},
            "id":{"label":"https://apps.apple.com/us/app/acme/id9","attributes":{"im:id":"9","im:bundleId":"com.acme"}},
            "title":{"label":"Acme - Acme Inc."}}"#;
        let body = format!(
            r#"{{"feed":{{"entry":[{app},{}]}}}}"#,
            entry("12", "1", "2026-09-10T10:00:00-07:00")
        );
        let reviews = parse_page(body.as_bytes()).unwrap();
        assert_eq!(
            reviews.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["12"]
        );
    }

    #[test]
    fn ratings_outside_one_to_five_are_no_rating() {
        for (label, want) in [
            ("1", Some(1)),
            ("5", Some(5)),
            ("0", None),
            ("6", None),
            ("x", None),
        ] {
            let body = format!(
                r#"{{"feed":{{"entry":{}}}}}"#,
                entry("1", label, "2026-09-10T10:00:00Z")
            );
            assert_eq!(
                parse_page(body.as_bytes()).unwrap()[0].rating,
                want,
                "{label}"
            );
        }
    }

    #[test]
    fn not_a_feed_is_a_parse_error() {
        for body in [
            &b"<html>502</html>"[..],
            b"{}",
            br#"{"feed":{"entry":"x"}}"#,
        ] {
            assert!(
                matches!(parse_page(body), Err(SourceError::Parse(_))),
                "{body:?}"
            );
        }
    }

    #[test]
    fn mentions_link_to_the_apps_reviews_with_the_review_id() {
        let body = format!(
            r#"{{"feed":{{"entry":{}}}}}"#,
            entry("14545746087", "2", "2026-09-10T10:00:00Z")
        );
        let review = parse_page(body.as_bytes()).unwrap().remove(0);
        let m = to_mention(review, "ios", "1592550875", "in");
        assert_eq!(
            m.url.as_deref(),
            Some("https://apps.apple.com/in/app/id1592550875?see-all=reviews#review-14545746087")
        );
        assert_eq!(m.item_id, "14545746087");
        assert_eq!(m.rating, Some(2));
        assert_eq!(m.source_kind, "appstore");
    }
}
