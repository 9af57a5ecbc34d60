//! PostgreSQL, for several backend instances on one database (design.md "Scaling past one
//! machine"): the same tables as SQLite in PostgreSQL's types, migrations applied at start-up
//! under PostgreSQL's advisory lock (instances starting together apply them once).

/// The store traits, from the queries both SQL stores share.
mod queries {
    crate::store::sql_store::sql_store!(super::PostgresStore, sqlx::postgres::PgRow);
}

mod schema;

pub use schema::Schema;

use super::StoreError;
use super::sqlite::KeyReads;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::str::FromStr;
use std::time::Duration;

/// A PostgreSQL connection pool.
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://USER:PASSWORD@HOST:PORT/DB`; `?options=-csearch_path%3DS`
    /// selects a schema) and applies the migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(PostgresStore { pool })
    }

    /// The pool, for the event bus on the same database.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// None: a PostgreSQL connection is a socket the runtime drives itself, with no thread of its
    /// own to hand a statement to, so every query goes through the pool.
    fn key_reads(&self) -> Option<&KeyReads> {
        None
    }
}

/// A fresh schema of its own on the database of `SWITCHYARD_TEST_POSTGRES_URL`, dropped when
/// the guard goes; `None` when the variable is unset.
#[cfg(test)]
pub(crate) async fn test_store() -> Option<(TestSchema, PostgresStore)> {
    let url = std::env::var("SWITCHYARD_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty())?;
    let schema = Schema::create(&url, "test").await.expect("SWITCHYARD_TEST_POSTGRES_URL accepts connections");
    let store = PostgresStore::open(&schema.url).await.unwrap();
    Some((TestSchema(Some(schema)), store))
}

/// Drops its schema when a test ends, however it ends.
#[cfg(test)]
pub(crate) struct TestSchema(Option<Schema>);

#[cfg(test)]
impl Drop for TestSchema {
    fn drop(&mut self) {
        let Some(schema) = self.0.take() else { return };
        // Dropped from inside a test's runtime: a thread of its own with its own runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let _ = rt.block_on(schema.drop_schema());
        })
        .join();
    }
}
