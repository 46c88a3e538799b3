//! The schema, embedded in the binary as numbered SQL files (`migrations/NNNN_name.sql`) and
//! applied at start: in one transaction, under a transaction-scoped advisory lock, so any
//! number of replicas starting at once apply each migration exactly once and none of them
//! sees a half-migrated database. Each applied migration is a row in `schema_migrations`.

use super::{query_error, PgUrl, StoreError};
use tokio_postgres::GenericClient;

/// One schema change, in the order applied.
struct Migration {
    version: i32,
    name: &'static str,
    sql: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("migrations/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "outbox_notify",
        sql: include_str!("migrations/0002_outbox_notify.sql"),
    },
    Migration {
        version: 3,
        name: "source_next_poll",
        sql: include_str!("migrations/0003_source_next_poll.sql"),
    },
];

/// The schema version this binary brings the database to.
pub const SCHEMA_VERSION: i32 = MIGRATIONS[MIGRATIONS.len() - 1].version;

/// The advisory lock key every mentiondesk replica takes while migrating (the bytes of
/// "mentiond"): one key for the whole database, held until the migrating transaction ends.
const LOCK_KEY: i64 = 0x6d65_6e74_696f_6e64;

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)";

/// What a start found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrated {
    /// The version the database was at before (0: empty).
    pub from: i32,
    /// The version it is at now ([`SCHEMA_VERSION`]).
    pub version: i32,
    /// The migrations this start applied (empty when another replica, or an earlier start,
    /// already had).
    pub applied: Vec<i32>,
}

/// Brings the database to [`SCHEMA_VERSION`], or refuses one that a newer binary migrated.
pub(super) async fn migrate(
    client: &mut tokio_postgres::Client,
    url: &PgUrl,
) -> Result<Migrated, StoreError> {
    let err = |what| move |e| query_error(url, what, e);
    let tx = client
        .transaction()
        .await
        .map_err(err("starting the migration"))?;
    // Waits for a replica that is migrating right now; released at commit or rollback.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await
        .map_err(err("taking the migration lock"))?;
    tx.batch_execute(CREATE_TABLE)
        .await
        .map_err(err("creating schema_migrations"))?;
    // Read under the lock: a replica that migrated while we waited has committed by now.
    let from = applied_version(&tx, url).await?;
    if from > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            database: from,
            binary: SCHEMA_VERSION,
        });
    }
    let mut applied = Vec::new();
    for m in MIGRATIONS.iter().filter(|m| m.version > from) {
        tx.batch_execute(m.sql)
            .await
            .map_err(|e| StoreError::Postgres {
                what: "applying a schema migration",
                reason: format!(
                    "migration {:04}_{}: {}",
                    m.version,
                    m.name,
                    url.scrub(&super::describe(&e))
                ),
            })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[&m.version, &m.name],
        )
        .await
        .map_err(err("recording a schema migration"))?;
        applied.push(m.version);
    }
    tx.commit()
        .await
        .map_err(err("committing the schema migration"))?;
    Ok(Migrated {
        from,
        version: SCHEMA_VERSION,
        applied,
    })
}

/// The version the database is at, without changing anything (0 before the first start).
pub(super) async fn current_version(
    client: &impl GenericClient,
    url: &PgUrl,
) -> Result<i32, StoreError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .await
        .map_err(|e| query_error(url, "looking for schema_migrations", e))?
        .get(0);
    if !exists {
        return Ok(0);
    }
    applied_version(client, url).await
}

async fn applied_version(client: &impl GenericClient, url: &PgUrl) -> Result<i32, StoreError> {
    let version: Option<i32> = client
        .query_one("SELECT max(version) FROM schema_migrations", &[])
        .await
        .map_err(|e| query_error(url, "reading the schema version", e))?
        .get(0);
    Ok(version.unwrap_or(0))
}
