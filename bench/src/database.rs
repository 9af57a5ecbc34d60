//! A bench run on PostgreSQL (`--database postgres://…`) works in a schema of its own, created
//! before the servers start and dropped after they stop, so it leaves the database as it was.

use sqlx::Connection;

/// Whether a database URL names PostgreSQL.
pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The run's schema.
pub struct Schema {
    base: String,
    name: String,
    /// The URL the servers get: the base URL selecting the schema.
    pub url: String,
}

impl Schema {
    pub async fn create(base: &str) -> anyhow::Result<Schema> {
        anyhow::ensure!(is_postgres(base), "--database: expected postgres://… (SQLite is the default)");
        let name = format!("switchyard_bench_{}", std::process::id());
        let mut c = quiet_connection(base).await?;
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE")).execute(&mut c).await?;
        sqlx::query(&format!("CREATE SCHEMA {name}")).execute(&mut c).await?;
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-csearch_path%3D{name}");
        Ok(Schema { base: base.to_owned(), name, url })
    }

    pub async fn drop_schema(self) {
        match quiet_connection(&self.base).await {
            Ok(mut c) => {
                if let Err(e) = sqlx::query(&format!("DROP SCHEMA {} CASCADE", self.name)).execute(&mut c).await {
                    eprintln!("could not drop schema {}: {e}", self.name);
                }
            }
            Err(e) => eprintln!("could not drop schema {}: {e}", self.name),
        }
    }
}

/// A connection that does not log PostgreSQL's notices ("drop cascades to …") into the report.
async fn quiet_connection(url: &str) -> Result<sqlx::PgConnection, sqlx::Error> {
    let mut c = sqlx::PgConnection::connect(url).await?;
    sqlx::query("SET client_min_messages = warning").execute(&mut c).await?;
    Ok(c)
}
