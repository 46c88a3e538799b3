//! `mentiondesk test-alert` and `/desk test` as a user runs them, against the strict Slack and
//! Discord fakes: the marked sample reaches every configured target (or the one asked for),
//! each failure is named with its fix, nothing is stored, and with a daemon running the
//! command goes through it.

use crate::common;

use common::discord::{FakeDiscord, APP_ID, CHANNEL, DISCORD_TOKEN};
use common::faults::Fault;
use common::*;

const TITLE: &str = "Test alert — mentiondesk is connected; nothing to do";

/// What one run of the binary printed.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `mentiondesk test-alert` with `args` on the config file `path`.
async fn test_alert(path: &std::path::Path, args: &[&str]) -> Run {
    let mut cmd = crate::common::mentiondesk();
    cmd.arg("test-alert")
        .args(args)
        .arg("--config")
        .arg(path)
        .env_remove("MENTIONDESK_CONFIG")
        .env("MENTIONDESK_LOG", "warn");
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn line<'a>(run: &'a Run, prefix: &str) -> &'a str {
    run.stdout
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{}", run.stdout))
}

/// Slack: a rule target, the escalation target (the bot is not in it) and a digest target
/// that repeats the rule's: two lines, one post, the fix for the other, exit 1, no store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_alert_posts_to_each_target_once_and_names_the_fix_for_the_others() {
    let slack = FakeSlack::start().await;
    slack
        .state
        .lock()
        .unwrap()
        .not_member
        .insert("C0PRLEADS0".into());
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = ConfigBuilder::new()
        .slack(&slack)
        .rule("acme", "acme", &["slack:#pr-alerts"])
        .table("[desk]")
        .key("escalate_after", "1h")
        .key("escalate_to", "slack:#pr-leads")
        .table("[[digest]]")
        .key("name", "Daily")
        .key("schedule", "0 0 9 * * *")
        .key("to", ["slack:#pr-alerts"])
        .write(dir.path(), "mentiondesk.toml");
    let run = test_alert(&path, &[]).await;
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    assert_eq!(
        line(&run, "slack:#pr-alerts:"),
        "slack:#pr-alerts: ok: test alert posted"
    );
    let leads = line(&run, "slack:#pr-leads:");
    assert!(
        leads.starts_with("slack:#pr-leads: problem: ") && leads.contains("not_in_channel"),
        "{leads}"
    );
    assert!(leads.contains("/invite @mentiondesk"), "{leads}");
    assert!(
        run.stdout
            .contains("1 of 2 targets reached, directly (no daemon is running)"),
        "{}",
        run.stdout
    );
    let posts = slack.posts();
    assert_eq!(
        posts.len(),
        1,
        "one post: the digest repeats the rule's target"
    );
    assert_eq!(posts[0].channel, "C0PRALERTS");
    let body = posts[0].body.to_string();
    assert!(body.contains(TITLE), "{body}");
    assert!(
        body.contains("refund"),
        "the sample mention is shown: {body}"
    );
    assert!(
        !dir.path().join("store").exists(),
        "a test alert opens no store"
    );
    for s in [BOT_TOKEN, SIGNING_SECRET] {
        assert!(!run.stdout.contains(s) && !run.stderr.contains(s));
    }
}

/// Discord: a 403 on posting names every permission, Attach Files included, and the invite
/// URL with the application id and the permissions integer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discord_test_alert_refused_names_the_permissions_and_the_invite_url() {
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let target = format!("discord:{CHANNEL}");
    let (path, _) = ConfigBuilder::new()
        .discord(&discord)
        .rule("acme", "acme", &[&target])
        .write(dir.path(), "mentiondesk.toml");
    let ok = test_alert(&path, &[]).await;
    assert_eq!(ok.code, Some(0), "{}{}", ok.stdout, ok.stderr);
    assert_eq!(
        line(&ok, &format!("{target}:")),
        format!("{target}: ok: test alert posted")
    );
    let roots = discord.roots();
    assert_eq!(roots.len(), 1);
    assert!(
        serde_json::to_string(&roots[0].body)
            .unwrap()
            .contains(TITLE),
        "{:?}",
        roots[0].body
    );

    discord.faults.always(
        common::discord::ops::CREATE_MESSAGE,
        Fault::discord_missing_permissions(),
    );
    let refused = test_alert(&path, &["--to", &target]).await;
    assert_eq!(
        refused.code,
        Some(1),
        "{}{}",
        refused.stdout,
        refused.stderr
    );
    let l = line(&refused, &format!("{target}:"));
    assert!(l.contains("problem:") && l.contains("403/50013"), "{l}");
    assert!(
        l.contains("View Channel, Send Messages, Embed Links, Attach Files, Read Message History, Create Public Threads, Send Messages in Threads"),
        "{l}"
    );
    assert!(
        l.contains(&format!(
            "https://discord.com/oauth2/authorize?client_id={APP_ID}&scope=bot+applications.commands&permissions=309237763072"
        )),
        "{l}"
    );
    assert!(!refused.stdout.contains(DISCORD_TOKEN) && !refused.stderr.contains(DISCORD_TOKEN));
}

/// With the daemon running (it holds the store), `test-alert` goes through its admin
/// endpoint; the test alert is not on the desk (`/desk list` shows nothing), its buttons say
/// it is a test, and `/desk test` posts one into the channel it was typed in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_daemon_and_desk_test_nothing_is_stored() {
    let slack = FakeSlack::start().await;
    let config = ConfigBuilder::new()
        .slack(&slack)
        .rule("acme", "acme", &["slack:#pr-leads"])
        .desk();
    let daemon = Daemon::start(&config.toml()).await;
    // The CLI's config: the daemon's store and port.
    let text = config
        .toml()
        .replace(
            "{store}",
            &daemon.dir.path().join("store").display().to_string(),
        )
        .replace("{port}", &daemon.port.to_string());
    let cli_dir = tempfile::tempdir().unwrap();
    let path = cli_dir.path().join("mentiondesk.toml");
    std::fs::write(&path, text).unwrap();

    let run = test_alert(&path, &["--to", "slack:#pr-alerts"]).await;
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert_eq!(
        line(&run, "slack:#pr-alerts:"),
        "slack:#pr-alerts: ok: test alert posted"
    );
    assert!(
        run.stdout
            .contains("1 of 1 target reached, through the running daemon"),
        "{}",
        run.stdout
    );
    let posts = slack.posts();
    assert_eq!(posts.len(), 1, "only --to, not the rule's target");
    assert_eq!(posts[0].channel, "C0PRALERTS");
    assert!(posts[0].body.to_string().contains(TITLE));

    // Not on the desk.
    daemon
        .slack_post(
            "/slack/commands",
            &command_body(&slack, "list", "U0DANA", "t-list"),
        )
        .await;
    let listed = slack
        .wait_until(10, "list answer", |f| f.answers("t-list").pop())
        .await;
    assert!(listed.contains("No open alerts"), "{listed}");
    // Its buttons do nothing but say so.
    daemon
        .slack_post(
            "/slack/interactions",
            &button_body(&slack, "desk_claim", "0", "U0DANA", "t-claim"),
        )
        .await;
    let claimed = slack
        .wait_until(10, "button answer", |f| f.answers("t-claim").pop())
        .await;
    assert!(claimed.contains("This is a test alert"), "{claimed}");

    // `/desk test` in #pr-alerts (C0PRALERTS): posted there, answered privately.
    daemon
        .slack_post(
            "/slack/commands",
            &command_body(&slack, "test", "U0DANA", "t-test"),
        )
        .await;
    let answer = slack
        .wait_until(10, "test answer", |f| f.answers("t-test").pop())
        .await;
    assert!(
        answer.contains("Posted a test alert in this channel"),
        "{answer}"
    );
    let posts = slack.posts();
    assert_eq!(posts.len(), 2, "{posts:?}");
    assert_eq!(posts[1].channel, "C0PRALERTS");
    assert!(posts[1].body.to_string().contains(TITLE));
    assert!(
        slack.updates().is_empty(),
        "no alert was changed by the button"
    );
    daemon.stop().await;
}

/// Review 7 #8: Slack never answering a post, through the daemon: both targets are posted to
/// at once (both posts reach the fake while neither has timed out, where one after the other
/// the second started only after the first's 30 s), and the CLI prints a line per target
/// naming the problem and exits 1 instead of timing out with no results.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_targets_are_posted_to_at_once_and_each_gets_its_line() {
    let slack = FakeSlack::start().await;
    let config = ConfigBuilder::new()
        .slack(&slack)
        .rule("acme", "acme", &["slack:#pr-alerts", "slack:#pr-leads"])
        .desk();
    let daemon = Daemon::start(&config.toml()).await;
    let text = config
        .toml()
        .replace(
            "{store}",
            &daemon.dir.path().join("store").display().to_string(),
        )
        .replace("{port}", &daemon.port.to_string());
    let cli_dir = tempfile::tempdir().unwrap();
    let path = cli_dir.path().join("mentiondesk.toml");
    std::fs::write(&path, text).unwrap();
    let before = slack.faults.count("chat.postMessage");
    slack.faults.always("chat.postMessage", Fault::Hang);

    let run = tokio::spawn(async move { test_alert(&path, &[]).await });
    // Both posts are in flight together, well before either's 30 s timeout could end.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(25);
    while slack.faults.count("chat.postMessage") < before + 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the second target was not posted to while the first hung"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let run = run.await.unwrap();
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    for target in ["slack:#pr-alerts", "slack:#pr-leads"] {
        let l = line(&run, &format!("{target}:"));
        assert!(
            l.starts_with(&format!("{target}: problem: slack did not answer within")),
            "{l}"
        );
    }
    assert!(
        run.stdout
            .contains("0 of 2 targets reached, through the running daemon"),
        "{}",
        run.stdout
    );
    daemon.stop().await;
}
