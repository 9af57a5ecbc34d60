//! Reads of one row by its key (GetUser, GetOrder), run on the calling thread.
//!
//! sqlx runs each SQLite connection on a thread of its own and hands the statement to it, and
//! the row back, over channels: a read by key is ~10k instructions of SQLite, but the hand-over
//! woke the connection's thread and then the runtime's, ~5 context switches per GetUser at
//! concurrency 64; two thirds of the backend's CPU per call went with them (64 → 22 µs, `/proc`
//! under `ab -k -c 64` through the gateway).
//! Here the statement runs where the request is, on a connection of a small set of our own
//! opened on the same file: in WAL mode a reader never waits for the writer, so the thread is
//! held only for the query itself (a few microseconds while the pages are in memory; a read
//! from disk when they are not, as any file read would). Writes, scans and streams stay on
//! sqlx's pool, whose thread keeps a long read off the runtime.

use crate::store::StoreError;
use crate::store::sql::Column;
use rusqlite::{Connection, OpenFlags, Row};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// Connections for reads by key: one is taken for a read and given back after it, so there are
/// never more than the threads that read at once.
pub struct KeyReads {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    busy_timeout: Duration,
}

impl KeyReads {
    /// Reads of the database file at `path`, whose schema is in place (migrations ran), waiting
    /// up to `busy_timeout` where SQLite asks a reader to (recovering a crashed writer's WAL).
    /// Opens the first connection now, so that a file that cannot be read fails the start.
    pub(super) fn open(path: &Path, busy_timeout: Duration) -> Result<Self, StoreError> {
        let reads = KeyReads { path: path.to_owned(), idle: Mutex::new(Vec::new()), busy_timeout };
        let first = reads.connect()?;
        reads.give_back(first);
        Ok(reads)
    }

    fn connect(&self) -> Result<Connection, StoreError> {
        // Read-write at open, as the pool's: a read-only connection cannot recover the WAL index
        // after a crash. `query_only` is what keeps it to reads.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.path, flags)?;
        conn.busy_timeout(self.busy_timeout)?;
        conn.pragma_update(None, "query_only", true)?;
        Ok(conn)
    }

    fn give_back(&self, conn: Connection) {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).push(conn);
    }

    /// The row `sql` finds with `key` as its one parameter, turned into a value by `map`; `None`
    /// when there is none. The statement is prepared once per connection and kept.
    pub(crate) fn one<T>(
        &self,
        sql: &str,
        key: &str,
        map: impl FnOnce(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let taken = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match taken {
            Some(conn) => conn,
            None => self.connect()?,
        };
        let found = read_one(&conn, sql, key, map);
        // Given back whatever the outcome: an error leaves the connection as usable as before
        // (the statement is reset when it is dropped).
        self.give_back(conn);
        found
    }
}

fn read_one<T>(
    conn: &Connection,
    sql: &str,
    key: &str,
    map: impl FnOnce(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    let mut statement = conn.prepare_cached(sql)?;
    let mut rows = statement.query([key])?;
    rows.next()?.map(map).transpose()
}

/// [`Column`] for rusqlite's rows: the owned types through `FromSql`, text borrowed from the row.
macro_rules! rusqlite_column {
    ($($t:ty),*) => {$(
        impl<'r> Column<'r, $t> for Row<'_> {
            fn column(&'r self, i: usize) -> Result<$t, StoreError> {
                Ok(self.get(i)?)
            }
        }
    )*};
}
rusqlite_column!(i64, i32, bool, f64, String);

impl<'r> Column<'r, &'r str> for Row<'_> {
    fn column(&'r self, i: usize) -> Result<&'r str, StoreError> {
        Ok(self.get_ref(i)?.as_str()?)
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        let retryable = matches!(
            e.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        );
        StoreError::Database { message: e.to_string(), retryable }
    }
}

impl From<rusqlite::types::FromSqlError> for StoreError {
    fn from(e: rusqlite::types::FromSqlError) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}
