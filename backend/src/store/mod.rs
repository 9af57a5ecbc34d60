//! Storage behind a small interface, so that a second database (PostgreSQL for several backend
//! instances, see design.md "Scaling past one machine") is one more implementation, not a rewrite.

mod sqlite;

pub use sqlite::SqliteStore;

use async_trait::async_trait;
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

/// Persistence of the reference system. Every write is durable when its future resolves.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Inserts a user; `AlreadyExists` when the email is taken.
    async fn create_user(&self, user: NewUser) -> Result<User, StoreError>;
    /// Reads one user by id.
    async fn get_user(&self, id: &str) -> Result<User, StoreError>;
    /// Applies a patch and returns the updated user.
    async fn update_user(&self, id: &str, patch: UserPatch) -> Result<User, StoreError>;
    /// Deletes one user by id.
    async fn delete_user(&self, id: &str) -> Result<(), StoreError>;
    /// Lists up to `limit` users created after position `after` (0 for the start).
    async fn list_users(&self, after: i64, limit: u32) -> Result<UserPage, StoreError>;
}
