//! A config builder for the tests whose subject is not the config file itself: it writes the
//! TOML a test needs (store, server, chat fakes, sources, rules, desk) so test files stop
//! hand-writing it. Tests of config parsing and its errors keep their raw TOML.
//!
//! `{store}` and `{port}` stay placeholders that [`super::Daemon::start`] fills in.

use super::discord::{public_key_hex, FakeDiscord, APP_ID, DISCORD_TOKEN, GUILD_ID};
use super::store_backend::{self, TestStore};
use super::{free_port, FakeSlack, BOT_TOKEN, SIGNING_SECRET};
use std::path::{Path, PathBuf};

/// Source kinds with author lookups on a second API (see [`ConfigBuilder::source`]).
const LOOKUP_KINDS: &[&str] = &["bluesky", "hackernews", "reddit"];

/// A TOML value as the builder writes it.
pub enum Val {
    Str(String),
    Bool(bool),
    Int(i64),
    List(Vec<String>),
}

impl From<&str> for Val {
    fn from(s: &str) -> Val {
        Val::Str(s.to_string())
    }
}
impl From<String> for Val {
    fn from(s: String) -> Val {
        Val::Str(s)
    }
}
impl From<&String> for Val {
    fn from(s: &String) -> Val {
        Val::Str(s.clone())
    }
}
impl From<bool> for Val {
    fn from(b: bool) -> Val {
        Val::Bool(b)
    }
}
impl From<i64> for Val {
    fn from(n: i64) -> Val {
        Val::Int(n)
    }
}
impl From<&[&str]> for Val {
    fn from(l: &[&str]) -> Val {
        Val::List(l.iter().map(|s| s.to_string()).collect())
    }
}
impl<const N: usize> From<[&str; N]> for Val {
    fn from(l: [&str; N]) -> Val {
        Val::List(l.iter().map(|s| s.to_string()).collect())
    }
}

/// A TOML basic string.
fn quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Val {
    fn render(&self) -> String {
        match self {
            Val::Str(s) => quoted(s),
            Val::Bool(b) => b.to_string(),
            Val::Int(n) => n.to_string(),
            Val::List(l) => format!(
                "[{}]",
                l.iter().map(|s| quoted(s)).collect::<Vec<_>>().join(", ")
            ),
        }
    }
}

struct Table {
    header: String,
    keys: Vec<(String, String)>,
}

/// Builds a daemon config; [`ConfigBuilder::key`] sets a key on the table added last.
pub struct ConfigBuilder {
    tables: Vec<Table>,
}

impl ConfigBuilder {
    /// `[store]` for the backend `MENTIONDESK_TEST_STORE` picks (see [`TestStore`]) and
    /// `[server]` on `127.0.0.1:{port}`.
    pub fn new() -> ConfigBuilder {
        ConfigBuilder::for_store(TestStore::from_env())
    }

    /// `[store]` for `store` and `[server]` on `127.0.0.1:{port}`. sled: the store under the
    /// `{store}` placeholder. PostgreSQL: a fresh throwaway database (no TLS, a small pool),
    /// and `path` still under `{store}`, so whatever is not on the database yet stays in the
    /// test's directory.
    pub fn for_store(store: TestStore) -> ConfigBuilder {
        let builder = ConfigBuilder { tables: vec![] }
            .table("[store]")
            .key("path", "{store}");
        let builder = match store {
            TestStore::Sled => builder,
            TestStore::Postgres => builder
                .key("backend", "postgres")
                .key("url", store_backend::fresh_database_url())
                .key("tls", "disable")
                .key("pool_size", 4),
        };
        builder.table("[server]").key("listen", "127.0.0.1:{port}")
    }

    /// `[store]` on the PostgreSQL database at `url` as replica `replica` of several sharing
    /// it, with `lease`, and `[server]` on `127.0.0.1:{port}` (the replica tests).
    pub fn replica(url: &str, replica: &str, lease: &str) -> ConfigBuilder {
        ConfigBuilder { tables: vec![] }
            .table("[store]")
            .key("path", "{store}")
            .key("backend", "postgres")
            .key("url", url)
            .key("tls", "disable")
            .key("pool_size", 4)
            .key("replica", replica)
            .key("lease", lease)
            .table("[server]")
            .key("listen", "127.0.0.1:{port}")
    }

    /// Starts a table (`"[desk]"`) or an array entry (`"[[sources]]"`).
    pub fn table(mut self, header: &str) -> ConfigBuilder {
        self.tables.push(Table {
            header: header.to_string(),
            keys: vec![],
        });
        self
    }

    /// Sets `key` on the table added last (replacing an earlier value).
    pub fn key(mut self, key: &str, value: impl Into<Val>) -> ConfigBuilder {
        let table = self.tables.last_mut().expect("a table to put the key in");
        let value = value.into().render();
        match table.keys.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => table.keys.push((key.to_string(), value)),
        }
        self
    }

    /// `[slack]` pointing at the fake, with its bot token and signing secret.
    pub fn slack(self, fake: &FakeSlack) -> ConfigBuilder {
        self.table("[slack]")
            .key("bot_token", BOT_TOKEN)
            .key("signing_secret", SIGNING_SECRET)
            .key("api_url", fake.api_url())
    }

    /// `[discord]` pointing at the fake, with its token, application, key and guild.
    pub fn discord(self, fake: &FakeDiscord) -> ConfigBuilder {
        self.table("[discord]")
            .key("bot_token", DISCORD_TOKEN)
            .key("application_id", APP_ID)
            .key("public_key", public_key_hex())
            .key("api_url", fake.api_url())
            .key("guild_id", GUILD_ID)
    }

    /// A `[[sources]]` entry of `kind`; add its keys with [`ConfigBuilder::key`].
    /// Kinds that look authors up on a second API whose default is a real host (Bluesky's
    /// AppView, Hacker News' Firebase API, Reddit's `/about`) get `author_details = false`:
    /// no test may send traffic off 127.0.0.1. A test of the lookups sets
    /// `author_details = true` and points the lookup URL at a fake.
    pub fn source(self, name: &str, kind: &str) -> ConfigBuilder {
        let builder = self
            .table("[[sources]]")
            .key("name", name)
            .key("kind", kind);
        if LOOKUP_KINDS.contains(&kind) {
            builder.key("author_details", false)
        } else {
            builder
        }
    }

    /// An `rss` source on a fake feed: polled every second, private addresses allowed.
    pub fn rss(self, name: &str, url: &str) -> ConfigBuilder {
        self.source(name, "rss")
            .key("url", url)
            .key("every", "1s")
            .key("allow_private", true)
    }

    /// A `[[rules]]` entry alerting `alert` (`"slack:#pr-alerts"`, `"discord:<id>"`).
    pub fn rule(self, name: &str, query: &str, alert: &[&str]) -> ConfigBuilder {
        self.table("[[rules]]")
            .key("name", name)
            .key("query", query)
            .key("alert", alert)
    }

    /// `[desk]` with escalation an hour out, so no timer fires during a test.
    pub fn desk(self) -> ConfigBuilder {
        self.table("[desk]").key("escalate_after", "1h")
    }

    /// Drops `key` from the table added last.
    pub fn without(mut self, key: &str) -> ConfigBuilder {
        let table = self
            .tables
            .last_mut()
            .expect("a table to drop the key from");
        table.keys.retain(|(k, _)| k != key);
        self
    }

    /// Writes the config to `dir/file` for a daemon run as its own process: the store in
    /// `dir/store`, the server on a port that was free a moment ago (returned).
    pub fn write(&self, dir: &Path, file: &str) -> (PathBuf, u16) {
        let port = free_port();
        let text = self
            .toml()
            .replace("{store}", &dir.join("store").display().to_string())
            .replace("{port}", &port.to_string());
        let path = dir.join(file);
        std::fs::write(&path, text).unwrap();
        (path, port)
    }

    /// The TOML text.
    pub fn toml(&self) -> String {
        let mut out = String::new();
        for t in &self.tables {
            out.push_str(&t.header);
            out.push('\n');
            for (k, v) in &t.keys {
                out.push_str(&format!("{k} = {v}\n"));
            }
            out.push('\n');
        }
        out
    }
}
