//! Digests through the daemon and the chat fakes: the chart uploads, `digest --now`, and
//! finding a digest again after a crash.

use super::*;
use common::faults::Fault;

fn chat_config(slack: &FakeSlack, discord: &FakeDiscord, feed_url: &str) -> String {
    ConfigBuilder::new()
        .slack(slack)
        .discord(discord)
        .rss("news", feed_url)
        .rule("acme", "acme", &["slack:#pr-alerts"])
        .table("[[digest]]")
        .key("name", "Acme morning")
        .key("schedule", "0 0 9 1 1 * 2099")
        .key("timezone", "Europe/Berlin")
        .key("to", ["slack:#pr-alerts", &format!("discord:{CHANNEL}")])
        .toml()
}

fn assert_png(bytes: &[u8]) {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("decodes");
    assert_eq!(
        (info.width, info.height),
        (
            mentiondesk::digest::chart::WIDTH,
            mentiondesk::digest::chart::HEIGHT
        )
    );
    let first = &buf[..info.line_size.min(buf.len())][..3];
    assert!(
        buf.chunks(3).any(|px| px != first),
        "the chart is not a blank image"
    );
}

async fn admin_digest(daemon: &Daemon, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(daemon.url("/admin/digest"))
        .bearer_auth(token)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_now_uploads_the_chart_to_slack_and_discord() {
    let slack = FakeSlack::start().await;
    let discord = FakeDiscord::start().await;
    let feed = rss(&[
        (
            "g1".into(),
            "Acme outage <!channel>".into(),
            "acme is down @everyone, terrible".into(),
        ),
        ("g2".into(), "Acme love".into(), "acme is great".into()),
    ]);
    let feeds = FakeFeeds::start(vec![("/feed.xml", FeedResponse::rss(feed))]).await;
    let daemon = Daemon::start(&chat_config(&slack, &discord, &feeds.url("/feed.xml"))).await;
    slack.wait_for_posts(2, 15).await;

    let token_path = daemon.dir.path().join("store.admin-token");
    let token = std::fs::read_to_string(&token_path).expect("the daemon wrote its admin token");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_path).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "only the daemon's user can read the token"
        );
    }
    let wrong = admin_digest(&daemon, "not-the-token").await;
    assert_eq!(wrong.status(), 401);
    let proxied = reqwest::Client::new()
        .post(daemon.url("/admin/digest"))
        .bearer_auth(&token)
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(proxied.status(), 403, "nothing forwarded by a proxy");
    let resp = admin_digest(&daemon, &token).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["queued"][0]["name"], "Acme morning");
    assert_eq!(v["queued"][0]["chart"], true);

    // Slack: getUploadURLExternal → bytes to the upload URL → completeUploadExternal.
    let completed = poll_until(15, "the Slack upload is completed", || {
        slack
            .state
            .lock()
            .unwrap()
            .completed_uploads
            .first()
            .cloned()
    })
    .await;
    assert_eq!(completed["channel_id"], "C0PRALERTS");
    let file_id = completed["files"][0]["id"].as_str().unwrap().to_string();
    let (ctype, bytes) = slack.state.lock().unwrap().uploads[&file_id].clone();
    assert_eq!(ctype, "image/png");
    assert_png(&bytes);
    let (name, _, alt) = slack.state.lock().unwrap().upload_urls[&file_id].clone();
    assert!(
        name.starts_with("mentiondesk-digest-") && name.ends_with(".png"),
        "{name}"
    );
    assert!(alt.contains("Mentions per hour"), "{alt}");
    let blocks = completed["blocks"].to_string();
    assert!(blocks.contains("Acme morning"), "{blocks}");
    assert!(blocks.contains("*New mentions:* 2"), "{blocks}");
    assert!(
        !blocks.contains("<!channel>"),
        "no ping from hostile titles: {blocks}"
    );
    assert!(blocks.contains("&lt;!channel&gt;"), "{blocks}");

    // Discord: one message with the chart attached and shown in the embed.
    let msg = poll_until(15, "the Discord digest", || {
        discord.messages().into_iter().find(|m| {
            m.body["embeds"][0]["title"]
                .as_str()
                .is_some_and(|t| t.contains("Acme morning"))
        })
    })
    .await;
    assert_eq!(msg.body["allowed_mentions"]["parse"], serde_json::json!([]));
    let image = msg.body["embeds"][0]["image"]["url"].as_str().unwrap();
    let files = discord.state.lock().unwrap().files.clone();
    let (mid, filename, ctype, bytes) = &files[0];
    assert_eq!(mid, &msg.id);
    assert_eq!(image, format!("attachment://{filename}"));
    assert_eq!(ctype, "image/png");
    assert_png(bytes);
    let desc = msg.body["embeds"][0]["description"].as_str().unwrap();
    assert!(desc.contains("**New mentions:** 2"), "{desc}");
    assert!(desc.contains("\\@everyone"), "{desc}");

    // Delivered once each, and the outbox is empty.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(slack.state.lock().unwrap().completed_uploads.len(), 1);
    assert_eq!(discord.state.lock().unwrap().files.len(), 1);
    assert_eq!(daemon.healthz().await["outbox_pending"], 0);
    let metrics = reqwest::get(daemon.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("mentiondesk_digests_posted_total 2"),
        "{metrics}"
    );
    daemon.stop().await;
}

fn cli(config: &std::path::Path, args: &[&str]) -> std::process::Output {
    crate::common::mentiondesk()
        .args(args)
        .arg("--config")
        .arg(config)
        .env("MENTIONDESK_LOG", "warn")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_now_cli_asks_the_running_daemon_or_sends_it_itself() {
    let slack = FakeSlack::start().await;
    let discord = FakeDiscord::start().await;
    let feeds = FakeFeeds::start(vec![(
        "/feed.xml",
        FeedResponse::rss(rss(&[("g1".into(), "Acme".into(), "acme news".into())])),
    )])
    .await;
    let template = chat_config(&slack, &discord, &feeds.url("/feed.xml"));
    let daemon = Daemon::start(&template).await;
    slack.wait_for_posts(1, 15).await;
    let config_path = daemon.dir.path().join("mentiondesk.toml");
    let resolved = |port: u16| {
        template
            .replace(
                "{store}",
                &daemon.dir.path().join("store").display().to_string(),
            )
            .replace("{port}", &port.to_string())
    };
    std::fs::write(&config_path, resolved(daemon.port)).unwrap();

    // The daemon holds the store: the CLI asks it, and it posts.
    let out = tokio::task::spawn_blocking({
        let p = config_path.clone();
        move || cli(&p, &["digest", "--now"])
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("queued \"📊 Acme morning"), "{stdout}");
    poll_until(15, "the digest from the daemon", || {
        (!slack.state.lock().unwrap().completed_uploads.is_empty()).then_some(())
    })
    .await;

    // An unknown digest name says which ones exist.
    let p = config_path.clone();
    let out = tokio::task::spawn_blocking(move || cli(&p, &["digest", "--now", "--name", "Nope"]))
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no digest named \"Nope\"; configured: Acme morning"),
        "{stderr}"
    );

    // Daemon stopped: the CLI opens the store itself and posts directly.
    let dir = daemon.stop().await;
    assert!(
        !dir.path().join("store.admin-token").exists(),
        "token removed on stop"
    );
    let p = config_path.clone();
    let out = tokio::task::spawn_blocking(move || cli(&p, &["digest", "--now"]))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("sent \"📊 Acme morning"), "{stdout}");
    assert_eq!(slack.state.lock().unwrap().completed_uploads.len(), 2);
    drop(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_posted_just_before_a_crash_is_found_and_not_posted_again() {
    use mentiondesk::chat::ChatPlatform;
    let slack = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let platform = Arc::new(
        mentiondesk::chat::slack::SlackPlatform::new(&slack.api_url(), BOT_TOKEN).unwrap(),
    );
    let buckets = vec![mentiondesk::digest::chart::Bucket {
        label: "09:00".into(),
        negative: 1,
        neutral: 2,
        positive: 3,
    }];
    let chart = mentiondesk::digest::chart::render_png(&mentiondesk::digest::chart::ChartSpec {
        title: "t",
        buckets: &buckets,
    })
    .unwrap();
    let post = mentiondesk::model::DigestPost {
        title: "📊 Digest".into(),
        body: Note::new().text("hello"),
        chart: Some(chart),
        chart_alt: "alt".into(),
    };
    let target = Target::Slack("#pr-alerts".into());
    store
        .enqueue_digest::<()>(None, std::slice::from_ref(&target), &post, Utc::now())
        .await
        .unwrap();
    let (key, _) = store.outbox().await.unwrap()[0].clone();
    // The crash: marked in flight, uploaded, and the process died before finishing.
    store.mark_in_flight(key, Utc::now()).await.unwrap();
    platform
        .post_digest("#pr-alerts", &post, &format!("digest-{}", key.seq()))
        .await
        .unwrap();
    let platforms = mentiondesk::relay::Platforms {
        slack: Some(platform as Arc<dyn ChatPlatform>),
        discord: None,
        console: Arc::new(mentiondesk::chat::console::ConsolePlatform),
    };
    let (_trigger, shutdown) = mentiondesk::shutdown::channel();
    let metrics = mentiondesk::metrics::Metrics::default();
    mentiondesk::relay::deliver_due(&store, &platforms, &metrics, &shutdown).await;
    assert!(
        store.outbox().await.unwrap().is_empty(),
        "done after the lookup"
    );
    let s = slack.state.lock().unwrap();
    assert_eq!(
        s.completed_uploads.len(),
        1,
        "found in history, not uploaded twice"
    );
    assert!(s.history_calls >= 1, "the relay looked before posting");
}

#[tokio::test]
async fn a_weekly_chart_has_seven_local_days_ending_today() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // Monday 23 Nov 2026, 09:00 Berlin; the period since Friday 09:00 is 72 hours.
    let to = utc("2026-11-23T08:00:00Z");
    for (id, at) in [
        ("today", "2026-11-23T07:30:00Z"),   // Mon 08:30 Berlin
        ("sunday", "2026-11-22T12:00:00Z"),  // Sun 13:00
        ("tuesday", "2026-11-17T12:00:00Z"), // Tue 13:00, the first day shown
        ("too-old", "2026-11-16T12:00:00Z"), // Mon a week ago: not in the chart
    ] {
        hit(
            &store,
            id,
            "acme",
            "hn",
            "acme",
            0.0,
            false,
            Priority::Normal,
            utc(at),
        )
        .await;
    }
    let period = Period {
        from: utc("2026-11-20T08:00:00Z"),
        to,
    };
    let r = report::gather(
        &store,
        &["acme".into()],
        period,
        chrono_tz::Europe::Berlin,
        to,
    )
    .await
    .unwrap();
    let labels: Vec<&str> = r.chart.iter().map(|b| b.label.as_str()).collect();
    assert_eq!(
        labels,
        ["Tue 17", "Wed 18", "Thu 19", "Fri 20", "Sat 21", "Sun 22", "Mon 23"]
    );
    let totals: Vec<u32> = r
        .chart
        .iter()
        .map(|b| b.negative + b.neutral + b.positive)
        .collect();
    assert_eq!(
        totals,
        [1, 0, 0, 0, 0, 1, 1],
        "today's mention is in today's bar"
    );
    assert_eq!(r.chart_title, "Mentions per day, last 7 days");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slack_app_without_files_write_still_gets_the_digest_text() {
    use mentiondesk::chat::ChatPlatform;
    let slack = FakeSlack::start().await;
    // An app without `files:write`.
    slack
        .faults
        .always("files.getUploadURLExternal", Fault::slack("missing_scope"));
    let platform =
        mentiondesk::chat::slack::SlackPlatform::new(&slack.api_url(), BOT_TOKEN).unwrap();
    let post = mentiondesk::model::DigestPost {
        title: "📊 Digest".into(),
        body: Note::new().bold("New mentions:").text(" 3"),
        chart: Some(vec![0x89, b'P', b'N', b'G']),
        chart_alt: "alt".into(),
    };
    platform
        .post_digest("#pr-alerts", &post, "digest-9")
        .await
        .unwrap();
    let posts = slack.posts();
    assert_eq!(posts.len(), 1, "posted as a plain message");
    assert!(posts[0].body["blocks"]
        .to_string()
        .contains("*New mentions:* 3"));
    assert!(slack.state.lock().unwrap().completed_uploads.is_empty());
    // And it is found again by its marker after a crash.
    let since = Utc::now() - CDuration::minutes(1);
    assert!(platform
        .find_digest("#pr-alerts", "digest-9", since)
        .await
        .unwrap()
        .is_some());
    assert!(platform
        .find_digest("#pr-alerts", "digest-10", since)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discord_digest_is_found_by_its_footer_after_a_crash() {
    use mentiondesk::chat::ChatPlatform;
    let discord = FakeDiscord::start().await;
    let platform =
        mentiondesk::chat::discord::DiscordPlatform::new(&discord.api_url(), DISCORD_TOKEN)
            .unwrap();
    let post = mentiondesk::model::DigestPost {
        title: "📊 Digest".into(),
        body: Note::new().text("hello"),
        chart: None,
        chart_alt: "alt".into(),
    };
    let since = Utc::now() - CDuration::minutes(1);
    assert!(platform
        .find_digest(CHANNEL, "digest-4", since)
        .await
        .unwrap()
        .is_none());
    let posted = platform
        .post_digest(CHANNEL, &post, "digest-4")
        .await
        .unwrap();
    let found = platform
        .find_digest(CHANNEL, "digest-4", since)
        .await
        .unwrap()
        .expect("found by footer, not only by the nonce");
    assert_eq!(found.message_id, posted.message_id);
    assert!(platform
        .find_digest(CHANNEL, "digest-5", since)
        .await
        .unwrap()
        .is_none());
}
