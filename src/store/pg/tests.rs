//! Against a real PostgreSQL: the throwaway cluster of `throwaway.rs` (these tests skip, with
//! one printed line, where the server binaries are not installed).

use super::throwaway::{self, TestDatabase};
use super::*;
use crate::store::config::PgConfig;

async fn fresh() -> Option<TestDatabase> {
    throwaway::database().await
}

/// A plain connection to `db` for looking at what the store did.
async fn look(db: &TestDatabase) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&db.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

/// Replicas that start at the same moment on an empty database apply the schema once: one
/// of them migrates, the others wait for its lock and find the schema in place; every table
/// of the schema is there and `schema_migrations` has one row per version.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_replicas_starting_at_once_apply_the_migrations_once() {
    let Some(db) = fresh().await else { return };
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let config = db.config();
            tokio::spawn(async move { PgStore::connect_reporting(&config).await })
        })
        .collect();
    let mut applied = Vec::new();
    for s in starts {
        let (store, migrated) = s.await.unwrap().expect("every replica starts");
        assert_eq!(store.schema_version(), SCHEMA_VERSION);
        assert_eq!(migrated.version, SCHEMA_VERSION);
        applied.push(migrated.applied);
    }
    let expected: Vec<i32> = (1..=SCHEMA_VERSION).collect();
    assert_eq!(
        applied.iter().filter(|a| **a == expected).count(),
        1,
        "exactly one replica migrated: {applied:?}"
    );
    assert_eq!(
        applied.iter().filter(|a| a.is_empty()).count(),
        3,
        "{applied:?}"
    );

    let client = look(&db).await;
    let rows: i64 = client
        .query_one("SELECT count(*) FROM schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, i64::from(SCHEMA_VERSION));
    let tables: Vec<String> = client
        .query(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = 'public' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for t in [
        "alerts",
        "audit",
        "counters",
        "labels",
        "mention_log",
        "mentions",
        "message_refs",
        "meta",
        "mutes",
        "outbox",
        "relevance_features",
        "relevance_models",
        "requests",
        "rule_log",
        "schema_migrations",
        "seen",
        "source_state",
        "threads",
        "timers",
    ] {
        assert!(
            tables.iter().any(|n| n == t),
            "table {t} missing: {tables:?}"
        );
    }
}

/// A restart finds the schema current: it applies nothing and what was stored stays.
#[tokio::test]
async fn reconnecting_to_a_current_database_changes_nothing() {
    let Some(db) = fresh().await else { return };
    let (store, first) = PgStore::connect_reporting(&db.config()).await.unwrap();
    assert_eq!(first.from, 0);
    assert_eq!(first.applied, (1..=SCHEMA_VERSION).collect::<Vec<_>>());
    let client = store.client().await.unwrap();
    client
        .execute(
            "INSERT INTO meta (key, value) VALUES ('digest:daily', '\"2026-12-01\"')",
            &[],
        )
        .await
        .unwrap();
    drop(client);
    drop(store);

    let (_store, again) = PgStore::connect_reporting(&db.config()).await.unwrap();
    assert_eq!(again.from, SCHEMA_VERSION);
    assert!(again.applied.is_empty(), "{again:?}");
    let value: serde_json::Value = look(&db)
        .await
        .query_one("SELECT value FROM meta WHERE key = 'digest:daily'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(value, serde_json::json!("2026-12-01"));
}

/// A database a newer mentiondesk migrated is refused, naming both versions and the fix;
/// `check --online` says the same.
#[tokio::test]
async fn a_database_newer_than_the_binary_is_refused_with_both_versions() {
    let Some(db) = fresh().await else { return };
    drop(PgStore::connect(&db.config()).await.unwrap());
    let future = SCHEMA_VERSION + 1;
    look(&db)
        .await
        .execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, 'from the future')",
            &[&future],
        )
        .await
        .unwrap();

    let e = PgStore::connect(&db.config()).await.unwrap_err();
    assert!(
        matches!(e, StoreError::SchemaTooNew { database, binary } if database == future && binary == SCHEMA_VERSION),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(text.contains(&format!("version {future}")), "{text}");
    assert!(
        text.contains(&format!("(version {SCHEMA_VERSION})")),
        "{text}"
    );
    assert!(text.contains("upgrade mentiondesk"), "{text}");

    let facts = PgStore::check_online(&db.config()).await.unwrap();
    assert_eq!(facts.schema_version, future);
    assert_eq!(facts.summary().unwrap_err(), text);
}

/// `check --online` reports the server and the schema without migrating anything.
#[tokio::test]
async fn the_online_check_reports_server_and_schema_without_migrating() {
    let Some(db) = fresh().await else { return };
    let facts = PgStore::check_online(&db.config()).await.unwrap();
    assert_eq!(facts.schema_version, 0);
    assert!(!facts.tls);
    assert!(!facts.server_version.is_empty());
    let line = facts.summary().unwrap();
    assert!(line.contains("empty database"), "{line}");
    assert!(line.contains(&db.name), "{line}");
    let exists: bool = look(&db)
        .await
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!exists, "the check created nothing");

    drop(PgStore::connect(&db.config()).await.unwrap());
    let line = PgStore::check_online(&db.config())
        .await
        .unwrap()
        .summary()
        .unwrap();
    assert!(
        line.contains(&format!("schema version {SCHEMA_VERSION} (current)")),
        "{line}"
    );
}

/// `tls = "require"` is honoured: the throwaway server has no TLS, so the connection is
/// refused instead of falling back to plain text; `prefer`, and a URL without `sslmode`
/// (libpq's default, prefer), fall back and connect.
#[tokio::test]
async fn tls_require_refuses_a_server_without_tls_and_prefer_falls_back() {
    let Some(db) = fresh().await else { return };
    let mut config = db.config();
    config.tls = Some(TlsMode::Prefer);
    PgStore::connect(&config).await.expect("prefer falls back");
    config.tls = None;
    let facts = PgStore::check_online(&config).await.unwrap();
    assert!(!facts.tls);
    config.url = PgUrl::new(format!("{}?sslmode=require", db.url()));
    let e = PgStore::connect(&config).await.unwrap_err();
    assert!(
        e.to_string().contains("TLS"),
        "the URL's sslmode counts: {e}"
    );
    config.url = PgUrl::new(db.url());
    config.tls = Some(TlsMode::Require);
    let e = PgStore::connect(&config).await.unwrap_err();
    assert!(matches!(e, StoreError::PgConnect { .. }), "{e:?}");
    assert!(e.to_string().contains("TLS"), "{e}");
}

/// The URL's password never shows: not in `Debug` of the config or the store, not in the
/// error of a failed connection, whether no server answers or the server refuses.
#[tokio::test]
async fn a_password_in_the_url_never_shows_in_errors_or_debug() {
    const PASSWORD: &str = "hunter2-s3cret";
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Nothing listens on `port` now.
    let mut config = PgConfig::new(format!(
        "postgres://mentiondesk:{PASSWORD}@127.0.0.1:{port}/desk"
    ));
    config.tls = Some(TlsMode::Disable);
    let debug = format!("{config:?}");
    assert!(!debug.contains(PASSWORD), "{debug}");
    assert!(debug.contains("mentiondesk:***@127.0.0.1"), "{debug}");
    let e = PgStore::connect(&config).await.unwrap_err();
    for shown in [e.to_string(), format!("{e:?}")] {
        assert!(!shown.contains(PASSWORD), "{shown}");
        assert!(shown.contains("***"), "{shown}");
    }
    assert!(
        e.to_string().contains("cannot connect to PostgreSQL"),
        "{e}"
    );

    let Some(db) = fresh().await else { return };
    // The server answers and refuses: no such database. Also a password with characters a
    // URL escapes, which must not show decoded either.
    for (password, written) in [(PASSWORD, PASSWORD), ("p@ss:w/rd-7", "p%40ss%3Aw%2Frd-7")] {
        let mut config = PgConfig::new(format!(
            "postgres://postgres:{written}@127.0.0.1:{}/{}_missing",
            db.port, db.name
        ));
        config.tls = Some(TlsMode::Disable);
        let e = PgStore::connect(&config).await.unwrap_err();
        let shown = format!("{e} {e:?} {config:?}");
        assert!(!shown.contains(password), "{shown}");
        assert!(!shown.contains(written), "{shown}");
        assert!(
            shown.contains("does not exist"),
            "the server's reason shows: {shown}"
        );
        let store = PgStore::connect(&db.config()).await.unwrap();
        assert!(!format!("{store:?}").contains(password));
    }
}

/// The throwaway cluster listens on 127.0.0.1 only, runs with its test-only settings, and
/// never as root (PostgreSQL refuses root; the harness hands it to the `postgres` user).
#[tokio::test]
async fn the_throwaway_cluster_is_local_fast_and_not_root() {
    let Some(db) = fresh().await else { return };
    let client = look(&db).await;
    for (setting, expected) in [
        ("listen_addresses", "127.0.0.1"),
        ("fsync", "off"),
        ("synchronous_commit", "off"),
    ] {
        let value: String = client
            .query_one(&format!("SHOW {setting}"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(value, expected, "{setting}");
    }
    let cluster = throwaway::cluster().expect("running");
    let pidfile = std::fs::read_to_string(cluster.dir().join("data/postmaster.pid")).unwrap();
    let pid = pidfile.lines().next().unwrap().trim();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap();
    assert_ne!(uid, "0", "the server runs as root");
}
