//! Issue 13, deployment: what `docker run -e …` gives the daemon. With a config that has no
//! `[slack]` and no listen placeholder, `SLACK_BOT_TOKEN` + `SLACK_SIGNING_SECRET` turn Slack
//! on and `MENTIONDESK_LISTEN` moves the endpoints; `check` says where each came from and
//! never prints a secret. Through the real binary.

use crate::common;

use common::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The binary with only the variables a test gives it from the deployment set.
fn bin(cwd: &Path) -> Command {
    let mut c = crate::common::mentiondesk();
    c.current_dir(cwd);
    c
}

/// Like the bundled sample: no `[slack]`, no `[server]`, no placeholders.
const PLAIN: &str =
    "[[sources]]\nname = \"local\"\nkind = \"file\"\npath = \"mentions.jsonl\"\nevery = \"1s\"\n\n\
    [[rules]]\nname = \"acme\"\nquery = \"acme\"\nalert = [\"slack:#pr-alerts\"]\n";

#[test]
fn check_says_slack_and_the_listen_address_came_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x.toml"), PLAIN).unwrap();
    std::fs::write(dir.path().join("mentions.jsonl"), "").unwrap();
    let out = bin(dir.path())
        .args(["check", "--config", "x.toml"])
        .env("SLACK_BOT_TOKEN", "xoxb-never-printed")
        .env("SLACK_SIGNING_SECRET", "signing-never-printed")
        .env("MENTIONDESK_LISTEN", "0.0.0.0:8080")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(
        stdout,
        "x.toml: ok (1 source, 1 rule, alerts to Slack)\n\
         \x20 [server] listen = 0.0.0.0:8080 from MENTIONDESK_LISTEN (it overrides the file)\n\
         \x20 [slack] from the environment: SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET (the config file has no [slack])\n"
    );
    assert!(!stderr.contains("never-printed"), "{stderr}");

    // Half of Slack's variables: Slack stays off, and `check` says what is missing.
    let out = bin(dir.path())
        .args(["check", "--config", "x.toml"])
        .env("SLACK_SIGNING_SECRET", "signing-never-printed")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert_eq!(
        stdout,
        "x.toml: ok (1 source, 1 rule, alerts to the console)\n\
         x.toml: warning: slack: SLACK_SIGNING_SECRET is set but SLACK_BOT_TOKEN is not, so Slack stays off: export SLACK_BOT_TOKEN too, or add [slack] to the config\n"
    );

    // A listen address that is not one fails the check, naming the variable.
    let out = bin(dir.path())
        .args(["check", "--config", "x.toml"])
        .env("MENTIONDESK_LISTEN", "localhost")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("x.toml: server.listen (from MENTIONDESK_LISTEN): \"localhost\" is not an address; set MENTIONDESK_LISTEN to host:port, e.g. 0.0.0.0:8080, or unset it"),
        "{stderr}"
    );
}

/// The container case end to end: the daemon is started from another directory on a config
/// with no `[slack]` and no `[server]`; the environment alone points it at Slack (the fake,
/// through `SLACK_API_URL`) and at a listen address. The mention in the file next to the
/// config reaches Slack, `/healthz` answers on the address from the environment, and the
/// default store is created next to the config.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_takes_slack_and_the_listen_address_from_the_environment() {
    let slack = FakeSlack::start().await;
    let root = tempfile::tempdir().unwrap();
    let site = root.path().join("site");
    std::fs::create_dir(&site).unwrap();
    std::fs::write(site.join("x.toml"), PLAIN).unwrap();
    std::fs::write(
        site.join("mentions.jsonl"),
        "{\"id\":\"1\",\"text\":\"acme router env-marker broke\",\"url\":\"https://example.com/1\"}\n",
    )
    .unwrap();
    let port = free_port();
    let log = root.path().join("run.log");
    let mut child = bin(root.path())
        .args(["run", "--config", "site/x.toml"])
        .env("SLACK_BOT_TOKEN", BOT_TOKEN)
        .env("SLACK_SIGNING_SECRET", SIGNING_SECRET)
        .env("SLACK_API_URL", slack.api_url())
        .env("MENTIONDESK_LISTEN", format!("127.0.0.1:{port}"))
        .env("MENTIONDESK_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();

    let posts = slack.wait_for_posts(1, 60).await;
    let health = async {
        for _ in 0..600 {
            if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await {
                return r.status();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no /healthz on the port from MENTIONDESK_LISTEN");
    }
    .await;
    let store_created = site.join("data").join("mentiondesk.sled").exists();
    child.kill().unwrap();
    child.wait().unwrap();
    let logs = std::fs::read_to_string(&log).unwrap();

    assert_eq!(health, 200, "{logs}");
    assert!(
        posts[0].body.to_string().contains("env-marker"),
        "{:?}",
        posts[0].body
    );
    assert!(store_created, "the default store is next to the config");
    assert!(
        logs.contains(
            "[slack] from the environment: SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET, SLACK_API_URL"
        ),
        "{logs}"
    );
    assert!(
        !logs.contains(BOT_TOKEN),
        "the token never reaches the logs"
    );
    assert!(!logs.contains(SIGNING_SECRET), "nor the signing secret");
}
