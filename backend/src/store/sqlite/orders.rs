//! Orders in SQLite; items are stored as JSON of the store's own form (see `store::sql`), so
//! the schema stays flat.

use super::{SqliteStore, now_nanos, timestamp};
use crate::store::sql::{decode_items, encode_items};
use crate::store::{OrderStore, StoreError};
use async_trait::async_trait;
use futures::stream::BoxStream;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use switchyard_proto::order::v1::{Order, OrderItem, OrderStatus};

/// Rows read per query while streaming a user's orders.
const ORDER_PAGE: u64 = 256;

const ORDER_COLUMNS: &str = "id, user_id, items, total, status, created_at, updated_at";

fn order_from_row(row: &SqliteRow) -> Result<Order, StoreError> {
    let items = decode_items(row.try_get("items")?)?;
    Ok(Order {
        order_id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        items,
        total: row.try_get("total")?,
        status: row.try_get("status")?,
        created_at: Some(timestamp(row.try_get("created_at")?)),
        updated_at: Some(timestamp(row.try_get("updated_at")?)),
    })
}

#[async_trait]
impl OrderStore for SqliteStore {
    async fn create_order(&self, user_id: &str, items: Vec<OrderItem>, total: f64) -> Result<Order, StoreError> {
        let id = uuid::Uuid::new_v4().to_string();
        let now = now_nanos();
        let items = encode_items(&items);
        let row = sqlx::query(&format!(
            "INSERT INTO orders (id, user_id, items, total, status, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING {ORDER_COLUMNS}"
        ))
        .bind(&id)
        .bind(user_id)
        .bind(items)
        .bind(total)
        .bind(OrderStatus::Pending as i32)
        .bind(now)
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                StoreError::NotFound(format!("user {user_id:?}"))
            }
            _ => e.into(),
        })?;
        order_from_row(&row)
    }

    async fn get_order(&self, id: &str) -> Result<Order, StoreError> {
        let row = sqlx::query(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("order {id:?}")))?;
        order_from_row(&row)
    }

    async fn set_order_status(&self, id: &str, from: OrderStatus, to: OrderStatus) -> Result<Order, StoreError> {
        let row = sqlx::query(&format!(
            "UPDATE orders SET status = ?, updated_at = ? WHERE id = ? AND status = ? RETURNING {ORDER_COLUMNS}"
        ))
        .bind(to as i32)
        .bind(now_nanos())
        .bind(id)
        .bind(from as i32)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => order_from_row(&row),
            None => {
                // Tell "no such order" from "someone changed it first".
                self.get_order(id).await?;
                Err(StoreError::Conflict(format!("order {id:?} changed concurrently; read it again")))
            }
        }
    }

    fn orders_of_user(&self, user_id: &str, limit: Option<u32>) -> BoxStream<'static, Result<Order, StoreError>> {
        let pool = self.pool.clone();
        let user_id = user_id.to_owned();
        let mut left = limit.map_or(u64::MAX, u64::from);
        // Pages, not one long cursor: a slow client must not hold one of the pool's few
        // connections for as long as it takes to read.
        Box::pin(async_stream::try_stream! {
            let sql = format!(
                "SELECT seq, {ORDER_COLUMNS} FROM orders WHERE user_id = ? AND seq > ? ORDER BY seq LIMIT ?"
            );
            let mut after = 0i64;
            while left > 0 {
                let page = left.min(ORDER_PAGE) as i64;
                let rows = sqlx::query(&sql).bind(&user_id).bind(after).bind(page).fetch_all(&pool).await?;
                let done = (rows.len() as i64) < page;
                for row in &rows {
                    after = row.try_get("seq")?;
                    left -= 1;
                    yield order_from_row(row)?;
                }
                if done {
                    break;
                }
            }
        })
    }
}
