//! What the SQL stores share: turning sqlx's errors into [`StoreError`]s, so that nothing of
//! sqlx shows past the store.

use super::StoreError;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use switchyard_proto::order::v1::{Order, OrderItem};
use switchyard_proto::user::v1::{CreatedAt, User};
use switchyard_proto::wkt::Timestamp;

/// Maps a unique-constraint violation to `AlreadyExists`, anything else to `Database`.
pub(crate) fn unique_violation(e: sqlx::Error, what: impl FnOnce() -> String) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::AlreadyExists(what()),
        _ => e.into(),
    }
}

/// Maps a foreign-key violation to the error `what` makes, anything else to `Database`.
pub(crate) fn foreign_key_violation(e: sqlx::Error, what: impl FnOnce() -> StoreError) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => what(),
        _ => e.into(),
    }
}

/// One column of a row, by position, from whichever library read the row: sqlx (every query of
/// both databases) or rusqlite (SQLite's reads by key, `sqlite/key_reads.rs`), so that each
/// table's row is turned into its message by one function.
pub(crate) trait RowRead {
    fn i64(&self, i: usize) -> Result<i64, StoreError>;
    fn i32(&self, i: usize) -> Result<i32, StoreError>;
    fn bool(&self, i: usize) -> Result<bool, StoreError>;
    fn f64(&self, i: usize) -> Result<f64, StoreError>;
    fn string(&self, i: usize) -> Result<String, StoreError>;
    /// Text borrowed from the row, for columns that are parsed rather than kept.
    fn text(&self, i: usize) -> Result<&str, StoreError>;
}

/// [`RowRead`] for sqlx's rows. By position, not by name: sqlx finds a name by hashing it, ~100
/// instructions a column on every row, which was a twentieth of streaming an order.
macro_rules! sqlx_row_read {
    ($($row:ty),*) => {$(
        impl RowRead for $row {
            fn i64(&self, i: usize) -> Result<i64, StoreError> {
                Ok(sqlx::Row::try_get(self, i)?)
            }
            fn i32(&self, i: usize) -> Result<i32, StoreError> {
                Ok(sqlx::Row::try_get(self, i)?)
            }
            fn bool(&self, i: usize) -> Result<bool, StoreError> {
                Ok(sqlx::Row::try_get(self, i)?)
            }
            fn f64(&self, i: usize) -> Result<f64, StoreError> {
                Ok(sqlx::Row::try_get(self, i)?)
            }
            fn string(&self, i: usize) -> Result<String, StoreError> {
                Ok(sqlx::Row::try_get(self, i)?)
            }
            fn text(&self, i: usize) -> Result<&str, StoreError> {
                Ok(sqlx::Row::try_get(self, i)?)
            }
        }
    )*};
}
sqlx_row_read!(sqlx::sqlite::SqliteRow, sqlx::postgres::PgRow);

/// Reads a row's columns one after the other, in the order the query selects them.
pub(crate) struct Columns<'r, R> {
    row: &'r R,
    next: usize,
}

impl<'r, R: RowRead> Columns<'r, R> {
    pub(crate) fn new(row: &'r R) -> Self {
        Columns { row, next: 0 }
    }

    /// The position of the next column, moving past it.
    fn take(&mut self) -> usize {
        self.next += 1;
        self.next - 1
    }

    pub(crate) fn i64(&mut self) -> Result<i64, StoreError> {
        let i = self.take();
        self.row.i64(i)
    }
    pub(crate) fn i32(&mut self) -> Result<i32, StoreError> {
        let i = self.take();
        self.row.i32(i)
    }
    pub(crate) fn bool(&mut self) -> Result<bool, StoreError> {
        let i = self.take();
        self.row.bool(i)
    }
    pub(crate) fn f64(&mut self) -> Result<f64, StoreError> {
        let i = self.take();
        self.row.f64(i)
    }
    pub(crate) fn string(&mut self) -> Result<String, StoreError> {
        let i = self.take();
        self.row.string(i)
    }
    pub(crate) fn text(&mut self) -> Result<&'r str, StoreError> {
        let i = self.take();
        self.row.text(i)
    }
}

// Column lists as macros, so that every query is one literal made at compile time (`concat!`)
// rather than a string formatted on each call. Rows are read by position, so `user_from_row`
// and `order_from_row` follow these orders.
macro_rules! user_columns {
    () => {
        "seq, id, name, email, age, active, roles, metadata, created_at, timezone, status"
    };
}
macro_rules! order_columns {
    () => {
        "id, user_id, items, total, status, created_at, updated_at"
    };
}
pub(crate) use {order_columns, user_columns};

/// Reads the columns of `user_columns!()`, in its order.
pub(crate) fn user_from_row(row: &impl RowRead) -> Result<User, StoreError> {
    let mut c = Columns::new(row);
    let _seq = c.i64()?;
    let (id, name, email, age, active) = (c.string()?, c.string()?, c.string()?, c.i32()?, c.bool()?);
    let roles: Vec<String> = serde_json::from_str(c.text()?).map_err(|e| StoreError::Corrupt(format!("roles: {e}")))?;
    let metadata: HashMap<String, String> =
        serde_json::from_str(c.text()?).map_err(|e| StoreError::Corrupt(format!("metadata: {e}")))?;
    Ok(User {
        id,
        name,
        email,
        age,
        active,
        roles,
        metadata,
        created_at: Some(CreatedAt { timestamp: c.i64()?, timezone: c.string()? }),
        status: c.i32()?,
    })
}

/// Reads the columns of `order_columns!()`, in its order.
pub(crate) fn order_from_row(row: &impl RowRead) -> Result<Order, StoreError> {
    let mut c = Columns::new(row);
    Ok(Order {
        order_id: c.string()?,
        user_id: c.string()?,
        items: decode_items(c.text()?)?,
        total: c.f64()?,
        status: c.i32()?,
        created_at: Some(timestamp(c.i64()?)),
        updated_at: Some(timestamp(c.i64()?)),
    })
}

/// The current time in Unix nanoseconds, the resolution timestamps are stored in.
pub(crate) fn now_nanos() -> i64 {
    nanos(Timestamp::now())
}

/// A timestamp as stored: Unix nanoseconds.
pub(crate) fn nanos(t: Timestamp) -> i64 {
    t.seconds * 1_000_000_000 + i64::from(t.nanos)
}

pub(crate) fn timestamp(nanos: i64) -> Timestamp {
    Timestamp { seconds: nanos.div_euclid(1_000_000_000), nanos: nanos.rem_euclid(1_000_000_000) as i32 }
}

/// An order item as the SQL stores keep it: a form of the store's own, so that a change to the
/// API's JSON mapping never changes what is on disk. The aliases read the rows written before
/// this form (the API's proto3 JSON, camelCase, defaults left out).
#[derive(Serialize, Deserialize)]
struct StoredItem {
    #[serde(alias = "productId", default)]
    product_id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    quantity: i32,
    #[serde(default)]
    price: f64,
}

/// Items as stored in an order row.
pub(crate) fn encode_items(items: &[OrderItem]) -> String {
    let stored: Vec<StoredItem> = items
        .iter()
        .map(|i| StoredItem {
            product_id: i.product_id.clone(),
            name: i.name.clone(),
            quantity: i.quantity,
            price: i.price,
        })
        .collect();
    serde_json::to_string(&stored).expect("strings and numbers always serialize")
}

/// Items read back from an order row.
pub(crate) fn decode_items(text: &str) -> Result<Vec<OrderItem>, StoreError> {
    let stored: Vec<StoredItem> =
        serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("order items: {e}")))?;
    Ok(stored
        .into_iter()
        .map(|s| OrderItem { product_id: s.product_id, name: s.name, quantity: s.quantity, price: s.price })
        .collect())
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        let retryable = match &e {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(db) => {
                let postgres = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().is_some();
                db.code().is_some_and(|c| if postgres { transient_postgres(&c) } else { transient_sqlite(&c) })
            }
            _ => false,
        };
        StoreError::Database { message: e.to_string(), retryable }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Database { message: format!("migrations: {e}"), retryable: false }
    }
}

/// SQLite result codes that mean "try again": BUSY and LOCKED, with their extended codes.
fn transient_sqlite(code: &str) -> bool {
    code.parse::<i32>().is_ok_and(|n| matches!(n & 0xff, 5 | 6))
}

/// PostgreSQL SQLSTATEs that mean "try again": serialization failure, deadlock, the connection
/// exception class, and a server still starting up.
fn transient_postgres(code: &str) -> bool {
    code == "40001" || code == "40P01" || code.starts_with("08") || code == "57P03"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_round_trip_and_old_rows_read() {
        let items = vec![OrderItem { product_id: "p1".into(), name: "W \"x\"".into(), quantity: 3, price: 2.5 }];
        let text = encode_items(&items);
        assert!(text.contains("product_id"), "{text}");
        assert_eq!(decode_items(&text).unwrap(), items);
        // As the first versions stored them: proto3 JSON, a zero quantity left out.
        let old = r#"[{"productId":"p2","name":"N","price":1.25}]"#;
        let read = decode_items(old).unwrap();
        assert_eq!((read[0].product_id.as_str(), read[0].quantity, read[0].price), ("p2", 0, 1.25));
        assert!(matches!(decode_items("{"), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn busy_and_serialization_failures_are_retryable() {
        assert!(transient_sqlite("5") && transient_sqlite("517") && transient_sqlite("6"));
        assert!(!transient_sqlite("19") && !transient_sqlite("2067"));
        assert!(transient_postgres("40001") && transient_postgres("40P01") && transient_postgres("08006"));
        assert!(!transient_postgres("23505") && !transient_postgres("23503"));
        let e: StoreError = sqlx::Error::PoolTimedOut.into();
        assert!(matches!(e, StoreError::Database { retryable: true, .. }));
        let e: StoreError = sqlx::Error::RowNotFound.into();
        assert!(matches!(e, StoreError::Database { retryable: false, .. }));
    }
}
