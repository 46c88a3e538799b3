//! The whole config file: the aggregate `Config` built from each component's own section
//! (each component reads and checks its keys with `config::Reader`), plus the checks that
//! span sections. It decides nothing about a section's keys beyond which sections exist.

use crate::chat::config::{DiscordConfig, SlackConfig};
use crate::config::{self, ConfigError, Problem, Reader, Table};
use crate::desk::config::DeskConfig;
use crate::digest::config::DigestConfig;
use crate::rules::config::{RuleConfig, RulesDefaults};
use crate::rules::RuleSet;
use crate::server::config::ServerConfig;
use crate::sources::SourceConfig;
use crate::spikes::config::SpikeConfig;
use crate::store::config::StoreConfig;
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
    pub desk: DeskConfig,
    /// `[digest]` or several `[[digest]]`; empty = no digest.
    pub digest: Vec<DigestConfig>,
    pub spikes: SpikeConfig,
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
    let doc = config::parse_document(text, path)?;
    let mut r = Reader::new(text, env);
    let config = read(&mut r, doc.as_table(), path);
    let warnings = r.finish(path)?;
    let mut config = config.expect("a config without problems is complete");
    config.warnings = warnings;
    Ok(config)
}

/// Every section, in file order of concern; `None` when something is missing (reported).
fn read(r: &mut Reader, root: &Table, path: &Path) -> Option<Config> {
    r.known_keys(root, "", TOP_KEYS);
    let store = StoreConfig::read(r, root);
    let server = ServerConfig::read(r, root);
    let slack = SlackConfig::read(r, root);
    let discord = DiscordConfig::read(r, root);
    let sources = crate::sources::config::read_all(r, root);
    reserved_source_names(r, root);
    let rules = RuleConfig::read_all(r, root);
    let desk = DeskConfig::read(r, root);
    let digest = DigestConfig::read_all(r, root);
    let spikes = SpikeConfig::read(r, root);
    let rules_defaults = RulesDefaults::read(r, root);
    let matcher = crate::rules::config::compile(r, root, &rules, &rules_defaults);
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
        desk,
        digest,
        spikes,
    })
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
                "accepts: name, kind, every, timeout, max_body_bytes, allow_private, url"
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
}
