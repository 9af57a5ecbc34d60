//! The event bus over PostgreSQL: every instance on one database hears every publish.
//!
//! A publish becomes a `NOTIFY` on one channel, sent in order by one task per process; every
//! instance LISTENs on that channel with a connection of its own and fans what arrives out to
//! its local subscribers through an [`InProcessBus`] — its own publishes included, so a
//! subscriber sees one order, PostgreSQL's commit order, wherever a message was published.
//! A payload too big for a notification (PostgreSQL's limit is 8,000 bytes) is stored in
//! `bus_payloads` and the notification carries its id.

use crate::events::{EventBus, InProcessBus, Subscription};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::mpsc;

const CHANNEL: &str = "switchyard_events";

/// Payloads up to this size travel inside the notification (base64 grows them by a third).
const INLINE: usize = 5_000;

/// The bus of several instances.
pub struct PgBus {
    local: InProcessBus,
    outbox: mpsc::UnboundedSender<(String, Bytes)>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl PgBus {
    /// Starts listening on `pool`'s database; subscribers each buffer up to `capacity` messages.
    pub async fn start(pool: PgPool, capacity: usize) -> Result<PgBus, sqlx::Error> {
        let local = InProcessBus::new(capacity);
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen(CHANNEL).await?;
        let (outbox, rx) = mpsc::unbounded_channel();
        let tasks = vec![tokio::spawn(deliver(listener, pool.clone(), local.clone())), tokio::spawn(send(pool, rx))];
        Ok(PgBus { local, outbox, tasks })
    }
}

/// Sends the publishes of this process in the order they were made.
async fn send(pool: PgPool, mut rx: mpsc::UnboundedReceiver<(String, Bytes)>) {
    while let Some((topic, payload)) = rx.recv().await {
        if let Err(e) = notify(&pool, &topic, &payload).await {
            tracing::error!(error = %e, topic, "event not published");
        }
    }
}

async fn notify(pool: &PgPool, topic: &str, payload: &[u8]) -> Result<(), sqlx::Error> {
    let body = if payload.len() <= INLINE {
        format!("{topic}\n{}", STANDARD.encode(payload))
    } else {
        let id: i64 = sqlx::query_scalar("INSERT INTO bus_payloads (payload) VALUES ($1) RETURNING id")
            .bind(payload)
            .fetch_one(pool)
            .await?;
        sqlx::query("DELETE FROM bus_payloads WHERE created_at < now() - interval '1 minute'").execute(pool).await?;
        format!("{topic}\n#{id}")
    };
    sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(body).execute(pool).await?;
    Ok(())
}

/// Hands what the database delivers to local subscribers. PgListener reconnects by itself after
/// a lost connection; what was published meanwhile is lost, so every local subscriber is told
/// (order watchers are dropped to re-read, chat participants read the gap from the store).
async fn deliver(mut listener: PgListener, pool: PgPool, local: InProcessBus) {
    loop {
        match listener.try_recv().await {
            Ok(Some(n)) => {
                let Some((topic, body)) = n.payload().split_once('\n') else { continue };
                if local.subscribers(topic) == 0 {
                    continue;
                }
                if let Some(payload) = payload(&pool, body).await {
                    local.publish(topic, Bytes::from(payload));
                }
            }
            // The connection dropped and PgListener has connected and listened again.
            Ok(None) => {
                tracing::warn!("event bus connection lost and re-established");
                local.interrupted();
            }
            Err(e) => {
                tracing::warn!(error = %e, "event bus listener failed; reconnecting");
                while let Err(e) = {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    listener.listen(CHANNEL).await
                } {
                    tracing::debug!(error = %e, "event bus still unreachable");
                }
                local.interrupted();
            }
        }
    }
}

/// A notification's payload: inline, or read from `bus_payloads` by id.
async fn payload(pool: &PgPool, body: &str) -> Option<Vec<u8>> {
    let Some(id) = body.strip_prefix('#') else { return STANDARD.decode(body).ok() };
    let id = id.parse::<i64>().ok()?;
    match sqlx::query_scalar::<_, Vec<u8>>("SELECT payload FROM bus_payloads WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
    {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "event payload not read");
            None
        }
    }
}

impl EventBus for PgBus {
    fn publish(&self, topic: &str, payload: Bytes) {
        let _ = self.outbox.send((topic.to_owned(), payload));
    }

    fn subscribe(&self, topic: &str) -> Subscription {
        self.local.subscribe(topic)
    }

    fn subscribers(&self, topic: &str) -> usize {
        self.local.subscribers(topic)
    }

    fn close(&self) {
        for t in &self.tasks {
            t.abort();
        }
        self.local.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Missed;
    use crate::store::{PostgresSchema, PostgresStore};
    use std::time::Duration;

    /// A listener whose connection is cut tells its subscribers (who may have missed something),
    /// reconnects, and goes on delivering.
    #[tokio::test]
    async fn a_cut_connection_is_reported_and_healed() {
        let Some(base) = std::env::var("SWITCHYARD_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty()) else {
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), "SKIPPED {}: PostgreSQL is not configured here", module_path!());
            return;
        };
        let schema = PostgresSchema::create(&base, "bus").await.unwrap();
        let app = format!("bus_{}", uuid::Uuid::new_v4().simple());
        let store = PostgresStore::open(&format!("{}&application_name={app}", schema.url)).await.unwrap();
        let bus = PgBus::start(store.pool().clone(), 16).await.unwrap();
        let mut sub = bus.subscribe("t");
        bus.publish("t", Bytes::from_static(b"before"));
        let next = async |sub: &mut crate::events::Subscription| {
            tokio::time::timeout(Duration::from_secs(10), sub.recv()).await.expect("a delivery in time")
        };
        assert_eq!(next(&mut sub).await, Ok(Some(Bytes::from_static(b"before"))));
        let cut: i64 = sqlx::query_scalar(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE application_name = $1 AND query ILIKE 'LISTEN%'",
        )
        .bind(&app)
        .fetch_one(&PostgresStore::open(&schema.url).await.unwrap().pool().clone())
        .await
        .unwrap();
        assert_eq!(cut, 1, "the listener's connection");
        assert_eq!(next(&mut sub).await, Err(Missed::Interrupted));
        bus.publish("t", Bytes::from_static(b"after"));
        assert_eq!(next(&mut sub).await, Ok(Some(Bytes::from_static(b"after"))));
        bus.close();
        store.pool().close().await;
        schema.drop_schema().await.unwrap();
    }
}
