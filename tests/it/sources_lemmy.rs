//! The `lemmy` source against fake Lemmy instances on 127.0.0.1: search results in Lemmy
//! 0.19's shapes (and 0.18's zone-less `published`), the one-hour first look, watermark and
//! restarts, a backlog larger than one poll, one mention per `ap_id` across instances, a
//! failing or rate-limited instance among answering ones, errors named with the fix, config
//! checks, and `scan --once` / the daemon end to end.

use crate::common;

use common::fake_lemmy::{at, at_naive, comment_view, post_view, FakeLemmy};
use common::faults::Fault;
use common::{ConfigBuilder, Daemon, FakeSlack};
use mentiondesk::sources::poll::{Health, Poller};
use mentiondesk::sources::{self, SourceError, SourceState};
use serde_json::json;
use std::path::Path;
use std::time::Duration;

fn config_text(instances: &[&FakeLemmy]) -> String {
    let list: Vec<String> = instances.iter().map(|f| format!("{:?}", f.url())).collect();
    format!(
        r#"
[[sources]]
name = "lemmy"
kind = "lemmy"
instances = [{}]
query = '(acme OR "acme corp") AND NOT hiring'
timeout = "2s"
allow_private = true

[[rules]]
name = "acme"
query = "acme AND NOT hiring"
alert = ["slack:#pr"]
"#,
        list.join(", ")
    )
}

fn source(instances: &[&FakeLemmy]) -> Box<dyn sources::Source> {
    let config =
        mentiondesk::settings::parse(&config_text(instances), Path::new("t.toml"), &|_| None)
            .unwrap();
    sources::build(&config.sources[0]).unwrap()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn ids(got: &[mentiondesk::model::Mention]) -> Vec<String> {
    let mut v: Vec<String> = got.iter().map(|m| m.item_id.clone()).collect();
    v.sort();
    v
}

#[tokio::test]
async fn real_search_results_become_clean_mentions() {
    let fake = FakeLemmy::start().await;
    let t = now();
    // A text post (Markdown body; titles come HTML-escaped from some versions).
    fake.add_post(post_view(
        "lemmy.world",
        101,
        &at(t - 600),
        "Acme &amp; the refund that never came",
        Some("Ordered in **May**.\n\nStill no refund from Acme support &gt;:("),
        None,
    ));
    // A link post without a body.
    fake.add_post(post_view(
        "lemmy.ml",
        102,
        &at(t - 500),
        "Acme recalls routers",
        None,
        Some("https://news.example/acme-recall"),
    ));
    // Lemmy 0.18 wrote `published` without a zone.
    fake.add_comment(comment_view(
        "beehaw.org",
        201,
        101,
        &at_naive(t - 300),
        "Same with my acme order.",
    ));
    // Deleted, and too old for the first poll: not mentions.
    let mut deleted = post_view(
        "lemmy.world",
        103,
        &at(t - 200),
        "acme deleted",
        Some(""),
        None,
    );
    deleted["post"]["deleted"] = json!(true);
    fake.add_post(deleted);
    fake.add_post(post_view(
        "lemmy.world",
        104,
        &at(t - 7200),
        "acme old",
        None,
        None,
    ));

    let got = source(&[&fake])
        .poll(&mut SourceState::default())
        .await
        .unwrap();
    assert_eq!(
        ids(&got),
        [
            "https://beehaw.org/comment/201",
            "https://lemmy.ml/post/102",
            "https://lemmy.world/post/101"
        ],
        "{got:#?}"
    );
    let by = |id: &str| got.iter().find(|m| m.item_id == id).unwrap();
    let p = by("https://lemmy.world/post/101");
    assert_eq!(
        p.title.as_deref(),
        Some("Acme & the refund that never came")
    );
    assert_eq!(
        p.text,
        "Ordered in **May**. Still no refund from Acme support >:("
    );
    assert_eq!(p.url.as_deref(), Some("https://lemmy.world/post/101"));
    assert_eq!(p.author.as_deref(), Some("@ann@lemmy.world"));
    assert_eq!(p.source_kind, "lemmy");
    assert_eq!(p.published.unwrap().timestamp(), t - 600);
    let link = by("https://lemmy.ml/post/102");
    assert_eq!(link.text, "https://news.example/acme-recall");
    let c = by("https://beehaw.org/comment/201");
    assert_eq!(c.title, None, "a comment's post title is context");
    assert_eq!(c.text, "Same with my acme order.");
    assert_eq!(c.author.as_deref(), Some("@bob@beehaw.org"));
    assert_eq!(
        c.published.unwrap().timestamp(),
        t - 300,
        "zone-less is UTC"
    );

    let req = &fake.requests()[0].query;
    assert_eq!(req["q"], "acme");
    assert_eq!(req["type_"], "All");
    assert_eq!(req["sort"], "New");
    assert_eq!(req["limit"], "50");
}

#[tokio::test]
async fn the_same_federated_post_on_two_instances_is_one_mention() {
    let world = FakeLemmy::start().await;
    let ml = FakeLemmy::start().await;
    let t = now();
    // lemmy.ml's copy of a lemmy.world post: its own local id, the origin's ap_id.
    let original = post_view(
        "lemmy.world",
        101,
        &at(t - 100),
        "Acme outage again",
        Some("down"),
        None,
    );
    let mut copy = original.clone();
    copy["post"]["id"] = json!(98765);
    copy["post"]["local"] = json!(false);
    world.add_post(original);
    ml.add_post(copy);
    ml.add_post(post_view(
        "lemmy.ml",
        5,
        &at(t - 90),
        "acme only here",
        None,
        None,
    ));
    let mut src = source(&[&world, &ml]);
    let mut state = SourceState::default();
    let got = src.poll(&mut state).await.unwrap();
    assert_eq!(
        ids(&got),
        ["https://lemmy.ml/post/5", "https://lemmy.world/post/101"],
        "one mention per ap_id"
    );
    assert_eq!(
        world.requests().len() + ml.requests().len(),
        2,
        "both instances asked"
    );
    assert!(src.poll(&mut state).await.unwrap().is_empty());
}

#[tokio::test]
async fn later_polls_read_only_new_items_and_a_restart_repeats_and_skips_nothing() {
    let fake = FakeLemmy::start().await;
    let t = now();
    fake.add_post(post_view(
        "lemmy.world",
        1,
        &at(t - 100),
        "acme one",
        None,
        None,
    ));
    let mut state = SourceState::default();
    let mut src = source(&[&fake]);
    assert_eq!(
        ids(&src.poll(&mut state).await.unwrap()),
        ["https://lemmy.world/post/1"]
    );
    assert!(src.poll(&mut state).await.unwrap().is_empty());
    // While "down": a new comment, and a post federated late with an older `published`.
    fake.add_comment(comment_view("lemmy.world", 9, 1, &at(t - 5), "acme two"));
    fake.add_post(post_view(
        "feddit.org",
        2,
        &at(t - 400),
        "acme federated late",
        None,
        None,
    ));
    let mut restored: SourceState =
        serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
    let got = source(&[&fake]).poll(&mut restored).await.unwrap();
    assert_eq!(
        ids(&got),
        ["https://feddit.org/post/2", "https://lemmy.world/comment/9"]
    );
    assert!(source(&[&fake])
        .poll(&mut restored)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn a_backlog_larger_than_one_poll_is_read_to_its_end() {
    let fake = FakeLemmy::start().await;
    let t = now();
    for i in 0..230u64 {
        fake.add_post(post_view(
            "lemmy.world",
            i + 1,
            &at(t - 3000 + i as i64 * 10),
            "acme",
            None,
            None,
        ));
    }
    let mut src = source(&[&fake]);
    let mut state = SourceState::default();
    let first = src.poll(&mut state).await.unwrap();
    assert_eq!(first.len(), 150, "three pages of 50 per poll");
    // Meanwhile more arrive at the top.
    for i in 0..20u64 {
        fake.add_post(post_view(
            "lemmy.world",
            1000 + i,
            &at(t - 50 + i as i64),
            "acme new",
            None,
            None,
        ));
    }
    let second = src.poll(&mut state).await.unwrap();
    let third = src.poll(&mut state).await.unwrap();
    let mut all = ids(&first);
    all.extend(ids(&second));
    all.extend(ids(&third));
    let total = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), total, "nothing twice");
    assert_eq!(all.len(), 250, "nothing skipped");
    assert!(src.poll(&mut state).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_failing_instance_among_answering_ones_is_a_partial_success() {
    let good = FakeLemmy::start().await;
    let bad = FakeLemmy::start().await;
    let t = now();
    good.add_post(post_view(
        "lemmy.world",
        1,
        &at(t - 100),
        "acme",
        None,
        None,
    ));
    bad.fail_next(Fault::http(502));
    let src = source(&[&good, &bad]);
    let health = Health::new();
    let (tx, mut rx) = tokio::sync::mpsc::channel(8);
    let (trigger, stop) = mentiondesk::shutdown::channel();
    let poller = Poller::new(
        src,
        Duration::from_millis(300),
        Duration::from_secs(5),
        SourceState::default(),
        tx,
        health.clone(),
    );
    let task = tokio::spawn(poller.run(stop));
    let first = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    // Answer as the intake does once it stored them, so the poller goes on.
    let first = {
        let _ = first.stored.send(true);
        first.outcome
    };
    assert_eq!(
        first.mentions.len(),
        1,
        "the answering instance is delivered"
    );
    let status = health.get("lemmy").unwrap();
    assert!(status.healthy && status.degraded, "{status:?}");
    let warning = status.last_error.clone().unwrap();
    assert!(
        warning.contains(&bad.url()) && warning.contains("502"),
        "{warning}"
    );
    assert!(warning.starts_with("1 of 2 instances failed"), "{warning}");
    assert!(!warning.contains(&good.url()), "{warning}");
    trigger.trigger();
    task.await.unwrap();
}

#[tokio::test]
async fn a_rate_limited_instance_is_left_alone_until_its_wait_passes() {
    let good = FakeLemmy::start().await;
    let limited = FakeLemmy::start().await;
    let t = now();
    good.add_post(post_view(
        "lemmy.world",
        1,
        &at(t - 100),
        "acme",
        None,
        None,
    ));
    limited.add_post(post_view("lemmy.ml", 2, &at(t - 100), "acme", None, None));
    // Lemmy 0.19: HTTP 400 with `rate_limit_error` and no Retry-After.
    limited.answer_next(400, json!({"error": "rate_limit_error"}), &[]);
    let mut src = source(&[&good, &limited]);
    let mut state = SourceState::default();
    let got = src.poll(&mut state).await.unwrap();
    assert_eq!(ids(&got), ["https://lemmy.world/post/1"]);
    let warning = src.take_warning().unwrap();
    assert!(
        warning.contains("rate limit") && warning.contains(&limited.url()),
        "{warning}"
    );
    // The next poll does not ask the limited instance, and still says why.
    let asked = limited.requests().len();
    src.poll(&mut state).await.unwrap();
    assert_eq!(
        limited.requests().len(),
        asked,
        "no request while it asks us to wait"
    );
    assert!(src.take_warning().unwrap().contains("rate limit"));

    // A lone instance answering 429 with Retry-After (newer Lemmy): the poll waits for it.
    let lone = FakeLemmy::start().await;
    lone.answer_next(
        429,
        json!({"error": "rate_limit_error"}),
        &[("retry-after", "45")],
    );
    let err = source(&[&lone])
        .poll(&mut SourceState::default())
        .await
        .unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(45)), "{err}");
}

#[tokio::test]
async fn a_hostile_retry_after_is_capped_at_a_day_and_never_panics() {
    const DAY: Duration = Duration::from_secs(24 * 3600);
    let good = FakeLemmy::start().await;
    let hostile = FakeLemmy::start().await;
    good.add_post(post_view(
        "lemmy.world",
        1,
        &at(now() - 100),
        "acme",
        None,
        None,
    ));
    // u64::MAX seconds: `Instant::now() + wait` would overflow and kill the source task.
    hostile.answer_next(
        429,
        json!({"error": "rate_limit_error"}),
        &[("retry-after", "18446744073709551615")],
    );
    let mut src = source(&[&good, &hostile]);
    let mut state = SourceState::default();
    let got = src.poll(&mut state).await.unwrap();
    assert_eq!(ids(&got), ["https://lemmy.world/post/1"]);
    let warning = src.take_warning().unwrap();
    assert!(
        warning.contains("rate limit") && warning.contains(&hostile.url()),
        "{warning}"
    );
    // Still paused (for a day, not forever), and still no panic.
    let asked = hostile.requests().len();
    src.poll(&mut state).await.unwrap();
    assert_eq!(hostile.requests().len(), asked);
    let warning = src.take_warning().unwrap();
    assert!(warning.contains("rate limit"), "{warning}");

    // Alone: the poll fails with the capped wait, for the delta-seconds and the date forms.
    for value in ["18446744073709551615", "Fri, 31 Dec 9999 23:59:59 GMT"] {
        let lone = FakeLemmy::start().await;
        lone.answer_next(
            429,
            json!({"error": "rate_limit_error"}),
            &[("retry-after", value)],
        );
        let mut src = source(&[&lone]);
        let err = src.poll(&mut SourceState::default()).await.unwrap_err();
        let wait = err.retry_after().expect("a wait");
        assert!(
            wait <= DAY && wait > DAY - Duration::from_secs(60),
            "{value}: {wait:?}"
        );
        let err = src.poll(&mut SourceState::default()).await.unwrap_err();
        assert!(err.retry_after().unwrap() <= DAY, "{err}");
        assert_eq!(lone.requests().len(), 1, "{value}: paused");
    }
}

#[tokio::test]
async fn errors_name_the_instance_and_the_fix_and_leave_the_state_alone() {
    let fake = FakeLemmy::start().await;
    fake.add_post(post_view(
        "lemmy.world",
        1,
        &at(now() - 100),
        "acme",
        None,
        None,
    ));
    let mut src = source(&[&fake]);
    let mut state = SourceState::default();

    fake.answer_next(400, json!({"error": "not_logged_in"}), &[]);
    let msg = src.poll(&mut state).await.unwrap_err().to_string();
    assert!(
        msg.contains(&fake.url())
            && msg.contains("logged-in")
            && msg.contains("remove it from instances"),
        "{msg}"
    );
    fake.answer_next(404, json!({"error": "not_found"}), &[]);
    let msg = src.poll(&mut state).await.unwrap_err().to_string();
    assert!(msg.contains("is it a Lemmy instance"), "{msg}");
    fake.fail_next(Fault::Malformed);
    let err = src.poll(&mut state).await.unwrap_err();
    assert!(matches!(err, SourceError::Parse(_)), "{err}");
    assert!(err.to_string().contains("Lemmy search API"), "{err}");
    fake.fail_next(Fault::Truncated);
    assert!(src.poll(&mut state).await.is_err());
    fake.fail_next(Fault::Hang);
    let err = src.poll(&mut state).await.unwrap_err();
    assert!(matches!(err, SourceError::Timeout(_)), "{err}");
    assert_eq!(
        state,
        SourceState::default(),
        "no failed poll touched the state"
    );
    assert_eq!(
        src.poll(&mut state).await.unwrap().len(),
        1,
        "recovers by itself"
    );
}

fn problems(text: &str) -> String {
    match mentiondesk::settings::parse(text, Path::new("t.toml"), &|_| None) {
        Ok(c) => panic!("expected problems, got {:?}", c.sources),
        Err(e) => e.to_string(),
    }
}

#[test]
fn config_problems_name_the_key_and_the_fix() {
    let rule = "\n[[rules]]\nname = \"a\"\nquery = \"acme\"\nalert = [\"slack:#x\"]\n";
    let err = problems(&format!(
        "[[sources]]\nname = \"l\"\nkind = \"lemmy\"\nquery = \"acme\"\n{rule}"
    ));
    assert!(
        err.contains("sources[0].instances") && err.contains("https://lemmy.world"),
        "{err}"
    );
    let err = problems(&format!(
        "[[sources]]\nname = \"l\"\nkind = \"lemmy\"\nquery = \"acme\"\ninstances = [\"lemmy.world\"]\n{rule}"
    ));
    assert!(
        err.contains("sources[0].instances") && err.contains("not an http(s) URL"),
        "{err}"
    );
    let err = problems(&format!(
        "[[sources]]\nname = \"l\"\nkind = \"lemmy\"\ninstances = [\"https://lemmy.world\"]\n{rule}"
    ));
    assert!(err.contains("sources[0].query"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_once_reports_matching_posts_and_comments() {
    let fake = FakeLemmy::start().await;
    let t = now();
    fake.add_post(post_view(
        "lemmy.world",
        1,
        &at(t - 60),
        "Acme is down",
        None,
        None,
    ));
    fake.add_post(post_view(
        "lemmy.world",
        2,
        &at(t - 50),
        "Acme is hiring",
        None,
        None,
    ));
    fake.add_comment(comment_view(
        "lemmy.ml",
        3,
        1,
        &at(t - 40),
        "acme down here too",
    ));
    let config =
        mentiondesk::settings::parse(&config_text(&[&fake]), Path::new("t.toml"), &|_| None)
            .unwrap();
    let results = mentiondesk::app::scan_once(&config).await.unwrap();
    let (_, hits) = &results[0];
    let mut hits: Vec<String> = hits
        .as_ref()
        .unwrap()
        .iter()
        .map(|h| h.mention.item_id.clone())
        .collect();
    hits.sort();
    assert_eq!(
        hits,
        ["https://lemmy.ml/comment/3", "https://lemmy.world/post/1"]
    );
}

/// Through the whole daemon: a post seen on two instances (and on every poll) is one alert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_alerts_once_for_a_post_federated_to_two_instances() {
    let slack = FakeSlack::start().await;
    let world = FakeLemmy::start().await;
    let ml = FakeLemmy::start().await;
    let post = post_view(
        "lemmy.world",
        77,
        &at(now() - 60),
        "Acme charged me twice",
        Some("and support is silent"),
        None,
    );
    world.add_post(post.clone());
    ml.add_post(post);
    let config = ConfigBuilder::new()
        .slack(&slack)
        .source("lemmy", "lemmy")
        .key("instances", &[world.url().as_str(), ml.url().as_str()][..])
        .key("query", "acme")
        .key("every", "1s")
        .key("allow_private", true)
        .rule("acme", "acme", &["slack:#pr-alerts"])
        .toml();
    let daemon = Daemon::start(&config).await;
    let posts = slack.wait_for_posts(1, 15).await;
    let body = posts[0].body.to_string();
    assert!(body.contains("Acme charged me twice"), "{body}");
    assert!(body.contains("https://lemmy.world/post/77"), "{body}");
    // Later polls (after the seen ids, via another instance) add nothing.
    common::poll_until(10, "a few more polls", || {
        (world.requests().len() >= 3).then_some(())
    })
    .await;
    assert_eq!(slack.posts().len(), 1, "one alert per federated post");
    daemon.stop().await;
}
