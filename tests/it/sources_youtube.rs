//! The `youtube` source against a fake YouTube Data API v3 on 127.0.0.1: channel comments and
//! comments on searched videos, the one-hour first look, watermarks across restarts, the daily
//! quota budget (counted per Pacific day, persisted even by polls that failed part-way, never
//! exceeded), Google's error shapes (quotaExceeded, commentsDisabled, forbidden, a listing's
//! 4xx/5xx, invalidPageToken, an invalid key), backlogs longer than a poll reads, capped
//! waits, the key kept out of errors and logs, config checks, and `scan --once`.

use crate::common;

use common::fake_youtube::{thread, video, FakeYoutube, CHANNEL, KEY};
use common::faults::Fault;
use mentiondesk::sources::{self, SourceError, SourceState};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn config(fake: &FakeYoutube, extra: &str) -> String {
    format!(
        r#"
[[sources]]
name = "yt"
kind = "youtube"
key = "${{YOUTUBE_API_KEY}}"
query = '(acme OR "acme corp") AND NOT hiring'
channels = ["{CHANNEL}"]
url = "{}"
timeout = "5s"
allow_private = true
{extra}

[[rules]]
name = "acme"
query = "acme AND NOT hiring"
alert = ["slack:#pr"]
"#,
        fake.url()
    )
}

fn env(k: &str) -> Option<String> {
    (k == "YOUTUBE_API_KEY").then(|| KEY.to_string())
}

fn build(text: &str) -> Box<dyn sources::Source> {
    let config = mentiondesk::settings::parse(text, Path::new("t.toml"), &env).unwrap();
    sources::build(&config.sources[0]).unwrap()
}

fn source(fake: &FakeYoutube) -> Box<dyn sources::Source> {
    build(&config(fake, ""))
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn ids(got: &[mentiondesk::model::Mention]) -> Vec<String> {
    let mut v: Vec<String> = got.iter().map(|m| m.item_id.clone()).collect();
    v.sort();
    v
}

/// The channel's own video, a video search finds (half an hour old) and one it found
/// three days ago, with comments on each.
fn seed(fake: &FakeYoutube, t: i64) {
    let mut s = fake.state.lock().unwrap();
    s.threads = vec![
        thread(
            "UgOld",
            CHANNEL,
            "ownVid00001",
            t - 7200,
            "Old news about acme",
        ),
        thread(
            "UgOwn1",
            CHANNEL,
            "ownVid00001",
            t - 900,
            "Love the new firmware!",
        ),
        thread(
            "UgOwn2",
            CHANNEL,
            "ownVid00001",
            t - 600,
            "Support hung up on me &amp; the app crashes<br>Fix it please",
        ),
        thread(
            "UgV1a",
            "UCreviewerreviewerrevie0",
            "newVid00001",
            t - 300,
            "my <b>Acme</b> died too",
        ),
        thread(
            "UgV1b",
            "UCreviewerreviewerrevie0",
            "newVid00001",
            t - 200,
            "great editing",
        ),
        thread(
            "UgV2a",
            "UCreviewerreviewerrevie0",
            "oldVid00001",
            t - 100,
            "acme refund took weeks",
        ),
    ];
    s.videos = vec![
        video(
            "newVid00001",
            t - 1800,
            "Acme X200 review &amp; teardown",
            "Is the Acme X200 worth it?",
        ),
        video(
            "oldVid00001",
            t - 3 * 86_400,
            "Acme vs the rest",
            "Comparison",
        ),
    ];
}

#[tokio::test]
async fn channel_comments_searched_videos_and_their_comments_become_mentions() {
    let fake = FakeYoutube::start().await;
    let t = now();
    seed(&fake, t);
    let mut src = source(&fake);
    let mut state = SourceState::default();
    let got = src.poll(&mut state).await.unwrap();
    assert_eq!(
        ids(&got),
        ["UgOwn1", "UgOwn2", "UgV1a", "UgV2a", "newVid00001"],
        "the 2-hour-old comment and the 3-day-old video are history; a comment on a found video must name the query"
    );
    let own = got.iter().find(|m| m.item_id == "UgOwn2").unwrap();
    assert_eq!(
        own.text,
        "Support hung up on me & the app crashes Fix it please"
    );
    assert_eq!(own.author.as_deref(), Some("@kim-reviews"));
    assert_eq!(own.title, None);
    assert_eq!(own.source_kind, "youtube");
    assert_eq!(
        own.url.as_deref(),
        Some("https://www.youtube.com/watch?v=ownVid00001&lc=UgOwn2")
    );
    let vid = got.iter().find(|m| m.item_id == "newVid00001").unwrap();
    assert_eq!(vid.title.as_deref(), Some("Acme X200 review & teardown"));
    assert_eq!(vid.text, "Is the Acme X200 worth it?");
    assert_eq!(
        vid.url.as_deref(),
        Some("https://www.youtube.com/watch?v=newVid00001")
    );
    assert_eq!(vid.author.as_deref(), Some("Gadget Reviews"));

    let search = &fake.requests("/youtube/v3/search")[0];
    assert_eq!(search.query["q"], "acme");
    assert_eq!(search.query["type"], "video");
    assert_eq!(search.query["order"], "date");
    assert!(search.query.contains_key("publishedAfter"));
    let threads = fake.requests("/youtube/v3/commentThreads");
    assert_eq!(threads[0].query["allThreadsRelatedToChannelId"], CHANNEL);
    assert_eq!(threads[0].query["order"], "time");
    assert_eq!(threads[0].query["maxResults"], "100");
    assert_eq!(threads.len(), 3, "the channel and the two found videos");

    // One search (100) and three listings (1 each), as the fake charged them.
    assert_eq!(fake.units(), 103);
    let quota = src.quota().expect("the daily budget");
    assert_eq!(
        (quota.unit, quota.remaining, quota.limit),
        ("units", 9897, Some(10000))
    );
    let resets_in = quota.resets_at.unwrap() - chrono::Utc::now();
    assert!(resets_in > chrono::Duration::zero() && resets_in <= chrono::Duration::hours(25));
}

#[tokio::test]
async fn later_polls_and_restarts_repeat_nothing_skip_nothing_and_remember_the_spending() {
    let fake = FakeYoutube::start().await;
    let t = now();
    seed(&fake, t);
    let mut state = SourceState::default();
    assert_eq!(source(&fake).poll(&mut state).await.unwrap().len(), 5);

    // A restart: nothing new, nothing again, and no second search within the hour.
    let mut restored: SourceState =
        serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
    let mut src = source(&fake);
    assert!(src.poll(&mut restored).await.unwrap().is_empty());
    assert_eq!(fake.requests("/youtube/v3/search").len(), 1);
    assert_eq!(
        src.quota().unwrap().remaining,
        10000 - 106,
        "the units spent before the restart still count"
    );

    {
        let mut s = fake.state.lock().unwrap();
        s.threads
            .push(thread("UgOwn3", CHANNEL, "ownVid00001", t - 5, "any news?"));
        s.threads.push(thread(
            "UgV2b",
            "UCreviewerreviewerrevie0",
            "oldVid00001",
            t - 4,
            "ACME forever",
        ));
        // A comment that reached the listing late, a little before the last poll's newest.
        s.threads.push(thread(
            "UgLate",
            CHANNEL,
            "ownVid00001",
            t - 700,
            "late but here",
        ));
    }
    let mut restored: SourceState =
        serde_json::from_str(&serde_json::to_string(&restored).unwrap()).unwrap();
    let got = source(&fake).poll(&mut restored).await.unwrap();
    assert_eq!(ids(&got), ["UgLate", "UgOwn3", "UgV2b"]);
}

#[tokio::test]
async fn the_daily_quota_is_never_exceeded_and_what_is_skipped_is_said() {
    let fake = FakeYoutube::start().await;
    let t = now();
    seed(&fake, t);
    let text = config(&fake, "daily_quota = 103");
    let mut src = build(&text);
    let mut state = SourceState::default();
    assert_eq!(src.poll(&mut state).await.unwrap().len(), 5);
    assert_eq!(fake.units(), 103);
    assert_eq!(src.quota().unwrap().remaining, 0);
    assert_eq!(src.take_warning(), None);

    fake.state.lock().unwrap().threads.push(thread(
        "UgOwn9",
        CHANNEL,
        "ownVid00001",
        t - 1,
        "acme?",
    ));
    let before = fake.state.lock().unwrap().requests.len();
    assert!(src.poll(&mut state).await.unwrap().is_empty());
    assert_eq!(
        fake.state.lock().unwrap().requests.len(),
        before,
        "nothing sent over budget"
    );
    let warning = src.take_warning().expect("a warning");
    assert!(
        warning.contains("daily quota of 103 units is spent"),
        "{warning}"
    );
    assert!(warning.contains("midnight Pacific"), "{warning}");

    // A restart remembers the spending: still nothing sent.
    let mut restored: SourceState =
        serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
    let mut again = build(&text);
    assert!(again.poll(&mut restored).await.unwrap().is_empty());
    assert_eq!(fake.state.lock().unwrap().requests.len(), before);
    assert_eq!(again.quota().unwrap().remaining, 0);
    assert_eq!(fake.units(), 103, "never more than daily_quota");
}

#[tokio::test]
async fn a_search_that_would_not_leave_the_channel_listings_paid_for_is_skipped_with_a_warning() {
    let fake = FakeYoutube::start().await;
    let t = now();
    seed(&fake, t);
    let mut src = build(&config(&fake, "daily_quota = 100"));
    let got = src.poll(&mut SourceState::default()).await.unwrap();
    assert_eq!(ids(&got), ["UgOwn1", "UgOwn2"], "the channel is still read");
    assert!(fake.requests("/youtube/v3/search").is_empty());
    let warning = src.take_warning().expect("a warning");
    assert!(warning.contains("skipped the video search"), "{warning}");
    assert_eq!(fake.units(), 1);
}

#[tokio::test]
async fn quota_exceeded_waits_until_midnight_pacific_time() {
    let fake = FakeYoutube::start().await;
    fake.state.lock().unwrap().quota_exceeded = true;
    let mut src = source(&fake);
    let mut state = SourceState::default();
    let err = src.poll(&mut state).await.unwrap_err();
    assert!(matches!(err, SourceError::RateLimited { .. }), "{err}");
    let wait = err.retry_after().unwrap();
    let expected = midnight_pacific_in();
    assert!(
        wait.abs_diff(expected) < Duration::from_secs(5),
        "{wait:?} vs {expected:?}"
    );
    let quota = src.quota().unwrap();
    assert_eq!(quota.remaining, 0);
    let before = fake.state.lock().unwrap().requests.len();
    assert!(src.poll(&mut state).await.is_err());
    assert_eq!(
        fake.state.lock().unwrap().requests.len(),
        before,
        "no request until the reset"
    );
}

/// Time until the next midnight in America/Los_Angeles, computed independently.
fn midnight_pacific_in() -> Duration {
    use chrono::TimeZone;
    let tz: chrono_tz::Tz = "America/Los_Angeles".parse().unwrap();
    let now = chrono::Utc::now();
    let local = now.with_timezone(&tz);
    let next = tz
        .from_local_datetime(
            &(local.date_naive() + chrono::Days::new(1))
                .and_hms_opt(0, 0, 0)
                .unwrap(),
        )
        .earliest()
        .unwrap();
    (next.with_timezone(&chrono::Utc) - now).to_std().unwrap()
}

#[tokio::test]
async fn comments_disabled_on_one_video_skips_that_video_not_the_source() {
    let fake = FakeYoutube::start().await;
    let t = now();
    seed(&fake, t);
    fake.state
        .lock()
        .unwrap()
        .comments_disabled
        .insert("newVid00001".into());
    fake.state
        .lock()
        .unwrap()
        .missing_videos
        .insert("oldVid00001".into());
    let mut src = source(&fake);
    let mut state = SourceState::default();
    let got = src.poll(&mut state).await.unwrap();
    assert_eq!(ids(&got), ["UgOwn1", "UgOwn2", "newVid00001"]);
    let warning = src.take_warning().expect("a warning");
    assert!(
        warning.contains("comments are turned off on video newVid00001"),
        "{warning}"
    );
    assert!(
        warning.contains("video oldVid00001 was not found"),
        "{warning}"
    );
    // Neither is asked for again.
    let listed = fake.requests("/youtube/v3/commentThreads").len();
    src.poll(&mut state).await.unwrap();
    assert_eq!(
        fake.requests("/youtube/v3/commentThreads").len(),
        listed + 1,
        "only the channel"
    );
}

/// Collects what the source logs (debug and up) on this thread.
#[derive(Clone, Default)]
struct LogBuf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn an_invalid_key_is_named_with_the_fix_and_the_key_is_never_printed() {
    let fake = FakeYoutube::start().await;
    let logs = LogBuf::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // Thread-local: only this test's polls (a current-thread runtime) are captured.
    let _guard = tracing::subscriber::set_default(subscriber);

    let wrong = "AIzaSyWRONG-key-zyxwvutsrqponmlkjihgf";
    let text = config(&fake, "");
    let parsed = mentiondesk::settings::parse(&text, Path::new("t.toml"), &|k: &str| {
        (k == "YOUTUBE_API_KEY").then(|| wrong.to_string())
    })
    .unwrap();
    let mut src = sources::build(&parsed.sources[0]).unwrap();
    let err = src.poll(&mut SourceState::default()).await.unwrap_err();
    let msg = format!("{err} / {err:?}");
    assert!(msg.contains("refused the API key"), "{msg}");
    assert!(
        msg.contains("console.cloud.google.com/apis/credentials"),
        "{msg}"
    );
    assert!(!msg.contains(wrong), "{msg}");
    // A network failure's error names the URL without its query.
    let mut src = build(&config(&fake, "").replace(&fake.url(), "http://127.0.0.1:9"));
    let err = src.poll(&mut SourceState::default()).await.unwrap_err();
    assert!(!format!("{err} {err:?}").contains(KEY), "{err:?}");

    // What was logged (the fetch log names each URL, redacted) holds neither key. Whether a
    // given debug line is captured depends on tracing's process-wide callsite cache, which
    // other tests' threads race on, so only the absence of the keys is asserted.
    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(!logged.contains(wrong) && !logged.contains(KEY), "{logged}");
}

#[tokio::test]
async fn failures_leave_the_state_alone_and_the_next_poll_recovers() {
    let fake = FakeYoutube::start().await;
    let t = now();
    seed(&fake, t);
    let text = config(&fake, "timeout = \"1s\"").replace("timeout = \"5s\"\n", "");
    let mut src = build(&text);
    let mut state = SourceState::default();
    src.poll(&mut state).await.unwrap();
    fake.state.lock().unwrap().threads.push(thread(
        "UgNew",
        CHANNEL,
        "ownVid00001",
        t - 1,
        "hello",
    ));
    let kept = state.clone();
    let unchanged = |s: &SourceState| {
        let mut a = s.extra.clone();
        let mut b = kept.extra.clone();
        for m in [&mut a, &mut b] {
            m.remove("quota_used");
        }
        a == b
    };

    // The API failing at the first request: the poll stops there, delivers nothing, says
    // why, and saves only the unit it spent.
    fake.fail_next(Fault::http(503));
    let mut copy = kept.clone();
    assert!(src.poll(&mut copy).await.unwrap().is_empty());
    let warning = src.take_warning().expect("a warning");
    assert!(warning.contains("503"), "{warning}");
    assert!(unchanged(&copy), "{:?}", copy.extra);
    assert_eq!(copy.extra["quota_used"], "104");

    // A 429 (per-minute limits) waits for Retry-After, nothing is sent before then, and a
    // refused request costs nothing: the poll fails and the state stays as it was.
    fake.fail_next(Fault::rate_limited(30.0));
    let mut copy = kept.clone();
    let err = src.poll(&mut copy).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(30)), "{err}");
    assert_eq!(copy, kept);
    let sent = fake.state.lock().unwrap().requests.len();
    assert!(src.poll(&mut kept.clone()).await.is_err());
    assert_eq!(fake.state.lock().unwrap().requests.len(), sent, "paused");

    // A body that is not JSON skips that listing only; the videos are still read.
    let mut src = build(&text);
    let mut copy = kept.clone();
    fake.fail_next(Fault::Malformed);
    src.poll(&mut copy).await.unwrap();
    let warning = src.take_warning().expect("a warning");
    assert!(warning.contains("commentThreads"), "{warning}");
    assert_eq!(copy.extra["wm:newVid00001"], kept.extra["wm:newVid00001"]);
    // A request that hangs ends the poll before the poll loop's timeout would drop it.
    fake.fail_next(Fault::Hang);
    let started = std::time::Instant::now();
    let mut copy = kept.clone();
    src.poll(&mut copy).await.unwrap();
    // It stops at 90 % of the 1 s timeout (a loaded machine may add a little).
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    let warning = src.take_warning().expect("a warning");
    assert!(warning.contains("timed out"), "{warning}");
    assert!(unchanged(&copy), "{:?}", copy.extra);

    // A source-wide failure (the key refused) fails the poll and leaves the state alone.
    let mut copy = kept.clone();
    let wrong = build(&text.replace(
        "${YOUTUBE_API_KEY}",
        "AIzaSyWRONG-key-zyxwvutsrqponmlkjihgf",
    ))
    .poll(&mut copy)
    .await
    .unwrap_err();
    assert!(matches!(wrong, SourceError::Config(_)), "{wrong}");
    assert_eq!(copy, kept);

    let mut state = kept.clone();
    assert_eq!(ids(&src.poll(&mut state).await.unwrap()), ["UgNew"]);
}

#[tokio::test]
async fn a_failing_listing_is_skipped_and_the_rest_of_the_poll_is_kept() {
    let fake = FakeYoutube::start().await;
    let t = now();
    seed(&fake, t);
    {
        let mut s = fake.state.lock().unwrap();
        // The channel listing breaks (after the search answered), and the found video goes
        // private between the search and its listing.
        s.broken.insert(CHANNEL.into(), 500);
        s.forbidden_videos.insert("newVid00001".into());
    }
    let mut src = source(&fake);
    let mut state = SourceState::default();
    let got = src.poll(&mut state).await.unwrap();
    assert_eq!(
        ids(&got),
        ["UgV2a", "newVid00001"],
        "the search's find and the other video's comments are delivered"
    );
    let warning = src.take_warning().expect("a warning");
    assert!(
        warning.contains("channel UC_x5XG1OV2P6uZZ5FSM9Ttw: YouTube answered HTTP 500"),
        "{warning}"
    );
    assert!(
        warning.contains("video newVid00001 cannot be read (HTTP 403 forbidden")
            && warning.contains("no longer followed"),
        "{warning}"
    );
    assert!(state.extra.contains_key("searched_at"), "{:?}", state.extra);
    assert!(!state.extra["videos"].contains("newVid00001"), "untracked");
    assert_eq!(state.extra["quota_used"], "103");

    // The next poll: no second search (100 units) within the hour, the private video is
    // not asked for again, the channel (working again) and a 400 on the other video.
    {
        let mut s = fake.state.lock().unwrap();
        s.broken.clear();
        s.broken.insert("oldVid00001".into(), 400);
    }
    let got = src.poll(&mut state).await.unwrap();
    assert_eq!(ids(&got), ["UgOwn1", "UgOwn2"]);
    let warning = src.take_warning().expect("a warning");
    assert!(
        warning
            .contains("video oldVid00001: YouTube refused the request (HTTP 400 invalidParameter"),
        "{warning}"
    );
    assert_eq!(fake.requests("/youtube/v3/search").len(), 1);
    let asked: Vec<String> = fake
        .requests("/youtube/v3/commentThreads")
        .iter()
        .filter_map(|r| r.query.get("videoId").cloned())
        .collect();
    assert_eq!(asked, ["newVid00001", "oldVid00001", "oldVid00001"]);

    // Once it answers again, nothing on it was skipped.
    fake.state.lock().unwrap().broken.clear();
    fake.state.lock().unwrap().threads.push(thread(
        "UgV2c",
        "UCreviewerreviewerrevie0",
        "oldVid00001",
        t - 2,
        "acme again",
    ));
    assert_eq!(ids(&src.poll(&mut state).await.unwrap()), ["UgV2c"]);
    assert_eq!(src.take_warning(), None);
}

#[tokio::test]
async fn what_a_poll_that_failed_part_way_spent_survives_a_restart() {
    let fake = FakeYoutube::start().await;
    let t = now();
    seed(&fake, t);
    let text = config(&fake, "");
    let mut src = build(&text);
    let mut state = SourceState::default();
    src.poll(&mut state).await.unwrap();
    assert_eq!(fake.units(), 103);

    // The API fails at the first request, then at the third: both polls spent units.
    fake.fail_next(Fault::http(503));
    src.poll(&mut state).await.unwrap();
    fake.state
        .lock()
        .unwrap()
        .broken
        .insert("oldVid00001".into(), 503);
    src.poll(&mut state).await.unwrap();
    let spent = 103 + 1 + 3;
    assert_eq!(src.quota().unwrap().remaining, 10000 - spent);
    // A restart counts them all.
    let mut restored: SourceState =
        serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
    let mut again = build(&text);
    fake.state.lock().unwrap().broken.clear();
    again.poll(&mut restored).await.unwrap();
    assert_eq!(again.quota().unwrap().remaining, 10000 - spent - 3);

    // A refusal Google does not charge for (no quota left) counts nothing and fails the poll.
    fake.state.lock().unwrap().quota_exceeded = true;
    let mut fresh = build(&text);
    let mut copy = SourceState::default();
    assert!(fresh.poll(&mut copy).await.is_err());
    assert_eq!(copy, SourceState::default());
}

/// `n` comments on the channel's video, one a second, the newest `newest`.
fn flood(fake: &FakeYoutube, prefix: &str, n: i64, newest: i64) -> Vec<String> {
    let mut s = fake.state.lock().unwrap();
    (0..n)
        .map(|i| {
            let id = format!("{prefix}{i:04}");
            s.threads.push(thread(
                &id,
                CHANNEL,
                "ownVid00001",
                newest - i,
                "so many comments",
            ));
            id
        })
        .collect()
}

fn channel_only(fake: &FakeYoutube) -> String {
    config(fake, "").replace("query = '(acme OR \"acme corp\") AND NOT hiring'\n", "")
}

#[tokio::test]
async fn a_backlog_longer_than_a_poll_reads_is_read_to_its_end_over_the_next_polls() {
    let fake = FakeYoutube::start().await;
    let t = now();
    let mut src = build(&channel_only(&fake));
    let mut state = SourceState::default();
    flood(&fake, "UgA", 3, t - 2000);
    assert_eq!(src.poll(&mut state).await.unwrap().len(), 3);

    // 1,234 new comments since: more than one poll's 5 pages of 100.
    let mut want = flood(&fake, "UgB", 1234, t - 10);
    let mut got = Vec::new();
    for poll in 1..=3 {
        let read = src.poll(&mut state).await.unwrap();
        assert_eq!(read.len(), 500.min(1234 - got.len()), "poll {poll}");
        got.extend(read.into_iter().map(|m| m.item_id));
        if poll == 1 {
            assert!(
                state.extra.contains_key(&format!("rs:{CHANNEL}")),
                "{:?}",
                state.extra
            );
            // Comments keep arriving on top while the backlog is read.
            want.extend(flood(&fake, "UgC", 3, t - 1));
        }
    }
    assert!(!state.extra.contains_key(&format!("rs:{CHANNEL}")));
    // The backlog is done; the comments that came on top meanwhile come next.
    got.extend(
        src.poll(&mut state)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.item_id),
    );
    got.sort();
    want.sort();
    assert_eq!(got, want, "every comment once, none skipped");
    assert!(src.poll(&mut state).await.unwrap().is_empty());
    assert_eq!(src.take_warning(), None);
}

#[tokio::test]
async fn a_backlog_whose_page_token_expired_is_read_again_from_the_top_and_nothing_is_missed() {
    let fake = FakeYoutube::start().await;
    let t = now();
    let mut src = build(&channel_only(&fake));
    let mut state = SourceState::default();
    flood(&fake, "UgA", 3, t - 2000);
    src.poll(&mut state).await.unwrap();
    let backlog = flood(&fake, "UgB", 700, t - 10);
    let mut got = ids(&src.poll(&mut state).await.unwrap());
    assert_eq!(got.len(), 500);
    fake.state.lock().unwrap().expire_tokens = true;
    assert!(src.poll(&mut state).await.unwrap().is_empty());
    let warning = src.take_warning().expect("a warning");
    assert!(
        warning.contains("invalidPageToken") && warning.contains("reads it again"),
        "{warning}"
    );
    assert!(!state.extra.contains_key(&format!("rs:{CHANNEL}")));
    // The watermark did not move: the listing is read again from its top, what was handed
    // on is not repeated, and the 200 oldest comments of the backlog still arrive.
    fake.state.lock().unwrap().expire_tokens = false;
    flood(&fake, "UgC", 2, t - 1);
    assert_eq!(
        ids(&src.poll(&mut state).await.unwrap()),
        ["UgC0000", "UgC0001"]
    );
    got.extend(ids(&src.poll(&mut state).await.unwrap()));
    got.sort();
    assert_eq!(got, backlog, "every comment of the backlog once");
}

/// A saved backlog page that keeps failing (here: an answer that is not JSON) is tried a
/// few times, then the listing is read from its top again instead of being stuck on it.
#[tokio::test]
async fn a_backlog_page_that_keeps_failing_is_given_up_after_three_tries() {
    let fake = FakeYoutube::start().await;
    let t = now();
    let mut src = build(&channel_only(&fake));
    let mut state = SourceState::default();
    flood(&fake, "UgA", 3, t - 2000);
    src.poll(&mut state).await.unwrap();
    flood(&fake, "UgB", 700, t - 10);
    assert_eq!(src.poll(&mut state).await.unwrap().len(), 500);
    let rs = format!("rs:{CHANNEL}");
    for tries in 1..=3 {
        fake.fail_next(Fault::Malformed);
        assert!(src.poll(&mut state).await.unwrap().is_empty());
        let warning = src.take_warning().expect("a warning");
        if tries < 3 {
            assert!(
                state.extra[&rs].ends_with(&format!(" {tries}")),
                "{state:?}"
            );
        } else {
            assert!(
                warning.contains("gave up") && warning.contains("3 failed tries"),
                "{warning}"
            );
            assert!(!state.extra.contains_key(&rs), "{state:?}");
        }
    }
    // Read from the top: the 500 seen are not repeated and the 200 left arrive over two polls.
    let mut rest = src.poll(&mut state).await.unwrap().len();
    rest += src.poll(&mut state).await.unwrap().len();
    assert_eq!(rest, 200);
}

#[tokio::test]
async fn a_huge_retry_after_is_capped_at_a_day_and_does_not_panic() {
    let fake = FakeYoutube::start().await;
    seed(&fake, now());
    let huge = "18446744073709551615";
    let mut src = source(&fake);
    fake.fail_next(Fault::status(429, &[("retry-after", huge)]));
    let err = src.poll(&mut SourceState::default()).await.unwrap_err();
    assert_eq!(
        err.retry_after(),
        Some(Duration::from_secs(86_400)),
        "{err}"
    );
    let mut src = source(&fake);
    fake.fail_next(Fault::status(503, &[("retry-after", huge)]));
    src.poll(&mut SourceState::default()).await.unwrap();
    let err = src.poll(&mut SourceState::default()).await.unwrap_err();
    assert!(
        err.retry_after().unwrap() <= Duration::from_secs(86_400),
        "{err}"
    );
}

#[test]
fn config_problems_name_the_key_and_the_fix() {
    let check = |body: &str| {
        let text = format!(
            "[[sources]]\nname = \"y\"\nkind = \"youtube\"\n{body}\n\n[[rules]]\nname = \"a\"\nquery = \"acme\"\nalert = [\"slack:#x\"]\n"
        );
        mentiondesk::settings::parse(&text, Path::new("t.toml"), &env)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    let err = check("query = \"acme\"");
    assert!(
        err.contains("sources[0].key") && err.contains("YOUTUBE_API_KEY"),
        "{err}"
    );
    let err = check("key = \"${YOUTUBE_API_KEY}\"");
    assert!(err.contains("query") && err.contains("channels"), "{err}");
    let err = check("key = \"${YOUTUBE_API_KEY}\"\nchannels = [\"@acme\"]");
    assert!(
        err.contains("\"@acme\" is not a channel id") && err.contains("UC"),
        "{err}"
    );
    let err = check("key = \"${YOUTUBE_API_KEY}\"\nquery = \"acme\"\ndaily_quota = 50");
    assert!(
        err.contains("daily_quota") && err.contains("100 units"),
        "{err}"
    );
    let err = check("key = \"${YOUTUBE_API_KEY}\"\nquery = \"acme\"\ndaily_quota = 0");
    assert!(err.contains("daily_quota"), "{err}");
    assert!(!err.contains(KEY), "{err}");
    assert_eq!(
        check(&format!(
            "key = \"${{YOUTUBE_API_KEY}}\"\nchannels = [\"{CHANNEL}\"]"
        )),
        ""
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_once_turns_a_youtube_comment_into_a_match() {
    let fake = FakeYoutube::start().await;
    let t = now();
    fake.state.lock().unwrap().threads = vec![
        thread(
            "UgA",
            CHANNEL,
            "ownVid00001",
            t - 60,
            "Acme support never called back",
        ),
        thread(
            "UgB",
            CHANNEL,
            "ownVid00001",
            t - 30,
            "Acme is hiring? nice",
        ),
        thread("UgC", CHANNEL, "ownVid00001", t - 20, "nice video"),
    ];
    let text = config(&fake, "").replace("query = '(acme OR \"acme corp\") AND NOT hiring'\n", "");
    let config = mentiondesk::settings::parse(&text, Path::new("t.toml"), &env).unwrap();
    let results = mentiondesk::app::scan_once(&config).await.unwrap();
    let (_, hits) = results.iter().find(|(n, _)| n == "yt").unwrap();
    let hits: Vec<String> = hits
        .as_ref()
        .unwrap()
        .iter()
        .map(|h| h.mention.item_id.clone())
        .collect();
    assert_eq!(hits, ["UgA"]);
}

/// The daemon polls the source, alerts on a channel comment in Slack with a link to it, and
/// shows the remaining daily quota on `/healthz`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_alerts_on_a_channel_comment_and_shows_the_quota_on_healthz() {
    let slack = common::FakeSlack::start().await;
    let fake = FakeYoutube::start().await;
    let t = now();
    fake.state.lock().unwrap().threads = vec![thread(
        "UgDaemon1",
        CHANNEL,
        "ownVid00001",
        t - 60,
        "Acme support never called back",
    )];
    let config = common::ConfigBuilder::new()
        .slack(&slack)
        .source("yt", "youtube")
        .key("key", KEY)
        .key("channels", &[CHANNEL][..])
        .key("url", fake.url())
        .key("every", "1s")
        .key("allow_private", true)
        .rule("acme", "acme", &["slack:#pr-alerts"])
        .desk()
        .toml();
    let daemon = common::Daemon::start(&config).await;
    let posts = slack.wait_for_posts(1, 20).await;
    let body = posts[0].body.to_string();
    // Slack mrkdwn escapes `&` in the link.
    assert!(
        body.contains("https://www.youtube.com/watch?v=ownVid00001&amp;lc=UgDaemon1"),
        "{body}"
    );
    // A one-line comment is the alert's headline; the matched word is named under it.
    assert!(body.contains("Acme support never called back"), "{body}");
    assert!(body.contains("Matched rule *acme*: *Acme*"), "{body}");

    let health = daemon.healthz().await;
    let yt = health["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "yt")
        .cloned()
        .unwrap();
    assert_eq!(yt["quota"]["unit"], "units", "{yt}");
    assert_eq!(yt["quota"]["limit"], 10000, "{yt}");
    let remaining = yt["quota"]["remaining"].as_u64().unwrap();
    assert!((9000..10000).contains(&remaining), "{yt}");
    daemon.stop().await;
}
