//! `chat.v1.ChatService`: rooms of stored messages fanned out over the event bus, and Monitor.
//!
//! Lagging participants: each participant buffers up to the bus capacity of undelivered room
//! messages (plus a small outbound queue). One that falls further behind is disconnected with
//! RESOURCE_EXHAUSTED — it can rejoin and gets the last 50 messages — so a slow reader never
//! stalls the room or grows the server's memory.
//!
//! Order: the database numbers each room's messages (the `id` field), and every participant
//! delivers live messages in that order (`room_order`), whichever instance they were posted on,
//! so all participants and the history agree.
//!
//! Both RPCs return their response stream at once and read the client's messages in a task:
//! waiting for the first inbound message before returning would deadlock clients that wait for
//! response headers first.

use super::room_order::RoomOrder;
use crate::error::{ApiError, Validator};
use crate::events::{EventBus, Missed};
use crate::metrics::{CpuMeter, RequestCounts, resident_bytes};
use crate::store::Store;
use futures::stream::BoxStream;
use prost::Message as _;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard_proto::chat::v1::chat_service_server::ChatService;
use switchyard_proto::chat::v1::{ChatMessage, MetricType, MonitorRequest, MonitorResponse};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

/// Messages a joiner gets from the room's history.
pub const HISTORY: u32 = 50;
/// Longest message text, in characters.
pub const MAX_MESSAGE_CHARS: usize = 4096;
/// Messages read from the store at most after the event bus reconnected (more than that and
/// the participant is better off rejoining; the next live message shows the gap again).
const CATCH_UP: u32 = 1_000;
/// Responses queued per participant before the room's buffer starts to fill.
const OUTBOUND_QUEUE: usize = 64;
/// The service_id that names the backend process itself.
pub const BACKEND: &str = "backend";

/// The topic of a room.
pub fn room_topic(session_id: &str) -> String {
    format!("chat.{session_id}")
}

/// The chat and monitor API.
#[derive(Clone)]
pub struct ChatApi {
    store: Arc<dyn Store>,
    bus: Arc<dyn EventBus>,
    counts: Arc<RequestCounts>,
    /// Monitor's sampling period.
    period: Duration,
}

type Tx<T> = mpsc::Sender<Result<T, Status>>;

impl ChatApi {
    pub fn new(store: Arc<dyn Store>, bus: Arc<dyn EventBus>, counts: Arc<RequestCounts>) -> Self {
        ChatApi { store, bus, counts, period: Duration::from_secs(1) }
    }

    /// Stores a message with the server's timestamp, publishes it to the room and returns its
    /// position.
    async fn post(&self, mut msg: ChatMessage) -> Result<i64, ApiError> {
        Validator::default()
            .check(
                msg.message.chars().count() <= MAX_MESSAGE_CHARS,
                "message",
                format!("longer than {MAX_MESSAGE_CHARS} characters"),
            )
            .finish()?;
        msg.timestamp = chrono::Utc::now().timestamp_millis();
        let stored = self.store.append_chat(msg).await?;
        self.bus.publish(&room_topic(&stored.session_id), stored.encode_to_vec().into());
        Ok(stored.id)
    }

    /// Reads up to `n` messages the room holds beyond what `order` delivered, and queues those due.
    async fn catch_up(
        &self,
        room: &str,
        order: &mut RoomOrder,
        n: u32,
        due: &mut Vec<ChatMessage>,
    ) -> Result<(), ApiError> {
        let rest = self.store.chat_since(room, order.next() - 1, n).await?;
        order.fill(rest, due);
        Ok(())
    }

    /// Sends messages that are due; false when the participant has gone.
    async fn deliver(tx: &Tx<ChatMessage>, due: &mut Vec<ChatMessage>) -> bool {
        for m in due.drain(..) {
            if tx.send(Ok(m)).await.is_err() {
                return false;
            }
        }
        true
    }

    /// One participant, from the first message to leaving.
    async fn participate(self, mut inbound: Streaming<ChatMessage>, tx: Tx<ChatMessage>) -> Result<(), ApiError> {
        let first = tokio::select! {
            m = inbound.message() => m,
            _ = tx.closed() => return Ok(()),
        };
        let Ok(Some(first)) = first else {
            return Ok(());
        };
        let room = first.session_id.clone();
        Validator::default().check(!room.is_empty(), "session_id", "must name the room to join").finish()?;
        let mut sub = self.bus.subscribe(&room_topic(&room));
        let history = self.store.chat_history(&room, HISTORY).await?;
        // Messages posted between subscribing and reading the history arrive twice; the order
        // drops what the history already gave.
        let mut order = RoomOrder::after(history.last().map_or(0, |m| m.id));
        let mut due = history;
        if !Self::deliver(&tx, &mut due).await {
            return Ok(());
        }
        let mut pending = Some(first);
        // The position of this participant's last post.
        let mut posted = 0;
        loop {
            if let Some(mut m) = pending.take() {
                if m.session_id.is_empty() {
                    m.session_id = room.clone();
                }
                Validator::default()
                    .check(
                        m.session_id == room,
                        "session_id",
                        format!("this stream is in room {room:?}, not {:?}", m.session_id),
                    )
                    .finish()?;
                if !m.message.is_empty() {
                    posted = self.post(m).await?;
                }
            }
            let fill_at = order.fill_at();
            tokio::select! {
                m = inbound.message() => match m {
                    Ok(Some(m)) => pending = Some(m),
                    Ok(None) => {
                        // The client is done sending: deliver the room up to its own last post
                        // (the acknowledgements of its messages), from the bus or else the store, then end.
                        while let Ok(Some(bytes)) = sub.try_recv() {
                            if let Ok(m) = ChatMessage::decode(bytes) {
                                order.accept(m, &mut due);
                            }
                        }
                        if order.next() <= posted {
                            let n = u32::try_from(posted - order.next() + 1).unwrap_or(u32::MAX);
                            self.catch_up(&room, &mut order, n, &mut due).await?;
                        }
                        Self::deliver(&tx, &mut due).await;
                        return Ok(());
                    }
                    Err(_) => return Ok(()),
                },
                ev = sub.recv() => match ev {
                    Ok(Some(bytes)) => {
                        let Ok(m) = ChatMessage::decode(bytes) else { continue };
                        order.accept(m, &mut due);
                        if !Self::deliver(&tx, &mut due).await {
                            return Ok(());
                        }
                    }
                    Ok(None) => return Ok(()),
                    // The bus may have lost messages: whatever the room holds beyond what was
                    // delivered comes from the store.
                    Err(Missed::Interrupted) => {
                        self.catch_up(&room, &mut order, CATCH_UP, &mut due).await?;
                        if !Self::deliver(&tx, &mut due).await {
                            return Ok(());
                        }
                    }
                    Err(lag @ Missed::Lagged(_)) => {
                        return Err(ApiError::ResourceExhausted(format!(
                            "this participant {lag}; rejoin to get the last {HISTORY} messages"
                        )));
                    }
                },
                _ = tokio::time::sleep_until(fill_at.unwrap_or_else(Instant::now).into()), if fill_at.is_some() => {
                    let n = order.gap_len();
                    self.catch_up(&room, &mut order, n, &mut due).await?;
                    if !Self::deliver(&tx, &mut due).await {
                        return Ok(());
                    }
                }
                _ = tx.closed() => return Ok(()),
            }
        }
    }

    fn sample(&self, req: &MonitorRequest, cpu: &mut CpuMeter) -> MonitorResponse {
        let metric = req.metric();
        let want = |m: MetricType| metric == MetricType::Unspecified || metric == m;
        let mut r = MonitorResponse { service_id: req.service_id.clone(), ..Default::default() };
        let cpu_now = cpu.sample();
        if req.service_id == BACKEND {
            if want(MetricType::Cpu) {
                r.cpu_usage = cpu_now;
            }
            if want(MetricType::Memory) {
                r.memory_usage = resident_bytes("self") as f64;
            }
            if want(MetricType::Requests) {
                r.request_count = self.counts.total() as i64;
            }
        } else if want(MetricType::Requests) {
            r.request_count = self.counts.service(&req.service_id).unwrap_or(0) as i64;
        }
        r
    }

    async fn monitor_loop(
        self,
        mut inbound: Streaming<MonitorRequest>,
        tx: Tx<MonitorResponse>,
    ) -> Result<(), ApiError> {
        let mut current: Option<MonitorRequest> = None;
        let mut inbound_open = true;
        let mut cpu = CpuMeter::default();
        let mut tick = tokio::time::interval(self.period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                m = inbound.message(), if inbound_open => match m {
                    Ok(Some(req)) => {
                        let known = req.service_id == BACKEND || self.counts.service(&req.service_id).is_some();
                        Validator::default()
                            .check(known, "service_id", format!("{:?} is neither \"backend\" nor a served service", req.service_id))
                            .finish()?;
                        if tx.send(Ok(self.sample(&req, &mut cpu))).await.is_err() {
                            return Ok(());
                        }
                        current = Some(req);
                        tick.reset();
                    }
                    // No more switches; keep reporting the current selection until the client leaves.
                    Ok(None) if current.is_some() => inbound_open = false,
                    Ok(None) | Err(_) => return Ok(()),
                },
                _ = tick.tick(), if current.is_some() => {
                    let req = current.as_ref().expect("guarded");
                    if tx.send(Ok(self.sample(req, &mut cpu))).await.is_err() {
                        return Ok(());
                    }
                }
                _ = tx.closed() => return Ok(()),
            }
        }
    }
}

/// Runs a participant task, turning its error into the stream's final status.
fn spawn_stream<T, F>(tx: Tx<T>, work: F)
where
    T: Send + 'static,
    F: std::future::Future<Output = Result<(), ApiError>> + Send + 'static,
{
    tokio::spawn(async move {
        let done = tx.clone();
        if let Err(e) = work.await {
            let _ = done.send(Err(Status::from(e))).await;
        }
    });
}

#[tonic::async_trait]
impl ChatService for ChatApi {
    type ChatStream = BoxStream<'static, Result<ChatMessage, Status>>;
    type MonitorStream = BoxStream<'static, Result<MonitorResponse, Status>>;

    async fn chat(&self, req: Request<Streaming<ChatMessage>>) -> Result<Response<Self::ChatStream>, Status> {
        let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
        spawn_stream(tx.clone(), self.clone().participate(req.into_inner(), tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn monitor(&self, req: Request<Streaming<MonitorRequest>>) -> Result<Response<Self::MonitorStream>, Status> {
        let (tx, rx) = mpsc::channel(4);
        spawn_stream(tx.clone(), self.clone().monitor_loop(req.into_inner(), tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
