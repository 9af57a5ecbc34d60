//! The embedded default store: one SQLite file in WAL mode, `synchronous=FULL` so that a write
//! the client saw acknowledged survives a crash or power loss.

mod key_reads;
mod memory;

pub use key_reads::KeyReads;

/// The store traits, from the queries both SQL stores share.
mod queries {
    crate::store::sql_store::sql_store!(super::SqliteStore, sqlx::sqlite::SqliteRow);
}

use super::StoreError;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// How long a statement waits for a lock another connection holds before it fails as busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// SQLite behind a small connection pool (one writer at a time, readers in parallel), and its
/// reads by key on connections of their own.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// None for a database in memory, which other connections would not see.
    key_reads: Option<Arc<KeyReads>>,
}

impl SqliteStore {
    /// Opens (creating when missing) the database at `url` (`sqlite://PATH`) and applies the
    /// migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        memory::configure();
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            // Rows cross from the connection's thread to the runtime through a channel of this
            // many; at sqlx's default of 50 the thread stopped and was woken again several times
            // per page of a user's orders (256 rows). With room for a page it reads one through:
            // GetOrders at c=16 went from ~275k to ~360k messages/s over native gRPC.
            .row_buffer_size(crate::store::sql_store::ORDER_PAGE as usize);
        if let Some(dir) = options.get_filename().parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(sqlx::Error::from)?;
        }
        let pool = SqlitePoolOptions::new().max_connections(4).min_connections(1).connect_with(options).await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        // The file SQLite opened (empty for a database in memory), rather than one derived
        // from the URL again.
        let file: String =
            sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'").fetch_one(&pool).await?;
        let key_reads = match file.as_str() {
            "" => None,
            file => Some(Arc::new(KeyReads::open(Path::new(file), BUSY_TIMEOUT)?)),
        };
        Ok(SqliteStore { pool, key_reads })
    }

    fn key_reads(&self) -> Option<&KeyReads> {
        self.key_reads.as_deref()
    }
}

/// A fresh store in a temporary folder, for the contract suite.
#[cfg(test)]
pub(crate) async fn test_store() -> Option<(tempfile::TempDir, SqliteStore)> {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = SqliteStore::open(&url).await.unwrap();
    Some((dir, store))
}

#[cfg(test)]
mod tests {
    use crate::store::{ChatStore as _, NewUser, StoreError, UserPatch, UserStore as _};
    use switchyard_proto::chat::v1::ChatMessage;

    /// A read by key runs on a connection of its own, not the pool's that wrote: it sees each
    /// write once the write has returned, and a deleted user is gone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_by_key_see_every_write_of_the_pool() {
        let (_dir, store) = super::test_store().await.unwrap();
        assert!(store.key_reads.is_some(), "a file database reads by key on its own connections");
        let new = NewUser { name: "Ada".into(), email: "ada@example.com".into(), age: 36 };
        let created = store.create_user(new).await.unwrap();
        assert_eq!(store.get_user(&created.id).await.unwrap(), created);
        let patch = UserPatch { name: Some("Ada L.".into()), ..Default::default() };
        let updated = store.update_user(&created.id, patch).await.unwrap();
        assert_eq!(store.get_user(&created.id).await.unwrap(), updated);
        // Many at once: as many connections as threads reading, each read complete.
        let reads = (0..64).map(|_| {
            let (store, id) = (store.clone(), created.id.clone());
            tokio::spawn(async move { store.get_user(&id).await })
        });
        for read in futures::future::join_all(reads).await {
            assert_eq!(read.unwrap().unwrap().name, "Ada L.");
        }
        store.delete_user(&created.id).await.unwrap();
        assert!(matches!(store.get_user(&created.id).await, Err(StoreError::NotFound(_))));
    }

    /// Other connections cannot see a database in memory: its reads by key go through the pool.
    #[tokio::test]
    async fn a_database_in_memory_reads_by_key_through_the_pool() {
        let store = super::SqliteStore::open("sqlite::memory:").await.unwrap();
        assert!(store.key_reads.is_none());
        let new = NewUser { name: "Bo".into(), email: "bo@example.com".into(), age: 5 };
        let created = store.create_user(new).await.unwrap();
        assert_eq!(store.get_user(&created.id).await.unwrap(), created);
        assert!(matches!(store.get_user("nobody").await, Err(StoreError::NotFound(_))));
    }

    /// A database written before rooms numbered their messages gets positions in the order its
    /// rows were written, room by room, and new posts carry on from there.
    #[tokio::test]
    async fn the_upgrade_numbers_existing_chat_messages() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("old.db").display());
        let options =
            <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(&url).unwrap().create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        // The migrations of that time: the first two.
        let old = dir.path().join("migrations");
        std::fs::create_dir(&old).unwrap();
        for name in ["0001_users.sql", "0002_orders.sql"] {
            let from = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite").join(name);
            std::fs::copy(from, old.join(name)).unwrap();
        }
        sqlx::migrate::Migrator::new(old.as_path()).await.unwrap().run(&pool).await.unwrap();
        for (room, text) in [("a", "a1"), ("b", "b1"), ("a", "a2"), ("a", "a3"), ("b", "b2")] {
            sqlx::query("INSERT INTO chat_messages (session_id, user_id, message, timestamp) VALUES ($1, 'u', $2, 1)")
                .bind(room)
                .bind(text)
                .execute(&pool)
                .await
                .unwrap();
        }
        pool.close().await;
        let store = super::SqliteStore::open(&url).await.unwrap();
        let a = store.chat_history("a", 50).await.unwrap();
        let numbered: Vec<(i64, &str)> = a.iter().map(|m| (m.id, m.message.as_str())).collect();
        assert_eq!(numbered, [(1, "a1"), (2, "a2"), (3, "a3")]);
        let next = store
            .append_chat(ChatMessage { session_id: "b".into(), message: "b3".into(), ..Default::default() })
            .await
            .unwrap();
        assert_eq!(next.id, 3);
    }
}
