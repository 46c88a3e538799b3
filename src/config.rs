//! Configuration: raw TOML plus `${VAR}` / `${VAR:-default}` interpolation → a validated
//! `Config`. Validation collects every problem with its key and line instead of stopping at
//! the first, so `mentiondesk check` can list them all. No I/O happens here after loading.

use crate::model::{Priority, Target};
use crate::rules::{Defaults, RuleSet, EXCLUDE_RULE_NAME};
use crate::sources::{ApiOptions, SourceKind, SourceSpec};
use crate::util::parse_duration;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use toml_edit::{ImDocument, Item, Table, Value};

pub const DEFAULT_PATH: &str = "config/mentiondesk.toml";
pub const DEFAULT_SLACK_API_URL: &str = "https://slack.com/api";
pub const DEFAULT_DISCORD_API_URL: &str = "https://discord.com";
/// Largest feed body accepted unless a source says otherwise: 10 MB after decompression.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 10 * 1024 * 1024;

/// A secret from the config. Its `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    /// The value, for the one place that sends it (an SDK client or an HMAC).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub store: StoreConfig,
    pub server: ServerConfig,
    pub slack: Option<SlackConfig>,
    pub discord: Option<DiscordConfig>,
    pub sources: Vec<SourceSpec>,
    pub rules: Vec<RuleConfig>,
    pub rules_defaults: RulesDefaults,
    /// Every rule compiled once; shared by all tasks.
    pub matcher: Arc<RuleSet>,
    /// Things that are allowed but probably not meant (a rule with a bare `NEAR`): `check`
    /// prints them and still exits 0; `run` logs them once at start.
    pub warnings: Vec<Problem>,
    pub desk: DeskConfig,
    /// `[digest]` or several `[[digest]]`; empty = no digest.
    pub digest: Vec<DigestConfig>,
    pub spikes: SpikeConfig,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoreConfig {
    pub path: PathBuf,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SlackConfig {
    pub bot_token: Secret,
    pub signing_secret: Secret,
    pub app_token: Option<Secret>,
    pub api_url: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DiscordConfig {
    pub bot_token: Secret,
    pub application_id: u64,
    /// Hex Ed25519 key that signs interactions (Developer Portal → General Information).
    pub public_key: String,
    pub api_url: String,
    /// Register `/desk` in this guild (instant) instead of globally.
    pub guild_id: Option<u64>,
    /// Receive interactions over the gateway instead of `POST /discord/interactions`.
    pub gateway: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RuleConfig {
    pub name: String,
    pub query: String,
    pub alert: Vec<Target>,
    pub priority: Priority,
}

/// `[rules_defaults]`: exclusions that apply to every rule.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RulesDefaults {
    pub exclude: Option<String>,
    pub muted_authors: Vec<String>,
    pub muted_sites: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeskConfig {
    pub command: String,
    pub escalate_after: Duration,
    pub escalate_to: Option<Target>,
    pub remind_after: Option<Duration>,
    pub allowed: Vec<String>,
    /// For "tomorrow 9:00" snoozes.
    pub timezone: chrono_tz::Tz,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DigestConfig {
    /// Names the digest in its title, in `digest --now NAME` and in the store's slot marker.
    pub name: String,
    pub schedule: String,
    pub timezone: chrono_tz::Tz,
    pub to: Vec<Target>,
    /// Attach the PNG chart (default true).
    pub chart: bool,
}

/// Spike detection per rule (`[spikes]`); on by default.
#[derive(Debug, Clone, PartialEq)]
pub struct SpikeConfig {
    pub enabled: bool,
    /// The window counted against the baseline.
    pub window: Duration,
    /// How much history the baseline reads (mean and σ of window-sized buckets).
    pub baseline: Duration,
    /// Standard deviations above the mean that count as a spike.
    pub sigma: f64,
    /// Fewer mentions than this in the window never alert, however quiet the brand.
    pub min_count: u32,
    /// No second spike alert for the same rule within this time.
    pub cooldown: Duration,
    /// How often the rules are checked.
    pub every: Duration,
}

impl Default for SpikeConfig {
    fn default() -> SpikeConfig {
        SpikeConfig {
            enabled: true,
            window: Duration::from_secs(3600),
            baseline: Duration::from_secs(14 * 86_400),
            sigma: 3.0,
            min_count: 10,
            cooldown: Duration::from_secs(6 * 3600),
            every: Duration::from_secs(300),
        }
    }
}

/// One thing wrong with the config, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub key: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source} (pass --config PATH or set MENTIONDESK_CONFIG)")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", render_problems(.path, .problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

fn render_problems(path: &Path, problems: &[Problem]) -> String {
    let mut out = format!(
        "{} has {} problem{}:",
        path.display(),
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for p in problems {
        out.push_str(&format!(
            "\n  {}:{}: {}: {}",
            path.display(),
            p.line,
            p.key,
            p.message.replace('\n', "\n      ")
        ));
    }
    out
}

/// Reads and validates the config file, taking `${VAR}` values from the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path, &|k| std::env::var(k).ok())
}

/// Validates config text; `env` answers `${VAR}` look-ups (tests pass their own).
pub fn parse(
    text: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let invalid = |problems| ConfigError::Invalid {
        path: path.to_path_buf(),
        problems,
    };
    let doc = ImDocument::parse(text).map_err(|e| {
        let line = e.span().map_or(1, |s| LineIndex::new(text).line(s.start));
        invalid(vec![Problem {
            line,
            key: "(syntax)".into(),
            message: e.message().trim().to_string(),
        }])
    })?;
    let mut v = Validator {
        lines: LineIndex::new(text),
        env,
        problems: Vec::new(),
        warnings: Vec::new(),
    };
    let config = v.config(doc.as_table(), path);
    if v.problems.is_empty() {
        Ok(config.expect("a config without problems is complete"))
    } else {
        v.problems.sort_by_key(|p| p.line);
        Err(invalid(v.problems))
    }
}

/// Where each line starts, built once per parse: a key's line is then a binary search, where
/// counting newlines from the top for every key read made loading quadratic in the file's size.
struct LineIndex {
    /// Byte offset of the first byte of every line; `starts[0] == 0`.
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> LineIndex {
        #[cfg(test)]
        work::add(text.len() as u64);
        let mut starts = Vec::with_capacity(text.len() / 32 + 1);
        starts.push(0);
        starts.extend(memchr::memchr_iter(b'\n', text.as_bytes()).map(|i| i + 1));
        LineIndex { starts }
    }

    /// The 1-based line holding byte `offset`.
    fn line(&self, offset: usize) -> usize {
        #[cfg(test)]
        work::add(u64::from(self.starts.len().ilog2()) + 1);
        self.starts.partition_point(|&s| s <= offset)
    }
}

/// Counts the work of line look-ups (bytes scanned plus index entries probed) on this thread,
/// so a test can prove loading stays linear without timing anything.
#[cfg(test)]
mod work {
    use std::cell::Cell;

    thread_local! {
        static UNITS: Cell<u64> = const { Cell::new(0) };
    }

    pub(super) fn add(n: u64) {
        UNITS.with(|u| u.set(u.get() + n));
    }

    /// Returns the work counted since the last call and starts counting afresh.
    pub(super) fn take() -> u64 {
        UNITS.with(|u| u.replace(0))
    }
}

struct Validator<'a> {
    lines: LineIndex,
    env: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<Problem>,
    warnings: Vec<Problem>,
}

const TOP_KEYS: &[&str] = &[
    "store",
    "server",
    "slack",
    "discord",
    "sources",
    "rules",
    "rules_defaults",
    "desk",
    "digest",
    "spikes",
];
const RULES_DEFAULTS_KEYS: &[&str] = &["exclude", "muted_authors", "muted_sites"];
const STORE_KEYS: &[&str] = &["path"];
const SERVER_KEYS: &[&str] = &["listen"];
const SLACK_KEYS: &[&str] = &["bot_token", "signing_secret", "app_token", "api_url"];
const DISCORD_KEYS: &[&str] = &[
    "bot_token",
    "application_id",
    "public_key",
    "api_url",
    "guild_id",
    "gateway",
];
const SOURCE_KEYS: &[&str] = &[
    "name",
    "kind",
    "url",
    "path",
    "query",
    "every",
    "timeout",
    "max_body_bytes",
    "allow_private",
    "instances",
    "tags",
    "token",
    "stream",
    "subreddits",
    "client_id",
    "client_secret",
    "user_agent",
    "token_url",
    "failover_url",
    "handle",
    "app_password",
    "search_url",
    "search_every",
];
const RULE_KEYS: &[&str] = &["name", "query", "alert", "priority"];
const DESK_KEYS: &[&str] = &[
    "command",
    "escalate_after",
    "escalate_to",
    "remind_after",
    "allowed",
    "timezone",
];
const DIGEST_KEYS: &[&str] = &["name", "schedule", "timezone", "to", "chart"];
const SPIKE_KEYS: &[&str] = &[
    "enabled",
    "window",
    "baseline",
    "sigma",
    "min_count",
    "cooldown",
    "every",
];

impl Validator<'_> {
    fn problem(&mut self, line: usize, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            line,
            key: key.to_string(),
            message: message.into(),
        });
    }

    fn line(&self, span: Option<std::ops::Range<usize>>) -> usize {
        span.map_or(1, |s| self.lines.line(s.start))
    }

    fn config(&mut self, root: &Table, path: &Path) -> Option<Config> {
        self.known_keys(root, "", TOP_KEYS);

        let store_t = self.table(root, "store");
        if let Some(t) = store_t {
            self.known_keys(t, "store", STORE_KEYS);
        }
        let store_path = store_t
            .and_then(|t| self.string(t, "store", "path"))
            .unwrap_or_else(|| "data/mentiondesk.sled".into());

        let server_t = self.table(root, "server");
        if let Some(t) = server_t {
            self.known_keys(t, "server", SERVER_KEYS);
        }
        let listen = match server_t.and_then(|t| self.string(t, "server", "listen").map(|s| (t, s)))
        {
            Some((t, s)) => match s.parse::<SocketAddr>() {
                Ok(a) => Some(a),
                Err(_) => {
                    let line = self.key_line(t, "listen");
                    self.problem(
                        line,
                        "server.listen",
                        format!(
                            "{s:?} is not an address; write host:port, e.g. \"127.0.0.1:8080\""
                        ),
                    );
                    None
                }
            },
            None => Some(SocketAddr::from(([127, 0, 0, 1], 8080))),
        };

        let slack = self.table(root, "slack").and_then(|t| self.slack(t));
        let discord = self.table(root, "discord").and_then(|t| self.discord(t));
        let sources = self.sources(root);
        let rules = self.rules(root);
        let desk = self.desk(root);
        let digest = self.digests(root);
        let spikes = self.spikes(root);

        let rules_defaults = self.rules_defaults(root);
        let matcher = self.compile_rules(root, &rules, &rules_defaults);

        Some(Config {
            path: path.to_path_buf(),
            store: StoreConfig {
                path: PathBuf::from(store_path),
            },
            server: ServerConfig { listen: listen? },
            slack,
            discord,
            sources,
            rules,
            rules_defaults,
            matcher: Arc::new(matcher?),
            warnings: std::mem::take(&mut self.warnings),
            desk: desk?,
            digest,
            spikes: spikes?,
        })
    }

    fn slack(&mut self, t: &Table) -> Option<SlackConfig> {
        self.known_keys(t, "slack", SLACK_KEYS);
        let bot_token = self.secret(t, "slack", "bot_token", "SLACK_BOT_TOKEN");
        let signing_secret = self.secret(t, "slack", "signing_secret", "SLACK_SIGNING_SECRET");
        let app_token = t
            .contains_key("app_token")
            .then(|| self.secret(t, "slack", "app_token", "SLACK_APP_TOKEN"))
            .flatten();
        let api_url = self
            .string(t, "slack", "api_url")
            .unwrap_or_else(|| DEFAULT_SLACK_API_URL.into());
        if !(api_url.starts_with("https://") || api_url.starts_with("http://")) {
            let line = self.key_line(t, "api_url");
            self.problem(
                line,
                "slack.api_url",
                format!("{api_url:?} is not an http(s) URL"),
            );
        }
        Some(SlackConfig {
            bot_token: bot_token?,
            signing_secret: signing_secret?,
            app_token,
            api_url,
        })
    }

    fn discord(&mut self, t: &Table) -> Option<DiscordConfig> {
        self.known_keys(t, "discord", DISCORD_KEYS);
        let bot_token = self.secret(t, "discord", "bot_token", "DISCORD_BOT_TOKEN");
        let snowflake = |v: &mut Self, key: &str, required: bool| -> Option<u64> {
            if !t.contains_key(key) && !required {
                return None;
            }
            let s = if required {
                v.required_string(t, "discord", key)?
            } else {
                v.string(t, "discord", key)?
            };
            match s.parse::<u64>() {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    let line = v.key_line(t, key);
                    v.problem(line, &format!("discord.{key}"), format!("{s:?} is not a Discord id; copy the number from the Developer Portal (in quotes)"));
                    None
                }
            }
        };
        let application_id = snowflake(self, "application_id", true);
        let guild_id = snowflake(self, "guild_id", false);
        let public_key = self.required_string(t, "discord", "public_key");
        if let Some(k) = &public_key {
            if k.len() != 64 || !k.bytes().all(|b| b.is_ascii_hexdigit()) {
                let line = self.key_line(t, "public_key");
                self.problem(line, "discord.public_key", "must be the 64-character hex public key from the Developer Portal's General Information page");
            }
        }
        let api_url = self
            .string(t, "discord", "api_url")
            .unwrap_or_else(|| DEFAULT_DISCORD_API_URL.into());
        if !(api_url.starts_with("https://") || api_url.starts_with("http://")) {
            let line = self.key_line(t, "api_url");
            self.problem(
                line,
                "discord.api_url",
                format!("{api_url:?} is not an http(s) URL"),
            );
        }
        let gateway = self.boolean(t, "discord", "gateway").unwrap_or(false);
        Some(DiscordConfig {
            bot_token: bot_token?,
            application_id: application_id?,
            public_key: public_key?,
            api_url,
            guild_id,
            gateway,
        })
    }

    fn sources(&mut self, root: &Table) -> Vec<SourceSpec> {
        let mut out = Vec::new();
        let mut names = HashSet::new();
        for (i, t) in self
            .array_of_tables(root, "sources")
            .into_iter()
            .enumerate()
        {
            let key = format!("sources[{i}]");
            self.known_keys(t, &key, SOURCE_KEYS);
            let name = self.required_string(t, &key, "name");
            if let Some(n) = &name {
                if !names.insert(n.clone()) {
                    let line = self.key_line(t, "name");
                    self.problem(
                        line,
                        &format!("{key}.name"),
                        format!("duplicate source name {n:?}; names must be unique"),
                    );
                }
                if n == crate::digest::report::SPIKE_SOURCE {
                    let line = self.key_line(t, "name");
                    self.problem(
                        line,
                        &format!("{key}.name"),
                        format!("{n:?} is reserved for spike alerts; choose another name"),
                    );
                }
            }
            let kind = self.required_string(t, &key, "kind").and_then(|k| {
                let parsed = SourceKind::parse(&k);
                let line = self.key_line(t, "kind");
                match parsed {
                    Some(_) => parsed,
                    None => {
                        self.problem(line, &format!("{key}.kind"), format!("unknown source kind {k:?}; expected one of rss, file, reddit, hackernews, bluesky, mastodon"));
                        None
                    }
                }
            });
            let url = self.string(t, &key, "url");
            let path = self.string(t, &key, "path").map(PathBuf::from);
            let query = self.string(t, &key, "query");
            match kind {
                Some(SourceKind::Rss) if url.is_none() => {
                    let line = self.line(t.span());
                    self.problem(
                        line,
                        &format!("{key}.url"),
                        "an rss source needs url = \"https://…/feed.xml\"",
                    );
                }
                Some(SourceKind::File) if path.is_none() => {
                    let line = self.line(t.span());
                    self.problem(
                        line,
                        &format!("{key}.path"),
                        "a file source needs path = \"path/to/mentions.jsonl\" (or a .xml feed)",
                    );
                }
                _ => {}
            }
            let api = self.source_api(t, &key, kind, query.as_deref());
            let ws = kind == Some(SourceKind::Bluesky);
            for (field, value) in [("url", &url), ("failover_url", &api.failover_url)] {
                if let Some(u) = value {
                    self.check_source_url(t, &key, field, u, ws);
                }
            }
            let default_every = match kind {
                Some(SourceKind::File | SourceKind::Bluesky) => Duration::from_secs(10),
                Some(SourceKind::Hackernews | SourceKind::Reddit | SourceKind::Mastodon) => {
                    Duration::from_secs(120)
                }
                _ => Duration::from_secs(300),
            };
            let every = self.duration(t, &key, "every").unwrap_or(default_every);
            let timeout = self
                .duration(t, &key, "timeout")
                .unwrap_or(Duration::from_secs(30));
            let max_body_bytes = self
                .integer(t, &key, "max_body_bytes")
                .unwrap_or(DEFAULT_MAX_BODY_BYTES);
            let allow_private = self.boolean(t, &key, "allow_private").unwrap_or(false);
            if let (Some(name), Some(kind)) = (name, kind) {
                out.push(SourceSpec {
                    name,
                    kind,
                    url,
                    path,
                    query,
                    every,
                    timeout,
                    max_body_bytes,
                    allow_private,
                    api,
                });
            }
        }
        out
    }

    /// The kind-specific keys of one `[[sources]]` entry, with a problem for each one the
    /// kind requires but lacks.
    fn source_api(
        &mut self,
        t: &Table,
        key: &str,
        kind: Option<SourceKind>,
        query: Option<&str>,
    ) -> ApiOptions {
        let mut api = ApiOptions {
            instances: self.string_array(t, key, "instances"),
            tags: self
                .string_array(t, key, "tags")
                .into_iter()
                .map(|tag| tag.trim_start_matches('#').to_string())
                .collect(),
            token: None,
            stream: self.boolean(t, key, "stream").unwrap_or(false),
            subreddits: self
                .string_array(t, key, "subreddits")
                .into_iter()
                .map(|s| {
                    s.trim_start_matches("/r/")
                        .trim_start_matches("r/")
                        .to_string()
                })
                .collect(),
            client_id: self.string(t, key, "client_id"),
            client_secret: None,
            user_agent: self.string(t, key, "user_agent"),
            token_url: self.string(t, key, "token_url"),
            failover_url: self.string(t, key, "failover_url"),
            handle: self
                .string(t, key, "handle")
                .map(|h| h.trim().trim_start_matches('@').to_string()),
            app_password: None,
            search_url: self.string(t, key, "search_url"),
            search_every: self.duration(t, key, "search_every"),
        };
        if t.contains_key("token") {
            api.token = self.secret(t, key, "token", "MASTODON_TOKEN");
        }
        let line = self.line(t.span());
        let needs_query = matches!(
            kind,
            Some(SourceKind::Hackernews | SourceKind::Reddit | SourceKind::Bluesky)
        );
        if needs_query && query.is_none_or(|q| q.trim().is_empty()) {
            let why = match kind {
                Some(SourceKind::Bluesky) => "its words prefilter the firehose",
                _ => "it is what the API is searched for",
            };
            self.problem(
                line,
                &format!("{key}.query"),
                format!("missing; add query = \"acme\" ({why})"),
            );
        }
        if kind == Some(SourceKind::Bluesky)
            && query.is_some_and(|q| {
                !q.trim().is_empty() && crate::sources::prefilter::positive_terms(q).is_empty()
            })
        {
            self.problem(
                line,
                &format!("{key}.query"),
                "names no word to look for (only NOT terms); the firehose cannot be filtered by it",
            );
        }
        match kind {
            Some(SourceKind::Mastodon) => {
                if api.instances.is_empty() {
                    self.problem(
                        line,
                        &format!("{key}.instances"),
                        "missing; add instances = [\"https://mastodon.social\"]",
                    );
                }
                for i in api.instances.clone() {
                    self.check_source_url(t, key, "instances", &i, false);
                }
                if api.tags.is_empty() {
                    self.problem(
                        line,
                        &format!("{key}.tags"),
                        "missing; add tags = [\"acme\"] (hashtags without #)",
                    );
                }
                if api.stream && api.token.is_none() {
                    let line = self.key_line(t, "stream");
                    self.problem(
                        line,
                        &format!("{key}.token"),
                        "stream = true needs token = \"${MASTODON_TOKEN}\" (the streaming API asks for one)",
                    );
                }
            }
            Some(SourceKind::Bluesky) => self.bluesky_search(t, key, &mut api),
            Some(SourceKind::Reddit) => {
                if api.subreddits.is_empty() {
                    self.problem(
                        line,
                        &format!("{key}.subreddits"),
                        "missing; add subreddits = [\"acme\", \"routers\"]",
                    );
                }
                if api.client_id.is_none() {
                    self.problem(
                        line,
                        &format!("{key}.client_id"),
                        "missing; add client_id = \"${REDDIT_CLIENT_ID}\" (from reddit.com/prefs/apps)",
                    );
                }
                api.client_secret = self.secret(t, key, "client_secret", "REDDIT_CLIENT_SECRET");
                if let Some(u) = api.token_url.clone() {
                    self.check_source_url(t, key, "token_url", &u, false);
                }
            }
            _ => {}
        }
        api
    }

    /// The optional search back-fill of a `bluesky` source: `handle` and `app_password` come
    /// together or not at all, and the other search keys mean nothing without them.
    fn bluesky_search(&mut self, t: &Table, key: &str, api: &mut ApiOptions) {
        if t.contains_key("app_password") {
            api.app_password = self.secret(t, key, "app_password", "BLUESKY_APP_PASSWORD");
        }
        if api.handle.as_deref().is_some_and(str::is_empty) {
            let line = self.key_line(t, "handle");
            self.problem(
                line,
                &format!("{key}.handle"),
                "is empty; write the account's handle, e.g. handle = \"brand.bsky.social\"",
            );
        }
        match (t.contains_key("handle"), t.contains_key("app_password")) {
            (true, false) => {
                let line = self.key_line(t, "handle");
                self.problem(
                    line,
                    &format!("{key}.app_password"),
                    "missing; the search back-fill signs in with handle and app_password together: add app_password = \"${BLUESKY_APP_PASSWORD}\" (create one in Bluesky under Settings → Privacy and security → App passwords), or remove handle to only stream",
                );
            }
            (false, true) => {
                let line = self.key_line(t, "app_password");
                self.problem(
                    line,
                    &format!("{key}.handle"),
                    "missing; the search back-fill signs in with handle and app_password together: add handle = \"brand.bsky.social\" (the account the app password belongs to), or remove app_password to only stream",
                );
            }
            (false, false) => {
                for field in ["search_url", "search_every"] {
                    if t.contains_key(field) {
                        let line = self.key_line(t, field);
                        self.problem(
                            line,
                            &format!("{key}.{field}"),
                            "has no effect without handle and app_password (the search back-fill needs an account); add both, or remove this key",
                        );
                    }
                }
            }
            (true, true) => {}
        }
        if let Some(u) = api.search_url.clone() {
            self.check_source_url(t, key, "search_url", &u, false);
        }
    }

    fn check_source_url(&mut self, t: &Table, key: &str, field: &str, u: &str, ws: bool) {
        let ok = if ws {
            u.starts_with("wss://") || u.starts_with("ws://")
        } else {
            u.starts_with("https://") || u.starts_with("http://")
        };
        if !ok {
            let line = self.key_line(t, field);
            let what = if ws { "a ws(s)" } else { "an http(s)" };
            self.problem(
                line,
                &format!("{key}.{field}"),
                format!("{u:?} is not {what} URL"),
            );
        }
    }

    fn rules(&mut self, root: &Table) -> Vec<RuleConfig> {
        let mut out = Vec::new();
        let mut names = HashSet::new();
        for (i, t) in self.array_of_tables(root, "rules").into_iter().enumerate() {
            let key = format!("rules[{i}]");
            self.known_keys(t, &key, RULE_KEYS);
            let name = self.required_string(t, &key, "name");
            if let Some(n) = &name {
                if !names.insert(n.clone()) {
                    let line = self.key_line(t, "name");
                    self.problem(
                        line,
                        &format!("{key}.name"),
                        format!("duplicate rule name {n:?}; names must be unique"),
                    );
                }
            }
            let query = self.required_string(t, &key, "query");
            let alert = self.targets(t, &key, "alert");
            if !t.contains_key("alert") {
                let line = self.line(t.span());
                self.problem(line, &format!("{key}.alert"), "missing; add alert = [\"slack:#channel\"] (without [slack], alerts print to the console)");
            }
            let priority = self.string(t, &key, "priority").and_then(|p| {
                let parsed = Priority::parse(&p);
                if parsed.is_none() {
                    let line = self.key_line(t, "priority");
                    self.problem(
                        line,
                        &format!("{key}.priority"),
                        format!("unknown priority {p:?}; expected low, normal, high or critical"),
                    );
                }
                parsed
            });
            if let (Some(name), Some(query)) = (name, query) {
                out.push(RuleConfig {
                    name,
                    query,
                    alert,
                    priority: priority.unwrap_or_default(),
                });
            }
        }
        out
    }

    fn rules_defaults(&mut self, root: &Table) -> RulesDefaults {
        let Some(t) = self.table(root, "rules_defaults") else {
            return RulesDefaults::default();
        };
        self.known_keys(t, "rules_defaults", RULES_DEFAULTS_KEYS);
        RulesDefaults {
            exclude: self.string(t, "rules_defaults", "exclude"),
            muted_authors: self.string_array(t, "rules_defaults", "muted_authors"),
            muted_sites: self.string_array(t, "rules_defaults", "muted_sites"),
        }
    }

    /// Compiles every rule with the global exclusions, reporting each bad one at the line of
    /// its `query` (or of `[rules_defaults].exclude`).
    fn compile_rules(
        &mut self,
        root: &Table,
        rules: &[RuleConfig],
        defaults: &RulesDefaults,
    ) -> Option<RuleSet> {
        let d = Defaults {
            exclude: defaults.exclude.as_deref(),
            muted_authors: defaults.muted_authors.iter().map(String::as_str).collect(),
            muted_sites: defaults.muted_sites.iter().map(String::as_str).collect(),
        };
        // Where `check` points for a rule's query: its line and key. Indexed by name once:
        // looking each failing or warned rule up in the lists would be quadratic when many
        // rules fail. The first rule of a name wins.
        let mut index_of: HashMap<&str, usize> = HashMap::with_capacity(rules.len());
        for (i, r) in rules.iter().enumerate() {
            index_of.entry(r.name.as_str()).or_insert(i);
        }
        let mut table_of: HashMap<&str, &Table> = HashMap::new();
        for t in self.array_of_tables(root, "rules") {
            if let Some(name) = t.get("name").and_then(Item::as_str) {
                table_of.entry(name).or_insert(t);
            }
        }
        let place = |v: &Self, rule: &str| -> (usize, String) {
            if rule == EXCLUDE_RULE_NAME {
                let line = root
                    .get("rules_defaults")
                    .and_then(Item::as_table)
                    .map_or(1, |t| v.key_line(t, "exclude"));
                return (line, "rules_defaults.exclude".to_string());
            }
            let idx = index_of.get(rule).copied().unwrap_or(0);
            let line = table_of.get(rule).map_or(1, |t| v.key_line(t, "query"));
            (line, format!("rules[{idx}].query"))
        };
        match RuleSet::compile_with(
            rules.iter().map(|r| (r.name.as_str(), r.query.as_str())),
            &d,
        ) {
            Ok(set) => {
                for w in set.warnings() {
                    let (line, key) = place(self, &w.rule);
                    let message = if w.rule == EXCLUDE_RULE_NAME {
                        w.warning.to_string()
                    } else {
                        w.to_string()
                    };
                    self.warnings.push(Problem { line, key, message });
                }
                Some(set)
            }
            Err(errors) => {
                for e in errors {
                    let (line, key) = place(self, &e.rule);
                    if e.rule == EXCLUDE_RULE_NAME {
                        self.problem(line, &key, e.error.to_string());
                    } else {
                        self.problem(line, &key, e.to_string());
                    }
                }
                None
            }
        }
    }

    fn desk(&mut self, root: &Table) -> Option<DeskConfig> {
        let mut desk = DeskConfig {
            command: "/desk".into(),
            escalate_after: Duration::from_secs(15 * 60),
            escalate_to: None,
            remind_after: None,
            allowed: Vec::new(),
            timezone: chrono_tz::UTC,
        };
        let Some(t) = self.table(root, "desk") else {
            return Some(desk);
        };
        self.known_keys(t, "desk", DESK_KEYS);
        if let Some(c) = self.string(t, "desk", "command") {
            if !c.starts_with('/') || c.len() < 2 || c.contains(char::is_whitespace) {
                let line = self.key_line(t, "command");
                self.problem(
                    line,
                    "desk.command",
                    format!("{c:?} is not a slash command; write e.g. \"/desk\""),
                );
            }
            desk.command = c;
        }
        if let Some(d) = self.duration(t, "desk", "escalate_after") {
            desk.escalate_after = d;
        }
        desk.remind_after = self.duration(t, "desk", "remind_after");
        if t.contains_key("escalate_to") {
            desk.escalate_to = self.string(t, "desk", "escalate_to").and_then(|s| {
                let line = self.key_line(t, "escalate_to");
                Target::parse(&s)
                    .map_err(|e| self.problem(line, "desk.escalate_to", e))
                    .ok()
            });
        }
        desk.allowed = self.string_array(t, "desk", "allowed");
        if let Some(tz) = self.timezone(t, "desk") {
            desk.timezone = tz;
        }
        Some(desk)
    }

    /// `[digest]` (one) or `[[digest]]` (several, each with its own name).
    fn digests(&mut self, root: &Table) -> Vec<DigestConfig> {
        let tables: Vec<(&Table, String)> = match root.get("digest") {
            None => Vec::new(),
            Some(Item::Table(t)) => vec![(t, "digest".to_string())],
            Some(_) => self
                .array_of_tables(root, "digest")
                .into_iter()
                .enumerate()
                .map(|(i, t)| (t, format!("digest[{i}]")))
                .collect(),
        };
        let mut names = HashSet::new();
        let mut out = Vec::new();
        for (i, (t, prefix)) in tables.iter().enumerate() {
            let Some(d) = self.digest(t, prefix, i) else {
                continue;
            };
            if !names.insert(d.name.clone()) {
                let line = self.key_line(t, "name");
                self.problem(
                    line,
                    &format!("{prefix}.name"),
                    format!(
                        "another digest is already named {:?}; give each [[digest]] its own name",
                        d.name
                    ),
                );
            }
            out.push(d);
        }
        out
    }

    fn digest(&mut self, t: &Table, prefix: &str, index: usize) -> Option<DigestConfig> {
        self.known_keys(t, prefix, DIGEST_KEYS);
        let name = self
            .string(t, prefix, "name")
            .unwrap_or_else(|| match index {
                0 => "Mentions digest".to_string(),
                i => format!("Mentions digest {}", i + 1),
            });
        let schedule = self.required_string(t, prefix, "schedule");
        let timezone = self.timezone(t, prefix).unwrap_or(chrono_tz::UTC);
        if let Some(s) = &schedule {
            if let Err(e) = crate::digest::schedule::Schedule::parse(s, timezone) {
                let line = self.key_line(t, "schedule");
                self.problem(line, &format!("{prefix}.schedule"), e);
            }
        }
        let to = self.targets(t, prefix, "to");
        if !t.contains_key("to") {
            let line = self.key_line(t, "schedule");
            self.problem(
                line,
                &format!("{prefix}.to"),
                "is missing: say where the digest goes, e.g. to = [\"slack:#pr-alerts\"]"
                    .to_string(),
            );
        } else if to.is_empty() {
            let line = self.key_line(t, "to");
            self.problem(
                line,
                &format!("{prefix}.to"),
                "lists no destination; write e.g. to = [\"slack:#pr-alerts\"]".to_string(),
            );
        }
        let chart = self.boolean(t, prefix, "chart").unwrap_or(true);
        Some(DigestConfig {
            name,
            schedule: schedule?,
            timezone,
            to,
            chart,
        })
    }

    fn spikes(&mut self, root: &Table) -> Option<SpikeConfig> {
        let d = SpikeConfig::default();
        let Some(t) = self.table(root, "spikes") else {
            return Some(d);
        };
        self.known_keys(t, "spikes", SPIKE_KEYS);
        let sigma = match t.get("sigma") {
            None => d.sigma,
            Some(item) => match item
                .as_float()
                .or_else(|| item.as_integer().map(|i| i as f64))
            {
                Some(x) if x > 0.0 && x.is_finite() => x,
                _ => {
                    let line = self.key_line(t, "sigma");
                    self.problem(
                        line,
                        "spikes.sigma",
                        "must be a positive number of standard deviations, e.g. 3".to_string(),
                    );
                    d.sigma
                }
            },
        };
        let min_count = match t.get("min_count") {
            None => d.min_count,
            Some(item) => match item.as_integer().and_then(|i| u32::try_from(i).ok()) {
                Some(n) if n >= 1 => n,
                _ => {
                    let line = self.key_line(t, "min_count");
                    self.problem(
                        line,
                        "spikes.min_count",
                        "must be a whole number of mentions, at least 1, e.g. 10".to_string(),
                    );
                    d.min_count
                }
            },
        };
        let spikes = SpikeConfig {
            enabled: self.boolean(t, "spikes", "enabled").unwrap_or(d.enabled),
            window: self.duration(t, "spikes", "window").unwrap_or(d.window),
            baseline: self.duration(t, "spikes", "baseline").unwrap_or(d.baseline),
            sigma,
            min_count,
            cooldown: self.duration(t, "spikes", "cooldown").unwrap_or(d.cooldown),
            every: self.duration(t, "spikes", "every").unwrap_or(d.every),
        };
        if spikes.baseline > Duration::from_secs(30 * 86_400) {
            let line = self.key_line(t, "baseline");
            self.problem(
                line,
                "spikes.baseline",
                "can be at most 30d (older mentions are not kept for counting)".to_string(),
            );
        }
        if spikes.window < Duration::from_secs(60) {
            let line = self.key_line(t, "window");
            self.problem(
                line,
                "spikes.window",
                "must be at least 1m (mentions are counted per window; e.g. \"1h\")".to_string(),
            );
        }
        if spikes.baseline < spikes.window * 24 {
            let line = self.key_line(t, "baseline");
            self.problem(
                line,
                "spikes.baseline",
                format!(
                    "must cover at least 24 windows ({:?}) to give a usable mean and σ",
                    spikes.window * 24
                ),
            );
        }
        Some(spikes)
    }

    fn timezone(&mut self, t: &Table, prefix: &str) -> Option<chrono_tz::Tz> {
        let s = self.string(t, prefix, "timezone")?;
        match s.parse::<chrono_tz::Tz>() {
            Ok(tz) => Some(tz),
            Err(_) => {
                let line = self.key_line(t, "timezone");
                self.problem(line, &format!("{prefix}.timezone"), format!("unknown time zone {s:?}; use an IANA name such as \"Europe/Berlin\" or \"UTC\""));
                None
            }
        }
    }

    fn targets(&mut self, t: &Table, key: &str, field: &str) -> Vec<Target> {
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

    // ---- low-level accessors: each reports its own problems ----

    fn known_keys(&mut self, t: &Table, prefix: &str, allowed: &[&str]) {
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
            let suggestion = closest(k, allowed)
                .map(|s| format!("; did you mean {s:?}?"))
                .unwrap_or_default();
            self.problem(
                line,
                &full,
                format!(
                    "unknown key{suggestion} (known here: {})",
                    allowed.join(", ")
                ),
            );
        }
    }

    fn key_line(&self, t: &Table, key: &str) -> usize {
        self.line(
            t.key(key)
                .and_then(|k| k.span())
                .or_else(|| t.get(key).and_then(Item::span))
                .or_else(|| t.span()),
        )
    }

    fn table<'t>(&mut self, root: &'t Table, key: &str) -> Option<&'t Table> {
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

    fn array_of_tables<'t>(&mut self, root: &'t Table, key: &str) -> Vec<&'t Table> {
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

    fn string(&mut self, t: &Table, prefix: &str, key: &str) -> Option<String> {
        let (raw, line) = self.raw_string(t, prefix, key)?;
        match interpolate(&raw, self.env) {
            Ok(s) => Some(s),
            Err(e) => {
                self.problem(line, &format!("{prefix}.{key}"), e);
                None
            }
        }
    }

    fn required_string(&mut self, t: &Table, prefix: &str, key: &str) -> Option<String> {
        if !t.contains_key(key) {
            let line = self.line(t.span());
            self.problem(
                line,
                &format!("{prefix}.{key}"),
                format!("missing; add {key} = \"…\""),
            );
            return None;
        }
        self.string(t, prefix, key)
    }

    fn secret(&mut self, t: &Table, prefix: &str, key: &str, env_hint: &str) -> Option<Secret> {
        if !t.contains_key(key) {
            let line = self.line(t.span());
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
        Some(Secret(value))
    }

    fn string_array(&mut self, t: &Table, prefix: &str, key: &str) -> Vec<String> {
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

    fn duration(&mut self, t: &Table, prefix: &str, key: &str) -> Option<Duration> {
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
                self.problem(
                    line,
                    &format!("{prefix}.{key}"),
                    format!("bad duration: {e}"),
                );
                None
            }
        }
    }

    fn integer(&mut self, t: &Table, prefix: &str, key: &str) -> Option<u64> {
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

    fn boolean(&mut self, t: &Table, prefix: &str, key: &str) -> Option<bool> {
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
}

/// Replaces `${VAR}` and `${VAR:-default}`; `$${` stays a literal `${`. The error never
/// contains a value, only the variable's name.
pub fn interpolate(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
            continue;
        }
        if !after.starts_with("${") {
            out.push('$');
            rest = &after[1..];
            continue;
        }
        let Some(end) = after.find('}') else {
            return Err("unclosed ${ …: write ${VAR} or ${VAR:-default}".into());
        };
        let inner = &after[2..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        let valid = !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !name.as_bytes()[0].is_ascii_digit();
        if !valid {
            return Err(format!("{:?} is not an environment variable name; write ${{VAR}} with letters, digits and _", name));
        }
        match (env(name).filter(|v| !v.is_empty()), default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => {
                return Err(format!("environment variable {name} is not set; export it, or give a default with ${{{name}:-…}}"))
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The allowed key nearest to a typo (edit distance ≤ 2), for "did you mean".
fn closest<'a>(key: &str, allowed: &[&'a str]) -> Option<&'a str> {
    allowed
        .iter()
        .map(|a| (edit_distance(key, a), *a))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, a)| a)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        match k {
            "SLACK_BOT_TOKEN" => Some("xoxb-secret-value".into()),
            "SLACK_SIGNING_SECRET" => Some("shh".into()),
            _ => None,
        }
    }

    fn check(text: &str) -> Result<Config, Vec<Problem>> {
        parse(text, Path::new("t.toml"), &env).map_err(|e| match e {
            ConfigError::Invalid { problems, .. } => problems,
            other => panic!("{other}"),
        })
    }

    const GOOD: &str = r#"
[store]
path = "data/x.sled"

[slack]
bot_token = "${SLACK_BOT_TOKEN}"
signing_secret = "${SLACK_SIGNING_SECRET}"
api_url = "${SLACK_API:-http://127.0.0.1:9}"

[[sources]]
name = "feed"
kind = "rss"
url = "https://example.com/feed.xml"
every = "1h30m"

[[rules]]
name = "acme"
query = '(acme OR "acme corp") AND NOT hiring'
alert = ["slack:#pr-alerts"]
priority = "high"
"#;

    #[test]
    fn good_config_loads_with_interpolation_and_defaults() {
        let c = check(GOOD).unwrap();
        let slack = c.slack.unwrap();
        assert_eq!(slack.bot_token.expose(), "xoxb-secret-value");
        assert_eq!(slack.api_url, "http://127.0.0.1:9");
        assert_eq!(c.sources[0].every, Duration::from_secs(5400));
        assert_eq!(c.sources[0].max_body_bytes, DEFAULT_MAX_BODY_BYTES);
        assert_eq!(c.rules[0].priority, Priority::High);
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.desk.command, "/desk");
        assert_eq!(c.matcher.len(), 1);
    }

    #[test]
    fn secrets_never_print() {
        let c = check(GOOD).unwrap();
        let dbg = format!("{:?}", c.slack);
        assert!(!dbg.contains("xoxb-secret-value"), "{dbg}");
    }

    #[test]
    fn every_problem_class_names_key_and_line() {
        let text = r#"
[store]
pth = "x"

[slack]
bot_token = "${MISSING_TOKEN}"

[[sources]]
name = "a"
kind = "carrier-pigeon"
every = "5 minutes"

[[rules]]
name = "r"
query = "acme AND (refund"
alert = ["teams:#x"]
"#;
        let problems = check(text).unwrap_err();
        let find = |key: &str| {
            problems
                .iter()
                .find(|p| p.key == key)
                .unwrap_or_else(|| panic!("no problem for {key} in {problems:#?}"))
        };
        let unknown = find("store.pth");
        assert_eq!(unknown.line, 3);
        assert!(unknown.message.contains("did you mean \"path\""));
        let secret = find("slack.bot_token");
        assert_eq!(secret.line, 6);
        assert!(secret.message.contains("MISSING_TOKEN is not set"));
        assert!(find("slack.signing_secret")
            .message
            .contains("missing secret"));
        let kind = find("sources[0].kind");
        assert_eq!(kind.line, 10);
        assert!(kind.message.contains("unknown source kind"));
        let every = find("sources[0].every");
        assert_eq!(every.line, 11);
        assert!(every.message.contains("bad duration"));
        let query = find("rules[0].query");
        assert_eq!(query.line, 15);
        let target = find("rules[0].alert");
        assert_eq!(target.line, 16);
        assert!(target.message.contains("slack:#channel"));
    }

    #[test]
    fn missing_required_keys_point_at_their_table() {
        let problems =
            check("[store]\npath = \"x\"\n\n[[rules]]\nname = \"r\"\nquery = \"acme\"\n")
                .unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "rules[0].alert");
        assert_eq!(problems[0].line, 4, "{problems:?}");
    }

    #[test]
    fn global_exclusions_apply_and_bad_ones_are_reported() {
        let text = format!("{GOOD}\n[rules_defaults]\nexclude = 'giveaway'\nmuted_authors = [\"@spambot\"]\nmuted_sites = [\"spam.example\"]\n");
        let c = check(&text).unwrap();
        let doc = |text: &'static str, author: Option<&'static str>, url: Option<&'static str>| {
            crate::rules::Document {
                text,
                author,
                url,
                ..Default::default()
            }
        };
        assert_eq!(c.matcher.matches(&doc("acme rocks", None, None)).len(), 1);
        assert!(c
            .matcher
            .matches(&doc("acme giveaway", None, None))
            .is_empty());
        assert!(c
            .matcher
            .matches(&doc("acme rocks", Some("SpamBot"), None))
            .is_empty());
        assert!(c
            .matcher
            .matches(&doc("acme rocks", None, Some("https://www.spam.example/x")))
            .is_empty());

        let bad = format!("{GOOD}\n[rules_defaults]\nexclude = 'giveaway AND'\n");
        let problems = check(&bad).unwrap_err();
        assert_eq!(problems[0].key, "rules_defaults.exclude", "{problems:?}");
        assert_eq!(problems[0].line, GOOD.lines().count() + 3);
    }

    #[test]
    fn syntax_error_has_a_line() {
        let problems = check("[store]\npath = \"x\"\n[[rules]\n").unwrap_err();
        assert_eq!(problems[0].line, 3);
        assert_eq!(problems[0].key, "(syntax)");
    }

    /// `n` rules, six lines each after a two-line `[store]`; the last rule's priority is bad,
    /// so loading reports it with a line number from the very end of the file.
    fn many_rules(n: usize) -> String {
        let mut text = String::from("[store]\npath = \"data/x.sled\"\n");
        for i in 0..n {
            let priority = if i + 1 == n { "urgent" } else { "normal" };
            text.push_str(&format!(
                "[[rules]]\nname = \"r{i}\"\nquery = '(acme{i} OR \"acme corp {i}\") AND NOT hiring'\n\
                 alert = [\"slack:#pr\"]\npriority = \"{priority}\"\n\n"
            ));
        }
        text
    }

    /// Issue 14: every key read counted newlines from the top of the file, so 10k rules took
    /// 14 s to load. Counts the line look-up work (not time) for 10k and 20k rules.
    #[test]
    fn loading_work_grows_linearly_with_the_number_of_rules() {
        let work_for = |n: usize| {
            let text = many_rules(n);
            work::take();
            let problems = check(&text).unwrap_err();
            let work = work::take();
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert_eq!(problems[0].key, format!("rules[{}].priority", n - 1));
            assert_eq!(
                problems[0].line,
                6 * n + 1,
                "line of the last rule's priority"
            );
            (work, text.len() as u64)
        };
        let (w10, len10) = work_for(10_000);
        let (w20, len20) = work_for(20_000);
        assert!(
            w20 * 10 <= w10 * 22,
            "line look-ups grew {:.2}x for 2x the rules ({w10} -> {w20})",
            w20 as f64 / w10 as f64
        );
        assert!(
            w10 <= 3 * len10 && w20 <= 3 * len20,
            "{w10} / {len10}, {w20} / {len20}"
        );
    }

    #[test]
    fn interpolation_forms() {
        let env = |k: &str| (k == "A").then(|| "1".to_string());
        assert_eq!(interpolate("x${A}y", &env).unwrap(), "x1y");
        assert_eq!(interpolate("${B:-dflt}", &env).unwrap(), "dflt");
        assert_eq!(interpolate("$${A} $5", &env).unwrap(), "${A} $5");
        assert!(interpolate("${B}", &env)
            .unwrap_err()
            .contains("B is not set"));
        assert!(interpolate("${A", &env).is_err());
    }
}
