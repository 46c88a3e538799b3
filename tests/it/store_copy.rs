//! `mentiondesk store copy` through the binary (issue 17, point 5): a daemon on sled posts
//! alerts and someone claims one; the copy is refused while the daemon holds the store; once
//! it stops, the store is copied to PostgreSQL (twice: the same store), and a daemon on the
//! copy shows the same desk, does not alert the seen items again and gives a new item the
//! next id; copied back to sled, it holds the same alerts, timers and outbox. Skipped, with
//! one printed line, without the PostgreSQL server binaries.

use crate::common::store_backend::TestStore;
use crate::common::*;
use mentiondesk::store::pg::throwaway;
use mentiondesk::store::Store;

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

async fn store_copy(from: &str, to: &str) -> Run {
    let (from, to) = (from.to_string(), to.to_string());
    let out = tokio::task::spawn_blocking(move || {
        mentiondesk()
            .args(["store", "copy", "--from", &from, "--to", &to])
            .env_remove("DATABASE_URL")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn item(guid: &str, title: &str) -> (String, String, String) {
    (
        guid.into(),
        title.into(),
        format!("{title}: acme broke my phone"),
    )
}

/// The count the summary gives for `kind`.
fn copied(run: &Run, kind: &str) -> u64 {
    run.stdout
        .lines()
        .find_map(|l| {
            let l = l.trim_start();
            l.strip_prefix(kind)
                .filter(|rest| rest.starts_with(' '))
                .map(|rest| rest.trim().parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no {kind} in:\n{}{}", run.stdout, run.stderr))
}

/// `/desk TEXT` by U1, answered privately.
async fn desk(daemon: &Daemon, slack: &FakeSlack, text: &str, trigger: &str) -> String {
    let resp = daemon
        .slack_post("/slack/commands", &command_body(slack, text, "U1", trigger))
        .await;
    assert_eq!(resp.status(), 200);
    slack
        .wait_until(10, text, |f| f.answers(trigger).pop())
        .await
}

/// The store a config names (its `[store]` table), opened as the daemon would.
async fn open_configured(template: &str) -> Store {
    let text = template
        .replace("{store}", "/nonexistent/unused")
        .replace("{port}", "1");
    let cfg = mentiondesk::settings::parse(&text, std::path::Path::new("test.toml"), &|_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    Store::open_with(&cfg.store).await.unwrap()
}

/// What a daemon works from, alert by alert: the alerts, their audit logs and timers, and
/// the outbox.
async fn desk_state(store: &Store) -> String {
    let mut out = String::new();
    for a in store.alerts().await.unwrap() {
        out.push_str(&format!(
            "{a:?}\n{:?}\n",
            store.audit_log(a.id).await.unwrap()
        ));
    }
    out.push_str(&format!("{:?}\n", store.timers().await.unwrap()));
    out.push_str(&format!("{:?}\n", store.outbox().await.unwrap()));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sled_store_moves_to_postgres_and_back_and_the_desk_carries_on() {
    if throwaway::cluster().is_none() {
        return; // Skipped with the one line `throwaway` printed.
    }
    let slack = FakeSlack::start().await;
    let first = vec![item("g1", "Acme outage"), item("g2", "Acme billing")];
    let feeds = FakeFeeds::start(vec![("/feed.xml", FeedResponse::rss(rss(&first)))]).await;
    let on_sled = ConfigBuilder::for_store(TestStore::Sled)
        .slack(&slack)
        .rss("news", &feeds.url("/feed.xml"))
        .rule("acme", "acme", &["slack:#pr-alerts"])
        .desk()
        .toml();
    let daemon = Daemon::start(&on_sled).await;
    slack.wait_for_posts(2, 15).await;
    assert!(desk(&daemon, &slack, "claim 1", "c1")
        .await
        .contains("You claimed #1"));
    let sled_path = daemon.dir.path().join("store");
    let sled = format!("sled:{}", sled_path.display());

    // PostgreSQL: the daemon's config names a fresh database; the copy goes there.
    let later = vec![
        item("g1", "Acme outage"),
        item("g2", "Acme billing"),
        item("g3", "Acme refund"),
    ];
    let feeds2 = FakeFeeds::start(vec![("/feed.xml", FeedResponse::rss(rss(&later)))]).await;
    let on_pg = ConfigBuilder::for_store(TestStore::Postgres)
        .slack(&slack)
        .rss("news", &feeds2.url("/feed.xml"))
        .rule("acme", "acme", &["slack:#pr-alerts"])
        .desk()
        .toml();
    let url = on_pg
        .lines()
        .find_map(|l| l.strip_prefix("url = "))
        .map(|u| u.trim_matches('"').to_string())
        .expect("the config names the database");

    // The daemon holds the sled store: refused, naming it and the fix.
    let held = store_copy(&sled, &url).await;
    assert_eq!(held.code, Some(1), "{}{}", held.stdout, held.stderr);
    assert!(
        held.stderr.contains("held by a running mentiondesk"),
        "{}",
        held.stderr
    );
    assert!(held.stderr.contains("stop the daemon"), "{}", held.stderr);

    let dir = daemon.stop().await;
    let copy = store_copy(&sled, &url).await;
    assert_eq!(copy.code, Some(0), "{}{}", copy.stdout, copy.stderr);
    assert_eq!(copied(&copy, "alerts"), 2);
    assert!(copied(&copy, "seen keys") >= 2);
    assert!(copied(&copy, "timers") >= 1, "{}", copy.stdout);
    assert!(copied(&copy, "message refs") >= 2, "{}", copy.stdout);
    let once = desk_state(&open_configured(&on_pg).await).await;

    // Again: the same store, nothing twice.
    let again = store_copy(&sled, &url).await;
    assert_eq!(again.code, Some(0), "{}{}", again.stdout, again.stderr);
    assert!(
        again.stdout.contains("replacing an earlier copy"),
        "{}",
        again.stdout
    );
    assert_eq!(desk_state(&open_configured(&on_pg).await).await, once);
    let source = Store::open(&dir.path().join("store")).unwrap();
    assert_eq!(
        desk_state(&source).await,
        once,
        "the copy holds what sled held"
    );
    drop(source);

    // A daemon on the copy: the desk as it was, the seen items stay quiet, the new one is #3.
    let daemon = Daemon::start(&on_pg).await;
    let roots = slack
        .wait_until(20, "the new item's alert", |f| {
            let roots = f.roots();
            (roots.len() >= 3).then_some(roots)
        })
        .await;
    assert_eq!(alert_id_of(&roots[2]), "3");
    assert!(desk(&daemon, &slack, "list mine", "l1")
        .await
        .contains("1 claimed by you alert"));
    assert!(desk(&daemon, &slack, "list", "l2")
        .await
        .contains("3 open alerts"));
    assert!(desk(&daemon, &slack, "resolve 1 done", "r1")
        .await
        .contains("#1 is resolved"));
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(
        slack.roots().len(),
        3,
        "no item alerted twice: {:#?}",
        slack.roots()
    );
    daemon.stop().await;

    // And back to sled: the same alerts, audit logs, timers and outbox.
    let back_dir = tempfile::tempdir().unwrap();
    let back = format!("sled:{}", back_dir.path().join("store").display());
    let copy = store_copy(&url, &back).await;
    assert_eq!(copy.code, Some(0), "{}{}", copy.stdout, copy.stderr);
    assert_eq!(copied(&copy, "alerts"), 3);
    let pg_state = desk_state(&open_configured(&on_pg).await).await;
    let sled_back = Store::open(&back_dir.path().join("store")).unwrap();
    assert_eq!(desk_state(&sled_back).await, pg_state);
    drop(sled_back);

    // The first sled store is no copy of PostgreSQL: copying into it is refused.
    let refused = store_copy(&url, &sled).await;
    assert_eq!(
        refused.code,
        Some(1),
        "{}{}",
        refused.stdout,
        refused.stderr
    );
    assert!(
        refused.stderr.contains("not a copy of"),
        "{}",
        refused.stderr
    );
}
