//! Users in PostgreSQL.

use super::PostgresStore;
use crate::store::sql::unique_violation;
use crate::store::{NewUser, StoreError, UserPage, UserPatch, UserStore};
use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgRow;
use std::collections::HashMap;
use switchyard_proto::user::v1::{CreatedAt, User, UserStatus};

const USER_COLUMNS: &str = "seq, id, name, email, age, active, roles, metadata, created_at, timezone, status";

fn user_from_row(row: &PgRow) -> Result<User, StoreError> {
    let roles: Vec<String> =
        serde_json::from_str(row.try_get("roles")?).map_err(|e| StoreError::Corrupt(format!("roles: {e}")))?;
    let metadata: HashMap<String, String> =
        serde_json::from_str(row.try_get("metadata")?).map_err(|e| StoreError::Corrupt(format!("metadata: {e}")))?;
    Ok(User {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        email: row.try_get("email")?,
        age: row.try_get("age")?,
        active: row.try_get("active")?,
        roles,
        metadata,
        created_at: Some(CreatedAt { timestamp: row.try_get("created_at")?, timezone: row.try_get("timezone")? }),
        status: row.try_get("status")?,
    })
}

#[async_trait]
impl UserStore for PostgresStore {
    async fn create_user(&self, new: NewUser) -> Result<User, StoreError> {
        let id = uuid::Uuid::new_v4().to_string();
        let now = chrono::Utc::now().timestamp();
        let email = new.email.clone();
        let row = sqlx::query(&format!(
            "INSERT INTO users (id, name, email, age, active, roles, metadata, created_at, timezone, status)
             VALUES ($1, $2, $3, $4, TRUE, '[]', '{{}}', $5, 'UTC', $6) RETURNING {USER_COLUMNS}"
        ))
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
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("user {id:?}")))?;
        user_from_row(&row)
    }

    async fn update_user(&self, id: &str, patch: UserPatch) -> Result<User, StoreError> {
        let email = patch.email.clone();
        let row = sqlx::query(&format!(
            "UPDATE users SET name = COALESCE($1, name), email = COALESCE($2, email), age = COALESCE($3, age)
             WHERE id = $4 RETURNING {USER_COLUMNS}"
        ))
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
        let done =
            sqlx::query("DELETE FROM users WHERE id = $1").bind(id).execute(&self.pool).await.map_err(
                |e| match &e {
                    sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                        StoreError::InUse(format!("user {id:?} still has orders"))
                    }
                    _ => e.into(),
                },
            )?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("user {id:?}")));
        }
        Ok(())
    }

    async fn list_users(&self, after: i64, limit: u32) -> Result<UserPage, StoreError> {
        let rows = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE seq > $1 ORDER BY seq LIMIT $2"))
            .bind(after)
            .bind(i64::from(limit) + 1)
            .fetch_all(&self.pool)
            .await?;
        let more = rows.len() > limit as usize;
        let page = &rows[..rows.len().min(limit as usize)];
        let next = match (more, page.last()) {
            (true, Some(last)) => Some(last.try_get::<i64, _>("seq")?),
            _ => None,
        };
        let users = page.iter().map(user_from_row).collect::<Result<_, _>>()?;
        Ok(UserPage { users, next })
    }
}
