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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn history_is_the_last_n_oldest_first_per_room() {
        let (_dir, s) = crate::store::sqlite::test_store().await;
        for i in 0..60 {
            let room = if i % 2 == 0 { "a" } else { "b" };
            let msg = ChatMessage {
                session_id: room.into(),
                user_id: "u".into(),
                message: format!("m{i}"),
                timestamp: i,
                id: 0,
            };
            s.append_chat(msg).await.unwrap();
        }
        let h = s.chat_history("a", 5).await.unwrap();
        assert_eq!(h.iter().map(|m| m.message.as_str()).collect::<Vec<_>>(), ["m50", "m52", "m54", "m56", "m58"]);
        assert!(h.windows(2).all(|w| w[0].id < w[1].id));
        assert!(s.chat_history("none", 5).await.unwrap().is_empty());
    }
}
