//! `mentiondesk check --online` as a user runs it, against the strict Slack and Discord fakes:
//! a good config passes and says what it checked; every target the bot cannot post into is
//! named with its fix and fails the check; no token ever reaches the output. Also the
//! daemon's start-up with a refused Slack app-level (Socket Mode) token.

use crate::common;

use common::discord::{ops, FakeDiscord, APP_ID, CHANNEL, DISCORD_TOKEN, GUILD_ID};
use common::faults::Fault;
use common::*;

/// What one run of the binary printed.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Fails if any secret of the test configs shows up in stdout or stderr.
    fn assert_no_secrets(&self, secrets: &[&str]) {
        for s in secrets {
            assert!(
                !self.stdout.contains(s) && !self.stderr.contains(s),
                "a secret ({s}) was printed:\n{}{}",
                self.stdout,
                self.stderr
            );
        }
    }

    /// The line of stdout that starts with `prefix`.
    fn line(&self, prefix: &str) -> &str {
        self.stdout
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{}", self.stdout))
    }
}

/// Runs the real binary with `args` and the config `text` (written to a temp dir).
async fn mentiondesk(args: &[&str], text: String) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let text = text
        .replace("{store}", &dir.path().join("store").display().to_string())
        .replace("{port}", &free_port().to_string());
    let path = dir.path().join("mentiondesk.toml");
    std::fs::write(&path, text).unwrap();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        crate::common::mentiondesk()
            .args(&args)
            .arg("--config")
            .arg(&path)
            .env_remove("MENTIONDESK_CONFIG")
            .env("MENTIONDESK_LOG", "info")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    drop(dir);
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `mentiondesk run` with the config `text` until it exits or `limit` passes (then it
/// is killed, and `code` is None).
async fn run_for(text: String, limit: std::time::Duration) -> Run {
    run_until(text, limit, |_| false).await
}

/// Runs `mentiondesk run` with the config `text` until it exits, its stderr satisfies
/// `done`, or `limit` passes (then it is killed, and `code` is None).
async fn run_until(text: String, limit: std::time::Duration, done: impl Fn(&str) -> bool) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let text = text
        .replace("{store}", &dir.path().join("store").display().to_string())
        .replace("{port}", &free_port().to_string());
    let path = dir.path().join("mentiondesk.toml");
    std::fs::write(&path, text).unwrap();
    let (out, err) = (dir.path().join("out.log"), dir.path().join("err.log"));
    let mut child = crate::common::mentiondesk()
        .args(["run", "--config"])
        .arg(&path)
        .env_remove("MENTIONDESK_CONFIG")
        .env("MENTIONDESK_LOG", "info")
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let deadline = tokio::time::Instant::now() + limit;
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if tokio::time::Instant::now() > deadline
            || done(&std::fs::read_to_string(&err).unwrap_or_default())
        {
            child.kill().unwrap();
            child.wait().unwrap();
            break None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    Run {
        code,
        stdout: std::fs::read_to_string(&out).unwrap(),
        stderr: std::fs::read_to_string(&err).unwrap(),
    }
}

/// A feed source nothing answers on (`check --online` does not poll sources).
fn with_source(config: ConfigBuilder) -> ConfigBuilder {
    config
        .rss("news", "http://127.0.0.1:9/feed.xml")
        .key("every", "5m")
}

fn slack_config(slack: &FakeSlack, targets: &[&str], app_token: Option<&str>) -> String {
    let mut config = ConfigBuilder::new().slack(slack);
    if let Some(token) = app_token {
        config = config.key("app_token", token);
    }
    with_source(config).rule("acme", "acme", targets).toml()
}

fn discord_config(discord: &FakeDiscord, targets: &[&str]) -> String {
    with_source(ConfigBuilder::new().discord(discord))
        .rule("acme", "acme", targets)
        .toml()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_check_online_passes_a_good_config_and_says_what_it_checked() {
    let slack = FakeSlack::start().await;
    let run = mentiondesk(
        &["check", "--online"],
        slack_config(&slack, &["slack:#pr-alerts", "slack:C0PRLEADS0"], None),
    )
    .await;
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert_eq!(
        run.line("slack credentials:"),
        "slack credentials: accepted (bot mentiondesk in Fake Workspace)"
    );
    assert_eq!(
        run.line("target slack:#pr-alerts:"),
        "target slack:#pr-alerts: the bot can post there"
    );
    assert_eq!(
        run.line("target slack:C0PRLEADS0:"),
        "target slack:C0PRLEADS0: the bot can post there"
    );
    assert!(!run.stdout.contains("problem"), "{}", run.stdout);
    assert_eq!(slack.faults.count("auth.test"), 1);
    assert_eq!(slack.faults.count("conversations.info"), 2);
    assert_eq!(
        slack.faults.count("chat.postMessage"),
        0,
        "a check posts nothing"
    );
    run.assert_no_secrets(&[BOT_TOKEN, SIGNING_SECRET]);
}

/// Each kind of unusable Slack target gets its own line with the fix a person can act on,
/// and the check fails. Before: an archived channel named `#name` was reported as missing
/// ("create the channel"), and the invite fix did not name the channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_check_online_names_each_unusable_target_with_its_fix() {
    let slack = FakeSlack::start().await;
    {
        let mut s = slack.state.lock().unwrap();
        s.not_member.insert("C0PRALERTS".into());
        s.archived.insert("C0PRLEADS0".into());
    }
    let run = mentiondesk(
        &["check", "--online"],
        slack_config(
            &slack,
            &[
                "slack:#pr-alerts",
                "slack:#pr-leads",
                "slack:#war-room",
                "slack:C0SECRET01",
            ],
            None,
        ),
    )
    .await;
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    assert_eq!(
        run.line("slack credentials:"),
        "slack credentials: accepted (bot mentiondesk in Fake Workspace)"
    );
    // Public channel the bot was never invited to.
    let line = run.line("target slack:#pr-alerts:");
    assert!(
        line.contains("problem:") && line.contains("not_in_channel"),
        "{line}"
    );
    assert!(
        line.ends_with("invite the bot: /invite @mentiondesk in #pr-alerts"),
        "{line}"
    );
    // Archived channel: found (not "create the channel") and called archived.
    let line = run.line("target slack:#pr-leads:");
    assert!(
        line.contains("problem:") && line.contains("is_archived"),
        "{line}"
    );
    assert!(
        line.contains(
            "#pr-leads is archived: unarchive it, or point the alert target at another channel"
        ),
        "{line}"
    );
    // A name Slack does not show the bot: missing, or private without the bot.
    let line = run.line("target slack:#war-room:");
    assert!(
        line.contains("problem:") && line.contains("channel_not_found"),
        "{line}"
    );
    assert!(
        line.contains(
            "for a private channel invite the bot to it first: /invite @mentiondesk in #war-room"
        ),
        "{line}"
    );
    // An id Slack does not show the bot (a private channel answers channel_not_found too).
    let line = run.line("target slack:C0SECRET01:");
    assert!(
        line.contains("problem:") && line.contains("channel_not_found"),
        "{line}"
    );
    assert!(
        line.contains("for a private channel, invite the bot first: /invite @mentiondesk in it"),
        "{line}"
    );
    assert_eq!(
        slack.faults.count("chat.postMessage"),
        0,
        "a check posts nothing"
    );
    run.assert_no_secrets(&[BOT_TOKEN, SIGNING_SECRET]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discord_check_online_passes_a_good_config_and_says_what_it_checked() {
    let discord = FakeDiscord::start().await;
    let target = format!("discord:{CHANNEL}");
    let run = mentiondesk(&["check", "--online"], discord_config(&discord, &[&target])).await;
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert_eq!(
        run.line("discord credentials:"),
        "discord credentials: accepted (bot mentiondesk)"
    );
    assert_eq!(
        run.line(&format!("target {target}:")),
        format!("target {target}: the bot can see the channel (Send Messages and Embed Links show on the first alert)")
    );
    // A Discord-only config is not "the console".
    assert!(
        run.stdout
            .lines()
            .next()
            .unwrap_or_default()
            .ends_with("ok (1 source, 1 rule, alerts to Discord)"),
        "{}",
        run.stdout
    );
    assert_eq!(
        run.line("discord command /desk:"),
        format!("discord command /desk: registered (application {APP_ID}, guild {GUILD_ID}), as `run` registers it: the application's guild command list is now /desk alone")
    );
    // Review 7 #6: the help says what the check writes.
    let help = crate::common::mentiondesk()
        .args(["check", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        help.contains("registers the command exactly as `run` does, replacing the application's (guild or global) command list with that one definition; no message is posted"),
        "{help}"
    );
    assert!(!help.contains("posts nothing"), "{help}");
    assert_eq!(discord.faults.count(ops::USERS_ME), 1);
    assert_eq!(discord.faults.count(ops::GET_CHANNEL), 1);
    assert_eq!(discord.faults.count(ops::PUT_GUILD_COMMANDS), 1);
    assert_eq!(
        discord.faults.count(ops::CREATE_MESSAGE),
        0,
        "a check posts nothing"
    );
    run.assert_no_secrets(&[DISCORD_TOKEN]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discord_check_online_names_an_unknown_channel_and_missing_access_with_their_fixes() {
    let discord = FakeDiscord::start().await;
    let good = format!("discord:{CHANNEL}");
    let unknown = "discord:100000000000000999";
    let run = mentiondesk(
        &["check", "--online"],
        discord_config(&discord, &[&good, unknown]),
    )
    .await;
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    assert_eq!(
        run.line(&format!("target {good}:")),
        format!("target {good}: the bot can see the channel (Send Messages and Embed Links show on the first alert)")
    );
    let line = run.line(&format!("target {unknown}:"));
    assert!(
        line.contains("problem:") && line.contains("404/10003") && line.contains("Unknown Channel"),
        "{line}"
    );
    assert!(
        line.contains("check the channel id in the alert target (discord:<channel id>) and that the bot is in that server"),
        "{line}"
    );
    run.assert_no_secrets(&[DISCORD_TOKEN]);

    // The bot lost View Channel on the channel: 403 50001 Missing Access.
    discord
        .faults
        .always(ops::GET_CHANNEL, Fault::discord_missing_access());
    let run = mentiondesk(&["check", "--online"], discord_config(&discord, &[&good])).await;
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    let line = run.line(&format!("target {good}:"));
    assert!(
        line.contains("problem:") && line.contains("403/50001") && line.contains("Missing Access"),
        "{line}"
    );
    assert!(
        line.contains("give the bot View Channel, Send Messages, Embed Links, Attach Files, Read Message History, Create Public Threads, Send Messages in Threads in that channel (channel settings → Permissions)"),
        "{line}"
    );
    assert!(
        line.contains(&format!("https://discord.com/oauth2/authorize?client_id={APP_ID}&scope=bot+applications.commands&permissions=309237763072")),
        "{line}"
    );
    assert_eq!(
        discord.faults.count(ops::CREATE_MESSAGE),
        0,
        "a check posts nothing"
    );
    run.assert_no_secrets(&[DISCORD_TOKEN]);
}

/// With Socket Mode configured and the app-level token refused, `run` stops at start-up with
/// one line naming the problem and the fix, exit 1, and never prints the token. Before: it
/// logged "slack socket mode connected", then Slack's bare `invalid_auth` every 10 s forever,
/// while commands and buttons could never arrive (checked: this test failed with `code`
/// None after 30 s). `check --online` reports the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_with_a_refused_slack_app_token_stops_with_the_fix_and_hides_it() {
    let slack = FakeSlack::start().await;
    let wrong = "xapp-1-A0WRONG-0000-deadbeefcafe";
    let text = slack_config(&slack, &["slack:#pr-alerts"], Some(wrong));
    let run = run_for(text.clone(), std::time::Duration::from_secs(30)).await;
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    assert_eq!(slack.faults.count("apps.connections.open"), 1);
    run.assert_no_secrets(&[wrong, BOT_TOKEN, SIGNING_SECRET]);
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("app-level token"))
        .collect();
    assert_eq!(lines.len(), 1, "{}", run.stderr);
    assert_eq!(
        lines[0],
        "error: cannot start Slack Socket Mode: slack refused apps.connections.open: invalid_auth; \
         the Slack app-level token ([slack].app_token) was refused: create one with the \
         connections:write scope under Basic Information → App-Level Tokens, set SLACK_APP_TOKEN \
         to the new xapp- token and restart mentiondesk"
    );

    let check = mentiondesk(&["check", "--online"], text).await;
    assert_eq!(check.code, Some(1), "{}{}", check.stdout, check.stderr);
    let line = check.line("slack app-level token (Socket Mode):");
    assert!(
        line.contains("problem:")
            && line.contains("invalid_auth")
            && line.contains("Basic Information → App-Level Tokens"),
        "{line}"
    );
    check.assert_no_secrets(&[wrong, BOT_TOKEN, SIGNING_SECRET]);
}

/// A good app-level token: `run` starts Socket Mode and keeps running; `check --online` says
/// the token is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_slack_app_token_passes_check_online_and_run_keeps_running() {
    let slack = FakeSlack::start().await;
    let text = slack_config(&slack, &["slack:#pr-alerts"], Some(APP_TOKEN));
    let check = mentiondesk(&["check", "--online"], text.clone()).await;
    assert_eq!(check.code, Some(0), "{}{}", check.stdout, check.stderr);
    assert_eq!(
        check.line("slack app-level token (Socket Mode):"),
        "slack app-level token (Socket Mode): accepted"
    );
    check.assert_no_secrets(&[APP_TOKEN, BOT_TOKEN, SIGNING_SECRET]);
    let run = run_for(text, std::time::Duration::from_secs(5)).await;
    assert_eq!(run.code, None, "still running after 5 s: {}", run.stderr);
    assert!(slack.state.lock().unwrap().socket_connections >= 1);
    run.assert_no_secrets(&[APP_TOKEN, BOT_TOKEN, SIGNING_SECRET]);
}

/// Command registration refused (the bot was invited without applications.commands, or the
/// application id is another app's): `check --online` names it with the fix and the invite
/// URL, and fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discord_check_online_names_a_refused_command_registration_with_the_invite_url() {
    let discord = FakeDiscord::start().await;
    discord
        .faults
        .always(ops::PUT_GUILD_COMMANDS, Fault::discord_missing_access());
    let target = format!("discord:{CHANNEL}");
    let run = mentiondesk(&["check", "--online"], discord_config(&discord, &[&target])).await;
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    let line = run.line("discord command /desk:");
    assert!(
        line.contains("problem:") && line.contains("403/50001"),
        "{line}"
    );
    assert!(
        line.contains("check [discord].application_id (Developer Portal → General Information → Application ID) and [discord].guild_id and that the bot was invited with the applications.commands scope"),
        "{line}"
    );
    assert!(line.contains("permissions=309237763072"), "{line}");
    run.assert_no_secrets(&[DISCORD_TOKEN]);
}

/// A Discord-only daemon logs `chat="discord"` (not "console") and the registered `/desk`
/// with its application and guild.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discord_only_daemon_logs_its_chat_and_the_registered_command() {
    let discord = FakeDiscord::start().await;
    let target = format!("discord:{CHANNEL}");
    let run = run_until(
        discord_config(&discord, &[&target]),
        std::time::Duration::from_secs(60),
        |err| err.contains("registered the Discord slash command"),
    )
    .await;
    assert_eq!(run.code, None, "still running: {}", run.stderr);
    assert!(run.stderr.contains("chat=\"discord\""), "{}", run.stderr);
    let registered = run
        .stderr
        .lines()
        .find(|l| l.contains("registered the Discord slash command"))
        .unwrap_or_else(|| panic!("no registration line in:\n{}", run.stderr));
    assert!(
        registered.contains(&format!("application {APP_ID}, guild {GUILD_ID}"))
            && registered.contains("command=/desk"),
        "{registered}"
    );
    run.assert_no_secrets(&[DISCORD_TOKEN]);
}
