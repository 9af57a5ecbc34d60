//! The embedded default store: one SQLite file in WAL mode, `synchronous=FULL` so that a write
//! the client saw acknowledged survives a crash or power loss.

mod chat;
mod orders;
mod uploads;
mod users;

use super::StoreError;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;
use std::time::Duration;
use switchyard_proto::wkt::Timestamp;

/// SQLite behind a small connection pool (one writer at a time, readers in parallel).
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating when missing) the database at `url` (`sqlite://PATH`) and applies the
    /// migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        if let Some(dir) = options.get_filename().parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Database(e.into()))?;
        }
        let pool = SqlitePoolOptions::new().max_connections(4).min_connections(1).connect_with(options).await?;
        sqlx::migrate!("./migrations").run(&pool).await.map_err(|e| StoreError::Database(e.into()))?;
        Ok(SqliteStore { pool })
    }
}

/// Maps a unique-constraint violation to `AlreadyExists`, anything else to `Database`.
fn unique_violation(e: sqlx::Error, what: impl FnOnce() -> String) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::AlreadyExists(what()),
        _ => StoreError::Database(e),
    }
}

/// The current time in Unix nanoseconds, the resolution timestamps are stored in.
fn now_nanos() -> i64 {
    let t = Timestamp::now();
    t.seconds * 1_000_000_000 + i64::from(t.nanos)
}

fn timestamp(nanos: i64) -> Timestamp {
    Timestamp { seconds: nanos.div_euclid(1_000_000_000), nanos: nanos.rem_euclid(1_000_000_000) as i32 }
}

#[cfg(test)]
pub(crate) async fn test_store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = SqliteStore::open(&url).await.unwrap();
    (dir, store)
}
