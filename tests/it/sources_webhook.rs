//! The `webhook` source: signed deliveries to `POST /ingest/{source}` on a real daemon, over a
//! socket. Bodies follow the `file` source's JSON-lines shape (README, "Sources"); headers and
//! signature follow README's `webhook` entry (`X-Mentiondesk-Timestamp`,
//! `X-Mentiondesk-Signature: v1=<hex HMAC-SHA256 of "v1:{timestamp}:{body}">`).

use crate::common;

use common::faults::Fault;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

const SECRET: &str = "whsec-test-0123456789abcdef";
const SOURCE: &str = "reviews";
/// Items in the crash test's batch besides the one that matches.
const ITEMS: usize = 3000;

fn config(slack: &FakeSlack) -> ConfigBuilder {
    ConfigBuilder::new()
        .slack(slack)
        .source(SOURCE, "webhook")
        .key("secret", SECRET)
        .rule("acme", "acme", &["slack:#pr-alerts"])
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// POSTs `body` to `/ingest/{source}` on `port` with these headers; the status and JSON answer.
async fn post(
    port: u16,
    source: &str,
    body: &str,
    ts: Option<String>,
    sig: Option<String>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/ingest/{source}"))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(ts) = ts {
        req = req.header("X-Mentiondesk-Timestamp", ts);
    }
    if let Some(sig) = sig {
        req = req.header("X-Mentiondesk-Signature", sig);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

/// POSTs `body` signed now with `secret`, as a sender does.
async fn deliver(port: u16, source: &str, body: &str, secret: &str) -> (u16, Value) {
    let ts = now();
    let sig = mentiondesk::server::ingest::sign(secret, ts, body.as_bytes());
    post(port, source, body, Some(ts.to_string()), Some(sig)).await
}

fn source_health(h: &Value) -> Value {
    h["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == SOURCE)
        .cloned()
        .unwrap_or_else(|| panic!("no {SOURCE} in /healthz: {h}"))
}

fn posted_texts(slack: &FakeSlack) -> Vec<String> {
    slack.posts().iter().map(|p| p.body.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_batch_is_stored_and_alerted_and_a_repeat_alerts_nothing() {
    let slack = FakeSlack::start().await;
    let daemon = Daemon::start(&config(&slack).toml()).await;
    // A review platform's batch: one array, one matching item, one not.
    let body = json!([
        {"id": "rev-1", "text": "Acme's app crashes on every launch", "title": "1 star",
         "author": "dana", "url": "https://reviews.example/rev-1",
         "published": "2026-11-30T09:00:00Z", "lang": "en"},
        {"id": "rev-2", "text": "Works fine for me"}
    ])
    .to_string();
    let (status, answer) = deliver(daemon.port, SOURCE, &body, SECRET).await;
    assert_eq!((status, &answer), (202, &json!({"accepted": 2})));
    let posts = slack.wait_for_posts(1, 10).await;
    assert!(posts[0]
        .body
        .to_string()
        .contains("crashes on every launch"));

    // The sender retries the same delivery (a lost answer), and then sends one item alone.
    let (status, _) = deliver(daemon.port, SOURCE, &body, SECRET).await;
    assert_eq!(status, 202);
    let single = json!({"id": "rev-1", "text": "Acme's app crashes on every launch"}).to_string();
    let (status, answer) = deliver(daemon.port, SOURCE, &single, SECRET).await;
    assert_eq!((status, &answer), (202, &json!({"accepted": 1})));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        slack.posts().len(),
        1,
        "the same id alerts once: {:?}",
        posted_texts(&slack)
    );

    let h = daemon.healthz().await;
    let src = source_health(&h);
    assert_eq!(src["kind"], "webhook");
    assert_eq!(src["healthy"], true);
    assert_eq!(src["polls_total"], 3, "{src}");
    assert_eq!(src["mentions_total"], 5, "{src}");
    assert!(!h.to_string().contains(SECRET));
    daemon.stop().await;
}

/// What is wrong, the body, the two headers, and what the 401's reason must say.
type Case = (
    &'static str,
    String,
    Option<String>,
    Option<String>,
    &'static str,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signatures_are_refused_with_a_reason_and_store_nothing() {
    let slack = FakeSlack::start().await;
    let daemon = Daemon::start(&config(&slack).toml()).await;
    let port = daemon.port;
    let body = json!([{"id": "sig-1", "text": "acme is down"}]).to_string();
    let ts = now();
    let good_sig = mentiondesk::server::ingest::sign(SECRET, ts, body.as_bytes());
    let tampered = body.replace("down", "fine");
    let cases: Vec<Case> = vec![
        (
            "tampered body",
            tampered,
            Some(ts.to_string()),
            Some(good_sig.clone()),
            "signature does not match",
        ),
        (
            "wrong secret",
            body.clone(),
            Some(ts.to_string()),
            Some(mentiondesk::server::ingest::sign(
                "another-secret-0123456789",
                ts,
                body.as_bytes(),
            )),
            "signature does not match",
        ),
        (
            "stale",
            body.clone(),
            Some((ts - 400).to_string()),
            Some(mentiondesk::server::ingest::sign(
                SECRET,
                ts - 400,
                body.as_bytes(),
            )),
            "old",
        ),
        (
            "future",
            body.clone(),
            Some((ts + 400).to_string()),
            Some(mentiondesk::server::ingest::sign(
                SECRET,
                ts + 400,
                body.as_bytes(),
            )),
            "in the future",
        ),
        (
            "no timestamp",
            body.clone(),
            None,
            Some(good_sig.clone()),
            "missing X-Mentiondesk-Timestamp",
        ),
        (
            "no signature",
            body.clone(),
            Some(ts.to_string()),
            None,
            "missing X-Mentiondesk-Signature",
        ),
        (
            "Slack-style signature",
            body.clone(),
            Some(ts.to_string()),
            Some(good_sig.replace("v1=", "v0=")),
            "not v1=",
        ),
    ];
    let cases_len = cases.len();
    for (what, body, ts, sig, reason) in cases {
        let (status, answer) = post(port, SOURCE, &body, ts, sig).await;
        assert_eq!(status, 401, "{what}: {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains(reason), "{what}: {answer}");
        assert!(!answer.to_string().contains(SECRET), "{what}: {answer}");
    }
    // A misconfigured sender shows, but unsigned requests cannot make the source unhealthy.
    let src = source_health(&daemon.healthz().await);
    assert_eq!(
        src["healthy"], true,
        "forged requests change no health: {src}"
    );
    assert_eq!(src["refused_total"], cases_len, "{src}");
    assert!(
        src["last_refused"].as_str().unwrap().contains("not v1="),
        "{src}"
    );
    let h = daemon.healthz().await;
    assert_eq!(h["status"], "ok", "{h}");
    let m = reqwest::get(daemon.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains(&format!(
            "mentiondesk_source_refused_total{{source=\"{SOURCE}\",kind=\"webhook\"}} {cases_len}"
        )),
        "{m}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(slack.posts().is_empty(), "nothing alerted");

    // Nothing was stored: the same item, now signed, is new and alerts.
    let (status, _) = deliver(port, SOURCE, &body, SECRET).await;
    assert_eq!(status, 202);
    let posts = slack.wait_for_posts(1, 10).await;
    assert!(posts[0].body.to_string().contains("acme is down"));
    assert_eq!(source_health(&daemon.healthz().await)["healthy"], true);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_batch_keeps_the_good_items_and_lists_the_bad_ones() {
    let slack = FakeSlack::start().await;
    let daemon = Daemon::start(&config(&slack).toml()).await;
    // A Zapier zap with one field mapped wrong, a stray value and a bad date.
    let body = json!([
        {"id": "z-1", "text": "acme support never answered"},
        {"id": "z-2", "body": "acme: the text field is named wrong"},
        {"id": "z-3", "text": "acme billing charged me twice"},
        "acme",
        {"id": "z-5", "text": "acme", "published": "last tuesday"}
    ])
    .to_string();
    let (status, answer) = deliver(daemon.port, SOURCE, &body, SECRET).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["accepted"], 2, "{answer}");
    let bad: Vec<(u64, String)> = answer["bad"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["index"].as_u64().unwrap(),
                b["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        bad.iter().map(|b| b.0).collect::<Vec<_>>(),
        [1, 3, 4],
        "{answer}"
    );
    assert!(bad[0].1.contains("missing field `text`"), "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("3 items of 5 could not be read"),
        "{answer}"
    );
    let posts = slack.wait_for_posts(2, 10).await;
    let texts: String = posts.iter().map(|p| p.body.to_string()).collect();
    assert!(texts.contains("never answered") && texts.contains("charged me twice"));
    let src = source_health(&daemon.healthz().await);
    assert_eq!(src["degraded"], true, "{src}");

    // Not JSON at all: 400 and nothing stored.
    let (status, answer) = deliver(daemon.port, SOURCE, "text=acme", SECRET).await;
    assert_eq!(status, 400);
    assert!(
        answer["error"].as_str().unwrap().contains("not JSON"),
        "{answer}"
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(slack.posts().len(), 2);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_is_413_and_other_names_are_404() {
    let slack = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let text = ConfigBuilder::new()
        .slack(&slack)
        .source(SOURCE, "webhook")
        .key("secret", SECRET)
        .key("max_body_bytes", 2048i64)
        .source("local", "file")
        .key("path", dir.path().join("m.jsonl").display().to_string())
        .rule("acme", "acme", &["slack:#pr-alerts"])
        .toml();
    let daemon = Daemon::start(&text).await;
    let big = json!([{"id": "big", "text": format!("acme {}", "x".repeat(4096))}]).to_string();
    let (status, answer) = deliver(daemon.port, SOURCE, &big, SECRET).await;
    assert_eq!(status, 413, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("2048 byte cap"),
        "{answer}"
    );
    // Without a Content-Length (chunked), the cap holds while reading.
    let ts = now();
    let sig = mentiondesk::server::ingest::sign(SECRET, ts, big.as_bytes());
    let status_line = chunked_post(daemon.port, SOURCE, &big, ts, &sig).await;
    assert!(status_line.starts_with("HTTP/1.1 413"), "{status_line}");
    let small = json!([{"id": "small", "text": "acme fits"}]).to_string();
    assert_eq!(deliver(daemon.port, SOURCE, &small, SECRET).await.0, 202);

    // Unknown name and a source of another kind: the same 404, signed or not.
    let unknown = deliver(daemon.port, "nope", &small, SECRET).await;
    let other_kind = deliver(daemon.port, "local", &small, SECRET).await;
    assert_eq!(unknown.0, 404);
    assert_eq!(unknown, other_kind);
    let unsigned = post(daemon.port, "nope", &small, None, None).await;
    assert_eq!(unsigned, unknown);
    slack.wait_for_posts(1, 10).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        slack.posts().len(),
        1,
        "only the delivery that fits alerted"
    );
    daemon.stop().await;
}

/// POSTs `body` in 1 KiB chunks without a Content-Length; the answer's status line.
async fn chunked_post(port: u16, source: &str, body: &str, ts: i64, sig: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let head = format!(
        "POST /ingest/{source} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nX-Mentiondesk-Timestamp: {ts}\r\nX-Mentiondesk-Signature: {sig}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    for chunk in body.as_bytes().chunks(1024) {
        let mut frame = format!("{:x}\r\n", chunk.len()).into_bytes();
        frame.extend_from_slice(chunk);
        frame.extend_from_slice(b"\r\n");
        // The server may answer and close before the last chunk: that is the point.
        if stream.write_all(&frame).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Sends a request head promising `promised` body bytes and only `sent` of them, then waits
/// for the answer's status line (the connection stays open from our side).
async fn trickle(port: u16, path: &str, extra: &str, promised: usize, sent: usize) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {promised}\r\n{extra}\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&vec![b'{'; sent]).await.unwrap();
    let mut answer = vec![0u8; 512];
    let n = stream.read(&mut answer).await.unwrap_or(0);
    String::from_utf8_lossy(&answer[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// A sender that trickles its body (or a slow-loris client) gets 408 after the source's
/// `timeout` instead of holding the connection, and a request that never completes cannot
/// keep the daemon from stopping.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_arrives_is_408_and_does_not_hold_shutdown() {
    let slack = FakeSlack::start().await;
    let text = ConfigBuilder::new()
        .slack(&slack)
        .source(SOURCE, "webhook")
        .key("secret", SECRET)
        .key("timeout", "1s")
        .rule("acme", "acme", &["slack:#pr-alerts"])
        .toml();
    let daemon = Daemon::start(&text).await;
    let ts = now();
    let sig = mentiondesk::server::ingest::sign(SECRET, ts, b"irrelevant");
    let headers = format!("X-Mentiondesk-Timestamp: {ts}\r\nX-Mentiondesk-Signature: {sig}\r\n");
    let started = std::time::Instant::now();
    let status = tokio::time::timeout(
        Duration::from_secs(10),
        trickle(daemon.port, &format!("/ingest/{SOURCE}"), &headers, 100, 10),
    )
    .await
    .expect("an answer, not a hung connection");
    assert!(status.starts_with("HTTP/1.1 408"), "{status}");
    assert!(started.elapsed() >= Duration::from_millis(900));
    let src = source_health(&daemon.healthz().await);
    assert!(
        src["last_refused"]
            .as_str()
            .unwrap()
            .contains("did not arrive"),
        "{src}"
    );

    // A Slack command whose body never completes is open while the daemon stops.
    let port = daemon.port;
    let hung = tokio::spawn(async move { trickle(port, "/slack/commands", "", 100, 10).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    daemon.stop().await;
    hung.abort();
}

/// 202 means stored and flushed: a SIGKILL right after it loses nothing, and the restarted
/// daemon delivers the alert exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_202_survives_sigkill_and_alerts_exactly_once() {
    let slack = FakeSlack::start().await;
    // Slack is down during the first run: the alert can only come from the store.
    slack.faults.always("chat.postMessage", Fault::Http(503));
    let dir = tempfile::tempdir().unwrap();
    let (path, port) = config(&slack).write(dir.path(), "mentiondesk.toml");
    let spawn = |n: usize| {
        let log = std::fs::File::create(dir.path().join(format!("run-{n}.log"))).unwrap();
        crate::common::mentiondesk()
            .args(["run", "--config"])
            .arg(&path)
            .env("MENTIONDESK_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    };
    let ready = || async {
        poll_until_async(20, "daemon listening", || async {
            reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
                .await
                .ok()
                .map(|_| ())
        })
        .await
    };

    let mut child = spawn(0);
    ready().await;
    // A big batch (one matching item among many that do not), so storing it takes a while:
    // answering before the flush would leave a window the kill lands in.
    let mut items: Vec<Value> = (0..ITEMS)
        .map(|i| json!({"id": format!("bulk-{i}"), "text": format!("nothing to see {i}")}))
        .collect();
    items.push(json!({"id": "crash-1", "text": "acme lost my order"}));
    let body = Value::Array(items).to_string();
    let (status, _) = deliver(port, SOURCE, &body, SECRET).await;
    assert_eq!(status, 202);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(slack.posts().is_empty());

    slack.faults.clear();
    let mut child = spawn(1);
    ready().await;
    let posts = slack.wait_for_posts(1, 20).await;
    assert!(posts[0].body.to_string().contains("lost my order"));
    // The sender never heard back from the dead daemon and retries: every item of it is
    // known already, and there is still one alert.
    let (status, _) = deliver(port, SOURCE, &body, SECRET).await;
    assert_eq!(status, 202);
    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let counter = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in {metrics}"))
            .to_string()
    };
    assert_eq!(counter("mentiondesk_mentions_total"), "0");
    assert_eq!(
        counter("mentiondesk_duplicates_total"),
        (ITEMS + 1).to_string()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(slack.posts().len(), 1, "{:?}", posted_texts(&slack));
    let logs: String = (0..2)
        .map(|n| std::fs::read_to_string(dir.path().join(format!("run-{n}.log"))).unwrap())
        .collect();
    assert!(logs.contains("webhook delivery stored"), "{logs}");
    assert!(!logs.contains(SECRET), "the secret never reaches the logs");
}

async fn poll_until_async<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn scan_once_says_a_webhook_source_receives_instead_of_polling() {
    let dir = tempfile::tempdir().unwrap();
    let text = ConfigBuilder::new()
        .source(SOURCE, "webhook")
        .key("secret", SECRET)
        .rule("acme", "acme", &["slack:#pr-alerts"])
        .toml()
        .replace("{store}", &dir.path().join("store").display().to_string())
        .replace("{port}", "0");
    let path = dir.path().join("mentiondesk.toml");
    std::fs::write(&path, text).unwrap();
    let out = crate::common::mentiondesk()
        .args(["scan", "--once", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("reviews: webhook source: it receives mentions at POST /ingest/reviews"),
        "{stdout}"
    );
    let check = crate::common::mentiondesk()
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

fn parse(toml: &str) -> Result<mentiondesk::settings::Config, String> {
    mentiondesk::settings::parse(toml, std::path::Path::new("t.toml"), &|_| None)
        .map_err(|e| e.to_string())
}

#[test]
fn check_wants_a_long_enough_secret_and_never_prints_it() {
    let err = parse("[[sources]]\nname = \"hook\"\nkind = \"webhook\"\n").unwrap_err();
    assert!(err.contains("sources[0].secret"), "{err}");
    assert!(err.contains("missing secret"), "{err}");

    let err = parse("[[sources]]\nname = \"hook\"\nkind = \"webhook\"\nsecret = \"hunter2\"\n")
        .unwrap_err();
    assert!(err.contains("too short (7 characters)"), "{err}");
    assert!(err.contains("openssl rand -hex 32"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");

    // A newline from an env file would make every signature fail: refused, value unprinted.
    let err = parse(
        "[[sources]]\nname = \"hook\"\nkind = \"webhook\"\nsecret = \"0123456789abcdef0123\\n\"\n",
    )
    .unwrap_err();
    assert!(err.contains("ends with whitespace"), "{err}");
    assert!(!err.contains("0123456789abcdef0123"), "{err}");

    let err = parse(
        "[[sources]]\nname = \"hook\"\nkind = \"webhook\"\nsecret = \"0123456789abcdef\"\nquery = \"x\"\n",
    )
    .unwrap_err();
    assert!(err.contains("query"), "{err}");
}

#[test]
fn the_body_cap_defaults_to_one_mebibyte_unless_set() {
    let cap = |extra: &str| {
        let cfg = parse(&format!(
            "[[sources]]\nname = \"hook\"\nkind = \"webhook\"\nsecret = \"0123456789abcdef\"\n{extra}"
        ))
        .unwrap();
        cfg.sources[0].common().max_body_bytes
    };
    assert_eq!(cap(""), 1024 * 1024);
    assert_eq!(cap("max_body_bytes = 4096\n"), 4096);
}
