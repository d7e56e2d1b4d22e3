//! Fetching the next messages while the current ones are inserted and acked, so that a backlog
//! is stored in fewer, larger inserts: on ClickHouse every insert writes a new part per
//! partition (a file per column, on 18.16), and that per-insert cost, not the rows, is what
//! limits storage (see `bench/pipeline.sh`).
//!
//! What is fetched is bounded by the consumer's max ack pending (the messages being stored are
//! unacked too): half of it for the insert in flight, half for the next. A fetch in progress is
//! never dropped (its messages would wait for the ack wait before coming again); the messages
//! held get "in progress" acks while the insert before them is retried.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::pull::{Batch, BatchError};
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
    /// When the last insert's messages were handed over: a small one is not made again
    /// before `flush_interval` has passed since.
    pub last_batch: Option<Instant>,
}

impl Fetcher {
    /// The messages for the next insert, fetched while `storing` messages are being stored
    /// (`stored` turns true when they are). Returns once the store is done and something was
    /// fetched, or the next insert is full and the store is done, or at shutdown.
    pub async fn gather(&mut self, storing: usize, stored: watch::Receiver<bool>) -> Vec<Message> {
        let held = self.gather_held(storing, stored).await;
        if !held.is_empty() {
            self.last_batch = Some(Instant::now());
        }
        held
    }

    async fn gather_held(
        &mut self,
        storing: usize,
        mut stored: watch::Receiver<bool>,
    ) -> Vec<Message> {
        let mut held: Vec<Message> = Vec::new();
        let mut progress_due = Instant::now() + PROGRESS_EVERY;
        // The stream had little more ready: the next insert is what is held, once the store
        // is done (a waiting fetch now would hold it back until its expiry).
        let mut drained = false;
        loop {
            let done = *stored.borrow();
            if *self.shutdown.borrow() || (done && !held.is_empty()) {
                return held;
            }
            let room = self.window.room(if done { 0 } else { storing }, held.len());
            if room == 0 || drained {
                // Full, or nothing more ready: wait for the store, keeping the held messages
                // from being redelivered.
                let waited = tokio::time::timeout_at(progress_due, stored.wait_for(|d| *d));
                if waited.await.is_ok() {
                    return held;
                }
                progress(&held).await;
                progress_due = Instant::now() + PROGRESS_EVERY;
                continue;
            }
            let max = room.min(self.batch_size);
            let adding = !held.is_empty();
            let fetched = if adding {
                self.fetch_ready(max).await
            } else {
                self.fetch_first(max).await
            };
            match fetched {
                Ok(messages) => {
                    if !adding {
                        progress_due = Instant::now() + PROGRESS_EVERY;
                    }
                    drained = adding && messages.len() < enough(self.batch_size).min(max);
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

    /// The first messages of the next insert. What the stream has ready is taken at once when
    /// it is at least a tenth of a batch (a backlog, its tail, or a high rate), or when the
    /// last insert was `flush_interval` ago or more (a backlog at start, or after a pause):
    /// waiting for a full batch would only delay it. Otherwise it waits for more until
    /// `flush_interval` after the last insert, so a trickle is stored in one insert per
    /// interval, not one per round trip.
    async fn fetch_first(&self, max: usize) -> Result<Vec<Message>, String> {
        let mut ready = self.fetch_ready(max).await?;
        let since = self.last_batch.map(|t| t.elapsed());
        let due = since.is_none_or(|s| s >= self.flush_interval);
        if ready.len() >= enough(self.batch_size).min(max) || (due && !ready.is_empty()) {
            return Ok(ready);
        }
        let wait = match since {
            Some(s) if s < self.flush_interval => (self.flush_interval - s).max(MIN_WAIT),
            _ => self.flush_interval,
        };
        match self.fetch(max - ready.len(), wait).await {
            Ok(more) => {
                ready.extend(more);
                Ok(ready)
            }
            // Those already delivered are kept (dropped, they would come again only after the
            // ack wait); the error is the next fetch's to meet.
            Err(e) if !ready.is_empty() => {
                tracing::warn!("{}: fetch failed: {e}", self.stream);
                Ok(ready)
            }
            Err(e) => Err(e),
        }
    }

    /// Up to `max` messages the stream has ready now, without waiting (a `no_wait` pull: the
    /// server ends it at once, so none can arrive after it is dropped).
    async fn fetch_ready(&self, max: usize) -> Result<Vec<Message>, String> {
        let request = self.consumer.fetch().max_messages(max).messages();
        self.collect(request, max, Instant::now() + NO_END_GRACE)
            .await
    }

    /// Up to `max` messages, waiting at most `wait` for them.
    async fn fetch(&self, max: usize, wait: Duration) -> Result<Vec<Message>, String> {
        let request = self
            .consumer
            .batch()
            .max_messages(max)
            .expires(wait)
            .messages();
        self.collect(request, max, Instant::now() + wait + NO_END_GRACE)
            .await
    }

    /// Every message of a pull request, until the server ends it or `deadline`: a request
    /// whose end is lost (its NATS node restarted meanwhile) would otherwise be waited for
    /// forever, and a `no_wait` one has no expiry of its own.
    async fn collect(
        &self,
        request: impl Future<Output = Result<Batch, BatchError>>,
        max: usize,
        deadline: Instant,
    ) -> Result<Vec<Message>, String> {
        let no_end = || format!("no answer to a fetch within {NO_END_GRACE:?} of its end");
        let mut batch = tokio::time::timeout_at(deadline, request)
            .await
            .map_err(|_| no_end())?
            .map_err(|e| e.to_string())?;
        let mut messages = Vec::with_capacity(max);
        loop {
            match tokio::time::timeout_at(deadline, batch.next()).await {
                Ok(Some(Ok(m))) => messages.push(m),
                Ok(None) => break,
                // What was received is kept; the rest comes with the next fetch.
                Ok(Some(Err(e))) => {
                    tracing::debug!("{}: batch ended: {e}", self.stream);
                    break;
                }
                Err(_) => {
                    tracing::warn!(
                        "{}: {}; going on with the {} message(s) it brought",
                        self.stream,
                        no_end(),
                        messages.len()
                    );
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

/// How long past its expiry (a `no_wait` one: past its sending) a fetch's end may come.
const NO_END_GRACE: Duration = Duration::from_secs(5);

/// The shortest wait a fetch asks the server for.
const MIN_WAIT: Duration = Duration::from_millis(10);

/// How many ready messages make an insert worth doing at once: a tenth of a batch.
fn enough(batch_size: usize) -> usize {
    (batch_size / 10).max(1)
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
