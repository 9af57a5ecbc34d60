//! Storage behind small interfaces, one per domain, so that a second database (PostgreSQL for
//! several backend instances, see design.md "Scaling past one machine") is one more
//! implementation, not a rewrite.

mod sqlite;

pub use sqlite::SqliteStore;

use async_trait::async_trait;
use futures::stream::BoxStream;
use switchyard_proto::chat::v1::ChatMessage;
use switchyard_proto::order::v1::{Order, OrderItem, OrderStatus};
use switchyard_proto::upload::v1::UploadInfo;
use switchyard_proto::user::v1::User;

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
    /// The database failed; the client can do nothing about it.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
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

/// Chat history.
#[async_trait]
pub trait ChatStore: Send + Sync {
    /// Stores a message, assigning its id; `timestamp` is Unix milliseconds.
    async fn append_chat(&self, msg: ChatMessage) -> Result<ChatMessage, StoreError>;
    /// The last `n` messages of a room, oldest first.
    async fn chat_history(&self, session_id: &str, n: u32) -> Result<Vec<ChatMessage>, StoreError>;
}

/// Everything the services need.
pub trait Store: UserStore + OrderStore + UploadStore + ChatStore + 'static {}

impl<T: UserStore + OrderStore + UploadStore + ChatStore + 'static> Store for T {}
