//! The `stackexchange` source against a fake Stack Exchange API 2.3 on 127.0.0.1: excerpts in
//! their documented shapes, the one-hour first look, watermark + overlap across restarts,
//! paging bounded per poll, the API's `backoff` and daily quota, error wrappers named with
//! the fix (never the key), config checks, and `scan --once` / the daemon end to end.

use crate::common;

use common::fake_stackexchange::{answer, question, FakeStackExchange};
use common::faults::Fault;
use common::{ConfigBuilder, Daemon, FakeSlack};
use mentiondesk::sources::poll::{Health, Poller};
use mentiondesk::sources::{self, SourceError, SourceState};
use serde_json::json;
use std::path::Path;
use std::time::Duration;

const KEY: &str = "U4DMV*8nvpm3EOpvf69Rxw((";

fn config_text(fake: &FakeStackExchange, extra: &str) -> String {
    format!(
        r#"
[[sources]]
name = "se"
kind = "stackexchange"
query = '(acme OR "acme corp") AND NOT hiring'
url = "{}"
timeout = "2s"
allow_private = true
{extra}

[[rules]]
name = "acme"
query = "acme"
alert = ["slack:#pr"]
"#,
        fake.url()
    )
}

fn source(fake: &FakeStackExchange, extra: &str) -> Box<dyn sources::Source> {
    let env = |k: &str| (k == "STACKEXCHANGE_KEY").then(|| KEY.to_string());
    let config =
        mentiondesk::settings::parse(&config_text(fake, extra), Path::new("t.toml"), &env).unwrap();
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

/// Markup or entities left in a text a person reads.
fn has_markup(s: &str) -> bool {
    s.contains('<')
        || s.contains('>')
        || s.contains("&#")
        || s.contains("&quot;")
        || s.contains("&hellip;")
}

#[tokio::test]
async fn real_excerpts_from_two_sites_become_clean_mentions() {
    let fake = FakeStackExchange::start().await;
    let t = now();
    // Shapes from api.stackexchange.com/docs/excerpt-search (types/search-excerpt): titles
    // and display names HTML-encoded (`&#39;`, `&amp;`), bodies HTML, excerpts with
    // `<span class="highlight">`; an answer carries its question's title.
    fake.add(
        "stackoverflow",
        question(
            7001,
            t - 600,
            "Why doesn&#39;t the Acme SDK &amp; proxy work?",
            "<p>The <code>acme</code> client says &quot;401&quot;.</p>\n<pre><code>acme.connect()</code></pre>",
        ),
    );
    let mut a = answer(
        7001,
        7005,
        t - 300,
        "Why doesn&#39;t the Acme SDK &amp; proxy work?",
        "<p>Upgrade acme to 2.1 &mdash; fixed there.</p>",
    );
    a["owner"] = json!({"account_id": 1, "reputation": 1234, "user_id": 99, "user_type": "registered",
        "display_name": "J&#246;rg M&#252;ller", "link": "https://stackoverflow.com/users/99/j%c3%b6rg-m%c3%bcller"});
    fake.add("stackoverflow", a);
    // Only an excerpt (a filter without `body`).
    let mut q = question(8001, t - 200, "Acme router drops Wi-Fi", "");
    q.as_object_mut().unwrap().remove("body");
    q["excerpt"] =
        json!("My <span class=\"highlight\">Acme</span> router drops Wi-Fi every hour &hellip;");
    fake.add("superuser", q);
    // Older than the first poll's hour.
    fake.add(
        "stackoverflow",
        question(6000, t - 7200, "Acme 2019 question", "<p>acme</p>"),
    );

    let mut src = source(&fake, r#"sites = ["stackoverflow", "superuser"]"#);
    let got = src.poll(&mut SourceState::default()).await.unwrap();
    assert_eq!(
        ids(&got),
        [
            "stackoverflow:a7005",
            "stackoverflow:q7001",
            "superuser:q8001"
        ],
        "{got:#?}"
    );
    let by = |id: &str| got.iter().find(|m| m.item_id == id).unwrap();
    let q = by("stackoverflow:q7001");
    assert_eq!(
        q.title.as_deref(),
        Some("Why doesn't the Acme SDK & proxy work?")
    );
    assert!(!has_markup(&q.text), "{}", q.text);
    assert!(
        q.text.starts_with("The acme client says \"401\"."),
        "{}",
        q.text
    );
    assert_eq!(q.url.as_deref(), Some("https://stackoverflow.com/q/7001"));
    assert_eq!(q.source_kind, "stackexchange");
    assert_eq!(q.published.unwrap().timestamp(), t - 600);
    let a = by("stackoverflow:a7005");
    assert_eq!(a.title, None, "an answer's title is its question's");
    assert_eq!(a.text, "Upgrade acme to 2.1 \u{2014} fixed there.");
    assert_eq!(a.author.as_deref(), Some("Jörg Müller"));
    assert_eq!(a.url.as_deref(), Some("https://stackoverflow.com/a/7005"));
    let s = by("superuser:q8001");
    assert!(!has_markup(&s.text), "{}", s.text);
    assert!(
        s.text.starts_with("My Acme router drops Wi-Fi every hour"),
        "{}",
        s.text
    );
    assert_eq!(s.url.as_deref(), Some("https://superuser.com/q/8001"));

    let reqs = fake.requests();
    let first = &reqs[0].query;
    assert_eq!(first["q"], "acme");
    assert_eq!(first["sort"], "creation");
    assert_eq!(first["pagesize"], "100");
    let from: i64 = first["fromdate"].parse().unwrap();
    assert!(
        (t - 3605..=t - 3595).contains(&from),
        "one hour back: {from} vs {t}"
    );
    assert!(!first.contains_key("key"), "no key configured");
    // The real API always answers gzip; the client asked for it.
    assert!(reqs[0].headers["accept-encoding"].contains("gzip"));
}

#[tokio::test]
async fn later_polls_read_only_new_items_and_a_restart_repeats_and_skips_nothing() {
    let fake = FakeStackExchange::start().await;
    let t = now();
    fake.add(
        "stackoverflow",
        question(1, t - 100, "acme one", "<p>x</p>"),
    );
    let mut src = source(&fake, "");
    let mut state = SourceState::default();
    assert_eq!(
        ids(&src.poll(&mut state).await.unwrap()),
        ["stackoverflow:q1"]
    );
    assert!(
        src.poll(&mut state).await.unwrap().is_empty(),
        "the overlap re-reads, nothing repeats"
    );
    let from: i64 = fake.requests().last().unwrap().query["fromdate"]
        .parse()
        .unwrap();
    assert!(
        from <= t - 100 - 500,
        "reads from before the watermark: {from}"
    );

    // Down for a while: a new question, and one indexed late with an older creation_date.
    fake.add("stackoverflow", question(2, t - 10, "acme two", "<p>x</p>"));
    fake.add(
        "stackoverflow",
        answer(1, 3, t - 150, "acme one", "<p>acme late</p>"),
    );
    let mut restored: SourceState =
        serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
    let got = source(&fake, "").poll(&mut restored).await.unwrap();
    assert_eq!(ids(&got), ["stackoverflow:a3", "stackoverflow:q2"]);
    assert!(source(&fake, "")
        .poll(&mut restored)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn pages_are_read_while_has_more_and_a_poll_is_bounded() {
    let fake = FakeStackExchange::start().await;
    let t = now();
    for i in 0..1500u64 {
        fake.add(
            "stackoverflow",
            question(10_000 + i, t - 3000 + (i as i64) * 2, "acme", "<p>x</p>"),
        );
    }
    let mut src = source(&fake, "");
    let mut state = SourceState::default();
    let first = src.poll(&mut state).await.unwrap();
    assert_eq!(first.len(), 1000, "ten pages of 100 in one poll");
    assert_eq!(fake.requests().len(), 10);
    let second = src.poll(&mut state).await.unwrap();
    assert_eq!(
        second.len(),
        500,
        "the next poll continues where the first stopped"
    );
    let mut all = ids(&first);
    all.extend(ids(&second));
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 1500, "every item exactly once");
    assert!(src.poll(&mut state).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_backoff_field_pauses_the_source_and_the_quota_shows() {
    let fake = FakeStackExchange::start().await;
    let t = now();
    for i in 0..150u64 {
        fake.add(
            "stackoverflow",
            question(i + 1, t - 1000 + i as i64, "acme", "<p>x</p>"),
        );
    }
    {
        let mut s = fake.state.lock().unwrap();
        s.backoff_next = Some(3);
        s.quota_remaining = 250;
    }
    let mut src = source(&fake, "");
    let mut state = SourceState::default();
    let got = src.poll(&mut state).await.unwrap();
    assert_eq!(
        got.len(),
        100,
        "the page with the backoff is used, no second page"
    );
    assert_eq!(fake.requests().len(), 1);
    let quota = src.quota().expect("the quota from the wrapper");
    assert_eq!(
        (quota.unit, quota.remaining, quota.limit),
        ("requests", 249, Some(300))
    );

    let err = src.poll(&mut state).await.unwrap_err();
    let wait = err.retry_after().expect("a wait");
    assert!(
        wait <= Duration::from_secs(3) && wait > Duration::ZERO,
        "{wait:?}"
    );
    assert_eq!(
        fake.requests().len(),
        1,
        "no request before the backoff passes"
    );

    tokio::time::sleep(wait + Duration::from_millis(50)).await;
    let got = src.poll(&mut state).await.unwrap();
    assert_eq!(got.len(), 50, "the rest, after the backoff");
}

#[tokio::test]
async fn the_source_stops_before_the_quota_runs_out_and_says_how_to_get_more() {
    let fake = FakeStackExchange::start().await;
    let t = now();
    fake.add("stackoverflow", question(1, t - 100, "acme", "<p>x</p>"));
    fake.state.lock().unwrap().quota_remaining = 1;
    let mut src = source(&fake, "");
    let mut state = SourceState::default();
    assert_eq!(src.poll(&mut state).await.unwrap().len(), 1);
    assert_eq!(src.quota().unwrap().remaining, 0);
    let err = src.poll(&mut state).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("quota") && msg.contains("300"), "{msg}");
    assert!(
        msg.contains("key = \"${STACKEXCHANGE_KEY}\""),
        "names the fix: {msg}"
    );
    assert_eq!(
        fake.requests().len(),
        1,
        "no request while the quota is gone"
    );
}

#[tokio::test]
async fn a_throttle_violation_pauses_until_the_quota_is_back() {
    let fake = FakeStackExchange::start().await;
    fake.state.lock().unwrap().quota_remaining = 0;
    let mut src = source(&fake, "");
    let mut state = SourceState::default();
    let err = src.poll(&mut state).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("throttle_violation"), "{msg}");
    assert!(
        msg.contains("next try in 1358 min"),
        "the API's wait: {msg}"
    );
    let quota = src.quota().expect("shown as used up");
    assert_eq!((quota.remaining, quota.limit), (0, Some(300)));
    let resets_in = quota.resets_at.unwrap() - chrono::Utc::now();
    assert!(
        (81_400..=81_442).contains(&resets_in.num_seconds()),
        "{resets_in}"
    );
    let err = src.poll(&mut state).await.unwrap_err();
    assert!(err.to_string().contains("quota"), "{err}");
    assert_eq!(fake.requests().len(), 1, "paused: no second request");
    assert!(state.extra.is_empty(), "nothing persisted: {state:?}");
}

#[tokio::test]
async fn hostile_waits_from_the_api_are_capped_at_a_day_and_never_panic() {
    const DAY: Duration = Duration::from_secs(24 * 3600);
    let t = now();
    // `backoff: u64::MAX`: `Instant::now() + wait` would overflow and kill the source task.
    let fake = FakeStackExchange::start().await;
    fake.add("stackoverflow", question(1, t - 100, "acme", "<p>x</p>"));
    fake.state.lock().unwrap().backoff_next = Some(u64::MAX);
    let mut src = source(&fake, "");
    let mut state = SourceState::default();
    assert_eq!(
        ids(&src.poll(&mut state).await.unwrap()),
        ["stackoverflow:q1"]
    );
    let err = src.poll(&mut state).await.unwrap_err();
    let wait = err.retry_after().expect("a wait");
    assert!(
        wait <= DAY && wait > DAY - Duration::from_secs(60),
        "{wait:?}"
    );
    assert_eq!(fake.requests().len(), 1, "paused for the capped wait");

    // A throttle message with a number past u64 / i64 / chrono's range: capped to a day.
    for secs in [
        "18446744073709551615",
        "9223372036854775807",
        "9223372036854775",
    ] {
        let fake = FakeStackExchange::start().await;
        fake.error_next(
            502,
            "throttle_violation",
            &format!("too many requests from this IP, more requests available in {secs} seconds"),
        );
        let mut src = source(&fake, "");
        let mut state = SourceState::default();
        let err = src.poll(&mut state).await.unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("next try in 1440 min"), "{secs}: {msg}");
        let quota = src.quota().expect("shown as used up");
        let resets_in = quota.resets_at.expect("a reset time") - chrono::Utc::now();
        assert!(
            (86_340..=86_400).contains(&resets_in.num_seconds()),
            "{secs}: {resets_in}"
        );
        let err = src.poll(&mut state).await.unwrap_err();
        assert!(err.to_string().contains("next try in 1440 min"), "{err}");
        assert_eq!(fake.requests().len(), 1, "{secs}: paused");
    }
}

#[tokio::test]
async fn error_answers_name_the_fix_and_leave_the_state_alone() {
    let fake = FakeStackExchange::start().await;
    let t = now();
    fake.add("stackoverflow", question(1, t - 100, "acme", "<p>x</p>"));
    let mut src = source(&fake, "");
    let mut state = SourceState::default();

    // An unknown site: HTTP 400 with the error wrapper (docs/error-handling).
    let err = source(&fake, r#"sites = ["stackoverfow"]"#)
        .poll(&mut state)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("bad_parameter 400") && msg.contains("stackoverfow"),
        "{msg}"
    );
    assert!(msg.contains("check sites"), "{msg}");

    fake.error_next(
        503,
        "temporarily_unavailable",
        "The API is temporarily unavailable",
    );
    let err = src.poll(&mut state).await.unwrap_err();
    assert!(matches!(err, SourceError::Network(_)), "{err}");
    fake.error_next(502, "throttle_violation", "Violation of backoff parameter");
    let err = src.poll(&mut state).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(60)), "{err}");
    // A fresh source (the pause above is the old one's) for the transport faults.
    let mut src = source(&fake, "");
    fake.fail_next(Fault::http(503));
    assert!(src
        .poll(&mut state)
        .await
        .unwrap_err()
        .to_string()
        .contains("503"));
    fake.fail_next(Fault::rate_limited(30.0));
    let err = src.poll(&mut state).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(30)), "{err}");
    fake.fail_next(Fault::Malformed);
    let err = src.poll(&mut state).await.unwrap_err();
    assert!(matches!(err, SourceError::Parse(_)), "{err}");
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

#[tokio::test]
async fn a_refused_key_is_named_without_printing_it() {
    let fake = FakeStackExchange::start().await;
    fake.state.lock().unwrap().valid_key = Some("another-key".into());
    let mut src = source(&fake, "key = \"${STACKEXCHANGE_KEY}\"");
    let err = src.poll(&mut SourceState::default()).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("refused the key") && msg.contains("stackapps.com"),
        "{msg}"
    );
    assert!(!msg.contains(KEY), "{msg}");
    assert!(!format!("{err:?}").contains(KEY));
    assert_eq!(fake.requests()[0].query["key"], KEY, "the key is sent");

    // The key is a Secret in the parsed config too.
    let env = |k: &str| (k == "STACKEXCHANGE_KEY").then(|| KEY.to_string());
    let config = mentiondesk::settings::parse(
        &config_text(&fake, "key = \"${STACKEXCHANGE_KEY}\""),
        Path::new("t.toml"),
        &env,
    )
    .unwrap();
    assert!(!format!("{config:?}").contains(KEY));
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
        "[[sources]]\nname = \"se\"\nkind = \"stackexchange\"\n{rule}"
    ));
    assert!(
        err.contains("sources[0].query") && err.contains("query = \"acme\""),
        "{err}"
    );
    let err = problems(&format!(
        "[[sources]]\nname = \"se\"\nkind = \"stackexchange\"\nquery = \"acme\"\nsites = [\"Stack Overflow\"]\n{rule}"
    ));
    assert!(
        err.contains("sources[0].sites") && err.contains("api.stackexchange.com/docs/sites"),
        "{err}"
    );
    let err = problems(&format!(
        "[[sources]]\nname = \"se\"\nkind = \"stackexchange\"\nquery = \"acme\"\nsites = []\n{rule}"
    ));
    assert!(
        err.contains("sources[0].sites") && err.contains("is empty"),
        "{err}"
    );
    let err = problems(&format!(
        "[[sources]]\nname = \"se\"\nkind = \"stackexchange\"\nquery = \"acme\"\nkey = \"${{STACKEXCHANGE_KEY:-}}\"\n{rule}"
    ));
    assert!(
        err.contains("sources[0].key") && err.contains("STACKEXCHANGE_KEY"),
        "{err}"
    );
    let err = problems(&format!(
        "[[sources]]\nname = \"se\"\nkind = \"stackexchange\"\nquery = \"acme\"\ninstances = [\"x\"]\n{rule}"
    ));
    assert!(
        err.contains("instances") && err.contains("stackexchange"),
        "{err}"
    );

    // Allowed but over the keyless quota: a warning that says why and what to do.
    let config = mentiondesk::settings::parse(
        &format!("[[sources]]\nname = \"se\"\nkind = \"stackexchange\"\nquery = \"acme OR widgets\"\nsites = [\"stackoverflow\", \"superuser\"]\nevery = \"5m\"\n{rule}"),
        Path::new("t.toml"),
        &|_| None,
    )
    .unwrap();
    let w: Vec<String> = config
        .warnings
        .iter()
        .map(|p| format!("{}: {}", p.key, p.message))
        .collect();
    assert!(
        w.iter().any(|m| m.contains("sources[0].every")
            && m.contains("1152")
            && m.contains("300")
            && m.contains("key")),
        "{w:?}"
    );
    // More searches than one poll's requests: they take turns, and check says so.
    let config = mentiondesk::settings::parse(
        &format!("[[sources]]\nname = \"se\"\nkind = \"stackexchange\"\nquery = \"acme OR widgets OR gizmo\"\nsites = [\"stackoverflow\", \"superuser\", \"askubuntu\", \"serverfault\"]\nkey = \"k\"\nevery = \"1h\"\n{rule}"),
        Path::new("t.toml"),
        &|_| None,
    )
    .unwrap();
    let w: Vec<String> = config
        .warnings
        .iter()
        .map(|p| format!("{}: {}", p.key, p.message))
        .collect();
    assert!(
        w.iter().any(|m| m.contains("sources[0].sites")
            && m.contains("12 searches")
            && m.contains("10 requests one poll makes")
            && m.contains("every 2 polls")),
        "{w:?}"
    );
    // The default: one site, every 10 minutes, fits.
    let config = mentiondesk::settings::parse(
        &format!("[[sources]]\nname = \"se\"\nkind = \"stackexchange\"\nquery = \"acme\"\n{rule}"),
        Path::new("t.toml"),
        &|_| None,
    )
    .unwrap();
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_once_reports_matching_questions() {
    let fake = FakeStackExchange::start().await;
    let t = now();
    fake.add(
        "stackoverflow",
        question(1, t - 60, "Acme SDK crashes on start", "<p>segfault</p>"),
    );
    fake.add(
        "stackoverflow",
        question(2, t - 50, "Acme is hiring?", "<p>jobs</p>"),
    );
    let text =
        config_text(&fake, "").replace("query = \"acme\"", "query = \"acme AND NOT hiring\"");
    let config = mentiondesk::settings::parse(&text, Path::new("t.toml"), &|_| None).unwrap();
    let results = mentiondesk::app::scan_once(&config).await.unwrap();
    let (_, hits) = &results[0];
    let hits: Vec<String> = hits
        .as_ref()
        .unwrap()
        .iter()
        .map(|h| h.mention.item_id.clone())
        .collect();
    assert_eq!(hits, ["stackoverflow:q1"]);
}

/// Through the whole daemon: a question becomes one Slack alert, and `/healthz` shows the
/// API's quota for the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_alerts_on_a_question_and_shows_the_quota_in_healthz() {
    let slack = FakeSlack::start().await;
    let fake = FakeStackExchange::start().await;
    fake.add(
        "stackoverflow",
        question(
            42,
            now() - 60,
            "Acme billing API returns 500",
            "<p>Since today every call fails.</p>",
        ),
    );
    let config = ConfigBuilder::new()
        .slack(&slack)
        .source("se", "stackexchange")
        .key("query", "acme")
        .key("url", fake.url())
        .key("every", "1s")
        .key("allow_private", true)
        .rule("acme", "acme", &["slack:#pr-alerts"])
        .toml();
    let daemon = Daemon::start(&config).await;
    let posts = slack.wait_for_posts(1, 15).await;
    let body = posts[0].body.to_string();
    assert!(body.contains("Acme billing API returns 500"), "{body}");
    assert!(body.contains("https://stackoverflow.com/q/42"), "{body}");
    let health = daemon.healthz().await;
    let se = &health["sources"][0];
    assert_eq!(se["quota"]["unit"], "requests", "{health}");
    assert_eq!(se["quota"]["limit"], 300, "{health}");
    assert!(se["quota"]["remaining"].as_u64().unwrap() < 300, "{health}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        slack.posts().len(),
        1,
        "one alert, however often it is polled"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn each_site_and_search_word_is_one_search_with_its_own_watermark() {
    let fake = FakeStackExchange::start().await;
    let t = now();
    fake.add(
        "stackoverflow",
        question(1, t - 100, "acme sdk", "<p>x</p>"),
    );
    fake.add(
        "superuser",
        question(2, t - 90, "widgets on linux", "<p>x</p>"),
    );
    let mut src = source(&fake, "sites = [\"stackoverflow\", \"superuser\"]");
    // The rule query of `source` has one positive word; this one has two.
    let env = |_: &str| None;
    let text = config_text(&fake, "sites = [\"stackoverflow\", \"superuser\"]").replace(
        r#"'(acme OR "acme corp") AND NOT hiring'"#,
        "'acme OR widgets'",
    );
    let config = mentiondesk::settings::parse(&text, Path::new("t.toml"), &env).unwrap();
    let mut two_words = sources::build(&config.sources[0]).unwrap();
    let mut state = SourceState::default();
    let got = two_words.poll(&mut state).await.unwrap();
    assert_eq!(ids(&got), ["stackoverflow:q1", "superuser:q2"]);
    let asked: Vec<(String, String)> = fake
        .requests()
        .iter()
        .map(|r| (r.query["site"].clone(), r.query["q"].clone()))
        .collect();
    assert_eq!(
        asked,
        [
            ("stackoverflow".into(), "acme".into()),
            ("stackoverflow".into(), "widgets".into()),
            ("superuser".into(), "acme".into()),
            ("superuser".into(), "widgets".into()),
        ]
    );
    assert_eq!(
        state
            .extra
            .keys()
            .filter(|k| k.starts_with("watermark"))
            .count(),
        4,
        "{state:?}"
    );
    assert!(two_words.poll(&mut state).await.unwrap().is_empty());
    assert_eq!(
        ids(&src.poll(&mut SourceState::default()).await.unwrap()),
        ["stackoverflow:q1"],
        "one word: widgets are not searched"
    );
}

/// Four sites × three words: twelve searches, more than one poll's ten requests.
const MANY_SITES: [&str; 4] = ["stackoverflow", "superuser", "askubuntu", "serverfault"];
const MANY_WORDS: [&str; 3] = ["acme", "widgets", "gizmo"];

fn many_searches(fake: &FakeStackExchange) -> Box<dyn sources::Source> {
    let text = config_text(
        fake,
        r#"sites = ["stackoverflow", "superuser", "askubuntu", "serverfault"]"#,
    )
    .replace(
        r#"'(acme OR "acme corp") AND NOT hiring'"#,
        "'acme OR widgets OR gizmo'",
    );
    let config = mentiondesk::settings::parse(&text, Path::new("t.toml"), &|_| None).unwrap();
    sources::build(&config.sources[0]).unwrap()
}

/// The (site, word) of every request from `from` on.
fn asked_since(fake: &FakeStackExchange, from: usize) -> Vec<(String, String)> {
    fake.requests()[from..]
        .iter()
        .map(|r| (r.query["site"].clone(), r.query["q"].clone()))
        .collect()
}

#[tokio::test]
async fn more_searches_than_one_poll_allows_take_turns_and_none_is_skipped() {
    let fake = FakeStackExchange::start().await;
    let t = now();
    let mut want = Vec::new();
    for (s, site) in MANY_SITES.iter().enumerate() {
        fake.state
            .lock()
            .unwrap()
            .items
            .insert(site.to_string(), Vec::new());
        for (w, word) in MANY_WORDS.iter().enumerate() {
            let id = 100 + (s * 10 + w) as u64;
            fake.add(site, question(id, t - 500, word, "<p>x</p>"));
            want.push(format!("{site}:q{id}"));
        }
    }
    want.sort();
    let every_search: Vec<(String, String)> = MANY_SITES
        .iter()
        .flat_map(|s| MANY_WORDS.iter().map(|w| (s.to_string(), w.to_string())))
        .collect();

    let mut state = SourceState::default();
    let mut got = many_searches(&fake).poll(&mut state).await.unwrap();
    assert_eq!(fake.requests().len(), 10, "one poll's budget");
    assert_eq!(asked_since(&fake, 0), every_search[..10]);

    // A restart in between: the turn is kept in the state, not in the source.
    let mut src = many_searches(&fake);
    got.extend(src.poll(&mut state).await.unwrap());
    let second = asked_since(&fake, 10);
    assert_eq!(second.len(), 10);
    assert_eq!(
        second[..2],
        every_search[10..],
        "the searches left out go first"
    );
    assert_eq!(ids(&got), want, "every search read, each item once");
    let warning = src
        .take_warning()
        .expect("a poll that could not read everything says so");
    assert!(
        warning.contains("2 of 12 searches were not read") && warning.contains("at most 10"),
        "{warning}"
    );

    // New items everywhere, and a backlog of 350 on one search: over the next polls every
    // search gets its turn while the backlog is read, and nothing is skipped or repeated.
    let mut want = Vec::new();
    for (s, site) in MANY_SITES.iter().enumerate() {
        for (w, word) in MANY_WORDS.iter().enumerate() {
            let id = 1000 + (s * 10 + w) as u64;
            fake.add(site, question(id, t - 300, word, "<p>x</p>"));
            want.push(format!("{site}:q{id}"));
        }
    }
    for i in 0..350u64 {
        let id = 5000 + i;
        fake.add(
            "askubuntu",
            question(id, t - 400 + i as i64, "gizmo", "<p>x</p>"),
        );
        want.push(format!("askubuntu:q{id}"));
    }
    want.sort();
    let from = fake.requests().len();
    let mut got = Vec::new();
    for _ in 0..8 {
        got.extend(src.poll(&mut state).await.unwrap());
    }
    let asked = asked_since(&fake, from);
    for search in &every_search {
        assert!(asked.contains(search), "{search:?} never asked: {asked:?}");
    }
    let mut unique = ids(&got);
    unique.dedup();
    assert_eq!(unique.len(), got.len(), "nothing repeated");
    assert_eq!(ids(&got), want, "nothing skipped");

    // In the daemon's poller the warning is what /healthz shows: healthy but degraded.
    let health = Health::new();
    let (tx, mut rx) = tokio::sync::mpsc::channel(8);
    let (trigger, stop) = mentiondesk::shutdown::channel();
    let poller = Poller::new(
        many_searches(&fake),
        Duration::from_secs(60),
        Duration::from_secs(5),
        SourceState::default(),
        tx,
        health.clone(),
    );
    let task = tokio::spawn(poller.run(stop));
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    let status = health.get("se").unwrap();
    assert!(status.healthy && status.degraded, "{status:?}");
    let warning = status.last_error.clone().unwrap();
    assert!(
        warning.contains("of 12 searches were not read"),
        "{warning}"
    );
    trigger.trigger();
    task.await.unwrap();
}

#[tokio::test]
async fn a_failing_site_among_answering_ones_is_a_partial_success() {
    let fake = FakeStackExchange::start().await;
    let t = now();
    fake.add("stackoverflow", question(1, t - 100, "acme", "<p>x</p>"));
    let mut src = source(&fake, r#"sites = ["stackoverflow", "stackoverfow"]"#);
    let mut state = SourceState::default();
    let got = src.poll(&mut state).await.unwrap();
    assert_eq!(
        ids(&got),
        ["stackoverflow:q1"],
        "the answering site is delivered"
    );
    let warning = src.take_warning().expect("the failing site is reported");
    assert!(warning.starts_with("1 of 2 sites failed"), "{warning}");
    assert!(
        warning.contains("\"stackoverfow\"") && warning.contains("check sites"),
        "{warning}"
    );
    assert!(
        state.extra.keys().any(|k| k.contains("stackoverflow")),
        "{state:?}"
    );
    assert!(
        !state.extra.keys().any(|k| k.contains("stackoverfow")),
        "{state:?}"
    );
    // Both failing: the poll fails, naming the site.
    let mut src = source(&fake, r#"sites = ["stackoverfow"]"#);
    let err = src.poll(&mut SourceState::default()).await.unwrap_err();
    assert!(
        err.to_string().starts_with("site \"stackoverfow\": "),
        "{err}"
    );
}
