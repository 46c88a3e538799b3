//! The `youtube` source: comments on the brand's own channels (`channels`) and on videos that
//! a search for `query` finds, through the YouTube Data API v3 with an API key. Videos a
//! search finds are mentions themselves and are then followed for `TRACK_DAYS`, their new
//! comments kept when they contain a word of the query.
//!
//! The API is paid for in quota units (10,000 a day by default, reset at midnight Pacific
//! time): `commentThreads.list` costs 1, `search.list` 100. The source counts what it spends
//! per Pacific day in its `SourceState` (so a restart does not forget), shows what is left in
//! `quota()`, and never sends a request the budget (`daily_quota`) cannot pay for: channel
//! listings come first, a search runs at most once an hour and only when it leaves the
//! channel listings paid for, and anything skipped is said in a warning.
//!
//! One listing failing skips that listing (a warning; a video turned private is no longer
//! followed), not the poll; a listing with more new comments than a poll reads keeps its next
//! page token and is read to its end by the next polls. A poll that counted units always
//! returns `Ok`, so the count is saved with its state: only a poll whose first request Google
//! refused without charging (key, API, quota, rate limit) or that never reached Google fails.
//!
//! The key travels in the query string, as Google requires for API keys; every URL that is
//! logged or put in an error goes through `redact_url`, and Google's error messages are
//! scrubbed of the key before they are shown. Only top-level comments are read (replies need
//! `comments.list`, one more unit per thread).

use super::config::{Common, KindConfig};
use super::html::html_to_text;
use super::http::{decode_json, ApiReply, Fetcher};
use super::prefilter::Prefilter;
use super::{Quota, Source, SourceError, SourceKind, SourceState};
use crate::config::{Reader, Table};
use crate::model::{Mention, Secret};
use crate::retry::DEFAULT_MAX_RETRY_AFTER;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::America::Los_Angeles;
use reqwest::Url;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

pub(crate) const DEFAULT_URL: &str = "https://www.googleapis.com";
/// Google's default daily quota of a project.
pub(crate) const DEFAULT_DAILY_QUOTA: u64 = 10_000;
/// What `commentThreads.list` costs, per page.
pub(crate) const LIST_COST: u64 = 1;
/// What `search.list` costs.
pub(crate) const SEARCH_COST: u64 = 100;
/// A search runs at most this often (at most 2,400 units a day).
pub(crate) const SEARCH_EVERY_SECS: i64 = 3600;
/// Videos found by search are followed for their comments this long after publication.
pub(crate) const TRACK_DAYS: i64 = 7;
/// Videos followed at once (the newest); each costs a unit a poll.
pub(crate) const MAX_VIDEOS: usize = 20;
/// Comment threads per page (the API's maximum).
pub(crate) const PAGE_SIZE: u32 = 100;
/// Pages per listing per poll; a longer backlog is read on by the next polls.
pub(crate) const MAX_PAGES: usize = 5;
/// How far back the first poll of a listing looks.
pub(crate) const INITIAL_LOOKBACK_SECS: i64 = 3600;
/// Re-read this much before a listing's watermark: comments reach the listing a little late.
pub(crate) const OVERLAP_SECS: i64 = 600;
/// Comment ids remembered at most.
const MAX_SEEN: usize = 5000;
/// Polls in a row a saved backlog page may fail before the listing is read from its newest
/// comment again.
const MAX_RESUME_FAILS: u32 = 3;

/// `kind = "youtube"`: the API key, what to watch, and the daily quota it may spend.
#[derive(Debug, Clone, PartialEq)]
pub struct YoutubeConfig {
    pub(crate) common: Common,
    /// A YouTube Data API v3 key.
    pub(crate) key: Secret,
    /// Words to search videos for (rule language; its positive words are used).
    pub(crate) query: Option<String>,
    /// Channel ids (`UC…`) whose videos' comments are all read.
    pub(crate) channels: Vec<String>,
    /// Units this source may spend per Pacific day.
    pub(crate) daily_quota: u64,
    /// API base (default [`DEFAULT_URL`]).
    pub(crate) url: Option<String>,
}

impl KindConfig for YoutubeConfig {
    const KIND: &'static str = "youtube";
    const KEYS: &'static [&'static str] = &["key", "query", "channels", "daily_quota", "url"];
    const DEFAULT_EVERY: Duration = Duration::from_secs(600);

    fn read(r: &mut Reader, t: &Table, key: &str, common: Common) -> Option<YoutubeConfig> {
        let api_key = r.secret(t, key, "key", "YOUTUBE_API_KEY");
        let query = r.string(t, key, "query");
        let channels = r.string_array(t, key, "channels");
        let daily_quota = r
            .integer(t, key, "daily_quota")
            .unwrap_or(DEFAULT_DAILY_QUOTA);
        let url = r.url(t, key, "url", false);
        let line = r.table_line(t);
        if query.as_deref().is_some_and(|q| q.trim().is_empty()) {
            let line = r.key_line(t, "query");
            r.problem(
                line,
                &format!("{key}.query"),
                "is empty; set the words to search videos for, e.g. query = \"acme\", or remove it",
            );
        }
        if query.is_none() && channels.is_empty() {
            r.problem(
                line,
                &format!("{key}.query"),
                "missing; add query = \"acme\" (videos to search for) and/or channels = [\"UC…\"] (your channel ids)",
            );
        }
        for c in &channels {
            if !is_channel_id(c) {
                let line = r.key_line(t, "channels");
                r.problem(
                    line,
                    &format!("{key}.channels"),
                    format!(
                        "{c:?} is not a channel id; ids start with UC and have 24 characters (YouTube Studio → Settings → Channel → Advanced settings shows it; a @handle is not an id)"
                    ),
                );
            }
        }
        if query.is_some() && daily_quota < SEARCH_COST {
            let line = r.key_line(t, "daily_quota");
            r.problem(
                line,
                &format!("{key}.daily_quota"),
                format!("{daily_quota} cannot pay for one search ({SEARCH_COST} units); raise it or remove query"),
            );
        }
        Some(YoutubeConfig {
            common,
            key: api_key?,
            query,
            channels,
            daily_quota,
            url,
        })
    }

    fn common(&self) -> &Common {
        &self.common
    }

    fn build(&self) -> Result<Box<dyn Source>, SourceError> {
        Ok(Box::new(YoutubeSource::new(self)?))
    }
}

/// `UC` and 22 characters of base64url.
fn is_channel_id(s: &str) -> bool {
    s.len() == 24
        && s.starts_with("UC")
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Watches channels' comments and searched videos' comments.
pub(crate) struct YoutubeSource {
    name: String,
    base: String,
    key: Secret,
    channels: Vec<String>,
    /// What `search.list` is asked (`a|b` for any of the words); `None` without a query.
    search: Option<String>,
    prefilter: Option<Prefilter>,
    daily_quota: u64,
    fetcher: Fetcher,
    /// The source's `timeout`, which bounds a whole poll.
    timeout: Duration,
    /// Units spent on a Pacific day. A poll that counted any returns `Ok` (its state, with
    /// the count, is saved); one that fails outright has counted none.
    spent: Option<(NaiveDate, u64)>,
    /// Set by `quotaExceeded` or a rate limit: no request before this instant.
    paused_until: Option<Instant>,
    warning: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ThreadList {
    #[serde(default)]
    next_page_token: Option<String>,
    #[serde(default)]
    items: Vec<Thread>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Thread {
    snippet: ThreadSnippet,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ThreadSnippet {
    #[serde(default)]
    channel_id: Option<String>,
    #[serde(default)]
    video_id: Option<String>,
    top_level_comment: Comment,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Comment {
    id: String,
    snippet: CommentSnippet,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CommentSnippet {
    #[serde(default)]
    author_display_name: Option<String>,
    #[serde(default)]
    video_id: Option<String>,
    #[serde(default)]
    text_display: Option<String>,
    #[serde(default)]
    text_original: Option<String>,
    published_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize)]
struct SearchList {
    #[serde(default)]
    items: Vec<SearchResult>,
}

#[derive(Debug, Deserialize)]
struct SearchResult {
    id: SearchId,
    #[serde(default)]
    snippet: Option<VideoSnippet>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SearchId {
    #[serde(default)]
    video_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VideoSnippet {
    published_at: DateTime<Utc>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    channel_title: Option<String>,
}

/// Google's error body: `{"error":{"code","message","errors":[{"reason",…}],"details":[…]}}`.
#[derive(Debug, Default, Deserialize)]
struct GoogleError {
    #[serde(default)]
    error: GoogleErrorInner,
}

#[derive(Debug, Default, Deserialize)]
struct GoogleErrorInner {
    #[serde(default)]
    message: String,
    #[serde(default)]
    errors: Vec<GoogleReason>,
    #[serde(default)]
    details: Vec<GoogleReason>,
}

#[derive(Debug, Default, Deserialize)]
struct GoogleReason {
    #[serde(default)]
    reason: Option<String>,
}

/// Why a request brought nothing to use.
enum Failure {
    /// Only this listing (or the search) is affected: skipped, with a warning, this poll.
    Skip(String),
    /// Comments are turned off on the video, it is gone or private (or the channel is gone):
    /// skipped, and a video is no longer followed.
    Gone(String),
    /// The page token of a backlog is no longer accepted.
    BadPageToken(String),
    /// The source as a whole (the key, the quota, the API or the network): the poll sends
    /// nothing more.
    Stop(SourceError),
}

/// One poll's day, clock, deadline and spending.
struct Round {
    today: NaiveDate,
    now: i64,
    /// No request is sent or waited for past this: the poll loop drops a poll that outlasts
    /// `timeout` with everything it read, so the poll ends a little before.
    deadline: Option<Instant>,
    /// Units this poll counted (requests Google refused without charging are taken back).
    counted: u64,
    /// Some request of this poll was answered (a page, or a definite word on one listing).
    answered: bool,
}

/// What one listing is.
#[derive(Clone, Copy, PartialEq)]
enum Listing<'a> {
    Channel(&'a str),
    Video(&'a str),
}

impl YoutubeSource {
    pub(crate) fn new(spec: &YoutubeConfig) -> Result<YoutubeSource, SourceError> {
        if spec.key.expose().trim().is_empty() {
            return Err(SourceError::Config(format!(
                "source {:?}: kind \"youtube\" needs key = \"${{YOUTUBE_API_KEY}}\"",
                spec.common.name
            )));
        }
        let terms = spec
            .query
            .as_deref()
            .map(super::prefilter::positive_terms)
            .unwrap_or_default();
        let search = spec.query.as_deref().map(|q| {
            let mut unique: Vec<String> = Vec::new();
            for t in &terms {
                if !unique.contains(t) {
                    unique.push(t.clone());
                }
            }
            if unique.is_empty() {
                q.trim().to_string()
            } else {
                unique.join("|")
            }
        });
        Ok(YoutubeSource {
            name: spec.common.name.clone(),
            base: spec
                .url
                .clone()
                .unwrap_or_else(|| DEFAULT_URL.into())
                .trim_end_matches('/')
                .to_string(),
            key: spec.key.clone(),
            channels: spec.channels.clone(),
            search,
            prefilter: Prefilter::from_keywords(terms),
            daily_quota: spec.daily_quota,
            fetcher: Fetcher::new(&spec.common)?,
            timeout: spec.common.timeout,
            spent: None,
            paused_until: None,
            warning: None,
        })
    }

    /// Units spent today (Pacific) as counted so far (`poll` folds in the saved count).
    fn used(&self, today: NaiveDate) -> u64 {
        match self.spent {
            Some((day, units)) if day == today => units,
            _ => 0,
        }
    }

    fn can_spend(&self, today: NaiveDate, units: u64) -> bool {
        self.used(today) + units <= self.daily_quota
    }

    fn spend(&mut self, today: NaiveDate, units: u64) {
        let used = self.used(today);
        self.spent = Some((today, used + units));
    }

    /// Takes back the units of a request Google refused without charging for it.
    fn refund(&mut self, round: &mut Round, units: u64) {
        let used = self.used(round.today);
        self.spent = Some((round.today, used.saturating_sub(units)));
        round.counted = round.counted.saturating_sub(units);
    }

    /// No request before `now + wait` (a server's wait, capped at a day first).
    fn pause(&mut self, wait: Duration) -> Duration {
        let wait = wait.min(DEFAULT_MAX_RETRY_AFTER);
        self.paused_until = Instant::now().checked_add(wait);
        wait
    }

    fn warn(&mut self, what: String) {
        tracing::warn!(source = %self.name, "{what}");
        self.warning = Some(match self.warning.take() {
            Some(w) => format!("{w}; {what}"),
            None => what,
        });
    }

    /// GETs `path` with `params` and the key, counting `cost` units first (Google charges
    /// failed requests too, except those it refuses before the API: see `refusal`). A 2xx
    /// is the answer; anything else is what it means for the listing `what` or the source.
    async fn call(
        &mut self,
        round: &mut Round,
        cost: u64,
        path: &str,
        params: &[(&str, &str)],
        what: &str,
    ) -> Result<ApiReply, Failure> {
        if round.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(Failure::Stop(SourceError::Timeout(self.timeout)));
        }
        let mut url = Url::parse(&format!("{}/youtube/v3/{path}", self.base)).map_err(|e| {
            Failure::Stop(SourceError::Config(format!(
                "youtube url is not valid: {e}"
            )))
        })?;
        url.query_pairs_mut()
            .extend_pairs(params)
            .append_pair("key", self.key.expose());
        self.spend(round.today, cost);
        round.counted += cost;
        let request = self.fetcher.request_any(
            reqwest::Method::GET,
            url.as_str(),
            &[("accept", "application/json")],
            None,
        );
        let sent = match round.deadline {
            Some(d) => tokio::time::timeout_at(d, request)
                .await
                .unwrap_or(Err(SourceError::Timeout(self.timeout))),
            None => request.await,
        };
        let reply = match sent {
            Ok(reply) => reply,
            // Nothing reached Google (refused address, no connection): nothing to pay.
            Err(e @ (SourceError::Refused { .. } | SourceError::Network(_)))
                if !e.to_string().contains("reading the body failed") =>
            {
                self.refund(round, cost);
                return Err(Failure::Stop(e));
            }
            // It may have been answered (and charged), too late.
            Err(e @ SourceError::Timeout(_)) => return Err(Failure::Stop(e)),
            Err(e) => {
                round.answered = true;
                return Err(Failure::Skip(format!("{what}: {e}")));
            }
        };
        if reply.is_success() {
            round.answered = true;
            return Ok(reply);
        }
        Err(self.refusal(round, cost, &reply, what))
    }

    /// What a non-2xx answer means: for the source (`Stop`), or only for the listing `what`.
    fn refusal(&mut self, round: &mut Round, cost: u64, reply: &ApiReply, what: &str) -> Failure {
        let body: GoogleError = serde_json::from_slice(&reply.bytes).unwrap_or_default();
        let reasons: Vec<&str> = body
            .error
            .errors
            .iter()
            .chain(&body.error.details)
            .filter_map(|r| r.reason.as_deref())
            .collect();
        let has = |r: &str| reasons.contains(&r);
        let message = self.scrub(&body.error.message);
        let status = reply.status;
        // Refused before the API ran (no quota left, a rate limit, a key Google does not
        // accept, an API the project has not enabled): not charged, and the whole source.
        if has("quotaExceeded") || has("dailyLimitExceeded") {
            self.refund(round, cost);
            let wait = until_pacific_midnight(Utc::now());
            self.spent = Some((round.today, self.daily_quota.max(self.used(round.today))));
            let wait = self.pause(wait);
            tracing::warn!(source = %self.name, wait_secs = wait.as_secs(), "youtube daily quota used up; waiting for the reset at midnight Pacific time");
            return Failure::Stop(SourceError::RateLimited { wait });
        }
        if status == 429
            || has("rateLimitExceeded")
            || has("userRateLimitExceeded")
            || has("RATE_LIMIT_EXCEEDED")
        {
            self.refund(round, cost);
            let asked = reply.status_error().retry_after();
            let wait = self.pause(asked.unwrap_or(Duration::from_secs(100)));
            return Failure::Stop(SourceError::RateLimited { wait });
        }
        if has("keyInvalid") || has("API_KEY_INVALID") || message.contains("API key not valid") {
            self.refund(round, cost);
            return Failure::Stop(SourceError::Config(format!(
                "YouTube refused the API key (HTTP {status} keyInvalid); create a key at https://console.cloud.google.com/apis/credentials in a project with the YouTube Data API v3 enabled, and set key"
            )));
        }
        if has("accessNotConfigured") || has("SERVICE_DISABLED") {
            self.refund(round, cost);
            return Failure::Stop(SourceError::Config(format!(
                "the YouTube Data API v3 is not enabled for the key's project (HTTP {status}); enable it at https://console.cloud.google.com/apis/library/youtube.googleapis.com"
            )));
        }
        if status == 403 && (has("ipRefererBlocked") || has("API_KEY_HTTP_REFERRER_BLOCKED")) {
            self.refund(round, cost);
            return Failure::Stop(SourceError::Config(format!(
                "the API key's restrictions refuse this server (HTTP 403: {message}); allow its IP address, or remove the restriction, at https://console.cloud.google.com/apis/credentials"
            )));
        }
        if status >= 500 {
            // Before anything answered, the API looks down: stop here. After, only this
            // listing failed.
            if !round.answered {
                let retry_after = reply.status_error().retry_after();
                if let Some(wait) = retry_after {
                    self.pause(wait);
                }
                return Failure::Stop(SourceError::Status {
                    status,
                    retry_after: retry_after.map(|w| w.min(DEFAULT_MAX_RETRY_AFTER)),
                });
            }
            return Failure::Skip(format!("{what}: YouTube answered HTTP {status}"));
        }
        round.answered = true;
        if has("commentsDisabled") {
            return Failure::Gone(format!("comments are turned off on {what}"));
        }
        if has("videoNotFound") || has("channelNotFound") || status == 404 {
            return Failure::Gone(format!(
                "{what} was not found (HTTP {status}); check channels"
            ));
        }
        if has("invalidPageToken") {
            return Failure::BadPageToken(format!("HTTP {status} invalidPageToken"));
        }
        if status == 403 && has("forbidden") {
            return Failure::Gone(format!(
                "{what} cannot be read (HTTP 403 forbidden: made private or its comments restricted)"
            ));
        }
        let reason = reasons.first().copied().unwrap_or("badRequest");
        Failure::Skip(format!(
            "{what}: YouTube refused the request (HTTP {status} {reason}: {message})"
        ))
    }

    /// A text from Google with the key taken out, should it ever echo it.
    fn scrub(&self, s: &str) -> String {
        let s: String = s.chars().take(300).collect();
        let key = self.key.expose();
        if key.is_empty() {
            s
        } else {
            s.replace(key, "***")
        }
    }

    /// Reads one listing newest first down to its watermark, adding its new comments to
    /// `out`. A listing with more new comments than `MAX_PAGES` pages (or one that failed
    /// part-way) keeps where it stopped (`rs:{id}`: the newest comment read and the next
    /// page's token); the next poll reads on from there down to the watermark before the
    /// watermark moves, so a backlog is read to its end, not skipped. `Err` only for a
    /// failure of the whole source.
    async fn read_listing(
        &mut self,
        round: &mut Round,
        listing: Listing<'_>,
        state: &mut SourceState,
        seen: &mut BTreeMap<String, i64>,
        out: &mut Vec<Mention>,
    ) -> Result<(), SourceError> {
        let (param, id, what) = match listing {
            Listing::Channel(c) => ("allThreadsRelatedToChannelId", c, format!("channel {c}")),
            Listing::Video(v) => ("videoId", v, format!("video {v}")),
        };
        let now = round.now;
        let wm_key = format!("wm:{id}");
        let rs_key = format!("rs:{id}");
        let watermark: Option<i64> = state.extra.get(&wm_key).and_then(|w| w.parse().ok());
        let resume = watermark.and(read_resume(state, &rs_key));
        let resumed = resume.is_some();
        let resume_fails = resume.as_ref().map_or(0, |(_, _, fails)| *fails);
        let floor = watermark.map_or(now - INITIAL_LOOKBACK_SECS, |w| w - OVERLAP_SECS);
        let mut newest = resume
            .as_ref()
            .map(|(top, _, _)| *top)
            .or(watermark)
            .unwrap_or(now - INITIAL_LOOKBACK_SECS);
        let mut page_token: Option<String> = resume.map(|(_, token, _)| token);
        let mut complete = false;
        let mut read_any = false;
        let mut stop = None;
        for _ in 0..MAX_PAGES {
            if !self.can_spend(round.today, LIST_COST) {
                self.warn(format!(
                    "skipped the comments of {what}: the daily quota of {} units is spent; it resets at midnight Pacific time",
                    self.daily_quota
                ));
                break;
            }
            let max = PAGE_SIZE.to_string();
            let mut params = vec![
                ("part", "snippet"),
                (param, id),
                ("order", "time"),
                ("maxResults", max.as_str()),
                ("textFormat", "html"),
            ];
            if let Some(t) = &page_token {
                params.push(("pageToken", t.as_str()));
            }
            let reply = match self
                .call(round, LIST_COST, "commentThreads", &params, &what)
                .await
            {
                Ok(reply) => reply,
                Err(Failure::Stop(e)) => {
                    stop = Some(e);
                    break;
                }
                Err(Failure::Skip(why)) => {
                    self.warn(format!("skipped {why}"));
                    break;
                }
                Err(Failure::Gone(why)) => {
                    if let Listing::Video(v) = listing {
                        self.warn(format!("skipped {why}; no longer followed"));
                        untrack(state, v);
                    } else {
                        self.warn(format!("skipped {why}"));
                    }
                    return Ok(());
                }
                Err(Failure::BadPageToken(why)) => {
                    // The saved place in the backlog cannot be reached any more. The
                    // watermark has not moved, so the next poll reads the listing again from
                    // its newest comment down to it (seen ids keep what was handed on from
                    // repeating) and nothing in between is lost.
                    self.warn(format!(
                        "the saved place in the backlog of {what} expired ({why}); the next poll reads it again from the newest comment"
                    ));
                    state.extra.remove(&rs_key);
                    return Ok(());
                }
            };
            let list: ThreadList = match decode_json(&reply.bytes, "the YouTube commentThreads API")
            {
                Ok(list) => list,
                Err(e) => {
                    self.warn(format!("skipped {what}: {e}"));
                    break;
                }
            };
            read_any = true;
            let mut reached_floor = false;
            for thread in list.items {
                let published = thread.snippet.top_level_comment.snippet.published_at;
                let ts = published.timestamp();
                if ts < floor {
                    reached_floor = true;
                    break;
                }
                newest = newest.max(ts);
                let cid = thread.snippet.top_level_comment.id.clone();
                if seen.contains_key(&cid) {
                    continue;
                }
                seen.insert(cid, ts);
                if let Some(m) = self.to_mention(thread, listing) {
                    out.push(m);
                }
            }
            page_token = list.next_page_token.filter(|t| !t.is_empty());
            if reached_floor || page_token.is_none() {
                complete = true;
                break;
            }
        }
        if complete || (watermark.is_none() && read_any) {
            // Read down to the watermark (or, the first time, back one hour: older comments
            // of a first read that ran out of pages are history, not news).
            state.extra.insert(wm_key, newest.to_string());
            state.extra.remove(&rs_key);
        } else if resumed && !read_any && stop.is_none() {
            // The saved page itself failed (not the quota or the whole API): try it again a
            // few times, then read from the newest comment again rather than be stuck on it
            // (the watermark has not moved, so nothing is skipped).
            let fails = resume_fails + 1;
            if fails >= MAX_RESUME_FAILS {
                self.warn(format!(
                    "gave up the saved place in the backlog of {what} after {fails} failed tries; the next poll reads it again from the newest comment"
                ));
                state.extra.remove(&rs_key);
            } else if let Some(token) = &page_token {
                write_resume(state, &rs_key, newest, token, fails);
            }
        } else if let (Some(_), Some(token)) = (watermark, &page_token) {
            tracing::info!(source = %self.name, listing = %what, "more new comments than one poll reads; the next poll reads on from here");
            write_resume(state, &rs_key, newest, token, 0);
        }
        match stop {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn to_mention(&self, thread: Thread, listing: Listing<'_>) -> Option<Mention> {
        let comment = thread.snippet.top_level_comment;
        let s = comment.snippet;
        let text = match s.text_display.as_deref() {
            Some(t) if !t.trim().is_empty() => html_to_text(t),
            _ => s.text_original.clone().unwrap_or_default(),
        };
        if text.is_empty() {
            return None;
        }
        // Every comment on the brand's own channel is for the brand; on a video search
        // found, only those naming it may match (the rules decide).
        if matches!(listing, Listing::Video(_))
            && self.prefilter.as_ref().is_some_and(|p| !p.accepts(&text))
        {
            return None;
        }
        let video = s.video_id.or(thread.snippet.video_id);
        let url = match (&video, &thread.snippet.channel_id) {
            (Some(v), _) => format!("https://www.youtube.com/watch?v={v}&lc={}", comment.id),
            (None, Some(c)) => format!("https://www.youtube.com/channel/{c}"),
            (None, None) => return None,
        };
        Some(Mention {
            item_id: comment.id,
            source: self.name.clone(),
            source_kind: SourceKind::Youtube.as_str().to_string(),
            url: Some(url),
            title: None,
            text,
            author: s.author_display_name.filter(|a| !a.is_empty()),
            // Subscriber counts cost a `channels.list` unit per author.
            author_reach: None,
            published: Some(s.published_at),
            lang: None,
            rating: None,
        })
    }

    /// Searches new videos when a search is due and affordable; adds the new ones to `out`
    /// as mentions and to the followed videos. A search that fails is skipped with a warning
    /// and tried again a search interval later (`search_tried`), not every poll; `Err` only
    /// for a failure of the whole source.
    async fn search_videos(
        &mut self,
        round: &mut Round,
        state: &mut SourceState,
        out: &mut Vec<Mention>,
    ) -> Result<(), SourceError> {
        let Some(q) = self.search.clone() else {
            return Ok(());
        };
        let (today, now) = (round.today, round.now);
        let last: Option<i64> = state.extra.get("searched_at").and_then(|s| s.parse().ok());
        let tried: Option<i64> = state.extra.get("search_tried").and_then(|s| s.parse().ok());
        if last.max(tried).is_some_and(|l| now - l < SEARCH_EVERY_SECS) {
            return Ok(());
        }
        // The channel listings come first: a search must leave one page each paid for.
        let reserve = self.channels.len() as u64 * LIST_COST;
        if !self.can_spend(today, SEARCH_COST + reserve) {
            let left = self.daily_quota.saturating_sub(self.used(today));
            self.warn(format!(
                "skipped the video search: it costs {SEARCH_COST} units and {left} of the daily {} are left; it resets at midnight Pacific time",
                self.daily_quota
            ));
            return Ok(());
        }
        // The first search looks for videos of the last `TRACK_DAYS` to follow; later ones
        // overlap the previous by a search interval (videos reach the index late).
        let after = match last {
            Some(l) => l - SEARCH_EVERY_SECS,
            None => now - TRACK_DAYS * 86_400,
        };
        let after = DateTime::<Utc>::from_timestamp(after, 0)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let max = MAX_VIDEOS.to_string();
        let params = [
            ("part", "snippet"),
            ("q", q.as_str()),
            ("type", "video"),
            ("order", "date"),
            ("publishedAfter", after.as_str()),
            ("maxResults", max.as_str()),
        ];
        let what = "the video search";
        let failed = match self.call(round, SEARCH_COST, "search", &params, what).await {
            Ok(reply) => match decode_json::<SearchList>(&reply.bytes, "the YouTube search API") {
                Ok(list) => Ok(list),
                Err(e) => Err(format!("{what}: {e}")),
            },
            Err(Failure::Stop(e)) => {
                // Charged (a 5xx, a timeout): not again before the next search interval.
                if round.counted > 0 {
                    state.extra.insert("search_tried".into(), now.to_string());
                }
                return Err(e);
            }
            Err(Failure::Skip(why) | Failure::Gone(why) | Failure::BadPageToken(why)) => {
                Err(if why.starts_with(what) {
                    why
                } else {
                    format!("{what}: {why}")
                })
            }
        };
        let list = match failed {
            Ok(list) => list,
            Err(why) => {
                self.warn(format!(
                    "skipped {why}; it is tried again in {} minutes",
                    SEARCH_EVERY_SECS / 60
                ));
                state.extra.insert("search_tried".into(), now.to_string());
                return Ok(());
            }
        };
        let mut tracked = read_videos(state);
        for item in list.items {
            let (Some(id), Some(snippet)) = (item.id.video_id, item.snippet) else {
                continue;
            };
            let published = snippet.published_at.timestamp();
            if tracked.contains_key(&id) || published < now - TRACK_DAYS * 86_400 {
                continue;
            }
            tracked.insert(id.clone(), published);
            // The first search's older finds are followed, not announced: history.
            if last.is_none() && published < now - INITIAL_LOOKBACK_SECS {
                continue;
            }
            let title = snippet
                .title
                .as_deref()
                .map(html_to_text)
                .filter(|t| !t.is_empty());
            out.push(Mention {
                url: Some(format!("https://www.youtube.com/watch?v={id}")),
                item_id: id,
                source: self.name.clone(),
                source_kind: SourceKind::Youtube.as_str().to_string(),
                title,
                text: snippet
                    .description
                    .as_deref()
                    .map(html_to_text)
                    .unwrap_or_default(),
                author: snippet.channel_title.filter(|c| !c.is_empty()),
                author_reach: None,
                published: Some(snippet.published_at),
                lang: None,
                rating: None,
            });
        }
        write_videos(state, tracked, now);
        state.extra.insert("searched_at".into(), now.to_string());
        state.extra.remove("search_tried");
        Ok(())
    }
}

#[async_trait::async_trait]
impl Source for YoutubeSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> SourceKind {
        SourceKind::Youtube
    }

    fn take_warning(&mut self) -> Option<String> {
        self.warning.take()
    }

    /// Units left of `daily_quota` today, as this source counted its spending; resets at
    /// midnight Pacific time.
    fn quota(&self) -> Option<Quota> {
        let now = Utc::now();
        Some(Quota {
            unit: "units",
            remaining: self
                .daily_quota
                .saturating_sub(self.used(pacific_today(now))),
            limit: Some(self.daily_quota),
            resets_at: Some(
                now + chrono::Duration::from_std(until_pacific_midnight(now)).unwrap_or_default(),
            ),
        })
    }

    async fn poll(&mut self, state: &mut SourceState) -> Result<Vec<Mention>, SourceError> {
        if let Some(until) = self.paused_until {
            let now = Instant::now();
            if until > now {
                return Err(SourceError::RateLimited { wait: until - now });
            }
            self.paused_until = None;
        }
        self.warning = None;
        let now_utc = Utc::now();
        let now = now_utc.timestamp();
        let today = pacific_today(now_utc);
        // What the saved state says was spent today (a restart), unless this process counted more.
        let saved: u64 = if state.extra.get("quota_day").map(String::as_str)
            == Some(today.to_string().as_str())
        {
            state
                .extra
                .get("quota_used")
                .and_then(|u| u.parse().ok())
                .unwrap_or(0)
        } else {
            0
        };
        self.spent = Some((today, self.used(today).max(saved)));

        let mut round = Round {
            today,
            now,
            deadline: Instant::now().checked_add(self.timeout.mul_f64(0.9)),
            counted: 0,
            answered: false,
        };
        let mut seen = read_seen(state);
        let mut mentions = Vec::new();
        let mut stop = self
            .search_videos(&mut round, state, &mut mentions)
            .await
            .err();
        for c in self.channels.clone() {
            if stop.is_some() {
                break;
            }
            stop = self
                .read_listing(
                    &mut round,
                    Listing::Channel(&c),
                    state,
                    &mut seen,
                    &mut mentions,
                )
                .await
                .err();
        }
        let videos: Vec<String> = {
            let mut v: Vec<(String, i64)> = read_videos(state).into_iter().collect();
            v.sort_by_key(|(_, ts)| std::cmp::Reverse(*ts));
            v.into_iter().map(|(id, _)| id).collect()
        };
        for v in videos {
            if stop.is_some() {
                break;
            }
            stop = self
                .read_listing(
                    &mut round,
                    Listing::Video(&v),
                    state,
                    &mut seen,
                    &mut mentions,
                )
                .await
                .err();
        }
        if let Some(e) = stop {
            // A poll that counted nothing and got no answer changed nothing: it fails, and
            // the state stays as it was. One that counted units or read something delivers
            // what it read, so the units and the places reached are saved.
            if round.counted == 0 && !round.answered {
                return Err(e);
            }
            self.warn(format!(
                "stopped this poll early ({e}); the listings not read are read next time"
            ));
        }
        // Watermarks and backlogs of videos no longer followed are dropped.
        let tracked = read_videos(state);
        let channels = self.channels.clone();
        state.extra.retain(|k, _| {
            k.strip_prefix("wm:")
                .or_else(|| k.strip_prefix("rs:"))
                .is_none_or(|id| tracked.contains_key(id) || channels.iter().any(|c| c == id))
        });
        write_seen(state, seen, now);
        state.extra.insert("quota_day".into(), today.to_string());
        state
            .extra
            .insert("quota_used".into(), self.used(today).to_string());
        Ok(mentions)
    }
}

/// Today's date in Pacific time, the day YouTube's quota counts.
pub(crate) fn pacific_today(now: DateTime<Utc>) -> NaiveDate {
    now.with_timezone(&Los_Angeles).date_naive()
}

/// Time left until the next midnight Pacific time, when YouTube's quota resets.
pub(crate) fn until_pacific_midnight(now: DateTime<Utc>) -> Duration {
    let tomorrow = pacific_today(now) + chrono::Days::new(1);
    let midnight = tomorrow.and_hms_opt(0, 0, 0).unwrap_or_default();
    let next = Los_Angeles
        .from_local_datetime(&midnight)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(now + chrono::Duration::hours(24));
    (next - now).to_std().unwrap_or(Duration::from_secs(60))
}

/// Followed videos: `id@published …`.
fn read_videos(state: &SourceState) -> BTreeMap<String, i64> {
    super::seen::decode(state.extra.get("videos"))
}

/// Keeps the `MAX_VIDEOS` newest videos published within `TRACK_DAYS`.
fn write_videos(state: &mut SourceState, videos: BTreeMap<String, i64>, now: i64) {
    let mut v: Vec<(String, i64)> = videos
        .into_iter()
        .filter(|(_, ts)| *ts >= now - TRACK_DAYS * 86_400)
        .collect();
    v.sort_by_key(|(_, ts)| std::cmp::Reverse(*ts));
    v.truncate(MAX_VIDEOS);
    write_pairs(state, "videos", v);
}

fn untrack(state: &mut SourceState, video: &str) {
    let mut v = read_videos(state);
    v.remove(video);
    let v: Vec<(String, i64)> = v.into_iter().collect();
    write_pairs(state, "videos", v);
    state.extra.remove(&format!("wm:{video}"));
    state.extra.remove(&format!("rs:{video}"));
}

/// Where a listing's backlog goes on: the newest comment read so far and the next page's
/// token (`rs:{id}` = `{newest} {token}`).
/// `rs:{id}` = "NEWEST TOKEN [FAILS]": the newest comment read, the next page's token, and
/// how many polls in a row that page failed (absent in states saved before it was counted).
fn read_resume(state: &SourceState, key: &str) -> Option<(i64, String, u32)> {
    let mut parts = state.extra.get(key)?.split_whitespace();
    let top = parts.next()?.parse().ok()?;
    let token = parts.next()?.to_string();
    let fails = parts.next().and_then(|f| f.parse().ok()).unwrap_or(0);
    Some((top, token, fails))
}

fn write_resume(state: &mut SourceState, key: &str, newest: i64, token: &str, fails: u32) {
    let value = match fails {
        0 => format!("{newest} {token}"),
        n => format!("{newest} {token} {n}"),
    };
    state.extra.insert(key.to_string(), value);
}

fn read_seen(state: &SourceState) -> BTreeMap<String, i64> {
    super::seen::decode(state.extra.get("seen"))
}

/// Keeps the comment ids a next poll may read again: those of the last day, and any at or
/// above the oldest listing's overlap (after a long outage), the newest `MAX_SEEN`.
fn write_seen(state: &mut SourceState, seen: BTreeMap<String, i64>, now: i64) {
    let oldest_floor = state
        .extra
        .iter()
        .filter(|(k, _)| k.starts_with("wm:"))
        .filter_map(|(_, w)| w.parse::<i64>().ok())
        .min()
        .map_or(now, |w| w - OVERLAP_SECS);
    let keep_from = oldest_floor.min(now - 86_400);
    let mut v: Vec<(String, i64)> = seen
        .into_iter()
        .filter(|(_, ts)| *ts >= keep_from)
        .collect();
    v.sort_by_key(|(_, ts)| std::cmp::Reverse(*ts));
    v.truncate(MAX_SEEN);
    write_pairs(state, "seen", v);
}

fn write_pairs(state: &mut SourceState, key: &str, pairs: Vec<(String, i64)>) {
    if pairs.is_empty() {
        state.extra.remove(key);
        return;
    }
    let joined: Vec<String> = pairs.iter().map(|(id, ts)| format!("{id}@{ts}")).collect();
    state.extra.insert(key.to_string(), joined.join(" "));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quota_day_is_the_pacific_day_and_resets_at_its_midnight() {
        // 07:30 UTC on 1 July is 00:30 PDT: a new Pacific day began half an hour ago.
        let t = Utc.with_ymd_and_hms(2024, 7, 1, 7, 30, 0).unwrap();
        assert_eq!(
            pacific_today(t),
            NaiveDate::from_ymd_opt(2024, 7, 1).unwrap()
        );
        assert_eq!(
            until_pacific_midnight(t),
            Duration::from_secs(23 * 3600 + 1800)
        );
        // 06:59 UTC is still the day before in PDT; in winter (PST, UTC-8) midnight is 08:00 UTC.
        let t = Utc.with_ymd_and_hms(2024, 7, 1, 6, 59, 0).unwrap();
        assert_eq!(
            pacific_today(t),
            NaiveDate::from_ymd_opt(2024, 6, 30).unwrap()
        );
        assert_eq!(until_pacific_midnight(t), Duration::from_secs(60));
        let t = Utc.with_ymd_and_hms(2024, 1, 15, 7, 0, 0).unwrap();
        assert_eq!(until_pacific_midnight(t), Duration::from_secs(3600));
    }

    #[test]
    fn channel_ids_are_checked() {
        assert!(is_channel_id("UC_x5XG1OV2P6uZZ5FSM9Ttw"));
        assert!(!is_channel_id("@GoogleDevelopers"));
        assert!(!is_channel_id("UC_x5XG1OV2P6uZZ5FSM9Tt"));
    }
}
