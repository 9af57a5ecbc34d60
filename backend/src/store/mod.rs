//! Storage behind small interfaces, one per domain, so that a second database (PostgreSQL for
//! several backend instances, see design.md "Scaling past one machine") is one more
//! implementation, not a rewrite.

#[cfg(test)]
mod contract;
mod postgres;
mod sql;
mod sql_store;
mod sqlite;

pub use postgres::{PostgresStore, Schema as PostgresSchema};
pub use sqlite::SqliteStore;

use crate::events::{EventBus, InProcessBus};
use async_trait::async_trait;
use futures::stream::BoxStream;
use std::sync::Arc;
use switchyard_proto::chat::v1::ChatMessage;
use switchyard_proto::order::v1::{Order, OrderItem, OrderStatus};
use switchyard_proto::upload::v1::UploadInfo;
use switchyard_proto::user::v1::User;

/// The databases a URL can name, told apart by its scheme here and nowhere else.
enum Kind {
    /// `sqlite://PATH`: the embedded default, one backend process.
    Sqlite,
    /// `postgres://…` or `postgresql://…`: several backend instances on one database.
    Postgres,
}

fn kind(url: &str) -> Result<Kind, StoreError> {
    match url.split_once("://").map(|(s, _)| s.to_ascii_lowercase()).as_deref() {
        Some("sqlite") => Ok(Kind::Sqlite),
        Some("postgres" | "postgresql") => Ok(Kind::Postgres),
        _ => Err(StoreError::Database {
            message: format!("database URL {:?}: expected sqlite://PATH or postgres://…", redacted(url)),
            retryable: false,
        }),
    }
}

/// Whether a database URL names PostgreSQL.
pub fn is_postgres(url: &str) -> bool {
    matches!(kind(url), Ok(Kind::Postgres))
}

/// Opens the store a database URL names.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match kind(url)? {
        Kind::Sqlite => Arc::new(SqliteStore::open(url).await?),
        Kind::Postgres => Arc::new(PostgresStore::open(url).await?),
    })
}

/// Opens the store and the event bus that go with it: in-process for SQLite, over the same
/// database for PostgreSQL (so that every instance hears every change). Subscribers buffer up
/// to `capacity` messages.
pub async fn open_with_bus(url: &str, capacity: usize) -> Result<(Arc<dyn Store>, Arc<dyn EventBus>), StoreError> {
    Ok(match kind(url)? {
        Kind::Sqlite => (Arc::new(SqliteStore::open(url).await?), Arc::new(InProcessBus::new(capacity))),
        Kind::Postgres => {
            let store = PostgresStore::open(url).await?;
            let bus = crate::pg_bus::PgBus::start(store.pool().clone(), capacity).await?;
            (Arc::new(store), Arc::new(bus))
        }
    })
}

/// The database URL without its password, for logs.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// What can go wrong in a store, independent of the database behind it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The addressed row does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// A unique constraint was hit; the string names what is taken.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The row is referenced by others and cannot go (a user who has orders).
    #[error("{0}")]
    InUse(String),
    /// The row changed between read and write; the caller may retry.
    #[error("{0}")]
    Conflict(String),
    /// The database failed. The store says whether the same call may succeed if tried again
    /// (busy, out of connections, connection lost); the message is for the log, not the client.
    #[error("database error: {message}")]
    Database { message: String, retryable: bool },
    /// A stored value could not be read back (corrupt row).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}

/// The fields of a user that CreateUser sets; the store fills in id, creation time and status.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub name: String,
    pub email: String,
    pub age: i32,
}

/// The fields an update changes: `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub name: Option<String>,
    pub email: Option<String>,
    pub age: Option<i32>,
}

/// One page of users in creation order.
#[derive(Debug, Clone)]
pub struct UserPage {
    pub users: Vec<User>,
    /// The position after the last user of this page, when more users follow.
    pub next: Option<i64>,
}

/// Users. Every write is durable when its future resolves.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Inserts a user; `AlreadyExists` when the email is taken.
    async fn create_user(&self, user: NewUser) -> Result<User, StoreError>;
    /// Reads one user by id.
    async fn get_user(&self, id: &str) -> Result<User, StoreError>;
    /// Applies a patch and returns the updated user.
    async fn update_user(&self, id: &str, patch: UserPatch) -> Result<User, StoreError>;
    /// Deletes one user by id; `InUse` while the user has orders.
    async fn delete_user(&self, id: &str) -> Result<(), StoreError>;
    /// Lists up to `limit` users created after position `after` (0 for the start).
    async fn list_users(&self, after: i64, limit: u32) -> Result<UserPage, StoreError>;
}

/// Orders.
#[async_trait]
pub trait OrderStore: Send + Sync {
    /// Inserts a PENDING order; `NotFound` when the user does not exist.
    async fn create_order(&self, user_id: &str, items: Vec<OrderItem>, total: f64) -> Result<Order, StoreError>;
    /// Reads one order.
    async fn get_order(&self, id: &str) -> Result<Order, StoreError>;
    /// Sets the status if it is still `from` (compare-and-set); `Conflict` otherwise.
    async fn set_order_status(&self, id: &str, from: OrderStatus, to: OrderStatus) -> Result<Order, StoreError>;
    /// A user's orders in creation order, at most `limit` (all when `None`), read lazily so a
    /// slow client holds back the database cursor instead of filling memory.
    fn orders_of_user(&self, user_id: &str, limit: Option<u32>) -> BoxStream<'static, Result<Order, StoreError>>;
}

/// Metadata of stored uploads (the bytes are files, see `services::upload`).
#[async_trait]
pub trait UploadStore: Send + Sync {
    /// Records a completed upload.
    async fn insert_upload(&self, info: &UploadInfo) -> Result<(), StoreError>;
    /// Reads one upload's metadata.
    async fn get_upload(&self, file_id: &str) -> Result<UploadInfo, StoreError>;
}

/// Chat history. A message's id is its position in its room: 1, 2, 3… in the order the database
/// stored them, without gaps, the same on every backend instance.
#[async_trait]
pub trait ChatStore: Send + Sync {
    /// Stores a message, assigning its position; `timestamp` is Unix milliseconds.
    async fn append_chat(&self, msg: ChatMessage) -> Result<ChatMessage, StoreError>;
    /// The last `n` messages of a room, oldest first.
    async fn chat_history(&self, session_id: &str, n: u32) -> Result<Vec<ChatMessage>, StoreError>;
    /// Up to `n` messages of a room after position `after`, oldest first.
    async fn chat_since(&self, session_id: &str, after: i64, n: u32) -> Result<Vec<ChatMessage>, StoreError>;
}

/// Everything the services need.
pub trait Store: UserStore + OrderStore + UploadStore + ChatStore + 'static {}

impl<T: UserStore + OrderStore + UploadStore + ChatStore + 'static> Store for T {}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_stay_out_of_logs() {
        assert_eq!(super::redacted("postgres://u:secret@h:5432/db?x=1"), "postgres://u:***@h:5432/db?x=1");
        assert_eq!(super::redacted("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(super::redacted("sqlite://data/s.db"), "sqlite://data/s.db");
    }

    #[tokio::test]
    async fn an_unknown_scheme_is_refused() {
        let e = super::open("mysql://h/db").await.err().unwrap();
        assert!(e.to_string().contains("expected sqlite://PATH or postgres://"), "{e}");
    }
}
