//! Upload metadata in PostgreSQL.

use super::PostgresStore;
use crate::store::sql::timestamp;
use crate::store::{StoreError, UploadStore};
use async_trait::async_trait;
use sqlx::Row;
use switchyard_proto::upload::v1::UploadInfo;

#[async_trait]
impl UploadStore for PostgresStore {
    async fn insert_upload(&self, info: &UploadInfo) -> Result<(), StoreError> {
        let created = info.created_at.unwrap_or_default();
        sqlx::query("INSERT INTO uploads (id, upload_id, size, sha256, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&info.file_id)
            .bind(&info.upload_id)
            .bind(info.size)
            .bind(&info.sha256)
            .bind(created.seconds * 1_000_000_000 + i64::from(created.nanos))
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
