//! End-to-end tests of the shared fetch and the `rss` and `file` sources against a fake feed
//! server on 127.0.0.1 (port 0, never another address) and real temporary files.

mod rss_over_http {
    use super::helpers::{gzip_zeros, rss_spec, serve};
    use crate::sources::http::{Fetched, Fetcher};
    use crate::sources::rss::RssSource;
    use crate::sources::{Source, SourceError, SourceState};
    use axum::http::{header, HeaderMap, StatusCode};
    use axum::routing::get;
    use axum::Router;
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};
    use tokio::io::AsyncWriteExt;

    const RSS2: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel><title>Acme news</title><link>https://news.test/</link><language>en-US</language>
<item>
  <title>Acme &amp;amp; friends</title>
  <link>https://news.test/1</link>
  <guid>https://news.test/1</guid>
  <description>&lt;p&gt;Acme &lt;b&gt;broke&lt;/b&gt; my order &amp;amp; refund&lt;/p&gt;</description>
  <dc:creator>Jane Doe</dc:creator>
  <pubDate>Tue, 07 May 2024 10:00:00 GMT</pubDate>
</item>
</channel></rss>"#;

    const RSS1: &str = r#"<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel rdf:about="https://rdf.test/"><title>RDF</title><link>https://rdf.test/</link><description>d</description><dc:language>de</dc:language></channel>
<item rdf:about="https://rdf.test/item1">
  <title>Acme im RDF</title>
  <link>https://rdf.test/item1</link>
  <description>Acme Text</description>
  <dc:creator>Max</dc:creator>
  <dc:date>2024-05-01T09:00:00Z</dc:date>
</item>
</rdf:RDF>"#;

    const ATOM: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="fr"><title>Atom</title><id>urn:feed</id>
<updated>2024-05-02T00:00:00Z</updated>
<entry>
  <id>urn:entry:1</id>
  <title type="html">&lt;i&gt;Acme&lt;/i&gt; review</title>
  <link rel="alternate" href="https://atom.test/1"/>
  <author><name>Ann</name></author>
  <updated>2024-05-02T12:00:00Z</updated>
  <summary>short</summary>
  <content type="html">&lt;p&gt;Full text about Acme&lt;/p&gt;</content>
</entry></feed>"#;

    const JSON_FEED: &str = r#"{"version":"https://jsonfeed.org/version/1.1","title":"J","language":"es",
"items":[{"id":"42","url":"https://json.test/42","title":"Acme json",
"content_text":"Plain acme text, 1 < 2","date_published":"2024-05-03T08:00:00Z",
"authors":[{"name":"Luis"}]}]}"#;

    const NO_GUID: &str = r#"<rss version="2.0"><channel><title>t</title>
<item><title>First acme post</title><link>https://x.test/1</link></item>
<item><title>Second acme post</title><link>https://x.test/2</link></item>
</channel></rss>"#;

    fn feeds() -> Router {
        Router::new()
            .route("/rss2", get(|| async { RSS2 }))
            .route("/rss1", get(|| async { RSS1 }))
            .route("/atom", get(|| async { ATOM }))
            .route("/json", get(|| async { JSON_FEED }))
            .route("/noguid", get(|| async { NO_GUID }))
            .route(
                "/broken",
                get(|| async { "<rss version=\"2.0\"><channel><item><title>x</titel></channel>" }),
            )
            .route(
                "/e500",
                get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "oops") }),
            )
            .route(
                "/e429",
                get(|| async {
                    (
                        StatusCode::TOO_MANY_REQUESTS,
                        [(header::RETRY_AFTER, "120")],
                        "slow down",
                    )
                }),
            )
            .route(
                "/e503date",
                get(|| async {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        [(header::RETRY_AFTER, "Wed, 21 Oct 2099 07:28:00 GMT")],
                        "",
                    )
                }),
            )
            .route(
                "/stall",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    RSS2
                }),
            )
            .route(
                "/bomb",
                get(|| async {
                    (
                        [
                            (header::CONTENT_ENCODING, "gzip"),
                            (header::CONTENT_TYPE, "application/rss+xml"),
                        ],
                        gzip_zeros(64 << 20),
                    )
                }),
            )
            .route("/big", get(|| async { vec![b' '; 2 << 20] }))
    }

    async fn poll_url(url: &str) -> Result<Vec<crate::model::Mention>, SourceError> {
        let mut source = RssSource::new(&rss_spec(url)).unwrap();
        source.poll(&mut SourceState::default()).await
    }

    #[tokio::test]
    async fn rss2_maps_to_a_plain_text_mention() {
        let addr = serve(feeds()).await;
        let got = poll_url(&format!("http://{addr}/rss2")).await.unwrap();
        assert_eq!(got.len(), 1);
        let m = &got[0];
        assert_eq!(m.item_id, "https://news.test/1");
        assert_eq!(m.source, "feed");
        assert_eq!(m.source_kind, "rss");
        assert_eq!(m.title.as_deref(), Some("Acme & friends"));
        assert_eq!(m.text, "Acme broke my order & refund");
        assert_eq!(m.url.as_deref(), Some("https://news.test/1"));
        assert_eq!(m.author.as_deref(), Some("Jane Doe"));
        assert_eq!(
            m.published.unwrap().to_rfc3339(),
            "2024-05-07T10:00:00+00:00"
        );
        assert_eq!(m.lang.as_deref(), Some("en-us"));
    }

    #[tokio::test]
    async fn rss1_maps_to_a_mention() {
        let addr = serve(feeds()).await;
        let got = poll_url(&format!("http://{addr}/rss1")).await.unwrap();
        assert_eq!(got.len(), 1);
        let m = &got[0];
        assert_eq!(m.title.as_deref(), Some("Acme im RDF"));
        assert_eq!(m.text, "Acme Text");
        assert_eq!(m.url.as_deref(), Some("https://rdf.test/item1"));
        assert_eq!(m.author.as_deref(), Some("Max"));
        assert_eq!(
            m.published.unwrap().to_rfc3339(),
            "2024-05-01T09:00:00+00:00"
        );
        assert_eq!(m.lang.as_deref(), Some("de"));
        assert!(!m.item_id.is_empty());
    }

    #[tokio::test]
    async fn atom_prefers_full_content_and_falls_back_to_updated() {
        let addr = serve(feeds()).await;
        let got = poll_url(&format!("http://{addr}/atom")).await.unwrap();
        assert_eq!(got.len(), 1);
        let m = &got[0];
        assert_eq!(m.item_id, "urn:entry:1");
        assert_eq!(m.title.as_deref(), Some("Acme review"));
        assert_eq!(m.text, "Full text about Acme");
        assert_eq!(m.url.as_deref(), Some("https://atom.test/1"));
        assert_eq!(m.author.as_deref(), Some("Ann"));
        assert_eq!(
            m.published.unwrap().to_rfc3339(),
            "2024-05-02T12:00:00+00:00"
        );
        assert_eq!(m.lang.as_deref(), Some("fr"));
    }

    #[tokio::test]
    async fn json_feed_keeps_plain_text_as_is() {
        let addr = serve(feeds()).await;
        let got = poll_url(&format!("http://{addr}/json")).await.unwrap();
        assert_eq!(got.len(), 1);
        let m = &got[0];
        assert_eq!(m.item_id, "42");
        assert_eq!(m.title.as_deref(), Some("Acme json"));
        assert_eq!(m.text, "Plain acme text, 1 < 2");
        assert_eq!(m.url.as_deref(), Some("https://json.test/42"));
        assert_eq!(m.author.as_deref(), Some("Luis"));
        assert_eq!(
            m.published.unwrap().to_rfc3339(),
            "2024-05-03T08:00:00+00:00"
        );
        assert_eq!(m.lang.as_deref(), Some("es"));
    }

    #[tokio::test]
    async fn entries_without_guid_keep_their_ids_across_polls_and_restarts() {
        let addr = serve(feeds()).await;
        let url = format!("http://{addr}/noguid");
        let first = poll_url(&url).await.unwrap();
        let second = poll_url(&url).await.unwrap();
        let ids =
            |ms: &[crate::model::Mention]| ms.iter().map(|m| m.item_id.clone()).collect::<Vec<_>>();
        assert_eq!(first.len(), 2);
        assert_eq!(ids(&first), ids(&second));
        assert_ne!(first[0].item_id, first[1].item_id);
    }

    #[tokio::test]
    async fn conditional_get_sends_validators_and_304_yields_nothing() {
        let seen: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
        let seen2 = seen.clone();
        let router = Router::new().route(
            "/feed",
            get(move |headers: HeaderMap| {
                let seen = seen2.clone();
                async move {
                    seen.lock().unwrap().push(headers.clone());
                    if headers
                        .get(header::IF_NONE_MATCH)
                        .is_some_and(|v| v == "\"v1\"")
                    {
                        return (StatusCode::NOT_MODIFIED, HeaderMap::new(), "");
                    }
                    let mut h = HeaderMap::new();
                    h.insert(header::ETAG, "\"v1\"".parse().unwrap());
                    h.insert(
                        header::LAST_MODIFIED,
                        "Tue, 07 May 2024 10:00:00 GMT".parse().unwrap(),
                    );
                    (StatusCode::OK, h, RSS2)
                }
            }),
        );
        let addr = serve(router).await;
        let mut source = RssSource::new(&rss_spec(&format!("http://{addr}/feed"))).unwrap();
        let mut state = SourceState::default();

        let first = source.poll(&mut state).await.unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(state.etag.as_deref(), Some("\"v1\""));
        assert_eq!(
            state.last_modified.as_deref(),
            Some("Tue, 07 May 2024 10:00:00 GMT")
        );

        let before = state.clone();
        let second = source.poll(&mut state).await.unwrap();
        assert!(second.is_empty(), "304 must yield no items");
        assert_eq!(state, before, "304 must keep the state");

        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert!(seen[0].get(header::IF_NONE_MATCH).is_none());
        assert_eq!(seen[1][header::IF_NONE_MATCH], "\"v1\"");
        assert_eq!(
            seen[1][header::IF_MODIFIED_SINCE],
            "Tue, 07 May 2024 10:00:00 GMT"
        );
        let ua = seen[0][header::USER_AGENT].to_str().unwrap();
        assert!(
            ua.starts_with("mentiondesk/") && ua.contains("(+https://github.com/mentiondesk)"),
            "{ua}"
        );
    }

    #[tokio::test]
    async fn an_unchanged_body_without_validators_yields_nothing_the_second_time() {
        let addr = serve(feeds()).await;
        let mut source = RssSource::new(&rss_spec(&format!("http://{addr}/rss2"))).unwrap();
        let mut state = SourceState::default();
        assert_eq!(source.poll(&mut state).await.unwrap().len(), 1);
        assert!(state.cursor.is_some());
        assert!(source.poll(&mut state).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn gzip_bomb_is_cut_off_at_the_cap() {
        let addr = serve(feeds()).await;
        let fetcher = Fetcher::new(&rss_spec("unused").common).unwrap();
        let started = Instant::now();
        let err = fetcher
            .fetch(&format!("http://{addr}/bomb"), &SourceState::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, SourceError::TooLarge { limit: 1048576 }),
            "{err:?}"
        );
        assert!(err.to_string().contains("max_body_bytes"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_plain_body_over_the_cap_is_too_large() {
        let addr = serve(feeds()).await;
        let err = poll_url(&format!("http://{addr}/big")).await.unwrap_err();
        assert!(matches!(err, SourceError::TooLarge { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn a_body_under_the_cap_is_returned_whole_with_validators() {
        let addr = serve(feeds()).await;
        let fetcher = Fetcher::new(&rss_spec("unused").common).unwrap();
        match fetcher
            .fetch(&format!("http://{addr}/rss2"), &SourceState::default())
            .await
            .unwrap()
        {
            Fetched::Body {
                bytes,
                etag,
                last_modified,
            } => {
                assert_eq!(bytes, RSS2.as_bytes());
                assert_eq!((etag, last_modified), (None, None));
            }
            other => panic!("expected a body, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn server_errors_become_status_errors_with_retry_after() {
        let addr = serve(feeds()).await;
        let err = poll_url(&format!("http://{addr}/e500")).await.unwrap_err();
        assert!(
            matches!(
                err,
                SourceError::Status {
                    status: 500,
                    retry_after: None
                }
            ),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "server answered HTTP 500");

        let err = poll_url(&format!("http://{addr}/e429")).await.unwrap_err();
        assert!(
            matches!(err, SourceError::Status { status: 429, .. }),
            "{err:?}"
        );
        assert_eq!(err.retry_after(), Some(Duration::from_secs(120)));

        let err = poll_url(&format!("http://{addr}/e503date"))
            .await
            .unwrap_err();
        assert!(
            err.retry_after().unwrap() > Duration::from_secs(365 * 24 * 3600),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_stalled_server_times_out() {
        let addr = serve(feeds()).await;
        let mut spec = rss_spec(&format!("http://{addr}/stall"));
        spec.common.timeout = Duration::from_millis(300);
        let mut source = RssSource::new(&spec).unwrap();
        let started = Instant::now();
        let err = source.poll(&mut SourceState::default()).await.unwrap_err();
        assert!(matches!(err, SourceError::Timeout(_)), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[tokio::test]
    async fn a_body_that_stalls_midway_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = tokio::io::AsyncReadExt::read(&mut sock, &mut buf).await;
            let _ = sock
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n\r\n<rss version=\"2.0\">")
                .await;
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        let mut spec = rss_spec(&format!("http://{addr}/"));
        spec.common.timeout = Duration::from_millis(300);
        let started = Instant::now();
        let err = RssSource::new(&spec)
            .unwrap()
            .poll(&mut SourceState::default())
            .await
            .unwrap_err();
        assert!(matches!(err, SourceError::Timeout(_)), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[tokio::test]
    async fn malformed_xml_is_a_parse_error_and_keeps_the_state() {
        let addr = serve(feeds()).await;
        let mut source = RssSource::new(&rss_spec(&format!("http://{addr}/broken"))).unwrap();
        let mut state = SourceState::default();
        let err = source.poll(&mut state).await.unwrap_err();
        match &err {
            SourceError::Parse(msg) => {
                assert!(msg.contains("XML") && msg.contains("titel"), "{msg}")
            }
            other => panic!("expected a parse error, got {other:?}"),
        }
        assert_eq!(state, SourceState::default());
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_network_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err = poll_url(&format!("http://{addr}/feed")).await.unwrap_err();
        assert!(matches!(err, SourceError::Network(_)), "{err:?}");
    }

    fn counting_router(hits: Arc<AtomicUsize>) -> Router {
        Router::new().route(
            "/feed",
            get(move || {
                hits.fetch_add(1, Ordering::SeqCst);
                async { RSS2 }
            }),
        )
    }

    #[tokio::test]
    async fn private_addresses_are_refused_unless_allowed() {
        let hits = Arc::new(AtomicUsize::new(0));
        let addr = serve(counting_router(hits.clone())).await;
        let port = addr.port();

        for url in [
            format!("http://127.0.0.1:{port}/feed"),
            format!("http://localhost:{port}/feed"),
            format!("http://admin:hunter2@127.0.0.1:{port}/feed?token=s3cret"),
        ] {
            let mut spec = rss_spec(&url);
            spec.common.allow_private = false;
            let err = RssSource::new(&spec)
                .unwrap()
                .poll(&mut SourceState::default())
                .await
                .unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, SourceError::Refused { .. }), "{url}: {err:?}");
            assert!(msg.contains("allow_private = true"), "{msg}");
            assert!(
                !msg.contains("hunter2") && !msg.contains("s3cret"),
                "credentials leaked: {msg}"
            );
        }
        assert_eq!(
            hits.load(Ordering::SeqCst),
            0,
            "no request may reach a refused address"
        );

        let mut spec = rss_spec(&format!("http://127.0.0.1:{port}/feed"));
        spec.common.allow_private = true;
        let got = RssSource::new(&spec)
            .unwrap()
            .poll(&mut SourceState::default())
            .await
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    /// A feed on a public-looking host that redirects to a private address is refused on the
    /// redirect hop, and the private target never sees a request. `public.test` is pinned to
    /// the fake on 127.0.0.1 for this test only (treated as public); every redirect target is
    /// on 127.0.0.1, so nothing leaves the machine even if the guard regressed.
    #[tokio::test]
    async fn a_redirect_from_a_public_host_to_a_private_address_is_refused() {
        let private_hits = Arc::new(AtomicUsize::new(0));
        let private = serve(counting_router(private_hits.clone())).await;
        let pport = private.port();
        let redirect_to = Arc::new(Mutex::new(String::new()));
        let public_hits = Arc::new(AtomicUsize::new(0));
        let public = {
            let target = redirect_to.clone();
            let hits = public_hits.clone();
            serve(
                Router::new()
                    .route(
                        "/feed",
                        get(move || {
                            hits.fetch_add(1, Ordering::SeqCst);
                            let to = target.lock().unwrap().clone();
                            async move { (StatusCode::FOUND, [(header::LOCATION, to)]) }
                        }),
                    )
                    .route("/plain", get(|| async { RSS2 })),
            )
            .await
        };
        let feed_url = format!("http://public.test:{}/feed", public.port());
        let mut spec = rss_spec(&feed_url);
        spec.common.allow_private = false;
        let pinned = [("public.test", SocketAddr::new([127, 0, 0, 1].into(), 0))];
        let source = |spec: &crate::sources::rss::RssConfig| {
            RssSource::with_fetcher(
                spec,
                Fetcher::with_pinned_hosts(&spec.common, &pinned).unwrap(),
            )
            .unwrap()
        };

        // The pinned host really is treated as public: a plain fetch succeeds.
        let mut plain = spec.clone();
        plain.url = format!("http://public.test:{}/plain", public.port());
        let got = source(&plain)
            .poll(&mut SourceState::default())
            .await
            .unwrap();
        assert_eq!(got.len(), 1);

        for (i, target) in [
            format!("http://127.0.0.1:{pport}/feed"),
            format!("http://localhost:{pport}/feed"),
            // Other private ranges (10/8, 169.254/16, ...) are covered without a server by
            // `private_ranges_are_refused_and_public_ones_allowed`: redirecting there here
            // would send traffic off 127.0.0.1 if the guard ever regressed.
            format!("http://[::ffff:127.0.0.1]:{pport}/feed"),
        ]
        .into_iter()
        .enumerate()
        {
            *redirect_to.lock().unwrap() = target.clone();
            let err = source(&spec)
                .poll(&mut SourceState::default())
                .await
                .unwrap_err();
            assert!(
                matches!(err, SourceError::Refused { .. }),
                "{target}: {err:?}"
            );
            assert!(err.to_string().contains("allow_private = true"), "{err}");
            assert_eq!(
                public_hits.load(Ordering::SeqCst),
                i + 1,
                "the public host was asked"
            );
        }
        assert_eq!(
            private_hits.load(Ordering::SeqCst),
            0,
            "no request may reach the private target"
        );

        // The same redirect is followed when the source allows private addresses.
        *redirect_to.lock().unwrap() = format!("http://127.0.0.1:{pport}/feed");
        spec.common.allow_private = true;
        let got = source(&spec)
            .poll(&mut SourceState::default())
            .await
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(private_hits.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn rss_without_url_is_a_config_error() {
        let mut spec = rss_spec("x");
        spec.url = String::new();
        let err = crate::sources::build(&crate::sources::SourceConfig::Rss(spec.clone()))
            .err()
            .unwrap();
        assert!(err.to_string().contains("needs url"), "{err}");
        let mastodon = crate::sources::mastodon::MastodonConfig {
            common: spec.common,
            instances: Vec::new(),
            tags: Vec::new(),
            token: None,
            stream: false,
        };
        let err = crate::sources::build(&crate::sources::SourceConfig::Mastodon(mastodon))
            .err()
            .unwrap();
        assert!(err.to_string().contains("needs instances"), "{err}");
    }
}

mod file_source {
    use super::helpers::file_spec;
    use crate::sources::file::FileSource;
    use crate::sources::{Source, SourceError, SourceState};
    use std::path::Path;

    fn write(path: &Path, content: &str) {
        std::fs::write(path, content).unwrap();
    }

    #[tokio::test]
    async fn json_lines_load_skip_bad_lines_and_reload_only_when_changed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mentions.jsonl");
        write(
        &path,
        "{\"id\":\"1\",\"text\":\"acme is great\",\"author\":\"bo\",\"url\":\"https://x.test/1\"}\n\
         {oops\n\
         {\"text\":\"acme without id\"}\n",
    );
        let mut source = FileSource::new(&file_spec(path.clone())).unwrap();
        let mut state = SourceState::default();

        let first = source.poll(&mut state).await.unwrap();
        assert_eq!(first.len(), 2, "the bad line is skipped, the rest load");
        assert_eq!(first[0].item_id, "1");
        assert_eq!(first[0].author.as_deref(), Some("bo"));
        assert_eq!(first[0].source, "local");
        assert_eq!(first[0].source_kind, "file");
        assert!(state.cursor.is_some());

        let unchanged = source.poll(&mut state).await.unwrap();
        assert!(unchanged.is_empty(), "an unchanged file yields nothing");

        // Append a line: length changes, so the file is read again.
        let mut content = std::fs::read_to_string(&path).unwrap();
        content.push_str("{\"id\":\"3\",\"text\":\"acme again\"}\n");
        write(&path, &content);
        let again = source.poll(&mut state).await.unwrap();
        assert_eq!(again.len(), 3);
        assert_eq!(
            again[1].item_id, first[1].item_id,
            "derived ids are stable across reads"
        );
        assert_eq!(again[2].item_id, "3");
    }

    #[tokio::test]
    async fn a_feed_file_is_parsed_like_an_rss_source() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("feed.xml");
        write(
            &path,
            r#"<rss version="2.0"><channel><title>t</title><language>en</language>
        <item><title>Acme &lt;b&gt;bold&lt;/b&gt;</title><link>https://x.test/a</link>
        <description>&lt;p&gt;hello&lt;/p&gt;</description></item></channel></rss>"#,
        );
        let mut source = FileSource::new(&file_spec(path)).unwrap();
        let got = source.poll(&mut SourceState::default()).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].text, "hello");
        assert_eq!(got[0].source_kind, "file");
        assert_eq!(got[0].url.as_deref(), Some("https://x.test/a"));
        assert_eq!(got[0].lang.as_deref(), Some("en"));
    }

    #[tokio::test]
    async fn content_decides_the_format_when_the_extension_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let lines = dir.path().join("mentions.txt");
        write(&lines, "\n  {\"id\":\"x\",\"text\":\"acme\"}\n");
        let got = FileSource::new(&file_spec(lines))
            .unwrap()
            .poll(&mut SourceState::default())
            .await
            .unwrap();
        assert_eq!(got[0].item_id, "x");

        let json_feed = dir.path().join("feed.json");
        write(
        &json_feed,
        "{\n  \"version\": \"https://jsonfeed.org/version/1.1\",\n  \"title\": \"j\",\n  \"items\": [{\"id\": \"j1\", \"content_text\": \"acme\"}]\n}\n",
    );
        let got = FileSource::new(&file_spec(json_feed))
            .unwrap()
            .poll(&mut SourceState::default())
            .await
            .unwrap();
        assert_eq!(got[0].item_id, "j1");
        assert_eq!(got[0].text, "acme");
    }

    #[tokio::test]
    async fn a_file_over_the_cap_is_too_large_and_a_missing_file_names_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.jsonl");
        write(&path, &"x".repeat(2048));
        let mut spec = file_spec(path);
        spec.common.max_body_bytes = 1024;
        let err = FileSource::new(&spec)
            .unwrap()
            .poll(&mut SourceState::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, SourceError::TooLarge { limit: 1024 }),
            "{err:?}"
        );

        let missing = dir.path().join("nope.jsonl");
        let mut state = SourceState::default();
        let err = FileSource::new(&file_spec(missing))
            .unwrap()
            .poll(&mut state)
            .await
            .unwrap_err();
        assert!(matches!(err, SourceError::Io(_)), "{err:?}");
        assert!(err.to_string().contains("nope.jsonl"), "{err}");
        assert_eq!(state, SourceState::default());
    }

    #[tokio::test]
    async fn a_broken_feed_file_is_a_parse_error_and_is_retried() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("feed.xml");
        write(&path, "<rss version=\"2.0\"><channel><item></chanel>");
        let mut source = FileSource::new(&file_spec(path)).unwrap();
        let mut state = SourceState::default();
        assert!(matches!(
            source.poll(&mut state).await,
            Err(SourceError::Parse(_))
        ));
        assert!(
            state.cursor.is_none(),
            "a failed read must not be remembered as seen"
        );
    }

    #[test]
    fn file_without_path_is_a_config_error() {
        let mut spec = file_spec("x".into());
        spec.path = std::path::PathBuf::new();
        let err = crate::sources::build(&crate::sources::SourceConfig::File(spec))
            .err()
            .unwrap();
        assert!(err.to_string().contains("needs path"), "{err}");
    }
}

pub(crate) mod helpers {

    use crate::sources::config::Common;
    use crate::sources::file::FileConfig;
    use crate::sources::rss::RssConfig;
    use std::net::SocketAddr;
    use std::path::PathBuf;
    use std::time::Duration;

    /// Serves `router` on 127.0.0.1 with an OS-chosen port (never any other address).
    pub(crate) async fn serve(router: axum::Router) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        addr
    }

    pub(crate) fn rss_spec(url: &str) -> RssConfig {
        RssConfig {
            common: Common {
                timeout: Duration::from_secs(5),
                max_body_bytes: 1024 * 1024,
                allow_private: true,
                ..Common::new("feed", Duration::from_secs(60))
            },
            url: url.to_string(),
        }
    }

    pub(crate) fn file_spec(path: PathBuf) -> FileConfig {
        FileConfig {
            common: Common {
                timeout: Duration::from_secs(5),
                max_body_bytes: 1024 * 1024,
                allow_private: false,
                ..Common::new("local", Duration::from_secs(60))
            },
            path,
        }
    }

    /// `bytes` of zeros, gzip-compressed: a few KB that inflate to `bytes`.
    pub(crate) fn gzip_zeros(bytes: usize) -> Vec<u8> {
        use flate2::write::GzEncoder;
        use std::io::Write;
        let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::best());
        let block = vec![0u8; 1 << 20];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(block.len());
            enc.write_all(&block[..n]).unwrap();
            left -= n;
        }
        enc.finish().unwrap()
    }
}

/// The one HTML-to-text path, on snippets shaped like what each source really sends.
mod html_to_text {
    use crate::sources::html::{decode_entities, html_to_text, plain_text};

    #[test]
    fn markup_becomes_readable_text() {
        let cases = [
            (
                "<p>Hello <b>Acme</b> &amp; co</p><p>next</p>",
                "Hello Acme & co next",
            ),
            ("line one<br>line two<br/>three", "line one line two three"),
            ("x<script>alert('acme')</script>y", "xy"),
            ("x<STYLE>p{}</STYLE>y<noscript>no js</noscript>", "xy"),
            ("<!-- acme --> visible", "visible"),
            ("<?xml version=\"1.0\"?><p>x</p>", "x"),
            ("<!DOCTYPE html><p>x</p>", "x"),
            (
                "  lots \n\n of\tspace&nbsp;&nbsp; here ",
                "lots of space here",
            ),
            // A quoted attribute may hold '>'.
            (
                "<a title=\"a > b\" href=\"https://x.example/\">link text</a> after",
                "link text after",
            ),
            (
                "<p>She said <q>never again</q>.</p>",
                "She said “never again”.",
            ),
            // CDATA is literal text.
            ("a <![CDATA[1 < 2 &amp; 3]]> b", "a 1 < 2 &amp; 3 b"),
            (
                "<figure><img src=\"r.jpg\" alt=\"\"></figure>caption",
                "caption",
            ),
        ];
        for (html, want) in cases {
            assert_eq!(html_to_text(html), want, "input {html:?}");
        }
    }

    #[test]
    fn text_that_only_looks_like_markup_stays() {
        let cases = [
            ("1 < 2 and 3 > 2", "1 < 2 and 3 > 2"),
            ("1 <2 and 3> 2", "1 <2 and 3> 2"),
            ("unclosed <a href=", "unclosed <a href="),
            (
                "a <b title=\"x>y never closed",
                "a <b title=\"x>y never closed",
            ),
            ("ends in a tag name <b", "ends in a tag name <b"),
            // Chat tokens stay visible for the chat layer to escape.
            (
                "<!channel> <@U123> <!here> hi",
                "<!channel> <@U123> <!here> hi",
            ),
        ];
        for (html, want) in cases {
            assert_eq!(html_to_text(html), want, "input {html:?}");
        }
        // Thousands of unclosed tags are text, read in one pass.
        let unclosed = "<a \"".repeat(50_000);
        assert_eq!(html_to_text(&unclosed), unclosed);
        assert_eq!(
            plain_text("Vec<String> is <acme> &lt;!channel&gt;"),
            "Vec<String> is <acme> <!channel>"
        );
    }

    #[test]
    fn entities_named_decimal_hex_and_windows_1252() {
        assert_eq!(
            decode_entities(
                "it&#39;s &#x263A; &#X263a; &rsquo;n&hellip; &eacute;&Eacute;&szlig;&mdash;&euro; &frac12;"
            ),
            "it's ☺ ☺ ’n… éÉß—€ ½"
        );
        // Old feeds write Windows-1252 bytes as numeric references.
        assert_eq!(decode_entities("don&#146;t &#147;x&#148;"), "don’t “x”");
        // Unknown or malformed references stay as written.
        assert_eq!(
            decode_entities("AT&T &bogus; &#xZZ; &#; & &amp"),
            "AT&T &bogus; &#xZZ; &#; & &amp"
        );
        assert_eq!(decode_entities("&#0;"), "&#0;");
    }

    /// RSS descriptions are often escaped twice: after XML decoding the HTML is still escaped.
    #[test]
    fn html_escaped_twice_is_stripped_too() {
        assert_eq!(
            html_to_text(
                "&lt;p&gt;Acme &lt;q&gt;broke&lt;/q&gt; my order &amp;amp; refund&lt;/p&gt;"
            ),
            "Acme “broke” my order & refund"
        );
        // RSS 1.0 descriptions and RSS 2.0 titles arrive as "plain" text holding HTML.
        assert_eq!(
            plain_text("the most &lt;q&gt;exciting&lt;/q&gt; toolkits"),
            "the most “exciting” toolkits"
        );
        assert_eq!(plain_text("<b>Acme</b> recall"), "Acme recall");
    }

    /// Mastodon statuses (docs.joinmastodon.org/entities/Status/#content): hashtags as links
    /// with spans, long links split into invisible/ellipsis spans holding the full URL.
    #[test]
    fn mastodon_status_content() {
        let html = r#"<p>My <a href="https://mastodon.social/tags/acme" class="mention hashtag" rel="tag">#<span>acme</span></a> router died <a href="https://www.youtube.com/watch?v=V5lDq0xqD2E" target="_blank" rel="nofollow noopener noreferrer" translate="no"><span class="invisible">https://www.</span><span class="ellipsis">youtube.com/watch?v=V5lDq0</span><span class="invisible">xqD2E</span></a></p><p>cc <span class="h-card" translate="no"><a href="https://mastodon.social/@acme" class="u-url mention">@<span>acme</span></a></span></p>"#;
        assert_eq!(
            html_to_text(html),
            "My #acme router died https://www.youtube.com/watch?v=V5lDq0xqD2E cc @acme"
        );
    }

    /// Hacker News (Algolia `comment_text`): entities for '/' and quotes, `<p>` between
    /// paragraphs, long links cut to "…..." in their text; the full URL is kept for rules.
    #[test]
    fn hacker_news_comment_text() {
        let html = "It&#x27;s broken: <a href=\"https:&#x2F;&#x2F;example.com&#x2F;support&#x2F;acme-router-recall-2024-details\" rel=\"nofollow\">https:&#x2F;&#x2F;example.com&#x2F;support&#x2F;acme-route...</a><p>Second &quot;paragraph&quot;";
        assert_eq!(
            html_to_text(html),
            "It's broken: https://example.com/support/acme-router-recall-2024-details Second \"paragraph\""
        );
        // Link text that is not a cut URL is kept as written.
        assert_eq!(
            html_to_text("<a href=\"https://acme.example/\">their site...</a>"),
            "their site..."
        );
    }
}
