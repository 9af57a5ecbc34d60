//! A schema of its own on a PostgreSQL database, for a run that must leave the database as it
//! found it: the tests and `switchyard bench --database postgres://…` create one, point their
//! servers at it through the URL, and drop it at the end.

use crate::store::StoreError;
use sqlx::Connection;

/// A schema made for one run.
pub struct Schema {
    base: String,
    name: String,
    /// The base URL selecting the schema (`options=-csearch_path=…`), for the servers.
    pub url: String,
}

impl Schema {
    /// Creates `PREFIX_<unique>` on the database at `base`.
    pub async fn create(base: &str, prefix: &str) -> Result<Schema, StoreError> {
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        let mut c = quiet_connection(base).await?;
        sqlx::query(&format!("CREATE SCHEMA {name}")).execute(&mut c).await?;
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-csearch_path%3D{name}");
        Ok(Schema { base: base.to_owned(), name, url })
    }

    /// Drops the schema and everything in it.
    pub async fn drop_schema(self) -> Result<(), StoreError> {
        let mut c = quiet_connection(&self.base).await?;
        sqlx::query(&format!("DROP SCHEMA {} CASCADE", self.name)).execute(&mut c).await?;
        Ok(())
    }
}

/// A connection that does not log PostgreSQL's notices ("drop cascades to …").
async fn quiet_connection(url: &str) -> Result<sqlx::PgConnection, sqlx::Error> {
    let mut c = sqlx::PgConnection::connect(url).await?;
    sqlx::query("SET client_min_messages = warning").execute(&mut c).await?;
    Ok(c)
}
