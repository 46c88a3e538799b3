//! The command line as a user runs it: `check`, `match`, `scan --once`, and a clear error
//! when the store is held by another process.

use crate::common;

use std::io::Write;
use std::process::{Command, Stdio};

fn bin() -> Command {
    let mut c = crate::common::mentiondesk();
    c.env_remove("MENTIONDESK_CONFIG")
        .env("MENTIONDESK_LOG", "warn");
    c
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const RULES: &str = r#"
[[rules]]
name = "acme"
query = '(acme OR "acme corp") AND NOT hiring'
alert = ["slack:#pr-alerts"]

[[rules]]
name = "urgent"
query = 'acme AND (outage OR down)'
alert = ["slack:#pr-alerts"]
priority = "high"
"#;

#[test]
fn check_accepts_the_bundled_config() {
    let out = bin()
        .args(["check", "--config", "config/mentiondesk.toml"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("ok (3 sources, 2 rules, alerts to the console)"),
        "{stdout}"
    );
}

#[test]
fn check_lists_every_problem_with_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "bad.toml",
        r##"[slack]
bot_token = "${NOT_SET_ANYWHERE_42}"
signing_secret = "x"

[[sources]]
name = "a"
kind = "gopher"

[[rules]]
name = "r1"
query = 'acme AND'
alert = ["slack:#x"]

[[rules]]
name = "r2"
query = '"unclosed'
alert = ["#x"]
"##,
    );
    let out = bin()
        .arg("check")
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "bad.toml:2: slack.bot_token: environment variable NOT_SET_ANYWHERE_42 is not set",
        "bad.toml:7: sources[0].kind: unknown source kind \"gopher\"",
        "bad.toml:11: rules[0].query",
        "bad.toml:16: rules[1].query",
        "bad.toml:17: rules[1].alert",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
}

#[test]
fn check_refuses_a_rule_without_a_positive_term_and_warns_about_a_bare_near() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        dir.path(),
        "bad.toml",
        r#"[[rules]]
name = "everything"
query = 'NOT acme'
alert = ["slack:#x"]

[[rules]]
name = "grouped"
query = 'acme NEAR/5 (refund OR money)'
alert = ["slack:#x"]

[[rules]]
name = "either"
query = 'acme OR NOT hiring'
alert = ["slack:#x"]
"#,
    );
    let out = bin()
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "bad.toml:3: rules[0].query: rule \"everything\": this query matches every post that lacks \"acme\" (NOT with nothing positive beside it) at column 1: add a term that must be present, e.g. brand AND NOT acme",
        "bad.toml:8: rules[1].query: rule \"grouped\": a group is not allowed as an operand of NEAR/5 at column 13: put a single word or \"phrase\" on each side and join the pairs with OR: (acme NEAR/5 refund) OR (acme NEAR/5 money)",
        "acme NEAR/5 (refund OR money)\n                    ^",
        "bad.toml:13: rules[2].query: rule \"either\": this query matches every post that lacks \"hiring\" (NOT with nothing positive beside it)",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }

    let warned = write(
        dir.path(),
        "warned.toml",
        r#"[[rules]]
name = "acme"
query = 'acme NEAR refund'
alert = ["slack:#x"]

[[rules]]
name = "mixed"
query = 'acme Or refund'
alert = ["slack:#x"]
"#,
    );
    let out = bin()
        .args(["check", "--config"])
        .arg(&warned)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("warned.toml:3: warning: rules[0].query: rule \"acme\": \"NEAR\" without a distance is read as the word \"near\" at column 6: write acme NEAR/5 refund, or \"near\" in quotes to mean the word"),
        "{stdout}"
    );
    assert!(
        stdout.contains("warned.toml:8: warning: rules[1].query: rule \"mixed\": \"Or\" is read as the word \"or\", not as the OR operator"),
        "{stdout}"
    );
}

#[test]
fn run_logs_rule_warnings_at_start() {
    let dir = tempfile::tempdir().unwrap();
    // A store under a regular file cannot open, so the daemon stops right after start-up.
    let blocker = write(dir.path(), "not-a-dir", "");
    let cfg = write(
        dir.path(),
        "w.toml",
        &format!(
            "[store]\npath = \"{}\"\n[server]\nlisten = \"127.0.0.1:{}\"\n[[rules]]\nname = \"acme\"\nquery = 'acme NEAR refund'\nalert = [\"slack:#x\"]\n",
            blocker.join("store").display(),
            common::free_port()
        ),
    );
    let out = bin().args(["run", "--config"]).arg(&cfg).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let warning = "config warning: rule \"acme\": \"NEAR\" without a distance is read as the word \"near\" at column 6: write acme NEAR/5 refund, or \"near\" in quotes to mean the word line=7 key=rules[0].query";
    assert_eq!(err.matches(warning).count(), 1, "{err}");
}

#[test]
fn config_path_comes_from_the_environment_too() {
    let out = bin()
        .arg("check")
        .env("MENTIONDESK_CONFIG", "/nonexistent/mentiondesk.toml")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/mentiondesk.toml"), "{err}");
}

#[test]
fn match_writes_one_verdict_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "m.toml", RULES);
    let mut child = bin()
        .arg("match")
        .arg("--config")
        .arg(&cfg)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            br#"{"id":"1","text":"Acme is down again, this is terrible"}
{"id":2,"text":"Acme is hiring"}
{"id":"3","title":"ACME CORP","text":"I love it"}
not json
"#,
        )
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["id"], "1");
    assert_eq!(lines[0]["rules"], serde_json::json!(["acme", "urgent"]));
    assert_eq!(lines[0]["negative"], true);
    assert!(lines[0]["sentiment"].as_f64().unwrap() < -0.3);
    assert_eq!(
        lines[0]["priority"], "critical",
        "high rule raised by negativity"
    );
    assert_eq!(lines[1]["id"], 2);
    assert_eq!(lines[1]["rules"], serde_json::json!([]));
    assert_eq!(lines[1]["priority"], serde_json::Value::Null);
    assert_eq!(
        lines[1]["sentiment"],
        serde_json::Value::Null,
        "not analysed"
    );
    assert_eq!(
        lines[1]["negative"],
        serde_json::Value::Null,
        "not analysed"
    );
    assert_eq!(lines[2]["rules"], serde_json::json!(["acme"]));
    assert_eq!(lines[2]["negative"], false);
    assert_eq!(lines[2]["priority"], "normal");
    assert_eq!(lines[3]["line"], 4);
    assert!(lines[3]["error"]
        .as_str()
        .unwrap()
        .contains("not a mention"));
    assert!(
        !out.status.success(),
        "a bad input line is reported in the exit code"
    );
}

#[test]
fn scan_once_prints_matches_from_a_file_source() {
    let dir = tempfile::tempdir().unwrap();
    let jsonl = write(
        dir.path(),
        "m.jsonl",
        "{\"id\":\"a\",\"text\":\"acme broke\",\"url\":\"https://example.com/a\"}\n{\"id\":\"b\",\"text\":\"unrelated\"}\n",
    );
    let cfg = write(
        dir.path(),
        "s.toml",
        &format!(
            "[store]\npath = \"{}\"\n[[sources]]\nname = \"local\"\nkind = \"file\"\npath = \"{}\"\n{RULES}",
            dir.path().join("store").display(),
            jsonl.display()
        ),
    );
    let out = bin()
        .args(["scan", "--once", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("local: 1 matching mention"), "{stdout}");
    assert!(stdout.contains("https://example.com/a"));
    assert!(!dir.path().join("store").exists(), "scan stores nothing");
}

#[test]
fn second_daemon_on_the_same_store_says_it_is_held() {
    let dir = tempfile::tempdir().unwrap();
    let cfg_text = |port: u16| {
        format!(
            "[store]\npath = \"{}\"\n[server]\nlisten = \"127.0.0.1:{port}\"\n{RULES}",
            dir.path().join("store").display()
        )
    };
    let first_cfg = write(dir.path(), "a.toml", &cfg_text(common::free_port()));
    let second_cfg = write(dir.path(), "b.toml", &cfg_text(common::free_port()));
    let mut first = bin()
        .arg("run")
        .arg("--config")
        .arg(&first_cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the first daemon holds the store.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !dir.path().join("store").join("conf").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = bin()
        .arg("run")
        .arg("--config")
        .arg(&second_cfg)
        .output()
        .unwrap();
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("held by another process"), "{err}");
}

/// `--help` names every chat platform, and each command's help says what a user needs: the
/// `match` line formats, `scan --once`'s exit code, `test-alert`'s targets.
#[test]
fn help_names_slack_and_discord_and_each_command_explains_itself() {
    let help = |args: &[&str]| {
        let out = bin().args(args).arg("--help").output().unwrap();
        assert!(out.status.success(), "{args:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let top = help(&[]);
    assert!(
        top.contains("Slack or Discord") && top.contains("console"),
        "{top}"
    );
    for cmd in ["run", "check", "match", "scan", "digest", "test-alert"] {
        assert!(top.contains(cmd), "{cmd} missing from:\n{top}");
    }
    let m = help(&["match"]);
    assert!(m.contains("Input, one object per line"), "{m}");
    assert!(
        m.contains(r#"{"id": 1, "rules": ["acme"], "sentiment": -0.62, "negative": true, "priority": "high", "lang": "en", "vader": -0.34}"#),
        "{m}"
    );
    let s = help(&["scan"]);
    assert!(s.contains("1 when any source failed"), "{s}");
    let t = help(&["test-alert"]);
    assert!(
        t.contains("--to <TARGET>") && t.contains("not stored"),
        "{t}"
    );
    let c = help(&["check"]);
    assert!(c.contains("--online"), "{c}");
}

/// A missing config file: one message naming the path and the fix, not the OS error twice
/// (before: "cannot read config x: No such file or directory (os error 2) (…): No such file
/// or directory (os error 2)").
#[test]
fn a_missing_config_says_so_once_with_the_fix() {
    for cmd in [
        &["check"][..],
        &["run"],
        &["test-alert"],
        &["scan", "--once"],
    ] {
        let out = bin()
            .args(cmd)
            .args(["--config", "/nonexistent/mentiondesk.toml"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{cmd:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{cmd:?}: one line: {err}"
        );
        assert!(
            err.contains("no config file at /nonexistent/mentiondesk.toml: copy the bundled config/mentiondesk.toml there and edit it, or pass --config PATH (or set MENTIONDESK_CONFIG)"),
            "{cmd:?}: {err}"
        );
        assert!(!err.contains("No such file"), "{cmd:?}: {err}");
    }
}

/// Runs `mentiondesk run --config cfg` until `done(stdout, stderr)` holds (or 60 s pass), then
/// kills it; returns what it printed.
fn run_until(cfg: &std::path::Path, done: impl Fn(&str, &str) -> bool) -> (String, String) {
    let dir = cfg.parent().unwrap();
    let (out, err) = (dir.join("out.log"), dir.join("err.log"));
    let mut child = bin()
        .env("MENTIONDESK_LOG", "info")
        .args(["run", "--config"])
        .arg(cfg)
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let read = || {
        (
            std::fs::read_to_string(&out).unwrap_or_default(),
            std::fs::read_to_string(&err).unwrap_or_default(),
        )
    };
    while std::time::Instant::now() < deadline {
        let (o, e) = read();
        if done(&o, &e) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    read()
}

/// The quick start's surprise: a second run posts nothing because the mentions are stored.
/// The start-up log now says how many alerts are stored and that only new mentions alert.
#[test]
fn run_says_how_many_alerts_are_stored_and_that_only_new_mentions_alert() {
    let dir = tempfile::tempdir().unwrap();
    let jsonl = write(
        dir.path(),
        "m.jsonl",
        "{\"id\":\"a\",\"text\":\"acme broke\"}\n{\"id\":\"b\",\"text\":\"acme corp is down\"}\n",
    );
    let cfg = write(
        dir.path(),
        "s.toml",
        &format!(
            "[store]\npath = \"{}\"\n[server]\nlisten = \"127.0.0.1:{}\"\n[[sources]]\nname = \"local\"\nkind = \"file\"\npath = \"{}\"\nevery = \"1s\"\n{RULES}",
            dir.path().join("store").display(),
            common::free_port(),
            jsonl.display()
        ),
    );
    let said = "2 alerts are already in the store; only new mentions will alert";
    let (first_out, first_err) = run_until(&cfg, |o, _| o.matches("── #pr-alerts ──").count() >= 2);
    assert_eq!(
        first_out.matches("── #pr-alerts ──").count(),
        2,
        "{first_out}{first_err}"
    );
    assert!(first_err.contains("chat=\"console\""), "{first_err}");
    assert!(
        !first_err.contains("already in the store"),
        "an empty store says nothing: {first_err}"
    );
    let (second_out, second_err) = run_until(&cfg, |_, e| e.contains(said));
    assert!(second_err.contains(said), "{second_err}");
    assert!(second_err.contains("stored_alerts=2"), "{second_err}");
    assert!(
        second_err.contains("mentiondesk test-alert"),
        "{second_err}"
    );
    assert!(
        !second_out.contains("── #pr-alerts ──"),
        "nothing alerts again: {second_out}"
    );
}
