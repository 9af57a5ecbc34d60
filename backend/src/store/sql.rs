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

/// A row's column `i` as a `T`, from whichever library read the row: sqlx (every query of both
/// databases) or rusqlite (SQLite's reads by key, `sqlite/key_reads.rs`), so that each table's
/// row is turned into its message by one function.
pub(crate) trait Column<'r, T> {
    fn column(&'r self, i: usize) -> Result<T, StoreError>;
}

/// The column types the row readers below take, in one bound.
pub(crate) trait RowRead<'r>:
    Column<'r, i64> + Column<'r, i32> + Column<'r, bool> + Column<'r, f64> + Column<'r, String> + Column<'r, &'r str>
{
}

impl<'r, R> RowRead<'r> for R where
    R: Column<'r, i64>
        + Column<'r, i32>
        + Column<'r, bool>
        + Column<'r, f64>
        + Column<'r, String>
        + Column<'r, &'r str>
{
}

/// [`Column`] for sqlx's rows. By position, not by name: sqlx finds a name by hashing it, ~100
/// instructions a column on every row, which was a twentieth of streaming an order.
macro_rules! sqlx_column {
    ($($row:ty),*) => {$(
        impl<'r, T> Column<'r, T> for $row
        where
            T: sqlx::Decode<'r, <$row as sqlx::Row>::Database> + sqlx::Type<<$row as sqlx::Row>::Database>,
        {
            fn column(&'r self, i: usize) -> Result<T, StoreError> {
                Ok(sqlx::Row::try_get(self, i)?)
            }
        }
    )*};
}
sqlx_column!(sqlx::sqlite::SqliteRow, sqlx::postgres::PgRow);

/// Reads a row's columns one after the other, in the order the query selects them.
pub(crate) struct Columns<'r, R> {
    row: &'r R,
    next: usize,
}

impl<'r, R> Columns<'r, R> {
    pub(crate) fn new(row: &'r R) -> Self {
        Columns { row, next: 0 }
    }

    /// The next column's value.
    pub(crate) fn next<T>(&mut self) -> Result<T, StoreError>
    where
        R: Column<'r, T>,
    {
        self.next += 1;
        self.row.column(self.next - 1)
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
pub(crate) fn user_from_row<'r>(row: &'r impl RowRead<'r>) -> Result<User, StoreError> {
    let mut c = Columns::new(row);
    let _seq: i64 = c.next()?;
    let (id, name, email, age, active) = (c.next()?, c.next()?, c.next()?, c.next()?, c.next()?);
    let roles: Vec<String> = serde_json::from_str(c.next()?).map_err(|e| StoreError::Corrupt(format!("roles: {e}")))?;
    let metadata: HashMap<String, String> =
        serde_json::from_str(c.next()?).map_err(|e| StoreError::Corrupt(format!("metadata: {e}")))?;
    Ok(User {
        id,
        name,
        email,
        age,
        active,
        roles,
        metadata,
        created_at: Some(CreatedAt { timestamp: c.next()?, timezone: c.next()? }),
        status: c.next()?,
    })
}

/// Reads the columns of `order_columns!()`, in its order.
pub(crate) fn order_from_row<'r>(row: &'r impl RowRead<'r>) -> Result<Order, StoreError> {
    let mut c = Columns::new(row);
    Ok(Order {
        order_id: c.next()?,
        user_id: c.next()?,
        items: decode_items(c.next()?)?,
        total: c.next()?,
        status: c.next()?,
        created_at: Some(timestamp(c.next()?)),
        updated_at: Some(timestamp(c.next()?)),
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
