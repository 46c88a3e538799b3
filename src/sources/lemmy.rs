//! The `lemmy` source: posts and comments that mention `query` on the listed Lemmy instances,
//! from each instance's search API (`/api/v3/search?type_=All&sort=New`). Each instance is
//! read newest first down to its own `published` watermark (minus an overlap), remembering the
//! ids seen near it. A post federated to several instances carries the same `ap_id` on each:
//! that is the mention's id, so it alerts once whichever instance found it first.
//! One instance failing while others answer is a partial success (`take_warning`); a rate
//! limited instance is left alone until its wait passes.
//! It does not log in, filter by rules, or read communities and users.

use super::config::{required_query, Common, KindConfig};
use super::html::plain_text;
use super::http::{decode_json, redact_url, ApiReply, Fetcher};
use super::{Source, SourceError, SourceKind, SourceState};
use crate::config::{Reader, Table};
use crate::model::Mention;
use chrono::{DateTime, NaiveDateTime, Utc};
use reqwest::Url;
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tokio::time::Instant;

/// Posts and comments per search page (Lemmy's maximum is 50).
pub(crate) const PAGE_LIMIT: usize = 50;
/// Pages one poll reads per instance; the next poll reads again from the newest.
pub(crate) const MAX_PAGES: u32 = 3;
/// Every read goes this far below the watermark: federation delivers posts late, with their
/// original `published` time.
pub(crate) const OVERLAP_SECS: i64 = 900;
/// How far back the first poll of a new source looks.
pub(crate) const INITIAL_LOOKBACK_SECS: i64 = 3600;
/// Wait after a rate-limit answer that does not say for how long (Lemmy 0.19 answers HTTP
/// 400 `{"error":"rate_limit_error"}` without Retry-After).
const RATE_LIMIT_WAIT: Duration = Duration::from_secs(120);
/// The longest wait taken from an instance's Retry-After: one day.
const MAX_SERVER_WAIT: Duration = crate::retry::DEFAULT_MAX_RETRY_AFTER;
/// Ids remembered per instance at most.
const MAX_SEEN: usize = 2000;

/// `kind = "lemmy"`: which instances to search, and for what.
#[derive(Debug, Clone, PartialEq)]
pub struct LemmyConfig {
    pub(crate) common: Common,
    /// Instance base URLs, e.g. `https://lemmy.world`.
    pub(crate) instances: Vec<String>,
    pub(crate) query: String,
}

impl KindConfig for LemmyConfig {
    const KIND: &'static str = "lemmy";
    const KEYS: &'static [&'static str] = &["instances", "query"];
    /// Lemmy limits searches per IP (its default: 60 per 10 minutes); one to three
    /// requests per instance every 5 minutes stays far below.
    const DEFAULT_EVERY: Duration = Duration::from_secs(300);

    fn read(r: &mut Reader, t: &Table, key: &str, common: Common) -> Option<LemmyConfig> {
        let query = required_query(r, t, key, "it is what the instances are searched for");
        let instances = r.string_array(t, key, "instances");
        if instances.is_empty() {
            let line = r.table_line(t);
            r.problem(
                line,
                &format!("{key}.instances"),
                "missing; add instances = [\"https://lemmy.world\"] (instance base URLs)",
            );
        }
        for i in &instances {
            r.check_url(t, key, "instances", i, false);
        }
        Some(LemmyConfig {
            common,
            instances,
            query: query?,
        })
    }

    fn common(&self) -> &Common {
        &self.common
    }

    fn build(&self) -> Result<Box<dyn Source>, SourceError> {
        Ok(Box::new(LemmySource::new(self)?))
    }
}

/// `SearchResponse` of Lemmy's API v3 (lemmy-js-client 0.19 `SearchResponse`): communities
/// and users are not read.
#[derive(Debug, Deserialize)]
struct SearchResponse {
    #[serde(default)]
    comments: Vec<CommentView>,
    #[serde(default)]
    posts: Vec<PostView>,
}

#[derive(Debug, Clone, Deserialize)]
struct PostView {
    post: Post,
    creator: Person,
}

#[derive(Debug, Clone, Deserialize)]
struct CommentView {
    comment: Comment,
    creator: Person,
}

#[derive(Debug, Clone, Deserialize)]
struct Post {
    name: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    body: Option<String>,
    published: String,
    ap_id: String,
    #[serde(default)]
    deleted: bool,
    #[serde(default)]
    removed: bool,
}

#[derive(Debug, Clone, Deserialize)]
struct Comment {
    content: String,
    published: String,
    ap_id: String,
    #[serde(default)]
    deleted: bool,
    #[serde(default)]
    removed: bool,
}

#[derive(Debug, Clone, Deserialize)]
struct Person {
    name: String,
    /// The account's home URL (`https://lemmy.ml/u/ann`); `ap_id` from Lemmy 1.0 on.
    #[serde(default, alias = "ap_id")]
    actor_id: Option<String>,
}

/// Lemmy's error body (`{"error":"rate_limit_error"}`; 0.19 adds `message` to some).
#[derive(Debug, Deserialize)]
struct LemmyError {
    error: String,
    #[serde(default)]
    message: Option<String>,
}

/// Searches Lemmy instances.
pub(crate) struct LemmySource {
    name: String,
    instances: Vec<String>,
    /// One search per word (see `search_words`).
    words: Vec<String>,
    fetcher: Fetcher,
    /// Instances that asked us to wait, and until when.
    paused: HashMap<String, Instant>,
    /// Which instances failed in the last poll that still delivered; see `take_warning`.
    warning: Option<String>,
}

/// `published` in either form Lemmy sends: RFC 3339 (`…Z`, 0.19) or without a zone
/// (0.18 and older: `2023-06-20T08:14:11.123456`, which is UTC).
fn parse_published(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|n| n.and_utc())
}

impl LemmySource {
    pub(crate) fn new(spec: &LemmyConfig) -> Result<LemmySource, SourceError> {
        if spec.instances.is_empty() || spec.query.trim().is_empty() {
            return Err(SourceError::Config(format!(
                "source {:?}: kind \"lemmy\" needs instances = [\"https://…\"] and query = \"…\"",
                spec.common.name
            )));
        }
        Ok(LemmySource {
            name: spec.common.name.clone(),
            instances: spec
                .instances
                .iter()
                .map(|i| i.trim_end_matches('/').to_string())
                .collect(),
            words: search_words(&spec.query),
            fetcher: Fetcher::new(&spec.common)?,
            paused: HashMap::new(),
            warning: None,
        })
    }

    fn search_url(&self, instance: &str, word: &str, page: u32) -> Result<Url, SourceError> {
        let mut url = Url::parse(instance)
            .map_err(|e| SourceError::Config(format!("instance {instance:?} is not a URL: {e}")))?;
        url.path_segments_mut()
            .map_err(|_| SourceError::Config(format!("instance {instance:?} is not a URL")))?
            .pop_if_empty()
            .extend(["api", "v3", "search"]);
        url.query_pairs_mut()
            .append_pair("q", word)
            .append_pair("type_", "All")
            .append_pair("sort", "New")
            .append_pair("listing_type", "All")
            .append_pair("limit", &PAGE_LIMIT.to_string())
            .append_pair("page", &page.to_string());
        Ok(url)
    }

    /// One search page, or the error the instance's answer means.
    async fn page(
        &mut self,
        instance: &str,
        word: &str,
        page: u32,
    ) -> Result<SearchResponse, SourceError> {
        let url = self.search_url(instance, word, page)?;
        let reply = self
            .fetcher
            .request_any(
                reqwest::Method::GET,
                url.as_str(),
                &[("accept", "application/json")],
                None,
            )
            .await?;
        if reply.is_success() {
            return decode_json(&reply.bytes, "the Lemmy search API");
        }
        Err(self.error(instance, &reply))
    }

    fn error(&mut self, instance: &str, reply: &ApiReply) -> SourceError {
        let code = serde_json::from_slice::<LemmyError>(&reply.bytes).ok();
        let name = code.as_ref().map(|c| c.error.as_str()).unwrap_or("");
        let rate_limited = reply.status == 429 || name == "rate_limit_error";
        if rate_limited {
            // The instance's Retry-After, capped before any arithmetic: a hostile or broken
            // value (18446744073709551615) must not overflow the clock.
            let wait = reply
                .status_error()
                .retry_after()
                .unwrap_or(RATE_LIMIT_WAIT)
                .min(MAX_SERVER_WAIT);
            let now = Instant::now();
            let until = now.checked_add(wait).unwrap_or(now + MAX_SERVER_WAIT);
            self.paused.insert(instance.to_string(), until);
            return SourceError::RateLimited { wait };
        }
        let detail = match &code {
            Some(c) => match &c.message {
                Some(m) => format!(" {:?}: {m}", c.error),
                None => format!(" {:?}", c.error),
            },
            None => String::new(),
        };
        match (reply.status, name) {
            (_, "not_logged_in" | "incorrect_login" | "not_an_admin")
            | (401 | 403, _) => SourceError::Config(format!(
                "the instance answered HTTP {}{detail}: it lets only logged-in users search (a private instance); remove it from instances",
                reply.status
            )),
            (404, _) => SourceError::Config(format!(
                "the instance answered HTTP 404 for /api/v3/search{detail}: is it a Lemmy instance? instances take base URLs such as \"https://lemmy.world\""
            )),
            (400, _) if !name.is_empty() => SourceError::Config(format!(
                "the instance refused the search (HTTP 400{detail}); check query"
            )),
            _ => reply.status_error(),
        }
    }

    /// Reads one search on one instance down to its watermark; returns the mentions and the
    /// state keys to write once the poll succeeds.
    async fn read(
        &mut self,
        instance: &str,
        word: &str,
        state: &SourceState,
    ) -> Result<(Vec<Mention>, Vec<(String, Option<String>)>), SourceError> {
        let wm_key = format!("watermark {instance} {word}");
        let seen_key = format!("seen {instance} {word}");
        let resume_key = format!("resume {instance} {word}");
        let now = Utc::now().timestamp();
        let watermark: Option<i64> = state.extra.get(&wm_key).and_then(|w| w.parse().ok());
        let floor = watermark.map_or(now - INITIAL_LOOKBACK_SECS, |w| w - OVERLAP_SECS);
        let mut seen = super::seen::decode(state.extra.get(&seen_key));
        // A read cut short by the page budget goes on where it stopped ("page newest"): the
        // pages only shift down as new items arrive, so nothing is skipped (the seen ids
        // catch what is read twice), and a backlog larger than one poll's pages is still
        // read to its end.
        let resume: Option<(u32, i64)> = state.extra.get(&resume_key).and_then(|r| {
            let (p, n) = r.split_once(' ')?;
            Some((p.parse().ok()?, n.parse().ok()?))
        });
        let (first_page, mut newest) = resume.unwrap_or((1, watermark.unwrap_or(floor)));
        let mut next_page = None;
        let mut out = Vec::new();
        for page in first_page..first_page + MAX_PAGES {
            let answer = self.page(instance, word, page).await?;
            let posts_done = answer.posts.len() < PAGE_LIMIT;
            let comments_done = answer.comments.len() < PAGE_LIMIT;
            let mut oldest_post = i64::MAX;
            let mut oldest_comment = i64::MAX;
            let mut items: Vec<(i64, String, Mention)> = Vec::new();
            for pv in answer.posts {
                let Some(at) = parse_published(&pv.post.published) else {
                    continue;
                };
                oldest_post = oldest_post.min(at.timestamp());
                if pv.post.deleted || pv.post.removed {
                    continue;
                }
                items.push((at.timestamp(), pv.post.ap_id.clone(), self.post(pv, at)));
            }
            for cv in answer.comments {
                let Some(at) = parse_published(&cv.comment.published) else {
                    continue;
                };
                oldest_comment = oldest_comment.min(at.timestamp());
                if cv.comment.deleted || cv.comment.removed {
                    continue;
                }
                items.push((
                    at.timestamp(),
                    cv.comment.ap_id.clone(),
                    self.comment(cv, at),
                ));
            }
            for (at, id, mention) in items {
                if at < floor {
                    continue;
                }
                newest = newest.max(at);
                if seen.contains_key(&id) {
                    continue;
                }
                seen.insert(id, at);
                if !mention.text.is_empty() || mention.title.is_some() {
                    out.push(mention);
                }
            }
            // Newest first: a list is read once it ends or reaches below the floor.
            let posts_read = posts_done || oldest_post < floor;
            let comments_read = comments_done || oldest_comment < floor;
            if posts_read && comments_read {
                next_page = None;
                break;
            }
            next_page = Some(page + 1);
        }
        let mut updates = Vec::new();
        match next_page {
            // Read down to the floor: the watermark moves up to the newest item read.
            None => {
                updates.push((wm_key, Some(newest.to_string())));
                updates.push((resume_key, None));
                seen.retain(|_, ts| *ts >= newest - OVERLAP_SECS);
            }
            // Cut short: the watermark stays until the rest is read.
            Some(p) => {
                // (On the first poll: the one that keeps the floor an hour back.)
                let keep = watermark.unwrap_or(floor + OVERLAP_SECS);
                updates.push((wm_key, Some(keep.to_string())));
                updates.push((resume_key, Some(format!("{p} {newest}"))));
            }
        }
        updates.push((seen_key, super::seen::encode(seen, MAX_SEEN)));
        Ok((out, updates))
    }

    fn post(&self, pv: PostView, at: DateTime<Utc>) -> Mention {
        let body = pv.post.body.as_deref().map(plain_text).unwrap_or_default();
        let text = if body.is_empty() {
            pv.post.url.clone().unwrap_or_default()
        } else {
            body
        };
        Mention {
            item_id: pv.post.ap_id.clone(),
            source: self.name.clone(),
            source_kind: SourceKind::Lemmy.as_str().to_string(),
            url: Some(pv.post.ap_id),
            title: Some(plain_text(&pv.post.name)).filter(|t| !t.is_empty()),
            text,
            author: handle(&pv.creator),
            author_reach: None,
            published: Some(at),
            lang: None,
            rating: None,
        }
    }

    fn comment(&self, cv: CommentView, at: DateTime<Utc>) -> Mention {
        Mention {
            item_id: cv.comment.ap_id.clone(),
            source: self.name.clone(),
            source_kind: SourceKind::Lemmy.as_str().to_string(),
            url: Some(cv.comment.ap_id),
            // The post's title is context, not the comment's words (as for HN comments).
            title: None,
            text: plain_text(&cv.comment.content),
            author: handle(&cv.creator),
            author_reach: None,
            published: Some(at),
            lang: None,
            rating: None,
        }
    }
}

/// `@name@home.instance`, the handle that is the same on every instance.
fn handle(p: &Person) -> Option<String> {
    if p.name.trim().is_empty() {
        return None;
    }
    let host = p
        .actor_id
        .as_deref()
        .and_then(|a| Url::parse(a).ok())
        .and_then(|u| u.host_str().map(str::to_string));
    Some(match host {
        Some(h) => format!("@{}@{h}", p.name),
        None => format!("@{}", p.name),
    })
}

/// The searches to run: the positive words of the rule query, one search each (Lemmy
/// matches `q` as one string, so `acme OR widgets` needs two); the rules decide on
/// operators and negations.
fn search_words(query: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for t in super::prefilter::positive_terms(query) {
        if !words.contains(&t) {
            words.push(t);
        }
    }
    if words.is_empty() {
        words.push(query.trim().to_string());
    }
    words
}

#[async_trait::async_trait]
impl Source for LemmySource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> SourceKind {
        SourceKind::Lemmy
    }

    async fn poll(&mut self, state: &mut SourceState) -> Result<Vec<Mention>, SourceError> {
        self.warning = None;
        let mut mentions = Vec::new();
        let mut updates = Vec::new();
        let mut failures: Vec<(String, SourceError)> = Vec::new();
        let mut succeeded = 0usize;
        let now = Instant::now();
        for instance in self.instances.clone() {
            if let Some(until) = self.paused.get(&instance).copied() {
                if until > now {
                    failures.push((instance, SourceError::RateLimited { wait: until - now }));
                    continue;
                }
                self.paused.remove(&instance);
            }
            let mut failed = None;
            for word in self.words.clone() {
                match self.read(&instance, &word, state).await {
                    Ok((found, keys)) => {
                        mentions.extend(found);
                        updates.extend(keys);
                    }
                    Err(e) => {
                        tracing::warn!(source = %self.name, instance = %redact_url(&instance), error = %e, "lemmy search failed");
                        failed = Some(e);
                        break;
                    }
                }
            }
            match failed {
                None => succeeded += 1,
                Some(e) => failures.push((instance, e)),
            }
        }
        if succeeded == 0 {
            if let Some((instance, e)) = failures.into_iter().next() {
                return Err(e.prefixed(&format!("{}: ", redact_url(&instance))));
            }
        } else if !failures.is_empty() {
            self.warning = Some(partial_warning(&failures, succeeded));
        }
        for (k, v) in updates {
            match v {
                Some(v) => state.extra.insert(k, v),
                None => state.extra.remove(&k),
            };
        }
        // The same federated post found on two instances is one mention.
        let mut ids = HashSet::with_capacity(mentions.len());
        mentions.retain(|m| ids.insert(m.item_id.clone()));
        Ok(mentions)
    }

    fn take_warning(&mut self) -> Option<String> {
        self.warning.take()
    }
}

/// One line naming every failed instance, e.g.
/// `1 of 2 instances failed: https://b.example/: server answered HTTP 502`.
fn partial_warning(failures: &[(String, SourceError)], succeeded: usize) -> String {
    let total = failures.len() + succeeded;
    let detail: Vec<String> = failures
        .iter()
        .map(|(instance, e)| format!("{}: {e}", redact_url(instance)))
        .collect();
    format!(
        "{} of {total} instances failed: {}",
        failures.len(),
        detail.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_parses_with_and_without_a_zone() {
        let a = parse_published("2024-01-15T10:00:00.123456Z").unwrap();
        let b = parse_published("2024-01-15T10:00:00.123456").unwrap();
        assert_eq!(a, b);
        assert_eq!(
            parse_published("2024-01-15T10:00:00+01:00")
                .unwrap()
                .timestamp(),
            a.timestamp() - 3600
        );
        assert!(parse_published("yesterday").is_none());
    }

    #[test]
    fn handles_carry_the_home_instance() {
        let p = Person {
            name: "ann".into(),
            actor_id: Some("https://lemmy.ml/u/ann".into()),
        };
        assert_eq!(handle(&p).as_deref(), Some("@ann@lemmy.ml"));
    }

    #[test]
    fn one_search_per_positive_word() {
        assert_eq!(
            search_words("(acme OR widgets) AND NOT hiring"),
            ["acme", "widgets"]
        );
    }
}
