//! Chat history in SQLite.

use super::SqliteStore;
use crate::store::{ChatStore, StoreError};
use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use switchyard_proto::chat::v1::ChatMessage;

fn chat_from_row(row: &SqliteRow) -> Result<ChatMessage, StoreError> {
    Ok(ChatMessage {
        id: row.try_get("id")?,
        session_id: row.try_get("session_id")?,
        user_id: row.try_get("user_id")?,
        message: row.try_get("message")?,
        timestamp: row.try_get("timestamp")?,
    })
}

#[async_trait]
impl ChatStore for SqliteStore {
    async fn append_chat(&self, msg: ChatMessage) -> Result<ChatMessage, StoreError> {
        let row = sqlx::query(
            "INSERT INTO chat_messages (session_id, user_id, message, timestamp) VALUES (?, ?, ?, ?)
             RETURNING id, session_id, user_id, message, timestamp",
        )
        .bind(&msg.session_id)
        .bind(&msg.user_id)
        .bind(&msg.message)
        .bind(msg.timestamp)
        .fetch_one(&self.pool)
        .await?;
        chat_from_row(&row)
    }

    async fn chat_history(&self, session_id: &str, n: u32) -> Result<Vec<ChatMessage>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, session_id, user_id, message, timestamp FROM
               (SELECT * FROM chat_messages WHERE session_id = ? ORDER BY id DESC LIMIT ?)
             ORDER BY id",
        )
        .bind(session_id)
        .bind(i64::from(n))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(chat_from_row).collect()
    }
}
