//! One implementation of the store traits for both SQL databases: the queries are written once,
//! in SQL both SQLite and PostgreSQL accept (`$N` parameters in order of first use, `RETURNING`,
//! `TRUE`), and [`sql_store!`] instantiates them for a store type and its row type. What differs
//! between the two lives in their migrations (column types, the case-insensitive email index) and
//! in how each opens its pool.

/// Rows read per query while streaming a user's orders.
pub(crate) const ORDER_PAGE: u64 = 256;

/// Implements `UserStore`, `OrderStore`, `UploadStore` and `ChatStore` for `$store` (a struct
/// with a `pool` field and a `key_reads()` method, see `sqlite/key_reads.rs`) whose rows are
/// `$row`. Invoke it in a module of its own.
macro_rules! sql_store {
    ($store:ty, $row:ty) => {
        use crate::store::sql::{
            encode_items, foreign_key_violation, nanos, now_nanos, order_columns, order_from_row, timestamp, unique_violation,
            user_columns, user_from_row,
        };
        use crate::store::{NewUser, StoreError, UserPage, UserPatch};
        use async_trait::async_trait;
        use futures::stream::BoxStream;
        use sqlx::Row;
        use switchyard_proto::chat::v1::ChatMessage;
        use switchyard_proto::order::v1::{Order, OrderItem, OrderStatus};
        use switchyard_proto::upload::v1::UploadInfo;
        use switchyard_proto::user::v1::{User, UserStatus};

        #[async_trait]
        impl crate::store::UserStore for $store {
            async fn create_user(&self, new: NewUser) -> Result<User, StoreError> {
                let id = uuid::Uuid::new_v4().to_string();
                let now = chrono::Utc::now().timestamp();
                let email = new.email.clone();
                let row = sqlx::query(concat!("INSERT INTO users (id, name, email, age, active, roles, metadata, created_at, timezone, status)
                     VALUES ($1, $2, $3, $4, TRUE, '[]', '{}', $5, 'UTC', $6) RETURNING ", user_columns!()))
                .bind(&id)
                .bind(&new.name)
                .bind(&new.email)
                .bind(new.age)
                .bind(now)
                .bind(UserStatus::Active as i32)
                .fetch_one(&self.pool)
                .await
                .map_err(|e| unique_violation(e, || format!("a user with email {email:?}")))?;
                user_from_row(&row)
            }

            async fn get_user(&self, id: &str) -> Result<User, StoreError> {
                let sql = concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1");
                let user = match self.key_reads() {
                    Some(reads) => reads.one(sql, id, |row| user_from_row(row))?,
                    None => sqlx::query(sql).bind(id).fetch_optional(&self.pool).await?.map(|row| user_from_row(&row)).transpose()?,
                };
                user.ok_or_else(|| StoreError::NotFound(format!("user {id:?}")))
            }

            async fn update_user(&self, id: &str, patch: UserPatch) -> Result<User, StoreError> {
                let email = patch.email.clone();
                let row = sqlx::query(concat!("UPDATE users SET name = COALESCE($1, name), email = COALESCE($2, email), age = COALESCE($3, age)
                     WHERE id = $4 RETURNING ", user_columns!()))
                .bind(patch.name)
                .bind(patch.email)
                .bind(patch.age)
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| unique_violation(e, || format!("a user with email {:?}", email.unwrap_or_default())))?
                .ok_or_else(|| StoreError::NotFound(format!("user {id:?}")))?;
                user_from_row(&row)
            }

            async fn delete_user(&self, id: &str) -> Result<(), StoreError> {
                let done = sqlx::query("DELETE FROM users WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| foreign_key_violation(e, || StoreError::InUse(format!("user {id:?} still has orders"))))?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound(format!("user {id:?}")));
                }
                Ok(())
            }

            async fn list_users(&self, after: i64, limit: u32) -> Result<UserPage, StoreError> {
                let rows = sqlx::query(concat!("SELECT ", user_columns!(), " FROM users WHERE seq > $1 ORDER BY seq LIMIT $2"))
                    .bind(after)
                    .bind(i64::from(limit) + 1)
                    .fetch_all(&self.pool)
                    .await?;
                let more = rows.len() > limit as usize;
                let page = &rows[..rows.len().min(limit as usize)];
                let next = match (more, page.last()) {
                    // `seq`, the first column.
                    (true, Some(last)) => Some(last.try_get::<i64, _>(0)?),
                    _ => None,
                };
                let users = page.iter().map(user_from_row).collect::<Result<_, _>>()?;
                Ok(UserPage { users, next })
            }
        }

        #[async_trait]
        impl crate::store::OrderStore for $store {
            async fn create_order(&self, user_id: &str, items: Vec<OrderItem>, total: f64) -> Result<Order, StoreError> {
                let id = uuid::Uuid::new_v4().to_string();
                let now = now_nanos();
                let row = sqlx::query(concat!("INSERT INTO orders (id, user_id, items, total, status, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ", order_columns!()))
                .bind(&id)
                .bind(user_id)
                .bind(encode_items(&items))
                .bind(total)
                .bind(OrderStatus::Pending as i32)
                .bind(now)
                .bind(now)
                .fetch_one(&self.pool)
                .await
                .map_err(|e| foreign_key_violation(e, || StoreError::NotFound(format!("user {user_id:?}"))))?;
                order_from_row(&row)
            }

            async fn get_order(&self, id: &str) -> Result<Order, StoreError> {
                let sql = concat!("SELECT ", order_columns!(), " FROM orders WHERE id = $1");
                let order = match self.key_reads() {
                    Some(reads) => reads.one(sql, id, |row| order_from_row(row))?,
                    None => sqlx::query(sql).bind(id).fetch_optional(&self.pool).await?.map(|row| order_from_row(&row)).transpose()?,
                };
                order.ok_or_else(|| StoreError::NotFound(format!("order {id:?}")))
            }

            async fn set_order_status(&self, id: &str, from: OrderStatus, to: OrderStatus) -> Result<Order, StoreError> {
                // One statement: the database re-checks `status` on the row it writes (PostgreSQL on the
                // row it locks, SQLite under its one writer), so of racing writers exactly one matches.
                let row = sqlx::query(concat!("UPDATE orders SET status = $1, updated_at = $2 WHERE id = $3 AND status = $4 RETURNING ", order_columns!()))
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
                    let sql = concat!("SELECT ", order_columns!(), ", seq FROM orders WHERE user_id = $1 AND seq > $2 ORDER BY seq LIMIT $3");
                    let mut after = 0i64;
                    while left > 0 {
                        let page = left.min($crate::store::sql_store::ORDER_PAGE) as i64;
                        let rows = sqlx::query(sql).bind(&user_id).bind(after).bind(page).fetch_all(&pool).await?;
                        let done = (rows.len() as i64) < page;
                        for row in &rows {
                            // `seq`, selected after the order's seven columns.
                            after = row.try_get(7)?;
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

        #[async_trait]
        impl crate::store::UploadStore for $store {
            async fn insert_upload(&self, info: &UploadInfo) -> Result<(), StoreError> {
                let created = info.created_at.unwrap_or_default();
                sqlx::query("INSERT INTO uploads (id, upload_id, size, sha256, created_at) VALUES ($1, $2, $3, $4, $5)")
                    .bind(&info.file_id)
                    .bind(&info.upload_id)
                    .bind(info.size)
                    .bind(&info.sha256)
                    .bind(nanos(created))
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn get_upload(&self, file_id: &str) -> Result<UploadInfo, StoreError> {
                let row = sqlx::query("SELECT id, upload_id, size, sha256, created_at FROM uploads WHERE id = $1")
                    .bind(file_id)
                    .fetch_optional(&self.pool)
                    .await?
                    .ok_or_else(|| StoreError::NotFound(format!("upload {file_id:?}")))?;
                Ok(UploadInfo {
                    file_id: row.try_get("id")?,
                    upload_id: row.try_get("upload_id")?,
                    size: row.try_get("size")?,
                    sha256: row.try_get("sha256")?,
                    created_at: Some(timestamp(row.try_get("created_at")?)),
                })
            }
        }

        /// A room's messages carry their position in the room as their id.
        macro_rules! chat_columns {
            () => {
                "position AS id, session_id, user_id, message, timestamp"
            };
        }

        fn chat_from_row(row: &$row) -> Result<ChatMessage, StoreError> {
            Ok(ChatMessage {
                id: row.try_get("id")?,
                session_id: row.try_get("session_id")?,
                user_id: row.try_get("user_id")?,
                message: row.try_get("message")?,
                timestamp: row.try_get("timestamp")?,
            })
        }

        #[async_trait]
        impl crate::store::ChatStore for $store {
            async fn append_chat(&self, msg: ChatMessage) -> Result<ChatMessage, StoreError> {
                // The room's counter row is written first: PostgreSQL holds its row lock and SQLite
                // its one writer until commit, so racing posts (from any instance) take positions one
                // after another, and a post that fails gives its position back with the rollback.
                let mut tx = self.pool.begin().await?;
                let position: i64 = sqlx::query_scalar(
                    "INSERT INTO chat_rooms (session_id, last_position) VALUES ($1, 1)
                     ON CONFLICT (session_id) DO UPDATE SET last_position = chat_rooms.last_position + 1
                     RETURNING last_position",
                )
                .bind(&msg.session_id)
                .fetch_one(&mut *tx)
                .await?;
                let row = sqlx::query(concat!("INSERT INTO chat_messages (session_id, position, user_id, message, timestamp)
                     VALUES ($1, $2, $3, $4, $5) RETURNING ", chat_columns!()))
                .bind(&msg.session_id)
                .bind(position)
                .bind(&msg.user_id)
                .bind(&msg.message)
                .bind(msg.timestamp)
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                chat_from_row(&row)
            }

            async fn chat_history(&self, session_id: &str, n: u32) -> Result<Vec<ChatMessage>, StoreError> {
                let rows = sqlx::query(concat!("SELECT ", chat_columns!(), " FROM
                       (SELECT * FROM chat_messages WHERE session_id = $1 ORDER BY position DESC LIMIT $2) AS last
                     ORDER BY position"))
                .bind(session_id)
                .bind(i64::from(n))
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(chat_from_row).collect()
            }

            async fn chat_since(&self, session_id: &str, after: i64, n: u32) -> Result<Vec<ChatMessage>, StoreError> {
                let rows = sqlx::query(concat!("SELECT ", chat_columns!(), " FROM chat_messages WHERE session_id = $1 AND position > $2
                     ORDER BY position LIMIT $3"))
                .bind(session_id)
                .bind(after)
                .bind(i64::from(n))
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(chat_from_row).collect()
            }
        }
    };
}

pub(crate) use sql_store;
