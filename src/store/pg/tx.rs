//! Running one store write as one PostgreSQL transaction, retried a bounded number of times
//! when the server aborts it for a serialization failure or a deadlock (the writes lock rows
//! with `SELECT … FOR UPDATE` where sled relied on its optimistic conflict detection, so
//! those are rare: two changes locking the same rows in different orders).

use super::super::StoreError;
use super::describe;

/// How many times a transaction is run at most before its serialization failure is reported.
pub(super) const MAX_TRIES: u32 = 8;

/// Why a transaction's body stopped: the database refused a statement, or the store decided
/// to write nothing (a stale read, a corrupt record).
#[derive(Debug)]
pub(super) enum TxError {
    Db(tokio_postgres::Error),
    Store(StoreError),
}

impl From<tokio_postgres::Error> for TxError {
    fn from(e: tokio_postgres::Error) -> TxError {
        TxError::Db(e)
    }
}

impl From<StoreError> for TxError {
    fn from(e: StoreError) -> TxError {
        TxError::Store(e)
    }
}

/// Whether the server aborted the transaction only because it raced another one: running it
/// again decides anew from what that one wrote.
pub(super) fn retryable(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    )
}

/// The store error for a failed statement `what` was for.
pub(super) fn db_error(
    store: &super::PgStore,
    what: &'static str,
    e: &tokio_postgres::Error,
) -> StoreError {
    StoreError::Postgres {
        what,
        reason: store.url.scrub(&describe(e)),
    }
}

/// A record the store wrote that no longer reads back as its model struct.
pub(super) fn corrupt(key: String, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        key,
        reason: e.to_string(),
    }
}

/// Runs `$body` (an expression using the transaction `$tx`, of type
/// `Result<T, TxError>`) in one transaction on a pooled connection of `$store`, commits, and
/// retries the whole of it on a serialization failure or deadlock, at most `MAX_TRIES`
/// times. `$what` names the write in errors. Evaluates to `Result<T, StoreError>`.
macro_rules! in_transaction {
    ($store:expr, $what:expr, |$tx:ident| $body:expr) => {{
        let store: &$crate::store::pg::PgStore = $store;
        let what: &'static str = $what;
        let mut client = store.client().await?;
        let mut tries = 0u32;
        loop {
            tries += 1;
            let $tx = match client.transaction().await {
                Ok(tx) => tx,
                Err(e) => break Err($crate::store::pg::tx::db_error(store, what, &e)),
            };
            let result: Result<_, $crate::store::pg::tx::TxError> = async { $body }.await;
            match result {
                Ok(v) => match $tx.commit().await {
                    Ok(()) => break Ok(v),
                    Err(e)
                        if $crate::store::pg::tx::retryable(&e)
                            && tries < $crate::store::pg::tx::MAX_TRIES =>
                    {
                        continue
                    }
                    Err(e) => break Err($crate::store::pg::tx::db_error(store, what, &e)),
                },
                Err($crate::store::pg::tx::TxError::Db(e))
                    if $crate::store::pg::tx::retryable(&e)
                        && tries < $crate::store::pg::tx::MAX_TRIES =>
                {
                    drop($tx);
                    continue;
                }
                Err($crate::store::pg::tx::TxError::Db(e)) => {
                    break Err($crate::store::pg::tx::db_error(store, what, &e))
                }
                Err($crate::store::pg::tx::TxError::Store(e)) => break Err(e),
            }
        }
    }};
}
pub(super) use in_transaction;
