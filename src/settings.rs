//! The whole config file: the aggregate `Config` built from each component's own section
//! (each component reads and checks its keys with `config::Reader`), plus the checks that
//! span sections. It decides nothing about a section's keys beyond which sections exist.

use crate::analysis::relevance::config::RelevanceConfig;
use crate::chat::config::{DiscordConfig, SlackConfig};
use crate::config::{self, ConfigError, Problem, RawTable, Reader, Table};
use crate::desk::config::DeskConfig;
use crate::digest::config::DigestConfig;
use crate::rules::config::{RuleConfig, RulesDefaults};
use crate::rules::RuleSet;
use crate::server::config::ServerConfig;
use crate::sources::SourceConfig;
use crate::spikes::config::SpikeConfig;
use crate::store::config::StoreConfig;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const DEFAULT_PATH: &str = "config/mentiondesk.toml";

/// The sections a config file may have.
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
    "relevance",
];

#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub store: StoreConfig,
    pub server: ServerConfig,
    pub slack: Option<SlackConfig>,
    pub discord: Option<DiscordConfig>,
    pub sources: Vec<SourceConfig>,
    pub rules: Vec<RuleConfig>,
    /// Every rule compiled once; shared by all tasks.
    pub matcher: Arc<RuleSet>,
    /// Things that are allowed but probably not meant (a rule with a bare `NEAR`): `check`
    /// prints them and still exits 0; `run` logs them once at start.
    pub warnings: Vec<Problem>,
    /// Where the settings the environment may supply came from: one line per chat section
    /// (the file, or environment variables when the file has none) and per override
    /// (`MENTIONDESK_LISTEN`, `MENTIONDESK_STORE`). Names variables, never secret values;
    /// `check` prints them and `run` logs them.
    pub origins: Vec<String>,
    pub desk: DeskConfig,
    /// `[digest]` or several `[[digest]]`; empty = no digest.
    pub digest: Vec<DigestConfig>,
    pub spikes: SpikeConfig,
    pub relevance: RelevanceConfig,
}

/// Reads and validates the config file, taking `${VAR}` values from the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = config::read_text(path)?;
    parse(&text, path, &|k| std::env::var(k).ok())
}

/// Validates config text; `env` answers `${VAR}` look-ups (tests pass their own).
pub fn parse(
    text: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let base = path.parent().unwrap_or(Path::new(""));
    // The `[[rules]]` tables through the lean scanner and the rest through `toml_edit`, when
    // the scanner can (see `config::split`); else the whole file through `toml_edit`.
    if let Some(split) = config::split(text, "rules") {
        if let Ok(doc) = config::ImDocument::parse(split.rest.as_str()) {
            if !doc.as_table().contains_key("rules") {
                let mut r = Reader::new(&split.rest, env).base_dir(base);
                let config = read(&mut r, doc.as_table(), Some(&split.tables), path, env);
                return finish(r, config, path);
            }
        }
        // Something outside the tables is wrong (or a `rules` key is there as well): the
        // whole file goes through `toml_edit`, so the error is the one it gives for the file.
    }
    let doc = config::parse_document(text, path)?;
    let mut r = Reader::new(text, env).base_dir(base);
    let config = read(&mut r, doc.as_table(), None, path, env);
    finish(r, config, path)
}

/// The config with the warnings, or every problem found.
fn finish(r: Reader, config: Option<Config>, path: &Path) -> Result<Config, ConfigError> {
    let warnings = r.finish(path)?;
    let mut config = config.expect("a config without problems is complete");
    config.warnings = warnings;
    Ok(config)
}

/// Every section, in file order of concern; `None` when something is missing (reported).
fn read(
    r: &mut Reader,
    root: &Table,
    rule_tables: Option<&[RawTable]>,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<Config> {
    r.known_keys(root, "", TOP_KEYS);
    let mut origins = Vec::new();
    let mut store = StoreConfig::read(r, root);
    if let Some(p) = r.env(STORE_VAR) {
        // From the environment, so relative to the working directory like any shell path.
        store.path = PathBuf::from(p);
        origins.push(format!(
            "[store] path = {} from {STORE_VAR} (it overrides the file)",
            store.path.display()
        ));
    }
    let server = ServerConfig::read(r, root);
    let server = listen_override(r, server, &mut origins);
    let slack = chat_section(r, root, &SLACK_ENV, env, &mut origins, SlackConfig::read);
    let discord = chat_section(
        r,
        root,
        &DISCORD_ENV,
        env,
        &mut origins,
        DiscordConfig::read,
    );
    let sources = crate::sources::config::read_all(r, root);
    reserved_source_names(r, root);
    let converted;
    let rule_tables = match rule_tables {
        Some(tables) => tables,
        None => {
            converted = crate::rules::config::rule_tables(r, root);
            &converted
        }
    };
    let (rules, places) = RuleConfig::read_all(r, rule_tables);
    let desk = DeskConfig::read(r, root);
    let digest = DigestConfig::read_all(r, root);
    let spikes = SpikeConfig::read(r, root);
    let relevance = RelevanceConfig::read(r, root);
    let rules_defaults = RulesDefaults::read(r, root);
    let matcher = crate::rules::config::compile(r, root, &rules, &places, &rules_defaults);
    Some(Config {
        path: path.to_path_buf(),
        store,
        server: server?,
        slack,
        discord,
        sources,
        rules,
        matcher: Arc::new(matcher?),
        warnings: Vec::new(),
        origins,
        desk,
        digest,
        spikes,
        relevance,
    })
}

/// When set, overrides `[store] path`: the container image points it at its volume, so a
/// mounted config cannot put the store where nothing survives a restart.
pub const STORE_VAR: &str = "MENTIONDESK_STORE";

/// When set, overrides `[server] listen`: the container image sets `0.0.0.0:8080`, so the
/// endpoints are reachable (and its health check means something) with any mounted config.
pub const LISTEN_VAR: &str = "MENTIONDESK_LISTEN";

/// `[server]` with `listen` replaced by `$MENTIONDESK_LISTEN` when that is set.
fn listen_override(
    r: &mut Reader,
    server: Option<ServerConfig>,
    origins: &mut Vec<String>,
) -> Option<ServerConfig> {
    let Some(value) = r.env(LISTEN_VAR) else {
        return server;
    };
    match value.trim().parse::<SocketAddr>() {
        Ok(listen) => {
            origins.push(format!(
                "[server] listen = {listen} from {LISTEN_VAR} (it overrides the file)"
            ));
            server.map(|_| ServerConfig { listen })
        }
        Err(_) => {
            r.problem(
                0,
                &format!("server.listen (from {LISTEN_VAR})"),
                format!("{value:?} is not an address; set {LISTEN_VAR} to host:port, e.g. 0.0.0.0:8080, or unset it"),
            );
            None
        }
    }
}

/// A chat section the environment can supply when the file has none.
struct EnvSection {
    /// The table's name, `slack` or `discord`.
    table: &'static str,
    /// What `check` calls the platform.
    platform: &'static str,
    /// Each key with its variable and whether the section needs it.
    vars: &'static [(&'static str, &'static str, bool)],
}

/// `[slack]` from `SLACK_BOT_TOKEN` + `SLACK_SIGNING_SECRET` (+ `SLACK_APP_TOKEN` for Socket
/// Mode, `SLACK_API_URL` for a proxy), so `docker run -e …` enables Slack without editing
/// the config.
const SLACK_ENV: EnvSection = EnvSection {
    table: "slack",
    platform: "Slack",
    vars: &[
        ("bot_token", "SLACK_BOT_TOKEN", true),
        ("signing_secret", "SLACK_SIGNING_SECRET", true),
        ("app_token", "SLACK_APP_TOKEN", false),
        ("api_url", "SLACK_API_URL", false),
    ],
};

/// `[discord]` from `DISCORD_BOT_TOKEN`, `DISCORD_APPLICATION_ID`, `DISCORD_PUBLIC_KEY`
/// (+ `DISCORD_GUILD_ID`, `DISCORD_GATEWAY`, `DISCORD_API_URL`).
const DISCORD_ENV: EnvSection = EnvSection {
    table: "discord",
    platform: "Discord",
    vars: &[
        ("bot_token", "DISCORD_BOT_TOKEN", true),
        ("application_id", "DISCORD_APPLICATION_ID", true),
        ("public_key", "DISCORD_PUBLIC_KEY", true),
        ("guild_id", "DISCORD_GUILD_ID", false),
        ("gateway", "DISCORD_GATEWAY", false),
        ("api_url", "DISCORD_API_URL", false),
    ],
};

/// The section from the file when it has one; else from `s`'s environment variables when all
/// the required ones are set (a warning when only some are). The section is then read by its
/// owner from a table of `${VAR}` references, so values are checked (and secrets kept out of
/// messages) exactly as in the file; its problems name the variable instead of a line.
fn chat_section<T>(
    r: &mut Reader,
    root: &Table,
    s: &EnvSection,
    env: &dyn Fn(&str) -> Option<String>,
    origins: &mut Vec<String>,
    read: fn(&mut Reader, &Table) -> Option<T>,
) -> Option<T> {
    if let Some(item) = root.get(s.table) {
        let line = r.line(item.span());
        let section = read(r, root);
        if section.is_some() {
            origins.push(format!("[{}] from the config file (line {line})", s.table));
        }
        return section;
    }
    let set: Vec<&str> = s
        .vars
        .iter()
        .filter(|(_, var, _)| r.env(var).is_some())
        .map(|(_, var, _)| *var)
        .collect();
    if set.is_empty() {
        return None;
    }
    let missing: Vec<&str> = s
        .vars
        .iter()
        .filter(|(_, var, required)| *required && r.env(var).is_none())
        .map(|(_, var, _)| *var)
        .collect();
    if !missing.is_empty() {
        r.warning(
            0,
            s.table,
            format!(
                "{} {} set but {} {}, so {} stays off: export {} too, or add [{}] to the config",
                set.join(", "),
                if set.len() == 1 { "is" } else { "are" },
                missing.join(", "),
                if missing.len() == 1 {
                    "is not"
                } else {
                    "are not"
                },
                s.platform,
                missing.join(" and "),
                s.table,
            ),
        );
        return None;
    }
    let mut text = format!("[{}]\n", s.table);
    for (key, var, _) in s.vars {
        let Some(value) = r.env(var) else { continue };
        if *key == "gateway" {
            match value.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => text.push_str("gateway = true\n"),
                "false" | "0" | "no" => text.push_str("gateway = false\n"),
                _ => r.problem(
                    0,
                    &format!("{}.gateway (from {var})", s.table),
                    format!("{value:?} is not true or false; set {var}=true or {var}=false"),
                ),
            }
        } else {
            text.push_str(&format!("{key} = \"${{{var}}}\"\n"));
        }
    }
    let doc = config::ImDocument::parse(text.as_str())
        .expect("a table of ${VAR} references is valid TOML");
    let mut from_env = Reader::new(&text, env);
    let section = read(&mut from_env, doc.as_table());
    r.absorb(from_env, |key| {
        let var = s
            .vars
            .iter()
            .find(|(k, _, _)| {
                key.strip_prefix(s.table)
                    .and_then(|rest| rest.strip_prefix('.'))
                    == Some(*k)
            })
            .map(|(_, var, _)| *var);
        match var {
            Some(var) => format!("{key} (from {var})"),
            None => format!("{key} (from the environment)"),
        }
    });
    if section.is_some() {
        origins.push(format!(
            "[{}] from the environment: {} (the config file has no [{}])",
            s.table,
            set.join(", "),
            s.table
        ));
    }
    section
}

/// Spike alerts are filed under a source name of their own; no `[[sources]]` may take it.
fn reserved_source_names(r: &mut Reader, root: &Table) {
    let reserved = crate::digest::report::SPIKE_SOURCE;
    let Some(config::Item::ArrayOfTables(entries)) = root.get("sources") else {
        return;
    };
    for (i, t) in entries.iter().enumerate() {
        if r.peek_string(t, "name").as_deref() == Some(reserved) {
            let line = r.key_line(t, "name");
            r.problem(
                line,
                &format!("sources[{i}].name"),
                format!("{reserved:?} is reserved for spike alerts; choose another name"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::work;
    use crate::model::Priority;
    use crate::sources::config::DEFAULT_MAX_BODY_BYTES;
    use crate::sources::SourceConfig;
    use std::time::Duration;

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
        assert_eq!(c.sources[0].every(), Duration::from_secs(5400));
        assert_eq!(c.sources[0].common().max_body_bytes, DEFAULT_MAX_BODY_BYTES);
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
every = "5 minuets"

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
        assert_eq!(
            every.message,
            "\"5 minuets\" is not a duration: write e.g. \"5m\", \"5 minutes\", \"2h\" or \"1d\""
        );
        let query = find("rules[0].query");
        assert_eq!(query.line, 15);
        let target = find("rules[0].alert");
        assert_eq!(target.line, 16);
        assert!(target.message.contains("slack:#channel"));
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

    /// The error paths must stay linear too: 10k and 20k rules where every rule has a
    /// misspelt key (did-you-mean), a name taken twice and a bad priority, so three problems
    /// per rule are placed at their lines, then sorted.
    #[test]
    fn a_config_where_every_rule_is_wrong_is_reported_in_linear_work() {
        let bad = |n: usize| {
            let mut text = String::new();
            for i in 0..n {
                text.push_str(&format!(
                    "[[rules]]\nname = \"r{}\"\nqurey = \"acme\"\nquery = \"acme{i}\"\n\
                     alert = [\"slack:#pr\"]\npriority = \"urgent\"\n\n",
                    i / 2
                ));
            }
            text
        };
        let work_for = |n: usize| {
            let text = bad(n);
            work::take();
            let problems = check(&text).unwrap_err();
            let work = work::take();
            // Every rule: the typo and the priority; every second rule: the duplicate name.
            assert_eq!(problems.len(), n * 2 + n / 2, "{:?}", &problems[..3]);
            let last = &problems[problems.len() - 1];
            assert_eq!(last.key, format!("rules[{}].priority", n - 1));
            assert_eq!(last.line, 7 * n - 1, "line of the last rule's priority");
            work
        };
        let (w10, w20) = (work_for(10_000), work_for(20_000));
        assert!(
            w20 * 10 <= w10 * 22,
            "reporting grew {:.2}x for 2x the rules ({w10} -> {w20})",
            w20 as f64 / w10 as f64
        );
    }

    /// The `[[rules]]` tables go through the lean scanner unless something in the file is
    /// beyond it; either way a rule's problems are the same, at the same lines. (A one-line
    /// `'''x'''` is valid TOML the scanner leaves to `toml_edit`, so `full` takes the old path.)
    #[test]
    fn the_lean_rules_path_reports_what_the_toml_edit_path_reports() {
        let rules = "[[rules]]\nname = \"a\"\nquery = \"acme AND (\"\nalert = [\"slack:#x\", \"teams:y\"]\n\n\
            [[rules]]\nname = \"a\"\nqurey = \"x\"\nquery = \"${NOPE}\"\nalert = \"slack:#x\"\npriority = \"urgent\"\n\n\
            [[rules]]\nquery = \"acme\"\npriority = \"top\"\n\n\
            [[rules]]\nname = \"ok\"\nquery = 'globex OR \"globex corp\"'\nalert = [\"slack:#x\"]\n";
        let lean = format!("[store]\npath = \"x\"\n\n{rules}");
        let full = format!("[store]\npath = '''x'''\n\n{rules}");
        assert!(config::split(&lean, "rules").is_some());
        assert!(config::split(&full, "rules").is_none());
        let (lean, full) = (check(&lean).unwrap_err(), check(&full).unwrap_err());
        assert_eq!(lean, full);
        let keys: Vec<(&str, usize)> = lean.iter().map(|p| (p.key.as_str(), p.line)).collect();
        for expected in [
            ("rules[1].name", 10),
            ("rules[1].qurey", 11),
            ("rules[1].query", 12),
            ("rules[1].alert", 13),
            ("rules[1].priority", 14),
            ("rules[2].name", 16),
            ("rules[2].alert", 16),
            ("rules[2].priority", 18),
        ] {
            assert!(keys.contains(&expected), "{expected:?} not in {lean:#?}");
        }
        // With the reading problems fixed, the bad query is reported at its line.
        let bad_query = "[store]\npath = \"x\"\n[[rules]]\nname = \"r\"\nquery = \"acme AND (\"\nalert = [\"slack:#x\"]\n";
        assert!(config::split(bad_query, "rules").is_some());
        let problems = check(bad_query).unwrap_err();
        assert_eq!(
            (problems[0].key.as_str(), problems[0].line),
            ("rules[0].query", 5)
        );
        let good = "[store]\npath = \"x\"\n[[rules]]\nname = \"r\\u00e9\"\nquery = 'acme'\nalert = [\"slack:#x\"]\n";
        let slow = good.replace("\"x\"", "'''x'''");
        let (a, b) = (check(good).unwrap(), check(&slow).unwrap());
        assert_eq!(a.rules, b.rules);
        assert_eq!(a.rules[0].name, "ré");
    }

    /// Two sources, rules or digests with one name: the second is reported at its own `name`.
    #[test]
    fn a_name_taken_twice_is_reported_at_the_second() {
        let text = "[[sources]]\nname = \"f\"\nkind = \"file\"\npath = \"a.jsonl\"\n\n\
            [[sources]]\nname = \"f\"\nkind = \"file\"\npath = \"b.jsonl\"\n\n\
            [[rules]]\nname = \"a\"\nquery = \"acme\"\nalert = [\"slack:#x\"]\n\n\
            [[rules]]\nname = \"a\"\nquery = \"acme\"\nalert = [\"slack:#x\"]\n\n\
            [[digest]]\nname = \"d\"\nschedule = \"0 0 9 * * *\"\nto = [\"slack:#x\"]\n\n\
            [[digest]]\nname = \"d\"\nschedule = \"0 0 9 * * *\"\nto = [\"slack:#x\"]\n";
        let problems = check(text).unwrap_err();
        let find = |key: &str| {
            problems
                .iter()
                .find(|p| p.key == key)
                .unwrap_or_else(|| panic!("no problem at {key}: {problems:#?}"))
        };
        let source = find("sources[1].name");
        assert_eq!(source.line, 7);
        assert_eq!(
            source.message,
            "duplicate source name \"f\"; names must be unique"
        );
        let rule = find("rules[1].name");
        assert_eq!(rule.line, 17);
        assert_eq!(
            rule.message,
            "duplicate rule name \"a\"; names must be unique"
        );
        let digest = find("digest[1].name");
        assert_eq!(digest.line, 27);
        assert!(
            digest
                .message
                .contains("another digest is already named \"d\""),
            "{}",
            digest.message
        );
        assert_eq!(problems.len(), 3, "{problems:#?}");
    }

    /// A blank `path` or Reddit `client_id` passed `check` and then stopped `run`: `check`
    /// must say it, at the key's line.
    #[test]
    fn blank_values_a_source_cannot_start_with_are_refused_by_check() {
        let file = "[[sources]]\nname = \"f\"\nkind = \"file\"\npath = \"\"\n\n\
            [[rules]]\nname = \"a\"\nquery = \"acme\"\nalert = [\"slack:#x\"]\n";
        let problems = check(file).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert_eq!(problems[0].key, "sources[0].path");
        assert_eq!(problems[0].line, 4, "the line of path");
        assert!(
            problems[0].message.contains("is empty"),
            "{}",
            problems[0].message
        );

        let reddit = "[[sources]]\nname = \"r\"\nkind = \"reddit\"\nquery = \"acme\"\n\
            subreddits = [\"acme\"]\nclient_id = \"${REDDIT_CLIENT_ID:-}\"\nclient_secret = \"s\"\n\n\
            [[rules]]\nname = \"a\"\nquery = \"acme\"\nalert = [\"slack:#x\"]\n";
        let problems = check(reddit).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert_eq!(problems[0].key, "sources[0].client_id");
        assert_eq!(problems[0].line, 6, "the line of client_id");
        assert!(
            problems[0].message.contains("is empty"),
            "{}",
            problems[0].message
        );
    }

    /// Issue 12: one shared key list let `subreddits` pass on an `rss` source. Each kind now
    /// takes only its own keys, and the problem names the key, the kind and what it accepts.
    #[test]
    fn a_key_of_another_kind_is_refused_naming_the_key_the_kind_and_its_keys() {
        let text = GOOD.replace(
            "every = \"1h30m\"\n",
            "every = \"1h30m\"\nsubreddits = [\"acme\"]\n",
        );
        let problems = check(&text).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:#?}");
        let p = &problems[0];
        assert_eq!(p.key, "sources[0].subreddits");
        assert_eq!(p.line, 15, "the line of subreddits");
        assert!(p.message.contains("\"subreddits\""), "{}", p.message);
        assert!(p.message.contains("kind \"rss\""), "{}", p.message);
        assert!(
            p.message.contains(
                "accepts: name, kind, every, timeout, max_body_bytes, allow_private, languages, url"
            ),
            "{}",
            p.message
        );

        // The same key is fine on the kind that takes it, and a typo there gets a suggestion.
        let reddit = "[[sources]]\nname = \"r\"\nkind = \"reddit\"\nquery = \"acme\"\n\
            subredits = [\"acme\"]\nclient_id = \"id\"\nclient_secret = \"s\"\n\n\
            [[rules]]\nname = \"a\"\nquery = \"acme\"\nalert = [\"slack:#x\"]\n";
        let problems = check(reddit).unwrap_err();
        let typo = problems
            .iter()
            .find(|p| p.key == "sources[0].subredits")
            .unwrap_or_else(|| panic!("{problems:#?}"));
        assert!(
            typo.message.contains("did you mean \"subreddits\""),
            "{}",
            typo.message
        );
        assert!(check(&reddit.replace("subredits", "subreddits")).is_ok());
    }

    /// With an unknown kind, only keys that no kind takes are reported as unknown.
    #[test]
    fn an_unknown_kind_does_not_make_every_key_unknown() {
        let text = "[[sources]]\nname = \"a\"\nkind = \"gopher\"\nurl = \"https://x\"\nsubreddits = [\"x\"]\nfoo = 1\n";
        let problems = check(text).unwrap_err();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["sources[0].kind", "sources[0].foo"], "{problems:#?}");
        assert!(problems[0]
            .message
            .contains("expected one of rss, file, reddit, hackernews, bluesky, mastodon"));
    }

    #[test]
    fn the_spike_source_name_is_reserved() {
        let text = GOOD.replace("name = \"feed\"", "name = \"spike watch\"");
        let problems = check(&text).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert_eq!(problems[0].key, "sources[0].name");
        assert_eq!(problems[0].line, 11);
        assert!(problems[0].message.contains("reserved for spike alerts"));
    }

    fn parse_with(text: &str, path: &str, vars: &[(&str, &str)]) -> Result<Config, Vec<Problem>> {
        let env = |k: &str| {
            vars.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.to_string())
        };
        parse(text, Path::new(path), &env).map_err(|e| match e {
            ConfigError::Invalid { problems, .. } => problems,
            other => panic!("{other}"),
        })
    }

    const RULE: &str = "[[rules]]\nname = \"a\"\nquery = \"acme\"\nalert = [\"slack:#x\"]\n";

    /// Issue 13: relative paths were relative to the working directory, so `check --config
    /// elsewhere/x.toml` read other files than the daemon started elsewhere.
    #[test]
    fn relative_paths_are_relative_to_the_config_files_folder() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("deploy");
        std::fs::create_dir(&folder).unwrap();
        std::fs::write(folder.join("in.jsonl"), "").unwrap();
        let config = folder.join("x.toml");
        let text = format!(
            "[store]\npath = \"state/s.sled\"\n\n\
             [[sources]]\nname = \"near\"\nkind = \"file\"\npath = \"in.jsonl\"\n\n\
             [[sources]]\nname = \"absolute\"\nkind = \"file\"\npath = \"{}\"\n\n{RULE}",
            folder.join("in.jsonl").display()
        );
        let c = parse_with(&text, config.to_str().unwrap(), &[]).unwrap();
        assert_eq!(c.store.path, folder.join("state/s.sled"));
        let paths: Vec<PathBuf> = c
            .sources
            .iter()
            .map(|s| match s {
                SourceConfig::File(f) => f.path.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(paths, [folder.join("in.jsonl"), folder.join("in.jsonl")]);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);

        // The default store is next to the config too.
        let c = parse_with(RULE, config.to_str().unwrap(), &[]).unwrap();
        assert_eq!(c.store.path, folder.join("data/mentiondesk.sled"));
    }

    /// A file source whose file is not there is a warning naming the path that was looked
    /// for, at the `path` key: the daemon's polls would fail on it.
    #[test]
    fn a_missing_file_is_a_warning_naming_the_resolved_path() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("conf").join("x.toml");
        let text = format!(
            "[[sources]]\nname = \"f\"\nkind = \"file\"\npath = \"../feeds/m.jsonl\"\n\n{RULE}"
        );
        let c = parse_with(&text, config.to_str().unwrap(), &[]).unwrap();
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        let w = &c.warnings[0];
        assert_eq!((w.line, w.key.as_str()), (4, "sources[0].path"));
        let looked_for = dir.path().join("conf").join("../feeds/m.jsonl");
        assert!(
            w.message
                .starts_with(&format!("{} does not exist", looked_for.display())),
            "{}",
            w.message
        );
        assert!(
            w.message
                .contains("relative path is read from the config file's folder"),
            "{}",
            w.message
        );
    }

    #[test]
    fn a_blank_store_path_is_refused_at_its_line() {
        let problems =
            parse_with(&format!("[store]\npath = \"  \"\n{RULE}"), "x.toml", &[]).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(
            (problems[0].line, problems[0].key.as_str()),
            (2, "store.path")
        );
        assert!(problems[0].message.starts_with("is empty; write a path"));
    }

    /// Issue 13: `docker run -e SLACK_BOT_TOKEN=… -e SLACK_SIGNING_SECRET=…` did nothing
    /// because the config had no `[slack]`.
    #[test]
    fn slack_comes_from_the_environment_when_the_file_has_no_section() {
        let vars = [
            ("SLACK_BOT_TOKEN", "xoxb-from-env-secret"),
            ("SLACK_SIGNING_SECRET", "signing-from-env-secret"),
            ("SLACK_APP_TOKEN", "xapp-from-env-secret"),
        ];
        let c = parse_with(RULE, "x.toml", &vars).unwrap();
        let slack = c.slack.as_ref().expect("slack from the environment");
        assert_eq!(slack.bot_token.expose(), "xoxb-from-env-secret");
        assert_eq!(slack.signing_secret.expose(), "signing-from-env-secret");
        assert_eq!(
            slack.app_token.as_ref().map(|t| t.expose()),
            Some("xapp-from-env-secret")
        );
        assert_eq!(slack.api_url, crate::chat::config::DEFAULT_SLACK_API_URL);
        assert!(c.discord.is_none());
        assert_eq!(
            c.origins,
            ["[slack] from the environment: SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET, SLACK_APP_TOKEN (the config file has no [slack])"]
        );
        let shown = format!("{:?} {:?}", c.origins, c.slack);
        assert!(!shown.contains("from-env-secret"), "{shown}");

        // A [slack] in the file wins, and says so.
        let c = parse_with(GOOD, "x.toml", &vars).unwrap();
        assert_eq!(c.slack.unwrap().api_url, "http://127.0.0.1:9");
        assert_eq!(c.origins, ["[slack] from the config file (line 5)"]);
    }

    #[test]
    fn half_the_slack_variables_is_a_warning_and_no_slack() {
        let c = parse_with(RULE, "x.toml", &[("SLACK_BOT_TOKEN", "xoxb-1")]).unwrap();
        assert!(c.slack.is_none());
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert_eq!(
            (c.warnings[0].line, c.warnings[0].key.as_str()),
            (0, "slack")
        );
        assert_eq!(
            c.warnings[0].message,
            "SLACK_BOT_TOKEN is set but SLACK_SIGNING_SECRET is not, so Slack stays off: export SLACK_SIGNING_SECRET too, or add [slack] to the config"
        );
        assert!(!c.warnings[0].message.contains("xoxb-1"));
    }

    #[test]
    fn discord_comes_from_the_environment_and_its_problems_name_the_variable() {
        let key = "ab".repeat(32);
        let mut vars = vec![
            ("DISCORD_BOT_TOKEN", "discord-token-secret"),
            ("DISCORD_APPLICATION_ID", "123456789012345678"),
            ("DISCORD_PUBLIC_KEY", key.as_str()),
            ("DISCORD_GATEWAY", "true"),
        ];
        let c = parse_with(RULE, "x.toml", &vars).unwrap();
        let d = c.discord.as_ref().expect("discord from the environment");
        assert_eq!(d.application_id, 123456789012345678);
        assert!(d.gateway);
        assert_eq!(
            c.origins,
            ["[discord] from the environment: DISCORD_BOT_TOKEN, DISCORD_APPLICATION_ID, DISCORD_PUBLIC_KEY, DISCORD_GATEWAY (the config file has no [discord])"]
        );

        vars[1].1 = "my-app";
        vars[3].1 = "sometimes";
        let problems = parse_with(RULE, "x.toml", &vars).unwrap_err();
        let keys: Vec<(usize, &str)> = problems.iter().map(|p| (p.line, p.key.as_str())).collect();
        assert_eq!(
            keys,
            [
                (0, "discord.gateway (from DISCORD_GATEWAY)"),
                (0, "discord.application_id (from DISCORD_APPLICATION_ID)")
            ],
            "{problems:#?}"
        );
        assert!(problems[1]
            .message
            .contains("\"my-app\" is not a Discord id"));
        let shown = format!("{problems:?}");
        assert!(!shown.contains("discord-token-secret"), "{shown}");
        let rendered = ConfigError::Invalid {
            path: PathBuf::from("x.toml"),
            problems,
        }
        .to_string();
        assert!(
            rendered.contains("\n  x.toml: discord.gateway (from DISCORD_GATEWAY): \"sometimes\" is not true or false; set DISCORD_GATEWAY=true or DISCORD_GATEWAY=false"),
            "{rendered}"
        );
    }

    /// The container sets both so any mounted config listens where the port is published
    /// and keeps its store on the volume.
    #[test]
    fn listen_and_store_variables_override_the_file() {
        let text =
            format!("[store]\npath = \"s.sled\"\n[server]\nlisten = \"127.0.0.1:9000\"\n{RULE}");
        let vars = [
            ("MENTIONDESK_LISTEN", "0.0.0.0:8080"),
            ("MENTIONDESK_STORE", "/app/data/mentiondesk.sled"),
        ];
        let c = parse_with(&text, "conf/x.toml", &vars).unwrap();
        assert_eq!(c.server.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(c.store.path, Path::new("/app/data/mentiondesk.sled"));
        assert_eq!(
            c.origins,
            [
                "[store] path = /app/data/mentiondesk.sled from MENTIONDESK_STORE (it overrides the file)",
                "[server] listen = 0.0.0.0:8080 from MENTIONDESK_LISTEN (it overrides the file)",
            ]
        );
        // Without them, the file's values.
        let c = parse_with(&text, "conf/x.toml", &[]).unwrap();
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:9000");
        assert_eq!(c.store.path, Path::new("conf/s.sled"));
        assert!(c.origins.is_empty());

        let problems =
            parse_with(&text, "conf/x.toml", &[("MENTIONDESK_LISTEN", "8080")]).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "server.listen (from MENTIONDESK_LISTEN)");
        assert_eq!(
            problems[0].message,
            "\"8080\" is not an address; set MENTIONDESK_LISTEN to host:port, e.g. 0.0.0.0:8080, or unset it"
        );
    }
}
