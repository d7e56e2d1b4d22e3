//! The collector: takes messages from its source, stamps them with its id and a sequence
//! number, and publishes them to JetStream until each is acked.
//!
//! Every message gets `Nats-Msg-Id: {id}:{boot}:{data_type}:{seq}`; a retry resends the same
//! id, so JetStream's duplicate window drops a copy whose first ack was lost. Publishes run
//! concurrently (a window of [`WINDOW`] awaiting their ack) so the rate is not bound by the
//! round trip. At most `buffer` messages are generated and not yet acked: when the buffer is
//! full a pausable source waits; any other source's messages are counted as dropped.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::context::ContextBuilder;
use async_nats::jetstream::context::{Context, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::HeaderMap;
use tokio::sync::{watch, Semaphore};

use super::collector_health::CollectorState;
use super::config::CollectorConfig;
use super::message::{DataType, MarketData, MarketMessage};
use super::nats::{self, Link};
use super::source::synthetic::now_ms;
use super::source::Source;
use super::{http, ServiceError};

/// Publishes awaiting their ack at once.
pub const WINDOW: usize = 256;
/// How long a publish waits for its ack before it is retried.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest pause between two attempts of one message.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// At shutdown, how long to wait for the acks of what was already sent.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// How a run ended.
#[derive(Debug, Clone)]
pub struct Summary {
    pub generated: u64,
    pub published: BTreeMap<DataType, u64>,
    pub unacked: u64,
    pub dropped: u64,
    pub elapsed: Duration,
}

/// Runs until `shutdown` turns true, or (with `limit`) until that many messages are generated
/// and all of them acked.
pub async fn run(
    config: &CollectorConfig,
    mut source: Box<dyn Source>,
    limit: Option<u64>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<Summary, ServiceError> {
    let boot = now_ms();
    let link = Link::new();
    let state = CollectorState::new(&config.id, boot, link.clone(), source.feed_stats());
    http::serve(
        config.health_listen,
        config.metrics_listen,
        state.clone(),
        shutdown.clone(),
    )
    .await
    .map_err(ServiceError::Fatal)?;
    tracing::info!(
        "collector {} (boot {boot}) publishing {} to NATS at {}; health on {}, metrics on {}",
        config.id,
        source.describe(),
        config.nats_urls.join(", "),
        config.health_listen,
        config.metrics_listen
    );
    let client = nats::connect(
        &format!("mp-collector {}", config.id),
        &config.nats_urls,
        config.nats.as_ref(),
        link,
    )
    .await
    .map_err(ServiceError::Fatal)?;
    let js = ContextBuilder::new()
        .timeout(ACK_TIMEOUT)
        .build(client.clone());

    let buffer = Arc::new(Semaphore::new(config.buffer));
    let window = Arc::new(Semaphore::new(WINDOW));
    let mut seqs: BTreeMap<DataType, u64> = BTreeMap::new();
    let started = Instant::now();
    let mut generated = 0u64;
    let progress = tokio::spawn(log_progress(state.clone()));

    while limit.is_none_or(|l| generated < l) {
        let permit = if source.can_pause() {
            tokio::select! {
                permit = buffer.clone().acquire_owned() => match permit {
                    Ok(p) => p,
                    Err(_) => break,
                },
                _ = shutdown.wait_for(|s| *s) => break,
            }
        } else {
            match buffer.clone().try_acquire_owned() {
                Ok(p) => p,
                Err(_) => {
                    let next = tokio::select! {
                        m = source.next() => m,
                        _ = shutdown.wait_for(|s| *s) => break,
                    };
                    if next.is_none() {
                        break;
                    }
                    let dropped = state.dropped();
                    if dropped == 1 || dropped.is_multiple_of(1000) {
                        tracing::warn!(
                            "buffer full ({} messages not acked): {dropped} message(s) dropped so far",
                            config.buffer
                        );
                    }
                    continue;
                }
            }
        };
        let message = tokio::select! {
            m = source.next() => m,
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let Some(mut message) = message else {
            tracing::info!("source ended");
            break;
        };
        let seq = seqs.entry(message.data_type()).or_default();
        *seq += 1;
        let outgoing = stamp(&mut message, &config.id, boot, *seq);
        generated += 1;
        state.buffered(1);
        let (js, state, window) = (js.clone(), state.clone(), window.clone());
        tokio::spawn(async move {
            publish_until_acked(&js, &outgoing, &state, &window).await;
            drop(permit);
        });
    }

    // Everything generated is either acked or still retrying: wait for the acks, bounded at
    // shutdown, unbounded when a limited run ends by itself.
    let all = u32::try_from(config.buffer).unwrap_or(u32::MAX);
    let drained = buffer.acquire_many(all);
    let drained = if *shutdown.borrow() {
        tokio::time::timeout(DRAIN_TIMEOUT, drained).await.is_ok()
    } else {
        tokio::select! {
            _ = drained => true,
            _ = shutdown.wait_for(|s| *s) => {
                tokio::time::timeout(DRAIN_TIMEOUT, buffer.acquire_many(all)).await.is_ok()
            }
        }
    };
    progress.abort();
    let _ = client.flush().await;
    let c = state.counters();
    if !drained {
        tracing::warn!(
            "stopping with {} message(s) not acked by JetStream (never confirmed stored)",
            c.buffered
        );
    }
    Ok(Summary {
        generated,
        published: c.published.clone(),
        unacked: c.buffered,
        dropped: c.dropped,
        elapsed: started.elapsed(),
    })
}

/// One message ready to publish, the same bytes for every attempt.
struct Outgoing {
    subject: String,
    data_type: DataType,
    publish: PublishMessage,
}

/// Sets the collector's id and sequence number (and, for trades, the trade id; for order
/// books, the update id), and builds the message with its headers.
fn stamp(message: &mut MarketMessage, id: &str, boot: i64, seq: u64) -> Outgoing {
    let data_type = message.data_type();
    message.collector_id = Some(id.to_string());
    message.seq = Some(seq);
    // A live source keeps the exchange's trade and update ids; the generator has none.
    match &mut message.data {
        MarketData::Trade(t) if t.trade_id.is_empty() => t.trade_id = format!("{id}-{boot}-{seq}"),
        MarketData::Orderbook(b) if b.last_update_id == 0 => b.last_update_id = seq,
        _ => {}
    }
    let mut headers = HeaderMap::new();
    headers.insert(
        async_nats::header::NATS_MESSAGE_ID,
        message_id(id, boot, data_type, seq).as_str(),
    );
    headers.insert("Mp-Collector", id);
    headers.insert("Mp-Seq", seq.to_string().as_str());
    Outgoing {
        subject: message.subject(),
        data_type,
        publish: PublishMessage::build()
            .payload(message.to_json().into())
            .headers(headers),
    }
}

/// `mp-1:1700000000000:trade:42`.
pub fn message_id(id: &str, boot: i64, data_type: DataType, seq: u64) -> String {
    format!("{id}:{boot}:{data_type}:{seq}")
}

/// Publishes until JetStream acks, backing off between attempts. Never gives up: a message
/// is either stored or still in the buffer, where `/health` counts it.
async fn publish_until_acked(
    js: &Context,
    out: &Outgoing,
    state: &CollectorState,
    window: &Semaphore,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let result = match window.acquire().await {
            Ok(_slot) => publish_once(js, out).await,
            Err(_) => return,
        };
        match result {
            Ok(duplicate) => {
                state.acked(out.data_type, duplicate);
                return;
            }
            Err((error, stream_missing)) => {
                if let Some(line) = state.publish_failed(error, stream_missing) {
                    tracing::warn!("{line}");
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One attempt: Ok(duplicate) when acked, else the error for `/health` and whether it means
/// the stream is missing.
async fn publish_once(js: &Context, out: &Outgoing) -> Result<bool, (String, bool)> {
    let describe = |kind: PublishErrorKind, e: &dyn std::fmt::Display| match kind {
        PublishErrorKind::StreamNotFound => (
            format!(
                "stream for subject {} missing: run mp-remote deploy",
                out.subject
            ),
            true,
        ),
        PublishErrorKind::TimedOut => (
            format!(
                "no ack from JetStream for {} within {ACK_TIMEOUT:?}",
                out.subject
            ),
            false,
        ),
        _ => (format!("publish to {} failed: {e}", out.subject), false),
    };
    let ack = js
        .send_publish(out.subject.clone(), out.publish.clone())
        .await
        .map_err(|e| describe(e.kind(), &e))?;
    let ack = ack.await.map_err(|e| describe(e.kind(), &e))?;
    Ok(ack.duplicate)
}

/// One line a minute, so the journal shows the collector is alive and how it does.
async fn log_progress(state: Arc<CollectorState>) {
    let mut last = 0u64;
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    tick.tick().await;
    loop {
        tick.tick().await;
        let c = state.counters();
        let total = c.published_total();
        tracing::info!(
            "published {total} (+{} in the last minute), buffered {}, dropped {}, publish errors {}",
            total - last,
            c.buffered,
            c.dropped,
            c.publish_errors
        );
        last = total;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::config::SourceConfig;
    use crate::pipeline::source::synthetic::Generator;

    #[test]
    fn stamped_trade_carries_ids_in_payload_and_headers() {
        let mut generator = Generator::new(&SourceConfig::default()).unwrap();
        let mut trade = generator.generate(1_700_000_000_123);
        assert_eq!(trade.data_type(), DataType::Trade);
        let out = stamp(&mut trade, "mp-1", 1_700_000_000_000, 7);
        assert_eq!(out.subject, "trade.binance.spot.BTC-USDT");
        let MarketData::Trade(t) = &trade.data else {
            panic!("not a trade")
        };
        assert_eq!(t.trade_id, "mp-1-1700000000000-7");
        let body: serde_json::Value = serde_json::from_slice(&trade.to_json()).unwrap();
        assert_eq!(body["collector_id"], "mp-1");
        assert_eq!(body["seq"], 7);
        assert_eq!(
            message_id("mp-1", 1_700_000_000_000, DataType::Trade, 7),
            "mp-1:1700000000000:trade:7"
        );
    }

    #[test]
    fn stamped_orderbook_uses_seq_as_update_id() {
        let mut generator = Generator::new(&SourceConfig::default()).unwrap();
        let _trade = generator.generate(0);
        let mut book = generator.generate(0);
        assert_eq!(book.data_type(), DataType::Orderbook);
        stamp(&mut book, "mp-1", 5, 3);
        let MarketData::Orderbook(b) = &book.data else {
            panic!("not an order book")
        };
        assert_eq!(b.last_update_id, 3);
    }
}
