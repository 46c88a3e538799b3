//! `mentiondesk run` inside the test process, and the signed Slack callbacks a test sends it.

use super::free_port;
use super::slack::FakeSlack;
use super::slack_spec;
use serde_json::{json, Value};
use std::time::Duration;

pub const SIGNING_SECRET: &str = "test-signing-secret";

/// `mentiondesk run` inside the test process, on a config text with `{store}` and `{port}`
/// filled in.
pub struct Daemon {
    pub trigger: mentiondesk::shutdown::ShutdownTrigger,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// The daemon's `[store]`, to open its store once it has stopped (sled or PostgreSQL).
    store: mentiondesk::store::StoreConfig,
}

impl Daemon {
    pub async fn start(config_template: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        Daemon::start_in(config_template, dir).await
    }

    /// Starts on an existing directory (a restart keeps the store).
    pub async fn start_in(config_template: &str, dir: tempfile::TempDir) -> Daemon {
        super::capture_daemon_logs();
        let port = free_port();
        let text = config_template
            .replace("{store}", &dir.path().join("store").display().to_string())
            .replace("{port}", &port.to_string());
        let cfg = mentiondesk::settings::parse(&text, std::path::Path::new("test.toml"), &|_| None)
            .unwrap_or_else(|e| panic!("{e}"));
        let (trigger, shutdown) = mentiondesk::shutdown::channel();
        let store = cfg.store.clone();
        let task = tokio::spawn(mentiondesk::app::run_until(cfg, shutdown));
        let d = Daemon {
            trigger,
            task,
            port,
            dir,
            store,
        };
        d.wait_ready().await;
        d
    }

    async fn wait_ready(&self) {
        for _ in 0..200 {
            if reqwest::get(self.url("/healthz")).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("daemon did not start listening");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// Stops it and opens its store, whichever backend the config chose (see
    /// `store_backend.rs`), with the directory it ran in.
    pub async fn stop_and_open_store(self) -> (tempfile::TempDir, mentiondesk::store::Store) {
        let store = self.store.clone();
        let dir = self.stop().await;
        let store = mentiondesk::store::Store::open_with(&store)
            .await
            .expect("the stopped daemon's store opens");
        (dir, store)
    }

    /// Stops it and hands back its directory (for a restart).
    pub async fn stop(self) -> tempfile::TempDir {
        self.trigger.trigger();
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("daemon stops promptly")
            .unwrap()
            .unwrap();
        self.dir
    }

    pub async fn healthz(&self) -> Value {
        reqwest::get(self.url("/healthz"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// POSTs a form body to a Slack endpoint, signed now with the test secret.
    /// Its immediate answer is what Slack would receive: when it is a message or view that
    /// Slack refuses (or flags), the test fails here.
    pub async fn slack_post(&self, path: &str, body: &str) -> reqwest::Response {
        let ts = chrono::Utc::now().timestamp();
        let sig = mentiondesk::server::slack::sign(SIGNING_SECRET, ts, body.as_bytes());
        let resp = self
            .raw_post(path, body, Some(&ts.to_string()), Some(&sig))
            .await;
        checked_slack_answer(path, resp).await
    }

    pub async fn raw_post(
        &self,
        path: &str,
        body: &str,
        ts: Option<&str>,
        sig: Option<&str>,
    ) -> reqwest::Response {
        let mut req = reqwest::Client::new()
            .post(self.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_string());
        if let Some(ts) = ts {
            req = req.header("x-slack-request-timestamp", ts);
        }
        if let Some(sig) = sig {
            req = req.header("x-slack-signature", sig);
        }
        req.send().await.unwrap()
    }
}

/// Checks the daemon's immediate answer to Slack (see `Daemon::slack_post`) and hands the
/// response back unchanged.
pub async fn checked_slack_answer(path: &str, resp: reqwest::Response) -> reqwest::Response {
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.expect("answer body");
    let is_json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if status.is_success() && is_json {
        let body: Value = serde_json::from_slice(&bytes).expect("answer is JSON");
        let findings = slack_spec::check_immediate_answer(&body);
        if !findings.is_empty() {
            let lines: Vec<String> = findings
                .iter()
                .map(|f| {
                    format!(
                        "  [{:?}] {} {} {} {}",
                        f.severity, f.pointer, f.error, f.message, f.detail
                    )
                })
                .collect();
            panic!(
                "the daemon answered Slack's POST {path} with a payload Slack refuses or flags:\n{}",
                lines.join("\n")
            );
        }
    }
    let mut out = axum::http::Response::builder().status(status);
    for (k, v) in &headers {
        out = out.header(k, v);
    }
    reqwest::Response::from(out.body(bytes).unwrap())
}

/// A slash-command form body as Slack sends it.
pub fn command_body(slack: &FakeSlack, text: &str, user: &str, trigger: &str) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("token", "legacy")
        .append_pair("team_id", "T0TEAM")
        .append_pair("channel_id", "C0PRALERTS")
        .append_pair("user_id", user)
        .append_pair("user_name", "someone")
        .append_pair("command", "/desk")
        .append_pair("text", text)
        .append_pair("response_url", &slack.response_url(trigger))
        .append_pair("trigger_id", trigger)
        .finish()
}

/// A `block_actions` payload for a button on an alert.
pub fn button_body(
    slack: &FakeSlack,
    action_id: &str,
    value: &str,
    user: &str,
    trigger: &str,
) -> String {
    let payload = json!({
        "type": "block_actions",
        "user": {"id": user, "username": "someone", "team_id": "T0TEAM"},
        "trigger_id": trigger,
        "response_url": slack.response_url(trigger),
        "container": {"type": "message", "channel_id": "C0PRALERTS"},
        "actions": [{"type": "button", "action_id": action_id, "block_id": "actions", "value": value, "action_ts": "1700000000.1"}],
    });
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &payload.to_string())
        .finish()
}

/// A `view_submission` payload for one of the desk's modals.
pub fn view_body(callback_id: &str, alert: &str, user: &str, values: Value) -> String {
    let payload = json!({
        "type": "view_submission",
        "user": {"id": user},
        "view": {"id": format!("V{user}{alert}"), "hash": format!("h{}", values), "callback_id": callback_id, "private_metadata": alert, "state": {"values": values}},
    });
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &payload.to_string())
        .finish()
}
