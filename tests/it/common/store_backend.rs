//! Which store backend the daemons of the integration tests use: sled (the default), or
//! PostgreSQL when `MENTIONDESK_TEST_STORE=postgres`, so the same end-to-end tests run against
//! both (issue 17). [`super::ConfigBuilder::new`] asks [`TestStore::from_env`] and writes
//! `[store]` accordingly; with PostgreSQL each builder gets a fresh database of the test
//! process's throwaway cluster (`mentiondesk::store::pg::throwaway`), so a daemon restarted
//! from the same config text finds its store again, as it does in its sled directory.
//!
//! CI runs the `it` suite a second time with the variable set (README, "Development").

use mentiondesk::store::pg::throwaway;

/// The environment variable that picks the backend: unset or `sled`, or `postgres`.
pub const VAR: &str = "MENTIONDESK_TEST_STORE";

/// The store backend the tests' daemons use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestStore {
    Sled,
    Postgres,
}

impl TestStore {
    /// The backend `MENTIONDESK_TEST_STORE` names; panics on any other value, so a typo can
    /// never run the whole suite on sled while claiming PostgreSQL.
    pub fn from_env() -> TestStore {
        TestStore::parse(std::env::var(VAR).ok().as_deref())
    }

    /// [`TestStore::from_env`] on a value already read.
    pub fn parse(value: Option<&str>) -> TestStore {
        match value {
            None | Some("") | Some("sled") => TestStore::Sled,
            Some("postgres") => TestStore::Postgres,
            Some(other) => panic!("{VAR}={other:?}: write {VAR}=postgres, or sled (the default)"),
        }
    }
}

/// The URL of a fresh database in this test process's throwaway PostgreSQL cluster (started
/// on first use). Callable from async tests: the database is created on a thread of its own.
/// Panics when the server binaries are missing: a run that asked for PostgreSQL must not
/// quietly test sled.
pub fn fresh_database_url() -> String {
    std::thread::spawn(|| {
        let cluster = throwaway::cluster().unwrap_or_else(|| {
            panic!("{VAR}=postgres needs the PostgreSQL server binaries (initdb, postgres); install them with `apt-get install postgresql`")
        });
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime to create the test database")
            .block_on(cluster.database())
            .url()
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::{ConfigBuilder, FakeSlack};
    use std::path::Path;

    /// A config as the tests write it: the builder for `store` with the fake Slack, a feed
    /// and a rule, written to `dir` and read back with the daemon's own parser.
    async fn written(
        builder: &ConfigBuilder,
        dir: &Path,
    ) -> (String, mentiondesk::settings::Config) {
        let (path, _port) = builder.write(dir, "mentiondesk.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let config = mentiondesk::settings::parse(&text, &path, &|_| None)
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        (text, config)
    }

    fn builder(store: TestStore, slack: &FakeSlack) -> ConfigBuilder {
        ConfigBuilder::for_store(store)
            .slack(slack)
            .rss("feed", "http://127.0.0.1:9/feed.xml")
            .rule("acme", "acme", &["slack:#pr"])
    }

    #[test]
    fn the_variable_picks_the_backend_and_refuses_a_typo() {
        assert_eq!(TestStore::parse(None), TestStore::Sled);
        assert_eq!(TestStore::parse(Some("")), TestStore::Sled);
        assert_eq!(TestStore::parse(Some("sled")), TestStore::Sled);
        assert_eq!(TestStore::parse(Some("postgres")), TestStore::Postgres);
        let typo = std::panic::catch_unwind(|| TestStore::parse(Some("postgresql")));
        let message = typo.unwrap_err();
        let message = message
            .downcast_ref::<String>()
            .expect("a formatted panic message");
        assert!(
            message.contains("MENTIONDESK_TEST_STORE=postgres"),
            "{message}"
        );
    }

    /// sled (the default): the store in the test's directory, no PostgreSQL keys.
    #[tokio::test]
    async fn the_sled_builder_keeps_the_store_in_the_test_directory() {
        let slack = FakeSlack::start().await;
        let dir = tempfile::tempdir().unwrap();
        let (text, config) = written(&builder(TestStore::Sled, &slack), dir.path()).await;
        assert!(!text.contains("backend"), "{text}");
        assert!(config.store.postgres().is_none());
        assert_eq!(config.store.path, dir.path().join("store"));
    }

    /// PostgreSQL: `[store]` names the backend and a fresh database the daemon can migrate
    /// and use; each builder gets its own database; writing the same builder again (a
    /// restart) keeps it.
    #[tokio::test]
    async fn the_postgres_builder_writes_a_fresh_database_per_builder() {
        if throwaway::cluster().is_none() {
            return; // Skipped with the one line `throwaway` printed.
        }
        let slack = FakeSlack::start().await;
        let dir = tempfile::tempdir().unwrap();
        let first = builder(TestStore::Postgres, &slack);
        let (text, config) = written(&first, dir.path()).await;
        assert!(text.contains("backend = \"postgres\""), "{text}");
        assert!(text.contains("tls = \"disable\""), "{text}");
        let pg = config.store.postgres().expect("the postgres backend");
        assert_eq!(pg.pool_size, 4);
        let url = pg.url.redacted();
        assert!(url.starts_with("postgres://postgres@127.0.0.1:"), "{url}");
        let store = mentiondesk::store::pg::PgStore::connect(pg)
            .await
            .expect("the daemon can migrate and use the database");
        assert_eq!(
            store.schema_version(),
            mentiondesk::store::pg::SCHEMA_VERSION
        );

        let (_, again) = written(&first, dir.path()).await;
        assert_eq!(
            again.store.postgres().unwrap().url.redacted(),
            url,
            "a restart from the same config finds the same database"
        );
        let other_dir = tempfile::tempdir().unwrap();
        let (_, other) = written(&builder(TestStore::Postgres, &slack), other_dir.path()).await;
        let other_url = other.store.postgres().unwrap().url.redacted();
        assert_ne!(other_url, url, "another builder, another database");
        let (_, fresh) =
            mentiondesk::store::pg::PgStore::connect_reporting(other.store.postgres().unwrap())
                .await
                .unwrap();
        assert_eq!(fresh.from, 0, "the other database starts empty");
    }
}
