//! Puts a chat room's live messages back in the database's order.
//!
//! The database numbers a room's messages 1, 2, 3… without gaps, but the bus carries each one
//! from wherever it was posted, after its commit: two posts committed one after the other can
//! arrive the other way round (published by two tasks, or two instances). A participant holds a
//! message back until the ones before it have arrived, and when one stays missing (a publish lost
//! while an instance's bus reconnected) it reads the gap from the store, so every participant
//! sees every message once, in one order, the order of the room's history.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use switchyard_proto::chat::v1::ChatMessage;

/// How long a gap may stay open before it is read from the store: long enough for a message
/// that is merely overtaken to arrive, short enough that a lost one is hardly noticed.
pub const GAP_WAIT: Duration = Duration::from_millis(250);

/// Held-back messages beyond which the gap is read from the store at once.
const MAX_HELD: usize = 256;

/// One participant's place in a room.
#[derive(Debug)]
pub struct RoomOrder {
    next: i64,
    held: BTreeMap<i64, ChatMessage>,
    gap_since: Option<Instant>,
}

impl RoomOrder {
    /// Starts after position `last` (the last message of the history sent, 0 for none).
    pub fn after(last: i64) -> Self {
        RoomOrder { next: last + 1, held: BTreeMap::new(), gap_since: None }
    }

    /// The position of the next message to deliver.
    pub fn next(&self) -> i64 {
        self.next
    }

    /// Takes a message (from the bus or the store) and appends to `due` the messages that can
    /// go out now, in order. Messages already delivered are dropped.
    pub fn accept(&mut self, m: ChatMessage, due: &mut Vec<ChatMessage>) {
        if m.id < self.next {
            return;
        }
        self.held.insert(m.id, m);
        while let Some(m) = self.held.remove(&self.next) {
            self.next += 1;
            due.push(m);
        }
        self.gap_since = match (self.held.is_empty(), self.gap_since) {
            (true, _) => None,
            (false, None) => Some(Instant::now()),
            (false, since) => since,
        };
    }

    /// When the current gap must be read from the store, if there is one.
    pub fn fill_at(&self) -> Option<Instant> {
        let since = self.gap_since?;
        Some(if self.held.len() >= MAX_HELD { since } else { since + GAP_WAIT })
    }

    /// How many messages, from `next()` on, the store must return to close the gap.
    pub fn gap_len(&self) -> u32 {
        self.held.keys().next_back().map_or(0, |last| u32::try_from(last - self.next + 1).unwrap_or(u32::MAX))
    }

    /// Takes the messages read from the store after `next() - 1`. The store numbers without gaps,
    /// so they close the gap; should it lack them anyway, delivery skips to what is held rather
    /// than stall the room.
    pub fn fill(&mut self, from_store: Vec<ChatMessage>, due: &mut Vec<ChatMessage>) {
        for m in from_store {
            self.accept(m, due);
        }
        if let Some(&first) = self.held.keys().next() {
            tracing::warn!(missing = self.next, first_held = first, "chat messages missing from the store; skipping");
            self.next = first;
            self.gap_since = None;
            let held = std::mem::take(&mut self.held);
            for (_, m) in held {
                self.accept(m, due);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: i64) -> ChatMessage {
        ChatMessage { id, message: format!("m{id}"), ..Default::default() }
    }

    fn ids(v: &[ChatMessage]) -> Vec<i64> {
        v.iter().map(|m| m.id).collect()
    }

    #[test]
    fn overtaken_messages_wait_for_those_before_them() {
        let mut o = RoomOrder::after(2);
        let mut due = Vec::new();
        o.accept(m(2), &mut due);
        assert!(due.is_empty(), "already in the history");
        o.accept(m(4), &mut due);
        o.accept(m(5), &mut due);
        assert!(due.is_empty());
        assert!(o.fill_at().is_some());
        assert_eq!(o.gap_len(), 3);
        o.accept(m(3), &mut due);
        assert_eq!(ids(&due), [3, 4, 5]);
        assert_eq!(o.next(), 6);
        assert_eq!(o.fill_at(), None);
        o.accept(m(4), &mut due);
        assert_eq!(ids(&due), [3, 4, 5], "a duplicate goes nowhere");
    }

    #[test]
    fn a_lost_message_comes_from_the_store() {
        let mut o = RoomOrder::after(0);
        let mut due = Vec::new();
        o.accept(m(1), &mut due);
        o.accept(m(3), &mut due);
        o.fill(vec![m(2), m(3)], &mut due);
        assert_eq!(ids(&due), [1, 2, 3]);
        assert_eq!(o.fill_at(), None);
    }

    #[test]
    fn a_gap_the_store_cannot_close_is_skipped() {
        let mut o = RoomOrder::after(0);
        let mut due = Vec::new();
        o.accept(m(3), &mut due);
        o.accept(m(4), &mut due);
        o.fill(Vec::new(), &mut due);
        assert_eq!(ids(&due), [3, 4]);
        assert_eq!(o.next(), 5);
    }

    #[test]
    fn many_held_messages_fill_at_once() {
        let mut o = RoomOrder::after(0);
        let mut due = Vec::new();
        for id in 2..(2 + MAX_HELD as i64) {
            o.accept(m(id), &mut due);
        }
        assert!(o.fill_at().unwrap() <= Instant::now());
    }
}
