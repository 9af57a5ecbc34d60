//! Live fan-out behind a small interface: publish bytes on a topic, subscribe to a topic.
//!
//! Payloads are encoded protobuf messages. [`InProcessBus`] fans out within one process: one
//! bounded broadcast channel per topic. `PgBus` (module `pg_bus`) carries them over PostgreSQL's
//! LISTEN/NOTIFY so that every backend instance on one database hears every publish.
//!
//! Slow subscribers never slow publishers: each subscriber has a bounded buffer, and one that
//! falls further behind than that is told so ([`Missed::Lagged`]) and dropped by its service (see
//! the policies in `services::order` and `services::chat`). A bus that lost its connection for a
//! while tells every subscriber ([`Missed::Interrupted`]), so that none goes on as if it had
//! heard everything.

use bytes::Bytes;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// Messages a subscriber will never see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Missed {
    /// It fell behind by this many messages.
    #[error("fell behind by {0} messages")]
    Lagged(u64),
    /// The bus lost its connection for a while: whatever was published then is gone.
    #[error("may have missed messages while the event bus reconnected")]
    Interrupted,
}

/// What travels on a topic's channel.
#[derive(Clone)]
enum Delivery {
    Payload(Bytes),
    Interrupted,
}

/// Fan-out of encoded messages by topic.
pub trait EventBus: Send + Sync + 'static {
    /// Delivers `payload` to every current subscriber of `topic` (none is fine).
    fn publish(&self, topic: &str, payload: Bytes);
    /// Starts receiving what is published on `topic` from now on.
    fn subscribe(&self, topic: &str) -> Subscription;
    /// How many subscribers `topic` has (for monitoring and tests).
    fn subscribers(&self, topic: &str) -> usize;
    /// Ends every subscription (their `recv` returns `Ok(None)`), for shutdown.
    fn close(&self);
}

/// A live subscription; dropping it unsubscribes.
pub struct Subscription {
    rx: broadcast::Receiver<Delivery>,
    /// Removes the topic's channel when the last subscriber leaves, so topics do not pile up.
    _guard: Option<TopicGuard>,
}

impl Subscription {
    /// The next payload; `Ok(None)` when the bus is gone, `Err` when messages were lost.
    pub async fn recv(&mut self) -> Result<Option<Bytes>, Missed> {
        match self.rx.recv().await {
            Ok(d) => d.into(),
            Err(broadcast::error::RecvError::Closed) => Ok(None),
            Err(broadcast::error::RecvError::Lagged(n)) => Err(Missed::Lagged(n)),
        }
    }

    /// A payload that is already waiting, without waiting for more.
    pub fn try_recv(&mut self) -> Result<Option<Bytes>, Missed> {
        match self.rx.try_recv() {
            Ok(d) => d.into(),
            Err(broadcast::error::TryRecvError::Lagged(n)) => Err(Missed::Lagged(n)),
            Err(_) => Ok(None),
        }
    }
}

impl From<Delivery> for Result<Option<Bytes>, Missed> {
    fn from(d: Delivery) -> Self {
        match d {
            Delivery::Payload(b) => Ok(Some(b)),
            Delivery::Interrupted => Err(Missed::Interrupted),
        }
    }
}

struct TopicGuard {
    topics: Arc<Mutex<HashMap<String, broadcast::Sender<Delivery>>>>,
    topic: String,
}

impl Drop for TopicGuard {
    fn drop(&mut self) {
        let mut topics = self.topics.lock().expect("topic map lock");
        // Fields drop in declaration order: the subscription's receiver is already gone here.
        if topics.get(&self.topic).is_some_and(|tx| tx.receiver_count() == 0) {
            topics.remove(&self.topic);
        }
    }
}

/// The in-process bus.
#[derive(Clone)]
pub struct InProcessBus {
    topics: Arc<Mutex<HashMap<String, broadcast::Sender<Delivery>>>>,
    capacity: usize,
}

impl InProcessBus {
    /// A bus whose subscribers each buffer up to `capacity` messages.
    pub fn new(capacity: usize) -> Self {
        InProcessBus { topics: Arc::default(), capacity }
    }

    /// Tells every subscriber that messages may have been lost (a bus that carries this one's
    /// publishes between processes lost its connection).
    pub fn interrupted(&self) {
        for tx in self.topics.lock().expect("topic map lock").values() {
            let _ = tx.send(Delivery::Interrupted);
        }
    }
}

impl EventBus for InProcessBus {
    fn publish(&self, topic: &str, payload: Bytes) {
        let topics = self.topics.lock().expect("topic map lock");
        if let Some(tx) = topics.get(topic) {
            // An error only means nobody listens right now.
            let _ = tx.send(Delivery::Payload(payload));
        }
    }

    fn subscribe(&self, topic: &str) -> Subscription {
        let mut topics = self.topics.lock().expect("topic map lock");
        let tx = topics.entry(topic.to_owned()).or_insert_with(|| broadcast::channel(self.capacity).0);
        Subscription {
            rx: tx.subscribe(),
            _guard: Some(TopicGuard { topics: self.topics.clone(), topic: topic.to_owned() }),
        }
    }

    fn subscribers(&self, topic: &str) -> usize {
        let topics = self.topics.lock().expect("topic map lock");
        topics.get(topic).map_or(0, |tx| tx.receiver_count())
    }

    fn close(&self) {
        self.topics.lock().expect("topic map lock").clear();
    }
}

impl Subscription {
    /// The subscription as a stream: payloads, with an `Err` where messages were lost (and the
    /// stream goes on), ending when the bus closes.
    pub fn into_stream(self) -> futures::stream::BoxStream<'static, Result<Bytes, Missed>> {
        Box::pin(futures::stream::unfold(self, |mut sub| async move {
            match sub.recv().await {
                Ok(Some(b)) => Some((Ok(b), sub)),
                Ok(None) => None,
                Err(l) => Some((Err(l), sub)),
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fan_out_lag_and_cleanup() {
        let bus = InProcessBus::new(2);
        bus.publish("t", Bytes::from_static(b"nobody hears this"));
        let mut a = bus.subscribe("t");
        let mut b = bus.subscribe("t");
        assert_eq!(bus.subscribers("t"), 2);
        bus.publish("t", Bytes::from_static(b"1"));
        assert_eq!(a.recv().await, Ok(Some(Bytes::from_static(b"1"))));
        bus.publish("t", Bytes::from_static(b"2"));
        bus.publish("t", Bytes::from_static(b"3"));
        // b missed nothing yet but buffers only 2: "1" was pushed out.
        assert_eq!(b.recv().await, Err(Missed::Lagged(1)));
        assert_eq!(b.recv().await, Ok(Some(Bytes::from_static(b"2"))));
        drop(a);
        assert_eq!(bus.subscribers("t"), 1);
        drop(b);
        assert_eq!(bus.subscribers("t"), 0);
        assert!(bus.topics.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_interruption_reaches_every_subscriber_in_its_place() {
        let bus = InProcessBus::new(8);
        let mut a = bus.subscribe("t");
        let mut b = bus.subscribe("u");
        bus.publish("t", Bytes::from_static(b"1"));
        bus.interrupted();
        bus.publish("t", Bytes::from_static(b"2"));
        assert_eq!(a.recv().await, Ok(Some(Bytes::from_static(b"1"))));
        assert_eq!(a.recv().await, Err(Missed::Interrupted));
        assert_eq!(a.recv().await, Ok(Some(Bytes::from_static(b"2"))));
        assert_eq!(b.try_recv(), Err(Missed::Interrupted));
    }
}
