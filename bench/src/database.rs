//! A bench run on PostgreSQL (`--database postgres://…`) works in a schema of its own, created
//! before the servers start and dropped after they stop, so it leaves the database as it was.

use backend::store::{PostgresSchema, is_postgres};

/// Creates the run's schema on the database at `url`.
pub async fn create(url: &str) -> anyhow::Result<PostgresSchema> {
    anyhow::ensure!(is_postgres(url), "--database: expected postgres://… (SQLite is the default)");
    Ok(PostgresSchema::create(url, "switchyard_bench").await?)
}

/// Drops the run's schema, if it made one; a failure is reported, not fatal.
pub async fn release(schema: &mut Option<PostgresSchema>) {
    if let Some(s) = schema.take()
        && let Err(e) = s.drop_schema().await
    {
        eprintln!("could not drop the bench's schema: {e}");
    }
}
