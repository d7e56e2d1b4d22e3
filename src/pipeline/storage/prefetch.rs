//! Fetching the next messages while the current ones are inserted and acked, so that a backlog
//! is stored in fewer, larger inserts: on ClickHouse every insert writes a new part per
//! partition (a file per column, on 18.16), and that per-insert cost, not the rows, is what
//! limits storage (see `bench/pipeline.sh`).
//!
//! What is fetched is bounded by the consumer's max ack pending (the messages being stored are
//! unacked too): half of it for the insert in flight, half for the next. A fetch in progress is
//! never dropped (its messages would wait for the ack wait before coming again); the messages
//! held get "in progress" acks while the insert before them is retried.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::{AckKind, Message};
use futures::StreamExt;
use tokio::sync::watch;
use tokio::time::Instant;

use super::consumer::PROGRESS_EVERY;
use super::health::StorageState;

/// How many messages may be delivered and unacked at once, split between two inserts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    limit: usize,
}

impl Window {
    /// From the consumer's max ack pending as the server has it (an existing consumer keeps
    /// its own; -1 or 0: none, then 4 batches as storage creates them).
    pub fn new(max_ack_pending: i64, batch_size: usize) -> Self {
        let limit = match usize::try_from(max_ack_pending) {
            Ok(n) if n > 0 => n,
            _ => batch_size.saturating_mul(4),
        };
        Window {
            limit: limit.max(1),
        }
    }

    /// The most messages one insert takes.
    pub fn per_insert(&self) -> usize {
        (self.limit / 2).max(1)
    }

    /// How many more may be fetched while `storing` messages are being stored and `held`
    /// wait for the next insert.
    pub fn room(&self, storing: usize, held: usize) -> usize {
        let unacked = storing.saturating_add(held);
        (self.per_insert().saturating_sub(held)).min(self.limit.saturating_sub(unacked))
    }
}

/// One stream's fetching side.
pub struct Fetcher {
    pub consumer: PullConsumer,
    pub stream: &'static str,
    pub batch_size: usize,
    pub flush_interval: Duration,
    pub window: Window,
    pub state: Arc<StorageState>,
    pub shutdown: watch::Receiver<bool>,
}

impl Fetcher {
    /// The messages for the next insert, fetched while `storing` messages are being stored
    /// (`stored` turns true when they are). Returns once the store is done and something was
    /// fetched, or the next insert is full and the store is done, or at shutdown.
    pub async fn gather(
        &mut self,
        storing: usize,
        mut stored: watch::Receiver<bool>,
    ) -> Vec<Message> {
        let mut held: Vec<Message> = Vec::new();
        let mut progress_due = Instant::now() + PROGRESS_EVERY;
        loop {
            let done = *stored.borrow();
            if *self.shutdown.borrow() || (done && !held.is_empty()) {
                return held;
            }
            let room = self.window.room(if done { 0 } else { storing }, held.len());
            if room == 0 {
                // Full: wait for the store, keeping the held messages from being redelivered.
                let waited = tokio::time::timeout_at(progress_due, stored.wait_for(|d| *d));
                if waited.await.is_ok() {
                    return held;
                }
                progress(&held).await;
                progress_due = Instant::now() + PROGRESS_EVERY;
                continue;
            }
            match self.fetch(room.min(self.batch_size)).await {
                Ok(messages) => {
                    if held.is_empty() {
                        progress_due = Instant::now() + PROGRESS_EVERY;
                    }
                    held.extend(messages);
                }
                Err(e) => {
                    tracing::warn!("{}: fetch failed: {e}", self.stream);
                    self.state.update(|c| {
                        c.last_error = Some(format!("fetch from {}: {e}", self.stream))
                    });
                    if !held.is_empty() && *stored.borrow() {
                        return held;
                    }
                    self.pause(Duration::from_secs(1)).await;
                }
            }
            if !held.is_empty() && Instant::now() >= progress_due {
                progress(&held).await;
                progress_due = Instant::now() + PROGRESS_EVERY;
            }
        }
    }

    /// Up to `max` messages, waiting at most `flush_interval` for them.
    async fn fetch(&self, max: usize) -> Result<Vec<Message>, String> {
        let mut batch = self
            .consumer
            .batch()
            .max_messages(max)
            .expires(self.flush_interval)
            .messages()
            .await
            .map_err(|e| e.to_string())?;
        let mut messages = Vec::with_capacity(max);
        while let Some(next) = batch.next().await {
            match next {
                Ok(m) => messages.push(m),
                // What was received is kept; the rest comes with the next fetch.
                Err(e) => {
                    tracing::debug!("{}: batch ended: {e}", self.stream);
                    break;
                }
            }
        }
        Ok(messages)
    }

    async fn pause(&mut self, d: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = self.shutdown.wait_for(|s| *s) => {}
        }
    }
}

async fn progress(messages: &[Message]) {
    for m in messages {
        let _ = m.ack_with(AckKind::Progress).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_the_consumers_max_ack_pending() {
        assert_eq!(Window::new(4000, 1000).per_insert(), 2000);
        // An existing consumer made with another batch size keeps its own bound.
        assert_eq!(Window::new(500, 1000).per_insert(), 250);
        // None set on the server: what storage creates, 4 batches.
        assert_eq!(Window::new(-1, 1000), Window::new(4000, 1000));
        assert_eq!(Window::new(0, 1000), Window::new(4000, 1000));
        assert_eq!(Window::new(1, 1000).per_insert(), 1);
    }

    #[test]
    fn room_never_takes_unacked_past_the_window() {
        let w = Window::new(4000, 1000);
        assert_eq!(w.room(0, 0), 2000);
        assert_eq!(w.room(2000, 0), 2000);
        assert_eq!(w.room(2000, 1500), 500);
        assert_eq!(w.room(2000, 2000), 0);
        // A store larger than half (a consumer whose bound shrank) leaves less.
        assert_eq!(w.room(3500, 0), 500);
        assert_eq!(w.room(4000, 0), 0);
        assert_eq!(w.room(0, 2500), 0);
    }
}
