//! PostgreSQL, for several backend instances on one database (design.md "Scaling past one
//! machine"): the same tables as SQLite in PostgreSQL's types, migrations applied at start-up
//! under PostgreSQL's advisory lock (instances starting together apply them once).

/// The store traits, from the queries both SQL stores share.
mod queries {
    crate::store::sql_store::sql_store!(super::PostgresStore, sqlx::postgres::PgRow);
}

use super::StoreError;
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
}

/// A fresh schema of its own on the database of `SWITCHYARD_TEST_POSTGRES_URL`, dropped when
/// the guard goes; `None` when the variable is unset.
#[cfg(test)]
pub(crate) async fn test_store() -> Option<(TestSchema, PostgresStore)> {
    let url = std::env::var("SWITCHYARD_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty())?;
    let schema = TestSchema::create(&url).await;
    let store = PostgresStore::open(&schema.url).await.unwrap();
    Some((schema, store))
}

/// A schema made for one test.
#[cfg(test)]
pub(crate) struct TestSchema {
    base: String,
    name: String,
    /// The URL that selects the schema.
    pub url: String,
}

#[cfg(test)]
impl TestSchema {
    pub async fn create(base: &str) -> TestSchema {
        use sqlx::Connection;
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        let mut c = sqlx::PgConnection::connect(base).await.expect("SWITCHYARD_TEST_POSTGRES_URL accepts connections");
        sqlx::query(&format!("CREATE SCHEMA {name}")).execute(&mut c).await.unwrap();
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-csearch_path%3D{name}");
        TestSchema { base: base.to_owned(), name, url }
    }
}

#[cfg(test)]
impl Drop for TestSchema {
    fn drop(&mut self) {
        let (base, name) = (self.base.clone(), self.name.clone());
        // Dropped from inside a test's runtime: a thread of its own with its own runtime.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
                use sqlx::Connection;
                if let Ok(mut c) = sqlx::PgConnection::connect(&base).await {
                    let _ = sqlx::query(&format!("DROP SCHEMA {name} CASCADE")).execute(&mut c).await;
                }
            })
        })
        .join();
    }
}
