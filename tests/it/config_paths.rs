//! Issue 13, setup that checks itself: relative paths in a config are read from the config
//! file's folder (so `check` from any directory sees what the daemon will), and durations
//! accept the spellings people write. Through the real binary, started from another
//! working directory than the config's.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The binary with no config or deployment variables inherited from the test's environment.
fn bin(cwd: &Path) -> Command {
    let mut c = crate::common::mentiondesk();
    for var in [
        "MENTIONDESK_CONFIG",
        "MENTIONDESK_STORE",
        "MENTIONDESK_LISTEN",
        "SLACK_BOT_TOKEN",
        "SLACK_SIGNING_SECRET",
        "SLACK_APP_TOKEN",
        "SLACK_API_URL",
        "DISCORD_BOT_TOKEN",
        "DISCORD_APPLICATION_ID",
        "DISCORD_PUBLIC_KEY",
    ] {
        c.env_remove(var);
    }
    c.env("MENTIONDESK_LOG", "warn").current_dir(cwd);
    c
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `root/site/x.toml` reading `mentions.jsonl` and storing under `state/`, both relative; the
/// binary runs in `root/elsewhere` and is given the config as `../site/x.toml`.
fn site(root: &Path) -> (PathBuf, PathBuf) {
    let site = root.join("site");
    let elsewhere = root.join("elsewhere");
    std::fs::create_dir(&site).unwrap();
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::write(
        site.join("x.toml"),
        "[store]\npath = \"state/x.sled\"\n\n\
         [[sources]]\nname = \"local\"\nkind = \"file\"\npath = \"mentions.jsonl\"\n\n\
         [[rules]]\nname = \"acme\"\nquery = \"acme\"\nalert = [\"slack:#pr-alerts\"]\n",
    )
    .unwrap();
    (site, elsewhere)
}

#[test]
fn check_from_another_directory_reports_the_file_the_daemon_would_miss() {
    let root = tempfile::tempdir().unwrap();
    let (site, elsewhere) = site(root.path());
    // The file exists where the working directory would have put it, not next to the config:
    // the old resolution found it and said ok while the daemon, started elsewhere, failed.
    std::fs::write(elsewhere.join("mentions.jsonl"), "").unwrap();

    let out = bin(&elsewhere)
        .args(["check", "--config", "../site/x.toml"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains(
            "../site/x.toml:7: warning: sources[0].path: ../site/mentions.jsonl does not exist, so every poll of this source will fail until it does; create it or correct path (a relative path is read from the config file's folder)"
        ),
        "{stdout}"
    );

    // Next to the config, it is found: no warning, and `scan` from the other directory reads
    // it.
    std::fs::write(
        site.join("mentions.jsonl"),
        "{\"id\":\"1\",\"text\":\"acme broke again\",\"url\":\"https://example.com/1\"}\n",
    )
    .unwrap();
    let out = bin(&elsewhere)
        .args(["check", "--config", "../site/x.toml"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(
        stdout,
        "../site/x.toml: ok (1 source, 1 rule, alerts to the console)\n"
    );
    let out = bin(&elsewhere)
        .args(["scan", "--once", "--config", "../site/x.toml"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("local: 1 matching mention"), "{stdout}");
    assert!(stdout.contains("https://example.com/1"), "{stdout}");
    assert!(!site.join("state").exists(), "scan stores nothing");
}

#[test]
fn durations_read_as_people_write_them_and_a_typo_says_what_to_write() {
    let dir = tempfile::tempdir().unwrap();
    let config = |every: &str| {
        format!(
            "[[sources]]\nname = \"hn\"\nkind = \"hackernews\"\nquery = \"acme\"\nevery = \"{every}\"\ntimeout = \"30 seconds\"\n\n\
             [[rules]]\nname = \"acme\"\nquery = \"acme\"\nalert = [\"slack:#pr-alerts\"]\n\n\
             [desk]\nescalate_after = \"15 mins\"\nremind_after = \"2 hours\"\n\n\
             [spikes]\nbaseline = \"7 days\"\nwindow = \"1 hour\"\n"
        )
    };
    for every in ["5 minutes", "5 min", "5m", "1 minute", "2h", "1 day"] {
        std::fs::write(dir.path().join("d.toml"), config(every)).unwrap();
        let out = bin(dir.path())
            .args(["check", "--config", "d.toml"])
            .output()
            .unwrap();
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{every}: {stdout}{stderr}");
        assert!(
            stdout.starts_with("d.toml: ok (1 source, 1 rule"),
            "{stdout}"
        );
    }

    std::fs::write(dir.path().join("d.toml"), config("5 minuets")).unwrap();
    let out = bin(dir.path())
        .args(["check", "--config", "d.toml"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains(
            "d.toml:5: sources[0].every: \"5 minuets\" is not a duration: write e.g. \"5m\", \"5 minutes\", \"2h\" or \"1d\""
        ),
        "{stderr}"
    );
}
