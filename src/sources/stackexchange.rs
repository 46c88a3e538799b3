//! The `stackexchange` source: questions and answers that mention `query` on the listed Stack
//! Exchange sites, from the Stack Exchange API 2.3 (`/search/excerpts`, which returns both
//! kinds with `item_type`). Each search (site × search word) is read oldest first from a
//! `creation_date` watermark with an overlap and the ids seen near it, so a poll that stops
//! early (page budget, the API's `backoff`) still makes progress and nothing repeats.
//! The searches share one poll's request budget and take turns: each poll starts where the
//! last one ran out (kept in the state), and one that cannot reach them all says so.
//! The API's daily quota (`quota_remaining` of `quota_max` in every answer) is shown through
//! `Source::quota`; the source stops before it is used up, and obeys `backoff` (no request to
//! the method before it passes).
//! It does not filter by rules, read comments, or log the key.

use super::config::{required_query, Common, KindConfig};
use super::html::html_to_text;
use super::http::{decode_json, ApiReply, Fetcher};
use super::{Quota, Source, SourceError, SourceKind, SourceState};
use crate::config::{Reader, Table};
use crate::model::{Mention, Secret};
use chrono::{DateTime, Utc};
use reqwest::Url;
use serde::Deserialize;
use std::time::Duration;
use tokio::time::Instant;

pub(crate) const DEFAULT_URL: &str = "https://api.stackexchange.com";
/// The largest page the API serves.
pub(crate) const PAGE_SIZE: u32 = 100;
/// Requests one poll may make across all its searches; the next poll continues with the
/// searches this one did not reach.
pub(crate) const MAX_REQUESTS_PER_POLL: u32 = 10;
/// Every read starts this far before the watermark: the search index lags a little behind
/// `creation_date`, and a late item inside this window is still found.
pub(crate) const OVERLAP_SECS: i64 = 600;
/// How far back the first poll of a new source looks.
pub(crate) const INITIAL_LOOKBACK_SECS: i64 = 3600;
/// Once `quota_remaining` reaches zero, no request for this long; the API does not say when
/// the quota refills, and a request made while it is empty answers how long is left.
pub(crate) const QUOTA_PROBE: Duration = Duration::from_secs(3600);
/// The longest wait taken from an answer (`backoff`, "available in N seconds"): one day.
const MAX_SERVER_WAIT: Duration = crate::retry::DEFAULT_MAX_RETRY_AFTER;
/// Wait after a `throttle_violation` that does not say for how long.
const THROTTLE_WAIT: Duration = Duration::from_secs(60);
/// The daily quota per IP without and with an app key (api.stackexchange.com/docs/throttle).
pub(crate) const DAILY_QUOTA_WITHOUT_KEY: u64 = 300;
pub(crate) const DAILY_QUOTA_WITH_KEY: u64 = 10_000;
/// The state key naming the search the next poll starts with (`"{site} {word}"`).
const NEXT_SEARCH_KEY: &str = "next search";
/// Ids remembered per search at most (the overlap window needs far fewer).
const MAX_SEEN: usize = 2000;

const KEY_HINT: &str = "register an app at stackapps.com/apps/oauth/register for a free key and set key = \"${STACKEXCHANGE_KEY}\"";

/// `kind = "stackexchange"`: what to search for, on which sites, with an optional app key.
#[derive(Debug, Clone, PartialEq)]
pub struct StackExchangeConfig {
    pub(crate) common: Common,
    pub(crate) query: String,
    /// Site names as the API takes them (`stackoverflow`, `superuser`, `math`).
    pub(crate) sites: Vec<String>,
    /// An app key (stackapps.com): 10,000 requests a day per IP instead of 300.
    pub(crate) key: Option<Secret>,
    /// API base (default [`DEFAULT_URL`]).
    pub(crate) url: Option<String>,
}

impl KindConfig for StackExchangeConfig {
    const KIND: &'static str = "stackexchange";
    const KEYS: &'static [&'static str] = &["query", "sites", "key", "url"];
    /// One request per site and search word every 10 minutes stays under the keyless 300
    /// requests a day for two sites.
    const DEFAULT_EVERY: Duration = Duration::from_secs(600);

    fn read(r: &mut Reader, t: &Table, key: &str, common: Common) -> Option<StackExchangeConfig> {
        let query = required_query(r, t, key, "it is what the sites are searched for");
        let url = r.url(t, key, "url", false);
        let app_key = r.optional_secret(t, key, "key", "STACKEXCHANGE_KEY");
        let mut sites = r.string_array(t, key, "sites");
        if t.contains_key("sites") && sites.is_empty() {
            let line = r.key_line(t, "sites");
            r.problem(
                line,
                &format!("{key}.sites"),
                "is empty; list at least one site, e.g. sites = [\"stackoverflow\", \"superuser\"]",
            );
        }
        for s in &sites {
            if !is_site_name(s) {
                let line = r.key_line(t, "sites");
                r.problem(
                    line,
                    &format!("{key}.sites"),
                    format!(
                        "{s:?} is not a site name; use the site's api_site_parameter from api.stackexchange.com/docs/sites, e.g. \"stackoverflow\", \"superuser\", \"math\""
                    ),
                );
            }
        }
        if sites.is_empty() {
            sites.push("stackoverflow".to_string());
        }
        if let Some(q) = &query {
            let searches = (sites.len() * search_words(q).len()) as u64;
            let polls_per_day = 86_400 / common.every.as_secs().max(1);
            let needed = searches * polls_per_day;
            let (quota, fix) = if app_key.is_some() {
                (DAILY_QUOTA_WITH_KEY, "raise every")
            } else {
                (
                    DAILY_QUOTA_WITHOUT_KEY,
                    "raise every or add key = \"${STACKEXCHANGE_KEY}\" (10,000 a day)",
                )
            };
            if searches > u64::from(MAX_REQUESTS_PER_POLL) {
                let line = r.table_line(t);
                let rounds = searches.div_ceil(u64::from(MAX_REQUESTS_PER_POLL));
                r.warning(
                    line,
                    &format!("{key}.sites"),
                    format!(
                        "{} site(s) × {} search word(s) = {searches} searches, more than the {MAX_REQUESTS_PER_POLL} requests one poll makes; they take turns, so each is read only every {rounds} polls or so (~{}s); list fewer sites or search words, or split them over two sources",
                        sites.len(),
                        searches / sites.len() as u64,
                        rounds * common.every.as_secs()
                    ),
                );
            }
            if needed > quota {
                let line = r.table_line(t);
                r.warning(
                    line,
                    &format!("{key}.every"),
                    format!(
                        "{searches} search(es) every {}s need at least {needed} requests a day, more than the {quota} the API allows per IP; {fix}",
                        common.every.as_secs()
                    ),
                );
            }
        }
        Some(StackExchangeConfig {
            common,
            query: query?,
            sites,
            key: app_key,
            url,
        })
    }

    fn common(&self) -> &Common {
        &self.common
    }

    fn build(&self) -> Result<Box<dyn Source>, SourceError> {
        Ok(Box::new(StackExchangeSource::new(self)?))
    }
}

/// `stackoverflow`, `math`, `ru.stackoverflow`, `math.stackexchange.com`: what the API's
/// `site` parameter takes.
fn is_site_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
}

/// The words sent as `q`, one search each: the API matches all words of `q`, and the rule
/// language's `OR` would need them apart. Operators and negations are the rules' business.
fn search_words(query: &str) -> Vec<String> {
    let mut unique: Vec<String> = Vec::new();
    for t in super::prefilter::positive_terms(query) {
        if !unique.contains(&t) {
            unique.push(t);
        }
    }
    if unique.is_empty() {
        unique.push(query.trim().to_string());
    }
    unique
}

/// The web address of a site, for links (`stackoverflow` → `stackoverflow.com`, `math` →
/// `math.stackexchange.com`, `mathoverflow` → `mathoverflow.net`).
fn site_domain(site: &str) -> String {
    if site.ends_with(".com") || site.ends_with(".net") {
        return site.to_string();
    }
    if site.contains('.') {
        return format!("{site}.com");
    }
    match site {
        "stackoverflow" | "superuser" | "serverfault" | "askubuntu" | "stackapps" => {
            format!("{site}.com")
        }
        "mathoverflow" => "mathoverflow.net".to_string(),
        _ => format!("{site}.stackexchange.com"),
    }
}

/// The common wrapper of every answer (api.stackexchange.com/docs/wrapper).
#[derive(Debug, Deserialize)]
struct Wrapper {
    #[serde(default)]
    items: Vec<Excerpt>,
    #[serde(default)]
    has_more: bool,
    #[serde(default)]
    quota_max: Option<u64>,
    #[serde(default)]
    quota_remaining: Option<u64>,
    #[serde(default)]
    backoff: Option<u64>,
    #[serde(default)]
    error_id: Option<u64>,
    #[serde(default)]
    error_name: Option<String>,
    #[serde(default)]
    error_message: Option<String>,
}

/// A `search_excerpt` (api.stackexchange.com/docs/types/search-excerpt).
#[derive(Debug, Clone, Deserialize)]
struct Excerpt {
    item_type: String,
    question_id: u64,
    #[serde(default)]
    answer_id: Option<u64>,
    creation_date: i64,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    excerpt: Option<String>,
    #[serde(default)]
    owner: Option<Owner>,
}

#[derive(Debug, Clone, Deserialize)]
struct Owner {
    #[serde(default)]
    display_name: Option<String>,
}

/// Watches Stack Exchange sites through the search API.
pub(crate) struct StackExchangeSource {
    name: String,
    base: String,
    sites: Vec<String>,
    words: Vec<String>,
    key: Option<Secret>,
    fetcher: Fetcher,
    /// No request before this instant (the API's `backoff`, or a throttle).
    paused_until: Option<Instant>,
    /// Set with `paused_until` when the daily quota is used up: the error to repeat.
    quota_message: Option<String>,
    /// The quota as the last answer gave it.
    quota: Option<Quota>,
    /// Which sites failed in the last poll that still delivered; see `take_warning`.
    warning: Option<String>,
}

/// How a search read ended.
enum Read {
    /// Everything up to now was read.
    Complete,
    /// Stopped early (page budget, backoff, quota); the next poll continues.
    Stopped,
}

impl StackExchangeSource {
    pub(crate) fn new(spec: &StackExchangeConfig) -> Result<StackExchangeSource, SourceError> {
        if spec.query.trim().is_empty() || spec.sites.is_empty() {
            return Err(SourceError::Config(format!(
                "source {:?}: kind \"stackexchange\" needs query = \"…\" and sites = [\"stackoverflow\"]",
                spec.common.name
            )));
        }
        Ok(StackExchangeSource {
            name: spec.common.name.clone(),
            base: spec
                .url
                .clone()
                .unwrap_or_else(|| DEFAULT_URL.to_string())
                .trim_end_matches('/')
                .to_string(),
            sites: spec.sites.clone(),
            words: search_words(&spec.query),
            key: spec.key.clone(),
            fetcher: Fetcher::new(&spec.common)?,
            paused_until: None,
            quota_message: None,
            quota: None,
            warning: None,
        })
    }

    fn search_url(&self, site: &str, word: &str, from: i64, page: u32) -> Result<Url, SourceError> {
        let mut url = Url::parse(&format!("{}/2.3/search/excerpts", self.base))
            .map_err(|e| SourceError::Config(format!("stackexchange url is not valid: {e}")))?;
        {
            let mut q = url.query_pairs_mut();
            // Oldest first: a read cut short still covers everything up to its last item.
            q.append_pair("order", "asc")
                .append_pair("sort", "creation")
                .append_pair("q", word)
                .append_pair("site", site)
                .append_pair("fromdate", &from.to_string())
                .append_pair("page", &page.to_string())
                .append_pair("pagesize", &PAGE_SIZE.to_string());
            if let Some(k) = &self.key {
                q.append_pair("key", k.expose());
            }
        }
        Ok(url)
    }

    /// Every search (site × word), site by site: the round robin's order.
    fn searches(&self) -> Vec<(String, String)> {
        self.sites
            .iter()
            .flat_map(|s| self.words.iter().map(move |w| (s.clone(), w.clone())))
            .collect()
    }

    /// A `Some(error)` while a pause is on (no request may be sent).
    fn paused(&mut self) -> Option<SourceError> {
        let until = self.paused_until?;
        let now = Instant::now();
        if until <= now {
            self.paused_until = None;
            self.quota_message = None;
            return None;
        }
        let wait = until - now;
        Some(match &self.quota_message {
            Some(m) => SourceError::Config(format!(
                "{m}; next try in {} min",
                wait.as_secs().div_ceil(60)
            )),
            None => SourceError::RateLimited { wait },
        })
    }

    /// Pauses for `wait`, capped at [`MAX_SERVER_WAIT`]: the wait comes from the server, and a
    /// hostile or broken one (`backoff: 18446744073709551615`) must not overflow the clock.
    fn pause(&mut self, wait: Duration, quota_message: Option<String>) {
        let now = Instant::now();
        let until = now
            .checked_add(wait.min(MAX_SERVER_WAIT))
            .unwrap_or(now + MAX_SERVER_WAIT);
        if self.paused_until.is_none_or(|u| u < until) {
            self.paused_until = Some(until);
        }
        if quota_message.is_some() {
            self.quota_message = quota_message;
        }
    }

    /// One page; notes quota and backoff from the wrapper, and turns error answers into
    /// errors that name the fix.
    async fn page(&mut self, url: &Url) -> Result<Wrapper, SourceError> {
        let reply = self
            .fetcher
            .request_any(
                reqwest::Method::GET,
                url.as_str(),
                &[("accept", "application/json")],
                None,
            )
            .await?;
        let wrapper: Option<Wrapper> = serde_json::from_slice(&reply.bytes).ok();
        let Some(wrapper) = wrapper.filter(|w| reply.is_success() || w.error_id.is_some()) else {
            if reply.is_success() {
                // Not the wrapper: say what did not parse.
                decode_json::<Wrapper>(&reply.bytes, "the Stack Exchange search API")?;
            }
            return Err(reply.status_error());
        };
        self.note_quota(&wrapper);
        if let Some(id) = wrapper.error_id {
            return Err(self.api_error(id, &wrapper, &reply));
        }
        if let Some(secs) = wrapper.backoff.filter(|s| *s > 0) {
            let secs = secs.min(MAX_SERVER_WAIT.as_secs());
            tracing::info!(source = %self.name, backoff_secs = secs, "stack exchange asked for a backoff; no request before it passes");
            self.pause(Duration::from_secs(secs), None);
        }
        Ok(wrapper)
    }

    fn note_quota(&mut self, w: &Wrapper) {
        if let Some(remaining) = w.quota_remaining {
            self.quota = Some(Quota {
                unit: "requests",
                remaining,
                limit: w.quota_max,
                resets_at: None,
            });
            if remaining == 0 {
                let max = w.quota_max.unwrap_or(DAILY_QUOTA_WITHOUT_KEY);
                tracing::warn!(source = %self.name, quota_max = max, "stack exchange daily quota used up; pausing");
                self.pause(QUOTA_PROBE, Some(self.quota_used_up(max)));
            }
        }
    }

    fn quota_used_up(&self, max: u64) -> String {
        if self.key.is_some() {
            format!("the Stack Exchange daily quota ({max} requests for this IP) is used up; raise every or list fewer sites")
        } else {
            format!("the Stack Exchange daily quota ({max} requests for this IP without a key) is used up; {KEY_HINT} (10,000 a day), or raise every")
        }
    }

    /// An error answer (`error_id`, `error_name`, `error_message`; api.stackexchange.com/docs/
    /// error-handling) as an error naming the fix. Never echoes the key.
    fn api_error(&mut self, id: u64, w: &Wrapper, reply: &ApiReply) -> SourceError {
        let name = w.error_name.clone().unwrap_or_default();
        let mut message = w.error_message.clone().unwrap_or_default();
        if let Some(k) = &self.key {
            if !k.expose().is_empty() {
                message = message.replace(k.expose(), "***");
            }
        }
        let what = format!("{name} {id}: {message}");
        match id {
            400 if self.key.is_some() && message.to_ascii_lowercase().contains("key") => {
                SourceError::Config(format!(
                    "Stack Exchange refused the key ({what}); check key, or {KEY_HINT}"
                ))
            }
            400 => SourceError::Config(format!(
                "Stack Exchange refused a parameter ({what}); check sites (names from api.stackexchange.com/docs/sites, e.g. \"stackoverflow\") and query"
            )),
            401..=403 | 405 | 406 => SourceError::Config(format!(
                "Stack Exchange refused the request ({what}); searching needs no login, so check url (default {DEFAULT_URL}) and key"
            )),
            404 => SourceError::Config(format!(
                "Stack Exchange has no such method ({what}); check url (default {DEFAULT_URL})"
            )),
            502 => {
                // "too many requests from this IP, more requests available in 81442 seconds"
                // when the daily quota is gone; "Violation of backoff parameter" otherwise.
                match seconds_in(&message) {
                    Some(secs) => {
                        // Capped before any arithmetic: the number is the server's.
                        let secs = secs.min(MAX_SERVER_WAIT.as_secs());
                        let max = self
                            .quota
                            .as_ref()
                            .and_then(|q| q.limit)
                            .unwrap_or(if self.key.is_some() {
                                DAILY_QUOTA_WITH_KEY
                            } else {
                                DAILY_QUOTA_WITHOUT_KEY
                            });
                        let text = format!("{} ({what})", self.quota_used_up(max));
                        self.pause(Duration::from_secs(secs), Some(text.clone()));
                        self.quota = Some(Quota {
                            unit: "requests",
                            remaining: 0,
                            limit: Some(max),
                            resets_at: i64::try_from(secs)
                                .ok()
                                .and_then(chrono::Duration::try_seconds)
                                .and_then(|d| Utc::now().checked_add_signed(d)),
                        });
                        SourceError::Config(format!(
                            "{text}; next try in {} min",
                            secs.div_ceil(60)
                        ))
                    }
                    None => {
                        self.pause(THROTTLE_WAIT, None);
                        SourceError::RateLimited {
                            wait: THROTTLE_WAIT,
                        }
                    }
                }
            }
            500 | 503 => SourceError::Network(format!(
                "Stack Exchange is unavailable for now ({what}, HTTP {})",
                reply.status
            )),
            _ => SourceError::Config(format!("Stack Exchange refused the request ({what})")),
        }
    }

    /// Reads one search (site × word) forward from its watermark into `mentions`, updating
    /// `state` (both only when it succeeds); `budget` counts the requests left for this poll.
    async fn read(
        &mut self,
        site: &str,
        word: &str,
        state: &mut SourceState,
        budget: &mut u32,
        mentions: &mut Vec<Mention>,
    ) -> Result<Read, SourceError> {
        let wm_key = format!("watermark {site} {word}");
        let seen_key = format!("seen {site} {word}");
        let now = Utc::now().timestamp();
        let watermark: Option<i64> = state.extra.get(&wm_key).and_then(|w| w.parse().ok());
        let from = watermark.map_or(now - INITIAL_LOOKBACK_SECS, |w| w - OVERLAP_SECS);
        let mut seen = super::seen::decode(state.extra.get(&seen_key));
        let mut newest = watermark.unwrap_or(now - INITIAL_LOOKBACK_SECS);
        let mut page = 1u32;
        let mut found = Vec::new();
        let outcome = loop {
            if *budget == 0 || self.paused_until.is_some() {
                break Read::Stopped;
            }
            let url = self.search_url(site, word, from, page)?;
            *budget -= 1;
            let answer = self.page(&url).await?;
            for item in answer.items {
                newest = newest.max(item.creation_date);
                let id = item_id(site, &item);
                if seen.contains_key(&id) {
                    continue;
                }
                seen.insert(id.clone(), item.creation_date);
                if let Some(m) = to_mention(item, id, site, &self.name) {
                    found.push(m);
                }
            }
            if !answer.has_more {
                break Read::Complete;
            }
            page += 1;
        };
        seen.retain(|_, ts| *ts >= newest - OVERLAP_SECS);
        state.extra.insert(wm_key, newest.to_string());
        super::seen::write(state, &seen_key, seen, MAX_SEEN);
        mentions.extend(found);
        Ok(outcome)
    }
}

/// How a search is named in the state (`"{site} {word}"`, as in its watermark's key).
fn search_name(site: &str, word: &str) -> String {
    format!("{site} {word}")
}

/// The first number followed by "second" in an API message.
fn seconds_in(message: &str) -> Option<u64> {
    let words: Vec<&str> = message.split_whitespace().collect();
    words.windows(2).find_map(|w| {
        w[1].starts_with("second")
            .then(|| w[0].parse::<u64>().ok())
            .flatten()
    })
}

fn item_id(site: &str, item: &Excerpt) -> String {
    match (item.item_type.as_str(), item.answer_id) {
        ("answer", Some(a)) => format!("{site}:a{a}"),
        _ => format!("{site}:q{}", item.question_id),
    }
}

fn to_mention(item: Excerpt, id: String, site: &str, source: &str) -> Option<Mention> {
    let domain = site_domain(site);
    let answer = item.item_type == "answer" && item.answer_id.is_some();
    let url = if answer {
        format!("https://{domain}/a/{}", item.answer_id.unwrap_or_default())
    } else {
        format!("https://{domain}/q/{}", item.question_id)
    };
    // The full body when the filter gives it, else the excerpt; both are HTML.
    let text = [item.body.as_deref(), item.excerpt.as_deref()]
        .into_iter()
        .flatten()
        .map(html_to_text)
        .find(|t| !t.is_empty())
        .unwrap_or_default();
    // An answer's title is its question's: context, not its words (as for HN comments).
    let title = if answer {
        None
    } else {
        item.title
            .as_deref()
            .map(html_to_text)
            .filter(|t| !t.is_empty())
    };
    if title.is_none() && text.is_empty() {
        return None;
    }
    Some(Mention {
        item_id: id,
        source: source.to_string(),
        source_kind: SourceKind::Stackexchange.as_str().to_string(),
        url: Some(url),
        title,
        text,
        author: item
            .owner
            .and_then(|o| o.display_name)
            .map(|n| html_to_text(&n))
            .filter(|n| !n.is_empty()),
        author_reach: None,
        published: DateTime::<Utc>::from_timestamp(item.creation_date, 0),
        lang: None,
        rating: None,
    })
}

#[async_trait::async_trait]
impl Source for StackExchangeSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> SourceKind {
        SourceKind::Stackexchange
    }

    fn quota(&self) -> Option<Quota> {
        self.quota.clone()
    }

    async fn poll(&mut self, state: &mut SourceState) -> Result<Vec<Mention>, SourceError> {
        if let Some(e) = self.paused() {
            return Err(e);
        }
        self.warning = None;
        // Work on a copy: a failed poll leaves the caller's state as it was.
        let mut work = state.clone();
        let mut mentions = Vec::new();
        let mut budget = MAX_REQUESTS_PER_POLL;
        let mut stopped = false;
        let searches = self.searches();
        // Round robin: each poll starts where the last one ran out of requests, so with more
        // searches than one poll's budget every search still gets its turn.
        let first = work
            .extra
            .get(NEXT_SEARCH_KEY)
            .and_then(|n| searches.iter().position(|(s, w)| search_name(s, w) == *n))
            .unwrap_or(0);
        let mut failed_sites: Vec<(String, SourceError)> = Vec::new();
        let mut not_reached = 0usize;
        let mut last_asked: Option<usize> = None;
        for i in (0..searches.len()).map(|k| (first + k) % searches.len()) {
            let (site, word) = &searches[i];
            // One failing search fails its site for this poll (a misspelt name, a 5xx).
            if failed_sites.iter().any(|(s, _)| s == site) {
                continue;
            }
            if budget == 0 || self.paused_until.is_some() {
                not_reached += 1;
                continue;
            }
            let before = budget;
            let result = self
                .read(site, word, &mut work, &mut budget, &mut mentions)
                .await;
            if budget < before {
                last_asked = Some(i);
            }
            match result {
                Ok(Read::Complete) => {}
                Ok(Read::Stopped) => stopped = true,
                Err(e) => {
                    tracing::warn!(source = %self.name, site = %site, error = %e, "stack exchange search failed");
                    failed_sites.push((site.clone(), e));
                }
            }
        }
        let succeeded = self.sites.len() - failed_sites.len();
        let mut warnings = Vec::new();
        if succeeded == 0 {
            if let Some((site, e)) = failed_sites.into_iter().next() {
                return Err(e.prefixed(&format!("site {site:?}: ")));
            }
        } else if !failed_sites.is_empty() {
            // One site failing does not hold up the others.
            let detail: Vec<String> = failed_sites
                .iter()
                .map(|(site, e)| format!("site {site:?}: {e}"))
                .collect();
            warnings.push(format!(
                "{} of {} sites failed: {}",
                failed_sites.len(),
                self.sites.len(),
                detail.join("; ")
            ));
        }
        if not_reached > 0 {
            let why = if self.paused_until.is_some() {
                "the API asked for a pause (backoff or quota)".to_string()
            } else if searches.len() <= MAX_REQUESTS_PER_POLL as usize {
                format!("a backlog used this poll's {MAX_REQUESTS_PER_POLL} requests")
            } else {
                format!(
                    "one poll makes at most {MAX_REQUESTS_PER_POLL} requests and there are {} searches (sites × search words); list fewer sites or words",
                    searches.len()
                )
            };
            warnings.push(format!(
                "{not_reached} of {} searches were not read this poll: {why}; they go first next poll",
                searches.len()
            ));
        }
        if let Some(i) = last_asked {
            // The next poll starts after the last search that was sent a request: the ones
            // not reached go first, and one with a backlog goes on when its turn comes again.
            let (site, word) = &searches[(i + 1) % searches.len()];
            work.extra
                .insert(NEXT_SEARCH_KEY.to_string(), search_name(site, word));
        }
        if stopped || not_reached > 0 {
            tracing::info!(source = %self.name, not_reached, "stack exchange read stopped early (page budget, backoff or quota); the next poll continues");
        }
        if !warnings.is_empty() {
            self.warning = Some(warnings.join("; "));
        }
        *state = work;
        Ok(mentions)
    }

    fn take_warning(&mut self) -> Option<String> {
        self.warning.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sites_map_to_their_domains() {
        assert_eq!(site_domain("stackoverflow"), "stackoverflow.com");
        assert_eq!(site_domain("superuser"), "superuser.com");
        assert_eq!(site_domain("math"), "math.stackexchange.com");
        assert_eq!(site_domain("ru.stackoverflow"), "ru.stackoverflow.com");
        assert_eq!(site_domain("mathoverflow"), "mathoverflow.net");
        assert_eq!(
            site_domain("math.stackexchange.com"),
            "math.stackexchange.com"
        );
    }

    #[test]
    fn the_wait_is_read_from_a_throttle_message() {
        assert_eq!(
            seconds_in("too many requests from this IP, more requests available in 81442 seconds"),
            Some(81442)
        );
        assert_eq!(seconds_in("Violation of backoff parameter"), None);
    }

    #[test]
    fn questions_and_answers_map_to_mentions_with_stable_ids() {
        // Shaped like /2.3/search/excerpts (api.stackexchange.com/docs/excerpt-search).
        let q: Excerpt = serde_json::from_str(
            r#"{"tags":["acme"],"question_score":1,"is_answered":false,"question_id":7001,
                "item_type":"question","score":1,"last_activity_date":1714557600,
                "creation_date":1714557600,"body":"<p>My <code>acme</code> client&#39;s broken</p>",
                "excerpt":"My <span class=\"highlight\">acme</span> client","title":"Why doesn&#39;t Acme &amp; co work?"}"#,
        )
        .unwrap();
        let id = item_id("stackoverflow", &q);
        let m = to_mention(q, id, "stackoverflow", "se").unwrap();
        assert_eq!(m.item_id, "stackoverflow:q7001");
        assert_eq!(m.title.as_deref(), Some("Why doesn't Acme & co work?"));
        assert_eq!(m.text, "My acme client's broken");
        assert_eq!(m.url.as_deref(), Some("https://stackoverflow.com/q/7001"));

        let a: Excerpt = serde_json::from_str(
            r#"{"question_id":7001,"answer_id":7002,"item_type":"answer","creation_date":1714557700,
                "excerpt":"use <span class=\"highlight\">acme</span> 2","title":"Why doesn&#39;t Acme work?","is_accepted":false}"#,
        )
        .unwrap();
        let id = item_id("superuser", &a);
        let m = to_mention(a, id, "superuser", "se").unwrap();
        assert_eq!(m.item_id, "superuser:a7002");
        assert_eq!(m.title, None);
        assert_eq!(m.text, "use acme 2");
        assert_eq!(m.url.as_deref(), Some("https://superuser.com/a/7002"));
    }
}
