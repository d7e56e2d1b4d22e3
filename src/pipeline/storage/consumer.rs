//! One stream's durable pull consumer: fetch a batch, turn it into rows, insert every table's
//! rows, and only then ack the batch (at least once: a crash before the ack means the batch
//! comes again, so rows may be duplicated, never lost).
//!
//! While a batch is stored, the next one is fetched (prefetch.rs), up to the consumer's max ack
//! pending in all. While ClickHouse fails, the same batch is retried with backoff and no more is
//! fetched than that (memory stays bounded per stream); the messages held get "in progress"
//! acks so JetStream does not hand them out again meanwhile. A batch's tables are inserted
//! concurrently; a table whose insert succeeded is not inserted again when another fails.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::pull::Config as PullConfig;
use async_nats::jetstream::consumer::{self, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::context::Context;
use async_nats::jetstream::{AckKind, Message};
use tokio::sync::watch;

use super::health::StorageState;
use super::prefetch::{Fetcher, Window};
use super::rows::{TableRows, TimeEncoding};
use crate::pipeline::message::{DataType, MarketMessage};

/// How long JetStream waits for an ack before it delivers a message again.
const ACK_WAIT: Duration = Duration::from_secs(30);
/// How often a stream that is missing, or a consumer that cannot be made, is tried again.
const SETUP_RETRY: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// "In progress" acks while retrying, well inside [`ACK_WAIT`].
pub(super) const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// After shutdown is asked, how long a failing insert is still retried before giving up on
/// the batch (unacked, so it comes again at the next start).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub struct Worker {
    pub js: Context,
    pub clickhouse: clickhouse::Client,
    pub stream: &'static str,
    pub durable: String,
    pub batch_size: usize,
    pub flush_interval: Duration,
    pub encoding: TimeEncoding,
    pub state: Arc<StorageState>,
    pub shutdown: watch::Receiver<bool>,
    /// Ids stored lately: a message that comes again is acked, not stored twice.
    pub seen: super::seen::Seen,
    /// Where the ids are saved at the stop and were loaded from (None: not kept).
    pub seen_file: Option<std::path::PathBuf>,
}

/// The collector's id of a message (`{id}:{boot}:{data_type}:{seq}`), if it has one.
fn msg_id(m: &Message) -> Option<&str> {
    m.headers.as_ref()?.get("Nats-Msg-Id").map(|v| v.as_str())
}

impl Worker {
    /// Runs until shutdown; the messages fetched are stored and acked first.
    pub async fn run(mut self) {
        let Some(consumer) = self.consumer().await else {
            return;
        };
        let window = Window::new(
            consumer.cached_info().config.max_ack_pending,
            self.batch_size,
        );
        let mut fetcher = Fetcher {
            consumer,
            stream: self.stream,
            batch_size: self.batch_size,
            flush_interval: self.flush_interval,
            window,
            state: self.state.clone(),
            shutdown: self.shutdown.clone(),
            last_batch: None,
        };
        let mut ready: Vec<Message> = Vec::new();
        while !(*self.shutdown.borrow() && ready.is_empty()) {
            // This insert and its acks, and meanwhile the fetches for the next one.
            let (stored, done) = watch::channel(false);
            let storing = ready.len();
            let store = async {
                let ok = ready.is_empty() || self.store(ready).await;
                let _ = stored.send(true);
                ok
            };
            let (ok, next) = tokio::join!(store, fetcher.gather(storing, done));
            if !ok {
                // Shutdown cut a failing insert: what was fetched since comes again too.
                break;
            }
            ready = next;
        }
        if let Some(path) = &self.seen_file {
            if let Err(e) = self.seen.save(path) {
                tracing::warn!("cannot save the ids stored to {}: {e}", path.display());
            }
        }
    }

    /// The durable consumer, created if absent; retried every 10 s while the stream is missing.
    async fn consumer(&mut self) -> Option<PullConsumer> {
        loop {
            match self.open().await {
                Ok(consumer) => {
                    self.state.update(|c| c.missing_streams.remove(self.stream));
                    return Some(consumer);
                }
                Err((error, missing)) => {
                    tracing::error!("{error}; retrying in {}s", SETUP_RETRY.as_secs());
                    self.state.update(|c| {
                        if missing {
                            c.missing_streams
                                .insert(self.stream.to_string(), error.clone());
                        }
                        c.last_error = Some(error);
                    });
                }
            }
            if self.pause(SETUP_RETRY).await {
                return None;
            }
        }
    }

    /// Err((message, stream missing)).
    async fn open(&self) -> Result<PullConsumer, (String, bool)> {
        use async_nats::jetstream::context::GetStreamErrorKind;
        let stream = self
            .js
            .get_stream(self.stream)
            .await
            .map_err(|e| match e.kind() {
                GetStreamErrorKind::JetStream(j)
                    if j.error_code() == async_nats::jetstream::ErrorCode::STREAM_NOT_FOUND =>
                {
                    (
                        format!("stream {} missing: run mp-remote deploy", self.stream),
                        true,
                    )
                }
                _ => (format!("cannot read stream {}: {e}", self.stream), false),
            })?;
        let wanted = wanted_config(&self.durable, self.batch_size);
        // Never deleted or re-created: its position is what makes restarts lose nothing.
        let consumer: PullConsumer = stream
            .get_or_create_consumer(&self.durable, wanted.clone())
            .await
            .map_err(|e| {
                (
                    format!(
                        "cannot create consumer {} on {}: {e}",
                        self.durable, self.stream
                    ),
                    false,
                )
            })?;
        let has = &consumer.cached_info().config;
        let differences = differences(has, &wanted);
        if differences.is_empty() {
            tracing::info!(
                "{}: consuming with durable consumer {}",
                self.stream,
                self.durable
            );
        } else {
            tracing::warn!(
                "{}: consumer {} exists with other settings ({}); using it as it is",
                self.stream,
                self.durable,
                differences.join(", ")
            );
        }
        Ok(consumer)
    }

    /// Stores one batch and acks it; a message that cannot be parsed is terminated. False
    /// when shutdown cut a failing insert (nothing acked).
    async fn store(&mut self, messages: Vec<Message>) -> bool {
        let started = Instant::now();
        let mut rows = TableRows::default();
        let mut accepted = Vec::with_capacity(messages.len());
        let mut again = Vec::new();
        let mut in_batch = std::collections::HashSet::new();
        let mut redelivered = 0;
        for m in messages {
            if m.info().is_ok_and(|i| i.delivered > 1) {
                redelivered += 1;
            }
            if let Some(id) = msg_id(&m) {
                if self.seen.contains(id) || !in_batch.insert(id.to_string()) {
                    again.push(m);
                    continue;
                }
            }
            match parse(&m, &mut rows, self.encoding) {
                Ok(()) => accepted.push(m),
                Err(reason) => self.reject(&m, &reason).await,
            }
        }
        let count = accepted.len() as u64;
        let dropped = again.len() as u64;
        self.state.update(|c| {
            c.redelivered += redelivered;
            c.duplicates_dropped += dropped;
            c.pending.insert(self.stream.to_string(), count);
        });
        let parsed = Instant::now();
        if !self.insert(&rows, &accepted).await {
            self.state
                .update(|c| c.pending.insert(self.stream.to_string(), 0));
            return false;
        }
        let inserted = Instant::now();
        for m in &accepted {
            if let Some(id) = msg_id(m) {
                self.seen.insert(id);
            }
        }
        accepted.extend(again);
        let acked = self.ack_confirmed(&accepted).await;
        // Per stage, for bench/pipeline.sh.
        tracing::debug!(
            "{}: stored {} message(s): parse {} µs, insert {} µs, ack {} µs",
            self.stream,
            accepted.len(),
            (parsed - started).as_micros(),
            (inserted - parsed).as_micros(),
            inserted.elapsed().as_micros()
        );
        self.state.update(|c| {
            c.acked += acked;
            c.pending.insert(self.stream.to_string(), 0);
        });
        true
    }

    /// Acks a stored batch so that no ack is lost with a NATS node that restarts (a lost ack
    /// means the batch is delivered and stored again): every message's ack, the last one's
    /// with the server's confirmation. Acks of one connection are handled in
    /// order, so the confirmation covers the batch unless the client reconnected meanwhile;
    /// then (or when it does not come) all are sent again, until the ack wait runs out.
    /// Returns how many were acked for certain.
    async fn ack_confirmed(&self, accepted: &[Message]) -> u64 {
        let Some((last, rest)) = accepted.split_last() else {
            return 0;
        };
        let stats = self.js.client().statistics();
        let connects = || stats.connects.load(std::sync::atomic::Ordering::Relaxed);
        let deadline = tokio::time::Instant::now() + ACK_WAIT - Duration::from_secs(5);
        loop {
            let before = connects();
            // The last one only with its confirmation: a server may not answer the
            // confirmation of an ack it already has.
            for m in rest {
                if let Err(e) = m.ack().await {
                    tracing::debug!("{}: ack not sent: {e}", m.subject);
                }
            }
            let confirmed = last.double_ack().await;
            if confirmed.is_ok() && connects() == before {
                return accepted.len() as u64;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    "{}: acks of {} stored message(s) not confirmed ({}); they may be delivered and stored again",
                    self.stream,
                    accepted.len(),
                    confirmed.err().map_or("NATS reconnected".into(), |e| e.to_string())
                );
                return 0;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Inserts every table's rows, retrying until all succeeded; false when shutdown cut it.
    async fn insert(&mut self, rows: &TableRows, messages: &[Message]) -> bool {
        let mut done: BTreeSet<DataType> = BTreeSet::new();
        let mut backoff = Duration::from_millis(200);
        let mut progress_sent = Instant::now();
        let mut stop_asked: Option<Instant> = None;
        loop {
            // The tables are inserted at once: each insert is one HTTP request, mostly waiting.
            let todo: Vec<DataType> = rows
                .data_types()
                .into_iter()
                .filter(|t| !done.contains(t))
                .collect();
            let clickhouse = &self.clickhouse;
            let results = futures::future::join_all(todo.into_iter().map(|data_type| async move {
                (data_type, rows.insert(clickhouse, data_type).await)
            }))
            .await;
            let mut failure = None;
            for (data_type, result) in results {
                match result {
                    Ok(()) => {
                        done.insert(data_type);
                        let n = rows.len(data_type) as u64;
                        self.state.clickhouse_ok();
                        self.state.update(|c| {
                            *c.inserted.entry(data_type).or_default() += n;
                            c.last_insert = Some(Instant::now());
                        });
                    }
                    Err(e) => failure = Some(e),
                }
            }
            let Some(error) = failure else {
                return true;
            };
            tracing::warn!(
                "{}: {error}; {} message(s) kept, retrying in {:?}",
                self.stream,
                messages.len(),
                backoff
            );
            self.state.clickhouse_failed(error, true);
            if progress_sent.elapsed() > PROGRESS_EVERY {
                for m in messages {
                    let _ = m.ack_with(AckKind::Progress).await;
                }
                progress_sent = Instant::now();
            }
            if *self.shutdown.borrow() {
                let asked = *stop_asked.get_or_insert_with(Instant::now);
                if asked.elapsed() > SHUTDOWN_GRACE {
                    tracing::warn!(
                        "{}: stopping with {} message(s) not stored and not acked; they are \
                         delivered again at the next start",
                        self.stream,
                        messages.len()
                    );
                    return false;
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn reject(&self, m: &Message, reason: &str) {
        tracing::warn!("rejected message on {}: {reason}", m.subject);
        self.state.update(|c| {
            c.rejected += 1;
            c.last_error = Some(format!("rejected message on {}: {reason}", m.subject));
        });
        // Terminated, so it is not delivered again and again.
        if let Err(e) = m.ack_with(AckKind::Term).await {
            tracing::warn!("{}: cannot terminate rejected message: {e}", m.subject);
        }
    }

    /// Sleeps, or returns early (true) when shutdown is asked.
    async fn pause(&mut self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => false,
            _ = self.shutdown.wait_for(|s| *s) => true,
        }
    }
}

fn parse(m: &Message, rows: &mut TableRows, encoding: TimeEncoding) -> Result<(), String> {
    if DataType::of_subject(&m.subject).is_none() {
        return Err("not one of the 8 data types".into());
    }
    let message = MarketMessage::from_json(&m.subject, &m.payload)?;
    rows.push(&message, encoding)
}

/// The consumer storage wants: everything in the stream from the start (a fresh consumer
/// stores what is already there), acked one by one, room for 4 batches unacked.
pub fn wanted_config(durable: &str, batch_size: usize) -> PullConfig {
    PullConfig {
        durable_name: Some(durable.to_string()),
        deliver_policy: DeliverPolicy::All,
        ack_policy: AckPolicy::Explicit,
        ack_wait: ACK_WAIT,
        max_ack_pending: i64::try_from(batch_size.saturating_mul(4)).unwrap_or(i64::MAX),
        ..Default::default()
    }
}

/// Settings where an existing consumer differs from what storage wants.
fn differences(has: &consumer::Config, wanted: &PullConfig) -> Vec<String> {
    let mut out = Vec::new();
    if has.deliver_policy != wanted.deliver_policy {
        out.push(format!("deliver policy {:?}", has.deliver_policy));
    }
    if has.ack_policy != wanted.ack_policy {
        out.push(format!("ack policy {:?}", has.ack_policy));
    }
    if has.ack_wait != wanted.ack_wait {
        out.push(format!("ack wait {:?}", has.ack_wait));
    }
    if has.max_ack_pending < wanted.max_ack_pending {
        out.push(format!("max ack pending {}", has.max_ack_pending));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wanted_consumer_reads_everything_with_explicit_acks() {
        let c = wanted_config("mp-storage-MARKET_DATA", 1000);
        assert_eq!(c.durable_name.as_deref(), Some("mp-storage-MARKET_DATA"));
        assert_eq!(c.deliver_policy, DeliverPolicy::All);
        assert_eq!(c.ack_policy, AckPolicy::Explicit);
        assert_eq!(c.ack_wait, Duration::from_secs(30));
        assert_eq!(c.max_ack_pending, 4000);
        let same = consumer::Config {
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::Explicit,
            ack_wait: Duration::from_secs(30),
            max_ack_pending: 4000,
            ..Default::default()
        };
        assert!(differences(&same, &c).is_empty());
    }

    #[test]
    fn an_existing_consumer_with_other_settings_is_described() {
        let wanted = wanted_config("d", 10);
        let has = consumer::Config {
            deliver_policy: DeliverPolicy::Last,
            ack_policy: AckPolicy::Explicit,
            ack_wait: Duration::from_secs(30),
            max_ack_pending: 5,
            ..Default::default()
        };
        assert_eq!(
            differences(&has, &wanted),
            ["deliver policy Last", "max ack pending 5"]
        );
    }
}
