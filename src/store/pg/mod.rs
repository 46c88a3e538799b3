//! The PostgreSQL backend (issue 17): a pool of connections to one shared database, TLS, and
//! the schema, migrated at start. Several replicas can use one database at once; this file
//! only connects and migrates, the store's reads and writes over it live beside it once the
//! `Store` façade dispatches to backends.

mod accept;
mod alerts;
mod claims;
mod copy;
mod label_write;
mod labels;
mod leases;
mod meta;
mod migrate;
mod outbox;
mod requests;
mod rule_log;
mod sources;
#[cfg(test)]
mod test_store;
#[doc(hidden)]
pub mod throwaway;
mod tls;
mod tx;

use super::config::{PgConfig, PgUrl, TlsMode};
use super::StoreError;
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use std::time::Duration;
use tokio_postgres::config::SslMode;

pub use claims::{Claimed, MIN_CLAIM};
pub(crate) use copy::PgImporter;
pub use leases::{Lease, SourceLease};
pub use migrate::{Migrated, SCHEMA_VERSION};

/// How long opening one connection may take before the attempt fails (when the URL's
/// `connect_timeout` does not say): a database that does not answer is reported, not waited
/// for forever.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a caller waits for a free pooled connection before it gets an error.
const POOL_WAIT: Duration = Duration::from_secs(30);

/// A pool of connections to a migrated database. Clones share the pool.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    url: PgUrl,
    schema_version: i32,
    /// How long the bodies of mentions without an alert are kept (`[store] keep_mentions`).
    keep_mentions: chrono::Duration,
    /// Rung when outbox work may be waiting (see `Store::outbox_signal`).
    outbox_signal: std::sync::Arc<tokio::sync::Notify>,
    /// This process's name among the replicas (`[store] replica`): the owner of its leases
    /// and claims.
    replica: String,
    /// How long a lease or claim lasts without renewal (`[store] lease`).
    lease: std::time::Duration,
    /// This replica's own connection: its presence (which frees its outbox claims the
    /// moment it dies) and the wake-up for other replicas' outbox entries (`claims.rs`).
    _presence: std::sync::Arc<claims::Presence>,
    /// Why this replica's own connection is down, `None` while it is up (see
    /// [`PgStore::connection_lost`]).
    connection_lost: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

/// What opens a connection: the driver's settings and the TLS connector the pool uses (and
/// the replica's own connection beside it, `claims.rs`).
struct Connect {
    config: tokio_postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("url", &self.url)
            .field("schema_version", &self.schema_version)
            .finish_non_exhaustive()
    }
}

/// What `mentiondesk check --online` reports about the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnlineFacts {
    /// Where, password redacted.
    pub url: String,
    /// The server's `server_version` (e.g. `15.8 (Debian 15.8-0+deb12u1)`).
    pub server_version: String,
    /// Whether the connection is encrypted.
    pub tls: bool,
    /// The schema version the database is at; 0 before mentiondesk first started on it.
    pub schema_version: i32,
    /// The schema version this binary migrates to ([`SCHEMA_VERSION`]).
    pub binary_schema_version: i32,
}

impl OnlineFacts {
    /// One line for `check --online`, or the problem with its fix (a database newer than
    /// this binary).
    pub fn summary(&self) -> Result<String, String> {
        let tls = if self.tls { "TLS" } else { "no TLS" };
        let at = format!(
            "connected to {} (PostgreSQL {}, {tls})",
            self.url, self.server_version
        );
        match self.schema_version {
            v if v > self.binary_schema_version => Err(StoreError::SchemaTooNew {
                database: v,
                binary: self.binary_schema_version,
            }
            .to_string()),
            0 => Ok(format!(
                "{at}; empty database: `run` creates the schema (version {})",
                self.binary_schema_version
            )),
            v if v < self.binary_schema_version => Ok(format!(
                "{at}; schema version {v}: `run` migrates it to version {}",
                self.binary_schema_version
            )),
            v => Ok(format!("{at}; schema version {v} (current)")),
        }
    }
}

impl PgStore {
    /// Opens the pool, checks that the database answers and migrates its schema to
    /// [`SCHEMA_VERSION`] (once, however many replicas start at the same moment). A database
    /// migrated by a newer mentiondesk is refused ([`StoreError::SchemaTooNew`]).
    pub async fn connect(config: &PgConfig) -> Result<PgStore, StoreError> {
        Ok(PgStore::connect_reporting(config).await?.0)
    }

    /// [`PgStore::connect`], also saying which migrations this start applied.
    pub async fn connect_reporting(config: &PgConfig) -> Result<(PgStore, Migrated), StoreError> {
        let connect = connect_config(config)?;
        let pool = pool(config, &connect)?;
        let mut client = pool.get().await.map_err(|e| pool_error(&config.url, e))?;
        let migrated = migrate::migrate(&mut client, &config.url).await?;
        tracing::info!(
            url = %config.url,
            schema_version = migrated.version,
            applied = ?migrated.applied,
            "connected to PostgreSQL"
        );
        drop(client);
        let connect = std::sync::Arc::new(connect);
        let outbox_signal = std::sync::Arc::<tokio::sync::Notify>::default();
        let connection_lost = std::sync::Arc::<std::sync::Mutex<Option<String>>>::default();
        let presence = claims::PresenceTask {
            connect: connect.clone(),
            url: config.url.clone(),
            replica: config.replica.clone(),
            signal: outbox_signal.clone(),
            lost: connection_lost.clone(),
        }
        .start()
        .await?;
        Ok((
            PgStore {
                pool,
                url: config.url.clone(),
                schema_version: migrated.version,
                keep_mentions: keep_duration(super::config::DEFAULT_KEEP_MENTIONS),
                outbox_signal,
                replica: config.replica.clone(),
                lease: config.lease,
                _presence: std::sync::Arc::new(presence),
                connection_lost,
            },
            migrated,
        ))
    }

    /// Why this replica cannot reach the database, as its own long-lived connection found
    /// (closed or refused, password scrubbed); `None` while that connection is up. It is
    /// the one store call every replica makes whatever its sources, so a replica with only
    /// webhook sources notices a lost database too.
    pub(crate) fn connection_lost(&self) -> Option<String> {
        self.connection_lost
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// This process's name among the replicas: the owner of its leases and claims.
    pub(crate) fn replica(&self) -> &str {
        &self.replica
    }

    /// How long a lease or claim lasts without renewal.
    pub(crate) fn lease_period(&self) -> std::time::Duration {
        self.lease
    }

    /// Connects once without migrating anything and reports what `check --online` prints:
    /// the server, whether the connection is encrypted, and the schema versions.
    pub async fn check_online(config: &PgConfig) -> Result<OnlineFacts, StoreError> {
        let pool = pool(config, &connect_config(config)?)?;
        let client = pool.get().await.map_err(|e| pool_error(&config.url, e))?;
        let query = |e| query_error(&config.url, "reading the server's facts", e);
        let row = client
            .query_one(
                "SELECT current_setting('server_version'), \
                 COALESCE((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)",
                &[],
            )
            .await
            .map_err(query)?;
        let plain: &tokio_postgres::Client = &client;
        let schema_version = migrate::current_version(plain, &config.url).await?;
        Ok(OnlineFacts {
            url: config.url.redacted(),
            server_version: row.get(0),
            tls: row.get(1),
            schema_version,
            binary_schema_version: SCHEMA_VERSION,
        })
    }

    /// The relay's wake-up (see `SledStore::outbox_signal`); rung by the façade after this
    /// replica's writes that add or release outbox work.
    pub(crate) fn outbox_signal(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.outbox_signal.clone()
    }

    /// The store with `[store] keep_mentions` as the retention of unalerted mention bodies
    /// (the default, 90 days, until this is called).
    #[allow(dead_code)] // Called once the `Store` façade opens the PostgreSQL backend.
    pub(crate) fn with_keep_mentions(mut self, keep: std::time::Duration) -> PgStore {
        self.keep_mentions = keep_duration(keep);
        self
    }

    /// The schema version the database was at once connected (this binary's).
    pub fn schema_version(&self) -> i32 {
        self.schema_version
    }

    /// A pooled connection, for the store's reads and writes.
    #[allow(dead_code)] // Used by the store methods that follow the backend façade.
    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| pool_error(&self.url, e))
    }
}

/// A retention as chrono counts it; one too long to count keeps everything.
fn keep_duration(keep: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::MAX)
}

/// The driver's settings and TLS connector for `config`.
fn connect_config(config: &PgConfig) -> Result<Connect, StoreError> {
    let mut pg: tokio_postgres::Config =
        config
            .url
            .expose()
            .parse()
            .map_err(|e: tokio_postgres::Error| StoreError::PgConfig {
                url: config.url.redacted(),
                reason: config.url.scrub(&e.to_string()),
            })?;
    if let Some(mode) = config.tls {
        pg.ssl_mode(match mode {
            TlsMode::Disable => SslMode::Disable,
            TlsMode::Prefer => SslMode::Prefer,
            TlsMode::Require => SslMode::Require,
        });
    }
    if pg.get_connect_timeout().is_none() {
        pg.connect_timeout(CONNECT_TIMEOUT);
    }
    if pg.get_application_name().is_none() {
        pg.application_name("mentiondesk");
    }
    let tls = tls::connector(pg.get_ssl_mode() != SslMode::Disable).map_err(|reason| {
        StoreError::PgConfig {
            url: config.url.redacted(),
            reason,
        }
    })?;
    Ok(Connect { config: pg, tls })
}

/// The pool for `config` (no connection is opened until one is asked for).
fn pool(config: &PgConfig, connect: &Connect) -> Result<Pool, StoreError> {
    let manager = Manager::from_config(
        connect.config.clone(),
        connect.tls.clone(),
        ManagerConfig {
            // Checks a pooled connection is still open before handing it out, without a
            // round trip; a connection the server dropped fails its query and is replaced.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(config.pool_size.max(1))
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(POOL_WAIT))
        .create_timeout(Some(CONNECT_TIMEOUT + Duration::from_secs(1)))
        .build()
        .map_err(|e| StoreError::PgConfig {
            url: config.url.redacted(),
            reason: e.to_string(),
        })
}

/// A failure to get a connection: the server is unreachable, refused us, or is too slow.
fn pool_error(url: &PgUrl, e: PoolError) -> StoreError {
    use deadpool_postgres::TimeoutType;
    let reason = match e {
        PoolError::Backend(e) => describe(&e),
        PoolError::Timeout(TimeoutType::Wait) => format!(
            "every pooled connection stayed busy for {}s (raise [store] pool_size, or look for slow queries)",
            POOL_WAIT.as_secs()
        ),
        PoolError::Timeout(_) => format!(
            "the server did not answer within {}s",
            CONNECT_TIMEOUT.as_secs()
        ),
        other => other.to_string(),
    };
    StoreError::PgConnect {
        url: url.redacted(),
        reason: url.scrub(&reason),
    }
}

/// A failed statement, named by what it was for.
fn query_error(url: &PgUrl, what: &'static str, e: tokio_postgres::Error) -> StoreError {
    StoreError::Postgres {
        what,
        reason: url.scrub(&describe(&e)),
    }
}

/// The server's own message (with its detail and hint) when there is one, else the driver's
/// (`tokio_postgres::Error`'s `Display` alone says only "db error").
fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!("{}: {}", db.severity(), db.message());
        if let Some(detail) = db.detail() {
            s.push_str(&format!(" ({detail})"));
        }
        if let Some(hint) = db.hint() {
            s.push_str(&format!("; hint: {hint}"));
        }
        return s;
    }
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        let text = inner.to_string();
        if !s.contains(&text) {
            s.push_str(&format!(": {text}"));
        }
        source = inner.source();
    }
    s
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_accept;
#[cfg(test)]
mod tests_alerts;
#[cfg(test)]
mod tests_claims;
#[cfg(test)]
mod tests_outbox;
