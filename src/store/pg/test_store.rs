//! For the PostgreSQL store's unit tests: a migrated store on a fresh throwaway database, and a
//! plain connection to look at (or seed) its tables the way another writer would.

use super::throwaway::{self, TestDatabase};
use super::PgStore;

/// A store on a fresh database (`None`: the server binaries are missing, the test skips with
/// the one line `throwaway` prints).
pub(super) async fn store() -> Option<(TestDatabase, PgStore)> {
    let db = throwaway::database().await?;
    let store = PgStore::connect(&db.config())
        .await
        .expect("the throwaway database accepts the store");
    Some((db, store))
}

/// A plain connection to `db`, outside the store's pool.
pub(super) async fn sql(db: &TestDatabase) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&db.url(), tokio_postgres::NoTls)
        .await
        .expect("connecting to the throwaway database");
    tokio::spawn(conn);
    client
}
